//! Gauntlet's bench suite: etcd-benchmark-compatible load, a Kubernetes-shaped
//! profile, side-by-side comparison, a regression gate, and plots.
//!
//! The suite reaches a target only through the harness, so it measures any
//! etcd-compatible server the same way. A run goes like this:
//!
//! 1. **Flags** ([`BenchOpts`], [`Workload`]) carry etcd's benchmark names and
//!    defaults (`--conns --clients put --key-size --val-size --total --rate ...`).
//!    Bad values are refused before anything connects ([`Workload::validate`]).
//! 2. **Connections** ([`Pool`]): `--conns` gRPC connections, shared by `--clients`
//!    client tasks; an unreachable target fails within the dial timeout.
//! 3. **Load** ([`gen::drive`]): closed loop, or open loop at `--rate` with latency
//!    measured from each operation's due time (coordinated omission corrected).
//!    Keys and values are made ahead from `--seed` ([`keys`]).
//! 4. **Figures** ([`Recorder`] → [`OpSummary`]): HDR histograms, etcd's summary,
//!    percentiles to 99.9, error distribution, a per-second timeline, and the
//!    generator's own CPU per operation, which says whether the generator or the
//!    target was the bottleneck ([`CpuReport`]).
//!    With `--auth` on a launched cluster, the load runs as an unprivileged user
//!    under etcd's auth ([`auth`]).
//! 5. **Verdicts**: [`gate::gate`] against a baseline, [`compare::compare`] of two
//!    targets, [`kube`] SLOs; [`plot::write_plots`] draws SVGs and an HTML page.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gauntlet_bench::BenchError> {
//! use clap::Parser;
//! use gauntlet_bench::{BenchOpts, Workload};
//! use gauntlet_harness::ClientConfig;
//!
//! #[derive(Parser)]
//! struct Cmd {
//!     #[command(flatten)]
//!     opts: BenchOpts,
//!     #[command(subcommand)]
//!     workload: Workload,
//! }
//! let cmd = Cmd::parse_from(["bench", "--clients", "10", "--conns", "2", "put", "--total", "1000"]);
//! let result = gauntlet_bench::run(&cmd.workload, &cmd.opts, ClientConfig::new(["127.0.0.1:2379"]), vec![]).await?;
//! println!("{}", result.to_text());
//! # Ok(()) }
//! ```
//!
//! Invariant: every run is bounded in time: `--total` operations, and a hard
//! `--timeout` after which nothing new is sent and in-flight calls get one command
//! timeout to finish.

mod args;
pub mod auth;
pub mod compare;
mod cpu;
mod error;
pub mod gate;
pub mod gen;
pub mod keys;
pub mod kube;
pub mod plot;
mod pool;
mod result;
mod stats;
mod workloads;

pub use args::{
    parse_duration, BenchOpts, Consistency, Format, LeaseKeepaliveArgs, PutArgs, RangeArgs,
    TxnMixedArgs, TxnPutArgs, WatchArgs, WatchGetArgs, WatchLatencyArgs, Workload, MAX_CLIENTS,
    MAX_TOTAL,
};
pub use cpu::{parse_stat_cpu, process_cpu};
pub use error::{BenchError, Result};
pub use gen::CpuReport;
pub use pool::{ConnectOpts, Pool};
pub use result::{RampStep, RunResult, SloRow, SCHEMA_VERSION};
pub use stats::{OpSummary, Percentile, Recorder, TimelinePoint};
pub use workloads::{txn_put_request, Ctx};

use gauntlet_harness::ClientConfig;

/// Validates the flags, connects, and runs `workload`. `target_pids` are the target's
/// processes when known (their CPU goes into the result).
pub async fn run(
    workload: &Workload,
    opts: &BenchOpts,
    client: ClientConfig,
    target_pids: Vec<u32>,
) -> Result<RunResult> {
    opts.validate()?;
    workload.validate()?;
    let client_for_status = client.clone();
    let pool = Pool::connect(&ConnectOpts {
        client,
        conns: opts.conns,
        target_leader: opts.target_leader,
    })
    .await?;
    // What the target says it is, decided the way every suite decides it.
    let reported = match gauntlet_harness::Client::connect(client_for_status).await {
        Ok(c) => c
            .status(gauntlet_api::etcdserverpb::StatusRequest {})
            .await
            .map(|s| s.version)
            .ok(),
        Err(_) => None,
    };
    let ctx = Ctx {
        pool,
        opts: opts.clone(),
        target_pids,
        params: format!("{workload:?}"),
    };
    let mut result = match workload {
        Workload::Put(a) => workloads::put(&ctx, a).await,
        Workload::Range(a) => workloads::range(&ctx, a).await,
        Workload::TxnPut(a) => workloads::txn_put(&ctx, a).await,
        Workload::TxnMixed(a) => workloads::txn_mixed(&ctx, a).await,
        Workload::Watch(a) => workloads::watch(&ctx, a).await,
        Workload::WatchLatency(a) => workloads::watch_latency(&ctx, a).await,
        Workload::WatchGet(a) => workloads::watch_get(&ctx, a).await,
        Workload::LeaseKeepalive(a) => workloads::lease_keepalive(&ctx, a).await,
        Workload::Kube(a) => kube::run(&ctx, a).await,
    }?;
    match reported {
        Some(v) => {
            let holding = gauntlet_harness::profile::hold(&v, None);
            if let Some(notice) = holding.notice() {
                result.notes.push(notice);
            }
            result.held_to = Some(holding.profile);
            result.server_version = Some(v);
        }
        None => result
            .notes
            .push("the target did not answer Status: its version is unknown".into()),
    }
    Ok(result)
}
