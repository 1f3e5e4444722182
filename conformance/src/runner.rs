//! Runs a catalogue against a target: launched by us, or external endpoints.
//!
//! Shared cases run concurrently (bounded by [`RunOptions::concurrency`]) on one
//! cluster, each under its own key prefix. Cases that need a cluster of their own
//! get a fresh one per case when the runner launched the target (at most
//! [`FRESH_PARALLEL`] at a time); against external endpoints they are reported as
//! not run, with the reason.
//!
//! Which behaviour the target is held to comes from [`gauntlet_harness::profile::hold`]:
//! `--profile` wins; else a reported etcd 3.4.x/3.5.x selects its profile; anything
//! else (a product's own version) is held to the newest profile, with a notice.
//!
//! A [`gauntlet_harness::liveness::Monitor`] watches every member while cases run.
//! A member that stops answering is one [`Crash`] finding (see [`crate::crash`]),
//! never a pile of timeouts; see [`run`] for what happens next.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gauntlet_api::etcdserverpb as pb;
use gauntlet_harness::liveness::{Monitor, MonitorConfig};
use gauntlet_harness::profile::{hold, EtcdProfile, Holding};
use gauntlet_harness::{
    Cache, Client, ClientConfig, Cluster, ClusterSpec, Mutation, Proxy, Target,
};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::case::{Case, Ctx, Failure, Needs, Service, Version};
use crate::crash::{Crash, InFlight, Tracker, Trigger};
use crate::ledger::{KnownIssue, Ledger};

/// A case without a verdict after this long fails.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(40);
/// How long a fresh cluster's member may take to exit after its connection broke.
const CRASH_SETTLE: Duration = Duration::from_secs(3);
/// What a failure's text says when the connection was lost rather than answered.
const LOST_CONNECTION: &[&str] = &[
    "Unavailable",
    "transport",
    "Timeout expired",
    "connection",
    "broken pipe",
    "reset",
];

/// Fresh clusters running at the same time.
pub const FRESH_PARALLEL: usize = 3;
/// Distinguishes runs started in the same nanosecond (their key prefixes).
static NEXT_RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Default number of shared cases in flight.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// What to run against.
#[derive(Debug, Clone)]
pub enum Under {
    /// The runner launches `members` members of `target` (and fresh clusters for the
    /// cases that need them).
    Launch {
        /// The server.
        target: Target,
        /// Members of the shared cluster.
        members: usize,
        /// Where etcd binaries are cached.
        cache: Cache,
    },
    /// A cluster someone else runs.
    External(ClientConfig),
}

/// Which behaviour the run holds the target to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Profile {
    /// etcd 3.4's documented behaviour (cases for 3.5 only are not run).
    #[serde(rename = "etcd-3.4")]
    Etcd34,
    /// etcd 3.5's documented behaviour.
    #[serde(rename = "etcd-3.5")]
    Etcd35,
    /// Exactly what the Kubernetes API server relies on, at the server's version.
    #[serde(rename = "kubernetes")]
    Kubernetes,
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Profile, String> {
        match s {
            "etcd-3.4" => Ok(Profile::Etcd34),
            "etcd-3.5" => Ok(Profile::Etcd35),
            "kubernetes" => Ok(Profile::Kubernetes),
            _ => Err(format!(
                "unknown profile `{s}`: use etcd-3.4, etcd-3.5 or kubernetes"
            )),
        }
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Shared cases in flight at once (at least 1).
    pub concurrency: usize,
    /// Only cases whose id contains this.
    pub filter: Option<String>,
    /// The profile; `None` holds the target to its reported version when that is an
    /// etcd release gauntlet has a profile for, else to the newest profile.
    pub profile: Option<Profile>,
    /// Whether the known-issue ledger may excuse failures (real etcd, or an unknown
    /// external server; never our reference server).
    pub use_ledger: bool,
    /// Put a response-mutating proxy ([`gauntlet_harness::Proxy`]) in front of every
    /// endpoint of the shared cluster: the suite's self-test. Fresh clusters are not
    /// proxied.
    pub mutation: Option<Mutation>,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            concurrency: DEFAULT_CONCURRENCY,
            filter: None,
            profile: None,
            use_ledger: true,
            mutation: None,
        }
    }
}

/// A case's verdict.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The guarantee held.
    Passed,
    /// It did not, and no ledger entry covers it.
    Failed {
        /// The evidence.
        failure: Failure,
    },
    /// It did not, and the ledger says this is a known etcd issue at this version.
    KnownIssue {
        /// The evidence.
        failure: Failure,
        /// The ledger entry.
        issue: KnownIssue,
    },
    /// Not run, and why.
    NotRun {
        /// The reason.
        reason: String,
        /// Which kind of reason.
        cause: NotRunCause,
    },
    /// Its requests killed the target: run alone on a restarted cluster (or on a
    /// fresh cluster of its own) a member died again.
    KilledTarget {
        /// Index of the [`Crash`] in [`Report::crashes`].
        crash: usize,
        /// What the case saw.
        failure: Failure,
    },
    /// Not judged: the target was down (see the crash).
    Unavailable {
        /// Index of the [`Crash`] in [`Report::crashes`].
        crash: usize,
        /// Why.
        reason: String,
    },
}

/// Why a case was not run. All are by design: a run in which cases were not run
/// for any other reason is incomplete (see [`Report::verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotRunCause {
    /// The profile's versions exclude it.
    Profile,
    /// It needs a cluster gauntlet launches (the run is against `--endpoints`).
    Launcher,
    /// It speaks HTTP/1.1 (the JSON gateway), and the self-test's mutating proxy
    /// (`--mutate`) relays gRPC only.
    Proxy,
}

/// One case's result.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Case id.
    pub id: String,
    /// Its service.
    pub service: Service,
    /// The guarantee.
    pub guarantee: String,
    /// Its documentation reference.
    pub doc: String,
    /// The verdict.
    pub outcome: Outcome,
    /// Time the check took.
    pub duration_ms: u64,
}

/// Counts for one service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Passed.
    pub passed: usize,
    /// New failures.
    pub failed: usize,
    /// Failures covered by the ledger.
    pub known_issue: usize,
    /// Not run.
    pub not_run: usize,
    /// Killed the target.
    pub killed_target: usize,
    /// Not judged: the target was down.
    pub unavailable: usize,
}

impl Counts {
    /// Every case counted.
    pub fn total(&self) -> usize {
        self.passed
            + self.failed
            + self.known_issue
            + self.not_run
            + self.killed_target
            + self.unavailable
    }

    /// Cases that got a verdict (passed, failed, known issue, killed the target).
    pub fn ran(&self) -> usize {
        self.passed + self.failed + self.known_issue + self.killed_target
    }

    fn add(&mut self, o: &Outcome) {
        match o {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed { .. } => self.failed += 1,
            Outcome::KnownIssue { .. } => self.known_issue += 1,
            Outcome::NotRun { .. } => self.not_run += 1,
            Outcome::KilledTarget { .. } => self.killed_target += 1,
            Outcome::Unavailable { .. } => self.unavailable += 1,
        }
    }
}

/// What a run amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every case that applies ran, and none failed anew (exit 0).
    Passed,
    /// New failures or crashes (exit 1).
    Failed {
        /// New failures (cases that killed the target included).
        new_failures: usize,
        /// Crashes not covered by the ledger.
        crashes: usize,
    },
    /// Nothing failed, but the run did not test what it should have (exit 2): no
    /// case ran, or cases were skipped for a reason other than the profile or the
    /// launcher.
    Incomplete {
        /// Why, in one line.
        reason: String,
    },
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What ran (`etcd@3.5.1 x3`, or the endpoints).
    pub target: String,
    /// Version the server reported (`Status.version`, verbatim).
    pub server_version: String,
    /// The profile the target was held to, and why.
    pub holding: Holding,
    /// Profile given by the user, if any.
    pub profile: Option<Profile>,
    /// Results in catalogue order.
    pub results: Vec<CaseResult>,
    /// Members that stopped answering during the run, in order: the findings that
    /// come first.
    pub crashes: Vec<Crash>,
    /// Restarts of the launched target after crashes.
    pub restarts: usize,
    /// Wall time of the run, cluster launch included.
    pub wall_ms: u64,
}

impl Report {
    /// Counts per service, in [`Service::ALL`] order (services with no case omitted).
    pub fn per_service(&self) -> Vec<(Service, Counts)> {
        Service::ALL
            .iter()
            .filter_map(|s| {
                let mut c = Counts::default();
                for r in self.results.iter().filter(|r| r.service == *s) {
                    c.add(&r.outcome);
                }
                (c.total() > 0).then_some((*s, c))
            })
            .collect()
    }

    /// Totals over all services.
    pub fn totals(&self) -> Counts {
        self.per_service()
            .iter()
            .fold(Counts::default(), |mut a, (_, c)| {
                a.passed += c.passed;
                a.failed += c.failed;
                a.known_issue += c.known_issue;
                a.not_run += c.not_run;
                a.killed_target += c.killed_target;
                a.unavailable += c.unavailable;
                a
            })
    }

    /// New failures (what makes the run fail), cases that killed the target included.
    pub fn new_failures(&self) -> usize {
        let t = self.totals();
        t.failed + t.killed_target
    }

    /// Crashes the known-issue ledger does not cover.
    pub fn new_crashes(&self) -> usize {
        self.crashes
            .iter()
            .filter(|c| c.known_issue.is_none())
            .count()
    }

    /// The run's verdict; see [`Verdict`].
    pub fn verdict(&self) -> Verdict {
        let t = self.totals();
        if self.new_failures() > 0 || self.new_crashes() > 0 {
            return Verdict::Failed {
                new_failures: self.new_failures(),
                crashes: self.new_crashes(),
            };
        }
        if t.ran() == 0 {
            let mut reasons: Vec<String> = self
                .results
                .iter()
                .filter_map(|r| match &r.outcome {
                    Outcome::NotRun { reason, .. } | Outcome::Unavailable { reason, .. } => {
                        Some(reason.clone())
                    }
                    _ => None,
                })
                .collect();
            reasons.sort();
            reasons.dedup();
            let why = match reasons.as_slice() {
                [] => "no case was selected".to_string(),
                [one] => format!("every case: {one}"),
                [first, ..] => format!("{first} (and {} other reasons)", reasons.len() - 1),
            };
            return Verdict::Incomplete {
                reason: format!("no case ran ({} selected): {why}", self.results.len()),
            };
        }
        if t.unavailable > 0 {
            return Verdict::Incomplete {
                reason: format!(
                    "{} case(s) could not run because the target was unavailable",
                    t.unavailable
                ),
            };
        }
        Verdict::Passed
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Launching the target failed.
    #[error("launching {target}: {source}")]
    Launch {
        /// The target.
        target: String,
        /// Why.
        #[source]
        source: gauntlet_harness::HarnessError,
    },
    /// The endpoints could not be reached or did not answer Status.
    #[error("connecting: {0}")]
    Connect(#[from] gauntlet_harness::ClientError),
    /// The mutating proxy could not start.
    #[error("starting the mutating proxy: {0}")]
    Proxy(gauntlet_harness::HarnessError),
}

/// The cases a run selects: profile and filter applied, in catalogue order.
pub fn select<'a>(catalogue: &'a [Case], opts: &RunOptions) -> Vec<&'a Case> {
    catalogue
        .iter()
        .filter(|c| opts.filter.as_deref().is_none_or(|f| c.id.contains(f)))
        .filter(|c| opts.profile != Some(Profile::Kubernetes) || c.kubernetes)
        .collect()
}

/// What the run reports as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// The profile the target is held to, decided from its reported version (print
    /// [`Holding::notice`] when there is one).
    Holding(&'a Holding),
    /// A case finished (or will not run).
    Case(&'a CaseResult),
    /// A member stopped answering; sent once the runner knows what the suspects did
    /// when run alone.
    Crash(&'a Crash),
    /// Something the operator should see now (a restart, an isolation run).
    Note(&'a str),
}

/// Facts fixed for the whole run.
#[derive(Debug)]
struct Shared {
    size: usize,
    /// The shared cluster is reached through the self-test's gRPC proxy.
    proxied: bool,
    version: Version,
    launch: Option<(Target, Cache)>,
    run_id: String,
    started: Instant,
    crashes: Mutex<Vec<Crash>>,
}

impl Shared {
    fn ms_since_start(&self, ns: u64) -> u64 {
        let now_ns = gauntlet_harness::now_ns();
        let ago = Duration::from_nanos(now_ns.saturating_sub(ns));
        millis(self.started.elapsed().saturating_sub(ago))
    }

    fn push_crash(&self, c: Crash) -> usize {
        let mut v = self.crashes.lock().unwrap_or_else(PoisonError::into_inner);
        v.push(c);
        v.len() - 1
    }

    fn crash(&self, idx: usize) -> Crash {
        self.crashes.lock().unwrap_or_else(PoisonError::into_inner)[idx].clone()
    }

    fn update_crash(&self, idx: usize, f: impl FnOnce(&mut Crash)) {
        if let Some(c) = self
            .crashes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(idx)
        {
            f(c);
        }
    }
}

/// One incarnation of the shared cluster (a restart after a crash makes a new one).
#[derive(Debug)]
struct Env {
    cluster: Option<Arc<Cluster>>,
    _proxies: Vec<Proxy>,
    client: Client,
    members: Vec<Client>,
    config: ClientConfig,
    monitor: Monitor,
}

impl Drop for Env {
    /// Kills the members now: the monitor's task holds the cluster too, and would
    /// only release it when the runtime next polls it.
    fn drop(&mut self) {
        if let Some(c) = &self.cluster {
            c.shutdown();
        }
    }
}

async fn open_env(under: &Under, opts: &RunOptions) -> Result<Env, RunError> {
    let (cluster, config) = match under {
        Under::Launch {
            target,
            members,
            cache,
        } => {
            let cluster = Cluster::start(ClusterSpec::new(target.clone(), *members), cache)
                .await
                .map_err(|source| RunError::Launch {
                    target: target.to_string(),
                    source,
                })?;
            let config = cluster.client_config(cluster.endpoints());
            (Some(Arc::new(cluster)), config)
        }
        Under::External(config) => (None, config.clone()),
    };
    // The monitor watches the servers themselves, not the self-test's proxies.
    let monitor = Monitor::start(&config, cluster.clone(), MonitorConfig::default())?;
    let mut proxies = Vec::new();
    let config = match opts.mutation {
        None => config,
        Some(m) => {
            let mut cfg = config.clone();
            cfg.endpoints.clear();
            for ep in &config.endpoints {
                let p = Proxy::start(ep, Some(m)).await.map_err(RunError::Proxy)?;
                cfg.endpoints.push(p.endpoint());
                proxies.push(p);
            }
            cfg
        }
    };
    let client = Client::connect(config.clone()).await?;
    let members = (0..client.endpoints().len())
        .map(|i| client.pinned(i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Env {
        cluster,
        _proxies: proxies,
        client,
        members,
        config,
        monitor,
    })
}

enum Msg {
    Case(usize, CaseResult),
    Crash(usize),
    Note(String),
}

/// Runs `catalogue` (after [`select`]) against `under`; `progress` sees the profile
/// decision, each result as it completes, every crash and notes.
///
/// A member that stops answering mid-run is reported once as a [`Crash`]; cases that
/// could not run because of it are [`Outcome::Unavailable`]. When the runner launched
/// the target it restarts the cluster, runs each case that was in flight alone (the
/// one that kills the target again is [`Outcome::KilledTarget`]) and goes on with the
/// rest, up to [`MAX_RESTARTS`] restarts.
pub async fn run(
    catalogue: &[Case],
    under: &Under,
    opts: &RunOptions,
    ledger: &Ledger,
    mut progress: impl FnMut(Event<'_>),
) -> Result<Report, RunError> {
    let started = Instant::now();
    let env = open_env(under, opts).await?;
    let status = env.members[0].status(pb::StatusRequest {}).await?;
    let forced = match opts.profile {
        Some(Profile::Etcd34) => Some(EtcdProfile::Etcd34),
        Some(Profile::Etcd35) => Some(EtcdProfile::Etcd35),
        Some(Profile::Kubernetes) | None => None,
    };
    let holding = hold(&status.version, forced);
    progress(Event::Holding(&holding));
    let label = match under {
        Under::Launch {
            target, members, ..
        } => format!("{target} x{members}"),
        Under::External(config) => config.endpoints.join(","),
    };
    let shared = Arc::new(Shared {
        size: env.members.len(),
        proxied: opts.mutation.is_some(),
        version: holding.judged_at,
        launch: match under {
            Under::Launch { target, cache, .. } => Some((target.clone(), cache.clone())),
            Under::External(_) => None,
        },
        run_id: format!(
            "{:x}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
            NEXT_RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ),
        started,
        crashes: Mutex::new(Vec::new()),
    });
    let selected = select(catalogue, opts);
    type Numbered = Vec<(usize, Case)>;
    let (fresh, pooled): (Numbered, Numbered) = selected
        .iter()
        .map(|c| (*c).clone())
        .enumerate()
        .partition(|(_, c)| needs_fresh(c.needs, shared.size));
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let pooled_run = run_pooled(pooled.into(), env, shared.clone(), under, opts, tx.clone());
    let fresh_run = run_fresh(fresh, shared.clone(), opts.concurrency, tx);
    let mut results: Vec<Option<CaseResult>> = vec![None; selected.len()];
    let consume = async {
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Case(i, mut r) => {
                    excuse(&mut r, opts, ledger, &holding, &shared);
                    progress(Event::Case(&r));
                    results[i] = Some(r);
                }
                Msg::Crash(idx) => progress(Event::Crash(&shared.crash(idx))),
                Msg::Note(n) => progress(Event::Note(&n)),
            }
        }
    };
    let ((restarts, ()), ()) = tokio::join!(futures::future::join(pooled_run, fresh_run), consume);
    let crashes = shared
        .crashes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(Report {
        target: label,
        server_version: holding.reported.clone(),
        holding,
        profile: opts.profile,
        results: results.into_iter().flatten().collect(),
        crashes,
        restarts,
        wall_ms: millis(started.elapsed()),
    })
}

/// Applies the known-issue ledger: only to real etcd releases (the reported version
/// is one) and only when the run allows it.
fn excuse(
    r: &mut CaseResult,
    opts: &RunOptions,
    ledger: &Ledger,
    holding: &Holding,
    shared: &Shared,
) {
    if !opts.use_ledger {
        return;
    }
    let Some(release) = holding.etcd_release else {
        return;
    };
    let Some(issue) = ledger.lookup(&r.id, release) else {
        return;
    };
    match &r.outcome {
        Outcome::Failed { failure } => {
            r.outcome = Outcome::KnownIssue {
                failure: failure.clone(),
                issue: issue.clone(),
            };
        }
        Outcome::KilledTarget { crash, failure } => {
            shared.update_crash(*crash, |c| c.known_issue = Some(issue.clone()));
            r.outcome = Outcome::KnownIssue {
                failure: failure.clone(),
                issue: issue.clone(),
            };
        }
        _ => {}
    }
}

fn needs_fresh(needs: Needs, size: usize) -> bool {
    match needs {
        Needs::Shared => false,
        Needs::Members(n) => n > size,
        Needs::Fresh(_) => true,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Cases that need a cluster of their own, [`FRESH_PARALLEL`] at a time.
async fn run_fresh(
    fresh: Vec<(usize, Case)>,
    shared: Arc<Shared>,
    concurrency: usize,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let mut stream = futures::stream::iter(fresh.into_iter().map(|(i, c)| {
        let shared = shared.clone();
        async move { (i, run_fresh_case(c, shared).await) }
    }))
    .buffer_unordered(FRESH_PARALLEL.min(concurrency.max(1)));
    while let Some((i, r)) = stream.next().await {
        if let Outcome::KilledTarget { crash, .. } = &r.outcome {
            let _ = tx.send(Msg::Crash(*crash));
        }
        let _ = tx.send(Msg::Case(i, r));
    }
}

/// A shared case running, as the pooled loop tracks it.
struct Running {
    index: usize,
    case: Case,
    started_ns: u64,
    tracker: Arc<Tracker>,
}

/// A failed result that came while some member was not answering: it is counted
/// only once every member has answered again, and is a crash suspect otherwise.
struct Held {
    running: Running,
    result: CaseResult,
    finished_ns: u64,
}

/// Most restarts of a launched target after crashes (isolation included); after
/// that the remaining cases are reported unavailable.
pub const MAX_RESTARTS: usize = 6;
/// How often held results are looked at again.
const HELD_RECHECK: Duration = Duration::from_millis(500);

/// The shared cases on one cluster, `concurrency` at a time, with crash handling
/// (see [`run`]). Returns the number of restarts.
async fn run_pooled(
    mut queue: VecDeque<(usize, Case)>,
    env: Env,
    shared: Arc<Shared>,
    under: &Under,
    opts: &RunOptions,
    tx: mpsc::UnboundedSender<Msg>,
) -> usize {
    let concurrency = opts.concurrency.max(1);
    let mut env = env;
    let mut restarts = 0usize;
    loop {
        let mut set: JoinSet<CaseResult> = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, Running> = HashMap::new();
        let mut held: Vec<Held> = Vec::new();
        let death = loop {
            while set.len() < concurrency {
                let Some((index, case)) = queue.pop_front() else {
                    break;
                };
                let tracker = Arc::new(Tracker::default());
                let started_ns = gauntlet_harness::now_ns();
                let id = set
                    .spawn(run_shared_case(
                        case.clone(),
                        shared.clone(),
                        tracked_ctx(&env, &shared, &case, &tracker),
                    ))
                    .id();
                running.insert(
                    id,
                    Running {
                        index,
                        case,
                        started_ns,
                        tracker,
                    },
                );
            }
            if set.is_empty() && held.is_empty() {
                break None;
            }
            tokio::select! {
                biased;
                d = env.monitor.dead() => break Some(d),
                joined = set.join_next_with_id(), if !set.is_empty() => {
                    let (id, result) = match joined {
                        Some(Ok((id, r))) => (id, r),
                        Some(Err(e)) => {
                            // run_shared_case catches panics itself; a join error is
                            // an abort, which only the crash path does.
                            let Some(r) = running.remove(&e.id()) else { continue };
                            let result = verdict_of(&r.case, Outcome::Failed { failure: Failure {
                                request: "(the whole case)".into(),
                                expected: "a verdict".into(),
                                actual: format!("the case's task failed: {e}"),
                            }}, 0);
                            (e.id(), result)
                        }
                        None => continue,
                    };
                    let Some(r) = running.remove(&id) else { continue };
                    if !matches!(result.outcome, Outcome::Failed { .. }) {
                        let _ = tx.send(Msg::Case(r.index, result));
                        continue;
                    }
                    // A failure counts only if the target is alive: probe now.
                    let finished_ns = gauntlet_harness::now_ns();
                    let death = env.monitor.probe_now().await;
                    if death.is_none() && env.monitor.all_answered_since(finished_ns) {
                        let _ = tx.send(Msg::Case(r.index, result));
                    } else {
                        held.push(Held { running: r, result, finished_ns });
                    }
                }
                () = tokio::time::sleep(HELD_RECHECK), if !held.is_empty() => {
                    let (ready, wait): (Vec<Held>, Vec<Held>) = held
                        .into_iter()
                        .partition(|h| env.monitor.all_answered_since(h.finished_ns));
                    held = wait;
                    for h in ready {
                        let _ = tx.send(Msg::Case(h.running.index, h.result));
                    }
                }
            }
        };
        let Some(death) = death else {
            return restarts;
        };
        set.abort_all();
        while set.join_next().await.is_some() {}
        // The suspects: what was running, and failures that came while a member was
        // silent; those that sent to the dead member first.
        let mut suspects: Vec<Running> = running.into_values().collect();
        suspects.extend(held.into_iter().map(|h| h.running));
        suspects.sort_by_key(|r| r.index);
        let in_flight: Vec<InFlight> = suspects
            .iter()
            .map(|r| InFlight {
                id: r.case.id.clone(),
                running_ms: millis(Duration::from_nanos(
                    death.detected_ns.saturating_sub(r.started_ns),
                )),
                requests: r.tracker.requests(&death.endpoint),
            })
            .collect();
        let launched = shared.launch.is_some();
        let crash = shared.push_crash(Crash {
            member: death.name.clone(),
            endpoint: death.endpoint.clone(),
            at_ms: shared.ms_since_start(death.detected_ns),
            last_answered_ms: death.last_ok_ns.map(|ns| shared.ms_since_start(ns)),
            how: death.how.clone(),
            in_flight,
            log_tail: death.log_tail.clone(),
            trigger: Trigger::NotTried,
            restarted: false,
            known_issue: None,
        });
        let headline = shared.crash(crash).headline();
        let unavailable = |why: &str| Outcome::Unavailable {
            crash,
            reason: format!("target unavailable: {why}"),
        };
        if !launched {
            let _ = tx.send(Msg::Note(format!(
                "{headline}; the target is external, so the {} remaining case(s) are reported as target unavailable",
                suspects.len() + queue.len()
            )));
            let _ = tx.send(Msg::Crash(crash));
            for r in suspects {
                let o = unavailable(&format!(
                    "in flight when {} stopped answering (a possible trigger)",
                    death.name
                ));
                let _ = tx.send(Msg::Case(r.index, verdict_of(&r.case, o, 0)));
            }
            for (i, c) in queue.drain(..) {
                let o = unavailable(&format!("{} stopped answering before it ran", death.name));
                let _ = tx.send(Msg::Case(i, verdict_of(&c, o, 0)));
            }
            return restarts;
        }
        // Launched: restart, run each suspect alone, go on.
        let _ = tx.send(Msg::Note(format!(
            "{headline}; restarting the cluster and running the {} case(s) in flight alone",
            suspects.len()
        )));
        let mut confirmed = Vec::new();
        let mut pending: VecDeque<Running> = suspects.into();
        let mut gave_up = None;
        loop {
            if restarts >= MAX_RESTARTS {
                gave_up = Some(format!("gave up after {MAX_RESTARTS} restarts"));
                break;
            }
            drop(env);
            restarts += 1;
            env = match open_env(under, opts).await {
                Ok(e) => e,
                Err(e) => {
                    gave_up = Some(format!("restarting the cluster failed: {e}"));
                    // Nothing to run on: report everything left and stop.
                    let reason = gave_up.clone().unwrap_or_default();
                    shared.update_crash(crash, |c| {
                        c.restarted = false;
                        c.trigger = Trigger::Unfinished {
                            reason: reason.clone(),
                        };
                    });
                    let _ = tx.send(Msg::Crash(crash));
                    report_rest(&tx, &mut pending, &mut queue, || unavailable(&reason));
                    return restarts;
                }
            };
            shared.update_crash(crash, |c| c.restarted = true);
            let mut killed_again = false;
            while let Some(r) = pending.pop_front() {
                let _ = tx.send(Msg::Note(format!("  running {} alone", r.case.id)));
                let tracker = Arc::new(Tracker::default());
                let ctx = tracked_ctx(&env, &shared, &r.case, &tracker);
                let alone = run_shared_case(r.case.clone(), shared.clone(), ctx);
                let (result, died) = tokio::select! {
                    biased;
                    _ = env.monitor.dead() => (None, true),
                    res = alone => {
                        let died = env.monitor.settle().await.is_some();
                        (Some(res), died)
                    }
                };
                if died {
                    let failure = match result.map(|x| x.outcome) {
                        Some(Outcome::Failed { failure }) => failure,
                        _ => Failure {
                            request: r
                                .tracker
                                .requests(&death.endpoint)
                                .last()
                                .cloned()
                                .unwrap_or_else(|| "(the whole case)".into()),
                            expected: "an answer, and a member that stays up".into(),
                            actual: "run alone on a restarted cluster, it killed a member again"
                                .into(),
                        },
                    };
                    let _ = tx.send(Msg::Note(format!(
                        "  {} killed the target again",
                        r.case.id
                    )));
                    confirmed.push(r.case.id.clone());
                    let outcome = Outcome::KilledTarget { crash, failure };
                    let _ = tx.send(Msg::Case(r.index, verdict_of(&r.case, outcome, 0)));
                    killed_again = true;
                    break;
                }
                if let Some(res) = result {
                    let _ = tx.send(Msg::Case(r.index, res));
                }
            }
            if !killed_again {
                break;
            }
        }
        let trigger = match (gave_up, confirmed.is_empty()) {
            (Some(reason), _) => Trigger::Unfinished { reason },
            (None, true) => Trigger::NotReproduced,
            (None, false) => Trigger::Confirmed { cases: confirmed },
        };
        let unfinished = matches!(trigger, Trigger::Unfinished { .. });
        shared.update_crash(crash, |c| c.trigger = trigger);
        let _ = tx.send(Msg::Crash(crash));
        if unfinished {
            let reason = format!("{headline}; gave up after {MAX_RESTARTS} restarts");
            report_rest(&tx, &mut pending, &mut queue, || unavailable(&reason));
            return restarts;
        }
    }
}

/// Reports every case left (suspects not yet run alone, then the queue) with the
/// outcome `outcome` makes.
fn report_rest(
    tx: &mpsc::UnboundedSender<Msg>,
    pending: &mut VecDeque<Running>,
    queue: &mut VecDeque<(usize, Case)>,
    outcome: impl Fn() -> Outcome,
) {
    for r in pending.drain(..) {
        let _ = tx.send(Msg::Case(r.index, verdict_of(&r.case, outcome(), 0)));
    }
    for (i, c) in queue.drain(..) {
        let _ = tx.send(Msg::Case(i, verdict_of(&c, outcome(), 0)));
    }
}

/// The context of a shared case: the environment's clients, recording into `tracker`.
fn tracked_ctx(env: &Env, shared: &Shared, case: &Case, tracker: &Arc<Tracker>) -> Ctx {
    let rec: Arc<dyn gauntlet_harness::Recorder> = tracker.clone();
    Ctx {
        client: env.client.with_recorder(rec.clone()),
        members: env
            .members
            .iter()
            .map(|m| m.with_recorder(rec.clone()))
            .collect(),
        prefix: format!("/gauntlet-conformance/{}/{}/", shared.run_id, case.id),
        version: shared.version,
        cluster: None,
        config: env.config.clone(),
    }
}

fn verdict_of(case: &Case, outcome: Outcome, duration_ms: u64) -> CaseResult {
    CaseResult {
        id: case.id.clone(),
        service: case.service,
        guarantee: case.guarantee.clone(),
        doc: case.doc.to_string(),
        outcome,
        duration_ms,
    }
}

/// The profile's verdict on whether a case applies, as a not-run outcome.
fn not_applicable(case: &Case, shared: &Shared) -> Option<Outcome> {
    if shared.proxied && case.service == Service::Gateway && case.needs == Needs::Shared {
        return Some(Outcome::NotRun {
            reason: "speaks HTTP/1.1 to the gateway; the mutating proxy relays gRPC only".into(),
            cause: NotRunCause::Proxy,
        });
    }
    (!case.versions.contains(shared.version)).then(|| Outcome::NotRun {
        reason: format!(
            "applies to versions {}, the run is at {}",
            case.versions, shared.version
        ),
        cause: NotRunCause::Profile,
    })
}

async fn run_shared_case(case: Case, shared: Arc<Shared>, ctx: Ctx) -> CaseResult {
    let started = Instant::now();
    let outcome = match not_applicable(&case, &shared) {
        Some(o) => o,
        None => check(&case, ctx).await,
    };
    verdict_of(&case, outcome, millis(started.elapsed()))
}

/// Runs a case's check with its deadline, catching panics.
async fn check(case: &Case, ctx: Ctx) -> Outcome {
    let check = case.check.clone();
    let handle = tokio::spawn(async move { tokio::time::timeout(CASE_TIMEOUT, check(ctx)).await });
    let abort = handle.abort_handle();
    // Abort the check when this future is dropped (a crash aborts the case).
    let _guard = AbortOnDrop(abort);
    match handle.await {
        Ok(Ok(Ok(()))) => Outcome::Passed,
        Ok(Ok(Err(failure))) => Outcome::Failed { failure },
        Ok(Err(_)) => Outcome::Failed {
            failure: Failure {
                request: "(the whole case)".into(),
                expected: format!("a verdict within {} s", CASE_TIMEOUT.as_secs()),
                actual: "still running".into(),
            },
        },
        Err(join) => Outcome::Failed {
            failure: Failure {
                request: "(the whole case)".into(),
                expected: "a verdict".into(),
                actual: format!("the check panicked: {join}"),
            },
        },
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_fresh_case(case: Case, shared: Arc<Shared>) -> CaseResult {
    let started = Instant::now();
    let outcome = match not_applicable(&case, &shared) {
        Some(o) => o,
        None => fresh_outcome(&case, &shared).await,
    };
    verdict_of(&case, outcome, millis(started.elapsed()))
}

async fn fresh_outcome(case: &Case, shared: &Shared) -> Outcome {
    let Some((target, cache)) = &shared.launch else {
        let reason = match case.needs {
            Needs::Members(n) => format!(
                "needs {n} members and the endpoints have {}; give more endpoints or let gauntlet launch the target",
                shared.size
            ),
            _ => "needs a fresh cluster of its own, which only a target gauntlet launches can give (not --endpoints)".to_string(),
        };
        return Outcome::NotRun {
            reason,
            cause: NotRunCause::Launcher,
        };
    };
    let n = match case.needs {
        Needs::Members(n) | Needs::Fresh(n) => n,
        Needs::Shared => 1,
    };
    let mut spec = ClusterSpec::new(target.clone(), n);
    spec.extra_args = case.server_flags.clone();
    let cluster = match Cluster::start(spec, cache).await {
        Ok(c) => Arc::new(c),
        Err(e) => {
            return Outcome::Failed {
                failure: Failure {
                    request: format!("(launch a fresh {n}-member cluster of {target})"),
                    expected: "a running cluster".into(),
                    actual: e.to_string(),
                },
            }
        }
    };
    let config = cluster.client_config(cluster.endpoints());
    let tracker = Arc::new(Tracker::default());
    let rec: Arc<dyn gauntlet_harness::Recorder> = tracker.clone();
    let connected = async {
        let client = Client::connect(config.clone()).await?.with_recorder(rec);
        let members = (0..n)
            .map(|i| client.pinned(i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, gauntlet_harness::ClientError>((client, members))
    }
    .await;
    let (client, members) = match connected {
        Ok(x) => x,
        Err(e) => {
            return Outcome::Failed {
                failure: Failure {
                    request: "(connect to the fresh cluster)".into(),
                    expected: "a connection".into(),
                    actual: e.to_string(),
                },
            }
        }
    };
    let ctx = Ctx {
        client,
        members,
        prefix: format!("/gauntlet-conformance/{}/{}/", shared.run_id, case.id),
        version: shared.version,
        cluster: Some(cluster.clone()),
        config,
    };
    let started_ns = gauntlet_harness::now_ns();
    let outcome = check(case, ctx).await;
    // The case failed and a member of its own cluster died on its own: the case's
    // requests killed it (nothing else ran there).
    let Outcome::Failed { failure } = outcome else {
        return outcome;
    };
    // A dying process may break the connection before it is gone: when the failure
    // looks like a lost connection, give it a moment to exit.
    let lost = LOST_CONNECTION.iter().any(|w| failure.actual.contains(w));
    let settle = tokio::time::Instant::now() + if lost { CRASH_SETTLE } else { Duration::ZERO };
    let died = loop {
        let died = cluster
            .members()
            .into_iter()
            .enumerate()
            .find(|(_, m)| m.exited.as_deref().is_some_and(|s| s != "exit status: 0"));
        if died.is_some() || tokio::time::Instant::now() >= settle {
            break died;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let Some((i, m)) = died else {
        return Outcome::Failed { failure };
    };
    let crash = shared.push_crash(Crash {
        member: m.name.clone(),
        endpoint: m.client_url.clone(),
        at_ms: millis(shared.started.elapsed()),
        last_answered_ms: None,
        how: format!(
            "process exited on its own: {}",
            m.exited.clone().unwrap_or_default()
        ),
        in_flight: vec![InFlight {
            id: case.id.clone(),
            running_ms: millis(Duration::from_nanos(
                gauntlet_harness::now_ns().saturating_sub(started_ns),
            )),
            requests: tracker.requests(&m.client_url),
        }],
        log_tail: cluster
            .log_tail(i, gauntlet_harness::liveness::LOG_TAIL_LINES)
            .unwrap_or_default(),
        trigger: Trigger::Confirmed {
            cases: vec![case.id.clone()],
        },
        restarted: false,
        known_issue: None,
    });
    Outcome::KilledTarget { crash, failure }
}
