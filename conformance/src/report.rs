//! Writing a run's results: `junit.xml`, `results.json` and `summary.md`.

use std::fmt::Write as _;
use std::path::Path;

use crate::runner::{Outcome, Report};

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

/// JUnit XML: one `<testsuite>` per service, one `<testcase>` per case. New failures
/// are `<failure>` with request/expected/actual; known issues and cases not run are
/// `<skipped>` with their reason.
pub fn junit(report: &Report) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let t = report.totals();
    let _ = writeln!(
        x,
        "<testsuites name=\"gauntlet conformance {}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        xml_escape(&report.target),
        t.total(),
        t.failed,
        t.known_issue + t.not_run,
        report.wall_ms as f64 / 1000.0
    );
    for (service, c) in report.per_service() {
        let _ = writeln!(
            x,
            "  <testsuite name=\"{service}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
            c.total(),
            c.failed,
            c.known_issue + c.not_run
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
                Outcome::NotRun { reason } => {
                    let _ = write!(x, "<skipped message=\"not run: {}\"/>", xml_escape(reason));
                }
            }
            x.push_str("</testcase>\n");
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

/// Markdown: counts per service, then every new failure, known issue and case not run.
pub fn summary(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Conformance: {}\n", report.target);
    let _ = writeln!(
        s,
        "Server version {}; profile {}; {} cases in {:.1} s.\n",
        report.server_version,
        report
            .profile
            .map(|p| serde_json::to_value(p)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default())
            .unwrap_or_else(|| "(server's own version)".into()),
        report.results.len(),
        report.wall_ms as f64 / 1000.0
    );
    s.push_str("| service | passed | failed | known issue | not run | pass rate of run |\n|---|---:|---:|---:|---:|---:|\n");
    let mut rows = report.per_service();
    rows.push((crate::Service::Kv, report.totals()));
    let n = rows.len();
    for (i, (svc, c)) in rows.into_iter().enumerate() {
        let ran = c.passed + c.failed + c.known_issue;
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
            "| {name} | {} | {} | {} | {} | {rate} |",
            c.passed, c.failed, c.known_issue, c.not_run
        );
    }
    let failed: Vec<_> = report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "\n## New failures ({})\n", failed.len());
        for r in failed {
            if let Outcome::Failed { failure } = &r.outcome {
                let _ = writeln!(
                    s,
                    "- `{}`: {} ([doc]({}))\n  - request: `{}`\n  - expected: {}\n  - actual: {}",
                    r.id, r.guarantee, r.doc, failure.request, failure.expected, failure.actual
                );
            }
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
            if let Outcome::NotRun { reason } = &r.outcome {
                let _ = writeln!(s, "- `{}`: {reason}", r.id);
            }
        }
    }
    s
}
