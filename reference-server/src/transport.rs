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
use std::sync::{Arc, OnceLock};
use std::time::Duration;

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
/// Largest peer message (snapshots included).
pub const MAX_PEER_MESSAGE: usize = 1 << 30;

/// Connection to one peer's peer URL.
pub fn peer_channel(url: &str) -> Result<Channel, String> {
    Ok(Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("peer URL {url}: {e}"))?
        .connect_timeout(Duration::from_secs(1))
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true)
        .connect_lazy())
}

/// The raft loop's outbox: one queue and one sending task per peer.
#[derive(Debug, Clone)]
pub struct Transport {
    queues: Arc<HashMap<u64, mpsc::Sender<Message>>>,
}

impl Outbox for Transport {
    fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            if let Some(q) = self.queues.get(&m.to) {
                let _ = q.try_send(m);
            }
        }
    }
}

impl Transport {
    /// Starts a sender task per peer (`peers`: id → connection to its peer URL). `node` is filled in once
    /// the raft loop runs; until then failures are not reported.
    pub fn start(
        rt: &tokio::runtime::Handle,
        cluster_id: u64,
        from: u64,
        peers: &HashMap<u64, Channel>,
        node: Arc<OnceLock<NodeHandle>>,
    ) -> Transport {
        let mut queues = HashMap::new();
        for (&id, channel) in peers {
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            rt.spawn(send_loop(
                id,
                channel.clone(),
                rx,
                cluster_id,
                from,
                node.clone(),
            ));
            queues.insert(id, tx);
        }
        Transport {
            queues: Arc::new(queues),
        }
    }
}

/// An open `RaftStream` call: batches go into `tx`; the call runs in `task`.
struct OpenStream {
    tx: mpsc::Sender<peerpb::RaftBatch>,
    task: tokio::task::JoinHandle<()>,
}

impl OpenStream {
    fn open(client: &PeerClient<Channel>) -> OpenStream {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let mut client = client.clone();
        let task = tokio::spawn(async move {
            // Its end (peer gone, stream broken) closes `rx`, which the sender notices.
            let _ = client
                .raft_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await;
        });
        OpenStream { tx, task }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn send_loop(
    id: u64,
    channel: Channel,
    mut rx: mpsc::Receiver<Message>,
    cluster_id: u64,
    from: u64,
    node: Arc<OnceLock<NodeHandle>>,
) {
    let client = PeerClient::new(channel)
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE);
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
            matches!(
                tokio::time::timeout(SNAPSHOT_TIMEOUT, c.raft(req)).await,
                Ok(Ok(_))
            )
        } else {
            if stream.as_ref().is_some_and(|s| s.tx.is_closed()) {
                stream = None; // the call ended: report it, then open a new one
                if let Some(node) = node.get() {
                    node.report_unreachable(id);
                }
            }
            let s = stream.get_or_insert_with(|| OpenStream::open(&client));
            let sent = matches!(
                tokio::time::timeout(SEND_TIMEOUT, s.tx.send(req)).await,
                Ok(Ok(()))
            );
            if !sent {
                stream = None;
            }
            sent
        };
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
