//! A brute-force linearizability checker for small histories: the oracle the search is tested against.
//!
//! It tries every order of the operations that respects real time (an operation that returned before
//! another was called comes first), lets each unknown-outcome operation take effect anywhere after its
//! call or not at all, and follows every state a non-deterministic step allows. No memo cache, no
//! pruning, nothing clever: exponential, so histories are capped at [`MAX_BRUTE_OPS`].

use crate::history::{Operation, Outcome};
use crate::model::Model;

/// Largest history [`brute_force`] accepts.
pub const MAX_BRUTE_OPS: usize = 9;

/// Errors of [`brute_force`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BruteError {
    /// Too many operations.
    #[error("brute force handles at most {MAX_BRUTE_OPS} operations, got {0}")]
    TooLong(usize),
}

/// True if some order of `history` respecting real time is legal for `model`.
pub fn brute_force<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> Result<bool, BruteError> {
    if history.len() > MAX_BRUTE_OPS {
        return Err(BruteError::TooLong(history.len()));
    }
    let ops: Vec<&Operation<M::Input, M::Output>> = history
        .iter()
        .filter(|op| !matches!(op.outcome, Outcome::Failed))
        .collect();
    let mut placed = vec![false; ops.len()];
    Ok(search(model, &ops, &mut placed, &model.init()))
}

fn return_time<I, O>(op: &Operation<I, O>) -> Option<u64> {
    match op.outcome {
        Outcome::Ok(_) => Some(op.return_ns),
        _ => None,
    }
}

fn search<M: Model>(
    model: &M,
    ops: &[&Operation<M::Input, M::Output>],
    placed: &mut [bool],
    state: &M::State,
) -> bool {
    let answered_left = ops
        .iter()
        .zip(placed.iter())
        .any(|(op, &p)| !p && return_time(op).is_some());
    if !answered_left {
        // Unknown operations left over never took effect.
        return true;
    }
    for i in 0..ops.len() {
        if placed[i] {
            continue;
        }
        // `i` may go next only if no unplaced operation returned strictly before `i` was called.
        let blocked = ops
            .iter()
            .zip(placed.iter())
            .any(|(other, &p)| !p && return_time(other).is_some_and(|r| r < ops[i].call_ns));
        if blocked {
            continue;
        }
        let mut next = Vec::new();
        model.step(state, &ops[i].input, ops[i].outcome.output(), &mut next);
        placed[i] = true;
        for s in &next {
            if search(model, ops, placed, s) {
                placed[i] = false;
                return true;
            }
        }
        placed[i] = false;
    }
    false
}
