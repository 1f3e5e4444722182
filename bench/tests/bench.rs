//! The bench suite against a real etcd 3.5.1 (one member, launched by the harness),
//! plus the checks that need no server: bad input, the baseline gate, plots.
//!
//! Rerun: `cargo nextest run -p gauntlet-bench --test bench`.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use gauntlet_bench::{compare, gate, plot, BenchError, BenchOpts, RunResult, Workload};
use gauntlet_harness::{Cache, ClientConfig, Cluster, ClusterSpec, Target};

#[derive(Parser, Debug)]
struct Cmd {
    #[command(flatten)]
    opts: BenchOpts,
    #[command(subcommand)]
    workload: Workload,
}

fn cmd(args: &[&str]) -> Cmd {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    Cmd::try_parse_from(all).expect("flags parse")
}

async fn etcd() -> Cluster {
    let target: Target = "etcd@3.5.1".parse().expect("target");
    Cluster::start(ClusterSpec::new(target, 1), &Cache::from_env())
        .await
        .expect("etcd 3.5.1 starts (fetch it with `gauntlet targets fetch etcd@3.5.1`)")
}

async fn run(cluster: &Cluster, args: &[&str]) -> RunResult {
    let c = cmd(args);
    gauntlet_bench::run(
        &c.workload,
        &c.opts,
        cluster.client_config(cluster.endpoints()),
        cluster.pids(),
    )
    .await
    .inspect(|r| {
        // Every result records what the target reported and the profile it is held to.
        assert_eq!(r.server_version.as_deref(), Some("3.5.1"));
        assert_eq!(
            r.held_to,
            Some(gauntlet_harness::profile::EtcdProfile::Etcd35)
        );
    })
    .unwrap_or_else(|e| panic!("bench {args:?}: {e}"))
}

#[tokio::test]
async fn bad_input_is_refused_before_connecting() {
    let nowhere = ClientConfig::new(["127.0.0.1:1"]);
    for (args, expect) in [
        (
            &["--clients", "0", "put"][..],
            "--clients must be at least 1",
        ),
        (&["--conns", "0", "put"][..], "--conns must be at least 1"),
        (&["put", "--key-size", "0"][..], "--key-size"),
        (&["put", "--val-size", "99999999"][..], "--val-size"),
        (&["put", "--total", "0"][..], "--total"),
        (&["put", "--rate=-5"][..], "--rate"),
        (
            &["txn-put", "--txn-ops", "4", "--key-space-size", "2"][..],
            "--key-space-size",
        ),
        (
            &["txn-put", "--txn-ops", "500", "--key-space-size", "1000"][..],
            "--txn-ops",
        ),
        (&["watch", "--streams", "0"][..], "--streams"),
        (&["kube", "--nodes", "0"][..], "--nodes"),
        (&["kube", "--pod-size", "3"][..], "--pod-size"),
    ] {
        let c = cmd(args);
        let err = gauntlet_bench::run(&c.workload, &c.opts, nowhere.clone(), Vec::new())
            .await
            .expect_err("refused");
        assert!(
            matches!(err, BenchError::InvalidArgument(_)),
            "{args:?}: {err}"
        );
        assert!(
            err.to_string().contains(expect),
            "{args:?}: `{err}` should name {expect}"
        );
        assert!(!err.to_string().contains('\n'), "one line: {err}");
    }
}

#[tokio::test]
async fn unreachable_target_fails_fast() {
    let mut cfg = ClientConfig::new(["127.0.0.1:1"]);
    cfg.dial_timeout = Duration::from_millis(500);
    let c = cmd(&["put", "--total", "10"]);
    let t = Instant::now();
    let err = gauntlet_bench::run(&c.workload, &c.opts, cfg, Vec::new())
        .await
        .expect_err("nothing listens on port 1");
    assert!(matches!(err, BenchError::Connect(_)), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

fn worse(r: &RunResult) -> RunResult {
    let mut w = r.clone();
    for op in &mut w.ops {
        op.requests_per_s /= 2.0;
        for p in &mut op.percentiles {
            p.latency_s *= 3.0;
        }
    }
    w
}

fn assert_plots(dir: &Path) {
    for f in ["throughput.svg", "latency.svg", "cdf.svg", "index.html"] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(text.len() > 200, "{f} is nearly empty");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_against_etcd_3_5_1() {
    let cluster = etcd().await;

    // put: exact counts, JSON shape with the HDR histogram.
    let put = run(
        &cluster,
        &[
            "--clients",
            "8",
            "--conns",
            "2",
            "put",
            "--total",
            "300",
            "--key-space-size",
            "100",
            "--val-size",
            "64",
        ],
    )
    .await;
    let op = put.main_op().expect("put figures");
    assert_eq!((op.name.as_str(), op.count, op.errors), ("put", 300, 0));
    assert!(op.requests_per_s > 0.0 && op.slowest_s >= op.fastest_s);
    assert_eq!(op.hdr_histogram().expect("HDR decodes").len(), 300);
    let json = serde_json::to_value(&put).expect("json");
    for field in [
        "total_s",
        "slowest_s",
        "fastest_s",
        "average_s",
        "stddev_s",
        "requests_per_s",
        "percentiles",
        "histogram",
        "error_distribution",
        "hdr_histogram_v2_hex",
        "timeline",
    ] {
        assert!(
            json["ops"][0].get(field).is_some(),
            "JSON lacks ops[0].{field}"
        );
    }
    assert_eq!(
        json["ops"][0]["percentiles"].as_array().map(Vec::len),
        Some(8)
    );
    assert!(put.cpu.generator_cpu_s >= 0.0 && put.cpu.target_cpu_s.is_some());
    assert!(put.to_text().contains("Requests/sec:"));

    let range = run(
        &cluster,
        &[
            "--clients",
            "4",
            "range",
            "k",
            "--total",
            "200",
            "--consistency",
            "s",
        ],
    )
    .await;
    assert_eq!(range.ops[0].count, 200);

    let txn = run(
        &cluster,
        &[
            "--clients",
            "4",
            "txn-put",
            "--total",
            "100",
            "--txn-ops",
            "3",
            "--key-space-size",
            "50",
        ],
    )
    .await;
    assert_eq!((txn.ops[0].count, txn.ops[0].errors), (100, 0));

    let mixed = run(
        &cluster,
        &[
            "--clients",
            "4",
            "txn-mixed",
            "mix/",
            "--total",
            "200",
            "--key-space-size",
            "20",
        ],
    )
    .await;
    assert_eq!(mixed.ops[0].count, 200);
    assert_eq!(
        mixed.ops[1].count + mixed.ops[2].count,
        200,
        "reads + writes"
    );

    let watch = run(
        &cluster,
        &[
            "--clients",
            "4",
            "watch",
            "--streams",
            "2",
            "--watch-per-stream",
            "5",
            "--put-total",
            "50",
            "--put-rate",
            "500",
        ],
    )
    .await;
    assert_eq!(watch.ops[0].name, "watch-create");
    assert_eq!(watch.ops[0].count, 10);
    assert!(watch.notes[0].contains("500 of 500"), "{:?}", watch.notes);

    let lag = run(
        &cluster,
        &[
            "--clients",
            "2",
            "watch-latency",
            "--streams",
            "1",
            "--watchers-per-stream",
            "3",
            "--put-total",
            "30",
            "--put-rate",
            "300",
        ],
    )
    .await;
    assert_eq!(lag.ops[0].name, "event-delivery");
    assert_eq!(lag.ops[0].count, 90);

    let wg = run(
        &cluster,
        &[
            "--clients",
            "2",
            "watch-get",
            "--watchers",
            "50",
            "--streams",
            "2",
            "--get-total",
            "40",
        ],
    )
    .await;
    assert_eq!((wg.ops[0].count, wg.ops[1].count), (40, 50));

    let lease = run(
        &cluster,
        &["--clients", "3", "lease-keepalive", "--total", "150"],
    )
    .await;
    assert_eq!((lease.ops[0].count, lease.ops[0].errors), (150, 0));

    let kube = run(
        &cluster,
        &[
            "kube",
            "--nodes",
            "20",
            "--duration",
            "3s",
            "--list-interval",
            "1s",
            "--pod-rate",
            "10",
        ],
    )
    .await;
    let slo = kube.slo.as_ref().expect("SLO table");
    assert_eq!(slo.len(), 3);
    assert!(
        slo.iter().all(|r| r.pass),
        "an idle etcd meets the SLOs: {slo:?}"
    );
    assert!(kube.ops.iter().any(|o| o.name == "list" && o.count >= 2));

    // Regression gate: the same result passes, a worse one fails.
    assert!(gate::gate(&put, &put, 10.0).expect("same workload").pass);
    let verdict = gate::gate(&worse(&put), &put, 10.0).expect("same workload");
    assert!(
        !verdict.pass && verdict.lines.iter().any(|l| l.contains("REGRESSION")),
        "{verdict:?}"
    );
    assert!(
        gate::gate(&range, &put, 10.0).is_err(),
        "different workloads do not compare"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = dir.path().join("put.json");
    put.save(&saved).expect("saves");
    let loaded = RunResult::load(&saved).expect("loads");
    assert_eq!(loaded.ops[0].count, put.ops[0].count);
    assert_eq!(
        loaded.ops[0].hdr_histogram_v2_hex,
        put.ops[0].hdr_histogram_v2_hex
    );
    assert!(gate::gate(&loaded, &put, 10.0).expect("same workload").pass);

    // Plots.
    plot::write_plots(&dir.path().join("plots"), &[("put".into(), &put)], "").expect("plots");
    assert_plots(&dir.path().join("plots"));

    // Compare: the same cluster twice; ratios are finite and near each other.
    let c = cmd(&["--clients", "4", "put", "--total", "100"]);
    let side = compare::Side {
        label: "etcd".into(),
        client: cluster.client_config(cluster.endpoints()),
        pids: cluster.pids(),
    };
    let cmp = compare::compare(&side, &side, &c.workload, &c.opts, 2)
        .await
        .expect("compare");
    assert_eq!(cmp.rounds.len(), 2);
    let r = &cmp.ratios[0];
    assert!(
        r.throughput_ratio.mean.is_finite() && r.throughput_ratio.min <= r.throughput_ratio.max
    );
    assert!(cmp.to_text().contains("Ratios B/A"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_bounds_a_run() {
    let cluster = etcd().await;
    let t = Instant::now();
    let r = run(
        &cluster,
        &[
            "--clients",
            "2",
            "--timeout",
            "1s",
            "put",
            "--total",
            "100000000",
            "--rate",
            "200",
        ],
    )
    .await;
    assert!(r.timed_out, "a 1 s cap cannot finish 1e8 puts");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        r.ops[0].count > 50 && r.ops[0].count < 1000,
        "{}",
        r.ops[0].count
    );
}

/// With auth enabled, every request on the pool's own connections (unary and streams)
/// carries the token; without credentials the failures land in the error distribution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_token_reaches_every_connection() {
    use gauntlet_api::etcdserverpb as pb;
    let cluster = etcd().await;
    let c = cluster.client().await.expect("client");
    c.user_add(pb::AuthUserAddRequest {
        name: "root".into(),
        password: "pw".into(),
        ..Default::default()
    })
    .await
    .expect("user add");
    c.user_grant_role(pb::AuthUserGrantRoleRequest {
        user: "root".into(),
        role: "root".into(),
    })
    .await
    .expect("grant");
    c.auth_enable(pb::AuthEnableRequest {})
        .await
        .expect("auth enable");
    let mut cfg = cluster.client_config(cluster.endpoints());
    cfg.credentials = Some(gauntlet_harness::Credentials::parse("root:pw").expect("creds"));

    let put = cmd(&["--clients", "4", "--conns", "2", "put", "--total", "100"]);
    let r = gauntlet_bench::run(&put.workload, &put.opts, cfg.clone(), Vec::new())
        .await
        .expect("put with auth");
    assert_eq!((r.ops[0].count, r.ops[0].errors), (100, 0));
    let wl = cmd(&[
        "watch-latency",
        "--streams",
        "1",
        "--watchers-per-stream",
        "2",
        "--put-total",
        "20",
        "--put-rate",
        "200",
    ]);
    let r = gauntlet_bench::run(&wl.workload, &wl.opts, cfg, Vec::new())
        .await
        .expect("watch with auth");
    assert_eq!(r.ops[0].count, 40);
    let keep = cmd(&["--clients", "2", "lease-keepalive", "--total", "20"]);
    let mut cfg = cluster.client_config(cluster.endpoints());
    cfg.credentials = Some(gauntlet_harness::Credentials::parse("root:pw").expect("creds"));
    let r = gauntlet_bench::run(&keep.workload, &keep.opts, cfg, Vec::new())
        .await
        .expect("keep-alive with auth");
    assert_eq!(r.ops[0].count, 20);

    let anon = gauntlet_bench::run(
        &put.workload,
        &put.opts,
        cluster.client_config(cluster.endpoints()),
        Vec::new(),
    )
    .await
    .expect("runs; the puts fail");
    assert_eq!(anon.ops[0].errors, 100);
    assert!(
        anon.ops[0]
            .error_distribution
            .keys()
            .any(|e| e.contains("user name is empty")),
        "{:?}",
        anon.ops[0].error_distribution
    );
}

/// `--auth`'s setup: the load runs as an unprivileged user under auth (a root-only call
/// is refused to it, an anonymous put too), its puts succeed, and the launched cluster's
/// CPU per operation is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_setup_runs_the_load_as_an_unprivileged_user() {
    use gauntlet_api::etcdserverpb as pb;
    let cluster = etcd().await;
    let admin = cluster.client_config(cluster.endpoints());
    let creds = gauntlet_bench::auth::enable(&admin)
        .await
        .expect("auth setup");
    assert_eq!(creds.user, gauntlet_bench::auth::BENCH_USER);
    let mut cfg = admin.clone();
    cfg.credentials = Some(creds);
    let user = gauntlet_harness::Client::connect(cfg.clone())
        .await
        .expect("the bench user authenticates");
    let err = user
        .user_list(pb::AuthUserListRequest {})
        .await
        .expect_err("the bench user is not root");
    assert!(err.to_string().contains("permission denied"), "{err}");
    let anon = gauntlet_harness::Client::connect(admin.clone())
        .await
        .expect("connects");
    assert!(anon.put("k", "v").await.is_err(), "auth is on");

    let put = cmd(&["--clients", "4", "--conns", "2", "put", "--total", "200"]);
    let r = gauntlet_bench::run(&put.workload, &put.opts, cfg, cluster.pids())
        .await
        .expect("put under auth");
    assert_eq!((r.ops[0].count, r.ops[0].errors), (200, 0));
    let per_op = r.cpu.target_cpu_us_per_op.expect("server CPU per op");
    assert!(per_op > 0.0, "{per_op}");
    assert!(r.to_text().contains("us/op)"), "{}", r.to_text());

    let again = gauntlet_bench::auth::enable(&admin).await;
    assert!(
        matches!(&again, Err(gauntlet_bench::BenchError::Setup(m)) if m.starts_with("adding the auth user")),
        "{again:?}"
    );
}

/// Over TLS with client certificates (`--cacert --cert --key`), every pool connection
/// is a TLS connection that etcd accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    use gauntlet_harness::{ClusterTls, TlsFiles};
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, pem: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, pem).expect("write pem");
        p
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name
        .push(DnType::CommonName, "bench test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("key");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let mut server = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    let server_key = KeyPair::generate().expect("key");
    let server_cert = server
        .signed_by(&server_key, &ca_cert, &ca_key)
        .expect("server cert");
    let mut client = CertificateParams::new(Vec::<String>::new()).expect("params");
    client
        .distinguished_name
        .push(DnType::CommonName, "bench-client");
    let client_key = KeyPair::generate().expect("key");
    let client_cert = client
        .signed_by(&client_key, &ca_cert, &ca_key)
        .expect("client cert");
    let files = TlsFiles {
        cacert: Some(write("ca.pem", ca_cert.pem())),
        cert: Some(write("client.pem", client_cert.pem())),
        key: Some(write("client-key.pem", client_key.serialize_pem())),
    };
    let mut spec = ClusterSpec::new("etcd@3.5.1".parse().expect("target"), 1);
    spec.tls = Some(ClusterTls {
        server_cert: write("server.pem", server_cert.pem()),
        server_key: write("server-key.pem", server_key.serialize_pem()),
        client_ca: files.cacert.clone(),
        client: files,
    });
    spec.ready_timeout = Duration::from_secs(60);
    let cluster = Cluster::start(spec, &Cache::from_env())
        .await
        .expect("TLS etcd starts");
    assert!(cluster.endpoints()[0].starts_with("https://"));
    let r = run(
        &cluster,
        &["--clients", "6", "--conns", "3", "put", "--total", "120"],
    )
    .await;
    assert_eq!((r.ops[0].count, r.ops[0].errors), (120, 0));
    let r = run(
        &cluster,
        &[
            "watch-latency",
            "--streams",
            "2",
            "--watchers-per-stream",
            "1",
            "--put-total",
            "20",
            "--put-rate",
            "200",
        ],
    )
    .await;
    assert_eq!(r.ops[0].count, 40);
}
