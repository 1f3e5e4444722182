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
//!
//! The `disk` family uses the same filesystem's faults: every fsync of a member failing
//! with EIO until it exits (then a power cut: whatever it acknowledged on a failed fsync
//! is gone), and a slow fsync under the leader.

use std::time::Duration;

use gauntlet_harness::MemberState;
use rand::Rng;

use super::{
    confirm_gone, failed, pick, pids_of, serve_again, FaultCtx, FaultError, FaultKind, Who,
};

/// How long the cut members stay down before they are restarted.
const DOWN_FOR: Duration = Duration::from_millis(1000);

/// The members a power cut hits.
fn targets(
    kind: FaultKind,
    ctx: &mut FaultCtx<'_>,
    leader: Option<usize>,
) -> Result<Vec<usize>, FaultError> {
    let who = match kind {
        FaultKind::PowerLossOne => Who::Random,
        FaultKind::PowerLossLeader => Who::Leader,
        FaultKind::PowerLossFollower => Who::Follower,
        FaultKind::PowerLossMajority => Who::Majority,
        FaultKind::PowerLossAll | FaultKind::PowerLossAllStrict | FaultKind::PowerLossTornWrite => {
            Who::All
        }
        _ => return Err(failed(format!("{kind} is not a power-loss fault"))),
    };
    pick(who, ctx, leader)
}

pub(super) async fn run(
    kind: FaultKind,
    ctx: &mut FaultCtx<'_>,
    leader: Option<usize>,
    ready: Duration,
) -> Result<(Vec<usize>, Vec<String>), FaultError> {
    match kind {
        FaultKind::DiskFsyncEio => return fsync_eio(ctx, ready).await,
        FaultKind::DiskSlowFsyncLeader => return slow_fsync(ctx, leader, ready).await,
        _ => {}
    }
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
    let pids = pids_of(cluster, &hit);
    // All at once, as a power cut: the kills come first, then the drops.
    for i in &hit {
        cluster.kill(*i).map_err(failed)?;
    }
    let mut evidence = confirm_gone(cluster, &hit, &pids, "SIGKILL")?;
    for i in &hit {
        let report = cluster.power_cut(*i).map_err(failed)?;
        evidence.push(format!(
            "m{i} killed and its power cut: {}",
            describe(&report)
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

/// How long a member whose fsyncs fail may keep running before its power is cut.
const EIO_FOR: Duration = Duration::from_secs(2);
/// The slow-fsync fault: extra latency per fsync, and for how long.
const SLOW_FSYNC: (Duration, Duration) = (Duration::from_millis(300), Duration::from_secs(3));

/// A cut report on one evidence line.
fn describe(report: &gauntlet_harness::powerfs::CutReport) -> String {
    report.to_string().replace('\n', "; ")
}

/// EIO on every fsync of a random member until it exits (or [`EIO_FOR`] passes), then
/// a power cut and a restart. A server must stop acknowledging what it could not make
/// durable (etcd and the reference server exit); one that retries the fsync and goes
/// on is caught by the cut, which drops everything still unsynced.
async fn fsync_eio(
    ctx: &mut FaultCtx<'_>,
    ready: Duration,
) -> Result<(Vec<usize>, Vec<String>), FaultError> {
    let cluster = ctx.cluster;
    let i = ctx.rng.gen_range(0..cluster.size());
    cluster
        .set_disk_faults(
            i,
            gauntlet_harness::powerfs::Faults {
                eio_on_fsync: Some("**".into()),
                ..Default::default()
            },
        )
        .map_err(failed)?;
    let mut evidence = vec![format!("every fsync of m{i} fails with EIO")];
    let started = tokio::time::Instant::now();
    let exited = loop {
        let m = &cluster.members()[i];
        if m.state == MemberState::Stopped {
            break Some(m.exited.clone().unwrap_or_else(|| "exited".into()));
        }
        if started.elapsed() >= EIO_FOR {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    evidence.push(match exited {
        Some(status) => format!(
            "m{i} stopped {} ms after its fsyncs began to fail ({status})",
            started.elapsed().as_millis()
        ),
        None => format!(
            "m{i} kept running for {} s with failing fsyncs",
            EIO_FOR.as_secs()
        ),
    });
    cluster.kill(i).map_err(failed)?;
    let report = cluster.power_cut(i).map_err(failed)?;
    evidence.push(format!(
        "m{i} killed and its power cut: {}",
        describe(&report)
    ));
    cluster
        .set_disk_faults(i, gauntlet_harness::powerfs::Faults::default())
        .map_err(failed)?;
    tokio::time::sleep(DOWN_FOR).await;
    cluster.restart(i).map_err(failed)?;
    serve_again(cluster, ready, FaultKind::DiskFsyncEio).await?;
    Ok((vec![i], evidence))
}

/// Every fsync of the leader [`SLOW_FSYNC`] slower for a while: a slow disk under the
/// member that orders every write.
async fn slow_fsync(
    ctx: &mut FaultCtx<'_>,
    leader: Option<usize>,
    ready: Duration,
) -> Result<(Vec<usize>, Vec<String>), FaultError> {
    let cluster = ctx.cluster;
    let l = leader.ok_or_else(|| failed("no leader to slow down"))?;
    let (extra, hold) = SLOW_FSYNC;
    cluster
        .set_disk_faults(
            l,
            gauntlet_harness::powerfs::Faults {
                fsync_delay: Some(("**".into(), extra)),
                ..Default::default()
            },
        )
        .map_err(failed)?;
    tokio::time::sleep(hold).await;
    let after = cluster.leader().await.ok();
    cluster
        .set_disk_faults(l, gauntlet_harness::powerfs::Faults::default())
        .map_err(failed)?;
    let evidence = vec![
        format!(
            "every fsync of leader m{l} took {} ms longer for {} s",
            extra.as_millis(),
            hold.as_secs()
        ),
        match after {
            Some(a) if a != l => format!("leadership moved to m{a}"),
            Some(_) => format!("m{l} stayed leader"),
            None => "no leader known at the end".into(),
        },
    ];
    serve_again(cluster, ready, FaultKind::DiskSlowFsyncLeader).await?;
    Ok((vec![l], evidence))
}
