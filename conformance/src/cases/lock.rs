//! Lock (v3lockpb): a lock is a key under the lock name, owned through a lease.

use std::time::Duration;

use gauntlet_api::etcdserverpb as pb;
use gauntlet_api::v3lockpb::{LockRequest, UnlockRequest};

use super::{doc, rev};
use crate::case::{case, ensure, eq, ok, Case, Ctx, Failure};

async fn lease(ctx: &Ctx, ttl: i64) -> Result<i64, Failure> {
    let req = pb::LeaseGrantRequest { ttl, id: 0 };
    Ok(ok(&req, ctx.client.lease_grant(req).await)?.id)
}

async fn lock(
    ctx: &Ctx,
    name: &str,
    lease: i64,
) -> Result<(LockRequest, gauntlet_api::v3lockpb::LockResponse), Failure> {
    let req = LockRequest {
        name: ctx.key(name),
        lease,
    };
    let r = ok(&req, ctx.client.lock(req.clone()).await)?;
    Ok((req, r))
}

pub fn cases() -> Vec<Case> {
    vec![
        case("lock.lock.key_under_name", "Lock returns an ownership key that starts with the lock name.", doc::CONCURRENCY, |ctx| async move {
            let l = lease(&ctx, 30).await?;
            let (req, r) = lock(&ctx, "m", l).await?;
            ensure(&req, r.key.starts_with(&ctx.key("m")) && r.key.len() > ctx.key("m").len(), "a key under the name", crate::case::show(&r.key))
        }),
        case("lock.lock.key_exists_with_lease", "The ownership key exists in the KV store, attached to the lock's lease.", doc::CONCURRENCY, |ctx| async move {
            let l = lease(&ctx, 30).await?;
            let (req, r) = lock(&ctx, "m", l).await?;
            let got = ok(&req, ctx.client.get(r.key.clone()).await)?;
            eq(&req, "(count, lease)", (1, l), (got.count, got.kvs.first().map(|k| k.lease).unwrap_or_default()))
        }),
        case("lock.lock.header_revision", "Lock's header revision is at least the ownership key's creation revision.", doc::CONCURRENCY, |ctx| async move {
            let l = lease(&ctx, 30).await?;
            let (req, r) = lock(&ctx, "m", l).await?;
            let got = ok(&req, ctx.client.get(r.key.clone()).await)?;
            let created = got.kvs.first().map(|k| k.create_revision).unwrap_or_default();
            ensure(&req, rev(&r.header) >= created && created > 0, format!("header revision >= {created}"), rev(&r.header))
        }),
        case("lock.unlock.deletes_key", "Unlock deletes the ownership key.", doc::CONCURRENCY, |ctx| async move {
            let l = lease(&ctx, 30).await?;
            let (_, r) = lock(&ctx, "m", l).await?;
            let req = UnlockRequest { key: r.key.clone() };
            ok(&req, ctx.client.unlock(req.clone()).await)?;
            let got = ok(&req, ctx.client.get(r.key).await)?;
            eq(&req, "count", 0, got.count)
        }),
        case("lock.lock.exclusive", "A second Lock on a held name waits until the holder unlocks.", doc::CONCURRENCY, |ctx| async move {
            let (l1, l2) = (lease(&ctx, 30).await?, lease(&ctx, 30).await?);
            let (_, first) = lock(&ctx, "m", l1).await?;
            let c = ctx.client.clone();
            let req2 = LockRequest { name: ctx.key("m"), lease: l2 };
            let waiter = tokio::spawn(async move { c.lock(req2).await });
            tokio::time::sleep(Duration::from_millis(500)).await;
            ensure(&"lock m twice", !waiter.is_finished(), "the second Lock still waiting", "it returned")?;
            ok(&"unlock", ctx.client.unlock(UnlockRequest { key: first.key }).await)?;
            let second = match tokio::time::timeout(Duration::from_secs(5), waiter).await {
                Ok(Ok(r)) => ok(&"second lock", r)?,
                _ => return Err(crate::case::failure(&"lock m; lock m; unlock first", "the second Lock returns", "no answer in 5 s")),
            };
            ensure(&"second lock", second.key.starts_with(&ctx.key("m")), "an ownership key", crate::case::show(&second.key))
        }),
        case("lock.lock.released_by_lease_revoke", "Revoking the holder's lease releases the lock to the next waiter.", doc::CONCURRENCY, |ctx| async move {
            let (l1, l2) = (lease(&ctx, 30).await?, lease(&ctx, 30).await?);
            lock(&ctx, "m", l1).await?;
            let c = ctx.client.clone();
            let req2 = LockRequest { name: ctx.key("m"), lease: l2 };
            let waiter = tokio::spawn(async move { c.lock(req2).await });
            tokio::time::sleep(Duration::from_millis(300)).await;
            ok(&"revoke", ctx.client.lease_revoke(pb::LeaseRevokeRequest { id: l1 }).await)?;
            match tokio::time::timeout(Duration::from_secs(5), waiter).await {
                Ok(Ok(r)) => ok(&"second lock", r).map(|_| ()),
                _ => Err(crate::case::failure(&"lock m; lock m; revoke first lease", "the second Lock returns", "no answer in 5 s")),
            }
        }),
        case("lock.lock.distinct_names_independent", "Locks on different names do not block each other.", doc::CONCURRENCY, |ctx| async move {
            let l = lease(&ctx, 30).await?;
            lock(&ctx, "a", l).await?;
            lock(&ctx, "b", l).await.map(|_| ())
        }),
        case("lock.lock.unknown_lease_fails", "Lock with a lease that does not exist fails with 'requested lease not found' (sent with code Unknown: the lock service passes its inner client's error on as a plain error).", doc::CONCURRENCY, |ctx| async move {
            let req = LockRequest { name: ctx.key("m"), lease: 0x7ead_beef_7777 };
            let want = gauntlet_api::rpctypes::EtcdError { code: tonic::Code::Unknown, message: gauntlet_api::rpctypes::LEASE_NOT_FOUND.message };
            crate::case::err_is(&req, ctx.client.lock(req.clone()).await, want)
        }),
        case("lock.unlock.unknown_key_ok", "Unlocking a key that does not exist succeeds (it is a delete).", doc::CONCURRENCY, |ctx| async move {
            let req = UnlockRequest { key: ctx.key("m/none") };
            ok(&req, ctx.client.unlock(req.clone()).await).map(|_| ())
        }),
        case("lock.lock.fifo_order", "Waiters acquire the lock in the order they asked (by ownership key revision).", doc::CONCURRENCY, |ctx| async move {
            let ls = [lease(&ctx, 30).await?, lease(&ctx, 30).await?, lease(&ctx, 30).await?];
            let (_, first) = lock(&ctx, "m", ls[0]).await?;
            let c1 = ctx.client.clone();
            let n1 = ctx.key("m");
            let w1 = tokio::spawn(async move { c1.lock(LockRequest { name: n1, lease: ls[1] }).await });
            tokio::time::sleep(Duration::from_millis(300)).await;
            let c2 = ctx.client.clone();
            let n2 = ctx.key("m");
            let w2 = tokio::spawn(async move { c2.lock(LockRequest { name: n2, lease: ls[2] }).await });
            tokio::time::sleep(Duration::from_millis(300)).await;
            ok(&"unlock first", ctx.client.unlock(UnlockRequest { key: first.key }).await)?;
            let got1 = tokio::time::timeout(Duration::from_secs(5), w1).await;
            let second_done = w2.is_finished();
            let ok1 = matches!(got1, Ok(Ok(Ok(_))));
            let _ = ctx.client.lease_revoke(pb::LeaseRevokeRequest { id: ls[1] }).await;
            ensure(&"lock m by 3 clients in turn; unlock the first", ok1 && !second_done, "the second asker gets it, the third still waits", (ok1, second_done))
        }),
    ]
}
