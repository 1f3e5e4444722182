//! Cluster: MemberList, and membership changes (learner add, promote, update,
//! remove) on fresh clusters.

use gauntlet_api::etcdserverpb as pb;
use gauntlet_api::rpctypes as E;

use super::doc;
use crate::case::{case, ensure, eq, err_is, failure, ok, Case, Ctx, Failure, Needs, Versions};

/// A loopback peer URL nobody listens on (a learner that never starts).
fn unused_peer_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(1);
    format!("http://127.0.0.1:{port}")
}

async fn add_learner(ctx: &Ctx) -> Result<(pb::MemberAddRequest, pb::MemberAddResponse), Failure> {
    let req = pb::MemberAddRequest {
        peer_ur_ls: vec![unused_peer_url()],
        is_learner: true,
    };
    let r = ok(&req, ctx.client.member_add(req.clone()).await)?;
    // Raft accepts one configuration change at a time and counts the previous one done
    // only once its own applied index passes it, which can trail the answer above; a
    // change proposed in that window is dropped and times out. etcd documents that
    // membership changes are made one at a time, so give the first one time to settle.
    tokio::time::sleep(CONF_CHANGE_SETTLE).await;
    Ok((req, r))
}

/// How long replacing a member may take (remove, wipe, add, start, catch up).
const REPLACE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// How long a started learner may take to catch up enough to be promoted.
const PROMOTE_WITHIN: std::time::Duration = std::time::Duration::from_secs(20);

/// Pause after a membership change before the next one (see `add_learner`).
const CONF_CHANGE_SETTLE: std::time::Duration = std::time::Duration::from_millis(1100);

async fn list(ctx: &Ctx) -> Result<Vec<pb::Member>, Failure> {
    let req = pb::MemberListRequest::default();
    Ok(ok(&req, ctx.client.member_list(req).await)?.members)
}

fn fresh(c: Case) -> Case {
    c.needs(Needs::Fresh(1))
}

pub fn cases() -> Vec<Case> {
    vec![
        case("cluster.list.all_members", "MemberList returns every member, each with an id, a name, peer URLs and client URLs.", doc::API, |ctx| async move {
            let ms = list(&ctx).await?;
            ensure(&"member list", ms.len() == ctx.members.len() && ms.iter().all(|m| m.id != 0 && !m.name.is_empty() && !m.peer_ur_ls.is_empty() && !m.client_ur_ls.is_empty()), format!("{} members, all fields set", ctx.members.len()), ms)
        }),
        case("cluster.list.ids_unique", "Member ids are unique.", doc::API, |ctx| async move {
            let ms = list(&ctx).await?;
            let mut ids: Vec<u64> = ms.iter().map(|m| m.id).collect();
            ids.sort_unstable();
            ids.dedup();
            eq(&"member list", "distinct ids", ms.len(), ids.len())
        }),
        case("cluster.list.urls_well_formed", "Every member advertises its peer and client URLs as scheme://host:port.", doc::RECONFIG, |ctx| async move {
            let ms = list(&ctx).await?;
            let good = |u: &String| {
                let rest = u.strip_prefix("http://").or_else(|| u.strip_prefix("https://"));
                rest.and_then(|r| r.rsplit_once(':')).is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            };
            ensure(&"member list", ms.iter().all(|m| m.peer_ur_ls.iter().chain(&m.client_ur_ls).all(good)), "http(s)://host:port everywhere", ms)
        }),
        case("cluster.list.same_on_every_member", "Every member answers MemberList with the same membership.", doc::RECONFIG, |ctx| async move {
            let mut seen = Vec::new();
            for m in &ctx.members {
                let mut ids: Vec<u64> = ok(&"member list", m.member_list(pb::MemberListRequest::default()).await)?.members.iter().map(|m| m.id).collect();
                ids.sort_unstable();
                seen.push(ids);
            }
            ensure(&"member list on each member", seen.windows(2).all(|w| w[0] == w[1]), "identical lists", seen)
        }).needs(Needs::Members(3)),
        case("cluster.list.header_cluster_id", "MemberList's header carries the cluster id every member reports.", doc::API, |ctx| async move {
            let mut ids = Vec::new();
            for m in &ctx.members {
                ids.push(ok(&"member list", m.member_list(pb::MemberListRequest::default()).await)?.header.unwrap_or_default().cluster_id);
            }
            ensure(&"member list on each member", ids.iter().all(|i| *i != 0 && *i == ids[0]), "one non-zero cluster id", ids)
        }),
        case("cluster.list.no_learners", "A cluster started with only voting members lists no learner.", doc::LEARNER, |ctx| async move {
            let ms = list(&ctx).await?;
            ensure(&"member list", ms.iter().all(|m| !m.is_learner), "is_learner false for all", ms)
        }),
        case("cluster.list.linearizable", "MemberList with linearizable = true (3.5) answers the membership.", doc::GRPC, |ctx| async move {
            let req = pb::MemberListRequest { linearizable: true };
            let r = ok(&req, ctx.client.member_list(req).await)?;
            eq(&req, "members", ctx.members.len(), r.members.len())
        }).versions(Versions::SINCE_3_5),
        fresh(case("cluster.add.learner", "MemberAdd with is_learner adds a learner with the given peer URL and no name yet.", doc::LEARNER, |ctx| async move {
            let (req, r) = add_learner(&ctx).await?;
            let m = r.member.clone().unwrap_or_default();
            ensure(&req, m.id != 0 && m.is_learner && m.peer_ur_ls == req.peer_ur_ls && m.name.is_empty(), "a learner with the given peer URLs, no name", m)
        })),
        fresh(case("cluster.add.learner_in_list", "An added learner appears in MemberList as a learner, and in the add response's member list.", doc::LEARNER, |ctx| async move {
            let (req, r) = add_learner(&ctx).await?;
            let id = r.member.map(|m| m.id).unwrap_or_default();
            ensure(&req, r.members.iter().any(|m| m.id == id && m.is_learner), "the response lists the learner", &r.members)?;
            let ms = list(&ctx).await?;
            ensure(&req, ms.iter().any(|m| m.id == id && m.is_learner), "member list shows the learner", ms)
        })),
        fresh(case("cluster.add.duplicate_peer_url", "Adding a member with a peer URL already in use fails with 'Peer URLs already exists'.", doc::ERRORS, |ctx| async move {
            // Member ids hash the peer URLs with the time in seconds: a retry within the
            // same second would collide on the id first, which is not what this case checks.
            // `add_learner` waits long enough for the next second.
            let (req, _) = add_learner(&ctx).await?;
            err_is(&req, ctx.client.member_add(req.clone()).await, E::PEER_URL_EXIST)
        })),
        fresh(case("cluster.add.existing_member_peer_url", "Adding a member with an existing member's peer URL fails with 'Peer URLs already exists'.", doc::ERRORS, |ctx| async move {
            let ms = list(&ctx).await?;
            let req = pb::MemberAddRequest { peer_ur_ls: ms[0].peer_ur_ls.clone(), is_learner: true };
            err_is(&req, ctx.client.member_add(req.clone()).await, E::PEER_URL_EXIST)
        })),
        fresh(case("cluster.add.bad_url", "A peer URL without a port fails with 'given member URLs are invalid'.", doc::ERRORS, |ctx| async move {
            let req = pb::MemberAddRequest { peer_ur_ls: vec!["http://127.0.0.1".into()], is_learner: true };
            err_is(&req, ctx.client.member_add(req.clone()).await, E::MEMBER_BAD_URLS)
        })),
        fresh(case("cluster.add.second_learner", "A second learner exceeds the learner limit (1) and fails with 'too many learner members in cluster'.", doc::LEARNER, |ctx| async move {
            add_learner(&ctx).await?;
            let req = pb::MemberAddRequest { peer_ur_ls: vec![unused_peer_url()], is_learner: true };
            err_is(&req, ctx.client.member_add(req.clone()).await, E::TOO_MANY_LEARNERS)
        })),
        fresh(case("cluster.promote.not_ready", "Promoting a learner that has not caught up fails with 'can only promote a learner member which is in sync with leader'.", doc::LEARNER, |ctx| async move {
            let (_, r) = add_learner(&ctx).await?;
            let req = pb::MemberPromoteRequest { id: r.member.map(|m| m.id).unwrap_or_default() };
            err_is(&req, ctx.client.member_promote(req).await, E::LEARNER_NOT_READY)
        })),
        fresh(case("cluster.promote.voting_member", "Promoting a voting member fails with 'can only promote a learner member'.", doc::LEARNER, |ctx| async move {
            let ms = list(&ctx).await?;
            let req = pb::MemberPromoteRequest { id: ms[0].id };
            err_is(&req, ctx.client.member_promote(req).await, E::MEMBER_NOT_LEARNER)
        })),
        fresh(case("cluster.promote.unknown", "Promoting an unknown member id fails with 'member not found'.", doc::ERRORS, |ctx| async move {
            let req = pb::MemberPromoteRequest { id: 0x1234_5678_9abc };
            err_is(&req, ctx.client.member_promote(req).await, E::MEMBER_NOT_FOUND)
        })),
        fresh(case("cluster.remove.learner", "Removing a learner takes it out of the membership.", doc::RECONFIG, |ctx| async move {
            let (_, r) = add_learner(&ctx).await?;
            let id = r.member.map(|m| m.id).unwrap_or_default();
            let req = pb::MemberRemoveRequest { id };
            let resp = ok(&req, ctx.client.member_remove(req).await)?;
            ensure(&req, !resp.members.iter().any(|m| m.id == id), "the response no longer lists it", &resp.members)?;
            let ms = list(&ctx).await?;
            ensure(&req, !ms.iter().any(|m| m.id == id), "member list no longer lists it", ms)
        })),
        fresh(case("cluster.remove.unknown", "Removing an unknown member id fails with 'member not found'.", doc::ERRORS, |ctx| async move {
            let req = pb::MemberRemoveRequest { id: 0x1234_5678_9abc };
            err_is(&req, ctx.client.member_remove(req).await, E::MEMBER_NOT_FOUND)
        })),
        fresh(case("cluster.update.peer_urls", "MemberUpdate replaces a member's peer URLs.", doc::RECONFIG, |ctx| async move {
            let (_, r) = add_learner(&ctx).await?;
            let id = r.member.map(|m| m.id).unwrap_or_default();
            let url = unused_peer_url();
            let req = pb::MemberUpdateRequest { id, peer_ur_ls: vec![url.clone()] };
            ok(&req, ctx.client.member_update(req.clone()).await)?;
            let ms = list(&ctx).await?;
            eq(&req, "peer URLs", Some(vec![url]), ms.iter().find(|m| m.id == id).map(|m| m.peer_ur_ls.clone()))
        })),
        fresh(case("cluster.update.unknown", "Updating an unknown member fails with 'member not found'.", doc::ERRORS, |ctx| async move {
            let req = pb::MemberUpdateRequest { id: 0x1234_5678_9abc, peer_ur_ls: vec![unused_peer_url()] };
            err_is(&req, ctx.client.member_update(req.clone()).await, E::MEMBER_NOT_FOUND)
        })),
        fresh(case("cluster.update.url_of_other_member", "Updating a member to another member's peer URL fails with 'Peer URLs already exists'.", doc::ERRORS, |ctx| async move {
            let (_, r) = add_learner(&ctx).await?;
            let ms = list(&ctx).await?;
            let voter = ms.iter().find(|m| !m.is_learner).cloned().unwrap_or_default();
            let req = pb::MemberUpdateRequest { id: r.member.map(|m| m.id).unwrap_or_default(), peer_ur_ls: voter.peer_ur_ls };
            err_is(&req, ctx.client.member_update(req.clone()).await, E::PEER_URL_EXIST)
        })),
        fresh(case("cluster.update.same_urls", "Updating a member to its own current peer URLs succeeds.", doc::RECONFIG, |ctx| async move {
            let ms = list(&ctx).await?;
            let req = pb::MemberUpdateRequest { id: ms[0].id, peer_ur_ls: ms[0].peer_ur_ls.clone() };
            ok(&req, ctx.client.member_update(req.clone()).await).map(|_| ())
        })),
        fresh(case("cluster.add.learner_keeps_serving", "After adding a learner that never starts, the cluster still serves writes (a learner does not count for quorum).", doc::LEARNER, |ctx| async move {
            add_learner(&ctx).await?;
            let req = pb::PutRequest { key: ctx.key("k"), value: b"v".to_vec(), ..Default::default() };
            ok(&req, ctx.client.put_request(req.clone()).await).map(|_| ())
        })),
        fresh(case("cluster.add.voting_response_members", "MemberAdd's response lists the whole new membership.", doc::RECONFIG, |ctx| async move {
            let before = list(&ctx).await?;
            let (req, r) = add_learner(&ctx).await?;
            eq(&req, "members in the response", before.len() + 1, r.members.len())
        })),
        case("cluster.add.learner_not_in_status_leader", "A member reports a leader that is a voting member of the list.", doc::LEARNER, |ctx| async move {
            let ms = list(&ctx).await?;
            let s = ok(&"status", ctx.client.status(pb::StatusRequest {}).await)?;
            ensure(&"status; member list", ms.iter().any(|m| m.id == s.leader && !m.is_learner), "leader is a voting member", (s.leader, ms))
        }),
        case("cluster.replace.keeps_data", "A member removed, wiped, added back and restarted with --initial-cluster-state existing catches up: it serves every key written before, and the member list shows three started voters.", doc::RECONFIG, |ctx| async move {
            for i in 0..50 {
                let req = pb::PutRequest { key: ctx.key(&format!("k{i:02}")), value: format!("v{i}").into_bytes(), ..Default::default() };
                ok(&req, ctx.client.put_request(req.clone()).await)?;
            }
            let cluster = ctx.cluster.clone().ok_or_else(|| failure(&"replace m1", "a cluster the runner launched", "none"))?;
            let steps = cluster
                .replace_member(1, REPLACE_TIMEOUT)
                .await
                .map_err(|e| failure(&"replace m1 (remove, wipe, add, start existing)", "the member back and the cluster ready", e.to_string()))?;
            let m1 = cluster
                .member_client(1)
                .await
                .map_err(|e| failure(&"connect to m1", "a client", e.to_string()))?;
            let range = pb::RangeRequest { key: ctx.key("k"), range_end: gauntlet_api::prefix_range_end(&ctx.key("k")), ..Default::default() };
            let got = ok(&range, m1.range(range.clone()).await)?;
            let what = format!("keys read through the replaced member ({})", steps.join("; "));
            eq(&range, &what, 50, got.kvs.len())?;
            let ms = list(&ctx).await?;
            ensure(&"member list", ms.len() == 3 && ms.iter().all(|m| !m.is_learner && !m.name.is_empty()), "3 started voters", ms)
        }).needs(Needs::Fresh(3)),
        case("cluster.promote.after_catch_up", "A learner that was started and caught up is promoted by MemberPromote (until then refused only with 'not in sync'), becomes a voter, and serves writes.", doc::LEARNER, |ctx| async move {
            for i in 0..50 {
                let req = pb::PutRequest { key: ctx.key(&format!("k{i:02}")), value: vec![b'x'; 1024], ..Default::default() };
                ok(&req, ctx.client.put_request(req.clone()).await)?;
            }
            let cluster = ctx.cluster.clone().ok_or_else(|| failure(&"replace m2 with a learner", "a cluster the runner launched", "none"))?;
            cluster
                .replace_member_as(2, REPLACE_TIMEOUT, true)
                .await
                .map_err(|e| failure(&"replace m2 with a learner (remove, wipe, add --learner, start existing)", "the learner started", e.to_string()))?;
            let id = list(&ctx).await?.into_iter().find(|m| m.is_learner).map(|m| m.id).ok_or_else(|| failure(&"member list", "a learner", "none"))?;
            let req = pb::MemberPromoteRequest { id };
            let deadline = tokio::time::Instant::now() + PROMOTE_WITHIN;
            loop {
                match ctx.client.member_promote(req).await {
                    Ok(_) => break,
                    Err(e) if e.to_string().contains(E::LEARNER_NOT_READY.message) && tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                    Err(e) => return err_is(&req, Err::<(), _>(e), E::LEARNER_NOT_READY).and(Err(failure(&req, "promoted within 20 s", "still not in sync"))),
                }
            }
            // A member other than the leader may list the member table before it applied
            // the promotion (MemberList is served locally): give it a few seconds.
            let listed_by = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                let ms = list(&ctx).await?;
                if ms.iter().all(|m| !m.is_learner) {
                    break;
                }
                if tokio::time::Instant::now() >= listed_by {
                    return ensure(&"member list after promotion", false, "no learner left", &ms);
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let m2 = cluster.member_client(2).await.map_err(|e| failure(&"connect to m2", "a client", e.to_string()))?;
            let put = pb::PutRequest { key: ctx.key("via-promoted"), value: b"v".to_vec(), ..Default::default() };
            // Promotion is answered once the leader applied it; the member itself learns
            // it when it applies the same entry, a heartbeat or so later. Until then it
            // refuses the write as a learner (nothing is applied), so that is retried
            // for a few seconds.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                match m2.put_request(put.clone()).await {
                    Err(e) if e.is(E::NOT_SUPPORTED_FOR_LEARNER) && tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    r => return ok(&put, r).map(|_| ()),
                }
            }
        }).needs(Needs::Fresh(3)),
        case("cluster.status.member_in_list", "Every member's Status member id is in MemberList.", doc::API, |ctx| async move {
            let ms = list(&ctx).await?;
            for m in &ctx.members {
                let s = ok(&"status", m.status(pb::StatusRequest {}).await)?;
                let id = s.header.map(|h| h.member_id).unwrap_or_default();
                if !ms.iter().any(|x| x.id == id) {
                    return Err(failure(&"status; member list", format!("{id:x} listed"), format!("{:x?}", ms.iter().map(|m| m.id).collect::<Vec<_>>())));
                }
            }
            Ok(())
        }),
    ]
}
