//! Runs a catalogue against a target: launched by us, or external endpoints.
//!
//! Shared cases run concurrently (bounded by [`RunOptions::concurrency`]) on one
//! cluster, each under its own key prefix. Cases that need a cluster of their own
//! get a fresh one per case when the runner launched the target (at most
//! [`FRESH_PARALLEL`] at a time); against external endpoints they are reported as
//! not run, with the reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use gauntlet_api::etcdserverpb as pb;
use gauntlet_harness::{
    Cache, Client, ClientConfig, Cluster, ClusterSpec, Mutation, Proxy, Target,
};
use serde::Serialize;

use crate::case::{Case, Ctx, Failure, Needs, Service, Version};
use crate::ledger::{KnownIssue, Ledger};

/// A case without a verdict after this long fails.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(40);
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
    /// The profile; `None` holds the target to its own reported version.
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
    },
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
}

impl Counts {
    /// Every case counted.
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.known_issue + self.not_run
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What ran (`etcd@3.5.1 x3`, or the endpoints).
    pub target: String,
    /// Version the server reported.
    pub server_version: String,
    /// Profile used.
    pub profile: Option<Profile>,
    /// Results in catalogue order.
    pub results: Vec<CaseResult>,
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
                    match r.outcome {
                        Outcome::Passed => c.passed += 1,
                        Outcome::Failed { .. } => c.failed += 1,
                        Outcome::KnownIssue { .. } => c.known_issue += 1,
                        Outcome::NotRun { .. } => c.not_run += 1,
                    }
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
                a
            })
    }

    /// New failures (what makes the run fail).
    pub fn new_failures(&self) -> usize {
        self.totals().failed
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
    /// The server's version string is not `major.minor[.patch]`.
    #[error("server reports version `{0}`, which is not major.minor.patch")]
    BadVersion(String),
}

/// The cases a run selects: profile and filter applied, in catalogue order.
pub fn select<'a>(catalogue: &'a [Case], opts: &RunOptions) -> Vec<&'a Case> {
    catalogue
        .iter()
        .filter(|c| opts.filter.as_deref().is_none_or(|f| c.id.contains(f)))
        .filter(|c| opts.profile != Some(Profile::Kubernetes) || c.kubernetes)
        .collect()
}

struct Shared {
    client: Client,
    members: Vec<Client>,
    config: ClientConfig,
    size: usize,
    version: Version,
    launch: Option<(Target, Cache)>,
    run_id: String,
}

/// Runs `catalogue` (after [`select`]) against `under`; `progress` sees each result
/// as it completes.
pub async fn run(
    catalogue: &[Case],
    under: &Under,
    opts: &RunOptions,
    ledger: &Ledger,
    mut progress: impl FnMut(&CaseResult),
) -> Result<Report, RunError> {
    let started = Instant::now();
    let (cluster, config, label, launch) = match under {
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
            (
                Some(cluster),
                config,
                format!("{target} x{members}"),
                Some((target.clone(), cache.clone())),
            )
        }
        Under::External(config) => (None, config.clone(), config.endpoints.join(","), None),
    };
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
    let status = members[0].status(pb::StatusRequest {}).await?;
    let server_version = status.version.clone();
    let detected = Version::parse(&server_version)
        .ok_or_else(|| RunError::BadVersion(server_version.clone()))?;
    let version = match opts.profile {
        Some(Profile::Etcd34) => Version(3, 4, 23),
        Some(Profile::Etcd35) => Version(3, 5, 1),
        _ => detected,
    };
    let shared = Arc::new(Shared {
        size: members.len(),
        client,
        members,
        config,
        version,
        launch,
        run_id: format!(
            "{:x}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
            NEXT_RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ),
    });
    let selected = select(catalogue, opts);
    type Numbered<'a> = Vec<(usize, &'a Case)>;
    let (fresh, pooled): (Numbered<'_>, Numbered<'_>) = selected
        .iter()
        .copied()
        .enumerate()
        .partition(|(_, c)| needs_fresh(c.needs, shared.size));
    let concurrency = opts.concurrency.max(1);
    let pooled_stream = futures::stream::iter(pooled.into_iter().map(|(i, c)| {
        let shared = shared.clone();
        let c = c.clone();
        async move { (i, run_case(c, shared, false).await) }
    }))
    .buffer_unordered(concurrency);
    let fresh_stream = futures::stream::iter(fresh.into_iter().map(|(i, c)| {
        let shared = shared.clone();
        let c = c.clone();
        async move { (i, run_case(c, shared, true).await) }
    }))
    .buffer_unordered(FRESH_PARALLEL.min(concurrency));
    let mut all = futures::stream::select(pooled_stream, fresh_stream);
    let mut results: Vec<Option<CaseResult>> = vec![None; selected.len()];
    while let Some((i, mut r)) = all.next().await {
        if let Outcome::Failed { failure } = &r.outcome {
            if opts.use_ledger {
                if let Some(issue) = ledger.lookup(&r.id, detected) {
                    r.outcome = Outcome::KnownIssue {
                        failure: failure.clone(),
                        issue: issue.clone(),
                    };
                }
            }
        }
        progress(&r);
        results[i] = Some(r);
    }
    drop(proxies);
    drop(cluster);
    Ok(Report {
        target: label,
        server_version,
        profile: opts.profile,
        results: results.into_iter().flatten().collect(),
        wall_ms: millis(started.elapsed()),
    })
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

async fn run_case(case: Case, shared: Arc<Shared>, fresh: bool) -> CaseResult {
    let started = Instant::now();
    let outcome = outcome_of(&case, &shared, fresh).await;
    CaseResult {
        id: case.id.clone(),
        service: case.service,
        guarantee: case.guarantee.clone(),
        doc: case.doc.to_string(),
        outcome,
        duration_ms: millis(started.elapsed()),
    }
}

async fn outcome_of(case: &Case, shared: &Shared, fresh: bool) -> Outcome {
    if !case.versions.contains(shared.version) {
        return Outcome::NotRun {
            reason: format!(
                "applies to versions {}, the run is at {}",
                case.versions, shared.version
            ),
        };
    }
    let prefix = format!("/gauntlet-conformance/{}/{}/", shared.run_id, case.id);
    let mut _fresh_cluster = None;
    let ctx = if fresh {
        let Some((target, cache)) = &shared.launch else {
            let why = match case.needs {
                Needs::Members(n) => format!(
                    "needs {n} members and the endpoints have {}; give more endpoints or let gauntlet launch the target",
                    shared.size
                ),
                _ => "needs a fresh cluster of its own, which only a target gauntlet launches can give (not --endpoints)".to_string(),
            };
            return Outcome::NotRun { reason: why };
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
        let connected = async {
            let client = Client::connect(config.clone()).await?;
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
        _fresh_cluster = Some(cluster.clone());
        Ctx {
            client,
            members,
            prefix,
            version: shared.version,
            cluster: Some(cluster),
            config,
        }
    } else {
        Ctx {
            client: shared.client.clone(),
            members: shared.members.clone(),
            prefix,
            version: shared.version,
            cluster: None,
            config: shared.config.clone(),
        }
    };
    let check = case.check.clone();
    let handle = tokio::spawn(async move { tokio::time::timeout(CASE_TIMEOUT, check(ctx)).await });
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
