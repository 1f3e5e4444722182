//! The `kubernetes` traffic profile: the shapes the Kubernetes API server sends.
//!
//! Objects live under `/chaos/registry/pods/default/`. Writes are the API server's
//! optimistic concurrency: an update is a txn that puts only if the key's
//! `mod_revision` is still the one the client last read (else it reads the key), a
//! delete likewise, a create puts only if the key does not exist (`create_revision ==
//! 0`). Creates happen while there are fewer than [`MIN_OBJECTS`] objects, deletes
//! while there are more than [`MAX_OBJECTS`]. Reads are gets (current, at a past
//! revision, at the revision of the client's last list), stale lists, and mostly
//! list-and-watch: a paginated list (limit 10, every page at the first page's
//! revision) then a watch of the prefix from the list's revision + 1 with `prev_kv`
//! and progress notifications, kept [`WATCH_FOR`]; its responses are judged with the
//! members' streams. Events are written with a lease, as the API server does. The
//! compactor works as the API server's: a txn that bumps `compact_rev_key` only if its
//! version is unchanged, and a compaction at the revision recorded the time before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gauntlet_api::etcdserverpb as pb;
use gauntlet_checker::watch::{WatchRequest, Watcher};
use gauntlet_harness::Client;
use rand::rngs::StdRng;
use rand::Rng;

use crate::convert::watch_response;
use crate::traffic::{ClientStats, TrafficConfig};

/// Where pods live.
pub const PODS: &str = "/chaos/registry/pods/default/";
/// The end of the pods range.
pub const PODS_END: &str = "/chaos/registry/pods/default0";
/// Where events live (written with a lease).
pub const EVENTS: &str = "/chaos/registry/events/default/";
/// The API server's compaction bookkeeping key.
pub const COMPACT_KEY: &str = "/chaos/compact_rev_key";
/// Creates happen below this many objects.
pub const MIN_OBJECTS: usize = 5;
/// Deletes happen above this many objects.
pub const MAX_OBJECTS: usize = 15;
/// How long a list-and-watch keeps its watch.
pub const WATCH_FOR: Duration = Duration::from_millis(500);
/// Page size of lists.
const PAGE: i64 = 10;
/// Lease TTL of events (no lease expires during a round: the model does not expire).
const EVENT_TTL_S: i64 = 7200;

/// Watch segments the traffic's list-and-watch calls collected, shared by all clients.
pub type Segments = Arc<Mutex<Vec<Watcher>>>;

fn pod(n: u64) -> String {
    format!("{PODS}pod-{n}")
}

/// One kubernetes-shaped client.
pub(crate) struct KubeClient {
    pub index: usize,
    pub client: Client,
    pub rng: StdRng,
    pub written: u64,
    pub objects: Vec<(String, i64)>,
    pub last_list_rev: i64,
    pub next_pod: u64,
    pub next_lease: i64,
    pub segments: Segments,
    pub failed_last: bool,
}

fn cmp_mod(key: &str, rev: i64) -> pb::Compare {
    pb::Compare {
        key: key.as_bytes().to_vec(),
        target: pb::compare::CompareTarget::Mod as i32,
        result: pb::compare::CompareResult::Equal as i32,
        target_union: Some(pb::compare::TargetUnion::ModRevision(rev)),
        range_end: vec![],
    }
}

fn get_op(key: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestRange(pb::RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

fn put_op(key: &str, value: Vec<u8>, lease: i64) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
            key: key.as_bytes().to_vec(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

impl KubeClient {
    fn value(&mut self) -> Vec<u8> {
        self.written += 1;
        format!("k{}-{}", self.index, self.written).into_bytes()
    }

    fn learn(&mut self, key: &str, mod_rev: Option<i64>) {
        self.objects.retain(|(k, _)| k != key);
        if let Some(r) = mod_rev {
            self.objects.push((key.to_string(), r));
        }
    }

    /// The txn's own answer to a failed compare: the key's current state.
    fn learn_from_failure(&mut self, key: &str, r: &pb::TxnResponse) {
        if r.succeeded {
            return;
        }
        if let Some(pb::response_op::Response::ResponseRange(got)) =
            r.responses.first().and_then(|x| x.response.as_ref())
        {
            self.learn(key, got.kvs.first().map(|kv| kv.mod_revision));
        }
    }

    pub(crate) async fn step(&mut self) -> Result<(), ()> {
        if self.failed_last || self.rng.gen_bool(0.5) {
            return self.read().await;
        }
        self.write().await
    }

    async fn read(&mut self) -> Result<(), ()> {
        let c = self.client.clone();
        let x = self.rng.gen_range(0..100);
        if self.failed_last || x < 80 {
            return self.list_and_watch().await;
        }
        let key = match self
            .objects
            .get(self.rng.gen_range(0..self.objects.len().max(1)))
        {
            Some((k, _)) => k.clone(),
            None => pod(0),
        };
        let revision = match x {
            80..=84 => 0,
            85..=86 => (self.last_list_rev - self.rng.gen_range(0..5)).max(0),
            87..=94 => self.last_list_rev,
            _ => {
                // A stale list.
                let r = c
                    .range(pb::RangeRequest {
                        key: PODS.into(),
                        range_end: PODS_END.into(),
                        revision: (self.last_list_rev - self.rng.gen_range(0..5)).max(0),
                        ..Default::default()
                    })
                    .await
                    .map_err(drop)?;
                let _ = r;
                return Ok(());
            }
        };
        c.range(pb::RangeRequest {
            key: key.into_bytes(),
            revision,
            ..Default::default()
        })
        .await
        .map_err(drop)?;
        Ok(())
    }

    async fn list_and_watch(&mut self) -> Result<(), ()> {
        let c = self.client.clone();
        let mut from = PODS.as_bytes().to_vec();
        let mut revision = 0;
        let mut seen = Vec::new();
        loop {
            let page = c
                .range(pb::RangeRequest {
                    key: from.clone(),
                    range_end: PODS_END.into(),
                    limit: PAGE,
                    revision,
                    ..Default::default()
                })
                .await
                .map_err(drop)?;
            if revision == 0 {
                revision = page.header.as_ref().map_or(0, |h| h.revision);
            }
            for kv in &page.kvs {
                seen.push((
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    kv.mod_revision,
                ));
            }
            match (page.more, page.kvs.last()) {
                (true, Some(last)) => {
                    from = last.key.clone();
                    from.push(0);
                }
                _ => break,
            }
        }
        self.objects = seen;
        self.last_list_rev = revision;
        // The informer's watch: from the list's revision on.
        let create = pb::WatchCreateRequest {
            key: PODS.into(),
            range_end: PODS_END.into(),
            start_revision: revision + 1,
            progress_notify: true,
            prev_kv: true,
            ..Default::default()
        };
        let Ok((mut stream, created)) = c.watch(create).await else {
            return Err(());
        };
        let mut seg = Watcher {
            id: 1_000_000 + (self.index as u64) * 100_000 + self.written,
            request: WatchRequest {
                key: PODS.into(),
                range_end: Some(PODS_END.into()),
                start_revision: revision + 1,
                filter_no_put: false,
                filter_no_delete: false,
                prev_kv: true,
            },
            created_revision: created.header.as_ref().map_or(0, |h| h.revision),
            responses: Vec::new(),
        };
        self.written += 1;
        if created.canceled || created.compact_revision > 0 {
            seg.responses.push(watch_response(&created));
        } else {
            let until = Instant::now() + WATCH_FOR;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                match stream.recv(left).await {
                    Ok(r) => {
                        let stop = r.canceled || r.compact_revision > 0;
                        seg.responses.push(watch_response(&r));
                        if stop {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        self.segments
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(seg);
        Ok(())
    }

    async fn write(&mut self) -> Result<(), ()> {
        let c = self.client.clone();
        let n = self.objects.len();
        if n < MIN_OBJECTS || (n <= MAX_OBJECTS && self.rng.gen_range(0..100) < 5) {
            // Create: only if absent.
            self.next_pod += 1;
            let key = pod(u64::try_from(self.index).unwrap_or(0) * 1_000_000 + self.next_pod);
            let value = self.value();
            let r = c
                .txn(pb::TxnRequest {
                    compare: vec![pb::Compare {
                        key: key.as_bytes().to_vec(),
                        target: pb::compare::CompareTarget::Create as i32,
                        result: pb::compare::CompareResult::Equal as i32,
                        target_union: Some(pb::compare::TargetUnion::CreateRevision(0)),
                        range_end: vec![],
                    }],
                    success: vec![put_op(&key, value, 0)],
                    failure: vec![get_op(&key)],
                })
                .await
                .map_err(drop)?;
            if r.succeeded {
                self.learn(&key, r.header.as_ref().map(|h| h.revision));
            }
            self.learn_from_failure(&key, &r);
            // The API server records an event for it, with a lease.
            if self.rng.gen_range(0..4) == 0 {
                self.next_lease += 1;
                let id = ((self.index as i64 + 1) << 32) | self.next_lease;
                c.lease_grant(pb::LeaseGrantRequest {
                    ttl: EVENT_TTL_S,
                    id,
                })
                .await
                .map_err(drop)?;
                let ev = format!("{EVENTS}ev-{}-{}", self.index, self.next_lease);
                let value = self.value();
                c.put_request(pb::PutRequest {
                    key: ev.into_bytes(),
                    value,
                    lease: id,
                    ..Default::default()
                })
                .await
                .map_err(drop)?;
            }
            return Ok(());
        }
        let Some((key, rev)) = self.objects.get(self.rng.gen_range(0..n)).cloned() else {
            return Ok(());
        };
        let delete = n > MAX_OBJECTS || self.rng.gen_range(0..100) < 5;
        let success = if delete {
            vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestDeleteRange(
                    pb::DeleteRangeRequest {
                        key: key.as_bytes().to_vec(),
                        ..Default::default()
                    },
                )),
            }]
        } else {
            let value = self.value();
            vec![put_op(&key, value, 0)]
        };
        let r = c
            .txn(pb::TxnRequest {
                compare: vec![cmp_mod(&key, rev)],
                success,
                failure: vec![get_op(&key)],
            })
            .await
            .map_err(drop)?;
        if r.succeeded {
            let now = r.header.as_ref().map(|h| h.revision);
            self.learn(&key, if delete { None } else { now });
        }
        self.learn_from_failure(&key, &r);
        Ok(())
    }
}

/// The API server's compactor: every `every`, bump `compact_rev_key` by a txn guarded
/// on its version, and when that succeeded compact at the revision recorded last time.
pub(crate) async fn compactor(
    client: Client,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> ClientStats {
    let mut stats = ClientStats::default();
    let mut version = 0i64;
    let mut last_rev = 0i64;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(every).await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        stats.requests += 1;
        let Ok(current) = client
            .range(pb::RangeRequest {
                key: COMPACT_KEY.into(),
                ..Default::default()
            })
            .await
        else {
            stats.failed += 1;
            continue;
        };
        let now = current.header.as_ref().map_or(0, |h| h.revision);
        let r = client
            .txn(pb::TxnRequest {
                compare: vec![pb::Compare {
                    key: COMPACT_KEY.into(),
                    target: pb::compare::CompareTarget::Version as i32,
                    result: pb::compare::CompareResult::Equal as i32,
                    target_union: Some(pb::compare::TargetUnion::Version(version)),
                    range_end: vec![],
                }],
                success: vec![put_op(COMPACT_KEY, now.to_string().into_bytes(), 0)],
                failure: vec![get_op(COMPACT_KEY)],
            })
            .await;
        match r {
            Ok(r) if r.succeeded => {
                version += 1;
                if last_rev > 0 {
                    stats.requests += 1;
                    if client
                        .compact(pb::CompactionRequest {
                            revision: last_rev,
                            physical: false,
                        })
                        .await
                        .is_err()
                    {
                        stats.failed += 1;
                    }
                }
                last_rev = now;
            }
            Ok(r) => {
                // Another compactor moved it: learn its version.
                if let Some(pb::response_op::Response::ResponseRange(got)) =
                    r.responses.first().and_then(|x| x.response.as_ref())
                {
                    version = got.kvs.first().map_or(0, |kv| kv.version);
                }
            }
            Err(_) => stats.failed += 1,
        }
    }
    stats
}

/// Everything the kubernetes profile needs to start a client.
pub(crate) fn client(
    index: usize,
    client: Client,
    rng: StdRng,
    segments: Segments,
    _cfg: &TrafficConfig,
) -> KubeClient {
    KubeClient {
        index,
        client,
        rng,
        written: 0,
        objects: Vec::new(),
        last_list_rev: 0,
        next_pod: 0,
        next_lease: 0,
        segments,
        failed_last: false,
    }
}
