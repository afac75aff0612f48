//! The name table as stored in the `names` module's region: keys (1..=[`KEY_MAX`] bytes) mapped
//! to object handles, sorted by key, in a two-level tree: a root block listing leaf blocks by the
//! smallest key each may hold, and leaf blocks holding the entries.
//!
//! Region block 0, the **root**:
//! ```text
//!   0  8  magic "VDENAMES"
//!   8  4  format version (3)
//!  12  2  leaf count L (1 ..= region blocks - 1)
//!  14  2  reserved (0)
//!  16  ..  L directory entries, in key order:
//!          leaf u16 (a region block index, 1 ..= region blocks - 1, all distinct)
//!          separator length u8, separator bytes
//!          (entry 0's separator is empty and stands for "below every other"; the others are
//!          1..=64 bytes, strictly ascending)
//!  ..      zero up to B-8
//! B-8  8  xxh64(bytes 0..B-8, seed 0)
//! ```
//! Leaf `d` (the block the root's entry `d` names) holds every key `k` with
//! `separator(d) <= k < separator(d + 1)` (no upper bound for the last):
//! ```text
//!   0  8  magic "VDENAMEL"
//!   8  4  format version (3)
//!  12  2  entry count n
//!  14  2  bytes of entries E (16 + E <= B - 8)
//!  16  ..  n entries, keys strictly ascending: key length u8 (1..=64), key, handle u64
//!  ..      zero up to B-8
//! B-8  8  xxh64(bytes 0..B-8, seed 0)
//! ```
//! Keys compare as byte strings (a prefix sorts first). Region blocks the root does not name
//! are free leaves; their content is ignored. Every check here is local to one block; that
//! leaves hold the keys their separators promise and that no two entries name one leaf is
//! checked by `Volume::verify`.

use super::codec::{get_u16, get_u64, put_u16, put_u64};
use super::{check_magic, check_sum, check_version, seal_sum, start, DecodeError};

/// Magic of the root block.
pub const ROOT_MAGIC: &[u8; 8] = b"VDENAMES";
/// Magic of a leaf block.
pub const LEAF_MAGIC: &[u8; 8] = b"VDENAMEL";
/// Longest key in bytes.
pub const KEY_MAX: usize = 64;
/// Where entries start in both kinds of block.
pub const HEAD: usize = 16;
/// The count field: offset and length.
pub const COUNT: (usize, usize) = (12, 2);
/// The leaf's entry-bytes field: offset and length.
pub const USED: (usize, usize) = (14, 2);
/// Bytes of the checksum trailer.
pub const SEAL: usize = 8;

/// Bytes of a leaf entry with a key of `key_len` bytes.
pub const fn leaf_entry_size(key_len: usize) -> usize {
    1 + key_len + 8
}

/// Bytes of a root entry with a separator of `sep_len` bytes.
pub const fn root_entry_size(sep_len: usize) -> usize {
    3 + sep_len
}

/// Bytes available for entries in a block of `bs` bytes.
pub fn room(bs: usize) -> usize {
    bs.saturating_sub(HEAD + SEAL)
}

/// Whether `key` is a valid key.
pub fn key_ok(key: &[u8]) -> bool {
    (1..=KEY_MAX).contains(&key.len())
}

/// Writes an empty root naming leaf `leaf`, sealed.
pub fn encode_root(b: &mut [u8], leaf: u16) -> Option<()> {
    start(b, ROOT_MAGIC)?;
    put_u16(b, COUNT.0, 1)?;
    put_u16(b, HEAD, leaf)?;
    *b.get_mut(HEAD + 2)? = 0;
    seal(b)
}

/// Writes an empty leaf, sealed.
pub fn encode_leaf(b: &mut [u8]) -> Option<()> {
    start(b, LEAF_MAGIC)?;
    seal(b)
}

/// Recomputes a block's checksum trailer.
pub fn seal(b: &mut [u8]) -> Option<()> {
    let at = b.len().checked_sub(SEAL)?;
    seal_sum(b, at)
}

/// One root entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// Offset of the entry in the block.
    pub at: usize,
    /// The leaf's region block index.
    pub leaf: u16,
    /// The separator (empty for entry 0).
    pub sep: &'a [u8],
}

impl DirEntry<'_> {
    /// Bytes of the entry.
    pub fn size(&self) -> usize {
        root_entry_size(self.sep.len())
    }
}

/// One leaf entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafEntry<'a> {
    /// Offset of the entry in the block.
    pub at: usize,
    /// The key.
    pub key: &'a [u8],
    /// The raw handle.
    pub handle: u64,
}

impl LeafEntry<'_> {
    /// Bytes of the entry.
    pub fn size(&self) -> usize {
        leaf_entry_size(self.key.len())
    }
    /// Offset of the handle field.
    pub fn handle_at(&self) -> usize {
        self.at + 1 + self.key.len()
    }
}

/// What a checked root holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Root {
    /// Leaf count.
    pub leaves: usize,
    /// End offset of the last entry.
    pub end: usize,
}

/// What a checked leaf holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// Entry count.
    pub count: usize,
    /// End offset of the last entry (`HEAD + E`).
    pub end: usize,
}

/// Checks a root block of a region of `region_blocks` blocks: magic, version, checksum, every
/// entry in bounds with a leaf index in range, separators as the layout says, zero after them.
pub fn check_root(b: &[u8], region_blocks: u64) -> Result<Root, DecodeError> {
    let f = DecodeError::BadField;
    check_magic(b, ROOT_MAGIC)?;
    check_version(b)?;
    let trailer = b.len().checked_sub(SEAL).ok_or(f)?;
    check_sum(b, trailer)?;
    if get_u16(b, 14).ok_or(f)? != 0 {
        return Err(f);
    }
    let leaves = usize::from(get_u16(b, COUNT.0).ok_or(f)?);
    if leaves == 0 || leaves as u64 >= region_blocks {
        return Err(f);
    }
    let mut at = HEAD;
    let mut prev: Option<&[u8]> = None;
    for d in 0..leaves {
        let e = dir_entry_at(b.get(..trailer).ok_or(f)?, at).ok_or(f)?;
        if e.leaf == 0 || u64::from(e.leaf) >= region_blocks {
            return Err(f);
        }
        match (d, prev) {
            (0, _) if !e.sep.is_empty() => return Err(f),
            (0, _) => {}
            (_, p) if !key_ok(e.sep) || p.is_some_and(|p| p >= e.sep) => return Err(f),
            _ => {}
        }
        if d > 0 {
            prev = Some(e.sep);
        }
        at += e.size();
    }
    if !b.get(at..trailer).is_some_and(all_zero) {
        return Err(f);
    }
    Ok(Root { leaves, end: at })
}

/// Key order (the order of byte strings: bytewise, a prefix first), eight bytes at a time: a
/// lookup compares its key with up to a few hundred separators and keys, most of them 8 to 16
/// bytes long, where a call to `memcmp` per comparison costs more than the comparison.
pub fn key_cmp(a: &[u8], b: &[u8]) -> core::cmp::Ordering {
    let n = a.len().min(b.len());
    let (mut x, mut y) = (
        a.get(..n).unwrap_or(&[]).chunks_exact(8),
        b.get(..n).unwrap_or(&[]).chunks_exact(8),
    );
    for (p, q) in x.by_ref().zip(y.by_ref()) {
        let word = |c: &[u8]| c.try_into().map(u64::from_be_bytes).unwrap_or(0);
        let (p, q) = (word(p), word(q));
        if p != q {
            return p.cmp(&q);
        }
    }
    x.remainder()
        .cmp(y.remainder())
        .then_with(|| a.len().cmp(&b.len()))
}

/// A key being looked up, with its first eight bytes as a big-endian word (zero past the key's
/// end): two keys whose words differ are in the order of their words, so most comparisons in a
/// block are one load and one compare of a word, and only equal words compare the whole keys.
#[derive(Debug, Clone, Copy)]
pub struct Probe<'k> {
    key: &'k [u8],
    word: u64,
}

impl<'k> Probe<'k> {
    /// The probe for `key`.
    pub fn new(key: &'k [u8]) -> Self {
        let mut w = [0u8; 8];
        let n = key.len().min(8);
        if let (Some(d), Some(s)) = (w.get_mut(..n), key.get(..n)) {
            d.copy_from_slice(s);
        }
        Probe {
            key,
            word: u64::from_be_bytes(w),
        }
    }

    /// The order of the `len`-byte key at `at` of block `b` against the probe's key (`None` if
    /// the key does not end by `limit`, or if eight bytes from `at` pass the block's end, which
    /// in a checked block they never do: a handle or the checksum follows every key).
    fn cmp_at(&self, b: &[u8], at: usize, len: usize, limit: usize) -> Option<core::cmp::Ordering> {
        if at.checked_add(len)? > limit {
            return None;
        }
        let s = b.get(at..at.checked_add(8)?)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        let w = u64::from_be_bytes(a);
        let w = if len >= 8 {
            w
        } else {
            w & !(u64::MAX >> (8 * len))
        };
        Some(match w.cmp(&self.word) {
            core::cmp::Ordering::Equal => key_cmp(b.get(at..at + len)?, self.key),
            o => o,
        })
    }
}

/// The size every root entry past the first shares, if they all have one (0 if they differ,
/// or if the root has one entry): a note for [`root_find`], taken when [`check_root`] accepts
/// the root.
pub fn root_stride(b: &[u8], root: Root) -> u16 {
    let mut sizes = dir_entries(b, root).skip(1).map(|e| e.size());
    let first = sizes.next().unwrap_or(0);
    if first > 0 && sizes.all(|s| s == first) {
        u16::try_from(first).unwrap_or(0)
    } else {
        0
    }
}

/// The size every leaf entry shares, if they all have one (0 if they differ, or if the leaf is
/// empty): a note for [`leaf_find`], taken when [`check_leaf`] accepts the leaf.
pub fn leaf_stride(b: &[u8], leaf: Leaf) -> u16 {
    let mut sizes = leaf_entries(b, leaf).map(|e| e.size());
    let first = sizes.next().unwrap_or(0);
    if first > 0 && sizes.all(|s| s == first) {
        u16::try_from(first).unwrap_or(0)
    } else {
        0
    }
}

/// In a root [`check_root`] accepted (and unchanged since), the leaf (region block index) of the
/// entry that covers the probe's key: the last entry whose separator is not above the key
/// (entry 0 covers every key below the first separator). `stride` is the root's
/// [`root_stride`]: if the entries past the first share a size, a binary search over them;
/// otherwise a walk. `None` where the block does not read as a checked root does (the caller
/// then reads the table the checked way).
pub fn root_find(b: &[u8], stride: u16, probe: &Probe<'_>) -> Option<u16> {
    let trailer = b.len().checked_sub(SEAL)?;
    let leaves = usize::from(get_u16(b, COUNT.0)?);
    let first = get_u16(b, HEAD)?;
    if leaves == 0 || *b.get(HEAD + 2)? != 0 {
        return None;
    }
    let stride = usize::from(stride);
    if stride > 3 && leaves > 1 {
        // Entries 1.. at `base + i * stride`, `i = d - 1`, each with a `stride - 3`-byte
        // separator; the first `lo` of them are not above the key.
        let (base, len, n) = (HEAD + 3, stride - 3, leaves - 1);
        if base.checked_add(n.checked_mul(stride)?)? > trailer {
            return None;
        }
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let at = base + mid * stride;
            if usize::from(*b.get(at + 2)?) != len {
                return None;
            }
            if probe.cmp_at(b, at + 3, len, trailer)?.is_le() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return match lo {
            0 => Some(first),
            _ => get_u16(b, base + (lo - 1) * stride),
        };
    }
    let mut found = first;
    let mut at = HEAD + 3;
    for _ in 1..leaves {
        let leaf = get_u16(b, at)?;
        let len = usize::from(*b.get(at + 2)?);
        if probe.cmp_at(b, at + 3, len, trailer)?.is_gt() {
            break;
        }
        found = leaf;
        at += 3 + len;
    }
    Some(found)
}

/// In a leaf [`check_leaf`] accepted (and unchanged since), the handle the probe's key names
/// (`Some(None)`: none). `stride` is the leaf's [`leaf_stride`]: if its entries share a size, a
/// binary search; otherwise a walk that stops at the first key not below the probe's. `None`
/// where the block does not read as a checked leaf does (the caller then reads the leaf the
/// checked way).
pub fn leaf_find(b: &[u8], stride: u16, probe: &Probe<'_>) -> Option<Option<u64>> {
    let trailer = b.len().checked_sub(SEAL)?;
    let count = usize::from(get_u16(b, COUNT.0)?);
    let end = HEAD + usize::from(get_u16(b, USED.0)?);
    if end > trailer {
        return None;
    }
    let stride = usize::from(stride);
    if stride > leaf_entry_size(0) {
        let len = stride - leaf_entry_size(0);
        if count.checked_mul(stride)? != end - HEAD {
            return None;
        }
        let (mut lo, mut hi) = (0usize, count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let at = HEAD + mid * stride;
            if usize::from(*b.get(at)?) != len {
                return None;
            }
            match probe.cmp_at(b, at + 1, len, end)? {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return get_u64(b, at + 1 + len).map(Some),
            }
        }
        return Some(None);
    }
    let mut at = HEAD;
    for _ in 0..count {
        let len = usize::from(*b.get(at)?);
        let ord = probe.cmp_at(b, at + 1, len, end)?;
        if ord.is_ge() {
            return match ord.is_eq() {
                true if at + leaf_entry_size(len) <= end => get_u64(b, at + 1 + len).map(Some),
                true => None,
                false => Some(None),
            };
        }
        at += leaf_entry_size(len);
    }
    Some(None)
}

/// What a root that [`check_root`] accepted before holds, read again without the checks (for a
/// block known unchanged since); `None` if its fields do not even fit the block.
pub fn root_summary(b: &[u8]) -> Option<Root> {
    let trailer = b.len().checked_sub(SEAL)?;
    let body = b.get(..trailer)?;
    let leaves = usize::from(get_u16(b, COUNT.0)?);
    let mut at = HEAD;
    for _ in 0..leaves {
        at += dir_entry_at(body, at)?.size();
    }
    Some(Root { leaves, end: at })
}

/// What a leaf that [`check_leaf`] accepted before holds, read again without the checks (for a
/// block known unchanged since); `None` if its fields do not fit the block.
pub fn leaf_summary(b: &[u8]) -> Option<Leaf> {
    let trailer = b.len().checked_sub(SEAL)?;
    let count = usize::from(get_u16(b, COUNT.0)?);
    let end = HEAD + usize::from(get_u16(b, USED.0)?);
    (end <= trailer).then_some(Leaf { count, end })
}

/// Whether every byte is zero (one pass with no early exit, so it compiles to vector code).
fn all_zero(z: &[u8]) -> bool {
    z.iter().fold(0u8, |a, x| a | x) == 0
}

/// The root entry at offset `at` of a block cut before its trailer.
pub fn dir_entry_at(b: &[u8], at: usize) -> Option<DirEntry<'_>> {
    let leaf = get_u16(b, at)?;
    let len = usize::from(*b.get(at + 2)?);
    let sep = b.get(at + 3..at + 3 + len)?;
    Some(DirEntry { at, leaf, sep })
}

/// The entries of a checked root.
pub fn dir_entries(b: &[u8], root: Root) -> impl Iterator<Item = DirEntry<'_>> {
    let body = b.get(..root.end).unwrap_or(&[]);
    let mut at = HEAD;
    (0..root.leaves).map_while(move |_| {
        let e = dir_entry_at(body, at)?;
        at += e.size();
        Some(e)
    })
}

/// Checks a leaf block: magic, version, checksum, the count and byte fields against the entries,
/// key lengths, strictly ascending keys, zero after the entries.
pub fn check_leaf(b: &[u8]) -> Result<Leaf, DecodeError> {
    let f = DecodeError::BadField;
    check_magic(b, LEAF_MAGIC)?;
    check_version(b)?;
    let trailer = b.len().checked_sub(SEAL).ok_or(f)?;
    check_sum(b, trailer)?;
    let count = usize::from(get_u16(b, COUNT.0).ok_or(f)?);
    let end = HEAD + usize::from(get_u16(b, USED.0).ok_or(f)?);
    if end > trailer {
        return Err(f);
    }
    let body = b.get(..end).ok_or(f)?;
    let mut at = HEAD;
    let mut prev: Option<&[u8]> = None;
    for _ in 0..count {
        let e = leaf_entry_at(body, at).ok_or(f)?;
        if !key_ok(e.key) || prev.is_some_and(|p| p >= e.key) {
            return Err(f);
        }
        prev = Some(e.key);
        at += e.size();
    }
    if at != end
        || b.get(end..trailer)
            .is_none_or(|z| z.iter().any(|x| *x != 0))
    {
        return Err(f);
    }
    Ok(Leaf { count, end })
}

/// The leaf entry at offset `at` of a block cut at its entries' end.
pub fn leaf_entry_at(b: &[u8], at: usize) -> Option<LeafEntry<'_>> {
    let len = usize::from(*b.get(at)?);
    let key = b.get(at + 1..at + 1 + len)?;
    let handle = get_u64(b, at + 1 + len)?;
    Some(LeafEntry { at, key, handle })
}

/// The entries of a checked leaf.
pub fn leaf_entries(b: &[u8], leaf: Leaf) -> impl Iterator<Item = LeafEntry<'_>> {
    let body = b.get(..leaf.end).unwrap_or(&[]);
    let mut at = HEAD;
    (0..leaf.count).map_while(move |_| {
        let e = leaf_entry_at(body, at)?;
        at += e.size();
        Some(e)
    })
}

/// Writes a leaf entry at `at` (the bytes must be free).
pub fn put_leaf_entry(b: &mut [u8], at: usize, key: &[u8], handle: u64) -> Option<()> {
    *b.get_mut(at)? = u8::try_from(key.len()).ok()?;
    b.get_mut(at + 1..at + 1 + key.len())?.copy_from_slice(key);
    put_u64(b, at + 1 + key.len(), handle)
}

/// Writes a root entry at `at` (the bytes must be free).
pub fn put_dir_entry(b: &mut [u8], at: usize, leaf: u16, sep: &[u8]) -> Option<()> {
    put_u16(b, at, leaf)?;
    *b.get_mut(at + 2)? = u8::try_from(sep.len()).ok()?;
    b.get_mut(at + 3..at + 3 + sep.len())?.copy_from_slice(sep);
    Some(())
}

/// The header of a new leaf holding `count` entries in `bytes` bytes.
pub fn new_leaf_head(head: &mut [u8; HEAD], count: usize, bytes: usize) -> Option<()> {
    start(head, LEAF_MAGIC)?;
    set_counts(head, count, Some(HEAD + bytes))
}

/// The checksum of a leaf block of `bs` bytes made of `head`, then `body`, then zeros.
pub fn leaf_sum(head: &[u8; HEAD], body: &[u8], bs: usize) -> u64 {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    h.update(head);
    h.update(body);
    let mut rest = bs.saturating_sub(HEAD + SEAL + body.len());
    const Z: [u8; 64] = [0; 64];
    while rest > 0 {
        let n = rest.min(Z.len());
        h.update(Z.get(..n).unwrap_or(&[]));
        rest -= n;
    }
    h.digest()
}

/// Sets a block's count field, and for a leaf (`end = Some`) its entry-bytes field.
pub fn set_counts(b: &mut [u8], count: usize, end: Option<usize>) -> Option<()> {
    put_u16(b, COUNT.0, u16::try_from(count).ok()?)?;
    if let Some(end) = end {
        put_u16(b, USED.0, u16::try_from(end.checked_sub(HEAD)?).ok()?)?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    extern crate std;

    #[test]
    fn key_cmp_is_byte_string_order() {
        let keys: [&[u8]; 12] = [
            b"",
            b"\0",
            b"a",
            b"ab",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefgi",
            b"abcdefghij",
            b"b",
            b"\xff",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
            b"zzzzzzzzzzzzzzzzz",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(key_cmp(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
        // Keys of 0..=20 bytes over a small alphabet, so that long common prefixes, differences
        // in every 8-byte word and in the tail, and prefixes of each other all occur.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut fill = |k: &mut [u8; 20]| {
            let r = next();
            let n = (r % 21) as usize;
            for (i, b) in k.iter_mut().enumerate().take(n) {
                *b = [0u8, 1, 0xFF][((r >> (i * 2 + 5)) % 3) as usize];
            }
            n
        };
        for _ in 0..20_000 {
            let (mut a, mut b) = ([0u8; 20], [0u8; 20]);
            let (na, nb) = (fill(&mut a), fill(&mut b));
            let (a, b) = (&a[..na], &b[..nb]);
            assert_eq!(key_cmp(a, b), a.cmp(b), "{a:?} {b:?}");
        }
    }
    use super::*;

    #[test]
    fn root_and_leaf_round_trip_and_reject_damage() {
        let mut b = [0u8; 512];
        encode_root(&mut b, 1).unwrap();
        let r = check_root(&b, 4).unwrap();
        assert_eq!(
            r,
            Root {
                leaves: 1,
                end: HEAD + 3
            }
        );
        let e: heapless::Vec<DirEntry<'_>, 4> = dir_entries(&b, r).collect();
        assert_eq!(e[0].leaf, 1);
        assert!(e[0].sep.is_empty());
        assert_eq!(
            check_root(&b, 1),
            Err(DecodeError::BadField),
            "leaf 1 outside 1 block"
        );
        let mut bad = b;
        bad[HEAD] = 0; // leaf 0 is the root
        seal(&mut bad).unwrap();
        assert_eq!(check_root(&bad, 4), Err(DecodeError::BadField));
        let mut bad = b;
        bad[100] = 1;
        assert_eq!(check_root(&bad, 4), Err(DecodeError::BadChecksum));

        let mut l = [0u8; 512];
        encode_leaf(&mut l).unwrap();
        assert_eq!(
            check_leaf(&l).unwrap(),
            Leaf {
                count: 0,
                end: HEAD
            }
        );
        let mut at = HEAD;
        for (k, h) in [(&b"a"[..], 7u64), (b"ab", 8), (b"b", 9)] {
            put_leaf_entry(&mut l, at, k, h).unwrap();
            at += leaf_entry_size(k.len());
        }
        set_counts(&mut l, 3, Some(at)).unwrap();
        seal(&mut l).unwrap();
        let leaf = check_leaf(&l).unwrap();
        let keys: heapless::Vec<(&[u8], u64), 4> =
            leaf_entries(&l, leaf).map(|e| (e.key, e.handle)).collect();
        assert_eq!(&keys[..], &[(&b"a"[..], 7), (b"ab", 8), (b"b", 9)]);
        // Out of order, a count that disagrees, a key too long: each refused.
        let mut bad = l;
        bad[HEAD + 1] = b'c';
        seal(&mut bad).unwrap();
        assert_eq!(check_leaf(&bad), Err(DecodeError::BadField));
        let mut bad = l;
        set_counts(&mut bad, 2, Some(at)).unwrap();
        seal(&mut bad).unwrap();
        assert_eq!(check_leaf(&bad), Err(DecodeError::BadField));
        let mut bad = l;
        bad[HEAD] = 65;
        seal(&mut bad).unwrap();
        assert_eq!(check_leaf(&bad), Err(DecodeError::BadField));
        // A leaf staged from its parts has the checksum of the same leaf sealed whole.
        let mut head = [0u8; HEAD];
        new_leaf_head(&mut head, 3, at - HEAD).unwrap();
        assert_eq!(leaf_sum(&head, &l[HEAD..at], 512).to_le_bytes(), l[504..]);
    }

    /// A leaf of `keys` (ascending) in a block of `bs` bytes; handle `i` for key `i`.
    /// The next value of the tests' xorshift generator.
    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// Fills `b` with noise from `x`: any bytes on even rounds, bytes of 0..=3 (many zeros,
    /// small counts) on odd ones.
    fn noise(b: &mut [u8], x: &mut u64, round: u32) {
        for v in b.iter_mut() {
            let r = xorshift(x);
            *v = if round.is_multiple_of(2) {
                r as u8
            } else {
                (r as u8) & 3
            };
        }
    }

    fn leaf_of(keys: &[std::vec::Vec<u8>], bs: usize) -> std::vec::Vec<u8> {
        let mut l = std::vec![0u8; bs];
        encode_leaf(&mut l).unwrap();
        let mut at = HEAD;
        for (i, k) in keys.iter().enumerate() {
            put_leaf_entry(&mut l, at, k, 1000 + i as u64).unwrap();
            at += leaf_entry_size(k.len());
        }
        set_counts(&mut l, keys.len(), Some(at)).unwrap();
        seal(&mut l).unwrap();
        l
    }

    /// A root whose entry `d` names leaf `d + 1` with separator `seps[d - 1]`.
    fn root_of(seps: &[std::vec::Vec<u8>], bs: usize) -> std::vec::Vec<u8> {
        let mut r = std::vec![0u8; bs];
        encode_root(&mut r, 1).unwrap();
        let mut at = HEAD + 3;
        for (d, sep) in seps.iter().enumerate() {
            put_dir_entry(&mut r, at, d as u16 + 2, sep).unwrap();
            at += root_entry_size(sep.len());
        }
        set_counts(&mut r, seps.len() + 1, None).unwrap();
        seal(&mut r).unwrap();
        r
    }

    /// What the walk over a checked leaf finds (the lookup's reference).
    fn leaf_ref(b: &[u8], key: &[u8]) -> Option<u64> {
        let leaf = check_leaf(b).unwrap();
        leaf_entries(b, leaf)
            .find(|e| e.key >= key)
            .filter(|e| e.key == key)
            .map(|e| e.handle)
    }

    /// What the walk over a checked root finds (the lookup's reference).
    fn root_ref(b: &[u8], key: &[u8]) -> u16 {
        let root = check_root(b, 1 << 15).unwrap();
        dir_entries(b, root)
            .enumerate()
            .filter(|(d, e)| *d == 0 || e.sep <= key)
            .last()
            .unwrap()
            .1
            .leaf
    }

    #[test]
    fn in_place_search_finds_what_the_walk_finds() {
        let mut x = 0x0DDB_1A5E_5BAD_5EEDu64;
        let mut next = move || xorshift(&mut x);
        // Keys over a small alphabet (long shared prefixes, prefixes of each other), all of one
        // length (a stride) or of mixed lengths.
        let key = |len: usize, next: &mut dyn FnMut() -> u64| -> std::vec::Vec<u8> {
            (0..len)
                .map(|_| [0u8, 1, 0x7F, 0xFF][(next() % 4) as usize])
                .collect()
        };
        for round in 0..400 {
            let bs = [512usize, 4096][round % 2];
            let fixed = round % 3 != 0;
            let flen = 1 + (next() % 20) as usize;
            let mut keys = std::collections::BTreeSet::new();
            // (There are only 4^len keys of `len` bytes.)
            let n = ((next() % 60) as usize).min(if fixed {
                4usize.pow(flen.min(3) as u32)
            } else {
                60
            });
            while keys.len() < n {
                let len = if fixed {
                    flen
                } else {
                    1 + (next() % 20) as usize
                };
                keys.insert(key(len, &mut next));
            }
            let keys: std::vec::Vec<_> = keys.into_iter().collect();
            let fits = |k: &[std::vec::Vec<u8>], e: fn(usize) -> usize| {
                k.iter().map(|k| e(k.len())).sum::<usize>() <= room(bs)
            };
            let uniform = !keys.is_empty() && keys.iter().all(|k| k.len() == keys[0].len());
            let mut probes: std::vec::Vec<std::vec::Vec<u8>> = keys.clone();
            for _ in 0..40 {
                let len = if fixed && next() % 2 == 0 {
                    flen
                } else {
                    1 + (next() % 22) as usize
                };
                probes.push(key(len, &mut next));
            }
            if fits(&keys, leaf_entry_size) {
                let l = leaf_of(&keys, bs);
                let stride = leaf_stride(&l, check_leaf(&l).unwrap());
                assert_eq!(stride != 0, uniform);
                for p in &probes {
                    let want = leaf_ref(&l, p);
                    assert_eq!(leaf_find(&l, stride, &Probe::new(p)), Some(want), "{p:?}");
                    assert_eq!(leaf_find(&l, 0, &Probe::new(p)), Some(want), "{p:?}");
                }
            }
            if fits(&keys, root_entry_size) {
                let r = root_of(&keys, bs);
                let stride = root_stride(&r, check_root(&r, 1 << 15).unwrap());
                assert_eq!(stride != 0, uniform);
                for p in &probes {
                    let want = root_ref(&r, p);
                    assert_eq!(root_find(&r, stride, &Probe::new(p)), Some(want), "{p:?}");
                    assert_eq!(root_find(&r, 0, &Probe::new(p)), Some(want), "{p:?}");
                }
            }
        }
    }

    #[test]
    fn in_place_search_of_any_bytes_or_a_wrong_note_does_not_panic() {
        let mut x = 0x005E_ED0F_F00D_u64;
        let mut b = [0u8; 512];
        let probes: [&[u8]; 4] = [
            b"\0",
            b"\x01\x02",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            b"abc",
        ];
        for round in 0..4000u32 {
            noise(&mut b, &mut x, round);
            // Plausible counts and sizes now and then.
            if round % 4 == 1 {
                b[12..16].copy_from_slice(&[(x >> 8) as u8 & 63, 0, (x >> 16) as u8, 1]);
            }
            for stride in [0u16, 1, 3, 4, 9, 10, 11, 17, (x >> 40) as u16] {
                for p in probes {
                    let _ = leaf_find(&b, stride, &Probe::new(p));
                    let _ = root_find(&b, stride, &Probe::new(p));
                    let _ = leaf_find(&b[..20], stride, &Probe::new(p));
                    let _ = root_find(&b[..9], stride, &Probe::new(p));
                }
            }
        }
        // A note that does not fit the block (its entries' sizes differ): no wrong answer is
        // given where the sizes are read, and nothing panics.
        let l = leaf_of(&[b"a".to_vec(), b"bb".to_vec(), b"c".to_vec()], 512);
        for stride in [10u16, 11] {
            assert_eq!(leaf_find(&l, stride, &Probe::new(b"bb")), None);
        }
    }

    #[test]
    fn any_bytes_decode_without_panicking() {
        let mut x = 0x1234_5678u64;
        let mut b = [0u8; 512];
        for round in 0..2000u32 {
            noise(&mut b, &mut x, round);
            b[..8].copy_from_slice(if round % 3 == 0 {
                ROOT_MAGIC
            } else {
                LEAF_MAGIC
            });
            b[8..12].copy_from_slice(&2u32.to_le_bytes());
            seal(&mut b).unwrap();
            if let Ok(r) = check_root(&b, 64) {
                assert!(dir_entries(&b, r).count() == r.leaves);
            }
            if let Ok(l) = check_leaf(&b) {
                assert!(leaf_entries(&b, l).count() == l.count);
            }
        }
    }
}
