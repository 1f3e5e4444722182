//! Member-to-member transport: raft messages batched per peer over gRPC, plus the
//! small peer RPCs (member info, lease renewals forwarded to the leader).
//!
//! Each peer gets one sending task. Steady traffic (appends, acks, heartbeats,
//! forwarded proposals) travels as batches on one long-lived client stream
//! (`RaftStream`), so a batch costs one HTTP/2 data frame rather than a whole call
//! with headers, trailers and an answer to wait for. A snapshot travels alone in a
//! unary `Raft` call with its own deadline, and its outcome is reported to raft.
//!
//! Failures are reported to raft as "unreachable" (it then probes the peer); whatever
//! was in flight on a broken stream is lost, which raft tolerates by resending. A
//! batch that cannot enter the stream within [`SEND_TIMEOUT`] (a stuck peer) breaks
//! the stream too, and the next batch opens a new one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use crate::node::{NodeHandle, Outbox};
use crate::peerpb::{self, peer_client::PeerClient};

/// Messages queued per peer before new ones are dropped (raft resends).
const PEER_QUEUE: usize = 4096;
/// Most messages in one batch.
const BATCH_MESSAGES: usize = 512;
/// Most bytes in one batch (a snapshot always travels alone).
const BATCH_BYTES: usize = 8 << 20;
/// How long a batch may wait to enter the peer's stream.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Batches buffered between the sending task and the stream.
const STREAM_QUEUE: usize = 64;
/// HTTP/2 pings on an idle peer connection, and how long an answer may take.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of a batch carrying a snapshot.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a peer is probed: its round trip measured, and its answer counted as
/// hearing from it (a follower hears no raft messages from the other followers).
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Deadline of one round-trip probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Silence from a peer longer than this ends its active streak (raft heartbeats come
/// every heartbeat interval, probes every [`PROBE_INTERVAL`]).
const HEARD_GAP: Duration = Duration::from_secs(3);
/// Largest peer message (snapshots included).
pub const MAX_PEER_MESSAGE: usize = 1 << 30;

/// How this member dials peers over TLS (presents its peer certificate, verifies
/// theirs): the client side of `--peer-*` ([`crate::tls::Resolved::client_config`]).
pub type PeerTls = Arc<rustls::ClientConfig>;

/// Deadline of a plaintext dial.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline of a TLS dial: the TCP connect and the handshake together.
const TLS_DIAL_TIMEOUT: Duration = Duration::from_secs(3);

/// Connection to one peer's peer URL (lazy: dialed on first use, redialed after a
/// failure). An `https://` URL is dialed over TLS with `tls`, and without it is an
/// error: this member has no peer certificate to talk to that peer with.
pub fn peer_channel(url: &str, tls: Option<&PeerTls>) -> Result<Channel, String> {
    let https = url.starts_with("https://");
    // With a connector of our own tonic wants an http:// URI; TLS is ours.
    let plain_url = match url.strip_prefix("https://") {
        Some(rest) => format!("http://{rest}"),
        None => url.to_string(),
    };
    let endpoint = Endpoint::from_shared(plain_url)
        .map_err(|e| format!("peer URL {url}: {e}"))?
        .connect_timeout(if https {
            TLS_DIAL_TIMEOUT
        } else {
            DIAL_TIMEOUT
        })
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    if !https {
        return Ok(endpoint.connect_lazy());
    }
    let tls = tls.ok_or_else(|| {
        format!(
            "peer URL {url} is https but this member has no peer TLS (--peer-cert-file and --peer-key-file, or --peer-auto-tls)"
        )
    })?;
    Ok(endpoint.connect_with_connector_lazy(crate::tls::PeerConnector::new(tls.clone())))
}

/// What one peer link did, for the leaderless warning ([`Outbox::links`]): a cluster
/// that never elects says whether its messages left, and how their streams ended.
#[derive(Debug, Default)]
struct LinkStats {
    /// `RaftStream` calls opened.
    streams: AtomicU64,
    /// Batches handed to a stream or a unary call.
    batches: AtomicU64,
    /// Batches that could not be sent (stream gone or stuck, call failed).
    failed: AtomicU64,
    /// Messages dropped because the link's queue was full.
    dropped: AtomicU64,
    /// How the last stream or call ended in error.
    last_error: std::sync::Mutex<Option<String>>,
    /// How the last failed round-trip probe failed (whether the connection works at all).
    probe_error: std::sync::Mutex<Option<String>>,
}

impl LinkStats {
    fn error(&self, e: impl std::fmt::Display) {
        remember(&self.last_error, e);
    }

    fn probe_failed(&self, e: impl std::fmt::Display) {
        remember(&self.probe_error, e);
    }

    fn line(&self, id: u64, heard: Option<Duration>) -> String {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let heard = heard.map_or_else(
            || "never heard from".to_string(),
            |d| format!("heard from {} ms ago", d.as_millis()),
        );
        let text = |m: &std::sync::Mutex<Option<String>>| {
            m.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
                .unwrap_or_else(|| "none".into())
        };
        let (last, probe) = (text(&self.last_error), text(&self.probe_error));
        format!(
            "{id:x}: {} streams, {} batches sent, {} failed, {} messages dropped, {heard}, last error: {last}, last probe error: {probe}",
            n(&self.streams),
            n(&self.batches),
            n(&self.failed),
            n(&self.dropped),
        )
    }
}

fn remember(slot: &std::sync::Mutex<Option<String>>, e: impl std::fmt::Display) {
    *slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
}

/// One peer as the transport knows it.
#[derive(Debug)]
struct PeerLink {
    urls: Vec<String>,
    queue: mpsc::Sender<Message>,
    client: PeerClient<Channel>,
    stats: Arc<LinkStats>,
    /// The link's prober runs while this lives.
    _alive: Arc<()>,
}

#[derive(Debug)]
struct Inner {
    rt: tokio::runtime::Handle,
    cluster_id: u64,
    from: u64,
    node: Arc<OnceLock<NodeHandle>>,
    /// Peer TLS, for peers with `https://` URLs.
    tls: Option<PeerTls>,
    peers: RwLock<HashMap<u64, PeerLink>>,
    /// Per peer: since when it has been heard from without a gap longer than
    /// [`HEARD_GAP`], and when last (etcd's "active since").
    heard: RwLock<HashMap<u64, (Instant, Instant)>>,
}

/// The raft loop's outbox: one queue and one sending task per peer. The set of peers
/// follows the member table ([`Transport::set_peers`]): a member added gets a link, a
/// removed one loses it (its sending task ends with its queue).
#[derive(Debug, Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl Outbox for Transport {
    fn send(&self, msgs: Vec<Message>) {
        let peers = self
            .inner
            .peers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for m in msgs {
            if let Some(p) = peers.get(&m.to) {
                if p.queue.try_send(m).is_err() {
                    p.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn set_peers(&self, members: &[(u64, Vec<String>)]) {
        Transport::set_peers(self, members);
    }

    fn links(&self) -> String {
        let peers = self
            .inner
            .peers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let heard = self
            .inner
            .heard
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut ids: Vec<&u64> = peers.keys().collect();
        ids.sort();
        ids.into_iter()
            .map(|id| {
                let last = heard.get(id).map(|(_, last)| last.elapsed());
                peers[id].stats.line(*id, last)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Transport {
    /// A transport with no peers yet; `node` is filled in once the raft loop runs (until
    /// then failures are not reported). `tls` dials peers whose URL is `https://`.
    pub fn new(
        rt: &tokio::runtime::Handle,
        cluster_id: u64,
        from: u64,
        node: Arc<OnceLock<NodeHandle>>,
        tls: Option<PeerTls>,
    ) -> Transport {
        Transport {
            inner: Arc::new(Inner {
                rt: rt.clone(),
                cluster_id,
                from,
                node,
                tls,
                peers: RwLock::new(HashMap::new()),
                heard: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// Makes the peers exactly `members` (this member excluded): new ones get a link,
    /// ones whose URLs changed get a new one, missing ones are dropped. A URL that does
    /// not parse leaves that member without a link (logged).
    pub fn set_peers(&self, members: &[(u64, Vec<String>)]) {
        // Called from the raft thread too: channels need the runtime's context.
        let _runtime = self.inner.rt.enter();
        let mut peers = self
            .inner
            .peers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        peers.retain(|id, link| {
            members
                .iter()
                .any(|(m, urls)| m == id && *urls == link.urls)
        });
        for (id, urls) in members {
            if *id == self.inner.from || peers.contains_key(id) {
                continue;
            }
            let Some(url) = urls.first() else { continue };
            let channel = match peer_channel(url, self.inner.tls.as_ref()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(member = %format!("{id:x}"), "no link to a member: {e}");
                    continue;
                }
            };
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            let stats = Arc::new(LinkStats::default());
            let client = PeerClient::new(channel)
                .max_decoding_message_size(MAX_PEER_MESSAGE)
                .max_encoding_message_size(MAX_PEER_MESSAGE);
            self.inner.rt.spawn(send_loop(
                *id,
                client.clone(),
                rx,
                Link {
                    cluster_id: self.inner.cluster_id,
                    from: self.inner.from,
                    node: self.inner.node.clone(),
                    stats: stats.clone(),
                },
            ));
            let alive = Arc::new(());
            self.inner.rt.spawn(probe(
                Arc::downgrade(&self.inner),
                *id,
                client.clone(),
                Arc::downgrade(&alive),
                stats.clone(),
            ));
            peers.insert(
                *id,
                PeerLink {
                    urls: urls.clone(),
                    queue: tx,
                    client,
                    stats,
                    _alive: alive,
                },
            );
        }
    }

    /// The peer RPC client of member `id`, if it is a peer.
    pub fn client(&self, id: u64) -> Option<PeerClient<Channel>> {
        self.inner
            .peers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .map(|p| p.client.clone())
    }

    /// Records that a raft batch arrived from `id`.
    pub fn heard_from(&self, id: u64) {
        let now = Instant::now();
        let mut heard = self
            .inner
            .heard
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = heard.entry(id).or_insert((now, now));
        if now.duration_since(e.1) > HEARD_GAP {
            e.0 = now;
        }
        e.1 = now;
    }

    /// Whether `id` has been heard from without a gap for at least `for_at_least`
    /// (etcd's transport "active since" a time that long ago).
    pub fn active_for(&self, id: u64, for_at_least: Duration) -> bool {
        self.inner
            .heard
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .is_some_and(|(since, last)| {
                last.elapsed() <= HEARD_GAP && since.elapsed() >= for_at_least
            })
    }
}

/// Probes a peer every [`PROBE_INTERVAL`] (a MemberInfo call) until the link is
/// dropped: the round trip goes to `etcd_network_peer_round_trip_time_seconds`, and an
/// answer counts as hearing from the peer ([`Transport::active_for`]).
async fn probe(
    transport: std::sync::Weak<Inner>,
    id: u64,
    mut client: PeerClient<Channel>,
    alive: std::sync::Weak<()>,
    stats: Arc<LinkStats>,
) {
    let label = format!("{id:x}");
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        if alive.upgrade().is_none() {
            return;
        }
        let start = Instant::now();
        let call = client.member_info(peerpb::MemberInfoRequest {});
        match tokio::time::timeout(PROBE_TIMEOUT, call).await {
            Ok(Ok(_)) => {
                if let Some(inner) = transport.upgrade() {
                    Transport { inner }.heard_from(id);
                }
                crate::metrics::get()
                    .peer_round_trip_time_seconds
                    .with_label_values(&[label.as_str()])
                    .observe(start.elapsed().as_secs_f64());
            }
            Ok(Err(s)) => stats.probe_failed(s),
            Err(_) => stats.probe_failed("deadline exceeded"),
        }
    }
}

/// An open `RaftStream` call: batches go into `tx`; the call runs in `task`.
struct OpenStream {
    tx: mpsc::Sender<peerpb::RaftBatch>,
    task: tokio::task::JoinHandle<()>,
}

impl OpenStream {
    fn open(client: &PeerClient<Channel>, link: &Link) -> OpenStream {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let mut client = client.clone();
        let (node, stats) = (link.node.clone(), link.stats.clone());
        stats.streams.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(async move {
            // Its end (peer gone, stream broken) closes `rx`, which the sender notices.
            let r = client
                .raft_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await;
            if let Err(s) = r {
                stats.error(format_args!("stream: {s}"));
                told_removed(&s, &node);
            }
        });
        OpenStream { tx, task }
    }
}

/// A peer answering that this member was removed stops it (it may never apply its own
/// removal: the leader stops sending to it once the removal is applied).
fn told_removed(s: &tonic::Status, node: &OnceLock<NodeHandle>) {
    if s.message() == crate::peer::MEMBER_REMOVED {
        if let Some(node) = node.get() {
            if !node
                .status
                .removed
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!("a peer says this member was removed from the cluster: stopping");
            }
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a link's sending task needs besides its client and queue.
struct Link {
    cluster_id: u64,
    from: u64,
    node: Arc<OnceLock<NodeHandle>>,
    stats: Arc<LinkStats>,
}

async fn send_loop(
    id: u64,
    client: PeerClient<Channel>,
    mut rx: mpsc::Receiver<Message>,
    link: Link,
) {
    let Link {
        cluster_id,
        from,
        ref node,
        ref stats,
    } = link;
    let mut stream: Option<OpenStream> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut snapshot = batch[0].get_msg_type() == MessageType::MsgSnapshot;
        let mut bytes = 0usize;
        while !snapshot && batch.len() < BATCH_MESSAGES && bytes < BATCH_BYTES {
            match rx.try_recv() {
                Ok(m) => {
                    snapshot = m.get_msg_type() == MessageType::MsgSnapshot;
                    bytes += m.compute_size() as usize;
                    batch.push(m);
                }
                Err(_) => break,
            }
        }
        let messages: Vec<Vec<u8>> = batch
            .iter()
            .filter_map(|m| m.write_to_bytes().ok())
            .collect();
        let req = peerpb::RaftBatch {
            cluster_id,
            from,
            messages,
        };
        let ok = if snapshot {
            // Everything before the snapshot in this batch rides along in the call.
            let mut c = client.clone();
            match tokio::time::timeout(SNAPSHOT_TIMEOUT, c.raft(req)).await {
                Ok(Ok(_)) => true,
                Ok(Err(s)) => {
                    stats.error(format_args!("snapshot: {s}"));
                    told_removed(&s, node);
                    false
                }
                Err(_) => {
                    stats.error("snapshot: deadline exceeded");
                    false
                }
            }
        } else {
            if stream.as_ref().is_some_and(|s| s.tx.is_closed()) {
                stream = None; // the call ended: report it, then open a new one
                if let Some(node) = node.get() {
                    node.report_unreachable(id);
                }
            }
            let s = stream.get_or_insert_with(|| OpenStream::open(&client, &link));
            let sent = matches!(
                tokio::time::timeout(SEND_TIMEOUT, s.tx.send(req)).await,
                Ok(Ok(()))
            );
            if !sent {
                if !s.tx.is_closed() {
                    stats.error("stream: stuck (a batch waited longer than the send deadline)");
                }
                stream = None;
            }
            sent
        };
        if ok {
            stats.batches.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(node) = node.get() {
            if !ok {
                node.report_unreachable(id);
            }
            if snapshot {
                node.report_snapshot(id, ok);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_account_says_what_left_and_how_it_ended() {
        let s = LinkStats::default();
        assert_eq!(
            s.line(0xab, None),
            "ab: 0 streams, 0 batches sent, 0 failed, 0 messages dropped, never heard from, last error: none, last probe error: none"
        );
        s.streams.fetch_add(2, Ordering::Relaxed);
        s.batches.fetch_add(5, Ordering::Relaxed);
        s.failed.fetch_add(1, Ordering::Relaxed);
        s.error(format_args!("stream: {}", "transport error"));
        s.probe_failed("deadline exceeded");
        let line = s.line(0xab, Some(Duration::from_millis(1500)));
        assert_eq!(
            line,
            "ab: 2 streams, 5 batches sent, 1 failed, 0 messages dropped, heard from 1500 ms ago, last error: stream: transport error, last probe error: deadline exceeded"
        );
    }
}
