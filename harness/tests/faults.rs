//! The cluster launcher's fault operations against real etcd 3.5.1: SIGKILL and
//! restart of the leader, SIGSTOP/SIGCONT of a follower, and teardown that leaves
//! no process behind (on drop and on panic).

mod common;

use std::time::Duration;

use gauntlet_api::etcdserverpb as pb;
use gauntlet_harness::MemberState;

const TARGET: &str = "etcd@3.5.1";

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; check its state too.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
        .unwrap_or(false)
}

async fn serializable_get(c: &gauntlet_harness::Client, key: &str) -> pb::RangeResponse {
    c.range(pb::RangeRequest {
        key: key.into(),
        serializable: true,
        ..Default::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_the_leader() {
    let cluster = common::start(TARGET, 3).await;
    let client = cluster.client().await.unwrap();
    client.put("/faults/before", "1").await.unwrap();
    let leader = cluster.leader().await.unwrap();
    let old_pid = cluster.members()[leader].pid.unwrap();
    cluster.kill(leader).unwrap();
    assert!(!alive(old_pid));
    assert_eq!(cluster.members()[leader].state, MemberState::Stopped);
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    let new_leader = cluster.leader().await.unwrap();
    assert_ne!(new_leader, leader, "a stopped member cannot be leader");
    // Writes go on through a surviving member.
    let survivor = cluster.member_client(new_leader).await.unwrap();
    survivor.put("/faults/after", "2").await.unwrap();
    cluster.restart(leader).unwrap();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    let back = cluster.member_client(leader).await.unwrap();
    // The restarted member kept its data and caught up with the write it missed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let before = serializable_get(&back, "/faults/before").await;
        let after = serializable_get(&back, "/faults/after").await;
        if before.count == 1 && after.count == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "restarted member did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_a_follower() {
    let cluster = common::start(TARGET, 3).await;
    let leader = cluster.leader().await.unwrap();
    let follower = (leader + 1) % 3;
    let paused = cluster.member_client(follower).await.unwrap();
    let mut cfg = cluster.client_config(vec![cluster.endpoints()[follower].clone()]);
    cfg.command_timeout = Duration::from_millis(300);
    let short = gauntlet_harness::Client::connect(cfg).await.unwrap();
    cluster.pause(follower).unwrap();
    assert_eq!(cluster.members()[follower].state, MemberState::Paused);
    assert!(cluster.pause(follower).is_err(), "pausing twice is refused");
    // The paused member answers nothing: a short call times out.
    let err = short
        .range(pb::RangeRequest {
            key: b"x".to_vec(),
            serializable: true,
            ..Default::default()
        })
        .await;
    assert!(err.is_err(), "a SIGSTOPped member answered");
    // The majority still commits.
    let writer = cluster.member_client(leader).await.unwrap();
    writer.put("/faults/during-pause", "v").await.unwrap();
    cluster.resume(follower).unwrap();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while serializable_get(&paused, "/faults/during-pause")
        .await
        .count
        != 1
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "resumed follower did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_then_restart() {
    let cluster = common::start(TARGET, 3).await;
    cluster.stop(2).await.unwrap();
    assert_eq!(cluster.members()[2].state, MemberState::Stopped);
    cluster.restart(2).unwrap();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    assert!(cluster
        .members()
        .iter()
        .all(|m| m.state == MemberState::Running));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_leaves_no_process() {
    let cluster = common::start(TARGET, 3).await;
    let pids = cluster.pids();
    assert_eq!(pids.len(), 3);
    cluster.pause(0).unwrap(); // a paused member must die too
    drop(cluster);
    for pid in pids {
        assert!(!alive(pid), "member {pid} survived the drop");
    }
}

#[test]
fn panic_leaves_no_process() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let cluster = common::start(TARGET, 1).await;
            tx.send(cluster.pids()).unwrap();
            panic!("deliberate panic with a running cluster");
        })
    })
    .join();
    assert!(result.is_err(), "the thread should have panicked");
    let pids = rx.recv().unwrap();
    assert_eq!(pids.len(), 1);
    for pid in pids {
        assert!(!alive(pid), "member {pid} survived the panic");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_operations_check_their_arguments() {
    let cluster = common::start(TARGET, 1).await;
    assert_eq!(
        cluster.kill(7).unwrap_err().to_string(),
        "no member 7: the cluster has 1 members"
    );
    assert!(cluster
        .resume(0)
        .unwrap_err()
        .to_string()
        .contains("member m0 is running, cannot resume"));
}
