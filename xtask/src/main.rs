//! Developer tasks, so that no shell script is needed anywhere but `.ci/run`.
//!
//! * `cargo xtask provision`: fetch every target the tests need into the cache.
//! * `cargo xtask test`: the full test run (what README.md and CI run): system
//!   packages the build needs (OpenSSL headers, installed with apt when missing),
//!   formatting, clippy, provisioning, the chaos suite's tools (fusermount3 for the
//!   power-loss filesystem, iptables/tc/nsenter for the docker backend; installed with
//!   apt when missing; the Docker engine must answer), every test under nextest,
//!   doctests, and a final check that no server process, power-loss mount, container
//!   or network started by the run is still there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// Targets the test suite runs against; provisioned before any test.
const TEST_TARGETS: &[&str] = &["etcd@3.5.1", "etcd@3.4.23"];
/// Names of server binaries whose processes must not outlive a test run.
const SERVER_NAMES: &[&str] = &["etcd", "gauntlet-server"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("provision") => provision(),
        Some("test") => test(&args[1..]),
        _ => Err(anyhow::anyhow!(
            "usage: cargo xtask provision | test [nextest filter args...]"
        )),
    };
    if let Err(e) = result {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

fn run(step: &str, cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: {step}");
    let status = cmd
        .status()
        .with_context(|| format!("{step}: cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

fn provision() -> anyhow::Result<()> {
    let mut c = cargo();
    c.args([
        "run",
        "--quiet",
        "-p",
        "gauntlet-cli",
        "--",
        "targets",
        "fetch",
    ])
    .args(TEST_TARGETS);
    run("provisioning test targets", &mut c)
}

/// Pids of server processes (by executable name) now alive.
fn server_pids() -> BTreeSet<(u32, String)> {
    let mut out = BTreeSet::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(exe) = std::fs::read_link(entry.path().join("exe")) else {
            continue;
        };
        let name = exe
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .trim_end_matches(" (deleted)")
                    .to_string()
            })
            .unwrap_or_default();
        if SERVER_NAMES.contains(&name.as_str()) {
            out.insert((pid, exe.display().to_string()));
        }
    }
    out
}

fn nextest_available() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Debian packages the build needs beyond the toolchain: OpenSSL's headers and
/// pkg-config, for the third-party toxiproxy client the tests use (it links OpenSSL).
const SYSTEM_PACKAGES: &[&str] = &["libssl-dev", "pkg-config"];

/// Installs [`SYSTEM_PACKAGES`] with apt when OpenSSL's pkg-config entry is missing.
fn system_packages() -> anyhow::Result<()> {
    let present = Command::new("pkg-config")
        .args(["--exists", "openssl"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if present {
        return Ok(());
    }
    apt_install(SYSTEM_PACKAGES)
}

/// Installs Debian `packages` with apt (after an update), saying so.
fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    eprintln!("xtask: installing {}", packages.join(" "));
    run(
        "apt-get update",
        Command::new("apt-get").args(["update", "-q"]),
    )?;
    run(
        "apt-get install",
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Commands the chaos suite and the report tests run, and the Debian package of each.
const CHAOS_TOOLS: &[(&str, &str)] = &[
    ("fusermount3", "fuse3"),
    ("iptables", "iptables"),
    ("tc", "iproute2"),
    ("nsenter", "util-linux"),
    // The certify report's browser test loads index.html in headless Chromium.
    ("chromium-headless-shell", "chromium-headless-shell"),
];

/// Installs the chaos suite's and the report tests' tools that are missing and checks /dev/fuse and the
/// Docker engine, so that no test finds them missing halfway.
fn chaos_prerequisites() -> anyhow::Result<()> {
    let missing: Vec<&str> = CHAOS_TOOLS
        .iter()
        .filter(|(cmd, _)| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {cmd}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
        .map(|(_, pkg)| *pkg)
        .collect();
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    if !Path::new("/dev/fuse").exists() {
        bail!("/dev/fuse is missing: the power-loss filesystem's tests need FUSE");
    }
    let docker = Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output()
        .context("running docker (the docker backend's tests need the Docker engine)")?;
    if !docker.status.success() {
        bail!(
            "the Docker engine does not answer: {}",
            String::from_utf8_lossy(&docker.stderr).trim()
        );
    }
    Ok(())
}

/// Power-loss mounts, and Docker containers and networks labelled by gauntlet, that
/// exist now.
fn chaos_leftovers() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("gauntlet-powerfs "))
        .map(|l| format!("mount {}", l.split_whitespace().nth(1).unwrap_or("?")))
        .collect();
    for (what, args) in [
        ("container", &["ps", "-a", "--format", "{{.Names}}"][..]),
        ("network", &["network", "ls", "--format", "{{.Name}}"][..]),
    ] {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--filter", "label=gauntlet.owner"]);
        if let Ok(o) = Command::new("docker").args(&a).output() {
            out.extend(
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| format!("{what} {}", l.trim())),
            );
        }
    }
    out
}

fn test(filter: &[String]) -> anyhow::Result<()> {
    let before = server_pids();
    let chaos_before: BTreeSet<String> = chaos_leftovers().into_iter().collect();
    system_packages()?;
    chaos_prerequisites()?;
    run(
        "checking formatting",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    run(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    provision()?;
    // Tests launch the reference server as a target; build it first (tests find it
    // beside their own binaries).
    run(
        "building gauntlet-server",
        cargo().args(["build", "--quiet", "-p", "gauntlet-reference-server"]),
    )?;
    if !nextest_available() {
        run(
            "installing cargo-nextest",
            cargo().args(["install", "--locked", "cargo-nextest"]),
        )?;
    }
    // Doctests first, so the run closes on nextest's summary of every test.
    let doctests = if filter.is_empty() {
        run(
            "running doctests",
            cargo().args(["test", "--workspace", "--doc", "--quiet"]),
        )
    } else {
        Ok(())
    };
    let mut nextest = cargo();
    nextest
        .args(["nextest", "run", "--workspace", "--no-fail-fast"])
        .args(filter);
    let tests = run("running every test", &mut nextest);
    let leftovers: Vec<_> = server_pids().difference(&before).cloned().collect();
    for (pid, _) in &leftovers {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    let chaos_left: Vec<String> = chaos_leftovers()
        .into_iter()
        .filter(|o| !chaos_before.contains(o))
        .collect();
    tests?;
    doctests?;
    if !leftovers.is_empty() {
        bail!("server processes outlived the test run (now killed): {leftovers:?}");
    }
    if !chaos_left.is_empty() {
        bail!("the test run left these behind: {chaos_left:?}");
    }
    eprintln!("xtask: no etcd or gauntlet-server process outlived the test run");
    Ok(())
}
