//! TLS through rustls with client-certificate auth, against real etcd 3.5.1 and
//! against a 3-member reference cluster whose members also talk TLS to each other
//! (`ClusterSpec::peer_tls`): `--cacert/--cert/--key` work, and a client without a
//! certificate, or one that does not trust the server's CA, is refused with one
//! clear error. The reference server's own TLS tests (CRLs, cipher suites, versions,
//! generated certificates) are in `reference-server/tests/tls.rs`.

mod common;

use std::time::Duration;

use common::pki;
use gauntlet_harness::{Cache, Client, ClientConfig, Cluster, ClusterSpec, ClusterTls, TlsFiles};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    client_certificates_are_required("etcd@3.5.1", 1, false).await;
}

/// The reference server's TLS, both ways: clients (with `--client-cert-auth`) and
/// peers (the harness's peer CA and `--peer-client-cert-auth`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_cluster_with_client_and_peer_tls() {
    client_certificates_are_required("reference", 3, true).await;
}

async fn client_certificates_are_required(target: &str, members: usize, peer_tls: bool) {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let client_files = TlsFiles {
        cacert: Some(pki.ca.clone()),
        cert: Some(pki.client_cert.clone()),
        key: Some(pki.client_key.clone()),
    };
    let mut spec = ClusterSpec::new(target.parse().unwrap(), members);
    spec.peer_tls = peer_tls;
    spec.tls = Some(ClusterTls {
        server_cert: pki.server_cert.clone(),
        server_key: pki.server_key.clone(),
        client_ca: Some(pki.ca.clone()),
        client: client_files.clone(),
    });
    spec.ready_timeout = Duration::from_secs(60);
    let cluster = Cluster::start(spec, &Cache::from_env())
        .await
        .unwrap_or_else(|e| panic!("{e} (run `cargo xtask test`)"));
    let endpoint = cluster.endpoints()[0].clone();
    assert!(endpoint.starts_with("https://"));

    let c = cluster.client().await.unwrap();
    c.put("/tls/k", "v").await.unwrap();
    assert_eq!(c.get("/tls/k").await.unwrap().kvs[0].value, b"v");
    // Every member serves it: a linearizable read on each crosses the peer links.
    for i in 0..members {
        let m = cluster.member_client(i).await.unwrap();
        assert_eq!(
            m.get("/tls/k").await.unwrap().kvs[0].value,
            b"v",
            "member {i}"
        );
    }

    // host:port without a scheme means https when TLS files are given, as in etcdctl.
    let mut bare = ClientConfig::new([endpoint.trim_start_matches("https://").to_string()]);
    bare.tls = Some(client_files);
    Client::connect(bare)
        .await
        .unwrap()
        .get("/tls/k")
        .await
        .unwrap();

    for (what, expected, files) in [
        (
            "no client certificate",
            "Certificate",
            TlsFiles {
                cacert: Some(pki.ca.clone()),
                cert: None,
                key: None,
            },
        ),
        (
            "untrusted server CA",
            "UnknownIssuer",
            TlsFiles {
                cacert: Some(pki.other_ca.clone()),
                cert: Some(pki.client_cert.clone()),
                key: Some(pki.client_key.clone()),
            },
        ),
    ] {
        let mut cfg = ClientConfig::new([endpoint.clone()]);
        cfg.tls = Some(files);
        cfg.dial_timeout = Duration::from_secs(2);
        cfg.command_timeout = Duration::from_secs(2);
        let refused = match Client::connect(cfg).await {
            Err(e) => e.to_string(),
            Ok(c) => match c.get("/tls/k").await {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{what}: the server answered"),
            },
        };
        assert!(
            !refused.contains('\n') && refused.contains(expected),
            "{what}: {refused}"
        );
    }

    let mut half = ClientConfig::new([endpoint]);
    half.tls = Some(TlsFiles {
        cacert: Some(pki.ca.clone()),
        cert: Some(pki.client_cert.clone()),
        key: None,
    });
    assert_eq!(
        Client::connect(half).await.unwrap_err().to_string(),
        "invalid client configuration: --cert and --key go together"
    );
}
