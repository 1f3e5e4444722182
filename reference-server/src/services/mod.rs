//! The etcd gRPC services over the raft node and the state machine.
//!
//! Writes are validated (etcd's checks, request size), proposed through raft and
//! answered when applied. Linearizable reads wait for a ReadIndex barrier, then read
//! the local state; serializable reads read it directly. Every response carries a
//! header with the cluster id, this member's id, the store revision and the raft term.
//!
//! One module per etcd service, as etcd's `v3rpc` package: [`kv`], [`watch`], [`lease`],
//! [`cluster`] (membership) and [`maintenance`]. What they share lives here: the
//! [`Ctx`] every service holds, response headers, and the write path (size check,
//! validation, quota, proposal).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use gauntlet_api::etcdserverpb as pb;
use gauntlet_api::rpctypes::{self, EtcdError};
use prost::Message as _;
use tonic::Status;

use crate::lease::Lessor;
use crate::node::{Applied, NodeHandle};
use crate::state::{self, Command, Op};

/// Bytes of gRPC framing etcd allows beyond `--max-request-bytes`.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

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

/// What the server does not implement yet answers Unimplemented, naming it.
fn later(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not implemented by gauntlet-server yet"))
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

/// Turns an applied proposal into the service's response, filling its header.
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

mod cluster;
mod kv;
mod lease;
mod maintenance;
mod watch;

pub use self::cluster::ClusterService;
pub use self::kv::KvService;
pub use self::lease::LeaseService;
pub use self::maintenance::MaintenanceService;
pub use self::watch::WatchService;
