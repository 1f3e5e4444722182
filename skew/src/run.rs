//! Running one scenario: a cluster of the old version, recorded traffic, version
//! steps with their checks, and the chaos suite's judgement of everything observed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gauntlet_api::etcdserverpb as pb;
use gauntlet_chaos::round::{MutateOn, Session, SessionError};
use gauntlet_chaos::scenario::TrafficProfile;
use gauntlet_chaos::traffic::TrafficConfig;
use gauntlet_chaos::validate::Finding;
use gauntlet_harness::profile::SemVer;
use gauntlet_harness::{Cache, Client, Cluster, ClusterSpec, MemberState, Mutation, Target};
use serde::Serialize;

use crate::expect::{self, Doc, Expect, Start};
use crate::scenario::Scenario;

/// Members of every scenario's cluster.
pub const MEMBERS: usize = 3;
/// `--snapshot-count` of every member: low, so that a lagging member needs a snapshot.
pub const SNAPSHOT_COUNT: u64 = 100;
/// Entries etcd keeps behind a snapshot for slow followers (SnapshotCatchUpEntries);
/// a member further behind than snapshot-count plus this gets a snapshot.
pub const CATCH_UP_ENTRIES: u64 = 5_000;
/// How long a member may take to serve after a (re)start.
pub const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a member that should be refused may take to exit; one still running
/// this long after its start has started.
pub const REFUSAL_WITHIN: Duration = Duration::from_secs(20);
/// Traffic before the first step and after the last.
pub const SETTLE: Duration = Duration::from_secs(1);
/// Deadline of the scenario's own requests (Downgrade, MoveLeader, MemberList):
/// etcd's own request timeout is 5 s plus two election timeouts.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of one etcdctl command.
const ETCDCTL_TIMEOUT: Duration = Duration::from_secs(15);

/// How a skew run goes (everything but the scenario and profile).
#[derive(Clone)]
pub struct Options {
    /// The old version.
    pub from: Target,
    /// The new version.
    pub to: Target,
    /// The target cache.
    pub cache: Cache,
    /// Traffic volume and shape.
    pub traffic: TrafficConfig,
    /// Seed of the traffic.
    pub seed: u64,
    /// Deadline of the linearizability check.
    pub check_timeout: Duration,
    /// Self-test: mutate member 0's answers; every scenario must then fail.
    pub mutate: Option<Mutation>,
    /// Where failing scenarios' directories go.
    pub out: Option<PathBuf>,
    /// Write a directory for passing scenarios too.
    pub keep_all: bool,
    /// The command that reruns the run, without `--scenario` and `--profile`.
    pub rerun: String,
    /// The conformance suite's Kubernetes profile, for `client-skew.kubernetes-profile`
    /// (the suite lives beside this one; the caller that has both supplies it).
    pub kubernetes_profile: Option<ClientSuite>,
}

/// A client-side suite run against a cluster: given a client configuration over its
/// members, whether it passed and one line saying what ran and what failed.
pub type ClientSuite = std::sync::Arc<
    dyn Fn(
            gauntlet_harness::ClientConfig,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(bool, String), String>> + Send>,
        > + Send
        + Sync,
>;

/// One expectation checked during a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// When (the step it belongs to).
    pub step: String,
    /// What was checked.
    pub what: String,
    /// What the documentation says should be seen.
    pub expected: String,
    /// What was seen.
    pub observed: String,
    /// Whether they agree.
    pub ok: bool,
    /// A failed check that is a known bug of this release: the version that fixed it.
    pub known_fixed_in: Option<String>,
    /// The source of the expectation.
    pub doc: Option<Doc>,
}

impl Check {
    /// One line: `[known issue: ]step: what: expected ...; observed ...`.
    pub fn line(&self) -> String {
        format!(
            "{}{}: {}: expected {}; observed {}",
            if self.known_fixed_in.is_some() {
                "known issue: "
            } else {
                ""
            },
            self.step,
            self.what,
            self.expected,
            self.observed
        )
    }
}

/// A scenario's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "reason")]
pub enum Verdict {
    /// Every check held and the history is clean.
    Passed,
    /// A check failed or the judgement found a violation.
    Failed,
    /// Only known bugs of this release failed.
    KnownIssue,
    /// Nothing failed, but something could not be judged.
    Unknown,
    /// The scenario does not apply to this pair (why).
    NotApplicable(String),
    /// The scenario could not run (why).
    Error(String),
}

impl Verdict {
    /// Short form for tables.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Passed => "pass",
            Verdict::Failed => "FAIL",
            Verdict::KnownIssue => "known issue",
            Verdict::Unknown => "unknown",
            Verdict::NotApplicable(_) => "n/a",
            Verdict::Error(_) => "error",
        }
    }
}

/// What one scenario found.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// The scenario.
    pub scenario: Scenario,
    /// `--from`.
    pub from: String,
    /// `--to`.
    pub to: String,
    /// The traffic profile (`none` for scenarios without traffic).
    pub profile: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Every expectation checked.
    pub checks: Vec<Check>,
    /// What the judgement of the recorded history and watches found.
    pub findings: Vec<Finding>,
    /// What could not be judged.
    pub unknown: Vec<String>,
    /// What happened, step by step, with the time since the start.
    pub evidence: Vec<String>,
    /// The exact refusal lines servers printed.
    pub refusals: Vec<String>,
    /// Operations in the judged history.
    pub operations: usize,
    /// Watch responses received.
    pub watch_responses: usize,
    /// Wall time, ms.
    pub wall_ms: u64,
    /// The scenario's directory, when written.
    pub dir: Option<PathBuf>,
    /// The command that reruns this scenario alone.
    pub rerun: String,
}

/// Why a scenario stopped early.
#[derive(Debug)]
enum Stop {
    NotApplicable(String),
    Error(String),
}

type Step<T = ()> = Result<T, Stop>;

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("seed", &self.seed)
            .field("mutate", &self.mutate)
            .field("out", &self.out)
            .field("kubernetes_profile", &self.kubernetes_profile.is_some())
            .finish_non_exhaustive()
    }
}

fn error(what: &str, e: impl std::fmt::Display) -> Stop {
    Stop::Error(format!("{what}: {e}"))
}

/// The server version `target` reports on `/version`, from a one-member cluster
/// launched for the purpose (whatever the binary calls itself elsewhere).
pub async fn probe_version(target: &Target, cache: &Cache) -> Result<SemVer, String> {
    let mut spec = ClusterSpec::new(target.clone(), 1);
    spec.ready_timeout = Duration::from_secs(30);
    let cluster = Cluster::start(spec, cache)
        .await
        .map_err(|e| format!("launching {target} to read its version: {e}"))?;
    let v = cluster.member_version(0).await?;
    SemVer::parse(&v.server).ok_or_else(|| {
        format!(
            "{target} reports server version `{}`, not a version number",
            v.server
        )
    })
}

/// The state of one scenario while it runs.
struct Run<'a> {
    cluster: &'a Cluster,
    opts: &'a Options,
    expect: &'a Expect,
    /// Unrecorded client over every member, with the traffic's short deadline.
    base: Client,
    /// Unrecorded client over every member for the scenario's own calls (member
    /// changes, leadership, Downgrade), with [`ADMIN_TIMEOUT`]: raft requests whose
    /// answer may take longer than a traffic request's deadline.
    admin: Client,
    checks: Vec<Check>,
    evidence: Vec<String>,
    refusals: Vec<String>,
    started: Instant,
    step: String,
}

impl Run<'_> {
    fn note(&mut self, line: impl Into<String>) {
        let line = line.into();
        self.evidence.push(format!(
            "[{:>6.1} s] {line}",
            self.started.elapsed().as_secs_f64()
        ));
    }

    fn check(
        &mut self,
        what: impl Into<String>,
        expected: impl Into<String>,
        observed: impl Into<String>,
        ok: bool,
        doc: Option<Doc>,
    ) {
        self.push_check(what.into(), expected.into(), observed.into(), ok, doc, None);
    }

    fn push_check(
        &mut self,
        what: String,
        expected: String,
        observed: String,
        ok: bool,
        doc: Option<Doc>,
        known_fixed_in: Option<String>,
    ) {
        self.note(format!(
            "{} {what}: expected {expected}, observed {observed}",
            if ok { "ok" } else { "MISMATCH" }
        ));
        self.checks.push(Check {
            step: self.step.clone(),
            what,
            expected,
            observed,
            ok,
            known_fixed_in: if ok { None } else { known_fixed_in },
            doc,
        });
    }

    fn set_step(&mut self, step: impl Into<String>) {
        self.step = step.into();
        let s = self.step.clone();
        self.note(format!("step: {s}"));
    }

    async fn leader(&self) -> Step<usize> {
        self.cluster
            .leader()
            .await
            .map_err(|e| error("finding the leader", e))
    }

    fn target_of(&self, i: usize) -> Step<Target> {
        self.cluster
            .member_target(i)
            .map_err(|e| error("reading a member's target", e))
    }

    /// Stops member `i` (SIGTERM, as an operator does), makes it `target`, starts it and
    /// waits until the cluster serves with it.
    async fn swap(&mut self, i: usize, target: &Target) -> Step {
        self.swap_start(i, target).await?;
        self.ready(&format!("m{i} as {target}")).await
    }

    /// [`Run::swap`] without waiting.
    async fn swap_start(&mut self, i: usize, target: &Target) -> Step {
        let was = self.target_of(i)?;
        self.cluster
            .stop(i)
            .await
            .map_err(|e| error(&format!("stopping m{i}"), e))?;
        self.cluster
            .set_member_target(i, target, &self.opts.cache)
            .map_err(|e| error(&format!("making m{i} {target}"), e))?;
        self.cluster
            .restart(i)
            .map_err(|e| error(&format!("starting m{i}"), e))?;
        self.note(format!("m{i}: stopped {was}, started {target}"));
        Ok(())
    }

    /// Waits until every running member serves under one leader; not doing so within
    /// [`READY_WITHIN`] is a failed check (and ends the scenario).
    async fn ready(&mut self, after: &str) -> Step {
        let t = Instant::now();
        match self.cluster.wait_ready(READY_WITHIN).await {
            Ok(()) => {
                self.note(format!(
                    "cluster serves again {} ms after {after}",
                    t.elapsed().as_millis()
                ));
                Ok(())
            }
            Err(e) => {
                let doc = self.expect.rollback_doc();
                self.check(
                    format!("the cluster serves after {after}"),
                    format!(
                        "every member serving under one leader within {} s",
                        READY_WITHIN.as_secs()
                    ),
                    e.to_string(),
                    false,
                    Some(doc),
                );
                Err(Stop::Error(format!(
                    "the cluster did not serve after {after}"
                )))
            }
        }
    }

    /// Every member's `/version`, member list and (all members up) HashKV at one
    /// revision, as evidence; the cluster version `want` (when given) checked on every
    /// member, waiting up to `within` for it.
    async fn observe(&mut self, want: Option<&str>, within: Duration) -> Step {
        let deadline = Instant::now() + within;
        loop {
            let mut seen = Vec::new();
            for i in 0..MEMBERS {
                let running = self.cluster.members()[i].state == MemberState::Running;
                if !running {
                    seen.push((i, None));
                    continue;
                }
                seen.push((i, self.cluster.member_version(i).await.ok()));
            }
            let all_want = want.is_none_or(|w| {
                seen.iter()
                    .all(|(_, v)| v.as_ref().is_none_or(|v| v.cluster == w))
                    && seen.iter().any(|(_, v)| v.is_some())
            });
            if all_want || Instant::now() >= deadline {
                let text = seen
                    .iter()
                    .map(|(i, v)| match v {
                        Some(v) => format!("m{i} server {} cluster {}", v.server, v.cluster),
                        None => format!("m{i} not answering"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Some(w) = want {
                    let doc = self.expect.version_doc();
                    self.check(
                        "cluster version on every member",
                        format!("{w} (within {} s)", within.as_secs()),
                        text.clone(),
                        all_want,
                        Some(doc),
                    );
                } else {
                    self.note(format!("/version: {text}"));
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // The member list, as each member answers it.
        for i in 0..MEMBERS {
            let Ok(c) = self.admin.pinned(i) else {
                continue;
            };
            if let Ok(l) = c
                .member_list(pb::MemberListRequest {
                    linearizable: false,
                })
                .await
            {
                let names: Vec<String> = l
                    .members
                    .iter()
                    .map(|m| {
                        if m.name.is_empty() {
                            format!("{:x} (unstarted)", m.id)
                        } else {
                            m.name.clone()
                        }
                    })
                    .collect();
                self.note(format!("m{i} member list: {}", names.join(", ")));
                break;
            }
        }
        // HashKV when every member is up.
        let all_up = self
            .cluster
            .members()
            .iter()
            .all(|m| m.state == MemberState::Running);
        if all_up {
            let rev = match self.base.range(gauntlet_chaos::traffic::full_list()).await {
                Ok(r) => r.header.map_or(0, |h| h.revision),
                Err(_) => 0,
            };
            if rev > 0 {
                self.hash_kv(rev).await;
            }
        }
        Ok(())
    }

    /// HashKV at `rev` on every member, while traffic (and its compactor) runs: hashes
    /// are compared only between members at the same compaction revision, as etcd's
    /// own corruption check does (a member that has not applied the latest compaction
    /// yet hashes a longer history); asked again, up to five times, until they all
    /// are. Unequal hashes at one compaction revision are a failed check.
    async fn hash_kv(&mut self, rev: i64) {
        let mut last = String::new();
        for _ in 0..5 {
            let mut seen: Vec<(usize, u32, i64)> = Vec::new();
            for i in 0..MEMBERS {
                let Ok(c) = self.admin.pinned(i) else {
                    continue;
                };
                if let Ok(h) = c.hash_kv(pb::HashKvRequest { revision: rev }).await {
                    seen.push((i, h.hash, h.compact_revision));
                }
            }
            last = seen
                .iter()
                .map(|(i, h, c)| format!("m{i} hash {h:08x} compact {c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let disagree = seen
                .iter()
                .any(|(_, h, c)| seen.iter().any(|(_, h2, c2)| c == c2 && h != h2));
            if disagree {
                self.check(
                    "HashKV equal on every member at one compaction revision",
                    format!("one hash per compaction revision at revision {rev}"),
                    last,
                    false,
                    None,
                );
                return;
            }
            let comparable = seen.len() == MEMBERS && seen.iter().all(|(_, _, c)| *c == seen[0].2);
            if comparable {
                self.note(format!(
                    "HashKV equal on every member at revision {rev}: {last}"
                ));
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        self.note(format!(
            "HashKV at revision {rev} not comparable on every member (different compaction revisions or no answer): {last}"
        ));
    }

    /// Starts member `i` as it is set up now and watches whether it starts or is
    /// refused, holding the outcome to `expected`. Returns whether it started.
    async fn expect_start(
        &mut self,
        i: usize,
        what: &str,
        expected: &Start,
        doc: Doc,
    ) -> Step<bool> {
        let deadline = Instant::now() + REFUSAL_WITHIN;
        // Started: it answers Status and the cluster names a leader, or it still runs at
        // the deadline. Refused: it exited.
        let started = loop {
            let m = self.cluster.members()[i].clone();
            if m.state != MemberState::Running {
                break false;
            }
            if self.cluster.member_status(i).await.is_ok()
                && Instant::now() + REFUSAL_WITHIN / 2 >= deadline
            {
                break true;
            }
            if Instant::now() >= deadline {
                break true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let tail = self.cluster.log_tail(i, 60).unwrap_or_default();
        let exit = self.cluster.members()[i].exited.clone().unwrap_or_default();
        let (expected_text, ok, known) = match expected {
            Start::Starts => ("starts and serves".to_string(), started, None),
            Start::Refused { text } => {
                let line = refusal_line(&tail, text);
                (
                    if text.is_empty() {
                        "refused at start (exits)".to_string()
                    } else {
                        format!("refused at start with \"{text}\"")
                    },
                    !started && line.is_some(),
                    None,
                )
            }
            Start::KnownBug { text, fixed_in } => (
                format!("starts and serves (etcd bug: refused with \"{text}\" until {fixed_in})"),
                started,
                Some(fixed_in.to_string()),
            ),
        };
        let observed = if started {
            "it started and serves".to_string()
        } else {
            let text = match expected {
                Start::Refused { text } | Start::KnownBug { text, .. } => *text,
                Start::Starts => "",
            };
            let line = refusal_line(&tail, text)
                .or_else(|| tail.last().cloned())
                .unwrap_or_default();
            self.refusals.push(format!("m{i} ({what}): {line}"));
            format!("it exited ({exit}): {line}")
        };
        self.push_check(
            what.to_string(),
            expected_text,
            observed,
            ok,
            Some(doc),
            known,
        );
        Ok(started)
    }

    /// The member list's id of member `i` (from its own Status).
    async fn member_id(&self, i: usize) -> Step<u64> {
        self.cluster
            .member_status(i)
            .await
            .map(|s| s.header.map_or(0, |h| h.member_id))
            .map_err(|e| error(&format!("Status of m{i}"), e))
    }

    /// Hands leadership to member `i` (MoveLeader through the current leader).
    async fn lead(&mut self, i: usize) -> Step {
        let leader = self.leader().await?;
        if leader == i {
            self.note(format!("m{i} already leads"));
            return Ok(());
        }
        let target_id = self.member_id(i).await?;
        let c = self
            .admin
            .pinned(leader)
            .map_err(|e| error("a client of the leader", e))?;
        match c.move_leader(pb::MoveLeaderRequest { target_id }).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(tonic::Code::Unimplemented) => {
                return Err(Stop::NotApplicable(format!(
                    "the target cannot hand leadership over (MoveLeader: {e})"
                )))
            }
            Err(e) => return Err(error("MoveLeader", e)),
        }
        self.ready(&format!("moving the leadership to m{i}"))
            .await?;
        let now = self.leader().await?;
        self.note(format!("m{now} leads (asked for m{i})"));
        if now != i {
            return Err(Stop::Error(format!("leadership went to m{now}, not m{i}")));
        }
        Ok(())
    }

    /// Member `i`, which applied a downgrade ENABLE and has just been started again
    /// after the others cancelled it, must start; where the release keeps it refused
    /// (a known bug), the member is replaced (removed, wiped, added back) so that the
    /// rest of the scenario has its three members.
    async fn after_cancel(&mut self, i: usize) -> Step {
        let (expected, doc) = self.expect.restart_after_cancel();
        let started = self
            .expect_start(
                i,
                "a member that applied ENABLE, started after CANCEL",
                &expected,
                doc,
            )
            .await?;
        if started {
            return self.ready(&format!("starting m{i} after CANCEL")).await;
        }
        match self.cluster.replace_member(i, READY_WITHIN).await {
            Ok(lines) => {
                for l in lines {
                    self.note(l);
                }
                self.note(format!(
                    "m{i} replaced: the cluster has its three members again"
                ));
                Ok(())
            }
            Err(e) => Err(error(&format!("replacing the refused m{i}"), e)),
        }
    }

    /// Writes `n` no-op entries (txns comparing a key nobody writes, with empty
    /// branches: raft entries that change no revision), `FILLERS` at a time.
    async fn fill(&mut self, n: u64) -> Step {
        const FILLERS: u64 = 16;
        let t = Instant::now();
        let mut tasks = Vec::new();
        for k in 0..FILLERS {
            let c = self.base.clone();
            let share = n / FILLERS + u64::from(k < n % FILLERS);
            tasks.push(tokio::spawn(async move {
                let mut done = 0u64;
                let mut failures = 0u32;
                while done < share && failures < 200 {
                    let req = pb::TxnRequest {
                        compare: vec![pb::Compare {
                            key: b"/gauntlet-skew-filler".to_vec(),
                            result: pb::compare::CompareResult::Equal as i32,
                            target: pb::compare::CompareTarget::Version as i32,
                            target_union: Some(pb::compare::TargetUnion::Version(0)),
                            ..Default::default()
                        }],
                        ..Default::default()
                    };
                    if c.txn(req).await.is_ok() {
                        done += 1;
                    } else {
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                done
            }));
        }
        let mut done = 0;
        for t in tasks {
            done += t.await.unwrap_or(0);
        }
        self.note(format!(
            "{done} of {n} no-op entries written in {} ms",
            t.elapsed().as_millis()
        ));
        if done < n {
            return Err(Stop::Error(format!(
                "only {done} of {n} no-op entries could be written"
            )));
        }
        Ok(())
    }

    /// Kills member `i`, waits a second, restarts it and waits for the cluster.
    async fn kill_restart(&mut self, i: usize) -> Step {
        let t = self.target_of(i)?;
        self.cluster
            .kill(i)
            .map_err(|e| error(&format!("killing m{i}"), e))?;
        self.note(format!("m{i} ({t}) killed"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.cluster
            .restart(i)
            .map_err(|e| error(&format!("restarting m{i}"), e))?;
        self.ready(&format!("restarting m{i} ({t})")).await
    }

    /// Cuts the leader off from the others for three election timeouts, then heals.
    async fn partition_leader(&mut self) -> Step {
        let leader = self.leader().await?;
        let cut: Vec<(usize, usize)> = (0..MEMBERS)
            .filter(|j| *j != leader)
            .map(|j| (leader.min(j), leader.max(j)))
            .collect();
        self.cluster
            .set_partition(&cut)
            .map_err(|e| error("cutting the leader off", e))?;
        self.note(format!(
            "m{leader} (leader, {}) cut off from the others",
            self.target_of(leader)?
        ));
        tokio::time::sleep(Duration::from_secs(3)).await;
        self.cluster
            .set_partition(&[])
            .map_err(|e| error("healing the partition", e))?;
        self.note("partition healed");
        self.ready("healing the partition").await?;
        let now = self.leader().await?;
        self.note(format!(
            "m{now} ({}) leads after the partition",
            self.target_of(now)?
        ));
        Ok(())
    }

    /// Upgrades every member (followers first), waiting for the cluster version.
    async fn upgrade_all(&mut self) -> Step {
        let leader = self.leader().await?;
        let order: Vec<usize> = (0..MEMBERS)
            .filter(|i| *i != leader)
            .chain([leader])
            .collect();
        let to = self.opts.to.clone();
        for i in order {
            self.swap(i, &to).await?;
        }
        let want = self.expect.final_cluster_version();
        self.observe(Some(&want), expect::CLUSTER_VERSION_WITHIN)
            .await
    }
}

/// The line of `tail` that contains `text` (any line when `text` is empty: the last),
/// verbatim up to a Go stack trace (zap's `"stacktrace"` field), which is cut off.
fn refusal_line(tail: &[String], text: &str) -> Option<String> {
    let line = if text.is_empty() {
        tail.last()
    } else {
        tail.iter().rev().find(|l| l.contains(text))
    }?;
    Some(match line.find(",\"stacktrace\":") {
        Some(at) => format!("{}, …}}", &line[..at]),
        None => line.clone(),
    })
}

async fn body(s: Scenario, run: &mut Run<'_>) -> Step {
    let (from, to) = (run.opts.from.clone(), run.opts.to.clone());
    let mixed = run.expect.mixed_cluster_version();
    match s {
        Scenario::UpgradeFollowersFirst | Scenario::UpgradeLeaderFirst => {
            run.set_step("before the upgrade");
            run.observe(Some(&mixed), expect::CLUSTER_VERSION_WITHIN)
                .await?;
            let leader = run.leader().await?;
            let followers = (0..MEMBERS).filter(|i| *i != leader);
            let order: Vec<usize> = if s == Scenario::UpgradeLeaderFirst {
                std::iter::once(leader).chain(followers).collect()
            } else {
                followers.chain([leader]).collect()
            };
            for (k, i) in order.iter().enumerate() {
                let role = if *i == leader { "leader" } else { "follower" };
                run.set_step(format!("upgrade {} of {MEMBERS}: m{i} ({role})", k + 1));
                run.swap(*i, &to).await?;
                if k + 1 < MEMBERS {
                    run.observe(Some(&mixed), Duration::ZERO).await?;
                } else {
                    let last = Instant::now();
                    let want = run.expect.final_cluster_version();
                    run.observe(Some(&want), expect::CLUSTER_VERSION_WITHIN)
                        .await?;
                    run.note(format!(
                        "cluster version settled {} ms after the last member was upgraded",
                        last.elapsed().as_millis()
                    ));
                }
            }
        }
        Scenario::MixedMinorityOld
        | Scenario::MixedMajorityOld
        | Scenario::MixedOldLeader
        | Scenario::MixedNewLeader => {
            let upgraded = match s {
                Scenario::MixedMinorityOld | Scenario::MixedOldLeader => 2,
                _ => 1,
            };
            run.set_step(format!("upgrade {upgraded} of {MEMBERS}"));
            // Members 1.. are upgraded; member 0 stays old in every case but one-new.
            let new: Vec<usize> = (MEMBERS - upgraded..MEMBERS).collect();
            for i in &new {
                run.swap(*i, &to).await?;
            }
            let old: Vec<usize> = (0..MEMBERS).filter(|i| !new.contains(i)).collect();
            let leader_of = match s {
                Scenario::MixedMinorityOld | Scenario::MixedNewLeader => new[0],
                _ => old[0],
            };
            run.set_step(format!("m{leader_of} leads"));
            run.lead(leader_of).await?;
            run.observe(Some(&mixed), Duration::ZERO).await?;
            for i in 0..MEMBERS {
                run.set_step(format!("kill and restart m{i}"));
                run.kill_restart(i).await?;
                run.observe(Some(&mixed), Duration::ZERO).await?;
            }
            run.set_step("partition the leader");
            run.partition_leader().await?;
            run.observe(Some(&mixed), expect::CLUSTER_VERSION_WITHIN)
                .await?;
        }
        Scenario::SnapshotNewFromOld | Scenario::SnapshotOldFromNew => {
            let joiner = if s == Scenario::SnapshotOldFromNew {
                // Two new members, a new leader; the old one is replaced.
                run.set_step("upgrade m1 and m2, m1 leads");
                run.swap(1, &to).await?;
                run.swap(2, &to).await?;
                run.lead(1).await?;
                0
            } else {
                2
            };
            let joiner_target = if s == Scenario::SnapshotOldFromNew {
                from.clone()
            } else {
                to.clone()
            };
            run.set_step("compact the log");
            run.fill(SNAPSHOT_COUNT + CATCH_UP_ENTRIES + 200).await?;
            let before = run
                .cluster
                .member_status(run.leader().await?)
                .await
                .map_err(|e| error("Status of the leader", e))?
                .raft_index;
            run.set_step(format!(
                "replace m{joiner} with a new member running {joiner_target}"
            ));
            run.cluster
                .set_member_target(joiner, &joiner_target, &run.opts.cache)
                .map_err(|e| error("setting the joiner's target", e))?;
            match run.cluster.replace_member(joiner, READY_WITHIN).await {
                Ok(lines) => {
                    for l in lines {
                        run.note(l);
                    }
                }
                Err(gauntlet_harness::HarnessError::Unsupported(why)) => {
                    return Err(Stop::NotApplicable(format!(
                        "the target cannot replace a member: {why}"
                    )))
                }
                Err(e) => {
                    let doc = run.expect.rollback_doc();
                    run.check(
                        format!("a new {joiner_target} member joins and catches up"),
                        "it joins and serves",
                        e.to_string(),
                        false,
                        Some(doc),
                    );
                    return Err(Stop::Error("the new member did not join".into()));
                }
            }
            let index = run
                .cluster
                .member_status(joiner)
                .await
                .map(|st| st.raft_index)
                .unwrap_or(0);
            let doc = run.expect.rollback_doc();
            run.check(
                format!("the new m{joiner} ({joiner_target}) caught up past the compacted log"),
                format!("raft index at least {before} (the leader's before it joined; its log was compacted behind {} entries)", SNAPSHOT_COUNT + CATCH_UP_ENTRIES),
                format!("raft index {index}"),
                index >= before,
                Some(doc),
            );
            run.observe(Some(&mixed), expect::CLUSTER_VERSION_WITHIN)
                .await?;
        }
        Scenario::RollbackMidUpgrade => {
            let leader = run.leader().await?;
            let followers: Vec<usize> = (0..MEMBERS).filter(|i| *i != leader).collect();
            for i in &followers {
                run.set_step(format!("upgrade m{i}"));
                run.swap(*i, &to).await?;
            }
            run.observe(Some(&mixed), Duration::ZERO).await?;
            for i in &followers {
                run.set_step(format!("roll m{i} back to {from}"));
                let doc = run.expect.rollback_doc();
                run.swap_start(*i, &from).await?;
                let started = run
                    .expect_start(
                        *i,
                        &format!("m{i} rolled back to {from}"),
                        &Start::Starts,
                        doc,
                    )
                    .await?;
                if !started {
                    return Err(Stop::Error(format!("m{i} did not start on the old binary")));
                }
                run.ready(&format!("rolling m{i} back")).await?;
            }
            run.observe(Some(&mixed), expect::CLUSTER_VERSION_WITHIN)
                .await?;
        }
        Scenario::RefuseOldBinaryOnUpgradedData => {
            run.set_step("upgrade every member");
            run.upgrade_all().await?;
            let leader = run.leader().await?;
            let f = (leader + 1) % MEMBERS;
            run.set_step(format!("restart m{f} with {from}"));
            run.swap_start(f, &from).await?;
            let (expected, doc) = run.expect.old_on_upgraded_data();
            let started = run
                .expect_start(
                    f,
                    &format!("{from} on data of the finished upgrade"),
                    &expected,
                    doc,
                )
                .await?;
            run.set_step(format!("m{f} back on {to}"));
            if started {
                run.ready(&format!("m{f} on {from}")).await?;
            }
            run.swap(f, &to).await?;
            run.observe(
                Some(&run.expect.final_cluster_version()),
                expect::CLUSTER_VERSION_WITHIN,
            )
            .await?;
        }
        Scenario::RefuseOldMemberJoining => {
            run.set_step("upgrade every member");
            run.upgrade_all().await?;
            let leader = run.leader().await?;
            let f = (leader + 1) % MEMBERS;
            run.set_step(format!("replace m{f} with a new {from} member"));
            run.cluster
                .set_member_target(f, &from, &run.opts.cache)
                .map_err(|e| error("setting the joiner's target", e))?;
            let (expected, doc) = run.expect.old_joins_upgraded();
            let joined = run.cluster.replace_member(f, REFUSAL_WITHIN).await;
            match &joined {
                Ok(lines) => {
                    for l in lines.clone() {
                        run.note(l);
                    }
                }
                Err(gauntlet_harness::HarnessError::Unsupported(why)) => {
                    return Err(Stop::NotApplicable(format!(
                        "the target cannot replace a member: {why}"
                    )))
                }
                Err(e) => run.note(format!("replacing m{f}: {e}")),
            }
            run.expect_start(
                f,
                &format!("a new {from} member joining the upgraded cluster"),
                &expected,
                doc,
            )
            .await?;
            run.set_step(format!("the new m{f} on {to}"));
            run.swap(f, &to).await?;
            run.observe(
                Some(&run.expect.final_cluster_version()),
                expect::CLUSTER_VERSION_WITHIN,
            )
            .await?;
        }
        Scenario::DowngradeApi => downgrade_api(run).await?,
        Scenario::DowngradeBySwap => {
            run.set_step("upgrade every member");
            run.upgrade_all().await?;
            let target = run.expect.downgrade_target();
            let enabled = if run.expect.minor_step() {
                run.set_step(format!("enable a downgrade to {target}"));
                match enable_or_cancel(run, pb::downgrade_request::DowngradeAction::Enable, &target)
                    .await
                {
                    Ok(applied) => applied,
                    Err(Stop::NotApplicable(why)) => {
                        run.note(format!("{why}: swapping without it"));
                        false
                    }
                    Err(e) => return Err(e),
                }
            } else {
                false
            };
            let leader = run.leader().await?;
            let f = (leader + 1) % MEMBERS;
            run.set_step(format!("swap m{f} to {from}"));
            run.swap_start(f, &from).await?;
            let (expected, doc) = run.expect.downgrade_by_swap();
            let started = run
                .expect_start(
                    f,
                    &format!("m{f} downgraded to {from} by binary swap"),
                    &expected,
                    doc,
                )
                .await?;
            if started {
                run.ready(&format!("m{f} on {from}")).await?;
            }
            if enabled {
                run.set_step("cancel the downgrade");
                enable_or_cancel(run, pb::downgrade_request::DowngradeAction::Cancel, &target)
                    .await?;
            }
            run.set_step(format!("m{f} back on {to}"));
            if enabled {
                run.swap_start(f, &to).await?;
                run.after_cancel(f).await?;
            } else {
                run.swap(f, &to).await?;
            }
            run.observe(None, Duration::ZERO).await?;
        }
        Scenario::ClientSkew | Scenario::ClientSkewKubernetes => {
            unreachable!("client skew runs without recorded traffic")
        }
    }
    Ok(())
}

async fn downgrade(
    run: &Run<'_>,
    action: pb::downgrade_request::DowngradeAction,
    version: &str,
) -> Result<pb::DowngradeResponse, gauntlet_harness::ClientError> {
    // Through the leader: a member a scenario stopped cannot answer.
    let c = match run.cluster.leader().await {
        Ok(l) => run.admin.pinned(l).unwrap_or_else(|_| run.admin.clone()),
        Err(_) => run.admin.clone(),
    };
    c.downgrade(pb::DowngradeRequest {
        action: action as i32,
        version: version.to_string(),
    })
    .await
}

/// ENABLE or CANCEL `target`, checked: it must be accepted. Where the release is known
/// to apply it without answering, the timeout is a known issue, and whether it took
/// effect is read from the next request's answer (a second ENABLE is refused as "in
/// progress"; a CANCEL with nothing to cancel as "no inflight"). Returns whether it
/// took effect.
async fn enable_or_cancel(
    run: &mut Run<'_>,
    action: pb::downgrade_request::DowngradeAction,
    target: &str,
) -> Step<bool> {
    use pb::downgrade_request::DowngradeAction as A;
    let r = downgrade(run, action, target).await;
    if let Err(e) = &r {
        if e.code() == Some(tonic::Code::Unimplemented) {
            return Err(Stop::NotApplicable(format!(
                "{} has no Downgrade API (it arrived in etcd 3.5): {e}",
                run.opts.to
            )));
        }
    }
    let now = run.expect.final_cluster_version();
    let observed = describe(&r);
    let accepted = r
        .as_ref()
        .is_ok_and(|r| action != A::Enable || r.version == now);
    let timed_out = observed.contains("request timed out");
    let known = run.expect.downgrade_answer_bug().filter(|_| timed_out);
    let doc = if known.is_some() {
        expect::DOWNGRADE_ANSWER_BUG
    } else {
        expect::DOWNGRADE_API
    };
    run.push_check(
        format!("{action:?} {target}"),
        if action == A::Enable {
            format!("accepted, answering the cluster version {now}")
        } else {
            "accepted".to_string()
        },
        observed,
        accepted,
        Some(doc),
        known.map(str::to_string),
    );
    if accepted {
        return Ok(true);
    }
    if !timed_out {
        return Ok(false);
    }
    // Maybe applied: the next answer tells.
    let (probe, sign) = match action {
        A::Enable => (
            A::Enable,
            "etcdserver: cluster has a downgrade job in progress",
        ),
        _ => (A::Cancel, "etcdserver: no inflight downgrade job"),
    };
    let again = describe(&downgrade(run, probe, target).await);
    let applied = again.contains(sign);
    run.note(format!(
        "{action:?} {}: {probe:?} again answers {again}",
        if applied {
            "took effect"
        } else {
            "did not take effect"
        }
    ));
    Ok(applied)
}

async fn downgrade_api(run: &mut Run<'_>) -> Step {
    use pb::downgrade_request::DowngradeAction as A;
    run.set_step("upgrade every member");
    run.upgrade_all().await?;
    let target = run.expect.downgrade_target();
    let doc = expect::DOWNGRADE_API;
    run.set_step("Downgrade errors");
    match downgrade(run, A::Cancel, &target).await {
        Err(e) if e.code() == Some(tonic::Code::Unimplemented) => {
            return Err(Stop::NotApplicable(format!(
                "{} has no Downgrade API (it arrived in etcd 3.5): {e}",
                run.opts.to
            )))
        }
        r => {
            let observed = describe(&r);
            run.check(
                "CANCEL with no downgrade in flight",
                "etcdserver: no inflight downgrade job",
                observed.clone(),
                observed.contains("etcdserver: no inflight downgrade job"),
                Some(doc),
            );
        }
    }
    let too_far = format!("{}.{}", run.expect.to.0, run.expect.to.1.saturating_sub(2));
    let r = downgrade(run, A::Validate, &too_far).await;
    let observed = describe(&r);
    run.check(
        format!("VALIDATE {too_far} (two minors down)"),
        "etcdserver: invalid downgrade target version",
        observed.clone(),
        observed.contains("etcdserver: invalid downgrade target version"),
        Some(doc),
    );
    let r = downgrade(run, A::Validate, "three").await;
    let observed = describe(&r);
    run.check(
        "VALIDATE with a malformed version",
        "etcdserver: wrong downgrade target version format",
        observed.clone(),
        observed.contains("etcdserver: wrong downgrade target version format"),
        Some(doc),
    );
    run.set_step(format!("VALIDATE and ENABLE {target}"));
    let now = run.expect.final_cluster_version();
    let r = downgrade(run, A::Validate, &target).await;
    let observed = describe(&r);
    run.check(
        format!("VALIDATE {target}"),
        format!("accepted, answering the cluster version {now}"),
        observed,
        r.as_ref().is_ok_and(|r| r.version == now),
        Some(doc),
    );
    if !enable_or_cancel(run, A::Enable, &target).await? {
        return Err(Stop::Error("the downgrade was not enabled".into()));
    }
    let r = downgrade(run, A::Enable, &target).await;
    let observed = describe(&r);
    run.check(
        "a second ENABLE",
        "etcdserver: cluster has a downgrade job in progress",
        observed.clone(),
        observed.contains("etcdserver: cluster has a downgrade job in progress"),
        Some(doc),
    );
    // etcd 3.5 leaves the cluster version alone until an older member appears.
    run.observe(Some(&now), Duration::from_secs(5)).await?;
    let leader = run.leader().await?;
    let f = (leader + 1) % MEMBERS;
    run.set_step(format!(
        "restart m{f} ({}) while the downgrade is enabled",
        run.opts.to
    ));
    run.cluster
        .stop(f)
        .await
        .map_err(|e| error(&format!("stopping m{f}"), e))?;
    run.cluster
        .restart(f)
        .map_err(|e| error(&format!("starting m{f}"), e))?;
    let (expected, rdoc) = run.expect.restart_while_downgrade_enabled();
    let started = run
        .expect_start(
            f,
            "a member restarted while a downgrade is enabled",
            &expected,
            rdoc,
        )
        .await?;
    if started {
        run.ready(&format!("restarting m{f}")).await?;
    }
    run.set_step("CANCEL");
    if !enable_or_cancel(run, A::Cancel, &target).await? {
        return Err(Stop::Error("the downgrade could not be cancelled".into()));
    }
    if !started {
        run.set_step(format!("m{f} again after CANCEL"));
        run.cluster
            .restart(f)
            .map_err(|e| error(&format!("starting m{f}"), e))?;
        run.after_cancel(f).await?;
    }
    run.observe(Some(&now), expect::CLUSTER_VERSION_WITHIN)
        .await
}

fn describe(r: &Result<pb::DowngradeResponse, gauntlet_harness::ClientError>) -> String {
    match r {
        Ok(r) => format!("accepted, cluster version {}", r.version),
        Err(e) => e.to_string(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs `scenario` under `profile` (ignored by scenarios without traffic); never
/// panics on a misbehaving target (that is a verdict).
pub async fn run_scenario(
    scenario: Scenario,
    profile: TrafficProfile,
    expect: &Expect,
    opts: &Options,
) -> ScenarioResult {
    let started = Instant::now();
    let profile_name = if scenario.recorded() {
        match profile {
            TrafficProfile::Etcd => "etcd",
            TrafficProfile::Kubernetes => "kubernetes",
        }
    } else {
        "none"
    };
    let mut result = ScenarioResult {
        scenario,
        from: opts.from.to_string(),
        to: opts.to.to_string(),
        profile: profile_name.to_string(),
        verdict: Verdict::Passed,
        checks: Vec::new(),
        findings: Vec::new(),
        unknown: Vec::new(),
        evidence: Vec::new(),
        refusals: Vec::new(),
        operations: 0,
        watch_responses: 0,
        wall_ms: 0,
        dir: None,
        rerun: format!(
            "{} --scenario {}{}",
            opts.rerun,
            scenario.name(),
            if scenario.recorded() {
                format!(" --profile {profile_name}")
            } else {
                String::new()
            }
        ),
    };
    if !scenario.recorded() {
        if scenario == Scenario::ClientSkew {
            crate::client::run(&mut result, opts).await;
        } else {
            crate::client::run_kubernetes(&mut result, opts).await;
        }
        result.wall_ms = millis(started.elapsed());
        if result.verdict == Verdict::Passed {
            finish_verdict(&mut result);
        }
        write_dir(&mut result, opts, None, None);
        return result;
    }
    let data = match tempfile::Builder::new().prefix("gauntlet-skew-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            result.verdict = Verdict::Error(format!("creating the scenario's data dir: {e}"));
            return result;
        }
    };
    let mut spec = ClusterSpec::new(opts.from.clone(), MEMBERS);
    spec.heartbeat_interval_ms = 100;
    spec.election_timeout_ms = 1000;
    spec.extra_args = vec![
        "--snapshot-count".into(),
        SNAPSHOT_COUNT.to_string(),
        "--experimental-watch-progress-notify-interval".into(),
        "100ms".into(),
    ];
    spec.data_root = Some(data.path().to_path_buf());
    spec.peer_proxy = Some(gauntlet_harness::PeerProxy::Local);
    spec.ready_timeout = Duration::from_secs(60);
    let cluster = match Cluster::start(spec, &opts.cache).await {
        Ok(c) => c,
        Err(e) => {
            result.verdict = Verdict::Error(format!("launching {}: {e}", opts.from));
            return result;
        }
    };
    let mutate = opts.mutate.map(|m| (m, MutateOn::One(0)));
    let session = match Session::start(&cluster, &opts.traffic, profile, opts.seed, mutate).await {
        Ok(s) => s,
        Err(SessionError::Error(e)) => {
            result.verdict = Verdict::Error(e);
            return result;
        }
        Err(SessionError::NotEmpty(f)) => {
            result.findings.push(f);
            result.verdict = Verdict::Failed;
            result.wall_ms = millis(started.elapsed());
            write_dir(&mut result, opts, Some(&cluster), None);
            return result;
        }
    };
    let mut admin_config = cluster.client_config(cluster.endpoints());
    admin_config.command_timeout = ADMIN_TIMEOUT;
    let admin = match Client::connect(admin_config).await {
        Ok(c) => c,
        Err(e) => {
            session.abandon().await;
            result.verdict = Verdict::Error(format!("connecting: {e}"));
            return result;
        }
    };
    tokio::time::sleep(SETTLE).await;
    let mut run = Run {
        cluster: &cluster,
        opts,
        expect,
        base: session.base().clone(),
        admin,
        checks: Vec::new(),
        evidence: Vec::new(),
        refusals: Vec::new(),
        started,
        step: "start".into(),
    };
    let outcome = body(scenario, &mut run).await;
    let Run {
        checks,
        evidence,
        refusals,
        ..
    } = run;
    result.checks = checks;
    result.evidence = evidence;
    result.refusals = refusals;
    if let Err(Stop::NotApplicable(why)) = outcome {
        session.abandon().await;
        result.verdict = Verdict::NotApplicable(why);
        result.wall_ms = millis(started.elapsed());
        return result;
    }
    // Whatever the steps did, every member runs again before the judgement (a member
    // a failed step left down would fail HashKV for the wrong reason).
    for (i, m) in cluster.members().iter().enumerate() {
        if m.state != MemberState::Running {
            let _ = cluster.set_member_target(i, &opts.to, &opts.cache);
            let _ = cluster.restart(i);
        }
    }
    let _ = cluster.wait_ready(READY_WITHIN).await;
    tokio::time::sleep(SETTLE).await;
    let judged = match session.finish(&cluster, opts.check_timeout).await {
        Ok(j) => j,
        Err(v) => {
            result.verdict = Verdict::Error(format!("judging: {v:?}"));
            return result;
        }
    };
    result.findings.extend(judged.findings.iter().cloned());
    result.unknown.extend(judged.unknown.iter().cloned());
    result.operations = judged.operations;
    result.watch_responses = judged.watch_responses;
    if let Err(Stop::Error(why)) = outcome {
        result
            .unknown
            .push(format!("the scenario stopped early: {why}"));
        if result.checks.iter().all(|c| c.ok) {
            result.verdict = Verdict::Error(why);
        }
    }
    result.wall_ms = millis(started.elapsed());
    if !matches!(result.verdict, Verdict::Error(_)) {
        finish_verdict(&mut result);
    }
    write_dir(&mut result, opts, Some(&cluster), Some(&judged));
    drop(cluster);
    result
}

/// The verdict from the checks, findings and unknowns (a scenario that checked
/// nothing did not run).
fn finish_verdict(r: &mut ScenarioResult) {
    if r.checks.is_empty() && r.findings.is_empty() {
        r.verdict = Verdict::Error("no check ran".into());
        return;
    }
    let failed: Vec<&Check> = r.checks.iter().filter(|c| !c.ok).collect();
    // Something not judged outweighs a known issue: the rest may have hidden more.
    r.verdict = if !r.findings.is_empty() || failed.iter().any(|c| c.known_fixed_in.is_none()) {
        Verdict::Failed
    } else if !r.unknown.is_empty() {
        Verdict::Unknown
    } else if !failed.is_empty() {
        Verdict::KnownIssue
    } else {
        Verdict::Passed
    };
}

/// Writes the scenario's directory when it did not pass (or `keep_all`): the result,
/// the evidence, the rerun command, member logs, and the judged history and watches.
fn write_dir(
    r: &mut ScenarioResult,
    opts: &Options,
    cluster: Option<&Cluster>,
    judged: Option<&gauntlet_chaos::round::Judged>,
) {
    let keep = opts.keep_all || !matches!(r.verdict, Verdict::Passed | Verdict::NotApplicable(_));
    let Some(out) = opts.out.as_ref().filter(|_| keep) else {
        return;
    };
    let dir = out.join(format!("{}.{}", r.scenario.name(), r.profile));
    r.dir = Some(dir.clone());
    if let Err(e) = write_files(&dir, r, cluster, judged) {
        r.unknown.push(format!("writing {}: {e}", dir.display()));
    }
}

fn write_files(
    dir: &Path,
    r: &ScenarioResult,
    cluster: Option<&Cluster>,
    judged: Option<&gauntlet_chaos::round::Judged>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if let Some(j) = judged {
        gauntlet_chaos::report::write_evidence(
            dir,
            &format!("skew {} ({} -> {})", r.scenario, r.from, r.to),
            &j.validation.judged,
            &j.watches,
            &j.side_reads,
            &j.validation,
        )?;
    }
    std::fs::write(
        dir.join("scenario.json"),
        serde_json::to_string_pretty(r).map_err(std::io::Error::other)?,
    )?;
    std::fs::write(dir.join("evidence.txt"), r.evidence.join("\n") + "\n")?;
    std::fs::write(dir.join("rerun.txt"), format!("{}\n", r.rerun))?;
    if let Some(c) = cluster {
        let members = dir.join("members");
        std::fs::create_dir_all(&members)?;
        for m in c.members() {
            let _ = std::fs::copy(&m.log, members.join(format!("{}.log", m.name)));
        }
    }
    Ok(())
}

/// Runs `etcdctl` with `args` against `endpoints` under a deadline: (success, output).
pub(crate) fn etcdctl(bin: &Path, endpoints: &str, args: &[&str]) -> (bool, String) {
    use std::process::{Command, Stdio};
    let child = Command::new(bin)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--dial-timeout=3s")
        .arg("--command-timeout=5s")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (false, format!("starting {}: {e}", bin.display())),
    };
    let deadline = Instant::now() + ETCDCTL_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return (
                    false,
                    format!("timed out after {} s", ETCDCTL_TIMEOUT.as_secs()),
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return (false, e.to_string()),
        }
    }
    match child.wait_with_output() {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            (o.status.success(), text.trim().to_string())
        }
        Err(e) => (false, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_lines_are_verbatim_up_to_the_stack_trace() {
        let tail = vec![
            "starting".to_string(),
            r#"{"level":"fatal","msg":"invalid downgrade; server version is not allowed to join when downgrade is enabled","current-server-version":"3.5.1","stacktrace":"go.etcd.io/etcd/server/v3/etcdserver/api/membership.mustDetectDowngrade\n\t..."}"#.to_string(),
        ];
        assert_eq!(
            refusal_line(&tail, "not allowed to join").unwrap(),
            r#"{"level":"fatal","msg":"invalid downgrade; server version is not allowed to join when downgrade is enabled","current-server-version":"3.5.1", …}"#
        );
        let capnslog = "2026-12-01 C | etcdserver/membership: cluster cannot be downgraded (current version: 3.4.23 is lower than determined cluster version: 3.5).";
        assert_eq!(
            refusal_line(
                &[capnslog.to_string()],
                "lower than determined cluster version"
            )
            .unwrap(),
            capnslog
        );
        assert_eq!(
            refusal_line(&tail, "").unwrap(),
            tail[1][..tail[1].find(",\"stacktrace\"").unwrap()].to_string() + ", …}"
        );
        assert!(refusal_line(&tail, "nowhere").is_none());
    }
}
