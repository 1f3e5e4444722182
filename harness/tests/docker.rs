//! The docker backend against a real Docker engine: members on their own addresses,
//! kills, pauses and restarts through Docker, partitions as packet filter rules, and a
//! teardown that leaves no container or network of the run behind.
//!
//! Needs a running Docker engine (the README's test command runs where one is); without
//! one these tests fail, they do not skip.

mod common;

use std::time::Duration;

use gauntlet_harness::docker::{objects_of_run, NetShape};
use gauntlet_harness::{Backend, Cache, Cluster, ClusterSpec, MemberState, Target};

async fn start(target: &str, members: usize) -> Cluster {
    let target: Target = target.parse().expect("target");
    let mut spec = ClusterSpec::new(target.clone(), members);
    spec.backend = Backend::Docker;
    spec.peer_tls = true;
    spec.ready_timeout = Duration::from_secs(60);
    match Cluster::start(spec, &Cache::from_env()).await {
        Ok(c) => c,
        Err(e) => panic!("cannot start {members} member(s) of {target} in containers: {e}"),
    }
}

/// One put, retried for up to 10 s (an endpoint may be the cut or paused member, and CI
/// machines are busy); the test only needs the cluster to take writes.
async fn put(c: &Cluster, key: &str) -> Result<(), String> {
    put_via(c, None, key).await
}

/// [`put`] through member `via` only (a cut member cannot take writes), or any member.
async fn put_via(c: &Cluster, via: Option<usize>, key: &str) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..20 {
        let attempt = async {
            let client = match via {
                Some(i) => c.member_client(i).await,
                None => c.client().await,
            }
            .map_err(|e| e.to_string())?;
            client
                .put(key, "v")
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last)
}

/// Three members on their own addresses; a partitioned follower drops packets and
/// falls behind, a healed one catches up; kill, restart and pause go through Docker;
/// dropping the cluster removes every container and the network.
async fn partition_kill_pause_and_teardown(target: &str) {
    let cluster = start(target, 3).await;
    let run = cluster.docker_run().expect("a docker run").to_string();
    let endpoints = cluster.endpoints();
    assert!(
        endpoints.iter().all(|e| !e.contains("127.0.0.1")),
        "members must have their own addresses: {endpoints:?}"
    );
    put(&cluster, "/docker/a").await.unwrap();

    let leader = cluster.leader().await.unwrap();
    let follower = (leader + 1) % 3;
    let others: Vec<(usize, usize)> = (0..3)
        .filter(|j| *j != follower)
        .map(|j| (follower, j))
        .collect();
    cluster.set_partition(&others).unwrap();
    for k in 0..5 {
        put_via(&cluster, Some(leader), &format!("/docker/p{k}"))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (drops, unit) = cluster.partition_drops();
    assert_eq!(unit, "packets");
    assert!(
        drops[follower] > 0,
        "the cut follower dropped nothing: {drops:?}"
    );
    let cut = cluster.member_status(follower).await;
    // The leader answers (its Status probe has a 1 s deadline: retried on a busy machine).
    let mut lead = cluster.member_status(leader).await;
    for _ in 0..20 {
        if lead.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        lead = cluster.member_status(leader).await;
    }
    let lead = lead.unwrap();
    if let Ok(s) = &cut {
        assert!(
            s.raft_index < lead.raft_index,
            "a cut follower kept up: {} vs {}",
            s.raft_index,
            lead.raft_index
        );
    }
    cluster.set_partition(&[]).unwrap();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();

    cluster.kill(follower).unwrap();
    assert_eq!(cluster.members()[follower].state, MemberState::Stopped);
    put_via(&cluster, Some(leader), "/docker/while-down")
        .await
        .unwrap();
    cluster.restart(follower).unwrap();
    cluster.wait_ready(Duration::from_secs(60)).await.unwrap();

    cluster.pause(follower).unwrap();
    assert!(
        cluster.member_status(follower).await.is_err(),
        "a paused member answered"
    );
    cluster.resume(follower).unwrap();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();

    cluster
        .shape_network(follower, NetShape::Loss(0.3))
        .unwrap();
    put_via(&cluster, Some(leader), "/docker/lossy")
        .await
        .unwrap();
    cluster
        .shape_network(
            follower,
            NetShape::Delay {
                delay_ms: 40,
                jitter_ms: 30,
                seed: 1,
            },
        )
        .unwrap();
    for k in 0..10 {
        put_via(&cluster, Some(leader), &format!("/docker/slow{k}"))
            .await
            .unwrap();
    }
    let (delayed, _) = cluster.delayed_packets(follower).expect("a delayer");
    assert!(delayed > 0, "the delayer held no packet");
    cluster.shape_network(follower, NetShape::Clear).unwrap();
    assert!(cluster.delayed_packets(follower).is_none());

    assert!(!objects_of_run(&run).unwrap().is_empty());
    drop(cluster);
    assert_eq!(objects_of_run(&run).unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn reference_cluster_in_containers() {
    partition_kill_pause_and_teardown("reference").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_3_5_1_cluster_in_containers() {
    partition_kill_pause_and_teardown("etcd@3.5.1").await;
}

/// A harness killed before its `Drop` leaves containers behind; the next run's sweep
/// removes them (their owner pid is gone).
#[test]
fn orphans_of_a_dead_owner_are_swept() {
    let net = format!("gauntlet-sweeptest-{}", std::process::id());
    // An owner pid that cannot be running (beyond the kernel's pid limit).
    gauntlet_harness::docker::docker(&[
        "network",
        "create",
        "--label",
        "gauntlet.run=sweeptest",
        "--label",
        "gauntlet.owner=4194305",
        &net,
    ])
    .unwrap();
    // Another test's cluster may sweep it first: either way it must be gone.
    let removed = gauntlet_harness::docker::sweep_orphans().unwrap();
    assert_eq!(
        objects_of_run("sweeptest").unwrap(),
        Vec::<String>::new(),
        "sweep removed {removed:?}"
    );
}
