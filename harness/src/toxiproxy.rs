//! Toxiproxy's HTTP API, served over our [`netproxy`](crate::netproxy) proxies, and a
//! client for it.
//!
//! [`ToxiproxyServer`] answers toxiproxy 2.x's routes with its status codes and JSON
//! field names, so the toxiproxy clients people already use can drive gauntlet's
//! proxies (`gauntlet proxy --listen-api 127.0.0.1:8474`):
//!
//! | route | answer |
//! |---|---|
//! | `GET /version` | 200 `{"version": ...}` |
//! | `POST /reset` | 204: every proxy enabled, every toxic removed |
//! | `GET /proxies` | 200 map of name to proxy |
//! | `POST /proxies` | 201 proxy; 400 missing field; 409 exists |
//! | `POST /populate` | 201 `{"proxies": [...]}` (creates what is missing, updates what differs) |
//! | `GET /proxies/{p}` | 200; 404 |
//! | `POST`/`PATCH /proxies/{p}` | 200: `enabled`, `listen`, `upstream` |
//! | `DELETE /proxies/{p}` | 204 |
//! | `GET /proxies/{p}/toxics` | 200 array |
//! | `POST /proxies/{p}/toxics` | 200 toxic; 400 bad type or stream; 409 exists |
//! | `GET`/`POST`/`PATCH`/`DELETE /proxies/{p}/toxics/{t}` | 200 / 200 / 200 / 204 |
//!
//! Errors are `{"error": message, "status": code}`. A toxic's stream may also be sent as
//! `direction` (some clients do). [`ToxiproxyClient`] speaks the same API to our server
//! or a real toxiproxy, so the chaos suite can use either (`--toxiproxy URL`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::netproxy::{NetProxy, ProxyError, Registry, Stream, Toxic, ToxicKind};

/// The toxiproxy API version this server follows.
pub const API_VERSION: &str = "2.12.0";
/// Deadline of every client request.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A proxy as toxiproxy's API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyJson {
    /// Name.
    pub name: String,
    /// `host:port` it listens on.
    pub listen: String,
    /// `host:port` it forwards to.
    pub upstream: String,
    /// Whether it forwards.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Its toxics.
    #[serde(default)]
    pub toxics: Vec<ToxicJson>,
}

fn yes() -> bool {
    true
}

/// A toxic as toxiproxy's API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToxicJson {
    /// Name.
    pub name: String,
    /// `latency`, `bandwidth`, `slow_close`, `timeout`, `reset_peer`, `slicer`, `limit_data`, `noop`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `upstream` or `downstream`.
    pub stream: String,
    /// Share of connections, 0 to 1.
    pub toxicity: f64,
    /// The type's attributes.
    pub attributes: BTreeMap<String, u64>,
}

impl ToxicJson {
    /// The JSON of a toxic.
    pub fn of(t: &Toxic) -> ToxicJson {
        ToxicJson {
            name: t.name.clone(),
            kind: t.kind.type_name().to_string(),
            stream: match t.stream {
                Stream::Upstream => "upstream".into(),
                Stream::Downstream => "downstream".into(),
            },
            toxicity: t.toxicity,
            attributes: t.kind.attributes(),
        }
    }
}

fn proxy_json(p: &NetProxy) -> ProxyJson {
    ProxyJson {
        name: p.name().to_string(),
        listen: p.listen().to_string(),
        upstream: p.upstream(),
        enabled: p.enabled(),
        toxics: p.toxics().iter().map(ToxicJson::of).collect(),
    }
}

struct ApiError(StatusCode, String);

impl From<ProxyError> for ApiError {
    fn from(e: ProxyError) -> ApiError {
        let code = match &e {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::NotFound(_) => StatusCode::NOT_FOUND,
            ProxyError::Conflict(_) => StatusCode::CONFLICT,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(serde_json::json!({"error": self.1, "status": self.0.as_u16()})),
        )
            .into_response()
    }
}

type Api<T> = Result<T, ApiError>;
type Reg = State<Arc<Registry>>;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn body(text: &str) -> Api<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(text).map_err(|e| bad(format!("bad request body: {e}")))
}

fn string(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn attributes(v: &Value) -> Api<Option<BTreeMap<String, u64>>> {
    let Some(a) = v.get("attributes") else {
        return Ok(None);
    };
    let Some(map) = a.as_object() else {
        return Err(bad("bad request body: attributes must be an object"));
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let n = v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .ok_or_else(|| {
                bad(format!(
                    "bad request body: attribute {k} must be a non-negative number"
                ))
            })?;
        out.insert(k.clone(), n);
    }
    Ok(Some(out))
}

async fn version() -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=utf-8")],
        format!(
            "{}\n",
            serde_json::json!({"version": format!("{API_VERSION} (gauntlet {})", env!("CARGO_PKG_VERSION"))})
        ),
    )
        .into_response()
}

async fn reset(State(r): Reg) -> Api<StatusCode> {
    r.reset().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list(State(r): Reg) -> Json<BTreeMap<String, ProxyJson>> {
    Json(
        r.all()
            .iter()
            .map(|p| (p.name().to_string(), proxy_json(p)))
            .collect(),
    )
}

async fn create(State(r): Reg, text: String) -> Api<(StatusCode, Json<ProxyJson>)> {
    let v = body(&text)?;
    let p = r
        .create(
            &string(&v, "name").unwrap_or_default(),
            &string(&v, "listen").unwrap_or_default(),
            &string(&v, "upstream").unwrap_or_default(),
            v.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(proxy_json(&p))))
}

async fn populate(State(r): Reg, text: String) -> Api<(StatusCode, Json<Value>)> {
    let v = body(&text)?;
    let items = v
        .as_array()
        .ok_or_else(|| bad("bad request body: expected an array of proxies"))?;
    let mut out = Vec::new();
    for item in items {
        let name = string(item, "name").unwrap_or_default();
        let listen = string(item, "listen").unwrap_or_default();
        let upstream = string(item, "upstream").unwrap_or_default();
        let enabled = item.get("enabled").and_then(Value::as_bool).unwrap_or(true);
        let p = match r.get(&name) {
            Ok(_) => {
                r.update(&name, Some(enabled), Some(&listen), Some(&upstream))
                    .await?
            }
            Err(_) => r.create(&name, &listen, &upstream, enabled).await?,
        };
        out.push(serde_json::to_value(proxy_json(&p)).unwrap_or(Value::Null));
    }
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "proxies": out })),
    ))
}

async fn show(State(r): Reg, Path(name): Path<String>) -> Api<Json<ProxyJson>> {
    let p = r.get(&name)?;
    Ok(Json(proxy_json(&p)))
}

async fn update(State(r): Reg, Path(name): Path<String>, text: String) -> Api<Json<ProxyJson>> {
    let v = body(&text)?;
    let listen = string(&v, "listen");
    let upstream = string(&v, "upstream");
    let p = r
        .update(
            &name,
            v.get("enabled").and_then(Value::as_bool),
            listen.as_deref(),
            upstream.as_deref(),
        )
        .await?;
    Ok(Json(proxy_json(&p)))
}

async fn delete(State(r): Reg, Path(name): Path<String>) -> Api<StatusCode> {
    r.delete(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn toxics(State(r): Reg, Path(name): Path<String>) -> Api<Json<Vec<ToxicJson>>> {
    Ok(Json(
        r.get(&name)?.toxics().iter().map(ToxicJson::of).collect(),
    ))
}

async fn add_toxic(State(r): Reg, Path(name): Path<String>, text: String) -> Api<Json<ToxicJson>> {
    let v = body(&text)?;
    let kind_name = string(&v, "type").ok_or_else(|| bad("missing required field: type"))?;
    let stream = match string(&v, "stream")
        .or_else(|| string(&v, "direction"))
        .as_deref()
    {
        None | Some("downstream") => Stream::Downstream,
        Some("upstream") => Stream::Upstream,
        Some(_) => {
            return Err(bad(
                "stream was invalid, can be either upstream or downstream",
            ))
        }
    };
    let attrs = attributes(&v)?.unwrap_or_default();
    let kind = ToxicKind::from_parts(&kind_name, &attrs).map_err(bad)?;
    let default_name = format!(
        "{kind_name}_{}",
        if stream == Stream::Upstream {
            "upstream"
        } else {
            "downstream"
        }
    );
    let toxic = Toxic {
        name: string(&v, "name")
            .filter(|n| !n.is_empty())
            .unwrap_or(default_name),
        stream,
        toxicity: v.get("toxicity").and_then(Value::as_f64).unwrap_or(1.0),
        kind,
    };
    Ok(Json(ToxicJson::of(&r.add_toxic(&name, toxic)?)))
}

async fn show_toxic(State(r): Reg, Path((p, t)): Path<(String, String)>) -> Api<Json<ToxicJson>> {
    let proxy = r.get(&p)?;
    let toxic = proxy
        .toxics()
        .into_iter()
        .find(|x| x.name == t)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "toxic not found".into()))?;
    Ok(Json(ToxicJson::of(&toxic)))
}

async fn update_toxic(
    State(r): Reg,
    Path((p, t)): Path<(String, String)>,
    text: String,
) -> Api<Json<ToxicJson>> {
    let v = body(&text)?;
    let attrs = attributes(&v)?;
    let toxic = r.update_toxic(
        &p,
        &t,
        v.get("toxicity").and_then(Value::as_f64),
        attrs.as_ref(),
    )?;
    Ok(Json(ToxicJson::of(&toxic)))
}

async fn delete_toxic(State(r): Reg, Path((p, t)): Path<(String, String)>) -> Api<StatusCode> {
    r.remove_toxic(&p, &t)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses browsers, as toxiproxy does (a page could otherwise drive local proxies).
async fn no_browsers(
    headers: HeaderMap,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let ua = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ua.starts_with("Mozilla/") {
        return ApiError(StatusCode::FORBIDDEN, "User agent not allowed".into()).into_response();
    }
    next.run(req).await
}

/// The toxiproxy-compatible API over a [`Registry`]; stops when dropped.
#[derive(Debug)]
pub struct ToxiproxyServer {
    addr: SocketAddr,
    registry: Arc<Registry>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ToxiproxyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ToxiproxyServer {
    /// Serves `registry` on `listen` (loopback only; port 0 picks one).
    pub async fn start(
        listen: SocketAddr,
        registry: Arc<Registry>,
    ) -> crate::Result<ToxiproxyServer> {
        if !listen.ip().is_loopback() {
            return Err(crate::HarnessError::Invalid(format!(
                "the proxy API listens on loopback only, not {listen}"
            )));
        }
        let app = Router::new()
            .route("/version", get(version))
            .route("/reset", post(reset))
            .route("/proxies", get(list).post(create))
            .route("/populate", post(populate))
            .route(
                "/proxies/{proxy}",
                get(show).post(update).patch(update).delete(delete),
            )
            .route("/proxies/{proxy}/toxics", get(toxics).post(add_toxic))
            .route(
                "/proxies/{proxy}/toxics/{toxic}",
                get(show_toxic)
                    .post(update_toxic)
                    .patch(update_toxic)
                    .delete(delete_toxic),
            )
            .layer(axum::middleware::from_fn(no_browsers))
            .with_state(Arc::clone(&registry));
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            crate::HarnessError::io(format!("binding the proxy API on {listen}"), e)
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| crate::HarnessError::io("reading the proxy API's port", e))?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ToxiproxyServer {
            addr,
            registry,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The proxies it serves.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }
}

/// Why a toxiproxy call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToxiproxyError {
    /// The server could not be reached, or answered something that is not toxiproxy's.
    #[error("toxiproxy at {url}: {reason}")]
    Transport {
        /// The server.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("toxiproxy at {url} answered {status}: {message}")]
    Api {
        /// The server.
        url: String,
        /// HTTP status.
        status: u16,
        /// Its `error` field.
        message: String,
    },
}

/// A blocking client of toxiproxy's API (ours or a real toxiproxy). Call it from
/// `spawn_blocking` in async code.
#[derive(Debug, Clone)]
pub struct ToxiproxyClient {
    base: String,
    agent: ureq::Agent,
}

impl ToxiproxyClient {
    /// A client of the server at `url` (`http://host:port` or `host:port`).
    pub fn new(url: &str) -> ToxiproxyClient {
        let base = if url.contains("://") {
            url.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", url.trim_end_matches('/'))
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(CLIENT_TIMEOUT))
            .build();
        ToxiproxyClient {
            base,
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, ToxiproxyError> {
        let url = format!("{}{path}", self.base);
        let transport = |reason: String| ToxiproxyError::Transport {
            url: self.base.clone(),
            reason,
        };
        let resp = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            ("POST", b) => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(b.unwrap_or(Value::Null).to_string()),
            (m, _) => return Err(transport(format!("unsupported method {m}"))),
        };
        let mut resp = resp.map_err(|e| transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| transport(e.to_string()))?;
        let v: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| transport(format!("not JSON ({e}): {text}")))?
        };
        if status >= 400 {
            return Err(ToxiproxyError::Api {
                url: self.base.clone(),
                status,
                message: v
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or(&text)
                    .to_string(),
            });
        }
        Ok(v)
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, v: Value) -> Result<T, ToxiproxyError> {
        serde_json::from_value(v).map_err(|e| ToxiproxyError::Transport {
            url: self.base.clone(),
            reason: format!("unexpected answer: {e}"),
        })
    }

    /// `GET /version`.
    pub fn version(&self) -> Result<String, ToxiproxyError> {
        let v = self.call("GET", "/version", None)?;
        Ok(v.get("version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// `POST /proxies`.
    pub fn create_proxy(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
    ) -> Result<ProxyJson, ToxiproxyError> {
        let v = self.call(
            "POST",
            "/proxies",
            Some(serde_json::json!({"name": name, "listen": listen, "upstream": upstream, "enabled": true})),
        )?;
        self.parse(v)
    }

    /// `GET /proxies/{name}`.
    pub fn proxy(&self, name: &str) -> Result<ProxyJson, ToxiproxyError> {
        let v = self.call("GET", &format!("/proxies/{name}"), None)?;
        self.parse(v)
    }

    /// `POST /proxies/{name}` with `enabled`.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<ProxyJson, ToxiproxyError> {
        let v = self.call(
            "POST",
            &format!("/proxies/{name}"),
            Some(serde_json::json!({ "enabled": enabled })),
        )?;
        self.parse(v)
    }

    /// `DELETE /proxies/{name}`.
    pub fn delete_proxy(&self, name: &str) -> Result<(), ToxiproxyError> {
        self.call("DELETE", &format!("/proxies/{name}"), None)
            .map(drop)
    }

    /// `POST /proxies/{proxy}/toxics`.
    pub fn add_toxic(&self, proxy: &str, toxic: &ToxicJson) -> Result<ToxicJson, ToxiproxyError> {
        let v = self.call(
            "POST",
            &format!("/proxies/{proxy}/toxics"),
            Some(serde_json::to_value(toxic).unwrap_or(Value::Null)),
        )?;
        self.parse(v)
    }

    /// `DELETE /proxies/{proxy}/toxics/{name}`.
    pub fn remove_toxic(&self, proxy: &str, name: &str) -> Result<(), ToxiproxyError> {
        self.call("DELETE", &format!("/proxies/{proxy}/toxics/{name}"), None)
            .map(drop)
    }

    /// `POST /reset`.
    pub fn reset(&self) -> Result<(), ToxiproxyError> {
        self.call("POST", "/reset", None).map(drop)
    }
}
