//! The etcd-benchmark workloads: each builds its requests ahead, drives them through
//! [`drive`], and returns a [`RunResult`].

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gauntlet_api::etcdserverpb::{
    self as pb, lease_client::LeaseClient, watch_client::WatchClient,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::args::{
    BenchOpts, Consistency, LeaseKeepaliveArgs, PutArgs, RangeArgs, TxnMixedArgs, TxnPutArgs,
    WatchArgs, WatchGetArgs, WatchLatencyArgs,
};
use crate::error::{BenchError, Result};
use crate::gen::{drive, CpuMeter, DriveOutcome, LoadSpec};
use crate::keys::{self, KeySpace};
use crate::pool::{status_text, Pool};
use crate::result::{RunResult, SCHEMA_VERSION};
use crate::stats::Recorder;

/// Requests queued on one watch or keep-alive stream before a send waits.
const STREAM_QUEUE: usize = 1024;
/// How long the watch workloads wait for events after the last put.
pub const EVENT_DRAIN: Duration = Duration::from_secs(10);

/// What every workload needs to run.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The connections.
    pub pool: Pool,
    /// The shared flags.
    pub opts: BenchOpts,
    /// Processes of the target, when known, for their CPU.
    pub target_pids: Vec<u32>,
    /// The workload's flags, for the result.
    pub params: String,
}

impl Ctx {
    pub(crate) fn spec(&self, total: u64, rate: f64, clients: usize) -> LoadSpec {
        LoadSpec {
            clients,
            total,
            rate,
            timeout: self.opts.timeout,
            grace: self.pool.command_timeout(),
            progress: true,
        }
    }

    pub(crate) fn result(
        &self,
        workload: &str,
        out: &DriveOutcome,
        ops: Vec<crate::stats::OpSummary>,
        cpu: &CpuMeter,
        notes: Vec<String>,
    ) -> RunResult {
        // CPU per operation is per operation the driver issued (puts for the watch
        // workloads, heartbeats and pod operations for kube).
        let done = out.issued;
        RunResult {
            schema: SCHEMA_VERSION,
            workload: workload.to_string(),
            params: self.params.clone(),
            endpoints: self.pool.endpoints().to_vec(),
            conns: self.pool.conns(),
            clients: self.opts.clients,
            seed: self.opts.seed,
            timed_out: out.timed_out,
            ops,
            cpu: cpu.finish(done),
            notes,
            slo: None,
            ramp: None,
            server_version: None,
            held_to: None,
        }
    }
}

fn put_op(key: Vec<u8>, value: Vec<u8>) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
            key,
            value,
            ..Default::default()
        })),
    }
}

/// `put`.
pub async fn put(ctx: &Ctx, a: &PutArgs) -> Result<RunResult> {
    let keys = Arc::new(KeySpace::new(
        a.key_size,
        a.key_space_size,
        a.sequential_keys,
        ctx.opts.seed,
    ));
    let value = Arc::new(keys::value(a.val_size, ctx.opts.seed));
    let revision = Arc::new(AtomicI64::new(0));
    let start = Instant::now();
    let rec = Arc::new(Recorder::new("put", start));
    let compactor = (!a.compact_interval.is_zero()).then(|| {
        spawn_compactor(
            ctx.pool.clone(),
            a.compact_interval,
            a.compact_index_delta,
            Arc::clone(&revision),
        )
    });
    let cpu = CpuMeter::start(&ctx.target_pids);
    let pool = ctx.pool.clone();
    let out = drive(
        &ctx.spec(a.total, a.rate, ctx.opts.clients),
        Arc::clone(&rec),
        move |i, c| {
            let req = pool.request(pb::PutRequest {
                key: keys.key(i),
                value: value.as_ref().clone(),
                ..Default::default()
            });
            let (pool, revision) = (pool.clone(), Arc::clone(&revision));
            async move {
                let mut kv = pool.kv(c);
                let r = pool.call(kv.put(req)).await?;
                revision.fetch_max(r.header.map_or(0, |h| h.revision), Ordering::Relaxed);
                Ok(())
            }
        },
    )
    .await;
    let mut notes = Vec::new();
    if let Some((task, compactions)) = compactor {
        task.abort();
        notes.push(format!(
            "compactions: {}",
            compactions.load(Ordering::Relaxed)
        ));
    }
    Ok(ctx.result("put", &out, vec![rec.summarize(out.elapsed)], &cpu, notes))
}

fn spawn_compactor(
    pool: Pool,
    every: Duration,
    delta: i64,
    revision: Arc<AtomicI64>,
) -> (tokio::task::JoinHandle<()>, Arc<AtomicU64>) {
    let done = Arc::new(AtomicU64::new(0));
    let d = Arc::clone(&done);
    let task = tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(every).await;
            let target = revision.load(Ordering::Relaxed) - delta;
            if target > last {
                let ok = pool
                    .control()
                    .compact(pb::CompactionRequest {
                        revision: target,
                        physical: false,
                    })
                    .await;
                if ok.is_ok() {
                    last = target;
                    d.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    (task, done)
}

/// `range`.
pub async fn range(ctx: &Ctx, a: &RangeArgs) -> Result<RunResult> {
    let req = Arc::new(pb::RangeRequest {
        key: a.key.as_bytes().to_vec(),
        range_end: a
            .end
            .as_deref()
            .map(|e| e.as_bytes().to_vec())
            .unwrap_or_default(),
        serializable: a.consistency == Consistency::S,
        count_only: a.count_only,
        ..Default::default()
    });
    let rec = Arc::new(Recorder::new("range", Instant::now()));
    let cpu = CpuMeter::start(&ctx.target_pids);
    let pool = ctx.pool.clone();
    let out = drive(
        &ctx.spec(a.total, a.rate, ctx.opts.clients),
        Arc::clone(&rec),
        move |_, c| {
            let req = pool.request(req.as_ref().clone());
            let pool = pool.clone();
            async move {
                let mut kv = pool.kv(c);
                pool.call(kv.range(req)).await.map(drop)
            }
        },
    )
    .await;
    Ok(ctx.result(
        "range",
        &out,
        vec![rec.summarize(out.elapsed)],
        &cpu,
        Vec::new(),
    ))
}

/// The txn of `txn-put` operation `i`: `ops` puts of consecutive distinct keys.
pub fn txn_put_request(
    keys: &KeySpace,
    space: u64,
    ops: usize,
    value: &[u8],
    i: u64,
) -> pb::TxnRequest {
    let first = keys.index(i);
    pb::TxnRequest {
        success: (0..ops as u64)
            .map(|j| put_op(keys.encode((first + j) % space), value.to_vec()))
            .collect(),
        ..Default::default()
    }
}

/// `txn-put`.
pub async fn txn_put(ctx: &Ctx, a: &TxnPutArgs) -> Result<RunResult> {
    let keys = Arc::new(KeySpace::new(
        a.key_size,
        a.key_space_size,
        false,
        ctx.opts.seed,
    ));
    let value = Arc::new(keys::value(a.val_size, ctx.opts.seed));
    let (space, ops) = (a.key_space_size, a.txn_ops);
    let rec = Arc::new(Recorder::new("txn-put", Instant::now()));
    let cpu = CpuMeter::start(&ctx.target_pids);
    let pool = ctx.pool.clone();
    let out = drive(
        &ctx.spec(a.total, a.rate, ctx.opts.clients),
        Arc::clone(&rec),
        move |i, c| {
            let req = pool.request(txn_put_request(&keys, space, ops, &value, i));
            let pool = pool.clone();
            async move {
                let mut kv = pool.kv(c);
                pool.call(kv.txn(req)).await.map(drop)
            }
        },
    )
    .await;
    Ok(ctx.result(
        "txn-put",
        &out,
        vec![rec.summarize(out.elapsed)],
        &cpu,
        Vec::new(),
    ))
}

/// `txn-mixed`: reads (a txn with one range, `--limit`) and writes (a txn with one put
/// under KEY); operation `i` is a read with probability rw/(rw+1), decided by hashing `i`.
pub async fn txn_mixed(ctx: &Ctx, a: &TxnMixedArgs) -> Result<RunResult> {
    let keys = Arc::new(
        KeySpace::new(a.key_size, a.key_space_size, false, ctx.opts.seed)
            .with_prefix(a.key.as_bytes()),
    );
    let value = Arc::new(keys::value(a.val_size, ctx.opts.seed));
    let range_end = a.end.as_deref().map_or_else(
        || keys::prefix_end(a.key.as_bytes()),
        |e| e.as_bytes().to_vec(),
    );
    let read = Arc::new(pb::TxnRequest {
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestRange(pb::RangeRequest {
                key: a.key.as_bytes().to_vec(),
                range_end,
                limit: a.limit,
                serializable: a.consistency == Consistency::S,
                ..Default::default()
            })),
        }],
        ..Default::default()
    });
    let read_share = a.rw_ratio / (a.rw_ratio + 1.0);
    let threshold = (read_share * u64::MAX as f64) as u64;
    let seed = ctx.opts.seed;
    let start = Instant::now();
    let reads = Arc::new(Recorder::new("read", start));
    let writes = Arc::new(Recorder::new("write", start));
    let all = Arc::new(Recorder::new("txn-mixed", start));
    let cpu = CpuMeter::start(&ctx.target_pids);
    let pool = ctx.pool.clone();
    let (r2, w2) = (Arc::clone(&reads), Arc::clone(&writes));
    let out = drive(
        &ctx.spec(a.total, a.rate, ctx.opts.clients),
        Arc::clone(&all),
        move |i, c| {
            let is_read = keys::mix64(seed.rotate_left(7) ^ i) < threshold;
            let msg = if is_read {
                read.as_ref().clone()
            } else {
                pb::TxnRequest {
                    success: vec![put_op(keys.key(i), value.as_ref().clone())],
                    ..Default::default()
                }
            };
            let req = pool.request(msg);
            let pool = pool.clone();
            let rec = if is_read {
                Arc::clone(&r2)
            } else {
                Arc::clone(&w2)
            };
            async move {
                let t = Instant::now();
                let mut kv = pool.kv(c);
                let r = pool.call(kv.txn(req)).await.map(drop);
                let end = Instant::now();
                rec.record(c, end, end - t, r.clone());
                r
            }
        },
    )
    .await;
    let ops = vec![
        all.summarize(out.elapsed),
        reads.summarize(out.elapsed),
        writes.summarize(out.elapsed),
    ];
    Ok(ctx.result("txn-mixed", &out, ops, &cpu, Vec::new()))
}

/// One raw watch stream over a pool connection.
pub(crate) struct RawWatch {
    pub(crate) tx: mpsc::Sender<pb::WatchRequest>,
    pub(crate) rx: tonic::Streaming<pb::WatchResponse>,
}

/// Opens a watch stream on connection `conn` with `first` as its first request. The
/// request goes out before the call is awaited: etcd sends the stream's response
/// headers only with its first response.
pub(crate) async fn open_watch(
    pool: &Pool,
    conn: usize,
    first: pb::WatchRequest,
) -> Result<RawWatch> {
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    tx.send(first)
        .await
        .map_err(|_| BenchError::Setup("watch stream closed".into()))?;
    let req = pool.stream_request(ReceiverStream::new(rx));
    let mut client = WatchClient::new(pool.channel(conn));
    let resp = tokio::time::timeout(pool.command_timeout(), client.watch(req))
        .await
        .map_err(|_| BenchError::Setup("opening a watch stream timed out".into()))?
        .map_err(|s| BenchError::Setup(format!("opening a watch stream: {}", status_text(&s))))?;
    Ok(RawWatch {
        tx,
        rx: resp.into_inner(),
    })
}

pub(crate) fn create_req(
    key: Vec<u8>,
    prev_kv: bool,
    progress_notify: bool,
    range_end: Vec<u8>,
) -> pb::WatchRequest {
    pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key,
                range_end,
                prev_kv,
                progress_notify,
                ..Default::default()
            },
        )),
    }
}

/// Consumes events on every stream, recording delivery lag (now − stamped send time)
/// in `rec`, until `expected` events arrived or `stop` fires.
fn spawn_event_readers(
    streams: Vec<RawWatch>,
    rec: Arc<Recorder>,
    epoch: Instant,
    received: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    streams
        .into_iter()
        .enumerate()
        .map(|(s, mut w)| {
            let (rec, received) = (Arc::clone(&rec), Arc::clone(&received));
            tokio::spawn(async move {
                let _keep_open = w.tx;
                while let Some(Ok(resp)) = w.rx.next().await {
                    let now_ns = epoch.elapsed().as_nanos() as u64;
                    for ev in &resp.events {
                        received.fetch_add(1, Ordering::Relaxed);
                        if let Some(sent) = ev.kv.as_ref().and_then(|kv| keys::stamp_of(&kv.value))
                        {
                            let lag = Duration::from_nanos(now_ns.saturating_sub(sent));
                            rec.record(s, Instant::now(), lag, Ok(()));
                        }
                    }
                }
            })
        })
        .collect()
}

struct WatchPlan {
    name: &'static str,
    streams: usize,
    per_stream: usize,
    put_total: u64,
    put_rate: f64,
    key_size: usize,
    val_size: usize,
    space: u64,
    delivery_first: bool,
}

async fn watch_run(ctx: &Ctx, p: WatchPlan) -> Result<RunResult> {
    let start = Instant::now();
    let deadline = start + ctx.opts.timeout;
    let keys = Arc::new(
        KeySpace::new(p.key_size, p.space, true, ctx.opts.seed)
            .with_prefix(b"/gauntlet-bench/watch/"),
    );
    let create = Recorder::new("watch-create", start);
    let cpu = CpuMeter::start(&ctx.target_pids);
    let streams = open_and_create(&ctx.pool, &p, &keys, &create, deadline).await?;
    // Creation figures are over the creation phase only.
    let create_elapsed = start.elapsed();
    let delivery = Arc::new(Recorder::new("event-delivery", start));
    let received = Arc::new(AtomicU64::new(0));
    let epoch = start;
    let readers = spawn_event_readers(streams, Arc::clone(&delivery), epoch, Arc::clone(&received));
    let template = Arc::new(keys::value(
        p.val_size.max(keys::STAMP_BYTES),
        ctx.opts.seed,
    ));
    let puts = Arc::new(Recorder::new("put", start));
    let pool = ctx.pool.clone();
    let mut spec = ctx.spec(p.put_total, p.put_rate, ctx.opts.clients);
    spec.timeout = deadline.saturating_duration_since(Instant::now());
    let ks = Arc::clone(&keys);
    let out = drive(&spec, Arc::clone(&puts), move |i, c| {
        let req = pool.request(pb::PutRequest {
            key: ks.key(i),
            value: keys::stamped(&template, epoch),
            ..Default::default()
        });
        let pool = pool.clone();
        async move {
            let mut kv = pool.kv(c);
            pool.call(kv.put(req)).await.map(drop)
        }
    })
    .await;
    let watchers_per_key = (p.streams * p.per_stream) as u64 / p.space;
    let expected = puts.summarize(out.elapsed).count * watchers_per_key.max(1);
    let drain_until = (Instant::now() + EVENT_DRAIN).min(deadline + ctx.pool.command_timeout());
    while received.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for r in readers {
        r.abort();
    }
    let got = received.load(Ordering::Relaxed);
    let notes = vec![format!(
        "events received: {got} of {expected} expected ({} watchers)",
        p.streams * p.per_stream
    )];
    let (c, d, u) = (
        create.summarize(create_elapsed),
        delivery.summarize(out.elapsed),
        puts.summarize(out.elapsed),
    );
    let ops = if p.delivery_first {
        vec![d, u, c]
    } else {
        vec![c, u, d]
    };
    let mut result = ctx.result(p.name, &out, ops, &cpu, notes);
    result.timed_out |= got < expected && Instant::now() >= deadline;
    Ok(result)
}

async fn open_and_create(
    pool: &Pool,
    p: &WatchPlan,
    keys: &KeySpace,
    rec: &Recorder,
    deadline: Instant,
) -> Result<Vec<RawWatch>> {
    let mut streams = Vec::with_capacity(p.streams);
    for s in 0..p.streams {
        let key = |j: usize| keys.encode(((s * p.per_stream + j) as u64) % p.space);
        let t = Instant::now();
        let mut w = open_watch(pool, s, create_req(key(0), false, false, Vec::new())).await?;
        await_created(pool, &mut w, t, s, rec, deadline).await?;
        for j in 1..p.per_stream {
            create_one(pool, &mut w, key(j), s, rec, deadline).await?;
        }
        streams.push(w);
    }
    Ok(streams)
}

async fn create_one(
    pool: &Pool,
    w: &mut RawWatch,
    key: Vec<u8>,
    shard: usize,
    rec: &Recorder,
    deadline: Instant,
) -> Result<()> {
    let t = Instant::now();
    w.tx.send(create_req(key, false, false, Vec::new()))
        .await
        .map_err(|_| BenchError::Setup("watch stream closed".into()))?;
    await_created(pool, w, t, shard, rec, deadline).await
}

/// Waits for the `created` response of a watcher requested at `t`, recording its latency.
async fn await_created(
    pool: &Pool,
    w: &mut RawWatch,
    t: Instant,
    shard: usize,
    rec: &Recorder,
    deadline: Instant,
) -> Result<()> {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .min(pool.command_timeout());
    let created = loop {
        match tokio::time::timeout(left, w.rx.next()).await {
            Ok(Some(Ok(r))) if r.created => break Ok(()),
            Ok(Some(Ok(r))) if r.canceled => {
                break Err(format!("watch canceled: {}", r.cancel_reason))
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(s))) => break Err(status_text(&s)),
            Ok(None) => break Err("watch stream ended".to_string()),
            Err(_) => break Err("no created response within the command timeout".to_string()),
        }
    };
    let end = Instant::now();
    rec.record(shard, end, end - t, created.clone());
    created.map_err(|e| BenchError::Setup(format!("creating a watcher: {e}")))
}

/// `watch`.
pub async fn watch(ctx: &Ctx, a: &WatchArgs) -> Result<RunResult> {
    watch_run(
        ctx,
        WatchPlan {
            name: "watch",
            streams: a.streams,
            per_stream: a.watch_per_stream,
            put_total: a.put_total,
            put_rate: a.put_rate,
            key_size: a.key_size,
            val_size: a.val_size,
            space: a.key_space_size,
            delivery_first: false,
        },
    )
    .await
}

/// `watch-latency`.
pub async fn watch_latency(ctx: &Ctx, a: &WatchLatencyArgs) -> Result<RunResult> {
    watch_run(
        ctx,
        WatchPlan {
            name: "watch-latency",
            streams: a.streams,
            per_stream: a.watchers_per_stream,
            put_total: a.put_total,
            put_rate: a.put_rate,
            key_size: a.key_size,
            val_size: a.val_size,
            space: 1,
            delivery_first: true,
        },
    )
    .await
}

/// `watch-get`.
pub async fn watch_get(ctx: &Ctx, a: &WatchGetArgs) -> Result<RunResult> {
    let start = Instant::now();
    let deadline = start + ctx.opts.timeout;
    let key = b"/gauntlet-bench/watch-get".to_vec();
    let create = Recorder::new("watch-create", start);
    let cpu = CpuMeter::start(&ctx.target_pids);
    let mut streams = Vec::with_capacity(a.streams);
    for s in 0..a.streams.min(a.watchers) {
        let t = Instant::now();
        let mut w = open_watch(
            &ctx.pool,
            s,
            create_req(key.clone(), false, false, Vec::new()),
        )
        .await?;
        await_created(&ctx.pool, &mut w, t, s, &create, deadline).await?;
        streams.push(w);
    }
    for i in streams.len()..a.watchers {
        let s = i % streams.len();
        create_one(
            &ctx.pool,
            &mut streams[s],
            key.clone(),
            s,
            &create,
            deadline,
        )
        .await?;
    }
    let create_elapsed = start.elapsed();
    let rec = Arc::new(Recorder::new("range", start));
    let req = Arc::new(pb::RangeRequest {
        key,
        ..Default::default()
    });
    let pool = ctx.pool.clone();
    let mut spec = ctx.spec(a.get_total, 0.0, ctx.opts.clients);
    spec.timeout = deadline.saturating_duration_since(Instant::now());
    let out = drive(&spec, Arc::clone(&rec), move |_, c| {
        let req = pool.request(req.as_ref().clone());
        let pool = pool.clone();
        async move {
            let mut kv = pool.kv(c);
            pool.call(kv.range(req)).await.map(drop)
        }
    })
    .await;
    drop(streams);
    let ops = vec![rec.summarize(out.elapsed), create.summarize(create_elapsed)];
    Ok(ctx.result(
        "watch-get",
        &out,
        ops,
        &cpu,
        vec![format!("watchers: {}", a.watchers)],
    ))
}

/// `lease-keepalive`: one lease and one keep-alive stream per client; each operation
/// is one keep-alive request and its response.
pub async fn lease_keepalive(ctx: &Ctx, a: &LeaseKeepaliveArgs) -> Result<RunResult> {
    let clients = ctx.opts.clients;
    let mut streams = Vec::with_capacity(clients);
    for c in 0..clients {
        let lease = ctx
            .pool
            .control()
            .lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 0 })
            .await
            .map_err(|e| BenchError::Setup(format!("granting a lease: {e}")))?;
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        // The first keep-alive goes out before the call is awaited (see `open_watch`).
        tx.send(pb::LeaseKeepAliveRequest { id: lease.id })
            .await
            .map_err(|_| BenchError::Setup("keep-alive stream closed".into()))?;
        let mut lc = LeaseClient::new(ctx.pool.channel(c));
        let resp = tokio::time::timeout(
            ctx.pool.command_timeout(),
            lc.lease_keep_alive(ctx.pool.stream_request(ReceiverStream::new(rx))),
        )
        .await
        .map_err(|_| BenchError::Setup("opening a keep-alive stream timed out".into()))?
        .map_err(|s| {
            BenchError::Setup(format!("opening a keep-alive stream: {}", status_text(&s)))
        })?;
        let mut rx = resp.into_inner();
        match tokio::time::timeout(ctx.pool.command_timeout(), rx.next()).await {
            Ok(Some(Ok(_))) => {}
            _ => {
                return Err(BenchError::Setup(
                    "no answer to the first keep-alive".into(),
                ))
            }
        }
        streams.push(Arc::new(tokio::sync::Mutex::new((lease.id, tx, rx))));
    }
    let rec = Arc::new(Recorder::new("lease-keepalive", Instant::now()));
    let cpu = CpuMeter::start(&ctx.target_pids);
    let timeout = ctx.pool.command_timeout();
    let streams = Arc::new(streams);
    let s2 = Arc::clone(&streams);
    let out = drive(
        &ctx.spec(a.total, 0.0, clients),
        Arc::clone(&rec),
        move |_, c| {
            let st = Arc::clone(&s2[c]);
            async move {
                let mut g = st.lock().await;
                let id = g.0;
                g.1.send(pb::LeaseKeepAliveRequest { id })
                    .await
                    .map_err(|_| "keep-alive stream closed".to_string())?;
                match tokio::time::timeout(timeout, g.2.next()).await {
                    Ok(Some(Ok(r))) if r.ttl > 0 => Ok(()),
                    Ok(Some(Ok(_))) => Err("lease not found (TTL 0)".to_string()),
                    Ok(Some(Err(s))) => Err(status_text(&s)),
                    Ok(None) => Err("keep-alive stream ended".to_string()),
                    Err(_) => Err("no keep-alive response within the command timeout".to_string()),
                }
            }
        },
    )
    .await;
    for st in streams.iter() {
        let id = st.lock().await.0;
        let _ = ctx
            .pool
            .control()
            .lease_revoke(pb::LeaseRevokeRequest { id })
            .await;
    }
    Ok(ctx.result(
        "lease-keepalive",
        &out,
        vec![rec.summarize(out.elapsed)],
        &cpu,
        Vec::new(),
    ))
}
