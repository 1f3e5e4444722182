//! The catalogue against real etcd (every case passes or is a ledger entry) and against
//! the reference server (every case passes, with no help from the ledger).

use std::collections::BTreeSet;
use std::time::Duration;

use gauntlet_conformance::{
    catalogue, report, run, Case, Ledger, NotRunCause, Outcome, Report, RunOptions, Service,
    Trigger, Under, Verdict,
};
use gauntlet_harness::Cache;

fn under(target: &str, members: usize) -> Under {
    Under::Launch {
        target: target.parse().expect("target"),
        members,
        cache: Cache::from_env(),
    }
}

async fn run_all(target: &str, members: usize, use_ledger: bool) -> Report {
    // Half the default: tests share two cores with other cluster tests, and an etcd
    // starved of CPU answers lease calls with timeouts.
    let opts = RunOptions {
        use_ledger,
        concurrency: 8,
        ..RunOptions::default()
    };
    let cases = catalogue();
    match tokio::time::timeout(
        Duration::from_secs(240),
        run(
            &cases,
            &under(target, members),
            &opts,
            &Ledger::builtin(),
            |_| {},
        ),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            panic!("{target}: {e}\n(rerun `cargo xtask test`, which fetches the targets first)")
        }
        Err(_) => panic!("{target}: the run took more than 240 s"),
    }
}

fn new_failures(r: &Report) -> Vec<String> {
    r.results
        .iter()
        .filter_map(|c| match &c.outcome {
            Outcome::Failed { failure } => Some(format!("{}: {failure}", c.id)),
            Outcome::KilledTarget { failure, .. } => {
                Some(format!("{}: killed the target: {failure}", c.id))
            }
            Outcome::Unavailable { reason, .. } => Some(format!("{}: {reason}", c.id)),
            _ => None,
        })
        .chain(
            r.crashes
                .iter()
                .filter(|c| c.known_issue.is_none())
                .map(|c| format!("crash: {}", report::crash_text(c))),
        )
        .collect()
}

#[test]
fn catalogue_is_well_formed() {
    let cases: Vec<Case> = catalogue();
    assert!(cases.len() >= 300, "only {} cases", cases.len());
    let mut ids = BTreeSet::new();
    for c in &cases {
        assert!(ids.insert(c.id.clone()), "duplicate id {}", c.id);
        let parts: Vec<&str> = c.id.split('.').collect();
        assert!(parts.len() >= 3, "{}: ids are service.rpc.behaviour", c.id);
        assert!(
            c.id.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '.' || ch == '_'),
            "{}: lower-case, digits, dots and underscores only",
            c.id
        );
        assert_eq!(parts[0], c.service.name(), "{}", c.id);
        assert!(c.doc.starts_with("https://"), "{}: doc {}", c.id, c.doc);
        assert!(
            c.guarantee.ends_with('.') && c.guarantee.len() > 20,
            "{}: one sentence",
            c.id
        );
    }
    for s in Service::ALL {
        assert!(cases.iter().any(|c| c.service == s), "no case for {s}");
    }
    assert!(
        cases.iter().filter(|c| c.kubernetes).count() >= 10,
        "kubernetes profile too small"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_3_5_1_passes_every_case() {
    let r = run_all("etcd@3.5.1", 1, true).await;
    let failed = new_failures(&r);
    assert!(failed.is_empty(), "{} new failure(s) on etcd 3.5.1:\n{}\nrerun: gauntlet conformance --target etcd@3.5.1 --members 1", failed.len(), failed.join("\n"));
    assert_eq!(r.results.len(), catalogue().len());
    assert_eq!(r.holding.reported, "3.5.1");
    assert_eq!(r.verdict(), Verdict::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_3_4_23_passes_every_case_or_is_a_known_issue() {
    let r = run_all("etcd@3.4.23", 1, true).await;
    let failed = new_failures(&r);
    assert!(failed.is_empty(), "{} new failure(s) on etcd 3.4.23:\n{}\nrerun: gauntlet conformance --target etcd@3.4.23 --members 1", failed.len(), failed.join("\n"));
    // Cases for 3.5 only are reported as not run, with the reason.
    assert!(r
        .results
        .iter()
        .any(|c| matches!(&c.outcome, Outcome::NotRun { reason, cause: NotRunCause::Profile } if reason.contains(">= 3.5.0"))));
    // etcd 3.4's known panic is seen as a crash of the case's own cluster, named with
    // its trigger and the panic in the log, and excused by the ledger.
    let known: Vec<_> = r
        .crashes
        .iter()
        .filter(|c| {
            c.trigger
                == Trigger::Confirmed {
                    cases: vec!["auth.role.grant_permission_missing".into()],
                }
        })
        .collect();
    assert_eq!(known.len(), 1, "crashes: {:#?}", r.crashes);
    assert!(known[0].known_issue.is_some());
    assert!(
        known[0].log_tail.iter().any(|l| l.contains("panic")),
        "log tail: {:?}",
        known[0].log_tail
    );
    assert_eq!(r.verdict(), Verdict::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reference_run_completes_and_reports() {
    let r = run_all("reference", 1, false).await;
    assert_eq!(r.results.len(), catalogue().len());
    assert!(
        r.crashes.is_empty(),
        "the reference server crashed:\n{}",
        r.crashes
            .iter()
            .map(report::crash_text)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        r.results
            .iter()
            .all(|c| !matches!(c.outcome, Outcome::KnownIssue { .. })),
        "the ledger never excuses the reference server"
    );
    // Every case passes on the reference.
    let failing: Vec<String> = r
        .results
        .iter()
        .filter(|c| !matches!(c.outcome, Outcome::Passed))
        .map(|c| format!("{}: {:?}", c.id, c.outcome))
        .collect();
    assert!(
        failing.is_empty(),
        "the reference server fails:\n{}",
        failing.join("\n")
    );
    let dir = tempfile::tempdir().unwrap();
    report::write_all(&r, dir.path()).unwrap();
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), r.results.len());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(
        json["results"].as_array().map(Vec::len),
        Some(r.results.len())
    );
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    for s in Service::ALL {
        assert!(summary.contains(&format!("| {s} |")), "summary lacks {s}");
    }
    let t = r.totals();
    println!(
        "reference x1: passed {} failed {} not run {}",
        t.passed, t.failed, t.not_run
    );
}
