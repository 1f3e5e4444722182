//! Power-loss faults: a power cut of chosen members.
//!
//! The round's members run on gauntlet's power-loss filesystem
//! ([`gauntlet_harness::powerfs`], mounted by the harness over every data dir), which keeps what
//! a member writes in memory until the member fsyncs it. A cut is: SIGKILL the members
//! (a power cut stops them at once), tell each one's filesystem to drop everything not
//! synced (it answers only once that is done, with what was lost), wait, restart. A
//! server that acknowledges a write before it is durable loses it here, which a plain
//! SIGKILL cannot show: the page cache survives a killed process.
//!
//! Variants: one random member, the leader, a follower, a majority, all members; all
//! members on a strict disk (creates, renames and unlinks whose directory was not
//! fsynced are lost too); all members with each file's last unsynced write torn.
//! The evidence is each filesystem's report of what it dropped.

use std::time::Duration;

use gauntlet_harness::MemberState;
use rand::seq::SliceRandom;
use rand::Rng;

use super::{alive, failed, serve_again, FaultCtx, FaultError, FaultKind};

/// How long the cut members stay down before they are restarted.
const DOWN_FOR: Duration = Duration::from_millis(1000);

/// The members a power cut hits.
fn targets(
    kind: FaultKind,
    ctx: &mut FaultCtx<'_>,
    leader: Option<usize>,
) -> Result<Vec<usize>, FaultError> {
    let n = ctx.cluster.size();
    let all: Vec<usize> = (0..n).collect();
    let followers: Vec<usize> = all.iter().copied().filter(|i| Some(*i) != leader).collect();
    Ok(match kind {
        FaultKind::PowerLossOne => vec![ctx.rng.gen_range(0..n)],
        FaultKind::PowerLossLeader => vec![leader.ok_or_else(|| failed("no leader to cut"))?],
        FaultKind::PowerLossFollower => vec![*followers
            .choose(ctx.rng)
            .ok_or_else(|| failed("no follower to cut"))?],
        FaultKind::PowerLossMajority => {
            let mut m = all;
            m.shuffle(ctx.rng);
            m.truncate(n / 2 + 1);
            m.sort_unstable();
            m
        }
        FaultKind::PowerLossAll | FaultKind::PowerLossAllStrict | FaultKind::PowerLossTornWrite => {
            all
        }
        _ => return Err(failed(format!("{kind} is not a power-loss fault"))),
    })
}

pub(super) async fn run(
    kind: FaultKind,
    ctx: &mut FaultCtx<'_>,
    leader: Option<usize>,
    ready: Duration,
) -> Result<(Vec<usize>, Vec<String>), FaultError> {
    let hit = targets(kind, ctx, leader)?;
    let cluster = ctx.cluster;
    if kind == FaultKind::PowerLossTornWrite {
        for i in &hit {
            cluster
                .set_disk_faults(
                    *i,
                    gauntlet_harness::powerfs::Faults {
                        torn_last_write: Some("**".into()),
                        ..Default::default()
                    },
                )
                .map_err(failed)?;
        }
    }
    let pids: Vec<Option<u32>> = hit.iter().map(|i| cluster.members()[*i].pid).collect();
    // All at once, as a power cut: the kills come first, then the drops.
    for i in &hit {
        cluster.kill(*i).map_err(failed)?;
    }
    let mut evidence = Vec::new();
    for (i, pid) in hit.iter().zip(&pids) {
        let m = &cluster.members()[*i];
        if m.state != MemberState::Stopped || pid.is_some_and(alive) {
            return Err(failed(format!("m{i} is still running after SIGKILL")));
        }
    }
    for i in &hit {
        let report = cluster.power_cut(*i).map_err(failed)?;
        evidence.push(format!(
            "m{i} killed and its power cut: {}",
            report
                .to_string()
                .lines()
                .map(|l| l.trim_start_matches("power cut: "))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    tokio::time::sleep(DOWN_FOR).await;
    for i in &hit {
        if kind == FaultKind::PowerLossTornWrite {
            cluster
                .set_disk_faults(*i, gauntlet_harness::powerfs::Faults::default())
                .map_err(failed)?;
        }
        cluster.restart(*i).map_err(failed)?;
    }
    serve_again(cluster, ready, kind).await?;
    Ok((hit, evidence))
}
