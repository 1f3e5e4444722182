//! Command-line configuration, with etcd's flag names, meanings and defaults, so
//! that scripts written for etcd start `gauntlet-server` unchanged. Every flag can
//! also be given as the environment variable etcd reads (`--data-dir` is
//! `ETCD_DATA_DIR`); a flag on the command line wins.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use sha2::{Digest, Sha256};

/// The etcd API version this server implements and reports in Status and /version.
/// Kubernetes parses it, so it must look like an etcd release.
pub const API_VERSION: &str = "3.5.0";
/// etcd's default backend quota (2 GiB) when `--quota-backend-bytes` is 0.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;

/// `gauntlet-server`'s flags (a subset of etcd's: everything it implements).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "gauntlet-server",
    version,
    about = "An etcd-compatible server (Raft + MVCC), Gauntlet's reference target"
)]
pub struct Flags {
    /// Human-readable name of this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: ${name}.etcd).
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379",
        value_delimiter = ','
    )]
    pub listen_client_urls: Vec<String>,
    /// Client URLs advertised to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379",
        value_delimiter = ','
    )]
    pub advertise_client_urls: Vec<String>,
    /// URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380",
        value_delimiter = ','
    )]
    pub listen_peer_urls: Vec<String>,
    /// Peer URLs advertised to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380",
        value_delimiter = ','
    )]
    pub initial_advertise_peer_urls: Vec<String>,
    /// Initial cluster configuration: name=peerURL,...
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER",
        default_value = "default=http://localhost:2380"
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
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Number of committed transactions to trigger a snapshot (and log compaction).
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Raise an alarm when the backend exceeds this size (0 = default 2 GiB).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: u64,
    /// Maximum number of operations in one transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: u32,
    /// Maximum client request size in bytes the server accepts.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = 1_572_864)]
    pub max_request_bytes: u32,
    /// `periodic` or `revision`.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE", default_value = "periodic", value_parser = ["periodic", "revision"])]
    pub auto_compaction_mode: String,
    /// Retention for auto compaction: a duration (`1h`, `30m`, plain number = hours) in periodic
    /// mode, a revision count in revision mode; 0 disables.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,
    /// debug, info, warn, error, panic or fatal.
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info", value_parser = ["debug", "info", "warn", "error", "panic", "fatal"])]
    pub log_level: String,
    /// Client TLS certificate.
    #[arg(long, env = "ETCD_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    /// Client TLS key.
    #[arg(long, env = "ETCD_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// CA to verify client certificates with.
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<PathBuf>,
    /// Require client certificates signed by the trusted CA.
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH")]
    pub client_cert_auth: bool,
    /// Interval between watch progress notifications (etcd's experimental flag).
    #[arg(long = "experimental-watch-progress-notify-interval", env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub watch_progress_notify_interval: Duration,
}

/// Parses Go-style durations: `500ms`, `10s`, `10m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(|| format!("`{s}` has no unit (ms, s, m, h)"))?;
    let n: f64 = s[..split]
        .parse()
        .map_err(|_| format!("`{s}` is not a duration"))?;
    let secs = match &s[split..] {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        u => return Err(format!("`{s}`: unknown unit `{u}`")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{s}` must be a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// One member of the initial cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Raft id (derived from the peer URLs and the cluster token, as etcd does).
    pub id: u64,
    /// Name.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
}

/// Everything the server needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The flags as given.
    pub flags: Flags,
    /// Data directory.
    pub data_dir: PathBuf,
    /// This member's raft id.
    pub member_id: u64,
    /// The cluster id (derived from all member ids).
    pub cluster_id: u64,
    /// All members of the initial cluster, by id.
    pub peers: BTreeMap<u64, Peer>,
    /// Client listen addresses.
    pub client_addrs: Vec<SocketAddr>,
    /// Peer listen addresses.
    pub peer_addrs: Vec<SocketAddr>,
    /// Effective backend quota.
    pub quota_bytes: u64,
    /// Ticks per election timeout.
    pub election_ticks: usize,
    /// Auto compaction: keep this many revisions (revision mode).
    pub auto_compaction_revisions: Option<i64>,
    /// Auto compaction: keep this much time (periodic mode).
    pub auto_compaction_period: Option<Duration>,
}

fn id_of(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = Sha256::new();
    for u in &urls {
        h.update(u.as_bytes());
    }
    h.update(token.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b).max(1)
}

/// Resolves `http://host:port` into a socket address (localhost means 127.0.0.1).
fn socket_addr(url: &str, flag: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{flag}: `{url}` must start with http:// or https://"))?;
    let hostport = rest.trim_end_matches('/');
    let hostport = hostport.replacen("localhost", "127.0.0.1", 1);
    use std::net::ToSocketAddrs;
    hostport
        .to_socket_addrs()
        .map_err(|e| format!("{flag}: `{url}`: {e}"))?
        .next()
        .ok_or_else(|| format!("{flag}: `{url}` resolves to no address"))
}

impl Config {
    /// Validates the flags; the error is one line naming the flag.
    pub fn from_flags(flags: Flags) -> Result<Config, String> {
        if flags.name.is_empty() {
            return Err("--name must not be empty".into());
        }
        if flags.heartbeat_interval == 0 {
            return Err("--heartbeat-interval must be positive".into());
        }
        if flags.election_timeout < 5 * flags.heartbeat_interval {
            return Err(format!(
                "--election-timeout[{}ms] should be at least 5 times as --heartbeat-interval[{}ms]",
                flags.election_timeout, flags.heartbeat_interval
            ));
        }
        if flags.snapshot_count == 0 {
            return Err("--snapshot-count must be positive".into());
        }
        if flags.max_txn_ops == 0 {
            return Err("--max-txn-ops must be positive".into());
        }
        let mut peers = BTreeMap::new();
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for part in flags
            .initial_cluster
            .split(',')
            .filter(|p| !p.trim().is_empty())
        {
            let (name, url) = part
                .split_once('=')
                .ok_or_else(|| format!("--initial-cluster: `{part}` is not name=peerURL"))?;
            socket_addr(url, "--initial-cluster")?;
            by_name
                .entry(name.to_string())
                .or_default()
                .push(url.to_string());
        }
        if !by_name.contains_key(&flags.name) {
            return Err(format!(
                "--initial-cluster has no member named `{}` (--name)",
                flags.name
            ));
        }
        for (name, urls) in by_name {
            let id = id_of(&urls, &flags.initial_cluster_token);
            if peers.contains_key(&id) {
                return Err(format!(
                    "--initial-cluster: member `{name}` repeats another member's peer URLs"
                ));
            }
            peers.insert(
                id,
                Peer {
                    id,
                    name,
                    peer_urls: urls,
                },
            );
        }
        let me = peers
            .values()
            .find(|p| p.name == flags.name)
            .map(|p| p.id)
            .unwrap_or_default();
        let mut mine = flags.initial_advertise_peer_urls.clone();
        mine.sort();
        let mut listed = peers[&me].peer_urls.clone();
        listed.sort();
        if mine != listed {
            return Err(format!(
                "--initial-advertise-peer-urls {mine:?} do not match --initial-cluster's URLs for `{}` {listed:?}",
                flags.name
            ));
        }
        let mut ids: Vec<u64> = peers.keys().copied().collect();
        ids.sort_unstable();
        let mut h = Sha256::new();
        for id in &ids {
            h.update(id.to_be_bytes());
        }
        let d = h.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        let cluster_id = u64::from_be_bytes(b).max(1);
        let client_addrs = flags
            .listen_client_urls
            .iter()
            .map(|u| socket_addr(u, "--listen-client-urls"))
            .collect::<Result<Vec<_>, _>>()?;
        let peer_addrs = flags
            .listen_peer_urls
            .iter()
            .map(|u| socket_addr(u, "--listen-peer-urls"))
            .collect::<Result<Vec<_>, _>>()?;
        let tls_given = flags.cert_file.is_some() || flags.key_file.is_some();
        if tls_given && (flags.cert_file.is_none() || flags.key_file.is_none()) {
            return Err("--cert-file and --key-file go together".into());
        }
        if flags.client_cert_auth && flags.trusted_ca_file.is_none() {
            return Err("--client-cert-auth needs --trusted-ca-file".into());
        }
        let retention = flags.auto_compaction_retention.trim().to_string();
        let (mut auto_compaction_revisions, mut auto_compaction_period) = (None, None);
        if retention != "0" && !retention.is_empty() {
            if flags.auto_compaction_mode == "revision" {
                let n: i64 = retention
                    .parse()
                    .map_err(|_| format!("--auto-compaction-retention `{retention}` must be a revision count in revision mode"))?;
                auto_compaction_revisions = Some(n.max(1));
            } else {
                let d = match retention.parse::<u64>() {
                    Ok(hours) => Duration::from_secs(hours * 3600),
                    Err(_) => parse_duration(&retention)
                        .map_err(|e| format!("--auto-compaction-retention {e}"))?,
                };
                auto_compaction_period = Some(d);
            }
        }
        let data_dir = flags
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", flags.name)));
        let election_ticks = usize::try_from(flags.election_timeout / flags.heartbeat_interval)
            .unwrap_or(10)
            .max(2);
        Ok(Config {
            quota_bytes: if flags.quota_backend_bytes == 0 {
                DEFAULT_QUOTA_BYTES
            } else {
                flags.quota_backend_bytes
            },
            data_dir,
            member_id: me,
            cluster_id,
            peers,
            client_addrs,
            peer_addrs,
            election_ticks,
            auto_compaction_revisions,
            auto_compaction_period,
            flags,
        })
    }

    /// The heartbeat interval (one raft tick).
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.flags.heartbeat_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut full = vec!["gauntlet-server"];
        full.extend_from_slice(args);
        let flags = Flags::try_parse_from(full).map_err(|e| e.to_string())?;
        Config::from_flags(flags)
    }

    #[test]
    fn defaults_match_etcd() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("default.etcd"));
        assert_eq!(c.flags.snapshot_count, 100_000);
        assert_eq!(c.flags.max_txn_ops, 128);
        assert_eq!(c.flags.max_request_bytes, 1_572_864);
        assert_eq!(c.election_ticks, 10);
        assert_eq!(c.quota_bytes, 2 << 30);
        assert_eq!(c.peers.len(), 1);
    }

    #[test]
    fn three_members_get_distinct_stable_ids() {
        let cluster = "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3";
        let a = parse(&[
            "--name",
            "a",
            "--initial-cluster",
            cluster,
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:1",
        ])
        .unwrap();
        let b = parse(&[
            "--name=b",
            "--initial-cluster",
            cluster,
            "--initial-advertise-peer-urls=http://127.0.0.1:2",
        ])
        .unwrap();
        assert_ne!(a.member_id, b.member_id);
        assert_eq!(a.cluster_id, b.cluster_id);
        assert_eq!(a.peers, b.peers);
    }

    #[test]
    fn bad_flags_are_one_line_errors() {
        assert!(parse(&["--no-such-flag"])
            .unwrap_err()
            .contains("--no-such-flag"));
        assert!(parse(&["--heartbeat-interval", "abc"])
            .unwrap_err()
            .contains("abc"));
        assert!(parse(&["--election-timeout", "100"])
            .unwrap_err()
            .contains("at least 5 times"));
        assert!(parse(&["--name", "x"])
            .unwrap_err()
            .contains("no member named `x`"));
        assert!(parse(&["--initial-cluster", "default"])
            .unwrap_err()
            .contains("name=peerURL"));
        assert!(parse(&["--listen-client-urls", "unix:///x"])
            .unwrap_err()
            .contains("http://"));
        assert!(parse(&["--initial-cluster-state", "maybe"])
            .unwrap_err()
            .contains("maybe"));
        assert!(parse(&[
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            "1h"
        ])
        .unwrap_err()
        .contains("revision count"));
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("5").is_err());
    }
}
