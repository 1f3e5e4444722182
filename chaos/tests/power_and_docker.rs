//! Power-loss rounds (the power-loss filesystem under every data dir) and rounds on the
//! docker backend (members in containers, partitions as packet filter rules).
//!
//! Needs root, /dev/fuse and a running Docker engine, as the README's test command has;
//! without them these tests fail, they do not skip.

use std::time::Duration;

use gauntlet_chaos::fault::FaultKind;
use gauntlet_chaos::round::{run_round, RoundOptions, RoundResult, RoundVerdict};
use gauntlet_chaos::scenario::{plan, TrafficProfile};
use gauntlet_chaos::traffic::TrafficConfig;
use gauntlet_harness::{Backend, Cache, Target};

fn options(target: &str, backend: Backend) -> RoundOptions {
    RoundOptions {
        target: target.parse().expect("target"),
        cache: Cache::from_env(),
        traffic: TrafficConfig::default(),
        before_fault: Duration::from_millis(600),
        after_fault: Duration::from_millis(600),
        check_timeout: Duration::from_secs(60),
        mutation: None,
        toxiproxy: None,
        backend,
        etcd_release: None,
        ledger: gauntlet_chaos::ledger::Ledger::builtin(),
        out: None,
        keep_all: false,
        rerun: format!("gauntlet chaos --target {target} --backend {backend}"),
    }
}

async fn round(
    target: &str,
    fault: FaultKind,
    members: usize,
    seed: u64,
    backend: Backend,
) -> RoundResult {
    let spec = plan(seed, 0, members, &[fault], TrafficProfile::Etcd);
    assert_eq!(spec.fault, fault);
    run_round(spec, &options(target, backend)).await
}

fn explain(r: &RoundResult) -> String {
    format!(
        "{} round (seed {}): {:?}\nfindings: {:#?}\nunknown: {:?}\nfault: {:#?}",
        r.spec.fault, r.spec.seed, r.verdict, r.findings, r.unknown, r.fault
    )
}

/// Every power-loss fault on a 3-member reference cluster, and the all-members cut on a
/// lone member: the cut took effect (each filesystem reports what it dropped) and no
/// acknowledged write is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_rounds_pass_on_the_reference_server() {
    let faults: Vec<FaultKind> = FaultKind::ALL
        .into_iter()
        .filter(|f| f.family() == "power-loss")
        .collect();
    assert_eq!(faults.len(), 7);
    for (i, f) in faults.into_iter().enumerate() {
        let r = round("reference", f, 3, 1500 + i as u64, Backend::Process).await;
        assert_eq!(r.verdict, RoundVerdict::Passed, "{}", explain(&r));
        let ev = r.fault.as_ref().expect("fault record").evidence.join("; ");
        assert!(ev.contains("killed and its power cut: dropped"), "{ev}");
        // Members with no unsynced bytes at the kill have nothing to tear (seen in CI:
        // every file of every member was synced at that instant).
        let dropped_bytes: u64 = ev
            .split("dropped ")
            .filter_map(|s| s.split(' ').next()?.parse::<u64>().ok())
            .sum();
        if f == FaultKind::PowerLossTornWrite && dropped_bytes > 0 {
            assert!(ev.contains("tore the last write"), "{ev}");
        }
    }
    // Failing fsyncs: the member stops (the reference server exits on a WAL fsync
    // error), its power is cut, nothing it acknowledged is lost; a slow disk under the
    // leader is survived.
    let r = round(
        "reference",
        FaultKind::DiskFsyncEio,
        3,
        1550,
        Backend::Process,
    )
    .await;
    assert_eq!(r.verdict, RoundVerdict::Passed, "{}", explain(&r));
    let ev = r.fault.as_ref().expect("fault record").evidence.join("; ");
    assert!(ev.contains("after its fsyncs began to fail"), "{ev}");
    let r = round(
        "reference",
        FaultKind::DiskSlowFsyncLeader,
        3,
        1551,
        Backend::Process,
    )
    .await;
    assert_eq!(r.verdict, RoundVerdict::Passed, "{}", explain(&r));
    for f in [FaultKind::PowerLossAll, FaultKind::PowerLossAllStrict] {
        let r = round("reference", f, 1, 1600, Backend::Process).await;
        assert_eq!(r.verdict, RoundVerdict::Passed, "{}", explain(&r));
    }
}

/// The power cut bites: a server that acknowledges writes it never fsyncs (the
/// reference server with `--unsafe-no-fsync`) fails a cut of every member, where a
/// SIGKILL alone (the page cache survives it) would not show anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_fsync_fails_a_power_cut() {
    let bin = Target::Reference
        .server_binary(&Cache::from_env())
        .expect("the reference server binary");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("no-fsync-server");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec {} --unsafe-no-fsync \"$@\"\n",
            bin.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = format!("exec:{}", script.display());
    let r = round(&target, FaultKind::KillAll, 1, 1700, Backend::Process).await;
    assert_eq!(
        r.verdict,
        RoundVerdict::Passed,
        "SIGKILL alone: {}",
        explain(&r)
    );
    let r = round(&target, FaultKind::PowerLossAll, 1, 1700, Backend::Process).await;
    assert_eq!(r.verdict, RoundVerdict::Violation, "{}", explain(&r));
}

/// Partitions over real container addresses: a round per partition shape on the
/// reference server, each judged by the packets its rules dropped, and nothing of the
/// rounds left in Docker afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_rounds_on_the_docker_backend() {
    for (i, f) in [
        FaultKind::PartitionLeader,
        FaultKind::PartitionRing,
        FaultKind::DelayPeer,
        FaultKind::KillLeader,
        FaultKind::PauseFollower,
    ]
    .into_iter()
    .enumerate()
    {
        let r = round("reference", f, 3, 1800 + i as u64, Backend::Docker).await;
        assert_eq!(r.verdict, RoundVerdict::Passed, "{}", explain(&r));
        let ev = r.fault.as_ref().expect("fault record").evidence.join("; ");
        if f == FaultKind::DelayPeer {
            assert!(ev.contains("delayer held"), "{ev}");
        } else if f.family() == "network" {
            assert!(ev.contains("packets on cut links"), "{ev}");
        }
    }
    let r = round(
        "reference",
        FaultKind::PowerLossOne,
        3,
        1900,
        Backend::Docker,
    )
    .await;
    assert!(
        matches!(r.verdict, RoundVerdict::Skipped(_)),
        "power loss on docker: {}",
        explain(&r)
    );
    assert_eq!(
        gauntlet_harness::docker::objects_of_owner(std::process::id()).unwrap(),
        Vec::<String>::new(),
        "the rounds left Docker objects behind"
    );
}
