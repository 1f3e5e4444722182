//! Answers a request above the gRPC receive limit with etcd's code.
//!
//! etcd's gRPC server (grpc-go) refuses a message above its receive limit
//! (`--max-request-bytes` plus 512 KiB) with `ResourceExhausted` and the message
//! `grpc: received message larger than max (N vs. M)`. tonic refuses the same message
//! with `OutOfRange` and its own wording. Clients branch on the code (etcd's client
//! does not retry `ResourceExhausted`), so this layer rewrites tonic's answer into
//! grpc-go's before it leaves the server.
//!
//! Only an answer that carries its status in the response headers (a trailers-only
//! response, which is how tonic answers a unary call whose request failed to decode)
//! is rewritten; any other response passes untouched.

use std::task::{Context, Poll};

use futures::future::{FutureExt as _, Map};
use http::{HeaderValue, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

/// tonic's message for an oversized request starts with this.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large: found ";
/// gRPC's `OutOfRange` and `ResourceExhausted` codes as they travel in `grpc-status`.
const OUT_OF_RANGE: &[u8] = b"11";
const RESOURCE_EXHAUSTED: &str = "8";

/// Wraps the client services; see the module doc.
#[derive(Debug, Clone, Copy, Default)]
pub struct OversizeLayer;

impl<S> Layer<S> for OversizeLayer {
    type Service = Oversize<S>;
    fn layer(&self, inner: S) -> Oversize<S> {
        Oversize(inner)
    }
}

/// The service [`OversizeLayer`] makes.
#[derive(Debug, Clone)]
pub struct Oversize<S>(S);

type Rewrite<B, E> = fn(Result<Response<B>, E>) -> Result<Response<B>, E>;

impl<S, ReqB, ResB> Service<Request<ReqB>> for Oversize<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = Map<S::Future, Rewrite<ResB, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let rewrite: Rewrite<ResB, S::Error> = |r| {
            r.map(|mut resp| {
                rewrite_headers(resp.headers_mut());
                resp
            })
        };
        self.0.call(req).map(rewrite)
    }
}

/// Rewrites tonic's oversize status in `headers` into grpc-go's, if it is there.
fn rewrite_headers(headers: &mut http::HeaderMap) {
    if headers.get("grpc-status").map(HeaderValue::as_bytes) != Some(OUT_OF_RANGE) {
        return;
    }
    let Some(message) = headers
        .get("grpc-message")
        .map(|v| percent_decode(v.as_bytes()))
        .and_then(|m| grpc_go_message(&m))
    else {
        return;
    };
    let Ok(message) = HeaderValue::from_str(&message) else {
        return;
    };
    headers.insert("grpc-status", HeaderValue::from_static(RESOURCE_EXHAUSTED));
    headers.insert("grpc-message", message);
}

/// Decodes a percent-encoded `grpc-message` (tonic escapes spaces, among others); a
/// malformed escape is kept as it is.
fn percent_decode(raw: &[u8]) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let escaped = if raw[i] == b'%' {
            raw.get(i + 1..i + 3)
                .and_then(|h| Some((hex(h[0])? * 16 + hex(h[1])?) as u8))
        } else {
            None
        };
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(raw[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// grpc-go's wording for tonic's oversize message, or `None` for any other message.
fn grpc_go_message(tonic: &str) -> Option<String> {
    let rest = tonic.strip_prefix(TONIC_TOO_LARGE)?;
    let numbers: Vec<u64> = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    match numbers[..] {
        [found, limit] => Some(format!(
            "grpc: received message larger than max ({found} vs. {limit})"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(status: &'static str, message: &'static str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from_static(status));
        h.insert("grpc-message", HeaderValue::from_static(message));
        h
    }

    #[test]
    fn tonic_oversize_becomes_resource_exhausted() {
        let mut h = headers(
            "11",
            "Error, decoded message length too large: found 3145803 bytes, the limit is: 2097152 bytes",
        );
        rewrite_headers(&mut h);
        assert_eq!(h["grpc-status"], "8");
        assert_eq!(
            h["grpc-message"],
            "grpc: received message larger than max (3145803 vs. 2097152)"
        );
    }

    #[test]
    fn percent_encoded_message_is_recognized() {
        let mut h = headers(
            "11",
            "Error,%20decoded%20message%20length%20too%20large:%20found%203145803%20bytes,%20the%20limit%20is:%202097152%20bytes",
        );
        rewrite_headers(&mut h);
        assert_eq!(h["grpc-status"], "8");
        assert_eq!(percent_decode(b"100%25%2"), "100%%2");
    }

    #[test]
    fn other_answers_pass_untouched() {
        for (status, message) in [
            (
                "11",
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                "3",
                "Error, decoded message length too large: found 1 bytes, the limit is: 0 bytes",
            ),
            (
                "11",
                "Error, decoded message length too large: found many bytes",
            ),
        ] {
            let mut h = headers(status, message);
            rewrite_headers(&mut h);
            assert_eq!(
                (
                    h["grpc-status"].to_str().unwrap(),
                    h["grpc-message"].to_str().unwrap()
                ),
                (status, message)
            );
        }
        let mut h = http::HeaderMap::new();
        rewrite_headers(&mut h);
        assert!(h.is_empty());
    }
}
