//! `AuthRecords::check` against a brute-force model of etcd's permission rules.
//!
//! The input grants arbitrary permissions (any type number, keys and range ends over a
//! small alphabet, so that intervals meet, touch and nest) to a few roles, gives some of
//! the roles to a user, enables auth, and asks `check` about arbitrary keys and ranges.
//! The model, written independently of the interval code in `state/auth.rs`:
//!
//! - a permission is refused at grant (`INVALID_AUTH_MGMT`) for an empty key, or a
//!   range end that is neither empty, `"\0"`, nor above the key (etcd >= 3.5.8's
//!   `isValidPermissionRange`); otherwise it is the single key (end empty), every key
//!   from the key on (end `"\0"`), or `[key, end)`;
//! - READ and WRITE permissions count for their kind, READWRITE for both, any other
//!   type number for nothing (etcd's `getMergedPerms` skips it);
//! - a single key needs one permission holding it; a range `[key, end)` needs every key
//!   in it held by some permission (end `"\0"`: every key from `key` on); an empty or
//!   inverted range is judged by its first key (etcd's interval tree does the same);
//! - a user with the root role may do anything.
//!
//! Every half-open interval here has its ends among finitely many keys, so "every key
//! of `[key, end)` is held" reduces to checking the start of every elementary segment
//! between consecutive ends, which is what the model does, one key at a time.
#![no_main]

use arbitrary::Arbitrary;
use gauntlet_api::authpb::{self, permission::Type as PermType};
use gauntlet_api::etcdserverpb as pb;
use gauntlet_api::rpctypes;
use gauntlet_reference_server::state::auth::{Access, AuthHeader, AuthOp, AuthRecords};
use libfuzzer_sys::fuzz_target;

/// A key over a small alphabet: up to 3 bytes of `\0`, `a`, `b`, `\xff`.
#[derive(Arbitrary, Debug, Clone)]
struct Key(Vec<u8>);

impl Key {
    fn bytes(&self) -> Vec<u8> {
        self.0
            .iter()
            .take(3)
            .map(|b| [0u8, b'a', b'b', 0xff][usize::from(*b % 4)])
            .collect()
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum End {
    Single,
    FromKey,
    Key(Key),
}

impl End {
    fn bytes(&self) -> Vec<u8> {
        match self {
            End::Single => Vec::new(),
            End::FromKey => vec![0],
            End::Key(k) => k.bytes(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Grant {
    role: u8,
    perm_type: i8,
    key: Key,
    end: End,
}

#[derive(Arbitrary, Debug)]
struct Query {
    key: Key,
    end: End,
    write: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    grants: Vec<Grant>,
    /// Bit i: the user has role i (of 3).
    roles: u8,
    root: bool,
    queries: Vec<Query>,
}

/// A permission as the model sees it: `[start, end)`, `end` None for +infinity.
#[derive(Debug, Clone)]
struct ModelPerm {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    read: bool,
    write: bool,
}

impl ModelPerm {
    fn holds(&self, k: &[u8]) -> bool {
        k >= self.start.as_slice() && self.end.as_ref().is_none_or(|e| k < e.as_slice())
    }
}

/// The smallest key after `k`.
fn successor(k: &[u8]) -> Vec<u8> {
    let mut s = k.to_vec();
    s.push(0);
    s
}

/// The model's half-open interval for a key and range end (permission or request).
fn model_interval(key: &[u8], end: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    match end {
        [] => (key.to_vec(), Some(successor(key))),
        [0] => (key.to_vec(), None),
        e => (key.to_vec(), Some(e.to_vec())),
    }
}

fn valid_permission(key: &[u8], end: &[u8]) -> bool {
    !key.is_empty() && (end.is_empty() || end == [0] || end > key)
}

fn model_allows(perms: &[ModelPerm], root: bool, key: &[u8], end: &[u8], write: bool) -> bool {
    if root {
        return true;
    }
    let held = |k: &[u8]| {
        perms
            .iter()
            .any(|p| (if write { p.write } else { p.read }) && p.holds(k))
    };
    let (start, stop) = model_interval(key, end);
    if stop
        .as_ref()
        .is_some_and(|s| s.as_slice() <= start.as_slice())
    {
        return held(key);
    }
    let inside = |k: &[u8]| k >= start.as_slice() && stop.as_ref().is_none_or(|s| k < s.as_slice());
    // The starts of the elementary segments of [start, stop): start itself and every
    // permission end point inside it.
    let mut points = vec![start.clone()];
    for p in perms {
        points.push(p.start.clone());
        if let Some(e) = &p.end {
            points.push(e.clone());
        }
    }
    points.into_iter().filter(|p| inside(p)).all(|p| held(&p))
}

fn apply(a: &mut AuthRecords, op: AuthOp) -> Result<(), rpctypes::EtcdError> {
    a.apply(None, &op, 1, &mut Vec::new(), &mut Vec::new())
        .map(|_| ())
}

const HASH: &str = "JDJiJDA0JG5vdGFyZWFsaGFzaGJ1dGJ5dGVz";

fn add_user(a: &mut AuthRecords, name: &str) {
    apply(
        a,
        AuthOp::UserAdd(pb::AuthUserAddRequest {
            name: name.into(),
            hashed_password: HASH.into(),
            ..Default::default()
        }),
    )
    .expect("user added");
}

fn grant_role(a: &mut AuthRecords, user: &str, role: &str) {
    apply(
        a,
        AuthOp::UserGrantRole(pb::AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        }),
    )
    .expect("role granted");
}

fuzz_target!(|input: Input| {
    let mut a = AuthRecords::default();
    add_user(&mut a, "root");
    grant_role(&mut a, "root", "root");
    add_user(&mut a, "u");
    for r in 0..3 {
        apply(
            &mut a,
            AuthOp::RoleAdd(pb::AuthRoleAddRequest {
                name: format!("r{r}"),
            }),
        )
        .expect("role added");
    }
    // The model's permissions per role, as etcd keeps them: one per (key, range_end),
    // a later grant of the same pair replacing the type.
    let mut granted: Vec<Vec<(Vec<u8>, Vec<u8>, i32)>> = vec![Vec::new(); 3];
    for g in input.grants.iter().take(16) {
        let role = usize::from(g.role % 3);
        let (key, end) = (g.key.bytes(), g.end.bytes());
        let perm_type = i32::from(g.perm_type % 5);
        let got = apply(
            &mut a,
            AuthOp::RoleGrantPermission(pb::AuthRoleGrantPermissionRequest {
                name: format!("r{role}"),
                perm: Some(authpb::Permission {
                    perm_type,
                    key: key.clone(),
                    range_end: end.clone(),
                }),
            }),
        );
        if !valid_permission(&key, &end) {
            assert_eq!(
                got,
                Err(rpctypes::INVALID_AUTH_MGMT),
                "granted an invalid permission {key:?}..{end:?}"
            );
            continue;
        }
        assert_eq!(got, Ok(()), "refused a valid permission {key:?}..{end:?}");
        let list = &mut granted[role];
        match list.iter_mut().find(|(k, e, _)| *k == key && *e == end) {
            Some(p) => p.2 = perm_type,
            None => list.push((key, end, perm_type)),
        }
    }
    let mut perms = Vec::new();
    for r in 0..3 {
        if input.roles & (1 << r) == 0 {
            continue;
        }
        grant_role(&mut a, "u", &format!("r{r}"));
        for (key, end, t) in &granted[r] {
            let (read, write) = match PermType::try_from(*t) {
                Ok(PermType::Read) => (true, false),
                Ok(PermType::Write) => (false, true),
                Ok(PermType::Readwrite) => (true, true),
                Err(_) => (false, false),
            };
            let (start, end) = model_interval(key, end);
            perms.push(ModelPerm {
                start,
                end,
                read,
                write,
            });
        }
    }
    if input.root {
        grant_role(&mut a, "u", "root");
    }
    apply(&mut a, AuthOp::Enable(Default::default())).expect("auth enabled");
    let who = AuthHeader {
        username: "u".into(),
        revision: a.revision(),
    };
    for q in input.queries.iter().take(32) {
        let (key, end) = (q.key.bytes(), q.end.bytes());
        if key.is_empty() {
            // No request reaches a permission check with an empty key.
            continue;
        }
        let access = if q.write { Access::Write } else { Access::Read };
        let got = a.check(&who, &key, &end, access).is_ok();
        let want = model_allows(&perms, input.root, &key, &end, q.write);
        assert_eq!(
            got, want,
            "check({key:?}, {end:?}, {access:?}) with permissions {perms:?}"
        );
    }
});
