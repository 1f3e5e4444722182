//! The JSON gateway's request decoding, on bytes from a hostile client.
//!
//! The first byte picks a message type of the gateway (every request it decodes, and
//! every response it encodes); the rest is the HTTP body. Checked:
//!
//! - `gateway::decode` never panics, whatever the body;
//! - what decodes, `gateway::encode` writes without panicking, and that JSON decodes
//!   again to the same message (the gateway can read what it writes);
//! - the streaming decoder of the bidirectional RPCs (`decode_all`, for `/v3/watch` and
//!   `/v3/lease/keepalive`) never panics either, and agrees with `decode` on a body of
//!   one message.
#![no_main]

use gauntlet_api::etcdserverpb as pb;
use gauntlet_api::v3electionpb as el;
use gauntlet_api::v3lockpb as lk;
use gauntlet_reference_server::gateway;
use libfuzzer_sys::fuzz_target;

/// Decodes `body` as `T` (named `name`); what decodes must encode and decode back equal.
fn check<T: prost::Message + Default + PartialEq>(name: &str, body: &[u8]) {
    let Ok(msg) = gateway::decode::<T>(name, body) else {
        return;
    };
    let json = gateway::encode(name, &msg);
    assert!(
        json.get("error").is_none() || name.ends_with("Response"),
        "{name}: a decoded message does not encode: {json}"
    );
    let text = serde_json::to_vec(&json).expect("a serde_json::Value serializes");
    let again = gateway::decode::<T>(name, &text)
        .unwrap_or_else(|e| panic!("{name}: the gateway cannot read what it wrote ({e}): {json}"));
    assert!(
        again == msg,
        "{name}: JSON round trip changed the message: {json}"
    );
}

/// The streaming decoder: never panics; on success every message encodes.
fn check_stream<T: prost::Message + Default + PartialEq>(name: &str, body: &[u8]) {
    check::<T>(name, body);
    let Ok(msgs) = gateway::decode_all::<T>(name, body) else {
        return;
    };
    for m in &msgs {
        let _ = gateway::encode(name, m);
    }
    // One message (no trailing data): both decoders read the same thing.
    if let Ok(one) = gateway::decode::<T>(name, body) {
        if !body.iter().all(u8::is_ascii_whitespace) {
            assert!(msgs == vec![one], "{name}: decode and decode_all disagree");
        }
    }
}

macro_rules! table {
    ($($kind:ident $ty:ty => $name:literal),* $(,)?) => {
        const TABLE: &[fn(&[u8])] = &[$(|b| table!(@one $kind $ty, $name, b)),*];
    };
    (@one unary $ty:ty, $name:literal, $b:ident) => { check::<$ty>($name, $b) };
    (@one stream $ty:ty, $name:literal, $b:ident) => { check_stream::<$ty>($name, $b) };
}

table! {
    unary pb::RangeRequest => "etcdserverpb.RangeRequest",
    unary pb::PutRequest => "etcdserverpb.PutRequest",
    unary pb::DeleteRangeRequest => "etcdserverpb.DeleteRangeRequest",
    unary pb::TxnRequest => "etcdserverpb.TxnRequest",
    unary pb::CompactionRequest => "etcdserverpb.CompactionRequest",
    unary pb::LeaseGrantRequest => "etcdserverpb.LeaseGrantRequest",
    unary pb::LeaseRevokeRequest => "etcdserverpb.LeaseRevokeRequest",
    unary pb::LeaseTimeToLiveRequest => "etcdserverpb.LeaseTimeToLiveRequest",
    unary pb::LeaseLeasesRequest => "etcdserverpb.LeaseLeasesRequest",
    unary pb::MemberAddRequest => "etcdserverpb.MemberAddRequest",
    unary pb::MemberRemoveRequest => "etcdserverpb.MemberRemoveRequest",
    unary pb::MemberUpdateRequest => "etcdserverpb.MemberUpdateRequest",
    unary pb::MemberListRequest => "etcdserverpb.MemberListRequest",
    unary pb::MemberPromoteRequest => "etcdserverpb.MemberPromoteRequest",
    unary pb::AlarmRequest => "etcdserverpb.AlarmRequest",
    unary pb::StatusRequest => "etcdserverpb.StatusRequest",
    unary pb::DefragmentRequest => "etcdserverpb.DefragmentRequest",
    unary pb::HashRequest => "etcdserverpb.HashRequest",
    unary pb::MoveLeaderRequest => "etcdserverpb.MoveLeaderRequest",
    unary pb::DowngradeRequest => "etcdserverpb.DowngradeRequest",
    unary pb::SnapshotRequest => "etcdserverpb.SnapshotRequest",
    unary pb::AuthEnableRequest => "etcdserverpb.AuthEnableRequest",
    unary pb::AuthDisableRequest => "etcdserverpb.AuthDisableRequest",
    unary pb::AuthStatusRequest => "etcdserverpb.AuthStatusRequest",
    unary pb::AuthenticateRequest => "etcdserverpb.AuthenticateRequest",
    unary pb::AuthUserAddRequest => "etcdserverpb.AuthUserAddRequest",
    unary pb::AuthUserGetRequest => "etcdserverpb.AuthUserGetRequest",
    unary pb::AuthUserListRequest => "etcdserverpb.AuthUserListRequest",
    unary pb::AuthUserDeleteRequest => "etcdserverpb.AuthUserDeleteRequest",
    unary pb::AuthUserChangePasswordRequest => "etcdserverpb.AuthUserChangePasswordRequest",
    unary pb::AuthUserGrantRoleRequest => "etcdserverpb.AuthUserGrantRoleRequest",
    unary pb::AuthUserRevokeRoleRequest => "etcdserverpb.AuthUserRevokeRoleRequest",
    unary pb::AuthRoleAddRequest => "etcdserverpb.AuthRoleAddRequest",
    unary pb::AuthRoleGetRequest => "etcdserverpb.AuthRoleGetRequest",
    unary pb::AuthRoleListRequest => "etcdserverpb.AuthRoleListRequest",
    unary pb::AuthRoleDeleteRequest => "etcdserverpb.AuthRoleDeleteRequest",
    unary pb::AuthRoleGrantPermissionRequest => "etcdserverpb.AuthRoleGrantPermissionRequest",
    unary pb::AuthRoleRevokePermissionRequest => "etcdserverpb.AuthRoleRevokePermissionRequest",
    unary lk::LockRequest => "v3lockpb.LockRequest",
    unary lk::UnlockRequest => "v3lockpb.UnlockRequest",
    unary el::CampaignRequest => "v3electionpb.CampaignRequest",
    unary el::ProclaimRequest => "v3electionpb.ProclaimRequest",
    unary el::LeaderRequest => "v3electionpb.LeaderRequest",
    unary el::ResignRequest => "v3electionpb.ResignRequest",
    stream pb::WatchRequest => "etcdserverpb.WatchRequest",
    stream pb::LeaseKeepAliveRequest => "etcdserverpb.LeaseKeepAliveRequest",
    // Responses: what encode writes for messages of any content.
    unary pb::RangeResponse => "etcdserverpb.RangeResponse",
    unary pb::TxnResponse => "etcdserverpb.TxnResponse",
    unary pb::WatchResponse => "etcdserverpb.WatchResponse",
    unary pb::LeaseTimeToLiveResponse => "etcdserverpb.LeaseTimeToLiveResponse",
    unary pb::MemberListResponse => "etcdserverpb.MemberListResponse",
    unary pb::StatusResponse => "etcdserverpb.StatusResponse",
    unary pb::AuthRoleGetResponse => "etcdserverpb.AuthRoleGetResponse",
    unary pb::AlarmResponse => "etcdserverpb.AlarmResponse",
    unary el::LeaderResponse => "v3electionpb.LeaderResponse",
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    TABLE[usize::from(pick) % TABLE.len()](body);
});
