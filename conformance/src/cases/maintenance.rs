//! Maintenance: Status fields, Hash/HashKV agreement, Defragment, Alarm, Snapshot,
//! MoveLeader.

use std::time::Duration;

use gauntlet_api::etcdserverpb::{
    self as pb, alarm_request::AlarmAction, downgrade_request::DowngradeAction, AlarmType,
};
use gauntlet_api::rpctypes as E;
use sha2::{Digest, Sha256};

use super::{doc, put, rev};
use crate::case::{
    case, ensure, eq, err_is, failure, ok, Case, Ctx, Failure, Needs, Version, Versions,
};

/// Largest snapshot a case accepts.
const SNAPSHOT_MAX_BYTES: usize = 256 << 20;
/// Deadline of a whole snapshot transfer.
const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(20);

async fn status(c: &gauntlet_harness::Client) -> Result<pb::StatusResponse, Failure> {
    ok(&pb::StatusRequest {}, c.status(pb::StatusRequest {}).await)
}

/// Status from each member, in member order.
async fn statuses(ctx: &Ctx) -> Result<Vec<pb::StatusResponse>, Failure> {
    let mut out = Vec::with_capacity(ctx.members.len());
    for m in &ctx.members {
        out.push(status(m).await?);
    }
    Ok(out)
}

async fn member_id(c: &gauntlet_harness::Client) -> Result<u64, Failure> {
    Ok(status(c).await?.header.unwrap_or_default().member_id)
}

/// Activates the NOSPACE alarm for the member `c` talks to; returns its id and the
/// request (for a matching deactivation).
async fn activate_nospace(
    c: &gauntlet_harness::Client,
) -> Result<(u64, pb::AlarmRequest), Failure> {
    let id = member_id(c).await?;
    let act = pb::AlarmRequest {
        action: AlarmAction::Activate as i32,
        member_id: id,
        alarm: AlarmType::Nospace as i32,
    };
    ok(&act, c.alarm(act).await)?;
    Ok((id, act))
}

/// Index into `ctx.members` of the leader.
async fn leader_index(ctx: &Ctx) -> Result<(usize, Vec<u64>), Failure> {
    let all = statuses(ctx).await?;
    let ids: Vec<u64> = all
        .iter()
        .map(|s| s.header.unwrap_or_default().member_id)
        .collect();
    let leader = all.last().map_or(0, |s| s.leader);
    let i = ids.iter().position(|id| *id == leader).ok_or_else(|| {
        failure(
            &"status on each member",
            "a leader among the members",
            format!("{leader:x} not in {ids:x?}"),
        )
    })?;
    Ok((i, ids))
}

pub fn cases() -> Vec<Case> {
    let mut v = status_cases();
    v.extend(hash_cases());
    v.extend(other_cases());
    v.extend(downgrade_cases());
    v.extend(space_cases());
    v
}

fn status_cases() -> Vec<Case> {
    vec![
        case(
            "maintenance.status.version",
            "Status reports the server version as major.minor.patch.",
            doc::API,
            |ctx| async move {
                let s = status(&ctx.client).await?;
                ensure(
                    &"status",
                    Version::parse(&s.version).is_some(),
                    "a version like 3.5.1",
                    s.version,
                )
            },
        )
        .kubernetes(),
        case(
            "maintenance.status.db_size",
            "Status reports a non-zero database size.",
            doc::MAINTENANCE,
            |ctx| async move {
                let s = status(&ctx.client).await?;
                ensure(&"status", s.db_size > 0, "db_size > 0", s.db_size)
            },
        ),
        case(
            "maintenance.status.leader_known",
            "Status names a leader that is a cluster member.",
            doc::API,
            |ctx| async move {
                let s = status(&ctx.client).await?;
                let ms = ok(
                    &"member list",
                    ctx.client
                        .member_list(pb::MemberListRequest::default())
                        .await,
                )?
                .members;
                ensure(
                    &"status; member list",
                    ms.iter().any(|m| m.id == s.leader),
                    "leader in the member list",
                    s.leader,
                )
            },
        ),
        case(
            "maintenance.status.raft_index_term",
            "Status reports a raft index and term above zero, and the term equals the header's.",
            doc::API,
            |ctx| async move {
                let s = status(&ctx.client).await?;
                let ht = s.header.as_ref().map(|h| h.raft_term).unwrap_or_default();
                ensure(
                    &"status",
                    s.raft_index > 0 && s.raft_term > 0 && s.raft_term == ht,
                    "raft_index > 0, raft_term > 0 = header raft_term",
                    (s.raft_index, s.raft_term, ht),
                )
            },
        ),
        case(
            "maintenance.status.applied_index",
            "Status reports a raft applied index above zero.",
            doc::GRPC,
            |ctx| async move {
                let s = status(&ctx.client).await?;
                ensure(
                    &"status",
                    s.raft_applied_index > 0,
                    "raft_applied_index > 0",
                    s.raft_applied_index,
                )
            },
        ),
        case(
            "maintenance.status.db_size_in_use",
            "Status reports db_size_in_use, above zero.",
            doc::GRPC,
            |ctx| async move {
                let s = status(&ctx.client).await?;
                ensure(
                    &"status",
                    s.db_size_in_use > 0,
                    "db_size_in_use > 0",
                    s.db_size_in_use,
                )
            },
        ),
        case(
            "maintenance.status.not_learner",
            "A voting member's Status says is_learner = false.",
            doc::LEARNER,
            |ctx| async move {
                let s = status(&ctx.client).await?;
                eq(&"status", "is_learner", false, s.is_learner)
            },
        ),
        case(
            "maintenance.status.no_errors",
            "A healthy member's Status lists no errors.",
            doc::GRPC,
            |ctx| async move {
                let s = status(&ctx.client).await?;
                eq(&"status", "errors", Vec::<String>::new(), s.errors)
            },
        ),
        case(
            "maintenance.status.header_revision",
            "Status's header revision is the store revision, at least the last write's.",
            doc::API,
            |ctx| async move {
                let r = put(&ctx, "k", "v").await?;
                let s = status(&ctx.client).await?;
                ensure(
                    &"put k; status",
                    rev(&s.header) >= r,
                    format!("header revision >= {r}"),
                    rev(&s.header),
                )
            },
        ),
        case(
            "maintenance.status.raft_index_grows",
            "A write advances the raft index.",
            doc::API,
            |ctx| async move {
                let a = status(&ctx.members[0]).await?.raft_index;
                let req = pb::PutRequest {
                    key: ctx.key("k"),
                    value: b"v".to_vec(),
                    ..Default::default()
                };
                ok(&req, ctx.members[0].put_request(req.clone()).await)?;
                let b = status(&ctx.members[0]).await?.raft_index;
                ensure(
                    &"status; put; status",
                    b > a,
                    format!("raft_index > {a}"),
                    b,
                )
            },
        ),
        case(
            "maintenance.status.leader_agreed",
            "Every member names the same leader.",
            doc::API,
            |ctx| async move {
                let ls: Vec<u64> = statuses(&ctx).await?.iter().map(|s| s.leader).collect();
                ensure(
                    &"status on each member",
                    ls.iter().all(|l| *l == ls[0] && *l != 0),
                    "one leader",
                    ls,
                )
            },
        )
        .needs(Needs::Members(3)),
        case(
            "maintenance.status.same_version",
            "Every member of a cluster of one server version reports the same version.",
            doc::API,
            |ctx| async move {
                let vs: Vec<String> = statuses(&ctx)
                    .await?
                    .into_iter()
                    .map(|s| s.version)
                    .collect();
                ensure(
                    &"status on each member",
                    vs.iter().all(|v| *v == vs[0]),
                    "one version",
                    vs,
                )
            },
        ),
        case(
            "maintenance.status.member_id_matches_header",
            "Each member's Status header carries its own member id, distinct per member.",
            doc::API,
            |ctx| async move {
                let mut ids = Vec::new();
                for m in &ctx.members {
                    ids.push(member_id(m).await?);
                }
                let mut d = ids.clone();
                d.sort_unstable();
                d.dedup();
                eq(
                    &"status on each member",
                    "distinct member ids",
                    ids.len(),
                    d.len(),
                )
            },
        ),
    ]
}

fn hash_cases() -> Vec<Case> {
    vec![
        case("maintenance.hash.nonzero", "Hash returns a hash of the backend.", doc::GRPC, |ctx| async move {
            let r = ok(&pb::HashRequest {}, ctx.client.hash(pb::HashRequest {}).await)?;
            ensure(&pb::HashRequest {}, r.hash != 0, "hash != 0", r.hash)
        }),
        case("maintenance.hashkv.nonzero", "HashKV at revision 0 (latest) returns a hash and the revision hashed in the header.", doc::GRPC, |ctx| async move {
            let req = pb::HashKvRequest { revision: 0 };
            let r = ok(&req, ctx.client.hash_kv(req).await)?;
            ensure(&req, r.hash != 0 && rev(&r.header) > 0, "hash != 0, header revision > 0", r)
        }),
        case("maintenance.hashkv.stable", "HashKV at a fixed past revision returns the same hash every time.", doc::GRPC, |ctx| async move {
            let r = put(&ctx, "k", "v").await?;
            let m = &ctx.members[0];
            ok(&"range", m.get(ctx.key("k")).await)?;
            let req = pb::HashKvRequest { revision: r };
            let a = ok(&req, m.hash_kv(req).await)?.hash;
            put(&ctx, "k", "w").await?;
            let b = ok(&req, m.hash_kv(req).await)?.hash;
            eq(&req, "hash, asked twice around a write", a, b)
        }),
        case("maintenance.hashkv.changes_with_revision", "HashKV of two revisions with a write between them differs.", doc::GRPC, |ctx| async move {
            let r1 = put(&ctx, "k", "v1").await?;
            let r2 = put(&ctx, "k", "v2").await?;
            let m = &ctx.members[0];
            ok(&"range", m.get(ctx.key("k")).await)?;
            let a = ok(&"hashkv r1", m.hash_kv(pb::HashKvRequest { revision: r1 }).await)?.hash;
            let b = ok(&"hashkv r2", m.hash_kv(pb::HashKvRequest { revision: r2 }).await)?.hash;
            ensure(&format!("HashKV at {r1} and {r2}"), a != b, "different hashes", (a, b))
        }),
        case("maintenance.hashkv.members_agree", "All members return the same HashKV for the same revision.", doc::MAINTENANCE, |ctx| async move {
            let r = put(&ctx, "k", "v").await?;
            let mut hs = Vec::new();
            for m in &ctx.members {
                ok(&"range", m.get(ctx.key("k")).await)?;
                hs.push(ok(&"hashkv", m.hash_kv(pb::HashKvRequest { revision: r }).await)?.hash);
            }
            ensure(&format!("HashKV at {r} on each member"), hs.iter().all(|h| *h == hs[0]), "one hash", hs)
        }).needs(Needs::Members(3)),
        case("maintenance.hashkv.future_revision", "HashKV at a future revision fails with 'required revision is a future revision'.", doc::ERRORS, |ctx| async move {
            let r = put(&ctx, "k", "v").await?;
            let req = pb::HashKvRequest { revision: r + 1_000_000 };
            err_is(&req, ctx.client.hash_kv(req).await, E::FUTURE_REV)
        }),
        case("maintenance.hashkv.compacted_revision", "HashKV below the compacted revision fails with 'required revision has been compacted'.", doc::ERRORS, |ctx| async move {
            let r1 = put(&ctx, "k", "1").await?;
            let r2 = put(&ctx, "k", "2").await?;
            ok(&"compact", ctx.client.compact(pb::CompactionRequest { revision: r2, physical: true }).await)?;
            let req = pb::HashKvRequest { revision: r1 };
            err_is(&req, ctx.client.hash_kv(req).await, E::COMPACTED)
        }).needs(Needs::Fresh(1)),
        case("maintenance.hashkv.compact_revision_reported", "HashKV reports the last compaction revision.", doc::GRPC, |ctx| async move {
            put(&ctx, "k", "1").await?;
            let r2 = put(&ctx, "k", "2").await?;
            ok(&"compact", ctx.client.compact(pb::CompactionRequest { revision: r2, physical: true }).await)?;
            let req = pb::HashKvRequest { revision: 0 };
            let r = ok(&req, ctx.client.hash_kv(req).await)?;
            eq(&req, "compact_revision", r2, r.compact_revision)
        }).needs(Needs::Fresh(1)),
    ]
}

/// GET `/version` on an `http://` client endpoint: `(etcdserver, etcdcluster)`.
async fn http_version(endpoint: &str) -> Result<(String, String), Failure> {
    let url = format!("{}/version", endpoint.trim_end_matches('/'));
    let what = format!("GET {url}");
    if !url.starts_with("http://") {
        return Err(failure(
            &what,
            "an http:// client URL",
            "a TLS endpoint: run this case without TLS",
        ));
    }
    let fetched = tokio::task::spawn_blocking({
        let url = url.clone();
        move || -> Result<String, String> {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .into();
            agent
                .get(&url)
                .call()
                .map_err(|e| e.to_string())?
                .body_mut()
                .read_to_string()
                .map_err(|e| e.to_string())
        }
    })
    .await
    .map_err(|e| failure(&what, "an answer", e.to_string()))?
    .map_err(|e| failure(&what, "an answer", e))?;
    let v: serde_json::Value = serde_json::from_str(&fetched)
        .map_err(|e| failure(&what, "JSON", format!("{e}: {fetched}")))?;
    let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    Ok((field("etcdserver"), field("etcdcluster")))
}

/// Downgrade, retried while the cluster version is not decided yet (right after a
/// cluster starts, for a few seconds).
async fn downgrade(
    c: &gauntlet_harness::Client,
    action: DowngradeAction,
    version: &str,
) -> (
    pb::DowngradeRequest,
    Result<pb::DowngradeResponse, gauntlet_harness::ClientError>,
) {
    let req = pb::DowngradeRequest {
        action: action as i32,
        version: version.to_string(),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = c.downgrade(req.clone()).await;
        let undecided =
            matches!(&r, Err(e) if e.to_string().contains(E::CLUSTER_VERSION_UNAVAILABLE.message));
        if !undecided || tokio::time::Instant::now() >= deadline {
            return (req, r);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The minor below the server's (the only downgrade target etcd accepts).
fn one_minor_below(v: Version) -> String {
    format!("{}.{}", v.0, v.1.saturating_sub(1))
}

fn downgrade_cases() -> Vec<Case> {
    vec![
        case(
            "maintenance.version.endpoint",
            "GET /version on a client URL answers the server version (as Status reports it) and the cluster version (major.minor.0) once decided.",
            doc::MAINTENANCE,
            |ctx| async move {
                let s = status(&ctx.client).await?;
                let endpoint = ctx.config.endpoints.first().cloned().unwrap_or_default();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
                let (server, cluster) = loop {
                    let (server, cluster) = http_version(&endpoint).await?;
                    if cluster != "not_decided" || tokio::time::Instant::now() >= deadline {
                        break (server, cluster);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                };
                eq(&"GET /version", "etcdserver", s.version.clone(), server)?;
                let minor: Vec<&str> = s.version.split('.').take(2).collect();
                eq(
                    &"GET /version",
                    "etcdcluster",
                    format!("{}.0", minor.join(".")),
                    cluster,
                )
            },
        )
        // A member's own client URL: the HTTP endpoint is not part of the gRPC API a
        // proxy in front of a shared cluster forwards.
        .needs(Needs::Fresh(1)),
        case(
            "maintenance.downgrade.bad_version_format",
            "Downgrade with a version that is not major.minor[.patch] fails with 'wrong downgrade target version format'.",
            doc::ERRORS,
            |ctx| async move {
                let (req, r) = downgrade(&ctx.client, DowngradeAction::Validate, "three").await;
                err_is(&req, r, E::WRONG_DOWNGRADE_VERSION_FORMAT)
            },
        )
        .versions(Versions::SINCE_3_5),
        case(
            "maintenance.downgrade.not_one_minor_below",
            "Downgrade VALIDATE to anything but the minor just below the cluster version fails with 'invalid downgrade target version'.",
            doc::ERRORS,
            |ctx| async move {
                let v = ctx.version;
                let two_below = format!("{}.{}", v.0, v.1.saturating_sub(2));
                let (req, r) = downgrade(&ctx.client, DowngradeAction::Validate, &two_below).await;
                err_is(&req, r, E::INVALID_DOWNGRADE_TARGET_VERSION)?;
                let same = format!("{}.{}", v.0, v.1);
                let (req, r) = downgrade(&ctx.client, DowngradeAction::Validate, &same).await;
                err_is(&req, r, E::INVALID_DOWNGRADE_TARGET_VERSION)
            },
        )
        .versions(Versions::SINCE_3_5),
        case(
            "maintenance.downgrade.validate_ok",
            "Downgrade VALIDATE to the minor below succeeds, changes nothing, and answers the cluster version.",
            doc::MAINTENANCE,
            |ctx| async move {
                let target = one_minor_below(ctx.version);
                let (req, r) = downgrade(&ctx.client, DowngradeAction::Validate, &target).await;
                let r = ok(&req, r)?;
                eq(
                    &req,
                    "version",
                    format!("{}.{}.0", ctx.version.0, ctx.version.1),
                    r.version,
                )?;
                // Nothing enabled: a cancel finds no downgrade.
                let (req, r) = downgrade(&ctx.client, DowngradeAction::Cancel, "").await;
                err_is(&req, r, E::NO_INFLIGHT_DOWNGRADE)
            },
        )
        .versions(Versions::SINCE_3_5)
        .needs(Needs::Fresh(1)),
        case(
            "maintenance.downgrade.cancel_without_enable",
            "Downgrade CANCEL with no downgrade enabled fails with 'no inflight downgrade job'.",
            doc::ERRORS,
            |ctx| async move {
                let (req, r) = downgrade(&ctx.client, DowngradeAction::Cancel, "").await;
                err_is(&req, r, E::NO_INFLIGHT_DOWNGRADE)
            },
        )
        .versions(Versions::SINCE_3_5)
        .needs(Needs::Fresh(1)),
        case(
            "maintenance.downgrade.enable_then_cancel",
            "Downgrade ENABLE to the minor below succeeds; another VALIDATE then fails with 'cluster has a downgrade job in progress'; CANCEL ends it, and a second CANCEL finds none.",
            doc::MAINTENANCE,
            |ctx| async move {
                let target = one_minor_below(ctx.version);
                let (req, r) = downgrade(&ctx.client, DowngradeAction::Enable, &target).await;
                ok(&req, r)?;
                let (req, r) = downgrade(&ctx.client, DowngradeAction::Validate, &target).await;
                err_is(&req, r, E::DOWNGRADE_IN_PROCESS)?;
                let (req, r) = downgrade(&ctx.client, DowngradeAction::Cancel, "").await;
                ok(&req, r)?;
                let (req, r) = downgrade(&ctx.client, DowngradeAction::Cancel, "").await;
                err_is(&req, r, E::NO_INFLIGHT_DOWNGRADE)
            },
        )
        .versions(Versions::SINCE_3_5)
        .needs(Needs::Fresh(1)),
    ]
}

/// Bytes of each value the NOSPACE cycle writes.
const FILL_VALUE_BYTES: usize = 64 * 1024;
/// Most puts the NOSPACE cycle makes before giving up on reaching the quota.
const FILL_MAX_PUTS: usize = 400;

fn space_cases() -> Vec<Case> {
    vec![
        case(
            "maintenance.alarm.nospace_cycle",
            "Writing past --quota-backend-bytes raises NOSPACE and writes fail with 'database space exceeded'; deleting, compacting, defragmenting and disarming makes writes succeed again.",
            doc::MAINTENANCE,
            |ctx| async move {
                let value = vec![b'q'; FILL_VALUE_BYTES];
                let mut refused = None;
                for i in 0..FILL_MAX_PUTS {
                    let req = pb::PutRequest {
                        key: ctx.key(&format!("fill/{i:04}")),
                        value: value.clone(),
                        ..Default::default()
                    };
                    if let Err(e) = ctx.client.put_request(req.clone()).await {
                        refused = Some((req, e));
                        break;
                    }
                }
                let Some((req, e)) = refused else {
                    return Err(failure(
                        &"put 64 KiB values",
                        "'database space exceeded' before the quota's worth of puts",
                        format!("{FILL_MAX_PUTS} puts accepted"),
                    ));
                };
                err_is(&req, Err::<(), _>(e), E::NO_SPACE)?;
                let get = pb::AlarmRequest {
                    action: AlarmAction::Get as i32,
                    member_id: 0,
                    alarm: AlarmType::None as i32,
                };
                let alarms = ok(&get, ctx.client.alarm(get).await)?.alarms;
                ensure(
                    &get,
                    alarms.iter().any(|a| a.alarm == AlarmType::Nospace as i32),
                    "a NOSPACE alarm",
                    format!("{alarms:?}"),
                )?;
                let del = pb::DeleteRangeRequest {
                    key: ctx.key("fill/"),
                    range_end: gauntlet_api::prefix_range_end(&ctx.key("fill/")),
                    ..Default::default()
                };
                let d = ok(&del, ctx.client.delete_range(del.clone()).await)?;
                let at = d.header.unwrap_or_default().revision;
                let compact = pb::CompactionRequest { revision: at, physical: true };
                ok(&compact, ctx.client.compact(compact).await)?;
                ok(&pb::DefragmentRequest {}, ctx.client.defragment(pb::DefragmentRequest {}).await)?;
                for a in alarms {
                    let off = pb::AlarmRequest {
                        action: AlarmAction::Deactivate as i32,
                        member_id: a.member_id,
                        alarm: a.alarm,
                    };
                    ok(&off, ctx.client.alarm(off).await)?;
                }
                let again = pb::PutRequest {
                    key: ctx.key("after"),
                    value: b"v".to_vec(),
                    ..Default::default()
                };
                ok(&again, ctx.client.put_request(again.clone()).await)?;
                Ok(())
            },
        )
        .server_flags(&["--quota-backend-bytes=8388608"]),
        case(
            "maintenance.defragment.shrinks",
            "After deleting and compacting away most data, Defragment makes Status's db_size smaller.",
            doc::MAINTENANCE,
            |ctx| async move {
                let value = vec![b'd'; 16 * 1024];
                for i in 0..200 {
                    let req = pb::PutRequest {
                        key: ctx.key(&format!("big/{i:03}")),
                        value: value.clone(),
                        ..Default::default()
                    };
                    ok(&req, ctx.client.put_request(req.clone()).await)?;
                }
                let del = pb::DeleteRangeRequest {
                    key: ctx.key("big/"),
                    range_end: gauntlet_api::prefix_range_end(&ctx.key("big/")),
                    ..Default::default()
                };
                let d = ok(&del, ctx.client.delete_range(del.clone()).await)?;
                let at = d.header.unwrap_or_default().revision;
                let compact = pb::CompactionRequest { revision: at, physical: true };
                ok(&compact, ctx.client.compact(compact).await)?;
                // The reference server refreshes its size every half second.
                tokio::time::sleep(Duration::from_millis(600)).await;
                let before = status(&ctx.client).await?.db_size;
                ok(&pb::DefragmentRequest {}, ctx.client.defragment(pb::DefragmentRequest {}).await)?;
                let after = status(&ctx.client).await?.db_size;
                ensure(
                    &"put 200 x 16 KiB; delete; compact; defragment",
                    after < before,
                    format!("db_size below {before}"),
                    after,
                )
            },
        )
        .needs(Needs::Fresh(1)),
    ]
}

fn other_cases() -> Vec<Case> {
    vec![
        case(
            "maintenance.defragment.keeps_data",
            "Defragment leaves every key and revision as it was.",
            doc::MAINTENANCE,
            |ctx| async move {
                let mut revs = Vec::new();
                for i in 0..20 {
                    revs.push(put(&ctx, &format!("k{i:02}"), &"x".repeat(1000)).await?);
                }
                ok(
                    &"delete",
                    ctx.client
                        .delete_range(pb::DeleteRangeRequest {
                            key: ctx.key("k0"),
                            range_end: ctx.key("k1"),
                            ..Default::default()
                        })
                        .await,
                )?;
                let (_, before) = super::range(&ctx, |_| {}).await?;
                ok(
                    &pb::DefragmentRequest {},
                    ctx.client.defragment(pb::DefragmentRequest {}).await,
                )?;
                let (_, after) = super::range(&ctx, |_| {}).await?;
                eq(
                    &"defragment",
                    "keys and mod revisions",
                    before
                        .kvs
                        .iter()
                        .map(|k| (k.key.clone(), k.mod_revision))
                        .collect::<Vec<_>>(),
                    after
                        .kvs
                        .iter()
                        .map(|k| (k.key.clone(), k.mod_revision))
                        .collect(),
                )
            },
        )
        .needs(Needs::Fresh(1)),
        case(
            "maintenance.defragment.keeps_hash",
            "Defragment does not change HashKV.",
            doc::MAINTENANCE,
            |ctx| async move {
                put(&ctx, "k", "v").await?;
                let a = ok(
                    &"hashkv",
                    ctx.client.hash_kv(pb::HashKvRequest { revision: 0 }).await,
                )?
                .hash;
                ok(
                    &pb::DefragmentRequest {},
                    ctx.client.defragment(pb::DefragmentRequest {}).await,
                )?;
                let b = ok(
                    &"hashkv",
                    ctx.client.hash_kv(pb::HashKvRequest { revision: 0 }).await,
                )?
                .hash;
                eq(&"hashkv; defragment; hashkv", "hash", a, b)
            },
        )
        .needs(Needs::Fresh(1)),
        case(
            "maintenance.alarm.list_empty",
            "A healthy cluster has no alarm.",
            doc::MAINTENANCE,
            |ctx| async move {
                let req = pb::AlarmRequest {
                    action: AlarmAction::Get as i32,
                    member_id: 0,
                    alarm: AlarmType::None as i32,
                };
                let r = ok(&req, ctx.client.alarm(req).await)?;
                eq(&req, "alarms", 0, r.alarms.len())
            },
        ),
        case(
            "maintenance.alarm.nospace_blocks_writes",
            "An active NOSPACE alarm makes writes fail with 'mvcc: database space exceeded'.",
            doc::MAINTENANCE,
            |ctx| async move {
                activate_nospace(&ctx.client).await?;
                let req = pb::PutRequest {
                    key: ctx.key("k"),
                    value: b"v".to_vec(),
                    ..Default::default()
                };
                err_is(&req, ctx.client.put_request(req.clone()).await, E::NO_SPACE)
            },
        )
        .needs(Needs::Fresh(1)),
        case(
            "maintenance.alarm.nospace_allows_reads_deletes",
            "Under a NOSPACE alarm, reads and deletes still work.",
            doc::MAINTENANCE,
            |ctx| async move {
                put(&ctx, "k", "v").await?;
                activate_nospace(&ctx.client).await?;
                let got = ok(&"range k", ctx.client.get(ctx.key("k")).await)?;
                let d = ok(&"delete k", ctx.client.delete(ctx.key("k")).await)?;
                eq(
                    &"alarm; range k; delete k",
                    "(count, deleted)",
                    (1, 1),
                    (got.count, d.deleted),
                )
            },
        )
        .needs(Needs::Fresh(1)),
        case(
            "maintenance.alarm.listed",
            "An activated alarm is listed with its member and type.",
            doc::MAINTENANCE,
            |ctx| async move {
                let (id, _) = activate_nospace(&ctx.client).await?;
                let get = pb::AlarmRequest {
                    action: AlarmAction::Get as i32,
                    member_id: 0,
                    alarm: AlarmType::None as i32,
                };
                let r = ok(&get, ctx.client.alarm(get).await)?;
                eq(
                    &get,
                    "alarms",
                    vec![(id, AlarmType::Nospace as i32)],
                    r.alarms.iter().map(|a| (a.member_id, a.alarm)).collect(),
                )
            },
        )
        .needs(Needs::Fresh(1)),
        case(
            "maintenance.alarm.deactivate_restores_writes",
            "Deactivating the NOSPACE alarm lets writes through again.",
            doc::MAINTENANCE,
            |ctx| async move {
                let (_, act) = activate_nospace(&ctx.client).await?;
                let de = pb::AlarmRequest {
                    action: AlarmAction::Deactivate as i32,
                    ..act
                };
                ok(&de, ctx.client.alarm(de).await)?;
                let req = pb::PutRequest {
                    key: ctx.key("k"),
                    value: b"v".to_vec(),
                    ..Default::default()
                };
                ok(&req, ctx.client.put_request(req.clone()).await)?;
                let get = pb::AlarmRequest {
                    action: AlarmAction::Get as i32,
                    member_id: 0,
                    alarm: AlarmType::None as i32,
                };
                let r = ok(&get, ctx.client.alarm(get).await)?;
                eq(&get, "alarms after deactivate", 0, r.alarms.len())
            },
        )
        .needs(Needs::Fresh(1)),
        case(
            "maintenance.alarm.status_errors",
            "An active alarm shows in Status errors.",
            doc::MAINTENANCE,
            |ctx| async move {
                activate_nospace(&ctx.client).await?;
                let s = status(&ctx.client).await?;
                ensure(
                    &"alarm; status",
                    !s.errors.is_empty(),
                    "a non-empty errors list",
                    s.errors,
                )
            },
        )
        .needs(Needs::Fresh(1)),
        case(
            "maintenance.snapshot.stream",
            "Snapshot streams the backend followed by its SHA-256 (the last 32 bytes).",
            doc::MAINTENANCE,
            |ctx| async move {
                put(&ctx, "k", "v").await?;
                let snap = ok(
                    &pb::SnapshotRequest {},
                    ctx.client
                        .snapshot(SNAPSHOT_MAX_BYTES, SNAPSHOT_DEADLINE)
                        .await,
                )?;
                ensure(
                    &pb::SnapshotRequest {},
                    snap.len() > 32,
                    "more than 32 bytes",
                    snap.len(),
                )?;
                let (body, sum) = snap.split_at(snap.len() - 32);
                eq(
                    &pb::SnapshotRequest {},
                    "trailing sha256",
                    Sha256::digest(body).to_vec(),
                    sum.to_vec(),
                )
            },
        ),
        case(
            "maintenance.snapshot.grows_with_data",
            "A snapshot contains the data: 300 KiB written make it at least that large.",
            doc::MAINTENANCE,
            |ctx| async move {
                for i in 0..3 {
                    put(&ctx, &format!("big{i}"), &"y".repeat(100 * 1024)).await?;
                }
                let snap = ok(
                    &pb::SnapshotRequest {},
                    ctx.client
                        .snapshot(SNAPSHOT_MAX_BYTES, SNAPSHOT_DEADLINE)
                        .await,
                )?;
                ensure(
                    &pb::SnapshotRequest {},
                    snap.len() >= 300 * 1024,
                    ">= 300 KiB",
                    snap.len(),
                )
            },
        )
        .needs(Needs::Fresh(1)),
        case(
            "maintenance.move_leader.transfers",
            "MoveLeader on the leader makes the named member leader.",
            doc::GRPC,
            |ctx| async move {
                let (li, ids) = leader_index(&ctx).await?;
                let target = ids[(li + 1) % ids.len()];
                let req = pb::MoveLeaderRequest { target_id: target };
                ok(&req, ctx.members[li].move_leader(req).await)?;
                let mut now = 0;
                for _ in 0..50 {
                    now = status(&ctx.members[li]).await?.leader;
                    if now == target {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                eq(&req, "leader", target, now)
            },
        )
        .needs(Needs::Fresh(3)),
        case(
            "maintenance.move_leader.not_leader",
            "MoveLeader on a follower fails with 'not leader'.",
            doc::ERRORS,
            |ctx| async move {
                let (li, ids) = leader_index(&ctx).await?;
                let f = (li + 1) % ids.len();
                let req = pb::MoveLeaderRequest {
                    target_id: ids[(li + 2) % ids.len()],
                };
                err_is(&req, ctx.members[f].move_leader(req).await, E::NOT_LEADER)
            },
        )
        .needs(Needs::Fresh(3)),
        case(
            "maintenance.move_leader.bad_transferee",
            "MoveLeader to an id that is not a member fails with 'bad leader transferee'.",
            doc::ERRORS,
            |ctx| async move {
                let (li, _) = leader_index(&ctx).await?;
                let req = pb::MoveLeaderRequest {
                    target_id: 0x1234_5678_9abc,
                };
                err_is(
                    &req,
                    ctx.members[li].move_leader(req).await,
                    E::BAD_LEADER_TRANSFEREE,
                )
            },
        )
        .needs(Needs::Fresh(3)),
        case(
            "maintenance.move_leader.data_intact",
            "Data written before a leader transfer is read back after it.",
            doc::GUARANTEES,
            |ctx| async move {
                put(&ctx, "k", "before").await?;
                let (li, ids) = leader_index(&ctx).await?;
                let req = pb::MoveLeaderRequest {
                    target_id: ids[(li + 1) % ids.len()],
                };
                ok(&req, ctx.members[li].move_leader(req).await)?;
                let got = ok(
                    &"range k",
                    ctx.members[(li + 2) % ids.len()].get(ctx.key("k")).await,
                )?;
                eq(
                    &req,
                    "value",
                    Some(b"before".to_vec()),
                    got.kvs.first().map(|k| k.value.clone()),
                )
            },
        )
        .needs(Needs::Fresh(3)),
    ]
}
