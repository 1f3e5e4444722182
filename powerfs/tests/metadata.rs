//! Namespace durability: at once in the default mode; only after a directory fsync in strict
//! mode.

mod common;

use std::fs::{self, File};
use std::io::Write;

use common::{durable_file, fsync_dir, mount, strict};

#[test]
fn strict_a_created_file_vanishes_without_a_dir_fsync_even_with_its_data_synced() {
    let m = strict();
    let mut f = File::create(m.path("new")).unwrap();
    f.write_all(b"data").unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(m.fs.control().unsynced().metadata_ops, 1);
    let r = m.fs.control().power_cut().unwrap();
    assert_eq!(r.metadata_ops_undone, 1);
    assert_eq!(r.undone, vec!["create new".to_string()]);
    assert!(r.to_string().contains("undid create new"), "{r}");
    assert!(!m.path("new").exists(), "undurable create survived");
    assert!(!m.backing.join("new").exists());
}

#[test]
fn strict_a_created_file_stays_with_a_dir_fsync() {
    let m = strict();
    fs::create_dir(m.path("d")).unwrap();
    fsync_dir(m.fs.mountpoint());
    let mut f = File::create(m.path("d/new")).unwrap();
    f.write_all(b"data").unwrap();
    f.sync_all().unwrap();
    drop(f);
    fsync_dir(&m.path("d"));
    assert_eq!(m.fs.control().unsynced().metadata_ops, 0);
    let r = m.fs.control().power_cut().unwrap();
    assert_eq!(r.metadata_ops_undone, 0);
    assert_eq!(fs::read(m.path("d/new")).unwrap(), b"data");
}

#[test]
fn strict_an_undurable_mkdir_is_undone_with_its_content() {
    let m = strict();
    fs::create_dir(m.path("d")).unwrap();
    durable_file(&m, "d/inner", b"x");
    m.fs.control().power_cut().unwrap();
    assert!(!m.path("d").exists());
}

#[test]
fn strict_a_rename_without_a_dir_fsync_is_undone_and_the_target_restored() {
    let m = strict();
    durable_file(&m, "a.tmp", b"new version");
    durable_file(&m, "a", b"old version");
    fs::rename(m.path("a.tmp"), m.path("a")).unwrap();
    assert_eq!(fs::read(m.path("a")).unwrap(), b"new version");
    assert!(!m.path("a.tmp").exists());
    // The stash is invisible through the mount.
    let names: Vec<_> = fs::read_dir(m.fs.mountpoint())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["a".to_string()]);

    let r = m.fs.control().power_cut().unwrap();
    assert_eq!((r.metadata_ops_undone, r.metadata_undo_skipped), (1, 0));
    assert_eq!(r.undone, vec!["rename a.tmp -> a".to_string()]);
    assert_eq!(fs::read(m.path("a.tmp")).unwrap(), b"new version");
    assert_eq!(fs::read(m.path("a")).unwrap(), b"old version");
}

#[test]
fn strict_a_rename_with_a_dir_fsync_is_kept() {
    let m = strict();
    durable_file(&m, "a.tmp", b"new version");
    durable_file(&m, "a", b"old version");
    fs::rename(m.path("a.tmp"), m.path("a")).unwrap();
    fsync_dir(m.fs.mountpoint());
    assert_eq!(
        fs::read_dir(m.backing.join(".powerfs-stash"))
            .unwrap()
            .count(),
        0
    );
    let r = m.fs.control().power_cut().unwrap();
    assert_eq!(r.metadata_ops_undone, 0);
    assert_eq!(fs::read(m.path("a")).unwrap(), b"new version");
    assert!(!m.path("a.tmp").exists());
}

#[test]
fn strict_a_directory_rename_moves_pending_entries_with_it() {
    let m = strict();
    fs::create_dir(m.path("wal.tmp")).unwrap();
    durable_file(&m, "wal.tmp/0.wal", b"seg");
    fs::rename(m.path("wal.tmp"), m.path("wal")).unwrap();
    fsync_dir(m.fs.mountpoint());
    m.fs.control().power_cut().unwrap();
    assert_eq!(fs::read(m.path("wal/0.wal")).unwrap(), b"seg");
    assert!(!m.path("wal.tmp").exists());
}

#[test]
fn strict_an_unlink_without_a_dir_fsync_is_undone() {
    let m = strict();
    durable_file(&m, "victim", b"still here");
    fs::remove_file(m.path("victim")).unwrap();
    assert!(!m.path("victim").exists());
    let r = m.fs.control().power_cut().unwrap();
    assert_eq!(r.metadata_ops_undone, 1);
    assert_eq!(fs::read(m.path("victim")).unwrap(), b"still here");

    fs::remove_file(m.path("victim")).unwrap();
    fsync_dir(m.fs.mountpoint());
    m.fs.control().power_cut().unwrap();
    assert!(!m.path("victim").exists());
}

#[test]
fn default_mode_a_rename_is_durable_at_once() {
    let m = mount();
    durable_file(&m, "a.tmp", b"new version");
    durable_file(&m, "a", b"old version");
    fs::rename(m.path("a.tmp"), m.path("a")).unwrap();
    let f = File::create(m.path("created")).unwrap();
    f.sync_all().unwrap();
    assert_eq!(m.fs.control().unsynced().metadata_ops, 0);
    let r = m.fs.control().power_cut().unwrap();
    assert_eq!(r.metadata_ops_undone, 0);
    assert_eq!(fs::read(m.path("a")).unwrap(), b"new version");
    assert!(!m.path("a.tmp").exists());
    assert!(m.path("created").exists());
}

#[test]
fn default_mode_a_renamed_file_keeps_only_its_synced_data() {
    let m = mount();
    let mut f = File::create(m.path("snap.tmp")).unwrap();
    f.write_all(b"unsynced").unwrap();
    drop(f);
    fs::rename(m.path("snap.tmp"), m.path("snap")).unwrap();
    assert_eq!(fs::read(m.path("snap")).unwrap(), b"unsynced");
    m.fs.control().power_cut().unwrap();
    assert_eq!(
        fs::read(m.path("snap")).unwrap(),
        b"",
        "data followed the rename without fsync"
    );
}

#[test]
fn directories_symlinks_and_listing_pass_through() {
    let m = mount();
    fs::create_dir_all(m.path("x/y")).unwrap();
    std::os::unix::fs::symlink("y", m.path("x/link")).unwrap();
    assert_eq!(fs::read_link(m.path("x/link")).unwrap().to_str(), Some("y"));
    let mut names: Vec<_> = fs::read_dir(m.path("x"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["link", "y"]);
    let err = fs::hard_link(m.path("x/link"), m.path("x/hard")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    fs::remove_file(m.path("x/link")).unwrap();
    fs::remove_dir(m.path("x/y")).unwrap();
    assert!(!m.backing.join("x/y").exists());
}
