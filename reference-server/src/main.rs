//! `gauntlet-server`: the reference server's binary (see the library's docs).

/// mimalloc instead of glibc's allocator: the request path allocates many small,
/// short-lived buffers across threads, where glibc's arenas spent a sixth of the CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use gauntlet_reference_server::{
    auth, backend, bootstrap, config, corrupt, failpoints, gateway, h2fix, http, lease, metrics,
    node, oversize, peer, peerpb, services, snapshot, state, tls, transport, version, wal,
};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use anyhow::Context;
use futures::TryStreamExt;
use gauntlet_api::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use tonic::transport::Server;

use crate::config::Config;
use crate::services::{Ctx, GRPC_OVERHEAD_BYTES};

fn main() -> std::process::ExitCode {
    // No transparent huge pages: the allocator's fresh memory would otherwise be
    // faulted in and zeroed 2 MiB at a time, which cost two thirds of the time of a
    // large DeleteRange (sled grows many node buffers at once) and inflated RSS.
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("gauntlet-server: warning: cannot disable transparent huge pages: {e}");
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "snapshot") {
        if args.get(2).is_some_and(|a| a == "restore") {
            return snapshot::restore_command(args[3..].to_vec());
        }
        eprintln!("gauntlet-server: snapshot: the only subcommand is `restore`");
        return std::process::ExitCode::from(2);
    }
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(stop) => return stop.report(),
    };
    if let Err(e) = config::logging::init(&config) {
        eprintln!("gauntlet-server: {e}");
        return std::process::ExitCode::from(2);
    }
    wal::set_unsafe_no_fsync(config.flags.unsafe_no_fsync);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gauntlet-server: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match rt.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gauntlet-server: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// How long a removed member keeps serving after applying its removal, so that its
/// answers in flight (the MemberRemove itself, when it was asked) go out.
const REMOVED_GRACE: Duration = Duration::from_millis(500);

/// raft-rs logs through slog: its warnings and errors (a campaign it refuses, say) go
/// to this server's log as target `raft`; its info and debug chatter does not.
fn raft_logger() -> slog::Logger {
    slog::Logger::root(RaftLogDrain, slog::o!())
}

/// Forwards raft-rs's warnings and errors, with their key-value pairs, to `tracing`.
struct RaftLogDrain;

/// Collects a record's key-value pairs as `key=value` text.
struct KvText(String);

impl slog::Serializer for KvText {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        use std::fmt::Write as _;
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl slog::Drain for RaftLogDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        if !record.level().is_at_least(slog::Level::Warning) {
            return Ok(());
        }
        let mut kv = KvText(String::new());
        let _ = slog::KV::serialize(&record.kv(), record, &mut kv);
        let _ = slog::KV::serialize(values, record, &mut kv);
        let msg = record.msg();
        if record.level().is_at_least(slog::Level::Error) {
            tracing::error!(target: "raft", "{msg}{}", kv.0);
        } else {
            tracing::warn!(target: "raft", "{msg}{}", kv.0);
        }
        Ok(())
    }
}

/// The `host:port` of each URL (what etcd puts into a generated certificate).
fn url_hosts(listeners: &[config::Listen]) -> Vec<String> {
    listeners
        .iter()
        .map(|l| {
            let rest = l.url.split_once("://").map_or(l.url.as_str(), |(_, r)| r);
            rest.split('/').next().unwrap_or(rest).to_string()
        })
        .collect()
}

/// Both sides' TLS at start: certificates generated or read, the acceptors of the
/// `https://` listeners, and the peer client configuration.
struct Tls {
    client: Option<tls::Acceptor>,
    peer: Option<tls::Acceptor>,
    peer_dial: Option<transport::PeerTls>,
}

fn setup_tls(config: &Config) -> anyhow::Result<Tls> {
    let validity = config.flags.self_signed_cert_validity;
    let client = config.client_tls.resolve(
        tls::Side::Client,
        &config.data_dir,
        &url_hosts(&config.client_listeners),
        validity,
    )?;
    let peer = config.peer_tls.resolve(
        tls::Side::Peer,
        &config.data_dir,
        &url_hosts(&config.peer_listeners),
        validity,
    )?;
    let policy = &config.tls_policy;
    let needed = |listeners: &[config::Listen], side: &Option<tls::Resolved>| {
        if !listeners.iter().any(|l| l.https) {
            return Ok(None);
        }
        match side {
            Some(r) => Ok(Some(r.acceptor(policy)?)),
            None => Err(anyhow::anyhow!("an https:// URL without a certificate")),
        }
    };
    let client_urls: Vec<config::Listen> = config
        .client_listeners
        .iter()
        .chain(&config.metrics_listeners)
        .cloned()
        .collect();
    Ok(Tls {
        client: needed(&client_urls, &client)?,
        peer: needed(&config.peer_listeners, &peer)?,
        peer_dial: peer.map(|r| r.client_config(policy)).transpose()?,
    })
}

async fn run(config: Config) -> anyhow::Result<()> {
    failpoints::serve_from_env()
        .await
        .map_err(anyhow::Error::msg)?;
    let tls = setup_tls(&config)?;
    version::check_storage(&backend::member_dir(&config.data_dir))?;
    let db = backend::open(&backend::member_dir(&config.data_dir))?;
    // etcd's minimum lease TTL: 1.5 election timeouts, in whole seconds.
    let min_ttl_s = i64::try_from((3 * config.flags.election_timeout).div_ceil(2000))
        .unwrap_or(1)
        .max(1);
    let mut state = state::StateMachine::open_with(
        db,
        state::Config {
            min_lease_ttl_secs: min_ttl_s,
        },
    )
    .context("opening the state machine")?;
    state.set_db_dir(backend::current_dir(&backend::member_dir(
        &config.data_dir,
    ))?);
    version::check_cluster_version(state.cluster().cluster_version)?;
    let start = bootstrap::resolve(&config, &state, tls.peer_dial.as_ref()).await?;
    let state = Arc::new(RwLock::new(state));

    let node_cell: Arc<OnceLock<node::NodeHandle>> = Arc::new(OnceLock::new());
    // One connection per peer, shared by raft traffic and the peer RPCs.
    let transport = transport::Transport::new(
        &tokio::runtime::Handle::current(),
        start.cluster_id,
        start.member_id,
        node_cell.clone(),
        tls.peer_dial.clone(),
    );
    transport.set_peers(
        &start
            .members
            .iter()
            .map(|m| (m.id, m.peer_urls.clone()))
            .collect::<Vec<_>>(),
    );
    let request_timeout =
        Duration::from_secs(5) + 2 * Duration::from_millis(config.flags.election_timeout);
    let node_cfg = node::NodeConfig {
        id: start.member_id,
        voters: start.voters.clone(),
        bootstrap: start.bootstrap.clone(),
        tick: config.tick(),
        election_ticks: config.election_ticks,
        snapshot_count: config.flags.snapshot_count,
        request_timeout,
        pre_vote: config.flags.pre_vote,
        initial_election_ticks: config.initial_election_ticks,
    };
    let node = node::start(
        &config.wal_dir,
        state,
        node_cfg,
        transport.clone(),
        raft_logger(),
    )
    .context("starting raft")?;
    let _ = node_cell.set(node.clone());

    // etcd's minimum lease TTL: 1.5 election timeouts, in whole seconds.
    let min_ttl_s = i64::try_from((3 * config.flags.election_timeout).div_ceil(2000))
        .unwrap_or(1)
        .max(1);
    let lessor = lease::Lessor::new(node.clone(), min_ttl_s);
    let lessor_cell = Arc::new(OnceLock::new());
    let _ = lessor_cell.set(lessor.clone());
    tokio::spawn(lessor.clone().run());
    let sizer = node.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(node::DB_SIZE_REFRESH);
        loop {
            every.tick().await;
            // Reset first: writes proposed while the size is read count again next
            // time (an overestimate, never a miss).
            sizer
                .status
                .bytes_since_size_refresh
                .store(0, std::sync::atomic::Ordering::Relaxed);
            let size = sizer.read_state().db_size_bytes();
            sizer
                .status
                .db_size_bytes
                .store(size, std::sync::atomic::Ordering::Relaxed);
        }
    });

    let ctx = Ctx {
        node: node.clone(),
        cluster_id: start.cluster_id,
        member_id: start.member_id,
        cluster_token: config.flags.initial_cluster_token.clone(),
        member_dir: backend::member_dir(&config.data_dir),
        strict_reconfig_check: config.strict_reconfig_check,
        max_txn_ops: config.flags.max_txn_ops as usize,
        max_request_bytes: config.flags.max_request_bytes as usize,
        lessor,
        transport: transport.clone(),
        progress_interval: config
            .flags
            .watch_progress_notify_interval
            .max(Duration::from_millis(100)),
        quota_bytes: config.quota_bytes,
        authn: {
            let tokens = node.read_state().tokens();
            tokens.set_ttl(Duration::from_secs(u64::from(config.flags.auth_token_ttl)));
            auth::Authn::new(
                config.auth_token.clone(),
                tokens,
                config.bcrypt_cost,
                config.flags.client_cert_auth,
            )
        },
    };
    spawn_auto_compaction(&config, ctx.clone());
    tokio::spawn(version::monitor(ctx.clone()));
    let published = tokio::spawn(services::publish(
        ctx.clone(),
        config.flags.name.clone(),
        config.flags.advertise_client_urls.clone(),
    ));

    // Peer listeners.
    let me = peerpb::MemberInfoResponse {
        id: start.member_id,
        name: config.flags.name.clone(),
        client_urls: config.flags.advertise_client_urls.clone(),
        peer_urls: config.flags.initial_advertise_peer_urls.clone(),
        cluster_id: start.cluster_id,
        members: Vec::new(),
        server_version: version::server_version().to_string(),
    };
    let peer_svc = peer::PeerService {
        node: node_cell.clone(),
        lessor: lessor_cell,
        cluster_id: start.cluster_id,
        me,
        transport: transport.clone(),
    };
    let mut servers = tokio::task::JoinSet::new();
    for l in &config.peer_listeners {
        let listener = tokio::net::TcpListener::bind(l.addr)
            .await
            .with_context(|| format!("--listen-peer-urls: cannot listen on {}", l.addr))?;
        let svc = peerpb::peer_server::PeerServer::new(peer_svc.clone())
            .max_decoding_message_size(transport::MAX_PEER_MESSAGE)
            .max_encoding_message_size(transport::MAX_PEER_MESSAGE);
        let acceptor = if l.https { tls.peer.clone() } else { None };
        servers.spawn(async move {
            Server::builder()
                .add_service(svc)
                .serve_with_incoming(tls::incoming(listener, acceptor))
                .await
                .map_err(|e| anyhow::anyhow!("peer server: {e}"))
        });
    }

    // Client listeners.
    let max_decode = config.flags.max_request_bytes as usize + GRPC_OVERHEAD_BYTES;
    // Client ports are taken now, but served only once this member published its name
    // and client URLs through raft, as etcd serves clients only when ready.
    let mut client_listeners = Vec::new();
    for l in &config.client_listeners {
        let listener = tokio::net::TcpListener::bind(l.addr)
            .await
            .with_context(|| format!("--listen-client-urls: cannot listen on {}", l.addr))?;
        let acceptor = if l.https { tls.client.clone() } else { None };
        client_listeners.push((listener, acceptor));
    }
    // Every listener is bound before any serves, so a healthy client URL means the
    // metrics URLs answer too, and a taken port stops the start instead.
    let mut metrics_listeners = Vec::new();
    for l in &config.metrics_listeners {
        let listener = tokio::net::TcpListener::bind(l.addr)
            .await
            .with_context(|| format!("--listen-metrics-urls: cannot listen on {}", l.addr))?;
        let acceptor = if l.https { tls.client.clone() } else { None };
        metrics_listeners.push((listener, acceptor));
    }
    if let Err(e) = published.await {
        tracing::warn!("publishing this member failed: {e}");
    }
    if config.flags.experimental_initial_corrupt_check {
        corrupt::initial_check(&ctx).await?;
    }
    if !config.flags.experimental_corrupt_check_time.is_zero() {
        tokio::spawn(corrupt::monitor(
            ctx.clone(),
            config.flags.experimental_corrupt_check_time,
        ));
    }
    for (listener, acceptor) in client_listeners {
        let grpc = tonic::service::Routes::new(
            KvServer::new(services::KvService(ctx.clone())).max_decoding_message_size(max_decode),
        )
        .add_service(
            WatchServer::new(services::WatchService(ctx.clone()))
                .max_decoding_message_size(max_decode),
        )
        .add_service(
            LeaseServer::new(services::LeaseService(ctx.clone()))
                .max_decoding_message_size(max_decode),
        )
        .add_service(
            gauntlet_api::etcdserverpb::auth_server::AuthServer::new(services::AuthService(
                ctx.clone(),
            ))
            .max_decoding_message_size(max_decode),
        )
        .add_service(
            ClusterServer::new(services::ClusterService(ctx.clone()))
                .max_decoding_message_size(max_decode),
        )
        .add_service(
            MaintenanceServer::new(services::MaintenanceService(ctx.clone()))
                .max_decoding_message_size(max_decode),
        )
        .add_service(
            gauntlet_api::v3lockpb::lock_server::LockServer::new(services::LockService(
                ctx.clone(),
            ))
            .max_decoding_message_size(max_decode),
        )
        .add_service(
            gauntlet_api::v3electionpb::election_server::ElectionServer::new(
                services::ElectionService(ctx.clone()),
            )
            .max_decoding_message_size(max_decode),
        );
        let router = grpc
            .into_axum_router()
            .layer(axum::middleware::from_fn_with_state(
                node.clone(),
                services::learner_guard,
            ))
            .layer(axum::middleware::from_fn(metrics::grpc_counter))
            .merge(http::routes(node.clone()))
            .merge(gateway::routes(ctx.clone()))
            // Outermost: every route sees the connection's addresses and client certificate.
            .layer(axum::middleware::from_fn(tls::client_cert_extension));
        let mut builder = Server::builder()
            .accept_http1(true)
            .layer(oversize::OversizeLayer);
        let routes = tonic::service::Routes::from(router);
        servers.spawn(async move {
            builder
                .add_routes(routes)
                .serve_with_incoming(
                    tls::incoming(listener, acceptor).map_ok(h2fix::FixAuthority::new),
                )
                .await
                .map_err(|e| anyhow::anyhow!("client server: {e}"))
        });
    }
    for (listener, acceptor) in metrics_listeners {
        let app = http::metrics_routes(node.clone());
        servers.spawn(async move {
            Server::builder()
                .accept_http1(true)
                .add_routes(tonic::service::Routes::from(app))
                .serve_with_incoming(tls::incoming(listener, acceptor))
                .await
                .map_err(|e| anyhow::anyhow!("metrics server: {e}"))
        });
    }
    tracing::info!(name = %config.flags.name, id = %format!("{:x}", start.member_id), "serving");
    let removed = node.clone();
    let removal = async move {
        while !removed
            .status
            .removed
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Let the answer to the MemberRemove that removed this member go out.
        tokio::time::sleep(REMOVED_GRACE).await;
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = servers.join_next() => match r {
            Some(Ok(Err(e))) => return Err(e),
            Some(Err(e)) => return Err(anyhow::anyhow!("server task failed: {e}")),
            _ => {}
        },
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        () = removal => {
            eprintln!("gauntlet-server: this member was removed from the cluster; stopping");
        }
    }
    // Make what was applied durable before exiting on a graceful stop.
    let _ = node.read_state().flush();
    Ok(())
}

/// etcd's auto compaction: keep `retention` revisions (revision mode) or compact
/// every period to the revision seen one period ago (periodic mode). Leader only.
fn spawn_auto_compaction(config: &Config, ctx: Ctx) {
    let revisions = config.auto_compaction_revisions;
    let period = config.auto_compaction_period;
    if revisions.is_none() && period.is_none() {
        return;
    }
    tokio::spawn(async move {
        let interval = period
            .unwrap_or(Duration::from_secs(300))
            .max(Duration::from_secs(1));
        let check = if revisions.is_some() {
            Duration::from_secs(300)
        } else {
            interval
        };
        let mut ticker = tokio::time::interval(check);
        ticker.tick().await;
        let mut seen_rev: Option<i64> = None;
        loop {
            ticker.tick().await;
            if !ctx
                .node
                .status
                .is_leader
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                continue;
            }
            let (rev, compacted) = {
                let st = ctx.node.read_state();
                (st.revision(), st.compact_revision())
            };
            let target = match revisions {
                Some(keep) => rev - keep,
                None => seen_rev.replace(rev).unwrap_or(0),
            };
            if target > compacted && target > 0 {
                let op = state::Op::Compaction(gauntlet_api::etcdserverpb::CompactionRequest {
                    revision: target,
                    physical: false,
                });
                if let Err(e) = ctx.node.propose(state::Command::internal(op)).await {
                    tracing::warn!(target, "auto compaction failed: {}", e.message);
                }
            }
        }
    });
}
