//! `gauntlet conformance`: the conformance catalogue against a target.
//!
//! Exit codes: 0 when the cases that apply ran and none failed anew (known issues and
//! cases the profile or `--endpoints` rule out are fine); 1 when a case failed anew or
//! the target died; 2 for bad input, a target that could not be started, or a run
//! that tested nothing (no case ran, or cases could not run because the target was
//! down).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use gauntlet_conformance::{
    catalogue, report, run, select, Event, Ledger, Outcome, Profile, RunOptions, Under, Verdict,
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
    /// Print every case (default: failures, known issues and crashes only, under a
    /// progress bar on a terminal).
    #[arg(short, long)]
    verbose: bool,
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
            crate::ensure_launchable(&target, &cache)?;
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
    let mut p = crate::progress::Progress::new(total as u64, args.verbose);
    p.stage(format!("running {total} conformance cases ..."));
    let mut done = 0usize;
    let report = run(
        &cases,
        &under,
        &opts,
        &Ledger::builtin(),
        |event| match event {
            // One line: the notice when the version was not an etcd one, else the profile.
            Event::Holding(h) => match h.notice() {
                Some(notice) => p.line(notice),
                None => p.line(format!(
                    "server reports version `{}`: holding it to {} at {}",
                    h.reported, h.profile, h.judged_at
                )),
            },
            Event::Note(n) => p.line(n.to_string()),
            Event::Crash(c) => {
                p.line(format!("TARGET DIED: {}", report::crash_text(c).trim_end()));
                for id in c.suspects() {
                    p.line(format!("  rerun alone: {rerun} --filter {id}"));
                }
            }
            Event::Case(r) => {
                done += 1;
                p.inc(1);
                let mark = match &r.outcome {
                    Outcome::Passed => "ok     ",
                    Outcome::Failed { .. } => "FAIL   ",
                    Outcome::KnownIssue { .. } => "known  ",
                    Outcome::NotRun { .. } => "not run",
                    Outcome::KilledTarget { .. } => "KILLED ",
                    Outcome::Unavailable { .. } => "unavail",
                };
                let line = format!("[{done:>3}/{total}] {mark} {} ({} ms)", r.id, r.duration_ms);
                match &r.outcome {
                    Outcome::Failed { failure } | Outcome::KilledTarget { failure, .. } => {
                        p.line(line);
                        for l in failure.to_string().lines() {
                            p.line(format!("          {l}"));
                        }
                        p.line(format!("  rerun: {rerun} --filter {}", r.id));
                    }
                    Outcome::KnownIssue { .. } | Outcome::Unavailable { .. } => p.line(line),
                    Outcome::Passed | Outcome::NotRun { .. } => p.detail(line),
                }
            }
        },
    )
    .await
    .context("conformance run")?;
    drop(p.finish());
    let _ = std::io::stderr().flush();
    println!("{}", report::summary(&report));
    if let Some(dir) = &args.out {
        report::write_all(&report, dir).with_context(|| format!("writing {}", dir.display()))?;
        println!(
            "wrote {}/{{junit.xml,results.json,summary.md}}",
            dir.display()
        );
    }
    let mut rerun = rerun.clone();
    if let Some(f) = &args.filter {
        rerun.push_str(&format!(" --filter {f}"));
    }
    match report.verdict() {
        Verdict::Passed => Ok(0),
        Verdict::Failed {
            new_failures,
            crashes,
        } => {
            eprintln!(
                "{new_failures} new failure(s), {crashes} crash(es) of the target; rerun with: {rerun}"
            );
            Ok(1)
        }
        Verdict::Incomplete { reason } => {
            eprintln!("gauntlet: nothing failed, but the run is incomplete: {reason}; rerun with: {rerun}");
            Ok(2)
        }
    }
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
