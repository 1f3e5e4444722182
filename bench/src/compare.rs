//! `bench compare`: the same workload against two targets, alternately.
//!
//! Rounds run A, B, A, B, ... so that slow drift of the machine (other load, thermal
//! throttling, a filling disk) hits both sides alike. Each round yields one ratio
//! B/A per figure; the report gives the mean ratio and its spread over the rounds.
//!
//! A round in which either side had failed operations (a quota hit, a lost leader)
//! measured something else than the workload, so it is left out of the ratios and the
//! report names it with its most frequent error; when every round had failures, the
//! ratios are over all rounds and the report says that instead.

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

/// Target CPU per operation, B/A (above 1: B spends more), when both sides were
/// launched by the harness.
fn cpu_ratio<'a>(rounds: impl Iterator<Item = &'a (RunResult, RunResult)>) -> Option<Spread> {
    let xs: Option<Vec<f64>> = rounds
        .map(|(ra, rb)| {
            Some(ratio(
                rb.cpu.target_cpu_us_per_op?,
                ra.cpu.target_cpu_us_per_op?,
            ))
        })
        .collect();
    xs.filter(|x| !x.is_empty()).map(|x| Spread::of(&x))
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
    /// Target CPU per operation B/A, when both sides' processes were known.
    #[serde(default)]
    pub target_cpu_ratio: Option<Spread>,
    /// Rounds (1-based) left out of the ratios because a side had failed operations.
    #[serde(default)]
    pub rounds_left_out: Vec<usize>,
}

/// Failed operations of a run.
fn failed_ops(r: &RunResult) -> u64 {
    r.ops.iter().map(|o| o.errors).sum()
}

/// Failed operations of a run, and its most frequent error.
fn failures(r: &RunResult) -> (u64, Option<&str>) {
    let n = failed_ops(r);
    let top = r
        .ops
        .iter()
        .flat_map(|o| o.error_distribution.iter())
        .max_by_key(|(_, c)| **c)
        .map(|(e, _)| e.as_str());
    (n, top)
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
    Ok(assemble(&a.label, &b.label, out))
}

/// The comparison of finished rounds: ratios over the rounds without failed operations.
fn assemble(a: &str, b: &str, out: Vec<(RunResult, RunResult)>) -> Comparison {
    let mut rounds_left_out: Vec<usize> = out
        .iter()
        .enumerate()
        .filter(|(_, (ra, rb))| failed_ops(ra) + failed_ops(rb) > 0)
        .map(|(i, _)| i + 1)
        .collect();
    if rounds_left_out.len() == out.len() {
        rounds_left_out.clear();
    }
    let counted = || {
        out.iter()
            .enumerate()
            .filter(|(i, _)| !rounds_left_out.contains(&(i + 1)))
            .map(|(_, r)| r)
    };
    let names: Vec<String> = out[0].0.ops.iter().map(|o| o.name.clone()).collect();
    let ratios = names
        .into_iter()
        .map(|name| {
            let mut tput = Vec::new();
            let mut p99 = Vec::new();
            let mut p50 = Vec::new();
            for (ra, rb) in counted() {
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
    let target_cpu_ratio = cpu_ratio(counted());
    Comparison {
        a: a.to_string(),
        b: b.to_string(),
        rounds: out,
        ratios,
        target_cpu_ratio,
        rounds_left_out,
    }
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
        let cpu = |r: &RunResult| {
            r.cpu
                .target_cpu_us_per_op
                .map_or_else(|| "-".to_string(), |c| format!("{c:.1}"))
        };
        if self.target_cpu_ratio.is_some() {
            let _ = writeln!(
                s,
                "\n{:<7} {:>16} {:>16}",
                "round", "A server us/op", "B server us/op"
            );
            for (i, (ra, rb)) in self.rounds.iter().enumerate() {
                let _ = writeln!(s, "{:<7} {:>16} {:>16}", i + 1, cpu(ra), cpu(rb));
            }
        }
        let mut any_failures = false;
        for (i, (ra, rb)) in self.rounds.iter().enumerate() {
            for (side, r) in [("A", ra), ("B", rb)] {
                if let (n @ 1.., Some(top)) = failures(r) {
                    any_failures = true;
                    let _ = writeln!(
                        s,
                        "round {}: {side} had {n} failed operations (most: {top})",
                        i + 1
                    );
                }
            }
        }
        let counted = self.rounds.len() - self.rounds_left_out.len();
        if !self.rounds_left_out.is_empty() {
            let _ = writeln!(
                s,
                "rounds left out of the ratios (failed operations): {:?}",
                self.rounds_left_out
            );
        } else if any_failures {
            let _ = writeln!(
                s,
                "every round had failed operations: the ratios count them all"
            );
        }
        let _ = writeln!(
            s,
            "\nRatios B/A over {counted} round(s): mean [min .. max] ± stddev"
        );
        let f = |x: &Spread| {
            format!(
                "{:.3} [{:.3} .. {:.3}] ± {:.3}",
                x.mean, x.min, x.max, x.stddev
            )
        };
        if let Some(c) = &self.target_cpu_ratio {
            let _ = writeln!(s, "  {:<16} {}", "server CPU/op", f(c));
        }
        for r in &self.ratios {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A put run at `rps` with `errors` failed operations and `cpu_us` server CPU per op.
    fn run(rps: f64, errors: u64, cpu_us: f64) -> RunResult {
        use std::time::{Duration, Instant};
        let start = Instant::now();
        let rec = crate::stats::Recorder::new("put", start);
        for ms in 1..=10u64 {
            rec.record(ms as usize, start, Duration::from_millis(ms), Ok(()));
        }
        let mut op = rec.summarize(Duration::from_secs(1));
        op.requests_per_s = rps;
        op.errors = errors;
        if errors > 0 {
            op.error_distribution
                .insert("ResourceExhausted: database space exceeded".into(), errors);
        }
        crate::result::sample_run(vec![op], Some(cpu_us))
    }

    #[test]
    fn rounds_with_failures_are_left_out_of_the_ratios_and_named() {
        let c = assemble(
            "a",
            "b",
            vec![
                (run(100.0, 0, 10.0), run(200.0, 0, 20.0)),
                (run(100.0, 5, 10.0), run(50.0, 0, 90.0)),
            ],
        );
        assert_eq!(c.rounds_left_out, [2]);
        assert!((c.ratios[0].throughput_ratio.mean - 2.0).abs() < 1e-9);
        let cpu = c.target_cpu_ratio.as_ref().expect("cpu ratio");
        assert!((cpu.mean - 2.0).abs() < 1e-9);
        let text = c.to_text();
        assert!(
            text.contains("round 2: A had 5 failed operations (most: ResourceExhausted"),
            "{text}"
        );
        assert!(
            text.contains("left out of the ratios (failed operations): [2]"),
            "{text}"
        );
        assert!(text.contains("over 1 round(s)"), "{text}");
        assert!(text.contains("server CPU/op"), "{text}");
    }

    #[test]
    fn when_every_round_failed_all_are_counted_and_it_is_said() {
        let c = assemble("a", "b", vec![(run(100.0, 1, 10.0), run(300.0, 0, 10.0))]);
        assert!(c.rounds_left_out.is_empty());
        assert!((c.ratios[0].throughput_ratio.mean - 3.0).abs() < 1e-9);
        assert!(c.to_text().contains("every round had failed operations"));
    }
}
