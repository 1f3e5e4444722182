//! # gauntlet-checker: is this history linearizable?
//!
//! A porcupine-style linearizability checker with models for a register, a key-value map and etcd's
//! revision-aware API, plus a validator for etcd's watch guarantees. It depends on nothing else of
//! Gauntlet: feed it a history, get a verdict.
//!
//! ## A first check
//!
//! A history is a list of [`Operation`]s: who called what when, and what came back. Here client 1
//! writes 1 while client 2 reads, first seeing 1, then (after the write returned) seeing 0, which no
//! order of the operations explains:
//!
//! ```
//! use gauntlet_checker::{check, CheckOptions, Operation, Outcome, Verdict};
//! use gauntlet_checker::models::register::{RegisterInput as In, RegisterModel, RegisterOutput as Out};
//!
//! let op = |client_id, call_ns, return_ns, input, output| Operation {
//!     client_id, call_ns, return_ns, input, outcome: Outcome::Ok(output),
//! };
//! let mut history = vec![
//!     op(1, 0, 10, In::Write(1), Out::Write),
//!     op(2, 2, 12, In::Read, Out::Read(Some(1))),
//! ];
//! let ok = check(&RegisterModel, &history, &CheckOptions::default()).unwrap();
//! assert_eq!(ok.verdict, Verdict::Linearizable);
//!
//! history.push(op(3, 20, 30, In::Read, Out::Read(None)));
//! let bad = check(&RegisterModel, &history, &CheckOptions::default()).unwrap();
//! assert_eq!(bad.verdict, Verdict::NotLinearizable);
//! // The report: the longest linearizable prefix, and what cannot follow it.
//! let part = &bad.partitions[0];
//! assert_eq!(part.linearization, vec![0, 1]);
//! assert_eq!(part.unplaceable, vec![2]);
//! ```
//!
//! ## How the search works
//!
//! [`search`] explains the algorithm with a worked example: a linked list of call and
//! return events, operations lifted out as they are linearized and put back on backtracking, and a memo
//! cache of (linearized set, state) pairs that cuts repeated work. Histories that a model can split into
//! independent parts ([`Model::partition`], e.g. per key) are checked part by part, in parallel.
//!
//! ## Writing a model
//!
//! Implement [`Model`]: `init`, `step` (push every possible next state; none means illegal), and
//! optionally `partition`. The remaining methods are pruning hints with safe defaults; each one's
//! contract says exactly what a wrong answer costs. The etcd model ([`models::etcd`]) uses all of them:
//! the revision as a monotone progress measure, lease grants that commute with requests not naming the
//! lease, and unique put values that prove when an unknown put took effect.
//!
//! ## Unknown outcomes
//!
//! A timed-out request may have taken effect at any point after its call, or never. Mark it
//! [`Outcome::Unknown`]; the checker then lets it take effect anywhere after its call, or not at all.
//! Definite failures ([`Outcome::Failed`]) are dropped: they had no effect.
//!
//! ## Reading histories
//!
//! [`import`] reads Jepsen EDN histories, `jepsen.util` log lines and our JSON-lines format (one
//! serialized [`Operation`] per line). [`html`] renders a failing check as a self-contained page.
//! [`watch`] checks recorded watch streams against the write history. [`gen`] generates realistic
//! etcd histories for benchmarks and tests.
//!
//! Invariants:
//! - the crate depends on nothing else of Gauntlet;
//! - verdicts are exact: every pruning rule is proven in the docs of [`search`], and the memo cache and
//!   the state interner compare full keys and states, never hashes alone;
//! - the verdict never depends on thread scheduling: partitions are independent and each is searched
//!   deterministically.

pub mod brute;
pub mod gen;
mod hash;
pub mod history;
pub mod html;
pub mod import;
pub mod model;
pub mod models;
pub mod search;
pub mod watch;

pub use history::{HistoryError, Operation, Outcome};
pub use model::{Applied, Model};
pub use search::{
    check, CheckError, CheckOptions, CheckResult, PartitionResult, UnknownReason, Verdict,
};

/// Largest history accepted, in operations (the search indexes operations with `u32`).
pub const MAX_HISTORY_OPS: usize = 1 << 24;
