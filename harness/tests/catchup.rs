//! A follower that was down while more than `--snapshot-count` entries (and more than
//! the leader keeps for catching up) were committed comes back and catches up by a
//! snapshot: its data and HashKV then match the others.

mod common;

use std::time::{Duration, Instant};

use gauntlet_api::etcdserverpb as pb;
use gauntlet_harness::{Cache, Cluster, ClusterSpec};

/// Entries written while the follower is down: more than etcd's 5000 catch-up entries.
const ENTRIES: usize = 6000;
/// Concurrent writers.
const WRITERS: usize = 32;

async fn catch_up_by_snapshot(target: &str, marker: &str) {
    let mut spec = ClusterSpec::new(target.parse().unwrap(), 3);
    spec.extra_args = vec!["--snapshot-count".into(), "100".into()];
    spec.ready_timeout = Duration::from_secs(60);
    let cluster = Cluster::start(spec, &Cache::from_env())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let leader = cluster.leader().await.unwrap();
    let follower = (leader + 1) % 3;
    cluster.kill(follower).unwrap();
    let client = cluster.member_client(leader).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..ENTRIES).step_by(WRITERS) {
                c.put(format!("/catchup/{i:05}"), vec![b'x'; 100])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rev = client
        .put("/catchup/last", "done")
        .await
        .unwrap()
        .header
        .unwrap()
        .revision;
    cluster.restart(follower).unwrap();
    cluster.wait_ready(Duration::from_secs(60)).await.unwrap();
    let back = cluster.member_client(follower).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let hash_on = |c: gauntlet_harness::Client| async move {
        c.hash_kv(pb::HashKvRequest { revision: rev })
            .await
            .map(|h| h.hash)
    };
    let want = hash_on(client.clone()).await.unwrap();
    loop {
        match hash_on(back.clone()).await {
            Ok(h) => {
                assert_eq!(
                    h, want,
                    "follower's HashKV at {rev} differs from the leader's"
                );
                break;
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "follower did not catch up to {rev}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let count = back
        .range(pb::RangeRequest {
            key: b"/catchup/".to_vec(),
            range_end: gauntlet_api::prefix_range_end(b"/catchup/"),
            count_only: true,
            serializable: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .count;
    assert_eq!(count, ENTRIES as i64 + 1);
    // The snapshot's last durable step may finish just after its data became visible.
    let log_path = cluster.members()[follower].log.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = std::fs::read_to_string(&log_path).unwrap();
    while !log.contains(marker) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        log = std::fs::read_to_string(&log_path).unwrap();
    }
    let tail: Vec<&str> = log.lines().rev().take(30).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    assert!(
        log.contains(marker),
        "the follower's log does not show a snapshot being applied (`{marker}`); its last lines:\n{}",
        tail.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_3_5_1() {
    catch_up_by_snapshot("etcd@3.5.1", "applied snapshot").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference() {
    catch_up_by_snapshot("reference", "applied snapshot").await;
}
