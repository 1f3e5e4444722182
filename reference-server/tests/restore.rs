//! Operator workflows on the built `gauntlet-server`, driven by the real etcdctl 3.5.1:
//! a snapshot saved with `etcdctl snapshot save` and restored with
//! `gauntlet-server snapshot restore` starts a new cluster with the same data (same
//! keys, same HashKV); and a binary of an older version refuses, with one line and
//! without changing anything, a data dir whose cluster version moved past it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{etcd_binary, free_port, http_get, member_args, spawn, Server, SERVER};

/// Deadline of one etcdctl run.
const CTL_WITHIN: Duration = Duration::from_secs(20);

fn etcdctl() -> PathBuf {
    etcd_binary("3.5.1").with_file_name("etcdctl")
}

/// Runs etcdctl against `port`; panics with its output unless it succeeds.
fn ctl(port: u16, args: &[&str]) -> String {
    let mut child = Command::new(etcdctl())
        .arg(format!("--endpoints=http://127.0.0.1:{port}"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting etcdctl");
    let start = Instant::now();
    while child.try_wait().expect("etcdctl status").is_none() {
        if start.elapsed() > CTL_WITHIN {
            let _ = child.kill();
            panic!("etcdctl {args:?} did not finish within {CTL_WITHIN:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("etcdctl output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "etcdctl {args:?} failed: {text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hashkv(port: u16) -> u64 {
    let out = ctl(port, &["endpoint", "hashkv", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("hashkv JSON");
    v[0]["HashKV"]["hash"].as_u64().expect("a hash")
}

fn start(dir: &Path, args: &[String], port: u16, env: &[(&str, &str)]) -> Server {
    let mut s = spawn(dir, args, env, port);
    s.wait_healthy();
    s
}

#[test]
fn a_snapshot_saved_by_etcdctl_restores_into_a_new_cluster_with_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let (args, port) = member_args(dir.path());
    let old = start(dir.path(), &args, port, &[]);
    for i in 0..100 {
        ctl(port, &["put", &format!("key{i:03}"), &format!("value-{i}")]);
    }
    ctl(port, &["del", "key050"]);
    let snap = dir.path().join("snap.db");
    let saved = ctl(port, &["snapshot", "save", snap.to_str().unwrap()]);
    assert!(saved.contains("Snapshot saved at"), "{saved}");
    let hash_before = hashkv(port);
    drop(old);

    let peer = free_port();
    let client = free_port();
    let data = dir.path().join("restored");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let out = Command::new(SERVER)
        .args(["snapshot", "restore", snap.to_str().unwrap()])
        .arg(format!("--data-dir={}", data.display()))
        .args(["--name", "r1"])
        .arg(format!("--initial-cluster=r1={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Restoring into an existing data dir is refused, in one line.
    let again = Command::new(SERVER)
        .args(["snapshot", "restore", snap.to_str().unwrap()])
        .arg(format!("--data-dir={}", data.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && err.trim().lines().count() == 1 && err.contains("exists"),
        "{err}"
    );

    let args = vec![
        format!("--data-dir={}", data.display()),
        "--name=r1".to_string(),
        format!("--listen-client-urls=http://127.0.0.1:{client}"),
        format!("--advertise-client-urls=http://127.0.0.1:{client}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=r1={peer_url}"),
    ];
    let _new = start(dir.path(), &args, client, &[]);
    assert_eq!(hashkv(client), hash_before, "the restored cluster's HashKV");
    let keys = ctl(client, &["get", "key", "--prefix", "--keys-only"]);
    assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), 99, "{keys}");
    assert!(ctl(client, &["get", "key007", "--print-value-only"]).contains("value-7"));
    let members = ctl(client, &["member", "list"]);
    assert_eq!(members.lines().count(), 1, "{members}");
    assert!(
        members.contains("r1") && members.contains(&peer_url),
        "{members}"
    );
    // The new cluster takes writes.
    ctl(client, &["put", "after-restore", "x"]);
}

#[test]
fn an_older_binary_refuses_a_data_dir_whose_cluster_version_moved_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let (args, port) = member_args(dir.path());
    let mut old = start(
        dir.path(),
        &args,
        port,
        &[("GAUNTLET_SERVER_VERSION", "3.4.0")],
    );
    ctl(port, &["put", "k", "v"]);
    let version = |port| {
        http_get(port, "/version")
            .map(|(_, b)| b)
            .unwrap_or_default()
    };
    let wait_cluster = |port: u16, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let v = version(port);
            if v.contains(want) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "cluster version never became {want}: {v}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let v = wait_cluster(port, r#""etcdcluster":"3.4.0""#);
    assert!(v.contains(r#""etcdserver":"3.4.0""#), "{v}");
    let _ = old.child.kill();
    let _ = old.child.wait();
    // Upgraded: the lone member's cluster version moves to 3.5.
    let new = start(dir.path(), &args, port, &[]);
    wait_cluster(port, r#""etcdcluster":"3.5.0""#);
    // Let the member record the new storage version, then stop it.
    std::thread::sleep(Duration::from_secs(5));
    drop(new);
    let listing = |d: &Path| {
        let mut names: Vec<String> = walk(d);
        names.sort();
        names
    };
    let before = listing(dir.path());
    let mut refused = spawn(
        dir.path(),
        &args,
        &[("GAUNTLET_SERVER_VERSION", "3.4.0")],
        port,
    );
    let (code, stderr) = refused.wait_exit();
    assert_eq!(code, Some(1), "{stderr}");
    let line = stderr.trim();
    assert_eq!(line.lines().count(), 1, "{stderr}");
    assert!(
        line.contains("newer than this binary's 3.4") || line.contains("invalid downgrade"),
        "{line}"
    );
    let after: Vec<String> = listing(dir.path())
        .into_iter()
        .filter(|n| !n.contains("stderr-"))
        .collect();
    let before: Vec<String> = before
        .into_iter()
        .filter(|n| !n.contains("stderr-"))
        .collect();
    assert_eq!(before, after, "the refused start changed the data dir");
    // The new binary still starts on it, with the data.
    let _again = start(dir.path(), &args, port, &[]);
    assert!(ctl(port, &["get", "k", "--print-value-only"]).contains('v'));
}

/// Every file under `d` with its size (what a refused start must leave as it was).
fn walk(d: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![d.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                out.push(format!("{} {len}", path.display()));
            }
        }
    }
    out
}

/// Restores `snap` as member `name` of the two-member cluster `initial`.
fn restore_as(dir: &Path, snap: &Path, name: &str, peer_url: &str, initial: &str) -> PathBuf {
    let data = dir.join(format!("data-{name}"));
    let out = Command::new(SERVER)
        .args(["snapshot", "restore", snap.to_str().unwrap()])
        .arg(format!("--data-dir={}", data.display()))
        .args(["--name", name])
        .arg(format!("--initial-cluster={initial}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restore {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    data
}

/// A one-member cluster's snapshot after ten puts of `value` (revision 11 either way).
fn snapshot_with(dir: &Path, value: &str) -> PathBuf {
    let (args, port) = member_args(dir);
    let _s = start(dir, &args, port, &[]);
    for i in 0..10 {
        ctl(port, &["put", &format!("k{i}"), value]);
    }
    let snap = dir.join(format!("snap-{value}.db"));
    ctl(port, &["snapshot", "save", snap.to_str().unwrap()]);
    snap
}

/// Two members whose data differ at the same revision (each restored from another
/// snapshot, as a botched restore leaves them): the leader's periodic check raises
/// CORRUPT, and a member started with the initial check refuses to start.
#[test]
fn corruption_checks_find_members_whose_data_differ() {
    let dir = tempfile::tempdir().unwrap();
    let snap_a = snapshot_with(dir.path(), "a");
    let snap_b = snapshot_with(dir.path(), "b");
    let (p1, p2, c1, c2) = (free_port(), free_port(), free_port(), free_port());
    let (u1, u2) = (
        format!("http://127.0.0.1:{p1}"),
        format!("http://127.0.0.1:{p2}"),
    );
    let initial = format!("r1={u1},r2={u2}");
    let d1 = restore_as(dir.path(), &snap_a, "r1", &u1, &initial);
    let d2 = restore_as(dir.path(), &snap_b, "r2", &u2, &initial);
    let member = |name: &str, data: &Path, peer: &str, client: u16, extra: &[&str]| {
        let mut args = vec![
            format!("--name={name}"),
            format!("--data-dir={}", data.display()),
            format!("--listen-client-urls=http://127.0.0.1:{client}"),
            format!("--advertise-client-urls=http://127.0.0.1:{client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster={initial}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let check = ["--experimental-corrupt-check-time=1s"];
    let r1 = spawn(dir.path(), &member("r1", &d1, &u1, c1, &check), &[], c1);
    let mut r2 = spawn(dir.path(), &member("r2", &d2, &u2, c2, &check), &[], c2);
    r2.wait_healthy();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alarms = ctl(c2, &["alarm", "list"]);
        if alarms.contains("CORRUPT") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no CORRUPT alarm within 20 s; r1:\n{}\nr2:\n{}",
            r1.stderr(),
            r2.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Under CORRUPT, key requests are refused.
    let refused = Command::new(etcdctl())
        .arg(format!("--endpoints=http://127.0.0.1:{c2}"))
        .args(["put", "x", "y"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("corrupt cluster"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // r2 restarted with the initial check refuses to start next to r1.
    let _ = r2.child.kill();
    let _ = r2.child.wait();
    let mut again = spawn(
        dir.path(),
        &member(
            "r2",
            &d2,
            &u2,
            c2,
            &["--experimental-initial-corrupt-check=true"],
        ),
        &[],
        c2,
    );
    let (code, stderr) = again.wait_exit();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("found data inconsistency with peers"),
        "{stderr}"
    );
    drop(r1);
}
