//! The regression gate: a result against a saved baseline.
//!
//! For every operation kind present in both, throughput may drop and p99 latency may
//! rise by at most `tolerance` percent. Anything beyond is a regression, and
//! `gauntlet bench --baseline` exits 1.

use crate::error::{BenchError, Result};
use crate::result::RunResult;

/// The gate's judgement.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// No regression beyond the tolerance.
    pub pass: bool,
    /// One line per figure compared, saying how it moved.
    pub lines: Vec<String>,
}

/// Compares `current` with `baseline`. Results of different workloads cannot be compared.
pub fn gate(current: &RunResult, baseline: &RunResult, tolerance_pct: f64) -> Result<Verdict> {
    if current.workload != baseline.workload {
        return Err(BenchError::InvalidArgument(format!(
            "--baseline is a `{}` result; this run is `{}`",
            baseline.workload, current.workload
        )));
    }
    let mut lines = Vec::new();
    let mut pass = true;
    let mut compared = 0;
    for cur in &current.ops {
        let Some(base) = baseline.ops.iter().find(|b| b.name == cur.name) else {
            continue;
        };
        compared += 1;
        let drop_pct = -pct_change(base.requests_per_s, cur.requests_per_s);
        let tput_bad = drop_pct > tolerance_pct;
        lines.push(format!(
            "{} throughput: {:.1} -> {:.1} req/s ({:+.1}%) {}",
            cur.name,
            base.requests_per_s,
            cur.requests_per_s,
            -drop_pct,
            if tput_bad { "REGRESSION" } else { "ok" }
        ));
        let (b99, c99) = (base.percentile_s(99.0), cur.percentile_s(99.0));
        let rise_pct = pct_change(b99, c99);
        let p99_bad = rise_pct > tolerance_pct;
        lines.push(format!(
            "{} p99: {:.4} -> {:.4} s ({:+.1}%) {}",
            cur.name,
            b99,
            c99,
            rise_pct,
            if p99_bad { "REGRESSION" } else { "ok" }
        ));
        pass &= !(tput_bad || p99_bad);
    }
    if compared == 0 {
        return Err(BenchError::InvalidArgument(
            "--baseline has no operation kind in common with this run".into(),
        ));
    }
    Ok(Verdict { pass, lines })
}

/// Percent change from `base` to `now`; a zero base counts any rise as infinite.
fn pct_change(base: f64, now: f64) -> f64 {
    if base == 0.0 {
        if now == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (now - base) / base * 100.0
    }
}
