//! Maintenance under traffic, as recorded client operations: compaction,
//! defragmentation of every member, and a leader move.

use gauntlet_api::etcdserverpb as pb;

use super::{FaultCtx, FaultError, FaultKind};

fn classify(what: &str, e: gauntlet_harness::ClientError) -> FaultError {
    if e.code() == Some(tonic::Code::Unimplemented) {
        FaultError::Unsupported(format!("{what}: {e}"))
    } else {
        FaultError::Failed(format!("{what}: {e}"))
    }
}

pub(super) async fn run(
    kind: FaultKind,
    ctx: &FaultCtx<'_>,
    leader: Option<usize>,
) -> Result<(Vec<usize>, Vec<String>), FaultError> {
    let c = ctx.client;
    match kind {
        FaultKind::Compact => {
            let rev = c
                .range(pb::RangeRequest {
                    key: b"/chaos/".to_vec(),
                    range_end: b"/chaos0".to_vec(),
                    count_only: true,
                    ..Default::default()
                })
                .await
                .map_err(|e| classify("reading the revision", e))?
                .header
                .map_or(1, |h| h.revision);
            c.compact(pb::CompactionRequest {
                revision: rev,
                physical: true,
            })
            .await
            .map_err(|e| classify("Compact", e))?;
            Ok((Vec::new(), vec![format!("compacted at revision {rev}")]))
        }
        FaultKind::Defrag => {
            let mut ev = Vec::new();
            for i in 0..ctx.cluster.size() {
                let m = c.pinned(i).map_err(|e| FaultError::Failed(e.to_string()))?;
                m.defragment(pb::DefragmentRequest {})
                    .await
                    .map_err(|e| classify(&format!("Defragment m{i}"), e))?;
                ev.push(format!("m{i} defragmented"));
            }
            Ok(((0..ctx.cluster.size()).collect(), ev))
        }
        FaultKind::MoveLeader => {
            let old = leader.ok_or_else(|| FaultError::Failed("no leader known".into()))?;
            let n = ctx.cluster.size();
            let to = (old + 1) % n;
            let target_id = c
                .pinned(to)
                .map_err(|e| FaultError::Failed(e.to_string()))?
                .status(pb::StatusRequest {})
                .await
                .map_err(|e| classify("Status of the new leader", e))?
                .header
                .map_or(0, |h| h.member_id);
            c.pinned(old)
                .map_err(|e| FaultError::Failed(e.to_string()))?
                .move_leader(pb::MoveLeaderRequest { target_id })
                .await
                .map_err(|e| classify("MoveLeader", e))?;
            let now = ctx
                .cluster
                .leader()
                .await
                .map_err(|e| FaultError::Failed(e.to_string()))?;
            if now != to {
                return Err(FaultError::Failed(format!(
                    "MoveLeader to m{to} answered OK but m{now} leads"
                )));
            }
            Ok((
                vec![old, to],
                vec![format!("leadership moved from m{old} to m{to}")],
            ))
        }
        _ => Err(FaultError::Failed(format!(
            "{kind} is not a maintenance fault"
        ))),
    }
}
