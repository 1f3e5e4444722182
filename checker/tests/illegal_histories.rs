//! Hand-made histories with one known anomaly each, and their legal twins.

use gauntlet_checker::gen::{etcd_history, GenConfig};
use gauntlet_checker::models::etcd::{
    EtcdModel, EtcdRequest as Req, EtcdResponse as Resp, KeyValue, RangeRequest, RangeResult,
};
use gauntlet_checker::watch::{
    validate_watches, EventKind, Guarantee, WatchEvent, WatchRequest, WatchResponse, Watcher,
    WriteRevision,
};
use gauntlet_checker::{check, CheckOptions, Operation, Outcome, Verdict};

fn op(
    client_id: u64,
    call_ns: u64,
    return_ns: u64,
    input: Req,
    output: Resp,
) -> Operation<Req, Resp> {
    Operation {
        client_id,
        call_ns,
        return_ns,
        input,
        outcome: Outcome::Ok(output),
    }
}
fn put(key: &str, value: &str) -> Req {
    Req::Put {
        key: key.into(),
        value: value.into(),
        lease: 0,
    }
}
fn get(key: &str) -> Req {
    Req::Range(RangeRequest {
        key: key.into(),
        range_end: None,
        revision: 0,
        limit: 0,
        count_only: false,
    })
}
fn kv(key: &str, value: &str, create: i64, modr: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision: create,
        mod_revision: modr,
        version,
        lease: 0,
    }
}
fn got(kvs: Vec<KeyValue>, revision: i64) -> Resp {
    let count = kvs.len() as i64;
    Resp::Range {
        result: RangeResult {
            kvs,
            count,
            more: false,
        },
        revision,
    }
}
fn verdict(history: &[Operation<Req, Resp>]) -> Verdict {
    check(&EtcdModel, history, &CheckOptions::default())
        .unwrap()
        .verdict
}

#[test]
fn etcd_stale_read_is_caught() {
    let mut h = vec![
        op(1, 0, 10, put("a", "1"), Resp::Put { revision: 2 }),
        op(2, 20, 30, get("a"), got(vec![kv("a", "1", 2, 2, 1)], 2)),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
    // A read that starts after the put returned but sees the empty store.
    h.push(op(3, 40, 50, get("a"), got(vec![], 1)));
    assert_eq!(verdict(&h), Verdict::NotLinearizable);
}

#[test]
fn etcd_lost_write_is_caught() {
    let h = vec![
        op(1, 0, 10, put("a", "1"), Resp::Put { revision: 2 }),
        op(2, 20, 30, put("a", "2"), Resp::Put { revision: 3 }),
        op(3, 40, 50, get("a"), got(vec![kv("a", "1", 2, 2, 1)], 3)),
    ];
    assert_eq!(verdict(&h), Verdict::NotLinearizable);
}

#[test]
fn etcd_non_monotonic_revision_is_caught() {
    let h = vec![
        op(1, 0, 10, put("a", "1"), Resp::Put { revision: 2 }),
        op(2, 20, 30, put("b", "1"), Resp::Put { revision: 2 }),
    ];
    assert_eq!(verdict(&h), Verdict::NotLinearizable);
}

#[test]
fn etcd_unknown_write_may_fill_a_revision_gap() {
    let mut h = vec![
        Operation {
            client_id: 1,
            call_ns: 0,
            return_ns: 100,
            input: put("a", "1"),
            outcome: Outcome::Unknown,
        },
        op(2, 20, 30, put("b", "1"), Resp::Put { revision: 3 }),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
    // Without the unknown write, revision 3 is unexplained.
    h.remove(0);
    assert_eq!(verdict(&h), Verdict::NotLinearizable);
}

#[test]
fn etcd_read_at_past_revision_and_compaction() {
    let h = vec![
        op(1, 0, 10, put("a", "1"), Resp::Put { revision: 2 }),
        op(1, 20, 30, put("a", "2"), Resp::Put { revision: 3 }),
        op(
            2,
            40,
            50,
            Req::Range(RangeRequest {
                key: "a".into(),
                range_end: None,
                revision: 2,
                limit: 0,
                count_only: false,
            }),
            got(vec![kv("a", "1", 2, 2, 1)], 3),
        ),
        op(
            2,
            60,
            70,
            Req::Compact { revision: 3 },
            Resp::Compact { revision: 3 },
        ),
        op(
            2,
            80,
            90,
            Req::Range(RangeRequest {
                key: "a".into(),
                range_end: None,
                revision: 2,
                limit: 0,
                count_only: false,
            }),
            Resp::Error(gauntlet_checker::models::etcd::EtcdError::Compacted),
        ),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn generated_etcd_histories_are_linearizable() {
    for seed in 1..=5 {
        let config = GenConfig {
            seed,
            ops: 2000,
            ..GenConfig::default()
        };
        let history = etcd_history(&config);
        let v = verdict(&history);
        assert_eq!(
            v,
            Verdict::Linearizable,
            "seed {seed}; rerun: cargo run --release -p gauntlet-checker --example etcd_generated -- 2000 {seed}"
        );
    }
}

fn event(kind: EventKind, key: &str, rev: i64) -> WatchEvent {
    WatchEvent {
        kind,
        kv: kv(key, "v", 2, rev, rev - 1),
        prev_kv: None,
    }
}

fn writes() -> Vec<WriteRevision> {
    (2..=5)
        .map(|rev| WriteRevision {
            revision: rev,
            events: vec![event(EventKind::Put, "a", rev)],
        })
        .collect()
}

fn watcher(responses: Vec<WatchResponse>) -> Watcher {
    Watcher {
        id: 7,
        request: WatchRequest {
            key: "a".into(),
            range_end: None,
            start_revision: 2,
            filter_no_put: false,
            filter_no_delete: false,
            prev_kv: false,
        },
        created_revision: 1,
        responses,
    }
}

fn resp(revs: &[i64]) -> WatchResponse {
    WatchResponse {
        revision: *revs.last().unwrap_or(&0),
        events: revs
            .iter()
            .map(|&r| event(EventKind::Put, "a", r))
            .collect(),
        progress_notify: false,
        compact_revision: 0,
        canceled: false,
    }
}

#[test]
fn watch_good_stream_passes() {
    let v = validate_watches(
        &writes(),
        &[watcher(vec![resp(&[2, 3]), resp(&[4]), resp(&[5])])],
    );
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn watch_gap_duplicate_order_and_bookmark_are_caught() {
    let kinds = |responses| -> Vec<Guarantee> {
        validate_watches(&writes(), &[watcher(responses)])
            .into_iter()
            .map(|v| v.guarantee)
            .collect()
    };
    assert!(kinds(vec![resp(&[2]), resp(&[4, 5])]).contains(&Guarantee::Reliable));
    assert!(kinds(vec![resp(&[2, 3]), resp(&[3, 4, 5])]).contains(&Guarantee::Unique));
    assert!(kinds(vec![resp(&[2, 4]), resp(&[3, 5])]).contains(&Guarantee::Ordered));
    assert!(kinds(vec![resp(&[3, 4, 5])]).contains(&Guarantee::Resumable));
    let bookmark = WatchResponse {
        revision: 4,
        events: vec![],
        progress_notify: true,
        compact_revision: 0,
        canceled: false,
    };
    assert!(kinds(vec![resp(&[2, 3]), bookmark, resp(&[4, 5])]).contains(&Guarantee::Bookmarkable));
    let mut phantom = resp(&[2, 3, 4, 5]);
    phantom.events[1].kv.value = "other".into();
    assert!(kinds(vec![phantom]).contains(&Guarantee::CreateModify));
}
