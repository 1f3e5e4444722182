//! The history type every model and importer shares.

use serde::{Deserialize, Serialize};

/// One client operation as a recording client saw it.
///
/// Times are nanoseconds on one monotonic clock shared by all clients of a history; only their order
/// matters. Ties between a call and a return are treated as overlapping (the more permissive reading).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation<I, O> {
    /// The client (Jepsen: process) that issued the operation. A client has at most one operation in flight.
    pub client_id: u64,
    /// When the request was sent.
    pub call_ns: u64,
    /// When the response arrived. For [`Outcome::Unknown`] it is when the client gave up; the checker
    /// ignores it and treats the return as +infinity.
    pub return_ns: u64,
    /// The request.
    pub input: I,
    /// What the client learned.
    pub outcome: Outcome<O>,
}

/// What a client learned about an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome<O> {
    /// A response arrived: the operation took effect exactly once between call and return.
    Ok(O),
    /// A definite failure: the operation took no effect (Jepsen `:fail`). The checker drops it.
    Failed,
    /// Maybe applied (Jepsen `:info`, timeouts, lost connections): the operation may take effect at any
    /// time after its call, or never, and its response is unknown.
    Unknown,
}

impl<O> Outcome<O> {
    /// The response, if one arrived.
    pub fn output(&self) -> Option<&O> {
        match self {
            Outcome::Ok(o) => Some(o),
            Outcome::Failed | Outcome::Unknown => None,
        }
    }
}

/// Problems that make a history unusable, found before any search.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// An operation with a response returned before it was called.
    #[error("operation {index} (client {client_id}) returns at {return_ns} ns before its call at {call_ns} ns")]
    ReturnBeforeCall {
        /// Position in the history.
        index: usize,
        /// Its client.
        client_id: u64,
        /// Call time.
        call_ns: u64,
        /// Return time.
        return_ns: u64,
    },
    /// The history holds more operations than [`crate::MAX_HISTORY_OPS`].
    #[error("history has {ops} operations, more than the limit of {limit}")]
    TooLong {
        /// Operations in the history.
        ops: usize,
        /// The limit.
        limit: usize,
    },
}

/// Checks the invariants the search relies on: every answered operation returns no earlier than it was
/// called, and the history is not longer than [`crate::MAX_HISTORY_OPS`].
pub fn validate<I, O>(history: &[Operation<I, O>]) -> Result<(), HistoryError> {
    if history.len() > crate::MAX_HISTORY_OPS {
        return Err(HistoryError::TooLong {
            ops: history.len(),
            limit: crate::MAX_HISTORY_OPS,
        });
    }
    for (index, op) in history.iter().enumerate() {
        if matches!(op.outcome, Outcome::Ok(_)) && op.return_ns < op.call_ns {
            return Err(HistoryError::ReturnBeforeCall {
                index,
                client_id: op.client_id,
                call_ns: op.call_ns,
                return_ns: op.return_ns,
            });
        }
    }
    Ok(())
}
