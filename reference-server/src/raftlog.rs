//! The raft log: raft's `MemStorage` for reads, made durable by the [`crate::wal`].
//!
//! Every change goes to the WAL's queue first and to memory second; nothing is synced
//! here except by [`LogStore::sync`], which the raft loop calls once per `Ready`
//! (group commit), and by the snapshot and compaction steps below.
//!
//! Installing a snapshot touches the state machine (sled) and the log (the WAL), which
//! cannot change in one atomic step, so it goes in three durable steps: record the
//! snapshot's metadata as pending, restore the state machine, then restart the log
//! after the snapshot. [`LogStore::open`] finishes an install that a crash interrupted
//! after the state machine was restored, and cancels one interrupted before (the
//! leader sends the snapshot again).
//!
//! Snapshots are not stored: [`LogStore`] builds one from the state machine when raft
//! asks for it (a follower fell behind the compacted log), at the state machine's
//! applied index.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata,
};
use raft::storage::{MemStorage, RaftState, Storage};
use raft::GetEntriesContext;

use crate::state::StateMachine;
use crate::wal::{Wal, WalError};

/// Errors of the log store: storage failures, fatal for the member.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The WAL failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The log and the state machine disagree.
    #[error("raft log inconsistent: {0}")]
    Inconsistent(String),
    /// raft rejected the operation.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
}

/// Raft's view of the log plus its durable copy.
pub struct LogStore {
    mem: MemStorage,
    wal: Mutex<Wal>,
    state: Arc<RwLock<StateMachine>>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

/// The committed `AddNode` entries a new cluster starts with (indexes 1..=n, term 1).
fn bootstrap_entries(members: &[(u64, Vec<u8>)]) -> Vec<Entry> {
    use protobuf::Message as _;
    let mut sorted = members.to_vec();
    sorted.sort_by_key(|(id, _)| *id);
    sorted
        .into_iter()
        .zip(1u64..)
        .map(|((id, context), index)| {
            let mut cc = ConfChange::default();
            cc.set_change_type(ConfChangeType::AddNode);
            cc.node_id = id;
            cc.context = context.into();
            let mut e = Entry::default();
            e.set_entry_type(EntryType::EntryConfChange);
            e.term = 1;
            e.index = index;
            e.data = cc.write_to_bytes().unwrap_or_default().into();
            e
        })
        .collect()
}

impl LogStore {
    /// Opens the log in `dir`. A brand-new log is initialized with `voters` as its
    /// configuration and, as etcd bootstraps a new cluster, with one committed
    /// `AddNode` entry per `bootstrap` member (id, member record) at term 1, so that a
    /// member added later learns the initial members by replaying the log from its
    /// start (every initial member writes the same entries). A member joining an
    /// existing cluster starts with no voters and no entries. If the state machine applied further than the stored commit
    /// index (it is only fed committed entries), the commit index is raised to match.
    pub fn open(
        dir: &Path,
        state: Arc<RwLock<StateMachine>>,
        voters: &[u64],
        bootstrap: &[(u64, Vec<u8>)],
    ) -> Result<LogStore, LogError> {
        let (mut wal, mut rec) = Wal::open(dir)?;
        let applied = state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .applied_index();
        if let Some(meta) = rec.pending.take() {
            if applied >= meta.index {
                // The state machine was restored before the crash: finish moving the log.
                wal.snapshot(&meta);
                rec.entries.clear();
                rec.base = (meta.index, meta.term);
                rec.conf_state = Some(meta.get_conf_state().clone());
            } else {
                // Interrupted before the state machine changed: forget it, the leader resends.
                wal.cancel();
            }
        }
        let mem = MemStorage::new();
        let cs = match rec.conf_state {
            Some(cs) => cs,
            None => {
                let cs = ConfState {
                    voters: voters.to_vec(),
                    ..Default::default()
                };
                wal.conf_state(&cs);
                let entries = bootstrap_entries(bootstrap);
                if let Some(last) = entries.last() {
                    rec.hard_state = HardState {
                        term: 1,
                        vote: 0,
                        commit: last.index,
                        ..Default::default()
                    };
                    wal.append(&entries);
                    wal.hard_state(&rec.hard_state);
                    rec.entries = entries;
                }
                cs
            }
        };
        if rec.base.0 > 0 {
            let mut snap = Snapshot::default();
            snap.mut_metadata().index = rec.base.0;
            snap.mut_metadata().term = rec.base.1;
            snap.mut_metadata().set_conf_state(cs.clone());
            mem.wl().apply_snapshot(snap)?;
        } else {
            mem.initialize_with_conf_state(cs.clone());
        }
        mem.wl().set_conf_state(cs);
        if !rec.entries.is_empty() {
            mem.wl().append(&rec.entries)?;
        }
        let last = mem.last_index()?;
        if applied > last {
            return Err(LogError::Inconsistent(format!(
                "the state machine applied index {applied} but the log ends at {last}"
            )));
        }
        let mut hs = rec.hard_state;
        if applied > hs.commit {
            hs.commit = applied;
        }
        mem.wl().set_hardstate(hs);
        wal.sync()?;
        Ok(LogStore {
            mem,
            wal: Mutex::new(wal),
            state,
        })
    }

    fn wal(&self) -> MutexGuard<'_, Wal> {
        self.wal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues and appends entries (a conflicting suffix is replaced).
    pub fn append(&self, entries: &[Entry]) -> Result<(), LogError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.wal().append(entries);
        self.mem.wl().append(entries)?;
        Ok(())
    }

    /// Queues the hard state.
    pub fn set_hardstate(&self, hs: &HardState) -> Result<(), LogError> {
        self.wal().hard_state(hs);
        self.mem.wl().set_hardstate(hs.clone());
        Ok(())
    }

    /// Records a new commit index (from a light ready).
    pub fn set_commit(&self, commit: u64) -> Result<(), LogError> {
        let mut hs = self.mem.rl().hard_state().clone();
        hs.commit = commit;
        self.set_hardstate(&hs)
    }

    /// Queues a configuration change.
    pub fn set_conf_state(&self, cs: &ConfState) -> Result<(), LogError> {
        self.wal().conf_state(cs);
        self.mem.wl().set_conf_state(cs.clone());
        Ok(())
    }

    /// Writes and fsyncs everything queued: one fsync per `Ready`.
    pub fn sync(&self) -> Result<(), LogError> {
        Ok(self.wal().sync()?)
    }

    /// Writes everything queued without waiting for the disk.
    pub fn write(&self) -> Result<(), LogError> {
        Ok(self.wal().write()?)
    }

    /// The current configuration.
    pub fn conf_state(&self) -> ConfState {
        self.mem
            .initial_state()
            .map(|s| s.conf_state)
            .unwrap_or_default()
    }

    /// Step 1 of installing a snapshot: records its metadata as pending, durably.
    pub fn begin_snapshot(&self, snap: &Snapshot) -> Result<(), LogError> {
        let mut wal = self.wal();
        wal.pending(snap.get_metadata());
        wal.sync()?;
        Ok(())
    }

    /// Step 3 of installing a snapshot, after the state machine was restored and flushed:
    /// the log restarts after the snapshot, durably.
    pub fn apply_snapshot(&self, snap: &Snapshot) -> Result<(), LogError> {
        let meta: &SnapshotMetadata = snap.get_metadata();
        let mut light = Snapshot::default();
        light.set_metadata(meta.clone());
        self.mem.wl().apply_snapshot(light)?;
        let hs = self.mem.rl().hard_state().clone();
        let mut wal = self.wal();
        wal.snapshot(meta);
        wal.hard_state(&hs);
        wal.sync()?;
        Ok(())
    }

    /// Drops entries before `index` (the state machine must be durable at or past it)
    /// and deletes the WAL segments that hold nothing newer.
    pub fn compact(&self, index: u64) -> Result<(), LogError> {
        let first = self.mem.first_index()?;
        if index <= first {
            return Ok(());
        }
        let term = self.mem.term(index - 1)?;
        self.mem.wl().compact(index)?;
        let hs = self.mem.rl().hard_state().clone();
        let cs = self.conf_state();
        self.wal().compact(index - 1, term, &hs, &cs)?;
        Ok(())
    }
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
