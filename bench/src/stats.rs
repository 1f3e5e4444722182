//! Latency recording and the figures a run reports.
//!
//! A [`Recorder`] is shared by every client task of one measured operation kind.
//! It keeps an HDR histogram of successful latencies (microseconds, 3 significant
//! digits, so a percentile is within 0.1 % of the truth), one coarser histogram per
//! second of the run for the plots over time, and the error distribution. It is
//! sharded by client so that a thousand clients do not queue on one lock.
//!
//! [`Recorder::summarize`] turns it into an [`OpSummary`]: etcd's benchmark figures
//! (Total, Slowest, Fastest, Average, Stddev, Requests/sec, a 10-bucket histogram,
//! percentiles up to 99.9, errors) plus the serialized HDR histogram.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency a histogram holds: one hour. Longer ones are clamped to it.
pub const LATENCY_MAX_US: u64 = 3_600_000_000;
/// Significant digits of the run-wide histogram.
const SIG_FIGS: u8 = 3;
/// Significant digits of the per-second histograms (plots only).
const TIMELINE_SIG_FIGS: u8 = 2;
/// Lock shards per recorder.
const SHARDS: usize = 16;
/// Seconds of timeline kept; later seconds are folded into the last one.
pub const TIMELINE_MAX_SECS: usize = 3600;
/// The percentiles etcd's benchmark prints, in percent.
pub const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];
/// Buckets of the printed response-time histogram.
const HISTOGRAM_BUCKETS: usize = 10;
/// Most points of a plotted CDF.
const CDF_POINTS_MAX: usize = 400;
/// Distinct error messages kept; others are counted under one line.
const ERROR_KINDS_MAX: usize = 64;

fn new_histogram(sig: u8) -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, LATENCY_MAX_US, sig).expect("valid histogram bounds")
}

struct Shard {
    hist: Histogram<u64>,
    timeline: Vec<Option<Histogram<u64>>>,
    timeline_errors: Vec<u64>,
    errors: HashMap<String, u64>,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            hist: new_histogram(SIG_FIGS),
            timeline: Vec::new(),
            timeline_errors: Vec::new(),
            errors: HashMap::new(),
        }
    }
}

/// Collects the latencies and errors of one operation kind during one run.
pub struct Recorder {
    name: String,
    start: Instant,
    shards: Vec<Mutex<Shard>>,
    done: AtomicU64,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("name", &self.name)
            .field("done", &self.done())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Recorder {
    /// A recorder named `name` (the operation kind, e.g. `put`) whose timeline starts at `start`.
    pub fn new(name: impl Into<String>, start: Instant) -> Recorder {
        Recorder {
            name: name.into(),
            start,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
            done: AtomicU64::new(0),
        }
    }

    /// The operation kind.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Operations recorded so far, failed ones included.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Records one operation that completed at `at` after `latency` (measured from its
    /// intended start in open loop). `shard` spreads writers; pass the client index.
    pub fn record(
        &self,
        shard: usize,
        at: Instant,
        latency: Duration,
        result: std::result::Result<(), String>,
    ) {
        let sec = (at.saturating_duration_since(self.start).as_secs() as usize)
            .min(TIMELINE_MAX_SECS - 1);
        let mut s = lock(&self.shards[shard % SHARDS]);
        match result {
            Ok(()) => {
                let us = (latency.as_micros() as u64).clamp(1, LATENCY_MAX_US);
                s.hist.saturating_record(us);
                if s.timeline.len() <= sec {
                    s.timeline.resize_with(sec + 1, || None);
                }
                s.timeline[sec]
                    .get_or_insert_with(|| new_histogram(TIMELINE_SIG_FIGS))
                    .saturating_record(us);
            }
            Err(e) => {
                if s.timeline_errors.len() <= sec {
                    s.timeline_errors.resize(sec + 1, 0);
                }
                s.timeline_errors[sec] += 1;
                let kinds = s.errors.len();
                let key = if kinds >= ERROR_KINDS_MAX && !s.errors.contains_key(&e) {
                    "(other errors)".to_string()
                } else {
                    e
                };
                *s.errors.entry(key).or_insert(0) += 1;
            }
        }
        drop(s);
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// The figures of this recorder over a run that took `elapsed`.
    pub fn summarize(&self, elapsed: Duration) -> OpSummary {
        let mut hist = new_histogram(SIG_FIGS);
        let mut timeline: Vec<Option<Histogram<u64>>> = Vec::new();
        let mut timeline_errors: Vec<u64> = Vec::new();
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        for shard in &self.shards {
            let s = lock(shard);
            // Same bounds on both sides: adding cannot fail.
            let _ = hist.add(&s.hist);
            if timeline.len() < s.timeline.len() {
                timeline.resize_with(s.timeline.len(), || None);
            }
            for (i, h) in s.timeline.iter().enumerate() {
                if let Some(h) = h {
                    let _ = timeline[i]
                        .get_or_insert_with(|| new_histogram(TIMELINE_SIG_FIGS))
                        .add(h);
                }
            }
            if timeline_errors.len() < s.timeline_errors.len() {
                timeline_errors.resize(s.timeline_errors.len(), 0);
            }
            for (i, e) in s.timeline_errors.iter().enumerate() {
                timeline_errors[i] += e;
            }
            for (k, v) in &s.errors {
                *errors.entry(k.clone()).or_insert(0) += v;
            }
        }
        let seconds = timeline.len().max(timeline_errors.len());
        let timeline = (0..seconds)
            .map(|i| {
                let h = timeline.get(i).and_then(Option::as_ref);
                TimelinePoint {
                    second: i as u64,
                    ops: h.map_or(0, Histogram::len),
                    errors: timeline_errors.get(i).copied().unwrap_or(0),
                    latency_ms_p50: h.map_or(0.0, |h| us_to_ms(h.value_at_quantile(0.5))),
                    latency_ms_p90: h.map_or(0.0, |h| us_to_ms(h.value_at_quantile(0.9))),
                    latency_ms_p99: h.map_or(0.0, |h| us_to_ms(h.value_at_quantile(0.99))),
                }
            })
            .collect();
        OpSummary::from_histogram(&self.name, &hist, elapsed, errors, timeline)
    }
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn us_to_s(us: u64) -> f64 {
    us as f64 / 1e6
}

/// One bar of the response-time histogram: how many operations took at most `upper_s`
/// (and more than the previous bucket's bound).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Upper bound, seconds.
    pub upper_s: f64,
    /// Operations in this bucket.
    pub count: u64,
}

/// One percentile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    /// In percent (99.9 is p99.9).
    pub percent: f64,
    /// Latency, seconds.
    pub latency_s: f64,
}

/// One second of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the run started.
    pub second: u64,
    /// Successful operations completed in this second.
    pub ops: u64,
    /// Failed operations completed in this second.
    pub errors: u64,
    /// Median latency of this second's operations.
    pub latency_ms_p50: f64,
    /// p90 latency of this second's operations.
    pub latency_ms_p90: f64,
    /// p99 latency of this second's operations.
    pub latency_ms_p99: f64,
}

/// The figures of one operation kind, as etcd's benchmark prints them, plus the HDR
/// histogram and the per-second timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpSummary {
    /// Operation kind (`put`, `range`, `read`, `write`, `watch-create`, ...).
    pub name: String,
    /// Successful operations.
    pub count: u64,
    /// Failed operations.
    pub errors: u64,
    /// Wall time of the run, seconds.
    pub total_s: f64,
    /// Slowest successful operation, seconds.
    pub slowest_s: f64,
    /// Fastest successful operation, seconds.
    pub fastest_s: f64,
    /// Mean latency, seconds.
    pub average_s: f64,
    /// Standard deviation of the latency, seconds.
    pub stddev_s: f64,
    /// Successful operations per second of wall time.
    pub requests_per_s: f64,
    /// 10%, 25%, 50%, 75%, 90%, 95%, 99%, 99.9%.
    pub percentiles: Vec<Percentile>,
    /// Ten equal-width buckets from fastest to slowest.
    pub histogram: Vec<Bucket>,
    /// Error message → count.
    pub error_distribution: BTreeMap<String, u64>,
    /// The latency histogram (microseconds) in HdrHistogram's V2 encoding, hex.
    pub hdr_histogram_v2_hex: String,
    /// Per-second throughput and latency.
    pub timeline: Vec<TimelinePoint>,
}

impl OpSummary {
    fn from_histogram(
        name: &str,
        hist: &Histogram<u64>,
        elapsed: Duration,
        error_distribution: BTreeMap<String, u64>,
        timeline: Vec<TimelinePoint>,
    ) -> OpSummary {
        let count = hist.len();
        let total_s = elapsed.as_secs_f64();
        let (slowest_us, fastest_us) = if count == 0 {
            (0, 0)
        } else {
            (hist.max(), hist.min())
        };
        let percentiles = PERCENTILES
            .iter()
            .map(|p| Percentile {
                percent: *p,
                latency_s: if count == 0 {
                    0.0
                } else {
                    us_to_s(hist.value_at_percentile(*p))
                },
            })
            .collect();
        let histogram = buckets(hist, fastest_us, slowest_us);
        let mut bytes = Vec::new();
        // Serializing into a Vec cannot fail for an in-range histogram.
        let _ = V2Serializer::new().serialize(hist, &mut bytes);
        OpSummary {
            name: name.to_string(),
            count,
            errors: error_distribution.values().sum(),
            total_s,
            slowest_s: us_to_s(slowest_us),
            fastest_s: us_to_s(fastest_us),
            average_s: if count == 0 { 0.0 } else { hist.mean() / 1e6 },
            stddev_s: if count == 0 { 0.0 } else { hist.stdev() / 1e6 },
            requests_per_s: if total_s > 0.0 {
                count as f64 / total_s
            } else {
                0.0
            },
            percentiles,
            histogram,
            error_distribution,
            hdr_histogram_v2_hex: hex::encode(bytes),
            timeline,
        }
    }

    /// Decodes [`OpSummary::hdr_histogram_v2_hex`] back into a histogram (microseconds).
    pub fn hdr_histogram(&self) -> Option<Histogram<u64>> {
        let bytes = hex::decode(&self.hdr_histogram_v2_hex).ok()?;
        Deserializer::new()
            .deserialize(&mut std::io::Cursor::new(bytes))
            .ok()
    }

    /// The latency at `percent` (e.g. 99.0), seconds; 0 when nothing succeeded.
    pub fn percentile_s(&self, percent: f64) -> f64 {
        if let Some(p) = self
            .percentiles
            .iter()
            .find(|p| (p.percent - percent).abs() < 1e-9)
        {
            return p.latency_s;
        }
        self.hdr_histogram()
            .filter(|h| !h.is_empty())
            .map_or(0.0, |h| us_to_s(h.value_at_percentile(percent)))
    }

    /// Points of the latency CDF: (latency in ms, fraction of operations at or below it).
    pub fn cdf_points(&self) -> Vec<(f64, f64)> {
        let Some(h) = self.hdr_histogram().filter(|h| !h.is_empty()) else {
            return Vec::new();
        };
        let n = h.len() as f64;
        let mut below = 0u64;
        let mut out = Vec::new();
        for v in h.iter_recorded() {
            below += v.count_at_value();
            out.push((us_to_ms(v.value_iterated_to()), below as f64 / n));
        }
        // A 3-digit histogram has thousands of distinct values; a plot needs a few hundred.
        let step = out.len().div_ceil(CDF_POINTS_MAX).max(1);
        if step > 1 {
            let last = out[out.len() - 1];
            out = out.into_iter().step_by(step).collect();
            out.push(last);
        }
        out
    }

    /// Throughput per second for plots: the last, partial second is scaled to a rate.
    pub fn throughput_points(&self) -> Vec<(f64, f64)> {
        self.timeline
            .iter()
            .filter_map(|t| {
                let width = (self.total_s - t.second as f64).min(1.0);
                (width >= 0.25).then(|| (t.second as f64, t.ops as f64 / width))
            })
            .collect()
    }
}

fn buckets(hist: &Histogram<u64>, fastest_us: u64, slowest_us: u64) -> Vec<Bucket> {
    if hist.is_empty() {
        return Vec::new();
    }
    let width = ((slowest_us - fastest_us) as f64 / HISTOGRAM_BUCKETS as f64).max(1.0);
    let mut counts = [0u64; HISTOGRAM_BUCKETS];
    for v in hist.iter_recorded() {
        let x = hist
            .highest_equivalent(v.value_iterated_to())
            .min(slowest_us);
        let i =
            (((x.saturating_sub(fastest_us)) as f64 / width) as usize).min(HISTOGRAM_BUCKETS - 1);
        counts[i] += v.count_at_value();
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, c)| Bucket {
            upper_s: us_to_s(fastest_us) + width * (i + 1) as f64 / 1e6,
            count: *c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_figures_and_roundtrip() {
        let start = Instant::now();
        let r = Recorder::new("put", start);
        for ms in 1..=100u64 {
            r.record(ms as usize, start, Duration::from_millis(ms), Ok(()));
        }
        r.record(0, start, Duration::ZERO, Err("Unavailable: boom".into()));
        let s = r.summarize(Duration::from_secs(2));
        assert_eq!(s.count, 100);
        assert_eq!(s.errors, 1);
        assert_eq!(s.error_distribution["Unavailable: boom"], 1);
        assert!((s.requests_per_s - 50.0).abs() < 1e-9);
        assert!((s.percentile_s(50.0) - 0.050).abs() < 0.001);
        assert!((s.slowest_s - 0.100).abs() < 0.001);
        assert!((s.fastest_s - 0.001).abs() < 0.0001);
        assert_eq!(s.histogram.iter().map(|b| b.count).sum::<u64>(), 100);
        let h = s.hdr_histogram().expect("decodes");
        assert_eq!(h.len(), 100);
        assert_eq!(s.timeline.len(), 1);
        assert_eq!(s.timeline[0].ops, 100);
        let cdf = s.cdf_points();
        assert!((cdf.last().unwrap().1 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn empty_recorder_summarizes_to_zeros() {
        let s = Recorder::new("x", Instant::now()).summarize(Duration::from_secs(1));
        assert_eq!(s.count, 0);
        assert!(s.histogram.is_empty());
        assert_eq!(s.percentile_s(99.0), 0.0);
    }
}
