//! `junit.xml`: every suite of a certify run as JUnit, through `quick-junit`.
//!
//! Names are stable across runs so that CI systems track each test's history:
//! conformance cases by case id (class `conformance.<service>`), chaos rounds by
//! `<fault> round <n> [<profile>]` (class `chaos.<family>`; the plan is seeded, so the
//! same seed and level give the same names), skew scenarios by `<scenario>
//! [<profile>]` (class `skew.<family>`), benchmarks by workload and each Kubernetes
//! SLO by name (class `bench`), advisories by id (class `advisory`), and one case per
//! area verdict (class `certify`). GitLab keys a test by class and name and drops
//! duplicates, so every (class, name) pair is unique.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report as JReport, TestCase, TestCaseStatus, TestSuite};

use crate::model::{CaseStatus, Report, RoundStatus, Severity, Source, Status};

fn failure(message: &str, description: &str) -> TestCaseStatus {
    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
    s.set_message(message);
    s.set_description(description);
    s
}

fn error(message: &str, description: &str) -> TestCaseStatus {
    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
    s.set_message(message);
    s.set_description(description);
    s
}

fn skipped(message: &str) -> TestCaseStatus {
    let mut s = TestCaseStatus::skipped();
    s.set_message(message);
    s
}

fn case(name: String, class: String, status: TestCaseStatus, ms: u64) -> TestCase {
    let mut tc = TestCase::new(name, status);
    tc.set_classname(class);
    tc.set_time(Duration::from_millis(ms));
    tc
}

/// Every test case of the run, grouped in suites (`certify`, `advisory`,
/// `conformance`, `chaos`, `skew`, `bench`).
pub fn suites(r: &Report) -> Vec<TestSuite> {
    let mut out = Vec::new();
    let mut certify = TestSuite::new("certify");
    for a in &r.areas {
        let status = match a.status {
            Status::Pass | Status::Caveats => TestCaseStatus::success(),
            Status::Fail => failure(&a.summary, &a.summary),
            Status::Error => error(&a.summary, &a.summary),
            Status::NotRun => skipped(&a.summary),
        };
        certify.add_test_case(case(
            format!("area {}", a.area),
            "certify".into(),
            status,
            a.wall_ms,
        ));
    }
    out.push(certify);
    let mut adv = TestSuite::new("advisory");
    for x in r
        .recommendation
        .reasons
        .iter()
        .filter(|x| x.source == Source::Advisory)
    {
        let id = x
            .evidence
            .rsplit_once('[')
            .map(|(_, id)| id.trim_end_matches(']').to_string())
            .unwrap_or_else(|| x.title.clone());
        let text = format!(
            "{}\naffected: {}\naction: {}",
            x.title, x.affected, x.action
        );
        let status = match x.severity {
            Severity::Blocker => failure(&x.title, &text),
            Severity::Caveat => skipped(&format!("caveat: {}", x.title)),
        };
        adv.add_test_case(case(id, "advisory".into(), status, 0));
    }
    if !adv.test_cases.is_empty() {
        out.push(adv);
    }
    if let Some(c) = &r.conformance {
        let mut s = TestSuite::new("conformance");
        for x in &c.cases {
            let status = match x.status {
                CaseStatus::Passed => TestCaseStatus::success(),
                CaseStatus::Failed | CaseStatus::KilledTarget => failure(
                    x.detail.lines().next().unwrap_or("failed"),
                    &format!(
                        "{}\n{}\nrerun: {} --filter {}",
                        x.guarantee, x.detail, c.rerun, x.id
                    ),
                ),
                CaseStatus::KnownIssue => {
                    let k = x.known.as_ref();
                    skipped(&format!(
                        "known issue: {} ({}, fixed in {})",
                        k.map_or("", |k| k.description.as_str()),
                        k.map_or("", |k| k.url.as_str()),
                        k.map_or("", |k| k.fixed_in.as_str())
                    ))
                }
                CaseStatus::NotRun => skipped(&x.detail),
                CaseStatus::Unavailable => error(&x.detail, &x.detail),
            };
            s.add_test_case(case(
                x.id.clone(),
                format!("conformance.{}", x.service),
                status,
                x.duration_ms,
            ));
        }
        out.push(s);
    }
    if let Some(ch) = &r.chaos {
        let mut s = TestSuite::new("chaos");
        for x in &ch.rounds {
            let text = format!("{}\nrerun: {}", x.details.join("\n"), x.rerun);
            let status = match x.status {
                RoundStatus::Passed => TestCaseStatus::success(),
                RoundStatus::Violation => failure(
                    x.details.first().map(String::as_str).unwrap_or("violation"),
                    &text,
                ),
                RoundStatus::KnownIssue => skipped(&format!(
                    "known issue: {}",
                    x.known
                        .iter()
                        .map(|k| format!("{} ({}, fixed in {})", k.description, k.url, k.fixed_in))
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
                RoundStatus::Unknown => error("could not be judged", &text),
                RoundStatus::NotRun => skipped(&x.details.join("; ")),
            };
            s.add_test_case(case(
                format!("{} round {} [{}]", x.fault, x.round, x.profile),
                format!("chaos.{}", x.family),
                status,
                x.wall_ms,
            ));
        }
        out.push(s);
    }
    if let Some(sk) = &r.skew {
        let mut s = TestSuite::new("skew");
        for x in &sk.rows {
            let text = format!("{}\nrerun: {}", x.details.join("\n"), x.rerun);
            let first = x.details.first().map(String::as_str).unwrap_or("");
            let status = match x.verdict.as_str() {
                "pass" => TestCaseStatus::success(),
                "FAIL" => failure(first, &text),
                "known issue" => skipped(&format!(
                    "known issue (fixed in {}): {first}",
                    x.fixed_in.join(", ")
                )),
                "n/a" => skipped(first),
                _ => error(first, &text),
            };
            let family = x.scenario.split('.').next().unwrap_or("skew");
            s.add_test_case(case(
                format!("{} [{}]", x.scenario, x.profile),
                format!("skew.{family}"),
                status,
                0,
            ));
        }
        out.push(s);
    }
    if let Some(b) = &r.bench {
        let mut s = TestSuite::new("bench");
        for w in &b.workloads {
            let status = match &w.error {
                Some(e) => error(e, &format!("{e}\nrerun: {}", w.rerun)),
                None => TestCaseStatus::success(),
            };
            s.add_test_case(case(w.workload.clone(), "bench".into(), status, 0));
            for slo in &w.slo {
                let status = if slo.pass {
                    TestCaseStatus::success()
                } else {
                    failure(
                        &format!(
                            "p99 {:.3} s over the limit {:.3} s",
                            slo.measured_s, slo.limit_s
                        ),
                        &format!("rerun: {}", w.rerun),
                    )
                };
                s.add_test_case(case(
                    format!("{} slo {}", w.workload, slo.name),
                    "bench".into(),
                    status,
                    0,
                ));
            }
        }
        out.push(s);
    }
    out
}

/// The run as one JUnit document, a suite per area.
pub fn render(r: &Report) -> String {
    let mut report = JReport::new(format!("gauntlet certify {}", r.target.label));
    report.set_time(Duration::from_millis(r.wall_ms));
    report.add_test_suites(suites(r));
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- junit serialization failed: {e} -->"))
}

/// Counts over every test case: (passed, failed, skipped), failures and errors both
/// count as failed.
pub fn tally(r: &Report) -> (usize, usize, usize) {
    let mut t = (0, 0, 0);
    for s in suites(r) {
        for c in &s.test_cases {
            match &c.status {
                TestCaseStatus::Success { .. } => t.0 += 1,
                TestCaseStatus::NonSuccess { .. } => t.1 += 1,
                TestCaseStatus::Skipped { .. } => t.2 += 1,
            }
        }
    }
    t
}
