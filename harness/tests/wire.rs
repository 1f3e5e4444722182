//! Wire compatibility: our client against real servers, 3 members each.
//!
//! Every case is written once as an `async fn` taking a running cluster; the
//! `wire_cases!` table instantiates each case for each target. A new target (the
//! reference server, another implementation) is one more line in the table.

mod common;

use std::time::Duration;

use gauntlet_api::etcdserverpb::{self as pb, compare, request_op, response_op};
use gauntlet_api::mvccpb::event::EventType;
use gauntlet_api::rpctypes;
use gauntlet_harness::{Client, ClientConfig, Cluster, Credentials, MemoryRecorder, Outcome};

const EVENT_WAIT: Duration = Duration::from_secs(5);

/// An event as a watcher saw it: (type, value, mod_revision, prev_kv value).
type SeenEvent = (i32, Vec<u8>, i64, Option<Vec<u8>>);

fn put_op(key: &str, value: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request_op::Request::RequestPut(pb::PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })),
    }
}

fn get_op(key: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request_op::Request::RequestRange(pb::RangeRequest {
            key: key.into(),
            ..Default::default()
        })),
    }
}

async fn put_get(cluster: Cluster) {
    let c = cluster.client().await.unwrap();
    let k = format!("{}k", common::prefix("put_get"));
    let p1 = c.put(k.clone(), "v1").await.unwrap();
    let rev1 = p1.header.unwrap().revision;
    let got = c.get(k.clone()).await.unwrap();
    assert_eq!(got.count, 1);
    let kv = &got.kvs[0];
    assert_eq!(
        (kv.key.as_slice(), kv.value.as_slice()),
        (k.as_bytes(), b"v1".as_slice())
    );
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (rev1, rev1, 1)
    );
    let p2 = c
        .put_request(pb::PutRequest {
            key: k.clone().into(),
            value: b"v2".to_vec(),
            prev_kv: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(p2.prev_kv.unwrap().value, b"v1");
    let rev2 = p2.header.unwrap().revision;
    assert_eq!(rev2, rev1 + 1);
    let kv = c.get(k.clone()).await.unwrap().kvs.remove(0);
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (rev1, rev2, 2)
    );
    // Reading at the older revision still sees v1.
    let old = c
        .range(pb::RangeRequest {
            key: k.into(),
            revision: rev1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(old.kvs[0].value, b"v1");
    // Every member's header names the same cluster.
    let h = old.header.unwrap();
    assert_ne!(h.cluster_id, 0);
    assert_ne!(h.member_id, 0);
    assert!(h.raft_term >= 1);
}

async fn prefix_range_with_limit(cluster: Cluster) {
    let c = cluster.client().await.unwrap();
    let p = common::prefix("range");
    for i in 0..5 {
        c.put(format!("{p}{i}"), format!("v{i}")).await.unwrap();
    }
    c.put(format!("{}x", p.trim_end_matches('/')), "outside")
        .await
        .unwrap();
    let key = p.clone().into_bytes();
    let range_end = gauntlet_api::prefix_range_end(&key);
    let limited = c
        .range(pb::RangeRequest {
            key: key.clone(),
            range_end: range_end.clone(),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.kvs.len(), 2);
    assert!(limited.more);
    assert_eq!(limited.count, 5);
    assert_eq!(limited.kvs[0].key, format!("{p}0").into_bytes());
    let desc = c
        .range(pb::RangeRequest {
            key: key.clone(),
            range_end: range_end.clone(),
            sort_order: pb::range_request::SortOrder::Descend as i32,
            sort_target: pb::range_request::SortTarget::Key as i32,
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(desc.kvs[0].key, format!("{p}4").into_bytes());
    let count = c
        .range(pb::RangeRequest {
            key: key.clone(),
            range_end: range_end.clone(),
            count_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((count.count, count.kvs.len()), (5, 0));
    let keys = c
        .range(pb::RangeRequest {
            key,
            range_end,
            keys_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(keys.kvs.iter().all(|kv| kv.value.is_empty()) && keys.kvs.len() == 5);
}

async fn delete(cluster: Cluster) {
    let c = cluster.client().await.unwrap();
    let p = common::prefix("delete");
    for i in 0..3 {
        c.put(format!("{p}{i}"), "v").await.unwrap();
    }
    let one = c.delete(format!("{p}0")).await.unwrap();
    assert_eq!(one.deleted, 1);
    let missing = c.delete(format!("{p}0")).await.unwrap();
    assert_eq!(missing.deleted, 0);
    let key = p.clone().into_bytes();
    let all = c
        .delete_range(pb::DeleteRangeRequest {
            range_end: gauntlet_api::prefix_range_end(&key),
            key,
            prev_kv: true,
        })
        .await
        .unwrap();
    assert_eq!(all.deleted, 2);
    assert_eq!(all.prev_kvs.len(), 2);
    assert_eq!(c.get_prefix(p).await.unwrap().count, 0);
}

async fn txn_with_compares(cluster: Cluster) {
    let c = cluster.client().await.unwrap();
    let k = format!("{}k", common::prefix("txn"));
    let put = c.put(k.clone(), "a").await.unwrap();
    let mod_rev = put.header.unwrap().revision;
    let cmp = |target: compare::CompareTarget,
               result: compare::CompareResult,
               u: compare::TargetUnion| pb::Compare {
        result: result as i32,
        target: target as i32,
        key: k.clone().into(),
        range_end: vec![],
        target_union: Some(u),
    };
    use compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    // Optimistic concurrency on mod_revision, as Kubernetes does it: succeeds once.
    let txn = pb::TxnRequest {
        compare: vec![
            cmp(T::Mod, R::Equal, U::ModRevision(mod_rev)),
            cmp(T::Value, R::Equal, U::Value(b"a".to_vec())),
        ],
        success: vec![put_op(&k, "b"), get_op(&k)],
        failure: vec![get_op(&k)],
    };
    let ok = c.txn(txn.clone()).await.unwrap();
    assert!(ok.succeeded);
    assert_eq!(ok.responses.len(), 2);
    match &ok.responses[1].response {
        Some(response_op::Response::ResponseRange(r)) => assert_eq!(r.kvs[0].value, b"b"),
        other => panic!("expected a range response, got {other:?}"),
    }
    let again = c.txn(txn).await.unwrap();
    assert!(!again.succeeded);
    match &again.responses[0].response {
        Some(response_op::Response::ResponseRange(r)) => assert_eq!(r.kvs[0].version, 2),
        other => panic!("expected a range response, got {other:?}"),
    }
    // create_revision == 0 means "does not exist".
    let absent = format!("{}absent", common::prefix("txn"));
    let create = pb::TxnRequest {
        compare: vec![pb::Compare {
            result: R::Equal as i32,
            target: T::Create as i32,
            key: absent.clone().into(),
            range_end: vec![],
            target_union: Some(U::CreateRevision(0)),
        }],
        success: vec![put_op(&absent, "new")],
        failure: vec![],
    };
    assert!(c.txn(create.clone()).await.unwrap().succeeded);
    assert!(!c.txn(create).await.unwrap().succeeded);
    let ver = pb::TxnRequest {
        compare: vec![cmp(T::Version, R::Greater, U::Version(1))],
        success: vec![],
        failure: vec![],
    };
    assert!(c.txn(ver).await.unwrap().succeeded);
    // Two puts of one key in one txn are rejected with etcd's exact error.
    let dup = pb::TxnRequest {
        compare: vec![],
        success: vec![put_op(&k, "x"), put_op(&k, "y")],
        failure: vec![],
    };
    let err = c.txn(dup).await.unwrap_err();
    assert!(err.is(rpctypes::DUPLICATE_KEY), "{err}");
}

async fn watch_many_watchers(cluster: Cluster) {
    let c = cluster.client().await.unwrap();
    let p = common::prefix("watch");
    let before = c
        .put(format!("{p}old"), "o")
        .await
        .unwrap()
        .header
        .unwrap()
        .revision;
    let key = |s: &str| format!("{p}{s}").into_bytes();
    let (mut stream, created) = c
        .watch(pb::WatchCreateRequest {
            key: key("a"),
            watch_id: 0,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(created.created);
    let w_key = created.watch_id;
    let prefix_key = p.clone().into_bytes();
    let w_prefix = stream
        .create(pb::WatchCreateRequest {
            range_end: gauntlet_api::prefix_range_end(&prefix_key),
            key: prefix_key.clone(),
            prev_kv: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(w_prefix.created);
    let w_past = stream
        .create(pb::WatchCreateRequest {
            key: key("old"),
            start_revision: before,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids = [w_key, w_prefix.watch_id, w_past.watch_id];
    assert_eq!(
        ids.iter().collect::<std::collections::HashSet<_>>().len(),
        3,
        "watch ids must differ: {ids:?}"
    );
    c.put(format!("{p}a"), "1").await.unwrap();
    c.put(format!("{p}a"), "2").await.unwrap();
    let del_rev = c
        .delete(format!("{p}a"))
        .await
        .unwrap()
        .header
        .unwrap()
        .revision;

    let mut events: std::collections::HashMap<i64, Vec<SeenEvent>> = Default::default();
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    while events.get(&w_key).map_or(0, Vec::len) < 3
        || events.get(&w_prefix.watch_id).map_or(0, Vec::len) < 3
        || events.get(&w_past.watch_id).map_or(0, Vec::len) < 1
    {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let r = stream
            .recv(left)
            .await
            .unwrap_or_else(|e| panic!("waiting for events, have {events:?}: {e}"));
        for e in r.events {
            let kv = e.kv.unwrap_or_default();
            events.entry(r.watch_id).or_default().push((
                e.r#type,
                kv.value,
                kv.mod_revision,
                e.prev_kv.map(|p| p.value),
            ));
        }
    }
    let put = EventType::Put as i32;
    let del = EventType::Delete as i32;
    let on_key = &events[&w_key];
    assert_eq!(
        on_key.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![put, put, del]
    );
    assert_eq!(on_key[2].2, del_rev);
    let on_prefix = &events[&w_prefix.watch_id];
    assert_eq!(
        on_prefix[1].3.as_deref(),
        Some(b"1".as_slice()),
        "prev_kv of the second put"
    );
    let on_past = &events[&w_past.watch_id];
    assert_eq!(
        (on_past[0].1.as_slice(), on_past[0].2),
        (b"o".as_slice(), before)
    );
    // Cancel one watcher; the others keep working.
    let canceled = stream.cancel(w_key).await.unwrap();
    assert!(canceled.canceled);
    c.put(format!("{p}b"), "3").await.unwrap();
    let r = stream.wait_for(|r| !r.events.is_empty()).await.unwrap();
    assert_eq!(r.watch_id, w_prefix.watch_id);
}

async fn lease_grant_keepalive_revoke(cluster: Cluster) {
    let c = cluster.client().await.unwrap();
    let k = format!("{}k", common::prefix("lease"));
    let grant = c
        .lease_grant(pb::LeaseGrantRequest { ttl: 30, id: 0 })
        .await
        .unwrap();
    assert!(grant.id != 0 && grant.ttl == 30 && grant.error.is_empty());
    c.put_request(pb::PutRequest {
        key: k.clone().into(),
        value: b"v".to_vec(),
        lease: grant.id,
        ..Default::default()
    })
    .await
    .unwrap();
    let (mut keeper, first) = c.lease_keep_alive(grant.id).await.unwrap();
    assert_eq!((first.id, first.ttl), (grant.id, 30));
    assert_eq!(keeper.keep_alive().await.unwrap().ttl, 30);
    let ttl = c
        .lease_time_to_live(pb::LeaseTimeToLiveRequest {
            id: grant.id,
            keys: true,
        })
        .await
        .unwrap();
    assert_eq!(ttl.granted_ttl, 30);
    assert!(ttl.ttl > 0 && ttl.ttl <= 30);
    assert_eq!(ttl.keys, vec![k.clone().into_bytes()]);
    let leases = c.lease_leases(pb::LeaseLeasesRequest {}).await.unwrap();
    assert!(leases.leases.iter().any(|l| l.id == grant.id));
    c.lease_revoke(pb::LeaseRevokeRequest { id: grant.id })
        .await
        .unwrap();
    assert_eq!(
        c.get(k).await.unwrap().count,
        0,
        "revoking deletes attached keys"
    );
    assert_eq!(
        keeper.keep_alive().await.unwrap().ttl,
        0,
        "keep-alive of a revoked lease answers TTL 0"
    );
    let err = c
        .lease_revoke(pb::LeaseRevokeRequest { id: grant.id })
        .await
        .unwrap_err();
    assert!(err.is(rpctypes::LEASE_NOT_FOUND), "{err}");
}

async fn member_list(cluster: Cluster) {
    let c = cluster.client().await.unwrap();
    let list = c
        .member_list(pb::MemberListRequest::default())
        .await
        .unwrap();
    let mut names: Vec<_> = list.members.iter().map(|m| m.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["m0", "m1", "m2"]);
    let mut urls: Vec<_> = list
        .members
        .iter()
        .flat_map(|m| m.client_ur_ls.clone())
        .collect();
    urls.sort();
    let mut want = cluster.endpoints();
    want.sort();
    assert_eq!(urls, want);
    assert!(list.members.iter().all(|m| !m.is_learner && m.id != 0));
}

async fn status(cluster: Cluster) {
    let c = cluster.client().await.unwrap();
    let version = match cluster.target() {
        gauntlet_harness::Target::Etcd { version } => version.clone(),
        _ => String::new(),
    };
    let mut leaders = Vec::new();
    for i in 0..3 {
        let s = c
            .pinned(i)
            .unwrap()
            .status(pb::StatusRequest {})
            .await
            .unwrap();
        assert!(
            s.version.starts_with(&version),
            "{} vs {version}",
            s.version
        );
        assert!(
            s.db_size > 0 && s.raft_index > 0 && s.raft_term > 0,
            "member {i}: db size {}, raft index {}, raft term {} (all must be > 0)",
            s.db_size,
            s.raft_index,
            s.raft_term
        );
        leaders.push(s.leader);
    }
    leaders.dedup();
    assert_eq!(leaders.len(), 1);
    let hkv: Vec<_> = futures_join(&c).await;
    assert!(
        hkv.windows(2).all(|w| w[0] == w[1]),
        "HashKV differs across members: {hkv:?}"
    );
}

async fn futures_join(c: &Client) -> Vec<u32> {
    c.put("/gauntlet-test/status/k", "v").await.unwrap();
    let rev = c
        .get("/gauntlet-test/status/k")
        .await
        .unwrap()
        .header
        .unwrap()
        .revision;
    let mut out = Vec::new();
    for i in 0..3 {
        let m = c.pinned(i).unwrap();
        // A linearizable read on the member first: it returns only once that member has
        // applied everything committed, so `rev` is not in its future (a lagging follower
        // would answer HashKV with "future revision").
        m.get("/gauntlet-test/status/k").await.unwrap();
        let h = m
            .hash_kv(pb::HashKvRequest { revision: rev })
            .await
            .unwrap();
        out.push(h.hash);
    }
    out
}

async fn errors_are_etcds(cluster: Cluster) {
    let rec = std::sync::Arc::new(MemoryRecorder::default());
    let c = cluster.client().await.unwrap().with_recorder(rec.clone());
    let err = c.put("", "v").await.unwrap_err();
    assert!(err.is(rpctypes::EMPTY_KEY), "{err}");
    let k = format!("{}k", common::prefix("errors"));
    let r1 = c
        .put(k.clone(), "1")
        .await
        .unwrap()
        .header
        .unwrap()
        .revision;
    c.put(k.clone(), "2").await.unwrap();
    c.compact(pb::CompactionRequest {
        revision: r1 + 1,
        physical: true,
    })
    .await
    .unwrap();
    let err = c
        .range(pb::RangeRequest {
            key: k.clone().into(),
            revision: r1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.is(rpctypes::COMPACTED), "{err}");
    let err = c
        .range(pb::RangeRequest {
            key: k.into(),
            revision: 1 << 40,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.is(rpctypes::FUTURE_REV), "{err}");
    // The recorder saw every call, with outcomes from the one classifier.
    let ops = rec.operations();
    assert_eq!(ops.len(), 6);
    assert_eq!(ops[0].outcome, Outcome::Failed);
    assert_eq!(ops[1].outcome, Outcome::Ok);
    assert!(ops
        .iter()
        .all(|o| o.complete_ns >= o.invoke_ns && o.client_id == c.client_id()));
}

async fn auth_token_flow(cluster: Cluster) {
    let c = cluster.client().await.unwrap();
    c.user_add(pb::AuthUserAddRequest {
        name: "root".into(),
        password: "rootpw".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    c.user_grant_role(pb::AuthUserGrantRoleRequest {
        user: "root".into(),
        role: "root".into(),
    })
    .await
    .unwrap();
    c.auth_enable(pb::AuthEnableRequest {}).await.unwrap();
    let err = c.put("/gauntlet-test/auth/k", "v").await.unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::InvalidArgument), "{err}");
    assert!(err.is(rpctypes::USER_EMPTY), "{err}");
    let mut cfg = ClientConfig::new(cluster.endpoints());
    cfg.credentials = Some(Credentials::parse("root:wrong").unwrap());
    let err = Client::connect(cfg.clone()).await.unwrap_err();
    assert!(err.is(rpctypes::AUTH_FAILED), "{err}");
    cfg.credentials = Some(Credentials::parse("root:rootpw").unwrap());
    let root = Client::connect(cfg).await.unwrap();
    root.put("/gauntlet-test/auth/k", "v").await.unwrap();
    assert_eq!(root.get("/gauntlet-test/auth/k").await.unwrap().count, 1);
    root.auth_disable(pb::AuthDisableRequest {}).await.unwrap();
    c.put("/gauntlet-test/auth/k", "again").await.unwrap();
}

macro_rules! wire_cases {
    ($($module:ident => $target:literal: [$($case:ident),* $(,)?]),* $(,)?) => {$(
        mod $module {
            use super::*;
            async fn cluster() -> Cluster { common::start($target, 3).await }
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() { super::$case(cluster().await).await }
            )*
        }
    )*};
}

wire_cases! {
    etcd_3_5_1 => "etcd@3.5.1": [put_get, prefix_range_with_limit, delete, txn_with_compares, watch_many_watchers,
        lease_grant_keepalive_revoke, member_list, status, errors_are_etcds, auth_token_flow],
    etcd_3_4_23 => "etcd@3.4.23": [put_get, prefix_range_with_limit, delete, txn_with_compares, watch_many_watchers,
        lease_grant_keepalive_revoke, member_list, status, errors_are_etcds, auth_token_flow],
    reference => "reference": [put_get, prefix_range_with_limit, delete, txn_with_compares, watch_many_watchers,
        lease_grant_keepalive_revoke, member_list, status, errors_are_etcds, auth_token_flow],
}
