//! # gauntlet-powerfs: a FUSE filesystem that can lose power
//!
//! `PowerFs` mounts a passthrough filesystem over a *backing directory*. The backing directory
//! is the disk: what is in it is durable. What a program wrote but did not fsync yet is held in
//! memory, and [`Control::power_cut`] throws it away. Kill the server with `SIGKILL`, call
//! `power_cut`, start the server again on the same mount: that is a power cut, and the server
//! sees exactly what it had made durable.
//!
//! ```no_run
//! use gauntlet_powerfs::{Faults, Options, PowerFs};
//! use std::io::Write;
//! use std::path::Path;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fs = PowerFs::mount(Path::new("/var/tmp/backing"), Path::new("/mnt/data"), Options::default())?;
//! let control = fs.control(); // Clone + Send + Sync: hand it to the nemesis thread
//!
//! let mut wal = std::fs::File::create(fs.mountpoint().join("wal"))?;
//! wal.write_all(b"record 1\n")?;
//! wal.sync_data()?;                // durable
//! wal.write_all(b"record 2\n")?;   // only in memory
//! drop(wal);
//!
//! // Tear the next unsynced write of WAL files, then cut the power.
//! control.set_faults(Faults { torn_last_write: Some("*.wal".into()), ..Faults::default() })?;
//! let report = control.power_cut()?;
//! println!("{report}");            // one line per fact, for the test's evidence
//! assert_eq!(std::fs::read(fs.mountpoint().join("wal"))?, b"record 1\n");
//! fs.unmount()?;
//! # Ok(())
//! # }
//! ```
//!
//! ## What it models
//!
//! * **File data and size.** `write`, truncation (`ftruncate`, `set_len`, `open(O_TRUNC)`) and
//!   `fallocate` mode 0 that extends the file are kept per inode in memory, until `fsync` or
//!   `fdatasync` of that file (both are treated alike: FUSE's datasync flag is ignored), which
//!   writes them to the backing file and fsyncs it. Reads through the mount, including a
//!   `MAP_SHARED` mmap, see the unsynced data. A truncate down then an extension reads zeros,
//!   not the old backing bytes. `fallocate` with `FALLOC_FL_KEEP_SIZE` is a no-op (it changes
//!   no content); any other mode fails with `EOPNOTSUPP`, so Go's etcd falls back to
//!   ftruncate as it does on file systems without fallocate.
//! * **Namespace, default mode.** create, mknod (regular files only), mkdir, rename, unlink,
//!   rmdir, symlink and setattr of mode, owner and times are applied to the backing directory
//!   at once: durable at once, as on a file system that journals metadata synchronously.
//!   A renamed file keeps its unsynced data (it follows the inode, not the name).
//! * **Namespace, [`Options::strict_metadata`].** create, mknod, mkdir, rename and unlink are
//!   not durable until the directory holding the new entry (for a rename: the target's
//!   directory; for an unlink: the directory it was unlinked from) is fsynced with
//!   `fsyncdir`. They are logged with their undo; the power cut replays the log newest
//!   first. Unlinked files and files overwritten by a rename wait in a hidden stash,
//!   `.powerfs-stash` in the backing root (invisible and unusable through the mount), and are
//!   deleted once their removal is durable. The undo is best effort: an undo whose paths no
//!   longer match (say the file was renamed again and that rename was made durable) is
//!   skipped and counted in [`CutReport::metadata_undo_skipped`]. Undoing a mkdir removes the
//!   directory with everything in it. rmdir, symlink and setattr stay durable at once.
//!   LazyFS, the usual tool for this job, does not model undurable metadata at all.
//! * **Open unlinked files** keep working (read, write, fsync) until their last close; the
//!   backing file is held open.
//! * **Memory bound.** At most [`Options::max_unsynced_bytes`] of unsynced written bytes
//!   (overwrites of unsynced bytes count once); a write beyond fails with `ENOSPC` and one
//!   warning is logged through `tracing` per mount.
//! * **Faults** ([`Faults`]), each for the files whose mount-relative path matches a glob
//!   (`globset` syntax, where `*` also matches `/`): a sleep before fsync, `EIO` on write, `EIO`
//!   on fsync (the data stays unsynced, and a later fsync that succeeds makes it durable), and a
//!   torn last write at the next power cut (see [`Faults::torn_last_write`]).
//!
//! ## What it does not model
//!
//! * Reordering inside a file: an fsync makes all of the file's unsynced changes durable at
//!   once, and without an fsync none of them survive (except a torn last write). A real disk
//!   may persist any subset of unsynced pages at any time; this is the *pessimistic* model
//!   (LazyFS's default), which is what a test of fsync discipline wants.
//! * `fdatasync` versus `fsync`: identical here. File size changes are durable with either.
//! * `sync(2)`, `syncfs(2)`, `O_SYNC`/`O_DSYNC` opens and `sync_file_range`: FUSE does not pass
//!   them on, so they make nothing durable. For `sync_file_range` that is also its contract:
//!   its manual says it persists neither metadata (an extending write's new size) nor the
//!   disk's write cache, so a program that relies on it for durability (sled 0.34's log
//!   writes do) loses that data here, as it can on a real power cut. `msync` of a writable
//!   mapping is not supported
//!   (writable shared mappings are refused by FUSE without writeback caching anyway).
//! * Hard links: `link` fails with `EPERM`. Extended attributes: `ENOSYS`. Locks (`flock`,
//!   `fcntl`) are left to the kernel, which handles them locally for this mount.
//! * A kernel page cache that survives the power cut: cached pages of the files whose unsynced
//!   state was dropped are invalidated at the cut, and FUSE drops a file's cache when it is
//!   opened again, but a process that keeps a file open or mapped across the cut is outside
//!   the model (kill the server first).
//! * Crashes of the host: the backing directory is fsynced when a file or directory is, but a
//!   host crash in the middle of applying an fsync may leave the backing file half updated.
//! * Inode numbers are assigned by path and are not stable across unmounts; the inode table
//!   keeps an entry for every path seen until unmount (FUSE `forget` is ignored), which is
//!   fine for a test's data directory, not for a long-lived mount of millions of files.
//!
//! ## Threads and locks
//!
//! The FUSE session runs on background threads (`fuser`, pure-Rust mount through
//! `fusermount3` with `auto_unmount`, so a killed test process leaves no mount behind). All
//! state is behind one mutex that is never held while sleeping for the fsync-delay fault nor
//! while fsyncing a backing file.

mod dirty;
mod fs;
mod state;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::{Config, MountOption, Notifier, SessionACL};

use crate::state::{CompiledFaults, Shared, STASH_DIR};

/// How long [`PowerFs::mount`] waits for the mount to answer, and [`PowerFs::unmount`] for it
/// to disappear from `/proc/self/mounts`.
const MOUNT_WAIT: Duration = Duration::from_secs(10);

/// How long an unmount waits for the session threads to end before leaving them to end on
/// their own (they do once the last process using the detached mount lets go of it).
const SESSION_END_WAIT: Duration = Duration::from_secs(2);

/// FUSE worker threads: an fsync delayed by a fault must not stall the other files.
const FUSE_THREADS: usize = 4;

/// Mount options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Make create, mknod, mkdir, rename and unlink durable only once the directory holding the
    /// new entry is fsynced (default `false`: durable at once).
    pub strict_metadata: bool,
    /// The most unsynced written bytes held in memory (default 1 GiB); a write beyond it fails
    /// with `ENOSPC`.
    pub max_unsynced_bytes: u64,
    /// Seeds the torn-write fault: the same seed and the same operations tear the same bytes.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            strict_metadata: false,
            max_unsynced_bytes: 1 << 30,
            seed: 0,
        }
    }
}

/// Faults, set with [`Control::set_faults`]. Each targets the files whose mount-relative path
/// (such as `member/wal/0.wal`, no leading `/`) matches a glob in `globset` syntax, where `*`
/// also matches `/`. An unlinked file matches nothing.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Sleep this long before each fsync (and fsyncdir) of a matching path.
    pub fsync_delay: Option<(String, Duration)>,
    /// Writes to matching files fail with `EIO` and change nothing.
    pub eio_on_write: Option<String>,
    /// fsyncs of matching files (and directories) fail with `EIO`; their data stays unsynced.
    pub eio_on_fsync: Option<String>,
    /// At the next power cut, the last unsynced write of each matching file is kept in part: a
    /// seeded-random prefix, cut at a 512-byte boundary of the file strictly inside the write.
    /// A write inside one sector is atomic, as disks write sectors, so it is lost whole. The
    /// rest of the file's unsynced data is dropped as usual.
    pub torn_last_write: Option<String>,
}

/// How much is unsynced right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Unsynced {
    /// Files with unsynced data or size changes.
    pub files: usize,
    /// Unsynced written bytes held in memory.
    pub bytes: u64,
    /// Strict mode: metadata operations not yet made durable by a directory fsync.
    pub metadata_ops: usize,
}

/// A write that the power cut persisted in part.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TornWrite {
    /// Mount-relative path.
    pub path: String,
    /// File offset of the write.
    pub offset: u64,
    /// Bytes of it that are now durable, from `offset` on.
    pub kept_bytes: u64,
    /// Length of the write.
    pub of_bytes: u64,
}

/// What a power cut dropped.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CutReport {
    /// Files whose unsynced data or size changes were dropped.
    pub files_dropped: usize,
    /// Unsynced written bytes dropped (not counting the kept part of torn writes).
    pub bytes_dropped: u64,
    /// Strict mode: metadata operations undone.
    pub metadata_ops_undone: usize,
    /// Strict mode: metadata operations whose undo did not apply (paths changed since).
    pub metadata_undo_skipped: usize,
    /// Strict mode: the operations undone, newest first (`mkdir member`, `rename a -> b`).
    pub undone: Vec<String>,
    /// Torn writes, in path order.
    pub torn: Vec<TornWrite>,
}

impl fmt::Display for CutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "dropped unsynced changes of {} file(s)",
            self.files_dropped
        )?;
        writeln!(f, "dropped {} unsynced byte(s)", self.bytes_dropped)?;
        writeln!(
            f,
            "undid {} undurable metadata operation(s)",
            self.metadata_ops_undone
        )?;
        write!(
            f,
            "skipped {} metadata undo(s) whose paths had changed",
            self.metadata_undo_skipped
        )?;
        if !self.undone.is_empty() {
            write!(f, "\nundid {}", self.undone.join(", "))?;
        }
        for t in &self.torn {
            write!(
                f,
                "\ntore the last write to {} at offset {}: kept {} of {} byte(s)",
                t.path, t.offset, t.kept_bytes, t.of_bytes
            )?;
        }
        Ok(())
    }
}

/// Errors of mounting, unmounting and controlling a [`PowerFs`].
#[derive(Debug, thiserror::Error)]
pub enum PowerFsError {
    /// The backing directory does not exist or is not a directory.
    #[error("backing directory {} is missing or not a directory", .path.display())]
    BackingMissing { path: PathBuf },
    /// The mountpoint does not exist or is not a directory.
    #[error("mountpoint {} is missing or not a directory", .path.display())]
    MountpointMissing { path: PathBuf },
    /// Something is already mounted at the mountpoint.
    #[error("mountpoint {} is already a mount", .path.display())]
    AlreadyMounted { path: PathBuf },
    /// `/dev/fuse` or `fusermount3` refused the mount, or it never answered.
    #[error("mounting powerfs at {}: {source}", .path.display())]
    Mount { path: PathBuf, source: io::Error },
    /// The mount could not be removed.
    #[error("unmounting powerfs at {}: {detail}", .path.display())]
    Unmount { path: PathBuf, detail: String },
    /// A fault's glob does not parse.
    #[error("bad fault glob {glob:?}: {source}")]
    BadGlob {
        glob: String,
        source: globset::Error,
    },
    /// A backing file could not be written (the torn-write fault) or prepared.
    #[error("backing file {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// A mounted power-loss filesystem. Unmounts on drop.
#[derive(Debug)]
pub struct PowerFs {
    mountpoint: PathBuf,
    session: Option<fuser::BackgroundSession>,
    control: Control,
}

/// Commands to a mounted [`PowerFs`]; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
    notifier: Notifier,
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("backing", &self.shared.backing)
            .finish_non_exhaustive()
    }
}

/// Whether `path` is a mount point according to `/proc/self/mounts`.
fn is_mount(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    mounts.lines().any(|line| {
        line.split(' ')
            .nth(1)
            .is_some_and(|m| Path::new(&unescape_mount_path(m)) == path)
    })
}

/// Undoes the octal escapes (`\040` for a space) of `/proc/self/mounts`.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl PowerFs {
    /// Mounts `backing` at `mountpoint` (both must exist as directories); returns once the
    /// mount answers. Needs `/dev/fuse` and `fusermount3` (and, in practice, root).
    ///
    /// Removes leftovers from an earlier stash in `backing/.powerfs-stash`.
    pub fn mount(
        backing: &Path,
        mountpoint: &Path,
        opts: Options,
    ) -> Result<PowerFs, PowerFsError> {
        let backing = backing
            .canonicalize()
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| PowerFsError::BackingMissing {
                path: backing.to_path_buf(),
            })?;
        let mountpoint = mountpoint
            .canonicalize()
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| PowerFsError::MountpointMissing {
                path: mountpoint.to_path_buf(),
            })?;
        if is_mount(&mountpoint) {
            return Err(PowerFsError::AlreadyMounted { path: mountpoint });
        }
        let stash = backing.join(STASH_DIR);
        let _ = std::fs::remove_dir_all(&stash);
        std::fs::create_dir(&stash).map_err(|source| PowerFsError::Io {
            path: stash.clone(),
            source,
        })?;

        let shared = Arc::new(Shared::new(backing, opts));
        let filesystem = fs::PowerFilesystem {
            shared: shared.clone(),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("gauntlet-powerfs".into()),
            MountOption::AutoUnmount,
        ];
        // auto_unmount needs allow_other or allow_root in fusermount3.
        config.acl = SessionACL::RootAndOwner;
        config.n_threads = Some(FUSE_THREADS);
        let mount_err = |source| PowerFsError::Mount {
            path: mountpoint.clone(),
            source,
        };
        let session = fuser::spawn_mount(filesystem, &mountpoint, &config).map_err(mount_err)?;
        let control = Control {
            shared,
            notifier: session.notifier(),
        };
        let fs = PowerFs {
            mountpoint: mountpoint.clone(),
            session: Some(session),
            control,
        };
        let deadline = Instant::now() + MOUNT_WAIT;
        loop {
            if is_mount(&mountpoint) && std::fs::metadata(&mountpoint).is_ok() {
                return Ok(fs);
            }
            if Instant::now() > deadline {
                return Err(mount_err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the mount did not answer",
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A handle for power cuts and faults. It keeps working after the mount is gone, acting
    /// on the in-memory state and the backing directory only.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// The mountpoint, canonicalized.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts (lazily, so a process still using the mount does not block it) and waits until
    /// the mount is gone from `/proc/self/mounts`. Unsynced data is not written back: an
    /// unmount is not a sync.
    pub fn unmount(mut self) -> Result<(), PowerFsError> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> Result<(), PowerFsError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let detail = Command::new("fusermount3")
            .arg("-u")
            .arg("-z")
            .arg("--")
            .arg(&self.mountpoint)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
            .unwrap_or_else(|e| format!("running fusermount3: {e}"));
        // Dropping the rest of the session closes the auto_unmount socket.
        let guard = {
            let fuser::BackgroundSession { guard, .. } = session;
            guard
        };
        let deadline = Instant::now() + MOUNT_WAIT;
        while is_mount(&self.mountpoint) {
            if Instant::now() > deadline {
                return Err(PowerFsError::Unmount {
                    path: self.mountpoint.clone(),
                    detail,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The session threads end once the kernel lets go of the device; do not wait forever
        // for a process that still holds a file of the detached mount.
        let deadline = Instant::now() + SESSION_END_WAIT;
        while !guard.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if guard.is_finished() {
            let _ = guard.join();
        }
        Ok(())
    }
}

impl Drop for PowerFs {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            tracing::error!("{e}");
        }
    }
}

impl Control {
    /// The power cut: drops every unsynced write and size change (keeping the torn prefix of
    /// the last write of files matching [`Faults::torn_last_write`]) and, in strict mode, undoes
    /// every metadata operation not made durable, newest first. Returns when the backing
    /// directory holds the post-cut state. Kill the processes using the mount first: a file
    /// open across the cut may still show cached pages.
    pub fn power_cut(&self) -> Result<CutReport, PowerFsError> {
        let (report, dropped) = self.shared.power_cut()?;
        for ino in dropped {
            // Errors mean the kernel no longer knows the inode: nothing is cached then.
            let _ = self.notifier.inval_inode(fuser::INodeNo(ino), 0, 0);
        }
        Ok(report)
    }

    /// Replaces the current faults. A glob that does not parse is an error, and then the
    /// current faults stay.
    pub fn set_faults(&self, faults: Faults) -> Result<(), PowerFsError> {
        self.shared.set_faults(CompiledFaults::new(&faults)?);
        Ok(())
    }

    /// Removes all faults.
    pub fn clear_faults(&self) {
        self.shared.set_faults(CompiledFaults::default());
    }

    /// How much is unsynced now.
    pub fn unsynced(&self) -> Unsynced {
        self.shared.unsynced()
    }
}
