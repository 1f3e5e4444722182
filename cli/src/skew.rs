//! `gauntlet skew`: mixed-version scenarios for a (from, to) pair of targets.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use gauntlet_chaos::scenario::TrafficProfile;
use gauntlet_chaos::traffic::TrafficConfig;
use gauntlet_harness::{Cache, Mutation, Target};
use gauntlet_skew::expect::Expect;
use gauntlet_skew::report::{Matrix, SCHEMA_VERSION};
use gauntlet_skew::run::{probe_version, run_scenario, Options, ScenarioResult, Verdict};
use gauntlet_skew::scenario::{select, Scenario};

/// Flags of `gauntlet skew`.
#[derive(Args, Debug)]
pub struct SkewArgs {
    /// The old version: etcd@VERSION, reference, reference@REV (a git revision of this
    /// repository, built into the target cache) or exec:PATH.
    #[arg(long)]
    pub(crate) from: String,
    /// The new version (same forms).
    #[arg(long)]
    pub(crate) to: String,
    /// Scenarios to run (glob over names, comma-separated; see --list-scenarios).
    #[arg(long, default_value = "*")]
    pub(crate) scenario: String,
    /// Traffic profiles, comma-separated (etcd, kubernetes): every scenario with
    /// traffic runs once under each.
    #[arg(long, default_value = "etcd,kubernetes", value_delimiter = ',', value_parser = crate::chaos::parse_profile)]
    pub(crate) profile: Vec<TrafficProfile>,
    /// Seed of the traffic.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Operations per second over all traffic clients.
    #[arg(long, default_value_t = 200)]
    pub(crate) qps: u32,
    /// Deadline of each scenario's linearizability check (e.g. 60s).
    #[arg(long, default_value = "60s", value_parser = crate::parse_duration)]
    pub(crate) check_timeout: Duration,
    /// Write matrix.json, matrix.md, junit.xml and failing scenarios' directories here.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Keep the directory of every scenario, passing ones too.
    #[arg(long)]
    pub(crate) keep_all: bool,
    /// Self-test: mutate member 0's answers (e.g. stale-revision, lose-write); every
    /// scenario with traffic must then fail.
    #[arg(long)]
    pub(crate) mutate: Option<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    pub(crate) list_scenarios: bool,
}

/// Builds or fetches what `target` needs, so that every scenario can launch it.
fn provision(target: &Target, cache: &Cache) -> anyhow::Result<()> {
    if let Target::ReferenceRev { rev } = target {
        if gauntlet_harness::revbuild::cached(cache, rev).is_err() {
            eprintln!("{target}: building gauntlet-server at {rev} (once per commit; the first build compiles the dependencies)");
            let (bin, _) = gauntlet_harness::revbuild::build(cache, rev)?;
            eprintln!("{target}: built {}", bin.display());
        }
    }
    crate::ensure_launchable(target, cache)
}

/// The conformance suite's Kubernetes profile against a cluster's endpoints, as the
/// skew suite's `client-skew.kubernetes-profile` runs it (`use_ledger`: real etcd's
/// known issues are excused). Cases that need a cluster of their own do not run
/// against given endpoints and are counted as not run.
fn kubernetes_profile(use_ledger: bool) -> gauntlet_skew::run::ClientSuite {
    use gauntlet_conformance::{catalogue, run, Ledger, Outcome, Profile, RunOptions, Under};
    std::sync::Arc::new(move |config| {
        Box::pin(async move {
            let opts = RunOptions {
                profile: Some(Profile::Kubernetes),
                use_ledger,
                ..RunOptions::default()
            };
            let report = run(
                &catalogue(),
                &Under::External(config),
                &opts,
                &Ledger::builtin(),
                |_| {},
            )
            .await
            .map_err(|e| e.to_string())?;
            let t = report.totals();
            let failed: Vec<&str> = report
                .results
                .iter()
                .filter(|r| {
                    matches!(
                        r.outcome,
                        Outcome::Failed { .. } | Outcome::KilledTarget { .. }
                    )
                })
                .map(|r| r.id.as_str())
                .collect();
            let ok = failed.is_empty()
                && report.crashes.is_empty()
                && t.passed > 0
                && t.unavailable == 0;
            Ok((
                ok,
                format!(
                    "{} passed, {} failed{}, {} known issues, {} not run, {} unavailable, {} crashes",
                    t.passed,
                    t.failed,
                    if failed.is_empty() { String::new() } else { format!(" ({})", failed.join(", ")) },
                    t.known_issue,
                    t.not_run,
                    t.unavailable,
                    report.crashes.len()
                ),
            ))
        })
    })
}

/// Runs `gauntlet skew`; the exit code is [`Matrix::exit_code`].
pub async fn run_skew(args: &SkewArgs) -> anyhow::Result<u8> {
    if args.list_scenarios {
        for s in Scenario::ALL {
            println!("{:<44} {}", s.name(), s.describe());
        }
        return Ok(0);
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    // Ctrl-C or SIGTERM drops the scenario: its cluster's Drop kills the members.
    let matrix = tokio::select! {
        m = execute(args, |r| {
            for l in result_lines(r) {
                eprintln!("{l}");
            }
        }) => m?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: the scenario's cluster was torn down");
            return Ok(130);
        }
        _ = term.recv() => {
            eprintln!("terminated: the scenario's cluster was torn down");
            return Ok(143);
        }
    };
    let (from, to) = (&matrix.from, &matrix.to);
    eprintln!("skew {from} -> {to}: {}", matrix.tally());
    if let Some(out) = &args.out {
        matrix
            .write(out)
            .with_context(|| format!("writing the matrix into {}", out.display()))?;
        eprintln!(
            "wrote {}/{{matrix.json,matrix.md,junit.xml}}",
            out.display()
        );
    }
    Ok(matrix.exit_code())
}

/// A scenario result's lines, as `gauntlet skew` prints them.
pub(crate) fn result_lines(r: &ScenarioResult) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<44} {:<10} {:<11} {} checks, {} ops, {:.1} s",
        r.scenario.name(),
        r.profile,
        r.verdict.label(),
        r.checks.len(),
        r.operations,
        r.wall_ms as f64 / 1000.0
    )];
    if r.verdict != Verdict::Passed {
        if let Verdict::NotApplicable(why) | Verdict::Error(why) = &r.verdict {
            lines.push(format!("    {why}"));
        }
        for c in r.checks.iter().filter(|c| !c.ok) {
            lines.push(format!("    {}", c.line()));
        }
        for f in &r.findings {
            lines.push(format!("    {}: {}", f.check, f.detail));
        }
        for u in &r.unknown {
            lines.push(format!("    unknown: {u}"));
        }
        if let Some(d) = &r.dir {
            lines.push(format!("    evidence: {}", d.display()));
        }
        if !matches!(r.verdict, Verdict::NotApplicable(_)) {
            lines.push(format!("    rerun: {}", r.rerun));
        }
    }
    lines
}

/// Runs the scenarios `args` selects for its pair (building or fetching both sides
/// first), calling `each` as each finishes; returns the matrix.
pub(crate) async fn execute(
    args: &SkewArgs,
    mut each: impl FnMut(&ScenarioResult),
) -> anyhow::Result<Matrix> {
    let from: Target = args.from.parse()?;
    let to: Target = args.to.parse()?;
    let scenarios = select(&args.scenario).map_err(anyhow::Error::msg)?;
    gauntlet_skew::expect::check_pair(&from, &to).map_err(anyhow::Error::msg)?;
    let mutate = args
        .mutate
        .as_deref()
        .map(str::parse::<Mutation>)
        .transpose()?;
    let cache = Cache::from_env();
    provision(&from, &cache)?;
    provision(&to, &cache)?;
    let from_v = probe_version(&from, &cache)
        .await
        .map_err(anyhow::Error::msg)?;
    let to_v = probe_version(&to, &cache)
        .await
        .map_err(anyhow::Error::msg)?;
    let expect = Expect::new(&from, from_v, &to, to_v).map_err(anyhow::Error::msg)?;
    eprintln!(
        "{from} reports {}, {to} reports {}: held to {:?} rules",
        gauntlet_skew::expect::fmt(from_v),
        gauntlet_skew::expect::fmt(to_v),
        expect.family
    );
    let mut rerun = format!(
        "gauntlet skew --from {from} --to {to} --seed {} --qps {}",
        args.seed, args.qps
    );
    if let Some(m) = &args.mutate {
        rerun.push_str(&format!(" --mutate {m}"));
    }
    if let Some(out) = &args.out {
        rerun.push_str(&format!(" --out {}", out.display()));
    }
    let opts = Options {
        from: from.clone(),
        to: to.clone(),
        cache,
        traffic: TrafficConfig {
            qps: args.qps,
            ..TrafficConfig::default()
        },
        seed: args.seed,
        check_timeout: args.check_timeout,
        mutate,
        out: args.out.clone(),
        keep_all: args.keep_all,
        rerun: rerun.clone(),
        kubernetes_profile: Some(kubernetes_profile(matches!(to, Target::Etcd { .. }))),
    };
    let mut runs = Vec::new();
    for s in &scenarios {
        if s.recorded() {
            for p in &args.profile {
                runs.push((*s, *p));
            }
        } else {
            runs.push((*s, TrafficProfile::Etcd));
        }
    }
    let started = Instant::now();
    let mut results = Vec::new();
    for (s, p) in runs {
        let r = run_scenario(s, p, &expect, &opts).await;
        each(&r);
        results.push(r);
    }
    let matrix = Matrix {
        schema_version: SCHEMA_VERSION,
        from: from.to_string(),
        to: to.to_string(),
        expect,
        seed: args.seed,
        results,
        wall_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        rerun,
    };
    Ok(matrix)
}

impl SkewArgs {
    /// The flags of certify's skew run: `scenarios` (comma-separated globs) under
    /// `profiles` (comma-separated), evidence under `out`.
    pub(crate) fn for_certify(
        from: &Target,
        to: &Target,
        scenarios: &str,
        profiles: &str,
        seed: u64,
        out: PathBuf,
    ) -> anyhow::Result<SkewArgs> {
        Ok(SkewArgs {
            from: from.to_string(),
            to: to.to_string(),
            scenario: scenarios.to_string(),
            profile: profiles
                .split(',')
                .map(crate::chaos::parse_profile)
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)?,
            seed,
            qps: 200,
            check_timeout: Duration::from_secs(60),
            out: Some(out),
            keep_all: false,
            mutate: None,
            list_scenarios: false,
        })
    }
}

/// Checks before anything runs that `from -> to` is a pair etcd's rules cover: both
/// sides provisioned and their reported versions read.
pub(crate) async fn check_versions(
    from: &Target,
    to: &Target,
    cache: &Cache,
) -> anyhow::Result<()> {
    provision(from, cache)?;
    provision(to, cache)?;
    let from_v = probe_version(from, cache)
        .await
        .map_err(anyhow::Error::msg)?;
    let to_v = probe_version(to, cache).await.map_err(anyhow::Error::msg)?;
    Expect::new(from, from_v, to, to_v).map_err(anyhow::Error::msg)?;
    Ok(())
}
