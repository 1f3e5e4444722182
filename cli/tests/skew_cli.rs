//! `gauntlet skew` from the command line, against real etcd 3.4.23 and 3.5.1 (the test
//! command provisions both): a short upgrade smoke passes with the refusal etcd
//! documents, a member whose answers are mutated fails the run, and bad input is one
//! line and exit 2.

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

const FROM: &str = "etcd@3.4.23";
const TO: &str = "etcd@3.5.1";

#[test]
fn bad_input_is_one_line_and_exit_2() {
    for (args, says) in [
        (
            vec!["skew", "--from", FROM, "--to", TO, "--scenario", "nosuch"],
            "no scenario matches",
        ),
        (
            vec![
                "skew",
                "--from",
                "reference",
                "--to",
                TO,
                "--scenario",
                "downgrade.api",
            ],
            "different servers",
        ),
        (
            vec![
                "skew",
                "--from",
                TO,
                "--to",
                FROM,
                "--scenario",
                "downgrade.api",
            ],
            "not an upgrade etcd supports",
        ),
        (vec!["skew", "--from", "etcd", "--to", TO], "unknown target"),
        (
            vec![
                "skew",
                "--from",
                "reference@no-such-rev-anywhere",
                "--to",
                "reference",
            ],
            "no such commit",
        ),
        (
            vec!["skew", "--from", FROM, "--to", TO, "--mutate", "nosuch"],
            "unknown mutation",
        ),
    ] {
        let (code, _, err) = gauntlet(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(lines[0].contains(says), "{args:?}: {err}");
    }
}

#[test]
fn list_scenarios_names_every_family() {
    let (code, out, err) = gauntlet(&["skew", "--from", FROM, "--to", TO, "--list-scenarios"]);
    assert_eq!(code, 0, "{err}");
    for family in [
        "rolling-upgrade.",
        "mixed.",
        "rollback.",
        "refusal.",
        "downgrade.",
        "client-skew.",
    ] {
        assert!(out.contains(family), "{family} missing: {out}");
    }
}

/// The README test command's skew smoke: a rolling upgrade and the documented refusal
/// of the old binary on upgraded data, each judged under recorded traffic, and the
/// Kubernetes conformance profile across the upgrade.
#[test]
fn an_etcd_3_4_to_3_5_upgrade_passes_with_the_documented_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (code, _, err) = gauntlet(&[
        "skew",
        "--from",
        FROM,
        "--to",
        TO,
        "--scenario",
        "rolling-upgrade.followers-first,refusal.old-binary-on-upgraded-data,client-skew.kubernetes-profile",
        "--profile",
        "etcd",
        "--out",
        out,
    ]);
    assert_eq!(code, 0, "{err}");
    let matrix: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("matrix.json")).unwrap())
            .unwrap();
    let results = matrix["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{matrix}");
    for r in results {
        assert_eq!(r["verdict"]["status"], "passed", "{r}");
    }
    for r in &results[..2] {
        assert!(r["operations"].as_u64().unwrap() > 100, "{r}");
    }
    // The Kubernetes profile against the old, a mixed and the upgraded cluster.
    let k8s = results[2]["checks"].as_array().unwrap();
    assert_eq!(k8s.len(), 3, "{k8s:?}");
    assert!(
        k8s.iter()
            .all(|c| c["observed"].as_str().unwrap().contains(" 0 failed")),
        "{k8s:?}"
    );
    // The cluster version moved only with the last member.
    let checks = results[0]["checks"].as_array().unwrap();
    let versions: Vec<&str> = checks
        .iter()
        .filter(|c| c["what"] == "cluster version on every member")
        .map(|c| c["expected"].as_str().unwrap())
        .collect();
    assert_eq!(versions.len(), 4, "{checks:?}");
    assert!(
        versions[..3].iter().all(|v| v.starts_with("3.4.0")),
        "{versions:?}"
    );
    assert!(versions[3].starts_with("3.5.0"), "{versions:?}");
    // The refusal as etcd 3.4.23 printed it.
    let refusal = results[1]["refusals"][0].as_str().unwrap();
    assert!(
        refusal.contains("cluster cannot be downgraded")
            && refusal.contains("lower than determined cluster version"),
        "{refusal}"
    );
    let md = std::fs::read_to_string(dir.path().join("matrix.md")).unwrap();
    assert!(
        md.contains("| rolling-upgrade.followers-first | etcd | pass |"),
        "{md}"
    );
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains("rolling-upgrade.followers-first [etcd]") && !junit.contains("<failure"),
        "{junit}"
    );
}

/// The self-test: one member's answers mutated (a lost write, a stale revision) during a
/// rolling upgrade must fail the run, with the scenario's directory and rerun command.
#[test]
fn a_mutated_member_fails_the_run() {
    for mutation in ["lose-write", "stale-revision"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_str().unwrap();
        let (code, _, err) = gauntlet(&[
            "skew",
            "--from",
            FROM,
            "--to",
            TO,
            "--scenario",
            "rolling-upgrade.leader-first",
            "--profile",
            "etcd",
            "--mutate",
            mutation,
            "--out",
            out,
        ]);
        assert_eq!(code, 1, "{mutation}: {err}");
        assert!(
            err.contains("FAIL") && err.contains("rerun: gauntlet skew"),
            "{mutation}: {err}"
        );
        let scenario = dir.path().join("rolling-upgrade.leader-first.etcd");
        for f in ["scenario.json", "rerun.txt", "members/m0.log"] {
            assert!(scenario.join(f).is_file(), "{mutation}: {f} missing");
        }
        // A lost write is caught in the judged history, which the directory keeps; a
        // stale revision already in the first read of the fresh cluster.
        let json = std::fs::read_to_string(scenario.join("scenario.json")).unwrap();
        match mutation {
            "lose-write" => assert!(scenario.join("history.jsonl").is_file(), "{json}"),
            _ => assert!(json.contains("revision"), "{json}"),
        }
    }
}
