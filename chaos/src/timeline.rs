//! `timeline.html`: one chaos round drawn on the recording clock, so a failure is
//! shown rather than described (Jepsen's `timeline.html`, porcupine's page).
//!
//! Every operation the harness recorded carries its call and return time on one
//! monotonic clock, its client and its outcome; the fault carries when it was
//! injected and when the cluster served again. The page puts them on one axis:
//!
//! ```text
//!  ms from the first event  0        500       1000      1500      2000
//!  fault                             ░░░░ process.kill-leader ░░░░░|healed
//!  client 1                 [ok][ok] ░[ok]░░░░░░░░░░░░░░░░░░░░░░░░░[ok] [ok]
//!  client 2                  [ok]  [▒▒▒▒▒▒ unknown ▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒]  [ok]
//!  client 3                 [ok] [ok]░[failed]░░░░[failed]░░░░░░░░░░░[#ok#]
//!                                                                      ^ a finding names it
//! ```
//!
//! In order, the page shows:
//!
//! 1. the verdict, every finding numbered, what could not be judged, and the command
//!    that reruns the round;
//! 2. the fault: its name, the members it hit, the leader before it, its window on the
//!    axis and the evidence that it took effect. Leader changes appear only as the
//!    recording has them: the leader before the fault and evidence lines such as
//!    "leadership moved from m0 to m2". They carry no time of their own, so they are
//!    written beside the fault band, never placed on the axis;
//! 3. the availability figures of the round;
//! 4. the timeline (inline SVG): a shaded band over the fault window with its name, a
//!    dashed line at the heal, a mark at the first successful write after it, then one
//!    row per client, each operation a bar from call to return coloured by outcome:
//!    green answered, red definite failure (an error answer, or a failure the client
//!    knows had no effect), amber unknown (timed out or lost: it may have been applied;
//!    the bar ends when the client gave up). Hovering a bar shows its request, response
//!    and times;
//! 5. the operations the findings name, outlined on the timeline and listed below the
//!    findings. A finding names operations in two ways only: a linearizability finding
//!    names the operations the checker could not place after the longest linearizable
//!    prefix (exactly, from its [`CheckResult`]); a `watch`, `acknowledged-write` or
//!    `phantom-value` finding names the revision it is about (the first "revision N" of
//!    its detail) and sometimes a client ("(client C)"), and the operations answered as
//!    writing that revision (by that client) are the ones outlined. Other findings
//!    (`hashkv`, `final-write`, ...) are about the cluster, not an operation;
//! 6. per member, its watch streams counted (segments, responses, events, revision
//!    reached). The recording does not time-stamp watch responses, so they are counted,
//!    not drawn.
//!
//! The page is one file: inline CSS, no script, no external asset. It is built with
//! `maud`, which escapes every key, value and detail it splices.
//!
//! Limits: at most [`MAX_DRAWN_OPS`] bars (operations the findings name first, then
//! those not answered with success, then the rest; the page says how many it left
//! out, and `history.jsonl` has them all); request and response texts cut at
//! [`MAX_TEXT_CHARS`]; at most [`MAX_LISTED_OPS`] named operations listed.

use std::collections::{BTreeMap, BTreeSet};

use gauntlet_checker::models::etcd::{EtcdRequest, EtcdResponse, TxnOpResponse};
use gauntlet_checker::search::{CheckResult, Verdict};
use gauntlet_checker::Outcome;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::convert::EtcdOp;
use crate::round::{RoundResult, RoundVerdict};
use crate::watch::MemberWatch;

/// Most operations drawn as bars; a larger history is drawn in part, and said so.
pub const MAX_DRAWN_OPS: usize = 20_000;
/// Longest request, response or finding text shown; longer ones are cut (the round's
/// `history.jsonl` and `round.json` have them whole).
pub const MAX_TEXT_CHARS: usize = 400;
/// Most operations listed under the findings.
pub const MAX_LISTED_OPS: usize = 200;

/// Horizontal scale before clamping: half a pixel per millisecond.
const PX_PER_MS: f64 = 0.5;
/// Narrowest and widest plot (the page scrolls sideways past the window's width).
const MIN_PLOT_PX: f64 = 1000.0;
const MAX_PLOT_PX: f64 = 12_000.0;
/// Room for row labels at the left.
const LABEL_PX: f64 = 90.0;
const AXIS_PX: f64 = 20.0;
const FAULT_LANE_PX: f64 = 24.0;
const ROW_PX: f64 = 16.0;
/// About one tick label per this many pixels.
const TICK_EVERY_PX: f64 = 100.0;

/// Checks whose findings name the revision they are about.
const REVISION_CHECKS: [&str; 3] = ["watch", "acknowledged-write", "phantom-value"];

const CSS: &str = "\
body{font-family:system-ui,sans-serif;margin:1em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.4em}\
table{border-collapse:collapse;margin:.4em 0}\
td,th{border:1px solid #ddd;padding:2px 6px;font-size:13px;text-align:left;vertical-align:top}\
code,.mono{font-family:monospace;font-size:12px}\
.detail{font-family:monospace;font-size:12px;white-space:pre-wrap;word-break:break-all}\
.bad{color:#b71c1c}.good{color:#2e7d32}.note{color:#555;font-style:italic}\
.scroll{overflow-x:auto;border:1px solid #ccc}\
svg text{font:11px monospace;fill:#333}\
.grid{stroke:#eee}.row-bg{fill:#f7f7f7}\
.fault-band{fill:#ff9800;fill-opacity:.15;stroke:#ff9800;stroke-opacity:.7}\
.heal{stroke:#2e7d32;stroke-width:2;stroke-dasharray:4 2}\
.first-write{stroke:#1565c0;stroke-width:2}\
.op.ok{fill:#66bb6a}.op.failed{fill:#e53935}.op.unknown{fill:#ffb300}\
.op.hl{stroke:#6a1b9a;stroke-width:3}\
.sw{display:inline-block;width:1.4em;height:.8em;margin:0 .3em 0 1em;vertical-align:middle}\
.sw.ok{background:#66bb6a}.sw.failed{background:#e53935}.sw.unknown{background:#ffb300}\
.sw.hl{border:3px solid #6a1b9a;box-sizing:border-box}\
.sw.fault{background:#ffe0b2;border:1px solid #ff9800}";

/// Renders one round as a self-contained HTML page (see the module docs for what it
/// shows). `history` and `watches` are what the round's validation judged; `check`
/// is the checker's result when the linearizability check ran (its unplaceable
/// operations are the ones a linearizability finding names). Never fails: missing
/// pieces (no fault record, an empty history) are said so on the page.
pub fn render(
    result: &RoundResult,
    history: &[EtcdOp],
    watches: &[MemberWatch],
    check: Option<&CheckResult>,
) -> String {
    let page = Page {
        result,
        history,
        named: named_ops(result, history, check),
        t0: origin_ns(result, history),
    };
    let title = format!(
        "chaos round {} ({}): {}",
        result.spec.round,
        result.spec.fault,
        verdict_text(&result.verdict)
    );
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { (title) }
                (page.summary())
                (page.findings())
                (page.fault())
                (page.availability())
                (page.timeline())
                (watch_streams(watches))
            }
        }
    }
    .into_string()
}

/// Operations the findings name: history index → indexes of the findings naming it.
type Named = BTreeMap<usize, Vec<usize>>;

fn named_ops(result: &RoundResult, history: &[EtcdOp], check: Option<&CheckResult>) -> Named {
    let unplaceable: Vec<usize> = check
        .map(|c| {
            c.partitions
                .iter()
                .filter(|p| p.verdict == Verdict::NotLinearizable)
                .flat_map(|p| p.unplaceable.iter().copied())
                .filter(|&i| i < history.len())
                .collect()
        })
        .unwrap_or_default();
    let mut named = Named::new();
    for (fi, f) in result.findings.iter().enumerate() {
        let ops: Vec<usize> = if f.check == "linearizability" {
            unplaceable.clone()
        } else if REVISION_CHECKS.contains(&f.check.as_str()) {
            let Some(rev) = number_after(&f.detail, "revision ") else {
                continue;
            };
            let client = number_after(&f.detail, "(client ").and_then(|c| u64::try_from(c).ok());
            history
                .iter()
                .enumerate()
                .filter(|(_, op)| wrote_revision(op) == Some(rev))
                .filter(|(_, op)| client.is_none_or(|c| op.client_id == c))
                .map(|(i, _)| i)
                .collect()
        } else {
            Vec::new()
        };
        for i in ops {
            named.entry(i).or_default().push(fi);
        }
    }
    named
}

/// The first number right after `marker` in `text` ("at revision 12:" → 12).
fn number_after(text: &str, marker: &str) -> Option<i64> {
    text.match_indices(marker).find_map(|(at, _)| {
        let rest = &text[at + marker.len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    })
}

/// The revision an operation was answered as creating, if it wrote anything (a put,
/// a delete that removed keys, a txn whose branch put or removed keys).
fn wrote_revision(op: &EtcdOp) -> Option<i64> {
    let Outcome::Ok(resp) = &op.outcome else {
        return None;
    };
    let wrote = match (&op.input, resp) {
        (EtcdRequest::Put { .. }, EtcdResponse::Put { .. }) => true,
        (EtcdRequest::Delete { .. }, EtcdResponse::Delete { deleted, .. }) => *deleted > 0,
        (EtcdRequest::Txn { .. }, EtcdResponse::Txn { responses, .. }) => {
            responses.iter().any(|r| match r {
                TxnOpResponse::Put => true,
                TxnOpResponse::Delete { deleted } => *deleted > 0,
                TxnOpResponse::Range(_) => false,
            })
        }
        _ => false,
    };
    if wrote {
        resp.revision()
    } else {
        None
    }
}

/// The bar's class: `ok`, `failed` (no effect: an error answer or a definite
/// failure) or `unknown` (maybe applied).
fn outcome_class(op: &EtcdOp) -> &'static str {
    match &op.outcome {
        Outcome::Ok(EtcdResponse::Error(_)) | Outcome::Failed => "failed",
        Outcome::Ok(_) => "ok",
        Outcome::Unknown => "unknown",
    }
}

fn verdict_text(v: &RoundVerdict) -> String {
    match v {
        RoundVerdict::Passed => "passed".into(),
        RoundVerdict::Violation => "violation".into(),
        RoundVerdict::KnownIssue => "known etcd issue".into(),
        RoundVerdict::Unknown => "unknown".into(),
        RoundVerdict::Skipped(why) => format!("skipped: {why}"),
        RoundVerdict::Error(why) => format!("error: {why}"),
    }
}

/// `s`, cut to [`MAX_TEXT_CHARS`] characters with a note of how long it was.
fn cut(s: &str) -> String {
    let n = s.chars().count();
    if n <= MAX_TEXT_CHARS {
        return s.to_string();
    }
    let head: String = s.chars().take(MAX_TEXT_CHARS).collect();
    format!("{head}… ({n} characters)")
}

fn request_text(op: &EtcdOp) -> String {
    cut(&serde_json::to_string(&op.input).unwrap_or_default())
}

fn response_text(op: &EtcdOp) -> String {
    match &op.outcome {
        Outcome::Ok(r) => cut(&serde_json::to_string(r).unwrap_or_default()),
        Outcome::Failed => "none: definite failure (no effect)".into(),
        Outcome::Unknown => "none: unknown outcome (may have been applied)".into(),
    }
}

/// One decimal: enough for pixels, and it keeps the page small.
fn f1(v: f64) -> String {
    format!("{v:.1}")
}

/// Time zero of the page: the first call, or the injection if it came first.
fn origin_ns(result: &RoundResult, history: &[EtcdOp]) -> u64 {
    let first_call = history.iter().map(|o| o.call_ns).min();
    let injected = result.fault.as_ref().map(|f| f.injected_ns);
    first_call.into_iter().chain(injected).min().unwrap_or(0)
}

/// A tick spacing of 1, 2 or 5 × 10^k ms giving about `ticks` ticks over `span_ms`.
fn tick_step_ms(span_ms: f64, ticks: f64) -> f64 {
    let raw = (span_ms / ticks.max(1.0)).max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// What every section of the page reads.
struct Page<'a> {
    result: &'a RoundResult,
    history: &'a [EtcdOp],
    named: Named,
    /// Time zero of the page, on the recording clock.
    t0: u64,
}

impl Page<'_> {
    fn ms(&self, ns: u64) -> f64 {
        ns.saturating_sub(self.t0) as f64 / 1e6
    }

    /// A time on the page: ms from time zero, to the microsecond.
    fn at(&self, ns: u64) -> String {
        format!("{:.3}", self.ms(ns))
    }

    fn summary(&self) -> Markup {
        let r = self.result;
        let s = &r.spec;
        let profile = serde_json::to_value(s.profile)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let passed = matches!(r.verdict, RoundVerdict::Passed);
        html! {
            p {
                "Verdict: "
                b class=(if passed { "good" } else { "bad" }) { (verdict_text(&r.verdict)) }
                ". Seed " (s.seed) ", round " (s.round) ", " (s.members) " members, "
                (profile) " traffic, election timeout " (s.settings.election_ms)
                " ms, snapshot count " (s.settings.snapshot_count) ". "
                (r.operations) " operations judged"
                @if r.operations_left_out > 0 {
                    " (and " (r.operations_left_out)
                    " recorded ones the model does not cover, not drawn)"
                }
                ", " (r.watch_responses) " watch responses; validation "
                (r.validation_ms) " ms, round " (r.wall_ms) " ms."
            }
        }
    }

    fn findings(&self) -> Markup {
        let r = self.result;
        let mut outlined = vec![0usize; r.findings.len()];
        for f in self.named.values().flatten() {
            outlined[*f] += 1;
        }
        html! {
            h2 { "Findings (" (r.findings.len()) ")" }
            @if r.findings.is_empty() {
                p { "None: every check held." }
            } @else {
                ol {
                    @for (i, f) in r.findings.iter().enumerate() {
                        li id=(format!("finding-{}", i + 1)) {
                            b { (f.check) }
                            @if let Some(g) = &f.guarantee { " (" (g) ")" }
                            @if outlined[i] > 0 {
                                " — " (outlined[i]) " operation(s) outlined below"
                            }
                            div class="detail" { (cut(&f.detail)) }
                        }
                    }
                }
            }
            @if !r.known_issues.is_empty() {
                p { "Known etcd issues covering them:" }
                ul {
                    @for k in &r.known_issues {
                        li { (k.url) ", fixed in " (k.fixed_in) ": " (k.description) }
                    }
                }
            }
            @if !r.unknown.is_empty() {
                p { "Could not be judged:" }
                ul { @for u in &r.unknown { li { (u) } } }
            }
            p { "Rerun this round: " code { (r.rerun) } }
            @if !self.named.is_empty() {
                (self.named_table())
            }
        }
    }

    fn named_table(&self) -> Markup {
        html! {
            h2 { "Operations the findings name (" (self.named.len()) ")" }
            @if self.named.len() > MAX_LISTED_OPS {
                p class="note" {
                    "The first " (MAX_LISTED_OPS) " are listed; all are outlined on the timeline."
                }
            }
            table {
                tr {
                    th { "op" } th { "client" } th { "call ms" } th { "return ms" }
                    th { "outcome" } th { "request" } th { "response" } th { "findings" }
                }
                @for (&i, fs) in self.named.iter().take(MAX_LISTED_OPS) {
                    @let op = &self.history[i];
                    tr {
                        td { "#" (i) }
                        td { (op.client_id) }
                        td { (self.at(op.call_ns)) }
                        td { (self.at(op.return_ns)) }
                        td { (outcome_class(op)) }
                        td class="mono" { (request_text(op)) }
                        td class="mono" { (response_text(op)) }
                        td {
                            @for f in fs {
                                a href=(format!("#finding-{}", f + 1)) { (f + 1) } " "
                            }
                        }
                    }
                }
            }
        }
    }

    fn fault(&self) -> Markup {
        let hit = |ms: &[usize]| {
            ms.iter()
                .map(|m| format!("m{m}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        html! {
            h2 { "Fault: " (self.result.spec.fault) }
            @if let Some(f) = &self.result.fault {
                table {
                    tr {
                        th { "members hit" }
                        td { @if f.members.is_empty() { "none" } @else { (hit(&f.members)) } }
                    }
                    tr {
                        th { "leader before" }
                        td { @if let Some(l) = f.leader_before { "m" (l) } @else { "not known" } }
                    }
                    tr { th { "injected" } td { (self.at(f.injected_ns)) " ms" } }
                    tr {
                        th { "healed (serving again)" }
                        td {
                            (self.at(f.healed_ns)) " ms, "
                            (f1(f.healed_ns.saturating_sub(f.injected_ns) as f64 / 1e6))
                            " ms after injection"
                        }
                    }
                    tr {
                        th { "evidence" }
                        td { ul { @for e in &f.evidence { li { (e) } } } }
                    }
                }
                p class="note" {
                    "Times are ms from the first event on the recording clock. The evidence "
                    "(leader changes included) is not time-stamped, so it is not on the axis."
                }
            } @else {
                p class="note" { "No fault record: the fault did not finish (see the findings)." }
            }
        }
    }

    fn availability(&self) -> Markup {
        let a = &self.result.availability;
        html! {
            h2 { "Availability" }
            table {
                tr { th { "requests" } td { (a.requests) ", " (a.failed) " failed" } }
                tr {
                    th { "invoked during the fault" }
                    td { (a.during_fault) ", " (a.during_fault_failed) " not answered with success" }
                }
                tr {
                    th { "heal → first successful write" }
                    td {
                        @if let Some(ms) = a.first_write_after_heal_ms { (ms) " ms" } @else { "none" }
                    }
                }
                tr {
                    th { "longest gap between successful writes" }
                    td { (a.longest_write_gap_ms) " ms" }
                }
            }
        }
    }

    /// The bars drawn: all of them, or past [`MAX_DRAWN_OPS`] the named ones first,
    /// then those not answered with success, then the rest in time order.
    fn drawn(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.history.len()).collect();
        if order.len() > MAX_DRAWN_OPS {
            order.sort_by_key(|&i| {
                let rank = if self.named.contains_key(&i) {
                    0
                } else if outcome_class(&self.history[i]) != "ok" {
                    1
                } else {
                    2
                };
                (rank, i)
            });
            order.truncate(MAX_DRAWN_OPS);
            order.sort_unstable();
        }
        order
    }

    fn timeline(&self) -> Markup {
        let clients: BTreeSet<u64> = self.history.iter().map(|o| o.client_id).collect();
        let row: BTreeMap<u64, usize> = clients.iter().enumerate().map(|(i, c)| (*c, i)).collect();
        let fault = self.result.fault.as_ref();
        let end_ns = self
            .history
            .iter()
            .map(|o| o.return_ns)
            .chain(fault.map(|f| f.healed_ns))
            .max()
            .unwrap_or(self.t0);
        let span_ms = self.ms(end_ns).max(1.0);
        let plot_px = (span_ms * PX_PER_MS).clamp(MIN_PLOT_PX, MAX_PLOT_PX);
        let px_per_ms = plot_px / span_ms;
        let x = |ns: u64| LABEL_PX + self.ms(ns) * px_per_ms;
        let rows_top = AXIS_PX + FAULT_LANE_PX;
        let width = LABEL_PX + plot_px + 60.0;
        let height = rows_top + clients.len() as f64 * ROW_PX + 4.0;
        let step = tick_step_ms(span_ms, plot_px / TICK_EVERY_PX);
        let ticks: Vec<f64> = (0..)
            .map(|k| f64::from(k) * step)
            .take_while(|t| *t <= span_ms)
            .collect();
        let drawn = self.drawn();
        // Named bars last, so their outline is painted over their neighbours.
        let (named, plain): (Vec<usize>, Vec<usize>) =
            drawn.iter().partition(|i| self.named.contains_key(i));
        html! {
            h2 { "Timeline" }
            p {
                span class="sw ok" {} "answered"
                span class="sw failed" {} "definite failure (no effect)"
                span class="sw unknown" {} "unknown (maybe applied; ends when the client gave up)"
                span class="sw hl" {} "named by a finding"
                span class="sw fault" {} "fault window"
            }
            @if drawn.len() < self.history.len() {
                p class="note" {
                    "The history has " (self.history.len()) " operations; " (drawn.len())
                    " are drawn (those the findings name first, then those not answered with "
                    "success, then the earliest), " (self.history.len() - drawn.len())
                    " are left out. history.jsonl has them all."
                }
            }
            @if self.history.is_empty() {
                p class="note" { "No operations were recorded." }
            }
            div class="scroll" {
                svg xmlns="http://www.w3.org/2000/svg" width=(f1(width)) height=(f1(height)) {
                    // Painted in layers: row stripes, grid, fault band, labels, bars.
                    @for i in (0..clients.len()).step_by(2) {
                        rect class="row-bg" x="0" y=(f1(rows_top + i as f64 * ROW_PX))
                            width=(f1(width)) height=(f1(ROW_PX)) {}
                    }
                    text x="4" y="14" { "ms" }
                    @for t in &ticks {
                        @let tx = LABEL_PX + t * px_per_ms;
                        line class="grid" x1=(f1(tx)) x2=(f1(tx)) y1=(f1(AXIS_PX)) y2=(f1(height)) {}
                        text x=(f1(tx + 2.0)) y="14" { (t) }
                    }
                    text x="4" y=(f1(AXIS_PX + 15.0)) { "fault" }
                    @if let Some(f) = fault {
                        @let (x0, x1) = (x(f.injected_ns), x(f.healed_ns));
                        rect class="fault-band" x=(f1(x0)) y=(f1(AXIS_PX))
                            width=(f1((x1 - x0).max(2.0))) height=(f1(height - AXIS_PX)) {
                            title {
                                (f.fault) ": injected at " (self.at(f.injected_ns)) " ms, healed at "
                                (self.at(f.healed_ns)) " ms. " (f.evidence.join("; "))
                            }
                        }
                        text x=(f1(x0 + 4.0)) y=(f1(AXIS_PX + 15.0)) {
                            (f.fault)
                            @if !f.members.is_empty() {
                                " on " (f.members.iter().map(|m| format!("m{m}")).collect::<Vec<_>>().join(", "))
                            }
                            @if let Some(l) = f.leader_before { " · leader before: m" (l) }
                        }
                        line class="heal" x1=(f1(x1)) x2=(f1(x1)) y1=(f1(AXIS_PX)) y2=(f1(height)) {
                            title { "healed: the cluster serves again at " (self.at(f.healed_ns)) " ms" }
                        }
                        text x=(f1(x1 + 3.0)) y=(f1(AXIS_PX + 8.0)) { "healed" }
                        @if let Some(ms) = self.result.availability.first_write_after_heal_ms {
                            @let xw = x1 + ms as f64 * px_per_ms;
                            line class="first-write" x1=(f1(xw)) x2=(f1(xw))
                                y1=(f1(AXIS_PX + 10.0)) y2=(f1(rows_top - 2.0)) {
                                title { "first successful write after the heal: answered " (ms) " ms after it" }
                            }
                        }
                    } @else {
                        text x=(f1(LABEL_PX + 4.0)) y=(f1(AXIS_PX + 15.0)) {
                            (self.result.spec.fault) ": no fault record"
                        }
                    }
                    @for (i, c) in clients.iter().enumerate() {
                        text class="row-label" x="4" y=(f1(rows_top + i as f64 * ROW_PX + 12.0)) {
                            "client " (c)
                        }
                    }
                    @for &i in plain.iter().chain(&named) {
                        (self.bar(i, rows_top + row[&self.history[i].client_id] as f64 * ROW_PX, &x))
                    }
                }
            }
        }
    }

    /// One operation's bar in the row starting at `top`, with its hover text.
    fn bar(&self, i: usize, top: f64, x: &dyn Fn(u64) -> f64) -> Markup {
        let op = &self.history[i];
        let class = outcome_class(op);
        let named = self.named.get(&i);
        let x0 = x(op.call_ns);
        let min_w = if named.is_some() { 3.0 } else { 1.0 };
        let w = (x(op.return_ns) - x0).max(min_w);
        let returned = if matches!(op.outcome, Outcome::Unknown) {
            "client gave up at"
        } else {
            "returned at"
        };
        html! {
            rect data-op=(i) class=(format!("op {class}{}", if named.is_some() { " hl" } else { "" }))
                x=(f1(x0)) y=(f1(top + 2.0)) width=(f1(w)) height=(f1(ROW_PX - 4.0)) {
                title {
                    "#" (i) " client " (op.client_id) ": " (class) "\n"
                    "called at " (self.at(op.call_ns)) " ms, " (returned) " " (self.at(op.return_ns))
                    " ms (" (format!("{:.3}", op.return_ns.saturating_sub(op.call_ns) as f64 / 1e6)) " ms)\n"
                    "request: " (request_text(op)) "\n"
                    "response: " (response_text(op))
                    @if let Some(fs) = named {
                        "\nnamed by finding "
                        (fs.iter().map(|f| format!("{} ({})", f + 1, self.result.findings[*f].check)).collect::<Vec<_>>().join(", "))
                    }
                }
            }
        }
    }
}

fn watch_streams(watches: &[MemberWatch]) -> Markup {
    html! {
        h2 { "Watch streams" }
        p class="note" {
            "The recording does not time-stamp watch responses, so they are counted here, "
            "not drawn on the timeline. watch.json has every response."
        }
        @if watches.is_empty() {
            p { "No watch streams were recorded." }
        } @else {
            table {
                tr {
                    th { "watcher" } th { "segments" } th { "responses" } th { "events" }
                    th { "progress notifications" } th { "compaction notices" }
                    th { "cancellations" } th { "revision reached" }
                }
                @for w in watches {
                    @let responses = || w.segments.iter().flat_map(|s| &s.responses);
                    tr {
                        td {
                            @if w.member == usize::MAX { "traffic list-and-watch" } @else { "m" (w.member) }
                        }
                        td { (w.segments.len()) }
                        td { (responses().count()) }
                        td { (responses().map(|r| r.events.len()).sum::<usize>()) }
                        td { (responses().filter(|r| r.progress_notify).count()) }
                        td { (responses().filter(|r| r.compact_revision > 0).count()) }
                        td { (responses().filter(|r| r.canceled).count()) }
                        td { (w.reached) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{FaultKind, FaultRecord};
    use crate::round::Availability;
    use crate::scenario::{plan, TrafficProfile};
    use crate::validate::Finding;
    use gauntlet_checker::models::etcd::{KeyValue, RangeRequest, RangeResult};
    use gauntlet_checker::search::PartitionResult;
    use gauntlet_checker::watch::{WatchRequest, WatchResponse, Watcher};
    use gauntlet_checker::Operation;

    /// Somewhere on the recording clock (a monotonic clock, far from zero).
    const BASE: u64 = 7_000_000_000_000;
    const MS: u64 = 1_000_000;

    fn put(
        client: u64,
        call_ms: u64,
        ret_ms: u64,
        key: &str,
        outcome: Outcome<EtcdResponse>,
    ) -> EtcdOp {
        Operation {
            client_id: client,
            call_ns: BASE + call_ms * MS,
            return_ns: BASE + ret_ms * MS,
            input: EtcdRequest::Put {
                key: key.into(),
                value: format!("{key}-by-{client}"),
                lease: 0,
            },
            outcome,
        }
    }

    fn put_ok(revision: i64) -> Outcome<EtcdResponse> {
        Outcome::Ok(EtcdResponse::Put { revision })
    }

    /// Three clients around a leader kill: an answered put, a definite failure and an
    /// unknown outcome during the fault, a stale read after it.
    fn history() -> Vec<EtcdOp> {
        let stale_read = Operation {
            client_id: 3,
            call_ns: BASE + 2_500 * MS,
            return_ns: BASE + 2_503 * MS,
            input: EtcdRequest::Range(RangeRequest {
                key: "/chaos/a".into(),
                range_end: None,
                revision: 0,
                limit: 0,
                count_only: false,
            }),
            outcome: Outcome::Ok(EtcdResponse::Range {
                result: RangeResult {
                    kvs: vec![KeyValue {
                        key: "/chaos/a".into(),
                        value: "/chaos/a-by-1".into(),
                        create_revision: 2,
                        mod_revision: 2,
                        version: 1,
                        lease: 0,
                    }],
                    count: 1,
                    more: false,
                },
                revision: 3,
            }),
        };
        vec![
            put(1, 0, 2, "/chaos/a", put_ok(2)),
            put(2, 1, 4, "/chaos/a", put_ok(3)),
            put(
                3,
                1_100,
                1_200,
                "/chaos/<script>alert(1)</script>",
                Outcome::Failed,
            ),
            put(1, 1_150, 2_150, "/chaos/b", Outcome::Unknown),
            stale_read,
            // Claims revision 3 too, but the finding below names client 2 only.
            put(1, 2_600, 2_602, "/chaos/c", put_ok(3)),
        ]
    }

    fn finding(check: &str, detail: &str) -> Finding {
        Finding {
            check: check.into(),
            guarantee: None,
            detail: detail.into(),
        }
    }

    fn result() -> RoundResult {
        RoundResult {
            spec: plan(1, 0, 3, &[FaultKind::KillLeader], TrafficProfile::Etcd),
            verdict: RoundVerdict::Violation,
            findings: vec![
                finding(
                    "linearizability",
                    "no linearization of 6 operations; longest linearizable prefix has 2",
                ),
                finding(
                    "acknowledged-write",
                    "put /chaos/a=/chaos/a-by-2 was acknowledged at revision 3 (client 2), but no watcher on any member delivered revision 3",
                ),
                finding("hashkv", "members disagree at revision 3: m0 hash 1, m1 hash 2"),
            ],
            unknown: Vec::new(),
            known_issues: Vec::new(),
            fault: Some(FaultRecord {
                fault: FaultKind::KillLeader,
                members: vec![0],
                leader_before: Some(0),
                injected_ns: BASE + 1_000 * MS,
                healed_ns: BASE + 2_000 * MS,
                evidence: vec!["m0 killed".into(), "m1 named leader".into()],
            }),
            operations: 6,
            operations_left_out: 0,
            watch_responses: 1,
            side_reads_judged: 0,
            side_reads_unjudged: 0,
            unknown_writes_settled: (0, 0),
            availability: Availability {
                requests: 6,
                failed: 2,
                during_fault: 2,
                during_fault_failed: 2,
                first_write_after_heal_ms: Some(30),
                longest_write_gap_ms: 2_600,
                phases: Vec::new(),
            },
            validation_ms: 5,
            wall_ms: 3_000,
            dir: None,
            rerun: "gauntlet chaos --target etcd@3.5.1 --seed 1 --round 0".into(),
        }
    }

    /// The checker could not place the stale read (op 4) after the prefix.
    fn check() -> CheckResult {
        CheckResult {
            verdict: Verdict::NotLinearizable,
            partitions: vec![PartitionResult {
                ops: vec![0, 1, 2, 3, 4, 5],
                verdict: Verdict::NotLinearizable,
                unknown_reason: None,
                linearization: vec![0, 1],
                states: Vec::new(),
                unplaceable: vec![4],
                cache_entries: 0,
                distinct_states: 0,
            }],
            elapsed_ms: 1,
        }
    }

    fn watches() -> Vec<MemberWatch> {
        let segment = Watcher {
            id: 0,
            request: WatchRequest {
                key: "/chaos/".into(),
                range_end: Some("/chaos0".into()),
                start_revision: 1,
                filter_no_put: false,
                filter_no_delete: false,
                prev_kv: true,
            },
            created_revision: 1,
            responses: vec![WatchResponse {
                revision: 3,
                events: Vec::new(),
                progress_notify: true,
                compact_revision: 0,
                canceled: false,
            }],
        };
        vec![
            MemberWatch {
                member: 0,
                segments: vec![segment],
                reached: 3,
            },
            MemberWatch {
                member: usize::MAX,
                segments: Vec::new(),
                reached: 3,
            },
        ]
    }

    fn page() -> String {
        render(&result(), &history(), &watches(), Some(&check()))
    }

    /// The class attribute of operation `op`'s bar.
    fn bar_class(page: &str, op: usize) -> Option<&str> {
        let marker = format!("<rect data-op=\"{op}\" class=\"");
        let at = page.find(&marker)? + marker.len();
        let rest = &page[at..];
        Some(&rest[..rest.find('"')?])
    }

    #[test]
    fn one_row_per_client_and_the_fault_window_on_the_axis() {
        let page = page();
        assert_eq!(page.matches("class=\"row-label\"").count(), 3, "{page}");
        for c in 1..=3 {
            assert!(page.contains(&format!(">client {c}</text>")), "client {c}");
        }
        assert_eq!(page.matches("class=\"fault-band\"").count(), 1);
        assert!(
            page.contains("process.kill-leader on m0 · leader before: m0"),
            "the band names the fault, its target and the leader before it"
        );
        assert!(page.contains("class=\"heal\""));
        assert!(page.contains("class=\"first-write\""));
        // The band spans 1000..2000 ms from the first call at the page's scale:
        // 2603 ms span → 1301.5 px plot → 0.5 px/ms after the 90 px labels.
        assert!(
            page.contains("<rect class=\"fault-band\" x=\"590.0\""),
            "{page}"
        );
        assert!(
            page.contains("m1 named leader"),
            "the fault's evidence is shown"
        );
    }

    #[test]
    fn bars_are_coloured_by_outcome() {
        let page = page();
        assert_eq!(bar_class(&page, 0), Some("op ok"));
        assert_eq!(bar_class(&page, 2), Some("op failed"));
        assert_eq!(bar_class(&page, 3), Some("op unknown"));
        assert_eq!(page.matches("<rect data-op=").count(), 6);
    }

    #[test]
    fn operations_the_findings_name_are_outlined_and_listed() {
        let page = page();
        // Finding 1: the checker's unplaceable read; finding 2: client 2's put at
        // revision 3 (not client 1's, which claims the same revision).
        assert_eq!(bar_class(&page, 4), Some("op ok hl"));
        assert_eq!(bar_class(&page, 1), Some("op ok hl"));
        assert_eq!(bar_class(&page, 5), Some("op ok"));
        assert_eq!(
            named_ops(&result(), &history(), Some(&check())),
            Named::from([(1, vec![1]), (4, vec![0])])
        );
        // Without the checker's result a linearizability finding names nothing.
        assert_eq!(
            named_ops(&result(), &history(), None),
            Named::from([(1, vec![1])])
        );
        for i in 1..=3 {
            assert!(page.contains(&format!("id=\"finding-{i}\"")), "finding {i}");
        }
        assert!(page.contains("Operations the findings name (2)"));
        assert!(page.contains("<code>gauntlet chaos --target etcd@3.5.1 --seed 1 --round 0</code>"));
        // The findings come before the timeline.
        assert!(page.find("id=\"finding-1\"") < page.find("<svg"));
    }

    #[test]
    fn the_page_escapes_what_it_shows_and_closes_every_element() {
        let page = page();
        assert!(!page.contains("<script"), "a key was spliced unescaped");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert_eq!(page.matches("<svg").count(), 1);
        assert_eq!(page.matches("</svg>").count(), 1);
        // Inside SVG an unclosed element swallows its followers: every one is closed.
        for tag in ["rect", "line", "text", "title"] {
            let open = page.matches(&format!("<{tag} ")).count()
                + page.matches(&format!("<{tag}>")).count();
            assert_eq!(open, page.matches(&format!("</{tag}>")).count(), "<{tag}>");
            assert!(open > 0, "<{tag}>");
        }
    }

    #[test]
    fn watch_streams_are_counted_not_drawn() {
        let page = page();
        assert!(page.contains("traffic list-and-watch"));
        assert!(
            page.contains("<td>m0</td><td>1</td><td>1</td><td>0</td><td>1</td>"),
            "{page}"
        );
    }

    #[test]
    fn a_huge_history_is_drawn_in_part_and_said_so() {
        let n = MAX_DRAWN_OPS + 5;
        let history: Vec<EtcdOp> = (0..n)
            .map(|i| {
                let i64_rev = i64::try_from(i).unwrap_or(i64::MAX) + 2;
                put(
                    i as u64 % 4,
                    i as u64,
                    i as u64 + 1,
                    "/chaos/k",
                    put_ok(i64_rev),
                )
            })
            .collect();
        let mut r = result();
        r.findings = vec![finding(
            "acknowledged-write",
            &format!(
                "put was acknowledged at revision {} (client {})",
                n + 1,
                (n - 1) % 4
            ),
        )];
        let page = render(&r, &history, &[], None);
        assert_eq!(page.matches("<rect data-op=").count(), MAX_DRAWN_OPS);
        assert!(page.contains(&format!("The history has {n} operations")));
        // The last operation is past the cap in time order, but a finding names it.
        assert_eq!(bar_class(&page, n - 1), Some("op ok hl"));
        assert_eq!(bar_class(&page, n - 2), None);
    }

    #[test]
    fn revisions_and_clients_are_read_from_finding_details() {
        let d =
            "Reliable broken on member m1 (watcher 10000) at revision 12: event mod_revision: 5";
        assert_eq!(number_after(d, "revision "), Some(12));
        assert_eq!(
            number_after(
                "the txn acknowledged at revision 9 (client 7) wrote",
                "(client "
            ),
            Some(7)
        );
        assert_eq!(number_after("members disagree", "revision "), None);
        assert_eq!(tick_step_ms(3_000.0, 10.0), 500.0);
        assert_eq!(tick_step_ms(0.5, 10.0), 1.0);
    }
}
