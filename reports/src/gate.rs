//! The regression gate: what got worse between a baseline report and this one.
//!
//! Worse means: a conformance case that held (or was a known issue) now fails; a
//! chaos round (same seed, same round of the same family) that held now has a
//! violation; a skew scenario that held now fails; a Kubernetes SLO that was met is
//! missed; a benchmark's throughput dropped or its p99 latency rose by more than the
//! tolerance; a workload that ran now fails; an area that passed now fails; or the
//! recommendation got worse. Things that only exist in one report (a case added to
//! the catalogue, a family left out) are not regressions: they are listed as notes.

use std::collections::BTreeMap;

use crate::model::{Report, RoundStatus, Status};

/// What the gate found.
#[derive(Debug, Clone, Default)]
pub struct GateResult {
    /// One line per regression.
    pub regressions: Vec<String>,
    /// One line per difference that is not a regression (improvements, additions).
    pub notes: Vec<String>,
}

impl GateResult {
    /// No regression.
    pub fn pass(&self) -> bool {
        self.regressions.is_empty()
    }
}

/// Compares `now` with `baseline`; `tolerance_pct` bounds the benchmark figures.
pub fn compare(baseline: &Report, now: &Report, tolerance_pct: f64) -> GateResult {
    let mut g = GateResult::default();
    if baseline.target.label != now.target.label {
        g.notes.push(format!(
            "the baseline tested {}, this run {}",
            baseline.target.label, now.target.label
        ));
    }
    if now.recommendation.level > baseline.recommendation.level {
        g.regressions.push(format!(
            "recommendation: {} -> {}",
            baseline.recommendation.level.label(),
            now.recommendation.level.label()
        ));
    }
    for a in &now.areas {
        if let Some(b) = baseline.area(a.area) {
            if a.status == Status::Fail && b.status != Status::Fail {
                g.regressions.push(format!(
                    "{}: {} -> {} ({})",
                    a.area,
                    b.status.label(),
                    a.status.label(),
                    a.summary
                ));
            }
        }
    }
    if let (Some(b), Some(n)) = (&baseline.conformance, &now.conformance) {
        let before: BTreeMap<&str, _> = b.cases.iter().map(|c| (c.id.as_str(), c.status)).collect();
        for c in &n.cases {
            match before.get(c.id.as_str()) {
                Some(s) if c.status.is_failure() && !s.is_failure() => g.regressions.push(format!(
                    "conformance {}: {:?} -> {:?}: {}",
                    c.id,
                    s,
                    c.status,
                    c.detail.lines().next().unwrap_or("")
                )),
                Some(s) if !c.status.is_failure() && s.is_failure() => g.notes.push(format!(
                    "conformance {}: fixed ({:?} -> {:?})",
                    c.id, s, c.status
                )),
                None if c.status.is_failure() => g
                    .notes
                    .push(format!("conformance {}: new case, failing", c.id)),
                _ => {}
            }
        }
    }
    if let (Some(b), Some(n)) = (&baseline.chaos, &now.chaos) {
        let key = |r: &crate::model::RoundRow| (r.family.clone(), r.round, r.fault.clone());
        let before: BTreeMap<_, _> = b.rounds.iter().map(|r| (key(r), r.status)).collect();
        for r in &n.rounds {
            let was = before.get(&key(r)).copied();
            if r.status == RoundStatus::Violation && was != Some(RoundStatus::Violation) {
                g.regressions.push(format!(
                    "chaos {} round {}: new violation: {}; rerun: {}",
                    r.fault,
                    r.round,
                    r.details.first().map(String::as_str).unwrap_or(""),
                    r.rerun
                ));
            }
        }
    }
    if let (Some(b), Some(n)) = (&baseline.skew, &now.skew) {
        let before: BTreeMap<_, _> = b
            .rows
            .iter()
            .map(|r| ((r.scenario.clone(), r.profile.clone()), r.verdict.clone()))
            .collect();
        for r in &n.rows {
            let was = before.get(&(r.scenario.clone(), r.profile.clone()));
            if r.failed() && was.is_some_and(|w| w != "FAIL") {
                g.regressions.push(format!(
                    "skew {} [{}]: {} -> FAIL; rerun: {}",
                    r.scenario,
                    r.profile,
                    was.map(String::as_str).unwrap_or("?"),
                    r.rerun
                ));
            }
        }
    }
    if let (Some(b), Some(n)) = (&baseline.bench, &now.bench) {
        for w in &n.workloads {
            let Some(bw) = b.workloads.iter().find(|x| x.workload == w.workload) else {
                g.notes
                    .push(format!("bench {}: not in the baseline", w.workload));
                continue;
            };
            if w.error.is_some() && bw.error.is_none() {
                g.regressions.push(format!(
                    "bench {}: ran in the baseline, fails now: {}",
                    w.workload,
                    w.error.as_deref().unwrap_or("")
                ));
                continue;
            }
            if bw.params != w.params && !bw.params.is_empty() && !w.params.is_empty() {
                g.notes.push(format!(
                    "bench {}: parameters differ ({} vs {}); figures compared anyway",
                    w.workload, bw.params, w.params
                ));
            }
            for o in &w.ops {
                let Some(bo) = bw.ops.iter().find(|x| x.name == o.name) else {
                    continue;
                };
                let drop_pct = pct_change(bo.requests_per_s, o.requests_per_s);
                if -drop_pct > tolerance_pct {
                    g.regressions.push(format!(
                        "bench {} {}: throughput {:.0} -> {:.0} req/s ({:+.1}%, tolerance {tolerance_pct}%)",
                        w.workload, o.name, bo.requests_per_s, o.requests_per_s, drop_pct
                    ));
                }
                let rise_pct = pct_change(bo.latency_ms_p99, o.latency_ms_p99);
                if rise_pct > tolerance_pct {
                    g.regressions.push(format!(
                        "bench {} {}: p99 latency {:.2} -> {:.2} ms ({:+.1}%, tolerance {tolerance_pct}%)",
                        w.workload, o.name, bo.latency_ms_p99, o.latency_ms_p99, rise_pct
                    ));
                }
            }
            for s in &w.slo {
                if let Some(bs) = bw.slo.iter().find(|x| x.name == s.name) {
                    if bs.pass && !s.pass {
                        g.regressions.push(format!(
                            "bench {} SLO {}: met -> missed (p99 {:.3} s, limit {:.3} s)",
                            w.workload, s.name, s.measured_s, s.limit_s
                        ));
                    }
                }
            }
        }
    }
    g
}

/// Percent change from `a` to `b` (0 when `a` is 0).
fn pct_change(a: f64, b: f64) -> f64 {
    if a.abs() < f64::EPSILON {
        0.0
    } else {
        (b - a) / a * 100.0
    }
}
