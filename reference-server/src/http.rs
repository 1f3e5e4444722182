//! `/health`, `/version` and `/metrics` over HTTP/1 on the client URLs, as etcd serves them.

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::config::API_VERSION;
use crate::node::NodeHandle;

/// The HTTP routes.
pub fn routes(node: NodeHandle) -> Router {
    let health_node = node.clone();
    let metrics_node = node;
    Router::new()
        .route(
            "/health",
            get(move || {
                let node = health_node.clone();
                async move {
                    if node.status.leader.load(Ordering::Relaxed) != 0 {
                        (StatusCode::OK, r#"{"health":"true","reason":""}"#)
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            r#"{"health":"false","reason":"RAFT NO LEADER"}"#,
                        )
                    }
                }
            }),
        )
        .route(
            "/version",
            get(|| async {
                format!(r#"{{"etcdserver":"{API_VERSION}","etcdcluster":"{API_VERSION}"}}"#)
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let node = metrics_node.clone();
                async move { metrics(&node) }
            }),
        )
}

/// The routes of `--listen-metrics-urls`: `/metrics` and `/health` only, as etcd
/// serves there (the `/version` of [`routes`] is answered 404).
pub fn metrics_routes(node: NodeHandle) -> Router {
    Router::new()
        .route("/version", get(|| async { StatusCode::NOT_FOUND }))
        .fallback_service(routes(node))
}

fn metrics(node: &NodeHandle) -> String {
    let s = &node.status;
    let (revision, compact, db, keys, revisions, watchers) = {
        let st = node.read_state();
        (
            st.revision(),
            st.compact_revision(),
            st.db_size_bytes(),
            st.keys_total(),
            st.revisions_stored(),
            st.watch_hub().watchers_total(),
        )
    };
    let has_leader = u8::from(s.leader.load(Ordering::Relaxed) != 0);
    let is_leader = u8::from(s.is_leader.load(Ordering::Relaxed));
    format!(
        "# HELP etcd_server_has_leader Whether or not a leader exists. 1 is existence, 0 is not.\n\
         # TYPE etcd_server_has_leader gauge\netcd_server_has_leader {has_leader}\n\
         # HELP etcd_server_is_leader Whether or not this member is a leader. 1 if is, 0 otherwise.\n\
         # TYPE etcd_server_is_leader gauge\netcd_server_is_leader {is_leader}\n\
         # HELP etcd_server_proposals_applied_total The total number of consensus proposals applied.\n\
         # TYPE etcd_server_proposals_applied_total gauge\netcd_server_proposals_applied_total {}\n\
         # HELP etcd_server_proposals_committed_total The total number of consensus proposals committed.\n\
         # TYPE etcd_server_proposals_committed_total gauge\netcd_server_proposals_committed_total {}\n\
         # HELP etcd_mvcc_db_total_size_in_bytes Total size of the underlying database physically allocated in bytes.\n\
         # TYPE etcd_mvcc_db_total_size_in_bytes gauge\netcd_mvcc_db_total_size_in_bytes {db}\n\
         # HELP etcd_debugging_mvcc_current_revision The current revision of store.\n\
         # TYPE etcd_debugging_mvcc_current_revision gauge\netcd_debugging_mvcc_current_revision {revision}\n\
         # HELP etcd_debugging_mvcc_compact_revision The revision of the last compaction in store.\n\
         # TYPE etcd_debugging_mvcc_compact_revision gauge\netcd_debugging_mvcc_compact_revision {compact}\n\
         # HELP etcd_debugging_mvcc_keys_total Total number of keys.\n\
         # TYPE etcd_debugging_mvcc_keys_total gauge\netcd_debugging_mvcc_keys_total {keys}\n\
         # HELP gauntlet_mvcc_revisions_stored Revision records kept (history not yet compacted).\n\
         # TYPE gauntlet_mvcc_revisions_stored gauge\ngauntlet_mvcc_revisions_stored {revisions}\n\
         # HELP etcd_debugging_mvcc_watcher_total Total number of watchers.\n\
         # TYPE etcd_debugging_mvcc_watcher_total gauge\netcd_debugging_mvcc_watcher_total {watchers}\n",
        s.applied.load(Ordering::Relaxed),
        s.raft_index.load(Ordering::Relaxed),
    )
}
