//! `index.html` in a real browser (headless Chromium from Debian's packages): it
//! loads without errors, with its plots and the chaos timeline it embeds, and a
//! page with a missing plot is caught, so the check can fail.

use std::path::Path;

use gauntlet_bench::plot::{Chart, Series};
use gauntlet_reports::browser;
use gauntlet_reports::model::*;

fn report(dir: &Path, plot: &str) -> Report {
    let mut r: Report = serde_json::from_str(include_str!("sample-report.json")).unwrap();
    let chart = Chart {
        title: "put: latency CDF".into(),
        x_label: "latency (ms, log scale)".into(),
        y_label: "fraction of operations".into(),
        log_x: true,
        series: vec![Series {
            label: "put".into(),
            points: vec![(0.5, 0.1), (1.0, 0.5), (4.0, 0.99), (9.0, 1.0)],
        }],
    };
    std::fs::create_dir_all(dir.join("bench/put")).unwrap();
    std::fs::write(dir.join("bench/put/cdf.svg"), chart.to_svg()).unwrap();
    std::fs::create_dir_all(dir.join("chaos/process/round-1")).unwrap();
    std::fs::write(
        dir.join("chaos/process/round-1/timeline.html"),
        "<!doctype html><title>timeline</title><p>timeline</p>",
    )
    .unwrap();
    if let Some(b) = r.bench.as_mut() {
        b.workloads[0].plots = vec![plot.to_string()];
    }
    r
}

#[test]
fn the_report_page_loads_without_errors_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let r = report(dir.path(), "bench/put/cdf.svg");
    gauntlet_reports::write_dir(&r, &[], dir.path()).unwrap();
    let page = dir.path().join("index.html");
    let got = browser::check(&page).unwrap();
    assert_eq!(
        got,
        browser::PageCheck {
            loaded: true,
            errors: 0,
            last_error: None
        }
    );
    let png = dir.path().join("screenshot.png");
    browser::screenshot(&page, &png, 1280, 1600).unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    assert!(bytes.len() > 10_000, "a blank page? {} bytes", bytes.len());
}

#[test]
fn a_missing_plot_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let r = report(dir.path(), "bench/put/missing.svg");
    gauntlet_reports::write_dir(&r, &[], dir.path()).unwrap();
    let got = browser::check(&dir.path().join("index.html")).unwrap();
    assert!(got.loaded);
    assert_eq!(got.errors, 1, "{got:?}");
    assert!(
        got.last_error
            .as_deref()
            .is_some_and(|e| e.ends_with("missing.svg")),
        "{got:?}"
    );
}
