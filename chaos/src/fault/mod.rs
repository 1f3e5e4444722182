//! Faults: one family per module, each fault a [`FaultKind`] with a name, a support
//! rule, and inject / verify / heal steps.
//!
//! A fault is judged only if it really took effect: [`verify`](process) looks for the
//! evidence (a killed process is gone, a paused leader lost leadership, a compaction
//! answered) and a fault that cannot show it fails the round's setup, never passes it.
//!
//! Families: `process` (SIGKILL, SIGTERM, SIGSTOP of chosen members, then restart or
//! SIGCONT), `maintenance` (compaction, defragmentation and leader moves as recorded
//! client operations) and `network` (a member's inbound peer proxy taken down, delayed,
//! throttled or resetting connections; full partitions that cut chosen links between
//! members in both directions; on the docker backend the same faults are packet
//! filter rules between real addresses), `failpoint` (panics and sleeps at named points
//! through etcd's gofail endpoint, for targets built with gofail) and `power-loss`
//! (SIGKILL, then everything not fsynced is dropped by the power-loss filesystem under
//! the data dirs, then restart: a power cut) and `disk` (failing or slow fsyncs on the
//! same filesystem).

use std::time::Duration;

use gauntlet_harness::{Client, Cluster};
use rand::rngs::StdRng;
use serde::Serialize;

mod failpoint;
mod maintenance;
mod network;
mod partition;
mod power;
mod process;

/// Every fault gauntlet chaos can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "&'static str")]
pub enum FaultKind {
    /// No fault: traffic only (the baseline, and the self-test's).
    None,
    /// SIGKILL a follower, restart it.
    KillFollower,
    /// SIGKILL the leader, restart it.
    KillLeader,
    /// SIGKILL a random member, restart it.
    KillRandom,
    /// SIGKILL a majority at once, restart them.
    KillMajority,
    /// SIGKILL every member, restart them.
    KillAll,
    /// SIGTERM a random member (SIGKILL after 10 s), restart it.
    TermRandom,
    /// SIGSTOP the leader for longer than the election timeout, then SIGCONT.
    PauseLeader,
    /// SIGSTOP a follower for longer than the election timeout, then SIGCONT.
    PauseFollower,
    /// Remove a random member through the Cluster API, wipe its data, add it back and
    /// start it with `--initial-cluster-state existing`.
    ReplaceMember,
    /// Compact at the current revision, as a recorded client operation.
    Compact,
    /// Defragment every member, as recorded client operations.
    Defrag,
    /// Move leadership to a random follower.
    MoveLeader,
    /// Take the leader's inbound peer proxy down for three election timeouts.
    CutLeaderInbound,
    /// Take a follower's inbound peer proxy down for three election timeouts.
    CutFollowerInbound,
    /// 75 ± 50 ms on both streams of a random member's inbound peer proxy for a second.
    DelayPeer,
    /// 64 KB/s on both streams of a random member's inbound peer proxy for a second.
    BandwidthPeer,
    /// Reset every connection into a random member's peer port for a second.
    ResetPeer,
    /// Drop half of the chunks on both streams of a random member's inbound peer proxy
    /// for a second (needs peer TLS).
    DropPeer,
    /// Cut every link of the leader for three election timeouts (a full partition).
    PartitionLeader,
    /// Cut every link of a follower for three election timeouts.
    PartitionFollower,
    /// Cut a random minority (at least one member) off from the majority.
    PartitionMinority,
    /// Jepsen's majorities ring: every member still reaches a majority, but no two
    /// members the same one (3 members: one cut link, a bridge).
    PartitionRing,
    /// Cut a follower off until the leader has written more entries than it keeps for
    /// slow followers, so the follower must catch up by snapshot.
    PartitionUntilSnapshot,
    /// gofail `beforeCommit=panic` on a random member, then restart it.
    PanicBeforeCommit,
    /// gofail `afterCommit=panic` on a random member, then restart it.
    PanicAfterCommit,
    /// gofail `raftBeforeSave=panic` on a random member, then restart it.
    PanicRaftBeforeSave,
    /// gofail `raftAfterSave=panic` on a random member, then restart it.
    PanicRaftAfterSave,
    /// gofail `raftBeforeLeaderSend=panic` on the leader, then restart it.
    PanicLeaderBeforeSend,
    /// gofail `raftBeforeFollowerSend=panic` on a follower.
    PanicFollowerBeforeSend,
    /// gofail `raftBeforeSaveSnap=panic` on a follower pushed into a snapshot catch-up.
    PanicRaftBeforeSaveSnap,
    /// gofail `raftAfterSaveSnap=panic` on a follower pushed into a snapshot catch-up.
    PanicRaftAfterSaveSnap,
    /// gofail `raftBeforeApplySnap=panic` on a follower pushed into a snapshot catch-up.
    PanicRaftBeforeApplySnap,
    /// gofail `raftAfterApplySnap=panic` on a follower pushed into a snapshot catch-up.
    PanicRaftAfterApplySnap,
    /// gofail `defragBeforeCopy=panic` on a random member, which is then defragmented.
    PanicDefragBeforeCopy,
    /// gofail `defragBeforeRename=panic` on a random member, which is then defragmented.
    PanicDefragBeforeRename,
    /// gofail `compactBeforeCommitBatch=panic` on a random member, then a compaction.
    PanicCompactBeforeCommitBatch,
    /// gofail `compactAfterCommitBatch=panic` on a random member, then a compaction.
    PanicCompactAfterCommitBatch,
    /// gofail `raftBeforeSave=sleep(100)` on a random member for a second.
    SleepRaftBeforeSave,
    /// gofail `beforeSendWatchResponse=sleep(100)` on a random member for a second.
    SleepBeforeSendWatchResponse,
    /// Power cut of a random member: SIGKILL, drop what it wrote but did not sync, restart.
    PowerLossOne,
    /// Power cut of the leader.
    PowerLossLeader,
    /// Power cut of a follower.
    PowerLossFollower,
    /// Power cut of a majority at once.
    PowerLossMajority,
    /// Power cut of every member at once.
    PowerLossAll,
    /// Power cut of every member on a strict disk: creates, renames and unlinks not
    /// followed by an fsync of their directory are lost too.
    PowerLossAllStrict,
    /// Power cut of every member, each file's last unsynced write torn (a prefix of it
    /// reaches the disk).
    PowerLossTornWrite,
    /// Every fsync of a random member fails with EIO until it exits (2 s at most), then
    /// its power is cut and it restarts: nothing it acknowledged may rest on a failed fsync.
    DiskFsyncEio,
    /// Every fsync of the leader takes 300 ms longer, for 3 s.
    DiskSlowFsyncLeader,
}

impl From<FaultKind> for &'static str {
    fn from(f: FaultKind) -> &'static str {
        f.name()
    }
}

impl FaultKind {
    /// Every fault, in a fixed order.
    pub const ALL: [FaultKind; 49] = [
        FaultKind::None,
        FaultKind::KillFollower,
        FaultKind::KillLeader,
        FaultKind::KillRandom,
        FaultKind::KillMajority,
        FaultKind::KillAll,
        FaultKind::TermRandom,
        FaultKind::PauseLeader,
        FaultKind::PauseFollower,
        FaultKind::ReplaceMember,
        FaultKind::Compact,
        FaultKind::Defrag,
        FaultKind::MoveLeader,
        FaultKind::CutLeaderInbound,
        FaultKind::CutFollowerInbound,
        FaultKind::DelayPeer,
        FaultKind::BandwidthPeer,
        FaultKind::ResetPeer,
        FaultKind::DropPeer,
        FaultKind::PartitionLeader,
        FaultKind::PartitionFollower,
        FaultKind::PartitionMinority,
        FaultKind::PartitionRing,
        FaultKind::PartitionUntilSnapshot,
        FaultKind::PanicBeforeCommit,
        FaultKind::PanicAfterCommit,
        FaultKind::PanicRaftBeforeSave,
        FaultKind::PanicRaftAfterSave,
        FaultKind::PanicLeaderBeforeSend,
        FaultKind::PanicFollowerBeforeSend,
        FaultKind::PanicRaftBeforeSaveSnap,
        FaultKind::PanicRaftAfterSaveSnap,
        FaultKind::PanicRaftBeforeApplySnap,
        FaultKind::PanicRaftAfterApplySnap,
        FaultKind::PanicDefragBeforeCopy,
        FaultKind::PanicDefragBeforeRename,
        FaultKind::PanicCompactBeforeCommitBatch,
        FaultKind::PanicCompactAfterCommitBatch,
        FaultKind::SleepRaftBeforeSave,
        FaultKind::SleepBeforeSendWatchResponse,
        FaultKind::PowerLossOne,
        FaultKind::PowerLossLeader,
        FaultKind::PowerLossFollower,
        FaultKind::PowerLossMajority,
        FaultKind::PowerLossAll,
        FaultKind::PowerLossAllStrict,
        FaultKind::PowerLossTornWrite,
        FaultKind::DiskFsyncEio,
        FaultKind::DiskSlowFsyncLeader,
    ];

    /// `family.name`, what `--fault GLOB` matches.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::None => "none",
            FaultKind::KillFollower => "process.kill-follower",
            FaultKind::KillLeader => "process.kill-leader",
            FaultKind::KillRandom => "process.kill-random",
            FaultKind::KillMajority => "process.kill-majority",
            FaultKind::KillAll => "process.kill-all",
            FaultKind::TermRandom => "process.term-random",
            FaultKind::PauseLeader => "process.pause-leader",
            FaultKind::PauseFollower => "process.pause-follower",
            FaultKind::ReplaceMember => "process.replace-member",
            FaultKind::Compact => "maintenance.compact",
            FaultKind::Defrag => "maintenance.defrag",
            FaultKind::MoveLeader => "maintenance.move-leader",
            FaultKind::CutLeaderInbound => "network.cut-leader-inbound",
            FaultKind::CutFollowerInbound => "network.cut-follower-inbound",
            FaultKind::DelayPeer => "network.delay-peer",
            FaultKind::BandwidthPeer => "network.bandwidth-peer",
            FaultKind::ResetPeer => "network.reset-peer",
            FaultKind::DropPeer => "network.drop-peer",
            FaultKind::PartitionLeader => "network.partition-leader",
            FaultKind::PartitionFollower => "network.partition-follower",
            FaultKind::PartitionMinority => "network.partition-minority",
            FaultKind::PartitionRing => "network.partition-ring",
            FaultKind::PartitionUntilSnapshot => "network.partition-until-snapshot",
            FaultKind::PanicBeforeCommit => "failpoint.panic-before-commit",
            FaultKind::PanicAfterCommit => "failpoint.panic-after-commit",
            FaultKind::PanicRaftBeforeSave => "failpoint.panic-raft-before-save",
            FaultKind::PanicRaftAfterSave => "failpoint.panic-raft-after-save",
            FaultKind::PanicLeaderBeforeSend => "failpoint.panic-leader-before-send",
            FaultKind::PanicFollowerBeforeSend => "failpoint.panic-follower-before-send",
            FaultKind::PanicRaftBeforeSaveSnap => "failpoint.panic-raft-before-save-snap",
            FaultKind::PanicRaftAfterSaveSnap => "failpoint.panic-raft-after-save-snap",
            FaultKind::PanicRaftBeforeApplySnap => "failpoint.panic-raft-before-apply-snap",
            FaultKind::PanicRaftAfterApplySnap => "failpoint.panic-raft-after-apply-snap",
            FaultKind::PanicDefragBeforeCopy => "failpoint.panic-defrag-before-copy",
            FaultKind::PanicDefragBeforeRename => "failpoint.panic-defrag-before-rename",
            FaultKind::PanicCompactBeforeCommitBatch => {
                "failpoint.panic-compact-before-commit-batch"
            }
            FaultKind::PanicCompactAfterCommitBatch => "failpoint.panic-compact-after-commit-batch",
            FaultKind::SleepRaftBeforeSave => "failpoint.sleep-raft-before-save",
            FaultKind::SleepBeforeSendWatchResponse => "failpoint.sleep-before-send-watch-response",
            FaultKind::PowerLossOne => "power-loss.one",
            FaultKind::PowerLossLeader => "power-loss.leader",
            FaultKind::PowerLossFollower => "power-loss.follower",
            FaultKind::PowerLossMajority => "power-loss.majority",
            FaultKind::PowerLossAll => "power-loss.all",
            FaultKind::PowerLossAllStrict => "power-loss.all-strict-metadata",
            FaultKind::PowerLossTornWrite => "power-loss.torn-write",
            FaultKind::DiskFsyncEio => "disk.fsync-eio-then-power-cut",
            FaultKind::DiskSlowFsyncLeader => "disk.slow-fsync-leader",
        }
    }

    /// One line on what the fault does (`gauntlet chaos --list-faults`).
    pub fn description(self) -> &'static str {
        match self {
            FaultKind::None => "No fault: traffic only (the baseline, and the self-test's).",
            FaultKind::KillFollower => "SIGKILL a follower, restart it.",
            FaultKind::KillLeader => "SIGKILL the leader, restart it.",
            FaultKind::KillRandom => "SIGKILL a random member, restart it.",
            FaultKind::KillMajority => "SIGKILL a majority at once, restart them.",
            FaultKind::KillAll => "SIGKILL every member, restart them.",
            FaultKind::TermRandom => "SIGTERM a random member (SIGKILL after 10 s), restart it.",
            FaultKind::PauseLeader => "SIGSTOP the leader for longer than the election timeout, then SIGCONT.",
            FaultKind::PauseFollower => "SIGSTOP a follower for longer than the election timeout, then SIGCONT.",
            FaultKind::ReplaceMember => "Remove a random member through the Cluster API, wipe its data, add it back and start it with `--initial-cluster-state existing`.",
            FaultKind::Compact => "Compact at the current revision, as a recorded client operation.",
            FaultKind::Defrag => "Defragment every member, as recorded client operations.",
            FaultKind::MoveLeader => "Move leadership to a random follower.",
            FaultKind::CutLeaderInbound => "Take the leader's inbound peer proxy down for three election timeouts.",
            FaultKind::CutFollowerInbound => "Take a follower's inbound peer proxy down for three election timeouts.",
            FaultKind::DelayPeer => "75 ± 50 ms on both streams of a random member's inbound peer proxy for a second.",
            FaultKind::BandwidthPeer => "64 KB/s on both streams of a random member's inbound peer proxy for a second.",
            FaultKind::ResetPeer => "Reset every connection into a random member's peer port for a second.",
            FaultKind::DropPeer => "Drop half of the chunks on both streams of a random member's inbound peer proxy for a second (needs peer TLS).",
            FaultKind::PartitionLeader => "Cut every link of the leader for three election timeouts (a full partition).",
            FaultKind::PartitionFollower => "Cut every link of a follower for three election timeouts.",
            FaultKind::PartitionMinority => "Cut a random minority (at least one member) off from the majority.",
            FaultKind::PartitionRing => "Jepsen's majorities ring: every member still reaches a majority, but no two members the same one (3 members: one cut link, a bridge).",
            FaultKind::PartitionUntilSnapshot => "Cut a follower off until the leader has written more entries than it keeps for slow followers, so the follower must catch up by snapshot.",
            FaultKind::PanicBeforeCommit => "gofail `beforeCommit=panic` on a random member, then restart it.",
            FaultKind::PanicAfterCommit => "gofail `afterCommit=panic` on a random member, then restart it.",
            FaultKind::PanicRaftBeforeSave => "gofail `raftBeforeSave=panic` on a random member, then restart it.",
            FaultKind::PanicRaftAfterSave => "gofail `raftAfterSave=panic` on a random member, then restart it.",
            FaultKind::PanicLeaderBeforeSend => "gofail `raftBeforeLeaderSend=panic` on the leader, then restart it.",
            FaultKind::PanicFollowerBeforeSend => "gofail `raftBeforeFollowerSend=panic` on a follower, then restart it.",
            FaultKind::PanicRaftBeforeSaveSnap => "gofail `raftBeforeSaveSnap=panic` on a follower, cut it off until it needs a snapshot, heal, then restart it.",
            FaultKind::PanicRaftAfterSaveSnap => "gofail `raftAfterSaveSnap=panic` on a follower, cut it off until it needs a snapshot, heal, then restart it.",
            FaultKind::PanicRaftBeforeApplySnap => "gofail `raftBeforeApplySnap=panic` on a follower, cut it off until it needs a snapshot, heal, then restart it.",
            FaultKind::PanicRaftAfterApplySnap => "gofail `raftAfterApplySnap=panic` on a follower, cut it off until it needs a snapshot, heal, then restart it.",
            FaultKind::PanicDefragBeforeCopy => "gofail `defragBeforeCopy=panic` on a random member, defragment it (recorded), then restart it.",
            FaultKind::PanicDefragBeforeRename => "gofail `defragBeforeRename=panic` on a random member, defragment it (recorded), then restart it.",
            FaultKind::PanicCompactBeforeCommitBatch => "gofail `compactBeforeCommitBatch=panic` on a random member, compact (recorded), then restart it.",
            FaultKind::PanicCompactAfterCommitBatch => "gofail `compactAfterCommitBatch=panic` on a random member, compact (recorded), then restart it.",
            FaultKind::SleepRaftBeforeSave => "gofail `raftBeforeSave=sleep(100)` on a random member for a second.",
            FaultKind::SleepBeforeSendWatchResponse => "gofail `beforeSendWatchResponse=sleep(100)` on a random member for a second.",
            FaultKind::PowerLossOne => "Power cut of a random member: SIGKILL, drop everything it wrote but did not fsync, restart.",
            FaultKind::PowerLossLeader => "Power cut of the leader: SIGKILL, drop its unsynced writes, restart.",
            FaultKind::PowerLossFollower => "Power cut of a follower: SIGKILL, drop its unsynced writes, restart.",
            FaultKind::PowerLossMajority => "Power cut of a majority at once: SIGKILL, drop their unsynced writes, restart.",
            FaultKind::PowerLossAll => "Power cut of every member at once: SIGKILL, drop their unsynced writes, restart.",
            FaultKind::PowerLossAllStrict => "Power cut of every member on a strict disk: unsynced writes and creates, renames and unlinks whose directory was not fsynced are lost.",
            FaultKind::PowerLossTornWrite => "Power cut of every member; each file's last unsynced write is torn (a seeded prefix of it survives), the rest is lost.",
            FaultKind::DiskFsyncEio => "Every fsync of a random member fails with EIO until it exits (2 s at most); then its power is cut and it restarts.",
            FaultKind::DiskSlowFsyncLeader => "Every fsync of the leader takes 300 ms longer, for 3 s.",
        }
    }

    /// Whether the round's members talk through peer proxies: every network fault, and
    /// the snapshot failpoints, which cut a follower off until it needs a snapshot.
    pub fn needs_peer_proxies(self) -> bool {
        self.family() == "network"
            || matches!(
                self,
                FaultKind::PanicRaftBeforeSaveSnap
                    | FaultKind::PanicRaftAfterSaveSnap
                    | FaultKind::PanicRaftBeforeApplySnap
                    | FaultKind::PanicRaftAfterApplySnap
            )
    }

    /// Whether the round's members run on the power-loss filesystem: the `power-loss`
    /// and `disk` families (process backend only; the filesystem is mounted on the host).
    pub fn needs_power_fs(self) -> bool {
        matches!(self.family(), "power-loss" | "disk")
    }

    /// Whether the fault models a disk stricter than the filesystems production
    /// clusters run on: `power-loss.all-strict-metadata` undoes creates, renames and
    /// unlinks whose directory was not fsynced, which POSIX allows but ext4 and XFS do
    /// not do once a file in the directory has been fsynced. A violation under it
    /// concerns those on such a disk, not everyone.
    pub fn stricter_than_common_filesystems(self) -> bool {
        matches!(self, FaultKind::PowerLossAllStrict)
    }

    /// The fault named `name`, if any.
    pub fn by_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The family (the part of the name before the dot).
    pub fn family(self) -> &'static str {
        self.name().split('.').next().unwrap_or("none")
    }

    /// Whether a cluster of `members` can take this fault; `Err` says why not.
    pub fn supported(self, members: usize) -> Result<(), String> {
        match self {
            FaultKind::KillFollower
            | FaultKind::PauseFollower
            | FaultKind::MoveLeader
            | FaultKind::CutFollowerInbound
            | FaultKind::PartitionFollower
            | FaultKind::PartitionUntilSnapshot
            | FaultKind::ReplaceMember
            | FaultKind::PanicFollowerBeforeSend
            | FaultKind::PanicRaftBeforeSaveSnap
            | FaultKind::PanicRaftAfterSaveSnap
            | FaultKind::PanicRaftBeforeApplySnap
            | FaultKind::PanicRaftAfterApplySnap
            | FaultKind::PowerLossFollower
                if members < 2 =>
            {
                Err(format!(
                    "{} needs a follower: 2 or more members",
                    self.name()
                ))
            }
            _ if self.family() == "network" && members < 2 => Err(format!(
                "{} needs peer links: 2 or more members",
                self.name()
            )),
            FaultKind::PartitionRing if members < 3 => {
                Err(format!("{} needs a ring: 3 or more members", self.name()))
            }
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The gofail failpoints `target` has: starts one member with a gofail endpoint and
/// lists them. `Ok(None)`: the target opens no endpoint (built without gofail), so no
/// failpoint fault applies to it. `Err`: the probe member did not start.
pub async fn failpoints_of(
    target: &gauntlet_harness::Target,
    cache: &gauntlet_harness::Cache,
) -> Result<Option<Vec<String>>, String> {
    let mut spec = gauntlet_harness::ClusterSpec::new(target.clone(), 1);
    spec.gofail = true;
    let cluster = Cluster::start(spec, cache)
        .await
        .map_err(|e| format!("probing {target} for failpoints: {e}"))?;
    let Some(url) = cluster.gofail_url(0) else {
        return Ok(None);
    };
    let client = gauntlet_harness::gofail::GofailClient::new(&url);
    let listed = tokio::task::spawn_blocking(move || client.list())
        .await
        .map_err(|e| e.to_string())?;
    cluster.shutdown();
    Ok(listed.ok().map(|m| m.into_keys().collect()))
}

/// Whether `kind` needs a failpoint, and which.
pub fn failpoint_name(kind: FaultKind) -> Option<&'static str> {
    failpoint::point(kind).map(|(name, _)| name)
}

/// Which members a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    /// The leader.
    Leader,
    /// A follower, chosen at random.
    Follower,
    /// Any member, chosen at random.
    Random,
    /// A random majority, in index order.
    Majority,
    /// Every member.
    All,
}

/// The members `who` names, drawing from the round's generator (the same draws for
/// every fault family, so a seed picks the same members whichever family asks).
pub(crate) fn pick(
    who: Who,
    ctx: &mut FaultCtx<'_>,
    leader: Option<usize>,
) -> Result<Vec<usize>, FaultError> {
    use rand::seq::SliceRandom;
    use rand::Rng;
    let n = ctx.cluster.size();
    let all: Vec<usize> = (0..n).collect();
    Ok(match who {
        Who::Leader => vec![leader.ok_or_else(|| failed("no leader to hit"))?],
        Who::Follower => {
            let followers: Vec<usize> =
                all.iter().copied().filter(|i| Some(*i) != leader).collect();
            vec![*followers
                .choose(ctx.rng)
                .ok_or_else(|| failed("no follower to hit"))?]
        }
        Who::Random => vec![ctx.rng.gen_range(0..n)],
        Who::Majority => {
            let mut m = all;
            m.shuffle(ctx.rng);
            m.truncate(n / 2 + 1);
            m.sort_unstable();
            m
        }
        Who::All => all,
    })
}

/// The process ids of members `hit` now (`None` for a member that does not run).
pub(crate) fn pids_of(cluster: &Cluster, hit: &[usize]) -> Vec<Option<u32>> {
    let members = cluster.members();
    hit.iter().map(|i| members[*i].pid).collect()
}

/// Confirms that members `hit` (which ran as `pids`) are gone after `what`: one evidence
/// line each, or the error naming the one still running.
pub(crate) fn confirm_gone(
    cluster: &Cluster,
    hit: &[usize],
    pids: &[Option<u32>],
    what: impl std::fmt::Display,
) -> Result<Vec<String>, FaultError> {
    let members = cluster.members();
    let mut evidence = Vec::new();
    for (i, pid) in hit.iter().zip(pids) {
        if members[*i].state != gauntlet_harness::MemberState::Stopped || pid.is_some_and(alive) {
            return Err(failed(format!("m{i} is still running after {what}")));
        }
        evidence.push(format!(
            "m{i} (pid {}) is gone",
            pid.map_or_else(|| "?".into(), |p| p.to_string())
        ));
    }
    Ok(evidence)
}

/// A fault that could not be injected or verified.
fn failed(e: impl std::fmt::Display) -> FaultError {
    FaultError::Failed(e.to_string())
}

/// Whether process `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
        .unwrap_or(false)
}

/// Waits until the cluster serves again after `kind` was healed; not serving within
/// `ready` is the finding [`FaultError::NoRecovery`].
async fn serve_again(
    cluster: &Cluster,
    ready: Duration,
    kind: FaultKind,
) -> Result<(), FaultError> {
    cluster.wait_ready(ready).await.map_err(|e| {
        FaultError::NoRecovery(format!(
            "the cluster did not serve again within {} s after {kind} was healed: {e}",
            ready.as_secs()
        ))
    })
}

/// Why a fault could not be run.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// The target does not implement what the fault needs (e.g. MoveLeader answers
    /// Unimplemented): the round is reported as not run, not as passed.
    #[error("not supported by the target: {0}")]
    Unsupported(String),
    /// Injecting or verifying failed: the round could not run as planned.
    #[error("{0}")]
    Failed(String),
    /// The cluster did not serve again after the fault was healed: a finding.
    #[error("{0}")]
    NoRecovery(String),
}

/// What happened while a fault ran, on the recording clock.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// The fault.
    pub fault: FaultKind,
    /// Members it hit (indexes).
    pub members: Vec<usize>,
    /// The leader before the fault, if known.
    pub leader_before: Option<usize>,
    /// When injection started.
    pub injected_ns: u64,
    /// When healing finished (the cluster serves again).
    pub healed_ns: u64,
    /// Evidence that it took effect.
    pub evidence: Vec<String>,
}

/// Everything a fault may use.
pub(crate) struct FaultCtx<'a> {
    pub cluster: &'a Cluster,
    /// A recording client over every member (maintenance operations go into the history).
    pub client: &'a Client,
    pub rng: &'a mut StdRng,
    pub election_ms: u64,
    /// The cluster's `--snapshot-count`.
    pub snapshot_count: u64,
}

/// Injects `kind`, verifies it took effect, keeps it for its hold time, heals it and
/// waits until the cluster serves again (`ready` bounds that wait).
pub(crate) async fn run(
    kind: FaultKind,
    ctx: FaultCtx<'_>,
    ready: Duration,
) -> Result<FaultRecord, FaultError> {
    let leader_before = ctx.cluster.leader().await.ok();
    let injected_ns = gauntlet_harness::now_ns();
    let (members, evidence) = match kind {
        FaultKind::None => (Vec::new(), vec!["no fault".to_string()]),
        FaultKind::Compact | FaultKind::Defrag | FaultKind::MoveLeader => {
            maintenance::run(kind, &ctx, leader_before).await?
        }
        FaultKind::PartitionLeader
        | FaultKind::PartitionFollower
        | FaultKind::PartitionMinority
        | FaultKind::PartitionRing
        | FaultKind::PartitionUntilSnapshot => {
            let mut ctx = ctx;
            partition::run(kind, &mut ctx, leader_before, ready).await?
        }
        k if k.family() == "failpoint" => {
            let mut ctx = ctx;
            failpoint::run(kind, &mut ctx, leader_before, ready).await?
        }
        k if k.family() == "network" => {
            let mut ctx = ctx;
            network::run(kind, &mut ctx, leader_before, ready).await?
        }
        k if k.needs_power_fs() => {
            let mut ctx = ctx;
            power::run(kind, &mut ctx, leader_before, ready).await?
        }
        _ => process::run(kind, ctx, leader_before, ready).await?,
    };
    Ok(FaultRecord {
        fault: kind,
        members,
        leader_before,
        injected_ns,
        healed_ns: gauntlet_harness::now_ns(),
        evidence,
    })
}
