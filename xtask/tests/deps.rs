//! Invariant: crates depend on each other only along the arrows of ARCHITECTURE.md
//!
//! ```text
//! api ← harness ← {conformance, chaos, bench, skew} ← reports ← cli
//! skew ← chaos: a skew scenario runs under chaos's recorded traffic and judgement
//! checker: depends on nothing of ours; used by chaos, skew and cli
//! powerfs: depends on nothing of ours; used by harness (which re-exports it)
//! reference-server: depends on api only; nothing depends on it
//! ```
//!
//! Checked on `cargo metadata`, for every dependency kind (normal, dev, build).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// For each workspace crate, the workspace crates it may depend on.
fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let suites = [
        "gauntlet-conformance",
        "gauntlet-chaos",
        "gauntlet-bench",
        "gauntlet-skew",
    ];
    let mut m: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    m.insert("gauntlet-api", BTreeSet::new());
    m.insert("gauntlet-checker", BTreeSet::new());
    m.insert("gauntlet-powerfs", BTreeSet::new());
    m.insert("gauntlet-reference-server", ["gauntlet-api"].into());
    m.insert(
        "gauntlet-harness",
        ["gauntlet-api", "gauntlet-powerfs"].into(),
    );
    for s in suites {
        m.insert(s, ["gauntlet-api", "gauntlet-harness"].into());
    }
    m.get_mut("gauntlet-chaos")
        .unwrap()
        .insert("gauntlet-checker");
    m.get_mut("gauntlet-skew")
        .unwrap()
        .insert("gauntlet-checker");
    // A skew scenario is judged exactly as a chaos round is: by chaos's recorded
    // traffic, watchers and validation (`gauntlet_chaos::round::Session`).
    m.get_mut("gauntlet-skew").unwrap().insert("gauntlet-chaos");
    let mut reports: BTreeSet<&str> = ["gauntlet-api", "gauntlet-harness"].into();
    reports.extend(suites);
    m.insert("gauntlet-reports", reports.clone());
    let mut cli = reports;
    cli.extend(["gauntlet-reports", "gauntlet-checker"]);
    m.insert("gauntlet-cli", cli);
    m.insert("xtask", BTreeSet::new());
    m
}

/// Every violation in `graph` (crate → workspace crates it depends on).
fn violations(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let allowed = allowed();
    let mut out = Vec::new();
    for (krate, deps) in graph {
        let Some(ok) = allowed.get(krate.as_str()) else {
            out.push(format!("{krate} is not in the dependency table of xtask/tests/deps.rs: add it with its allowed arrows"));
            continue;
        };
        for d in deps {
            if !ok.contains(d.as_str()) {
                out.push(format!("{krate} must not depend on {d}"));
            }
        }
    }
    out
}

fn workspace_graph() -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["name"].as_str())
                .filter(|d| names.contains(*d))
                .map(String::from)
                .collect();
            (p["name"].as_str().unwrap_or_default().to_string(), deps)
        })
        .collect()
}

#[test]
fn workspace_follows_the_dependency_direction() {
    let graph = workspace_graph();
    for krate in allowed().keys() {
        assert!(
            graph.contains_key(*krate),
            "crate {krate} of the layout is missing; have {:?}",
            graph.keys()
        );
    }
    let v = violations(&graph);
    assert!(
        v.is_empty(),
        "dependency direction violated:\n{}",
        v.join("\n")
    );
}

#[test]
fn the_check_catches_arrows_against_the_direction() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.insert(
        "gauntlet-harness".into(),
        [
            "gauntlet-api".to_string(),
            "gauntlet-reference-server".to_string(),
        ]
        .into(),
    );
    graph.insert(
        "gauntlet-checker".into(),
        ["gauntlet-harness".to_string()].into(),
    );
    graph.insert(
        "gauntlet-conformance".into(),
        ["gauntlet-reference-server".to_string()].into(),
    );
    graph.insert("mystery".into(), BTreeSet::new());
    let v = violations(&graph);
    assert_eq!(v.len(), 4, "{v:?}");
    assert!(v
        .iter()
        .any(|s| s == "gauntlet-harness must not depend on gauntlet-reference-server"));
    assert!(v
        .iter()
        .any(|s| s == "gauntlet-checker must not depend on gauntlet-harness"));
}
