//! Gauntlet's chaos suite: seeded fault rounds under recorded traffic, judged
//! black-box by the checker, against any target gauntlet can launch.
//!
//! # A round
//!
//! 1. [`scenario::plan`] picks, from `(seed, round)` alone, the fault and the cluster's
//!    settings (election timing, `--snapshot-count` as low as 50).
//! 2. [`round::run_round`] launches a fresh cluster, checks it is empty at revision 1,
//!    starts [`traffic`] (recorded by the harness client: one request in flight per
//!    client, a deadline on each, no retries) and a [`watch`]er on every member, waits
//!    about a second, runs the fault ([`fault`]: inject, verify it took effect, hold,
//!    heal, wait until the cluster serves), keeps traffic going a second more, then
//!    requires a final write to succeed and reads everything once more.
//! 3. [`validate`] judges what was observed, and nothing else: linearizability of the
//!    whole history, every watch guarantee on every member's streams, acknowledged
//!    writes present, no value nobody wrote, HashKV equal on every member.
//! 4. [`report`] writes a directory per failing round (history that `gauntlet check
//!    --model etcd` re-checks, watch streams, fault timeline, member logs and data,
//!    the rerun command, and [`timeline`]'s `timeline.html`: every operation per client
//!    on one time axis, the fault window, the operations the findings name outlined)
//!    and `summary.json`, `junit.xml`, `summary.md` for the run.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use gauntlet_chaos::{fault::FaultKind, round, scenario, traffic::TrafficConfig};
//! let opts = round::RoundOptions {
//!     target: "etcd@3.5.1".parse()?,
//!     cache: gauntlet_harness::Cache::from_env(),
//!     traffic: TrafficConfig::default(),
//!     before_fault: std::time::Duration::from_secs(1),
//!     after_fault: std::time::Duration::from_secs(1),
//!     check_timeout: std::time::Duration::from_secs(60),
//!     mutation: None,
//!     toxiproxy: None,
//!     backend: gauntlet_harness::Backend::Process,
//!     etcd_release: None,
//!     ledger: gauntlet_chaos::ledger::Ledger::builtin(),
//!     out: None,
//!     keep_all: false,
//!     rerun: "gauntlet chaos --target etcd@3.5.1 --seed 1".into(),
//! };
//! let spec = scenario::plan(1, 0, 3, &[FaultKind::KillLeader], scenario::TrafficProfile::Etcd);
//! let r = round::run_round(spec, &opts).await;
//! println!("{:?}: {:?}", r.verdict, r.findings);
//! # Ok(()) }
//! ```
//!
//! Invariant: a round is judged only through the wire and what the run observed; no
//! suite reads a server's files (data dirs are copied into failing rounds' evidence,
//! never read by validation).

pub mod convert;
pub mod fault;
pub mod kube;
pub mod ledger;
pub mod regression;
pub mod report;
pub mod round;
pub mod scenario;
pub mod timeline;
pub mod traffic;
pub mod validate;
pub mod watch;
