//! The Kubernetes-shaped profile: what a kube-apiserver does to etcd for a cluster
//! of N nodes, without a Kubernetes cluster.
//!
//! During `--duration`, concurrently:
//! - **Node heartbeats**: every node's Lease object is updated every 10 s by an
//!   optimistic txn (`mod_revision == last seen` → put), spread evenly over the period.
//! - **Pod churn** at `--pod-rate` operations/s: each pod goes through create (txn
//!   `create_revision == 0`), two status updates (txn on `mod_revision`) and delete
//!   (txn on `mod_revision`), one stage every few seconds. Pod objects are
//!   `--pod-size` bytes, as a typical serialized pod is a few KiB.
//! - **Events**: every pod create and update writes an Event attached to a lease
//!   with `--event-ttl` (one lease per minute, as kube-apiserver shares them).
//! - **Lists**: every `--list-interval`, a paginated list of all pods (limit 500,
//!   every page at the first page's revision).
//! - **Watchers**: one per resource type (leases, nodes, pods, events) with prev_kv
//!   and progress notifications. Values carry their send time, so the watchers
//!   measure delivery lag.
//! - **Compaction** every `--compact-interval`, to the revision seen one interval ago.
//!
//! All writes are open loop with the coordinated-omission correction (see
//! [`crate::gen`]). The result carries the SLO view: mutating p99 ≤ 1 s, list
//! p99 ≤ 30 s (Kubernetes' API call latency SLOs) and watch lag p99 ≤ 5 s (our
//! threshold, not an official Kubernetes SLO; `--slo-watch-lag` changes it); each also
//! needs fewer than [`MAX_ERROR_SHARE`] failed operations. `--ramp` searches
//! for the largest N within all of them.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gauntlet_api::etcdserverpb as pb;
use hdrhistogram::Histogram;
use tokio_stream::StreamExt;

use crate::args::parse_duration;
use crate::error::{ensure, Result};
use crate::gen::{drive, CpuMeter, DriveOutcome, TimeBar};
use crate::keys::{self, prefix_end};
use crate::result::{RampStep, RunResult, SloRow};
use crate::stats::{OpSummary, Recorder};
use crate::workloads::{create_req, open_watch, Ctx};

/// Page size of lists, as kube-apiserver's paginated lists use.
pub const LIST_PAGE: i64 = 500;
/// Failed operations tolerated by an SLO (1 %).
pub const MAX_ERROR_SHARE: f64 = 0.01;
/// Client tasks per load stream (heartbeats, pod churn).
const LOAD_CLIENTS: usize = 256;
/// Concurrency of the setup phase.
const SETUP_CLIENTS: usize = 64;
/// Seconds between the stages of one pod's life.
const POD_STAGE_SECS: f64 = 2.0;
/// Pages one list may take at most.
const MAX_LIST_PAGES: usize = 100_000;
/// Most steps of a ramp search.
pub const MAX_RAMP_STEPS: usize = 12;
/// Most nodes a run simulates.
pub const MAX_NODES: u64 = 1_000_000;

/// `kube` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct KubeArgs {
    /// Hollow nodes.
    #[arg(long, default_value_t = 100)]
    pub nodes: u64,
    /// How long to run (each ramp step runs this long).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Search for the largest node count within SLO, starting at --nodes and doubling.
    #[arg(long)]
    pub ramp: bool,
    /// Idle time between ramp steps (lets a shared machine breathe).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub ramp_pause: Duration,
    /// Upper bound of the ramp search.
    #[arg(long, default_value_t = 100_000)]
    pub ramp_max_nodes: u64,
    /// Pod operations per second (0: nodes / 10).
    #[arg(long, default_value_t = 0.0)]
    pub pod_rate: f64,
    /// Pods per node created before the measured phase.
    #[arg(long, default_value_t = 5)]
    pub pods_per_node: u64,
    /// Bytes of a pod object.
    #[arg(long, default_value_t = 4096)]
    pub pod_size: usize,
    /// Bytes of a node object.
    #[arg(long, default_value_t = 8192)]
    pub node_size: usize,
    /// Bytes of an event object.
    #[arg(long, default_value_t = 1024)]
    pub event_size: usize,
    /// Node lease renewal period.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// Time between paginated pod lists.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub list_interval: Duration,
    /// Time between compactions.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub compact_interval: Duration,
    /// TTL of the leases events are attached to, seconds.
    #[arg(long, default_value_t = 3600)]
    pub event_ttl: i64,
    /// Mutating p99 limit.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub slo_mutating: Duration,
    /// List p99 limit.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub slo_list: Duration,
    /// Watch delivery lag p99 limit.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub slo_watch_lag: Duration,
}

impl KubeArgs {
    /// Checks the flags.
    pub fn validate(&self) -> Result<()> {
        ensure((1..=MAX_NODES).contains(&self.nodes), || {
            format!(
                "--nodes must be between 1 and {MAX_NODES}, got {}",
                self.nodes
            )
        })?;
        ensure(!self.duration.is_zero(), || {
            "--duration must be positive".into()
        })?;
        ensure(self.pod_rate.is_finite() && self.pod_rate >= 0.0, || {
            "--pod-rate must be a non-negative number".into()
        })?;
        ensure(self.pods_per_node <= 1000, || {
            "--pods-per-node must be at most 1000".into()
        })?;
        for (flag, v) in [
            ("--pod-size", self.pod_size),
            ("--node-size", self.node_size),
            ("--event-size", self.event_size),
        ] {
            ensure(
                (keys::STAMP_BYTES..=keys::MAX_VALUE_BYTES).contains(&v),
                || {
                    format!(
                        "{flag} must be between {} and {} bytes, got {v}",
                        keys::STAMP_BYTES,
                        keys::MAX_VALUE_BYTES
                    )
                },
            )?;
        }
        ensure(!self.heartbeat_interval.is_zero(), || {
            "--heartbeat-interval must be positive".into()
        })?;
        ensure(!self.list_interval.is_zero(), || {
            "--list-interval must be positive".into()
        })?;
        ensure(self.event_ttl >= 1, || {
            "--event-ttl must be at least 1 second".into()
        })?;
        ensure(!self.ramp || self.ramp_max_nodes >= self.nodes, || {
            "--ramp-max-nodes must be at least --nodes".into()
        })
    }

    fn pod_rate_for(&self, nodes: u64) -> f64 {
        if self.pod_rate > 0.0 {
            self.pod_rate
        } else {
            (nodes as f64 / 10.0).max(1.0)
        }
    }
}

/// Runs the profile (or the ramp search).
pub async fn run(ctx: &Ctx, a: &KubeArgs) -> Result<RunResult> {
    if !a.ramp {
        return step(ctx, a, a.nodes, 0).await;
    }
    let deadline = Instant::now() + ctx.opts.timeout;
    let mut steps: Vec<RampStep> = Vec::new();
    let mut best: Option<RunResult> = None;
    let mut first: Option<RunResult> = None;
    let mut first_err: Option<crate::error::BenchError> = None;
    let (mut lo, mut hi): (u64, Option<u64>) = (0, None);
    let mut n = a.nodes;
    for i in 0..MAX_RAMP_STEPS {
        if i > 0 && !a.ramp_pause.is_zero() {
            tokio::time::sleep(a.ramp_pause).await;
        }
        if Instant::now() + a.duration > deadline {
            break;
        }
        // A step that fails with an error (the store full, a member gone) is a node
        // count outside the SLO, not the end of the search: the steps before it stand.
        let (pass, rs) = match step(ctx, a, n, i + 1).await {
            Ok(r) => {
                let pass = r.slo.as_ref().is_some_and(|s| s.iter().all(|row| row.pass));
                let fig = |name: &str| {
                    r.slo
                        .as_ref()
                        .and_then(|s| s.iter().find(|row| row.name == name))
                        .map_or(0.0, |row| row.measured_s)
                };
                let rs = RampStep {
                    nodes: n,
                    pass,
                    mutating_p99_s: fig("mutating p99"),
                    list_p99_s: fig("list p99"),
                    watch_lag_p99_s: fig("watch lag p99"),
                    error: None,
                };
                if pass {
                    best = Some(r);
                } else {
                    first.get_or_insert(r);
                }
                (pass, rs)
            }
            Err(e) => {
                let rs = RampStep {
                    nodes: n,
                    pass: false,
                    mutating_p99_s: 0.0,
                    list_p99_s: 0.0,
                    watch_lag_p99_s: 0.0,
                    error: Some(e.to_string()),
                };
                first_err.get_or_insert(e);
                (false, rs)
            }
        };
        // Each step as it finishes: a long ramp shows its progress.
        eprintln!("ramp step {}: {}", i + 1, rs.line().trim_start());
        steps.push(rs);
        if pass {
            lo = n;
        } else {
            hi = Some(n);
        }
        let next = match hi {
            None => n.saturating_mul(2).min(a.ramp_max_nodes),
            Some(h) => lo + (h - lo) / 2,
        };
        let close = hi.is_some_and(|h| h - lo <= (lo / 10).max(1));
        if next == n || close || (hi.is_none() && n >= a.ramp_max_nodes) || next == 0 {
            break;
        }
        n = next;
    }
    let mut out = match (best, first) {
        (Some(b), _) => b,
        (None, Some(f)) => f,
        // Every step failed with an error: that error (each step was printed).
        (None, None) => match first_err {
            Some(e) => return Err(e),
            None => step(ctx, a, a.nodes, 0).await?,
        },
    };
    out.ramp = Some(steps);
    Ok(out)
}

/// Shared state of one step.
struct Kube {
    ctx: Ctx,
    prefix: String,
    epoch: Instant,
    pod_template: Vec<u8>,
    node_template: Vec<u8>,
    event_template: Vec<u8>,
    lease_revs: Vec<AtomicI64>,
    pod_revs: Vec<AtomicI64>,
    event_lease: Mutex<(u64, i64)>,
    event_ttl: i64,
    events: Recorder,
    pod_kinds: [Recorder; 3],
    next_event: AtomicU64,
}

impl Kube {
    fn key(&self, kind: &str, name: u64) -> Vec<u8> {
        format!("{}{kind}/default/{kind}-{name:08}", self.prefix).into_bytes()
    }

    fn kind_prefix(&self, kind: &str) -> Vec<u8> {
        format!("{}{kind}/", self.prefix).into_bytes()
    }

    async fn event_lease(&self) -> std::result::Result<i64, String> {
        let minute = self.epoch.elapsed().as_secs() / 60;
        if let Ok(g) = self.event_lease.lock() {
            if g.0 == minute && g.1 != 0 {
                return Ok(g.1);
            }
        }
        let mut lc = pb::lease_client::LeaseClient::new(self.ctx.pool.channel(0));
        let r = self
            .ctx
            .pool
            .call(lc.lease_grant(self.ctx.pool.request(pb::LeaseGrantRequest {
                ttl: self.event_ttl,
                id: 0,
            })))
            .await?;
        if let Ok(mut g) = self.event_lease.lock() {
            *g = (minute, r.id);
        }
        Ok(r.id)
    }

    /// Writes one event on the current minute's lease (granted by whichever pod operation
    /// first needs it; two racing at a minute boundary may both grant one, which is harmless).
    async fn event(&self, conn: usize) {
        let t = Instant::now();
        let n = self.next_event.fetch_add(1, Ordering::Relaxed);
        let res = async {
            let lease = self.event_lease().await?;
            let req = self.ctx.pool.request(pb::PutRequest {
                key: self.key("events", n),
                value: keys::stamped(&self.event_template, self.epoch),
                lease,
                ..Default::default()
            });
            let mut kv = self.ctx.pool.kv(conn);
            self.ctx.pool.call(kv.put(req)).await.map(drop)
        }
        .await;
        let end = Instant::now();
        self.events.record(conn, end, end - t, res);
    }

    /// Optimistic update of `key` whose last known mod revision is in `rev`.
    async fn cas_put(
        &self,
        conn: usize,
        key: Vec<u8>,
        value: Vec<u8>,
        rev: &AtomicI64,
        create: bool,
    ) -> std::result::Result<(), String> {
        let last = rev.load(Ordering::Relaxed);
        let compare = if create {
            pb::Compare {
                result: pb::compare::CompareResult::Equal as i32,
                target: pb::compare::CompareTarget::Create as i32,
                key: key.clone(),
                target_union: Some(pb::compare::TargetUnion::CreateRevision(0)),
                range_end: Vec::new(),
            }
        } else {
            pb::Compare {
                result: pb::compare::CompareResult::Equal as i32,
                target: pb::compare::CompareTarget::Mod as i32,
                key: key.clone(),
                target_union: Some(pb::compare::TargetUnion::ModRevision(last)),
                range_end: Vec::new(),
            }
        };
        let txn = pb::TxnRequest {
            compare: vec![compare],
            success: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                    key: key.clone(),
                    value,
                    ..Default::default()
                })),
            }],
            failure: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestRange(pb::RangeRequest {
                    key,
                    ..Default::default()
                })),
            }],
        };
        let mut kv = self.ctx.pool.kv(conn);
        let r = self
            .ctx
            .pool
            .call(kv.txn(self.ctx.pool.request(txn)))
            .await?;
        if r.succeeded {
            rev.store(r.header.map_or(0, |h| h.revision), Ordering::Relaxed);
            Ok(())
        } else {
            // Learn the current revision, as a controller re-reads after a conflict.
            let current = r.responses.first().and_then(|op| match &op.response {
                Some(pb::response_op::Response::ResponseRange(rr)) => {
                    rr.kvs.first().map(|kv| kv.mod_revision)
                }
                _ => None,
            });
            rev.store(current.unwrap_or(0), Ordering::Relaxed);
            Err("conflict: the object changed (optimistic txn failed)".into())
        }
    }

    async fn cas_delete(
        &self,
        conn: usize,
        key: Vec<u8>,
        rev: &AtomicI64,
    ) -> std::result::Result<(), String> {
        let last = rev.load(Ordering::Relaxed);
        let txn = pb::TxnRequest {
            compare: vec![pb::Compare {
                result: pb::compare::CompareResult::Equal as i32,
                target: pb::compare::CompareTarget::Mod as i32,
                key: key.clone(),
                target_union: Some(pb::compare::TargetUnion::ModRevision(last)),
                range_end: Vec::new(),
            }],
            success: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestDeleteRange(
                    pb::DeleteRangeRequest {
                        key,
                        ..Default::default()
                    },
                )),
            }],
            failure: Vec::new(),
        };
        let mut kv = self.ctx.pool.kv(conn);
        let r = self
            .ctx
            .pool
            .call(kv.txn(self.ctx.pool.request(txn)))
            .await?;
        rev.store(0, Ordering::Relaxed);
        if r.succeeded {
            Ok(())
        } else {
            Err("conflict: the object changed (optimistic delete failed)".into())
        }
    }

    /// Pod operation `i`: pod slot `i % slots` at stage `(i / slots) % 4`.
    async fn pod_op(&self, i: u64, conn: usize) -> std::result::Result<(), String> {
        let slots = self.pod_revs.len() as u64;
        let slot = i % slots;
        let stage = (i / slots) % 4;
        let generation = i / slots / 4;
        let name = slot + generation * slots;
        let key = self.key("pods", 10_000_000 + name);
        let rev = &self.pod_revs[slot as usize];
        let t = Instant::now();
        let (kind, res) = match stage {
            0 => (
                0,
                self.cas_put(
                    conn,
                    key,
                    keys::stamped(&self.pod_template, self.epoch),
                    rev,
                    true,
                )
                .await,
            ),
            1 | 2 => (
                1,
                self.cas_put(
                    conn,
                    key,
                    keys::stamped(&self.pod_template, self.epoch),
                    rev,
                    false,
                )
                .await,
            ),
            _ => (2, self.cas_delete(conn, key, rev).await),
        };
        let end = Instant::now();
        self.pod_kinds[kind].record(conn, end, end - t, res.clone());
        if stage < 3 {
            self.event(conn).await;
        }
        res
    }

    /// One paginated list of every pod at one revision.
    async fn list_pods(&self) -> std::result::Result<u64, String> {
        let prefix = self.kind_prefix("pods");
        let end = prefix_end(&prefix);
        let mut key = prefix;
        let mut revision = 0;
        let mut items = 0u64;
        for _ in 0..MAX_LIST_PAGES {
            let req = pb::RangeRequest {
                key: key.clone(),
                range_end: end.clone(),
                limit: LIST_PAGE,
                revision,
                ..Default::default()
            };
            let mut kv = self.ctx.pool.kv(1);
            let r = self
                .ctx
                .pool
                .call(kv.range(self.ctx.pool.request(req)))
                .await?;
            if revision == 0 {
                revision = r.header.as_ref().map_or(0, |h| h.revision);
            }
            items += r.kvs.len() as u64;
            match r.kvs.last() {
                Some(last) if r.more => {
                    key = last.key.clone();
                    key.push(0);
                }
                _ => return Ok(items),
            }
        }
        Err(format!("list did not finish within {MAX_LIST_PAGES} pages"))
    }
}

async fn setup(k: &Arc<Kube>, nodes: u64, pods: u64, bar_label: &str) -> Result<()> {
    let setup = Arc::new(Recorder::new("setup", Instant::now()));
    let mut spec = k.ctx.spec(nodes * 2 + pods, 0.0, SETUP_CLIENTS);
    spec.timeout = k.ctx.opts.timeout;
    let k2 = Arc::clone(k);
    let out = drive(&spec, Arc::clone(&setup), move |i, c| {
        let k = Arc::clone(&k2);
        async move {
            if i < nodes {
                k.cas_put(
                    c,
                    k.key("leases", i),
                    keys::stamped(
                        b"lease-spec-holder-identity-renew-time-0000000000000000",
                        k.epoch,
                    ),
                    &k.lease_revs[i as usize],
                    true,
                )
                .await
            } else if i < 2 * nodes {
                let mut kv = k.ctx.pool.kv(c);
                let req = pb::PutRequest {
                    key: k.key("nodes", i - nodes),
                    value: keys::stamped(&k.node_template, k.epoch),
                    ..Default::default()
                };
                k.ctx
                    .pool
                    .call(kv.put(k.ctx.pool.request(req)))
                    .await
                    .map(drop)
            } else {
                let mut kv = k.ctx.pool.kv(c);
                let req = pb::PutRequest {
                    key: k.key("pods", i - 2 * nodes),
                    value: keys::stamped(&k.pod_template, k.epoch),
                    ..Default::default()
                };
                k.ctx
                    .pool
                    .call(kv.put(k.ctx.pool.request(req)))
                    .await
                    .map(drop)
            }
        }
    })
    .await;
    let s = setup.summarize(out.elapsed);
    ensure(s.errors == 0 && !out.timed_out, || {
        format!(
            "{bar_label}: creating the initial objects failed: {} errors ({:?})",
            s.errors,
            s.error_distribution.keys().next()
        )
    })
}

fn merged(ops: &[&OpSummary]) -> (f64, u64, u64) {
    let mut h: Histogram<u64> =
        Histogram::new_with_bounds(1, crate::stats::LATENCY_MAX_US, 3).expect("valid bounds");
    let mut errors = 0;
    for op in ops {
        if let Some(x) = op.hdr_histogram() {
            let _ = h.add(&x);
        }
        errors += op.errors;
    }
    let p99 = if h.is_empty() {
        0.0
    } else {
        h.value_at_percentile(99.0) as f64 / 1e6
    };
    (p99, h.len(), errors)
}

fn slo_row(name: &str, ops: &[&OpSummary], limit: Duration) -> SloRow {
    let (p99, n, errors) = merged(ops);
    let limit_s = limit.as_secs_f64();
    let error_ok = (errors as f64) <= MAX_ERROR_SHARE * (n + errors) as f64;
    SloRow {
        name: name.into(),
        measured_s: p99,
        limit_s,
        samples: n,
        pass: n > 0 && p99 <= limit_s && error_ok,
    }
}

/// One measured run at `nodes` nodes.
async fn step(ctx: &Ctx, a: &KubeArgs, nodes: u64, step_no: usize) -> Result<RunResult> {
    let epoch = Instant::now();
    let pod_rate = a.pod_rate_for(nodes);
    let slots = ((pod_rate * POD_STAGE_SECS).ceil() as usize).max(1);
    let k = Arc::new(Kube {
        ctx: ctx.clone(),
        prefix: format!("/gauntlet-kube/{}-{step_no}/registry/", ctx.opts.seed),
        epoch,
        pod_template: keys::value(a.pod_size, ctx.opts.seed),
        node_template: keys::value(a.node_size, ctx.opts.seed ^ 1),
        event_template: keys::value(a.event_size, ctx.opts.seed ^ 2),
        lease_revs: (0..nodes).map(|_| AtomicI64::new(0)).collect(),
        pod_revs: (0..slots).map(|_| AtomicI64::new(0)).collect(),
        event_lease: Mutex::new((0, 0)),
        event_ttl: a.event_ttl,
        events: Recorder::new("event", epoch),
        pod_kinds: [
            Recorder::new("pod-create", epoch),
            Recorder::new("pod-update", epoch),
            Recorder::new("pod-delete", epoch),
        ],
        next_event: AtomicU64::new(0),
    });
    let label = format!("kube {nodes} nodes");
    setup(&k, nodes, nodes * a.pods_per_node, &label).await?;

    // Watchers, one per resource type, each on its own stream.
    let lag = Arc::new(Recorder::new("watch-lag", Instant::now()));
    let watch_events = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(AtomicU64::new(0));
    let mut watchers = Vec::new();
    for (i, kind) in ["leases", "nodes", "pods", "events"].iter().enumerate() {
        let p = k.kind_prefix(kind);
        let mut w = open_watch(
            &ctx.pool,
            i,
            create_req(p.clone(), true, true, prefix_end(&p)),
        )
        .await?;
        let (lag, watch_events, progress) = (
            Arc::clone(&lag),
            Arc::clone(&watch_events),
            Arc::clone(&progress),
        );
        watchers.push(tokio::spawn(async move {
            let _keep = w.tx;
            while let Some(Ok(resp)) = w.rx.next().await {
                if resp.events.is_empty() && !resp.created {
                    progress.fetch_add(1, Ordering::Relaxed);
                }
                let now = epoch.elapsed().as_nanos() as u64;
                for ev in &resp.events {
                    watch_events.fetch_add(1, Ordering::Relaxed);
                    if let Some(sent) = ev.kv.as_ref().and_then(|kv| keys::stamp_of(&kv.value)) {
                        lag.record(
                            i,
                            Instant::now(),
                            Duration::from_nanos(now.saturating_sub(sent)),
                            Ok(()),
                        );
                    }
                }
            }
        }));
    }

    let bar = TimeBar::start(&label, a.duration);
    let cpu = CpuMeter::start(&ctx.target_pids);
    let run_for = a.duration.min(ctx.opts.timeout);
    let start = Instant::now();

    // Lists and compaction run on their own timers.
    let lists = Arc::new(Recorder::new("list", start));
    let list_task = {
        let (k, lists, every) = (Arc::clone(&k), Arc::clone(&lists), a.list_interval);
        tokio::spawn(async move {
            let stop = start + run_for;
            while Instant::now() < stop {
                let t = Instant::now();
                let r = k.list_pods().await.map(drop);
                let end = Instant::now();
                lists.record(0, end, end - t, r);
                tokio::time::sleep_until((t + every).into()).await;
            }
        })
    };
    let compactions = Arc::new(AtomicU64::new(0));
    let compact_task = (!a.compact_interval.is_zero()).then(|| {
        let (k, every, done) = (Arc::clone(&k), a.compact_interval, Arc::clone(&compactions));
        tokio::spawn(async move {
            // Like kube-apiserver: compact to the revision seen one interval ago.
            let mut seen = 0i64;
            loop {
                if seen > 0
                    && k.ctx
                        .pool
                        .control()
                        .compact(pb::CompactionRequest {
                            revision: seen,
                            physical: false,
                        })
                        .await
                        .is_ok()
                {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                if let Ok(r) = k
                    .ctx
                    .pool
                    .control()
                    .get("/gauntlet-kube/revision-probe")
                    .await
                {
                    seen = r.header.map_or(0, |h| h.revision);
                }
                tokio::time::sleep(every).await;
            }
        })
    });

    // Heartbeats and pod churn: open loop at their rates.
    let hb_rate = nodes as f64 / a.heartbeat_interval.as_secs_f64();
    let hb_total = ((hb_rate * run_for.as_secs_f64()).floor() as u64).max(1);
    let heartbeats = Arc::new(Recorder::new("lease-update", start));
    let mut hb_spec = ctx.spec(hb_total, hb_rate, LOAD_CLIENTS);
    hb_spec.timeout = run_for;
    hb_spec.progress = false; // the step's own bar shows progress
    let k_hb = Arc::clone(&k);
    let hb = drive(&hb_spec, Arc::clone(&heartbeats), move |i, c| {
        let k = Arc::clone(&k_hb);
        async move {
            let node = i % nodes;
            k.cas_put(
                c,
                k.key("leases", node),
                keys::stamped(
                    b"lease-spec-holder-identity-renew-time-0000000000000000",
                    k.epoch,
                ),
                &k.lease_revs[node as usize],
                false,
            )
            .await
        }
    });
    let pod_total = ((pod_rate * run_for.as_secs_f64()).floor() as u64).max(1);
    let churn = Arc::new(Recorder::new("pod-churn", start));
    let mut pod_spec = ctx.spec(pod_total, pod_rate, LOAD_CLIENTS);
    pod_spec.timeout = run_for;
    pod_spec.progress = false; // the step's own bar shows progress
    let k_pod = Arc::clone(&k);
    let pods = drive(&pod_spec, Arc::clone(&churn), move |i, c| {
        let k = Arc::clone(&k_pod);
        async move { k.pod_op(i, c + 2).await }
    });
    let (hb_out, pod_out): (DriveOutcome, DriveOutcome) = tokio::join!(hb, pods);
    let _ = tokio::time::timeout(ctx.pool.command_timeout() * 2, list_task).await;
    if let Some(t) = compact_task {
        t.abort();
    }
    // Let the watchers catch up with the last writes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for w in watchers {
        w.abort();
    }
    bar.finish();
    let elapsed = start.elapsed();

    let ops = vec![
        heartbeats.summarize(hb_out.elapsed),
        churn.summarize(pod_out.elapsed),
        k.pod_kinds[0].summarize(pod_out.elapsed),
        k.pod_kinds[1].summarize(pod_out.elapsed),
        k.pod_kinds[2].summarize(pod_out.elapsed),
        k.events.summarize(pod_out.elapsed),
        lists.summarize(elapsed),
        lag.summarize(elapsed),
    ];
    let slo = vec![
        slo_row("mutating p99", &[&ops[0], &ops[1], &ops[5]], a.slo_mutating),
        slo_row("list p99", &[&ops[6]], a.slo_list),
        slo_row("watch lag p99", &[&ops[7]], a.slo_watch_lag),
    ];
    let notes = vec![
        format!("nodes: {nodes}, heartbeats {hb_rate:.1}/s, pod operations {pod_rate:.1}/s, {} pods preloaded", nodes * a.pods_per_node),
        format!("watch events received: {}, progress notifications: {}", watch_events.load(Ordering::Relaxed), progress.load(Ordering::Relaxed)),
        format!("compactions: {}", compactions.load(Ordering::Relaxed)),
    ];
    let out = DriveOutcome {
        elapsed,
        issued: hb_out.issued + pod_out.issued,
        timed_out: hb_out.timed_out || pod_out.timed_out,
    };
    let mut r = ctx.result("kube", &out, ops, &cpu, notes);
    r.slo = Some(slo);
    cleanup(&k).await;
    Ok(r)
}

/// Removes the step's objects so that ramp steps do not pile up data.
async fn cleanup(k: &Kube) {
    let p = k.prefix.clone().into_bytes();
    let _ = k
        .ctx
        .pool
        .control()
        .delete_range(pb::DeleteRangeRequest {
            range_end: prefix_end(&p),
            key: p,
            ..Default::default()
        })
        .await;
}
