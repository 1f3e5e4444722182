//! Network faults, through the fault proxy in front of every member's peer port
//! (driven with the toxiproxy client, so `--toxiproxy URL` can put a real toxiproxy
//! there instead).
//!
//! A member's proxy carries every connection dialed *to* that member, so these faults
//! degrade what the member receives on connections others open to it. Targets that
//! dial the peer they send to (the reference server) lose everything addressed to the
//! member; etcd, whose followers also dial the leader to read from it and whose
//! leader falls back to connections it dials itself, routes around a cut of one
//! member's inbound side. The evidence of each fault here is what its proxy did.
//!
//! On the docker backend there are no proxies: the same faults are packet filter rules
//! and queueing disciplines in the member's own network namespace ([`docker_run`]):
//! a cut inbound side drops every packet from the other members, a reset answers their
//! TCP segments with RST, dropping loses half of the packets exchanged with them, the
//! bandwidth limit is a token bucket on the member's egress, and the delay (with
//! reordering) holds every packet with the other members in a userspace delayer. The
//! evidence is the rules' own packet counters and the delayer's.

use std::time::Duration;

use gauntlet_harness::toxiproxy::{ToxicJson, ToxiproxyClient};
use rand::Rng;

use super::{failed, serve_again, FaultCtx, FaultError, FaultKind};

/// How long a degrading toxic stays on.
const TOXIC_FOR: Duration = Duration::from_millis(1000);

async fn api<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, gauntlet_harness::toxiproxy::ToxiproxyError> + Send + 'static,
) -> Result<T, FaultError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(failed)?
        .map_err(failed)
}

fn toxic(name: &str, kind: &str, stream: &str, attrs: &[(&str, u64)]) -> ToxicJson {
    ToxicJson {
        name: name.to_string(),
        kind: kind.to_string(),
        stream: stream.to_string(),
        toxicity: 1.0,
        attributes: attrs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

async fn leader_named_by_others(ctx: &FaultCtx<'_>, not: usize) -> Option<(usize, u64)> {
    for j in (0..ctx.cluster.size()).filter(|j| *j != not) {
        if let Ok(s) = ctx.cluster.member_status(j).await {
            if s.leader != 0 {
                return Some((j, s.leader));
            }
        }
    }
    None
}

/// After a cut of the leader's inbound side has been held for `hold`: whether another
/// member names a new leader, polled until [`REPLACED_WITHIN`] more has passed (a
/// loaded machine can need longer than the election timeouts the hold allows for).
/// The evidence line says who names whom and when, or that `hit` kept leadership
/// (`why` says how that can be).
async fn leader_replaced(
    ctx: &FaultCtx<'_>,
    hit: usize,
    old_id: u64,
    hold: Duration,
    why: &str,
) -> String {
    let start = tokio::time::Instant::now();
    tokio::time::sleep(hold).await;
    loop {
        if let Some((j, id)) = leader_named_by_others(ctx, hit).await {
            if id != old_id {
                return format!(
                    "m{j} now names leader {id:x} (was m{hit}, {old_id:x}) {} ms into the cut",
                    start.elapsed().as_millis()
                );
            }
        }
        if start.elapsed() >= hold + REPLACED_WITHIN {
            return format!(
                "m{hit} kept leadership for {} ms{why}",
                start.elapsed().as_millis()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How much longer than its hold a cut of the leader's inbound side waits for the
/// others to name a new leader.
const REPLACED_WITHIN: Duration = Duration::from_secs(10);

pub(super) async fn run(
    kind: FaultKind,
    ctx: &mut FaultCtx<'_>,
    leader: Option<usize>,
    ready: Duration,
) -> Result<(Vec<usize>, Vec<String>), FaultError> {
    let n = ctx.cluster.size();
    let followers: Vec<usize> = (0..n).filter(|i| Some(*i) != leader).collect();
    let hit = match kind {
        FaultKind::CutLeaderInbound => leader.ok_or_else(|| failed("no leader to cut"))?,
        FaultKind::CutFollowerInbound => *followers
            .get(ctx.rng.gen_range(0..followers.len().max(1)))
            .ok_or_else(|| failed("no follower to cut"))?,
        _ => ctx.rng.gen_range(0..n),
    };
    if ctx.cluster.backend() == gauntlet_harness::Backend::Docker {
        return docker_run(kind, ctx, leader, hit, ready).await;
    }
    let (client, name): (ToxiproxyClient, String) = ctx
        .cluster
        .peer_proxy(hit)
        .ok_or_else(|| failed("the cluster has no peer proxies (network faults need them)"))?;
    let stats = ctx.cluster.peer_proxy_stats(hit);
    let before = stats.as_ref().map(|s| {
        use std::sync::atomic::Ordering::Relaxed;
        (
            s.chunks_slowed.load(Relaxed),
            s.connections_cut.load(Relaxed),
            s.chunks_dropped.load(Relaxed),
        )
    });
    let mut evidence = Vec::new();
    match kind {
        FaultKind::CutLeaderInbound | FaultKind::CutFollowerInbound => {
            let old_id = match leader {
                Some(l) => ctx
                    .cluster
                    .member_status(l)
                    .await
                    .map_err(failed)?
                    .header
                    .map_or(0, |h| h.member_id),
                None => 0,
            };
            let (c, p) = (client.clone(), name.clone());
            let shown = api(move || c.set_enabled(&p, false)).await?;
            if shown.enabled {
                return Err(failed(format!(
                    "proxy {name} still enabled after disabling it"
                )));
            }
            evidence.push(format!("m{hit}'s inbound peer proxy is down"));
            let hold = Duration::from_millis(ctx.election_ms * 3 + 500);
            if kind == FaultKind::CutLeaderInbound {
                evidence.push(
                    leader_replaced(
                        ctx,
                        hit,
                        old_id,
                        hold,
                        ": the target's peers reach it on connections it dials itself",
                    )
                    .await,
                );
            } else {
                tokio::time::sleep(hold).await;
            }
            let (c, p) = (client.clone(), name.clone());
            api(move || c.set_enabled(&p, true)).await?;
        }
        FaultKind::DelayPeer
        | FaultKind::BandwidthPeer
        | FaultKind::ResetPeer
        | FaultKind::DropPeer => {
            if kind == FaultKind::DropPeer && !ctx.cluster.peer_tls() {
                return Err(FaultError::Unsupported(
                    "dropping bytes needs TLS between members (a hole in a plaintext peer stream corrupts its frames), and the target takes no peer TLS flags".into(),
                ));
            }
            let toxics: Vec<ToxicJson> = match kind {
                FaultKind::DelayPeer => ["upstream", "downstream"]
                    .iter()
                    .map(|s| {
                        toxic(
                            &format!("chaos-delay-{s}"),
                            "latency",
                            s,
                            &[("latency", 75), ("jitter", 50)],
                        )
                    })
                    .collect(),
                FaultKind::DropPeer => ["upstream", "downstream"]
                    .iter()
                    .map(|s| toxic(&format!("chaos-drop-{s}"), "drop", s, &[("percent", 50)]))
                    .collect(),
                FaultKind::BandwidthPeer => ["upstream", "downstream"]
                    .iter()
                    .map(|s| {
                        toxic(
                            &format!("chaos-bandwidth-{s}"),
                            "bandwidth",
                            s,
                            &[("rate", 64)],
                        )
                    })
                    .collect(),
                _ => vec![toxic(
                    "chaos-reset",
                    "reset_peer",
                    "downstream",
                    &[("timeout", 0)],
                )],
            };
            for t in &toxics {
                let (c, p, t2) = (client.clone(), name.clone(), t.clone());
                api(move || c.add_toxic(&p, &t2)).await.map_err(|e| {
                    if kind == FaultKind::DropPeer {
                        FaultError::Unsupported(format!(
                            "the proxy refused the `drop` toxic (a gauntlet extension a toxiproxy does not have): {e}"
                        ))
                    } else {
                        e
                    }
                })?;
            }
            evidence.push(format!(
                "toxics on m{hit}'s inbound peer proxy: {}",
                toxics
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            tokio::time::sleep(TOXIC_FOR).await;
            for t in &toxics {
                let (c, p, tn) = (client.clone(), name.clone(), t.name.clone());
                api(move || c.remove_toxic(&p, &tn)).await?;
            }
        }
        _ => return Err(failed(format!("{kind} is not a network fault"))),
    }
    // What the proxy did (our own proxies count it; a real toxiproxy does not say).
    if let (Some(s), Some((slowed0, cut0, dropped0))) = (stats, before) {
        use std::sync::atomic::Ordering::Relaxed;
        let slowed = s.chunks_slowed.load(Relaxed) - slowed0;
        let cut = s.connections_cut.load(Relaxed) - cut0;
        let dropped = s.chunks_dropped.load(Relaxed) - dropped0;
        let took = match kind {
            FaultKind::DelayPeer | FaultKind::BandwidthPeer => slowed > 0,
            FaultKind::DropPeer => dropped > 0,
            _ => cut > 0,
        };
        evidence.push(format!(
            "proxy counted {slowed} chunks slowed, {dropped} dropped, {cut} connections cut"
        ));
        if !took {
            return Err(failed(format!(
                "{kind} did not take effect: m{hit}'s proxy slowed {slowed} chunks, dropped {dropped} and cut {cut} connections"
            )));
        }
    }
    serve_again(ctx.cluster, ready, kind).await?;
    Ok((vec![hit], evidence))
}

/// The network faults on the docker backend: rules in the member's network namespace
/// (see the module docs), held, removed, and judged by their packet counters.
async fn docker_run(
    kind: FaultKind,
    ctx: &mut FaultCtx<'_>,
    leader: Option<usize>,
    hit: usize,
    ready: Duration,
) -> Result<(Vec<usize>, Vec<String>), FaultError> {
    use gauntlet_harness::docker::NetShape;
    let (shape, hold, what) = match kind {
        FaultKind::CutLeaderInbound | FaultKind::CutFollowerInbound => (
            NetShape::CutInbound,
            Duration::from_millis(ctx.election_ms * 3 + 500),
            "every packet from the other members dropped",
        ),
        FaultKind::DelayPeer => (
            NetShape::Delay {
                delay_ms: 75,
                jitter_ms: 50,
                seed: ctx.rng.gen(),
            },
            TOXIC_FOR,
            "every packet with the other members held 75 ± 50 ms (jitter reorders them)",
        ),
        FaultKind::BandwidthPeer => (
            NetShape::Bandwidth(512),
            TOXIC_FOR,
            "egress limited to 512 kbit/s (64 KB/s, token bucket)",
        ),
        FaultKind::ResetPeer => (
            NetShape::ResetPeers,
            TOXIC_FOR,
            "TCP with the other members answered with RST",
        ),
        FaultKind::DropPeer => (
            NetShape::Loss(0.5),
            TOXIC_FOR,
            "half of the packets exchanged with the other members dropped",
        ),
        _ => return Err(failed(format!("{kind} is not a network fault"))),
    };
    let old_id = match leader {
        Some(l) => ctx
            .cluster
            .member_status(l)
            .await
            .map_or(0, |s| s.header.map_or(0, |h| h.member_id)),
        None => 0,
    };
    let (before, _) = ctx.cluster.partition_drops();
    ctx.cluster.shape_network(hit, shape).map_err(|e| match e {
        gauntlet_harness::HarnessError::Unsupported(why) => FaultError::Unsupported(why),
        e => failed(format!("shaping m{hit}'s network: {e}")),
    })?;
    let mut evidence = vec![format!("m{hit}: {what}")];
    if kind == FaultKind::CutLeaderInbound {
        evidence.push(leader_replaced(ctx, hit, old_id, hold, "").await);
    } else {
        tokio::time::sleep(hold).await;
    }
    let (after, unit) = ctx.cluster.partition_drops();
    let delayed = ctx.cluster.delayed_packets(hit);
    ctx.cluster
        .shape_network(hit, NetShape::Clear)
        .map_err(|e| failed(format!("healing m{hit}'s network: {e}")))?;
    let counted = after[hit].saturating_sub(before[hit]);
    match shape {
        NetShape::Bandwidth(_) => {
            evidence.push("the queueing discipline was accepted by the kernel".into());
        }
        NetShape::Delay { .. } => {
            let (n, reordered) = delayed.unwrap_or((0, 0));
            evidence.push(format!(
                "m{hit}'s delayer held {n} packets, {reordered} of them let go before an earlier one"
            ));
            if n == 0 {
                return Err(failed(format!(
                    "{kind} did not take effect: m{hit}'s delayer held no packet"
                )));
            }
        }
        _ => {
            evidence.push(format!("m{hit}'s rules counted {counted} {unit}"));
            if counted == 0 {
                return Err(failed(format!(
                    "{kind} did not take effect: m{hit}'s rules matched no {unit}"
                )));
            }
        }
    }
    serve_again(ctx.cluster, ready, kind).await?;
    Ok((vec![hit], evidence))
}
