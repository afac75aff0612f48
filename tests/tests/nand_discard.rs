//! Discards on NAND: the volume tells the translation layer which blocks a durable transaction
//! freed, so its garbage collection stops copying them. The same churn of large objects (extents
//! freed and allocated again) runs twice on identical simulated parts, once with discards and
//! once through a device that drops them; both are checked against a model, in the session and
//! after a remount, and the copies garbage collection made are compared.

use std::collections::BTreeMap;

use vde_embedded::ftl::{Ftl, FtlConfig, FtlLayout, FtlStats, OwnedFtlMemory};
use vde_embedded::nand::{NandPart, SimNand, SimNandBlock, SimNandConfig};
use vde_embedded::sim::XorShift64;
use vde_nostd::{BlockDevice, BlockNo, FormatOptions, Handle, ModuleSet, Volume};
use vde_tests::Mem;

const BS: usize = 2048;
const BLOCKS: u32 = 24;
const PART: NandPart = NandPart::custom(2048, 64, 32, BLOCKS).with_partial_programs(512, 4);

/// A device that drops discards (every other call passes through).
struct NoDiscard<D>(D);

impl<D: BlockDevice> BlockDevice for NoDiscard<D> {
    type Error = D::Error;
    fn block_size(&self) -> usize {
        self.0.block_size()
    }
    fn block_count(&self) -> u64 {
        self.0.block_count()
    }
    fn read_block(&mut self, b: BlockNo, buf: &mut [u8]) -> Result<(), D::Error> {
        self.0.read_block(b, buf)
    }
    fn write_block(&mut self, b: BlockNo, buf: &[u8]) -> Result<(), D::Error> {
        self.0.write_block(b, buf)
    }
    fn flush(&mut self) -> Result<(), D::Error> {
        self.0.flush()
    }
    fn append_unit(&self) -> usize {
        self.0.append_unit()
    }
    fn append(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> Result<(), D::Error> {
        self.0.append(b, offset, data)
    }
}

fn churn<D: BlockDevice>(dev: D, stats: impl Fn(&mut D) -> FtlStats) -> FtlStats
where
    D::Error: std::fmt::Debug,
{
    let mut mem = Mem::new(BS, 16, 64);
    let opts = FormatOptions {
        modules: ModuleSet::OBJECTS,
        ..FormatOptions::default()
    };
    let mut vol = Volume::<_, 16>::format(dev, &opts, mem.bufs()).unwrap();
    let cap = vol.usage().free_blocks as usize * BS;
    let mut rng = XorShift64::new(0xD15C);
    let mut model: BTreeMap<u32, (Handle, Vec<u8>)> = BTreeMap::new();
    let mut live = 0usize;
    let mut out = vec![0u8; 8 * BS];
    for i in 0..1500u32 {
        let len = BS + rng.below(5 * BS as u64) as usize;
        if live + len > cap / 3 || (model.len() > 4 && rng.below(3) == 0) {
            let k = *model
                .keys()
                .nth(rng.below(model.len() as u64) as usize)
                .unwrap();
            let (h, d) = model.remove(&k).unwrap();
            vol.delete(h).unwrap();
            live -= d.len();
            continue;
        }
        let mut d = vec![0u8; len];
        rng.fill_bytes(&mut d);
        let h = vol.put(&d).unwrap();
        live += d.len();
        model.insert(i, (h, d));
    }
    for (h, d) in model.values() {
        let n = vol.get(*h, &mut out).unwrap();
        assert_eq!(&out[..n], &d[..]);
    }
    vol.verify().unwrap();
    let mut dev = vol.unmount().unwrap();
    let s = stats(&mut dev);
    // Remount (the translation layer's RAM state is kept here; the image is what counts).
    let mut vol = Volume::<_, 16>::mount(dev, mem.bufs()).unwrap();
    for (h, d) in model.values() {
        let n = vol.get(*h, &mut out).unwrap();
        assert_eq!(&out[..n], &d[..]);
    }
    vol.verify().unwrap();
    s
}

#[test]
fn discards_spare_garbage_collection_the_copies_of_freed_blocks() {
    let c = FtlConfig::new(&PART.geometry(BLOCKS), BS);
    let l = FtlLayout::compute(&PART.geometry(BLOCKS), &c).unwrap();
    let mut runs = Vec::new();
    for discard in [true, false] {
        let mut raw = vec![0xFFu8; PART.raw_bytes(BLOCKS)];
        let mut st = vec![SimNandBlock::NEW; BLOCKS as usize];
        let mut nand = SimNand::new(&mut raw, &mut st, &PART, SimNandConfig::new(3)).unwrap();
        let mut ram = OwnedFtlMemory::new(&l);
        let ftl = Ftl::format(&mut nand, ram.mem(), &c).unwrap();
        let s = if discard {
            churn(ftl, |f| f.stats())
        } else {
            churn(NoDiscard(ftl), |f| f.0.stats())
        };
        println!(
            "discards {discard}: {} blocks discarded, {} GC copies, {} GC victims, {} erases, \
             {} pages programmed for {} host writes",
            s.discarded, s.gc_copies, s.gc_victims, s.erases, s.pages_programmed, s.host_writes
        );
        runs.push(s);
    }
    let (with, without) = (runs[0], runs[1]);
    assert!(with.discarded > 1000, "{with:?}");
    assert_eq!(without.discarded, 0);
    // Measured: 707 against 1,224 (the rest are the log's and the metadata's versions).
    assert!(
        with.gc_copies * 3 < without.gc_copies * 2,
        "discards should spare at least a third of the copies: {} vs {}",
        with.gc_copies,
        without.gc_copies
    );
}

/// A transaction that frees an extent and may allocate its blocks again (a batch that deletes
/// one large object and puts another; such blocks take their new content through the log, and
/// the volume discards nothing for that transaction), and lone deletes that are discarded
/// before a put takes the blocks again: every object reads back whole.
#[test]
fn blocks_freed_and_taken_again_in_one_transaction_are_not_discarded() {
    let c = FtlConfig::new(&PART.geometry(BLOCKS), BS);
    let l = FtlLayout::compute(&PART.geometry(BLOCKS), &c).unwrap();
    let mut raw = vec![0xFFu8; PART.raw_bytes(BLOCKS)];
    let mut st = vec![SimNandBlock::NEW; BLOCKS as usize];
    let mut nand = SimNand::new(&mut raw, &mut st, &PART, SimNandConfig::new(3)).unwrap();
    let mut ram = OwnedFtlMemory::new(&l);
    let ftl = Ftl::format(&mut nand, ram.mem(), &c).unwrap();
    let mut mem = Mem::new(BS, 16, 64);
    let opts = FormatOptions {
        modules: ModuleSet::OBJECTS,
        ..FormatOptions::default()
    };
    let mut vol = Volume::<_, 16>::format(ftl, &opts, mem.bufs()).unwrap();
    let mut out = vec![0u8; 8 * BS];
    let mut h = vol.put(&vec![1u8; 3 * BS]).unwrap();
    for v in 2..6u8 {
        let data = vec![v; 3 * BS];
        let mut b = vol.batch().unwrap();
        b.delete(h).unwrap();
        let new = b.put(&data).unwrap();
        b.commit().unwrap();
        h = new;
        let n = vol.get(h, &mut out).unwrap();
        assert_eq!(&out[..n], &data[..], "version {v}");
        // A lone delete is discarded, and the next put takes the blocks again.
        vol.delete(h).unwrap();
        h = vol.put(&data).unwrap();
        let n = vol.get(h, &mut out).unwrap();
        assert_eq!(&out[..n], &data[..], "version {v} again");
    }
    assert!(vol.device().stats().discarded > 0);
}
