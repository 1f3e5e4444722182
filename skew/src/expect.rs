//! What each target is documented to do when versions mix: the expectations a skew
//! scenario holds a pair of targets to.
//!
//! Expected outcomes come from documentation, never from what a server happened to
//! do: a documented refusal that happens is a pass, an undocumented refusal (or a
//! documented one that does not happen) is a finding. Every expectation carries the
//! document it comes from ([`Doc`]). Real etcd is held to etcd's documentation and
//! code at the release in question; the reference server to its own version policy
//! (ARCHITECTURE.md, "Version policy"); any other server to etcd's rules, since it
//! claims to be etcd.

use std::time::Duration;

use gauntlet_harness::profile::SemVer;
use gauntlet_harness::Target;
use serde::Serialize;

/// Where an expectation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Doc {
    /// One line: what the source says.
    pub says: &'static str,
    /// The source.
    pub url: &'static str,
}

/// etcd's 3.4 → 3.5 upgrade guide: rolling, one member at a time; the cluster is
/// upgraded only once every member is; rollback possible until then, not after.
pub const UPGRADE_3_5: Doc = Doc {
    says: "upgrade one member at a time; the cluster runs at the lowest member's version until every member is upgraded; while any member is still old you may return all to the old binary, after that downgrade is not possible",
    url: "https://etcd.io/docs/v3.5/upgrades/upgrade_3_5/",
};
/// The leader decides the cluster version: the minimum of every member's server
/// version, checked every 4 s (monitorVersionInterval) and on each first commit of a term.
pub const MONITOR_VERSIONS: Doc = Doc {
    says: "the leader sets the cluster version to the lowest member's major.minor, checking every monitorVersionInterval (4 s); no decision while a member is unreachable",
    url: "https://github.com/etcd-io/etcd/blob/v3.5.1/server/etcdserver/cluster_util.go",
};
/// A member whose binary is older than the replicated cluster version stops at start.
pub const DETECT_DOWNGRADE: Doc = Doc {
    says: "a member whose version is lower than the determined cluster version refuses to start (mustDetectDowngrade: \"cluster cannot be downgraded\" in 3.4, \"invalid downgrade; server version is lower than determined cluster version\" in 3.5)",
    url: "https://github.com/etcd-io/etcd/blob/v3.4.23/etcdserver/api/membership/cluster.go",
};
/// A new member refuses to join a cluster whose version is above its own.
pub const JOIN_CHECK: Doc = Doc {
    says: "a new member checks every remote /version before joining and stops with \"incompatible with current running cluster\" when the cluster version is above its own",
    url: "https://github.com/etcd-io/etcd/blob/v3.4.23/etcdserver/cluster_util.go",
};
/// etcd 3.5's Downgrade API (Maintenance.Downgrade): VALIDATE, ENABLE, CANCEL and errors.
pub const DOWNGRADE_API: Doc = Doc {
    says: "Downgrade VALIDATE/ENABLE take exactly one minor below the cluster version; a second ENABLE is refused; CANCEL without a downgrade is refused; 3.5 leaves the cluster version alone until a lower member appears",
    url: "https://github.com/etcd-io/etcd/blob/v3.5.1/server/etcdserver/v3_server.go",
};
/// 3.5 → 3.4 downgrade: only to 3.4.32 or later, with `--next-cluster-version-compatible`.
pub const DOWNGRADE_3_5: Doc = Doc {
    says: "the 3.4 version to downgrade to must be >= 3.4.32 (with --next-cluster-version-compatible); older 3.4 binaries refuse 3.5 data",
    url: "https://etcd.io/docs/v3.6/downgrades/downgrade_3_5/",
};
/// etcd 3.5's downgrade detection also stops any member restarted while a downgrade
/// is enabled unless it already runs the target version: a bug fixed in 3.6.
pub const DOWNGRADE_RESTART_BUG: Doc = Doc {
    says: "with a downgrade enabled, 3.5 refuses to restart any member not already at the target version (\"invalid downgrade; server version is not allowed to join when downgrade is enabled\"), reading its own persisted downgrade state, so the member stays refused after a CANCEL it cannot apply; fixed in v3.6.0 by \"server: Depend only on cluster version to detect downgrade\"",
    url: "https://github.com/etcd-io/etcd/commit/758fc0f8a",
};
/// etcd 3.5's apply of DowngradeInfoSet returns no result, so the request that
/// proposed it is never answered: ENABLE and CANCEL take effect but answer "request
/// timed out". Every 3.5 release has it; 3.6.0 answers them (commit d22c00cce).
pub const DOWNGRADE_ANSWER_BUG: Doc = Doc {
    says: "etcd 3.5 applies Downgrade ENABLE and CANCEL (DowngradeInfoSet) without a result, so the caller gets \"etcdserver: request timed out\" although it took effect; 3.6.0 returns a result (\"Extract membership applier\", d22c00cce)",
    url: "https://github.com/etcd-io/etcd/blob/v3.5.1/server/etcdserver/apply.go#L154-L157",
};
/// The reference server's own version policy.
pub const REFERENCE_POLICY: Doc = Doc {
    says: "builds at most one minor apart run together; the cluster version is the lowest member's; an old build refuses data whose cluster version is above its own; restarts while a downgrade is enabled are allowed",
    url: "ARCHITECTURE.md#version-policy (reference server)",
};

/// How long the cluster version may take to move once the last member is upgraded:
/// three of etcd's 4 s decision intervals, plus the time a new leader takes to settle.
pub const CLUSTER_VERSION_WITHIN: Duration = Duration::from_secs(20);

/// Whose rules a target follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Real etcd (`etcd@VERSION`).
    Etcd,
    /// The reference server (`reference`, `reference@REV`).
    Reference,
    /// Any other server: held to etcd's rules.
    Other,
}

impl Family {
    /// The family of `t`.
    pub fn of(t: &Target) -> Family {
        match t {
            Target::Etcd { .. } => Family::Etcd,
            Target::Reference | Target::ReferenceRev { .. } => Family::Reference,
            Target::Exec { .. } => Family::Other,
        }
    }
}

/// What happens when a member is started in a situation that may be refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "expect")]
pub enum Start {
    /// It must start and serve.
    Starts,
    /// It must exit at start, printing a line that contains `text`.
    Refused {
        /// A part of the refusal every version of the target prints.
        text: &'static str,
    },
    /// It exits at start, `text` in its log, because of a known bug of this release:
    /// a known issue, not a pass.
    KnownBug {
        /// The refusal.
        text: &'static str,
        /// The version that fixed it.
        fixed_in: &'static str,
    },
}

/// The expectations for one (from, to) pair.
#[derive(Debug, Clone, Serialize)]
pub struct Expect {
    /// Whose rules apply (the `to` target's; a pair mixes families only by accident).
    pub family: Family,
    /// The `from` side's server version.
    pub from: SemVer,
    /// The `to` side's server version.
    pub to: SemVer,
}

fn minor(v: SemVer) -> String {
    format!("{}.{}", v.0, v.1)
}

impl Expect {
    /// The expectations for upgrading `from` (at version `from_v`) to `to` (at `to_v`);
    /// an error for a pair no documented upgrade covers.
    pub fn new(from: &Target, from_v: SemVer, to: &Target, to_v: SemVer) -> Result<Expect, String> {
        check_pair(from, to)?;
        let family = Family::of(to);
        if from_v.0 != to_v.0 || to_v.1 < from_v.1 || to_v.1 > from_v.1 + 1 || to_v < from_v {
            return Err(format!(
                "{from} ({}) -> {to} ({}) is not an upgrade etcd supports: the new version must be the same minor or the next one (downgrades are scenarios of an upgrade pair)",
                fmt(from_v),
                fmt(to_v)
            ));
        }
        Ok(Expect {
            family,
            from: from_v,
            to: to_v,
        })
    }

    /// Whether the pair changes the minor version (else it is a patch upgrade).
    pub fn minor_step(&self) -> bool {
        self.to.1 > self.from.1
    }

    /// The cluster version (`major.minor.0`) while any old member remains.
    pub fn mixed_cluster_version(&self) -> String {
        format!("{}.0", minor(self.from))
    }

    /// The cluster version once every member runs the new version.
    pub fn final_cluster_version(&self) -> String {
        format!("{}.0", minor(self.to))
    }

    /// The minor a downgrade of the upgraded cluster targets (one below the new one).
    pub fn downgrade_target(&self) -> String {
        format!("{}.{}", self.to.0, self.to.1.saturating_sub(1))
    }

    /// The documents the version checks come from.
    pub fn version_doc(&self) -> Doc {
        match self.family {
            Family::Reference => REFERENCE_POLICY,
            _ => MONITOR_VERSIONS,
        }
    }

    /// An old binary restarted on the data of a finished upgrade.
    pub fn old_on_upgraded_data(&self) -> (Start, Doc) {
        if !self.minor_step() {
            return (Start::Starts, self.rollback_doc());
        }
        let doc = match self.family {
            Family::Reference => REFERENCE_POLICY,
            _ => DETECT_DOWNGRADE,
        };
        (
            Start::Refused {
                text: "lower than determined cluster version",
            },
            doc,
        )
    }

    /// An old binary joining (as a new member) a cluster whose upgrade finished.
    pub fn old_joins_upgraded(&self) -> (Start, Doc) {
        if !self.minor_step() {
            return (Start::Starts, self.rollback_doc());
        }
        match self.family {
            // The policy does not name a text for this one: it must refuse.
            Family::Reference => (Start::Refused { text: "" }, REFERENCE_POLICY),
            _ => (
                Start::Refused {
                    text: "incompatible with current running cluster",
                },
                JOIN_CHECK,
            ),
        }
    }

    /// A new-version member restarted (same binary) while a downgrade is enabled.
    pub fn restart_while_downgrade_enabled(&self) -> (Start, Doc) {
        match self.family {
            Family::Reference => (Start::Starts, REFERENCE_POLICY),
            _ if self.to.1 == 5 && self.to.0 == 3 => (
                Start::KnownBug {
                    text: "server version is not allowed to join when downgrade is enabled",
                    fixed_in: "3.6.0",
                },
                DOWNGRADE_RESTART_BUG,
            ),
            _ => (Start::Starts, DOWNGRADE_RESTART_BUG),
        }
    }

    /// Whether Downgrade ENABLE and CANCEL answer at all: `Some(fixed in)` when they are
    /// a known bug of this release (applied, answered with a timeout).
    pub fn downgrade_answer_bug(&self) -> Option<&'static str> {
        (self.family != Family::Reference && self.to.0 == 3 && self.to.1 == 5).then_some("3.6.0")
    }

    /// A member that applied an ENABLE, started again (same binary) after the
    /// downgrade was cancelled by the others.
    pub fn restart_after_cancel(&self) -> (Start, Doc) {
        self.restart_while_downgrade_enabled()
    }

    /// The old binary swapped in after a downgrade to its minor was enabled.
    pub fn downgrade_by_swap(&self) -> (Start, Doc) {
        if !self.minor_step() {
            return (Start::Starts, self.rollback_doc());
        }
        match self.family {
            Family::Reference => (Start::Starts, REFERENCE_POLICY),
            // etcd 3.4 takes 3.5 data only from 3.4.32 on, with a flag gauntlet does not pass.
            _ => (
                Start::Refused {
                    text: "lower than determined cluster version",
                },
                DOWNGRADE_3_5,
            ),
        }
    }

    /// Where the rules for rolling back and mixing come from.
    pub fn rollback_doc(&self) -> Doc {
        match self.family {
            Family::Reference => REFERENCE_POLICY,
            _ => UPGRADE_3_5,
        }
    }
}

/// Refuses a pair of different servers (checked before anything is launched).
pub fn check_pair(from: &Target, to: &Target) -> Result<(), String> {
    if Family::of(from) != Family::of(to) {
        return Err(format!(
            "--from {from} and --to {to} are different servers: a skew run upgrades one server from one version to another"
        ));
    }
    Ok(())
}

/// `3.5.1`.
pub fn fmt(v: SemVer) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etcd(v: &str) -> Target {
        format!("etcd@{v}").parse().unwrap()
    }

    #[test]
    fn an_etcd_minor_upgrade_expects_etcds_refusals() {
        let e = Expect::new(
            &etcd("3.4.23"),
            SemVer(3, 4, 23),
            &etcd("3.5.1"),
            SemVer(3, 5, 1),
        )
        .unwrap();
        assert!(e.minor_step());
        assert_eq!(e.mixed_cluster_version(), "3.4.0");
        assert_eq!(e.final_cluster_version(), "3.5.0");
        assert_eq!(e.downgrade_target(), "3.4");
        assert!(matches!(e.old_on_upgraded_data().0, Start::Refused { .. }));
        assert_eq!(
            e.old_joins_upgraded().0,
            Start::Refused {
                text: "incompatible with current running cluster"
            }
        );
        assert!(matches!(
            e.restart_while_downgrade_enabled().0,
            Start::KnownBug {
                fixed_in: "3.6.0",
                ..
            }
        ));
    }

    #[test]
    fn a_patch_upgrade_refuses_nothing() {
        let r = Target::Reference;
        let e = Expect::new(&r, SemVer(3, 5, 0), &r, SemVer(3, 5, 0)).unwrap();
        assert!(!e.minor_step());
        assert_eq!(e.old_on_upgraded_data().0, Start::Starts);
        assert_eq!(e.old_joins_upgraded().0, Start::Starts);
        assert_eq!(e.restart_while_downgrade_enabled().0, Start::Starts);
    }

    #[test]
    fn unsupported_pairs_are_refused_with_the_reason() {
        for (a, b) in [("3.5.1", "3.4.23"), ("3.3.0", "3.5.1"), ("2.3.8", "3.4.23")] {
            let (va, vb) = (
                gauntlet_harness::profile::SemVer::parse(a).unwrap(),
                gauntlet_harness::profile::SemVer::parse(b).unwrap(),
            );
            let err = Expect::new(&etcd(a), va, &etcd(b), vb).unwrap_err();
            assert!(err.contains("not an upgrade etcd supports"), "{err}");
        }
        let err = Expect::new(
            &Target::Reference,
            SemVer(3, 5, 0),
            &etcd("3.5.1"),
            SemVer(3, 5, 1),
        )
        .unwrap_err();
        assert!(err.contains("different servers"), "{err}");
    }
}
