//! Gauntlet's skew suite: mixed-version clusters, rolling upgrade, rollback, refused
//! downgrades and client skew, under recorded traffic, against the binaries a user
//! will deploy.
//!
//! # A skew run
//!
//! `gauntlet skew --from etcd@3.4.23 --to etcd@3.5.1` first asks each side its server
//! version ([`run::probe_version`]: a one-member cluster and its `/version`) and derives
//! what the pair is documented to do ([`expect::Expect`]: the cluster version while
//! versions mix and after, which starts must be refused and with what text, what the
//! Downgrade API answers). Then every [`scenario::Scenario`] runs on a fresh 3-member
//! cluster of the old version:
//!
//! 1. [`gauntlet_chaos::round::Session`] starts the chaos suite's recorded traffic
//!    (either profile) and a watcher on every member.
//! 2. The scenario's steps swap binaries member by member
//!    ([`gauntlet_harness::Cluster::set_member_target`]: stop, new binary, same flags
//!    and data dir, start), move the leadership, kill, partition, replace members and
//!    call the Downgrade API. After each step it reads every member's `/version`,
//!    member list and HashKV, and holds what it sees to the expectation, each
//!    [`run::Check`] naming the document it comes from. A start that should be refused
//!    is watched until the member exits or serves, and the refusal line it printed is
//!    recorded as it is.
//! 3. The session's judgement, the same as a chaos round's: the whole history
//!    linearizable, every watch guarantee on every member's streams across the
//!    restarts, acknowledged writes present, HashKV equal at the end.
//!
//! A documented refusal that happens is a pass; an undocumented one, or a documented
//! one that does not happen, is a failure; a refusal that is a known bug of the
//! release (etcd 3.5's restart while a downgrade is enabled) is a known issue.
//! [`report::Matrix`] collects the verdicts (Markdown, JSON, JUnit), with a directory
//! per failing scenario (history, watches, evidence, member logs, rerun command).
//!
//! Invariant: servers are judged only through the wire (`/version`, gRPC, their exit
//! and what they printed); no data dir is read.

pub mod client;
pub mod expect;
pub mod report;
pub mod run;
pub mod scenario;
