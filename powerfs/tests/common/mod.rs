//! Shared set-up: a backing directory and a mountpoint in one tempdir, mounted.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use gauntlet_powerfs::{Options, PowerFs};

/// A mounted PowerFs over a fresh tempdir. Field order matters: the mount goes before the dir.
pub struct Mounted {
    pub fs: PowerFs,
    pub backing: PathBuf,
    pub _dir: tempfile::TempDir,
}

impl Mounted {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.fs.mountpoint().join(rel)
    }
}

/// Fails (never skips) when FUSE cannot be used here.
pub fn require_fuse() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "these tests need /dev/fuse (FUSE kernel support); they cannot run here"
    );
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|r| r.split_whitespace().next().unwrap_or("").to_string())
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "these tests need root (they mount FUSE with allow_root/auto_unmount)"
    );
}

pub fn mount_with(opts: Options) -> Mounted {
    require_fuse();
    let dir = tempfile::tempdir().expect("tempdir");
    let backing = dir.path().join("backing");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&backing).unwrap();
    std::fs::create_dir(&mnt).unwrap();
    let fs = PowerFs::mount(&backing, &mnt, opts).expect("mount powerfs");
    Mounted {
        fs,
        backing,
        _dir: dir,
    }
}

pub fn mount() -> Mounted {
    mount_with(Options::default())
}

pub fn strict() -> Mounted {
    mount_with(Options {
        strict_metadata: true,
        ..Options::default()
    })
}

/// fsync of a directory through the mount.
pub fn fsync_dir(path: &Path) {
    std::fs::File::open(path).unwrap().sync_all().unwrap();
}

/// Writes `data` to a new file and makes it and its directory entry durable.
pub fn durable_file(m: &Mounted, rel: &str, data: &[u8]) {
    let p = m.path(rel);
    std::fs::write(&p, data).unwrap();
    std::fs::File::open(&p).unwrap().sync_all().unwrap();
    fsync_dir(p.parent().unwrap());
}

pub fn is_mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(path.to_str().unwrap()))
}
