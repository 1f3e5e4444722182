//! Auth at the edge of the server: who a request comes from, the tokens that say so,
//! and passwords.
//!
//! The replicated half (users, roles, permissions, the auth revision, every check) is
//! [`crate::state::auth`]. This half turns a request into an
//! [`AuthHeader`](crate::state::auth::AuthHeader) the state machine judges:
//!
//! 1. A `token` metadata entry (or the JSON gateway's `authorization` header) names the
//!    user. A simple token is `<16 random letters>.<raft index>`: every member learns it
//!    by applying that index, so a member that has not applied it yet waits (within the
//!    request's deadline) before deciding, as etcd's `isValidSimpleToken` does. A
//!    simple token stops working after `--auth-token-ttl` seconds without use, when its
//!    user is deleted or changes password, and when auth is disabled. A JWT carries the
//!    user and the auth revision it was signed at: any later auth change makes it old
//!    (`AUTH_OLD_REVISION`, and clients authenticate again), and it expires at its `exp`.
//!    A token that does not validate is `INVALID_AUTH_TOKEN`.
//! 2. Without a token, with `--client-cert-auth`, the verified client certificate's
//!    common name is the user (etcd's `AuthInfoFromTLS`).
//! 3. Otherwise the request is anonymous: revision 0, refused by every check once auth
//!    is enabled (`USER_EMPTY`).
//!
//! Passwords are hashed with bcrypt at `--bcrypt-cost` by the member that receives the
//! request; only the hash is replicated (etcd 3.5's `hashedPassword`). Authenticate
//! checks the password against the member's applied state after a linearizable read
//! barrier, then proposes only the user name and a fresh token prefix.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gauntlet_api::rpctypes::{self, EtcdError};
use rand::Rng as _;

use crate::node::NodeHandle;
use crate::state::auth::{AuthHeader, TokenEffect};

/// etcd's default `--auth-token-ttl`.
pub const DEFAULT_SIMPLE_TOKEN_TTL: Duration = Duration::from_secs(300);
/// etcd's default JWT lifetime (`ttl=` option).
const DEFAULT_JWT_TTL: Duration = Duration::from_secs(300);
/// A simple-token table sweeps expired tokens after this many assignments.
const SWEEP_EVERY_ASSIGNS: usize = 1024;
/// How often a token naming an index this member has not applied yet is looked at again.
const INDEX_POLL: Duration = Duration::from_millis(5);

/// The simple tokens a member handed out or learnt by applying Authenticate entries.
#[derive(Debug)]
pub struct SimpleTokens {
    ttl_ms: AtomicU64,
    inner: Mutex<TokenTable>,
}

#[derive(Debug, Default)]
struct TokenTable {
    /// Token → (user, last use).
    tokens: HashMap<String, (String, Instant)>,
    assigns_since_sweep: usize,
}

impl SimpleTokens {
    /// An empty table whose tokens expire after `ttl` without use.
    pub fn new(ttl: Duration) -> Self {
        SimpleTokens {
            ttl_ms: AtomicU64::new(ttl.as_millis() as u64),
            inner: Mutex::new(TokenTable::default()),
        }
    }

    /// Sets `--auth-token-ttl`.
    pub fn set_ttl(&self, ttl: Duration) {
        self.ttl_ms.store(ttl.as_millis() as u64, Ordering::Relaxed);
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed))
    }

    fn table(&self) -> std::sync::MutexGuard<'_, TokenTable> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies what an applied auth operation means for tokens.
    pub fn apply(&self, effect: TokenEffect) {
        let ttl = self.ttl();
        let mut t = self.table();
        match effect {
            TokenEffect::Assign { token, user } => {
                let now = Instant::now();
                t.tokens.insert(token, (user, now));
                t.assigns_since_sweep += 1;
                if t.assigns_since_sweep >= SWEEP_EVERY_ASSIGNS {
                    t.assigns_since_sweep = 0;
                    t.tokens
                        .retain(|_, (_, used)| now.duration_since(*used) < ttl);
                }
            }
            TokenEffect::InvalidateUser(user) => t.tokens.retain(|_, (u, _)| *u != user),
            TokenEffect::ClearAll => t.tokens.clear(),
        }
    }

    /// The user `token` names, refreshing its last use; `None` for an unknown or
    /// expired token.
    pub fn lookup(&self, token: &str) -> Option<String> {
        let ttl = self.ttl();
        let mut t = self.table();
        let now = Instant::now();
        match t.tokens.get_mut(token) {
            Some((user, used)) if now.duration_since(*used) < ttl => {
                *used = now;
                Some(user.clone())
            }
            Some(_) => {
                t.tokens.remove(token);
                None
            }
            None => None,
        }
    }
}

/// The keys and settings of JWT tokens (`--auth-token jwt,...`).
#[derive(Clone)]
pub struct JwtKeys {
    algorithm: jsonwebtoken::Algorithm,
    /// `None`: verify only (etcd's public-key-only mode).
    sign: Option<jsonwebtoken::EncodingKey>,
    verify: jsonwebtoken::DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("algorithm", &self.algorithm)
            .field("can_sign", &self.sign.is_some())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The token kind of `--auth-token`.
#[derive(Debug, Clone)]
pub enum TokenKind {
    Simple,
    Jwt(JwtKeys),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

/// Parses `--auth-token`: `simple`, or `jwt,pub-key=FILE,priv-key=FILE,sign-method=ALG[,ttl=DURATION]`
/// as etcd does (`priv-key` may be left out to verify only; HS* methods use `priv-key`'s
/// contents as the secret). Errors are one line naming what is wrong.
pub fn parse_token_option(opt: &str) -> Result<TokenKind, String> {
    let mut parts = opt.split(',');
    let kind = parts.next().unwrap_or_default().trim();
    let mut opts: HashMap<&str, &str> = HashMap::new();
    for p in parts {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("--auth-token: option `{p}` is not key=value"))?;
        if opts.insert(k.trim(), v.trim()).is_some() {
            return Err(format!("--auth-token: option `{k}` given twice"));
        }
    }
    match kind {
        "simple" => Ok(TokenKind::Simple),
        "jwt" => jwt_keys(&opts).map(TokenKind::Jwt),
        other => Err(format!(
            "--auth-token: unknown token type `{other}` (simple or jwt)"
        )),
    }
}

fn jwt_keys(opts: &HashMap<&str, &str>) -> Result<JwtKeys, String> {
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
    let method = opts
        .get("sign-method")
        .ok_or("--auth-token jwt: sign-method= is required")?;
    let algorithm: Algorithm = method
        .parse()
        .map_err(|_| format!("--auth-token jwt: unknown sign-method `{method}`"))?;
    let ttl = match opts.get("ttl") {
        Some(t) => crate::config::parse_duration(t)
            .map_err(|e| format!("--auth-token jwt: ttl `{t}`: {e}"))?,
        None => DEFAULT_JWT_TTL,
    };
    let read = |k: &str| -> Result<Option<Vec<u8>>, String> {
        match opts.get(k) {
            None => Ok(None),
            Some(p) => std::fs::read(Path::new(p))
                .map(Some)
                .map_err(|e| format!("--auth-token jwt: {k}={p}: {e}")),
        }
    };
    let (public, private) = (read("pub-key")?, read("priv-key")?);
    let bad = |what: &str, e: jsonwebtoken::errors::Error| {
        format!("--auth-token jwt: {what} is not a {method} key: {e}")
    };
    let (sign, verify) = match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            let secret = private.ok_or("--auth-token jwt: priv-key= is required for HS*")?;
            (
                Some(EncodingKey::from_secret(&secret)),
                DecodingKey::from_secret(&secret),
            )
        }
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => {
            let public = public.ok_or("--auth-token jwt: pub-key= is required")?;
            let sign = private
                .map(|k| EncodingKey::from_rsa_pem(&k).map_err(|e| bad("priv-key", e)))
                .transpose()?;
            let verify = DecodingKey::from_rsa_pem(&public).map_err(|e| bad("pub-key", e))?;
            (sign, verify)
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            let public = public.ok_or("--auth-token jwt: pub-key= is required")?;
            let sign = private
                .map(|k| EncodingKey::from_ec_pem(&k).map_err(|e| bad("priv-key", e)))
                .transpose()?;
            let verify = DecodingKey::from_ec_pem(&public).map_err(|e| bad("pub-key", e))?;
            (sign, verify)
        }
        Algorithm::EdDSA => {
            let public = public.ok_or("--auth-token jwt: pub-key= is required")?;
            let sign = private
                .map(|k| EncodingKey::from_ed_pem(&k).map_err(|e| bad("priv-key", e)))
                .transpose()?;
            let verify = DecodingKey::from_ed_pem(&public).map_err(|e| bad("pub-key", e))?;
            (sign, verify)
        }
    };
    Ok(JwtKeys {
        algorithm,
        sign,
        verify,
        ttl,
    })
}

/// How this member authenticates requests: the token kind, the simple-token table and
/// the bcrypt cost. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Authn {
    kind: Arc<TokenKind>,
    tokens: Arc<SimpleTokens>,
    bcrypt_cost: u32,
    /// `--client-cert-auth`: a verified certificate's common name is a user.
    client_cert_auth: bool,
}

/// The credentials a request carried, before they are checked.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The `token` metadata entry (or the gateway's `authorization` header).
    pub token: Option<String>,
    /// The verified client certificate's common name, if the connection had one.
    pub cert_common_name: Option<String>,
}

impl Credentials {
    /// The credentials of a gRPC request.
    pub fn of<T>(req: &tonic::Request<T>) -> Credentials {
        Credentials::from_parts(req.metadata().as_ref(), req.extensions())
    }

    /// The credentials of a JSON gateway request: the token from its `Authorization`
    /// header only (the gateway does not pass a client certificate's name on, as etcd's
    /// does not).
    pub fn from_gateway(headers: &http::HeaderMap) -> Credentials {
        Credentials {
            token: headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            cert_common_name: None,
        }
    }

    /// The credentials in HTTP headers and request extensions.
    pub fn from_parts(headers: &http::HeaderMap, ext: &http::Extensions) -> Credentials {
        let token = ["token", "authorization"]
            .iter()
            .find_map(|k| headers.get(*k))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Credentials {
            token,
            cert_common_name: crate::tls::client_common_name(ext),
        }
    }
}

impl Authn {
    /// `kind` from `--auth-token`, the table the state machine assigns simple tokens in.
    pub fn new(
        kind: TokenKind,
        tokens: Arc<SimpleTokens>,
        bcrypt_cost: u32,
        client_cert_auth: bool,
    ) -> Self {
        Authn {
            kind: Arc::new(kind),
            tokens,
            bcrypt_cost,
            client_cert_auth,
        }
    }

    /// Whether tokens are JWTs (the proposer signs them) rather than simple tokens.
    pub fn is_jwt(&self) -> bool {
        matches!(*self.kind, TokenKind::Jwt(_))
    }

    /// A fresh simple-token prefix (16 random letters, as etcd's).
    pub fn simple_prefix() -> String {
        const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut rng = rand::thread_rng();
        (0..16)
            .map(|_| LETTERS[rng.gen_range(0..LETTERS.len())] as char)
            .collect()
    }

    /// Signs a JWT for `user` at auth `revision` (JWT mode only).
    pub fn sign_jwt(&self, user: &str, revision: u64) -> Result<String, EtcdError> {
        let TokenKind::Jwt(keys) = &*self.kind else {
            return Err(rpctypes::INVALID_AUTH_TOKEN);
        };
        let Some(sign) = &keys.sign else {
            tracing::warn!("cannot issue a JWT: --auth-token has no priv-key (verify only)");
            return Err(rpctypes::AUTH_FAILED);
        };
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(keys.ttl)
            .as_secs();
        let claims = Claims {
            username: user.to_string(),
            revision,
            exp,
        };
        jsonwebtoken::encode(&jsonwebtoken::Header::new(keys.algorithm), &claims, sign).map_err(
            |e| {
                tracing::warn!("cannot sign a JWT: {e}");
                rpctypes::AUTH_FAILED
            },
        )
    }

    /// Hashes a password with bcrypt at `--bcrypt-cost`, as base64 of the hash (the
    /// replicated form). Runs on a blocking thread: a hash costs tens of milliseconds.
    pub async fn hash_password(&self, password: String) -> Result<String, EtcdError> {
        use base64::Engine as _;
        let cost = self.bcrypt_cost;
        let hash = tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await
            .map_err(|_| rpctypes::STOPPED)?
            .map_err(|e| {
                tracing::warn!("bcrypt: {e}");
                rpctypes::AUTH_FAILED
            })?;
        Ok(base64::engine::general_purpose::STANDARD.encode(hash))
    }

    /// Whether `password` matches a stored bcrypt hash (on a blocking thread).
    pub async fn verify_password(password: String, hash: Vec<u8>) -> bool {
        tokio::task::spawn_blocking(move || {
            let hash = String::from_utf8_lossy(&hash).into_owned();
            bcrypt::verify(password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }

    /// Who the request comes from (see the module doc): `None` for an anonymous request,
    /// `Err(INVALID_AUTH_TOKEN)` for a token that does not validate.
    pub async fn caller(
        &self,
        node: &NodeHandle,
        creds: &Credentials,
    ) -> Result<Option<AuthHeader>, EtcdError> {
        if let Some(token) = creds.token.as_deref().filter(|t| !t.is_empty()) {
            return self.token_caller(node, token).await.map(Some);
        }
        if self.client_cert_auth {
            if let Some(cn) = &creds.cert_common_name {
                return Ok(Some(AuthHeader {
                    username: cn.clone(),
                    revision: node.read_state().auth().revision(),
                }));
            }
        }
        Ok(None)
    }

    /// [`Authn::caller`], anonymous as an empty header (revision 0): what a client's
    /// command carries.
    pub async fn header(
        &self,
        node: &NodeHandle,
        creds: &Credentials,
    ) -> Result<AuthHeader, EtcdError> {
        Ok(self.caller(node, creds).await?.unwrap_or_default())
    }

    async fn token_caller(&self, node: &NodeHandle, token: &str) -> Result<AuthHeader, EtcdError> {
        match &*self.kind {
            TokenKind::Simple => {
                let index: u64 = token
                    .rsplit_once('.')
                    .and_then(|(_, i)| i.parse().ok())
                    .ok_or(rpctypes::INVALID_AUTH_TOKEN)?;
                let deadline = Instant::now() + node.request_timeout;
                while node.status.applied.load(Ordering::Relaxed) < index {
                    if Instant::now() >= deadline {
                        return Err(rpctypes::INVALID_AUTH_TOKEN);
                    }
                    tokio::time::sleep(INDEX_POLL).await;
                }
                let user = self
                    .tokens
                    .lookup(token)
                    .ok_or(rpctypes::INVALID_AUTH_TOKEN)?;
                Ok(AuthHeader {
                    username: user,
                    revision: node.read_state().auth().revision(),
                })
            }
            TokenKind::Jwt(keys) => {
                let mut v = jsonwebtoken::Validation::new(keys.algorithm);
                v.leeway = 0;
                v.validate_exp = true;
                v.required_spec_claims = ["exp"].into_iter().map(String::from).collect();
                let data = jsonwebtoken::decode::<Claims>(token, &keys.verify, &v)
                    .map_err(|_| rpctypes::INVALID_AUTH_TOKEN)?;
                Ok(AuthHeader {
                    username: data.claims.username,
                    revision: data.claims.revision,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_tokens_expire_and_follow_their_user() {
        let t = SimpleTokens::new(Duration::from_secs(60));
        t.apply(TokenEffect::Assign {
            token: "abc.7".into(),
            user: "u".into(),
        });
        t.apply(TokenEffect::Assign {
            token: "def.8".into(),
            user: "v".into(),
        });
        assert_eq!(t.lookup("abc.7").as_deref(), Some("u"));
        t.apply(TokenEffect::InvalidateUser("u".into()));
        assert_eq!(t.lookup("abc.7"), None);
        assert_eq!(t.lookup("def.8").as_deref(), Some("v"));
        t.set_ttl(Duration::ZERO);
        assert_eq!(t.lookup("def.8"), None, "expired");
        t.set_ttl(Duration::from_secs(60));
        t.apply(TokenEffect::Assign {
            token: "ghi.9".into(),
            user: "w".into(),
        });
        t.apply(TokenEffect::ClearAll);
        assert_eq!(t.lookup("ghi.9"), None);
    }

    #[test]
    fn token_options_are_parsed_as_etcd_does() {
        assert!(matches!(
            parse_token_option("simple"),
            Ok(TokenKind::Simple)
        ));
        for bad in [
            "bogus",
            "jwt",
            "jwt,sign-method",
            "jwt,sign-method=XX256",
            "jwt,a=1,a=2",
        ] {
            let e = parse_token_option(bad).unwrap_err();
            assert!(e.starts_with("--auth-token"), "{bad}: {e}");
            assert!(!e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn jwt_round_trip_with_an_ec_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let (pubf, privf) = (dir.path().join("pub.pem"), dir.path().join("priv.pem"));
        std::fs::write(&pubf, key.public_key_pem()).unwrap();
        std::fs::write(&privf, key.serialize_pem()).unwrap();
        let opt = format!(
            "jwt,pub-key={},priv-key={},sign-method=ES256,ttl=1m",
            pubf.display(),
            privf.display()
        );
        let TokenKind::Jwt(keys) = parse_token_option(&opt).unwrap() else {
            panic!("not jwt")
        };
        let a = Authn::new(
            TokenKind::Jwt(keys),
            Arc::new(SimpleTokens::new(DEFAULT_SIMPLE_TOKEN_TTL)),
            4,
            false,
        );
        let token = a.sign_jwt("alice", 5).unwrap();
        let TokenKind::Jwt(keys) = &*a.kind else {
            unreachable!()
        };
        let v = jsonwebtoken::Validation::new(keys.algorithm);
        let c = jsonwebtoken::decode::<Claims>(&token, &keys.verify, &v).unwrap();
        assert_eq!(
            (c.claims.username.as_str(), c.claims.revision),
            ("alice", 5)
        );
    }
}
