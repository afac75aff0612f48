//! `defmt::Format` for the public types that hold borrowed buffers or generic devices, where a
//! derive would be wrong or impossible: each prints a short summary, never buffer contents.

use_mode!(device::BlockDevice);
#[cfg(feature = "objects")]
use_mode!(objects::Batch);
use_mode!(volume::{Transaction, Volume});

impl<D: BlockDevice, const K: usize> defmt::Format for Volume<'_, D, K> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(
            f,
            "Volume {{ layout: {}, superblock: {}, free: {=u64} }}",
            self.layout(),
            self.superblock(),
            self.usage().free_blocks
        )
    }
}

impl<D: BlockDevice, const K: usize> defmt::Format for Transaction<'_, '_, D, K> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "Transaction {{ staged: {=usize} }}", self.len())
    }
}

#[cfg(feature = "objects")]
impl<D: BlockDevice, const K: usize> defmt::Format for Batch<'_, '_, D, K> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "Batch")
    }
}

// The types both builds share: once.
if_blocking! {
    use crate::device::RamDevice;
    use crate::scanner::SliceBitmap;
    use crate::subblock::{SlotBitmap, SlotBitmapRef};
    use crate::tx_buffer::TxBuf;
    use crate::volume::Buffers;

    impl defmt::Format for RamDevice<'_> {
        fn format(&self, f: defmt::Formatter) {
            defmt::write!(
                f,
                "RamDevice {{ blocks: {=u64}, block_size: {=usize} }}",
                self.block_count(),
                self.block_size()
            )
        }
    }

    impl<const K: usize> defmt::Format for Buffers<'_, K> {
        fn format(&self, f: defmt::Formatter) {
            defmt::write!(
                f,
                "Buffers {{ scratch: {=usize}, txn: {=usize}, index: {=usize} }}",
                self.scratch.len(),
                self.txn.len(),
                self.index.len()
            )
        }
    }

    impl<const K: usize> defmt::Format for TxBuf<'_, K> {
        fn format(&self, f: defmt::Formatter) {
            defmt::write!(
                f,
                "TxBuf {{ staged: {=usize}, capacity: {=usize}, bytes: {=usize} of {=usize} }}",
                self.len(),
                self.capacity(),
                self.bytes().1,
                self.bytes().0
            )
        }
    }

    impl defmt::Format for SliceBitmap<'_> {
        fn format(&self, f: defmt::Formatter) {
            use crate::scanner::BitmapSource;
            defmt::write!(f, "SliceBitmap {{ bits: {=u64} }}", self.total_bits())
        }
    }

    impl defmt::Format for SlotBitmap<'_> {
        fn format(&self, f: defmt::Formatter) {
            defmt::write!(
                f,
                "SlotBitmap {{ free units: {=usize} }}",
                self.view().free_units()
            )
        }
    }

    impl defmt::Format for SlotBitmapRef<'_> {
        fn format(&self, f: defmt::Formatter) {
            defmt::write!(
                f,
                "SlotBitmapRef {{ free units: {=usize} }}",
                self.free_units()
            )
        }
    }
}
