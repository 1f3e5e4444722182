//! An L4 (TCP) fault proxy with toxiproxy's model: named proxies, each forwarding one
//! listen address to one upstream, with *toxics* that degrade the bytes flowing
//! through it, and a switch that takes the whole proxy down.
//!
//! A proxy sits on a link (for the chaos suite: in front of every member's peer port,
//! so every byte sent *to* that member crosses it). Each connection through it has two
//! streams, as in toxiproxy: `upstream` (client to server) and `downstream` (server to
//! client). A toxic applies to one stream:
//!
//! | type | attributes | effect on its stream |
//! |---|---|---|
//! | `latency` | `latency`, `jitter` (ms) | every chunk is delayed by latency ± jitter |
//! | `bandwidth` | `rate` (KB/s) | chunks are paced to the rate |
//! | `slow_close` | `delay` (ms) | the close is delayed |
//! | `timeout` | `timeout` (ms) | data is dropped; the connection is closed after `timeout` (0: never) |
//! | `reset_peer` | `timeout` (ms) | the connection is reset (RST) after `timeout` |
//! | `slicer` | `average_size`, `size_variation` (bytes), `delay` (µs) | chunks are cut into slices with a delay between them |
//! | `limit_data` | `bytes` | the connection is closed after that many bytes |
//! | `noop` | | nothing |
//! | `drop` | `percent` | each chunk is dropped with that probability (gauntlet's extension: only safe under TLS, where a hole becomes a connection error instead of corrupt frames) |
//!
//! `toxicity` (0 to 1) is the share of connections a toxic applies to, drawn per
//! connection from the proxy's seeded generator. Taking a proxy down (`enabled =
//! false`) closes every connection and refuses new ones until it is enabled again: for
//! a member's inbound proxy that is the member cut off from everything sent to it.
//!
//! [`crate::toxiproxy`] serves these proxies over toxiproxy's HTTP API.
//!
//! **Partitions (an extension of toxiproxy's model).** A proxy may be given a
//! [`SourceLabeler`] that names who dialed each connection (the chaos suite's names
//! member processes, through [`crate::sockowner`]), and a set of *blocked sources*
//! ([`Registry::set_blocked`]). Every connection from a blocked source is blackholed
//! in both directions: bytes are read and dropped, nothing is closed, so the dialer
//! sees silence rather than an error, as behind a dropped link. When the block lifts,
//! a connection that lost bytes is reset rather than resumed (resuming would hand the
//! peer a stream with a hole in it); connections that lost nothing carry on. Cutting
//! the link A–B is then: block A on B's proxy and B on A's proxy, since every
//! connection between A and B is dialed by one of them into the other's proxy.
//!
//! Invariant: proxies listen on loopback only, and a dropped [`Registry`] stops them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Bytes read per chunk.
const CHUNK_BYTES: usize = 32 * 1024;
/// Deadline to connect to the upstream.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a failed accept (out of file descriptors, say), so the loop does not
/// spin while the cause lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client to server.
    Upstream,
    /// Server to client (toxiproxy's default).
    Downstream,
}

/// A toxic's type and attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum ToxicKind {
    /// Delay every chunk.
    Latency {
        /// Base delay, ms.
        latency_ms: u64,
        /// ± this, ms.
        jitter_ms: u64,
    },
    /// Pace to a rate.
    Bandwidth {
        /// KB per second.
        rate_kbps: u64,
    },
    /// Delay the close.
    SlowClose {
        /// ms.
        delay_ms: u64,
    },
    /// Drop data; close after the timeout (0: never).
    Timeout {
        /// ms.
        timeout_ms: u64,
    },
    /// Reset the connection after the timeout.
    ResetPeer {
        /// ms.
        timeout_ms: u64,
    },
    /// Cut chunks into slices.
    Slicer {
        /// Mean slice size, bytes.
        average_size: u64,
        /// ± this, bytes.
        size_variation: u64,
        /// Between slices, µs.
        delay_us: u64,
    },
    /// Close after this many bytes.
    LimitData {
        /// Bytes.
        bytes: u64,
    },
    /// Drop each chunk with this probability (a gauntlet extension; toxiproxy has no
    /// such toxic). Only safe under TLS: a hole in a plaintext stream corrupts framing.
    Drop {
        /// Percent of chunks dropped, 0 to 100.
        percent: u64,
    },
    /// Nothing.
    Noop,
}

impl ToxicKind {
    /// toxiproxy's type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
            ToxicKind::Drop { .. } => "drop",
            ToxicKind::Noop => "noop",
        }
    }

    /// The attributes as toxiproxy names them.
    pub fn attributes(&self) -> BTreeMap<String, u64> {
        let pairs: Vec<(&str, u64)> = match self {
            ToxicKind::Latency {
                latency_ms,
                jitter_ms,
            } => vec![("latency", *latency_ms), ("jitter", *jitter_ms)],
            ToxicKind::Bandwidth { rate_kbps } => vec![("rate", *rate_kbps)],
            ToxicKind::SlowClose { delay_ms } => vec![("delay", *delay_ms)],
            ToxicKind::Timeout { timeout_ms } | ToxicKind::ResetPeer { timeout_ms } => {
                vec![("timeout", *timeout_ms)]
            }
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay_us,
            } => vec![
                ("average_size", *average_size),
                ("size_variation", *size_variation),
                ("delay", *delay_us),
            ],
            ToxicKind::LimitData { bytes } => vec![("bytes", *bytes)],
            ToxicKind::Drop { percent } => vec![("percent", *percent)],
            ToxicKind::Noop => vec![],
        };
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Builds a toxic from toxiproxy's type name and attributes (missing attributes
    /// are 0, as in toxiproxy); `Err` names an unknown type.
    pub fn from_parts(type_name: &str, attrs: &BTreeMap<String, u64>) -> Result<ToxicKind, String> {
        let a = |k: &str| attrs.get(k).copied().unwrap_or(0);
        Ok(match type_name {
            "latency" => ToxicKind::Latency {
                latency_ms: a("latency"),
                jitter_ms: a("jitter"),
            },
            "bandwidth" => ToxicKind::Bandwidth {
                rate_kbps: a("rate"),
            },
            "slow_close" => ToxicKind::SlowClose {
                delay_ms: a("delay"),
            },
            "timeout" => ToxicKind::Timeout {
                timeout_ms: a("timeout"),
            },
            "reset_peer" => ToxicKind::ResetPeer {
                timeout_ms: a("timeout"),
            },
            "drop" => ToxicKind::Drop {
                percent: a("percent").min(100),
            },
            "slicer" => ToxicKind::Slicer {
                average_size: a("average_size"),
                size_variation: a("size_variation"),
                delay_us: a("delay"),
            },
            "limit_data" => ToxicKind::LimitData { bytes: a("bytes") },
            "noop" => ToxicKind::Noop,
            other => return Err(format!("invalid toxic type: {other}")),
        })
    }
}

/// A toxic on a proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    /// Unique on its proxy (default `<type>_<stream>`).
    pub name: String,
    /// Its stream.
    pub stream: Stream,
    /// Share of connections it applies to, 0 to 1.
    pub toxicity: f64,
    /// What it does.
    pub kind: ToxicKind,
}

/// Counters of what a proxy did, for evidence that a fault took effect.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections refused or closed because the proxy was down.
    pub refused: AtomicU64,
    /// Chunks forwarded.
    pub chunks: AtomicU64,
    /// Chunks a toxic delayed, paced or sliced.
    pub chunks_slowed: AtomicU64,
    /// Chunks a toxic dropped.
    pub chunks_dropped: AtomicU64,
    /// Connections a toxic, or taking the proxy down, closed or reset.
    pub connections_cut: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Chunks dropped because their connection's source is blocked (a partition).
    pub chunks_partitioned: AtomicU64,
    /// Connections reset when a partition healed, because they had lost bytes.
    pub connections_partitioned: AtomicU64,
    /// Connections closed because the upstream could not be dialed within
    /// [`UPSTREAM_CONNECT_TIMEOUT`] (the member behind the proxy was not listening).
    pub upstream_failed: AtomicU64,
    /// Failed accepts (the listener is retried after [`ACCEPT_BACKOFF`]).
    pub accept_errors: AtomicU64,
}

/// Names who dialed a connection: `(peer address, proxy listen address) -> label`.
/// `None` when it cannot tell (such connections are never blocked).
pub type SourceLabeler = Arc<dyn Fn(SocketAddr, SocketAddr) -> Option<String> + Send + Sync>;

/// One proxy; see the module docs.
pub struct NetProxy {
    name: String,
    listen: Mutex<SocketAddr>,
    upstream: Mutex<String>,
    enabled: AtomicBool,
    toxics: watch::Sender<Arc<Vec<Toxic>>>,
    /// Bumped when the proxy goes down: every connection of an older epoch closes.
    epoch: watch::Sender<u64>,
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
    rng: Mutex<StdRng>,
    /// Names each connection's dialer (partitions).
    labeler: Mutex<Option<SourceLabeler>>,
    /// Sources whose connections are blackholed.
    blocked: watch::Sender<Arc<BTreeSet<String>>>,
    /// What the proxy did.
    pub stats: Arc<ProxyStats>,
}

impl std::fmt::Debug for NetProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetProxy")
            .field("name", &self.name)
            .field("listen", &self.listen())
            .field("upstream", &self.upstream())
            .field("enabled", &self.enabled())
            .field("blocked", &self.blocked())
            .finish_non_exhaustive()
    }
}

/// Why a proxy operation failed (the HTTP API maps these to toxiproxy's codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 500.
    #[error("{0}")]
    Internal(String),
}

impl NetProxy {
    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The address it listens on (the real port when 0 was asked).
    pub fn listen(&self) -> SocketAddr {
        *self
            .listen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    /// The upstream `host:port`.
    pub fn upstream(&self) -> String {
        self.upstream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
    /// Whether it forwards.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }
    /// Its toxics, in order.
    pub fn toxics(&self) -> Vec<Toxic> {
        self.toxics.borrow().as_ref().clone()
    }
    /// The sources whose connections it blackholes.
    pub fn blocked(&self) -> BTreeSet<String> {
        self.blocked.borrow().as_ref().clone()
    }
    /// Installs the function that names each new connection's dialer.
    pub fn set_labeler(&self, labeler: SourceLabeler) {
        *self
            .labeler
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(labeler);
    }

    async fn start(self: &Arc<Self>) -> Result<(), ProxyError> {
        let want = self.listen();
        if !want.ip().is_loopback() {
            return Err(ProxyError::BadRequest(format!(
                "proxies listen on loopback only, not {want}"
            )));
        }
        let listener = TcpListener::bind(want)
            .await
            .map_err(|e| ProxyError::Internal(format!("listen {want}: {e}")))?;
        let got = listener
            .local_addr()
            .map_err(|e| ProxyError::Internal(e.to_string()))?;
        *self
            .listen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = got;
        let me = Arc::clone(self);
        let task = tokio::spawn(async move {
            loop {
                let (client, peer) = match listener.accept().await {
                    Ok(a) => a,
                    Err(_) => {
                        me.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                if !me.enabled() {
                    me.stats.refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                me.stats.connections.fetch_add(1, Ordering::Relaxed);
                let link = Arc::clone(&me);
                tokio::spawn(async move { link.serve(client, peer, got).await });
            }
        });
        if let Some(old) = self
            .accept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(task)
        {
            old.abort();
        }
        Ok(())
    }

    fn stop_accepting(&self) {
        if let Some(t) = self
            .accept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            t.abort();
        }
    }

    async fn serve(self: Arc<Self>, client: TcpStream, peer: SocketAddr, listen: SocketAddr) {
        let labeler = self
            .labeler
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        // Named while the dialer's socket surely exists (it is waiting for us).
        let source = match labeler {
            Some(l) => tokio::task::spawn_blocking(move || l(peer, listen))
                .await
                .ok()
                .flatten(),
            None => None,
        };
        let up = self.upstream();
        let Ok(Ok(server)) =
            tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(&up)).await
        else {
            self.stats.upstream_failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        let stats = Arc::clone(&self.stats);
        let _open = scopeguard(move || {
            stats.open.fetch_sub(1, Ordering::Relaxed);
        });
        // Which toxics apply to this connection (toxicity), drawn once per toxic name.
        let seed = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .gen::<u64>();
        let epoch = *self.epoch.borrow();
        let mut client = client;
        let mut server = server;
        let end = {
            let (mut cr, mut cw) = client.split();
            let (mut sr, mut sw) = server.split();
            let up_task = pump(
                &self,
                Stream::Upstream,
                &mut cr,
                &mut sw,
                StdRng::seed_from_u64(seed),
                epoch,
                source.as_deref(),
            );
            let down_task = pump(
                &self,
                Stream::Downstream,
                &mut sr,
                &mut cw,
                StdRng::seed_from_u64(seed ^ 0x5DEE_CE66),
                epoch,
                source.as_deref(),
            );
            // When one direction ends (EOF, cut, reset), the connection is over.
            tokio::select! {
                e = up_task => e,
                e = down_task => e,
            }
        };
        if end == End::Reset {
            // RST rather than FIN: linger 0, then close.
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
        }
    }
}

/// Runs `f` when dropped.
struct Guard<F: FnMut()>(F);

impl<F: FnMut()> Drop for Guard<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

fn scopeguard<F: FnMut()>(f: F) -> Guard<F> {
    Guard(f)
}

/// How a pumped stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Closed,
    Reset,
}

/// Pumps one stream through the toxics that apply to it.
async fn pump<R, W>(
    proxy: &NetProxy,
    stream: Stream,
    from: &mut R,
    to: &mut W,
    mut rng: StdRng,
    epoch: u64,
    source: Option<&str>,
) -> End
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut toxics_rx = proxy.toxics.subscribe();
    let mut epoch_rx = proxy.epoch.subscribe();
    let mut blocked_rx = proxy.blocked.subscribe();
    // This connection lost bytes to a partition: it must not resume after the heal.
    let mut holed = false;
    let mut drawn: BTreeMap<String, bool> = BTreeMap::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut sent: u64 = 0;
    // The moment each toxic was first seen on this stream (for timeout/reset_peer).
    let mut since: BTreeMap<String, tokio::time::Instant> = BTreeMap::new();
    let stats = Arc::clone(&proxy.stats);
    loop {
        if *epoch_rx.borrow() != epoch {
            return End::Closed;
        }
        let partitioned = source.is_some_and(|s| blocked_rx.borrow().contains(s));
        if holed && !partitioned {
            stats
                .connections_partitioned
                .fetch_add(1, Ordering::Relaxed);
            return End::Reset;
        }
        let active: Vec<Toxic> = toxics_rx
            .borrow()
            .iter()
            .filter(|t| t.stream == stream)
            .filter(|t| {
                *drawn
                    .entry(t.name.clone())
                    .or_insert_with(|| rng.gen::<f64>() < t.toxicity)
            })
            .cloned()
            .collect();
        let now = tokio::time::Instant::now();
        since.retain(|k, _| active.iter().any(|t| &t.name == k));
        let mut deadline: Option<(tokio::time::Instant, bool)> = None;
        for t in &active {
            let start = *since.entry(t.name.clone()).or_insert(now);
            match t.kind {
                ToxicKind::ResetPeer { timeout_ms } => {
                    let at = start + Duration::from_millis(timeout_ms);
                    deadline =
                        Some(deadline.map_or(
                            (at, true),
                            |(d, r)| if at < d { (at, true) } else { (d, r) },
                        ));
                }
                ToxicKind::Timeout { timeout_ms } if timeout_ms > 0 => {
                    let at = start + Duration::from_millis(timeout_ms);
                    deadline = Some(deadline.map_or((at, false), |(d, r)| {
                        if at < d {
                            (at, false)
                        } else {
                            (d, r)
                        }
                    }));
                }
                _ => {}
            }
        }
        if let Some((at, reset)) = deadline {
            if at <= now {
                stats.connections_cut.fetch_add(1, Ordering::Relaxed);
                return if reset { End::Reset } else { End::Closed };
            }
        }
        let cut = async {
            match deadline {
                Some((at, reset)) => {
                    tokio::time::sleep_until(at).await;
                    reset
                }
                None => std::future::pending().await,
            }
        };
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    if let Some(d) = active.iter().find_map(|t| match t.kind {
                        ToxicKind::SlowClose { delay_ms } => Some(delay_ms),
                        _ => None,
                    }) {
                        tokio::time::sleep(Duration::from_millis(d)).await;
                    }
                    let _ = to.shutdown().await;
                    return End::Closed;
                }
                Ok(n) => n,
            },
            _ = toxics_rx.changed() => continue,
            _ = blocked_rx.changed() => continue,
            _ = epoch_rx.changed() => return End::Closed,
            reset = cut => {
                stats.connections_cut.fetch_add(1, Ordering::Relaxed);
                return if reset { End::Reset } else { End::Closed };
            }
        };
        let mut chunk = &buf[..n];
        if partitioned {
            holed = true;
            stats.chunks_partitioned.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if active
            .iter()
            .any(|t| matches!(t.kind, ToxicKind::Timeout { .. }))
        {
            stats.chunks_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if active.iter().any(|t| match t.kind {
            ToxicKind::Drop { percent } => rng.gen_range(0..100) < percent,
            _ => false,
        }) {
            stats.chunks_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mut slowed = false;
        let mut limit_hit = false;
        for t in &active {
            match t.kind {
                ToxicKind::Latency {
                    latency_ms,
                    jitter_ms,
                } => {
                    let j = if jitter_ms > 0 {
                        rng.gen_range(0..=2 * jitter_ms) as i64 - jitter_ms as i64
                    } else {
                        0
                    };
                    let d = (latency_ms as i64 + j).max(0) as u64;
                    tokio::time::sleep(Duration::from_millis(d)).await;
                    slowed = true;
                }
                ToxicKind::Bandwidth { rate_kbps } if rate_kbps > 0 => {
                    let secs = chunk.len() as f64 / (rate_kbps as f64 * 1024.0);
                    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                    slowed = true;
                }
                ToxicKind::LimitData { bytes } => {
                    let room = bytes.saturating_sub(sent);
                    if (chunk.len() as u64) >= room {
                        chunk = &chunk[..usize::try_from(room).unwrap_or(0)];
                        limit_hit = true;
                    }
                }
                _ => {}
            }
        }
        let slicer = active.iter().find_map(|t| match t.kind {
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay_us,
            } => Some((average_size.max(1), size_variation, delay_us)),
            _ => None,
        });
        let ok = match slicer {
            Some((avg, var, delay_us)) => {
                slowed = true;
                let mut rest = chunk;
                let mut ok = true;
                while !rest.is_empty() {
                    let v = if var > 0 {
                        rng.gen_range(0..=2 * var) as i64 - var as i64
                    } else {
                        0
                    };
                    let size = usize::try_from((avg as i64 + v).max(1))
                        .unwrap_or(1)
                        .min(rest.len());
                    if to.write_all(&rest[..size]).await.is_err() {
                        ok = false;
                        break;
                    }
                    rest = &rest[size..];
                    tokio::time::sleep(Duration::from_micros(delay_us)).await;
                }
                ok
            }
            None => to.write_all(chunk).await.is_ok(),
        };
        if !ok {
            return End::Closed;
        }
        sent += chunk.len() as u64;
        stats.chunks.fetch_add(1, Ordering::Relaxed);
        if slowed {
            stats.chunks_slowed.fetch_add(1, Ordering::Relaxed);
        }
        if limit_hit {
            stats.connections_cut.fetch_add(1, Ordering::Relaxed);
            let _ = to.shutdown().await;
            return End::Closed;
        }
    }
}

/// All proxies of one control plane (one toxiproxy API server).
#[derive(Debug)]
pub struct Registry {
    proxies: Mutex<BTreeMap<String, Arc<NetProxy>>>,
    seed: u64,
}

impl Drop for Registry {
    fn drop(&mut self) {
        for p in self
            .proxies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
        {
            p.stop_accepting();
            p.epoch.send_modify(|e| *e += 1);
        }
    }
}

fn parse_listen(listen: &str) -> Result<SocketAddr, ProxyError> {
    let l = listen.trim();
    let l = l
        .strip_prefix("localhost:")
        .map_or_else(|| l.to_string(), |p| format!("127.0.0.1:{p}"));
    l.parse()
        .map_err(|_| ProxyError::BadRequest(format!("listen address `{listen}` is not IP:PORT")))
}

impl Registry {
    /// An empty registry; `seed` makes toxicity draws reproducible.
    pub fn new(seed: u64) -> Registry {
        Registry {
            proxies: Mutex::new(BTreeMap::new()),
            seed,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<NetProxy>>> {
        self.proxies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every proxy, by name.
    pub fn all(&self) -> Vec<Arc<NetProxy>> {
        self.lock().values().cloned().collect()
    }

    /// A proxy by name.
    pub fn get(&self, name: &str) -> Result<Arc<NetProxy>, ProxyError> {
        self.lock()
            .get(name)
            .cloned()
            .ok_or_else(|| ProxyError::NotFound("proxy not found".into()))
    }

    /// Creates and starts a proxy (listen port 0: a free one).
    pub async fn create(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
        enabled: bool,
    ) -> Result<Arc<NetProxy>, ProxyError> {
        if name.is_empty() {
            return Err(ProxyError::BadRequest(
                "missing required field: name".into(),
            ));
        }
        if upstream.is_empty() {
            return Err(ProxyError::BadRequest(
                "missing required field: upstream".into(),
            ));
        }
        if self.lock().contains_key(name) {
            return Err(ProxyError::Conflict("proxy already exists".into()));
        }
        let listen = parse_listen(if listen.is_empty() {
            "127.0.0.1:0"
        } else {
            listen
        })?;
        let (toxics, _) = watch::channel(Arc::new(Vec::new()));
        let (epoch, _) = watch::channel(0);
        let n = self.lock().len() as u64;
        let p = Arc::new(NetProxy {
            name: name.to_string(),
            listen: Mutex::new(listen),
            upstream: Mutex::new(upstream.to_string()),
            enabled: AtomicBool::new(enabled),
            toxics,
            epoch,
            accept: Mutex::new(None),
            rng: Mutex::new(StdRng::seed_from_u64(
                self.seed ^ n.wrapping_mul(0x9E37_79B9),
            )),
            labeler: Mutex::new(None),
            blocked: watch::channel(Arc::new(BTreeSet::new())).0,
            stats: Arc::default(),
        });
        if enabled {
            p.start().await?;
        }
        let mut map = self.lock();
        if map.contains_key(name) {
            p.stop_accepting();
            return Err(ProxyError::Conflict("proxy already exists".into()));
        }
        map.insert(name.to_string(), Arc::clone(&p));
        Ok(p)
    }

    /// Updates a proxy: enabling starts it, disabling closes every connection and
    /// stops accepting; a new listen or upstream restarts it.
    pub async fn update(
        &self,
        name: &str,
        enabled: Option<bool>,
        listen: Option<&str>,
        upstream: Option<&str>,
    ) -> Result<Arc<NetProxy>, ProxyError> {
        let p = self.get(name)?;
        let mut restart = false;
        if let Some(l) = listen {
            let addr = parse_listen(l)?;
            if addr != p.listen() {
                *p.listen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = addr;
                restart = true;
            }
        }
        if let Some(u) = upstream {
            let mut cur = p
                .upstream
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *cur != u {
                *cur = u.to_string();
                restart = true;
            }
        }
        let want = enabled.unwrap_or_else(|| p.enabled());
        if !want || restart {
            p.enabled.store(false, Ordering::SeqCst);
            p.stop_accepting();
            p.stats
                .connections_cut
                .fetch_add(p.stats.open.load(Ordering::Relaxed), Ordering::Relaxed);
            p.epoch.send_modify(|e| *e += 1);
        }
        if want && (restart || !p.enabled()) {
            p.enabled.store(true, Ordering::SeqCst);
            p.start().await?;
        }
        Ok(p)
    }

    /// Deletes a proxy (closing its connections).
    pub fn delete(&self, name: &str) -> Result<(), ProxyError> {
        let p = self
            .lock()
            .remove(name)
            .ok_or_else(|| ProxyError::NotFound("proxy not found".into()))?;
        p.stop_accepting();
        p.epoch.send_modify(|e| *e += 1);
        Ok(())
    }

    /// Blackholes every connection into `proxy` whose dialer is one of `sources`
    /// (empty: none); see the module docs.
    pub fn set_blocked(&self, proxy: &str, sources: BTreeSet<String>) -> Result<(), ProxyError> {
        let p = self.get(proxy)?;
        p.blocked.send_replace(Arc::new(sources));
        Ok(())
    }

    /// Enables every proxy, removes every toxic and lifts every partition.
    pub async fn reset(&self) -> Result<(), ProxyError> {
        for p in self.all() {
            p.toxics.send_replace(Arc::new(Vec::new()));
            p.blocked.send_replace(Arc::new(BTreeSet::new()));
            if !p.enabled() {
                self.update(p.name(), Some(true), None, None).await?;
            }
        }
        Ok(())
    }

    /// Adds a toxic (name defaults to `<type>_<stream>`).
    pub fn add_toxic(&self, proxy: &str, toxic: Toxic) -> Result<Toxic, ProxyError> {
        let p = self.get(proxy)?;
        if !(0.0..=1.0).contains(&toxic.toxicity) {
            return Err(ProxyError::BadRequest(
                "toxicity must be between 0 and 1".into(),
            ));
        }
        let mut result = Ok(toxic.clone());
        p.toxics.send_if_modified(|list| {
            if list.iter().any(|t| t.name == toxic.name) {
                result = Err(ProxyError::Conflict("toxic already exists".into()));
                return false;
            }
            let mut v = list.as_ref().clone();
            v.push(toxic.clone());
            *list = Arc::new(v);
            true
        });
        result
    }

    /// Replaces a toxic's toxicity and attributes.
    pub fn update_toxic(
        &self,
        proxy: &str,
        name: &str,
        toxicity: Option<f64>,
        attributes: Option<&BTreeMap<String, u64>>,
    ) -> Result<Toxic, ProxyError> {
        let p = self.get(proxy)?;
        let mut result = Err(ProxyError::NotFound("toxic not found".into()));
        p.toxics.send_if_modified(|list| {
            let mut v = list.as_ref().clone();
            let Some(t) = v.iter_mut().find(|t| t.name == name) else {
                return false;
            };
            if let Some(x) = toxicity {
                t.toxicity = x;
            }
            if let Some(a) = attributes {
                let mut merged = t.kind.attributes();
                merged.extend(a.iter().map(|(k, v)| (k.clone(), *v)));
                match ToxicKind::from_parts(t.kind.type_name(), &merged) {
                    Ok(k) => t.kind = k,
                    Err(e) => {
                        result = Err(ProxyError::BadRequest(e));
                        return false;
                    }
                }
            }
            result = Ok(t.clone());
            *list = Arc::new(v);
            true
        });
        result
    }

    /// Removes a toxic.
    pub fn remove_toxic(&self, proxy: &str, name: &str) -> Result<(), ProxyError> {
        let p = self.get(proxy)?;
        let mut found = false;
        p.toxics.send_if_modified(|list| {
            let before = list.len();
            let v: Vec<Toxic> = list.iter().filter(|t| t.name != name).cloned().collect();
            found = v.len() != before;
            if found {
                *list = Arc::new(v);
            }
            found
        });
        if found {
            Ok(())
        } else {
            Err(ProxyError::NotFound("toxic not found".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
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

    async fn round_trip(addr: SocketAddr) -> std::io::Result<Duration> {
        let mut c = TcpStream::connect(addr).await?;
        let t = std::time::Instant::now();
        c.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(3), c.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("timed out"))??;
        Ok(t.elapsed())
    }

    #[tokio::test]
    async fn blocked_sources_are_blackholed_and_reset_after_the_heal() {
        let up = echo_server().await;
        let reg = Registry::new(3);
        let p = reg
            .create("echo", "127.0.0.1:0", &up.to_string(), true)
            .await
            .unwrap();
        // Connections dialed by this process are "a" (found through /proc, as the chaos
        // suite finds member processes); nothing else is named.
        let me = vec![("a".to_string(), std::process::id())];
        p.set_labeler(Arc::new(move |peer, listen| {
            crate::sockowner::owner(peer, listen, &me)
        }));
        let addr = p.listen();
        let mut held = TcpStream::connect(addr).await.unwrap();
        held.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        held.read_exact(&mut buf).await.unwrap();
        reg.set_blocked("echo", ["b".to_string()].into()).unwrap();
        assert!(
            round_trip(addr).await.is_ok(),
            "another source's block must not apply"
        );
        reg.set_blocked("echo", ["a".to_string()].into()).unwrap();
        // Silence, not an error, on the held connection and on a new one.
        held.write_all(b"ping").await.unwrap();
        let silent = tokio::time::timeout(Duration::from_millis(300), held.read(&mut buf)).await;
        assert!(
            silent.is_err(),
            "a blocked source's bytes must be dropped: {silent:?}"
        );
        assert!(round_trip(addr).await.is_err());
        assert!(p.stats.chunks_partitioned.load(Ordering::Relaxed) >= 2);
        // Heal: the connection that lost bytes is reset, new ones work.
        reg.set_blocked("echo", BTreeSet::new()).unwrap();
        let after = tokio::time::timeout(Duration::from_secs(3), held.read(&mut buf)).await;
        assert!(
            matches!(after, Ok(Ok(0)) | Ok(Err(_))),
            "a holed connection must end after the heal: {after:?}"
        );
        assert!(round_trip(addr).await.is_ok());
        assert!(p.stats.connections_partitioned.load(Ordering::Relaxed) >= 1);
    }

    #[tokio::test]
    async fn drop_loses_the_share_of_chunks_it_is_given() {
        let up = echo_server().await;
        let reg = Registry::new(5);
        let p = reg
            .create("echo", "127.0.0.1:0", &up.to_string(), true)
            .await
            .unwrap();
        let toxic = |percent| Toxic {
            name: "drop".into(),
            stream: Stream::Upstream,
            toxicity: 1.0,
            kind: ToxicKind::Drop { percent },
        };
        reg.add_toxic("echo", toxic(0)).unwrap();
        assert!(round_trip(p.listen()).await.is_ok(), "0 % drops nothing");
        reg.remove_toxic("echo", "drop").unwrap();
        reg.add_toxic("echo", toxic(100)).unwrap();
        assert!(
            round_trip(p.listen()).await.is_err(),
            "100 % drops everything"
        );
        assert!(p.stats.chunks_dropped.load(Ordering::Relaxed) >= 1);
    }

    #[tokio::test]
    async fn forwards_delays_and_goes_down() {
        let up = echo_server().await;
        let reg = Registry::new(1);
        let p = reg
            .create("echo", "127.0.0.1:0", &up.to_string(), true)
            .await
            .unwrap();
        let addr = p.listen();
        assert!(round_trip(addr).await.unwrap() < Duration::from_millis(100));
        reg.add_toxic(
            "echo",
            Toxic {
                name: "slow".into(),
                stream: Stream::Downstream,
                toxicity: 1.0,
                kind: ToxicKind::Latency {
                    latency_ms: 200,
                    jitter_ms: 0,
                },
            },
        )
        .unwrap();
        assert!(round_trip(addr).await.unwrap() >= Duration::from_millis(200));
        assert!(p.stats.chunks_slowed.load(Ordering::Relaxed) > 0);
        reg.remove_toxic("echo", "slow").unwrap();
        assert!(round_trip(addr).await.unwrap() < Duration::from_millis(100));
        // Down: refused; up again: forwards.
        reg.update("echo", Some(false), None, None).await.unwrap();
        assert!(round_trip(addr).await.is_err());
        reg.update("echo", Some(true), None, None).await.unwrap();
        assert!(round_trip(addr).await.is_ok());
        // Conflicts and unknowns are the API's 409 and 404.
        assert!(matches!(
            reg.create("echo", "127.0.0.1:0", "x:1", true).await,
            Err(ProxyError::Conflict(_))
        ));
        assert!(matches!(reg.get("nope"), Err(ProxyError::NotFound(_))));
    }

    #[tokio::test]
    async fn timeout_drops_and_reset_peer_cuts() {
        let up = echo_server().await;
        let reg = Registry::new(2);
        let p = reg
            .create("e", "127.0.0.1:0", &up.to_string(), true)
            .await
            .unwrap();
        reg.add_toxic(
            "e",
            Toxic {
                name: "hole".into(),
                stream: Stream::Upstream,
                toxicity: 1.0,
                kind: ToxicKind::Timeout { timeout_ms: 0 },
            },
        )
        .unwrap();
        assert!(round_trip(p.listen()).await.is_err(), "blackholed");
        reg.remove_toxic("e", "hole").unwrap();
        reg.add_toxic(
            "e",
            Toxic {
                name: "rst".into(),
                stream: Stream::Downstream,
                toxicity: 1.0,
                kind: ToxicKind::ResetPeer { timeout_ms: 0 },
            },
        )
        .unwrap();
        assert!(round_trip(p.listen()).await.is_err(), "reset");
        assert!(p.stats.connections_cut.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn toxic_types_round_trip_their_attributes() {
        for k in [
            ToxicKind::Latency {
                latency_ms: 5,
                jitter_ms: 2,
            },
            ToxicKind::Bandwidth { rate_kbps: 9 },
            ToxicKind::SlowClose { delay_ms: 3 },
            ToxicKind::Timeout { timeout_ms: 4 },
            ToxicKind::ResetPeer { timeout_ms: 1 },
            ToxicKind::Slicer {
                average_size: 8,
                size_variation: 2,
                delay_us: 10,
            },
            ToxicKind::LimitData { bytes: 100 },
            ToxicKind::Drop { percent: 50 },
            ToxicKind::Noop,
        ] {
            assert_eq!(ToxicKind::from_parts(k.type_name(), &k.attributes()), Ok(k));
        }
        assert!(ToxicKind::from_parts("bogus", &BTreeMap::new()).is_err());
    }
}
