//! How `gauntlet conformance` treats servers that are not etcd, with stand-ins built
//! from the reference server (`gauntlet stand-in`): a product version is never read
//! as an etcd version, a run that tests nothing never exits 0, and a server that dies
//! mid-run is one finding that names the request, not a pile of timeouts.

use std::path::{Path, PathBuf};
use std::process::Command;

use gauntlet_harness::{Cache, Cluster, ClusterSpec, DieOn, Proxy, ProxyOptions, Target};
use serde_json::Value;

struct Run {
    code: i32,
    stderr: String,
    results: Value,
    summary: String,
}

fn conformance(args: &[&str], out: &Path) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("conformance")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run gauntlet");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let results = std::fs::read_to_string(out.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap_or_default();
    Run {
        code: output.status.code().unwrap_or(-1),
        stderr,
        results,
        summary,
    }
}

/// An `exec:` target: the reference server behind `gauntlet stand-in` with `flags`.
fn stand_in(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let quoted: Vec<String> = flags
        .iter()
        .map(|f| format!("'{}'", f.replace('\'', "'\\''")))
        .collect();
    let script = dir.join(name);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec '{}' stand-in {} -- \"$@\"\n",
            env!("CARGO_BIN_EXE_gauntlet"),
            quoted.join(" ")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn outcomes(results: &Value) -> Vec<(String, String)> {
    results["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["id"].as_str().unwrap_or_default().to_string(),
                        r["outcome"]["status"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_product_version_is_held_to_the_newest_etcd_profile_and_every_case_runs() {
    let dir = tempfile::tempdir().unwrap();
    // Both kv.put. (all versions) and a 3.5-only case, to show nothing is ruled out.
    for (i, version) in ["0.6.1", "rust etcds/0.23.0 registry/2", ""]
        .into_iter()
        .enumerate()
    {
        let target = stand_in(dir.path(), &format!("v{i}"), &["--report-version", version]);
        let out = dir.path().join(format!("out{i}"));
        let r = conformance(
            &[
                "--target",
                &format!("exec:{}", target.display()),
                "--members",
                "1",
                "--filter",
                "kv.put.",
            ],
            &out,
        );
        assert_eq!(r.code, 0, "version {version:?}:\n{}", r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "server reports version `{version}`, not an etcd version: holding it to etcd 3.5; use --profile to choose"
            )),
            "{}",
            r.stderr
        );
        assert_eq!(r.results["server_version"], version);
        assert_eq!(r.results["holding"]["profile"], "etcd-3.5");
        assert_eq!(r.results["holding"]["reason"], "not-etcd");
        let o = outcomes(&r.results);
        assert!(o.len() >= 10, "{o:?}");
        assert!(o.iter().all(|(_, s)| s == "passed"), "{o:?}");
        assert!(r
            .summary
            .contains(&format!("Server reports version `{version}`")));
    }
    // --profile always wins, even over free text.
    let target = stand_in(
        dir.path(),
        "free",
        &["--report-version", "rust etcds/0.23.0 registry/2"],
    );
    let r = conformance(
        &[
            "--target",
            &format!("exec:{}", target.display()),
            "--members",
            "1",
            "--profile",
            "etcd-3.4",
            "--filter",
            "kv.put.",
        ],
        &dir.path().join("forced"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("not an etcd version"), "{}", r.stderr);
    assert_eq!(r.results["holding"]["profile"], "etcd-3.4");
    assert_eq!(r.results["holding"]["reason"], "forced");
}

#[test]
fn a_launched_target_that_dies_is_one_finding_and_the_rest_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let target = stand_in(dir.path(), "dies", &["--die-on", "invalid-range"]);
    let r = conformance(
        &[
            "--target",
            &format!("exec:{}", target.display()),
            "--members",
            "3",
            "--filter",
            "kv.range.",
        ],
        &dir.path().join("out"),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let crashes = r.results["crashes"].as_array().cloned().unwrap_or_default();
    assert_eq!(crashes.len(), 1, "{:#}", r.results["crashes"]);
    let c = &crashes[0];
    assert_eq!(
        c["trigger"],
        serde_json::json!({"status": "confirmed", "cases": ["kv.range.end_before_key_empty"]})
    );
    assert!(
        c["how"].as_str().unwrap().contains("exit status: 101"),
        "{c:#}"
    );
    assert_eq!(c["restarted"], true);
    assert!(
        c["log_tail"].as_array().unwrap().iter().any(|l| l
            .as_str()
            .unwrap()
            .contains("stand-in: panic: invalid range")),
        "{c:#}"
    );
    let trigger = c["in_flight"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "kv.range.end_before_key_empty")
        .expect("the trigger was in flight");
    assert!(
        trigger["requests"].as_array().unwrap().iter().any(|q| q
            .as_str()
            .unwrap()
            .contains("no answer")
            && q.as_str().unwrap().contains("Range(")),
        "{trigger:#}"
    );
    // The trigger is the one failure; every other case ran after the restart and passed.
    let o = outcomes(&r.results);
    let bad: Vec<_> = o
        .iter()
        .filter(|(id, s)| s != "passed" && id != "kv.range.end_before_key_empty")
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    assert!(o.contains(&(
        "kv.range.end_before_key_empty".to_string(),
        "killed_target".to_string()
    )));
    // The finding comes first, once, with the command that reruns the trigger alone.
    let crash_at = r.summary.find("## The target died").expect("crash section");
    let table_at = r.summary.find("| service |").expect("table");
    assert!(crash_at < table_at);
    assert_eq!(r.stderr.matches("TARGET DIED").count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("--filter kv.range.end_before_key_empty"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_external_target_that_dies_leaves_the_rest_unavailable_not_failed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cluster = rt
        .block_on(Cluster::start(
            ClusterSpec::new(Target::Reference, 1),
            &Cache::from_env(),
        ))
        .expect("start the reference server (cargo build -p gauntlet-reference-server)");
    let proxy = rt
        .block_on(Proxy::start_with(
            &cluster.endpoints()[0],
            ProxyOptions {
                die_on: Some(DieOn::InvalidRange),
                ..ProxyOptions::default()
            },
        ))
        .unwrap();
    let r = conformance(
        &[
            "--endpoints",
            &proxy.endpoint(),
            "--filter",
            "kv.range.",
            "--command-timeout",
            "3s",
        ],
        &dir.path().join("out"),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let crashes = r.results["crashes"].as_array().cloned().unwrap_or_default();
    assert_eq!(crashes.len(), 1, "{:#}", r.results["crashes"]);
    assert_eq!(crashes[0]["trigger"]["status"], "not-tried");
    assert!(crashes[0]["how"]
        .as_str()
        .unwrap()
        .contains("Status probes in a row unanswered"));
    assert!(crashes[0]["in_flight"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == "kv.range.end_before_key_empty"));
    let o = outcomes(&r.results);
    let unavailable = o.iter().filter(|(_, s)| s == "unavailable").count();
    let failed = o.iter().filter(|(_, s)| s == "failed").count();
    assert!(unavailable > 0, "{o:?}");
    assert_eq!(
        failed, 0,
        "cases the dead target could not answer are not failures: {o:?}"
    );
    assert!(r.summary.contains("## Target unavailable"), "{}", r.summary);
    drop(proxy);
    drop(cluster);
}

#[test]
fn a_run_in_which_nothing_ran_exits_2_and_says_why() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cluster = rt
        .block_on(Cluster::start(
            ClusterSpec::new(Target::Reference, 1),
            &Cache::from_env(),
        ))
        .expect("start the reference server");
    // Only a case that needs a fresh cluster, against --endpoints: nothing can run.
    let r = conformance(
        &[
            "--endpoints",
            &cluster.endpoints()[0],
            "--filter",
            "auth.enable.no_root_user",
        ],
        &dir.path().join("out"),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("the run is incomplete: no case ran (1 selected)"),
        "{}",
        r.stderr
    );
    drop(cluster);
}
