//! Maintenance: alarms, status, hashes, defragmentation, snapshots, leadership, downgrade.

use std::pin::Pin;
use std::sync::atomic::Ordering;

use futures::Stream;
use gauntlet_api::etcdserverpb::{self as pb, maintenance_server::Maintenance};
use tonic::{Request, Response, Status};

use super::{later, status, Ctx};
use crate::config::API_VERSION;

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
            return Err(later("activating or deactivating alarms"));
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
        Err(later("Defragment"))
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
        Err(later("Snapshot"))
    }

    async fn move_leader(
        &self,
        _r: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        Err(later("MoveLeader"))
    }

    async fn downgrade(
        &self,
        _r: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(later("Downgrade"))
    }
}
