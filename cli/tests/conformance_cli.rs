//! `gauntlet conformance` command-line behaviour that needs no cluster: listing, and
//! bad input answered with one line and exit code 2.

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
fn list_prints_every_case_once() {
    let (code, out, _) = gauntlet(&["conformance", "--list"]);
    assert_eq!(code, 0);
    let ids: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(ids.len() >= 300, "{} cases listed", ids.len());
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "duplicate ids listed");
    assert!(ids.contains(&"kv.range.prefix_limit_more"));
}

#[test]
fn kubernetes_profile_lists_a_subset() {
    let (code, out, _) = gauntlet(&["conformance", "--list", "--profile", "kubernetes"]);
    assert_eq!(code, 0);
    let n = out.lines().count();
    assert!((10..100).contains(&n), "{n} kubernetes cases");
    assert!(out.contains("kv.txn.mod_revision_update_kubernetes"));
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    for args in [
        vec![
            "conformance",
            "--mutate",
            "no-such-mutation",
            "--target",
            "etcd@3.5.1",
        ],
        vec![
            "conformance",
            "--filter",
            "no-such-case-anywhere",
            "--target",
            "etcd@3.5.1",
        ],
        vec![
            "conformance",
            "--concurrency",
            "0",
            "--target",
            "etcd@3.5.1",
        ],
        vec![
            "conformance",
            "--target",
            "etcd@3.5.1",
            "--endpoints",
            "127.0.0.1:1",
        ],
        vec![
            "conformance",
            "--target",
            "nonsense",
            "--filter",
            "kv.put.empty_key",
        ],
    ] {
        let (code, _, err) = gauntlet(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
    let (code, _, _) = gauntlet(&["conformance", "--profile", "etcd-9"]);
    assert_eq!(code, 2);
}
