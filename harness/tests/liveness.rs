//! The liveness monitor against real etcd 3.5.1: a member that dies on its own is
//! declared down at once with its exit status and log; one that hangs (SIGSTOP) or
//! was stopped behind the monitor's back is declared down only after several
//! unanswered probes; a healthy cluster is never declared down.

mod common;

use std::sync::Arc;
use std::time::Duration;

use gauntlet_harness::liveness::{Monitor, MonitorConfig};

const TARGET: &str = "etcd@3.5.1";

fn fast() -> MonitorConfig {
    MonitorConfig {
        interval: Duration::from_millis(200),
        probe_timeout: Duration::from_millis(500),
        misses: 3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_exits_on_its_own_is_declared_at_once_with_its_log() {
    let cluster = Arc::new(common::start(TARGET, 3).await);
    let config = cluster.client_config(cluster.endpoints());
    let monitor = Monitor::start(&config, Some(cluster.clone()), fast()).unwrap();
    // Healthy: several rounds, no death, every member answering.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(monitor.probe_now().await, None);
    assert!(monitor.all_answered_since(0));
    // SIGKILL behind the harness's back: the process exits "on its own".
    let pid = cluster.members()[1].pid.unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let death = tokio::time::timeout(Duration::from_secs(5), monitor.dead())
        .await
        .expect("declared within 5 s");
    assert_eq!(death.member, 1);
    assert_eq!(death.name, "m1");
    assert!(
        death.how.contains("process exited on its own: signal: 9"),
        "{}",
        death.how
    );
    assert!(!death.log_tail.is_empty(), "the log tail of m1");
    assert!(death.last_ok_ns.is_some());
    assert!(!monitor.all_answered_since(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_member_is_declared_only_after_several_unanswered_probes() {
    let cluster = Arc::new(common::start(TARGET, 3).await);
    let config = cluster.client_config(cluster.endpoints());
    let monitor = Monitor::start(&config, Some(cluster.clone()), fast()).unwrap();
    cluster.pause(2).unwrap();
    let t0 = std::time::Instant::now();
    // One on-demand round is a single miss: not yet down.
    assert_eq!(monitor.probe_now().await, None);
    let death = tokio::time::timeout(Duration::from_secs(10), monitor.dead())
        .await
        .expect("declared within 10 s");
    assert_eq!(death.member, 2);
    assert!(
        death.how.contains("3 Status probes in a row unanswered"),
        "{}",
        death.how
    );
    // Three misses with a 500 ms deadline each, over at least one interval.
    assert!(
        t0.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        t0.elapsed()
    );
    cluster.resume(2).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_reports_a_healthy_cluster_as_alive() {
    let cluster = Arc::new(common::start(TARGET, 1).await);
    let config = cluster.client_config(cluster.endpoints());
    let monitor = Monitor::start(&config, None, fast()).unwrap();
    assert_eq!(monitor.settle().await, None);
    // Without the cluster handle, a member stopped by the harness is seen by probes.
    cluster.kill(0).unwrap();
    let death = match monitor.settle().await {
        Some(d) => d,
        None => tokio::time::timeout(Duration::from_secs(5), monitor.dead())
            .await
            .expect("declared within 5 s"),
    };
    assert!(death.how.contains("unanswered"), "{}", death.how);
    assert!(
        death.log_tail.is_empty(),
        "no log without the cluster handle"
    );
}
