//! From each suite's own results to the report's areas, with each area's verdict.
//!
//! The suites keep their own result types (richer, and not versioned); these
//! functions keep what the report shows and `--baseline` compares.

use std::path::Path;

use gauntlet_chaos::round::{RoundResult, RoundVerdict};
use gauntlet_conformance::{Outcome, Report as ConformanceReport};
use gauntlet_skew::report::Matrix;
use gauntlet_skew::run::Verdict as SkewVerdict;

use crate::model::{
    Area, AreaVerdict, Bench, BenchRow, CaseRow, CaseStatus, Chaos, Conformance, CrashRow,
    FamilyRow, Known, OpRow, RoundRow, RoundStatus, ServiceCounts, Skew, SkewRow, SloRow, Status,
};

/// `path` relative to `base` when it is inside it, else as given.
pub fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The conformance area of `report`, run by `rerun`.
pub fn conformance(report: &ConformanceReport, rerun: &str) -> (Conformance, AreaVerdict) {
    let services = report
        .per_service()
        .into_iter()
        .map(|(s, c)| ServiceCounts {
            service: s.name().to_string(),
            passed: c.passed,
            failed: c.failed + c.killed_target,
            known_issue: c.known_issue,
            not_run: c.not_run,
            unavailable: c.unavailable,
        })
        .collect();
    let cases = report
        .results
        .iter()
        .map(|r| {
            let (status, detail, known) = match &r.outcome {
                Outcome::Passed => (CaseStatus::Passed, String::new(), None),
                Outcome::Failed { failure } => (CaseStatus::Failed, failure.to_string(), None),
                Outcome::KnownIssue { failure, issue } => (
                    CaseStatus::KnownIssue,
                    failure.to_string(),
                    Some(Known {
                        description: issue.description.clone(),
                        url: issue.url.clone(),
                        fixed_in: issue.fixed_in.clone(),
                    }),
                ),
                Outcome::NotRun { reason, .. } => (CaseStatus::NotRun, reason.clone(), None),
                Outcome::KilledTarget { failure, .. } => {
                    (CaseStatus::KilledTarget, failure.to_string(), None)
                }
                Outcome::Unavailable { reason, .. } => {
                    (CaseStatus::Unavailable, reason.clone(), None)
                }
            };
            CaseRow {
                id: r.id.clone(),
                service: r.service.name().to_string(),
                status,
                guarantee: r.guarantee.clone(),
                detail,
                known,
                duration_ms: r.duration_ms,
            }
        })
        .collect();
    let t = report.totals();
    let crashes: Vec<CrashRow> = report
        .crashes
        .iter()
        .map(|c| CrashRow {
            headline: c.headline(),
            trigger: match &c.trigger {
                gauntlet_conformance::crash::Trigger::Confirmed { cases } => cases.first().cloned(),
                _ => None,
            },
            known: c.known_issue.as_ref().map(|k| Known {
                description: k.description.clone(),
                url: k.url.clone(),
                fixed_in: k.fixed_in.clone(),
            }),
        })
        .collect();
    let status = match report.verdict() {
        gauntlet_conformance::Verdict::Failed { .. } => Status::Fail,
        gauntlet_conformance::Verdict::Incomplete { .. } => Status::Error,
        gauntlet_conformance::Verdict::Passed if t.known_issue > 0 || !crashes.is_empty() => {
            Status::Caveats
        }
        gauntlet_conformance::Verdict::Passed => Status::Pass,
    };
    let mut summary = format!(
        "{} passed, {} failed, {} known issues, {} not run by design, {} unavailable, {} crash(es); held to {}",
        t.passed,
        t.failed + t.killed_target,
        t.known_issue,
        t.not_run,
        t.unavailable,
        crashes.len(),
        report.holding.profile
    );
    if let gauntlet_conformance::Verdict::Incomplete { reason } = report.verdict() {
        summary.push_str(&format!("; incomplete: {reason}"));
    }
    (
        Conformance {
            held_to: format!(
                "{} (server reports `{}`)",
                report.holding.profile, report.server_version
            ),
            services,
            cases,
            crashes,
            rerun: rerun.to_string(),
            wall_ms: report.wall_ms,
        },
        AreaVerdict {
            area: Area::Conformance,
            status,
            summary,
            wall_ms: report.wall_ms,
        },
    )
}

/// One chaos round as the report keeps it; `base` is the report directory.
pub fn round(r: &RoundResult, profile: &str, base: &Path) -> RoundRow {
    let fault = r.spec.fault.name().to_string();
    let status = match &r.verdict {
        RoundVerdict::Passed => RoundStatus::Passed,
        RoundVerdict::Violation => RoundStatus::Violation,
        RoundVerdict::KnownIssue => RoundStatus::KnownIssue,
        RoundVerdict::Unknown => RoundStatus::Unknown,
        RoundVerdict::Skipped(_) | RoundVerdict::Error(_) => RoundStatus::NotRun,
    };
    let mut details: Vec<String> = r
        .findings
        .iter()
        .map(|f| format!("{}: {}", f.check, f.detail))
        .collect();
    details.extend(r.unknown.iter().map(|u| format!("unknown: {u}")));
    if let RoundVerdict::Skipped(w) | RoundVerdict::Error(w) = &r.verdict {
        details.push(w.clone());
    }
    let mut known: Vec<Known> = r
        .known_issues
        .iter()
        .map(|k| Known {
            description: k.description.clone(),
            url: k.url.clone(),
            fixed_in: k.fixed_in.clone(),
        })
        .collect();
    known.dedup();
    RoundRow {
        family: r.spec.fault.family().to_string(),
        fault,
        profile: profile.to_string(),
        round: r.spec.round,
        status,
        details,
        known,
        operations: r.operations,
        wall_ms: r.wall_ms,
        rerun: r.rerun.clone(),
        evidence: r.dir.as_deref().map(|d| relative(d, base)),
    }
}

/// The chaos area from its rounds; `left_out` lists families that do not apply.
pub fn chaos(
    rounds: Vec<RoundRow>,
    members: usize,
    left_out: Vec<String>,
    wall_ms: u64,
) -> (Chaos, AreaVerdict) {
    let mut families: Vec<FamilyRow> = Vec::new();
    for r in &rounds {
        let i = match families.iter().position(|f| f.family == r.family) {
            Some(i) => i,
            None => {
                families.push(FamilyRow {
                    family: r.family.clone(),
                    ..FamilyRow::default()
                });
                families.len() - 1
            }
        };
        let f = &mut families[i];
        f.rounds += 1;
        match r.status {
            RoundStatus::Passed => f.passed += 1,
            RoundStatus::Violation => f.violations += 1,
            RoundStatus::KnownIssue => f.known_issues += 1,
            RoundStatus::Unknown => f.unknown += 1,
            RoundStatus::NotRun => f.not_run += 1,
        }
    }
    let sum = |g: fn(&FamilyRow) -> usize| families.iter().map(g).sum::<usize>();
    let (violations, known, unknown, not_run) = (
        sum(|f| f.violations),
        sum(|f| f.known_issues),
        sum(|f| f.unknown),
        sum(|f| f.not_run),
    );
    // A violation under a fault stricter than production filesystems is a caveat.
    let strict_violations = rounds
        .iter()
        .filter(|r| {
            r.status == RoundStatus::Violation
                && crate::verdict::stricter_than_common_filesystems(&r.fault)
        })
        .count();
    let status = if violations > strict_violations {
        Status::Fail
    } else if rounds.is_empty() || not_run == rounds.len() {
        Status::Error
    } else if known + unknown + not_run + strict_violations > 0 {
        Status::Caveats
    } else {
        Status::Pass
    };
    let summary = format!(
        "{} rounds over {} fault families ({}): {} passed, {} violations, {} known issues, {} unknown, {} not run",
        rounds.len(),
        families.len(),
        families
            .iter()
            .map(|f| f.family.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        sum(|f| f.passed),
        violations,
        known,
        unknown,
        not_run
    );
    (
        Chaos {
            members,
            families,
            left_out,
            rounds,
            wall_ms,
        },
        AreaVerdict {
            area: Area::Chaos,
            status,
            summary,
            wall_ms,
        },
    )
}

/// The skew area from a matrix; `base` is the report directory.
pub fn skew(m: &Matrix, base: &Path) -> (Skew, AreaVerdict) {
    let rows: Vec<SkewRow> = m
        .results
        .iter()
        .map(|r| {
            let mut details: Vec<String> = r
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(gauntlet_skew::run::Check::line)
                .collect();
            details.extend(
                r.findings
                    .iter()
                    .map(|f| format!("{}: {}", f.check, f.detail)),
            );
            details.extend(r.unknown.iter().map(|u| format!("unknown: {u}")));
            if let SkewVerdict::NotApplicable(w) | SkewVerdict::Error(w) = &r.verdict {
                details.push(w.clone());
            }
            let mut fixed_in: Vec<String> = r
                .checks
                .iter()
                .filter(|c| !c.ok)
                .filter_map(|c| c.known_fixed_in.clone())
                .collect();
            fixed_in.sort();
            fixed_in.dedup();
            SkewRow {
                scenario: r.scenario.name().to_string(),
                profile: r.profile.clone(),
                verdict: r.verdict.label().to_string(),
                details,
                fixed_in,
                rerun: r.rerun.clone(),
                evidence: r.dir.as_deref().map(|d| relative(d, base)),
            }
        })
        .collect();
    let count = |label: &str| rows.iter().filter(|r| r.verdict == label).count();
    let (failed, known, unknown, na, errors) = (
        count("FAIL"),
        count("known issue"),
        count("unknown"),
        count("n/a"),
        count("error"),
    );
    let status = if failed > 0 {
        Status::Fail
    } else if rows.is_empty() || errors + na == rows.len() {
        Status::Error
    } else if known + unknown + errors > 0 {
        Status::Caveats
    } else {
        Status::Pass
    };
    let summary = format!(
        "{} -> {}: {} runs: {} pass, {} failed, {} known issues, {} unknown, {} n/a, {} errors",
        m.from,
        m.to,
        rows.len(),
        count("pass"),
        failed,
        known,
        unknown,
        na,
        errors
    );
    (
        Skew {
            from: m.from.clone(),
            to: m.to.clone(),
            rows,
            rerun: m.rerun.clone(),
            wall_ms: m.wall_ms,
        },
        AreaVerdict {
            area: Area::Skew,
            status,
            summary,
            wall_ms: m.wall_ms,
        },
    )
}

/// A bench workload's row from its result.
pub fn bench_row(
    workload: &str,
    rerun: &str,
    result: Result<&gauntlet_bench::RunResult, String>,
    plots: Vec<String>,
) -> BenchRow {
    match result {
        Ok(r) => BenchRow {
            workload: workload.to_string(),
            params: r.params.clone(),
            rerun: rerun.to_string(),
            ops: r
                .ops
                .iter()
                .map(|o| OpRow {
                    name: o.name.clone(),
                    count: o.count,
                    errors: o.errors,
                    requests_per_s: o.requests_per_s,
                    latency_ms_p50: o.percentile_s(50.0) * 1e3,
                    latency_ms_p99: o.percentile_s(99.0) * 1e3,
                    latency_ms_p999: o.percentile_s(99.9) * 1e3,
                })
                .collect(),
            slo: r
                .slo
                .iter()
                .flatten()
                .map(|s| SloRow {
                    name: s.name.clone(),
                    measured_s: s.measured_s,
                    limit_s: s.limit_s,
                    samples: s.samples,
                    pass: s.pass,
                })
                .collect(),
            error: None,
            plots,
        },
        Err(e) => BenchRow {
            workload: workload.to_string(),
            params: String::new(),
            rerun: rerun.to_string(),
            ops: Vec::new(),
            slo: Vec::new(),
            error: Some(e),
            plots,
        },
    }
}

/// Largest share of failed requests a workload may have and still count as measured.
pub const MAX_ERROR_SHARE: f64 = 0.01;

impl BenchRow {
    /// The share of requests that failed, over every operation kind.
    pub fn error_share(&self) -> f64 {
        let (ok, err) = self
            .ops
            .iter()
            .fold((0u64, 0u64), |(a, b), o| (a + o.count, b + o.errors));
        if ok + err == 0 {
            0.0
        } else {
            err as f64 / (ok + err) as f64
        }
    }
}

/// The bench area from its workloads.
pub fn bench(workloads: Vec<BenchRow>, wall_ms: u64) -> (Bench, AreaVerdict) {
    let errored = workloads.iter().filter(|w| w.error.is_some()).count();
    let slo_missed: Vec<&str> = workloads
        .iter()
        .flat_map(|w| w.slo.iter())
        .filter(|s| !s.pass)
        .map(|s| s.name.as_str())
        .collect();
    let noisy = workloads
        .iter()
        .filter(|w| w.error.is_none() && w.error_share() > MAX_ERROR_SHARE)
        .count();
    let status = if workloads.is_empty() || errored == workloads.len() {
        Status::Error
    } else if errored + noisy + slo_missed.len() > 0 {
        Status::Caveats
    } else {
        Status::Pass
    };
    let slo_total = workloads.iter().map(|w| w.slo.len()).sum::<usize>();
    let summary = format!(
        "{} workloads ({}); Kubernetes SLOs: {}/{} met{}{}",
        workloads.len(),
        workloads
            .iter()
            .map(|w| match w.ops.first() {
                Some(o) if w.error.is_none() => format!(
                    "{} {:.0} req/s p99 {:.1} ms",
                    w.workload, o.requests_per_s, o.latency_ms_p99
                ),
                _ => format!("{} failed", w.workload),
            })
            .collect::<Vec<_>>()
            .join(", "),
        slo_total - slo_missed.len(),
        slo_total,
        if slo_missed.is_empty() {
            String::new()
        } else {
            format!(" (missed: {})", slo_missed.join(", "))
        },
        if noisy > 0 {
            format!("; {noisy} workload(s) with over 1% failed requests")
        } else {
            String::new()
        }
    );
    (
        Bench { workloads, wall_ms },
        AreaVerdict {
            area: Area::Bench,
            status,
            summary,
            wall_ms,
        },
    )
}
