//! Lock (etcd's `v3lock`): a lock is the key prefix `name/`; whoever holds the key with
//! the lowest create revision under it holds the lock.
//!
//! Lock writes the caller's ownership key `name/<lease in hex>` attached to the lease
//! (or finds it, if this lease already asked), in one txn that also reads the current
//! owner. If that is not the caller, it waits until every key created before its own is
//! gone (unlocked, or its lease revoked or expired), then answers with its key. The wait
//! watches the local state and confirms with a linearizable read; it ends with the
//! request (a client that goes away stops waiting; its key stays until its lease ends,
//! as in etcd). Unlock deletes the key. Errors of the inner requests go out with code
//! Unknown and etcd's message, as etcd's lock service passes them on.

use gauntlet_api::etcdserverpb::{
    self as pb, compare, request_op, response_op, Compare, RequestOp,
};
use gauntlet_api::v3lockpb::{
    lock_server::Lock, LockRequest, LockResponse, UnlockRequest, UnlockResponse,
};
use tonic::{Request, Response, Status};

use super::Ctx;
use crate::state::auth::AuthHeader;
use crate::state::{self, Op};

/// How often a waiter looks whether its predecessors are gone.
const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Lock service.
#[derive(Debug, Clone)]
pub struct LockService(pub Ctx);

/// etcd's lock service answers its inner client's errors as plain errors (code Unknown).
pub(super) fn plain(s: Status) -> Status {
    Status::unknown(s.message().to_string())
}

pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    gauntlet_api::prefix_range_end(prefix)
}

/// What [`acquire`] did: the header of its txn, and the caller's key's create revision.
pub(super) struct Acquired {
    pub header: Option<pb::ResponseHeader>,
    pub create_revision: i64,
}

/// The ordered-key protocol shared by Lock and Campaign: writes `key` (under `prefix`,
/// attached to `lease`, with `value`) unless this lease already has it, and waits until
/// no key under `prefix` was created before it. An existing key whose value differs gets
/// `value` (a re-campaign with another value is a proclamation). Inner errors come back
/// with code Unknown, as etcd's concurrency services pass them on.
pub(super) async fn acquire(
    ctx: &Ctx,
    who: &AuthHeader,
    prefix: &[u8],
    key: &[u8],
    lease: i64,
    value: &[u8],
) -> Result<Acquired, Status> {
    let owner = RequestOp {
        request: Some(request_op::Request::RequestRange(pb::RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            sort_order: pb::range_request::SortOrder::Ascend as i32,
            sort_target: pb::range_request::SortTarget::Create as i32,
            limit: 1,
            ..Default::default()
        })),
    };
    let put = RequestOp {
        request: Some(request_op::Request::RequestPut(pb::PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        })),
    };
    let txn = pb::TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Create as i32,
            key: key.to_vec(),
            target_union: Some(compare::TargetUnion::CreateRevision(0)),
            ..Default::default()
        }],
        success: vec![put.clone(), owner.clone()],
        failure: vec![
            RequestOp {
                request: Some(request_op::Request::RequestRange(pb::RangeRequest {
                    key: key.to_vec(),
                    ..Default::default()
                })),
            },
            owner,
        ],
    };
    let (resp, revision, term) = txn_of(ctx, who, txn).await?;
    let mut header = ctx.header(revision, term);
    let existing = match resp.responses.first().and_then(|r| r.response.as_ref()) {
        Some(response_op::Response::ResponseRange(r)) => r.kvs.first().cloned(),
        _ => None,
    };
    let mine = existing.as_ref().map_or(revision, |kv| kv.create_revision);
    if existing.as_ref().is_some_and(|kv| kv.value != value) {
        let (_, revision, term) = txn_of(
            ctx,
            who,
            pb::TxnRequest {
                success: vec![put],
                ..Default::default()
            },
        )
        .await?;
        header = ctx.header(revision, term);
    }
    let owner_rev = match resp.responses.get(1).and_then(|r| r.response.as_ref()) {
        Some(response_op::Response::ResponseRange(r)) => {
            r.kvs.first().map_or(mine, |kv| kv.create_revision)
        }
        _ => mine,
    };
    if owner_rev != mine {
        // Wait for every key created before ours to go, then confirm it linearizably.
        loop {
            if predecessors(ctx, who, prefix, mine)? == 0 {
                ctx.node.read_index().await.map_err(|e| plain(e.status()))?;
                if predecessors(ctx, who, prefix, mine)? == 0 {
                    break;
                }
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }
    Ok(Acquired {
        header,
        create_revision: mine,
    })
}

/// Applies a txn; inner errors with code Unknown. Answers (response, revision, term).
pub(super) async fn txn_of(
    ctx: &Ctx,
    who: &AuthHeader,
    txn: pb::TxnRequest,
) -> Result<(pb::TxnResponse, i64, u64), Status> {
    let a = ctx.write(who.clone(), Op::Txn(txn)).await.map_err(plain)?;
    match a.outcome {
        Ok(state::Response::Txn(t)) => Ok((t, a.revision, a.term)),
        Ok(other) => Err(Status::internal(format!(
            "unexpected apply result {other:?}"
        ))),
        Err(e) => Err(plain(e.status())),
    }
}

/// How many keys under `prefix` were created before `rev` (a waiter's predecessors).
/// Counted from the keys returned: etcd's `count` ignores the revision filters.
fn predecessors(ctx: &Ctx, who: &AuthHeader, prefix: &[u8], rev: i64) -> Result<usize, Status> {
    let r = ctx.read(
        who,
        &pb::RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            max_create_revision: rev - 1,
            keys_only: true,
            limit: 1,
            ..Default::default()
        },
    )?;
    Ok(r.kvs.len())
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let who = self.0.who(&request).await.map_err(plain)?;
        let req = request.into_inner();
        let mut prefix = req.name.clone();
        prefix.push(b'/');
        let mut key = prefix.clone();
        key.extend_from_slice(format!("{:x}", req.lease).as_bytes());
        let got = acquire(&self.0, &who, &prefix, &key, req.lease, b"").await?;
        Ok(Response::new(LockResponse {
            header: got.header,
            key,
        }))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let who = self.0.who(&request).await.map_err(plain)?;
        let key = request.into_inner().key;
        let a = self
            .0
            .write(
                who,
                Op::DeleteRange(pb::DeleteRangeRequest {
                    key,
                    ..Default::default()
                }),
            )
            .await
            .map_err(plain)?;
        if let Err(e) = a.outcome {
            return Err(plain(e.status()));
        }
        Ok(Response::new(UnlockResponse {
            header: self.0.header(a.revision, a.term),
        }))
    }
}
