//! `bench compare`: the same workload against two targets, alternately.
//!
//! Rounds run A, B, A, B, ... so that slow drift of the machine (other load, thermal
//! throttling, a filling disk) hits both sides alike. Each round yields one ratio
//! B/A per figure; the report gives the mean ratio and its spread over the rounds.

use std::fmt::Write as _;

use gauntlet_harness::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::args::{BenchOpts, Workload};
use crate::error::{ensure, Result};
use crate::result::RunResult;

/// Most rounds a comparison runs.
pub const MAX_ROUNDS: usize = 20;

/// One side of a comparison.
#[derive(Debug, Clone)]
pub struct Side {
    /// Name in the report (`etcd@3.5.1`, or the endpoints).
    pub label: String,
    /// How to reach it.
    pub client: ClientConfig,
    /// Its processes, when launched by the harness (for their CPU).
    pub pids: Vec<u32>,
}

/// Mean and spread of one ratio over the rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Mean of the per-round ratios.
    pub mean: f64,
    /// Smallest per-round ratio.
    pub min: f64,
    /// Largest per-round ratio.
    pub max: f64,
    /// Standard deviation of the per-round ratios.
    pub stddev: f64,
}

impl Spread {
    fn of(xs: &[f64]) -> Spread {
        let n = xs.len().max(1) as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        Spread {
            mean,
            min: xs.iter().copied().fold(f64::INFINITY, f64::min),
            max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            stddev: var.sqrt(),
        }
    }
}

/// B/A ratios of one operation kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioRow {
    /// Operation kind.
    pub op: String,
    /// Throughput B/A (above 1: B is faster).
    pub throughput_ratio: Spread,
    /// p99 latency B/A (above 1: B is slower).
    pub p99_ratio: Spread,
    /// p50 latency B/A.
    pub p50_ratio: Spread,
}

/// A finished comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Label of A.
    pub a: String,
    /// Label of B.
    pub b: String,
    /// Every round's results, A then B.
    pub rounds: Vec<(RunResult, RunResult)>,
    /// Ratios per operation kind.
    pub ratios: Vec<RatioRow>,
}

fn ratio(b: f64, a: f64) -> f64 {
    if a == 0.0 {
        if b == 0.0 {
            1.0
        } else {
            f64::INFINITY
        }
    } else {
        b / a
    }
}

/// Runs `rounds` rounds of `workload` on A then B.
pub async fn compare(
    a: &Side,
    b: &Side,
    workload: &Workload,
    opts: &BenchOpts,
    rounds: usize,
) -> Result<Comparison> {
    ensure((1..=MAX_ROUNDS).contains(&rounds), || {
        format!("--rounds must be between 1 and {MAX_ROUNDS}, got {rounds}")
    })?;
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let ra = crate::run(workload, opts, a.client.clone(), a.pids.clone()).await?;
        let rb = crate::run(workload, opts, b.client.clone(), b.pids.clone()).await?;
        out.push((ra, rb));
    }
    let names: Vec<String> = out[0].0.ops.iter().map(|o| o.name.clone()).collect();
    let ratios = names
        .into_iter()
        .map(|name| {
            let mut tput = Vec::new();
            let mut p99 = Vec::new();
            let mut p50 = Vec::new();
            for (ra, rb) in &out {
                let (Some(x), Some(y)) = (
                    ra.ops.iter().find(|o| o.name == name),
                    rb.ops.iter().find(|o| o.name == name),
                ) else {
                    continue;
                };
                tput.push(ratio(y.requests_per_s, x.requests_per_s));
                p99.push(ratio(y.percentile_s(99.0), x.percentile_s(99.0)));
                p50.push(ratio(y.percentile_s(50.0), x.percentile_s(50.0)));
            }
            RatioRow {
                op: name,
                throughput_ratio: Spread::of(&tput),
                p99_ratio: Spread::of(&p99),
                p50_ratio: Spread::of(&p50),
            }
        })
        .collect();
    Ok(Comparison {
        a: a.label.clone(),
        b: b.label.clone(),
        rounds: out,
        ratios,
    })
}

impl Comparison {
    /// The text report: each round's main figures, then the ratios with their spread.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "A = {}\nB = {}\n", self.a, self.b);
        let _ = writeln!(
            s,
            "{:<7} {:<16} {:>12} {:>12} {:>12} {:>12}",
            "round", "operation", "A req/s", "B req/s", "A p99 ms", "B p99 ms"
        );
        for (i, (ra, rb)) in self.rounds.iter().enumerate() {
            for x in &ra.ops {
                let Some(y) = rb.ops.iter().find(|o| o.name == x.name) else {
                    continue;
                };
                let _ = writeln!(
                    s,
                    "{:<7} {:<16} {:>12.1} {:>12.1} {:>12.3} {:>12.3}",
                    i + 1,
                    x.name,
                    x.requests_per_s,
                    y.requests_per_s,
                    x.percentile_s(99.0) * 1e3,
                    y.percentile_s(99.0) * 1e3
                );
            }
        }
        let _ = writeln!(
            s,
            "\nRatios B/A over {} round(s): mean [min .. max] ± stddev",
            self.rounds.len()
        );
        for r in &self.ratios {
            let f = |x: &Spread| {
                format!(
                    "{:.3} [{:.3} .. {:.3}] ± {:.3}",
                    x.mean, x.min, x.max, x.stddev
                )
            };
            let _ = writeln!(
                s,
                "  {:<16} throughput {}   p50 {}   p99 {}",
                r.op,
                f(&r.throughput_ratio),
                f(&r.p50_ratio),
                f(&r.p99_ratio)
            );
        }
        s
    }
}
