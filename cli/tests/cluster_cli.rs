//! The `gauntlet` binary end to end: `cluster up` against real etcd with the real
//! etcdctl, and one-line errors for bad input.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_gauntlet");

fn cache_binary(target: &str, name: &str) -> std::path::PathBuf {
    gauntlet_harness::Cache::from_env()
        .binary(target, name)
        .unwrap_or_else(|e| panic!("{e} (run `cargo xtask test`, which fetches targets first)"))
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
        .unwrap_or(false)
}

#[test]
fn cluster_up_serves_real_etcdctl_and_stops_on_ctrl_c() {
    let mut child = Command::new(BIN)
        .args(["cluster", "up", "--target", "etcd@3.5.1", "--members", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut endpoints = None;
    let mut pids = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("cluster up printed no ready line within 60 s");
        if let Some(e) = line.strip_prefix("ENDPOINTS=") {
            endpoints = Some(e.to_string());
        }
        if let Some(pid) = line
            .split("  pid ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse::<u32>().ok())
        {
            pids.push(pid);
        }
        if line.starts_with("cluster is up") {
            break;
        }
    }
    let endpoints = endpoints.expect("no ENDPOINTS= line");
    assert_eq!(endpoints.split(',').count(), 3);
    assert_eq!(pids.len(), 3);
    let out = Command::new(cache_binary("etcd@3.5.1", "etcdctl"))
        .args(["--endpoints", &endpoints, "endpoint", "status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "etcdctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().all(|l| l.contains("3.5.1")), "{text}");
    assert_eq!(
        text.matches("true").count(),
        1,
        "exactly one leader: {text}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "gauntlet did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    for pid in pids {
        assert!(!alive(pid), "member {pid} outlived `cluster up`");
    }
}

/// Runs gauntlet with a deadline and returns (exit code, stderr).
fn run_fails(args: &[&str]) -> (i32, String) {
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{args:?} took {:?}",
        started.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    (out.status.code().unwrap_or(-1), err)
}

#[test]
fn bad_input_gives_one_clear_line() {
    let (code, err) = run_fails(&["cluster", "up", "--target", "xline"]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown target `xline`"), "{err}");

    let (code, err) = run_fails(&["cluster", "up", "--target", "exec:/nonexistent/etcd"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("binary not found") && err.contains("/nonexistent/etcd"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ep = format!("127.0.0.1:{dead}");
    let (code, err) = run_fails(&["version", "--endpoints", &ep, "--dial-timeout", "500ms"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot reach any endpoint") && err.contains(&ep),
        "{err}"
    );

    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let (code, err) = run_fails(&[
        "cluster",
        "up",
        "--target",
        "etcd@3.5.1",
        "--base-port",
        &port,
    ]);
    assert_eq!(code, 2);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ")
            && last.contains(&format!("port 127.0.0.1:{port} is already in use")),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "{err}");

    let (code, err) = run_fails(&["targets", "fetch", "etcd@0.0.1"]);
    assert_eq!(code, 2);
    assert!(err.contains("no source provides etcd@0.0.1"), "{err}");
}

#[test]
fn targets_list_shows_both_cached_versions() {
    let out = Command::new(BIN)
        .args(["targets", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("etcd@3.5.1") && text.contains("etcd@3.4.23"),
        "{text}"
    );
}
