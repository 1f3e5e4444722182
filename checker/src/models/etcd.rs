//! etcd's key-value API as a revision-aware sequential model.
//!
//! Covered: range (single key, `[key, range_end)`, or everything from `key` with `range_end = "\0"`; at
//! a past revision; with limit and count-only), put (optionally with a lease), delete, txn (compares on
//! value, version, create and mod revision; put, delete and range operations), lease grant and revoke
//! (revoke deletes the attached keys), and compaction. Leases never expire on their own here: a test that
//! lets a lease expire must revoke it explicitly in the history.
//!
//! Every response carries the header revision, so an applied write is visible through the revision of
//! every later response; [`Model::progress_bound`] uses that to prune. Errors (`compacted`, `future revision`,
//! `lease not found`) are definite responses with no effect.
//!
//! Deviation, documented: etcd rejects a txn that writes one key twice; the model applies such a txn
//! sequentially instead. Ranges inside a txn see the txn's earlier writes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::hash::FxHasher;
use crate::history::{Operation, Outcome};
use crate::model::{Applied, Model};

/// The value [`Model::rewrite_unknown`] gives unknown puts whose value nobody can observe.
pub const UNOBSERVED_VALUE: &str = "\u{0}unobserved";

/// `range_end` meaning "every key from `key` on", as in etcd.
pub const RANGE_END_ALL: &str = "\0";

/// A range request (the read part of etcd's `RangeRequest`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RangeRequest {
    /// First key.
    pub key: String,
    /// `None`: only `key`; `Some("\0")`: every key from `key`; `Some(end)`: `[key, end)`.
    #[serde(default)]
    pub range_end: Option<String>,
    /// Read at this revision; 0 = current.
    #[serde(default)]
    pub revision: i64,
    /// At most this many keys; 0 = no limit.
    #[serde(default)]
    pub limit: i64,
    /// Return only the count.
    #[serde(default)]
    pub count_only: bool,
}

/// A write or read inside a txn.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnOp {
    /// A range at the txn's current state (its `revision` must be 0).
    Range(RangeRequest),
    /// A put.
    Put {
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Lease to attach, 0 = none.
        #[serde(default)]
        lease: i64,
    },
    /// A delete of `key` or of `[key, range_end)`.
    Delete {
        /// Key.
        key: String,
        /// As in [`RangeRequest::range_end`].
        #[serde(default)]
        range_end: Option<String>,
    },
}

/// What a txn compare looks at.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareTarget {
    /// The value (a missing key never compares true, as in etcd).
    Value(String),
    /// The version (0 for a missing key).
    Version(i64),
    /// The create revision (0 for a missing key).
    Create(i64),
    /// The mod revision (0 for a missing key).
    Mod(i64),
}

/// The comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareResult {
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// actual `<` target
    Less,
    /// actual `>` target
    Greater,
}

/// One txn guard.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Compare {
    /// Key compared.
    pub key: String,
    /// Field and target value.
    pub target: CompareTarget,
    /// Comparison.
    pub result: CompareResult,
}

/// An etcd request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EtcdRequest {
    /// Range.
    Range(RangeRequest),
    /// Put.
    Put {
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Lease, 0 = none.
        #[serde(default)]
        lease: i64,
    },
    /// Delete range.
    Delete {
        /// Key.
        key: String,
        /// As in [`RangeRequest::range_end`].
        #[serde(default)]
        range_end: Option<String>,
    },
    /// Txn: if every compare holds, `success`, else `failure`.
    Txn {
        /// Guards.
        compare: Vec<Compare>,
        /// Ops when all guards hold.
        success: Vec<TxnOp>,
        /// Ops otherwise.
        failure: Vec<TxnOp>,
    },
    /// Grant a lease with a client-chosen id.
    LeaseGrant {
        /// Lease id (non-zero).
        id: i64,
    },
    /// Revoke a lease, deleting its keys.
    LeaseRevoke {
        /// Lease id.
        id: i64,
    },
    /// Compact history up to `revision`.
    Compact {
        /// Revision.
        revision: i64,
    },
}

/// A stored key, as returned by range.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyValue {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
    /// Revision of the put that created the key (since its last delete).
    pub create_revision: i64,
    /// Revision of the last put.
    pub mod_revision: i64,
    /// Puts since creation.
    pub version: i64,
    /// Attached lease, 0 = none.
    #[serde(default)]
    pub lease: i64,
}

/// A range result.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RangeResult {
    /// Keys in key order (empty for count-only).
    pub kvs: Vec<KeyValue>,
    /// Number of keys in the range.
    pub count: i64,
    /// More keys than `limit`.
    pub more: bool,
}

/// A response inside a txn.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnOpResponse {
    /// Range.
    Range(RangeResult),
    /// Put.
    Put,
    /// Delete: keys removed.
    Delete {
        /// Keys removed.
        deleted: i64,
    },
}

/// A definite error response (no effect).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EtcdError {
    /// The requested revision is compacted.
    Compacted,
    /// The requested revision is in the future.
    FutureRevision,
    /// The lease does not exist.
    LeaseNotFound,
    /// The lease id is taken.
    LeaseExists,
}

/// An etcd response; `revision` is the header revision.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EtcdResponse {
    /// Range.
    Range {
        /// Result.
        result: RangeResult,
        /// Header revision.
        revision: i64,
    },
    /// Put.
    Put {
        /// Header revision.
        revision: i64,
    },
    /// Delete.
    Delete {
        /// Keys removed.
        deleted: i64,
        /// Header revision.
        revision: i64,
    },
    /// Txn.
    Txn {
        /// Whether the guards held.
        succeeded: bool,
        /// One per op of the chosen branch.
        responses: Vec<TxnOpResponse>,
        /// Header revision.
        revision: i64,
    },
    /// Lease granted.
    LeaseGrant {
        /// Header revision.
        revision: i64,
    },
    /// Lease revoked.
    LeaseRevoke {
        /// Header revision.
        revision: i64,
    },
    /// Compaction done.
    Compact {
        /// Header revision.
        revision: i64,
    },
    /// Error, no effect.
    Error(EtcdError),
}

impl EtcdResponse {
    /// The header revision, if the response has one.
    pub fn revision(&self) -> Option<i64> {
        match self {
            EtcdResponse::Range { revision, .. }
            | EtcdResponse::Put { revision }
            | EtcdResponse::Delete { revision, .. }
            | EtcdResponse::Txn { revision, .. }
            | EtcdResponse::LeaseGrant { revision }
            | EtcdResponse::LeaseRevoke { revision }
            | EtcdResponse::Compact { revision } => Some(*revision),
            EtcdResponse::Error(_) => None,
        }
    }
}

/// A key's current record inside the state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    value: Arc<str>,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    lease: i64,
}

/// One revision's undo information: each changed key's record before the revision, in change order.
#[derive(Debug)]
struct LogNode {
    revision: i64,
    undo: Vec<(Arc<str>, Option<Record>)>,
    parent: Option<Arc<LogNode>>,
    chain_hash: u64,
}

/// The write history since the beginning, newest first, shared between states (a persistent list).
#[derive(Clone, Debug, Default)]
struct Log(Option<Arc<LogNode>>);

impl PartialEq for Log {
    fn eq(&self, other: &Self) -> bool {
        let (mut a, mut b) = (&self.0, &other.0);
        loop {
            match (a, b) {
                (None, None) => return true,
                (Some(x), Some(y)) => {
                    if Arc::ptr_eq(x, y) {
                        return true;
                    }
                    if x.chain_hash != y.chain_hash || x.revision != y.revision || x.undo != y.undo
                    {
                        return false;
                    }
                    a = &x.parent;
                    b = &y.parent;
                }
                _ => return false,
            }
        }
    }
}
impl Eq for Log {}
impl Hash for Log {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.as_ref().map_or(0, |n| n.chain_hash));
    }
}

/// The model state: the current keys, leases, revisions and the undo log for reads at past revisions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EtcdState {
    revision: i64,
    compact_revision: i64,
    kvs: BTreeMap<Arc<str>, Record>,
    leases: BTreeMap<i64, BTreeSet<Arc<str>>>,
    log: Log,
}

impl EtcdState {
    /// The current revision.
    pub fn revision(&self) -> i64 {
        self.revision
    }
}

/// Whether `key` is in the range `start`, `end` (as in [`RangeRequest::range_end`]).
pub fn in_range(key: &str, start: &str, end: Option<&str>) -> bool {
    match end {
        None => key == start,
        Some(RANGE_END_ALL) => key >= start,
        Some(end) => key >= start && key < end,
    }
}

fn keys_in<'a>(
    kvs: &'a BTreeMap<Arc<str>, Record>,
    start: &'a str,
    end: Option<&'a str>,
) -> impl Iterator<Item = (&'a Arc<str>, &'a Record)> + 'a {
    kvs.range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
        .take_while(move |(k, _)| in_range(k, start, end))
}

/// A write in progress: the state being changed and the undo entries of the new revision.
struct Writer {
    state: EtcdState,
    undo: Vec<(Arc<str>, Option<Record>)>,
}

impl Writer {
    fn new(state: &EtcdState) -> Self {
        Self {
            state: state.clone(),
            undo: Vec::new(),
        }
    }
    fn next_revision(&self) -> i64 {
        self.state.revision + 1
    }
    fn put(&mut self, key: &str, value: &str, lease: i64) {
        let rev = self.next_revision();
        let key: Arc<str> = Arc::from(key);
        let prev = self.state.kvs.get(&key).cloned();
        if let Some(p) = &prev {
            if p.lease != 0 {
                if let Some(keys) = self.state.leases.get_mut(&p.lease) {
                    keys.remove(&key);
                }
            }
        }
        if lease != 0 {
            if let Some(keys) = self.state.leases.get_mut(&lease) {
                keys.insert(key.clone());
            }
        }
        let record = Record {
            value: Arc::from(value),
            create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            lease,
        };
        self.state.kvs.insert(key.clone(), record);
        self.undo.push((key, prev));
    }
    fn delete(&mut self, start: &str, end: Option<&str>) -> i64 {
        let doomed: Vec<Arc<str>> = keys_in(&self.state.kvs, start, end)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &doomed {
            if let Some(prev) = self.state.kvs.remove(key) {
                if prev.lease != 0 {
                    if let Some(keys) = self.state.leases.get_mut(&prev.lease) {
                        keys.remove(key);
                    }
                }
                self.undo.push((key.clone(), Some(prev)));
            }
        }
        doomed.len() as i64
    }
    fn lease_exists(&self, lease: i64) -> bool {
        lease == 0 || self.state.leases.contains_key(&lease)
    }
    /// Ends the write: bumps the revision and logs the undo entries if anything changed.
    fn finish(mut self) -> EtcdState {
        if self.undo.is_empty() {
            return self.state;
        }
        let revision = self.next_revision();
        let parent = self.state.log.0.take();
        let mut h = FxHasher::default();
        parent.as_ref().map_or(0, |p| p.chain_hash).hash(&mut h);
        revision.hash(&mut h);
        self.undo.hash(&mut h);
        let chain_hash = h.finish();
        self.state.log = Log(Some(Arc::new(LogNode {
            revision,
            undo: self.undo,
            parent,
            chain_hash,
        })));
        self.state.revision = revision;
        self.state
    }
}

fn to_kv(key: &Arc<str>, r: &Record) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: r.value.to_string(),
        create_revision: r.create_revision,
        mod_revision: r.mod_revision,
        version: r.version,
        lease: r.lease,
    }
}

/// Evaluates a range at the state's current revision or, walking the undo log, at a past one.
fn range(state: &EtcdState, req: &RangeRequest) -> Result<RangeResult, EtcdError> {
    if req.revision > state.revision {
        return Err(EtcdError::FutureRevision);
    }
    if req.revision > 0 && req.revision < state.compact_revision {
        return Err(EtcdError::Compacted);
    }
    let end = req.range_end.as_deref();
    let mut view: BTreeMap<Arc<str>, Record> = keys_in(&state.kvs, &req.key, end)
        .map(|(k, r)| (k.clone(), r.clone()))
        .collect();
    if req.revision > 0 {
        let mut node = state.log.0.as_ref();
        while let Some(n) = node {
            if n.revision <= req.revision {
                break;
            }
            for (key, prev) in n.undo.iter().rev() {
                if in_range(key, &req.key, end) {
                    match prev {
                        Some(r) => view.insert(key.clone(), r.clone()),
                        None => view.remove(key),
                    };
                }
            }
            node = n.parent.as_ref();
        }
    }
    let count = view.len() as i64;
    if req.count_only {
        return Ok(RangeResult {
            kvs: Vec::new(),
            count,
            more: false,
        });
    }
    let limit = if req.limit > 0 {
        req.limit as usize
    } else {
        usize::MAX
    };
    let kvs: Vec<KeyValue> = view.iter().take(limit).map(|(k, r)| to_kv(k, r)).collect();
    let more = (kvs.len() as i64) < count;
    Ok(RangeResult { kvs, count, more })
}

fn compare_holds(state: &EtcdState, c: &Compare) -> bool {
    let record = state.kvs.get(c.key.as_str());
    let ord = match (&c.target, record) {
        (CompareTarget::Value(_), None) => return false,
        (CompareTarget::Value(v), Some(r)) => r.value.as_ref().cmp(v.as_str()),
        (CompareTarget::Version(v), r) => r.map_or(0, |r| r.version).cmp(v),
        (CompareTarget::Create(v), r) => r.map_or(0, |r| r.create_revision).cmp(v),
        (CompareTarget::Mod(v), r) => r.map_or(0, |r| r.mod_revision).cmp(v),
    };
    match c.result {
        CompareResult::Equal => ord.is_eq(),
        CompareResult::NotEqual => ord.is_ne(),
        CompareResult::Less => ord.is_lt(),
        CompareResult::Greater => ord.is_gt(),
    }
}

/// Applies a request: the state after it and the response etcd gives. Deterministic.
pub fn apply(state: &EtcdState, req: &EtcdRequest) -> (EtcdState, EtcdResponse) {
    match req {
        EtcdRequest::Range(r) => match range(state, r) {
            Ok(result) => (
                state.clone(),
                EtcdResponse::Range {
                    result,
                    revision: state.revision,
                },
            ),
            Err(e) => (state.clone(), EtcdResponse::Error(e)),
        },
        EtcdRequest::Put { key, value, lease } => {
            let mut w = Writer::new(state);
            if !w.lease_exists(*lease) {
                return (state.clone(), EtcdResponse::Error(EtcdError::LeaseNotFound));
            }
            w.put(key, value, *lease);
            let s = w.finish();
            let revision = s.revision;
            (s, EtcdResponse::Put { revision })
        }
        EtcdRequest::Delete { key, range_end } => {
            let mut w = Writer::new(state);
            let deleted = w.delete(key, range_end.as_deref());
            let s = w.finish();
            let revision = s.revision;
            (s, EtcdResponse::Delete { deleted, revision })
        }
        EtcdRequest::Txn {
            compare,
            success,
            failure,
        } => {
            let succeeded = compare.iter().all(|c| compare_holds(state, c));
            let ops = if succeeded { success } else { failure };
            let mut w = Writer::new(state);
            let mut responses = Vec::with_capacity(ops.len());
            for op in ops {
                match op {
                    TxnOp::Range(r) => {
                        let mut r = r.clone();
                        r.revision = 0;
                        match range(&w.state, &r) {
                            Ok(result) => responses.push(TxnOpResponse::Range(result)),
                            Err(e) => return (state.clone(), EtcdResponse::Error(e)),
                        }
                    }
                    TxnOp::Put { key, value, lease } => {
                        if !w.lease_exists(*lease) {
                            return (state.clone(), EtcdResponse::Error(EtcdError::LeaseNotFound));
                        }
                        w.put(key, value, *lease);
                        responses.push(TxnOpResponse::Put);
                    }
                    TxnOp::Delete { key, range_end } => {
                        let deleted = w.delete(key, range_end.as_deref());
                        responses.push(TxnOpResponse::Delete { deleted });
                    }
                }
            }
            let s = w.finish();
            let revision = s.revision;
            (
                s,
                EtcdResponse::Txn {
                    succeeded,
                    responses,
                    revision,
                },
            )
        }
        EtcdRequest::LeaseGrant { id } => {
            if *id == 0 || state.leases.contains_key(id) {
                return (state.clone(), EtcdResponse::Error(EtcdError::LeaseExists));
            }
            let mut s = state.clone();
            s.leases.insert(*id, BTreeSet::new());
            let revision = s.revision;
            (s, EtcdResponse::LeaseGrant { revision })
        }
        EtcdRequest::LeaseRevoke { id } => {
            let Some(keys) = state.leases.get(id) else {
                return (state.clone(), EtcdResponse::Error(EtcdError::LeaseNotFound));
            };
            let keys: Vec<Arc<str>> = keys.iter().cloned().collect();
            let mut w = Writer::new(state);
            for key in &keys {
                w.delete(key, None);
            }
            let mut s = w.finish();
            s.leases.remove(id);
            let revision = s.revision;
            (s, EtcdResponse::LeaseRevoke { revision })
        }
        EtcdRequest::Compact { revision } => {
            if *revision <= state.compact_revision {
                return (state.clone(), EtcdResponse::Error(EtcdError::Compacted));
            }
            if *revision > state.revision {
                return (
                    state.clone(),
                    EtcdResponse::Error(EtcdError::FutureRevision),
                );
            }
            let mut s = state.clone();
            s.compact_revision = *revision;
            (
                s,
                EtcdResponse::Compact {
                    revision: state.revision,
                },
            )
        }
    }
}

fn puts_of(req: &EtcdRequest) -> Vec<(&str, &str)> {
    match req {
        EtcdRequest::Put { key, value, .. } => vec![(key.as_str(), value.as_str())],
        EtcdRequest::Txn {
            success, failure, ..
        } => success
            .iter()
            .chain(failure)
            .filter_map(|op| match op {
                TxnOp::Put { key, value, .. } => Some((key.as_str(), value.as_str())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn kvs_of(response: &EtcdResponse) -> Vec<&KeyValue> {
    match response {
        EtcdResponse::Range { result, .. } => result.kvs.iter().collect(),
        EtcdResponse::Txn { responses, .. } => responses
            .iter()
            .flat_map(|r| match r {
                TxnOpResponse::Range(result) => result.kvs.iter().collect(),
                _ => Vec::new(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn mentions_lease(req: &EtcdRequest, id: i64) -> bool {
    let op_mentions = |op: &TxnOp| matches!(op, TxnOp::Put { lease, .. } if *lease == id);
    match req {
        EtcdRequest::Put { lease, .. } => *lease == id,
        EtcdRequest::LeaseGrant { id: other } | EtcdRequest::LeaseRevoke { id: other } => {
            *other == id
        }
        EtcdRequest::Txn {
            success, failure, ..
        } => success.iter().chain(failure).any(op_mentions),
        EtcdRequest::Range(_) | EtcdRequest::Delete { .. } | EtcdRequest::Compact { .. } => false,
    }
}

/// The etcd model. Not partitioned: the revision is global and txns span keys.
#[derive(Clone, Copy, Debug, Default)]
pub struct EtcdModel;

impl Model for EtcdModel {
    type Input = EtcdRequest;
    type Output = EtcdResponse;
    type State = EtcdState;

    fn init(&self) -> EtcdState {
        EtcdState {
            revision: 1,
            compact_revision: 0,
            kvs: BTreeMap::new(),
            leases: BTreeMap::new(),
            log: Log(None),
        }
    }

    fn step(
        &self,
        state: &EtcdState,
        input: &EtcdRequest,
        output: Option<&EtcdResponse>,
        next: &mut Vec<EtcdState>,
    ) {
        let (after, response) = apply(state, input);
        if output.is_none_or(|o| *o == response) {
            next.push(after);
        }
    }

    fn is_read_only(&self, input: &EtcdRequest) -> bool {
        match input {
            EtcdRequest::Range(_) => true,
            EtcdRequest::Txn {
                success, failure, ..
            } => success
                .iter()
                .chain(failure)
                .all(|op| matches!(op, TxnOp::Range(_))),
            _ => false,
        }
    }

    fn progress(&self, state: &EtcdState) -> Option<u64> {
        Some(state.revision as u64)
    }

    /// The response's header revision, minus one when the response proves the request wrote (a write
    /// must start one revision earlier than the revision it reports).
    fn progress_bound(&self, input: &EtcdRequest, output: &EtcdResponse) -> Option<u64> {
        let wrote = match (input, output) {
            (EtcdRequest::Put { .. }, EtcdResponse::Put { .. }) => true,
            (EtcdRequest::Delete { .. }, EtcdResponse::Delete { deleted, .. }) => *deleted > 0,
            (
                EtcdRequest::Txn {
                    success, failure, ..
                },
                EtcdResponse::Txn {
                    succeeded,
                    responses,
                    ..
                },
            ) => {
                let ops = if *succeeded { success } else { failure };
                ops.iter().any(|op| matches!(op, TxnOp::Put { .. }))
                    || responses
                        .iter()
                        .any(|r| matches!(r, TxnOpResponse::Delete { deleted } if *deleted > 0))
            }
            _ => false,
        };
        output
            .revision()
            .map(|r| (r - i64::from(wrote)).max(0) as u64)
    }

    /// An unknown put (alone or in a txn) whose key and value no other request writes, and which a later
    /// response shows, took effect before that response returned, in the state one revision before the
    /// mod revision shown.
    fn infer_applied(
        &self,
        history: &[Operation<EtcdRequest, EtcdResponse>],
    ) -> Vec<Option<Applied>> {
        let mut writers: HashMap<(&str, &str), (usize, usize)> = HashMap::new();
        for (i, op) in history.iter().enumerate() {
            if matches!(op.outcome, Outcome::Failed) {
                continue;
            }
            for (key, value) in puts_of(&op.input) {
                let e = writers.entry((key, value)).or_insert((i, 0));
                e.1 += 1;
            }
        }
        let mut applied: Vec<Option<Applied>> = vec![None; history.len()];
        for op in history {
            let Outcome::Ok(response) = &op.outcome else {
                continue;
            };
            for kv in kvs_of(response) {
                let Some(&(w, 1)) = writers.get(&(kv.key.as_str(), kv.value.as_str())) else {
                    continue;
                };
                if !matches!(history[w].outcome, Outcome::Unknown) {
                    continue;
                }
                let evidence = Applied {
                    by_ns: op.return_ns,
                    progress_bound: Some((kv.mod_revision - 1).max(0) as u64),
                };
                applied[w] = Some(match applied[w] {
                    Some(a) if a.by_ns <= evidence.by_ns => a,
                    _ => evidence,
                });
            }
        }
        applied
    }

    /// An unknown put's value that no response shows and no compare mentions (on a key never compared
    /// by value order) is replaced by [`UNOBSERVED_VALUE`]: every response of every linearization is the
    /// same either way, and unknown puts of one key become interchangeable.
    fn rewrite_unknown(
        &self,
        history: &[Operation<EtcdRequest, EtcdResponse>],
    ) -> Vec<Option<EtcdRequest>> {
        let mut visible: HashSet<(&str, &str)> = HashSet::new();
        let mut ordered_keys: HashSet<&str> = HashSet::new();
        for op in history {
            if puts_of(&op.input)
                .iter()
                .any(|&(_, v)| v == UNOBSERVED_VALUE)
            {
                return Vec::new();
            }
            if let EtcdRequest::Txn { compare, .. } = &op.input {
                for c in compare {
                    if let CompareTarget::Value(v) = &c.target {
                        visible.insert((c.key.as_str(), v.as_str()));
                        if matches!(c.result, CompareResult::Less | CompareResult::Greater) {
                            ordered_keys.insert(c.key.as_str());
                        }
                    }
                }
            }
            if let Outcome::Ok(response) = &op.outcome {
                for kv in kvs_of(response) {
                    visible.insert((kv.key.as_str(), kv.value.as_str()));
                }
            }
        }
        let hidden = |key: &str, value: &str| {
            !visible.contains(&(key, value)) && !ordered_keys.contains(key)
        };
        history
            .iter()
            .map(|op| {
                if !matches!(op.outcome, Outcome::Unknown) {
                    return None;
                }
                match &op.input {
                    EtcdRequest::Put { key, value, lease } if hidden(key, value) => {
                        Some(EtcdRequest::Put {
                            key: key.clone(),
                            value: UNOBSERVED_VALUE.to_string(),
                            lease: *lease,
                        })
                    }
                    EtcdRequest::Txn {
                        compare,
                        success,
                        failure,
                    } => {
                        let hide = |ops: &Vec<TxnOp>| -> Vec<TxnOp> {
                            ops.iter()
                                .map(|op| match op {
                                    TxnOp::Put { key, value, lease } if hidden(key, value) => {
                                        TxnOp::Put {
                                            key: key.clone(),
                                            value: UNOBSERVED_VALUE.to_string(),
                                            lease: *lease,
                                        }
                                    }
                                    other => other.clone(),
                                })
                                .collect()
                        };
                        let rewritten = EtcdRequest::Txn {
                            compare: compare.clone(),
                            success: hide(success),
                            failure: hide(failure),
                        };
                        (rewritten != op.input).then_some(rewritten)
                    }
                    _ => None,
                }
            })
            .collect()
    }

    fn may_commute(&self, unknown: &EtcdRequest) -> bool {
        matches!(
            unknown,
            EtcdRequest::LeaseGrant { .. }
                | EtcdRequest::LeaseRevoke { .. }
                | EtcdRequest::Compact { .. }
        )
    }

    /// Revision-neutral requests commute with everything that cannot observe them: a lease grant or an
    /// empty lease's revoke with requests not naming the lease, a compaction (at or below the current
    /// revision, so later writes cannot change its validity) with requests that read no past revision.
    fn commutes(&self, state: &EtcdState, unknown: &EtcdRequest, other: &EtcdRequest) -> bool {
        match unknown {
            EtcdRequest::LeaseGrant { id } => !mentions_lease(other, *id),
            EtcdRequest::LeaseRevoke { id } => {
                state.leases.get(id).is_none_or(BTreeSet::is_empty) && !mentions_lease(other, *id)
            }
            EtcdRequest::Compact { revision } => {
                *revision <= state.revision
                    && match other {
                        EtcdRequest::Range(r) => r.revision == 0,
                        EtcdRequest::Compact { .. } => false,
                        _ => true,
                    }
            }
            _ => false,
        }
    }

    fn describe_operation(&self, input: &EtcdRequest, output: Option<&EtcdResponse>) -> String {
        let req = serde_json::to_string(input).unwrap_or_default();
        match output {
            Some(o) => format!("{req} -> {}", serde_json::to_string(o).unwrap_or_default()),
            None => format!("{req} -> ?"),
        }
    }

    fn describe_state(&self, state: &EtcdState) -> String {
        let kvs: Vec<String> = state
            .kvs
            .iter()
            .map(|(k, r)| {
                format!(
                    "{k}={} (c{} m{} v{})",
                    r.value, r.create_revision, r.mod_revision, r.version
                )
            })
            .collect();
        format!(
            "rev {} compact {} {{{}}}",
            state.revision,
            state.compact_revision,
            kvs.join(", ")
        )
    }
}
