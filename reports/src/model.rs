//! `report.json`: what a `gauntlet certify` run found, in a versioned schema.
//!
//! Everything the report directory shows (`index.html`, `report.md`, `junit.xml`, the
//! submission folder) is rendered from one [`Report`], and `--baseline` compares two
//! of them, so the JSON is the contract. It is documented field by field here and in
//! `reports/SCHEMA.md`.
//!
//! Compatibility: [`SCHEMA_VERSION`] changes when a field is removed or changes
//! meaning; added fields keep the version (readers ignore what they do not know, and
//! every added field has a default when read from an older file).

use serde::{Deserialize, Serialize};

/// Version of the `report.json` schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// How long and how hard a run tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// The README default: every area, bounded to finish in under 10 minutes on a
    /// 2-core machine (one or two chaos rounds per fault family, short benchmarks).
    Quick,
    /// The long runs: many chaos rounds per family, every skew scenario under both
    /// traffic profiles, benchmarks of etcd's default sizes.
    Full,
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        match s {
            "quick" => Ok(Level::Quick),
            "full" => Ok(Level::Full),
            other => Err(format!("`{other}` is not a level: quick or full")),
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::Quick => "quick",
            Level::Full => "full",
        })
    }
}

/// One certify run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The gauntlet that wrote it.
    pub gauntlet_version: String,
    /// Start of the run, seconds since the Unix epoch.
    pub started_unix_s: u64,
    /// Wall time of the whole run.
    pub wall_ms: u64,
    /// The level it ran at.
    pub level: Level,
    /// The seed of every randomized part (chaos plans, traffic, bench keys).
    pub seed: u64,
    /// What was tested.
    pub target: TargetInfo,
    /// The command that repeats this run.
    pub command: String,
    /// The answer: can this run in production under Kubernetes?
    pub recommendation: Recommendation,
    /// One verdict per area, in report order (conformance, chaos, skew, bench).
    pub areas: Vec<AreaVerdict>,
    /// Conformance details, when it ran.
    #[serde(default)]
    pub conformance: Option<Conformance>,
    /// Chaos details, when it ran.
    #[serde(default)]
    pub chaos: Option<Chaos>,
    /// Skew details, when it ran.
    #[serde(default)]
    pub skew: Option<Skew>,
    /// Benchmark details, when they ran.
    #[serde(default)]
    pub bench: Option<Bench>,
}

/// The server under test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetInfo {
    /// How it was reached: `etcd@3.5.1 x3`, `reference x3`, or the endpoints.
    pub label: String,
    /// The launched target (`etcd@3.5.1`, `reference`, `exec:PATH`); `None` with
    /// `--endpoints`.
    pub target: Option<String>,
    /// Members of the launched cluster (0 with `--endpoints`).
    pub members: usize,
    /// The version the server reports in `Status.version`, verbatim.
    pub server_version: String,
    /// The etcd release, when the target is a real etcd (`etcd@V`): etcd's own
    /// release advisories apply to it. Any other server is judged by what it reports
    /// and does, not by etcd's release history.
    pub etcd_release: Option<String>,
    /// The skew pair, when `--from/--to` were given.
    #[serde(default)]
    pub skew_pair: Option<(String, String)>,
}

/// An area of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Area {
    /// The conformance catalogue.
    Conformance,
    /// Fault rounds under recorded traffic.
    Chaos,
    /// Mixed versions.
    Skew,
    /// Benchmarks and the Kubernetes SLOs.
    Bench,
}

impl Area {
    /// Every area, in report order.
    pub const ALL: [Area; 4] = [Area::Conformance, Area::Chaos, Area::Skew, Area::Bench];

    /// Its name in reports and JUnit.
    pub fn name(self) -> &'static str {
        match self {
            Area::Conformance => "conformance",
            Area::Chaos => "chaos",
            Area::Skew => "skew",
            Area::Bench => "bench",
        }
    }
}

impl std::fmt::Display for Area {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How an area came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Everything that applies ran and held.
    Pass,
    /// Held, with caveats: known issues of the release, a missed SLO, parts that
    /// could not be judged.
    Caveats,
    /// A failure Gauntlet observed and no ledger excuses.
    Fail,
    /// Did not run (and why is in the verdict's summary).
    NotRun,
    /// Ran but could not be judged (the run broke down).
    Error,
}

impl Status {
    /// Its label.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Caveats => "caveats",
            Status::Fail => "FAIL",
            Status::NotRun => "not run",
            Status::Error => "error",
        }
    }
}

/// One area's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AreaVerdict {
    /// The area.
    pub area: Area,
    /// Its status.
    pub status: Status,
    /// One line: the figures behind the status.
    pub summary: String,
    /// Wall time spent on it.
    pub wall_ms: u64,
}

/// The release recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// Run it.
    Recommended,
    /// Run it, knowing the reasons listed.
    RecommendedWithCaveats,
    /// Do not run it in production.
    NotRecommended,
}

impl Answer {
    /// How an operator reads it.
    pub fn label(self) -> &'static str {
        match self {
            Answer::Recommended => "recommended",
            Answer::RecommendedWithCaveats => "recommended with caveats",
            Answer::NotRecommended => "not recommended",
        }
    }
}

/// Where a reason comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Gauntlet saw it in this run.
    Observed,
    /// A published advisory (etcd's or Kubernetes') says so; this run did not test it.
    Advisory,
}

/// How much a reason weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Worth knowing; does not change the answer by itself.
    Caveat,
    /// Makes the answer "not recommended".
    Blocker,
}

/// One reason behind the recommendation, phrased as an advisory is read: am I
/// affected, what do I do, what do I upgrade to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reason {
    /// Observed in this run, or from an advisory.
    pub source: Source,
    /// Caveat or blocker.
    pub severity: Severity,
    /// The area it belongs to (`None` for release advisories).
    pub area: Option<Area>,
    /// A short title.
    pub title: String,
    /// Who is affected ("every user", "clusters serving Kubernetes 1.31 or newer").
    pub affected: String,
    /// What to do.
    pub action: String,
    /// The release that fixes it, for an etcd release ("3.5.13").
    pub upgrade_to: Option<String>,
    /// The evidence: a case id and its failure, a round's findings; for advisories,
    /// the advisory's source.
    pub evidence: String,
    /// A link: the etcd issue, the advisory, the report file.
    pub url: Option<String>,
    /// The command that reproduces an observed reason.
    pub rerun: Option<String>,
}

/// The answer and its reasons.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recommendation {
    /// The answer.
    pub level: Answer,
    /// One or two sentences, as an operator reads them.
    pub summary: String,
    /// The release to upgrade to when one fixes every reason that has a fix (etcd
    /// releases only).
    pub upgrade_to: Option<String>,
    /// Every reason, blockers first; observed and advisory ones are told apart by
    /// [`Reason::source`].
    pub reasons: Vec<Reason>,
}

/// A known issue a result was excused by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    /// What it is.
    pub description: String,
    /// The etcd issue.
    pub url: String,
    /// The release that fixed it.
    pub fixed_in: String,
}

/// The conformance area.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conformance {
    /// The behaviour profile the server was held to (`etcd-3.5`), and why.
    pub held_to: String,
    /// Per service.
    pub services: Vec<ServiceCounts>,
    /// Every case, in catalogue order.
    pub cases: Vec<CaseRow>,
    /// Members that stopped answering during the run.
    pub crashes: Vec<CrashRow>,
    /// The command that repeats the conformance part alone.
    pub rerun: String,
    /// Wall time.
    pub wall_ms: u64,
}

/// A member that stopped answering during conformance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrashRow {
    /// One line: who, when, how.
    pub headline: String,
    /// The case whose requests kill it, when running the suspects alone found one.
    pub trigger: Option<String>,
    /// The ledger entry when it is a known bug of the release.
    pub known: Option<Known>,
}

/// One service's counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceCounts {
    /// The service (`kv`, `watch`, ...).
    pub service: String,
    /// Cases that held.
    pub passed: usize,
    /// New failures (cases that killed the target included).
    pub failed: usize,
    /// Failures the ledger knows for this release.
    pub known_issue: usize,
    /// Cases not run by design (profile, launcher).
    pub not_run: usize,
    /// Cases not judged because the target was down.
    pub unavailable: usize,
}

/// A case's status in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseStatus {
    /// Held.
    Passed,
    /// Failed anew.
    Failed,
    /// Failed; a known issue of the release.
    KnownIssue,
    /// Not run by design.
    NotRun,
    /// Killed the target.
    KilledTarget,
    /// Not judged: the target was down.
    Unavailable,
}

impl CaseStatus {
    /// Whether it counts as a failure.
    pub fn is_failure(self) -> bool {
        matches!(self, CaseStatus::Failed | CaseStatus::KilledTarget)
    }
}

/// One conformance case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseRow {
    /// Case id (stable across runs).
    pub id: String,
    /// Its service.
    pub service: String,
    /// Its status.
    pub status: CaseStatus,
    /// The guarantee it checks.
    pub guarantee: String,
    /// Failure text or why it did not run; empty when it passed.
    pub detail: String,
    /// The ledger entry that excused it.
    pub known: Option<Known>,
    /// Time taken.
    pub duration_ms: u64,
}

/// The chaos area.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chaos {
    /// Members of each round's cluster.
    pub members: usize,
    /// Per fault family.
    pub families: Vec<FamilyRow>,
    /// Families that do not apply to this target, and why.
    pub left_out: Vec<String>,
    /// Every round.
    pub rounds: Vec<RoundRow>,
    /// Wall time.
    pub wall_ms: u64,
}

/// One fault family's counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FamilyRow {
    /// `process`, `network`, ...
    pub family: String,
    /// Rounds run.
    pub rounds: usize,
    /// Rounds that held.
    pub passed: usize,
    /// Rounds with a violation.
    pub violations: usize,
    /// Rounds whose findings are all known issues.
    pub known_issues: usize,
    /// Rounds that could not be judged fully.
    pub unknown: usize,
    /// Rounds that could not run.
    pub not_run: usize,
}

/// A round's verdict in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoundStatus {
    /// Held.
    Passed,
    /// A violation.
    Violation,
    /// Only known issues.
    KnownIssue,
    /// Could not be judged fully.
    Unknown,
    /// Could not run.
    NotRun,
}

/// One chaos round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundRow {
    /// Its family.
    pub family: String,
    /// The fault.
    pub fault: String,
    /// The traffic profile.
    pub profile: String,
    /// The round number in the seeded plan of its family.
    pub round: u64,
    /// Its status.
    pub status: RoundStatus,
    /// Findings, unknowns and errors, one line each.
    pub details: Vec<String>,
    /// Known issues that excused findings.
    pub known: Vec<Known>,
    /// Operations judged.
    pub operations: usize,
    /// Wall time.
    pub wall_ms: u64,
    /// The command that reruns this round alone.
    pub rerun: String,
    /// Its evidence directory, relative to the report directory.
    pub evidence: Option<String>,
}

/// The skew area.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skew {
    /// The old version.
    pub from: String,
    /// The new version.
    pub to: String,
    /// Every scenario run.
    pub rows: Vec<SkewRow>,
    /// The command that repeats the skew part.
    pub rerun: String,
    /// Wall time.
    pub wall_ms: u64,
}

/// One skew scenario under one profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkewRow {
    /// The scenario.
    pub scenario: String,
    /// The traffic profile (`none` for scenarios without traffic).
    pub profile: String,
    /// `pass`, `FAIL`, `known issue`, `unknown`, `n/a`, `error`.
    pub verdict: String,
    /// The checks that did not hold, and findings, one line each.
    pub details: Vec<String>,
    /// Releases that fix the known issues it met.
    pub fixed_in: Vec<String>,
    /// The command that reruns it.
    pub rerun: String,
    /// Its evidence directory, relative to the report directory.
    pub evidence: Option<String>,
}

impl SkewRow {
    /// Whether it is a failure Gauntlet observed.
    pub fn failed(&self) -> bool {
        self.verdict == "FAIL"
    }
}

/// The benchmark area.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bench {
    /// Every workload run.
    pub workloads: Vec<BenchRow>,
    /// Wall time.
    pub wall_ms: u64,
}

/// One workload's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchRow {
    /// `put`, `range`, `watch-latency`, `kube`.
    pub workload: String,
    /// Its parameters, as etcd's tool prints them.
    pub params: String,
    /// The command that repeats it.
    pub rerun: String,
    /// Per operation kind.
    pub ops: Vec<OpRow>,
    /// The Kubernetes SLOs, for `kube`.
    pub slo: Vec<SloRow>,
    /// Why the workload could not run, if it could not.
    pub error: Option<String>,
    /// Plot files, relative to the report directory.
    pub plots: Vec<String>,
}

/// One operation kind of a workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpRow {
    /// The operation.
    pub name: String,
    /// Requests that succeeded.
    pub count: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Throughput.
    pub requests_per_s: f64,
    /// Latency percentiles.
    pub latency_ms_p50: f64,
    /// 99th percentile.
    pub latency_ms_p99: f64,
    /// 99.9th percentile.
    pub latency_ms_p999: f64,
}

/// One Kubernetes SLO.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SloRow {
    /// What is measured.
    pub name: String,
    /// Its 99th percentile.
    pub measured_s: f64,
    /// The limit.
    pub limit_s: f64,
    /// Samples.
    pub samples: u64,
    /// Within the limit.
    pub pass: bool,
}

impl Report {
    /// Parses a `report.json`, refusing other schema versions with one line.
    pub fn from_json(text: &str) -> Result<Report, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        match v.get("schema_version").and_then(serde_json::Value::as_u64) {
            Some(n) if n == u64::from(SCHEMA_VERSION) => {}
            Some(n) => {
                return Err(format!(
                    "schema version {n}; this gauntlet reads version {SCHEMA_VERSION}"
                ))
            }
            None => return Err("no schema_version: not a gauntlet certify report".into()),
        }
        serde_json::from_value(v).map_err(|e| format!("not a certify report: {e}"))
    }

    /// The verdict of `area`, if the report has one.
    pub fn area(&self, area: Area) -> Option<&AreaVerdict> {
        self.areas.iter().find(|a| a.area == area)
    }
}
