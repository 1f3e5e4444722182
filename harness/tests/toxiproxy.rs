//! Our proxies behind toxiproxy's HTTP API: status codes and JSON as toxiproxy's, our
//! own client, and a third-party client from crates.io (`toxiproxy_rust`) that creates
//! a proxy, adds and removes a latency toxic, and sees the latency.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gauntlet_harness::netproxy::Registry;
use gauntlet_harness::toxiproxy::{ToxicJson, ToxiproxyClient, ToxiproxyServer};

/// A blocking echo server on a thread.
fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

fn round_trip(addr: &str) -> Duration {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    c.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    t.elapsed()
}

fn server() -> (tokio::runtime::Runtime, ToxiproxyServer) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt
        .block_on(ToxiproxyServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(Registry::new(1)),
        ))
        .unwrap();
    (rt, s)
}

/// One raw HTTP/1.1 request (any method, any User-Agent), to check exact status
/// codes: (status, body).
fn http(method: &str, url: &str, body: &str, ua: &str) -> (u16, String) {
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "{method} /{path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status: u16 = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn status_codes_and_bodies_follow_toxiproxy() {
    let (_rt, s) = server();
    let u = s.url();
    let up = echo();
    let ua = "gauntlet-test";
    let (code, body) = http("GET", &format!("{u}/version"), "", ua);
    assert_eq!(code, 200);
    assert!(body.contains("\"version\""), "{body}");
    let create = format!(r#"{{"name":"a","listen":"127.0.0.1:0","upstream":"{up}"}}"#);
    let (code, body) = http("POST", &format!("{u}/proxies"), &create, ua);
    assert_eq!(code, 201, "{body}");
    let p: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(p["enabled"], true);
    assert_eq!(p["toxics"], serde_json::json!([]));
    assert_ne!(p["listen"], "127.0.0.1:0", "the real port is echoed back");
    assert_eq!(http("POST", &format!("{u}/proxies"), &create, ua).0, 409);
    let (code, body) = http("POST", &format!("{u}/proxies"), r#"{"name":"b"}"#, ua);
    assert_eq!(code, 400);
    assert!(
        body.contains("missing required field: upstream") && body.contains("\"status\":400"),
        "{body}"
    );
    assert_eq!(http("GET", &format!("{u}/proxies/nope"), "", ua).0, 404);
    assert_eq!(http("GET", &format!("{u}/proxies"), "", ua).0, 200);
    let bad_type = r#"{"type":"bogus","attributes":{}}"#;
    assert_eq!(
        http("POST", &format!("{u}/proxies/a/toxics"), bad_type, ua).0,
        400
    );
    let bad_stream = r#"{"type":"latency","stream":"sideways","attributes":{"latency":1}}"#;
    let (code, body) = http("POST", &format!("{u}/proxies/a/toxics"), bad_stream, ua);
    assert_eq!(code, 400);
    assert!(body.contains("stream was invalid"), "{body}");
    let lat = r#"{"type":"latency","attributes":{"latency":10,"jitter":0}}"#;
    let (code, body) = http("POST", &format!("{u}/proxies/a/toxics"), lat, ua);
    assert_eq!(code, 200, "{body}");
    let t: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(t["name"], "latency_downstream");
    assert_eq!(t["stream"], "downstream");
    assert_eq!(t["toxicity"], 1.0);
    assert_eq!(
        http("POST", &format!("{u}/proxies/a/toxics"), lat, ua).0,
        409
    );
    // `direction` is accepted for the stream (a client sends it so).
    let dir = r#"{"name":"d","type":"noop","direction":"upstream","attributes":{}}"#;
    let (code, body) = http("POST", &format!("{u}/proxies/a/toxics"), dir, ua);
    assert_eq!(code, 200);
    assert!(body.contains("\"stream\":\"upstream\""), "{body}");
    let (code, _) = http(
        "PATCH",
        &format!("{u}/proxies/a/toxics/latency_downstream"),
        r#"{"attributes":{"latency":20}}"#,
        ua,
    );
    assert_eq!(code, 200);
    assert_eq!(
        http(
            "DELETE",
            &format!("{u}/proxies/a/toxics/latency_downstream"),
            "",
            ua
        )
        .0,
        204
    );
    assert_eq!(
        http(
            "DELETE",
            &format!("{u}/proxies/a/toxics/latency_downstream"),
            "",
            ua
        )
        .0,
        404
    );
    assert_eq!(
        http(
            "POST",
            &format!("{u}/proxies/a"),
            r#"{"enabled":false}"#,
            ua
        )
        .0,
        200
    );
    assert_eq!(http("POST", &format!("{u}/reset"), "", ua).0, 204);
    let (_, body) = http("GET", &format!("{u}/proxies/a"), "", ua);
    assert!(
        body.contains("\"enabled\":true") && body.contains("\"toxics\":[]"),
        "{body}"
    );
    // Browsers are refused, as toxiproxy refuses them.
    assert_eq!(
        http("GET", &format!("{u}/proxies"), "", "Mozilla/5.0").0,
        403
    );
    assert_eq!(http("DELETE", &format!("{u}/proxies/a"), "", ua).0, 204);
    let pop = format!(r#"[{{"name":"p","listen":"127.0.0.1:0","upstream":"{up}"}}]"#);
    let (code, body) = http("POST", &format!("{u}/populate"), &pop, ua);
    assert_eq!(code, 201);
    assert!(body.contains("\"proxies\""), "{body}");
}

#[test]
fn our_client_adds_and_removes_a_latency_toxic() {
    let (_rt, s) = server();
    let c = ToxiproxyClient::new(&s.url());
    let up = echo();
    let p = c.create_proxy("e", "127.0.0.1:0", &up.to_string()).unwrap();
    assert!(round_trip(&p.listen) < Duration::from_millis(150));
    c.add_toxic(
        "e",
        &ToxicJson {
            name: "slow".into(),
            kind: "latency".into(),
            stream: "downstream".into(),
            toxicity: 1.0,
            attributes: [("latency".to_string(), 300), ("jitter".to_string(), 0)].into(),
        },
    )
    .unwrap();
    assert!(round_trip(&p.listen) >= Duration::from_millis(300));
    c.remove_toxic("e", "slow").unwrap();
    assert!(round_trip(&p.listen) < Duration::from_millis(150));
    let err = c.proxy("missing").unwrap_err().to_string();
    assert!(
        err.contains("404") && err.contains("proxy not found"),
        "{err}"
    );
}

#[test]
fn a_third_party_toxiproxy_client_drives_our_proxies() {
    let (_rt, s) = server();
    let addr = s.url().trim_start_matches("http://").to_string();
    let client = toxiproxy_rust::client::Client::new(addr.as_str());
    assert!(client.is_running());
    let up = echo();
    let proxies = client
        .populate(vec![toxiproxy_rust::proxy::ProxyPack::new(
            "third-party".into(),
            "127.0.0.1:0".into(),
            up.to_string(),
        )])
        .expect("populate");
    assert_eq!(proxies.len(), 1);
    let listen = client
        .all()
        .expect("all")
        .get("third-party")
        .map(|p| p.proxy_pack.listen.clone())
        .expect("listed");
    assert!(round_trip(&listen) < Duration::from_millis(150));
    let proxy = client.find_proxy("third-party").expect("find");
    proxy.with_latency("downstream".into(), 400, 0, 1.0);
    assert_eq!(proxy.toxics().expect("toxics").len(), 1);
    let slow = round_trip(&listen);
    assert!(slow >= Duration::from_millis(400), "{slow:?}");
    proxy.delete_all_toxics().expect("delete toxics");
    assert!(round_trip(&listen) < Duration::from_millis(150));
}
