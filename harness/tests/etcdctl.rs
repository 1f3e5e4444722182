//! Real etcdctl (3.5.1 and 3.4.23) against a 3-member cluster of each target: every
//! command Kubernetes operators and scripts use day to day, with its printed output
//! checked. Run against real etcd too, which keeps the expectations honest.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gauntlet_harness::{Cache, Cluster, ClusterSpec, ClusterTls, TlsFiles};

/// Deadline for one etcdctl invocation.
const CTL_DEADLINE: Duration = Duration::from_secs(20);

struct Ctl {
    bin: PathBuf,
    endpoints: String,
    one: String,
    /// `--cacert`, `--cert`, `--key` when the cluster serves TLS.
    tls: Vec<String>,
}

impl Ctl {
    fn new(version: &str, cluster: &Cluster) -> Ctl {
        let bin = Cache::from_env()
            .binary(&format!("etcd@{version}"), "etcdctl")
            .unwrap_or_else(|e| panic!("{e} (run `cargo xtask test`)"));
        Ctl {
            bin,
            endpoints: cluster.endpoints().join(","),
            one: cluster.endpoints()[0].clone(),
            tls: Vec::new(),
        }
    }

    /// Talks TLS: trusts `ca`, presents `cert` and `key`.
    fn with_tls(mut self, ca: &Path, cert: &Path, key: &Path) -> Ctl {
        self.tls = vec![
            format!("--cacert={}", ca.display()),
            format!("--cert={}", cert.display()),
            format!("--key={}", key.display()),
        ];
        self
    }

    fn command(&self, endpoints: &str, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(endpoints)
            .arg("--command-timeout=10s")
            .args(&self.tls)
            .args(args);
        c
    }

    /// Runs etcdctl with a deadline; returns (success, stdout, stderr).
    fn run_on(
        &self,
        endpoints: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> (bool, String, String) {
        let mut child = self
            .command(endpoints, args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let started = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if started.elapsed() > CTL_DEADLINE {
                let _ = child.kill();
                panic!("etcdctl {args:?} did not finish within {CTL_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run_on(&self.endpoints, args, None);
        assert!(ok, "etcdctl {args:?} failed: {err}{out}");
        out
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = args.to_vec();
        full.extend(["-w", "json"]);
        serde_json::from_str(&self.ok(&full))
            .unwrap_or_else(|e| panic!("etcdctl {args:?}: not JSON: {e}"))
    }
}

fn revision(v: &serde_json::Value) -> i64 {
    v["header"]["revision"].as_i64().unwrap()
}

fn everyday_commands(cluster: Cluster, ctl_version: &str) {
    let ctl = Ctl::new(ctl_version, &cluster);
    // put / get
    assert_eq!(ctl.ok(&["put", "foo", "bar"]).trim(), "OK");
    let first = revision(&ctl.json(&["get", "foo"]));
    assert_eq!(ctl.ok(&["get", "foo"]), "foo\nbar\n");
    assert_eq!(ctl.ok(&["put", "foo", "baz"]).trim(), "OK");
    assert_eq!(
        ctl.ok(&["get", "foo", &format!("--rev={first}")]),
        "foo\nbar\n"
    );
    assert_eq!(ctl.ok(&["get", "foo", "--consistency=s"]), "foo\nbaz\n");
    // prefix with limit
    for i in 1..=5 {
        ctl.ok(&["put", &format!("pre/{i}"), &format!("v{i}")]);
    }
    assert_eq!(
        ctl.ok(&["get", "pre/", "--prefix", "--limit=2"]),
        "pre/1\nv1\npre/2\nv2\n"
    );
    let j = ctl.json(&["get", "pre/", "--prefix", "--limit=2"]);
    assert_eq!(j["count"].as_i64(), Some(5));
    assert_eq!(j["more"].as_bool(), Some(true));
    assert_eq!(
        ctl.ok(&["get", "pre/", "--prefix", "--keys-only"])
            .lines()
            .filter(|l| !l.is_empty())
            .count(),
        5
    );
    if ctl_version.starts_with("3.5") {
        // --count-only arrived with etcdctl 3.5.
        let fields = ctl.ok(&["get", "pre/", "--prefix", "--count-only", "-w", "fields"]);
        assert!(
            fields.lines().any(|l| l.trim() == "\"Count\" : 5"),
            "{fields}"
        );
    }
    // del
    assert_eq!(ctl.ok(&["del", "pre/1"]).trim(), "1");
    assert_eq!(ctl.ok(&["del", "pre/", "--prefix"]).trim(), "4");
    // txn
    let (ok, out, err) = ctl.run_on(
        &ctl.endpoints,
        &["txn", "--interactive=false"],
        Some("value(\"foo\") = \"baz\"\n\nput foo qux\n\nput foo never\n\n"),
    );
    assert!(ok, "{err}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["SUCCESS", "OK"],
        "{out}"
    );
    let (_, out, _) = ctl.run_on(
        &ctl.endpoints,
        &["txn", "--interactive=false"],
        Some("value(\"foo\") = \"baz\"\n\nput foo never\n\nget foo\n\n"),
    );
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["FAILURE", "foo", "qux"],
        "{out}"
    );
    // watch from a past revision with prev-kv
    let rev_before = revision(&ctl.json(&["put", "w", "1"]));
    ctl.ok(&["put", "w", "2"]);
    let mut watch = ctl
        .command(
            &ctl.one,
            &["watch", "w", &format!("--rev={rev_before}"), "--prev-kv"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    ctl.ok(&["put", "w", "3"]);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines.len() < 10 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    // PUT w 1 (no prev), PUT w 1 2 (prev then new), PUT w 2 3
    assert_eq!(
        lines,
        ["PUT", "w", "1", "PUT", "w", "1", "w", "2", "PUT", "w"],
        "watch output"
    );
    // leases
    let grant = ctl.ok(&["lease", "grant", "60"]);
    let id = grant
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("lease grant printed {grant}"))
        .to_string();
    assert!(grant.contains("granted with TTL(60s)"), "{grant}");
    ctl.ok(&["put", "leased", "v", &format!("--lease={id}")]);
    let ka = ctl.ok(&["lease", "keep-alive", "--once", &id]);
    assert!(
        ka.contains(&format!("lease {id} keepalived with TTL(60)")),
        "{ka}"
    );
    let ttl = ctl.ok(&["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.contains(&format!("lease {id} granted with TTL(60s)"))
            && ttl.contains("attached keys([leased])"),
        "{ttl}"
    );
    let list = ctl.ok(&["lease", "list"]);
    assert!(
        list.contains("found 1 leases") && list.contains(&id),
        "{list}"
    );
    assert!(ctl
        .ok(&["lease", "revoke", &id])
        .contains(&format!("lease {id} revoked")));
    assert_eq!(ctl.ok(&["get", "leased"]), "");
    // compaction
    let now = revision(&ctl.json(&["get", "foo"]));
    assert_eq!(
        ctl.ok(&["compaction", &now.to_string()]).trim(),
        format!("compacted revision {now}")
    );
    let (ok, _, err) = ctl.run_on(
        &ctl.endpoints,
        &["get", "foo", &format!("--rev={first}")],
        None,
    );
    assert!(
        !ok && err.contains("required revision has been compacted"),
        "{err}"
    );
    // endpoints and members
    let status = ctl.json(&["endpoint", "status"]);
    assert_eq!(status.as_array().map(Vec::len), Some(3));
    let leaders: std::collections::BTreeSet<u64> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Status"]["leader"].as_u64().unwrap())
        .collect();
    assert_eq!(leaders.len(), 1);
    let health = ctl.run_on(&ctl.endpoints, &["endpoint", "health"], None);
    assert!(health.0, "{}", health.2);
    assert_eq!(
        format!("{}{}", health.1, health.2)
            .matches("is healthy")
            .count(),
        3,
        "{health:?}"
    );
    // HashKV at a revision after the compaction, once every member applied it.
    let latest = revision(&ctl.json(&["put", "after-compaction", "x"]));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (ok, out, err) = ctl.run_on(
            &ctl.endpoints,
            &[
                "endpoint",
                "hashkv",
                &format!("--rev={latest}"),
                "-w",
                "json",
            ],
            None,
        );
        if ok {
            let hashes: serde_json::Value = serde_json::from_str(&out).unwrap();
            let distinct: std::collections::BTreeSet<u64> = hashes
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["HashKV"]["hash"].as_u64().unwrap_or(0))
                .collect();
            assert_eq!(distinct.len(), 1, "hashkv differs: {hashes}");
            break;
        }
        assert!(
            Instant::now() < deadline && err.contains("future revision"),
            "endpoint hashkv: {err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let members = ctl.ok(&["member", "list"]);
    assert_eq!(members.lines().count(), 3);
    assert!(members.lines().all(|l| l.contains("started")), "{members}");
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process the test started itself; killed when dropped.
struct Spawned(std::process::Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The member id etcdctl prints in "Member <hex> added to cluster <hex>".
fn added_id(out: &str) -> String {
    out.split_whitespace()
        .skip_while(|w| *w != "Member")
        .nth(1)
        .unwrap_or_else(|| panic!("no member id in: {out}"))
        .to_string()
}

/// Retries etcdctl until it succeeds or `within` passes; returns the last output.
fn retry(ctl: &Ctl, args: &[&str], within: Duration) -> (bool, String, String) {
    let deadline = Instant::now() + within;
    loop {
        let r = ctl.run_on(&ctl.endpoints, args, None);
        if r.0 || Instant::now() >= deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The operator's commands: alarms, defragmentation, snapshots, leadership, and a
/// learner's whole life (add, start, promote once caught up, update, remove).
fn admin_commands(cluster: Cluster, target: &str, ctl_version: &str) {
    let ctl = Ctl::new(ctl_version, &cluster);
    let dir = tempfile::tempdir().unwrap();
    ctl.ok(&["put", "admin-key", "v"]);
    assert_eq!(ctl.ok(&["alarm", "list"]).trim(), "");
    ctl.ok(&["alarm", "disarm"]);
    let defrag = ctl.ok(&["defrag"]);
    assert_eq!(
        defrag.matches("Finished defragmenting etcd member").count(),
        3,
        "{defrag}"
    );
    let snap = dir.path().join("snap.db");
    let (ok, out, err) = ctl.run_on(
        &ctl.one,
        &["snapshot", "save", snap.to_str().unwrap()],
        None,
    );
    assert!(ok, "snapshot save: {err}{out}");
    assert!(
        format!("{out}{err}").contains("Snapshot saved at"),
        "{out}{err}"
    );
    assert!(std::fs::metadata(&snap).unwrap().len() > 32);
    // move-leader to a follower.
    let status = ctl.json(&["endpoint", "status"]);
    let leader = status[0]["Status"]["leader"].as_u64().unwrap();
    let follower = status
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Status"]["header"]["member_id"].as_u64().unwrap())
        .find(|id| *id != leader)
        .unwrap();
    let moved = ctl.ok(&["move-leader", &format!("{follower:x}")]);
    assert!(moved.contains("Leadership transferred from"), "{moved}");
    // A learner: added, started by hand, promoted once in sync, updated, removed.
    let (peer, client) = (free_port(), free_port());
    let peer_url = format!("http://127.0.0.1:{peer}");
    // etcd refuses membership changes until every voter was connected for 5 s.
    let (ok, added, err) = retry(
        &ctl,
        &[
            "member",
            "add",
            "learner1",
            "--learner",
            &format!("--peer-urls={peer_url}"),
        ],
        Duration::from_secs(20),
    );
    assert!(ok, "member add --learner: {err}{added}");
    let id = added_id(&added);
    let initial = added
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER="))
        .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in: {added}"))
        .trim_matches('"')
        .to_string();
    let list = ctl.ok(&["member", "list"]);
    assert!(list.contains(&id) && list.contains("unstarted"), "{list}");
    let (ok, _, err) = ctl.run_on(&ctl.endpoints, &["member", "promote", &id], None);
    assert!(
        !ok && err.contains("can only promote a learner member which is in sync with leader"),
        "promoting a learner that never started: {err}"
    );
    let bin = target
        .parse::<gauntlet_harness::Target>()
        .unwrap()
        .server_binary(&Cache::from_env())
        .unwrap();
    let client_url = format!("http://127.0.0.1:{client}");
    let log = std::fs::File::create(dir.path().join("learner1.log")).unwrap();
    let mut learner = Spawned(
        Command::new(bin)
            .args(["--name", "learner1", "--data-dir"])
            .arg(dir.path().join("learner1"))
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args([
                "--initial-cluster",
                &initial,
                "--initial-cluster-state",
                "existing",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let (ok, out, err) = retry(&ctl, &["member", "promote", &id], Duration::from_secs(30));
    let log_text = || std::fs::read_to_string(dir.path().join("learner1.log")).unwrap_or_default();
    assert!(
        ok,
        "promote after the learner started: {err}{out}\nlearner log:\n{}",
        log_text()
    );
    assert!(out.contains("promoted"), "{out}");
    // Promoted, and shown started (its name published) within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (list, me) = loop {
        let list = ctl.json(&["member", "list"]);
        let me = list["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| format!("{:x}", m["ID"].as_u64().unwrap()) == id)
            .expect("the promoted member is listed")
            .clone();
        if me["name"] == "learner1" || Instant::now() >= deadline {
            break (list, me);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(me["name"], "learner1", "{list}");
    assert!(me.get("isLearner").is_none_or(|l| l == false), "{list}");
    let updated = ctl.ok(&["member", "update", &id, &format!("--peer-urls={peer_url}")]);
    assert!(updated.contains("updated in cluster"), "{updated}");
    // It serves as a voter now: a write through it reads back everywhere.
    let (ok, out, err) = ctl.run_on(&client_url, &["put", "via-new-member", "x"], None);
    assert!(ok, "put through the promoted member: {err}{out}");
    assert!(ctl
        .ok(&["get", "via-new-member", "--print-value-only"])
        .contains('x'));
    let removed = ctl.ok(&["member", "remove", &id]);
    assert!(removed.contains("removed from cluster"), "{removed}");
    // A removed member stops on its own.
    let deadline = Instant::now() + Duration::from_secs(30);
    while learner.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the removed member did not stop:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ctl.ok(&["member", "list"]).lines().count(), 3);
    let health = ctl.run_on(&ctl.endpoints, &["endpoint", "health"], None);
    assert!(health.0, "{}", health.2);
}

macro_rules! admin_cases {
    ($($name:ident => $target:literal with $ctl:literal),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let cluster = common::start($target, 3).await;
            tokio::task::spawn_blocking(move || admin_commands(cluster, $target, $ctl)).await.unwrap();
        }
    )*};
}

admin_cases! {
    admin_etcd_3_5_1_with_etcdctl_3_5_1 => "etcd@3.5.1" with "3.5.1",
    admin_etcd_3_4_23_with_etcdctl_3_4_23 => "etcd@3.4.23" with "3.4.23",
    admin_reference_with_etcdctl_3_5_1 => "reference" with "3.5.1",
    admin_reference_with_etcdctl_3_4_23 => "reference" with "3.4.23",
}

macro_rules! etcdctl_cases {
    ($($name:ident => $target:literal with $ctl:literal),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let cluster = common::start($target, 3).await;
            tokio::task::spawn_blocking(move || everyday_commands(cluster, $ctl)).await.unwrap();
        }
    )*};
}

etcdctl_cases! {
    etcd_3_5_1_with_etcdctl_3_5_1 => "etcd@3.5.1" with "3.5.1",
    etcd_3_5_1_with_etcdctl_3_4_23 => "etcd@3.5.1" with "3.4.23",
    etcd_3_4_23_with_etcdctl_3_4_23 => "etcd@3.4.23" with "3.4.23",
    reference_with_etcdctl_3_5_1 => "reference" with "3.5.1",
    reference_with_etcdctl_3_4_23 => "reference" with "3.4.23",
}

/// Starts a 3-member cluster of `target` serving TLS with client certificates required.
async fn start_tls(target: &str, pki: &common::Pki) -> Cluster {
    let mut spec = ClusterSpec::new(target.parse().expect("target"), 3);
    spec.tls = Some(ClusterTls {
        server_cert: pki.server_cert.clone(),
        server_key: pki.server_key.clone(),
        client_ca: Some(pki.ca.clone()),
        client: TlsFiles {
            cacert: Some(pki.ca.clone()),
            cert: Some(pki.client_cert.clone()),
            key: Some(pki.client_key.clone()),
        },
    });
    spec.ready_timeout = Duration::from_secs(60);
    Cluster::start(spec, &Cache::from_env())
        .await
        .unwrap_or_else(|e| panic!("cannot start {target} with TLS: {e} (run `cargo xtask test`)"))
}

/// Reads `child`'s stdout lines into a channel (the thread ends with the process).
fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits until `rx` yields `want` (as a whole line); panics after 30 s with what came.
fn wait_line(rx: &std::sync::mpsc::Receiver<String>, want: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) if l.trim() == want => return,
            Ok(l) => seen.push(l),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    panic!("{what}: no line `{want}` within 30 s; saw {seen:?}");
}

/// Auth as an operator sets it up with etcdctl, over TLS with client certificates:
/// users, roles, a prefix permission, auth enable; a restricted user allowed and denied;
/// a certificate's common name as the user; `lock`, `elect` and `elect --listen` under
/// auth; auth disable.
fn auth_commands(cluster: Cluster, ctl_version: &str, pki: &common::Pki) {
    let ctl = Ctl::new(ctl_version, &cluster).with_tls(&pki.ca, &pki.client_cert, &pki.client_key);
    assert!(ctl.one.starts_with("https://"), "{}", ctl.one);
    assert!(ctl
        .ok(&["user", "add", "root:rootpw"])
        .contains("User root created"));
    assert!(ctl
        .ok(&["user", "grant-role", "root", "root"])
        .contains("Role root is granted to user root"));
    assert!(ctl
        .ok(&["role", "add", "reader"])
        .contains("Role reader created"));
    let granted = ctl.ok(&[
        "role",
        "grant-permission",
        "reader",
        "read",
        "/app/",
        "--prefix=true",
    ]);
    assert!(granted.contains("Role reader updated"), "{granted}");
    assert!(ctl
        .ok(&["user", "add", "alice:alicepw"])
        .contains("User alice created"));
    ctl.ok(&["user", "grant-role", "alice", "reader"]);
    ctl.ok(&["put", "/app/x", "1"]);
    assert!(ctl
        .ok(&["auth", "enable"])
        .contains("Authentication Enabled"));

    let as_alice = |args: &[&str]| {
        let mut a = vec!["--user", "alice:alicepw"];
        a.extend_from_slice(args);
        ctl.run_on(&ctl.endpoints, &a, None)
    };
    let (ok, out, err) = as_alice(&["get", "/app/x", "--print-value-only"]);
    assert!(ok && out.trim() == "1", "alice reads /app/x: {out}{err}");
    let (ok, out, err) = as_alice(&["put", "/app/x", "2"]);
    assert!(
        !ok && err.contains("permission denied"),
        "alice writes /app/x: {out}{err}"
    );
    let (ok, out, err) = as_alice(&["get", "/other"]);
    assert!(
        !ok && err.contains("permission denied"),
        "alice reads /other: {out}{err}"
    );
    let (ok, out, err) = ctl.run_on(&ctl.endpoints, &["put", "/app/x", "3"], None);
    assert!(
        !ok && err.contains("permission denied"),
        "the client certificate's user (gauntlet-client, unknown) writes: {out}{err}"
    );

    // With client-cert-auth, a certificate's common name is the user: alice's reads,
    // not writes, without a password.
    let cn = Ctl::new(ctl_version, &cluster).with_tls(&pki.ca, &pki.alice_cert, &pki.alice_key);
    let (ok, out, err) = cn.run_on(
        &cn.endpoints,
        &["get", "/app/x", "--print-value-only"],
        None,
    );
    assert!(ok && out.trim() == "1", "CN alice reads /app/x: {out}{err}");
    let (ok, out, err) = cn.run_on(&cn.endpoints, &["put", "/app/x", "4"], None);
    assert!(
        !ok && err.contains("permission denied"),
        "CN alice writes /app/x: {out}{err}"
    );

    let root = ["--user", "root:rootpw"];
    fn with_root<'a>(root: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
        [root, args].concat()
    }
    ctl.ok(&with_root(&root, &["put", "/app/y", "v"]));
    let locked = ctl.ok(&with_root(
        &root,
        &["lock", "gauntlet-lock", "echo", "held-the-lock"],
    ));
    assert!(locked.contains("held-the-lock"), "{locked}");

    let mut listener = Spawned(
        ctl.command(
            &ctl.endpoints,
            &with_root(&root, &["elect", "--listen", "gauntlet-election"]),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let heard = lines_of(&mut listener.0);
    let mut candidate = Spawned(
        ctl.command(
            &ctl.endpoints,
            &with_root(&root, &["elect", "gauntlet-election", "proposal-1"]),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let elected = lines_of(&mut candidate.0);
    wait_line(&elected, "proposal-1", "etcdctl elect");
    wait_line(&heard, "proposal-1", "etcdctl elect --listen");
    drop(candidate);
    drop(listener);

    assert!(ctl
        .ok(&with_root(&root, &["auth", "disable"]))
        .contains("Authentication Disabled"));
    ctl.ok(&["put", "/app/x", "5"]);
}

macro_rules! auth_cases {
    ($($name:ident => $target:literal with $ctl:literal),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let dir = tempfile::tempdir().unwrap();
            let pki = common::pki(dir.path());
            let cluster = start_tls($target, &pki).await;
            tokio::task::spawn_blocking(move || auth_commands(cluster, $ctl, &pki)).await.unwrap();
        }
    )*};
}

auth_cases! {
    auth_tls_etcd_3_5_1_with_etcdctl_3_5_1 => "etcd@3.5.1" with "3.5.1",
    auth_tls_etcd_3_4_23_with_etcdctl_3_4_23 => "etcd@3.4.23" with "3.4.23",
    auth_tls_reference_with_etcdctl_3_5_1 => "reference" with "3.5.1",
    auth_tls_reference_with_etcdctl_3_4_23 => "reference" with "3.4.23",
}
