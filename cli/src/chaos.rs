//! `gauntlet chaos`: seeded fault rounds under recorded traffic.
//!
//! Exit codes: 0 when no round found a violation and every round was judged; 1 on a
//! violation; 2 on bad input, a target that could not start, or rounds that could not
//! be judged (unknown).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use gauntlet_chaos::fault::FaultKind;
use gauntlet_chaos::report::Summary;
use gauntlet_chaos::round::{run_round, RoundOptions, RoundResult, RoundVerdict};
use gauntlet_chaos::scenario::{glob_match, plan, TrafficProfile};
use gauntlet_chaos::traffic::TrafficConfig;
use gauntlet_harness::{Cache, Mutation, Target};

/// Flags of `gauntlet chaos`.
#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// Target to launch: reference, etcd@VERSION or exec:PATH.
    #[arg(long, default_value = "reference")]
    target: String,
    /// Members of each round's cluster.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Rounds to run.
    #[arg(long, default_value_t = 10)]
    rounds: u64,
    /// Run only this round of the seeded plan (what a failing round's rerun command uses).
    #[arg(long)]
    round: Option<u64>,
    /// Seed of every random choice; one seed reproduces the run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Faults to choose from (glob over names, e.g. 'process.*'); see --list-faults.
    #[arg(long, default_value = "*")]
    fault: String,
    /// Traffic profiles, comma-separated (etcd, kubernetes); round R uses the
    /// (R mod n)-th, so `etcd,kubernetes` alternates them.
    #[arg(long, default_value = "etcd", value_delimiter = ',', value_parser = parse_profile)]
    profile: Vec<TrafficProfile>,
    /// Traffic before the fault and after it is healed, each (e.g. 1s).
    #[arg(long, default_value = "1s", value_parser = crate::parse_duration)]
    duration: Duration,
    /// Operations per second over all clients.
    #[arg(long, default_value_t = 200)]
    qps: u32,
    /// Deadline of each round's linearizability check.
    #[arg(long, default_value = "60s", value_parser = crate::parse_duration)]
    check_timeout: Duration,
    /// Write summary.json, junit.xml, summary.md and failing rounds' directories here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the directory of every round, passing ones too.
    #[arg(long)]
    keep_all: bool,
    /// Self-test: put a response-mutating proxy (e.g. drop-watch-event) between the
    /// clients and every member; rounds must then fail.
    #[arg(long)]
    mutate: Option<String>,
    /// List the faults and exit.
    #[arg(long)]
    list_faults: bool,
    /// Run a named regression scenario (a real etcd bug's cluster, traffic and fault;
    /// see --list-regressions) instead of choosing faults.
    #[arg(long, conflicts_with_all = ["fault", "members", "profile", "qps"])]
    regression: Option<String>,
    /// List the regression scenarios and exit.
    #[arg(long)]
    list_regressions: bool,
    /// Judge a round directory again (its history.jsonl and watch.json), without any
    /// server; exit 0 when it passes, 1 on a finding (with --target etcd@VERSION, known
    /// issues of that release do not count).
    #[arg(long)]
    revalidate: Option<PathBuf>,
    /// Drive the peer proxies of network faults through this toxiproxy server
    /// (default: gauntlet's own proxies, behind the same API).
    #[arg(long, conflicts_with = "backend")]
    toxiproxy: Option<String>,
    /// Where members run: `process` (loopback ports; network faults through peer
    /// proxies) or `docker` (a container per member on a private network, with its own
    /// address; partitions and network faults as packet filter rules).
    #[arg(long, default_value = "process")]
    backend: gauntlet_harness::Backend,
}

pub(crate) fn parse_profile(s: &str) -> Result<TrafficProfile, String> {
    s.parse()
}

/// Runs the subcommand; returns the exit code.
pub async fn run_chaos(args: &ChaosArgs) -> anyhow::Result<u8> {
    if args.list_faults {
        let width = FaultKind::ALL
            .iter()
            .map(|f| f.name().len())
            .max()
            .unwrap_or(0);
        for f in FaultKind::ALL {
            println!("{:<width$}  {}", f.name(), f.description());
        }
        return Ok(0);
    }
    if args.list_regressions {
        for r in gauntlet_chaos::regression::ALL {
            println!(
                "{}  {}\n    {}\n    affected {}; fixed {}\n    scenario: {} member(s), {}, {} traffic at {} qps; a reproduction shows {}\n    reproduced by gauntlet: {}",
                r.name,
                r.title,
                r.url,
                r.affected,
                r.fixed,
                r.members,
                r.fault,
                match r.profile {
                    TrafficProfile::Etcd => "etcd",
                    TrafficProfile::Kubernetes => "kubernetes",
                },
                r.qps,
                r.expect,
                r.reproduced
            );
        }
        return Ok(0);
    }
    if let Some(name) = &args.regression {
        let r = gauntlet_chaos::regression::find(name).map_err(anyhow::Error::msg)?;
        let a = ChaosArgs {
            target: args.target.clone(),
            members: r.members,
            rounds: args.rounds,
            round: args.round,
            seed: args.seed,
            fault: r.fault.name().to_string(),
            profile: vec![r.profile],
            duration: args.duration,
            qps: r.qps,
            check_timeout: args.check_timeout,
            out: args.out.clone(),
            keep_all: args.keep_all,
            mutate: args.mutate.clone(),
            list_faults: false,
            regression: None,
            list_regressions: false,
            revalidate: args.revalidate.clone(),
            toxiproxy: args.toxiproxy.clone(),
            backend: args.backend,
        };
        eprintln!(
            "regression {}: {} ({}); {} member(s), {}, {} qps",
            r.name, r.title, r.url, r.members, r.fault, r.qps
        );
        return Box::pin(run_chaos(&a)).await;
    }
    if let Some(dir) = &args.revalidate {
        let (history, watches, side_reads) =
            gauntlet_chaos::report::load_round(dir).map_err(anyhow::Error::msg)?;
        let v =
            gauntlet_chaos::validate::validate(&history, &watches, &side_reads, args.check_timeout);
        // With --target etcd@VERSION, findings that are known issues of that release
        // are said so and do not fail the re-judgement.
        let release = match args.target.parse::<Target>() {
            Ok(Target::Etcd { version }) => gauntlet_harness::profile::SemVer::parse(&version),
            _ => None,
        };
        let ledger = gauntlet_chaos::ledger::Ledger::builtin();
        // The round's fault, from its round.json (entries tied to a fault need it).
        let fault: Option<String> = std::fs::read_to_string(dir.join("round.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["spec"]["fault"].as_str().map(str::to_string));
        let mut new_findings = 0;
        for f in &v.findings {
            match release.and_then(|r| ledger.lookup(f, fault.as_deref(), r)) {
                Some(k) => println!(
                    "{}: {} [known etcd issue {}, fixed in {}]",
                    f.check, f.detail, k.url, k.fixed_in
                ),
                None => {
                    new_findings += 1;
                    println!("{}: {}", f.check, f.detail);
                }
            }
        }
        for u in &v.unknown {
            println!("unknown: {u}");
        }
        println!(
            "{} operations, {} findings, {} unknown, validation {} ms",
            history.len(),
            v.findings.len(),
            v.unknown.len(),
            v.validation_ms
        );
        return Ok(if new_findings > 0 {
            1
        } else if !v.unknown.is_empty() {
            2
        } else {
            0
        });
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    // Ctrl-C or SIGTERM drops the round: its cluster's Drop kills the members,
    // unmounts their filesystems and removes every container and network it made.
    let run = execute(args, print_round);
    let (summary, rerun) = tokio::select! {
        r = run => r?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: the round's cluster was torn down");
            return Ok(130);
        }
        _ = term.recv() => {
            eprintln!("terminated: the round's cluster was torn down");
            return Ok(143);
        }
    };
    println!("{}", summary.markdown());
    if let Some(out) = &args.out {
        summary
            .write(out)
            .with_context(|| format!("writing {}", out.display()))?;
        println!(
            "wrote {}/{{summary.json,junit.xml,summary.md}}",
            out.display()
        );
    }
    let code = summary.exit_code();
    if code != 0 {
        eprintln!(
            "{} violation(s), {} unknown, {} not run; rerun with: {rerun}",
            summary.violations, summary.unknown, summary.not_run
        );
    }
    Ok(code)
}

/// One round's lines, as `gauntlet chaos` prints them.
pub(crate) fn round_lines(res: &RoundResult, profile: TrafficProfile) -> Vec<String> {
    let mark = match &res.verdict {
        RoundVerdict::Passed => "ok       ",
        RoundVerdict::Violation => "VIOLATION",
        RoundVerdict::KnownIssue => "known    ",
        RoundVerdict::Unknown => "UNKNOWN  ",
        RoundVerdict::Skipped(_) => "skipped  ",
        RoundVerdict::Error(_) => "ERROR    ",
    };
    let mut lines = vec![format!(
        "round {:>4} {mark} {:<30} {:<10} {} ops, {} watch responses, validation {} ms, round {} ms",
        res.spec.round,
        res.spec.fault.to_string(),
        profile_flag(profile),
        res.operations,
        res.watch_responses,
        res.validation_ms,
        res.wall_ms
    )];
    match &res.verdict {
        RoundVerdict::Violation | RoundVerdict::Unknown | RoundVerdict::KnownIssue => {
            for k in &res.known_issues {
                lines.push(format!(
                    "           known etcd issue: {} ({}, fixed in {})",
                    k.description, k.url, k.fixed_in
                ));
            }
            for f in &res.findings {
                lines.push(format!("           {}: {}", f.check, f.detail));
            }
            for u in &res.unknown {
                lines.push(format!("           unknown: {u}"));
            }
            if let Some(d) = &res.dir {
                lines.push(format!("           evidence: {}", d.display()));
            }
            lines.push(format!("           rerun: {}", res.rerun));
        }
        RoundVerdict::Skipped(w) | RoundVerdict::Error(w) => lines.push(format!("           {w}")),
        RoundVerdict::Passed => {}
    }
    lines
}

fn print_round(res: &RoundResult, profile: TrafficProfile) {
    for l in round_lines(res, profile) {
        eprintln!("{l}");
    }
}

/// Runs the rounds `args` plan (after checking the flags), calling `each` as each
/// round finishes; returns the summary and the command that repeats the run.
pub(crate) async fn execute(
    args: &ChaosArgs,
    mut each: impl FnMut(&RoundResult, TrafficProfile),
) -> anyhow::Result<(Summary, String)> {
    if !(1..=9).contains(&args.members) {
        bail!("--members must be between 1 and 9, got {}", args.members);
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if args.qps == 0 {
        bail!("--qps must be at least 1");
    }
    if args.profile.is_empty() {
        bail!("--profile needs at least one of etcd, kubernetes");
    }
    let target: Target = args.target.parse()?;
    let cache = Cache::from_env();
    crate::ensure_launchable(&target, &cache)?;
    let (supported, left_out) =
        select_faults(&args.fault, args.members, args.backend, &target, &cache).await?;
    for l in &left_out {
        eprintln!("{l}");
    }
    let mutation = args
        .mutate
        .as_deref()
        .map(str::parse::<Mutation>)
        .transpose()?;
    if let Some(r) = args.round {
        if r >= args.rounds {
            bail!(
                "--round {r} is outside the plan of --rounds {}",
                args.rounds
            );
        }
    }
    let mut rerun = format!(
        "gauntlet chaos --target {target} --members {} --rounds {} --seed {} --fault '{}' --profile {} --duration {}ms --qps {}",
        args.members,
        args.rounds,
        args.seed,
        args.fault,
        args.profile
            .iter()
            .map(|p| match p {
                TrafficProfile::Etcd => "etcd",
                TrafficProfile::Kubernetes => "kubernetes",
            })
            .collect::<Vec<_>>()
            .join(","),
        args.duration.as_millis(),
        args.qps
    );
    if let Some(m) = mutation {
        rerun.push_str(&format!(" --mutate {m}"));
    }
    if let Some(t) = &args.toxiproxy {
        rerun.push_str(&format!(" --toxiproxy {t}"));
    }
    if args.backend != gauntlet_harness::Backend::Process {
        rerun.push_str(&format!(" --backend {}", args.backend));
    }
    if let Some(out) = &args.out {
        rerun.push_str(&format!(" --out {}", out.display()));
    }
    let opts = RoundOptions {
        target: target.clone(),
        cache,
        traffic: TrafficConfig {
            qps: args.qps,
            ..TrafficConfig::default()
        },
        before_fault: args.duration,
        after_fault: args.duration,
        check_timeout: args.check_timeout,
        mutation,
        toxiproxy: args.toxiproxy.clone(),
        backend: args.backend,
        etcd_release: match &target {
            Target::Etcd { version } => gauntlet_harness::profile::SemVer::parse(version),
            _ => None,
        },
        ledger: gauntlet_chaos::ledger::Ledger::builtin(),
        out: args.out.clone(),
        keep_all: args.keep_all,
        rerun: rerun.clone(),
    };
    let rounds: Vec<u64> = match args.round {
        Some(r) => vec![r],
        None => (0..args.rounds).collect(),
    };
    let started = Instant::now();
    let mut results = Vec::new();
    for r in rounds {
        let profile = args.profile[usize::try_from(r).unwrap_or(0) % args.profile.len()];
        let spec = plan(args.seed, r, args.members, &supported, profile);
        let res = run_round(spec, &opts).await;
        each(&res, profile);
        results.push(res);
    }
    let summary = Summary::new(
        &format!("{target} x{}", args.members),
        args.seed,
        results,
        started.elapsed(),
    );
    Ok((summary, rerun))
}

/// The faults matching `pattern` that a cluster of `members` of `target` on `backend`
/// can take, in [`FaultKind::ALL`] order, and one line for each group left out (power
/// loss on docker, failpoints the target was not built with). An error when none is
/// left.
pub(crate) async fn select_faults(
    pattern: &str,
    members: usize,
    backend: gauntlet_harness::Backend,
    target: &Target,
    cache: &Cache,
) -> anyhow::Result<(Vec<FaultKind>, Vec<String>)> {
    let mut left_out = Vec::new();
    let faults: Vec<FaultKind> = FaultKind::ALL
        .into_iter()
        .filter(|f| glob_match(pattern, f.name()))
        .collect();
    if faults.is_empty() {
        bail!("--fault {pattern:?} matches no fault (see --list-faults)");
    }
    let mut supported: Vec<FaultKind> = faults
        .iter()
        .copied()
        .filter(|f| f.supported(members).is_ok())
        .collect();
    if supported.is_empty() {
        bail!(
            "no fault matching {pattern:?} works on {members} member(s): {}",
            faults
                .iter()
                .filter_map(|f| f.supported(members).err())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    // Power-loss and disk faults need the filesystem mounted on the host: on the docker
    // backend they are left out of the plan, with one line, as failpoints are below.
    if backend == gauntlet_harness::Backend::Docker {
        let before = supported.len();
        supported.retain(|f| !f.needs_power_fs());
        if supported.len() < before {
            left_out.push(format!(
                "{} power-loss/disk fault(s) left out: they need the process backend",
                before - supported.len()
            ));
        }
        if supported.is_empty() {
            bail!("no fault matching {pattern:?} runs on the docker backend");
        }
    }
    // Failpoint faults apply only to targets built with gofail: ask the target once, and
    // leave out those it cannot take (the plan then stays the same for every rerun).
    if supported.iter().any(|f| f.family() == "failpoint") {
        let have = gauntlet_chaos::fault::failpoints_of(target, cache)
            .await
            .map_err(anyhow::Error::msg)?;
        let before = supported.len();
        supported.retain(|f| match gauntlet_chaos::fault::failpoint_name(*f) {
            None => true,
            Some(name) => have.as_ref().is_some_and(|h| h.iter().any(|x| x == name)),
        });
        if supported.len() < before {
            left_out.push(format!(
                "{} failpoint fault(s) left out: {}",
                before - supported.len(),
                match &have {
                    None =>
                        format!("{target} opens no gofail endpoint (not built with failpoints)"),
                    Some(h) => format!("{target} lacks them (it has {})", h.join(", ")),
                }
            ));
        }
        if supported.is_empty() {
            bail!("no fault matching {pattern:?} applies to {target}");
        }
    }
    Ok((supported, left_out))
}

/// The name of a traffic profile on the command line.
pub(crate) fn profile_flag(p: TrafficProfile) -> &'static str {
    match p {
        TrafficProfile::Etcd => "etcd",
        TrafficProfile::Kubernetes => "kubernetes",
    }
}

impl ChaosArgs {
    /// The flags of one certify chaos run: `rounds` rounds of the faults matching
    /// `fault`, alternating the etcd and Kubernetes traffic profiles, failing rounds'
    /// evidence under `out`.
    pub(crate) fn for_certify(
        target: &Target,
        members: usize,
        rounds: u64,
        seed: u64,
        fault: &str,
        duration: Duration,
        out: PathBuf,
    ) -> ChaosArgs {
        ChaosArgs {
            target: target.to_string(),
            members,
            rounds,
            round: None,
            seed,
            fault: fault.to_string(),
            profile: vec![TrafficProfile::Etcd, TrafficProfile::Kubernetes],
            duration,
            qps: 200,
            check_timeout: Duration::from_secs(60),
            out: Some(out),
            keep_all: false,
            mutate: None,
            list_faults: false,
            regression: None,
            list_regressions: false,
            revalidate: None,
            toxiproxy: None,
            backend: gauntlet_harness::Backend::Process,
        }
    }
}
