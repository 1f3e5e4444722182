//! Model test: random puts, deletes, txns and compactions against a tiny reference model
//! (the whole key->KeyValue map at every revision), comparing every range at every revision.
//!
//! Rerun a failure with the seed proptest prints (`PROPTEST_...` env vars / regressions file).

use std::collections::BTreeMap;

use gauntlet_api::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::SortOrder,
    request_op, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use gauntlet_api::mvccpb::KeyValue;
use gauntlet_api::rpctypes;
use proptest::prelude::*;

use super::tests_kv::H;
use super::*;

const KEYS: &[&str] = &["a", "a/1", "a/2", "b", "c"];

#[derive(Debug, Clone)]
enum MOp {
    /// key, value, prev_kv, lease (0 = none).
    Put(usize, u8, bool, i64),
    Grant(i64),
    Revoke(i64),
    Del(usize, Option<usize>),
    /// compare value of key == v; success writes; failure writes.
    Txn(
        usize,
        u8,
        Vec<(usize, Option<u8>)>,
        Vec<(usize, Option<u8>)>,
    ),
    /// Compact at (current - back).
    Compact(i64),
}

fn mop() -> impl Strategy<Value = MOp> {
    let k = 0..KEYS.len();
    let w = prop::collection::vec((0..KEYS.len(), prop::option::weighted(0.7, 0u8..4)), 0..4);
    prop_oneof![
        5 => (k.clone(), 0u8..4, any::<bool>(), prop_oneof![3 => Just(0i64), 1 => 1i64..3])
            .prop_map(|(k, v, p, l)| MOp::Put(k, v, p, l)),
        1 => (1i64..3).prop_map(MOp::Grant),
        1 => (1i64..3).prop_map(MOp::Revoke),
        2 => (k.clone(), prop::option::of(0..KEYS.len())).prop_map(|(k, e)| MOp::Del(k, e)),
        3 => (k, 0u8..4, w.clone(), w).prop_map(|(k, v, s, f)| MOp::Txn(k, v, s, f)),
        1 => (0i64..6).prop_map(MOp::Compact),
    ]
}

/// One write of a revision: key, and Some((value, lease)) for a put or None for a delete.
type Write = (Vec<u8>, Option<(Vec<u8>, i64)>);

/// The reference: the full map at every revision (index = revision - 1).
struct Model {
    states: Vec<BTreeMap<Vec<u8>, KeyValue>>,
    compact: i64,
    leases: std::collections::BTreeSet<i64>,
}

impl Model {
    fn rev(&self) -> i64 {
        self.states.len() as i64
    }
    fn cur(&self) -> &BTreeMap<Vec<u8>, KeyValue> {
        self.states.last().expect("never empty")
    }
    /// Applies writes (key, Some((value, lease)) = put, None = delete) as one revision.
    fn write(&mut self, writes: &[Write]) {
        let rev = self.rev() + 1;
        let mut next = self.cur().clone();
        let mut changed = false;
        for (k, v) in writes {
            match v {
                Some((v, lease)) => {
                    let (create, version) = match next.get(k) {
                        Some(old) => (old.create_revision, old.version + 1),
                        None => (rev, 1),
                    };
                    next.insert(
                        k.clone(),
                        KeyValue {
                            key: k.clone(),
                            create_revision: create,
                            mod_revision: rev,
                            version,
                            value: v.clone(),
                            lease: *lease,
                        },
                    );
                    changed = true;
                }
                None => changed |= next.remove(k).is_some(),
            }
        }
        if changed {
            self.states.push(next);
        }
    }
}

fn key(i: usize) -> Vec<u8> {
    KEYS[i].as_bytes().to_vec()
}

fn put_op(k: usize, v: u8) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key(k),
            value: vec![v],
            ..Default::default()
        })),
    }
}

fn del_op(k: usize) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key(k),
                ..Default::default()
            },
        )),
    }
}

fn to_ops(ws: &[(usize, Option<u8>)]) -> Vec<RequestOp> {
    ws.iter()
        .map(|(k, v)| v.map_or_else(|| del_op(*k), |v| put_op(*k, v)))
        .collect()
}

fn model_writes(ws: &[(usize, Option<u8>)]) -> Vec<Write> {
    ws.iter()
        .map(|(k, v)| (key(*k), v.map(|v| (vec![v], 0))))
        .collect()
}

/// Ranges checked after every step.
fn ranges() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = KEYS
        .iter()
        .map(|k| (k.as_bytes().to_vec(), vec![]))
        .collect();
    out.push((b"a/".to_vec(), b"a0".to_vec()));
    out.push((b"\0".to_vec(), b"\0".to_vec()));
    out.push((b"a/2".to_vec(), b"\0".to_vec()));
    out.push((b"b".to_vec(), b"a".to_vec()));
    out
}

fn model_range(m: &Model, key: &[u8], end: &[u8], rev: i64) -> Vec<KeyValue> {
    m.states[(rev - 1) as usize]
        .values()
        .filter(|kv| index::in_range(&kv.key, key, end))
        .cloned()
        .collect()
}

fn check_all(h: &StateMachine, m: &Model) {
    assert_eq!(h.revision(), m.rev());
    let leases: Vec<(i64, Vec<Vec<u8>>)> = h.leases().into_iter().map(|l| (l.id, l.keys)).collect();
    let want: Vec<(i64, Vec<Vec<u8>>)> = m
        .leases
        .iter()
        .map(|id| {
            (
                *id,
                m.cur()
                    .values()
                    .filter(|kv| kv.lease == *id)
                    .map(|kv| kv.key.clone())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(leases, want, "leases and their keys");
    for rev in (m.compact.max(1))..=m.rev() {
        for (k, e) in ranges() {
            let req = RangeRequest {
                key: k.clone(),
                range_end: e.clone(),
                revision: rev,
                ..Default::default()
            };
            let got = h.range(&req).unwrap();
            let want = model_range(m, &k, &e, rev);
            assert_eq!(got.count, want.len() as i64, "count {k:?}..{e:?}@{rev}");
            assert_eq!(got.kvs, want, "range {k:?}..{e:?}@{rev}");
            // Limit 1, descending.
            let req = RangeRequest {
                limit: 1,
                sort_order: SortOrder::Descend as i32,
                ..req
            };
            let got = h.range(&req).unwrap();
            assert_eq!(got.kvs.first(), want.last());
            assert_eq!(got.more, want.len() > 1);
        }
    }
    if m.compact > 1 {
        let err = h.range(&RangeRequest {
            key: b"a".to_vec(),
            revision: m.compact - 1,
            ..Default::default()
        });
        assert_eq!(err.unwrap_err(), rpctypes::COMPACTED);
    }
    let err = h.range(&RangeRequest {
        key: b"a".to_vec(),
        revision: m.rev() + 1,
        ..Default::default()
    });
    assert_eq!(err.unwrap_err(), rpctypes::FUTURE_REV);
}

fn run(ops: Vec<MOp>) {
    let mut h = H::new();
    let mut m = Model {
        states: vec![BTreeMap::new()],
        compact: -1,
        leases: Default::default(),
    };
    for op in ops {
        match op {
            MOp::Put(k, v, prev, lease) => {
                let want_prev = m.cur().get(&key(k)).cloned();
                let r = h.put_req(PutRequest {
                    key: key(k),
                    value: vec![v],
                    prev_kv: prev,
                    lease,
                    ..Default::default()
                });
                if lease != 0 && !m.leases.contains(&lease) {
                    assert_eq!(r.unwrap_err(), rpctypes::LEASE_NOT_FOUND);
                } else {
                    assert_eq!(r.unwrap().prev_kv, if prev { want_prev } else { None });
                    m.write(&[(key(k), Some((vec![v], lease)))]);
                }
            }
            MOp::Grant(id) => {
                let r = h.apply(Op::LeaseGrant(
                    gauntlet_api::etcdserverpb::LeaseGrantRequest { ttl: 60, id },
                ));
                if m.leases.insert(id) {
                    r.unwrap();
                } else {
                    assert_eq!(r.unwrap_err(), rpctypes::LEASE_EXIST);
                }
            }
            MOp::Revoke(id) => {
                let r = h.apply(Op::LeaseRevoke(
                    gauntlet_api::etcdserverpb::LeaseRevokeRequest { id },
                ));
                if m.leases.remove(&id) {
                    r.unwrap();
                    let attached: Vec<_> = m
                        .cur()
                        .values()
                        .filter(|kv| kv.lease == id)
                        .map(|kv| (kv.key.clone(), None))
                        .collect();
                    m.write(&attached);
                } else {
                    assert_eq!(r.unwrap_err(), rpctypes::LEASE_NOT_FOUND);
                }
            }
            MOp::Del(k, end) => {
                let end = match end {
                    Some(e) if e > k => key(e),
                    Some(_) => vec![0],
                    None => vec![],
                };
                let want: Vec<KeyValue> = model_range(&m, &key(k), &end, m.rev());
                let r = match h
                    .apply(Op::DeleteRange(DeleteRangeRequest {
                        key: key(k),
                        range_end: end,
                        prev_kv: true,
                    }))
                    .unwrap()
                {
                    Response::DeleteRange(r) => r,
                    other => panic!("{other:?}"),
                };
                assert_eq!(r.prev_kvs, want);
                assert_eq!(r.deleted, want.len() as i64);
                let writes: Vec<_> = want.iter().map(|kv| (kv.key.clone(), None)).collect();
                m.write(&writes);
            }
            MOp::Txn(k, v, s, f) => {
                let t = TxnRequest {
                    compare: vec![Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Value as i32,
                        key: key(k),
                        range_end: vec![],
                        target_union: Some(TargetUnion::Value(vec![v])),
                    }],
                    success: to_ops(&s),
                    failure: to_ops(&f),
                };
                let cmd = Command::internal(Op::Txn(t.clone()));
                if validate(&cmd, 128).is_err() {
                    continue; // never proposed
                }
                let ok = m.cur().get(&key(k)).is_some_and(|kv| kv.value == vec![v]);
                let r = h.txn(t).unwrap();
                assert_eq!(r.succeeded, ok);
                m.write(&model_writes(if ok { &s } else { &f }));
            }
            MOp::Compact(back) => {
                let at = m.rev() - back;
                let r = h.compact(at);
                if at <= m.compact {
                    assert_eq!(r.unwrap_err(), rpctypes::COMPACTED);
                } else {
                    r.unwrap();
                    m.compact = at;
                }
            }
        }
        check_all(&h.sm, &m);
    }
    check_watch_replay(&h.sm, &m);
    // A snapshot restored elsewhere answers the same, hashes the same.
    let snap = h.sm.snapshot().unwrap();
    let mut other = H::new();
    other.put("junk", "to be replaced");
    other.sm.restore(h.sm.applied_index(), &snap).unwrap();
    check_all(&other.sm, &m);
    assert_eq!(other.sm.hash_kv(0).unwrap(), h.sm.hash_kv(0).unwrap());
    assert_eq!(other.sm.applied_index(), h.sm.applied_index());
}

/// Watchers started at past revisions replay exactly the model's changes, with prev_kv.
fn check_watch_replay(sm: &StateMachine, m: &Model) {
    let first = (m.compact + 1).max(2);
    for start in (first..=m.rev()).step_by(3) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let hub = sm.watch_hub();
        let id = hub.watch(
            WatchSpec {
                key: vec![0],
                range_end: vec![0],
                start_revision: start,
                prev_kv: true,
                ..Default::default()
            },
            tx,
        );
        let mut got = Vec::new();
        while let Ok(u) = rx.try_recv() {
            got.push(u);
        }
        let mut want = Vec::new();
        for rev in start..=m.rev() {
            let (before, after) = (&m.states[(rev - 2) as usize], &m.states[(rev - 1) as usize]);
            let mut events: Vec<(Vec<u8>, Option<KeyValue>, Option<KeyValue>)> = Vec::new();
            for (k, kv) in after {
                if before.get(k) != Some(kv) {
                    events.push((k.clone(), Some(kv.clone()), before.get(k).cloned()));
                }
            }
            for (k, kv) in before {
                if !after.contains_key(k) {
                    events.push((k.clone(), None, Some(kv.clone())));
                }
            }
            events.sort_by(|a, b| a.0.cmp(&b.0));
            want.push((rev, events));
        }
        let got: Vec<_> = got
            .into_iter()
            .map(|u| match u {
                WatchUpdate::Events { revision, events } => {
                    let mut evs: Vec<_> = events
                        .into_iter()
                        .map(|e| {
                            let kv = e.kv.unwrap();
                            let put =
                                e.r#type == gauntlet_api::mvccpb::event::EventType::Put as i32;
                            if !put {
                                assert_eq!(kv.mod_revision, revision);
                            }
                            (kv.key.clone(), put.then_some(kv), e.prev_kv)
                        })
                        .collect();
                    evs.sort_by(|a, b| a.0.cmp(&b.0));
                    (revision, evs)
                }
                WatchUpdate::Compacted { .. } => panic!("start {start} > compact {}", m.compact),
                WatchUpdate::Progress { .. } => panic!("no progress was requested"),
            })
            .collect();
        assert_eq!(got, want, "watch from {start}");
        assert_eq!(hub.progress(id), Some(m.rev()));
        hub.cancel(id);
    }
}

proptest! {
    // 64 cases by default; PROPTEST_CASES=N for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]
    #[test]
    fn matches_the_reference_model(ops in prop::collection::vec(mop(), 1..40)) {
        run(ops);
    }
}
