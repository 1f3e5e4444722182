//! Developer tasks, so that no shell script is needed anywhere but `.ci/run`.
//!
//! * `cargo xtask provision`: fetch every target the tests need into the cache.
//! * `cargo xtask test`: the full test run (what README.md and CI run): system
//!   packages the build needs (OpenSSL headers, installed with apt when missing),
//!   formatting, clippy, provisioning, every test under nextest, doctests, and a final
//!   check that no server process started by the run is still alive.

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
    eprintln!("xtask: installing {}", SYSTEM_PACKAGES.join(" "));
    run(
        "apt-get update",
        Command::new("apt-get").args(["update", "-q"]),
    )?;
    run(
        "apt-get install",
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(SYSTEM_PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn test(filter: &[String]) -> anyhow::Result<()> {
    let before = server_pids();
    system_packages()?;
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
    tests?;
    doctests?;
    if !leftovers.is_empty() {
        bail!("server processes outlived the test run (now killed): {leftovers:?}");
    }
    eprintln!("xtask: no etcd or gauntlet-server process outlived the test run");
    Ok(())
}
