//! Judging a round, black-box: only from what the run itself observed.
//!
//! In order:
//! 1. **linearizability** of the whole history (unknown outcomes included) with the
//!    checker's etcd model, within a deadline (past the deadline: Unknown, never a pass).
//!    First the history is *patched* from what the run observed (put values are unique):
//!    a write whose outcome is unknown but whose value the watched events carry took
//!    effect at that revision; one whose value they never carry, when the events are
//!    complete up to the highest revision any operation saw, took no effect. Only
//!    writes whose effect is visible that way are patched (every non-empty branch of a
//!    txn has a put); the rest stay unknown;
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
//!    target implements it; checked by the round, reported here);
//! 6. **side reads**: the reads the model leaves out (serializable and keys-only
//!    ranges, [`SideRead`]) return exactly the state the watched events give at the
//!    revision they claim (the one asked for, or the response header's), wherever the
//!    events from revision 2 to that revision are complete. A serializable read may be
//!    stale, but never wrong for its revision.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use gauntlet_checker::models::etcd::{EtcdModel, EtcdRequest, EtcdResponse, TxnOp, TxnOpResponse};
use gauntlet_checker::search::{check, CheckOptions, Verdict};
use gauntlet_checker::watch::{validate_watches, WatchEvent, WriteRevision};
use gauntlet_checker::Outcome;
use serde::Serialize;

use crate::convert::{EtcdOp, SideRead};
use crate::watch::MemberWatch;

/// One broken guarantee.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Finding {
    /// Which check: `linearizability`, `watch`, `acknowledged-write`, `phantom-value`,
    /// `hashkv`, `final-write`, `recovery`, `empty-at-start`.
    pub check: String,
    /// For the watch validator's findings, the guarantee that broke (`Bookmarkable`,
    /// `Reliable`, ...): what the known-issue ledger matches on.
    #[serde(default)]
    pub guarantee: Option<String>,
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
    /// Side reads judged against the watched state (check 6).
    pub side_reads_judged: usize,
    /// Side reads that could not be judged (their revision is past a gap in the
    /// watched events or beyond the last watched revision).
    pub side_reads_unjudged: usize,
    /// Unknown writes the watched events settled: (took effect, took no effect).
    pub patched: (usize, usize),
    /// The history as judged (unknown writes settled); what a round directory's
    /// `history.jsonl` holds, so `gauntlet check` reproduces the verdict.
    #[serde(skip)]
    pub judged: Vec<EtcdOp>,
    /// The checker's result, kept for the failure page.
    #[serde(skip)]
    pub check: Option<gauntlet_checker::search::CheckResult>,
}

/// Runs checks 1 to 4 (see the module docs).
pub fn validate(
    history: &[EtcdOp],
    watches: &[MemberWatch],
    side_reads: &[SideRead],
    check_timeout: Duration,
) -> Validation {
    let started = Instant::now();
    let mut findings = Vec::new();
    let mut unknown = Vec::new();
    let options = CheckOptions {
        timeout: Some(check_timeout),
        ..CheckOptions::default()
    };
    let writes = check_watches(history, watches, &mut findings);
    let mut patched_history = history.to_vec();
    let patched = patch_unknown_writes(&mut patched_history, &writes);
    let history = &patched_history[..];
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
                        guarantee: None,
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
    let (side_reads_judged, side_reads_unjudged) =
        check_side_reads(&writes, side_reads, &mut findings);
    Validation {
        findings,
        unknown,
        linearizable,
        side_reads_judged,
        side_reads_unjudged,
        patched,
        judged: patched_history,
        validation_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        check: result,
    }
}

/// Every revision a compaction may have reached: compactions in `history` that were
/// answered or whose outcome is unknown, and compaction revisions a watcher was told.
fn compaction_revisions(history: &[EtcdOp], watches: &[MemberWatch]) -> HashSet<i64> {
    let mut revs: HashSet<i64> = history
        .iter()
        .filter(|o| !matches!(o.outcome, Outcome::Failed))
        .filter_map(|o| match o.input {
            EtcdRequest::Compact { revision } => Some(revision),
            _ => None,
        })
        .collect();
    revs.extend(
        watches
            .iter()
            .flat_map(|m| &m.segments)
            .flat_map(|s| &s.responses)
            .map(|r| r.compact_revision)
            .filter(|c| *c > 0),
    );
    revs
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

/// Checks 2 to 4; returns the ground truth (every watched revision's events, in
/// revision order) for check 6.
fn check_watches(
    history: &[EtcdOp],
    watches: &[MemberWatch],
    findings: &mut Vec<Finding>,
) -> Vec<WriteRevision> {
    let compactions = compaction_revisions(history, watches);
    let compacted = compactions.iter().copied().max().unwrap_or(0);
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
                                guarantee: None,
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
                        guarantee: None,
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
    // etcd's other compaction caveat: compaction drops the tombstone of a delete at
    // exactly the compaction revision, so a watch resumed at that revision cannot
    // replay it. A stream that starts at a compaction revision whose events are all
    // deletes, and delivered nothing at it, is judged as starting one revision later.
    for w in &mut watchers {
        let start = w.request.start_revision;
        if !compactions.contains(&start) {
            continue;
        }
        let only_deletes = truth.get(&start).is_some_and(|(_, t)| {
            t.events
                .iter()
                .all(|e| e.kind == gauntlet_checker::watch::EventKind::Delete)
        });
        let delivered_at_start = w
            .responses
            .iter()
            .flat_map(|r| &r.events)
            .any(|e| e.revision() == start);
        if only_deletes && !delivered_at_start {
            w.request.start_revision = start + 1;
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
            guarantee: Some(format!("{:?}", v.guarantee)),
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
                        guarantee: None,
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
                            guarantee: None,
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
                guarantee: None,
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
                    guarantee: None,
                    detail: format!(
                        "revision {rev} puts {}={} but no client ever wrote that value",
                        e.kv.key, e.kv.value
                    ),
                });
            }
        }
    }
    writes
}

/// Settles unknown writes from the watched events (see check 1 in the module docs).
/// Returns (took effect, took no effect).
fn patch_unknown_writes(history: &mut [EtcdOp], writes: &[WriteRevision]) -> (usize, usize) {
    // Where each put value was written, and whether the events are complete up to
    // the highest revision any operation saw.
    let mut at: std::collections::HashMap<&str, (i64, &str)> = std::collections::HashMap::new();
    let mut complete_to = 1i64;
    for w in writes {
        if w.revision == complete_to + 1 {
            complete_to = w.revision;
        }
        for e in &w.events {
            if e.kind == gauntlet_checker::watch::EventKind::Put {
                at.insert(e.kv.value.as_str(), (w.revision, e.kv.key.as_str()));
            }
        }
    }
    let seen_max = history
        .iter()
        .filter_map(|o| match &o.outcome {
            Outcome::Ok(r) => r.revision(),
            _ => None,
        })
        .max()
        .unwrap_or(1);
    let complete =
        complete_to >= seen_max && complete_to == writes.last().map_or(1, |w| w.revision);
    let end_ns = history.iter().map(|o| o.return_ns).max().unwrap_or(0) + 1;
    let found = |key: &str, value: &str| at.get(value).filter(|(_, k)| *k == key).map(|(r, _)| *r);
    let (mut applied, mut not_applied) = (0, 0);
    for op in history.iter_mut() {
        if !matches!(op.outcome, Outcome::Unknown) {
            continue;
        }
        let settled = match &op.input {
            EtcdRequest::Put { key, value, .. } => match found(key, value) {
                Some(revision) => Some(Outcome::Ok(EtcdResponse::Put { revision })),
                None if complete => Some(Outcome::Failed),
                None => None,
            },
            EtcdRequest::Txn {
                success, failure, ..
            } => {
                let puts = |b: &[TxnOp]| -> Vec<(String, String)> {
                    b.iter()
                        .filter_map(|o| match o {
                            TxnOp::Put { key, value, .. } => Some((key.clone(), value.clone())),
                            _ => None,
                        })
                        .collect()
                };
                let visible = |b: &[TxnOp]| b.is_empty() || !puts(b).is_empty();
                if !visible(success) || !visible(failure) {
                    None
                } else {
                    let hit = |b: &[TxnOp]| puts(b).iter().find_map(|(k, v)| found(k, v));
                    let only_puts = |b: &[TxnOp]| b.iter().all(|o| matches!(o, TxnOp::Put { .. }));
                    let answer = |b: &[TxnOp], succeeded: bool, revision: i64| {
                        Outcome::Ok(EtcdResponse::Txn {
                            succeeded,
                            responses: b.iter().map(|_| TxnOpResponse::Put).collect(),
                            revision,
                        })
                    };
                    match (hit(success), hit(failure)) {
                        (Some(r), _) if only_puts(success) => Some(answer(success, true, r)),
                        (None, Some(r)) if only_puts(failure) => Some(answer(failure, false, r)),
                        (None, None) if complete => Some(Outcome::Failed),
                        _ => None,
                    }
                }
            }
            _ => None,
        };
        match settled {
            Some(o @ Outcome::Ok(_)) => {
                // It took effect some time after its call, maybe after its client gave up.
                op.outcome = o;
                op.return_ns = end_ns;
                applied += 1;
            }
            Some(o) => {
                op.outcome = o;
                not_applied += 1;
            }
            None => {}
        }
    }
    (applied, not_applied)
}

/// Check 6: replays the watched events revision by revision and compares every side
/// read with the state at its revision. Returns (judged, not judged).
fn check_side_reads(
    writes: &[WriteRevision],
    reads: &[SideRead],
    findings: &mut Vec<Finding>,
) -> (usize, usize) {
    // The events are complete from revision 2 (the first write of an empty store) up
    // to the first gap; nothing after it can be judged.
    let mut complete_to = 1i64;
    for w in writes {
        if w.revision != complete_to + 1 {
            break;
        }
        complete_to = w.revision;
    }
    let at = |r: &SideRead| {
        if r.revision > 0 {
            r.revision
        } else {
            r.header_revision
        }
    };
    let mut order: Vec<&SideRead> = reads.iter().collect();
    order.sort_by_key(|r| at(r));
    let mut state: BTreeMap<String, gauntlet_checker::models::etcd::KeyValue> = BTreeMap::new();
    let mut next = writes.iter().peekable();
    let (mut judged, mut unjudged) = (0, 0);
    for r in order {
        let rev = at(r);
        if rev < 1 || rev > complete_to {
            unjudged += 1;
            continue;
        }
        while let Some(w) = next.next_if(|w| w.revision <= rev) {
            for e in &w.events {
                match e.kind {
                    gauntlet_checker::watch::EventKind::Put => {
                        state.insert(e.kv.key.clone(), e.kv.clone());
                    }
                    gauntlet_checker::watch::EventKind::Delete => {
                        state.remove(&e.kv.key);
                    }
                }
            }
        }
        judged += 1;
        let matching: Vec<&gauntlet_checker::models::etcd::KeyValue> = state
            .values()
            .filter(|kv| {
                gauntlet_checker::models::etcd::in_range(&kv.key, &r.key, r.range_end.as_deref())
            })
            .collect();
        let count = i64::try_from(matching.len()).unwrap_or(i64::MAX);
        let shown = if r.count_only {
            0
        } else if r.limit > 0 {
            usize::try_from(r.limit)
                .unwrap_or(usize::MAX)
                .min(matching.len())
        } else {
            matching.len()
        };
        // What a read shows of a key-value: everything but the lease, the value only
        // when values were asked for.
        let row = |kv: &gauntlet_checker::models::etcd::KeyValue| {
            let value = if r.keys_only {
                String::new()
            } else {
                kv.value.clone()
            };
            (
                kv.key.clone(),
                value,
                kv.create_revision,
                kv.mod_revision,
                kv.version,
            )
        };
        let want: Vec<_> = matching[..shown].iter().map(|kv| row(kv)).collect();
        let got: Vec<_> = r.kvs.iter().map(row).collect();
        if got != want || r.count != count {
            let what = match (r.serializable, r.revision > 0) {
                (true, true) => "serializable read at a past revision",
                (true, false) => "serializable read",
                (false, true) => "keys-only read at a past revision",
                (false, false) => "keys-only read",
            };
            findings.push(Finding {
                check: "stale-read".into(),
                guarantee: None,
                detail: format!(
                    "client {}'s {what} of {}{} at revision {rev} returned count {} {:?}, but the state at revision {rev} in the watched events is count {count} {:?}",
                    r.client_id,
                    r.key,
                    r.range_end.as_deref().map_or(String::new(), |e| format!("..{}", e.escape_default())),
                    r.count,
                    got,
                    want
                ),
            });
        }
    }
    (judged, unjudged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gauntlet_checker::models::etcd::KeyValue;
    use gauntlet_checker::watch::{EventKind, WatchRequest, WatchResponse, Watcher};
    use gauntlet_checker::Operation;

    fn kv(key: &str, value: &str, rev: i64, version: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
            create_revision: if version == 0 { 0 } else { 2 },
            mod_revision: rev,
            version,
            lease: 0,
        }
    }

    fn put(key: &str, value: &str, rev: i64, version: i64) -> WatchEvent {
        WatchEvent {
            kind: EventKind::Put,
            kv: kv(key, value, rev, version),
            prev_kv: None,
        }
    }

    fn del(key: &str, rev: i64) -> WatchEvent {
        WatchEvent {
            kind: EventKind::Delete,
            kv: kv(key, "", rev, 0),
            prev_kv: None,
        }
    }

    fn segment(id: u64, start: i64, events: Vec<WatchEvent>) -> Watcher {
        Watcher {
            id,
            request: WatchRequest {
                key: "/chaos/".into(),
                range_end: Some("/chaos0".into()),
                start_revision: start,
                filter_no_put: false,
                filter_no_delete: false,
                prev_kv: true,
            },
            created_revision: 1,
            responses: events
                .into_iter()
                .map(|e| WatchResponse {
                    revision: e.revision(),
                    events: vec![e],
                    progress_notify: false,
                    compact_revision: 0,
                    canceled: false,
                })
                .collect(),
        }
    }

    fn compact_at(revision: i64) -> EtcdOp {
        Operation {
            client_id: 1,
            call_ns: 1,
            return_ns: 2,
            input: EtcdRequest::Compact { revision },
            outcome: Outcome::Ok(EtcdResponse::Compact { revision }),
        }
    }

    /// The puts behind the events (outcome unknown: written, not acknowledged).
    fn writes() -> Vec<EtcdOp> {
        [("/chaos/a", "a1"), ("/chaos/a", "a2"), ("/chaos/b", "b1")]
            .into_iter()
            .map(|(k, v)| Operation {
                client_id: 2,
                call_ns: 1,
                return_ns: 2,
                input: EtcdRequest::Put {
                    key: k.into(),
                    value: v.into(),
                    lease: 0,
                },
                outcome: Outcome::Unknown,
            })
            .collect()
    }

    fn findings(extra: &[EtcdOp], member_segments: Vec<Watcher>) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut history = writes();
        history.extend_from_slice(extra);
        let watches = vec![
            MemberWatch {
                member: 0,
                segments: vec![segment(
                    0,
                    1,
                    vec![
                        put("/chaos/a", "a1", 2, 1),
                        put("/chaos/a", "a2", 3, 2),
                        del("/chaos/a", 4),
                        put("/chaos/b", "b1", 5, 1),
                    ],
                )],
                reached: 5,
            },
            MemberWatch {
                member: 1,
                segments: member_segments,
                reached: 5,
            },
        ];
        check_watches(&history, &watches, &mut out);
        out
    }

    /// A stream resumed at a compaction revision that was a delete cannot replay the
    /// delete (etcd drops its tombstone): not a finding. Anything else missing is.
    #[test]
    fn a_delete_at_the_compaction_revision_may_be_missing_on_resume() {
        let resumed = vec![
            segment(10_000, 1, vec![put("/chaos/a", "a1", 2, 1)]),
            segment(10_001, 4, vec![put("/chaos/b", "b1", 5, 1)]),
        ];
        let f = findings(&[compact_at(4)], resumed.clone());
        assert!(f.is_empty(), "{f:#?}");
        // Without a compaction at 4 the missing delete is a broken guarantee.
        let f = findings(&[], resumed);
        assert!(f.iter().any(|f| f.detail.contains("Reliable")), "{f:?}");
        // A missing put at the compaction revision is a finding too (the stream's
        // bookmark claims it delivered everything up to 5).
        let mut bookmarked = segment(10_000, 5, vec![]);
        bookmarked.responses.push(WatchResponse {
            revision: 5,
            events: vec![],
            progress_notify: true,
            compact_revision: 0,
            canceled: false,
        });
        let skipped_put = vec![bookmarked];
        let f = findings(&[compact_at(5)], skipped_put);
        assert!(
            !f.is_empty(),
            "a missing put at the compaction revision must be caught"
        );
    }

    fn side_read(
        key: &str,
        end: Option<&str>,
        revision: i64,
        header: i64,
        kvs: Vec<KeyValue>,
    ) -> SideRead {
        SideRead {
            client_id: 7,
            call_ns: 0,
            key: key.into(),
            range_end: end.map(str::to_string),
            revision,
            limit: 0,
            count_only: false,
            keys_only: false,
            serializable: true,
            header_revision: header,
            count: i64::try_from(kvs.len()).unwrap(),
            kvs,
        }
    }

    #[test]
    fn side_reads_must_match_the_watched_state_at_their_revision() {
        let writes = vec![
            WriteRevision {
                revision: 2,
                events: vec![put("/chaos/a", "1", 2, 1)],
            },
            WriteRevision {
                revision: 3,
                events: vec![put("/chaos/b", "2", 3, 1)],
            },
            WriteRevision {
                revision: 4,
                events: vec![del("/chaos/a", 4)],
            },
            // A gap: revision 5 was never watched.
            WriteRevision {
                revision: 6,
                events: vec![put("/chaos/c", "3", 6, 1)],
            },
        ];
        let a = kv("/chaos/a", "1", 2, 1);
        let b = kv("/chaos/b", "2", 3, 1);
        let reads = vec![
            // Stale but right for its revision: fine.
            side_read("/chaos/", Some("/chaos0"), 0, 3, vec![a.clone(), b.clone()]),
            // Past revision asked for: the state then.
            side_read("/chaos/a", None, 2, 6, vec![a.clone()]),
            // Claims revision 4, where a is deleted, yet returns a: wrong.
            side_read("/chaos/", Some("/chaos0"), 0, 4, vec![a.clone(), b.clone()]),
            // Past the gap: cannot be judged.
            side_read("/chaos/c", None, 0, 6, vec![]),
        ];
        let mut findings = Vec::new();
        let (judged, unjudged) = check_side_reads(&writes, &reads, &mut findings);
        assert_eq!((judged, unjudged), (3, 1));
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].check, "stale-read");
        assert!(
            findings[0].detail.contains("at revision 4"),
            "{}",
            findings[0].detail
        );
        // Limits and counts: the first key only, with the full count.
        let mut limited = side_read("/chaos/", Some("/chaos0"), 0, 3, vec![a.clone()]);
        limited.limit = 1;
        limited.count = 2;
        let mut findings = Vec::new();
        assert_eq!(
            check_side_reads(&writes, &[limited.clone()], &mut findings),
            (1, 0)
        );
        assert!(findings.is_empty(), "{findings:#?}");
        limited.count = 1;
        check_side_reads(&writes, &[limited], &mut findings);
        assert_eq!(findings.len(), 1, "a wrong count must be caught");
    }

    #[test]
    fn unknown_writes_are_settled_by_the_watched_events() {
        let events = vec![
            WriteRevision {
                revision: 2,
                events: vec![put("/chaos/a", "a1", 2, 1)],
            },
            WriteRevision {
                revision: 3,
                events: vec![put("/chaos/b", "b1", 3, 1)],
            },
        ];
        let mut h = writes(); // a1 and b1 were written, a2 never was
        let ok_read = Operation {
            client_id: 3,
            call_ns: 5,
            return_ns: 9,
            input: EtcdRequest::Put {
                key: "/chaos/c".into(),
                value: "c1".into(),
                lease: 0,
            },
            outcome: Outcome::Unknown,
        };
        h.push(ok_read);
        // Complete up to revision 3, which is all anyone saw: a2 and c1 took no effect.
        let mut seen = h.clone();
        seen.push(compact_at(3));
        assert_eq!(patch_unknown_writes(&mut seen, &events), (2, 2));
        assert!(matches!(
            seen[0].outcome,
            Outcome::Ok(EtcdResponse::Put { revision: 2 })
        ));
        assert!(matches!(seen[1].outcome, Outcome::Failed));
        assert!(matches!(
            seen[2].outcome,
            Outcome::Ok(EtcdResponse::Put { revision: 3 })
        ));
        assert!(
            seen[0].return_ns > 9,
            "a settled write may have taken effect until the end"
        );
        // Someone saw revision 5, beyond the events: the absent ones stay unknown.
        let mut beyond = h.clone();
        beyond.push(compact_at(5));
        assert_eq!(patch_unknown_writes(&mut beyond, &events), (2, 0));
        assert!(matches!(beyond[1].outcome, Outcome::Unknown));
        // A txn whose failure branch only deletes cannot be settled by values.
        let mut txn = vec![Operation {
            client_id: 4,
            call_ns: 1,
            return_ns: 2,
            input: EtcdRequest::Txn {
                compare: vec![],
                success: vec![TxnOp::Put {
                    key: "/chaos/z".into(),
                    value: "z1".into(),
                    lease: 0,
                }],
                failure: vec![TxnOp::Delete {
                    key: "/chaos/z".into(),
                    range_end: None,
                }],
            },
            outcome: Outcome::Unknown,
        }];
        assert_eq!(patch_unknown_writes(&mut txn, &events), (0, 0));
    }
}
