//! The watch hub: fans applied events out to watchers without ever blocking apply.
//!
//! Each watcher has a bounded channel and a `next_rev`: the first revision it has not been
//! sent (or skipped as not matching). A watcher is either
//!
//! - *synced*: `next_rev` is past the current revision, and `apply` pushes each new
//!   revision's matching events with `try_send`; or
//! - *unsynced*: it is behind (it started in the past, its channel was full, or a snapshot
//!   was restored under it), and a catch-up replays history from sled until it reaches the
//!   current revision, where it turns synced again under the hub lock, so no revision can
//!   fall between the two modes.
//!
//! Catch-up runs as a task on the tokio runtime (the current one, or the last one seen by
//! `watch`). With no runtime at all (plain unit tests) it runs lazily, in bounded steps, from
//! `watch` and from every `apply`, never waiting on a channel.
//!
//! History reads race only with compaction and restore, which bump `epoch` before and after
//! they change sled; a read that saw the epoch change is discarded and redone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use gauntlet_api::mvccpb::{event::EventType, Event, KeyValue};
use tokio::runtime::Handle;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;
use tokio::sync::Notify;

use super::codec::{self, Record};
use super::index::{in_range, Rev};
use super::StateError;

/// Revisions read from history per catch-up step (bounds memory and lock-free read time).
const CATCH_UP_REVISIONS_PER_STEP: i64 = 256;
/// Most event bytes (values and keys) a catch-up task merges into one update. History is
/// replayed as etcd does, several revisions per response, which also lets a watcher that
/// asked for fragments receive a large replay split into fragments; one revision is never
/// split, whatever its size.
const CATCH_UP_BATCH_BYTES: usize = 4 << 20;
/// Catch-up steps a lazy (runtime-less) catch-up may take per call.
const LAZY_STEPS_PER_CALL: usize = 4;

/// What to watch. `range_end` has etcd's forms: empty = the single `key`, `"\0"` = every key
/// `>= key`, else `[key, range_end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchSpec {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// First revision wanted; 0 (or less) = from the next revision.
    pub start_revision: i64,
    pub prev_kv: bool,
    pub no_put: bool,
    pub no_delete: bool,
}

/// What a watcher receives, in revision order, each revision at most once, with no gaps.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchUpdate {
    /// All matching events of one revision (`revision`), in sub-revision order; never
    /// split. A catching-up watcher may get several whole revisions in one update, in
    /// revision order; `revision` is then the last of them.
    Events { revision: i64, events: Vec<Event> },
    /// The watcher's next revision was compacted away; the watcher is removed.
    Compacted { compact_revision: i64 },
    /// Asked for by [`WatchHub::request_progress`]: every matching event up to `revision`
    /// was queued before this marker, so once the stream has sent what came before it,
    /// a progress notification at `revision` is true. `token` is the asker's.
    Progress { revision: i64, token: u64 },
}

/// Identifies a watcher on its hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatcherId(pub u64);

/// An applied event as the store hands it over: `prev` points at the key's previous live
/// version, read only for watchers that want `prev_kv`.
#[derive(Debug, Clone)]
pub(super) struct HubEvent {
    pub event: Event,
    pub prev: Option<Rev>,
}

#[derive(Debug)]
struct Watcher {
    spec: Arc<WatchSpec>,
    tx: Sender<WatchUpdate>,
    next_rev: i64,
    synced: bool,
    /// A catch-up task owns this watcher's progress while it is unsynced.
    task: bool,
    cancel: Arc<Notify>,
}

#[derive(Debug)]
struct Inner {
    watchers: HashMap<WatcherId, Watcher>,
    next_id: u64,
    current_rev: i64,
    compact_rev: i64,
    epoch: u64,
}

#[derive(Debug)]
struct Shared {
    /// Replaced when the database is defragmented; readers clone the handle.
    tree: std::sync::RwLock<sled::Tree>,
    inner: Mutex<Inner>,
    handle: Mutex<Option<Handle>>,
}

impl Shared {
    fn tree(&self) -> sled::Tree {
        self.tree
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The watch hub; cloning is cheap (an `Arc`).
#[derive(Debug, Clone)]
pub struct WatchHub {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WatchHub {
    pub(super) fn new(tree: sled::Tree, current_rev: i64, compact_rev: i64) -> Self {
        WatchHub {
            shared: Arc::new(Shared {
                tree: std::sync::RwLock::new(tree),
                inner: Mutex::new(Inner {
                    watchers: HashMap::new(),
                    next_id: 1,
                    current_rev,
                    compact_rev,
                    epoch: 0,
                }),
                handle: Mutex::new(Handle::try_current().ok()),
            }),
        }
    }

    /// Reads history from `tree` from now on (the database was defragmented into it).
    pub(super) fn replace_tree(&self, tree: sled::Tree) {
        *self
            .shared
            .tree
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tree;
    }

    /// Registers a watcher; see the module doc. A start revision below the compact revision
    /// makes the first (and last) update `Compacted`. As in etcd, the compact revision itself
    /// is still watchable, with etcd's caveats: a delete at exactly that revision is not
    /// replayed (compaction dropped its tombstone) and events at it carry no `prev_kv`.
    ///
    /// Never blocks; may be called from any thread. Called inside a tokio runtime, it also
    /// remembers that runtime for catch-up tasks started later from `apply`.
    pub fn watch(&self, spec: WatchSpec, tx: Sender<WatchUpdate>) -> WatcherId {
        if let Ok(h) = Handle::try_current() {
            *lock(&self.shared.handle) = Some(h);
        }
        let mut inner = lock(&self.shared.inner);
        let id = WatcherId(inner.next_id);
        inner.next_id += 1;
        let current = inner.current_rev;
        let start = spec.start_revision;
        let (next_rev, synced) = if start <= 0 {
            (current + 1, true)
        } else {
            (start, start > current)
        };
        inner.watchers.insert(
            id,
            Watcher {
                spec: Arc::new(spec),
                tx,
                next_rev,
                synced,
                task: false,
                cancel: Arc::new(Notify::new()),
            },
        );
        if !synced {
            self.kick(&mut inner, id);
        }
        id
    }

    /// Removes a watcher; nothing more is sent to it.
    pub fn cancel(&self, id: WatcherId) {
        if let Some(w) = lock(&self.shared.inner).watchers.remove(&id) {
            w.cancel.notify_one();
        }
    }

    /// The revision up to which `id` has been queued everything, or None while it catches
    /// up (or if it does not exist). Not a progress notification: queued is not sent (use
    /// [`WatchHub::request_progress`]).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn progress(&self, id: WatcherId) -> Option<i64> {
        let inner = lock(&self.shared.inner);
        let w = inner.watchers.get(&id)?;
        w.synced.then_some(inner.current_rev)
    }

    /// Queues a [`WatchUpdate::Progress`] marker behind everything already queued for a
    /// synced watcher (events are queued under the same lock that advances the current
    /// revision, so nothing at or below the marker's revision can come after it). Returns
    /// false, queuing nothing, when the watcher is catching up, gone, or its queue is
    /// full: it has no progress to report now.
    pub fn request_progress(&self, id: WatcherId, token: u64) -> bool {
        let inner = lock(&self.shared.inner);
        let Some(w) = inner.watchers.get(&id) else {
            return false;
        };
        w.synced
            && w.tx
                .try_send(WatchUpdate::Progress {
                    revision: inner.current_rev,
                    token,
                })
                .is_ok()
    }

    /// Advances lazy catch-ups (only needed where there is no tokio runtime: with one, a
    /// task does this). Never blocks on a channel.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn pump(&self) {
        let mut inner = lock(&self.shared.inner);
        let lazy: Vec<WatcherId> = inner
            .watchers
            .iter()
            .filter(|(_, w)| !w.synced && !w.task)
            .map(|(id, _)| *id)
            .collect();
        for id in lazy {
            self.lazy_catch_up(&mut inner, id);
        }
    }

    /// Number of registered watchers.
    pub fn watchers_total(&self) -> usize {
        lock(&self.shared.inner).watchers.len()
    }

    /// Starts catching `id` up: on the runtime if there is one, else one lazy step now.
    fn kick(&self, inner: &mut Inner, id: WatcherId) {
        let handle = Handle::try_current()
            .ok()
            .or_else(|| lock(&self.shared.handle).clone());
        match handle {
            Some(h) => {
                if let Some(w) = inner.watchers.get_mut(&id) {
                    w.task = true;
                }
                h.spawn(catch_up(self.shared.clone(), id));
            }
            None => self.lazy_catch_up(inner, id),
        }
    }

    /// Called by apply after revision `rev` committed with `events` (never empty).
    pub(super) fn notify(&self, rev: i64, events: Vec<HubEvent>) {
        let mut inner = lock(&self.shared.inner);
        inner.current_rev = rev;
        let mut prev_cache: Vec<Option<Option<KeyValue>>> = vec![None; events.len()];
        let mut closed = Vec::new();
        let mut fell_behind = Vec::new();
        let mut lazy = Vec::new();
        for (id, w) in inner.watchers.iter_mut() {
            if !w.synced {
                if !w.task {
                    lazy.push(*id);
                }
                continue;
            }
            if w.next_rev > rev {
                continue; // starts in the future
            }
            let mut out = Vec::new();
            for (i, he) in events.iter().enumerate() {
                if !matches(&w.spec, &he.event) {
                    continue;
                }
                let mut ev = he.event.clone();
                if w.spec.prev_kv {
                    let tree = &self.shared.tree();
                    ev.prev_kv = prev_cache[i]
                        .get_or_insert_with(|| he.prev.and_then(|p| read_kv(tree, p)))
                        .clone();
                }
                out.push(ev);
            }
            if out.is_empty() {
                w.next_rev = rev + 1;
                continue;
            }
            match w.tx.try_send(WatchUpdate::Events {
                revision: rev,
                events: out,
            }) {
                Ok(()) => w.next_rev = rev + 1,
                Err(TrySendError::Full(_)) => {
                    w.synced = false;
                    fell_behind.push(*id);
                }
                Err(TrySendError::Closed(_)) => closed.push(*id),
            }
        }
        for id in closed {
            inner.watchers.remove(&id);
        }
        for id in lazy {
            self.lazy_catch_up(&mut inner, id);
        }
        for id in fell_behind {
            self.kick(&mut inner, id);
        }
    }

    /// Compaction (or restore) is about to change history in sled.
    pub(super) fn compaction_starting(&self, compact_rev: i64) {
        let mut inner = lock(&self.shared.inner);
        inner.compact_rev = compact_rev;
        inner.epoch += 1;
    }

    /// The change announced by `compaction_starting` is done (or failed).
    pub(super) fn compaction_done(&self) {
        lock(&self.shared.inner).epoch += 1;
    }

    /// A snapshot replaced the state: every watcher that is not past `rev` replays history.
    pub(super) fn restored(&self, rev: i64, compact_rev: i64) {
        let mut inner = lock(&self.shared.inner);
        inner.current_rev = rev;
        inner.compact_rev = compact_rev;
        inner.epoch += 1;
        let behind: Vec<WatcherId> = inner
            .watchers
            .iter_mut()
            .filter(|(_, w)| w.synced && w.next_rev <= rev)
            .map(|(id, w)| {
                w.synced = false;
                *id
            })
            .collect();
        for id in behind {
            self.kick(&mut inner, id);
        }
    }

    /// Catch-up without a runtime: bounded steps of history, sent with `try_send` only.
    fn lazy_catch_up(&self, inner: &mut Inner, id: WatcherId) {
        for _ in 0..LAZY_STEPS_PER_CALL {
            let (compact, current) = (inner.compact_rev, inner.current_rev);
            let Some(w) = inner.watchers.get_mut(&id) else {
                return;
            };
            if w.next_rev < compact {
                match w.tx.try_send(WatchUpdate::Compacted {
                    compact_revision: compact,
                }) {
                    Ok(()) | Err(TrySendError::Closed(_)) => {
                        inner.watchers.remove(&id);
                    }
                    Err(TrySendError::Full(_)) => {}
                }
                return;
            }
            if w.next_rev > current {
                w.synced = true;
                return;
            }
            let to = current.min(w.next_rev + CATCH_UP_REVISIONS_PER_STEP - 1);
            let Ok(updates) = read_history(&self.shared.tree(), &w.spec, w.next_rev, to) else {
                return; // storage trouble: apply will report it; retry on the next call
            };
            for u in updates {
                let WatchUpdate::Events { revision, .. } = &u else {
                    continue;
                };
                let revision = *revision;
                match w.tx.try_send(u) {
                    Ok(()) => w.next_rev = revision + 1,
                    Err(TrySendError::Full(_)) => return,
                    Err(TrySendError::Closed(_)) => {
                        inner.watchers.remove(&id);
                        return;
                    }
                }
            }
            w.next_rev = to + 1;
        }
    }
}

/// The catch-up task of one watcher: replays history, then hands the watcher back to apply.
async fn catch_up(shared: Arc<Shared>, id: WatcherId) {
    enum Step {
        Done,
        Compacted(Watcher, i64),
        Read(
            i64,
            i64,
            u64,
            Arc<WatchSpec>,
            Sender<WatchUpdate>,
            Arc<Notify>,
        ),
    }
    loop {
        let step = {
            let mut inner = lock(&shared.inner);
            let (compact, current, epoch) = (inner.compact_rev, inner.current_rev, inner.epoch);
            match inner.watchers.get_mut(&id) {
                None => Step::Done,
                Some(w) if w.next_rev < compact => match inner.watchers.remove(&id) {
                    Some(w) => Step::Compacted(w, compact),
                    None => Step::Done,
                },
                Some(w) if w.next_rev > current => {
                    w.synced = true;
                    w.task = false;
                    Step::Done
                }
                Some(w) => {
                    let to = current.min(w.next_rev + CATCH_UP_REVISIONS_PER_STEP - 1);
                    Step::Read(
                        w.next_rev,
                        to,
                        epoch,
                        w.spec.clone(),
                        w.tx.clone(),
                        w.cancel.clone(),
                    )
                }
            }
        };
        let (from, to, epoch, spec, tx, cancel) = match step {
            Step::Done => return,
            Step::Compacted(w, compact) => {
                let update = WatchUpdate::Compacted {
                    compact_revision: compact,
                };
                tokio::select! {
                    biased;
                    _ = w.tx.send(update) => {}
                    _ = w.cancel.notified() => {}
                }
                return;
            }
            Step::Read(from, to, epoch, spec, tx, cancel) => (from, to, epoch, spec, tx, cancel),
        };
        let updates = match read_history(&shared.tree(), &spec, from, to) {
            Ok(u) => u,
            Err(_) => {
                // Storage trouble (apply reports it as fatal); back off and retry.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if lock(&shared.inner).epoch != epoch {
            continue; // compaction or restore raced with the read
        }
        for u in merge_revisions(updates) {
            let WatchUpdate::Events { revision, .. } = &u else {
                continue;
            };
            let revision = *revision;
            tokio::select! {
                    biased;
                sent = tx.send(u) => {
                    if sent.is_err() {
                        lock(&shared.inner).watchers.remove(&id);
                        return;
                    }
                }
                _ = cancel.notified() => return,
            }
            match lock(&shared.inner).watchers.get_mut(&id) {
                Some(w) => w.next_rev = revision + 1,
                None => return,
            }
        }
        match lock(&shared.inner).watchers.get_mut(&id) {
            Some(w) => w.next_rev = w.next_rev.max(to + 1),
            None => return,
        }
    }
}

/// Merges consecutive whole revisions into updates of at most [`CATCH_UP_BATCH_BYTES`]
/// of keys and values (a revision larger than that travels alone).
fn merge_revisions(updates: Vec<WatchUpdate>) -> Vec<WatchUpdate> {
    fn bytes(events: &[Event]) -> usize {
        events
            .iter()
            .map(|e| {
                let kv = e.kv.as_ref().map_or(0, |kv| kv.key.len() + kv.value.len());
                let prev = e
                    .prev_kv
                    .as_ref()
                    .map_or(0, |kv| kv.key.len() + kv.value.len());
                kv + prev
            })
            .sum()
    }
    let mut out: Vec<WatchUpdate> = Vec::new();
    let mut size = 0usize;
    for u in updates {
        let WatchUpdate::Events { revision, events } = u else {
            out.push(u);
            size = 0;
            continue;
        };
        let len = bytes(&events);
        match out.last_mut() {
            Some(WatchUpdate::Events {
                revision: last,
                events: merged,
            }) if size + len <= CATCH_UP_BATCH_BYTES => {
                *last = revision;
                merged.extend(events);
                size += len;
            }
            _ => {
                out.push(WatchUpdate::Events { revision, events });
                size = len;
            }
        }
    }
    out
}

fn matches(spec: &WatchSpec, ev: &Event) -> bool {
    let is_put = ev.r#type == EventType::Put as i32;
    if (is_put && spec.no_put) || (!is_put && spec.no_delete) {
        return false;
    }
    ev.kv
        .as_ref()
        .is_some_and(|kv| in_range(&kv.key, &spec.key, &spec.range_end))
}

fn read_kv(tree: &sled::Tree, rev: Rev) -> Option<KeyValue> {
    let b = tree.get(codec::rev_key(rev)).ok()??;
    Record::decode(&b).ok().map(|r| r.kv)
}

/// The updates `spec` gets for revisions `from..=to`, read from sled.
fn read_history(
    tree: &sled::Tree,
    spec: &WatchSpec,
    from: i64,
    to: i64,
) -> Result<Vec<WatchUpdate>, StateError> {
    let lo = codec::rev_key(Rev::new(from, 0));
    let hi = codec::rev_key(Rev::new(to + 1, 0));
    let mut out: Vec<WatchUpdate> = Vec::new();
    for item in tree.range(lo..hi) {
        let (k, v) = item?;
        let rev = codec::decode_rev_key(&k)?;
        let rec = Record::decode(&v)?;
        let ev = Event {
            r#type: if rec.tombstone {
                EventType::Delete
            } else {
                EventType::Put
            } as i32,
            kv: Some(rec.kv),
            prev_kv: None,
        };
        if !matches(spec, &ev) {
            continue;
        }
        let mut ev = ev;
        if spec.prev_kv {
            ev.prev_kv = rec.prev.and_then(|p| read_kv(tree, p));
        }
        match out.last_mut() {
            Some(WatchUpdate::Events { revision, events }) if *revision == rev.main => {
                events.push(ev)
            }
            _ => out.push(WatchUpdate::Events {
                revision: rev.main,
                events: vec![ev],
            }),
        }
    }
    Ok(out)
}
