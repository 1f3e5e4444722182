//! Keys and payloads, prepared ahead of the run.
//!
//! Keys are a pure function of the operation index and the seed, so any run is
//! reproduced by its flags and `--seed`, and no client needs a random-number
//! generator or a lock on the hot path. Values are made once before the run; an
//! operation only copies one.

use std::time::Instant;

/// Largest key the generator builds (etcd allows 1.5 MiB requests by default).
pub const MAX_KEY_BYTES: usize = 1 << 20;
/// Largest value the generator builds.
pub const MAX_VALUE_BYTES: usize = 3 << 19;
/// Bytes of a timestamp stamped at the front of a value (16 hex digits).
pub const STAMP_BYTES: usize = 16;

/// A fast, well-mixed 64-bit hash (SplitMix64's finalizer).
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The keys of a workload: `space` distinct keys of `size` bytes.
///
/// Key number `n` is written big-endian into the last `min(size, 8)` bytes of a
/// zeroed buffer; with keys shorter than 8 bytes, numbers that differ only in their
/// high bytes share a key (as in etcd's benchmark, pick a key size that fits the space).
#[derive(Debug, Clone)]
pub struct KeySpace {
    size: usize,
    space: u64,
    sequential: bool,
    seed: u64,
    prefix: Vec<u8>,
}

impl KeySpace {
    /// `space` keys of `size` bytes; operation `i` uses key `i % space` when
    /// `sequential`, else a key picked by hashing `i` with `seed`.
    pub fn new(size: usize, space: u64, sequential: bool, seed: u64) -> KeySpace {
        KeySpace {
            size,
            space: space.max(1),
            sequential,
            seed,
            prefix: Vec::new(),
        }
    }

    /// The same keys after `prefix` (used to keep workloads apart in one keyspace).
    pub fn with_prefix(mut self, prefix: &[u8]) -> KeySpace {
        self.prefix = prefix.to_vec();
        self
    }

    /// Key number of operation `i`.
    pub fn index(&self, i: u64) -> u64 {
        if self.sequential {
            i % self.space
        } else {
            mix64(self.seed ^ i) % self.space
        }
    }

    /// The key of operation `i`.
    pub fn key(&self, i: u64) -> Vec<u8> {
        self.encode(self.index(i))
    }

    /// The bytes of key number `n`.
    pub fn encode(&self, n: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + self.size);
        k.extend_from_slice(&self.prefix);
        k.resize(self.prefix.len() + self.size, 0);
        let be = n.to_be_bytes();
        let take = self.size.min(8);
        let at = k.len() - take;
        k[at..].copy_from_slice(&be[8 - take..]);
        k
    }

    /// The smallest key and the key just past the largest one (a range over all of them).
    pub fn range(&self) -> (Vec<u8>, Vec<u8>) {
        let mut start = self.prefix.clone();
        start.resize(self.prefix.len() + self.size, 0);
        let end = if self.prefix.is_empty() {
            vec![0] // etcd: range_end "\0" means every key >= key
        } else {
            prefix_end(&self.prefix)
        };
        (start, end)
    }
}

/// The range end covering every key that starts with `prefix` (etcd's `WithPrefix`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A value of `size` printable bytes, reproducible from `seed`.
pub fn value(size: usize, seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..size as u64)
        .map(|i| ALPHABET[(mix64(seed ^ i.rotate_left(17)) % ALPHABET.len() as u64) as usize])
        .collect()
}

/// `template` with its first [`STAMP_BYTES`] replaced by the time since `epoch` in
/// nanoseconds (hex), so that whoever receives the value (a watcher) can tell when
/// it was sent. Templates shorter than the stamp are extended.
pub fn stamped(template: &[u8], epoch: Instant) -> Vec<u8> {
    let mut v = template.to_vec();
    if v.len() < STAMP_BYTES {
        v.resize(STAMP_BYTES, b'-');
    }
    let ns = epoch.elapsed().as_nanos() as u64;
    v[..STAMP_BYTES].copy_from_slice(format!("{ns:016x}").as_bytes());
    v
}

/// The send time stamped by [`stamped`], nanoseconds since its epoch.
pub fn stamp_of(value: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(value.get(..STAMP_BYTES)?).ok()?;
    u64::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_deterministic_and_sized() {
        let ks = KeySpace::new(8, 1000, false, 7);
        assert_eq!(ks.key(5), ks.key(5));
        assert_eq!(ks.key(5).len(), 8);
        assert!((0..10_000).all(|i| ks.index(i) < 1000));
        let seq = KeySpace::new(4, 10, true, 0);
        assert_eq!(seq.key(12), vec![0, 0, 0, 2]);
        let p = KeySpace::new(2, 10, true, 0).with_prefix(b"/x/");
        assert_eq!(p.key(1), b"/x/\0\x01".to_vec());
        assert_eq!(p.range().1, b"/x0".to_vec());
    }

    #[test]
    fn stamps_roundtrip() {
        let epoch = Instant::now();
        let v = stamped(&value(64, 1), epoch);
        assert_eq!(v.len(), 64);
        assert!(stamp_of(&v).is_some());
        assert_eq!(stamp_of(b"short"), None);
    }

    #[test]
    fn prefix_end_carries() {
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
