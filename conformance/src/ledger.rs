//! The known-issue ledger: failures of real etcd that are etcd's bugs, not the case's.
//!
//! `conformance/known-issues.toml` holds one `[[issue]]` per (case, etcd version
//! range). An entry is added only after showing from etcd's documented guarantees
//! that etcd is wrong; a correct case is never weakened instead.
//!
//! ```toml
//! [[issue]]
//! case = "watch.progress.notify_interval"
//! from = "3.4.0"        # first affected version (inclusive)
//! until = "3.4.99"      # first unaffected version (exclusive); omit if not fixed
//! url = "https://github.com/etcd-io/etcd/issues/NNNN"
//! description = "one line"
//! fixed_in = "3.5.0"    # or "unfixed"
//! ```

use serde::{Deserialize, Serialize};

use crate::case::Version;

/// The ledger shipped with the suite.
pub const BUILTIN: &str = include_str!("../known-issues.toml");

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownIssue {
    /// Case id.
    pub case: String,
    /// First affected version (inclusive).
    pub from: String,
    /// First unaffected version (exclusive), when known.
    #[serde(default)]
    pub until: Option<String>,
    /// The etcd issue.
    pub url: String,
    /// One line.
    pub description: String,
    /// Version with the fix, or `unfixed`.
    pub fixed_in: String,
}

/// A parsed ledger.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ledger {
    /// Entries.
    #[serde(default, rename = "issue")]
    pub issues: Vec<KnownIssue>,
}

/// A ledger that does not parse or names bad versions.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Not TOML of the documented shape.
    #[error("known-issue ledger: {0}")]
    Parse(#[from] toml::de::Error),
    /// An entry's version is not major.minor.patch.
    #[error("known-issue ledger: case {case}: `{version}` is not a version")]
    BadVersion {
        /// The entry.
        case: String,
        /// The text.
        version: String,
    },
}

impl Ledger {
    /// Parses ledger text, checking every version.
    pub fn parse(text: &str) -> Result<Ledger, LedgerError> {
        let ledger: Ledger = toml::from_str(text)?;
        for i in &ledger.issues {
            for v in std::iter::once(&i.from).chain(i.until.iter()) {
                if Version::parse(v).is_none() {
                    return Err(LedgerError::BadVersion {
                        case: i.case.clone(),
                        version: v.clone(),
                    });
                }
            }
        }
        Ok(ledger)
    }

    /// The shipped ledger.
    pub fn builtin() -> Ledger {
        Ledger::parse(BUILTIN).unwrap_or_else(|e| panic!("the shipped ledger is broken: {e}"))
    }

    /// The entry covering `case` at `version`, if any.
    pub fn lookup(&self, case: &str, version: Version) -> Option<&KnownIssue> {
        self.issues.iter().find(|i| {
            i.case == case
                && Version::parse(&i.from).is_some_and(|f| version >= f)
                && i.until
                    .as_deref()
                    .and_then(Version::parse)
                    .is_none_or(|u| version < u)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_respects_the_version_range() {
        let l = Ledger::parse(
            r#"
[[issue]]
case = "kv.x"
from = "3.4.0"
until = "3.5.0"
url = "https://example.invalid/1"
description = "d"
fixed_in = "3.5.0"
"#,
        )
        .unwrap();
        assert!(l.lookup("kv.x", Version(3, 4, 23)).is_some());
        assert!(l.lookup("kv.x", Version(3, 5, 1)).is_none());
        assert!(l.lookup("kv.y", Version(3, 4, 23)).is_none());
        assert!(Ledger::parse("[[issue]]\ncase = \"a\"\nfrom = \"x\"\nurl = \"u\"\ndescription = \"d\"\nfixed_in = \"f\"\n").is_err());
    }

    #[test]
    fn shipped_ledger_parses() {
        let l = Ledger::builtin();
        let ids: Vec<String> = crate::catalogue().into_iter().map(|c| c.id).collect();
        for i in &l.issues {
            assert!(
                ids.contains(&i.case),
                "ledger names unknown case {}",
                i.case
            );
        }
    }
}
