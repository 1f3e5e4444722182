//! The replicated state machine under a hostile client.
//!
//! The input is a sequence of client operations ([`Step`]): key-value writes and txns
//! (nested, with compares), reads, compactions, leases, alarms, and every auth operation
//! with arbitrary names, keys and range ends, each on behalf of an arbitrary
//! [`AuthHeader`]. Each write goes through `state::validate` (as the server does before
//! proposing) and, when it passes, through `StateMachine::apply` at the next raft index.
//! Checked after every step:
//!
//! - nothing panics (overflow checks and debug assertions are on);
//! - `apply` never returns a `StateError`: client input must not reach a storage error;
//! - the revision never decreases, grows by at most one per command, and not at all for
//!   a rejected command;
//! - applying the same index again answers `Ok(None)` and changes nothing;
//! - reopening the state machine on its database gives back the same state.
//!
//! At the end the same commands are applied to a second, fresh state machine: every
//! response, the revision, `hash_kv(0)`, the auth store and a full range must be equal
//! (apply is deterministic, so every member ends in the same state).
#![no_main]

use arbitrary::Arbitrary;
use gauntlet_api::authpb;
use gauntlet_api::etcdserverpb::{self as pb, compare, request_op, RequestOp};
use gauntlet_api::rpctypes::EtcdError;
use gauntlet_reference_server::state::auth::{AuthCommand, AuthHeader, AuthOp, Authenticate};
use gauntlet_reference_server::state::{self, ApplyOutcome, Command, Op, StateMachine};
use libfuzzer_sys::fuzz_target;

/// The server's default `--max-txn-ops`.
const MAX_TXN_OPS: usize = 128;
/// Steps per input: enough for an interesting history, small enough to stay fast.
const MAX_STEPS: usize = 48;
/// Nesting of txns beyond this is cut (validate allows any depth within the op budget).
const MAX_TXN_DEPTH: usize = 4;
/// Ops per txn branch, compares per txn.
const MAX_TXN_LIST: usize = 6;

/// A key: mostly from a small alphabet (so that operations meet), sometimes anything.
#[derive(Arbitrary, Debug, Clone)]
enum Key {
    Small(u8),
    Raw(Vec<u8>),
}

const ALPHABET: &[&[u8]] = &[
    b"a",
    b"b",
    b"c",
    b"ab",
    b"a\0",
    b"\0",
    b"\xff",
    b"\xff\xff",
    b"",
    b"k/1",
    b"k/2",
    b"k0",
];

impl Key {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Key::Small(i) => ALPHABET[usize::from(*i) % ALPHABET.len()].to_vec(),
            Key::Raw(b) => b.iter().copied().take(64).collect(),
        }
    }
}

/// A range end: the single key, everything from the key on, the key's prefix, or a key.
#[derive(Arbitrary, Debug, Clone)]
enum End {
    Single,
    FromKey,
    Prefix,
    Key(Key),
}

impl End {
    fn bytes(&self, key: &[u8]) -> Vec<u8> {
        match self {
            End::Single => Vec::new(),
            End::FromKey => vec![0],
            End::Prefix => gauntlet_api::prefix_range_end(key),
            End::Key(k) => k.bytes(),
        }
    }
}

/// A revision: near the current one, small, or any i64 (negative, huge).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Revision {
    Current(i8),
    Small(i8),
    Raw(i64),
}

impl Revision {
    fn value(self, current: i64) -> i64 {
        match self {
            Revision::Current(d) => current.saturating_add(i64::from(d)),
            Revision::Small(v) => i64::from(v),
            Revision::Raw(v) => v,
        }
    }
}

/// A lease id: one of a few (0 and negative included), or any i64.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum LeaseId {
    Small(i8),
    Raw(i64),
}

impl LeaseId {
    fn value(self) -> i64 {
        match self {
            LeaseId::Small(v) => i64::from(v % 4),
            LeaseId::Raw(v) => v,
        }
    }
}

/// A user or role name: root, one of a few, empty, long, or anything.
#[derive(Arbitrary, Debug, Clone)]
enum Name {
    Root,
    Small(u8),
    Empty,
    Long(u16),
    Raw(String),
}

impl Name {
    fn string(&self) -> String {
        match self {
            Name::Root => "root".into(),
            Name::Small(i) => format!("n{}", i % 3),
            Name::Empty => String::new(),
            Name::Long(n) => "x".repeat(usize::from(*n) % 4096),
            Name::Raw(s) => s.chars().take(64).collect(),
        }
    }
}

/// Who sends a command: the server itself, or a client with a header whose auth revision
/// is the current one, an older one, none, or anything.
#[derive(Arbitrary, Debug, Clone)]
enum Who {
    Server,
    Client(Name, AuthRev),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum AuthRev {
    Current,
    Stale,
    Zero,
    Raw(u64),
}

impl Who {
    fn header(&self, sm: &StateMachine) -> Option<AuthHeader> {
        match self {
            Who::Server => None,
            Who::Client(name, rev) => {
                let current = sm.auth().revision();
                Some(AuthHeader {
                    username: name.string(),
                    revision: match rev {
                        AuthRev::Current => current,
                        AuthRev::Stale => current.saturating_sub(1),
                        AuthRev::Zero => 0,
                        AuthRev::Raw(v) => *v,
                    },
                })
            }
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
struct Put {
    key: Key,
    value: Vec<u8>,
    lease: LeaseId,
    prev_kv: bool,
    ignore_value: bool,
    ignore_lease: bool,
}

#[derive(Arbitrary, Debug, Clone)]
struct Delete {
    key: Key,
    end: End,
    prev_kv: bool,
}

#[derive(Arbitrary, Debug, Clone)]
struct Range {
    key: Key,
    end: End,
    limit: i64,
    revision: Revision,
    sort_order: i8,
    sort_target: i8,
    serializable: bool,
    keys_only: bool,
    count_only: bool,
    min_mod: Revision,
    max_mod: Revision,
    min_create: Revision,
    max_create: Revision,
}

#[derive(Arbitrary, Debug, Clone)]
enum Target {
    Version(i64),
    Create(Revision),
    Mod(Revision),
    Value(Vec<u8>),
    Lease(LeaseId),
    /// A target whose union is another kind (or missing), or an unknown target.
    Mismatched(i8, Option<i64>),
}

#[derive(Arbitrary, Debug, Clone)]
struct Cmp {
    key: Key,
    end: End,
    /// 0..=3 are etcd's results; anything else is unknown.
    result: i8,
    target: Target,
}

#[derive(Arbitrary, Debug, Clone)]
enum TxnOp {
    Range(Range),
    Put(Put),
    Delete(Delete),
    Txn(Box<Txn>),
    Empty,
}

#[derive(Arbitrary, Debug, Clone)]
struct Txn {
    compare: Vec<Cmp>,
    success: Vec<TxnOp>,
    failure: Vec<TxnOp>,
}

#[derive(Arbitrary, Debug, Clone)]
enum Perm {
    Read,
    Write,
    ReadWrite,
    Unknown(i32),
}

impl Perm {
    fn value(&self) -> i32 {
        match self {
            Perm::Read => authpb::permission::Type::Read as i32,
            Perm::Write => authpb::permission::Type::Write as i32,
            Perm::ReadWrite => authpb::permission::Type::Readwrite as i32,
            Perm::Unknown(v) => *v,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Auth {
    Enable,
    Disable,
    Status,
    Authenticate(Name, String),
    UserAdd {
        name: Name,
        /// A valid base64 hash, or any string (which must be refused, not stored).
        hash: Option<String>,
        no_password: bool,
    },
    UserGet(Name),
    UserList,
    UserDelete(Name),
    UserChangePassword(Name, Option<String>),
    UserGrantRole(Name, Name),
    UserRevokeRole(Name, Name),
    RoleAdd(Name),
    RoleGet(Name),
    RoleList,
    RoleDelete(Name),
    RoleGrantPermission {
        role: Name,
        /// None: the request carries no permission.
        perm: Option<(Perm, Key, End)>,
    },
    RoleRevokePermission(Name, Key, End),
    /// An auth command without an operation.
    Nothing,
}

#[derive(Arbitrary, Debug, Clone)]
enum Step {
    Put(Put, Who),
    Delete(Delete, Who),
    Txn(Txn, Who),
    /// A read, checked as the server checks it (validate_range, permission, range).
    Range(Range, Who),
    Compact(Revision, bool, Who),
    LeaseGrant(LeaseId, i64, Who),
    LeaseRevoke(LeaseId, Who),
    LeaseCheckpoint(Vec<(LeaseId, i64)>),
    Alarm {
        action: i8,
        member: u64,
        alarm: i8,
        who: Who,
    },
    MemberUpdate(u64, Vec<String>, Who),
    Auth(Auth, Who),
    /// An entry without a command (a leader's empty entry).
    Noop,
    /// Reopen the state machine on the same database.
    Reopen,
}

fn put_request(p: &Put) -> pb::PutRequest {
    pb::PutRequest {
        key: p.key.bytes(),
        value: p.value.iter().copied().take(256).collect(),
        lease: p.lease.value(),
        prev_kv: p.prev_kv,
        ignore_value: p.ignore_value,
        ignore_lease: p.ignore_lease,
    }
}

fn delete_request(d: &Delete) -> pb::DeleteRangeRequest {
    let key = d.key.bytes();
    pb::DeleteRangeRequest {
        range_end: d.end.bytes(&key),
        key,
        prev_kv: d.prev_kv,
    }
}

fn range_request(r: &Range, current: i64) -> pb::RangeRequest {
    let key = r.key.bytes();
    pb::RangeRequest {
        range_end: r.end.bytes(&key),
        key,
        limit: r.limit,
        revision: r.revision.value(current),
        sort_order: i32::from(r.sort_order % 5),
        sort_target: i32::from(r.sort_target % 7),
        serializable: r.serializable,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod.value(current),
        max_mod_revision: r.max_mod.value(current),
        min_create_revision: r.min_create.value(current),
        max_create_revision: r.max_create.value(current),
    }
}

fn compare(c: &Cmp, current: i64) -> pb::Compare {
    use compare::{CompareTarget as T, TargetUnion as U};
    let key = c.key.bytes();
    let (target, union) = match &c.target {
        Target::Version(v) => (T::Version as i32, Some(U::Version(*v))),
        Target::Create(r) => (T::Create as i32, Some(U::CreateRevision(r.value(current)))),
        Target::Mod(r) => (T::Mod as i32, Some(U::ModRevision(r.value(current)))),
        Target::Value(v) => (T::Value as i32, Some(U::Value(v.clone()))),
        Target::Lease(l) => (T::Lease as i32, Some(U::Lease(l.value()))),
        Target::Mismatched(t, v) => (i32::from(*t % 7), v.map(U::Version)),
    };
    pb::Compare {
        result: i32::from(c.result % 6),
        target,
        range_end: c.end.bytes(&key),
        key,
        target_union: union,
    }
}

fn txn_request(t: &Txn, current: i64, depth: usize) -> pb::TxnRequest {
    let ops = |list: &[TxnOp]| -> Vec<RequestOp> {
        list.iter()
            .take(MAX_TXN_LIST)
            .map(|op| RequestOp {
                request: match op {
                    TxnOp::Range(r) => {
                        Some(request_op::Request::RequestRange(range_request(r, current)))
                    }
                    TxnOp::Put(p) => Some(request_op::Request::RequestPut(put_request(p))),
                    TxnOp::Delete(d) => {
                        Some(request_op::Request::RequestDeleteRange(delete_request(d)))
                    }
                    TxnOp::Txn(n) if depth < MAX_TXN_DEPTH => Some(
                        request_op::Request::RequestTxn(txn_request(n, current, depth + 1)),
                    ),
                    TxnOp::Txn(_) | TxnOp::Empty => None,
                },
            })
            .collect()
    };
    pb::TxnRequest {
        compare: t
            .compare
            .iter()
            .take(MAX_TXN_LIST)
            .map(|c| compare(c, current))
            .collect(),
        success: ops(&t.success),
        failure: ops(&t.failure),
    }
}

/// A hash as the server stores it (base64 of bcrypt output), or anything.
fn hash(h: &Option<String>) -> String {
    match h {
        None => "JDJiJDA0JG5vdGFyZWFsaGFzaGJ1dGJ5dGVz".into(),
        Some(s) => s.chars().take(128).collect(),
    }
}

fn auth_op(a: &Auth) -> Option<AuthOp> {
    Some(match a {
        Auth::Enable => AuthOp::Enable(Default::default()),
        Auth::Disable => AuthOp::Disable(Default::default()),
        Auth::Status => AuthOp::Status(Default::default()),
        Auth::Authenticate(n, t) => AuthOp::Authenticate(Authenticate {
            name: n.string(),
            simple_token: t.chars().take(32).collect(),
        }),
        Auth::UserAdd {
            name,
            hash: h,
            no_password,
        } => AuthOp::UserAdd(pb::AuthUserAddRequest {
            name: name.string(),
            password: String::new(),
            options: Some(authpb::UserAddOptions {
                no_password: *no_password,
            }),
            hashed_password: hash(h),
        }),
        Auth::UserGet(n) => AuthOp::UserGet(pb::AuthUserGetRequest { name: n.string() }),
        Auth::UserList => AuthOp::UserList(Default::default()),
        Auth::UserDelete(n) => AuthOp::UserDelete(pb::AuthUserDeleteRequest { name: n.string() }),
        Auth::UserChangePassword(n, h) => {
            AuthOp::UserChangePassword(pb::AuthUserChangePasswordRequest {
                name: n.string(),
                password: String::new(),
                hashed_password: hash(h),
            })
        }
        Auth::UserGrantRole(u, r) => AuthOp::UserGrantRole(pb::AuthUserGrantRoleRequest {
            user: u.string(),
            role: r.string(),
        }),
        Auth::UserRevokeRole(u, r) => AuthOp::UserRevokeRole(pb::AuthUserRevokeRoleRequest {
            name: u.string(),
            role: r.string(),
        }),
        Auth::RoleAdd(n) => AuthOp::RoleAdd(pb::AuthRoleAddRequest { name: n.string() }),
        Auth::RoleGet(n) => AuthOp::RoleGet(pb::AuthRoleGetRequest { role: n.string() }),
        Auth::RoleList => AuthOp::RoleList(Default::default()),
        Auth::RoleDelete(n) => AuthOp::RoleDelete(pb::AuthRoleDeleteRequest { role: n.string() }),
        Auth::RoleGrantPermission { role, perm } => {
            AuthOp::RoleGrantPermission(pb::AuthRoleGrantPermissionRequest {
                name: role.string(),
                perm: perm.as_ref().map(|(t, k, e)| {
                    let key = k.bytes();
                    authpb::Permission {
                        perm_type: t.value(),
                        range_end: e.bytes(&key),
                        key,
                    }
                }),
            })
        }
        Auth::RoleRevokePermission(r, k, e) => {
            let key = k.bytes();
            AuthOp::RoleRevokePermission(pb::AuthRoleRevokePermissionRequest {
                role: r.string(),
                range_end: e.bytes(&key),
                key,
            })
        }
        Auth::Nothing => return None,
    })
}

/// The command a write step proposes (None: a read, a no-op or a reopen).
fn command(step: &Step, sm: &StateMachine) -> Option<Command> {
    let current = sm.revision();
    let (op, who) = match step {
        Step::Put(p, w) => (Op::Put(put_request(p)), w),
        Step::Delete(d, w) => (Op::DeleteRange(delete_request(d)), w),
        Step::Txn(t, w) => (Op::Txn(txn_request(t, current, 0)), w),
        Step::Compact(r, physical, w) => (
            Op::Compaction(pb::CompactionRequest {
                revision: r.value(current),
                physical: *physical,
            }),
            w,
        ),
        Step::LeaseGrant(id, ttl, w) => (
            Op::LeaseGrant(pb::LeaseGrantRequest {
                ttl: *ttl,
                id: id.value(),
            }),
            w,
        ),
        Step::LeaseRevoke(id, w) => (
            Op::LeaseRevoke(pb::LeaseRevokeRequest { id: id.value() }),
            w,
        ),
        Step::LeaseCheckpoint(cps) => (
            Op::LeaseCheckpoint(pb::LeaseCheckpointRequest {
                checkpoints: cps
                    .iter()
                    .take(8)
                    .map(|(id, ttl)| pb::LeaseCheckpoint {
                        id: id.value(),
                        remaining_ttl: *ttl,
                    })
                    .collect(),
            }),
            &Who::Server,
        ),
        Step::Alarm {
            action,
            member,
            alarm,
            who,
        } => (
            Op::Alarm(pb::AlarmRequest {
                action: i32::from(*action % 4),
                member_id: *member % 3,
                alarm: i32::from(*alarm % 4),
            }),
            who,
        ),
        Step::MemberUpdate(id, urls, w) => (
            Op::MemberUpdate(pb::MemberUpdateRequest {
                id: *id,
                peer_ur_ls: urls.iter().take(4).cloned().collect(),
            }),
            w,
        ),
        Step::Auth(a, w) => (Op::Auth(AuthCommand { op: auth_op(a) }), w),
        Step::Range(..) | Step::Noop | Step::Reopen => return None,
    };
    Some(Command {
        op: Some(op),
        auth: who.header(sm),
    })
}

fn open(db: &sled::Db) -> StateMachine {
    StateMachine::open(db.clone()).expect("a state machine opens on its own database")
}

fn temp_db() -> sled::Db {
    sled::Config::new()
        .temporary(true)
        .cache_capacity(4 << 20)
        .flush_every_ms(None)
        .open()
        .expect("a temporary sled database opens")
}

/// Everything a client can observe of the key-value state, plus the auth store.
#[derive(Debug, PartialEq)]
struct Observed {
    revision: i64,
    compact_revision: i64,
    hash: Result<u32, EtcdError>,
    kvs: Result<Vec<gauntlet_api::mvccpb::KeyValue>, EtcdError>,
    leases: Vec<state::LeaseInfo>,
    auth_enabled: bool,
    auth_revision: u64,
}

fn observe(sm: &StateMachine) -> Observed {
    Observed {
        revision: sm.revision(),
        compact_revision: sm.compact_revision(),
        hash: sm.hash_kv(0).map(|h| h.hash),
        kvs: sm
            .range(&pb::RangeRequest {
                key: vec![0],
                range_end: vec![0],
                ..Default::default()
            })
            .map(|r| r.kvs),
        leases: sm.leases(),
        auth_enabled: sm.auth().enabled(),
        auth_revision: sm.auth().revision(),
    }
}

/// A read as the server serves it (`Ctx::read`): validated, permission-checked, ranged.
fn read(sm: &StateMachine, r: &Range, who: &Who) {
    let req = range_request(r, sm.revision());
    if state::validate_range(&req).is_err() {
        return;
    }
    if let Some(h) = who.header(sm) {
        if sm
            .auth()
            .check(&h, &req.key, &req.range_end, state::auth::Access::Read)
            .is_err()
        {
            return;
        }
    }
    if let Ok(resp) = sm.range(&req) {
        if req.count_only {
            assert!(resp.kvs.is_empty());
        }
        if req.limit > 0 {
            assert!(resp.kvs.len() as i64 <= req.limit);
        }
    }
}

/// Applies `cmd` at `index` and checks the per-command invariants.
fn apply_checked(sm: &mut StateMachine, index: u64, cmd: &Command) -> ApplyOutcome {
    let before = sm.revision();
    let outcome = match sm.apply(index, cmd) {
        Ok(Some(o)) => o,
        Ok(None) => panic!("a new index ({index}) answered as a replay: {cmd:?}"),
        Err(e) => panic!("client input reached a StateError: {e}\ncommand: {cmd:?}"),
    };
    let after = sm.revision();
    assert!(after >= before, "revision went back: {before} -> {after}");
    assert!(
        after <= before + 1,
        "one command, several revisions: {before} -> {after}"
    );
    if outcome.is_err() {
        assert_eq!(after, before, "a rejected command changed the revision");
    }
    assert_eq!(sm.applied_index(), index);
    outcome
}

fuzz_target!(|steps: Vec<Step>| {
    let db = temp_db();
    let mut sm = open(&db);
    let mut log: Vec<(u64, Command, ApplyOutcome)> = Vec::new();
    let mut index = 0u64;
    for step in steps.iter().take(MAX_STEPS) {
        match step {
            Step::Range(r, who) => read(&sm, r, who),
            Step::Noop => {
                index += 1;
                sm.apply_noop(index).expect("a no-op applies");
            }
            Step::Reopen => {
                let before = observe(&sm);
                drop(sm);
                sm = open(&db);
                assert_eq!(observe(&sm), before, "reopening changed the state");
                assert_eq!(sm.applied_index(), index);
            }
            _ => {
                let Some(cmd) = command(step, &sm) else {
                    continue;
                };
                if state::validate(&cmd, MAX_TXN_OPS).is_err() {
                    continue;
                }
                index += 1;
                let outcome = apply_checked(&mut sm, index, &cmd);
                // A replayed index is ignored.
                let seen = observe(&sm);
                assert_eq!(sm.apply(index, &cmd).ok(), Some(None), "replay not ignored");
                assert_eq!(observe(&sm), seen, "a replay changed the state");
                log.push((index, cmd, outcome));
            }
        }
    }
    // Determinism: a second member applying the same entries ends the same.
    let db2 = temp_db();
    let mut other = open(&db2);
    for (i, cmd, outcome) in &log {
        let again = apply_checked(&mut other, *i, cmd);
        assert_eq!(
            &again, outcome,
            "members answered differently at index {i}: {cmd:?}"
        );
    }
    other.apply_noop(index).expect("a no-op applies");
    assert_eq!(observe(&other), observe(&sm), "members diverged");
});
