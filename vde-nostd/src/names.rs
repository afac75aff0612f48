//! Named objects: the `names` module's key → object map (format: [`crate::format::names`]).
//!
//! Owns the name table's logic: finding a key (one read of the root, one of a leaf), inserting
//! and replacing (a full leaf splits into a free leaf of the region; a key appended past a
//! leaf's last starts the new leaf alone, so keys stored in order fill leaves), removing (an
//! emptied leaf leaves the root), iteration in key order, and the table's checks for `verify`.
//! The named-object operations (`store`, `fetch`, `lookup`, `remove`, and `store`/`remove` in a
//! [`crate::Batch`]) are here too, built on the objects module's in-transaction put and delete:
//! a replace creates the new object, repoints the key and frees the old object in one
//! transaction. A delete by handle drops the object's name with it.
//!
//! Invariants: every change goes through the open transaction (`view`/`stage_view`), so a
//! failed operation leaves the committed table as it was; nothing is kept in RAM but the
//! region's place, so the table needs no caller memory beyond the scratch block.

use crate::error::{Error, Structure};
use crate::format::names::{self as fmt, DirEntry, KEY_MAX};
use crate::handle::Handle;
use crate::types::{BlockNo, Extent};
use_mode!(bisync);
use_mode!(device::BlockDevice);
use_mode!(volume::{read_part_staged, Volume});

/// A key copied out of a block (the scratch block is reused between steps).
#[derive(Clone, Copy)]
struct KeyBuf {
    len: usize,
    bytes: [u8; KEY_MAX],
}

impl KeyBuf {
    fn new(k: &[u8]) -> Self {
        let mut bytes = [0u8; KEY_MAX];
        let len = k.len().min(KEY_MAX);
        if let (Some(d), Some(s)) = (bytes.get_mut(..len), k.get(..len)) {
            d.copy_from_slice(s);
        }
        KeyBuf { len, bytes }
    }
    fn get(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }
}

/// Where a key belongs: the root entry that covers it and what the root looks like.
#[derive(Clone, Copy)]
struct Place {
    /// Index of the covering root entry.
    d: usize,
    /// Its leaf's block.
    leaf: BlockNo,
    /// Bytes the root's entries take (end offset).
    root_end: usize,
    /// Root entries.
    leaves: usize,
}

fn corrupt<E>() -> Error<E> {
    Error::Corrupt(Structure::Names)
}

#[bisync]
impl<'b, D: BlockDevice, const K: usize> Volume<'b, D, K> {
    /// The name table's region, or `ModuleMissing`.
    fn names_region(&self) -> Result<Extent, Error<D::Error>> {
        self.names.ok_or(Error::ModuleMissing)
    }

    /// Loads the `names` module's region (mount and after module addition) and checks the root.
    #[inline(never)]
    pub(crate) async fn load_names(&mut self) -> Result<(), Error<D::Error>> {
        let Some(region) = self.module_region(8).await? else {
            self.names = None;
            return Ok(());
        };
        if region.len < 2 {
            return Err(corrupt());
        }
        self.names = Some(region);
        self.read_root().await.map(|_| ())
    }

    /// Writes an empty name table into `region` (in the open transaction).
    pub(crate) async fn init_names(&mut self, region: Extent) -> Result<(), Error<D::Error>> {
        if region.len < 2 {
            return Err(Error::NoSpace);
        }
        let blk = self.view(region.start, true).await?;
        fmt::encode_root(blk, 1).ok_or_else(corrupt)?;
        self.stage_new_view(region.start)?;
        let leaf = BlockNo(region.start.0 + 1);
        let blk = self.view(leaf, true).await?;
        fmt::encode_leaf(blk).ok_or_else(corrupt)?;
        self.stage_new_view(leaf)
    }

    /// Reads and checks the root into the scratch block. A root the block cache holds
    /// unchanged since it was last checked is not checked again.
    async fn read_root(&mut self) -> Result<fmt::Root, Error<D::Error>> {
        let region = self.names_region()?;
        let b = region.start;
        let trusted = self.trusted(b);
        self.load_root(b).await?;
        let blk = self.scratch_block()?;
        if let Some(r) = trusted.then(|| fmt::root_summary(blk)).flatten() {
            return Ok(r);
        }
        let r = fmt::check_root(blk, region.len).map_err(|_| corrupt())?;
        let note = fmt::root_stride(blk, r);
        self.checked(b, note);
        Ok(r)
    }

    /// Reads and checks leaf `leaf` into the scratch block (not checked again while the block
    /// cache holds it unchanged since its last check).
    async fn read_leaf(&mut self, leaf: BlockNo) -> Result<fmt::Leaf, Error<D::Error>> {
        let trusted = self.trusted(leaf);
        let blk = self.load_scratch(leaf).await?;
        if let Some(l) = trusted.then(|| fmt::leaf_summary(blk)).flatten() {
            return Ok(l);
        }
        let l = fmt::check_leaf(blk).map_err(|_| corrupt())?;
        let note = fmt::leaf_stride(blk, l);
        self.checked(leaf, note);
        Ok(l)
    }

    /// Whether block `b` reads as its committed content (the open transaction has not staged
    /// it) and the block cache holds that content checked since it last changed.
    fn trusted(&self, b: BlockNo) -> bool {
        !self.tx.contains(b) && self.wal.is_checked(b)
    }

    /// Block `b` passed its checks, which found `note` (its entries' shared size, or 0): if it
    /// is its committed content, the cache remembers.
    fn checked(&mut self, b: BlockNo, note: u16) {
        if !self.tx.contains(b) {
            self.wal.mark_checked_with(b, note);
        }
    }

    /// Block `b` where the block cache holds it, with its check's note, if it is
    /// [`Self::trusted`]: read in place, neither copied nor checked again.
    fn trusted_block(&mut self, b: BlockNo) -> Option<(&[u8], u16)> {
        if self.tx.contains(b) {
            return None;
        }
        self.wal.checked_block(b)
    }

    /// Loads the root (block `b`) into the scratch block reading only what a valid one holds:
    /// its header, as many bytes as its entries can take (the count says), and its checksum;
    /// the scratch is zero between them, as a valid root is, so the checks that follow see the
    /// block (and fail if it is not zero there). Falls back to reading the whole block where a
    /// partial read is not possible, or where a block cache will keep the whole block. (Leaves are
    /// read whole: they are mostly full.)
    async fn load_root(&mut self, b: BlockNo) -> Result<(), Error<D::Error>> {
        const W: usize = crate::device::PARTIAL_READ_UNIT;
        let bs = self.layout.bs();
        let mut head = [0u8; W];
        // With a block cache the root is read whole once and stays in RAM (checked once).
        if bs < 4 * W || self.wal.caches() || !self.read_through_part(b, 0, &mut head).await? {
            self.load_scratch(b).await?;
            return Ok(());
        }
        let count = crate::format::codec::get_u16(&head, fmt::COUNT.0).unwrap_or(u16::MAX);
        let end = fmt::HEAD + usize::from(count) * fmt::root_entry_size(KEY_MAX);
        let end = end.next_multiple_of(W).clamp(W, bs - W);
        // The volume's fields apart, so the scratch is read into in place (never taken out of
        // the volume across an `.await`).
        let Volume {
            tx,
            wal,
            dev,
            layout,
            scratch,
            ..
        } = self;
        let blk = scratch
            .get_mut(..bs)
            .ok_or(Error::BufferTooSmall { need: bs })?;
        blk.fill(0);
        if let Some(h) = blk.get_mut(..W) {
            h.copy_from_slice(&head);
        }
        let n = layout.block_count;
        let mut ok = true;
        if let Some(mid) = blk.get_mut(W..end) {
            ok &= mid.is_empty() || read_part_staged(tx, wal, dev, n, (b, W), mid).await?;
        }
        if let Some(tail) = blk.get_mut(bs - W..) {
            ok &= read_part_staged(tx, wal, dev, n, (b, bs - W), tail).await?;
        }
        if !ok {
            self.load_scratch(b).await?;
        }
        Ok(())
    }

    /// Finds the leaf that covers `key`.
    async fn place(&mut self, key: &[u8]) -> Result<Place, Error<D::Error>> {
        let region = self.names_region()?;
        let root = self.read_root().await?;
        let blk = self.scratch_block()?;
        let mut found = None;
        for (d, e) in fmt::dir_entries(blk, root).enumerate() {
            if d == 0 || fmt::key_cmp(e.sep, key).is_le() {
                found = Some((d, e.leaf));
            } else {
                break;
            }
        }
        let (d, leaf) = found.ok_or_else(corrupt)?;
        Ok(Place {
            d,
            leaf: BlockNo(region.start.0 + u64::from(leaf)),
            root_end: root.end,
            leaves: root.leaves,
        })
    }

    /// A free leaf: the lowest region block the root does not name (`None`: the region is full).
    async fn free_leaf(&mut self) -> Result<Option<u16>, Error<D::Error>> {
        let region = self.names_region()?;
        let root = self.read_root().await?;
        let blk = self.scratch_block()?;
        Ok((1..region.len)
            .filter_map(|c| u16::try_from(c).ok())
            .find(|c| fmt::dir_entries(blk, root).all(|e| e.leaf != *c)))
    }

    /// Root entry `d`: its leaf's block and its separator (`None` past the last entry). The
    /// root is read again for each call: the scratch block holds one table block at a time.
    async fn dir_at(&mut self, d: usize) -> Result<Option<(BlockNo, KeyBuf)>, Error<D::Error>> {
        let region = self.names_region()?;
        let root = self.read_root().await?;
        let blk = self.scratch_block()?;
        Ok(fmt::dir_entries(blk, root).nth(d).map(|e| {
            (
                BlockNo(region.start.0 + u64::from(e.leaf)),
                KeyBuf::new(e.sep),
            )
        }))
    }

    /// The handle `key` names, if any.
    pub(crate) async fn name_lookup(
        &mut self,
        key: &[u8],
    ) -> Result<Option<Handle>, Error<D::Error>> {
        if !fmt::key_ok(key) {
            return Err(Error::KeyInvalid);
        }
        let probe = fmt::Probe::new(key);
        // A root and a leaf the block cache holds checked are searched where they lie (a binary
        // search where their entries share a size); the others are read into the scratch block
        // and checked, which lets the next lookup search them in place.
        let region = self.names_region()?;
        let found = self
            .trusted_block(region.start)
            .and_then(|(blk, note)| fmt::root_find(blk, note, &probe));
        let leaf_no = match found {
            Some(leaf) => BlockNo(region.start.0 + u64::from(leaf)),
            None => self.place(key).await?.leaf,
        };
        if let Some(hit) = self
            .trusted_block(leaf_no)
            .and_then(|(blk, note)| fmt::leaf_find(blk, note, &probe))
        {
            return Ok(hit.map(Handle::from_raw));
        }
        let leaf = self.read_leaf(leaf_no).await?;
        let blk = self.scratch_block()?;
        if let Some(hit) = fmt::leaf_find(blk, 0, &probe) {
            return Ok(hit.map(Handle::from_raw));
        }
        // Keys are in ascending order: stop at the first one not below `key`.
        let hit = fmt::leaf_entries(blk, leaf)
            .find(|e| fmt::key_cmp(e.key, key).is_ge())
            .filter(|e| e.key == key);
        Ok(hit.map(|e| Handle::from_raw(e.handle)))
    }

    /// Points `key` at `h` in the open transaction; returns the handle it named before.
    pub(crate) async fn name_set(
        &mut self,
        key: &[u8],
        h: Handle,
    ) -> Result<Option<Handle>, Error<D::Error>> {
        if !fmt::key_ok(key) {
            return Err(Error::KeyInvalid);
        }
        // At most two rounds: after a split the key's leaf has room.
        for _ in 0..2 {
            let p = self.place(key).await?;
            let bs = self.layout.bs();
            let blk = self.view(p.leaf, false).await?;
            let leaf = fmt::check_leaf(blk).map_err(|_| corrupt())?;
            // The key's entry (handle offset, handle), or where it goes.
            let mut pos = leaf.end;
            let mut old = None;
            for e in fmt::leaf_entries(blk, leaf) {
                if e.key == key {
                    old = Some((e.handle_at(), e.handle));
                    break;
                }
                if e.key > key {
                    pos = e.at;
                    break;
                }
            }
            if let Some((at, was)) = old {
                crate::format::codec::put_u64(blk, at, h.raw()).ok_or_else(corrupt)?;
                fmt::seal(blk).ok_or_else(corrupt)?;
                self.touched(at, 8);
                self.touched(bs - fmt::SEAL, fmt::SEAL);
                self.stage_view(p.leaf)?;
                return Ok(Some(Handle::from_raw(was)));
            }
            let size = fmt::leaf_entry_size(key.len());
            if leaf.end + size <= bs - fmt::SEAL {
                blk.copy_within(pos..leaf.end, pos + size);
                fmt::put_leaf_entry(blk, pos, key, h.raw()).ok_or_else(corrupt)?;
                fmt::set_counts(blk, leaf.count + 1, Some(leaf.end + size)).ok_or_else(corrupt)?;
                fmt::seal(blk).ok_or_else(corrupt)?;
                self.touched(fmt::COUNT.0, 4);
                self.touched(pos, leaf.end + size - pos);
                self.touched(bs - fmt::SEAL, fmt::SEAL);
                self.stage_view(p.leaf)?;
                return Ok(None);
            }
            // Full: split. Appending past the last key starts the new leaf with the key alone;
            // otherwise the upper half (by bytes) moves.
            let cut = if pos == leaf.end {
                leaf.end
            } else {
                let half = fmt::HEAD + (leaf.end - fmt::HEAD) / 2;
                fmt::leaf_entries(blk, leaf)
                    .map(|e| e.at)
                    .find(|at| *at >= half && *at > fmt::HEAD)
                    .unwrap_or(leaf.end)
            };
            let moved = fmt::leaf_entries(blk, leaf).filter(|e| e.at >= cut).count();
            let sep = KeyBuf::new(
                fmt::leaf_entries(blk, leaf)
                    .find(|e| e.at >= cut)
                    .map_or(key, |e| e.key),
            );
            self.split(p, leaf, cut, moved, sep.get()).await?;
        }
        Err(corrupt())
    }

    /// Splits leaf `p.leaf` (checked as `leaf`): the entries from byte `cut` (`moved` of them)
    /// go to a free leaf, named in the root after `p.d` with separator `sep`.
    async fn split(
        &mut self,
        p: Place,
        leaf: fmt::Leaf,
        cut: usize,
        moved: usize,
        sep: &[u8],
    ) -> Result<(), Error<D::Error>> {
        let bs = self.layout.bs();
        let region = self.names_region()?;
        let free = self.free_leaf().await?.ok_or(Error::NamesFull)?;
        if p.root_end + fmt::root_entry_size(sep.len()) > bs - fmt::SEAL {
            return Err(Error::NamesFull);
        }
        let nb = BlockNo(region.start.0 + u64::from(free));
        // The new leaf is staged straight from the old one's upper part (in the scratch block):
        // its header, those entries and its checksum, over a fresh (zero) block.
        self.view(p.leaf, false).await?;
        self.log_room_for(nb)?;
        let mut head = [0u8; fmt::HEAD];
        fmt::new_leaf_head(&mut head, moved, leaf.end - cut).ok_or_else(corrupt)?;
        {
            let Volume { tx, scratch, .. } = self;
            let body = scratch.get(cut..leaf.end).ok_or_else(corrupt)?;
            let sum = fmt::leaf_sum(&head, body, bs);
            tx.stage::<D::Error>(nb, true)?;
            tx.write::<D::Error>(nb, 0, &head)?;
            tx.write::<D::Error>(nb, fmt::HEAD, body)?;
            tx.write::<D::Error>(nb, bs - fmt::SEAL, &sum.to_le_bytes())?;
        }
        // The old leaf keeps the entries before `cut`.
        if cut < leaf.end {
            let blk = self.scratch_block()?;
            blk.get_mut(cut..leaf.end).ok_or_else(corrupt)?.fill(0);
            fmt::set_counts(blk, leaf.count - moved, Some(cut)).ok_or_else(corrupt)?;
            fmt::seal(blk).ok_or_else(corrupt)?;
            self.touched(fmt::COUNT.0, 4);
            self.touched(cut, leaf.end - cut);
            self.touched(bs - fmt::SEAL, fmt::SEAL);
            self.stage_view(p.leaf)?;
        }
        // The root names the new leaf after the old one.
        let blk = self.view(region.start, false).await?;
        let root = fmt::check_root(blk, region.len).map_err(|_| corrupt())?;
        let at = fmt::dir_entries(blk, root)
            .nth(p.d + 1)
            .map_or(root.end, |e: DirEntry<'_>| e.at);
        let size = fmt::root_entry_size(sep.len());
        blk.copy_within(at..root.end, at + size);
        fmt::put_dir_entry(blk, at, free, sep).ok_or_else(corrupt)?;
        fmt::set_counts(blk, root.leaves + 1, None).ok_or_else(corrupt)?;
        fmt::seal(blk).ok_or_else(corrupt)?;
        self.touched(fmt::COUNT.0, 2);
        self.touched(at, root.end + size - at);
        self.touched(bs - fmt::SEAL, fmt::SEAL);
        self.stage_view(region.start)
    }

    /// Removes `key` in the open transaction; returns the handle it named (`None`: no such key).
    pub(crate) async fn name_remove(
        &mut self,
        key: &[u8],
    ) -> Result<Option<Handle>, Error<D::Error>> {
        if !fmt::key_ok(key) {
            return Err(Error::KeyInvalid);
        }
        let p = self.place(key).await?;
        let bs = self.layout.bs();
        let blk = self.view(p.leaf, false).await?;
        let leaf = fmt::check_leaf(blk).map_err(|_| corrupt())?;
        let Some(e) = fmt::leaf_entries(blk, leaf).find(|e| e.key == key) else {
            return Ok(None);
        };
        let (at, size, h) = (e.at, e.size(), Handle::from_raw(e.handle));
        blk.copy_within(at + size..leaf.end, at);
        blk.get_mut(leaf.end - size..leaf.end)
            .ok_or_else(corrupt)?
            .fill(0);
        fmt::set_counts(blk, leaf.count - 1, Some(leaf.end - size)).ok_or_else(corrupt)?;
        fmt::seal(blk).ok_or_else(corrupt)?;
        self.touched(fmt::COUNT.0, 4);
        self.touched(at, leaf.end - at);
        self.touched(bs - fmt::SEAL, fmt::SEAL);
        self.stage_view(p.leaf)?;
        if leaf.count == 1 && p.leaves > 1 {
            self.drop_leaf(p.d).await?;
        }
        Ok(Some(h))
    }

    /// Removes root entry `d` (its leaf emptied); the new first entry's separator becomes empty.
    async fn drop_leaf(&mut self, d: usize) -> Result<(), Error<D::Error>> {
        let bs = self.layout.bs();
        let region = self.names_region()?;
        let blk = self.view(region.start, false).await?;
        let root = fmt::check_root(blk, region.len).map_err(|_| corrupt())?;
        let e = fmt::dir_entries(blk, root).nth(d).ok_or_else(corrupt)?;
        let (at, size) = (e.at, e.size());
        blk.copy_within(at + size..root.end, at);
        let mut end = root.end - size;
        if d == 0 {
            // The next entry becomes the first: drop its separator.
            let n = fmt::dir_entry_at(blk, at).ok_or_else(corrupt)?;
            let sep = n.sep.len();
            blk.copy_within(at + 3 + sep..end, at + 3);
            *blk.get_mut(at + 2).ok_or_else(corrupt)? = 0;
            end -= sep;
        }
        blk.get_mut(end..root.end).ok_or_else(corrupt)?.fill(0);
        fmt::set_counts(blk, root.leaves - 1, None).ok_or_else(corrupt)?;
        fmt::seal(blk).ok_or_else(corrupt)?;
        self.touched(fmt::COUNT.0, 2);
        self.touched(at, root.end - at);
        self.touched(bs - fmt::SEAL, fmt::SEAL);
        self.stage_view(region.start)
    }

    /// Calls `f(key, handle)` for every name starting with `prefix`, in key order, until `f`
    /// returns `false`. The keys are read through the open transaction, if any.
    pub async fn for_each_name(
        &mut self,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], Handle) -> bool,
    ) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        if prefix.len() > KEY_MAX {
            return Ok(());
        }
        let mut d = self.place(prefix).await.map(|p| p.d)?;
        while let Some((leaf_no, sep)) = self.dir_at(d).await? {
            let sep = sep.get();
            if !sep.is_empty() && !sep.starts_with(prefix) && sep > prefix {
                return Ok(());
            }
            let leaf = self.read_leaf(leaf_no).await?;
            let blk = self.scratch_block()?;
            for e in fmt::leaf_entries(blk, leaf) {
                if e.key.starts_with(prefix) {
                    if !f(e.key, Handle::from_raw(e.handle)) {
                        return Ok(());
                    }
                } else if e.key > prefix {
                    return Ok(());
                }
            }
            d += 1;
        }
        Ok(())
    }

    /// Checks the whole name table (part of [`Volume::verify`]; the `vde check` tool runs it
    /// too): the root and every leaf it names (each checked alone), no two entries naming one
    /// leaf, every leaf's keys within its separators, and every named object live. Returns the
    /// number of names (0 without the `names` module).
    pub async fn verify_names(&mut self) -> Result<u64, Error<D::Error>> {
        if_async! { self.settle().await?; }
        let mut names = 0u64;
        self.abort_tx();
        if self.names.is_none() {
            return Ok(0);
        }
        let root = self.read_root().await?;
        // No two entries name one leaf.
        let blk = self.scratch_block()?;
        if fmt::dir_entries(blk, root).enumerate().any(|(d, e)| {
            fmt::dir_entries(blk, root)
                .skip(d + 1)
                .any(|x| x.leaf == e.leaf)
        }) {
            return Err(corrupt());
        }
        // Each leaf holds only keys within its separators (the separators ascend and each
        // leaf's keys ascend, so all keys ascend).
        for d in 0..root.leaves {
            let (leaf_no, lo) = self.dir_at(d).await?.ok_or_else(corrupt)?;
            let hi = self.dir_at(d + 1).await?.map(|n| n.1);
            let leaf = self.read_leaf(leaf_no).await?;
            let blk = self.scratch_block()?;
            if fmt::leaf_entries(blk, leaf)
                .any(|x| x.key < lo.get() || hi.is_some_and(|h| x.key >= h.get()))
            {
                return Err(corrupt());
            }
            // Every named object is live (the leaf is read again after each object check).
            for i in 0..leaf.count {
                let leaf = self.read_leaf(leaf_no).await?;
                let blk = self.scratch_block()?;
                let x = fmt::leaf_entries(blk, leaf).nth(i).ok_or_else(corrupt)?;
                let h = Handle::from_raw(x.handle);
                self.object_len(h).await.map_err(|e| match e {
                    Error::BadHandle { .. } | Error::ObjectChecksum { .. } => corrupt(),
                    e => e,
                })?;
                names += 1;
            }
        }
        Ok(names)
    }
}

/// Named objects: the operations a caller uses (each one WAL transaction, like `put`).
#[bisync]
impl<'b, D: BlockDevice, const K: usize> Volume<'b, D, K> {
    /// Stores `data` as a new object named `key` (1..=64 bytes) and frees the object the key
    /// named before, all in one transaction: after a power cut the key names the old value or
    /// the new one. Returns the new object's handle.
    pub async fn store(&mut self, key: &[u8], data: &[u8]) -> Result<Handle, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.object_tx(async |v| v.store_in_tx(key, data).await)
            .await
    }

    /// Reads the object named `key` into `buf`; returns its length ([`Error::NameNotFound`] if
    /// no object has that name).
    pub async fn fetch(&mut self, key: &[u8], buf: &mut [u8]) -> Result<usize, Error<D::Error>> {
        if_async! { self.settle().await?; }
        let h = self.lookup(key).await?.ok_or(Error::NameNotFound)?;
        self.get(h, buf).await
    }

    /// The handle of the object named `key`, if any.
    pub async fn lookup(&mut self, key: &[u8]) -> Result<Option<Handle>, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.ensure_index().await?;
        self.abort_tx();
        self.name_lookup(key).await
    }

    /// Whether an object is named `key`.
    pub async fn contains(&mut self, key: &[u8]) -> Result<bool, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.lookup(key).await.map(|h| h.is_some())
    }

    /// Deletes the object named `key` and the name, in one transaction; returns the deleted
    /// object's handle ([`Error::NameNotFound`] if no object has that name).
    pub async fn remove(&mut self, key: &[u8]) -> Result<Handle, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.object_tx(async |v| v.remove_in_tx(key).await).await
    }

    /// The `names` module is not present by default; this adds it (online, one transaction).
    /// Needs the `objects` module.
    pub async fn enable_names(&mut self, now: u64) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        let m = crate::modules::by_bit(8).ok_or(Error::UnknownModule)?;
        self.add_module(m, now).await.map(|_| ())
    }

    /// Whether the `names` module is present.
    pub fn has_names(&self) -> bool {
        self.names.is_some()
    }

    pub(crate) async fn store_in_tx(
        &mut self,
        key: &[u8],
        data: &[u8],
    ) -> Result<Handle, Error<D::Error>> {
        if !fmt::key_ok(key) {
            return Err(Error::KeyInvalid);
        }
        self.names_region()?;
        let h = self.put_in_tx(data, false).await?;
        if let Some(old) = self.name_set(key, h).await? {
            self.delete_in_tx(old).await?;
        }
        Ok(h)
    }

    pub(crate) async fn remove_in_tx(&mut self, key: &[u8]) -> Result<Handle, Error<D::Error>> {
        let old = self.name_remove(key).await?.ok_or(Error::NameNotFound)?;
        self.delete_in_tx(old).await?;
        Ok(old)
    }

    /// Drops the name of object `h`, if it has one (a delete by handle of a named object), in
    /// the open transaction. One pass over the leaves.
    pub(crate) async fn unname_in_tx(&mut self, h: Handle) -> Result<(), Error<D::Error>> {
        if self.names.is_none() {
            return Ok(());
        }
        let mut found = None;
        let mut d = 0;
        while let Some((leaf_no, _)) = self.dir_at(d).await? {
            let leaf = self.read_leaf(leaf_no).await?;
            let blk = self.scratch_block()?;
            if let Some(e) = fmt::leaf_entries(blk, leaf).find(|e| e.handle == h.raw()) {
                found = Some(KeyBuf::new(e.key));
                break;
            }
            d += 1;
        }
        if let Some(k) = found {
            self.name_remove(k.get()).await?;
        }
        Ok(())
    }
}

if_blocking! {
    #[cfg(test)]
    mod tests;
}
