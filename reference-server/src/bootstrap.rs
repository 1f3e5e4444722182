//! Who a starting member is, and which cluster it belongs to.
//!
//! A member's identity (cluster id and member id) is decided once, at its first start,
//! and kept in `member/identity` in its data dir; later starts read it back, whatever
//! the flags say, as etcd keeps its identity in its WAL.
//!
//! - `--initial-cluster-state new`: the ids come from the flags (every member of the new
//!   cluster derives the same ones from `--initial-cluster` and the cluster token), and
//!   the log starts with one `AddNode` entry per initial member (see
//!   [`crate::raftlog::LogStore::open`]).
//! - `--initial-cluster-state existing`: the member was added with MemberAdd, which chose
//!   its id. It asks the other members named in `--initial-cluster` for the cluster id
//!   and the member table, finds itself there by its peer URLs, and starts with an empty
//!   log: the leader sends it the log (or a snapshot), configuration changes included.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prost::Message as _;

use crate::config::Config;
use crate::peerpb::{self, peer_client::PeerClient};
use crate::state::{Member, StateMachine};

/// The identity file, under the data dir.
const IDENTITY_FILE: &str = "member/identity";
/// How long a joining member keeps asking the cluster about itself.
const JOIN_DEADLINE: Duration = Duration::from_secs(30);
/// Deadline of one question to one member.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// What a starting member knows about itself and its cluster.
#[derive(Debug, Clone)]
pub struct Start {
    /// The cluster's id.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
    /// The voters a brand-new log starts with (none when joining).
    pub voters: Vec<u64>,
    /// A new cluster's bootstrap entries: (member id, encoded [`Member`]).
    pub bootstrap: Vec<(u64, Vec<u8>)>,
    /// The members to connect to first (this one included); the member table replaces
    /// them as soon as it is known.
    pub members: Vec<Member>,
}

fn identity_path(data_dir: &Path) -> PathBuf {
    data_dir.join(IDENTITY_FILE)
}

fn read_identity(data_dir: &Path) -> anyhow::Result<Option<(u64, u64)>> {
    let path = identity_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut parts = text.split_whitespace();
    let parse = |s: Option<&str>| s.and_then(|s| u64::from_str_radix(s, 16).ok());
    match (parse(parts.next()), parse(parts.next())) {
        (Some(c), Some(m)) => Ok(Some((c, m))),
        _ => anyhow::bail!(
            "{} is damaged: expected `<cluster id> <member id>` in hex",
            path.display()
        ),
    }
}

fn write_identity(data_dir: &Path, cluster_id: u64, member_id: u64) -> anyhow::Result<()> {
    let path = identity_path(data_dir);
    crate::durable::write_atomic(&path, format!("{cluster_id:x} {member_id:x}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes the identity a new cluster's member derives from `config` (for `snapshot
/// restore`, which makes the data dir before the first start).
pub fn write_new_identity(config: &Config) -> anyhow::Result<()> {
    crate::durable::create_dir_all(&config.data_dir.join("member"))
        .with_context(|| format!("creating {}", config.data_dir.join("member").display()))?;
    write_identity(&config.data_dir, config.cluster_id, config.member_id)
}

/// The initial members as the flags describe them.
fn flag_members(config: &Config) -> Vec<Member> {
    config
        .peers
        .values()
        .map(|p| Member {
            id: p.id,
            name: p.name.clone(),
            peer_urls: p.peer_urls.clone(),
            client_urls: Vec::new(),
            is_learner: false,
        })
        .collect()
}

/// Decides this member's identity (see the module docs). `state` is the opened state
/// machine: a member it no longer lists was removed and must not start.
///
/// `peer_tls` is the client side of peer TLS, for asking peers over `https://` URLs.
pub async fn resolve(
    config: &Config,
    state: &StateMachine,
    peer_tls: Option<&crate::transport::PeerTls>,
) -> anyhow::Result<Start> {
    let table: Vec<Member> = state.cluster().members.values().cloned().collect();
    if let Some((cluster_id, member_id)) = read_identity(&config.data_dir)? {
        if !table.is_empty() && !table.iter().any(|m| m.id == member_id) {
            anyhow::bail!(
                "member {member_id:x} was removed from the cluster: it cannot start again on this data dir (add a new member with MemberAdd and start it on an empty --data-dir)"
            );
        }
        // A new member that stopped before its log existed bootstraps it again (the log
        // store ignores voters and bootstrap entries once a log exists).
        let fresh = table.is_empty()
            && config.flags.initial_cluster_state == "new"
            && member_id == config.member_id;
        let members = if table.is_empty() {
            flag_members(config)
        } else {
            table
        };
        return Ok(Start {
            cluster_id,
            member_id,
            voters: if fresh {
                members.iter().map(|m| m.id).collect()
            } else {
                Vec::new()
            },
            bootstrap: if fresh {
                members.iter().map(|m| (m.id, m.encode_to_vec())).collect()
            } else {
                Vec::new()
            },
            members,
        });
    }
    let start = if config.flags.initial_cluster_state == "existing" {
        join(config, peer_tls).await?
    } else {
        let members = flag_members(config);
        Start {
            cluster_id: config.cluster_id,
            member_id: config.member_id,
            voters: members.iter().map(|m| m.id).collect(),
            bootstrap: members.iter().map(|m| (m.id, m.encode_to_vec())).collect(),
            members,
        }
    };
    crate::durable::create_dir_all(&config.data_dir.join("member"))
        .with_context(|| format!("creating {}", config.data_dir.join("member").display()))?;
    write_identity(&config.data_dir, start.cluster_id, start.member_id)?;
    Ok(start)
}

/// Asks the other members for the cluster id and the member table, and finds this
/// member in it by its peer URLs.
async fn join(
    config: &Config,
    peer_tls: Option<&crate::transport::PeerTls>,
) -> anyhow::Result<Start> {
    let mine = &config.flags.initial_advertise_peer_urls;
    let others: Vec<String> = config
        .peers
        .values()
        .filter(|p| !p.peer_urls.iter().any(|u| mine.contains(u)))
        .filter_map(|p| p.peer_urls.first().cloned())
        .collect();
    if others.is_empty() {
        anyhow::bail!(
            "--initial-cluster-state existing: --initial-cluster names no other member to join"
        );
    }
    let deadline = Instant::now() + JOIN_DEADLINE;
    let mut last_error = String::new();
    while Instant::now() < deadline {
        for url in &others {
            match ask(url, peer_tls).await {
                Ok(info) => {
                    let me = info
                        .members
                        .iter()
                        .find(|m| m.peer_urls.iter().any(|u| mine.contains(u)));
                    let Some(me) = me else {
                        anyhow::bail!(
                            "--initial-cluster-state existing: the cluster has no member with peer URLs {} (add it with MemberAdd first)",
                            mine.join(",")
                        );
                    };
                    let members = info
                        .members
                        .iter()
                        .map(|m| Member {
                            id: m.id,
                            name: m.name.clone(),
                            peer_urls: m.peer_urls.clone(),
                            client_urls: Vec::new(),
                            is_learner: m.is_learner,
                        })
                        .collect();
                    return Ok(Start {
                        cluster_id: info.cluster_id,
                        member_id: me.id,
                        voters: Vec::new(),
                        bootstrap: Vec::new(),
                        members,
                    });
                }
                Err(e) => last_error = format!("{url}: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!(
        "--initial-cluster-state existing: no member of the cluster answered within {} s (last: {last_error})",
        JOIN_DEADLINE.as_secs()
    )
}

async fn ask(
    url: &str,
    peer_tls: Option<&crate::transport::PeerTls>,
) -> Result<peerpb::MemberInfoResponse, String> {
    let channel = crate::transport::peer_channel(url, peer_tls)?;
    let mut client = PeerClient::new(channel);
    match tokio::time::timeout(
        ASK_TIMEOUT,
        client.member_info(peerpb::MemberInfoRequest {}),
    )
    .await
    {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(s.message().to_string()),
        Err(_) => Err("no answer".into()),
    }
}
