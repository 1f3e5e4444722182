//! Recording: every request and response on one monotonic clock, and the one
//! place where a failed call is classified.
//!
//! Histories are judged by a linearizability checker, and the checker is only as
//! honest as the outcome attached to each operation. An operation that failed
//! *definitely* had no effect; one whose outcome is *unknown* may have taken effect
//! at any moment after it was invoked, or never. Calling an unknown outcome a
//! failure makes the checker reject correct servers; calling a definite failure
//! unknown makes it accept wrong ones only rarely, but slows it down. The decision
//! is made in exactly one function, [`classify`].

use std::sync::OnceLock;
use std::time::Instant;

use gauntlet_api::etcdserverpb as pb;
use gauntlet_api::v3electionpb as elpb;
use gauntlet_api::v3lockpb as lockpb;

/// Nanoseconds since the first call to this function in this process: the one
/// monotonic clock all records share.
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// How an operation ended, for the checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The server answered with success.
    Ok,
    /// It certainly had no effect (rejected before being applied, or read-only).
    Failed,
    /// It may or may not have taken effect.
    Unknown,
}

/// Why a call did not succeed, in the terms [`classify`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The server answered with a gRPC status.
    Status {
        /// The status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
    /// The client's own deadline expired before an answer came.
    Timeout,
    /// The request was never sent: no connection could be made, or it was invalid locally.
    NotSent,
    /// A stream ended or broke after the request was sent.
    StreamBroken,
}

/// Transport-level messages tonic/hyper use when a connection was never established,
/// so the request cannot have reached a server.
const NOT_CONNECTED_MARKERS: &[&str] = &[
    "tcp connect error",
    "error trying to connect",
    "connection refused",
    "dns error",
    "invalid uri",
];

/// Whether `code` is one etcd answers only for requests it rejected before proposing
/// them (so the server is alive, and the request had no effect).
pub fn is_rejection(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::ResourceExhausted
            | Code::Unimplemented
    )
}

/// The single choke point: maps a call's result to its [`Outcome`].
///
/// * success → `Ok`;
/// * a read-only call (`mutating == false`) that failed → `Failed`: whatever happened,
///   it changed nothing;
/// * a request that never left the client → `Failed`;
/// * a status etcd only returns for requests it rejected before proposing them
///   (invalid argument, not found, already exists, permission denied, unauthenticated,
///   failed precondition, out of range (compacted), resource exhausted, unimplemented)
///   → `Failed`;
/// * a connection error reported as `Unavailable` before anything was written → `Failed`;
/// * everything else (deadline exceeded, other `Unavailable` such as leader changes or
///   "request timed out", `Unknown`, `Internal`, `Canceled`, a broken stream) → `Unknown`.
pub fn classify(mutating: bool, failure: Option<&FailureKind>) -> Outcome {
    use tonic::Code;
    let Some(failure) = failure else {
        return Outcome::Ok;
    };
    if !mutating {
        return Outcome::Failed;
    }
    match failure {
        FailureKind::NotSent => Outcome::Failed,
        FailureKind::Timeout | FailureKind::StreamBroken => Outcome::Unknown,
        FailureKind::Status { code, message } => match code {
            c if is_rejection(*c) => Outcome::Failed,
            Code::Unavailable => {
                let m = message.to_ascii_lowercase();
                if NOT_CONNECTED_MARKERS
                    .iter()
                    .any(|needle| m.contains(needle))
                {
                    Outcome::Failed
                } else {
                    Outcome::Unknown
                }
            }
            _ => Outcome::Unknown,
        },
    }
}

macro_rules! recorded_rpcs {
    ($( $variant:ident : $req:ty => $resp:ty, mutating = $mutating:expr; )*) => {
        /// A recorded request, one variant per unary RPC.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Call { $( #[allow(missing_docs)] $variant($req), )* }
        /// A recorded successful response, one variant per unary RPC.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Return { $( #[allow(missing_docs)] $variant($resp), )* }
        impl Call {
            /// The RPC's name, e.g. `Range`.
            pub fn method(&self) -> &'static str { match self { $( Call::$variant(_) => stringify!($variant), )* } }
            /// Whether the RPC can change server state (decides [`classify`]'s read-only rule).
            pub fn is_mutating(&self) -> bool { match self { $( Call::$variant(_) => $mutating, )* } }
        }
        $(
            impl Recordable for $req {
                type Response = $resp;
                const METHOD: &'static str = stringify!($variant);
                fn to_call(&self) -> Call { Call::$variant(self.clone()) }
                fn to_return(resp: &$resp) -> Return { Return::$variant(resp.clone()) }
            }
        )*
    };
}

/// A request type the client knows how to record.
pub trait Recordable: Clone {
    /// Its response type.
    type Response;
    /// The RPC's name.
    const METHOD: &'static str;
    /// The request as a record.
    fn to_call(&self) -> Call;
    /// A response as a record.
    fn to_return(resp: &Self::Response) -> Return;
}

impl Call {
    /// Txns and ranges are mutating only if they contain a write.
    fn txn_is_mutating(t: &pb::TxnRequest) -> bool {
        use pb::request_op::Request;
        t.success
            .iter()
            .chain(&t.failure)
            .any(|op| match &op.request {
                Some(Request::RequestRange(_)) | None => false,
                Some(Request::RequestTxn(inner)) => Self::txn_is_mutating(inner),
                Some(_) => true,
            })
    }
}

recorded_rpcs! {
    Range: pb::RangeRequest => pb::RangeResponse, mutating = false;
    Put: pb::PutRequest => pb::PutResponse, mutating = true;
    DeleteRange: pb::DeleteRangeRequest => pb::DeleteRangeResponse, mutating = true;
    Txn: pb::TxnRequest => pb::TxnResponse, mutating = true;
    Compact: pb::CompactionRequest => pb::CompactionResponse, mutating = true;
    LeaseGrant: pb::LeaseGrantRequest => pb::LeaseGrantResponse, mutating = true;
    LeaseRevoke: pb::LeaseRevokeRequest => pb::LeaseRevokeResponse, mutating = true;
    LeaseKeepAlive: pb::LeaseKeepAliveRequest => pb::LeaseKeepAliveResponse, mutating = true;
    LeaseTimeToLive: pb::LeaseTimeToLiveRequest => pb::LeaseTimeToLiveResponse, mutating = false;
    LeaseLeases: pb::LeaseLeasesRequest => pb::LeaseLeasesResponse, mutating = false;
    MemberAdd: pb::MemberAddRequest => pb::MemberAddResponse, mutating = true;
    MemberRemove: pb::MemberRemoveRequest => pb::MemberRemoveResponse, mutating = true;
    MemberUpdate: pb::MemberUpdateRequest => pb::MemberUpdateResponse, mutating = true;
    MemberList: pb::MemberListRequest => pb::MemberListResponse, mutating = false;
    MemberPromote: pb::MemberPromoteRequest => pb::MemberPromoteResponse, mutating = true;
    Alarm: pb::AlarmRequest => pb::AlarmResponse, mutating = true;
    Status: pb::StatusRequest => pb::StatusResponse, mutating = false;
    Defragment: pb::DefragmentRequest => pb::DefragmentResponse, mutating = false;
    Hash: pb::HashRequest => pb::HashResponse, mutating = false;
    HashKv: pb::HashKvRequest => pb::HashKvResponse, mutating = false;
    MoveLeader: pb::MoveLeaderRequest => pb::MoveLeaderResponse, mutating = true;
    Downgrade: pb::DowngradeRequest => pb::DowngradeResponse, mutating = true;
    AuthEnable: pb::AuthEnableRequest => pb::AuthEnableResponse, mutating = true;
    AuthDisable: pb::AuthDisableRequest => pb::AuthDisableResponse, mutating = true;
    AuthStatus: pb::AuthStatusRequest => pb::AuthStatusResponse, mutating = false;
    Authenticate: pb::AuthenticateRequest => pb::AuthenticateResponse, mutating = false;
    UserAdd: pb::AuthUserAddRequest => pb::AuthUserAddResponse, mutating = true;
    UserGet: pb::AuthUserGetRequest => pb::AuthUserGetResponse, mutating = false;
    UserList: pb::AuthUserListRequest => pb::AuthUserListResponse, mutating = false;
    UserDelete: pb::AuthUserDeleteRequest => pb::AuthUserDeleteResponse, mutating = true;
    UserChangePassword: pb::AuthUserChangePasswordRequest => pb::AuthUserChangePasswordResponse, mutating = true;
    UserGrantRole: pb::AuthUserGrantRoleRequest => pb::AuthUserGrantRoleResponse, mutating = true;
    UserRevokeRole: pb::AuthUserRevokeRoleRequest => pb::AuthUserRevokeRoleResponse, mutating = true;
    RoleAdd: pb::AuthRoleAddRequest => pb::AuthRoleAddResponse, mutating = true;
    RoleGet: pb::AuthRoleGetRequest => pb::AuthRoleGetResponse, mutating = false;
    RoleList: pb::AuthRoleListRequest => pb::AuthRoleListResponse, mutating = false;
    RoleDelete: pb::AuthRoleDeleteRequest => pb::AuthRoleDeleteResponse, mutating = true;
    RoleGrantPermission: pb::AuthRoleGrantPermissionRequest => pb::AuthRoleGrantPermissionResponse, mutating = true;
    RoleRevokePermission: pb::AuthRoleRevokePermissionRequest => pb::AuthRoleRevokePermissionResponse, mutating = true;
    Lock: lockpb::LockRequest => lockpb::LockResponse, mutating = true;
    Unlock: lockpb::UnlockRequest => lockpb::UnlockResponse, mutating = true;
    Campaign: elpb::CampaignRequest => elpb::CampaignResponse, mutating = true;
    Proclaim: elpb::ProclaimRequest => elpb::ProclaimResponse, mutating = true;
    Leader: elpb::LeaderRequest => elpb::LeaderResponse, mutating = false;
    Resign: elpb::ResignRequest => elpb::ResignResponse, mutating = true;
}

impl Call {
    /// Whether this particular request can change state: like [`Call::is_mutating`],
    /// but a txn of only reads is read-only.
    pub fn may_mutate(&self) -> bool {
        match self {
            Call::Txn(t) => Self::txn_is_mutating(t),
            other => other.is_mutating(),
        }
    }
}

/// One operation: invocation and completion on the [`now_ns`] clock.
#[derive(Debug, Clone)]
pub struct OpRecord {
    /// The recording client's id.
    pub client_id: u64,
    /// Sequence number of the operation within its client.
    pub op_id: u64,
    /// The endpoint the request was sent to.
    pub endpoint: String,
    /// The request.
    pub call: Call,
    /// The response, when it succeeded.
    pub ret: Option<Return>,
    /// The failure, when it did not.
    pub failure: Option<FailureKind>,
    /// When the call was invoked.
    pub invoke_ns: u64,
    /// When it completed (answer, error or deadline).
    pub complete_ns: u64,
    /// The outcome, from [`classify`].
    pub outcome: Outcome,
}

/// One response received on a watch stream.
#[derive(Debug, Clone)]
pub struct WatchRecord {
    /// The recording client's id.
    pub client_id: u64,
    /// Which stream of that client (streams are numbered from 0).
    pub stream_id: u64,
    /// The response.
    pub response: pb::WatchResponse,
    /// When it was received.
    pub received_ns: u64,
}

/// What a client is about to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// A unary request.
    Unary(Call),
    /// A request on a watch stream (create, cancel, progress).
    Watch(pb::WatchRequest),
    /// A keep-alive on a lease stream.
    KeepAlive(pb::LeaseKeepAliveRequest),
}

impl Request {
    /// One readable line: the gRPC method and the message, byte strings shown as
    /// text (`key: b"foo"`), cut at `max_chars`.
    pub fn describe(&self, max_chars: usize) -> String {
        let raw = match self {
            Request::Unary(c) => format!("{c:?}"),
            Request::Watch(w) => match &w.request_union {
                Some(u) => format!("Watch({u:?})"),
                None => "Watch(empty request)".to_string(),
            },
            Request::KeepAlive(k) => format!("LeaseKeepAlive({k:?})"),
        };
        let pretty = bytes_as_text(&raw);
        if pretty.chars().count() <= max_chars {
            pretty
        } else {
            let mut cut: String = pretty.chars().take(max_chars).collect();
            cut.push_str(" ...");
            cut
        }
    }
}

/// Rewrites Debug's byte vectors (`[102, 111, 111]`) as escaped byte strings (`b"foo"`).
fn bytes_as_text(debug: &str) -> String {
    let mut out = String::with_capacity(debug.len());
    let mut rest = debug;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find(']');
        let parsed = close.and_then(|c| {
            let inner = &after[..c];
            if inner.is_empty() {
                return Some((Vec::new(), c));
            }
            inner
                .split(", ")
                .map(|n| n.parse::<u8>().ok())
                .collect::<Option<Vec<u8>>>()
                .map(|b| (b, c))
        });
        match parsed {
            Some((bytes, c)) => {
                out.push_str("b\"");
                out.extend(
                    bytes
                        .iter()
                        .flat_map(|b| std::ascii::escape_default(*b))
                        .map(char::from),
                );
                out.push('"');
                rest = &after[c + 1..];
            }
            None => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A request as it leaves a client (before any answer).
#[derive(Debug, Clone)]
pub struct SentRecord {
    /// The recording client's id.
    pub client_id: u64,
    /// The endpoint it goes to.
    pub endpoint: String,
    /// The request.
    pub request: Request,
    /// When it was sent, on the [`now_ns`] clock.
    pub sent_ns: u64,
}

/// Receives records. Implementations must be cheap and must not block: they are
/// called on the request path.
pub trait Recorder: Send + Sync + std::fmt::Debug {
    /// Called for every request as it is sent, before its answer: unary calls and
    /// requests on watch and keep-alive streams. What was in flight when a server
    /// died comes from here.
    fn sent(&self, record: SentRecord) {
        let _ = record;
    }
    /// Called once per unary operation, after it completed.
    fn operation(&self, record: OpRecord);
    /// Called for every response received on a watch stream.
    fn watch_response(&self, record: WatchRecord) {
        let _ = record;
    }
}

/// A recorder that keeps everything in memory, up to a bound.
#[derive(Debug, Default)]
pub struct MemoryRecorder {
    ops: std::sync::Mutex<Vec<OpRecord>>,
    watches: std::sync::Mutex<Vec<WatchRecord>>,
}

/// The most records a [`MemoryRecorder`] keeps of each kind; later ones are dropped and counted.
pub const MEMORY_RECORDER_LIMIT: usize = 10_000_000;

impl MemoryRecorder {
    /// The operations recorded so far, in completion order.
    pub fn operations(&self) -> Vec<OpRecord> {
        self.ops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
    /// The watch responses recorded so far, in arrival order.
    pub fn watch_responses(&self) -> Vec<WatchRecord> {
        self.watches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Recorder for MemoryRecorder {
    fn operation(&self, record: OpRecord) {
        let mut v = self
            .ops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if v.len() < MEMORY_RECORDER_LIMIT {
            v.push(record);
        }
    }
    fn watch_response(&self, record: WatchRecord) {
        let mut v = self
            .watches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if v.len() < MEMORY_RECORDER_LIMIT {
            v.push(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn status(code: Code, message: &str) -> FailureKind {
        FailureKind::Status {
            code,
            message: message.to_string(),
        }
    }

    #[test]
    fn success_is_ok_and_failed_reads_are_definite() {
        assert_eq!(classify(true, None), Outcome::Ok);
        assert_eq!(
            classify(false, Some(&FailureKind::Timeout)),
            Outcome::Failed
        );
        assert_eq!(
            classify(
                false,
                Some(&status(Code::Unavailable, "etcdserver: leader changed"))
            ),
            Outcome::Failed
        );
    }

    #[test]
    fn writes_with_ambiguous_failures_are_unknown() {
        for f in [
            FailureKind::Timeout,
            FailureKind::StreamBroken,
            status(Code::Unavailable, "etcdserver: request timed out"),
            status(Code::Unavailable, "etcdserver: leader changed"),
            status(Code::DeadlineExceeded, "context deadline exceeded"),
            status(Code::Unknown, "etcdserver: too many requests"),
            status(Code::Internal, "h2 protocol error"),
            status(Code::Cancelled, "context canceled"),
        ] {
            assert_eq!(classify(true, Some(&f)), Outcome::Unknown, "{f:?}");
        }
    }

    #[test]
    fn writes_rejected_up_front_are_definite_failures() {
        for f in [
            FailureKind::NotSent,
            status(
                Code::Unavailable,
                "tcp connect error: Connection refused (os error 111)",
            ),
            status(Code::InvalidArgument, "etcdserver: key is not provided"),
            status(
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            status(Code::NotFound, "etcdserver: requested lease not found"),
            status(Code::PermissionDenied, "etcdserver: permission denied"),
            status(
                Code::FailedPrecondition,
                "etcdserver: authentication is not enabled",
            ),
            status(
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
        ] {
            assert_eq!(classify(true, Some(&f)), Outcome::Failed, "{f:?}");
        }
    }

    #[test]
    fn read_only_txns_do_not_mutate() {
        use pb::request_op::Request;
        let read = pb::RequestOp {
            request: Some(Request::RequestRange(pb::RangeRequest::default())),
        };
        let write = pb::RequestOp {
            request: Some(Request::RequestPut(pb::PutRequest::default())),
        };
        let ro = pb::TxnRequest {
            success: vec![read.clone()],
            ..Default::default()
        };
        assert!(!Call::Txn(ro.clone()).may_mutate());
        let nested = pb::TxnRequest {
            failure: vec![pb::RequestOp {
                request: Some(Request::RequestTxn(pb::TxnRequest {
                    success: vec![write],
                    ..Default::default()
                })),
            }],
            ..ro
        };
        assert!(Call::Txn(nested).may_mutate());
        assert!(!Call::Range(pb::RangeRequest::default()).may_mutate());
    }

    #[test]
    fn requests_describe_their_bytes_as_text() {
        let r = Request::Unary(Call::Range(pb::RangeRequest {
            key: b"foo".to_vec(),
            range_end: vec![0, 0x7f],
            ..Default::default()
        }));
        let d = r.describe(400);
        assert!(
            d.starts_with("Range(RangeRequest { key: b\"foo\", range_end: b\"\\x00\\x7f\""),
            "{d}"
        );
        assert!(r.describe(10).ends_with(" ..."));
        assert_eq!(bytes_as_text("[1, x] [] [300]"), "[1, x] b\"\" [300]");
    }

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
    }
}
