//! On-disk layout of the state in its one sled tree, and the snapshot format.
//!
//! Keys of the tree, by first byte:
//! - `m`: the meta record: applied index (u64), revision (i64), compact revision (i64), all
//!   big-endian.
//! - `r` + main (8 bytes BE) + sub (8 bytes BE): one revision record (see [`Record`]); the
//!   prefix scan order is revision order.
//!
//! The applied index is persisted in the same batch as the effects of its entry, in one of
//! two places: a command that writes revision records stamps its index into each of them
//! (and does not rewrite `m`, which halves sled's write volume for puts); any other entry
//! (no-op, rejection, lease command, compaction) rewrites `m`. Both are monotonic, so on open
//! the applied index is the larger of `m`'s and the newest record's stamp, and the revision
//! the larger of `m`'s and the newest record's. (A compaction may delete the newest record,
//! a tombstone, but it rewrites `m` in the same batch.)
//! - `l` + lease id (8 bytes BE, sign bit flipped so ids sort numerically): granted TTL (i64)
//!   and last checkpointed remaining TTL (i64).

use gauntlet_api::mvccpb::KeyValue;
use prost::Message;

use super::index::Rev;
use super::StateError;

pub const META_KEY: &[u8] = b"m";
pub const REV_PREFIX: u8 = b'r';
pub const LEASE_PREFIX: u8 = b'l';

/// The meta record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub applied_index: u64,
    pub revision: i64,
    pub compact_revision: i64,
}

impl Meta {
    pub fn encode(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&self.applied_index.to_be_bytes());
        b[8..16].copy_from_slice(&self.revision.to_be_bytes());
        b[16..].copy_from_slice(&self.compact_revision.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Self, StateError> {
        if b.len() != 24 {
            return Err(StateError::Corrupt("meta record length".into()));
        }
        Ok(Meta {
            applied_index: u64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
            revision: i64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
            compact_revision: i64::from_be_bytes(b[16..].try_into().expect("8 bytes")),
        })
    }
}

pub fn rev_key(rev: Rev) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = REV_PREFIX;
    k[1..9].copy_from_slice(&rev.main.to_be_bytes());
    k[9..].copy_from_slice(&rev.sub.to_be_bytes());
    k
}

pub fn decode_rev_key(k: &[u8]) -> Result<Rev, StateError> {
    if k.len() != 17 || k[0] != REV_PREFIX {
        return Err(StateError::Corrupt("revision key".into()));
    }
    Ok(Rev::new(
        i64::from_be_bytes(k[1..9].try_into().expect("8 bytes")),
        i64::from_be_bytes(k[9..].try_into().expect("8 bytes")),
    ))
}

pub fn lease_key(id: i64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = LEASE_PREFIX;
    k[1..].copy_from_slice(&((id as u64) ^ (1 << 63)).to_be_bytes());
    k
}

pub fn decode_lease_key(k: &[u8]) -> Result<i64, StateError> {
    if k.len() != 9 || k[0] != LEASE_PREFIX {
        return Err(StateError::Corrupt("lease key".into()));
    }
    Ok((u64::from_be_bytes(k[1..].try_into().expect("8 bytes")) ^ (1 << 63)) as i64)
}

pub fn encode_lease(granted_ttl: i64, remaining_ttl: i64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&granted_ttl.to_be_bytes());
    b[8..].copy_from_slice(&remaining_ttl.to_be_bytes());
    b
}

pub fn decode_lease(b: &[u8]) -> Result<(i64, i64), StateError> {
    if b.len() != 16 {
        return Err(StateError::Corrupt("lease record length".into()));
    }
    Ok((
        i64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
        i64::from_be_bytes(b[8..].try_into().expect("8 bytes")),
    ))
}

/// One write, as stored under its revision.
///
/// Layout: kind (0 put, 1 tombstone), the raft index of the entry that wrote it (u64 BE),
/// the revision of the key's previous live version (main, sub; `0, 0` when the key was not
/// live before), then the protobuf `KeyValue`. A
/// tombstone's `KeyValue` carries only the key and `mod_revision` (what etcd puts in a delete
/// event). The previous-version pointer lets watch catch-up fill `prev_kv` without the
/// in-memory index; compaction never drops a version that a later record points to (it keeps
/// the newest version at or below the compaction point).
const RECORD_HEADER: usize = 25;

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub tombstone: bool,
    pub applied_index: u64,
    pub prev: Option<Rev>,
    pub kv: KeyValue,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(RECORD_HEADER + self.kv.encoded_len());
        b.push(u8::from(self.tombstone));
        b.extend_from_slice(&self.applied_index.to_be_bytes());
        let p = self.prev.unwrap_or_default();
        b.extend_from_slice(&p.main.to_be_bytes());
        b.extend_from_slice(&p.sub.to_be_bytes());
        self.kv.encode(&mut b).expect("Vec grows");
        b
    }

    pub fn decode(b: &[u8]) -> Result<Self, StateError> {
        if b.len() < RECORD_HEADER || b[0] > 1 {
            return Err(StateError::Corrupt("revision record header".into()));
        }
        let applied_index = u64::from_be_bytes(b[1..9].try_into().expect("8 bytes"));
        let main = i64::from_be_bytes(b[9..17].try_into().expect("8 bytes"));
        let sub = i64::from_be_bytes(b[17..25].try_into().expect("8 bytes"));
        let kv = KeyValue::decode(&b[RECORD_HEADER..])
            .map_err(|e| StateError::Corrupt(format!("revision record: {e}")))?;
        Ok(Record {
            tombstone: b[0] == 1,
            applied_index,
            prev: (main != 0).then_some(Rev::new(main, sub)),
            kv,
        })
    }
}

/// CRC-32C (Castagnoli), the checksum etcd uses for its hashes; table built at compile time.
pub fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    crc = !crc;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Snapshot format: magic, then `(u32 len, key, u32 len, value)` for every tree entry in key
/// order, then the CRC-32C of everything before it.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"GSTATE01";

pub fn encode_snapshot<'a>(entries: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    let mut out = SNAPSHOT_MAGIC.to_vec();
    for (k, v) in entries {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
    let crc = crc32c_update(0, &out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A tree entry borrowed from a snapshot: (key, value).
pub type Entry<'a> = (&'a [u8], &'a [u8]);

pub fn decode_snapshot(data: &[u8]) -> Result<Vec<Entry<'_>>, StateError> {
    let bad = |what: &str| StateError::BadSnapshot(what.to_string());
    if data.len() < SNAPSHOT_MAGIC.len() + 4 || &data[..8] != SNAPSHOT_MAGIC {
        return Err(bad("missing magic"));
    }
    let (body, crc) = data.split_at(data.len() - 4);
    if crc32c_update(0, body) != u32::from_be_bytes(crc.try_into().expect("4 bytes")) {
        return Err(bad("checksum mismatch"));
    }
    let mut rest = &body[8..];
    fn take<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], StateError> {
        let bad = |what: &str| StateError::BadSnapshot(what.to_string());
        if rest.len() < 4 {
            return Err(bad("truncated length"));
        }
        let n = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        if rest.len() < 4 + n {
            return Err(bad("truncated entry"));
        }
        let (v, r) = rest[4..].split_at(n);
        *rest = r;
        Ok(v)
    }
    let mut entries = Vec::new();
    while !rest.is_empty() {
        let k = take(&mut rest)?;
        let v = take(&mut rest)?;
        entries.push((k, v));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_vector() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c_update(0, b"123456789"), 0xE306_9283);
    }

    #[test]
    fn keys_sort_numerically() {
        assert!(lease_key(-5) < lease_key(3));
        assert_eq!(decode_lease_key(&lease_key(-5)).unwrap(), -5);
        assert!(rev_key(Rev::new(2, 9)) < rev_key(Rev::new(3, 0)));
        assert_eq!(
            decode_rev_key(&rev_key(Rev::new(7, 2))).unwrap(),
            Rev::new(7, 2)
        );
    }

    #[test]
    fn snapshot_roundtrip_and_corruption() {
        let entries = [(&b"a"[..], &b"1"[..]), (b"bb", b"")];
        let s = encode_snapshot(entries.iter().copied());
        assert_eq!(decode_snapshot(&s).unwrap(), entries.to_vec());
        let mut bad = s.clone();
        bad[10] ^= 1;
        assert!(decode_snapshot(&bad).is_err());
        assert!(decode_snapshot(&s[..5]).is_err());
    }
}
