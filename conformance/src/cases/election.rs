//! Election (v3electionpb): campaign, proclaim, leader, resign.

use std::time::Duration;

use gauntlet_api::etcdserverpb as pb;
use gauntlet_api::v3electionpb::{
    CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest,
};

use super::doc;
use crate::case::{case, ensure, eq, failure, ok, Case, Ctx, Failure};

/// etcd's `concurrency.ErrElectionNoLeader` text, sent with code Unknown.
const NO_LEADER_MSG: &str = "election: no leader";
/// etcd's `concurrency.ErrElectionNotLeader` text, sent with code Unknown.
const NOT_LEADER_MSG: &str = "election: not leader";

async fn lease(ctx: &Ctx) -> Result<i64, Failure> {
    let req = pb::LeaseGrantRequest { ttl: 30, id: 0 };
    Ok(ok(&req, ctx.client.lease_grant(req).await)?.id)
}

async fn campaign(ctx: &Ctx, value: &str) -> Result<(CampaignRequest, LeaderKey), Failure> {
    let l = lease(ctx).await?;
    let req = CampaignRequest {
        name: ctx.key("e"),
        lease: l,
        value: value.as_bytes().to_vec(),
    };
    let r = ok(&req, ctx.client.campaign(req.clone()).await)?;
    Ok((req, r.leader.unwrap_or_default()))
}

async fn leader_value(ctx: &Ctx) -> Result<Option<Vec<u8>>, Failure> {
    let req = LeaderRequest { name: ctx.key("e") };
    let r = ok(&req, ctx.client.leader(req.clone()).await)?;
    Ok(r.kv.map(|k| k.value))
}

fn unknown_with(
    req: &impl std::fmt::Debug,
    r: Result<impl std::fmt::Debug, gauntlet_harness::ClientError>,
    msg: &str,
) -> Result<(), Failure> {
    match r {
        Err(e) if e.message() == Some(msg) => Ok(()),
        other => Err(failure(req, format!("error {msg:?}"), format!("{other:?}"))),
    }
}

pub fn cases() -> Vec<Case> {
    vec![
        case("election.campaign.leader_key", "Campaign returns a leader key with the election name, a key under it, its revision and the lease.", doc::CONCURRENCY, |ctx| async move {
            let (req, lk) = campaign(&ctx, "v1").await?;
            ensure(&req, lk.name == req.name && lk.key.starts_with(&req.name) && lk.rev > 0 && lk.lease == req.lease, "name, key under name, rev > 0, lease", crate::case::show(&lk))
        }),
        case("election.leader.value", "Leader returns the current leader's key-value with the campaign value.", doc::CONCURRENCY, |ctx| async move {
            campaign(&ctx, "v1").await?;
            eq(&"campaign v1; leader", "value", Some(b"v1".to_vec()), leader_value(&ctx).await?)
        }),
        case("election.proclaim.updates_value", "Proclaim by the leader replaces the leader value.", doc::CONCURRENCY, |ctx| async move {
            let (_, lk) = campaign(&ctx, "v1").await?;
            let req = ProclaimRequest { leader: Some(lk), value: b"v2".to_vec() };
            ok(&req, ctx.client.proclaim(req.clone()).await)?;
            eq(&req, "leader value", Some(b"v2".to_vec()), leader_value(&ctx).await?)
        }),
        case("election.leader.none", "Leader on an election nobody campaigned in fails with 'election: no leader'.", doc::CONCURRENCY, |ctx| async move {
            let req = LeaderRequest { name: ctx.key("e") };
            unknown_with(&req, ctx.client.leader(req.clone()).await, NO_LEADER_MSG)
        }),
        case("election.resign.clears_leader", "After the leader resigns, Leader fails with 'election: no leader'.", doc::CONCURRENCY, |ctx| async move {
            let (_, lk) = campaign(&ctx, "v1").await?;
            let req = ResignRequest { leader: Some(lk) };
            ok(&req, ctx.client.resign(req.clone()).await)?;
            let q = LeaderRequest { name: ctx.key("e") };
            unknown_with(&q, ctx.client.leader(q.clone()).await, NO_LEADER_MSG)
        }),
        case("election.proclaim.not_leader", "Proclaim with a leader key that is not the leader fails with 'election: not leader'.", doc::CONCURRENCY, |ctx| async move {
            let (_, lk) = campaign(&ctx, "v1").await?;
            let fake = LeaderKey { key: [lk.key.clone(), b"-not".to_vec()].concat(), ..lk };
            let req = ProclaimRequest { leader: Some(fake), value: b"x".to_vec() };
            unknown_with(&req, ctx.client.proclaim(req.clone()).await, NOT_LEADER_MSG)
        }),
        case("election.campaign.second_waits", "A second campaign waits while a leader holds the election, and wins when it resigns.", doc::CONCURRENCY, |ctx| async move {
            let (_, lk) = campaign(&ctx, "first").await?;
            let l2 = lease(&ctx).await?;
            let c = ctx.client.clone();
            let req2 = CampaignRequest { name: ctx.key("e"), lease: l2, value: b"second".to_vec() };
            let waiter = tokio::spawn(async move { c.campaign(req2).await });
            tokio::time::sleep(Duration::from_millis(500)).await;
            ensure(&"campaign twice", !waiter.is_finished(), "the second campaign still waiting", "it returned")?;
            ok(&"resign", ctx.client.resign(ResignRequest { leader: Some(lk) }).await)?;
            match tokio::time::timeout(Duration::from_secs(5), waiter).await {
                Ok(Ok(r)) => { ok(&"second campaign", r)?; }
                _ => return Err(failure(&"campaign; campaign; resign first", "the second campaign wins", "no answer in 5 s")),
            }
            eq(&"after the resign", "leader value", Some(b"second".to_vec()), leader_value(&ctx).await?)
        }),
        case("election.leader.lease_revoke_ends", "Revoking the leader's lease ends its leadership.", doc::CONCURRENCY, |ctx| async move {
            let (req, _) = campaign(&ctx, "v1").await?;
            ok(&"revoke", ctx.client.lease_revoke(pb::LeaseRevokeRequest { id: req.lease }).await)?;
            let q = LeaderRequest { name: ctx.key("e") };
            unknown_with(&q, ctx.client.leader(q.clone()).await, NO_LEADER_MSG)
        }),
        case("election.proclaim.missing_leader", "Proclaim without a leader key fails with '\"leader\" field must be provided'.", doc::CONCURRENCY, |ctx| async move {
            let req = ProclaimRequest { leader: None, value: b"x".to_vec() };
            let _ = &ctx;
            unknown_with(&req, ctx.client.proclaim(req.clone()).await, gauntlet_api::rpctypes::MISSING_LEADER_KEY.message)
        }),
        case("election.resign.missing_leader", "Resign without a leader key fails with '\"leader\" field must be provided'.", doc::CONCURRENCY, |ctx| async move {
            let req = ResignRequest { leader: None };
            unknown_with(&req, ctx.client.resign(req.clone()).await, gauntlet_api::rpctypes::MISSING_LEADER_KEY.message)
        }),
        case("election.observe.follows_leader", "Observe streams the leader once there is one, then again when its value is proclaimed.", doc::CONCURRENCY, |ctx| async move {
            let c = ctx.client.clone();
            let name = ctx.key("e");
            let observer = tokio::spawn(async move {
                let mut values = Vec::new();
                let r = c
                    .observe(LeaderRequest { name }, Duration::from_secs(10), |resp| {
                        values.push(resp.kv.as_ref().map(|k| k.value.clone()).unwrap_or_default());
                        values.len() < 2
                    })
                    .await;
                (r, values)
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (_, lk) = campaign(&ctx, "v1").await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let req = ProclaimRequest { leader: Some(lk), value: b"v2".to_vec() };
            ok(&req, ctx.client.proclaim(req.clone()).await)?;
            let (r, values) = observer.await.map_err(|e| failure(&"observe", "the observer's values", e.to_string()))?;
            ok(&"observe e", r)?;
            eq(&"observe e; campaign v1; proclaim v2", "observed values", vec![b"v1".to_vec(), b"v2".to_vec()], values)
        }),
        case("election.leader.key_in_kv", "The leader key exists in the KV store with the campaign value and lease.", doc::CONCURRENCY, |ctx| async move {
            let (req, lk) = campaign(&ctx, "v1").await?;
            let got = ok(&req, ctx.client.get(lk.key.clone()).await)?;
            eq(&req, "(value, lease)", Some((b"v1".to_vec(), req.lease)), got.kvs.first().map(|k| (k.value.clone(), k.lease)))
        }),
    ]
}
