//! From what the recording client saw to what the checker reads.
//!
//! The harness records gRPC requests and responses ([`OpRecord`], [`WatchRecord`]);
//! the checker's etcd model and watch validator take their own plain types. This is
//! the one translation between them. Keys and values are text in the model: the
//! traffic only writes UTF-8, and anything else is rendered lossily (and would then
//! fail the check, which is right: nobody wrote it).

use gauntlet_api::etcdserverpb as pb;
use gauntlet_checker::models::etcd::{
    Compare, CompareResult, CompareTarget, EtcdRequest, EtcdResponse, KeyValue, RangeRequest,
    RangeResult, TxnOp, TxnOpResponse, RANGE_END_ALL,
};
use gauntlet_checker::watch::{EventKind, WatchEvent, WatchResponse};
use gauntlet_checker::{Operation, Outcome as CheckOutcome};
use gauntlet_harness::{Call, OpRecord, Outcome, Return};

/// One operation of the checker's etcd model.
pub type EtcdOp = Operation<EtcdRequest, EtcdResponse>;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn range_end(b: &[u8]) -> Option<String> {
    match b {
        [] => None,
        [0] => Some(RANGE_END_ALL.to_string()),
        e => Some(text(e)),
    }
}

/// A model key-value from a wire one.
pub fn kv(k: &gauntlet_api::mvccpb::KeyValue) -> KeyValue {
    KeyValue {
        key: text(&k.key),
        value: text(&k.value),
        create_revision: k.create_revision,
        mod_revision: k.mod_revision,
        version: k.version,
        lease: k.lease,
    }
}

fn range_req(r: &pb::RangeRequest) -> RangeRequest {
    RangeRequest {
        key: text(&r.key),
        range_end: range_end(&r.range_end),
        revision: r.revision,
        limit: r.limit,
        count_only: r.count_only,
    }
}

fn range_result(r: &pb::RangeResponse) -> RangeResult {
    RangeResult {
        kvs: r.kvs.iter().map(kv).collect(),
        count: r.count,
        more: r.more,
    }
}

fn revision(h: &Option<pb::ResponseHeader>) -> i64 {
    h.as_ref().map_or(0, |h| h.revision)
}

fn txn_op(op: &pb::RequestOp) -> Option<TxnOp> {
    use pb::request_op::Request;
    Some(match op.request.as_ref()? {
        Request::RequestRange(r) => TxnOp::Range(range_req(r)),
        Request::RequestPut(p) => TxnOp::Put {
            key: text(&p.key),
            value: text(&p.value),
            lease: p.lease,
        },
        Request::RequestDeleteRange(d) => TxnOp::Delete {
            key: text(&d.key),
            range_end: range_end(&d.range_end),
        },
        Request::RequestTxn(_) => return None,
    })
}

fn txn_op_response(r: &pb::ResponseOp) -> Option<TxnOpResponse> {
    use pb::response_op::Response;
    Some(match r.response.as_ref()? {
        Response::ResponseRange(r) => TxnOpResponse::Range(range_result(r)),
        Response::ResponsePut(_) => TxnOpResponse::Put,
        Response::ResponseDeleteRange(d) => TxnOpResponse::Delete { deleted: d.deleted },
        Response::ResponseTxn(_) => return None,
    })
}

fn compare(c: &pb::Compare) -> Option<Compare> {
    use pb::compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let target = match (T::try_from(c.target).ok()?, c.target_union.as_ref()?) {
        (T::Value, U::Value(v)) => CompareTarget::Value(text(v)),
        (T::Version, U::Version(v)) => CompareTarget::Version(*v),
        (T::Create, U::CreateRevision(v)) => CompareTarget::Create(*v),
        (T::Mod, U::ModRevision(v)) => CompareTarget::Mod(*v),
        _ => return None,
    };
    let result = match R::try_from(c.result).ok()? {
        R::Equal => CompareResult::Equal,
        R::NotEqual => CompareResult::NotEqual,
        R::Less => CompareResult::Less,
        R::Greater => CompareResult::Greater,
    };
    if !c.range_end.is_empty() {
        return None;
    }
    Some(Compare {
        key: text(&c.key),
        target,
        result,
    })
}

/// The model's request for a recorded call; `None` for calls the model does not
/// cover (they are left out of the linearizability check and said so).
pub fn request(call: &Call) -> Option<EtcdRequest> {
    Some(match call {
        Call::Range(r) if !r.keys_only && !r.serializable => EtcdRequest::Range(range_req(r)),
        Call::Put(p) if !p.ignore_value && !p.ignore_lease => EtcdRequest::Put {
            key: text(&p.key),
            value: text(&p.value),
            lease: p.lease,
        },
        Call::DeleteRange(d) => EtcdRequest::Delete {
            key: text(&d.key),
            range_end: range_end(&d.range_end),
        },
        Call::Txn(t) => EtcdRequest::Txn {
            compare: t.compare.iter().map(compare).collect::<Option<_>>()?,
            success: t.success.iter().map(txn_op).collect::<Option<_>>()?,
            failure: t.failure.iter().map(txn_op).collect::<Option<_>>()?,
        },
        Call::LeaseGrant(g) if g.id != 0 => EtcdRequest::LeaseGrant { id: g.id },
        Call::LeaseRevoke(r) => EtcdRequest::LeaseRevoke { id: r.id },
        Call::Compact(c) => EtcdRequest::Compact {
            revision: c.revision,
        },
        _ => return None,
    })
}

/// The model's response for a recorded answer.
pub fn response(ret: &Return) -> Option<EtcdResponse> {
    Some(match ret {
        Return::Range(r) => EtcdResponse::Range {
            result: range_result(r),
            revision: revision(&r.header),
        },
        Return::Put(p) => EtcdResponse::Put {
            revision: revision(&p.header),
        },
        Return::DeleteRange(d) => EtcdResponse::Delete {
            deleted: d.deleted,
            revision: revision(&d.header),
        },
        Return::Txn(t) => EtcdResponse::Txn {
            succeeded: t.succeeded,
            responses: t
                .responses
                .iter()
                .map(txn_op_response)
                .collect::<Option<_>>()?,
            revision: revision(&t.header),
        },
        Return::LeaseGrant(g) => EtcdResponse::LeaseGrant {
            revision: revision(&g.header),
        },
        Return::LeaseRevoke(r) => EtcdResponse::LeaseRevoke {
            revision: revision(&r.header),
        },
        Return::Compact(c) => EtcdResponse::Compact {
            revision: revision(&c.header),
        },
        _ => return None,
    })
}

/// A read the linearizability model leaves out — serializable (served from one
/// member's local state, not linearizable by contract) or keys-only — kept to be
/// judged against the store's state at the revision it claims (see
/// [`crate::validate`]). Only answered reads are kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SideRead {
    /// The recording client.
    pub client_id: u64,
    /// When it was sent, ns on the recording clock.
    pub call_ns: u64,
    /// First key.
    pub key: String,
    /// As in the model's range: `None` one key, `Some("\0")` every key from `key`.
    pub range_end: Option<String>,
    /// The revision asked for; 0 = the member's current one.
    pub revision: i64,
    /// At most this many keys; 0 = no limit.
    pub limit: i64,
    /// Only the count was asked for.
    pub count_only: bool,
    /// Only keys (no values) were asked for.
    pub keys_only: bool,
    /// Served from the member's local state.
    pub serializable: bool,
    /// The response header's revision.
    pub header_revision: i64,
    /// The key-values returned, in order.
    pub kvs: Vec<KeyValue>,
    /// The count returned.
    pub count: i64,
}

/// Every answered read [`request`] leaves out of the history (serializable or
/// keys-only ranges).
pub fn side_reads(records: &[OpRecord]) -> Vec<SideRead> {
    records
        .iter()
        .filter_map(|r| match (&r.call, r.outcome, r.ret.as_ref()) {
            (Call::Range(q), Outcome::Ok, Some(Return::Range(a)))
                if (q.serializable || q.keys_only)
                    && (q.sort_order == 0 || (q.sort_order == 1 && q.sort_target == 0))
                    && q.min_mod_revision == 0
                    && q.max_mod_revision == 0
                    && q.min_create_revision == 0
                    && q.max_create_revision == 0 =>
            {
                Some(SideRead {
                    client_id: r.client_id,
                    call_ns: r.invoke_ns,
                    key: text(&q.key),
                    range_end: range_end(&q.range_end),
                    revision: q.revision,
                    limit: q.limit,
                    count_only: q.count_only,
                    keys_only: q.keys_only,
                    serializable: q.serializable,
                    header_revision: revision(&a.header),
                    kvs: a.kvs.iter().map(kv).collect(),
                    count: a.count,
                })
            }
            _ => None,
        })
        .collect()
}

/// The history the checker judges: every recorded operation the model covers, with
/// the outcome [`gauntlet_harness::classify`] gave it. Returns the history and the
/// number of operations left out (not covered by the model).
pub fn history(records: &[OpRecord]) -> (Vec<EtcdOp>, usize) {
    let mut out = Vec::with_capacity(records.len());
    let mut left_out = 0;
    for r in records {
        let Some(input) = request(&r.call) else {
            left_out += 1;
            continue;
        };
        let outcome = match (r.outcome, r.ret.as_ref().and_then(response)) {
            (Outcome::Ok, Some(resp)) => CheckOutcome::Ok(resp),
            (Outcome::Ok, None) => {
                left_out += 1;
                continue;
            }
            (Outcome::Failed, _) => CheckOutcome::Failed,
            (Outcome::Unknown, _) => CheckOutcome::Unknown,
        };
        out.push(Operation {
            client_id: r.client_id,
            call_ns: r.invoke_ns,
            return_ns: r.complete_ns.max(r.invoke_ns),
            input,
            outcome,
        });
    }
    out.sort_by_key(|o| (o.call_ns, o.client_id));
    (out, left_out)
}

/// A watch response in the validator's terms.
pub fn watch_response(r: &pb::WatchResponse) -> WatchResponse {
    WatchResponse {
        revision: revision(&r.header),
        events: r
            .events
            .iter()
            .map(|e| WatchEvent {
                kind: if e.r#type == gauntlet_api::mvccpb::event::EventType::Delete as i32 {
                    EventKind::Delete
                } else {
                    EventKind::Put
                },
                kv: e.kv.as_ref().map(kv).unwrap_or(KeyValue {
                    key: String::new(),
                    value: String::new(),
                    create_revision: 0,
                    mod_revision: 0,
                    version: 0,
                    lease: 0,
                }),
                prev_kv: e.prev_kv.as_ref().map(kv),
            })
            .collect(),
        progress_notify: r.events.is_empty()
            && !r.created
            && !r.canceled
            && r.compact_revision == 0,
        compact_revision: r.compact_revision,
        canceled: r.canceled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_txns_translate() {
        let r = request(&Call::Range(pb::RangeRequest {
            key: b"/k/".to_vec(),
            range_end: b"/k0".to_vec(),
            revision: 3,
            ..Default::default()
        }));
        assert_eq!(
            r,
            Some(EtcdRequest::Range(RangeRequest {
                key: "/k/".into(),
                range_end: Some("/k0".into()),
                revision: 3,
                limit: 0,
                count_only: false
            }))
        );
        // Serializable reads are not linearizable by contract: not in the history.
        assert_eq!(
            request(&Call::Range(pb::RangeRequest {
                serializable: true,
                ..Default::default()
            })),
            None
        );
        let cas = pb::TxnRequest {
            compare: vec![pb::Compare {
                key: b"a".to_vec(),
                target: pb::compare::CompareTarget::Mod as i32,
                result: pb::compare::CompareResult::Equal as i32,
                target_union: Some(pb::compare::TargetUnion::ModRevision(4)),
                range_end: vec![],
            }],
            success: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                    key: b"a".to_vec(),
                    value: b"v".to_vec(),
                    ..Default::default()
                })),
            }],
            failure: vec![],
        };
        let Some(EtcdRequest::Txn {
            compare, success, ..
        }) = request(&Call::Txn(cas))
        else {
            panic!("txn");
        };
        assert_eq!(compare[0].target, CompareTarget::Mod(4));
        assert_eq!(success.len(), 1);
    }
}
