//! Gauntlet's reports crate: rendering of run results (HTML, Markdown, JSON, JUnit) and the release recommendation.
//!
//! Not built yet: a later issue fills this crate. It exists now so that the workspace
//! layout and the dependency direction (checked by `xtask/tests/deps.rs`) are
//! fixed from the start. It exports nothing, so nothing can mistake it for
//! working code.
