//! The raft log, persisted in sled and mirrored in raft's `MemStorage` for reads.
//!
//! Layout of the `raft` tree: `hs` → HardState, `cs` → ConfState, `base` → the
//! (index, term) of the last entry compacted away, `e` + big-endian index → Entry,
//! `pending-snapshot` → metadata of a snapshot being installed.
//!
//! Installing a snapshot touches the state machine and the log, which sled cannot
//! update in one atomic step, so it goes in three durable steps: record the snapshot's
//! metadata as pending, restore the state machine, then move the log and clear the
//! pending record. [`LogStore::open`] finishes an install that a crash interrupted
//! after the state machine was restored, and forgets one interrupted before (the
//! leader sends the snapshot again).
//! Writes go to sled first and to memory second; nothing is flushed here: the raft
//! loop flushes the whole database once per `Ready` (group commit).
//!
//! Snapshots are not stored: [`LogStore`] builds one from the state machine when raft
//! asks for it (a follower fell behind the compacted log), at the state machine's
//! applied index.

use std::sync::{Arc, RwLock};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::storage::{MemStorage, RaftState, Storage};
use raft::GetEntriesContext;

use crate::state::StateMachine;

/// Errors of the log store: storage failures, fatal for the member.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// sled failed.
    #[error("raft log storage: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record does not decode.
    #[error("raft log corrupt: {0}")]
    Corrupt(String),
    /// raft rejected the operation.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
}

fn entry_key(index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'e';
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Raft's view of the log plus its durable copy.
pub struct LogStore {
    mem: MemStorage,
    tree: sled::Tree,
    state: Arc<RwLock<StateMachine>>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    /// Opens the log. A brand-new log is initialized with `voters` as its configuration.
    /// If the state machine applied further than the stored commit index (it is only
    /// fed committed entries), the commit index is raised to match.
    pub fn open(
        db: &sled::Db,
        state: Arc<RwLock<StateMachine>>,
        voters: &[u64],
    ) -> Result<LogStore, LogError> {
        let tree = db.open_tree("raft")?;
        let mem = MemStorage::new();
        let stored_cs = tree.get("cs")?;
        match stored_cs {
            None => {
                let cs = ConfState {
                    voters: voters.to_vec(),
                    ..Default::default()
                };
                tree.insert(
                    "cs",
                    cs.write_to_bytes()
                        .map_err(|e| LogError::Corrupt(e.to_string()))?,
                )?;
                mem.initialize_with_conf_state(cs);
            }
            Some(bytes) => {
                if let Some(pending) = tree.get("pending-snapshot")? {
                    let meta = SnapshotMetadata::parse_from_bytes(&pending)
                        .map_err(|e| LogError::Corrupt(format!("pending snapshot: {e}")))?;
                    let applied = state
                        .read()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .applied_index();
                    if applied >= meta.index {
                        // The state machine was restored before the crash: finish moving the log.
                        persist_snapshot_meta(&tree, &meta)?;
                    } else {
                        // Interrupted before the state machine changed: forget it, the leader resends.
                        tree.remove("pending-snapshot")?;
                    }
                    db.flush()?;
                }
                let bytes = tree.get("cs")?.unwrap_or(bytes);
                let cs = ConfState::parse_from_bytes(&bytes)
                    .map_err(|e| LogError::Corrupt(format!("conf state: {e}")))?;
                if let Some(base) = tree.get("base")? {
                    let (index, term) = decode_base(&base)?;
                    let mut snap = Snapshot::default();
                    snap.mut_metadata().index = index;
                    snap.mut_metadata().term = term;
                    snap.mut_metadata().set_conf_state(cs.clone());
                    mem.wl().apply_snapshot(snap)?;
                }
                mem.wl().set_conf_state(cs);
                let mut entries = Vec::new();
                for item in tree.scan_prefix(b"e") {
                    let (_, v) = item?;
                    entries.push(
                        Entry::parse_from_bytes(&v)
                            .map_err(|e| LogError::Corrupt(format!("entry: {e}")))?,
                    );
                }
                if !entries.is_empty() {
                    mem.wl().append(&entries)?;
                }
                if let Some(hs) = tree.get("hs")? {
                    let mut hs = HardState::parse_from_bytes(&hs)
                        .map_err(|e| LogError::Corrupt(format!("hard state: {e}")))?;
                    let applied = state
                        .read()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .applied_index();
                    let last = mem.last_index()?;
                    if applied > hs.commit {
                        hs.commit = applied.min(last);
                    }
                    mem.wl().set_hardstate(hs);
                }
            }
        }
        Ok(LogStore { mem, tree, state })
    }

    /// Persists and appends entries (a conflicting suffix is replaced).
    pub fn append(&self, entries: &[Entry]) -> Result<(), LogError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let last_old = self.mem.last_index()?;
        let mut batch = sled::Batch::default();
        for i in first.index..=last_old {
            batch.remove(&entry_key(i));
        }
        for e in entries {
            batch.insert(
                &entry_key(e.index),
                e.write_to_bytes()
                    .map_err(|e| LogError::Corrupt(e.to_string()))?,
            );
        }
        self.tree.apply_batch(batch)?;
        self.mem.wl().append(entries)?;
        Ok(())
    }

    /// Persists the hard state.
    pub fn set_hardstate(&self, hs: &HardState) -> Result<(), LogError> {
        self.tree.insert(
            "hs",
            hs.write_to_bytes()
                .map_err(|e| LogError::Corrupt(e.to_string()))?,
        )?;
        self.mem.wl().set_hardstate(hs.clone());
        Ok(())
    }

    /// Records a new commit index (from a light ready).
    pub fn set_commit(&self, commit: u64) -> Result<(), LogError> {
        let mut hs = self.mem.rl().hard_state().clone();
        hs.commit = commit;
        self.set_hardstate(&hs)
    }

    /// Persists a configuration change.
    pub fn set_conf_state(&self, cs: &ConfState) -> Result<(), LogError> {
        self.tree.insert(
            "cs",
            cs.write_to_bytes()
                .map_err(|e| LogError::Corrupt(e.to_string()))?,
        )?;
        self.mem.wl().set_conf_state(cs.clone());
        Ok(())
    }

    /// The current configuration.
    pub fn conf_state(&self) -> ConfState {
        self.mem
            .initial_state()
            .map(|s| s.conf_state)
            .unwrap_or_default()
    }

    /// Step 1 of installing a snapshot: records its metadata as pending (the caller flushes).
    pub fn begin_snapshot(&self, snap: &Snapshot) -> Result<(), LogError> {
        let meta = snap
            .get_metadata()
            .write_to_bytes()
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
        self.tree.insert("pending-snapshot", meta)?;
        Ok(())
    }

    /// Step 3 of installing a snapshot, after the state machine was restored and flushed:
    /// the log restarts after the snapshot and the pending record goes.
    pub fn apply_snapshot(&self, snap: &Snapshot) -> Result<(), LogError> {
        let meta = snap.get_metadata();
        persist_snapshot_meta(&self.tree, meta)?;
        let mut light = Snapshot::default();
        light.set_metadata(meta.clone());
        self.mem.wl().apply_snapshot(light)?;
        let hs = self.mem.rl().hard_state().clone();
        self.set_hardstate(&hs)
    }

    /// Drops entries before `index` (the state machine must be durable at or past it).
    pub fn compact(&self, index: u64) -> Result<(), LogError> {
        let first = self.mem.first_index()?;
        if index <= first {
            return Ok(());
        }
        let term = self.mem.term(index - 1)?;
        let mut batch = sled::Batch::default();
        for i in first..index {
            batch.remove(&entry_key(i));
        }
        batch.insert("base", encode_base(index - 1, term).to_vec());
        self.tree.apply_batch(batch)?;
        self.mem.wl().compact(index)?;
        Ok(())
    }
}

/// Empties the persisted log and records `meta` as its base, in one batch.
fn persist_snapshot_meta(tree: &sled::Tree, meta: &SnapshotMetadata) -> Result<(), LogError> {
    let mut batch = sled::Batch::default();
    for item in tree.scan_prefix(b"e") {
        let (k, _) = item?;
        batch.remove(k);
    }
    batch.insert("base", encode_base(meta.index, meta.term).to_vec());
    batch.insert(
        "cs",
        meta.get_conf_state()
            .write_to_bytes()
            .map_err(|e| LogError::Corrupt(e.to_string()))?,
    );
    batch.remove("pending-snapshot");
    tree.apply_batch(batch)?;
    Ok(())
}

fn encode_base(index: u64, term: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&index.to_be_bytes());
    b[8..].copy_from_slice(&term.to_be_bytes());
    b
}

fn decode_base(b: &[u8]) -> Result<(u64, u64), LogError> {
    if b.len() != 16 {
        return Err(LogError::Corrupt("base record has the wrong length".into()));
    }
    let mut i = [0u8; 8];
    let mut t = [0u8; 8];
    i.copy_from_slice(&b[..8]);
    t.copy_from_slice(&b[8..]);
    Ok((u64::from_be_bytes(i), u64::from_be_bytes(t)))
}

impl Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    /// Builds a snapshot of the state machine at its applied index.
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let state = self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let index = state.applied_index();
        if index < request_index {
            return Err(raft::Error::Store(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let term = self.mem.term(index)?;
        let data = state
            .snapshot()
            .map_err(|e| raft::Error::Store(raft::StorageError::Other(Box::new(e))))?;
        let mut snap = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta: &mut SnapshotMetadata = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state());
        Ok(snap)
    }
}
