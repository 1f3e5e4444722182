//! Faults hit the files whose path matches their glob, and only those.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::{durable_file, mount, mount_with};
use gauntlet_powerfs::{Faults, Options, PowerFsError};

#[test]
fn eio_on_write_hits_matching_paths_only() {
    let m = mount();
    fs::create_dir(m.path("wal")).unwrap();
    let c = m.fs.control();
    c.set_faults(Faults {
        eio_on_write: Some("wal/*.wal".into()),
        ..Faults::default()
    })
    .unwrap();
    let mut bad = File::create(m.path("wal/0.wal")).unwrap();
    let err = bad.write_all(b"record").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let mut good = File::create(m.path("wal/0.snap")).unwrap();
    good.write_all(b"record").unwrap();
    good.sync_all().unwrap();

    c.clear_faults();
    bad.write_all(b"record").unwrap();
    assert_eq!(fs::read(m.path("wal/0.wal")).unwrap(), b"record");
}

#[test]
fn eio_on_fsync_hits_matching_paths_only_and_leaves_data_unsynced() {
    let m = mount();
    let c = m.fs.control();
    c.set_faults(Faults {
        eio_on_fsync: Some("*.db".into()),
        ..Faults::default()
    })
    .unwrap();
    let mut bad = File::create(m.path("x.db")).unwrap();
    bad.write_all(b"page").unwrap();
    let err = bad.sync_data().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let mut good = File::create(m.path("x.log")).unwrap();
    good.write_all(b"line").unwrap();
    good.sync_data().unwrap();
    assert_eq!(c.unsynced().files, 1);

    c.power_cut().unwrap();
    assert_eq!(fs::read(m.path("x.db")).unwrap(), b"");
    assert_eq!(fs::read(m.path("x.log")).unwrap(), b"line");
}

#[test]
fn fsync_delay_slows_matching_paths_only() {
    let m = mount();
    let c = m.fs.control();
    c.set_faults(Faults {
        fsync_delay: Some(("slow*".into(), Duration::from_millis(300))),
        ..Faults::default()
    })
    .unwrap();
    let mut slow = File::create(m.path("slow.wal")).unwrap();
    let mut fast = File::create(m.path("fast.wal")).unwrap();
    slow.write_all(b"x").unwrap();
    fast.write_all(b"x").unwrap();

    let t = Instant::now();
    slow.sync_data().unwrap();
    let slow_took = t.elapsed();
    let t = Instant::now();
    fast.sync_data().unwrap();
    let fast_took = t.elapsed();
    assert!(
        slow_took >= Duration::from_millis(300),
        "slow fsync took {slow_took:?}"
    );
    assert!(
        fast_took < Duration::from_millis(200),
        "fast fsync took {fast_took:?}"
    );
}

/// Writes a durable 4 KiB file, then one unsynced 3000-byte write at `off`, cuts, and returns
/// the torn length reported and the file's content after the cut.
fn torn_run(seed: u64, off: u64) -> (gauntlet_powerfs::CutReport, Vec<u8>) {
    let m = mount_with(Options {
        seed,
        ..Options::default()
    });
    durable_file(&m, "seg.wal", &[b'.'; 4096]);
    durable_file(&m, "other.log", b"");
    let c = m.fs.control();
    c.set_faults(Faults {
        torn_last_write: Some("*.wal".into()),
        ..Faults::default()
    })
    .unwrap();
    let f = OpenOptions::new()
        .write(true)
        .open(m.path("seg.wal"))
        .unwrap();
    f.write_all_at(&[b'A'; 100], 0).unwrap(); // not the last write: dropped
    f.write_all_at(&[b'B'; 3000], off).unwrap();
    OpenOptions::new()
        .append(true)
        .open(m.path("other.log"))
        .unwrap()
        .write_all(&[b'C'; 3000])
        .unwrap();
    let report = c.power_cut().unwrap();
    let content = fs::read(m.path("seg.wal")).unwrap();
    assert_eq!(
        fs::read(m.path("other.log")).unwrap(),
        b"",
        "non-matching file was torn"
    );
    (report, content)
}

#[test]
fn a_torn_last_write_keeps_the_reported_prefix_only() {
    let (report, content) = torn_run(42, 700);
    assert_eq!(report.torn.len(), 1, "{report}");
    let t = &report.torn[0];
    assert_eq!(
        (t.path.as_str(), t.offset, t.of_bytes),
        ("seg.wal", 700, 3000)
    );
    assert!(t.kept_bytes > 0 && t.kept_bytes < 3000, "{report}");
    assert_eq!(
        (700 + t.kept_bytes) % 512,
        0,
        "cut not at a sector boundary: {report}"
    );
    let kept = t.kept_bytes as usize;
    let mut expected = vec![b'.'; 4096];
    expected[700..700 + kept].fill(b'B');
    assert_eq!(content.len(), 4096);
    assert!(
        content == expected,
        "content differs from the reported tear: {report}"
    );
    assert!(report
        .to_string()
        .contains("tore the last write to seg.wal at offset 700"));
}

#[test]
fn the_same_seed_tears_the_same_length() {
    let lengths = |seed| -> Vec<u64> {
        (0..3)
            .map(|_| torn_run(seed, 100).0.torn[0].kept_bytes)
            .collect()
    };
    let a = lengths(7);
    assert!(a.iter().all(|&k| k == a[0]), "seed 7 gave {a:?}");
    // Some other seed cuts elsewhere (5 possible cuts: not all 8 seeds agree by chance... almost).
    let others: Vec<u64> = (100..108)
        .map(|s| torn_run(s, 100).0.torn[0].kept_bytes)
        .collect();
    assert!(
        others.iter().any(|&k| k != a[0]),
        "the seed changes nothing: {others:?}"
    );
}

#[test]
fn a_bad_glob_is_an_error_and_keeps_the_faults() {
    let m = mount();
    let c = m.fs.control();
    c.set_faults(Faults {
        eio_on_write: Some("*.wal".into()),
        ..Faults::default()
    })
    .unwrap();
    let err = c
        .set_faults(Faults {
            eio_on_fsync: Some("[unclosed".into()),
            ..Faults::default()
        })
        .unwrap_err();
    assert!(matches!(err, PowerFsError::BadGlob { .. }), "{err}");
    assert!(err.to_string().contains("[unclosed"));
    let mut f = File::create(m.path("a.wal")).unwrap();
    assert!(f.write_all(b"x").is_err(), "the earlier faults were lost");
}
