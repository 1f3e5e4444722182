//! Lease: grant and revoke through raft; keep-alives and remaining TTLs from the
//! leader's timers (forwarded to the leader by a follower).

use std::pin::Pin;
use std::sync::atomic::Ordering;

use futures::{Stream, StreamExt as _};
use gauntlet_api::etcdserverpb::{self as pb, lease_server::Lease};
use gauntlet_api::rpctypes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{status, Ctx};
use crate::state::auth::Access;
use crate::state::{self, Op};

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
            .transport
            .client(leader)
            .ok_or_else(|| status(rpctypes::NO_LEADER))
    }

    /// Whether `who` may act on lease `id`'s keys (etcd >= 3.5.28, CVE-2026-33413:
    /// credentials required; the root role, or `access` on every attached key).
    async fn check_lease_keys(
        &self,
        creds: &crate::auth::Credentials,
        ids: Option<i64>,
        access: Access,
    ) -> Result<(), Status> {
        let who = self
            .0
            .authn
            .caller(&self.0.node, creds)
            .await
            .map_err(status)?;
        let st = self.0.node.read_state();
        let auth = st.auth();
        if !auth.enabled() {
            return Ok(());
        }
        let who = who.ok_or_else(|| status(rpctypes::USER_EMPTY))?;
        if auth.check_admin(Some(&who)).is_ok() {
            return Ok(());
        }
        let leases = match ids {
            Some(id) => st.lease(id).into_iter().collect(),
            None => st.leases(),
        };
        for l in leases {
            for k in &l.keys {
                auth.check(&who, k, &[], access).map_err(status)?;
            }
        }
        Ok(())
    }

    /// Serves one keep-alive stream: renewals from `inbound` (a gRPC stream, or the
    /// JSON gateway's), answers on the returned stream, with `creds` for each.
    pub fn keep_alive<S>(
        &self,
        creds: crate::auth::Credentials,
        mut inbound: S,
    ) -> <Self as Lease>::LeaseKeepAliveStream
    where
        S: Stream<Item = Result<pb::LeaseKeepAliveRequest, Status>> + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel(64);
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let req = match inbound.next().await {
                    Some(Ok(r)) => r,
                    None | Some(Err(_)) => return,
                };
                let allowed = this
                    .check_lease_keys(&creds, Some(req.id), Access::Write)
                    .await;
                let renewed = match allowed {
                    Ok(()) => this.renew(req.id).await,
                    Err(s) => Err(s),
                };
                let resp = match renewed {
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
        Box::pin(ReceiverStream::new(rx))
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
        let who = self.0.who(&request).await?;
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
        let a = self.0.write(who, Op::LeaseGrant(req)).await?;
        expect_response!(a, LeaseGrant, self.0)
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let who = self.0.authenticated(&request).await?;
        let a = self
            .0
            .write(who, Op::LeaseRevoke(request.into_inner()))
            .await?;
        expect_response!(a, LeaseRevoke, self.0)
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send + 'static>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let creds = crate::auth::Credentials::of(&request);
        Ok(Response::new(self.keep_alive(creds, request.into_inner())))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let creds = crate::auth::Credentials::of(&request);
        let req = request.into_inner();
        self.0.node.read_index().await.map_err(status)?;
        self.check_lease_keys(&creds, Some(req.id), Access::Read)
            .await?;
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
        request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        self.0.node.read_index().await.map_err(status)?;
        self.check_lease_keys(&crate::auth::Credentials::of(&request), None, Access::Read)
            .await?;
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
