//! The state machine proper: applies commands to the key index, the leases and sled.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use gauntlet_api::etcdserverpb::{
    alarm_request::AlarmAction, compare, range_request, request_op, response_op, AlarmResponse,
    AlarmType, CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest,
    DeleteRangeResponse, HashKvResponse, LeaseCheckpointRequest, LeaseCheckpointResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use gauntlet_api::mvccpb::{event::EventType, Event, KeyValue};
use gauntlet_api::rpctypes::{self, EtcdError};

use super::auth::{Access, AuthHeader, AuthRecords};
use super::cluster::{ClusterRecords, MemberChange};
use super::codec::{self, Meta, Record};
use super::index::{Rev, TreeIndex, Version};
use super::watch::{HubEvent, WatchHub};
use super::{
    ApplyOutcome, Command, Config, LeaseInfo, Op, Response, StateError, MAX_LEASE_TTL_SECS,
};
use crate::auth::SimpleTokens;
use request_op::Request;

/// Reported by reads when sled fails underneath them (not an etcd error: etcd would crash).
pub const STORAGE_READ_FAILED: EtcdError = EtcdError {
    code: tonic::Code::Internal,
    message: "etcdserver: storage read failed",
};

#[derive(Debug, Clone, Default)]
struct LeaseState {
    granted_ttl: i64,
    /// Last checkpoint; <= 0 means none.
    remaining_ttl: i64,
    keys: BTreeSet<Vec<u8>>,
}

/// A staged sled write: key and value, or key and `None` for a removal.
type StagedOp = (Vec<u8>, Option<Vec<u8>>);

/// A group with more new revision records than this writes them ahead of its final
/// batch, in chunks of this many; see [`StateMachine::commit`].
pub(super) const COMMIT_CHUNK_RECORDS: usize = 8192;

/// Commands applied since the last [`StateMachine::commit`]: their writes go to sled
/// together, and their watch events are published after them.
#[derive(Default)]
struct Group {
    ops: Vec<StagedOp>,
    pending: HashMap<Rev, KeyValue>,
    notifies: Vec<(i64, Vec<HubEvent>)>,
    /// Whether anything (even only the applied index) changed since the last commit.
    dirty: bool,
}

/// The deterministic, persistent state of one member. See the module doc for the contract.
pub struct StateMachine {
    db: sled::Db,
    /// The database's directory, when known: [`StateMachine::flush`] fsyncs its files
    /// (see [`crate::durable::sync_tree`] for why sled's own flush is not enough).
    db_dir: Option<std::path::PathBuf>,
    tree: sled::Tree,
    index: TreeIndex,
    leases: BTreeMap<i64, LeaseState>,
    meta: Meta,
    config: Config,
    hub: WatchHub,
    group: Group,
    /// The store revision sled's meta record holds (as of the last commit).
    committed_revision: i64,
    /// Members and alarms.
    cluster: ClusterRecords,
    /// Users, roles, permissions.
    auth: AuthRecords,
    /// The simple tokens handed out (not replicated: every member assigns them as it
    /// applies the Authenticate entries).
    tokens: Arc<SimpleTokens>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A summary: the index and leases can be huge.
        f.debug_struct("StateMachine")
            .field("meta", &self.meta)
            .field("keys", &self.index.len())
            .field("leases", &self.leases.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The effects of one command being applied, not yet committed to sled.
struct WriteCtx {
    /// Writes staged by the group so far (this command's come last).
    ops: Vec<StagedOp>,
    /// The raft index being applied (stamped into every record written).
    index: u64,
    /// The store revision before this command.
    begin_rev: i64,
    /// Writes so far (the next write gets sub-revision `sub`).
    sub: i64,
    /// Records written by the group so far, readable before the batch commits.
    pending: HashMap<Rev, KeyValue>,
    events: Vec<HubEvent>,
}

impl WriteCtx {
    /// Stages `rec` at `rev` in the batch and queues its watch event; returns its key-value.
    fn write_record(&mut self, rev: Rev, rec: Record, kind: EventType) -> KeyValue {
        self.put(codec::rev_key(rev), rec.encode());
        self.events.push(HubEvent {
            event: Event {
                r#type: kind as i32,
                kv: Some(rec.kv.clone()),
                prev_kv: None,
            },
            prev: rec.prev,
        });
        rec.kv
    }

    fn new(index: u64, begin_rev: i64, group: &mut Group) -> Self {
        WriteCtx {
            ops: std::mem::take(&mut group.ops),
            index,
            begin_rev,
            sub: 0,
            pending: std::mem::take(&mut group.pending),
            events: Vec::new(),
        }
    }

    /// Stages an insert.
    fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.ops
            .push((key.as_ref().to_vec(), Some(value.as_ref().to_vec())));
    }

    /// Stages a removal.
    fn del(&mut self, key: impl AsRef<[u8]>) {
        self.ops.push((key.as_ref().to_vec(), None));
    }

    /// The revision reads see: the new one once something was written.
    fn read_rev(&self) -> i64 {
        if self.sub > 0 {
            self.begin_rev + 1
        } else {
            self.begin_rev
        }
    }

    fn next_rev(&mut self) -> Rev {
        let r = Rev::new(self.begin_rev + 1, self.sub);
        self.sub += 1;
        r
    }
}

/// Failure inside apply: a deterministic etcd rejection or a fatal storage error.
enum Fail {
    Etcd(EtcdError),
    Storage(StateError),
}

impl From<StateError> for Fail {
    fn from(e: StateError) -> Self {
        Fail::Storage(e)
    }
}

impl From<sled::Error> for Fail {
    fn from(e: sled::Error) -> Self {
        Fail::Storage(e.into())
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

impl StateMachine {
    /// Opens (or creates) the state in `db` with etcd's default settings.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn open(db: sled::Db) -> Result<Self, StateError> {
        Self::open_with(db, Config::default())
    }

    /// Opens (or creates) the state in `db`. All members must use the same `config`.
    pub fn open_with(db: sled::Db, config: Config) -> Result<Self, StateError> {
        let tree = db.open_tree("gauntlet-state")?;
        let (meta, index, leases) = load(&tree)?;
        let hub = WatchHub::new(tree.clone(), meta.revision, meta.compact_revision);
        let cluster = ClusterRecords::load(&tree)?;
        let auth = AuthRecords::load(&tree)?;
        Ok(StateMachine {
            cluster,
            auth,
            tokens: Arc::new(SimpleTokens::new(crate::auth::DEFAULT_SIMPLE_TOKEN_TTL)),
            db,
            db_dir: None,
            tree,
            index,
            leases,
            committed_revision: meta.revision,
            meta,
            config,
            hub,
            group: Group::default(),
        })
    }

    /// The raft index of the last applied entry (0 when none).
    pub fn applied_index(&self) -> u64 {
        self.meta.applied_index
    }

    /// The store revision: 1 when empty, +1 for every command that changed a key.
    pub fn revision(&self) -> i64 {
        self.meta.revision
    }

    /// The revision of the last compaction, or -1 if there was none (as etcd reports it).
    pub fn compact_revision(&self) -> i64 {
        self.meta.compact_revision
    }

    /// The member table and the alarms.
    pub fn cluster(&self) -> &ClusterRecords {
        &self.cluster
    }

    /// Users, roles and permissions.
    pub fn auth(&self) -> &AuthRecords {
        &self.auth
    }

    /// The simple tokens this member knows (shared: the services look tokens up in it
    /// without the state lock).
    pub fn tokens(&self) -> Arc<SimpleTokens> {
        self.tokens.clone()
    }

    /// Applies what raft decided about the configuration change at `index` to the member
    /// table, into the current group (see [`StateMachine::apply_grouped`]).
    pub fn apply_member_change_grouped(&mut self, index: u64, change: MemberChange) {
        if index <= self.meta.applied_index {
            return;
        }
        self.cluster.apply_change(change, &mut self.group.ops);
        self.meta.applied_index = index;
        self.group.dirty = true;
    }

    /// What an active alarm refuses, as etcd's capped appliers: under NOSPACE a put, a
    /// txn with a put in either branch (etcd counts the top level only) and a lease
    /// grant; under CORRUPT every key and lease command.
    fn capped(&self, op: &Op) -> Option<EtcdError> {
        let kv_or_lease = matches!(
            op,
            Op::Put(_)
                | Op::DeleteRange(_)
                | Op::Txn(_)
                | Op::Compaction(_)
                | Op::LeaseGrant(_)
                | Op::LeaseRevoke(_)
        );
        if kv_or_lease && self.cluster.raised(AlarmType::Corrupt) {
            return Some(rpctypes::CORRUPT);
        }
        (self.cluster.raised(AlarmType::Nospace) && super::needs_space(op))
            .then_some(rpctypes::NO_SPACE)
    }

    /// A cheap handle on the watch hub.
    pub fn watch_hub(&self) -> WatchHub {
        self.hub.clone()
    }

    /// Number of keys in the index (live or with history).
    pub fn keys_total(&self) -> usize {
        self.index.len()
    }

    /// The sled tree itself, for tests that fake what a crash leaves behind.
    #[cfg(test)]
    pub(super) fn tree_for_tests(&self) -> &sled::Tree {
        &self.tree
    }

    /// Revision records stored in sled (history not yet compacted away).
    pub fn revisions_stored(&self) -> usize {
        self.tree.scan_prefix([codec::REV_PREFIX]).count()
    }

    /// Makes everything applied so far durable: sled's flush, then (when the database's
    /// directory is known, [`StateMachine::set_db_dir`]) an fsync of its files and
    /// directories.
    pub fn flush(&self) -> Result<(), StateError> {
        self.db.flush()?;
        if let Some(dir) = &self.db_dir {
            crate::durable::sync_tree(dir)
                .map_err(|e| StateError::Io(format!("fsyncing {}: {e}", dir.display())))?;
        }
        Ok(())
    }

    /// Where the database lives, so [`StateMachine::flush`] can fsync it.
    pub fn set_db_dir(&mut self, dir: std::path::PathBuf) {
        self.db_dir = Some(dir);
    }

    /// Copies the whole state into `db` (a fresh database) and continues on it; answers
    /// the database left behind, which the caller drops and deletes. The copy holds only
    /// live records, which is what defragmenting means here.
    pub fn switch_db(&mut self, db: sled::Db) -> Result<sled::Db, StateError> {
        self.commit()?;
        let tree = db.open_tree("gauntlet-state")?;
        let mut batch = sled::Batch::default();
        let mut n = 0usize;
        for item in self.tree.iter() {
            let (k, v) = item?;
            batch.insert(k, v);
            n += 1;
            if n.is_multiple_of(COMMIT_CHUNK_RECORDS) {
                tree.apply_batch(std::mem::take(&mut batch))?;
            }
        }
        tree.apply_batch(batch)?;
        db.flush()?;
        self.hub.replace_tree(tree.clone());
        self.tree = tree;
        Ok(std::mem::replace(&mut self.db, db))
    }

    /// Bytes sled uses on disk.
    pub fn db_size_bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// Advances the applied index for an entry that carries no command, durably in
    /// sled's view (committed at once).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn apply_noop(&mut self, index: u64) -> Result<(), StateError> {
        self.apply_noop_grouped(index);
        self.commit()
    }

    /// Like [`StateMachine::apply_noop`], but staged in the current group until
    /// [`StateMachine::commit`].
    pub fn apply_noop_grouped(&mut self, index: u64) {
        if index > self.meta.applied_index {
            self.meta.applied_index = index;
            self.group.dirty = true;
        }
    }

    /// Applies the committed command at raft `index` and commits it; see the module doc.
    ///
    /// A command without an op is applied as a no-op and answers `Ok(None)`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn apply(&mut self, index: u64, cmd: &Command) -> Result<Option<ApplyOutcome>, StateError> {
        let outcome = self.apply_grouped(index, cmd)?;
        self.commit()?;
        Ok(outcome)
    }

    /// Writes the commands applied since the last commit to sled, the meta record (applied
    /// index, revision) last, then publishes their watch events in order. What opens after
    /// a crash is exactly the state the stored meta record describes.
    ///
    /// Until it is called, applied commands are visible to this machine (its reads,
    /// later commands) but not to sled readers such as catching-up watchers, and the
    /// hub has not heard of them; callers commit before releasing the machine. One
    /// commit for many commands is the state machine's group commit.
    ///
    /// A group of only new revision records (puts, deletes, txns) is written as single
    /// inserts followed by the meta record; see the comment there. Any other group is one
    /// atomic sled batch. A group with more than [`COMMIT_CHUNK_RECORDS`] new revision records (a
    /// DeleteRange over many keys, say) writes them ahead in chunks, the last chunk
    /// going with everything else and the meta record in the final atomic batch. One
    /// sled batch holds sled's epoch for its whole length, so the node copies it makes
    /// could not be freed before its end: 200,000 tombstones in one batch grew a
    /// member by about 1 GiB. Early chunks are safe because they only add records above
    /// the committed revision, which no reader looks at; after a crash between them,
    /// opening discards such records and raft replays the entry.
    pub fn commit(&mut self) -> Result<(), StateError> {
        if !self.group.dirty {
            return Ok(());
        }
        let group = std::mem::take(&mut self.group);
        let committed = self.committed_revision;
        let mut fresh: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut batch = sled::Batch::default();
        let mut others = 0usize;
        for (k, v) in group.ops {
            match v {
                Some(v) if codec::decode_rev_key(&k).is_ok_and(|r| r.main > committed) => {
                    fresh.push((k, v));
                }
                Some(v) => {
                    batch.insert(k, v);
                    others += 1;
                }
                None => {
                    batch.remove(k);
                    others += 1;
                }
            }
        }
        if others == 0 {
            // Only new records: written one by one, then the meta record. sled recovers a
            // prefix of its writes, so after a crash the meta record is there only if
            // every record before it is; records without their meta lie above the
            // committed revision and are discarded on open. A sled batch would cost
            // two extra log-buffer writes (and syncs) each time, which was a fifth of
            // the server's CPU under a put load.
            for (k, v) in fresh {
                self.tree.insert(k, v)?;
            }
            self.tree.insert(codec::META_KEY, &self.meta.encode()[..])?;
            return self.committed(group.notifies);
        }
        let mut fresh = fresh.into_iter();
        let mut left = fresh.len();
        while left > COMMIT_CHUNK_RECORDS {
            let mut chunk = sled::Batch::default();
            for (k, v) in fresh.by_ref().take(COMMIT_CHUNK_RECORDS) {
                chunk.insert(k, v);
            }
            self.tree.apply_batch(chunk)?;
            left -= COMMIT_CHUNK_RECORDS;
        }
        for (k, v) in fresh {
            batch.insert(k, v);
        }
        batch.insert(codec::META_KEY, &self.meta.encode());
        self.tree.apply_batch(batch)?;
        self.committed(group.notifies)
    }

    /// After a group reached sled: publishes its watch events in order.
    fn committed(&mut self, notifies: Vec<(i64, Vec<HubEvent>)>) -> Result<(), StateError> {
        self.committed_revision = self.meta.revision;
        for (revision, events) in notifies {
            self.hub.notify(revision, events);
        }
        Ok(())
    }

    /// Applies the committed command at raft `index` into the current group, which
    /// [`StateMachine::commit`] writes; a compaction commits the group before and
    /// itself after (the hub must see it between the two).
    pub fn apply_grouped(
        &mut self,
        index: u64,
        cmd: &Command,
    ) -> Result<Option<ApplyOutcome>, StateError> {
        if index <= self.meta.applied_index {
            return Ok(None);
        }
        let Some(op) = &cmd.op else {
            self.apply_noop_grouped(index);
            return Ok(None);
        };
        if matches!(op, Op::Compaction(_)) {
            self.commit()?;
        }
        let mut ctx = WriteCtx::new(index, self.meta.revision, &mut self.group);
        let mark = ctx.ops.len();
        let mut compacted_to = None;
        let result = match self.capped(op) {
            Some(e) => Err(Fail::Etcd(e)),
            None => match self.authorize(cmd.auth.as_ref(), op) {
                Err(e) => Err(Fail::Etcd(e)),
                Ok(()) => self.exec_op(&mut ctx, cmd.auth.as_ref(), op, &mut compacted_to),
            },
        };
        let outcome = match result {
            Ok(r) => Ok(r),
            // Every rejection is decided before the first write; one after it would leave
            // memory ahead of disk, so it is treated as fatal rather than half-applied.
            Err(Fail::Etcd(_)) if ctx.sub > 0 => {
                return Err(StateError::Corrupt(
                    "command rejected after it wrote".into(),
                ))
            }
            Err(Fail::Etcd(e)) => {
                ctx.ops.truncate(mark);
                Err(e)
            }
            Err(Fail::Storage(e)) => return Err(e),
        };
        let mut meta = self.meta;
        meta.applied_index = index;
        if ctx.sub > 0 {
            meta.revision = ctx.begin_rev + 1;
        }
        if let Some(at) = compacted_to {
            meta.compact_revision = at;
            self.hub.compaction_starting(at);
        }
        self.meta = meta;
        self.group.ops = ctx.ops;
        self.group.pending = ctx.pending;
        self.group.dirty = true;
        if !ctx.events.is_empty() {
            self.group.notifies.push((meta.revision, ctx.events));
        }
        if compacted_to.is_some() {
            // etcd's points around writing a compaction's deletions.
            crate::failpoints::hit("compactBeforeCommitBatch");
            let committed = self.commit();
            self.hub.compaction_done();
            committed?;
            crate::failpoints::hit("compactAfterCommitBatch");
        }
        Ok(Some(outcome))
    }

    /// Executes one command whose alarms allow it.
    fn exec_op(
        &mut self,
        ctx: &mut WriteCtx,
        who: Option<&AuthHeader>,
        op: &Op,
        compacted_to: &mut Option<i64>,
    ) -> Result<Response, Fail> {
        match op {
            Op::Put(p) => self.exec_put_checked(ctx, p).map(Response::Put),
            Op::DeleteRange(d) => self.exec_delete(ctx, d).map(Response::DeleteRange),
            Op::Txn(t) => self.exec_txn_top(ctx, t).map(Response::Txn),
            Op::Compaction(c) => self.exec_compaction(ctx, c).map(|(resp, at)| {
                *compacted_to = Some(at);
                Response::Compaction(resp)
            }),
            Op::LeaseGrant(g) => self.exec_lease_grant(ctx, g).map(Response::LeaseGrant),
            Op::LeaseRevoke(r) => self.exec_lease_revoke(ctx, r.id).map(Response::LeaseRevoke),
            Op::LeaseCheckpoint(c) => self
                .exec_lease_checkpoint(ctx, c)
                .map(Response::LeaseCheckpoint),
            Op::Alarm(a) => {
                let action = AlarmAction::try_from(a.action).unwrap_or(AlarmAction::Get);
                let alarms = self
                    .cluster
                    .alarm(action, a.member_id, a.alarm, &mut ctx.ops);
                Ok(Response::Alarm(AlarmResponse {
                    header: None,
                    alarms,
                }))
            }
            Op::Auth(a) => {
                let Some(op) = &a.op else {
                    return Err(Fail::Etcd(rpctypes::NOT_CAPABLE));
                };
                let mut effects = Vec::new();
                let r = self
                    .auth
                    .apply(who, op, ctx.index, &mut ctx.ops, &mut effects)
                    .map_err(Fail::Etcd)?;
                for e in effects {
                    self.tokens.apply(e);
                }
                Ok(Response::Auth(r))
            }
            Op::MemberAttrs(m) => {
                if self.cluster.publish(m, &mut ctx.ops) {
                    Ok(Response::Cluster)
                } else {
                    Err(Fail::Etcd(rpctypes::MEMBER_NOT_FOUND))
                }
            }
            Op::VersionSet(v) => self
                .cluster
                .set_version(v, &mut ctx.ops)
                .map(|()| Response::Cluster)
                .map_err(Fail::Etcd),
            Op::MemberUpdate(u) => {
                let taken =
                    self.cluster.members.values().any(|m| {
                        m.id != u.id && m.peer_urls.iter().any(|p| u.peer_ur_ls.contains(p))
                    });
                if !self.cluster.members.contains_key(&u.id) {
                    Err(Fail::Etcd(rpctypes::MEMBER_NOT_FOUND))
                } else if taken {
                    Err(Fail::Etcd(rpctypes::PEER_URL_EXIST))
                } else {
                    self.cluster
                        .update_peer_urls(u.id, &u.peer_ur_ls, &mut ctx.ops);
                    Ok(Response::Cluster)
                }
            }
        }
    }

    /// The permission checks of a client's command (`who`; the server's own commands
    /// carry none and pass), on the state this command sees; see [`super::auth`].
    /// Auth operations are judged by [`AuthRecords::apply`].
    fn authorize(&self, who: Option<&AuthHeader>, op: &Op) -> Result<(), EtcdError> {
        let Some(who) = who else {
            return Ok(());
        };
        if !self.auth.enabled() {
            return Ok(());
        }
        match op {
            Op::Put(p) => self.authorize_put(who, p),
            Op::DeleteRange(d) => self.authorize_delete(who, d),
            Op::Txn(t) => self.authorize_txn(who, t),
            Op::LeaseRevoke(r) => self.authorize_lease_keys(who, r.id),
            // Anyone with credentials may grant a lease (etcd >= 3.5.28).
            Op::LeaseGrant(_) if who.username.is_empty() => Err(rpctypes::USER_EMPTY),
            // Compaction and alarms are admin operations (etcd >= 3.5.28, CVE-2026-33413).
            Op::Compaction(_) | Op::Alarm(_) => self.auth.check_admin(Some(who)),
            _ => Ok(()),
        }
    }

    fn authorize_put(&self, who: &AuthHeader, p: &PutRequest) -> Result<(), EtcdError> {
        self.auth.check(who, &p.key, &[], Access::Write)?;
        if p.lease != 0 {
            // A lease already holding keys the user may not write could not be revoked
            // by the user; attaching to it is refused (etcd's checkLeasePuts).
            self.authorize_lease_keys(who, p.lease)?;
        }
        if p.prev_kv {
            self.auth.check(who, &p.key, &[], Access::Read)?;
        }
        Ok(())
    }

    fn authorize_delete(&self, who: &AuthHeader, d: &DeleteRangeRequest) -> Result<(), EtcdError> {
        self.auth.check(who, &d.key, &d.range_end, Access::Write)?;
        if d.prev_kv {
            self.auth.check(who, &d.key, &d.range_end, Access::Read)?;
        }
        Ok(())
    }

    fn authorize_lease_keys(&self, who: &AuthHeader, id: i64) -> Result<(), EtcdError> {
        if let Some(l) = self.leases.get(&id) {
            for k in &l.keys {
                self.auth.check(who, k, &[], Access::Write)?;
            }
        }
        Ok(())
    }

    /// Every compare needs READ, every operation of both branches its own permission,
    /// nested txns included (etcd >= 3.5.28, CVE-2026-33343; and a put's prev_kv and
    /// lease inside a txn, etcd >= 3.5.30).
    fn authorize_txn(&self, who: &AuthHeader, t: &TxnRequest) -> Result<(), EtcdError> {
        for c in &t.compare {
            self.auth.check(who, &c.key, &c.range_end, Access::Read)?;
        }
        for op in t.success.iter().chain(&t.failure) {
            match &op.request {
                Some(Request::RequestRange(r)) => {
                    self.auth.check(who, &r.key, &r.range_end, Access::Read)?
                }
                Some(Request::RequestPut(p)) => self.authorize_put(who, p)?,
                Some(Request::RequestDeleteRange(d)) => self.authorize_delete(who, d)?,
                Some(Request::RequestTxn(n)) => self.authorize_txn(who, n)?,
                None => {}
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ reads

    /// Serves a range at any retained revision (header None). Errors: `FUTURE_REV` for a
    /// revision above the current one, `COMPACTED` for one below the compact revision
    /// (reading exactly at the compact revision is allowed, as in etcd).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, EtcdError> {
        match self.do_range(req, self.meta.revision, None) {
            Ok(r) => Ok(r),
            Err(Fail::Etcd(e)) => Err(e),
            Err(Fail::Storage(_)) => Err(STORAGE_READ_FAILED),
        }
    }

    fn read_kv(
        &self,
        rev: Rev,
        pending: Option<&HashMap<Rev, KeyValue>>,
    ) -> Result<KeyValue, Fail> {
        if let Some(kv) = pending.and_then(|p| p.get(&rev)) {
            return Ok(kv.clone());
        }
        match self.tree.get(codec::rev_key(rev))? {
            Some(b) => Ok(Record::decode(&b)?.kv),
            None => Err(Fail::Storage(StateError::Corrupt(format!(
                "index names revision {}.{} but it is not stored",
                rev.main, rev.sub
            )))),
        }
    }

    /// etcd's range: `cur_rev` is the revision the reader sees (inside a txn: after its
    /// writes so far), `pending` the records not yet committed.
    fn do_range(
        &self,
        req: &RangeRequest,
        cur_rev: i64,
        pending: Option<&HashMap<Rev, KeyValue>>,
    ) -> Result<RangeResponse, Fail> {
        if req.revision > cur_rev {
            return Err(Fail::Etcd(rpctypes::FUTURE_REV));
        }
        let at = if req.revision <= 0 {
            cur_rev
        } else {
            req.revision
        };
        if at < self.meta.compact_revision {
            return Err(Fail::Etcd(rpctypes::COMPACTED));
        }
        let mut items: Vec<(&Vec<u8>, Version)> = self
            .index
            .range(&req.key, &req.range_end)
            .filter_map(|(k, ki)| ki.get(at).map(|v| (k, v)))
            .collect();
        let count = items.len() as i64;
        if req.count_only {
            return Ok(RangeResponse {
                header: None,
                kvs: vec![],
                more: false,
                count,
            });
        }
        if req.max_mod_revision != 0 {
            items.retain(|(_, v)| v.modified.main <= req.max_mod_revision);
        }
        if req.min_mod_revision != 0 {
            items.retain(|(_, v)| v.modified.main >= req.min_mod_revision);
        }
        if req.max_create_revision != 0 {
            items.retain(|(_, v)| v.created.main <= req.max_create_revision);
        }
        if req.min_create_revision != 0 {
            items.retain(|(_, v)| v.created.main >= req.min_create_revision);
        }
        use range_request::{SortOrder, SortTarget};
        let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
        let mut order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
        // etcd: results come key-ascending; a non-key target with no order sorts ascending.
        if target != SortTarget::Key && order == SortOrder::None {
            order = SortOrder::Ascend;
        } else if target == SortTarget::Key && order == SortOrder::Ascend {
            order = SortOrder::None;
        }
        let limit = usize::try_from(req.limit).unwrap_or(0);
        let mut kvs: Vec<KeyValue>;
        let mut more = false;
        if order != SortOrder::None && target == SortTarget::Value {
            kvs = items
                .iter()
                .map(|(_, v)| self.read_kv(v.modified, pending))
                .collect::<Result<_, _>>()?;
            kvs.sort_by(|a, b| a.value.cmp(&b.value));
            if order == SortOrder::Descend {
                kvs.reverse();
            }
            if limit > 0 && kvs.len() > limit {
                kvs.truncate(limit);
                more = true;
            }
        } else {
            if order != SortOrder::None {
                let key_of = |(k, v): &(&Vec<u8>, Version)| -> (i64, Vec<u8>) {
                    let n = match target {
                        SortTarget::Version => v.version,
                        SortTarget::Create => v.created.main,
                        SortTarget::Mod => v.modified.main,
                        SortTarget::Key | SortTarget::Value => 0,
                    };
                    (n, (*k).clone())
                };
                items.sort_by_cached_key(key_of);
                if order == SortOrder::Descend {
                    items.reverse();
                }
            }
            if limit > 0 && items.len() > limit {
                items.truncate(limit);
                more = true;
            }
            kvs = items
                .iter()
                .map(|(_, v)| self.read_kv(v.modified, pending))
                .collect::<Result<_, _>>()?;
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        Ok(RangeResponse {
            header: None,
            kvs,
            more,
            count,
        })
    }

    /// A hash of every stored revision `<= revision` (0: current), equal on every member
    /// that applied the same commands. Errors as `range` (`COMPACTED` below the compact
    /// revision, `FUTURE_REV` above the current one).
    pub fn hash_kv(&self, revision: i64) -> Result<HashKvResponse, EtcdError> {
        let compact = self.meta.compact_revision;
        if revision > 0 && revision < compact {
            return Err(rpctypes::COMPACTED);
        }
        if revision > self.meta.revision {
            return Err(rpctypes::FUTURE_REV);
        }
        let upto = if revision <= 0 {
            self.meta.revision
        } else {
            revision
        };
        let mut crc = codec::crc32c_update(0, b"key");
        let lo = codec::rev_key(Rev::new(0, 0));
        let hi = codec::rev_key(Rev::new(upto + 1, 0));
        for item in self.tree.range(lo..hi) {
            let (k, v) = item.map_err(|_| STORAGE_READ_FAILED)?;
            crc = codec::crc32c_update(crc, &k);
            crc = codec::crc32c_update(crc, &v);
        }
        Ok(HashKvResponse {
            header: None,
            hash: crc,
            compact_revision: compact,
        })
    }

    /// The lease `id`, if granted and not revoked.
    pub fn lease(&self, id: i64) -> Option<LeaseInfo> {
        self.leases.get(&id).map(|l| lease_info(id, l))
    }

    /// All leases, by id.
    pub fn leases(&self) -> Vec<LeaseInfo> {
        self.leases
            .iter()
            .map(|(id, l)| lease_info(*id, l))
            .collect()
    }

    // ------------------------------------------------------------------ snapshots

    /// The full state at `applied_index`, for a raft snapshot.
    pub fn snapshot(&self) -> Result<Vec<u8>, StateError> {
        // The meta record is written from memory: a machine that never applied anything has
        // none in the tree yet.
        let meta = self.meta.encode();
        let mut entries: Vec<(sled::IVec, sled::IVec)> =
            vec![(codec::META_KEY.into(), meta.as_slice().into())];
        for item in self.tree.iter() {
            let (k, v) = item?;
            if k.as_ref() != codec::META_KEY {
                entries.push((k, v));
            }
        }
        Ok(codec::encode_snapshot(
            entries.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
        ))
    }

    /// Replaces the whole state with `data` (from [`StateMachine::snapshot`]) taken at raft
    /// `index` (the snapshot's applied index), in one atomic batch. Does not flush. Watchers that are behind replay the new history; those
    /// whose next revision was compacted away get `Compacted`.
    pub fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), StateError> {
        self.commit()?;
        let entries = codec::decode_snapshot(data)?;
        let mut batch = sled::Batch::default();
        let incoming: BTreeSet<&[u8]> = entries.iter().map(|(k, _)| *k).collect();
        for k in self.tree.iter().keys() {
            let k = k?;
            if !incoming.contains(k.as_ref()) {
                batch.remove(k);
            }
        }
        let mut meta = None;
        for (k, v) in &entries {
            if *k == codec::META_KEY {
                meta = Some(Meta::decode(v)?);
            }
            batch.insert(*k, *v);
        }
        let mut meta = meta.ok_or_else(|| StateError::BadSnapshot("no meta record".into()))?;
        meta.applied_index = index;
        batch.insert(codec::META_KEY, &meta.encode());
        self.hub.compaction_starting(meta.compact_revision);
        let applied = self.tree.apply_batch(batch);
        self.hub.compaction_done();
        applied?;
        let (meta, index, leases) = load(&self.tree)?;
        self.committed_revision = meta.revision;
        self.meta = meta;
        self.index = index;
        self.leases = leases;
        self.cluster = ClusterRecords::load(&self.tree)?;
        self.auth = AuthRecords::load(&self.tree)?;
        self.hub.restored(meta.revision, meta.compact_revision);
        Ok(())
    }

    /// Restores `data` (from [`StateMachine::snapshot`]) as the start of a new cluster:
    /// keys, leases and revision as in the snapshot, applied index 0, and no members or
    /// alarms (the new cluster's members come from its bootstrap entries).
    pub fn restore_for_new_cluster(&mut self, data: &[u8]) -> Result<(), StateError> {
        self.restore(0, data)?;
        let mut batch = sled::Batch::default();
        for prefix in [
            super::cluster::MEMBER_PREFIX,
            super::cluster::ALARM_PREFIX,
            super::cluster::REMOVED_PREFIX,
            super::cluster::VERSION_PREFIX,
        ] {
            for k in self.tree.scan_prefix([prefix]).keys() {
                batch.remove(k?);
            }
        }
        self.tree.apply_batch(batch)?;
        self.cluster = ClusterRecords::default();
        Ok(())
    }

    // ------------------------------------------------------------------ writes

    fn exec_put_checked(
        &mut self,
        ctx: &mut WriteCtx,
        p: &PutRequest,
    ) -> Result<PutResponse, Fail> {
        // etcd checks the lease first, then ignore_value/ignore_lease.
        self.check_put(p)?;
        self.exec_put(ctx, p)
    }

    fn check_put(&self, p: &PutRequest) -> Result<(), Fail> {
        if p.lease != 0 && !self.leases.contains_key(&p.lease) {
            return Err(Fail::Etcd(rpctypes::LEASE_NOT_FOUND));
        }
        if (p.ignore_value || p.ignore_lease)
            && self.index.get(&p.key).and_then(|ki| ki.current()).is_none()
        {
            return Err(Fail::Etcd(rpctypes::KEY_NOT_FOUND));
        }
        Ok(())
    }

    /// A put whose checks passed.
    fn exec_put(&mut self, ctx: &mut WriteCtx, p: &PutRequest) -> Result<PutResponse, Fail> {
        let (cur, old_lease) = match self.index.get(&p.key) {
            Some(ki) => (ki.current(), ki.lease),
            None => (None, 0),
        };
        let prev_kv = match cur {
            Some(c) if p.prev_kv || p.ignore_value => {
                Some(self.read_kv(c.modified, Some(&ctx.pending))?)
            }
            _ => None,
        };
        let value = if p.ignore_value {
            prev_kv
                .as_ref()
                .map(|kv| kv.value.clone())
                .unwrap_or_default()
        } else {
            p.value.clone()
        };
        let lease = if p.ignore_lease { old_lease } else { p.lease };
        let rev = ctx.next_rev();
        let ki = self.index.entry(&p.key);
        let v = ki.put(rev, None);
        ki.lease = lease;
        if old_lease != 0 && old_lease != lease {
            if let Some(l) = self.leases.get_mut(&old_lease) {
                l.keys.remove(&p.key);
            }
        }
        if lease != 0 {
            if let Some(l) = self.leases.get_mut(&lease) {
                l.keys.insert(p.key.clone());
            }
        }
        let kv = KeyValue {
            key: p.key.clone(),
            create_revision: v.created.main,
            mod_revision: rev.main,
            version: v.version,
            value,
            lease,
        };
        let rec = Record {
            tombstone: false,
            applied_index: ctx.index,
            prev: cur.map(|c| c.modified),
            kv,
        };
        let kv = ctx.write_record(rev, rec, EventType::Put);
        ctx.pending.insert(rev, kv);
        Ok(PutResponse {
            header: None,
            prev_kv: if p.prev_kv { prev_kv } else { None },
        })
    }

    fn exec_delete(
        &mut self,
        ctx: &mut WriteCtx,
        d: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Fail> {
        let live: Vec<(Vec<u8>, Rev)> = self
            .index
            .range(&d.key, &d.range_end)
            .filter_map(|(k, ki)| ki.current().map(|v| (k.clone(), v.modified)))
            .collect();
        let mut prev_kvs = Vec::new();
        if d.prev_kv {
            for (_, r) in &live {
                prev_kvs.push(self.read_kv(*r, Some(&ctx.pending))?);
            }
        }
        for (key, prev) in &live {
            self.delete_key(ctx, key, *prev);
        }
        Ok(DeleteRangeResponse {
            header: None,
            deleted: live.len() as i64,
            prev_kvs,
        })
    }

    fn delete_key(&mut self, ctx: &mut WriteCtx, key: &[u8], prev: Rev) {
        let rev = ctx.next_rev();
        let ki = self.index.entry(key);
        let lease = ki.lease;
        let deleted = ki.tombstone(rev);
        debug_assert!(deleted, "delete_key on a key that is not live");
        if lease != 0 {
            if let Some(l) = self.leases.get_mut(&lease) {
                l.keys.remove(key);
            }
        }
        let kv = KeyValue {
            key: key.to_vec(),
            mod_revision: rev.main,
            ..Default::default()
        };
        let rec = Record {
            tombstone: true,
            applied_index: ctx.index,
            prev: Some(prev),
            kv,
        };
        ctx.write_record(rev, rec, EventType::Delete);
    }

    fn exec_txn_top(&mut self, ctx: &mut WriteCtx, t: &TxnRequest) -> Result<TxnResponse, Fail> {
        // etcd evaluates every compare on the path (nested ones included) against the state
        // before the txn, then checks the chosen requests, and only then writes.
        let mut path = Vec::new();
        self.compare_to_path(t, &mut path, &ctx.pending)?;
        self.check_txn(t, &path, &mut 0)?;
        let mut pos = 0;
        let mut resp = self.exec_txn(ctx, t, &path, &mut pos)?;
        resp.header = None;
        Ok(resp)
    }

    fn compare_to_path(
        &self,
        t: &TxnRequest,
        path: &mut Vec<bool>,
        pending: &HashMap<Rev, KeyValue>,
    ) -> Result<(), Fail> {
        let mut ok = true;
        for c in &t.compare {
            if !self.apply_compare(c, pending)? {
                ok = false;
                break;
            }
        }
        path.push(ok);
        let ops = if ok { &t.success } else { &t.failure };
        for op in ops {
            if let Some(request_op::Request::RequestTxn(nested)) = &op.request {
                self.compare_to_path(nested, path, pending)?;
            }
        }
        Ok(())
    }

    /// etcd's compare: every key in the range must satisfy it; on no key, a value compare
    /// fails and the others compare against a zero KeyValue. `pending` holds the records
    /// of the group not yet in sled (earlier commands of the same group).
    fn apply_compare(&self, c: &Compare, pending: &HashMap<Rev, KeyValue>) -> Result<bool, Fail> {
        let at = self.meta.revision;
        let target =
            compare::CompareTarget::try_from(c.target).unwrap_or(compare::CompareTarget::Version);
        let live: Vec<(&Vec<u8>, Version, i64)> = self
            .index
            .range(&c.key, &c.range_end)
            .filter_map(|(k, ki)| ki.get(at).map(|v| (k, v, ki.lease)))
            .collect();
        if live.is_empty() {
            if target == compare::CompareTarget::Value {
                return Ok(false);
            }
            return Ok(compare_kv(c, target, &KeyValue::default()));
        }
        for (k, v, lease) in live {
            let kv = if target == compare::CompareTarget::Value {
                self.read_kv(v.modified, Some(pending))?
            } else {
                KeyValue {
                    key: k.clone(),
                    create_revision: v.created.main,
                    mod_revision: v.modified.main,
                    version: v.version,
                    value: vec![],
                    lease,
                }
            };
            if !compare_kv(c, target, &kv) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// etcd's `checkTxn` on the chosen path, against the state before the txn.
    fn check_txn(&self, t: &TxnRequest, path: &[bool], pos: &mut usize) -> Result<(), Fail> {
        let ok = path[*pos];
        *pos += 1;
        for op in if ok { &t.success } else { &t.failure } {
            match &op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    if r.revision > self.meta.revision {
                        return Err(Fail::Etcd(rpctypes::FUTURE_REV));
                    }
                    if r.revision != 0 && r.revision < self.meta.compact_revision {
                        return Err(Fail::Etcd(rpctypes::COMPACTED));
                    }
                }
                Some(request_op::Request::RequestPut(p)) => {
                    if (p.ignore_value || p.ignore_lease)
                        && self.index.get(&p.key).and_then(|ki| ki.current()).is_none()
                    {
                        return Err(Fail::Etcd(rpctypes::KEY_NOT_FOUND));
                    }
                    if p.lease != 0 && !self.leases.contains_key(&p.lease) {
                        return Err(Fail::Etcd(rpctypes::LEASE_NOT_FOUND));
                    }
                }
                Some(request_op::Request::RequestTxn(nested)) => {
                    self.check_txn(nested, path, pos)?
                }
                Some(request_op::Request::RequestDeleteRange(_)) | None => {}
            }
        }
        Ok(())
    }

    fn exec_txn(
        &mut self,
        ctx: &mut WriteCtx,
        t: &TxnRequest,
        path: &[bool],
        pos: &mut usize,
    ) -> Result<TxnResponse, Fail> {
        let ok = path[*pos];
        *pos += 1;
        let mut responses = Vec::new();
        for op in if ok { &t.success } else { &t.failure } {
            let resp = match &op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    let cur = ctx.read_rev();
                    let mut resp = self.do_range(r, cur, Some(&ctx.pending))?;
                    resp.header = header(cur);
                    Some(response_op::Response::ResponseRange(resp))
                }
                Some(request_op::Request::RequestPut(p)) => {
                    let mut resp = self.exec_put(ctx, p)?;
                    resp.header = header(ctx.begin_rev + 1);
                    Some(response_op::Response::ResponsePut(resp))
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    let mut resp = self.exec_delete(ctx, d)?;
                    resp.header = header(ctx.read_rev());
                    Some(response_op::Response::ResponseDeleteRange(resp))
                }
                Some(request_op::Request::RequestTxn(nested)) => {
                    let resp = self.exec_txn(ctx, nested, path, pos)?;
                    Some(response_op::Response::ResponseTxn(resp))
                }
                None => None,
            };
            responses.push(ResponseOp { response: resp });
        }
        Ok(TxnResponse {
            // etcd leaves nested txn headers empty; the top-level one is the caller's.
            header: Some(ResponseHeader::default()),
            succeeded: ok,
            responses,
        })
    }

    fn exec_compaction(
        &mut self,
        ctx: &mut WriteCtx,
        c: &CompactionRequest,
    ) -> Result<(CompactionResponse, i64), Fail> {
        if c.revision <= self.meta.compact_revision {
            return Err(Fail::Etcd(rpctypes::COMPACTED));
        }
        if c.revision > self.meta.revision {
            return Err(Fail::Etcd(rpctypes::FUTURE_REV));
        }
        for rev in self.index.compact(c.revision) {
            ctx.del(codec::rev_key(rev));
        }
        Ok((CompactionResponse { header: None }, c.revision))
    }

    fn exec_lease_grant(
        &mut self,
        ctx: &mut WriteCtx,
        g: &LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, Fail> {
        if g.id == 0 {
            return Err(Fail::Etcd(rpctypes::LEASE_NOT_FOUND));
        }
        if g.ttl > MAX_LEASE_TTL_SECS {
            return Err(Fail::Etcd(rpctypes::LEASE_TTL_TOO_LARGE));
        }
        if self.leases.contains_key(&g.id) {
            return Err(Fail::Etcd(rpctypes::LEASE_EXIST));
        }
        let ttl = g.ttl.max(self.config.min_lease_ttl_secs);
        ctx.put(codec::lease_key(g.id), codec::encode_lease(ttl, 0));
        self.leases.insert(
            g.id,
            LeaseState {
                granted_ttl: ttl,
                ..Default::default()
            },
        );
        Ok(LeaseGrantResponse {
            header: None,
            id: g.id,
            ttl,
            error: String::new(),
        })
    }

    fn exec_lease_revoke(
        &mut self,
        ctx: &mut WriteCtx,
        id: i64,
    ) -> Result<LeaseRevokeResponse, Fail> {
        let Some(lease) = self.leases.remove(&id) else {
            return Err(Fail::Etcd(rpctypes::LEASE_NOT_FOUND));
        };
        for key in &lease.keys {
            if let Some(cur) = self.index.get(key).and_then(|ki| ki.current()) {
                self.delete_key(ctx, key, cur.modified);
            }
        }
        ctx.del(codec::lease_key(id));
        Ok(LeaseRevokeResponse { header: None })
    }

    fn exec_lease_checkpoint(
        &mut self,
        ctx: &mut WriteCtx,
        c: &LeaseCheckpointRequest,
    ) -> Result<LeaseCheckpointResponse, Fail> {
        for cp in &c.checkpoints {
            if let Some(l) = self.leases.get_mut(&cp.id) {
                l.remaining_ttl = cp.remaining_ttl;
                ctx.put(
                    codec::lease_key(cp.id),
                    codec::encode_lease(l.granted_ttl, l.remaining_ttl),
                );
            }
        }
        Ok(LeaseCheckpointResponse { header: None })
    }
}

fn lease_info(id: i64, l: &LeaseState) -> LeaseInfo {
    LeaseInfo {
        id,
        granted_ttl: l.granted_ttl,
        remaining_ttl: if l.remaining_ttl > 0 {
            l.remaining_ttl
        } else {
            l.granted_ttl
        },
        keys: l.keys.iter().cloned().collect(),
    }
}

/// etcd's `compareKV`: a target union of the wrong kind compares against 0 / empty, and an
/// unknown result is true.
fn compare_kv(c: &Compare, target: compare::CompareTarget, kv: &KeyValue) -> bool {
    use compare::{CompareResult, CompareTarget, TargetUnion};
    use std::cmp::Ordering;
    let ord = match target {
        CompareTarget::Value => {
            let v: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(v)
        }
        CompareTarget::Create => kv.create_revision.cmp(match &c.target_union {
            Some(TargetUnion::CreateRevision(r)) => r,
            _ => &0,
        }),
        CompareTarget::Mod => kv.mod_revision.cmp(match &c.target_union {
            Some(TargetUnion::ModRevision(r)) => r,
            _ => &0,
        }),
        CompareTarget::Version => kv.version.cmp(match &c.target_union {
            Some(TargetUnion::Version(r)) => r,
            _ => &0,
        }),
        CompareTarget::Lease => kv.lease.cmp(match &c.target_union {
            Some(TargetUnion::Lease(r)) => r,
            _ => &0,
        }),
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ord != Ordering::Equal,
        Ok(CompareResult::Greater) => ord == Ordering::Greater,
        Ok(CompareResult::Less) => ord == Ordering::Less,
        Err(_) => true,
    }
}

/// Rebuilds the in-memory state from the tree.
fn load(tree: &sled::Tree) -> Result<(Meta, TreeIndex, BTreeMap<i64, LeaseState>), StateError> {
    let meta = match tree.get(codec::META_KEY)? {
        Some(b) => Meta::decode(&b)?,
        None => Meta {
            applied_index: 0,
            revision: 1,
            compact_revision: -1,
        },
    };
    // Records above the meta's revision belong to a group whose meta record never landed
    // (see `StateMachine::commit`): raft replays its entries, so they go.
    let orphans: Vec<sled::IVec> = tree
        .range(codec::rev_key(Rev::new(meta.revision + 1, 0))..)
        .keys()
        .take_while(|k| {
            k.as_ref()
                .map_or(true, |k| k.first() == Some(&codec::REV_PREFIX))
        })
        .collect::<Result<_, _>>()?;
    if !orphans.is_empty() {
        tracing::warn!(
            records = orphans.len(),
            revision = meta.revision,
            "discarding revision records of a commit that did not finish"
        );
        let mut batch = sled::Batch::default();
        for k in orphans {
            batch.remove(k);
        }
        tree.apply_batch(batch)?;
    }
    let mut leases = BTreeMap::new();
    for item in tree.scan_prefix([codec::LEASE_PREFIX]) {
        let (k, v) = item?;
        let (granted_ttl, remaining_ttl) = codec::decode_lease(&v)?;
        leases.insert(
            codec::decode_lease_key(&k)?,
            LeaseState {
                granted_ttl,
                remaining_ttl,
                keys: BTreeSet::new(),
            },
        );
    }
    let mut index = TreeIndex::default();
    for item in tree.scan_prefix([codec::REV_PREFIX]) {
        let (k, v) = item?;
        let rev = codec::decode_rev_key(&k)?;
        let rec = Record::decode(&v)?;
        let ki = index.entry(&rec.kv.key);
        if rec.tombstone {
            ki.tombstone(rev);
        } else {
            ki.put(
                rev,
                Some((Rev::new(rec.kv.create_revision, 0), rec.kv.version)),
            );
            ki.lease = rec.kv.lease;
        }
    }
    // Attach keys to leases from the live versions.
    let mut live = Vec::new();
    for (k, ki) in index.range(b"\0", b"\0") {
        if ki.current().is_some() && ki.lease != 0 {
            live.push((ki.lease, k.clone()));
        }
    }
    for (lease, k) in live {
        if let Some(l) = leases.get_mut(&lease) {
            l.keys.insert(k);
        }
    }
    Ok((meta, index, leases))
}
