//! TLS with client certificates (etcd's `--cert-file`, `--key-file`,
//! `--trusted-ca-file`, `--client-cert-auth`): who may connect, and the certificate's
//! common name as the user once auth is enabled.
//!
//! Each case launches its own one-member cluster of the run's target with TLS, with
//! certificates made for it on the spot (`gauntlet_harness::pki`), so it needs a
//! launched target; the runner's own cluster for the case is only where the target
//! comes from.

use std::time::Duration;

use gauntlet_api::authpb::{permission::Type as PermType, Permission};
use gauntlet_api::etcdserverpb as pb;
use gauntlet_api::rpctypes as E;
use gauntlet_harness::pki::Ca;
use gauntlet_harness::{
    Cache, Client, ClientConfig, Cluster, ClusterSpec, ClusterTls, Credentials, TlsFiles,
};

use super::doc;
use crate::case::{case, ensure, err_is, failure, ok, Case, Ctx, Failure, Needs};

/// A TLS cluster and the files to talk to it.
struct TlsSetup {
    cluster: Cluster,
    ca: std::path::PathBuf,
    client: TlsFiles,
    alice: TlsFiles,
    stranger: TlsFiles,
}

/// Launches one member of the case's target serving TLS with client certificates
/// required, signed by a fresh CA.
async fn tls_cluster(ctx: &Ctx) -> Result<TlsSetup, Failure> {
    let fresh = ctx.cluster()?;
    let dir = fresh.root().join("tls");
    let what = "a TLS cluster of the target";
    let bad = |e: gauntlet_harness::HarnessError| failure(&what, "started", e.to_string());
    std::fs::create_dir_all(&dir).map_err(|e| failure(&what, "a directory", e.to_string()))?;
    let ca = Ca::new("gauntlet conformance CA").map_err(bad)?;
    let other = Ca::new("a CA nobody trusts").map_err(bad)?;
    let server = ca.issue(&dir, "server", "localhost").map_err(bad)?;
    let client = ca.issue(&dir, "client", "gauntlet-client").map_err(bad)?;
    let alice = ca.issue(&dir, "alice", "alice").map_err(bad)?;
    let stranger = other.issue(&dir, "stranger", "alice").map_err(bad)?;
    let ca_file = ca.write(&dir, "ca.pem").map_err(bad)?;
    let files = |i: &gauntlet_harness::pki::Issued| TlsFiles {
        cacert: Some(ca_file.clone()),
        cert: Some(i.cert.clone()),
        key: Some(i.key.clone()),
    };
    let mut spec = ClusterSpec::new(fresh.target().clone(), 1);
    spec.data_root = Some(dir.join("cluster"));
    spec.ready_timeout = Duration::from_secs(60);
    spec.tls = Some(ClusterTls {
        server_cert: server.cert.clone(),
        server_key: server.key.clone(),
        client_ca: Some(ca_file.clone()),
        client: files(&client),
    });
    std::fs::create_dir_all(dir.join("cluster"))
        .map_err(|e| failure(&what, "a directory", e.to_string()))?;
    let cluster = Cluster::start(spec, &Cache::from_env())
        .await
        .map_err(bad)?;
    Ok(TlsSetup {
        cluster,
        ca: ca_file.clone(),
        client: files(&client),
        alice: files(&alice),
        stranger: files(&stranger),
    })
}

impl TlsSetup {
    fn config(&self, files: TlsFiles, credentials: Option<Credentials>) -> ClientConfig {
        let mut cfg = ClientConfig::new(self.cluster.endpoints());
        cfg.tls = Some(files);
        cfg.credentials = credentials;
        cfg.dial_timeout = Duration::from_secs(3);
        cfg.command_timeout = Duration::from_secs(5);
        cfg
    }

    /// A client with these files; `Err` with the reason when connecting fails.
    async fn client(
        &self,
        files: TlsFiles,
        credentials: Option<Credentials>,
    ) -> Result<Client, String> {
        Client::connect(self.config(files, credentials))
            .await
            .map_err(|e| e.to_string())
    }

    /// Whether a client with these files gets a range answered: `Err(reason)` if not.
    async fn range_answered(&self, files: TlsFiles) -> Result<(), String> {
        let c = self.client(files, None).await?;
        c.get("/tls-probe")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn creds(user: &str, password: &str) -> Option<Credentials> {
    Some(Credentials {
        user: user.into(),
        password: password.into(),
    })
}

/// Root with the root role, auth enabled, user alice with READ on `/app/` (prefix);
/// answers a root client.
async fn enable_with_alice(t: &TlsSetup) -> Result<Client, Failure> {
    let c = t
        .client(t.client.clone(), None)
        .await
        .map_err(|e| failure(&"connect with a client certificate", "a client", e))?;
    for (name, pw) in [("root", "root-pw"), ("alice", "alice-pw")] {
        let req = pb::AuthUserAddRequest {
            name: name.into(),
            password: pw.into(),
            ..Default::default()
        };
        ok(&req, c.user_add(req.clone()).await)?;
    }
    let req = pb::AuthUserGrantRoleRequest {
        user: "root".into(),
        role: "root".into(),
    };
    ok(&req, c.user_grant_role(req.clone()).await)?;
    let req = pb::AuthRoleAddRequest {
        name: "reader".into(),
    };
    ok(&req, c.role_add(req.clone()).await)?;
    let req = pb::AuthRoleGrantPermissionRequest {
        name: "reader".into(),
        perm: Some(Permission {
            perm_type: PermType::Read as i32,
            key: b"/app/".to_vec(),
            range_end: b"/app0".to_vec(),
        }),
    };
    ok(&req, c.role_grant_permission(req.clone()).await)?;
    let req = pb::AuthUserGrantRoleRequest {
        user: "alice".into(),
        role: "reader".into(),
    };
    ok(&req, c.user_grant_role(req.clone()).await)?;
    ok(&"put /app/x", c.put("/app/x", "1").await)?;
    ok(
        &"auth enable",
        c.auth_enable(pb::AuthEnableRequest {}).await,
    )?;
    t.client(t.client.clone(), creds("root", "root-pw"))
        .await
        .map_err(|e| failure(&"Authenticate(root)", "a token", e))
}

pub fn cases() -> Vec<Case> {
    vec![
        case("tls.client_cert.required", "With --client-cert-auth, a client without a certificate is refused, and one with a certificate from the trusted CA is served.", doc::SECURITY, |ctx| async move {
            let t = tls_cluster(&ctx).await?;
            t.range_answered(t.client.clone()).await.map_err(|e| failure(&"range with a client certificate", "an answer", e))?;
            let none = TlsFiles { cacert: Some(t.ca.clone()), cert: None, key: None };
            let refused = t.range_answered(none).await;
            ensure(&"range without a client certificate", refused.is_err(), "refused (TLS handshake)", "answered")
        }).needs(Needs::Fresh(1)),
        case("tls.client_cert.untrusted_ca_refused", "A client certificate signed by a CA the server does not trust is refused.", doc::SECURITY, |ctx| async move {
            let t = tls_cluster(&ctx).await?;
            let refused = t.range_answered(t.stranger.clone()).await;
            ensure(&"range with a certificate from another CA", refused.is_err(), "refused (TLS handshake)", "answered")
        }).needs(Needs::Fresh(1)),
        case("tls.common_name.is_the_user", "With --client-cert-auth and auth enabled, a request without a token is made as the user its certificate names: alice's certificate reads what alice may read and is denied a write.", doc::SECURITY, |ctx| async move {
            let t = tls_cluster(&ctx).await?;
            enable_with_alice(&t).await?;
            let alice = t.client(t.alice.clone(), None).await.map_err(|e| failure(&"connect with alice's certificate", "a client", e))?;
            let got = ok(&"range /app/x as CN alice", alice.get("/app/x").await)?;
            ensure(&"range /app/x as CN alice", got.kvs.len() == 1, "the key", got.kvs.len())?;
            let req = pb::PutRequest { key: b"/app/x".to_vec(), value: b"2".to_vec(), ..Default::default() };
            err_is(&req, alice.put_request(req.clone()).await, E::PERMISSION_DENIED)
        }).needs(Needs::Fresh(1)),
        case("tls.common_name.token_wins", "A token names the user even on a connection whose certificate names another: alice's certificate with root's token may write.", doc::SECURITY, |ctx| async move {
            let t = tls_cluster(&ctx).await?;
            enable_with_alice(&t).await?;
            let as_root = t.client(t.alice.clone(), creds("root", "root-pw")).await.map_err(|e| failure(&"connect with alice's certificate as root", "a client", e))?;
            ok(&"put /app/x as root over alice's certificate", as_root.put("/app/x", "3").await).map(|_| ())
        }).needs(Needs::Fresh(1)),
    ]
}
