//! The harness's errors. Client-call failures live in [`crate::client`]
//! (they also carry an [`Outcome`](crate::Outcome)); everything about targets,
//! provisioning and clusters is here.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong while resolving, fetching or launching a target.
///
/// Every variant renders as one line that names the thing that failed and, where
/// there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The target string is not one of the forms the harness knows.
    #[error("unknown target `{0}`: expected `reference`, `reference@REV` (a git revision), `etcd@VERSION` (e.g. etcd@3.5.1) or `exec:PATH`")]
    UnknownTarget(String),
    /// The target is known but its binaries are not in the cache.
    #[error("{target} is not in the cache {cache}: run `gauntlet targets fetch {target}`")]
    NotCached {
        /// The target, e.g. `etcd@3.5.1`.
        target: String,
        /// The cache directory that was searched.
        cache: PathBuf,
    },
    /// A binary the target needs does not exist or is not executable.
    #[error("binary not found or not executable: {path} ({hint})")]
    MissingBinary {
        /// Where it was looked for.
        path: PathBuf,
        /// How to get it.
        hint: String,
    },
    /// No source in the source list provides this target.
    #[error("no source provides {target}; known targets: {known}")]
    NoSource {
        /// The target asked for.
        target: String,
        /// The targets the source list does provide, comma separated.
        known: String,
    },
    /// A source failed while fetching; `source_desc` says which.
    #[error("fetching {target} from {source_desc} failed: {reason}")]
    Fetch {
        /// The target being fetched.
        target: String,
        /// Which source (kind and location).
        source_desc: String,
        /// What went wrong.
        reason: String,
    },
    /// A source list file could not be read or parsed.
    #[error("invalid source list {path}: {reason}")]
    SourceList {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A port the cluster was told to use is taken.
    #[error("port {addr} is already in use")]
    PortInUse {
        /// The address that could not be bound.
        addr: SocketAddr,
    },
    /// A member process exited while the cluster was starting or restarting.
    #[error("member {name} exited during start-up ({status}); log {log}: {last_line}")]
    MemberExited {
        /// The member's name.
        name: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last non-empty log line, the usual cause.
        last_line: String,
    },
    /// The cluster did not become ready (every member answering Status, a leader elected) in time.
    #[error("cluster not ready after {after_ms} ms: {detail}")]
    NotReady {
        /// How long was waited.
        after_ms: u64,
        /// The last thing that was not ready.
        detail: String,
    },
    /// A member index outside the cluster.
    #[error("no member {index}: the cluster has {members} members")]
    NoSuchMember {
        /// The index asked for.
        index: usize,
        /// The number of members.
        members: usize,
    },
    /// The operation needs a member that is running (or stopped) and it is not.
    #[error("member {name} is {state}, cannot {action}")]
    MemberState {
        /// The member's name.
        name: String,
        /// Its current state.
        state: String,
        /// What was attempted.
        action: String,
    },
    /// Bad argument given to the harness (member count, options).
    #[error("{0}")]
    Invalid(String),
    /// The target does not implement what the operation needs (it answered
    /// Unimplemented); nothing was changed.
    #[error("not supported by the target: {0}")]
    Unsupported(String),
    /// A Docker call failed (the command and Docker's first line of error).
    #[error("docker: {0}")]
    Docker(String),
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

impl HarnessError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result with [`HarnessError`].
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;
