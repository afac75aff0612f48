//! Write-ahead log (format version 2): a log of small delta records, home blocks written only at
//! checkpoint, redo recovery.
//!
//! Protocol (see `FORMAT.md`, "WAL"):
//! 1. **commit** appends the transaction to the log at the device's append granularity
//!    ([`BlockDevice::append`]): a begin header, one record per changed byte range of each block
//!    (or the whole block, an IMAGE), and a commit marker carrying the change of the object
//!    counters (format in [`crate::format::wal_record`] and [`crate::format::counters`]), then
//!    issues **one flush** (or none, in
//!    [`Durability::Deferred`] mode, until [`Wal::sync`]). Home blocks are **not** written: the
//!    dirty-block table (`dirty`, fixed capacity [`MAX_DIRTY`]) remembers, for each block changed
//!    since the last checkpoint, the log position of its newest record, and every record points
//!    at the previous one for the same block. [`Wal::read`] rebuilds a dirty block from its chain
//!    (newest IMAGE, then the byte ranges after it), so every read sees the committed state.
//! 2. **torn home writes** stay recoverable: the first record naming a block after a checkpoint
//!    is an IMAGE (and so is every record after [`MAX_CHAIN`] byte ranges), so a dirty block's
//!    whole content is in the log before its home copy is ever rewritten, and recovery rebuilds
//!    it from the log alone, never from the (possibly torn) home copy. The exception is an
//!    **in-place chain** on a device that programs in place ([`BlockDevice::programs_in_place`]):
//!    byte ranges over pieces that are erased at home, which the checkpoint programs without
//!    erasing, so the home copy's other bytes stay intact; a program a cut may have torn is never
//!    programmed again: the block is **rescued** (copied whole to the log area's last two blocks
//!    with a descriptor, then erased and rewritten), and recovery takes a valid rescue copy over
//!    the home copy. Cold blocks with whole-block chains may be **written back** ahead of the
//!    checkpoint (their chains stay in the log; the next record restarts the chain).
//! 3. **checkpoint** (when the log or the table is full, at unmount, at a mount that recovered
//!    something, or on request) flushes, writes every dirty block home once (however many
//!    commits touched it; the superblock mirror only after a flush that follows its twin),
//!    flushes, then writes the *other* WAL header copy with `checkpoint_seq` = last committed
//!    sequence, the object counters and a new epoch. That header is the completion marker. It is not flushed on its
//!    own: the next log write is preceded by a flush (see 5), so the log space is reused only
//!    once the marker is durable; until then the older header stands and recovery replays what
//!    is already home.
//! 4. **recovery** reads the newest valid header, then walks the log from position 0 expecting
//!    `checkpoint_seq + 1, + 2, ...` in the header's epoch. A transaction counts only if its
//!    begin header, every record hash and its commit marker validate; the first one that does
//!    not ends the log. The valid transactions rebuild the dirty-block table (their chains must
//!    be exactly as a writer makes them, or the log is refused as corrupt), then recovery
//!    checkpoints, so the epoch moves on and nothing written before can ever validate again. A
//!    clean log (nothing replayed, no torn transaction of the current epoch, no newer epoch
//!    seen) is left as it is, so a clean mount writes nothing.
//! 5. **owed flushes**: the payload of a new extent goes straight to blocks that are free in the
//!    committed state ([`Wal::write_unlogged`]), and a checkpoint leaves its marker unflushed.
//!    Such writes are ordered, never proven: the log remembers that one is outstanding, and the
//!    next commit issues a flush *before* its first log write (FORMAT.md, "Unlogged writes"). A
//!    dirty block is never written unlogged (a replay would clobber it):
//!    [`Wal::prepare_unlogged`] checkpoints first if an extent would land on one.
//!
//! Invariants: log space is reused only after what it holds is home and flushed; every append
//! lands on bytes not written since their log block was started, and after a mount or a failed
//! commit the next append starts a fresh block (no append ever follows unverified bytes); the
//! table names exactly the blocks with records since the last checkpoint, each with the position
//! of its newest record and the number of byte-range records after its newest IMAGE; the two
//! headers are never written between the same two flushes; no log write happens while an
//! unlogged write or a completion marker is unflushed.

use crate::block_cache::BlockCache;
use crate::device::PARTIAL_READ_UNIT;
use_mode!(bisync);
use_mode!(device::BlockDevice);
use crate::error::{Error, Structure};
use crate::format::counters::{Counters, Delta};
use crate::format::layout::{Layout, SB_MIRROR, SB_PRIMARY, WAL_HDR_A, WAL_HDR_B};
use crate::format::rescue::{Rescue, LEN as RESCUE_LEN};
use crate::format::wal_header::WalHeader;
use crate::format::wal_record::{
    record_len, seed, worst_txn_bytes, Commit, Range, RecordHeader, RecordKind, TxIdent, BEGIN_LEN,
    COMMIT_MAGIC, COMMIT_MAX, MAX_CHAIN, MAX_DIRTY, MAX_TARGET, NO_PREV, RANGE_ENTRY,
    RECORD_HEADER, RECORD_SUFFIX,
};
use crate::types::{pow2_div, pow2_rem, BlockNo, Epoch, Extent, Seq};
use crate::verifier;
use xxhash_rust::xxh64::Xxh64;

pub use crate::tx_buffer::TxBuf;

// Shared by the blocking and async builds: defined once, in the blocking one.
if_blocking! {
    /// What recovery found at mount.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    #[cfg_attr(feature = "defmt", derive(defmt::Format))]
    pub struct RecoveryReport {
        /// Committed transactions replayed.
        pub replayed: u64,
        /// Whether log content after the last valid transaction looked like a torn or uncommitted
        /// transaction of the current epoch (it was discarded).
        pub discarded_tail: bool,
    }

    /// Counters a caller can read to see what the log cost.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    #[cfg_attr(feature = "defmt", derive(defmt::Format))]
    pub struct WalStats {
        /// Transactions committed since open.
        pub commits: u64,
        /// Checkpoints since open.
        pub checkpoints: u64,
        /// Log blocks started since open (on flash, each is one erase).
        pub log_blocks_written: u64,
        /// Log bytes appended since open, padding included.
        pub log_bytes_written: u64,
        /// Home block writes made by checkpoints since open (on flash, each erases the block).
        pub home_writes: u64,
        /// Home blocks written in place by checkpoints since open (programs only, no erase).
        pub home_programs: u64,
        /// Cold dirty blocks written home ahead of the checkpoint since open (each erases its
        /// block then, not at the checkpoint).
        pub home_writes_ahead: u64,
        /// In-place blocks rescued since open (copied whole to the rescue copy, then erased and
        /// rewritten), after a cut that may have torn their programs.
        pub rescues: u64,
        /// Block reads served from the block cache ([`crate::block_cache`]) since open.
        pub cache_hits: u64,
    }

    /// When a commit becomes durable.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    #[cfg_attr(feature = "defmt", derive(defmt::Format))]
    pub enum Durability {
        /// Durable when `commit` returns: one flush per commit. The default.
        #[default]
        Durable,
        /// Ordered but not yet durable when `commit` returns: commits share the next flush, issued
        /// by [`Wal::sync`] or a checkpoint (group commit). A power cut leaves a prefix of the
        /// committed transactions: never a later one without every earlier one.
        Deferred,
    }
}
if_async! {
    pub use crate::wal::{RecoveryReport, WalStats, Durability};
}

/// A block changed since the last checkpoint: where its newest record is, how many byte-range
/// records follow its newest whole-block record, and whether its chain starts from the home copy
/// (an in-place chain: no whole-block record, only ranges over pieces that are erased at home,
/// `touched` marking those pieces). Nineteen bytes, no padding: the block (48 bits: a target is
/// at most [`MAX_TARGET`]), the head's log position, the chain length with the in-place flag in
/// its top bit, and the touched pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Dirty([u8; DIRTY_ENTRY]);

/// The in-place flag in [`Dirty`]'s chain byte.
const IN_PLACE: u8 = 0x80;

impl Dirty {
    /// An entry; `touched` is `Some(pieces)` for an in-place chain.
    fn with(b: BlockNo, head: u32, chain: u8, touched: Option<u64>) -> Dirty {
        let mut d = [0u8; DIRTY_ENTRY];
        let (blk, rest) = d.split_at_mut(6);
        blk.copy_from_slice(&b.0.to_le_bytes()[..6]);
        let (h, rest) = rest.split_at_mut(4);
        h.copy_from_slice(&head.to_le_bytes());
        let (c, t) = rest.split_at_mut(1);
        let flag = if touched.is_some() { IN_PLACE } else { 0 };
        c.copy_from_slice(&[(chain & !IN_PLACE) | flag]);
        t.copy_from_slice(&touched.unwrap_or(0).to_le_bytes());
        Dirty(d)
    }
    fn block(&self) -> BlockNo {
        let mut b = [0u8; 8];
        b[..6].copy_from_slice(&self.0[..6]);
        BlockNo(u64::from_le_bytes(b))
    }
    fn head(&self) -> u32 {
        u32::from_le_bytes([self.0[6], self.0[7], self.0[8], self.0[9]])
    }
    fn chain(&self) -> u8 {
        self.0[10] & !IN_PLACE
    }
    /// Whether the block was written home ahead of the checkpoint since its last record (its
    /// home copy is its committed content; its records stay in the log until the checkpoint).
    fn written_back(&self) -> bool {
        self.head() == NO_PREV
    }
    /// The pieces an in-place chain wrote, or `None` for a chain from a whole-block record.
    fn in_place(&self) -> Option<u64> {
        let mut t = [0u8; 8];
        t.copy_from_slice(&self.0[11..19]);
        (self.0[10] & IN_PLACE != 0).then_some(u64::from_le_bytes(t))
    }
}

/// Bytes of caller memory the dirty-block table takes: [`MAX_DIRTY`] entries of
/// 19 bytes (carved from the volume's scratch, so that the volume's own state stays
/// small and cheap to move).
pub const DIRTY_TABLE_BYTES: usize = MAX_DIRTY * DIRTY_ENTRY;
/// Bytes per dirty-block table entry.
const DIRTY_ENTRY: usize = 19;

/// The dirty-block table: up to [`MAX_DIRTY`] [`Dirty`] entries, in caller memory.
struct DirtyTable<'b> {
    mem: &'b mut [u8],
    len: usize,
}

impl<'b> DirtyTable<'b> {
    /// An empty table over `mem` (at least [`DIRTY_TABLE_BYTES`]).
    fn new<E>(mem: &'b mut [u8]) -> Result<Self, Error<E>> {
        let mem = mem
            .get_mut(..DIRTY_TABLE_BYTES)
            .ok_or(Error::BufferTooSmall {
                need: DIRTY_TABLE_BYTES,
            })?;
        Ok(DirtyTable { mem, len: 0 })
    }
    fn len(&self) -> usize {
        self.len
    }
    fn is_empty(&self) -> bool {
        self.len == 0
    }
    fn clear(&mut self) {
        self.len = 0;
    }
    fn get(&self, i: usize) -> Option<Dirty> {
        if i >= self.len {
            return None;
        }
        let e = self.mem.get(i * DIRTY_ENTRY..(i + 1) * DIRTY_ENTRY)?;
        let mut d = [0u8; DIRTY_ENTRY];
        d.copy_from_slice(e);
        Some(Dirty(d))
    }
    /// Replaces entry `i`; false if there is none.
    fn set(&mut self, i: usize, d: Dirty) -> bool {
        if i >= self.len {
            return false;
        }
        match self.mem.get_mut(i * DIRTY_ENTRY..(i + 1) * DIRTY_ENTRY) {
            Some(e) => {
                e.copy_from_slice(&d.0);
                true
            }
            None => false,
        }
    }
    /// Appends `d`; false if the table is full.
    fn push(&mut self, d: Dirty) -> bool {
        if self.len >= MAX_DIRTY {
            return false;
        }
        self.len += 1;
        self.set(self.len - 1, d)
    }
    fn iter(&self) -> impl Iterator<Item = Dirty> + '_ {
        (0..self.len).filter_map(|i| self.get(i))
    }
}

/// Bytes the log appender gathers before one device append: a NOR page; appends never cross a
/// multiple of it, so each is one page program.
const APPEND_CHUNK: usize = 256;

/// Zeros to pad the log with, in read-only memory rather than on the stack.
static ZERO_CHUNK: [u8; APPEND_CHUNK] = [0; APPEND_CHUNK];
/// The largest append unit ([`BlockDevice::append_unit`]): a NAND ECC sector.
pub const MAX_APPEND_UNIT: usize = 512;
/// Unchanged bytes no longer than a range entry between two changed runs are logged with them
/// (one range instead of two).
const MERGE_GAP: usize = RANGE_ENTRY + 1;
/// Log blocks kept at the end of the WAL area for a rescue: the copy and its descriptor.
const RESCUE_BLOCKS: u64 = 2;
/// The smallest log read buffer (on a device that reads part of a block).
pub const MIN_LOG_PAGE: usize = 128;

/// A dirty block's records' log positions, newest first (how many: [`Wal::chain`]'s result).
/// Positions only, 4 bytes each: the kinds are read again when the chain is applied, from the
/// log window the record's bytes are read through anyway.
type Chain = [u32; MAX_CHAIN + 1];
/// The overhead of a record: header and hash.
const RECORD_OVERHEAD: usize = RECORD_HEADER + RECORD_SUFFIX;

/// The live state of the write-ahead log.
#[doc(alias = "WalJournaledRegionWriter")]
pub struct Wal<'b> {
    start: u64,
    blocks: u64,
    /// Where commits stop: the log's end, less the rescue reserve when writing home in place.
    cap: u64,
    /// The log's end (a rescue may append up to it).
    cap_all: u64,
    /// The in-place block whose committed content is in the rescue copy (set by a rescue
    /// until the checkpoint that made it ends; see [`Wal::rescue`]).
    rescued: Option<BlockNo>,
    /// The next checkpoint may follow one that was cut or failed while programming in place
    /// (set at a mount that replays the log, and by a checkpoint whose home writes failed).
    redo: bool,
    /// Home blocks are written in place (see "Writing home in place" in the module docs), in
    /// pieces of `piece` bytes.
    in_place: bool,
    piece: usize,
    bs: usize,
    block_count: u64,
    salt: u64,
    mirror: Option<BlockNo>,
    epoch: Epoch,
    checkpoint_seq: Seq,
    last_seq: Seq,
    head: u64,
    generation: u64,
    active_is_b: bool,
    stats: WalStats,
    owed: bool,
    unsynced: bool,
    broken: bool,
    unit: usize,
    durability: Durability,
    counters: Counters,
    dirty: DirtyTable<'b>,
    page: &'b mut [u8],
    page_at: Option<u64>,
    page_off: usize,
    cache: BlockCache<'b>,
}

impl core::fmt::Debug for Wal<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Wal")
            .field("epoch", &self.epoch)
            .field("checkpoint_seq", &self.checkpoint_seq)
            .field("last_seq", &self.last_seq)
            .field("head", &self.head)
            .field("dirty", &self.dirty.len())
            .field("durability", &self.durability)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Wal<'_> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(
            f,
            "Wal {{ epoch: {=u64}, checkpoint_seq: {=u64}, last_seq: {=u64}, head: {=u64}, dirty: {=usize} }}",
            self.epoch.0,
            self.checkpoint_seq.0,
            self.last_seq.0,
            self.head,
            self.dirty.len()
        )
    }
}

/// How a block's whole content is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// The block itself.
    Image,
    /// Its `count` nonzero ranges of `bytes` bytes in all, over a block of zeros.
    Sparse { count: usize, bytes: usize },
}

#[bisync]
impl<'b> Wal<'b> {
    /// A log over `mem` with nothing set up yet ([`Wal::set_up`] gives it its geometry), so that
    /// a volume can build its log where it keeps it: a `Wal` is about half a kilobyte, and each
    /// move of a returned one can take that much stack again.
    pub(crate) fn unset(mem: &'b mut [u8]) -> Wal<'b> {
        Wal {
            start: 0,
            blocks: 0,
            cap: 0,
            cap_all: 0,
            rescued: None,
            redo: false,
            in_place: false,
            piece: 1,
            bs: 1,
            block_count: 0,
            salt: 0,
            mirror: None,
            epoch: Epoch(1),
            checkpoint_seq: Seq(0),
            last_seq: Seq(0),
            head: 0,
            generation: 1,
            active_is_b: false,
            stats: WalStats::default(),
            owed: false,
            unsynced: false,
            broken: false,
            unit: 1,
            durability: Durability::Durable,
            counters: Counters::default(),
            dirty: DirtyTable {
                mem: &mut [],
                len: 0,
            },
            page: mem,
            page_at: None,
            page_off: 0,
            cache: BlockCache::new(&mut [], 1),
        }
    }

    if_async! {
        /// Forgets what the log knows of the device's content, keeping its geometry, memory,
        /// durability and counters: the state [`Wal::set_up`] leaves, before [`Wal::recover`] runs
        /// again (the async volume's recovery after an operation dropped half-way).
        pub(crate) fn forget(&mut self) {
            self.rescued = None;
            self.redo = false;
            self.epoch = Epoch(1);
            self.checkpoint_seq = Seq(0);
            self.last_seq = Seq(0);
            self.head = 0;
            self.generation = 1;
            self.active_is_b = false;
            self.owed = false;
            self.unsynced = false;
            self.broken = false;
            self.counters = Counters::default();
            self.dirty.len = 0;
            self.page_at = None;
            self.page_off = 0;
            self.cache.clear();
        }
    }

    /// [`Wal::new`] in place, on a log from [`Wal::unset`], field by field: the geometry from
    /// `layout` and the device, the memory split into the dirty-block table, the log's read page
    /// and the cache.
    #[inline(never)]
    pub(crate) fn set_up<D: BlockDevice>(
        &mut self,
        dev: &D,
        layout: &Layout,
        salt: u64,
        mirror: Option<BlockNo>,
    ) -> Result<(), Error<D::Error>> {
        let (unit, partial, programs) = (
            dev.append_unit(),
            dev.reads_partial(),
            dev.programs_in_place(),
        );
        let bs = layout.bs();
        let mem = core::mem::take(&mut self.page);
        // The dirty-block table first, then one block for the log's reads; whole blocks past it
        // cache committed blocks.
        let (dmem, page) = mem.split_at_mut(mem.len().min(DIRTY_TABLE_BYTES));
        let dirty = DirtyTable::new(dmem)?;
        let (page, rest) = if page.len() >= bs {
            page.split_at_mut(bs)
        } else {
            (page, &mut [][..])
        };
        let page = page_of(page, bs, partial)?;
        let unit = unit.max(1);
        if !unit.is_power_of_two()
            || unit > MAX_APPEND_UNIT
            || !bs.is_multiple_of(unit)
            || layout.block_count.saturating_sub(1) > MAX_TARGET
        {
            return Err(Error::InvalidGeometry);
        }
        // Log positions are u32 (NO_PREV excluded): a larger WAL area is used up to that.
        let cap_all = layout
            .wal_blocks
            .saturating_mul(bs as u64)
            .min(u64::from(NO_PREV) & !(APPEND_CHUNK as u64 - 1));
        // Writing home in place needs partial reads (to compare a home copy's pieces), pieces
        // of whole program units, and the log's last two blocks kept for a rescue copy (see
        // [`Wal::rescue`]) with room for commits before them.
        let piece = (bs / 64).max(PARTIAL_READ_UNIT).max(unit);
        let in_place = programs
            && partial
            && bs.is_multiple_of(piece)
            && layout.wal_blocks >= 2 + RESCUE_BLOCKS;
        // Where in-place commits stop (any commit, while an in-place chain is dirty).
        let cap = if in_place {
            cap_all.min((layout.wal_blocks - RESCUE_BLOCKS).saturating_mul(bs as u64))
        } else {
            cap_all
        };
        self.start = layout.wal_start;
        self.blocks = layout.wal_blocks;
        self.cap = cap;
        self.cap_all = cap_all;
        self.in_place = in_place;
        self.piece = piece;
        self.bs = bs;
        self.block_count = layout.block_count;
        self.salt = salt;
        self.mirror = mirror;
        self.unit = unit;
        self.dirty = dirty;
        self.page = page;
        self.cache = BlockCache::new(rest, bs);
        Ok(())
    }

    /// Writes fresh WAL headers (both copies) and clears the first log block. The caller flushes.
    pub async fn format<D: BlockDevice>(
        dev: &mut D,
        layout: &Layout,
        scratch: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        let bs = layout.bs();
        let blk = block_of(scratch, bs)?;
        // An earlier volume's log may remain in the area, and a volume formatted with the same
        // identity and time has the same salt: its transactions would validate again from
        // position 0 on (a factory reset would bring the old objects back). The new log starts
        // in an epoch above every epoch the old one may hold: vde writes a log only in its
        // newest header's epoch or one above, so two above the old headers' (and the old log's
        // first begin header's, as recovery counts it) is clear of all of it.
        let mut base = 0u64;
        let mut seen = |epoch: Option<u64>| {
            if let Some(e) = epoch.filter(|&e| e < EPOCH_CEILING / 2) {
                base = base.max(e);
            }
        };
        for at in [WAL_HDR_A, WAL_HDR_B] {
            dev.read_block(at, blk).await.map_err(Error::Device)?;
            seen(WalHeader::decode(blk).ok().map(|h| h.epoch));
        }
        dev.read_block(BlockNo(layout.wal_start), blk)
            .await
            .map_err(Error::Device)?;
        seen(
            blk.get(..BEGIN_LEN)
                .and_then(|b| TxIdent::decode_begin(b).ok())
                .map(|i| i.epoch),
        );
        blk.fill(0);
        dev.write_block(BlockNo(layout.wal_start), blk)
            .await
            .map_err(Error::Device)?;
        let mut h = WalHeader {
            generation: 0,
            epoch: base + 1,
            checkpoint_seq: 0,
            wal_start: layout.wal_start,
            wal_blocks: layout.wal_blocks,
            counters: Counters::default(),
        };
        encode_header(&h, blk)?;
        dev.write_block(WAL_HDR_B, blk)
            .await
            .map_err(Error::Device)?;
        h.generation = 1;
        h.epoch = base + 2;
        encode_header(&h, blk)?;
        dev.write_block(WAL_HDR_A, blk)
            .await
            .map_err(Error::Device)?;
        Ok(())
    }

    fn header(&self) -> WalHeader {
        WalHeader {
            generation: self.generation,
            epoch: self.epoch.0,
            checkpoint_seq: self.checkpoint_seq.0,
            wal_start: self.start,
            wal_blocks: self.blocks,
            counters: self.counters,
        }
    }

    /// A log for `layout` with nothing read yet: [`Wal::recover`] brings it to the device's
    /// state. `page` (the dirty-block table's [`DIRTY_TABLE_BYTES`], then one block; on a device
    /// that reads part of a block, at least [`MIN_LOG_PAGE`] bytes after the table) becomes the
    /// log's own memory for as long as the volume is mounted; whole blocks past that cache
    /// committed blocks.
    pub fn new<D: BlockDevice>(
        dev: &D,
        layout: &Layout,
        salt: u64,
        mirror: Option<BlockNo>,
        page: &'b mut [u8],
    ) -> Result<Wal<'b>, Error<D::Error>> {
        let mut w = Wal::unset(page);
        w.set_up(dev, layout, salt, mirror)?;
        Ok(w)
    }

    /// Recovery, in place on a log from [`Wal::new`]: picks the newest valid header, rebuilds
    /// the dirty-block table from every committed transaction, and checkpoints unless the log
    /// is clean. `scratch` must hold one block.
    #[inline(never)]
    pub async fn recover<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        layout: &Layout,
        scratch: &mut [u8],
    ) -> Result<RecoveryReport, Error<D::Error>> {
        let w = self;
        let a = block_of(scratch, w.bs)?;
        let ha = read_header(dev, WAL_HDR_A, a, layout).await?;
        let hb = read_header(dev, WAL_HDR_B, a, layout).await?;
        let (h, is_b) = verifier::wal_choice(ha, hb, &mut verifier::First::default().sink())
            .ok_or(Error::Corrupt(Structure::WalHeader))?;
        w.generation = h.generation;
        w.epoch = Epoch(h.epoch);
        w.checkpoint_seq = Seq(h.checkpoint_seq);
        w.last_seq = Seq(h.checkpoint_seq);
        w.counters = h.counters;
        w.active_is_b = is_b;
        // What the rest needs of the two headers, kept instead of them (an async build keeps a
        // local live across several `.await`s in its future throughout).
        let epochs = (ha.map(|x| x.epoch), hb.map(|y| y.epoch));
        let ranked = match (ha, hb) {
            (Some(x), Some(y)) => (x.generation, x.epoch) != (y.generation, y.epoch),
            _ => false,
        };
        let mut report = RecoveryReport::default();
        let mut pos = 0u64;
        loop {
            let expected = w.last_seq.next();
            match await_outlined!(w.validate_at(dev, pos, expected))? {
                Validation::Valid(span, delta) => {
                    await_outlined!(w.index_at(dev, pos))?;
                    delta.apply(&mut w.counters);
                    pos = pos.saturating_add(span);
                    w.last_seq = expected;
                    report.replayed += 1;
                }
                Validation::Invalid { ours } => {
                    report.discarded_tail = ours;
                    break;
                }
            }
        }
        w.head = pos;
        // Never reuse an epoch: the next one must be above every epoch that may still have
        // content in the log (a lost newer header held at most its own epoch, and a log that
        // starts with an epoch's begin header was written in that epoch).
        let mut floor = w.epoch;
        match epochs {
            (Some(x), Some(y)) => floor = floor.max(Epoch(x)).max(Epoch(y)),
            _ => floor = floor.next(),
        }
        // A begin header carries no checksum of its own. vde writes one only in the epoch of
        // the newest header, which is the newest valid copy's epoch or, if that copy was lost,
        // one above the other's: an epoch beyond that (or at or above the ceiling) was never
        // written by vde and is ignored rather than allowed to push the volume to the end of
        // the range.
        let newest = [epochs.0, epochs.1]
            .iter()
            .flatten()
            .copied()
            .max()
            .unwrap_or(w.epoch.0);
        let mut first = [0u8; BEGIN_LEN];
        let mut first_epoch = None;
        let mut ignored_first = false;
        if w.read_log(dev, 0, &mut first).await? {
            if let Ok(ident) = TxIdent::decode_begin(&first) {
                if ident.epoch < EPOCH_CEILING && ident.epoch <= newest.saturating_add(1) {
                    floor = floor.max(Epoch(ident.epoch));
                    first_epoch = Some(ident.epoch);
                } else {
                    ignored_first = true;
                }
            }
        }
        // Headers up to 2^63 are readable, but a volume never starts a session at or above
        // the ceiling, so what it writes stays readable however long the session runs.
        if floor.0 >= EPOCH_CEILING {
            return Err(Error::Corrupt(Structure::WalHeader));
        }
        // A clean log needs no checkpoint: the session goes on in the header's epoch, and a
        // clean mount writes nothing. Clean: nothing to replay, no torn transaction of this
        // epoch, both headers valid with the active one strictly newer (a tie must be broken
        // by a new header), no epoch above the header's, and the log's first bytes written in
        // an older epoch or never (so no content of this epoch can lie anywhere in the log:
        // every epoch's transactions start at log position 0). Otherwise recovery
        // checkpoints, so the epoch moves on and nothing written before can validate again.
        let clean = report.replayed == 0
            && !report.discarded_tail
            && ranked
            && floor == w.epoch
            && first_epoch.is_none_or(|e| e < w.epoch.0);
        w.epoch = floor;
        // A rescue copy is made in the epoch a session writes, which is this floor.
        await_outlined!(w.find_rescue(dev, a))?;
        if !clean {
            // Whether a checkpoint was under way when the power went is unknown: assume so.
            w.redo = true;
            if ignored_first {
                // A begin header from an epoch no valid header explains (the headers were
                // damaged or forged) may be the epoch this checkpoint moves to: its log must
                // never validate under the new header. Start the first log block afresh, durably,
                // before the header is written.
                let n = BEGIN_LEN.next_multiple_of(w.unit);
                let mut at = 0;
                while at < n {
                    let k = (n - at).min(APPEND_CHUNK);
                    dev.append(BlockNo(w.start), at, ZERO_CHUNK.get(..k).unwrap_or(&[]))
                        .await
                        .map_err(Error::Device)?;
                    at += k;
                }
                dev.flush().await.map_err(Error::Device)?;
                w.page_at = None;
            }
            await_outlined!(w.force_checkpoint(dev, a))?;
        }
        Ok(report)
    }

    /// Sequence number of the last committed transaction.
    pub fn last_seq(&self) -> Seq {
        self.last_seq
    }
    /// Current epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }
    /// Sequence number up to which everything is applied and durable.
    pub fn checkpoint_seq(&self) -> Seq {
        self.checkpoint_seq
    }
    /// Log blocks in use since the last checkpoint.
    pub fn used_blocks(&self) -> u64 {
        crate::types::pow2_div_ceil(self.head, self.bs as u64)
    }
    /// Log bytes in use since the last checkpoint.
    pub fn used_bytes(&self) -> u64 {
        self.head
    }
    /// Log blocks in all.
    pub fn capacity_blocks(&self) -> u64 {
        self.blocks
    }
    /// Blocks changed since the last checkpoint (their home copies are not written yet).
    pub fn dirty_blocks(&self) -> usize {
        self.dirty.len()
    }
    /// Whether home blocks are written in place on this device (see the module docs): then a
    /// freed slot is best left dead (its bytes stay) until a compaction rewrites its block.
    pub fn writes_in_place(&self) -> bool {
        self.in_place
    }
    /// Whether block `b` has records since the last checkpoint.
    pub fn is_dirty(&self, b: BlockNo) -> bool {
        self.find(b).is_some()
    }
    /// Cost counters.
    pub fn stats(&self) -> WalStats {
        WalStats {
            cache_hits: self.cache.hits(),
            ..self.stats
        }
    }
    /// When commits become durable.
    pub fn durability(&self) -> Durability {
        self.durability
    }
    /// The object counters as of the last commit (the checkpoint's, with every later commit's
    /// delta applied).
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Sets when commits become durable. Switching to [`Durability::Durable`] does not make
    /// earlier deferred commits durable: call [`Wal::sync`].
    pub fn set_durability(&mut self, d: Durability) {
        self.durability = d;
    }

    /// Whether `tx`, with `more` blocks still to stage, fits in the log at all: each block at
    /// its largest right after a checkpoint (a whole-block record; a block staged fresh as its
    /// staged ranges over zeros when that record is the smaller — it is then exactly that or
    /// less), each block still to come whole. A small log (a 64 KiB flash) takes transactions
    /// whose new blocks are mostly zeros.
    pub fn tx_fits<const K: usize>(&self, tx: &TxBuf<'_, K>, more: usize) -> bool {
        let (mut whole, mut partial) = (more, 0u64);
        for b in tx.blocks() {
            let (mut count, mut bytes) = (0usize, 0usize);
            if tx.is_fresh(b) {
                tx.ranges(b, &mut |s, e| {
                    count += 1;
                    bytes += e - s;
                });
            }
            // What `whole` chooses: the nonzero runs of the new content lie inside the staged
            // ranges, and merging runs never lengthens the record.
            if count > 0 && self.worth_ranges(count, bytes) {
                partial =
                    partial.saturating_add((RECORD_OVERHEAD + count * RANGE_ENTRY + bytes) as u64);
            } else {
                whole += 1;
            }
        }
        self.fits_records(tx.len().saturating_add(more), whole, partial)
    }

    /// Whether a transaction of `records` block updates fits in the log at all: at its
    /// largest (whole-block records, the longest counter delta), padded to the append unit.
    pub fn fits(&self, records: usize) -> bool {
        self.fits_records(records, records, 0)
    }

    /// Whether `records` block updates fit, `whole` of them as whole-block records and the
    /// others in `partial` bytes of records, with the longest counter delta and the padding to
    /// the append unit.
    fn fits_records(&self, records: usize, whole: usize, partial: u64) -> bool {
        records <= MAX_DIRTY
            && worst_txn_bytes(whole as u64, self.bs as u64)
                .and_then(|n| n.checked_add(partial))
                .and_then(|n| n.checked_add(self.unit as u64 - 1))
                .is_some_and(|n| n <= self.cap_all)
    }

    /// Whether `b` may be the target of a transaction (inside the volume, outside the WAL).
    pub fn target_ok(&self, b: BlockNo) -> bool {
        // The WAL area is `wal_start .. wal_start + wal_blocks` (the bitmap follows it).
        let in_log = b.0 >= self.start && b.0 - self.start < self.blocks;
        b.0 < self.block_count && b.0 <= MAX_TARGET && b != WAL_HDR_A && b != WAL_HDR_B && !in_log
    }

    fn find(&self, b: BlockNo) -> Option<usize> {
        self.dirty.iter().position(|d| d.block() == b)
    }

    /// The table entry of block `b` if its committed content is not its home copy: dirty and
    /// not written back since its last record.
    fn current(&self, b: BlockNo) -> Option<Dirty> {
        self.entry(b).filter(|d| !d.written_back())
    }

    /// The table entry of block `b`, if it is dirty.
    fn entry(&self, b: BlockNo) -> Option<Dirty> {
        self.dirty.iter().find(|d| d.block() == b)
    }

    /// Reads block `b` as committed: its home copy, or, if it changed since the last
    /// checkpoint, its newest IMAGE in the log with the byte ranges logged after it.
    pub async fn read<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        b: BlockNo,
        out: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        if out.len() != self.bs {
            return Err(Error::BufferTooSmall { need: self.bs });
        }
        if self.cache.read(b, 0, out) {
            return Ok(());
        }
        match self.current(b) {
            Some(d) => self.rebuild(dev, d, out).await?,
            None => dev.read_block(b, out).await.map_err(Error::Device)?,
        }
        self.cache.insert(b, out);
        Ok(())
    }

    /// Reads bytes `offset..offset + out.len()` of block `b` as committed, without reading
    /// the whole block: a block changed since the last checkpoint is rebuilt over that range
    /// only (its IMAGE's bytes there, then the logged ranges that overlap it, each read from the
    /// log alone); a block that did not change is read with one partial device read, if the
    /// device reads part of a block and the range is in [`PARTIAL_READ_UNIT`]s. Otherwise
    /// reads nothing and returns `false`: read the whole block with [`Wal::read`].
    pub async fn read_part<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        b: BlockNo,
        offset: usize,
        out: &mut [u8],
    ) -> Result<bool, Error<D::Error>> {
        if offset.saturating_add(out.len()) > self.bs {
            return Ok(false);
        }
        if self.cache.read(b, offset, out) {
            return Ok(true);
        }
        let partial = dev.reads_partial()
            && offset.is_multiple_of(PARTIAL_READ_UNIT)
            && out.len().is_multiple_of(PARTIAL_READ_UNIT);
        if let Some(d) = self.current(b) {
            if d.in_place().is_some() && !partial {
                return Ok(false); // its home bytes cannot be read over this window
            }
            self.rebuild_part(dev, d, offset, out).await?;
            return Ok(true);
        }
        if partial {
            dev.read_at(b, offset, out).await.map_err(Error::Device)?;
        }
        Ok(partial)
    }

    /// Fills `chain` with the log positions of dirty block `d`'s records, newest first, and
    /// returns how many.
    async fn chain<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        d: Dirty,
        chain: &mut Chain,
    ) -> Result<usize, Error<D::Error>> {
        let corrupt = || Error::Corrupt(Structure::WalRecord);
        let mut n = 0usize;
        let mut pos = d.head();
        loop {
            let h = self.record_header(dev, u64::from(pos)).await?;
            if h.target != d.block().0 {
                return Err(corrupt());
            }
            *chain.get_mut(n).ok_or_else(corrupt)? = pos;
            n += 1;
            match h.kind {
                RecordKind::Image | RecordKind::Sparse { .. } => break,
                // An in-place chain starts from the home copy.
                RecordKind::Ranges { .. } if h.prev == NO_PREV && d.in_place().is_some() => break,
                RecordKind::Ranges { .. } if h.prev < pos => pos = h.prev,
                RecordKind::Ranges { .. } => return Err(corrupt()),
            }
        }
        Ok(n)
    }

    /// Rebuilds bytes `offset..offset + out.len()` of dirty block `d` from its chain of records:
    /// the oldest (an IMAGE or SPARSE record) gives them, each later RANGES record the bytes of
    /// its ranges that fall among them.
    async fn rebuild_part<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        d: Dirty,
        offset: usize,
        out: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        let corrupt = || Error::Corrupt(Structure::WalRecord);
        if self.rescued == Some(d.block()) {
            let (copy, _) = self.rescue_blocks();
            return self.read_window(dev, copy, offset, out).await;
        }
        let mut chain = [0u32; MAX_CHAIN + 1];
        let n = self.chain(dev, d, &mut chain).await?;
        if d.in_place().is_some() {
            // The home copy under the chain's ranges.
            self.read_window(dev, d.block(), offset, out).await?;
        }
        for &p in chain.get(..n).unwrap_or(&[]).iter().rev() {
            let at = u64::from(p).saturating_add(RECORD_HEADER as u64);
            let (count, bytes) = match self.record_header(dev, u64::from(p)).await?.kind {
                RecordKind::Image => {
                    if !self.read_log(dev, at + offset as u64, out).await? {
                        return Err(corrupt());
                    }
                    continue;
                }
                RecordKind::Ranges { count, bytes } => (count, bytes),
                RecordKind::Sparse { count, bytes } => {
                    out.fill(0);
                    (count, bytes)
                }
            };
            self.ranges(dev, at, count, bytes, Some((offset, &mut *out)))
                .await?;
        }
        Ok(())
    }

    /// Reads bytes `offset..offset + out.len()` of block `b` from the device: the whole block,
    /// or (the callers keep other windows to partial-read units) part of it.
    async fn read_window<D: BlockDevice>(
        &self,
        dev: &mut D,
        b: BlockNo,
        offset: usize,
        out: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        if offset == 0 && out.len() == self.bs {
            dev.read_block(b, out).await.map_err(Error::Device)?;
        } else {
            dev.read_at(b, offset, out).await.map_err(Error::Device)?;
        }
        Ok(())
    }

    /// Whether committed blocks are cached (the volume's scratch has room for copies).
    pub fn caches(&self) -> bool {
        self.cache.slots() > 0
    }

    /// Whether block `b`'s committed content is cached and was marked checked since it last
    /// changed ([`Wal::mark_checked_with`]).
    pub fn is_checked(&self, b: BlockNo) -> bool {
        self.cache.is_checked(b)
    }

    /// Marks block `b`'s cached committed content (if cached) as verified by its reader, with
    /// `note` (what the check found), given back by [`Wal::checked_block`].
    pub fn mark_checked_with(&mut self, b: BlockNo, note: u16) {
        self.cache.mark_checked_with(b, note);
    }

    /// Block `b`'s committed content where the block cache holds it, and the note of its check,
    /// if it is cached and was marked checked since it last changed; `None` otherwise (read it
    /// with [`Wal::read`] and check it). Its staged changes, if any, are not in it.
    pub fn checked_block(&mut self, b: BlockNo) -> Option<(&[u8], u16)> {
        self.cache.checked_copy(b)
    }

    /// Dirty block `d`'s committed content: its cached copy, or rebuilt from its chain.
    async fn committed<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        d: Dirty,
        out: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        if self.cache.read(d.block(), 0, out) {
            return Ok(());
        }
        self.rebuild(dev, d, out).await
    }

    if_blocking! {
        /// Rebuilds dirty block `d` from its chain of records.
        fn rebuild<D: BlockDevice>(
            &mut self,
            dev: &mut D,
            d: Dirty,
            out: &mut [u8],
        ) -> Result<(), Error<D::Error>> {
            self.rebuild_part(dev, d, 0, out)
        }
    }
    if_async! {
        /// Rebuilds dirty block `d` from its chain of records: [`Wal::rebuild_part`]'s future
        /// itself (an `async fn` around it would add its arguments to every future above).
        fn rebuild<'a, D: BlockDevice>(
            &'a mut self,
            dev: &'a mut D,
            d: Dirty,
            out: &'a mut [u8],
        ) -> impl core::future::Future<Output = Result<(), Error<D::Error>>> + use<'a, 'b, D> {
            self.rebuild_part(dev, d, 0, out)
        }
    }

    /// Walks the table of the RANGES record whose body starts at `at`, checking it, and copies
    /// the bytes of each range that fall in the window `(offset, out)` (block bytes
    /// `offset..offset + out.len()`) into `out`, if given.
    async fn ranges<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        at: u64,
        count: u16,
        bytes: u16,
        mut window: Option<(usize, &mut [u8])>,
    ) -> Result<u64, Error<D::Error>> {
        let corrupt = || Error::Corrupt(Structure::WalRecord);
        let mut mask = 0u64;
        let mut data_at = at.saturating_add((usize::from(count) * RANGE_ENTRY) as u64);
        let mut min = 0usize;
        let mut total = 0usize;
        for j in 0..u64::from(count) {
            let mut e = [0u8; RANGE_ENTRY];
            if !self
                .read_log(dev, at.saturating_add(j * RANGE_ENTRY as u64), &mut e)
                .await?
            {
                return Err(corrupt());
            }
            let r = Range::decode(&e, min, self.bs).ok_or_else(corrupt)?;
            mask |= pieces(self.piece, usize::from(r.offset), r.end());
            if let Some((offset, out)) = window.as_mut() {
                let (offset, end) = (*offset, *offset + out.len());
                let (lo, hi) = (usize::from(r.offset).max(offset), r.end().min(end));
                if lo < hi {
                    let dst = out.get_mut(lo - offset..hi - offset).ok_or_else(corrupt)?;
                    let src = data_at.saturating_add((lo - usize::from(r.offset)) as u64);
                    if !self.read_log(dev, src, dst).await? {
                        return Err(corrupt());
                    }
                }
            }
            data_at = data_at.saturating_add(u64::from(r.len));
            total += usize::from(r.len);
            min = r.end();
        }
        if total != usize::from(bytes) {
            return Err(corrupt());
        }
        Ok(mask)
    }

    async fn record_header<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        pos: u64,
    ) -> Result<RecordHeader, Error<D::Error>> {
        let corrupt = || Error::Corrupt(Structure::WalRecord);
        let mut hb = [0u8; RECORD_HEADER];
        if !self.read_log(dev, pos, &mut hb).await? {
            return Err(corrupt());
        }
        RecordHeader::decode(&hb, self.bs).map_err(|_| corrupt())
    }

    /// Loads the part of log block `i` that holds byte `off` of it into the page (the whole
    /// block, or an aligned window of the page's length); returns the window's offset. (Reading
    /// only the bytes wanted reads fewer bytes but takes several times the device operations on
    /// a chain; whole windows keep one read per log block a chain touches.)
    async fn load<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        i: u64,
        off: usize,
    ) -> Result<usize, Error<D::Error>> {
        let p = self.page.len().max(1);
        let at = off / p * p;
        if self.page_at == Some(i) && self.page_off == at {
            return Ok(at);
        }
        self.page_at = None;
        let b = BlockNo(self.start.saturating_add(i));
        if p >= self.bs {
            dev.read_block(b, self.page).await.map_err(Error::Device)?;
        } else {
            dev.read_at(b, at, self.page).await.map_err(Error::Device)?;
        }
        self.page_at = Some(i);
        self.page_off = at;
        Ok(at)
    }

    /// Streams `len` log bytes from position `pos` through `f`; `false` past the log's end.
    async fn stream_log<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        mut pos: u64,
        mut len: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<bool, Error<D::Error>> {
        if pos
            .checked_add(len as u64)
            .is_none_or(|end| end > self.cap_all)
        {
            return Ok(false);
        }
        let bs = self.bs as u64;
        while len > 0 {
            let off = pow2_rem(pos, bs) as usize;
            let at = self.load(dev, pow2_div(pos, bs), off).await?;
            let within = off - at;
            let n = (self.page.len() - within).min(len);
            if n == 0 {
                return Err(Error::BufferTooSmall { need: self.bs });
            }
            f(self.page.get(within..within + n).unwrap_or(&[]));
            pos += n as u64;
            len -= n;
        }
        Ok(true)
    }

    if_blocking! {
        /// Reads log bytes at `pos` into `out`; `false` past the log's end.
        fn read_log<D: BlockDevice>(
            &mut self,
            dev: &mut D,
            pos: u64,
            out: &mut [u8],
        ) -> Result<bool, Error<D::Error>> {
            let mut done = 0usize;
            self.stream_log(dev, pos, out.len(), |c| {
                if let Some(d) = out.get_mut(done..done + c.len()) {
                    d.copy_from_slice(c);
                }
                done += c.len();
            })
        }
    }
    if_async! {
        /// Reads log bytes at `pos` into `out`; `false` past the log's end: [`Wal::stream_log`]'s
        /// future itself (an `async fn` around it would add its arguments to every future above).
        fn read_log<'a, D: BlockDevice>(
            &'a mut self,
            dev: &'a mut D,
            pos: u64,
            out: &'a mut [u8],
        ) -> impl core::future::Future<Output = Result<bool, Error<D::Error>>> + use<'a, 'b, D> {
            let mut done = 0usize;
            let len = out.len();
            self.stream_log(dev, pos, len, move |c| {
                if let Some(d) = out.get_mut(done..done + c.len()) {
                    d.copy_from_slice(c);
                }
                done += c.len();
            })
        }
    }

    /// Commits `tx`, which leaves the object counters at `counters`: appends its records and
    /// a commit marker carrying the counters' change, then one flush (in
    /// [`Durability::Durable`] mode). Checkpoints first if the log or the dirty-block table has
    /// no room. `scratch` must hold one block. Returns the transaction's sequence number.
    pub async fn commit<D: BlockDevice, const K: usize>(
        &mut self,
        dev: &mut D,
        tx: &TxBuf<'_, K>,
        scratch: &mut [u8],
        counters: &Counters,
    ) -> Result<Seq, Error<D::Error>> {
        if tx.failed() {
            return Err(Error::TxCapacity);
        }
        if tx.is_empty() && *counters == self.counters {
            return Ok(self.last_seq);
        }
        if !self.tx_fits(tx, 0) {
            return Err(Error::TxTooLarge);
        }
        if tx.blocks().any(|b| !self.target_ok(b)) {
            return Err(Error::OutOfRange);
        }
        let pre = block_of(scratch, self.bs)?;
        if self.broken {
            self.force_checkpoint(dev, pre).await?;
        }
        // Every staged block may need a new table entry: if the table has no room for them
        // all, checkpoint first.
        let new_entries = tx.blocks().filter(|b| !self.is_dirty(*b)).count();
        if self.dirty.len().saturating_add(new_entries) > MAX_DIRTY {
            self.force_checkpoint(dev, pre).await?;
        }
        let delta = Delta::between(&self.counters, counters);
        let r = match self.append_tx(dev, tx, pre, &delta).await {
            // The log ran out in the middle of the transaction (the appender refuses to pass
            // its end; nothing after `head` counts): checkpoint, which starts the log over, and
            // append again. After a checkpoint every transaction fits (`fits` above), so the
            // log's space is used to its end without measuring a transaction beforehand.
            Err(Error::TxTooLarge) if self.head > 0 => {
                self.force_checkpoint(dev, pre).await?;
                self.append_tx(dev, tx, pre, &delta).await
            }
            r => r,
        };
        // A commit that failed part-way leaves the committed content as it was, which the
        // cache holds; it is emptied anyway, so no path of a failure can leave a stale copy.
        let seq = r.inspect_err(|_| self.cache.clear())?;
        // The commit is durable by now; a write-back that fails leaves its block dirty (its
        // chain still in the log), as if it had not been tried, and the error is the
        // commit's (a power cut during it must not be acknowledged as a clean success).
        if self.in_place {
            self.write_back_cold(dev, pre).await?;
        }
        Ok(seq)
    }

    /// Writes one cold dirty block home ahead of the checkpoint, so the checkpoint has fewer
    /// blocks to erase at once (its stall): the whole-chain block (one the checkpoint would
    /// erase and rewrite, not an in-place one) whose newest record is oldest, once the log is
    /// half full and if that record lies more than a quarter of the log back (a block changed
    /// that long ago is unlikely to change again soon; the slot index, changed by every commit,
    /// never qualifies), never a superblock copy. Its chain is durable in the log (flushed first), so a torn write is
    /// rebuilt from the log; the block is then marked written back (reads go to its home
    /// copy, the checkpoint skips it), the write is owed a flush before the next log write, and
    /// the block's next record starts a new chain (`prev` = none) over the home copy it now
    /// has, in place where it only fills erased pieces.
    async fn write_back_cold<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        blk: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        // Only once the log is half full (the checkpoint is near, so a block written back now
        // is unlikely to change again before it), and only blocks unchanged for a quarter of it.
        if self.head < self.cap / 2 {
            return Ok(());
        }
        let old = self.head.saturating_sub(self.cap / 4);
        let cold = self
            .dirty
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.in_place().is_none()
                    && !d.written_back()
                    && u64::from(d.head()) < old
                    && d.block() != SB_PRIMARY
                    && d.block() != SB_MIRROR
                    && Some(d.block()) != self.mirror
            })
            .min_by_key(|(_, d)| d.head());
        let Some((i, d)) = cold else {
            return Ok(());
        };
        self.sync(dev).await?;
        self.committed(dev, d, blk).await?;
        // Owed from before the write: a failed write may still have landed.
        self.owed = true;
        dev.write_block(d.block(), blk)
            .await
            .map_err(Error::Device)?;
        // It stays in the table, so no unlogged write lands on it while its records are in
        // the log (a recovery would replay them over it).
        self.dirty.set(i, Dirty::with(d.block(), NO_PREV, 0, None));
        self.stats.home_writes_ahead += 1;
        Ok(())
    }

    /// Appends `tx` at `head` (see [`Wal::commit`]); fails with [`Error::TxTooLarge`] if it
    /// would pass the log's end.
    async fn append_tx<D: BlockDevice, const K: usize>(
        &mut self,
        dev: &mut D,
        tx: &TxBuf<'_, K>,
        pre: &mut [u8],
        delta: &Delta,
    ) -> Result<Seq, Error<D::Error>> {
        // Unlogged payload this transaction (or an abandoned one) wrote, and the last
        // completion marker, must be durable before any log write: a flush orders them.
        self.settle(dev).await?;
        // From the first append until success, a failure leaves unverified bytes in the log:
        // the next commit starts from a checkpoint.
        self.broken = true;
        let seq = self.last_seq.next();
        let sd = seed(seq.0, self.salt);
        // The begin header's count is a bound: the commit marker may come after fewer records
        // (a staged block that did not change has none).
        let records = tx.len();
        let ident = TxIdent {
            epoch: self.epoch.0,
            seq: seq.0,
            records: u32::try_from(records).map_err(|_| Error::TxTooLarge)?,
        };
        // The rescue reserve past `cap` stays free while an in-place chain may need it: a
        // transaction may write in place only if it ends before `cap` whatever it logs, and
        // may pass `cap` only while no in-place chain is dirty.
        let tight = self.in_place
            && worst_txn_bytes(records as u64, self.bs as u64)
                .and_then(|n| n.checked_add(self.head))
                .is_some_and(|end| end <= self.cap);
        let room = if tight || self.dirty.iter().any(|d| d.in_place().is_some()) {
            self.cap
        } else {
            self.cap_all
        };
        let mut ap = Appender::new(self.start, self.bs, self.head, room, sd);
        let mut begin = [0u8; BEGIN_LEN];
        ident.encode_begin(&mut begin);
        ap.put(dev, &mut self.page_at, &begin, true).await?;
        // The new chain head and length of each staged block, in staging order (`NO_PREV`: no
        // record); they enter the table only once the commit succeeds. A transaction has at
        // most one record per block, so the previous record is always the table's.
        let mut heads = [(NO_PREV, 0u8, None::<u64>); K];
        for (i, b) in tx.blocks().enumerate() {
            let fresh = tx.is_fresh(b);
            let (mut count, mut bytes) = (0usize, 0usize);
            let mut want = 0u64;
            let piece = self.piece;
            tx.ranges(b, &mut |s, e| {
                count += 1;
                bytes += e - s;
                want |= pieces(piece, s, e);
            });
            if count == 0 && !fresh {
                continue; // staged, never changed
            }
            // A block written back ahead of the checkpoint starts over, like a clean one.
            let last = self.current(b);
            // In place: byte ranges over pieces that are erased at home, starting a chain on a
            // clean block or extending an in-place one; the checkpoint programs those pieces
            // and erases nothing, so the home copy's other bytes stay what the chain builds on.
            // A block staged fresh (its content starts from zeros) qualifies if its whole home
            // copy is erased (free space never written since its last erase, as on a new
            // flash), on a device that programs single bytes only: a free block may hold a torn
            // unlogged write, and on flash that programs words a torn word can read erased yet
            // have spent its one program.
            let mut touched = None;
            if tight
                && count > 0
                && count * RANGE_ENTRY + bytes + RECORD_OVERHEAD < self.bs
                && (!fresh || (last.is_none() && self.unit == 1))
                && last.is_none_or(|d| d.in_place().is_some() && usize::from(d.chain()) < MAX_CHAIN)
            {
                let had = last.and_then(|d| d.in_place()).unwrap_or(0);
                let check = if fresh {
                    pieces(piece, 0, self.bs)
                } else {
                    want & !had
                };
                if self.home_erased(dev, b, check, pre).await? {
                    touched = Some(had | want);
                }
            }
            // Otherwise a byte-range record extends the block's chain only after a whole-block
            // record since the checkpoint (so a torn home rewrite is rebuilt from the log
            // alone), on a chain not yet too long to read, and when it costs less than the
            // block.
            let extend = touched.is_some()
                || (!fresh
                    && last.is_some_and(|d| {
                        d.in_place().is_none() && usize::from(d.chain()) < MAX_CHAIN
                    })
                    && self.worth_ranges(count, bytes));
            let (kind, chain) = if extend {
                let count = u16::try_from(count).map_err(|_| Error::TxTooLarge)?;
                let bytes = u16::try_from(bytes).map_err(|_| Error::TxTooLarge)?;
                let chain = last.map_or(0, |d| d.chain().saturating_add(1));
                (RecordKind::Ranges { count, bytes }, chain)
            } else {
                // The whole new content: committed (zeros if fresh) with the ranges over it.
                if fresh || (count == 1 && bytes == self.bs) {
                    pre.fill(0);
                } else {
                    self.read(dev, b, pre).await?;
                }
                tx.overlay(b, 0, pre);
                match self.whole(pre) {
                    Plan::Sparse { count, bytes } => {
                        let count = u16::try_from(count).map_err(|_| Error::TxTooLarge)?;
                        let bytes = u16::try_from(bytes).map_err(|_| Error::TxTooLarge)?;
                        (RecordKind::Sparse { count, bytes }, 0)
                    }
                    Plan::Image => (RecordKind::Image, 0),
                }
            };
            let at = ap.position();
            let h = RecordHeader {
                kind,
                target: b.0,
                prev: last.map_or(NO_PREV, |d| d.head()),
            };
            ap.begin_record(dev, &mut self.page_at, &h).await?;
            if kind.is_whole() {
                emit_whole(&mut ap, dev, &mut self.page_at, pre, kind).await?;
            } else {
                // The range table, then the staged bytes, each in range order.
                let page_at = &mut self.page_at;
                for table in [true, false] {
                    let mut from = 0;
                    while let Some((s, e)) = tx.next_range(b, from) {
                        from = e;
                        if table {
                            let entry = Range {
                                offset: s as u16,
                                len: (e - s) as u16,
                            };
                            ap.body(dev, page_at, &entry.encode()).await?;
                        } else {
                            // Gathered a piece at a time.
                            let mut piece = [0u8; 64];
                            let mut at = s;
                            while at < e {
                                let n = (e - at).min(piece.len());
                                let p = piece.get_mut(..n).unwrap_or(&mut []);
                                tx.overlay(b, at, p);
                                ap.body(dev, page_at, p).await?;
                                at += n;
                            }
                        }
                    }
                }
            }
            ap.end_record(dev, &mut self.page_at).await?;
            if let Some(h) = heads.get_mut(i) {
                *h = (pos32(at)?, chain, touched);
            }
        }
        let span = ap.finish(dev, &mut self.page_at, self.unit, delta).await?;
        if self.durability == Durability::Durable {
            dev.flush().await.map_err(Error::Device)?;
            self.unsynced = false;
        } else {
            self.unsynced = true;
        }
        for (b, &(head, chain, touched)) in tx.blocks().zip(heads.iter()) {
            if head == NO_PREV {
                continue;
            }
            let d = Dirty::with(b, head, chain, touched);
            match self.find(b) {
                Some(i) => {
                    self.dirty.set(i, d);
                }
                None => {
                    if !self.dirty.push(d) {
                        return Err(Error::TxTooLarge);
                    }
                }
            }
        }
        // The cached copies of the blocks it changed take its ranges.
        for b in tx.blocks() {
            let fresh = tx.is_fresh(b);
            self.cache.update(b, |c| {
                if fresh {
                    c.fill(0);
                }
                tx.overlay(b, 0, c);
            });
        }
        self.broken = false;
        self.head = self.head.saturating_add(span);
        self.last_seq = seq;
        delta.apply(&mut self.counters);
        self.stats.commits += 1;
        self.stats.log_bytes_written += span;
        self.stats.log_blocks_written += ap.blocks_started;
        Ok(seq)
    }

    /// The cheaper whole-block record for `new`: its nonzero ranges, or the image.
    fn whole(&self, new: &[u8]) -> Plan {
        let (count, bytes) = measure_diff(new, None);
        if count > 0 && self.worth_ranges(count, bytes) {
            Plan::Sparse { count, bytes }
        } else {
            Plan::Image
        }
    }

    /// Whether `count` ranges of `bytes` bytes are worth a record of their own: it takes less
    /// than half a block.
    fn worth_ranges(&self, count: usize, bytes: usize) -> bool {
        RECORD_OVERHEAD + count * RANGE_ENTRY + bytes < self.bs / 2
    }

    /// Makes every commit so far durable (one flush if any is outstanding).
    pub async fn sync<D: BlockDevice>(&mut self, dev: &mut D) -> Result<(), Error<D::Error>> {
        if self.unsynced || self.owed {
            dev.flush().await.map_err(Error::Device)?;
            self.unsynced = false;
            self.owed = false;
        }
        Ok(())
    }

    /// Writes every dirty block home and frees the log space, if the log holds anything;
    /// otherwise only makes outstanding writes durable. `scratch` must hold one block.
    pub async fn checkpoint<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        scratch: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        if self.head == 0 && self.checkpoint_seq == self.last_seq && !self.broken {
            return self.sync(dev).await;
        }
        self.force_checkpoint(dev, block_of(scratch, self.bs)?)
            .await
    }

    /// Flushes if an unlogged write or a completion marker is unflushed.
    async fn settle<D: BlockDevice>(&mut self, dev: &mut D) -> Result<(), Error<D::Error>> {
        if self.owed {
            dev.flush().await.map_err(Error::Device)?;
            self.owed = false;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Makes `e` ready for [`Wal::write_unlogged`]: makes every commit so far durable if one
    /// is not yet ([`Durability::Deferred`]: the blocks may have been freed by a commit a cut
    /// can still undo, and then they hold that commit's deleted object, which the payload must
    /// not overwrite), and checkpoints if one of its blocks has records since the last
    /// checkpoint (a replay after a crash would overwrite the unlogged content). `scratch` must
    /// hold one block.
    pub async fn prepare_unlogged<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        e: Extent,
        scratch: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        if self.unsynced {
            self.sync(dev).await?;
        }
        let end = e.start.0.saturating_add(e.len);
        if self
            .dirty
            .iter()
            .any(|d| d.block().0 >= e.start.0 && d.block().0 < end)
        {
            self.force_checkpoint(dev, block_of(scratch, self.bs)?)
                .await?;
        }
        Ok(())
    }

    /// Writes `data` to block `b` without logging it: only for blocks that are free in the
    /// committed state and prepared with [`Wal::prepare_unlogged`]. The write is ordered before
    /// the next commit record by a flush (see the module documentation). A dirty block is
    /// refused with [`Error::OutOfRange`], as is one outside the volume or inside the log.
    pub async fn write_unlogged<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        b: BlockNo,
        data: &[u8],
    ) -> Result<(), Error<D::Error>> {
        if !self.target_ok(b) || self.is_dirty(b) || data.len() != self.bs {
            return Err(Error::OutOfRange);
        }
        // Set before the write: a failed write may still have landed.
        self.owed = true;
        self.cache.forget(b);
        dev.write_block(b, data).await.map_err(Error::Device)?;
        Ok(())
    }

    async fn force_checkpoint<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        blk: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        // The log (deferred commits included) is durable before any home copy changes. A
        // durable commit flushed already; a failed one leaves nothing that must be kept.
        self.sync(dev).await?;
        // A checkpoint whose home writes fail part-way is followed by one that must not
        // program what they may have torn.
        let r = self.write_home(dev, blk).await;
        self.redo = r.is_err();
        r?;
        let next = WalHeader {
            generation: self.generation.saturating_add(1),
            epoch: self.epoch.next().0,
            checkpoint_seq: self.last_seq.0,
            ..self.header()
        };
        encode_header(&next, blk)?;
        let target = if self.active_is_b {
            WAL_HDR_A
        } else {
            WAL_HDR_B
        };
        // The marker needs no flush of its own: until it is durable the older header stands and
        // recovery replays what is already home (idempotent), and the next commit flushes
        // before its first log write reuses the log space.
        self.owed = true;
        dev.write_block(target, blk).await.map_err(Error::Device)?;
        self.generation = next.generation;
        self.epoch = Epoch(next.epoch);
        self.checkpoint_seq = self.last_seq;
        self.active_is_b = !self.active_is_b;
        self.head = 0;
        self.rescued = None;
        self.dirty.clear();
        self.broken = false;
        self.stats.checkpoints += 1;
        Ok(())
    }

    /// Writes every dirty block home once, then flushes: a whole-block chain by rewriting the
    /// block, an in-place chain by programming its touched pieces into the home copy, or, if a
    /// torn earlier attempt left the home copy unfit for programs, by a rescue.
    async fn write_home<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        blk: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        // A block a recovery found rescued goes home first, from the rescue copy, before any
        // other rescue may reuse the copy.
        let first = self.rescued;
        if let Some(d) = first.and_then(|b| self.entry(b)) {
            self.rebuild(dev, d, blk).await?;
            dev.write_block(d.block(), blk)
                .await
                .map_err(Error::Device)?;
            dev.flush().await.map_err(Error::Device)?;
            self.stats.home_writes += 1;
        }
        // After a cut (or a failure) in a checkpoint, an in-place block may hold a torn
        // program, and a torn program can leave a unit that reads erased yet may not be
        // programmed again (MCU flash spends its one program; weak bits on NOR). The checkpoint
        // programmed blocks in table order, so the torn one is the last block with a unit that
        // reads programmed, or, if its program left no trace, the next in-place block after it
        // (the first one, if none reads programmed). Those blocks are rescued, never
        // programmed again; the others are programmed as usual.
        let (mut seen, mut suspect) = (0u64, None);
        if self.redo && self.in_place {
            let mut last = None;
            let mut first_in_place = None;
            for i in 0..self.dirty.len() {
                let Some(d) = self.dirty.get(i) else {
                    break;
                };
                let Some(touched) = d.in_place() else {
                    continue;
                };
                if d.written_back() || Some(d.block()) == first {
                    continue;
                }
                first_in_place.get_or_insert(i);
                if !self.home_erased(dev, d.block(), touched, blk).await? {
                    seen |= 1u64 << (i % 64);
                    last = Some(i);
                }
            }
            suspect = match last {
                Some(l) => (l + 1..self.dirty.len()).find(|&i| {
                    self.dirty
                        .get(i)
                        .is_some_and(|d| d.in_place().is_some() && !d.written_back())
                }),
                None => first_in_place,
            };
        }
        // Every dirty block home once; the superblock mirror only after a flush that follows
        // its twin, so one whole copy always stands.
        for mirror_pass in [false, true] {
            if mirror_pass && self.mirror.is_some_and(|m| self.is_dirty(m)) {
                dev.flush().await.map_err(Error::Device)?;
            }
            for i in 0..self.dirty.len() {
                let Some(d) = self.dirty.get(i) else {
                    break;
                };
                if (Some(d.block()) == self.mirror) != mirror_pass
                    || Some(d.block()) == first
                    || d.written_back()
                {
                    continue;
                }
                self.committed(dev, d, blk).await?;
                match d.in_place() {
                    None => {
                        dev.write_block(d.block(), blk)
                            .await
                            .map_err(Error::Device)?;
                        self.stats.home_writes += 1;
                    }
                    Some(touched) => {
                        // A device that does not program in place (an image moved from
                        // flash) rescues every in-place block: its rewrite erases.
                        let torn =
                            seen & (1u64 << (i % 64)) != 0 || suspect == Some(i) || !self.in_place;
                        if !torn && self.write_in_place(dev, d.block(), touched, blk).await? {
                            self.stats.home_programs += 1;
                        } else {
                            self.rescue(dev, d.block(), blk).await?;
                            dev.write_block(d.block(), blk)
                                .await
                                .map_err(Error::Device)?;
                            dev.flush().await.map_err(Error::Device)?;
                            self.stats.home_writes += 1;
                        }
                    }
                }
            }
        }
        if !self.dirty.is_empty() {
            dev.flush().await.map_err(Error::Device)?;
        }
        Ok(())
    }

    /// Whether the home copy of block `b` is erased (zero) over the pieces in `mask`: reads
    /// them into the same places of `buf` (a block).
    async fn home_erased<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        b: BlockNo,
        mask: u64,
        buf: &mut [u8],
    ) -> Result<bool, Error<D::Error>> {
        for (lo, hi) in runs(mask) {
            let (s, e) = (lo * self.piece, hi * self.piece);
            let part = buf.get_mut(s..e).ok_or(Error::BufferTooSmall { need: e })?;
            dev.read_at(b, s, part).await.map_err(Error::Device)?;
            if part.iter().any(|&x| x != 0) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Programs the pieces `touched` of block `b`'s new content `new` into its home copy.
    /// Every unit of them is erased at home unless an earlier attempt programmed it (a
    /// checkpoint cut before its header): then returns `false` and leaves the block for a
    /// rescue, even where the unit reads as its new value, because a cut program may leave
    /// bits that read right now and wrong later.
    async fn write_in_place<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        b: BlockNo,
        touched: u64,
        new: &[u8],
    ) -> Result<bool, Error<D::Error>> {
        let unit = self.unit;
        // The page holds home bytes from here on, not log bytes.
        self.page_at = None;
        for (lo, hi) in runs(touched) {
            let (mut at, end) = (lo * self.piece, hi * self.piece);
            while at < end {
                let n = (end - at).min(self.page.len());
                let home = self
                    .page
                    .get_mut(..n)
                    .ok_or(Error::BufferTooSmall { need: n })?;
                dev.read_at(b, at, home).await.map_err(Error::Device)?;
                // Runs of units to program: erased at home, nonzero in the new content, and
                // the erased-and-staying-so units between them (programming those is a no-op).
                let mut run: Option<usize> = None;
                let mut u = 0usize;
                while u <= n {
                    let (h, c) = match (home.get(u..u + unit), new.get(at + u..at + u + unit)) {
                        (Some(h), Some(c)) if u < n => (h, c),
                        _ => (&[][..], &[][..]),
                    };
                    let erased = !h.is_empty() && h.iter().all(|&x| x == 0);
                    let wanted = erased && (run.is_some() || c.iter().any(|&x| x != 0));
                    if wanted {
                        run.get_or_insert(at + u);
                    } else {
                        if let Some(s) = run.take() {
                            let data = new.get(s..at + u).unwrap_or(&[]);
                            dev.program(b, s, data).await.map_err(Error::Device)?;
                        }
                        if !h.is_empty() && !erased {
                            return Ok(false);
                        }
                    }
                    u += unit;
                }
                at += n;
            }
        }
        Ok(true)
    }

    /// Rescues in-place block `b`, whose home copy a torn program left unfit for programs
    /// (bytes neither erased nor the new ones), before it is erased and rewritten: its content
    /// `new` (as the log and the home copy rebuild it: a torn program changes only bytes of its
    /// own range, which the chain's ranges cover) goes to the rescue copy, the log's
    /// second-to-last block, then, after a flush, a descriptor naming it (epoch, last
    /// sequence, block, hash of the copy) to the last block, flushed too. From then on recovery
    /// rebuilds `b` from the copy, not from its home copy, until the next checkpoint's header
    /// moves the epoch on. Leaves `new` in `blk` again.
    async fn rescue<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        b: BlockNo,
        blk: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        let (copy, desc) = self.rescue_blocks();
        dev.write_block(copy, blk).await.map_err(Error::Device)?;
        let sum = crate::format::xxh64(blk, 0);
        dev.flush().await.map_err(Error::Device)?;
        let r = Rescue {
            epoch: self.epoch.0,
            last_seq: self.last_seq.0,
            block: b.0,
            copy_sum: sum,
        };
        blk.fill(0);
        r.encode(blk)
            .ok_or(Error::BufferTooSmall { need: RESCUE_LEN })?;
        dev.write_block(desc, blk).await.map_err(Error::Device)?;
        dev.flush().await.map_err(Error::Device)?;
        self.rescued = Some(b);
        self.stats.rescues += 1;
        dev.read_block(copy, blk).await.map_err(Error::Device)?;
        Ok(())
    }

    /// The rescue copy's block and its descriptor's: the WAL area's last two blocks.
    fn rescue_blocks(&self) -> (BlockNo, BlockNo) {
        let end = self.start.saturating_add(self.blocks);
        (
            BlockNo(end.saturating_sub(2)),
            BlockNo(end.saturating_sub(1)),
        )
    }

    /// At mount, after the log is read: takes the rescue copy as the content of the block it
    /// names if its descriptor and the copy are whole and it was made for this log (same epoch
    /// and last sequence, an in-place chain of that block). `buf` holds one block.
    async fn find_rescue<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        buf: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        if !self.dirty.iter().any(|d| d.in_place().is_some()) {
            return Ok(());
        }
        let (copy, desc) = self.rescue_blocks();
        dev.read_block(desc, buf).await.map_err(Error::Device)?;
        let Some(r) = Rescue::decode(buf) else {
            return Ok(());
        };
        let b = BlockNo(r.block);
        if r.epoch != self.epoch.0
            || r.last_seq != self.last_seq.0
            || self.entry(b).and_then(|d| d.in_place()).is_none()
        {
            return Ok(());
        }
        dev.read_block(copy, buf).await.map_err(Error::Device)?;
        if crate::format::xxh64(buf, 0) == r.copy_sum {
            self.rescued = Some(b);
        }
        Ok(())
    }

    /// Checks the transaction at log position `pos`: shape, every hash, commit marker.
    #[inline(never)]
    async fn validate_at<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        pos: u64,
        expected: Seq,
    ) -> Result<Validation, Error<D::Error>> {
        let sd = seed(expected.0, self.salt);
        let mut begin = [0u8; BEGIN_LEN];
        if !self.read_log(dev, pos, &mut begin).await? {
            return Ok(Validation::Invalid { ours: false });
        }
        let ident = match TxIdent::decode_begin(&begin) {
            Ok(i) => i,
            Err(_) => return Ok(Validation::Invalid { ours: false }),
        };
        if ident.epoch != self.epoch.0 || ident.seq != expected.0 {
            return Ok(Validation::Invalid { ours: false });
        }
        let torn = Validation::Invalid { ours: true };
        let mut th = Xxh64::new(sd);
        th.update(&begin);
        let mut at = pos.saturating_add(BEGIN_LEN as u64);
        let mut bad_target = false;
        for _ in 0..ident.records {
            let mut hb = [0u8; RECORD_HEADER];
            if !self.read_log(dev, at, &mut hb).await? {
                return Ok(torn);
            }
            if is_commit(&hb) {
                break;
            }
            let Ok(h) = RecordHeader::decode(&hb, self.bs) else {
                return Ok(torn);
            };
            let len = h.data_len(self.bs);
            let mut rh = Xxh64::new(sd);
            rh.update(&hb);
            th.update(&hb);
            let data_at = at.saturating_add(RECORD_HEADER as u64);
            let ok = self
                .stream_log(dev, data_at, len, |c| {
                    rh.update(c);
                    th.update(c);
                })
                .await?;
            let mut suffix = [0u8; RECORD_SUFFIX];
            if !ok
                || !self
                    .read_log(dev, data_at.saturating_add(len as u64), &mut suffix)
                    .await?
            {
                return Ok(torn);
            }
            if u64::from_le_bytes(suffix) != rh.digest() {
                return Ok(torn);
            }
            th.update(&suffix);
            if !self.target_ok(BlockNo(h.target)) {
                bad_target = true;
            }
            at = at.saturating_add(record_len(len) as u64);
        }
        // The marker's length depends on its counter delta: read as much as it may take.
        let mut cm = [0u8; COMMIT_MAX];
        let n = usize::try_from(self.cap_all.saturating_sub(at))
            .map_or(COMMIT_MAX, |r| r.min(COMMIT_MAX));
        let cm = cm.get_mut(..n).unwrap_or(&mut []);
        if !self.read_log(dev, at, cm).await? {
            return Ok(torn);
        }
        let Ok((c, n)) = Commit::decode(cm) else {
            return Ok(torn);
        };
        th.update(cm.get(..n).unwrap_or(&[]));
        if th.digest() != c.txn_hash {
            return Ok(torn);
        }
        let len = at.saturating_add((n + 8) as u64) - pos;
        let span = u64::from(c.span);
        if bad_target
            || span < len
            || span - len >= MAX_APPEND_UNIT as u64
            || pos.saturating_add(span) > self.cap_all
        {
            // Every hash holds, yet a record aims outside the volume or into the log itself, or
            // the next transaction would start where none can: this was never written by vde.
            // Refuse rather than guess.
            return Err(Error::Corrupt(Structure::WalRecord));
        }
        Ok(Validation::Valid(span, c.delta))
    }

    /// Adds the records of the (validated) transaction at `pos` to the dirty-block table. Their
    /// chains must be exactly what a writer makes, or the log is refused.
    #[inline(never)]
    async fn index_at<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        pos: u64,
    ) -> Result<(), Error<D::Error>> {
        let corrupt = || Error::Corrupt(Structure::WalRecord);
        let mut begin = [0u8; BEGIN_LEN];
        self.read_log(dev, pos, &mut begin).await?;
        let records = TxIdent::decode_begin(&begin).map_or(0, |i| i.records);
        let mut at = pos.saturating_add(BEGIN_LEN as u64);
        for _ in 0..records {
            let mut hb = [0u8; RECORD_HEADER];
            if !self.read_log(dev, at, &mut hb).await? || is_commit(&hb) {
                break;
            }
            let h = RecordHeader::decode(&hb, self.bs).map_err(|_| corrupt())?;
            let here = pos32(at)?;
            let b = BlockNo(h.target);
            let mut mask = 0u64;
            if let RecordKind::Ranges { count, bytes } | RecordKind::Sparse { count, bytes } =
                h.kind
            {
                let body = at.saturating_add(RECORD_HEADER as u64);
                mask = self.ranges(dev, body, count, bytes, None).await?;
            }
            let whole = h.kind.is_whole();
            match self.find(b) {
                None => {
                    // A chain starts with a whole-block record, or with ranges over the home
                    // copy (written by a device that writes home in place; any device replays
                    // it, and one that does not write in place rescues the block).
                    if h.prev != NO_PREV {
                        return Err(corrupt());
                    }
                    let touched = (!whole).then_some(mask);
                    if !self.dirty.push(Dirty::with(b, here, 0, touched)) {
                        return Err(corrupt());
                    }
                }
                Some(i) if h.prev == NO_PREV => {
                    // A new chain: the writer wrote the block home (and flushed) since its
                    // last record, so the earlier records no longer count for it.
                    if !self
                        .dirty
                        .set(i, Dirty::with(b, here, 0, (!whole).then_some(mask)))
                    {
                        return Err(corrupt());
                    }
                }
                Some(i) => {
                    let d = self.dirty.get(i).ok_or_else(corrupt)?;
                    if h.prev != d.head() {
                        return Err(corrupt());
                    }
                    let (chain, touched) = if whole {
                        (0, None)
                    } else {
                        (d.chain().saturating_add(1), d.in_place().map(|t| t | mask))
                    };
                    if usize::from(chain) > MAX_CHAIN {
                        return Err(corrupt());
                    }
                    self.dirty.set(i, Dirty::with(b, here, chain, touched));
                }
            }
            at = at.saturating_add(record_len(h.data_len(self.bs)) as u64);
        }
        Ok(())
    }
}

enum Validation {
    Valid(u64, Delta),
    Invalid { ours: bool },
}

/// Whether the bytes where a record could start are the commit marker (a record starts with
/// its kind, 1 ..= 3; the marker with its magic).
fn is_commit(b: &[u8]) -> bool {
    b.get(..4) == Some(COMMIT_MAGIC.as_slice())
}

fn pos32<E>(p: u64) -> Result<u32, Error<E>> {
    u32::try_from(p)
        .ok()
        .filter(|p| *p != NO_PREV)
        .ok_or(Error::TxTooLarge)
}

/// Appends the body of a whole-block record of `new`: the block (IMAGE), or its nonzero
/// ranges' table and then their bytes (SPARSE).
#[bisync]
async fn emit_whole<D: BlockDevice>(
    ap: &mut Appender,
    dev: &mut D,
    page_at: &mut Option<u64>,
    new: &[u8],
    kind: RecordKind,
) -> Result<(), Error<D::Error>> {
    if kind == RecordKind::Image {
        return ap.body(dev, page_at, new).await;
    }
    for table in [true, false] {
        let mut from = 0;
        while let Some((s, e)) = next_diff(new, None, from) {
            from = e;
            if table {
                let entry = Range {
                    offset: s as u16,
                    len: (e - s) as u16,
                };
                ap.body(dev, page_at, &entry.encode()).await?;
            } else {
                ap.body(dev, page_at, new.get(s..e).unwrap_or(&[])).await?;
            }
        }
    }
    Ok(())
}

/// The mask of the `piece`-byte pieces that bytes `s..e` of a block fall in (a block has at
/// most 64 pieces).
fn pieces(piece: usize, s: usize, e: usize) -> u64 {
    if e <= s || piece == 0 {
        return 0;
    }
    let (lo, hi) = (s / piece, (e - 1) / piece);
    let upto = |n: usize| {
        if n >= 63 {
            u64::MAX
        } else {
            (1u64 << (n + 1)) - 1
        }
    };
    upto(hi) & !(if lo == 0 { 0 } else { upto(lo - 1) })
}

/// The runs of set bits of `mask`, as `(first, end)` piece numbers, in order.
fn runs(mask: u64) -> impl Iterator<Item = (usize, usize)> {
    let mut m = mask;
    core::iter::from_fn(move || {
        if m == 0 {
            return None;
        }
        let lo = m.trailing_zeros() as usize;
        let len = (!(m >> lo)).trailing_zeros() as usize;
        m &= if lo + len >= 64 {
            0
        } else {
            !((1u64 << (lo + len)) - 1)
        };
        Some((lo, lo + len))
    })
}

/// The number of ranges [`diff_ranges`] gives and the bytes they cover.
fn measure_diff(new: &[u8], old: Option<&[u8]>) -> (usize, usize) {
    let (mut count, mut bytes) = (0usize, 0usize);
    diff_ranges(new, old, &mut |s, e| {
        count += 1;
        bytes += e - s;
    });
    (count, bytes)
}

/// Calls `f(start, end)` for every run of bytes where `new` differs from `old` (a block of
/// zeros if `None`), runs closer than [`MERGE_GAP`] merged: [`next_diff`] from 0 on.
pub(crate) fn diff_ranges(new: &[u8], old: Option<&[u8]>, f: &mut dyn FnMut(usize, usize)) {
    let mut from = 0;
    while let Some((s, e)) = next_diff(new, old, from) {
        f(s, e);
        from = e;
    }
}

/// The first run at or after byte `from` where `new` differs from `old` (a block of zeros if
/// `None`), with the runs that follow it closer than [`MERGE_GAP`] merged in; `None` past the
/// last. Called again from the run's end, it gives the next (an iterator the async log can
/// `.await` inside, where a callback could not).
pub(crate) fn next_diff(new: &[u8], old: Option<&[u8]>, from: usize) -> Option<(usize, usize)> {
    const ZEROS: [u8; 8] = [0; 8];
    let n = old.map_or(new.len(), |o| new.len().min(o.len()));
    let old_at = |i: usize| old.map_or(Some(&0), |o| o.get(i));
    let old8 = |i: usize| old.map_or(Some(&ZEROS[..]), |o| o.get(i..i + 8));
    let mut cur: Option<(usize, usize)> = None;
    let mut i = from;
    while i < n {
        if i + 8 <= n && new.get(i..i + 8) == old8(i) {
            i += 8;
            continue;
        }
        if new.get(i) == old_at(i) {
            i += 1;
            continue;
        }
        let s = i;
        while i < n && new.get(i) != old_at(i) {
            i += 1;
        }
        cur = match cur {
            Some((cs, ce)) if s - ce < MERGE_GAP => Some((cs, i)),
            Some(run) => return Some(run),
            None => Some((s, i)),
        };
    }
    cur
}

/// Appends a transaction to the log in [`APPEND_CHUNK`]-aligned pieces, hashing everything
/// before the commit marker's hash.
struct Appender {
    start: u64,
    bs: usize,
    cap: u64,
    pos: u64,
    first: u64,
    buf: [u8; APPEND_CHUNK],
    len: usize,
    hasher: Xxh64,
    rh: Xxh64,
    sd: u64,
    blocks_started: u64,
}

#[bisync]
impl Appender {
    fn new(start: u64, bs: usize, pos: u64, cap: u64, sd: u64) -> Appender {
        Appender {
            start,
            bs,
            cap,
            pos,
            first: pos,
            buf: [0; APPEND_CHUNK],
            len: 0,
            hasher: Xxh64::new(sd),
            rh: Xxh64::new(sd),
            sd,
            blocks_started: 0,
        }
    }
    /// The log position of the next byte.
    fn position(&self) -> u64 {
        self.pos.saturating_add(self.len as u64)
    }
    async fn put<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        page_at: &mut Option<u64>,
        mut src: &[u8],
        hash: bool,
    ) -> Result<(), Error<D::Error>> {
        if self.position().saturating_add(src.len() as u64) > self.cap {
            return Err(Error::TxTooLarge);
        }
        if hash {
            self.hasher.update(src);
        }
        while !src.is_empty() {
            let end = self.position();
            let room = APPEND_CHUNK - (end % APPEND_CHUNK as u64) as usize;
            let n = room.min(src.len());
            let (now, later) = src.split_at(n);
            if let Some(d) = self.buf.get_mut(self.len..self.len + n) {
                d.copy_from_slice(now);
            }
            self.len += n;
            src = later;
            if n == room {
                self.drain(dev, page_at).await?;
            }
        }
        Ok(())
    }
    async fn begin_record<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        page_at: &mut Option<u64>,
        h: &RecordHeader,
    ) -> Result<(), Error<D::Error>> {
        let hb = h.encode().ok_or(Error::OutOfRange)?;
        self.rh = Xxh64::new(self.sd);
        self.rh.update(&hb);
        self.put(dev, page_at, &hb, true).await
    }
    async fn body<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        page_at: &mut Option<u64>,
        data: &[u8],
    ) -> Result<(), Error<D::Error>> {
        self.rh.update(data);
        self.put(dev, page_at, data, true).await
    }
    async fn end_record<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        page_at: &mut Option<u64>,
    ) -> Result<(), Error<D::Error>> {
        let sum = self.rh.digest().to_le_bytes();
        self.put(dev, page_at, &sum, true).await
    }
    async fn drain<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        page_at: &mut Option<u64>,
    ) -> Result<(), Error<D::Error>> {
        if self.len == 0 {
            return Ok(());
        }
        // A chunk never crosses a block: blocks are multiples of APPEND_CHUNK.
        let bs = self.bs as u64;
        let blk = pow2_div(self.pos, bs);
        let off = pow2_rem(self.pos, bs) as usize;
        if *page_at == Some(blk) {
            *page_at = None;
        }
        if off == 0 {
            self.blocks_started += 1;
        }
        let data = self.buf.get(..self.len).unwrap_or(&[]);
        dev.append(BlockNo(self.start.saturating_add(blk)), off, data)
            .await
            .map_err(Error::Device)?;
        self.pos = self.pos.saturating_add(self.len as u64);
        self.len = 0;
        Ok(())
    }
    /// Writes the commit marker (with the counter `delta`) and the padding to `unit`; returns
    /// the transaction's span.
    async fn finish<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        page_at: &mut Option<u64>,
        unit: usize,
        delta: &Delta,
    ) -> Result<u64, Error<D::Error>> {
        // The marker's length depends on the delta; the span (in it) on that length.
        let mut m = [0u8; COMMIT_MAX];
        let n = Commit::encode_head(0, delta, &mut m).ok_or(Error::TxTooLarge)?;
        let len = self.position() - self.first + (n + 8) as u64;
        // `unit` is a power of two (checked at open).
        let span = crate::types::pow2_div_ceil(len, unit as u64).saturating_mul(unit as u64);
        let span32 = u32::try_from(span).map_err(|_| Error::TxTooLarge)?;
        if let Some(s) = m.get_mut(4..8) {
            s.copy_from_slice(&span32.to_le_bytes());
        }
        let head = m.get(..n).unwrap_or(&[]);
        self.hasher.update(head);
        let sum = self.hasher.digest().to_le_bytes();
        self.put(dev, page_at, head, false).await?;
        self.put(dev, page_at, &sum, false).await?;
        let mut pad = (span - len) as usize;
        while pad > 0 {
            let k = pad.min(APPEND_CHUNK);
            self.put(dev, page_at, ZERO_CHUNK.get(..k).unwrap_or(&[]), false)
                .await?;
            pad -= k;
        }
        self.drain(dev, page_at).await?;
        Ok(span)
    }
}

fn encode_header<E>(h: &WalHeader, blk: &mut [u8]) -> Result<(), Error<E>> {
    h.encode(blk).ok_or(Error::BufferTooSmall {
        need: crate::format::wal_header::LEN,
    })
}

#[bisync]
async fn read_header<D: BlockDevice>(
    dev: &mut D,
    at: BlockNo,
    buf: &mut [u8],
    layout: &Layout,
) -> Result<Option<WalHeader>, Error<D::Error>> {
    dev.read_block(at, buf).await.map_err(Error::Device)?;
    // The rules are the verifier's; a copy mount may not use is no error on its own.
    let mut first = verifier::First::default();
    let h = verifier::wal_header(buf, at == WAL_HDR_B, layout, &mut first.sink());
    Ok(h)
}

/// The highest epoch a session may start in (2^62). Each checkpoint adds one, and headers are
/// readable up to 2^63, so no real device reaches the end of the range; an epoch above this
/// is forged or damaged.
const EPOCH_CEILING: u64 = 1 << 62;

/// The first block-sized piece of `scratch`.
/// The log's read buffer out of `page`: one block, or, on a device that reads part of a block,
/// the largest power of two of at least [`MIN_LOG_PAGE`] bytes that fits.
fn page_of<E>(page: &mut [u8], bs: usize, partial: bool) -> Result<&mut [u8], Error<E>> {
    if page.len() >= bs || !partial {
        return block_of(page, bs);
    }
    if page.len() < MIN_LOG_PAGE {
        return Err(Error::BufferTooSmall { need: MIN_LOG_PAGE });
    }
    let p = 1usize << (usize::BITS - 1 - page.len().leading_zeros());
    page.get_mut(..p).ok_or(Error::BufferTooSmall { need: p })
}

pub(crate) fn block_of<E>(scratch: &mut [u8], bs: usize) -> Result<&mut [u8], Error<E>> {
    scratch
        .get_mut(..bs)
        .ok_or(Error::BufferTooSmall { need: bs })
}

if_blocking! {
    #[cfg(test)]
    mod tests;
}
