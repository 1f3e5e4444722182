//! The FUSE request handlers: a passthrough to the backing directory, except that file data and
//! size changes stop in [`crate::dirty::Dirty`] until fsync, and (strict mode) namespace changes
//! are logged for undo.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::dirty::Dirty;
use crate::state::{
    matches, open_backing, Overwritten, Shared, State, UndoEntry, UndoOp, ROOT_INO, STASH_DIR,
};

/// Attribute and entry time-to-live: zero, so the kernel asks again every time and sees
/// unsynced sizes and undone metadata at once.
const TTL: Duration = Duration::ZERO;

#[derive(Debug)]
pub(crate) struct PowerFilesystem {
    pub(crate) shared: Arc<Shared>,
}

fn errno(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn kind_of(ft: fs::FileType) -> FileType {
    if ft.is_dir() {
        FileType::Directory
    } else if ft.is_symlink() {
        FileType::Symlink
    } else if ft.is_fifo() {
        FileType::NamedPipe
    } else if ft.is_socket() {
        FileType::Socket
    } else if ft.is_block_device() {
        FileType::BlockDevice
    } else if ft.is_char_device() {
        FileType::CharDevice
    } else {
        FileType::RegularFile
    }
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH
    }
}

fn attr_of(ino: u64, m: &fs::Metadata, dirty: Option<&Dirty>) -> FileAttr {
    let size = dirty.map_or(m.size(), |d| d.size);
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: if dirty.is_some() {
            size.div_ceil(512)
        } else {
            m.blocks()
        },
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: kind_of(m.file_type()),
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: m.blksize() as u32,
        flags: 0,
    }
}

fn to_timespec(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            }
        }
    }
}

/// Sets atime/mtime of a path without following a final symlink.
#[allow(unsafe_code)]
fn set_times(path: &Path, atime: Option<TimeOrNow>, mtime: Option<TimeOrNow>) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let times = [to_timespec(atime), to_timespec(mtime)];
    // SAFETY: `c` is a valid NUL-terminated path and `times` points to two timespecs, as
    // utimensat requires; both outlive the call.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// statvfs of the backing directory.
#[allow(unsafe_code)]
fn statvfs(path: &Path) -> io::Result<libc::statvfs> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: statvfs is plain old data; all-zero is a valid value that the call overwrites.
    let mut out: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `out` is a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut out) };
    if rc == 0 {
        Ok(out)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The name `name` in directory `parent`, refused for the stash and for names with a `/`.
fn child(st: &State, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
    let dir = st.path_of(parent.0).ok_or(Errno::ENOENT)?;
    if name.as_encoded_bytes().contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    if dir.as_os_str().is_empty() && name == STASH_DIR {
        return Err(Errno::EPERM);
    }
    Ok(dir.join(name))
}

/// The changes of one setattr that powerfs applies (others are ignored).
#[derive(Debug)]
struct SetAttr {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
}

impl PowerFilesystem {
    fn meta_of(&self, st: &State, ino: u64) -> io::Result<fs::Metadata> {
        let node = st
            .nodes
            .get(&ino)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        match (&node.path, &node.file) {
            (Some(p), _) => fs::symlink_metadata(self.shared.real(p)),
            (None, Some(f)) => f.metadata(),
            (None, None) => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        }
    }

    fn attr(&self, st: &State, ino: u64) -> io::Result<FileAttr> {
        let m = self.meta_of(st, ino)?;
        Ok(attr_of(ino, &m, st.dirty.get(&ino)))
    }

    /// The unsynced state of `ino`, created from the backing file's size on first use.
    fn dirty_mut<'a>(&self, st: &'a mut State, ino: u64) -> io::Result<&'a mut Dirty> {
        if !st.dirty.contains_key(&ino) {
            let m = self.meta_of(st, ino)?;
            if !m.is_file() {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            st.dirty.insert(ino, Dirty::new(m.size()));
        }
        st.dirty
            .get_mut(&ino)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EIO))
    }

    /// Opens (or shares) the backing file of `ino` and counts one more open handle.
    fn open_node(&self, st: &mut State, ino: u64) -> io::Result<()> {
        let real = st.path_of(ino).map(|p| self.shared.real(&p));
        let node = st
            .nodes
            .get_mut(&ino)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        if node.file.is_none() {
            let real = real.ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
            node.file = Some(Arc::new(open_backing(&real)?));
        }
        node.open += 1;
        Ok(())
    }

    fn strict(&self) -> bool {
        self.shared.opts.strict_metadata
    }

    fn log_undo(&self, st: &mut State, dir_ino: u64, op: UndoOp) {
        if self.strict() {
            st.undo.push(UndoEntry { dir_ino, op });
        }
    }

    /// The fsync-delay and EIO faults of an fsync of `path`; sleeps without holding the lock.
    fn fsync_faults(&self, path: Option<&Path>) -> Result<(), Errno> {
        let faults = self.shared.faults();
        if let Some((m, delay)) = &faults.fsync_delay {
            if matches(Some(m), path) {
                std::thread::sleep(*delay);
            }
        }
        if matches(faults.eio_on_fsync.as_ref(), path) {
            return Err(Errno::EIO);
        }
        Ok(())
    }

    fn new_entry(&self, st: &mut State, path: &Path, reply: ReplyEntry) {
        let ino = st.ino_for(path);
        match self.attr(st, ino) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn do_setattr(&self, ino: u64, change: SetAttr) -> io::Result<FileAttr> {
        let SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        } = change;
        let mut st = self.shared.lock();
        let real = st.path_of(ino).map(|p| self.shared.real(&p));
        if let Some(real) = &real {
            if let Some(mode) = mode {
                fs::set_permissions(real, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(real, uid, gid)?;
            }
            if atime.is_some() || mtime.is_some() {
                set_times(real, atime, mtime)?;
            }
        }
        if let Some(size) = size {
            self.dirty_mut(&mut st, ino)?.set_size(size);
        }
        self.attr(&st, ino)
    }
}

impl Filesystem for PowerFilesystem {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = self.shared.lock();
        let path = match child(&st, parent, name) {
            Ok(p) => p,
            Err(Errno::EPERM) => return reply.error(Errno::ENOENT),
            Err(e) => return reply.error(e),
        };
        if fs::symlink_metadata(self.shared.real(&path)).is_err() {
            // The name may be stale after an undo or an outside change.
            st.detach(&path);
            return reply.error(Errno::ENOENT);
        }
        self.new_entry(&mut st, &path, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = self.shared.lock();
        match self.attr(&st, ino.0) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let change = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        };
        match self.do_setattr(ino.0, change) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let st = self.shared.lock();
        let Some(path) = st.path_of(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        drop(st);
        match fs::read_link(self.shared.real(&path)) {
            Ok(t) => reply.data(t.as_os_str().as_encoded_bytes()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let mut st = self.shared.lock();
        let path = match child(&st, parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let made = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & !umask & 0o7777)
            .open(self.shared.real(&path));
        if let Err(e) = made {
            return reply.error(errno(&e));
        }
        st.detach(&path);
        self.log_undo(
            &mut st,
            parent.0,
            UndoOp::Created {
                path: path.clone(),
                dir: false,
            },
        );
        self.new_entry(&mut st, &path, reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut st = self.shared.lock();
        let path = match child(&st, parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let made = fs::DirBuilder::new()
            .mode(mode & !umask & 0o7777)
            .create(self.shared.real(&path));
        if let Err(e) = made {
            return reply.error(errno(&e));
        }
        st.detach(&path);
        self.log_undo(
            &mut st,
            parent.0,
            UndoOp::Created {
                path: path.clone(),
                dir: true,
            },
        );
        self.new_entry(&mut st, &path, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.shared.lock();
        let path = match child(&st, parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let real = self.shared.real(&path);
        match fs::symlink_metadata(&real) {
            Ok(m) if m.is_dir() => return reply.error(Errno::EISDIR),
            Ok(_) => {}
            Err(e) => return reply.error(errno(&e)),
        }
        let done = if self.strict() {
            let stash = st.next_stash_name();
            fs::rename(&real, self.shared.real(&stash)).map(|()| Some(stash))
        } else {
            fs::remove_file(&real).map(|()| None)
        };
        match done {
            Ok(stash) => {
                st.detach(&path);
                if let Some(stash) = stash {
                    self.log_undo(&mut st, parent.0, UndoOp::Unlinked { path, stash });
                }
                reply.ok();
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.shared.lock();
        let path = match child(&st, parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        match fs::remove_dir(self.shared.real(&path)) {
            Ok(()) => {
                st.detach(&path);
                reply.ok();
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let mut st = self.shared.lock();
        let path = match child(&st, parent, link_name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        if let Err(e) = std::os::unix::fs::symlink(target, self.shared.real(&path)) {
            return reply.error(errno(&e));
        }
        st.detach(&path);
        self.new_entry(&mut st, &path, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE)
            || flags.contains(RenameFlags::RENAME_WHITEOUT)
        {
            return reply.error(Errno::EINVAL);
        }
        let mut st = self.shared.lock();
        let (from, to) = match (child(&st, parent, name), child(&st, newparent, newname)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        let (rfrom, rto) = (self.shared.real(&from), self.shared.real(&to));
        let src = match fs::symlink_metadata(&rfrom) {
            Ok(m) => m,
            Err(e) => return reply.error(errno(&e)),
        };
        let target = fs::symlink_metadata(&rto).ok();
        if target.is_some() && flags.contains(RenameFlags::RENAME_NOREPLACE) {
            return reply.error(Errno::EEXIST);
        }
        // Strict mode keeps the overwritten file: a hard link in the stash, taken before the
        // rename replaces the name (an overwritten directory is empty: it is recreated on undo).
        let mut overwritten = None;
        if self.strict() && from != to {
            if let Some(t) = &target {
                if t.is_dir() {
                    overwritten = Some(Overwritten::EmptyDir);
                } else {
                    let stash = st.next_stash_name();
                    if let Err(e) = fs::hard_link(&rto, self.shared.real(&stash)) {
                        return reply.error(errno(&e));
                    }
                    overwritten = Some(Overwritten::File(stash));
                }
            }
        }
        if let Err(e) = fs::rename(&rfrom, &rto) {
            if let Some(Overwritten::File(stash)) = &overwritten {
                let _ = fs::remove_file(self.shared.real(stash));
            }
            return reply.error(errno(&e));
        }
        if from != to {
            if target.is_some() {
                st.detach(&to);
            }
            st.rename_paths(&from, &to, src.is_dir());
            self.log_undo(
                &mut st,
                newparent.0,
                UndoOp::Renamed {
                    from,
                    to,
                    overwritten,
                },
            );
        }
        reply.ok();
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.shared.lock();
        match self.open_node(&mut st, ino.0) {
            // No FOPEN_KEEP_CACHE and no FOPEN_DIRECT_IO: the kernel's page cache serves mmap
            // and is dropped when the file is opened again.
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let st = self.shared.lock();
        let Some(file) = st.nodes.get(&ino.0).and_then(|n| n.file.clone()) else {
            return reply.error(Errno::EBADF);
        };
        let result = match st.dirty.get(&ino.0) {
            Some(d) => {
                let end = (offset + u64::from(size)).min(d.size);
                let mut out = vec![0; end.saturating_sub(offset) as usize];
                d.read(&file, offset, &mut out).map(|()| out)
            }
            None => {
                drop(st);
                let mut out = vec![0; size as usize];
                let mut done = 0;
                loop {
                    match std::os::unix::fs::FileExt::read_at(
                        &*file,
                        &mut out[done..],
                        offset + done as u64,
                    ) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            done += n;
                            if done == out.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                }
                .map(|()| {
                    out.truncate(done);
                    out
                })
            }
        };
        match result {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let faults = self.shared.faults();
        let mut st = self.shared.lock();
        let path = st.path_of(ino.0);
        if matches(faults.eio_on_write.as_ref(), path.as_deref()) {
            return reply.error(Errno::EIO);
        }
        let limit = self.shared.opts.max_unsynced_bytes;
        let total = st.unsynced_bytes;
        let d = match self.dirty_mut(&mut st, ino.0) {
            Ok(d) => d,
            Err(e) => return reply.error(errno(&e)),
        };
        let growth = d.growth_of_write(offset, data.len() as u64);
        if total + growth > limit {
            if !st.warned_full {
                st.warned_full = true;
                tracing::warn!(
                    path = %path.unwrap_or_default().display(),
                    limit,
                    "gauntlet-powerfs: unsynced bytes would pass max_unsynced_bytes; writes fail with ENOSPC until an fsync or a power cut"
                );
            }
            return reply.error(Errno::ENOSPC);
        }
        d.write(offset, data);
        st.unsynced_bytes += growth;
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() makes nothing durable.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.shared.lock();
        let mut gone = false;
        if let Some(n) = st.nodes.get_mut(&ino.0) {
            n.open = n.open.saturating_sub(1);
            if n.open == 0 {
                n.file = None;
                gone = n.path.is_none();
            }
        }
        if gone {
            // The last handle of an unlinked file: nothing can reach its data any more.
            st.nodes.remove(&ino.0);
            st.drop_dirty(ino.0);
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let path = self.shared.lock().path_of(ino.0);
        if let Err(e) = self.fsync_faults(path.as_deref()) {
            return reply.error(e);
        }
        let mut st = self.shared.lock();
        let Some(file) = st.nodes.get(&ino.0).and_then(|n| n.file.clone()) else {
            return reply.error(Errno::EBADF);
        };
        if let Some(d) = st.dirty.get(&ino.0) {
            // Apply under the lock so readers never see half of it, then fsync without it.
            if let Err(e) = d.apply_to(&file) {
                return reply.error(errno(&e));
            }
            st.drop_dirty(ino.0);
        }
        drop(st);
        let synced = if datasync {
            file.sync_data()
        } else {
            file.sync_all()
        };
        match synced {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let path = self.shared.lock().path_of(ino.0);
        let Some(path) = path else {
            return reply.error(Errno::ENOENT);
        };
        if let Err(e) = self.fsync_faults(Some(&path)) {
            return reply.error(e);
        }
        self.shared.make_durable(ino.0);
        match File::open(self.shared.real(&path)).and_then(|d| d.sync_all()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut st = self.shared.lock();
        let Some(dir) = st.path_of(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let entries = match fs::read_dir(self.shared.real(&dir)) {
            Ok(rd) => rd,
            Err(e) => return reply.error(errno(&e)),
        };
        let parent_ino = dir
            .parent()
            .and_then(|p| st.by_path.get(p).copied())
            .unwrap_or(ROOT_INO);
        let mut list = vec![
            (ino.0, FileType::Directory, ".".into()),
            (parent_ino, FileType::Directory, "..".into()),
        ];
        let mut names: Vec<(std::ffi::OsString, FileType)> = entries
            .flatten()
            .filter(|e| !(dir.as_os_str().is_empty() && e.file_name() == STASH_DIR))
            .map(|e| {
                let kind = e.file_type().map_or(FileType::RegularFile, kind_of);
                (e.file_name(), kind)
            })
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, kind) in names {
            let child_ino = st.ino_for(&dir.join(&name));
            list.push((child_ino, kind, name));
        }
        for (i, (child_ino, kind, name)) in list.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child_ino), (i + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match statvfs(&self.shared.backing) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.shared.lock();
        let path = match child(&st, parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let real = self.shared.real(&path);
        let existed = fs::symlink_metadata(&real).is_ok();
        if existed && flags & libc::O_EXCL != 0 {
            return reply.error(Errno::EEXIST);
        }
        // O_TRUNC is not passed on: a truncation must stay unsynced (the kernel sends it as a
        // setattr when it applies).
        let made = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(mode & !umask & 0o7777)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&real);
        let file = match made {
            Ok(f) => f,
            Err(e) => return reply.error(errno(&e)),
        };
        if !existed {
            st.detach(&path);
            self.log_undo(
                &mut st,
                parent.0,
                UndoOp::Created {
                    path: path.clone(),
                    dir: false,
                },
            );
        }
        let ino = st.ino_for(&path);
        if let Some(n) = st.nodes.get_mut(&ino) {
            if n.file.is_none() {
                n.file = Some(Arc::new(file));
            }
            n.open += 1;
        }
        match self.attr(&st, ino) {
            Ok(a) => reply.created(&TTL, &a, Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode == libc::FALLOC_FL_KEEP_SIZE {
            return reply.ok();
        }
        if mode != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let end = offset.saturating_add(length);
        let mut st = self.shared.lock();
        let size = match st.dirty.get(&ino.0) {
            Some(d) => Ok(d.size),
            None => self.meta_of(&st, ino.0).map(|m| m.len()),
        };
        match size {
            // Space allocation changes no content: nothing to lose.
            Ok(size) if end <= size => reply.ok(),
            Ok(_) => match self.dirty_mut(&mut st, ino.0) {
                Ok(d) => {
                    d.set_size(end);
                    reply.ok();
                }
                Err(e) => reply.error(errno(&e)),
            },
            Err(e) => reply.error(errno(&e)),
        }
    }
}
