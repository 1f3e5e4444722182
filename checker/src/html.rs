//! A self-contained HTML page for a failing check: per partition, every operation as a bar in its
//! client's lane (green: in the longest linearizable prefix, red: cannot be placed after it, grey: the
//! rest), then the prefix step by step with the model state after each step. No external assets.

use std::fmt::Write as _;

use crate::history::Operation;
use crate::model::Model;
use crate::search::{CheckResult, Verdict};

/// Most operations drawn per partition; the rest are summarized.
pub const MAX_DRAWN_OPS: usize = 2000;
/// Most partitions drawn (not-linearizable ones first).
pub const MAX_DRAWN_PARTITIONS: usize = 20;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders `result` for `history` as one HTML document.
pub fn render<M: Model>(
    model: &M,
    title: &str,
    history: &[Operation<M::Input, M::Output>],
    result: &CheckResult,
) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
body{{font-family:sans-serif;margin:1em}}svg{{border:1px solid #ccc}}\
.ok{{fill:#4caf50}}.bad{{fill:#e53935}}.other{{fill:#bbb}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ddd;padding:2px 6px;font-family:monospace;font-size:12px}}</style></head><body>\
<h1>{t}</h1><p>verdict: <b>{v}</b>, {n} operations, {p} partitions, {ms} ms</p>",
        t = esc(title),
        v = result.verdict.as_str(),
        n = history.len(),
        p = result.partitions.len(),
        ms = result.elapsed_ms
    );
    let mut order: Vec<usize> = (0..result.partitions.len()).collect();
    order.sort_by_key(|&i| result.partitions[i].verdict != Verdict::NotLinearizable);
    for &pi in order.iter().take(MAX_DRAWN_PARTITIONS) {
        let part = &result.partitions[pi];
        let _ = write!(h, "<h2>partition {pi}: {}</h2>", part.verdict.as_str());
        let prefix: std::collections::HashMap<usize, usize> = part
            .linearization
            .iter()
            .enumerate()
            .map(|(step, &op)| (op, step))
            .collect();
        let ops: Vec<usize> = part.ops.iter().copied().take(MAX_DRAWN_OPS).collect();
        if part.ops.len() > MAX_DRAWN_OPS {
            let _ = write!(
                h,
                "<p>showing the first {MAX_DRAWN_OPS} of {} operations</p>",
                part.ops.len()
            );
        }
        let mut clients: Vec<u64> = ops.iter().map(|&i| history[i].client_id).collect();
        clients.sort_unstable();
        clients.dedup();
        let t0 = ops.iter().map(|&i| history[i].call_ns).min().unwrap_or(0);
        let t1 = ops
            .iter()
            .map(|&i| history[i].return_ns.max(history[i].call_ns + 1))
            .max()
            .unwrap_or(1);
        let width = 1200.0;
        let scale = width / (t1 - t0).max(1) as f64;
        let lane = 22.0;
        let _ = write!(
            h,
            "<svg width=\"{}\" height=\"{}\">",
            width + 80.0,
            lane * clients.len() as f64 + 10.0
        );
        for (ci, c) in clients.iter().enumerate() {
            let _ = write!(
                h,
                "<text x=\"2\" y=\"{}\" font-size=\"11\">client {c}</text>",
                ci as f64 * lane + 15.0
            );
        }
        for &i in &ops {
            let op = &history[i];
            let ci = clients.binary_search(&op.client_id).unwrap_or(0);
            let x = 70.0 + (op.call_ns - t0) as f64 * scale;
            let w = ((op.return_ns.max(op.call_ns) - op.call_ns) as f64 * scale).max(2.0);
            let class = if part.unplaceable.contains(&i) {
                "bad"
            } else if prefix.contains_key(&i) {
                "ok"
            } else {
                "other"
            };
            let step = prefix
                .get(&i)
                .map_or(String::new(), |s| format!(" [step {}]", s + 1));
            let _ = write!(
                h,
                "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"16\"><title>#{i} {}{step}</title></rect>",
                ci as f64 * lane + 3.0,
                esc(&model.describe_operation(&op.input, op.outcome.output()))
            );
        }
        h.push_str("</svg>");
        if part.verdict == Verdict::NotLinearizable {
            h.push_str("<h3>cannot be placed after the prefix</h3><ul>");
            for &i in &part.unplaceable {
                let op = &history[i];
                let _ = write!(
                    h,
                    "<li>#{i} client {}: {}</li>",
                    op.client_id,
                    esc(&model.describe_operation(&op.input, op.outcome.output()))
                );
            }
            h.push_str("</ul>");
        }
        h.push_str("<h3>longest linearizable prefix</h3><table><tr><th>step</th><th>op</th><th>client</th><th>operation</th><th>state after</th></tr>");
        for (step, &i) in part.linearization.iter().enumerate().take(MAX_DRAWN_OPS) {
            let op = &history[i];
            let state = part.states.get(step).map_or("", String::as_str);
            let _ = write!(
                h,
                "<tr><td>{}</td><td>#{i}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                step + 1,
                op.client_id,
                esc(&model.describe_operation(&op.input, op.outcome.output())),
                esc(state)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}
