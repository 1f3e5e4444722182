//! The report model end to end: verdicts, the recommendation, the renderers and the
//! baseline gate, on reports built by hand.

use gauntlet_reports::model::*;
use gauntlet_reports::{gate, junit, markdown, verdict};

fn case(id: &str, service: &str, status: CaseStatus) -> CaseRow {
    CaseRow {
        id: id.into(),
        service: service.into(),
        status,
        guarantee: "the guarantee <b>".into(),
        detail: if status == CaseStatus::Passed {
            String::new()
        } else {
            "request: put\n  expected: x\n  actual: y".into()
        },
        known: (status == CaseStatus::KnownIssue).then(|| Known {
            description: "watch misses an event".into(),
            url: "https://github.com/etcd-io/etcd/issues/1".into(),
            fixed_in: "3.5.3".into(),
        }),
        duration_ms: 3,
    }
}

fn round(n: u64, status: RoundStatus) -> RoundRow {
    RoundRow {
        family: "process".into(),
        fault: "process.kill-leader".into(),
        profile: "etcd".into(),
        round: n,
        status,
        details: if status == RoundStatus::Violation {
            vec!["linearizability: lost write".into()]
        } else {
            Vec::new()
        },
        known: Vec::new(),
        operations: 100,
        wall_ms: 1000,
        rerun: format!("gauntlet chaos --round {n}"),
        evidence: None,
    }
}

fn bench_row(rps: f64, p99: f64, slo_pass: bool) -> BenchRow {
    BenchRow {
        workload: "put".into(),
        params: "total=4000".into(),
        rerun: "gauntlet bench put".into(),
        ops: vec![OpRow {
            name: "put".into(),
            count: 4000,
            errors: 0,
            requests_per_s: rps,
            latency_ms_p50: p99 / 2.0,
            latency_ms_p99: p99,
            latency_ms_p999: p99 * 2.0,
        }],
        slo: vec![SloRow {
            name: "mutating".into(),
            measured_s: 0.1,
            limit_s: 1.0,
            samples: 10,
            pass: slo_pass,
        }],
        error: None,
        plots: Vec::new(),
    }
}

/// A report of `target` (etcd release when `etcd`), with the given results.
fn report(
    etcd: Option<&str>,
    server_version: &str,
    cases: Vec<CaseRow>,
    rounds: Vec<RoundRow>,
    bench: Vec<BenchRow>,
) -> Report {
    let conf = Conformance {
        held_to: "etcd-3.5".into(),
        services: vec![ServiceCounts {
            service: "kv".into(),
            ..ServiceCounts::default()
        }],
        cases,
        crashes: Vec::new(),
        rerun: "gauntlet conformance --target reference --members 3".into(),
        wall_ms: 10,
    };
    let conf_status = if conf.cases.iter().any(|c| c.status.is_failure()) {
        Status::Fail
    } else {
        Status::Pass
    };
    let (chaos, chaos_verdict) = gauntlet_reports::convert::chaos(rounds, 3, Vec::new(), 5000);
    let (bench, bench_verdict) = gauntlet_reports::convert::bench(bench, 100);
    let mut r = Report {
        schema_version: SCHEMA_VERSION,
        gauntlet_version: "0.1.0".into(),
        started_unix_s: 0,
        wall_ms: 1000,
        level: Level::Quick,
        seed: 1,
        target: TargetInfo {
            label: "x".into(),
            target: Some(etcd.map_or("reference".into(), |v| format!("etcd@{v}"))),
            members: 3,
            server_version: server_version.into(),
            etcd_release: etcd.map(str::to_string),
            skew_pair: None,
        },
        command: "gauntlet certify".into(),
        recommendation: Recommendation {
            level: Answer::Recommended,
            summary: String::new(),
            upgrade_to: None,
            reasons: Vec::new(),
        },
        areas: vec![
            AreaVerdict {
                area: Area::Conformance,
                status: conf_status,
                summary: "s".into(),
                wall_ms: 10,
            },
            chaos_verdict,
            AreaVerdict {
                area: Area::Skew,
                status: Status::NotRun,
                summary: "needs two versions".into(),
                wall_ms: 0,
            },
            bench_verdict,
        ],
        conformance: Some(conf),
        chaos: Some(chaos),
        skew: None,
        bench: Some(bench),
    };
    r.recommendation = verdict::recommend(&r);
    r
}

fn clean(etcd: Option<&str>, version: &str) -> Report {
    report(
        etcd,
        version,
        vec![case("kv.put", "kv", CaseStatus::Passed)],
        vec![round(0, RoundStatus::Passed)],
        vec![bench_row(1000.0, 5.0, true)],
    )
}

#[test]
fn a_clean_run_of_a_current_version_is_recommended() {
    let r = clean(None, "3.5.13");
    assert_eq!(
        r.recommendation.level,
        Answer::Recommended,
        "{:#?}",
        r.recommendation
    );
    assert!(
        r.recommendation.summary.contains("Not tested: skew"),
        "{}",
        r.recommendation.summary
    );
}

#[test]
fn the_reference_reporting_3_5_0_gets_the_kubernetes_caveats_only() {
    let r = clean(None, "3.5.0");
    assert_eq!(r.recommendation.level, Answer::RecommendedWithCaveats);
    assert!(r
        .recommendation
        .reasons
        .iter()
        .all(|x| x.source == Source::Advisory && x.severity == Severity::Caveat));
    assert_eq!(r.recommendation.upgrade_to, None, "not an etcd release");
}

#[test]
fn etcd_3_5_1_is_not_recommended_from_advisories_alone_and_says_what_to_upgrade_to() {
    let r = clean(Some("3.5.1"), "3.5.1");
    assert_eq!(r.recommendation.level, Answer::NotRecommended);
    assert!(r
        .recommendation
        .reasons
        .iter()
        .filter(|x| x.severity == Severity::Blocker)
        .all(|x| x.source == Source::Advisory));
    assert_eq!(r.recommendation.upgrade_to.as_deref(), Some("3.5.13"));
    assert!(
        r.recommendation.summary.contains("0 observed"),
        "{}",
        r.recommendation.summary
    );
}

#[test]
fn observed_failures_block_and_known_issues_are_caveats_with_their_fix() {
    let r = report(
        None,
        "3.5.13",
        vec![
            case("kv.put", "kv", CaseStatus::Failed),
            case("watch.x", "watch", CaseStatus::KnownIssue),
        ],
        vec![
            round(0, RoundStatus::Passed),
            round(1, RoundStatus::Violation),
        ],
        vec![bench_row(1000.0, 5.0, false)],
    );
    assert_eq!(r.recommendation.level, Answer::NotRecommended);
    let titles: Vec<&str> = r
        .recommendation
        .reasons
        .iter()
        .map(|x| x.title.as_str())
        .collect();
    assert!(
        titles.iter().any(|t| t.contains("kv conformance")),
        "{titles:?}"
    );
    assert!(
        titles.iter().any(|t| t.contains("process.kill-leader")),
        "{titles:?}"
    );
    assert!(
        titles.iter().any(|t| t.contains("SLO missed")),
        "{titles:?}"
    );
    let known = r
        .recommendation
        .reasons
        .iter()
        .find(|x| x.title.contains("known etcd issue"))
        .expect("the known issue is a reason");
    assert_eq!(known.severity, Severity::Caveat);
    assert!(known.action.contains("3.5.3"));
    let violation = r
        .recommendation
        .reasons
        .iter()
        .find(|x| x.area == Some(Area::Chaos))
        .expect("the violation is a reason");
    assert_eq!(violation.rerun.as_deref(), Some("gauntlet chaos --round 1"));
    // Blockers come first.
    assert_eq!(r.recommendation.reasons[0].severity, Severity::Blocker);
}

#[test]
fn a_violation_under_a_disk_stricter_than_ext4_is_a_caveat_for_those_on_such_a_disk() {
    let mut strict = round(0, RoundStatus::Violation);
    strict.family = "power-loss".into();
    strict.fault = "power-loss.all-strict-metadata".into();
    let r = report(
        None,
        "3.5.13",
        vec![case("kv.put", "kv", CaseStatus::Passed)],
        vec![strict],
        vec![bench_row(1000.0, 5.0, true)],
    );
    assert_eq!(r.recommendation.level, Answer::RecommendedWithCaveats);
    assert_eq!(r.area(Area::Chaos).unwrap().status, Status::Caveats);
    let x = &r.recommendation.reasons[0];
    assert_eq!((x.severity, x.area), (Severity::Caveat, Some(Area::Chaos)));
    assert!(x.affected.contains("ext4"), "{}", x.affected);
}

#[test]
fn a_known_crash_is_a_caveat_with_its_fix_and_an_unknown_one_blocks() {
    let mut r = clean(Some("3.5.17"), "3.5.17");
    let conf = r.conformance.as_mut().unwrap();
    conf.crashes = vec![CrashRow {
        headline: "m0 stopped answering".into(),
        trigger: Some("auth.role.grant_permission_missing".into()),
        known: Some(Known {
            description: "granting a permission to a missing role panics".into(),
            url: "https://github.com/etcd-io/etcd/issues/2".into(),
            fixed_in: "3.5.18".into(),
        }),
    }];
    let rec = verdict::recommend(&r);
    assert_eq!(rec.level, Answer::RecommendedWithCaveats, "{rec:#?}");
    assert_eq!(rec.upgrade_to.as_deref(), Some("3.5.18"));
    assert!(rec.reasons[0]
        .rerun
        .as_deref()
        .is_some_and(|c| c.ends_with("--filter auth.role.grant_permission_missing")));
    r.conformance.as_mut().unwrap().crashes[0].known = None;
    assert_eq!(verdict::recommend(&r).level, Answer::NotRecommended);
}

#[test]
fn the_baseline_gate_passes_an_unchanged_run_and_names_each_regression() {
    let base = clean(None, "3.5.13");
    let same = clean(None, "3.5.13");
    let g = gate::compare(&base, &same, 10.0);
    assert!(g.pass(), "{:?}", g.regressions);

    let worse = report(
        None,
        "3.5.13",
        vec![case("kv.put", "kv", CaseStatus::Failed)],
        vec![round(0, RoundStatus::Violation)],
        vec![bench_row(800.0, 5.4, false)],
    );
    let g = gate::compare(&base, &worse, 10.0);
    let all = g.regressions.join("\n");
    for want in [
        "conformance kv.put",
        "chaos process.kill-leader round 0: new violation",
        "bench put put: throughput 1000 -> 800",
        "bench put SLO mutating: met -> missed",
        "recommendation: recommended -> not recommended",
    ] {
        assert!(all.contains(want), "{want} missing from:\n{all}");
    }
    // 5.0 -> 5.4 ms is +8%: within the 10% tolerance.
    assert!(!all.contains("p99 latency"), "{all}");
    let g = gate::compare(&base, &worse, 5.0);
    assert!(g.regressions.iter().any(|l| l.contains("p99 latency")));
}

#[test]
fn report_json_round_trips_and_other_schema_versions_are_refused() {
    let r = clean(Some("3.4.23"), "3.4.23");
    let text = serde_json::to_string(&r).unwrap();
    let back = Report::from_json(&text).unwrap();
    assert_eq!(back.recommendation.level, r.recommendation.level);
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["schema_version"] = 99.into();
    let err = Report::from_json(&v.to_string()).unwrap_err();
    assert!(err.contains("schema version 99"), "{err}");
    assert!(Report::from_json("{}")
        .unwrap_err()
        .contains("not a gauntlet certify report"));
}

#[test]
fn junit_names_are_stable_and_unique_and_the_e2e_summary_counts_them() {
    let r = report(
        Some("3.5.1"),
        "3.5.1",
        vec![
            case("kv.put", "kv", CaseStatus::Passed),
            case("kv.get", "kv", CaseStatus::Failed),
        ],
        vec![round(0, RoundStatus::Passed), round(1, RoundStatus::Passed)],
        vec![bench_row(1000.0, 5.0, true)],
    );
    let xml = junit::render(&r);
    assert!(xml.contains("name=\"kv.get\""), "{xml}");
    assert!(xml.contains("classname=\"conformance.kv\""));
    assert!(xml.contains("process.kill-leader round 1 [etcd]"));
    assert!(xml.contains("name=\"etcd-3.5.0-3.5.2-data-inconsistency\""));
    let mut keys = std::collections::BTreeSet::new();
    for s in junit::suites(&r) {
        for c in &s.test_cases {
            let key = (
                c.classname.as_ref().map(|s| s.as_str().to_string()),
                c.name.as_str().to_string(),
            );
            assert!(keys.insert(key.clone()), "duplicate {key:?}");
        }
    }
    let line = gauntlet_reports::submission::summary_line(&r);
    assert!(
        line.starts_with("FAIL! -- ") && line.ends_with(" FAIL"),
        "{line}"
    );
    assert_eq!(
        gauntlet_reports::submission::summary_line(&clean(None, "3.5.13")),
        format!(
            "SUCCESS! -- {} Passed | 0 Failed | 0 Pending | 1 Skipped PASS",
            junit::tally(&clean(None, "3.5.13")).0
        )
    );
}

#[test]
fn the_markdown_fits_a_ci_job_summary_even_for_a_huge_run() {
    let cases: Vec<CaseRow> = (0..20_000)
        .map(|i| {
            let mut c = case(&format!("kv.case-{i}"), "kv", CaseStatus::Failed);
            c.detail = "x".repeat(5000);
            c
        })
        .collect();
    let rounds = (0..5_000)
        .map(|i| round(i, RoundStatus::Violation))
        .collect();
    let r = report(
        None,
        "3.5.0",
        cases,
        rounds,
        vec![bench_row(1.0, 1.0, true)],
    );
    let md = markdown::render(&r);
    assert!(md.len() < 1024 * 1024, "{} bytes", md.len());
    assert!(md.contains("more in report.json"));
}

#[test]
fn the_page_escapes_what_it_shows_and_puts_the_verdict_first() {
    let mut r = clean(Some("3.5.1"), "3.5.1");
    r.target.label = "<script>alert(1)</script>".into();
    let page = gauntlet_reports::html::render(&r);
    assert!(!page.contains("<script>alert(1)"));
    assert!(page.contains("&lt;script&gt;alert(1)"));
    let verdict = page
        .find("NOT RECOMMENDED")
        .expect("the answer is on the page");
    assert!(verdict < page.find("id=\"conformance\"").unwrap());
    assert!(
        page.find("Observed in this run").unwrap()
            < page.find("From published advisories").unwrap()
    );
}

#[test]
fn the_report_directory_has_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = clean(Some("3.4.23"), "3.4.23");
    gauntlet_reports::write_dir(&r, &["line one".into()], dir.path()).unwrap();
    for f in [
        "report.json",
        "index.html",
        "report.md",
        "junit.xml",
        "submission/PRODUCT.yaml",
        "submission/README.md",
        "submission/e2e.log",
        "submission/junit_01.xml",
    ] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    let yaml = std::fs::read_to_string(dir.path().join("submission/PRODUCT.yaml")).unwrap();
    assert!(
        yaml.contains("name: etcd") && yaml.contains("version: 3.4.23"),
        "{yaml}"
    );
    let log = std::fs::read_to_string(dir.path().join("submission/e2e.log")).unwrap();
    assert!(log.starts_with("line one\n"));
    assert!(log.trim_end().lines().last().unwrap().contains("Passed |"));
}
