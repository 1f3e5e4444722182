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

/// statvfs of a path.
#[allow(unsafe_code)]
fn statvfs(path: &std::path::Path) -> libc::statvfs {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: statvfs is plain old data; all-zero is valid and the call overwrites it.
    let mut out: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `out` a writable statvfs, both live for the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut out) };
    assert_eq!(
        rc,
        0,
        "statvfs {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    out
}

#[test]
fn statfs_passes_through_the_backing_fs() {
    let m = mount();
    let (ours, theirs) = (statvfs(m.fs.mountpoint()), statvfs(&m.backing));
    assert_eq!(ours.f_blocks, theirs.f_blocks);
    assert_eq!(ours.f_bsize, theirs.f_bsize);
    assert_eq!(ours.f_files, theirs.f_files);
}

/// flock through the mount, as etcd locks its WAL files.
#[allow(unsafe_code)]
fn flock(f: &File, op: i32) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor owned by `f`; no memory is passed.
    if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn flock_is_left_to_the_kernel_and_excludes() {
    let m = mount();
    let a = File::create(m.path("LOCK")).unwrap();
    let b = File::open(m.path("LOCK")).unwrap();
    flock(&a, libc::LOCK_EX | libc::LOCK_NB).unwrap();
    let err = flock(&b, libc::LOCK_EX | libc::LOCK_NB).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EWOULDBLOCK));
    drop(a);
    flock(&b, libc::LOCK_EX | libc::LOCK_NB).unwrap();
}

/// An open-file-description write lock over the whole file, as etcd's `TryLockFile` takes.
#[allow(unsafe_code)]
fn ofd_lock(f: &File) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: `struct flock` is plain old data; all-zero is valid (and l_pid must be 0).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: F_OFD_SETLK reads a `struct flock` that lives for the call; `f` owns the fd.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &mut lock) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn fcntl_ofd_locks_are_left_to_the_kernel_and_exclude() {
    let m = mount();
    let a = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(m.path("0.wal"))
        .unwrap();
    let b = OpenOptions::new()
        .write(true)
        .open(m.path("0.wal"))
        .unwrap();
    ofd_lock(&a).unwrap();
    let err = ofd_lock(&b).unwrap_err();
    assert!(
        matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)),
        "{err}"
    );
    drop(a);
    ofd_lock(&b).unwrap();
}

#[test]
fn drop_unmounts_even_while_a_file_is_open() {
    let m = mount();
    let mnt = m.fs.mountpoint().to_path_buf();
    let open = File::create(m.path("held")).unwrap();
    let common::Mounted {
        fs: powerfs,
        _dir: dir,
        ..
    } = m;
    let t = std::time::Instant::now();
    drop(powerfs);
    assert!(!is_mounted(&mnt), "still mounted after drop");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "drop took {:?}",
        t.elapsed()
    );
    drop(open);
    drop(dir);
}
