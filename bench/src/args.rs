//! The flags of `gauntlet bench`, named and defaulted as etcd's benchmark tool names them.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{ensure, Result};
use crate::keys::{MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// Largest `--clients`.
pub const MAX_CLIENTS: usize = 100_000;
/// Largest `--total` (a bound on every run besides `--timeout`).
pub const MAX_TOTAL: u64 = 1_000_000_000;
/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;
/// Most watchers a watch workload creates.
pub const MAX_WATCHERS: usize = 1_000_000;

/// Parses durations: `500ms`, `2s`, `1m`, `1h`, or plain seconds; `0` means off.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 2s, 500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unit must be ms, s, m or h")),
    };
    if !(0.0..=7.0 * 86_400.0).contains(&secs) {
        return Err(format!("`{s}` must be between 0 and a week"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Output format of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// etcd's text report.
    Simple,
    /// The full result as JSON (figures, HDR histogram, timeline).
    Json,
}

/// Read consistency, etcd's `--consistency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Consistency {
    /// Linearizable.
    L,
    /// Serializable.
    S,
}

/// Flags shared by every bench workload.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchOpts {
    /// Total number of gRPC connections.
    #[arg(long, global = true, default_value_t = 1)]
    pub conns: usize,
    /// Total number of concurrent clients.
    #[arg(long, global = true, default_value_t = 1)]
    pub clients: usize,
    /// Send every request to the leader's endpoint.
    #[arg(long, global = true)]
    pub target_leader: bool,
    /// Hard cap on the duration of the run (a run stops here even if --total is not reached).
    #[arg(long, global = true, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Seed of keys and values; the same seed and flags make the same requests.
    #[arg(long, global = true, default_value_t = 1)]
    pub seed: u64,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Simple)]
    pub format: Format,
    /// Also save the JSON result here.
    #[arg(long, global = true)]
    pub out: Option<PathBuf>,
    /// Write SVG plots and an HTML page into this directory.
    #[arg(long, global = true)]
    pub plots: Option<PathBuf>,
    /// Compare with this saved JSON result; exit 1 on a regression beyond --tolerance.
    #[arg(long, global = true)]
    pub baseline: Option<PathBuf>,
    /// Allowed throughput drop and p99 rise against --baseline, percent.
    #[arg(long, global = true, default_value_t = 10.0)]
    pub tolerance: f64,
}

impl BenchOpts {
    /// Checks the shared flags.
    pub fn validate(&self) -> Result<()> {
        ensure(self.clients >= 1, || "--clients must be at least 1".into())?;
        ensure(self.clients <= MAX_CLIENTS, || {
            format!(
                "--clients must be at most {MAX_CLIENTS}, got {}",
                self.clients
            )
        })?;
        ensure(self.conns >= 1, || "--conns must be at least 1".into())?;
        ensure(!self.timeout.is_zero(), || {
            "--timeout must be positive".into()
        })?;
        ensure(self.tolerance.is_finite() && self.tolerance >= 0.0, || {
            format!(
                "--tolerance must be a non-negative percentage, got {}",
                self.tolerance
            )
        })
    }
}

pub(crate) fn check_total(flag: &str, n: u64) -> Result<()> {
    ensure((1..=MAX_TOTAL).contains(&n), || {
        format!("{flag} must be between 1 and {MAX_TOTAL}, got {n}")
    })
}

pub(crate) fn check_rate(flag: &str, r: f64) -> Result<()> {
    ensure(r.is_finite() && r >= 0.0, || {
        format!("{flag} must be a non-negative number of requests per second (0 = as fast as possible), got {r}")
    })
}

pub(crate) fn check_key_size(n: usize) -> Result<()> {
    ensure((1..=MAX_KEY_BYTES).contains(&n), || {
        format!("--key-size must be between 1 and {MAX_KEY_BYTES} bytes, got {n}")
    })
}

pub(crate) fn check_val_size(n: usize) -> Result<()> {
    ensure(n <= MAX_VALUE_BYTES, || {
        format!("--val-size must be at most {MAX_VALUE_BYTES} bytes (etcd's default request limit), got {n}")
    })
}

pub(crate) fn check_space(n: u64) -> Result<()> {
    ensure(n >= 1, || "--key-space-size must be at least 1".into())
}

/// `put`: write keys.
#[derive(clap::Args, Debug, Clone)]
pub struct PutArgs {
    /// Key size of put request.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size of put request.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Total number of put requests.
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
    /// Maximum puts per second (0 is no limit).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Maximum possible keys.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Use sequential keys.
    #[arg(long)]
    pub sequential_keys: bool,
    /// Interval to compact the database (0 is off, e.g. 5m).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub compact_interval: Duration,
    /// Delta between the current revision and the compact revision.
    #[arg(long, default_value_t = 1000)]
    pub compact_index_delta: i64,
}

/// `range KEY [END]`: read keys.
#[derive(clap::Args, Debug, Clone)]
pub struct RangeArgs {
    /// Key to read.
    #[arg(id = "range_key", value_name = "KEY")]
    pub key: String,
    /// End of the range (exclusive).
    pub end: Option<String>,
    /// Total number of range requests.
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
    /// Maximum range requests per second (0 is no limit).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Linearizable (l) or serializable (s).
    #[arg(long, value_enum, default_value_t = Consistency::L)]
    pub consistency: Consistency,
    /// Only ask for the count.
    #[arg(long)]
    pub count_only: bool,
}

/// `txn-put`: transactions of puts.
#[derive(clap::Args, Debug, Clone)]
pub struct TxnPutArgs {
    /// Key size of txn put.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size of txn put.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Number of puts per txn.
    #[arg(long, default_value_t = 1)]
    pub txn_ops: usize,
    /// Total number of txn requests.
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
    /// Maximum txns per second (0 is no limit).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Maximum possible keys.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
}

/// `txn-mixed KEY [END]`: a mix of read and write transactions.
#[derive(clap::Args, Debug, Clone)]
pub struct TxnMixedArgs {
    /// Key prefix of the writes and start of the reads' range.
    #[arg(id = "txn_key", value_name = "KEY")]
    pub key: String,
    /// End of the reads' range (every key under KEY when absent).
    pub end: Option<String>,
    /// Read/write ops ratio.
    #[arg(long, default_value_t = 1.0)]
    pub rw_ratio: f64,
    /// Total number of txn requests.
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
    /// Maximum txns per second (0 is no limit).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Key size of txn put.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size of txn put.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Maximum possible keys.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Linearizable (l) or serializable (s) reads.
    #[arg(long, value_enum, default_value_t = Consistency::L)]
    pub consistency: Consistency,
    /// Maximum number of keys a read returns.
    #[arg(long, default_value_t = 1000)]
    pub limit: i64,
}

/// `watch`: watcher creation, then puts and event delivery.
#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    /// Watch streams.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Watchers per stream.
    #[arg(long, default_value_t = 100)]
    pub watch_per_stream: usize,
    /// Puts after the watchers exist.
    #[arg(long, default_value_t = 1000)]
    pub put_total: u64,
    /// Puts per second.
    #[arg(long, default_value_t = 100.0)]
    pub put_rate: f64,
    /// Key size of the watched keys.
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Number of watched keys.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Value size of the puts (at least 16: the send time is stamped in the value).
    #[arg(long, default_value_t = 32)]
    pub val_size: usize,
}

/// `watch-latency`: delivery latency of events to many watchers of one key.
#[derive(clap::Args, Debug, Clone)]
pub struct WatchLatencyArgs {
    /// Watch streams.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Watchers per stream.
    #[arg(long, default_value_t = 10)]
    pub watchers_per_stream: usize,
    /// Puts.
    #[arg(long, default_value_t = 1000)]
    pub put_total: u64,
    /// Puts per second.
    #[arg(long, default_value_t = 100.0)]
    pub put_rate: f64,
    /// Key size.
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Value size (at least 16: the send time is stamped in the value).
    #[arg(long, default_value_t = 32)]
    pub val_size: usize,
}

/// `watch-get`: range latency while many watchers exist.
#[derive(clap::Args, Debug, Clone)]
pub struct WatchGetArgs {
    /// Watchers to create.
    #[arg(long, default_value_t = 10000)]
    pub watchers: usize,
    /// Watch streams they are spread over.
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// Range requests.
    #[arg(long, default_value_t = 100)]
    pub get_total: u64,
}

/// `lease-keepalive`: keep-alive round trips.
#[derive(clap::Args, Debug, Clone)]
pub struct LeaseKeepaliveArgs {
    /// Total number of keep-alive requests.
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
}

/// A workload and its flags.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Workload {
    /// Benchmark put.
    Put(PutArgs),
    /// Benchmark range.
    Range(RangeArgs),
    /// Benchmark txn with puts.
    TxnPut(TxnPutArgs),
    /// Benchmark a mix of read and write txns.
    TxnMixed(TxnMixedArgs),
    /// Benchmark watch creation and event delivery.
    Watch(WatchArgs),
    /// Benchmark watch event delivery latency.
    WatchLatency(WatchLatencyArgs),
    /// Benchmark range latency while many watchers exist.
    WatchGet(WatchGetArgs),
    /// Benchmark lease keep-alive.
    LeaseKeepalive(LeaseKeepaliveArgs),
    /// Kubernetes-shaped load: hollow nodes, pod churn, events, lists, watchers.
    Kube(crate::kube::KubeArgs),
}

impl Workload {
    /// The subcommand name.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Put(_) => "put",
            Workload::Range(_) => "range",
            Workload::TxnPut(_) => "txn-put",
            Workload::TxnMixed(_) => "txn-mixed",
            Workload::Watch(_) => "watch",
            Workload::WatchLatency(_) => "watch-latency",
            Workload::WatchGet(_) => "watch-get",
            Workload::LeaseKeepalive(_) => "lease-keepalive",
            Workload::Kube(_) => "kube",
        }
    }

    /// Checks the workload's flags; every message names the flag.
    pub fn validate(&self) -> Result<()> {
        match self {
            Workload::Put(a) => {
                check_key_size(a.key_size)?;
                check_val_size(a.val_size)?;
                check_total("--total", a.total)?;
                check_rate("--rate", a.rate)?;
                check_space(a.key_space_size)?;
                ensure(a.compact_index_delta >= 0, || {
                    "--compact-index-delta must not be negative".into()
                })
            }
            Workload::Range(a) => {
                ensure(!a.key.is_empty(), || "range: KEY must not be empty".into())?;
                check_total("--total", a.total)?;
                check_rate("--rate", a.rate)
            }
            Workload::TxnPut(a) => {
                check_key_size(a.key_size)?;
                check_val_size(a.val_size)?;
                check_total("--total", a.total)?;
                check_rate("--rate", a.rate)?;
                check_space(a.key_space_size)?;
                ensure((1..=MAX_TXN_OPS).contains(&a.txn_ops), || {
                    format!(
                        "--txn-ops must be between 1 and {MAX_TXN_OPS}, got {}",
                        a.txn_ops
                    )
                })?;
                ensure(a.key_space_size >= a.txn_ops as u64, || {
                    format!(
                        "--key-space-size ({}) must be at least --txn-ops ({}): a txn may not put one key twice",
                        a.key_space_size, a.txn_ops
                    )
                })?;
                ensure(
                    a.val_size.saturating_mul(a.txn_ops) <= MAX_VALUE_BYTES,
                    || format!("--val-size × --txn-ops exceeds {MAX_VALUE_BYTES} bytes"),
                )
            }
            Workload::TxnMixed(a) => {
                ensure(!a.key.is_empty(), || {
                    "txn-mixed: KEY must not be empty".into()
                })?;
                check_key_size(a.key_size)?;
                check_val_size(a.val_size)?;
                check_total("--total", a.total)?;
                check_rate("--rate", a.rate)?;
                check_space(a.key_space_size)?;
                ensure(a.rw_ratio.is_finite() && a.rw_ratio >= 0.0, || {
                    format!(
                        "--rw-ratio must be a non-negative number, got {}",
                        a.rw_ratio
                    )
                })?;
                ensure(a.limit >= 0, || "--limit must not be negative".into())
            }
            Workload::Watch(a) => {
                watchers_ok(
                    "--streams",
                    a.streams,
                    "--watch-per-stream",
                    a.watch_per_stream,
                )?;
                check_total("--put-total", a.put_total)?;
                check_rate("--put-rate", a.put_rate)?;
                check_key_size(a.key_size)?;
                check_val_size(a.val_size)?;
                check_space(a.key_space_size)
            }
            Workload::WatchLatency(a) => {
                watchers_ok(
                    "--streams",
                    a.streams,
                    "--watchers-per-stream",
                    a.watchers_per_stream,
                )?;
                check_total("--put-total", a.put_total)?;
                check_rate("--put-rate", a.put_rate)?;
                check_key_size(a.key_size)?;
                check_val_size(a.val_size)
            }
            Workload::WatchGet(a) => {
                ensure(a.streams >= 1, || "--streams must be at least 1".into())?;
                ensure((1..=MAX_WATCHERS).contains(&a.watchers), || {
                    format!("--watchers must be between 1 and {MAX_WATCHERS}")
                })?;
                check_total("--get-total", a.get_total)
            }
            Workload::LeaseKeepalive(a) => check_total("--total", a.total),
            Workload::Kube(a) => a.validate(),
        }
    }
}

fn watchers_ok(sf: &str, streams: usize, wf: &str, per: usize) -> Result<()> {
    ensure(streams >= 1, || format!("{sf} must be at least 1"))?;
    ensure(per >= 1, || format!("{wf} must be at least 1"))?;
    ensure(streams.saturating_mul(per) <= MAX_WATCHERS, || {
        format!("{sf} × {wf} must be at most {MAX_WATCHERS}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        for bad in ["", "x", "-1s", "3d", "9999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
