//! TEMPORARY stand-in for the state machine (replaced by the real MVCC store).
#![allow(missing_docs, dead_code, clippy::all)]
use gauntlet_api::etcdserverpb::*;
use gauntlet_api::mvccpb::{Event, KeyValue};
use gauntlet_api::rpctypes::{self, EtcdError};
use std::collections::BTreeMap;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    #[prost(oneof = "Op", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub op: Option<Op>,
}
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Op {
    #[prost(message, tag = "1")]
    Put(PutRequest),
    #[prost(message, tag = "2")]
    DeleteRange(DeleteRangeRequest),
    #[prost(message, tag = "3")]
    Txn(TxnRequest),
    #[prost(message, tag = "4")]
    Compaction(CompactionRequest),
    #[prost(message, tag = "5")]
    LeaseGrant(LeaseGrantRequest),
    #[prost(message, tag = "6")]
    LeaseRevoke(LeaseRevokeRequest),
    #[prost(message, tag = "7")]
    LeaseCheckpoint(LeaseCheckpointRequest),
}
#[derive(Debug)]
pub enum Response {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    LeaseCheckpoint(LeaseCheckpointResponse),
}
pub type ApplyOutcome = Result<Response, EtcdError>;
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("storage: {0}")]
    Storage(String),
}
pub fn validate(cmd: &Command, _max: usize) -> Result<(), EtcdError> {
    if let Some(Op::Put(p)) = &cmd.op {
        if p.key.is_empty() {
            return Err(rpctypes::EMPTY_KEY);
        }
    }
    Ok(())
}
pub fn validate_range(_req: &RangeRequest) -> Result<(), EtcdError> {
    Ok(())
}
#[derive(Debug, Clone)]
pub struct LeaseInfo {
    pub id: i64,
    pub granted_ttl: i64,
    pub remaining_ttl: i64,
    pub keys: Vec<Vec<u8>>,
}
#[derive(Debug, Clone, Default)]
pub struct WatchHub;
pub struct StateMachine {
    tree: sled::Tree,
    applied: u64,
    rev: i64,
    kv: BTreeMap<Vec<u8>, KeyValue>,
}
impl StateMachine {
    pub fn open(db: sled::Db) -> Result<Self, StateError> {
        let tree = db
            .open_tree("stub")
            .map_err(|e| StateError::Storage(e.to_string()))?;
        let applied = tree
            .get("applied")
            .ok()
            .flatten()
            .map(|v| u64::from_be_bytes(v.as_ref().try_into().unwrap()))
            .unwrap_or(0);
        Ok(Self {
            tree,
            applied,
            rev: 1,
            kv: BTreeMap::new(),
        })
    }
    pub fn applied_index(&self) -> u64 {
        self.applied
    }
    pub fn revision(&self) -> i64 {
        self.rev
    }
    pub fn compact_revision(&self) -> i64 {
        0
    }
    pub fn apply(&mut self, index: u64, cmd: &Command) -> Result<Option<ApplyOutcome>, StateError> {
        if index <= self.applied {
            return Ok(None);
        }
        self.applied = index;
        self.tree
            .insert("applied", &index.to_be_bytes())
            .map_err(|e| StateError::Storage(e.to_string()))?;
        Ok(Some(match &cmd.op {
            Some(Op::Put(p)) => {
                self.rev += 1;
                let prev = self.kv.get(&p.key).cloned();
                let kv = KeyValue {
                    key: p.key.clone(),
                    value: p.value.clone(),
                    create_revision: prev.as_ref().map(|k| k.create_revision).unwrap_or(self.rev),
                    mod_revision: self.rev,
                    version: prev.as_ref().map(|k| k.version).unwrap_or(0) + 1,
                    lease: p.lease,
                };
                self.kv.insert(p.key.clone(), kv);
                Ok(Response::Put(PutResponse {
                    header: None,
                    prev_kv: if p.prev_kv { prev } else { None },
                }))
            }
            _ => Err(rpctypes::NOT_CAPABLE),
        }))
    }
    pub fn apply_noop(&mut self, index: u64) -> Result<(), StateError> {
        if index > self.applied {
            self.applied = index;
        }
        Ok(())
    }
    pub fn flush(&self) -> Result<(), StateError> {
        self.tree
            .flush()
            .map(|_| ())
            .map_err(|e| StateError::Storage(e.to_string()))
    }
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, EtcdError> {
        let kvs: Vec<KeyValue> = self.kv.get(&req.key).cloned().into_iter().collect();
        Ok(RangeResponse {
            header: None,
            count: kvs.len() as i64,
            kvs,
            more: false,
        })
    }
    pub fn hash_kv(&self, _revision: i64) -> Result<HashKvResponse, EtcdError> {
        Ok(HashKvResponse::default())
    }
    pub fn lease(&self, _id: i64) -> Option<LeaseInfo> {
        None
    }
    pub fn leases(&self) -> Vec<LeaseInfo> {
        vec![]
    }
    pub fn db_size_bytes(&self) -> u64 {
        1
    }
    pub fn snapshot(&self) -> Result<Vec<u8>, StateError> {
        Ok(vec![])
    }
    pub fn restore(&mut self, index: u64, _data: &[u8]) -> Result<(), StateError> {
        self.applied = index;
        Ok(())
    }
    pub fn watch_hub(&self) -> WatchHub {
        WatchHub
    }
}
pub fn _unused(_: Event) {}
pub struct WatchSpec {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub start_revision: i64,
    pub prev_kv: bool,
    pub no_put: bool,
    pub no_delete: bool,
}
#[derive(Debug)]
pub enum WatchUpdate {
    Events { revision: i64, events: Vec<Event> },
    Compacted { compact_revision: i64 },
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WatcherId(pub u64);
impl WatchHub {
    pub fn watch(
        &self,
        _spec: WatchSpec,
        _tx: tokio::sync::mpsc::Sender<WatchUpdate>,
    ) -> WatcherId {
        WatcherId(0)
    }
    pub fn cancel(&self, _id: WatcherId) {}
    pub fn progress(&self, _id: WatcherId) -> Option<i64> {
        None
    }
}
