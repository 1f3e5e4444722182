//! `gauntlet`: certify etcd-compatible servers.
//!
//! Subcommands: `targets fetch|list` (the binary cache), `cluster up` (launch a
//! cluster of any target and keep it running), `check` (linearizability of recorded
//! histories) and `version`. Global connection flags are named as etcdctl names them.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use gauntlet_harness::{
    Cache, Client, ClientConfig, Cluster, ClusterSpec, Credentials, FetchOutcome, SourceList,
    Target, TlsFiles,
};

mod bench;
mod certify;
mod chaos;
mod check;
mod conformance;
mod powerfs;
mod progress;
mod skew;
mod standin;

#[derive(Parser, Debug)]
#[command(
    name = "gauntlet",
    version,
    about = "Certify etcd-compatible servers: conformance, linearizability, chaos, benchmarks"
)]
struct Cli {
    #[command(flatten)]
    conn: ConnFlags,
    #[command(subcommand)]
    command: Command,
}

/// Connection flags, as etcdctl names them.
#[derive(Args, Debug, Clone)]
struct ConnFlags {
    /// Comma-separated endpoints of an existing cluster (host:port or URL).
    #[arg(long, global = true, value_delimiter = ',', env = "ETCDCTL_ENDPOINTS")]
    endpoints: Vec<String>,
    /// CA bundle to verify TLS servers.
    #[arg(long, global = true)]
    cacert: Option<std::path::PathBuf>,
    /// Client TLS certificate.
    #[arg(long, global = true)]
    cert: Option<std::path::PathBuf>,
    /// Client TLS key.
    #[arg(long, global = true)]
    key: Option<std::path::PathBuf>,
    /// user:password for authentication.
    #[arg(long, global = true)]
    user: Option<String>,
    /// Dial timeout (e.g. 2s, 500ms).
    #[arg(long, global = true, default_value = "2s", value_parser = parse_duration)]
    dial_timeout: Duration,
    /// Timeout of each request (e.g. 5s).
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    command_timeout: Duration,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Everything that applies to a target in one run: conformance, chaos, skew (with
    /// --from/--to) and benchmarks; one report directory and a release recommendation.
    Certify(certify::CertifyArgs),
    /// The target binary cache.
    Targets {
        #[command(subcommand)]
        action: TargetsAction,
    },
    /// Launch clusters.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Check recorded histories for linearizability.
    Check(check::CheckArgs),
    /// Print gauntlet's version, and each endpoint's server version when --endpoints is given.
    Version,
    /// Benchmarks: etcd-benchmark workloads, the Kubernetes-shaped profile, compare.
    Bench(bench::BenchArgs),
    /// Run the conformance catalogue against a target (default: a 3-member reference cluster).
    Conformance(conformance::ConformanceArgs),
    /// Seeded fault rounds (crashes, pauses, maintenance) under recorded traffic, judged by the checker.
    Chaos(chaos::ChaosArgs),
    /// Mixed versions under recorded traffic: rolling upgrade, mixed clusters, rollback, refusals, downgrade, client skew.
    Skew(skew::SkewArgs),
    /// Serve toxiproxy's HTTP API over gauntlet's fault proxies (until Ctrl-C).
    Proxy {
        /// Where the API listens (loopback).
        #[arg(long, default_value = "127.0.0.1:8474")]
        listen_api: std::net::SocketAddr,
        /// Seed of the toxicity draws.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Serve a real server behind a proxy that behaves like a foreign server (another
    /// reported version, a crash on a given request); takes etcd's flags after `--`.
    StandIn(standin::StandInArgs),
    /// Mount the power-loss filesystem over a directory, with a control socket (`cut`
    /// drops everything not fsynced), until Ctrl-C.
    Powerfs(powerfs::PowerFsArgs),
}

#[derive(Subcommand, Debug)]
enum TargetsAction {
    /// Fetch targets (e.g. etcd@3.5.1 etcd@3.4.23) into the cache, or build reference@REV; cached ones are verified and kept.
    Fetch {
        /// Targets to fetch.
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// List cached targets and the targets the source list knows.
    List,
}

#[derive(Subcommand, Debug)]
enum ClusterAction {
    /// Start a cluster, print its endpoints, and keep it running until Ctrl-C.
    Up {
        /// reference, etcd@VERSION or exec:PATH.
        #[arg(long, default_value = "reference")]
        target: String,
        /// Number of members.
        #[arg(long, default_value_t = 3)]
        members: usize,
        /// First port (client port of member 0); free ports when absent.
        #[arg(long)]
        base_port: Option<u16>,
        /// Keep data dirs and logs here instead of a temporary dir.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
        /// Where members run: `process` (loopback ports) or `docker` (a container per
        /// member on a private network, each with its own address).
        #[arg(long, default_value = "process", conflicts_with = "base_port")]
        backend: gauntlet_harness::Backend,
    },
}

/// Parses etcdctl-style durations: `500ms`, `2s`, `1m`, or plain seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 2s, 500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{s}`: unit must be ms, s or m")),
    };
    if !(secs > 0.0 && secs < 86_400.0) {
        return Err(format!("`{s}` must be positive and under a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl ConnFlags {
    fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let mut cfg = ClientConfig::new(self.endpoints.clone());
        cfg.dial_timeout = self.dial_timeout;
        cfg.command_timeout = self.command_timeout;
        if self.cacert.is_some() || self.cert.is_some() || self.key.is_some() {
            cfg.tls = Some(TlsFiles {
                cacert: self.cacert.clone(),
                cert: self.cert.clone(),
                key: self.key.clone(),
            });
        }
        if let Some(u) = &self.user {
            cfg.credentials = Some(Credentials::parse(u)?);
        }
        Ok(cfg)
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and --version go to stdout as clap prints them; a usage error is one
        // line (clap's first: what was wrong), exit 2.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.render().to_string();
            eprintln!("{}", text.lines().next().unwrap_or("bad arguments"));
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(match std::env::var("GAUNTLET_LOG") {
            Ok(v) => tracing_subscriber::EnvFilter::new(v),
            // A member killed mid-request abandons its FUSE request; fuser then logs the
            // reply it could not send. Expected in every power-loss round: not an error.
            Err(_) => tracing_subscriber::EnvFilter::new("error,fuser::reply=off"),
        })
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Check(args) => check::run(&args),
        other => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match other {
                Command::Bench(args) => rt.block_on(bench::run(args, &cli.conn)),
                Command::Conformance(args) => {
                    rt.block_on(conformance::run_conformance(&args, &cli.conn))
                }
                Command::Chaos(args) => rt.block_on(chaos::run_chaos(&args)),
                Command::Certify(args) => rt.block_on(certify::run_certify(&args, &cli.conn)),
                Command::Skew(args) => rt.block_on(skew::run_skew(&args)),
                Command::Powerfs(args) => rt.block_on(powerfs::run(&args)).map(|()| 0),
                Command::StandIn(args) => {
                    return match rt.block_on(standin::run(args)) {
                        Ok(code) => code,
                        Err(e) => {
                            eprintln!("error: {}", error_line(&e));
                            ExitCode::from(2)
                        }
                    }
                }
                other => rt.block_on(run(other, cli.conn)).map(|()| 0),
            }
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes on one line, `: `-separated, leaving out a cause whose
/// text the line already says (libraries often repeat their source's message in
/// their own), and folding each cause onto one line.
pub(crate) fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

async fn run(command: Command, conn: ConnFlags) -> anyhow::Result<()> {
    match command {
        Command::Targets {
            action: TargetsAction::Fetch { targets },
        } => fetch(&targets),
        Command::Targets {
            action: TargetsAction::List,
        } => list(),
        Command::Cluster {
            action:
                ClusterAction::Up {
                    target,
                    members,
                    base_port,
                    data_dir,
                    backend,
                },
        } => cluster_up(&target, members, base_port, data_dir, backend).await,
        Command::Version => version(&conn).await,
        Command::Proxy { listen_api, seed } => proxy_api(listen_api, seed).await,
        Command::Check(_)
        | Command::Bench(_)
        | Command::Conformance(_)
        | Command::StandIn(_)
        | Command::Powerfs(_)
        | Command::Chaos(_)
        | Command::Certify(_)
        | Command::Skew(_) => {
            unreachable!("handled before the runtime starts")
        }
    }
}

/// Checks that `target` can be launched: fetches a real etcd into the cache first
/// when it is missing, then resolves its server binary.
pub(crate) fn ensure_launchable(target: &Target, cache: &Cache) -> anyhow::Result<()> {
    if let Target::Etcd { .. } = target {
        if cache.binary(&target.to_string(), "etcd").is_err() {
            eprintln!("{target} is not cached yet: fetching it first");
            fetch(&[target.to_string()])?;
        }
    }
    target.server_binary(cache)?;
    Ok(())
}

fn fetch(targets: &[String]) -> anyhow::Result<()> {
    let cache = Cache::from_env();
    let sources = SourceList::for_cache(&cache)?;
    for t in targets {
        let target: Target = t.parse()?;
        if let Target::ReferenceRev { rev } = &target {
            let (bin, built) = gauntlet_harness::revbuild::build(&cache, rev)?;
            println!(
                "{target}: {} {}",
                if built {
                    "built into"
                } else {
                    "already built in"
                },
                bin.display()
            );
            continue;
        }
        if !matches!(target, Target::Etcd { .. }) {
            bail!("only etcd@VERSION and reference@REV targets are fetched; `{t}` needs no fetch");
        }
        match cache.fetch(&sources, &target.to_string())? {
            FetchOutcome::AlreadyCached(dir) => {
                println!("{target}: already cached in {}", dir.display())
            }
            FetchOutcome::Fetched(dir) => println!("{target}: fetched into {}", dir.display()),
        }
    }
    Ok(())
}

fn list() -> anyhow::Result<()> {
    let cache = Cache::from_env();
    let cached = cache.list()?;
    println!("cache: {}", cache.root().display());
    if cached.is_empty() {
        println!("  (nothing cached)");
    }
    for c in &cached {
        let bins: Vec<&str> = c.manifest.binaries.keys().map(String::as_str).collect();
        println!(
            "  {:<14} {}  from {}  [{}]",
            c.manifest.target,
            c.dir.display(),
            c.manifest.source,
            bins.join(", ")
        );
    }
    let sources = SourceList::for_cache(&cache)?;
    let known: Vec<&str> = sources.all().iter().map(|s| s.target.as_str()).collect();
    println!("fetchable: {}", known.join(", "));
    Ok(())
}

async fn cluster_up(
    target: &str,
    members: usize,
    base_port: Option<u16>,
    data_dir: Option<std::path::PathBuf>,
    backend: gauntlet_harness::Backend,
) -> anyhow::Result<()> {
    let target: Target = target.parse()?;
    let cache = Cache::from_env();
    let mut spec = ClusterSpec::new(target.clone(), members);
    spec.backend = backend;
    // Interactive clusters use etcd's own default timings.
    spec.heartbeat_interval_ms = 100;
    spec.election_timeout_ms = 1000;
    spec.base_port = base_port;
    spec.data_root = data_dir;
    ensure_launchable(&target, &cache)?;
    eprintln!("starting {members} member(s) of {target} ...");
    let cluster = Cluster::start(spec, &cache)
        .await
        .with_context(|| format!("starting {target}"))?;
    println!("ENDPOINTS={}", cluster.endpoints().join(","));
    for m in cluster.members() {
        println!(
            "{}  client {}  peer {}  pid {}  log {}",
            m.name,
            m.client_url,
            m.peer_url,
            m.pid.unwrap_or(0),
            m.log.display()
        );
    }
    if let Some(etcdctl) = target.etcdctl(&cache) {
        println!(
            "try: {} --endpoints={} endpoint status -w table",
            etcdctl.display(),
            cluster.endpoints().join(",")
        );
    }
    println!("cluster is up; Ctrl-C to stop");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    eprintln!("stopping ...");
    cluster.shutdown();
    Ok(())
}

async fn proxy_api(listen: std::net::SocketAddr, seed: u64) -> anyhow::Result<()> {
    let registry = std::sync::Arc::new(gauntlet_harness::netproxy::Registry::new(seed));
    let server = gauntlet_harness::toxiproxy::ToxiproxyServer::start(listen, registry)
        .await
        .with_context(|| format!("starting the proxy API on {listen}"))?;
    println!("toxiproxy API on {}", server.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    drop(server);
    Ok(())
}

async fn version(conn: &ConnFlags) -> anyhow::Result<()> {
    println!("gauntlet {}", env!("CARGO_PKG_VERSION"));
    if conn.endpoints.is_empty() {
        return Ok(());
    }
    let client = Client::connect(conn.client_config()?).await?;
    for i in 0..client.endpoints().len() {
        let c = client.pinned(i)?;
        match c.status(gauntlet_api::etcdserverpb::StatusRequest {}).await {
            Ok(s) => {
                let h = gauntlet_harness::profile::hold(&s.version, None);
                println!(
                    "{}: server {} (held to {})",
                    c.endpoints()[0],
                    s.version,
                    h.profile
                );
                if let Some(notice) = h.notice() {
                    println!("  {notice}");
                }
            }
            Err(e) => println!("{}: {e}", c.endpoints()[0]),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{error_line, parse_duration};

    #[test]
    fn bench_flags_go_anywhere_as_in_etcds_tool() {
        use clap::Parser as _;
        let parse = |argv: &[&str]| match super::Cli::try_parse_from(argv) {
            Ok(super::Cli {
                command: super::Command::Bench(b),
                ..
            }) => format!("{b:?}"),
            other => panic!("{argv:?}: {other:?}"),
        };
        let after = parse(&[
            "gauntlet",
            "bench",
            "put",
            "--clients",
            "10",
            "--total",
            "100",
            "--target",
            "etcd@3.5.1",
        ]);
        let before = parse(&[
            "gauntlet",
            "bench",
            "--clients",
            "10",
            "--target",
            "etcd@3.5.1",
            "put",
            "--total",
            "100",
        ]);
        assert_eq!(after, before);
        assert!(
            after.contains("clients: 10") && after.contains("total: 100"),
            "{after}"
        );
    }

    #[test]
    fn an_error_line_says_each_cause_once() {
        let inner = anyhow::anyhow!("cannot reach any endpoint of 127.0.0.1:1: connection refused");
        let e = inner
            .context("cannot reach any endpoint of 127.0.0.1:1: connection refused")
            .context("conformance run");
        assert_eq!(
            error_line(&e),
            "conformance run: cannot reach any endpoint of 127.0.0.1:1: connection refused"
        );
        let e = anyhow::anyhow!("line one\n  line two").context("outer");
        assert_eq!(error_line(&e), "outer: line one line two");
    }
    use std::time::Duration;

    #[test]
    fn durations_parse_like_etcdctl() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        for bad in ["", "0s", "-1s", "2h", "abc"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
