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

    #[test]
    fn any_bytes_decode_without_panicking() {
        let mut x = 0x1234_5678u64;
        let mut b = [0u8; 512];
        for round in 0..2000 {
            for v in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = if round % 2 == 0 {
                    x as u8
                } else {
                    (x as u8) & 3
                };
            }
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
