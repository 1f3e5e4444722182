//! Judging a round, black-box: only from what the run itself observed.
//!
//! In order:
//! 1. **linearizability** of the whole history (unknown outcomes included) with the
//!    checker's etcd model, within a deadline (past the deadline: Unknown, never a pass);
//! 2. **watch**: the events every member's watchers delivered must agree revision by
//!    revision (their union is the ground truth, since no server file is read), and each
//!    stream must keep etcd's watch guarantees against it (ordered, unique, atomic,
//!    bookmarkable, reliable, resumable, filters, prev_kv, create/modify);
//! 3. **acknowledged writes**: every acknowledged put shows up in the watched events at
//!    its revision with its value, unless compaction hid that revision from every
//!    watcher;
//! 4. **no phantom values**: every value an event or a read carries was written by
//!    some put (values are unique per write);
//! 5. **replicas agree**: HashKV at one revision is equal on every member (when the
//!    target implements it; checked by the round, reported here).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use gauntlet_checker::models::etcd::{EtcdModel, EtcdRequest, EtcdResponse, TxnOp, TxnOpResponse};
use gauntlet_checker::search::{check, CheckOptions, Verdict};
use gauntlet_checker::watch::{validate_watches, WatchEvent, WriteRevision};
use gauntlet_checker::Outcome;
use serde::Serialize;

use crate::convert::EtcdOp;
use crate::watch::MemberWatch;

/// One broken guarantee.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Which check: `linearizability`, `watch`, `acknowledged-write`, `phantom-value`,
    /// `hashkv`, `final-write`, `recovery`.
    pub check: String,
    /// What, where, with the evidence.
    pub detail: String,
}

/// What validation concluded.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    /// Broken guarantees (empty: none found).
    pub findings: Vec<Finding>,
    /// Steps that could not finish (e.g. the linearizability search timed out).
    pub unknown: Vec<String>,
    /// The checker's verdict on the history.
    pub linearizable: Option<bool>,
    /// Wall time of validation.
    pub validation_ms: u64,
    /// The checker's result, kept for the failure page.
    #[serde(skip)]
    pub check: Option<gauntlet_checker::search::CheckResult>,
}

/// Runs checks 1 to 4 (see the module docs).
pub fn validate(
    history: &[EtcdOp],
    watches: &[MemberWatch],
    check_timeout: Duration,
) -> Validation {
    let started = Instant::now();
    let mut findings = Vec::new();
    let mut unknown = Vec::new();
    let options = CheckOptions {
        timeout: Some(check_timeout),
        ..CheckOptions::default()
    };
    let (linearizable, result) = match check(&EtcdModel, history, &options) {
        Ok(r) => {
            let lin = match r.verdict {
                Verdict::Linearizable => Some(true),
                Verdict::NotLinearizable => {
                    let part = r
                        .partitions
                        .iter()
                        .find(|p| p.verdict == Verdict::NotLinearizable);
                    let detail = match part {
                        Some(p) => {
                            let ops: Vec<String> = p
                                .unplaceable
                                .iter()
                                .take(3)
                                .filter_map(|i| history.get(*i))
                                .map(|o| {
                                    format!(
                                        "client {} {:?} -> {:?}",
                                        o.client_id, o.input, o.outcome
                                    )
                                })
                                .collect();
                            format!(
                                "no linearization of {} operations; longest linearizable prefix has {}; cannot place next: {}",
                                history.len(),
                                p.linearization.len(),
                                ops.join("; ")
                            )
                        }
                        None => "not linearizable".to_string(),
                    };
                    findings.push(Finding {
                        check: "linearizability".into(),
                        detail,
                    });
                    Some(false)
                }
                Verdict::Unknown => {
                    unknown.push(format!(
                        "linearizability: the search did not finish within {} s",
                        check_timeout.as_secs()
                    ));
                    None
                }
            };
            (lin, Some(r))
        }
        Err(e) => {
            unknown.push(format!("linearizability: the history is unusable: {e}"));
            (None, None)
        }
    };
    check_watches(history, watches, &mut findings);
    Validation {
        findings,
        unknown,
        linearizable,
        validation_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        check: result,
    }
}

/// The highest revision a compaction in `history` may have reached (answered or
/// unknown compactions).
fn compacted_up_to(history: &[EtcdOp]) -> i64 {
    history
        .iter()
        .filter(|o| !matches!(o.outcome, Outcome::Failed))
        .filter_map(|o| match o.input {
            EtcdRequest::Compact { revision } => Some(revision),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// etcd reads an event's `prev_kv` at the revision before it when it sends the event;
/// once that revision is compacted the event goes out without one (always so for an
/// event at exactly the compaction revision). That is etcd's behaviour, not a broken
/// guarantee, so a missing `prev_kv` at or below a compaction revision is filled in
/// from the ground truth before the streams are judged. A present but wrong `prev_kv`
/// is still a finding.
fn same_but_prev_kv(a: &[WatchEvent], b: &[WatchEvent]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.kind == y.kind
                && x.kv == y.kv
                && (x.prev_kv == y.prev_kv || x.prev_kv.is_none() || y.prev_kv.is_none())
        })
}

fn check_watches(history: &[EtcdOp], watches: &[MemberWatch], findings: &mut Vec<Finding>) {
    let compacted = compacted_up_to(history);
    // Ground truth: the union of what every stream delivered, revision by revision;
    // two streams that disagree on a revision are a finding on their own.
    let mut truth: BTreeMap<i64, (u64, WriteRevision)> = BTreeMap::new();
    let mut compacted_below = 0i64;
    for mw in watches {
        for seg in &mw.segments {
            for resp in &seg.responses {
                compacted_below = compacted_below.max(resp.compact_revision);
                let mut by_rev: BTreeMap<i64, Vec<_>> = BTreeMap::new();
                for e in &resp.events {
                    by_rev.entry(e.revision()).or_default().push(e.clone());
                }
                for (rev, events) in by_rev {
                    match truth.get_mut(&rev) {
                        None => {
                            truth.insert(
                                rev,
                                (
                                    seg.id,
                                    WriteRevision {
                                        revision: rev,
                                        events,
                                    },
                                ),
                            );
                        }
                        Some((_, known))
                            if rev <= compacted && same_but_prev_kv(&known.events, &events) =>
                        {
                            // Keep the fuller copy (see `same_but_prev_kv`).
                            for (k, e) in known.events.iter_mut().zip(&events) {
                                if k.prev_kv.is_none() {
                                    k.prev_kv = e.prev_kv.clone();
                                }
                            }
                        }
                        Some((first, known)) if known.events != events => {
                            findings.push(Finding {
                                check: "watch".into(),
                                detail: format!(
                                    "watchers disagree at revision {rev}: watcher {first} saw {:?}, watcher {} (member m{}) saw {:?}",
                                    known.events, seg.id, mw.member, events
                                ),
                            });
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }
    // prev_kv from the event sequence itself, not from what the streams claimed: where
    // the truth holds every revision from 2 on, a key's previous state is its last put
    // event (none after a delete). A stream's claim that differs is a finding below.
    let mut last: std::collections::HashMap<String, gauntlet_checker::models::etcd::KeyValue> =
        std::collections::HashMap::new();
    let mut complete = true;
    let mut expected_rev = 2i64;
    for (rev, (_, w)) in truth.iter_mut() {
        complete &= *rev == expected_rev;
        expected_rev = *rev + 1;
        for e in &mut w.events {
            let prev = last.get(&e.kv.key).cloned();
            if complete && *rev > compacted {
                if e.prev_kv.is_some() && e.prev_kv != prev {
                    findings.push(Finding {
                        check: "watch".into(),
                        detail: format!(
                            "revision {rev} {} carries prev_kv {:?}, but the key's previous state in the event sequence is {:?}",
                            e.kv.key, e.prev_kv, prev
                        ),
                    });
                }
                e.prev_kv = prev;
            }
            match e.kind {
                gauntlet_checker::watch::EventKind::Put => {
                    last.insert(e.kv.key.clone(), e.kv.clone());
                }
                gauntlet_checker::watch::EventKind::Delete => {
                    last.remove(&e.kv.key);
                }
            }
        }
    }
    let writes: Vec<WriteRevision> = truth.values().map(|(_, w)| w.clone()).collect();
    let mut watchers: Vec<_> = watches
        .iter()
        .flat_map(|m| m.segments.iter().cloned())
        .collect();
    for w in &mut watchers {
        for resp in &mut w.responses {
            for e in &mut resp.events {
                let rev = e.revision();
                if e.prev_kv.is_none() && rev <= compacted {
                    if let Some((_, t)) = truth.get(&rev) {
                        if let Some(te) = t.events.iter().find(|te| te.kv == e.kv) {
                            e.prev_kv = te.prev_kv.clone();
                        }
                    }
                }
            }
        }
    }
    for v in validate_watches(&writes, &watchers) {
        let whose = if v.watcher_id >= 1_000_000 {
            "a traffic client's list-and-watch".to_string()
        } else {
            format!("member m{}", v.watcher_id / 10_000)
        };
        findings.push(Finding {
            check: "watch".into(),
            detail: format!(
                "{:?} broken on {whose} (watcher {}) at revision {}: {}",
                v.guarantee, v.watcher_id, v.revision, v.detail
            ),
        });
    }
    // Acknowledged puts must be in the events at their revision.
    let watched_max = truth.keys().next_back().copied().unwrap_or(0);
    for op in history {
        let Outcome::Ok(resp) = &op.outcome else {
            continue;
        };
        let Some(rev) = resp.revision() else { continue };
        let puts: Vec<(&str, &str)> = match (&op.input, resp) {
            (EtcdRequest::Put { key, value, .. }, EtcdResponse::Put { .. }) => {
                vec![(key.as_str(), value.as_str())]
            }
            (
                EtcdRequest::Txn {
                    success, failure, ..
                },
                EtcdResponse::Txn {
                    succeeded,
                    responses,
                    ..
                },
            ) => {
                let branch = if *succeeded { success } else { failure };
                branch
                    .iter()
                    .zip(responses)
                    .filter_map(|(o, r)| match (o, r) {
                        (TxnOp::Put { key, value, .. }, TxnOpResponse::Put) => {
                            Some((key.as_str(), value.as_str()))
                        }
                        _ => None,
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        if puts.is_empty() || rev > watched_max || rev < compacted_below {
            continue;
        }
        match truth.get(&rev) {
            Some((_, w)) => {
                // A txn's writes come out in the txn's order.
                let positions: Vec<Option<usize>> = puts
                    .iter()
                    .map(|(k, v)| {
                        w.events
                            .iter()
                            .position(|e| e.kv.key == *k && e.kv.value == *v)
                    })
                    .collect();
                let found: Vec<usize> = positions.iter().flatten().copied().collect();
                if found.windows(2).any(|p| p[0] > p[1]) {
                    findings.push(Finding {
                        check: "watch".into(),
                        detail: format!(
                            "the txn acknowledged at revision {rev} (client {}) wrote {:?} in that order, but the watched events of revision {rev} are in another order: {:?}",
                            op.client_id,
                            puts,
                            w.events.iter().map(|e| (&e.kv.key, &e.kv.value)).collect::<Vec<_>>()
                        ),
                    });
                }
                for (k, v) in puts {
                    if !w.events.iter().any(|e| e.kv.key == k && e.kv.value == v) {
                        findings.push(Finding {
                            check: "acknowledged-write".into(),
                            detail: format!(
                                "put {k}={v} was acknowledged at revision {rev} (client {}), but the watched events of revision {rev} are {:?}",
                                op.client_id, w.events
                            ),
                        });
                    }
                }
            }
            None => findings.push(Finding {
                check: "acknowledged-write".into(),
                detail: format!(
                    "put {}={} was acknowledged at revision {rev} (client {}), but no watcher on any member delivered revision {rev}",
                    puts[0].0, puts[0].1, op.client_id
                ),
            }),
        }
    }
    // Every value anyone saw was written by someone.
    let mut written: HashSet<&str> = HashSet::new();
    for op in history {
        match &op.input {
            EtcdRequest::Put { value, .. } => {
                written.insert(value);
            }
            EtcdRequest::Txn {
                success, failure, ..
            } => {
                for o in success.iter().chain(failure) {
                    if let TxnOp::Put { value, .. } = o {
                        written.insert(value);
                    }
                }
            }
            _ => {}
        }
    }
    for (rev, (_, w)) in &truth {
        for e in &w.events {
            if e.kind == gauntlet_checker::watch::EventKind::Put
                && !written.contains(e.kv.value.as_str())
            {
                findings.push(Finding {
                    check: "phantom-value".into(),
                    detail: format!(
                        "revision {rev} puts {}={} but no client ever wrote that value",
                        e.kv.key, e.kv.value
                    ),
                });
            }
        }
    }
}
