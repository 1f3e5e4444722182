//! Stateless request checks, done before proposing, with etcd's rules and errors.

use std::collections::BTreeSet;

use gauntlet_api::etcdserverpb::{
    request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use gauntlet_api::rpctypes::{self, EtcdError};

use super::{Command, Op, MAX_LEASE_TTL_SECS};

/// Checks what etcd checks before proposing `cmd` (see the crate-level contract).
///
/// The order of checks is etcd's: for a txn, the op count, then every compare key and every
/// request (recursively), then duplicate writes in `success`, then in `failure`.
pub fn validate(cmd: &Command, max_txn_ops: usize) -> Result<(), EtcdError> {
    match &cmd.op {
        Some(Op::Put(p)) => check_put(p),
        Some(Op::DeleteRange(d)) => check_delete(d),
        Some(Op::Txn(t)) => {
            check_txn(t, max_txn_ops as i64)?;
            check_intervals(&t.success)?;
            check_intervals(&t.failure)?;
            Ok(())
        }
        Some(Op::LeaseGrant(g)) if g.ttl > MAX_LEASE_TTL_SECS => Err(rpctypes::LEASE_TTL_TOO_LARGE),
        Some(
            Op::Compaction(_)
            | Op::LeaseGrant(_)
            | Op::LeaseRevoke(_)
            | Op::LeaseCheckpoint(_)
            | Op::Alarm(_)
            | Op::MemberAttrs(_)
            | Op::MemberUpdate(_)
            | Op::VersionSet(_)
            | Op::Auth(_),
        ) => Ok(()),
        None => Ok(()),
    }
}

/// etcd checks only that a range names a key.
pub fn validate_range(req: &RangeRequest) -> Result<(), EtcdError> {
    if req.key.is_empty() {
        return Err(rpctypes::EMPTY_KEY);
    }
    Ok(())
}

fn check_put(p: &PutRequest) -> Result<(), EtcdError> {
    if p.key.is_empty() {
        return Err(rpctypes::EMPTY_KEY);
    }
    if p.ignore_value && !p.value.is_empty() {
        return Err(rpctypes::VALUE_PROVIDED);
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(rpctypes::LEASE_PROVIDED);
    }
    Ok(())
}

fn check_delete(d: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if d.key.is_empty() {
        return Err(rpctypes::EMPTY_KEY);
    }
    Ok(())
}

/// etcd's rule: the largest of the compare/success/failure list lengths must not exceed the
/// budget, and a nested txn gets the budget minus that number.
fn check_txn(t: &TxnRequest, max_ops: i64) -> Result<(), EtcdError> {
    let opc = t.compare.len().max(t.success.len()).max(t.failure.len()) as i64;
    if opc > max_ops {
        return Err(rpctypes::TOO_MANY_OPS);
    }
    if t.compare.iter().any(|c| c.key.is_empty()) {
        return Err(rpctypes::EMPTY_KEY);
    }
    for op in t.success.iter().chain(&t.failure) {
        check_op(op, max_ops - opc)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_ops: i64) -> Result<(), EtcdError> {
    match &op.request {
        Some(request_op::Request::RequestRange(r)) => validate_range(r),
        Some(request_op::Request::RequestPut(p)) => check_put(p),
        Some(request_op::Request::RequestDeleteRange(d)) => check_delete(d),
        Some(request_op::Request::RequestTxn(t)) => check_txn(t, max_ops),
        // etcd answers an empty op with "key not found".
        None => Err(rpctypes::KEY_NOT_FOUND),
    }
}

/// A deleted interval as etcd's duplicate check sees it: `[key, end)` with `end` empty meaning
/// "to infinity" only when it came from a nested level; a point when `range_end` is empty.
/// A `range_end` of `"\0"` is compared as the plain byte string it is, so such a delete
/// overlaps nothing (etcd does the same).
#[derive(Debug, Clone)]
struct Interval {
    start: Vec<u8>,
    /// None: the single key `start`.
    end: Option<Vec<u8>>,
}

impl Interval {
    fn contains(&self, k: &[u8]) -> bool {
        match &self.end {
            None => k == self.start.as_slice(),
            Some(end) => k >= self.start.as_slice() && (end.is_empty() || k < end.as_slice()),
        }
    }
}

fn intersects(dels: &[Interval], k: &[u8]) -> bool {
    dels.iter().any(|iv| iv.contains(k))
}

/// etcd's `checkIntervals`: no key may be put twice on one path, nor put and deleted.
/// Returns the puts and deletes of `reqs` (for the enclosing level).
fn check_intervals(reqs: &[RequestOp]) -> Result<(BTreeSet<Vec<u8>>, Vec<Interval>), EtcdError> {
    let mut dels: Vec<Interval> = reqs
        .iter()
        .filter_map(|r| match &r.request {
            Some(request_op::Request::RequestDeleteRange(d)) => Some(Interval {
                start: d.key.clone(),
                end: (!d.range_end.is_empty()).then(|| d.range_end.clone()),
            }),
            _ => None,
        })
        .collect();
    let mut puts: BTreeSet<Vec<u8>> = BTreeSet::new();
    for r in reqs {
        let Some(request_op::Request::RequestTxn(t)) = &r.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || intersects(&dels, k) {
                return Err(rpctypes::DUPLICATE_KEY);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            // then/else are exclusive, so the same key on both branches is fine.
            if (puts.contains(k) && !puts_then.contains(k)) || intersects(&dels, k) {
                return Err(rpctypes::DUPLICATE_KEY);
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for r in reqs {
        let Some(request_op::Request::RequestPut(p)) = &r.request else {
            continue;
        };
        if puts.contains(&p.key) || intersects(&dels, &p.key) {
            return Err(rpctypes::DUPLICATE_KEY);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}
