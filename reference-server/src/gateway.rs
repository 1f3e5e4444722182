//! etcd's JSON gateway: the gRPC API as HTTP POSTs of JSON on the client port.
//!
//! etcd serves it with grpc-gateway (v1, with the `JSONPb{OrigName: true}` marshaler);
//! this module answers the same way, from the same descriptors as the gRPC services
//! (`gauntlet_api::FILE_DESCRIPTOR_SET`, read with `prost-reflect`):
//!
//! - One path per RPC, as etcd's `google.api.http` annotations name them
//!   (`/v3/kv/range`, `/v3/watch`, `/v3/lease/keepalive`, `/v3/auth/user/add`, ...; the
//!   `/v3/kv/lease/*` aliases too). The body is the request message in protobuf's JSON
//!   mapping; an empty body is the empty message, unknown fields are ignored.
//! - Answers use the `.proto` field names (`create_revision`, `ID`, `dbSize`), leave out
//!   fields at their default, write 64-bit integers as strings and bytes as base64.
//! - The token goes in the `Authorization` header (etcd's gateway passes it on as the
//!   `token` metadata). A client certificate never names the user here: etcd ignores the
//!   common name on gateway requests, since its gateway dials the server with the
//!   server's own certificate.
//! - Errors are `{"error": msg, "code": grpc_code, "message": msg}` with grpc-gateway's
//!   HTTP status for the code (400 for InvalidArgument, 403 PermissionDenied, ...).
//! - Streams (`/v3/watch`, `/v3/lease/keepalive`, `/v3/election/observe`,
//!   `/v3/maintenance/snapshot`) answer newline-separated `{"result": ...}` objects as
//!   they come; a stream error is a last `{"error": {...}}` object. The request body of
//!   a bidirectional stream may hold several JSON messages one after the other.
//!
//! Requests go to the gRPC services in-process: every check and error is theirs.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::{Stream, StreamExt as _};
use gauntlet_api::etcdserverpb::{
    self as pb, auth_server::Auth as _, cluster_server::Cluster as _, kv_server::Kv as _,
    lease_server::Lease as _, maintenance_server::Maintenance as _,
};
use gauntlet_api::rpctypes;
use gauntlet_api::v3electionpb::{self as el, election_server::Election as _};
use gauntlet_api::v3lockpb::lock_server::Lock as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use tonic::{Code, Status};

use crate::auth::Credentials;
use crate::services::{
    AuthService, ClusterService, Ctx, ElectionService, KvService, LeaseService, LockService,
    MaintenanceService, WatchService,
};

/// Largest request body read, beyond `--max-request-bytes` (JSON and base64 inflate it).
const BODY_OVERHEAD_BYTES: usize = 2 * 1024 * 1024;

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(gauntlet_api::FILE_DESCRIPTOR_SET)
            .expect("the api crate's descriptors decode")
    })
}

fn descriptor(name: &str) -> MessageDescriptor {
    pool()
        .get_message_by_name(name)
        .unwrap_or_else(|| panic!("message {name} is in the api's descriptors"))
}

/// Decodes a JSON request body into `T` (the message named `name`): the empty body is
/// the empty message. Errors are one line, answered as InvalidArgument.
pub fn decode<T: prost::Message + Default>(name: &str, body: &[u8]) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let dm = DynamicMessage::deserialize_with_options(
        descriptor(name),
        &mut de,
        &prost_reflect::DeserializeOptions::new().deny_unknown_fields(false),
    )
    .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    dm.transcode_to::<T>().map_err(|e| e.to_string())
}

/// Decodes every JSON message in `body` (one after the other, as grpc-gateway reads a
/// client stream). Public for the fuzz targets (`reference-server/fuzz`).
pub fn decode_all<T: prost::Message + Default>(name: &str, body: &[u8]) -> Result<Vec<T>, String> {
    let desc = descriptor(name);
    let opts = prost_reflect::DeserializeOptions::new().deny_unknown_fields(false);
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    loop {
        // Skip whitespace; stop at the end.
        match de.end() {
            Ok(()) => return Ok(out),
            Err(_) => {
                let dm = DynamicMessage::deserialize_with_options(desc.clone(), &mut de, &opts)
                    .map_err(|e| e.to_string())?;
                out.push(dm.transcode_to::<T>().map_err(|e| e.to_string())?);
            }
        }
    }
}

/// `msg` (the message named `name`) as etcd's gateway writes it.
pub fn encode<T: prost::Message>(name: &str, msg: &T) -> serde_json::Value {
    let mut dm = DynamicMessage::new(descriptor(name));
    if let Err(e) = dm.transcode_from(msg) {
        return serde_json::json!({ "error": format!("encoding {name}: {e}") });
    }
    let opts = prost_reflect::SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true);
    dm.serialize_with_options(serde_json::value::Serializer, &opts)
        .unwrap_or_else(|e| serde_json::json!({ "error": format!("encoding {name}: {e}") }))
}

/// grpc-gateway's (v1) HTTP status for a gRPC code.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        // grpc-gateway deliberately answers FailedPrecondition with 400, not 412.
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// An error answer in the gateway's shape.
fn error(s: &Status) -> Response {
    let v = serde_json::json!({
        "error": s.message(),
        "code": s.code() as i32,
        "message": s.message(),
    });
    json(http_status(s.code()), &v)
}

/// A gRPC request carrying the gateway request's token ([`Credentials::from_gateway`]).
fn grpc_request<T>(headers: &HeaderMap, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(token) = Credentials::from_gateway(headers).token {
        if let Ok(v) = tonic::metadata::MetadataValue::try_from(token.as_str()) {
            r.metadata_mut().insert("token", v);
        }
    }
    r
}

/// One unary RPC: decode, call, encode.
async fn unary<Req, Resp, F, Fut>(
    req_name: &str,
    resp_name: &str,
    headers: HeaderMap,
    body: Bytes,
    call: F,
) -> Response
where
    Req: prost::Message + Default,
    Resp: prost::Message,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let msg = match decode::<Req>(req_name, &body) {
        Ok(m) => m,
        Err(e) => return error(&Status::invalid_argument(e)),
    };
    match call(grpc_request(&headers, msg)).await {
        Ok(r) => json(StatusCode::OK, &encode(resp_name, r.get_ref())),
        Err(s) => error(&s),
    }
}

/// A streaming answer: `{"result": ...}` per message, then `{"error": ...}` if the
/// stream failed.
fn stream_response<T, S>(resp_name: &'static str, stream: S) -> Response
where
    T: prost::Message + 'static,
    S: Stream<Item = Result<T, Status>> + Send + 'static,
{
    let lines = stream.map(move |item| {
        let v = match item {
            Ok(m) => serde_json::json!({ "result": encode(resp_name, &m) }),
            Err(s) => serde_json::json!({ "error": {
                "grpc_code": s.code() as i32,
                "http_code": http_status(s.code()).as_u16(),
                "message": s.message(),
                "http_status": http_status(s.code()).canonical_reason().unwrap_or_default(),
            }}),
        };
        Ok::<_, std::convert::Infallible>(Bytes::from(format!("{v}\n")))
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        Body::from_stream(lines),
    )
        .into_response()
}

/// A stream of requests decoded from a body, for a bidirectional RPC. The stream ends
/// after them; the answers go on until the client goes away.
fn request_stream<T: prost::Message + Default + Send + 'static>(
    name: &str,
    body: &[u8],
) -> Result<impl Stream<Item = Result<T, Status>> + Send + Unpin + 'static, Status> {
    let msgs = decode_all::<T>(name, body).map_err(Status::invalid_argument)?;
    // Keep the request side open: a finished request stream would end a watch.
    Ok(futures::stream::iter(msgs.into_iter().map(Ok)).chain(futures::stream::pending()))
}

/// Adds a POST route at `$path` whose handler gets a `$svc` over `$ctx` as `$s`, the
/// request's headers as `$headers` and its body as `$body`, and answers `$handle`.
/// The three shapes below (unary, server stream, bidirectional) are written with it.
macro_rules! route {
    ($router:ident, $ctx:ident, $path:literal, $svc:ident, |$s:ident, $headers:ident, $body:ident| $handle:expr) => {{
        let ctx = $ctx.clone();
        $router = $router.route(
            $path,
            post(move |$headers: HeaderMap, $body: Bytes| {
                let $s = $svc(ctx.clone());
                async move { $handle }
            }),
        );
    }};
}

/// A route for a unary RPC: one request message in the body, one answer.
macro_rules! unary_route {
    ($router:ident, $ctx:ident, $path:literal, $svc:ident, $method:ident, $req:literal, $resp:literal) => {
        route!($router, $ctx, $path, $svc, |svc, headers, body| {
            unary($req, $resp, headers, body, |r| async move {
                svc.$method(r).await
            })
            .await
        })
    };
}

/// A route for a server-streaming RPC: one request message in the body, the answers
/// as a stream of `{"result": ...}` lines.
macro_rules! server_stream_route {
    ($router:ident, $ctx:ident, $path:literal, $svc:ident, $method:ident, $msg:ty, $req:literal, $resp:literal) => {
        route!($router, $ctx, $path, $svc, |svc, headers, body| {
            let msg = match decode::<$msg>($req, &body) {
                Ok(m) => m,
                Err(e) => return error(&Status::invalid_argument(e)),
            };
            match svc.$method(grpc_request(&headers, msg)).await {
                Ok(s) => stream_response($resp, s.into_inner()),
                Err(s) => error(&s),
            }
        })
    };
}

/// A route for a bidirectional RPC: the body's request messages as the request
/// stream (kept open), the answers as a stream of `{"result": ...}` lines.
macro_rules! bidi_route {
    ($router:ident, $ctx:ident, $path:literal, $svc:ident, $method:ident, $req:literal, $resp:literal) => {
        route!($router, $ctx, $path, $svc, |svc, headers, body| {
            match request_stream($req, &body) {
                Ok(reqs) => stream_response(
                    $resp,
                    svc.$method(Credentials::from_gateway(&headers), reqs),
                ),
                Err(s) => error(&s),
            }
        })
    };
}

/// The gateway's routes over the services of `ctx`.
pub fn routes(ctx: Ctx) -> Router {
    let limit = ctx.max_request_bytes + BODY_OVERHEAD_BYTES;
    let mut r = Router::new();
    unary_route!(
        r,
        ctx,
        "/v3/kv/range",
        KvService,
        range,
        "etcdserverpb.RangeRequest",
        "etcdserverpb.RangeResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/kv/put",
        KvService,
        put,
        "etcdserverpb.PutRequest",
        "etcdserverpb.PutResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/kv/deleterange",
        KvService,
        delete_range,
        "etcdserverpb.DeleteRangeRequest",
        "etcdserverpb.DeleteRangeResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/kv/txn",
        KvService,
        txn,
        "etcdserverpb.TxnRequest",
        "etcdserverpb.TxnResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/kv/compaction",
        KvService,
        compact,
        "etcdserverpb.CompactionRequest",
        "etcdserverpb.CompactionResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/lease/grant",
        LeaseService,
        lease_grant,
        "etcdserverpb.LeaseGrantRequest",
        "etcdserverpb.LeaseGrantResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/lease/revoke",
        LeaseService,
        lease_revoke,
        "etcdserverpb.LeaseRevokeRequest",
        "etcdserverpb.LeaseRevokeResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/kv/lease/revoke",
        LeaseService,
        lease_revoke,
        "etcdserverpb.LeaseRevokeRequest",
        "etcdserverpb.LeaseRevokeResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/lease/timetolive",
        LeaseService,
        lease_time_to_live,
        "etcdserverpb.LeaseTimeToLiveRequest",
        "etcdserverpb.LeaseTimeToLiveResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/kv/lease/timetolive",
        LeaseService,
        lease_time_to_live,
        "etcdserverpb.LeaseTimeToLiveRequest",
        "etcdserverpb.LeaseTimeToLiveResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/lease/leases",
        LeaseService,
        lease_leases,
        "etcdserverpb.LeaseLeasesRequest",
        "etcdserverpb.LeaseLeasesResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/kv/lease/leases",
        LeaseService,
        lease_leases,
        "etcdserverpb.LeaseLeasesRequest",
        "etcdserverpb.LeaseLeasesResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/cluster/member/add",
        ClusterService,
        member_add,
        "etcdserverpb.MemberAddRequest",
        "etcdserverpb.MemberAddResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/cluster/member/remove",
        ClusterService,
        member_remove,
        "etcdserverpb.MemberRemoveRequest",
        "etcdserverpb.MemberRemoveResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/cluster/member/update",
        ClusterService,
        member_update,
        "etcdserverpb.MemberUpdateRequest",
        "etcdserverpb.MemberUpdateResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/cluster/member/list",
        ClusterService,
        member_list,
        "etcdserverpb.MemberListRequest",
        "etcdserverpb.MemberListResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/cluster/member/promote",
        ClusterService,
        member_promote,
        "etcdserverpb.MemberPromoteRequest",
        "etcdserverpb.MemberPromoteResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/maintenance/alarm",
        MaintenanceService,
        alarm,
        "etcdserverpb.AlarmRequest",
        "etcdserverpb.AlarmResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/maintenance/status",
        MaintenanceService,
        status,
        "etcdserverpb.StatusRequest",
        "etcdserverpb.StatusResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/maintenance/defragment",
        MaintenanceService,
        defragment,
        "etcdserverpb.DefragmentRequest",
        "etcdserverpb.DefragmentResponse"
    );
    // etcd annotates Hash and HashKV with the same path; grpc-gateway serves the first.
    unary_route!(
        r,
        ctx,
        "/v3/maintenance/hash",
        MaintenanceService,
        hash,
        "etcdserverpb.HashRequest",
        "etcdserverpb.HashResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/maintenance/transfer-leadership",
        MaintenanceService,
        move_leader,
        "etcdserverpb.MoveLeaderRequest",
        "etcdserverpb.MoveLeaderResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/maintenance/downgrade",
        MaintenanceService,
        downgrade,
        "etcdserverpb.DowngradeRequest",
        "etcdserverpb.DowngradeResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/enable",
        AuthService,
        auth_enable,
        "etcdserverpb.AuthEnableRequest",
        "etcdserverpb.AuthEnableResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/disable",
        AuthService,
        auth_disable,
        "etcdserverpb.AuthDisableRequest",
        "etcdserverpb.AuthDisableResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/status",
        AuthService,
        auth_status,
        "etcdserverpb.AuthStatusRequest",
        "etcdserverpb.AuthStatusResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/authenticate",
        AuthService,
        authenticate,
        "etcdserverpb.AuthenticateRequest",
        "etcdserverpb.AuthenticateResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/user/add",
        AuthService,
        user_add,
        "etcdserverpb.AuthUserAddRequest",
        "etcdserverpb.AuthUserAddResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/user/get",
        AuthService,
        user_get,
        "etcdserverpb.AuthUserGetRequest",
        "etcdserverpb.AuthUserGetResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/user/list",
        AuthService,
        user_list,
        "etcdserverpb.AuthUserListRequest",
        "etcdserverpb.AuthUserListResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/user/delete",
        AuthService,
        user_delete,
        "etcdserverpb.AuthUserDeleteRequest",
        "etcdserverpb.AuthUserDeleteResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/user/changepw",
        AuthService,
        user_change_password,
        "etcdserverpb.AuthUserChangePasswordRequest",
        "etcdserverpb.AuthUserChangePasswordResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/user/grant",
        AuthService,
        user_grant_role,
        "etcdserverpb.AuthUserGrantRoleRequest",
        "etcdserverpb.AuthUserGrantRoleResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/user/revoke",
        AuthService,
        user_revoke_role,
        "etcdserverpb.AuthUserRevokeRoleRequest",
        "etcdserverpb.AuthUserRevokeRoleResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/role/add",
        AuthService,
        role_add,
        "etcdserverpb.AuthRoleAddRequest",
        "etcdserverpb.AuthRoleAddResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/role/get",
        AuthService,
        role_get,
        "etcdserverpb.AuthRoleGetRequest",
        "etcdserverpb.AuthRoleGetResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/role/list",
        AuthService,
        role_list,
        "etcdserverpb.AuthRoleListRequest",
        "etcdserverpb.AuthRoleListResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/role/delete",
        AuthService,
        role_delete,
        "etcdserverpb.AuthRoleDeleteRequest",
        "etcdserverpb.AuthRoleDeleteResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/role/grant",
        AuthService,
        role_grant_permission,
        "etcdserverpb.AuthRoleGrantPermissionRequest",
        "etcdserverpb.AuthRoleGrantPermissionResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/auth/role/revoke",
        AuthService,
        role_revoke_permission,
        "etcdserverpb.AuthRoleRevokePermissionRequest",
        "etcdserverpb.AuthRoleRevokePermissionResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/lock/lock",
        LockService,
        lock,
        "v3lockpb.LockRequest",
        "v3lockpb.LockResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/lock/unlock",
        LockService,
        unlock,
        "v3lockpb.UnlockRequest",
        "v3lockpb.UnlockResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/election/campaign",
        ElectionService,
        campaign,
        "v3electionpb.CampaignRequest",
        "v3electionpb.CampaignResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/election/proclaim",
        ElectionService,
        proclaim,
        "v3electionpb.ProclaimRequest",
        "v3electionpb.ProclaimResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/election/leader",
        ElectionService,
        leader,
        "v3electionpb.LeaderRequest",
        "v3electionpb.LeaderResponse"
    );
    unary_route!(
        r,
        ctx,
        "/v3/election/resign",
        ElectionService,
        resign,
        "v3electionpb.ResignRequest",
        "v3electionpb.ResignResponse"
    );

    bidi_route!(
        r,
        ctx,
        "/v3/watch",
        WatchService,
        serve,
        "etcdserverpb.WatchRequest",
        "etcdserverpb.WatchResponse"
    );
    bidi_route!(
        r,
        ctx,
        "/v3/lease/keepalive",
        LeaseService,
        keep_alive,
        "etcdserverpb.LeaseKeepAliveRequest",
        "etcdserverpb.LeaseKeepAliveResponse"
    );
    server_stream_route!(
        r,
        ctx,
        "/v3/election/observe",
        ElectionService,
        observe,
        el::LeaderRequest,
        "v3electionpb.LeaderRequest",
        "v3electionpb.LeaderResponse"
    );
    server_stream_route!(
        r,
        ctx,
        "/v3/maintenance/snapshot",
        MaintenanceService,
        snapshot,
        pb::SnapshotRequest,
        "etcdserverpb.SnapshotRequest",
        "etcdserverpb.SnapshotResponse"
    );
    let node = ctx.node.clone();
    r.layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(node, learner_guard))
}

/// The gateway paths a learner serves (as its gRPC methods: status, snapshot, and
/// ranges, which the KV service then requires to be serializable).
const LEARNER_PATHS: &[&str] = &[
    "/v3/maintenance/status",
    "/v3/maintenance/snapshot",
    "/v3/kv/range",
];

/// Refuses on a learner what its gRPC interceptor would refuse.
async fn learner_guard(
    axum::extract::State(node): axum::extract::State<crate::node::NodeHandle>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if node.status.is_learner.load(Ordering::Relaxed) && !LEARNER_PATHS.contains(&req.uri().path())
    {
        return error(&rpctypes::NOT_SUPPORTED_FOR_LEARNER.status());
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_as_etcds_gateway_writes_it() {
        let req: pb::PutRequest = decode(
            "etcdserverpb.PutRequest",
            br#"{"key":"Zm9v","value":"YmFy","lease":"7"}"#,
        )
        .unwrap();
        assert_eq!(
            (req.key.as_slice(), req.value.as_slice(), req.lease),
            (&b"foo"[..], &b"bar"[..], 7)
        );
        let resp = pb::RangeResponse {
            header: Some(pb::ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            kvs: vec![gauntlet_api::mvccpb::KeyValue {
                key: b"foo".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                value: b"bar".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        let v = encode("etcdserverpb.RangeResponse", &resp);
        assert_eq!(
            v,
            serde_json::json!({"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"},
                "kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"})
        );
        let lease = encode(
            "etcdserverpb.LeaseGrantResponse",
            &pb::LeaseGrantResponse {
                header: None,
                id: 5,
                ttl: 30,
                error: String::new(),
            },
        );
        assert_eq!(lease, serde_json::json!({"ID":"5","TTL":"30"}));
    }

    #[test]
    fn bad_bodies_are_one_line_errors_and_empty_is_default() {
        let empty: pb::StatusRequest = decode("etcdserverpb.StatusRequest", b"  ").unwrap();
        assert_eq!(empty, pb::StatusRequest {});
        for bad in [
            &b"not json"[..],
            br#"{"key": 5}"#,
            br#"{"key":"!!"}"#,
            br#"{"key":"Zm9v"} trailing"#,
        ] {
            let e = decode::<pb::RangeRequest>("etcdserverpb.RangeRequest", bad).unwrap_err();
            assert!(!e.contains('\n') && !e.is_empty(), "{e}");
        }
        let many: Vec<pb::WatchRequest> = decode_all(
            "etcdserverpb.WatchRequest",
            br#"{"create_request":{"key":"YQ=="}} {"cancel_request":{"watch_id":"1"}}"#,
        )
        .unwrap();
        assert_eq!(many.len(), 2);
    }

    #[test]
    fn unknown_fields_are_ignored_as_grpc_gateway_does() {
        let r: pb::RangeRequest =
            decode("etcdserverpb.RangeRequest", br#"{"key":"Zm9v","bogus":1}"#).unwrap();
        assert_eq!(r.key, b"foo");
    }
}
