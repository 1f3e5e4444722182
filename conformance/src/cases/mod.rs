//! The catalogue, one module per service, and the small builders cases share.

use gauntlet_api::etcdserverpb::{self as pb, compare, request_op, response_op};
use gauntlet_api::mvccpb::KeyValue;

use crate::case::{ok, Case, Ctx, Failure};

mod auth;
mod cluster;
mod election;
mod gateway;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod tls;
mod watch;

/// Every case, grouped by service in [`crate::Service::ALL`] order.
pub fn catalogue() -> Vec<Case> {
    let mut all = Vec::new();
    all.extend(kv::cases());
    all.extend(watch::cases());
    all.extend(lease::cases());
    all.extend(cluster::cases());
    all.extend(maintenance::cases());
    all.extend(auth::cases());
    all.extend(lock::cases());
    all.extend(election::cases());
    all.extend(gateway::cases());
    all.extend(tls::cases());
    all
}

/// Documentation the cases cite.
pub mod doc {
    /// The KV, Watch and Lease API, request by request.
    pub const API: &str = "https://etcd.io/docs/v3.5/learning/api/";
    /// Revisions, atomicity, linearizability and watch guarantees.
    pub const GUARANTEES: &str = "https://etcd.io/docs/v3.5/learning/api_guarantees/";
    /// Generated gRPC API reference: every message field.
    pub const GRPC: &str = "https://etcd.io/docs/v3.5/dev-guide/api_reference_v3/";
    /// Lock and Election services.
    pub const CONCURRENCY: &str =
        "https://etcd.io/docs/v3.5/dev-guide/api_concurrency_reference_v3/";
    /// Users, roles and permissions.
    pub const RBAC: &str = "https://etcd.io/docs/v3.5/op-guide/authentication/rbac/";
    /// Adding, removing and updating members.
    pub const RECONFIG: &str = "https://etcd.io/docs/v3.5/op-guide/runtime-configuration/";
    /// Learners.
    pub const LEARNER: &str = "https://etcd.io/docs/v3.5/learning/design-learner/";
    /// Compaction, defragmentation, space quota, alarms, snapshots.
    pub const MAINTENANCE: &str = "https://etcd.io/docs/v3.5/op-guide/maintenance/";
    /// Request size and other limits.
    pub const LIMITS: &str = "https://etcd.io/docs/v3.5/dev-guide/limit/";
    /// The server's error table: gRPC codes and exact messages.
    pub const ERRORS: &str =
        "https://github.com/etcd-io/etcd/blob/v3.5.1/api/v3rpc/rpctypes/error.go";
    /// Interacting with etcd (etcdctl walk-through of the same RPCs).
    pub const INTERACTING: &str = "https://etcd.io/docs/v3.5/dev-guide/interacting_v3/";
    /// The JSON gateway (grpc-gateway in front of the gRPC API).
    pub const GATEWAY: &str = "https://etcd.io/docs/v3.5/dev-guide/api_grpc_gateway/";
    /// Transport security: TLS, client certificates, the common name as the user.
    pub const SECURITY: &str = "https://etcd.io/docs/v3.5/op-guide/security/";
    /// How the Kubernetes API server uses etcd.
    pub const KUBERNETES: &str =
        "https://etcd.io/docs/v3.5/learning/why/#notes-on-the-usage-of-etcd-by-kubernetes";
}

/// A Put op.
pub fn put_op(key: Vec<u8>, value: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request_op::Request::RequestPut(pb::PutRequest {
            key,
            value: value.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

/// A Range op of one key.
pub fn get_op(key: Vec<u8>) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request_op::Request::RequestRange(pb::RangeRequest {
            key,
            ..Default::default()
        })),
    }
}

/// A Range op of a whole request.
pub fn range_op(r: pb::RangeRequest) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request_op::Request::RequestRange(r)),
    }
}

/// A DeleteRange op of one key.
pub fn del_op(key: Vec<u8>) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            pb::DeleteRangeRequest {
                key,
                ..Default::default()
            },
        )),
    }
}

/// A Compare.
pub fn cmp(
    key: Vec<u8>,
    result: compare::CompareResult,
    target: compare::TargetUnion,
) -> pb::Compare {
    let t = match target {
        compare::TargetUnion::Version(_) => compare::CompareTarget::Version,
        compare::TargetUnion::CreateRevision(_) => compare::CompareTarget::Create,
        compare::TargetUnion::ModRevision(_) => compare::CompareTarget::Mod,
        compare::TargetUnion::Value(_) => compare::CompareTarget::Value,
        compare::TargetUnion::Lease(_) => compare::CompareTarget::Lease,
    };
    pb::Compare {
        result: result as i32,
        target: t as i32,
        key,
        range_end: vec![],
        target_union: Some(target),
    }
}

/// The range response inside a txn response op.
pub fn op_range(r: &pb::ResponseOp) -> Option<&pb::RangeResponse> {
    match &r.response {
        Some(response_op::Response::ResponseRange(x)) => Some(x),
        _ => None,
    }
}

/// The put response inside a txn response op.
pub fn op_put(r: &pb::ResponseOp) -> Option<&pb::PutResponse> {
    match &r.response {
        Some(response_op::Response::ResponsePut(x)) => Some(x),
        _ => None,
    }
}

/// The header revision of a response header option (0 when absent).
pub fn rev(h: &Option<pb::ResponseHeader>) -> i64 {
    h.as_ref().map(|h| h.revision).unwrap_or_default()
}

/// Keys of `kvs` with the case prefix stripped, as strings.
pub fn names(ctx: &Ctx, kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| {
            String::from_utf8_lossy(
                kv.key
                    .strip_prefix(ctx.prefix.as_bytes())
                    .unwrap_or(&kv.key),
            )
            .into_owned()
        })
        .collect()
}

/// Puts `key = value` under the case prefix; returns the put's revision.
pub async fn put(ctx: &Ctx, key: &str, value: &str) -> Result<i64, Failure> {
    let req = pb::PutRequest {
        key: ctx.key(key),
        value: value.as_bytes().to_vec(),
        ..Default::default()
    };
    let r = ok(&req, ctx.client.put_request(req.clone()).await)?;
    Ok(rev(&r.header))
}

/// Ranges over the case prefix with `f` applied to the request; returns request and answer.
pub async fn range(
    ctx: &Ctx,
    f: impl FnOnce(&mut pb::RangeRequest),
) -> Result<(pb::RangeRequest, pb::RangeResponse), Failure> {
    let mut req = pb::RangeRequest {
        key: ctx.prefix.clone().into_bytes(),
        range_end: ctx.prefix_end(),
        ..Default::default()
    };
    f(&mut req);
    let resp = ok(&req, ctx.client.range(req.clone()).await)?;
    Ok((req, resp))
}

/// The value of `key` under the prefix (None when absent).
pub async fn value_of(ctx: &Ctx, key: &str) -> Result<Option<Vec<u8>>, Failure> {
    let req = pb::RangeRequest {
        key: ctx.key(key),
        ..Default::default()
    };
    let r = ok(&req, ctx.client.range(req.clone()).await)?;
    Ok(r.kvs.first().map(|kv| kv.value.clone()))
}
