//! Verdicts on porcupine's public test histories agree with porcupine's own (porcupine_test.go).

use gauntlet_checker::import::{kv_history, parse_jepsen_edn, parse_jepsen_log, register_history};
use gauntlet_checker::models::kv::KvModel;
use gauntlet_checker::models::register::RegisterModel;
use gauntlet_checker::{check, CheckOptions, Verdict};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/porcupine/test_data"
);

/// The Jepsen etcd logs porcupine expects to be linearizable; every other one is not. Log 095 is empty
/// (its cluster never started) and porcupine does not test it; an empty history is linearizable.
const LINEARIZABLE_LOGS: [usize; 24] = [
    2, 5, 7, 18, 25, 31, 38, 45, 48, 49, 51, 53, 56, 67, 75, 76, 80, 87, 92, 95, 98, 100, 101, 102,
];

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("cannot read {path}: {e}. The shared test data must be at ../shared/data/porcupine (see SOURCE.md)")
    })
}

#[test]
fn jepsen_etcd_register_logs_match_porcupine() {
    for n in 0..=102 {
        let text = read(&format!("{DATA}/jepsen/etcd_{n:03}.log"));
        let history = register_history(&parse_jepsen_log(&text).unwrap()).unwrap();
        let result = check(&RegisterModel, &history, &CheckOptions::default()).unwrap();
        let expected = if LINEARIZABLE_LOGS.contains(&n) {
            Verdict::Linearizable
        } else {
            Verdict::NotLinearizable
        };
        assert_eq!(result.verdict, expected, "etcd_{n:03}.log");
        if expected == Verdict::NotLinearizable {
            assert!(
                !result.partitions[0].unplaceable.is_empty(),
                "etcd_{n:03}.log names no unplaceable op"
            );
        }
    }
}

#[test]
fn kv_histories_match_porcupine_with_and_without_partitioning() {
    for clients in ["01", "10", "50"] {
        for (kind, expected) in [
            ("ok", Verdict::Linearizable),
            ("bad", Verdict::NotLinearizable),
        ] {
            let text = read(&format!("{DATA}/kv/c{clients}-{kind}.txt"));
            let history = kv_history(&parse_jepsen_edn(&text).unwrap()).unwrap();
            let partitioned =
                check(&KvModel::default(), &history, &CheckOptions::default()).unwrap();
            assert_eq!(
                partitioned.verdict, expected,
                "c{clients}-{kind} partitioned"
            );
            if clients != "50" {
                let model = KvModel {
                    partition_by_key: false,
                };
                let whole = check(&model, &history, &CheckOptions::default()).unwrap();
                assert_eq!(whole.verdict, expected, "c{clients}-{kind} unpartitioned");
            }
        }
    }
}
