//! Watch: one task per stream, feeding each watcher from the watch hub.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::Ordering;

use futures::{Stream, StreamExt as _};
use gauntlet_api::etcdserverpb::{self as pb, watch_server::Watch};
use gauntlet_api::rpctypes;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::Ctx;
use crate::state::{self, WatchSpec, WatchUpdate};

/// Responses queued per watch stream before the stream's watchers wait.
const WATCH_STREAM_QUEUE: usize = 1024;
/// Updates queued per watcher before it falls back to catching up from history.
const WATCHER_QUEUE: usize = 256;

/// Watch service.
#[derive(Debug, Clone)]
pub struct WatchService(pub Ctx);

struct Watcher {
    hub_id: state::WatcherId,
    progress_notify: bool,
    fragment: bool,
}

impl Ctx {
    /// Why a watch on `[key, range_end)` is refused to these credentials, if it is: the
    /// user needs READ on the whole range ("\0" is every key from `key` on: the range,
    /// not just `key`, as etcd checks it since 3.5.33, GHSA-xg4h-6gfc-h4m8). The
    /// reason names the auth error, as etcd >= 3.5.28 does.
    async fn watch_denied(
        &self,
        creds: &crate::auth::Credentials,
        key: &[u8],
        range_end: &[u8],
    ) -> Option<String> {
        let reason = |e: rpctypes::EtcdError| match e {
            e if e == rpctypes::INVALID_AUTH_TOKEN
                || e == rpctypes::AUTH_OLD_REVISION
                || e == rpctypes::USER_EMPTY =>
            {
                e.go_error_string()
            }
            _ => rpctypes::PERMISSION_DENIED.go_error_string(),
        };
        let who = match self.authn.header(&self.node, creds).await {
            Ok(w) => w,
            Err(e) => return Some(reason(e)),
        };
        self.node
            .read_state()
            .auth()
            .check(&who, key, range_end, crate::state::auth::Access::Read)
            .err()
            .map(reason)
    }
}

impl WatchService {
    fn split(&self, resp: pb::WatchResponse, fragment: bool) -> Vec<pb::WatchResponse> {
        if !fragment || resp.encoded_len() <= self.0.max_request_bytes || resp.events.len() <= 1 {
            return vec![resp];
        }
        let mut out = Vec::new();
        let mut cur = pb::WatchResponse {
            events: vec![],
            ..resp.clone()
        };
        let mut size = 0usize;
        for e in resp.events {
            let len = e.encoded_len();
            if !cur.events.is_empty() && size + len > self.0.max_request_bytes {
                let next = pb::WatchResponse {
                    events: vec![],
                    ..cur.clone()
                };
                cur.fragment = true;
                out.push(std::mem::replace(&mut cur, next));
                size = 0;
            }
            size += len;
            cur.events.push(e);
        }
        cur.fragment = false;
        out.push(cur);
        out
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send + 'static>>;

    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let creds = crate::auth::Credentials::of(&request);
        Ok(Response::new(self.serve(creds, request.into_inner())))
    }
}

impl WatchService {
    /// Serves one watch stream: requests from `inbound` (a gRPC stream, or the JSON
    /// gateway's), responses on the returned stream, with `creds` for every create.
    pub fn serve<S>(
        &self,
        creds: crate::auth::Credentials,
        mut inbound: S,
    ) -> <Self as Watch>::WatchStream
    where
        S: Stream<Item = Result<pb::WatchRequest, Status>> + Send + Unpin + 'static,
    {
        let (out_tx, out_rx) =
            mpsc::channel::<Result<pb::WatchResponse, Status>>(WATCH_STREAM_QUEUE);
        let this = self.clone();
        tokio::spawn(async move {
            let hub = this.0.node.read_state().watch_hub();
            let (upd_tx, mut upd_rx) = mpsc::channel::<(i64, WatchUpdate)>(WATCH_STREAM_QUEUE);
            let mut watchers: HashMap<i64, Watcher> = HashMap::new();
            let mut next_id: i64 = 0;
            // A client's progress request being answered: (token, watchers whose marker
            // has not come through yet, lowest marker revision so far).
            let mut stream_progress: Option<(u64, std::collections::HashSet<i64>, i64)> = None;
            let mut next_token: u64 = 0;
            let mut progress = tokio::time::interval(this.0.progress_interval);
            progress.tick().await;
            loop {
                tokio::select! {
                    req = inbound.next() => {
                        let req = match req { Some(Ok(r)) => r, _ => break };
                        let Some(union) = req.request_union else { continue };
                        let resp = match union {
                            pb::watch_request::RequestUnion::CreateRequest(c) => {
                                let refuse = |reason: &str| pb::WatchResponse { header: this.0.current_header(), watch_id: c.watch_id, created: true, canceled: true, cancel_reason: reason.to_string(), ..Default::default() };
                                let denied = this.0.watch_denied(&creds, &c.key, &c.range_end).await;
                                if let Some(reason) = denied {
                                    refuse(&reason)
                                } else if c.watch_id != 0 && watchers.contains_key(&c.watch_id) {
                                    refuse(rpctypes::MVCC_DUPLICATE_WATCH_ID_MSG)
                                } else if (c.key.is_empty() && c.range_end.is_empty())
                                    // A range [key, end) with end <= key holds nothing ("\0" means "from key").
                                    || (!c.range_end.is_empty() && c.range_end != [0] && c.key >= c.range_end)
                                {
                                    refuse(rpctypes::MVCC_EMPTY_WATCHER_RANGE_MSG)
                                } else {
                                    let id = if c.watch_id != 0 {
                                        c.watch_id
                                    } else {
                                        while watchers.contains_key(&next_id) { next_id += 1; }
                                        next_id
                                    };
                                    let spec = WatchSpec {
                                        key: c.key.clone(),
                                        range_end: c.range_end.clone(),
                                        start_revision: c.start_revision,
                                        prev_kv: c.prev_kv,
                                        no_put: c.filters.contains(&(pb::watch_create_request::FilterType::Noput as i32)),
                                        no_delete: c.filters.contains(&(pb::watch_create_request::FilterType::Nodelete as i32)),
                                    };
                                    let (wtx, mut wrx) = mpsc::channel(WATCHER_QUEUE);
                                    let header = this.0.current_header();
                                    let hub_id = hub.watch(spec, wtx);
                                    let fwd = upd_tx.clone();
                                    tokio::spawn(async move {
                                        while let Some(u) = wrx.recv().await {
                                            if fwd.send((id, u)).await.is_err() { return; }
                                        }
                                    });
                                    watchers.insert(id, Watcher { hub_id, progress_notify: c.progress_notify, fragment: c.fragment });
                                    pb::WatchResponse { header, watch_id: id, created: true, ..Default::default() }
                                }
                            }
                            pb::watch_request::RequestUnion::CancelRequest(c) => {
                                match watchers.remove(&c.watch_id) {
                                    Some(w) => {
                                        hub.cancel(w.hub_id);
                                        // A canceled watcher's marker will never come.
                                        if let Some((_, waiting, _)) = stream_progress.as_mut() {
                                            waiting.remove(&c.watch_id);
                                            if waiting.is_empty() { stream_progress = None; }
                                        }
                                        pb::WatchResponse { header: this.0.current_header(), watch_id: c.watch_id, canceled: true, ..Default::default() }
                                    }
                                    None => continue,
                                }
                            }
                            pb::watch_request::RequestUnion::ProgressRequest(_) => {
                                // Answered once every watcher's marker came through its
                                // queue (so no event at or below the answer's revision is
                                // still unsent); not at all while one is catching up, as
                                // etcd does.
                                if watchers.is_empty() {
                                    pb::WatchResponse { header: this.0.current_header(), watch_id: -1, ..Default::default() }
                                } else if stream_progress.is_some() {
                                    continue;
                                } else {
                                    next_token += 1;
                                    let token = next_token;
                                    let asked: Vec<i64> = watchers
                                        .iter()
                                        .filter(|(_, w)| hub.request_progress(w.hub_id, token))
                                        .map(|(id, _)| *id)
                                        .collect();
                                    if asked.len() == watchers.len() {
                                        stream_progress = Some((token, asked.into_iter().collect(), i64::MAX));
                                    }
                                    continue;
                                }
                            }
                        };
                        if out_tx.send(Ok(resp)).await.is_err() { break; }
                    }
                    Some((id, update)) = upd_rx.recv() => {
                        let Some(w) = watchers.get(&id) else { continue };
                        let term = this.0.node.status.term.load(Ordering::Relaxed);
                        if let WatchUpdate::Progress { revision, token } = update {
                            if token == 0 {
                                // A periodic notification for this watcher.
                                let resp = pb::WatchResponse { header: this.0.header(revision, term), watch_id: id, ..Default::default() };
                                if out_tx.send(Ok(resp)).await.is_err() { return; }
                                continue;
                            }
                            let done = match stream_progress.as_mut() {
                                Some((t, waiting, min_rev)) if *t == token => {
                                    waiting.remove(&id);
                                    *min_rev = (*min_rev).min(revision);
                                    waiting.is_empty().then_some(*min_rev)
                                }
                                _ => None,
                            };
                            if let Some(rev) = done {
                                stream_progress = None;
                                let resp = pb::WatchResponse { header: this.0.header(rev, term), watch_id: -1, ..Default::default() };
                                if out_tx.send(Ok(resp)).await.is_err() { return; }
                            }
                            continue;
                        }
                        let (resp, dead) = match update {
                            WatchUpdate::Events { revision, events } => (pb::WatchResponse { header: this.0.header(revision, term), watch_id: id, events, ..Default::default() }, false),
                            WatchUpdate::Compacted { compact_revision } => (pb::WatchResponse { header: this.0.current_header(), watch_id: id, canceled: true, compact_revision, ..Default::default() }, true),
                            WatchUpdate::Progress { .. } => continue,
                        };
                        let fragment = w.fragment;
                        if dead {
                            if let Some(w) = watchers.remove(&id) { hub.cancel(w.hub_id); }
                            if let Some((_, waiting, _)) = stream_progress.as_mut() {
                                waiting.remove(&id);
                                if waiting.is_empty() { stream_progress = None; }
                            }
                        }
                        crate::failpoints::hit_async("beforeSendWatchResponse").await;
                        for part in this.split(resp, fragment) {
                            if out_tx.send(Ok(part)).await.is_err() { return; }
                        }
                    }
                    _ = progress.tick() => {
                        // Markers, not answers: each watcher's notification is sent
                        // when its marker comes out of its queue, after its events.
                        for w in watchers.values() {
                            if w.progress_notify {
                                hub.request_progress(w.hub_id, 0);
                            }
                        }
                    }
                }
            }
            for w in watchers.values() {
                hub.cancel(w.hub_id);
            }
        });
        Box::pin(ReceiverStream::new(out_rx))
    }
}
