//! The replicated auth store: users, roles and their permissions, whether auth is
//! enabled, and the auth revision.
//!
//! Like the member table it lives in the state machine's sled tree (prefix `A`), travels
//! in raft snapshots, changes only by applying raft entries, and is not part of
//! `hash_kv`. Every management RPC of etcd's Auth service is one [`AuthOp`] applied here,
//! reads included, as etcd does: a `UserGet` answers from the applied state, so it sees
//! every change acknowledged before it.
//!
//! # Who may do what
//!
//! A client's command carries an [`AuthHeader`] (the user its token or certificate
//! names, and the auth revision the server saw when it checked the token); the server's
//! own commands (lease expiry, auto-compaction, publishing a member) carry none and are
//! never refused. The checks are etcd's (`server/auth/store.go`), applied on every
//! member to the same state, so every member decides the same:
//!
//! - With auth disabled every check passes.
//! - A key check with no user (revision 0) fails with `USER_EMPTY`; one whose header
//!   revision is older than the store's fails with `AUTH_OLD_REVISION` (the client asks
//!   for a new token and retries); an unknown user, or a user without a covering
//!   permission, fails with `PERMISSION_DENIED`. A user with the `root` role may do
//!   anything.
//! - A single key needs a permission whose interval contains it; a range needs the union
//!   of the user's permissions of that kind to cover it entirely (etcd's interval tree
//!   `Contains`). READWRITE counts as both.
//! - Admin operations (every auth change and listing, membership changes, defragment,
//!   snapshot, hash) need the root role: no user is `USER_EMPTY`, an unknown one
//!   `USER_NOT_FOUND`, anyone else `PERMISSION_DENIED`. `UserGet` of oneself and
//!   `RoleGet` of one's own role are allowed to everyone.
//!
//! # Revision
//!
//! The auth revision starts at 1 and grows by one with every change that can alter a
//! check (user or role added, deleted or changed, permission granted or revoked, auth
//! disabled); enabling auth does not bump it, as in etcd.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use gauntlet_api::authpb::{self, permission::Type as PermType};
use gauntlet_api::etcdserverpb as pb;
use gauntlet_api::rpctypes::{self, EtcdError};
use prost::Message as _;

use super::StateError;

/// Key prefix of every auth record.
pub const AUTH_PREFIX: u8 = b'A';
const USER_PREFIX: &[u8] = &[AUTH_PREFIX, b'u'];
const ROLE_PREFIX: &[u8] = &[AUTH_PREFIX, b'r'];
const ENABLED_KEY: &[u8] = &[AUTH_PREFIX, b'e'];
const REVISION_KEY: &[u8] = &[AUTH_PREFIX, b'v'];

/// The name of the user and of the role that may do anything.
pub const ROOT: &str = "root";

/// Who sent a client command: the user (empty: nobody) and the auth revision at which
/// the server validated the user's credentials (0: no credentials).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AuthHeader {
    #[prost(string, tag = "1")]
    pub username: String,
    #[prost(uint64, tag = "2")]
    pub revision: u64,
}

/// An Authenticate as replicated: the password was checked by the member that proposed
/// it and is not in the log. `simple_token` is the random part of a simple token (the
/// applied entry's index completes it); empty when tokens are JWTs.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Authenticate {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub simple_token: String,
}

/// One auth operation, as a raft command.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthCommand {
    #[prost(
        oneof = "AuthOp",
        tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17"
    )]
    pub op: Option<AuthOp>,
}

/// The auth operations. Passwords arrive hashed (`hashed_password`, base64 of the
/// bcrypt hash, as etcd 3.5 replicates them); a plain `password` is hashed on apply
/// only for the `hashed_password`-less form, which this server never proposes.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AuthOp {
    #[prost(message, tag = "1")]
    Enable(pb::AuthEnableRequest),
    #[prost(message, tag = "2")]
    Disable(pb::AuthDisableRequest),
    #[prost(message, tag = "3")]
    Status(pb::AuthStatusRequest),
    #[prost(message, tag = "4")]
    Authenticate(Authenticate),
    #[prost(message, tag = "5")]
    UserAdd(pb::AuthUserAddRequest),
    #[prost(message, tag = "6")]
    UserGet(pb::AuthUserGetRequest),
    #[prost(message, tag = "7")]
    UserList(pb::AuthUserListRequest),
    #[prost(message, tag = "8")]
    UserDelete(pb::AuthUserDeleteRequest),
    #[prost(message, tag = "9")]
    UserChangePassword(pb::AuthUserChangePasswordRequest),
    #[prost(message, tag = "10")]
    UserGrantRole(pb::AuthUserGrantRoleRequest),
    #[prost(message, tag = "11")]
    UserRevokeRole(pb::AuthUserRevokeRoleRequest),
    #[prost(message, tag = "12")]
    RoleAdd(pb::AuthRoleAddRequest),
    #[prost(message, tag = "13")]
    RoleGet(pb::AuthRoleGetRequest),
    #[prost(message, tag = "14")]
    RoleList(pb::AuthRoleListRequest),
    #[prost(message, tag = "15")]
    RoleDelete(pb::AuthRoleDeleteRequest),
    #[prost(message, tag = "16")]
    RoleGrantPermission(pb::AuthRoleGrantPermissionRequest),
    #[prost(message, tag = "17")]
    RoleRevokePermission(pb::AuthRoleRevokePermissionRequest),
}

impl AuthOp {
    /// Whether etcd requires the root role for it (`needAdminPermission`); `UserGet`
    /// and `RoleGet` are judged with the request (oneself, one's own role).
    fn needs_admin(&self) -> bool {
        !matches!(
            self,
            AuthOp::Authenticate(_) | AuthOp::UserGet(_) | AuthOp::RoleGet(_)
        )
    }
}

/// What an applied auth operation answered (headers unset: the caller fills them).
#[derive(Debug, Clone, PartialEq)]
pub enum AuthResponse {
    Enable(pb::AuthEnableResponse),
    Disable(pb::AuthDisableResponse),
    Status(pb::AuthStatusResponse),
    /// The user authenticated, at this auth revision; `token` is the complete simple
    /// token, or empty when the proposer signs a JWT.
    Authenticate {
        user: String,
        revision: u64,
        token: String,
    },
    UserAdd(pb::AuthUserAddResponse),
    UserGet(pb::AuthUserGetResponse),
    UserList(pb::AuthUserListResponse),
    UserDelete(pb::AuthUserDeleteResponse),
    UserChangePassword(pb::AuthUserChangePasswordResponse),
    UserGrantRole(pb::AuthUserGrantRoleResponse),
    UserRevokeRole(pb::AuthUserRevokeRoleResponse),
    RoleAdd(pb::AuthRoleAddResponse),
    RoleGet(pb::AuthRoleGetResponse),
    RoleList(pb::AuthRoleListResponse),
    RoleDelete(pb::AuthRoleDeleteResponse),
    RoleGrantPermission(pb::AuthRoleGrantPermissionResponse),
    RoleRevokePermission(pb::AuthRoleRevokePermissionResponse),
}

/// What an applied operation means for the tokens handed out (kept outside the
/// replicated state, as etcd's token providers are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenEffect {
    /// A simple token now names this user.
    Assign { token: String, user: String },
    /// Every token of this user stops working (user deleted, password changed).
    InvalidateUser(String),
    /// Auth was disabled: every simple token stops working.
    ClearAll,
}

/// Half-open key intervals `[start, end)`, sorted, disjoint and not touching; an end of
/// `None` is +infinity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Intervals(Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl Intervals {
    fn from_unsorted(mut v: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Self {
        v.sort();
        let mut out: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(v.len());
        for (start, end) in v {
            if let Some((_, last_end)) = out.last_mut() {
                let touches = match last_end {
                    None => true,
                    Some(e) => start <= *e,
                };
                if touches {
                    if let (Some(le), new) = (last_end.as_ref(), &end) {
                        *last_end = new.as_ref().map(|ne| std::cmp::max(le.clone(), ne.clone()));
                    }
                    continue;
                }
            }
            out.push((start, end));
        }
        Intervals(out)
    }

    /// The interval holding `key`, if any.
    fn holding(&self, key: &[u8]) -> Option<&(Vec<u8>, Option<Vec<u8>>)> {
        let i = self.0.partition_point(|(s, _)| s.as_slice() <= key);
        let iv = self.0.get(i.checked_sub(1)?)?;
        match &iv.1 {
            None => Some(iv),
            Some(e) if key < e.as_slice() => Some(iv),
            Some(_) => None,
        }
    }

    /// Whether `[start, end)` (end `None`: +infinity) lies inside one interval.
    fn covers(&self, start: &[u8], end: Option<&[u8]>) -> bool {
        let Some((_, iv_end)) = self.holding(start) else {
            return false;
        };
        match (iv_end, end) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(ie), Some(e)) => e <= ie.as_slice(),
        }
    }
}

/// The permissions of one user, merged over its roles.
#[derive(Debug, Clone, Default)]
struct UserPerms {
    root: bool,
    read: Intervals,
    write: Intervals,
}

/// The interval a permission (or a request) names: `range_end` empty is the single key,
/// `\0` is every key from `key` on.
fn interval(key: &[u8], range_end: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    if range_end.is_empty() {
        let mut end = key.to_vec();
        end.push(0);
        (key.to_vec(), Some(end))
    } else if range_end == [0] {
        (key.to_vec(), None)
    } else {
        (key.to_vec(), Some(range_end.to_vec()))
    }
}

/// etcd's `isValidPermissionRange` (etcd >= 3.5.8): a permission names a key, and its
/// range end is empty (the single key), `\0` (every key from the key on) or above the
/// key. etcd 3.5.1 stored the others, but its interval tree reads an empty key as
/// +infinity, so they granted nothing; here an empty key would have been the smallest
/// key and granted every key up to the end, so they are refused, as newer etcd does.
fn valid_permission_range(key: &[u8], range_end: &[u8]) -> bool {
    !key.is_empty() && (range_end.is_empty() || range_end == [0] || range_end > key)
}

/// The kind of access a check asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The auth store as of the last applied entry.
#[derive(Debug, Clone)]
pub struct AuthRecords {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, authpb::User>,
    roles: BTreeMap<String, authpb::Role>,
    /// Every user's merged permissions, rebuilt after each change.
    perms: HashMap<String, Arc<UserPerms>>,
}

impl Default for AuthRecords {
    fn default() -> Self {
        AuthRecords {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
            perms: HashMap::new(),
        }
    }
}

fn prefixed(prefix: &[u8], name: &str) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

type Staged = Vec<(Vec<u8>, Option<Vec<u8>>)>;

impl AuthRecords {
    /// Loads the store from the tree (an empty tree is a fresh store at revision 1).
    pub fn load(tree: &sled::Tree) -> Result<Self, StateError> {
        let mut a = AuthRecords {
            enabled: tree.get(ENABLED_KEY)?.is_some_and(|v| v.as_ref() == [1]),
            ..Default::default()
        };
        if let Some(v) = tree.get(REVISION_KEY)? {
            let b: [u8; 8] = v
                .as_ref()
                .try_into()
                .map_err(|_| StateError::Corrupt("auth revision record".into()))?;
            a.revision = u64::from_be_bytes(b);
        }
        for item in tree.scan_prefix(USER_PREFIX) {
            let (_, v) = item?;
            let u = authpb::User::decode(v.as_ref())
                .map_err(|e| StateError::Corrupt(format!("user record: {e}")))?;
            a.users
                .insert(String::from_utf8_lossy(&u.name).into_owned(), u);
        }
        for item in tree.scan_prefix(ROLE_PREFIX) {
            let (_, v) = item?;
            let r = authpb::Role::decode(v.as_ref())
                .map_err(|e| StateError::Corrupt(format!("role record: {e}")))?;
            a.roles
                .insert(String::from_utf8_lossy(&r.name).into_owned(), r);
        }
        a.rebuild_perms();
        Ok(a)
    }

    /// Whether auth is enabled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The auth revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The stored bcrypt hash of `user`'s password, as etcd's `CheckPassword`:
    /// `AUTH_NOT_ENABLED` with auth off, `AUTH_FAILED` for an unknown user, and
    /// `NO_PASSWORD_USER` for one added with `no_password`.
    pub fn password_hash(&self, user: &str) -> Result<Vec<u8>, EtcdError> {
        if !self.enabled {
            return Err(rpctypes::AUTH_NOT_ENABLED);
        }
        let u = self.users.get(user).ok_or(rpctypes::AUTH_FAILED)?;
        if u.options.as_ref().is_some_and(|o| o.no_password) {
            return Err(rpctypes::NO_PASSWORD_USER);
        }
        Ok(u.password.clone())
    }

    fn rebuild_perms(&mut self) {
        let mut perms = HashMap::with_capacity(self.users.len());
        for (name, user) in &self.users {
            let mut read = Vec::new();
            let mut write = Vec::new();
            for role in &user.roles {
                let Some(r) = self.roles.get(role) else {
                    continue;
                };
                for p in &r.key_permission {
                    let iv = interval(&p.key, &p.range_end);
                    // A type number etcd does not know grants nothing (its
                    // getMergedPerms has no case for it); a client can send one.
                    match PermType::try_from(p.perm_type) {
                        Ok(PermType::Read) => read.push(iv),
                        Ok(PermType::Write) => write.push(iv),
                        Ok(PermType::Readwrite) => {
                            read.push(iv.clone());
                            write.push(iv);
                        }
                        Err(_) => {}
                    }
                }
            }
            perms.insert(
                name.clone(),
                Arc::new(UserPerms {
                    root: user.roles.iter().any(|r| r == ROOT),
                    read: Intervals::from_unsorted(read),
                    write: Intervals::from_unsorted(write),
                }),
            );
        }
        self.perms = perms;
    }

    /// etcd's `isOpPermitted`: may `who` access `[key, range_end)` (see the module doc).
    pub fn check(
        &self,
        who: &AuthHeader,
        key: &[u8],
        range_end: &[u8],
        access: Access,
    ) -> Result<(), EtcdError> {
        if !self.enabled {
            return Ok(());
        }
        if who.revision == 0 {
            return Err(rpctypes::USER_EMPTY);
        }
        if who.revision < self.revision {
            return Err(rpctypes::AUTH_OLD_REVISION);
        }
        let perms = self
            .perms
            .get(&who.username)
            .ok_or(rpctypes::PERMISSION_DENIED)?;
        if perms.root {
            return Ok(());
        }
        let ivs = match access {
            Access::Read => &perms.read,
            Access::Write => &perms.write,
        };
        let ok = if range_end.is_empty() {
            ivs.holding(key).is_some()
        } else {
            let (start, end) = interval(key, range_end);
            match &end {
                // An empty or inverted range selects nothing; judged by its first key.
                Some(e) if e.as_slice() <= start.as_slice() => ivs.holding(key).is_some(),
                _ => ivs.covers(&start, end.as_deref()),
            }
        };
        if ok {
            Ok(())
        } else {
            Err(rpctypes::PERMISSION_DENIED)
        }
    }

    /// etcd's `IsAdminPermitted` (`None`: no credentials at all).
    pub fn check_admin(&self, who: Option<&AuthHeader>) -> Result<(), EtcdError> {
        if !self.enabled {
            return Ok(());
        }
        let who = who
            .filter(|w| !w.username.is_empty())
            .ok_or(rpctypes::USER_EMPTY)?;
        let perms = self
            .perms
            .get(&who.username)
            .ok_or(rpctypes::USER_NOT_FOUND)?;
        if perms.root {
            Ok(())
        } else {
            Err(rpctypes::PERMISSION_DENIED)
        }
    }

    fn has_role(&self, user: &str, role: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    fn bump(&mut self, ops: &mut Staged) {
        self.revision += 1;
        ops.push((
            REVISION_KEY.to_vec(),
            Some(self.revision.to_be_bytes().to_vec()),
        ));
    }

    fn put_user(&mut self, u: authpb::User, ops: &mut Staged) {
        let name = String::from_utf8_lossy(&u.name).into_owned();
        ops.push((prefixed(USER_PREFIX, &name), Some(u.encode_to_vec())));
        self.users.insert(name, u);
    }

    fn put_role(&mut self, r: authpb::Role, ops: &mut Staged) {
        let name = String::from_utf8_lossy(&r.name).into_owned();
        ops.push((prefixed(ROLE_PREFIX, &name), Some(r.encode_to_vec())));
        self.roles.insert(name, r);
    }

    /// Applies one operation at raft `index` on behalf of `who` (`None`: the server
    /// itself), staging its writes in `ops` and its token consequences in `effects`.
    /// Rejections are decided before anything is staged.
    pub fn apply(
        &mut self,
        who: Option<&AuthHeader>,
        op: &AuthOp,
        index: u64,
        ops: &mut Staged,
        effects: &mut Vec<TokenEffect>,
    ) -> Result<AuthResponse, EtcdError> {
        if who.is_some() && op.needs_admin() {
            self.check_admin(who)?;
        }
        let admin = who.is_none() || self.check_admin(who).is_ok();
        let caller = who.map(|w| w.username.as_str()).unwrap_or_default();
        let r = match op {
            AuthOp::Enable(_) => {
                if !self.enabled {
                    let root = self.users.get(ROOT).ok_or(rpctypes::ROOT_USER_NOT_EXIST)?;
                    if !root.roles.iter().any(|r| r == ROOT) {
                        return Err(rpctypes::ROOT_ROLE_NOT_EXIST);
                    }
                    self.enabled = true;
                    ops.push((ENABLED_KEY.to_vec(), Some(vec![1])));
                }
                AuthResponse::Enable(Default::default())
            }
            AuthOp::Disable(_) => {
                if self.enabled {
                    self.enabled = false;
                    ops.push((ENABLED_KEY.to_vec(), Some(vec![0])));
                    self.bump(ops);
                    effects.push(TokenEffect::ClearAll);
                }
                AuthResponse::Disable(Default::default())
            }
            AuthOp::Status(_) => AuthResponse::Status(pb::AuthStatusResponse {
                header: None,
                enabled: self.enabled,
                auth_revision: self.revision,
            }),
            AuthOp::Authenticate(a) => {
                if !self.enabled {
                    return Err(rpctypes::AUTH_NOT_ENABLED);
                }
                let u = self.users.get(&a.name).ok_or(rpctypes::AUTH_FAILED)?;
                if u.options.as_ref().is_some_and(|o| o.no_password) {
                    return Err(rpctypes::AUTH_FAILED);
                }
                let token = if a.simple_token.is_empty() {
                    String::new()
                } else {
                    let t = format!("{}.{index}", a.simple_token);
                    effects.push(TokenEffect::Assign {
                        token: t.clone(),
                        user: a.name.clone(),
                    });
                    t
                };
                AuthResponse::Authenticate {
                    user: a.name.clone(),
                    revision: self.revision,
                    token,
                }
            }
            AuthOp::UserAdd(r) => {
                if r.name.is_empty() {
                    return Err(rpctypes::USER_EMPTY);
                }
                if self.users.contains_key(&r.name) {
                    return Err(rpctypes::USER_ALREADY_EXIST);
                }
                let options = r.options.unwrap_or_default();
                let password = if options.no_password {
                    Vec::new()
                } else {
                    decode_hash(&r.hashed_password)?
                };
                self.put_user(
                    authpb::User {
                        name: r.name.as_bytes().to_vec(),
                        password,
                        roles: Vec::new(),
                        options: Some(options),
                    },
                    ops,
                );
                self.bump(ops);
                AuthResponse::UserAdd(Default::default())
            }
            AuthOp::UserGet(r) => {
                if !admin && r.name != caller {
                    self.check_admin(who)?;
                }
                let u = self.users.get(&r.name).ok_or(rpctypes::USER_NOT_FOUND)?;
                AuthResponse::UserGet(pb::AuthUserGetResponse {
                    header: None,
                    roles: u.roles.clone(),
                })
            }
            AuthOp::UserList(_) => AuthResponse::UserList(pb::AuthUserListResponse {
                header: None,
                users: self.users.keys().cloned().collect(),
            }),
            AuthOp::UserDelete(r) => {
                if self.enabled && r.name == ROOT {
                    return Err(rpctypes::INVALID_AUTH_MGMT);
                }
                if self.users.remove(&r.name).is_none() {
                    return Err(rpctypes::USER_NOT_FOUND);
                }
                ops.push((prefixed(USER_PREFIX, &r.name), None));
                self.bump(ops);
                effects.push(TokenEffect::InvalidateUser(r.name.clone()));
                AuthResponse::UserDelete(Default::default())
            }
            AuthOp::UserChangePassword(r) => {
                let mut u = self
                    .users
                    .get(&r.name)
                    .ok_or(rpctypes::USER_NOT_FOUND)?
                    .clone();
                if !u.options.as_ref().is_some_and(|o| o.no_password) {
                    u.password = decode_hash(&r.hashed_password)?;
                }
                self.put_user(u, ops);
                self.bump(ops);
                effects.push(TokenEffect::InvalidateUser(r.name.clone()));
                AuthResponse::UserChangePassword(Default::default())
            }
            AuthOp::UserGrantRole(r) => {
                let mut u = self
                    .users
                    .get(&r.user)
                    .ok_or(rpctypes::USER_NOT_FOUND)?
                    .clone();
                if r.role != ROOT && !self.roles.contains_key(&r.role) {
                    return Err(rpctypes::ROLE_NOT_FOUND);
                }
                if let Err(at) = u.roles.binary_search(&r.role) {
                    u.roles.insert(at, r.role.clone());
                    self.put_user(u, ops);
                    self.bump(ops);
                }
                AuthResponse::UserGrantRole(Default::default())
            }
            AuthOp::UserRevokeRole(r) => {
                if self.enabled && r.name == ROOT && r.role == ROOT {
                    return Err(rpctypes::INVALID_AUTH_MGMT);
                }
                let mut u = self
                    .users
                    .get(&r.name)
                    .ok_or(rpctypes::USER_NOT_FOUND)?
                    .clone();
                let before = u.roles.len();
                u.roles.retain(|x| *x != r.role);
                if u.roles.len() == before {
                    return Err(rpctypes::ROLE_NOT_GRANTED);
                }
                self.put_user(u, ops);
                self.bump(ops);
                AuthResponse::UserRevokeRole(Default::default())
            }
            AuthOp::RoleAdd(r) => {
                if r.name.is_empty() {
                    return Err(rpctypes::ROLE_EMPTY);
                }
                if self.roles.contains_key(&r.name) {
                    return Err(rpctypes::ROLE_ALREADY_EXIST);
                }
                self.put_role(
                    authpb::Role {
                        name: r.name.as_bytes().to_vec(),
                        key_permission: Vec::new(),
                    },
                    ops,
                );
                self.bump(ops);
                AuthResponse::RoleAdd(Default::default())
            }
            AuthOp::RoleGet(r) => {
                if !admin && !self.has_role(caller, &r.role) {
                    self.check_admin(who)?;
                }
                let role = self.roles.get(&r.role).ok_or(rpctypes::ROLE_NOT_FOUND)?;
                AuthResponse::RoleGet(pb::AuthRoleGetResponse {
                    header: None,
                    perm: role.key_permission.clone(),
                })
            }
            AuthOp::RoleList(_) => AuthResponse::RoleList(pb::AuthRoleListResponse {
                header: None,
                roles: self.roles.keys().cloned().collect(),
            }),
            AuthOp::RoleDelete(r) => {
                if self.enabled && r.role == ROOT {
                    return Err(rpctypes::INVALID_AUTH_MGMT);
                }
                if self.roles.remove(&r.role).is_none() {
                    return Err(rpctypes::ROLE_NOT_FOUND);
                }
                ops.push((prefixed(ROLE_PREFIX, &r.role), None));
                let holders: Vec<authpb::User> = self
                    .users
                    .values()
                    .filter(|u| u.roles.contains(&r.role))
                    .cloned()
                    .collect();
                for mut u in holders {
                    u.roles.retain(|x| *x != r.role);
                    self.put_user(u, ops);
                }
                self.bump(ops);
                AuthResponse::RoleDelete(Default::default())
            }
            AuthOp::RoleGrantPermission(r) => {
                let perm = r.perm.as_ref().ok_or(rpctypes::PERMISSION_NOT_GIVEN)?;
                if !valid_permission_range(&perm.key, &perm.range_end) {
                    return Err(rpctypes::INVALID_AUTH_MGMT);
                }
                let mut role = self
                    .roles
                    .get(&r.name)
                    .ok_or(rpctypes::ROLE_NOT_FOUND)?
                    .clone();
                match role
                    .key_permission
                    .iter_mut()
                    .find(|p| p.key == perm.key && p.range_end == perm.range_end)
                {
                    Some(p) => p.perm_type = perm.perm_type,
                    None => {
                        role.key_permission.push(authpb::Permission {
                            perm_type: perm.perm_type,
                            key: perm.key.clone(),
                            range_end: perm.range_end.clone(),
                        });
                        // Stable by key, as etcd sorts them.
                        role.key_permission.sort_by(|a, b| a.key.cmp(&b.key));
                    }
                }
                self.put_role(role, ops);
                self.bump(ops);
                AuthResponse::RoleGrantPermission(Default::default())
            }
            AuthOp::RoleRevokePermission(r) => {
                let mut role = self
                    .roles
                    .get(&r.role)
                    .ok_or(rpctypes::ROLE_NOT_FOUND)?
                    .clone();
                let before = role.key_permission.len();
                role.key_permission
                    .retain(|p| !(p.key == r.key && p.range_end == r.range_end));
                if role.key_permission.len() == before {
                    return Err(rpctypes::PERMISSION_NOT_GRANTED);
                }
                self.put_role(role, ops);
                self.bump(ops);
                AuthResponse::RoleRevokePermission(Default::default())
            }
        };
        if !matches!(
            op,
            AuthOp::Status(_)
                | AuthOp::Authenticate(_)
                | AuthOp::UserGet(_)
                | AuthOp::UserList(_)
                | AuthOp::RoleGet(_)
                | AuthOp::RoleList(_)
        ) {
            self.rebuild_perms();
        }
        Ok(r)
    }
}

/// The stored form of a replicated password hash (base64 of the bcrypt hash).
fn decode_hash(b64: &str) -> Result<Vec<u8>, EtcdError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| rpctypes::AUTH_FAILED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ivs(v: &[(&str, Option<&str>)]) -> Intervals {
        Intervals::from_unsorted(
            v.iter()
                .map(|(s, e)| (s.as_bytes().to_vec(), e.map(|e| e.as_bytes().to_vec())))
                .collect(),
        )
    }

    #[test]
    fn intervals_merge_and_cover() {
        let i = ivs(&[
            ("c", Some("e")),
            ("a", Some("c")),
            ("x", None),
            ("g", Some("h")),
        ]);
        assert_eq!(i.0.len(), 3, "{i:?}");
        assert!(i.covers(b"a", Some(b"e")));
        assert!(!i.covers(b"a", Some(b"f")));
        assert!(i.holding(b"d").is_some());
        assert!(i.holding(b"e").is_none());
        assert!(i.covers(b"y", None));
        assert!(!i.covers(b"g", None));
        assert!(i.holding(b"zzz").is_some());
        assert!(i.holding(b"").is_none());
    }

    fn header(user: &str, revision: u64) -> AuthHeader {
        AuthHeader {
            username: user.into(),
            revision,
        }
    }

    fn apply(
        a: &mut AuthRecords,
        who: Option<&AuthHeader>,
        op: AuthOp,
    ) -> Result<AuthResponse, EtcdError> {
        a.apply(who, &op, 7, &mut Vec::new(), &mut Vec::new())
    }

    fn hashed() -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(b"$2b$04$notarealhashbutbytes")
    }

    fn user(a: &mut AuthRecords, name: &str) {
        apply(
            a,
            None,
            AuthOp::UserAdd(pb::AuthUserAddRequest {
                name: name.into(),
                hashed_password: hashed(),
                ..Default::default()
            }),
        )
        .unwrap();
    }

    #[test]
    fn enable_needs_root_with_root_role_and_checks_follow_permissions() {
        let mut a = AuthRecords::default();
        assert_eq!(
            apply(&mut a, None, AuthOp::Enable(Default::default())),
            Err(rpctypes::ROOT_USER_NOT_EXIST)
        );
        user(&mut a, ROOT);
        assert_eq!(
            apply(&mut a, None, AuthOp::Enable(Default::default())),
            Err(rpctypes::ROOT_ROLE_NOT_EXIST)
        );
        apply(
            &mut a,
            None,
            AuthOp::UserGrantRole(pb::AuthUserGrantRoleRequest {
                user: ROOT.into(),
                role: ROOT.into(),
            }),
        )
        .unwrap();
        user(&mut a, "u");
        apply(
            &mut a,
            None,
            AuthOp::RoleAdd(pb::AuthRoleAddRequest { name: "r".into() }),
        )
        .unwrap();
        apply(
            &mut a,
            None,
            AuthOp::RoleGrantPermission(pb::AuthRoleGrantPermissionRequest {
                name: "r".into(),
                perm: Some(authpb::Permission {
                    perm_type: PermType::Read as i32,
                    key: b"p/".to_vec(),
                    range_end: b"p0".to_vec(),
                }),
            }),
        )
        .unwrap();
        apply(
            &mut a,
            None,
            AuthOp::UserGrantRole(pb::AuthUserGrantRoleRequest {
                user: "u".into(),
                role: "r".into(),
            }),
        )
        .unwrap();
        let rev = a.revision();
        apply(&mut a, None, AuthOp::Enable(Default::default())).unwrap();
        assert_eq!(a.revision(), rev, "enabling does not bump the revision");
        let u = header("u", rev);
        assert_eq!(a.check(&u, b"p/x", b"", Access::Read), Ok(()));
        assert_eq!(a.check(&u, b"p/", b"p0", Access::Read), Ok(()));
        assert_eq!(
            a.check(&u, b"p/", b"q", Access::Read),
            Err(rpctypes::PERMISSION_DENIED)
        );
        assert_eq!(
            a.check(&u, b"p/x", b"", Access::Write),
            Err(rpctypes::PERMISSION_DENIED)
        );
        assert_eq!(
            a.check(&header("", 0), b"p/x", b"", Access::Read),
            Err(rpctypes::USER_EMPTY)
        );
        assert_eq!(
            a.check(&header("u", rev - 1), b"p/x", b"", Access::Read),
            Err(rpctypes::AUTH_OLD_REVISION)
        );
        assert_eq!(
            a.check(&header(ROOT, rev), b"anything", b"\0", Access::Write),
            Ok(())
        );
        // Admin: only root; UserGet of oneself is allowed.
        let add = AuthOp::RoleAdd(pb::AuthRoleAddRequest { name: "x".into() });
        assert_eq!(
            apply(&mut a, Some(&u), add),
            Err(rpctypes::PERMISSION_DENIED)
        );
        assert!(apply(
            &mut a,
            Some(&u),
            AuthOp::UserGet(pb::AuthUserGetRequest { name: "u".into() })
        )
        .is_ok());
        assert_eq!(
            apply(
                &mut a,
                Some(&u),
                AuthOp::UserGet(pb::AuthUserGetRequest { name: ROOT.into() })
            ),
            Err(rpctypes::PERMISSION_DENIED)
        );
        assert!(apply(
            &mut a,
            Some(&u),
            AuthOp::RoleGet(pb::AuthRoleGetRequest { role: "r".into() })
        )
        .is_ok());
        assert_eq!(
            apply(
                &mut a,
                Some(&header("", 0)),
                AuthOp::UserList(Default::default())
            ),
            Err(rpctypes::USER_EMPTY)
        );
        // Root cannot be deleted nor lose its role while enabled.
        let root = header(ROOT, a.revision());
        assert_eq!(
            apply(
                &mut a,
                Some(&root),
                AuthOp::UserDelete(pb::AuthUserDeleteRequest { name: ROOT.into() })
            ),
            Err(rpctypes::INVALID_AUTH_MGMT)
        );
        // Deleting a role takes it from its users.
        apply(
            &mut a,
            Some(&root),
            AuthOp::RoleDelete(pb::AuthRoleDeleteRequest { role: "r".into() }),
        )
        .unwrap();
        let u = header("u", a.revision());
        assert_eq!(
            a.check(&u, b"p/x", b"", Access::Read),
            Err(rpctypes::PERMISSION_DENIED)
        );
    }

    /// A user "u" with role "r" holding `perms`, auth enabled; returns u's header.
    fn user_with_perms(a: &mut AuthRecords, perms: &[(i32, &[u8], &[u8])]) -> AuthHeader {
        user(a, ROOT);
        user(a, "u");
        let grant = |user: &str, role: &str| {
            AuthOp::UserGrantRole(pb::AuthUserGrantRoleRequest {
                user: user.into(),
                role: role.into(),
            })
        };
        apply(a, None, grant(ROOT, ROOT)).unwrap();
        apply(
            a,
            None,
            AuthOp::RoleAdd(pb::AuthRoleAddRequest { name: "r".into() }),
        )
        .unwrap();
        for (perm_type, key, range_end) in perms {
            apply(
                a,
                None,
                AuthOp::RoleGrantPermission(pb::AuthRoleGrantPermissionRequest {
                    name: "r".into(),
                    perm: Some(authpb::Permission {
                        perm_type: *perm_type,
                        key: key.to_vec(),
                        range_end: range_end.to_vec(),
                    }),
                }),
            )
            .unwrap();
        }
        apply(a, None, grant("u", "r")).unwrap();
        apply(a, None, AuthOp::Enable(Default::default())).unwrap();
        header("u", a.revision())
    }

    /// Found by the `auth_check` fuzz target: a permission with an empty key was taken
    /// as starting at the smallest key (etcd 3.5.1 reads an empty key as +infinity, so it
    /// granted nothing; etcd >= 3.5.8 refuses it), and inverted or empty ranges were
    /// stored. All are refused with INVALID_AUTH_MGMT, as etcd's isValidPermissionRange.
    #[test]
    fn fuzz_regression_invalid_permission_ranges_are_refused() {
        let mut a = AuthRecords::default();
        apply(
            &mut a,
            None,
            AuthOp::RoleAdd(pb::AuthRoleAddRequest { name: "r".into() }),
        )
        .unwrap();
        let grant = |key: &[u8], range_end: &[u8]| {
            AuthOp::RoleGrantPermission(pb::AuthRoleGrantPermissionRequest {
                name: "r".into(),
                perm: Some(authpb::Permission {
                    perm_type: PermType::Readwrite as i32,
                    key: key.to_vec(),
                    range_end: range_end.to_vec(),
                }),
            })
        };
        let rev = a.revision();
        for (key, range_end) in [
            (&b""[..], &b""[..]),
            (b"", b"\0"),
            (b"", b"b"),
            (b"b", b"a"),
            (b"b", b"b"),
            (b"a\0", b"a"),
        ] {
            assert_eq!(
                apply(&mut a, None, grant(key, range_end)),
                Err(rpctypes::INVALID_AUTH_MGMT),
                "{key:?}..{range_end:?}"
            );
        }
        assert_eq!(a.revision(), rev, "a refused grant changes nothing");
        // etcd checks the range before looking up the role.
        assert_eq!(
            apply(
                &mut a,
                None,
                AuthOp::RoleGrantPermission(pb::AuthRoleGrantPermissionRequest {
                    name: "nobody".into(),
                    perm: Some(authpb::Permission::default()),
                })
            ),
            Err(rpctypes::INVALID_AUTH_MGMT)
        );
        for (key, range_end) in [
            (&b"a"[..], &b""[..]),
            (b"a", b"\0"),
            (b"\0", b"\0"),
            (b"a", b"b"),
        ] {
            assert!(
                apply(&mut a, None, grant(key, range_end)).is_ok(),
                "{key:?}..{range_end:?}"
            );
        }
    }

    /// Found by the `auth_check` fuzz target: a permission type number etcd does not
    /// know was read as READ. etcd's getMergedPerms skips it: it grants nothing.
    #[test]
    fn fuzz_regression_unknown_permission_type_grants_nothing() {
        let mut a = AuthRecords::default();
        let u = user_with_perms(
            &mut a,
            &[(-1, b"\0", b""), (3, b"a", b"\0"), (4, b"b", b"c")],
        );
        for (key, range_end) in [
            (&b"\0"[..], &b""[..]),
            (b"a", b""),
            (b"a", b"\0"),
            (b"b", b""),
        ] {
            for access in [Access::Read, Access::Write] {
                assert_eq!(
                    a.check(&u, key, range_end, access),
                    Err(rpctypes::PERMISSION_DENIED),
                    "{key:?}..{range_end:?} {access:?}"
                );
            }
        }
        // The known types still grant what they name.
        let mut a = AuthRecords::default();
        let u = user_with_perms(
            &mut a,
            &[
                (PermType::Read as i32, b"\0", b""),
                (PermType::Write as i32, b"\xff", b""),
            ],
        );
        assert_eq!(a.check(&u, b"\0", b"", Access::Read), Ok(()));
        assert_eq!(
            a.check(&u, b"\0", b"", Access::Write),
            Err(rpctypes::PERMISSION_DENIED)
        );
        assert_eq!(a.check(&u, b"\xff", b"", Access::Write), Ok(()));
    }

    #[test]
    fn records_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("t").unwrap();
        let mut a = AuthRecords::default();
        let mut ops = Vec::new();
        a.apply(
            None,
            &AuthOp::UserAdd(pb::AuthUserAddRequest {
                name: ROOT.into(),
                hashed_password: hashed(),
                ..Default::default()
            }),
            1,
            &mut ops,
            &mut Vec::new(),
        )
        .unwrap();
        a.apply(
            None,
            &AuthOp::UserGrantRole(pb::AuthUserGrantRoleRequest {
                user: ROOT.into(),
                role: ROOT.into(),
            }),
            2,
            &mut ops,
            &mut Vec::new(),
        )
        .unwrap();
        a.apply(
            None,
            &AuthOp::Enable(Default::default()),
            3,
            &mut ops,
            &mut Vec::new(),
        )
        .unwrap();
        for (k, v) in ops {
            match v {
                Some(v) => tree.insert(k, v).unwrap(),
                None => tree.remove(k).unwrap(),
            };
        }
        let b = AuthRecords::load(&tree).unwrap();
        assert!(b.enabled());
        assert_eq!(b.revision(), a.revision());
        assert_eq!(b.users, a.users);
        assert_eq!(b.check_admin(Some(&header(ROOT, 1))), Ok(()));
    }
}
