//! Property tests: the search agrees with the brute-force oracle on small random histories.
//!
//! Failures print the minimal failing history and save the seed in
//! `brute_force_agreement.proptest-regressions` (keep it: it holds a real bug we fixed). Rerun with
//! `cargo test -p gauntlet-checker --test brute_force_agreement` (saved seeds replay first); a deeper
//! run: `PROPTEST_CASES=200000 cargo test --release -p gauntlet-checker --test brute_force_agreement`.

use gauntlet_checker::brute::brute_force;
use gauntlet_checker::models::etcd::{
    Compare, CompareResult, CompareTarget, EtcdError, EtcdModel, EtcdRequest, EtcdResponse,
    KeyValue, RangeRequest, RangeResult, TxnOp, TxnOpResponse,
};
use gauntlet_checker::models::kv::{KvInput, KvModel, KvOp, KvOutput};
use gauntlet_checker::models::register::{RegisterInput, RegisterModel, RegisterOutput};
use gauntlet_checker::{check, CheckOptions, Model, Operation, Outcome, Verdict};
use proptest::prelude::*;

fn agree<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> Result<(), TestCaseError> {
    let oracle = brute_force(model, history).unwrap();
    let fast = check(model, history, &CheckOptions::default()).unwrap();
    let expected = if oracle {
        Verdict::Linearizable
    } else {
        Verdict::NotLinearizable
    };
    prop_assert_eq!(fast.verdict, expected, "history: {:#?}", history);
    Ok(())
}

fn timing() -> impl Strategy<Value = (u64, u64, u64)> {
    (0u64..4, 0u64..20, 0u64..8).prop_map(|(client, call, len)| (client, call, call + len))
}

fn outcome<O: std::fmt::Debug + Clone>(out: O, kind: u8) -> Outcome<O> {
    match kind {
        0 => Outcome::Unknown,
        1 => Outcome::Failed,
        _ => Outcome::Ok(out),
    }
}

fn register_op() -> impl Strategy<Value = Operation<RegisterInput, RegisterOutput>> {
    let io = prop_oneof![
        proptest::option::of(0i64..3).prop_map(|v| (RegisterInput::Read, RegisterOutput::Read(v))),
        (0i64..3).prop_map(|v| (RegisterInput::Write(v), RegisterOutput::Write)),
        (0i64..3, 0i64..3, any::<bool>()).prop_map(|(f, t, ok)| (
            RegisterInput::Cas { from: f, to: t },
            RegisterOutput::Cas(ok)
        )),
    ];
    (timing(), io, 0u8..8).prop_map(|((client_id, call_ns, return_ns), (input, out), k)| {
        Operation {
            client_id,
            call_ns,
            return_ns,
            input,
            outcome: outcome(out, k),
        }
    })
}

fn kv_op() -> impl Strategy<Value = Operation<KvInput, KvOutput>> {
    let io = (
        0u8..3,
        0u8..2,
        prop_oneof![Just(""), Just("a"), Just("b"), Just("ab"), Just("ba")],
    )
        .prop_map(|(op, key, v)| {
            let op = [KvOp::Get, KvOp::Put, KvOp::Append][op as usize];
            let input = KvInput {
                op,
                key: format!("k{key}"),
                value: if op == KvOp::Get {
                    String::new()
                } else {
                    v.chars().take(1).collect()
                },
            };
            (
                input,
                KvOutput {
                    value: if op == KvOp::Get {
                        v.to_string()
                    } else {
                        String::new()
                    },
                },
            )
        });
    (timing(), io, 0u8..8).prop_map(|((client_id, call_ns, return_ns), (input, out), k)| {
        Operation {
            client_id,
            call_ns,
            return_ns,
            input,
            outcome: outcome(out, k),
        }
    })
}

fn etcd_op() -> impl Strategy<Value = Operation<EtcdRequest, EtcdResponse>> {
    let io = (0u8..10, 0u8..2, 1i64..5, 0u8..3).prop_map(|(kind, key, rev, val)| {
        let key = format!("k{key}");
        let range = |revision| RangeRequest {
            key: key.clone(),
            range_end: None,
            revision,
            limit: 0,
            count_only: false,
        };
        match kind {
            0 => (
                EtcdRequest::Put {
                    key,
                    value: format!("v{val}"),
                    lease: 0,
                },
                EtcdResponse::Put { revision: rev },
            ),
            1 => (
                EtcdRequest::Put {
                    key,
                    value: format!("v{val}"),
                    lease: 1,
                },
                EtcdResponse::Put { revision: rev },
            ),
            2 => (
                EtcdRequest::Delete {
                    key,
                    range_end: None,
                },
                EtcdResponse::Delete {
                    deleted: i64::from(val % 2),
                    revision: rev,
                },
            ),
            3 => (
                EtcdRequest::LeaseGrant { id: 1 },
                EtcdResponse::LeaseGrant { revision: rev },
            ),
            4 => (
                EtcdRequest::LeaseRevoke { id: 1 },
                EtcdResponse::LeaseRevoke { revision: rev },
            ),
            5 => (
                EtcdRequest::Compact {
                    revision: i64::from(val) + 1,
                },
                if val == 0 {
                    EtcdResponse::Compact { revision: rev }
                } else {
                    EtcdResponse::Error(EtcdError::Compacted)
                },
            ),
            6 => (
                EtcdRequest::Range(range(rev - 1)),
                EtcdResponse::Error(EtcdError::Compacted),
            ),
            8 | 9 => (
                EtcdRequest::Txn {
                    compare: vec![Compare {
                        key: key.clone(),
                        target: CompareTarget::Value(format!("v{}", (val + 1) % 3)),
                        result: if kind == 8 {
                            CompareResult::Equal
                        } else {
                            CompareResult::Less
                        },
                    }],
                    success: vec![TxnOp::Put {
                        key: key.clone(),
                        value: format!("v{val}"),
                        lease: 0,
                    }],
                    failure: vec![TxnOp::Range(range(0))],
                },
                EtcdResponse::Txn {
                    succeeded: true,
                    responses: vec![TxnOpResponse::Put],
                    revision: rev,
                },
            ),
            _ => {
                let kvs = if val == 0 {
                    Vec::new()
                } else {
                    vec![KeyValue {
                        key: key.clone(),
                        value: format!("v{val}"),
                        create_revision: rev.min(2),
                        mod_revision: rev,
                        version: 1 + i64::from(rev > 2),
                        lease: 0,
                    }]
                };
                let count = kvs.len() as i64;
                (
                    EtcdRequest::Range(range(0)),
                    EtcdResponse::Range {
                        result: RangeResult {
                            kvs,
                            count,
                            more: false,
                        },
                        revision: rev,
                    },
                )
            }
        }
    });
    (timing(), io, 0u8..8).prop_map(|((client_id, call_ns, return_ns), (input, out), k)| {
        Operation {
            client_id,
            call_ns,
            return_ns,
            input,
            outcome: outcome(out, k),
        }
    })
}

/// The generators must produce both verdicts often, or the agreement tests prove little.
#[test]
fn random_histories_are_not_all_one_verdict() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = proptest::collection::vec(register_op(), 0..=7);
    let mut linearizable = 0;
    let samples = 1000;
    for _ in 0..samples {
        let history = strategy.new_tree(&mut runner).unwrap().current();
        linearizable += usize::from(brute_force(&RegisterModel, &history).unwrap());
    }
    assert!(
        (samples / 10..samples * 9 / 10).contains(&linearizable),
        "{linearizable} of {samples} random register histories are linearizable"
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES=50000 for a deeper run.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn register_agrees_with_brute_force(history in proptest::collection::vec(register_op(), 0..=7)) {
        agree(&RegisterModel, &history)?;
    }

    #[test]
    fn kv_agrees_with_brute_force(history in proptest::collection::vec(kv_op(), 0..=7)) {
        agree(&KvModel::default(), &history)?;
        agree(&KvModel { partition_by_key: false }, &history)?;
    }

    #[test]
    fn etcd_agrees_with_brute_force(history in proptest::collection::vec(etcd_op(), 0..=7)) {
        agree(&EtcdModel, &history)?;
    }
}
