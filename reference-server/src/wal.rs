//! The write-ahead log: raft's entries and hard state, appended to segment files and
//! fsynced once per `Ready` (group commit).
//!
//! # Format
//!
//! A WAL directory holds segment files named `{seq:016x}.wal`, read in `seq` order. A
//! segment is a sequence of records:
//!
//! ```text
//! +-----------+-----------+------+-----------------+
//! | len: u32  | crc: u32  | kind | payload         |   little-endian; crc32 of kind+payload
//! +-----------+-----------+------+-----------------+   len = 1 + payload length
//! ```
//!
//! Every segment starts with a [`Kind::State`] record (hard state, configuration and
//! log base), so the segments before it can be deleted once the log is compacted past
//! their last entry. The kinds, and what replay does with each:
//!
//! | kind | payload | replay |
//! |---|---|---|
//! | `Entries` | raft entries | drop the log from the first entry's index on, append |
//! | `HardState` | term, vote, commit | replace |
//! | `ConfState` | voters, learners | replace |
//! | `Base` | index, term | forget entries up to index (log compaction) |
//! | `Pending` | snapshot metadata | a snapshot install began (see `raftlog`) |
//! | `Snapshot` | snapshot metadata | forget all entries; base, configuration from it |
//! | `Cancel` | — | the pending install was abandoned |
//! | `State` | hard state, conf state, base | segment header: replace all three |
//!
//! # Crash safety
//!
//! Records are only appended. A crash can leave a torn record at the end of the last
//! segment; replay stops there and cuts the file, which is safe because nothing in an
//! unsynced record was acknowledged. A bad record anywhere else is corruption, reported
//! as an error instead of silently dropping acknowledged entries. After replay a new
//! segment is always started, so each segment is written by one process lifetime.
//!
//! Worked example: entries 1..=5 were written to segment 0, then segment 1 started
//! (header base 0), entries 6..=9 were written and the log was compacted to 6 (a `Base`
//! record with index 6). Segment 0's highest entry, 5, is at or below the base, so
//! segment 0 is deleted. Replaying segment 1 alone: the header says base 0, entries
//! 6..=9 are appended after a gap (1..=5 are gone), then `Base(6)` forgets 6; the log is
//! base 6 plus entries 7..=9: contiguous, as the final check requires.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use raft::eraftpb::{ConfState, Entry, HardState, SnapshotMetadata};

/// A segment is closed and a new one started once it grows past this.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// Largest record accepted on replay (a corrupt length must not allocate gigabytes).
const MAX_RECORD_BYTES: u32 = 512 << 20;

/// Errors of the WAL: fatal for the member.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The file system failed.
    #[error("wal {path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A record that is not the torn tail of the last segment does not decode.
    #[error("wal corrupt: {0}")]
    Corrupt(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Record kinds (the byte after the checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Entries = 1,
    HardState = 2,
    ConfState = 3,
    Base = 4,
    Pending = 5,
    Snapshot = 6,
    Cancel = 7,
    State = 8,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Entries,
            2 => Kind::HardState,
            3 => Kind::ConfState,
            4 => Kind::Base,
            5 => Kind::Pending,
            6 => Kind::Snapshot,
            7 => Kind::Cancel,
            8 => Kind::State,
            _ => return None,
        })
    }
}

/// What replay recovered.
#[derive(Debug, Default, Clone)]
pub struct Recovered {
    /// Index and term of the last entry compacted away (0, 0 for a full log).
    pub base: (u64, u64),
    /// Entries after `base`, contiguous.
    pub entries: Vec<Entry>,
    /// Last hard state written.
    pub hard_state: HardState,
    /// Last configuration written (`None` for a brand-new log).
    pub conf_state: Option<ConfState>,
    /// A snapshot install that began and neither finished nor was cancelled.
    pub pending: Option<SnapshotMetadata>,
}

/// An open WAL, positioned to append to its newest segment.
pub struct Wal {
    dir: PathBuf,
    file: File,
    file_path: PathBuf,
    file_bytes: u64,
    seq: u64,
    /// (seq, highest entry index) of every segment, oldest first, the current one last.
    segments: Vec<(u64, u64)>,
    buf: Vec<u8>,
    /// Whether bytes were written since the last fsync.
    dirty: bool,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.wal"))
}

fn put_record(buf: &mut Vec<u8>, kind: Kind, payload: &[u8]) {
    let len = u32::try_from(payload.len() + 1).unwrap_or(u32::MAX);
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind as u8]);
    h.update(payload);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&h.finalize().to_le_bytes());
    buf.push(kind as u8);
    buf.extend_from_slice(payload);
}

fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_u64(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// A cursor over a record payload.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn u64(&mut self) -> Result<u64, WalError> {
        if self.0.len() < 8 {
            return Err(WalError::Corrupt("record payload too short".into()));
        }
        let (a, b) = self.0.split_at(8);
        self.0 = b;
        let mut x = [0u8; 8];
        x.copy_from_slice(a);
        Ok(u64::from_le_bytes(x))
    }

    fn bytes(&mut self) -> Result<&'a [u8], WalError> {
        let n = usize::try_from(self.u64()?).unwrap_or(usize::MAX);
        if self.0.len() < n {
            return Err(WalError::Corrupt("record payload too short".into()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
}

fn encode<M: protobuf::Message>(m: &M) -> Vec<u8> {
    // Encoding into a Vec cannot fail for these plain messages.
    m.write_to_bytes().unwrap_or_default()
}

fn decode<M: protobuf::Message>(b: &[u8], what: &str) -> Result<M, WalError> {
    M::parse_from_bytes(b).map_err(|e| WalError::Corrupt(format!("{what}: {e}")))
}

fn state_payload(hs: &HardState, cs: &ConfState, base: (u64, u64)) -> Vec<u8> {
    let mut p = Vec::new();
    put_bytes(&mut p, &encode(hs));
    put_bytes(&mut p, &encode(cs));
    put_u64(&mut p, base.0);
    put_u64(&mut p, base.1);
    p
}

/// Replay state while reading records.
#[derive(Default)]
struct Replay {
    rec: Recovered,
}

impl Replay {
    fn entries_last(&self) -> Option<u64> {
        self.rec.entries.last().map(|e| e.index)
    }

    fn drop_through(&mut self, index: u64) {
        let keep_from = self.rec.entries.partition_point(|e| e.index <= index);
        self.rec.entries.drain(..keep_from);
    }

    fn set_base(&mut self, index: u64, term: u64) {
        if index >= self.rec.base.0 {
            self.rec.base = (index, term);
        }
        self.drop_through(index);
    }

    fn apply(&mut self, kind: Kind, payload: &[u8]) -> Result<Option<u64>, WalError> {
        let mut c = Cursor(payload);
        let mut highest = None;
        match kind {
            Kind::Entries => {
                let n = c.u64()?;
                for _ in 0..n {
                    let e: Entry = decode(c.bytes()?, "entry")?;
                    highest = Some(e.index);
                    if e.index <= self.rec.base.0 {
                        continue;
                    }
                    let first = self.rec.entries.first().map(|x| x.index);
                    match (first, self.entries_last()) {
                        (Some(f), Some(l)) if e.index >= f && e.index <= l + 1 => {
                            self.rec.entries.truncate((e.index - f) as usize);
                        }
                        // Before the first kept entry, or after a gap left by deleted
                        // segments: start over; the final check proves contiguity.
                        _ => self.rec.entries.clear(),
                    }
                    self.rec.entries.push(e);
                }
            }
            Kind::HardState => self.rec.hard_state = decode(payload, "hard state")?,
            Kind::ConfState => self.rec.conf_state = Some(decode(payload, "conf state")?),
            Kind::Base => {
                let (i, t) = (c.u64()?, c.u64()?);
                self.set_base(i, t);
            }
            Kind::Pending => self.rec.pending = Some(decode(payload, "pending snapshot")?),
            Kind::Snapshot => {
                let meta: SnapshotMetadata = decode(payload, "snapshot")?;
                self.rec.entries.clear();
                self.rec.base = (meta.index, meta.term);
                self.rec.conf_state = Some(meta.get_conf_state().clone());
                self.rec.pending = None;
            }
            Kind::Cancel => self.rec.pending = None,
            Kind::State => {
                self.rec.hard_state = decode(c.bytes()?, "hard state")?;
                self.rec.conf_state = Some(decode(c.bytes()?, "conf state")?);
                let (i, t) = (c.u64()?, c.u64()?);
                self.set_base(i, t);
            }
        }
        Ok(highest)
    }
}

impl Wal {
    /// Opens (or creates) the WAL in `dir`, replays it, and starts a new segment.
    /// A torn record at the end of the newest segment is cut off; any other bad
    /// record is [`WalError::Corrupt`].
    pub fn open(dir: &Path) -> Result<(Wal, Recovered), WalError> {
        crate::durable::create_dir_all(dir).map_err(io(dir))?;
        let mut seqs: Vec<u64> = Vec::new();
        for ent in std::fs::read_dir(dir).map_err(io(dir))? {
            let ent = ent.map_err(io(dir))?;
            let name = ent.file_name();
            let name = name.to_string_lossy();
            if let Some(hex) = name.strip_suffix(".wal") {
                if let Ok(seq) = u64::from_str_radix(hex, 16) {
                    seqs.push(seq);
                }
            }
        }
        seqs.sort_unstable();
        let mut replay = Replay::default();
        let mut segments = Vec::new();
        for (n, &seq) in seqs.iter().enumerate() {
            let last = n + 1 == seqs.len();
            let path = segment_path(dir, seq);
            let highest = replay_segment(&path, last, &mut replay)?;
            segments.push((seq, highest));
        }
        let rec = replay.rec;
        if let Some(first) = rec.entries.first() {
            if first.index != rec.base.0 + 1 {
                return Err(WalError::Corrupt(format!(
                    "log has a gap: base {} but first entry {}",
                    rec.base.0, first.index
                )));
            }
        }
        let seq = seqs.last().map_or(0, |s| s + 1);
        let (file, file_path) = create_segment(dir, seq)?;
        segments.push((seq, 0));
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            file,
            file_path,
            file_bytes: 0,
            seq,
            segments,
            buf: Vec::new(),
            dirty: false,
        };
        let cs = rec.conf_state.clone().unwrap_or_default();
        put_record(
            &mut wal.buf,
            Kind::State,
            &state_payload(&rec.hard_state, &cs, rec.base),
        );
        if let Some(p) = &rec.pending {
            put_record(&mut wal.buf, Kind::Pending, &encode(p));
        }
        wal.sync()?;
        Ok((wal, rec))
    }

    /// Queues entries (a conflicting suffix is replaced on replay).
    pub fn append(&mut self, entries: &[Entry]) {
        let mut p = Vec::with_capacity(entries.iter().map(|e| e.data.len() + 48).sum());
        put_u64(&mut p, entries.len() as u64);
        for e in entries {
            put_bytes(&mut p, &encode(e));
        }
        put_record(&mut self.buf, Kind::Entries, &p);
        if let (Some(cur), Some(last)) = (self.segments.last_mut(), entries.last()) {
            // A replaced suffix can lower the highest index; deletion stays correct
            // because it compares with the base, which never passes committed entries.
            cur.1 = last.index;
        }
    }

    /// Queues a hard state.
    pub fn hard_state(&mut self, hs: &HardState) {
        put_record(&mut self.buf, Kind::HardState, &encode(hs));
    }

    /// Queues a configuration.
    pub fn conf_state(&mut self, cs: &ConfState) {
        put_record(&mut self.buf, Kind::ConfState, &encode(cs));
    }

    /// Queues the start of a snapshot install.
    pub fn pending(&mut self, meta: &SnapshotMetadata) {
        put_record(&mut self.buf, Kind::Pending, &encode(meta));
    }

    /// Queues the end of a snapshot install: the log restarts after `meta`.
    pub fn snapshot(&mut self, meta: &SnapshotMetadata) {
        put_record(&mut self.buf, Kind::Snapshot, &encode(meta));
    }

    /// Queues the abandonment of a pending snapshot install.
    pub fn cancel(&mut self) {
        put_record(&mut self.buf, Kind::Cancel, &[]);
    }

    /// Makes the log forget entries up to `index` (term `term`), syncs, and deletes
    /// the segments that hold nothing after it. `hs` and `cs` are the current state,
    /// written as the header of a new segment when the current one is full.
    pub fn compact(
        &mut self,
        index: u64,
        term: u64,
        hs: &HardState,
        cs: &ConfState,
    ) -> Result<(), WalError> {
        let mut p = Vec::with_capacity(16);
        put_u64(&mut p, index);
        put_u64(&mut p, term);
        put_record(&mut self.buf, Kind::Base, &p);
        self.sync()?;
        if self.file_bytes >= SEGMENT_BYTES {
            self.rotate(hs, cs, (index, term))?;
        }
        let current = self.seq;
        let mut removed = false;
        let mut kept = Vec::with_capacity(self.segments.len());
        for &(seq, highest) in &self.segments {
            if seq != current && highest <= index && kept.is_empty() {
                let path = segment_path(&self.dir, seq);
                std::fs::remove_file(&path).map_err(io(&path))?;
                removed = true;
            } else {
                kept.push((seq, highest));
            }
        }
        self.segments = kept;
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn rotate(&mut self, hs: &HardState, cs: &ConfState, base: (u64, u64)) -> Result<(), WalError> {
        self.sync()?;
        let seq = self.seq + 1;
        let (file, path) = create_segment(&self.dir, seq)?;
        self.file = file;
        self.file_path = path;
        self.file_bytes = 0;
        self.seq = seq;
        self.segments.push((seq, 0));
        put_record(&mut self.buf, Kind::State, &state_payload(hs, cs, base));
        self.sync()
    }

    /// Writes queued records and fsyncs them (one `fdatasync` for everything queued:
    /// the group commit).
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.write()?;
        if self.dirty && !UNSAFE_NO_FSYNC.load(std::sync::atomic::Ordering::Relaxed) {
            self.file.sync_data().map_err(io(&self.file_path))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Writes queued records without waiting for the disk (for state whose loss is
    /// harmless, such as a commit index).
    pub fn write(&mut self) -> Result<(), WalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.buf)
            .map_err(io(&self.file_path))?;
        self.file_bytes += self.buf.len() as u64;
        self.buf.clear();
        self.dirty = true;
        Ok(())
    }

    /// Number of segment files.
    #[cfg(test)]
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

fn create_segment(dir: &Path, seq: u64) -> Result<(File, PathBuf), WalError> {
    let path = segment_path(dir, seq);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// `--unsafe-no-fsync`: write the WAL but never fsync it (set once at start).
static UNSAFE_NO_FSYNC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns fsync of the WAL off for the whole process (`--unsafe-no-fsync`): a crash of
/// the machine then loses acknowledged writes, as with etcd.
pub fn set_unsafe_no_fsync(on: bool) {
    UNSAFE_NO_FSYNC.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `--unsafe-no-fsync` is on.
pub fn unsafe_no_fsync() -> bool {
    UNSAFE_NO_FSYNC.load(std::sync::atomic::Ordering::Relaxed)
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    crate::durable::sync_dir(dir).map_err(io(dir))
}

/// Replays one segment; returns its highest entry index. A bad record in the last
/// segment cuts the file there (a torn write), elsewhere it is corruption.
fn replay_segment(path: &Path, last: bool, replay: &mut Replay) -> Result<u64, WalError> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(io(path))?;
    let mut off = 0usize;
    let mut highest = 0u64;
    let bad = loop {
        if off == data.len() {
            break None;
        }
        if data.len() - off < 9 {
            break Some("truncated record header");
        }
        let mut w = [0u8; 4];
        w.copy_from_slice(&data[off..off + 4]);
        let len = u32::from_le_bytes(w);
        w.copy_from_slice(&data[off + 4..off + 8]);
        let crc = u32::from_le_bytes(w);
        if len == 0 || len > MAX_RECORD_BYTES {
            break Some("bad record length");
        }
        let end = off + 8 + len as usize;
        if end > data.len() {
            break Some("truncated record");
        }
        let body = &data[off + 8..end];
        if crc32fast::hash(body) != crc {
            break Some("checksum mismatch");
        }
        let Some(kind) = Kind::from_u8(body[0]) else {
            break Some("unknown record kind");
        };
        if let Some(h) = replay.apply(kind, &body[1..])? {
            highest = highest.max(h);
        }
        off = end;
    };
    if let Some(why) = bad {
        if !last {
            return Err(WalError::Corrupt(format!(
                "{}: {why} at offset {off} (not the newest segment)",
                path.display()
            )));
        }
        tracing::warn!(path = %path.display(), offset = off, "cutting torn wal tail: {why}");
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        f.set_len(off as u64).map_err(io(path))?;
        f.sync_all().map_err(io(path))?;
    }
    Ok(highest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: format!("e{index}").into_bytes().into(),
            ..Default::default()
        }
    }

    fn indexes(r: &Recovered) -> Vec<u64> {
        r.entries.iter().map(|e| e.index).collect()
    }

    #[test]
    fn replays_entries_hard_state_and_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, r) = Wal::open(dir.path()).unwrap();
            assert!(r.entries.is_empty() && r.conf_state.is_none());
            w.conf_state(&ConfState {
                voters: vec![1, 2, 3],
                ..Default::default()
            });
            w.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>());
            // A new leader replaces 4..=5.
            w.append(&[entry(4, 2), entry(5, 2), entry(6, 2)]);
            w.hard_state(&HardState {
                term: 2,
                vote: 3,
                commit: 4,
                ..Default::default()
            });
            w.sync().unwrap();
        }
        let (_w, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(indexes(&r), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(r.entries[3].term, 2);
        assert_eq!(r.entries[2].term, 1);
        assert_eq!(r.hard_state.commit, 4);
        assert_eq!(r.hard_state.vote, 3);
        assert_eq!(r.conf_state.unwrap().voters, vec![1, 2, 3]);
    }

    #[test]
    fn unsynced_and_torn_tail_is_cut_but_synced_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            w.append(&[entry(1, 1), entry(2, 1)]);
            w.sync().unwrap();
            w.append(&[entry(3, 1)]);
            w.sync().unwrap();
        }
        // Tear the last record (entry 3) of the only segment.
        let path = segment_path(dir.path(), 0);
        let len = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let (_w, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(indexes(&r), vec![1, 2]);
    }

    #[test]
    fn corruption_before_the_newest_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            w.append(&[entry(1, 1), entry(2, 1)]);
            w.sync().unwrap();
        }
        // Reopen once more so segment 0 is no longer the newest.
        drop(Wal::open(dir.path()).unwrap());
        let path = segment_path(dir.path(), 0);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 2] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let err = Wal::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn compaction_deletes_old_segments_and_replay_stays_contiguous() {
        let dir = tempfile::tempdir().unwrap();
        let hs = HardState::default();
        let cs = ConfState {
            voters: vec![1],
            ..Default::default()
        };
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            w.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>());
            w.sync().unwrap();
        }
        {
            let (mut w, r) = Wal::open(dir.path()).unwrap();
            assert_eq!(indexes(&r), vec![1, 2, 3, 4, 5]);
            w.append(&(6..=9).map(|i| entry(i, 1)).collect::<Vec<_>>());
            w.compact(6, 1, &hs, &cs).unwrap();
            // Segment 0 (entries up to 5) is gone; segment 1 holds 6..=9.
            assert!(!segment_path(dir.path(), 0).exists());
            assert!(segment_path(dir.path(), 1).exists());
            assert_eq!(w.segment_count(), 1);
        }
        let (_w, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(r.base, (6, 1));
        assert_eq!(indexes(&r), vec![7, 8, 9]);
    }

    #[test]
    fn snapshot_resets_the_log_and_pending_survives_until_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let mut meta = SnapshotMetadata {
            index: 100,
            term: 3,
            ..Default::default()
        };
        meta.mut_conf_state().voters = vec![1, 2];
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            w.append(&[entry(1, 1), entry(2, 1)]);
            w.pending(&meta);
            w.sync().unwrap();
        }
        {
            let (mut w, r) = Wal::open(dir.path()).unwrap();
            assert_eq!(r.pending.as_ref().map(|m| m.index), Some(100));
            w.snapshot(&meta);
            w.append(&[entry(101, 3)]);
            w.sync().unwrap();
        }
        let (_w, r) = Wal::open(dir.path()).unwrap();
        assert!(r.pending.is_none());
        assert_eq!(r.base, (100, 3));
        assert_eq!(indexes(&r), vec![101]);
        assert_eq!(r.conf_state.unwrap().voters, vec![1, 2]);
    }
}
