//! One round: a fresh cluster, recorded traffic, one fault, validation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gauntlet_api::etcdserverpb as pb;
use gauntlet_harness::{
    Cache, Client, Cluster, ClusterSpec, MemoryRecorder, Mutation, Outcome, Proxy, Target,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::convert;
use crate::fault::{self, FaultCtx, FaultError, FaultRecord};
use crate::scenario::RoundSpec;
use crate::traffic::{Traffic, TrafficConfig, PREFIX};
use crate::validate::{validate, Finding};
use crate::watch::{MemberWatch, Watchers};

/// How long the cluster may take to serve again after a fault.
pub const READY_AFTER_FAULT: Duration = Duration::from_secs(30);
/// How long the final write may take (attempts included).
pub const FINAL_WRITE_WITHIN: Duration = Duration::from_secs(30);
/// How long watchers get to reach the final revision.
pub const WATCH_CATCH_UP: Duration = Duration::from_secs(15);

/// How rounds run (everything but what [`RoundSpec`] plans).
#[derive(Debug, Clone)]
pub struct RoundOptions {
    /// The server.
    pub target: Target,
    /// Binary cache.
    pub cache: Cache,
    /// Traffic shape and volume.
    pub traffic: TrafficConfig,
    /// Traffic before the fault.
    pub before_fault: Duration,
    /// Traffic after the fault is healed.
    pub after_fault: Duration,
    /// Deadline of the linearizability check.
    pub check_timeout: Duration,
    /// Self-test: a response-mutating proxy in front of every member's client URL.
    pub mutation: Option<Mutation>,
    /// Network faults drive the peer proxies of this toxiproxy server instead of
    /// gauntlet's own.
    pub toxiproxy: Option<String>,
    /// Where members run: processes on loopback (network faults through peer proxies)
    /// or containers on a private network (network faults as packet filter rules).
    pub backend: gauntlet_harness::Backend,
    /// The etcd release under test when the target is real etcd: the known-issue
    /// ledger applies only then.
    pub etcd_release: Option<gauntlet_harness::profile::SemVer>,
    /// The known-issue ledger.
    pub ledger: crate::ledger::Ledger,
    /// Where round directories go (`<out>/round-<n>/`); `None`: nowhere.
    pub out: Option<PathBuf>,
    /// Write a round directory for passing rounds too.
    pub keep_all: bool,
    /// The command that reruns this run, without `--round`; a round appends its own.
    pub rerun: String,
}

/// A round's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "reason")]
pub enum RoundVerdict {
    /// Every check held.
    Passed,
    /// A guarantee broke (see the findings).
    Violation,
    /// Guarantees broke, and every finding is a known issue of this etcd release
    /// (see `known_issues`).
    KnownIssue,
    /// Nothing broke, but a check could not finish (see `unknown`).
    Unknown,
    /// The round did not run its fault (the target does not support it).
    Skipped(String),
    /// The round could not run (the target did not start, a fault could not be
    /// injected).
    Error(String),
}

/// Availability figures of a round.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Availability {
    /// Requests sent by the traffic.
    pub requests: u64,
    /// Of those, failed (any way).
    pub failed: u64,
    /// Operations invoked while the fault was active.
    pub during_fault: u64,
    /// Of those, not answered with success.
    pub during_fault_failed: u64,
    /// From the end of healing to the first successful write invoked after it, ms.
    pub first_write_after_heal_ms: Option<u64>,
    /// Longest gap between two successful writes in the round, ms.
    pub longest_write_gap_ms: u64,
    /// The traffic before, during and after the fault (from its injection to the end
    /// of its healing).
    pub phases: Vec<PhaseStats>,
}

/// What the recorded traffic did in one phase of a round.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseStats {
    /// `before`, `during` or `after`.
    pub phase: &'static str,
    /// Length of the phase, ms.
    pub ms: u64,
    /// Operations invoked in it.
    pub operations: u64,
    /// Of those, answered with success.
    pub ok: u64,
    /// Of those, definitely failed.
    pub failed: u64,
    /// Of those, with an unknown outcome.
    pub unknown: u64,
    /// Successful operations per second.
    pub ok_per_s: f64,
    /// Latency of the successful ones, median, ms.
    pub latency_ms_p50: Option<f64>,
    /// Latency of the successful ones, 99th percentile, ms.
    pub latency_ms_p99: Option<f64>,
}

/// Stats of the operations invoked in `[from_ns, to_ns)`.
fn phase(
    name: &'static str,
    ops: &[gauntlet_harness::OpRecord],
    from_ns: u64,
    to_ns: u64,
) -> PhaseStats {
    let mut p = PhaseStats {
        phase: name,
        ms: to_ns.saturating_sub(from_ns) / 1_000_000,
        ..PhaseStats::default()
    };
    let mut lat: Vec<u64> = Vec::new();
    for o in ops
        .iter()
        .filter(|o| o.invoke_ns >= from_ns && o.invoke_ns < to_ns)
    {
        p.operations += 1;
        match o.outcome {
            Outcome::Ok => {
                p.ok += 1;
                lat.push(o.complete_ns.saturating_sub(o.invoke_ns));
            }
            Outcome::Failed => p.failed += 1,
            Outcome::Unknown => p.unknown += 1,
        }
    }
    lat.sort_unstable();
    let pct = |q: f64| -> Option<f64> {
        let i = ((lat.len() as f64 - 1.0) * q).round() as usize;
        lat.get(i).map(|ns| *ns as f64 / 1e6)
    };
    p.latency_ms_p50 = pct(0.5);
    p.latency_ms_p99 = pct(0.99);
    p.ok_per_s = if to_ns > from_ns {
        p.ok as f64 * 1e9 / (to_ns - from_ns) as f64
    } else {
        0.0
    };
    p
}

/// What one round found.
#[derive(Debug, Clone, Serialize)]
pub struct RoundResult {
    /// The plan.
    pub spec: RoundSpec,
    /// The verdict.
    pub verdict: RoundVerdict,
    /// Broken guarantees.
    pub findings: Vec<Finding>,
    /// Checks that could not finish.
    pub unknown: Vec<String>,
    /// The ledger entries that cover the findings, when the verdict is a known issue.
    pub known_issues: Vec<crate::ledger::KnownIssue>,
    /// The fault as it ran.
    pub fault: Option<FaultRecord>,
    /// Operations in the history the checker judged.
    pub operations: usize,
    /// Recorded operations the model does not cover (left out of the check).
    pub operations_left_out: usize,
    /// Watch responses received on every member.
    pub watch_responses: usize,
    /// Serializable and keys-only reads judged against the watched state.
    pub side_reads_judged: usize,
    /// Such reads that could not be judged (past a gap in the watched events).
    pub side_reads_unjudged: usize,
    /// Writes with unknown outcomes the watched events settled: (took effect, did not).
    pub unknown_writes_settled: (usize, usize),
    /// Availability.
    pub availability: Availability,
    /// Validation time, ms.
    pub validation_ms: u64,
    /// Whole round, ms.
    pub wall_ms: u64,
    /// The round's directory, when written.
    pub dir: Option<PathBuf>,
    /// The command that reruns this round alone.
    pub rerun: String,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs one round; never panics on a misbehaving target (that is a verdict).
pub async fn run_round(spec: RoundSpec, opts: &RoundOptions) -> RoundResult {
    let started = Instant::now();
    let rerun = format!("{} --round {}", opts.rerun, spec.round);
    let mut result = RoundResult {
        spec: spec.clone(),
        verdict: RoundVerdict::Passed,
        findings: Vec::new(),
        unknown: Vec::new(),
        known_issues: Vec::new(),
        fault: None,
        operations: 0,
        operations_left_out: 0,
        watch_responses: 0,
        side_reads_judged: 0,
        side_reads_unjudged: 0,
        unknown_writes_settled: (0, 0),
        availability: Availability::default(),
        validation_ms: 0,
        wall_ms: 0,
        dir: None,
        rerun,
    };
    if let Err(why) = spec.fault.supported(spec.members) {
        result.verdict = RoundVerdict::Skipped(why);
        return result;
    }
    let data = match tempfile::Builder::new().prefix("gauntlet-chaos-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            result.verdict = RoundVerdict::Error(format!("creating the round's data dir: {e}"));
            return result;
        }
    };
    let mut cspec = ClusterSpec::new(opts.target.clone(), spec.members);
    cspec.heartbeat_interval_ms = spec.settings.heartbeat_ms;
    cspec.election_timeout_ms = spec.settings.election_ms;
    cspec.extra_args = spec.settings.extra_args();
    cspec.data_root = Some(data.path().to_path_buf());
    cspec.backend = opts.backend;
    if spec.fault.needs_peer_proxies() && opts.backend == gauntlet_harness::Backend::Process {
        cspec.peer_proxy = Some(match &opts.toxiproxy {
            Some(url) => gauntlet_harness::PeerProxy::Toxiproxy(url.clone()),
            None => gauntlet_harness::PeerProxy::Local,
        });
    }
    if spec.fault.needs_power_fs() {
        if opts.backend != gauntlet_harness::Backend::Process {
            result.verdict = RoundVerdict::Skipped(format!(
                "{} needs the process backend (the power-loss filesystem is mounted on the host)",
                spec.fault
            ));
            return result;
        }
        cspec.power_loss = Some(gauntlet_harness::PowerLoss {
            strict_metadata: spec.fault == crate::fault::FaultKind::PowerLossAllStrict,
            seed: spec.round_seed,
        });
    }
    cspec.ready_timeout = Duration::from_secs(60);
    cspec.gofail = spec.fault.family() == "failpoint";
    // etcd and the reference server take peer TLS (etcd's robustness tests always run
    // the peer proxy under it); an exec: target is not assumed to.
    cspec.peer_tls = matches!(opts.target, Target::Etcd { .. } | Target::Reference);
    let cluster = match Cluster::start(cspec, &opts.cache).await {
        Ok(c) => c,
        Err(e) => {
            result.verdict = RoundVerdict::Error(format!("launching {}: {e}", opts.target));
            return result;
        }
    };
    let outcome = drive(&spec, opts, &cluster, &mut result).await;
    if let Err(e) = outcome {
        result.verdict = e;
    }
    result.wall_ms = millis(started.elapsed());
    let keep = keeps(opts, &result.verdict);
    if keep {
        if let Some(out) = &opts.out {
            let dir = out.join(format!("round-{}", spec.round));
            let _ = copy_cluster_files(&cluster, &dir);
            result.dir = Some(dir);
        }
    }
    drop(cluster);
    result
}

/// Whether a round's directory is written: on request, or when it did not pass
/// (a skipped round has nothing to show).
fn keeps(opts: &RoundOptions, verdict: &RoundVerdict) -> bool {
    opts.keep_all || !matches!(verdict, RoundVerdict::Passed | RoundVerdict::Skipped(_))
}

/// Member logs and data dirs into `<dir>/members/`.
fn copy_cluster_files(cluster: &Cluster, dir: &Path) -> std::io::Result<()> {
    let members = dir.join("members");
    std::fs::create_dir_all(&members)?;
    for m in cluster.members() {
        let _ = std::fs::copy(&m.log, members.join(format!("{}.log", m.name)));
        let _ = copy_dir(&m.data_dir, &members.join(format!("{}.data", m.name)));
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            copy_dir(&p, &to.join(e.file_name()))?;
        } else {
            std::fs::copy(&p, to.join(e.file_name()))?;
        }
    }
    Ok(())
}

async fn drive(
    spec: &RoundSpec,
    opts: &RoundOptions,
    cluster: &Cluster,
    result: &mut RoundResult,
) -> Result<(), RoundVerdict> {
    let mut rng = StdRng::seed_from_u64(spec.round_seed);
    let mutate = opts.mutation.map(|m| (m, MutateOn::Every));
    let session = match Session::start(
        cluster,
        &opts.traffic,
        spec.profile,
        spec.round_seed,
        mutate,
    )
    .await
    {
        Ok(s) => s,
        Err(SessionError::Error(e)) => return Err(RoundVerdict::Error(e)),
        Err(SessionError::NotEmpty(f)) => {
            result.findings.push(f);
            return Err(RoundVerdict::Violation);
        }
    };
    let jitter = Duration::from_millis(rng.gen_range(0..200));
    tokio::time::sleep(opts.before_fault + jitter).await;
    let admin = session.admin();
    let fault_result = fault::run(
        spec.fault,
        FaultCtx {
            cluster,
            client: &admin,
            rng: &mut rng,
            election_ms: spec.settings.election_ms,
            snapshot_count: spec.settings.snapshot_count,
        },
        READY_AFTER_FAULT,
    )
    .await;
    let fault = match fault_result {
        Ok(f) => Some(f),
        Err(FaultError::Unsupported(why)) => {
            session.abandon().await;
            return Err(RoundVerdict::Skipped(why));
        }
        Err(FaultError::NoRecovery(why)) => {
            result.findings.push(Finding {
                check: "recovery".into(),
                guarantee: None,
                detail: why,
            });
            None
        }
        Err(FaultError::Failed(why)) => {
            session.abandon().await;
            return Err(RoundVerdict::Error(format!("fault {}: {why}", spec.fault)));
        }
    };
    tokio::time::sleep(opts.after_fault).await;
    let judged = session.finish(cluster, opts.check_timeout).await?;
    result.findings.extend(judged.findings.iter().cloned());
    result.unknown.extend(judged.unknown.iter().cloned());
    result.operations = judged.operations;
    result.operations_left_out = judged.operations_left_out;
    result.watch_responses = judged.watch_responses;
    result.availability = availability(&judged.ops, fault.as_ref(), judged.stats);
    result.fault = fault;
    let validation = &judged.validation;
    result.validation_ms = validation.validation_ms;
    result.side_reads_judged = validation.side_reads_judged;
    result.side_reads_unjudged = validation.side_reads_unjudged;
    result.unknown_writes_settled = validation.patched;
    let known: Option<Vec<crate::ledger::KnownIssue>> = opts.etcd_release.and_then(|v| {
        result
            .findings
            .iter()
            .map(|f| opts.ledger.lookup(f, Some(spec.fault.name()), v).cloned())
            .collect()
    });
    result.verdict = if !result.findings.is_empty() {
        match known {
            Some(mut k) => {
                k.dedup();
                result.known_issues = k;
                RoundVerdict::KnownIssue
            }
            None => RoundVerdict::Violation,
        }
    } else if !result.unknown.is_empty() {
        RoundVerdict::Unknown
    } else {
        RoundVerdict::Passed
    };
    let keep = keeps(opts, &result.verdict);
    if let (true, Some(out)) = (keep, &opts.out) {
        let dir = out.join(format!("round-{}", spec.round));
        if let Err(e) = crate::report::write_round(
            &dir,
            result,
            &validation.judged,
            &judged.watches,
            &judged.side_reads,
            validation,
        ) {
            result
                .unknown
                .push(format!("writing {}: {e}", dir.display()));
        }
    }
    Ok(())
}

/// Which members' answers a self-test mutates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutateOn {
    /// Every member's.
    Every,
    /// Only this member's (the others are reached directly).
    One(usize),
}

/// Why a [`Session`] did not start.
#[derive(Debug)]
pub enum SessionError {
    /// Something needed could not be set up.
    Error(String),
    /// The cluster was not empty at revision 1 (the model's starting point).
    NotEmpty(Finding),
}

/// Recorded traffic with a watcher on every member, on a freshly launched cluster, from
/// start to judgement: what a chaos round runs its fault under, and a skew scenario its
/// version changes. [`Session::finish`] requires a final write, reads everything once
/// more, compares HashKV on every member and validates the whole history and every
/// watch stream.
pub struct Session {
    base: Client,
    recorder: Arc<MemoryRecorder>,
    watchers: Watchers,
    traffic: Traffic,
    /// The self-test's proxies (kept alive until the end).
    proxies: Vec<Proxy>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("proxies", &self.proxies.len())
            .finish_non_exhaustive()
    }
}

/// What [`Session::finish`] observed and concluded.
#[allow(missing_debug_implementations)] // the validation's judged history is large
pub struct Judged {
    /// Broken guarantees (final write, HashKV, validation).
    pub findings: Vec<Finding>,
    /// Checks that could not finish.
    pub unknown: Vec<String>,
    /// Every recorded operation.
    pub ops: Vec<gauntlet_harness::OpRecord>,
    /// The traffic's request counts.
    pub stats: crate::traffic::ClientStats,
    /// Operations in the checked history, and those the model does not cover.
    pub operations: usize,
    /// Recorded operations left out of the check.
    pub operations_left_out: usize,
    /// Watch responses received on every member.
    pub watch_responses: usize,
    /// Every member's watch streams (and the traffic's own watches).
    pub watches: Vec<MemberWatch>,
    /// Serializable and keys-only reads judged against the watched state.
    pub side_reads: Vec<crate::convert::SideRead>,
    /// The validation itself.
    pub validation: crate::validate::Validation,
    /// The highest revision an acknowledged operation saw.
    pub max_revision: i64,
}

impl Session {
    /// Connects to every member (through a mutating proxy on the members `mutate` names,
    /// for self-tests), checks the cluster is empty at revision 1, and starts the
    /// watchers and the traffic of `profile`, seeded with `seed`.
    pub async fn start(
        cluster: &Cluster,
        traffic: &TrafficConfig,
        profile: crate::scenario::TrafficProfile,
        seed: u64,
        mutate: Option<(Mutation, MutateOn)>,
    ) -> Result<Session, SessionError> {
        let err =
            |what: &str, e: &dyn std::fmt::Display| SessionError::Error(format!("{what}: {e}"));
        let mut proxies = Vec::new();
        let mut config = cluster.client_config(cluster.endpoints());
        if let Some((m, on)) = mutate {
            config.endpoints.clear();
            for (i, ep) in cluster.endpoints().into_iter().enumerate() {
                if on == MutateOn::One(i) || on == MutateOn::Every {
                    let p = Proxy::start(&ep, Some(m))
                        .await
                        .map_err(|e| err("starting the self-test proxy", &e))?;
                    config.endpoints.push(p.endpoint());
                    proxies.push(p);
                } else {
                    config.endpoints.push(ep);
                }
            }
        }
        config.command_timeout = traffic.request_timeout;
        let base = Client::connect(config)
            .await
            .map_err(|e| err("connecting", &e))?;
        // The model assumes an empty store at revision 1.
        let first = base
            .range(crate::traffic::full_list())
            .await
            .map_err(|e| err("reading the empty cluster", &e))?;
        let rev = first.header.map_or(0, |h| h.revision);
        if first.count != 0 || !first.kvs.is_empty() || rev != 1 {
            // We launched it with empty data dirs: etcd starts empty at revision 1.
            return Err(SessionError::NotEmpty(Finding {
                check: "empty-at-start".into(),
                guarantee: None,
                detail: format!(
                    "a freshly launched cluster answered a full range with count {} ({} keys) at revision {rev}; an empty store is at revision 1",
                    first.count,
                    first.kvs.len()
                ),
            }));
        }
        let recorder = Arc::new(MemoryRecorder::default());
        let watchers = Watchers::start(&base).map_err(|e| err("starting watchers", &e))?;
        let traffic = Traffic::start(&base, recorder.clone(), traffic, profile, seed)
            .map_err(|e| err("starting traffic", &e))?;
        Ok(Session {
            base,
            recorder,
            watchers,
            traffic,
            proxies,
        })
    }

    /// A client over every member whose operations join the judged history (what
    /// faults and scenario steps write through).
    pub fn admin(&self) -> Client {
        self.base.with_recorder(self.recorder.clone())
    }

    /// The unrecorded client over every member (pinned clients: `base().pinned(i)`).
    pub fn base(&self) -> &Client {
        &self.base
    }

    /// Stops everything without judging (a run that could not go on).
    pub async fn abandon(self) {
        let _ = self.traffic.stop().await;
        let _ = self.watchers.finish(0, Duration::from_millis(10)).await;
    }

    /// Stops the traffic, requires a final write within [`FINAL_WRITE_WITHIN`], reads
    /// everything once more, lets the watchers reach the last revision, compares HashKV
    /// on every member and validates. An error only when validation itself could not run.
    pub async fn finish(
        self,
        cluster: &Cluster,
        check_timeout: Duration,
    ) -> Result<Judged, RoundVerdict> {
        let Session {
            base,
            recorder,
            watchers,
            traffic,
            proxies,
        } = self;
        let mut findings = Vec::new();
        let mut unknown = Vec::new();
        let (stats, client_watches) = traffic.stop().await;
        // A final write must succeed: the cluster recovered.
        let final_client = base.with_recorder(recorder.clone());
        let deadline = Instant::now() + FINAL_WRITE_WITHIN;
        let mut final_ok = false;
        let mut last_err = String::new();
        let mut attempt = 0u32;
        while Instant::now() < deadline {
            attempt += 1;
            match final_client
                .put_request(pb::PutRequest {
                    key: format!("{PREFIX}final").into_bytes(),
                    value: format!("final-{attempt}").into_bytes(),
                    ..Default::default()
                })
                .await
            {
                Ok(_) => {
                    final_ok = true;
                    break;
                }
                Err(e) => {
                    last_err = e.to_string();
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        if !final_ok {
            findings.push(Finding {
                check: "final-write".into(),
                guarantee: None,
                detail: format!(
                    "no write succeeded within {} s at the end ({attempt} attempts; last: {last_err})",
                    FINAL_WRITE_WITHIN.as_secs()
                ),
            });
        }
        // A final linearizable read of everything.
        let _ = final_client.range(crate::traffic::full_list()).await;
        let ops = recorder.operations();
        let max_rev = ops
            .iter()
            .filter(|o| o.outcome == Outcome::Ok)
            .filter_map(|o| o.ret.as_ref().and_then(convert::response))
            .filter_map(|r| r.revision())
            .max()
            .unwrap_or(1);
        let mut watches = watchers.finish(max_rev, WATCH_CATCH_UP).await;
        for w in &watches {
            if w.reached < max_rev {
                unknown.push(format!(
                    "watch: member m{} delivered up to revision {} of {max_rev} within {} s of the end of traffic",
                    w.member,
                    w.reached,
                    WATCH_CATCH_UP.as_secs()
                ));
            }
        }
        if !client_watches.is_empty() {
            // The traffic's own watches (list-and-watch) are judged with the members'.
            watches.push(MemberWatch {
                member: usize::MAX,
                reached: max_rev,
                segments: client_watches,
            });
        }
        let (hash_findings, hash_unknown) = hash_kv(&base, cluster.size(), max_rev).await;
        findings.extend(hash_findings);
        unknown.extend(hash_unknown);
        drop(proxies);
        let (history, left_out) = convert::history(&ops);
        let side_reads = convert::side_reads(&ops);
        let watch_responses = watches
            .iter()
            .flat_map(|w| &w.segments)
            .map(|s| s.responses.len())
            .sum();
        let h2 = history.clone();
        let w2 = watches.clone();
        let r2 = side_reads.clone();
        let validation =
            tokio::task::spawn_blocking(move || validate(&h2, &w2, &r2, check_timeout))
                .await
                .map_err(|e| RoundVerdict::Error(format!("validation: {e}")))?;
        findings.extend(validation.findings.iter().cloned());
        unknown.extend(validation.unknown.iter().cloned());
        Ok(Judged {
            findings,
            unknown,
            ops,
            stats,
            operations: history.len(),
            operations_left_out: left_out,
            watch_responses,
            watches,
            side_reads,
            validation,
            max_revision: max_rev,
        })
    }
}

/// HashKV at `revision` on every member must agree (members may lag: each is asked
/// until it has the revision, within 10 s): the findings when they do not, and the
/// members that did not answer.
async fn hash_kv(base: &Client, members: usize, revision: i64) -> (Vec<Finding>, Vec<String>) {
    let mut findings = Vec::new();
    let mut unknown = Vec::new();
    let asks = (0..members).map(|i| async move {
        let c = base.pinned(i).ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match c.hash_kv(pb::HashKvRequest { revision }).await {
                Ok(h) => return Some((i, Ok((h.hash, h.compact_revision)))),
                Err(e) if e.code() == Some(tonic::Code::Unimplemented) => return None,
                Err(e) => {
                    if Instant::now() >= deadline {
                        return Some((i, Err(e.to_string())));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    let answers: Vec<_> = futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut hashes = Vec::new();
    for (i, a) in answers {
        match a {
            Ok((h, c)) => hashes.push((i, h, c)),
            Err(e) => unknown.push(format!(
                "hashkv: m{i} did not answer HashKV at revision {revision}: {e}"
            )),
        }
    }
    if let Some((_, h0, c0)) = hashes.first().copied() {
        if hashes.iter().any(|(_, h, c)| *h != h0 || *c != c0) {
            findings.push(Finding {
                check: "hashkv".into(),
                guarantee: None,
                detail: format!(
                    "members disagree at revision {revision}: {}",
                    hashes
                        .iter()
                        .map(|(i, h, c)| format!("m{i} hash {h:08x} compact {c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    (findings, unknown)
}

fn availability(
    ops: &[gauntlet_harness::OpRecord],
    fault: Option<&FaultRecord>,
    stats: crate::traffic::ClientStats,
) -> Availability {
    let mut a = Availability {
        requests: stats.requests,
        failed: stats.failed,
        ..Availability::default()
    };
    let mut writes: Vec<u64> = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok && o.call.may_mutate())
        .map(|o| o.complete_ns)
        .collect();
    writes.sort_unstable();
    a.longest_write_gap_ms = writes
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1_000_000)
        .max()
        .unwrap_or(0);
    let first = ops.iter().map(|o| o.invoke_ns).min().unwrap_or(0);
    let last = ops.iter().map(|o| o.invoke_ns + 1).max().unwrap_or(0);
    if let Some(f) = fault {
        a.phases = vec![
            phase("before", ops, first, f.injected_ns),
            phase("during", ops, f.injected_ns, f.healed_ns + 1),
            phase("after", ops, f.healed_ns + 1, last.max(f.healed_ns + 1)),
        ];
        for o in ops {
            if o.invoke_ns >= f.injected_ns && o.invoke_ns <= f.healed_ns {
                a.during_fault += 1;
                if o.outcome != Outcome::Ok {
                    a.during_fault_failed += 1;
                }
            }
        }
        a.first_write_after_heal_ms = ops
            .iter()
            .filter(|o| {
                o.outcome == Outcome::Ok && o.call.may_mutate() && o.invoke_ns >= f.healed_ns
            })
            .map(|o| (o.complete_ns - f.healed_ns) / 1_000_000)
            .min();
    }
    a
}
