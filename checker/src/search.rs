//! The linearizability search: Wing & Gong's algorithm with Lowe's just-in-time linearization and memo
//! cache, as in porcupine, plus P-compositionality and unknown outcomes.
//!
//! # Worked example
//!
//! A register, three clients, time flowing right (`[` call, `]` return):
//!
//! ```text
//! A: [--- write(1) ---]
//! B:    [-- read()->1 --]
//! C:                         [- read()->0 -]
//! ```
//!
//! The events, in time order, form a doubly linked list `head -> Ac Bc Ar Br Cc Cr`. The search keeps a
//! cursor into that list and a stack of linearized operations:
//!
//! 1. Cursor at `Ac` (a call): try `write(1)` in state 0 -> state 1. Key `({A}, 1)` is new: remember it,
//!    push A, *lift* `Ac` and `Ar` out of the list (O(1), their neighbours are kept in the entries), and
//!    restart at the head. List: `Bc Br Cc Cr`.
//! 2. Cursor at `Bc`: `read()->1` in state 1 is legal -> push B, lift. List: `Cc Cr`.
//! 3. Cursor at `Cc`: `read()->0` in state 1 is illegal; move right to `Cr`. A *return* whose call is
//!    still in the list means C must have taken effect before now and cannot: backtrack. Pop B, *unlift*
//!    `Bc Br` (O(1), reverse order of lifting), state 1, and continue right of `Bc`: `Br` is a return ->
//!    backtrack again: pop A, state 0, continue right of `Ac`: `Bc`.
//! 4. `read()->1` in state 0 is illegal; next is `Ar`, a return: the stack is empty, nothing is left to
//!    try, and the history is not linearizable. The longest prefix found was `A B`, and C is the operation
//!    that could not be placed after it.
//!
//! Had C's read returned 1, step 3 would have emptied the list: linearizable, with order `A B C`.
//!
//! The memo cache stops re-exploration: two search paths that linearized the same *set* of operations
//! and reached the same *state* have the same future, so the second is cut. The state is interned
//! (stored once, referred to by a `u32`), and the set is stored compactly (see `Cache`: a
//! base index plus a few words of window instead of an n-bit set).
//!
//! # Unknown outcomes
//!
//! An operation whose outcome is unknown may take effect at any time after its call, or never. Its
//! return is therefore at +infinity; "never" is the same as "after everything else", which the search
//! never needs to spell out: it succeeds as soon as every *answered* operation is linearized. Unknown
//! operations live in a second list, ordered by call, and are tried only after the answered candidates
//! (those called before the first pending return), only if they were called before that return, and
//! newest first (the likeliest to have just taken effect). An
//! unknown read-only operation constrains nothing and is dropped up front ([`Model::is_read_only`]); an
//! unknown operation whose step leaves the state unchanged is not applied (leaving it pending keeps
//! strictly more options); and of several pending unknown operations with equal inputs only the earliest
//! is tried (they are interchangeable; [`Model::rewrite_unknown`] makes more of them equal by erasing
//! what no response can observe, such as an etcd put's never-read value). Finally, an unknown operation that commutes
//! ([`Model::commutes`]) with every other candidate at a node is not tried there: any linearization that
//! places it first can place the next operation first instead and it right after, which the search
//! reaches through that operation. Without this, an unknown revision-neutral request (an etcd lease
//! grant) would be tried at every level of every failing subtree, doubling it.
//!
//! # Reads first
//!
//! An answered read-only operation ([`Model::is_read_only`]) that can be linearized at a node can be
//! linearized there in *some* linearization if any exists: moving it forward from its place in a
//! linearization changes no state and no other operation's eligibility. So once its subtree fails, the
//! node fails too and its other candidates are not tried. This removes the 2^k orders of k concurrent
//! reads that the memo cache would otherwise see as distinct sets.
//!
//! # Progress pruning
//!
//! A model may expose a monotone progress measure ([`Model::progress`], etcd: the revision) and, per
//! answered operation, the largest progress it tolerates ([`Model::progress_bound`], etcd: its response
//! revision). A segment tree keeps the minimum bound over the operations not yet linearized; a step to a
//! state beyond it is abandoned at once. This cuts wrong orders of concurrent writes immediately, and
//! keeps a pile of never-applied unknown writes from multiplying the search.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hashbrown::HashTable;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::hash::{hash_one, hash_words};
use crate::history::{validate, HistoryError, Operation, Outcome};
use crate::model::{Applied, Model};

/// Iterations of the search loop between two looks at the deadline and the cancellation flag (a power
/// of two).
pub const CANCEL_CHECK_INTERVAL: u64 = 1024;
/// Default bound on memo-cache entries per partition (about 50 bytes each); beyond it the verdict is
/// [`Verdict::Unknown`] with [`UnknownReason::CacheLimit`].
pub const DEFAULT_MAX_CACHE_ENTRIES: usize = 20_000_000;

const NIL: u32 = u32::MAX;
/// Slots of the per-partition memo of model steps (a power of two; 12 bytes each).
pub const TRANSITION_MEMO_SLOTS: usize = 1 << 16;
/// Initial slots of the cache and interner tables: small histories never grow them.
const INITIAL_TABLE_CAPACITY: usize = 1024;

/// How to run a check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Give up with [`Verdict::Unknown`] after this long. `None`: no limit.
    pub timeout: Option<Duration>,
    /// Set to true from anywhere to stop the check soon (within [`CANCEL_CHECK_INTERVAL`] iterations).
    pub cancel: Option<std::sync::Arc<AtomicBool>>,
    /// Use the model's partitioning (P-compositionality). Default true.
    pub partition: bool,
    /// Stop the other partitions as soon as one is found not linearizable. Default true; turn off to get
    /// a complete per-partition report.
    pub stop_on_first_illegal: bool,
    /// Bound on memo-cache entries per partition.
    pub max_cache_entries: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            timeout: None,
            cancel: None,
            partition: true,
            stop_on_first_illegal: true,
            max_cache_entries: DEFAULT_MAX_CACHE_ENTRIES,
        }
    }
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Some linearization exists.
    Linearizable,
    /// No linearization exists.
    NotLinearizable,
    /// The search stopped early (see [`UnknownReason`]).
    Unknown,
}

impl Verdict {
    /// The jsonl/text spelling: `linearizable`, `not-linearizable`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "not-linearizable",
            Verdict::Unknown => "unknown",
        }
    }
}

/// Why a partition's verdict is [`Verdict::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownReason {
    /// [`CheckOptions::timeout`] passed.
    Timeout,
    /// [`CheckOptions::cancel`] was set, or another partition was illegal.
    Cancelled,
    /// [`CheckOptions::max_cache_entries`] was reached.
    CacheLimit,
}

/// The result for one independent part of the history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionResult {
    /// Indices into the history of this part's operations (failed and unknown ones included).
    pub ops: Vec<usize>,
    /// This part's verdict.
    pub verdict: Verdict,
    /// Set when `verdict` is unknown.
    pub unknown_reason: Option<UnknownReason>,
    /// Linearizable: a linearization of every answered operation and of the unknown ones it applied.
    /// Otherwise: the longest linearizable prefix found.
    pub linearization: Vec<usize>,
    /// For a not-linearizable part: the model state after each step of `linearization`, described by
    /// [`Model::describe_state`]. Empty otherwise.
    pub states: Vec<String>,
    /// For a not-linearizable part: the operations that could come next after the longest prefix (called
    /// before the earliest pending return) and cannot be placed there.
    pub unplaceable: Vec<usize>,
    /// Memo-cache entries used.
    pub cache_entries: usize,
    /// Distinct model states seen.
    pub distinct_states: usize,
}

/// The result of [`check`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    /// Not linearizable if any part is; else unknown if any part is; else linearizable.
    pub verdict: Verdict,
    /// One entry per part, in the model's partition order.
    pub partitions: Vec<PartitionResult>,
    /// Wall time of the check.
    pub elapsed_ms: u64,
}

/// Errors that prevent a check from starting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The history breaks an invariant.
    #[error("invalid history: {0}")]
    History(#[from] HistoryError),
    /// The model's partition named an operation outside the history.
    #[error("model partition names operation {index}, but the history has {len}")]
    BadPartition {
        /// The offending index.
        index: usize,
        /// History length.
        len: usize,
    },
}

/// Checks `history` against `model`.
///
/// Parts from [`Model::partition`] are checked in parallel on the rayon pool. The call returns when
/// every part has a verdict, the timeout passes, or `options.cancel` is set.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
) -> Result<CheckResult, CheckError> {
    let started = Instant::now();
    validate(history)?;
    // Unobservable parts of unknown requests, made uniform (Model::rewrite_unknown): equal requests are
    // then interchangeable and the search tries only one of them.
    let rewrites = model.rewrite_unknown(history);
    let patched: Vec<Operation<M::Input, M::Output>>;
    let history: &[Operation<M::Input, M::Output>] = if rewrites.iter().any(Option::is_some) {
        patched = history
            .iter()
            .zip(rewrites.into_iter().chain(std::iter::repeat(None)))
            .map(|(op, input)| match input {
                Some(input) if matches!(op.outcome, Outcome::Unknown) => Operation {
                    input,
                    ..op.clone()
                },
                _ => op.clone(),
            })
            .collect();
        &patched
    } else {
        history
    };
    let parts = if options.partition {
        model.partition(history)
    } else {
        vec![(0..history.len()).collect()]
    };
    for part in &parts {
        if let Some(&index) = part.iter().find(|&&i| i >= history.len()) {
            return Err(CheckError::BadPartition {
                index,
                len: history.len(),
            });
        }
    }
    let applied = model.infer_applied(history);
    let stop = AtomicBool::new(false);
    let control = Control {
        deadline: options.timeout.map(|t| started + t),
        cancel: options.cancel.as_deref(),
        stop: &stop,
        stop_on_first_illegal: options.stop_on_first_illegal,
        max_cache_entries: options.max_cache_entries,
    };
    let partitions: Vec<PartitionResult> = parts
        .into_par_iter()
        .map(|part| check_part(model, history, &applied, part, &control))
        .collect();
    let verdict = if partitions
        .iter()
        .any(|p| p.verdict == Verdict::NotLinearizable)
    {
        Verdict::NotLinearizable
    } else if partitions.iter().any(|p| p.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    Ok(CheckResult {
        verdict,
        partitions,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

struct Control<'a> {
    deadline: Option<Instant>,
    cancel: Option<&'a AtomicBool>,
    stop: &'a AtomicBool,
    stop_on_first_illegal: bool,
    max_cache_entries: usize,
}

impl Control<'_> {
    fn interrupted(&self) -> Option<UnknownReason> {
        if self.stop.load(Ordering::Relaxed)
            || self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Some(UnknownReason::Cancelled);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(UnknownReason::Timeout);
        }
        None
    }
}

/// Where an operation waits to be linearized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// A call entry of the main (answered operations) list.
    Main(u32),
    /// An entry of the unknown-outcome list.
    Unk(u32),
}

/// One linearized operation on the search stack.
#[derive(Clone, Copy, Debug)]
struct Frame {
    slot: Slot,
    /// The main-list return entry that bounded the candidates when this was tried (Unk slots).
    limit: u32,
    prev_state: u32,
    prev_uset: u32,
    /// Alternatives (from a non-deterministic step) not tried yet: `alts[alt_next..alt_end]`.
    alt_start: u32,
    alt_next: u32,
    alt_end: u32,
    path_node: u32,
    /// A read-only operation linearized here: if its subtree fails, so does the parent's (see the
    /// module docs), so no sibling is tried.
    committed: bool,
}

/// Hash-consed storage: each distinct value once, referred to by index. The table keeps each value's
/// hash next to its index so that growing the table never rehashes a state.
struct Interner<S> {
    values: Vec<S>,
    table: HashTable<(u64, u32)>,
}

impl<S: std::hash::Hash + Eq> Interner<S> {
    fn new() -> Self {
        Self {
            values: Vec::new(),
            table: HashTable::with_capacity(INITIAL_TABLE_CAPACITY),
        }
    }
    fn intern(&mut self, value: S) -> u32 {
        let hash = hash_one(&value);
        let values = &mut self.values;
        match self.table.entry(
            hash,
            |&(h, i)| h == hash && values[i as usize] == value,
            |&(h, _)| h,
        ) {
            hashbrown::hash_table::Entry::Occupied(o) => o.get().1,
            hashbrown::hash_table::Entry::Vacant(v) => {
                let id = values.len() as u32;
                values.push(value);
                v.insert((hash, id));
                id
            }
        }
    }
}

/// Fixed-width word sets (the set of applied unknown operations), interned.
struct SetInterner {
    width: usize,
    words: Vec<u64>,
    table: HashTable<u32>,
}

impl SetInterner {
    fn new(width: usize) -> Self {
        let mut s = Self {
            width,
            words: Vec::new(),
            table: HashTable::new(),
        };
        let empty = vec![0u64; width];
        s.intern(&empty);
        s
    }
    fn intern(&mut self, set: &[u64]) -> u32 {
        let w = self.width;
        let hash = hash_words(set);
        let words = &mut self.words;
        match self.table.entry(
            hash,
            |&i| &words[i as usize * w..(i as usize + 1) * w] == set,
            |&i| hash_words(&words[i as usize * w..(i as usize + 1) * w]),
        ) {
            hashbrown::hash_table::Entry::Occupied(o) => *o.get(),
            hashbrown::hash_table::Entry::Vacant(v) => {
                let id = (words.len() / w.max(1)) as u32;
                words.extend_from_slice(set);
                v.insert(id);
                id
            }
        }
    }
}

/// The memo cache: a set of variable-length word keys stored back to back in one arena.
///
/// A key is `[state_id | uset_id << 32, base, window...]`: `base` is the first answered operation (in
/// call order) not yet linearized, so every operation before it is linearized, and `window` holds the
/// bits from `base` to the last linearized one. Only operations called before `base` returns can be
/// linearized ahead of it, so the window stays a few words long however long the history is: the
/// per-entry cost is ~40 bytes instead of porcupine's n/8-byte bitset.
struct Cache {
    words: Vec<u64>,
    /// (hash, offset into `words`, length) per key.
    table: HashTable<(u64, usize, usize)>,
}

impl Cache {
    fn new() -> Self {
        Self {
            words: Vec::new(),
            table: HashTable::with_capacity(INITIAL_TABLE_CAPACITY),
        }
    }
    fn len(&self) -> usize {
        self.table.len()
    }
    /// Inserts `key`; false if it was already present.
    fn insert(&mut self, key: &[u64]) -> bool {
        let hash = hash_words(key);
        let words = &mut self.words;
        match self.table.entry(
            hash,
            |&(h, o, l)| h == hash && &words[o..o + l] == key,
            |&(h, _, _)| h,
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(v) => {
                let off = words.len();
                words.extend_from_slice(key);
                v.insert((hash, off, key.len()));
                true
            }
        }
    }
}

/// The answered operations' linearized set: a bitset plus `base` and a count for [`Cache`] keys.
struct DefSet {
    bits: Vec<u64>,
    base: usize,
    count: usize,
}

impl DefSet {
    fn new(n: usize) -> Self {
        Self {
            bits: vec![0; n / 64 + 2],
            base: 0,
            count: 0,
        }
    }
    fn set(&mut self, i: usize) {
        self.bits[i / 64] |= 1 << (i % 64);
        self.count += 1;
        if i == self.base {
            let mut pos = self.base;
            loop {
                let wi = pos / 64;
                let w = self.bits[wi] | ((1u64 << (pos % 64)) - 1);
                if w != u64::MAX {
                    self.base = wi * 64 + (!w).trailing_zeros() as usize;
                    break;
                }
                pos = (wi + 1) * 64;
            }
        }
    }
    fn clear(&mut self, i: usize) {
        self.bits[i / 64] &= !(1 << (i % 64));
        self.count -= 1;
        self.base = self.base.min(i);
    }
    fn word_at(&self, pos: usize) -> u64 {
        let wi = pos / 64;
        let off = pos % 64;
        let lo = self.bits.get(wi).copied().unwrap_or(0) >> off;
        if off == 0 {
            lo
        } else {
            lo | (self.bits.get(wi + 1).copied().unwrap_or(0) << (64 - off))
        }
    }
    /// Writes `[base, window...]` after `key[0]`.
    fn write_key(&self, key: &mut Vec<u64>) {
        key.truncate(1);
        key.push(self.base as u64);
        let mut remaining = self.count - self.base;
        let mut pos = self.base;
        while remaining > 0 {
            let w = self.word_at(pos);
            key.push(w);
            remaining -= w.count_ones() as usize;
            pos += 64;
        }
    }
}

/// Minimum over a fixed array under point updates (a segment tree), O(log n) per update.
struct MinTree {
    /// Number of values (0: disabled, every `set` is ignored).
    len: usize,
    size: usize,
    tree: Vec<u64>,
}

impl MinTree {
    fn new(values: &[u64]) -> Self {
        let size = values.len().next_power_of_two().max(1);
        let mut tree = vec![u64::MAX; 2 * size];
        tree[size..size + values.len()].copy_from_slice(values);
        for i in (1..size).rev() {
            tree[i] = tree[2 * i].min(tree[2 * i + 1]);
        }
        Self {
            len: values.len(),
            size,
            tree,
        }
    }
    fn set(&mut self, i: usize, value: u64) {
        if i >= self.len {
            return;
        }
        let mut pos = self.size + i;
        self.tree[pos] = value;
        while pos > 1 {
            pos /= 2;
            self.tree[pos] = self.tree[2 * pos].min(self.tree[2 * pos + 1]);
        }
    }
    fn min(&self) -> u64 {
        self.tree[1]
    }
}

/// Dancing-links list storage: removal keeps the entry's own links so that re-insertion in reverse
/// order of removal is O(1).
struct Links {
    next: Vec<u32>,
    prev: Vec<u32>,
}

impl Links {
    /// A list `0 (sentinel) -> 1 -> ... -> n`.
    fn chain(n: usize) -> Self {
        let next = (0..=n)
            .map(|i| if i == n { NIL } else { i as u32 + 1 })
            .collect();
        let prev = (0..=n)
            .map(|i| if i == 0 { NIL } else { i as u32 - 1 })
            .collect();
        Self { next, prev }
    }
    fn unlink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }
    fn relink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = e;
        if n != NIL {
            self.prev[n as usize] = e;
        }
    }
}

enum Cursor {
    Main(u32),
    Unk { at: u32, limit: u32 },
}

enum Outcome2 {
    Linearizable,
    Illegal,
    Unknown(UnknownReason),
}

struct Search<'m, M: Model> {
    model: &'m M,
    history: &'m [Operation<M::Input, M::Output>],
    // Answered ops, in call order: history index.
    defs: Vec<usize>,
    // Unknown ops, in call order: history index.
    unks: Vec<usize>,
    // Main list entries (0 = sentinel): op (def index), whether a call, sequence number, matching return.
    main: Links,
    entry_op: Vec<u32>,
    entry_is_call: Vec<bool>,
    entry_seq: Vec<u32>,
    entry_ret: Vec<u32>,
    // Unknown list entries (0 and unks.len() + 1 = sentinels, entry u+1 = unks[u]) and their call
    // sequence numbers. Candidates are tried newest first: an unknown operation that took effect most
    // likely did so soon after its call, so the newest is the best first guess for a gap.
    unk: Links,
    unk_seq: Vec<u32>,
    // Per unknown entry: the previous unknown entry with an identical input, or NIL (symmetry breaking).
    unk_twin: Vec<u32>,
    def_set: DefSet,
    // Progress bound per answered op, and their minimum over the ops not yet linearized.
    def_bound: Vec<u64>,
    // Return time per answered op (inferred for unknown ops with evidence).
    def_return: Vec<u64>,
    bounds: MinTree,
    unk_bits: Vec<u64>,
    usets: SetInterner,
    uset: u32,
    states: Interner<M::State>,
    state: u32,
    cache: Cache,
    key: Vec<u64>,
    frames: Vec<Frame>,
    alts: Vec<u32>,
    step_buf: Vec<M::State>,
    // Direct-mapped memo of deterministic steps: (state, history index) -> next state or NIL (illegal).
    // The same state meets the same candidates again under many linearized sets; this skips the model
    // step, the new state's hashing and its interning.
    transitions: Vec<(u32, u32, u32)>,
    // Path arena: (history index, parent node, state after) per push, for the longest prefix.
    path: Vec<(u32, u32, u32)>,
    best_depth: usize,
    best_node: u32,
}

fn check_part<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    applied: &[Option<Applied>],
    part: Vec<usize>,
    control: &Control<'_>,
) -> PartitionResult {
    let mut search = Search::new(model, history, &part, applied);
    let outcome = search.run(control);
    let mut result = PartitionResult {
        ops: part,
        verdict: Verdict::Linearizable,
        unknown_reason: None,
        linearization: Vec::new(),
        states: Vec::new(),
        unplaceable: Vec::new(),
        cache_entries: search.cache.len(),
        distinct_states: search.states.values.len(),
    };
    match outcome {
        Outcome2::Linearizable => {
            result.linearization = search
                .frames
                .iter()
                .map(|f| search.slot_op(f.slot))
                .collect();
        }
        Outcome2::Illegal => {
            if control.stop_on_first_illegal {
                control.stop.store(true, Ordering::Relaxed);
            }
            result.verdict = Verdict::NotLinearizable;
            let (ops, states) = search.best_prefix();
            result.unplaceable = search.blocked_after(&ops);
            result.states = states
                .iter()
                .map(|&s| model.describe_state(&search.states.values[s as usize]))
                .collect();
            result.linearization = ops;
        }
        Outcome2::Unknown(reason) => {
            result.verdict = Verdict::Unknown;
            result.unknown_reason = Some(reason);
            result.linearization = search.best_prefix().0;
        }
    }
    result
}

impl<'m, M: Model> Search<'m, M> {
    fn new(
        model: &'m M,
        history: &'m [Operation<M::Input, M::Output>],
        part: &[usize],
        applied: &[Option<Applied>],
    ) -> Self {
        let mut defs = Vec::new();
        let mut unks = Vec::new();
        // Answered operations, and unknown ones with evidence they took effect: (return time, bound).
        let mut timing: HashMap<usize, (u64, u64)> = HashMap::new();
        for &i in part {
            let op = &history[i];
            match &op.outcome {
                Outcome::Ok(out) => {
                    defs.push(i);
                    let bound = model.progress_bound(&op.input, out).unwrap_or(u64::MAX);
                    timing.insert(i, (op.return_ns, bound));
                }
                Outcome::Failed => {}
                Outcome::Unknown => match applied.get(i).copied().flatten() {
                    Some(a) => {
                        defs.push(i);
                        timing.insert(
                            i,
                            (
                                a.by_ns.max(op.call_ns),
                                a.progress_bound.unwrap_or(u64::MAX),
                            ),
                        );
                    }
                    None if model.is_read_only(&op.input) => {}
                    None => unks.push(i),
                },
            }
        }
        defs.sort_by_key(|&i| (history[i].call_ns, i));
        unks.sort_by_key(|&i| (history[i].call_ns, i));
        // Events: (time, 0 = call / 1 = return, tag). Calls sort before returns at equal times, so
        // touching operations count as concurrent.
        let nd = defs.len();
        let mut events: Vec<(u64, u8, u32)> = Vec::with_capacity(2 * nd + unks.len());
        for (d, &i) in defs.iter().enumerate() {
            events.push((history[i].call_ns, 0, d as u32));
            events.push((timing[&i].0, 1, d as u32));
        }
        for (u, &i) in unks.iter().enumerate() {
            events.push((history[i].call_ns, 0, (nd + u) as u32));
        }
        events.sort_unstable();
        let mut entry_op = vec![NIL];
        let mut entry_is_call = vec![false];
        let mut entry_seq = vec![0];
        let mut call_entry = vec![NIL; nd];
        let mut entry_ret = vec![NIL];
        // Entry 0 is the head sentinel, entry `unks.len() + 1` the tail sentinel.
        let mut unk_seq = vec![u32::MAX; unks.len() + 2];
        for (seq, &(_, kind, tag)) in events.iter().enumerate() {
            let tag = tag as usize;
            if tag >= nd {
                unk_seq[tag - nd + 1] = seq as u32;
                continue;
            }
            let e = entry_op.len() as u32;
            entry_op.push(tag as u32);
            entry_is_call.push(kind == 0);
            entry_seq.push(seq as u32);
            entry_ret.push(NIL);
            if kind == 0 {
                call_entry[tag] = e;
            } else {
                entry_ret[call_entry[tag] as usize] = e;
            }
        }
        // Unknown operations with identical inputs are interchangeable: if a linearization applies the
        // later one while the earlier is pending, swapping them gives another (the earlier was called
        // first, so it is eligible wherever the later is). So only the earliest pending one is tried.
        let mut unk_twin = vec![NIL; unks.len() + 1];
        let mut last_seen: HashMap<&M::Input, u32> = HashMap::new();
        for (u, &i) in unks.iter().enumerate() {
            if let Some(prev) = last_seen.insert(&history[i].input, u as u32 + 1) {
                unk_twin[u + 1] = prev;
            }
        }
        let def_bound: Vec<u64> = defs.iter().map(|i| timing[i].1).collect();
        let def_return: Vec<u64> = defs.iter().map(|i| timing[i].0).collect();
        // Models without a progress measure skip the tree's upkeep entirely.
        let uses_progress = model.progress(&model.init()).is_some();
        let bounds = MinTree::new(if uses_progress { &def_bound } else { &[] });
        let uw = unks.len().div_ceil(64);
        let mut states = Interner::new();
        let state = states.intern(model.init());
        Self {
            model,
            history,
            main: Links::chain(entry_op.len() - 1),
            entry_op,
            entry_is_call,
            entry_seq,
            entry_ret,
            unk: Links::chain(unks.len() + 1),
            unk_seq,
            unk_twin,
            def_set: DefSet::new(nd),
            def_bound,
            def_return,
            bounds,
            unk_bits: vec![0; uw],
            usets: SetInterner::new(uw),
            uset: 0,
            states,
            state,
            cache: Cache::new(),
            key: vec![0],
            frames: Vec::new(),
            alts: Vec::new(),
            step_buf: Vec::new(),
            transitions: vec![(NIL, NIL, NIL); TRANSITION_MEMO_SLOTS],
            path: Vec::new(),
            best_depth: 0,
            best_node: NIL,
            defs,
            unks,
        }
    }

    fn slot_op(&self, slot: Slot) -> usize {
        match slot {
            Slot::Main(e) => self.defs[self.entry_op[e as usize] as usize],
            Slot::Unk(u) => self.unks[u as usize - 1],
        }
    }

    fn run(&mut self, control: &Control<'_>) -> Outcome2 {
        let mut cursor = Cursor::Main(self.main.next[0]);
        let mut iterations: u64 = 0;
        loop {
            iterations += 1;
            if iterations & (CANCEL_CHECK_INTERVAL - 1) == 0 {
                if let Some(reason) = control.interrupted() {
                    return Outcome2::Unknown(reason);
                }
                if self.cache.len() >= control.max_cache_entries {
                    return Outcome2::Unknown(UnknownReason::CacheLimit);
                }
            }
            if self.main.next[0] == NIL {
                return Outcome2::Linearizable;
            }
            cursor = match cursor {
                Cursor::Main(e) if e != NIL && self.entry_is_call[e as usize] => {
                    if self.try_step(Slot::Main(e), NIL) {
                        Cursor::Main(self.main.next[0])
                    } else {
                        Cursor::Main(self.main.next[e as usize])
                    }
                }
                // `e` is the first return in the list: the candidates among answered calls are exhausted.
                Cursor::Main(e) => Cursor::Unk {
                    at: self.unk.prev[self.unks.len() + 1],
                    limit: e,
                },
                Cursor::Unk { at, limit } if at != 0 => {
                    if self.unk_seq[at as usize] < self.seq_of(limit)
                        && !self.twin_pending(at)
                        && !self.can_wait(at, limit)
                        && self.try_step(Slot::Unk(at), limit)
                    {
                        Cursor::Main(self.main.next[0])
                    } else {
                        Cursor::Unk {
                            at: self.unk.prev[at as usize],
                            limit,
                        }
                    }
                }
                Cursor::Unk { .. } => match self.backtrack() {
                    Some(c) => c,
                    None => return Outcome2::Illegal,
                },
            };
        }
    }

    fn twin_pending(&self, at: u32) -> bool {
        let twin = self.unk_twin[at as usize];
        twin != NIL && {
            let u = twin as usize - 1;
            self.unk_bits[u / 64] & (1 << (u % 64)) == 0
        }
    }

    /// True if the unknown entry `at` commutes with every other candidate here, so that delaying it
    /// loses no linearization (see "Unknown outcomes" in the module docs).
    fn can_wait(&self, at: u32, limit: u32) -> bool {
        let unknown = &self.history[self.unks[at as usize - 1]].input;
        if !self.model.may_commute(unknown) {
            return false;
        }
        let state = &self.states.values[self.state as usize];
        let commutes = |i: usize| self.model.commutes(state, unknown, &self.history[i].input);
        let mut e = self.main.next[0];
        while e != NIL && self.entry_is_call[e as usize] {
            if !commutes(self.defs[self.entry_op[e as usize] as usize]) {
                return false;
            }
            e = self.main.next[e as usize];
        }
        let limit_seq = self.seq_of(limit);
        let mut u = self.unk.next[0];
        while u != NIL && self.unk_seq[u as usize] < limit_seq {
            if u != at && !commutes(self.unks[u as usize - 1]) {
                return false;
            }
            u = self.unk.next[u as usize];
        }
        true
    }

    fn seq_of(&self, entry: u32) -> u32 {
        if entry == NIL {
            u32::MAX
        } else {
            self.entry_seq[entry as usize]
        }
    }

    /// Pops frames until one has an untried alternative or leaves a candidate to its right.
    fn backtrack(&mut self) -> Option<Cursor> {
        let mut frame = self.frames.pop()?;
        while frame.committed {
            self.undo(&frame);
            frame = self.frames.pop()?;
        }
        self.undo(&frame);
        if self.try_alternatives(
            frame.slot,
            frame.limit,
            frame.alt_start,
            frame.alt_next,
            frame.alt_end,
        ) {
            return Some(Cursor::Main(self.main.next[0]));
        }
        self.alts.truncate(frame.alt_start as usize);
        Some(match frame.slot {
            Slot::Main(e) => Cursor::Main(self.main.next[e as usize]),
            Slot::Unk(u) => Cursor::Unk {
                at: self.unk.prev[u as usize],
                limit: frame.limit,
            },
        })
    }

    fn undo(&mut self, frame: &Frame) {
        self.unlift(frame.slot);
        self.unmark(frame.slot, frame.prev_uset);
        self.state = frame.prev_state;
    }

    fn try_step(&mut self, slot: Slot, limit: u32) -> bool {
        let op_index = self.slot_op(slot);
        let start = self.alts.len() as u32;
        let memo_slot = (crate::hash::hash_words(&[u64::from(self.state), op_index as u64])
            as usize)
            & (TRANSITION_MEMO_SLOTS - 1);
        let (memo_state, memo_op, memo_next) = self.transitions[memo_slot];
        if memo_state == self.state && memo_op == op_index as u32 {
            if memo_next == NIL {
                return false;
            }
            self.alts.push(memo_next);
        } else {
            let op = &self.history[op_index];
            self.step_buf.clear();
            self.model.step(
                &self.states.values[self.state as usize],
                &op.input,
                op.outcome.output(),
                &mut self.step_buf,
            );
            let mut buf = std::mem::take(&mut self.step_buf);
            for s in buf.drain(..) {
                let id = self.states.intern(s);
                self.alts.push(id);
            }
            self.step_buf = buf;
            match self.alts.len() as u32 - start {
                0 => self.transitions[memo_slot] = (self.state, op_index as u32, NIL),
                1 => {
                    self.transitions[memo_slot] =
                        (self.state, op_index as u32, self.alts[start as usize])
                }
                _ => {}
            }
        }
        let end = self.alts.len() as u32;
        if start == end {
            return false;
        }
        if self.try_alternatives(slot, limit, start, start, end) {
            true
        } else {
            self.alts.truncate(start as usize);
            false
        }
    }

    /// Tries `alts[from..end]` as the state after linearizing `slot`; descends into the first one not in
    /// the cache.
    fn try_alternatives(
        &mut self,
        slot: Slot,
        limit: u32,
        start: u32,
        from: u32,
        end: u32,
    ) -> bool {
        let prev_uset = self.uset;
        self.mark(slot);
        self.def_set.write_key(&mut self.key);
        for i in from..end {
            let next = self.alts[i as usize];
            self.key[0] = u64::from(next) | (u64::from(self.uset) << 32);
            if !self.cache.insert(&self.key) {
                continue;
            }
            if matches!(slot, Slot::Unk(_)) && next == self.state {
                continue;
            }
            if self.beyond_bounds(next) {
                continue;
            }
            let op = self.slot_op(slot) as u32;
            let parent = self.frames.last().map_or(NIL, |f| f.path_node);
            let node = self.path.len() as u32;
            self.path.push((op, parent, next));
            self.frames.push(Frame {
                slot,
                limit,
                prev_state: self.state,
                prev_uset,
                alt_start: start,
                alt_next: i + 1,
                alt_end: end,
                path_node: node,
                committed: matches!(slot, Slot::Main(_))
                    && self.model.is_read_only(&self.history[op as usize].input),
            });
            self.lift(slot);
            self.state = next;
            if self.frames.len() > self.best_depth {
                self.best_depth = self.frames.len();
                self.best_node = node;
            }
            return true;
        }
        self.unmark(slot, prev_uset);
        false
    }

    fn beyond_bounds(&self, state: u32) -> bool {
        let min_bound = self.bounds.min();
        min_bound != u64::MAX
            && self
                .model
                .progress(&self.states.values[state as usize])
                .is_some_and(|p| p > min_bound)
    }

    fn mark(&mut self, slot: Slot) {
        match slot {
            Slot::Main(e) => {
                let d = self.entry_op[e as usize] as usize;
                self.def_set.set(d);
                self.bounds.set(d, u64::MAX);
            }
            Slot::Unk(u) => {
                let u = u as usize - 1;
                self.unk_bits[u / 64] |= 1 << (u % 64);
                self.uset = self.usets.intern(&self.unk_bits);
            }
        }
    }

    fn unmark(&mut self, slot: Slot, prev_uset: u32) {
        match slot {
            Slot::Main(e) => {
                let d = self.entry_op[e as usize] as usize;
                self.def_set.clear(d);
                self.bounds.set(d, self.def_bound[d]);
            }
            Slot::Unk(u) => {
                let u = u as usize - 1;
                self.unk_bits[u / 64] &= !(1 << (u % 64));
                self.uset = prev_uset;
            }
        }
    }

    fn lift(&mut self, slot: Slot) {
        match slot {
            Slot::Main(e) => {
                self.main.unlink(e);
                self.main.unlink(self.entry_ret[e as usize]);
            }
            Slot::Unk(u) => self.unk.unlink(u),
        }
    }

    fn unlift(&mut self, slot: Slot) {
        match slot {
            Slot::Main(e) => {
                self.main.relink(self.entry_ret[e as usize]);
                self.main.relink(e);
            }
            Slot::Unk(u) => self.unk.relink(u),
        }
    }

    /// The longest linearizable prefix found: history indices and state ids.
    fn best_prefix(&self) -> (Vec<usize>, Vec<u32>) {
        let mut ops = Vec::new();
        let mut states = Vec::new();
        let mut node = self.best_node;
        while node != NIL {
            let (op, parent, state) = self.path[node as usize];
            ops.push(op as usize);
            states.push(state);
            node = parent;
        }
        ops.reverse();
        states.reverse();
        (ops, states)
    }

    /// Operations not in `prefix` that were called before the earliest pending return.
    fn blocked_after(&self, prefix: &[usize]) -> Vec<usize> {
        let done: std::collections::HashSet<usize> = prefix.iter().copied().collect();
        let pending: Vec<(usize, u64)> = self
            .defs
            .iter()
            .zip(&self.def_return)
            .filter(|(i, _)| !done.contains(i))
            .map(|(&i, &r)| (i, r))
            .collect();
        let Some(first_return) = pending.iter().map(|&(_, r)| r).min() else {
            return Vec::new();
        };
        pending
            .into_iter()
            .map(|(i, _)| i)
            .chain(self.unks.iter().copied().filter(|i| !done.contains(i)))
            .filter(|&i| self.history[i].call_ns <= first_return)
            .collect()
    }
}
