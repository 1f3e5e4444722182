//! Cluster: membership, through raft configuration changes.
//!
//! Every change is checked here first with etcd's rules and errors, against this
//! member's view of the member table: peer URLs must parse and be unused, at most one
//! learner, and with `--strict-reconfig-check` no change that could leave the voters
//! without a quorum of started (published) or active (heard from within
//! [`ACTIVE_WITHIN`]) members. A promotion is judged by the leader, which alone knows
//! how far the learner's log got (a follower forwards it). Raft then decides; the answer
//! waits until the change is applied here, and lists the members as of that point.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use gauntlet_api::etcdserverpb::{self as pb, cluster_server::Cluster};
use gauntlet_api::rpctypes::{self, EtcdError};
use prost::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType};
use tonic::{Request, Response, Status};

use super::{status, Ctx};
use crate::state::{Member, Op};

/// etcd's health interval: a voter connected for at least this long counts as active.
const ACTIVE_WITHIN: Duration = Duration::from_secs(5);
/// etcd's limit on learners in a cluster.
const MAX_LEARNERS: usize = 1;

/// Cluster service.
#[derive(Debug, Clone)]
pub struct ClusterService(pub Ctx);

fn pb_member(m: &Member) -> pb::Member {
    pb::Member {
        id: m.id,
        name: m.name.clone(),
        peer_ur_ls: m.peer_urls.clone(),
        client_ur_ls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

/// A peer URL etcd accepts: `http(s)://host:port`, nothing after the port.
fn valid_peer_url(u: &str) -> bool {
    let Some(rest) = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
    else {
        return false;
    };
    let Some((host, port)) = rest.rsplit_once(':') else {
        return false;
    };
    !host.is_empty() && !port.is_empty() && port.parse::<u16>().is_ok()
}

fn check_urls(urls: &[String]) -> Result<(), EtcdError> {
    if urls.is_empty() || !urls.iter().all(|u| valid_peer_url(u)) {
        return Err(rpctypes::MEMBER_BAD_URLS);
    }
    Ok(())
}

/// etcd's quorum of `n` voters.
fn quorum(n: usize) -> usize {
    n / 2 + 1
}

impl ClusterService {
    fn members(&self) -> Vec<Member> {
        self.0
            .node
            .read_state()
            .cluster()
            .members
            .values()
            .cloned()
            .collect()
    }

    fn list(&self) -> Vec<pb::Member> {
        self.members().iter().map(pb_member).collect()
    }

    /// Whether voter `id` counts as active: this member, or heard from without a gap
    /// for the last [`ACTIVE_WITHIN`] (etcd's health interval).
    fn active(&self, id: u64) -> bool {
        id == self.0.member_id || self.0.transport.active_for(id, ACTIVE_WITHIN)
    }

    /// A new member id: the peer URLs, the cluster token and the time, as etcd's.
    fn new_id(&self, peer_urls: &[String]) -> u64 {
        let mut urls = peer_urls.to_vec();
        urls.sort();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        urls.hash(&mut h);
        self.0.cluster_token.hash(&mut h);
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .hash(&mut h);
        h.finish().max(1)
    }

    async fn change(&self, cc: ConfChange) -> Result<(), Status> {
        let applied = self.0.node.conf_change(cc, false).await.map_err(status)?;
        applied.outcome.map(|_| ()).map_err(status)
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        self.0.admin(&request).await?;
        let req = request.into_inner();
        check_urls(&req.peer_ur_ls).map_err(status)?;
        self.0.node.read_index().await.map_err(status)?;
        let members = self.members();
        if members
            .iter()
            .any(|m| m.peer_urls.iter().any(|u| req.peer_ur_ls.contains(u)))
        {
            return Err(status(rpctypes::PEER_URL_EXIST));
        }
        if req.is_learner {
            if members.iter().filter(|m| m.is_learner).count() >= MAX_LEARNERS {
                return Err(status(rpctypes::TOO_MANY_LEARNERS));
            }
        } else if self.0.strict_reconfig_check {
            // etcd: after adding, the started voters must still be a quorum, except that
            // a lone member may get a second (to restore a cluster from one member).
            let voters = members.iter().filter(|m| !m.is_learner);
            let started = voters.clone().filter(|m| !m.name.is_empty()).count();
            let after = voters.count() + 1;
            if !(started == 1 && after == 2) && started < quorum(after) {
                return Err(status(rpctypes::MEMBER_NOT_ENOUGH_STARTED));
            }
        }
        if self.0.strict_reconfig_check
            && !members
                .iter()
                .filter(|m| !m.is_learner)
                .all(|m| self.active(m.id))
        {
            // etcd: every voter must have been connected for a health interval.
            return Err(status(rpctypes::UNHEALTHY));
        }
        let member = Member {
            id: self.new_id(&req.peer_ur_ls),
            name: String::new(),
            peer_urls: req.peer_ur_ls.clone(),
            client_urls: Vec::new(),
            is_learner: req.is_learner,
        };
        let mut cc = ConfChange::default();
        cc.set_change_type(if req.is_learner {
            ConfChangeType::AddLearnerNode
        } else {
            ConfChangeType::AddNode
        });
        cc.node_id = member.id;
        cc.context = member.encode_to_vec().into();
        self.change(cc).await?;
        Ok(Response::new(pb::MemberAddResponse {
            header: self.0.current_header(),
            member: Some(pb_member(&member)),
            members: self.list(),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        self.0.admin(&request).await?;
        let id = request.into_inner().id;
        self.0.node.read_index().await.map_err(status)?;
        let members = self.members();
        let Some(target) = members.iter().find(|m| m.id == id) else {
            return Err(status(rpctypes::MEMBER_NOT_FOUND));
        };
        if self.0.strict_reconfig_check && !target.is_learner {
            // etcd: the active voters left after the removal must be a quorum of them.
            let voters: Vec<&Member> = members.iter().filter(|m| !m.is_learner).collect();
            let active = voters.iter().filter(|m| self.active(m.id)).count();
            let active_after = active - usize::from(self.active(id));
            if active_after < quorum(voters.len() - 1) {
                return Err(status(rpctypes::UNHEALTHY));
            }
        }
        let mut cc = ConfChange::default();
        cc.set_change_type(ConfChangeType::RemoveNode);
        cc.node_id = id;
        self.change(cc).await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: self.0.current_header(),
            members: self.list(),
        }))
    }

    async fn member_update(
        &self,
        request: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        self.0.admin(&request).await?;
        let req = request.into_inner();
        check_urls(&req.peer_ur_ls).map_err(status)?;
        let a = self
            .0
            .write(Default::default(), Op::MemberUpdate(req))
            .await?;
        a.outcome.map_err(status)?;
        Ok(Response::new(pb::MemberUpdateResponse {
            header: self.0.header(a.revision, a.term),
            members: self.list(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        self.0.admin(&request).await?;
        let id = request.into_inner().id;
        self.0.node.read_index().await.map_err(status)?;
        let members = self.members();
        let Some(target) = members.iter().find(|m| m.id == id) else {
            return Err(status(rpctypes::MEMBER_NOT_FOUND));
        };
        if !target.is_learner {
            return Err(status(rpctypes::MEMBER_NOT_LEARNER));
        }
        if self.0.strict_reconfig_check {
            // etcd counts the learner being promoted as a started voter.
            let voters = members.iter().filter(|m| !m.is_learner);
            let started = voters.clone().filter(|m| !m.name.is_empty()).count() + 1;
            if started < quorum(voters.count() + 1) {
                return Err(status(rpctypes::MEMBER_NOT_ENOUGH_STARTED));
            }
        }
        let mut cc = ConfChange::default();
        cc.set_change_type(ConfChangeType::AddNode);
        cc.node_id = id;
        match self.0.node.conf_change(cc, true).await {
            Ok(a) => a.outcome.map(|_| ()).map_err(status)?,
            Err(e) if e == rpctypes::NOT_LEADER => {
                // Only the leader knows how far the learner got: ask it.
                let leader = self
                    .0
                    .node
                    .status
                    .leader
                    .load(std::sync::atomic::Ordering::Relaxed);
                let mut peer = self
                    .0
                    .transport
                    .client(leader)
                    .ok_or_else(|| status(rpctypes::NO_LEADER))?;
                let fut = peer.promote(crate::peerpb::PromoteRequest { id });
                match tokio::time::timeout(self.0.node.request_timeout, fut).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(s)) => return Err(s),
                    Err(_) => return Err(status(rpctypes::TIMEOUT)),
                }
                // Answer once the promotion is applied here too.
                self.0.node.read_index().await.map_err(status)?;
            }
            Err(e) => return Err(status(e)),
        }
        Ok(Response::new(pb::MemberPromoteResponse {
            header: self.0.current_header(),
            members: self.list(),
        }))
    }

    async fn member_list(
        &self,
        request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        self.0.admin(&request).await?;
        if request.into_inner().linearizable {
            self.0.node.read_index().await.map_err(status)?;
        }
        Ok(Response::new(pb::MemberListResponse {
            header: self.0.current_header(),
            members: self.list(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_parse_as_etcd_wants_them() {
        assert!(valid_peer_url("http://127.0.0.1:2380"));
        assert!(valid_peer_url("https://host:1"));
        assert!(!valid_peer_url("127.0.0.1:2380"));
        assert!(!valid_peer_url("http://127.0.0.1"));
        assert!(!valid_peer_url("http://127.0.0.1:port"));
        assert!(check_urls(&[]).is_err());
    }

    #[test]
    fn quorum_is_a_strict_majority() {
        assert_eq!(quorum(1), 1);
        assert_eq!(quorum(3), 2);
        assert_eq!(quorum(4), 3);
    }
}
