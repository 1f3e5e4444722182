//! The compatibility matrix: every scenario's verdict for a (from, to) pair, with its
//! evidence and rerun command, as Markdown, JSON and JUnit.

use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use crate::expect::Expect;
use crate::run::{ScenarioResult, Verdict};

/// Version of `matrix.json`'s shape.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole skew run.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `--from`.
    pub from: String,
    /// `--to`.
    pub to: String,
    /// What each side reported, and the rules it is held to.
    pub expect: Expect,
    /// The seed.
    pub seed: u64,
    /// Every scenario run, in order.
    pub results: Vec<ScenarioResult>,
    /// Wall time of the run, ms.
    pub wall_ms: u64,
    /// The command that reruns the whole run.
    pub rerun: String,
}

impl Matrix {
    /// 0 when nothing failed (known issues and scenarios that do not apply included),
    /// 1 when a scenario failed, 2 when one could not run or be judged.
    pub fn exit_code(&self) -> u8 {
        if self.results.iter().any(|r| r.verdict == Verdict::Failed) {
            1
        } else if self
            .results
            .iter()
            .any(|r| matches!(r.verdict, Verdict::Error(_) | Verdict::Unknown))
        {
            2
        } else {
            0
        }
    }

    /// One line per verdict kind: `12 pass, 1 known issue, 1 n/a`.
    pub fn tally(&self) -> String {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for r in &self.results {
            let l = r.verdict.label();
            match counts.iter_mut().find(|(k, _)| *k == l) {
                Some((_, n)) => *n += 1,
                None => counts.push((l, 1)),
            }
        }
        counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// JUnit: one testcase per scenario and profile, named stably
    /// (`<scenario> [<profile>]`, class `skew.<family>`).
    pub fn junit(&self) -> String {
        let mut report = Report::new(format!("gauntlet skew {} -> {}", self.from, self.to));
        let mut suite = TestSuite::new(format!("skew {} -> {}", self.from, self.to));
        for r in &self.results {
            let status = match &r.verdict {
                Verdict::Passed => TestCaseStatus::success(),
                Verdict::Failed => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(first_failure(r));
                    s.set_description(details(r));
                    s
                }
                Verdict::KnownIssue => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(format!("known issue: {}", first_failure(r)));
                    s.set_description(details(r));
                    s
                }
                Verdict::Unknown => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    s.set_message(format!("could not be judged: {}", r.unknown.join("; ")));
                    s.set_description(details(r));
                    s
                }
                Verdict::Error(why) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    s.set_message(why.clone());
                    s.set_description(details(r));
                    s
                }
                Verdict::NotApplicable(why) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(why.clone());
                    s
                }
            };
            let mut tc = TestCase::new(format!("{} [{}]", r.scenario, r.profile), status);
            tc.set_classname(format!("skew.{}", r.scenario.family()));
            tc.set_time(Duration::from_millis(r.wall_ms));
            suite.add_test_case(tc);
        }
        report.add_test_suite(suite);
        report.to_string().unwrap_or_default()
    }

    /// Markdown: the matrix table, then each scenario's checks against the documents
    /// they come from, refusals as printed, and what failed with its rerun command.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# Skew: {} ({}) -> {} ({})\n\n{} in {:.1} min. Rerun: `{}`\n\n",
            self.from,
            crate::expect::fmt(self.expect.from),
            self.to,
            crate::expect::fmt(self.expect.to),
            self.tally(),
            self.wall_ms as f64 / 60_000.0,
            self.rerun
        );
        md.push_str("| scenario | profile | verdict | checks | operations | wall |\n|---|---|---|---|---|---|\n");
        for r in &self.results {
            let ok = r.checks.iter().filter(|c| c.ok).count();
            md.push_str(&format!(
                "| {} | {} | {} | {ok}/{} | {} | {:.1} s |\n",
                r.scenario,
                r.profile,
                verdict_cell(&r.verdict),
                r.checks.len(),
                r.operations,
                r.wall_ms as f64 / 1000.0
            ));
        }
        for r in &self.results {
            md.push_str(&format!(
                "\n## {} [{}]: {}\n\n{}\n\n",
                r.scenario,
                r.profile,
                r.verdict.label(),
                r.scenario.describe()
            ));
            if let Verdict::NotApplicable(why) | Verdict::Error(why) = &r.verdict {
                md.push_str(&format!("- {why}\n"));
            }
            for c in &r.checks {
                let mark = match (c.ok, &c.known_fixed_in) {
                    (true, _) => "ok".to_string(),
                    (false, Some(v)) => format!("known issue (fixed in {v})"),
                    (false, None) => "**FAIL**".to_string(),
                };
                md.push_str(&format!(
                    "- {mark} · {} · {}: expected {}; observed {}{}\n",
                    c.step,
                    c.what,
                    c.expected,
                    c.observed,
                    c.doc
                        .map(|d| format!(" ([source]({}))", d.url))
                        .unwrap_or_default()
                ));
            }
            for refusal in &r.refusals {
                md.push_str(&format!(
                    "- refusal as printed: `{}`\n",
                    refusal.replace('`', "'")
                ));
            }
            for f in &r.findings {
                md.push_str(&format!("- **finding** {}: {}\n", f.check, f.detail));
            }
            for u in &r.unknown {
                md.push_str(&format!("- unknown: {u}\n"));
            }
            if r.verdict != Verdict::Passed {
                if let Some(d) = &r.dir {
                    md.push_str(&format!("- evidence: `{}`\n", d.display()));
                }
                md.push_str(&format!("- rerun: `{}`\n", r.rerun));
            }
        }
        md
    }

    /// Writes `matrix.json`, `matrix.md` and `junit.xml` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("matrix.json"),
            serde_json::to_string_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::write(dir.join("matrix.md"), self.markdown())?;
        std::fs::write(dir.join("junit.xml"), self.junit())?;
        Ok(())
    }
}

fn verdict_cell(v: &Verdict) -> String {
    match v {
        Verdict::NotApplicable(why) => format!("n/a: {}", why.replace('|', "/")),
        other => other.label().to_string(),
    }
}

/// The first failed check or finding, one line.
fn first_failure(r: &ScenarioResult) -> String {
    if let Some(c) = r.checks.iter().find(|c| !c.ok) {
        return format!(
            "{}: {}: expected {}; observed {}",
            c.step, c.what, c.expected, c.observed
        );
    }
    r.findings
        .first()
        .map(|f| format!("{}: {}", f.check, f.detail))
        .unwrap_or_default()
}

fn details(r: &ScenarioResult) -> String {
    let mut s = String::new();
    for c in r.checks.iter().filter(|c| !c.ok) {
        s.push_str(&format!(
            "{}: {}: expected {}; observed {}\n",
            c.step, c.what, c.expected, c.observed
        ));
    }
    for f in &r.findings {
        s.push_str(&format!("{}: {}\n", f.check, f.detail));
    }
    s.push_str(&format!("rerun: {}\n", r.rerun));
    s
}
