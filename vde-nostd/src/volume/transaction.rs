//! Block transactions: [`Transaction`] stages whole-block writes, allocations and releases; its
//! commit is one WAL transaction, and dropping it rolls back without I/O.

use super::*;

/// A transaction on a volume: stage block writes, allocate and release blocks, then commit (one
/// WAL transaction) or drop to roll back. Nothing reaches the device before commit.
#[doc(alias = "WalJournaledRegionWriter")]
pub struct Transaction<'v, 'b, D: BlockDevice, const K: usize> {
    pub(super) vol: &'v mut Volume<'b, D, K>,
    /// The volume's recovery generation when the transaction began (async: a recovery since
    /// means the staged changes are gone).
    #[allow(dead_code)] // read by the async build only
    pub(super) generation: u32,
}

#[bisync]
impl<D: BlockDevice, const K: usize> Transaction<'_, '_, D, K> {
    if_async! {
        /// Recovers the volume first if an operation was dropped half-way, and fails with
        /// [`Error::Interrupted`] if a recovery since [`Volume::begin`] dropped what this
        /// transaction staged.
        async fn settle(&mut self) -> Result<(), Error<D::Error>> {
            self.vol.settle().await?;
            if device::generation(&self.vol.dev) != self.generation {
                return Err(Error::Interrupted);
            }
            Ok(())
        }
    }

    /// Stages a whole-block write of `data` to data-area block `b` (one block of the `txn`
    /// memory and a range's bookkeeping; on [`Error::TxCapacity`] nothing is staged and the
    /// transaction can still commit what it holds).
    pub async fn write(&mut self, b: BlockNo, data: &[u8]) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        let l = &self.vol.layout;
        if b.0 < l.data_start || b.0 >= l.block_count {
            return Err(Error::OutOfRange);
        }
        if data.len() != l.bs() {
            return Err(Error::BufferTooSmall { need: l.bs() });
        }
        let v = &mut *self.vol;
        v.log_room_for(b)?;
        let (room, used) = v.tx.bytes();
        if !v.wal.is_dirty(b) {
            // The log takes the whole block: nothing of its committed content is needed.
            if used.saturating_add(crate::tx_buffer::RANGE_OVERHEAD + data.len()) > room {
                return Err(Error::TxCapacity);
            }
            v.tx.stage::<D::Error>(b, true)?;
            return v.tx.write(b, 0, data);
        }
        // The log may extend the block's chain: only the bytes that differ from its content.
        let bs = v.layout.bs();
        v.view(b, false).await?;
        let Volume { tx, scratch, .. } = v;
        let cur = block_of(scratch, bs)?;
        let mut need = 0usize;
        crate::wal::diff_ranges(data, Some(cur), &mut |s, e| {
            need += e - s + crate::tx_buffer::RANGE_OVERHEAD;
        });
        if used.saturating_add(need) > room {
            return Err(Error::TxCapacity);
        }
        tx.stage::<D::Error>(b, false)?;
        let mut err = None;
        crate::wal::diff_ranges(data, Some(cur), &mut |s, e| {
            if err.is_none() {
                if let Err(x) = tx.write::<D::Error>(b, s, data.get(s..e).unwrap_or(&[])) {
                    err = Some(x);
                }
            }
        });
        err.map_or(Ok(()), Err)
    }

    /// Reads block `b` as this transaction would leave it.
    pub async fn read(&mut self, b: BlockNo, buf: &mut [u8]) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.vol.read_through(b, buf).await
    }

    /// Allocates the first free run of `n` blocks.
    pub async fn allocate(&mut self, n: u64) -> Result<Extent, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.vol.alloc(n).await
    }

    /// Releases the blocks of `e` (they must be allocated data blocks).
    pub async fn release(&mut self, e: Extent) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.vol.mark(e, false).await
    }

    /// Sets the object counters this transaction leaves (they are logged in its commit marker
    /// and kept in the WAL header at checkpoints). For repair tools that rewrite the slot
    /// index: the engine keeps them itself for every object operation, and mount refuses
    /// counters that disagree with the index.
    /// Fails with [`Error::ModuleMissing`] on a volume without the objects module.
    #[cfg(feature = "objects")]
    pub fn set_object_counters(
        &mut self,
        c: crate::format::counters::Counters,
    ) -> Result<(), Error<D::Error>> {
        let o = self.vol.objects.as_mut().ok_or(Error::ModuleMissing)?;
        o.counters = c;
        self.vol.tx_sets_counters = true;
        Ok(())
    }

    /// Block updates staged so far.
    pub fn len(&self) -> usize {
        self.vol.tx.len()
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.vol.tx.is_empty()
    }

    /// Commits: durable when this returns `Ok`.
    #[allow(unused_mut)] // `settle` borrows it mutably in the async build
    pub async fn commit(mut self) -> Result<Seq, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.vol.commit_tx().await
    }

    /// Discards every staged change; the device is untouched.
    pub fn rollback(self) {}
}

impl<D: BlockDevice, const K: usize> Drop for Transaction<'_, '_, D, K> {
    fn drop(&mut self) {
        self.vol.abort_tx();
    }
}
