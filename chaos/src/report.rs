//! What a chaos run writes: a directory per failing round (and per round on
//! request), and for the run `summary.json`, `junit.xml` and `summary.md`.
//!
//! A round directory holds everything needed to re-judge it without the servers:
//! `history.jsonl` (the checker's JSON lines, as judged: unknown writes the watched
//! events settled appear settled; `gauntlet check --model etcd history.jsonl` re-checks
//! it unchanged), `watch.json` (every member's stream
//! segments), `reads.jsonl` (the serializable and keys-only reads the model leaves
//! out, judged against the watched state), `round.json` (plan, fault timeline,
//! findings, availability),
//! `timeline.html` (operations per client on one time axis with the fault window and
//! the operations the findings name: [`crate::timeline`]), `history.html` (the
//! checker's failure page, when not linearizable), `rerun.txt` (the one command that
//! replays the round) and `members/` (logs and data dirs).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use gauntlet_checker::import::to_json_lines;
use gauntlet_checker::models::etcd::EtcdModel;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use crate::convert::{EtcdOp, SideRead};
use crate::round::{RoundResult, RoundVerdict};
use crate::validate::Validation;
use crate::watch::MemberWatch;

/// Writes one round's directory.
pub fn write_round(
    dir: &Path,
    result: &RoundResult,
    history: &[EtcdOp],
    watches: &[MemberWatch],
    side_reads: &[SideRead],
    validation: &Validation,
) -> std::io::Result<()> {
    let title = format!("chaos round {} ({})", result.spec.round, result.spec.fault);
    write_evidence(dir, &title, history, watches, side_reads, validation)?;
    std::fs::write(
        dir.join("round.json"),
        serde_json::to_string_pretty(result).map_err(std::io::Error::other)?,
    )?;
    std::fs::write(dir.join("rerun.txt"), format!("{}\n", result.rerun))?;
    let timeline = crate::timeline::render(result, history, watches, validation.check.as_ref());
    std::fs::write(dir.join("timeline.html"), timeline)?;
    Ok(())
}

/// Writes what was observed, in the forms [`load_round`] reads back: `history.jsonl`
/// (what `gauntlet check --model etcd` re-checks), `reads.jsonl`, `watch.json`, and
/// `history.html` when the history is not linearizable (titled `title`).
pub fn write_evidence(
    dir: &Path,
    title: &str,
    history: &[EtcdOp],
    watches: &[MemberWatch],
    side_reads: &[SideRead],
    validation: &Validation,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("history.jsonl"), to_json_lines(history))?;
    let mut reads = String::new();
    for r in side_reads {
        reads.push_str(&serde_json::to_string(r).map_err(std::io::Error::other)?);
        reads.push('\n');
    }
    std::fs::write(dir.join("reads.jsonl"), reads)?;
    let segs: Vec<_> = watches
        .iter()
        .map(|w| {
            serde_json::json!({
                "member": w.member,
                "reached": w.reached,
                "segments": w.segments,
            })
        })
        .collect();
    std::fs::write(
        dir.join("watch.json"),
        serde_json::to_string_pretty(&segs).map_err(std::io::Error::other)?,
    )?;
    if let Some(check) = &validation.check {
        if validation.linearizable == Some(false) {
            let page = gauntlet_checker::html::render(&EtcdModel, title, history, check);
            std::fs::write(dir.join("history.html"), page)?;
        }
    }
    Ok(())
}

/// What [`load_round`] reads back: the history, the watch streams, the side reads.
pub type RoundData = (Vec<EtcdOp>, Vec<MemberWatch>, Vec<SideRead>);

/// Reads back what [`write_round`] wrote (`history.jsonl`, `watch.json`,
/// `reads.jsonl` when present), so a round can be judged again without any server
/// (`gauntlet chaos --revalidate DIR`).
pub fn load_round(dir: &Path) -> Result<RoundData, String> {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()))
    };
    let history: Vec<EtcdOp> = gauntlet_checker::import::parse_json_lines(&read("history.jsonl")?)
        .map_err(|e| format!("{}: {e}", dir.join("history.jsonl").display()))?;
    let watch: serde_json::Value = serde_json::from_str(&read("watch.json")?)
        .map_err(|e| format!("{}: {e}", dir.join("watch.json").display()))?;
    let mut watches = Vec::new();
    for m in watch.as_array().into_iter().flatten() {
        let segments = serde_json::from_value(m["segments"].clone())
            .map_err(|e| format!("{}: segments: {e}", dir.join("watch.json").display()))?;
        watches.push(MemberWatch {
            member: m["member"]
                .as_u64()
                .and_then(|x| usize::try_from(x).ok())
                .unwrap_or(usize::MAX),
            reached: m["reached"].as_i64().unwrap_or(0),
            segments,
        });
    }
    let mut side_reads = Vec::new();
    if dir.join("reads.jsonl").exists() {
        for (n, line) in read("reads.jsonl")?.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            side_reads
                .push(serde_json::from_str(line).map_err(|e| {
                    format!("{}:{}: {e}", dir.join("reads.jsonl").display(), n + 1)
                })?);
        }
    }
    Ok((history, watches, side_reads))
}

/// Per-fault counts in `summary.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FaultSummary {
    /// Rounds that ran this fault.
    pub rounds: usize,
    /// Of those, with a violation.
    pub violations: usize,
    /// Of those, with only known etcd issues.
    #[serde(default)]
    pub known_issues: usize,
    /// Of those, unknown.
    pub unknown: usize,
    /// Of those, skipped or errored.
    pub not_run: usize,
    /// Median time from heal to the first successful write, ms.
    pub first_write_after_heal_ms_p50: Option<u64>,
    /// Longest write gap seen, ms.
    pub longest_write_gap_ms_max: u64,
    /// Median time from injection to the end of healing (the fault's own length,
    /// recovery included), ms.
    pub fault_ms_p50: Option<u64>,
    /// Mean successful operations per second before, during and after the fault.
    pub ok_per_s_mean: [f64; 3],
    /// Share of operations invoked during the fault that did not succeed, mean.
    pub failed_share_during_mean: f64,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// What ran.
    pub target: String,
    /// The run's seed.
    pub seed: u64,
    /// Rounds run.
    pub rounds: usize,
    /// Rounds with a violation.
    pub violations: usize,
    /// Rounds whose findings are all known issues of the etcd release under test.
    pub known_issues: usize,
    /// Rounds that could not be judged fully.
    pub unknown: usize,
    /// Rounds skipped (fault unsupported) or that could not run.
    pub not_run: usize,
    /// Per fault.
    pub faults: BTreeMap<String, FaultSummary>,
    /// Per traffic profile.
    pub profiles: BTreeMap<String, FaultSummary>,
    /// Operations judged, over all rounds.
    pub operations: usize,
    /// Mean validation time per round, ms.
    pub validation_ms_mean: u64,
    /// Wall time, ms.
    pub wall_ms: u64,
    /// Rounds per hour at this pace.
    pub rounds_per_hour: f64,
    /// Every round, in order.
    pub results: Vec<RoundResult>,
}

impl Summary {
    /// Builds the summary of `results`.
    pub fn new(target: &str, seed: u64, results: Vec<RoundResult>, wall: Duration) -> Summary {
        let mut faults: BTreeMap<String, FaultSummary> = BTreeMap::new();
        let mut profiles: BTreeMap<String, FaultSummary> = BTreeMap::new();
        let mut heal: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut lengths: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut phases: BTreeMap<String, (usize, [f64; 3], f64)> = BTreeMap::new();
        for r in &results {
            let p = profiles
                .entry(
                    serde_json::to_value(r.spec.profile)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                )
                .or_default();
            p.rounds += 1;
            match &r.verdict {
                RoundVerdict::KnownIssue => p.known_issues += 1,
                RoundVerdict::Violation => p.violations += 1,
                RoundVerdict::Unknown => p.unknown += 1,
                RoundVerdict::Skipped(_) | RoundVerdict::Error(_) => p.not_run += 1,
                RoundVerdict::Passed => {}
            }
            let f = faults.entry(r.spec.fault.name().to_string()).or_default();
            f.rounds += 1;
            match &r.verdict {
                RoundVerdict::KnownIssue => f.known_issues += 1,
                RoundVerdict::Violation => f.violations += 1,
                RoundVerdict::Unknown => f.unknown += 1,
                RoundVerdict::Skipped(_) | RoundVerdict::Error(_) => f.not_run += 1,
                RoundVerdict::Passed => {}
            }
            f.longest_write_gap_ms_max = f
                .longest_write_gap_ms_max
                .max(r.availability.longest_write_gap_ms);
            if let Some(fr) = &r.fault {
                lengths
                    .entry(r.spec.fault.name().to_string())
                    .or_default()
                    .push(fr.healed_ns.saturating_sub(fr.injected_ns) / 1_000_000);
            }
            if r.availability.phases.len() == 3 {
                let e = phases.entry(r.spec.fault.name().to_string()).or_default();
                e.0 += 1;
                for (k, p) in r.availability.phases.iter().enumerate() {
                    e.1[k] += p.ok_per_s;
                }
                let d = &r.availability.phases[1];
                if d.operations > 0 {
                    e.2 += (d.operations - d.ok) as f64 / d.operations as f64;
                }
            }
            if let Some(ms) = r.availability.first_write_after_heal_ms {
                heal.entry(r.spec.fault.name().to_string())
                    .or_default()
                    .push(ms);
            }
        }
        for (name, mut v) in heal {
            v.sort_unstable();
            if let Some(f) = faults.get_mut(&name) {
                f.first_write_after_heal_ms_p50 = v.get(v.len() / 2).copied();
            }
        }
        for (name, mut v) in lengths {
            v.sort_unstable();
            if let Some(f) = faults.get_mut(&name) {
                f.fault_ms_p50 = v.get(v.len() / 2).copied();
            }
        }
        for (name, (n, ok, failed)) in phases {
            if let (Some(f), true) = (faults.get_mut(&name), n > 0) {
                f.ok_per_s_mean = ok.map(|x| x / n as f64);
                f.failed_share_during_mean = failed / n as f64;
            }
        }
        let count = |p: fn(&RoundVerdict) -> bool| results.iter().filter(|r| p(&r.verdict)).count();
        let judged: Vec<&RoundResult> = results
            .iter()
            .filter(|r| !matches!(r.verdict, RoundVerdict::Skipped(_) | RoundVerdict::Error(_)))
            .collect();
        let wall_ms = u64::try_from(wall.as_millis()).unwrap_or(u64::MAX);
        Summary {
            target: target.to_string(),
            seed,
            rounds: results.len(),
            violations: count(|v| *v == RoundVerdict::Violation),
            known_issues: count(|v| *v == RoundVerdict::KnownIssue),
            unknown: count(|v| *v == RoundVerdict::Unknown),
            not_run: count(|v| matches!(v, RoundVerdict::Skipped(_) | RoundVerdict::Error(_))),
            faults,
            profiles,
            operations: results.iter().map(|r| r.operations).sum(),
            validation_ms_mean: if judged.is_empty() {
                0
            } else {
                judged.iter().map(|r| r.validation_ms).sum::<u64>() / judged.len() as u64
            },
            wall_ms,
            rounds_per_hour: if wall_ms == 0 {
                0.0
            } else {
                results.len() as f64 * 3_600_000.0 / wall_ms as f64
            },
            results,
        }
    }

    /// Exit code: 1 on a violation; else 2 when a round could not run or be judged; else 0.
    pub fn exit_code(&self) -> u8 {
        if self.violations > 0 {
            1
        } else if self.unknown > 0
            || self
                .results
                .iter()
                .any(|r| matches!(r.verdict, RoundVerdict::Error(_)))
        {
            2
        } else {
            0
        }
    }

    /// JUnit XML: one testcase per round.
    pub fn junit(&self) -> String {
        let mut report = Report::new(format!("gauntlet chaos {}", self.target));
        let mut suite = TestSuite::new("chaos");
        for r in &self.results {
            let name = format!("round {} {}", r.spec.round, r.spec.fault);
            let status = match &r.verdict {
                RoundVerdict::Passed => TestCaseStatus::success(),
                RoundVerdict::Violation => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(findings_line(r));
                    s.set_description(format!("{}\nrerun: {}", findings_text(r), r.rerun));
                    s
                }
                RoundVerdict::KnownIssue => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(format!(
                        "known etcd issue: {}",
                        r.known_issues
                            .iter()
                            .map(|k| format!("{} (fixed in {})", k.url, k.fixed_in))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    s.set_description(format!("{}\nrerun: {}", findings_text(r), r.rerun));
                    s
                }
                RoundVerdict::Unknown => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    s.set_message(format!("could not be judged: {}", r.unknown.join("; ")));
                    s.set_description(format!("rerun: {}", r.rerun));
                    s
                }
                RoundVerdict::Error(why) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    s.set_message(why.clone());
                    s
                }
                RoundVerdict::Skipped(why) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(why.clone());
                    s
                }
            };
            let mut tc = TestCase::new(name, status);
            tc.set_classname(format!("chaos.{}", r.spec.fault.family()));
            tc.set_time(Duration::from_millis(r.wall_ms));
            suite.add_test_case(tc);
        }
        report.add_test_suite(suite);
        report.to_string().unwrap_or_default()
    }

    /// Markdown: verdict, per-fault table, then every failing round with its
    /// findings, directory and rerun command.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Chaos: {}\n", self.target);
        let _ = writeln!(
            s,
            "Seed {}; {} rounds in {:.1} s ({:.0} rounds/hour); {} violation(s), {} known etcd issue(s), {} unknown, {} not run; {} operations judged; validation {} ms per round on average.\n",
            self.seed,
            self.rounds,
            self.wall_ms as f64 / 1000.0,
            self.rounds_per_hour,
            self.violations,
            self.known_issues,
            self.unknown,
            self.not_run,
            self.operations,
            self.validation_ms_mean
        );
        s.push_str("| fault | rounds | violations | unknown | not run | fault p50 (ms) | heal → first write p50 (ms) | longest write gap (ms) | ok/s before · during · after | failed during |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (name, f) in &self.faults {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {:.0} · {:.0} · {:.0} | {:.0} % |",
                f.rounds,
                f.violations,
                f.unknown,
                f.not_run,
                f.fault_ms_p50.map_or_else(|| "-".into(), |v| v.to_string()),
                f.first_write_after_heal_ms_p50
                    .map_or_else(|| "-".into(), |v| v.to_string()),
                f.longest_write_gap_ms_max,
                f.ok_per_s_mean[0],
                f.ok_per_s_mean[1],
                f.ok_per_s_mean[2],
                f.failed_share_during_mean * 100.0
            );
        }
        for r in &self.results {
            if matches!(r.verdict, RoundVerdict::Passed) {
                continue;
            }
            let _ = writeln!(
                s,
                "\n## Round {} ({}): {}\n",
                r.spec.round,
                r.spec.fault,
                match &r.verdict {
                    RoundVerdict::Violation => "violation".to_string(),
                    RoundVerdict::KnownIssue => format!(
                        "known etcd issue ({})",
                        r.known_issues
                            .iter()
                            .map(|k| format!("{}, fixed in {}", k.url, k.fixed_in))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    RoundVerdict::Unknown => "unknown".to_string(),
                    RoundVerdict::Skipped(w) => format!("skipped: {w}"),
                    RoundVerdict::Error(w) => format!("error: {w}"),
                    RoundVerdict::Passed => "passed".to_string(),
                }
            );
            for f in &r.findings {
                let _ = writeln!(s, "- **{}**: {}", f.check, f.detail);
            }
            for u in &r.unknown {
                let _ = writeln!(s, "- unknown: {u}");
            }
            if let Some(d) = &r.dir {
                let _ = writeln!(s, "- evidence: `{}`", d.display());
            }
            let _ = writeln!(s, "- rerun: `{}`", r.rerun);
        }
        s
    }

    /// Writes `summary.json`, `junit.xml` and `summary.md` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("summary.json"),
            serde_json::to_string_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::write(dir.join("junit.xml"), self.junit())?;
        std::fs::write(dir.join("summary.md"), self.markdown())
    }
}

fn findings_line(r: &RoundResult) -> String {
    let mut checks: Vec<&str> = r.findings.iter().map(|f| f.check.as_str()).collect();
    checks.dedup();
    format!("{} finding(s): {}", r.findings.len(), checks.join(", "))
}

fn findings_text(r: &RoundResult) -> String {
    r.findings
        .iter()
        .map(|f| format!("{}: {}", f.check, f.detail))
        .collect::<Vec<_>>()
        .join("\n")
}
