//! Mounting, unmounting, and a realistic WAL workload across a power cut.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};

use common::{fsync_dir, is_mounted, mount, require_fuse, strict};
use gauntlet_powerfs::{Options, PowerFs, PowerFsError};

#[test]
fn drop_unmounts() {
    let m = mount();
    let mnt = m.fs.mountpoint().to_path_buf();
    assert!(is_mounted(&mnt));
    let line = fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(1) == mnt.to_str())
        .map(str::to_string)
        .unwrap();
    assert!(line.starts_with("gauntlet-powerfs "), "{line}");
    let common::Mounted {
        fs: powerfs,
        _dir: dir,
        ..
    } = m;
    drop(powerfs);
    assert!(!is_mounted(&mnt), "still mounted after drop");
    drop(dir);
}

#[test]
fn unmount_returns_ok_and_unmounts() {
    let m = mount();
    let mnt = m.fs.mountpoint().to_path_buf();
    let common::Mounted {
        fs: powerfs,
        _dir: dir,
        ..
    } = m;
    powerfs.unmount().unwrap();
    assert!(!is_mounted(&mnt));
    drop(dir);
}

#[test]
fn mount_refuses_a_missing_backing_dir_and_a_mounted_mountpoint() {
    require_fuse();
    let dir = tempfile::tempdir().unwrap();
    let (backing, mnt) = (dir.path().join("backing"), dir.path().join("mnt"));
    fs::create_dir(&mnt).unwrap();
    let err = PowerFs::mount(&backing, &mnt, Options::default()).unwrap_err();
    assert!(matches!(err, PowerFsError::BackingMissing { .. }), "{err}");
    assert!(err.to_string().contains("backing"), "{err}");

    fs::create_dir(&backing).unwrap();
    let first = PowerFs::mount(&backing, &mnt, Options::default()).unwrap();
    let err = PowerFs::mount(&backing, &mnt, Options::default()).unwrap_err();
    assert!(matches!(err, PowerFsError::AlreadyMounted { .. }), "{err}");
    assert!(err.to_string().contains("already a mount"), "{err}");
    drop(first);
}

/// A mini WAL: records appended, fdatasync every `SYNC_EVERY`, a snapshot written as .tmp,
/// synced, renamed and its directory synced; then a power cut. Every synced record survives,
/// nothing unsynced does.
fn mini_wal(m: &common::Mounted) {
    const RECORDS: usize = 1000;
    const SYNC_EVERY: usize = 64;
    fs::create_dir(m.path("member")).unwrap();
    fsync_dir(m.fs.mountpoint());
    let wal_path = m.path("member/0.wal");
    let mut wal = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&wal_path)
        .unwrap();
    fsync_dir(&m.path("member"));
    let mut synced = 0;
    for i in 0..RECORDS {
        writeln!(wal, "record {i:06} {}", "x".repeat(i % 50)).unwrap();
        if (i + 1) % SYNC_EVERY == 0 {
            wal.sync_data().unwrap();
            synced = i + 1;
        }
        if i == RECORDS / 2 {
            let tmp = m.path("member/snap.tmp");
            let mut s = File::create(&tmp).unwrap();
            writeln!(s, "snapshot at {i}").unwrap();
            s.sync_all().unwrap();
            fs::rename(&tmp, m.path("member/snap")).unwrap();
            fsync_dir(&m.path("member"));
        }
    }
    drop(wal);
    assert!(synced < RECORDS, "the workload must leave unsynced records");
    let report = m.fs.control().power_cut().unwrap();
    assert_eq!(report.files_dropped, 1, "{report}");

    let lines: Vec<String> = BufReader::new(File::open(&wal_path).unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        lines.len(),
        synced,
        "synced {synced}, found {}",
        lines.len()
    );
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l, &format!("record {i:06} {}", "x".repeat(i % 50)));
    }
    assert_eq!(
        fs::read_to_string(m.path("member/snap")).unwrap(),
        format!("snapshot at {}\n", RECORDS / 2)
    );
    assert!(!m.path("member/snap.tmp").exists());
}

#[test]
fn a_mini_wal_keeps_every_synced_record_and_nothing_else() {
    mini_wal(&mount());
}

#[test]
fn a_mini_wal_in_strict_mode_too() {
    let m = strict();
    mini_wal(&m);
    assert_eq!(m.fs.control().unsynced().metadata_ops, 0);
}
