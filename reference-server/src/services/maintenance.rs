//! Maintenance: alarms, status, hashes, defragmentation, snapshots, leadership, downgrade.

use std::pin::Pin;
use std::sync::atomic::Ordering;

use futures::Stream;
use gauntlet_api::etcdserverpb::{self as pb, maintenance_server::Maintenance};
use tonic::{Request, Response, Status};

use super::{status, Ctx};
use crate::state::Op;
use gauntlet_api::rpctypes;

/// How often MoveLeader looks whether the new leader took over.
const LEADER_POLL: std::time::Duration = std::time::Duration::from_millis(20);

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
        // Every maintenance RPC is for root once auth is on (etcd >= 3.5.28,
        // CVE-2026-33413; before, only defragment, snapshot and the hashes were).
        self.0.admin(&request).await?;
        let req = request.into_inner();
        if req.action == pb::alarm_request::AlarmAction::Get as i32 {
            let st = self.0.node.read_state();
            // etcd lists every alarm, or those of one type when one is named.
            let alarms = st
                .cluster()
                .alarm_list()
                .into_iter()
                .filter(|a| req.alarm == pb::AlarmType::None as i32 || a.alarm == req.alarm)
                .collect();
            return Ok(Response::new(pb::AlarmResponse {
                header: self.0.header(
                    st.revision(),
                    self.0.node.status.term.load(Ordering::Relaxed),
                ),
                alarms,
            }));
        }
        // Activate and deactivate go through raft, so every member raises the same alarms.
        let a = self
            .0
            .node
            .propose(crate::state::Command::internal(Op::Alarm(req)))
            .await
            .map_err(status)?;
        match a.outcome {
            Ok(crate::state::Response::Alarm(mut r)) => {
                r.header = self.0.header(a.revision, a.term);
                Ok(Response::new(r))
            }
            Ok(other) => Err(Status::internal(format!(
                "unexpected apply result {other:?}"
            ))),
            Err(e) => Err(status(e)),
        }
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.0.admin(&request).await?;
        let st = self.0.node.read_state();
        let db = i64::try_from(st.db_size_bytes()).unwrap_or(i64::MAX);
        // etcd's text for each alarm: the AlarmMember message in protobuf's text form.
        let errors = st
            .cluster()
            .alarm_list()
            .iter()
            .map(|a| {
                let name = pb::AlarmType::try_from(a.alarm)
                    .map_or_else(|_| a.alarm.to_string(), |t| t.as_str_name().to_string());
                format!("memberID:{} alarm:{} ", a.member_id, name)
            })
            .collect();
        let is_learner = st
            .cluster()
            .members
            .get(&self.0.member_id)
            .is_some_and(|m| m.is_learner);
        let s = &self.0.node.status;
        let term = s.term.load(Ordering::Relaxed);
        Ok(Response::new(pb::StatusResponse {
            header: self.0.header(st.revision(), term),
            version: crate::version::server_version().to_string(),
            db_size: db,
            leader: s.leader.load(Ordering::Relaxed),
            raft_index: s.raft_index.load(Ordering::Relaxed),
            raft_term: term,
            raft_applied_index: s.applied.load(Ordering::Relaxed),
            errors,
            db_size_in_use: db,
            is_learner,
        }))
    }

    /// Rewrites this member's database with only its live records ([`crate::backend`]);
    /// applying and state reads wait meanwhile, as etcd's defragmentation blocks them.
    async fn defragment(
        &self,
        request: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        self.0.admin(&request).await?;
        let node = self.0.node.clone();
        let dir = self.0.member_dir.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut st = node
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            crate::backend::defragment(&dir, &mut st)
        })
        .await
        .map_err(|e| Status::internal(format!("defragmentation failed: {e}")))?
        .map_err(|e| Status::internal(format!("defragmentation failed: {e:#}")))?;
        tracing::info!(
            before_bytes = done.before_bytes,
            after_bytes = done.after_bytes,
            "defragmented"
        );
        // The size was just measured: writes proposed before it are in it.
        self.0
            .node
            .status
            .bytes_since_size_refresh
            .store(0, Ordering::Relaxed);
        self.0
            .node
            .status
            .db_size_bytes
            .store(done.after_bytes, Ordering::Relaxed);
        Ok(Response::new(pb::DefragmentResponse {
            header: self.0.current_header(),
        }))
    }

    async fn hash(
        &self,
        request: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        self.0.admin(&request).await?;
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
        self.0.admin(&request).await?;
        let st = self.0.node.read_state();
        let mut h = st.hash_kv(request.into_inner().revision).map_err(status)?;
        h.header = self.0.header(
            st.revision(),
            self.0.node.status.term.load(Ordering::Relaxed),
        );
        Ok(Response::new(h))
    }

    type SnapshotStream = SnapshotStream;

    /// Streams a point-in-time copy of the state with etcd's SHA-256 trailer, in
    /// [`crate::snapshot::CHUNK_BYTES`] chunks; see [`crate::snapshot`].
    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        self.0.admin(&request).await?;
        let node = self.0.node.clone();
        let bytes = tokio::task::spawn_blocking(move || node.read_state().snapshot())
            .await
            .map_err(|e| Status::internal(format!("snapshot failed: {e}")))?
            .map_err(|e| Status::internal(format!("snapshot failed: {e}")))?;
        let bytes = crate::snapshot::framed(&bytes);
        let header = self.0.current_header();
        let total = bytes.len();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut sent = 0usize;
            for chunk in bytes.chunks(crate::snapshot::CHUNK_BYTES) {
                sent += chunk.len();
                let resp = pb::SnapshotResponse {
                    header,
                    remaining_bytes: (total - sent) as u64,
                    blob: chunk.to_vec(),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return; // the client went away
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    /// etcd's MoveLeader: only the leader may hand over, only to a voting member, and the
    /// answer waits until the new leader is known here (or the request timeout).
    async fn move_leader(
        &self,
        request: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        self.0.admin(&request).await?;
        let target = request.into_inner().target_id;
        self.0.node.transfer_leader(target).await.map_err(status)?;
        let deadline = tokio::time::Instant::now() + self.0.node.request_timeout;
        while self.0.node.status.leader.load(Ordering::Relaxed) != target {
            if tokio::time::Instant::now() >= deadline {
                return Err(status(rpctypes::TIMEOUT_LEADER_TRANSFER));
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
        Ok(Response::new(pb::MoveLeaderResponse {
            header: self.0.current_header(),
        }))
    }

    async fn downgrade(
        &self,
        request: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        self.0.admin(&request).await?;
        let version = crate::version::downgrade(&self.0, &request.into_inner())
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DowngradeResponse {
            header: self.0.current_header(),
            version,
        }))
    }
}
