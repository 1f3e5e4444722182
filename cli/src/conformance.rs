//! `gauntlet conformance`: the conformance catalogue against a target.
//!
//! Exit codes: 0 when every case passed, was a known issue or was not run; 1 when any
//! case failed anew; 2 for bad input or a target that could not be started.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use gauntlet_conformance::{
    catalogue, report, run, select, Ledger, Outcome, Profile, RunOptions, Under,
    DEFAULT_CONCURRENCY,
};
use gauntlet_harness::{Cache, Mutation, Target};

/// Flags of `gauntlet conformance`.
#[derive(Args, Debug)]
pub struct ConformanceArgs {
    /// Target to launch: reference, etcd@VERSION or exec:PATH. Default: a `reference`
    /// cluster, unless --endpoints is given.
    #[arg(long)]
    target: Option<String>,
    /// Members of the launched cluster.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Which behaviour to hold the target to: etcd-3.4, etcd-3.5 or kubernetes.
    #[arg(long, value_parser = parse_profile)]
    profile: Option<Profile>,
    /// Only cases whose id contains this.
    #[arg(long)]
    filter: Option<String>,
    /// List the selected cases and exit.
    #[arg(long)]
    list: bool,
    /// Write junit.xml, results.json and summary.md here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Self-test: put a response-mutating proxy with this mutation in front of the
    /// shared cluster (e.g. lie-count); the run must then fail. See --list-mutations.
    #[arg(long)]
    mutate: Option<String>,
    /// List the proxy's mutations and exit.
    #[arg(long)]
    list_mutations: bool,
    /// Shared cases in flight at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY)]
    concurrency: usize,
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    s.parse()
}

/// Runs the subcommand; returns the process exit code.
pub async fn run_conformance(
    args: &ConformanceArgs,
    conn: &crate::ConnFlags,
) -> anyhow::Result<u8> {
    if args.list_mutations {
        for m in Mutation::ALL {
            println!("{m}");
        }
        return Ok(0);
    }
    let mutation = args
        .mutate
        .as_deref()
        .map(str::parse::<Mutation>)
        .transpose()?;
    let opts = RunOptions {
        concurrency: args.concurrency,
        filter: args.filter.clone(),
        profile: args.profile,
        use_ledger: true,
        mutation,
    };
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let cases = catalogue();
    if args.list {
        for c in select(&cases, &opts) {
            println!(
                "{:<55} {:<12} {:<16} {}",
                c.id,
                c.service.name(),
                c.versions.to_string(),
                c.guarantee
            );
        }
        return Ok(0);
    }
    if select(&cases, &opts).is_empty() {
        bail!(
            "no case matches --filter {:?}",
            args.filter.as_deref().unwrap_or("")
        );
    }
    let (under, use_ledger) = match (&args.target, conn.endpoints.is_empty()) {
        (Some(_), false) => bail!("give either --target or --endpoints, not both"),
        (None, false) => (Under::External(conn.client_config()?), true),
        (t, true) => {
            let target: Target = t.as_deref().unwrap_or("reference").parse()?;
            let cache = Cache::from_env();
            if let Target::Etcd { .. } = &target {
                if cache.binary(&target.to_string(), "etcd").is_err() {
                    eprintln!("{target} is not cached yet: fetching it first");
                    crate::fetch(&[target.to_string()])?;
                }
            }
            target.server_binary(&cache)?;
            let ledger = matches!(target, Target::Etcd { .. });
            (
                Under::Launch {
                    target,
                    members: args.members,
                    cache,
                },
                ledger,
            )
        }
    };
    let opts = RunOptions { use_ledger, ..opts };
    let rerun = rerun_command(&under, args, mutation)?;
    let total = select(&cases, &opts).len();
    eprintln!("running {total} conformance cases ...");
    let mut done = 0usize;
    let report = run(&cases, &under, &opts, &Ledger::builtin(), |r| {
        done += 1;
        let mark = match &r.outcome {
            Outcome::Passed => "ok     ".to_string(),
            Outcome::Failed { .. } => "FAIL   ".to_string(),
            Outcome::KnownIssue { .. } => "known  ".to_string(),
            Outcome::NotRun { .. } => "not run".to_string(),
        };
        eprintln!("[{done:>3}/{total}] {mark} {} ({} ms)", r.id, r.duration_ms);
        if let Outcome::Failed { failure } = &r.outcome {
            eprintln!("          {failure}");
            eprintln!("  rerun: {rerun} --filter {}", r.id);
        }
        let _ = std::io::stderr().flush();
    })
    .await
    .context("conformance run")?;
    println!("{}", report::summary(&report));
    if let Some(dir) = &args.out {
        report::write_all(&report, dir).with_context(|| format!("writing {}", dir.display()))?;
        println!(
            "wrote {}/{{junit.xml,results.json,summary.md}}",
            dir.display()
        );
    }
    if report.new_failures() > 0 {
        let mut rerun = rerun.clone();
        if let Some(f) = &args.filter {
            rerun.push_str(&format!(" --filter {f}"));
        }
        eprintln!(
            "{} new failure(s); rerun with: {rerun}",
            report.new_failures()
        );
        return Ok(1);
    }
    Ok(0)
}

/// The command that repeats this run (without --filter and --out).
fn rerun_command(
    under: &Under,
    args: &ConformanceArgs,
    mutation: Option<Mutation>,
) -> anyhow::Result<String> {
    let mut rerun = String::from("gauntlet conformance");
    match under {
        Under::Launch {
            target, members, ..
        } => rerun.push_str(&format!(" --target {target} --members {members}")),
        Under::External(cfg) => {
            rerun.push_str(&format!(" --endpoints {}", cfg.endpoints.join(",")))
        }
    }
    if let Some(p) = args.profile {
        rerun.push_str(&format!(
            " --profile {}",
            serde_json::to_value(p)?.as_str().unwrap_or_default()
        ));
    }
    if let Some(m) = mutation {
        rerun.push_str(&format!(" --mutate {m}"));
    }
    Ok(rerun)
}
