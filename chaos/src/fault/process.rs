//! Process faults: SIGKILL, SIGTERM and SIGSTOP of chosen members, through the
//! harness's launcher (so only targets gauntlet launched take them), and member
//! replacement through the Cluster API (`Cluster::replace_member`) where the target
//! implements membership changes.

use std::time::Duration;

use super::{
    confirm_gone, failed, pick, pids_of, serve_again, FaultCtx, FaultError, FaultKind, Who,
};

/// How long a killed member stays down before its restart.
const DOWN_FOR: Duration = Duration::from_millis(1000);

/// Chooses the members a process fault hits.
fn targets(
    kind: FaultKind,
    ctx: &mut FaultCtx<'_>,
    leader: Option<usize>,
) -> Result<Vec<usize>, FaultError> {
    let who = match kind {
        FaultKind::KillLeader | FaultKind::PauseLeader => Who::Leader,
        FaultKind::KillFollower | FaultKind::PauseFollower => Who::Follower,
        FaultKind::KillRandom | FaultKind::TermRandom | FaultKind::ReplaceMember => Who::Random,
        FaultKind::KillMajority => Who::Majority,
        FaultKind::KillAll => Who::All,
        _ => return Err(failed(format!("{kind} is not a process fault"))),
    };
    pick(who, ctx, leader)
}

pub(super) async fn run(
    kind: FaultKind,
    mut ctx: FaultCtx<'_>,
    leader: Option<usize>,
    ready: Duration,
) -> Result<(Vec<usize>, Vec<String>), FaultError> {
    let hit = targets(kind, &mut ctx, leader)?;
    if kind == FaultKind::ReplaceMember {
        let evidence = ctx
            .cluster
            .replace_member(hit[0], ready)
            .await
            .map_err(|e| match e {
                gauntlet_harness::HarnessError::Unsupported(why) => FaultError::Unsupported(why),
                gauntlet_harness::HarnessError::NotReady { .. }
                | gauntlet_harness::HarnessError::MemberExited { .. } => {
                    FaultError::NoRecovery(format!("after replacing m{}: {e}", hit[0]))
                }
                e => failed(format!("replacing m{}: {e}", hit[0])),
            })?;
        return Ok((hit, evidence));
    }
    let cluster = ctx.cluster;
    let mut evidence = Vec::new();
    let pids = pids_of(cluster, &hit);
    match kind {
        FaultKind::PauseLeader | FaultKind::PauseFollower => {
            let ids: Vec<u64> = {
                let mut v = Vec::new();
                for i in &hit {
                    let s = cluster.member_status(*i).await.map_err(failed)?;
                    v.push(s.header.map_or(0, |h| h.member_id));
                }
                v
            };
            for i in &hit {
                cluster.pause(*i).map_err(failed)?;
            }
            // Longer than an election: a paused leader must lose leadership.
            let hold = Duration::from_millis(ctx.election_ms * 3 + 500);
            tokio::time::sleep(hold).await;
            let mut problem = None;
            for i in &hit {
                match cluster.member_status(*i).await {
                    Ok(_) => problem = Some(format!("m{i} answered Status while paused")),
                    Err(e) => evidence.push(format!("m{i} paused: Status unanswered ({e})")),
                }
            }
            if kind == FaultKind::PauseLeader && cluster.size() > 1 && problem.is_none() {
                let old = hit[0];
                let mut seen = None;
                for j in (0..cluster.size()).filter(|j| *j != old) {
                    if let Ok(s) = cluster.member_status(j).await {
                        if s.leader != 0 && s.leader != ids[0] {
                            seen = Some((j, s.leader));
                            break;
                        }
                    }
                }
                match seen {
                    Some((j, id)) => evidence.push(format!(
                        "m{j} names leader {id:x}, not the paused m{old} ({:x})",
                        ids[0]
                    )),
                    None => {
                        problem = Some(format!(
                            "{} ms after pausing leader m{old}, no other member named a new leader",
                            hold.as_millis()
                        ))
                    }
                }
            }
            for i in &hit {
                cluster.resume(*i).map_err(failed)?;
            }
            if let Some(p) = problem {
                return Err(failed(p));
            }
        }
        FaultKind::TermRandom => {
            for i in &hit {
                cluster.stop(*i).await.map_err(failed)?;
            }
        }
        _ => {
            for i in &hit {
                cluster.kill(*i).map_err(failed)?;
            }
        }
    }
    if matches!(
        kind,
        FaultKind::KillFollower
            | FaultKind::KillLeader
            | FaultKind::KillRandom
            | FaultKind::KillMajority
            | FaultKind::KillAll
            | FaultKind::TermRandom
    ) {
        evidence.extend(confirm_gone(cluster, &hit, &pids, kind)?);
        tokio::time::sleep(DOWN_FOR).await;
        for i in &hit {
            cluster.restart(*i).map_err(failed)?;
        }
    }
    serve_again(cluster, ready, kind).await?;
    Ok((hit, evidence))
}
