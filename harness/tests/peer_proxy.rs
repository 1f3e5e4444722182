//! Clusters with a fault proxy on every peer link: members talk through the proxies.
//! Taking the leader's inbound proxy down makes the reference server elect a new
//! leader (its members dial whom they send to, so the leader hears nothing back). etcd
//! routes around an inbound-only cut (its followers' stream readers dial the leader,
//! but the leader still reaches them through its own pipeline connections), so on etcd
//! the test asserts only that the proxy refused the connections and the cluster kept
//! serving.

use std::time::Duration;

use gauntlet_api::etcdserverpb as pb;
use gauntlet_harness::{Cache, Cluster, ClusterSpec, PeerProxy};

async fn leader_seen_by_others(cluster: &Cluster, not: usize) -> Option<u64> {
    for j in (0..cluster.size()).filter(|j| *j != not) {
        let Ok(c) = cluster.member_client(j).await else {
            continue;
        };
        if let Ok(s) = c.status(pb::StatusRequest {}).await {
            if s.leader != 0 {
                return Some(s.leader);
            }
        }
    }
    None
}

async fn isolate_the_leader(target: &str, must_move: bool) {
    let mut spec = ClusterSpec::new(target.parse().unwrap(), 3);
    spec.peer_proxy = Some(PeerProxy::Local);
    spec.ready_timeout = Duration::from_secs(60);
    let cluster = Cluster::start(spec, &Cache::from_env())
        .await
        .unwrap_or_else(|e| panic!("{target} with peer proxies: {e}"));
    let client = cluster.client().await.unwrap();
    client.put("/peer-proxy/a", "1").await.unwrap();
    let leader = cluster.leader().await.unwrap();
    let old_id = {
        let c = cluster.member_client(leader).await.unwrap();
        c.status(pb::StatusRequest {})
            .await
            .unwrap()
            .header
            .unwrap()
            .member_id
    };
    let (api, name) = cluster.peer_proxy(leader).expect("peer proxies");
    let (a, n) = (api.clone(), name.clone());
    tokio::task::spawn_blocking(move || a.set_enabled(&n, false))
        .await
        .unwrap()
        .unwrap();
    let mut moved = false;
    for _ in 0..if must_move { 100 } else { 30 } {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if leader_seen_by_others(&cluster, leader)
            .await
            .is_some_and(|l| l != old_id)
        {
            moved = true;
            break;
        }
    }
    if must_move {
        assert!(
            moved,
            "{target}: nobody replaced the cut-off leader m{leader}"
        );
    }
    let stats = cluster.peer_proxy_stats(leader).expect("local proxies");
    assert!(
        stats
            .connections_cut
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "{target}: taking the leader's proxy down cut no connection"
    );
    tokio::task::spawn_blocking(move || api.set_enabled(&name, true))
        .await
        .unwrap()
        .unwrap();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    client.put("/peer-proxy/b", "2").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_leader_cut_off_by_its_proxy_is_replaced() {
    isolate_the_leader("reference", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_keeps_serving_through_an_inbound_cut() {
    isolate_the_leader("etcd@3.5.1", false).await;
}
