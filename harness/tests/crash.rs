//! Crash safety: 10 writers against 3 members while a random member (leader
//! included) is SIGKILLed and restarted every couple of seconds, then every member
//! SIGKILLed at once and restarted. Afterwards every acknowledged write must be
//! present and HashKV must agree on all members at one revision.
//!
//! etcd 3.5.0–3.5.2 can lose acknowledged writes or diverge exactly here (a member's
//! consistent index was not saved atomically with its data: etcd#13766, fixed in
//! 3.5.3). Against etcd 3.5.1 a loss or divergence is reported as that known issue
//! instead of failing; etcd 3.4.23 and the reference server are held to the full check.
//!
//! Randomized with one seed: `GAUNTLET_SEED=<n>` reruns a failing schedule; the seed
//! and the rerun command are printed on failure.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gauntlet_api::etcdserverpb as pb;
use gauntlet_harness::{Client, ClientConfig, Cluster};
use rand::{Rng, SeedableRng};

/// How long members are crashed and restarted while writers run.
const FAULT_PHASE: Duration = Duration::from_secs(25);
/// Writers.
const WRITERS: usize = 10;
/// How long a member may take to apply up to the final revision before its HashKV.
const CATCH_UP: Duration = Duration::from_secs(60);

fn seed() -> u64 {
    std::env::var("GAUNTLET_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

/// A documented etcd bug that excuses lost or diverged data on one target.
const ETCD_13766: &str = "etcd#13766 (https://github.com/etcd-io/etcd/issues/13766): \
a SIGKILL under load can leave a member's consistent index ahead of its data; fixed in 3.5.3";

async fn crash_and_verify(cluster: Cluster, test: &str, known_issue: Option<&str>) {
    let seed = seed();
    let rerun =
        format!("GAUNTLET_SEED={seed} cargo nextest run -p gauntlet-harness --test crash {test}");
    eprintln!("seed {seed}; rerun with: {rerun}");
    let cluster = Arc::new(cluster);
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut cfg = ClientConfig::new(cluster.endpoints());
        cfg.command_timeout = Duration::from_secs(3);
        cfg.dial_timeout = Duration::from_secs(1);
        let client = Client::connect(cfg).await.unwrap();
        let acked = acked.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let key = format!("/crash/w{w}/{seq}");
                let value = format!("v{w}-{seq}");
                if client.put(key.clone(), value.clone()).await.is_ok() {
                    acked.lock().unwrap().insert(key, value);
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() < FAULT_PHASE {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(800..2500))).await;
        let victim = if rng.gen_bool(0.4) {
            cluster.leader().await.unwrap_or(0)
        } else {
            rng.gen_range(0..3)
        };
        cluster.kill(victim).unwrap();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1500))).await;
        cluster.restart(victim).unwrap();
    }
    // Everyone at once.
    for i in 0..3 {
        cluster.kill(i).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    for i in 0..3 {
        cluster.restart(i).unwrap();
    }
    cluster
        .wait_ready(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("cluster did not recover: {e}\n{rerun}"));
    let client = cluster.client().await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "only {} writes were acknowledged in {FAULT_PHASE:?} with {kills} kills; {rerun}",
        acked.len()
    );
    let all = client.get_prefix("/crash/").await.unwrap();
    let stored: HashMap<String, String> = all
        .kvs
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
            )
        })
        .collect();
    let lost: Vec<&String> = acked
        .keys()
        .filter(|k| stored.get(*k) != acked.get(*k))
        .collect();
    if !lost.is_empty() {
        if let Some(issue) = known_issue {
            eprintln!(
                "KNOWN ISSUE: {} of {} acknowledged writes lost or changed, e.g. {:?}: {issue}",
                lost.len(),
                acked.len(),
                lost.iter().take(5).collect::<Vec<_>>()
            );
            return;
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost or changed, e.g. {:?}; {rerun}",
        lost.len(),
        acked.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    // HashKV at one revision on every member.
    let rev = client
        .put("/crash/final", "x")
        .await
        .unwrap()
        .header
        .unwrap()
        .revision;
    // A member that restarted last may still be applying what it missed ("future
    // revision"): it has CATCH_UP to reach the revision, which a loaded CI machine
    // needs (10 s was once too short after a full-cluster crash).
    let mut hashes = Vec::new();
    for i in 0..3 {
        let member = cluster.member_client(i).await.unwrap();
        let start = Instant::now();
        let h = loop {
            match member.hash_kv(pb::HashKvRequest { revision: rev }).await {
                Ok(h) => break h.hash,
                Err(e) if start.elapsed() < CATCH_UP => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    // What the member has applied, by its own (serializable) account.
                    let own = member
                        .range(pb::RangeRequest {
                            key: b"/crash/".to_vec(),
                            range_end: b"/crash0".to_vec(),
                            count_only: true,
                            serializable: true,
                            ..Default::default()
                        })
                        .await
                        .ok()
                        .and_then(|r| r.header)
                        .map(|h| h.revision);
                    let what = format!(
                        "member {i} HashKV at {rev}, still failing after {} s: {e} (its own revision: {own:?})",
                        start.elapsed().as_secs()
                    );
                    // A member serving but stuck below the cluster's revision skipped
                    // entries: the divergence the known issue describes.
                    if let (Some(issue), Some(own)) = (known_issue, own) {
                        if own < rev {
                            eprintln!("KNOWN ISSUE: {what}: {issue}");
                            return;
                        }
                    }
                    panic!("{what}; {rerun}");
                }
            }
        };
        hashes.push(h);
    }
    if let (false, Some(issue)) = (hashes.windows(2).all(|w| w[0] == w[1]), known_issue) {
        eprintln!("KNOWN ISSUE: members diverged at revision {rev}: {hashes:?}: {issue}");
        return;
    }
    assert!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "members diverged at revision {rev}: {hashes:?}; {rerun}"
    );
    eprintln!("{} acknowledged writes all present after {kills} kills and a full-cluster crash; HashKV {:x} on all members", acked.len(), hashes[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_3_5_1() {
    crash_and_verify(
        common::start("etcd@3.5.1", 3).await,
        "etcd_3_5_1",
        Some(ETCD_13766),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_3_4_23() {
    crash_and_verify(common::start("etcd@3.4.23", 3).await, "etcd_3_4_23", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference() {
    crash_and_verify(common::start("reference", 3).await, "reference", None).await;
}
