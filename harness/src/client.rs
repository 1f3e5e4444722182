//! The recording etcd client every suite uses.
//!
//! One [`Client`] talks to one or more endpoints. Every call has a deadline (the
//! `--command-timeout`), carries the auth token when credentials were given, and,
//! when a [`Recorder`] is attached, is recorded with its invoke and complete times
//! and its [`Outcome`] (decided by [`classify`]).
//!
//! The client never retries an operation on its own (a retried write can apply
//! twice, and the history would not show it). After a connection-level failure it
//! moves to the next endpoint for the *next* call. The one exception is an auth token
//! the server does not take (`invalid auth token`: expired or revoked; `revision of
//! auth store is old`: issued before an auth change): the server refused the request
//! without doing anything, so the client authenticates again and resends it once.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gauntlet_harness::ClientError> {
//! use gauntlet_harness::{Client, ClientConfig};
//! let client = Client::connect(ClientConfig::new(["127.0.0.1:2379"])).await?;
//! client.put("k", "v").await?;
//! let got = client.get("k").await?;
//! assert_eq!(got.kvs[0].value, b"v");
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use gauntlet_api::etcdserverpb as pb;
use gauntlet_api::etcdserverpb::{
    auth_client::AuthClient, cluster_client::ClusterClient, kv_client::KvClient,
    lease_client::LeaseClient, maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use gauntlet_api::v3electionpb::{self as elpb, election_client::ElectionClient};
use gauntlet_api::v3lockpb::{self as lockpb, lock_client::LockClient};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::record::{
    classify, now_ns, FailureKind, OpRecord, Outcome, Recordable, Recorder, Request, SentRecord,
    WatchRecord,
};

/// etcdctl's default `--dial-timeout`.
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// etcdctl's default `--command-timeout`.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response message the client accepts (etcd's client allows up to 2 GiB).
pub const MAX_RESPONSE_BYTES: usize = 512 << 20;
/// Watch and keep-alive requests queued on one stream before a send waits.
const STREAM_QUEUE: usize = 128;
/// Responses buffered on a watch stream while waiting for a specific one.
const WATCH_BUFFER_LIMIT: usize = 100_000;
/// etcd's metadata key for the auth token.
const TOKEN_METADATA_KEY: &str = "token";

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(0);

/// Client-side TLS files, named like etcdctl's flags.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// `--cacert`: CA bundle to verify servers; the system roots when absent.
    pub cacert: Option<PathBuf>,
    /// `--cert`: client certificate.
    pub cert: Option<PathBuf>,
    /// `--key`: client key.
    pub key: Option<PathBuf>,
}

/// `--user` credentials.
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Parses etcdctl's `--user name:password` form.
    pub fn parse(s: &str) -> Result<Credentials, ClientError> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials {
                user: u.to_string(),
                password: p.to_string(),
            }),
            _ => Err(ClientError::Config(format!(
                "--user takes name:password, got `{}`",
                s.split(':').next().unwrap_or("")
            ))),
        }
    }
}

/// How to reach a cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` or `http(s)://host:port`, one per member.
    pub endpoints: Vec<String>,
    /// TLS, when the endpoints serve it.
    pub tls: Option<TlsFiles>,
    /// Credentials, when auth is enabled.
    pub credentials: Option<Credentials>,
    /// Deadline for establishing a connection.
    pub dial_timeout: Duration,
    /// Deadline for each call.
    pub command_timeout: Duration,
}

impl ClientConfig {
    /// Plain-text, no auth, etcdctl's default timeouts.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> ClientConfig {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            tls: None,
            credentials: None,
            dial_timeout: DEFAULT_DIAL_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }
}

impl ClientConfig {
    /// A tonic endpoint for `endpoint` (`host:port` or URL) with this configuration's TLS
    /// and dial timeout, set up like the client's own connections. For suites that keep
    /// their own pool of connections (the bench generator dials it `--conns` times; every
    /// `connect()` of an endpoint is a separate HTTP/2 connection).
    pub fn endpoint(&self, endpoint: &str) -> Result<Endpoint, ClientError> {
        let tls = self.tls.as_ref().map(tls_config).transpose()?;
        let url = normalize_url(endpoint, tls.is_some())?;
        let mut ep = Endpoint::from_shared(url)
            .map_err(|err| ClientError::Config(format!("endpoint `{endpoint}`: {err}")))?
            .connect_timeout(self.dial_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        if let Some(tls) = tls {
            ep = ep
                .tls_config(tls)
                .map_err(|err| ClientError::Config(format!("TLS for `{endpoint}`: {err}")))?;
        }
        Ok(ep)
    }
}

/// A failed call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a gRPC error status.
    #[error("{endpoint}: {code:?}: {message}")]
    Rpc {
        /// Who answered.
        endpoint: String,
        /// The gRPC code.
        code: tonic::Code,
        /// The message, verbatim.
        message: String,
    },
    /// No answer before the command timeout.
    #[error("{endpoint}: no answer within {after_ms} ms")]
    Timeout {
        /// Where the request went.
        endpoint: String,
        /// The deadline that expired.
        after_ms: u64,
    },
    /// None of the endpoints accepted a connection at start.
    #[error("cannot reach any endpoint within {dial_timeout_ms} ms: {details}")]
    Unreachable {
        /// The dial timeout used.
        dial_timeout_ms: u64,
        /// Each endpoint and why it failed.
        details: String,
    },
    /// A stream ended or broke.
    #[error("{endpoint}: stream ended: {reason}")]
    Stream {
        /// The stream's endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The configuration is unusable (no endpoints, bad TLS files, bad URL, ...).
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// What kind of failure this is, for [`classify`].
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            ClientError::Rpc { code, message, .. } => FailureKind::Status {
                code: *code,
                message: message.clone(),
            },
            ClientError::Timeout { .. } => FailureKind::Timeout,
            ClientError::Stream { .. } => FailureKind::StreamBroken,
            ClientError::Unreachable { .. } | ClientError::Config(_) => FailureKind::NotSent,
        }
    }

    /// The gRPC code, when the server answered with one.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The server's message, when it answered with one.
    pub fn message(&self) -> Option<&str> {
        match self {
            ClientError::Rpc { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Whether this is the server's answer `expected` (same code and exact message).
    pub fn is(&self, expected: gauntlet_api::rpctypes::EtcdError) -> bool {
        matches!(self, ClientError::Rpc { code, message, .. } if *code == expected.code && message == expected.message)
    }
}

struct Inner {
    config: ClientConfig,
    urls: Vec<String>,
    channels: Vec<Channel>,
    current: AtomicUsize,
    token: RwLock<Option<String>>,
    recorder: Option<Arc<dyn Recorder>>,
    client_id: u64,
    next_op: AtomicU64,
    next_stream: AtomicU64,
}

/// A connection to an etcd-compatible cluster. Cheap to clone; clones share
/// connections, token, recorder and client id.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.urls)
            .field("client_id", &self.inner.client_id)
            .finish()
    }
}

fn normalize_url(endpoint: &str, tls: bool) -> Result<String, ClientError> {
    let e = endpoint.trim();
    if e.is_empty() {
        return Err(ClientError::Config("empty endpoint".into()));
    }
    let url = if e.contains("://") {
        e.to_string()
    } else if tls {
        format!("https://{e}")
    } else {
        format!("http://{e}")
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ClientError::Config(format!(
            "endpoint `{e}` must be host:port or http(s)://host:port"
        )));
    }
    Ok(url)
}

fn read_file(p: &PathBuf, what: &str) -> Result<Vec<u8>, ClientError> {
    std::fs::read(p).map_err(|e| ClientError::Config(format!("{what} {}: {e}", p.display())))
}

fn tls_config(files: &TlsFiles) -> Result<ClientTlsConfig, ClientError> {
    let mut cfg = ClientTlsConfig::new();
    match &files.cacert {
        Some(ca) => cfg = cfg.ca_certificate(Certificate::from_pem(read_file(ca, "--cacert")?)),
        None => cfg = cfg.with_native_roots(),
    }
    match (&files.cert, &files.key) {
        (Some(c), Some(k)) => {
            cfg = cfg.identity(Identity::from_pem(
                read_file(c, "--cert")?,
                read_file(k, "--key")?,
            ))
        }
        (None, None) => {}
        _ => return Err(ClientError::Config("--cert and --key go together".into())),
    }
    Ok(cfg)
}

impl Client {
    /// Connects to the endpoints, requiring at least one to accept a connection within
    /// the dial timeout, then authenticates when credentials are configured.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        if config.endpoints.is_empty() {
            return Err(ClientError::Config("no endpoints given".into()));
        }
        if config.dial_timeout.is_zero() || config.command_timeout.is_zero() {
            return Err(ClientError::Config(
                "dial and command timeouts must be positive".into(),
            ));
        }
        let (urls, endpoints) = Self::endpoints_of(&config)?;
        let attempts = endpoints.iter().map(|ep| {
            let ep = ep.clone();
            let dial = config.dial_timeout;
            async move {
                match tokio::time::timeout(dial, ep.connect()).await {
                    Ok(Ok(ch)) => Ok(ch),
                    Ok(Err(e)) => Err(error_chain(&e)),
                    Err(_) => Err("timed out".to_string()),
                }
            }
        });
        let results = futures::future::join_all(attempts).await;
        let mut channels = Vec::new();
        let mut failures = Vec::new();
        let mut first_ok = None;
        for (i, (res, ep)) in results.into_iter().zip(&endpoints).enumerate() {
            match res {
                Ok(ch) => {
                    first_ok.get_or_insert(i);
                    channels.push(ch);
                }
                Err(why) => {
                    failures.push(format!("{} ({why})", config.endpoints[i]));
                    channels.push(ep.connect_lazy());
                }
            }
        }
        let Some(first_ok) = first_ok else {
            return Err(ClientError::Unreachable {
                dial_timeout_ms: millis(config.dial_timeout),
                details: failures.join(", "),
            });
        };
        let client = Client {
            inner: Arc::new(Inner {
                config,
                urls,
                channels,
                current: AtomicUsize::new(first_ok),
                token: RwLock::new(None),
                recorder: None,
                client_id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
                next_op: AtomicU64::new(0),
                next_stream: AtomicU64::new(0),
            }),
        };
        if client.inner.config.credentials.is_some() {
            client.refresh_token().await?;
        }
        Ok(client)
    }

    /// The normalized URLs and tonic endpoints (timeouts, keepalive, TLS) of `config`.
    fn endpoints_of(config: &ClientConfig) -> Result<(Vec<String>, Vec<Endpoint>), ClientError> {
        let tls = config.tls.as_ref().map(tls_config).transpose()?;
        let mut urls = Vec::new();
        let mut endpoints = Vec::new();
        for e in &config.endpoints {
            let url = normalize_url(e, tls.is_some())?;
            let mut ep = Endpoint::from_shared(url.clone())
                .map_err(|err| ClientError::Config(format!("endpoint `{e}`: {err}")))?
                .connect_timeout(config.dial_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5));
            if let Some(tls) = &tls {
                ep = ep
                    .tls_config(tls.clone())
                    .map_err(|err| ClientError::Config(format!("TLS for `{e}`: {err}")))?;
            }
            urls.push(url);
            endpoints.push(ep);
        }
        Ok((urls, endpoints))
    }

    /// Like [`Client::connect`], but connects every endpoint lazily (on its first
    /// request) and does not authenticate: for probes that must exist even when an
    /// endpoint is down, and that read only what needs no auth.
    pub fn connect_lazy(config: ClientConfig) -> Result<Client, ClientError> {
        if config.endpoints.is_empty() {
            return Err(ClientError::Config("no endpoints given".into()));
        }
        let (urls, endpoints) = Self::endpoints_of(&config)?;
        let channels = endpoints.iter().map(Endpoint::connect_lazy).collect();
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                urls,
                channels,
                current: AtomicUsize::new(0),
                token: RwLock::new(None),
                recorder: None,
                client_id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
                next_op: AtomicU64::new(0),
                next_stream: AtomicU64::new(0),
            }),
        })
    }

    fn derive(
        &self,
        urls: Vec<String>,
        channels: Vec<Channel>,
        recorder: Option<Arc<dyn Recorder>>,
    ) -> Client {
        let token = self
            .inner
            .token
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Client {
            inner: Arc::new(Inner {
                config: self.inner.config.clone(),
                urls,
                channels,
                current: AtomicUsize::new(0),
                token: RwLock::new(token),
                recorder,
                client_id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
                next_op: AtomicU64::new(0),
                next_stream: AtomicU64::new(0),
            }),
        }
    }

    /// A new client (new client id) on the same connections that records into `recorder`.
    pub fn with_recorder(&self, recorder: Arc<dyn Recorder>) -> Client {
        self.derive(
            self.inner.urls.clone(),
            self.inner.channels.clone(),
            Some(recorder),
        )
    }

    /// A new client (new client id, same recorder) that talks only to endpoint `index`.
    pub fn pinned(&self, index: usize) -> Result<Client, ClientError> {
        let url = self.inner.urls.get(index).cloned().ok_or_else(|| {
            ClientError::Config(format!(
                "no endpoint {index}: the client has {}",
                self.inner.urls.len()
            ))
        })?;
        Ok(self.derive(
            vec![url],
            vec![self.inner.channels[index].clone()],
            self.inner.recorder.clone(),
        ))
    }

    /// The auth token this client currently sends (`None` without credentials), for
    /// callers that build their own requests on other connections.
    pub fn auth_token(&self) -> Option<String> {
        self.inner
            .token
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// This client's id in records.
    pub fn client_id(&self) -> u64 {
        self.inner.client_id
    }

    /// The endpoints, normalized to URLs.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.urls
    }

    /// Tells the recorder (if any) that `request` is being sent to `endpoint`.
    fn note_sent(&self, endpoint: &str, request: impl FnOnce() -> Request) {
        if let Some(rec) = &self.inner.recorder {
            rec.sent(SentRecord {
                client_id: self.inner.client_id,
                endpoint: endpoint.to_string(),
                request: request(),
                sent_ns: now_ns(),
            });
        }
    }

    fn pick(&self) -> usize {
        self.inner.current.load(Ordering::Relaxed) % self.inner.channels.len()
    }

    fn rotate_from(&self, idx: usize) {
        let n = self.inner.channels.len();
        let _ = self.inner.current.compare_exchange(
            idx,
            (idx + 1) % n,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// A request carrying the auth token (no deadline header: streams are long-lived).
    fn stream_request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if let Some(tok) = self
            .inner
            .token
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_deref()
        {
            if let Ok(v) = tonic::metadata::MetadataValue::try_from(tok) {
                req.metadata_mut().insert(TOKEN_METADATA_KEY, v);
            }
        }
        req
    }

    /// A unary request: the token and the command timeout as its gRPC deadline.
    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = self.stream_request(msg);
        req.set_timeout(self.inner.config.command_timeout);
        req
    }

    async fn refresh_token(&self) -> Result<(), ClientError> {
        let Some(cred) = self.inner.config.credentials.clone() else {
            return Ok(());
        };
        *self
            .inner
            .token
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        let resp = self
            .send(
                pb::AuthenticateRequest {
                    name: cred.user,
                    password: cred.password,
                },
                |ch, r| async move { AuthClient::new(ch).authenticate(r).await },
            )
            .await?;
        *self
            .inner
            .token
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(resp.token);
        Ok(())
    }

    /// One unary call: deadline, token, endpoint rotation, the token-expiry resend, recording.
    async fn unary<R, F, Fut>(&self, msg: R, f: F) -> Result<R::Response, ClientError>
    where
        R: Recordable,
        F: Fn(Channel, tonic::Request<R>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R::Response>, tonic::Status>>,
    {
        let first = self.send(msg.clone(), &f).await;
        match first {
            // As etcd's clientv3: a token the server no longer accepts, or one issued
            // before an auth change (a JWT carries its auth revision), is renewed once.
            Err(ClientError::Rpc {
                code, ref message, ..
            }) if self.inner.config.credentials.is_some()
                && [
                    gauntlet_api::rpctypes::INVALID_AUTH_TOKEN,
                    gauntlet_api::rpctypes::AUTH_OLD_REVISION,
                ]
                .iter()
                .any(|e| e.code == code && e.message == message) =>
            {
                self.refresh_token().await?;
                self.send(msg, &f).await
            }
            other => other,
        }
    }

    async fn send<R, F, Fut>(&self, msg: R, f: F) -> Result<R::Response, ClientError>
    where
        R: Recordable,
        F: Fn(Channel, tonic::Request<R>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R::Response>, tonic::Status>>,
    {
        let idx = self.pick();
        let endpoint = self.inner.urls[idx].clone();
        let call = self.inner.recorder.as_ref().map(|_| msg.to_call());
        let timeout = self.inner.config.command_timeout;
        let invoke_ns = now_ns();
        if let (Some(rec), Some(call)) = (&self.inner.recorder, &call) {
            rec.sent(SentRecord {
                client_id: self.inner.client_id,
                endpoint: endpoint.clone(),
                request: Request::Unary(call.clone()),
                sent_ns: invoke_ns,
            });
        }
        let fut = f(self.inner.channels[idx].clone(), self.request(msg));
        let result = match tokio::time::timeout(timeout, fut).await {
            Err(_) => Err(ClientError::Timeout {
                endpoint: endpoint.clone(),
                after_ms: millis(timeout),
            }),
            Ok(Err(status)) => Err(status_error(&endpoint, &status)),
            Ok(Ok(resp)) => Ok(resp.into_inner()),
        };
        let complete_ns = now_ns();
        if let Err(e) = &result {
            if matches!(e, ClientError::Timeout { .. })
                || matches!(
                    e.code(),
                    Some(tonic::Code::Unavailable | tonic::Code::Unknown)
                )
            {
                self.rotate_from(idx);
            }
        }
        if let (Some(rec), Some(call)) = (&self.inner.recorder, call) {
            let failure = result.as_ref().err().map(ClientError::failure_kind);
            let outcome: Outcome = classify(call.may_mutate(), failure.as_ref());
            rec.operation(OpRecord {
                client_id: self.inner.client_id,
                op_id: self.inner.next_op.fetch_add(1, Ordering::Relaxed),
                endpoint,
                call,
                ret: result.as_ref().ok().map(R::to_return),
                failure,
                invoke_ns,
                complete_ns,
                outcome,
            });
        }
        result
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

fn status_error(endpoint: &str, status: &tonic::Status) -> ClientError {
    let mut message = status.message().to_string();
    // Connection failures carry their cause in the source chain; keep it visible. A
    // connection that breaks under a request in flight (a TLS 1.3 server refusing the
    // client's certificate after the handshake, say) shows up as Cancelled.
    if matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Cancelled
    ) {
        if let Some(src) = std::error::Error::source(status) {
            let chain = error_chain(src);
            if !message.contains(&chain) {
                message = if message.is_empty() {
                    chain
                } else {
                    format!("{message}: {chain}")
                };
            }
        }
    }
    ClientError::Rpc {
        endpoint: endpoint.to_string(),
        code: status.code(),
        message,
    }
}

macro_rules! unary_methods {
    ($( $(#[$doc:meta])* $name:ident($req:ty) -> $resp:ty => $client:ident::$rpc:ident; )*) => {
        impl Client {
            $(
                $(#[$doc])*
                pub async fn $name(&self, req: $req) -> Result<$resp, ClientError> {
                    self.unary(req, |ch, r| async move {
                        $client::new(ch).max_decoding_message_size(MAX_RESPONSE_BYTES).$rpc(r).await
                    })
                    .await
                }
            )*
        }
    };
}

unary_methods! {
    /// KV.Range.
    range(pb::RangeRequest) -> pb::RangeResponse => KvClient::range;
    /// KV.Put.
    put_request(pb::PutRequest) -> pb::PutResponse => KvClient::put;
    /// KV.DeleteRange.
    delete_range(pb::DeleteRangeRequest) -> pb::DeleteRangeResponse => KvClient::delete_range;
    /// KV.Txn.
    txn(pb::TxnRequest) -> pb::TxnResponse => KvClient::txn;
    /// KV.Compact.
    compact(pb::CompactionRequest) -> pb::CompactionResponse => KvClient::compact;
    /// Lease.LeaseGrant.
    lease_grant(pb::LeaseGrantRequest) -> pb::LeaseGrantResponse => LeaseClient::lease_grant;
    /// Lease.LeaseRevoke.
    lease_revoke(pb::LeaseRevokeRequest) -> pb::LeaseRevokeResponse => LeaseClient::lease_revoke;
    /// Lease.LeaseTimeToLive.
    lease_time_to_live(pb::LeaseTimeToLiveRequest) -> pb::LeaseTimeToLiveResponse => LeaseClient::lease_time_to_live;
    /// Lease.LeaseLeases.
    lease_leases(pb::LeaseLeasesRequest) -> pb::LeaseLeasesResponse => LeaseClient::lease_leases;
    /// Cluster.MemberAdd.
    member_add(pb::MemberAddRequest) -> pb::MemberAddResponse => ClusterClient::member_add;
    /// Cluster.MemberRemove.
    member_remove(pb::MemberRemoveRequest) -> pb::MemberRemoveResponse => ClusterClient::member_remove;
    /// Cluster.MemberUpdate.
    member_update(pb::MemberUpdateRequest) -> pb::MemberUpdateResponse => ClusterClient::member_update;
    /// Cluster.MemberList.
    member_list(pb::MemberListRequest) -> pb::MemberListResponse => ClusterClient::member_list;
    /// Cluster.MemberPromote.
    member_promote(pb::MemberPromoteRequest) -> pb::MemberPromoteResponse => ClusterClient::member_promote;
    /// Maintenance.Alarm.
    alarm(pb::AlarmRequest) -> pb::AlarmResponse => MaintenanceClient::alarm;
    /// Maintenance.Status of the endpoint this call goes to (use [`Client::pinned`] to choose it).
    status(pb::StatusRequest) -> pb::StatusResponse => MaintenanceClient::status;
    /// Maintenance.Defragment.
    defragment(pb::DefragmentRequest) -> pb::DefragmentResponse => MaintenanceClient::defragment;
    /// Maintenance.Hash.
    hash(pb::HashRequest) -> pb::HashResponse => MaintenanceClient::hash;
    /// Maintenance.HashKV.
    hash_kv(pb::HashKvRequest) -> pb::HashKvResponse => MaintenanceClient::hash_kv;
    /// Maintenance.MoveLeader.
    move_leader(pb::MoveLeaderRequest) -> pb::MoveLeaderResponse => MaintenanceClient::move_leader;
    /// Maintenance.Downgrade (etcd 3.5+).
    downgrade(pb::DowngradeRequest) -> pb::DowngradeResponse => MaintenanceClient::downgrade;
    /// Auth.AuthEnable.
    auth_enable(pb::AuthEnableRequest) -> pb::AuthEnableResponse => AuthClient::auth_enable;
    /// Auth.AuthDisable.
    auth_disable(pb::AuthDisableRequest) -> pb::AuthDisableResponse => AuthClient::auth_disable;
    /// Auth.AuthStatus (etcd 3.5+).
    auth_status(pb::AuthStatusRequest) -> pb::AuthStatusResponse => AuthClient::auth_status;
    /// Auth.Authenticate (the client does this itself when given credentials).
    authenticate(pb::AuthenticateRequest) -> pb::AuthenticateResponse => AuthClient::authenticate;
    /// Auth.UserAdd.
    user_add(pb::AuthUserAddRequest) -> pb::AuthUserAddResponse => AuthClient::user_add;
    /// Auth.UserGet.
    user_get(pb::AuthUserGetRequest) -> pb::AuthUserGetResponse => AuthClient::user_get;
    /// Auth.UserList.
    user_list(pb::AuthUserListRequest) -> pb::AuthUserListResponse => AuthClient::user_list;
    /// Auth.UserDelete.
    user_delete(pb::AuthUserDeleteRequest) -> pb::AuthUserDeleteResponse => AuthClient::user_delete;
    /// Auth.UserChangePassword.
    user_change_password(pb::AuthUserChangePasswordRequest) -> pb::AuthUserChangePasswordResponse => AuthClient::user_change_password;
    /// Auth.UserGrantRole.
    user_grant_role(pb::AuthUserGrantRoleRequest) -> pb::AuthUserGrantRoleResponse => AuthClient::user_grant_role;
    /// Auth.UserRevokeRole.
    user_revoke_role(pb::AuthUserRevokeRoleRequest) -> pb::AuthUserRevokeRoleResponse => AuthClient::user_revoke_role;
    /// Auth.RoleAdd.
    role_add(pb::AuthRoleAddRequest) -> pb::AuthRoleAddResponse => AuthClient::role_add;
    /// Auth.RoleGet.
    role_get(pb::AuthRoleGetRequest) -> pb::AuthRoleGetResponse => AuthClient::role_get;
    /// Auth.RoleList.
    role_list(pb::AuthRoleListRequest) -> pb::AuthRoleListResponse => AuthClient::role_list;
    /// Auth.RoleDelete.
    role_delete(pb::AuthRoleDeleteRequest) -> pb::AuthRoleDeleteResponse => AuthClient::role_delete;
    /// Auth.RoleGrantPermission.
    role_grant_permission(pb::AuthRoleGrantPermissionRequest) -> pb::AuthRoleGrantPermissionResponse => AuthClient::role_grant_permission;
    /// Auth.RoleRevokePermission.
    role_revoke_permission(pb::AuthRoleRevokePermissionRequest) -> pb::AuthRoleRevokePermissionResponse => AuthClient::role_revoke_permission;
    /// Lock.Lock (v3lockpb); blocks until the lock is held or the command timeout passes.
    lock(lockpb::LockRequest) -> lockpb::LockResponse => LockClient::lock;
    /// Lock.Unlock.
    unlock(lockpb::UnlockRequest) -> lockpb::UnlockResponse => LockClient::unlock;
    /// Election.Campaign; blocks until elected or the command timeout passes.
    campaign(elpb::CampaignRequest) -> elpb::CampaignResponse => ElectionClient::campaign;
    /// Election.Proclaim.
    proclaim(elpb::ProclaimRequest) -> elpb::ProclaimResponse => ElectionClient::proclaim;
    /// Election.Leader.
    leader(elpb::LeaderRequest) -> elpb::LeaderResponse => ElectionClient::leader;
    /// Election.Resign.
    resign(elpb::ResignRequest) -> elpb::ResignResponse => ElectionClient::resign;
}

impl Client {
    /// Reads one key (linearizable).
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<pb::RangeResponse, ClientError> {
        self.range(pb::RangeRequest {
            key: key.into(),
            ..Default::default()
        })
        .await
    }

    /// Reads every key under `prefix` (linearizable).
    pub async fn get_prefix(
        &self,
        prefix: impl Into<Vec<u8>>,
    ) -> Result<pb::RangeResponse, ClientError> {
        let key = prefix.into();
        let range_end = gauntlet_api::prefix_range_end(&key);
        self.range(pb::RangeRequest {
            key,
            range_end,
            ..Default::default()
        })
        .await
    }

    /// Writes one key.
    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<pb::PutResponse, ClientError> {
        self.put_request(pb::PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })
        .await
    }

    /// Deletes one key.
    pub async fn delete(
        &self,
        key: impl Into<Vec<u8>>,
    ) -> Result<pb::DeleteRangeResponse, ClientError> {
        self.delete_range(pb::DeleteRangeRequest {
            key: key.into(),
            ..Default::default()
        })
        .await
    }

    /// Opens a watch stream whose first watcher is `create`; returns the stream and the
    /// server's answer to that create (normally `created`, or a cancel).
    pub async fn watch(
        &self,
        create: pb::WatchCreateRequest,
    ) -> Result<(WatchStream, pb::WatchResponse), ClientError> {
        let idx = self.pick();
        let endpoint = self.inner.urls[idx].clone();
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let create = watch_create(create);
        self.note_sent(&endpoint, || Request::Watch(create.clone()));
        tx.try_send(create)
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let timeout = self.inner.config.command_timeout;
        let req = self.stream_request(ReceiverStream::new(rx));
        let mut wc = WatchClient::new(self.inner.channels[idx].clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let stream = match tokio::time::timeout(timeout, wc.watch(req)).await {
            Err(_) => {
                return Err(ClientError::Timeout {
                    endpoint,
                    after_ms: millis(timeout),
                })
            }
            Ok(Err(status)) => {
                self.rotate_from(idx);
                return Err(status_error(&endpoint, &status));
            }
            Ok(Ok(s)) => s.into_inner(),
        };
        let mut ws = WatchStream {
            tx,
            rx: stream,
            buffered: VecDeque::new(),
            endpoint,
            timeout,
            recorder: self.inner.recorder.clone(),
            client_id: self.inner.client_id,
            stream_id: self.inner.next_stream.fetch_add(1, Ordering::Relaxed),
        };
        let created = ws.wait_for(|r| r.created || r.canceled).await?;
        Ok((ws, created))
    }

    /// Opens a keep-alive stream for `lease_id` and sends the first keep-alive.
    pub async fn lease_keep_alive(
        &self,
        lease_id: i64,
    ) -> Result<(LeaseKeeper, pb::LeaseKeepAliveResponse), ClientError> {
        let idx = self.pick();
        let endpoint = self.inner.urls[idx].clone();
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        self.note_sent(&endpoint, || {
            Request::KeepAlive(pb::LeaseKeepAliveRequest { id: lease_id })
        });
        tx.try_send(pb::LeaseKeepAliveRequest { id: lease_id })
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let timeout = self.inner.config.command_timeout;
        let req = self.stream_request(ReceiverStream::new(rx));
        let stream = match tokio::time::timeout(
            timeout,
            LeaseClient::new(self.inner.channels[idx].clone()).lease_keep_alive(req),
        )
        .await
        {
            Err(_) => {
                return Err(ClientError::Timeout {
                    endpoint,
                    after_ms: millis(timeout),
                })
            }
            Ok(Err(status)) => return Err(status_error(&endpoint, &status)),
            Ok(Ok(s)) => s.into_inner(),
        };
        let mut keeper = LeaseKeeper {
            tx,
            rx: stream,
            endpoint,
            timeout,
            lease_id,
        };
        let first = keeper.receive().await?;
        Ok((keeper, first))
    }

    /// Maintenance.Snapshot: the whole snapshot stream, up to `max_bytes`, within
    /// `deadline` for the whole transfer.
    pub async fn snapshot(
        &self,
        max_bytes: usize,
        deadline: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        let idx = self.pick();
        let endpoint = self.inner.urls[idx].clone();
        let fut = async {
            let mut mc = MaintenanceClient::new(self.inner.channels[idx].clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES);
            let mut stream = mc
                .snapshot(self.request(pb::SnapshotRequest {}))
                .await
                .map_err(|s| status_error(&endpoint, &s))?
                .into_inner();
            let mut out = Vec::new();
            while let Some(part) = stream
                .message()
                .await
                .map_err(|s| status_error(&endpoint, &s))?
            {
                out.extend_from_slice(&part.blob);
                if out.len() > max_bytes {
                    return Err(ClientError::Stream {
                        endpoint: endpoint.clone(),
                        reason: format!("snapshot larger than {max_bytes} bytes"),
                    });
                }
            }
            Ok(out)
        };
        within(&endpoint, deadline, fut).await
    }
}

impl Client {
    /// Election.Observe: opens the stream and hands each leader response to `seen`
    /// until it answers `false` (enough) or `deadline` passes (a timeout error). The
    /// stream closes when this returns.
    pub async fn observe(
        &self,
        req: elpb::LeaderRequest,
        deadline: Duration,
        mut seen: impl FnMut(&elpb::LeaderResponse) -> bool + Send,
    ) -> Result<(), ClientError> {
        let idx = self.pick();
        let endpoint = self.inner.urls[idx].clone();
        let fut = async {
            let mut ec = ElectionClient::new(self.inner.channels[idx].clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES);
            let mut stream = ec
                .observe(self.request(req))
                .await
                .map_err(|s| status_error(&endpoint, &s))?
                .into_inner();
            while let Some(r) = stream
                .message()
                .await
                .map_err(|s| status_error(&endpoint, &s))?
            {
                if !seen(&r) {
                    return Ok(());
                }
            }
            Err(ClientError::Stream {
                endpoint: endpoint.clone(),
                reason: "the Observe stream ended".into(),
            })
        };
        within(&endpoint, deadline, fut).await
    }
}

/// Runs a whole stream call `fut` to `endpoint` with a deadline (a timeout error after).
async fn within<T>(
    endpoint: &str,
    deadline: Duration,
    fut: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(deadline, fut)
        .await
        .unwrap_or_else(|_| {
            Err(ClientError::Timeout {
                endpoint: endpoint.to_string(),
                after_ms: millis(deadline),
            })
        })
}

/// Queues `item` on a stream's request side, waiting at most `timeout` for room.
async fn send_bounded<T>(
    tx: &mpsc::Sender<T>,
    item: T,
    timeout: Duration,
    endpoint: &str,
) -> Result<(), ClientError> {
    match tokio::time::timeout(timeout, tx.send(item)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(ClientError::Stream {
            endpoint: endpoint.to_string(),
            reason: "stream closed".into(),
        }),
        Err(_) => Err(ClientError::Timeout {
            endpoint: endpoint.to_string(),
            after_ms: millis(timeout),
        }),
    }
}

/// The next message of a response stream, waiting at most `timeout`.
async fn recv_bounded<T>(
    rx: &mut tonic::Streaming<T>,
    timeout: Duration,
    endpoint: &str,
) -> Result<T, ClientError> {
    match tokio::time::timeout(timeout, rx.message()).await {
        Err(_) => Err(ClientError::Timeout {
            endpoint: endpoint.to_string(),
            after_ms: millis(timeout),
        }),
        Ok(Err(status)) => Err(status_error(endpoint, &status)),
        Ok(Ok(None)) => Err(ClientError::Stream {
            endpoint: endpoint.to_string(),
            reason: "closed by the server".into(),
        }),
        Ok(Ok(Some(r))) => Ok(r),
    }
}

fn watch_create(create: pb::WatchCreateRequest) -> pb::WatchRequest {
    pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(create)),
    }
}

/// One watch stream (several watchers may share it).
///
/// Contract: responses are handed out in the order the server sent them; a response
/// skipped over by [`WatchStream::wait_for`] is kept and returned by the next
/// [`WatchStream::recv`], never lost.
pub struct WatchStream {
    tx: mpsc::Sender<pb::WatchRequest>,
    rx: tonic::Streaming<pb::WatchResponse>,
    buffered: VecDeque<pb::WatchResponse>,
    endpoint: String,
    timeout: Duration,
    recorder: Option<Arc<dyn Recorder>>,
    client_id: u64,
    stream_id: u64,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("endpoint", &self.endpoint)
            .field("stream_id", &self.stream_id)
            .finish()
    }
}

impl WatchStream {
    async fn send(&self, req: pb::WatchRequest) -> Result<(), ClientError> {
        if let Some(rec) = &self.recorder {
            rec.sent(SentRecord {
                client_id: self.client_id,
                endpoint: self.endpoint.clone(),
                request: Request::Watch(req.clone()),
                sent_ns: now_ns(),
            });
        }
        send_bounded(&self.tx, req, self.timeout, &self.endpoint).await
    }

    async fn receive_raw(&mut self, timeout: Duration) -> Result<pb::WatchResponse, ClientError> {
        let resp = recv_bounded(&mut self.rx, timeout, &self.endpoint).await?;
        if let Some(rec) = &self.recorder {
            rec.watch_response(WatchRecord {
                client_id: self.client_id,
                stream_id: self.stream_id,
                response: resp.clone(),
                received_ns: now_ns(),
            });
        }
        Ok(resp)
    }

    /// The next response, waiting at most `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Result<pb::WatchResponse, ClientError> {
        if let Some(r) = self.buffered.pop_front() {
            return Ok(r);
        }
        self.receive_raw(timeout).await
    }

    /// Waits (command timeout) for the first response matching `pred`, keeping the others for [`recv`](Self::recv).
    pub async fn wait_for(
        &mut self,
        pred: impl Fn(&pb::WatchResponse) -> bool,
    ) -> Result<pb::WatchResponse, ClientError> {
        if let Some(pos) = self.buffered.iter().position(&pred) {
            return Ok(self.buffered.remove(pos).unwrap_or_default());
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let r = self.receive_raw(left).await?;
            if pred(&r) {
                return Ok(r);
            }
            if self.buffered.len() >= WATCH_BUFFER_LIMIT {
                return Err(ClientError::Stream {
                    endpoint: self.endpoint.clone(),
                    reason: format!(
                        "more than {WATCH_BUFFER_LIMIT} responses buffered while waiting"
                    ),
                });
            }
            self.buffered.push_back(r);
        }
    }

    /// Adds a watcher to this stream; returns the server's answer to it.
    pub async fn create(
        &mut self,
        create: pb::WatchCreateRequest,
    ) -> Result<pb::WatchResponse, ClientError> {
        let wanted = create.watch_id;
        self.send(watch_create(create)).await?;
        self.wait_for(|r| {
            (r.created || (r.canceled && r.events.is_empty()))
                && (wanted == 0 || r.watch_id == wanted)
        })
        .await
    }

    /// Sends a create request without waiting for its answer (which arrives through
    /// [`recv`](Self::recv) or [`wait_for`](Self::wait_for)); for answers
    /// [`create`](Self::create) cannot match, such as a refused client-chosen id.
    pub async fn send_create(&mut self, create: pb::WatchCreateRequest) -> Result<(), ClientError> {
        self.send(watch_create(create)).await
    }

    /// Cancels watcher `watch_id`; returns the server's cancel response.
    pub async fn cancel(&mut self, watch_id: i64) -> Result<pb::WatchResponse, ClientError> {
        self.send(pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CancelRequest(
                pb::WatchCancelRequest { watch_id },
            )),
        })
        .await?;
        self.wait_for(|r| r.canceled && r.watch_id == watch_id)
            .await
    }

    /// Asks for a progress notification (etcd 3.4+); it arrives through [`recv`](Self::recv).
    pub async fn request_progress(&mut self) -> Result<(), ClientError> {
        self.send(pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::ProgressRequest(
                pb::WatchProgressRequest {},
            )),
        })
        .await
    }
}

/// A lease keep-alive stream.
pub struct LeaseKeeper {
    tx: mpsc::Sender<pb::LeaseKeepAliveRequest>,
    rx: tonic::Streaming<pb::LeaseKeepAliveResponse>,
    endpoint: String,
    timeout: Duration,
    lease_id: i64,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper")
            .field("endpoint", &self.endpoint)
            .field("lease_id", &self.lease_id)
            .finish()
    }
}

impl LeaseKeeper {
    async fn receive(&mut self) -> Result<pb::LeaseKeepAliveResponse, ClientError> {
        recv_bounded(&mut self.rx, self.timeout, &self.endpoint).await
    }

    /// Sends one keep-alive and waits for its answer (TTL 0 means the lease is gone).
    pub async fn keep_alive(&mut self) -> Result<pb::LeaseKeepAliveResponse, ClientError> {
        let req = pb::LeaseKeepAliveRequest { id: self.lease_id };
        send_bounded(&self.tx, req, self.timeout, &self.endpoint).await?;
        self.receive().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalized() {
        assert_eq!(
            normalize_url("127.0.0.1:2379", false).unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            normalize_url("127.0.0.1:2379", true).unwrap(),
            "https://127.0.0.1:2379"
        );
        assert_eq!(normalize_url("https://h:1", false).unwrap(), "https://h:1");
        assert!(normalize_url("unix:///x", false).is_err());
        assert!(normalize_url(" ", false).is_err());
    }

    #[test]
    fn user_flag_parses_like_etcdctl() {
        let c = Credentials::parse("root:pw:with:colons").unwrap();
        assert_eq!(
            (c.user.as_str(), c.password.as_str()),
            ("root", "pw:with:colons")
        );
        assert!(Credentials::parse("nopassword").is_err());
        assert!(!format!("{c:?}").contains("pw"));
    }

    #[tokio::test]
    async fn unreachable_endpoints_fail_fast_with_one_line() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cfg = ClientConfig::new([format!("127.0.0.1:{port}")]);
        cfg.dial_timeout = Duration::from_millis(500);
        let started = std::time::Instant::now();
        let err = Client::connect(cfg).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3));
        let msg = err.to_string();
        assert!(
            msg.contains("cannot reach any endpoint")
                && msg.contains(&port.to_string())
                && !msg.contains('\n'),
            "{msg}"
        );
        assert_eq!(
            crate::classify(true, Some(&err.failure_kind())),
            Outcome::Failed
        );
    }

    #[tokio::test]
    async fn empty_config_is_rejected() {
        let err = Client::connect(ClientConfig::new(Vec::<String>::new()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no endpoints"));
    }
}
