//! The replicated cluster records: the member table and the alarms.
//!
//! Both live in the state machine's sled tree next to the keys (prefix `c` for a member,
//! `a` for an alarm), so a raft snapshot carries them to a member that catches up and
//! they change only by applying raft entries, in the same group commit as everything
//! else. Neither is part of `hash_kv` (etcd hashes the key space only).
//!
//! The member table changes through raft configuration changes, whose
//! [`MemberChange`] is decided by raft itself (the node applies the change to raft's
//! configuration first and hands the table the same outcome), and through two plain
//! commands: a member publishing its name and client URLs once it serves (etcd's
//! `publish`), and `MemberUpdate` changing a member's peer URLs.

use std::collections::{BTreeMap, BTreeSet};

use gauntlet_api::etcdserverpb::{alarm_request::AlarmAction, AlarmMember, AlarmType};
use prost::Message as _;

use super::StateError;

/// Key prefix of a member record (`c` + member id, big-endian).
pub const MEMBER_PREFIX: u8 = b'c';
/// Key prefix of an alarm record (`a` + member id + alarm type, big-endian).
pub const ALARM_PREFIX: u8 = b'a';
/// Key of the cluster version (`vc`, value `major.minor`) and of an enabled downgrade's
/// target (`vd`).
pub const VERSION_PREFIX: u8 = b'v';
const CLUSTER_VERSION_KEY: &[u8] = b"vc";
const DOWNGRADE_KEY: &[u8] = b"vd";
/// Key prefix of a removed member's id (`x` + member id): a removed id never comes back,
/// and its raft messages are refused so that it learns it was removed.
pub const REMOVED_PREFIX: u8 = b'x';

/// A member as the cluster records it (also the context of a configuration change).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Member {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Empty until the member published itself (etcd shows unstarted members so).
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, repeated, tag = "3")]
    pub peer_urls: Vec<String>,
    /// Empty until the member published itself.
    #[prost(string, repeated, tag = "4")]
    pub client_urls: Vec<String>,
    #[prost(bool, tag = "5")]
    pub is_learner: bool,
}

/// A member publishing its name and client URLs (etcd's `publish`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MemberAttrs {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, repeated, tag = "3")]
    pub client_urls: Vec<String>,
}

/// What an applied configuration change did to the member table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// A voter or a learner joined (its record comes from the change's context).
    Add(Member),
    /// A learner became a voter.
    Promote(u64),
    /// A member left.
    Remove(u64),
}

fn member_key(id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = MEMBER_PREFIX;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

fn alarm_key(member: u64, alarm: i32) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = ALARM_PREFIX;
    k[1..9].copy_from_slice(&member.to_be_bytes());
    k[9..].copy_from_slice(&alarm.to_be_bytes());
    k
}

/// The member table and the alarms, as of the last applied entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterRecords {
    pub members: BTreeMap<u64, Member>,
    pub alarms: BTreeSet<(u64, i32)>,
    pub removed: BTreeSet<u64>,
    /// The cluster version (major, minor), once the leader decided it.
    pub cluster_version: Option<(u64, u64)>,
    /// The target of an enabled downgrade.
    pub downgrade: Option<(u64, u64)>,
}

/// Parses `major.minor` or `major.minor.patch` (the patch is dropped, as etcd does).
pub fn parse_minor(s: &str) -> Option<(u64, u64)> {
    let s = s.trim().trim_start_matches('v');
    let mut parts = s.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    match parts.next() {
        None => {}
        Some(p) if p.parse::<u64>().is_ok() && parts.next().is_none() => {}
        Some(_) => return None,
    }
    Some((major, minor))
}

/// A cluster version change etcd accepts: up within the major, or down one minor.
pub fn valid_version_change(from: (u64, u64), to: (u64, u64)) -> bool {
    from.0 == to.0 && (to.1 > from.1 || to.1 + 1 == from.1)
}

/// A replicated version setting: the cluster version, or a downgrade enabled
/// (`enabled`, target `version`) or cancelled.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct VersionSet {
    /// `major.minor`.
    #[prost(string, tag = "1")]
    pub version: String,
    /// Set the cluster version (`false`: change the downgrade).
    #[prost(bool, tag = "2")]
    pub cluster: bool,
    /// For a downgrade: enable (with `version` as target) or cancel.
    #[prost(bool, tag = "3")]
    pub enabled: bool,
}

/// A staged write: key and value, or key and `None` for a removal.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

impl ClusterRecords {
    /// Reads the records from the state machine's tree.
    pub fn load(tree: &sled::Tree) -> Result<Self, StateError> {
        let mut members = BTreeMap::new();
        for item in tree.scan_prefix([MEMBER_PREFIX]) {
            let (_, v) = item?;
            let m = Member::decode(v.as_ref())
                .map_err(|e| StateError::Corrupt(format!("member record: {e}")))?;
            members.insert(m.id, m);
        }
        let mut alarms = BTreeSet::new();
        for item in tree.scan_prefix([ALARM_PREFIX]) {
            let (k, _) = item?;
            if k.len() != 13 {
                return Err(StateError::Corrupt("alarm record key".into()));
            }
            let member = u64::from_be_bytes(k[1..9].try_into().expect("8 bytes"));
            let alarm = i32::from_be_bytes(k[9..].try_into().expect("4 bytes"));
            alarms.insert((member, alarm));
        }
        let mut removed = BTreeSet::new();
        for item in tree.scan_prefix([REMOVED_PREFIX]) {
            let (k, _) = item?;
            let id = k
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| StateError::Corrupt("removed-member record key".into()))?;
            removed.insert(id);
        }
        let version = |key: &[u8]| -> Result<Option<(u64, u64)>, StateError> {
            match tree.get(key)? {
                Some(v) => parse_minor(&String::from_utf8_lossy(&v))
                    .map(Some)
                    .ok_or_else(|| StateError::Corrupt("version record".into())),
                None => Ok(None),
            }
        };
        Ok(ClusterRecords {
            members,
            alarms,
            removed,
            cluster_version: version(CLUSTER_VERSION_KEY)?,
            downgrade: version(DOWNGRADE_KEY)?,
        })
    }

    fn put_member(&mut self, m: Member, out: &mut Vec<Write>) {
        out.push((member_key(m.id).to_vec(), Some(m.encode_to_vec())));
        self.members.insert(m.id, m);
    }

    /// Applies what raft decided about a configuration change.
    pub fn apply_change(&mut self, change: MemberChange, out: &mut Vec<Write>) {
        match change {
            MemberChange::Add(m) => {
                // A member added again (the bootstrap entries replayed on a member that
                // already knows it) keeps what it published.
                let merged = match self.members.get(&m.id) {
                    Some(old) => Member {
                        name: old.name.clone(),
                        client_urls: old.client_urls.clone(),
                        ..m
                    },
                    None => m,
                };
                self.put_member(merged, out);
            }
            MemberChange::Promote(id) => {
                if let Some(mut m) = self.members.get(&id).cloned() {
                    m.is_learner = false;
                    self.put_member(m, out);
                }
            }
            MemberChange::Remove(id) => {
                if self.members.remove(&id).is_some() {
                    out.push((member_key(id).to_vec(), None));
                }
                if self.removed.insert(id) {
                    let mut k = vec![REMOVED_PREFIX];
                    k.extend_from_slice(&id.to_be_bytes());
                    out.push((k, Some(Vec::new())));
                }
                // A removed member's alarms go with it, as in etcd.
                let gone: Vec<(u64, i32)> = self
                    .alarms
                    .iter()
                    .filter(|(m, _)| *m == id)
                    .copied()
                    .collect();
                for (m, a) in gone {
                    self.alarms.remove(&(m, a));
                    out.push((alarm_key(m, a).to_vec(), None));
                }
            }
        }
    }

    /// Records a member's name and client URLs; `false` if it is not a member (any more).
    pub fn publish(&mut self, attrs: &MemberAttrs, out: &mut Vec<Write>) -> bool {
        let Some(mut m) = self.members.get(&attrs.id).cloned() else {
            return false;
        };
        m.name.clone_from(&attrs.name);
        m.client_urls.clone_from(&attrs.client_urls);
        self.put_member(m, out);
        true
    }

    /// Changes a member's peer URLs; `false` if it is not a member.
    pub fn update_peer_urls(
        &mut self,
        id: u64,
        peer_urls: &[String],
        out: &mut Vec<Write>,
    ) -> bool {
        let Some(mut m) = self.members.get(&id).cloned() else {
            return false;
        };
        m.peer_urls = peer_urls.to_vec();
        self.put_member(m, out);
        true
    }

    /// Activates or deactivates an alarm; answers the alarms it changed, as etcd does
    /// (deactivating an alarm that is not raised changes nothing and answers none).
    pub fn alarm(
        &mut self,
        action: AlarmAction,
        member: u64,
        alarm: i32,
        out: &mut Vec<Write>,
    ) -> Vec<AlarmMember> {
        let changed = match action {
            AlarmAction::Activate if alarm != AlarmType::None as i32 => {
                if self.alarms.insert((member, alarm)) {
                    out.push((alarm_key(member, alarm).to_vec(), Some(Vec::new())));
                }
                true
            }
            AlarmAction::Deactivate => {
                let was = self.alarms.remove(&(member, alarm));
                if was {
                    out.push((alarm_key(member, alarm).to_vec(), None));
                }
                was
            }
            _ => false,
        };
        if changed {
            vec![AlarmMember {
                member_id: member,
                alarm,
            }]
        } else {
            Vec::new()
        }
    }

    /// Applies a version setting; the error is etcd's for a downgrade enabled twice or
    /// cancelled when none is enabled. A version that does not parse changes nothing.
    pub fn set_version(
        &mut self,
        set: &VersionSet,
        out: &mut Vec<Write>,
    ) -> Result<(), gauntlet_api::rpctypes::EtcdError> {
        use gauntlet_api::rpctypes;
        let v = parse_minor(&set.version);
        let text = |(a, b): (u64, u64)| format!("{a}.{b}").into_bytes();
        if set.cluster {
            if let Some(v) = v {
                self.cluster_version = Some(v);
                out.push((CLUSTER_VERSION_KEY.to_vec(), Some(text(v))));
            }
            return Ok(());
        }
        match (set.enabled, self.downgrade) {
            (true, Some(_)) => Err(rpctypes::DOWNGRADE_IN_PROCESS),
            (false, None) => Err(rpctypes::NO_INFLIGHT_DOWNGRADE),
            (true, None) => {
                if let Some(v) = v {
                    self.downgrade = Some(v);
                    out.push((DOWNGRADE_KEY.to_vec(), Some(text(v))));
                }
                Ok(())
            }
            (false, Some(_)) => {
                self.downgrade = None;
                out.push((DOWNGRADE_KEY.to_vec(), None));
                Ok(())
            }
        }
    }

    /// Whether an alarm of this type is raised on any member.
    pub fn raised(&self, alarm: AlarmType) -> bool {
        self.alarms.iter().any(|(_, a)| *a == alarm as i32)
    }

    /// The alarms, by member then type (etcd's `AlarmList`).
    pub fn alarm_list(&self) -> Vec<AlarmMember> {
        self.alarms
            .iter()
            .map(|(m, a)| AlarmMember {
                member_id: *m,
                alarm: *a,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, learner: bool) -> Member {
        Member {
            id,
            name: String::new(),
            peer_urls: vec![format!("http://127.0.0.1:{id}")],
            client_urls: vec![],
            is_learner: learner,
        }
    }

    #[test]
    fn a_replayed_add_keeps_what_the_member_published() {
        let mut c = ClusterRecords::default();
        let mut w = Vec::new();
        c.apply_change(MemberChange::Add(member(1, false)), &mut w);
        assert!(c.publish(
            &MemberAttrs {
                id: 1,
                name: "m0".into(),
                client_urls: vec!["http://c".into()]
            },
            &mut w
        ));
        c.apply_change(MemberChange::Add(member(1, false)), &mut w);
        assert_eq!(c.members[&1].name, "m0");
        assert_eq!(c.members[&1].client_urls, vec!["http://c".to_string()]);
    }

    #[test]
    fn promote_and_remove_change_the_table_and_drop_the_members_alarms() {
        let mut c = ClusterRecords::default();
        let mut w = Vec::new();
        c.apply_change(MemberChange::Add(member(2, true)), &mut w);
        c.apply_change(MemberChange::Promote(2), &mut w);
        assert!(!c.members[&2].is_learner);
        c.alarm(AlarmAction::Activate, 2, AlarmType::Nospace as i32, &mut w);
        assert!(c.raised(AlarmType::Nospace));
        c.apply_change(MemberChange::Remove(2), &mut w);
        assert!(c.members.is_empty());
        assert!(!c.raised(AlarmType::Nospace));
    }

    #[test]
    fn versions_parse_and_change_as_etcds() {
        assert_eq!(parse_minor("3.5.1"), Some((3, 5)));
        assert_eq!(parse_minor("3.4"), Some((3, 4)));
        assert_eq!(parse_minor("3"), None);
        assert_eq!(parse_minor("3.4.x"), None);
        assert_eq!(parse_minor("three"), None);
        assert!(valid_version_change((3, 4), (3, 5)));
        assert!(valid_version_change((3, 5), (3, 4)));
        assert!(!valid_version_change((3, 5), (3, 3)));
        assert!(!valid_version_change((3, 5), (4, 0)));
    }

    #[test]
    fn a_downgrade_is_enabled_once_and_cancelled_once() {
        let mut c = ClusterRecords::default();
        let mut w = Vec::new();
        let set = |enabled| VersionSet {
            version: "3.4".into(),
            cluster: false,
            enabled,
        };
        assert!(c.set_version(&set(false), &mut w).is_err());
        c.set_version(&set(true), &mut w).unwrap();
        assert_eq!(c.downgrade, Some((3, 4)));
        assert!(c.set_version(&set(true), &mut w).is_err());
        c.set_version(&set(false), &mut w).unwrap();
        assert_eq!(c.downgrade, None);
    }

    #[test]
    fn deactivating_an_alarm_not_raised_answers_nothing() {
        let mut c = ClusterRecords::default();
        let mut w = Vec::new();
        let r = c.alarm(
            AlarmAction::Deactivate,
            7,
            AlarmType::Nospace as i32,
            &mut w,
        );
        assert!(r.is_empty());
        assert!(w.is_empty());
        let r = c.alarm(AlarmAction::Activate, 7, AlarmType::Nospace as i32, &mut w);
        assert_eq!(r.len(), 1);
        assert_eq!(c.alarm_list().len(), 1);
    }

    #[test]
    fn records_round_trip_through_sled() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("t").unwrap();
        let mut c = ClusterRecords::default();
        let mut w = Vec::new();
        c.apply_change(MemberChange::Add(member(3, false)), &mut w);
        c.alarm(AlarmAction::Activate, 3, AlarmType::Corrupt as i32, &mut w);
        for (k, v) in w {
            match v {
                Some(v) => tree.insert(k, v).unwrap(),
                None => tree.remove(k).unwrap(),
            };
        }
        assert_eq!(ClusterRecords::load(&tree).unwrap(), c);
    }
}
