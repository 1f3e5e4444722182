//! Published advisories: what etcd and Kubernetes say about running a version, kept
//! apart from what Gauntlet observed.
//!
//! Two kinds, by what they are about:
//! - **etcd release advisories** are about etcd's code at a release (a data
//!   corruption bug, the minimum versions etcd recommends for production, the end of
//!   a minor's support). They apply only when the target *is* etcd at that release
//!   (`etcd@V`); another server that reports the same version number is judged by
//!   what it does, not by etcd's bug history.
//! - **reported-version advisories** are about what clients do with the version a
//!   server reports: kube-apiserver turns features off and kubeadm refuses an external
//!   etcd by the version string alone, whatever the server is. They apply to every
//!   target.
//!
//! Every entry names its source (a dated commit, a pull request, a document). The
//! table is data: add an entry when etcd or Kubernetes publishes one.

use gauntlet_harness::profile::SemVer;

use crate::model::{Reason, Severity, Source};

/// What an advisory is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// etcd's code at a release: applies to `etcd@V` targets only.
    EtcdRelease,
    /// The version a server reports: applies to every target.
    ReportedVersion,
    /// The version a server reports, for servers other than etcd (for etcd, a release
    /// advisory says the same with more).
    ReportedVersionNotEtcd,
}

/// A version range `[from, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First affected version.
    pub from: SemVer,
    /// First version no longer affected.
    pub until: SemVer,
}

const fn range(from: (u32, u32, u32), until: (u32, u32, u32)) -> Range {
    Range {
        from: SemVer(from.0, from.1, from.2),
        until: SemVer(until.0, until.1, until.2),
    }
}

/// One published advisory.
#[derive(Debug, Clone, Copy)]
pub struct Advisory {
    /// Stable id (used in JUnit and by `--baseline`).
    pub id: &'static str,
    /// What it is about.
    pub scope: Scope,
    /// Versions it applies to (any range).
    pub affected: &'static [Range],
    /// Whether it blocks a recommendation.
    pub severity: Severity,
    /// A short title.
    pub title: &'static str,
    /// Who is affected.
    pub who: &'static str,
    /// What to do.
    pub action: &'static str,
    /// Where it says so, with the date.
    pub source: &'static str,
    /// A link to it.
    pub url: &'static str,
    /// The release to move to, per affected minor (`(3, 5) → 3.5.13`); a minor with no
    /// entry must be left (an end of support).
    pub fixed: &'static [((u32, u32), SemVer)],
}

/// Every advisory Gauntlet knows, newest concern first.
pub const ALL: &[Advisory] = &[
    Advisory {
        id: "etcd-3.5.0-3.5.2-data-inconsistency",
        scope: Scope::EtcdRelease,
        affected: &[range((3, 5, 0), (3, 5, 3))],
        severity: Severity::Blocker,
        title: "etcd 3.5.0-3.5.2 can lose committed transactions on a member killed under load",
        who: "every cluster running 3.5.0, 3.5.1 or 3.5.2: a member killed (SIGKILL, out of memory) under high load may skip committed transactions; a single member cannot even detect it",
        action: "upgrade to 3.5.4 or newer; until then enable --experimental-initial-corrupt-check, avoid memory pressure and SIGKILL, and do not upgrade 3.4 clusters to these releases",
        source: "etcd CHANGELOG/README.md production recommendation (2022-03-29, commit 88a39d780) and the v3.5 data inconsistency postmortem; fixed in 3.5.3 (etcd#13908)",
        url: "https://github.com/etcd-io/etcd/blob/main/Documentation/postmortems/v3.5-data-inconsistency.md",
        fixed: &[((3, 5), SemVer(3, 5, 4))],
    },
    Advisory {
        id: "etcd-minimum-for-production",
        scope: Scope::EtcdRelease,
        affected: &[range((0, 0, 0), (3, 4, 22)), range((3, 5, 0), (3, 5, 6))],
        severity: Severity::Blocker,
        title: "below etcd's minimum recommended versions for production (3.4.22+, 3.5.6+)",
        who: "every cluster on an older patch release: 3.4.21 and 3.5.5 carry data inconsistency bugs (auth after snapshot recovery, etcd#14649; revision after a crash in defrag, etcd#14733); 3.3 and older are end of life",
        action: "upgrade to the latest patch of your minor, at least 3.4.22 or 3.5.6",
        source: "etcd CHANGELOG/README.md, minimum recommended versions (2023-04-24, commit 146f44d35); kubernetes/website PR 40816",
        url: "https://github.com/etcd-io/etcd/blob/main/CHANGELOG/README.md",
        fixed: &[((3, 4), SemVer(3, 4, 22)), ((3, 5), SemVer(3, 5, 6))],
    },
    Advisory {
        id: "kubernetes-1.31-minimum-etcd",
        scope: Scope::EtcdRelease,
        affected: &[range((0, 0, 0), (3, 4, 29)), range((3, 5, 0), (3, 5, 11))],
        severity: Severity::Blocker,
        title: "below the etcd versions Kubernetes 1.31 and newer require (3.4.29+, 3.5.11+)",
        who: "clusters serving Kubernetes 1.31 or newer: Kubernetes probes etcd's /livez and /readyz, added in 3.4.29 and 3.5.11, and kubeadm 1.31 refuses an external etcd older than 3.5.11",
        action: "upgrade to 3.5.11 or newer (or 3.4.29 on 3.4) before upgrading Kubernetes to 1.31",
        source: "kubernetes/website, Operating etcd clusters for Kubernetes (PRs 54019, 54030-54033, 2026-01); kubeadm 1.31 (kubernetes#124465)",
        url: "https://kubernetes.io/docs/tasks/administer-cluster/configure-upgrade-etcd/",
        fixed: &[((3, 4), SemVer(3, 4, 29)), ((3, 5), SemVer(3, 5, 11))],
    },
    Advisory {
        id: "etcd-3.4-end-of-support",
        scope: Scope::EtcdRelease,
        affected: &[range((0, 0, 0), (3, 5, 0))],
        severity: Severity::Blocker,
        title: "etcd 3.4 and older are out of support",
        who: "every cluster on 3.4 or older: etcd maintains the current and the previous minor only; 3.4 stopped receiving fixes with 3.4.45 (2026-06-01) after 3.6 was released",
        action: "upgrade to a supported minor as soon as possible, one minor at a time (3.4 to 3.5, then 3.6 if wanted)",
        source: "etcd versioning policy (website v3.6 op-guide/versioning.md) and CHANGELOG-3.4.md",
        url: "https://etcd.io/docs/v3.6/op-guide/versioning/",
        fixed: &[],
    },
    Advisory {
        id: "kube-apiserver-request-watch-progress",
        scope: Scope::ReportedVersion,
        affected: &[range((0, 0, 0), (3, 4, 31)), range((3, 5, 0), (3, 5, 13))],
        severity: Severity::Caveat,
        title: "kube-apiserver will not use RequestWatchProgress with this version",
        who: "clusters serving Kubernetes 1.31 or newer: kube-apiserver enables progress requests (and with them consistent LISTs from its watch cache) only when every endpoint reports 3.4.31+ or 3.5.13+; below that every consistent LIST is served by the server itself",
        action: "expect more LIST load on the server; for etcd, upgrade to 3.5.13 or newer (3.4.31 on 3.4)",
        source: "Kubernetes FeatureSupportChecker (kubernetes PRs 124483 and 124612, Kubernetes 1.31)",
        url: "https://github.com/kubernetes/kubernetes/pull/124612",
        fixed: &[((3, 4), SemVer(3, 4, 31)), ((3, 5), SemVer(3, 5, 13))],
    },
    Advisory {
        id: "kubeadm-external-etcd-version",
        scope: Scope::ReportedVersionNotEtcd,
        affected: &[range((0, 0, 0), (3, 5, 11))],
        severity: Severity::Caveat,
        title: "kubeadm 1.31+ preflight refuses this reported version",
        who: "clusters set up with kubeadm 1.31 or newer against this server as external etcd: the ExternalEtcdVersion preflight check reads /version and refuses anything older than 3.5.11",
        action: "run kubeadm with --ignore-preflight-errors=ExternalEtcdVersion, or have the server report 3.5.11 or newer once it behaves as that release",
        source: "kubeadm MinExternalEtcdVersion 3.5.11 (kubernetes#124465); k3s-io/kine#30",
        url: "https://github.com/kubernetes/kubernetes/pull/124465",
        fixed: &[],
    },
];

impl Advisory {
    /// Whether it applies to a server reporting `reported`, which is etcd at
    /// `release` when `release` is given.
    pub fn applies(&self, release: Option<SemVer>, reported: Option<SemVer>) -> bool {
        let v = match self.scope {
            Scope::EtcdRelease => release,
            Scope::ReportedVersion => reported,
            Scope::ReportedVersionNotEtcd if release.is_none() => reported,
            Scope::ReportedVersionNotEtcd => None,
        };
        v.is_some_and(|v| self.affected.iter().any(|r| r.from <= v && v < r.until))
    }

    /// The release to upgrade to from `v`, when the advisory names one in its minor.
    pub fn fix_for(&self, v: SemVer) -> Option<SemVer> {
        self.fixed
            .iter()
            .find(|((ma, mi), _)| (*ma, *mi) == (v.0, v.1))
            .map(|(_, f)| *f)
    }

    /// As a reason of the recommendation.
    pub fn reason(&self, v: Option<SemVer>) -> Reason {
        Reason {
            source: Source::Advisory,
            severity: self.severity,
            area: None,
            title: self.title.to_string(),
            affected: self.who.to_string(),
            action: self.action.to_string(),
            upgrade_to: v.and_then(|v| self.fix_for(v)).map(|f| f.to_string()),
            evidence: format!("{} [{}]", self.source, self.id),
            url: Some(self.url.to_string()),
            rerun: None,
        }
    }
}

/// The advisories that apply (see [`Advisory::applies`]).
pub fn applicable(release: Option<SemVer>, reported: Option<SemVer>) -> Vec<&'static Advisory> {
    ALL.iter()
        .filter(|a| a.applies(release, reported))
        .collect()
}

/// Whether an applicable advisory says to leave `release`'s minor (an end of support).
pub fn leaves_minor(release: SemVer) -> bool {
    applicable(Some(release), Some(release))
        .iter()
        .any(|a| a.scope == Scope::EtcdRelease && a.fix_for(release).is_none())
}

/// The etcd release to move to from `release` so that no applicable advisory with a
/// fix still applies: the highest fix within its minor, or, when the minor is out of
/// support (an applicable advisory with no fix in that minor), the highest fix of the
/// next minor.
pub fn upgrade_target(release: SemVer) -> Option<SemVer> {
    let leave_minor = leaves_minor(release);
    let minor = if leave_minor {
        (release.0, release.1 + 1)
    } else {
        (release.0, release.1)
    };
    ALL.iter()
        .flat_map(|a| a.fixed.iter())
        .filter(|(m, f)| *m == minor && *f > release)
        .map(|(_, f)| *f)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(release: Option<&str>, reported: &str) -> Vec<&'static str> {
        applicable(release.and_then(SemVer::parse), SemVer::parse(reported))
            .iter()
            .map(|a| a.id)
            .collect()
    }

    #[test]
    fn etcd_3_5_1_is_inside_the_corruption_window_and_below_every_floor() {
        let got = ids(Some("3.5.1"), "3.5.1");
        for want in [
            "etcd-3.5.0-3.5.2-data-inconsistency",
            "etcd-minimum-for-production",
            "kubernetes-1.31-minimum-etcd",
            "kube-apiserver-request-watch-progress",
        ] {
            assert!(got.contains(&want), "{want} missing from {got:?}");
        }
        assert!(!got.contains(&"etcd-3.4-end-of-support"));
        assert!(
            !got.contains(&"kubeadm-external-etcd-version"),
            "etcd is told by its release advisory"
        );
        // Within 3.5, the highest floor wins.
        assert_eq!(upgrade_target(SemVer(3, 5, 1)), Some(SemVer(3, 5, 13)));
    }

    #[test]
    fn etcd_3_4_23_meets_etcds_floor_but_not_kubernetes_and_is_out_of_support() {
        let got = ids(Some("3.4.23"), "3.4.23");
        assert!(!got.contains(&"etcd-minimum-for-production"), "{got:?}");
        assert!(got.contains(&"kubernetes-1.31-minimum-etcd"));
        assert!(got.contains(&"etcd-3.4-end-of-support"));
        // Out of support: the target is the next minor's highest floor.
        assert_eq!(upgrade_target(SemVer(3, 4, 23)), Some(SemVer(3, 5, 13)));
    }

    #[test]
    fn other_servers_get_only_the_reported_version_advisories() {
        let got = ids(None, "3.5.0");
        assert_eq!(
            got,
            [
                "kube-apiserver-request-watch-progress",
                "kubeadm-external-etcd-version"
            ]
        );
        assert!(ids(None, "3.5.13").is_empty());
        assert!(ids(None, "not a version").is_empty());
    }

    #[test]
    fn a_current_release_has_no_advisory() {
        assert!(ids(Some("3.5.17"), "3.5.17").is_empty());
        assert_eq!(upgrade_target(SemVer(3, 5, 17)), None);
    }
}
