//! Launching and abusing clusters of any target that takes etcd's flags.
//!
//! A [`Cluster`] owns its member processes. Members listen on loopback with free
//! ports (or ports from `base_port` up), each with its own data dir and a log file
//! that collects its stdout and stderr across restarts. Operations a fault suite
//! needs: [`Cluster::kill`] (SIGKILL), [`Cluster::stop`] (SIGTERM, then SIGKILL after
//! [`STOP_GRACE`]), [`Cluster::pause`]/[`Cluster::resume`] (SIGSTOP/SIGCONT) and
//! [`Cluster::restart`] (same flags, same data dir).
//!
//! Invariant: no member outlives the [`Cluster`]: `Drop` kills and reaps every
//! member, and every member is started with the parent-death signal set to SIGKILL
//! so that even a harness killed with SIGKILL leaves nothing behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::client::{Client, ClientConfig, ClientError, TlsFiles};
use crate::error::{HarnessError, Result};
use crate::netproxy::Registry;
use crate::provision::Cache;
use crate::target::Target;
use crate::toxiproxy::{ToxiproxyClient, ToxiproxyServer};
use gauntlet_api::etcdserverpb as pb;

/// How long [`Cluster::stop`] waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Most members a cluster may have.
pub const MAX_MEMBERS: usize = 15;
/// Launch attempts when automatically chosen ports turn out to be taken.
const PORT_ATTEMPTS: usize = 3;
/// Interval between readiness polls.
const READY_POLL: Duration = Duration::from_millis(100);
/// Deadline of each readiness probe call.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Deadline of one `/version` request.
const VERSION_TIMEOUT: Duration = Duration::from_secs(2);

/// A member's `/version` document, etcd's `{"etcdserver": …, "etcdcluster": …}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Versions {
    /// The member's server (binary) version, e.g. `3.5.1`.
    #[serde(rename = "etcdserver")]
    pub server: String,
    /// The cluster version as this member knows it (`3.5.0`), or `not_decided`.
    #[serde(rename = "etcdcluster")]
    pub cluster: String,
}

/// What to launch.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The server.
    pub target: Target,
    /// Number of members, 1 to [`MAX_MEMBERS`].
    pub members: usize,
    /// Loopback address the members listen on.
    pub host: IpAddr,
    /// First port; member `i` gets client port `base + 2i` and peer port `base + 2i + 1`.
    /// `None` picks free ports.
    pub base_port: Option<u16>,
    /// etcd's `--heartbeat-interval`.
    pub heartbeat_interval_ms: u64,
    /// etcd's `--election-timeout`.
    pub election_timeout_ms: u64,
    /// More flags for every member.
    pub extra_args: Vec<String>,
    /// Where data dirs and logs go; `None` makes a temporary dir removed on drop.
    pub data_root: Option<PathBuf>,
    /// How long [`Cluster::start`] waits for readiness.
    pub ready_timeout: Duration,
    /// TLS on the client URLs; `None` serves plain HTTP/2.
    pub tls: Option<ClusterTls>,
    /// A fault proxy in front of every member's peer port: members advertise the
    /// proxy's address, so everything sent *to* member `i` crosses proxy `i`
    /// ([`Cluster::peer_proxy`]). `None`: members talk directly.
    pub peer_proxy: Option<PeerProxy>,
    /// Give every member etcd's gofail control endpoint: `GOFAIL_HTTP=127.0.0.1:PORT` in
    /// its environment ([`Cluster::gofail_url`]). Targets built without gofail ignore it.
    pub gofail: bool,
    /// TLS between members (etcd's `--peer-*` flags), with a CA and a certificate the
    /// harness makes for the run. Faults that drop bytes inside peer streams need it:
    /// under TLS a hole is a connection error, in plaintext it corrupts frames.
    pub peer_tls: bool,
    /// Where members run: processes on loopback, or containers on a private network.
    pub backend: Backend,
    /// Mount gauntlet's power-loss filesystem ([`gauntlet_powerfs`]) over every
    /// member's data dir (process backend only), so [`Cluster::power_cut`] can drop
    /// what a member wrote but did not sync. `None`: plain directories.
    pub power_loss: Option<PowerLoss>,
}

/// How the power-loss filesystem under every member behaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PowerLoss {
    /// Creates, renames and unlinks are lost too unless their directory was fsynced
    /// (a stricter disk than LazyFS models).
    pub strict_metadata: bool,
    /// Seed of the filesystem's random choices (where a torn write is cut).
    pub seed: u64,
}

/// Where a cluster's members run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// Processes on the host, listening on loopback ports ([`ClusterSpec::host`]).
    #[default]
    Process,
    /// One container per member, each with its own address on a private Docker network
    /// ([`crate::docker`]): kills, stops and pauses go through Docker, partitions are
    /// packet filter rules in the members' network namespaces. Peer proxies do not apply.
    Docker,
}

impl std::str::FromStr for Backend {
    type Err = HarnessError;
    fn from_str(s: &str) -> Result<Backend> {
        match s {
            "process" => Ok(Backend::Process),
            "docker" => Ok(Backend::Docker),
            other => Err(HarnessError::Invalid(format!(
                "unknown backend `{other}`: expected `process` or `docker`"
            ))),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Process => "process",
            Backend::Docker => "docker",
        })
    }
}

/// Where a cluster's peer proxies come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerProxy {
    /// Gauntlet's own proxies, behind a toxiproxy-compatible API the cluster serves.
    Local,
    /// A toxiproxy server (or anything speaking its API) at this URL.
    Toxiproxy(String),
}

/// The peer proxies of a running cluster.
#[derive(Debug)]
struct PeerProxies {
    client: ToxiproxyClient,
    names: Vec<String>,
    /// Our own API server and its proxies (stopped when the cluster is dropped).
    local: Option<ToxiproxyServer>,
}

/// TLS for the members' client URLs, and the files the harness itself connects with.
#[derive(Debug, Clone)]
pub struct ClusterTls {
    /// etcd's `--cert-file`.
    pub server_cert: PathBuf,
    /// etcd's `--key-file`.
    pub server_key: PathBuf,
    /// etcd's `--trusted-ca-file`; when set, `--client-cert-auth` is on too.
    pub client_ca: Option<PathBuf>,
    /// What the harness's own clients (readiness probes, [`Cluster::client`]) present.
    pub client: TlsFiles,
}

impl ClusterSpec {
    /// `members` members of `target` on 127.0.0.1, with timings suited to tests
    /// (50 ms heartbeats, 500 ms election timeout).
    pub fn new(target: Target, members: usize) -> ClusterSpec {
        ClusterSpec {
            target,
            members,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: None,
            heartbeat_interval_ms: 50,
            election_timeout_ms: 500,
            extra_args: Vec::new(),
            data_root: None,
            ready_timeout: Duration::from_secs(30),
            tls: None,
            peer_proxy: None,
            gofail: false,
            peer_tls: false,
            backend: Backend::Process,
            power_loss: None,
        }
    }
}

/// Whether a member process is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Running.
    Running,
    /// Stopped with SIGSTOP.
    Paused,
    /// Not running (stopped, killed, or exited).
    Stopped,
}

impl std::fmt::Display for MemberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MemberState::Running => "running",
            MemberState::Paused => "paused",
            MemberState::Stopped => "stopped",
        })
    }
}

/// A member, as callers see it.
#[derive(Debug, Clone)]
pub struct MemberInfo {
    /// etcd `--name`.
    pub name: String,
    /// Client URL.
    pub client_url: String,
    /// Peer URL.
    pub peer_url: String,
    /// Data dir.
    pub data_dir: PathBuf,
    /// Log file (stdout and stderr of every incarnation).
    pub log: PathBuf,
    /// Process id while it runs.
    pub pid: Option<u32>,
    /// State.
    pub state: MemberState,
    /// When the last incarnation exited on its own (not stopped, killed or restarted
    /// by the harness): its exit status, e.g. `signal: 6 (SIGABRT) (core dumped)`.
    pub exited: Option<String>,
}

#[derive(Debug)]
struct Member {
    info: MemberInfo,
    /// What it runs as, and that target's binary ([`Cluster::set_member_target`]).
    target: Target,
    binary: PathBuf,
    args: Vec<String>,
    /// Extra environment (`GOFAIL_HTTP`).
    env: Vec<(String, String)>,
    /// Its gofail endpoint, `http://host:port`, when the spec asked for one.
    gofail: Option<String>,
    child: Option<Child>,
    /// The harness asked it to stop (SIGTERM): its exit is not "on its own".
    stopping: bool,
    /// Its container's name, on the docker backend (the child is the attached
    /// `docker run`).
    container: Option<String>,
}

/// A running cluster. See the module docs.
#[derive(Debug)]
pub struct Cluster {
    spec: ClusterSpec,
    root: PathBuf,
    members: Mutex<Vec<Member>>,
    peer_proxies: Option<PeerProxies>,
    /// Every process each member was started as (`m<i>`, pid), newest last: how the
    /// peer proxies tell which member dialed a connection.
    dialers: std::sync::Arc<Mutex<Vec<(String, u32)>>>,
    /// The Docker objects, on the docker backend (removed when the cluster is dropped,
    /// after the members).
    docker: Option<crate::docker::DockerRun>,
    /// The power-loss filesystem under each member's data dir, when the spec asked for
    /// it (unmounted when the cluster is dropped, after the members, before the root
    /// dir goes).
    powerfs: Vec<gauntlet_powerfs::PowerFs>,
    _tmp: Option<tempfile::TempDir>,
}

/// Client and peer port of every member (`2i`, `2i + 1`), then one peer-proxy port per
/// member (`2n + i`) when the spec asks for peer proxies, then one gofail port per member
/// when it asks for gofail: all chosen together, so that none is picked twice.
fn allocate_ports(spec: &ClusterSpec) -> Result<Vec<u16>> {
    let per_member = 2 + usize::from(spec.peer_proxy.is_some()) + usize::from(spec.gofail);
    let n = spec.members * per_member;
    match spec.base_port {
        Some(base) => {
            let mut ports = Vec::with_capacity(n);
            for i in 0..n {
                let port = u16::try_from(usize::from(base) + i).map_err(|_| {
                    HarnessError::Invalid(format!(
                        "--base-port {base} leaves no room for {n} ports"
                    ))
                })?;
                let addr = SocketAddr::new(spec.host, port);
                TcpListener::bind(addr).map_err(|_| HarnessError::PortInUse { addr })?;
                ports.push(port);
            }
            Ok(ports)
        }
        None => {
            // Hold all listeners until every port is chosen, so none is picked twice.
            let listeners: Vec<TcpListener> = (0..n)
                .map(|_| TcpListener::bind(SocketAddr::new(spec.host, 0)))
                .collect::<std::io::Result<_>>()
                .map_err(|e| {
                    HarnessError::io(format!("binding a free port on {}", spec.host), e)
                })?;
            listeners
                .iter()
                .map(|l| l.local_addr().map(|a| a.port()))
                .collect::<std::io::Result<_>>()
                .map_err(|e| HarnessError::io("reading a bound port", e))
        }
    }
}

/// How much of each member log line a `cluster not ready` error quotes: enough for the
/// reference server's leaderless warning with its account of every peer link.
const LOG_LINE_CHARS: usize = 1500;

/// How long every thread of a member's process group may take to stop after SIGSTOP.
const STOP_TAKES_EFFECT: Duration = Duration::from_secs(2);

/// Whether every thread of every live process in process group `pgid` is stopped
/// (`T` in `/proc/<pid>/task/<tid>/stat`; zombies and vanished ones count as
/// stopped; an empty group counts only once its leader is gone). `/proc` is read once
/// per call: a few hundred small files at most.
fn group_stopped(pgid: u32) -> bool {
    // The fields after `comm`, which may itself hold spaces and parentheses.
    fn after_comm(stat: &str) -> Vec<&str> {
        stat.rsplit_once(')')
            .map_or_else(Vec::new, |(_, rest)| rest.split_whitespace().collect())
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true;
    };
    let mut members = 0;
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // state ppid pgrp ...
        if after_comm(&stat).get(2).and_then(|g| g.parse::<u32>().ok()) != Some(pgid) {
            continue;
        }
        members += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(ts) = std::fs::read_to_string(t.path().join("stat")) else {
                continue;
            };
            if !matches!(
                after_comm(&ts).first(),
                Some(&("T" | "t" | "Z" | "X")) | None
            ) {
                return false;
            }
        }
    }
    // No process in the group: stopped only if the member is gone altogether.
    members > 0 || !Path::new(&format!("/proc/{pgid}")).exists()
}

/// The last `lines` non-empty lines of a log file (at most the last 64 KiB of it).
pub(crate) fn log_tail(path: &Path, lines: usize) -> Vec<String> {
    let Ok(mut f) = File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let mut tail: Vec<String> = text
        .lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(lines)
        .map(|l| l.chars().take(1000).collect())
        .collect();
    tail.reverse();
    tail
}

fn last_log_line(path: &Path) -> String {
    let Ok(mut f) = File::open(path) else {
        return "no log".into();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("empty log")
        .trim()
        .chars()
        .take(400)
        .collect()
}

/// Starts `binary` with `args`, output appended to `log`, in its own process group
/// (so a terminal's Ctrl-C reaches only the harness, which then tears down), with
/// SIGKILL as its parent-death signal.
#[allow(unsafe_code)]
fn spawn_member(
    binary: &Path,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| HarnessError::io(format!("opening {}", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| HarnessError::io("duplicating the log handle", e))?;
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    // SAFETY: the closure runs in the child between fork and exec and only makes the
    // prctl(PR_SET_PDEATHSIG) system call, which is async-signal-safe; it allocates
    // nothing and touches no lock.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| HarnessError::io(format!("starting {}", binary.display()), e))
}

/// Makes a CA and one certificate for every member's peer side (serving and client
/// auth alike, valid for 127.0.0.1, ::1, localhost and `ips`), written under `root`; returns
/// (CA, certificate, key) paths.
fn write_peer_pki(root: &Path, ips: &[IpAddr]) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let ca = crate::pki::Ca::new("gauntlet peer CA")?;
    let peer = ca.issue_for(root, "peer", "gauntlet peer", ips)?;
    Ok((ca.write(root, "peer-ca.pem")?, peer.cert, peer.key))
}

/// Refuses a cut link that is not a link of an `n`-member cluster.
fn check_links(cut: &[(usize, usize)], n: usize) -> Result<()> {
    match cut.iter().find(|(a, b)| *a >= n || *b >= n || a == b) {
        Some((a, b)) => Err(HarnessError::Invalid(format!(
            "link m{a}-m{b} is not a link of this {n}-member cluster"
        ))),
        None => Ok(()),
    }
}

/// Mounts the power-loss filesystem over member `i`'s data dir, its durable state in
/// `root/m<i>.durable`.
fn mount_power_fs(
    root: &Path,
    i: usize,
    data_dir: &Path,
    p: PowerLoss,
) -> Result<gauntlet_powerfs::PowerFs> {
    use std::os::unix::fs::DirBuilderExt;
    let backing = root.join(format!("m{i}.durable"));
    for dir in [&backing, &data_dir.to_path_buf()] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| HarnessError::io(format!("creating {}", dir.display()), e))?;
    }
    let opts = gauntlet_powerfs::Options {
        strict_metadata: p.strict_metadata,
        seed: p.seed.wrapping_add(i as u64),
        ..gauntlet_powerfs::Options::default()
    };
    gauntlet_powerfs::PowerFs::mount(&backing, data_dir, opts).map_err(|e| {
        HarnessError::Invalid(format!(
            "mounting the power-loss filesystem over {}: {e}",
            data_dir.display()
        ))
    })
}

/// Empties `dir` (which may be a mount point, so it stays).
fn wipe_dir(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let p = e.path();
        let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|e| HarnessError::io(format!("wiping {}", p.display()), e))?;
    }
    Ok(())
}

/// Sets `flag`'s value in an argument list (`--flag value`), appending it when absent.
fn set_flag(args: &mut Vec<String>, flag: &str, value: &str) {
    match args.iter().position(|a| a == flag) {
        Some(at) if at + 1 < args.len() => args[at + 1] = value.to_string(),
        _ => args.extend([flag.to_string(), value.to_string()]),
    }
}

/// SIGKILLs a member's whole process group (the member and anything it forked) and reaps it.
fn kill_group(m: &mut Member) {
    if let Some(name) = &m.container {
        // Killing the attached client would leave the container running.
        let _ = crate::docker::docker(&["rm", "-f", name]);
    }
    if let Some(mut child) = m.child.take() {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    m.info.pid = None;
    m.info.state = MemberState::Stopped;
}

impl Cluster {
    /// Launches the cluster and waits until every member answers Status and they agree
    /// on a leader.
    pub async fn start(spec: ClusterSpec, cache: &Cache) -> Result<Cluster> {
        if spec.members == 0 || spec.members > MAX_MEMBERS {
            return Err(HarnessError::Invalid(format!(
                "a cluster has 1 to {MAX_MEMBERS} members, not {}",
                spec.members
            )));
        }
        if spec.backend == Backend::Process && !spec.host.is_loopback() {
            return Err(HarnessError::Invalid(format!(
                "members listen on loopback only, not {}",
                spec.host
            )));
        }
        let binary = spec.target.server_binary(cache)?;
        let attempts = if spec.base_port.is_some() {
            1
        } else {
            PORT_ATTEMPTS
        };
        let mut last_err = None;
        for _ in 0..attempts {
            match Self::start_once(&spec, &binary).await {
                Ok(c) => return Ok(c),
                Err(e @ HarnessError::MemberExited { .. })
                    if e.to_string()
                        .to_ascii_lowercase()
                        .contains("address already in use") =>
                {
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| HarnessError::Invalid("no launch attempt made".into())))
    }

    async fn start_once(spec: &ClusterSpec, binary: &Path) -> Result<Cluster> {
        let (tmp, root) = match &spec.data_root {
            Some(r) => {
                std::fs::create_dir_all(r)
                    .map_err(|e| HarnessError::io(format!("creating {}", r.display()), e))?;
                (None, r.clone())
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("gauntlet-cluster-")
                    .tempdir()
                    .map_err(|e| HarnessError::io("creating a temporary cluster dir", e))?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let n = spec.members;
        let docker = match spec.backend {
            Backend::Process => None,
            Backend::Docker => {
                if spec.peer_proxy.is_some() {
                    return Err(HarnessError::Invalid(
                        "peer proxies are for the process backend; the docker backend cuts real links".into(),
                    ));
                }
                let run = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
                let binary = binary.to_path_buf();
                Some(
                    tokio::task::spawn_blocking(move || {
                        crate::docker::DockerRun::create(&run, n, &binary)
                    })
                    .await
                    .map_err(|e| HarnessError::Docker(format!("creating the network: {e}")))??,
                )
            }
        };
        // On the docker backend every member has its own address and etcd's usual
        // ports; on loopback every member has its own ports.
        let ports = match &docker {
            None => allocate_ports(spec)?,
            Some(_) => (0..n).flat_map(|_| [2379, 2380]).collect(),
        };
        let host_of = |i: usize| match &docker {
            Some(d) => d.ips[i].to_string(),
            None => match spec.host {
                IpAddr::V6(v6) => format!("[{v6}]"),
                IpAddr::V4(v4) => v4.to_string(),
            },
        };
        let host = host_of(0);
        let token = match &docker {
            Some(d) => format!("gauntlet-{}", d.run),
            None => format!("gauntlet-{}-{}", std::process::id(), ports[0]),
        };
        let scheme = if spec.tls.is_some() { "https" } else { "http" };
        let peer_proxies = match &spec.peer_proxy {
            None => None,
            Some(kind) => Some(
                start_peer_proxies(kind, &token, &host, &ports[2 * n..3 * n], |i| {
                    format!("{host}:{}", ports[2 * i + 1])
                })
                .await?,
            ),
        };
        let peer_scheme = if spec.peer_tls { "https" } else { "http" };
        let peer_pki = if spec.peer_tls {
            let ips: Vec<IpAddr> = docker
                .as_ref()
                .map(|d| d.ips.iter().map(|ip| IpAddr::V4(*ip)).collect())
                .unwrap_or_default();
            Some(write_peer_pki(&root, &ips)?)
        } else {
            None
        };
        let advertised = |i: usize| match &peer_proxies {
            Some(_) => format!("{peer_scheme}://{host}:{}", ports[2 * n + i]),
            None => format!("{peer_scheme}://{}:{}", host_of(i), ports[2 * i + 1]),
        };
        let infos: Vec<MemberInfo> = (0..spec.members)
            .map(|i| MemberInfo {
                name: format!("m{i}"),
                client_url: format!("{scheme}://{}:{}", host_of(i), ports[2 * i]),
                peer_url: advertised(i),
                data_dir: root.join(format!("m{i}.data")),
                log: root.join(format!("m{i}.log")),
                pid: None,
                state: MemberState::Stopped,
                exited: None,
            })
            .collect();
        let initial_cluster = infos
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for (member_index, info) in infos.into_iter().enumerate() {
            let mut args: Vec<String> = vec![
                "--name".into(),
                info.name.clone(),
                "--data-dir".into(),
                info.data_dir.display().to_string(),
                "--listen-client-urls".into(),
                info.client_url.clone(),
                "--advertise-client-urls".into(),
                info.client_url.clone(),
                "--listen-peer-urls".into(),
                format!(
                    "{peer_scheme}://{}:{}",
                    host_of(member_index),
                    ports[2 * member_index + 1]
                ),
                "--initial-advertise-peer-urls".into(),
                info.peer_url.clone(),
                "--initial-cluster".into(),
                initial_cluster.clone(),
                "--initial-cluster-state".into(),
                "new".into(),
                "--initial-cluster-token".into(),
                token.clone(),
                "--heartbeat-interval".into(),
                spec.heartbeat_interval_ms.to_string(),
                "--election-timeout".into(),
                spec.election_timeout_ms.to_string(),
            ];
            if let Some(tls) = &spec.tls {
                args.extend(["--cert-file".into(), tls.server_cert.display().to_string()]);
                args.extend(["--key-file".into(), tls.server_key.display().to_string()]);
                if let Some(ca) = &tls.client_ca {
                    args.extend([
                        "--trusted-ca-file".into(),
                        ca.display().to_string(),
                        "--client-cert-auth".into(),
                    ]);
                }
            }
            if let Some((ca, cert, key)) = &peer_pki {
                args.extend([
                    "--peer-cert-file".into(),
                    cert.display().to_string(),
                    "--peer-key-file".into(),
                    key.display().to_string(),
                    "--peer-trusted-ca-file".into(),
                    ca.display().to_string(),
                    "--peer-client-cert-auth".into(),
                ]);
            }
            args.extend(spec.extra_args.iter().cloned());
            let (env, gofail) = if spec.gofail && docker.is_some() {
                let ip = host_of(member_index);
                (
                    vec![("GOFAIL_HTTP".to_string(), format!("{ip}:2381"))],
                    Some(format!("http://{ip}:2381")),
                )
            } else if spec.gofail {
                // After the member and proxy ports (allocate_ports).
                let port = ports[ports.len() - n + member_index];
                (
                    vec![("GOFAIL_HTTP".to_string(), format!("{host}:{port}"))],
                    Some(format!("http://{host}:{port}")),
                )
            } else {
                (Vec::new(), None)
            };
            members.push(Member {
                info,
                target: spec.target.clone(),
                binary: binary.to_path_buf(),
                args,
                env,
                gofail,
                child: None,
                stopping: false,
                container: docker.as_ref().map(|d| d.container(member_index)),
            });
        }
        let powerfs = match spec.power_loss {
            None => Vec::new(),
            Some(_) if docker.is_some() => {
                return Err(HarnessError::Invalid(
                    "the power-loss filesystem is for the process backend".into(),
                ))
            }
            Some(p) => members
                .iter()
                .enumerate()
                .map(|(i, m)| mount_power_fs(&root, i, &m.info.data_dir, p))
                .collect::<Result<Vec<_>>>()?,
        };
        let dialers = std::sync::Arc::new(Mutex::new(Vec::new()));
        if let Some(server) = peer_proxies.as_ref().and_then(|p| p.local.as_ref()) {
            for proxy in server.registry().all() {
                let d = std::sync::Arc::clone(&dialers);
                proxy.set_labeler(std::sync::Arc::new(move |peer, listen| {
                    let candidates: Vec<(String, u32)> = d
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .iter()
                        .rev()
                        .cloned()
                        .collect();
                    crate::sockowner::owner(peer, listen, &candidates)
                }));
            }
        }
        let cluster = Cluster {
            spec: spec.clone(),
            root,
            members: Mutex::new(members),
            peer_proxies,
            dialers,
            docker,
            powerfs,
            _tmp: tmp,
        };
        for i in 0..spec.members {
            cluster.spawn(i)?;
        }
        cluster.wait_ready(spec.ready_timeout).await?;
        Ok(cluster)
    }

    /// Member `i` of the locked list, or the error naming the cluster's size.
    fn member_mut(members: &mut [Member], i: usize) -> Result<&mut Member> {
        let total = members.len();
        members.get_mut(i).ok_or(HarnessError::NoSuchMember {
            index: i,
            members: total,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Member>> {
        self.members
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn spawn(&self, i: usize) -> Result<()> {
        let mut members = self.lock();
        let m = Self::member_mut(&mut members, i)?;
        let child = match &self.docker {
            Some(d) => {
                // A container of an earlier incarnation may still be on its way out.
                d.remove(i);
                let args = d.run_args(i, &self.root, &m.env, &m.args);
                spawn_member(Path::new("docker"), &args, &[], &m.info.log)?
            }
            None => spawn_member(&m.binary, &m.args, &m.env, &m.info.log)?,
        };
        {
            let mut d = self
                .dialers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            d.retain(|(name, _)| *name != m.info.name);
            d.push((m.info.name.clone(), child.id()));
        }
        m.info.pid = Some(child.id());
        m.info.state = MemberState::Running;
        m.info.exited = None;
        m.stopping = false;
        m.child = Some(child);
        Ok(())
    }

    /// The directory holding data dirs and logs.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The target the cluster was launched with (members may run another since:
    /// [`Cluster::member_target`]).
    pub fn target(&self) -> &Target {
        &self.spec.target
    }

    /// What member `i` runs as (or will at its next start).
    pub fn member_target(&self, i: usize) -> Result<Target> {
        let mut members = self.lock();
        Ok(Self::member_mut(&mut members, i)?.target.clone())
    }

    /// Makes member `i` start as `target` from its next (re)start on, with the same
    /// flags and data dir: how a member is upgraded or rolled back by binary swap.
    /// Process backend only (a container image holds one binary).
    pub fn set_member_target(&self, i: usize, target: &Target, cache: &Cache) -> Result<()> {
        if self.docker.is_some() {
            return Err(HarnessError::Invalid(
                "members of different targets need the process backend".into(),
            ));
        }
        let binary = target.server_binary(cache)?;
        let mut members = self.lock();
        let m = Self::member_mut(&mut members, i)?;
        m.target = target.clone();
        m.binary = binary;
        Ok(())
    }

    /// Member `i`'s `/version` on its client URL: its server version and the cluster
    /// version it knows (`not_decided` before the first decision), as etcd serves them.
    pub async fn member_version(&self, i: usize) -> std::result::Result<Versions, String> {
        let url = {
            let mut members = self.lock();
            Self::member_mut(&mut members, i)
                .map_err(|e| e.to_string())?
                .info
                .client_url
                .clone()
        };
        if !url.starts_with("http://") {
            return Err(format!("{url}: /version is read over plain HTTP only"));
        }
        let url = format!("{}/version", url.trim_end_matches('/'));
        tokio::task::spawn_blocking(move || {
            let agent = ureq::Agent::new_with_config(
                ureq::Agent::config_builder()
                    .timeout_global(Some(VERSION_TIMEOUT))
                    .build(),
            );
            let text = agent
                .get(&url)
                .call()
                .map_err(|e| format!("GET {url}: {e}"))?
                .body_mut()
                .read_to_string()
                .map_err(|e| format!("GET {url}: {e}"))?;
            serde_json::from_str::<Versions>(&text)
                .map_err(|e| format!("GET {url}: not etcd's version document ({e}): {text}"))
        })
        .await
        .map_err(|e| format!("asking /version: {e}"))?
    }

    /// Number of members.
    pub fn size(&self) -> usize {
        self.spec.members
    }

    /// A snapshot of every member's state.
    pub fn members(&self) -> Vec<MemberInfo> {
        let mut members = self.lock();
        for m in members.iter_mut() {
            Self::reap(m);
        }
        members.iter().map(|m| m.info.clone()).collect()
    }

    /// The last `lines` non-empty lines of member `i`'s log (every incarnation's
    /// stdout and stderr): where a crashed member's panic message is.
    pub fn log_tail(&self, i: usize, lines: usize) -> Result<Vec<String>> {
        let path = {
            let mut members = self.lock();
            Self::member_mut(&mut members, i)?.info.log.clone()
        };
        Ok(log_tail(&path, lines))
    }

    /// The toxiproxy client and proxy name in front of member `i`'s peer port, when
    /// the cluster was started with [`ClusterSpec::peer_proxy`].
    pub fn peer_proxy(&self, i: usize) -> Option<(ToxiproxyClient, String)> {
        let p = self.peer_proxies.as_ref()?;
        Some((p.client.clone(), p.names.get(i)?.clone()))
    }

    /// What member `i`'s peer proxy did (connections, refusals, chunks slowed, cut),
    /// when the proxies are gauntlet's own ([`PeerProxy::Local`]).
    pub fn peer_proxy_stats(
        &self,
        i: usize,
    ) -> Option<std::sync::Arc<crate::netproxy::ProxyStats>> {
        let p = self.peer_proxies.as_ref()?;
        let server = p.local.as_ref()?;
        let name = p.names.get(i)?;
        server.registry().get(name).ok().map(|x| x.stats.clone())
    }

    /// Replaces member `i` the way an operator replaces a failed machine: MemberRemove
    /// through another member, SIGKILL, wipe its data dir, MemberAdd with the same peer
    /// URL (retried while the cluster refuses, e.g. right after the removal), start it
    /// with `--initial-cluster-state existing` and the cluster's current membership,
    /// and wait until the member list shows it started and the cluster is ready.
    /// A member that is down is found in the member list by its name. Returns what
    /// happened, one line per step. [`HarnessError::Unsupported`] when the target
    /// answers MemberRemove with Unimplemented (nothing was changed then).
    pub async fn replace_member(&self, i: usize, timeout: Duration) -> Result<Vec<String>> {
        self.replace_member_as(i, timeout, false).await
    }

    /// [`Cluster::replace_member`], adding the new member back as a learner when
    /// `learner` (MemberAdd with `is_learner`): it catches up, and the caller promotes
    /// it with MemberPromote. The cluster is waited for as ready, the learner included.
    pub async fn replace_member_as(
        &self,
        i: usize,
        timeout: Duration,
        learner: bool,
    ) -> Result<Vec<String>> {
        let n = self.size();
        if n < 2 {
            return Err(HarnessError::Invalid(
                "replacing a member needs another member to ask: 2 or more members".into(),
            ));
        }
        let other = (i + 1) % n;
        let (name, peer_url, data_dir) = {
            let mut members = self.lock();
            let m = Self::member_mut(&mut members, i)?;
            (
                m.info.name.clone(),
                m.info.peer_url.clone(),
                m.info.data_dir.clone(),
            )
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let rpc = |what: &str, e: ClientError| -> HarnessError {
            if e.code() == Some(tonic::Code::Unimplemented) {
                HarnessError::Unsupported(format!("{what}: {e}"))
            } else {
                HarnessError::Invalid(format!("{what}: {e}"))
            }
        };
        let via = self
            .member_client(other)
            .await
            .map_err(|e| rpc("connecting to the member to ask", e))?;
        // Its id from itself, or (a member that is down) from the member list by name.
        let old_id = match self.member_status(i).await {
            Ok(s) => s.header.map_or(0, |h| h.member_id),
            Err(status_err) => via
                .member_list(pb::MemberListRequest {
                    linearizable: false,
                })
                .await
                .ok()
                .and_then(|l| l.members.into_iter().find(|m| m.name == name))
                .map(|m| m.id)
                .ok_or_else(|| {
                    HarnessError::Invalid(format!(
                        "Status of {name}: {status_err}; and no member named {name} in m{other}'s member list"
                    ))
                })?,
        };
        let mut evidence = Vec::new();
        // Removal: retried while the cluster is briefly unwilling, never past the deadline.
        loop {
            match via
                .member_remove(pb::MemberRemoveRequest { id: old_id })
                .await
            {
                Ok(_) => break,
                Err(e) if e.code() == Some(tonic::Code::Unimplemented) => {
                    return Err(rpc("MemberRemove", e))
                }
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(rpc("MemberRemove", e))
                }
                Err(_) => tokio::time::sleep(READY_POLL).await,
            }
        }
        evidence.push(format!("removed {name} ({old_id:x}) through m{other}"));
        {
            let mut members = self.lock();
            let m = Self::member_mut(&mut members, i)?;
            m.stopping = true;
            kill_group(m);
        }
        wipe_dir(&data_dir)?;
        evidence.push(format!("killed {name} and wiped its data dir"));
        let added = loop {
            match via
                .member_add(pb::MemberAddRequest {
                    peer_ur_ls: vec![peer_url.clone()],
                    is_learner: learner,
                })
                .await
            {
                Ok(r) => break r,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(rpc("MemberAdd", e))
                }
                Err(_) => tokio::time::sleep(READY_POLL).await,
            }
        };
        let new_id = added.member.as_ref().map_or(0, |m| m.id);
        let initial_cluster = added
            .members
            .iter()
            .flat_map(|m| {
                let who = if m.id == new_id || m.name.is_empty() {
                    name.clone()
                } else {
                    m.name.clone()
                };
                m.peer_ur_ls
                    .iter()
                    .map(move |u| format!("{who}={u}"))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
            .join(",");
        evidence.push(format!(
            "added back as {}{new_id:x} with peer URL {peer_url}",
            if learner { "learner " } else { "" }
        ));
        {
            let mut members = self.lock();
            let m = Self::member_mut(&mut members, i)?;
            set_flag(&mut m.args, "--initial-cluster-state", "existing");
            set_flag(&mut m.args, "--initial-cluster", &initial_cluster);
        }
        self.spawn(i)?;
        let started = tokio::time::Instant::now();
        loop {
            let list = via
                .member_list(pb::MemberListRequest {
                    linearizable: false,
                })
                .await;
            if list
                .as_ref()
                .is_ok_and(|l| l.members.iter().any(|m| m.id == new_id && m.name == name))
            {
                break;
            }
            self.check_exits()?;
            if tokio::time::Instant::now() >= deadline {
                return Err(HarnessError::NotReady {
                    after_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    detail: format!(
                        "{name} ({new_id:x}) never showed as started in the member list"
                    ),
                });
            }
            tokio::time::sleep(READY_POLL).await;
        }
        evidence.push(format!(
            "{name} started with --initial-cluster-state existing; the member list showed it after {} ms",
            started.elapsed().as_millis()
        ));
        let rest = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.wait_ready(rest.max(Duration::from_secs(1))).await?;
        Ok(evidence)
    }

    /// Cuts exactly the links in `cut` (pairs of member indexes; either order) and
    /// restores every other: each connection between two cut members is blackholed in
    /// both directions ([`crate::netproxy`]'s partitions). An empty list heals all.
    /// Needs gauntlet's own peer proxies ([`PeerProxy::Local`]): a toxiproxy cannot tell
    /// which member dialed a connection.
    pub fn set_partition(&self, cut: &[(usize, usize)]) -> Result<()> {
        let n = self.size();
        let blocked_of = |i: usize| -> std::collections::BTreeSet<usize> {
            cut.iter()
                .filter_map(|&(a, b)| match (a == i, b == i) {
                    (true, _) => Some(b),
                    (_, true) => Some(a),
                    _ => None,
                })
                .collect()
        };
        if let Some(d) = &self.docker {
            check_links(cut, n)?;
            for i in 0..n {
                d.set_blocked(i, &blocked_of(i))?;
            }
            return Ok(());
        }
        let p = self.peer_proxies.as_ref().ok_or_else(|| {
            HarnessError::Invalid("the cluster has no peer proxies (partitions need them)".into())
        })?;
        let server = p.local.as_ref().ok_or_else(|| {
            HarnessError::Invalid(
                "partitions need gauntlet's own peer proxies, not a toxiproxy server".into(),
            )
        })?;
        check_links(cut, n)?;
        for (i, name) in p.names.iter().enumerate() {
            let blocked = blocked_of(i).iter().map(|j| format!("m{j}")).collect();
            server
                .registry()
                .set_blocked(name, blocked)
                .map_err(|e| HarnessError::Invalid(format!("partitioning {name}: {e}")))?;
        }
        Ok(())
    }

    /// What partitions have dropped so far, per member: chunks its peer proxy dropped on
    /// cut links (process backend) or packets its filter rules dropped (docker backend),
    /// with the unit's name.
    pub fn partition_drops(&self) -> (Vec<u64>, &'static str) {
        let n = self.size();
        match &self.docker {
            Some(d) => ((0..n).map(|i| d.dropped_packets(i)).collect(), "packets"),
            None => (
                (0..n)
                    .map(|i| {
                        self.peer_proxy_stats(i).map_or(0, |s| {
                            s.chunks_partitioned
                                .load(std::sync::atomic::Ordering::Relaxed)
                        })
                    })
                    .collect(),
                "chunks",
            ),
        }
    }

    /// Shapes member `i`'s traffic with its peers (docker backend only; see
    /// [`crate::docker::NetShape`]). [`HarnessError::Unsupported`] when the kernel lacks
    /// what the shape needs.
    pub fn shape_network(&self, i: usize, shape: crate::docker::NetShape) -> Result<()> {
        let d = self.docker.as_ref().ok_or_else(|| {
            HarnessError::Invalid("network shaping needs the docker backend".into())
        })?;
        if i >= self.size() {
            return Err(HarnessError::NoSuchMember {
                index: i,
                members: self.size(),
            });
        }
        d.shape(i, shape)
    }

    /// Power loss on member `i`, which must not be running (SIGKILL it first, as a
    /// power cut stops it): drops everything it wrote but did not sync, and returns
    /// only once that is done, with what was lost. Needs [`ClusterSpec::power_loss`].
    pub fn power_cut(&self, i: usize) -> Result<gauntlet_powerfs::CutReport> {
        {
            let mut members = self.lock();
            let m = Self::member_mut(&mut members, i)?;
            Self::reap(m);
            if m.info.state != MemberState::Stopped {
                return Err(HarnessError::MemberState {
                    name: m.info.name.clone(),
                    state: m.info.state.to_string(),
                    action: "cut its power (kill it first)".into(),
                });
            }
        }
        let fs = self.power_fs(i)?;
        fs.control()
            .power_cut()
            .map_err(|e| HarnessError::Invalid(format!("power cut of m{i}: {e}")))
    }

    /// Sets the disk faults of member `i`'s power-loss filesystem (replacing earlier
    /// ones; `Faults::default()` clears them).
    pub fn set_disk_faults(&self, i: usize, faults: gauntlet_powerfs::Faults) -> Result<()> {
        let fs = self.power_fs(i)?;
        fs.control()
            .set_faults(faults)
            .map_err(|e| HarnessError::Invalid(format!("disk faults of m{i}: {e}")))
    }

    /// Member `i`'s power-loss filesystem.
    fn power_fs(&self, i: usize) -> Result<&gauntlet_powerfs::PowerFs> {
        self.powerfs.get(i).ok_or_else(|| {
            HarnessError::Invalid(
                "the cluster has no power-loss filesystem (ClusterSpec::power_loss)".into(),
            )
        })
    }

    /// What member `i` has written but not synced, when it runs on the power-loss
    /// filesystem.
    pub fn unsynced(&self, i: usize) -> Option<gauntlet_powerfs::Unsynced> {
        self.powerfs.get(i).map(|fs| fs.control().unsynced())
    }

    /// Packets member `i`'s delay fault has delayed and reordered so far, while one is on
    /// (docker backend, [`crate::docker::NetShape::Delay`]).
    pub fn delayed_packets(&self, i: usize) -> Option<(u64, u64)> {
        self.docker.as_ref()?.delayed_packets(i)
    }

    /// Where members run.
    pub fn backend(&self) -> Backend {
        self.spec.backend
    }

    /// The Docker run's id (label `gauntlet.run`), on the docker backend.
    pub fn docker_run(&self) -> Option<&str> {
        self.docker.as_ref().map(|d| d.run.as_str())
    }

    /// Whether members talk TLS to each other ([`ClusterSpec::peer_tls`]).
    pub fn peer_tls(&self) -> bool {
        self.spec.peer_tls
    }

    /// Member `i`'s gofail control endpoint (`http://host:port`), when the cluster was
    /// started with [`ClusterSpec::gofail`].
    pub fn gofail_url(&self, i: usize) -> Option<String> {
        self.lock().get(i).and_then(|m| m.gofail.clone())
    }

    /// Client URLs of all members, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.lock()
            .iter()
            .map(|m| m.info.client_url.clone())
            .collect()
    }

    /// Process ids of members that are running or paused.
    pub fn pids(&self) -> Vec<u32> {
        self.members().iter().filter_map(|m| m.pid).collect()
    }

    /// The client configuration for these endpoints (TLS files included when the
    /// cluster serves TLS).
    pub fn client_config(&self, endpoints: Vec<String>) -> ClientConfig {
        let mut cfg = ClientConfig::new(endpoints);
        cfg.tls = self.spec.tls.as_ref().map(|t| t.client.clone());
        cfg
    }

    /// A client over every member.
    pub async fn client(&self) -> std::result::Result<Client, ClientError> {
        Client::connect(self.client_config(self.endpoints())).await
    }

    /// A client of member `i` only.
    pub async fn member_client(&self, i: usize) -> std::result::Result<Client, ClientError> {
        let url = self
            .endpoints()
            .get(i)
            .cloned()
            .ok_or_else(|| ClientError::Config(format!("no member {i}")))?;
        Client::connect(self.client_config(vec![url])).await
    }

    /// Notices a member that exited on its own.
    fn reap(m: &mut Member) {
        if let Some(child) = m.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                if !m.stopping {
                    m.info.exited = Some(status.to_string());
                }
                m.child = None;
                m.info.pid = None;
                m.info.state = MemberState::Stopped;
            }
        }
    }

    fn signal(
        &self,
        i: usize,
        sig: Signal,
        need: MemberState,
        then: MemberState,
        action: &str,
    ) -> Result<()> {
        let mut members = self.lock();
        let m = Self::member_mut(&mut members, i)?;
        Self::reap(m);
        if m.info.state != need {
            return Err(HarnessError::MemberState {
                name: m.info.name.clone(),
                state: m.info.state.to_string(),
                action: action.into(),
            });
        }
        if let Some(name) = &m.container {
            // The attached client's signals would not reach the container.
            match sig {
                Signal::SIGSTOP => crate::docker::docker(&["pause", name])?,
                Signal::SIGCONT => crate::docker::docker(&["unpause", name])?,
                other => crate::docker::docker(&["kill", "--signal", other.as_str(), name])?,
            };
            m.info.state = then;
            return Ok(());
        }
        let pid = m.info.pid.ok_or_else(|| {
            HarnessError::Invalid(format!("member {} has no process", m.info.name))
        })?;
        let group = Pid::from_raw(
            -i32::try_from(pid).map_err(|_| HarnessError::Invalid("pid out of range".into()))?,
        );
        kill(group, sig)
            .map_err(|e| HarnessError::io(format!("{action} {}", m.info.name), e.into()))?;
        if sig == Signal::SIGSTOP {
            // kill(2) returns before every thread has taken the stop: a request sent
            // right after could still be answered. Pausing means it answers nothing.
            let start = std::time::Instant::now();
            while !group_stopped(pid) {
                if start.elapsed() >= STOP_TAKES_EFFECT {
                    return Err(HarnessError::Invalid(format!(
                        "{action} {}: its process group was not stopped {} ms after SIGSTOP",
                        m.info.name,
                        STOP_TAKES_EFFECT.as_millis()
                    )));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        m.info.state = then;
        Ok(())
    }

    /// SIGSTOP member `i` (it keeps its connections but answers nothing).
    pub fn pause(&self, i: usize) -> Result<()> {
        self.signal(
            i,
            Signal::SIGSTOP,
            MemberState::Running,
            MemberState::Paused,
            "pause",
        )
    }

    /// SIGCONT a paused member.
    pub fn resume(&self, i: usize) -> Result<()> {
        self.signal(
            i,
            Signal::SIGCONT,
            MemberState::Paused,
            MemberState::Running,
            "resume",
        )
    }

    /// SIGKILL member `i` and reap it. Killing a stopped member is a no-op.
    pub fn kill(&self, i: usize) -> Result<()> {
        let mut members = self.lock();
        let m = Self::member_mut(&mut members, i)?;
        kill_group(m);
        Ok(())
    }

    /// SIGTERM member `i`, wait up to [`STOP_GRACE`] for it to exit, then SIGKILL.
    pub async fn stop(&self, i: usize) -> Result<()> {
        {
            let mut members = self.lock();
            let m = Self::member_mut(&mut members, i)?;
            Self::reap(m);
            let Some(child) = m.child.as_ref() else {
                return Ok(());
            };
            m.stopping = true;
            if let Some(name) = &m.container {
                if m.info.state == MemberState::Paused {
                    let _ = crate::docker::docker(&["unpause", name]);
                }
                let _ = crate::docker::docker(&["kill", "--signal", "TERM", name]);
            } else if let Ok(pid) = i32::try_from(child.id()) {
                if m.info.state == MemberState::Paused {
                    let _ = kill(Pid::from_raw(-pid), Signal::SIGCONT);
                }
                let _ = kill(Pid::from_raw(-pid), Signal::SIGTERM);
            }
        }
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        loop {
            {
                let mut members = self.lock();
                let m = &mut members[i];
                Self::reap(m);
                if m.info.state == MemberState::Stopped {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return self.kill(i);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts a stopped member again with the same flags and data dir (SIGKILLs it
    /// first if it is still running), without waiting for it to serve.
    pub fn restart(&self, i: usize) -> Result<()> {
        self.kill(i)?;
        self.spawn(i)
    }

    /// Restarts member `i` (SIGKILL first if it runs) with `flags` (each `--name=value`)
    /// replacing any flag of the same name it ran with, or added; it keeps them for later
    /// restarts. Does not wait for it to serve.
    pub fn restart_with_flags(&self, i: usize, flags: &[String]) -> Result<()> {
        self.kill(i)?;
        {
            let mut members = self.lock();
            let m = Self::member_mut(&mut members, i)?;
            for f in flags {
                let name = f.split_once('=').map_or(f.as_str(), |(n, _)| n);
                let prefix = format!("{name}=");
                m.args.retain(|a| a != name && !a.starts_with(&prefix));
                m.args.push(f.clone());
            }
        }
        self.spawn(i)
    }

    /// Waits until every running member answers Status and all of them name the same
    /// leader, which is itself a running member (so right after the leader is killed
    /// this waits for a new election); errors after `timeout`, or as soon as a
    /// member that should be running has exited.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.check_exits()?;
            let detail = match self.probe().await {
                Ok(()) => return Ok(()),
                Err(d) => d,
            };
            if tokio::time::Instant::now() >= deadline {
                // The members' own last words, for a cluster that never settled.
                let logs: Vec<String> = self
                    .members()
                    .iter()
                    .map(|m| {
                        let tail: Vec<String> = log_tail(&m.log, 3)
                            .into_iter()
                            .map(|l| l.chars().take(LOG_LINE_CHARS).collect())
                            .collect();
                        format!("{}: {}", m.name, tail.join(" / "))
                    })
                    .collect();
                // What crossed the peer proxies: whether members reached each other at all.
                let proxies: Vec<String> = (0..self.size())
                    .filter_map(|i| {
                        let s = self.peer_proxy_stats(i)?;
                        let n = |a: &std::sync::atomic::AtomicU64| {
                            a.load(std::sync::atomic::Ordering::Relaxed)
                        };
                        Some(format!(
                            "m{i}: {} connections ({} open, {} refused, {} without upstream, {} failed accepts), {} chunks ({} partitioned, {} dropped)",
                            n(&s.connections),
                            n(&s.open),
                            n(&s.refused),
                            n(&s.upstream_failed),
                            n(&s.accept_errors),
                            n(&s.chunks),
                            n(&s.chunks_partitioned),
                            n(&s.chunks_dropped)
                        ))
                    })
                    .collect();
                let proxies = if proxies.is_empty() {
                    String::new()
                } else {
                    format!("; inbound peer proxies: {}", proxies.join(", "))
                };
                return Err(HarnessError::NotReady {
                    after_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    detail: format!("{detail}{proxies}; last log lines: {}", logs.join(" | ")),
                });
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    fn check_exits(&self) -> Result<()> {
        let mut members = self.lock();
        for m in members.iter_mut() {
            if let Some(child) = m.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    m.child = None;
                    m.info.pid = None;
                    m.info.state = MemberState::Stopped;
                    m.info.exited = Some(status.to_string());
                    return Err(HarnessError::MemberExited {
                        name: m.info.name.clone(),
                        status: status.to_string(),
                        log: m.info.log.clone(),
                        last_line: last_log_line(&m.info.log),
                    });
                }
            }
        }
        Ok(())
    }

    /// Status of member `i`, asked on a fresh connection with a short deadline
    /// ([`PROBE_TIMEOUT`]): a paused or cut-off member answers with an error, fast.
    pub async fn member_status(&self, i: usize) -> std::result::Result<pb::StatusResponse, String> {
        let url = self
            .endpoints()
            .get(i)
            .cloned()
            .ok_or_else(|| format!("no member {i}"))?;
        self.status_of(&url).await
    }

    async fn status_of(&self, url: &str) -> std::result::Result<pb::StatusResponse, String> {
        let mut cfg = self.client_config(vec![url.to_string()]);
        cfg.dial_timeout = PROBE_TIMEOUT;
        cfg.command_timeout = PROBE_TIMEOUT;
        let client = Client::connect(cfg).await.map_err(|e| e.to_string())?;
        client
            .status(pb::StatusRequest {})
            .await
            .map_err(|e| e.to_string())
    }

    async fn probe(&self) -> std::result::Result<(), String> {
        let running: Vec<(String, String)> = self
            .members()
            .into_iter()
            .filter(|m| m.state == MemberState::Running)
            .map(|m| (m.name, m.client_url))
            .collect();
        if running.is_empty() {
            return Err("no member is running".into());
        }
        let answers =
            futures::future::join_all(running.iter().map(|(_, url)| self.status_of(url))).await;
        let mut leaders = Vec::new();
        let mut ids = Vec::new();
        let mut views = Vec::new();
        let mut leaderless = None;
        for ((name, _), a) in running.iter().zip(answers) {
            let s = a.map_err(|e| format!("{name}: {e}"))?;
            views.push(format!(
                "{name}: leader {:x}, term {}, raft index {}",
                s.leader, s.raft_term, s.raft_index
            ));
            if s.leader == 0 && leaderless.is_none() {
                leaderless = Some(name.clone());
            }
            leaders.push(s.leader);
            ids.push(s.header.map(|h| h.member_id).unwrap_or_default());
        }
        if let Some(name) = leaderless {
            return Err(format!("{name} knows no leader ({})", views.join("; ")));
        }
        leaders.dedup();
        if leaders.len() != 1 {
            return Err(format!("members disagree on the leader: {leaders:x?}"));
        }
        if !ids.contains(&leaders[0]) {
            return Err(format!("leader {:x} is not a running member", leaders[0]));
        }
        Ok(())
    }

    /// Index of the member that is leader now, by asking the running members.
    pub async fn leader(&self) -> Result<usize> {
        let members = self.members();
        let mut ids = Vec::new();
        let mut leader = None;
        let mut last_err = String::from("no member is running");
        for m in &members {
            if m.state != MemberState::Running {
                ids.push(None);
                continue;
            }
            match self.status_of(&m.client_url).await {
                Ok(s) => {
                    ids.push(s.header.map(|h| h.member_id));
                    if s.leader != 0 {
                        leader = Some(s.leader);
                    }
                }
                Err(e) => {
                    ids.push(None);
                    last_err = format!("{}: {e}", m.name);
                }
            }
        }
        let leader = leader.ok_or_else(|| HarnessError::NotReady {
            after_ms: 0,
            detail: format!("no leader known ({last_err})"),
        })?;
        ids.iter()
            .position(|id| *id == Some(leader))
            .ok_or_else(|| HarnessError::NotReady {
                after_ms: 0,
                detail: format!("leader {leader:x} is not a running member"),
            })
    }

    /// Kills and reaps every member now (what `Drop` does).
    pub fn shutdown(&self) {
        let mut members = self.lock();
        for m in members.iter_mut() {
            kill_group(m);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
        // Proxies on someone else's toxiproxy are removed; our own stop with the cluster.
        if let Some(p) = &self.peer_proxies {
            if p.local.is_none() {
                for name in &p.names {
                    let _ = p.client.delete_proxy(name);
                }
            }
        }
    }
}

/// Creates one proxy per member (`<token>-m<i>-peer`, listening on `ports[i]`,
/// forwarding to `upstream(i)`) on our own API server or on a toxiproxy.
async fn start_peer_proxies(
    kind: &PeerProxy,
    token: &str,
    host: &str,
    ports: &[u16],
    upstream: impl Fn(usize) -> String,
) -> Result<PeerProxies> {
    let (client, local) = match kind {
        PeerProxy::Local => {
            let registry = std::sync::Arc::new(Registry::new(u64::from(ports[0])));
            let server = ToxiproxyServer::start(
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
                registry,
            )
            .await?;
            (ToxiproxyClient::new(&server.url()), Some(server))
        }
        PeerProxy::Toxiproxy(url) => (ToxiproxyClient::new(url), None),
    };
    let mut names = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let name = format!("{token}-m{i}-peer");
        let c = client.clone();
        let (n, listen, up) = (name.clone(), format!("{host}:{port}"), upstream(i));
        tokio::task::spawn_blocking(move || c.create_proxy(&n, &listen, &up))
            .await
            .map_err(|e| HarnessError::Invalid(format!("creating peer proxy {name}: {e}")))?
            .map_err(|e| HarnessError::Invalid(format!("creating peer proxy {name}: {e}")))?;
        names.push(name);
    }
    Ok(PeerProxies {
        client,
        names,
        local,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_base_port_is_reported() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut spec = ClusterSpec::new(Target::Reference, 1);
        spec.base_port = Some(port);
        let err = allocate_ports(&spec).unwrap_err().to_string();
        assert_eq!(err, format!("port 127.0.0.1:{port} is already in use"));
    }

    #[test]
    fn a_group_counts_as_stopped_only_once_every_thread_is() {
        use std::os::unix::process::CommandExt as _;
        let mut child = Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        let group = Pid::from_raw(-i32::try_from(pid).unwrap());
        assert!(!group_stopped(pid), "a running group is not stopped");
        kill(group, Signal::SIGSTOP).unwrap();
        let start = std::time::Instant::now();
        while !group_stopped(pid) {
            assert!(start.elapsed() < STOP_TAKES_EFFECT, "never seen stopped");
            std::thread::sleep(Duration::from_millis(2));
        }
        kill(group, Signal::SIGCONT).unwrap();
        let start = std::time::Instant::now();
        while group_stopped(pid) {
            assert!(
                start.elapsed() < STOP_TAKES_EFFECT,
                "never seen running again"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            group_stopped(pid),
            "a group whose leader is gone counts as stopped"
        );
    }

    #[test]
    fn free_ports_are_distinct() {
        let spec = ClusterSpec::new(Target::Reference, 5);
        let mut ports = allocate_ports(&spec).unwrap();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 10);
        // Peer proxies and gofail endpoints get theirs in the same draw.
        let mut spec = ClusterSpec::new(Target::Reference, 5);
        spec.peer_proxy = Some(PeerProxy::Local);
        spec.gofail = true;
        let mut ports = allocate_ports(&spec).unwrap();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 20);
    }

    #[tokio::test]
    async fn bad_member_counts_are_rejected() {
        let cache = Cache::at(std::env::temp_dir());
        for n in [0, MAX_MEMBERS + 1] {
            let err = Cluster::start(ClusterSpec::new(Target::Reference, n), &cache)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("1 to 15 members"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_member_that_exits_at_start_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("fake-etcd");
        std::fs::write(
            &bin,
            "#!/bin/sh\necho \"fatal: cannot start ($1 $2)\" >&2\nexit 3\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let spec = ClusterSpec::new(Target::Exec { path: bin }, 1);
        let err = Cluster::start(spec, &Cache::at(dir.path().into()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("member m0 exited") && err.contains("fatal: cannot start (--name m0)"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_member_that_never_serves_times_out_and_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("silent");
        // A forked grandchild with a unique command line, to prove whole groups are killed.
        let marker = format!(
            "{}.{}",
            500 + std::process::id() % 400,
            dir.path().to_string_lossy().len() * 7919 % 100_000
        );
        std::fs::write(&bin, format!("#!/bin/sh\nsleep {marker} &\nwait\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut spec = ClusterSpec::new(Target::Exec { path: bin }, 2);
        spec.ready_timeout = Duration::from_millis(800);
        let err = Cluster::start(spec, &Cache::at(dir.path().into()))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not ready after 800 ms"), "{err}");
        // The half-started cluster was dropped: its `sleep`s must be gone.
        for pattern in [
            dir.path().join("silent").display().to_string(),
            format!("sleep {marker}"),
        ] {
            let out = Command::new("pgrep")
                .args(["-f", &pattern])
                .output()
                .unwrap();
            assert!(
                out.stdout.is_empty(),
                "leftover {pattern}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}
