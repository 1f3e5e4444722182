//! Lease: grant (bounds, ids), revoke, time-to-live, keep-alive, leases, expiry
//! deleting keys and emitting delete events.

use std::time::Duration;

use gauntlet_api::etcdserverpb as pb;
use gauntlet_api::mvccpb::event::EventType;
use gauntlet_api::rpctypes as E;

use super::{doc, put, rev};
use crate::case::{case, ensure, eq, err_is, ok, Case, Ctx, Failure, Needs, EVENT_WAIT};

/// etcd's largest lease TTL (`MaxLeaseTTL`, 9 000 000 000 s).
const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Lease ids a case may choose: derived from the case prefix so that concurrent cases
/// (and repeated runs on one cluster) do not collide.
fn chosen_id(ctx: &Ctx, salt: i64) -> i64 {
    let mut h: i64 = 0x1234_5678;
    for b in ctx.prefix.bytes() {
        h = h.wrapping_mul(31).wrapping_add(i64::from(b));
    }
    ((h ^ salt) & 0x3fff_ffff_ffff_ffff).max(1)
}

async fn grant(ctx: &Ctx, ttl: i64) -> Result<i64, Failure> {
    let req = pb::LeaseGrantRequest { ttl, id: 0 };
    Ok(ok(&req, ctx.client.lease_grant(req).await)?.id)
}

async fn put_leased(ctx: &Ctx, key: &str, lease: i64) -> Result<i64, Failure> {
    let req = pb::PutRequest {
        key: ctx.key(key),
        value: b"v".to_vec(),
        lease,
        ..Default::default()
    };
    Ok(rev(
        &ok(&req, ctx.client.put_request(req.clone()).await)?.header
    ))
}

async fn revoke(ctx: &Ctx, id: i64) -> Result<(), Failure> {
    let req = pb::LeaseRevokeRequest { id };
    ok(&req, ctx.client.lease_revoke(req).await).map(|_| ())
}

pub fn cases() -> Vec<Case> {
    vec![
        case("lease.grant.ttl_and_id", "LeaseGrant returns a non-zero id and the requested TTL.", doc::API, |ctx| async move {
            let req = pb::LeaseGrantRequest { ttl: 30, id: 0 };
            let r = ok(&req, ctx.client.lease_grant(req).await)?;
            let _ = revoke(&ctx, r.id).await;
            ensure(&req, r.id != 0 && r.ttl == 30 && r.error.is_empty(), "id != 0, TTL 30, no error", r)
        }).kubernetes(),
        case("lease.grant.chosen_id", "A client-chosen lease id is used as given.", doc::API, |ctx| async move {
            let id = chosen_id(&ctx, 1);
            let req = pb::LeaseGrantRequest { ttl: 30, id };
            let r = ok(&req, ctx.client.lease_grant(req).await)?;
            let _ = revoke(&ctx, id).await;
            eq(&req, "id", id, r.id)
        }),
        case("lease.grant.duplicate_id", "Granting an id that is already a lease fails with 'lease already exists'.", doc::ERRORS, |ctx| async move {
            let id = chosen_id(&ctx, 2);
            let req = pb::LeaseGrantRequest { ttl: 30, id };
            ok(&req, ctx.client.lease_grant(req).await)?;
            let r = err_is(&req, ctx.client.lease_grant(req).await, E::LEASE_EXIST);
            let _ = revoke(&ctx, id).await;
            r
        }),
        case("lease.grant.ttl_too_large", "A TTL above 9,000,000,000 s fails with 'too large lease TTL'.", doc::ERRORS, |ctx| async move {
            let req = pb::LeaseGrantRequest { ttl: MAX_LEASE_TTL + 1, id: 0 };
            err_is(&req, ctx.client.lease_grant(req).await, E::LEASE_TTL_TOO_LARGE)
        }),
        case("lease.grant.ttl_max_accepted", "A TTL of exactly 9,000,000,000 s is accepted.", doc::LIMITS, |ctx| async move {
            let req = pb::LeaseGrantRequest { ttl: MAX_LEASE_TTL, id: 0 };
            let r = ok(&req, ctx.client.lease_grant(req).await)?;
            let _ = revoke(&ctx, r.id).await;
            eq(&req, "ttl", MAX_LEASE_TTL, r.ttl)
        }),
        case("lease.grant.ttl_zero_raised", "A TTL below the minimum (here 0) is raised to the server's minimum TTL, at least 1 s.", doc::API, |ctx| async move {
            let req = pb::LeaseGrantRequest { ttl: 0, id: 0 };
            let r = ok(&req, ctx.client.lease_grant(req).await)?;
            let _ = revoke(&ctx, r.id).await;
            ensure(&req, r.ttl >= 1, "TTL >= 1", r.ttl)
        }),
        case("lease.grant.ids_unique", "Leases granted without an id get distinct ids.", doc::API, |ctx| async move {
            let mut ids = Vec::new();
            for _ in 0..10 {
                ids.push(grant(&ctx, 30).await?);
            }
            for id in &ids {
                let _ = revoke(&ctx, *id).await;
            }
            let mut d = ids.clone();
            d.sort_unstable();
            d.dedup();
            eq(&"10 grants", "distinct ids", 10, d.len())
        }),
        case("lease.revoke.deletes_keys", "Revoking a lease deletes every key attached to it.", doc::API, |ctx| async move {
            let id = grant(&ctx, 60).await?;
            put_leased(&ctx, "a", id).await?;
            put_leased(&ctx, "b", id).await?;
            put(&ctx, "c", "free").await?;
            revoke(&ctx, id).await?;
            let (_, left) = super::range(&ctx, |_| {}).await?;
            eq(&"put a, b with lease, c without; revoke", "keys left", vec!["c".to_string()], super::names(&ctx, &left.kvs))
        }),
        case("lease.revoke.one_revision", "A revoke deletes all its keys in one revision: one delete event each, all at the same revision.", doc::GUARANTEES, |ctx| async move {
            let id = grant(&ctx, 60).await?;
            put_leased(&ctx, "a", id).await?;
            put_leased(&ctx, "b", id).await?;
            let create = pb::WatchCreateRequest { key: ctx.prefix.clone().into_bytes(), range_end: ctx.prefix_end(), ..Default::default() };
            let (mut ws, _) = ok(&create, ctx.client.watch(create.clone()).await)?;
            revoke(&ctx, id).await?;
            let mut evs = Vec::new();
            for _ in 0..10 {
                if evs.len() >= 2 { break; }
                let r = ok(&"watch", ws.recv(EVENT_WAIT).await)?;
                evs.extend(r.events);
            }
            let kinds: Vec<(i32, i64)> = evs.iter().map(|e| (e.r#type, e.kv.as_ref().map(|k| k.mod_revision).unwrap_or_default())).collect();
            let r0 = kinds.first().map(|k| k.1).unwrap_or_default();
            eq(&"2 keys on a lease; watch; revoke", "events", vec![(EventType::Delete as i32, r0); 2], kinds)
        }),
        case("lease.revoke.unknown", "Revoking a lease that does not exist fails with 'requested lease not found'.", doc::ERRORS, |ctx| async move {
            let req = pb::LeaseRevokeRequest { id: chosen_id(&ctx, 3) };
            err_is(&req, ctx.client.lease_revoke(req).await, E::LEASE_NOT_FOUND)
        }),
        case("lease.revoke.twice", "A second revoke of the same lease fails with 'requested lease not found'.", doc::ERRORS, |ctx| async move {
            let id = grant(&ctx, 60).await?;
            revoke(&ctx, id).await?;
            let req = pb::LeaseRevokeRequest { id };
            err_is(&req, ctx.client.lease_revoke(req).await, E::LEASE_NOT_FOUND)
        }),
        case("lease.revoke.put_after_fails", "A put with a revoked lease fails with 'requested lease not found'.", doc::ERRORS, |ctx| async move {
            let id = grant(&ctx, 60).await?;
            revoke(&ctx, id).await?;
            let req = pb::PutRequest { key: ctx.key("k"), value: b"v".to_vec(), lease: id, ..Default::default() };
            err_is(&req, ctx.client.put_request(req.clone()).await, E::LEASE_NOT_FOUND)
        }),
        case("lease.ttl.granted_and_remaining", "TimeToLive reports the granted TTL and a remaining TTL not above it.", doc::API, |ctx| async move {
            let id = grant(&ctx, 60).await?;
            let req = pb::LeaseTimeToLiveRequest { id, keys: false };
            let r = ok(&req, ctx.client.lease_time_to_live(req).await)?;
            let _ = revoke(&ctx, id).await;
            ensure(&req, r.id == id && r.granted_ttl == 60 && r.ttl > 0 && r.ttl <= 60, "id, granted_ttl 60, 0 < ttl <= 60", r)
        }),
        case("lease.ttl.keys", "TimeToLive with keys = true lists the attached keys.", doc::API, |ctx| async move {
            let id = grant(&ctx, 60).await?;
            put_leased(&ctx, "a", id).await?;
            put_leased(&ctx, "b", id).await?;
            let req = pb::LeaseTimeToLiveRequest { id, keys: true };
            let r = ok(&req, ctx.client.lease_time_to_live(req).await)?;
            let _ = revoke(&ctx, id).await;
            let mut keys = r.keys.clone();
            keys.sort();
            eq(&req, "keys", vec![ctx.key("a"), ctx.key("b")], keys)
        }),
        case("lease.ttl.no_keys_by_default", "TimeToLive without keys lists none.", doc::API, |ctx| async move {
            let id = grant(&ctx, 60).await?;
            put_leased(&ctx, "a", id).await?;
            let req = pb::LeaseTimeToLiveRequest { id, keys: false };
            let r = ok(&req, ctx.client.lease_time_to_live(req).await)?;
            let _ = revoke(&ctx, id).await;
            eq(&req, "keys", 0, r.keys.len())
        }),
        case("lease.ttl.unknown_minus_one", "TimeToLive of an unknown lease answers TTL -1.", doc::API, |ctx| async move {
            let req = pb::LeaseTimeToLiveRequest { id: chosen_id(&ctx, 4), keys: false };
            let r = ok(&req, ctx.client.lease_time_to_live(req).await)?;
            eq(&req, "ttl", -1, r.ttl)
        }),
        case("lease.ttl.revoked_minus_one", "TimeToLive of a revoked lease answers TTL -1.", doc::API, |ctx| async move {
            let id = grant(&ctx, 60).await?;
            revoke(&ctx, id).await?;
            let req = pb::LeaseTimeToLiveRequest { id, keys: true };
            let r = ok(&req, ctx.client.lease_time_to_live(req).await)?;
            eq(&req, "ttl", -1, r.ttl)
        }),
        case("lease.keepalive.refreshes", "A keep-alive answers the lease id and its full TTL.", doc::API, |ctx| async move {
            let id = grant(&ctx, 30).await?;
            let (_, r) = ok(&"keep-alive", ctx.client.lease_keep_alive(id).await)?;
            let _ = revoke(&ctx, id).await;
            eq(&"keep-alive", "(id, ttl)", (id, 30), (r.id, r.ttl))
        }),
        case("lease.keepalive.unknown_ttl_zero", "A keep-alive of an unknown lease answers TTL 0.", doc::API, |ctx| async move {
            let id = chosen_id(&ctx, 5);
            let (_, r) = ok(&"keep-alive", ctx.client.lease_keep_alive(id).await)?;
            eq(&"keep-alive unknown lease", "ttl", 0, r.ttl)
        }),
        case("lease.keepalive.repeated", "Several keep-alives on one stream are each answered.", doc::API, |ctx| async move {
            let id = grant(&ctx, 30).await?;
            let (mut k, _) = ok(&"keep-alive", ctx.client.lease_keep_alive(id).await)?;
            let mut ttls = Vec::new();
            for _ in 0..3 {
                ttls.push(ok(&"keep-alive", k.keep_alive().await)?.ttl);
            }
            let _ = revoke(&ctx, id).await;
            eq(&"3 keep-alives", "ttls", vec![30, 30, 30], ttls)
        }),
        case("lease.keepalive.extends_life", "Keep-alives keep a short lease and its keys alive past their TTL.", doc::API, |ctx| async move {
            // TTL 4 s renewed every 0.5 s for 6 s: a renewal may be late by 3 s (a loaded
            // machine, a forward to the leader) before the lease could expire.
            let id = grant(&ctx, 4).await?;
            put_leased(&ctx, "k", id).await?;
            let (mut k, _) = ok(&"keep-alive", ctx.client.lease_keep_alive(id).await)?;
            for _ in 0..12 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                ok(&"keep-alive", k.keep_alive().await)?;
            }
            let got = ok(&"range k", ctx.client.get(ctx.key("k")).await)?;
            let _ = revoke(&ctx, id).await;
            eq(&"TTL 4 lease kept alive for 6 s", "count", 1, got.count)
        }),
        case("lease.keepalive.revoked_ttl_zero", "A keep-alive of a revoked lease answers TTL 0.", doc::API, |ctx| async move {
            let id = grant(&ctx, 30).await?;
            let (mut k, _) = ok(&"keep-alive", ctx.client.lease_keep_alive(id).await)?;
            revoke(&ctx, id).await?;
            let r = ok(&"keep-alive after revoke", k.keep_alive().await)?;
            eq(&"keep-alive after revoke", "ttl", 0, r.ttl)
        }),
        case("lease.leases.lists_granted", "LeaseLeases lists a granted lease.", doc::API, |ctx| async move {
            let id = grant(&ctx, 30).await?;
            let r = ok(&"leases", ctx.client.lease_leases(pb::LeaseLeasesRequest {}).await)?;
            let _ = revoke(&ctx, id).await;
            ensure(&"grant; leases", r.leases.iter().any(|l| l.id == id), format!("lease {id:x} listed"), r.leases.len())
        }),
        case("lease.leases.omits_revoked", "LeaseLeases no longer lists a revoked lease.", doc::API, |ctx| async move {
            let id = grant(&ctx, 30).await?;
            revoke(&ctx, id).await?;
            let r = ok(&"leases", ctx.client.lease_leases(pb::LeaseLeasesRequest {}).await)?;
            ensure(&"grant; revoke; leases", !r.leases.iter().any(|l| l.id == id), format!("lease {id:x} not listed"), r.leases.len())
        }),
        case("lease.expiry.deletes_keys", "When a lease expires, its keys are deleted.", doc::API, |ctx| async move {
            let id = grant(&ctx, 1).await?;
            put_leased(&ctx, "k", id).await?;
            let mut count = 1;
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(250)).await;
                count = ok(&"range k", ctx.client.get(ctx.key("k")).await)?.count;
                if count == 0 { break; }
            }
            eq(&"put k with a 1 s lease; wait up to 10 s", "count", 0, count)
        }),
        case("lease.expiry.emits_delete_event", "A lease expiry emits a DELETE event for each attached key.", doc::API, |ctx| async move {
            let id = grant(&ctx, 1).await?;
            put_leased(&ctx, "k", id).await?;
            let create = pb::WatchCreateRequest { key: ctx.key("k"), ..Default::default() };
            let (mut ws, _) = ok(&create, ctx.client.watch(create.clone()).await)?;
            let r = ok(&"watch", ws.wait_for(|r| !r.events.is_empty()).await);
            let r = match r { Ok(r) => r, Err(_) => ok(&"watch (second wait)", ws.wait_for(|r| !r.events.is_empty()).await)? };
            eq(&"put k with a 1 s lease; watch k", "event type", EventType::Delete as i32, r.events[0].r#type)
        }),
        case("lease.expiry.ttl_minus_one", "After expiry, TimeToLive answers TTL -1.", doc::API, |ctx| async move {
            let id = grant(&ctx, 1).await?;
            let mut ttl = 0;
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(250)).await;
                ttl = ok(&"ttl", ctx.client.lease_time_to_live(pb::LeaseTimeToLiveRequest { id, keys: false }).await)?.ttl;
                if ttl == -1 { break; }
            }
            eq(&"grant TTL 1; wait up to 10 s; time-to-live", "ttl", -1, ttl)
        }),
        case("lease.expiry.free_keys_untouched", "A lease expiry leaves keys without that lease alone.", doc::API, |ctx| async move {
            let id = grant(&ctx, 1).await?;
            put_leased(&ctx, "leased", id).await?;
            put(&ctx, "free", "v").await?;
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if ok(&"range", ctx.client.get(ctx.key("leased")).await)?.count == 0 { break; }
            }
            let (_, left) = super::range(&ctx, |_| {}).await?;
            eq(&"lease expiry", "keys left", vec!["free".to_string()], super::names(&ctx, &left.kvs))
        }),
        case("lease.ttl.decreases", "The remaining TTL decreases with time.", doc::API, |ctx| async move {
            let id = grant(&ctx, 30).await?;
            tokio::time::sleep(Duration::from_millis(2100)).await;
            let req = pb::LeaseTimeToLiveRequest { id, keys: false };
            let r = ok(&req, ctx.client.lease_time_to_live(req).await)?;
            let _ = revoke(&ctx, id).await;
            ensure(&req, r.ttl < 30 && r.ttl >= 25, "25 <= ttl < 30 after 2 s", r.ttl)
        }),
        case("lease.keepalive.resets_ttl", "A keep-alive resets the remaining TTL to the granted TTL.", doc::API, |ctx| async move {
            let id = grant(&ctx, 30).await?;
            tokio::time::sleep(Duration::from_millis(2100)).await;
            let (_, _) = ok(&"keep-alive", ctx.client.lease_keep_alive(id).await)?;
            let req = pb::LeaseTimeToLiveRequest { id, keys: false };
            let r = ok(&req, ctx.client.lease_time_to_live(req).await)?;
            let _ = revoke(&ctx, id).await;
            ensure(&req, r.ttl >= 29, "ttl >= 29 right after a keep-alive", r.ttl)
        }),
        case("lease.put.attaches", "A put with a lease attaches the key: the range shows the lease id.", doc::API, |ctx| async move {
            let id = grant(&ctx, 30).await?;
            put_leased(&ctx, "k", id).await?;
            let got = ok(&"range k", ctx.client.get(ctx.key("k")).await)?;
            let _ = revoke(&ctx, id).await;
            eq(&"put k with lease", "lease", id, got.kvs.first().map(|k| k.lease).unwrap_or_default())
        }).kubernetes(),
        case("lease.ttl.other_member", "A lease granted through one member is visible through every member.", doc::API, |ctx| async move {
            let req = pb::LeaseGrantRequest { ttl: 30, id: 0 };
            let g = ok(&req, ctx.members[0].lease_grant(req).await)?;
            for (i, m) in ctx.members.iter().enumerate() {
                let q = pb::LeaseTimeToLiveRequest { id: g.id, keys: false };
                let r = ok(&q, m.lease_time_to_live(q).await)?;
                ensure(&format!("time-to-live on member {i}"), r.ttl > 0, "ttl > 0", r.ttl)?;
            }
            revoke(&ctx, g.id).await
        }).needs(Needs::Members(3)),
        case("lease.revoke.other_member", "A lease revoked through one member is gone on every member.", doc::API, |ctx| async move {
            let req = pb::LeaseGrantRequest { ttl: 30, id: 0 };
            let g = ok(&req, ctx.members[0].lease_grant(req).await)?;
            let rv = pb::LeaseRevokeRequest { id: g.id };
            let n = ctx.members.len();
            ok(&rv, ctx.members[n - 1].lease_revoke(rv).await)?;
            let q = pb::LeaseTimeToLiveRequest { id: g.id, keys: false };
            let r = ok(&q, ctx.members[0].lease_time_to_live(q).await)?;
            eq(&"grant on member 0, revoke on the last, time-to-live on member 0", "ttl", -1, r.ttl)
        }).needs(Needs::Members(3)),
    ]
}
