//! File data and size: unsynced changes are visible while mounted and gone after a power cut;
//! fsync and fdatasync make them durable.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

use common::{durable_file, mount};

#[test]
fn a_write_without_sync_is_gone_after_power_cut() {
    let m = mount();
    durable_file(&m, "f", b"old content");
    let mut f = OpenOptions::new().write(true).open(m.path("f")).unwrap();
    f.write_all(b"NEW!").unwrap();
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(b" and more").unwrap();
    drop(f);
    assert_eq!(fs::read(m.path("f")).unwrap(), b"NEW!content and more");
    let u = m.fs.control().unsynced();
    assert_eq!((u.files, u.bytes), (1, 13));

    let report = m.fs.control().power_cut().unwrap();
    assert_eq!(report.files_dropped, 1);
    assert_eq!(report.bytes_dropped, 13);
    assert_eq!(fs::read(m.path("f")).unwrap(), b"old content");
    assert_eq!(fs::metadata(m.path("f")).unwrap().len(), 11);
    assert_eq!(m.fs.control().unsynced().files, 0);
}

#[test]
fn sync_all_and_sync_data_make_writes_durable() {
    let m = mount();
    durable_file(&m, "a", b"");
    durable_file(&m, "b", b"");
    let mut a = OpenOptions::new().append(true).open(m.path("a")).unwrap();
    a.write_all(b"synced with fsync").unwrap();
    a.sync_all().unwrap();
    let mut b = OpenOptions::new().append(true).open(m.path("b")).unwrap();
    b.write_all(b"synced with fdatasync").unwrap();
    b.sync_data().unwrap();
    drop((a, b));
    assert_eq!(fs::read(m.backing.join("a")).unwrap(), b"synced with fsync");
    m.fs.control().power_cut().unwrap();
    assert_eq!(fs::read(m.path("a")).unwrap(), b"synced with fsync");
    assert_eq!(fs::read(m.path("b")).unwrap(), b"synced with fdatasync");
}

#[test]
fn only_the_synced_part_of_a_file_survives() {
    let m = mount();
    durable_file(&m, "log", b"");
    let mut f = OpenOptions::new().append(true).open(m.path("log")).unwrap();
    f.write_all(b"first;").unwrap();
    f.sync_data().unwrap();
    f.write_all(b"second;").unwrap();
    assert_eq!(fs::read(m.path("log")).unwrap(), b"first;second;");
    drop(f);
    m.fs.control().power_cut().unwrap();
    assert_eq!(fs::read(m.path("log")).unwrap(), b"first;");
}

#[test]
fn a_truncate_without_sync_is_undone_and_reads_zeros_meanwhile() {
    let m = mount();
    durable_file(&m, "t", &[b'x'; 100]);
    let f = OpenOptions::new().write(true).open(m.path("t")).unwrap();
    f.set_len(10).unwrap();
    f.set_len(50).unwrap();
    drop(f);
    let now = fs::read(m.path("t")).unwrap();
    assert_eq!(now.len(), 50);
    assert_eq!(&now[..10], &[b'x'; 10]);
    assert!(
        now[10..].iter().all(|&b| b == 0),
        "old backing bytes leaked past the truncation"
    );
    // Truncation through open(O_TRUNC) too.
    File::create(m.path("t")).unwrap();
    assert_eq!(fs::metadata(m.path("t")).unwrap().len(), 0);

    m.fs.control().power_cut().unwrap();
    assert_eq!(fs::read(m.path("t")).unwrap(), vec![b'x'; 100]);
}

#[test]
#[allow(unsafe_code)]
fn fallocate_mode_0_extends_unsynced_until_fsync() {
    let m = mount();
    durable_file(&m, "wal", b"");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path("wal"))
        .unwrap();
    let falloc = |mode: i32, len: i64| {
        // SAFETY: fallocate on an open descriptor owned by `f`, no pointers involved.
        let rc = unsafe { libc::fallocate(f.as_raw_fd(), mode, 0, len) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    falloc(libc::FALLOC_FL_KEEP_SIZE, 8192).expect("KEEP_SIZE is a no-op");
    assert_eq!(fs::metadata(m.path("wal")).unwrap().len(), 0);
    let err = falloc(libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 10).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EOPNOTSUPP));

    falloc(0, 4096).expect("fallocate mode 0");
    assert_eq!(fs::metadata(m.path("wal")).unwrap().len(), 4096);
    m.fs.control().power_cut().unwrap();
    assert_eq!(
        fs::metadata(m.path("wal")).unwrap().len(),
        0,
        "unsynced extension survived"
    );

    falloc(0, 4096).unwrap();
    f.sync_data().unwrap();
    m.fs.control().power_cut().unwrap();
    assert_eq!(fs::metadata(m.path("wal")).unwrap().len(), 4096);
    let mut buf = Vec::new();
    File::open(m.path("wal"))
        .unwrap()
        .read_to_end(&mut buf)
        .unwrap();
    assert!(buf.iter().all(|&b| b == 0));
}

#[test]
fn a_read_only_mmap_sees_unsynced_writes() {
    let m = mount();
    durable_file(&m, "db", &[0u8; 8192]);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path("db"))
        .unwrap();
    #[allow(unsafe_code)]
    // SAFETY: the mapping is read-only and the test reads it only while it owns the file.
    let map = unsafe { memmap2::Mmap::map(&f).unwrap() };
    assert_eq!(&map[4096..4101], &[0; 5]);
    f.write_all_at(b"hello", 4096).unwrap();
    assert_eq!(&map[4096..4101], b"hello", "mmap does not see write()");
    // And a new mapping after reopening sees it too (page cache filled from powerfs).
    drop(map);
    drop(f);
    let f = File::open(m.path("db")).unwrap();
    #[allow(unsafe_code)]
    // SAFETY: as above.
    let map = unsafe { memmap2::Mmap::map(&f).unwrap() };
    assert_eq!(&map[4096..4101], b"hello");
}

#[test]
fn an_unlinked_open_file_keeps_working_until_closed() {
    let m = mount();
    durable_file(&m, "gone", b"abc");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path("gone"))
        .unwrap();
    fs::remove_file(m.path("gone")).unwrap();
    assert!(!m.path("gone").exists());
    f.write_all_at(b"XYZ", 3).unwrap();
    f.sync_data().unwrap();
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "abcXYZ");
    drop(f);
    assert_eq!(m.fs.control().unsynced().files, 0);
}

#[test]
fn writes_beyond_max_unsynced_bytes_fail_with_enospc() {
    let m = common::mount_with(gauntlet_powerfs::Options {
        max_unsynced_bytes: 64 * 1024,
        ..Default::default()
    });
    let mut f = File::create(m.path("big")).unwrap();
    f.write_all(&[1u8; 60 * 1024]).unwrap();
    // Overwriting unsynced bytes costs nothing more.
    f.write_all_at(&[2u8; 60 * 1024], 0).unwrap();
    let err = f.write_all(&[3u8; 8 * 1024]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
    // An fsync frees the budget.
    f.sync_data().unwrap();
    f.write_all_at(&[3u8; 8 * 1024], 60 * 1024).unwrap();
}
