//! What one round runs: cluster settings × traffic × one fault, chosen from `(seed, round)`.
//!
//! Every random choice of a round (its fault, the cluster's timings, the traffic's
//! operation sequence, which member a fault hits) is drawn from one generator seeded
//! by [`round_seed`]`(seed, round)`, so `gauntlet chaos --seed S --rounds N` always
//! plans the same rounds, and `--seed S --round R` replays round R alone.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::fault::FaultKind;

/// Which traffic shape a round drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrafficProfile {
    /// etcd's robustness shape: ten keys, unique put values, reads, txns, leases.
    Etcd,
    /// The Kubernetes API server's shapes ([`crate::kube`]).
    Kubernetes,
}

impl std::str::FromStr for TrafficProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "etcd" => Ok(TrafficProfile::Etcd),
            "kubernetes" => Ok(TrafficProfile::Kubernetes),
            _ => Err(format!(
                "unknown traffic profile `{s}`: use etcd or kubernetes"
            )),
        }
    }
}

/// Server settings a round launches its cluster with (etcd's flag names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// `--heartbeat-interval`, ms.
    pub heartbeat_ms: u64,
    /// `--election-timeout`, ms.
    pub election_ms: u64,
    /// `--snapshot-count`: low values make followers catch up by snapshot.
    pub snapshot_count: u64,
    /// `--experimental-watch-progress-notify-interval`, ms.
    pub progress_notify_ms: u64,
}

impl Settings {
    /// The flags, as etcd takes them (timings go through the cluster spec).
    pub fn extra_args(&self) -> Vec<String> {
        vec![
            "--snapshot-count".into(),
            self.snapshot_count.to_string(),
            "--experimental-watch-progress-notify-interval".into(),
            format!("{}ms", self.progress_notify_ms),
        ]
    }
}

/// One planned round.
#[derive(Debug, Clone, Serialize)]
pub struct RoundSpec {
    /// The run's seed.
    pub seed: u64,
    /// The round's number (from 0).
    pub round: u64,
    /// Members of the round's cluster.
    pub members: usize,
    /// The fault injected.
    pub fault: FaultKind,
    /// Server settings.
    pub settings: Settings,
    /// Traffic shape.
    pub profile: TrafficProfile,
    /// The seed of everything random inside the round.
    pub round_seed: u64,
}

/// splitmix64: a round's seed from the run's seed and the round number.
pub fn round_seed(seed: u64, round: u64) -> u64 {
    let mut z = seed ^ round.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Plans round `round` of a run seeded `seed`, choosing its fault among `faults`
/// (already filtered to what the target and cluster size support). Rounds cycle
/// through the faults in a seeded order so that every fault is covered once every
/// `faults.len()` rounds.
pub fn plan(
    seed: u64,
    round: u64,
    members: usize,
    faults: &[FaultKind],
    profile: TrafficProfile,
) -> RoundSpec {
    let rs = round_seed(seed, round);
    let mut rng = StdRng::seed_from_u64(rs);
    // A permutation per cycle of rounds, from the run seed and the cycle number.
    let n = faults.len().max(1) as u64;
    let cycle = round / n;
    let mut order: Vec<FaultKind> = faults.to_vec();
    order.shuffle(&mut StdRng::seed_from_u64(round_seed(
        seed,
        u64::MAX - cycle,
    )));
    let fault = order
        .get(usize::try_from(round % n).unwrap_or(0))
        .copied()
        .unwrap_or(FaultKind::None);
    let timings = [(50, 500), (100, 1000), (30, 300)];
    let (heartbeat_ms, election_ms) = timings[rng.gen_range(0..timings.len())];
    let snapshot_counts = [50, 100, 1000];
    let snapshot_count = snapshot_counts[rng.gen_range(0..snapshot_counts.len())];
    RoundSpec {
        seed,
        round,
        members,
        fault,
        settings: Settings {
            heartbeat_ms,
            election_ms,
            snapshot_count,
            progress_notify_ms: 100,
        },
        profile,
        round_seed: rs,
    }
}

/// Whether `name` matches `glob` (`*` any run of characters, `?` one character).
pub fn glob_match(glob: &str, name: &str) -> bool {
    fn go(g: &[u8], n: &[u8]) -> bool {
        match (g.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&g[1..], n) || (!n.is_empty() && go(g, &n[1..])),
            (Some(b'?'), Some(_)) => go(&g[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&g[1..], &n[1..]),
            _ => false,
        }
    }
    go(glob.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_reproducible_and_cover_every_fault() {
        let faults = FaultKind::ALL.to_vec();
        let rounds = 2 * faults.len() as u64;
        let a: Vec<_> = (0..rounds)
            .map(|r| plan(7, r, 3, &faults, TrafficProfile::Etcd))
            .collect();
        let b: Vec<_> = (0..rounds)
            .map(|r| plan(7, r, 3, &faults, TrafficProfile::Etcd))
            .collect();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (x.fault, &x.settings, x.round_seed),
                (y.fault, &y.settings, y.round_seed)
            );
        }
        let n = faults.len() as u64;
        let first_cycle: std::collections::BTreeSet<_> = a
            .iter()
            .take(faults.len())
            .map(|r| r.fault.name())
            .collect();
        assert_eq!(
            first_cycle.len(),
            faults.len(),
            "one cycle covers every fault"
        );
        assert_ne!(
            plan(8, 0, 3, &faults, TrafficProfile::Etcd).round_seed,
            a[0].round_seed
        );
        assert!(n > 5);
    }

    #[test]
    fn globs_match_fault_names() {
        assert!(glob_match("process.*", "process.kill-leader"));
        assert!(glob_match("*kill*", "process.kill-leader"));
        assert!(glob_match("process.kill-??????", "process.kill-leader"));
        assert!(!glob_match("network.*", "process.kill-leader"));
        assert!(glob_match("*", "none"));
    }

    #[test]
    fn profiles_parse() {
        assert_eq!("etcd".parse(), Ok(TrafficProfile::Etcd));
        assert_eq!("kubernetes".parse(), Ok(TrafficProfile::Kubernetes));
        let e = "k8s".parse::<TrafficProfile>().unwrap_err();
        assert!(e.contains("use etcd or kubernetes"), "{e}");
    }
}
