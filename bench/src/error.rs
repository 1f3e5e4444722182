//! The bench crate's error type.

use gauntlet_harness::{ClientError, HarnessError};

/// Why a bench run could not start or finish.
///
/// Failed *operations* are not errors: they are counted in the run's error
/// distribution. These are the reasons a run as a whole cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag or a combination of flags makes no sense (zero clients, a value larger
    /// than a request may be, ...). The message names the flag.
    #[error("{0}")]
    InvalidArgument(String),
    /// No endpoint could be reached, or the connection setup failed.
    #[error("cannot connect: {0}")]
    Connect(#[from] ClientError),
    /// Launching or driving a cluster failed.
    #[error(transparent)]
    Harness(#[from] HarnessError),
    /// A setup step the workload needs (granting leases, creating watchers, seeding
    /// keys) failed, so the measurement would be meaningless.
    #[error("setup failed: {0}")]
    Setup(String),
    /// Reading or writing a result, baseline or plot file failed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Shorthand for this crate's results.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// An [`BenchError::InvalidArgument`] unless `ok`.
pub(crate) fn ensure(ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(BenchError::InvalidArgument(msg()))
    }
}
