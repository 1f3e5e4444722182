//! `gauntlet-server`: an etcd-compatible server, Gauntlet's reference target.
//!
//! The binary (`src/main.rs`) wires these modules into a member; they are a library so
//! that fuzz targets (`reference-server/fuzz`) can drive the request paths directly.
//!
//! A member is a raft node ([`node`]) over a log kept in a write-ahead log
//! ([`raftlog`], [`wal`]), applying commands to a replicated state machine on sled
//! ([`state`]: MVCC store, leases, watch hub), with etcd's gRPC services on the client URLs ([`services`], plus
//! `/health`, `/version`, `/metrics` from [`http`]) and a peer protocol on the peer
//! URLs ([`transport`], [`peer`]). Lease expiry belongs to the leader ([`lease`]).
//!
//! Start it exactly like etcd: it takes etcd's flag names ([`config`]).

pub mod auth;
pub mod backend;
pub mod bootstrap;
pub mod config;
pub mod corrupt;
pub mod durable;
pub mod failpoints;
pub mod gateway;
pub mod h2fix;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod node;
pub mod oversize;
pub mod peer;
pub mod raftlog;
pub mod services;
pub mod snapshot;
pub mod state;
pub mod tls;
pub mod transport;
pub mod version;
pub mod wal;

#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms
)]
pub mod peerpb {
    tonic::include_proto!("gauntletpeer");
}
