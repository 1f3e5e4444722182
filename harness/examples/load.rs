//! Loads N keys into a cluster as fast as it takes them (for memory and throughput
//! measurements until the bench suite exists).
//!
//! `cargo run --release -p gauntlet-harness --example load -- ENDPOINTS KEYS VALUE_BYTES [CONCURRENCY]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use gauntlet_harness::{Client, ClientConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: load ENDPOINTS KEYS VALUE_BYTES [CONCURRENCY]".into());
    }
    let endpoints: Vec<String> = args[0].split(',').map(String::from).collect();
    let keys: u64 = args[1].parse()?;
    let value_bytes: usize = args[2].parse()?;
    let concurrency: u64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(64);
    if keys == 0 || concurrency == 0 {
        return Err("KEYS and CONCURRENCY must be positive".into());
    }
    let client = Client::connect(ClientConfig::new(endpoints)).await?;
    let value = vec![b'v'; value_bytes];
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, value, next, errors) =
            (client.clone(), value.clone(), next.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= keys {
                    return;
                }
                if client
                    .put(format!("/load/{i:010}"), value.clone())
                    .await
                    .is_err()
                {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{keys} puts of {value_bytes} B in {secs:.1} s: {:.0} puts/s, {} errors",
        keys as f64 / secs,
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}
