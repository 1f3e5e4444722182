//! Auth: users, roles, permissions, enabling auth, and Authenticate.
//!
//! Every RPC is one [`AuthOp`] through raft, judged on apply by
//! [`crate::state::auth::AuthRecords::apply`] (root only, except Authenticate, UserGet
//! of oneself and RoleGet of one's own role). Passwords are hashed here, by the member
//! that received them, before the proposal (only the hash is replicated);
//! Authenticate checks the password here too, against this member's state after a
//! linearizable read barrier, as etcd's `EtcdServer.Authenticate` does.

use gauntlet_api::etcdserverpb::{self as pb, auth_server::Auth};
use gauntlet_api::rpctypes;
use tonic::{Request, Response, Status};

use super::{status, Ctx};
use crate::auth::Authn;
use crate::state::auth::{AuthCommand, AuthHeader, AuthOp, AuthResponse, Authenticate};
use crate::state::{self, Command, Op};

/// How many times Authenticate checks the password again when the auth store changed
/// between the check and the applied entry.
const AUTHENTICATE_ATTEMPTS: usize = 3;

/// Auth service.
#[derive(Debug, Clone)]
pub struct AuthService(pub Ctx);

/// Fills the header of an auth response.
macro_rules! answer {
    // The caller's identity from `$request`, and the op and answer named alike.
    ($self:ident, $request:ident, $variant:ident) => {{
        let who = $self.0.who(&$request).await?;
        answer!(
            $self,
            who,
            AuthOp::$variant($request.into_inner()),
            $variant
        )
    }};
    ($self:ident, $who:expr, $op:expr, $variant:ident) => {{
        let (r, header) = $self.apply(Some($who), $op).await?;
        match r {
            AuthResponse::$variant(mut resp) => {
                resp.header = header;
                Ok(Response::new(resp))
            }
            other => Err(Status::internal(format!(
                "unexpected apply result {other:?}"
            ))),
        }
    }};
}

impl AuthService {
    /// Proposes `op` on behalf of `who` (`None`: the server itself) and answers the
    /// applied response with the header to give it.
    async fn apply(
        &self,
        who: Option<AuthHeader>,
        op: AuthOp,
    ) -> Result<(AuthResponse, Option<pb::ResponseHeader>), Status> {
        let cmd = Command {
            op: Some(Op::Auth(AuthCommand { op: Some(op) })),
            auth: who,
        };
        let a = self.0.propose_checked(cmd).await?;
        match a.outcome {
            Ok(state::Response::Auth(r)) => Ok((r, self.0.header(a.revision, a.term))),
            Ok(other) => Err(Status::internal(format!(
                "unexpected apply result {other:?}"
            ))),
            Err(e) => Err(status(e)),
        }
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        request: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        answer!(self, request, Enable)
    }

    async fn auth_disable(
        &self,
        request: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        answer!(self, request, Disable)
    }

    async fn auth_status(
        &self,
        request: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        answer!(self, request, Status)
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let req = request.into_inner();
        self.0.node.read_index().await.map_err(status)?;
        for _ in 0..AUTHENTICATE_ATTEMPTS {
            let (hash, checked_at) = {
                let st = self.0.node.read_state();
                let auth = st.auth();
                (auth.password_hash(&req.name), auth.revision())
            };
            let hash = hash.map_err(|e| {
                if e != rpctypes::AUTH_NOT_ENABLED {
                    tracing::warn!(user = %req.name, "invalid authentication was requested");
                }
                status(e)
            })?;
            if !Authn::verify_password(req.password.clone(), hash).await {
                tracing::warn!(user = %req.name, "authentication failed: wrong password");
                return Err(status(rpctypes::AUTH_FAILED));
            }
            let simple_token = if self.0.authn.is_jwt() {
                String::new()
            } else {
                Authn::simple_prefix()
            };
            let op = AuthOp::Authenticate(Authenticate {
                name: req.name.clone(),
                simple_token,
            });
            let (r, header) = self.apply(None, op).await?;
            let AuthResponse::Authenticate {
                user,
                revision,
                token,
            } = r
            else {
                return Err(Status::internal(format!("unexpected apply result {r:?}")));
            };
            if self.0.node.read_state().auth().revision() != checked_at {
                // The password may have changed since it was checked: check it again.
                continue;
            }
            let token = if self.0.authn.is_jwt() {
                self.0.authn.sign_jwt(&user, revision).map_err(status)?
            } else {
                token
            };
            return Ok(Response::new(pb::AuthenticateResponse { header, token }));
        }
        Err(status(rpctypes::AUTH_FAILED))
    }

    async fn user_add(
        &self,
        request: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        // Judged again on apply; checked first so that nobody else makes us hash.
        self.0.admin(&request).await?;
        let who = self.0.who(&request).await?;
        let mut req = request.into_inner();
        if !req.options.is_some_and(|o| o.no_password) {
            req.hashed_password = self
                .0
                .authn
                .hash_password(std::mem::take(&mut req.password))
                .await
                .map_err(status)?;
        }
        req.password.clear();
        answer!(self, who, AuthOp::UserAdd(req), UserAdd)
    }

    async fn user_get(
        &self,
        request: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        answer!(self, request, UserGet)
    }

    async fn user_list(
        &self,
        request: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        answer!(self, request, UserList)
    }

    async fn user_delete(
        &self,
        request: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        answer!(self, request, UserDelete)
    }

    async fn user_change_password(
        &self,
        request: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        self.0.admin(&request).await?;
        let who = self.0.who(&request).await?;
        let mut req = request.into_inner();
        if !req.password.is_empty() {
            req.hashed_password = self
                .0
                .authn
                .hash_password(std::mem::take(&mut req.password))
                .await
                .map_err(status)?;
        }
        answer!(
            self,
            who,
            AuthOp::UserChangePassword(req),
            UserChangePassword
        )
    }

    async fn user_grant_role(
        &self,
        request: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        answer!(self, request, UserGrantRole)
    }

    async fn user_revoke_role(
        &self,
        request: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        answer!(self, request, UserRevokeRole)
    }

    async fn role_add(
        &self,
        request: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        answer!(self, request, RoleAdd)
    }

    async fn role_get(
        &self,
        request: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        answer!(self, request, RoleGet)
    }

    async fn role_list(
        &self,
        request: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        answer!(self, request, RoleList)
    }

    async fn role_delete(
        &self,
        request: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        answer!(self, request, RoleDelete)
    }

    async fn role_grant_permission(
        &self,
        request: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        answer!(self, request, RoleGrantPermission)
    }

    async fn role_revoke_permission(
        &self,
        request: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        answer!(self, request, RoleRevokePermission)
    }
}
