//! The unsynced state of one file: written extents, logical size, and a truncation mark.
//!
//! Worked example. The backing file holds `AAAAAAAA` (8 bytes, durable).
//!
//! ```text
//! write(2, "xy")      extents {2: "xy"}            size 8   zero_from None
//! truncate(4)         extents {2: "xy"}            size 4   zero_from Some(4)
//! truncate(10)        extents {2: "xy"}            size 10  zero_from Some(4)
//! read(0, 10)   ->    "AAxy" + 6 zero bytes: backing bytes at or past 4 are hidden
//! fsync               backing.set_len(4); pwrite(2, "xy"); backing.set_len(10); fsync
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// What a file looks like to readers that the backing file does not (yet) say.
#[derive(Debug, Clone)]
pub(crate) struct Dirty {
    /// The logical size of the file as seen through the mount.
    pub(crate) size: u64,
    /// The size of the backing file when this state was created (it does not change until the
    /// next fsync of this file, which consumes this state).
    pub(crate) backing_size: u64,
    /// Backing bytes at or past this offset are not visible (a truncate went below them).
    pub(crate) zero_from: Option<u64>,
    /// Non-overlapping, non-adjacent written ranges: start offset -> bytes.
    extents: BTreeMap<u64, Vec<u8>>,
    /// Total bytes held in `extents`.
    pub(crate) bytes: u64,
    /// The last write (offset, length), for the torn-write fault.
    pub(crate) last_write: Option<(u64, u64)>,
}

impl Dirty {
    pub(crate) fn new(backing_size: u64) -> Dirty {
        Dirty {
            size: backing_size,
            backing_size,
            zero_from: None,
            extents: BTreeMap::new(),
            bytes: 0,
            last_write: None,
        }
    }

    /// How many bytes a write of `len` bytes at `off` adds to `bytes` (the part not overlapping
    /// bytes already held).
    pub(crate) fn growth_of_write(&self, off: u64, len: u64) -> u64 {
        let end = off + len;
        let mut overlap = 0;
        if let Some((&s, v)) = self.extents.range(..off).next_back() {
            let e = s + v.len() as u64;
            if e > off {
                overlap += e.min(end) - off;
            }
        }
        for (&s, v) in self.extents.range(off..end) {
            let e = s + v.len() as u64;
            overlap += e.min(end) - s;
        }
        len - overlap
    }

    /// Records a write. The caller checked the memory bound with [`Dirty::growth_of_write`].
    pub(crate) fn write(&mut self, off: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = off + data.len() as u64;
        self.bytes += self.growth_of_write(off, data.len() as u64);
        // Start from the extent that reaches `off` (overlapping or adjacent), so that sequential
        // appends grow one buffer in place instead of copying it.
        let mut start = off;
        let mut buf = Vec::new();
        if let Some((&s, v)) = self.extents.range(..=off).next_back() {
            if s + v.len() as u64 >= off {
                start = s;
                buf = self.extents.remove(&s).unwrap_or_default();
            }
        }
        let need = (end - start) as usize;
        if buf.len() < need {
            buf.resize(need, 0);
        }
        let following: Vec<u64> = self.extents.range(start..=end).map(|(k, _)| *k).collect();
        for k in following {
            let v = self.extents.remove(&k).unwrap_or_default();
            let rel = (k - start) as usize;
            let vend = rel + v.len();
            if buf.len() < vend {
                buf.resize(vend, 0);
            }
            buf[rel..vend].copy_from_slice(&v);
        }
        buf[(off - start) as usize..need].copy_from_slice(data);
        self.extents.insert(start, buf);
        self.size = self.size.max(end);
        self.last_write = Some((off, data.len() as u64));
    }

    /// Sets the logical size (truncate or extend). Bytes past a shrink are forgotten, and backing
    /// bytes past it read as zeros from now on.
    pub(crate) fn set_size(&mut self, size: u64) {
        if size < self.size {
            let cut: Vec<u64> = self.extents.range(size..).map(|(k, _)| *k).collect();
            for k in cut {
                if let Some(v) = self.extents.remove(&k) {
                    self.bytes -= v.len() as u64;
                }
            }
            if let Some((&s, v)) = self.extents.range_mut(..size).next_back() {
                let keep = (size - s) as usize;
                if v.len() > keep {
                    self.bytes -= (v.len() - keep) as u64;
                    v.truncate(keep);
                }
            }
            if size < self.backing_size {
                self.zero_from = Some(self.zero_from.map_or(size, |z| z.min(size)));
            }
        }
        self.size = size;
    }

    /// Fills `out` (which starts at `off`) with the merged view; `backing` provides durable bytes.
    pub(crate) fn read(&self, backing: &File, off: u64, out: &mut [u8]) -> io::Result<()> {
        let visible = self
            .zero_from
            .map_or(self.backing_size, |z| z.min(self.backing_size));
        out.fill(0);
        if off < visible {
            let n = ((visible - off) as usize).min(out.len());
            read_full_at(backing, &mut out[..n], off)?;
        }
        self.overlay(off, out);
        Ok(())
    }

    /// Copies the unsynced extents that intersect `[off, off + out.len())` into `out`.
    pub(crate) fn overlay(&self, off: u64, out: &mut [u8]) {
        let end = off + out.len() as u64;
        let first = self
            .extents
            .range(..=off)
            .next_back()
            .map_or(off, |(&s, _)| s);
        for (&s, v) in self.extents.range(first..end) {
            let e = s + v.len() as u64;
            let lo = s.max(off);
            let hi = e.min(end);
            if lo < hi {
                out[(lo - off) as usize..(hi - off) as usize]
                    .copy_from_slice(&v[(lo - s) as usize..(hi - s) as usize]);
            }
        }
    }

    /// Makes the backing file match this state (without fsyncing it).
    pub(crate) fn apply_to(&self, backing: &File) -> io::Result<()> {
        if let Some(z) = self.zero_from {
            if z < self.backing_size {
                backing.set_len(z)?;
            }
        }
        for (&s, v) in &self.extents {
            backing.write_all_at(v, s)?;
        }
        if backing.metadata()?.len() != self.size {
            backing.set_len(self.size)?;
        }
        Ok(())
    }

    /// The bytes of the last write as they read now, clipped to the current size.
    pub(crate) fn last_write_bytes(&self) -> Option<(u64, Vec<u8>)> {
        let (off, len) = self.last_write?;
        let end = (off + len).min(self.size);
        if end <= off {
            return None;
        }
        let mut out = vec![0; (end - off) as usize];
        self.overlay(off, &mut out);
        Some((off, out))
    }
}

/// pread until `out` is full or end of file (the rest stays zero).
fn read_full_at(file: &File, out: &mut [u8], mut off: u64) -> io::Result<()> {
    let mut done = 0;
    while done < out.len() {
        match file.read_at(&mut out[done..], off) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                off += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn backing(content: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        f
    }

    fn view(d: &Dirty, f: &File) -> Vec<u8> {
        let mut out = vec![0xEE; d.size as usize];
        d.read(f, 0, &mut out).unwrap();
        out
    }

    #[test]
    fn worked_example_from_the_module_doc() {
        let f = backing(b"AAAAAAAA");
        let mut d = Dirty::new(8);
        d.write(2, b"xy");
        d.set_size(4);
        d.set_size(10);
        assert_eq!(view(&d, &f), b"AAxy\0\0\0\0\0\0");
        d.apply_to(&f).unwrap();
        let mut out = vec![0; 10];
        f.read_exact_at(&mut out, 0).unwrap();
        assert_eq!(out, b"AAxy\0\0\0\0\0\0");
    }

    #[test]
    fn overlapping_writes_merge_and_count_bytes_once() {
        let f = backing(b"");
        let mut d = Dirty::new(0);
        d.write(0, b"aaaa");
        d.write(8, b"cccc");
        assert_eq!(d.growth_of_write(2, 8), 4);
        d.write(2, b"bbbbbbbb");
        assert_eq!(d.bytes, 12);
        assert_eq!(d.extents.len(), 1);
        assert_eq!(view(&d, &f), b"aabbbbbbbbcc");
        d.write(12, b"d");
        assert_eq!(d.extents.len(), 1, "adjacent write extends the extent");
        assert_eq!(d.last_write_bytes(), Some((12, b"d".to_vec())));
    }

    #[test]
    fn shrink_forgets_bytes_past_the_new_size() {
        let f = backing(b"0123456789");
        let mut d = Dirty::new(10);
        d.write(12, b"zz");
        d.write(3, b"ab");
        d.set_size(4);
        assert_eq!(d.bytes, 1);
        assert_eq!(view(&d, &f), b"012a");
    }
}
