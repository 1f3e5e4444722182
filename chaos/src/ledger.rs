//! The chaos suite's known-issue ledger (`chaos/known-issues.toml`): violations that
//! real etcd releases are known to show, with the etcd issue and the fixing version.

use gauntlet_harness::profile::SemVer;
use serde::{Deserialize, Serialize};

use crate::validate::Finding;

/// One known etcd issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownIssue {
    /// The finding's check (`watch`, `linearizability`, ...).
    pub check: String,
    /// For watch findings, the broken guarantee (`Bookmarkable`, ...).
    #[serde(default)]
    pub guarantee: Option<String>,
    /// Only rounds of faults matching this glob (e.g. `network.partition-until-snapshot`):
    /// a known issue is excused only where it is known to arise. `None`: any fault.
    #[serde(default)]
    pub fault: Option<String>,
    /// First affected version.
    pub from: String,
    /// First fixed version.
    pub until: String,
    /// The etcd issue.
    pub url: String,
    /// One line.
    pub description: String,
    /// The release with the fix.
    pub fixed_in: String,
}

#[derive(Debug, Deserialize)]
struct File {
    issue: Vec<KnownIssue>,
}

/// The ledger.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    issues: Vec<KnownIssue>,
}

impl Ledger {
    /// The ledger compiled into gauntlet.
    pub fn builtin() -> Ledger {
        Ledger::parse(include_str!("../known-issues.toml")).unwrap_or_default()
    }

    /// Parses a ledger; `Err` names the problem.
    pub fn parse(text: &str) -> Result<Ledger, String> {
        let f: File = toml::from_str(text).map_err(|e| format!("known-issues.toml: {e}"))?;
        for i in &f.issue {
            for v in [&i.from, &i.until, &i.fixed_in] {
                if SemVer::parse(v).is_none() {
                    return Err(format!(
                        "known-issues.toml: `{v}` is not a version ({})",
                        i.url
                    ));
                }
            }
        }
        Ok(Ledger { issues: f.issue })
    }

    /// The entry covering `finding`, seen in a round of `fault` (when known), on etcd
    /// `version`, if any.
    pub fn lookup(
        &self,
        finding: &Finding,
        fault: Option<&str>,
        version: SemVer,
    ) -> Option<&KnownIssue> {
        self.issues.iter().find(|i| {
            i.check == finding.check
                && i.guarantee.as_deref() == finding.guarantee.as_deref()
                && i.fault
                    .as_deref()
                    .is_none_or(|glob| fault.is_some_and(|f| crate::scenario::glob_match(glob, f)))
                && SemVer::parse(&i.from).is_some_and(|f| version >= f)
                && SemVer::parse(&i.until).is_some_and(|u| version < u)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bookmark() -> Finding {
        Finding {
            check: "watch".into(),
            guarantee: Some("Bookmarkable".into()),
            detail: "event at revision 105 after a progress notification at 124".into(),
        }
    }

    #[test]
    fn the_builtin_ledger_covers_etcd_15220_on_the_affected_releases_only() {
        let l = Ledger::builtin();
        assert!(l.lookup(&bookmark(), None, SemVer(3, 5, 1)).is_some());
        assert!(l.lookup(&bookmark(), None, SemVer(3, 4, 23)).is_some());
        assert!(l.lookup(&bookmark(), None, SemVer(3, 5, 8)).is_none());
        assert!(l.lookup(&bookmark(), None, SemVer(3, 4, 25)).is_none());
        let other = Finding {
            guarantee: Some("Reliable".into()),
            ..bookmark()
        };
        assert!(l.lookup(&other, None, SemVer(3, 5, 1)).is_none());
    }

    #[test]
    fn etcd_15271_is_excused_only_after_a_snapshot_catch_up() {
        let l = Ledger::builtin();
        let dup = Finding {
            check: "watch".into(),
            guarantee: Some("Unique".into()),
            detail: "Put of \"/chaos/key9\" delivered twice".into(),
        };
        let snap = Some("network.partition-until-snapshot");
        assert!(l.lookup(&dup, snap, SemVer(3, 5, 1)).is_some());
        assert!(l.lookup(&dup, snap, SemVer(3, 4, 23)).is_some());
        assert!(l.lookup(&dup, snap, SemVer(3, 5, 8)).is_none());
        assert!(l
            .lookup(&dup, Some("process.kill-leader"), SemVer(3, 5, 1))
            .is_none());
        assert!(l.lookup(&dup, None, SemVer(3, 5, 1)).is_none());
    }

    #[test]
    fn bad_versions_are_refused() {
        let e = Ledger::parse(
            "[[issue]]\ncheck='x'\nfrom='a'\nuntil='3.5.0'\nurl='u'\ndescription='d'\nfixed_in='3.5.0'\n",
        )
        .unwrap_err();
        assert!(e.contains("`a` is not a version"), "{e}");
    }
}
