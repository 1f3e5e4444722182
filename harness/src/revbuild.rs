//! `reference@REV`: the reference server built from a git revision of this repository.
//!
//! The skew suite upgrades the reference server from an older build to a newer one, so
//! an older build must exist. [`build`] makes it without downloading anything: it
//! resolves `REV` to a commit in the repository ([`repo`]), checks that commit out in a
//! temporary `git worktree`, runs `cargo build -p gauntlet-reference-server --bin
//! gauntlet-server` there and copies the binary into the target cache as
//! `reference-builds/<commit>/gauntlet-server`. Every revision shares one cargo target
//! directory under the cache, so only the first build compiles the dependencies.
//!
//! Contract: a build is keyed by the full commit hash, so a branch that moves gets a new
//! build and a cached one is never stale; the binary appears in the cache by one rename,
//! only after cargo succeeded; the worktree is removed whatever happened (and a
//! worktree a killed build left is pruned by the next build); cargo runs under a
//! deadline ([`BUILD_TIMEOUT`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{HarnessError, Result};
use crate::provision::Cache;

/// The repository `reference@REV` is built from, when not the one gauntlet was built in.
pub const REPO_ENV: &str = "GAUNTLET_REPO";
/// Longest a build may take.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// Deadline of one git command.
const GIT_TIMEOUT: Duration = Duration::from_secs(60);
/// The package and binary built.
const PACKAGE: &str = "gauntlet-reference-server";
const BINARY: &str = crate::target::REFERENCE_SERVER_BIN;

/// The repository: `$GAUNTLET_REPO`, else the checkout this harness was compiled from.
pub fn repo() -> Result<PathBuf> {
    let p = match std::env::var_os(REPO_ENV).filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    if !p.join(".git").exists() {
        return Err(HarnessError::Invalid(format!(
            "reference@REV needs a git checkout of gauntlet: {} is not one (set {REPO_ENV})",
            p.display()
        )));
    }
    Ok(p)
}

/// Runs a command to completion within `timeout`, its output captured; the error
/// names the command and carries the last lines it printed.
fn run(cmd: &mut Command, what: &str, timeout: Duration) -> Result<String> {
    let out_file = tempfile::NamedTempFile::new()
        .map_err(|e| HarnessError::io("creating a temporary output file", e))?;
    let out = out_file
        .reopen()
        .map_err(|e| HarnessError::io("opening a temporary output file", e))?;
    let err = out
        .try_clone()
        .map_err(|e| HarnessError::io("duplicating a file handle", e))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| HarnessError::io(format!("starting {what}"), e))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HarnessError::Invalid(format!(
                    "{what} did not finish within {} s",
                    timeout.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(HarnessError::io(format!("waiting for {what}"), e)),
        }
    };
    let text = std::fs::read_to_string(out_file.path()).unwrap_or_default();
    if status.success() {
        return Ok(text);
    }
    let tail: Vec<&str> = text.lines().rev().take(12).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(HarnessError::Invalid(format!(
        "{what} failed ({status}): {}",
        tail.join(" | ")
    )))
}

fn git(repo: &Path, args: &[&str]) -> Result<String> {
    run(
        Command::new("git").arg("-C").arg(repo).args(args),
        &format!("git {}", args.join(" ")),
        GIT_TIMEOUT,
    )
}

/// The full commit hash `rev` names in `repo`.
pub fn resolve(repo: &Path, rev: &str) -> Result<String> {
    if rev.starts_with('-') {
        return Err(HarnessError::Invalid(format!("`{rev}` is not a revision")));
    }
    let spec = format!("{rev}^{{commit}}");
    let out = git(repo, &["rev-parse", "--verify", "--quiet", &spec]).map_err(|_| {
        HarnessError::Invalid(format!(
            "reference@{rev}: no such commit in {} (try `git -C {} log --oneline`)",
            repo.display(),
            repo.display()
        ))
    })?;
    Ok(out.trim().to_string())
}

fn build_dir(cache: &Cache, commit: &str) -> PathBuf {
    cache.root().join("reference-builds").join(commit)
}

/// The cached build of `reference@rev`, or an error saying how to build it.
pub fn cached(cache: &Cache, rev: &str) -> Result<PathBuf> {
    let commit = resolve(&repo()?, rev)?;
    let bin = build_dir(cache, &commit).join(BINARY);
    crate::target::check_executable(
        &bin,
        &format!("build it with `gauntlet targets fetch reference@{rev}`"),
    )?;
    Ok(bin)
}

/// Builds `reference@rev` into the cache unless it is there; returns the binary and
/// whether it was built now.
pub fn build(cache: &Cache, rev: &str) -> Result<(PathBuf, bool)> {
    let repo = repo()?;
    let commit = resolve(&repo, rev)?;
    let dest = build_dir(cache, &commit);
    let bin = dest.join(BINARY);
    if crate::target::check_executable(&bin, "").is_ok() {
        return Ok((bin, false));
    }
    build_package(
        &repo,
        &commit,
        PACKAGE,
        BINARY,
        &cache.root().join("reference-builds").join("cargo-target"),
        &dest,
    )?;
    Ok((bin, true))
}

/// Builds binary `binary` of package `package` at `commit` of `repo` in a temporary
/// worktree, with `target_dir` as cargo's target directory, and moves it to
/// `dest/<binary>` (see the module docs). The worktree is removed in every case.
pub fn build_package(
    repo: &Path,
    commit: &str,
    package: &str,
    binary: &str,
    target_dir: &Path,
    dest: &Path,
) -> Result<PathBuf> {
    let parent = dest
        .parent()
        .ok_or_else(|| HarnessError::Invalid(format!("{} has no parent", dest.display())))?;
    std::fs::create_dir_all(parent)
        .map_err(|e| HarnessError::io(format!("creating {}", parent.display()), e))?;
    // Worktrees of builds that were killed.
    let _ = git(repo, &["worktree", "prune"]);
    let tree = tempfile::Builder::new()
        .prefix(".worktree-")
        .tempdir_in(parent)
        .map_err(|e| HarnessError::io("creating a worktree dir", e))?;
    let tree_path = tree.path().join("src");
    let tree_str = tree_path.display().to_string();
    git(repo, &["worktree", "add", "--detach", &tree_str, commit])?;
    let built = (|| {
        run(
            Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .current_dir(&tree_path)
                .env("CARGO_TARGET_DIR", target_dir)
                .args(["build", "--locked", "-p", package, "--bin", binary]),
            &format!("cargo build -p {package} at {commit}"),
            BUILD_TIMEOUT,
        )?;
        let out = target_dir.join("debug").join(binary);
        let staged = tree.path().join(binary);
        std::fs::copy(&out, &staged)
            .map_err(|e| HarnessError::io(format!("copying {}", out.display()), e))?;
        let stage_dir = tree.path().join("dest");
        std::fs::create_dir_all(&stage_dir)
            .map_err(|e| HarnessError::io("creating the staging dir", e))?;
        std::fs::rename(&staged, stage_dir.join(binary))
            .map_err(|e| HarnessError::io("staging the binary", e))?;
        match std::fs::rename(&stage_dir, dest) {
            Ok(()) => Ok(dest.join(binary)),
            // Another build of the same commit won the race: it is the same binary.
            Err(_) if dest.join(binary).is_file() => Ok(dest.join(binary)),
            Err(e) => Err(HarnessError::io(
                format!("moving into {}", dest.display()),
                e,
            )),
        }
    })();
    let _ = git(repo, &["worktree", "remove", "--force", &tree_str]);
    let _ = git(repo, &["worktree", "prune"]);
    built
}
