//! The [`Model`] trait: a sequential specification the checker searches against.

use std::fmt::Debug;
use std::hash::Hash;

use crate::history::Operation;

/// Evidence that an unknown-outcome operation took effect; see [`Model::infer_applied`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// It took effect no later than this.
    pub by_ns: u64,
    /// The largest [`Model::progress`] of the state it took effect in, if known.
    pub progress_bound: Option<u64>,
}

/// A sequential specification: pure functions, no knowledge of the checker or of etcd clients.
///
/// Contract:
/// - [`Model::step`] is deterministic given its arguments and never panics on any input/output pair
///   (a mismatched pair is simply illegal: it pushes nothing).
/// - Two states that compare equal must behave identically for every future operation; the checker's memo
///   cache merges them. Equal states must hash equally.
/// - [`Model::partition`] may only split a history into parts that are independent (P-compositionality):
///   the history is linearizable iff every part is.
pub trait Model: Sync {
    /// A request. Unknown-outcome requests that compare equal are treated as interchangeable.
    type Input: Clone + Debug + Eq + Hash + Sync;
    /// A response.
    type Output: Clone + Debug + Sync;
    /// The specification's state. Stored once per distinct value (hash-consed), so it may be large. It
    /// never leaves the thread checking its partition, so `Rc` sharing is fine.
    type State: Clone + Eq + Hash + Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Pushes onto `next` every state the object may be in after `input` is applied in `state` and
    /// `output` is observed (`None`: the response is unknown, any response is allowed). Pushing nothing
    /// means the operation cannot take effect here. Several states express non-determinism.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
        next: &mut Vec<Self::State>,
    );

    /// Splits a history into independent parts, as lists of indices into `history`. The default keeps
    /// one part.
    fn partition(&self, history: &[Operation<Self::Input, Self::Output>]) -> Vec<Vec<usize>> {
        vec![(0..history.len()).collect()]
    }

    /// True if `input` never changes the state. The checker drops such operations when their outcome is
    /// unknown, as they constrain nothing.
    fn is_read_only(&self, _input: &Self::Input) -> bool {
        false
    }

    /// Pruning hint: a measure of progress that no step ever decreases (etcd: the revision). `None`
    /// (the default) disables the pruning.
    fn progress(&self, _state: &Self::State) -> Option<u64> {
        None
    }

    /// Pruning hint: the largest [`Model::progress`] of a state in which the answered operation (`input`,
    /// `output`) can still be linearized (etcd: its response's header revision). The checker abandons
    /// any state whose progress exceeds the bound of an operation still waiting to be linearized. A
    /// bound that is too small makes the checker unsound; `None` (the default) means no bound.
    fn progress_bound(&self, _input: &Self::Input, _output: &Self::Output) -> Option<u64> {
        None
    }

    /// Pruning hint: true only if, in `state`, the unknown-outcome operation `unknown` commutes with
    /// `other`: applying `unknown` then `other` gives `other` the same verdict on its output and the same
    /// next states as `other` then `unknown`. The checker then delays `unknown` past `other`. A wrong
    /// `true` makes the checker unsound; the default never commutes.
    fn commutes(&self, _state: &Self::State, _unknown: &Self::Input, _other: &Self::Input) -> bool {
        false
    }

    /// Cheap pre-filter for [`Model::commutes`]: false if `unknown` commutes with nothing, so the
    /// checker need not ask. Default false.
    fn may_commute(&self, _unknown: &Self::Input) -> bool {
        false
    }

    /// Evidence from the whole history about unknown-outcome operations: for an operation known to have
    /// taken effect (etcd: a later response shows the unique value it wrote), `Some` with the time by
    /// which it did and the progress bound of the state it took effect in. The checker then treats it as
    /// an answered operation with that return time and an unconstrained response. Returns one entry per
    /// operation, or an empty vector (the default) for no evidence. Wrong evidence makes the checker
    /// unsound.
    fn infer_applied(
        &self,
        _history: &[Operation<Self::Input, Self::Output>],
    ) -> Vec<Option<Applied>> {
        Vec::new()
    }

    /// Rewrites of unknown-outcome requests that no response can tell apart from the original (etcd: a
    /// put's value that no response shows and no compare mentions becomes one shared placeholder), so
    /// that equal requests become interchangeable. One entry per operation, or an empty vector (the
    /// default) for none. A rewrite that some linearization could observe makes the checker unsound.
    fn rewrite_unknown(
        &self,
        _history: &[Operation<Self::Input, Self::Output>],
    ) -> Vec<Option<Self::Input>> {
        Vec::new()
    }

    /// A short human-readable form of an operation, for reports.
    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        match output {
            Some(o) => format!("{input:?} -> {o:?}"),
            None => format!("{input:?} -> ?"),
        }
    }

    /// A short human-readable form of a state, for reports.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}
