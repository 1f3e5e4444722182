//! Validation of etcd watch streams against the write history.
//!
//! Input: per revision, the events that revision produced ([`WriteRevision`], the ground truth, e.g.
//! from a linearized history or a trusted watch), and per watcher the request and every response it
//! received ([`Watcher`]). [`validate_watches`] checks etcd's documented guarantees:
//!
//! - **ordered**: events arrive in revision order (and within a revision, in write order);
//! - **unique**: no event arrives twice;
//! - **atomic**: all matching events of one revision arrive in one response;
//! - **bookmarkable**: a progress notification at revision R is never followed by an event at <= R;
//! - **reliable**: no matching event is missing between the first and the last delivered one, nor
//!   before a progress notification;
//! - **resumable**: a watch with a start revision delivers, first, exactly the first matching event at or
//!   after it;
//! - **filters**: no put events with `filter_no_put`, no delete events with `filter_no_delete`, no keys
//!   outside the range;
//! - **prev_kv**: events carry the previous key-value exactly when asked;
//! - **create/modify**: a delivered event equals the write's event (value, create and mod revision,
//!   version), so "is create" (version 1) and "is modify" are right.
//!
//! A watcher canceled or told "compacted" is checked on what it received before that.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::models::etcd::{KeyValue, RANGE_END_ALL};

/// Event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A put.
    Put,
    /// A delete (its `kv` holds the key and the delete's revision as `mod_revision`).
    Delete,
}

/// One watch event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// Put or delete.
    pub kind: EventKind,
    /// The key-value after the event.
    pub kv: KeyValue,
    /// The key-value before the event, when requested (and the key existed).
    #[serde(default)]
    pub prev_kv: Option<KeyValue>,
}

impl WatchEvent {
    /// The revision the event belongs to.
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }
}

/// The events one revision produced, in order, with `prev_kv` always filled where the key existed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRevision {
    /// The revision.
    pub revision: i64,
    /// Its events.
    pub events: Vec<WatchEvent>,
}

/// What a watcher asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRequest {
    /// First key.
    pub key: String,
    /// As in etcd: `None` = only `key`, `Some("\0")` = all keys from `key`, else `[key, range_end)`.
    #[serde(default)]
    pub range_end: Option<String>,
    /// First revision to deliver; 0 = from the revision after creation.
    #[serde(default)]
    pub start_revision: i64,
    /// Drop put events.
    #[serde(default)]
    pub filter_no_put: bool,
    /// Drop delete events.
    #[serde(default)]
    pub filter_no_delete: bool,
    /// Attach the previous key-value to events.
    #[serde(default)]
    pub prev_kv: bool,
}

/// One response on a watch stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchResponse {
    /// Header revision.
    pub revision: i64,
    /// Events (empty for a progress notification).
    #[serde(default)]
    pub events: Vec<WatchEvent>,
    /// This is a progress notification (bookmark): everything up to `revision` has been sent.
    #[serde(default)]
    pub progress_notify: bool,
    /// Non-zero: the watch failed because this revision is compacted.
    #[serde(default)]
    pub compact_revision: i64,
    /// The watch was canceled.
    #[serde(default)]
    pub canceled: bool,
}

/// A watcher and what it received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watcher {
    /// Identifier used in reports.
    pub id: u64,
    /// The request.
    pub request: WatchRequest,
    /// Header revision of the creation response (events start after it when `start_revision` is 0).
    pub created_revision: i64,
    /// Responses, in arrival order.
    pub responses: Vec<WatchResponse>,
}

/// Which guarantee broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
    /// Revision order.
    Ordered,
    /// No duplicates.
    Unique,
    /// One revision, one response.
    Atomic,
    /// Progress notifications are honest.
    Bookmarkable,
    /// Nothing missing.
    Reliable,
    /// Starts at the start revision.
    Resumable,
    /// Filters and key range respected.
    Filter,
    /// prev_kv present exactly when asked, and right.
    PrevKv,
    /// The event matches the write (create/modify flags, value, revisions, version).
    CreateModify,
    /// The event matches no write at all.
    Phantom,
}

/// A broken guarantee, with where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The watcher.
    pub watcher_id: u64,
    /// The revision concerned.
    pub revision: i64,
    /// The guarantee.
    pub guarantee: Guarantee,
    /// Human-readable detail.
    pub detail: String,
}

fn in_range(req: &WatchRequest, key: &str) -> bool {
    match req.range_end.as_deref() {
        None => key == req.key,
        Some(RANGE_END_ALL) => key >= req.key.as_str(),
        Some(end) => key >= req.key.as_str() && key < end,
    }
}

fn matches(req: &WatchRequest, ev: &WatchEvent) -> bool {
    in_range(req, &ev.kv.key)
        && !(req.filter_no_put && ev.kind == EventKind::Put)
        && !(req.filter_no_delete && ev.kind == EventKind::Delete)
}

/// Checks every watcher against the writes; returns every violation found (empty: all good).
pub fn validate_watches(writes: &[WriteRevision], watchers: &[Watcher]) -> Vec<Violation> {
    let by_rev: BTreeMap<i64, &WriteRevision> = writes.iter().map(|w| (w.revision, w)).collect();
    let mut out = Vec::new();
    for w in watchers {
        validate_one(&by_rev, w, &mut out);
    }
    out
}

fn validate_one(by_rev: &BTreeMap<i64, &WriteRevision>, w: &Watcher, out: &mut Vec<Violation>) {
    let req = &w.request;
    let mut report = |revision, guarantee, detail: String| {
        out.push(Violation {
            watcher_id: w.id,
            revision,
            guarantee,
            detail,
        });
    };
    // (revision, position within the revision's writes, response index)
    let mut delivered: Vec<(i64, usize, usize)> = Vec::new();
    let mut seen: HashSet<(i64, usize)> = HashSet::new();
    let mut bookmarks: Vec<(usize, i64)> = Vec::new();
    for (ri, resp) in w.responses.iter().enumerate() {
        if resp.canceled || resp.compact_revision > 0 {
            break;
        }
        if resp.progress_notify && resp.events.is_empty() {
            bookmarks.push((ri, resp.revision));
        }
        for ev in &resp.events {
            let rev = ev.revision();
            if !in_range(req, &ev.kv.key) {
                report(
                    rev,
                    Guarantee::Filter,
                    format!("key {:?} is outside the watched range", ev.kv.key),
                );
            }
            if (req.filter_no_put && ev.kind == EventKind::Put)
                || (req.filter_no_delete && ev.kind == EventKind::Delete)
            {
                report(
                    rev,
                    Guarantee::Filter,
                    format!("{:?} event on {:?} should be filtered", ev.kind, ev.kv.key),
                );
            }
            let Some(pos) = by_rev.get(&rev).and_then(|wr| {
                wr.events
                    .iter()
                    .position(|e| e.kind == ev.kind && e.kv.key == ev.kv.key)
            }) else {
                report(
                    rev,
                    Guarantee::Phantom,
                    format!("{:?} of {:?} matches no write", ev.kind, ev.kv.key),
                );
                continue;
            };
            let truth = &by_rev[&rev].events[pos];
            if ev.kv != truth.kv {
                report(
                    rev,
                    Guarantee::CreateModify,
                    format!("event {:?} differs from the write {:?}", ev.kv, truth.kv),
                );
            }
            let want_prev = if req.prev_kv {
                truth.prev_kv.as_ref()
            } else {
                None
            };
            if ev.prev_kv.as_ref() != want_prev {
                report(
                    rev,
                    Guarantee::PrevKv,
                    format!("prev_kv {:?}, expected {:?}", ev.prev_kv, want_prev),
                );
            }
            if !seen.insert((rev, pos)) {
                report(
                    rev,
                    Guarantee::Unique,
                    format!("{:?} of {:?} delivered twice", ev.kind, ev.kv.key),
                );
                continue;
            }
            if let Some(&(prev_rev, prev_pos, _)) = delivered.last() {
                if (rev, pos) < (prev_rev, prev_pos) {
                    report(
                        rev,
                        Guarantee::Ordered,
                        format!("revision {rev} arrives after revision {prev_rev}"),
                    );
                }
            }
            delivered.push((rev, pos, ri));
        }
    }
    // Atomic: every delivered revision's matching events all arrived in one response.
    let mut response_of_rev: BTreeMap<i64, HashSet<usize>> = BTreeMap::new();
    for &(rev, _, ri) in &delivered {
        response_of_rev.entry(rev).or_default().insert(ri);
    }
    for (&rev, responses) in &response_of_rev {
        if responses.len() > 1 {
            report(
                rev,
                Guarantee::Atomic,
                format!(
                    "events of revision {rev} split over {} responses",
                    responses.len()
                ),
            );
        }
    }
    // Expected matching events from the first deliverable revision on.
    let first_rev = if req.start_revision > 0 {
        req.start_revision
    } else {
        w.created_revision + 1
    };
    let expected: Vec<(i64, usize)> = by_rev
        .range(first_rev..)
        .flat_map(|(&rev, wr)| {
            wr.events
                .iter()
                .enumerate()
                .filter(|(_, e)| matches(req, e))
                .map(move |(pos, _)| (rev, pos))
        })
        .collect();
    // Resumable: the first delivered event is the first expected one.
    if let (Some(&(rev, pos, _)), Some(&first)) = (delivered.first(), expected.first()) {
        if (rev, pos) != first {
            report(
                rev,
                Guarantee::Resumable,
                format!(
                    "first event at revision {rev}, expected revision {}",
                    first.0
                ),
            );
        }
    }
    // Reliable: nothing missing between the first and last delivered, or up to a bookmark.
    let last_delivered = delivered.iter().map(|d| d.0).max().unwrap_or(0);
    let last_bookmark = bookmarks.iter().map(|b| b.1).max().unwrap_or(0);
    let horizon = last_delivered.max(last_bookmark);
    let first_delivered = delivered.first().map_or(first_rev, |d| d.0.min(first_rev));
    for &(rev, pos) in &expected {
        if rev >= first_delivered && rev <= horizon && !seen.contains(&(rev, pos)) {
            let key = &by_rev[&rev].events[pos].kv.key;
            report(
                rev,
                Guarantee::Reliable,
                format!("event on {key:?} at revision {rev} never delivered"),
            );
        }
    }
    // Bookmarkable: no event at or below a bookmark's revision arrives after it.
    for &(bi, brev) in &bookmarks {
        if let Some(&(rev, _, _)) = delivered
            .iter()
            .find(|&&(rev, _, ri)| ri > bi && rev <= brev)
        {
            report(
                rev,
                Guarantee::Bookmarkable,
                format!("event at revision {rev} after a progress notification at {brev}"),
            );
        }
    }
}
