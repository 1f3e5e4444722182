//! Versions: this binary's, the cluster's, the data dir's, and downgrades.
//!
//! - **Server version**: the etcd release this binary behaves as ([`API_VERSION`]),
//!   reported in Status and `/version`. `GAUNTLET_SERVER_VERSION` overrides it, so that
//!   tests and the skew suite can run one build as two versions.
//! - **Cluster version**: decided by the leader, as etcd 3.5's: every
//!   [`MONITOR_INTERVAL`] (and when it becomes leader) it asks every member its server
//!   version; with all of them answering, the minimum (major.minor) is the candidate.
//!   The first decision is taken as it is; later ones only when etcd would change it (up
//!   within the major, or down one minor when an older member joined). It is replicated
//!   through raft and served as `etcdcluster` by `/version` (`not_decided` before).
//! - **Downgrade** (Maintenance.Downgrade, etcd 3.5's API): VALIDATE checks that the
//!   target is exactly one minor below the cluster version; ENABLE records it through
//!   raft; CANCEL drops it. The leader ends a downgrade by itself once every member runs
//!   the target version.
//! - **Storage version**: `member/storage-version` follows the cluster version as this
//!   member applied it (as etcd 3.6's storage version does), so it moves up only once
//!   every member runs the newer version and down only after a downgrade. A binary
//!   refuses, before opening anything else and with one line, a data dir whose storage
//!   version is newer than itself, and one whose replicated cluster version is (etcd's
//!   downgrade detection, as fixed in etcd 3.6: only the cluster version decides, so a
//!   restart while a downgrade is enabled is fine). An upgraded member rolled back to the
//!   old binary while the cluster version is still old starts.
//!
//! The server's own version policy is in ARCHITECTURE.md.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use gauntlet_api::etcdserverpb::{self as pb, downgrade_request::DowngradeAction};
use gauntlet_api::rpctypes::{self, EtcdError};

use crate::config::API_VERSION;
use crate::services::Ctx;
use crate::state::{parse_minor, valid_version_change, Command, Op, VersionSet};

/// How often the leader reconsiders the cluster version (etcd's: 4 s).
pub const MONITOR_INTERVAL: Duration = Duration::from_secs(4);
/// Deadline of asking one member its version.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// The storage version file, under `member/`.
const STORAGE_VERSION_FILE: &str = "storage-version";
/// The environment variable that makes this binary report another server version.
pub const VERSION_OVERRIDE_ENV: &str = "GAUNTLET_SERVER_VERSION";

/// This binary's server version (see the module docs).
pub fn server_version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        std::env::var(VERSION_OVERRIDE_ENV)
            .ok()
            .filter(|v| parse_minor(v).is_some())
            .unwrap_or_else(|| API_VERSION.to_string())
    })
}

fn local() -> (u64, u64) {
    parse_minor(server_version()).unwrap_or((3, 5))
}

/// `major.minor` printed as etcd prints a cluster version (`3.5.0`).
pub fn semver((major, minor): (u64, u64)) -> String {
    format!("{major}.{minor}.0")
}

/// Refuses a data dir with a newer storage version (checked before anything is opened;
/// nothing is written).
pub fn check_storage(member_dir: &Path) -> anyhow::Result<()> {
    let path = member_dir.join(STORAGE_VERSION_FILE);
    let stored = match std::fs::read_to_string(&path) {
        Ok(t) => Some(
            parse_minor(&t)
                .with_context(|| format!("{} is damaged: `{}`", path.display(), t.trim()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let me = local();
    if let Some(s) = stored {
        if s > me {
            anyhow::bail!(
                "the data dir was written by storage version {}.{}, newer than this binary's {}.{}: start a binary of version {}.{} or later (nothing was changed)",
                s.0, s.1, me.0, me.1, s.0, s.1
            );
        }
    }
    Ok(())
}

/// Records `cluster_version` as the data dir's storage version (when it changed).
fn record_storage(member_dir: &Path, cluster_version: (u64, u64)) -> anyhow::Result<()> {
    let path = member_dir.join(STORAGE_VERSION_FILE);
    let text = format!("{}.{}\n", cluster_version.0, cluster_version.1);
    if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
        return Ok(());
    }
    crate::durable::write_atomic(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// etcd's downgrade detection at start: a cluster version above this binary's.
pub fn check_cluster_version(cluster_version: Option<(u64, u64)>) -> anyhow::Result<()> {
    let me = local();
    if let Some(cv) = cluster_version {
        if me < cv {
            anyhow::bail!(
                "invalid downgrade; server version {} is lower than determined cluster version {}.{}",
                server_version(),
                cv.0,
                cv.1
            );
        }
    }
    Ok(())
}

/// The leader's loop deciding the cluster version and ending finished downgrades.
pub async fn monitor(ctx: Ctx) {
    let mut ticker = tokio::time::interval(MONITOR_INTERVAL);
    let mut was_leader = false;
    loop {
        // Wake often enough to act soon after becoming leader, decide every interval.
        tokio::select! {
            _ = ticker.tick() => {}
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                let leader = ctx.node.status.is_leader.load(std::sync::atomic::Ordering::Relaxed);
                let became = leader && !was_leader;
                was_leader = leader;
                if !became {
                    continue;
                }
            }
        }
        if ctx
            .node
            .status
            .removed
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let applied = ctx.node.read_state().cluster().cluster_version;
        if let Some(cv) = applied {
            if let Err(e) = record_storage(&ctx.member_dir, cv) {
                tracing::warn!("{e:#}");
            }
        }
        if !ctx
            .node
            .status
            .is_leader
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            continue;
        }
        if let Err(e) = decide(&ctx).await {
            tracing::debug!("cluster version: {e}");
        }
    }
}

/// Every member's server version (major.minor), or `None` if one did not answer.
async fn member_versions(ctx: &Ctx) -> Option<Vec<(u64, u64)>> {
    let ids = ctx.member_ids();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if id == ctx.member_id {
            out.push(local());
            continue;
        }
        let mut client = ctx.transport.client(id)?;
        let call = client.member_info(crate::peerpb::MemberInfoRequest {});
        let info = tokio::time::timeout(ASK_TIMEOUT, call).await.ok()?.ok()?;
        out.push(parse_minor(&info.into_inner().server_version)?);
    }
    Some(out)
}

async fn propose(ctx: &Ctx, set: VersionSet) -> Result<(), EtcdError> {
    let a = ctx
        .node
        .propose(Command::internal(Op::VersionSet(set)))
        .await?;
    a.outcome.map(|_| ())
}

async fn decide(ctx: &Ctx) -> Result<(), String> {
    let versions = member_versions(ctx)
        .await
        .ok_or("a member did not say its version: no decision")?;
    let Some(&lowest) = versions.iter().min() else {
        return Ok(());
    };
    let (current, downgrade) = {
        let st = ctx.node.read_state();
        (st.cluster().cluster_version, st.cluster().downgrade)
    };
    let change = match current {
        None => true,
        Some(cv) => cv != lowest && valid_version_change(cv, lowest),
    };
    if change {
        tracing::info!(to = %semver(lowest), "updating the cluster version");
        propose(
            ctx,
            VersionSet {
                version: format!("{}.{}", lowest.0, lowest.1),
                cluster: true,
                enabled: false,
            },
        )
        .await
        .map_err(|e| e.message.to_string())?;
    }
    if let Some(target) = downgrade {
        if versions.iter().all(|v| *v == target) {
            tracing::info!(
                "the cluster has been downgraded to {}.{}",
                target.0,
                target.1
            );
            propose(
                ctx,
                VersionSet {
                    version: String::new(),
                    cluster: false,
                    enabled: false,
                },
            )
            .await
            .map_err(|e| e.message.to_string())?;
        }
    }
    Ok(())
}

/// Maintenance.Downgrade (see the module docs); answers the cluster version.
pub async fn downgrade(ctx: &Ctx, req: &pb::DowngradeRequest) -> Result<String, EtcdError> {
    let action = DowngradeAction::try_from(req.action).unwrap_or(DowngradeAction::Validate);
    let cv = || ctx.node.read_state().cluster().cluster_version;
    match action {
        DowngradeAction::Validate | DowngradeAction::Enable => {
            let target =
                parse_minor(&req.version).ok_or(rpctypes::WRONG_DOWNGRADE_VERSION_FORMAT)?;
            ctx.node.read_index().await?;
            let current = cv().ok_or(rpctypes::CLUSTER_VERSION_UNAVAILABLE)?;
            if current.1 == 0 || target != (current.0, current.1 - 1) {
                return Err(rpctypes::INVALID_DOWNGRADE_TARGET_VERSION);
            }
            if ctx.node.read_state().cluster().downgrade.is_some() {
                return Err(rpctypes::DOWNGRADE_IN_PROCESS);
            }
            if action == DowngradeAction::Enable {
                propose(
                    ctx,
                    VersionSet {
                        version: format!("{}.{}", target.0, target.1),
                        cluster: false,
                        enabled: true,
                    },
                )
                .await?;
            }
            Ok(semver(current))
        }
        DowngradeAction::Cancel => {
            ctx.node.read_index().await?;
            if ctx.node.read_state().cluster().downgrade.is_none() {
                return Err(rpctypes::NO_INFLIGHT_DOWNGRADE);
            }
            propose(
                ctx,
                VersionSet {
                    version: String::new(),
                    cluster: false,
                    enabled: false,
                },
            )
            .await?;
            Ok(cv().map(semver).unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_storage_version_is_refused_without_touching_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        check_storage(dir.path()).unwrap();
        let file = dir.path().join(STORAGE_VERSION_FILE);
        assert!(!file.exists());
        record_storage(dir.path(), (3, 4)).unwrap();
        check_storage(dir.path()).unwrap();
        record_storage(dir.path(), (3, 6)).unwrap();
        let e = check_storage(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("storage version 3.6, newer than this binary's 3.5"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "3.6\n");
    }

    #[test]
    fn a_cluster_version_above_the_binary_is_a_downgrade() {
        assert!(check_cluster_version(None).is_ok());
        assert!(check_cluster_version(Some((3, 4))).is_ok());
        assert!(check_cluster_version(Some((3, 5))).is_ok());
        let e = check_cluster_version(Some((3, 6))).unwrap_err().to_string();
        assert!(e.starts_with("invalid downgrade;"), "{e}");
    }
}
