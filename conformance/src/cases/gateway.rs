//! The JSON gateway: etcd's gRPC API as HTTP POSTs of JSON on the client port
//! (`/v3/kv/range`, `/v3/watch`, ...), as etcd serves it with grpc-gateway: the `.proto`
//! field names, 64-bit integers as strings, bytes as base64, fields at their default left
//! out, errors as `{"error", "code", "message"}` with an HTTP status for the code, and
//! streams as one `{"result": ...}` object per line.
//!
//! The cases speak plain HTTP to the first endpoint (they need an `http://` client URL).

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use super::doc;
use crate::case::{case, ensure, eq, failure, ok, Case, Ctx, Failure, Needs};

/// Deadline of one gateway call (a stream is read until then at most).
const CALL_TIMEOUT: Duration = Duration::from_secs(8);

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn base_url(ctx: &Ctx) -> Result<String, Failure> {
    let e = ctx.config.endpoints[0].trim_end_matches('/');
    let url = if e.contains("://") {
        e.to_string()
    } else {
        format!("http://{e}")
    };
    if !url.starts_with("http://") {
        return Err(failure(
            &"the JSON gateway",
            "an http:// client URL",
            "a TLS endpoint: run the gateway cases without TLS",
        ));
    }
    Ok(url)
}

/// POSTs `body` to `path`, with `token` as the Authorization header: (HTTP status, JSON).
async fn post(
    ctx: &Ctx,
    path: &str,
    body: &Value,
    token: Option<&str>,
) -> Result<(u16, Value), Failure> {
    let url = format!("{}{path}", base_url(ctx)?);
    let what = format!("POST {path} {body}");
    let body = body.to_string();
    let token = token.map(str::to_string);
    let got = tokio::task::spawn_blocking(move || -> Result<(u16, String), String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(CALL_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        let mut req = agent.post(&url).header("content-type", "application/json");
        if let Some(t) = &token {
            req = req.header("authorization", t);
        }
        let mut resp = req.send(body.as_str()).map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        Ok((status, text))
    })
    .await
    .map_err(|e| failure(&what, "an answer", e.to_string()))?
    .map_err(|e| failure(&what, "an answer", e))?;
    let v: Value = serde_json::from_str(&got.1)
        .map_err(|e| failure(&what, "a JSON answer", format!("{e}: {}", got.1)))?;
    Ok((got.0, v))
}

/// A 200 answer's JSON, or a failure naming what came instead.
async fn post_ok(
    ctx: &Ctx,
    path: &str,
    body: Value,
    token: Option<&str>,
) -> Result<Value, Failure> {
    let (status, v) = post(ctx, path, &body, token).await?;
    if status != 200 {
        return Err(failure(
            &format!("POST {path} {body}"),
            "HTTP 200",
            format!("HTTP {status}: {v}"),
        ));
    }
    Ok(v)
}

/// Expects an error answer: the HTTP status and the gateway's error shape with this
/// gRPC code and (when given) message.
fn gateway_error(
    what: &str,
    got: (u16, Value),
    http: u16,
    code: i64,
    message: Option<&str>,
) -> Result<(), Failure> {
    let (status, v) = got;
    let shape_ok = v["code"].as_i64() == Some(code)
        && v["error"].is_string()
        && v["message"] == v["error"]
        && message.is_none_or(|m| v["message"] == m);
    ensure(
        &what,
        status == http && shape_ok,
        format!(
            "HTTP {http} with {{\"error\", \"code\": {code}, \"message\"{}}}",
            message.map(|m| format!(": {m:?}")).unwrap_or_default()
        ),
        format!("HTTP {status}: {v}"),
    )
}

/// Opens a stream at `path` and hands every JSON line to the returned channel until
/// [`CALL_TIMEOUT`] (the reading thread stops then, or when the channel is dropped).
fn open_stream(
    ctx: &Ctx,
    path: &str,
    body: Value,
) -> Result<tokio::sync::mpsc::Receiver<Result<Value, String>>, Failure> {
    use std::io::BufRead as _;
    let url = format!("{}{path}", base_url(ctx)?);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(CALL_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        let resp = agent
            .post(&url)
            .header("content-type", "application/json")
            .send(body.to_string().as_str());
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(e.to_string()));
                return;
            }
        };
        let reader = std::io::BufReader::new(resp.body_mut().as_reader());
        for line in reader.lines() {
            let item = match line {
                Ok(l) if l.trim().is_empty() => continue,
                Ok(l) => serde_json::from_str::<Value>(&l).map_err(|e| format!("{e}: {l}")),
                Err(e) => Err(e.to_string()),
            };
            let stop = item.is_err();
            if tx.blocking_send(item).is_err() || stop {
                return;
            }
        }
    });
    Ok(rx)
}

/// The next line of a stream, within [`CALL_TIMEOUT`].
async fn next_line(
    what: &str,
    rx: &mut tokio::sync::mpsc::Receiver<Result<Value, String>>,
) -> Result<Value, Failure> {
    match tokio::time::timeout(CALL_TIMEOUT, rx.recv()).await {
        Ok(Some(Ok(v))) => Ok(v),
        Ok(Some(Err(e))) => Err(failure(&what, "a JSON line", e)),
        Ok(None) => Err(failure(&what, "a JSON line", "the stream ended")),
        Err(_) => Err(failure(&what, "a JSON line", "nothing within the deadline")),
    }
}

pub fn cases() -> Vec<Case> {
    vec![
        case("gateway.kv.put_then_range", "A put and a range over JSON: the key-value comes back with base64 bytes, its revisions and version as strings, and count as a string.", doc::GATEWAY, |ctx| async move {
            let key = ctx.key("k");
            post_ok(&ctx, "/v3/kv/put", json!({"key": b64(&key), "value": b64(b"v1")}), None).await?;
            let v = post_ok(&ctx, "/v3/kv/range", json!({"key": b64(&key)}), None).await?;
            let kv = &v["kvs"][0];
            eq(&"POST /v3/kv/range", "(key, value, version, count)", (json!(b64(&key)), json!(b64(b"v1")), json!("1"), json!("1")), (kv["key"].clone(), kv["value"].clone(), kv["version"].clone(), v["count"].clone()))?;
            ensure(&"POST /v3/kv/range", kv["mod_revision"].is_string() && v["header"]["revision"].is_string(), "mod_revision and header.revision as strings", &v)
        }),
        case("gateway.kv.range_without_key", "A range with an empty key is HTTP 400 with code 3 and 'etcdserver: key is not provided' in the gateway's error shape.", doc::GATEWAY, |ctx| async move {
            let got = post(&ctx, "/v3/kv/range", &json!({"key": ""}), None).await?;
            gateway_error("POST /v3/kv/range {\"key\":\"\"}", got, 400, 3, Some("etcdserver: key is not provided"))
        }),
        case("gateway.kv.bad_json", "A body that is not JSON is HTTP 400 with code 3 (InvalidArgument).", doc::GATEWAY, |ctx| async move {
            let url = format!("{}/v3/kv/range", base_url(&ctx)?);
            let got = tokio::task::spawn_blocking(move || -> Result<(u16, String), String> {
                let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(CALL_TIMEOUT)).http_status_as_error(false).build().into();
                let mut r = agent.post(&url).send("not json").map_err(|e| e.to_string())?;
                Ok((r.status().as_u16(), r.body_mut().read_to_string().map_err(|e| e.to_string())?))
            }).await.map_err(|e| failure(&"POST not json", "an answer", e.to_string()))?.map_err(|e| failure(&"POST not json", "an answer", e))?;
            let v: Value = serde_json::from_str(&got.1).map_err(|e| failure(&"POST /v3/kv/range not json", "a JSON error", format!("{e}: {}", got.1)))?;
            gateway_error("POST /v3/kv/range not json", (got.0, v), 400, 3, None)
        }),
        case("gateway.kv.txn", "A txn over JSON: compares by enum name, a nested range answer under response_range.", doc::GATEWAY, |ctx| async move {
            let key = ctx.key("k");
            post_ok(&ctx, "/v3/kv/put", json!({"key": b64(&key), "value": b64(b"v")}), None).await?;
            let body = json!({"compare": [{"key": b64(&key), "result": "EQUAL", "target": "VERSION", "version": "1"}], "success": [{"request_range": {"key": b64(&key)}}]});
            let v = post_ok(&ctx, "/v3/kv/txn", body, None).await?;
            eq(&"POST /v3/kv/txn", "(succeeded, value)", (json!(true), json!(b64(b"v"))), (v["succeeded"].clone(), v["responses"][0]["response_range"]["kvs"][0]["value"].clone()))
        }),
        case("gateway.kv.deleterange_prev_kv", "A delete over JSON answers deleted as a string and the previous key-values.", doc::GATEWAY, |ctx| async move {
            let key = ctx.key("k");
            post_ok(&ctx, "/v3/kv/put", json!({"key": b64(&key), "value": b64(b"v")}), None).await?;
            let v = post_ok(&ctx, "/v3/kv/deleterange", json!({"key": b64(&key), "prev_kv": true}), None).await?;
            eq(&"POST /v3/kv/deleterange", "(deleted, prev value)", (json!("1"), json!(b64(b"v"))), (v["deleted"].clone(), v["prev_kvs"][0]["value"].clone()))
        }),
        case("gateway.watch.stream", "POST /v3/watch streams one {\"result\": ...} per line: the creation, then each event (a put has no type field: PUT is the default).", doc::GATEWAY, |ctx| async move {
            let key = ctx.key("w");
            let mut rx = open_stream(&ctx, "/v3/watch", json!({"create_request": {"key": b64(&key)}}))?;
            let created = next_line("POST /v3/watch", &mut rx).await?;
            ensure(&"POST /v3/watch", created["result"]["created"] == json!(true), "a created result first", &created)?;
            ok(&"put", ctx.client.put(key.clone(), "x").await)?;
            let ev = next_line("POST /v3/watch; put", &mut rx).await?;
            let e = &ev["result"]["events"][0];
            eq(&"POST /v3/watch; put", "(event type, key, value)", (Value::Null, json!(b64(&key)), json!(b64(b"x"))), (e["type"].clone(), e["kv"]["key"].clone(), e["kv"]["value"].clone()))
        }),
        case("gateway.lease.grant_ttl_revoke", "Lease grant, time-to-live and revoke over JSON, with etcd's field names ID, TTL and grantedTTL.", doc::GATEWAY, |ctx| async move {
            let g = post_ok(&ctx, "/v3/lease/grant", json!({"TTL": 60}), None).await?;
            let id = g["ID"].as_str().ok_or_else(|| failure(&"POST /v3/lease/grant", "an ID string", g.to_string()))?.to_string();
            eq(&"POST /v3/lease/grant", "TTL", json!("60"), g["TTL"].clone())?;
            let t = post_ok(&ctx, "/v3/lease/timetolive", json!({"ID": id}), None).await?;
            eq(&"POST /v3/lease/timetolive", "grantedTTL", json!("60"), t["grantedTTL"].clone())?;
            post_ok(&ctx, "/v3/lease/revoke", json!({"ID": id}), None).await?;
            let t = post_ok(&ctx, "/v3/lease/timetolive", json!({"ID": id}), None).await?;
            eq(&"lease revoke; POST /v3/lease/timetolive", "TTL", json!("-1"), t["TTL"].clone())
        }),
        case("gateway.maintenance.status", "Status over JSON names the server version and the leader.", doc::GATEWAY, |ctx| async move {
            let v = post_ok(&ctx, "/v3/maintenance/status", json!({}), None).await?;
            ensure(&"POST /v3/maintenance/status", v["version"].as_str().is_some_and(|s| !s.is_empty()) && v["leader"].is_string(), "version and leader", &v)
        }),
        case("gateway.cluster.member_list", "Member list over JSON: one entry per member with its ID as a string and its URLs.", doc::GATEWAY, |ctx| async move {
            let v = post_ok(&ctx, "/v3/cluster/member/list", json!({}), None).await?;
            let members = v["members"].as_array().cloned().unwrap_or_default();
            ensure(&"POST /v3/cluster/member/list", !members.is_empty() && members.iter().all(|m| m["ID"].is_string() && m["clientURLs"].is_array() && m["peerURLs"].is_array()), "members with ID, clientURLs and peerURLs", &v)
        }),
        case("gateway.auth.token", "With auth enabled, Authenticate over JSON gives a token; a put with it in the Authorization header works, one without is HTTP 400 'etcdserver: user name is empty'.", doc::GATEWAY, |ctx| async move {
            use gauntlet_api::etcdserverpb as pb;
            let c = &ctx.client;
            let add = pb::AuthUserAddRequest { name: "root".into(), password: "root-pw".into(), ..Default::default() };
            ok(&add, c.user_add(add.clone()).await)?;
            let grant = pb::AuthUserGrantRoleRequest { user: "root".into(), role: "root".into() };
            ok(&grant, c.user_grant_role(grant.clone()).await)?;
            ok(&"auth enable", c.auth_enable(pb::AuthEnableRequest {}).await)?;
            let a = post_ok(&ctx, "/v3/auth/authenticate", json!({"name": "root", "password": "root-pw"}), None).await?;
            let token = a["token"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| failure(&"POST /v3/auth/authenticate", "a token", a.to_string()))?.to_string();
            let key = ctx.key("k");
            let put = json!({"key": b64(&key), "value": b64(b"v")});
            post_ok(&ctx, "/v3/kv/put", put.clone(), Some(&token)).await?;
            let got = post(&ctx, "/v3/kv/put", &put, None).await?;
            gateway_error("auth enable; POST /v3/kv/put without a token", got, 400, 3, Some("etcdserver: user name is empty"))
        }).needs(Needs::Fresh(1)),
    ]
}
