//! criterion benchmarks: the porcupine comparison inputs and a generated etcd history.
//! Run: `cargo bench -p gauntlet-checker`.

use criterion::{criterion_group, criterion_main, Criterion};
use gauntlet_checker::gen::{etcd_history, GenConfig};
use gauntlet_checker::import::{kv_history, parse_jepsen_edn, parse_jepsen_log, register_history};
use gauntlet_checker::models::etcd::EtcdModel;
use gauntlet_checker::models::kv::KvModel;
use gauntlet_checker::models::register::RegisterModel;
use gauntlet_checker::{check, CheckOptions};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/porcupine/test_data"
);

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e} (shared test data missing?)"))
}

fn benches(c: &mut Criterion) {
    let logs: Vec<_> = (0..=102)
        .map(|n| {
            register_history(
                &parse_jepsen_log(&read(&format!("{DATA}/jepsen/etcd_{n:03}.log"))).unwrap(),
            )
            .unwrap()
        })
        .collect();
    c.bench_function("jepsen_etcd_all_103_logs", |b| {
        b.iter(|| {
            for h in &logs {
                check(&RegisterModel, h, &CheckOptions::default()).unwrap();
            }
        })
    });
    let kv: Vec<_> = ["ok", "bad"]
        .iter()
        .map(|k| {
            kv_history(&parse_jepsen_edn(&read(&format!("{DATA}/kv/c10-{k}.txt"))).unwrap())
                .unwrap()
        })
        .collect();
    let mut group = c.benchmark_group("slow");
    group.sample_size(10);
    group.bench_function("kv_c10_unpartitioned", |b| {
        b.iter(|| {
            for h in &kv {
                check(
                    &KvModel {
                        partition_by_key: false,
                    },
                    h,
                    &CheckOptions::default(),
                )
                .unwrap();
            }
        })
    });
    let etcd = etcd_history(&GenConfig {
        seed: 1,
        ops: 5000,
        ..GenConfig::default()
    });
    group.bench_function("etcd_generated_5000_ops", |b| {
        b.iter(|| check(&EtcdModel, &etcd, &CheckOptions::default()).unwrap())
    });
    group.finish();
}

criterion_group!(checker, benches);
criterion_main!(checker);
