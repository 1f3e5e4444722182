//! Named regression scenarios: the real etcd bugs in etcd's robustness track record
//! that a black-box run can provoke on the releases Gauntlet targets, each as the
//! cluster, traffic and fault that provoke it (`gauntlet chaos --regression NAME`).
//!
//! etcd's own reproductions lean on gofail points compiled into etcd and on reading
//! its WAL; here only the process, the network and the wire are used, so a scenario
//! makes a bug *likely*, not certain: run it for many rounds. Whether Gauntlet has
//! reproduced each one, on which release, in how many rounds, is recorded in
//! [`Regression::reproduced`] from measured runs (see the README's chaos section).

use crate::fault::FaultKind;
use crate::scenario::TrafficProfile;

/// One scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Regression {
    /// `etcd-NNNNN`, what `--regression` takes.
    pub name: &'static str,
    /// The etcd issue.
    pub url: &'static str,
    /// What goes wrong, in one line.
    pub title: &'static str,
    /// Releases affected, as etcd's robustness README and changelogs say.
    pub affected: &'static str,
    /// Where it was fixed.
    pub fixed: &'static str,
    /// Members of each round's cluster.
    pub members: usize,
    /// The fault of every round.
    pub fault: FaultKind,
    /// The traffic.
    pub profile: TrafficProfile,
    /// Operations per second over all clients.
    pub qps: u32,
    /// What a reproduction looks like (the finding's check, and guarantee if any).
    pub expect: &'static str,
    /// What Gauntlet measured so far.
    pub reproduced: &'static str,
}

/// Every scenario.
pub const ALL: [Regression; 3] = [
    Regression {
        name: "etcd-13766",
        url: "https://github.com/etcd-io/etcd/issues/13766",
        title: "inconsistent revision and data after a member is killed under high write load",
        affected: "3.5.0 to 3.5.2",
        fixed: "3.5.3",
        members: 3,
        fault: FaultKind::KillRandom,
        profile: TrafficProfile::Etcd,
        qps: 1000,
        expect: "hashkv (replicas disagree) or linearizability",
        reproduced: "not yet: 0 of 30 rounds on etcd 3.5.1 at 1000 qps (seed 1, about 2,900 operations a round); its reporters hit it under production load",
    },
    Regression {
        name: "etcd-15220",
        url: "https://github.com/etcd-io/etcd/issues/15220",
        title: "a requested watch progress notification is not synchronised with the stream",
        affected: "3.4 and earlier to 3.4.24, 3.5.0 to 3.5.7",
        fixed: "3.4.25, 3.5.8",
        members: 1,
        fault: FaultKind::KillRandom,
        profile: TrafficProfile::Etcd,
        qps: 200,
        expect: "watch: Bookmarkable",
        reproduced: "yes on etcd 3.5.1, in an exploratory run (process.pause-follower, seed 7); this scenario: 0 of 20 rounds on 3.5.1 and on 3.4.23 (seed 1)",
    },
    Regression {
        name: "etcd-15271",
        url: "https://github.com/etcd-io/etcd/issues/15271",
        title: "watch events travel back in time when a reconnecting member restores a snapshot from the leader",
        affected: "3.4.24 and earlier, 3.5.0 to 3.5.7",
        fixed: "3.4.25 (etcd#15520), 3.5.8 (etcd#15515)",
        members: 3,
        fault: FaultKind::PartitionUntilSnapshot,
        profile: TrafficProfile::Etcd,
        qps: 200,
        expect: "watch: Ordered or Unique on the member that caught up",
        reproduced: "yes on etcd 3.5.1: 1 of 15 rounds (seed 1, round 0: the caught-up member's stream replayed revisions 6 to 223); 0 of 15 on 3.4.23",
    },
];

/// The scenario named `name`; `Err` lists the names.
pub fn find(name: &str) -> Result<&'static Regression, String> {
    ALL.iter().find(|r| r.name == name).ok_or_else(|| {
        format!(
            "unknown regression `{name}`: known are {}",
            ALL.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_runs_on_its_cluster_and_names_an_etcd_issue() {
        for r in ALL {
            assert!(r.fault.supported(r.members).is_ok(), "{}", r.name);
            assert!(
                r.url.ends_with(r.name.trim_start_matches("etcd-")),
                "{} points at {}",
                r.name,
                r.url
            );
            assert_eq!(find(r.name).map(|x| x.name), Ok(r.name));
        }
        assert!(find("etcd-1").unwrap_err().contains("etcd-13766"));
    }
}
