//! Cluster: membership.

use gauntlet_api::etcdserverpb::{self as pb, cluster_server::Cluster};
use tonic::{Request, Response, Status};

use super::{later, status, Ctx};

/// Cluster service (MemberList only, for now).
#[derive(Debug, Clone)]
pub struct ClusterService(pub Ctx);

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _r: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        Err(later("MemberAdd"))
    }
    async fn member_remove(
        &self,
        _r: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        Err(later("MemberRemove"))
    }
    async fn member_update(
        &self,
        _r: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(later("MemberUpdate"))
    }
    async fn member_promote(
        &self,
        _r: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        Err(later("MemberPromote"))
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
