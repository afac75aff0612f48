//! Write-ahead log: fixed-capacity transactions, one flush per commit, redo recovery.
//!
//! Protocol (see `FORMAT.md`, "WAL"):
//! 1. **commit** appends the transaction to the log as begin header, records and commit marker
//!    (format in [`crate::format::wal_record`]), then issues **one flush**. Only then are the
//!    blocks written in place (not flushed: the next flush makes them durable).
//! 2. **checkpoint** (when the log is full, at a mount that recovered something, at unmount, or
//!    on request) flushes the in-place writes, then writes the *other* WAL header copy with
//!    `checkpoint_seq` = last committed sequence and a new epoch. That header is the completion
//!    marker for every transaction up to `checkpoint_seq`. It is not flushed on its own: the
//!    next commit flushes before its first log write (see 4), so the log space is reused from
//!    its start only after the marker is durable; until then the older header stands and
//!    recovery replays what is already home.
//! 3. **recovery** reads the newest valid header, then walks the log from its start expecting
//!    `checkpoint_seq + 1, + 2, ...` in the header's epoch. A transaction is replayed only if its
//!    begin header, every record hash and its commit marker validate; the first one that does not
//!    ends the log (it was torn or never committed). Recovery then checkpoints, so the epoch moves
//!    on and nothing written before can ever validate again; a clean log (nothing replayed, no
//!    torn transaction of the current epoch, no newer epoch seen) is left as it is, so a clean
//!    mount writes nothing.
//! 4. **owed flushes**: the payload of a new extent goes straight to blocks that are free in the
//!    committed state ([`Wal::write_unlogged`]), and a checkpoint leaves its marker unflushed.
//!    Such writes are ordered, never proven: the log remembers that one is outstanding, and the
//!    next commit issues a flush *before* its first log write, so the payload is durable before
//!    any commit record that depends on it, and the marker before the log space it frees is
//!    reused (FORMAT.md, "Unlogged writes"). A block named by a record logged since the last
//!    checkpoint is never written unlogged (a replay would clobber it):
//!    [`Wal::prepare_unlogged`] checkpoints first when the filter of logged targets cannot rule
//!    that out.
//!
//! Invariants: log space is reused only after what it holds is applied and flushed; the two
//! headers are never written between the same two flushes; a block named as the `mirror` (the
//! superblock mirror) is written in place only after a flush that follows every other in-place
//! write of its transaction, so its twin (the primary) is durable first; no log write happens
//! while an unlogged write or a completion marker is unflushed; no block that a logged record
//! since the last checkpoint names is written unlogged.

use crate::device::BlockDevice;
use crate::error::{Error, Structure};
use crate::format::layout::{Layout, WAL_HDR_A, WAL_HDR_B};
use crate::format::wal_header::WalHeader;
use crate::format::wal_record::{
    parse_record_prefix, record_prefix, seed, txn_blocks, Commit, TxIdent, BEGIN_LEN, COMMIT_LEN,
    RECORD_PREFIX, RECORD_SUFFIX,
};
use crate::types::{BlockNo, Epoch, Extent, Seq};
use xxhash_rust::xxh64::Xxh64;

/// The block updates of one transaction, held in caller-provided memory until commit.
///
/// `K` bounds the number of distinct blocks; the data buffer holds one block per update.
pub struct TxBuf<'b, const K: usize> {
    targets: heapless::Vec<BlockNo, K>,
    data: &'b mut [u8],
    bs: usize,
}

impl<'b, const K: usize> TxBuf<'b, K> {
    /// A transaction buffer over `data` for blocks of `bs` bytes. Capacity is
    /// `min(K, data.len() / bs)` block updates.
    pub fn new(data: &'b mut [u8], bs: usize) -> Self {
        TxBuf {
            targets: heapless::Vec::new(),
            data,
            bs: bs.max(1),
        }
    }
    /// How many block updates fit.
    pub fn capacity(&self) -> usize {
        K.min(self.data.len() / self.bs)
    }
    /// Number of staged updates.
    pub fn len(&self) -> usize {
        self.targets.len()
    }
    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
    /// Drops every staged update.
    pub fn clear(&mut self) {
        self.targets.clear();
    }
    /// The block size this buffer was made for.
    pub fn block_size(&self) -> usize {
        self.bs
    }
    fn slot(&self, i: usize) -> &[u8] {
        let s = i.saturating_mul(self.bs);
        self.data.get(s..s.saturating_add(self.bs)).unwrap_or(&[])
    }
    fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        let s = i.saturating_mul(self.bs);
        self.data
            .get_mut(s..s.saturating_add(self.bs))
            .unwrap_or(&mut [])
    }
    /// Position of `b` among the staged updates.
    pub fn find(&self, b: BlockNo) -> Option<usize> {
        self.targets.iter().position(|t| *t == b)
    }
    /// The staged content of block `b`, if staged.
    pub fn get(&self, b: BlockNo) -> Option<&[u8]> {
        self.find(b).map(|i| self.slot(i))
    }
    /// The staged content of block `b`, mutably, if staged.
    pub fn get_mut(&mut self, b: BlockNo) -> Option<&mut [u8]> {
        self.find(b).map(|i| self.slot_mut(i))
    }
    /// Stages block `b`: returns its buffer and whether it is new (a new buffer holds stale bytes
    /// the caller must overwrite). Fails with [`Error::TxCapacity`] when full.
    pub fn stage<E>(&mut self, b: BlockNo) -> Result<(&mut [u8], bool), Error<E>> {
        if let Some(i) = self.find(b) {
            return Ok((self.slot_mut(i), false));
        }
        if self.targets.len() >= self.capacity() {
            return Err(Error::TxCapacity);
        }
        self.targets.push(b).map_err(|_| Error::TxCapacity)?;
        let i = self.targets.len() - 1;
        Ok((self.slot_mut(i), true))
    }
    /// Removes the most recently staged block (used to undo a failed stage).
    pub fn unstage_last(&mut self) {
        self.targets.pop();
    }
    /// Iterates over `(block, content)` in staging order.
    pub fn iter(&self) -> impl Iterator<Item = (BlockNo, &[u8])> + '_ {
        self.targets
            .iter()
            .enumerate()
            .map(move |(i, b)| (*b, self.slot(i)))
    }
}

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
    /// Log blocks written since open.
    pub log_blocks_written: u64,
}

/// The live state of the write-ahead log.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Wal {
    start: u64,
    blocks: u64,
    bs: usize,
    block_count: u64,
    salt: u64,
    mirror: Option<BlockNo>,
    layout: Layout,
    epoch: Epoch,
    checkpoint_seq: Seq,
    last_seq: Seq,
    head: u64,
    generation: u64,
    active_is_b: bool,
    stats: WalStats,
    logged: LoggedFilter,
    owed: bool,
}

/// A filter of the blocks named by records logged since the last checkpoint (false positives
/// only): 1,024 bits, one hash per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct LoggedFilter([u64; 16]);

impl LoggedFilter {
    fn bit(b: BlockNo) -> (usize, u64) {
        let h = b.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54; // 10 bits
        ((h / 64) as usize % 16, 1u64 << (h % 64))
    }
    fn insert(&mut self, b: BlockNo) {
        let (w, m) = Self::bit(b);
        if let Some(x) = self.0.get_mut(w) {
            *x |= m;
        }
    }
    fn may_contain(&self, b: BlockNo) -> bool {
        let (w, m) = Self::bit(b);
        self.0.get(w).is_some_and(|x| x & m != 0)
    }
    fn clear(&mut self) {
        self.0 = [0; 16];
    }
}

impl Wal {
    fn blank(layout: &Layout, salt: u64, mirror: Option<BlockNo>) -> Wal {
        Wal {
            start: layout.wal_start,
            blocks: layout.wal_blocks,
            bs: layout.bs(),
            block_count: layout.block_count,
            salt,
            mirror,
            layout: *layout,
            epoch: Epoch(1),
            checkpoint_seq: Seq(0),
            last_seq: Seq(0),
            head: 0,
            generation: 1,
            active_is_b: false,
            stats: WalStats::default(),
            logged: LoggedFilter::default(),
            owed: false,
        }
    }

    /// Writes fresh WAL headers (both copies) and clears the first log block. The caller flushes.
    pub fn format<D: BlockDevice>(
        dev: &mut D,
        layout: &Layout,
        salt: u64,
        mirror: Option<BlockNo>,
        scratch: &mut [u8],
    ) -> Result<Wal, Error<D::Error>> {
        let w = Wal::blank(layout, salt, mirror);
        let blk = block_of(scratch, w.bs)?;
        blk.fill(0);
        dev.write_block(BlockNo(w.start), blk)?;
        let mut h = w.header();
        h.generation = 0;
        h.epoch = 0;
        encode_header(&h, blk)?;
        dev.write_block(WAL_HDR_B, blk)?;
        encode_header(&w.header(), blk)?;
        dev.write_block(WAL_HDR_A, blk)?;
        Ok(w)
    }

    fn header(&self) -> WalHeader {
        WalHeader {
            generation: self.generation,
            epoch: self.epoch.0,
            checkpoint_seq: self.checkpoint_seq.0,
            wal_start: self.start,
            wal_blocks: self.blocks,
        }
    }

    /// Opens the log: picks the newest valid header, replays every committed transaction, and
    /// checkpoints. `scratch` must hold two blocks.
    pub fn open<D: BlockDevice>(
        dev: &mut D,
        layout: &Layout,
        salt: u64,
        mirror: Option<BlockNo>,
        scratch: &mut [u8],
    ) -> Result<(Wal, RecoveryReport), Error<D::Error>> {
        let mut w = Wal::blank(layout, salt, mirror);
        let bs = w.bs;
        let (a, rest) = split_two(scratch, bs)?;
        let ha = read_header(dev, WAL_HDR_A, a, layout)?;
        let hb = read_header(dev, WAL_HDR_B, a, layout)?;
        let (h, is_b) = match (ha, hb) {
            // Newer = higher (generation, epoch): the epoch breaks a tie should a hostile
            // header have pinned the generation at its ceiling.
            (Some(x), Some(y)) if (y.generation, y.epoch) > (x.generation, x.epoch) => (y, true),
            (Some(x), _) => (x, false),
            (None, Some(y)) => (y, true),
            (None, None) => return Err(Error::Corrupt(Structure::WalHeader)),
        };
        w.generation = h.generation;
        w.epoch = Epoch(h.epoch);
        w.checkpoint_seq = Seq(h.checkpoint_seq);
        w.last_seq = Seq(h.checkpoint_seq);
        w.active_is_b = is_b;
        let mut report = RecoveryReport::default();
        loop {
            let expected = w.last_seq.next();
            match w.validate_at(dev, w.head, expected, a)? {
                Validation::Valid(n) => {
                    w.replay_at(dev, w.head, a, rest)?;
                    w.head = w.head.saturating_add(n);
                    w.last_seq = expected;
                    report.replayed += 1;
                }
                Validation::Invalid { ours } => {
                    report.discarded_tail = ours;
                    break;
                }
            }
        }
        // Never reuse an epoch: the next one must be above every epoch that may still have
        // content in the log (a lost newer header held at most its own epoch, and a log that
        // starts with an epoch's begin header was written in that epoch).
        let mut floor = w.epoch;
        match (ha, hb) {
            (Some(x), Some(y)) => floor = floor.max(Epoch(x.epoch)).max(Epoch(y.epoch)),
            _ => floor = floor.next(),
        }
        dev.read_block(BlockNo(w.start), a)?;
        // A begin header carries no checksum of its own. vde writes one only in the epoch of
        // the newest header, which is the newest valid copy's epoch or, if that copy was lost,
        // one above the other's: an epoch beyond that (or at or above the ceiling) was never
        // written by vde and is ignored rather than allowed to push the volume to the end of
        // the range.
        let newest = [ha, hb]
            .iter()
            .flatten()
            .map(|h| h.epoch)
            .max()
            .unwrap_or(w.epoch.0);
        let mut first_epoch = None;
        if let Ok(ident) = TxIdent::decode_begin(a) {
            if ident.epoch < EPOCH_CEILING && ident.epoch <= newest.saturating_add(1) {
                floor = floor.max(Epoch(ident.epoch));
                first_epoch = Some(ident.epoch);
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
        // by a new header), no epoch above the header's, and the log's first block written in
        // an older epoch or never (so no content of this epoch can lie anywhere in the log:
        // every epoch's transactions start at the log's first block). Otherwise recovery
        // checkpoints, so the epoch moves on and nothing written before can validate again.
        let ranked = match (ha, hb) {
            (Some(x), Some(y)) => (x.generation, x.epoch) != (y.generation, y.epoch),
            _ => false,
        };
        let clean = report.replayed == 0
            && !report.discarded_tail
            && ranked
            && floor == w.epoch
            && first_epoch.is_none_or(|e| e < w.epoch.0);
        w.epoch = floor;
        if !clean {
            w.force_checkpoint(dev, a)?;
        }
        Ok((w, report))
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
        self.head
    }
    /// Log blocks in all.
    pub fn capacity_blocks(&self) -> u64 {
        self.blocks
    }
    /// Cost counters.
    pub fn stats(&self) -> WalStats {
        self.stats
    }

    /// Whether a transaction of `records` block updates fits in the log at all.
    pub fn fits(&self, records: usize) -> bool {
        txn_blocks(records as u64, self.bs as u64).is_some_and(|n| n <= self.blocks)
    }

    /// Whether `b` may be the target of a transaction (inside the volume, outside the WAL).
    pub fn target_ok(&self, b: BlockNo) -> bool {
        b.0 < self.block_count && !self.layout.is_wal_block(b)
    }

    /// Commits `tx`: log, one flush, apply in place. Checkpoints first if the log has no room.
    /// `scratch` must hold one block. Returns the transaction's sequence number.
    pub fn commit<D: BlockDevice, const K: usize>(
        &mut self,
        dev: &mut D,
        tx: &TxBuf<'_, K>,
        scratch: &mut [u8],
    ) -> Result<Seq, Error<D::Error>> {
        if tx.is_empty() {
            return Ok(self.last_seq);
        }
        let need = txn_blocks(tx.len() as u64, self.bs as u64).ok_or(Error::TxTooLarge)?;
        if need > self.blocks {
            return Err(Error::TxTooLarge);
        }
        if tx
            .iter()
            .any(|(b, d)| !self.target_ok(b) || d.len() != self.bs)
        {
            return Err(Error::OutOfRange);
        }
        let blk = block_of(scratch, self.bs)?;
        if self.head.saturating_add(need) > self.blocks {
            self.force_checkpoint(dev, blk)?;
        }
        // Unlogged payload this transaction (or an abandoned one) wrote must be durable before
        // any commit record can be: a flush between them is the only thing that orders them.
        self.settle(dev)?;
        for (b, _) in tx.iter() {
            self.logged.insert(b);
        }
        let seq = self.last_seq.next();
        let sd = seed(seq.0, self.salt);
        let ident = TxIdent {
            epoch: self.epoch.0,
            seq: seq.0,
            records: u32::try_from(tx.len()).map_err(|_| Error::TxTooLarge)?,
        };
        let mut lw = LogWriter {
            start: self.start.saturating_add(self.head),
            written: 0,
            pos: 0,
            hasher: Xxh64::new(sd),
        };
        let mut begin = [0u8; BEGIN_LEN];
        ident.encode_begin(&mut begin);
        lw.put(dev, blk, &begin, true)?;
        let len = u32::try_from(self.bs).map_err(|_| Error::InvalidGeometry)?;
        for (b, data) in tx.iter() {
            let prefix = record_prefix(b.0, len);
            let mut rh = Xxh64::new(sd);
            rh.update(&prefix);
            rh.update(data);
            lw.put(dev, blk, &prefix, true)?;
            lw.put(dev, blk, data, true)?;
            lw.put(dev, blk, &rh.digest().to_le_bytes(), true)?;
        }
        let commit = Commit {
            ident,
            txn_hash: lw.hasher.digest(),
        };
        let mut cm = [0u8; COMMIT_LEN];
        commit.encode(sd, &mut cm);
        lw.put(dev, blk, &cm, false)?;
        lw.finish(dev, blk)?;
        dev.flush()?;
        self.head = self.head.saturating_add(lw.written);
        self.last_seq = seq;
        self.stats.commits += 1;
        self.stats.log_blocks_written += lw.written;
        // Apply in place; the superblock mirror waits for a flush after its twin.
        let mut mirror_at = None;
        for (i, (b, data)) in tx.iter().enumerate() {
            if Some(b) == self.mirror {
                mirror_at = Some(i);
                continue;
            }
            dev.write_block(b, data)?;
        }
        if let Some(i) = mirror_at {
            if let Some((b, data)) = tx.iter().nth(i) {
                dev.flush()?;
                dev.write_block(b, data)?;
            }
        }
        Ok(seq)
    }

    /// Makes everything applied so far durable and frees the log space, if the log holds
    /// anything. `scratch` must hold one block.
    pub fn checkpoint<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        scratch: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        if self.head == 0 && self.checkpoint_seq == self.last_seq {
            return self.settle(dev);
        }
        self.force_checkpoint(dev, block_of(scratch, self.bs)?)
    }

    /// Flushes if an unlogged write or a completion marker is unflushed.
    fn settle<D: BlockDevice>(&mut self, dev: &mut D) -> Result<(), Error<D::Error>> {
        if self.owed {
            dev.flush()?;
            self.owed = false;
        }
        Ok(())
    }

    /// Makes `e` ready for [`Wal::write_unlogged`]: checkpoints first if a record logged since
    /// the last checkpoint may name one of its blocks (its replay after a crash would overwrite
    /// the unlogged content). `scratch` must hold one block.
    pub fn prepare_unlogged<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        e: Extent,
        scratch: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        let doubt = (0..e.len).any(|k| {
            self.logged
                .may_contain(BlockNo(e.start.0.saturating_add(k)))
        });
        if doubt {
            self.force_checkpoint(dev, block_of(scratch, self.bs)?)?;
        }
        Ok(())
    }

    /// Writes `data` to block `b` without logging it: only for blocks that are free in the
    /// committed state and prepared with [`Wal::prepare_unlogged`] since the last commit that
    /// may have named them. The write is ordered before the next commit record by a flush (see
    /// the module documentation). A block that a logged record may name is refused with
    /// [`Error::OutOfRange`], as is one outside the volume or inside the log.
    pub fn write_unlogged<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        b: BlockNo,
        data: &[u8],
    ) -> Result<(), Error<D::Error>> {
        if !self.target_ok(b) || self.logged.may_contain(b) || data.len() != self.bs {
            return Err(Error::OutOfRange);
        }
        // Set before the write: a failed write may still have landed.
        self.owed = true;
        dev.write_block(b, data)?;
        Ok(())
    }

    fn force_checkpoint<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        blk: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        dev.flush()?;
        self.owed = false;
        let next = Wal {
            generation: self.generation.saturating_add(1),
            epoch: self.epoch.next(),
            checkpoint_seq: self.last_seq,
            ..self.clone()
        };
        encode_header(&next.header(), blk)?;
        let target = if self.active_is_b {
            WAL_HDR_A
        } else {
            WAL_HDR_B
        };
        // The marker needs no flush of its own: until it is durable the older header stands and
        // recovery replays what is already home (idempotent), and the next commit flushes
        // before its first log write reuses the log space.
        self.owed = true;
        dev.write_block(target, blk)?;
        self.generation = next.generation;
        self.epoch = next.epoch;
        self.checkpoint_seq = self.last_seq;
        self.active_is_b = !self.active_is_b;
        self.head = 0;
        self.logged.clear();
        self.stats.checkpoints += 1;
        Ok(())
    }

    /// Checks the transaction at log block `at` (pass 1): shape, every hash, commit marker.
    fn validate_at<D: BlockDevice>(
        &self,
        dev: &mut D,
        at: u64,
        expected: Seq,
        buf: &mut [u8],
    ) -> Result<Validation, Error<D::Error>> {
        let mut r = LogReader::new(self, at);
        let sd = seed(expected.0, self.salt);
        let mut begin = [0u8; BEGIN_LEN];
        if !r.read(dev, buf, &mut begin)? {
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
        let need = match txn_blocks(u64::from(ident.records), self.bs as u64) {
            Some(n) if at.saturating_add(n) <= self.blocks => n,
            _ => return Ok(torn),
        };
        let mut th = Xxh64::new(sd);
        th.update(&begin);
        let mut bad_target = false;
        for _ in 0..ident.records {
            let mut prefix = [0u8; RECORD_PREFIX];
            if !r.read(dev, buf, &mut prefix)? {
                return Ok(torn);
            }
            let (target, len) = parse_record_prefix(&prefix);
            if len as usize != self.bs {
                return Ok(torn);
            }
            let mut rh = Xxh64::new(sd);
            rh.update(&prefix);
            th.update(&prefix);
            let ok = r.stream(dev, buf, self.bs, |chunk| {
                rh.update(chunk);
                th.update(chunk);
            })?;
            let mut suffix = [0u8; RECORD_SUFFIX];
            if !ok || !r.read(dev, buf, &mut suffix)? {
                return Ok(torn);
            }
            if u64::from_le_bytes(suffix) != rh.digest() {
                return Ok(torn);
            }
            th.update(&suffix);
            if !self.target_ok(BlockNo(target)) {
                bad_target = true;
            }
        }
        let mut cm = [0u8; COMMIT_LEN];
        if !r.read(dev, buf, &mut cm)? {
            return Ok(torn);
        }
        match Commit::decode(&cm, sd) {
            Ok(c) if c.ident == ident && c.txn_hash == th.digest() => {}
            _ => return Ok(torn),
        }
        if bad_target {
            // Every hash holds, yet a record aims outside the volume or into the log itself:
            // this was never written by vde. Refuse rather than guess.
            return Err(Error::Corrupt(Structure::WalRecord));
        }
        Ok(Validation::Valid(need))
    }

    /// Applies the (validated) transaction at log block `at` (pass 2, and pass 3 for the mirror).
    fn replay_at<D: BlockDevice>(
        &self,
        dev: &mut D,
        at: u64,
        buf: &mut [u8],
        data: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        let data = block_of(data, self.bs)?;
        for pass in 0..2 {
            let mut r = LogReader::new(self, at);
            let mut begin = [0u8; BEGIN_LEN];
            r.read(dev, buf, &mut begin)?;
            let records = TxIdent::decode_begin(&begin).map_or(0, |i| i.records);
            let mut mirror_seen = false;
            for _ in 0..records {
                let mut prefix = [0u8; RECORD_PREFIX];
                r.read(dev, buf, &mut prefix)?;
                r.read(dev, buf, data)?;
                let mut suffix = [0u8; RECORD_SUFFIX];
                r.read(dev, buf, &mut suffix)?;
                let (target, _) = parse_record_prefix(&prefix);
                let is_mirror = Some(BlockNo(target)) == self.mirror;
                mirror_seen |= is_mirror;
                if is_mirror == (pass == 1) {
                    dev.write_block(BlockNo(target), data)?;
                }
            }
            if pass == 0 {
                if !mirror_seen {
                    break;
                }
                dev.flush()?;
            }
        }
        Ok(())
    }
}

enum Validation {
    Valid(u64),
    Invalid { ours: bool },
}

fn encode_header<E>(h: &WalHeader, blk: &mut [u8]) -> Result<(), Error<E>> {
    h.encode(blk).ok_or(Error::BufferTooSmall {
        need: crate::format::wal_header::LEN,
    })
}

fn read_header<D: BlockDevice>(
    dev: &mut D,
    at: BlockNo,
    buf: &mut [u8],
    layout: &Layout,
) -> Result<Option<WalHeader>, Error<D::Error>> {
    dev.read_block(at, buf)?;
    // No device lives to see 2^63 checkpoints: an epoch that high is forged, and would leave
    // no room to move on without reuse.
    Ok(WalHeader::decode(buf).ok().filter(|h| {
        h.wal_start == layout.wal_start && h.wal_blocks == layout.wal_blocks && h.epoch < 1 << 63
    }))
}

/// The highest epoch a session may start in (2^62). Each checkpoint adds one, and headers are
/// readable up to 2^63, so no real device reaches the end of the range; an epoch above this
/// is forged or damaged.
const EPOCH_CEILING: u64 = 1 << 62;

/// The first block-sized piece of `scratch`.
pub(crate) fn block_of<E>(scratch: &mut [u8], bs: usize) -> Result<&mut [u8], Error<E>> {
    scratch
        .get_mut(..bs)
        .ok_or(Error::BufferTooSmall { need: bs })
}

/// Two block-sized pieces of `scratch`.
pub(crate) fn split_two<E>(
    scratch: &mut [u8],
    bs: usize,
) -> Result<(&mut [u8], &mut [u8]), Error<E>> {
    let need = bs.saturating_mul(2);
    let s = scratch
        .get_mut(..need)
        .ok_or(Error::BufferTooSmall { need })?;
    Ok(s.split_at_mut(bs))
}

/// Appends bytes to the log through one block buffer, hashing everything before the commit.
struct LogWriter {
    start: u64,
    written: u64,
    pos: usize,
    hasher: Xxh64,
}

impl LogWriter {
    fn put<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        blk: &mut [u8],
        mut src: &[u8],
        hash: bool,
    ) -> Result<(), Error<D::Error>> {
        if hash {
            self.hasher.update(src);
        }
        while !src.is_empty() {
            let room = blk.len().saturating_sub(self.pos);
            let n = room.min(src.len());
            let (now, later) = src.split_at(n);
            if let Some(d) = blk.get_mut(self.pos..self.pos + n) {
                d.copy_from_slice(now);
            }
            self.pos += n;
            src = later;
            if self.pos == blk.len() {
                self.flush_block(dev, blk)?;
            }
        }
        Ok(())
    }
    fn flush_block<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        blk: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        dev.write_block(BlockNo(self.start.saturating_add(self.written)), blk)?;
        self.written += 1;
        self.pos = 0;
        Ok(())
    }
    fn finish<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        blk: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        if self.pos > 0 {
            if let Some(t) = blk.get_mut(self.pos..) {
                t.fill(0);
            }
            self.flush_block(dev, blk)?;
        }
        Ok(())
    }
}

/// Reads the log stream block by block; never reads past the WAL area.
struct LogReader {
    start: u64,
    blocks: u64,
    next: u64,
    pos: usize,
    loaded: bool,
}

impl LogReader {
    fn new(w: &Wal, at: u64) -> LogReader {
        LogReader {
            start: w.start,
            blocks: w.blocks,
            next: at,
            pos: 0,
            loaded: false,
        }
    }
    /// Ensures a block with unread bytes is in `buf`; `false` at the end of the log.
    fn load<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        buf: &mut [u8],
    ) -> Result<bool, Error<D::Error>> {
        if self.loaded && self.pos < buf.len() {
            return Ok(true);
        }
        if self.next >= self.blocks {
            return Ok(false);
        }
        dev.read_block(BlockNo(self.start.saturating_add(self.next)), buf)?;
        self.next += 1;
        self.pos = 0;
        self.loaded = true;
        Ok(true)
    }
    fn stream<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        buf: &mut [u8],
        mut len: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<bool, Error<D::Error>> {
        while len > 0 {
            if !self.load(dev, buf)? {
                return Ok(false);
            }
            let n = buf.len().saturating_sub(self.pos).min(len);
            if let Some(s) = buf.get(self.pos..self.pos + n) {
                f(s);
            }
            self.pos += n;
            len -= n;
        }
        Ok(true)
    }
    fn read<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        buf: &mut [u8],
        out: &mut [u8],
    ) -> Result<bool, Error<D::Error>> {
        let mut off = 0;
        let len = out.len();
        self.stream(dev, buf, len, |chunk| {
            if let Some(d) = out.get_mut(off..off + chunk.len()) {
                d.copy_from_slice(chunk);
            }
            off += chunk.len();
        })
    }
}
