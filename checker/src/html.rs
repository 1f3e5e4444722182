//! A self-contained HTML page for a failing check: per partition, every operation as a bar in its
//! client's lane (green: in the longest linearizable prefix, red: cannot be placed after it, grey: the
//! rest), then the prefix step by step with the model state after each step. No external assets.
//!
//! The page is built with `maud`, which escapes every title, operation and state it splices; only
//! the constant stylesheet is inserted unescaped.

use std::collections::{HashMap, HashSet};

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::history::Operation;
use crate::model::Model;
use crate::search::{CheckResult, PartitionResult, Verdict};

/// Most operations drawn per partition; the rest are summarized.
pub const MAX_DRAWN_OPS: usize = 2000;
/// Most partitions drawn (not-linearizable ones first).
pub const MAX_DRAWN_PARTITIONS: usize = 20;

/// Width of the time axis, in pixels.
const PLOT_PX: f64 = 1200.0;
/// Room for the lane labels at the left.
const LABEL_PX: f64 = 70.0;
/// Height of one client lane.
const LANE_PX: f64 = 22.0;
/// Height of one bar.
const BAR_PX: f64 = 16.0;

const CSS: &str = "\
body{font-family:sans-serif;margin:1em}svg{border:1px solid #ccc}\
.ok{fill:#4caf50}.bad{fill:#e53935}.other{fill:#bbb}table{border-collapse:collapse}\
td,th{border:1px solid #ddd;padding:2px 6px;font-family:monospace;font-size:12px}";

/// One decimal: enough for pixels, and it keeps the page small.
fn f1(v: f64) -> String {
    format!("{v:.1}")
}

/// Renders `result` for `history` as one HTML document: a verdict line, then up to
/// [`MAX_DRAWN_PARTITIONS`] partitions (not-linearizable ones first), each with a timeline of up
/// to [`MAX_DRAWN_OPS`] operations, the operations that cannot follow the prefix, and the longest
/// linearizable prefix with the model state after each step. Every text from `title`, the model and
/// the history is escaped.
pub fn render<M: Model>(
    model: &M,
    title: &str,
    history: &[Operation<M::Input, M::Output>],
    result: &CheckResult,
) -> String {
    let mut order: Vec<usize> = (0..result.partitions.len()).collect();
    order.sort_by_key(|&i| result.partitions[i].verdict != Verdict::NotLinearizable);
    html! {
        (DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { (title) }
                p {
                    "verdict: " b { (result.verdict.as_str()) } ", " (history.len()) " operations, "
                    (result.partitions.len()) " partitions, " (result.elapsed_ms) " ms"
                }
                @for &pi in order.iter().take(MAX_DRAWN_PARTITIONS) {
                    (partition(model, history, pi, &result.partitions[pi]))
                }
            }
        }
    }
    .into_string()
        + "\n"
}

/// One partition: heading, timeline, unplaceable operations and the prefix table.
fn partition<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    pi: usize,
    part: &PartitionResult,
) -> Markup {
    let describe = |i: usize| {
        let op = &history[i];
        model.describe_operation(&op.input, op.outcome.output())
    };
    html! {
        h2 { "partition " (pi) ": " (part.verdict.as_str()) }
        @if part.ops.len() > MAX_DRAWN_OPS {
            p { "showing the first " (MAX_DRAWN_OPS) " of " (part.ops.len()) " operations" }
        }
        (timeline(history, part, &describe))
        @if part.verdict == Verdict::NotLinearizable {
            h3 { "cannot be placed after the prefix" }
            ul {
                @for &i in &part.unplaceable {
                    li { "#" (i) " client " (history[i].client_id) ": " (describe(i)) }
                }
            }
        }
        h3 { "longest linearizable prefix" }
        table {
            tr { th { "step" } th { "op" } th { "client" } th { "operation" } th { "state after" } }
            @for (step, &i) in part.linearization.iter().enumerate().take(MAX_DRAWN_OPS) {
                tr {
                    td { (step + 1) }
                    td { "#" (i) }
                    td { (history[i].client_id) }
                    td { (describe(i)) }
                    td { (part.states.get(step).map_or("", String::as_str)) }
                }
            }
        }
    }
}

/// The partition's first [`MAX_DRAWN_OPS`] operations as bars, one lane per client, coloured by
/// class: `ok` (in the prefix), `bad` (cannot be placed after it) or `other`.
fn timeline<I, O>(
    history: &[Operation<I, O>],
    part: &PartitionResult,
    describe: &dyn Fn(usize) -> String,
) -> Markup {
    let prefix: HashMap<usize, usize> = part
        .linearization
        .iter()
        .enumerate()
        .map(|(step, &op)| (op, step))
        .collect();
    let unplaceable: HashSet<usize> = part.unplaceable.iter().copied().collect();
    let ops: Vec<usize> = part.ops.iter().copied().take(MAX_DRAWN_OPS).collect();
    let mut clients: Vec<u64> = ops.iter().map(|&i| history[i].client_id).collect();
    clients.sort_unstable();
    clients.dedup();
    let t0 = ops.iter().map(|&i| history[i].call_ns).min().unwrap_or(0);
    let t1 = ops
        .iter()
        .map(|&i| history[i].return_ns.max(history[i].call_ns + 1))
        .max()
        .unwrap_or(1);
    let scale = PLOT_PX / t1.saturating_sub(t0).max(1) as f64;
    html! {
        svg width=(f1(PLOT_PX + 80.0)) height=(f1(LANE_PX * clients.len() as f64 + 10.0)) {
            @for (ci, c) in clients.iter().enumerate() {
                text x="2" y=(f1(ci as f64 * LANE_PX + 15.0)) font-size="11" { "client " (c) }
            }
            @for &i in &ops {
                @let op = &history[i];
                @let ci = clients.binary_search(&op.client_id).unwrap_or(0);
                @let x = LABEL_PX + (op.call_ns - t0) as f64 * scale;
                @let w = ((op.return_ns.max(op.call_ns) - op.call_ns) as f64 * scale).max(2.0);
                @let class = if unplaceable.contains(&i) {
                    "bad"
                } else if prefix.contains_key(&i) {
                    "ok"
                } else {
                    "other"
                };
                rect class=(class) x=(f1(x)) y=(f1(ci as f64 * LANE_PX + 3.0)) width=(f1(w))
                    height=(f1(BAR_PX)) {
                    title {
                        "#" (i) " " (describe(i))
                        @if let Some(step) = prefix.get(&i) { " [step " (step + 1) "]" }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::register::{RegisterInput as In, RegisterModel, RegisterOutput as Out};
    use crate::{check, CheckOptions, Outcome};

    fn op(
        client_id: u64,
        call_ns: u64,
        return_ns: u64,
        input: In,
        output: Out,
    ) -> Operation<In, Out> {
        Operation {
            client_id,
            call_ns,
            return_ns,
            input,
            outcome: Outcome::Ok(output),
        }
    }

    fn bad_history() -> Vec<Operation<In, Out>> {
        vec![
            op(1, 0, 10, In::Write(1), Out::Write),
            op(2, 2, 12, In::Read, Out::Read(Some(1))),
            op(3, 20, 30, In::Read, Out::Read(None)),
        ]
    }

    #[test]
    fn page_shows_timeline_prefix_and_unplaceable() {
        let history = bad_history();
        let result = check(&RegisterModel, &history, &CheckOptions::default()).unwrap();
        let page = render(&RegisterModel, "register", &history, &result);
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(
            page.contains("verdict: <b>not-linearizable</b>, 3 operations"),
            "{page}"
        );
        assert_eq!(page.matches("<svg").count(), 1);
        assert_eq!(page.matches("<rect ").count(), 3);
        assert_eq!(page.matches("<rect class=\"ok\"").count(), 2);
        assert_eq!(page.matches("<rect class=\"bad\"").count(), 1);
        assert!(page.contains("[step 2]"));
        assert!(page.contains("cannot be placed after the prefix"));
        assert!(page.contains("longest linearizable prefix"));
        assert_eq!(page.matches("<tr>").count(), 3, "header and two steps");
        assert!(page.trim_end().ends_with("</html>"));
    }

    #[test]
    fn title_is_escaped() {
        let history = bad_history();
        let result = check(&RegisterModel, &history, &CheckOptions::default()).unwrap();
        let page = render(
            &RegisterModel,
            "<script>alert(1)</script>",
            &history,
            &result,
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn long_partitions_are_cut_and_said_so() {
        let history: Vec<_> = (0..MAX_DRAWN_OPS as u64 + 5)
            .map(|i| op(i % 3, i * 10, i * 10 + 5, In::Write(i as i64), Out::Write))
            .collect();
        let result = check(&RegisterModel, &history, &CheckOptions::default()).unwrap();
        let page = render(&RegisterModel, "many", &history, &result);
        assert!(page.contains(&format!(
            "showing the first {MAX_DRAWN_OPS} of {} operations",
            history.len()
        )));
        assert_eq!(page.matches("<rect ").count(), MAX_DRAWN_OPS);
    }
}
