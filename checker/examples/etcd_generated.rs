//! Checks a generated etcd history (default: 100,000 operations, 8 clients, 2% unknown outcomes):
//!
//! ```text
//! cargo run --release -p gauntlet-checker --example etcd_generated -- [ops] [seed] [unknown_ratio]
//! ```

use std::time::Instant;

use gauntlet_checker::gen::{etcd_history, GenConfig};
use gauntlet_checker::models::etcd::EtcdModel;
use gauntlet_checker::{check, CheckOptions, Outcome};

fn main() {
    let mut args = std::env::args().skip(1);
    let ops: usize = args
        .next()
        .map_or(100_000, |a| a.parse().expect("ops must be a number"));
    let seed: u64 = args
        .next()
        .map_or(1, |a| a.parse().expect("seed must be a number"));
    let unknown_ratio: f64 = args
        .next()
        .map_or(0.02, |a| a.parse().expect("unknown ratio must be a number"));
    let config = GenConfig {
        seed,
        ops,
        unknown_ratio,
        ..GenConfig::default()
    };
    let started = Instant::now();
    let history = etcd_history(&config);
    let unknown = history
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Unknown))
        .count();
    println!(
        "generated ops={} unknown={unknown} in {} ms",
        history.len(),
        started.elapsed().as_millis()
    );
    let r = check(&EtcdModel, &history, &CheckOptions::default()).expect("check");
    println!(
        "verdict={} elapsed_ms={} cache_entries={} distinct_states={}",
        r.verdict.as_str(),
        r.elapsed_ms,
        r.partitions[0].cache_entries,
        r.partitions[0].distinct_states
    );
}
