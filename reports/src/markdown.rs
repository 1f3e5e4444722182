//! `report.md`: the report as GitHub-flavoured Markdown, for a CI job summary.
//!
//! GitHub refuses a step summary over 1 MiB, so the text is bounded: passing cases
//! and rounds are counted, not listed; failures are listed up to [`MAX_ROWS`] with
//! their details cut to [`MAX_DETAIL`] characters, and the rest is counted with a
//! pointer to `report.json`. [`render`] never returns more than [`MAX_BYTES`].

use std::fmt::Write as _;

use crate::model::{CaseStatus, Report, RoundStatus, Source};

/// Most rows of any one list.
pub const MAX_ROWS: usize = 100;
/// Most characters of a detail cell.
pub const MAX_DETAIL: usize = 300;
/// Upper bound of the whole text (GitHub's step summary limit is 1 MiB).
pub const MAX_BYTES: usize = 900 * 1024;

/// A table cell: one line, pipes escaped, cut to `max` characters.
pub fn cell(s: &str, max: usize) -> String {
    let one: String = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|");
    if one.chars().count() > max {
        let cut: String = one.chars().take(max).collect();
        format!("{cut}…")
    } else {
        one
    }
}

/// The whole report as Markdown.
pub fn render(r: &Report) -> String {
    let mut m = String::new();
    let rec = &r.recommendation;
    let _ = writeln!(m, "# Gauntlet certify: {}\n", r.target.label);
    let _ = writeln!(
        m,
        "**{}** — {}\n",
        rec.level.label().to_uppercase(),
        rec.summary
    );
    let _ = writeln!(
        m,
        "Server version `{}`; level {}; seed {}; {:.0} s; gauntlet {}.\n",
        r.target.server_version,
        r.level,
        r.seed,
        r.wall_ms as f64 / 1000.0,
        r.gauntlet_version
    );
    let _ = writeln!(m, "| area | verdict | figures |\n|---|---|---|");
    for a in &r.areas {
        let _ = writeln!(
            m,
            "| {} | {} | {} |",
            a.area,
            a.status.label(),
            cell(&a.summary, 400)
        );
    }
    for (source, heading) in [
        (Source::Observed, "Observed in this run"),
        (
            Source::Advisory,
            "From published advisories (not tested by this run)",
        ),
    ] {
        let rs: Vec<_> = rec.reasons.iter().filter(|x| x.source == source).collect();
        if rs.is_empty() {
            continue;
        }
        let _ = writeln!(m, "\n## {heading}\n");
        for x in rs.iter().take(MAX_ROWS) {
            let _ = writeln!(
                m,
                "- **{}** ({:?}){}\n  - Am I affected? {}\n  - What do I do? {}{}\n  - Evidence: {}{}{}",
                cell(&x.title, MAX_DETAIL),
                x.severity,
                x.area.map(|a| format!(", {a}")).unwrap_or_default(),
                cell(&x.affected, MAX_DETAIL),
                cell(&x.action, MAX_DETAIL),
                x.upgrade_to
                    .as_deref()
                    .map(|u| format!(" Upgrade to {u} or later."))
                    .unwrap_or_default(),
                cell(&x.evidence, MAX_DETAIL),
                x.url.as_deref().map(|u| format!(" ({u})")).unwrap_or_default(),
                x.rerun
                    .as_deref()
                    .map(|c| format!("\n  - Rerun: `{c}`"))
                    .unwrap_or_default()
            );
        }
        if rs.len() > MAX_ROWS {
            let _ = writeln!(m, "- … and {} more in report.json", rs.len() - MAX_ROWS);
        }
    }
    if let Some(c) = &r.conformance {
        let _ = writeln!(
            m,
            "\n## Conformance\n\nHeld to {}. Rerun: `{}`\n\n| service | passed | failed | known issue | not run | unavailable |\n|---|---|---|---|---|---|",
            c.held_to, c.rerun
        );
        for s in &c.services {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} |",
                s.service, s.passed, s.failed, s.known_issue, s.not_run, s.unavailable
            );
        }
        let shown: Vec<_> = c
            .cases
            .iter()
            .filter(|x| {
                matches!(
                    x.status,
                    CaseStatus::Failed
                        | CaseStatus::KilledTarget
                        | CaseStatus::KnownIssue
                        | CaseStatus::Unavailable
                )
            })
            .collect();
        if !shown.is_empty() {
            let _ = writeln!(m, "\n| case | status | detail |\n|---|---|---|");
            for x in shown.iter().take(MAX_ROWS) {
                let detail = match &x.known {
                    Some(k) => format!("{} ({}, fixed in {})", k.description, k.url, k.fixed_in),
                    None => x.detail.clone(),
                };
                let _ = writeln!(
                    m,
                    "| `{}` | {:?} | {} |",
                    x.id,
                    x.status,
                    cell(&detail, MAX_DETAIL)
                );
            }
            if shown.len() > MAX_ROWS {
                let _ = writeln!(m, "\n… and {} more in report.json", shown.len() - MAX_ROWS);
            }
        }
    }
    if let Some(ch) = &r.chaos {
        let _ = writeln!(
            m,
            "\n## Chaos\n\n{} member(s) per round.\n\n| family | rounds | passed | violations | known issues | unknown | not run |\n|---|---|---|---|---|---|---|",
            ch.members
        );
        for f in &ch.families {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} |",
                f.family, f.rounds, f.passed, f.violations, f.known_issues, f.unknown, f.not_run
            );
        }
        for l in &ch.left_out {
            let _ = writeln!(m, "\nLeft out: {}", cell(l, MAX_DETAIL));
        }
        let bad: Vec<_> = ch
            .rounds
            .iter()
            .filter(|x| x.status != RoundStatus::Passed)
            .collect();
        if !bad.is_empty() {
            let _ = writeln!(m, "\n| round | fault | profile | status | detail | rerun |\n|---|---|---|---|---|---|");
            for x in bad.iter().take(MAX_ROWS) {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {:?} | {} | `{}` |",
                    x.round,
                    x.fault,
                    x.profile,
                    x.status,
                    cell(&x.details.join("; "), MAX_DETAIL),
                    x.rerun
                );
            }
        }
    }
    if let Some(s) = &r.skew {
        let _ = writeln!(
            m,
            "\n## Skew: {} -> {}\n\nRerun: `{}`\n\n| scenario | profile | verdict | detail |\n|---|---|---|---|",
            s.from, s.to, s.rerun
        );
        for x in s.rows.iter().take(MAX_ROWS) {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} |",
                x.scenario,
                x.profile,
                x.verdict,
                cell(&x.details.join("; "), MAX_DETAIL)
            );
        }
    }
    if let Some(b) = &r.bench {
        let _ = writeln!(m, "\n## Benchmarks\n\n| workload | operation | req/s | p50 ms | p99 ms | p99.9 ms | errors |\n|---|---|---|---|---|---|---|");
        for w in &b.workloads {
            if let Some(e) = &w.error {
                let _ = writeln!(
                    m,
                    "| {} | — | failed: {} | | | | |",
                    w.workload,
                    cell(e, MAX_DETAIL)
                );
            }
            for o in &w.ops {
                let _ = writeln!(
                    m,
                    "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
                    w.workload,
                    o.name,
                    o.requests_per_s,
                    o.latency_ms_p50,
                    o.latency_ms_p99,
                    o.latency_ms_p999,
                    o.errors
                );
            }
        }
        let slo: Vec<_> = b.workloads.iter().flat_map(|w| w.slo.iter()).collect();
        if !slo.is_empty() {
            let _ = writeln!(
                m,
                "\n| Kubernetes SLO | p99 | limit | samples | verdict |\n|---|---|---|---|---|"
            );
            for s in slo {
                let _ = writeln!(
                    m,
                    "| {} | {:.3} s | {:.3} s | {} | {} |",
                    s.name,
                    s.measured_s,
                    s.limit_s,
                    s.samples,
                    if s.pass { "met" } else { "MISSED" }
                );
            }
        }
    }
    let _ = writeln!(m, "\nReproduce: `{}`", r.command);
    if m.len() > MAX_BYTES {
        let mut cut = MAX_BYTES - 200;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
        m.push_str("\n\n… cut to fit a CI job summary; everything is in report.json\n");
    }
    m
}
