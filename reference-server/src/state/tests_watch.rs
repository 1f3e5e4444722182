//! Watch hub tests: replay, compaction, filters, prev_kv, txns, slow watchers, restore.

use std::time::{Duration, Instant};

use gauntlet_api::etcdserverpb::{
    request_op, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest,
};
use gauntlet_api::mvccpb::{event::EventType, Event};
use tokio::sync::mpsc::{self, error::TryRecvError, Receiver};

use super::tests_kv::{put, H};
use super::*;

fn spec(key: &str, end: &str, start: i64) -> WatchSpec {
    WatchSpec {
        key: key.into(),
        range_end: end.into(),
        start_revision: start,
        ..Default::default()
    }
}

/// Everything currently in the channel.
fn drain(rx: &mut Receiver<WatchUpdate>) -> Vec<WatchUpdate> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(u) => out.push(u),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => return out,
        }
    }
}

/// (revision, [(type, key, value)]) per update, for compact assertions.
/// (type 'P'/'D', key, value) of one event.
type Brief = (char, String, String);

/// Splits updates that carry several revisions (a catch-up merges them) into one
/// update per revision, so assertions see the per-revision stream.
fn per_revision(us: &[WatchUpdate]) -> Vec<WatchUpdate> {
    let mut out: Vec<WatchUpdate> = Vec::new();
    for u in us {
        let WatchUpdate::Events { events, .. } = u else {
            out.push(u.clone());
            continue;
        };
        for e in events {
            let rev = e.kv.as_ref().unwrap().mod_revision;
            match out.last_mut() {
                Some(WatchUpdate::Events { revision, events }) if *revision == rev => {
                    events.push(e.clone());
                }
                _ => out.push(WatchUpdate::Events {
                    revision: rev,
                    events: vec![e.clone()],
                }),
            }
        }
    }
    out
}

/// Counts the revisions in `us` (merged catch-up updates count each of theirs).
fn revisions_in(us: &[WatchUpdate]) -> usize {
    per_revision(us).len()
}

fn brief(us: &[WatchUpdate]) -> Vec<(i64, Vec<Brief>)> {
    per_revision(us)
        .iter()
        .map(|u| match u {
            WatchUpdate::Events { revision, events } => (
                *revision,
                events
                    .iter()
                    .map(|e| {
                        let kv = e.kv.as_ref().unwrap();
                        let t = if e.r#type == EventType::Put as i32 {
                            'P'
                        } else {
                            'D'
                        };
                        (
                            t,
                            String::from_utf8_lossy(&kv.key).into(),
                            String::from_utf8_lossy(&kv.value).into(),
                        )
                    })
                    .collect(),
            ),
            WatchUpdate::Compacted { compact_revision } => (-compact_revision, vec![]),
            WatchUpdate::Progress { .. } => panic!("no progress was requested"),
        })
        .collect()
}

fn ev(t: char, k: &str, v: &str) -> (char, String, String) {
    (t, k.into(), v.into())
}

#[test]
fn replays_history_then_follows_live() {
    let mut h = H::new();
    h.put("a", "1"); // 2
    h.put("b", "1"); // 3
    h.del("a", ""); // 4
    let hub = h.sm.watch_hub();
    let (tx, mut rx) = mpsc::channel(16);
    let id = hub.watch(spec("a", "", 2), tx);
    assert_eq!(
        brief(&drain(&mut rx)),
        vec![(2, vec![ev('P', "a", "1")]), (4, vec![ev('D', "a", "")])]
    );
    assert_eq!(hub.progress(id), Some(4));
    h.put("b", "2"); // 5: not matching
    assert_eq!(hub.progress(id), Some(5));
    h.put("a", "2"); // 6
    assert_eq!(brief(&drain(&mut rx)), vec![(6, vec![ev('P', "a", "2")])]);
    // A delete event carries the key and its revision only.
    h.del("a", "");
    let us = drain(&mut rx);
    let WatchUpdate::Events { events, .. } = &us[0] else {
        panic!()
    };
    let kv = events[0].kv.clone().unwrap();
    assert_eq!((kv.mod_revision, kv.create_revision, kv.version), (7, 0, 0));
    hub.cancel(id);
    h.put("a", "3");
    assert!(drain(&mut rx).is_empty());
    assert_eq!(hub.progress(id), None);
    assert_eq!(hub.watchers_total(), 0);
}

#[test]
fn start_revision_zero_and_future() {
    let mut h = H::new();
    h.put("a", "1"); // 2
    let hub = h.sm.watch_hub();
    let (tx, mut now) = mpsc::channel(16);
    hub.watch(spec("a", "", 0), tx);
    let (tx, mut later) = mpsc::channel(16);
    hub.watch(spec("a", "", 4), tx);
    h.put("a", "2"); // 3
    h.put("a", "3"); // 4
    assert_eq!(
        brief(&drain(&mut now))
            .iter()
            .map(|u| u.0)
            .collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert_eq!(
        brief(&drain(&mut later))
            .iter()
            .map(|u| u.0)
            .collect::<Vec<_>>(),
        vec![4]
    );
}

#[test]
fn compacted_start_revision() {
    let mut h = H::new();
    for v in ["1", "2", "3", "4"] {
        h.put("a", v); // 2..=5
    }
    h.compact(4).unwrap();
    let hub = h.sm.watch_hub();
    let (tx, mut rx) = mpsc::channel(4);
    let id = hub.watch(spec("a", "", 3), tx);
    assert_eq!(
        drain(&mut rx),
        vec![WatchUpdate::Compacted {
            compact_revision: 4
        }]
    );
    assert_eq!(hub.progress(id), None, "the watcher is gone");
    // As in etcd, the compact revision itself is still watchable.
    let (tx, mut rx) = mpsc::channel(4);
    hub.watch(spec("a", "", 4), tx);
    assert_eq!(
        brief(&drain(&mut rx)),
        vec![(4, vec![ev('P', "a", "3")]), (5, vec![ev('P', "a", "4")])]
    );
}

#[test]
fn filters_and_ranges() {
    let mut h = H::new();
    let hub = h.sm.watch_hub();
    let (tx, mut no_put) = mpsc::channel(16);
    hub.watch(
        WatchSpec {
            no_put: true,
            ..spec("a", "\0", 0)
        },
        tx,
    );
    let (tx, mut no_del) = mpsc::channel(16);
    hub.watch(
        WatchSpec {
            no_delete: true,
            ..spec("a/", "a0", 0)
        },
        tx,
    );
    h.put("a/1", "x"); // 2
    h.put("b", "x"); // 3
    h.del("a/1", ""); // 4
    h.del("b", ""); // 5
    assert_eq!(
        brief(&drain(&mut no_put)),
        vec![(4, vec![ev('D', "a/1", "")]), (5, vec![ev('D', "b", "")])]
    );
    assert_eq!(
        brief(&drain(&mut no_del)),
        vec![(2, vec![ev('P', "a/1", "x")])]
    );
    // Replayed history is filtered the same way.
    let (tx, mut replay) = mpsc::channel(16);
    hub.watch(
        WatchSpec {
            no_delete: true,
            ..spec("\0", "\0", 1)
        },
        tx,
    );
    assert_eq!(
        brief(&drain(&mut replay)),
        vec![(2, vec![ev('P', "a/1", "x")]), (3, vec![ev('P', "b", "x")])]
    );
}

fn prev_values(us: &[WatchUpdate]) -> Vec<Option<String>> {
    us.iter()
        .flat_map(|u| match u {
            WatchUpdate::Events { events, .. } => events.clone(),
            WatchUpdate::Compacted { .. } => vec![],
            WatchUpdate::Progress { .. } => panic!("no progress was requested"),
        })
        .map(|e: Event| e.prev_kv.map(|kv| String::from_utf8(kv.value).unwrap()))
        .collect()
}

#[test]
fn prev_kv_live_and_replayed() {
    let mut h = H::new();
    let hub = h.sm.watch_hub();
    let (tx, mut live) = mpsc::channel(16);
    hub.watch(
        WatchSpec {
            prev_kv: true,
            ..spec("a", "", 0)
        },
        tx,
    );
    h.put("a", "1"); // 2
    h.put("a", "2"); // 3
    h.del("a", ""); // 4
    h.put("a", "3"); // 5
    let want = vec![None, Some("1".to_string()), Some("2".to_string()), None];
    assert_eq!(prev_values(&drain(&mut live)), want);
    h.compact(3).unwrap(); // keeps a@3, which event 4 points at
    let (tx, mut replay) = mpsc::channel(16);
    hub.watch(
        WatchSpec {
            prev_kv: true,
            ..spec("a", "", 3)
        },
        tx,
    );
    // Event 3's previous version (a@2) was compacted away, so, as in etcd (whose prev_kv read
    // at revision 2 would fail as compacted), it comes without one.
    assert_eq!(
        prev_values(&drain(&mut replay)),
        vec![None, Some("2".to_string()), None]
    );
    // Without prev_kv, none.
    let (tx, mut plain) = mpsc::channel(16);
    hub.watch(spec("a", "", 3), tx);
    assert_eq!(prev_values(&drain(&mut plain)), vec![None, None, None]);
}

#[test]
fn txn_events_arrive_as_one_update_in_order() {
    let mut h = H::new();
    h.put("c", "0"); // 2
    let hub = h.sm.watch_hub();
    let (tx, mut rx) = mpsc::channel(16);
    hub.watch(spec("\0", "\0", 0), tx);
    let op = |r: request_op::Request| RequestOp { request: Some(r) };
    h.txn(TxnRequest {
        compare: vec![],
        success: vec![
            op(request_op::Request::RequestPut(put("b", "1"))),
            op(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: b"c".to_vec(),
                    ..Default::default()
                },
            )),
            op(request_op::Request::RequestPut(put("a", "1"))),
        ],
        failure: vec![],
    })
    .unwrap();
    let want = vec![(
        3,
        vec![ev('P', "b", "1"), ev('D', "c", ""), ev('P', "a", "1")],
    )];
    assert_eq!(brief(&drain(&mut rx)), want);
    let (tx, mut replay) = mpsc::channel(16);
    hub.watch(spec("\0", "\0", 3), tx);
    assert_eq!(brief(&drain(&mut replay)), want);
}

#[test]
fn lease_revoke_events_share_a_revision() {
    let mut h = H::new();
    h.apply(Op::LeaseGrant(
        gauntlet_api::etcdserverpb::LeaseGrantRequest { ttl: 10, id: 1 },
    ))
    .unwrap();
    h.put_req(PutRequest {
        lease: 1,
        ..put("x", "1")
    })
    .unwrap();
    h.put_req(PutRequest {
        lease: 1,
        ..put("y", "1")
    })
    .unwrap();
    let hub = h.sm.watch_hub();
    let (tx, mut rx) = mpsc::channel(16);
    hub.watch(spec("\0", "\0", 0), tx);
    h.apply(Op::LeaseRevoke(
        gauntlet_api::etcdserverpb::LeaseRevokeRequest { id: 1 },
    ))
    .unwrap();
    assert_eq!(
        brief(&drain(&mut rx)),
        vec![(4, vec![ev('D', "x", ""), ev('D', "y", "")])]
    );
}

/// Without a runtime a full channel is caught up lazily, by apply and by `pump`.
#[test]
fn slow_watcher_without_runtime_catches_up_lazily() {
    let mut h = H::new();
    let hub = h.sm.watch_hub();
    let (tx, mut rx) = mpsc::channel(2);
    let id = hub.watch(spec("k", "", 0), tx);
    for i in 0..500 {
        h.put("k", &i.to_string());
    }
    assert_eq!(hub.progress(id), None, "behind");
    let mut got = Vec::new();
    while got.len() < 500 {
        let batch = drain(&mut rx);
        assert!(!batch.is_empty(), "stalled after {}", got.len());
        got.extend(batch);
        hub.pump();
    }
    let revs: Vec<i64> = brief(&got).iter().map(|u| u.0).collect();
    assert_eq!(revs, (2..502).collect::<Vec<_>>());
    hub.pump();
    assert_eq!(hub.progress(id), Some(501));
    h.put("k", "live");
    assert_eq!(
        brief(&drain(&mut rx)),
        vec![(502, vec![ev('P', "k", "live")])]
    );
}

/// The brief's scenario: 10k writes while a watcher with a tiny channel reads nothing; apply
/// must not wait for it, and it must then receive every revision, in order, once.
#[test]
fn slow_watcher_with_runtime_gets_everything_and_never_blocks_apply() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut h = H::new();
    let hub = h.sm.watch_hub();
    let (tx, mut rx) = mpsc::channel(1);
    let id = rt.block_on(async {
        hub.watch(
            WatchSpec {
                prev_kv: true,
                ..spec("k", "", 0)
            },
            tx,
        )
    });
    let t0 = Instant::now();
    for i in 0..10_000 {
        h.put("k", &i.to_string());
    }
    let apply_time = t0.elapsed();
    assert_eq!(hub.progress(id), None);
    let got = rt.block_on(async {
        let (mut got, mut revisions) = (Vec::new(), 0);
        while revisions < 10_000 {
            match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
                Ok(Some(u)) => {
                    revisions += revisions_in(std::slice::from_ref(&u));
                    got.push(u);
                }
                other => panic!("stalled after {revisions}: {other:?}"),
            }
        }
        assert!(
            got.len() < 10_000,
            "the catch-up merges revisions into fewer updates"
        );
        per_revision(&got)
    });
    for (i, u) in got.iter().enumerate() {
        let WatchUpdate::Events { revision, events } = u else {
            panic!("{u:?}")
        };
        assert_eq!(*revision, i as i64 + 2);
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].kv.as_ref().unwrap().value,
            i.to_string().into_bytes()
        );
        let prev = events[0].prev_kv.as_ref().map(|kv| kv.value.clone());
        assert_eq!(prev, i.checked_sub(1).map(|p| p.to_string().into_bytes()));
    }
    // Turns synced again; then live updates flow.
    let deadline = Instant::now() + Duration::from_secs(5);
    while hub.progress(id).is_none() {
        assert!(Instant::now() < deadline, "never resynced");
        std::thread::sleep(Duration::from_millis(5));
    }
    h.put("k", "live");
    let u = rt.block_on(async { rx.recv().await.unwrap() });
    assert_eq!(brief(&[u]), vec![(10_002, vec![ev('P', "k", "live")])]);
    eprintln!("10k applies with a stalled watcher took {apply_time:?}");
    assert!(apply_time < Duration::from_secs(20));
}

/// Many watchers with random channel sizes and readers while writes and compactions run on
/// another thread: each watcher's stream is exactly the expected one, possibly cut short by
/// a single final `Compacted`.
#[test]
fn concurrent_watchers_see_exact_streams() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut h = H::new();
    let hub = h.sm.watch_hub();
    const N: usize = 3000;
    let mut readers = Vec::new();
    for (w, cap) in [1usize, 3, 64, 1024].into_iter().enumerate() {
        let (tx, mut rx) = mpsc::channel(cap);
        let key = format!("p{w}");
        rt.block_on(async { hub.watch(spec(&key, "", 0), tx) });
        readers.push(rt.spawn(async move {
            let (mut got, mut revisions) = (Vec::new(), 0);
            while let Ok(Some(u)) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                let done = matches!(u, WatchUpdate::Compacted { .. });
                revisions += revisions_in(std::slice::from_ref(&u));
                got.push(u);
                if done || revisions == N / 4 {
                    break;
                }
                if got.len() % 97 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            got
        }));
    }
    let writer = std::thread::spawn(move || {
        for i in 0..N {
            h.put(&format!("p{}", i % 4), &i.to_string());
            if i % 700 == 699 {
                let at = h.sm.revision() - 50;
                h.compact(at).unwrap();
            }
        }
        h
    });
    let _h = writer.join().unwrap();
    for (w, r) in readers.into_iter().enumerate() {
        let got = per_revision(&rt.block_on(r).unwrap());
        let mut expect = (0..N)
            .filter(|i| i % 4 == w)
            .map(|i| (i as i64 + 2, i.to_string()));
        for (n, u) in got.iter().enumerate() {
            match u {
                WatchUpdate::Events { revision, events } => {
                    let (rev, val) = expect.next().unwrap();
                    assert_eq!(
                        (*revision, events.len()),
                        (rev, 1),
                        "watcher {w} update {n}"
                    );
                    assert_eq!(events[0].kv.as_ref().unwrap().value, val.into_bytes());
                }
                WatchUpdate::Compacted { .. } => assert_eq!(n, got.len() - 1),
                WatchUpdate::Progress { .. } => panic!("no progress was requested"),
            }
        }
        let complete = got.len() == N / 4;
        let compacted = matches!(got.last(), Some(WatchUpdate::Compacted { .. }));
        assert!(complete || compacted, "watcher {w}: {} updates", got.len());
    }
}

#[test]
fn restore_replays_to_watchers_or_compacts_them() {
    let mut src = H::new();
    let mut dst = H::new();
    src.put("a", "1"); // 2
    dst.put("a", "1"); // 2 (same history so far)
    let hub = dst.sm.watch_hub();
    let (tx, mut behind) = mpsc::channel(16);
    hub.watch(spec("a", "", 0), tx);
    src.put("a", "2"); // 3
    src.put("a", "3"); // 4
    src.put("a", "4"); // 5
    let snap = src.sm.snapshot().unwrap();
    dst.sm.restore(src.idx, &snap).unwrap();
    // Next revision 3 is still in the snapshot's history.
    assert_eq!(
        brief(&drain(&mut behind))
            .iter()
            .map(|u| u.0)
            .collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    // Now a snapshot compacted past a watcher's next revision.
    src.put("a", "5"); // 6
    src.put("a", "6"); // 7
    src.compact(7).unwrap();
    let (tx, mut stale) = mpsc::channel(16);
    let hub2 = dst.sm.watch_hub();
    let id = hub2.watch(spec("a", "", 0), tx); // next revision 6
    let snap = src.sm.snapshot().unwrap();
    dst.sm.restore(src.idx, &snap).unwrap();
    assert_eq!(
        drain(&mut stale),
        vec![WatchUpdate::Compacted {
            compact_revision: 7
        }]
    );
    assert_eq!(hub2.progress(id), None);
    assert_eq!(dst.sm.revision(), 7);
}

#[test]
fn cancel_during_catch_up_stops_the_stream() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut h = H::new();
    let hub = h.sm.watch_hub();
    let (tx, mut rx) = mpsc::channel(1);
    let id = rt.block_on(async { hub.watch(spec("k", "", 0), tx) });
    for i in 0..100 {
        h.put("k", &i.to_string());
    }
    hub.cancel(id);
    let got = rt.block_on(async {
        let mut n = 0;
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            n += 1;
        }
        n
    });
    assert!(got <= 2, "got {got} updates after cancel");
    assert_eq!(hub.watchers_total(), 0);
}

#[test]
fn dropped_receivers_are_forgotten() {
    let mut h = H::new();
    let hub = h.sm.watch_hub();
    let (tx, rx) = mpsc::channel(4);
    hub.watch(spec("k", "", 0), tx);
    drop(rx);
    h.put("k", "1");
    assert_eq!(hub.watchers_total(), 0);
}

/// A progress marker is queued behind the events already queued for the watcher, so a
/// stream that sends what it dequeues in order never announces a revision before its
/// events (the chaos suite caught the old out-of-band answer doing exactly that).
#[test]
fn progress_markers_follow_queued_events() {
    let mut h = H::new();
    let hub = h.sm.watch_hub();
    let (tx, mut rx) = mpsc::channel(16);
    let id = hub.watch(spec("a", "\0", 0), tx);
    h.put("a", "1"); // 2
    h.put("b", "1"); // 3
    assert!(hub.request_progress(id, 7));
    let us = drain(&mut rx);
    assert_eq!(us.len(), 3, "{us:?}");
    assert!(matches!(us[0], WatchUpdate::Events { revision: 2, .. }));
    assert!(matches!(us[1], WatchUpdate::Events { revision: 3, .. }));
    assert_eq!(
        us[2],
        WatchUpdate::Progress {
            revision: 3,
            token: 7
        }
    );
    // A watcher that is catching up has no progress to report; a gone one neither.
    let (tx2, _rx2) = mpsc::channel(1);
    let behind = hub.watch(spec("a", "\0", 2), tx2);
    assert!(!hub.request_progress(behind, 1));
    hub.cancel(id);
    assert!(!hub.request_progress(id, 1));
}
