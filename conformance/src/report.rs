//! Writing a run's results: `junit.xml`, `results.json` and `summary.md`.

use std::fmt::Write as _;
use std::path::Path;

use gauntlet_harness::profile::HoldReason;

use crate::crash::{Crash, Trigger};
use crate::runner::{Outcome, Profile, Report, Verdict};

/// Writes the three files into `dir` (created if missing).
pub fn write_all(report: &Report, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("junit.xml"), junit(report))?;
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("results.json"), json)?;
    std::fs::write(dir.join("summary.md"), summary(report))?;
    Ok(())
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: first a `crashes` suite with one failing `<testcase>` per member that
/// stopped answering, then one `<testsuite>` per service, one `<testcase>` per case.
/// New failures and cases that killed the target are `<failure>` with
/// request/expected/actual; known issues, cases not run and cases the target was
/// unavailable for are `<skipped>` with their reason.
pub fn junit(report: &Report) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let t = report.totals();
    let crashes = report.crashes.len();
    let _ = writeln!(
        x,
        "<testsuites name=\"gauntlet conformance {}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        xml_escape(&report.target),
        t.total() + crashes,
        t.failed + t.killed_target + report.new_crashes(),
        t.known_issue + t.not_run + t.unavailable,
        report.wall_ms as f64 / 1000.0
    );
    if crashes > 0 {
        let _ = writeln!(
            x,
            "  <testsuite name=\"crashes\" tests=\"{crashes}\" failures=\"{}\" skipped=\"{}\">",
            report.new_crashes(),
            crashes - report.new_crashes()
        );
        for (i, c) in report.crashes.iter().enumerate() {
            let _ = write!(
                x,
                "    <testcase classname=\"conformance.crashes\" name=\"crash {} of {}\">",
                i + 1,
                xml_escape(&c.member)
            );
            let text = xml_escape(&crash_text(c));
            match &c.known_issue {
                None => {
                    let _ = write!(
                        x,
                        "<failure message=\"{}\">{text}</failure>",
                        xml_escape(&c.headline())
                    );
                }
                Some(issue) => {
                    let _ = write!(
                        x,
                        "<skipped message=\"known issue {}: {}\">{text}</skipped>",
                        xml_escape(&issue.url),
                        xml_escape(&issue.description)
                    );
                }
            }
            x.push_str("</testcase>\n");
        }
        x.push_str("  </testsuite>\n");
    }
    for (service, c) in report.per_service() {
        let _ = writeln!(
            x,
            "  <testsuite name=\"{service}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
            c.total(),
            c.failed + c.killed_target,
            c.known_issue + c.not_run + c.unavailable
        );
        for r in report.results.iter().filter(|r| r.service == service) {
            let _ = write!(
                x,
                "    <testcase classname=\"conformance.{service}\" name=\"{}\" time=\"{:.3}\">",
                xml_escape(&r.id),
                r.duration_ms as f64 / 1000.0
            );
            match &r.outcome {
                Outcome::Passed => {}
                Outcome::Failed { failure } => {
                    let _ = write!(
                        x,
                        "<failure message=\"{}\">{}</failure>",
                        xml_escape(&r.guarantee),
                        xml_escape(&format!("{failure}\n  doc: {}", r.doc))
                    );
                }
                Outcome::KnownIssue { failure, issue } => {
                    let _ = write!(
                        x,
                        "<skipped message=\"known issue {}: {}\">{}</skipped>",
                        xml_escape(&issue.url),
                        xml_escape(&issue.description),
                        xml_escape(&failure.to_string())
                    );
                }
                Outcome::NotRun { reason, .. } => {
                    let _ = write!(x, "<skipped message=\"not run: {}\"/>", xml_escape(reason));
                }
                Outcome::KilledTarget { crash, failure } => {
                    let _ = write!(
                        x,
                        "<failure message=\"killed the target (crash {})\">{}</failure>",
                        crash + 1,
                        xml_escape(&format!("{failure}\n  doc: {}", r.doc))
                    );
                }
                Outcome::Unavailable { reason, .. } => {
                    let _ = write!(x, "<skipped message=\"{}\"/>", xml_escape(reason));
                }
            }
            x.push_str("</testcase>\n");
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

/// A crash as plain text: headline, trigger, in-flight cases with their requests,
/// log tail.
pub fn crash_text(c: &Crash) -> String {
    let mut s = c.headline();
    s.push('\n');
    let _ = writeln!(s, "trigger: {}", trigger_text(c));
    if let Some(issue) = &c.known_issue {
        let _ = writeln!(
            s,
            "known issue: {} ({}, fixed in {})",
            issue.description, issue.url, issue.fixed_in
        );
    }
    let confirmed: Vec<&str> = match &c.trigger {
        Trigger::Confirmed { cases } => cases.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    };
    let _ = writeln!(
        s,
        "in flight at that moment ({} case(s)):",
        c.in_flight.len()
    );
    let mut others = Vec::new();
    for f in &c.in_flight {
        if !confirmed.is_empty() && !confirmed.contains(&f.id.as_str()) {
            others.push(f.id.as_str());
            continue;
        }
        let _ = writeln!(s, "  {} (running for {} ms)", f.id, f.running_ms);
        for r in &f.requests {
            let _ = writeln!(s, "    {r}");
        }
    }
    if !others.is_empty() {
        let _ = writeln!(
            s,
            "  also in flight (cleared when run alone): {}",
            others.join(", ")
        );
    }
    if !c.log_tail.is_empty() {
        let _ = writeln!(s, "last lines of {}'s log:", c.member);
        for l in &c.log_tail {
            let _ = writeln!(s, "  | {l}");
        }
    }
    s
}

/// What isolating a crash found, in one phrase.
pub fn trigger_text(c: &Crash) -> String {
    match &c.trigger {
        Trigger::Confirmed { cases } => format!(
            "{} (run alone, it killed the target again)",
            cases.join(", ")
        ),
        Trigger::NotReproduced => {
            "not reproduced: each case in flight ran alone on a restarted cluster and none killed it"
                .into()
        }
        Trigger::NotTried => {
            "not isolated: the target is external, so gauntlet cannot restart it".into()
        }
        Trigger::Unfinished { reason } => format!("isolation unfinished: {reason}"),
    }
}

fn profile_line(report: &Report) -> String {
    let h = &report.holding;
    let why = match h.reason {
        HoldReason::Forced => "chosen with --profile".to_string(),
        HoldReason::Reported => "from the reported version".to_string(),
        HoldReason::NotEtcd => "not an etcd version, so the newest profile".to_string(),
        HoldReason::UnknownEtcdLine => {
            "an etcd line without a profile, so the newest profile".to_string()
        }
    };
    let kube = if report.profile == Some(Profile::Kubernetes) {
        ", kubernetes selection"
    } else {
        ""
    };
    format!(
        "Server reports version `{}`; held to {} at {} ({why}){kube}",
        h.reported, h.profile, h.judged_at
    )
}

/// Markdown: crashes first, counts per service, then every new failure, known issue,
/// case not run and case the target was unavailable for.
pub fn summary(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Conformance: {}\n", report.target);
    let _ = writeln!(
        s,
        "{}; {} cases in {:.1} s.\n",
        profile_line(report),
        report.results.len(),
        report.wall_ms as f64 / 1000.0
    );
    let _ = writeln!(
        s,
        "**Verdict: {}**\n",
        match report.verdict() {
            Verdict::Passed => "passed".to_string(),
            Verdict::Failed {
                new_failures,
                crashes,
            } => format!("failed ({new_failures} new failure(s), {crashes} crash(es))"),
            Verdict::Incomplete { reason } => format!("incomplete: {reason}"),
        }
    );
    if !report.crashes.is_empty() {
        let _ = writeln!(
            s,
            "## The target died ({} crash(es), {} restart(s))\n",
            report.crashes.len(),
            report.restarts
        );
        for (i, c) in report.crashes.iter().enumerate() {
            let _ = writeln!(s, "### Crash {}: {}\n", i + 1, c.headline());
            let _ = writeln!(s, "- trigger: {}", trigger_text(c));
            if let Some(issue) = &c.known_issue {
                let _ = writeln!(
                    s,
                    "- known issue: {} ({}, fixed in {})",
                    issue.description, issue.url, issue.fixed_in
                );
            }
            let confirmed: Vec<&str> = match &c.trigger {
                Trigger::Confirmed { cases } => cases.iter().map(String::as_str).collect(),
                _ => Vec::new(),
            };
            let _ = writeln!(
                s,
                "- in flight at that moment ({} case(s)):",
                c.in_flight.len()
            );
            let (detail, rest): (Vec<_>, Vec<_>) = c
                .in_flight
                .iter()
                .partition(|f| confirmed.is_empty() || confirmed.contains(&f.id.as_str()));
            for f in detail {
                let _ = writeln!(s, "  - `{}` (running for {} ms)", f.id, f.running_ms);
                for r in &f.requests {
                    let _ = writeln!(s, "    - `{}`", r.replace('`', "'"));
                }
            }
            if !rest.is_empty() {
                let ids: Vec<String> = rest.iter().map(|f| format!("`{}`", f.id)).collect();
                let _ = writeln!(
                    s,
                    "  - also in flight, each passed or failed on its own when run alone: {}",
                    ids.join(", ")
                );
            }
            if !c.log_tail.is_empty() {
                let _ = writeln!(s, "\nLast lines of {}'s log:\n\n```", c.member);
                for l in &c.log_tail {
                    let _ = writeln!(s, "{l}");
                }
                s.push_str("```\n");
            }
            s.push('\n');
        }
    }
    s.push_str("| service | passed | failed | known issue | not run | killed target | unavailable | pass rate of run |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut rows = report.per_service();
    rows.push((crate::Service::Kv, report.totals()));
    let n = rows.len();
    for (i, (svc, c)) in rows.into_iter().enumerate() {
        let ran = c.ran();
        let rate = if ran == 0 {
            "-".to_string()
        } else {
            format!("{:.0}%", 100.0 * c.passed as f64 / ran as f64)
        };
        let name = if i + 1 == n {
            "**total**".to_string()
        } else {
            svc.to_string()
        };
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} | {} | {} | {rate} |",
            c.passed, c.failed, c.known_issue, c.not_run, c.killed_target, c.unavailable
        );
    }
    let failed: Vec<_> = report
        .results
        .iter()
        .filter(|r| {
            matches!(
                r.outcome,
                Outcome::Failed { .. } | Outcome::KilledTarget { .. }
            )
        })
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "\n## New failures ({})\n", failed.len());
        for r in failed {
            let (failure, killed) = match &r.outcome {
                Outcome::Failed { failure } => (failure, String::new()),
                Outcome::KilledTarget { failure, crash } => (
                    failure,
                    format!(" **killed the target (crash {})**", crash + 1),
                ),
                _ => continue,
            };
            let _ = writeln!(
                s,
                "- `{}`{killed}: {} ([doc]({}))\n  - request: `{}`\n  - expected: {}\n  - actual: {}",
                r.id, r.guarantee, r.doc, failure.request, failure.expected, failure.actual
            );
        }
    }
    let known: Vec<_> = report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::KnownIssue { .. }))
        .collect();
    if !known.is_empty() {
        let _ = writeln!(s, "\n## Known issues ({})\n", known.len());
        for r in known {
            if let Outcome::KnownIssue { issue, .. } = &r.outcome {
                let _ = writeln!(
                    s,
                    "- `{}`: {} ({}, fixed in {})",
                    r.id, issue.description, issue.url, issue.fixed_in
                );
            }
        }
    }
    let not_run: Vec<_> = report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::NotRun { .. }))
        .collect();
    if !not_run.is_empty() {
        let _ = writeln!(s, "\n## Not run ({})\n", not_run.len());
        for r in not_run {
            if let Outcome::NotRun { reason, .. } = &r.outcome {
                let _ = writeln!(s, "- `{}`: {reason}", r.id);
            }
        }
    }
    let unavailable: Vec<_> = report
        .results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Unavailable { reason, .. } => Some((r.id.as_str(), reason.as_str())),
            _ => None,
        })
        .collect();
    if !unavailable.is_empty() {
        let _ = writeln!(s, "\n## Target unavailable ({})\n", unavailable.len());
        let mut by_reason: Vec<(&str, Vec<&str>)> = Vec::new();
        for (id, reason) in unavailable {
            match by_reason.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, ids)) => ids.push(id),
                None => by_reason.push((reason, vec![id])),
            }
        }
        for (reason, ids) in by_reason {
            let _ = writeln!(s, "- {reason} ({} case(s)): {}", ids.len(), ids.join(", "));
        }
    }
    s
}
