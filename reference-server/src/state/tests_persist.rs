//! Persistence: reopen, crash copies, hashes, snapshots.

use std::path::Path;

use gauntlet_api::etcdserverpb::{
    compare, request_op, CompactionRequest, Compare, DeleteRangeRequest, LeaseCheckpoint,
    LeaseCheckpointRequest, LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};

use super::tests_kv::H;
use super::*;

/// A deterministic command stream (xorshift seeded by `seed`) exercising every command kind.
pub(super) fn commands(seed: u64, n: usize) -> Vec<Command> {
    let mut x = seed.max(1);
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut rev_guess = 1i64;
    let mut out = Vec::new();
    for i in 0..n {
        let key = |r: u64| format!("k{:02}", r).into_bytes();
        let op = match next(10) {
            0..=3 => {
                rev_guess += 1;
                Op::Put(PutRequest {
                    key: key(next(20)),
                    value: format!("v{i}").into_bytes(),
                    lease: if next(4) == 0 {
                        (next(3) + 1) as i64
                    } else {
                        0
                    },
                    ..Default::default()
                })
            }
            4 => Op::DeleteRange(DeleteRangeRequest {
                key: key(next(20)),
                range_end: if next(2) == 0 { vec![] } else { key(next(20)) },
                prev_kv: false,
            }),
            5 => {
                let a = next(10);
                // A value compare reads the key's current record, which may have been
                // written earlier in the same apply group (not yet in sled).
                Op::Txn(TxnRequest {
                    compare: vec![Compare {
                        result: compare::CompareResult::NotEqual as i32,
                        target: compare::CompareTarget::Value as i32,
                        key: key(a),
                        range_end: vec![],
                        target_union: Some(compare::TargetUnion::Value(b"never".to_vec())),
                    }],
                    success: vec![
                        RequestOp {
                            request: Some(request_op::Request::RequestPut(PutRequest {
                                key: key(a),
                                value: b"t".to_vec(),
                                ..Default::default()
                            })),
                        },
                        RequestOp {
                            request: Some(request_op::Request::RequestPut(PutRequest {
                                key: key(a + 10),
                                value: b"t".to_vec(),
                                ..Default::default()
                            })),
                        },
                    ],
                    failure: vec![],
                })
            }
            6 => Op::LeaseGrant(LeaseGrantRequest {
                ttl: 30,
                id: (next(3) + 1) as i64,
            }),
            7 => Op::LeaseRevoke(LeaseRevokeRequest {
                id: (next(3) + 1) as i64,
            }),
            8 => Op::LeaseCheckpoint(LeaseCheckpointRequest {
                checkpoints: vec![LeaseCheckpoint {
                    id: (next(3) + 1) as i64,
                    remaining_ttl: next(30) as i64,
                }],
            }),
            _ => Op::Compaction(CompactionRequest {
                revision: rev_guess - next(4) as i64,
                physical: true,
            }),
        };
        out.push(Command::internal(op));
    }
    out
}

/// Everything observable, for comparisons.
#[derive(Debug, PartialEq)]
pub(super) struct Observed {
    applied: u64,
    revision: i64,
    compact: i64,
    hash: u32,
    all: Vec<gauntlet_api::mvccpb::KeyValue>,
    leases: Vec<LeaseInfo>,
}

pub(super) fn observe(sm: &StateMachine) -> Observed {
    let all = sm
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        })
        .unwrap()
        .kvs;
    Observed {
        applied: sm.applied_index(),
        revision: sm.revision(),
        compact: sm.compact_revision(),
        hash: sm.hash_kv(0).unwrap().hash,
        all,
        leases: sm.leases(),
    }
}

/// Opens the db in `p`, waiting for the previous owner's sled threads to let go of the
/// directory lock (sled releases it shortly after the `Db` is dropped, not synchronously).
fn open_dir(p: &Path) -> StateMachine {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::open(p) {
            Ok(db) => return StateMachine::open(db).unwrap(),
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("cannot reopen {p:?}: {e}"),
        }
    }
}

#[test]
fn reopen_after_every_apply_matches_a_machine_never_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let mut reference = H::new();
    for (i, cmd) in commands(7, 120).iter().enumerate() {
        let index = i as u64 + 1;
        let want = reference.sm.apply(index, cmd).unwrap();
        let mut sm = open_dir(dir.path());
        assert_eq!(sm.applied_index(), index - 1);
        let got = sm.apply(index, cmd).unwrap();
        assert_eq!(got, want, "command {i}: {cmd:?}");
        drop(sm);
        let sm = open_dir(dir.path());
        assert_eq!(
            observe(&sm),
            observe(&reference.sm),
            "after command {i}: {cmd:?}"
        );
        // History at every retained revision survives the reload too.
        for rev in sm.compact_revision().max(1)..=sm.revision() {
            let req = RangeRequest {
                key: vec![0],
                range_end: vec![0],
                revision: rev,
                ..Default::default()
            };
            assert_eq!(sm.range(&req), reference.sm.range(&req), "rev {rev}");
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if std::fs::copy(entry.path(), &target).is_err() {
            // A file sled removed meanwhile: like a crash at that moment.
        }
    }
}

/// Copies the live data dir at many points without flushing (as a crash would leave it):
/// every copy must open, and its state must be exactly the state the reference machine had
/// at the copy's applied index: the index never runs ahead of or behind its effects.
#[test]
fn crash_copies_hold_state_matching_their_applied_index() {
    let dir = tempfile::tempdir().unwrap();
    let copies = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(Some(2))
        .open()
        .unwrap();
    let mut sm = StateMachine::open(db).unwrap();
    let mut reference = H::new();
    let mut states = vec![observe(&reference.sm)];
    let cmds = commands(99, 400);
    let mut copied = 0;
    for (i, cmd) in cmds.iter().enumerate() {
        let index = i as u64 + 1;
        sm.apply(index, cmd).unwrap();
        reference.sm.apply(index, cmd).unwrap();
        states.push(observe(&reference.sm));
        if i % 37 == 5 {
            copy_dir(dir.path(), &copies.path().join(format!("c{copied}")));
            copied += 1;
        }
    }
    let mut distinct = std::collections::BTreeSet::new();
    for c in 0..copied {
        let sm = open_dir(&copies.path().join(format!("c{c}")));
        let o = observe(&sm);
        assert_eq!(o, states[o.applied as usize], "copy {c}");
        distinct.insert(o.applied);
    }
    assert!(
        distinct.len() > 1,
        "copies should catch different points: {distinct:?}"
    );
}

#[test]
fn reopen_keeps_leases_compaction_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let mut sm = open_dir(dir.path());
        let mut cmds = commands(3, 200);
        cmds.push(Command::internal(Op::LeaseGrant(LeaseGrantRequest {
            ttl: 30,
            id: 50,
        })));
        cmds.push(Command::internal(Op::Put(PutRequest {
            lease: 50,
            ..super::tests_kv::put("leased", "v")
        })));
        for (i, cmd) in cmds.iter().enumerate() {
            sm.apply(i as u64 + 1, cmd).unwrap();
        }
        sm.flush().unwrap();
        before = observe(&sm);
        assert!(sm.compact_revision() > 1, "the stream compacts");
        assert!(
            sm.leases().iter().any(|l| !l.keys.is_empty()),
            "some lease has keys"
        );
    }
    let sm = open_dir(dir.path());
    assert_eq!(observe(&sm), before);
}

#[test]
fn hash_kv_agrees_between_members_and_tracks_history() {
    let mut a = H::new();
    let mut b = H::new();
    let cmds = commands(11, 150);
    let mut hashes = Vec::new();
    for (i, cmd) in cmds.iter().enumerate() {
        a.sm.apply(i as u64 + 1, cmd).unwrap();
        b.sm.apply(i as u64 + 1, cmd).unwrap();
        assert_eq!(a.sm.hash_kv(0).unwrap(), b.sm.hash_kv(0).unwrap());
        hashes.push((
            a.sm.revision(),
            a.sm.compact_revision(),
            a.sm.hash_kv(0).unwrap().hash,
        ));
    }
    // Hashing an older revision equals the hash taken back then, if nothing was compacted since.
    let (rev, compact, hash) = hashes[hashes.len() - 3];
    if compact == a.sm.compact_revision() && rev >= compact {
        assert_eq!(a.sm.hash_kv(rev).unwrap().hash, hash);
    }
    // A different write changes the hash.
    (a.idx, b.idx) = (cmds.len() as u64, cmds.len() as u64);
    b.put("k00", "different");
    a.put("k00", "same?");
    assert_ne!(a.sm.hash_kv(0).unwrap().hash, b.sm.hash_kv(0).unwrap().hash);
}

#[test]
fn restore_rejects_garbage_and_keeps_state() {
    let mut h = H::new();
    h.put("a", "1");
    let before = observe(&h.sm);
    let mut snap = h.sm.snapshot().unwrap();
    assert!(matches!(
        h.sm.restore(9, b"nonsense"),
        Err(StateError::BadSnapshot(_))
    ));
    let last = snap.len() - 1;
    snap[last] ^= 0xff;
    assert!(matches!(
        h.sm.restore(9, &snap),
        Err(StateError::BadSnapshot(_))
    ));
    assert_eq!(observe(&h.sm), before);
}

#[test]
fn restore_sets_applied_index_and_survives_reopen() {
    let mut src = H::new();
    for (i, cmd) in commands(5, 100).iter().enumerate() {
        src.sm.apply(i as u64 + 1, cmd).unwrap();
    }
    let snap = src.sm.snapshot().unwrap();
    let dir = tempfile::tempdir().unwrap();
    {
        let mut sm = open_dir(dir.path());
        sm.apply(
            1,
            &Command::internal(Op::Put(super::tests_kv::put("zzz", "gone"))),
        )
        .unwrap();
        sm.restore(100, &snap).unwrap();
        assert_eq!(observe(&sm), observe(&src.sm));
        sm.flush().unwrap();
    }
    let mut sm = open_dir(dir.path());
    assert_eq!(observe(&sm), observe(&src.sm));
    // And it keeps applying in step with the source.
    for (i, cmd) in commands(6, 50).iter().enumerate() {
        let index = 101 + i as u64;
        assert_eq!(
            sm.apply(index, cmd).unwrap(),
            src.sm.apply(index, cmd).unwrap()
        );
    }
    assert_eq!(observe(&sm), observe(&src.sm));
}

#[test]
fn snapshot_of_a_fresh_machine_restores() {
    let fresh = H::new();
    let snap = fresh.sm.snapshot().unwrap();
    let mut other = H::new();
    other.put("a", "1");
    other.sm.restore(3, &snap).unwrap();
    assert_eq!(
        (
            other.sm.revision(),
            other.sm.applied_index(),
            other.sm.compact_revision()
        ),
        (1, 3, -1)
    );
    assert_eq!(other.get("a"), None);
}

/// Group commit: the same commands applied in groups of varying size (one sled batch
/// per group) answer exactly as when committed one by one; a group left uncommitted
/// never reaches sled, and after reopening, the state is the last committed group's.
#[test]
fn grouped_apply_matches_one_by_one_and_uncommitted_groups_vanish() {
    let dir = tempfile::tempdir().unwrap();
    let mut reference = H::new();
    let cmds = commands(31, 300);
    let mut states = vec![observe(&reference.sm)];
    let mut wants = Vec::new();
    for (i, cmd) in cmds.iter().enumerate() {
        wants.push(reference.sm.apply(i as u64 + 1, cmd).unwrap());
        states.push(observe(&reference.sm));
    }
    let mut sm = open_dir(dir.path());
    let mut i = 0usize;
    let mut size = 1usize;
    while i < cmds.len() {
        let end = (i + size).min(cmds.len());
        for j in i..end {
            let got = sm.apply_grouped(j as u64 + 1, &cmds[j]).unwrap();
            assert_eq!(got, wants[j], "command {j} in group {i}..{end}");
        }
        sm.commit().unwrap();
        assert_eq!(observe(&sm), states[end], "after group {i}..{end}");
        i = end;
        size = size % 17 + 1;
    }
    // An uncommitted group: applied in memory, absent after a reopen. (Without
    // compactions: a compaction commits the group it ends.)
    let last = cmds.len() as u64;
    let extra: Vec<Command> = commands(5, 30)
        .into_iter()
        .filter(|c| !matches!(c.op, Some(Op::Compaction(_))))
        .take(10)
        .collect();
    assert_eq!(extra.len(), 10);
    for (k, cmd) in extra.iter().enumerate() {
        let _ = sm.apply_grouped(last + 1 + k as u64, cmd).unwrap();
    }
    assert_eq!(sm.applied_index(), last + extra.len() as u64);
    drop(sm);
    let sm = open_dir(dir.path());
    assert_eq!(observe(&sm), states[cmds.len()]);
}

/// A DeleteRange over more keys than a commit chunk: its tombstones are written in
/// chunks ahead of the final batch; the result is the same as for a machine that
/// reopens from disk, and every key and revision is where it should be.
#[test]
fn large_group_is_written_in_chunks_and_reopens_equal() {
    let dir = tempfile::tempdir().unwrap();
    let n = 2 * super::store::COMMIT_CHUNK_RECORDS + 5;
    let before;
    {
        let mut sm = open_dir(dir.path());
        let mut idx = 0;
        for i in 0..n {
            idx += 1;
            let put = super::tests_kv::put(&format!("k{i:06}"), "v");
            sm.apply(idx, &Command::internal(Op::Put(put))).unwrap();
        }
        idx += 1;
        let del = Op::DeleteRange(DeleteRangeRequest {
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
            prev_kv: false,
        });
        let out = sm.apply(idx, &Command::internal(del)).unwrap().unwrap();
        match out.unwrap() {
            Response::DeleteRange(r) => assert_eq!(r.deleted, n as i64),
            other => panic!("{other:?}"),
        }
        assert_eq!(sm.revision(), n as i64 + 2);
        assert_eq!(sm.revisions_stored(), 2 * n);
        sm.flush().unwrap();
        before = observe(&sm);
    }
    let sm = open_dir(dir.path());
    assert_eq!(observe(&sm), before);
    assert_eq!(sm.revisions_stored(), 2 * n);
}

/// A crash between a group's early chunks and its final batch leaves records above the
/// committed revision; opening discards them (raft replays the entry), and the replay
/// then gives the same state as a machine that never crashed.
#[test]
fn records_of_an_unfinished_commit_are_discarded_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let cmds = commands(5, 60);
    let (before, orphan_rev);
    {
        let mut sm = open_dir(dir.path());
        for (i, cmd) in cmds.iter().enumerate() {
            sm.apply(i as u64 + 1, cmd).unwrap();
        }
        before = observe(&sm);
        orphan_rev = sm.revision() + 1;
        // What an early chunk of the next group would have left behind.
        for sub in 0..3 {
            let rec = codec::Record {
                tombstone: false,
                applied_index: cmds.len() as u64 + 1,
                prev: None,
                kv: gauntlet_api::mvccpb::KeyValue {
                    key: format!("orphan{sub}").into_bytes(),
                    create_revision: orphan_rev,
                    mod_revision: orphan_rev,
                    version: 1,
                    value: b"x".to_vec(),
                    lease: 0,
                },
            };
            sm.tree_for_tests()
                .insert(
                    codec::rev_key(index::Rev::new(orphan_rev, sub)),
                    rec.encode(),
                )
                .unwrap();
        }
        sm.flush().unwrap();
    }
    let mut sm = open_dir(dir.path());
    assert_eq!(observe(&sm), before);
    assert_eq!(sm.revisions_stored(), {
        let mut h = H::new();
        for (i, cmd) in cmds.iter().enumerate() {
            h.sm.apply(i as u64 + 1, cmd).unwrap();
        }
        h.sm.revisions_stored()
    });
    // The replayed entry writes its own records at that revision.
    let put = super::tests_kv::put("after", "1");
    sm.apply(cmds.len() as u64 + 1, &Command::internal(Op::Put(put)))
        .unwrap();
    assert_eq!(sm.revision(), orphan_rev);
    let all = observe(&sm).all;
    assert!(
        all.iter().all(|kv| !kv.key.starts_with(b"orphan")),
        "{all:?}"
    );
}
