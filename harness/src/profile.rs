//! Which etcd behaviour a server is held to.
//!
//! Every suite asks a server for its version (`Status.version`) and must decide which
//! etcd release's documented behaviour to judge it by. Servers that are not etcd
//! report their *own* product version (Xline says `0.6.1`, etcds says
//! `rust etcds/0.23.0 registry/2`), and reading that as an etcd version turns "did not
//! test" into "passed": every case looks like it applies to some other version.
//!
//! The rule, decided here and nowhere else ([`hold`]):
//!
//! 1. A profile given by the user (`--profile`) always wins, whatever the server says.
//! 2. Otherwise a reported version selects a profile only when it is an etcd release
//!    line Gauntlet has a profile for ([`EtcdProfile::ALL`]: 3.4.x and 3.5.x).
//! 3. Anything else (a product's own version, a later or earlier etcd line, free text,
//!    an empty string) is held to the newest profile, and [`Holding::notice`] gives
//!    the one line that says so.
//!
//! ```
//! use gauntlet_harness::profile::{hold, EtcdProfile};
//! let h = hold("0.6.1", None);
//! assert_eq!(h.profile, EtcdProfile::NEWEST);
//! assert_eq!(
//!     h.notice().unwrap(),
//!     "server reports version `0.6.1`, not an etcd version: holding it to etcd 3.5; use --profile to choose"
//! );
//! assert_eq!(hold("3.4.23", None).profile, EtcdProfile::Etcd34);
//! assert_eq!(hold("3.4.23", Some(EtcdProfile::Etcd35)).profile, EtcdProfile::Etcd35);
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// A version `major.minor.patch`, as etcd reports it (`3.5.1`, `v3.4.23`,
/// `3.6.0-alpha.0`; a missing patch is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SemVer(pub u32, pub u32, pub u32);

impl SemVer {
    /// Parses `[v]MAJOR.MINOR[.PATCH][-pre][+build]`; `None` for anything else
    /// (free text, extra words, empty).
    pub fn parse(s: &str) -> Option<SemVer> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let core = s.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let num = |p: Option<&str>| -> Option<u32> {
            let p = p?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let major = num(parts.next())?;
        let minor = num(parts.next())?;
        let patch = match parts.next() {
            Some(p) => num(Some(p))?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(SemVer(major, minor, patch))
    }
}

impl fmt::Display for SemVer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Serialize for SemVer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An etcd release line Gauntlet has a profile for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EtcdProfile {
    /// etcd 3.4's documented behaviour.
    #[serde(rename = "etcd-3.4")]
    Etcd34,
    /// etcd 3.5's documented behaviour.
    #[serde(rename = "etcd-3.5")]
    Etcd35,
}

impl EtcdProfile {
    /// Every profile, oldest first.
    pub const ALL: [EtcdProfile; 2] = [EtcdProfile::Etcd34, EtcdProfile::Etcd35];
    /// The profile a server that is not a known etcd version is held to.
    pub const NEWEST: EtcdProfile = EtcdProfile::Etcd35;

    /// `major.minor` of the line.
    pub fn line(self) -> (u32, u32) {
        match self {
            EtcdProfile::Etcd34 => (3, 4),
            EtcdProfile::Etcd35 => (3, 5),
        }
    }

    /// The release a forced profile judges by: the one Gauntlet validates the line on
    /// (3.4.23 and 3.5.1).
    pub fn reference_release(self) -> SemVer {
        match self {
            EtcdProfile::Etcd34 => SemVer(3, 4, 23),
            EtcdProfile::Etcd35 => SemVer(3, 5, 1),
        }
    }

    /// The profile for a release of a known line.
    pub fn of(v: SemVer) -> Option<EtcdProfile> {
        EtcdProfile::ALL
            .into_iter()
            .find(|p| p.line() == (v.0, v.1))
    }

    /// `etcd-3.5`.
    pub fn name(self) -> &'static str {
        match self {
            EtcdProfile::Etcd34 => "etcd-3.4",
            EtcdProfile::Etcd35 => "etcd-3.5",
        }
    }
}

impl fmt::Display for EtcdProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for EtcdProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<EtcdProfile, String> {
        EtcdProfile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = EtcdProfile::ALL.iter().map(|p| p.name()).collect();
                format!("unknown etcd profile `{s}`: use {}", names.join(" or "))
            })
    }
}

/// Why a server is held to its profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldReason {
    /// The user chose the profile.
    Forced,
    /// The server reports a release of a line Gauntlet has a profile for.
    Reported,
    /// The server reports an etcd-shaped version of a line Gauntlet has no profile for.
    UnknownEtcdLine,
    /// The server reports something that is not an etcd version.
    NotEtcd,
}

/// The decision: which profile, at which release, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holding {
    /// `Status.version` exactly as the server reported it.
    pub reported: String,
    /// The profile the run holds the server to.
    pub profile: EtcdProfile,
    /// The release cases are judged at: the reported one when it selected the
    /// profile, else the profile's reference release.
    pub judged_at: SemVer,
    /// The reported version when it is a release of a line Gauntlet knows (the
    /// known-issue ledger applies only then).
    pub etcd_release: Option<SemVer>,
    /// Why.
    pub reason: HoldReason,
}

impl Holding {
    /// The one line a run prints when the reported version did not select the
    /// profile by itself; `None` when it did, or the user chose.
    pub fn notice(&self) -> Option<String> {
        let newest = self.profile.line();
        match self.reason {
            HoldReason::Forced | HoldReason::Reported => None,
            HoldReason::NotEtcd => Some(format!(
                "server reports version `{}`, not an etcd version: holding it to etcd {}.{}; use --profile to choose",
                self.reported, newest.0, newest.1
            )),
            HoldReason::UnknownEtcdLine => Some(format!(
                "server reports version `{}`, an etcd line gauntlet has no profile for: holding it to etcd {}.{}; use --profile to choose",
                self.reported, newest.0, newest.1
            )),
        }
    }
}

/// Decides which profile a server reporting `reported` is held to; `forced` (the
/// user's `--profile`) always wins. See the module docs.
pub fn hold(reported: &str, forced: Option<EtcdProfile>) -> Holding {
    let parsed = SemVer::parse(reported);
    let known = parsed.and_then(|v| EtcdProfile::of(v).map(|p| (v, p)));
    let etcd_release = known.map(|(v, _)| v);
    match (forced, known) {
        (Some(p), Some((v, kp))) if p == kp => Holding {
            reported: reported.to_string(),
            profile: p,
            judged_at: v,
            etcd_release,
            reason: HoldReason::Forced,
        },
        (Some(p), _) => Holding {
            reported: reported.to_string(),
            profile: p,
            judged_at: p.reference_release(),
            etcd_release,
            reason: HoldReason::Forced,
        },
        (None, Some((v, p))) => Holding {
            reported: reported.to_string(),
            profile: p,
            judged_at: v,
            etcd_release,
            reason: HoldReason::Reported,
        },
        (None, None) => Holding {
            reported: reported.to_string(),
            profile: EtcdProfile::NEWEST,
            judged_at: EtcdProfile::NEWEST.reference_release(),
            etcd_release: None,
            reason: match parsed {
                Some(SemVer(3, _, _)) => HoldReason::UnknownEtcdLine,
                _ => HoldReason::NotEtcd,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_strictly() {
        assert_eq!(SemVer::parse("3.5.1"), Some(SemVer(3, 5, 1)));
        assert_eq!(SemVer::parse("v3.4.23"), Some(SemVer(3, 4, 23)));
        assert_eq!(SemVer::parse("3.6.0-alpha.0"), Some(SemVer(3, 6, 0)));
        assert_eq!(SemVer::parse("3.5"), Some(SemVer(3, 5, 0)));
        for bad in [
            "",
            "x",
            "3",
            "3.x.1",
            "3.5.1.2",
            "rust etcds/0.23.0 registry/2",
            " 3 .5",
        ] {
            assert_eq!(SemVer::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn known_etcd_lines_select_their_profile() {
        let h = hold("3.4.23", None);
        assert_eq!(
            (h.profile, h.judged_at, h.reason),
            (EtcdProfile::Etcd34, SemVer(3, 4, 23), HoldReason::Reported)
        );
        assert_eq!(h.notice(), None);
        let h = hold("3.5.0", None);
        assert_eq!(
            (h.profile, h.judged_at),
            (EtcdProfile::Etcd35, SemVer(3, 5, 0))
        );
        assert_eq!(h.etcd_release, Some(SemVer(3, 5, 0)));
    }

    #[test]
    fn anything_else_is_held_to_the_newest_profile_with_a_notice() {
        for (reported, reason) in [
            ("0.6.1", HoldReason::NotEtcd),
            ("", HoldReason::NotEtcd),
            ("rust etcds/0.23.0 registry/2", HoldReason::NotEtcd),
            ("3.6.0", HoldReason::UnknownEtcdLine),
            ("3.3.27", HoldReason::UnknownEtcdLine),
        ] {
            let h = hold(reported, None);
            assert_eq!(h.profile, EtcdProfile::NEWEST, "{reported:?}");
            assert_eq!(h.judged_at, SemVer(3, 5, 1), "{reported:?}");
            assert_eq!(h.reason, reason, "{reported:?}");
            assert_eq!(h.etcd_release, None, "{reported:?}");
            let notice = h.notice().expect("a notice");
            assert!(
                notice.starts_with(&format!("server reports version `{reported}`"))
                    && notice.contains("holding it to etcd 3.5; use --profile to choose"),
                "{notice}"
            );
        }
    }

    #[test]
    fn a_forced_profile_always_wins() {
        let h = hold("rust etcds/0.23.0 registry/2", Some(EtcdProfile::Etcd34));
        assert_eq!(
            (h.profile, h.judged_at, h.reason),
            (EtcdProfile::Etcd34, SemVer(3, 4, 23), HoldReason::Forced)
        );
        assert_eq!(h.notice(), None);
        // Forcing the server's own line keeps its exact release.
        let h = hold("3.5.0", Some(EtcdProfile::Etcd35));
        assert_eq!(h.judged_at, SemVer(3, 5, 0));
        // Forcing another line judges at that line's reference release, and the
        // ledger still sees the real release.
        let h = hold("3.5.0", Some(EtcdProfile::Etcd34));
        assert_eq!(h.judged_at, SemVer(3, 4, 23));
        assert_eq!(h.etcd_release, Some(SemVer(3, 5, 0)));
    }

    #[test]
    fn profile_names_round_trip() {
        for p in EtcdProfile::ALL {
            assert_eq!(p.name().parse::<EtcdProfile>(), Ok(p));
        }
        assert!("etcd-3.6"
            .parse::<EtcdProfile>()
            .unwrap_err()
            .contains("use etcd-3.4 or etcd-3.5"));
    }
}
