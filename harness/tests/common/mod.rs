//! Shared by the harness's integration tests: launching a target from the cache.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use gauntlet_harness::pki::Ca;
use gauntlet_harness::{Cache, Cluster, ClusterSpec, Target};

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

/// A CA, another CA nobody trusts, a server certificate for 127.0.0.1 and localhost, a
/// client certificate (common name `gauntlet-client`) and one whose common name is the
/// user `alice`, as PEM files in a directory.
pub struct Pki {
    pub ca: std::path::PathBuf,
    pub other_ca: std::path::PathBuf,
    pub server_cert: std::path::PathBuf,
    pub server_key: std::path::PathBuf,
    pub client_cert: std::path::PathBuf,
    pub client_key: std::path::PathBuf,
    pub alice_cert: std::path::PathBuf,
    pub alice_key: std::path::PathBuf,
}

/// Writes a fresh [`Pki`] into `dir`.
pub fn pki(dir: &Path) -> Pki {
    let ca = Ca::new("gauntlet test CA").unwrap();
    let other = Ca::new("some other CA").unwrap();
    let server = ca.issue(dir, "server", "localhost").unwrap();
    let client = ca.issue(dir, "client", "gauntlet-client").unwrap();
    let alice = ca.issue(dir, "alice", "alice").unwrap();
    Pki {
        ca: ca.write(dir, "ca.pem").unwrap(),
        other_ca: other.write(dir, "other-ca.pem").unwrap(),
        server_cert: server.cert,
        server_key: server.key,
        client_cert: client.cert,
        client_key: client.key,
        alice_cert: alice.cert,
        alice_key: alice.key,
    }
}
