//! Shared by the reference server's integration tests: starting the built
//! `gauntlet-server` on free loopback ports (killed when dropped), the cached etcd
//! binaries, and a plain HTTP GET.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a single member may take to answer `/health` with 200.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(30);
/// How long a refused configuration may take to exit.
pub const EXIT_WITHIN: Duration = Duration::from_secs(10);

pub const SERVER: &str = env!("CARGO_BIN_EXE_gauntlet-server");

/// The etcd binary of `release` in the target cache, or a panic that says how to get it.
pub fn etcd_binary(release: &str) -> PathBuf {
    let cache = std::env::var_os("GAUNTLET_CACHE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|p| !p.is_empty())
                .map(|p| PathBuf::from(p).join("gauntlet"))
        })
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/gauntlet")))
        .expect("neither GAUNTLET_CACHE nor HOME is set: cannot find the target cache");
    let bin = cache.join(format!("targets/etcd@{release}/etcd"));
    assert!(
        bin.is_file(),
        "etcd {release} is not in the target cache ({} is missing): run `cargo xtask provision` \
         (or `cargo xtask test`, which provisions first)",
        bin.display()
    );
    bin
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A running `gauntlet-server`, killed when dropped (also when a test fails).
pub struct Server {
    pub child: Child,
    pub stderr: PathBuf,
    pub client_port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Command-line flags for a one-member cluster on free ports, data in `dir`.
pub fn member_args(dir: &Path) -> (Vec<String>, u16) {
    let (client, peer) = (free_port(), free_port());
    let args = vec![
        format!(
            "--data-dir={}",
            dir.join(format!("data-{client}")).display()
        ),
        format!("--listen-client-urls=http://127.0.0.1:{client}"),
        format!("--advertise-client-urls=http://127.0.0.1:{client}"),
        format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
        format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
        format!("--initial-cluster=default=http://127.0.0.1:{peer}"),
    ];
    (args, client)
}

/// Starts the server with `args` and `env` (and no inherited `ETCD_*` variable).
pub fn spawn(dir: &Path, args: &[String], env: &[(&str, &str)], client_port: u16) -> Server {
    let stderr = dir.join(format!("stderr-{}.log", free_port()));
    let mut cmd = Command::new(SERVER);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("creating the stderr file"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ETCD_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let child = cmd.spawn().expect("starting gauntlet-server");
    Server {
        child,
        stderr,
        client_port,
    }
}

impl Server {
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for `/health` to answer 200 on the client port; panics with stderr if not.
    pub fn wait_healthy(&mut self) {
        let deadline = Instant::now() + HEALTHY_WITHIN;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "gauntlet-server exited with {status}; stderr:\n{}",
                    self.stderr()
                );
            }
            if http_get(self.client_port, "/health").is_some_and(|(code, _)| code == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gauntlet-server not healthy within {HEALTHY_WITHIN:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the process to exit; returns its code and stderr.
    pub fn wait_exit(&mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + EXIT_WITHIN;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status.code(), self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "gauntlet-server still running after {EXIT_WITHIN:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A plain HTTP/1.1 GET on loopback: `(status, body)`, or `None` if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}
