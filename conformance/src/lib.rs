//! Gauntlet's conformance crate: the conformance suite: a catalogue of etcd v3 API cases with exact codes and messages.
//!
//! Not built yet: issue 4 fills this crate. It exists now so that the workspace
//! layout and the dependency direction (checked by `xtask/tests/deps.rs`) are
//! fixed from the start. It exports nothing, so nothing can mistake it for
//! working code.
