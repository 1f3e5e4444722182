//! The in-memory key index: for every key, the revisions at which it was written.
//!
//! Values never live here (they stay in sled, addressed by revision); the index holds only
//! keys, revision lists and the lease of the live version, so memory is O(keys + revisions).
//!
//! # Worked example: generations, tombstones, compaction
//!
//! A *revision* is `main.sub`: `main` is the store revision of the write command, `sub` the
//! position of the write inside it (a txn writing three keys uses `7.0`, `7.1`, `7.2`).
//! A key's history is split into *generations*: a generation starts with the put that
//! (re)creates the key and ends with the delete (the *tombstone*, marked `t`) that removes it.
//! The last generation is the open one; it is empty while the key does not exist.
//!
//! ```text
//! put(foo)@2  put(foo)@3  delete(foo)@4  put(foo)@6  put(foo)@8  delete(foo)@9
//!
//! generations of "foo":
//!     [ ]                    <- open, empty: "foo" does not exist now
//!     [6.0, 8.0, 9.0(t)]     created 6, ver 3 (two puts + the tombstone)
//!     [2.0, 3.0, 4.0(t)]     created 2, ver 3
//! ```
//!
//! Reading at revision `r` picks the generation whose first revision is `<= r` and whose
//! tombstone (if closed) is `> r`, then the largest revision `<= r` in it:
//! `get@3 -> 3.0 (create 2, version 2)`, `get@5 -> none` (4 is a tombstone),
//! `get@8 -> 8.0 (create 6, version 2)`, `get@9 -> none`.
//!
//! Compaction at `c` keeps, in each generation still needed, the largest revision `<= c`
//! (it is what a read at `c` sees) and drops older ones; a generation whose tombstone is
//! `<= c` is dropped whole, and a key left with only its empty open generation disappears.
//! The dropped revisions are exactly the records deleted from sled.
//!
//! ```text
//! compact(3):  [ ]  [6.0, 8.0, 9.0(t)]  [3.0, 4.0(t)]     dropped: 2.0
//! compact(4):  [ ]  [6.0, 8.0, 9.0(t)]                   dropped: 3.0, 4.0(t)
//! compact(8):  [ ]  [8.0, 9.0(t)]                        dropped: 6.0
//! compact(9):  key removed                               dropped: 8.0, 9.0(t)
//! ```
//!
//! `ver` counts every revision ever appended to the generation, so versions stay right after
//! compaction trimmed the front: the version at revision index `i` is `ver - (len - 1 - i)`.
//! `created` is kept separately for the same reason (after `compact(8)` above, `8.0` still
//! reports create revision 6).

use std::collections::BTreeMap;
use std::ops::Bound;

/// A store revision: `main` is the revision of the write command, `sub` the index of the
/// write inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rev {
    pub main: i64,
    pub sub: i64,
}

impl Rev {
    pub const fn new(main: i64, sub: i64) -> Self {
        Rev { main, sub }
    }
}

/// One life of a key, from the put that created it to the tombstone that ended it.
#[derive(Debug, Clone, Default)]
struct Generation {
    /// Revisions appended since creation, including any compacted away (and the tombstone).
    ver: i64,
    /// The revision that created the key in this generation.
    created: Rev,
    /// Revisions still stored, ascending; the last one is the tombstone if the generation is
    /// closed (not the last generation of the key).
    revs: Vec<Rev>,
}

/// Everything the index knows about one key.
#[derive(Debug, Clone, Default)]
pub struct KeyIndex {
    /// Oldest first; the last one is open (empty when the key does not exist now).
    generations: Vec<Generation>,
    /// The lease of the live version (0 when none or not live).
    pub lease: i64,
}

/// What the index knows of one version of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub modified: Rev,
    pub created: Rev,
    pub version: i64,
}

impl KeyIndex {
    fn open_gen(&self) -> Option<&Generation> {
        self.generations.last().filter(|g| !g.revs.is_empty())
    }

    /// The live version now, if the key exists.
    pub fn current(&self) -> Option<Version> {
        let g = self.open_gen()?;
        let modified = *g.revs.last()?;
        Some(Version {
            modified,
            created: g.created,
            version: g.ver,
        })
    }

    /// The version visible at store revision `at` (None: the key did not exist then).
    pub fn get(&self, at: i64) -> Option<Version> {
        let last = self.generations.len().checked_sub(1)?;
        for (gi, g) in self.generations.iter().enumerate().rev() {
            let Some(first) = g.revs.first() else {
                continue;
            };
            if gi != last {
                let tomb = g.revs[g.revs.len() - 1];
                if tomb.main <= at {
                    return None;
                }
            }
            if first.main <= at {
                // Largest revision with main <= at.
                let idx = g.revs.partition_point(|r| r.main <= at) - 1;
                return Some(Version {
                    modified: g.revs[idx],
                    created: g.created,
                    version: g.ver - (g.revs.len() - 1 - idx) as i64,
                });
            }
        }
        None
    }

    /// Records a put at `rev`. `created`/`version` override the derived values when loading
    /// records whose earlier revisions were compacted away (pass None when applying).
    pub fn put(&mut self, rev: Rev, loaded: Option<(Rev, i64)>) -> Version {
        if self.generations.is_empty() {
            self.generations.push(Generation::default());
        }
        let g = self.generations.last_mut().expect("non-empty");
        if g.revs.is_empty() {
            g.created = rev;
            g.ver = 0;
        }
        g.ver += 1;
        if let Some((created, ver)) = loaded {
            g.created = created;
            g.ver = ver;
        }
        g.revs.push(rev);
        Version {
            modified: rev,
            created: g.created,
            version: g.ver,
        }
    }

    /// Records a delete at `rev`; returns false (and changes nothing) if the key is not live.
    pub fn tombstone(&mut self, rev: Rev) -> bool {
        match self.generations.last_mut() {
            Some(g) if !g.revs.is_empty() => {
                g.ver += 1;
                g.revs.push(rev);
                self.generations.push(Generation::default());
                self.lease = 0;
                true
            }
            _ => false,
        }
    }

    /// Compacts at `at` (see the module doc); pushes every dropped revision (with whether it
    /// was a tombstone) to `dropped`. Returns true if the key is now empty and must go.
    fn compact(&mut self, at: i64, dropped: &mut Vec<Rev>) -> bool {
        let last = self.generations.len().saturating_sub(1);
        let mut keep_from = 0;
        while keep_from < last {
            let g = &self.generations[keep_from];
            let tomb = g.revs[g.revs.len() - 1];
            if tomb.main > at {
                break;
            }
            keep_from += 1;
        }
        for g in self.generations.drain(..keep_from) {
            dropped.extend(g.revs);
        }
        if let Some(g) = self.generations.first_mut() {
            let n = g.revs.partition_point(|r| r.main <= at);
            if n > 1 {
                dropped.extend(g.revs.drain(..n - 1));
            }
        }
        self.generations.len() == 1 && self.generations[0].revs.is_empty()
    }

    /// Every stored revision, ascending.
    #[cfg(test)]
    pub fn all_revs(&self) -> Vec<Rev> {
        self.generations
            .iter()
            .flat_map(|g| g.revs.iter().copied())
            .collect()
    }
}

/// Decodes a `range_end` into upper bound: `None` = the single key, `Some(Unbounded)` for
/// `"\0"` (every key `>= key`), else `Some(Excluded(end))`.
pub fn end_bound(range_end: &[u8]) -> Option<Bound<&[u8]>> {
    match range_end {
        [] => None,
        [0] => Some(Bound::Unbounded),
        end => Some(Bound::Excluded(end)),
    }
}

/// Whether `k` lies in the etcd range `[key, range_end)` (with etcd's `range_end` forms).
pub fn in_range(k: &[u8], key: &[u8], range_end: &[u8]) -> bool {
    match end_bound(range_end) {
        None => k == key,
        Some(Bound::Unbounded) => k >= key,
        Some(Bound::Excluded(end)) => k >= key && k < end,
        Some(Bound::Included(_)) => unreachable!("never produced"),
    }
}

/// The whole key index: key -> its history.
#[derive(Debug, Default, Clone)]
pub struct TreeIndex {
    keys: BTreeMap<Vec<u8>, KeyIndex>,
}

impl TreeIndex {
    pub fn get(&self, key: &[u8]) -> Option<&KeyIndex> {
        self.keys.get(key)
    }

    pub fn entry(&mut self, key: &[u8]) -> &mut KeyIndex {
        if !self.keys.contains_key(key) {
            self.keys.insert(key.to_vec(), KeyIndex::default());
        }
        self.keys.get_mut(key).expect("just inserted")
    }

    /// Iterates the keys of `[key, range_end)` (etcd forms) in ascending order. A range whose
    /// end is not after its start is empty (as in etcd).
    pub fn range<'a>(
        &'a self,
        key: &'a [u8],
        range_end: &'a [u8],
    ) -> Box<dyn Iterator<Item = (&'a Vec<u8>, &'a KeyIndex)> + 'a> {
        match end_bound(range_end) {
            None => Box::new(self.keys.get_key_value(key).into_iter()),
            Some(Bound::Excluded(end)) if end <= key => Box::new(std::iter::empty()),
            Some(end) => Box::new(self.keys.range::<[u8], _>((Bound::Included(key), end))),
        }
    }

    /// Compacts every key at `at`; returns the revisions whose records must be deleted.
    pub fn compact(&mut self, at: i64) -> Vec<Rev> {
        let mut dropped = Vec::new();
        self.keys.retain(|_, ki| !ki.compact(at, &mut dropped));
        dropped
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Rev {
        Rev::new(main, 0)
    }

    /// The history drawn in the module doc.
    fn example() -> KeyIndex {
        let mut ki = KeyIndex::default();
        ki.put(r(2), None);
        ki.put(r(3), None);
        assert!(ki.tombstone(r(4)));
        ki.put(r(6), None);
        ki.put(r(8), None);
        assert!(ki.tombstone(r(9)));
        ki
    }

    #[test]
    fn reads_follow_the_worked_example() {
        let ki = example();
        assert_eq!(ki.get(1), None);
        let v = ki.get(3).unwrap();
        assert_eq!((v.modified, v.created, v.version), (r(3), r(2), 2));
        assert_eq!(ki.get(4), None);
        assert_eq!(ki.get(5), None);
        let v = ki.get(7).unwrap();
        assert_eq!((v.modified, v.created, v.version), (r(6), r(6), 1));
        let v = ki.get(8).unwrap();
        assert_eq!((v.modified, v.created, v.version), (r(8), r(6), 2));
        assert_eq!(ki.get(9), None);
        assert_eq!(ki.current(), None);
        assert!(
            !ki.clone().tombstone(r(10)),
            "deleting a dead key changes nothing"
        );
    }

    #[test]
    fn compaction_follows_the_worked_example() {
        let mut ki = example();
        let mut dropped = vec![];
        assert!(!ki.compact(3, &mut dropped));
        assert_eq!(dropped, vec![r(2)]);
        assert_eq!(ki.all_revs(), vec![r(3), r(4), r(6), r(8), r(9)]);
        let v = ki.get(3).unwrap();
        assert_eq!((v.modified, v.created, v.version), (r(3), r(2), 2));

        dropped.clear();
        assert!(!ki.compact(4, &mut dropped));
        assert_eq!(dropped, vec![r(3), r(4)]);

        dropped.clear();
        assert!(!ki.compact(8, &mut dropped));
        assert_eq!(dropped, vec![r(6)]);
        let v = ki.get(8).unwrap();
        assert_eq!((v.modified, v.created, v.version), (r(8), r(6), 2));

        dropped.clear();
        assert!(ki.compact(9, &mut dropped));
        assert_eq!(dropped, vec![r(8), r(9)]);
    }

    #[test]
    fn compaction_keeps_the_live_version() {
        let mut ki = KeyIndex::default();
        for m in 2..=5 {
            ki.put(r(m), None);
        }
        let mut dropped = vec![];
        assert!(!ki.compact(10, &mut dropped));
        assert_eq!(dropped, vec![r(2), r(3), r(4)]);
        let v = ki.current().unwrap();
        assert_eq!((v.modified, v.created, v.version), (r(5), r(2), 4));
        let v = ki.put(r(11), None);
        assert_eq!(v.version, 5);
    }

    #[test]
    fn range_forms() {
        let mut t = TreeIndex::default();
        for k in [&b"a"[..], b"b", b"c"] {
            t.entry(k).put(r(2), None);
        }
        let keys = |k: &[u8], e: &[u8]| -> Vec<Vec<u8>> {
            t.range(k, e).map(|(k, _)| k.clone()).collect()
        };
        assert_eq!(keys(b"b", b""), vec![b"b".to_vec()]);
        assert_eq!(keys(b"b", b"\0"), vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(keys(b"a", b"c"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(keys(b"c", b"a").is_empty());
        assert!(keys(b"x", b"").is_empty());
        assert!(in_range(b"a", b"\0", b"\0"));
        assert!(!in_range(b"c", b"a", b"c"));
    }
}
