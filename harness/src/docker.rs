//! The container backend: every member in its own container, with its own address on
//! a private Docker network, so that faults hit real network paths.
//!
//! Gauntlet drives Docker through the `docker` command-line client. The client
//! negotiates the API version with the engine by itself (this machine's Docker Engine
//! 20.10 speaks API 1.41 at most and refuses newer clients with "client version 1.47
//! is too new"), every call gets a deadline here ([`DOCKER_CALL`]), and each step can
//! be replayed by hand from the evidence.
//!
//! What a run creates, and how it goes away:
//! - **Images** (`gauntlet-member:<hash>`): built locally from files, as there is no
//!   registry: a `scratch` image holding the target's binary at `/member` and every
//!   shared library `ldd` lists at its own path. The tag is a hash of those files, so
//!   an image is built once per binary and reused (images are the only thing kept); an
//!   image built from a binary path replaces the older images of that path.
//! - **A network** per cluster (`gauntlet-<run>`), a user-defined bridge with a subnet
//!   gauntlet picks at random in 10.200.0.0/13; member `i` gets the fixed address `.10 + i`, kept across restarts.
//! - **Containers** per member incarnation (`gauntlet-<run>-m<i>`), started with
//!   `docker run --rm` attached, so the client process's exit is the member's exit
//!   and its output goes to the member's log. The cluster's root dir is bind-mounted at
//!   the same path, so data dirs and certificate paths are the same inside and out and
//!   a restarted member finds its data.
//!
//! Everything carries the labels `gauntlet.run` and `gauntlet.owner` (the harness's
//! pid). [`DockerRun`]'s `Drop` removes its containers and network; [`sweep_orphans`]
//! removes what a harness killed before its `Drop` ran left behind (its owner pid is
//! gone), and runs before every new cluster.
//!
//! Network faults are packet filter rules (iptables) and queueing disciplines (tc)
//! set from the host inside a container's network namespace (`nsenter -t PID -n`), so
//! images need no tools. Delay and reordering are done in userspace
//! ([`crate::netdelay`]) rather than with netem, which not every kernel has (this
//! machine's does not: `tc qdisc add ... netem` says "Specified qdisc kind is unknown").
//! A partition drops every packet between two members' addresses
//! in both directions; clients reach members from the host's side of the bridge and are
//! not cut.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{HarnessError, Result};

/// Deadline of one `docker` call (image builds get [`DOCKER_BUILD`]).
pub const DOCKER_CALL: Duration = Duration::from_secs(60);
/// Deadline of an image build.
pub const DOCKER_BUILD: Duration = Duration::from_secs(300);
/// Deadline of one `nsenter` call (iptables, tc).
const NS_CALL: Duration = Duration::from_secs(10);
/// The label naming a run; every object of the run has it.
pub const RUN_LABEL: &str = "gauntlet.run";
/// The label holding the pid of the harness that owns an object.
pub const OWNER_LABEL: &str = "gauntlet.owner";
/// Rules for packets both from and to a peer.
const BOTH_WAYS: &[&str] = &["-s", "-d"];
/// The NFQUEUE number delayed packets go to (each member has its own namespace).
const DELAY_QUEUE: u16 = 7;
/// Subnets tried before giving up on creating a network.
const SUBNET_ATTEMPTS: usize = 8;
/// The chain gauntlet's partition rules live in, in every member's namespace.
const CHAIN: &str = "GAUNTLET";

/// Runs `program args`, killing it at `deadline`; returns its stdout, or an error
/// with the first line of its stderr.
pub(crate) fn run_with_deadline(
    program: &str,
    args: &[String],
    deadline: Duration,
) -> Result<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HarnessError::io(format!("starting {program}"), e))?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HarnessError::Docker(format!(
                    "`{program} {}` did not finish within {} s",
                    args.join(" "),
                    deadline.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(HarnessError::io(format!("waiting for {program}"), e)),
        }
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        let why = stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .trim()
            .to_string();
        return Err(HarnessError::Docker(format!(
            "`{program} {}` failed ({status}): {why}",
            args.join(" ")
        )));
    }
    Ok(stdout)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_string()).collect()
}

/// One `docker` call with [`DOCKER_CALL`] as its deadline.
pub fn docker(args: &[&str]) -> Result<String> {
    run_with_deadline("docker", &strings(args), DOCKER_CALL)
}

/// Whether the Docker engine answers; `Err` says why not, in one line.
pub fn available() -> Result<String> {
    let v = docker(&["version", "--format", "{{.Server.APIVersion}}"])
        .map_err(|e| HarnessError::Docker(format!("the Docker engine is not reachable: {e}")))?;
    Ok(v.trim().to_string())
}

/// Whether process `pid` exists.
fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes every container and network whose owner (label [`OWNER_LABEL`]) is no longer
/// running: what a harness killed before it could clean up left. Returns what it removed.
pub fn sweep_orphans() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let rows = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={OWNER_LABEL}"),
        "--format",
        &format!("{{{{.ID}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}"),
    ])?;
    for line in rows.lines() {
        let mut parts = line.split_whitespace();
        let (Some(id), owner) = (parts.next(), parts.next()) else {
            continue;
        };
        let orphan = owner
            .and_then(|o| o.parse::<u32>().ok())
            .is_none_or(|pid| !pid_alive(pid));
        if orphan && docker(&["rm", "-f", id]).is_ok() {
            removed.push(format!("container {id}"));
        }
    }
    let nets = docker(&[
        "network",
        "ls",
        "--filter",
        &format!("label={OWNER_LABEL}"),
        "--format",
        "{{.Name}}",
    ])?;
    for name in nets.lines().map(str::trim).filter(|n| !n.is_empty()) {
        let owner = docker(&[
            "network",
            "inspect",
            "--format",
            &format!("{{{{index .Labels \"{OWNER_LABEL}\"}}}}"),
            name,
        ])
        .unwrap_or_default();
        let orphan = owner
            .trim()
            .parse::<u32>()
            .ok()
            .is_none_or(|pid| !pid_alive(pid));
        if orphan && docker(&["network", "rm", name]).is_ok() {
            removed.push(format!("network {name}"));
        }
    }
    Ok(removed)
}

/// Containers and networks of run `run` that exist now (what a teardown test checks
/// is empty).
pub fn objects_of_run(run: &str) -> Result<Vec<String>> {
    objects_labelled(&format!("label={RUN_LABEL}={run}"))
}

/// Containers and networks owned by process `pid` (label [`OWNER_LABEL`]) that exist
/// now: what a finished run must have removed.
pub fn objects_of_owner(pid: u32) -> Result<Vec<String>> {
    objects_labelled(&format!("label={OWNER_LABEL}={pid}"))
}

/// Containers and networks that match the `docker --filter` `filter`, as
/// `container NAME` and `network NAME`.
fn objects_labelled(filter: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (what, list, format) in [
        ("container", &["ps", "-a"][..], "{{.Names}}"),
        ("network", &["network", "ls"][..], "{{.Name}}"),
    ] {
        let mut a = list.to_vec();
        a.extend(["--filter", filter, "--format", format]);
        out.extend(
            docker(&a)?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| format!("{what} {l}")),
        );
    }
    Ok(out)
}

/// The files an image of `binary` needs: the binary and the shared libraries (and
/// loader) `ldd` names, each as (path on the host, path in the image).
fn image_files(binary: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut files = vec![(binary.to_path_buf(), PathBuf::from("/member"))];
    let ldd = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| HarnessError::io("running ldd", e))?;
    let text = String::from_utf8_lossy(&ldd.stdout);
    let mut seen = BTreeSet::new();
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"; static binaries print no paths.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            if seen.insert(p.to_string()) {
                files.push((PathBuf::from(p), PathBuf::from(p)));
            }
        }
    }
    Ok(files)
}

/// The image holding `binary` (built once, then found by its content hash).
pub fn image_for(binary: &Path) -> Result<String> {
    let files = image_files(binary)?;
    let mut h = Sha256::new();
    for (host, inside) in &files {
        h.update(inside.to_string_lossy().as_bytes());
        let bytes = std::fs::read(host)
            .map_err(|e| HarnessError::io(format!("reading {}", host.display()), e))?;
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    let tag = format!("gauntlet-member:{}", &hex::encode(h.finalize())[..16]);
    if docker(&["image", "inspect", "--format", "{{.Id}}", &tag]).is_ok() {
        return Ok(tag);
    }
    let ctx = tempfile::Builder::new()
        .prefix("gauntlet-image-")
        .tempdir()
        .map_err(|e| HarnessError::io("creating an image build dir", e))?;
    let rootfs = ctx.path().join("rootfs");
    for (host, inside) in &files {
        let dest = rootfs.join(inside.strip_prefix("/").unwrap_or(inside));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| HarnessError::io(format!("creating {}", parent.display()), e))?;
        }
        std::fs::copy(host, &dest)
            .map_err(|e| HarnessError::io(format!("copying {}", host.display()), e))?;
    }
    std::fs::create_dir_all(rootfs.join("tmp"))
        .map_err(|e| HarnessError::io("creating the image's /tmp", e))?;
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nLABEL gauntlet.member=1\nENTRYPOINT [\"/member\"]\n",
    )
    .map_err(|e| HarnessError::io("writing the Dockerfile", e))?;
    // Labelled with the binary's path: a rebuilt binary's image replaces the old one.
    let source = binary
        .canonicalize()
        .unwrap_or_else(|_| binary.to_path_buf())
        .display()
        .to_string();
    let label = format!("gauntlet.binary={source}");
    run_with_deadline(
        "docker",
        &strings(&[
            "build",
            "-q",
            "--label",
            &label,
            "-t",
            &tag,
            &ctx.path().to_string_lossy(),
        ]),
        DOCKER_BUILD,
    )
    .map_err(|e| HarnessError::Docker(format!("building {tag} from {}: {e}", binary.display())))?;
    if let Ok(old) = docker(&[
        "images",
        "--filter",
        &format!("label={label}"),
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]) {
        for image in old
            .lines()
            .map(str::trim)
            .filter(|i| !i.is_empty() && *i != tag)
        {
            // An image a running container uses stays; the next build retries.
            let _ = docker(&["rmi", image]);
        }
    }
    Ok(tag)
}

/// How a member's network misbehaves ([`DockerRun::shape`]); `Clear` restores it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NetShape {
    /// Everything the other members send to it is dropped (its inbound side is cut).
    CutInbound,
    /// Every connection with another member is reset (TCP RST), both ways.
    ResetPeers,
    /// This fraction of the packets exchanged with other members is dropped, both ways.
    Loss(f64),
    /// Its egress rate is limited (kbit/s) by a token bucket.
    Bandwidth(u32),
    /// Every packet exchanged with the other members is held `delay_ms` ± `jitter_ms`
    /// (uniform, seeded), both ways; packets leave in order of due time, so the jitter
    /// reorders them ([`crate::netdelay`], NFQUEUE: works where the kernel lacks netem).
    Delay {
        /// Mean delay.
        delay_ms: u32,
        /// Jitter.
        jitter_ms: u32,
        /// Seed of the delays drawn.
        seed: u64,
    },
    /// No shaping.
    Clear,
}

/// The Docker objects of one cluster: its network, image and member addresses.
#[derive(Debug)]
pub struct DockerRun {
    /// The run's id (label [`RUN_LABEL`]).
    pub run: String,
    /// The network's name.
    pub network: String,
    /// The image every member runs.
    pub image: String,
    /// Member `i`'s address.
    pub ips: Vec<Ipv4Addr>,
    /// The packet delayers running, by member.
    delayers: std::sync::Mutex<std::collections::BTreeMap<usize, crate::netdelay::Delayer>>,
}

impl DockerRun {
    /// Creates the network for `members` members of `binary` (building its image if
    /// needed), after sweeping orphans of earlier runs.
    pub fn create(run: &str, members: usize, binary: &Path) -> Result<DockerRun> {
        available()?;
        let _ = sweep_orphans();
        let image = image_for(binary)?;
        let network = format!("gauntlet-{run}");
        let owner = std::process::id().to_string();
        // `--ip` needs a subnet the network was created with: a random /24 in
        // 10.200.0.0/13, another one when Docker says it overlaps a network of its own.
        let mut last = None;
        let mut base = None;
        for _ in 0..SUBNET_ATTEMPTS {
            let (b, c) = (200 + rand::random::<u8>() % 8, rand::random::<u8>());
            let subnet = format!("10.{b}.{c}.0/24");
            match docker(&[
                "network",
                "create",
                "--driver",
                "bridge",
                "--subnet",
                &subnet,
                "--label",
                &format!("{RUN_LABEL}={run}"),
                "--label",
                &format!("{OWNER_LABEL}={owner}"),
                &network,
            ]) {
                Ok(_) => {
                    base = Some((b, c));
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some((b, c)) = base else {
            return Err(last.unwrap_or_else(|| HarnessError::Docker("no subnet tried".into())));
        };
        let mut made = DockerRun {
            run: run.to_string(),
            network,
            image,
            ips: Vec::new(),
            delayers: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        };
        let ips = (0..members)
            .map(|i| Ipv4Addr::new(10, b, c, u8::try_from(10 + i).unwrap_or(250)))
            .collect();
        made.ips = ips;
        Ok(made)
    }

    /// Member `i`'s container name.
    pub fn container(&self, i: usize) -> String {
        format!("{}-m{i}", self.network)
    }

    /// The `docker` arguments that run member `i` attached, with `member_args` after the
    /// image, `root` bind-mounted at the same path and `env` set.
    pub fn run_args(
        &self,
        i: usize,
        root: &Path,
        env: &[(String, String)],
        member_args: &[String],
    ) -> Vec<String> {
        let root = root.display().to_string();
        let mut a = strings(&["run", "--rm", "--name"]);
        a.push(self.container(i));
        a.extend([
            "--label".into(),
            format!("{RUN_LABEL}={}", self.run),
            "--label".into(),
            format!("{OWNER_LABEL}={}", std::process::id()),
            "--network".into(),
            self.network.clone(),
            "--ip".into(),
            self.ips[i].to_string(),
            "--hostname".into(),
            format!("m{i}"),
            "-v".into(),
            format!("{root}:{root}"),
            "--log-driver".into(),
            "none".into(),
        ]);
        for (k, v) in env {
            a.extend(["-e".into(), format!("{k}={v}")]);
        }
        a.push(self.image.clone());
        a.extend(member_args.iter().cloned());
        a
    }

    /// The host pid of member `i`'s container's first process (its network namespace),
    /// `None` while it does not run.
    pub fn pid(&self, i: usize) -> Option<u32> {
        docker(&["inspect", "--format", "{{.State.Pid}}", &self.container(i)])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|p| *p != 0)
    }

    /// Runs `program args` inside member `i`'s network namespace.
    fn in_netns(&self, i: usize, program: &str, args: &[String]) -> Result<String> {
        let pid = self
            .pid(i)
            .ok_or_else(|| HarnessError::Docker(format!("{} is not running", self.container(i))))?;
        let mut a = strings(&["-t", &pid.to_string(), "-n", program]);
        a.extend(args.iter().cloned());
        run_with_deadline("nsenter", &a, NS_CALL)
    }

    fn iptables(&self, i: usize, args: &[&str]) -> Result<String> {
        self.in_netns(i, "iptables", &strings(args))
    }

    /// (Re)creates gauntlet's chain in member `i`'s namespace, empty, hooked into INPUT
    /// and OUTPUT.
    fn reset_chain(&self, i: usize) -> Result<()> {
        if self.iptables(i, &["-w", "-N", CHAIN]).is_err() {
            self.iptables(i, &["-w", "-F", CHAIN])?;
        }
        for hook in ["INPUT", "OUTPUT"] {
            if self.iptables(i, &["-w", "-C", hook, "-j", CHAIN]).is_err() {
                self.iptables(i, &["-w", "-I", hook, "1", "-j", CHAIN])?;
            }
        }
        Ok(())
    }

    /// Drops every packet between member `i` and each member in `blocked`, both ways,
    /// replacing the rules set before (an empty set heals `i`).
    pub fn set_blocked(&self, i: usize, blocked: &BTreeSet<usize>) -> Result<()> {
        self.reset_chain(i)?;
        let blocked: Vec<usize> = blocked.iter().copied().collect();
        self.peer_rules(i, &blocked, BOTH_WAYS, &["-j", "DROP"])
    }

    /// Packets dropped so far by gauntlet's rules in member `i`'s namespace (0 when it
    /// does not run).
    pub fn dropped_packets(&self, i: usize) -> u64 {
        self.iptables(i, &["-w", "-L", CHAIN, "-v", "-x", "-n"])
            .map(|t| {
                t.lines()
                    .filter(|l| l.contains("DROP") || l.contains("REJECT"))
                    .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Shapes member `i`'s traffic with the other members (see [`NetShape`]); partition
    /// rules set with [`DockerRun::set_blocked`] are replaced too, so shape and
    /// partition are not combined. `Err` when the kernel lacks what the shape needs, with
    /// tc's or iptables's words.
    pub fn shape(&self, i: usize, shape: NetShape) -> Result<()> {
        // A delayer of an earlier shape lets its packets go before the rules change.
        self.delayers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&i);
        self.reset_chain(i)?;
        let _ = self.in_netns(i, "tc", &strings(&["qdisc", "del", "dev", "eth0", "root"]));
        let others: Vec<usize> = (0..self.ips.len()).filter(|j| *j != i).collect();
        match shape {
            NetShape::Clear => {}
            NetShape::CutInbound => self.peer_rules(i, &others, &["-s"], &["-j", "DROP"])?,
            NetShape::ResetPeers => self.peer_rules(
                i,
                &others,
                BOTH_WAYS,
                &["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"],
            )?,
            NetShape::Loss(p) => {
                let p = format!("{:.3}", p.clamp(0.0, 1.0));
                self.peer_rules(
                    i,
                    &others,
                    BOTH_WAYS,
                    &[
                        "-m",
                        "statistic",
                        "--mode",
                        "random",
                        "--probability",
                        &p,
                        "-j",
                        "DROP",
                    ],
                )?;
            }
            NetShape::Bandwidth(kbit) => {
                self.in_netns(
                    i,
                    "tc",
                    &strings(&[
                        "qdisc",
                        "add",
                        "dev",
                        "eth0",
                        "root",
                        "tbf",
                        "rate",
                        &format!("{kbit}kbit"),
                        "burst",
                        "16kbit",
                        "latency",
                        "400ms",
                    ]),
                )?;
            }
            NetShape::Delay {
                delay_ms,
                jitter_ms,
                seed,
            } => {
                let pid = self.pid(i).ok_or_else(|| {
                    HarnessError::Docker(format!("{} is not running", self.container(i)))
                })?;
                let delayer = crate::netdelay::Delayer::start(
                    pid,
                    DELAY_QUEUE,
                    Duration::from_millis(u64::from(delay_ms)),
                    Duration::from_millis(u64::from(jitter_ms)),
                    seed,
                )?;
                let q = DELAY_QUEUE.to_string();
                self.peer_rules(
                    i,
                    &others,
                    BOTH_WAYS,
                    &["-j", "NFQUEUE", "--queue-num", &q, "--queue-bypass"],
                )?;
                self.delayers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(i, delayer);
            }
        }
        Ok(())
    }

    /// Appends to gauntlet's chain in member `i`'s namespace one rule per member of
    /// `peers` and direction of `dirs` (`-s`: packets from it, `-d`: packets to it),
    /// ending with `rule` (the match and the target).
    fn peer_rules(&self, i: usize, peers: &[usize], dirs: &[&str], rule: &[&str]) -> Result<()> {
        for p in peers {
            let ip = self.ips[*p].to_string();
            for dir in dirs {
                let mut a = vec!["-w", "-A", CHAIN, dir, &ip];
                a.extend_from_slice(rule);
                self.iptables(i, &a)?;
            }
        }
        Ok(())
    }

    /// Packets member `i`'s delayer has delayed and reordered so far, while one runs.
    pub fn delayed_packets(&self, i: usize) -> Option<(u64, u64)> {
        self.delayers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&i)
            .map(|d| (d.delayed(), d.reordered()))
    }

    /// Removes member `i`'s container (killing it), if it exists.
    pub fn remove(&self, i: usize) {
        let _ = docker(&["rm", "-f", &self.container(i)]);
    }

    /// Removes every container of the run, then its network.
    pub fn teardown(&self) {
        self.delayers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        let filter = format!("label={RUN_LABEL}={}", self.run);
        if let Ok(ids) = docker(&["ps", "-aq", "--filter", &filter]) {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut a = vec!["rm", "-f"];
                a.extend(ids);
                let _ = docker(&a);
            }
        }
        // The network goes once no endpoint is attached; a container still detaching
        // keeps it a moment.
        for _ in 0..20 {
            if docker(&["network", "rm", &self.network]).is_ok()
                || docker(&["network", "inspect", &self.network]).is_err()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for DockerRun {
    fn drop(&mut self) {
        self.teardown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_call_names_the_command_and_its_first_error_line() {
        let err = run_with_deadline(
            "sh",
            &strings(&["-c", "echo first >&2; echo second >&2; exit 3"]),
            Duration::from_secs(5),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sh -c") && err.contains(": first"), "{err}");
    }

    #[test]
    fn a_call_past_its_deadline_is_killed() {
        let started = Instant::now();
        let err = run_with_deadline("sleep", &strings(&["30"]), Duration::from_millis(300))
            .unwrap_err()
            .to_string();
        assert!(err.contains("did not finish within"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn ldd_output_gives_the_libraries_and_the_loader() {
        let files = image_files(Path::new("/bin/sh")).unwrap();
        assert_eq!(files[0].1, PathBuf::from("/member"));
        assert!(
            files
                .iter()
                .any(|(_, p)| p.to_string_lossy().contains("libc.so")),
            "{files:?}"
        );
        assert!(
            files
                .iter()
                .any(|(_, p)| p.to_string_lossy().contains("ld-linux")),
            "{files:?}"
        );
    }
}
