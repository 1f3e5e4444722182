//! The harness: how Gauntlet reaches a server under test.
//!
//! Every suite (conformance, chaos, bench, skew) works against *some* etcd-compatible
//! cluster and needs the same three things, which this crate provides:
//!
//! 1. **Targets** ([`Target`], [`Cache`]): which server to run (`reference`,
//!    `etcd@3.5.1`, `exec:PATH`) and where its binaries come from. Real etcd is
//!    fetched into a local cache from pinned sources ([`SourceList`]) by
//!    `gauntlet targets fetch`.
//! 2. **Clusters** ([`Cluster`]): start N members of a target on loopback with free
//!    ports, wait until they serve, and crash, pause, stop or restart members while a
//!    suite runs. A cluster is torn down when dropped, panics included.
//! 3. **A client** ([`Client`]): the etcd v3 API with a deadline on every call,
//!    TLS, auth, and a [`Recorder`] hook that sees every operation with its
//!    [`Outcome`] on one monotonic clock.
//!
//! A typical test:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use gauntlet_harness::{Cache, Cluster, ClusterSpec, Target};
//! let target: Target = "etcd@3.5.1".parse()?;
//! let cluster = Cluster::start(ClusterSpec::new(target, 3), &Cache::from_env()).await?;
//! let client = cluster.client().await?;
//! client.put("hello", "world").await?;
//! cluster.kill(cluster.leader().await?)?; // SIGKILL the leader
//! # Ok(()) }
//! ```
//!
//! Two decisions every suite shares live here too: [`profile::hold`] (which etcd
//! behaviour a server is held to, whatever version it reports) and
//! [`liveness::Monitor`] (noticing a member that stops answering mid-run, so that a
//! dying target is reported as the finding, once).
//!
//! Invariant: no process started by a [`Cluster`] outlives it. Members are killed on
//! drop, and each member also gets `SIGKILL` from the kernel if the process that
//! started it dies.

mod client;
mod cluster;
pub mod docker;
/// The power-loss filesystem under members' data dirs ([`ClusterSpec::power_loss`]).
pub use gauntlet_powerfs as powerfs;
mod error;
pub mod gofail;
pub mod liveness;
pub mod netdelay;
pub mod netproxy;
pub mod pki;
pub mod profile;
mod provision;
mod proxy;
mod record;
pub mod revbuild;
pub mod sockowner;
mod target;
pub mod toxiproxy;

pub use client::{
    Client, ClientConfig, ClientError, Credentials, LeaseKeeper, TlsFiles, WatchStream,
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_DIAL_TIMEOUT, MAX_RESPONSE_BYTES,
};
pub use cluster::{
    Backend, Cluster, ClusterSpec, ClusterTls, MemberInfo, MemberState, PeerProxy, PowerLoss,
    Versions,
};
pub use error::{HarnessError, Result};
pub use provision::{
    sha256_file, verify, Cache, CachedTarget, DebPackage, FetchOutcome, Manifest, Source,
    SourceKind, SourceList, BUILTIN_SOURCES, CACHE_ENV,
};
pub use proxy::{DeathHook, DieOn, Mutation, Proxy, ProxyOptions};
pub use record::{
    classify, now_ns, Call, FailureKind, MemoryRecorder, OpRecord, Outcome, Recordable, Recorder,
    Request, Return, SentRecord, WatchRecord, MEMORY_RECORDER_LIMIT,
};
pub use target::{Target, REFERENCE_SERVER_BIN, REFERENCE_SERVER_ENV};
