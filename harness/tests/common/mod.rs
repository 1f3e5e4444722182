//! Shared by the harness's integration tests: launching a target from the cache.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use gauntlet_harness::{Cache, Cluster, ClusterSpec, Target};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

/// Starts `members` members of `target` (which must be cached: `cargo xtask test`
/// fetches etcd before running tests). Panics with the launch error otherwise.
pub async fn start(target: &str, members: usize) -> Cluster {
    let target: Target = target.parse().expect("target");
    let mut spec = ClusterSpec::new(target.clone(), members);
    spec.ready_timeout = Duration::from_secs(60);
    match Cluster::start(spec, &Cache::from_env()).await {
        Ok(c) => c,
        Err(e) => panic!("cannot start {members} member(s) of {target}: {e}\n(rerun `cargo xtask test`, which fetches the targets first)"),
    }
}

/// A key prefix unique to one test.
pub fn prefix(test: &str) -> String {
    format!("/gauntlet-test/{test}/")
}

/// A CA, another CA nobody trusts, a server certificate for 127.0.0.1 and localhost, and
/// a client certificate (common name `gauntlet-client`), as PEM files in a directory.
pub struct Pki {
    pub ca: std::path::PathBuf,
    pub other_ca: std::path::PathBuf,
    pub server_cert: std::path::PathBuf,
    pub server_key: std::path::PathBuf,
    pub client_cert: std::path::PathBuf,
    pub client_key: std::path::PathBuf,
    /// A client certificate whose common name is `alice` (a user, under auth).
    pub alice_cert: std::path::PathBuf,
    pub alice_key: std::path::PathBuf,
}

/// A self-signed CA.
pub fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    (p.self_signed(&key).unwrap(), key)
}

/// Writes a fresh [`Pki`] into `dir`.
pub fn pki(dir: &Path) -> Pki {
    let (ca_cert, ca_key) = ca("gauntlet test CA");
    let (other, _) = ca("some other CA");
    let mut server = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key).unwrap();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client
        .distinguished_name
        .push(DnType::CommonName, "gauntlet-client");
    let client_key = KeyPair::generate().unwrap();
    let client_cert = client.signed_by(&client_key, &ca_cert, &ca_key).unwrap();
    let mut alice = CertificateParams::new(Vec::<String>::new()).unwrap();
    alice.distinguished_name.push(DnType::CommonName, "alice");
    let alice_key = KeyPair::generate().unwrap();
    let alice_cert = alice.signed_by(&alice_key, &ca_cert, &ca_key).unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    Pki {
        ca: write("ca.pem", ca_cert.pem()),
        other_ca: write("other-ca.pem", other.pem()),
        server_cert: write("server.pem", server_cert.pem()),
        server_key: write("server-key.pem", server_key.serialize_pem()),
        client_cert: write("client.pem", client_cert.pem()),
        client_key: write("client-key.pem", client_key.serialize_pem()),
        alice_cert: write("alice.pem", alice_cert.pem()),
        alice_key: write("alice-key.pem", alice_key.serialize_pem()),
    }
}
