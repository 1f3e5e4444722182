//! Unit tests of the KV, txn, compaction, lease and validation semantics (etcd's).

use gauntlet_api::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::{SortOrder, SortTarget},
    request_op, response_op, CompactionRequest, Compare, DeleteRangeRequest, DeleteRangeResponse,
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest, LeaseRevokeRequest, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
};
use gauntlet_api::mvccpb::KeyValue;
use gauntlet_api::rpctypes::{self, EtcdError};
use prost::Message;

use super::*;

/// A state machine on a temporary sled db, with a raft index counter.
pub(super) struct H {
    pub sm: StateMachine,
    pub idx: u64,
}

impl H {
    pub fn new() -> Self {
        let db = sled::Config::new().temporary(true).open().unwrap();
        H {
            sm: StateMachine::open(db).unwrap(),
            idx: 0,
        }
    }

    pub fn apply(&mut self, op: Op) -> ApplyOutcome {
        self.idx += 1;
        self.sm
            .apply(self.idx, &Command::internal(op))
            .unwrap()
            .expect("fresh index")
    }

    pub fn put(&mut self, k: &str, v: &str) -> PutResponse {
        match self.apply(Op::Put(put(k, v))).unwrap() {
            Response::Put(r) => r,
            other => panic!("{other:?}"),
        }
    }

    pub fn put_req(&mut self, p: PutRequest) -> Result<PutResponse, EtcdError> {
        self.apply(Op::Put(p)).map(|r| match r {
            Response::Put(r) => r,
            other => panic!("{other:?}"),
        })
    }

    pub fn del(&mut self, k: &str, end: &str) -> DeleteRangeResponse {
        match self
            .apply(Op::DeleteRange(DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                prev_kv: true,
            }))
            .unwrap()
        {
            Response::DeleteRange(r) => r,
            other => panic!("{other:?}"),
        }
    }

    pub fn txn(&mut self, t: TxnRequest) -> Result<TxnResponse, EtcdError> {
        self.apply(Op::Txn(t)).map(|r| match r {
            Response::Txn(r) => r,
            other => panic!("{other:?}"),
        })
    }

    pub fn compact(&mut self, rev: i64) -> Result<(), EtcdError> {
        self.apply(Op::Compaction(CompactionRequest {
            revision: rev,
            physical: false,
        }))
        .map(|_| ())
    }

    pub fn get(&self, k: &str) -> Option<KeyValue> {
        self.sm.range(&rr(k, "", 0)).unwrap().kvs.into_iter().next()
    }

    pub fn keys(&self, req: &RangeRequest) -> Vec<String> {
        self.sm
            .range(req)
            .unwrap()
            .kvs
            .iter()
            .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
            .collect()
    }
}

pub(super) fn put(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    }
}

pub(super) fn rr(k: &str, end: &str, rev: i64) -> RangeRequest {
    RangeRequest {
        key: k.into(),
        range_end: end.into(),
        revision: rev,
        ..Default::default()
    }
}

fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(put(k, v))),
    }
}

fn op_del(k: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                prev_kv: false,
            },
        )),
    }
}

fn op_range(k: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(rr(k, end, 0))),
    }
}

fn op_txn(t: TxnRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestTxn(t)),
    }
}

fn cmp(k: &str, target: CompareTarget, result: CompareResult, u: TargetUnion) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: k.into(),
        range_end: vec![],
        target_union: Some(u),
    }
}

fn kv(k: &str, v: &str, create: i64, modr: i64, ver: i64) -> KeyValue {
    KeyValue {
        key: k.into(),
        create_revision: create,
        mod_revision: modr,
        version: ver,
        value: v.into(),
        lease: 0,
    }
}

#[test]
fn empty_store_starts_at_revision_one() {
    let h = H::new();
    assert_eq!(h.sm.revision(), 1);
    assert_eq!(h.sm.compact_revision(), -1);
    assert_eq!(h.sm.applied_index(), 0);
    let r = h.sm.range(&rr("a", "\0", 0)).unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (0, 0, false));
}

#[test]
fn put_versions_generations_and_history() {
    let mut h = H::new();
    h.put("a", "1"); // rev 2
    h.put("a", "2"); // rev 3
    assert_eq!(h.get("a").unwrap(), kv("a", "2", 2, 3, 2));
    let d = h.del("a", ""); // rev 4
    assert_eq!(d.deleted, 1);
    assert_eq!(d.prev_kvs, vec![kv("a", "2", 2, 3, 2)]);
    assert_eq!(h.get("a"), None);
    h.put("a", "3"); // rev 5: new generation
    assert_eq!(h.get("a").unwrap(), kv("a", "3", 5, 5, 1));
    assert_eq!(h.sm.revision(), 5);
    // History.
    assert_eq!(
        h.sm.range(&rr("a", "", 2)).unwrap().kvs,
        vec![kv("a", "1", 2, 2, 1)]
    );
    assert_eq!(
        h.sm.range(&rr("a", "", 3)).unwrap().kvs,
        vec![kv("a", "2", 2, 3, 2)]
    );
    assert!(h.sm.range(&rr("a", "", 4)).unwrap().kvs.is_empty());
    assert!(h.sm.range(&rr("a", "", 1)).unwrap().kvs.is_empty());
    assert_eq!(
        h.sm.range(&rr("a", "", 6)).unwrap_err(),
        rpctypes::FUTURE_REV
    );
    // A negative revision reads the current one.
    assert_eq!(h.sm.range(&rr("a", "", -3)).unwrap().kvs.len(), 1);
}

#[test]
fn delete_nothing_does_not_bump_revision_but_put_always_does() {
    let mut h = H::new();
    h.put("a", "1");
    assert_eq!(h.del("zzz", "").deleted, 0);
    assert_eq!(h.sm.revision(), 2);
    h.put("a", "1"); // same value: still a new revision
    assert_eq!(h.sm.revision(), 3);
    assert_eq!(h.get("a").unwrap().version, 2);
}

#[test]
fn range_end_forms() {
    let mut h = H::new();
    for k in ["a", "a/1", "a/2", "b", "c"] {
        h.put(k, "v");
    }
    assert_eq!(h.keys(&rr("a", "", 0)), ["a"]);
    assert_eq!(h.keys(&rr("a/", "a0", 0)), ["a/1", "a/2"]);
    assert_eq!(h.keys(&rr("b", "\0", 0)), ["b", "c"]);
    assert_eq!(h.keys(&rr("\0", "\0", 0)), ["a", "a/1", "a/2", "b", "c"]);
    assert!(h.keys(&rr("c", "a", 0)).is_empty());
    assert!(h.keys(&rr("b", "b", 0)).is_empty());
    assert!(h.keys(&rr("zz", "", 0)).is_empty());
}

#[test]
fn limit_more_count_keys_only_count_only() {
    let mut h = H::new();
    for k in ["a", "b", "c", "d"] {
        h.put(k, "val");
    }
    let mut req = rr("a", "\0", 0);
    req.limit = 2;
    let r = h.sm.range(&req).unwrap();
    assert_eq!((r.kvs.len(), r.more, r.count), (2, true, 4));
    req.limit = 4;
    let r = h.sm.range(&req).unwrap();
    assert_eq!((r.kvs.len(), r.more, r.count), (4, false, 4));
    req.keys_only = true;
    let r = h.sm.range(&req).unwrap();
    assert!(r
        .kvs
        .iter()
        .all(|kv| kv.value.is_empty() && kv.version == 1));
    req.count_only = true;
    let r = h.sm.range(&req).unwrap();
    assert_eq!((r.kvs.len(), r.more, r.count), (0, false, 4));
}

#[test]
fn sorting_follows_etcd() {
    let mut h = H::new();
    h.put("b", "3"); // 2
    h.put("a", "1"); // 3
    h.put("c", "2"); // 4
    h.put("a", "9"); // 5  a: version 2
    let sorted = |order: SortOrder, target: SortTarget, limit: i64| {
        let mut req = rr("a", "\0", 0);
        req.sort_order = order as i32;
        req.sort_target = target as i32;
        req.limit = limit;
        let r = h.sm.range(&req).unwrap();
        let keys: String = r.kvs.iter().map(|kv| kv.key[0] as char).collect();
        (keys, r.more, r.count)
    };
    assert_eq!(sorted(SortOrder::None, SortTarget::Key, 0).0, "abc");
    assert_eq!(sorted(SortOrder::Ascend, SortTarget::Key, 0).0, "abc");
    assert_eq!(sorted(SortOrder::Descend, SortTarget::Key, 0).0, "cba");
    // A non-key target with order NONE sorts ascending.
    assert_eq!(sorted(SortOrder::None, SortTarget::Mod, 0).0, "bca");
    assert_eq!(sorted(SortOrder::Descend, SortTarget::Mod, 0).0, "acb");
    assert_eq!(sorted(SortOrder::Ascend, SortTarget::Create, 0).0, "bac");
    assert_eq!(
        sorted(SortOrder::Descend, SortTarget::Version, 0)
            .0
            .as_bytes()[0],
        b'a'
    );
    assert_eq!(sorted(SortOrder::Ascend, SortTarget::Value, 0).0, "cba");
    assert_eq!(sorted(SortOrder::Descend, SortTarget::Value, 0).0, "abc");
    // The limit applies after sorting.
    assert_eq!(
        sorted(SortOrder::Descend, SortTarget::Key, 2),
        ("cb".into(), true, 3)
    );
    assert_eq!(
        sorted(SortOrder::Descend, SortTarget::Value, 1),
        ("a".into(), true, 3)
    );
}

#[test]
fn revision_filters_do_not_change_count() {
    let mut h = H::new();
    h.put("a", "1"); // 2
    h.put("b", "1"); // 3
    h.put("c", "1"); // 4
    h.put("a", "2"); // 5
    let mut req = rr("a", "\0", 0);
    req.min_mod_revision = 3;
    req.max_mod_revision = 4;
    let r = h.sm.range(&req).unwrap();
    assert_eq!(h.keys(&req), ["b", "c"]);
    assert_eq!(r.count, 3);
    let mut req = rr("a", "\0", 0);
    req.max_create_revision = 2;
    assert_eq!(h.keys(&req), ["a"]);
    let mut req = rr("a", "\0", 0);
    req.min_create_revision = 3;
    req.limit = 1;
    let r = h.sm.range(&req).unwrap();
    assert_eq!((r.kvs.len(), r.more), (1, true));
}

#[test]
fn put_prev_kv_ignore_value_ignore_lease() {
    let mut h = H::new();
    assert_eq!(
        h.put_req(PutRequest {
            ignore_value: true,
            ..put("a", "")
        })
        .unwrap_err(),
        rpctypes::KEY_NOT_FOUND
    );
    assert_eq!(
        h.put_req(PutRequest {
            ignore_lease: true,
            ..put("a", "x")
        })
        .unwrap_err(),
        rpctypes::KEY_NOT_FOUND
    );
    assert_eq!(h.sm.revision(), 1, "rejections do not write");
    assert_eq!(
        h.sm.applied_index(),
        2,
        "rejections still consume the entry"
    );
    h.apply(Op::LeaseGrant(LeaseGrantRequest { ttl: 100, id: 7 }))
        .unwrap();
    h.put_req(PutRequest {
        lease: 7,
        ..put("a", "1")
    })
    .unwrap();
    let r = h
        .put_req(PutRequest {
            ignore_value: true,
            ignore_lease: true,
            prev_kv: true,
            ..put("a", "")
        })
        .unwrap();
    let prev = r.prev_kv.unwrap();
    assert_eq!(
        (prev.value.as_slice(), prev.lease, prev.version),
        (&b"1"[..], 7, 1)
    );
    let now = h.get("a").unwrap();
    assert_eq!(
        (now.value.as_slice(), now.lease, now.version),
        (&b"1"[..], 7, 2)
    );
    // Without prev_kv no prev is returned.
    assert_eq!(h.put("a", "2").prev_kv, None);
    assert_eq!(h.get("a").unwrap().lease, 0);
}

#[test]
fn lease_attach_move_detach_and_revoke() {
    let mut h = H::new();
    assert_eq!(
        h.put_req(PutRequest {
            lease: 5,
            ..put("a", "1")
        })
        .unwrap_err(),
        rpctypes::LEASE_NOT_FOUND
    );
    let g = h
        .apply(Op::LeaseGrant(LeaseGrantRequest { ttl: 1, id: 5 }))
        .unwrap();
    let Response::LeaseGrant(g) = g else { panic!() };
    assert_eq!(
        (g.id, g.ttl),
        (5, DEFAULT_MIN_LEASE_TTL_SECS),
        "TTL raised to the minimum"
    );
    assert_eq!(
        h.apply(Op::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 5 }))
            .unwrap_err(),
        rpctypes::LEASE_EXIST
    );
    h.apply(Op::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 6 }))
        .unwrap();
    h.put_req(PutRequest {
        lease: 5,
        ..put("a", "1")
    })
    .unwrap();
    h.put_req(PutRequest {
        lease: 5,
        ..put("b", "1")
    })
    .unwrap();
    h.put_req(PutRequest {
        lease: 5,
        ..put("c", "1")
    })
    .unwrap();
    assert_eq!(
        h.sm.lease(5).unwrap().keys,
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
    // Moving "b" to lease 6, detaching "c", deleting nothing else.
    h.put_req(PutRequest {
        lease: 6,
        ..put("b", "2")
    })
    .unwrap();
    h.put("c", "2");
    assert_eq!(h.sm.lease(5).unwrap().keys, vec![b"a".to_vec()]);
    assert_eq!(h.sm.lease(6).unwrap().keys, vec![b"b".to_vec()]);
    h.put_req(PutRequest {
        lease: 6,
        ..put("d", "1")
    })
    .unwrap();
    let rev = h.sm.revision();
    h.apply(Op::LeaseRevoke(LeaseRevokeRequest { id: 6 }))
        .unwrap();
    assert_eq!(
        h.sm.revision(),
        rev + 1,
        "one revision for all the lease's keys"
    );
    assert_eq!(h.get("b"), None);
    assert_eq!(h.get("d"), None);
    assert!(h.get("a").is_some());
    assert_eq!(h.sm.lease(6), None);
    assert_eq!(
        h.apply(Op::LeaseRevoke(LeaseRevokeRequest { id: 6 }))
            .unwrap_err(),
        rpctypes::LEASE_NOT_FOUND
    );
    // Revoking a lease without keys writes nothing.
    h.apply(Op::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 8 }))
        .unwrap();
    let rev = h.sm.revision();
    h.apply(Op::LeaseRevoke(LeaseRevokeRequest { id: 8 }))
        .unwrap();
    assert_eq!(h.sm.revision(), rev);
    // Deleting a key detaches it.
    h.del("a", "");
    assert!(h.sm.lease(5).unwrap().keys.is_empty());
    assert_eq!(
        h.sm.leases().iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![5]
    );
}

#[test]
fn lease_checkpoint_and_limits() {
    let mut h = H::new();
    h.apply(Op::LeaseGrant(LeaseGrantRequest { ttl: 60, id: -3 }))
        .unwrap();
    assert_eq!(h.sm.lease(-3).unwrap().remaining_ttl, 60);
    h.apply(Op::LeaseCheckpoint(LeaseCheckpointRequest {
        checkpoints: vec![
            LeaseCheckpoint {
                id: -3,
                remaining_ttl: 17,
            },
            LeaseCheckpoint {
                id: 99,
                remaining_ttl: 5,
            }, // unknown: ignored
        ],
    }))
    .unwrap();
    let l = h.sm.lease(-3).unwrap();
    assert_eq!((l.granted_ttl, l.remaining_ttl), (60, 17));
    assert_eq!(h.sm.lease(99), None);
    assert_eq!(
        h.apply(Op::LeaseGrant(LeaseGrantRequest {
            ttl: MAX_LEASE_TTL_SECS + 1,
            id: 4
        }))
        .unwrap_err(),
        rpctypes::LEASE_TTL_TOO_LARGE
    );
    h.apply(Op::LeaseGrant(LeaseGrantRequest {
        ttl: MAX_LEASE_TTL_SECS,
        id: 4,
    }))
    .unwrap();
    assert_eq!(h.sm.revision(), 1, "leases do not bump the revision");
}

#[test]
fn txn_writes_share_one_revision_and_see_their_writes() {
    let mut h = H::new();
    h.put("x", "0"); // 2
    let t = h
        .txn(TxnRequest {
            compare: vec![cmp(
                "x",
                CompareTarget::Value,
                CompareResult::Equal,
                TargetUnion::Value(b"0".to_vec()),
            )],
            success: vec![
                op_put("a", "1"),
                op_range("a", ""),
                op_put("b", "2"),
                op_del("x", ""),
                op_range("x", ""),
            ],
            failure: vec![],
        })
        .unwrap();
    assert!(t.succeeded);
    assert_eq!(t.header, None);
    assert_eq!(h.sm.revision(), 3);
    let resps: Vec<_> = t
        .responses
        .iter()
        .map(|r| r.response.clone().unwrap())
        .collect();
    let response_op::Response::ResponseRange(r) = &resps[1] else {
        panic!()
    };
    assert_eq!(
        r.kvs,
        vec![kv("a", "1", 3, 3, 1)],
        "a range sees the txn's earlier put"
    );
    assert_eq!(r.header.unwrap().revision, 3);
    let response_op::Response::ResponsePut(p) = &resps[2] else {
        panic!()
    };
    assert_eq!(p.header.unwrap().revision, 3);
    let response_op::Response::ResponseDeleteRange(d) = &resps[3] else {
        panic!()
    };
    assert_eq!(d.deleted, 1);
    let response_op::Response::ResponseRange(r) = &resps[4] else {
        panic!()
    };
    assert!(r.kvs.is_empty());
    // Sub-revisions order the writes; all share main revision 3.
    assert_eq!(h.get("a").unwrap().mod_revision, 3);
    assert_eq!(h.get("b").unwrap().mod_revision, 3);
}

#[test]
fn failed_txn_without_writes_keeps_revision() {
    let mut h = H::new();
    h.put("x", "0");
    let t = h
        .txn(TxnRequest {
            compare: vec![cmp(
                "x",
                CompareTarget::Value,
                CompareResult::Equal,
                TargetUnion::Value(b"1".to_vec()),
            )],
            success: vec![op_put("a", "1")],
            failure: vec![op_range("x", "")],
        })
        .unwrap();
    assert!(!t.succeeded);
    assert_eq!(h.sm.revision(), 2);
    assert_eq!(h.get("a"), None);
    let Some(response_op::Response::ResponseRange(r)) = &t.responses[0].response else {
        panic!()
    };
    assert_eq!(r.header.unwrap().revision, 2);
}

#[test]
fn compare_targets_and_results() {
    let mut h = H::new();
    h.apply(Op::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 9 }))
        .unwrap();
    h.put("a", "m"); // 2
    h.put_req(PutRequest {
        lease: 9,
        ..put("a", "m")
    })
    .unwrap(); // 3, version 2
    let check = |h: &mut H, c: Compare| {
        h.txn(TxnRequest {
            compare: vec![c],
            ..Default::default()
        })
        .unwrap()
        .succeeded
    };
    use CompareResult::*;
    use CompareTarget as T;
    let cases = [
        (T::Value, Equal, TargetUnion::Value(b"m".to_vec()), true),
        (T::Value, Greater, TargetUnion::Value(b"a".to_vec()), true),
        (T::Value, Less, TargetUnion::Value(b"z".to_vec()), true),
        (T::Value, NotEqual, TargetUnion::Value(b"m".to_vec()), false),
        (T::Version, Equal, TargetUnion::Version(2), true),
        (T::Version, Greater, TargetUnion::Version(2), false),
        (T::Create, Equal, TargetUnion::CreateRevision(2), true),
        (T::Create, Less, TargetUnion::CreateRevision(3), true),
        (T::Mod, Equal, TargetUnion::ModRevision(3), true),
        (T::Mod, NotEqual, TargetUnion::ModRevision(3), false),
        (T::Lease, Equal, TargetUnion::Lease(9), true),
        (T::Lease, Greater, TargetUnion::Lease(8), true),
        // A union of the wrong kind compares against 0.
        (T::Mod, Greater, TargetUnion::Version(100), true),
    ];
    for (target, result, u, want) in cases {
        assert_eq!(
            check(&mut h, cmp("a", target, result, u.clone())),
            want,
            "{target:?} {result:?} {u:?}"
        );
    }
    // Missing key: value compares fail, others see zeroes.
    assert!(!check(
        &mut h,
        cmp(
            "nope",
            T::Value,
            NotEqual,
            TargetUnion::Value(b"x".to_vec())
        )
    ));
    assert!(check(
        &mut h,
        cmp("nope", T::Version, Equal, TargetUnion::Version(0))
    ));
    assert!(check(
        &mut h,
        cmp("nope", T::Create, Equal, TargetUnion::CreateRevision(0))
    ));
    // A compare over a range must hold for every key.
    h.put("b", "m");
    let mut c = cmp("a", T::Value, Equal, TargetUnion::Value(b"m".to_vec()));
    c.range_end = b"c".to_vec();
    assert!(check(&mut h, c.clone()));
    h.put("b", "n");
    assert!(!check(&mut h, c));
    assert_eq!(h.sm.revision(), 5, "compare-only txns never write");
}

#[test]
fn nested_txns_compare_against_the_state_before_the_txn() {
    let mut h = H::new();
    h.put("k", "old"); // 2
    let inner = TxnRequest {
        // "k" is rewritten by the outer txn before this runs; etcd still sees "old".
        compare: vec![cmp(
            "k",
            CompareTarget::Value,
            CompareResult::Equal,
            TargetUnion::Value(b"old".to_vec()),
        )],
        success: vec![op_put("inner-then", "1")],
        failure: vec![op_put("inner-else", "1")],
    };
    let t = h
        .txn(TxnRequest {
            compare: vec![],
            success: vec![
                op_put("k", "new"),
                op_txn(inner),
                op_range("inner-then", ""),
            ],
            failure: vec![],
        })
        .unwrap();
    assert!(h.get("inner-then").is_some());
    assert!(h.get("inner-else").is_none());
    let Some(response_op::Response::ResponseTxn(n)) = &t.responses[1].response else {
        panic!()
    };
    assert!(n.succeeded);
    assert!(n.header.is_some());
    let Some(response_op::Response::ResponseRange(r)) = &t.responses[2].response else {
        panic!()
    };
    assert_eq!(r.count, 1);
    assert_eq!(h.sm.revision(), 3);
}

#[test]
fn txn_checks_reject_the_whole_txn() {
    let mut h = H::new();
    h.put("a", "1");
    // The chosen branch puts with a missing lease: nothing is written.
    let t = TxnRequest {
        compare: vec![],
        success: vec![
            op_put("b", "1"),
            RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    lease: 42,
                    ..put("c", "1")
                })),
            },
        ],
        failure: vec![],
    };
    assert_eq!(h.txn(t).unwrap_err(), rpctypes::LEASE_NOT_FOUND);
    assert_eq!(h.get("b"), None);
    assert_eq!(h.sm.revision(), 2);
    // The branch not taken is not checked.
    let t = TxnRequest {
        compare: vec![],
        success: vec![op_put("b", "1")],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                lease: 42,
                ..put("c", "1")
            })),
        }],
    };
    assert!(h.txn(t).unwrap().succeeded);
    // ignore_value on a missing key, nested.
    let nested = TxnRequest {
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                ignore_value: true,
                ..put("zz", "")
            })),
        }],
        ..Default::default()
    };
    let t = TxnRequest {
        success: vec![op_put("q", "1"), op_txn(nested)],
        ..Default::default()
    };
    assert_eq!(h.txn(t).unwrap_err(), rpctypes::KEY_NOT_FOUND);
    assert_eq!(h.get("q"), None);
    // Ranges at future or compacted revisions.
    let mut r = rr("a", "", 100);
    let t = TxnRequest {
        success: vec![
            op_put("q", "1"),
            RequestOp {
                request: Some(request_op::Request::RequestRange(r.clone())),
            },
        ],
        ..Default::default()
    };
    assert_eq!(h.txn(t).unwrap_err(), rpctypes::FUTURE_REV);
    h.put("a", "2");
    h.compact(4).unwrap();
    r.revision = 2;
    let t = TxnRequest {
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestRange(r)),
        }],
        ..Default::default()
    };
    assert_eq!(h.txn(t).unwrap_err(), rpctypes::COMPACTED);
}

#[test]
fn compaction_errors_history_and_physical_removal() {
    let mut h = H::new();
    h.put("a", "1"); // 2
    h.put("a", "2"); // 3
    h.put("b", "1"); // 4
    h.del("b", ""); // 5
    h.put("c", "1"); // 6
    assert_eq!(h.compact(7).unwrap_err(), rpctypes::FUTURE_REV);
    h.compact(5).unwrap();
    assert_eq!(h.sm.compact_revision(), 5);
    assert_eq!(h.sm.revision(), 6, "compaction does not bump the revision");
    assert_eq!(h.compact(5).unwrap_err(), rpctypes::COMPACTED);
    assert_eq!(h.compact(3).unwrap_err(), rpctypes::COMPACTED);
    assert_eq!(
        h.sm.range(&rr("a", "", 4)).unwrap_err(),
        rpctypes::COMPACTED
    );
    // Reading exactly at the compact revision is allowed (etcd: rev < compact is compacted).
    assert_eq!(
        h.sm.range(&rr("a", "", 5)).unwrap().kvs,
        vec![kv("a", "2", 2, 3, 2)]
    );
    assert_eq!(h.sm.range(&rr("a", "\0", 5)).unwrap().count, 1);
    assert_eq!(h.sm.range(&rr("a", "\0", 6)).unwrap().count, 2);
    // "b" (tombstoned at 5) is gone from the index; a's revision 2 is gone from disk.
    assert_eq!(h.sm.keys_total(), 2);
    let stored = h.sm.revisions_stored();
    assert_eq!(stored, 2, "only a@3 and c@6 remain");
    assert_eq!(h.sm.hash_kv(4).unwrap_err(), rpctypes::COMPACTED);
    assert_eq!(h.sm.hash_kv(7).unwrap_err(), rpctypes::FUTURE_REV);
    assert_eq!(h.sm.hash_kv(0).unwrap().compact_revision, 5);
    // Versions survive compaction.
    h.put("a", "3");
    assert_eq!(h.get("a").unwrap(), kv("a", "3", 2, 7, 3));
    h.compact(7).unwrap();
    assert_eq!(h.get("a").unwrap(), kv("a", "3", 2, 7, 3));
}

#[test]
fn replay_and_noop() {
    let mut h = H::new();
    h.put("a", "1");
    let cmd = Command::internal(Op::Put(put("a", "2")));
    assert_eq!(h.sm.apply(1, &cmd).unwrap(), None);
    assert_eq!(h.get("a").unwrap().value, b"1");
    h.sm.apply_noop(5).unwrap();
    assert_eq!(h.sm.applied_index(), 5);
    assert_eq!(h.sm.apply(5, &cmd).unwrap(), None);
    assert!(h.sm.apply(6, &cmd).unwrap().is_some());
    assert_eq!(h.sm.apply(7, &Command::default()).unwrap(), None);
    assert_eq!(h.sm.applied_index(), 7);
}

#[test]
fn command_encodes_with_prost() {
    let cmd = Command::internal(Op::LeaseGrant(LeaseGrantRequest { ttl: 5, id: 3 }));
    let bytes = cmd.encode_to_vec();
    assert_eq!(Command::decode(bytes.as_slice()).unwrap(), cmd);
}

fn txn_cmd(t: TxnRequest) -> Command {
    Command::internal(Op::Txn(t))
}

#[test]
fn validate_simple_requests() {
    let v = |op: Op| validate(&Command::internal(op), 128);
    assert_eq!(v(Op::Put(put("", "x"))), Err(rpctypes::EMPTY_KEY));
    assert_eq!(
        v(Op::Put(PutRequest {
            ignore_value: true,
            ..put("a", "x")
        })),
        Err(rpctypes::VALUE_PROVIDED)
    );
    assert_eq!(
        v(Op::Put(PutRequest {
            ignore_lease: true,
            lease: 1,
            ..put("a", "")
        })),
        Err(rpctypes::LEASE_PROVIDED)
    );
    assert_eq!(v(Op::Put(put("a", "x"))), Ok(()));
    assert_eq!(
        v(Op::DeleteRange(DeleteRangeRequest::default())),
        Err(rpctypes::EMPTY_KEY)
    );
    assert_eq!(
        v(Op::LeaseGrant(LeaseGrantRequest {
            ttl: MAX_LEASE_TTL_SECS + 1,
            id: 1
        })),
        Err(rpctypes::LEASE_TTL_TOO_LARGE)
    );
    assert_eq!(validate_range(&rr("", "", 0)), Err(rpctypes::EMPTY_KEY));
    assert_eq!(validate_range(&rr("a", "", 0)), Ok(()));
}

#[test]
fn validate_txn_limits_and_shapes() {
    let many: Vec<RequestOp> = (0..4).map(|i| op_put(&format!("k{i}"), "")).collect();
    let t = TxnRequest {
        success: many.clone(),
        ..Default::default()
    };
    assert_eq!(
        validate(&txn_cmd(t.clone()), 3),
        Err(rpctypes::TOO_MANY_OPS)
    );
    assert_eq!(validate(&txn_cmd(t), 4), Ok(()));
    // A nested txn gets the budget minus the parent's largest list.
    let nested = TxnRequest {
        success: many[..2].to_vec(),
        ..Default::default()
    };
    let t = TxnRequest {
        success: vec![op_txn(nested.clone()), op_put("x", "")],
        ..Default::default()
    };
    assert_eq!(
        validate(&txn_cmd(t.clone()), 3),
        Err(rpctypes::TOO_MANY_OPS)
    );
    assert_eq!(validate(&txn_cmd(t), 4), Ok(()));
    // Empty compare key, empty op, bad nested put.
    let t = TxnRequest {
        compare: vec![cmp(
            "",
            CompareTarget::Version,
            CompareResult::Equal,
            TargetUnion::Version(0),
        )],
        ..Default::default()
    };
    assert_eq!(validate(&txn_cmd(t), 128), Err(rpctypes::EMPTY_KEY));
    let t = TxnRequest {
        failure: vec![RequestOp { request: None }],
        ..Default::default()
    };
    assert_eq!(validate(&txn_cmd(t), 128), Err(rpctypes::KEY_NOT_FOUND));
    let t = TxnRequest {
        success: vec![op_range("", "")],
        ..Default::default()
    };
    assert_eq!(validate(&txn_cmd(t), 128), Err(rpctypes::EMPTY_KEY));
}

#[test]
fn validate_duplicate_keys() {
    let dup = |success: Vec<RequestOp>, failure: Vec<RequestOp>| {
        validate(
            &txn_cmd(TxnRequest {
                compare: vec![],
                success,
                failure,
            }),
            128,
        )
    };
    let e = Err(rpctypes::DUPLICATE_KEY);
    assert_eq!(dup(vec![op_put("a", ""), op_put("a", "")], vec![]), e);
    assert_eq!(
        dup(vec![op_put("a", "")], vec![op_put("a", "")]),
        Ok(()),
        "branches are exclusive"
    );
    assert_eq!(dup(vec![op_put("b", ""), op_del("a", "c")], vec![]), e);
    assert_eq!(
        dup(vec![op_put("c", ""), op_del("a", "c")], vec![]),
        Ok(()),
        "range end excluded"
    );
    assert_eq!(dup(vec![op_put("a", ""), op_del("a", "")], vec![]), e);
    assert_eq!(
        dup(vec![op_del("a", "z"), op_del("b", "")], vec![]),
        Ok(()),
        "deletes may overlap"
    );
    // etcd compares a "\0" range end literally, so such a delete overlaps no put.
    assert_eq!(
        dup(vec![op_put("b", ""), op_del("a", "\0")], vec![]),
        Ok(())
    );
    // Nested: a put in a child vs a put or delete in the parent.
    let child = |ops: Vec<RequestOp>| {
        op_txn(TxnRequest {
            success: ops,
            ..Default::default()
        })
    };
    assert_eq!(
        dup(vec![op_put("a", ""), child(vec![op_put("a", "")])], vec![]),
        e
    );
    assert_eq!(
        dup(vec![op_del("a", "b"), child(vec![op_put("a", "")])], vec![]),
        e
    );
    assert_eq!(
        dup(vec![child(vec![op_del("a", "b")]), op_put("a", "")], vec![]),
        e
    );
    assert_eq!(
        dup(
            vec![child(vec![op_put("a", "")]), child(vec![op_put("a", "")])],
            vec![]
        ),
        e
    );
    let then_else = op_txn(TxnRequest {
        success: vec![op_put("a", "")],
        failure: vec![op_put("a", "")],
        ..Default::default()
    });
    assert_eq!(dup(vec![then_else], vec![]), Ok(()));
    assert_eq!(
        dup(vec![], vec![op_put("x", ""), op_put("x", "")]),
        e,
        "failure is checked too"
    );
}

#[test]
fn range_response_fields_are_etcds() {
    let mut h = H::new();
    h.put("a", "1");
    let r: RangeResponse = h.sm.range(&rr("a", "", 0)).unwrap();
    assert_eq!(r.header, None);
    assert_eq!(r.count, 1);
}
