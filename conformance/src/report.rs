//! Writing a run's results: `junit.xml`, `results.json` and `summary.md`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use gauntlet_harness::profile::HoldReason;
use quick_junit::{
    NonSuccessKind, Report as JunitReport, TestCase, TestCaseStatus, TestSuite, XmlString,
};

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

/// Control characters other than newline and tab, shown as `\xNN` (JUnit XML cannot
/// carry them, and `quick-junit` would drop them silently).
fn show_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if (c as u32) < 0x20 && c != '\n' && c != '\t' {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// A `<failure>` (`kind` Failure) or `<skipped>` status with a message and, if given, a
/// text body.
fn status(skipped: bool, message: &str, text: Option<&str>) -> TestCaseStatus {
    let mut s = if skipped {
        TestCaseStatus::skipped()
    } else {
        TestCaseStatus::non_success(NonSuccessKind::Failure)
    };
    s.set_message(show_controls(message));
    if let Some(text) = text {
        s.set_description(show_controls(text));
    }
    s
}

/// A suite with the JUnit `skipped` count as an attribute besides quick-junit's own
/// `disabled` (both count the `<skipped>` cases).
fn suite(name: impl Into<XmlString>, cases: Vec<TestCase>) -> TestSuite {
    let mut suite = TestSuite::new(name);
    suite.add_test_cases(cases);
    let skipped = suite.disabled.to_string();
    suite.extra.insert("skipped".into(), skipped.into());
    suite
}

/// JUnit XML (written with `quick-junit`): first a `crashes` suite with one failing
/// `<testcase>` per member that stopped answering (only when there were crashes), then
/// one `<testsuite>` per service, one `<testcase>` per case (class
/// `conformance.<service>`, named by the case id, timed). New failures and cases that
/// killed the target are `<failure>` with request/expected/actual; known issues, cases
/// not run and cases the target was unavailable for are `<skipped>` with their reason.
/// Control characters in texts are shown as `\xNN`.
pub fn junit(report: &Report) -> String {
    let mut junit = JunitReport::new(show_controls(&format!(
        "gauntlet conformance {}",
        report.target
    )));
    junit.set_time(Duration::from_millis(report.wall_ms));
    if !report.crashes.is_empty() {
        let cases = report
            .crashes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let text = crash_text(c);
                let status = match &c.known_issue {
                    None => status(false, &c.headline(), Some(&text)),
                    Some(issue) => status(
                        true,
                        &format!("known issue {}: {}", issue.url, issue.description),
                        Some(&text),
                    ),
                };
                let mut tc = TestCase::new(
                    show_controls(&format!("crash {} of {}", i + 1, c.member)),
                    status,
                );
                tc.set_classname("conformance.crashes");
                tc
            })
            .collect();
        junit.add_test_suite(suite("crashes", cases));
    }
    for (service, _) in report.per_service() {
        let cases = report
            .results
            .iter()
            .filter(|r| r.service == service)
            .map(|r| {
                let with_doc =
                    |failure: &dyn std::fmt::Display| format!("{failure}\n  doc: {}", r.doc);
                let status = match &r.outcome {
                    Outcome::Passed => TestCaseStatus::success(),
                    Outcome::Failed { failure } => {
                        status(false, &r.guarantee, Some(&with_doc(failure)))
                    }
                    Outcome::KnownIssue { failure, issue } => status(
                        true,
                        &format!("known issue {}: {}", issue.url, issue.description),
                        Some(&failure.to_string()),
                    ),
                    Outcome::NotRun { reason, .. } => {
                        status(true, &format!("not run: {reason}"), None)
                    }
                    Outcome::KilledTarget { crash, failure } => status(
                        false,
                        &format!("killed the target (crash {})", crash + 1),
                        Some(&with_doc(failure)),
                    ),
                    Outcome::Unavailable { reason, .. } => status(true, reason, None),
                };
                let mut tc = TestCase::new(show_controls(&r.id), status);
                tc.set_classname(format!("conformance.{service}"));
                tc.set_time(Duration::from_millis(r.duration_ms));
                tc
            })
            .collect();
        junit.add_test_suite(suite(service.to_string(), cases));
    }
    junit.to_string().unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Failure;
    use crate::runner::CaseResult;
    use crate::Service;

    fn case(id: &str, outcome: Outcome) -> CaseResult {
        CaseResult {
            id: id.into(),
            service: Service::Kv,
            guarantee: "a <guarantee> & more".into(),
            doc: "https://etcd.io/docs".into(),
            outcome,
            duration_ms: 1500,
        }
    }

    #[test]
    fn junit_has_one_escaped_testcase_per_case() {
        let failure = Failure {
            request: "Put(\u{1}key)".into(),
            expected: "ok".into(),
            actual: "<error>".into(),
        };
        let report = Report {
            target: "etcd@3.5.1 x1".into(),
            server_version: "3.5.1".into(),
            holding: gauntlet_harness::profile::hold("3.5.1", None),
            profile: None,
            results: vec![
                case("kv.put.ok", Outcome::Passed),
                case("kv.put.bad", Outcome::Failed { failure }),
                case(
                    "kv.put.skip",
                    Outcome::NotRun {
                        reason: "needs <launcher>".into(),
                        cause: crate::runner::NotRunCause::Launcher,
                    },
                ),
            ],
            crashes: Vec::new(),
            restarts: 0,
            wall_ms: 2000,
        };
        let x = junit(&report);
        assert!(x.starts_with("<?xml"), "{x}");
        assert_eq!(x.matches("<testcase ").count(), 3, "{x}");
        assert!(!x.contains("name=\"crashes\""), "no crashes suite: {x}");
        assert!(x.contains("classname=\"conformance.kv\""), "{x}");
        assert!(x.contains("time=\"1.500\""), "{x}");
        assert!(
            x.contains("message=\"a &lt;guarantee&gt; &amp; more\""),
            "{x}"
        );
        assert!(x.contains("Put(\\x01key)"), "control characters shown: {x}");
        assert!(
            x.contains("message=\"not run: needs &lt;launcher&gt;\""),
            "{x}"
        );
        assert!(
            x.contains("skipped=\"1\"") && x.contains("failures=\"1\""),
            "{x}"
        );
    }
}
