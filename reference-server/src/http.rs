//! `/health`, `/version` and `/metrics` over HTTP/1 on the client URLs, as etcd serves them.

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::node::NodeHandle;

/// The HTTP routes.
pub fn routes(node: NodeHandle) -> Router {
    let health_node = node.clone();
    let version_node = node.clone();
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
            get(move || {
                let node = version_node.clone();
                async move {
                    let cluster = node
                        .read_state()
                        .cluster()
                        .cluster_version
                        .map_or_else(|| "not_decided".to_string(), crate::version::semver);
                    format!(
                        r#"{{"etcdserver":"{}","etcdcluster":"{cluster}"}}"#,
                        crate::version::server_version()
                    )
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let node = metrics_node.clone();
                async move { crate::metrics::render(&node) }
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
