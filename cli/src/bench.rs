//! `gauntlet bench`: etcd-benchmark-style load, the Kubernetes-shaped profile, and
//! `bench compare`. The suite lives in `gauntlet-bench`; this module only wires flags,
//! launches clusters when no `--endpoints` are given, and prints.
//!
//! Exit codes: 0 done, 1 the `--baseline` gate found a regression, 2 bad input or a
//! failed run.

use anyhow::Context;
use clap::{Args, Subcommand};
use gauntlet_bench::compare::{self, Side};
use gauntlet_bench::{BenchOpts, Format, RunResult, Workload};
use gauntlet_harness::{Cache, ClientConfig, Cluster, ClusterSpec, Target};

use crate::ConnFlags;

/// `gauntlet bench` flags.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    opts: BenchOpts,
    /// Target to launch when --endpoints is not given (reference, etcd@VERSION, exec:PATH).
    #[arg(long, global = true, default_value = "reference")]
    target: String,
    /// Members of a launched cluster.
    #[arg(long, global = true, default_value_t = 3)]
    members: usize,
    /// Turn etcd's auth on in each launched cluster and run the load as an unprivileged
    /// user holding READWRITE on every key (root skips the permission checks).
    #[arg(long, global = true)]
    auth: bool,
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    #[command(flatten)]
    Workload(Workload),
    /// Run one workload against two targets alternately (A B A B) and print B/A ratios.
    Compare(CompareArgs),
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// Target A: reference, etcd@VERSION, exec:PATH, or endpoints:HOST:PORT[,HOST:PORT...].
    #[arg(long)]
    a: String,
    /// Target B, same forms as --a.
    #[arg(long)]
    b: String,
    /// Rounds; each runs the workload on A, then on B.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    #[command(subcommand)]
    workload: Workload,
}

/// A cluster this command launched, kept alive while it is measured.
pub(crate) struct Launched {
    pub(crate) config: ClientConfig,
    pub(crate) pids: Vec<u32>,
    pub(crate) _cluster: Option<Cluster>,
}

/// Launches `target` (or wraps `endpoints:...`); `announce` says so on stderr. With
/// `auth`, the launched cluster gets auth turned on and the returned config runs as the
/// bench user ([`gauntlet_bench::auth::enable`]).
pub(crate) async fn launch(
    target: &str,
    members: usize,
    conn: &ConnFlags,
    announce: bool,
    auth: bool,
) -> anyhow::Result<Launched> {
    if let Some(eps) = target.strip_prefix("endpoints:") {
        anyhow::ensure!(
            !auth,
            "--auth turns auth on in clusters gauntlet launches; for `{target}` use --user"
        );
        let mut cfg = conn.client_config()?;
        cfg.endpoints = eps.split(',').map(str::to_string).collect();
        return Ok(Launched {
            config: cfg,
            pids: Vec::new(),
            _cluster: None,
        });
    }
    anyhow::ensure!(
        (1..=9).contains(&members),
        "--members must be between 1 and 9, got {members}"
    );
    let target: Target = target.parse()?;
    let mut spec = ClusterSpec::new(target.clone(), members);
    // Benchmarks use etcd's default timings, not the test ones.
    spec.heartbeat_interval_ms = 100;
    spec.election_timeout_ms = 1000;
    if announce {
        eprintln!("starting {members} member(s) of {target} ...");
    }
    let cluster = Cluster::start(spec, &Cache::from_env())
        .await
        .with_context(|| format!("starting {target}"))?;
    let mut cfg = cluster.client_config(cluster.endpoints());
    cfg.dial_timeout = conn.dial_timeout;
    cfg.command_timeout = conn.command_timeout;
    if auth {
        cfg.credentials = Some(
            gauntlet_bench::auth::enable(&cfg)
                .await
                .with_context(|| format!("turning auth on in {target}"))?,
        );
        if announce {
            eprintln!(
                "auth enabled; the load runs as user {}",
                gauntlet_bench::auth::BENCH_USER
            );
        }
    }
    Ok(Launched {
        config: cfg,
        pids: cluster.pids(),
        _cluster: Some(cluster),
    })
}

/// Runs `gauntlet bench`; returns the exit code.
pub async fn run(args: BenchArgs, conn: &ConnFlags) -> anyhow::Result<u8> {
    args.opts.validate()?;
    match &args.command {
        BenchCommand::Workload(w) => {
            w.validate()?;
            // `--endpoints` is the `endpoints:` form of --target.
            let target = if conn.endpoints.is_empty() {
                args.target.clone()
            } else {
                format!("endpoints:{}", conn.endpoints.join(","))
            };
            let side = launch(&target, args.members, conn, true, args.auth).await?;
            let result =
                gauntlet_bench::run(w, &args.opts, side.config.clone(), side.pids.clone()).await?;
            finish_one(&result, &args.opts)
        }
        BenchCommand::Compare(c) => {
            c.workload.validate()?;
            anyhow::ensure!(
                (1..=compare::MAX_ROUNDS).contains(&c.rounds),
                "--rounds must be between 1 and {}, got {}",
                compare::MAX_ROUNDS,
                c.rounds
            );
            let a = launch(&c.a, args.members, conn, true, args.auth).await?;
            let b = launch(&c.b, args.members, conn, true, args.auth).await?;
            let cmp = compare::compare(
                &Side {
                    label: c.a.clone(),
                    client: a.config.clone(),
                    pids: a.pids.clone(),
                },
                &Side {
                    label: c.b.clone(),
                    client: b.config.clone(),
                    pids: b.pids.clone(),
                },
                &c.workload,
                &args.opts,
                c.rounds,
            )
            .await?;
            let text = cmp.to_text();
            match args.opts.format {
                Format::Simple => print!("{text}"),
                Format::Json => println!("{}", serde_json::to_string_pretty(&cmp)?),
            }
            if let Some(path) = &args.opts.out {
                std::fs::write(path, serde_json::to_string_pretty(&cmp)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(dir) = &args.opts.plots {
                let (ra, rb) = &cmp.rounds[0];
                let runs = [(format!("A {}", cmp.a), ra), (format!("B {}", cmp.b), rb)];
                let files = gauntlet_bench::plot::write_plots(dir, &runs, &text)?;
                eprintln!("plots: {}", files[files.len() - 1].display());
            }
            Ok(0)
        }
    }
}

fn finish_one(result: &RunResult, opts: &BenchOpts) -> anyhow::Result<u8> {
    match opts.format {
        Format::Simple => print!("{}", result.to_text()),
        Format::Json => println!("{}", serde_json::to_string_pretty(result)?),
    }
    if let Some(path) = &opts.out {
        result.save(path)?;
    }
    if let Some(dir) = &opts.plots {
        let files =
            gauntlet_bench::plot::write_plots(dir, &[(result.workload.clone(), result)], "")?;
        eprintln!("plots: {}", files[files.len() - 1].display());
    }
    if let Some(path) = &opts.baseline {
        let baseline = RunResult::load(path)?;
        let verdict = gauntlet_bench::gate::gate(result, &baseline, opts.tolerance)?;
        eprintln!(
            "baseline {} (tolerance {}%):",
            path.display(),
            opts.tolerance
        );
        for l in &verdict.lines {
            eprintln!("  {l}");
        }
        if !verdict.pass {
            eprintln!("regression beyond --tolerance");
            return Ok(1);
        }
    }
    Ok(0)
}
