//! Watch: creation, start revisions, filters, prev_kv, progress, fragments, cancel,
//! several watchers on one stream, compaction as seen by watch.

use gauntlet_api::etcdserverpb::{self as pb, watch_create_request::FilterType};
use gauntlet_api::mvccpb::{event::EventType, Event};
use gauntlet_api::rpctypes as E;
use gauntlet_harness::WatchStream;

use super::{del_op, doc, put, put_op, rev};
use crate::case::{
    case, ensure, eq, failure, ok, Case, Ctx, Failure, Needs, Versions, EVENT_WAIT, QUIET_WAIT,
};

/// Most responses a check reads while collecting events.
const MAX_RESPONSES: usize = 1000;

/// Opens a watch and requires it to be created.
async fn open(
    ctx: &Ctx,
    create: pb::WatchCreateRequest,
) -> Result<(WatchStream, pb::WatchResponse), Failure> {
    let (ws, created) = ok(&create, ctx.client.watch(create.clone()).await)?;
    ensure(
        &create,
        created.created && !created.canceled,
        "created = true, canceled = false",
        &created,
    )?;
    Ok((ws, created))
}

fn prefix_watch(ctx: &Ctx) -> pb::WatchCreateRequest {
    pb::WatchCreateRequest {
        key: ctx.prefix.clone().into_bytes(),
        range_end: ctx.prefix_end(),
        ..Default::default()
    }
}

/// Reads responses until `n` events arrived (for any watcher); returns the events and the responses.
async fn collect(
    ws: &mut WatchStream,
    n: usize,
    what: &str,
) -> Result<(Vec<Event>, Vec<pb::WatchResponse>), Failure> {
    let mut events = Vec::new();
    let mut resps = Vec::new();
    for _ in 0..MAX_RESPONSES {
        if events.len() >= n {
            break;
        }
        match ws.recv(EVENT_WAIT).await {
            Ok(r) => {
                events.extend(r.events.iter().cloned());
                resps.push(r);
            }
            Err(e) => {
                return Err(failure(
                    &what,
                    format!("{n} events"),
                    format!("{} events, then {e}", events.len()),
                ))
            }
        }
    }
    Ok((events, resps))
}

/// Asserts nothing with events arrives within [`QUIET_WAIT`].
async fn quiet(ws: &mut WatchStream, what: &str) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + QUIET_WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        match ws.recv(left).await {
            Ok(r) if !r.events.is_empty() => {
                return Err(failure(&what, "no event", crate::case::show(&r)))
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
}

fn keys_of(ctx: &Ctx, evs: &[Event]) -> Vec<(String, i32)> {
    evs.iter()
        .map(|e| {
            let k = e.kv.as_ref().map(|kv| kv.key.clone()).unwrap_or_default();
            (
                String::from_utf8_lossy(k.strip_prefix(ctx.prefix.as_bytes()).unwrap_or(&k))
                    .into_owned(),
                e.r#type,
            )
        })
        .collect()
}

const PUT: i32 = EventType::Put as i32;
const DEL: i32 = EventType::Delete as i32;

fn sv(v: &[(&str, i32)]) -> Vec<(String, i32)> {
    v.iter().map(|(k, t)| (k.to_string(), *t)).collect()
}

pub fn cases() -> Vec<Case> {
    let mut v = basic();
    v.extend(start_revisions());
    v.extend(options());
    v.extend(streams());
    v.extend(compaction());
    v
}

fn basic() -> Vec<Case> {
    vec![
        case("watch.create.created_response", "Creating a watch answers created = true with a watch id and the current revision in the header.", doc::API, |ctx| async move {
            let r = put(&ctx, "k", "v").await?;
            let (_, created) = open(&ctx, prefix_watch(&ctx)).await?;
            ensure(&"watch prefix", created.events.is_empty() && rev(&created.header) >= r, format!("no events, header revision >= {r}"), created)
        }),
        case("watch.key.put_event", "A watch on a key receives a PUT event with the new key-value.", doc::API, |ctx| async move {
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { key: ctx.key("k"), ..Default::default() }).await?;
            let r = put(&ctx, "k", "v1").await?;
            let (evs, _) = collect(&mut ws, 1, "watch k; put k=v1").await?;
            let kv = evs[0].kv.clone().unwrap_or_default();
            eq(&"watch k; put k=v1", "(type, value, mod_revision, create_revision, version)", (PUT, b"v1".to_vec(), r, r, 1), (evs[0].r#type, kv.value, kv.mod_revision, kv.create_revision, kv.version))
        }),
        case("watch.key.delete_event", "A delete produces a DELETE event whose kv has the key and the delete's revision.", doc::API, |ctx| async move {
            put(&ctx, "k", "v").await?;
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { key: ctx.key("k"), ..Default::default() }).await?;
            let d = ok(&"delete k", ctx.client.delete(ctx.key("k")).await)?;
            let (evs, _) = collect(&mut ws, 1, "watch k; delete k").await?;
            let kv = evs[0].kv.clone().unwrap_or_default();
            eq(&"watch k; delete k", "(type, key, mod_revision, value)", (DEL, ctx.key("k"), rev(&d.header), Vec::new()), (evs[0].r#type, kv.key, kv.mod_revision, kv.value))
        }),
        case("watch.key.other_keys_ignored", "A watch on one key receives nothing for other keys.", doc::API, |ctx| async move {
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { key: ctx.key("k"), ..Default::default() }).await?;
            put(&ctx, "k2", "v").await?;
            put(&ctx, "j", "v").await?;
            quiet(&mut ws, "watch k; put k2, j").await
        }),
        case("watch.prefix.events_under_prefix", "A prefix watch receives events for every key under the prefix, in revision order.", doc::API, |ctx| async move {
            let (mut ws, _) = open(&ctx, prefix_watch(&ctx)).await?;
            put(&ctx, "a", "1").await?;
            put(&ctx, "b", "1").await?;
            ok(&"delete a", ctx.client.delete(ctx.key("a")).await)?;
            let (evs, _) = collect(&mut ws, 3, "watch prefix; put a, put b, delete a").await?;
            eq(&"watch prefix; put a, put b, delete a", "events", sv(&[("a", PUT), ("b", PUT), ("a", DEL)]), keys_of(&ctx, &evs))
        }),
        case("watch.range.interval", "A watch on [b, d) receives events for b and c only.", doc::API, |ctx| async move {
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { key: ctx.key("b"), range_end: ctx.key("d"), ..Default::default() }).await?;
            for k in ["a", "b", "c", "d", "e"] {
                put(&ctx, k, "v").await?;
            }
            let (evs, _) = collect(&mut ws, 2, "watch [b,d); put a..e").await?;
            eq(&"watch [b,d); put a..e", "events", sv(&[("b", PUT), ("c", PUT)]), keys_of(&ctx, &evs))?;
            quiet(&mut ws, "watch [b,d); put a..e").await
        }),
        case("watch.range.from_key", "A watch with range_end \\0 receives events for every key >= key.", doc::API, |ctx| async move {
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { key: ctx.key("m"), range_end: vec![0], ..Default::default() }).await?;
            put(&ctx, "a", "v").await?;
            put(&ctx, "z", "v").await?;
            let own = |r: &pb::WatchResponse| r.events.iter().any(|e| e.kv.as_ref().is_some_and(|k| k.key.starts_with(ctx.prefix.as_bytes())));
            let r = ok(&"watch >= m; put a, z", ws.wait_for(own).await)?;
            let mine: Vec<_> = keys_of(&ctx, &r.events).into_iter().filter(|(k, _)| k.len() == 1).collect();
            eq(&"watch >= m; put a, z", "first own event", sv(&[("z", PUT)]), mine)
        }),
        case("watch.events.revision_order", "Events arrive in revision order, each with its own mod_revision.", doc::GUARANTEES, |ctx| async move {
            let (mut ws, _) = open(&ctx, prefix_watch(&ctx)).await?;
            let mut revs = Vec::new();
            for i in 0..10 {
                revs.push(put(&ctx, &format!("k{i}"), "v").await?);
            }
            let (evs, _) = collect(&mut ws, 10, "watch prefix; 10 puts").await?;
            eq(&"watch prefix; 10 puts", "event revisions", revs, evs.iter().map(|e| e.kv.as_ref().map(|k| k.mod_revision).unwrap_or_default()).collect())
        }),
        case("watch.events.response_header_revision", "A response's header revision is at least the revision of its last event.", doc::API, |ctx| async move {
            let (mut ws, _) = open(&ctx, prefix_watch(&ctx)).await?;
            put(&ctx, "k", "v").await?;
            let (evs, resps) = collect(&mut ws, 1, "watch prefix; put k").await?;
            let last = evs.last().and_then(|e| e.kv.as_ref()).map(|k| k.mod_revision).unwrap_or_default();
            let h = resps.last().map(|r| rev(&r.header)).unwrap_or_default();
            ensure(&"watch prefix; put k", h >= last, format!("header revision >= {last}"), h)
        }),
        case("watch.txn.atomic_one_response", "All events of one txn arrive in a single response, with one revision.", doc::GUARANTEES, |ctx| async move {
            let (mut ws, _) = open(&ctx, prefix_watch(&ctx)).await?;
            let req = pb::TxnRequest { success: vec![put_op(ctx.key("a"), "1"), put_op(ctx.key("b"), "2"), del_op(ctx.key("c"))], ..Default::default() };
            put(&ctx, "c", "0").await?;
            let t = ok(&req, ctx.client.txn(req.clone()).await)?;
            let (_, resps) = collect(&mut ws, 4, "watch prefix; put c; txn{put a, put b, delete c}").await?;
            let tr = rev(&t.header);
            let with_txn: Vec<&pb::WatchResponse> = resps.iter().filter(|r| r.events.iter().any(|e| e.kv.as_ref().is_some_and(|k| k.mod_revision == tr))).collect();
            eq(&req, "responses holding the txn's events", 1, with_txn.len())?;
            // A response may also carry the earlier `put c` (etcd batches events of several revisions into one
            // response); the guarantee is only that the txn's own events are not split.
            let txn_events = with_txn[0].events.iter().filter(|e| e.kv.as_ref().is_some_and(|k| k.mod_revision == tr)).count();
            eq(&req, "txn events in that response", 3, txn_events)
        }),
        case("watch.delete_range.one_event_per_key", "A range delete produces one DELETE event per deleted key, all at the delete's revision.", doc::API, |ctx| async move {
            for k in ["a", "b", "c"] {
                put(&ctx, k, "v").await?;
            }
            let (mut ws, _) = open(&ctx, prefix_watch(&ctx)).await?;
            let req = pb::DeleteRangeRequest { key: ctx.key("a"), range_end: ctx.key("c"), ..Default::default() };
            let d = ok(&req, ctx.client.delete_range(req.clone()).await)?;
            let (evs, _) = collect(&mut ws, 2, "watch prefix; delete [a, c)").await?;
            eq(&req, "events", sv(&[("a", DEL), ("b", DEL)]), keys_of(&ctx, &evs))?;
            eq(&req, "revisions", vec![rev(&d.header); 2], evs.iter().map(|e| e.kv.as_ref().map(|k| k.mod_revision).unwrap_or_default()).collect())
        }),
        case("watch.on_follower.sees_write_on_other_member", "A watch served by one member receives a write made through another member.", doc::GUARANTEES, |ctx| async move {
            let n = ctx.members.len();
            let (mut ws, _) = ok(&"watch prefix on member 1", ctx.members[1 % n].watch(prefix_watch(&ctx)).await)?;
            let req = pb::PutRequest { key: ctx.key("k"), value: b"v".to_vec(), ..Default::default() };
            let p = ok(&req, ctx.members[0].put_request(req.clone()).await)?;
            let (evs, _) = collect(&mut ws, 1, "watch on member 1; put on member 0").await?;
            eq(&"watch on member 1; put on member 0", "event revision", rev(&p.header), evs[0].kv.as_ref().map(|k| k.mod_revision).unwrap_or_default())
        }).needs(Needs::Members(3)),
        case("watch.on_every_member.same_events", "Watches on different members see the same events with the same revisions.", doc::GUARANTEES, |ctx| async move {
            let mut streams = Vec::new();
            for m in &ctx.members {
                streams.push(ok(&"watch prefix", m.watch(prefix_watch(&ctx)).await)?.0);
            }
            for i in 0..5 {
                put(&ctx, &format!("k{i}"), "v").await?;
            }
            let mut seen = Vec::new();
            for ws in streams.iter_mut() {
                let (evs, _) = collect(ws, 5, "watch prefix on each member; 5 puts").await?;
                seen.push(evs.iter().map(|e| e.kv.as_ref().map(|k| (k.key.clone(), k.mod_revision)).unwrap_or_default()).collect::<Vec<_>>());
            }
            ensure(&"watch prefix on each member; 5 puts", seen.windows(2).all(|w| w[0] == w[1]), "identical event lists", seen.len())
        }).needs(Needs::Members(3)),
    ]
}

fn start_revisions() -> Vec<Case> {
    vec![
        case("watch.start.past_replays_history", "A watch with a past start_revision first replays every event from that revision.", doc::API, |ctx| async move {
            let r1 = put(&ctx, "k", "1").await?;
            put(&ctx, "k", "2").await?;
            ok(&"delete k", ctx.client.delete(ctx.key("k")).await)?;
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { start_revision: r1, ..prefix_watch(&ctx) }).await?;
            let (evs, _) = collect(&mut ws, 3, "put k=1, k=2, delete k; watch from the first put").await?;
            eq(&"put k=1, k=2, delete k; watch from the first put", "events", sv(&[("k", PUT), ("k", PUT), ("k", DEL)]), keys_of(&ctx, &evs))?;
            eq(&"values", "values", vec![b"1".to_vec(), b"2".to_vec(), Vec::new()], evs.iter().map(|e| e.kv.as_ref().map(|k| k.value.clone()).unwrap_or_default()).collect())
        }).kubernetes(),
        case("watch.start.past_middle", "A start_revision in the middle of a key's history skips the earlier events.", doc::API, |ctx| async move {
            put(&ctx, "k", "1").await?;
            let r2 = put(&ctx, "k", "2").await?;
            put(&ctx, "k", "3").await?;
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { start_revision: r2, ..prefix_watch(&ctx) }).await?;
            let (evs, _) = collect(&mut ws, 2, "3 puts; watch from the second").await?;
            eq(&"3 puts; watch from the second", "values", vec![b"2".to_vec(), b"3".to_vec()], evs.iter().map(|e| e.kv.as_ref().map(|k| k.value.clone()).unwrap_or_default()).collect())
        }),
        case("watch.start.past_then_live", "A watch from the past continues with live events after the replay, without gap or duplicate.", doc::GUARANTEES, |ctx| async move {
            let r1 = put(&ctx, "k", "1").await?;
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { start_revision: r1, ..prefix_watch(&ctx) }).await?;
            let r2 = put(&ctx, "k", "2").await?;
            let (evs, _) = collect(&mut ws, 2, "put k=1; watch from it; put k=2").await?;
            eq(&"put k=1; watch from it; put k=2", "revisions", vec![r1, r2], evs.iter().map(|e| e.kv.as_ref().map(|k| k.mod_revision).unwrap_or_default()).collect())?;
            quiet(&mut ws, "no duplicate").await
        }),
        case("watch.start.current_plus_one", "A watch starting at current revision + 1 receives exactly the next events.", doc::API, |ctx| async move {
            let r = put(&ctx, "k", "old").await?;
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { start_revision: r + 1, ..prefix_watch(&ctx) }).await?;
            put(&ctx, "k", "new").await?;
            let (evs, _) = collect(&mut ws, 1, "watch from rev+1; put k=new").await?;
            eq(&"watch from rev+1; put k=new", "value", b"new".to_vec(), evs[0].kv.clone().unwrap_or_default().value)
        }),
        case("watch.start.zero_is_now", "start_revision 0 watches from the next revision: no history is replayed.", doc::API, |ctx| async move {
            put(&ctx, "k", "old").await?;
            let (mut ws, _) = open(&ctx, prefix_watch(&ctx)).await?;
            quiet(&mut ws, "put k; watch from 0").await?;
            put(&ctx, "k", "new").await?;
            let (evs, _) = collect(&mut ws, 1, "then put k=new").await?;
            eq(&"put k; watch from 0; put k=new", "value", b"new".to_vec(), evs[0].kv.clone().unwrap_or_default().value)
        }),
        case("watch.start.future_waits", "A start_revision in the future delivers nothing until the store reaches it, then events from it on.", doc::API, |ctx| async move {
            let r = put(&ctx, "k", "0").await?;
            // Far enough that concurrent cases cannot reach it while we wait.
            let target = r + 1_000_000;
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { start_revision: target, ..prefix_watch(&ctx) }).await?;
            put(&ctx, "k", "1").await?;
            quiet(&mut ws, "watch from rev+1000000; put k").await
        }),
        case("watch.start.prefix_history_other_keys", "History replay from a past revision covers only keys in the watched range.", doc::API, |ctx| async move {
            let r = put(&ctx, "a", "1").await?;
            put(&ctx, "b", "1").await?;
            put(&ctx, "a", "2").await?;
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { key: ctx.key("a"), start_revision: r, ..Default::default() }).await?;
            let (evs, _) = collect(&mut ws, 2, "put a, b, a; watch a from the first").await?;
            eq(&"put a, b, a; watch a from the first", "events", sv(&[("a", PUT), ("a", PUT)]), keys_of(&ctx, &evs))?;
            quiet(&mut ws, "no event for b").await
        }),
    ]
}

fn options() -> Vec<Case> {
    vec![
        case("watch.prev_kv.on_put", "prev_kv attaches the previous key-value to PUT events.", doc::API, |ctx| async move {
            put(&ctx, "k", "old").await?;
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { prev_kv: true, ..prefix_watch(&ctx) }).await?;
            put(&ctx, "k", "new").await?;
            let (evs, _) = collect(&mut ws, 1, "watch prev_kv; put k=new").await?;
            eq(&"watch prev_kv; put k=new", "prev_kv value", Some(b"old".to_vec()), evs[0].prev_kv.as_ref().map(|k| k.value.clone()))
        }).kubernetes(),
        case("watch.prev_kv.on_delete", "prev_kv attaches the deleted key-value to DELETE events.", doc::API, |ctx| async move {
            put(&ctx, "k", "gone").await?;
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { prev_kv: true, ..prefix_watch(&ctx) }).await?;
            ok(&"delete k", ctx.client.delete(ctx.key("k")).await)?;
            let (evs, _) = collect(&mut ws, 1, "watch prev_kv; delete k").await?;
            eq(&"watch prev_kv; delete k", "prev_kv value", Some(b"gone".to_vec()), evs[0].prev_kv.as_ref().map(|k| k.value.clone()))
        }).kubernetes(),
        case("watch.prev_kv.absent_on_create", "A PUT creating a key has no prev_kv even when prev_kv is asked for.", doc::API, |ctx| async move {
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { prev_kv: true, ..prefix_watch(&ctx) }).await?;
            put(&ctx, "k", "v").await?;
            let (evs, _) = collect(&mut ws, 1, "watch prev_kv; put new k").await?;
            eq(&"watch prev_kv; put new k", "prev_kv", None, evs[0].prev_kv.clone())
        }),
        case("watch.prev_kv.not_by_default", "Without prev_kv, events carry no previous key-value.", doc::API, |ctx| async move {
            put(&ctx, "k", "old").await?;
            let (mut ws, _) = open(&ctx, prefix_watch(&ctx)).await?;
            put(&ctx, "k", "new").await?;
            let (evs, _) = collect(&mut ws, 1, "watch; put k=new").await?;
            eq(&"watch; put k=new", "prev_kv", None, evs[0].prev_kv.clone())
        }),
        case("watch.prev_kv.historical", "prev_kv works on replayed history too.", doc::API, |ctx| async move {
            put(&ctx, "k", "1").await?;
            let r2 = put(&ctx, "k", "2").await?;
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { prev_kv: true, start_revision: r2, ..prefix_watch(&ctx) }).await?;
            let (evs, _) = collect(&mut ws, 1, "put k=1, k=2; watch prev_kv from k=2").await?;
            eq(&"put k=1, k=2; watch prev_kv from k=2", "prev_kv value", Some(b"1".to_vec()), evs[0].prev_kv.as_ref().map(|k| k.value.clone()))
        }),
        case("watch.filter.noput", "Filter NOPUT drops PUT events: only deletes arrive.", doc::API, |ctx| async move {
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { filters: vec![FilterType::Noput as i32], ..prefix_watch(&ctx) }).await?;
            put(&ctx, "k", "v").await?;
            ok(&"delete k", ctx.client.delete(ctx.key("k")).await)?;
            let (evs, _) = collect(&mut ws, 1, "watch NOPUT; put k, delete k").await?;
            eq(&"watch NOPUT; put k, delete k", "events", sv(&[("k", DEL)]), keys_of(&ctx, &evs))
        }),
        case("watch.filter.nodelete", "Filter NODELETE drops DELETE events: only puts arrive.", doc::API, |ctx| async move {
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { filters: vec![FilterType::Nodelete as i32], ..prefix_watch(&ctx) }).await?;
            put(&ctx, "k", "v").await?;
            ok(&"delete k", ctx.client.delete(ctx.key("k")).await)?;
            put(&ctx, "j", "v").await?;
            let (evs, _) = collect(&mut ws, 2, "watch NODELETE; put k, delete k, put j").await?;
            eq(&"watch NODELETE; put k, delete k, put j", "events", sv(&[("k", PUT), ("j", PUT)]), keys_of(&ctx, &evs))
        }),
        case("watch.filter.both_silent", "Filters NOPUT and NODELETE together drop every event.", doc::API, |ctx| async move {
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { filters: vec![FilterType::Noput as i32, FilterType::Nodelete as i32], ..prefix_watch(&ctx) }).await?;
            put(&ctx, "k", "v").await?;
            ok(&"delete k", ctx.client.delete(ctx.key("k")).await)?;
            quiet(&mut ws, "watch NOPUT+NODELETE; put k, delete k").await
        }),
        case("watch.filter.noput_history", "Filters also apply to replayed history.", doc::API, |ctx| async move {
            let r = put(&ctx, "k", "v").await?;
            ok(&"delete k", ctx.client.delete(ctx.key("k")).await)?;
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { filters: vec![FilterType::Noput as i32], start_revision: r, ..prefix_watch(&ctx) }).await?;
            let (evs, _) = collect(&mut ws, 1, "put k, delete k; watch NOPUT from put").await?;
            eq(&"put k, delete k; watch NOPUT from put", "events", sv(&[("k", DEL)]), keys_of(&ctx, &evs))
        }),
        case("watch.progress.request", "A progress request is answered with an event-less response whose header revision is current.", doc::API, |ctx| async move {
            let r = put(&ctx, "k", "v").await?;
            let (mut ws, _) = open(&ctx, prefix_watch(&ctx)).await?;
            ok(&"progress request", ws.request_progress().await)?;
            let p = ok(&"progress response", ws.wait_for(|x| x.events.is_empty() && !x.created && !x.canceled).await)?;
            ensure(&"put k; watch; progress request", rev(&p.header) >= r, format!("header revision >= {r}"), p)
        }).kubernetes(),
        case("watch.progress.after_events", "A progress notification's revision is at least that of every event already delivered.", doc::API, |ctx| async move {
            let (mut ws, _) = open(&ctx, prefix_watch(&ctx)).await?;
            let r = put(&ctx, "k", "v").await?;
            collect(&mut ws, 1, "watch; put k").await?;
            ok(&"progress request", ws.request_progress().await)?;
            let p = ok(&"progress response", ws.wait_for(|x| x.events.is_empty() && !x.created && !x.canceled).await)?;
            ensure(&"watch; put k; progress request", rev(&p.header) >= r, format!("header revision >= {r}"), p)
        }),
        case("watch.progress_notify.accepted", "A watch created with progress_notify and a start revision is created and delivers events (the Kubernetes watch).", doc::KUBERNETES, |ctx| async move {
            let r = put(&ctx, "k", "1").await?;
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { progress_notify: true, prev_kv: true, start_revision: r + 1, ..prefix_watch(&ctx) }).await?;
            put(&ctx, "k", "2").await?;
            let (evs, _) = collect(&mut ws, 1, "watch progress_notify prev_kv from rev+1; put k=2").await?;
            eq(&"watch progress_notify prev_kv from rev+1; put k=2", "(value, prev value)", (b"2".to_vec(), Some(b"1".to_vec())), (evs[0].kv.clone().unwrap_or_default().value, evs[0].prev_kv.as_ref().map(|k| k.value.clone())))
        }).kubernetes(),
        case("watch.progress_notify.periodic", "A watcher created with progress_notify receives event-less progress responses at the server's progress-notify interval while nothing changes.", doc::API, |ctx| async move {
            let r = put(&ctx, "k", "v").await?;
            let (mut ws, c) = open(&ctx, pb::WatchCreateRequest { progress_notify: true, ..prefix_watch(&ctx) }).await?;
            let p = ok(&"watch progress_notify on a server with a 500 ms interval; wait", ws.wait_for(|x| x.events.is_empty() && !x.created && !x.canceled).await)?;
            ensure(&"watch progress_notify; wait for a notification", p.watch_id == c.watch_id && rev(&p.header) >= r, format!("watch_id {} and header revision >= {r}", c.watch_id), p)
        }).server_flags(&["--experimental-watch-progress-notify-interval", "500ms"]).kubernetes(),
        case("watch.fragment.large_response_split", "With fragment = true a response above the request size limit is split: every part but the last has fragment = true.", doc::API, |ctx| async move {
            let big = "x".repeat(700 * 1024);
            let r = put(&ctx, "a", &big).await?;
            put(&ctx, "b", &big).await?;
            put(&ctx, "c", &big).await?;
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { fragment: true, start_revision: r, ..prefix_watch(&ctx) }).await?;
            let (evs, resps) = collect(&mut ws, 3, "3 puts of 700 KiB; watch fragment from the first").await?;
            let flags: Vec<bool> = resps.iter().map(|r| r.fragment).collect();
            ensure(&"3 puts of 700 KiB; watch fragment from the first", evs.len() == 3 && resps.len() >= 2 && flags[..flags.len() - 1].iter().all(|f| *f) && !flags[flags.len() - 1], "3 events over >= 2 responses, fragment on all but the last", flags)
        }),
        case("watch.fragment.off_one_response", "Without fragment, history in one batch is delivered whole, in revision order.", doc::API, |ctx| async move {
            let big = "x".repeat(300 * 1024);
            let r = put(&ctx, "a", &big).await?;
            put(&ctx, "b", &big).await?;
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { start_revision: r, ..prefix_watch(&ctx) }).await?;
            let (evs, resps) = collect(&mut ws, 2, "2 puts of 300 KiB; watch from the first").await?;
            ensure(&"2 puts of 300 KiB; watch from the first", resps.iter().all(|r| !r.fragment) && keys_of(&ctx, &evs) == sv(&[("a", PUT), ("b", PUT)]), "a then b, no fragment flag", keys_of(&ctx, &evs))
        }),
        case("watch.create.empty_range_canceled", "A watch whose range_end is below its key is canceled at creation with 'mvcc: watcher range is empty'.", doc::API, |ctx| async move {
            let req = pb::WatchCreateRequest { key: ctx.key("d"), range_end: ctx.key("b"), ..Default::default() };
            let (_, r) = ok(&req, ctx.client.watch(req.clone()).await)?;
            eq(&req, "(canceled, cancel_reason)", (true, E::MVCC_EMPTY_WATCHER_RANGE_MSG.to_string()), (r.canceled, r.cancel_reason))
        }),
        case("watch.create.key_equals_end_canceled", "A watch with range_end equal to key is an empty range and is canceled.", doc::API, |ctx| async move {
            let req = pb::WatchCreateRequest { key: ctx.key("d"), range_end: ctx.key("d"), ..Default::default() };
            let (_, r) = ok(&req, ctx.client.watch(req.clone()).await)?;
            eq(&req, "(canceled, cancel_reason)", (true, E::MVCC_EMPTY_WATCHER_RANGE_MSG.to_string()), (r.canceled, r.cancel_reason))
        }),
        case("watch.event.version_fields", "A watched PUT carries create_revision, mod_revision and version of the new generation.", doc::API, |ctx| async move {
            let r1 = put(&ctx, "k", "1").await?;
            let (mut ws, _) = open(&ctx, prefix_watch(&ctx)).await?;
            let r2 = put(&ctx, "k", "2").await?;
            let (evs, _) = collect(&mut ws, 1, "put k; watch; put k").await?;
            let kv = evs[0].kv.clone().unwrap_or_default();
            eq(&"put k; watch; put k", "(create, mod, version)", (r1, r2, 2), (kv.create_revision, kv.mod_revision, kv.version))
        }),
        case("watch.event.lease_field", "A watched PUT with a lease carries the lease id.", doc::API, |ctx| async move {
            let l = ok(&"grant", ctx.client.lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 0 }).await)?;
            let (mut ws, _) = open(&ctx, prefix_watch(&ctx)).await?;
            let p = pb::PutRequest { key: ctx.key("k"), value: b"v".to_vec(), lease: l.id, ..Default::default() };
            ok(&p, ctx.client.put_request(p.clone()).await)?;
            let (evs, _) = collect(&mut ws, 1, "watch; put k with lease").await?;
            let _ = ctx.client.lease_revoke(pb::LeaseRevokeRequest { id: l.id }).await;
            eq(&p, "event lease", l.id, evs[0].kv.clone().unwrap_or_default().lease)
        }),
    ]
}

fn streams() -> Vec<Case> {
    vec![
        case("watch.stream.many_watchers_routed", "Several watchers on one stream get distinct ids and each receives only its own keys' events.", doc::API, |ctx| async move {
            let (mut ws, first) = open(&ctx, pb::WatchCreateRequest { key: ctx.key("a"), ..Default::default() }).await?;
            let mut ids = vec![first.watch_id];
            for k in ["b", "c"] {
                let r = ok(&"create", ws.create(pb::WatchCreateRequest { key: ctx.key(k), ..Default::default() }).await)?;
                ids.push(r.watch_id);
            }
            let mut d = ids.clone();
            d.sort_unstable();
            d.dedup();
            eq(&"3 watchers on one stream", "distinct ids", 3, d.len())?;
            for k in ["c", "a", "b"] {
                put(&ctx, k, "v").await?;
            }
            let (_, resps) = collect(&mut ws, 3, "put c, a, b").await?;
            let mut routed: Vec<(i64, String)> = resps.iter().flat_map(|r| keys_of(&ctx, &r.events).into_iter().map(move |(k, _)| (r.watch_id, k))).collect();
            routed.sort();
            let mut want: Vec<(i64, String)> = ids.iter().zip(["a", "b", "c"]).map(|(i, k)| (*i, k.to_string())).collect();
            want.sort();
            eq(&"3 watchers on one stream; put c, a, b", "(watch_id, key)", want, routed)
        }),
        case("watch.stream.overlapping_watchers", "Two watchers of the same key on one stream both receive its event.", doc::API, |ctx| async move {
            let (mut ws, a) = open(&ctx, pb::WatchCreateRequest { key: ctx.key("k"), ..Default::default() }).await?;
            let b = ok(&"create", ws.create(pb::WatchCreateRequest { key: ctx.key("k"), ..Default::default() }).await)?;
            put(&ctx, "k", "v").await?;
            let (_, resps) = collect(&mut ws, 2, "2 watchers of k; put k").await?;
            let mut ids: Vec<i64> = resps.iter().filter(|r| !r.events.is_empty()).map(|r| r.watch_id).collect();
            ids.sort_unstable();
            let mut want = vec![a.watch_id, b.watch_id];
            want.sort_unstable();
            eq(&"2 watchers of k; put k", "watch ids with events", want, ids)
        }),
        case("watch.stream.hundred_watchers", "A stream carries 100 watchers, each receiving its key's event.", doc::LIMITS, |ctx| async move {
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { key: ctx.key("k000"), ..Default::default() }).await?;
            for i in 1..100 {
                ok(&"create", ws.create(pb::WatchCreateRequest { key: ctx.key(&format!("k{i:03}")), ..Default::default() }).await)?;
            }
            let req = pb::TxnRequest { success: (0..100).map(|i| put_op(ctx.key(&format!("k{i:03}")), "v")).collect(), ..Default::default() };
            ok(&req, ctx.client.txn(req.clone()).await)?;
            let (evs, _) = collect(&mut ws, 100, "100 watchers; txn putting the 100 keys").await?;
            eq(&"100 watchers; txn putting the 100 keys", "events", 100, evs.len())
        }),
        case("watch.stream.user_watch_id", "A watch_id chosen by the client is used for the watcher.", doc::GRPC, |ctx| async move {
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { key: ctx.key("x"), watch_id: 7, ..Default::default() }).await?;
            let r = ok(&"create id 42", ws.create(pb::WatchCreateRequest { key: ctx.key("k"), watch_id: 42, ..Default::default() }).await)?;
            eq(&"create watch_id 42", "watch_id", 42, r.watch_id)?;
            put(&ctx, "k", "v").await?;
            let (_, resps) = collect(&mut ws, 1, "put k").await?;
            eq(&"put k", "event's watch_id", 42, resps.iter().find(|r| !r.events.is_empty()).map(|r| r.watch_id).unwrap_or_default())
        }),
        case("watch.stream.duplicate_watch_id", "Reusing a watch_id active on the stream is refused with 'mvcc: duplicate watch ID provided on the WatchStream'.", doc::GRPC, |ctx| async move {
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { key: ctx.key("a"), watch_id: 5, ..Default::default() }).await?;
            ok(&"create id 5 again", ws.send_create(pb::WatchCreateRequest { key: ctx.key("b"), watch_id: 5, ..Default::default() }).await)?;
            let r = ok(&"create id 5 again", ws.wait_for(|r| r.canceled).await)?;
            eq(&"create id 5 twice", "(canceled, cancel_reason)", (true, E::MVCC_DUPLICATE_WATCH_ID_MSG.to_string()), (r.canceled, r.cancel_reason))
        }),
        case("watch.cancel.response", "Cancelling a watcher answers canceled = true with its id.", doc::API, |ctx| async move {
            let (mut ws, c) = open(&ctx, prefix_watch(&ctx)).await?;
            let r = ok(&"cancel", ws.cancel(c.watch_id).await)?;
            eq(&"cancel", "(canceled, watch_id)", (true, c.watch_id), (r.canceled, r.watch_id))
        }),
        case("watch.cancel.no_more_events", "After cancel, a watcher receives no more events.", doc::API, |ctx| async move {
            let (mut ws, c) = open(&ctx, prefix_watch(&ctx)).await?;
            ok(&"cancel", ws.cancel(c.watch_id).await)?;
            put(&ctx, "k", "v").await?;
            quiet(&mut ws, "cancel; put k").await
        }),
        case("watch.cancel.others_unaffected", "Cancelling one watcher leaves the others on the stream working.", doc::API, |ctx| async move {
            let (mut ws, a) = open(&ctx, pb::WatchCreateRequest { key: ctx.key("a"), ..Default::default() }).await?;
            let b = ok(&"create b", ws.create(pb::WatchCreateRequest { key: ctx.key("b"), ..Default::default() }).await)?;
            ok(&"cancel a", ws.cancel(a.watch_id).await)?;
            put(&ctx, "a", "v").await?;
            put(&ctx, "b", "v").await?;
            let (_, resps) = collect(&mut ws, 1, "cancel a; put a, b").await?;
            eq(&"cancel a; put a, b", "(watch_id, events)", (b.watch_id, sv(&[("b", PUT)])), (resps.last().map(|r| r.watch_id).unwrap_or_default(), keys_of(&ctx, &resps.last().map(|r| r.events.clone()).unwrap_or_default())))
        }),
        case("watch.stream.two_streams_independent", "Two streams watching the same key both receive its events.", doc::API, |ctx| async move {
            let (mut a, _) = open(&ctx, prefix_watch(&ctx)).await?;
            let (mut b, _) = open(&ctx, prefix_watch(&ctx)).await?;
            put(&ctx, "k", "v").await?;
            let (ea, _) = collect(&mut a, 1, "stream a").await?;
            let (eb, _) = collect(&mut b, 1, "stream b").await?;
            eq(&"2 streams; put k", "events", keys_of(&ctx, &ea), keys_of(&ctx, &eb))
        }),
    ]
}

fn compaction() -> Vec<Case> {
    vec![
        case("watch.compacted.start_below", "A watch from a compacted revision is canceled with compact_revision set to the compaction revision.", doc::API, |ctx| async move {
            let r1 = put(&ctx, "k", "1").await?;
            let r2 = put(&ctx, "k", "2").await?;
            ok(&"compact", ctx.client.compact(pb::CompactionRequest { revision: r2, physical: true }).await)?;
            let req = pb::WatchCreateRequest { start_revision: r1, ..prefix_watch(&ctx) };
            let (mut ws, first) = ok(&req, ctx.client.watch(req.clone()).await)?;
            let r = if first.canceled { first } else { ok(&req, ws.wait_for(|x| x.canceled).await)? };
            eq(&req, "(canceled, compact_revision)", (true, r2), (r.canceled, r.compact_revision))
        }).needs(Needs::Fresh(1)).kubernetes(),
        case("watch.compacted.start_at_compacted_ok", "A watch from exactly the compaction revision is not canceled and replays from it.", doc::API, |ctx| async move {
            put(&ctx, "k", "1").await?;
            let r2 = put(&ctx, "k", "2").await?;
            ok(&"compact", ctx.client.compact(pb::CompactionRequest { revision: r2, physical: true }).await)?;
            let (mut ws, _) = open(&ctx, pb::WatchCreateRequest { start_revision: r2, ..prefix_watch(&ctx) }).await?;
            let (evs, _) = collect(&mut ws, 1, "compact at r2; watch from r2").await?;
            eq(&"compact at r2; watch from r2", "value", b"2".to_vec(), evs[0].kv.clone().unwrap_or_default().value)
        }).needs(Needs::Fresh(1)),
        case("watch.compacted.live_watch_survives", "A watch already following live events is not disturbed by a later compaction.", doc::API, |ctx| async move {
            let (mut ws, _) = open(&ctx, prefix_watch(&ctx)).await?;
            let r = put(&ctx, "k", "1").await?;
            ok(&"compact", ctx.client.compact(pb::CompactionRequest { revision: r, physical: true }).await)?;
            put(&ctx, "k", "2").await?;
            let (evs, _) = collect(&mut ws, 2, "watch; put; compact; put").await?;
            eq(&"watch; put; compact; put", "values", vec![b"1".to_vec(), b"2".to_vec()], evs.iter().map(|e| e.kv.clone().unwrap_or_default().value).collect())
        }).needs(Needs::Fresh(1)),
        case("watch.compacted.cancel_reason_empty", "The compaction cancel carries an empty cancel_reason (clients map compact_revision to 'required revision has been compacted').", doc::API, |ctx| async move {
            let r1 = put(&ctx, "k", "1").await?;
            let r2 = put(&ctx, "k", "2").await?;
            ok(&"compact", ctx.client.compact(pb::CompactionRequest { revision: r2, physical: true }).await)?;
            let req = pb::WatchCreateRequest { start_revision: r1, ..prefix_watch(&ctx) };
            let (mut ws, first) = ok(&req, ctx.client.watch(req.clone()).await)?;
            let r = if first.canceled { first } else { ok(&req, ws.wait_for(|x| x.canceled).await)? };
            eq(&req, "cancel_reason", String::new(), r.cancel_reason)
        }).needs(Needs::Fresh(1)).versions(Versions::ALL),
    ]
}
