//! What `gauntlet-server` does with each of etcd's flags, in one table.
//!
//! Every flag of [`Flags`](super::Flags) has exactly one row in [`CATALOG`] (a unit
//! test checks both ways), in one of three classes:
//!
//! - [`Class::Honoured`]: the server does what etcd does with the flag.
//! - [`Class::Accepted`]: tuning or observability detail with no effect here. The
//!   value is still parsed and checked with etcd's type, so a script that works with
//!   etcd works here and a typo fails here as it fails there.
//! - [`Class::Unsupported`]: the flag turns on something the server does not have (an
//!   API, a security check, a bootstrap mode). At its default it is accepted; set so
//!   that it turns the feature on, the server refuses to start with one line naming
//!   the flag, since running without the feature would silently break what the
//!   operator relies on.
//!
//! Two rows are gauntlet extensions that etcd 3.4.23 and 3.5.1 do not have:
//! `--tls-min-version` and `--tls-max-version`, etcd 3.6's flags, so that scripts
//! written for 3.6 start this server too.
//!
//! The dividing line between the last two: a flag is unsupported when its absence
//! changes what clients or operators can rely on (API surface, security, data
//! safety, how the cluster forms), and accepted when it only changes performance or
//! how much the server tells about itself.

use super::Flags;

/// How a flag's value is typed, which the YAML configuration file needs to turn a
/// YAML value into the flag's text (see [`super::file`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Go boolean.
    Bool,
    /// An integer (a count, bytes, or milliseconds when the name says so).
    Number,
    /// A Go duration; in etcd's YAML an integer is nanoseconds.
    Duration,
    /// A string.
    Text,
    /// A comma-separated list; YAML may give a sequence instead.
    List,
}

/// What the server does with a flag.
#[derive(Debug, Clone, Copy)]
pub enum Class {
    /// The server does what etcd does with it.
    Honoured,
    /// Parsed and validated with etcd's type; otherwise no effect.
    Accepted,
    /// A feature the server does not have: refused when `enabled` returns the value
    /// that turns it on.
    Unsupported {
        /// The value as given when it turns the feature on; `None` at the default.
        enabled: fn(&Flags) -> Option<String>,
        /// Why it is refused: the rest of the one-line error.
        why: &'static str,
    },
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct FlagInfo {
    /// The flag's long name without dashes (also its YAML key and, upper-cased with
    /// `ETCD_` in front, its environment variable).
    pub name: &'static str,
    /// How its value is typed.
    pub kind: Kind,
    /// What the server does with it.
    pub class: Class,
    /// What this server does with it, in one line.
    pub doc: &'static str,
}

const fn row(name: &'static str, kind: Kind, class: Class, doc: &'static str) -> FlagInfo {
    FlagInfo {
        name,
        kind,
        class,
        doc,
    }
}

use Class::{Accepted, Honoured};
use Kind::{Bool, Duration as Dur, List, Number, Text};

fn on(b: bool) -> Option<String> {
    b.then(|| "true".to_string())
}

fn given(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}

/// Every flag, grouped as `etcd --help` groups them.
pub static CATALOG: &[FlagInfo] = &[
    row("config-file", Text, Honoured, "read the whole configuration from this YAML file (see config::file)"),
    // Member
    row("name", Text, Honoured, "this member's name"),
    row("data-dir", Text, Honoured, "where the state machine and (by default) the WAL live"),
    row("wal-dir", Text, Honoured, "the WAL goes here instead of <data-dir>/member/wal"),
    row("snapshot-count", Number, Honoured, "applied entries between raft log compactions"),
    row("heartbeat-interval", Number, Honoured, "one raft tick"),
    row("election-timeout", Number, Honoured, "election ticks = election-timeout / heartbeat-interval"),
    row("initial-election-tick-advance", Bool, Honoured, "fast-forward election ticks at start (Config::initial_election_ticks)"),
    row("listen-peer-urls", List, Honoured, "peer listeners; https:// ones serve TLS (crate::tls)"),
    row("listen-client-urls", List, Honoured, "client listeners: gRPC, /health, /version, /metrics on one port; https:// ones serve TLS"),
    row("max-snapshots", Number, Accepted, "the server keeps no snapshot files (snapshots come from the state machine)"),
    row("max-wals", Number, Accepted, "WAL segments are deleted as soon as compaction passes them"),
    row("quota-backend-bytes", Number, Honoured, "NOSPACE alarm above this size"),
    row("backend-bbolt-freelist-type", Text, Accepted, "the backend is sled, not bbolt"),
    row("backend-batch-interval", Dur, Accepted, "the backend batches per raft Ready"),
    row("backend-batch-limit", Number, Accepted, "the backend batches per raft Ready"),
    row("max-txn-ops", Number, Honoured, "most operations in one Txn"),
    row("max-request-bytes", Number, Honoured, "largest request accepted"),
    row("grpc-keepalive-min-time", Dur, Accepted, "gRPC keepalive policy is tonic's"),
    row("grpc-keepalive-interval", Dur, Accepted, "gRPC keepalive policy is tonic's"),
    row("grpc-keepalive-timeout", Dur, Accepted, "gRPC keepalive policy is tonic's"),
    row("socket-reuse-port", Bool, Accepted, "listeners use the runtime's socket options"),
    row("socket-reuse-address", Bool, Accepted, "listeners use the runtime's socket options (SO_REUSEADDR is on)"),
    row("max-concurrent-streams", Number, Accepted, "HTTP/2 stream limit is tonic's (etcd 3.4 flag)"),
    // Clustering
    row("initial-advertise-peer-urls", List, Honoured, "this member's peer URLs; must match --initial-cluster"),
    row("initial-cluster", Text, Honoured, "the members of a new cluster and their raft ids"),
    row("initial-cluster-state", Text, Honoured, "new or existing"),
    row("initial-cluster-token", Text, Honoured, "mixed into member and cluster ids"),
    row("advertise-client-urls", List, Honoured, "client URLs in MemberList"),
    row("discovery", Text, Class::Unsupported { enabled: |f| given(&f.discovery), why: "discovery is not supported by gauntlet-server (use --initial-cluster)" }, "bootstrap through a discovery service"),
    row("discovery-fallback", Text, Accepted, "only matters with --discovery"),
    row("discovery-proxy", Text, Accepted, "only matters with --discovery"),
    row("discovery-srv", Text, Class::Unsupported { enabled: |f| given(&f.discovery_srv), why: "DNS SRV discovery is not supported by gauntlet-server (use --initial-cluster)" }, "bootstrap from DNS SRV records"),
    row("discovery-srv-name", Text, Accepted, "only matters with --discovery-srv"),
    row("strict-reconfig-check", Bool, Honoured, "Config::strict_reconfig_check, for membership changes"),
    row("pre-vote", Bool, Honoured, "raft-rs pre_vote (3.5's default true)"),
    row("auto-compaction-retention", Text, Honoured, "what auto compaction keeps"),
    row("auto-compaction-mode", Text, Honoured, "periodic or revision"),
    row("enable-v2", Bool, Class::Unsupported { enabled: |f| on(f.enable_v2), why: "the v2 API is not supported by gauntlet-server (only the v3 API)" }, "the v2 API"),
    row("v2-deprecation", Text, Accepted, "there is no v2 store to deprecate"),
    // Security
    row("cert-file", Text, Honoured, "client TLS certificate (https:// client URLs; ignored with a warning on http:// ones)"),
    row("key-file", Text, Honoured, "client TLS key"),
    row("client-cert-auth", Bool, Honoured, "client certificates required; the verified certificate's CN reaches requests as tls::ClientCert"),
    row("client-crl-file", Text, Honoured, "client certificates whose serial the CRL lists are refused"),
    row("client-cert-allowed-hostname", Text, Honoured, "a client certificate must be valid for this host (Go's VerifyHostname)"),
    row("trusted-ca-file", Text, Honoured, "CA for client certificates; given, it requires them (etcd's rule)"),
    row("auto-tls", Bool, Honoured, "self-signed client certificate in <data-dir>/fixtures/client when none is given"),
    row("peer-cert-file", Text, Honoured, "peer TLS certificate, served and presented when dialing peers"),
    row("peer-key-file", Text, Honoured, "peer TLS key"),
    row("peer-client-cert-auth", Bool, Honoured, "peer certificates required"),
    row("peer-trusted-ca-file", Text, Honoured, "CA for peer certificates, both ways; given, it requires them (etcd's rule)"),
    row("peer-cert-allowed-cn", Text, Honoured, "a peer certificate's CN must be this"),
    row("peer-cert-allowed-hostname", Text, Honoured, "a peer certificate must be valid for this host"),
    row("peer-auto-tls", Bool, Honoured, "self-signed peer certificate in <data-dir>/fixtures/peer; peers then skip verifying it, as in etcd"),
    row("self-signed-cert-validity", Number, Honoured, "years a generated certificate is valid (--auto-tls, --peer-auto-tls)"),
    row("peer-crl-file", Text, Honoured, "peer certificates whose serial the CRL lists are refused"),
    row("cipher-suites", List, Honoured, "Go's suite names; restrict TLS 1.2 (TLS 1.3 suites always on, as in Go); suites rustls lacks are refused"),
    row("tls-min-version", Text, Honoured, "gauntlet extension (etcd 3.6's flag): TLS1.2 (default) or TLS1.3, both sides"),
    row("tls-max-version", Text, Honoured, "gauntlet extension (etcd 3.6's flag): TLS1.2 (default, etcd 3.5's cap) or TLS1.3, both sides"),
    row("cors", List, Accepted, "no CORS headers; a browser is stricter without them, never looser"),
    row("host-whitelist", List, Class::Unsupported { enabled: |f| given(&f.host_whitelist).filter(|v| v.trim() != "*"), why: "restricting HTTP Host names is not supported by gauntlet-server" }, "a Host check on insecure listeners"),
    // Auth
    row("auth-token", Text, Honoured, "simple, or jwt with pub-key, priv-key, sign-method and ttl (see auth)"),
    row("bcrypt-cost", Number, Honoured, "bcrypt cost of password hashes; outside 4..=31 a warning and the default, as etcd"),
    row("auth-token-ttl", Number, Honoured, "seconds a simple token lives without use"),
    // Profiling and monitoring
    row("enable-pprof", Bool, Accepted, "no Go runtime to profile"),
    row("metrics", Text, Accepted, "one set of metrics whatever the level"),
    row("listen-metrics-urls", List, Honoured, "extra listeners serving /metrics and /health; https:// ones with the client TLS"),
    // Logging
    row("logger", Text, Honoured, "zap; capnslog accepted as deprecated (3.4), logs the same way"),
    row("log-outputs", List, Honoured, "default, stderr, stdout or files (appended)"),
    row("log-level", Text, Honoured, "tracing level; panic and fatal log errors"),
    row("enable-log-rotation", Bool, Class::Unsupported { enabled: |f| on(f.enable_log_rotation), why: "log rotation is not supported by gauntlet-server (rotate with logrotate's copytruncate)" }, "rotating the log file"),
    row("log-rotation-config-json", Text, Accepted, "only matters with --enable-log-rotation"),
    row("debug", Bool, Honoured, "etcd 3.4's --debug: --log-level=debug"),
    row("log-package-levels", Text, Accepted, "capnslog's per-package levels (etcd 3.4)"),
    // Experimental distributed tracing
    row("experimental-enable-distributed-tracing", Bool, Class::Unsupported { enabled: |f| on(f.experimental_enable_distributed_tracing), why: "distributed tracing is not supported by gauntlet-server" }, "OpenTelemetry export"),
    row("experimental-distributed-tracing-address", Text, Accepted, "only matters with tracing on"),
    row("experimental-distributed-tracing-service-name", Text, Accepted, "only matters with tracing on"),
    row("experimental-distributed-tracing-instance-id", Text, Accepted, "only matters with tracing on"),
    // v2 proxy
    row("proxy", Text, Class::Unsupported { enabled: |f| (f.proxy != "off").then(|| f.proxy.clone()), why: "the v2 proxy is not supported by gauntlet-server" }, "running as a v2 proxy"),
    row("proxy-failure-wait", Number, Accepted, "only matters with --proxy"),
    row("proxy-refresh-interval", Number, Accepted, "only matters with --proxy"),
    row("proxy-dial-timeout", Number, Accepted, "only matters with --proxy"),
    row("proxy-write-timeout", Number, Accepted, "only matters with --proxy"),
    row("proxy-read-timeout", Number, Accepted, "only matters with --proxy"),
    // Experimental
    row("experimental-initial-corrupt-check", Bool, Honoured, "compare HashKV with the peers before serving; a mismatch refuses to start"),
    row("experimental-corrupt-check-time", Dur, Honoured, "the leader compares every member's HashKV this often; a mismatch raises CORRUPT (0 disables)"),
    row("experimental-enable-v2v3", Text, Class::Unsupported { enabled: |f| given(&f.experimental_enable_v2v3), why: "the v2 API is not supported by gauntlet-server (only the v3 API)" }, "v2 over the v3 store"),
    row("experimental-enable-lease-checkpoint", Bool, Accepted, "the leader always checkpoints remaining TTLs (lease.rs), as etcd does with this on"),
    row("experimental-compaction-batch-limit", Number, Accepted, "compaction is one state machine step"),
    row("experimental-peer-skip-client-san-verification", Bool, Honoured, "peer listeners stop checking a client certificate's SANs against the dialing address"),
    row("experimental-watch-progress-notify-interval", Dur, Honoured, "watch progress notifications (at least 100ms)"),
    row("experimental-warning-apply-duration", Dur, Accepted, "no slow-apply warning"),
    row("experimental-txn-mode-write-with-shared-buffer", Bool, Accepted, "bbolt buffer detail"),
    row("experimental-bootstrap-defrag-threshold-megabytes", Number, Accepted, "no defragmentation at start"),
    row("experimental-backend-bbolt-freelist-type", Text, Accepted, "the backend is sled, not bbolt (etcd 3.4 flag)"),
    row("enable-grpc-gateway", Bool, Accepted, "no JSON gateway; not listed by etcd --help but common in scripts"),
    // Unsafe
    row("force-new-cluster", Bool, Class::Unsupported { enabled: |f| on(f.force_new_cluster), why: "forcing a new cluster from existing data is not supported by gauntlet-server" }, "rewrite membership to this member alone"),
    row("unsafe-no-fsync", Bool, Honoured, "the WAL is written but never fsynced: a crash loses acknowledged writes, as with etcd"),
];

/// The row of a flag, by its long name without dashes.
pub fn info(name: &str) -> Option<&'static FlagInfo> {
    CATALOG.iter().find(|f| f.name == name)
}

/// Fails on the first unsupported feature that `flags` turn on, with one line:
/// `--enable-v2=true: the v2 API is not supported by gauntlet-server (only the v3 API)`.
pub fn refuse_unsupported(flags: &Flags) -> Result<(), String> {
    for f in CATALOG {
        if let Class::Unsupported { enabled, why } = f.class {
            if let Some(value) = enabled(flags) {
                return Err(format!("--{}={value}: {why}", f.name));
            }
        }
    }
    Ok(())
}

/// How many flags are in each class: (honoured, accepted, unsupported).
#[cfg(test)]
pub fn counts() -> (usize, usize, usize) {
    CATALOG
        .iter()
        .fold((0, 0, 0), |(h, a, u), f| match f.class {
            Class::Honoured => (h + 1, a, u),
            Class::Accepted => (h, a + 1, u),
            Class::Unsupported { .. } => (h, a, u + 1),
        })
}
