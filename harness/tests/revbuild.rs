//! `reference@REV`'s builder on a repository of its own: a commit is built in a
//! temporary worktree into the cache, the worktree is gone afterwards, and bad
//! revisions are one clear error.

use std::path::Path;
use std::process::Command;

use gauntlet_harness::revbuild::{build_package, resolve};

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=gauntlet",
            "-c",
            "user.email=gauntlet@localhost",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A one-crate repository whose binary prints `says`, committed; returns the commit.
fn commit_crate(repo: &Path, says: &str) -> String {
    std::fs::create_dir_all(repo.join("src")).unwrap();
    std::fs::write(
        repo.join("Cargo.toml"),
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("src/main.rs"),
        format!("fn main() {{ println!(\"{says}\"); }}\n"),
    )
    .unwrap();
    let lock = Command::new(env!("CARGO"))
        .args(["generate-lockfile", "--offline"])
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(
        lock.status.success(),
        "{}",
        String::from_utf8_lossy(&lock.stderr)
    );
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", says]);
    git(repo, &["rev-parse", "HEAD"])
}

#[test]
fn a_revision_is_built_in_a_worktree_that_is_removed_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    let old = commit_crate(&repo, "old build");
    let new = commit_crate(&repo, "new build");
    assert_eq!(resolve(&repo, "HEAD~1").unwrap(), old);
    let target_dir = dir.path().join("cargo-target");
    let dest = dir.path().join("cache").join(&old);
    let bin = build_package(&repo, &old, "tiny", "tiny", &target_dir, &dest).unwrap();
    assert_eq!(bin, dest.join("tiny"));
    let out = Command::new(&bin).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "old build");
    // The checkout the user works in is untouched, and no worktree is left.
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), new);
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".worktree-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_failing_build_leaves_no_binary_and_no_worktree() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    let c = commit_crate(&repo, "x\"; compile_error!(\"broken");
    let dest = dir.path().join("cache").join(&c);
    let err = build_package(&repo, &c, "tiny", "tiny", &dir.path().join("t"), &dest)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cargo build -p tiny") && err.contains("broken"),
        "{err}"
    );
    assert!(!dest.exists());
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 1);
}

#[test]
fn bad_revisions_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    commit_crate(&repo, "only");
    for bad in ["no-such-branch", "-x", "HEAD~5"] {
        let err = resolve(&repo, bad).unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains(bad), "{bad}: {err}");
    }
}
