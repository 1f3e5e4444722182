//! Gauntlet's chaos crate: fault injection (crashes, pauses, partitions, delays, disk faults) under traffic, judged by the checker.
//!
//! Not built yet: a later issue fills this crate. It exists now so that the workspace
//! layout and the dependency direction (checked by `xtask/tests/deps.rs`) are
//! fixed from the start. It exports nothing, so nothing can mistake it for
//! working code.
