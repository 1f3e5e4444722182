//! etcd's v3 gRPC wire protocol, from our own `.proto` files, as Rust types
//! with tonic client and server stubs.
//!
//! Everything else in Gauntlet talks to servers through this crate, and the
//! reference server implements its services. The packages keep etcd's names
//! (`etcdserverpb`, `mvccpb`, `authpb`, `v3lockpb`, `v3electionpb`), so gRPC
//! method paths such as `/etcdserverpb.KV/Range` are exactly etcd's and real
//! etcd clients and servers interoperate with ours.
//!
//! # A first request
//!
//! Messages are plain structs with `Default`; build one, hand it to a client:
//!
//! ```
//! use gauntlet_api::etcdserverpb::{range_request::SortOrder, RangeRequest};
//! use gauntlet_api::prefix_range_end;
//!
//! // "every key under /registry/pods/, newest first, at most 500"
//! let req = RangeRequest {
//!     key: b"/registry/pods/".to_vec(),
//!     range_end: prefix_range_end(b"/registry/pods/"),
//!     limit: 500,
//!     sort_order: SortOrder::Descend as i32,
//!     ..Default::default()
//! };
//! assert_eq!(req.range_end, b"/registry/pods0".to_vec());
//! ```
//!
//! A client is `etcdserverpb::kv_client::KvClient::new(channel)` over a tonic
//! channel; a server is `etcdserverpb::kv_server::KvServer::new(impl Kv)`.
//! Gauntlet's own recording client, with deadlines, auth and TLS, lives in the
//! `gauntlet-harness` crate.
//!
//! # Errors
//!
//! [`rpctypes`] lists the gRPC status code and exact message etcd uses for
//! every error it returns, so servers can produce them and suites can compare
//! against them.
//!
//! # What is public
//!
//! The generated code is private; the modules below re-export a curated list
//! of its items (every message, enum, client and server of the etcd API).
//! Enums nested in a message live in the snake-case module named after it,
//! as prost generates them (`range_request::SortOrder`).

mod generated {
    #![allow(
        clippy::all,
        clippy::pedantic,
        missing_docs,
        missing_debug_implementations,
        rust_2018_idioms
    )]
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    pub mod authpb {
        tonic::include_proto!("authpb");
    }
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    pub mod v3lockpb {
        tonic::include_proto!("v3lockpb");
    }
    pub mod v3electionpb {
        tonic::include_proto!("v3electionpb");
    }
}

pub mod rpctypes;

/// The encoded `FileDescriptorSet` of every message and service above (etcd's protos as
/// this crate compiles them), for reflection: JSON transcoding in the reference server's
/// gateway.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// Keys, values and events of the MVCC store (package `mvccpb`).
pub mod mvccpb {
    pub use crate::generated::mvccpb::{event, Event, KeyValue};
}

/// Users, roles and permissions (package `authpb`).
pub mod authpb {
    pub use crate::generated::authpb::{permission, Permission, Role, User, UserAddOptions};
}

/// The six core services: KV, Watch, Lease, Cluster, Maintenance and Auth (package `etcdserverpb`).
pub mod etcdserverpb {
    // Shared.
    pub use crate::generated::etcdserverpb::ResponseHeader;
    // KV.
    pub use crate::generated::etcdserverpb::{
        compare, kv_client, kv_server, range_request, request_op, response_op, CompactionRequest,
        CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
        PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseOp, TxnRequest, TxnResponse,
    };
    // Watch.
    pub use crate::generated::etcdserverpb::{
        watch_client, watch_create_request, watch_request, watch_server, WatchCancelRequest,
        WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
    };
    // Lease.
    pub use crate::generated::etcdserverpb::{
        lease_client, lease_server, LeaseCheckpoint, LeaseCheckpointRequest,
        LeaseCheckpointResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
        LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
        LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
    };
    // Cluster.
    pub use crate::generated::etcdserverpb::{
        cluster_client, cluster_server, Member, MemberAddRequest, MemberAddResponse,
        MemberListRequest, MemberListResponse, MemberPromoteRequest, MemberPromoteResponse,
        MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
    };
    // Maintenance.
    pub use crate::generated::etcdserverpb::{
        alarm_request, downgrade_request, maintenance_client, maintenance_server, AlarmMember,
        AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse,
        DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest,
        HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, SnapshotResponse,
        StatusRequest, StatusResponse,
    };
    // Auth.
    pub use crate::generated::etcdserverpb::{
        auth_client, auth_server, AuthDisableRequest, AuthDisableResponse, AuthEnableRequest,
        AuthEnableResponse, AuthRoleAddRequest, AuthRoleAddResponse, AuthRoleDeleteRequest,
        AuthRoleDeleteResponse, AuthRoleGetRequest, AuthRoleGetResponse,
        AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse, AuthRoleListRequest,
        AuthRoleListResponse, AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse,
        AuthStatusRequest, AuthStatusResponse, AuthUserAddRequest, AuthUserAddResponse,
        AuthUserChangePasswordRequest, AuthUserChangePasswordResponse, AuthUserDeleteRequest,
        AuthUserDeleteResponse, AuthUserGetRequest, AuthUserGetResponse, AuthUserGrantRoleRequest,
        AuthUserGrantRoleResponse, AuthUserListRequest, AuthUserListResponse,
        AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse, AuthenticateRequest,
        AuthenticateResponse,
    };
}

/// Distributed locks (package `v3lockpb`).
pub mod v3lockpb {
    pub use crate::generated::v3lockpb::{
        lock_client, lock_server, LockRequest, LockResponse, UnlockRequest, UnlockResponse,
    };
}

/// Leader election (package `v3electionpb`).
pub mod v3electionpb {
    pub use crate::generated::v3electionpb::{
        election_client, election_server, CampaignRequest, CampaignResponse, LeaderKey,
        LeaderRequest, LeaderResponse, ProclaimRequest, ProclaimResponse, ResignRequest,
        ResignResponse,
    };
}

/// The `range_end` that selects every key starting with `prefix`: the prefix with
/// its last byte that is not `0xff` incremented and everything after it dropped.
///
/// A prefix of only `0xff` bytes (or an empty one) has no such key, and etcd's
/// convention is then `[0]`, which means "to the end of the keyspace".
///
/// ```
/// assert_eq!(gauntlet_api::prefix_range_end(b"a/"), b"a0".to_vec());
/// assert_eq!(gauntlet_api::prefix_range_end(b"a\xff"), b"b".to_vec());
/// assert_eq!(gauntlet_api::prefix_range_end(b"\xff\xff"), vec![0]);
/// assert_eq!(gauntlet_api::prefix_range_end(b""), vec![0]);
/// ```
pub fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::etcdserverpb::*;
    use prost::Message;

    /// Field numbers are the contract with real etcd: encode known values and compare
    /// with bytes computed by hand from etcd's field numbers.
    #[test]
    fn field_numbers_match_etcds_wire_format() {
        let put = PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            lease: 5,
            prev_kv: true,
            ..Default::default()
        };
        // key=1 (0x0a), value=2 (0x12), lease=3 varint (0x18), prev_kv=4 varint (0x20)
        assert_eq!(
            put.encode_to_vec(),
            vec![0x0a, 1, b'k', 0x12, 1, b'v', 0x18, 5, 0x20, 1]
        );
        let range = RangeRequest {
            key: b"a".to_vec(),
            limit: 2,
            revision: 3,
            count_only: true,
            ..Default::default()
        };
        // key=1, limit=3, revision=4, count_only=9
        assert_eq!(
            range.encode_to_vec(),
            vec![0x0a, 1, b'a', 0x18, 2, 0x20, 3, 0x48, 1]
        );
        let hdr = ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 3,
            raft_term: 4,
        };
        assert_eq!(
            hdr.encode_to_vec(),
            vec![0x08, 1, 0x10, 2, 0x18, 3, 0x20, 4]
        );
        let create = WatchCreateRequest {
            key: b"w".to_vec(),
            start_revision: 7,
            progress_notify: true,
            prev_kv: true,
            watch_id: 9,
            fragment: true,
            ..Default::default()
        };
        // key=1, start_revision=3, progress_notify=4, prev_kv=6, watch_id=7, fragment=8
        assert_eq!(
            create.encode_to_vec(),
            vec![0x0a, 1, b'w', 0x18, 7, 0x20, 1, 0x30, 1, 0x38, 9, 0x40, 1]
        );
        let grant = LeaseGrantRequest { ttl: 10, id: 11 };
        assert_eq!(grant.encode_to_vec(), vec![0x08, 10, 0x10, 11]);
    }

    #[test]
    fn compare_oneof_uses_etcds_numbers() {
        let c = Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Mod as i32,
            key: b"k".to_vec(),
            range_end: vec![],
            target_union: Some(compare::TargetUnion::ModRevision(5)),
        };
        // target=2 (MOD=2), key=3, mod_revision=6 in the oneof
        assert_eq!(c.encode_to_vec(), vec![0x10, 2, 0x1a, 1, b'k', 0x30, 5]);
    }
}
