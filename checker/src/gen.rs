//! A deterministic generator of realistic etcd histories, for benchmarks and tests.
//!
//! It simulates a linearizable etcd server and `clients` closed-loop clients: each request is sent,
//! takes effect at one instant some time later (its linearization point, when it is applied to the
//! [`crate::models::etcd`] model), and its response arrives some time after that; then the client thinks
//! briefly and sends the next. Requests take effect in linearization-point order, so requests of
//! different clients overlap as on a real server. A fraction of requests lose their response: the
//! client records an unknown outcome after a timeout, and the request took effect or not (half each).
//! The same seed always gives the same history.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::history::{Operation, Outcome};
use crate::models::etcd::{
    apply, Compare, CompareResult, CompareTarget, EtcdModel, EtcdRequest, EtcdResponse,
    RangeRequest, TxnOp, RANGE_END_ALL,
};
use crate::Model;

/// Parameters of a generated history.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// RNG seed.
    pub seed: u64,
    /// Concurrent clients.
    pub clients: u64,
    /// Operations in total.
    pub ops: usize,
    /// Distinct keys (`key-0` ...).
    pub keys: usize,
    /// Fraction of operations whose response is lost (0.0..=1.0).
    pub unknown_ratio: f64,
    /// Longest delay from call to linearization point, and from there to return.
    pub max_latency_ns: u64,
    /// How long a client waits before recording an unknown outcome.
    pub timeout_ns: u64,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            clients: 8,
            ops: 1000,
            keys: 10,
            unknown_ratio: 0.02,
            max_latency_ns: 2_000_000,
            timeout_ns: 20_000_000,
        }
    }
}

/// A generated etcd history, in call order.
pub type EtcdHistory = Vec<Operation<EtcdRequest, EtcdResponse>>;

struct Pending {
    client: u64,
    call_ns: u64,
    request: EtcdRequest,
    unknown: bool,
}

/// Generates a linearizable etcd history.
pub fn etcd_history(config: &GenConfig) -> EtcdHistory {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let model = EtcdModel;
    let mut state = model.init();
    let mut history = Vec::with_capacity(config.ops);
    let mut heap: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut pending: Vec<Option<Pending>> = (0..config.clients).map(|_| None).collect();
    let mut next_value = 0u64;
    let mut next_lease = 0i64;
    let mut leases: Vec<i64> = Vec::new();
    let mut issued = 0usize;
    let mut issue = |client: u64,
                     now: u64,
                     rng: &mut StdRng,
                     state: &crate::models::etcd::EtcdState,
                     heap: &mut BinaryHeap<Reverse<(u64, u64)>>,
                     pending: &mut Vec<Option<Pending>>| {
        if issued >= config.ops {
            return;
        }
        issued += 1;
        next_value += 1;
        let request = random_request(rng, config, state, next_value, &mut next_lease, &mut leases);
        let call_ns = now + rng.gen_range(0..100_000);
        let lp = call_ns + rng.gen_range(1..=config.max_latency_ns);
        let unknown = rng.gen_bool(config.unknown_ratio);
        pending[client as usize] = Some(Pending {
            client,
            call_ns,
            request,
            unknown,
        });
        heap.push(Reverse((lp, client)));
    };
    for c in 0..config.clients {
        issue(c, 0, &mut rng, &state, &mut heap, &mut pending);
    }
    while let Some(Reverse((lp, client))) = heap.pop() {
        let Some(p) = pending[client as usize].take() else {
            continue;
        };
        let applied = !p.unknown || rng.gen_bool(0.5);
        let (return_ns, outcome) = if applied {
            let (after, response) = apply(&state, &p.request);
            state = after;
            if p.unknown {
                (
                    p.call_ns + config.timeout_ns.max(lp - p.call_ns + 1),
                    Outcome::Unknown,
                )
            } else {
                (
                    lp + rng.gen_range(1..=config.max_latency_ns),
                    Outcome::Ok(response),
                )
            }
        } else {
            (p.call_ns + config.timeout_ns, Outcome::Unknown)
        };
        history.push(Operation {
            client_id: p.client,
            call_ns: p.call_ns,
            return_ns,
            input: p.request,
            outcome,
        });
        issue(
            client,
            return_ns.max(lp),
            &mut rng,
            &state,
            &mut heap,
            &mut pending,
        );
    }
    history.sort_by_key(|op| op.call_ns);
    history
}

fn random_request(
    rng: &mut StdRng,
    config: &GenConfig,
    state: &crate::models::etcd::EtcdState,
    value_id: u64,
    next_lease: &mut i64,
    leases: &mut Vec<i64>,
) -> EtcdRequest {
    let key = format!("key-{}", rng.gen_range(0..config.keys.max(1)));
    let value = format!("v{value_id}");
    let roll = rng.gen_range(0..100);
    let single = |key: String| RangeRequest {
        key,
        range_end: None,
        revision: 0,
        limit: 0,
        count_only: false,
    };
    match roll {
        0..=34 => EtcdRequest::Range(single(key)),
        35..=39 => EtcdRequest::Range(RangeRequest {
            key: "key-".into(),
            range_end: Some(RANGE_END_ALL.into()),
            revision: 0,
            limit: rng.gen_range(0..4),
            count_only: rng.gen_bool(0.2),
        }),
        40..=44 => EtcdRequest::Range(RangeRequest {
            revision: (state.revision() - rng.gen_range(0..20)).max(1),
            ..single(key)
        }),
        45..=69 => EtcdRequest::Put {
            key,
            value,
            lease: 0,
        },
        70..=76 => EtcdRequest::Delete {
            key,
            range_end: None,
        },
        77..=91 => EtcdRequest::Txn {
            compare: vec![Compare {
                key: key.clone(),
                target: CompareTarget::Mod(state.revision() - rng.gen_range(0..5)),
                result: if rng.gen_bool(0.5) {
                    CompareResult::Less
                } else {
                    CompareResult::Equal
                },
            }],
            success: vec![TxnOp::Put {
                key: key.clone(),
                value,
                lease: 0,
            }],
            failure: vec![TxnOp::Range(single(key))],
        },
        92..=93 => {
            *next_lease += 1;
            leases.push(*next_lease);
            EtcdRequest::LeaseGrant { id: *next_lease }
        }
        94..=96 if !leases.is_empty() => {
            let lease = leases[rng.gen_range(0..leases.len())];
            EtcdRequest::Put { key, value, lease }
        }
        97..=98 if !leases.is_empty() => {
            let lease = leases.swap_remove(rng.gen_range(0..leases.len()));
            EtcdRequest::LeaseRevoke { id: lease }
        }
        99 => EtcdRequest::Compact {
            revision: (state.revision() - 50).max(1),
        },
        _ => EtcdRequest::Range(single(key)),
    }
}
