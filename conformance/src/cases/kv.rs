//! KV: Range, Put, DeleteRange, Txn and Compact.

use gauntlet_api::etcdserverpb::{
    self as pb, compare::CompareResult as R, compare::TargetUnion as T, range_request,
};
use gauntlet_api::rpctypes as E;

use super::{cmp, del_op, doc, get_op, names, op_put, op_range, put, put_op, range, range_op, rev};
use crate::case::{case, ensure, eq, err_is, failure, ok, Case, CheckResult, Ctx, Failure, Needs};

/// The range fixture: `a`..`e` put in order with values `v-a`..`v-e`, then `b` again
/// with `v-b2`. `rev[0..5]` are the five creates, `rev[5]` the update of `b`.
#[derive(Debug, Clone, Copy)]
pub struct Fix {
    rev: [i64; 6],
}

async fn fixture(ctx: &Ctx) -> Result<Fix, Failure> {
    let mut rev = [0; 6];
    for (i, k) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        rev[i] = put(ctx, k, &format!("v-{k}")).await?;
    }
    rev[5] = put(ctx, "b", "v-b2").await?;
    Ok(Fix { rev })
}

type Shape = fn(&Ctx, &Fix, &mut pb::RangeRequest);
type Extra = fn(&Fix, &pb::RangeResponse) -> Result<(), String>;

/// A range over the fixture: the request shape and the exact answer.
struct RangeSpec {
    id: &'static str,
    guarantee: &'static str,
    shape: Shape,
    keys: &'static [&'static str],
    /// Exact `count`, or `None` to skip.
    count: Option<i64>,
    more: Option<bool>,
    extra: Option<Extra>,
    kubernetes: bool,
}

fn sort(target: range_request::SortTarget, order: range_request::SortOrder) -> (i32, i32) {
    (target as i32, order as i32)
}

fn range_specs() -> Vec<RangeSpec> {
    use range_request::{SortOrder as O, SortTarget as S};
    fn spec(
        id: &'static str,
        guarantee: &'static str,
        shape: Shape,
        keys: &'static [&'static str],
        count: Option<i64>,
        more: Option<bool>,
    ) -> RangeSpec {
        RangeSpec {
            id,
            guarantee,
            shape,
            keys,
            count,
            more,
            extra: None,
            kubernetes: false,
        }
    }
    let mut v = vec![
        spec("kv.range.single_key", "A range with no range_end returns exactly the one key.", |c, _, r| { r.key = c.key("c"); r.range_end.clear(); }, &["c"], Some(1), Some(false)),
        spec("kv.range.single_key_missing", "A range of a key that does not exist returns no kvs and count 0.", |c, _, r| { r.key = c.key("zz"); r.range_end.clear(); }, &[], Some(0), Some(false)),
        spec("kv.range.interval_half_open", "range_end is exclusive: [b, d) returns b and c.", |c, _, r| { r.key = c.key("b"); r.range_end = c.key("d"); }, &["b", "c"], Some(2), Some(false)),
        spec("kv.range.prefix", "range_end = prefix+1 returns every key with the prefix, sorted by key.", |_, _, _| {}, &["a", "b", "c", "d", "e"], Some(5), Some(false)),
        spec("kv.range.end_before_key_empty", "A range_end lower than key selects nothing.", |c, _, r| { r.key = c.key("d"); r.range_end = c.key("b"); }, &[], Some(0), Some(false)),
        spec("kv.range.prefix_limit_more", "With limit below the match count, the first keys are returned, more is true and count is the full count.", |_, _, r| r.limit = 2, &["a", "b"], Some(5), Some(true)),
        spec("kv.range.limit_equal_count", "A limit equal to the match count returns all and more is false.", |_, _, r| r.limit = 5, &["a", "b", "c", "d", "e"], Some(5), Some(false)),
        spec("kv.range.limit_above_count", "A limit above the match count returns all and more is false.", |_, _, r| r.limit = 50, &["a", "b", "c", "d", "e"], Some(5), Some(false)),
        spec("kv.range.limit_one", "limit 1 returns the smallest key.", |_, _, r| r.limit = 1, &["a"], Some(5), Some(true)),
        spec("kv.range.limit_zero_unlimited", "limit 0 means no limit.", |_, _, r| r.limit = 0, &["a", "b", "c", "d", "e"], Some(5), Some(false)),
        spec("kv.range.count_only", "count_only returns the count and no kvs.", |_, _, r| r.count_only = true, &[], Some(5), None),
        spec("kv.range.count_only_interval", "count_only over [b, e) counts 3 keys.", |c, _, r| { r.key = c.key("b"); r.range_end = c.key("e"); r.count_only = true; }, &[], Some(3), None),
        spec("kv.range.count_only_with_limit", "count_only ignores limit for the count.", |_, _, r| { r.count_only = true; r.limit = 2; }, &[], Some(5), None),
        spec("kv.range.sort_key_descend", "sort_target KEY, DESCEND returns keys in reverse order.", |_, _, r| { (r.sort_target, r.sort_order) = sort(S::Key, O::Descend); }, &["e", "d", "c", "b", "a"], Some(5), Some(false)),
        spec("kv.range.sort_key_ascend", "sort_target KEY, ASCEND returns keys in order.", |_, _, r| { (r.sort_target, r.sort_order) = sort(S::Key, O::Ascend); }, &["a", "b", "c", "d", "e"], Some(5), Some(false)),
        spec("kv.range.sort_value_descend", "sort_target VALUE, DESCEND orders by value bytes.", |_, _, r| { (r.sort_target, r.sort_order) = sort(S::Value, O::Descend); }, &["e", "d", "c", "b", "a"], Some(5), Some(false)),
        spec("kv.range.sort_create_descend", "sort_target CREATE, DESCEND orders by create_revision, newest first.", |_, _, r| { (r.sort_target, r.sort_order) = sort(S::Create, O::Descend); }, &["e", "d", "c", "b", "a"], Some(5), Some(false)),
        spec("kv.range.sort_mod_ascend", "sort_target MOD, ASCEND orders by mod_revision: the updated key comes last.", |_, _, r| { (r.sort_target, r.sort_order) = sort(S::Mod, O::Ascend); }, &["a", "c", "d", "e", "b"], Some(5), Some(false)),
        spec("kv.range.sort_mod_descend", "sort_target MOD, DESCEND puts the last modified key first.", |_, _, r| { (r.sort_target, r.sort_order) = sort(S::Mod, O::Descend); }, &["b", "e", "d", "c", "a"], Some(5), Some(false)),
        spec("kv.range.sort_descend_limit", "Sorting applies before limit: KEY DESCEND with limit 2 returns the two largest keys, more true.", |_, _, r| { (r.sort_target, r.sort_order) = sort(S::Key, O::Descend); r.limit = 2; }, &["e", "d"], Some(5), Some(true)),
        spec("kv.range.sort_mod_descend_limit_one", "MOD DESCEND with limit 1 returns the most recently modified key.", |_, _, r| { (r.sort_target, r.sort_order) = sort(S::Mod, O::Descend); r.limit = 1; }, &["b"], Some(5), Some(true)),
        spec("kv.range.sort_create_ascend_limit", "CREATE ASCEND with limit 3 returns the three oldest keys.", |_, _, r| { (r.sort_target, r.sort_order) = sort(S::Create, O::Ascend); r.limit = 3; }, &["a", "b", "c"], Some(5), Some(true)),
        spec("kv.range.min_mod_revision", "min_mod_revision filters out keys modified before it.", |_, f, r| r.min_mod_revision = f.rev[5], &["b"], None, None),
        spec("kv.range.max_mod_revision", "max_mod_revision filters out keys modified after it.", |_, f, r| r.max_mod_revision = f.rev[2], &["a", "c"], None, None),
        spec("kv.range.min_create_revision", "min_create_revision filters out keys created before it.", |_, f, r| r.min_create_revision = f.rev[3], &["d", "e"], None, None),
        spec("kv.range.max_create_revision", "max_create_revision filters out keys created after it.", |_, f, r| r.max_create_revision = f.rev[1], &["a", "b"], None, None),
        spec("kv.range.mod_revision_window", "min and max mod_revision together select the keys modified inside the window.", |_, f, r| { r.min_mod_revision = f.rev[1]; r.max_mod_revision = f.rev[3]; }, &["c", "d"], None, None),
        spec("kv.range.revision_past", "A range at a past revision sees the store as it was: only a and b existed.", |_, f, r| r.revision = f.rev[1], &["a", "b"], Some(2), Some(false)),
        spec("kv.range.revision_before_update", "At the revision before b's update, b has its first value.", |_, f, r| { r.revision = f.rev[4]; }, &["a", "b", "c", "d", "e"], Some(5), Some(false)),
        spec("kv.range.revision_limit", "revision and limit combine: the page comes from the past revision.", |_, f, r| { r.revision = f.rev[2]; r.limit = 2; }, &["a", "b"], Some(3), Some(true)),
        spec("kv.range.revision_count_only", "count_only at a past revision counts the keys that existed then.", |_, f, r| { r.revision = f.rev[3]; r.count_only = true; }, &[], Some(4), None),
        spec("kv.range.keys_only_limit", "keys_only with limit returns the first keys without values.", |_, _, r| { r.keys_only = true; r.limit = 3; }, &["a", "b", "c"], Some(5), Some(true)),
        spec("kv.range.serializable", "A serializable range on the member that served the writes returns them.", |_, _, r| r.serializable = true, &["a", "b", "c", "d", "e"], Some(5), Some(false)),
        spec("kv.range.serializable_limit", "serializable combines with limit.", |_, _, r| { r.serializable = true; r.limit = 4; }, &["a", "b", "c", "d"], Some(5), Some(true)),
    ];
    v.push(RangeSpec {
        extra: Some(|_, r| {
            if r.kvs
                .iter()
                .all(|kv| kv.value.is_empty() && !kv.key.is_empty())
            {
                Ok(())
            } else {
                Err("every kv has its key and an empty value".into())
            }
        }),
        ..spec(
            "kv.range.keys_only",
            "keys_only returns keys without values.",
            |_, _, r| r.keys_only = true,
            &["a", "b", "c", "d", "e"],
            Some(5),
            Some(false),
        )
    });
    v.push(RangeSpec {
        extra: Some(|f, r| {
            let b = &r.kvs[1];
            if b.value == b"v-b" && b.mod_revision == f.rev[1] && b.version == 1 {
                Ok(())
            } else {
                Err(format!(
                    "b = v-b with mod_revision {} and version 1",
                    f.rev[1]
                ))
            }
        }),
        ..spec(
            "kv.range.revision_old_value",
            "At a past revision a key has the value, mod_revision and version it had then.",
            |_, f, r| r.revision = f.rev[4],
            &["a", "b", "c", "d", "e"],
            Some(5),
            Some(false),
        )
    });
    v.push(RangeSpec {
        extra: Some(|f, r| {
            let kv = &r.kvs[0];
            if kv.create_revision == f.rev[1]
                && kv.mod_revision == f.rev[5]
                && kv.version == 2
                && kv.value == b"v-b2"
            {
                Ok(())
            } else {
                Err(format!(
                    "create_revision {}, mod_revision {}, version 2, value v-b2",
                    f.rev[1], f.rev[5]
                ))
            }
        }),
        ..spec(
            "kv.range.kv_fields",
            "A key's create_revision stays, mod_revision and version follow its updates.",
            |c, _, r| {
                r.key = c.key("b");
                r.range_end.clear();
            },
            &["b"],
            Some(1),
            Some(false),
        )
    });
    v.push(RangeSpec {
        extra: Some(|f, r| {
            if rev(&r.header) >= f.rev[5] {
                Ok(())
            } else {
                Err(format!("header revision >= {}", f.rev[5]))
            }
        }),
        ..spec(
            "kv.range.header_revision_current",
            "A range's header revision is the store's current revision, at least the last write's.",
            |_, _, _| {},
            &["a", "b", "c", "d", "e"],
            Some(5),
            Some(false),
        )
    });
    v.push(RangeSpec {
        extra: Some(|f, r| {
            if rev(&r.header) >= f.rev[5] {
                Ok(())
            } else {
                Err("header revision is the current revision, not the requested one".into())
            }
        }),
        ..spec(
            "kv.range.header_revision_not_requested",
            "A range at a past revision still carries the current revision in its header.",
            |_, f, r| r.revision = f.rev[0],
            &["a"],
            Some(1),
            Some(false),
        )
    });
    v.push(RangeSpec {
        extra: Some(|_, r| {
            let k = &r.kvs[0];
            if k.version == 2 {
                Ok(())
            } else {
                Err("the updated key (version 2) sorts last".into())
            }
        }),
        ..spec(
            "kv.range.sort_version_ascend_last",
            "sort_target VERSION, ASCEND puts the key with the highest version last.",
            |_, _, r| {
                (r.sort_target, r.sort_order) = sort(S::Version, O::Descend);
                r.limit = 1;
            },
            &["b"],
            Some(5),
            Some(true),
        )
    });
    for s in v.iter_mut() {
        if matches!(
            s.id,
            "kv.range.prefix_limit_more"
                | "kv.range.revision_limit"
                | "kv.range.count_only"
                | "kv.range.revision_count_only"
        ) {
            s.kubernetes = true;
        }
    }
    v
}

fn range_case(s: RangeSpec) -> Case {
    let RangeSpec {
        id,
        guarantee,
        shape,
        keys,
        count,
        more,
        extra,
        kubernetes,
    } = s;
    let c = case(id, guarantee, doc::API, move |ctx| async move {
        let f = fixture(&ctx).await?;
        let serializable_member = ctx.members[0].clone();
        let (req, resp) = {
            let mut req = pb::RangeRequest {
                key: ctx.prefix.clone().into_bytes(),
                range_end: ctx.prefix_end(),
                ..Default::default()
            };
            shape(&ctx, &f, &mut req);
            let resp = if req.serializable {
                // Linearizable read first, so the member has applied the writes.
                ok(&req, serializable_member.get(ctx.key("a")).await)?;
                ok(&req, serializable_member.range(req.clone()).await)?
            } else {
                ok(&req, ctx.client.range(req.clone()).await)?
            };
            (req, resp)
        };
        let got = names(&ctx, &resp.kvs);
        eq(
            &req,
            "keys",
            keys.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
            got,
        )?;
        if let Some(n) = count {
            eq(&req, "count", n, resp.count)?;
        }
        if let Some(m) = more {
            eq(&req, "more", m, resp.more)?;
        }
        if let Some(x) = extra {
            x(&f, &resp).map_err(|want| failure(&req, want, crate::case::show(&resp)))?;
        }
        Ok(())
    });
    if kubernetes {
        c.kubernetes()
    } else {
        c
    }
}

/// Checks `put` of one request shape fails with `err`.
fn put_error(
    id: &'static str,
    guarantee: &'static str,
    err: gauntlet_api::rpctypes::EtcdError,
    shape: fn(&Ctx, &mut pb::PutRequest),
    seed: bool,
) -> Case {
    case(id, guarantee, doc::ERRORS, move |ctx| async move {
        if seed {
            put(&ctx, "k", "v").await?;
        }
        let mut req = pb::PutRequest {
            key: ctx.key("k"),
            value: b"v".to_vec(),
            ..Default::default()
        };
        shape(&ctx, &mut req);
        err_is(&req, ctx.client.put_request(req.clone()).await, err)
    })
}

fn txn_error(
    id: &'static str,
    guarantee: &'static str,
    err: gauntlet_api::rpctypes::EtcdError,
    build: fn(&Ctx) -> pb::TxnRequest,
) -> Case {
    case(id, guarantee, doc::ERRORS, move |ctx| async move {
        let req = build(&ctx);
        err_is(&req, ctx.client.txn(req.clone()).await, err)
    })
}

pub fn cases() -> Vec<Case> {
    let mut v: Vec<Case> = range_specs().into_iter().map(range_case).collect();
    v.extend(range_misc());
    v.extend(put_cases());
    v.extend(delete_cases());
    v.extend(txn_cases());
    v.extend(compact_cases());
    v
}

fn range_misc() -> Vec<Case> {
    vec![
        case("kv.range.empty_key_rejected", "A range with an empty key is rejected with 'key is not provided'.", doc::ERRORS, |ctx| async move {
            let req = pb::RangeRequest::default();
            let _ = &ctx;
            err_is(&req, ctx.client.range(req.clone()).await, E::EMPTY_KEY)
        }),
        case("kv.range.future_revision", "A range at a revision above the current one fails with 'required revision is a future revision'.", doc::ERRORS, |ctx| async move {
            let r = put(&ctx, "k", "v").await?;
            let req = pb::RangeRequest { key: ctx.key("k"), revision: r + 1_000_000, ..Default::default() };
            err_is(&req, ctx.client.range(req.clone()).await, E::FUTURE_REV)
        }),
        case("kv.range.from_key", "range_end \\0 selects every key >= key.", doc::API, |ctx| async move {
            fixture(&ctx).await?;
            let req = pb::RangeRequest { key: ctx.key("c"), range_end: vec![0], limit: 3, ..Default::default() };
            let resp = ok(&req, ctx.client.range(req.clone()).await)?;
            eq(&req, "keys", vec!["c".to_string(), "d".into(), "e".into()], names(&ctx, &resp.kvs))?;
            ensure(&req, resp.count >= 3, "count >= 3", resp.count)
        }),
        case("kv.range.deleted_key_at_old_revision", "A deleted key is still visible at a revision before its deletion.", doc::GUARANTEES, |ctx| async move {
            let r = put(&ctx, "x", "old").await?;
            ok(&"delete x", ctx.client.delete(ctx.key("x")).await)?;
            let req = pb::RangeRequest { key: ctx.key("x"), revision: r, ..Default::default() };
            let resp = ok(&req, ctx.client.range(req.clone()).await)?;
            eq(&req, "values", vec![b"old".to_vec()], resp.kvs.iter().map(|k| k.value.clone()).collect())
        }),
        case("kv.range.binary_key", "Keys are arbitrary bytes: a key with 0x00 and 0xff round-trips exactly.", doc::API, |ctx| async move {
            let mut key = ctx.key("bin");
            key.extend_from_slice(&[0, 0xff, 0x80, 1]);
            let req = pb::PutRequest { key: key.clone(), value: vec![0xff, 0], ..Default::default() };
            ok(&req, ctx.client.put_request(req.clone()).await)?;
            let got = ok(&req, ctx.client.get(key.clone()).await)?;
            eq(&req, "kvs", vec![(key, vec![0xff, 0])], got.kvs.iter().map(|k| (k.key.clone(), k.value.clone())).collect())
        }),
        case("kv.range.pagination_consistent", "Paging with limit at a fixed revision sees one snapshot even while keys change (as Kubernetes lists).", doc::KUBERNETES, |ctx| async move {
            fixture(&ctx).await?;
            let (req, first) = range(&ctx, |r| r.limit = 2).await?;
            let at = rev(&first.header);
            put(&ctx, "bb", "new").await?;
            ok(&"delete d", ctx.client.delete(ctx.key("d")).await)?;
            let mut seen = names(&ctx, &first.kvs);
            let mut next = first.kvs.last().map(|k| k.key.clone()).unwrap_or_default();
            for _ in 0..5 {
                next.push(0);
                let (_, page) = range(&ctx, |r| { r.key = next.clone(); r.limit = 2; r.revision = at; }).await?;
                seen.extend(names(&ctx, &page.kvs));
                if !page.more { break; }
                next = page.kvs.last().map(|k| k.key.clone()).unwrap_or_default();
            }
            eq(&req, "keys over all pages at the first page's revision", vec!["a", "b", "c", "d", "e"].into_iter().map(String::from).collect::<Vec<_>>(), seen)
        }).kubernetes(),
        case("kv.range.revision_negative_is_current", "A revision <= 0 means the current revision.", doc::GRPC, |ctx| async move {
            put(&ctx, "k", "v1").await?;
            let req = pb::RangeRequest { key: ctx.key("k"), revision: 0, ..Default::default() };
            let resp = ok(&req, ctx.client.range(req.clone()).await)?;
            eq(&req, "count", 1, resp.count)
        }),
        case("kv.range.linearizable_after_write_other_member", "A linearizable range on one member sees a write acknowledged by another member.", doc::GUARANTEES, |ctx| async move {
            let n = ctx.members.len();
            for i in 0..n {
                let w = &ctx.members[i];
                let r = &ctx.members[(i + 1) % n];
                let v = format!("v{i}");
                let req = pb::PutRequest { key: ctx.key("k"), value: v.clone().into_bytes(), ..Default::default() };
                ok(&req, w.put_request(req.clone()).await)?;
                let got = ok(&"range k", r.get(ctx.key("k")).await)?;
                eq(&format!("put k={v} on member {i}, then range k on member {}", (i + 1) % n), "value", v.into_bytes(), got.kvs.first().map(|k| k.value.clone()).unwrap_or_default())?;
            }
            Ok(())
        }).needs(Needs::Members(3)),
        case("kv.range.header_revision_monotonic_across_members", "Header revisions never go backwards for linearizable reads, whichever member answers.", doc::GUARANTEES, |ctx| async move {
            let mut last = 0;
            for i in 0..9 {
                put(&ctx, "k", &i.to_string()).await?;
                let m = &ctx.members[i % ctx.members.len()];
                let got = ok(&"range k", m.get(ctx.key("k")).await)?;
                let r = rev(&got.header);
                ensure(&format!("range k on member {}", i % ctx.members.len()), r >= last, format!("header revision >= {last}"), r)?;
                last = r;
            }
            Ok(())
        }).needs(Needs::Members(3)),
    ]
}

fn put_cases() -> Vec<Case> {
    vec![
        case("kv.put.revision_matches_kv", "A put's header revision is the mod_revision the key then has.", doc::API, |ctx| async move {
            let r = put(&ctx, "k", "v").await?;
            let got = ok(&"range k", ctx.client.get(ctx.key("k")).await)?;
            eq(&"put k, range k", "mod_revision", r, got.kvs.first().map(|k| k.mod_revision).unwrap_or_default())
        }),
        case("kv.put.revision_increases", "Each put gets a higher revision than the previous one.", doc::GUARANTEES, |ctx| async move {
            let a = put(&ctx, "k", "1").await?;
            let b = put(&ctx, "k", "2").await?;
            ensure(&"put k twice", b > a, format!("second revision > {a}"), b)
        }),
        case("kv.put.create_then_version_one", "A new key has version 1 and create_revision equal to mod_revision.", doc::API, |ctx| async move {
            let r = put(&ctx, "k", "v").await?;
            let got = ok(&"range k", ctx.client.get(ctx.key("k")).await)?;
            let kv = got.kvs.first().cloned().unwrap_or_default();
            eq(&"put k, range k", "(create, mod, version)", (r, r, 1), (kv.create_revision, kv.mod_revision, kv.version))
        }),
        case("kv.put.update_increments_version", "Updating a key increments its version and keeps create_revision.", doc::API, |ctx| async move {
            let r1 = put(&ctx, "k", "1").await?;
            put(&ctx, "k", "2").await?;
            let r3 = put(&ctx, "k", "3").await?;
            let got = ok(&"range k", ctx.client.get(ctx.key("k")).await)?;
            let kv = got.kvs.first().cloned().unwrap_or_default();
            eq(&"put k 3 times, range k", "(create, mod, version)", (r1, r3, 3), (kv.create_revision, kv.mod_revision, kv.version))
        }),
        case("kv.range.reads_see_completed_writes", "A linearizable read started after a write completed sees it, even if the same read was answered before the write.", doc::GUARANTEES, |ctx| async move {
            let before = ok(&"range k (absent)", ctx.client.get(ctx.key("k")).await)?;
            eq(&"range k before any put", "keys", 0, before.kvs.len())?;
            let rev = put(&ctx, "k", "v1").await?;
            let after = ok(&"range k after put k=v1", ctx.client.get(ctx.key("k")).await)?;
            let kv = after.kvs.first().cloned().unwrap_or_default();
            eq(&"range k after put k=v1", "(value, mod_revision)", (b"v1".to_vec(), rev), (kv.value, kv.mod_revision))?;
            put(&ctx, "k", "v2").await?;
            let again = ok(&"range k after put k=v2", ctx.client.get(ctx.key("k")).await)?;
            let kv = again.kvs.first().cloned().unwrap_or_default();
            eq(&"range k after put k=v2", "value", b"v2".to_vec(), kv.value)
        }),
        case("kv.put.same_value_still_new_revision", "Putting the same value again is still a modification: version and mod_revision change.", doc::API, |ctx| async move {
            let r1 = put(&ctx, "k", "same").await?;
            let r2 = put(&ctx, "k", "same").await?;
            let got = ok(&"range k", ctx.client.get(ctx.key("k")).await)?;
            let kv = got.kvs.first().cloned().unwrap_or_default();
            ensure(&"put k=same twice", r2 > r1 && kv.version == 2 && kv.mod_revision == r2, format!("version 2, mod_revision {r2}"), kv)
        }),
        case("kv.put.prev_kv", "prev_kv returns the key-value pair before the put.", doc::API, |ctx| async move {
            let r1 = put(&ctx, "k", "old").await?;
            let req = pb::PutRequest { key: ctx.key("k"), value: b"new".to_vec(), prev_kv: true, ..Default::default() };
            let resp = ok(&req, ctx.client.put_request(req.clone()).await)?;
            let p = resp.prev_kv.unwrap_or_default();
            eq(&req, "prev_kv (value, mod_revision, version)", (b"old".to_vec(), r1, 1), (p.value, p.mod_revision, p.version))
        }),
        case("kv.put.prev_kv_new_key", "prev_kv on a key that did not exist returns no prev_kv.", doc::API, |ctx| async move {
            let req = pb::PutRequest { key: ctx.key("new"), value: b"v".to_vec(), prev_kv: true, ..Default::default() };
            let resp = ok(&req, ctx.client.put_request(req.clone()).await)?;
            eq(&req, "prev_kv", None, resp.prev_kv)
        }),
        case("kv.put.no_prev_kv_by_default", "Without prev_kv the response carries no previous pair.", doc::API, |ctx| async move {
            put(&ctx, "k", "old").await?;
            let req = pb::PutRequest { key: ctx.key("k"), value: b"new".to_vec(), ..Default::default() };
            let resp = ok(&req, ctx.client.put_request(req.clone()).await)?;
            eq(&req, "prev_kv", None, resp.prev_kv)
        }),
        case("kv.put.empty_value", "An empty value is a valid value.", doc::API, |ctx| async move {
            put(&ctx, "k", "").await?;
            let got = ok(&"range k", ctx.client.get(ctx.key("k")).await)?;
            eq(&"put k='', range k", "(count, value)", (1, Vec::<u8>::new()), (got.count, got.kvs.first().map(|k| k.value.clone()).unwrap_or_else(|| b"missing".to_vec())))
        }),
        case("kv.put.ignore_value", "ignore_value updates the key keeping its current value.", doc::API, |ctx| async move {
            put(&ctx, "k", "keep").await?;
            let req = pb::PutRequest { key: ctx.key("k"), ignore_value: true, ..Default::default() };
            ok(&req, ctx.client.put_request(req.clone()).await)?;
            let got = ok(&req, ctx.client.get(ctx.key("k")).await)?;
            let kv = got.kvs.first().cloned().unwrap_or_default();
            eq(&req, "(value, version)", (b"keep".to_vec(), 2), (kv.value, kv.version))
        }),
        put_error("kv.put.ignore_value_with_value", "ignore_value with a value is rejected with 'value is provided'.", E::VALUE_PROVIDED, |_, r| r.ignore_value = true, true),
        put_error("kv.put.ignore_value_missing_key", "ignore_value on a key that does not exist fails with 'key not found'.", E::KEY_NOT_FOUND, |_, r| { r.ignore_value = true; r.value.clear(); }, false),
        put_error("kv.put.ignore_lease_with_lease", "ignore_lease with a lease is rejected with 'lease is provided'.", E::LEASE_PROVIDED, |_, r| { r.ignore_lease = true; r.lease = 12345; }, true),
        put_error("kv.put.ignore_lease_missing_key", "ignore_lease on a key that does not exist fails with 'key not found'.", E::KEY_NOT_FOUND, |_, r| r.ignore_lease = true, false),
        put_error("kv.put.empty_key", "A put with an empty key is rejected with 'key is not provided'.", E::EMPTY_KEY, |_, r| r.key.clear(), false),
        put_error("kv.put.lease_not_found", "A put with a lease that does not exist fails with 'requested lease not found'.", E::LEASE_NOT_FOUND, |_, r| r.lease = 0x7ead_beef_1234, false),
        case("kv.put.ignore_lease_keeps_lease", "ignore_lease updates the value keeping the key's lease.", doc::API, |ctx| async move {
            let l = ok(&"grant", ctx.client.lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 0 }).await)?;
            let req0 = pb::PutRequest { key: ctx.key("k"), value: b"1".to_vec(), lease: l.id, ..Default::default() };
            ok(&req0, ctx.client.put_request(req0.clone()).await)?;
            let req = pb::PutRequest { key: ctx.key("k"), value: b"2".to_vec(), ignore_lease: true, ..Default::default() };
            ok(&req, ctx.client.put_request(req.clone()).await)?;
            let got = ok(&req, ctx.client.get(ctx.key("k")).await)?;
            let kv = got.kvs.first().cloned().unwrap_or_default();
            let _ = ctx.client.lease_revoke(pb::LeaseRevokeRequest { id: l.id }).await;
            eq(&req, "(value, lease)", (b"2".to_vec(), l.id), (kv.value, kv.lease))
        }),
        case("kv.put.without_lease_detaches", "A plain put on a key with a lease detaches it: the key survives the lease's revocation.", doc::API, |ctx| async move {
            let l = ok(&"grant", ctx.client.lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 0 }).await)?;
            let req0 = pb::PutRequest { key: ctx.key("k"), value: b"1".to_vec(), lease: l.id, ..Default::default() };
            ok(&req0, ctx.client.put_request(req0.clone()).await)?;
            put(&ctx, "k", "2").await?;
            ok(&"revoke", ctx.client.lease_revoke(pb::LeaseRevokeRequest { id: l.id }).await)?;
            let got = ok(&"range k", ctx.client.get(ctx.key("k")).await)?;
            eq(&"put k with lease, put k without, revoke lease, range k", "(count, lease)", (1, 0), (got.count, got.kvs.first().map(|k| k.lease).unwrap_or(-1)))
        }),
        case("kv.put.large_value_1mib", "A 1 MiB value (below the 1.5 MiB request limit) is accepted and read back whole.", doc::LIMITS, |ctx| async move {
            let value = vec![b'x'; 1 << 20];
            let req = pb::PutRequest { key: ctx.key("big"), value: value.clone(), ..Default::default() };
            ok(&"put 1 MiB", ctx.client.put_request(req).await)?;
            let got = ok(&"range big", ctx.client.get(ctx.key("big")).await)?;
            eq(&"put 1 MiB, range it", "value length", value.len(), got.kvs.first().map(|k| k.value.len()).unwrap_or(0))
        }),
        case("kv.put.request_too_large", "A put above the default 1.5 MiB request limit (and below the gRPC limit) fails with 'request is too large'.", doc::LIMITS, |ctx| async move {
            let req = pb::PutRequest { key: ctx.key("huge"), value: vec![b'x'; 1_700_000], ..Default::default() };
            let r = ctx.client.put_request(req).await;
            err_is(&"put 1.7 MB value", r, E::REQUEST_TOO_LARGE)
        }),
        case("kv.put.over_grpc_limit", "A request above the server's gRPC receive limit (1.5 MiB + 512 KiB) is refused with ResourceExhausted.", doc::LIMITS, |ctx| async move {
            let req = pb::PutRequest { key: ctx.key("huge"), value: vec![b'x'; 3 << 20], ..Default::default() };
            match ctx.client.put_request(req).await {
                Err(e) if e.code() == Some(tonic::Code::ResourceExhausted) => Ok(()),
                other => Err(failure(&"put 3 MiB value", "ResourceExhausted", format!("{other:?}").chars().take(300).collect::<String>())),
            }
        }),
        case("kv.put.header_fields", "Every response header carries cluster_id, member_id, revision and raft_term, all non-zero.", doc::API, |ctx| async move {
            let req = pb::PutRequest { key: ctx.key("k"), value: b"v".to_vec(), ..Default::default() };
            let resp = ok(&req, ctx.client.put_request(req.clone()).await)?;
            let h = resp.header.unwrap_or_default();
            ensure(&req, h.cluster_id != 0 && h.member_id != 0 && h.revision > 0 && h.raft_term > 0, "all header fields non-zero", h)
        }),
        case("kv.put.header_member_in_member_list", "A header's member_id and cluster_id name the member that answered and its cluster.", doc::API, |ctx| async move {
            let list = ok(&"member list", ctx.client.member_list(pb::MemberListRequest::default()).await)?;
            let ids: Vec<u64> = list.members.iter().map(|m| m.id).collect();
            let lh = list.header.unwrap_or_default();
            for (i, m) in ctx.members.iter().enumerate() {
                let req = pb::PutRequest { key: ctx.key("k"), value: b"v".to_vec(), ..Default::default() };
                let resp = ok(&req, m.put_request(req.clone()).await)?;
                let h = resp.header.unwrap_or_default();
                ensure(&format!("put k on member {i}"), ids.contains(&h.member_id) && h.cluster_id == lh.cluster_id, format!("member_id in {ids:x?}, cluster_id {:x}", lh.cluster_id), h)?;
            }
            Ok(())
        }),
        case("kv.put.distinct_members_distinct_ids", "Each member answers with its own member_id.", doc::API, |ctx| async move {
            let mut ids = Vec::new();
            for m in &ctx.members {
                let r = ok(&"range k", m.get(ctx.key("k")).await)?;
                ids.push(r.header.unwrap_or_default().member_id);
            }
            let mut d = ids.clone();
            d.sort_unstable();
            d.dedup();
            eq(&"range on each member", "distinct member ids", ids.len(), d.len())
        }).needs(Needs::Members(3)),
    ]
}

fn delete_cases() -> Vec<Case> {
    vec![
        case("kv.delete.single", "Deleting an existing key reports deleted = 1 and the key is gone.", doc::API, |ctx| async move {
            put(&ctx, "k", "v").await?;
            let req = pb::DeleteRangeRequest { key: ctx.key("k"), ..Default::default() };
            let resp = ok(&req, ctx.client.delete_range(req.clone()).await)?;
            eq(&req, "deleted", 1, resp.deleted)?;
            let got = ok(&req, ctx.client.get(ctx.key("k")).await)?;
            eq(&req, "count after", 0, got.count)
        }),
        case("kv.delete.missing", "Deleting a key that does not exist reports deleted = 0.", doc::API, |ctx| async move {
            let req = pb::DeleteRangeRequest { key: ctx.key("nothing"), ..Default::default() };
            let resp = ok(&req, ctx.client.delete_range(req.clone()).await)?;
            eq(&req, "deleted", 0, resp.deleted)
        }),
        case("kv.delete.interval", "DeleteRange over [b, d) deletes exactly b and c.", doc::API, |ctx| async move {
            fixture(&ctx).await?;
            let req = pb::DeleteRangeRequest { key: ctx.key("b"), range_end: ctx.key("d"), ..Default::default() };
            let resp = ok(&req, ctx.client.delete_range(req.clone()).await)?;
            eq(&req, "deleted", 2, resp.deleted)?;
            let (_, left) = range(&ctx, |_| {}).await?;
            eq(&req, "keys left", vec!["a".to_string(), "d".into(), "e".into()], names(&ctx, &left.kvs))
        }),
        case("kv.delete.prefix", "DeleteRange over a prefix deletes every key under it.", doc::API, |ctx| async move {
            fixture(&ctx).await?;
            let req = pb::DeleteRangeRequest { key: ctx.prefix.clone().into_bytes(), range_end: ctx.prefix_end(), ..Default::default() };
            let resp = ok(&req, ctx.client.delete_range(req.clone()).await)?;
            eq(&req, "deleted", 5, resp.deleted)
        }),
        case("kv.delete.prev_kv", "prev_kv returns every deleted pair with its last value.", doc::API, |ctx| async move {
            fixture(&ctx).await?;
            let req = pb::DeleteRangeRequest { key: ctx.key("a"), range_end: ctx.key("c"), prev_kv: true };
            let resp = ok(&req, ctx.client.delete_range(req.clone()).await)?;
            eq(&req, "prev_kvs", vec![("a".to_string(), b"v-a".to_vec()), ("b".into(), b"v-b2".to_vec())], names(&ctx, &resp.prev_kvs).into_iter().zip(resp.prev_kvs.iter().map(|k| k.value.clone())).collect())
        }),
        case("kv.delete.no_prev_kv_by_default", "Without prev_kv a delete returns no pairs.", doc::API, |ctx| async move {
            put(&ctx, "k", "v").await?;
            let req = pb::DeleteRangeRequest { key: ctx.key("k"), ..Default::default() };
            let resp = ok(&req, ctx.client.delete_range(req.clone()).await)?;
            eq(&req, "prev_kvs", 0, resp.prev_kvs.len())
        }),
        case("kv.delete.empty_key", "A delete with an empty key is rejected with 'key is not provided'.", doc::ERRORS, |ctx| async move {
            let req = pb::DeleteRangeRequest::default();
            err_is(&req, ctx.client.delete_range(req.clone()).await, E::EMPTY_KEY)
        }),
        case("kv.delete.recreate_resets", "A key deleted then put again starts a new generation: version 1, new create_revision.", doc::API, |ctx| async move {
            let r1 = put(&ctx, "k", "1").await?;
            put(&ctx, "k", "2").await?;
            ok(&"delete k", ctx.client.delete(ctx.key("k")).await)?;
            let r3 = put(&ctx, "k", "3").await?;
            let got = ok(&"range k", ctx.client.get(ctx.key("k")).await)?;
            let kv = got.kvs.first().cloned().unwrap_or_default();
            ensure(&"put, put, delete, put k", kv.version == 1 && kv.create_revision == r3 && r3 > r1, format!("version 1, create_revision {r3}"), kv)
        }),
        case("kv.delete.revision_after", "A delete's header revision is above the deleted key's mod_revision.", doc::API, |ctx| async move {
            let r = put(&ctx, "k", "v").await?;
            let req = pb::DeleteRangeRequest { key: ctx.key("k"), ..Default::default() };
            let resp = ok(&req, ctx.client.delete_range(req.clone()).await)?;
            ensure(&req, rev(&resp.header) > r, format!("header revision > {r}"), rev(&resp.header))
        }),
        case("kv.delete.range_one_revision", "A multi-key delete is one revision: at the revision before it every key exists, at it none does.", doc::GUARANTEES, |ctx| async move {
            fixture(&ctx).await?;
            let req = pb::DeleteRangeRequest { key: ctx.prefix.clone().into_bytes(), range_end: ctx.prefix_end(), ..Default::default() };
            let resp = ok(&req, ctx.client.delete_range(req.clone()).await)?;
            let r = rev(&resp.header);
            let (_, before) = range(&ctx, |q| q.revision = r - 1).await?;
            let (_, at) = range(&ctx, |q| q.revision = r).await?;
            eq(&req, "(count at rev-1, count at rev)", (5, 0), (before.count, at.count))
        }),
        case("kv.delete.interval_end_before_key", "A delete whose range_end is below key deletes nothing.", doc::API, |ctx| async move {
            fixture(&ctx).await?;
            let req = pb::DeleteRangeRequest { key: ctx.key("d"), range_end: ctx.key("b"), ..Default::default() };
            let resp = ok(&req, ctx.client.delete_range(req.clone()).await)?;
            eq(&req, "deleted", 0, resp.deleted)
        }),
    ]
}

fn txn_cases() -> Vec<Case> {
    fn txn_branch(
        id: &'static str,
        guarantee: &'static str,
        compare: fn(&Ctx, &[i64; 2]) -> Vec<pb::Compare>,
        succeeded: bool,
    ) -> Case {
        case(id, guarantee, doc::API, move |ctx| async move {
            let r1 = put(&ctx, "k", "5").await?;
            let r2 = put(&ctx, "k", "5").await?;
            let req = pb::TxnRequest {
                compare: compare(&ctx, &[r1, r2]),
                success: vec![put_op(ctx.key("res"), "success")],
                failure: vec![put_op(ctx.key("res"), "failure")],
            };
            let resp = ok(&req, ctx.client.txn(req.clone()).await)?;
            eq(&req, "succeeded", succeeded, resp.succeeded)?;
            let v = super::value_of(&ctx, "res").await?;
            eq(
                &req,
                "branch that ran",
                Some(if succeeded {
                    b"success".to_vec()
                } else {
                    b"failure".to_vec()
                }),
                v,
            )
        })
    }
    let mut v = vec![
        txn_branch(
            "kv.txn.value_equal_true",
            "Compare VALUE EQUAL on the current value takes the success branch.",
            |c, _| vec![cmp(c.key("k"), R::Equal, T::Value(b"5".to_vec()))],
            true,
        ),
        txn_branch(
            "kv.txn.value_equal_false",
            "Compare VALUE EQUAL on another value takes the failure branch.",
            |c, _| vec![cmp(c.key("k"), R::Equal, T::Value(b"6".to_vec()))],
            false,
        ),
        txn_branch(
            "kv.txn.value_greater",
            "Compare VALUE GREATER compares bytes: \"5\" > \"4\".",
            |c, _| vec![cmp(c.key("k"), R::Greater, T::Value(b"4".to_vec()))],
            true,
        ),
        txn_branch(
            "kv.txn.value_less_false",
            "Compare VALUE LESS is false when the value is greater.",
            |c, _| vec![cmp(c.key("k"), R::Less, T::Value(b"4".to_vec()))],
            false,
        ),
        txn_branch(
            "kv.txn.value_not_equal",
            "Compare VALUE NOT_EQUAL is true for a different value.",
            |c, _| vec![cmp(c.key("k"), R::NotEqual, T::Value(b"x".to_vec()))],
            true,
        ),
        txn_branch(
            "kv.txn.version_equal",
            "Compare VERSION EQUAL matches the number of puts since creation.",
            |c, _| vec![cmp(c.key("k"), R::Equal, T::Version(2))],
            true,
        ),
        txn_branch(
            "kv.txn.version_greater_false",
            "Compare VERSION GREATER is false when equal.",
            |c, _| vec![cmp(c.key("k"), R::Greater, T::Version(2))],
            false,
        ),
        txn_branch(
            "kv.txn.version_zero_missing",
            "A missing key has version 0: the create-if-absent idiom.",
            |c, _| vec![cmp(c.key("absent"), R::Equal, T::Version(0))],
            true,
        ),
        txn_branch(
            "kv.txn.create_zero_missing",
            "A missing key has create_revision 0.",
            |c, _| vec![cmp(c.key("absent"), R::Equal, T::CreateRevision(0))],
            true,
        ),
        txn_branch(
            "kv.txn.create_equal",
            "Compare CREATE EQUAL matches the key's create_revision.",
            |c, r| vec![cmp(c.key("k"), R::Equal, T::CreateRevision(r[0]))],
            true,
        ),
        txn_branch(
            "kv.txn.mod_equal_true",
            "Compare MOD EQUAL on the current mod_revision succeeds (optimistic concurrency).",
            |c, r| vec![cmp(c.key("k"), R::Equal, T::ModRevision(r[1]))],
            true,
        ),
        txn_branch(
            "kv.txn.mod_equal_stale",
            "Compare MOD EQUAL on a stale mod_revision fails (optimistic concurrency conflict).",
            |c, r| vec![cmp(c.key("k"), R::Equal, T::ModRevision(r[0]))],
            false,
        ),
        txn_branch(
            "kv.txn.mod_less",
            "Compare MOD LESS is true for a revision above the key's.",
            |c, r| vec![cmp(c.key("k"), R::Less, T::ModRevision(r[1] + 1))],
            true,
        ),
        txn_branch(
            "kv.txn.mod_greater",
            "Compare MOD GREATER is true for a revision below the key's.",
            |c, r| vec![cmp(c.key("k"), R::Greater, T::ModRevision(r[0]))],
            true,
        ),
        txn_branch(
            "kv.txn.lease_zero",
            "Compare LEASE EQUAL 0 holds for a key without a lease.",
            |c, _| vec![cmp(c.key("k"), R::Equal, T::Lease(0))],
            true,
        ),
        txn_branch(
            "kv.txn.all_compares_must_hold",
            "Several compares are ANDed: one false compare takes the failure branch.",
            |c, r| {
                vec![
                    cmp(c.key("k"), R::Equal, T::Value(b"5".to_vec())),
                    cmp(c.key("k"), R::Equal, T::ModRevision(r[0])),
                ]
            },
            false,
        ),
        txn_branch(
            "kv.txn.no_compares",
            "A txn without compares takes the success branch.",
            |_, _| vec![],
            true,
        ),
        txn_branch(
            "kv.txn.value_missing_key_false",
            "A VALUE compare on a missing key is false.",
            |c, _| vec![cmp(c.key("absent"), R::Equal, T::Value(Vec::new()))],
            false,
        ),
        txn_branch(
            "kv.txn.compare_range_all",
            "A compare with range_end holds only if it holds for every key in the range.",
            |c, _| {
                vec![pb::Compare {
                    range_end: c.key("l"),
                    ..cmp(c.key("k"), R::Equal, T::Value(b"5".to_vec()))
                }]
            },
            true,
        ),
    ];
    v.push(case(
        "kv.txn.compare_range_one_fails",
        "A range compare fails when one key in the range fails it.",
        doc::API,
        |ctx| async move {
            put(&ctx, "a", "1").await?;
            put(&ctx, "b", "2").await?;
            let req = pb::TxnRequest {
                compare: vec![pb::Compare {
                    range_end: ctx.key("c"),
                    ..cmp(ctx.key("a"), R::Equal, T::Value(b"1".to_vec()))
                }],
                ..Default::default()
            };
            let resp = ok(&req, ctx.client.txn(req.clone()).await)?;
            eq(&req, "succeeded", false, resp.succeeded)
        },
    ));
    v.push(case("kv.txn.mod_revision_update_kubernetes", "The Kubernetes update: txn(mod == read revision) put, else get; a conflict returns the current object in the failure branch.", doc::KUBERNETES, |ctx| async move {
        let r1 = put(&ctx, "obj", "v1").await?;
        put(&ctx, "obj", "v2").await?;
        let req = pb::TxnRequest {
            compare: vec![cmp(ctx.key("obj"), R::Equal, T::ModRevision(r1))],
            success: vec![put_op(ctx.key("obj"), "v3")],
            failure: vec![get_op(ctx.key("obj"))],
        };
        let resp = ok(&req, ctx.client.txn(req.clone()).await)?;
        eq(&req, "succeeded", false, resp.succeeded)?;
        let got = resp.responses.first().and_then(op_range).and_then(|r| r.kvs.first()).map(|k| k.value.clone());
        eq(&req, "failure branch range", Some(b"v2".to_vec()), got)
    }).kubernetes());
    v.push(
        case(
            "kv.txn.create_if_absent_kubernetes",
            "The Kubernetes create: txn(mod == 0) put succeeds once, a second attempt fails.",
            doc::KUBERNETES,
            |ctx| async move {
                let req = pb::TxnRequest {
                    compare: vec![cmp(ctx.key("obj"), R::Equal, T::ModRevision(0))],
                    success: vec![put_op(ctx.key("obj"), "v")],
                    failure: vec![],
                };
                let a = ok(&req, ctx.client.txn(req.clone()).await)?;
                let b = ok(&req, ctx.client.txn(req.clone()).await)?;
                eq(
                    &req,
                    "(first, second) succeeded",
                    (true, false),
                    (a.succeeded, b.succeeded),
                )
            },
        )
        .kubernetes(),
    );
    v.push(
        case(
            "kv.txn.delete_if_unchanged_kubernetes",
            "The Kubernetes delete: txn(mod == read revision) delete removes the key.",
            doc::KUBERNETES,
            |ctx| async move {
                let r = put(&ctx, "obj", "v").await?;
                let req = pb::TxnRequest {
                    compare: vec![cmp(ctx.key("obj"), R::Equal, T::ModRevision(r))],
                    success: vec![del_op(ctx.key("obj"))],
                    failure: vec![get_op(ctx.key("obj"))],
                };
                let a = ok(&req, ctx.client.txn(req.clone()).await)?;
                let got = ok(&req, ctx.client.get(ctx.key("obj")).await)?;
                eq(
                    &req,
                    "(succeeded, count after)",
                    (true, 0),
                    (a.succeeded, got.count),
                )
            },
        )
        .kubernetes(),
    );
    v.push(case(
        "kv.txn.responses_in_op_order",
        "A txn returns one response per op, in op order and of the op's type.",
        doc::API,
        |ctx| async move {
            put(&ctx, "x", "1").await?;
            let req = pb::TxnRequest {
                success: vec![
                    get_op(ctx.key("x")),
                    put_op(ctx.key("y"), "2"),
                    del_op(ctx.key("x")),
                    get_op(ctx.key("y")),
                ],
                ..Default::default()
            };
            let resp = ok(&req, ctx.client.txn(req.clone()).await)?;
            use gauntlet_api::etcdserverpb::response_op::Response as P;
            let kinds: Vec<&str> = resp
                .responses
                .iter()
                .map(|r| match &r.response {
                    Some(P::ResponseRange(_)) => "range",
                    Some(P::ResponsePut(_)) => "put",
                    Some(P::ResponseDeleteRange(_)) => "delete",
                    Some(P::ResponseTxn(_)) => "txn",
                    None => "none",
                })
                .collect();
            eq(
                &req,
                "response kinds",
                vec!["range", "put", "delete", "range"],
                kinds,
            )
        },
    ));
    v.push(case(
        "kv.txn.reads_own_writes",
        "Ops in a txn see the writes of earlier ops in the same txn.",
        doc::API,
        |ctx| async move {
            let req = pb::TxnRequest {
                success: vec![put_op(ctx.key("x"), "new"), get_op(ctx.key("x"))],
                ..Default::default()
            };
            let resp = ok(&req, ctx.client.txn(req.clone()).await)?;
            let got = resp
                .responses
                .get(1)
                .and_then(op_range)
                .and_then(|r| r.kvs.first())
                .map(|k| k.value.clone());
            eq(
                &req,
                "range after put in the txn",
                Some(b"new".to_vec()),
                got,
            )
        },
    ));
    v.push(case("kv.txn.one_revision_for_all_writes", "All writes of a txn share one revision: every key written has the same mod_revision, the txn's header revision.", doc::GUARANTEES, |ctx| async move {
        let req = pb::TxnRequest { success: vec![put_op(ctx.key("a"), "1"), put_op(ctx.key("b"), "2"), put_op(ctx.key("c"), "3")], ..Default::default() };
        let resp = ok(&req, ctx.client.txn(req.clone()).await)?;
        let r = rev(&resp.header);
        let (_, got) = range(&ctx, |_| {}).await?;
        eq(&req, "mod_revisions", vec![r, r, r], got.kvs.iter().map(|k| k.mod_revision).collect())
    }));
    v.push(case(
        "kv.txn.put_responses_carry_header",
        "Each put response inside a txn carries the txn's revision.",
        doc::API,
        |ctx| async move {
            let req = pb::TxnRequest {
                success: vec![put_op(ctx.key("a"), "1"), put_op(ctx.key("b"), "2")],
                ..Default::default()
            };
            let resp = ok(&req, ctx.client.txn(req.clone()).await)?;
            let r = rev(&resp.header);
            let revs: Vec<i64> = resp
                .responses
                .iter()
                .filter_map(op_put)
                .map(|p| rev(&p.header))
                .collect();
            eq(&req, "put header revisions", vec![r, r], revs)
        },
    ));
    v.push(case(
        "kv.txn.empty_succeeds",
        "An empty txn succeeds with no responses.",
        doc::API,
        |ctx| async move {
            let req = pb::TxnRequest::default();
            let resp = ok(&req, ctx.client.txn(req.clone()).await)?;
            eq(
                &req,
                "(succeeded, responses)",
                (true, 0),
                (resp.succeeded, resp.responses.len()),
            )
        },
    ));
    v.push(case(
        "kv.txn.max_ops_128",
        "A txn with 128 ops (the default --max-txn-ops) is accepted.",
        doc::LIMITS,
        |ctx| async move {
            let req = pb::TxnRequest {
                success: (0..128)
                    .map(|i| put_op(ctx.key(&format!("k{i:03}")), "v"))
                    .collect(),
                ..Default::default()
            };
            let resp = ok(&"txn with 128 puts", ctx.client.txn(req).await)?;
            eq(&"txn with 128 puts", "responses", 128, resp.responses.len())
        },
    ));
    v.push(txn_error(
        "kv.txn.too_many_ops",
        "A txn with 129 ops in one branch fails with 'too many operations in txn request'.",
        E::TOO_MANY_OPS,
        |c| pb::TxnRequest {
            success: (0..129)
                .map(|i| put_op(c.key(&format!("k{i:03}")), "v"))
                .collect(),
            ..Default::default()
        },
    ));
    v.push(txn_error(
        "kv.txn.too_many_compares",
        "A txn with 129 compares fails with 'too many operations in txn request'.",
        E::TOO_MANY_OPS,
        |c| pb::TxnRequest {
            compare: (0..129)
                .map(|i| cmp(c.key(&format!("k{i}")), R::Equal, T::Version(0)))
                .collect(),
            ..Default::default()
        },
    ));
    v.push(txn_error(
        "kv.txn.too_many_failure_ops",
        "129 ops in the failure branch also fail with 'too many operations in txn request'.",
        E::TOO_MANY_OPS,
        |c| pb::TxnRequest {
            failure: (0..129).map(|i| get_op(c.key(&format!("k{i}")))).collect(),
            ..Default::default()
        },
    ));
    v.push(txn_error(
        "kv.txn.duplicate_put",
        "Two puts of one key in a txn branch fail with 'duplicate key given in txn request'.",
        E::DUPLICATE_KEY,
        |c| pb::TxnRequest {
            success: vec![put_op(c.key("k"), "1"), put_op(c.key("k"), "2")],
            ..Default::default()
        },
    ));
    v.push(txn_error("kv.txn.put_and_delete_same_key", "A put and a delete of the same key in one branch fail with 'duplicate key given in txn request'.", E::DUPLICATE_KEY, |c| pb::TxnRequest { success: vec![put_op(c.key("k"), "1"), del_op(c.key("k"))], ..Default::default() }));
    v.push(txn_error("kv.txn.put_inside_deleted_range", "A put of a key inside a range deleted by the same branch fails with 'duplicate key given in txn request'.", E::DUPLICATE_KEY, |c| pb::TxnRequest { success: vec![pb::RequestOp { request: Some(pb::request_op::Request::RequestDeleteRange(pb::DeleteRangeRequest { key: c.key("a"), range_end: c.key("z"), ..Default::default() })) }, put_op(c.key("k"), "1")], ..Default::default() }));
    v.push(txn_error(
        "kv.txn.empty_key_put",
        "A put with an empty key inside a txn fails with 'key is not provided'.",
        E::EMPTY_KEY,
        |_| pb::TxnRequest {
            success: vec![put_op(Vec::new(), "v")],
            ..Default::default()
        },
    ));
    v.push(txn_error(
        "kv.txn.lease_not_found",
        "A put with an unknown lease inside a txn fails with 'requested lease not found'.",
        E::LEASE_NOT_FOUND,
        |c| pb::TxnRequest {
            success: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                    key: c.key("k"),
                    value: b"v".to_vec(),
                    lease: 0x7ead_beef_4321,
                    ..Default::default()
                })),
            }],
            ..Default::default()
        },
    ));
    v.push(case(
        "kv.txn.duplicate_across_branches_ok",
        "The same key may be written in both branches (only one branch runs).",
        doc::API,
        |ctx| async move {
            let req = pb::TxnRequest {
                success: vec![put_op(ctx.key("k"), "s")],
                failure: vec![put_op(ctx.key("k"), "f")],
                ..Default::default()
            };
            let resp = ok(&req, ctx.client.txn(req.clone()).await)?;
            eq(&req, "succeeded", true, resp.succeeded)
        },
    ));
    v.push(case(
        "kv.txn.failed_txn_changes_nothing",
        "A txn that fails with an error applies none of its ops.",
        doc::GUARANTEES,
        |ctx| async move {
            let req = pb::TxnRequest {
                success: vec![
                    put_op(ctx.key("a"), "1"),
                    pb::RequestOp {
                        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                            key: ctx.key("b"),
                            value: b"v".to_vec(),
                            lease: 0x7ead_beef_5555,
                            ..Default::default()
                        })),
                    },
                ],
                ..Default::default()
            };
            let _ = ctx.client.txn(req.clone()).await;
            let (_, got) = range(&ctx, |_| {}).await?;
            eq(&req, "keys after the rejected txn", 0, got.count)
        },
    ));
    v.push(case("kv.txn.nested", "A txn op may itself be a txn; its compare is evaluated inside the outer one.", doc::GRPC, |ctx| async move {
        put(&ctx, "k", "1").await?;
        let inner = pb::TxnRequest { compare: vec![cmp(ctx.key("k"), R::Equal, T::Value(b"1".to_vec()))], success: vec![put_op(ctx.key("inner"), "yes")], failure: vec![] };
        let req = pb::TxnRequest { success: vec![pb::RequestOp { request: Some(pb::request_op::Request::RequestTxn(inner)) }], ..Default::default() };
        let resp = ok(&req, ctx.client.txn(req.clone()).await)?;
        let nested_ok = matches!(resp.responses.first().and_then(|r| r.response.as_ref()), Some(pb::response_op::Response::ResponseTxn(t)) if t.succeeded);
        let v = super::value_of(&ctx, "inner").await?;
        ensure(&req, nested_ok && v == Some(b"yes".to_vec()), "inner txn succeeded and wrote inner=yes", (nested_ok, v))
    }));
    v.push(case(
        "kv.txn.range_with_options",
        "Range ops inside a txn honour limit and count like a plain range.",
        doc::API,
        |ctx| async move {
            fixture(&ctx).await?;
            let req = pb::TxnRequest {
                success: vec![range_op(pb::RangeRequest {
                    key: ctx.prefix.clone().into_bytes(),
                    range_end: ctx.prefix_end(),
                    limit: 2,
                    ..Default::default()
                })],
                ..Default::default()
            };
            let resp = ok(&req, ctx.client.txn(req.clone()).await)?;
            let r = resp
                .responses
                .first()
                .and_then(op_range)
                .cloned()
                .unwrap_or_default();
            eq(
                &req,
                "(keys, count, more)",
                (vec!["a".to_string(), "b".into()], 5, true),
                (names(&ctx, &r.kvs), r.count, r.more),
            )
        },
    ));
    v.push(case(
        "kv.txn.delete_prev_kv",
        "A delete op with prev_kv inside a txn returns the deleted pairs.",
        doc::API,
        |ctx| async move {
            put(&ctx, "k", "gone").await?;
            let req = pb::TxnRequest {
                success: vec![pb::RequestOp {
                    request: Some(pb::request_op::Request::RequestDeleteRange(
                        pb::DeleteRangeRequest {
                            key: ctx.key("k"),
                            prev_kv: true,
                            ..Default::default()
                        },
                    )),
                }],
                ..Default::default()
            };
            let resp = ok(&req, ctx.client.txn(req.clone()).await)?;
            let got = match resp.responses.first().and_then(|r| r.response.as_ref()) {
                Some(pb::response_op::Response::ResponseDeleteRange(d)) => {
                    (d.deleted, d.prev_kvs.first().map(|k| k.value.clone()))
                }
                _ => (-1, None),
            };
            eq(
                &req,
                "(deleted, prev value)",
                (1, Some(b"gone".to_vec())),
                got,
            )
        },
    ));
    v.push(case(
        "kv.txn.compare_future_mod",
        "Compares read the current state: MOD EQUAL to a future revision is false.",
        doc::API,
        |ctx| async move {
            let r = put(&ctx, "k", "v").await?;
            let req = pb::TxnRequest {
                compare: vec![cmp(ctx.key("k"), R::Equal, T::ModRevision(r + 100))],
                ..Default::default()
            };
            let resp = ok(&req, ctx.client.txn(req.clone()).await)?;
            eq(&req, "succeeded", false, resp.succeeded)
        },
    ));
    v.push(case(
        "kv.txn.lease_compare",
        "Compare LEASE EQUAL matches the lease a key is attached to.",
        doc::API,
        |ctx| async move {
            let l = ok(
                &"grant",
                ctx.client
                    .lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 0 })
                    .await,
            )?;
            let p = pb::PutRequest {
                key: ctx.key("k"),
                value: b"v".to_vec(),
                lease: l.id,
                ..Default::default()
            };
            ok(&p, ctx.client.put_request(p.clone()).await)?;
            let req = pb::TxnRequest {
                compare: vec![cmp(ctx.key("k"), R::Equal, T::Lease(l.id))],
                ..Default::default()
            };
            let resp = ok(&req, ctx.client.txn(req.clone()).await)?;
            let _ = ctx
                .client
                .lease_revoke(pb::LeaseRevokeRequest { id: l.id })
                .await;
            eq(&req, "succeeded", true, resp.succeeded)
        },
    ));
    v.push(case(
        "kv.txn.read_only_header_revision",
        "A read-only txn's header revision is the current revision, at least the last write's.",
        doc::API,
        |ctx| async move {
            let r = put(&ctx, "k", "v").await?;
            let req = pb::TxnRequest {
                success: vec![get_op(ctx.key("k"))],
                ..Default::default()
            };
            let resp = ok(&req, ctx.client.txn(req.clone()).await)?;
            ensure(
                &req,
                rev(&resp.header) >= r,
                format!("header revision >= {r}"),
                rev(&resp.header),
            )
        },
    ));
    v
}

/// Runs a compaction-related check on a fresh cluster: writes `a` three times and returns the revisions.
async fn three_writes(ctx: &Ctx) -> Result<[i64; 3], Failure> {
    Ok([
        put(ctx, "a", "1").await?,
        put(ctx, "a", "2").await?,
        put(ctx, "a", "3").await?,
    ])
}

fn compact_case(
    id: &'static str,
    guarantee: &'static str,
    check: fn(Ctx, [i64; 3]) -> futures::future::BoxFuture<'static, CheckResult>,
) -> Case {
    case(id, guarantee, doc::MAINTENANCE, move |ctx| async move {
        let r = three_writes(&ctx).await?;
        check(ctx, r).await
    })
    .needs(Needs::Fresh(1))
}

fn compact_cases() -> Vec<Case> {
    use futures::FutureExt;
    vec![
        compact_case("kv.compact.range_below_compacted", "A range at a revision below the compacted one fails with 'required revision has been compacted'.", |ctx, r| async move {
            ok(&"compact", ctx.client.compact(pb::CompactionRequest { revision: r[1], physical: true }).await)?;
            let req = pb::RangeRequest { key: ctx.key("a"), revision: r[0], ..Default::default() };
            err_is(&req, ctx.client.range(req.clone()).await, E::COMPACTED)
        }.boxed()),
        compact_case("kv.compact.range_at_compacted", "The compaction revision itself stays readable.", |ctx, r| async move {
            ok(&"compact", ctx.client.compact(pb::CompactionRequest { revision: r[1], physical: true }).await)?;
            let req = pb::RangeRequest { key: ctx.key("a"), revision: r[1], ..Default::default() };
            let resp = ok(&req, ctx.client.range(req.clone()).await)?;
            eq(&req, "value", Some(b"2".to_vec()), resp.kvs.first().map(|k| k.value.clone()))
        }.boxed()),
        compact_case("kv.compact.twice_same_revision", "Compacting again at an already-compacted revision fails with 'required revision has been compacted'.", |ctx, r| async move {
            let req = pb::CompactionRequest { revision: r[1], physical: true };
            ok(&req, ctx.client.compact(req).await)?;
            err_is(&req, ctx.client.compact(req).await, E::COMPACTED)
        }.boxed()),
        compact_case("kv.compact.older_revision", "Compacting below the last compaction fails with 'required revision has been compacted'.", |ctx, r| async move {
            ok(&"compact", ctx.client.compact(pb::CompactionRequest { revision: r[2], physical: true }).await)?;
            let req = pb::CompactionRequest { revision: r[0], physical: false };
            err_is(&req, ctx.client.compact(req).await, E::COMPACTED)
        }.boxed()),
        compact_case("kv.compact.future_revision", "Compacting at a revision above the current one fails with 'required revision is a future revision'.", |ctx, r| async move {
            let req = pb::CompactionRequest { revision: r[2] + 100, physical: false };
            err_is(&req, ctx.client.compact(req).await, E::FUTURE_REV)
        }.boxed()),
        compact_case("kv.compact.current_revision", "Compacting at the current revision succeeds and the latest values stay readable.", |ctx, r| async move {
            let req = pb::CompactionRequest { revision: r[2], physical: true };
            ok(&req, ctx.client.compact(req).await)?;
            let v = super::value_of(&ctx, "a").await?;
            eq(&req, "value", Some(b"3".to_vec()), v)
        }.boxed()),
        compact_case("kv.compact.keeps_latest_of_deleted_history", "Compaction keeps every live key; only superseded revisions go.", |ctx, r| async move {
            put(&ctx, "b", "x").await?;
            let req = pb::CompactionRequest { revision: r[2] + 1, physical: true };
            ok(&req, ctx.client.compact(req).await)?;
            let (_, got) = range(&ctx, |_| {}).await?;
            eq(&req, "keys", vec!["a".to_string(), "b".into()], names(&ctx, &got.kvs))
        }.boxed()),
        compact_case("kv.compact.header_revision_unchanged", "A compaction does not create a revision.", |ctx, r| async move {
            let req = pb::CompactionRequest { revision: r[1], physical: true };
            let resp = ok(&req, ctx.client.compact(req).await)?;
            let got = ok(&req, ctx.client.get(ctx.key("a")).await)?;
            eq(&req, "(compaction header revision, then range header revision)", (r[2], r[2]), (rev(&resp.header), rev(&got.header)))
        }.boxed()),
        compact_case("kv.compact.txn_range_below_compacted", "A range op inside a txn at a compacted revision fails the txn with 'required revision has been compacted'.", |ctx, r| async move {
            ok(&"compact", ctx.client.compact(pb::CompactionRequest { revision: r[1], physical: true }).await)?;
            let req = pb::TxnRequest { success: vec![range_op(pb::RangeRequest { key: ctx.key("a"), revision: r[0], ..Default::default() })], ..Default::default() };
            err_is(&req, ctx.client.txn(req.clone()).await, E::COMPACTED)
        }.boxed()),
        compact_case("kv.compact.kubernetes_coordinated", "Kubernetes compacts after a txn comparing the version of its compact key: one compactor wins, the other sees the conflict.", |ctx, r| async move {
            let key = ctx.key("compact_rev_key");
            let attempt = |ver: i64, target: i64| pb::TxnRequest {
                compare: vec![cmp(key.clone(), R::Equal, T::Version(ver))],
                success: vec![put_op(key.clone(), &target.to_string())],
                failure: vec![get_op(key.clone())],
            };
            let first = attempt(0, r[1]);
            let a = ok(&first, ctx.client.txn(first.clone()).await)?;
            let b = ok(&first, ctx.client.txn(first.clone()).await)?;
            eq(&first, "(first, second) compactor won", (true, false), (a.succeeded, b.succeeded))?;
            let req = pb::CompactionRequest { revision: r[1], physical: false };
            ok(&req, ctx.client.compact(req).await)?;
            let q = pb::RangeRequest { key: ctx.key("a"), revision: r[0], ..Default::default() };
            err_is(&q, ctx.client.range(q.clone()).await, E::COMPACTED)
        }.boxed()).kubernetes(),
    ]
}
