//! Pieces every harness shares: owned volume buffers, a byte cursor over the fuzzer's input, a
//! RAM device that refuses (by panicking) to be written outside the image, and tools that
//! re-seal checksums so that mutated structures get past them and reach the logic behind.

use vde_nostd::format::layout::{Layout, SB_MIRROR, SB_PRIMARY};
use vde_nostd::format::slot_index;
use vde_nostd::format::superblock::Superblock;
use vde_nostd::format::wal_record::{BEGIN_MAGIC, COMMIT_MAGIC};
use vde_nostd::format::xxh64;
use vde_nostd::{BlockDevice, BlockNo};

/// Largest image a harness builds (bytes).
pub const MAX_IMAGE: usize = 1 << 20;

/// Device operations after which a harness declares an endless loop.
pub const OP_BUDGET: u64 = 2_000_000;

/// Owned memory for a volume's buffers (shared with the stable tests).
pub use vde_tests::Mem;

/// Reads little-endian fields off the fuzzer's input; past the end everything reads as absent.
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }
    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    /// A little-endian u16 (missing bytes read as zero once at least one is present).
    pub fn u16(&mut self) -> Option<u16> {
        let lo = self.u8()?;
        let hi = self.u8().unwrap_or(0);
        Some(u16::from_le_bytes([lo, hi]))
    }
    /// A little-endian u64 (missing bytes read as zero once at least one is present).
    pub fn u64(&mut self) -> Option<u64> {
        let mut a = [0u8; 8];
        a[0] = self.u8()?;
        for x in a.iter_mut().skip(1) {
            *x = self.u8().unwrap_or(0);
        }
        Some(u64::from_le_bytes(a))
    }
    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let end = self.pos.saturating_add(n).min(self.data.len());
        let s = &self.data[self.pos.min(end)..end];
        self.pos = end;
        s
    }
    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(usize::MAX)
    }
}

/// Error of [`ImageDevice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageError {
    /// A read past the end of the image (refused; counted in `oob_reads`).
    ReadOutOfRange,
}

/// A RAM image as a block device. Writes outside the image, buffers of the wrong length and
/// endless loops (more than [`OP_BUDGET`] operations) are engine bugs: they panic, which the
/// fuzzer reports. Reads outside the image are refused with an error and counted (the engine
/// probes the superblock before it knows the geometry).
pub struct ImageDevice {
    /// The image.
    pub img: Vec<u8>,
    bs: usize,
    /// Blocks written, in order, while `record` is set.
    pub writes: Vec<u64>,
    /// Whether to record writes.
    pub record: bool,
    /// Reads refused because they were past the end.
    pub oob_reads: u64,
    ops: u64,
}

impl ImageDevice {
    /// A device over `img` (its length is cut down to whole blocks).
    pub fn new(mut img: Vec<u8>, bs: usize) -> Self {
        img.truncate(img.len() / bs * bs);
        ImageDevice {
            img,
            bs,
            writes: Vec::new(),
            record: false,
            oob_reads: 0,
            ops: 0,
        }
    }
    fn tick(&mut self) {
        self.ops += 1;
        assert!(
            self.ops <= OP_BUDGET,
            "more than {OP_BUDGET} device operations: endless loop"
        );
    }
}

impl BlockDevice for ImageDevice {
    type Error = ImageError;
    fn block_size(&self) -> usize {
        self.bs
    }
    fn block_count(&self) -> u64 {
        (self.img.len() / self.bs) as u64
    }
    fn read_block(&mut self, block: BlockNo, buf: &mut [u8]) -> Result<(), ImageError> {
        self.tick();
        assert_eq!(buf.len(), self.bs, "read with a buffer of the wrong length");
        if block.0 >= self.block_count() {
            self.oob_reads += 1;
            return Err(ImageError::ReadOutOfRange);
        }
        let at = block.0 as usize * self.bs;
        buf.copy_from_slice(&self.img[at..at + self.bs]);
        Ok(())
    }
    fn write_block(&mut self, block: BlockNo, buf: &[u8]) -> Result<(), ImageError> {
        self.tick();
        assert_eq!(
            buf.len(),
            self.bs,
            "write with a buffer of the wrong length"
        );
        assert!(
            block.0 < self.block_count(),
            "write outside the image: block {} of {}",
            block.0,
            self.block_count()
        );
        if self.record {
            self.writes.push(block.0);
        }
        let at = block.0 as usize * self.bs;
        self.img[at..at + self.bs].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), ImageError> {
        self.tick();
        Ok(())
    }
    fn append(&mut self, block: BlockNo, offset: usize, data: &[u8]) -> Result<(), ImageError> {
        self.tick();
        assert!(
            block.0 < self.block_count() && offset + data.len() <= self.bs,
            "append outside the image: block {} of {}, {}+{} bytes",
            block.0,
            self.block_count(),
            offset,
            data.len()
        );
        if self.record {
            self.writes.push(block.0);
        }
        let at = block.0 as usize * self.bs + offset;
        self.img[at..at + data.len()].copy_from_slice(data);
        Ok(())
    }
    /// Writes part of a block in place, so the engine's in-place home writes, dead slots and
    /// compaction are fuzzed too.
    fn programs_in_place(&self) -> bool {
        true
    }
    fn program(&mut self, block: BlockNo, offset: usize, data: &[u8]) -> Result<(), ImageError> {
        assert!(
            offset > 0 || !data.is_empty(),
            "empty program at a block's start"
        );
        self.append(block, offset, data)
    }
}

/// The block `b` of `img`, if inside.
pub fn block_mut(img: &mut [u8], bs: usize, b: u64) -> Option<&mut [u8]> {
    let at = usize::try_from(b).ok()?.checked_mul(bs)?;
    img.get_mut(at..at.checked_add(bs)?)
}

/// Writes `xxh64(b[..at], 0)` at `b[at..at + 8]`.
pub fn seal_at(b: &mut [u8], at: usize) {
    if let Some(head) = b.get(..at) {
        let sum = xxh64(head, 0);
        if let Some(t) = b.get_mut(at..at + 8) {
            t.copy_from_slice(&sum.to_le_bytes());
        }
    }
}

/// Re-seals a superblock copy.
pub fn reseal_superblock(b: &mut [u8]) {
    seal_at(b, 104);
}

/// Re-seals a WAL header copy.
pub fn reseal_wal_header(b: &mut [u8]) {
    seal_at(b, 136);
}

/// Length of the counter delta at the start of `b` (FORMAT.md, "Counter delta"): a count byte,
/// then that many (index byte, LEB128) entries; `None` if it runs past `b` or is malformed.
pub fn delta_len(b: &[u8]) -> Option<usize> {
    let n = *b.first()? as usize;
    if n > 10 {
        return None;
    }
    let mut at = 1;
    for _ in 0..n {
        at += 1; // the counter index
        let mut groups = 0;
        loop {
            let x = *b.get(at)?;
            at += 1;
            groups += 1;
            if x & 0x80 == 0 {
                break;
            }
            if groups == 10 {
                return None;
            }
        }
    }
    (at <= b.len()).then_some(at)
}

/// Re-seals a structure whose checksum is its block's last 8 bytes (bitmap block, region
/// directory, region pointer table, slot index block).
pub fn reseal_trailer(b: &mut [u8]) {
    let at = b.len().saturating_sub(8);
    seal_at(b, at);
}

/// The superblock copy in block `b` of `img`, decoded after re-sealing a copy of it (so only
/// magic and version must hold).
pub fn sb_unchecked(img: &[u8], bs: usize, b: BlockNo) -> Option<Superblock> {
    let at = usize::try_from(b.0).ok()? * bs;
    let mut blk = img.get(at..at + bs)?.to_vec();
    reseal_superblock(&mut blk);
    Superblock::decode(&blk).ok()
}

/// The superblock (primary, else mirror, checksums ignored) and the layout it implies on a
/// device of `bs`-byte blocks.
pub fn layout_unchecked(img: &[u8], bs: usize) -> Option<(Superblock, Layout)> {
    [SB_PRIMARY, SB_MIRROR].iter().find_map(|b| {
        let sb = sb_unchecked(img, bs, *b)?;
        let l = Layout::compute(bs, sb.block_count, sb.wal_blocks)?;
        Some((sb, l))
    })
}

/// One record of a transaction found in a log, or one range of a RANGES record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRec {
    /// Its log position (byte offset in the WAL area).
    pub at: usize,
    /// Target block.
    pub target: u64,
    /// Byte offset in the block where `data` goes (0 for a whole-block image).
    pub offset: usize,
    /// The bytes (the whole block for an image).
    pub data: Vec<u8>,
}

/// One transaction found in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTxn {
    /// Log position (byte offset in the WAL area) of its begin header.
    pub at: usize,
    /// Bytes from its begin header to the next transaction's.
    pub span: usize,
    /// Epoch from its begin header.
    pub epoch: u64,
    /// Sequence number from its begin header.
    pub seq: u64,
    /// Its records, in log order.
    pub records: Vec<LogRec>,
}

impl LogTxn {
    /// Applies the records to `img` (block `b` at `b * bs`).
    pub fn apply(&self, img: &mut [u8], bs: usize) {
        for r in &self.records {
            let at = r.target as usize * bs + r.offset;
            img[at..at + r.data.len()].copy_from_slice(&r.data);
        }
    }
}

/// What [`walk_log`] does with the hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Stop at the first transaction whose hashes or commit marker do not hold.
    Check,
    /// Rewrite every record hash and the transaction hash so they hold.
    Reseal,
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Walks the transactions of a WAL area's bytes `log` (block size `bs`, volume `salt`) from
/// position 0 as FORMAT.md describes them (without recovery's epoch, sequence and chain
/// expectations): begin header, records (kind 1 whole block, kind 2 byte ranges), commit marker,
/// the next transaction `span` bytes on. Stops after `limit` transactions, at the first begin
/// header that is not one, at a record that cannot be one, at the end of the log, or (in
/// [`Walk::Check`]) at a hash that fails.
pub fn walk_log(log: &mut [u8], bs: usize, salt: u64, mode: Walk, limit: usize) -> Vec<LogTxn> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 24 <= log.len() && out.len() < limit {
        if &log[at..at + 4] != BEGIN_MAGIC.as_slice() {
            break;
        }
        let records = get_u32(log, at + 4);
        let epoch = get_u64(log, at + 8);
        let seq = get_u64(log, at + 16);
        let sd = seq ^ salt;
        let mut th = log[at..at + 24].to_vec();
        let mut recs = Vec::new();
        let mut off = at + 24;
        let mut ok = true;
        for _ in 0..records {
            if off + 16 > log.len() {
                ok = false;
                break;
            }
            // The count is a bound: the commit marker may come sooner.
            if &log[off..off + 4] == COMMIT_MAGIC.as_slice() {
                break;
            }
            let kind = log[off];
            let (o, l) = (
                get_u16(log, off + 2) as usize,
                get_u16(log, off + 4) as usize,
            );
            let mut t = [0u8; 8];
            t[..6].copy_from_slice(&log[off + 6..off + 12]);
            let target = u64::from_le_bytes(t);
            // Kind 1: the whole block; kind 2: `o` ranges of `l` bytes in all, a table of
            // (offset u16, length u16) entries then the bytes; kind 3: the same over zeros.
            let n = match kind {
                1 if o == 0 && l == 0 => bs,
                2 | 3 if o > 0 && l > 0 && l < bs => 4 * o + l,
                _ => {
                    ok = false;
                    break;
                }
            };
            if log[off + 1] != 0 || off + 16 + n + 8 > log.len() {
                ok = false;
                break;
            }
            let h = xxh64(&log[off..off + 16 + n], sd);
            let suffix = off + 16 + n;
            match mode {
                Walk::Reseal => log[suffix..suffix + 8].copy_from_slice(&h.to_le_bytes()),
                Walk::Check => {
                    if get_u64(log, suffix) != h {
                        ok = false;
                        break;
                    }
                }
            }
            th.extend_from_slice(&log[off..suffix + 8]);
            if kind == 1 {
                recs.push(LogRec {
                    at: off,
                    target,
                    offset: 0,
                    data: log[off + 16..suffix].to_vec(),
                });
            } else {
                if kind == 3 {
                    recs.push(LogRec {
                        at: off,
                        target,
                        offset: 0,
                        data: vec![0; bs],
                    });
                }
                let (mut min, mut data) = (0usize, off + 16 + 4 * o);
                for j in 0..o {
                    let e = off + 16 + 4 * j;
                    let (ro, rl) = (get_u16(log, e) as usize, get_u16(log, e + 2) as usize);
                    if rl == 0 || ro < min || ro + rl > bs || data + rl > suffix {
                        ok = false;
                        break;
                    }
                    recs.push(LogRec {
                        at: off,
                        target,
                        offset: ro,
                        data: log[data..data + rl].to_vec(),
                    });
                    min = ro + rl;
                    data += rl;
                }
                if !ok || data != suffix {
                    ok = false;
                    break;
                }
            }
            off = suffix + 8;
        }
        if !ok || off + 16 > log.len() {
            break;
        }
        // Commit marker: magic, span, counter delta, transaction hash.
        let Some(dl) = delta_len(&log[off + 8..]) else {
            break;
        };
        let cl = 16 + dl;
        if off + cl > log.len() {
            break;
        }
        let cm = &mut log[off..off + cl];
        let span = get_u32(cm, 4) as usize;
        th.extend_from_slice(&cm[..8 + dl]);
        let txn_hash = xxh64(&th, sd);
        match mode {
            Walk::Reseal => cm[8 + dl..cl].copy_from_slice(&txn_hash.to_le_bytes()),
            Walk::Check => {
                if &cm[..4] != COMMIT_MAGIC.as_slice() || get_u64(cm, 8 + dl) != txn_hash {
                    break;
                }
            }
        }
        if span < off + cl - at {
            break;
        }
        out.push(LogTxn {
            at,
            span,
            epoch,
            seq,
            records: recs,
        });
        at += span;
    }
    out
}

/// The bytes of the WAL area of `img` under `layout` (clipped to the image).
pub fn log_range(img_len: usize, bs: usize, l: &Layout) -> core::ops::Range<usize> {
    let start = (l.wal_start as usize).saturating_mul(bs).min(img_len);
    let end = (l.wal_start.saturating_add(l.wal_blocks) as usize)
        .saturating_mul(bs)
        .min(img_len);
    start..end
}

/// Re-seals what the `flags` ask for, in dependency order: superblocks first (the others are
/// found through them). Bits: 0x04 superblocks, 0x08 WAL headers, 0x10 bitmap blocks, region
/// directory and pointer table, 0x20 slot index blocks and extent headers, 0x40 the log.
pub fn reseal_image(img: &mut [u8], bs: usize, flags: u8) {
    if flags & 0x04 != 0 {
        for b in [0u64, 1] {
            if let Some(blk) = block_mut(img, bs, b) {
                reseal_superblock(blk);
            }
        }
    }
    let Some((sb, l)) = layout_unchecked(img, bs) else {
        return;
    };
    let nblocks = (img.len() / bs) as u64;
    if flags & 0x08 != 0 {
        for b in [2u64, 3] {
            if let Some(blk) = block_mut(img, bs, b) {
                reseal_wal_header(blk);
            }
        }
    }
    if flags & 0x10 != 0 {
        let end = l.bitmap_start.saturating_add(l.bitmap_blocks).min(nblocks);
        for b in l.bitmap_start..end {
            if let Some(blk) = block_mut(img, bs, b) {
                reseal_trailer(blk);
            }
        }
        for b in [l.regdir, l.rpt] {
            if let Some(blk) = block_mut(img, bs, b) {
                reseal_trailer(blk);
            }
        }
    }
    if flags & 0x20 != 0 {
        // Slot index blocks, extent map blocks and extent headers, wherever they are.
        for b in l.data_start..nblocks {
            if let Some(blk) = block_mut(img, bs, b) {
                let tag = blk
                    .get(bs - 16..bs - 12)
                    .map_or(0, |t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]));
                if blk.starts_with(b"VDESLOTX")
                    || blk.starts_with(b"VDESLOTB")
                    || tag.wrapping_sub(slot_index::EXTENT_MAP_TAG) < 0x1_0000
                {
                    reseal_trailer(blk);
                } else if blk.starts_with(b"VDEOBJX1") {
                    seal_at(blk, 40);
                }
            }
        }
    }
    if flags & 0x40 != 0 {
        let r = log_range(img.len(), bs, &l);
        walk_log(&mut img[r], bs, sb.wal_salt(), Walk::Reseal, usize::MAX);
    }
}

/// A pseudo-random byte stream for payloads (content depends only on the seed).
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Whether `VDE_FUZZ_TRACE` is set: harnesses then print what they do (for replaying an input).
pub fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("VDE_FUZZ_TRACE").is_some())
}

/// Prints a trace line when [`tracing`] is on.
#[macro_export]
macro_rules! trace {
    ($($t:tt)*) => {
        if $crate::common::tracing() {
            eprintln!($($t)*);
        }
    };
}
