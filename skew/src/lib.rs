//! Gauntlet's skew crate: mixed-version clusters and rolling upgrade/downgrade under traffic.
//!
//! Not built yet: a later issue fills this crate. It exists now so that the workspace
//! layout and the dependency direction (checked by `xtask/tests/deps.rs`) are
//! fixed from the start. It exports nothing, so nothing can mistake it for
//! working code.
