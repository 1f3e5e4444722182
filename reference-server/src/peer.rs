//! The peer gRPC service: raft messages in, member info and lease requests for the leader.

use std::sync::{Arc, OnceLock};

use protobuf::Message as _;
use raft::eraftpb::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::lease::Lessor;
use crate::node::NodeHandle;
use crate::peerpb::{self, peer_server::Peer};
use crate::transport::Transport;

/// What a peer answers to raft messages from a removed member.
pub const MEMBER_REMOVED: &str = "the member has been permanently removed from the cluster";

/// Serves peers.
#[derive(Debug, Clone)]
pub struct PeerService {
    /// The raft node (set once it runs).
    pub node: Arc<OnceLock<NodeHandle>>,
    /// Lease timers (set once they run).
    pub lessor: Arc<OnceLock<Arc<Lessor>>>,
    /// This cluster's id: batches from another cluster are refused.
    pub cluster_id: u64,
    /// What MemberInfo answers about this member (the member table is added live).
    pub me: peerpb::MemberInfoResponse,
    /// Records which peers were heard from.
    pub transport: Transport,
}

impl PeerService {
    /// Checks and decodes one batch and hands it to the raft loop.
    fn deliver(&self, batch: &peerpb::RaftBatch) -> Result<(), Status> {
        if batch.cluster_id != self.cluster_id {
            return Err(Status::failed_precondition(format!(
                "raft batch for cluster {:x} reached cluster {:x}",
                batch.cluster_id, self.cluster_id
            )));
        }
        let node = self
            .node
            .get()
            .ok_or_else(|| Status::unavailable("member is starting"))?;
        if node.read_state().cluster().removed.contains(&batch.from) {
            // As etcd's peers answer a removed member: it stops when it hears this.
            return Err(Status::failed_precondition(MEMBER_REMOVED));
        }
        let mut msgs = Vec::with_capacity(batch.messages.len());
        for m in &batch.messages {
            msgs.push(
                Message::parse_from_bytes(m).map_err(|e| {
                    Status::invalid_argument(format!("undecodable raft message: {e}"))
                })?,
            );
        }
        self.transport.heard_from(batch.from);
        node.step(msgs);
        Ok(())
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn raft(
        &self,
        request: Request<peerpb::RaftBatch>,
    ) -> Result<Response<peerpb::RaftAck>, Status> {
        self.deliver(&request.into_inner())?;
        Ok(Response::new(peerpb::RaftAck {}))
    }

    /// Delivers batches in stream order until the sender closes the stream; a batch
    /// from another cluster or an undecodable one ends it with an error.
    async fn raft_stream(
        &self,
        request: Request<Streaming<peerpb::RaftBatch>>,
    ) -> Result<Response<peerpb::RaftAck>, Status> {
        let mut batches = request.into_inner();
        while let Some(batch) = batches.message().await? {
            self.deliver(&batch)?;
        }
        Ok(Response::new(peerpb::RaftAck {}))
    }

    async fn member_info(
        &self,
        _request: Request<peerpb::MemberInfoRequest>,
    ) -> Result<Response<peerpb::MemberInfoResponse>, Status> {
        let mut me = self.me.clone();
        me.cluster_id = self.cluster_id;
        me.server_version = crate::version::server_version().to_string();
        if let Some(node) = self.node.get() {
            me.members = node
                .read_state()
                .cluster()
                .members
                .values()
                .map(|m| peerpb::PeerMember {
                    id: m.id,
                    name: m.name.clone(),
                    peer_urls: m.peer_urls.clone(),
                    is_learner: m.is_learner,
                })
                .collect();
        }
        Ok(Response::new(me))
    }

    async fn hash_kv(
        &self,
        request: Request<peerpb::HashKvRequest>,
    ) -> Result<Response<peerpb::HashKvResponse>, Status> {
        let node = self
            .node
            .get()
            .ok_or_else(|| Status::unavailable("member is starting"))?;
        let st = node.read_state();
        let h = st
            .hash_kv(request.into_inner().revision)
            .map_err(|e| e.status())?;
        Ok(Response::new(peerpb::HashKvResponse {
            hash: h.hash,
            compact_revision: h.compact_revision,
            revision: st.revision(),
        }))
    }

    async fn promote(
        &self,
        request: Request<peerpb::PromoteRequest>,
    ) -> Result<Response<peerpb::PromoteResponse>, Status> {
        let node = self
            .node
            .get()
            .ok_or_else(|| Status::unavailable("member is starting"))?;
        let mut cc = raft::eraftpb::ConfChange::default();
        cc.set_change_type(raft::eraftpb::ConfChangeType::AddNode);
        cc.node_id = request.into_inner().id;
        let applied = node.conf_change(cc, true).await.map_err(|e| e.status())?;
        applied.outcome.map_err(|e| e.status())?;
        Ok(Response::new(peerpb::PromoteResponse {}))
    }

    async fn lease_renew(
        &self,
        request: Request<peerpb::LeaseRenewRequest>,
    ) -> Result<Response<peerpb::LeaseRenewResponse>, Status> {
        let lessor = self
            .lessor
            .get()
            .ok_or_else(|| Status::unavailable("member is starting"))?;
        let ttl = lessor
            .renew(request.into_inner().id)
            .map_err(|e| e.status())?;
        Ok(Response::new(peerpb::LeaseRenewResponse { ttl }))
    }

    async fn lease_remaining(
        &self,
        request: Request<peerpb::LeaseRemainingRequest>,
    ) -> Result<Response<peerpb::LeaseRemainingResponse>, Status> {
        let lessor = self
            .lessor
            .get()
            .ok_or_else(|| Status::unavailable("member is starting"))?;
        let r = lessor
            .remaining(request.into_inner().id)
            .map_err(|e| e.status())?;
        Ok(Response::new(peerpb::LeaseRemainingResponse {
            ttl: r.unwrap_or(-1),
            found: r.is_some(),
        }))
    }
}
