//! A response-mutating gRPC proxy: the suite's self-test.
//!
//! A [`Proxy`] listens on loopback and serves every etcd service (KV, Watch, Lease,
//! Cluster, Maintenance, Auth, Lock, Election) by forwarding each call to one
//! upstream endpoint over a tonic channel, passing the auth token along. With a
//! [`Mutation`] it corrupts the answers in one named, realistic way (a dropped watch
//! event, a stale revision, a lying `count`, a wrong error code, ...). A conformance
//! suite pointed at a mutating proxy must fail: each mutation a suite does not notice
//! is a hole in the suite.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use gauntlet_harness::{Mutation, Proxy};
//! let proxy = Proxy::start("http://127.0.0.1:2379", Some(Mutation::LieCount)).await?;
//! println!("point the suite at {}", proxy.endpoint());
//! # Ok(()) }
//! ```
//!
//! Invariant: the proxy listens only on 127.0.0.1 and stops when dropped.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use gauntlet_api::etcdserverpb::{
    self as pb, auth_client::AuthClient, auth_server, cluster_client::ClusterClient,
    cluster_server, kv_client::KvClient, kv_server, lease_client::LeaseClient, lease_server,
    maintenance_client::MaintenanceClient, maintenance_server, watch_client::WatchClient,
    watch_server,
};
use gauntlet_api::v3electionpb::{self as elpb, election_client::ElectionClient, election_server};
use gauntlet_api::v3lockpb::{self as lockpb, lock_client::LockClient, lock_server};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

use crate::error::{HarnessError, Result};

/// Largest message the proxy decodes or forwards either way.
const PROXY_MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Dial timeout of the upstream channel.
const UPSTREAM_DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// The metadata key carrying etcd's auth token.
const TOKEN_KEY: &str = "token";

/// One named way of corrupting answers. Each is something a real server could get wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// Drops the first event of every watch response that has events.
    DropWatchEvent,
    /// Reverses the order of events inside watch responses with two or more events.
    ReorderEvents,
    /// Range answers carry a header revision one below the real one.
    StaleRevision,
    /// Put answers carry a header revision one above the real one (a skipped revision).
    SkipRevision,
    /// Range `count` is one more than the real count.
    LieCount,
    /// Range `more` is inverted.
    LieMore,
    /// Every error keeps its message but gets code `Internal`.
    WrongErrorCode,
    /// Every error keeps its code but loses the `etcdserver: ` prefix of its message.
    WrongErrorMessage,
    /// Put, DeleteRange and watch answers lose their previous key-values.
    DropPrevKv,
    /// KV answers name another member in the header.
    WrongMemberId,
    /// LeaseGrant, TimeToLive and keep-alive answers report a TTL one second longer.
    LeaseTtlOff,
    /// Watch creation answers say `created = false`.
    DropCreated,
    /// Txn answers report the other branch as taken.
    FlipTxnSucceeded,
    /// Range answers list their key-values in reverse order.
    ReverseRange,
    /// Range answers report each key's version one higher.
    WrongVersion,
    /// Every second Put is acknowledged (with the next revision) but never forwarded:
    /// an acknowledged write that is lost.
    LoseWrite,
    /// A Range repeated with the same request is answered, every second time, with the
    /// answer the previous one got: a stale read.
    StaleRead,
}

impl Mutation {
    /// Every mutation.
    pub const ALL: [Mutation; 17] = [
        Mutation::DropWatchEvent,
        Mutation::ReorderEvents,
        Mutation::StaleRevision,
        Mutation::SkipRevision,
        Mutation::LieCount,
        Mutation::LieMore,
        Mutation::WrongErrorCode,
        Mutation::WrongErrorMessage,
        Mutation::DropPrevKv,
        Mutation::WrongMemberId,
        Mutation::LeaseTtlOff,
        Mutation::DropCreated,
        Mutation::FlipTxnSucceeded,
        Mutation::ReverseRange,
        Mutation::WrongVersion,
        Mutation::LoseWrite,
        Mutation::StaleRead,
    ];

    /// The kebab-case name used on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Mutation::DropWatchEvent => "drop-watch-event",
            Mutation::ReorderEvents => "reorder-events",
            Mutation::StaleRevision => "stale-revision",
            Mutation::SkipRevision => "skip-revision",
            Mutation::LieCount => "lie-count",
            Mutation::LieMore => "lie-more",
            Mutation::WrongErrorCode => "wrong-error-code",
            Mutation::WrongErrorMessage => "wrong-error-message",
            Mutation::DropPrevKv => "drop-prev-kv",
            Mutation::WrongMemberId => "wrong-member-id",
            Mutation::LeaseTtlOff => "lease-ttl-off",
            Mutation::DropCreated => "drop-created",
            Mutation::FlipTxnSucceeded => "flip-txn-succeeded",
            Mutation::ReverseRange => "reverse-range",
            Mutation::WrongVersion => "wrong-version",
            Mutation::LoseWrite => "lose-write",
            Mutation::StaleRead => "stale-read",
        }
    }
}

impl std::fmt::Display for Mutation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Mutation {
    type Err = HarnessError;
    fn from_str(s: &str) -> Result<Mutation> {
        Mutation::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Mutation::ALL.iter().map(|m| m.name()).collect();
                HarnessError::Invalid(format!(
                    "unknown mutation `{s}`: use one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (`host:port` or
    /// `http://host:port`), mutating answers by `mutation` (none: a faithful proxy).
    pub async fn start(upstream: &str, mutation: Option<Mutation>) -> Result<Proxy> {
        Proxy::start_with(
            upstream,
            ProxyOptions {
                mutation,
                ..ProxyOptions::default()
            },
        )
        .await
    }

    /// Starts a proxy in front of `upstream` with `options`: a mutation, and the
    /// stand-in behaviours of a foreign server (another reported version, death on
    /// a given request).
    pub async fn start_with(upstream: &str, options: ProxyOptions) -> Result<Proxy> {
        let url = if upstream.contains("://") {
            upstream.to_string()
        } else {
            format!("http://{upstream}")
        };
        let channel = Endpoint::from_shared(url.clone())
            .map_err(|e| HarnessError::Invalid(format!("upstream `{upstream}`: {e}")))?
            .connect_timeout(UPSTREAM_DIAL_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        let listen = options
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        if !listen.ip().is_loopback() {
            return Err(HarnessError::Invalid(format!(
                "the proxy listens on loopback only, not {listen}"
            )));
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| HarnessError::io(format!("binding the proxy's port {listen}"), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| HarnessError::io("reading the proxy's port", e))?;
        let died = Arc::new(tokio::sync::Notify::new());
        let mutation = options.mutation;
        let p = Forward(Arc::new(Inner {
            channel,
            mutation,
            report_version: options.report_version,
            die_on: options.die_on,
            on_death: options.on_death,
            forwarded: std::sync::atomic::AtomicU64::new(0),
            dead: std::sync::atomic::AtomicBool::new(false),
            puts: std::sync::atomic::AtomicU64::new(0),
            max_revision: std::sync::atomic::AtomicI64::new(0),
            ranges: std::sync::Mutex::new(std::collections::HashMap::new()),
            died: died.clone(),
        }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let router = tonic::transport::Server::builder()
            .add_service(
                kv_server::KvServer::new(p.clone())
                    .max_decoding_message_size(PROXY_MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(PROXY_MAX_MESSAGE_BYTES),
            )
            .add_service(
                watch_server::WatchServer::new(p.clone())
                    .max_decoding_message_size(PROXY_MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(PROXY_MAX_MESSAGE_BYTES),
            )
            .add_service(lease_server::LeaseServer::new(p.clone()))
            .add_service(cluster_server::ClusterServer::new(p.clone()))
            .add_service(
                maintenance_server::MaintenanceServer::new(p.clone())
                    .max_encoding_message_size(PROXY_MAX_MESSAGE_BYTES),
            )
            .add_service(auth_server::AuthServer::new(p.clone()))
            .add_service(lock_server::LockServer::new(p.clone()))
            .add_service(election_server::ElectionServer::new(p));
        let task = tokio::spawn(async move {
            let serve = router.serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            });
            // A stand-in's death drops the listener at once (new connections are
            // refused); calls on open connections never get an answer.
            tokio::select! {
                _ = serve => {}
                () = died.notified() => {}
            }
        });
        Ok(Proxy {
            addr,
            shutdown: Some(tx),
            task,
        })
    }

    /// The proxy's endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

struct Inner {
    channel: Channel,
    mutation: Option<Mutation>,
    report_version: Option<String>,
    die_on: Option<DieOn>,
    on_death: Option<DeathHook>,
    /// Unary requests forwarded so far.
    forwarded: std::sync::atomic::AtomicU64,
    dead: std::sync::atomic::AtomicBool,
    /// `LoseWrite`: puts seen, and the highest header revision seen.
    puts: std::sync::atomic::AtomicU64,
    max_revision: std::sync::atomic::AtomicI64,
    /// `StaleRead`: the last answer per encoded Range request, and how often each
    /// request was seen.
    ranges: std::sync::Mutex<std::collections::HashMap<Vec<u8>, (u64, pb::RangeResponse)>>,
    died: Arc<tokio::sync::Notify>,
}

/// Called once, with the reason, when a stand-in proxy dies.
pub type DeathHook = Arc<dyn Fn(&str) + Send + Sync>;

/// When a stand-in proxy dies: it stops answering for good, as a crashed server does
/// (the triggering request gets no answer, open connections are dropped, new ones
/// refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DieOn {
    /// On a Range whose `range_end` is set (not `\0`) and sorts before its key (a
    /// request that crashed a real etcd-compatible server).
    InvalidRange,
    /// On the n-th unary request (counting from 1).
    NthRequest(u64),
}

impl std::str::FromStr for DieOn {
    type Err = HarnessError;
    fn from_str(s: &str) -> Result<DieOn> {
        if s == "invalid-range" {
            return Ok(DieOn::InvalidRange);
        }
        s.strip_prefix("request:")
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n > 0)
            .map(DieOn::NthRequest)
            .ok_or_else(|| {
                HarnessError::Invalid(format!(
                    "unknown death trigger `{s}`: use invalid-range or request:N (N >= 1)"
                ))
            })
    }
}

/// How a [`Proxy`] behaves. The default is a faithful proxy on a free loopback port.
#[derive(Clone, Default)]
pub struct ProxyOptions {
    /// Corrupt answers this way.
    pub mutation: Option<Mutation>,
    /// Answer Status with this version instead of the upstream's (a stand-in for a
    /// server that reports its own product version).
    pub report_version: Option<String>,
    /// Die on this request (a stand-in for a server that crashes).
    pub die_on: Option<DieOn>,
    /// Called when the proxy dies (e.g. to exit the process that hosts it).
    pub on_death: Option<DeathHook>,
    /// Listen here (loopback only) instead of a free port.
    pub listen: Option<SocketAddr>,
}

impl std::fmt::Debug for ProxyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyOptions")
            .field("mutation", &self.mutation)
            .field("report_version", &self.report_version)
            .field("die_on", &self.die_on)
            .field("on_death", &self.on_death.is_some())
            .field("listen", &self.listen)
            .finish()
    }
}

#[derive(Clone)]
struct Forward(Arc<Inner>);

impl Forward {
    fn is(&self, m: Mutation) -> bool {
        self.0.mutation == Some(m)
    }

    /// Stand-in death: when this unary request triggers it (or the proxy is already
    /// dead), never answers. Otherwise counts the request and returns.
    async fn maybe_die(&self, range: Option<&pb::RangeRequest>) {
        use std::sync::atomic::Ordering;
        let Some(trigger) = self.0.die_on else {
            return;
        };
        let n = self.0.forwarded.fetch_add(1, Ordering::SeqCst) + 1;
        let why = match trigger {
            DieOn::NthRequest(k) if n >= k => Some(format!("request {n} of this member")),
            DieOn::InvalidRange => range
                .filter(|r| !r.range_end.is_empty() && r.range_end != [0] && r.range_end < r.key)
                .map(|r| {
                    format!(
                        "invalid range: end {:?} sorts before key {:?}",
                        String::from_utf8_lossy(&r.range_end),
                        String::from_utf8_lossy(&r.key)
                    )
                }),
            DieOn::NthRequest(_) => None,
        };
        if let Some(why) = why {
            if !self.0.dead.swap(true, Ordering::SeqCst) {
                if let Some(hook) = &self.0.on_death {
                    hook(&why);
                }
                self.0.died.notify_one();
            }
        }
        if self.0.dead.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }

    /// The upstream request: the message, and the caller's token if any.
    fn forward<T>(&self, req: Request<T>) -> Request<T> {
        let token = req.metadata().get(TOKEN_KEY).cloned();
        let timeout = req
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let mut out = Request::new(req.into_inner());
        if let Some(t) = token {
            out.metadata_mut().insert(TOKEN_KEY, t);
        }
        if let Some(t) = timeout {
            out.set_timeout(t);
        }
        out
    }

    fn status(&self, s: Status) -> Status {
        match self.0.mutation {
            Some(Mutation::WrongErrorCode) => Status::new(tonic::Code::Internal, s.message()),
            Some(Mutation::WrongErrorMessage) => Status::new(
                s.code(),
                s.message()
                    .strip_prefix("etcdserver: ")
                    .unwrap_or(s.message())
                    .to_string(),
            ),
            _ => s,
        }
    }

    fn finish<T>(
        &self,
        r: std::result::Result<Response<T>, Status>,
        mutate: impl FnOnce(&Forward, &mut T),
    ) -> std::result::Result<Response<T>, Status> {
        match r {
            Ok(resp) => {
                let mut inner = resp.into_inner();
                mutate(self, &mut inner);
                Ok(Response::new(inner))
            }
            Err(s) => Err(self.status(s)),
        }
    }

    fn header(&self, h: &mut Option<pb::ResponseHeader>, kv: bool) {
        if let Some(h) = h.as_ref() {
            self.0
                .max_revision
                .fetch_max(h.revision, std::sync::atomic::Ordering::SeqCst);
        }
        if let Some(h) = h.as_mut() {
            if kv && self.is(Mutation::WrongMemberId) {
                h.member_id ^= 0x5a5a;
            }
        }
    }

    fn range(&self, r: &mut pb::RangeResponse) {
        self.header(&mut r.header, true);
        if let Some(h) = r.header.as_mut() {
            if self.is(Mutation::StaleRevision) {
                h.revision -= 1;
            }
        }
        if self.is(Mutation::LieCount) {
            r.count += 1;
        }
        if self.is(Mutation::LieMore) {
            r.more = !r.more;
        }
        if self.is(Mutation::ReverseRange) {
            r.kvs.reverse();
        }
        if self.is(Mutation::WrongVersion) {
            for kv in &mut r.kvs {
                kv.version += 1;
            }
        }
    }

    fn put(&self, r: &mut pb::PutResponse) {
        self.header(&mut r.header, true);
        if let Some(h) = r.header.as_mut() {
            if self.is(Mutation::SkipRevision) {
                h.revision += 1;
            }
        }
        if self.is(Mutation::DropPrevKv) {
            r.prev_kv = None;
        }
    }

    fn delete(&self, r: &mut pb::DeleteRangeResponse) {
        self.header(&mut r.header, true);
        if self.is(Mutation::DropPrevKv) {
            r.prev_kvs.clear();
        }
    }

    fn txn(&self, r: &mut pb::TxnResponse) {
        self.header(&mut r.header, true);
        if self.is(Mutation::FlipTxnSucceeded) {
            r.succeeded = !r.succeeded;
        }
        for op in &mut r.responses {
            match op.response.as_mut() {
                Some(pb::response_op::Response::ResponseRange(x)) => self.range(x),
                Some(pb::response_op::Response::ResponsePut(x)) => self.put(x),
                Some(pb::response_op::Response::ResponseDeleteRange(x)) => self.delete(x),
                Some(pb::response_op::Response::ResponseTxn(x)) => self.txn(x),
                None => {}
            }
        }
    }

    fn watch(&self, r: &mut pb::WatchResponse) {
        if self.is(Mutation::DropWatchEvent) && !r.events.is_empty() {
            r.events.remove(0);
        }
        if self.is(Mutation::ReorderEvents) && r.events.len() >= 2 {
            r.events.reverse();
        }
        if self.is(Mutation::DropPrevKv) {
            for e in &mut r.events {
                e.prev_kv = None;
            }
        }
        if self.is(Mutation::DropCreated) && r.created {
            r.created = false;
        }
    }
}

/// Parses gRPC's `grpc-timeout` header value (`<digits><unit>`).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send + 'static>>;

/// The caller's request stream, as an upstream request stream (ends at the first error).
fn inbound<T: Send + 'static>(s: Streaming<T>) -> impl Stream<Item = T> + Send + 'static {
    s.take_while(|r| futures::future::ready(r.is_ok()))
        .filter_map(|r| futures::future::ready(r.ok()))
}

/// Forwards an upstream response stream, applying `mutate` to each message.
fn outbound<T: Send + 'static>(
    p: &Forward,
    s: Streaming<T>,
    mutate: fn(&Forward, &mut T),
) -> BoxStream<T> {
    let p = p.clone();
    Box::pin(s.map(move |r| match r {
        Ok(mut m) => {
            mutate(&p, &mut m);
            Ok(m)
        }
        Err(e) => Err(p.status(e)),
    }))
}

macro_rules! unary {
    ($self:ident, $req:ident, $client:ident, $method:ident) => {
        unary!($self, $req, $client, $method, |_, _| {})
    };
    ($self:ident, $req:ident, $client:ident, $method:ident, $mutate:expr) => {{
        $self.maybe_die(None).await;
        let fwd = $self.forward($req);
        let r = $client::new($self.0.channel.clone())
            .max_decoding_message_size(PROXY_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(PROXY_MAX_MESSAGE_BYTES)
            .$method(fwd)
            .await;
        $self.finish(r, $mutate)
    }};
}

type R<T> = std::result::Result<Response<T>, Status>;

#[tonic::async_trait]
impl kv_server::Kv for Forward {
    async fn range(&self, req: Request<pb::RangeRequest>) -> R<pb::RangeResponse> {
        self.maybe_die(Some(req.get_ref())).await;
        let stale_key = self.is(Mutation::StaleRead).then(|| {
            use prost::Message as _;
            req.get_ref().encode_to_vec()
        });
        if let Some(k) = &stale_key {
            let mut ranges = self
                .0
                .ranges
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((seen, old)) = ranges.get_mut(k).filter(|(seen, _)| *seen % 2 == 1) {
                *seen += 1;
                return Ok(Response::new(old.clone()));
            }
        }
        let fwd = self.forward(req);
        let r = KvClient::new(self.0.channel.clone())
            .max_decoding_message_size(PROXY_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(PROXY_MAX_MESSAGE_BYTES)
            .range(fwd)
            .await;
        let r = self.finish(r, |p, r| p.range(r));
        if let (Some(k), Ok(resp)) = (stale_key, &r) {
            let mut ranges = self
                .0
                .ranges
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let e = ranges.entry(k).or_insert((0, resp.get_ref().clone()));
            e.0 += 1;
            e.1 = resp.get_ref().clone();
        }
        r
    }
    async fn put(&self, req: Request<pb::PutRequest>) -> R<pb::PutResponse> {
        if self.is(Mutation::LoseWrite)
            && self
                .0
                .puts
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                % 2
                == 1
        {
            let revision = self
                .0
                .max_revision
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            return Ok(Response::new(pb::PutResponse {
                header: Some(pb::ResponseHeader {
                    revision,
                    ..Default::default()
                }),
                prev_kv: None,
            }));
        }
        unary!(self, req, KvClient, put, |p, r| p.put(r))
    }
    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> R<pb::DeleteRangeResponse> {
        unary!(self, req, KvClient, delete_range, |p, r| p.delete(r))
    }
    async fn txn(&self, req: Request<pb::TxnRequest>) -> R<pb::TxnResponse> {
        unary!(self, req, KvClient, txn, |p, r| p.txn(r))
    }
    async fn compact(&self, req: Request<pb::CompactionRequest>) -> R<pb::CompactionResponse> {
        unary!(self, req, KvClient, compact)
    }
}

#[tonic::async_trait]
impl watch_server::Watch for Forward {
    type WatchStream = BoxStream<pb::WatchResponse>;
    async fn watch(&self, req: Request<Streaming<pb::WatchRequest>>) -> R<Self::WatchStream> {
        let fwd = self.forward(req);
        let token = fwd.metadata().get(TOKEN_KEY).cloned();
        let mut up = Request::new(inbound(fwd.into_inner()));
        if let Some(t) = token {
            up.metadata_mut().insert(TOKEN_KEY, t);
        }
        let s = WatchClient::new(self.0.channel.clone())
            .max_decoding_message_size(PROXY_MAX_MESSAGE_BYTES)
            .watch(up)
            .await
            .map_err(|e| self.status(e))?
            .into_inner();
        Ok(Response::new(outbound(self, s, |p, r| p.watch(r))))
    }
}

#[tonic::async_trait]
impl lease_server::Lease for Forward {
    async fn lease_grant(&self, req: Request<pb::LeaseGrantRequest>) -> R<pb::LeaseGrantResponse> {
        unary!(
            self,
            req,
            LeaseClient,
            lease_grant,
            |p, r| if p.is(Mutation::LeaseTtlOff) {
                r.ttl += 1;
            }
        )
    }
    async fn lease_revoke(
        &self,
        req: Request<pb::LeaseRevokeRequest>,
    ) -> R<pb::LeaseRevokeResponse> {
        unary!(self, req, LeaseClient, lease_revoke)
    }
    type LeaseKeepAliveStream = BoxStream<pb::LeaseKeepAliveResponse>;
    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> R<Self::LeaseKeepAliveStream> {
        let fwd = self.forward(req);
        let token = fwd.metadata().get(TOKEN_KEY).cloned();
        let mut up = Request::new(inbound(fwd.into_inner()));
        if let Some(t) = token {
            up.metadata_mut().insert(TOKEN_KEY, t);
        }
        let s = LeaseClient::new(self.0.channel.clone())
            .lease_keep_alive(up)
            .await
            .map_err(|e| self.status(e))?
            .into_inner();
        Ok(Response::new(outbound(self, s, |p, r| {
            if p.is(Mutation::LeaseTtlOff) && r.ttl > 0 {
                r.ttl += 1;
            }
        })))
    }
    async fn lease_time_to_live(
        &self,
        req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> R<pb::LeaseTimeToLiveResponse> {
        unary!(
            self,
            req,
            LeaseClient,
            lease_time_to_live,
            |p, r| if p.is(Mutation::LeaseTtlOff) && r.ttl > 0 {
                r.ttl += 1;
            }
        )
    }
    async fn lease_leases(
        &self,
        req: Request<pb::LeaseLeasesRequest>,
    ) -> R<pb::LeaseLeasesResponse> {
        unary!(self, req, LeaseClient, lease_leases)
    }
}

#[tonic::async_trait]
impl cluster_server::Cluster for Forward {
    async fn member_add(&self, req: Request<pb::MemberAddRequest>) -> R<pb::MemberAddResponse> {
        unary!(self, req, ClusterClient, member_add)
    }
    async fn member_remove(
        &self,
        req: Request<pb::MemberRemoveRequest>,
    ) -> R<pb::MemberRemoveResponse> {
        unary!(self, req, ClusterClient, member_remove)
    }
    async fn member_update(
        &self,
        req: Request<pb::MemberUpdateRequest>,
    ) -> R<pb::MemberUpdateResponse> {
        unary!(self, req, ClusterClient, member_update)
    }
    async fn member_list(&self, req: Request<pb::MemberListRequest>) -> R<pb::MemberListResponse> {
        unary!(self, req, ClusterClient, member_list)
    }
    async fn member_promote(
        &self,
        req: Request<pb::MemberPromoteRequest>,
    ) -> R<pb::MemberPromoteResponse> {
        unary!(self, req, ClusterClient, member_promote)
    }
}

#[tonic::async_trait]
impl maintenance_server::Maintenance for Forward {
    async fn alarm(&self, req: Request<pb::AlarmRequest>) -> R<pb::AlarmResponse> {
        unary!(self, req, MaintenanceClient, alarm)
    }
    async fn status(&self, req: Request<pb::StatusRequest>) -> R<pb::StatusResponse> {
        unary!(self, req, MaintenanceClient, status, |p, r| {
            if let Some(v) = &p.0.report_version {
                r.version = v.clone();
            }
        })
    }
    async fn defragment(&self, req: Request<pb::DefragmentRequest>) -> R<pb::DefragmentResponse> {
        unary!(self, req, MaintenanceClient, defragment)
    }
    async fn hash(&self, req: Request<pb::HashRequest>) -> R<pb::HashResponse> {
        unary!(self, req, MaintenanceClient, hash)
    }
    async fn hash_kv(&self, req: Request<pb::HashKvRequest>) -> R<pb::HashKvResponse> {
        unary!(self, req, MaintenanceClient, hash_kv)
    }
    type SnapshotStream = BoxStream<pb::SnapshotResponse>;
    async fn snapshot(&self, req: Request<pb::SnapshotRequest>) -> R<Self::SnapshotStream> {
        let fwd = self.forward(req);
        let s = MaintenanceClient::new(self.0.channel.clone())
            .max_decoding_message_size(PROXY_MAX_MESSAGE_BYTES)
            .snapshot(fwd)
            .await
            .map_err(|e| self.status(e))?
            .into_inner();
        Ok(Response::new(outbound(self, s, |_, _| {})))
    }
    async fn move_leader(&self, req: Request<pb::MoveLeaderRequest>) -> R<pb::MoveLeaderResponse> {
        unary!(self, req, MaintenanceClient, move_leader)
    }
    async fn downgrade(&self, req: Request<pb::DowngradeRequest>) -> R<pb::DowngradeResponse> {
        unary!(self, req, MaintenanceClient, downgrade)
    }
}

#[tonic::async_trait]
impl auth_server::Auth for Forward {
    async fn auth_enable(&self, req: Request<pb::AuthEnableRequest>) -> R<pb::AuthEnableResponse> {
        unary!(self, req, AuthClient, auth_enable)
    }
    async fn auth_disable(
        &self,
        req: Request<pb::AuthDisableRequest>,
    ) -> R<pb::AuthDisableResponse> {
        unary!(self, req, AuthClient, auth_disable)
    }
    async fn auth_status(&self, req: Request<pb::AuthStatusRequest>) -> R<pb::AuthStatusResponse> {
        unary!(self, req, AuthClient, auth_status)
    }
    async fn authenticate(
        &self,
        req: Request<pb::AuthenticateRequest>,
    ) -> R<pb::AuthenticateResponse> {
        unary!(self, req, AuthClient, authenticate)
    }
    async fn user_add(&self, req: Request<pb::AuthUserAddRequest>) -> R<pb::AuthUserAddResponse> {
        unary!(self, req, AuthClient, user_add)
    }
    async fn user_get(&self, req: Request<pb::AuthUserGetRequest>) -> R<pb::AuthUserGetResponse> {
        unary!(self, req, AuthClient, user_get)
    }
    async fn user_list(
        &self,
        req: Request<pb::AuthUserListRequest>,
    ) -> R<pb::AuthUserListResponse> {
        unary!(self, req, AuthClient, user_list)
    }
    async fn user_delete(
        &self,
        req: Request<pb::AuthUserDeleteRequest>,
    ) -> R<pb::AuthUserDeleteResponse> {
        unary!(self, req, AuthClient, user_delete)
    }
    async fn user_change_password(
        &self,
        req: Request<pb::AuthUserChangePasswordRequest>,
    ) -> R<pb::AuthUserChangePasswordResponse> {
        unary!(self, req, AuthClient, user_change_password)
    }
    async fn user_grant_role(
        &self,
        req: Request<pb::AuthUserGrantRoleRequest>,
    ) -> R<pb::AuthUserGrantRoleResponse> {
        unary!(self, req, AuthClient, user_grant_role)
    }
    async fn user_revoke_role(
        &self,
        req: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> R<pb::AuthUserRevokeRoleResponse> {
        unary!(self, req, AuthClient, user_revoke_role)
    }
    async fn role_add(&self, req: Request<pb::AuthRoleAddRequest>) -> R<pb::AuthRoleAddResponse> {
        unary!(self, req, AuthClient, role_add)
    }
    async fn role_get(&self, req: Request<pb::AuthRoleGetRequest>) -> R<pb::AuthRoleGetResponse> {
        unary!(self, req, AuthClient, role_get)
    }
    async fn role_list(
        &self,
        req: Request<pb::AuthRoleListRequest>,
    ) -> R<pb::AuthRoleListResponse> {
        unary!(self, req, AuthClient, role_list)
    }
    async fn role_delete(
        &self,
        req: Request<pb::AuthRoleDeleteRequest>,
    ) -> R<pb::AuthRoleDeleteResponse> {
        unary!(self, req, AuthClient, role_delete)
    }
    async fn role_grant_permission(
        &self,
        req: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> R<pb::AuthRoleGrantPermissionResponse> {
        unary!(self, req, AuthClient, role_grant_permission)
    }
    async fn role_revoke_permission(
        &self,
        req: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> R<pb::AuthRoleRevokePermissionResponse> {
        unary!(self, req, AuthClient, role_revoke_permission)
    }
}

#[tonic::async_trait]
impl lock_server::Lock for Forward {
    async fn lock(&self, req: Request<lockpb::LockRequest>) -> R<lockpb::LockResponse> {
        unary!(self, req, LockClient, lock)
    }
    async fn unlock(&self, req: Request<lockpb::UnlockRequest>) -> R<lockpb::UnlockResponse> {
        unary!(self, req, LockClient, unlock)
    }
}

#[tonic::async_trait]
impl election_server::Election for Forward {
    async fn campaign(&self, req: Request<elpb::CampaignRequest>) -> R<elpb::CampaignResponse> {
        unary!(self, req, ElectionClient, campaign)
    }
    async fn proclaim(&self, req: Request<elpb::ProclaimRequest>) -> R<elpb::ProclaimResponse> {
        unary!(self, req, ElectionClient, proclaim)
    }
    async fn leader(&self, req: Request<elpb::LeaderRequest>) -> R<elpb::LeaderResponse> {
        unary!(self, req, ElectionClient, leader)
    }
    type ObserveStream = BoxStream<elpb::LeaderResponse>;
    async fn observe(&self, req: Request<elpb::LeaderRequest>) -> R<Self::ObserveStream> {
        let fwd = self.forward(req);
        let s = ElectionClient::new(self.0.channel.clone())
            .observe(fwd)
            .await
            .map_err(|e| self.status(e))?
            .into_inner();
        Ok(Response::new(outbound(self, s, |_, _| {})))
    }
    async fn resign(&self, req: Request<elpb::ResignRequest>) -> R<elpb::ResignResponse> {
        unary!(self, req, ElectionClient, resign)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        let mut names: Vec<&str> = Mutation::ALL.iter().map(|m| m.name()).collect();
        for m in Mutation::ALL {
            assert_eq!(m.name().parse::<Mutation>().unwrap(), m);
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Mutation::ALL.len());
        assert!("no-such".parse::<Mutation>().is_err());
    }

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }
}
