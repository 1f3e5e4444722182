//! Watch streams on every member, kept for the whole round and resumed after errors.
//!
//! Each member gets one watcher over the traffic's key range with `prev_kv` and
//! progress notifications, starting at revision 1. When its stream breaks (the member
//! was killed, paused, or cut off) it reopens from the revision after the last one it
//! saw; a stream told "compacted" reopens at the compaction revision. Every stream is
//! one [`Watcher`] segment for the checker's validator (which checks resumption too).
//! A progress request every [`PROGRESS_EVERY`] keeps bookmarks coming.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gauntlet_api::etcdserverpb as pb;
use gauntlet_checker::watch::{WatchRequest, Watcher};
use gauntlet_harness::Client;

use crate::convert::watch_response;
use crate::traffic::{PREFIX, PREFIX_END};

/// Time between progress requests on an idle stream.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Time between attempts to reopen a broken stream.
const REOPEN_EVERY: Duration = Duration::from_millis(200);

/// What one member's watcher collected.
#[derive(Debug, Clone)]
pub struct MemberWatch {
    /// The member.
    pub member: usize,
    /// Its stream segments, in order.
    pub segments: Vec<Watcher>,
    /// The highest revision it is known to have delivered (events or bookmarks).
    pub reached: i64,
}

/// The watchers of a round.
#[derive(Debug)]
pub struct Watchers {
    stop: Arc<AtomicBool>,
    target: Arc<AtomicI64>,
    tasks: Vec<tokio::task::JoinHandle<MemberWatch>>,
}

impl Watchers {
    /// Starts one watcher per endpoint of `base` (endpoint `i` is member `i`).
    pub fn start(base: &Client) -> Result<Watchers, gauntlet_harness::ClientError> {
        let stop = Arc::new(AtomicBool::new(false));
        let target = Arc::new(AtomicI64::new(i64::MAX));
        let mut tasks = Vec::new();
        for member in 0..base.endpoints().len() {
            let client = base.pinned(member)?;
            let stop = stop.clone();
            let target = target.clone();
            tasks.push(tokio::spawn(watch_member(member, client, stop, target)));
        }
        Ok(Watchers {
            stop,
            target,
            tasks,
        })
    }

    /// Tells the watchers to finish once they reached `revision`, and waits at most
    /// `deadline` for them; watchers still short of it stop where they are (their
    /// `reached` says how far they got).
    pub async fn finish(self, revision: i64, deadline: Duration) -> Vec<MemberWatch> {
        self.target.store(revision, Ordering::SeqCst);
        let stop = self.stop.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            stop.store(true, Ordering::SeqCst);
        });
        let mut out = Vec::new();
        for t in self.tasks {
            if let Ok(w) = t.await {
                out.push(w);
            }
        }
        timer.abort();
        out
    }
}

async fn watch_member(
    member: usize,
    client: Client,
    stop: Arc<AtomicBool>,
    target: Arc<AtomicI64>,
) -> MemberWatch {
    let mut w = MemberWatch {
        member,
        segments: Vec::new(),
        reached: 0,
    };
    let mut next = 1i64;
    let done =
        |w: &MemberWatch| stop.load(Ordering::SeqCst) || w.reached >= target.load(Ordering::SeqCst);
    while !done(&w) {
        let create = pb::WatchCreateRequest {
            key: PREFIX.into(),
            range_end: PREFIX_END.into(),
            start_revision: next,
            progress_notify: true,
            prev_kv: true,
            ..Default::default()
        };
        let (mut stream, created) = match client.watch(create).await {
            Ok(x) => x,
            Err(_) => {
                tokio::time::sleep(REOPEN_EVERY).await;
                continue;
            }
        };
        let id = (member as u64) * 10_000 + w.segments.len() as u64;
        let mut seg = Watcher {
            id,
            request: WatchRequest {
                key: PREFIX.into(),
                range_end: Some(PREFIX_END.into()),
                start_revision: next,
                filter_no_put: false,
                filter_no_delete: false,
                prev_kv: true,
            },
            created_revision: created.header.as_ref().map_or(0, |h| h.revision),
            responses: Vec::new(),
        };
        if created.canceled || created.compact_revision > 0 {
            seg.responses.push(watch_response(&created));
            if created.compact_revision > next {
                next = created.compact_revision;
            }
            w.segments.push(seg);
            tokio::time::sleep(REOPEN_EVERY).await;
            continue;
        }
        loop {
            if done(&w) {
                break;
            }
            match stream.recv(PROGRESS_EVERY).await {
                Ok(r) => {
                    let resp = watch_response(&r);
                    for e in &resp.events {
                        w.reached = w.reached.max(e.kv.mod_revision);
                    }
                    if resp.progress_notify {
                        w.reached = w.reached.max(resp.revision);
                    }
                    let compacted = r.compact_revision;
                    let canceled = r.canceled;
                    seg.responses.push(resp);
                    if compacted > 0 {
                        next = next.max(compacted);
                        break;
                    }
                    if canceled {
                        break;
                    }
                }
                Err(gauntlet_harness::ClientError::Timeout { .. }) => {
                    if stream.request_progress().await.is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        next = next.max(w.reached + 1);
        w.segments.push(seg);
    }
    w
}
