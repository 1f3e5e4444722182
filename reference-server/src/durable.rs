//! Making files and directories durable: what a power cut may take and how not to lose
//! to it.
//!
//! A write is on disk only once its file is fsynced, and a new name (a created file or
//! directory, a rename) only once its *directory* is fsynced. The helpers here do both,
//! so every file the server writes outside the WAL (identity, storage version, the
//! database pointer) survives a power cut whole or not at all, and the directories the
//! WAL and the database live in exist after one.
//!
//! sled is the exception this module exists for: its `flush` makes the log durable with
//! `sync_file_range` on Linux, which persists neither an extending write's new file size
//! nor the disk's write cache (its manual says as much), and sled never fsyncs its
//! directory. [`sync_tree`] fsyncs the database's files and directories after every flush
//! the WAL's compaction depends on (gauntlet's power-loss chaos rounds found the raft log
//! compacted past sled's durable state otherwise).
//!
//! With `--unsafe-no-fsync` every helper here does nothing, as etcd's flag asks.

use std::fs::File;
use std::io;
use std::path::Path;

/// fsyncs `dir` itself (its entries: names created, renamed or removed in it).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    if crate::wal::unsafe_no_fsync() {
        return Ok(());
    }
    File::open(dir)?.sync_all()
}

/// `create_dir_all`, then fsyncs the new directory's parent and grandparent, so the
/// directory (and a parent made with it) survives a power cut.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for ancestor in dir.ancestors().skip(1).take(2) {
        if ancestor.as_os_str().is_empty() {
            break;
        }
        sync_dir(ancestor)?;
    }
    Ok(())
}

/// Writes `path` whole or not at all: a temporary file, fsynced, renamed over `path`,
/// then the directory fsynced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    if !crate::wal::unsafe_no_fsync() {
        File::open(&tmp)?.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => Ok(()),
    }
}

/// fsyncs every file of the directory tree at `dir` (one level of subdirectories, as
/// sled keeps), the directories themselves, and `dir`'s parent.
pub fn sync_tree(dir: &Path) -> io::Result<()> {
    if crate::wal::unsafe_no_fsync() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_file() {
            File::open(entry.path())?.sync_all()?;
        } else if kind.is_dir() {
            for inner in std::fs::read_dir(entry.path())? {
                let inner = inner?;
                if inner.file_type()?.is_file() {
                    File::open(inner.path())?.sync_all()?;
                }
            }
            sync_dir(&entry.path())?;
        }
    }
    sync_dir(dir)?;
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("identity");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!dir.path().join("identity.tmp").exists());
    }

    #[test]
    fn sync_tree_walks_files_and_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        create_dir_all(&db.join("blobs")).unwrap();
        std::fs::write(db.join("conf"), b"x").unwrap();
        std::fs::write(db.join("blobs").join("1"), b"y").unwrap();
        sync_tree(&db).unwrap();
        assert!(sync_tree(&dir.path().join("missing")).is_err());
    }
}
