//! `gauntlet certify` from the command line: a smoke of the embedded 3-member
//! reference cluster (conformance, chaos, benchmarks) writes the whole report
//! directory; the `--baseline` gate passes an unchanged run and fails a seeded
//! regression, naming it; bad input is one line and exit 2.

use std::path::Path;
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

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_report = dir.path().join("x.json");
    std::fs::write(&not_a_report, "{\"schema_version\": 7}").unwrap();
    for (args, says) in [
        (vec!["certify", "--level", "huge"], "not a level"),
        (vec!["certify", "--areas", "chaos,nope"], "not an area"),
        (
            vec!["certify", "--members", "0"],
            "--members must be between 1 and 9",
        ),
        (
            vec!["certify", "--baseline", "/nonexistent/report.json"],
            "reading --baseline /nonexistent/report.json",
        ),
        (
            vec!["certify", "--baseline", not_a_report.to_str().unwrap()],
            "schema version 7",
        ),
        (
            vec!["certify", "--from", "etcd@3.5.1", "--to", "etcd@3.4.23"],
            "not an upgrade etcd supports",
        ),
        (
            vec![
                "certify",
                "--target",
                "reference",
                "--endpoints",
                "127.0.0.1:1",
            ],
            "either --target or --endpoints",
        ),
    ] {
        let (code, _, err) = gauntlet(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn a_smoke_of_the_reference_cluster_writes_the_report_and_the_gate_works_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let (code, out, err) = gauntlet(&[
        "certify",
        "--areas",
        "conformance,chaos,bench",
        "--out",
        a.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("RECOMMENDED WITH CAVEATS"), "{out}");
    for f in [
        "index.html",
        "report.md",
        "junit.xml",
        "submission/PRODUCT.yaml",
        "submission/README.md",
        "submission/junit_01.xml",
        "conformance/junit.xml",
        "bench/put/cdf.svg",
        "bench/kube/result.json",
    ] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    let report = json(&a.join("report.json"));
    assert_eq!(report["schema_version"], 1);
    let status = |area: &str| {
        report["areas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["area"] == area)
            .map(|x| x["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(status("conformance"), "pass", "{report:#}");
    assert_eq!(status("chaos"), "pass", "{report:#}");
    assert_eq!(status("skew"), "not-run");
    assert_eq!(status("bench"), "pass", "{report:#}");
    // Every fault family ran on the reference server (it is built with failpoints).
    let families: Vec<&str> = report["chaos"]["families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["family"].as_str().unwrap())
        .collect();
    assert_eq!(
        families,
        [
            "process",
            "maintenance",
            "network",
            "failpoint",
            "power-loss"
        ]
    );
    let log = std::fs::read_to_string(a.join("submission/e2e.log")).unwrap();
    let last = log.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("SUCCESS! -- ") && last.ends_with(" PASS"),
        "{last}"
    );
    assert!(std::fs::metadata(a.join("report.md")).unwrap().len() < 1024 * 1024);

    // Rendered again from report.json alone: the same answer and log.
    std::fs::remove_file(a.join("index.html")).unwrap();
    let (code, out, err) = gauntlet(&["certify", "--render", a.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.starts_with("RECOMMENDED WITH CAVEATS"), "{out}");
    assert!(a.join("index.html").is_file());
    assert_eq!(
        std::fs::read_to_string(a.join("submission/e2e.log")).unwrap(),
        log
    );

    // Unchanged (within a tolerance no noise reaches): exit 0.
    let b = dir.path().join("b");
    let baseline = a.join("report.json");
    let (code, out, err) = gauntlet(&[
        "certify",
        "--areas",
        "bench",
        "--baseline",
        baseline.to_str().unwrap(),
        "--tolerance",
        "1000",
        "--out",
        b.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("baseline: nothing got worse"), "{out}");

    // A baseline a hundred times faster: the same run is a regression, named.
    let mut seeded = report.clone();
    for w in seeded["bench"]["workloads"].as_array_mut().unwrap() {
        for o in w["ops"].as_array_mut().unwrap() {
            let rps = o["requests_per_s"].as_f64().unwrap();
            o["requests_per_s"] = (rps * 100.0 + 1.0).into();
        }
    }
    let seeded_path = dir.path().join("seeded.json");
    std::fs::write(&seeded_path, seeded.to_string()).unwrap();
    let c = dir.path().join("c");
    let (code, out, err) = gauntlet(&[
        "certify",
        "--areas",
        "bench",
        "--baseline",
        seeded_path.to_str().unwrap(),
        "--out",
        c.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("REGRESSION: bench put put: throughput"),
        "{out}"
    );
    assert!(err.contains("regression(s) against"), "{err}");
}
