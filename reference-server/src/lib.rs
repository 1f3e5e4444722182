//! Gauntlet's reference server: an etcd-compatible server (Raft via the `raft`
//! crate, MVCC on `sled`, gRPC via `tonic`).
//!
//! Not built yet: issue 3 fills this crate and adds the `gauntlet-server`
//! binary. Until then the harness's `reference` target reports that the
//! binary is missing instead of pretending to launch anything.
