//! The etcd gRPC services over the raft node and the state machine.
//!
//! Writes are validated (etcd's checks, request size), proposed through raft and
//! answered when applied. Linearizable reads wait for a ReadIndex barrier, then read
//! the local state; serializable reads read it directly. Every response carries a
//! header with the cluster id, this member's id, the store revision and the raft term.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::Stream;
use gauntlet_api::etcdserverpb::{
    self as pb, cluster_server::Cluster, kv_server::Kv, lease_server::Lease,
    maintenance_server::Maintenance, watch_server::Watch,
};
use gauntlet_api::rpctypes::{self, EtcdError};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::config::API_VERSION;
use crate::lease::Lessor;
use crate::node::{Applied, NodeHandle};
use crate::state::{self, Command, Op, WatchSpec, WatchUpdate};

/// Bytes of gRPC framing etcd allows beyond `--max-request-bytes`.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// Responses queued per watch stream before the stream's watchers wait.
const WATCH_STREAM_QUEUE: usize = 1024;
/// Updates queued per watcher before it falls back to catching up from history.
const WATCHER_QUEUE: usize = 256;

/// What every service needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The raft node.
    pub node: NodeHandle,
    /// Cluster id for headers.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
    /// `--max-txn-ops`.
    pub max_txn_ops: usize,
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// Lease timers (leader side).
    pub lessor: Arc<Lessor>,
    /// Members: id → (name, peer URLs, client URLs as last learned).
    pub members: Arc<RwLock<HashMap<u64, MemberRecord>>>,
    /// Peer clients by member id, for forwarding to the leader.
    pub peers: Arc<HashMap<u64, crate::peerpb::peer_client::PeerClient<tonic::transport::Channel>>>,
    /// Interval of periodic watch progress notifications.
    pub progress_interval: Duration,
    /// Effective backend quota.
    pub quota_bytes: u64,
}

/// A member as MemberList shows it.
#[derive(Debug, Clone, Default)]
pub struct MemberRecord {
    /// Name (empty until the member was heard from).
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs (empty until the member was heard from).
    pub client_urls: Vec<String>,
}

fn status(e: EtcdError) -> Status {
    e.status()
}

impl Ctx {
    fn header(&self, revision: i64, term: u64) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: term,
        })
    }

    fn current_header(&self) -> Option<pb::ResponseHeader> {
        let rev = self.node.read_state().revision();
        self.header(rev, self.node.status.term.load(Ordering::Relaxed))
    }

    fn check_size(&self, len: usize) -> Result<(), Status> {
        if len > self.max_request_bytes {
            return Err(status(rpctypes::REQUEST_TOO_LARGE));
        }
        Ok(())
    }

    async fn write(&self, op: Op) -> Result<Applied, Status> {
        let cmd = Command { op: Some(op) };
        self.check_size(cmd.encoded_len())?;
        state::validate(&cmd, self.max_txn_ops).map_err(status)?;
        if self.node.status.db_size_bytes.load(Ordering::Relaxed) > self.quota_bytes {
            return Err(status(rpctypes::NO_SPACE));
        }
        self.node.propose(cmd).await.map_err(status)
    }

    fn read(&self, req: &pb::RangeRequest) -> Result<pb::RangeResponse, Status> {
        state::validate_range(req).map_err(status)?;
        let st = self.node.read_state();
        let mut r = st.range(req).map_err(status)?;
        r.header = self.header(st.revision(), self.node.status.term.load(Ordering::Relaxed));
        Ok(r)
    }
}

/// KV service.
#[derive(Debug, Clone)]
pub struct KvService(pub Ctx);

macro_rules! expect_response {
    ($applied:expr, $variant:ident, $ctx:expr) => {{
        let a = $applied;
        match a.outcome {
            Ok(state::Response::$variant(mut r)) => {
                r.header = $ctx.header(a.revision, a.term);
                Ok(Response::new(r))
            }
            Ok(other) => Err(Status::internal(format!(
                "unexpected apply result {other:?}"
            ))),
            Err(e) => Err(status(e)),
        }
    }};
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let req = request.into_inner();
        if !req.serializable {
            self.0.node.read_index().await.map_err(status)?;
        }
        self.0.read(&req).map(Response::new)
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let a = self.0.write(Op::Put(request.into_inner())).await?;
        expect_response!(a, Put, self.0)
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let a = self.0.write(Op::DeleteRange(request.into_inner())).await?;
        expect_response!(a, DeleteRange, self.0)
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let a = self.0.write(Op::Txn(request.into_inner())).await?;
        expect_response!(a, Txn, self.0)
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let a = self.0.write(Op::Compaction(request.into_inner())).await?;
        expect_response!(a, Compaction, self.0)
    }
}

/// Lease service.
#[derive(Debug, Clone)]
pub struct LeaseService(pub Ctx);

impl LeaseService {
    fn leader_peer(
        &self,
    ) -> Result<crate::peerpb::peer_client::PeerClient<tonic::transport::Channel>, Status> {
        let leader = self.0.node.status.leader.load(Ordering::Relaxed);
        if leader == 0 {
            return Err(status(rpctypes::NO_LEADER));
        }
        self.0
            .peers
            .get(&leader)
            .cloned()
            .ok_or_else(|| status(rpctypes::NO_LEADER))
    }

    async fn renew(&self, id: i64) -> Result<i64, Status> {
        if self.0.node.status.is_leader.load(Ordering::Relaxed) {
            return match self.0.lessor.renew(id) {
                Ok(ttl) => Ok(ttl),
                Err(e) if e == rpctypes::LEASE_NOT_FOUND => Ok(0),
                Err(e) => Err(status(e)),
            };
        }
        let mut peer = self.leader_peer()?;
        let fut = peer.lease_renew(crate::peerpb::LeaseRenewRequest { id });
        match tokio::time::timeout(self.0.node.request_timeout, fut).await {
            Ok(Ok(r)) => Ok(r.into_inner().ttl),
            Ok(Err(s)) if s.message() == rpctypes::LEASE_NOT_FOUND.message => Ok(0),
            Ok(Err(s)) => Err(s),
            Err(_) => Err(status(rpctypes::TIMEOUT)),
        }
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let mut req = request.into_inner();
        if req.ttl > 9_000_000_000 {
            return Err(status(rpctypes::LEASE_TTL_TOO_LARGE));
        }
        req.ttl = req.ttl.max(self.0.lessor.min_ttl_s);
        if req.id == 0 {
            req.id = loop {
                let id = rand::random::<i64>() & i64::MAX;
                if id != 0 {
                    break id;
                }
            };
        }
        let a = self.0.write(Op::LeaseGrant(req)).await?;
        expect_response!(a, LeaseGrant, self.0)
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let a = self.0.write(Op::LeaseRevoke(request.into_inner())).await?;
        expect_response!(a, LeaseRevoke, self.0)
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send + 'static>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let req = match inbound.message().await {
                    Ok(Some(r)) => r,
                    Ok(None) | Err(_) => return,
                };
                let resp = match this.renew(req.id).await {
                    Ok(ttl) => Ok(pb::LeaseKeepAliveResponse {
                        header: this.0.current_header(),
                        id: req.id,
                        ttl,
                    }),
                    Err(s) => Err(s),
                };
                let stop = resp.is_err();
                if tx.send(resp).await.is_err() || stop {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        self.0.node.read_index().await.map_err(status)?;
        let lease = self.0.node.read_state().lease(req.id);
        let header = self.0.current_header();
        let Some(lease) = lease else {
            // etcd answers TTL -1 for a lease that does not exist.
            return Ok(Response::new(pb::LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: vec![],
            }));
        };
        let ttl = if self.0.node.status.is_leader.load(Ordering::Relaxed) {
            self.0
                .lessor
                .remaining(req.id)
                .map_err(status)?
                .unwrap_or(-1)
        } else {
            let mut peer = self.leader_peer()?;
            let fut = peer.lease_remaining(crate::peerpb::LeaseRemainingRequest { id: req.id });
            match tokio::time::timeout(self.0.node.request_timeout, fut).await {
                Ok(Ok(r)) => {
                    let r = r.into_inner();
                    if r.found {
                        r.ttl
                    } else {
                        -1
                    }
                }
                Ok(Err(s)) => return Err(s),
                Err(_) => return Err(status(rpctypes::TIMEOUT)),
            }
        };
        Ok(Response::new(pb::LeaseTimeToLiveResponse {
            header,
            id: req.id,
            ttl,
            granted_ttl: lease.granted_ttl,
            keys: if req.keys { lease.keys } else { vec![] },
        }))
    }

    async fn lease_leases(
        &self,
        _request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        self.0.node.read_index().await.map_err(status)?;
        let leases = self.0.node.read_state().leases();
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: self.0.current_header(),
            leases: leases
                .into_iter()
                .map(|l| pb::LeaseStatus { id: l.id })
                .collect(),
        }))
    }
}

/// Cluster service (MemberList only, for now).
#[derive(Debug, Clone)]
pub struct ClusterService(pub Ctx);

impl ClusterService {
    fn later(what: &str) -> Status {
        Status::unimplemented(format!("{what} is not implemented by gauntlet-server yet"))
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _r: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        Err(Self::later("MemberAdd"))
    }
    async fn member_remove(
        &self,
        _r: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        Err(Self::later("MemberRemove"))
    }
    async fn member_update(
        &self,
        _r: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(Self::later("MemberUpdate"))
    }
    async fn member_promote(
        &self,
        _r: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        Err(Self::later("MemberPromote"))
    }
    async fn member_list(
        &self,
        request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.0.node.read_index().await.map_err(status)?;
        }
        let members = self
            .0
            .members
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut list: Vec<pb::Member> = members
            .iter()
            .map(|(id, m)| pb::Member {
                id: *id,
                name: m.name.clone(),
                peer_ur_ls: m.peer_urls.clone(),
                client_ur_ls: m.client_urls.clone(),
                is_learner: false,
            })
            .collect();
        list.sort_by_key(|m| m.id);
        Ok(Response::new(pb::MemberListResponse {
            header: self.0.current_header(),
            members: list,
        }))
    }
}

/// Maintenance service.
#[derive(Debug, Clone)]
pub struct MaintenanceService(pub Ctx);

type SnapshotStream =
    Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        let req = request.into_inner();
        if req.action != pb::alarm_request::AlarmAction::Get as i32 {
            return Err(ClusterService::later("activating or deactivating alarms"));
        }
        Ok(Response::new(pb::AlarmResponse {
            header: self.0.current_header(),
            alarms: vec![],
        }))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let st = self.0.node.read_state();
        let db = i64::try_from(st.db_size_bytes()).unwrap_or(i64::MAX);
        let s = &self.0.node.status;
        let term = s.term.load(Ordering::Relaxed);
        Ok(Response::new(pb::StatusResponse {
            header: self.0.header(st.revision(), term),
            version: API_VERSION.to_string(),
            db_size: db,
            leader: s.leader.load(Ordering::Relaxed),
            raft_index: s.raft_index.load(Ordering::Relaxed),
            raft_term: term,
            raft_applied_index: s.applied.load(Ordering::Relaxed),
            errors: vec![],
            db_size_in_use: db,
            is_learner: false,
        }))
    }

    async fn defragment(
        &self,
        _r: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        Err(ClusterService::later("Defragment"))
    }

    async fn hash(
        &self,
        _r: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        let st = self.0.node.read_state();
        let h = st.hash_kv(0).map_err(status)?;
        Ok(Response::new(pb::HashResponse {
            header: self.0.header(
                st.revision(),
                self.0.node.status.term.load(Ordering::Relaxed),
            ),
            hash: h.hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        let st = self.0.node.read_state();
        let mut h = st.hash_kv(request.into_inner().revision).map_err(status)?;
        h.header = self.0.header(
            st.revision(),
            self.0.node.status.term.load(Ordering::Relaxed),
        );
        Ok(Response::new(h))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _r: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(ClusterService::later("Snapshot"))
    }

    async fn move_leader(
        &self,
        _r: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        Err(ClusterService::later("MoveLeader"))
    }

    async fn downgrade(
        &self,
        _r: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(ClusterService::later("Downgrade"))
    }
}

/// Watch service.
#[derive(Debug, Clone)]
pub struct WatchService(pub Ctx);

struct Watcher {
    hub_id: state::WatcherId,
    progress_notify: bool,
    fragment: bool,
}

impl WatchService {
    fn split(&self, resp: pb::WatchResponse, fragment: bool) -> Vec<pb::WatchResponse> {
        if !fragment || resp.encoded_len() <= self.0.max_request_bytes || resp.events.len() <= 1 {
            return vec![resp];
        }
        let mut out = Vec::new();
        let mut cur = pb::WatchResponse {
            events: vec![],
            ..resp.clone()
        };
        let mut size = 0usize;
        for e in resp.events {
            let len = e.encoded_len();
            if !cur.events.is_empty() && size + len > self.0.max_request_bytes {
                let next = pb::WatchResponse {
                    events: vec![],
                    ..cur.clone()
                };
                cur.fragment = true;
                out.push(std::mem::replace(&mut cur, next));
                size = 0;
            }
            size += len;
            cur.events.push(e);
        }
        cur.fragment = false;
        out.push(cur);
        out
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send + 'static>>;

    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut inbound = request.into_inner();
        let (out_tx, out_rx) =
            mpsc::channel::<Result<pb::WatchResponse, Status>>(WATCH_STREAM_QUEUE);
        let this = self.clone();
        tokio::spawn(async move {
            let hub = this.0.node.read_state().watch_hub();
            let (upd_tx, mut upd_rx) = mpsc::channel::<(i64, WatchUpdate)>(WATCH_STREAM_QUEUE);
            let mut watchers: HashMap<i64, Watcher> = HashMap::new();
            let mut next_id: i64 = 0;
            // A client's progress request being answered: (token, watchers whose marker
            // has not come through yet, lowest marker revision so far).
            let mut stream_progress: Option<(u64, std::collections::HashSet<i64>, i64)> = None;
            let mut next_token: u64 = 0;
            let mut progress = tokio::time::interval(this.0.progress_interval);
            progress.tick().await;
            loop {
                tokio::select! {
                    req = inbound.message() => {
                        let req = match req { Ok(Some(r)) => r, _ => break };
                        let Some(union) = req.request_union else { continue };
                        let resp = match union {
                            pb::watch_request::RequestUnion::CreateRequest(c) => {
                                let refuse = |reason: &str| pb::WatchResponse { header: this.0.current_header(), watch_id: c.watch_id, created: true, canceled: true, cancel_reason: reason.to_string(), ..Default::default() };
                                if c.watch_id != 0 && watchers.contains_key(&c.watch_id) {
                                    refuse(rpctypes::MVCC_DUPLICATE_WATCH_ID_MSG)
                                } else if (c.key.is_empty() && c.range_end.is_empty())
                                    // A range [key, end) with end <= key holds nothing ("\0" means "from key").
                                    || (!c.range_end.is_empty() && c.range_end != [0] && c.key >= c.range_end)
                                {
                                    refuse(rpctypes::MVCC_EMPTY_WATCHER_RANGE_MSG)
                                } else {
                                    let id = if c.watch_id != 0 {
                                        c.watch_id
                                    } else {
                                        while watchers.contains_key(&next_id) { next_id += 1; }
                                        next_id
                                    };
                                    let spec = WatchSpec {
                                        key: c.key.clone(),
                                        range_end: c.range_end.clone(),
                                        start_revision: c.start_revision,
                                        prev_kv: c.prev_kv,
                                        no_put: c.filters.contains(&(pb::watch_create_request::FilterType::Noput as i32)),
                                        no_delete: c.filters.contains(&(pb::watch_create_request::FilterType::Nodelete as i32)),
                                    };
                                    let (wtx, mut wrx) = mpsc::channel(WATCHER_QUEUE);
                                    let header = this.0.current_header();
                                    let hub_id = hub.watch(spec, wtx);
                                    let fwd = upd_tx.clone();
                                    tokio::spawn(async move {
                                        while let Some(u) = wrx.recv().await {
                                            if fwd.send((id, u)).await.is_err() { return; }
                                        }
                                    });
                                    watchers.insert(id, Watcher { hub_id, progress_notify: c.progress_notify, fragment: c.fragment });
                                    pb::WatchResponse { header, watch_id: id, created: true, ..Default::default() }
                                }
                            }
                            pb::watch_request::RequestUnion::CancelRequest(c) => {
                                match watchers.remove(&c.watch_id) {
                                    Some(w) => {
                                        hub.cancel(w.hub_id);
                                        // A canceled watcher's marker will never come.
                                        if let Some((_, waiting, _)) = stream_progress.as_mut() {
                                            waiting.remove(&c.watch_id);
                                            if waiting.is_empty() { stream_progress = None; }
                                        }
                                        pb::WatchResponse { header: this.0.current_header(), watch_id: c.watch_id, canceled: true, ..Default::default() }
                                    }
                                    None => continue,
                                }
                            }
                            pb::watch_request::RequestUnion::ProgressRequest(_) => {
                                // Answered once every watcher's marker came through its
                                // queue (so no event at or below the answer's revision is
                                // still unsent); not at all while one is catching up, as
                                // etcd does.
                                if watchers.is_empty() {
                                    pb::WatchResponse { header: this.0.current_header(), watch_id: -1, ..Default::default() }
                                } else if stream_progress.is_some() {
                                    continue;
                                } else {
                                    next_token += 1;
                                    let token = next_token;
                                    let asked: Vec<i64> = watchers
                                        .iter()
                                        .filter(|(_, w)| hub.request_progress(w.hub_id, token))
                                        .map(|(id, _)| *id)
                                        .collect();
                                    if asked.len() == watchers.len() {
                                        stream_progress = Some((token, asked.into_iter().collect(), i64::MAX));
                                    }
                                    continue;
                                }
                            }
                        };
                        if out_tx.send(Ok(resp)).await.is_err() { break; }
                    }
                    Some((id, update)) = upd_rx.recv() => {
                        let Some(w) = watchers.get(&id) else { continue };
                        let term = this.0.node.status.term.load(Ordering::Relaxed);
                        if let WatchUpdate::Progress { revision, token } = update {
                            if token == 0 {
                                // A periodic notification for this watcher.
                                let resp = pb::WatchResponse { header: this.0.header(revision, term), watch_id: id, ..Default::default() };
                                if out_tx.send(Ok(resp)).await.is_err() { return; }
                                continue;
                            }
                            let done = match stream_progress.as_mut() {
                                Some((t, waiting, min_rev)) if *t == token => {
                                    waiting.remove(&id);
                                    *min_rev = (*min_rev).min(revision);
                                    waiting.is_empty().then_some(*min_rev)
                                }
                                _ => None,
                            };
                            if let Some(rev) = done {
                                stream_progress = None;
                                let resp = pb::WatchResponse { header: this.0.header(rev, term), watch_id: -1, ..Default::default() };
                                if out_tx.send(Ok(resp)).await.is_err() { return; }
                            }
                            continue;
                        }
                        let (resp, dead) = match update {
                            WatchUpdate::Events { revision, events } => (pb::WatchResponse { header: this.0.header(revision, term), watch_id: id, events, ..Default::default() }, false),
                            WatchUpdate::Compacted { compact_revision } => (pb::WatchResponse { header: this.0.current_header(), watch_id: id, canceled: true, compact_revision, ..Default::default() }, true),
                            WatchUpdate::Progress { .. } => continue,
                        };
                        let fragment = w.fragment;
                        if dead {
                            if let Some(w) = watchers.remove(&id) { hub.cancel(w.hub_id); }
                            if let Some((_, waiting, _)) = stream_progress.as_mut() {
                                waiting.remove(&id);
                                if waiting.is_empty() { stream_progress = None; }
                            }
                        }
                        crate::failpoints::hit_async("beforeSendWatchResponse").await;
                        for part in this.split(resp, fragment) {
                            if out_tx.send(Ok(part)).await.is_err() { return; }
                        }
                    }
                    _ = progress.tick() => {
                        // Markers, not answers: each watcher's notification is sent
                        // when its marker comes out of its queue, after its events.
                        for w in watchers.values() {
                            if w.progress_notify {
                                hub.request_progress(w.hub_id, 0);
                            }
                        }
                    }
                }
            }
            for w in watchers.values() {
                hub.cancel(w.hub_id);
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }
}
