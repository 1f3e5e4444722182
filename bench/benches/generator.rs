//! Micro-benchmarks of the generator's hot paths: what every operation pays before it
//! reaches the network. Run: `cargo bench -p gauntlet-bench --bench generator`.

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use gauntlet_api::etcdserverpb as pb;
use gauntlet_bench::keys::{self, KeySpace};
use gauntlet_bench::{txn_put_request, Recorder};
use prost::Message;

fn key_generation(c: &mut Criterion) {
    let random = KeySpace::new(8, 100_000, false, 1);
    let sequential = KeySpace::new(8, 100_000, true, 1);
    let mut i = 0u64;
    c.bench_function("key/random-8B", |b| {
        b.iter(|| {
            i += 1;
            black_box(random.key(i))
        })
    });
    c.bench_function("key/sequential-8B", |b| {
        b.iter(|| {
            i += 1;
            black_box(sequential.key(i))
        })
    });
    let epoch = Instant::now();
    let template = keys::value(256, 1);
    c.bench_function("value/stamped-256B", |b| {
        b.iter(|| black_box(keys::stamped(&template, epoch)))
    });
}

fn histogram_recording(c: &mut Criterion) {
    let start = Instant::now();
    let rec = Recorder::new("put", start);
    let mut n = 0u64;
    c.bench_function("recorder/record-ok", |b| {
        b.iter(|| {
            n += 1;
            rec.record(
                n as usize,
                start,
                Duration::from_micros(500 + n % 5000),
                Ok(()),
            );
        })
    });
}

fn request_building(c: &mut Criterion) {
    let ks = KeySpace::new(8, 100_000, false, 1);
    let value = keys::value(256, 1);
    let mut i = 0u64;
    c.bench_function("request/put-256B-build-encode", |b| {
        b.iter(|| {
            i += 1;
            let req = pb::PutRequest {
                key: ks.key(i),
                value: value.clone(),
                ..Default::default()
            };
            black_box(req.encode_to_vec())
        })
    });
    c.bench_function("request/txn-put-8ops-build-encode", |b| {
        b.iter(|| {
            i += 1;
            black_box(txn_put_request(&ks, 100_000, 8, &value, i).encode_to_vec())
        })
    });
}

criterion_group!(
    benches,
    key_generation,
    histogram_recording,
    request_building
);
criterion_main!(benches);
