//! Configuration: etcd's flags, with etcd's names, meanings and defaults, so that a
//! script written for etcd 3.4 or 3.5 starts `gauntlet-server` unchanged.
//!
//! # Where a value comes from
//!
//! Three sources, never mixed, with etcd's precedence:
//!
//! 1. `--config-file PATH` (or `ETCD_CONFIG_FILE`): the YAML file is the whole
//!    configuration. Every other flag on the command line and every `ETCD_*`
//!    variable is ignored (a warning in the log says so), exactly as etcd does; a key
//!    missing from the file keeps its default. The file's format is in [`file`].
//! 2. Otherwise a flag on the command line,
//! 3. else its environment variable: `ETCD_` and the flag's name upper-cased with
//!    dashes as underscores (`--data-dir` is `ETCD_DATA_DIR`),
//! 4. else etcd's default. Defaults are the ones `etcd --help` prints for 3.5.1
//!    (where 3.4.23 differs, `--pre-vote` and `--logger`, 3.5 wins), written once in
//!    the clap definition ([`flags::Flags`]), which the YAML file goes through too.
//!
//! Values parse as Go's `flag` package parses them: `--x`, `--x=true`, `--x=false`
//! for booleans, Go durations, comma lists, and `-name` with one dash as well as two.
//!
//! # What a flag does here
//!
//! Every flag has one row in [`catalog::CATALOG`]: *honoured* (the server does what
//! etcd does), *accepted* (tuning without effect here, still type-checked) or
//! *unsupported* (a feature the server lacks: accepted at its default, and set, the
//! server exits with status 2 and one line naming the flag). The table is the place
//! to look first; a test checks it against `etcd --help` of both releases.
//!
//! # Checks
//!
//! [`Config::from_flags`] checks what needs more than one flag (members against
//! `--initial-cluster`, election timeout against heartbeat, TLS pairs) and derives
//! what the rest of the server uses (ids, socket addresses, ticks, each side's
//! [`TlsInfo`](crate::tls::TlsInfo)). Every error is one line that names the flag.

mod catalog;
mod file;
mod flags;
pub mod logging;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use sha2::{Digest, Sha256};

#[allow(unused_imports)]
pub use catalog::{Class, FlagInfo, Kind, CATALOG};
pub use flags::Flags;
#[allow(unused_imports)]
pub use flags::{go_bool, parse_duration};
use logging::LogConfig;

/// The etcd API version this server implements and reports in Status and /version.
/// Kubernetes parses it, so it must look like an etcd release.
pub const API_VERSION: &str = "3.5.0";
/// etcd's default backend quota (2 GiB) when `--quota-backend-bytes` is 0.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;
/// Lowest `--bcrypt-cost` (bcrypt's own; etcd warns and uses its default outside the range).
pub const BCRYPT_MIN_COST: u32 = 4;
/// etcd's (and Go bcrypt's) default cost.
pub const BCRYPT_DEFAULT_COST: u32 = 10;
/// Highest `--bcrypt-cost`.
pub const BCRYPT_MAX_COST: u32 = 31;

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
    /// `--auth-token`, parsed (JWT keys loaded).
    pub auth_token: crate::auth::TokenKind,
    /// `--bcrypt-cost`, or etcd's default when it is out of bcrypt's range.
    pub bcrypt_cost: u32,
    /// Data directory.
    pub data_dir: PathBuf,
    /// This member's raft id.
    pub member_id: u64,
    /// The cluster id (derived from all member ids).
    pub cluster_id: u64,
    /// All members of the initial cluster, by id.
    pub peers: BTreeMap<u64, Peer>,
    /// Client listeners (`--listen-client-urls`).
    pub client_listeners: Vec<Listen>,
    /// Peer listeners (`--listen-peer-urls`).
    pub peer_listeners: Vec<Listen>,
    /// TLS of the client URLs (`--cert-file`, `--key-file`, `--trusted-ca-file`,
    /// `--client-cert-auth`, `--client-crl-file`, `--client-cert-allowed-hostname`,
    /// `--auto-tls`).
    pub client_tls: crate::tls::TlsInfo,
    /// TLS of the peer URLs, server and client side (`--peer-*`).
    pub peer_tls: crate::tls::TlsInfo,
    /// Versions and cipher suites of both sides (`--tls-min-version`,
    /// `--tls-max-version`, `--cipher-suites`).
    pub tls_policy: crate::tls::Policy,
    /// Effective backend quota.
    pub quota_bytes: u64,
    /// Ticks per election timeout.
    pub election_ticks: usize,
    /// Auto compaction: keep this many revisions (revision mode).
    pub auto_compaction_revisions: Option<i64>,
    /// Auto compaction: keep this much time (periodic mode).
    pub auto_compaction_period: Option<Duration>,
    /// Where the WAL lives (`--wal-dir`, default `<data-dir>/member/wal`).
    pub wal_dir: PathBuf,
    /// `--strict-reconfig-check`: refuse a membership change that would leave the
    /// cluster without a quorum of started members (etcd's default: true).
    pub strict_reconfig_check: bool,
    /// Election ticks to fast-forward at start (see [`initial_election_ticks()`]).
    pub initial_election_ticks: usize,
    /// `--listen-metrics-urls`: extra listeners serving `/metrics` and `/health`
    /// (`https://` ones with the client TLS, as etcd).
    pub metrics_listeners: Vec<Listen>,
    /// Logging (`--logger`, `--log-outputs`, `--log-level`, `--debug`).
    pub log: LogConfig,
    /// Things to log once logging is up: ignored keys and variables, deprecated values.
    pub warnings: Vec<String>,
}

/// One listen URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// The URL as given.
    pub url: String,
    /// Its socket address.
    pub addr: SocketAddr,
    /// `https://`: served over TLS.
    pub https: bool,
}

/// Why the server stops before starting.
#[derive(Debug)]
pub enum Stop {
    /// `--help` or `--version`: print it and exit 0.
    Show(clap::Error),
    /// A bad configuration: one line, exit 2.
    Invalid(String),
}

impl Stop {
    /// Prints the message and gives the exit code.
    pub fn report(self) -> std::process::ExitCode {
        match self {
            Stop::Show(e) => {
                let _ = e.print();
                std::process::ExitCode::SUCCESS
            }
            Stop::Invalid(msg) => {
                eprintln!("gauntlet-server: {msg}");
                std::process::ExitCode::from(2)
            }
        }
    }
}

/// Ticks fast-forwarded at start, as etcd does it: a member alone in its cluster
/// always advances `election_ticks - 1` (nobody to wait for); with peers it advances
/// `election_ticks - 2` when `--initial-election-tick-advance` is on (the default), so
/// the first election comes after a tick or two instead of a whole timeout.
///
/// etcd advances for a member with peers only once peer connections are up, so that a
/// restarting member hears the leader before its timer runs out. This server advances
/// at start; with pre-vote on (the default) a premature campaign cannot depose a live
/// leader, but without it a restarting member would, so a restart (an existing WAL)
/// with `--pre-vote=false` does not advance.
pub fn initial_election_ticks(
    election_ticks: usize,
    members: usize,
    advance: bool,
    pre_vote: bool,
    restarting: bool,
) -> usize {
    if members <= 1 {
        election_ticks.saturating_sub(1)
    } else if advance && (pre_vote || !restarting) {
        election_ticks.saturating_sub(2)
    } else {
        0
    }
}

/// Go's flag package takes `-name` as well as `--name`: rewrites one-dash long flags
/// (only names of known flags, so a value such as `-1` stays as it is).
fn go_style_dashes(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut rest = false;
    for (i, arg) in args.into_iter().enumerate() {
        let text = arg.to_string_lossy();
        rest |= text == "--";
        let single = text.len() > 2 && text.starts_with('-') && !text.starts_with("--");
        if i > 0 && !rest && single {
            let name = text[1..].split('=').next().unwrap_or_default();
            if catalog::info(name).is_some() || name == "help" || name == "version" {
                out.push(OsString::from(format!("-{text}")));
                continue;
            }
        }
        out.push(arg);
    }
    out
}

/// A warning for each *accepted* flag that was given (rather than left at its
/// default): it is checked but changes nothing here, and the log says why.
fn no_effect(matches: &clap::ArgMatches) -> Vec<String> {
    let command = Flags::command();
    command
        .get_arguments()
        .filter_map(|arg| {
            let info = catalog::info(arg.get_long()?)?;
            let given = matches!(
                matches.value_source(arg.get_id().as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            );
            (given && matches!(info.class, Class::Accepted)).then(|| {
                format!(
                    "--{} has no effect in gauntlet-server: {}",
                    info.name, info.doc
                )
            })
        })
        .collect()
}

/// One line from a clap error (its first line, without clap's `error: `).
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// `ETCD_*` variables that name no flag (etcd warns about them too).
fn unknown_env_vars() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter_map(|k| {
            let flag = k
                .strip_prefix("ETCD_")?
                .to_ascii_lowercase()
                .replace('_', "-");
            // ETCD_UNSUPPORTED_ARCH is etcd's own switch, not a flag.
            (catalog::info(&flag).is_none() && flag != "unsupported-arch").then_some(k)
        })
        .map(|k| format!("ignoring unrecognized environment variable {k}"))
        .collect()
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

/// Both sides' TLS settings and the shared policy, checked as etcd checks them.
fn tls_settings(
    flags: &Flags,
    warnings: &mut Vec<String>,
) -> Result<(crate::tls::TlsInfo, crate::tls::TlsInfo, crate::tls::Policy), String> {
    use crate::tls::{Allowed, Policy, TlsInfo};
    let text = |s: &str| (!s.trim().is_empty()).then(|| PathBuf::from(s.trim()));
    if flags.cert_file.is_some() != flags.key_file.is_some() {
        return Err("--cert-file and --key-file go together".into());
    }
    let (peer_cert, peer_key) = (text(&flags.peer_cert_file), text(&flags.peer_key_file));
    if peer_cert.is_some() != peer_key.is_some() {
        return Err("--peer-cert-file and --peer-key-file go together".into());
    }
    if flags.client_cert_auth && flags.trusted_ca_file.is_none() && !flags.auto_tls {
        return Err("--client-cert-auth needs --trusted-ca-file".into());
    }
    let peer_ca = text(&flags.peer_trusted_ca_file);
    if flags.peer_client_cert_auth && peer_ca.is_none() && !flags.peer_auto_tls {
        return Err("--peer-client-cert-auth needs --peer-trusted-ca-file".into());
    }
    let (cn, host) = (
        flags.peer_cert_allowed_cn.trim(),
        flags.peer_cert_allowed_hostname.trim(),
    );
    let peer_allowed = match (cn.is_empty(), host.is_empty()) {
        (true, true) => None,
        (false, true) => Some(Allowed::Cn(cn.to_string())),
        (true, false) => Some(Allowed::Hostname(host.to_string())),
        (false, false) => {
            return Err(format!(
                "--peer-cert-allowed-cn and --peer-cert-allowed-hostname are mutually exclusive (cn={cn:?}, hostname={host:?})"
            ))
        }
    };
    let client_host = flags.client_cert_allowed_hostname.trim();
    let client = TlsInfo {
        cert_file: flags.cert_file.clone(),
        key_file: flags.key_file.clone(),
        trusted_ca_file: flags.trusted_ca_file.clone(),
        client_cert_auth: flags.client_cert_auth,
        crl_file: text(&flags.client_crl_file),
        allowed: (!client_host.is_empty()).then(|| Allowed::Hostname(client_host.to_string())),
        auto_tls: flags.auto_tls,
        check_client_san: false,
    };
    let peer = TlsInfo {
        cert_file: peer_cert,
        key_file: peer_key,
        trusted_ca_file: peer_ca,
        client_cert_auth: flags.peer_client_cert_auth,
        crl_file: text(&flags.peer_crl_file),
        allowed: peer_allowed,
        auto_tls: flags.peer_auto_tls,
        check_client_san: !flags.experimental_peer_skip_client_san_verification,
    };
    if client.auto_tls && client.cert_file.is_some() {
        warnings.push("ignoring client auto TLS since certs given".into());
    }
    if peer.auto_tls && peer.cert_file.is_some() {
        warnings.push("ignoring peer auto TLS since certs given".into());
    }
    let policy = Policy::from_flags(
        &flags::list(&flags.cipher_suites),
        &flags.tls_min_version,
        &flags.tls_max_version,
    )?;
    Ok((client, peer, policy))
}

impl Config {
    /// Reads the configuration from the command line `args` (program name first), the
    /// `ETCD_*` environment and `--config-file`, with the precedence of the module doc.
    pub fn from_args(args: impl IntoIterator<Item = OsString>) -> Result<Config, Stop> {
        let args = go_style_dashes(args);
        let stop = |e: clap::Error| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                Stop::Show(e)
            }
            _ => Stop::Invalid(one_line(&e)),
        };
        let without_env = || Flags::command().mut_args(|a| a.env(None));
        // The command line alone first: it says whether a configuration file is used,
        // in which case the environment must not be read at all (etcd's rule).
        let command_line = without_env().try_get_matches_from(&args).map_err(stop)?;
        let config_file = command_line
            .get_one::<PathBuf>("config_file")
            .cloned()
            .or_else(|| std::env::var_os("ETCD_CONFIG_FILE").map(PathBuf::from))
            .filter(|p| !p.as_os_str().is_empty());
        let mut warnings = Vec::new();
        let matches = match &config_file {
            Some(path) => {
                let file_args = file::args_from_file(path, &mut warnings).map_err(Stop::Invalid)?;
                let program = OsString::from("gauntlet-server");
                let file_args = file_args.into_iter().map(OsString::from);
                let from_file = without_env()
                    .try_get_matches_from(std::iter::once(program).chain(file_args))
                    .map_err(|e| {
                        let e = one_line(&e);
                        Stop::Invalid(format!("--config-file {}: {e}", path.display()))
                    })?;
                let flags_given = command_line.ids().any(|id| {
                    id.as_str() != "config_file"
                        && command_line.value_source(id.as_str()) == Some(ValueSource::CommandLine)
                });
                let env_given = std::env::vars_os().any(|(k, _)| {
                    k.to_str()
                        .is_some_and(|k| k.starts_with("ETCD_") && k != "ETCD_CONFIG_FILE")
                });
                if flags_given || env_given {
                    warnings.push(format!(
                        "--config-file {} is given: other command-line flags and ETCD_* variables are ignored (etcd's rule)",
                        path.display()
                    ));
                }
                from_file
            }
            None => {
                warnings.extend(unknown_env_vars());
                Flags::command().try_get_matches_from(&args).map_err(stop)?
            }
        };
        warnings.extend(no_effect(&matches));
        let mut flags =
            Flags::from_arg_matches(&matches).map_err(|e| Stop::Invalid(one_line(&e)))?;
        flags.config_file = config_file;
        let mut config = Config::from_flags(flags).map_err(Stop::Invalid)?;
        warnings.append(&mut config.warnings);
        config.warnings = warnings;
        Ok(config)
    }

    /// Validates the flags; the error is one line naming the flag.
    pub fn from_flags(mut flags: Flags) -> Result<Config, String> {
        for path in [
            &mut flags.data_dir,
            &mut flags.wal_dir,
            &mut flags.cert_file,
            &mut flags.key_file,
            &mut flags.trusted_ca_file,
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                *path = None;
            }
        }
        catalog::refuse_unsupported(&flags)?;
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
        // etcd's `etcd --name=abc`: the default cluster is this member alone, by name.
        if flags.name != "default" && flags.initial_cluster == flags::DEFAULT_INITIAL_CLUSTER {
            flags.initial_cluster = flags
                .initial_advertise_peer_urls
                .iter()
                .map(|u| format!("{}={u}", flags.name))
                .collect::<Vec<_>>()
                .join(",");
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
        let listen = |urls: &[String], flag: &str| {
            urls.iter()
                .map(|u| {
                    Ok(Listen {
                        url: u.clone(),
                        addr: socket_addr(u, flag)?,
                        https: u.starts_with("https://"),
                    })
                })
                .collect::<Result<Vec<_>, String>>()
        };
        let client_listeners = listen(&flags.listen_client_urls, "--listen-client-urls")?;
        let peer_listeners = listen(&flags.listen_peer_urls, "--listen-peer-urls")?;
        let mut warnings = Vec::new();
        let (client_tls, peer_tls, tls_policy) = tls_settings(&flags, &mut warnings)?;
        for l in &client_listeners {
            if l.https && !client_tls.configured() {
                return Err(format!(
                    "TLS key/cert (--cert-file, --key-file) must be provided for client url {} with HTTPS scheme",
                    l.url
                ));
            }
            if !l.https && client_tls.cert_file.is_some() {
                warnings.push(format!(
                    "scheme is HTTP while key and certificate files are present; ignoring key and certificate files (client-url {})",
                    l.url
                ));
            }
        }
        for l in &peer_listeners {
            if l.https && !peer_tls.configured() {
                return Err(format!(
                    "--listen-peer-urls={}: cannot listen on TLS for {}: KeyFile and CertFile are not presented (--peer-cert-file, --peer-key-file or --peer-auto-tls)",
                    l.url, l.addr
                ));
            }
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
        let metrics_listeners = listen(
            &flags::list(&flags.listen_metrics_urls),
            "--listen-metrics-urls",
        )?;
        if let Some(l) = metrics_listeners
            .iter()
            .find(|l| l.https && !client_tls.configured())
        {
            return Err(format!(
                "TLS key/cert (--cert-file, --key-file) must be provided for metrics url {} with HTTPS scheme",
                l.url
            ));
        }
        let log = LogConfig::from_flags(&flags)?;
        if !(BCRYPT_MIN_COST..=BCRYPT_MAX_COST).contains(&flags.bcrypt_cost) {
            warnings.push(format!(
                "--bcrypt-cost={} is outside {BCRYPT_MIN_COST}..={BCRYPT_MAX_COST}: the default would be used, as etcd does",
                flags.bcrypt_cost
            ));
        }
        if flags.logger == "capnslog" {
            warnings.push(
                "--logger=capnslog is deprecated (etcd 3.4's default, removed in 3.5); logging as with zap".into(),
            );
        }
        let wal_dir = flags
            .wal_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("member").join("wal"));
        let restarting = std::fs::read_dir(&wal_dir).is_ok_and(|mut d| d.next().is_some());
        let initial_election_ticks = initial_election_ticks(
            election_ticks,
            peers.len(),
            flags.initial_election_tick_advance,
            flags.pre_vote,
            restarting,
        );
        let auth_token = crate::auth::parse_token_option(&flags.auth_token)?;
        let bcrypt_cost = if (BCRYPT_MIN_COST..=BCRYPT_MAX_COST).contains(&flags.bcrypt_cost) {
            flags.bcrypt_cost
        } else {
            BCRYPT_DEFAULT_COST
        };
        Ok(Config {
            auth_token,
            bcrypt_cost,
            wal_dir,
            strict_reconfig_check: flags.strict_reconfig_check,
            initial_election_ticks,
            metrics_listeners,
            log,
            warnings,
            quota_bytes: if flags.quota_backend_bytes == 0 {
                DEFAULT_QUOTA_BYTES
            } else {
                flags.quota_backend_bytes
            },
            data_dir,
            member_id: me,
            cluster_id,
            peers,
            client_listeners,
            peer_listeners,
            client_tls,
            peer_tls,
            tls_policy,
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

    /// Parses `args` as the command line, without reading the environment.
    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut full = vec!["gauntlet-server"];
        full.extend_from_slice(args);
        let full: Vec<OsString> = go_style_dashes(full.into_iter().map(OsString::from));
        let matches = Flags::command()
            .mut_args(|a| a.env(None))
            .try_get_matches_from(full)
            .map_err(|e| one_line(&e))?;
        let flags = Flags::from_arg_matches(&matches).map_err(|e| one_line(&e))?;
        Config::from_flags(flags)
    }

    #[test]
    fn catalog_has_one_row_per_flag() {
        let command = Flags::command();
        let mut longs: Vec<&str> = command
            .get_arguments()
            .filter_map(|a| a.get_long())
            .collect();
        longs.retain(|l| *l != "help" && *l != "version");
        longs.sort_unstable();
        let mut rows: Vec<&str> = CATALOG.iter().map(|f| f.name).collect();
        rows.sort_unstable();
        let before = rows.len();
        rows.dedup();
        assert_eq!(before, rows.len(), "a flag has two rows in CATALOG");
        assert_eq!(longs, rows);
        let (h, a, u) = catalog::counts();
        assert_eq!(h + a + u, CATALOG.len());
        for f in CATALOG {
            let arg = command
                .get_arguments()
                .find(|a| a.get_long() == Some(f.name))
                .unwrap();
            let env = format!("ETCD_{}", f.name.to_uppercase().replace('-', "_"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(env.as_str()),
                "{}",
                f.name
            );
        }
    }

    #[test]
    fn a_name_alone_makes_a_one_member_cluster_of_that_name() {
        let c = parse(&["--name=solo"]).unwrap();
        assert_eq!(c.flags.initial_cluster, "solo=http://localhost:2380");
        assert_eq!(c.peers.values().next().unwrap().name, "solo");
    }

    #[test]
    fn booleans_take_go_spellings() {
        assert!(!parse(&["--pre-vote=false"]).unwrap().flags.pre_vote);
        assert!(parse(&["--pre-vote"]).unwrap().flags.pre_vote);
        assert!(parse(&["--pre-vote=T"]).unwrap().flags.pre_vote);
        assert!(
            !parse(&["--strict-reconfig-check=0"])
                .unwrap()
                .strict_reconfig_check
        );
        assert!(parse(&["--enable-v2=false"]).is_ok());
        assert!(parse(&["--pre-vote=maybe"]).unwrap_err().contains("maybe"));
        // Go does not take a separate word as a boolean's value.
        assert!(parse(&["--pre-vote", "false"])
            .unwrap_err()
            .contains("'false'"));
    }

    #[test]
    fn one_dash_long_flags_work_as_in_go() {
        let c = parse(&["-snapshot-count=7", "-max-wals", "3"]).unwrap();
        assert_eq!(c.flags.snapshot_count, 7);
        assert_eq!(c.flags.max_wals, 3);
        assert_eq!(
            parse(&["--backend-batch-limit", "-1"])
                .unwrap()
                .flags
                .backend_batch_limit,
            -1
        );
    }

    #[test]
    fn unsupported_features_are_refused_by_name() {
        for (args, flag) in [
            (&["--enable-v2"][..], "--enable-v2=true"),
            (&["--proxy=readonly"], "--proxy=readonly"),
            (&["--discovery=https://d/x"], "--discovery=https://d/x"),
            (
                &["--discovery-srv=example.com"],
                "--discovery-srv=example.com",
            ),
            (
                &["--host-whitelist=a.example"],
                "--host-whitelist=a.example",
            ),
        ] {
            let e = parse(args).unwrap_err();
            assert!(e.starts_with(&format!("{flag}: ")), "{e}");
            assert!(!e.contains('\n'));
        }
        // A bad --auth-token is one line naming it too.
        for bad in ["--auth-token=jwt,pub-key=k", "--auth-token=bogus"] {
            let e = parse(&[bad]).unwrap_err();
            assert!(e.starts_with("--auth-token"), "{e}");
            assert!(!e.contains('\n'));
        }
        // At their defaults, and set to the default explicitly, they are fine.
        parse(&[
            "--proxy=off",
            "--auth-token=simple",
            "--host-whitelist=*",
            "--enable-v2=false",
        ])
        .unwrap();
    }

    #[test]
    fn initial_election_ticks_follow_etcd() {
        assert_eq!(initial_election_ticks(10, 1, false, true, false), 9);
        assert_eq!(initial_election_ticks(10, 3, true, true, true), 8);
        assert_eq!(initial_election_ticks(10, 3, false, true, false), 0);
        assert_eq!(initial_election_ticks(10, 3, true, false, false), 8);
        assert_eq!(initial_election_ticks(10, 3, true, false, true), 0);
        assert_eq!(parse(&[]).unwrap().initial_election_ticks, 9);
    }

    #[test]
    fn log_outputs_are_checked() {
        use logging::LogOutput;
        let c = parse(&["--log-outputs=stdout,/tmp/x.log,stdout", "--debug"]).unwrap();
        assert_eq!(
            c.log.outputs,
            [LogOutput::Stdout, LogOutput::File("/tmp/x.log".into())]
        );
        assert_eq!(c.log.level, "debug");
        assert_eq!(parse(&["--log-level=fatal"]).unwrap().log.level, "error");
        assert!(parse(&["--log-outputs=default,stdout"])
            .unwrap_err()
            .starts_with("--log-outputs"));
        assert!(parse(&["--log-outputs=systemd/journal"])
            .unwrap_err()
            .contains("systemd/journal"));
        assert!(parse(&["--logger=glog"]).unwrap_err().contains("glog"));
        assert!(!parse(&["--logger=capnslog"]).unwrap().warnings.is_empty());
    }

    #[test]
    fn tls_flags_are_checked_as_etcd_checks_them() {
        let https = [
            "--listen-client-urls=https://127.0.0.1:2379",
            "--advertise-client-urls=https://127.0.0.1:2379",
        ];
        let e = parse(&https).unwrap_err();
        assert!(e.starts_with("TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379"), "{e}");
        let c = parse(&[https[0], https[1], "--auto-tls"]).unwrap();
        assert!(c.client_listeners[0].https && c.client_tls.auto_tls);
        let peer_https = [
            "--listen-peer-urls=https://127.0.0.1:2380",
            "--initial-advertise-peer-urls=https://127.0.0.1:2380",
            "--initial-cluster=default=https://127.0.0.1:2380",
        ];
        let e = parse(&peer_https).unwrap_err();
        assert!(e.contains("cannot listen on TLS for 127.0.0.1:2380"), "{e}");
        let mut args = peer_https.to_vec();
        args.extend([
            "--peer-cert-file=/c",
            "--peer-key-file=/k",
            "--peer-trusted-ca-file=/ca",
        ]);
        let c = parse(&args).unwrap();
        assert!(c.peer_tls.check_client_san);
        assert_eq!(c.peer_tls.trusted_ca_file, Some(PathBuf::from("/ca")));
        for (args, want) in [
            (
                &["--peer-cert-file=/c"][..],
                "--peer-cert-file and --peer-key-file go together",
            ),
            (
                &["--cert-file=/c"],
                "--cert-file and --key-file go together",
            ),
            (
                &["--client-cert-auth"],
                "--client-cert-auth needs --trusted-ca-file",
            ),
            (
                &["--peer-cert-allowed-cn=a", "--peer-cert-allowed-hostname=b"],
                "mutually exclusive",
            ),
            (&["--cipher-suites=TLS_FOO"], "unexpected TLS cipher suite"),
            (
                &["--tls-min-version=TLS1.3", "--tls-max-version=TLS1.2"],
                "greater than",
            ),
        ] {
            let e = parse(args).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
            assert!(!e.contains('\n'));
        }
        let c = parse(&["--cert-file=/c", "--key-file=/k"]).unwrap();
        assert!(c.warnings.iter().any(|w| w.contains("scheme is HTTP")));
    }

    #[test]
    fn metrics_urls_and_wal_dir() {
        let c = parse(&[
            "--listen-metrics-urls=http://127.0.0.1:9,http://localhost:10",
            "--wal-dir=/w",
        ])
        .unwrap();
        assert_eq!(c.metrics_listeners.len(), 2);
        assert_eq!(c.wal_dir, PathBuf::from("/w"));
        assert!(parse(&["--listen-metrics-urls=https://127.0.0.1:9"])
            .unwrap_err()
            .contains("must be provided for metrics url https://127.0.0.1:9"));
        assert!(
            parse(&["--listen-metrics-urls=https://127.0.0.1:9", "--auto-tls"])
                .unwrap()
                .metrics_listeners[0]
                .https
        );
        let c = parse(&["--wal-dir=", "--cert-file=", "--key-file="]).unwrap();
        assert_eq!(c.wal_dir, PathBuf::from("default.etcd/member/wal"));
        assert!(c.flags.cert_file.is_none());
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
        assert!(
            parse(&["--name", "x", "--initial-cluster=y=http://localhost:2380"])
                .unwrap_err()
                .contains("no member named `x`")
        );
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
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("2000000000ns").unwrap(),
            Duration::from_secs(2)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1d").is_err());
    }
}
