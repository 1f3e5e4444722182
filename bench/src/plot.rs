//! SVG plots and the HTML page that shows them, written without dependencies.
//!
//! Three charts per run: throughput over time, latency percentiles over time, and
//! the latency CDF (log-scaled latency axis). A comparison overlays both targets.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{BenchError, Result};
use crate::result::RunResult;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 380.0;
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 36.0;
const MARGIN_BOTTOM: f64 = 50.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];
const TICKS: usize = 5;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// (x, y) points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Log-scale the x axis (values must be positive).
    pub log_x: bool,
    /// The lines.
    pub series: Vec<Series>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

impl Chart {
    /// The chart as an SVG document.
    pub fn to_svg(&self) -> String {
        let tx = |x: f64| if self.log_x { x.max(1e-9).log10() } else { x };
        let pts = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
        for &(x, y) in pts {
            x0 = x0.min(tx(x));
            x1 = x1.max(tx(x));
            y1 = y1.max(y);
        }
        if !x0.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= 0.0 {
            y1 = 1.0;
        }
        y1 *= 1.05;
        let pw = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
        let ph = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
        let px = |x: f64| MARGIN_LEFT + (tx(x) - x0) / (x1 - x0) * pw;
        let py = |y: f64| MARGIN_TOP + ph - y / y1 * ph;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
            WIDTH / 2.0,
            esc(&self.title)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
        );
        for i in 0..=TICKS {
            let f = i as f64 / TICKS as f64;
            let yv = y1 * f;
            let y = py(yv);
            let _ = writeln!(
                s,
                r##"<line x1="{MARGIN_LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                MARGIN_LEFT + pw,
                MARGIN_LEFT - 6.0,
                y + 4.0,
                fmt_tick(yv)
            );
            let xt = x0 + (x1 - x0) * f;
            let xv = if self.log_x { 10f64.powf(xt) } else { xt };
            let x = MARGIN_LEFT + f * pw;
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{MARGIN_TOP}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                MARGIN_TOP + ph,
                MARGIN_TOP + ph + 16.0,
                fmt_tick(xv)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            MARGIN_LEFT + pw / 2.0,
            HEIGHT - 10.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
            MARGIN_TOP + ph / 2.0,
            MARGIN_TOP + ph / 2.0,
            esc(&self.y_label)
        );
        for (i, ser) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let path: Vec<String> = ser
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            if !path.is_empty() {
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{}"/>"#,
                    path.join(" ")
                );
            }
            let ly = MARGIN_TOP + 14.0 + i as f64 * 16.0;
            let lx = MARGIN_LEFT + 10.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
                lx + 18.0,
                lx + 24.0,
                ly + 4.0,
                esc(&ser.label)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

/// The three charts for a set of labelled results (one result, or A and B of a comparison).
/// Every operation kind of every result is a line.
pub fn charts(runs: &[(String, &RunResult)]) -> Vec<(String, Chart)> {
    let mut tput = Vec::new();
    let mut lat = Vec::new();
    let mut cdf = Vec::new();
    for (label, r) in runs {
        for op in &r.ops {
            let name = if runs.len() > 1 {
                format!("{label} {}", op.name)
            } else {
                op.name.clone()
            };
            tput.push(Series {
                label: name.clone(),
                points: op.throughput_points(),
            });
            lat.push(Series {
                label: format!("{name} p50"),
                points: op
                    .timeline
                    .iter()
                    .filter(|t| t.ops > 0)
                    .map(|t| (t.second as f64, t.latency_ms_p50))
                    .collect(),
            });
            lat.push(Series {
                label: format!("{name} p99"),
                points: op
                    .timeline
                    .iter()
                    .filter(|t| t.ops > 0)
                    .map(|t| (t.second as f64, t.latency_ms_p99))
                    .collect(),
            });
            cdf.push(Series {
                label: name,
                points: op.cdf_points(),
            });
        }
    }
    let title = runs
        .first()
        .map_or("", |(_, r)| r.workload.as_str())
        .to_string();
    vec![
        (
            "throughput.svg".into(),
            Chart {
                title: format!("{title}: throughput over time"),
                x_label: "seconds since start".into(),
                y_label: "operations / s".into(),
                log_x: false,
                series: tput,
            },
        ),
        (
            "latency.svg".into(),
            Chart {
                title: format!("{title}: latency percentiles over time"),
                x_label: "seconds since start".into(),
                y_label: "latency (ms)".into(),
                log_x: false,
                series: lat,
            },
        ),
        (
            "cdf.svg".into(),
            Chart {
                title: format!("{title}: latency CDF"),
                x_label: "latency (ms, log scale)".into(),
                y_label: "fraction of operations".into(),
                log_x: true,
                series: cdf,
            },
        ),
    ]
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| BenchError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Writes the SVGs and `index.html` (a summary table, extra text such as a comparison,
/// and the charts) into `dir`. Returns the files written.
pub fn write_plots(
    dir: &Path,
    runs: &[(String, &RunResult)],
    extra_text: &str,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::File {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut files = Vec::new();
    let mut html = String::new();
    let title = runs.first().map_or("bench", |(_, r)| r.workload.as_str());
    let _ = writeln!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>gauntlet bench: {}</title>",
        esc(title)
    );
    html.push_str("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}pre{background:#f8f8f8;padding:1em}</style></head><body>\n");
    let _ = writeln!(html, "<h1>gauntlet bench: {}</h1>", esc(title));
    html.push_str("<table><tr><th>run</th><th>operation</th><th>count</th><th>errors</th><th>req/s</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>generator CPU us/op</th><th>bottleneck</th></tr>\n");
    for (label, r) in runs {
        for op in &r.ops {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.1}</td><td>{}</td></tr>",
                esc(label), esc(&op.name), op.count, op.errors, op.requests_per_s,
                op.percentile_s(50.0) * 1e3, op.percentile_s(99.0) * 1e3, op.percentile_s(99.9) * 1e3,
                r.cpu.generator_cpu_us_per_op, esc(&r.cpu.bottleneck)
            );
        }
    }
    html.push_str("</table>\n");
    if !extra_text.is_empty() {
        let _ = writeln!(html, "<pre>{}</pre>", esc(extra_text));
    }
    for (name, chart) in charts(runs) {
        let path = dir.join(&name);
        write(&path, &chart.to_svg())?;
        let _ = writeln!(
            html,
            "<p><img src=\"{name}\" alt=\"{}\"></p>",
            esc(&chart.title)
        );
        files.push(path);
    }
    html.push_str("</body></html>\n");
    let index = dir.join("index.html");
    write(&index, &html)?;
    files.push(index);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_is_well_formed_enough() {
        let c = Chart {
            title: "t <1>".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            log_x: true,
            series: vec![Series {
                label: "a".into(),
                points: vec![(0.5, 0.1), (5.0, 0.9), (50.0, 1.0)],
            }],
        };
        let svg = c.to_svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("t &lt;1&gt;"));
        assert!(svg.contains("<polyline"));
    }
}
