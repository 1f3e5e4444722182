//! Shared by the harness's integration tests: launching a target from the cache.

#![allow(dead_code)]

use std::time::Duration;

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
