//! Election (etcd's `v3election`): the same ordered keys as [`super::lock`]. A campaign
//! writes `name/<lease in hex>` with the candidate's value and waits until it is the
//! oldest key under `name/`: then it leads. Leader reads the oldest key; Proclaim
//! replaces the leader's value only while its key still has the revision it was created
//! with; Resign deletes it. Observe streams the leader each time it or its value
//! changes. Errors go out as etcd's election service sends them: code Unknown with
//! "election: no leader", "election: not leader", or the inner request's message.

use std::pin::Pin;

use futures::Stream;
use gauntlet_api::etcdserverpb::{self as pb, compare, request_op, Compare, RequestOp};
use gauntlet_api::mvccpb::KeyValue;
use gauntlet_api::rpctypes;
use gauntlet_api::v3electionpb::{
    election_server::Election, CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest,
    LeaderResponse, ProclaimRequest, ProclaimResponse, ResignRequest, ResignResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::lock::{acquire, plain, prefix_end, txn_of};
use super::Ctx;
use crate::state::auth::AuthHeader;

/// etcd's `concurrency.ErrElectionNoLeader`.
const NO_LEADER: &str = "election: no leader";
/// etcd's `concurrency.ErrElectionNotLeader`.
const NOT_LEADER: &str = "election: not leader";
/// How often Observe looks at the leader.
const OBSERVE_POLL: std::time::Duration = std::time::Duration::from_millis(50);
/// Responses queued per Observe stream.
const OBSERVE_QUEUE: usize = 16;

/// Election service.
#[derive(Debug, Clone)]
pub struct ElectionService(pub Ctx);

fn prefix_of(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// The oldest key under `name/` (the leader), read from the local state.
fn current_leader(
    ctx: &Ctx,
    who: &AuthHeader,
    name: &[u8],
) -> Result<(Option<pb::ResponseHeader>, Option<KeyValue>), Status> {
    let prefix = prefix_of(name);
    let r = ctx.read(
        who,
        &pb::RangeRequest {
            key: prefix.clone(),
            range_end: prefix_end(&prefix),
            sort_order: pb::range_request::SortOrder::Ascend as i32,
            sort_target: pb::range_request::SortTarget::Create as i32,
            limit: 1,
            ..Default::default()
        },
    )?;
    Ok((r.header, r.kvs.into_iter().next()))
}

/// A txn whose compare is "`leader.key` was created at `leader.rev`".
fn as_leader(leader: &LeaderKey, then: RequestOp) -> pb::TxnRequest {
    pb::TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Create as i32,
            key: leader.key.clone(),
            target_union: Some(compare::TargetUnion::CreateRevision(leader.rev)),
            ..Default::default()
        }],
        success: vec![then],
        failure: Vec::new(),
    }
}

fn missing_leader() -> Status {
    Status::unknown(rpctypes::MISSING_LEADER_KEY.message)
}

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let who = self.0.who(&request).await.map_err(plain)?;
        let req = request.into_inner();
        let prefix = prefix_of(&req.name);
        let mut key = prefix.clone();
        key.extend_from_slice(format!("{:x}", req.lease).as_bytes());
        let got = acquire(&self.0, &who, &prefix, &key, req.lease, &req.value).await?;
        Ok(Response::new(CampaignResponse {
            header: got.header,
            leader: Some(LeaderKey {
                name: req.name,
                key,
                rev: got.create_revision,
                lease: req.lease,
            }),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let who = self.0.who(&request).await.map_err(plain)?;
        let req = request.into_inner();
        let leader = req.leader.ok_or_else(missing_leader)?;
        let put = RequestOp {
            request: Some(request_op::Request::RequestPut(pb::PutRequest {
                key: leader.key.clone(),
                value: req.value,
                lease: leader.lease,
                ..Default::default()
            })),
        };
        let (resp, revision, term) = txn_of(&self.0, &who, as_leader(&leader, put)).await?;
        if !resp.succeeded {
            return Err(Status::unknown(NOT_LEADER));
        }
        Ok(Response::new(ProclaimResponse {
            header: self.0.header(revision, term),
        }))
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let who = self.0.who(&request).await.map_err(plain)?;
        let name = request.into_inner().name;
        self.0
            .node
            .read_index()
            .await
            .map_err(|e| plain(e.status()))?;
        let (header, kv) = current_leader(&self.0, &who, &name)?;
        let kv = kv.ok_or_else(|| Status::unknown(NO_LEADER))?;
        Ok(Response::new(LeaderResponse {
            header,
            kv: Some(kv),
        }))
    }

    type ObserveStream =
        Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send + 'static>>;

    /// Sends the leader once there is one, then again each time the leader or its value
    /// changes, until the client goes away.
    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let who = self.0.who(&request).await.map_err(plain)?;
        let name = request.into_inner().name;
        let ctx = self.0.clone();
        let (tx, rx) = mpsc::channel(OBSERVE_QUEUE);
        tokio::spawn(async move {
            let mut last: Option<(Vec<u8>, i64)> = None;
            while !tx.is_closed() {
                match current_leader(&ctx, &who, &name) {
                    Ok((header, Some(kv))) => {
                        let seen = (kv.key.clone(), kv.mod_revision);
                        if last.as_ref() != Some(&seen) {
                            last = Some(seen);
                            let resp = LeaderResponse {
                                header,
                                kv: Some(kv),
                            };
                            if tx.send(Ok(resp)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok((_, None)) => {}
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        return;
                    }
                }
                tokio::time::sleep(OBSERVE_POLL).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let who = self.0.who(&request).await.map_err(plain)?;
        let leader = request.into_inner().leader.ok_or_else(missing_leader)?;
        let delete = RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                pb::DeleteRangeRequest {
                    key: leader.key.clone(),
                    ..Default::default()
                },
            )),
        };
        let (_, revision, term) = txn_of(&self.0, &who, as_leader(&leader, delete)).await?;
        Ok(Response::new(ResignResponse {
            header: self.0.header(revision, term),
        }))
    }
}
