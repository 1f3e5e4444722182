//! Shared state: the inode table, the unsynced file states, the strict-mode undo log, faults.
//!
//! One `Mutex<State>` guards it all. Invariant: no code sleeps or fsyncs a backing file while
//! holding it (the fsync-delay fault and the backing fsync happen after it is released).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use globset::{Glob, GlobMatcher};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::dirty::Dirty;
use crate::{CutReport, Faults, Options, PowerFsError, TornWrite, Unsynced};

/// The hidden directory, in the backing root, that holds unlinked and rename-overwritten files
/// until their removal is durable (strict mode).
pub(crate) const STASH_DIR: &str = ".powerfs-stash";

/// The root inode number, fixed by FUSE.
pub(crate) const ROOT_INO: u64 = 1;

/// One inode known to the kernel.
#[derive(Debug)]
pub(crate) struct Node {
    /// Mount-relative path; `None` once unlinked (or rename-overwritten).
    pub(crate) path: Option<PathBuf>,
    /// Open handles (FUSE open/create minus release).
    pub(crate) open: u32,
    /// The backing file, open while `open > 0` (keeps an unlinked file usable).
    pub(crate) file: Option<Arc<File>>,
}

/// A strict-mode metadata operation that is not durable yet, with what undoes it.
#[derive(Debug)]
pub(crate) enum UndoOp {
    /// A new file or directory at `path`: undo removes it (a directory with its content).
    Created { path: PathBuf, dir: bool },
    /// `from` renamed to `to`; `overwritten` is the stash path of a replaced file, or
    /// `OverwrittenDir` for a replaced empty directory.
    Renamed {
        from: PathBuf,
        to: PathBuf,
        overwritten: Option<Overwritten>,
    },
    /// `path` unlinked; its file waits in the stash.
    Unlinked { path: PathBuf, stash: PathBuf },
}

#[derive(Debug)]
pub(crate) enum Overwritten {
    File(PathBuf),
    EmptyDir,
}

#[derive(Debug)]
pub(crate) struct UndoEntry {
    /// The inode of the directory whose fsync makes this entry durable (it follows renames).
    pub(crate) dir_ino: u64,
    pub(crate) op: UndoOp,
}

/// Faults with their globs compiled.
#[derive(Debug, Default)]
pub(crate) struct CompiledFaults {
    pub(crate) fsync_delay: Option<(GlobMatcher, Duration)>,
    pub(crate) eio_on_write: Option<GlobMatcher>,
    pub(crate) eio_on_fsync: Option<GlobMatcher>,
    pub(crate) torn_last_write: Option<GlobMatcher>,
}

fn compile(glob: &str) -> Result<GlobMatcher, PowerFsError> {
    Glob::new(glob)
        .map(|g| g.compile_matcher())
        .map_err(|source| PowerFsError::BadGlob {
            glob: glob.to_string(),
            source,
        })
}

impl CompiledFaults {
    pub(crate) fn new(f: &Faults) -> Result<CompiledFaults, PowerFsError> {
        Ok(CompiledFaults {
            fsync_delay: match &f.fsync_delay {
                Some((g, d)) => Some((compile(g)?, *d)),
                None => None,
            },
            eio_on_write: f.eio_on_write.as_deref().map(compile).transpose()?,
            eio_on_fsync: f.eio_on_fsync.as_deref().map(compile).transpose()?,
            torn_last_write: f.torn_last_write.as_deref().map(compile).transpose()?,
        })
    }
}

/// Whether `path` (mount-relative; `None` for an unlinked file) matches `m`.
pub(crate) fn matches(m: Option<&GlobMatcher>, path: Option<&Path>) -> bool {
    match (m, path) {
        (Some(m), Some(p)) => m.is_match(p),
        _ => false,
    }
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) nodes: HashMap<u64, Node>,
    pub(crate) by_path: HashMap<PathBuf, u64>,
    next_ino: u64,
    pub(crate) dirty: HashMap<u64, Dirty>,
    pub(crate) unsynced_bytes: u64,
    pub(crate) undo: Vec<UndoEntry>,
    next_stash: u64,
    cuts: u64,
    pub(crate) warned_full: bool,
}

/// Everything the FUSE handlers and the [`crate::Control`] share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) backing: PathBuf,
    pub(crate) opts: Options,
    state: Mutex<State>,
    faults: Mutex<Arc<CompiledFaults>>,
}

impl Shared {
    pub(crate) fn new(backing: PathBuf, opts: Options) -> Shared {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT_INO,
            Node {
                path: Some(PathBuf::new()),
                open: 0,
                file: None,
            },
        );
        let mut by_path = HashMap::new();
        by_path.insert(PathBuf::new(), ROOT_INO);
        Shared {
            backing,
            opts,
            state: Mutex::new(State {
                nodes,
                by_path,
                next_ino: ROOT_INO + 1,
                dirty: HashMap::new(),
                unsynced_bytes: 0,
                undo: Vec::new(),
                next_stash: 0,
                cuts: 0,
                warned_full: false,
            }),
            faults: Mutex::new(Arc::new(CompiledFaults::default())),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn faults(&self) -> Arc<CompiledFaults> {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_faults(&self, f: CompiledFaults) {
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(f);
    }

    /// The backing path of a mount-relative path.
    pub(crate) fn real(&self, rel: &Path) -> PathBuf {
        self.backing.join(rel)
    }

    pub(crate) fn stash_dir(&self) -> PathBuf {
        self.backing.join(STASH_DIR)
    }

    pub(crate) fn unsynced(&self) -> Unsynced {
        let st = self.lock();
        Unsynced {
            files: st.dirty.len(),
            bytes: st.unsynced_bytes,
            metadata_ops: st.undo.len(),
        }
    }
}

impl State {
    /// The inode number for `path`, assigned on first sight.
    pub(crate) fn ino_for(&mut self, path: &Path) -> u64 {
        if let Some(&ino) = self.by_path.get(path) {
            return ino;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                path: Some(path.to_path_buf()),
                open: 0,
                file: None,
            },
        );
        self.by_path.insert(path.to_path_buf(), ino);
        ino
    }

    pub(crate) fn path_of(&self, ino: u64) -> Option<PathBuf> {
        self.nodes.get(&ino).and_then(|n| n.path.clone())
    }

    /// Forgets the name `path` (unlink, rmdir, overwritten by rename, undone create). An inode
    /// that is not open loses its unsynced state too: nobody can reach it any more.
    pub(crate) fn detach(&mut self, path: &Path) {
        let Some(ino) = self.by_path.remove(path) else {
            return;
        };
        let drop_node = match self.nodes.get_mut(&ino) {
            Some(n) => {
                n.path = None;
                n.open == 0
            }
            None => false,
        };
        if drop_node {
            self.nodes.remove(&ino);
            self.drop_dirty(ino);
        }
    }

    pub(crate) fn drop_dirty(&mut self, ino: u64) {
        if let Some(d) = self.dirty.remove(&ino) {
            self.unsynced_bytes -= d.bytes;
        }
    }

    /// Moves the names `from` and (when `is_dir`) everything below it to `to`.
    pub(crate) fn rename_paths(&mut self, from: &Path, to: &Path, is_dir: bool) {
        let moved: Vec<PathBuf> = if is_dir {
            self.by_path
                .keys()
                .filter(|p| p.starts_with(from))
                .cloned()
                .collect()
        } else {
            vec![from.to_path_buf()]
        };
        for old in moved {
            let Some(ino) = self.by_path.remove(&old) else {
                continue;
            };
            let new = match old.strip_prefix(from) {
                Ok(rest) if rest.as_os_str().is_empty() => to.to_path_buf(),
                Ok(rest) => to.join(rest),
                Err(_) => continue,
            };
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.path = Some(new.clone());
            }
            self.by_path.insert(new, ino);
        }
    }

    pub(crate) fn next_stash_name(&mut self) -> PathBuf {
        self.next_stash += 1;
        PathBuf::from(STASH_DIR).join(format!("{}", self.next_stash))
    }
}

/// Opens a backing file (never through a symlink) for reading and writing, falling back to
/// read-only where writing is refused (a read-only backing fs, a running executable).
pub(crate) fn open_backing(path: &Path) -> io::Result<File> {
    let open = |write| {
        OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    };
    match open(true) {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EACCES | libc::EPERM | libc::EROFS | libc::ETXTBSY)
            ) =>
        {
            open(false)
        }
        other => other,
    }
}

/// Removes a file, a symlink or a directory tree.
fn remove_any(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

impl Shared {
    /// Marks durable the undo entries whose directory is `dir_ino`, deleting their stashed files.
    pub(crate) fn make_durable(&self, dir_ino: u64) {
        let mut st = self.lock();
        let entries = std::mem::take(&mut st.undo);
        let (durable, pending): (Vec<_>, Vec<_>) =
            entries.into_iter().partition(|e| e.dir_ino == dir_ino);
        st.undo = pending;
        drop(st);
        for e in durable {
            let stash = match e.op {
                UndoOp::Unlinked { stash, .. } => Some(stash),
                UndoOp::Renamed {
                    overwritten: Some(Overwritten::File(stash)),
                    ..
                } => Some(stash),
                _ => None,
            };
            if let Some(stash) = stash {
                // An open file stays usable through its descriptor after this.
                let _ = remove_any(&self.real(&stash));
            }
        }
    }

    /// The power cut: see [`crate::Control::power_cut`].
    pub(crate) fn power_cut(&self) -> Result<(CutReport, Vec<u64>), PowerFsError> {
        let faults = self.faults();
        let mut st = self.lock();
        st.cuts += 1;
        let mut rng = StdRng::seed_from_u64(self.opts.seed ^ st.cuts.wrapping_mul(0x9E37_79B9));
        let mut report = CutReport::default();

        // Unsynced data, in path order so that the seed decides the same tears every time.
        let mut files: Vec<(u64, Option<PathBuf>)> =
            st.dirty.keys().map(|&ino| (ino, st.path_of(ino))).collect();
        files.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        let mut inval = Vec::new();
        for (ino, path) in files {
            let Some(d) = st.dirty.remove(&ino) else {
                continue;
            };
            inval.push(ino);
            report.files_dropped += 1;
            report.bytes_dropped += d.bytes;
            if !matches(faults.torn_last_write.as_ref(), path.as_deref()) {
                continue;
            }
            let (Some(path), Some((off, bytes))) = (path, d.last_write_bytes()) else {
                continue;
            };
            let kept = torn_length(&mut rng, off, bytes.len() as u64);
            if kept > 0 {
                let real = self.real(&path);
                let io_err = |source| PowerFsError::Io {
                    path: real.clone(),
                    source,
                };
                let f = OpenOptions::new().write(true).open(&real).map_err(io_err)?;
                f.write_all_at(&bytes[..kept as usize], off)
                    .map_err(io_err)?;
                f.sync_data().map_err(io_err)?;
            }
            report.bytes_dropped = report.bytes_dropped.saturating_sub(kept);
            report.torn.push(TornWrite {
                path: path.to_string_lossy().into_owned(),
                offset: off,
                kept_bytes: kept,
                of_bytes: bytes.len() as u64,
            });
        }
        st.unsynced_bytes = 0;

        // Undurable metadata, newest first.
        let undo = std::mem::take(&mut st.undo);
        for e in undo.into_iter().rev() {
            let what = match &e.op {
                UndoOp::Created { path, dir } => format!(
                    "{} {}",
                    if *dir { "mkdir" } else { "create" },
                    path.display()
                ),
                UndoOp::Renamed { from, to, .. } => {
                    format!("rename {} -> {}", from.display(), to.display())
                }
                UndoOp::Unlinked { path, .. } => format!("unlink {}", path.display()),
            };
            if self.undo_one(&mut st, e.op) {
                report.metadata_ops_undone += 1;
                report.undone.push(what);
            } else {
                report.metadata_undo_skipped += 1;
            }
        }
        drop(st);
        if let Ok(entries) = fs::read_dir(self.stash_dir()) {
            for entry in entries.flatten() {
                let _ = remove_any(&entry.path());
            }
        }
        Ok((report, inval))
    }

    /// Undoes one operation if the tree still looks as it left it; true when undone.
    fn undo_one(&self, st: &mut State, op: UndoOp) -> bool {
        match op {
            UndoOp::Created { path, dir } => {
                let real = self.real(&path);
                match fs::symlink_metadata(&real) {
                    Ok(m) if m.is_dir() == dir && remove_any(&real).is_ok() => {
                        st.detach(&path);
                        true
                    }
                    _ => false,
                }
            }
            UndoOp::Renamed {
                from,
                to,
                overwritten,
            } => {
                let (rfrom, rto) = (self.real(&from), self.real(&to));
                let Ok(meta) = fs::symlink_metadata(&rto) else {
                    return false;
                };
                if exists(&rfrom) || fs::rename(&rto, &rfrom).is_err() {
                    return false;
                }
                st.rename_paths(&to, &from, meta.is_dir());
                match overwritten {
                    Some(Overwritten::File(stash)) => fs::rename(self.real(&stash), &rto).is_ok(),
                    Some(Overwritten::EmptyDir) => fs::create_dir(&rto).is_ok(),
                    None => true,
                }
            }
            UndoOp::Unlinked { path, stash } => {
                let real = self.real(&path);
                !exists(&real) && fs::rename(self.real(&stash), &real).is_ok()
            }
        }
    }
}

/// How many bytes of a write of `len` bytes at `off` survive a torn write: a cut at a
/// 512-byte boundary of the file strictly inside the write, chosen at random. Disks write a
/// sector atomically, so a write inside one sector is not torn: it is lost whole (0).
pub(crate) fn torn_length(rng: &mut StdRng, off: u64, len: u64) -> u64 {
    const SECTOR: u64 = 512;
    let first = (off / SECTOR + 1) * SECTOR;
    if len == 0 || first >= off + len {
        return 0;
    }
    let last = (off + len - 1) / SECTOR * SECTOR;
    let n = (last - first) / SECTOR + 1;
    let cut = first + rng.gen_range(0..n) * SECTOR;
    cut - off
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_length_cuts_inside_the_write_at_a_sector_boundary() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let off = rng.gen_range(0..5000u64);
            let len = rng.gen_range(513..5000u64);
            let k = torn_length(&mut rng, off, len);
            assert!(k > 0 && k < len, "kept {k} of {len}");
            assert_eq!((off + k) % 512, 0);
        }
        // Inside one sector: atomic, lost whole.
        for _ in 0..200 {
            let len = rng.gen_range(1..=509u64);
            assert_eq!(torn_length(&mut rng, 3, len), 0);
        }
        assert_eq!(torn_length(&mut rng, 0, 512), 0);
        // A short write across a sector boundary is cut at it.
        assert_eq!(torn_length(&mut rng, 500, 100), 12);
    }
}
