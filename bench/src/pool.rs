//! The connection pool the generator's clients share.
//!
//! etcd's benchmark opens `--conns` gRPC connections and spreads `--clients`
//! concurrent clients over them. [`Pool`] does the same: it dials each connection
//! separately (one HTTP/2 connection each), endpoints assigned round-robin, or
//! only the leader's endpoint with `--target-leader`. Requests carry the command
//! timeout as their gRPC deadline and the auth token when `--user` was given.

use std::sync::Arc;
use std::time::Duration;

use gauntlet_api::etcdserverpb::{self as pb, kv_client::KvClient};
use gauntlet_harness::{Client, ClientConfig, ClientError};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::error::{ensure, BenchError, Result};

/// Most connections a pool opens.
pub const MAX_CONNS: usize = 10_000;

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOpts {
    /// Endpoints, TLS, credentials and timeouts (etcdctl's flags).
    pub client: ClientConfig,
    /// `--conns`: gRPC connections to open.
    pub conns: usize,
    /// `--target-leader`: send everything to the leader's endpoint.
    pub target_leader: bool,
}

struct Inner {
    channels: Vec<Channel>,
    endpoints: Vec<String>,
    token: Option<MetadataValue<Ascii>>,
    command_timeout: Duration,
    control: Client,
}

/// `--conns` connections plus a harness [`Client`] for setup calls. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("endpoints", &self.inner.endpoints)
            .field("conns", &self.inner.channels.len())
            .finish()
    }
}

impl Pool {
    /// Connects: first one harness client (which fails within the dial timeout when no
    /// endpoint answers, and authenticates), then `conns` connections.
    pub async fn connect(opts: &ConnectOpts) -> Result<Pool> {
        ensure(opts.conns >= 1, || "--conns must be at least 1".into())?;
        ensure(opts.conns <= MAX_CONNS, || {
            format!("--conns must be at most {MAX_CONNS}, got {}", opts.conns)
        })?;
        let control = Client::connect(opts.client.clone()).await?;
        let endpoints: Vec<String> = if opts.target_leader {
            vec![leader_endpoint(&control).await?]
        } else {
            control.endpoints().to_vec()
        };
        let dial = opts.client.dial_timeout;
        let mut attempts = Vec::with_capacity(opts.conns);
        for i in 0..opts.conns {
            let ep = opts.client.endpoint(&endpoints[i % endpoints.len()])?;
            attempts.push(async move {
                match tokio::time::timeout(dial, ep.connect()).await {
                    Ok(Ok(ch)) => Ok(ch),
                    Ok(Err(e)) => Err(format!("{}: {e}", ep.uri())),
                    Err(_) => Err(format!("{}: timed out", ep.uri())),
                }
            });
        }
        let mut channels = Vec::with_capacity(opts.conns);
        for r in futures::future::join_all(attempts).await {
            channels.push(r.map_err(|details| {
                BenchError::Connect(ClientError::Unreachable {
                    dial_timeout_ms: dial.as_millis() as u64,
                    details,
                })
            })?);
        }
        let token =
            match control.auth_token() {
                Some(t) => Some(MetadataValue::try_from(t).map_err(|_| {
                    BenchError::Setup("the auth token is not valid metadata".into())
                })?),
                None => None,
            };
        Ok(Pool {
            inner: Arc::new(Inner {
                channels,
                endpoints,
                token,
                command_timeout: opts.client.command_timeout,
                control,
            }),
        })
    }

    /// Connection `i` (modulo the pool size).
    pub fn channel(&self, i: usize) -> Channel {
        self.inner.channels[i % self.inner.channels.len()].clone()
    }

    /// A KV client on connection `i`.
    pub fn kv(&self, i: usize) -> KvClient<Channel> {
        KvClient::new(self.channel(i))
    }

    /// Connections in the pool.
    pub fn conns(&self) -> usize {
        self.inner.channels.len()
    }

    /// Endpoints the pool's connections go to.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    /// The deadline of each unary call.
    pub fn command_timeout(&self) -> Duration {
        self.inner.command_timeout
    }

    /// The harness client, for setup and background calls (compaction, leader lookup).
    pub fn control(&self) -> &Client {
        &self.inner.control
    }

    /// A streaming request: the auth token, no deadline (streams are long-lived).
    pub fn stream_request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if let Some(t) = &self.inner.token {
            req.metadata_mut().insert("token", t.clone());
        }
        req
    }

    /// A unary request: the token and the command timeout as its gRPC deadline.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = self.stream_request(msg);
        req.set_timeout(self.inner.command_timeout);
        req
    }

    /// Runs one unary call under the command timeout (also enforced locally, so a
    /// server that ignores deadlines cannot hold a client forever).
    pub async fn call<T>(
        &self,
        fut: impl std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    ) -> std::result::Result<T, String> {
        match tokio::time::timeout(self.inner.command_timeout, fut).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(status_text(&status)),
            Err(_) => Err(format!(
                "no answer within the command timeout ({} ms)",
                self.inner.command_timeout.as_millis()
            )),
        }
    }
}

/// A gRPC status as one error-distribution line: code and message, no endpoint, so
/// that equal errors from different members count together.
pub fn status_text(s: &tonic::Status) -> String {
    if s.message().is_empty() {
        format!("{:?}", s.code())
    } else {
        format!("{:?}: {}", s.code(), s.message())
    }
}

/// The endpoint of the member that is the leader, asked of every endpoint in turn.
async fn leader_endpoint(control: &Client) -> Result<String> {
    let mut why = Vec::new();
    for i in 0..control.endpoints().len() {
        let c = control.pinned(i)?;
        match c.status(pb::StatusRequest {}).await {
            Ok(s) => {
                let me = s.header.as_ref().map_or(0, |h| h.member_id);
                if me != 0 && me == s.leader {
                    return Ok(c.endpoints()[0].clone());
                }
            }
            Err(e) => why.push(e.to_string()),
        }
    }
    Err(BenchError::Setup(format!(
        "--target-leader: no endpoint says it is the leader{}",
        if why.is_empty() {
            String::new()
        } else {
            format!(" ({})", why.join("; "))
        }
    )))
}
