//! `gauntlet chaos` from the command line: bad input is one line and exit 2; a clean
//! run exits 0 and writes its reports; a self-test round that must fail exits 1 and
//! leaves a directory whose history `gauntlet check --model etcd` re-checks unchanged.

use std::process::Command;

fn gauntlet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(args)
        .output()
        .expect("run gauntlet");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    for (args, says) in [
        (vec!["chaos", "--fault", "nosuch.*"], "matches no fault"),
        (vec!["chaos", "--profile", "k8s"], "use etcd or kubernetes"),
        (
            vec![
                "chaos",
                "--members",
                "1",
                "--fault",
                "process.kill-follower",
            ],
            "needs a follower",
        ),
        (
            vec!["chaos", "--rounds", "0"],
            "--rounds must be at least 1",
        ),
        (
            vec!["chaos", "--rounds", "2", "--round", "5"],
            "outside the plan",
        ),
        (vec!["chaos", "--mutate", "nonsense"], "unknown mutation"),
        (vec!["chaos", "--target", "nonsense"], "nonsense"),
        (
            vec!["chaos", "--regression", "etcd-1"],
            "unknown regression `etcd-1`: known are etcd-13766",
        ),
        (
            vec!["chaos", "--target", "etcd@3.5.1", "--fault", "failpoint.*"],
            "no fault matching \"failpoint.*\" applies to etcd@3.5.1",
        ),
    ] {
        let (code, _, err) = gauntlet(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        // One line (clap adds its usual pointer to --help after flag errors; leaving
        // failpoint faults out of the plan is said on a line of its own first).
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| {
                !l.trim().is_empty()
                    && !l.starts_with("For more information")
                    && !l.contains("failpoint fault(s) left out")
            })
            .collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
    }
}

#[test]
fn list_faults_names_every_family() {
    let (code, out, _) = gauntlet(&["chaos", "--list-faults"]);
    assert_eq!(code, 0);
    for name in [
        "none",
        "process.kill-leader",
        "process.pause-follower",
        "process.replace-member",
        "maintenance.compact",
        "network.partition-ring",
        "failpoint.panic-raft-before-save",
        "power-loss.all-strict-metadata",
        "power-loss.torn-write",
        "disk.fsync-eio-then-power-cut",
    ] {
        assert!(out.contains(name), "{out}");
    }
    let (code, out, _) = gauntlet(&["chaos", "--list-regressions"]);
    assert_eq!(code, 0);
    for name in [
        "etcd-13766",
        "etcd-15220",
        "etcd-15271",
        "reproduced by gauntlet",
    ] {
        assert!(out.contains(name), "{out}");
    }
}

#[test]
fn a_clean_run_exits_0_and_a_lie_exits_1_with_rechecked_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clean");
    let (code, stdout, err) = gauntlet(&[
        "chaos",
        "--rounds",
        "2",
        "--fault",
        "none",
        "--duration",
        "500ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}\n{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["rounds"], 2);
    assert_eq!(summary["violations"], 0);
    assert_eq!(summary["faults"]["none"]["rounds"], 2);
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase").count(), 2, "{junit}");
    assert!(std::fs::read_to_string(out.join("summary.md"))
        .unwrap()
        .contains("| none | 2 | 0 |"));

    let bad = dir.path().join("lie");
    let (code, _, err) = gauntlet(&[
        "chaos",
        "--rounds",
        "1",
        "--fault",
        "none",
        "--duration",
        "500ms",
        "--mutate",
        "lose-write",
        "--out",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("rerun: gauntlet chaos"), "{err}");
    let round = bad.join("round-0");
    for f in [
        "history.jsonl",
        "watch.json",
        "round.json",
        "rerun.txt",
        "history.html",
    ] {
        assert!(
            round.join(f).is_file(),
            "{f} missing in {}",
            round.display()
        );
    }
    assert!(round.join("members").join("m0.log").is_file());
    let rerun = std::fs::read_to_string(round.join("rerun.txt")).unwrap();
    assert!(
        rerun.contains("--mutate lose-write") && rerun.contains("--round 0"),
        "{rerun}"
    );
    // The evidence re-checks unchanged: not linearizable.
    let (code, stdout, err) = gauntlet(&[
        "check",
        "--model",
        "etcd",
        "--format",
        "jsonl",
        round.join("history.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}\n{err}");
    let junit = std::fs::read_to_string(bad.join("junit.xml")).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
    // And the whole round re-judges without a server: still a violation.
    let (code, stdout, err) = gauntlet(&["chaos", "--revalidate", round.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}\n{err}");
    assert!(stdout.contains("linearizability"), "{stdout}");
}

/// `--toxiproxy URL` puts the peer proxies on a toxiproxy API server other than the
/// round's own: here `gauntlet proxy`, standing in for a real toxiproxy.
#[test]
fn network_faults_drive_an_external_toxiproxy() {
    use std::io::{BufRead, BufReader};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["proxy", "--listen-api", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("toxiproxy API on"), "{line}");
    let url = format!("http://127.0.0.1:{port}");
    let (code, out, err) = gauntlet(&[
        "chaos",
        "--rounds",
        "1",
        "--fault",
        "network.delay-peer",
        "--duration",
        "500ms",
        "--toxiproxy",
        &url,
    ]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("network.delay-peer"), "{err}");
}

/// Ctrl-C in the middle of a docker-backend round: gauntlet tears the round's cluster
/// down and exits 130, leaving no container or network it owned.
#[test]
fn ctrl_c_on_the_docker_backend_leaves_nothing_behind() {
    use std::time::{Duration, Instant};
    let mut child = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args([
            "chaos",
            "--backend",
            "docker",
            "--target",
            "reference",
            "--rounds",
            "1",
            "--fault",
            "none",
            "--duration",
            "20s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let objects = gauntlet_harness::docker::objects_of_owner(pid).unwrap();
        if objects
            .iter()
            .filter(|o| o.starts_with("container"))
            .count()
            == 3
        {
            break;
        }
        if let Some(s) = child.try_wait().unwrap() {
            panic!("gauntlet exited ({s}) before its members ran");
        }
        assert!(
            Instant::now() < deadline,
            "no 3 containers within 120 s: {objects:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "gauntlet did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{status}");
    assert_eq!(
        gauntlet_harness::docker::objects_of_owner(pid).unwrap(),
        Vec::<String>::new()
    );
}
