//! The command line: every flag `etcd --help` lists in 3.4.23 or 3.5.1, under etcd's
//! name, with etcd's default and its `ETCD_*` variable. What the server does with
//! each flag is not said here but in [`super::catalog`]; the checks that need more
//! than one flag are in [`super::Config::from_flags`].
//!
//! Values parse the way Go's `flag` package parses them, because that is what
//! scripts written for etcd send: booleans are `--flag`, `--flag=true` or
//! `--flag=false` (never `--flag false`), durations are Go durations (`1h30m`),
//! lists are comma-separated. Every boolean has the same clap shape (`num_args =
//! 0..=1`, `require_equals`, `default_missing_value = "true"`, [`go_bool`]): `--x`
//! is true, `--x=VALUE` takes any spelling Go's `strconv.ParseBool` takes, and a
//! separate word after `--x` is not its value (Go would not take it either).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

/// `gauntlet-server`'s flags: all of etcd's (see [`super::catalog`] for what each does here).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "gauntlet-server",
    version,
    next_line_help = true,
    allow_negative_numbers = true,
    about = "An etcd-compatible server (Raft + MVCC), Gauntlet's reference target",
    after_help = "Every flag is also read from ETCD_<FLAG> (upper case, dashes as underscores); \
                  a flag on the command line wins. With --config-file, the YAML file is the \
                  whole configuration: other flags and ETCD_* variables are ignored, as in etcd."
)]
pub struct Flags {
    /// YAML configuration file with etcd's keys; when given, other flags and ETCD_* variables are ignored.
    #[arg(long, env = "ETCD_CONFIG_FILE", value_parser = path)]
    pub config_file: Option<PathBuf>,

    // ---- Member ----
    /// Human-readable name of this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: ${name}.etcd).
    #[arg(long, env = "ETCD_DATA_DIR", value_parser = path)]
    pub data_dir: Option<PathBuf>,
    /// Dedicated directory for the write-ahead log (default: <data-dir>/member/wal).
    #[arg(long, env = "ETCD_WAL_DIR", value_parser = path)]
    pub wal_dir: Option<PathBuf>,
    /// Number of committed transactions to trigger a snapshot (and log compaction).
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Fast-forward the election ticks at start so the first election comes sooner.
    #[arg(long, env = "ETCD_INITIAL_ELECTION_TICK_ADVANCE", default_value = "true",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub initial_election_tick_advance: bool,
    /// URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380",
        value_delimiter = ','
    )]
    pub listen_peer_urls: Vec<String>,
    /// URLs to listen on for client traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379",
        value_delimiter = ','
    )]
    pub listen_client_urls: Vec<String>,
    /// Snapshot files to keep (0 is unlimited).
    #[arg(long, env = "ETCD_MAX_SNAPSHOTS", default_value_t = 5)]
    pub max_snapshots: u64,
    /// WAL files to keep (0 is unlimited).
    #[arg(long, env = "ETCD_MAX_WALS", default_value_t = 5)]
    pub max_wals: u64,
    /// Raise an alarm when the backend exceeds this size (0 = default 2 GiB).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: u64,
    /// bbolt freelist type: array or map.
    #[arg(long, env = "ETCD_BACKEND_BBOLT_FREELIST_TYPE", default_value = "map",
          value_parser = ["array", "map"])]
    pub backend_bbolt_freelist_type: String,
    /// Longest time before the backend commits a batch (empty or 0: the backend's own).
    #[arg(long, env = "ETCD_BACKEND_BATCH_INTERVAL", default_value = "", value_parser = parse_duration_or_unset)]
    pub backend_batch_interval: Duration,
    /// Most operations before the backend commits a batch (0: the backend's own).
    #[arg(long, env = "ETCD_BACKEND_BATCH_LIMIT", default_value_t = 0)]
    pub backend_batch_limit: i64,
    /// Maximum number of operations in one transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: u32,
    /// Maximum client request size in bytes the server accepts.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = 1_572_864)]
    pub max_request_bytes: u32,
    /// Shortest interval a client should wait between keepalive pings.
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_MIN_TIME", default_value = "5s", value_parser = parse_duration)]
    pub grpc_keepalive_min_time: Duration,
    /// Interval of server-to-client keepalive pings (0 disables).
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_INTERVAL", default_value = "2h", value_parser = parse_duration)]
    pub grpc_keepalive_interval: Duration,
    /// Wait for a keepalive answer before closing the connection (0 disables).
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub grpc_keepalive_timeout: Duration,
    /// Set SO_REUSEPORT on listeners.
    #[arg(long, env = "ETCD_SOCKET_REUSE_PORT", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub socket_reuse_port: bool,
    /// Set SO_REUSEADDR on listeners.
    #[arg(long, env = "ETCD_SOCKET_REUSE_ADDRESS", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub socket_reuse_address: bool,
    /// Most concurrent streams per client connection (etcd 3.4; default 2^32-1).
    #[arg(long, env = "ETCD_MAX_CONCURRENT_STREAMS", default_value_t = u32::MAX)]
    pub max_concurrent_streams: u32,

    // ---- Clustering ----
    /// Peer URLs advertised to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380",
        value_delimiter = ','
    )]
    pub initial_advertise_peer_urls: Vec<String>,
    /// Initial cluster configuration: name=peerURL,... (left at its default with another
    /// --name, it becomes name=each --initial-advertise-peer-urls, as in etcd).
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER",
        default_value = DEFAULT_INITIAL_CLUSTER
    )]
    pub initial_cluster: String,
    /// `new` or `existing`.
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new", value_parser = ["new", "existing"])]
    pub initial_cluster_state: String,
    /// Token distinguishing this cluster from others started with the same configuration.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,
    /// Client URLs advertised to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379",
        value_delimiter = ','
    )]
    pub advertise_client_urls: Vec<String>,
    /// Discovery URL to bootstrap the cluster with.
    #[arg(long, env = "ETCD_DISCOVERY", default_value = "")]
    pub discovery: String,
    /// What to do when discovery fails: exit or proxy.
    #[arg(long, env = "ETCD_DISCOVERY_FALLBACK", default_value = "proxy", value_parser = ["exit", "proxy"])]
    pub discovery_fallback: String,
    /// HTTP proxy for traffic to the discovery service.
    #[arg(long, env = "ETCD_DISCOVERY_PROXY", default_value = "")]
    pub discovery_proxy: String,
    /// DNS SRV domain to bootstrap the cluster with.
    #[arg(long, env = "ETCD_DISCOVERY_SRV", default_value = "")]
    pub discovery_srv: String,
    /// Suffix of the DNS SRV name queried when bootstrapping.
    #[arg(long, env = "ETCD_DISCOVERY_SRV_NAME", default_value = "")]
    pub discovery_srv_name: String,
    /// Reject reconfiguration requests that would cost the cluster its quorum.
    #[arg(long, env = "ETCD_STRICT_RECONFIG_CHECK", default_value = "true",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub strict_reconfig_check: bool,
    /// Run raft's pre-vote phase before an election (etcd 3.5's default: true; 3.4's was false).
    #[arg(long, env = "ETCD_PRE_VOTE", default_value = "true",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub pre_vote: bool,
    /// Retention for auto compaction: a duration (`1h`, `30m`, plain number = hours) in periodic
    /// mode, a revision count in revision mode; 0 disables.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,
    /// `periodic` or `revision`.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE", default_value = "periodic", value_parser = ["periodic", "revision"])]
    pub auto_compaction_mode: String,
    /// Serve the v2 API.
    #[arg(long, env = "ETCD_ENABLE_V2", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub enable_v2: bool,
    /// Phase of the v2 store's deprecation.
    #[arg(long, env = "ETCD_V2_DEPRECATION", default_value = "not-yet",
          value_parser = ["not-yet", "write-only", "write-only-drop-data", "gone"])]
    pub v2_deprecation: String,

    // ---- Security ----
    /// Client TLS certificate.
    #[arg(long, env = "ETCD_CERT_FILE", value_parser = path)]
    pub cert_file: Option<PathBuf>,
    /// Client TLS key.
    #[arg(long, env = "ETCD_KEY_FILE", value_parser = path)]
    pub key_file: Option<PathBuf>,
    /// Require client certificates signed by the trusted CA.
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub client_cert_auth: bool,
    /// Certificate revocation list for client certificates.
    #[arg(long, env = "ETCD_CLIENT_CRL_FILE", default_value = "")]
    pub client_crl_file: String,
    /// Hostname a client certificate must carry.
    #[arg(long, env = "ETCD_CLIENT_CERT_ALLOWED_HOSTNAME", default_value = "")]
    pub client_cert_allowed_hostname: String,
    /// CA to verify client certificates with.
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE", value_parser = path)]
    pub trusted_ca_file: Option<PathBuf>,
    /// Client TLS with generated certificates.
    #[arg(long, env = "ETCD_AUTO_TLS", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub auto_tls: bool,
    /// Peer TLS certificate.
    #[arg(long, env = "ETCD_PEER_CERT_FILE", default_value = "")]
    pub peer_cert_file: String,
    /// Peer TLS key.
    #[arg(long, env = "ETCD_PEER_KEY_FILE", default_value = "")]
    pub peer_key_file: String,
    /// Require peer certificates signed by the peer CA.
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_AUTH", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub peer_client_cert_auth: bool,
    /// CA to verify peer certificates with.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE", default_value = "")]
    pub peer_trusted_ca_file: String,
    /// Common name a peer certificate must carry.
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_CN", default_value = "")]
    pub peer_cert_allowed_cn: String,
    /// Hostname a peer certificate must carry.
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_HOSTNAME", default_value = "")]
    pub peer_cert_allowed_hostname: String,
    /// Peer TLS with generated certificates.
    #[arg(long, env = "ETCD_PEER_AUTO_TLS", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub peer_auto_tls: bool,
    /// Validity in years of generated certificates.
    #[arg(long, env = "ETCD_SELF_SIGNED_CERT_VALIDITY", default_value_t = 1)]
    pub self_signed_cert_validity: u32,
    /// Certificate revocation list for peer certificates.
    #[arg(long, env = "ETCD_PEER_CRL_FILE", default_value = "")]
    pub peer_crl_file: String,
    /// Comma-separated TLS cipher suites, Go's names (empty: the TLS library's choice).
    #[arg(long, env = "ETCD_CIPHER_SUITES", default_value = "")]
    pub cipher_suites: String,
    /// Lowest TLS version served and dialed: TLS1.2 or TLS1.3 (empty: TLS1.2). etcd 3.6's flag.
    #[arg(long, env = "ETCD_TLS_MIN_VERSION", default_value = "")]
    pub tls_min_version: String,
    /// Highest TLS version served and dialed: TLS1.2 or TLS1.3 (empty: TLS1.2 as etcd 3.5, or TLS1.3 when the minimum is). etcd 3.6's flag.
    #[arg(long, env = "ETCD_TLS_MAX_VERSION", default_value = "")]
    pub tls_max_version: String,
    /// Comma-separated CORS origins (empty or * allows all).
    #[arg(long, env = "ETCD_CORS", default_value = "*")]
    pub cors: String,
    /// Comma-separated hostnames accepted in HTTP requests on insecure listeners (empty or * allows all).
    #[arg(long, env = "ETCD_HOST_WHITELIST", default_value = "*")]
    pub host_whitelist: String,

    // ---- Auth ----
    /// Auth token type and options: `simple` or `jwt,...`.
    #[arg(long, env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,
    /// bcrypt cost for hashing passwords (4 to 31).
    #[arg(long, env = "ETCD_BCRYPT_COST", default_value_t = 10)]
    pub bcrypt_cost: u32,
    /// Lifetime in seconds of a simple auth token.
    #[arg(long, env = "ETCD_AUTH_TOKEN_TTL", default_value_t = 300)]
    pub auth_token_ttl: u32,

    // ---- Profiling and monitoring ----
    /// Serve Go's pprof data under the client URLs.
    #[arg(long, env = "ETCD_ENABLE_PPROF", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub enable_pprof: bool,
    /// Detail of exported metrics: basic or extensive.
    #[arg(long, env = "ETCD_METRICS", default_value = "basic", value_parser = ["basic", "extensive"])]
    pub metrics: String,
    /// Comma-separated extra URLs serving /metrics and /health.
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS", default_value = "")]
    pub listen_metrics_urls: String,

    // ---- Logging ----
    /// Logger: zap, or capnslog (deprecated, etcd 3.4's default).
    #[arg(long, env = "ETCD_LOGGER", default_value = "zap", value_parser = ["zap", "capnslog"])]
    pub logger: String,
    /// Comma-separated log targets: default, stderr, stdout or file paths.
    #[arg(long, env = "ETCD_LOG_OUTPUTS", default_value = "default")]
    pub log_outputs: String,
    /// debug, info, warn, error, panic or fatal.
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info", value_parser = ["debug", "info", "warn", "error", "panic", "fatal"])]
    pub log_level: String,
    /// Rotate the single log file target.
    #[arg(long, env = "ETCD_ENABLE_LOG_ROTATION", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub enable_log_rotation: bool,
    /// Log rotation settings as JSON (used only with --enable-log-rotation).
    #[arg(
        long,
        env = "ETCD_LOG_ROTATION_CONFIG_JSON",
        default_value = r#"{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}"#
    )]
    pub log_rotation_config_json: String,
    /// Debug-level logging (etcd 3.4; same as --log-level=debug).
    #[arg(long, env = "ETCD_DEBUG", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub debug: bool,
    /// Per-package log levels of capnslog (etcd 3.4).
    #[arg(long, env = "ETCD_LOG_PACKAGE_LEVELS", default_value = "")]
    pub log_package_levels: String,

    // ---- Experimental distributed tracing ----
    /// Export traces over OpenTelemetry.
    #[arg(long, env = "ETCD_EXPERIMENTAL_ENABLE_DISTRIBUTED_TRACING", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub experimental_enable_distributed_tracing: bool,
    /// Trace collector address.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_DISTRIBUTED_TRACING_ADDRESS",
        default_value = "localhost:4317"
    )]
    pub experimental_distributed_tracing_address: String,
    /// Service name in traces.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_DISTRIBUTED_TRACING_SERVICE_NAME",
        default_value = "etcd"
    )]
    pub experimental_distributed_tracing_service_name: String,
    /// Instance id in traces.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_DISTRIBUTED_TRACING_INSTANCE_ID",
        default_value = ""
    )]
    pub experimental_distributed_tracing_instance_id: String,

    // ---- v2 proxy ----
    /// v2 proxy mode: off, readonly or on.
    #[arg(long, env = "ETCD_PROXY", default_value = "off", value_parser = ["off", "readonly", "on"])]
    pub proxy: String,
    /// Milliseconds a failed endpoint stays failed (v2 proxy).
    #[arg(long, env = "ETCD_PROXY_FAILURE_WAIT", default_value_t = 5000)]
    pub proxy_failure_wait: u64,
    /// Milliseconds between endpoint refreshes (v2 proxy).
    #[arg(long, env = "ETCD_PROXY_REFRESH_INTERVAL", default_value_t = 30000)]
    pub proxy_refresh_interval: u64,
    /// Dial timeout in milliseconds (v2 proxy).
    #[arg(long, env = "ETCD_PROXY_DIAL_TIMEOUT", default_value_t = 1000)]
    pub proxy_dial_timeout: u64,
    /// Write timeout in milliseconds (v2 proxy).
    #[arg(long, env = "ETCD_PROXY_WRITE_TIMEOUT", default_value_t = 5000)]
    pub proxy_write_timeout: u64,
    /// Read timeout in milliseconds (v2 proxy; 0 is none).
    #[arg(long, env = "ETCD_PROXY_READ_TIMEOUT", default_value_t = 0)]
    pub proxy_read_timeout: u64,

    // ---- Experimental ----
    /// Check the data for corruption against the peers before serving.
    #[arg(long, env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub experimental_initial_corrupt_check: bool,
    /// Interval of periodic corruption checks across the cluster (0 disables).
    #[arg(long, env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME", default_value = "0s", value_parser = parse_duration)]
    pub experimental_corrupt_check_time: Duration,
    /// Serve v2 requests from the v3 store under this prefix (empty disables).
    #[arg(long, env = "ETCD_EXPERIMENTAL_ENABLE_V2V3", default_value = "")]
    pub experimental_enable_v2v3: String,
    /// Persist leases' remaining TTLs through raft so a leader change does not renew them.
    #[arg(long, env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub experimental_enable_lease_checkpoint: bool,
    /// Most revisions deleted in one compaction batch.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_COMPACTION_BATCH_LIMIT",
        default_value_t = 1000
    )]
    pub experimental_compaction_batch_limit: i64,
    /// Skip the SAN check of client certificates on peer connections.
    #[arg(long, env = "ETCD_EXPERIMENTAL_PEER_SKIP_CLIENT_SAN_VERIFICATION", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub experimental_peer_skip_client_san_verification: bool,
    /// Interval between watch progress notifications.
    #[arg(long = "experimental-watch-progress-notify-interval", env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub watch_progress_notify_interval: Duration,
    /// Log a warning when applying a request takes longer than this.
    #[arg(long, env = "ETCD_EXPERIMENTAL_WARNING_APPLY_DURATION", default_value = "100ms", value_parser = parse_duration)]
    pub experimental_warning_apply_duration: Duration,
    /// Let write transactions share the read buffer in their read-only checks.
    #[arg(long, env = "ETCD_EXPERIMENTAL_TXN_MODE_WRITE_WITH_SHARED_BUFFER", default_value = "true",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub experimental_txn_mode_write_with_shared_buffer: bool,
    /// Defragment at start when that frees at least this many megabytes (0 disables).
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_BOOTSTRAP_DEFRAG_THRESHOLD_MEGABYTES",
        default_value_t = 0
    )]
    pub experimental_bootstrap_defrag_threshold_megabytes: u64,
    /// bbolt freelist type, etcd 3.4's name: array or map.
    #[arg(long, env = "ETCD_EXPERIMENTAL_BACKEND_BBOLT_FREELIST_TYPE", default_value = "array",
          value_parser = ["array", "map"])]
    pub experimental_backend_bbolt_freelist_type: String,
    /// Serve the JSON gRPC gateway on the client URLs (not listed by `etcd --help`).
    #[arg(long, env = "ETCD_ENABLE_GRPC_GATEWAY", default_value = "true",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub enable_grpc_gateway: bool,

    // ---- Unsafe ----
    /// Start a new one-member cluster from this member's data.
    #[arg(long, env = "ETCD_FORCE_NEW_CLUSTER", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub force_new_cluster: bool,
    /// Never fsync the WAL: fast, and a crash loses acknowledged writes.
    #[arg(long, env = "ETCD_UNSAFE_NO_FSYNC", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = go_bool, action = ArgAction::Set)]
    pub unsafe_no_fsync: bool,
}

/// `--initial-cluster`'s default.
pub const DEFAULT_INITIAL_CLUSTER: &str = "default=http://localhost:2380";

/// Parses a boolean the way Go's `strconv.ParseBool` does (etcd's flag package uses it).
pub fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("`{s}` is not a boolean (true or false)")),
    }
}

/// Parses Go durations (`time.ParseDuration`): a sequence of decimal numbers with a
/// unit each (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), such as `500ms`, `1h30m`, `0`.
/// Negative durations are refused: no etcd flag means anything by them.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("an empty duration (write 0s)".into());
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err(format!("`{s}` must be a non-negative duration"));
    }
    let mut secs = 0f64;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(|| format!("`{s}` has no unit (ns, us, ms, s, m, h)"))?;
        let n: f64 = rest[..split]
            .parse()
            .map_err(|_| format!("`{s}` is not a duration"))?;
        rest = &rest[split..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => return Err(format!("`{s}`: unknown unit `{u}`")),
        };
        secs += n * scale;
        rest = &rest[unit_len..];
    }
    if !secs.is_finite() {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// [`parse_duration`], where an empty value means "unset" (zero): etcd prints the
/// default of `--backend-batch-interval` as `''`.
fn parse_duration_or_unset(s: &str) -> Result<Duration, String> {
    if s.trim().is_empty() {
        Ok(Duration::ZERO)
    } else {
        parse_duration(s)
    }
}

/// A path; empty is allowed and means unset (etcd prints these defaults as `''`).
fn path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

/// Splits a comma-separated flag value, dropping empty items and surrounding spaces.
pub fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}
