//! The raft loop: one thread owns the `RawNode`, the log and (for writing) the state
//! machine. Everything else talks to it through a [`NodeHandle`].
//!
//! Each turn of the loop drains every queued input (proposals, reads, peer messages)
//! before handling one `Ready`, so all proposals that arrived meanwhile share one
//! fsync: that is the group commit. Order within a `Ready` follows raft-rs's
//! contract: send messages, install a snapshot, persist entries and hard state,
//! **fsync**, apply committed entries, send the messages that had to wait for
//! persistence, advance. All entries applied in one turn go to the state machine as
//! one group: one commit to sled, then their answers and watch events.
//!
//! A proposal carries its proposer (`member id`, `sequence`) in the entry context;
//! only the proposer answers the waiting client when the entry is applied. A
//! proposal that is dropped (leader change) is answered with a timeout by
//! [`NodeHandle::propose`]'s deadline, never left waiting.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use gauntlet_api::rpctypes::{self, EtcdError};
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType, Message, Snapshot,
};
use raft::{RawNode, SnapshotStatus, StateRole};
use tokio::sync::oneshot;

use crate::raftlog::LogStore;
use crate::state::{ApplyOutcome, Command, Member, MemberChange, StateMachine};

/// Most inputs handled before a `Ready` is processed (bounds one group commit).
const MAX_INPUTS_PER_TURN: usize = 4096;
/// Capacity of the input queue; a full queue answers "too many requests".
const INPUT_QUEUE: usize = 65_536;
/// Entries kept behind the compaction point so slow followers catch up from the log.
const CATCH_UP_ENTRIES: u64 = 5_000;
/// How often a member without a leader says so in its log.
const LEADERLESS_LOG_EVERY: Duration = Duration::from_secs(10);
/// A learner may be promoted once its log matches this fraction of the leader's (etcd's).
const LEARNER_READY_FRACTION: f64 = 0.9;

/// The answer to an applied proposal.
#[derive(Debug)]
pub struct Applied {
    /// What the state machine answered.
    pub outcome: ApplyOutcome,
    /// Store revision right after applying it (for the response header).
    pub revision: i64,
    /// Raft term of the entry.
    pub term: u64,
}

/// Inputs of the raft loop.
pub enum Input {
    /// Propose a command.
    Propose(Command, oneshot::Sender<Result<Applied, EtcdError>>),
    /// Linearizable read barrier: answered once the state machine has applied
    /// everything committed when the read was requested.
    ReadIndex(oneshot::Sender<Result<(), EtcdError>>),
    /// Messages from peers.
    Raft(Vec<Message>),
    /// A peer could not be reached.
    Unreachable(u64),
    /// Outcome of sending a snapshot.
    SnapshotStatus(u64, SnapshotStatus),
    /// Propose a configuration change (`cc.context` holds the [`Member`] record for an
    /// addition); answered once applied. A promotion is checked first, on the leader
    /// only: the learner must have caught up (etcd's 90 % rule).
    ConfChange {
        cc: ConfChange,
        promote: bool,
        reply: oneshot::Sender<Result<Applied, EtcdError>>,
    },
    /// Hand leadership to a member (leader only); answered at once, the caller watches
    /// [`NodeStatus::leader`].
    TransferLeader(u64, oneshot::Sender<Result<(), EtcdError>>),
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The variant only: commands and messages can be large.
        f.write_str(match self {
            Input::Propose(..) => "Propose",
            Input::ReadIndex(_) => "ReadIndex",
            Input::Raft(_) => "Raft",
            Input::Unreachable(_) => "Unreachable",
            Input::SnapshotStatus(..) => "SnapshotStatus",
            Input::ConfChange { .. } => "ConfChange",
            Input::TransferLeader(..) => "TransferLeader",
        })
    }
}

/// Where outgoing raft messages go.
pub trait Outbox: Send + 'static {
    /// Sends messages (non-blocking; may drop, raft retries).
    fn send(&self, msgs: Vec<Message>);
    /// The members changed: `members` are all of them (id, peer URLs), this one included.
    fn set_peers(&self, members: &[(u64, Vec<String>)]);
    /// One line on what each peer link did (for the leaderless warning); empty when the
    /// outbox keeps no such account.
    fn links(&self) -> String {
        String::new()
    }
}

/// What the rest of the server can see of the node, updated by the loop.
#[derive(Debug, Default)]
pub struct NodeStatus {
    /// Current leader id (0 = none).
    pub leader: AtomicU64,
    /// Current term.
    pub term: AtomicU64,
    /// Last log index.
    pub raft_index: AtomicU64,
    /// Applied index.
    pub applied: AtomicU64,
    /// Whether this member is leader.
    pub is_leader: AtomicBool,
    /// Set once this member applied its own removal: it must stop serving.
    pub removed: AtomicBool,
    /// Whether this member is a learner (as of the last applied member change).
    pub is_learner: AtomicBool,
    /// Database size on disk, refreshed every [`DB_SIZE_REFRESH`] (reading it stats
    /// files, too slow for every write's quota check).
    pub db_size_bytes: AtomicU64,
    /// Bytes of writes this member proposed since [`Self::db_size_bytes`] was last
    /// refreshed: the quota check adds them, so that a burst faster than the refresh
    /// (and than sled's flush) cannot overshoot `--quota-backend-bytes` by seconds' worth
    /// of writes. Reset by the refresher.
    pub bytes_since_size_refresh: AtomicU64,
}

/// How often [`NodeStatus::db_size_bytes`] is refreshed.
pub const DB_SIZE_REFRESH: Duration = Duration::from_millis(500);

/// A cheap handle to the raft loop.
#[derive(Clone)]
pub struct NodeHandle {
    tx: SyncSender<Input>,
    /// Observable status.
    pub status: Arc<NodeStatus>,
    /// The state machine (read access for serializable reads).
    pub state: Arc<RwLock<StateMachine>>,
    /// How long a proposal or read may wait.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl NodeHandle {
    /// Read access to the state machine (serializable reads, status, metrics).
    pub fn read_state(&self) -> std::sync::RwLockReadGuard<'_, StateMachine> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn enqueue(&self, input: Input) -> Result<(), EtcdError> {
        match self.tx.try_send(input) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(rpctypes::REQUEST_TOO_MANY_REQUESTS),
            Err(TrySendError::Disconnected(_)) => Err(rpctypes::STOPPED),
        }
    }

    /// Proposes `cmd` and waits until it is applied (or the request timeout passes,
    /// answered with etcd's "request timed out").
    pub async fn propose(&self, cmd: Command) -> Result<Applied, EtcdError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Input::Propose(cmd, tx))?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(rpctypes::STOPPED),
            Err(_) => Err(rpctypes::TIMEOUT),
        }
    }

    /// Waits until this member may serve a linearizable read.
    pub async fn read_index(&self) -> Result<(), EtcdError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Input::ReadIndex(tx))?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(rpctypes::STOPPED),
            Err(_) => Err(rpctypes::TIMEOUT),
        }
    }

    /// Proposes a configuration change and waits until it is applied; see
    /// [`Input::ConfChange`].
    pub async fn conf_change(&self, cc: ConfChange, promote: bool) -> Result<Applied, EtcdError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Input::ConfChange {
            cc,
            promote,
            reply: tx,
        })?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(rpctypes::STOPPED),
            Err(_) => Err(rpctypes::TIMEOUT),
        }
    }

    /// Asks raft to hand leadership to `target` (this member must lead).
    pub async fn transfer_leader(&self, target: u64) -> Result<(), EtcdError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Input::TransferLeader(target, tx))?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(rpctypes::STOPPED),
            Err(_) => Err(rpctypes::TIMEOUT),
        }
    }

    /// Hands peer messages to the loop (dropped when the queue is full).
    pub fn step(&self, msgs: Vec<Message>) {
        let _ = self.tx.try_send(Input::Raft(msgs));
    }

    /// Reports an unreachable peer.
    pub fn report_unreachable(&self, id: u64) {
        let _ = self.tx.try_send(Input::Unreachable(id));
    }

    /// Reports the outcome of a snapshot send.
    pub fn report_snapshot(&self, id: u64, ok: bool) {
        let status = if ok {
            SnapshotStatus::Finish
        } else {
            SnapshotStatus::Failure
        };
        let _ = self.tx.try_send(Input::SnapshotStatus(id, status));
    }
}

/// Settings of the loop.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This member's id.
    pub id: u64,
    /// All voters of the initial cluster (none for a member joining an existing one).
    pub voters: Vec<u64>,
    /// A new cluster's members (id, encoded [`Member`]): see [`LogStore::open`].
    pub bootstrap: Vec<(u64, Vec<u8>)>,
    /// One tick.
    pub tick: Duration,
    /// Ticks per election timeout.
    pub election_ticks: usize,
    /// Applied entries between log compactions.
    pub snapshot_count: u64,
    /// Deadline for proposals and reads.
    pub request_timeout: Duration,
    /// raft's pre-vote phase (`--pre-vote`).
    pub pre_vote: bool,
    /// Ticks to fast-forward before the loop starts (`--initial-election-tick-advance`).
    pub initial_election_ticks: usize,
}

/// Fatal errors of the node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The log failed.
    #[error(transparent)]
    Log(#[from] crate::raftlog::LogError),
    /// The state machine failed.
    #[error("state machine: {0}")]
    State(#[from] crate::state::StateError),
    /// raft failed.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// The database failed.
    #[error("database: {0}")]
    Sled(#[from] sled::Error),
}

struct Loop<O: Outbox> {
    raw: RawNode<LogStore>,
    state: Arc<RwLock<StateMachine>>,
    status: Arc<NodeStatus>,
    outbox: O,
    cfg: NodeConfig,
    seq: u64,
    proposals: HashMap<u64, (Instant, oneshot::Sender<Result<Applied, EtcdError>>)>,
    reads_requested: HashMap<u64, (Instant, oneshot::Sender<Result<(), EtcdError>>)>,
    reads_waiting: BTreeMap<u64, Vec<oneshot::Sender<Result<(), EtcdError>>>>,
    reads_before_leader: VecDeque<oneshot::Sender<Result<(), EtcdError>>>,
    last_compaction: u64,
    /// Since when no leader is known, and when that was last logged.
    leaderless: Option<(Instant, Instant)>,
}

fn context(id: u64, seq: u64) -> Vec<u8> {
    let mut c = Vec::with_capacity(16);
    c.extend_from_slice(&id.to_be_bytes());
    c.extend_from_slice(&seq.to_be_bytes());
    c
}

fn parse_context(c: &[u8]) -> Option<(u64, u64)> {
    if c.len() != 16 {
        return None;
    }
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&c[..8]);
    b.copy_from_slice(&c[8..]);
    Some((u64::from_be_bytes(a), u64::from_be_bytes(b)))
}

/// Opens the log and starts the raft loop on its own thread.
pub fn start<O: Outbox>(
    wal_dir: &std::path::Path,
    state: Arc<RwLock<StateMachine>>,
    cfg: NodeConfig,
    outbox: O,
    logger: slog::Logger,
) -> Result<NodeHandle, NodeError> {
    let store = LogStore::open(wal_dir, state.clone(), &cfg.voters, &cfg.bootstrap)?;
    let applied = state
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .applied_index();
    let raft_cfg = raft::Config {
        id: cfg.id,
        election_tick: cfg.election_ticks,
        heartbeat_tick: 1,
        applied,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: cfg.pre_vote,
        read_only_option: raft::ReadOnlyOption::Safe,
        ..Default::default()
    };
    raft_cfg.validate()?;
    let mut raw = RawNode::new(&raft_cfg, store, &logger)?;
    for _ in 0..cfg.initial_election_ticks {
        raw.tick();
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(INPUT_QUEUE);
    let status = Arc::new(NodeStatus::default());
    let learner = state
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .cluster()
        .members
        .get(&cfg.id)
        .is_some_and(|m| m.is_learner);
    status.is_learner.store(learner, Ordering::Relaxed);
    status.applied.store(applied, Ordering::Relaxed);
    let handle = NodeHandle {
        tx,
        status: status.clone(),
        state: state.clone(),
        request_timeout: cfg.request_timeout,
    };
    let mut lp = Loop {
        raw,
        state,
        status,
        outbox,
        last_compaction: applied,
        cfg,
        seq: 0,
        proposals: HashMap::new(),
        reads_requested: HashMap::new(),
        reads_waiting: BTreeMap::new(),
        reads_before_leader: VecDeque::new(),
        leaderless: None,
    };
    std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || {
            // A panic in the loop (raft-rs's own fatal checks panic) must end the process:
            // a member whose loop is gone would go on serving a state that never moves.
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.run(rx)));
            match run {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!("raft loop stopped: {e}");
                    eprintln!("fatal: raft loop stopped: {e}");
                    std::process::exit(1);
                }
                Err(_) => {
                    eprintln!("fatal: the raft loop panicked (message above)");
                    std::process::abort();
                }
            }
        })
        .map_err(|e| NodeError::Sled(sled::Error::Io(e)))?;
    Ok(handle)
}

impl<O: Outbox> Loop<O> {
    fn run(&mut self, rx: Receiver<Input>) -> Result<(), NodeError> {
        let mut next_tick = Instant::now() + self.cfg.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(input) => {
                    self.handle(input)?;
                    for _ in 0..MAX_INPUTS_PER_TURN {
                        match rx.try_recv() {
                            Ok(i) => self.handle(i)?,
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            let now = Instant::now();
            if now >= next_tick {
                self.raw.tick();
                next_tick = now + self.cfg.tick;
                self.expire(now);
            }
            if self.raw.has_ready() {
                self.on_ready()?;
            }
        }
    }

    fn handle(&mut self, input: Input) -> Result<(), NodeError> {
        match input {
            Input::Propose(cmd, reply) => {
                self.seq += 1;
                let ctx = context(self.cfg.id, self.seq);
                match self.raw.propose(ctx, cmd.encode_to_vec()) {
                    Ok(()) => {
                        self.proposals
                            .insert(self.seq, (Instant::now() + self.cfg.request_timeout, reply));
                    }
                    Err(_) => {
                        crate::metrics::get().proposals_failed_total.inc();
                        let _ = reply.send(Err(rpctypes::NO_LEADER));
                    }
                }
            }
            Input::ReadIndex(reply) => {
                if self.raw.raft.leader_id == raft::INVALID_ID {
                    self.reads_before_leader.push_back(reply);
                } else {
                    self.seq += 1;
                    self.raw.read_index(context(self.cfg.id, self.seq));
                    self.reads_requested
                        .insert(self.seq, (Instant::now() + self.cfg.request_timeout, reply));
                }
            }
            Input::Raft(msgs) => {
                for m in msgs {
                    // Messages from unknown or removed peers are ignored by raft itself.
                    let _ = self.raw.step(m);
                }
            }
            Input::Unreachable(id) => self.raw.report_unreachable(id),
            Input::SnapshotStatus(id, s) => self.raw.report_snapshot(id, s),
            Input::ConfChange { cc, promote, reply } => {
                self.propose_conf_change(cc, promote, reply)
            }
            Input::TransferLeader(target, reply) => {
                let r = if self.raw.raft.state != StateRole::Leader {
                    Err(rpctypes::NOT_LEADER)
                } else if !self.raw.raft.prs().conf().voters().contains(target) {
                    Err(rpctypes::BAD_LEADER_TRANSFEREE)
                } else {
                    self.raw.transfer_leader(target);
                    Ok(())
                };
                let _ = reply.send(r);
            }
        }
        Ok(())
    }

    /// Proposes a configuration change; see [`Input::ConfChange`]. A leader with a change
    /// not yet applied refuses another at once (raft would drop it silently).
    fn propose_conf_change(
        &mut self,
        cc: ConfChange,
        promote: bool,
        reply: oneshot::Sender<Result<Applied, EtcdError>>,
    ) {
        let leader = self.raw.raft.state == StateRole::Leader;
        if promote {
            if !leader {
                let _ = reply.send(Err(rpctypes::NOT_LEADER));
                return;
            }
            let prs = self.raw.raft.prs();
            let leader_match = prs.get(self.cfg.id).map_or(0, |p| p.matched);
            let learner_match = prs.get(cc.node_id).map_or(0, |p| p.matched);
            // etcd: a learner is ready once its match index is at least 90 % of the leader's.
            if (learner_match as f64) < (leader_match as f64) * LEARNER_READY_FRACTION {
                let _ = reply.send(Err(rpctypes::LEARNER_NOT_READY));
                return;
            }
        }
        if leader && self.raw.raft.has_pending_conf() {
            let _ = reply.send(Err(rpctypes::TIMEOUT));
            return;
        }
        self.seq += 1;
        let ctx = context(self.cfg.id, self.seq);
        match self.raw.propose_conf_change(ctx, cc) {
            Ok(()) => {
                self.proposals
                    .insert(self.seq, (Instant::now() + self.cfg.request_timeout, reply));
            }
            Err(_) => {
                crate::metrics::get().proposals_failed_total.inc();
                let _ = reply.send(Err(rpctypes::NO_LEADER));
            }
        }
    }

    /// Logs, every [`LEADERLESS_LOG_EVERY`], that no leader is known, with raft's view of
    /// why (role, term, log, configuration): what a cluster that never elects shows.
    fn watch_leaderless(&mut self, now: Instant) {
        if self.raw.raft.leader_id != raft::INVALID_ID {
            self.leaderless = None;
            return;
        }
        let (since, logged) = *self.leaderless.get_or_insert((now, now));
        if now.duration_since(logged) < LEADERLESS_LOG_EVERY {
            return;
        }
        self.leaderless = Some((since, now));
        let r = &self.raw.raft;
        tracing::warn!(
            "no leader for {} s: role {:?}, term {}, vote {:x}, last index {}, committed {}, applied {}, voters {:x?}, learners {:x?}, promotable {}; peer links: {}",
            now.duration_since(since).as_secs(),
            r.state,
            r.term,
            r.vote,
            r.raft_log.last_index(),
            r.raft_log.committed,
            r.raft_log.applied,
            r.prs().conf().voters().ids().iter().collect::<Vec<_>>(),
            r.prs().conf().learners(),
            r.promotable(),
            self.outbox.links(),
        );
    }

    /// Answers requests that waited past their deadline; retries reads queued while no leader was known.
    fn expire(&mut self, now: Instant) {
        self.watch_leaderless(now);
        let late: Vec<u64> = self
            .proposals
            .iter()
            .filter(|(_, (d, _))| *d <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in late {
            if let Some((_, reply)) = self.proposals.remove(&k) {
                crate::metrics::get().proposals_failed_total.inc();
                let _ = reply.send(Err(rpctypes::TIMEOUT));
            }
        }
        let expired: Vec<u64> = self
            .reads_requested
            .iter()
            .filter(|(_, (d, _))| *d <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some((_, reply)) = self.reads_requested.remove(&k) {
                let _ = reply.send(Err(rpctypes::TIMEOUT));
            }
        }
        if self.raw.raft.leader_id != raft::INVALID_ID {
            while let Some(reply) = self.reads_before_leader.pop_front() {
                self.seq += 1;
                self.raw.read_index(context(self.cfg.id, self.seq));
                self.reads_requested
                    .insert(self.seq, (now + self.cfg.request_timeout, reply));
            }
        }
    }

    fn on_ready(&mut self) -> Result<(), NodeError> {
        let mut rd = self.raw.ready();
        if let Some(ss) = rd.ss() {
            let before = self.status.leader.swap(ss.leader_id, Ordering::Relaxed);
            if ss.leader_id != raft::INVALID_ID && ss.leader_id != before {
                crate::metrics::get().leader_changes_seen_total.inc();
            }
            self.status
                .is_leader
                .store(ss.raft_state == StateRole::Leader, Ordering::Relaxed);
        }
        if !rd.messages().is_empty() {
            self.before_send();
            self.outbox.send(rd.take_messages());
        }
        if !rd.snapshot().is_empty() {
            self.install_snapshot(rd.snapshot().clone())?;
        }
        crate::failpoints::hit("raftBeforeSave");
        if !rd.entries().is_empty() {
            self.raw.store().append(rd.entries())?;
        }
        if let Some(hs) = rd.hs() {
            self.status.term.store(hs.term, Ordering::Relaxed);
            self.raw.store().set_hardstate(hs)?;
        }
        if rd.must_sync() {
            let fsync = Instant::now();
            self.raw.store().sync()?;
            crate::metrics::get()
                .wal_fsync_duration_seconds
                .observe(fsync.elapsed().as_secs_f64());
        } else {
            self.raw.store().write()?;
        }
        crate::failpoints::hit("raftAfterSave");
        // Applied only after the log is durable, so the state machine (flushed by sled
        // on its own schedule) never holds an entry the local log could lose.
        self.status
            .raft_index
            .store(self.raw.raft.raft_log.last_index(), Ordering::Relaxed);
        let committed = rd.take_committed_entries();
        self.apply(committed)?;
        for rs in rd.take_read_states() {
            if let Some((_, seq)) = parse_context(&rs.request_ctx) {
                if let Some((_, reply)) = self.reads_requested.remove(&seq) {
                    self.reads_waiting.entry(rs.index).or_default().push(reply);
                }
            }
        }
        if !rd.persisted_messages().is_empty() {
            self.before_send();
            self.outbox.send(rd.take_persisted_messages());
        }
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.store().set_commit(commit)?;
        }
        if !light.messages().is_empty() {
            self.before_send();
            self.outbox.send(light.take_messages());
        }
        let committed = light.take_committed_entries();
        // Before applying: applying answers the proposals, and a client that asks
        // Status right after its answer must see the index of its own entry.
        self.status
            .raft_index
            .store(self.raw.raft.raft_log.last_index(), Ordering::Relaxed);
        self.apply(committed)?;
        self.raw.advance_apply();
        self.release_reads();
        crate::metrics::get()
            .proposals_pending
            .set(i64::try_from(self.proposals.len()).unwrap_or(i64::MAX));
        self.maybe_compact()?;
        Ok(())
    }

    /// The failpoint before raft messages go to the transport.
    fn before_send(&self) {
        crate::failpoints::hit(if self.status.is_leader.load(Ordering::Relaxed) {
            "raftBeforeLeaderSend"
        } else {
            "raftBeforeFollowerSend"
        });
    }

    fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), NodeError> {
        let index = snap.get_metadata().index;
        tracing::info!(index, "installing snapshot from the leader");
        // Three durable steps; see raftlog's module docs for why.
        crate::failpoints::hit("raftBeforeSaveSnap");
        self.raw.store().begin_snapshot(&snap)?;
        crate::failpoints::hit("raftAfterSaveSnap");
        crate::failpoints::hit("raftBeforeApplySnap");
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .restore(index, &snap.data)?;
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .flush()?;
        self.raw.store().apply_snapshot(&snap)?;
        crate::failpoints::hit("raftAfterApplySnap");
        tracing::info!(index, "applied snapshot");
        self.status.applied.store(index, Ordering::Relaxed);
        self.last_compaction = index;
        Ok(())
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), NodeError> {
        let Some(last) = entries.last().map(|e| e.index) else {
            return Ok(());
        };
        let shared = self.state.clone();
        let mut state = shared
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Answers wait until the group is committed to sled and published to watchers.
        let mut answers = Vec::new();
        let mut members_changed = false;
        for e in entries {
            match e.get_entry_type() {
                EntryType::EntryNormal if !e.data.is_empty() => {
                    let outcome = match Command::decode(e.data.as_ref()) {
                        Ok(cmd) => state.apply_grouped(e.index, &cmd)?,
                        Err(err) => {
                            // Every member decodes the same bytes the same way, so skipping stays consistent.
                            tracing::error!(index = e.index, "undecodable command skipped: {err}");
                            state.apply_noop_grouped(e.index);
                            None
                        }
                    };
                    members_changed |= matches!(outcome, Some(Ok(crate::state::Response::Cluster)));
                    if let Some(outcome) = outcome {
                        answers.extend(self.answer(&e, outcome, state.revision()));
                    }
                }
                EntryType::EntryNormal => state.apply_noop_grouped(e.index),
                EntryType::EntryConfChange => {
                    members_changed = true;
                    let cc = ConfChange::parse_from_bytes(&e.data)
                        .map_err(|err| NodeError::Raft(raft::Error::CodecError(err)))?;
                    let outcome = self.apply_conf_change(&mut state, e.index, &cc)?;
                    answers.extend(self.answer(&e, outcome, state.revision()));
                }
                EntryType::EntryConfChangeV2 => {
                    // Never proposed by this server; applied to raft so a log written by
                    // another tool still replays.
                    members_changed = true;
                    let cc = ConfChangeV2::parse_from_bytes(&e.data)
                        .map_err(|err| NodeError::Raft(raft::Error::CodecError(err)))?;
                    let cs = self.raw.apply_conf_change(&cc)?;
                    self.raw.store().set_conf_state(&cs)?;
                    state.apply_noop_grouped(e.index);
                }
            }
        }
        crate::failpoints::hit("beforeCommit");
        let commit = Instant::now();
        state.commit()?;
        crate::metrics::get()
            .backend_commit_duration_seconds
            .observe(commit.elapsed().as_secs_f64());
        crate::failpoints::hit("afterCommit");
        if members_changed {
            let members: Vec<(u64, Vec<String>)> = state
                .cluster()
                .members
                .values()
                .map(|m| (m.id, m.peer_urls.clone()))
                .collect();
            let still_member = state.cluster().members.contains_key(&self.cfg.id);
            let learner = state
                .cluster()
                .members
                .get(&self.cfg.id)
                .is_some_and(|m| m.is_learner);
            self.status.is_learner.store(learner, Ordering::Relaxed);
            self.outbox.set_peers(&members);
            if !still_member && !members.is_empty() {
                tracing::warn!("this member was removed from the cluster: stopping");
                self.status.removed.store(true, Ordering::Relaxed);
            }
        }
        drop(state);
        for (reply, applied) in answers {
            let _ = reply.send(Ok(applied));
        }
        self.status.applied.store(last, Ordering::Relaxed);
        Ok(())
    }

    /// The waiting proposer of entry `e`, when this member proposed it, with its answer.
    fn answer(
        &mut self,
        e: &Entry,
        outcome: ApplyOutcome,
        revision: i64,
    ) -> Option<(oneshot::Sender<Result<Applied, EtcdError>>, Applied)> {
        let (id, seq) = parse_context(&e.context)?;
        if id != self.cfg.id {
            return None;
        }
        let (_, reply) = self.proposals.remove(&seq)?;
        Some((
            reply,
            Applied {
                outcome,
                revision,
                term: e.term,
            },
        ))
    }

    /// Applies a configuration change to raft, then the same decision to the member
    /// table. raft refusing it (removing the last voter, say) is the same on every member,
    /// so the entry is consumed as a no-op and the proposer told.
    fn apply_conf_change(
        &mut self,
        state: &mut StateMachine,
        index: u64,
        cc: &ConfChange,
    ) -> Result<crate::state::ApplyOutcome, NodeError> {
        if index <= state.applied_index() {
            // Replayed after a restart: raft's configuration comes from the log store.
            let _ = self.raw.apply_conf_change(cc);
            return Ok(Ok(crate::state::Response::Cluster));
        }
        let cs = match self.raw.apply_conf_change(cc) {
            Ok(cs) => cs,
            Err(e) => {
                tracing::warn!(index, "configuration change refused by raft: {e}");
                state.apply_noop_grouped(index);
                return Ok(Err(rpctypes::UNHEALTHY));
            }
        };
        self.raw.store().set_conf_state(&cs)?;
        let known = state.cluster().members.get(&cc.node_id).cloned();
        let change = match cc.get_change_type() {
            ConfChangeType::AddNode if known.as_ref().is_some_and(|m| m.is_learner) => {
                MemberChange::Promote(cc.node_id)
            }
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                let mut m = Member::decode(cc.context.as_ref()).unwrap_or_default();
                m.id = cc.node_id;
                m.is_learner = cc.get_change_type() == ConfChangeType::AddLearnerNode;
                MemberChange::Add(m)
            }
            ConfChangeType::RemoveNode => MemberChange::Remove(cc.node_id),
        };
        state.apply_member_change_grouped(index, change);
        Ok(Ok(crate::state::Response::Cluster))
    }

    fn release_reads(&mut self) {
        let applied = self.status.applied.load(Ordering::Relaxed);
        while let Some(entry) = self.reads_waiting.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for reply in entry.remove() {
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// Compacts the log once `snapshot_count` entries were applied since the last time,
    /// keeping [`CATCH_UP_ENTRIES`] (at most half the count) for slow followers. The state
    /// machine is flushed first: the log may only forget what the state durably holds.
    fn maybe_compact(&mut self) -> Result<(), NodeError> {
        let applied = self.status.applied.load(Ordering::Relaxed);
        if applied < self.last_compaction + self.cfg.snapshot_count {
            return Ok(());
        }
        let keep = CATCH_UP_ENTRIES.min(self.cfg.snapshot_count / 2);
        let to = applied.saturating_sub(keep);
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .flush()?;
        self.raw.store().compact(to)?;
        self.last_compaction = applied;
        tracing::debug!(applied, compacted_to = to, "raft log compacted");
        Ok(())
    }
}
