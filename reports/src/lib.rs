//! Reports of a `gauntlet certify` run: one [`model::Report`], the verdicts and the
//! release recommendation it carries, and the report directory rendered from it.
//!
//! A certify run (driven by the `gauntlet` binary) runs the suites that apply to a
//! target, turns each suite's results into an area of the report ([`convert`]), adds
//! the published advisories that apply to the version ([`advisory`]) and draws the
//! recommendation from both ([`verdict`]). Then [`write_dir`] writes:
//!
//! | file | for | module |
//! |---|---|---|
//! | `report.json` | machines, `--baseline` ([`gate`]) | [`model`] (versioned schema, `reports/SCHEMA.md`) |
//! | `index.html` | people (verdicts first, plots, timelines) | [`html`] (maud) |
//! | `report.md` | CI job summaries (under 1 MiB) | [`markdown`] |
//! | `junit.xml` | CI test tracking (stable names) | [`junit`] (quick-junit) |
//! | `submission/` | publishing, shaped like a Kubernetes conformance submission | [`submission`] |
//!
//! Everything is rendered from the model, so a report can be re-rendered from its
//! `report.json` alone, and two runs compared without the servers.
//!
//! ```
//! use gauntlet_reports::advisory;
//! use gauntlet_harness::profile::SemVer;
//! // etcd 3.5.1 is inside etcd's 3.5.0-3.5.2 data inconsistency advisory.
//! let ids: Vec<_> = advisory::applicable(SemVer::parse("3.5.1"), SemVer::parse("3.5.1"))
//!     .iter().map(|a| a.id).collect();
//! assert!(ids.contains(&"etcd-3.5.0-3.5.2-data-inconsistency"));
//! ```

use std::path::Path;

pub mod advisory;
pub mod browser;
pub mod convert;
pub mod gate;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod model;
pub mod submission;
pub mod verdict;

/// Writes the report directory: `report.json`, `index.html`, `report.md`,
/// `junit.xml` and `submission/` (with `log`, the run's plain-text log). Suites'
/// own evidence (round directories, plots) is written into `dir` by the run itself.
pub fn write_dir(report: &model::Report, log: &[String], dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json)?;
    std::fs::write(dir.join("index.html"), html::render(report))?;
    std::fs::write(dir.join("report.md"), markdown::render(report))?;
    std::fs::write(dir.join("junit.xml"), junit::render(report))?;
    submission::write(report, log, &dir.join("submission"))?;
    Ok(())
}
