//! Full network partitions: chosen links between members cut in both directions.
//!
//! Every member's peer port sits behind one of gauntlet's proxies, and the proxies
//! know which member dialed each connection (`harness::sockowner`), so cutting the
//! link A–B blackholes every connection between A and B whoever opened it
//! ([`Cluster::set_partition`]). Bytes are dropped, not refused: the members see
//! silence, as behind a dead switch port. A connection that lost bytes is reset when
//! the partition heals, so no member ever reads a stream with a hole in it.
//!
//! Each fault proves it took effect from outside: the isolated leader is replaced,
//! an isolated follower falls behind the leader's raft index, a cut minority falls
//! behind the majority, the ring's cut links dropped bytes, and the follower cut
//! until snapshot was more entries behind than any target keeps for slow followers
//! (etcd's 5000 after each snapshot) and caught up after the heal.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use gauntlet_api::etcdserverpb as pb;
use gauntlet_harness::Cluster;
use rand::seq::SliceRandom;
use rand::Rng;

use super::{failed, serve_again, FaultCtx, FaultError, FaultKind};

/// Entries etcd's leader keeps after each snapshot for slow followers
/// (`SnapshotCatchUpEntries`, fixed in 3.4 and 3.5); the reference server keeps fewer.
const CATCH_UP_ENTRIES: u64 = 5_000;
/// How long filler writes may take to put a cut follower that far behind.
const FILL_FOR: Duration = Duration::from_secs(90);
/// Concurrent filler requests.
const FILLERS: usize = 16;
/// The key filler transactions compare on: outside the traffic's range, never written.
const FILLER_KEY: &[u8] = b"/gauntlet-chaos-filler";

/// Every link between `side` and the rest.
fn isolate(side: &[usize], n: usize) -> Vec<(usize, usize)> {
    let mut cut = Vec::new();
    for &a in side {
        for b in (0..n).filter(|b| !side.contains(b)) {
            cut.push((a.min(b), a.max(b)));
        }
    }
    cut.sort_unstable();
    cut.dedup();
    cut
}

/// Jepsen's majorities ring over `order`: each member keeps the links to its nearest
/// ring neighbours, enough to see a majority counting itself, and loses the others.
/// Three members cannot form one (every pair is adjacent): the one cut link of a
/// bridge does the same job, two members each seeing a different majority.
fn ring(order: &[usize]) -> Vec<(usize, usize)> {
    let n = order.len();
    if n == 3 {
        return vec![(order[0].min(order[1]), order[0].max(order[1]))];
    }
    let majority = n / 2 + 1;
    let reach = (majority - 1).div_ceil(2);
    let mut cut = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            let d = (j - i).min(n - (j - i));
            if d > reach {
                let (a, b) = (order[i], order[j]);
                cut.push((a.min(b), a.max(b)));
            }
        }
    }
    cut.sort_unstable();
    cut
}

async fn status(cluster: &Cluster, i: usize) -> Result<pb::StatusResponse, FaultError> {
    cluster
        .member_status(i)
        .await
        .map_err(|e| failed(format!("Status of m{i}: {e}")))
}

fn member_id(s: &pb::StatusResponse) -> u64 {
    s.header.as_ref().map_or(0, |h| h.member_id)
}

/// One filler: a transaction whose compare can never hold (a version above 2^62), so
/// it changes nothing, yet as a write it is one raft entry on every target.
fn filler() -> pb::TxnRequest {
    pb::TxnRequest {
        compare: vec![pb::Compare {
            result: pb::compare::CompareResult::Greater as i32,
            target: pb::compare::CompareTarget::Version as i32,
            key: FILLER_KEY.to_vec(),
            target_union: Some(pb::compare::TargetUnion::Version(1 << 62)),
            ..Default::default()
        }],
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                key: FILLER_KEY.to_vec(),
                value: b"never".to_vec(),
                ..Default::default()
            })),
        }],
        failure: Vec::new(),
    }
}

/// Sends fillers through `via` until `behind` is more than `gap` entries behind the
/// leader `leader`, or [`FILL_FOR`] passes. Returns (gap reached, fillers sent).
async fn fill_until_behind(
    cluster: &Cluster,
    via: &[usize],
    leader: usize,
    behind: usize,
    gap: u64,
) -> Result<(u64, u64), FaultError> {
    let mut clients = Vec::new();
    for &i in via {
        clients.push(cluster.member_client(i).await.map_err(failed)?);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for k in 0..FILLERS {
        let c = clients[k % clients.len()].clone();
        let (stop, sent) = (stop.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Relaxed) {
                if c.txn(filler()).await.is_ok() {
                    sent.fetch_add(1, Relaxed);
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + FILL_FOR;
    let mut reached = 0;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (Ok(l), Ok(b)) = (
            cluster.member_status(leader).await,
            cluster.member_status(behind).await,
        ) else {
            continue;
        };
        reached = l.raft_index.saturating_sub(b.raft_index);
        if reached > gap {
            break;
        }
    }
    stop.store(true, Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    Ok((reached, sent.load(Relaxed)))
}

/// Cuts exactly `cut`; a toxiproxy server, which cannot cut links, makes it unsupported.
fn cut_links(cluster: &Cluster, cut: &[(usize, usize)]) -> Result<(), FaultError> {
    cluster.set_partition(cut).map_err(|e| {
        let e = e.to_string();
        if e.contains("toxiproxy") {
            FaultError::Unsupported(e)
        } else {
            failed(e)
        }
    })
}

/// Cuts `follower` off until the leader `leader` is more than `--snapshot-count` +
/// [`CATCH_UP_ENTRIES`] entries ahead (no-op writes push it there), then heals, so the
/// follower can only catch up by snapshot: what drives a member into the snapshot
/// failpoints. Returns the evidence.
pub(super) async fn push_to_snapshot(
    ctx: &FaultCtx<'_>,
    leader: usize,
    follower: usize,
) -> Result<Vec<String>, FaultError> {
    let n = ctx.cluster.size();
    let cut = isolate(&[follower], n);
    cut_links(ctx.cluster, &cut)?;
    let gap = ctx.snapshot_count + CATCH_UP_ENTRIES;
    let via: Vec<usize> = (0..n).filter(|i| *i != follower).collect();
    let filled = fill_until_behind(ctx.cluster, &via, leader, follower, gap).await;
    let heal = ctx.cluster.set_partition(&[]);
    let (reached, sent) = filled?;
    heal.map_err(failed)?;
    if reached <= gap {
        return Err(failed(format!(
            "m{follower} was only {reached} entries behind after {sent} filler writes in {} s (needed more than {gap} to need a snapshot)",
            FILL_FOR.as_secs()
        )));
    }
    Ok(vec![format!(
        "cut m{follower} off until it was {reached} entries behind the leader ({sent} no-op writes), then healed: it must catch up by snapshot"
    )])
}

fn links(cut: &[(usize, usize)]) -> String {
    cut.iter()
        .map(|(a, b)| format!("m{a}-m{b}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) async fn run(
    kind: FaultKind,
    ctx: &mut FaultCtx<'_>,
    leader: Option<usize>,
    ready: Duration,
) -> Result<(Vec<usize>, Vec<String>), FaultError> {
    let n = ctx.cluster.size();
    let leader = leader.ok_or_else(|| failed("no leader before the partition"))?;
    let followers: Vec<usize> = (0..n).filter(|i| *i != leader).collect();
    let follower = *followers
        .get(ctx.rng.gen_range(0..followers.len().max(1)))
        .ok_or_else(|| failed("no follower to cut"))?;
    let (hit, cut): (Vec<usize>, Vec<(usize, usize)>) = match kind {
        FaultKind::PartitionLeader => (vec![leader], isolate(&[leader], n)),
        FaultKind::PartitionFollower | FaultKind::PartitionUntilSnapshot => {
            (vec![follower], isolate(&[follower], n))
        }
        FaultKind::PartitionMinority => {
            let mut all: Vec<usize> = (0..n).collect();
            all.shuffle(ctx.rng);
            let mut side: Vec<usize> = all[..((n - 1) / 2).max(1)].to_vec();
            side.sort_unstable();
            let cut = isolate(&side, n);
            (side, cut)
        }
        FaultKind::PartitionRing => {
            // The leader first: with 3 members the bridge then cuts one of its links,
            // so the cut separates members that were talking.
            let mut order: Vec<usize> = followers.clone();
            order.shuffle(ctx.rng);
            order.insert(0, leader);
            let cut = ring(&order);
            let hit: BTreeSet<usize> = cut.iter().flat_map(|&(a, b)| [a, b]).collect();
            (hit.into_iter().collect(), cut)
        }
        _ => return Err(failed(format!("{kind} is not a partition"))),
    };
    let old = status(ctx.cluster, leader).await?;
    let (dropped_before, _) = ctx.cluster.partition_drops();
    cut_links(ctx.cluster, &cut)?;
    let mut evidence = vec![format!("cut {}", links(&cut))];
    let held = hold(kind, ctx, leader, &hit, &cut, &old, &mut evidence).await;
    let healed_at = ctx.cluster.member_status(leader).await.ok();
    // Read before healing: the docker backend's rule counters go with the rules.
    let (dropped_now, unit) = ctx.cluster.partition_drops();
    let heal = ctx.cluster.set_partition(&[]);
    let healed = tokio::time::Instant::now();
    held?;
    heal.map_err(failed)?;
    let dropped: Vec<u64> = dropped_now
        .iter()
        .zip(&dropped_before)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    evidence.push(format!(
        "dropped {} {unit} on cut links ({})",
        dropped.iter().sum::<u64>(),
        dropped
            .iter()
            .enumerate()
            .map(|(i, d)| format!("m{i}: {d}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    // A cut link between two followers may carry nothing while it is cut (a follower
    // sends only to the leader), so the proxies' evidence is judged over all cut links.
    if dropped.iter().sum::<u64>() == 0 {
        return Err(failed(format!(
            "{kind} did not take effect: nothing was dropped on the cut links {}",
            links(&cut)
        )));
    }
    serve_again(ctx.cluster, ready, kind).await?;
    if kind == FaultKind::PartitionUntilSnapshot {
        // The follower must catch up with what the leader had when the cut healed.
        let target = healed_at.map_or(0, |s| s.raft_index);
        let start = healed;
        loop {
            let now = ctx.cluster.member_status(follower).await.ok();
            if now.as_ref().is_some_and(|s| s.raft_index >= target) {
                evidence.push(format!(
                    "m{follower} caught up to raft index {target} {} ms after the heal",
                    start.elapsed().as_millis()
                ));
                break;
            }
            if start.elapsed() > ready {
                return Err(FaultError::NoRecovery(format!(
                    "m{follower} did not catch up to raft index {target} within {} s of the heal (at {})",
                    ready.as_secs(),
                    now.map_or_else(|| "no answer".to_string(), |s| s.raft_index.to_string())
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok((hit, evidence))
}

/// The first of `among` that names a leader other than the cut-off `leader` (whose
/// Status before the cut is `old`), as an evidence line.
async fn new_leader_named(
    cluster: &Cluster,
    among: &[usize],
    leader: usize,
    old: &pb::StatusResponse,
) -> Option<String> {
    let old_id = member_id(old);
    for &j in among {
        if let Ok(s) = cluster.member_status(j).await {
            if s.leader != 0 && s.leader != old_id {
                return Some(format!(
                    "m{j} names leader {:x} (m{leader}, {old_id:x}, was cut off)",
                    s.leader
                ));
            }
        }
    }
    None
}

/// Keeps the partition for its time and checks that it took effect.
async fn hold(
    kind: FaultKind,
    ctx: &FaultCtx<'_>,
    leader: usize,
    hit: &[usize],
    cut: &[(usize, usize)],
    old: &pb::StatusResponse,
    evidence: &mut Vec<String>,
) -> Result<(), FaultError> {
    let n = ctx.cluster.size();
    if kind == FaultKind::PartitionUntilSnapshot {
        let follower = hit[0];
        let gap = ctx.snapshot_count + CATCH_UP_ENTRIES;
        let via: Vec<usize> = (0..n).filter(|i| *i != follower).collect();
        let (reached, sent) = fill_until_behind(ctx.cluster, &via, leader, follower, gap).await?;
        if reached <= gap {
            return Err(failed(format!(
                "{kind} did not take effect: m{follower} was only {reached} entries behind after {sent} filler writes in {} s (needed more than {gap})",
                FILL_FOR.as_secs()
            )));
        }
        evidence.push(format!(
            "m{follower} fell {reached} entries behind the leader (more than snapshot-count {} + {CATCH_UP_ENTRIES} kept for slow followers) after {sent} no-op writes",
            ctx.snapshot_count
        ));
        return Ok(());
    }
    tokio::time::sleep(Duration::from_millis(ctx.election_ms * 3 + 500)).await;
    match kind {
        FaultKind::PartitionLeader => {
            let others: Vec<usize> = (0..n).filter(|j| *j != leader).collect();
            evidence.push(new_leader_named(ctx.cluster, &others, leader, old).await.ok_or_else(|| {
                failed(format!(
                    "{kind} did not take effect: no other member elected a new leader while m{leader} was cut off"
                ))
            })?);
            Ok(())
        }
        FaultKind::PartitionFollower | FaultKind::PartitionMinority => {
            let majority: Vec<usize> = (0..n).filter(|i| !hit.contains(i)).collect();
            if hit.contains(&leader) {
                // The cut side held the leader: the majority must elect another.
                evidence.push(new_leader_named(ctx.cluster, &majority, leader, old).await.ok_or_else(|| {
                    failed(format!(
                        "{kind} did not take effect: the majority elected no new leader while m{leader} was cut off with the minority"
                    ))
                })?);
            }
            // The majority must move on without the cut side: a few no-op writes through
            // the majority make that visible whatever the traffic is doing.
            let via = ctx
                .cluster
                .member_client(majority[0])
                .await
                .map_err(failed)?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let mut ahead = 0;
                for &j in &majority {
                    if let Ok(s) = ctx.cluster.member_status(j).await {
                        ahead = ahead.max(s.raft_index);
                    }
                }
                let mut behind = 0;
                for &i in hit {
                    behind = behind.max(status(ctx.cluster, i).await?.raft_index);
                }
                if ahead > behind {
                    evidence.push(format!(
                        "cut-off {} at raft index {behind} at most, the majority at {ahead}",
                        hit.iter()
                            .map(|i| format!("m{i}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(failed(format!(
                        "{kind} did not take effect: the cut-off side is at raft index {behind} and the majority at {ahead} after 10 s of writes through m{}",
                        majority[0]
                    )));
                }
                let _ = via.txn(filler()).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        FaultKind::PartitionRing => {
            // Evidence comes from the proxies (checked after the heal); say who sees whom.
            for i in 0..n {
                let sees: Vec<String> = (0..n)
                    .filter(|j| *j != i && !cut.contains(&(i.min(*j), i.max(*j))))
                    .map(|j| format!("m{j}"))
                    .collect();
                evidence.push(format!("m{i} reaches {}", sees.join(", ")));
            }
            Ok(())
        }
        _ => Err(failed(format!("{kind} is not a partition"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_cuts_every_link_across_the_sides() {
        assert_eq!(isolate(&[1], 3), vec![(0, 1), (1, 2)]);
        assert_eq!(isolate(&[0, 4], 5).len(), 6);
    }

    #[test]
    fn every_member_of_a_ring_sees_a_majority_but_not_all() {
        for n in [3usize, 5, 7] {
            let order: Vec<usize> = (0..n).rev().collect();
            let cut = ring(&order);
            assert!(!cut.is_empty(), "{n}: nothing cut");
            let mut seen = BTreeSet::new();
            for i in 0..n {
                let reach: BTreeSet<usize> = (0..n)
                    .filter(|j| *j == i || !cut.contains(&(i.min(*j), i.max(*j))))
                    .collect();
                assert!(reach.len() > n / 2, "{n}: m{i} sees {reach:?}");
                seen.insert(reach);
            }
            assert!(seen.len() > 1, "{n}: every member sees the same majority");
        }
    }
}
