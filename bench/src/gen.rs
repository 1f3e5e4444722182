//! The load generator: `--clients` tasks issuing operations, closed or open loop.
//!
//! **Closed loop** (`rate == 0`): each client issues its next operation as soon as the
//! previous one answered. The latency of an operation is its own round trip.
//!
//! **Open loop** (`rate > 0`): operation `i` is *due* at `start + i / rate`, whatever
//! happened before. A client waits until its next operation is due and measures
//! latency from that due time, not from when it finally sent it. A server that stalls
//! for a second therefore shows a second of latency on every operation that fell due
//! during the stall, instead of one slow operation followed by fast ones: the
//! correction for *coordinated omission*. When all clients are busy, due operations
//! queue; pick `--clients` large enough for the rate times the expected latency.
//!
//! Operation indices come from one shared counter, so exactly `total` operations are
//! issued, however the clients interleave. Every run also stops at a hard deadline
//! (`--timeout`): clients issue nothing after it, and operations still in flight are
//! abandoned one command timeout later.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cpu;
use crate::stats::Recorder;

/// How much load to offer, and for how long at most.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent client tasks.
    pub clients: usize,
    /// Operations to issue in all.
    pub total: u64,
    /// Operations per second in open loop; 0 for closed loop.
    pub rate: f64,
    /// Hard cap on the run's duration.
    pub timeout: Duration,
    /// Time allowed for in-flight operations after the deadline.
    pub grace: Duration,
    /// Show a progress bar (it appears only once the run has lasted a couple of seconds).
    pub progress: bool,
}

/// What [`drive`] observed, besides what went into the recorder.
#[derive(Debug, Clone)]
pub struct DriveOutcome {
    /// Wall time from the first operation to the last completion.
    pub elapsed: Duration,
    /// Operations issued.
    pub issued: u64,
    /// Whether the hard deadline cut the run short.
    pub timed_out: bool,
}

/// Runs `op(i, client)` for `i` in `0..spec.total` on `spec.clients` tasks, recording
/// each result and latency in `rec`. `op` returns `Err(message)` for a failed operation.
pub async fn drive<F, Fut>(spec: &LoadSpec, rec: Arc<Recorder>, op: F) -> DriveOutcome
where
    F: Fn(u64, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + spec.timeout;
    let stop = Arc::new(AtomicBool::new(false));
    let cut = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicU64::new(0));
    let bar = progress::Bar::start(
        rec.name(),
        spec.total,
        Arc::clone(&rec),
        start,
        spec.progress,
    );
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..spec.clients {
        let (op, next, rec, stop, cut, issued) = (
            Arc::clone(&op),
            Arc::clone(&next),
            Arc::clone(&rec),
            Arc::clone(&stop),
            Arc::clone(&cut),
            Arc::clone(&issued),
        );
        let (total, rate) = (spec.total, spec.rate);
        tasks.spawn(async move {
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let intended = if rate > 0.0 {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    if due >= deadline {
                        cut.store(true, Ordering::Relaxed);
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    due
                } else {
                    Instant::now()
                };
                if Instant::now() >= deadline {
                    cut.store(true, Ordering::Relaxed);
                    break;
                }
                issued.fetch_add(1, Ordering::Relaxed);
                let result = op(i, client).await;
                let end = Instant::now();
                rec.record(client, end, end.saturating_duration_since(intended), result);
            }
        });
    }
    let all = async { while tasks.join_next().await.is_some() {} };
    let timed_out = tokio::time::timeout_at((deadline + spec.grace).into(), all)
        .await
        .is_err();
    stop.store(true, Ordering::Relaxed);
    tasks.abort_all();
    let elapsed = start.elapsed().min(spec.timeout + spec.grace);
    bar.finish();
    let issued = issued.load(Ordering::Relaxed);
    DriveOutcome {
        elapsed,
        issued,
        timed_out: timed_out || cut.load(Ordering::Relaxed),
    }
}

/// CPU the generator (and, when known, the target) used during a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuReport {
    /// This process's user + system CPU during the run, seconds.
    pub generator_cpu_s: f64,
    /// Generator CPU per completed operation, microseconds.
    pub generator_cpu_us_per_op: f64,
    /// Target processes' CPU during the run, seconds (when the harness launched them).
    pub target_cpu_s: Option<f64>,
    /// Target CPU per completed operation, microseconds (all members together: what the
    /// cluster spends on one operation).
    #[serde(default)]
    pub target_cpu_us_per_op: Option<f64>,
    /// CPUs available to this process.
    pub cores: usize,
    /// Generator CPU as a fraction of all cores over the run (1.0 = every core busy).
    pub generator_share: f64,
    /// `generator` when the generator used at least [`GENERATOR_BOUND_SHARE`] of the
    /// machine (or more CPU than the target), else `target`.
    pub bottleneck: String,
}

/// Share of all cores above which the generator counts as the bottleneck.
pub const GENERATOR_BOUND_SHARE: f64 = 0.8;

/// Measures CPU between [`CpuMeter::start`] and [`CpuMeter::finish`].
#[derive(Debug)]
pub struct CpuMeter {
    own: Option<Duration>,
    target_pids: Vec<u32>,
    target: Option<Duration>,
    wall: Instant,
}

fn target_cpu(pids: &[u32]) -> Option<Duration> {
    if pids.is_empty() {
        return None;
    }
    pids.iter()
        .map(|p| cpu::process_cpu(Some(*p)))
        .sum::<Option<Duration>>()
}

impl CpuMeter {
    /// Starts measuring this process and `target_pids`.
    pub fn start(target_pids: &[u32]) -> CpuMeter {
        CpuMeter {
            own: cpu::process_cpu(None),
            target_pids: target_pids.to_vec(),
            target: target_cpu(target_pids),
            wall: Instant::now(),
        }
    }

    /// The report for `ops` completed operations.
    pub fn finish(&self, ops: u64) -> CpuReport {
        let wall = self.wall.elapsed().as_secs_f64().max(1e-9);
        let own = match (self.own, cpu::process_cpu(None)) {
            (Some(a), Some(b)) => b.saturating_sub(a).as_secs_f64(),
            _ => 0.0,
        };
        let target = match (self.target, target_cpu(&self.target_pids)) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
            _ => None,
        };
        let cores = cpu::cores();
        let share = own / wall / cores as f64;
        let generator_bound =
            share >= GENERATOR_BOUND_SHARE || target.is_some_and(|t| own > t && share > 0.4);
        CpuReport {
            generator_cpu_s: own,
            generator_cpu_us_per_op: if ops == 0 {
                0.0
            } else {
                own * 1e6 / ops as f64
            },
            target_cpu_s: target,
            target_cpu_us_per_op: target.filter(|_| ops > 0).map(|t| t * 1e6 / ops as f64),
            cores,
            generator_share: share,
            bottleneck: if generator_bound {
                "generator"
            } else {
                "target"
            }
            .into(),
        }
    }
}

/// The progress bar: hidden for the first seconds, so short runs print nothing.
mod progress {
    use super::*;
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

    /// Runs shorter than this show no bar.
    const SHOW_AFTER: Duration = Duration::from_secs(2);
    const TICK: Duration = Duration::from_millis(200);

    pub(super) struct Bar {
        ticker: tokio::task::JoinHandle<()>,
        bar: ProgressBar,
    }

    impl Bar {
        pub(super) fn start(
            label: &str,
            total: u64,
            rec: Arc<Recorder>,
            start: Instant,
            visible: bool,
        ) -> Bar {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
            ) {
                bar.set_style(style);
            }
            bar.set_message(label.to_string());
            let b = bar.clone();
            let ticker = tokio::spawn(async move {
                let mut shown = !visible;
                loop {
                    tokio::time::sleep(TICK).await;
                    if !shown && start.elapsed() >= SHOW_AFTER {
                        b.set_draw_target(ProgressDrawTarget::stderr());
                        shown = true;
                    }
                    b.set_position(rec.done());
                }
            });
            Bar { ticker, bar }
        }

        pub(super) fn finish(self) {
            self.ticker.abort();
            self.bar.finish_and_clear();
        }
    }
}

/// A bar for phases that are not driven by [`drive`] (kube profile, setup): shows
/// elapsed time against a known duration after the first seconds.
#[derive(Debug)]
pub struct TimeBar {
    bar: indicatif::ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl TimeBar {
    /// A bar labelled `label` that fills over `duration`.
    pub fn start(label: &str, duration: Duration) -> TimeBar {
        use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
        let secs = duration.as_secs().max(1);
        let bar = ProgressBar::with_draw_target(Some(secs), ProgressDrawTarget::hidden());
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} s")
        {
            bar.set_style(style);
        }
        bar.set_message(label.to_string());
        let b = bar.clone();
        let start = Instant::now();
        let ticker = tokio::spawn(async move {
            let mut shown = false;
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if !shown && start.elapsed() >= Duration::from_secs(2) {
                    b.set_draw_target(ProgressDrawTarget::stderr());
                    shown = true;
                }
                b.set_position(start.elapsed().as_secs().min(secs));
            }
        });
        TimeBar { bar, ticker }
    }

    /// Removes the bar.
    pub fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(clients: usize, total: u64, rate: f64) -> LoadSpec {
        LoadSpec {
            clients,
            total,
            rate,
            timeout: Duration::from_secs(10),
            grace: Duration::from_secs(1),
            progress: false,
        }
    }

    #[tokio::test]
    async fn closed_loop_issues_exactly_total() {
        let rec = Arc::new(Recorder::new("noop", Instant::now()));
        let out = drive(&spec(7, 1000, 0.0), Arc::clone(&rec), |i, _| async move {
            if i % 100 == 0 {
                Err("every hundredth fails".to_string())
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(out.issued, 1000);
        assert!(!out.timed_out);
        let s = rec.summarize(out.elapsed);
        assert_eq!(s.count, 990);
        assert_eq!(s.errors, 10);
    }

    #[tokio::test]
    async fn open_loop_counts_a_stall_against_every_due_operation() {
        // 100 ops/s; the first operation stalls 300 ms on the only client, so the
        // operations due during the stall wait for it and their latency shows it.
        let rec = Arc::new(Recorder::new("stall", Instant::now()));
        let out = drive(&spec(1, 40, 100.0), Arc::clone(&rec), |i, _| async move {
            if i == 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Ok(())
        })
        .await;
        let s = rec.summarize(out.elapsed);
        assert_eq!(s.count, 40);
        // Without the correction only one operation would be slow (p50 ≈ 0).
        assert!(s.percentile_s(50.0) > 0.05, "p50 {}", s.percentile_s(50.0));
    }

    #[tokio::test]
    async fn deadline_bounds_the_run() {
        let rec = Arc::new(Recorder::new("slow", Instant::now()));
        let mut sp = spec(2, 1_000_000, 0.0);
        sp.timeout = Duration::from_millis(200);
        sp.grace = Duration::from_millis(100);
        let t = Instant::now();
        let out = drive(&sp, rec, |_, _| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(())
        })
        .await;
        assert!(out.timed_out);
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
