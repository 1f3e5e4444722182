//! The gRPC errors an etcd server can send, as a table of status code plus
//! exact message text.
//!
//! etcd clients (the Go `clientv3`, and therefore `etcdctl`) identify server
//! errors by the *message string* of the gRPC status, not only by its code.
//! A server that wants to pass for etcd has to use the same text, byte for
//! byte. Gauntlet uses this table both to produce those statuses (in the
//! reference server) and to recognise them (in the checker and conformance
//! suites).
//!
//! The entries mirror the server-side error list in etcd's public API
//! package (`api/v3rpc/rpctypes`), as shipped with etcd 3.5; the constant
//! names are the Go names with the `ErrGRPC` prefix dropped and converted to
//! SCREAMING_CASE. Entries that are not present in every release we target
//! (3.4.23 and 3.5.x) say so in their doc comment. No error keeps the same
//! name but changes its text or code between 3.4.23 and 3.5.x, so there are
//! no separate "3.4 variants".
//!
//! Every message in the table starts with `"etcdserver: "`.
//!
//! Things worth knowing when comparing against a real server:
//!
//! * The code listed is the one etcd declares. Two errors are not sent with
//!   it: for [`REQUEST_TOO_MANY_REQUESTS`] and [`MEMBER_NOT_ENOUGH_STARTED`]
//!   the server hands gRPC a plain (non-status) error value, so the status
//!   on the wire has code `Unknown` with the same message. See
//!   [`SENT_WITH_CODE_UNKNOWN`].
//! * Any server error that etcd has no mapping for is sent as code `Unknown`
//!   with the internal error text, which usually does not carry the
//!   `"etcdserver: "` prefix.
//! * Watch cancellations are not gRPC statuses: they arrive as a
//!   `WatchResponse` with `canceled = true` and a `cancel_reason` string.
//!   When that reason comes from one of these errors it is the Go rendering
//!   of the status (`"rpc error: code = PermissionDenied desc = etcdserver:
//!   permission denied"`), see [`EtcdError::go_error_string`]; when it comes
//!   from the storage layer it is one of the `MVCC_*` strings below, which
//!   have no `"etcdserver: "` prefix.
//! * A watch created at an already-compacted revision is cancelled with
//!   `compact_revision` set and an empty `cancel_reason`; the Go client then
//!   reports [`COMPACTED`] to its caller. The storage layer's own wording of
//!   that condition is [`MVCC_COMPACTED_MSG`].

use tonic::Code;

/// One error etcd returns over gRPC: its status code and exact message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdError {
    pub code: tonic::Code,
    pub message: &'static str,
}

impl EtcdError {
    /// A `tonic::Status` carrying this code and message.
    pub fn status(&self) -> tonic::Status {
        tonic::Status::new(self.code, self.message)
    }

    /// The text Go's `status.Error(..).Error()` produces for this error,
    /// which is what etcd puts in a watch `cancel_reason` when it cancels a
    /// watch because of one of these errors.
    pub fn go_error_string(&self) -> String {
        format!(
            "rpc error: code = {} desc = {}",
            go_code_name(self.code),
            self.message
        )
    }

    /// Whether `status` has this error's code and message.
    pub fn matches(&self, status: &tonic::Status) -> bool {
        status.code() == self.code && status.message() == self.message
    }
}

/// The name Go's `codes.Code.String()` gives a code (note Go spells it
/// "Canceled" where tonic spells the variant `Cancelled`).
pub fn go_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

const fn e(code: Code, message: &'static str) -> EtcdError {
    EtcdError { code, message }
}

// ----------------------------------------------------------------- KV / request validation

pub const EMPTY_KEY: EtcdError = e(Code::InvalidArgument, "etcdserver: key is not provided");
pub const KEY_NOT_FOUND: EtcdError = e(Code::InvalidArgument, "etcdserver: key not found");
pub const VALUE_PROVIDED: EtcdError = e(Code::InvalidArgument, "etcdserver: value is provided");
pub const LEASE_PROVIDED: EtcdError = e(Code::InvalidArgument, "etcdserver: lease is provided");
pub const TOO_MANY_OPS: EtcdError = e(
    Code::InvalidArgument,
    "etcdserver: too many operations in txn request",
);
pub const DUPLICATE_KEY: EtcdError = e(
    Code::InvalidArgument,
    "etcdserver: duplicate key given in txn request",
);
pub const COMPACTED: EtcdError = e(
    Code::OutOfRange,
    "etcdserver: mvcc: required revision has been compacted",
);
pub const FUTURE_REV: EtcdError = e(
    Code::OutOfRange,
    "etcdserver: mvcc: required revision is a future revision",
);
pub const NO_SPACE: EtcdError = e(
    Code::ResourceExhausted,
    "etcdserver: mvcc: database space exceeded",
);

// ----------------------------------------------------------------- leases

pub const LEASE_NOT_FOUND: EtcdError = e(Code::NotFound, "etcdserver: requested lease not found");
pub const LEASE_EXIST: EtcdError = e(Code::FailedPrecondition, "etcdserver: lease already exists");
pub const LEASE_TTL_TOO_LARGE: EtcdError = e(Code::OutOfRange, "etcdserver: too large lease TTL");

// ----------------------------------------------------------------- watch

/// Declared by etcd and used internally by the watch server when a stream
/// ends; not normally seen by clients as a status.
pub const WATCH_CANCELED: EtcdError = e(Code::Cancelled, "etcdserver: watch canceled");

// ----------------------------------------------------------------- membership

pub const MEMBER_EXIST: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: member ID already exist",
);
pub const PEER_URL_EXIST: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: Peer URLs already exists",
);
/// Sent on the wire with code `Unknown` (see module docs).
pub const MEMBER_NOT_ENOUGH_STARTED: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: re-configuration failed due to not enough started members",
);
pub const MEMBER_BAD_URLS: EtcdError = e(
    Code::InvalidArgument,
    "etcdserver: given member URLs are invalid",
);
pub const MEMBER_NOT_FOUND: EtcdError = e(Code::NotFound, "etcdserver: member not found");
pub const MEMBER_NOT_LEARNER: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: can only promote a learner member",
);
pub const LEARNER_NOT_READY: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: can only promote a learner member which is in sync with leader",
);
pub const TOO_MANY_LEARNERS: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: too many learner members in cluster",
);
/// Only in etcd 3.5.10 and later (absent from 3.4.23 and 3.5.0–3.5.9).
pub const CLUSTER_ID_MISMATCH: EtcdError =
    e(Code::FailedPrecondition, "etcdserver: cluster ID mismatch");

// ----------------------------------------------------------------- request limits

pub const REQUEST_TOO_LARGE: EtcdError =
    e(Code::InvalidArgument, "etcdserver: request is too large");
/// Sent on the wire with code `Unknown` (see module docs).
pub const REQUEST_TOO_MANY_REQUESTS: EtcdError =
    e(Code::ResourceExhausted, "etcdserver: too many requests");

// ----------------------------------------------------------------- auth

pub const ROOT_USER_NOT_EXIST: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: root user does not exist",
);
pub const ROOT_ROLE_NOT_EXIST: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: root user does not have root role",
);
pub const USER_ALREADY_EXIST: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: user name already exists",
);
pub const USER_EMPTY: EtcdError = e(Code::InvalidArgument, "etcdserver: user name is empty");
pub const USER_NOT_FOUND: EtcdError =
    e(Code::FailedPrecondition, "etcdserver: user name not found");
pub const ROLE_ALREADY_EXIST: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: role name already exists",
);
pub const ROLE_NOT_FOUND: EtcdError =
    e(Code::FailedPrecondition, "etcdserver: role name not found");
pub const ROLE_EMPTY: EtcdError = e(Code::InvalidArgument, "etcdserver: role name is empty");
pub const AUTH_FAILED: EtcdError = e(
    Code::InvalidArgument,
    "etcdserver: authentication failed, invalid user ID or password",
);
/// Only in etcd 3.5 (absent from 3.4.23).
pub const PERMISSION_NOT_GIVEN: EtcdError =
    e(Code::InvalidArgument, "etcdserver: permission not given");
pub const PERMISSION_DENIED: EtcdError = e(Code::PermissionDenied, "etcdserver: permission denied");
pub const ROLE_NOT_GRANTED: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: role is not granted to the user",
);
pub const PERMISSION_NOT_GRANTED: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: permission is not granted to the role",
);
pub const AUTH_NOT_ENABLED: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: authentication is not enabled",
);
pub const INVALID_AUTH_TOKEN: EtcdError =
    e(Code::Unauthenticated, "etcdserver: invalid auth token");
pub const INVALID_AUTH_MGMT: EtcdError =
    e(Code::InvalidArgument, "etcdserver: invalid auth management");
/// Present in 3.4.23 and in 3.5.2 and later, but missing from 3.5.0 and
/// 3.5.1 (which therefore never send it).
pub const AUTH_OLD_REVISION: EtcdError = e(
    Code::InvalidArgument,
    "etcdserver: revision of auth store is old",
);

// ----------------------------------------------------------------- server / raft state

pub const NO_LEADER: EtcdError = e(Code::Unavailable, "etcdserver: no leader");
pub const NOT_LEADER: EtcdError = e(Code::FailedPrecondition, "etcdserver: not leader");
pub const LEADER_CHANGED: EtcdError = e(Code::Unavailable, "etcdserver: leader changed");
pub const NOT_CAPABLE: EtcdError = e(Code::Unavailable, "etcdserver: not capable");
pub const STOPPED: EtcdError = e(Code::Unavailable, "etcdserver: server stopped");
pub const TIMEOUT: EtcdError = e(Code::Unavailable, "etcdserver: request timed out");
pub const TIMEOUT_DUE_TO_LEADER_FAIL: EtcdError = e(
    Code::Unavailable,
    "etcdserver: request timed out, possibly due to previous leader failure",
);
pub const TIMEOUT_DUE_TO_CONNECTION_LOST: EtcdError = e(
    Code::Unavailable,
    "etcdserver: request timed out, possibly due to connection lost",
);
/// Present in 3.4.23 and in 3.5.3 and later, but missing from 3.5.0–3.5.2.
pub const TIMEOUT_WAIT_APPLIED_INDEX: EtcdError = e(
    Code::Unavailable,
    "etcdserver: request timed out, waiting for the applied index took too long",
);
/// MoveLeader waited a whole request timeout for the transferee to lead.
pub const TIMEOUT_LEADER_TRANSFER: EtcdError = e(
    Code::Unavailable,
    "etcdserver: request timed out, leader transfer took too long",
);
pub const UNHEALTHY: EtcdError = e(Code::Unavailable, "etcdserver: unhealthy cluster");
pub const CORRUPT: EtcdError = e(Code::DataLoss, "etcdserver: corrupt cluster");
/// etcd's Go name is misspelt `ErrGPRCNotSupportedForLearner`; sent when a
/// learner receives anything but Status or a serializable Range.
pub const NOT_SUPPORTED_FOR_LEARNER: EtcdError = e(
    Code::Unavailable,
    "etcdserver: rpc not supported for learner",
);
pub const BAD_LEADER_TRANSFEREE: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: bad leader transferee",
);

// ----------------------------------------------------------------- downgrade (3.5 only)

/// Only in etcd 3.5.
pub const CLUSTER_VERSION_UNAVAILABLE: EtcdError = e(
    Code::Unavailable,
    "etcdserver: cluster version not found during downgrade",
);
/// Only in etcd 3.5. Go name `ErrGRPCWrongDowngradeVersionFormat`.
pub const WRONG_DOWNGRADE_VERSION_FORMAT: EtcdError = e(
    Code::InvalidArgument,
    "etcdserver: wrong downgrade target version format",
);
/// Short alias of [`WRONG_DOWNGRADE_VERSION_FORMAT`] (not listed separately in [`ALL`]).
pub const WRONG_DOWNGRADE_VERSION: EtcdError = WRONG_DOWNGRADE_VERSION_FORMAT;
/// Only in etcd 3.5.
pub const INVALID_DOWNGRADE_TARGET_VERSION: EtcdError = e(
    Code::InvalidArgument,
    "etcdserver: invalid downgrade target version",
);
/// Only in etcd 3.5.
pub const DOWNGRADE_IN_PROCESS: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: cluster has a downgrade job in progress",
);
/// Only in etcd 3.5.
pub const NO_INFLIGHT_DOWNGRADE: EtcdError = e(
    Code::FailedPrecondition,
    "etcdserver: no inflight downgrade job",
);

// ----------------------------------------------------------------- context (3.5 only)

/// Only in etcd 3.5. Declared for a cancelled request context; in practice
/// 3.5's error conversion lets context cancellation reach gRPC untranslated.
pub const CANCELED: EtcdError = e(Code::Cancelled, "etcdserver: request canceled");
/// Only in etcd 3.5. Same remark as [`CANCELED`].
pub const DEADLINE_EXCEEDED: EtcdError = e(
    Code::DeadlineExceeded,
    "etcdserver: context deadline exceeded",
);

/// Every error above, by name (each name once; aliases excluded), in etcd's
/// declaration order.
pub const ALL: &[(&str, EtcdError)] = &[
    ("EMPTY_KEY", EMPTY_KEY),
    ("KEY_NOT_FOUND", KEY_NOT_FOUND),
    ("VALUE_PROVIDED", VALUE_PROVIDED),
    ("LEASE_PROVIDED", LEASE_PROVIDED),
    ("TOO_MANY_OPS", TOO_MANY_OPS),
    ("DUPLICATE_KEY", DUPLICATE_KEY),
    ("COMPACTED", COMPACTED),
    ("FUTURE_REV", FUTURE_REV),
    ("NO_SPACE", NO_SPACE),
    ("LEASE_NOT_FOUND", LEASE_NOT_FOUND),
    ("LEASE_EXIST", LEASE_EXIST),
    ("LEASE_TTL_TOO_LARGE", LEASE_TTL_TOO_LARGE),
    ("WATCH_CANCELED", WATCH_CANCELED),
    ("MEMBER_EXIST", MEMBER_EXIST),
    ("PEER_URL_EXIST", PEER_URL_EXIST),
    ("MEMBER_NOT_ENOUGH_STARTED", MEMBER_NOT_ENOUGH_STARTED),
    ("MEMBER_BAD_URLS", MEMBER_BAD_URLS),
    ("MEMBER_NOT_FOUND", MEMBER_NOT_FOUND),
    ("MEMBER_NOT_LEARNER", MEMBER_NOT_LEARNER),
    ("LEARNER_NOT_READY", LEARNER_NOT_READY),
    ("TOO_MANY_LEARNERS", TOO_MANY_LEARNERS),
    ("CLUSTER_ID_MISMATCH", CLUSTER_ID_MISMATCH),
    ("REQUEST_TOO_LARGE", REQUEST_TOO_LARGE),
    ("REQUEST_TOO_MANY_REQUESTS", REQUEST_TOO_MANY_REQUESTS),
    ("ROOT_USER_NOT_EXIST", ROOT_USER_NOT_EXIST),
    ("ROOT_ROLE_NOT_EXIST", ROOT_ROLE_NOT_EXIST),
    ("USER_ALREADY_EXIST", USER_ALREADY_EXIST),
    ("USER_EMPTY", USER_EMPTY),
    ("USER_NOT_FOUND", USER_NOT_FOUND),
    ("ROLE_ALREADY_EXIST", ROLE_ALREADY_EXIST),
    ("ROLE_NOT_FOUND", ROLE_NOT_FOUND),
    ("ROLE_EMPTY", ROLE_EMPTY),
    ("AUTH_FAILED", AUTH_FAILED),
    ("PERMISSION_NOT_GIVEN", PERMISSION_NOT_GIVEN),
    ("PERMISSION_DENIED", PERMISSION_DENIED),
    ("ROLE_NOT_GRANTED", ROLE_NOT_GRANTED),
    ("PERMISSION_NOT_GRANTED", PERMISSION_NOT_GRANTED),
    ("AUTH_NOT_ENABLED", AUTH_NOT_ENABLED),
    ("INVALID_AUTH_TOKEN", INVALID_AUTH_TOKEN),
    ("INVALID_AUTH_MGMT", INVALID_AUTH_MGMT),
    ("AUTH_OLD_REVISION", AUTH_OLD_REVISION),
    ("NO_LEADER", NO_LEADER),
    ("NOT_LEADER", NOT_LEADER),
    ("LEADER_CHANGED", LEADER_CHANGED),
    ("NOT_CAPABLE", NOT_CAPABLE),
    ("STOPPED", STOPPED),
    ("TIMEOUT", TIMEOUT),
    ("TIMEOUT_DUE_TO_LEADER_FAIL", TIMEOUT_DUE_TO_LEADER_FAIL),
    (
        "TIMEOUT_DUE_TO_CONNECTION_LOST",
        TIMEOUT_DUE_TO_CONNECTION_LOST,
    ),
    ("TIMEOUT_WAIT_APPLIED_INDEX", TIMEOUT_WAIT_APPLIED_INDEX),
    ("TIMEOUT_LEADER_TRANSFER", TIMEOUT_LEADER_TRANSFER),
    ("UNHEALTHY", UNHEALTHY),
    ("CORRUPT", CORRUPT),
    ("NOT_SUPPORTED_FOR_LEARNER", NOT_SUPPORTED_FOR_LEARNER),
    ("BAD_LEADER_TRANSFEREE", BAD_LEADER_TRANSFEREE),
    ("CLUSTER_VERSION_UNAVAILABLE", CLUSTER_VERSION_UNAVAILABLE),
    (
        "WRONG_DOWNGRADE_VERSION_FORMAT",
        WRONG_DOWNGRADE_VERSION_FORMAT,
    ),
    (
        "INVALID_DOWNGRADE_TARGET_VERSION",
        INVALID_DOWNGRADE_TARGET_VERSION,
    ),
    ("DOWNGRADE_IN_PROCESS", DOWNGRADE_IN_PROCESS),
    ("NO_INFLIGHT_DOWNGRADE", NO_INFLIGHT_DOWNGRADE),
    ("CANCELED", CANCELED),
    ("DEADLINE_EXCEEDED", DEADLINE_EXCEEDED),
];

/// Names (as in [`ALL`]) of errors a real etcd sends with code `Unknown`
/// instead of their declared code, because the server passes them to gRPC
/// as plain errors rather than statuses. The message is unchanged.
pub const SENT_WITH_CODE_UNKNOWN: &[&str] =
    &["MEMBER_NOT_ENOUGH_STARTED", "REQUEST_TOO_MANY_REQUESTS"];

/// Finds the entry whose message is exactly `msg`.
pub fn by_message(msg: &str) -> Option<(&'static str, EtcdError)> {
    ALL.iter().copied().find(|(_, err)| err.message == msg)
}

/// Finds the entry with this name (one of the names in [`ALL`]).
pub fn by_name(name: &str) -> Option<EtcdError> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, err)| *err)
}

// ----------------------------------------------------------------- storage-layer strings
//
// These are not gRPC statuses. They are the storage layer's own error texts,
// which reach clients verbatim as a watch `cancel_reason` (the watcher ones)
// or are what the `etcdserver: mvcc: ...` statuses above wrap.

/// The storage layer's text for a read or watch below the compaction point.
/// Differs from [`COMPACTED`] only by the missing `"etcdserver: "` prefix.
pub const MVCC_COMPACTED_MSG: &str = "mvcc: required revision has been compacted";
/// The storage layer's text for a read above the current revision.
pub const MVCC_FUTURE_REV_MSG: &str = "mvcc: required revision is a future revision";
/// Watch `cancel_reason` when the create request's range is empty
/// (`range_end` non-empty and not greater than `key`).
pub const MVCC_EMPTY_WATCHER_RANGE_MSG: &str = "mvcc: watcher range is empty";
/// Watch `cancel_reason` when a client-chosen `watch_id` is already in use on the stream.
pub const MVCC_DUPLICATE_WATCH_ID_MSG: &str =
    "mvcc: duplicate watch ID provided on the WatchStream";

/// Returned by the Election service's Proclaim and Resign when the request
/// has no `leader`. Not part of etcd's rpctypes list; being a plain error it
/// goes out with code `Unknown`.
pub const MISSING_LEADER_KEY: EtcdError = e(Code::Unknown, "\"leader\" field must be provided");

/// Returned by Authenticate for a user added with `no_password` (who may only
/// authenticate with a client certificate). etcd's auth store declares it
/// (`ErrNoPasswordUser`) but no release maps it to a gRPC status, so it goes out
/// with code `Unknown` and the auth store's own text.
pub const NO_PASSWORD_USER: EtcdError = e(
    Code::Unknown,
    "auth: authentication failed, password was given for no password user",
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique() {
        let mut seen = HashSet::new();
        for (name, _) in ALL {
            assert!(seen.insert(*name), "duplicate name {name}");
        }
    }

    #[test]
    fn messages_are_unique() {
        let mut seen = HashSet::new();
        for (name, err) in ALL {
            assert!(
                seen.insert(err.message),
                "{name} reuses message {:?}",
                err.message
            );
        }
    }

    #[test]
    fn every_message_has_the_etcdserver_prefix() {
        for (name, err) in ALL {
            assert!(
                err.message.starts_with("etcdserver: "),
                "{name}: {:?}",
                err.message
            );
        }
    }

    #[test]
    fn names_are_screaming_case() {
        for (name, _) in ALL {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
    }

    #[test]
    fn lookups_round_trip() {
        for (name, err) in ALL {
            assert_eq!(by_message(err.message), Some((*name, *err)));
            assert_eq!(by_name(name), Some(*err));
        }
        assert_eq!(by_message("etcdserver: no such error"), None);
        assert_eq!(by_message(MVCC_COMPACTED_MSG), None);
        assert_eq!(
            by_message(WRONG_DOWNGRADE_VERSION.message).map(|(n, _)| n),
            Some("WRONG_DOWNGRADE_VERSION_FORMAT")
        );
    }

    #[test]
    fn unknown_code_list_names_real_entries() {
        for name in SENT_WITH_CODE_UNKNOWN {
            assert!(by_name(name).is_some(), "{name}");
        }
    }

    #[test]
    fn compacted_wraps_the_storage_text() {
        assert_eq!(
            COMPACTED.message,
            format!("etcdserver: {MVCC_COMPACTED_MSG}")
        );
        assert_eq!(
            FUTURE_REV.message,
            format!("etcdserver: {MVCC_FUTURE_REV_MSG}")
        );
    }

    #[test]
    fn status_and_go_rendering() {
        let s = PERMISSION_DENIED.status();
        assert_eq!(s.code(), Code::PermissionDenied);
        assert_eq!(s.message(), "etcdserver: permission denied");
        assert!(PERMISSION_DENIED.matches(&s));
        assert_eq!(
            PERMISSION_DENIED.go_error_string(),
            "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
        );
        assert_eq!(go_code_name(CANCELED.code), "Canceled");
    }
}
