//! The replicated state machine of `gauntlet-server`: an etcd-compatible MVCC key-value
//! store, its leases and its watch hub, persisted in one sled tree.
//!
//! # How the server drives it
//!
//! 1. Before proposing a client request, call [`validate`] (or [`validate_range`] for a
//!    read): it rejects what etcd rejects without looking at any state.
//! 2. Every committed raft entry goes to [`StateMachine::apply`] (or
//!    [`StateMachine::apply_noop`] for entries without a command), in index order, on every
//!    member. `apply` answers `Ok(Some(Ok(response)))`, or `Ok(Some(Err(etcd_error)))` for a
//!    deterministic rejection (the same on every member; the entry is still consumed), or
//!    `Ok(None)` for a replayed index. Responses carry no top-level header: the caller fills
//!    it, taking the revision from [`StateMachine::revision`] after the apply.
//! 3. Call [`StateMachine::flush`] when the applied entries must be durable (group commit).
//!    Whatever was flushed reopens with the applied index that produced it: the applied
//!    index (the meta record) is written after the effects of its entries, in the same
//!    atomic sled batch or, for a group of only new records, as the last of its inserts;
//!    records above the meta's revision are discarded on open.
//! 4. Reads ([`StateMachine::range`], [`StateMachine::hash_kv`], leases) need only `&self`.
//! 5. Watchers register on the [`WatchHub`] ([`StateMachine::watch_hub`]); `apply` feeds it
//!    without ever blocking.
//!
//! (This crate is a binary, so the example is not compiled as a doctest; `tests_kv`
//! runs the same steps.)
//!
//! ```text
//! use state::{Command, Op, Response, StateMachine};
//! use gauntlet_api::etcdserverpb::{PutRequest, RangeRequest};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let mut sm = StateMachine::open(sled::open(dir.path()).unwrap()).unwrap();
//! assert_eq!(sm.revision(), 1); // an empty etcd answers revision 1
//! let put = Command::internal(Op::Put(PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() }));
//! state::validate(&put, 128).unwrap();
//! let out = sm.apply(1, &put).unwrap().expect("index 1 is new");
//! assert!(matches!(out, Ok(Response::Put(_))));
//! assert_eq!(sm.apply(1, &put).unwrap(), None); // replay: ignored
//! let got = sm.range(&RangeRequest { key: b"k".to_vec(), ..Default::default() }).unwrap();
//! assert_eq!(got.kvs[0].mod_revision, 2);
//! ```
//!
//! # Invariants
//!
//! - Invariant: `apply` is deterministic: the same commands at the same raft indexes give
//!   the same responses, the same revisions and the same `hash_kv` on every member (records
//!   carry the index that wrote them, so the hash covers it too).
//! - Invariant: the persisted applied index always describes exactly the state that opens
//!   (see [`StateMachine::commit`]: the meta record comes last, sled recovers a prefix of
//!   its writes, and newer records are discarded on open).
//! - Invariant: `apply` never waits for a watcher; a watcher never misses or repeats an event.
//! - Invariant: after a [`StateError`] the `StateMachine` must be dropped and reopened: its
//!   memory may be ahead of the disk.
//!
//! Where this deliberately follows etcd rather than intuition is documented at the item
//! (e.g. reading exactly at the compact revision is allowed, as in etcd).

pub mod auth;
mod cluster;
mod codec;
mod index;
mod store;
mod validate;
mod watch;

#[cfg(test)]
mod tests_kv;
#[cfg(test)]
mod tests_model;
#[cfg(test)]
mod tests_persist;
#[cfg(test)]
mod tests_watch;

use gauntlet_api::etcdserverpb::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, LeaseCheckpointRequest, LeaseCheckpointResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, MemberUpdateRequest, PutRequest,
    PutResponse, TxnRequest, TxnResponse,
};
use gauntlet_api::rpctypes::EtcdError;

pub use self::cluster::{
    parse_minor, valid_version_change, Member, MemberAttrs, MemberChange, VersionSet,
};
pub use self::store::StateMachine;
pub use self::validate::{validate, validate_range};
#[allow(unused_imports)]
pub use self::watch::WatchHub;
pub use self::watch::{WatchSpec, WatchUpdate, WatcherId};

/// etcd's `MaxLeaseTTL`: a grant with a larger TTL fails with `LEASE_TTL_TOO_LARGE`.
pub const MAX_LEASE_TTL_SECS: i64 = 9_000_000_000;

/// The smallest lease TTL etcd grants with its default timing (election 1 s, heartbeat
/// 100 ms): `ceil(1.5 * election timeout)` = 2 s. Shorter grants are raised to it.
pub const DEFAULT_MIN_LEASE_TTL_SECS: i64 = 2;

/// A replicated command (raft entry payload), encoded with prost.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    #[prost(oneof = "Op", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12")]
    pub op: Option<Op>,
    /// Who sent it, for a client's command; `None` for the server's own (lease expiry,
    /// auto-compaction, publishing, alarms it raises), which no permission check refuses.
    #[prost(message, optional, tag = "20")]
    pub auth: Option<auth::AuthHeader>,
}

impl Command {
    /// The server's own command (no permission checks).
    pub fn internal(op: Op) -> Command {
        Command {
            op: Some(op),
            auth: None,
        }
    }

    /// A client's command, sent by `who`.
    pub fn from_client(op: Op, who: auth::AuthHeader) -> Command {
        Command {
            op: Some(op),
            auth: Some(who),
        }
    }
}

/// The commands. `LeaseGrant` always carries a non-zero id (the proposer picks it).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Op {
    #[prost(message, tag = "1")]
    Put(PutRequest),
    #[prost(message, tag = "2")]
    DeleteRange(DeleteRangeRequest),
    #[prost(message, tag = "3")]
    Txn(TxnRequest),
    #[prost(message, tag = "4")]
    Compaction(CompactionRequest),
    #[prost(message, tag = "5")]
    LeaseGrant(LeaseGrantRequest),
    #[prost(message, tag = "6")]
    LeaseRevoke(LeaseRevokeRequest),
    #[prost(message, tag = "7")]
    LeaseCheckpoint(LeaseCheckpointRequest),
    /// Activate or deactivate an alarm (Get is answered locally, never proposed).
    #[prost(message, tag = "8")]
    Alarm(AlarmRequest),
    /// A member publishes its name and client URLs once it serves.
    #[prost(message, tag = "9")]
    MemberAttrs(MemberAttrs),
    /// A member's peer URLs change.
    #[prost(message, tag = "10")]
    MemberUpdate(MemberUpdateRequest),
    /// The leader's decision on the cluster version, or a downgrade enabled or cancelled.
    #[prost(message, tag = "11")]
    VersionSet(VersionSet),
    /// An Auth service operation.
    #[prost(message, tag = "12")]
    Auth(auth::AuthCommand),
}

/// What an applied command answered. Top-level responses have `header: None` (the caller
/// fills it); responses nested in a txn carry a header with only `revision` set, as etcd's.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    LeaseCheckpoint(LeaseCheckpointResponse),
    Alarm(AlarmResponse),
    /// A change of the member table; the caller reads the table it needs.
    Cluster,
    /// An Auth service operation's answer.
    Auth(auth::AuthResponse),
}

/// Whether a command takes space: what etcd's quota refuses once the backend is full
/// and its NOSPACE applier refuses while the alarm is raised (puts, txns with a put in
/// either top-level branch, lease grants).
pub fn needs_space(op: &Op) -> bool {
    match op {
        Op::Put(_) | Op::LeaseGrant(_) => true,
        Op::Txn(t) => t.success.iter().chain(&t.failure).any(|r| {
            matches!(
                r.request,
                Some(gauntlet_api::etcdserverpb::request_op::Request::RequestPut(
                    _
                ))
            )
        }),
        _ => false,
    }
}

/// A deterministic result: the same on every member.
pub type ApplyOutcome = Result<Response, EtcdError>;

/// Storage failures. Fatal for the member: drop the `StateMachine` and reopen (or stop).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// sled failed (I/O, or its own corruption checks).
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    /// A record of ours did not decode: the data dir was damaged or written by something else.
    #[error("corrupt state: {0}")]
    Corrupt(String),
    /// `restore` was handed data that is not a snapshot of ours (or was damaged in transit).
    #[error("bad snapshot: {0}")]
    BadSnapshot(String),
    /// Making the database durable failed outside sled (fsync of its files).
    #[error("storage: {0}")]
    Io(String),
}

/// A lease as the state machine knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub id: i64,
    /// The TTL granted (after raising it to the minimum TTL).
    pub granted_ttl: i64,
    /// The last checkpointed remaining TTL, or `granted_ttl` when there is none (a
    /// checkpoint of 0 or less clears it, as etcd's renew does).
    pub remaining_ttl: i64,
    /// Attached keys, ascending.
    pub keys: Vec<Vec<u8>>,
}

/// Settings that must be equal on every member (they influence apply results).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Grants with a smaller TTL get this one (etcd: `ceil(1.5 * election timeout)`).
    pub min_lease_ttl_secs: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_lease_ttl_secs: DEFAULT_MIN_LEASE_TTL_SECS,
        }
    }
}
