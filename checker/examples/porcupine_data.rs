//! Benchmark driver for the porcupine comparison (run under `/usr/bin/time -v` for peak RSS):
//!
//! ```text
//! cargo run --release -p gauntlet-checker --example porcupine_data -- jepsen
//! cargo run --release -p gauntlet-checker --example porcupine_data -- kv10
//! ```
//!
//! `jepsen`: all 103 Jepsen etcd register logs. `kv10`: the 10-client key-value histories (ok and bad),
//! without partitioning, as in porcupine's published figures.

use std::time::Instant;

use gauntlet_checker::import::{kv_history, parse_jepsen_edn, parse_jepsen_log, register_history};
use gauntlet_checker::models::kv::KvModel;
use gauntlet_checker::models::register::RegisterModel;
use gauntlet_checker::{check, CheckOptions};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/porcupine/test_data"
);

fn main() {
    let which = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "jepsen".to_string());
    let started = Instant::now();
    match which.as_str() {
        "jepsen" => {
            for n in 0..=102 {
                let path = format!("{DATA}/jepsen/etcd_{n:03}.log");
                let text = std::fs::read_to_string(&path).expect("read jepsen log");
                let history =
                    register_history(&parse_jepsen_log(&text).expect("parse")).expect("convert");
                let r = check(&RegisterModel, &history, &CheckOptions::default()).expect("check");
                println!(
                    "etcd_{n:03} {} ops={} elapsed_ms={} cache_entries={}",
                    r.verdict.as_str(),
                    history.len(),
                    r.elapsed_ms,
                    r.partitions[0].cache_entries
                );
            }
        }
        "kv10" | "kv50" | "kv1" => {
            let c = &which[2..];
            for kind in ["ok", "bad"] {
                let path = format!("{DATA}/kv/c{c:0>2}-{kind}.txt");
                let text = std::fs::read_to_string(&path).expect("read kv history");
                let history =
                    kv_history(&parse_jepsen_edn(&text).expect("parse")).expect("convert");
                let model = KvModel {
                    partition_by_key: false,
                };
                let r = check(&model, &history, &CheckOptions::default()).expect("check");
                println!(
                    "c{c:0>2}-{kind} {} ops={} elapsed_ms={} cache_entries={} states={}",
                    r.verdict.as_str(),
                    history.len(),
                    r.elapsed_ms,
                    r.partitions[0].cache_entries,
                    r.partitions[0].distinct_states
                );
            }
        }
        other => panic!("unknown data set {other:?}: use jepsen or kv10"),
    }
    println!("total elapsed_ms={}", started.elapsed().as_millis());
}
