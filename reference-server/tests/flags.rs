//! etcd's flag surface, checked on the built `gauntlet-server` binary.
//!
//! The first two tests read the flag list from `etcd --help` of the real etcd 3.4.23
//! and 3.5.1 binaries in the target cache (fetched by `cargo xtask test`), and start
//! the server with every one of those flags at the default etcd prints: so no etcd
//! flag is unknown here, and no default is refused. The rest check how values
//! arrive (Go booleans, `ETCD_*` variables, precedence, `--config-file`) and what a
//! few flags do (log files, metrics listeners, refusal of unsupported features).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{etcd_binary, free_port, http_get, member_args, spawn, EXIT_WITHIN};

/// The etcd releases whose `--help` defines the flag surface.
const ETCD_RELEASES: &[&str] = &["3.4.23", "3.5.1"];

/// Flags the tests give their own values (free loopback ports, a temp data dir),
/// whatever etcd prints as default.
const OVERRIDDEN: &[&str] = &[
    "data-dir",
    "listen-peer-urls",
    "listen-client-urls",
    "advertise-client-urls",
    "initial-advertise-peer-urls",
    "initial-cluster",
];

/// Defaults `etcd --help` prints in a form no command line can give, with the value
/// that means the same.
const DEFAULT_EXCEPTIONS: &[(&str, &str)] = &[
    // 3.4 prints the Go constant's name, not its value.
    ("max-concurrent-streams", "4294967295"),
    // 3.5 prints no default at all; the flag is a uint that defaults to 0.
    ("experimental-bootstrap-defrag-threshold-megabytes", "0"),
];

/// `(flag, default)` for every flag `etcd --help` lists; `default` is `None` when
/// etcd prints none.
fn etcd_flags(release: &str) -> Vec<(String, Option<String>)> {
    let bin = etcd_binary(release);
    let out = Command::new(&bin)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("running {} --help: {e}", bin.display()));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let mut flags = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix("--") else {
            continue;
        };
        if !line.starts_with([' ', '\t']) {
            continue;
        }
        let (name, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let rest = rest.trim();
        let default = if let Some(q) = rest.strip_prefix('\'') {
            q.split_once('\'').map(|(v, _)| v.to_string())
        } else if let Some(q) = rest.strip_prefix('"') {
            q.split_once('"').map(|(v, _)| v.to_string())
        } else {
            rest.split_whitespace().next().map(str::to_string)
        };
        flags.push((name.to_string(), default));
    }
    assert!(
        flags.len() >= 75,
        "only {} flags found in `{} --help`: has its format changed?",
        flags.len(),
        bin.display()
    );
    flags
}

fn every_flag_at_its_default_starts(release: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (mut args, client) = member_args(dir.path());
    let mut given = 0;
    for (name, default) in etcd_flags(release) {
        if OVERRIDDEN.contains(&name.as_str()) {
            continue;
        }
        let value = match DEFAULT_EXCEPTIONS.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => v.to_string(),
            None => default.unwrap_or_else(|| {
                panic!(
                    "etcd {release} prints no default for --{name}: add it to DEFAULT_EXCEPTIONS"
                )
            }),
        };
        args.push(format!("--{name}={value}"));
        given += 1;
    }
    let mut server = spawn(dir.path(), &args, &[], client);
    server.wait_healthy();
    assert!(given > 70, "only {given} flags given");
}

#[test]
fn every_etcd_3_4_23_flag_at_its_default_starts_the_server() {
    every_flag_at_its_default_starts(ETCD_RELEASES[0]);
}

#[test]
fn every_etcd_3_5_1_flag_at_its_default_starts_the_server() {
    every_flag_at_its_default_starts(ETCD_RELEASES[1]);
}

/// Each unsupported feature, turned on, makes the server exit 2 with one line naming it.
#[test]
fn unsupported_features_exit_2_with_one_line_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        ("--enable-v2=true", "--enable-v2=true: the v2 API"),
        ("--enable-v2", "--enable-v2=true"),
        (
            "--experimental-enable-v2v3=/v2",
            "--experimental-enable-v2v3=/v2",
        ),
        ("--proxy=on", "--proxy=on"),
        ("--discovery=https://discovery.example/abc", "--discovery="),
        ("--discovery-srv=example.com", "--discovery-srv=example.com"),
        ("--force-new-cluster", "--force-new-cluster=true"),
        (
            "--experimental-enable-distributed-tracing=true",
            "--experimental-enable-distributed-tracing=true",
        ),
        // JWT is supported; a JWT option without its key is bad input, refused the same way.
        (
            "--auth-token=jwt,sign-method=RS256",
            "--auth-token jwt: pub-key= is required",
        ),
        ("--enable-log-rotation", "--enable-log-rotation=true"),
        (
            "--host-whitelist=example.com",
            "--host-whitelist=example.com",
        ),
        (
            "--log-outputs=systemd/journal",
            "--log-outputs=systemd/journal",
        ),
    ];
    for (flag, expected) in cases {
        let (mut args, client) = member_args(dir.path());
        args.push(flag.to_string());
        let mut server = spawn(dir.path(), &args, &[], client);
        let (code, stderr) = server.wait_exit();
        assert_eq!(code, Some(2), "{flag}: exit code; stderr:\n{stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{flag}: want one stderr line, got:\n{stderr}"
        );
        assert!(
            lines[0].starts_with(&format!("gauntlet-server: {expected}")),
            "{flag}: got `{}`",
            lines[0]
        );
    }
}

/// `--flag=false` works for Go booleans, and so does the bare `--flag`.
#[test]
fn go_booleans_take_false_and_bare_forms() {
    let dir = tempfile::tempdir().unwrap();
    let (mut args, client) = member_args(dir.path());
    args.extend(
        [
            "--enable-v2=false",
            "--pre-vote=false",
            "--initial-election-tick-advance=false",
            "--strict-reconfig-check=false",
            "--experimental-enable-lease-checkpoint",
            "--socket-reuse-address=true",
            "--unsafe-no-fsync",
        ]
        .map(String::from),
    );
    let mut server = spawn(dir.path(), &args, &[], client);
    server.wait_healthy();
}

/// `ETCD_*` variables are read; a flag on the command line wins over its variable.
#[test]
fn environment_variables_apply_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    // The variable alone turns the feature on, so it was read.
    let (args, client) = member_args(dir.path());
    let mut server = spawn(dir.path(), &args, &[("ETCD_ENABLE_V2", "true")], client);
    let (code, stderr) = server.wait_exit();
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("--enable-v2=true"), "{stderr}");

    // The flag wins over the variable; the metrics listener comes from a variable.
    let (env_port, flag_port) = (free_port(), free_port());
    let env_metrics = format!("http://127.0.0.1:{env_port}");
    let (mut args, client) = member_args(dir.path());
    args.push("--enable-v2=false".into());
    args.push(format!(
        "--listen-metrics-urls=http://127.0.0.1:{flag_port}"
    ));
    let mut server = spawn(
        dir.path(),
        &args,
        &[
            ("ETCD_ENABLE_V2", "true"),
            ("ETCD_LISTEN_METRICS_URLS", &env_metrics),
        ],
        client,
    );
    server.wait_healthy();
    assert_eq!(http_get(flag_port, "/health").map(|r| r.0), Some(200));
    assert!(
        http_get(env_port, "/health").is_none(),
        "the variable's metrics URL is served too"
    );
    drop(server);

    // Without the flag, the variable's metrics URL is served.
    let (args, client) = member_args(dir.path());
    let mut server = spawn(
        dir.path(),
        &args,
        &[("ETCD_LISTEN_METRICS_URLS", &env_metrics)],
        client,
    );
    server.wait_healthy();
    assert_eq!(http_get(env_port, "/health").map(|r| r.0), Some(200));
}

/// `--config-file` is read with etcd's keys and shapes, and it replaces every other
/// flag and variable.
#[test]
fn config_file_configures_and_overrides_flags_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer, metrics) = (free_port(), free_port(), free_port());
    let log = dir.path().join("etcd.log");
    let yaml = format!(
        "name: m1\n\
         data-dir: {data}\n\
         listen-client-urls: http://127.0.0.1:{client}\n\
         advertise-client-urls: http://127.0.0.1:{client}\n\
         listen-peer-urls: http://127.0.0.1:{peer}\n\
         initial-advertise-peer-urls: http://127.0.0.1:{peer}\n\
         initial-cluster: m1=http://127.0.0.1:{peer}\n\
         initial-cluster-state: new\n\
         listen-metrics-urls: http://127.0.0.1:{metrics}\n\
         log-outputs: [{log}]\n\
         pre-vote: false\n\
         enable-v2: false\n\
         heartbeat-interval: 100\n\
         experimental-watch-progress-notify-interval: 600000000000\n\
         client-transport-security:\n  client-cert-auth: false\n\
         peer-transport-security:\n  auto-tls: false\n\
         experimental-memory-mlock: false\n",
        data = dir.path().join("data").display(),
        log = log.display(),
    );
    let file = dir.path().join("etcd.yml");
    std::fs::write(&file, yaml).unwrap();
    // The flag and both variables would be refused if they were read.
    let args = vec![
        format!("--config-file={}", file.display()),
        "--enable-v2=true".into(),
    ];
    let env = [("ETCD_PROXY", "on"), ("ETCD_PRE_VOTE", "not-a-bool")];
    let mut server = spawn(dir.path(), &args, &env, client);
    server.wait_healthy();
    assert_eq!(http_get(metrics, "/health").map(|r| r.0), Some(200));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("are ignored"), "log:\n{logged}");
    assert!(
        logged.contains("experimental-memory-mlock"),
        "log:\n{logged}"
    );
    drop(server);

    // The file's own values are checked like flags.
    std::fs::write(&file, "enable-v2: true\n").unwrap();
    let args = vec![format!("--config-file={}", file.display())];
    let mut server = spawn(dir.path(), &args, &[], client);
    let (code, stderr) = server.wait_exit();
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.trim().ends_with(
            "--enable-v2=true: the v2 API is not supported by gauntlet-server (only the v3 API)"
        ),
        "{stderr}"
    );

    // Also through ETCD_CONFIG_FILE, and a bad value names the file and the flag.
    std::fs::write(&file, "heartbeat-interval: soon\n").unwrap();
    let path = file.display().to_string();
    let mut server = spawn(dir.path(), &[], &[("ETCD_CONFIG_FILE", &path)], client);
    let (code, stderr) = server.wait_exit();
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--config-file") && stderr.contains("--heartbeat-interval"),
        "{stderr}"
    );
}

/// `--log-outputs` with a file appends the log there and not to stderr.
#[test]
fn log_outputs_write_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    std::fs::write(&log, "an earlier line\n").unwrap();
    let (mut args, client) = member_args(dir.path());
    args.push(format!("--log-outputs={}", log.display()));
    args.push("--log-level=info".into());
    let mut server = spawn(dir.path(), &args, &[], client);
    server.wait_healthy();
    let deadline = Instant::now() + EXIT_WITHIN;
    let logged = loop {
        let logged = std::fs::read_to_string(&log).unwrap();
        if logged.contains("serving") || Instant::now() > deadline {
            break logged;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        logged.starts_with("an earlier line\n"),
        "not appended:\n{logged}"
    );
    assert!(logged.contains("serving"), "log:\n{logged}");
    assert!(
        !server.stderr().contains("serving"),
        "stderr:\n{}",
        server.stderr()
    );
}

/// `--listen-metrics-urls` serves `/metrics` and `/health` (and nothing else).
#[test]
fn listen_metrics_urls_serve_metrics_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (free_port(), free_port());
    let (mut args, client) = member_args(dir.path());
    args.push(format!(
        "--listen-metrics-urls=http://127.0.0.1:{a},http://localhost:{b}"
    ));
    let mut server = spawn(dir.path(), &args, &[], client);
    server.wait_healthy();
    for port in [a, b] {
        let (code, body) = http_get(port, "/metrics").expect("no answer on the metrics URL");
        assert_eq!(code, 200);
        assert!(body.contains("etcd_server_has_leader 1"), "{body}");
        assert_eq!(http_get(port, "/health").map(|r| r.0), Some(200));
        assert_eq!(http_get(port, "/version").map(|r| r.0), Some(404));
    }
}
