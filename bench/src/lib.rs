//! Gauntlet's bench crate: etcd-benchmark-style and Kubernetes-shaped load with percentiles and plots.
//!
//! Not built yet: issue 6 fills this crate. It exists now so that the workspace
//! layout and the dependency direction (checked by `xtask/tests/deps.rs`) are
//! fixed from the start. It exports nothing, so nothing can mistake it for
//! working code.
