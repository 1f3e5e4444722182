//! SVG plots (drawn with `plotters`) and the HTML page that shows them (built with `maud`).
//!
//! Three charts per run: throughput over time, latency percentiles over time, and
//! the latency CDF (log-scaled latency axis). A comparison overlays both targets.
//!
//! Charts use plotters' SVG backend without font support: text is laid out with its
//! built-in size estimate and written as SVG `<text>` elements, so the viewer's
//! sans-serif font draws it. [`Chart::to_svg`] never panics: degenerate ranges are
//! padded, points it cannot place are left out, and a chart plotters fails to draw
//! becomes an SVG that says so.

use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use maud::{html, PreEscaped, DOCTYPE};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{BenchError, Result};
use crate::result::RunResult;

const WIDTH: u32 = 760;
const HEIGHT: u32 = 380;
const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];
const FONT: &str = "sans-serif";
/// Font sizes as plotters takes them (it writes about 0.8 of this as the SVG size).
const TITLE_PX: u32 = 19;
const TEXT_PX: u32 = 15;

const INDEX_CSS: &str = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}\
pre{background:#f8f8f8;padding:1em}";

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
    /// Log-scale the x axis (points with x <= 0 are left out).
    pub log_x: bool,
    /// The lines.
    pub series: Vec<Series>,
}

/// A tick label: at most three decimals below 10, one below 1000, none above, and no
/// trailing zeros (`0.25`, `1`, `12.5`, `3000`).
fn fmt_tick(v: f64) -> String {
    let s = if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// `s` with control characters (which XML cannot carry) turned into spaces; plotters
/// escapes `<`, `>`, `&` and `"` itself.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The smallest and largest of `values`, if any.
fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A range plotters can draw: `lo < hi`, both finite, padded when the data is one value.
fn linear_range(b: Option<(f64, f64)>) -> Range<f64> {
    match b {
        None => 0.0..1.0,
        Some((lo, hi)) if hi > lo => lo..hi,
        Some((v, _)) => {
            let pad = if v == 0.0 { 1.0 } else { v.abs() * 0.5 };
            v - pad..v + pad
        }
    }
}

/// A positive range for a log axis, widened to whole decades so that the axis has
/// labels (plotters labels powers of ten, and their multiples within one decade).
/// The bounds come from positive values only.
fn log_range(b: Option<(f64, f64)>) -> Range<f64> {
    let Some((lo, hi)) = b else {
        return 1.0..10.0;
    };
    let a = lo.log10().floor().max(-300.0);
    let mut z = hi.log10().ceil().min(300.0);
    if z <= a {
        z = a + 1.0;
    }
    // A hair wider, so that rounding in plotters keeps the end decades labelled.
    10f64.powf(a) * 0.999_999..10f64.powf(z) * 1.000_001
}

impl Chart {
    /// The points plotters is given: finite ones only, and on a log x axis only
    /// those with x > 0.
    fn drawable(&self) -> Vec<Vec<(f64, f64)>> {
        self.series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .copied()
                    .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0))
                    .collect()
            })
            .collect()
    }

    /// The chart as an SVG document: the title above, axes with ticks and labels, one
    /// line per series (a dot when a series has a single point) and a legend naming
    /// every series. The y axis starts at 0 (or lower, for negative data) and leaves
    /// 5% room above the highest point. Never panics: an empty chart draws empty
    /// axes, and if plotters fails the SVG says the chart could not be drawn and why.
    pub fn to_svg(&self) -> String {
        let points = self.drawable();
        let all = || points.iter().flatten();
        let (ylo, yhi) = bounds(all().map(|p| p.1)).unwrap_or((0.0, 1.0));
        let (ylo, yhi) = (ylo.min(0.0), yhi.max(0.0));
        let y = if yhi > ylo {
            ylo..ylo + (yhi - ylo) * 1.05
        } else {
            0.0..1.0
        };
        let mut svg = String::new();
        let drawn = catch_unwind(AssertUnwindSafe(|| {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            if self.log_x {
                let x = log_range(bounds(all().map(|p| p.0)));
                self.draw(&root, x.log_scale(), y, &points)?;
            } else {
                let x = linear_range(bounds(all().map(|p| p.0)));
                self.draw(&root, x, y, &points)?;
            }
            root.present()
        }));
        match drawn {
            Ok(Ok(())) => svg,
            Ok(Err(e)) => self.failed_svg(&e.to_string()),
            Err(_) => self.failed_svg("plotters panicked"),
        }
    }

    /// Draws the chart on `root` with the given x coordinate (linear or log) and y range.
    fn draw<X>(
        &self,
        root: &DrawingArea<SVGBackend<'_>, Shift>,
        x: X,
        y: Range<f64>,
        points: &[Vec<(f64, f64)>],
    ) -> std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>
    where
        X: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
    {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption(clean(&self.title), (FONT, TITLE_PX))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x, y)?;
        chart
            .configure_mesh()
            .x_desc(clean(&self.x_label))
            .y_desc(clean(&self.y_label))
            .x_labels(if self.log_x { 10 } else { 8 })
            .y_labels(6)
            // Light lines: every decade's subdivisions on a log axis, one between
            // labels on a linear one.
            .x_max_light_lines(if self.log_x { 10 } else { 1 })
            .y_max_light_lines(1)
            .x_label_formatter(&|v| fmt_tick(*v))
            .y_label_formatter(&|v| fmt_tick(*v))
            .label_style((FONT, TEXT_PX))
            .axis_desc_style((FONT, TEXT_PX))
            .draw()?;
        for (i, (series, pts)) in self.series.iter().zip(points).enumerate() {
            let color = COLORS[i % COLORS.len()];
            let style = color.stroke_width(2);
            let line = LineSeries::new(pts.iter().copied(), style);
            let line = if pts.len() == 1 {
                line.point_size(3)
            } else {
                line
            };
            chart
                .draw_series(line)?
                .label(clean(&series.label))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                });
        }
        if !self.series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font((FONT, TEXT_PX))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .draw()?;
        }
        Ok(())
    }

    /// An SVG of the chart's size saying it could not be drawn, and why.
    fn failed_svg(&self, why: &str) -> String {
        html! {
            svg xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(HEIGHT) {
                rect width="100%" height="100%" fill="white" {}
                text x="20" y="30" font-family=(FONT) font-size="14" {
                    (self.title) ": the chart could not be drawn (" (why) ")"
                }
            }
        }
        .into_string()
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

/// Each chart of [`charts`] as (file name, SVG text), for a report that embeds the
/// charts inline rather than linking the files [`write_plots`] writes.
pub fn chart_svgs(runs: &[(String, &RunResult)]) -> Vec<(String, String)> {
    charts(runs)
        .into_iter()
        .map(|(name, chart)| (name, chart.to_svg()))
        .collect()
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| BenchError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Writes the SVGs of [`charts`] and `index.html` (a summary table of every run and
/// operation, extra text such as a comparison in a `<pre>`, and the charts as images)
/// into `dir`, created if missing. Returns the files written, the page last.
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
    let mut images = Vec::new();
    for (name, chart) in charts(runs) {
        let path = dir.join(&name);
        write(&path, &chart.to_svg())?;
        files.push(path);
        images.push((name, chart.title));
    }
    let title = runs.first().map_or("bench", |(_, r)| r.workload.as_str());
    let page = html! {
        (DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                title { "gauntlet bench: " (title) }
                style { (PreEscaped(INDEX_CSS)) }
            }
            body {
                h1 { "gauntlet bench: " (title) }
                table {
                    tr {
                        th { "run" } th { "operation" } th { "count" } th { "errors" }
                        th { "req/s" } th { "p50 ms" } th { "p99 ms" } th { "p99.9 ms" }
                        th { "generator CPU us/op" } th { "bottleneck" }
                    }
                    @for (label, r) in runs {
                        @for op in &r.ops {
                            tr {
                                td { (label) }
                                td { (op.name) }
                                td { (op.count) }
                                td { (op.errors) }
                                td { (format!("{:.1}", op.requests_per_s)) }
                                td { (format!("{:.3}", op.percentile_s(50.0) * 1e3)) }
                                td { (format!("{:.3}", op.percentile_s(99.0) * 1e3)) }
                                td { (format!("{:.3}", op.percentile_s(99.9) * 1e3)) }
                                td { (format!("{:.1}", r.cpu.generator_cpu_us_per_op)) }
                                td { (r.cpu.bottleneck) }
                            }
                        }
                    }
                }
                @if !extra_text.is_empty() {
                    pre { (extra_text) }
                }
                @for (name, alt) in &images {
                    p { img src=(name) alt=(alt); }
                }
            }
        }
    };
    let index = dir.join("index.html");
    write(&index, &(page.into_string() + "\n"))?;
    files.push(index);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(log_x: bool, points: Vec<(f64, f64)>) -> Chart {
        Chart {
            title: "t <1>".into(),
            x_label: "x & more".into(),
            y_label: "y".into(),
            log_x,
            series: vec![Series {
                label: "a \"b\"".into(),
                points,
            }],
        }
    }

    fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        assert!(!svg.contains("could not be drawn"), "{svg}");
        assert!(svg.contains("t &lt;1&gt;"), "title: {svg}");
        assert!(svg.contains("x &amp; more"), "x label: {svg}");
        assert!(svg.contains("a &quot;b&quot;"), "legend: {svg}");
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn svg_is_well_formed_enough() {
        let svg = chart(true, vec![(0.5, 0.1), (5.0, 0.9), (50.0, 1.0)]).to_svg();
        assert_well_formed(&svg);
        let line = svg
            .lines()
            .find(|l| l.contains("<polyline") && l.contains("stroke=\"#1F77B4\""))
            .unwrap_or_else(|| panic!("no series line: {svg}"));
        let pts = line.split("points=\"").nth(1).unwrap_or("");
        let xs: Vec<f64> = pts
            .split('"')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|p| p.split(',').next()?.parse().ok())
            .collect();
        assert_eq!(xs.len(), 3, "{line}");
        // 0.5, 5 and 50 are evenly spaced on a log axis.
        assert!(((xs[1] - xs[0]) - (xs[2] - xs[1])).abs() <= 2.0, "{line}");
        assert!(svg.contains("<text"));
    }

    #[test]
    fn linear_chart_has_its_line() {
        let svg = chart(false, vec![(0.0, 10.0), (1.0, 20.0), (2.0, 15.0)]).to_svg();
        assert_well_formed(&svg);
        assert!(svg.contains("stroke=\"#1F77B4\""), "{svg}");
    }

    #[test]
    fn empty_charts_do_not_panic() {
        for log_x in [false, true] {
            assert_well_formed(&chart(log_x, Vec::new()).to_svg());
            let none = Chart {
                series: Vec::new(),
                ..chart(log_x, Vec::new())
            };
            let svg = none.to_svg();
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
            assert!(!svg.contains("could not be drawn"), "{svg}");
        }
    }

    #[test]
    fn one_point_and_odd_points_do_not_panic() {
        for log_x in [false, true] {
            let svg = chart(log_x, vec![(3.0, 7.0)]).to_svg();
            assert_well_formed(&svg);
            assert!(svg.contains("<circle"), "a single point is a dot: {svg}");
            assert_well_formed(&chart(log_x, vec![(0.0, 0.0), (0.0, 0.0)]).to_svg());
            assert_well_formed(
                &chart(
                    log_x,
                    vec![(f64::NAN, 1.0), (-1.0, f64::INFINITY), (2.0, -3.0)],
                )
                .to_svg(),
            );
        }
    }

    /// A run of `name` with three seconds of operations at 1..=30 ms.
    fn run(name: &str) -> RunResult {
        use std::time::{Duration, Instant};
        let start = Instant::now();
        let rec = crate::stats::Recorder::new(name, start);
        for sec in 0..3u64 {
            for ms in 1..=30u64 {
                let at = start + Duration::from_millis(sec * 1000 + ms);
                rec.record(ms as usize, at, Duration::from_millis(ms), Ok(()));
            }
        }
        crate::result::sample_run(vec![rec.summarize(Duration::from_secs(3))], None)
    }

    #[test]
    fn plots_and_page_are_written() {
        let (a, b) = (run("put"), run("put"));
        let runs = [("A".to_string(), &a), ("B".to_string(), &b)];
        let svgs = chart_svgs(&runs);
        let names: Vec<&str> = svgs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["throughput.svg", "latency.svg", "cdf.svg"]);
        for (name, svg) in &svgs {
            assert!(
                svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
                "{name}"
            );
            assert!(svg.contains("put &lt;&amp;&gt;"), "{name}: title escaped");
            assert!(
                svg.contains("A put") && svg.contains("B put"),
                "{name}: legend"
            );
            assert!(!svg.contains("could not be drawn"), "{name}: {svg}");
        }
        assert!(svgs[1].1.contains("A put p99"));
        let dir = tempfile::tempdir().unwrap();
        let files = write_plots(dir.path(), &runs, "ratio <B/A> & more").unwrap();
        assert_eq!(files.len(), 4);
        assert!(files[3].ends_with("index.html"));
        for (f, (name, svg)) in files.iter().zip(&svgs) {
            assert_eq!(&std::fs::read_to_string(f).unwrap(), svg, "{name}");
        }
        let page = std::fs::read_to_string(&files[3]).unwrap();
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(
            page.contains("<title>gauntlet bench: put &lt;&amp;&gt;</title>"),
            "{page}"
        );
        assert_eq!(
            page.matches("<tr>").count(),
            3,
            "header and one row per run: {page}"
        );
        assert!(page.contains("<td>12.5</td><td>target</td>"), "{page}");
        assert!(
            page.contains("<pre>ratio &lt;B/A&gt; &amp; more</pre>"),
            "{page}"
        );
        assert!(page.contains("<img src=\"cdf.svg\" alt=\"put &lt;&amp;&gt;: latency CDF\">"));
        let bare = write_plots(&dir.path().join("one"), &[("A".into(), &a)], "").unwrap();
        let page = std::fs::read_to_string(&bare[3]).unwrap();
        assert!(!page.contains("<pre>"), "no extra text, no <pre>");
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(fmt_tick(0.0), "0");
        assert_eq!(fmt_tick(0.25), "0.25");
        assert_eq!(fmt_tick(1.0), "1");
        assert_eq!(fmt_tick(12.5), "12.5");
        assert_eq!(fmt_tick(3000.4), "3000");
        assert_eq!(fmt_tick(-0.0001), "0");
    }

    #[test]
    fn failure_svg_is_escaped() {
        let svg = chart(false, Vec::new()).failed_svg("a < b");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("t &lt;1&gt;: the chart could not be drawn (a &lt; b)"));
    }
}
