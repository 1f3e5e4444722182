//! Lease expiry, owned by the leader.
//!
//! The state machine knows which leases exist, their granted TTL and the last
//! checkpointed remaining TTL. Only the leader keeps expiry deadlines, in memory. When
//! a member becomes leader it starts every lease's deadline at now + its checkpointed
//! remaining TTL, so a lease's remaining time survives a leader change (up to one
//! checkpoint interval). The leader revokes expired leases through raft and
//! periodically checkpoints remaining TTLs of long leases through raft.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gauntlet_api::etcdserverpb::{LeaseCheckpoint, LeaseCheckpointRequest, LeaseRevokeRequest};
use gauntlet_api::rpctypes::{self, EtcdError};

use crate::node::NodeHandle;
use crate::state::{Command, Op};

/// How often the leader looks for expired leases.
const EXPIRY_SCAN: Duration = Duration::from_millis(250);
/// How often the leader checkpoints remaining TTLs.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);
/// Leases shorter than this are not checkpointed (a leader change restarts them in full).
const CHECKPOINT_MIN_TTL_S: i64 = 10;
/// Most leases in one checkpoint proposal.
const CHECKPOINT_BATCH: usize = 1000;
/// Most revocations proposed per scan.
const REVOKE_BATCH: usize = 1000;

/// The leader's lease timers.
#[derive(Debug)]
pub struct Lessor {
    node: NodeHandle,
    deadlines: Mutex<HashMap<i64, Instant>>,
    /// Smallest TTL granted, in seconds (etcd: 1.5 election timeouts, rounded up).
    pub min_ttl_s: i64,
}

impl Lessor {
    /// A lessor for `node`.
    pub fn new(node: NodeHandle, min_ttl_s: i64) -> Arc<Lessor> {
        Arc::new(Lessor {
            node,
            deadlines: Mutex::new(HashMap::new()),
            min_ttl_s,
        })
    }

    fn is_leader(&self) -> bool {
        self.node.status.is_leader.load(Ordering::Relaxed)
    }

    /// Renews a lease (leader only): returns its granted TTL.
    pub fn renew(&self, id: i64) -> Result<i64, EtcdError> {
        if !self.is_leader() {
            return Err(rpctypes::NOT_LEADER);
        }
        let lease = self
            .node
            .read_state()
            .lease(id)
            .ok_or(rpctypes::LEASE_NOT_FOUND)?;
        let ttl = lease.granted_ttl;
        self.deadlines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                id,
                Instant::now() + Duration::from_secs(u64::try_from(ttl).unwrap_or(0)),
            );
        Ok(ttl)
    }

    /// Remaining seconds of a lease (leader only), rounded up; None if unknown.
    pub fn remaining(&self, id: i64) -> Result<Option<i64>, EtcdError> {
        if !self.is_leader() {
            return Err(rpctypes::NOT_LEADER);
        }
        let state = self.node.read_state();
        let Some(lease) = state.lease(id) else {
            return Ok(None);
        };
        drop(state);
        let d = self
            .deadlines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .copied();
        Ok(Some(match d {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                i64::try_from(left.as_millis().div_ceil(1000)).unwrap_or(i64::MAX)
            }
            None => lease.remaining_ttl,
        }))
    }

    /// Runs the expiry and checkpoint loops forever.
    pub async fn run(self: Arc<Self>) {
        let mut was_leader = false;
        let mut last_checkpoint = Instant::now();
        let mut ticker = tokio::time::interval(EXPIRY_SCAN);
        loop {
            ticker.tick().await;
            let leader = self.is_leader();
            if !leader {
                if was_leader {
                    self.deadlines
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clear();
                }
                was_leader = false;
                continue;
            }
            let now = Instant::now();
            let leases = self.node.read_state().leases();
            let mut expired = Vec::new();
            let mut checkpoints = Vec::new();
            {
                let mut deadlines = self
                    .deadlines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let live: std::collections::HashSet<i64> = leases.iter().map(|l| l.id).collect();
                deadlines.retain(|id, _| live.contains(id));
                for l in &leases {
                    // New leader, or a lease granted since the last scan: start its clock.
                    let ttl = if was_leader {
                        l.granted_ttl
                    } else {
                        l.remaining_ttl.max(1)
                    };
                    let deadline = *deadlines.entry(l.id).or_insert_with(|| {
                        now + Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
                    });
                    if deadline <= now {
                        expired.push(l.id);
                    } else if l.granted_ttl >= CHECKPOINT_MIN_TTL_S {
                        let left = i64::try_from(deadline.saturating_duration_since(now).as_secs())
                            .unwrap_or(i64::MAX);
                        checkpoints.push(LeaseCheckpoint {
                            id: l.id,
                            remaining_ttl: left,
                        });
                    }
                }
            }
            was_leader = true;
            for id in expired.into_iter().take(REVOKE_BATCH) {
                let node = self.node.clone();
                tokio::spawn(async move {
                    let cmd = Command::internal(Op::LeaseRevoke(LeaseRevokeRequest { id }));
                    if let Err(e) = node.propose(cmd).await {
                        tracing::debug!(id, "revoking an expired lease failed: {}", e.message);
                    }
                });
            }
            if now.duration_since(last_checkpoint) >= CHECKPOINT_INTERVAL && !checkpoints.is_empty()
            {
                last_checkpoint = now;
                for chunk in checkpoints.chunks(CHECKPOINT_BATCH) {
                    let cmd = Command::internal(Op::LeaseCheckpoint(LeaseCheckpointRequest {
                        checkpoints: chunk.to_vec(),
                    }));
                    let node = self.node.clone();
                    tokio::spawn(async move {
                        let _ = node.propose(cmd).await;
                    });
                }
            }
        }
    }
}
