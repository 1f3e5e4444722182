//! Corruption checks, as etcd's: members compare their HashKV (the hash of the key space
//! up to a revision, which every member must agree on) through the peer `HashKv` RPC.
//!
//! - **At start** (`--experimental-initial-corrupt-check`): before serving clients, a
//!   member asks every peer for the hash at its own revision. A peer with the same
//!   compact revision and another hash means this member's data is not the cluster's: it
//!   refuses to start ("found data inconsistency with peers"). A peer that cannot answer
//!   (down, or behind that revision) is skipped, as etcd skips it.
//! - **Periodically** (`--experimental-corrupt-check-time`, leader only): the leader
//!   computes its hash at its revision and asks every member for theirs at the same
//!   revision; each member whose hash differs at the same compact revision gets a CORRUPT
//!   alarm, raised through raft. CORRUPT then refuses every key and lease request
//!   ([`crate::state`]'s capped applier) until an operator disarms it.

use std::time::Duration;

use gauntlet_api::etcdserverpb::{alarm_request::AlarmAction, AlarmRequest, AlarmType};

use crate::peerpb;
use crate::services::Ctx;
use crate::state::{Command, Op};

/// Deadline of asking one member its hash.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// What a peer answered about its hash at a revision.
struct PeerHash {
    id: u64,
    hash: u32,
    compact_revision: i64,
}

/// Every peer's hash at `revision` (peers that cannot answer are left out, and logged).
async fn peer_hashes(ctx: &Ctx, revision: i64) -> Vec<PeerHash> {
    let ids: Vec<u64> = ctx
        .member_ids()
        .into_iter()
        .filter(|id| *id != ctx.member_id)
        .collect();
    let mut out = Vec::new();
    for id in ids {
        let Some(mut client) = ctx.transport.client(id) else {
            continue;
        };
        let call = client.hash_kv(peerpb::HashKvRequest { revision });
        match tokio::time::timeout(ASK_TIMEOUT, call).await {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                out.push(PeerHash {
                    id,
                    hash: r.hash,
                    compact_revision: r.compact_revision,
                });
            }
            Ok(Err(s)) => {
                tracing::warn!(peer = %format!("{id:x}"), revision, "cannot fetch the peer's hash: {}", s.message())
            }
            Err(_) => {
                tracing::warn!(peer = %format!("{id:x}"), revision, "cannot fetch the peer's hash: no answer")
            }
        }
    }
    out
}

/// This member's hash at its current revision: (revision, hash, compact revision).
fn own_hash(ctx: &Ctx) -> Option<(i64, u32, i64)> {
    let st = ctx.node.read_state();
    let revision = st.revision();
    let h = st.hash_kv(revision).ok()?;
    Some((revision, h.hash, h.compact_revision))
}

/// The check at start; `Err` (one line) when a peer disagrees.
pub async fn initial_check(ctx: &Ctx) -> anyhow::Result<()> {
    let Some((revision, hash, compact)) = own_hash(ctx) else {
        return Ok(());
    };
    for p in peer_hashes(ctx, revision).await {
        if p.compact_revision == compact && p.hash != hash {
            anyhow::bail!(
                "found data inconsistency with peers: at revision {revision} this member's hash is {hash}, member {:x}'s is {} (compact revision {compact})",
                p.id,
                p.hash
            );
        }
    }
    tracing::info!(revision, hash, "initial corruption check passed");
    Ok(())
}

/// The leader's periodic check, every `every`.
pub async fn monitor(ctx: Ctx, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if ctx
            .node
            .status
            .removed
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        if !ctx
            .node
            .status
            .is_leader
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            continue;
        }
        let Some((revision, hash, compact)) = own_hash(&ctx) else {
            continue;
        };
        for p in peer_hashes(&ctx, revision).await {
            if p.compact_revision != compact || p.hash == hash {
                continue;
            }
            tracing::error!(
                peer = %format!("{:x}", p.id),
                revision,
                leader_hash = hash,
                peer_hash = p.hash,
                "found data inconsistency: raising CORRUPT"
            );
            let alarm = Op::Alarm(AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: p.id,
                alarm: AlarmType::Corrupt as i32,
            });
            if let Err(e) = ctx.node.propose(Command::internal(alarm)).await {
                tracing::warn!("cannot raise the CORRUPT alarm: {}", e.message);
            }
        }
    }
}
