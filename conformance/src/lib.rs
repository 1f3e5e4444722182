//! Gauntlet's conformance suite: a catalogue of etcd v3 API cases, each checking one
//! documented guarantee with the exact request, the expected and the actual answer.
//!
//! # The pieces
//!
//! - A [`Case`] is plain data: a stable id (`kv.range.prefix_limit_more`), its
//!   [`Service`], one sentence stating the guarantee, a link to etcd's documentation,
//!   the server [`Versions`] it applies to, what cluster it [`Needs`], and an async
//!   check that returns `Ok(())` or a [`Failure`] (request, expected, actual).
//! - [`catalogue`] returns every case, grouped by service.
//! - [`run`] runs (a selection of) the catalogue against a target the runner launches
//!   ([`Under::Launch`]) or external endpoints ([`Under::External`]), concurrently,
//!   each case under its own key prefix; cases needing a fresh cluster get one when
//!   the runner launches the target, and are reported as not run otherwise.
//! - The [`Ledger`] (`conformance/known-issues.toml`) turns failures that are known
//!   etcd bugs at a given version into known issues instead of new failures.
//! - [`report::write_all`] writes `junit.xml`, `results.json` and `summary.md`.
//! - Servers that are not etcd are held to the newest etcd profile
//!   ([`gauntlet_harness::profile::hold`]), and a member that dies mid-run is one
//!   [`Crash`] finding with the cases in flight and the log tail ([`crash`]).
//!
//! # Running it
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use gauntlet_conformance::{catalogue, run, Event, Ledger, RunOptions, Under, Verdict};
//! use gauntlet_harness::Cache;
//! let under = Under::Launch { target: "etcd@3.5.1".parse()?, members: 1, cache: Cache::from_env() };
//! let report = run(&catalogue(), &under, &RunOptions::default(), &Ledger::builtin(), |e| match e {
//!     Event::Holding(h) => println!("held to {}", h.profile),
//!     Event::Case(r) => println!("{} {:?}", r.id, r.outcome),
//!     Event::Crash(c) => println!("target died: {}", c.headline()),
//!     Event::Note(n) => println!("{n}"),
//! })
//! .await?;
//! assert_eq!(report.verdict(), Verdict::Passed);
//! # Ok(()) }
//! ```
//!
//! # Writing a case
//!
//! A case touches only keys under `ctx.prefix` (use [`Ctx::key`]), so cases run
//! concurrently on one cluster. A check asserts with [`case::eq`], [`case::err_is`]
//! (gRPC code AND exact message, from `gauntlet_api::rpctypes`) and [`case::ensure`];
//! every assertion names the request it is about.

pub mod case;
mod cases;
pub mod crash;
mod ledger;
pub mod report;
mod runner;

pub use case::{Case, CheckResult, Ctx, Failure, Needs, Service, Version, Versions};
pub use cases::{catalogue, doc};
pub use crash::{Crash, InFlight, Trigger};
pub use ledger::{KnownIssue, Ledger, LedgerError};
pub use runner::{
    run, select, CaseResult, Counts, Event, NotRunCause, Outcome, Profile, Report, RunError,
    RunOptions, Under, Verdict, CASE_TIMEOUT, DEFAULT_CONCURRENCY, FRESH_PARALLEL, MAX_RESTARTS,
};
