//! Auth: users, roles, permissions (key, range, prefix), enable/disable, root,
//! tokens, and permission denied on each RPC.
//!
//! Management cases that do not enable auth run on the shared cluster with user and
//! role names derived from the case prefix. Cases that enable auth get a fresh
//! cluster each.

use gauntlet_api::authpb::{permission::Type as PermType, Permission};
use gauntlet_api::etcdserverpb::{self as pb, kv_client::KvClient};
use gauntlet_api::rpctypes as E;
use gauntlet_harness::Client;

use super::{doc, put_op};
use crate::case::{case, ensure, eq, err_is, failure, ok, Case, Ctx, Failure, Needs, Versions};

const ROOT_PW: &str = "root-pw";
const USER_PW: &str = "user-pw";

/// A user or role name unique to the case.
fn name(ctx: &Ctx, what: &str) -> String {
    let mut h: u64 = 1469598103934665603;
    for b in ctx.prefix.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(1099511628211);
    }
    format!("g{h:x}-{what}")
}

async fn user_add(c: &Client, user: &str, pw: &str) -> Result<(), Failure> {
    let req = pb::AuthUserAddRequest {
        name: user.into(),
        password: pw.into(),
        ..Default::default()
    };
    ok(&req, c.user_add(req.clone()).await).map(|_| ())
}

async fn role_add(c: &Client, role: &str) -> Result<(), Failure> {
    let req = pb::AuthRoleAddRequest { name: role.into() };
    ok(&req, c.role_add(req.clone()).await).map(|_| ())
}

async fn grant_role(c: &Client, user: &str, role: &str) -> Result<(), Failure> {
    let req = pb::AuthUserGrantRoleRequest {
        user: user.into(),
        role: role.into(),
    };
    ok(&req, c.user_grant_role(req.clone()).await).map(|_| ())
}

async fn grant_perm(
    c: &Client,
    role: &str,
    t: PermType,
    key: Vec<u8>,
    range_end: Vec<u8>,
) -> Result<(), Failure> {
    let req = pb::AuthRoleGrantPermissionRequest {
        name: role.into(),
        perm: Some(Permission {
            perm_type: t as i32,
            key,
            range_end,
        }),
    };
    ok(&req, c.role_grant_permission(req.clone()).await).map(|_| ())
}

/// Creates root (with the root role) and enables auth; returns a root client.
async fn enable(ctx: &Ctx) -> Result<Client, Failure> {
    user_add(&ctx.client, "root", ROOT_PW).await?;
    grant_role(&ctx.client, "root", "root").await?;
    ok(
        &pb::AuthEnableRequest {},
        ctx.client.auth_enable(pb::AuthEnableRequest {}).await,
    )?;
    ctx.login("root", ROOT_PW).await
}

/// Enables auth and creates user `u` with role `r` holding one permission; returns (root, user) clients.
async fn with_user(
    ctx: &Ctx,
    t: PermType,
    key: Vec<u8>,
    range_end: Vec<u8>,
) -> Result<(Client, Client), Failure> {
    let root = enable(ctx).await?;
    user_add(&root, "u", USER_PW).await?;
    role_add(&root, "r").await?;
    grant_perm(&root, "r", t, key, range_end).await?;
    grant_role(&root, "u", "r").await?;
    let user = ctx.login("u", USER_PW).await?;
    Ok((root, user))
}

fn put_req(key: Vec<u8>) -> pb::PutRequest {
    pb::PutRequest {
        key,
        value: b"v".to_vec(),
        ..Default::default()
    }
}

fn range_req(key: Vec<u8>, range_end: Vec<u8>) -> pb::RangeRequest {
    pb::RangeRequest {
        key,
        range_end,
        ..Default::default()
    }
}

fn fresh(c: Case) -> Case {
    c.needs(Needs::Fresh(1))
}

pub fn cases() -> Vec<Case> {
    let mut v = management();
    v.extend(enabled());
    v.extend(permissions());
    v.extend(advisories());
    v.extend(tokens());
    v
}

/// A Range carrying exactly `token` (no client-side refresh), on the first endpoint.
async fn range_with_token(
    ctx: &Ctx,
    token: &str,
    req: pb::RangeRequest,
) -> Result<Result<pb::RangeResponse, tonic::Status>, Failure> {
    let url = ctx.config.endpoints[0].clone();
    let url = if url.contains("://") {
        url
    } else {
        format!("http://{url}")
    };
    let ch = tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| failure(&"connect", "a channel", e.to_string()))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| failure(&"connect", "a channel", e.to_string()))?;
    let mut r = tonic::Request::new(req);
    let value = tonic::metadata::MetadataValue::try_from(token)
        .map_err(|e| failure(&"token", "an ASCII token", e.to_string()))?;
    r.metadata_mut().insert("token", value);
    r.set_timeout(std::time::Duration::from_secs(5));
    Ok(KvClient::new(ch)
        .range(r)
        .await
        .map(tonic::Response::into_inner))
}

/// Expects `got` to be the error `want`.
fn status_is(
    req: &impl std::fmt::Debug,
    got: Result<pb::RangeResponse, tonic::Status>,
    want: gauntlet_api::rpctypes::EtcdError,
) -> Result<(), Failure> {
    match got {
        Ok(r) => Err(failure(
            req,
            format!("{:?}: {:?}", want.code, want.message),
            format!("success ({} keys)", r.kvs.len()),
        )),
        Err(s) if want.matches(&s) => Ok(()),
        Err(s) => Err(failure(
            req,
            format!("{:?}: {:?}", want.code, want.message),
            format!("{:?}: {:?}", s.code(), s.message()),
        )),
    }
}

/// Cases from etcd's security advisories: what a user without a permission must not be
/// able to do. Releases before the fixes fail them (see the known-issue ledger).
fn advisories() -> Vec<Case> {
    vec![
        fresh(case("auth.perm.txn_nested_denied", "A txn nested in a txn is checked like the outer one: a write the user may not do is 'permission denied' (CVE-2026-33343).", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Readwrite, ctx.key("k"), vec![]).await?;
            let inner = pb::TxnRequest { success: vec![put_op(ctx.key("other"), "v")], ..Default::default() };
            let req = pb::TxnRequest { success: vec![pb::RequestOp { request: Some(pb::request_op::Request::RequestTxn(inner)) }], ..Default::default() };
            denied(&req, u.txn(req.clone()).await)
        })),
        fresh(case("auth.perm.put_prev_kv_needs_read", "A put asking for prev_kv needs READ too: with WRITE only it is 'permission denied'.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Write, ctx.key("k"), vec![]).await?;
            let req = pb::PutRequest { prev_kv: true, ..put_req(ctx.key("k")) };
            denied(&req, u.put_request(req.clone()).await)
        })),
        fresh(case("auth.perm.txn_put_prev_kv_needs_read", "A put with prev_kv inside a txn needs READ too: with WRITE only it is 'permission denied' (etcd PR 21682).", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Write, ctx.key("k"), vec![]).await?;
            let put = pb::PutRequest { prev_kv: true, ..put_req(ctx.key("k")) };
            let req = pb::TxnRequest { success: vec![pb::RequestOp { request: Some(pb::request_op::Request::RequestPut(put)) }], ..Default::default() };
            denied(&req, u.txn(req.clone()).await)
        })),
        fresh(case("auth.perm.watch_from_key_denied", "A READ permission on one key does not allow watching every key from it on (range_end \\0): the watch is canceled with the permission-denied reason (GHSA-xg4h-6gfc-h4m8).", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Read, ctx.key("k"), vec![]).await?;
            let req = pb::WatchCreateRequest { key: ctx.key("k"), range_end: vec![0], ..Default::default() };
            let (_, r) = ok(&req, u.watch(req.clone()).await)?;
            eq(&req, "(canceled, cancel_reason)", (true, E::PERMISSION_DENIED.go_error_string()), (r.canceled, r.cancel_reason))
        })),
        fresh(case("auth.admin.compact_denied", "A non-root user cannot compact: 'permission denied' (CVE-2026-33413).", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Readwrite, ctx.key("k"), vec![]).await?;
            let req = pb::CompactionRequest { revision: 1, physical: false };
            denied(&req, u.compact(req).await)
        })),
        fresh(case("auth.admin.alarm_denied", "A non-root user cannot list or change alarms: 'permission denied' (CVE-2026-33413).", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Readwrite, ctx.key("k"), vec![]).await?;
            let req = pb::AlarmRequest { action: pb::alarm_request::AlarmAction::Get as i32, member_id: 0, alarm: pb::AlarmType::None as i32 };
            denied(&req, u.alarm(req).await)
        })),
        fresh(case("auth.enable.unauthenticated_lease_grant", "With auth enabled, a lease grant without credentials fails with 'user name is empty' (CVE-2026-33413).", doc::RBAC, |ctx| async move {
            enable(&ctx).await?;
            let anon = ctx.anonymous().await?;
            let req = pb::LeaseGrantRequest { ttl: 60, id: 0 };
            err_is(&req, anon.lease_grant(req).await, E::USER_EMPTY)
        })),
    ]
}

/// Tokens: when they stop working.
fn tokens() -> Vec<Case> {
    vec![
        fresh(case("auth.token.password_change_invalidates", "Changing a user's password revokes the tokens it had: the old token is 'invalid auth token'.", doc::RBAC, |ctx| async move {
            let (root, u) = with_user(&ctx, PermType::Read, ctx.key("k"), vec![]).await?;
            let old = u.auth_token().ok_or_else(|| failure(&"login", "a token", "none"))?;
            let req = range_req(ctx.key("k"), vec![]);
            range_with_token(&ctx, &old, req.clone()).await?.map_err(|s| failure(&req, "the token works before the change", format!("{:?}: {:?}", s.code(), s.message())))?;
            let ch = pb::AuthUserChangePasswordRequest { name: "u".into(), password: "another-pw".into(), ..Default::default() };
            ok(&ch, root.user_change_password(ch.clone()).await)?;
            status_is(&"user change-password u; range with the old token", range_with_token(&ctx, &old, req).await?, E::INVALID_AUTH_TOKEN)
        })),
        fresh(case("auth.token.disable_invalidates", "Disabling auth revokes every simple token: a request with one is 'invalid auth token'.", doc::RBAC, |ctx| async move {
            let root = enable(&ctx).await?;
            let old = root.auth_token().ok_or_else(|| failure(&"login", "a token", "none"))?;
            ok(&"auth disable", root.auth_disable(pb::AuthDisableRequest {}).await)?;
            status_is(&"auth disable; range with root's old token", range_with_token(&ctx, &old, range_req(ctx.key("k"), vec![])).await?, E::INVALID_AUTH_TOKEN)
        })),
        // etcd declares no gRPC error for this (every release sends its auth store's
        // ErrNoPasswordUser with code Unknown); the case holds servers to that.
        fresh(case("auth.user.no_password_cannot_authenticate", "A user added with no_password cannot authenticate with a password: code Unknown, 'auth: authentication failed, password was given for no password user'.", doc::RBAC, |ctx| async move {
            let root = enable(&ctx).await?;
            let add = pb::AuthUserAddRequest { name: "cert-only".into(), options: Some(gauntlet_api::authpb::UserAddOptions { no_password: true }), ..Default::default() };
            ok(&add, root.user_add(add.clone()).await)?;
            let anon = ctx.anonymous().await?;
            let req = pb::AuthenticateRequest { name: "cert-only".into(), password: "any".into() };
            err_is(&req, anon.authenticate(req.clone()).await, E::NO_PASSWORD_USER)
        })),
        fresh(case("auth.token.jwt", "With --auth-token jwt (ES256), Authenticate returns a signed JWT naming the user and the auth revision; it works until the auth store changes, then it is 'revision of auth store is old'.", doc::RBAC, |ctx| async move {
            jwt_case(&ctx).await
        })),
    ]
}

/// Restarts the case's one-member cluster with JWT tokens (a fresh ES256 key), then
/// checks a token's claims, that it works, and that an auth change makes it old.
async fn jwt_case(ctx: &Ctx) -> Result<(), Failure> {
    use base64::Engine as _;
    let cluster = ctx.cluster()?.clone();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| failure(&"generate an ES256 key", "a key", e.to_string()))?;
    let dir = cluster.root().join("jwt");
    let write = |name: &str, pem: String| -> Result<std::path::PathBuf, Failure> {
        std::fs::create_dir_all(&dir).map_err(|e| failure(&"mkdir", "done", e.to_string()))?;
        let p = dir.join(name);
        std::fs::write(&p, pem).map_err(|e| failure(&"write key", "written", e.to_string()))?;
        Ok(p)
    };
    let (public, private) = (
        write("pub.pem", key.public_key_pem())?,
        write("priv.pem", key.serialize_pem())?,
    );
    let flag = format!(
        "--auth-token=jwt,pub-key={},priv-key={},sign-method=ES256",
        public.display(),
        private.display()
    );
    cluster
        .restart_with_flags(0, std::slice::from_ref(&flag))
        .map_err(|e| failure(&flag, "the member restarts", e.to_string()))?;
    cluster
        .wait_ready(std::time::Duration::from_secs(30))
        .await
        .map_err(|e| failure(&flag, "the member serves", e.to_string()))?;
    let root = enable(ctx).await?;
    let token = root
        .auth_token()
        .ok_or_else(|| failure(&"login", "a token", "none"))?;
    let parts: Vec<&str> = token.split('.').collect();
    ensure(
        &"Authenticate(root)",
        parts.len() == 3,
        "a JWT (three dot-separated parts)",
        &token,
    )?;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1].trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .ok_or_else(|| failure(&"Authenticate(root)", "a JSON claims part", parts[1]))?;
    eq(
        &"JWT claims",
        "username",
        Some("root"),
        claims.get("username").and_then(|v| v.as_str()),
    )?;
    ensure(
        &"JWT claims",
        claims
            .get("revision")
            .and_then(serde_json::Value::as_u64)
            .is_some()
            && claims.get("exp").is_some(),
        "revision and exp claims",
        &claims,
    )?;
    let req = range_req(ctx.key("k"), vec![]);
    range_with_token(ctx, &token, req.clone())
        .await?
        .map_err(|s| {
            failure(
                &req,
                "the JWT works",
                format!("{:?}: {:?}", s.code(), s.message()),
            )
        })?;
    role_add(&root, "another-role").await?;
    status_is(
        &"role add; range with the JWT from before",
        range_with_token(ctx, &token, req).await?,
        E::AUTH_OLD_REVISION,
    )
}

fn management() -> Vec<Case> {
    vec![
        case("auth.user.add_and_get", "A new user exists with no roles.", doc::RBAC, |ctx| async move {
            let u = name(&ctx, "u");
            user_add(&ctx.client, &u, USER_PW).await?;
            let req = pb::AuthUserGetRequest { name: u };
            let r = ok(&req, ctx.client.user_get(req.clone()).await)?;
            eq(&req, "roles", Vec::<String>::new(), r.roles)
        }),
        case("auth.user.add_duplicate", "Adding an existing user fails with 'user name already exists'.", doc::ERRORS, |ctx| async move {
            let u = name(&ctx, "u");
            user_add(&ctx.client, &u, USER_PW).await?;
            let req = pb::AuthUserAddRequest { name: u, password: USER_PW.into(), ..Default::default() };
            err_is(&req, ctx.client.user_add(req.clone()).await, E::USER_ALREADY_EXIST)
        }),
        case("auth.user.add_empty_name", "Adding a user with an empty name fails with 'user name is empty'.", doc::ERRORS, |ctx| async move {
            let req = pb::AuthUserAddRequest { name: String::new(), password: USER_PW.into(), ..Default::default() };
            err_is(&req, ctx.client.user_add(req.clone()).await, E::USER_EMPTY)
        }),
        case("auth.user.get_unknown", "Getting an unknown user fails with 'user name not found'.", doc::ERRORS, |ctx| async move {
            let req = pb::AuthUserGetRequest { name: name(&ctx, "nobody") };
            err_is(&req, ctx.client.user_get(req.clone()).await, E::USER_NOT_FOUND)
        }),
        case("auth.user.delete_unknown", "Deleting an unknown user fails with 'user name not found'.", doc::ERRORS, |ctx| async move {
            let req = pb::AuthUserDeleteRequest { name: name(&ctx, "nobody") };
            err_is(&req, ctx.client.user_delete(req.clone()).await, E::USER_NOT_FOUND)
        }),
        case("auth.user.delete", "A deleted user is gone.", doc::RBAC, |ctx| async move {
            let u = name(&ctx, "u");
            user_add(&ctx.client, &u, USER_PW).await?;
            let d = pb::AuthUserDeleteRequest { name: u.clone() };
            ok(&d, ctx.client.user_delete(d.clone()).await)?;
            let req = pb::AuthUserGetRequest { name: u };
            err_is(&req, ctx.client.user_get(req.clone()).await, E::USER_NOT_FOUND)
        }),
        case("auth.user.list_contains", "UserList lists an added user.", doc::RBAC, |ctx| async move {
            let u = name(&ctx, "u");
            user_add(&ctx.client, &u, USER_PW).await?;
            let r = ok(&"user list", ctx.client.user_list(pb::AuthUserListRequest {}).await)?;
            ensure(&"user add; user list", r.users.contains(&u), format!("{u} listed"), r.users.len())
        }),
        case("auth.user.grant_role_shown", "A granted role shows in UserGet.", doc::RBAC, |ctx| async move {
            let (u, r) = (name(&ctx, "u"), name(&ctx, "r"));
            user_add(&ctx.client, &u, USER_PW).await?;
            role_add(&ctx.client, &r).await?;
            grant_role(&ctx.client, &u, &r).await?;
            let req = pb::AuthUserGetRequest { name: u };
            let got = ok(&req, ctx.client.user_get(req.clone()).await)?;
            eq(&req, "roles", vec![r], got.roles)
        }),
        case("auth.user.grant_unknown_role", "Granting a role that does not exist fails with 'role name not found'.", doc::ERRORS, |ctx| async move {
            let u = name(&ctx, "u");
            user_add(&ctx.client, &u, USER_PW).await?;
            let req = pb::AuthUserGrantRoleRequest { user: u, role: name(&ctx, "norole") };
            err_is(&req, ctx.client.user_grant_role(req.clone()).await, E::ROLE_NOT_FOUND)
        }),
        case("auth.user.grant_role_unknown_user", "Granting a role to an unknown user fails with 'user name not found'.", doc::ERRORS, |ctx| async move {
            let r = name(&ctx, "r");
            role_add(&ctx.client, &r).await?;
            let req = pb::AuthUserGrantRoleRequest { user: name(&ctx, "nobody"), role: r };
            err_is(&req, ctx.client.user_grant_role(req.clone()).await, E::USER_NOT_FOUND)
        }),
        case("auth.user.revoke_role_not_granted", "Revoking a role the user lacks fails with 'role is not granted to the user'.", doc::ERRORS, |ctx| async move {
            let (u, r) = (name(&ctx, "u"), name(&ctx, "r"));
            user_add(&ctx.client, &u, USER_PW).await?;
            role_add(&ctx.client, &r).await?;
            let req = pb::AuthUserRevokeRoleRequest { name: u, role: r };
            err_is(&req, ctx.client.user_revoke_role(req.clone()).await, E::ROLE_NOT_GRANTED)
        }),
        case("auth.user.revoke_role", "A revoked role no longer shows in UserGet.", doc::RBAC, |ctx| async move {
            let (u, r) = (name(&ctx, "u"), name(&ctx, "r"));
            user_add(&ctx.client, &u, USER_PW).await?;
            role_add(&ctx.client, &r).await?;
            grant_role(&ctx.client, &u, &r).await?;
            let req = pb::AuthUserRevokeRoleRequest { name: u.clone(), role: r };
            ok(&req, ctx.client.user_revoke_role(req.clone()).await)?;
            let got = ok(&req, ctx.client.user_get(pb::AuthUserGetRequest { name: u }).await)?;
            eq(&req, "roles", Vec::<String>::new(), got.roles)
        }),
        case("auth.user.change_password_unknown", "Changing the password of an unknown user fails with 'user name not found'.", doc::ERRORS, |ctx| async move {
            let req = pb::AuthUserChangePasswordRequest { name: name(&ctx, "nobody"), password: "x".into(), ..Default::default() };
            err_is(&req, ctx.client.user_change_password(req.clone()).await, E::USER_NOT_FOUND)
        }),
        case("auth.role.add_and_get", "A new role exists with no permissions.", doc::RBAC, |ctx| async move {
            let r = name(&ctx, "r");
            role_add(&ctx.client, &r).await?;
            let req = pb::AuthRoleGetRequest { role: r };
            let got = ok(&req, ctx.client.role_get(req.clone()).await)?;
            eq(&req, "perms", 0, got.perm.len())
        }),
        case("auth.role.add_duplicate", "Adding an existing role fails with 'role name already exists'.", doc::ERRORS, |ctx| async move {
            let r = name(&ctx, "r");
            role_add(&ctx.client, &r).await?;
            let req = pb::AuthRoleAddRequest { name: r };
            err_is(&req, ctx.client.role_add(req.clone()).await, E::ROLE_ALREADY_EXIST)
        }),
        case("auth.role.add_empty", "Adding a role with an empty name fails with 'role name is empty'.", doc::ERRORS, |ctx| async move {
            let req = pb::AuthRoleAddRequest { name: String::new() };
            err_is(&req, ctx.client.role_add(req.clone()).await, E::ROLE_EMPTY)
        }),
        case("auth.role.get_unknown", "Getting an unknown role fails with 'role name not found'.", doc::ERRORS, |ctx| async move {
            let req = pb::AuthRoleGetRequest { role: name(&ctx, "norole") };
            err_is(&req, ctx.client.role_get(req.clone()).await, E::ROLE_NOT_FOUND)
        }),
        case("auth.role.delete_unknown", "Deleting an unknown role fails with 'role name not found'.", doc::ERRORS, |ctx| async move {
            let req = pb::AuthRoleDeleteRequest { role: name(&ctx, "norole") };
            err_is(&req, ctx.client.role_delete(req.clone()).await, E::ROLE_NOT_FOUND)
        }),
        case("auth.role.delete", "A deleted role is gone.", doc::RBAC, |ctx| async move {
            let r = name(&ctx, "r");
            role_add(&ctx.client, &r).await?;
            let d = pb::AuthRoleDeleteRequest { role: r.clone() };
            ok(&d, ctx.client.role_delete(d.clone()).await)?;
            let req = pb::AuthRoleGetRequest { role: r };
            err_is(&req, ctx.client.role_get(req.clone()).await, E::ROLE_NOT_FOUND)
        }),
        case("auth.role.delete_removes_from_user", "Deleting a role removes it from the users holding it.", doc::RBAC, |ctx| async move {
            let (u, r) = (name(&ctx, "u"), name(&ctx, "r"));
            user_add(&ctx.client, &u, USER_PW).await?;
            role_add(&ctx.client, &r).await?;
            grant_role(&ctx.client, &u, &r).await?;
            let d = pb::AuthRoleDeleteRequest { role: r };
            ok(&d, ctx.client.role_delete(d.clone()).await)?;
            let got = ok(&d, ctx.client.user_get(pb::AuthUserGetRequest { name: u }).await)?;
            eq(&d, "user's roles", Vec::<String>::new(), got.roles)
        }),
        case("auth.role.list_contains", "RoleList lists an added role.", doc::RBAC, |ctx| async move {
            let r = name(&ctx, "r");
            role_add(&ctx.client, &r).await?;
            let got = ok(&"role list", ctx.client.role_list(pb::AuthRoleListRequest {}).await)?;
            ensure(&"role add; role list", got.roles.contains(&r), format!("{r} listed"), got.roles.len())
        }),
        case("auth.role.grant_permission_shown", "A granted permission shows in RoleGet with its type, key and range_end.", doc::RBAC, |ctx| async move {
            let r = name(&ctx, "r");
            role_add(&ctx.client, &r).await?;
            grant_perm(&ctx.client, &r, PermType::Readwrite, ctx.key("a"), ctx.key("c")).await?;
            let req = pb::AuthRoleGetRequest { role: r };
            let got = ok(&req, ctx.client.role_get(req.clone()).await)?;
            eq(&req, "perms", vec![(PermType::Readwrite as i32, ctx.key("a"), ctx.key("c"))], got.perm.iter().map(|p| (p.perm_type, p.key.clone(), p.range_end.clone())).collect())
        }),
        case("auth.role.grant_permission_unknown_role", "Granting a permission to an unknown role fails with 'role name not found'.", doc::ERRORS, |ctx| async move {
            let req = pb::AuthRoleGrantPermissionRequest { name: name(&ctx, "norole"), perm: Some(Permission { perm_type: PermType::Read as i32, key: ctx.key("a"), range_end: vec![] }) };
            err_is(&req, ctx.client.role_grant_permission(req.clone()).await, E::ROLE_NOT_FOUND)
        }),
        // Fresh: etcd 3.4 crashes on this request (see the known-issue ledger).
        fresh(case("auth.role.grant_permission_missing", "Granting without a permission fails with 'permission not given'.", doc::ERRORS, |ctx| async move {
            let r = name(&ctx, "r");
            role_add(&ctx.client, &r).await?;
            let req = pb::AuthRoleGrantPermissionRequest { name: r, perm: None };
            err_is(&req, ctx.client.role_grant_permission(req.clone()).await, E::PERMISSION_NOT_GIVEN)
        })),
        case("auth.role.grant_permission_empty_range", "Granting a permission on an empty range (range_end not above the key) fails with 'invalid auth management' instead of storing a permission that means nothing (etcd PR 15432).", doc::ERRORS, |ctx| async move {
            let r = name(&ctx, "r");
            role_add(&ctx.client, &r).await?;
            let req = pb::AuthRoleGrantPermissionRequest { name: r, perm: Some(Permission { perm_type: PermType::Read as i32, key: ctx.key("b"), range_end: ctx.key("a") }) };
            err_is(&req, ctx.client.role_grant_permission(req.clone()).await, E::INVALID_AUTH_MGMT)
        }),
        case("auth.role.revoke_permission_not_granted", "Revoking a permission the role lacks fails with 'permission is not granted to the role'.", doc::ERRORS, |ctx| async move {
            let r = name(&ctx, "r");
            role_add(&ctx.client, &r).await?;
            let req = pb::AuthRoleRevokePermissionRequest { role: r, key: ctx.key("a"), range_end: vec![] };
            err_is(&req, ctx.client.role_revoke_permission(req.clone()).await, E::PERMISSION_NOT_GRANTED)
        }),
        case("auth.role.revoke_permission", "A revoked permission no longer shows in RoleGet.", doc::RBAC, |ctx| async move {
            let r = name(&ctx, "r");
            role_add(&ctx.client, &r).await?;
            grant_perm(&ctx.client, &r, PermType::Read, ctx.key("a"), vec![]).await?;
            let req = pb::AuthRoleRevokePermissionRequest { role: r.clone(), key: ctx.key("a"), range_end: vec![] };
            ok(&req, ctx.client.role_revoke_permission(req.clone()).await)?;
            let got = ok(&req, ctx.client.role_get(pb::AuthRoleGetRequest { role: r }).await)?;
            eq(&req, "perms", 0, got.perm.len())
        }),
        case("auth.role.grant_same_key_updates", "Granting again on the same key and range replaces the permission type.", doc::RBAC, |ctx| async move {
            let r = name(&ctx, "r");
            role_add(&ctx.client, &r).await?;
            grant_perm(&ctx.client, &r, PermType::Read, ctx.key("a"), vec![]).await?;
            grant_perm(&ctx.client, &r, PermType::Write, ctx.key("a"), vec![]).await?;
            let req = pb::AuthRoleGetRequest { role: r };
            let got = ok(&req, ctx.client.role_get(req.clone()).await)?;
            eq(&req, "perm types", vec![PermType::Write as i32], got.perm.iter().map(|p| p.perm_type).collect())
        }),
        case("auth.authenticate.not_enabled", "Authenticate while auth is disabled fails with 'authentication is not enabled'.", doc::ERRORS, |ctx| async move {
            let u = name(&ctx, "u");
            user_add(&ctx.client, &u, USER_PW).await?;
            let req = pb::AuthenticateRequest { name: u, password: USER_PW.into() };
            err_is(&req, ctx.client.authenticate(req.clone()).await, E::AUTH_NOT_ENABLED)
        }),
        case("auth.status.disabled", "AuthStatus reports enabled = false on a cluster without auth.", doc::GRPC, |ctx| async move {
            let r = ok(&"auth status", ctx.client.auth_status(pb::AuthStatusRequest {}).await)?;
            eq(&"auth status", "enabled", false, r.enabled)
        }).versions(Versions::SINCE_3_5),
        case("auth.disable.when_disabled", "AuthDisable when auth is already disabled succeeds.", doc::RBAC, |ctx| async move {
            ok(&"auth disable", ctx.client.auth_disable(pb::AuthDisableRequest {}).await).map(|_| ())
        }),
        case("auth.enable.no_root_user", "AuthEnable without a root user fails with 'root user does not exist'.", doc::ERRORS, |ctx| async move {
            err_is(&pb::AuthEnableRequest {}, ctx.client.auth_enable(pb::AuthEnableRequest {}).await, E::ROOT_USER_NOT_EXIST)
        }).needs(Needs::Fresh(1)),
    ]
}

fn enabled() -> Vec<Case> {
    vec![
        fresh(case("auth.enable.root_without_root_role", "AuthEnable with a root user lacking the root role fails with 'root user does not have root role'.", doc::ERRORS, |ctx| async move {
            user_add(&ctx.client, "root", ROOT_PW).await?;
            err_is(&pb::AuthEnableRequest {}, ctx.client.auth_enable(pb::AuthEnableRequest {}).await, E::ROOT_ROLE_NOT_EXIST)
        })),
        fresh(case("auth.enable.status_enabled", "After AuthEnable, AuthStatus reports enabled = true.", doc::GRPC, |ctx| async move {
            let root = enable(&ctx).await?;
            let r = ok(&"auth status", root.auth_status(pb::AuthStatusRequest {}).await)?;
            eq(&"auth enable; auth status", "enabled", true, r.enabled)
        }).versions(Versions::SINCE_3_5)),
        fresh(case("auth.enable.root_can_write", "With auth enabled, root reads and writes any key.", doc::RBAC, |ctx| async move {
            let root = enable(&ctx).await?;
            let req = put_req(ctx.key("k"));
            ok(&req, root.put_request(req.clone()).await)?;
            let got = ok(&req, root.get(ctx.key("k")).await)?;
            eq(&req, "count", 1, got.count)
        })),
        fresh(case("auth.enable.unauthenticated_put", "With auth enabled, a put without a token fails with 'user name is empty'.", doc::ERRORS, |ctx| async move {
            enable(&ctx).await?;
            let anon = ctx.anonymous().await?;
            let req = put_req(ctx.key("k"));
            err_is(&req, anon.put_request(req.clone()).await, E::USER_EMPTY)
        })),
        fresh(case("auth.enable.unauthenticated_range", "With auth enabled, a range without a token fails with 'user name is empty'.", doc::ERRORS, |ctx| async move {
            enable(&ctx).await?;
            let anon = ctx.anonymous().await?;
            let req = range_req(ctx.key("k"), vec![]);
            err_is(&req, anon.range(req.clone()).await, E::USER_EMPTY)
        })),
        fresh(case("auth.authenticate.wrong_password", "Authenticate with a wrong password fails with 'authentication failed, invalid user ID or password'.", doc::ERRORS, |ctx| async move {
            enable(&ctx).await?;
            let anon = ctx.anonymous().await?;
            let req = pb::AuthenticateRequest { name: "root".into(), password: "wrong".into() };
            err_is(&req, anon.authenticate(req.clone()).await, E::AUTH_FAILED)
        })),
        fresh(case("auth.authenticate.unknown_user", "Authenticate as an unknown user fails with 'authentication failed, invalid user ID or password'.", doc::ERRORS, |ctx| async move {
            enable(&ctx).await?;
            let anon = ctx.anonymous().await?;
            let req = pb::AuthenticateRequest { name: "nobody".into(), password: "x".into() };
            err_is(&req, anon.authenticate(req.clone()).await, E::AUTH_FAILED)
        })),
        fresh(case("auth.authenticate.token", "Authenticate with the right password returns a non-empty token.", doc::RBAC, |ctx| async move {
            enable(&ctx).await?;
            let anon = ctx.anonymous().await?;
            let req = pb::AuthenticateRequest { name: "root".into(), password: ROOT_PW.into() };
            let r = ok(&req, anon.authenticate(req.clone()).await)?;
            ensure(&req, !r.token.is_empty(), "a token", r.token.len())
        })),
        fresh(case("auth.token.invalid", "A request with a token the server never issued fails with 'invalid auth token'.", doc::ERRORS, |ctx| async move {
            enable(&ctx).await?;
            let url = ctx.config.endpoints[0].clone();
            let url = if url.contains("://") { url } else { format!("http://{url}") };
            let ch = tonic::transport::Endpoint::from_shared(url).map_err(|e| failure(&"connect", "a channel", e.to_string()))?
                .connect().await.map_err(|e| failure(&"connect", "a channel", e.to_string()))?;
            let req = range_req(ctx.key("k"), vec![]);
            let mut r = tonic::Request::new(req.clone());
            r.metadata_mut().insert("token", tonic::metadata::MetadataValue::from_static("bogus.token"));
            r.set_timeout(std::time::Duration::from_secs(5));
            match KvClient::new(ch).range(r).await {
                Ok(_) => Err(failure(&req, "Unauthenticated: invalid auth token", "success")),
                Err(s) if E::INVALID_AUTH_TOKEN.matches(&s) => Ok(()),
                Err(s) => Err(failure(&req, format!("{:?}: {:?}", E::INVALID_AUTH_TOKEN.code, E::INVALID_AUTH_TOKEN.message), format!("{:?}: {:?}", s.code(), s.message()))),
            }
        })),
        fresh(case("auth.user.root_delete_refused", "Deleting root while auth is enabled fails with 'invalid auth management'.", doc::ERRORS, |ctx| async move {
            let root = enable(&ctx).await?;
            let req = pb::AuthUserDeleteRequest { name: "root".into() };
            err_is(&req, root.user_delete(req.clone()).await, E::INVALID_AUTH_MGMT)
        })),
        fresh(case("auth.user.root_revoke_root_role_refused", "Revoking the root role from root while auth is enabled fails with 'invalid auth management'.", doc::ERRORS, |ctx| async move {
            let root = enable(&ctx).await?;
            let req = pb::AuthUserRevokeRoleRequest { name: "root".into(), role: "root".into() };
            err_is(&req, root.user_revoke_role(req.clone()).await, E::INVALID_AUTH_MGMT)
        })),
        fresh(case("auth.disable.then_anonymous_ok", "After root disables auth, requests without a token work again.", doc::RBAC, |ctx| async move {
            let root = enable(&ctx).await?;
            ok(&"auth disable", root.auth_disable(pb::AuthDisableRequest {}).await)?;
            let anon = ctx.anonymous().await?;
            let req = put_req(ctx.key("k"));
            ok(&req, anon.put_request(req.clone()).await).map(|_| ())
        })),
        fresh(case("auth.user.change_password", "After a password change the old password fails and the new one works.", doc::RBAC, |ctx| async move {
            let root = enable(&ctx).await?;
            user_add(&root, "u", USER_PW).await?;
            let req = pb::AuthUserChangePasswordRequest { name: "u".into(), password: "new-pw".into(), ..Default::default() };
            ok(&req, root.user_change_password(req.clone()).await)?;
            let anon = ctx.anonymous().await?;
            let old = pb::AuthenticateRequest { name: "u".into(), password: USER_PW.into() };
            err_is(&old, anon.authenticate(old.clone()).await, E::AUTH_FAILED)?;
            let new = pb::AuthenticateRequest { name: "u".into(), password: "new-pw".into() };
            ok(&new, anon.authenticate(new.clone()).await).map(|_| ())
        })),
        fresh(case("auth.enable.twice_ok", "AuthEnable when already enabled succeeds.", doc::RBAC, |ctx| async move {
            let root = enable(&ctx).await?;
            ok(&"auth enable again", root.auth_enable(pb::AuthEnableRequest {}).await).map(|_| ())
        })),
        fresh(case("auth.user.root_role_grants_all", "A user granted the root role may write any key.", doc::RBAC, |ctx| async move {
            let root = enable(&ctx).await?;
            user_add(&root, "admin", USER_PW).await?;
            grant_role(&root, "admin", "root").await?;
            let admin = ctx.login("admin", USER_PW).await?;
            let req = put_req(ctx.key("anything"));
            ok(&req, admin.put_request(req.clone()).await).map(|_| ())
        })),
    ]
}

fn denied<T: std::fmt::Debug>(
    req: &impl std::fmt::Debug,
    r: Result<T, gauntlet_harness::ClientError>,
) -> Result<(), Failure> {
    err_is(req, r, E::PERMISSION_DENIED)
}

fn permissions() -> Vec<Case> {
    vec![
        fresh(case("auth.perm.read_allows_range", "A READ permission on a key allows ranging it.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Read, ctx.key("k"), vec![]).await?;
            let req = range_req(ctx.key("k"), vec![]);
            ok(&req, u.range(req.clone()).await).map(|_| ())
        })),
        fresh(case("auth.perm.read_denies_put", "A READ permission does not allow a put: 'permission denied'.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Read, ctx.key("k"), vec![]).await?;
            let req = put_req(ctx.key("k"));
            denied(&req, u.put_request(req.clone()).await)
        })),
        fresh(case("auth.perm.read_denies_delete", "A READ permission does not allow a delete: 'permission denied'.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Read, ctx.key("k"), vec![]).await?;
            let req = pb::DeleteRangeRequest { key: ctx.key("k"), ..Default::default() };
            denied(&req, u.delete_range(req.clone()).await)
        })),
        fresh(case("auth.perm.write_allows_put", "A WRITE permission on a key allows putting it.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Write, ctx.key("k"), vec![]).await?;
            let req = put_req(ctx.key("k"));
            ok(&req, u.put_request(req.clone()).await).map(|_| ())
        })),
        fresh(case("auth.perm.write_denies_range", "A WRITE permission does not allow a range: 'permission denied'.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Write, ctx.key("k"), vec![]).await?;
            let req = range_req(ctx.key("k"), vec![]);
            denied(&req, u.range(req.clone()).await)
        })),
        fresh(case("auth.perm.readwrite_allows_both", "A READWRITE permission allows put, range and delete.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Readwrite, ctx.key("k"), vec![]).await?;
            let req = put_req(ctx.key("k"));
            ok(&req, u.put_request(req.clone()).await)?;
            ok(&req, u.get(ctx.key("k")).await)?;
            ok(&req, u.delete(ctx.key("k")).await).map(|_| ())
        })),
        fresh(case("auth.perm.other_key_denied", "A permission on one key does not cover another: 'permission denied'.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Readwrite, ctx.key("k"), vec![]).await?;
            let req = put_req(ctx.key("other"));
            denied(&req, u.put_request(req.clone()).await)
        })),
        fresh(case("auth.perm.prefix_inside_allowed", "A prefix permission allows every key under the prefix.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Readwrite, ctx.key("p/"), gauntlet_api::prefix_range_end(&ctx.key("p/"))).await?;
            let req = put_req(ctx.key("p/deep/key"));
            ok(&req, u.put_request(req.clone()).await).map(|_| ())
        })),
        fresh(case("auth.perm.prefix_outside_denied", "A prefix permission does not cover keys outside the prefix.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Readwrite, ctx.key("p/"), gauntlet_api::prefix_range_end(&ctx.key("p/"))).await?;
            let req = put_req(ctx.key("q"));
            denied(&req, u.put_request(req.clone()).await)
        })),
        fresh(case("auth.perm.prefix_range_allowed", "A range over exactly the permitted prefix is allowed.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Read, ctx.key("p/"), gauntlet_api::prefix_range_end(&ctx.key("p/"))).await?;
            let req = range_req(ctx.key("p/"), gauntlet_api::prefix_range_end(&ctx.key("p/")));
            ok(&req, u.range(req.clone()).await).map(|_| ())
        })),
        fresh(case("auth.perm.interval_inside", "An interval permission [a, c) allows b.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Write, ctx.key("a"), ctx.key("c")).await?;
            let req = put_req(ctx.key("b"));
            ok(&req, u.put_request(req.clone()).await).map(|_| ())
        })),
        fresh(case("auth.perm.interval_end_excluded", "An interval permission [a, c) does not allow c.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Write, ctx.key("a"), ctx.key("c")).await?;
            let req = put_req(ctx.key("c"));
            denied(&req, u.put_request(req.clone()).await)
        })),
        fresh(case("auth.perm.range_partly_outside", "A range reaching past the permitted interval is denied as a whole.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Read, ctx.key("a"), ctx.key("c")).await?;
            let req = range_req(ctx.key("a"), ctx.key("z"));
            denied(&req, u.range(req.clone()).await)
        })),
        fresh(case("auth.perm.txn_write_denied", "A txn writing a key without WRITE permission fails with 'permission denied'.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Read, ctx.key("k"), vec![]).await?;
            let req = pb::TxnRequest { success: vec![put_op(ctx.key("k"), "v")], ..Default::default() };
            denied(&req, u.txn(req.clone()).await)
        })),
        fresh(case("auth.perm.txn_compare_needs_read", "A txn comparing a key without READ permission fails with 'permission denied'.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Write, ctx.key("k"), vec![]).await?;
            let req = pb::TxnRequest { compare: vec![super::cmp(ctx.key("k"), gauntlet_api::etcdserverpb::compare::CompareResult::Equal, gauntlet_api::etcdserverpb::compare::TargetUnion::Version(0))], success: vec![put_op(ctx.key("k"), "v")], ..Default::default() };
            denied(&req, u.txn(req.clone()).await)
        })),
        fresh(case("auth.perm.txn_allowed", "A txn within the user's permissions succeeds.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Readwrite, ctx.key("k"), vec![]).await?;
            let req = pb::TxnRequest { compare: vec![super::cmp(ctx.key("k"), gauntlet_api::etcdserverpb::compare::CompareResult::Equal, gauntlet_api::etcdserverpb::compare::TargetUnion::Version(0))], success: vec![put_op(ctx.key("k"), "v")], ..Default::default() };
            let r = ok(&req, u.txn(req.clone()).await)?;
            eq(&req, "succeeded", true, r.succeeded)
        })),
        fresh(case("auth.perm.watch_denied", "A watch on a key without READ permission is canceled with the permission-denied reason.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Write, ctx.key("k"), vec![]).await?;
            let req = pb::WatchCreateRequest { key: ctx.key("k"), ..Default::default() };
            let (_, r) = ok(&req, u.watch(req.clone()).await)?;
            eq(&req, "(canceled, cancel_reason)", (true, E::PERMISSION_DENIED.go_error_string()), (r.canceled, r.cancel_reason))
        })),
        fresh(case("auth.perm.watch_allowed", "A watch within READ permission receives events.", doc::RBAC, |ctx| async move {
            let (root, u) = with_user(&ctx, PermType::Read, ctx.key("k"), vec![]).await?;
            let req = pb::WatchCreateRequest { key: ctx.key("k"), ..Default::default() };
            let (mut ws, r) = ok(&req, u.watch(req.clone()).await)?;
            ensure(&req, r.created && !r.canceled, "created", &r)?;
            ok(&"put as root", root.put(ctx.key("k"), "v").await)?;
            let ev = ok(&"watch", ws.wait_for(|r| !r.events.is_empty()).await)?;
            eq(&req, "events", 1, ev.events.len())
        })),
        fresh(case("auth.perm.revoke_takes_effect", "After a permission is revoked, the user is denied.", doc::RBAC, |ctx| async move {
            let (root, u) = with_user(&ctx, PermType::Read, ctx.key("k"), vec![]).await?;
            let req = range_req(ctx.key("k"), vec![]);
            ok(&req, u.range(req.clone()).await)?;
            let rv = pb::AuthRoleRevokePermissionRequest { role: "r".into(), key: ctx.key("k"), range_end: vec![] };
            ok(&rv, root.role_revoke_permission(rv.clone()).await)?;
            denied(&req, u.range(req.clone()).await)
        })),
        fresh(case("auth.perm.role_revoked_from_user", "After the role is revoked from the user, the user is denied.", doc::RBAC, |ctx| async move {
            let (root, u) = with_user(&ctx, PermType::Read, ctx.key("k"), vec![]).await?;
            let rv = pb::AuthUserRevokeRoleRequest { name: "u".into(), role: "r".into() };
            ok(&rv, root.user_revoke_role(rv.clone()).await)?;
            let req = range_req(ctx.key("k"), vec![]);
            denied(&req, u.range(req.clone()).await)
        })),
        fresh(case("auth.admin.user_add_denied", "A non-root user cannot add users: 'permission denied'.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Readwrite, ctx.key("k"), vec![]).await?;
            let req = pb::AuthUserAddRequest { name: "other".into(), password: "x".into(), ..Default::default() };
            denied(&req, u.user_add(req.clone()).await)
        })),
        fresh(case("auth.admin.role_add_denied", "A non-root user cannot add roles: 'permission denied'.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Readwrite, ctx.key("k"), vec![]).await?;
            let req = pb::AuthRoleAddRequest { name: "other".into() };
            denied(&req, u.role_add(req.clone()).await)
        })),
        fresh(case("auth.admin.auth_disable_denied", "A non-root user cannot disable auth: 'permission denied'.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Readwrite, ctx.key("k"), vec![]).await?;
            denied(&pb::AuthDisableRequest {}, u.auth_disable(pb::AuthDisableRequest {}).await)
        })),
        fresh(case("auth.admin.role_grant_denied", "A non-root user cannot grant permissions: 'permission denied'.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Readwrite, ctx.key("k"), vec![]).await?;
            let req = pb::AuthRoleGrantPermissionRequest { name: "r".into(), perm: Some(Permission { perm_type: PermType::Readwrite as i32, key: b"/".to_vec(), range_end: vec![0] }) };
            denied(&req, u.role_grant_permission(req.clone()).await)
        })),
        fresh(case("auth.admin.member_add_denied", "A non-root user cannot change membership: 'permission denied'.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Readwrite, ctx.key("k"), vec![]).await?;
            let req = pb::MemberAddRequest { peer_ur_ls: vec!["http://127.0.0.1:1".into()], is_learner: true };
            denied(&req, u.member_add(req.clone()).await)
        })),
        fresh(case("auth.admin.user_list_denied", "A non-root user cannot list users: 'permission denied'.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Readwrite, ctx.key("k"), vec![]).await?;
            denied(&pb::AuthUserListRequest {}, u.user_list(pb::AuthUserListRequest {}).await)
        })),
        fresh(case("auth.user.deleted_user_denied", "Deleting a user revokes its tokens: its next request is refused as an invalid token, and authenticating again fails with 'authentication failed, invalid user ID or password'.", doc::RBAC, |ctx| async move {
            let (root, u) = with_user(&ctx, PermType::Read, ctx.key("k"), vec![]).await?;
            let d = pb::AuthUserDeleteRequest { name: "u".into() };
            ok(&d, root.user_delete(d.clone()).await)?;
            // The harness client answers "invalid auth token" by authenticating once more.
            let req = range_req(ctx.key("k"), vec![]);
            err_is(&req, u.range(req.clone()).await, E::AUTH_FAILED)
        })),
        fresh(case("auth.perm.from_key", "A permission with range_end \\0 covers every key from key on.", doc::RBAC, |ctx| async move {
            let (_, u) = with_user(&ctx, PermType::Write, ctx.key("m"), vec![0]).await?;
            let req = put_req(ctx.key("zzz"));
            ok(&req, u.put_request(req.clone()).await)?;
            let below = put_req(ctx.key("a"));
            denied(&below, u.put_request(below.clone()).await)
        })),
    ]
}
