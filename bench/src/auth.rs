//! Benchmarks under auth: a launched cluster gets etcd's auth turned on before the load.
//!
//! `gauntlet bench --auth` measures what auth costs a server, as an operator who runs
//! etcd with auth would pay it: the load runs as an ordinary user, not as root (etcd
//! skips the permission check for root), so every request carries a token that is
//! looked up and every key a permission check. [`enable`] sets this up through the
//! wire on any etcd-compatible target:
//!
//! 1. user `root` with a password and the `root` role (AuthEnable refuses without);
//! 2. role [`BENCH_ROLE`] with READWRITE on every non-empty key (`"\0"` to `"\0"`:
//!    from the key on) and user [`BENCH_USER`] holding it;
//! 3. AuthEnable.
//!
//! The token type is the server's (etcd's default, `simple`, unless the target was
//! started otherwise). Passwords are fixed, not secret: the cluster is the run's own.

use gauntlet_api::authpb::{permission::Type as PermType, Permission};
use gauntlet_api::etcdserverpb as pb;
use gauntlet_harness::{Client, ClientConfig, ClientError, Credentials};

use crate::error::{BenchError, Result};

/// The user the load runs as.
pub const BENCH_USER: &str = "gauntlet-bench";
/// Its role: READWRITE on every non-empty key.
pub const BENCH_ROLE: &str = "gauntlet-bench";
const BENCH_PASSWORD: &str = "gauntlet-bench-password";
const ROOT_PASSWORD: &str = "gauntlet-bench-root";

/// Turns auth on through `admin` (a client of a cluster with auth off) and returns the
/// credentials of the unprivileged [`BENCH_USER`] the load should run as.
///
/// Fails with [`BenchError::Setup`] naming the step when the server refuses one (auth
/// already enabled, a user or role of these names already present).
pub async fn enable(admin: &ClientConfig) -> Result<Credentials> {
    let c = Client::connect(admin.clone()).await?;
    let step = |what: &'static str| move |e: ClientError| BenchError::Setup(format!("{what}: {e}"));
    for (user, password) in [("root", ROOT_PASSWORD), (BENCH_USER, BENCH_PASSWORD)] {
        c.user_add(pb::AuthUserAddRequest {
            name: user.into(),
            password: password.into(),
            ..Default::default()
        })
        .await
        .map_err(step("adding the auth user"))?;
    }
    c.role_add(pb::AuthRoleAddRequest {
        name: BENCH_ROLE.into(),
    })
    .await
    .map_err(step("adding the bench role"))?;
    c.role_grant_permission(pb::AuthRoleGrantPermissionRequest {
        name: BENCH_ROLE.into(),
        perm: Some(Permission {
            perm_type: PermType::Readwrite as i32,
            key: b"\0".to_vec(),
            range_end: b"\0".to_vec(),
        }),
    })
    .await
    .map_err(step("granting the bench role its permission"))?;
    for (user, role) in [("root", "root"), (BENCH_USER, BENCH_ROLE)] {
        c.user_grant_role(pb::AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        })
        .await
        .map_err(step("granting a role"))?;
    }
    c.auth_enable(pb::AuthEnableRequest {})
        .await
        .map_err(step("enabling auth"))?;
    Ok(Credentials {
        user: BENCH_USER.into(),
        password: BENCH_PASSWORD.into(),
    })
}
