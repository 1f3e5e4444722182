//! Recorded traffic: the `etcd` profile, after etcd's robustness traffic (the
//! `kubernetes` profile is in [`crate::kube`]).
//!
//! Clients are of two kinds: pinned to one member, and over every endpoint (they
//! move to the next endpoint after a failure, as etcd's client balances). Each client
//! has one request outstanding at a time, a deadline on every request, no retries,
//! and records through the harness recorder, so the outcome of every request is
//! classified in `harness::record::classify`. Put values are unique
//! (`c<client>-<n>`), which lets the checker place writes whose outcome is unknown.
//!
//! Operation mix (weights): get 15, list 8, past-revision get 10, past-revision list 5,
//! serializable get 5, put 20, delete 5, multi-op txn 10, compare-and-set 5, put with
//! a lease 5, lease revoke 5. After a failed request a client's next operation is a
//! full list. Deletes and lease revokes (writes whose effect cannot be told apart by
//! value) are bounded to [`NON_UNIQUE_WRITERS`] in flight. A compactor compacts at a
//! random recent revision every [`TrafficConfig::compact_every`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gauntlet_api::etcdserverpb as pb;
use gauntlet_harness::{Client, Recorder};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;

/// Every key the traffic touches starts with this.
pub const PREFIX: &str = "/chaos/";
/// The end of the traffic's key range (`PREFIX` with its last byte incremented).
pub const PREFIX_END: &str = "/chaos0";
/// Non-unique writes (delete, lease revoke) in flight at most.
pub const NON_UNIQUE_WRITERS: usize = 3;
/// TTL of the traffic's leases: long enough that none expires during a round (the
/// model does not expire leases).
const LEASE_TTL_S: i64 = 7200;

/// How much traffic, and of what shape.
#[derive(Debug, Clone)]
pub struct TrafficConfig {
    /// Clients pinned to each member.
    pub clients_per_member: usize,
    /// Clients over every endpoint.
    pub cluster_clients: usize,
    /// Operations per second over all clients (an upper bound).
    pub qps: u32,
    /// Keys (`/chaos/key0` ...).
    pub keys: usize,
    /// Deadline of every request.
    pub request_timeout: Duration,
    /// Time between compactions.
    pub compact_every: Duration,
}

impl Default for TrafficConfig {
    fn default() -> TrafficConfig {
        TrafficConfig {
            clients_per_member: 2,
            cluster_clients: 2,
            qps: 200,
            keys: 10,
            request_timeout: Duration::from_secs(1),
            compact_every: Duration::from_millis(1000),
        }
    }
}

/// A key of the traffic.
pub fn key(i: usize) -> String {
    format!("{PREFIX}key{i}")
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Get,
    List,
    StaleGet,
    StaleList,
    SerializableGet,
    Put,
    Delete,
    MultiOpTxn,
    CompareAndSet,
    PutWithLease,
    LeaseRevoke,
}

const WEIGHTS: &[(Op, u32)] = &[
    (Op::Get, 15),
    (Op::List, 8),
    (Op::StaleGet, 10),
    (Op::StaleList, 5),
    (Op::SerializableGet, 5),
    (Op::Put, 20),
    (Op::Delete, 5),
    (Op::MultiOpTxn, 10),
    (Op::CompareAndSet, 5),
    (Op::PutWithLease, 5),
    (Op::LeaseRevoke, 5),
];

struct ClientState {
    index: usize,
    client: Client,
    rng: StdRng,
    written: u64,
    last_revision: i64,
    mod_revisions: HashMap<String, i64>,
    leases: Vec<i64>,
    next_lease: i64,
    failed_last: bool,
    cfg: TrafficConfig,
    non_unique: Arc<Semaphore>,
}

fn list_request() -> pb::RangeRequest {
    pb::RangeRequest {
        key: PREFIX.into(),
        range_end: PREFIX_END.into(),
        ..Default::default()
    }
}

impl ClientState {
    fn value(&mut self) -> Vec<u8> {
        self.written += 1;
        format!("c{}-{}", self.index, self.written).into_bytes()
    }

    fn pick_key(&mut self, keys: usize) -> String {
        key(self.rng.gen_range(0..keys))
    }

    fn seen(&mut self, h: &Option<pb::ResponseHeader>) {
        if let Some(h) = h {
            self.last_revision = self.last_revision.max(h.revision);
        }
    }

    fn seen_kvs(&mut self, kvs: &[gauntlet_api::mvccpb::KeyValue]) {
        for kv in kvs {
            self.mod_revisions.insert(
                String::from_utf8_lossy(&kv.key).into_owned(),
                kv.mod_revision,
            );
        }
    }

    fn past_revision(&mut self) -> i64 {
        if self.last_revision <= 1 {
            0
        } else {
            (self.last_revision - self.rng.gen_range(0..=10)).max(1)
        }
    }

    /// Runs one operation; `Err` when the request failed (any way).
    async fn step(&mut self) -> Result<(), ()> {
        let cfg = &self.cfg.clone();
        let non_unique = &self.non_unique.clone();
        let op = if self.failed_last {
            Op::List
        } else {
            let total: u32 = WEIGHTS.iter().map(|w| w.1).sum();
            let mut x = self.rng.gen_range(0..total);
            let mut chosen = Op::Get;
            for (op, w) in WEIGHTS {
                if x < *w {
                    chosen = *op;
                    break;
                }
                x -= w;
            }
            chosen
        };
        let c = self.client.clone();
        match op {
            Op::Get | Op::StaleGet | Op::SerializableGet => {
                let revision = if matches!(op, Op::StaleGet) {
                    self.past_revision()
                } else {
                    0
                };
                let r = c
                    .range(pb::RangeRequest {
                        key: self.pick_key(cfg.keys).into_bytes(),
                        revision,
                        serializable: matches!(op, Op::SerializableGet),
                        ..Default::default()
                    })
                    .await
                    .map_err(drop)?;
                self.seen(&r.header);
                self.seen_kvs(&r.kvs);
            }
            Op::List | Op::StaleList => {
                let mut req = list_request();
                if matches!(op, Op::StaleList) {
                    req.revision = self.past_revision();
                }
                let r = c.range(req).await.map_err(drop)?;
                self.seen(&r.header);
                self.seen_kvs(&r.kvs);
            }
            Op::Put => {
                let key = self.pick_key(cfg.keys).into_bytes();
                let value = self.value();
                let r = c
                    .put_request(pb::PutRequest {
                        key,
                        value,
                        ..Default::default()
                    })
                    .await
                    .map_err(drop)?;
                self.seen(&r.header);
            }
            Op::Delete | Op::LeaseRevoke => {
                let Ok(_permit) = non_unique.try_acquire() else {
                    return Box::pin(self.put_only(cfg)).await;
                };
                if matches!(op, Op::LeaseRevoke) {
                    let Some(id) = self.leases.pop() else {
                        return Box::pin(self.put_only(cfg)).await;
                    };
                    let r = c
                        .lease_revoke(pb::LeaseRevokeRequest { id })
                        .await
                        .map_err(drop)?;
                    self.seen(&r.header);
                } else {
                    let r = c
                        .delete_range(pb::DeleteRangeRequest {
                            key: self.pick_key(cfg.keys).into_bytes(),
                            ..Default::default()
                        })
                        .await
                        .map_err(drop)?;
                    self.seen(&r.header);
                }
            }
            Op::MultiOpTxn => {
                let mut keys: Vec<usize> = (0..cfg.keys).collect();
                keys.shuffle(&mut self.rng);
                keys.truncate(4.min(cfg.keys));
                let mut ops = Vec::new();
                for (n, k) in keys.into_iter().enumerate() {
                    let request = if n == 0 || self.rng.gen_bool(0.5) {
                        pb::request_op::Request::RequestPut(pb::PutRequest {
                            key: key(k).into_bytes(),
                            value: self.value(),
                            ..Default::default()
                        })
                    } else {
                        pb::request_op::Request::RequestRange(pb::RangeRequest {
                            key: key(k).into_bytes(),
                            ..Default::default()
                        })
                    };
                    ops.push(pb::RequestOp {
                        request: Some(request),
                    });
                }
                let r = c
                    .txn(pb::TxnRequest {
                        compare: vec![],
                        success: ops,
                        failure: vec![],
                    })
                    .await
                    .map_err(drop)?;
                self.seen(&r.header);
            }
            Op::CompareAndSet => {
                let k = self.pick_key(cfg.keys);
                let expected = self.mod_revisions.get(&k).copied().unwrap_or(0);
                let value = self.value();
                let r = c
                    .txn(pb::TxnRequest {
                        compare: vec![pb::Compare {
                            key: k.clone().into_bytes(),
                            target: pb::compare::CompareTarget::Mod as i32,
                            result: pb::compare::CompareResult::Equal as i32,
                            target_union: Some(pb::compare::TargetUnion::ModRevision(expected)),
                            range_end: vec![],
                        }],
                        success: vec![pb::RequestOp {
                            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                                key: k.clone().into_bytes(),
                                value,
                                ..Default::default()
                            })),
                        }],
                        failure: vec![pb::RequestOp {
                            request: Some(pb::request_op::Request::RequestRange(
                                pb::RangeRequest {
                                    key: k.into_bytes(),
                                    ..Default::default()
                                },
                            )),
                        }],
                    })
                    .await
                    .map_err(drop)?;
                self.seen(&r.header);
            }
            Op::PutWithLease => {
                self.next_lease += 1;
                let id = ((self.index as i64 + 1) << 32) | self.next_lease;
                let g = c
                    .lease_grant(pb::LeaseGrantRequest {
                        ttl: LEASE_TTL_S,
                        id,
                    })
                    .await
                    .map_err(drop)?;
                self.seen(&g.header);
                self.leases.push(id);
                let key = self.pick_key(cfg.keys).into_bytes();
                let value = self.value();
                let r = c
                    .put_request(pb::PutRequest {
                        key,
                        value,
                        lease: id,
                        ..Default::default()
                    })
                    .await
                    .map_err(drop)?;
                self.seen(&r.header);
            }
        }
        Ok(())
    }

    async fn put_only(&mut self, cfg: &TrafficConfig) -> Result<(), ()> {
        let key = self.pick_key(cfg.keys).into_bytes();
        let value = self.value();
        let r = self
            .client
            .put_request(pb::PutRequest {
                key,
                value,
                ..Default::default()
            })
            .await
            .map_err(drop)?;
        self.seen(&r.header);
        Ok(())
    }
}

/// Runs `step` every `period` (never two at once, skipped ticks not made up) until
/// `stop`; counts requests and failures (`step` returns whether it succeeded).
async fn paced<S, F>(period: Duration, stop: &AtomicBool, state: &mut S, mut step: F) -> ClientStats
where
    F: for<'a> FnMut(&'a mut S) -> futures::future::BoxFuture<'a, bool>,
{
    let mut stats = ClientStats::default();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        stats.requests += 1;
        if !step(state).await {
            stats.failed += 1;
        }
    }
    stats
}

/// Counts one client made.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientStats {
    /// Requests sent.
    pub requests: u64,
    /// Requests that failed (any way).
    pub failed: u64,
}

/// Traffic running in the background; [`Traffic::stop`] ends it.
#[derive(Debug)]
pub struct Traffic {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<ClientStats>>,
    segments: crate::kube::Segments,
}

impl Traffic {
    /// Starts the clients and the compactor. `base` is a client over every member
    /// (endpoint `i` is member `i`); every request is recorded into `recorder`.
    pub fn start(
        base: &Client,
        recorder: Arc<dyn Recorder>,
        cfg: &TrafficConfig,
        profile: crate::scenario::TrafficProfile,
        seed: u64,
    ) -> Result<Traffic, gauntlet_harness::ClientError> {
        let segments: crate::kube::Segments = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let non_unique = Arc::new(Semaphore::new(NON_UNIQUE_WRITERS));
        let members = base.endpoints().len();
        let mut clients = Vec::new();
        for m in 0..members {
            for _ in 0..cfg.clients_per_member {
                clients.push(base.pinned(m)?.with_recorder(recorder.clone()));
            }
        }
        for _ in 0..cfg.cluster_clients {
            clients.push(base.with_recorder(recorder.clone()));
        }
        let n = clients.len().max(1);
        let period = Duration::from_secs_f64(n as f64 / f64::from(cfg.qps.max(1)));
        let mut tasks = Vec::new();
        for (index, client) in clients.into_iter().enumerate() {
            let stop = stop.clone();
            let non_unique = non_unique.clone();
            let cfg = cfg.clone();
            let rng =
                StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
            if profile == crate::scenario::TrafficProfile::Kubernetes {
                let mut kc = crate::kube::client(index, client, rng, segments.clone(), &cfg);
                tasks.push(tokio::spawn(async move {
                    paced(period, &stop, &mut kc, |kc| {
                        Box::pin(async move {
                            let ok = kc.step().await.is_ok();
                            kc.failed_last = !ok;
                            ok
                        })
                    })
                    .await
                }));
                continue;
            }
            let mut st = ClientState {
                index,
                client,
                rng,
                written: 0,
                last_revision: 0,
                mod_revisions: HashMap::new(),
                leases: Vec::new(),
                next_lease: 0,
                failed_last: false,
                cfg,
                non_unique,
            };
            tasks.push(tokio::spawn(async move {
                paced(period, &stop, &mut st, |st| {
                    Box::pin(async move {
                        let ok = st.step().await.is_ok();
                        st.failed_last = !ok;
                        ok
                    })
                })
                .await
            }));
        }
        let compactor = base.with_recorder(recorder);
        if profile == crate::scenario::TrafficProfile::Kubernetes {
            tasks.push(tokio::spawn(crate::kube::compactor(
                compactor,
                cfg.compact_every,
                stop.clone(),
            )));
            return Ok(Traffic {
                stop,
                tasks,
                segments,
            });
        }
        // The compactor: a random revision between the last compaction and now.
        let stop2 = stop.clone();
        let every = cfg.compact_every;
        let mut rng = StdRng::seed_from_u64(seed.rotate_left(17));
        tasks.push(tokio::spawn(async move {
            let mut stats = ClientStats::default();
            let mut last = 1i64;
            while !stop2.load(Ordering::Relaxed) {
                tokio::time::sleep(every).await;
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(r) = compactor
                    .range(pb::RangeRequest {
                        count_only: true,
                        ..list_request()
                    })
                    .await
                else {
                    continue;
                };
                let now = r.header.map_or(1, |h| h.revision);
                if now <= last {
                    continue;
                }
                let at = rng.gen_range(last..=now);
                stats.requests += 1;
                match compactor
                    .compact(pb::CompactionRequest {
                        revision: at,
                        physical: false,
                    })
                    .await
                {
                    Ok(_) => last = at,
                    Err(_) => stats.failed += 1,
                }
            }
            stats
        }));
        Ok(Traffic {
            stop,
            tasks,
            segments,
        })
    }

    /// Stops every client after its request in flight; returns the summed counts and
    /// the watch segments the clients' own watches collected (kubernetes profile).
    pub async fn stop(self) -> (ClientStats, Vec<gauntlet_checker::watch::Watcher>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = ClientStats::default();
        for t in self.tasks {
            if let Ok(s) = t.await {
                total.requests += s.requests;
                total.failed += s.failed;
            }
        }
        let segs = std::mem::take(
            &mut *self
                .segments
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        (total, segs)
    }
}

/// A full list of the traffic's keys (for the final read).
pub fn full_list() -> pb::RangeRequest {
    list_request()
}
