//! The etcd gRPC services over the raft node and the state machine.
//!
//! Writes are validated (etcd's checks, request size), proposed through raft and
//! answered when applied. Linearizable reads wait for a ReadIndex barrier, then read
//! the local state; serializable reads read it directly. Every response carries a
//! header with the cluster id, this member's id, the store revision and the raft term.
//!
//! One module per etcd service, as etcd's `v3rpc` package: [`kv`], [`watch`], [`lease`],
//! [`cluster`] (membership), [`maintenance`], [`lock`] and [`election`] (etcd's `v3lock`
//! and `v3election`). What they share lives here: the
//! [`Ctx`] every service holds, response headers, and the write path (size check,
//! validation, quota, proposal).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use gauntlet_api::etcdserverpb::{self as pb, alarm_request::AlarmAction, AlarmType};
use gauntlet_api::rpctypes::{self, EtcdError};
use prost::Message as _;
use tonic::Status;

use crate::auth::{Authn, Credentials};
use crate::lease::Lessor;
use crate::node::{Applied, NodeHandle};
use crate::state::auth::{Access, AuthHeader};
use crate::state::{self, Command, Op};
use crate::transport::Transport;

/// Pause between attempts to publish this member.
const PUBLISH_RETRY: Duration = Duration::from_millis(500);
/// Attempts to publish this member (about ten minutes with the request timeout).
const PUBLISH_ATTEMPTS: usize = 100;

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
    /// The peers: clients for forwarding to the leader, and when each was last heard.
    pub transport: Transport,
    /// The member directory (the database lives under it).
    pub member_dir: std::path::PathBuf,
    /// `--initial-cluster-token`, mixed into the ids of added members.
    pub cluster_token: String,
    /// `--strict-reconfig-check`: refuse membership changes that could lose quorum.
    pub strict_reconfig_check: bool,
    /// Interval of periodic watch progress notifications.
    pub progress_interval: Duration,
    /// Effective backend quota.
    pub quota_bytes: u64,
    /// Tokens, passwords, and who a request comes from.
    pub authn: Authn,
}

fn status(e: EtcdError) -> Status {
    e.status()
}

/// Publishes this member's name and client URLs through raft once it serves (etcd's
/// `publish`), retrying every [`PUBLISH_RETRY`] for at most [`PUBLISH_ATTEMPTS`] tries.
pub async fn publish(ctx: Ctx, name: String, client_urls: Vec<String>) {
    let attrs = state::MemberAttrs {
        id: ctx.member_id,
        name,
        client_urls,
    };
    for _ in 0..PUBLISH_ATTEMPTS {
        let published = ctx
            .node
            .read_state()
            .cluster()
            .members
            .get(&ctx.member_id)
            .is_some_and(|m| m.name == attrs.name && m.client_urls == attrs.client_urls);
        if published || ctx.node.status.removed.load(Ordering::Relaxed) {
            return;
        }
        let cmd = Command::internal(Op::MemberAttrs(attrs.clone()));
        match ctx.node.propose(cmd).await {
            Ok(_) => return,
            Err(e) => tracing::debug!("publishing this member: {}", e.message),
        }
        tokio::time::sleep(PUBLISH_RETRY).await;
    }
    tracing::warn!("could not publish this member's name and client URLs");
}

/// The gRPC methods a learner serves, as etcd's interceptors allow (a Range only when
/// serializable, which [`kv`] checks).
const LEARNER_METHODS: &[&str] = &[
    "/etcdserverpb.Maintenance/Status",
    "/etcdserverpb.Maintenance/Snapshot",
    "/etcdserverpb.KV/Range",
];

/// Refuses what a learner does not serve with etcd's "rpc not supported for learner".
pub async fn learner_guard(
    axum::extract::State(node): axum::extract::State<NodeHandle>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let grpc = ["/etcdserverpb.", "/v3lockpb.", "/v3electionpb."]
        .iter()
        .any(|p| req.uri().path().starts_with(p));
    if grpc
        && node.status.is_learner.load(Ordering::Relaxed)
        && !LEARNER_METHODS.contains(&req.uri().path())
    {
        return status(rpctypes::NOT_SUPPORTED_FOR_LEARNER).into_http();
    }
    next.run(req).await
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

    /// The ids in the member table, this member's included.
    pub fn member_ids(&self) -> Vec<u64> {
        self.node
            .read_state()
            .cluster()
            .members
            .keys()
            .copied()
            .collect()
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

    /// Who sent `req` (see [`crate::auth`]): `None` when anonymous.
    async fn caller<T>(&self, req: &tonic::Request<T>) -> Result<Option<AuthHeader>, Status> {
        self.authn
            .caller(&self.node, &Credentials::of(req))
            .await
            .map_err(status)
    }

    /// Who sent `req`, anonymous as an empty header: what its command carries.
    async fn who<T>(&self, req: &tonic::Request<T>) -> Result<AuthHeader, Status> {
        Ok(self.caller(req).await?.unwrap_or_default())
    }

    /// Refuses `req` unless it comes from a user with the root role (or auth is off).
    async fn admin<T>(&self, req: &tonic::Request<T>) -> Result<(), Status> {
        let who = self.caller(req).await?;
        self.node
            .read_state()
            .auth()
            .check_admin(who.as_ref())
            .map_err(status)
    }

    /// Refuses `req` unless auth is off or it carries credentials (etcd's
    /// `requireAuthInfo`); answers who sent it.
    async fn authenticated<T>(&self, req: &tonic::Request<T>) -> Result<AuthHeader, Status> {
        let who = self.caller(req).await?;
        if self.node.read_state().auth().enabled() && who.is_none() {
            return Err(status(rpctypes::USER_EMPTY));
        }
        Ok(who.unwrap_or_default())
    }

    /// Proposes a client's command on behalf of `who`; see [`Ctx::propose_checked`].
    async fn write(&self, who: AuthHeader, op: Op) -> Result<Applied, Status> {
        self.propose_checked(Command::from_client(op, who)).await
    }

    /// Size check, validation and quota, then the proposal.
    async fn propose_checked(&self, cmd: Command) -> Result<Applied, Status> {
        self.check_size(cmd.encoded_len())?;
        state::validate(&cmd, self.max_txn_ops).map_err(status)?;
        if cmd.op.as_ref().is_some_and(state::needs_space) {
            if self.node.read_state().cluster().raised(AlarmType::Nospace) {
                return Err(status(rpctypes::NO_SPACE));
            }
            let pending = self
                .node
                .status
                .bytes_since_size_refresh
                .fetch_add(cmd.encoded_len() as u64, Ordering::Relaxed);
            if self
                .node
                .status
                .db_size_bytes
                .load(Ordering::Relaxed)
                .saturating_add(pending)
                > self.quota_bytes
            {
                // etcd raises NOSPACE for the member whose backend went over the quota.
                let alarm = Op::Alarm(pb::AlarmRequest {
                    action: AlarmAction::Activate as i32,
                    member_id: self.member_id,
                    alarm: AlarmType::Nospace as i32,
                });
                // As etcd's quota: the alarm is raised (applied) before the refusal goes out.
                if let Err(e) = self.node.propose(Command::internal(alarm)).await {
                    tracing::warn!("cannot raise the NOSPACE alarm: {}", e.message);
                }
                return Err(status(rpctypes::NO_SPACE));
            }
        }
        self.node.propose(cmd).await.map_err(status)
    }

    /// A range on behalf of `who`, who needs READ on it (etcd's `doSerialize`: a change
    /// of the auth store while it reads makes it `AUTH_OLD_REVISION`).
    fn read(&self, who: &AuthHeader, req: &pb::RangeRequest) -> Result<pb::RangeResponse, Status> {
        state::validate_range(req).map_err(status)?;
        let st = self.node.read_state();
        if st.cluster().raised(AlarmType::Corrupt) {
            return Err(status(rpctypes::CORRUPT));
        }
        st.auth()
            .check(who, &req.key, &req.range_end, Access::Read)
            .map_err(status)?;
        let mut r = st.range(req).map_err(status)?;
        if who.revision != 0 && who.revision != st.auth().revision() {
            return Err(status(rpctypes::AUTH_OLD_REVISION));
        }
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

mod auth;
mod cluster;
mod election;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod watch;

pub use self::auth::AuthService;
pub use self::cluster::ClusterService;
pub use self::election::ElectionService;
pub use self::kv::KvService;
pub use self::lease::LeaseService;
pub use self::lock::LockService;
pub use self::maintenance::MaintenanceService;
pub use self::watch::WatchService;
