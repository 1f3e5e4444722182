//! `gauntlet certify`: every suite that applies to a target, one report directory
//! and a release recommendation.
//!
//! The areas run in order, each bounded in time: conformance (the whole catalogue,
//! profile from the server's version), chaos (every fault family the target can
//! take, a few seeded rounds each), skew (with `--from/--to`), and benchmarks (put,
//! range, watch latency, and the Kubernetes profile with its SLO verdict). Each area
//! launches its own cluster and tears it down. With `--endpoints` only what needs no
//! launcher runs (conformance without the cases that need their own cluster, and
//! the benchmarks).
//!
//! Exit codes: 0 recommended (with or without caveats), 1 not recommended or a
//! regression against `--baseline`, 2 bad input or a run that could not be judged,
//! 130/143 on Ctrl-C/SIGTERM (after tearing everything down).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, Parser};
use gauntlet_bench::{BenchOpts, Workload};
use gauntlet_conformance::{catalogue, select, Event, Ledger, Outcome, RunOptions, Under};
use gauntlet_harness::{Cache, Target};
use gauntlet_reports::model::{
    Answer, Area, AreaVerdict, Level, Report, Status, TargetInfo, SCHEMA_VERSION,
};
use gauntlet_reports::{convert, gate, verdict};

use crate::progress::Progress;

/// Flags of `gauntlet certify`.
#[derive(Args, Debug)]
pub struct CertifyArgs {
    /// Target to launch: reference, reference@REV, etcd@VERSION or exec:PATH. Default:
    /// a `reference` cluster, unless --endpoints is given.
    #[arg(long)]
    target: Option<String>,
    /// Members of launched clusters.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// The old version of the skew part (same forms as --target); needs --to.
    #[arg(long, requires = "to")]
    from: Option<String>,
    /// The new version of the skew part; needs --from.
    #[arg(long, requires = "from")]
    to: Option<String>,
    /// quick (the README default, under 10 minutes on 2 cores) or full (the long
    /// chaos, skew and benchmark runs).
    #[arg(long, default_value = "quick")]
    level: Level,
    /// Areas to run, comma-separated (conformance, chaos, skew, bench).
    #[arg(long, value_delimiter = ',', default_value = "conformance,chaos,skew,bench", value_parser = parse_area)]
    areas: Vec<Area>,
    /// Seed of every randomized part.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Report directory (default: reports/runs/certify-<target>-<time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// A previous run's report.json: exit 1 when anything got worse.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Allowed benchmark throughput drop and p99 rise against --baseline, percent.
    #[arg(long, default_value_t = 10.0)]
    tolerance: f64,
    /// Print every case, round and scenario (default: failures only).
    #[arg(short, long)]
    verbose: bool,
    /// Render a report directory again from its report.json, with the current
    /// advisories and verdict rules (nothing runs; the exit code is the report's).
    #[arg(long, conflicts_with_all = ["target", "from", "to", "baseline", "out"])]
    render: Option<PathBuf>,
}

/// `--render DIR`: the recommendation drawn again and every file rewritten.
fn render_again(dir: &Path) -> anyhow::Result<u8> {
    let path = dir.join("report.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut report =
        Report::from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // Areas judged from the report's own details are judged again by today's rules.
    let mut again = Vec::new();
    if let Some(c) = report.chaos.take() {
        let (c, v) = convert::chaos(c.rounds, c.members, c.left_out, c.wall_ms);
        report.chaos = Some(c);
        again.push(v);
    }
    if let Some(b) = report.bench.take() {
        let (b, v) = convert::bench(b.workloads, b.wall_ms);
        report.bench = Some(b);
        again.push(v);
    }
    for v in again {
        if let Some(a) = report.areas.iter_mut().find(|a| a.area == v.area) {
            *a = v;
        }
    }
    report.recommendation = verdict::recommend(&report);
    // The run's log is kept from the previous rendering, without its two closing lines.
    let mut log: Vec<String> = std::fs::read_to_string(dir.join("submission/e2e.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    log.truncate(log.len().saturating_sub(2));
    gauntlet_reports::write_dir(&report, &log, dir)
        .with_context(|| format!("writing {}", dir.display()))?;
    println!(
        "{}: {}",
        report.recommendation.level.label().to_uppercase(),
        report.recommendation.summary
    );
    Ok(match report.recommendation.level {
        Answer::NotRecommended => 1,
        _ => 0,
    })
}

fn parse_area(s: &str) -> Result<Area, String> {
    Area::ALL
        .into_iter()
        .find(|a| a.name() == s)
        .ok_or_else(|| format!("`{s}` is not an area: conformance, chaos, skew or bench"))
}

/// How much of each area a level runs.
struct Plan {
    chaos_rounds_per_family: u64,
    chaos_duration: Duration,
    skew_scenarios: &'static str,
    skew_profiles: &'static str,
    bench: Vec<(&'static str, Vec<&'static str>)>,
}

impl Plan {
    fn of(level: Level) -> Plan {
        match level {
            Level::Quick => Plan {
                chaos_rounds_per_family: 2,
                chaos_duration: Duration::from_secs(1),
                skew_scenarios: "rolling-upgrade.followers-first,mixed.minority-old,rollback.*,refusal.*,downgrade.api,client-skew.etcdctl",
                skew_profiles: "etcd",
                bench: vec![
                    ("put", vec!["--clients", "16", "--conns", "4", "--timeout", "60s", "put", "--total", "4000", "--key-space-size", "4000", "--val-size", "256"]),
                    ("range", vec!["--clients", "16", "--conns", "4", "--timeout", "60s", "range", "certify-key", "--total", "4000"]),
                    ("watch-latency", vec!["--timeout", "60s", "watch-latency", "--put-total", "300", "--put-rate", "100"]),
                    ("kube", vec!["--timeout", "90s", "kube", "--nodes", "100", "--duration", "20s"]),
                ],
            },
            Level::Full => Plan {
                chaos_rounds_per_family: 8,
                chaos_duration: Duration::from_secs(2),
                skew_scenarios: "*",
                skew_profiles: "etcd,kubernetes",
                bench: vec![
                    ("put", vec!["--clients", "100", "--conns", "10", "--timeout", "5m", "put", "--total", "100000", "--key-space-size", "100000", "--val-size", "256"]),
                    ("range", vec!["--clients", "100", "--conns", "10", "--timeout", "5m", "range", "certify-key", "--total", "100000"]),
                    ("watch-latency", vec!["--timeout", "5m", "watch-latency"]),
                    ("kube", vec!["--timeout", "5m", "kube", "--nodes", "1000", "--duration", "60s"]),
                ],
            },
        }
    }
}

/// The chaos fault families, in report order.
const FAMILIES: [&str; 5] = [
    "process",
    "maintenance",
    "network",
    "failpoint",
    "power-loss",
];

#[derive(Parser, Debug)]
#[command(name = "bench")]
struct BenchLine {
    #[command(flatten)]
    opts: BenchOpts,
    #[command(subcommand)]
    workload: Workload,
}

fn now_unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs `gauntlet certify`; returns the exit code.
pub async fn run_certify(args: &CertifyArgs, conn: &crate::ConnFlags) -> anyhow::Result<u8> {
    if let Some(dir) = &args.render {
        return render_again(dir);
    }
    if !(1..=9).contains(&args.members) {
        bail!("--members must be between 1 and 9, got {}", args.members);
    }
    if !(args.tolerance.is_finite() && args.tolerance >= 0.0) {
        bail!("--tolerance must be a non-negative percentage");
    }
    if args.areas.is_empty() {
        bail!("--areas needs at least one of conformance, chaos, skew, bench");
    }
    let baseline = match &args.baseline {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading --baseline {}", p.display()))?;
            Some(
                Report::from_json(&text)
                    .map_err(|e| anyhow::anyhow!("--baseline {}: {e}", p.display()))?,
            )
        }
        None => None,
    };
    let external = !conn.endpoints.is_empty();
    if external && args.target.is_some() {
        bail!("give either --target or --endpoints, not both");
    }
    let target: Option<Target> = if external {
        None
    } else {
        Some(args.target.as_deref().unwrap_or("reference").parse()?)
    };
    let skew_pair: Option<(Target, Target)> = match (&args.from, &args.to) {
        (Some(f), Some(t)) => {
            let (f, t): (Target, Target) = (f.parse()?, t.parse()?);
            gauntlet_skew::expect::check_pair(&f, &t).map_err(anyhow::Error::msg)?;
            Some((f, t))
        }
        _ => None,
    };
    let cache = Cache::from_env();
    if let Some(t) = &target {
        crate::ensure_launchable(t, &cache)?;
    }
    if let (Some((f, t)), true) = (&skew_pair, args.areas.contains(&Area::Skew)) {
        crate::skew::check_versions(f, t, &cache).await?;
    }
    let label = match &target {
        Some(t) => format!("{t} x{}", args.members),
        None => conn.endpoints.join(","),
    };
    let started_unix_s = now_unix_s();
    let out = match &args.out {
        Some(o) => o.clone(),
        None => {
            PathBuf::from("reports/runs").join(format!("certify-{}-{started_unix_s}", slug(&label)))
        }
    };
    if out.join("report.json").exists() {
        bail!(
            "{} already holds a report: give another --out (nothing was overwritten)",
            out.display()
        );
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut command = format!(
        "gauntlet certify --level {} --seed {}",
        args.level, args.seed
    );
    match &target {
        Some(t) => command.push_str(&format!(" --target {t} --members {}", args.members)),
        None => command.push_str(&format!(" --endpoints {}", conn.endpoints.join(","))),
    }
    if let Some((f, t)) = &skew_pair {
        command.push_str(&format!(" --from {f} --to {t}"));
    }
    if args.areas.len() < Area::ALL.len() {
        command.push_str(&format!(
            " --areas {}",
            args.areas
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let ctx = Ctx {
        args,
        conn,
        target,
        skew_pair,
        cache,
        out: out.clone(),
        plan: Plan::of(args.level),
    };
    let started = Instant::now();
    // Ctrl-C or SIGTERM drops the running area: its cluster's Drop kills the members.
    let (mut report, log) = tokio::select! {
        r = ctx.run(label, command, started_unix_s) => r?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: the running area's cluster was torn down; partial results are not written");
            return Ok(130);
        }
        _ = term.recv() => {
            eprintln!("terminated: the running area's cluster was torn down");
            return Ok(143);
        }
    };
    report.wall_ms = ms(started.elapsed());
    gauntlet_reports::write_dir(&report, &log, &out)
        .with_context(|| format!("writing the report into {}", out.display()))?;
    let rec = &report.recommendation;
    println!();
    for a in &report.areas {
        println!(
            "{:<12} {:<8} {}",
            a.area.name(),
            a.status.label(),
            a.summary
        );
    }
    println!("\n{}: {}", rec.level.label().to_uppercase(), rec.summary);
    for x in rec.reasons.iter().take(12) {
        println!(
            "  - [{:?}, {}] {}",
            x.severity,
            match x.source {
                gauntlet_reports::model::Source::Observed => "observed",
                gauntlet_reports::model::Source::Advisory => "advisory",
            },
            x.title
        );
    }
    if rec.reasons.len() > 12 {
        println!("  - ... {} more in the report", rec.reasons.len() - 12);
    }
    println!(
        "report: {}/index.html (also report.md, report.json, junit.xml, submission/)",
        out.display()
    );
    let mut code = match rec.level {
        Answer::NotRecommended => 1,
        _ if report.areas.iter().any(|a| a.status == Status::Error) => 2,
        _ => 0,
    };
    if let Some(b) = &baseline {
        let g = gate::compare(b, &report, args.tolerance);
        for n in &g.notes {
            println!("baseline note: {n}");
        }
        if g.pass() {
            println!(
                "baseline: nothing got worse (tolerance {}%)",
                args.tolerance
            );
        } else {
            for r in &g.regressions {
                println!("REGRESSION: {r}");
            }
            eprintln!(
                "{} regression(s) against {}",
                g.regressions.len(),
                args.baseline.as_deref().unwrap_or(Path::new("")).display()
            );
            code = 1;
        }
    }
    Ok(code)
}

struct Ctx<'a> {
    args: &'a CertifyArgs,
    conn: &'a crate::ConnFlags,
    target: Option<Target>,
    skew_pair: Option<(Target, Target)>,
    cache: Cache,
    out: PathBuf,
    plan: Plan,
}

impl Ctx<'_> {
    fn wants(&self, a: Area) -> bool {
        self.args.areas.contains(&a)
    }

    async fn run(
        &self,
        label: String,
        command: String,
        started_unix_s: u64,
    ) -> anyhow::Result<(Report, Vec<String>)> {
        let cases = catalogue();
        let opts = RunOptions {
            use_ledger: true,
            ..RunOptions::default()
        };
        let n_cases = select(&cases, &opts).len() as u64;
        let mut total = 0;
        if self.wants(Area::Conformance) {
            total += n_cases;
        }
        if self.wants(Area::Chaos) && self.target.is_some() {
            total += self.plan.chaos_rounds_per_family * FAMILIES.len() as u64;
        }
        if self.wants(Area::Bench) {
            total += self.plan.bench.len() as u64;
        }
        let mut p = Progress::new(total, self.args.verbose);
        p.line(format!(
            "gauntlet certify {label}: level {}, report in {}",
            self.args.level,
            self.out.display()
        ));
        let mut areas: Vec<AreaVerdict> = Vec::new();
        let not_run = |area: Area, why: &str| AreaVerdict {
            area,
            status: Status::NotRun,
            summary: why.to_string(),
            wall_ms: 0,
        };
        let mut server_version = String::new();
        let mut conformance = None;
        if self.wants(Area::Conformance) {
            let (c, v, version) = self.conformance(&mut p, &cases, &opts).await?;
            server_version = version;
            conformance = Some(c);
            areas.push(v);
        } else {
            areas.push(not_run(Area::Conformance, "not selected (--areas)"));
        }
        if server_version.is_empty() {
            server_version = self.version().await?;
        }
        let mut chaos = None;
        match (&self.target, self.wants(Area::Chaos)) {
            (Some(t), true) => {
                let (c, v) = self.chaos(&mut p, t).await?;
                chaos = Some(c);
                areas.push(v);
            }
            (None, true) => areas.push(not_run(
                Area::Chaos,
                "needs a cluster gauntlet launches (the run is against --endpoints)",
            )),
            (_, false) => areas.push(not_run(Area::Chaos, "not selected (--areas)")),
        }
        let mut skew = None;
        match (&self.skew_pair, self.wants(Area::Skew)) {
            (Some(pair), true) => {
                let (s, v) = self.skew(&mut p, pair).await?;
                skew = Some(s);
                areas.push(v);
            }
            (None, true) => areas.push(not_run(
                Area::Skew,
                "needs two versions (--from OLD --to NEW)",
            )),
            (_, false) => areas.push(not_run(Area::Skew, "not selected (--areas)")),
        }
        let mut bench = None;
        if self.wants(Area::Bench) {
            let (b, v) = self.bench(&mut p).await?;
            bench = Some(b);
            areas.push(v);
        } else {
            areas.push(not_run(Area::Bench, "not selected (--areas)"));
        }
        let etcd_release = match &self.target {
            Some(Target::Etcd { version }) => Some(version.clone()),
            _ => None,
        };
        let mut report = Report {
            schema_version: SCHEMA_VERSION,
            gauntlet_version: env!("CARGO_PKG_VERSION").to_string(),
            started_unix_s,
            wall_ms: 0,
            level: self.args.level,
            seed: self.args.seed,
            target: TargetInfo {
                label,
                target: self.target.as_ref().map(ToString::to_string),
                members: if self.target.is_some() {
                    self.args.members
                } else {
                    0
                },
                server_version,
                etcd_release,
                skew_pair: self
                    .skew_pair
                    .as_ref()
                    .map(|(f, t)| (f.to_string(), t.to_string())),
            },
            command,
            recommendation: gauntlet_reports::model::Recommendation {
                level: Answer::Recommended,
                summary: String::new(),
                upgrade_to: None,
                reasons: Vec::new(),
            },
            areas,
            conformance,
            chaos,
            skew,
            bench,
        };
        report.recommendation = verdict::recommend(&report);
        Ok((report, p.finish()))
    }

    /// The reported server version when conformance did not run.
    async fn version(&self) -> anyhow::Result<String> {
        match &self.target {
            Some(t) => Ok(gauntlet_skew::run::probe_version(t, &self.cache)
                .await
                .map_err(anyhow::Error::msg)?
                .to_string()),
            None => {
                let client = gauntlet_harness::Client::connect(self.conn.client_config()?).await?;
                let s = client
                    .status(gauntlet_api::etcdserverpb::StatusRequest {})
                    .await
                    .context("reading the server version (Status)")?;
                Ok(s.version)
            }
        }
    }

    async fn conformance(
        &self,
        p: &mut Progress,
        cases: &[gauntlet_conformance::Case],
        opts: &RunOptions,
    ) -> anyhow::Result<(gauntlet_reports::model::Conformance, AreaVerdict, String)> {
        let (under, rerun) = match &self.target {
            Some(t) => (
                Under::Launch {
                    target: t.clone(),
                    members: self.args.members,
                    cache: self.cache.clone(),
                },
                format!(
                    "gauntlet conformance --target {t} --members {}",
                    self.args.members
                ),
            ),
            None => (
                Under::External(self.conn.client_config()?),
                format!(
                    "gauntlet conformance --endpoints {}",
                    self.conn.endpoints.join(",")
                ),
            ),
        };
        p.stage(format!("conformance: {} cases", select(cases, opts).len()));
        let report =
            gauntlet_conformance::run(
                cases,
                &under,
                opts,
                &Ledger::builtin(),
                |event| match event {
                    Event::Holding(h) => p.line(match h.notice() {
                        Some(n) => format!("conformance: {n}"),
                        None => format!(
                            "conformance: server reports `{}`: held to {}",
                            h.reported, h.profile
                        ),
                    }),
                    Event::Note(n) => p.detail(format!("conformance: {n}")),
                    Event::Crash(c) => p.line(format!(
                        "conformance: TARGET DIED: {}",
                        gauntlet_conformance::report::crash_text(c).trim_end()
                    )),
                    Event::Case(r) => {
                        p.inc(1);
                        match &r.outcome {
                            Outcome::Failed { failure } | Outcome::KilledTarget { failure, .. } => {
                                p.line(format!("FAIL    {} ({} ms)", r.id, r.duration_ms));
                                for l in failure.to_string().lines() {
                                    p.line(format!("        {l}"));
                                }
                                p.line(format!("        rerun: {rerun} --filter {}", r.id));
                            }
                            Outcome::KnownIssue { issue, .. } => p.detail(format!(
                                "known   {} ({}, fixed in {})",
                                r.id, issue.url, issue.fixed_in
                            )),
                            Outcome::Passed => {
                                p.detail(format!("ok      {} ({} ms)", r.id, r.duration_ms))
                            }
                            Outcome::NotRun { reason, .. } => {
                                p.detail(format!("not run {}: {reason}", r.id))
                            }
                            Outcome::Unavailable { reason, .. } => {
                                p.line(format!("unavail {}: {reason}", r.id))
                            }
                        }
                    }
                },
            )
            .await
            .context("conformance run")?;
        let dir = self.out.join("conformance");
        gauntlet_conformance::report::write_all(&report, &dir)
            .with_context(|| format!("writing {}", dir.display()))?;
        let (c, v) = convert::conformance(&report, &rerun);
        p.line(format!("conformance: {}: {}", v.status.label(), v.summary));
        Ok((c, v, report.server_version.clone()))
    }

    async fn chaos(
        &self,
        p: &mut Progress,
        target: &Target,
    ) -> anyhow::Result<(gauntlet_reports::model::Chaos, AreaVerdict)> {
        let started = Instant::now();
        let mut rows = Vec::new();
        let mut left_out = Vec::new();
        let n = self.plan.chaos_rounds_per_family;
        for family in FAMILIES {
            let pattern = format!("{family}.*");
            let (faults, notes) = match crate::chaos::select_faults(
                &pattern,
                self.args.members,
                gauntlet_harness::Backend::Process,
                target,
                &self.cache,
            )
            .await
            {
                Ok(x) => x,
                Err(e) => {
                    p.line(format!("chaos {family}: left out: {e}"));
                    left_out.push(format!("{family}: {e}"));
                    p.inc(n);
                    continue;
                }
            };
            for l in notes {
                p.detail(format!("chaos {family}: {l}"));
                left_out.push(format!("{family}: {l}"));
            }
            p.stage(format!(
                "chaos {family}: {n} rounds over {} faults",
                faults.len()
            ));
            let chaos_args = crate::chaos::ChaosArgs::for_certify(
                target,
                self.args.members,
                n,
                self.args.seed,
                &pattern,
                self.plan.chaos_duration,
                self.out.join("chaos").join(family),
            );
            let (summary, _) = crate::chaos::execute(&chaos_args, |res, profile| {
                p.inc(1);
                let lines = crate::chaos::round_lines(res, profile);
                let bad = !matches!(res.verdict, gauntlet_chaos::round::RoundVerdict::Passed);
                for l in lines {
                    if bad {
                        p.line(format!("chaos {family} {l}"));
                    } else {
                        p.detail(format!("chaos {family} {l}"));
                    }
                }
            })
            .await?;
            let dir = self.out.join("chaos").join(family);
            summary
                .write(&dir)
                .with_context(|| format!("writing {}", dir.display()))?;
            for res in &summary.results {
                rows.push(convert::round(
                    res,
                    crate::chaos::profile_flag(res.spec.profile),
                    &self.out,
                ));
            }
        }
        let (c, v) = convert::chaos(rows, self.args.members, left_out, ms(started.elapsed()));
        p.line(format!("chaos: {}: {}", v.status.label(), v.summary));
        Ok((c, v))
    }

    async fn skew(
        &self,
        p: &mut Progress,
        (from, to): &(Target, Target),
    ) -> anyhow::Result<(gauntlet_reports::model::Skew, AreaVerdict)> {
        p.stage(format!("skew {from} -> {to}: {}", self.plan.skew_scenarios));
        let skew_args = crate::skew::SkewArgs::for_certify(
            from,
            to,
            self.plan.skew_scenarios,
            self.plan.skew_profiles,
            self.args.seed,
            self.out.join("skew"),
        )?;
        let matrix = crate::skew::execute(&skew_args, |r| {
            let bad = r.verdict != gauntlet_skew::run::Verdict::Passed;
            for l in crate::skew::result_lines(r) {
                if bad {
                    p.line(format!("skew {l}"));
                } else {
                    p.detail(format!("skew {l}"));
                }
            }
        })
        .await?;
        matrix
            .write(&self.out.join("skew"))
            .context("writing the skew matrix")?;
        let (s, v) = convert::skew(&matrix, &self.out);
        p.line(format!("skew: {}: {}", v.status.label(), v.summary));
        Ok((s, v))
    }

    async fn bench(
        &self,
        p: &mut Progress,
    ) -> anyhow::Result<(gauntlet_reports::model::Bench, AreaVerdict)> {
        let started = Instant::now();
        let mut rows = Vec::new();
        for (name, words) in &self.plan.bench {
            p.stage(format!("bench {name}"));
            let mut argv = vec![
                "bench".to_string(),
                "--seed".into(),
                self.args.seed.to_string(),
            ];
            argv.extend(words.iter().map(|w| w.to_string()));
            let line = BenchLine::try_parse_from(&argv)
                .map_err(|e| anyhow::anyhow!("bench {name}: {}", e.to_string().trim()))?;
            let mut rerun = String::from("gauntlet bench");
            match &self.target {
                Some(t) => {
                    rerun.push_str(&format!(" --target {t} --members {}", self.args.members))
                }
                None => rerun.push_str(&format!(" --endpoints {}", self.conn.endpoints.join(","))),
            }
            rerun.push(' ');
            rerun.push_str(&argv[1..].join(" "));
            let result = self.bench_one(&line).await;
            p.inc(1);
            let dir = self.out.join("bench").join(name);
            let (plots, result) = match result {
                Ok(r) => {
                    let _ = std::fs::create_dir_all(&dir);
                    let _ = r.save(&dir.join("result.json"));
                    let plots = match gauntlet_bench::plot::write_plots(
                        &dir,
                        &[(name.to_string(), &r)],
                        "",
                    ) {
                        Ok(files) => files
                            .iter()
                            .filter(|f| f.extension().is_some_and(|e| e == "svg"))
                            .map(|f| convert::relative(f, &self.out))
                            .collect(),
                        Err(e) => {
                            p.line(format!("bench {name}: plots not drawn: {e}"));
                            Vec::new()
                        }
                    };
                    let first = r.main_op().map_or(String::new(), |o| {
                        format!(
                            "{:.0} req/s, p99 {:.2} ms",
                            o.requests_per_s,
                            o.percentile_s(99.0) * 1e3
                        )
                    });
                    p.detail(format!("bench {name}: {first}"));
                    (plots, Ok(r))
                }
                Err(e) => {
                    p.line(format!(
                        "bench {name}: could not run: {e:#}; rerun: {rerun}"
                    ));
                    (Vec::new(), Err(format!("{e:#}")))
                }
            };
            let row =
                convert::bench_row(name, &rerun, result.as_ref().map_err(Clone::clone), plots);
            for s in row.slo.iter().filter(|s| !s.pass) {
                p.line(format!(
                    "bench {name}: SLO missed: {} p99 {:.3} s > {:.3} s",
                    s.name, s.measured_s, s.limit_s
                ));
            }
            rows.push(row);
        }
        let (b, v) = convert::bench(rows, ms(started.elapsed()));
        p.line(format!("bench: {}: {}", v.status.label(), v.summary));
        Ok((b, v))
    }

    async fn bench_one(&self, line: &BenchLine) -> anyhow::Result<gauntlet_bench::RunResult> {
        let side = match &self.target {
            Some(t) => {
                crate::bench::launch(&t.to_string(), self.args.members, self.conn, false, false)
                    .await?
            }
            None => crate::bench::Launched {
                config: self.conn.client_config()?,
                pids: Vec::new(),
                _cluster: None,
            },
        };
        Ok(gauntlet_bench::run(
            &line.workload,
            &line.opts,
            side.config.clone(),
            side.pids.clone(),
        )
        .await?)
    }
}
