//! Member-to-member transport: raft messages batched per peer over gRPC, plus the
//! small peer RPCs (member info, lease renewals forwarded to the leader).

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
/// Deadline of a batch without a snapshot.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of a batch carrying a snapshot.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest peer message (snapshots included).
pub const MAX_PEER_MESSAGE: usize = 1 << 30;

/// Connection to one peer's peer URL.
pub fn peer_channel(url: &str) -> Result<Channel, String> {
    Ok(Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("peer URL {url}: {e}"))?
        .connect_timeout(Duration::from_secs(1))
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

async fn send_loop(
    id: u64,
    channel: Channel,
    mut rx: mpsc::Receiver<Message>,
    cluster_id: u64,
    from: u64,
    node: Arc<OnceLock<NodeHandle>>,
) {
    let mut client = PeerClient::new(channel)
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE);
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
        let timeout = if snapshot {
            SNAPSHOT_TIMEOUT
        } else {
            SEND_TIMEOUT
        };
        let ok = matches!(
            tokio::time::timeout(timeout, client.raft(req)).await,
            Ok(Ok(_))
        );
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
