//! Client skew: the old version's etcdctl against the upgraded cluster, and the new
//! version's against the old cluster.
//!
//! etcd promises that its v3 API stays compatible within a major version, and its
//! 2022 advisory on 3.5.0–3.5.2 says that 3.5 clients talking to 3.4 servers are safe.
//! These checks run without recorded traffic: etcdctl's writes would be writes the
//! judged history does not know.

use std::time::Duration;

use gauntlet_harness::{Cluster, ClusterSpec};

use crate::expect::Doc;
use crate::run::{etcdctl, Check, Options, ScenarioResult, Verdict, MEMBERS};

/// etcd's API compatibility promise within a major version.
pub const API_COMPAT: Doc = Doc {
    says: "the v3 API stays backward compatible within the major version; 3.5 clients talking to 3.4 servers are safe (2022-03-29 advisory)",
    url: "https://etcd.io/docs/v3.5/op-guide/versioning/",
};

/// What one client's checks found: the checks and the evidence lines.
#[derive(Default)]
struct Found {
    checks: Vec<Check>,
    evidence: Vec<String>,
}

fn check(r: &mut Found, step: &str, what: String, expected: &str, ok: bool, observed: String) {
    r.evidence.push(format!(
        "{} {step}: {what}: {observed}",
        if ok { "ok" } else { "MISMATCH" }
    ));
    r.checks.push(Check {
        step: step.to_string(),
        what,
        expected: expected.to_string(),
        observed,
        ok,
        known_fixed_in: None,
        doc: Some(API_COMPAT),
    });
}

/// Whether an etcdctl output is the expected one.
type Accepts = Box<dyn Fn(&str) -> bool>;

/// The etcdctl checks of one client version against one cluster.
fn checks(step: &str, bin: &std::path::Path, endpoints: &str) -> Found {
    let mut r = Found::default();
    let key = format!("/gauntlet-skew-client/{}", step.replace(' ', "-"));
    let cases: Vec<(Vec<String>, &str, Accepts)> = vec![
        (
            vec!["put".into(), key.clone(), "v1".into()],
            "OK",
            Box::new(|o: &str| o.trim() == "OK"),
        ),
        (
            vec!["get".into(), key.clone()],
            "the key and v1",
            Box::new({
                let key = key.clone();
                move |o: &str| o.lines().collect::<Vec<_>>() == [key.as_str(), "v1"]
            }),
        ),
        (
            vec![
                "get".into(),
                "--prefix".into(),
                "--keys-only".into(),
                "/gauntlet-skew-client/".into(),
            ],
            "the key",
            Box::new({
                let key = key.clone();
                move |o: &str| o.lines().any(|l| l == key)
            }),
        ),
        (
            vec!["lease".into(), "grant".into(), "60".into()],
            "granted with TTL(60s)",
            Box::new(|o: &str| o.contains("granted with TTL(60s)")),
        ),
        (
            vec!["member".into(), "list".into()],
            "every member, started",
            Box::new(|o: &str| o.lines().filter(|l| l.contains(", started, ")).count() == MEMBERS),
        ),
        (
            vec!["endpoint".into(), "health".into()],
            "healthy",
            Box::new(|o: &str| o.contains("is healthy")),
        ),
        (
            vec!["endpoint".into(), "status".into()],
            "a status line per member",
            Box::new(|o: &str| o.lines().filter(|l| l.contains(", ")).count() == MEMBERS),
        ),
        (
            vec!["del".into(), key.clone()],
            "1",
            Box::new(|o: &str| o.trim() == "1"),
        ),
    ];
    for (args, expected, ok) in cases {
        let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
        let (success, out) = etcdctl(bin, endpoints, &args_ref);
        let good = success && ok(&out);
        let observed: String = out.lines().take(6).collect::<Vec<_>>().join(" | ");
        check(
            &mut r,
            step,
            format!("etcdctl {}", args.join(" ")),
            expected,
            good,
            observed,
        );
    }
    r
}

/// Runs one client's checks off the async threads and adds them to `r`.
async fn run_checks(
    r: &mut ScenarioResult,
    step: String,
    bin: std::path::PathBuf,
    endpoints: String,
) {
    match tokio::task::spawn_blocking(move || checks(&step, &bin, &endpoints)).await {
        Ok(found) => {
            r.checks.extend(found.checks);
            r.evidence.extend(found.evidence);
        }
        Err(e) => r
            .unknown
            .push(format!("the etcdctl checks did not finish: {e}")),
    }
}

/// Runs the client-skew scenario into `r`.
pub(crate) async fn run(r: &mut ScenarioResult, opts: &Options) {
    let (Some(old_ctl), Some(new_ctl)) =
        (opts.from.etcdctl(&opts.cache), opts.to.etcdctl(&opts.cache))
    else {
        r.verdict = Verdict::NotApplicable(format!(
            "needs the etcdctl of both versions ({} and {}); only etcd@VERSION targets ship one",
            opts.from, opts.to
        ));
        return;
    };
    let mut spec = ClusterSpec::new(opts.from.clone(), MEMBERS);
    spec.ready_timeout = Duration::from_secs(60);
    let cluster = match Cluster::start(spec, &opts.cache).await {
        Ok(c) => c,
        Err(e) => {
            r.verdict = Verdict::Error(format!("launching {}: {e}", opts.from));
            return;
        }
    };
    let endpoints = cluster.endpoints().join(",");
    let step = format!(
        "new etcdctl ({}) against the {} cluster",
        opts.to, opts.from
    );
    run_checks(r, step, new_ctl, endpoints.clone()).await;
    // Upgrade every member, then the old client.
    for i in 0..MEMBERS {
        if let Err(e) = upgrade(&cluster, i, opts).await {
            r.verdict = Verdict::Error(format!("upgrading m{i} to {}: {e}", opts.to));
            return;
        }
    }
    r.evidence
        .push(format!("every member upgraded to {}", opts.to));
    let step = format!(
        "old etcdctl ({}) against the {} cluster",
        opts.from, opts.to
    );
    run_checks(r, step, old_ctl, endpoints).await;
}

/// Runs the Kubernetes-profile client skew into `r`: the profile against the old
/// cluster, against a mixed one (one member upgraded) and against the upgraded one.
pub(crate) async fn run_kubernetes(r: &mut ScenarioResult, opts: &Options) {
    let Some(suite) = opts.kubernetes_profile.clone() else {
        r.verdict = Verdict::NotApplicable(
            "no conformance suite was given to run the kubernetes profile with".into(),
        );
        return;
    };
    let mut spec = ClusterSpec::new(opts.from.clone(), MEMBERS);
    spec.ready_timeout = Duration::from_secs(60);
    let cluster = match Cluster::start(spec, &opts.cache).await {
        Ok(c) => c,
        Err(e) => {
            r.verdict = Verdict::Error(format!("launching {}: {e}", opts.from));
            return;
        }
    };
    for (phase, upgraded) in [("old", 0), ("mixed", 1), ("upgraded", MEMBERS)] {
        for i in 0..upgraded {
            if cluster.member_target(i).ok().as_ref() == Some(&opts.to) {
                continue;
            }
            if let Err(e) = upgrade(&cluster, i, opts).await {
                r.verdict = Verdict::Error(format!("upgrading m{i} to {}: {e}", opts.to));
                return;
            }
            r.evidence.push(format!("m{i} upgraded to {}", opts.to));
        }
        let step = format!(
            "the {phase} cluster ({} of {MEMBERS} members on {})",
            upgraded, opts.to
        );
        let config = cluster.client_config(cluster.endpoints());
        let (ok, observed) = match suite(config).await {
            Ok(x) => x,
            Err(e) => (false, e),
        };
        r.evidence.push(format!(
            "{} kubernetes profile against {step}: {observed}",
            if ok { "ok" } else { "MISMATCH" }
        ));
        r.checks.push(Check {
            step,
            what: "the conformance kubernetes profile".into(),
            expected: "every case that runs passes (known etcd issues excused)".into(),
            observed,
            ok,
            known_fixed_in: None,
            doc: Some(API_COMPAT),
        });
    }
}

/// Stops member `i`, makes it the new version, starts it and waits for the cluster.
async fn upgrade(cluster: &Cluster, i: usize, opts: &Options) -> gauntlet_harness::Result<()> {
    cluster.stop(i).await?;
    cluster.set_member_target(i, &opts.to, &opts.cache)?;
    cluster.restart(i)?;
    cluster.wait_ready(Duration::from_secs(30)).await
}
