//! `submission/`: the run shaped like a Kubernetes conformance submission, so that
//! whoever publishes results for an etcd-compatible server can follow a format their
//! reviewers already know (cncf/k8s-conformance `instructions.md`).
//!
//! - `PRODUCT.yaml`: vendor, name, version, website, repository, documentation,
//!   type, description, contact (what is not known for the target is left for the
//!   submitter, marked `TODO`);
//! - `README.md`: how to reproduce the run, with the exact commands;
//! - `e2e.log`: the run's plain-text log, ending in one line:
//!   `SUCCESS! -- N Passed | M Failed | 0 Pending | K Skipped PASS` (or `FAIL!`,
//!   ending in `FAIL`), as the Kubernetes e2e log ends;
//! - `junit_01.xml`: every test case of the run.

use std::path::Path;

use serde::Serialize;

use crate::model::Report;

/// `PRODUCT.yaml`'s fields, as k8s-conformance names them.
#[derive(Debug, Serialize)]
pub struct Product {
    /// Who makes it.
    pub vendor: String,
    /// Its name.
    pub name: String,
    /// Its version (the product's, not the API's).
    pub version: String,
    /// Its website.
    pub website_url: String,
    /// Its source.
    pub repo_url: String,
    /// Its documentation.
    pub documentation_url: String,
    /// `distribution`, `hosted` or `installer` in Kubernetes; here the server kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// One line.
    pub description: String,
    /// Who to ask.
    pub contact_email_address: String,
}

const TODO: &str = "TODO: fill in before submitting";

/// What is known of the product under test.
pub fn product(r: &Report) -> Product {
    if let Some(v) = &r.target.etcd_release {
        return Product {
            vendor: "etcd-io (CNCF)".into(),
            name: "etcd".into(),
            version: v.clone(),
            website_url: "https://etcd.io".into(),
            repo_url: "https://github.com/etcd-io/etcd".into(),
            documentation_url: format!(
                "https://etcd.io/docs/v{}/",
                v.split('.').take(2).collect::<Vec<_>>().join(".")
            ),
            kind: "server".into(),
            description: "A distributed, reliable key-value store for the most critical data of a distributed system".into(),
            contact_email_address: TODO.into(),
        };
    }
    if r.target
        .target
        .as_deref()
        .is_some_and(|t| t.starts_with("reference"))
    {
        return Product {
            vendor: "Gauntlet".into(),
            name: "gauntlet reference server".into(),
            version: format!(
                "{} (reports {})",
                r.gauntlet_version, r.target.server_version
            ),
            website_url: TODO.into(),
            repo_url: TODO.into(),
            documentation_url: "ARCHITECTURE.md in the Gauntlet repository".into(),
            kind: "server".into(),
            description: "An etcd-compatible server in Rust (raft-rs, MVCC on sled, tonic)".into(),
            contact_email_address: TODO.into(),
        };
    }
    Product {
        vendor: TODO.into(),
        name: r.target.label.clone(),
        version: r.target.server_version.clone(),
        website_url: TODO.into(),
        repo_url: TODO.into(),
        documentation_url: TODO.into(),
        kind: "server".into(),
        description: TODO.into(),
        contact_email_address: TODO.into(),
    }
}

/// The last line of `e2e.log`.
pub fn summary_line(r: &Report) -> String {
    let (passed, failed, skipped) = crate::junit::tally(r);
    if failed == 0 {
        format!("SUCCESS! -- {passed} Passed | 0 Failed | 0 Pending | {skipped} Skipped PASS")
    } else {
        format!("FAIL! -- {passed} Passed | {failed} Failed | 0 Pending | {skipped} Skipped FAIL")
    }
}

/// Writes `dir/{PRODUCT.yaml,README.md,e2e.log,junit_01.xml}`; `log` is the run's
/// plain-text log (one line per event).
pub fn write(r: &Report, log: &[String], dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let yaml = serde_yaml_ng::to_string(&product(r)).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("PRODUCT.yaml"), yaml)?;
    let readme = format!(
        "# Gauntlet certification: {label}\n\n\
Recommendation: **{level}**. {summary}\n\n\
## How to reproduce\n\n\
1. Get Gauntlet {gv} and build it (Rust, Cargo):\n\n\
   ```sh\n   cargo build --release -p gauntlet-cli\n   ```\n\n\
2. Run the same certification (the server is launched by Gauntlet; real etcd\n   releases are fetched into Gauntlet's cache by the command itself):\n\n\
   ```sh\n   {command}\n   ```\n\n\
3. Compare with this run:\n\n\
   ```sh\n   {command} --baseline report.json\n   ```\n\n\
Every failure in `e2e.log` and `junit_01.xml` carries the command that reruns it alone.\n\n\
## Files\n\n\
- `PRODUCT.yaml`: the product under test\n\
- `e2e.log`: the run's log; its last line is the pass/fail summary\n\
- `junit_01.xml`: every test case\n\
- `../report.json`, `../index.html`, `../report.md`: the full report\n",
        label = r.target.label,
        level = r.recommendation.level.label(),
        summary = r.recommendation.summary,
        gv = r.gauntlet_version,
        command = r.command,
    );
    std::fs::write(dir.join("README.md"), readme)?;
    let mut text = String::new();
    for l in log {
        text.push_str(l);
        text.push('\n');
    }
    text.push_str(&format!(
        "gauntlet {} certify {}: server version {}; recommendation: {}\n",
        r.gauntlet_version,
        r.target.label,
        r.target.server_version,
        r.recommendation.level.label()
    ));
    text.push_str(&summary_line(r));
    text.push('\n');
    std::fs::write(dir.join("e2e.log"), text)?;
    std::fs::write(dir.join("junit_01.xml"), crate::junit::render(r))?;
    Ok(())
}
