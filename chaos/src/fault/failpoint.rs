//! Failpoints: panics and sleeps at named points inside the server, through etcd's
//! gofail control endpoint (`harness::gofail`), for targets built with gofail.
//!
//! Every round's members get `GOFAIL_HTTP` in their environment. A target that opens
//! no such endpoint (the etcd release binaries, which are built without gofail; the
//! reference server until it grows failpoints) or lacks the named failpoint skips the
//! round and says why: that is "not supported", never a pass.
//!
//! A panic failpoint is armed on one member; the traffic drives the member into it (or,
//! for the defragmentation and compaction points, a recorded Defragment of that member
//! or a recorded Compact at the current revision; for the snapshot points, a partition
//! that leaves the follower so far behind that the leader must send it a snapshot) and
//! it exits; the fault proves that (the process is gone within [`PANIC_WITHIN`]), then
//! restarts the member. Under traffic an armed panic can fire before the endpoint has
//! answered the arming request; a dropped request followed by the process being gone
//! within [`ARMING_EXIT_WITHIN`] is that, and counts as the point taking effect (the
//! member's log line naming the point goes into the evidence). A sleep failpoint is
//! armed for [`SLEEP_FOR`] and cleared.

use std::time::Duration;

use gauntlet_harness::gofail::{GofailClient, GofailError};
use rand::seq::SliceRandom;

use super::{alive, failed, serve_again, FaultCtx, FaultError, FaultKind};

/// How long an armed panic may take to fire under the round's traffic.
const PANIC_WITHIN: Duration = Duration::from_secs(10);
/// How long a sleep failpoint stays armed.
const SLEEP_FOR: Duration = Duration::from_millis(1000);
/// Each sleep at the failpoint, ms.
const SLEEP_MS: u64 = 100;

/// Which member a failpoint fault arms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arm {
    /// Any member, chosen by the round's seed.
    Random,
    /// The leader.
    Leader,
    /// A follower, chosen by the round's seed.
    Follower,
}

/// The gofail failpoint a fault arms, and on which member.
pub(super) fn point(kind: FaultKind) -> Option<(&'static str, Arm)> {
    Some(match kind {
        FaultKind::PanicBeforeCommit => ("beforeCommit", Arm::Random),
        FaultKind::PanicAfterCommit => ("afterCommit", Arm::Random),
        FaultKind::PanicRaftBeforeSave => ("raftBeforeSave", Arm::Random),
        FaultKind::PanicRaftAfterSave => ("raftAfterSave", Arm::Random),
        FaultKind::PanicLeaderBeforeSend => ("raftBeforeLeaderSend", Arm::Leader),
        FaultKind::PanicFollowerBeforeSend => ("raftBeforeFollowerSend", Arm::Follower),
        FaultKind::PanicRaftBeforeSaveSnap => ("raftBeforeSaveSnap", Arm::Follower),
        FaultKind::PanicRaftAfterSaveSnap => ("raftAfterSaveSnap", Arm::Follower),
        FaultKind::PanicRaftBeforeApplySnap => ("raftBeforeApplySnap", Arm::Follower),
        FaultKind::PanicRaftAfterApplySnap => ("raftAfterApplySnap", Arm::Follower),
        FaultKind::PanicDefragBeforeCopy => ("defragBeforeCopy", Arm::Random),
        FaultKind::PanicDefragBeforeRename => ("defragBeforeRename", Arm::Random),
        FaultKind::PanicCompactBeforeCommitBatch => ("compactBeforeCommitBatch", Arm::Random),
        FaultKind::PanicCompactAfterCommitBatch => ("compactAfterCommitBatch", Arm::Random),
        FaultKind::SleepRaftBeforeSave => ("raftBeforeSave", Arm::Random),
        FaultKind::SleepBeforeSendWatchResponse => ("beforeSendWatchResponse", Arm::Random),
        _ => return None,
    })
}

/// Drives the armed member into a point the traffic does not reach: defragments it, or
/// compacts at the current revision (both recorded; their errors are the member dying).
async fn trigger(kind: FaultKind, ctx: &FaultCtx<'_>, hit: usize) -> Option<String> {
    use gauntlet_api::etcdserverpb as pb;
    match kind {
        FaultKind::PanicDefragBeforeCopy | FaultKind::PanicDefragBeforeRename => {
            let m = ctx.client.pinned(hit).ok()?;
            let r = m.defragment(pb::DefragmentRequest {}).await;
            Some(format!(
                "Defragment m{hit}: {}",
                r.map_or_else(|e| e.to_string(), |_| "answered".into())
            ))
        }
        FaultKind::PanicCompactBeforeCommitBatch | FaultKind::PanicCompactAfterCommitBatch => {
            let rev = ctx
                .client
                .range(pb::RangeRequest {
                    key: b"/chaos/".to_vec(),
                    range_end: b"/chaos0".to_vec(),
                    count_only: true,
                    ..Default::default()
                })
                .await
                .ok()?
                .header
                .map_or(1, |h| h.revision);
            let r = ctx
                .client
                .compact(pb::CompactionRequest {
                    revision: rev,
                    physical: true,
                })
                .await;
            Some(format!(
                "Compact at {rev}: {}",
                r.map_or_else(|e| e.to_string(), |_| "answered".into())
            ))
        }
        _ => None,
    }
}

/// How long a member whose endpoint dropped the arming request may take to be gone.
const ARMING_EXIT_WITHIN: Duration = Duration::from_secs(2);

/// Whether process `pid` is gone within `limit`.
async fn exits_within(pid: u32, limit: Duration) -> bool {
    let start = tokio::time::Instant::now();
    while alive(pid) && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    !alive(pid)
}

/// What says member `hit` exited at failpoint `name` (`when`: how long it took) and,
/// when its log names the point (the reference server and gofail builds print it),
/// that line.
fn exit_evidence(
    cluster: &gauntlet_harness::Cluster,
    hit: usize,
    name: &str,
    when: &str,
) -> Vec<String> {
    let mut ev = vec![format!("m{hit} exited at {name} {when}")];
    if let Some(line) = cluster
        .log_tail(hit, 40)
        .unwrap_or_default()
        .into_iter()
        .rev()
        .find(|l| l.contains(name))
    {
        ev.push(format!("m{hit}'s log: {}", line.trim()));
    }
    ev
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GofailError> + Send + 'static,
) -> Result<T, GofailError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(GofailError::Unreachable {
            url: String::new(),
            reason: e.to_string(),
        })
    })
}

pub(super) async fn run(
    kind: FaultKind,
    ctx: &mut FaultCtx<'_>,
    leader: Option<usize>,
    ready: Duration,
) -> Result<(Vec<usize>, Vec<String>), FaultError> {
    let (name, arm) = point(kind).ok_or_else(|| failed(format!("{kind} is not a failpoint")))?;
    let n = ctx.cluster.size();
    let hit = match arm {
        Arm::Leader => leader.ok_or_else(|| failed("no leader to arm"))?,
        Arm::Random => *(0..n).collect::<Vec<_>>().choose(ctx.rng).unwrap_or(&0),
        Arm::Follower => {
            let leader = leader.ok_or_else(|| failed("no leader known to pick a follower"))?;
            *(0..n)
                .filter(|i| *i != leader)
                .collect::<Vec<_>>()
                .choose(ctx.rng)
                .ok_or_else(|| failed("no follower to arm"))?
        }
    };
    let url = ctx
        .cluster
        .gofail_url(hit)
        .ok_or_else(|| failed("the cluster was started without gofail endpoints"))?;
    let client = GofailClient::new(&url);
    let c = client.clone();
    let points = blocking(move || c.list()).await.map_err(|e| match e {
        GofailError::Unreachable { .. } => FaultError::Unsupported(format!(
            "m{hit} opens no gofail endpoint (GOFAIL_HTTP): the target is not built with failpoints ({e})"
        )),
        e => failed(e),
    })?;
    if !points.contains_key(name) {
        return Err(FaultError::Unsupported(format!(
            "the target has no failpoint `{name}` (it has {})",
            points.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let pid = ctx
        .cluster
        .members()
        .get(hit)
        .and_then(|m| m.pid)
        .ok_or_else(|| failed(format!("m{hit} has no process")))?;
    let term = if kind.name().starts_with("failpoint.panic") {
        "panic".to_string()
    } else {
        format!("sleep({SLEEP_MS})")
    };
    let (c, t) = (client.clone(), term.clone());
    let mut evidence = match blocking(move || c.set(name, &t)).await {
        Ok(()) => vec![format!("armed {name}={term} on m{hit}")],
        // Under traffic an armed panic can fire before the endpoint writes its answer:
        // the process dies with the request in flight and the client sees the
        // connection drop. That is the point taking effect, once the process is gone.
        Err(e @ GofailError::Unreachable { .. }) if term == "panic" => {
            if !exits_within(pid, ARMING_EXIT_WITHIN).await {
                return Err(failed(e));
            }
            vec![format!(
                "armed {name}={term} on m{hit}: the endpoint dropped the request and m{hit} exited before answering ({e})"
            )]
        }
        Err(e) => return Err(failed(e)),
    };
    if term == "panic" {
        let when = if alive(pid) {
            match kind {
                FaultKind::PanicRaftBeforeSaveSnap
                | FaultKind::PanicRaftAfterSaveSnap
                | FaultKind::PanicRaftBeforeApplySnap
                | FaultKind::PanicRaftAfterApplySnap => {
                    let leader = leader.ok_or_else(|| failed("no leader to fall behind"))?;
                    let pushed = super::partition::push_to_snapshot(ctx, leader, hit).await;
                    if pushed.is_err() {
                        let c = client.clone();
                        let _ = blocking(move || c.clear(name)).await;
                    }
                    evidence.extend(pushed?);
                }
                _ => {
                    if let Some(what) = trigger(kind, ctx, hit).await {
                        evidence.push(what);
                    }
                }
            }
            let start = tokio::time::Instant::now();
            if !exits_within(pid, PANIC_WITHIN).await {
                let c = client.clone();
                let _ = blocking(move || c.clear(name)).await;
                return Err(failed(format!(
                    "{kind} did not take effect: m{hit} was still running {} s after arming {name}",
                    PANIC_WITHIN.as_secs()
                )));
            }
            format!("after {} ms", start.elapsed().as_millis())
        } else {
            // It fired while being armed.
            "as it was armed".to_string()
        };
        evidence.extend(exit_evidence(ctx.cluster, hit, name, &when));
        ctx.cluster.restart(hit).map_err(failed)?;
    } else {
        tokio::time::sleep(SLEEP_FOR).await;
        let c = client.clone();
        blocking(move || c.clear(name)).await.map_err(failed)?;
        evidence.push(format!("cleared {name} after {} ms", SLEEP_FOR.as_millis()));
    }
    serve_again(ctx.cluster, ready, kind).await?;
    Ok((vec![hit], evidence))
}
