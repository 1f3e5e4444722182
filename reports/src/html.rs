//! `index.html`: the report for a browser, through the `maud` template engine (every
//! value is escaped; only the constant style sheet and script are not).
//!
//! The verdicts come first (the recommendation, then one line per area), then the
//! reasons, observed ones apart from advisories, then each area: conformance per
//! service, chaos per fault family with the timeline of the first failing round,
//! the skew matrix, the benchmark figures with their plots (files under `bench/`,
//! drawn by the bench suite with plotters) and the Kubernetes SLO table.
//!
//! The page records load errors of its own (a missing plot, a script error) in
//! `data-errors` on the `<html>` element and sets `data-loaded` once loaded: the
//! browser test reads both.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::model::{Answer, CaseStatus, Report, RoundStatus, Severity, Source, Status};

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;color:#222}\
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;font-size:.92em}\
th{background:#f3f3f3}td.n{text-align:right}code{font-size:.9em;background:#f6f6f6;padding:0 .2em}\
.verdict{font-size:1.25em;padding:.8em 1em;border-radius:6px;margin:1em 0}\
.recommended{background:#e3f5e1;border:1px solid #4caf50}.recommended-with-caveats{background:#fff6dc;border:1px solid #e0a800}\
.not-recommended{background:#fde4e4;border:1px solid #d32f2f}\
.s-pass{color:#2e7d32;font-weight:bold}.s-caveats{color:#a66d00;font-weight:bold}.s-FAIL{color:#c62828;font-weight:bold}\
.s-error,.s-not-run{color:#666;font-weight:bold}\
.reason{border-left:4px solid #ccc;padding:.3em .8em;margin:.6em 0}.reason.blocker{border-color:#d32f2f}.reason.caveat{border-color:#e0a800}\
.reason dt{font-weight:bold;float:left;width:11em}.reason dd{margin-left:11.5em}\
img.plot{max-width:100%;border:1px solid #eee;margin:.4em 0}iframe{width:100%;height:520px;border:1px solid #ccc}\
details{margin:.4em 0}pre{white-space:pre-wrap;background:#f8f8f8;padding:.6em}";

/// Records load errors (resources and scripts) in `data-errors` and marks the load.
const PROBE: &str = "(function(){var d=document.documentElement;var n=0;\
window.addEventListener('error',function(e){n++;d.setAttribute('data-errors',String(n));\
var t=e.target&&e.target!==window?(e.target.src||e.target.href||e.target.tagName):e.message;\
d.setAttribute('data-last-error',String(t));},true);\
window.addEventListener('load',function(){d.setAttribute('data-errors',String(n));d.setAttribute('data-loaded','1');});})();";

fn status_class(s: Status) -> String {
    format!("s-{}", s.label().replace(' ', "-"))
}

fn answer_class(a: Answer) -> &'static str {
    match a {
        Answer::Recommended => "recommended",
        Answer::RecommendedWithCaveats => "recommended-with-caveats",
        Answer::NotRecommended => "not-recommended",
    }
}

fn reasons(r: &Report, source: Source) -> Markup {
    let rs: Vec<_> = r
        .recommendation
        .reasons
        .iter()
        .filter(|x| x.source == source)
        .collect();
    html! {
        @if rs.is_empty() {
            p { "None." }
        }
        @for x in rs {
            div class={ "reason " (match x.severity { Severity::Blocker => "blocker", Severity::Caveat => "caveat" }) } {
                p {
                    b { (x.title) }
                    " — " (match x.severity { Severity::Blocker => "blocker", Severity::Caveat => "caveat" })
                    @if let Some(a) = x.area { " (" (a) ")" }
                }
                dl {
                    dt { "Am I affected?" } dd { (x.affected) }
                    dt { "What do I do?" } dd {
                        (x.action)
                        @if let Some(u) = &x.upgrade_to { " Upgrade to " b { (u) } " or later." }
                    }
                    dt { "Evidence" } dd {
                        (x.evidence)
                        @if let Some(u) = &x.url { " " a href=(u) { (u) } }
                    }
                    @if let Some(c) = &x.rerun {
                        dt { "Rerun" } dd { code { (c) } }
                    }
                }
            }
        }
    }
}

fn conformance(r: &Report) -> Markup {
    let Some(c) = &r.conformance else {
        return html! {};
    };
    let shown: Vec<_> = c
        .cases
        .iter()
        .filter(|x| x.status != CaseStatus::Passed && x.status != CaseStatus::NotRun)
        .collect();
    html! {
        h2 id="conformance" { "Conformance" }
        p { "Held to " (c.held_to) ". Rerun: " code { (c.rerun) } }
        table {
            tr { th { "service" } th { "passed" } th { "failed" } th { "known issue" } th { "not run" } th { "unavailable" } }
            @for s in &c.services {
                tr {
                    td { (s.service) } td.n { (s.passed) } td.n { (s.failed) } td.n { (s.known_issue) }
                    td.n { (s.not_run) } td.n { (s.unavailable) }
                }
            }
        }
        @for crash in &c.crashes {
            p class=(if crash.known.is_some() { "s-caveats" } else { "s-FAIL" }) {
                "crash: " (crash.headline)
                @if let Some(t) = &crash.trigger { " (trigger: " code { (t) } ")" }
                @if let Some(k) = &crash.known { " — known: " (k.description) " (" a href=(k.url) { (k.url) } ", fixed in " (k.fixed_in) ")" }
            }
        }
        @if !shown.is_empty() {
            table {
                tr { th { "case" } th { "status" } th { "detail" } }
                @for x in shown.iter().take(500) {
                    tr {
                        td { code { (x.id) } }
                        td { (format!("{:?}", x.status)) }
                        td {
                            @if let Some(k) = &x.known {
                                (k.description) " (" a href=(k.url) { (k.url) } ", fixed in " (k.fixed_in) ")"
                                details { summary { "evidence" } pre { (x.detail) } }
                            } @else {
                                pre { (x.detail) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn chaos(r: &Report) -> Markup {
    let Some(ch) = &r.chaos else {
        return html! {};
    };
    let bad: Vec<_> = ch
        .rounds
        .iter()
        .filter(|x| x.status != RoundStatus::Passed)
        .collect();
    let first_timeline = ch
        .rounds
        .iter()
        .find(|x| {
            matches!(
                x.status,
                RoundStatus::Violation | RoundStatus::KnownIssue | RoundStatus::Unknown
            )
        })
        .and_then(|x| {
            x.evidence
                .as_ref()
                .map(|e| (x, format!("{e}/timeline.html")))
        });
    html! {
        h2 id="chaos" { "Chaos" }
        p { (ch.members) " member(s) per round; every round is judged by the linearizability checker and the watch validator." }
        table {
            tr { th { "fault family" } th { "rounds" } th { "passed" } th { "violations" } th { "known issues" } th { "unknown" } th { "not run" } }
            @for f in &ch.families {
                tr {
                    td { (f.family) } td.n { (f.rounds) } td.n { (f.passed) } td.n { (f.violations) }
                    td.n { (f.known_issues) } td.n { (f.unknown) } td.n { (f.not_run) }
                }
            }
        }
        @for l in &ch.left_out { p { "Left out: " (l) } }
        @if !bad.is_empty() {
            table {
                tr { th { "round" } th { "fault" } th { "profile" } th { "status" } th { "detail" } th { "rerun" } }
                @for x in &bad {
                    tr {
                        td.n { (x.round) } td { (x.fault) } td { (x.profile) } td { (format!("{:?}", x.status)) }
                        td {
                            @for d in &x.details { div { (d) } }
                            @for k in &x.known { div { "known: " (k.description) " (" a href=(k.url) { (k.url) } ", fixed in " (k.fixed_in) ")" } }
                            @if let Some(e) = &x.evidence { div { "evidence: " a href=(e) { (e) } } }
                        }
                        td { code { (x.rerun) } }
                    }
                }
            }
        }
        @if let Some((x, t)) = first_timeline {
            h3 { "Timeline of round " (x.round) " (" (x.fault) ")" }
            iframe src=(t) title="round timeline" {}
        }
    }
}

fn skew(r: &Report) -> Markup {
    let Some(s) = &r.skew else {
        return html! {};
    };
    html! {
        h2 id="skew" { "Skew: " (s.from) " → " (s.to) }
        p { "Rerun: " code { (s.rerun) } }
        table {
            tr { th { "scenario" } th { "profile" } th { "verdict" } th { "detail" } }
            @for x in &s.rows {
                tr {
                    td { (x.scenario) } td { (x.profile) }
                    td class={ @if x.verdict == "pass" { "s-pass" } @else if x.verdict == "FAIL" { "s-FAIL" } @else { "s-caveats" } } { (x.verdict) }
                    td {
                        @for d in &x.details { div { (d) } }
                        @if !x.fixed_in.is_empty() { div { "fixed in " (x.fixed_in.join(", ")) } }
                        @if let Some(e) = &x.evidence { div { "evidence: " a href=(e) { (e) } } }
                    }
                }
            }
        }
    }
}

fn bench(r: &Report) -> Markup {
    let Some(b) = &r.bench else {
        return html! {};
    };
    let slo: Vec<_> = b.workloads.iter().flat_map(|w| w.slo.iter()).collect();
    html! {
        h2 id="bench" { "Benchmarks" }
        table {
            tr { th { "workload" } th { "operation" } th { "req/s" } th { "p50 ms" } th { "p99 ms" } th { "p99.9 ms" } th { "errors" } }
            @for w in &b.workloads {
                @if let Some(e) = &w.error {
                    tr { td { (w.workload) } td colspan="6" { "could not run: " (e) } }
                }
                @for o in &w.ops {
                    tr {
                        td { (w.workload) } td { (o.name) } td.n { (format!("{:.0}", o.requests_per_s)) }
                        td.n { (format!("{:.2}", o.latency_ms_p50)) } td.n { (format!("{:.2}", o.latency_ms_p99)) }
                        td.n { (format!("{:.2}", o.latency_ms_p999)) } td.n { (o.errors) }
                    }
                }
            }
        }
        @if !slo.is_empty() {
            h3 { "Kubernetes SLOs" }
            table {
                tr { th { "SLO" } th { "p99" } th { "limit" } th { "samples" } th { "verdict" } }
                @for s in &slo {
                    tr {
                        td { (s.name) } td.n { (format!("{:.3} s", s.measured_s)) } td.n { (format!("{:.3} s", s.limit_s)) }
                        td.n { (s.samples) }
                        td class={ @if s.pass { "s-pass" } @else { "s-FAIL" } } { @if s.pass { "met" } @else { "missed" } }
                    }
                }
            }
        }
        @for w in &b.workloads {
            @if !w.plots.is_empty() {
                h3 { (w.workload) }
                p { code { (w.rerun) } }
                @for p in &w.plots { img.plot src=(p) alt={ (w.workload) " plot" }; }
            }
        }
    }
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let rec = &r.recommendation;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Gauntlet certify: " (r.target.label) }
                script { (PreEscaped(PROBE)) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Gauntlet certify: " (r.target.label) }
                div class={ "verdict " (answer_class(rec.level)) } {
                    b { (rec.level.label().to_uppercase()) } " — " (rec.summary)
                }
                p {
                    "Server version " code { (r.target.server_version) }
                    "; level " (r.level) "; seed " (r.seed) "; "
                    (format!("{:.0} s", r.wall_ms as f64 / 1000.0)) "; gauntlet " (r.gauntlet_version) "."
                }
                table {
                    tr { th { "area" } th { "verdict" } th { "figures" } }
                    @for a in &r.areas {
                        tr {
                            td { a href={ "#" (a.area) } { (a.area) } }
                            td class=(status_class(a.status)) { (a.status.label()) }
                            td { (a.summary) }
                        }
                    }
                }
                h2 { "Observed in this run" }
                (reasons(r, Source::Observed))
                h2 { "From published advisories" }
                p { "Not tested by this run: what etcd and Kubernetes publish about this version." }
                (reasons(r, Source::Advisory))
                (conformance(r))
                (chaos(r))
                (skew(r))
                (bench(r))
                h2 { "Reproduce" }
                p { code { (r.command) } }
                p { "Files: " a href="report.json" { "report.json" } ", " a href="report.md" { "report.md" } ", "
                    a href="junit.xml" { "junit.xml" } ", " a href="submission/e2e.log" { "submission/" } }
            }
        }
    };
    page.into_string()
}
