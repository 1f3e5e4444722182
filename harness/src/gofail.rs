//! A client of etcd's gofail control endpoint, the HTTP server a binary built with
//! gofail failpoints starts when `GOFAIL_HTTP=host:port` is in its environment.
//!
//! The protocol (gofail's `runtime/http.go`): `GET /` lists every failpoint compiled
//! into the binary, one `name=term` per line (an empty term when inactive); `PUT /name`
//! with a term as the body activates it (`panic`, `sleep(1000)`, `return(...)`,
//! optionally with a count as `2*panic`); `GET /name` reads its term; `DELETE /name`
//! deactivates it. A binary without gofail opens no such port, so [`GofailClient::list`]
//! failing to connect means "this target has no failpoints", which callers report as
//! unsupported rather than as a failure.
//!
//! Every call has a deadline ([`CALL_TIMEOUT`]). The client is blocking (ureq); call it
//! from `spawn_blocking` in async code.

use std::collections::BTreeMap;
use std::time::Duration;

/// Deadline of every call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a gofail call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GofailError {
    /// Nothing answered at the endpoint (no gofail in the binary, or the member is down).
    #[error("no gofail endpoint answers at {url}: {reason}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The endpoint answered with an error status.
    #[error("gofail at {url} answered {status}: {message}")]
    Api {
        /// The endpoint.
        url: String,
        /// HTTP status.
        status: u16,
        /// The body.
        message: String,
    },
}

/// A client of one member's gofail endpoint.
#[derive(Debug, Clone)]
pub struct GofailClient {
    base: String,
    agent: ureq::Agent,
}

impl GofailClient {
    /// A client of the endpoint at `url` (`http://host:port`).
    pub fn new(url: &str) -> GofailClient {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(CALL_TIMEOUT))
            .build();
        GofailClient {
            base: url.trim_end_matches('/').to_string(),
            agent: ureq::Agent::new_with_config(config),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Result<String, GofailError> {
        let url = format!("{}/{path}", self.base);
        let resp = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self.agent.put(&url).send(body.unwrap_or_default()),
        };
        let mut resp = resp.map_err(|e| GofailError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| GofailError::Unreachable {
                url: self.base.clone(),
                reason: e.to_string(),
            })?;
        if status >= 400 {
            return Err(GofailError::Api {
                url: self.base.clone(),
                status,
                message: text.trim().to_string(),
            });
        }
        Ok(text)
    }

    /// Every failpoint in the binary with its current term (empty: inactive).
    pub fn list(&self) -> Result<BTreeMap<String, String>, GofailError> {
        Ok(self
            .call("GET", "", None)?
            .lines()
            .filter_map(|l| {
                let (name, term) = l.split_once('=').unwrap_or((l, ""));
                let name = name.trim();
                (!name.is_empty()).then(|| (name.to_string(), term.trim().to_string()))
            })
            .collect())
    }

    /// Activates `name` with `term` (e.g. `panic`, `sleep(1000)`).
    pub fn set(&self, name: &str, term: &str) -> Result<(), GofailError> {
        self.call("PUT", name, Some(term)).map(|_| ())
    }

    /// Deactivates `name`.
    pub fn clear(&self, name: &str) -> Result<(), GofailError> {
        self.call("DELETE", name, None).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::{Path, State};
    use axum::routing::get;
    use std::sync::{Arc, Mutex};

    type Points = Arc<Mutex<BTreeMap<String, String>>>;

    /// A stand-in for a gofail binary's endpoint, with two failpoints.
    async fn fake() -> (String, Points) {
        let points: Points = Arc::new(Mutex::new(
            [("beforeCommit", ""), ("raftBeforeSave", "")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
        let app = axum::Router::new()
            .route(
                "/",
                get(|State(p): State<Points>| async move {
                    p.lock()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| format!("{k}={v}\n"))
                        .collect::<String>()
                }),
            )
            .route(
                "/{name}",
                get(
                    |State(p): State<Points>, Path(n): Path<String>| async move {
                        p.lock().unwrap().get(&n).cloned().unwrap_or_default()
                    },
                )
                .put(
                    |State(p): State<Points>, Path(n): Path<String>, body: String| async move {
                        let mut p = p.lock().unwrap();
                        match p.get_mut(&n) {
                            Some(t) => {
                                *t = body;
                                (axum::http::StatusCode::NO_CONTENT, String::new())
                            }
                            None => (
                                axum::http::StatusCode::NOT_FOUND,
                                "failpoint: failpoint does not exist".into(),
                            ),
                        }
                    },
                )
                .delete(
                    |State(p): State<Points>, Path(n): Path<String>| async move {
                        if let Some(t) = p.lock().unwrap().get_mut(&n) {
                            t.clear();
                        }
                        axum::http::StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state(points.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        (format!("http://{addr}"), points)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lists_sets_and_clears_failpoints() {
        let (url, points) = fake().await;
        let c = GofailClient::new(&url);
        let c2 = c.clone();
        let listed = tokio::task::spawn_blocking(move || c2.list())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            listed.keys().cloned().collect::<Vec<_>>(),
            ["beforeCommit", "raftBeforeSave"]
        );
        let c2 = c.clone();
        tokio::task::spawn_blocking(move || c2.set("raftBeforeSave", "panic"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(points.lock().unwrap()["raftBeforeSave"], "panic");
        let c2 = c.clone();
        let missing = tokio::task::spawn_blocking(move || c2.set("nope", "panic"))
            .await
            .unwrap();
        assert!(
            matches!(missing, Err(GofailError::Api { status: 404, .. })),
            "{missing:?}"
        );
        let c2 = c.clone();
        tokio::task::spawn_blocking(move || c2.clear("raftBeforeSave"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(points.lock().unwrap()["raftBeforeSave"], "");
    }

    #[test]
    fn nothing_listening_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = GofailClient::new(&format!("http://127.0.0.1:{port}"))
            .list()
            .unwrap_err();
        assert!(matches!(err, GofailError::Unreachable { .. }), "{err}");
        assert!(
            err.to_string().starts_with("no gofail endpoint answers"),
            "{err}"
        );
    }
}
