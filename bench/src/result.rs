//! A run's result: what is printed, saved as JSON, compared and plotted.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};
use crate::gen::CpuReport;
use crate::stats::OpSummary;

/// Version of the JSON layout; a baseline with another version is refused.
pub const SCHEMA_VERSION: u32 = 1;

/// One row of the Kubernetes SLO table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloRow {
    /// What is measured (`mutating p99`, `list p99`, `watch lag p99`).
    pub name: String,
    /// The measured value, seconds.
    pub measured_s: f64,
    /// The limit, seconds.
    pub limit_s: f64,
    /// Operations behind the figure.
    pub samples: u64,
    /// Whether `measured_s <= limit_s` (and there were samples and no excess errors).
    pub pass: bool,
}

/// One step of a `--ramp` search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RampStep {
    /// Hollow nodes simulated.
    pub nodes: u64,
    /// Whether every SLO held.
    pub pass: bool,
    /// Mutating p99 of this step, seconds.
    pub mutating_p99_s: f64,
    /// List p99 of this step, seconds.
    pub list_p99_s: f64,
    /// Watch lag p99 of this step, seconds.
    pub watch_lag_p99_s: f64,
    /// Why the step could not finish (e.g. `etcdserver: mvcc: database space
    /// exceeded`): a step that failed with an error is outside the SLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RampStep {
    /// One line: the node count, the three p99s and the verdict (with the error, if any).
    pub fn line(&self) -> String {
        let verdict = match (&self.error, self.pass) {
            (Some(e), _) => format!("SLO broken: failed with {e}"),
            (None, true) => "within SLO".to_string(),
            (None, false) => "SLO broken".to_string(),
        };
        format!(
            "{:>8} {:>12.4} s {:>10.4} s {:>14.4} s  {verdict}",
            self.nodes, self.mutating_p99_s, self.list_p99_s, self.watch_lag_p99_s
        )
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Workload name (`put`, `range`, `kube`, ...).
    pub workload: String,
    /// The workload's flags, as given.
    pub params: String,
    /// Endpoints the load went to.
    pub endpoints: Vec<String>,
    /// `--conns`.
    pub conns: usize,
    /// `--clients`.
    pub clients: usize,
    /// The seed keys and values were made from.
    pub seed: u64,
    /// Whether the hard deadline cut the run short.
    pub timed_out: bool,
    /// One summary per operation kind; the first is the workload's main figure.
    pub ops: Vec<OpSummary>,
    /// Generator and target CPU.
    pub cpu: CpuReport,
    /// Extra observations (events received, keys seeded, ...).
    pub notes: Vec<String>,
    /// The Kubernetes SLO view (`kube` only).
    pub slo: Option<Vec<SloRow>>,
    /// The ramp search (`kube --ramp` only).
    pub ramp: Option<Vec<RampStep>>,
    /// `Status.version` as the target reported it (results written before this field
    /// existed read as `None`).
    #[serde(default)]
    pub server_version: Option<String>,
    /// The etcd profile the target is held to ([`gauntlet_harness::profile::hold`]).
    #[serde(default)]
    pub held_to: Option<gauntlet_harness::profile::EtcdProfile>,
}

impl RunResult {
    /// The main figure: the first operation kind.
    pub fn main_op(&self) -> Option<&OpSummary> {
        self.ops.first()
    }

    /// Writes the result as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|e| file_err(path, e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        }
        std::fs::write(path, json).map_err(|e| file_err(path, e))
    }

    /// Reads a result written by [`RunResult::save`] (or `--format json`).
    pub fn load(path: &Path) -> Result<RunResult> {
        let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
        let r: RunResult = serde_json::from_str(&text)
            .map_err(|e| file_err(path, format!("not a gauntlet bench result: {e}")))?;
        if r.schema != SCHEMA_VERSION {
            return Err(file_err(
                path,
                format!(
                    "result schema {} (this gauntlet reads {SCHEMA_VERSION})",
                    r.schema
                ),
            ));
        }
        Ok(r)
    }

    /// The text report, laid out like etcd's benchmark tool.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for op in &self.ops {
            op_text(&mut out, op, self.ops.len() > 1);
        }
        let c = &self.cpu;
        let _ = writeln!(
            out,
            "\nGenerator:\n  CPU:\t{:.2} s ({:.1} us/op, {:.0}% of {} cores)",
            c.generator_cpu_s,
            c.generator_cpu_us_per_op,
            c.generator_share * 100.0,
            c.cores
        );
        if let Some(t) = c.target_cpu_s {
            let per_op = c
                .target_cpu_us_per_op
                .map(|p| format!(" ({p:.1} us/op)"))
                .unwrap_or_default();
            let _ = writeln!(out, "  Target CPU:\t{t:.2} s{per_op}");
        }
        let _ = writeln!(out, "  Bottleneck:\t{}", c.bottleneck);
        if self.timed_out {
            let _ = writeln!(out, "  Run cut short by --timeout.");
        }
        for n in &self.notes {
            let _ = writeln!(out, "  {n}");
        }
        if let Some(slo) = &self.slo {
            let _ = writeln!(out, "\nKubernetes SLOs:");
            let _ = writeln!(
                out,
                "  {:<26} {:>12} {:>10} {:>10}  verdict",
                "SLO", "measured", "limit", "samples"
            );
            for r in slo {
                let _ = writeln!(
                    out,
                    "  {:<26} {:>10.4} s {:>8.1} s {:>10}  {}",
                    r.name,
                    r.measured_s,
                    r.limit_s,
                    r.samples,
                    if r.pass { "PASS" } else { "FAIL" }
                );
            }
        }
        if let Some(ramp) = &self.ramp {
            let _ = writeln!(out, "\nRamp:");
            let _ = writeln!(
                out,
                "  {:>8} {:>14} {:>12} {:>16}  verdict",
                "nodes", "mutating p99", "list p99", "watch lag p99"
            );
            for s in ramp {
                let _ = writeln!(out, "  {}", s.line());
            }
            match ramp.iter().filter(|s| s.pass).map(|s| s.nodes).max() {
                Some(n) => {
                    let _ = writeln!(out, "  Largest node count within SLO: {n}");
                }
                None => {
                    let _ = writeln!(out, "  No tested node count stayed within SLO.");
                }
            }
        }
        out
    }
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> BenchError {
    BenchError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Bar glyph of the response-time histogram, and its longest bar.
const BAR: char = '∎';
const BAR_MAX: u64 = 40;

fn op_text(out: &mut String, op: &OpSummary, titled: bool) {
    if titled {
        let _ = writeln!(out, "\n[{}]", op.name);
    }
    let _ = writeln!(out, "\nSummary:");
    let _ = writeln!(out, "  Total:\t{:.4} secs.", op.total_s);
    let _ = writeln!(out, "  Slowest:\t{:.4} secs.", op.slowest_s);
    let _ = writeln!(out, "  Fastest:\t{:.4} secs.", op.fastest_s);
    let _ = writeln!(out, "  Average:\t{:.4} secs.", op.average_s);
    let _ = writeln!(out, "  Stddev:\t{:.4} secs.", op.stddev_s);
    let _ = writeln!(out, "  Requests/sec:\t{:.4}", op.requests_per_s);
    if !op.histogram.is_empty() {
        let _ = writeln!(out, "\nResponse time histogram:");
        let _ = writeln!(out, "  {:.4} [{}]\t|", op.fastest_s, 0);
        let most = op
            .histogram
            .iter()
            .map(|b| b.count)
            .max()
            .unwrap_or(1)
            .max(1);
        for b in &op.histogram {
            let bar: String =
                std::iter::repeat_n(BAR, (b.count * BAR_MAX / most) as usize).collect();
            let _ = writeln!(out, "  {:.4} [{}]\t|{}", b.upper_s, b.count, bar);
        }
        let _ = writeln!(out, "\nLatency distribution:");
        for p in &op.percentiles {
            let _ = writeln!(out, "  {}% in {:.4} secs.", p.percent, p.latency_s);
        }
    }
    if !op.error_distribution.is_empty() {
        let _ = writeln!(out, "\nError distribution:");
        for (e, n) in &op.error_distribution {
            let _ = writeln!(out, "  [{n}]\t{e}");
        }
    }
}

/// A result holding `ops`, with `target_cpu_us_per_op` as the server's CPU per operation:
/// what unit tests of the renderers and the comparison start from.
#[cfg(test)]
pub(crate) fn sample_run(
    ops: Vec<crate::stats::OpSummary>,
    target_cpu_us_per_op: Option<f64>,
) -> RunResult {
    RunResult {
        schema: SCHEMA_VERSION,
        workload: "put <&>".into(),
        params: String::new(),
        endpoints: vec!["127.0.0.1:2379".into()],
        conns: 1,
        clients: 1,
        seed: 1,
        timed_out: false,
        ops,
        cpu: crate::gen::CpuReport {
            generator_cpu_s: 0.1,
            generator_cpu_us_per_op: 12.5,
            target_cpu_s: target_cpu_us_per_op.map(|_| 1.0),
            target_cpu_us_per_op,
            cores: 2,
            generator_share: 0.1,
            bottleneck: "target".into(),
        },
        notes: Vec::new(),
        slo: None,
        ramp: None,
        server_version: None,
        held_to: None,
    }
}

#[cfg(test)]
mod tests {
    use super::RampStep;

    #[test]
    fn a_ramp_step_that_failed_says_with_what_and_is_outside_the_slo() {
        let ok = RampStep {
            nodes: 16_000,
            pass: true,
            mutating_p99_s: 0.0123,
            list_p99_s: 0.5,
            watch_lag_p99_s: 0.01,
            error: None,
        };
        assert!(ok.line().ends_with("within SLO"), "{}", ok.line());
        let full = RampStep {
            nodes: 32_000,
            pass: false,
            error: Some("etcdserver: mvcc: database space exceeded".into()),
            ..ok.clone()
        };
        assert!(
            full.line()
                .ends_with("SLO broken: failed with etcdserver: mvcc: database space exceeded"),
            "{}",
            full.line()
        );
        // Old results without the field still load.
        let json = serde_json::to_string(&ok).unwrap();
        assert!(!json.contains("error"), "{json}");
        let back: RampStep = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ok);
    }
}
