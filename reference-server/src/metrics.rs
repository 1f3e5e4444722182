//! Prometheus metrics under etcd's names, served at `/metrics` (client URLs and
//! `--listen-metrics-urls`) in Prometheus' text format, through the `prometheus` crate.
//!
//! The same names and types as etcd, so its dashboards and alerts work unchanged:
//! `etcd_server_*` (leader, leader changes, proposals committed/applied/pending/failed),
//! `etcd_disk_*` (WAL fsync and backend commit durations), `etcd_network_peer_round_trip_time_seconds`,
//! `etcd_mvcc_db_total_size_*`, and grpc-go's `grpc_server_started_total` /
//! `grpc_server_handled_total` by method and code. Gauges that mirror the node's status
//! are refreshed when scraped; counters and histograms are updated where things happen.
//! Everything is registered once, in one process-wide [`Metrics`] ([`get`]).
//!
//! A gRPC call counts as handled with the code in its response headers (tonic puts an
//! error there when the handler fails before answering) and as `OK` otherwise; a
//! streaming call counts when its response starts, not when the stream ends.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::node::NodeHandle;

/// Every metric of this process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub has_leader: IntGauge,
    pub is_leader: IntGauge,
    pub is_learner: IntGauge,
    pub leader_changes_seen_total: IntCounter,
    pub proposals_committed_total: IntGauge,
    pub proposals_applied_total: IntGauge,
    pub proposals_pending: IntGauge,
    pub proposals_failed_total: IntCounter,
    pub wal_fsync_duration_seconds: Histogram,
    pub backend_commit_duration_seconds: Histogram,
    pub peer_round_trip_time_seconds: HistogramVec,
    pub db_total_size_in_bytes: IntGauge,
    pub db_total_size_in_use_in_bytes: IntGauge,
    pub current_revision: IntGauge,
    pub compact_revision: IntGauge,
    pub keys_total: IntGauge,
    pub revisions_stored: IntGauge,
    pub watcher_total: IntGauge,
    pub grpc_started_total: IntCounterVec,
    pub grpc_handled_total: IntCounterVec,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
        let g = IntGauge::new(name, help)?;
        registry.register(Box::new(g.clone()))?;
        Ok(g)
    };
    let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
        let c = IntCounter::new(name, help)?;
        registry.register(Box::new(c.clone()))?;
        Ok(c)
    };
    // etcd's disk histograms: 1 ms to about 8 s.
    let disk = |name: &str, help: &str| -> Result<Histogram, prometheus::Error> {
        let h = Histogram::with_opts(
            HistogramOpts::new(name, help).buckets(exponential_buckets(0.001, 2.0, 14)?),
        )?;
        registry.register(Box::new(h.clone()))?;
        Ok(h)
    };
    let rtt = HistogramVec::new(
        HistogramOpts::new(
            "etcd_network_peer_round_trip_time_seconds",
            "Round-Trip-Time histogram between peers",
        )
        .buckets(exponential_buckets(0.0001, 2.0, 16)?),
        &["To"],
    )?;
    registry.register(Box::new(rtt.clone()))?;
    let grpc = ["grpc_type", "grpc_service", "grpc_method"];
    let started = IntCounterVec::new(
        Opts::new(
            "grpc_server_started_total",
            "Total number of RPCs started on the server.",
        ),
        &grpc,
    )?;
    registry.register(Box::new(started.clone()))?;
    let handled = IntCounterVec::new(
        Opts::new(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
        ),
        &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
    )?;
    registry.register(Box::new(handled.clone()))?;
    Ok(Metrics {
        has_leader: gauge(
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
        )?,
        is_leader: gauge(
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        )?,
        is_learner: gauge(
            "etcd_server_is_learner",
            "Whether or not this member is a learner. 1 if is, 0 otherwise.",
        )?,
        leader_changes_seen_total: counter(
            "etcd_server_leader_changes_seen_total",
            "The number of leader changes seen.",
        )?,
        proposals_committed_total: gauge(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
        )?,
        proposals_applied_total: gauge(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
        )?,
        proposals_pending: gauge(
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit.",
        )?,
        proposals_failed_total: counter(
            "etcd_server_proposals_failed_total",
            "The total number of failed proposals seen.",
        )?,
        wal_fsync_duration_seconds: disk(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
        )?,
        backend_commit_duration_seconds: disk(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
        )?,
        peer_round_trip_time_seconds: rtt,
        db_total_size_in_bytes: gauge(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
        )?,
        db_total_size_in_use_in_bytes: gauge(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
        )?,
        current_revision: gauge(
            "etcd_debugging_mvcc_current_revision",
            "The current revision of store.",
        )?,
        compact_revision: gauge(
            "etcd_debugging_mvcc_compact_revision",
            "The revision of the last compaction in store.",
        )?,
        keys_total: gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.")?,
        revisions_stored: gauge(
            "gauntlet_mvcc_revisions_stored",
            "Revision records kept (history not yet compacted).",
        )?,
        watcher_total: gauge(
            "etcd_debugging_mvcc_watcher_total",
            "Total number of watchers.",
        )?,
        grpc_started_total: started,
        grpc_handled_total: handled,
        registry,
    })
}

/// The process's metrics (registered on first use).
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| build().expect("metric names and buckets are valid constants"))
}

/// The text page: refreshes the gauges that mirror `node`, then encodes everything.
pub fn render(node: &NodeHandle) -> String {
    let m = get();
    let s = &node.status;
    m.has_leader
        .set(i64::from(s.leader.load(Ordering::Relaxed) != 0));
    m.is_leader
        .set(i64::from(s.is_leader.load(Ordering::Relaxed)));
    m.is_learner
        .set(i64::from(s.is_learner.load(Ordering::Relaxed)));
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    m.proposals_committed_total
        .set(to_i64(s.raft_index.load(Ordering::Relaxed)));
    m.proposals_applied_total
        .set(to_i64(s.applied.load(Ordering::Relaxed)));
    {
        let st = node.read_state();
        let db = to_i64(st.db_size_bytes());
        m.db_total_size_in_bytes.set(db);
        m.db_total_size_in_use_in_bytes.set(db);
        m.current_revision.set(st.revision());
        m.compact_revision.set(st.compact_revision());
        m.keys_total
            .set(i64::try_from(st.keys_total()).unwrap_or(i64::MAX));
        m.revisions_stored
            .set(i64::try_from(st.revisions_stored()).unwrap_or(i64::MAX));
        m.watcher_total
            .set(i64::try_from(st.watch_hub().watchers_total()).unwrap_or(i64::MAX));
    }
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&m.registry.gather(), &mut out) {
        return format!("# encoding the metrics failed: {e}\n");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Counts gRPC calls by method and code (see the module docs).
pub async fn grpc_counter(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path().to_string();
    let Some((service, method)) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .filter(|(s, _)| {
            ["etcdserverpb.", "v3lockpb.", "v3electionpb."]
                .iter()
                .any(|p| s.starts_with(p))
        })
    else {
        return next.run(req).await;
    };
    let kind = grpc_type(method);
    let m = get();
    m.grpc_started_total
        .with_label_values(&[kind, service, method])
        .inc();
    let resp = next.run(req).await;
    let code = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or("OK", |c| {
            gauntlet_api::rpctypes::go_code_name(tonic::Code::from_i32(c))
        });
    m.grpc_handled_total
        .with_label_values(&[kind, service, method, code])
        .inc();
    resp
}

/// grpc-go's `grpc_type` of an etcd method.
fn grpc_type(method: &str) -> &'static str {
    match method {
        "Watch" | "LeaseKeepAlive" => "bidi_stream",
        "Snapshot" => "server_stream",
        _ => "unary",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_registered_under_etcds_name() {
        let m = get();
        m.leader_changes_seen_total.inc();
        m.wal_fsync_duration_seconds.observe(0.002);
        m.peer_round_trip_time_seconds
            .with_label_values(&["1"])
            .observe(0.0003);
        m.grpc_started_total
            .with_label_values(&["unary", "etcdserverpb.KV", "Range"])
            .inc();
        m.grpc_handled_total
            .with_label_values(&["unary", "etcdserverpb.KV", "Range", "OK"])
            .inc();
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        for name in [
            "# TYPE etcd_server_has_leader gauge",
            "# TYPE etcd_server_leader_changes_seen_total counter",
            "# TYPE etcd_server_proposals_pending gauge",
            "# TYPE etcd_server_proposals_failed_total counter",
            "# TYPE etcd_disk_wal_fsync_duration_seconds histogram",
            "# TYPE etcd_disk_backend_commit_duration_seconds histogram",
            "etcd_network_peer_round_trip_time_seconds_bucket{To=\"1\"",
            "# TYPE etcd_mvcc_db_total_size_in_use_in_bytes gauge",
            "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    #[test]
    fn stream_methods_are_typed_as_grpc_go_does() {
        assert_eq!(grpc_type("Watch"), "bidi_stream");
        assert_eq!(grpc_type("Snapshot"), "server_stream");
        assert_eq!(grpc_type("Put"), "unary");
        assert_eq!(
            gauntlet_api::rpctypes::go_code_name(tonic::Code::Cancelled),
            "Canceled"
        );
    }
}
