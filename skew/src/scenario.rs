//! The scenarios: what a skew run does to a cluster, by name.

use serde::Serialize;

/// One skew scenario. Every scenario but [`Scenario::ClientSkew`] starts a 3-member
/// cluster of the `from` target and runs under recorded traffic from start to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub enum Scenario {
    /// Rolling upgrade, followers first, then the leader.
    UpgradeFollowersFirst,
    /// Rolling upgrade, the leader first.
    UpgradeLeaderFirst,
    /// One old member and two new, the leader new; kills, restarts and a partition.
    MixedMinorityOld,
    /// Two old members and one new, the leader old; the same faults.
    MixedMajorityOld,
    /// Two new members led by the old one; the same faults.
    MixedOldLeader,
    /// Two old members led by the new one; the same faults.
    MixedNewLeader,
    /// A new-version member added to an old cluster far enough behind that it can only
    /// catch up by snapshot.
    SnapshotNewFromOld,
    /// An old-version member added to a mostly upgraded cluster led by a new member,
    /// catching up by snapshot.
    SnapshotOldFromNew,
    /// Two members upgraded, then rolled back to the old binary.
    RollbackMidUpgrade,
    /// After a finished upgrade, a member restarted on the old binary.
    RefuseOldBinaryOnUpgradedData,
    /// After a finished upgrade, a new member of the old version joins.
    RefuseOldMemberJoining,
    /// The Downgrade API: VALIDATE, ENABLE, CANCEL, their errors, restarts while enabled.
    DowngradeApi,
    /// A downgrade by binary swap after ENABLE, where the versions allow one.
    DowngradeBySwap,
    /// The old etcdctl against the upgraded cluster and the new one against the old.
    ClientSkew,
    /// The conformance suite's Kubernetes profile against the old, the mixed and the
    /// upgraded cluster.
    ClientSkewKubernetes,
}

impl Scenario {
    /// Every scenario, in the order a run takes them.
    pub const ALL: [Scenario; 15] = [
        Scenario::UpgradeFollowersFirst,
        Scenario::UpgradeLeaderFirst,
        Scenario::MixedMinorityOld,
        Scenario::MixedMajorityOld,
        Scenario::MixedOldLeader,
        Scenario::MixedNewLeader,
        Scenario::SnapshotNewFromOld,
        Scenario::SnapshotOldFromNew,
        Scenario::RollbackMidUpgrade,
        Scenario::RefuseOldBinaryOnUpgradedData,
        Scenario::RefuseOldMemberJoining,
        Scenario::DowngradeApi,
        Scenario::DowngradeBySwap,
        Scenario::ClientSkew,
        Scenario::ClientSkewKubernetes,
    ];

    /// The stable name (`family.case`), what `--scenario` globs match.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::UpgradeFollowersFirst => "rolling-upgrade.followers-first",
            Scenario::UpgradeLeaderFirst => "rolling-upgrade.leader-first",
            Scenario::MixedMinorityOld => "mixed.minority-old",
            Scenario::MixedMajorityOld => "mixed.majority-old",
            Scenario::MixedOldLeader => "mixed.old-leader",
            Scenario::MixedNewLeader => "mixed.new-leader",
            Scenario::SnapshotNewFromOld => "mixed.snapshot-new-from-old",
            Scenario::SnapshotOldFromNew => "mixed.snapshot-old-from-new",
            Scenario::RollbackMidUpgrade => "rollback.mid-upgrade",
            Scenario::RefuseOldBinaryOnUpgradedData => "refusal.old-binary-on-upgraded-data",
            Scenario::RefuseOldMemberJoining => "refusal.old-member-joins-upgraded-cluster",
            Scenario::DowngradeApi => "downgrade.api",
            Scenario::DowngradeBySwap => "downgrade.binary-swap",
            Scenario::ClientSkew => "client-skew.etcdctl",
            Scenario::ClientSkewKubernetes => "client-skew.kubernetes-profile",
        }
    }

    /// The family (the part before the dot).
    pub fn family(self) -> &'static str {
        self.name().split('.').next().unwrap_or("")
    }

    /// One line: what the scenario does.
    pub fn describe(self) -> &'static str {
        match self {
            Scenario::UpgradeFollowersFirst => "upgrade member by member, followers first, then the leader; after each step every member's /version, member list and HashKV",
            Scenario::UpgradeLeaderFirst => "upgrade member by member, the leader first",
            Scenario::MixedMinorityOld => "one old member, two new, a new leader: kill and restart every member, partition the leader, heal",
            Scenario::MixedMajorityOld => "two old members, one new, an old leader: the same faults",
            Scenario::MixedOldLeader => "two new members led by the old one: the same faults",
            Scenario::MixedNewLeader => "two old members led by the new one: the same faults",
            Scenario::SnapshotNewFromOld => "a new-version member added to an old cluster after its log was compacted: it catches up by snapshot",
            Scenario::SnapshotOldFromNew => "an old-version member added to a cluster of two new members (new leader) after compaction: it catches up by snapshot",
            Scenario::RollbackMidUpgrade => "upgrade two members, then roll both back to the old binary while the cluster version is still old",
            Scenario::RefuseOldBinaryOnUpgradedData => "finish the upgrade, restart a member with the old binary (documented refusal), then with the new one",
            Scenario::RefuseOldMemberJoining => "finish the upgrade, replace a member with a new member of the old version (documented refusal), then start it with the new binary",
            Scenario::DowngradeApi => "Maintenance.Downgrade on the upgraded cluster: errors, VALIDATE, ENABLE, cluster version, a restart while enabled, CANCEL",
            Scenario::DowngradeBySwap => "ENABLE a downgrade, then swap a member to the old binary where the versions allow it",
            Scenario::ClientSkew => "the old etcdctl against the upgraded cluster, the new etcdctl against the old one (no recorded traffic)",
            Scenario::ClientSkewKubernetes => "the conformance suite's kubernetes profile (what the API server relies on) against the old cluster, a mixed one and the upgraded one (no recorded traffic)",
        }
    }

    /// Whether it runs under recorded traffic.
    pub fn recorded(self) -> bool {
        !matches!(self, Scenario::ClientSkew | Scenario::ClientSkewKubernetes)
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<Scenario> for String {
    fn from(s: Scenario) -> String {
        s.name().to_string()
    }
}

/// The scenarios whose names match `glob` (`*` matches any run of characters;
/// comma-separated alternatives); an error naming the scenarios when none does.
pub fn select(glob: &str) -> Result<Vec<Scenario>, String> {
    let pats: Vec<&str> = glob.split(',').map(str::trim).collect();
    let out: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| pats.iter().any(|p| glob_match(p, s.name())))
        .collect();
    if out.is_empty() {
        return Err(format!(
            "no scenario matches `{glob}`; scenarios: {}",
            Scenario::ALL.map(Scenario::name).join(", ")
        ));
    }
    Ok(out)
}

fn glob_match(pat: &str, s: &str) -> bool {
    match pat.split_once('*') {
        None => pat == s,
        Some((head, rest)) => {
            let Some(tail) = s.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob_match(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_selectable() {
        let mut names: Vec<&str> = Scenario::ALL.map(Scenario::name).to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Scenario::ALL.len());
        assert_eq!(select("*").unwrap().len(), Scenario::ALL.len());
        assert_eq!(
            select("rolling-upgrade.*").unwrap(),
            vec![
                Scenario::UpgradeFollowersFirst,
                Scenario::UpgradeLeaderFirst
            ]
        );
        assert_eq!(
            select("downgrade.api, client-skew.*").unwrap(),
            vec![
                Scenario::DowngradeApi,
                Scenario::ClientSkew,
                Scenario::ClientSkewKubernetes
            ]
        );
        let err = select("nosuch").unwrap_err();
        assert!(err.contains("rolling-upgrade.followers-first"), "{err}");
    }
}
