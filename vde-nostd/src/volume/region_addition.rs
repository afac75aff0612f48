//! Online region addition: a module's regions planned from free space and added to the region
//! directory and pointer table in one transaction, their blocks initialised and allocated in the
//! same transaction (all or nothing at a power cut).

use super::*;

// Shared by the blocking and async builds: defined once, in the blocking one.
if_blocking! {
    /// The regions a module addition would take (from [`Volume::can_add_module`]) or took.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[cfg_attr(feature = "defmt", derive(defmt::Format))]
    pub struct ModulePlan {
        /// The module.
        pub module: &'static Module,
        /// Its regions, in catalogue order.
        pub regions: heapless::Vec<Extent, 4>,
        /// Inode size after the addition.
        pub inode_size: u32,
    }
}
if_async! {
    pub use crate::volume::region_addition::{ModulePlan};
}

#[bisync]
impl<'b, D: BlockDevice, const K: usize> Volume<'b, D, K> {
    pub(super) async fn region_entries(&mut self) -> Result<usize, Error<D::Error>> {
        let bs = self.layout.bs();
        let buf = block_of(self.scratch, bs)?;
        let b = BlockNo(self.layout.regdir);
        let Volume { tx, wal, dev, .. } = self;
        read_staged(tx, wal, dev, b, buf).await?;
        regions::dir_check(buf).map_err(|_| Error::Corrupt(Structure::RegionDirectory))
    }

    /// The regions of the module with bit `bit`, from the committed directory.
    pub async fn module_regions(
        &mut self,
        bit: u8,
    ) -> Result<heapless::Vec<RegionEntry, 4>, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.regions_of(bit).await
    }

    /// [`Volume::module_regions`] inside an operation (no recovery check first).
    pub(crate) async fn regions_of(
        &mut self,
        bit: u8,
    ) -> Result<heapless::Vec<RegionEntry, 4>, Error<D::Error>> {
        self.abort_tx();
        let bs = self.layout.bs();
        let buf = block_of(self.scratch, bs)?;
        self.wal
            .read(&mut self.dev, BlockNo(self.layout.rpt), buf)
            .await?;
        let c = Structure::RegionPointerTable;
        let (first, count) = regions::rpt_get(buf, bit as usize).map_err(|_| Error::Corrupt(c))?;
        self.wal
            .read(&mut self.dev, BlockNo(self.layout.regdir), buf)
            .await?;
        let dir = &*buf;
        let mut out = heapless::Vec::new();
        for i in 0..count {
            let idx = usize::from(first) + usize::from(i);
            let e = regions::dir_entry(dir, idx)
                .map_err(|_| Error::Corrupt(Structure::RegionDirectory))?;
            out.push(e).map_err(|_| Error::Corrupt(c))?;
        }
        Ok(out)
    }

    /// The first region of the module with bit `bit`, or `None` if the volume does not have
    /// the module (a module in the manifest without a region is `Corrupt`).
    pub(crate) async fn module_region(
        &mut self,
        bit: u8,
    ) -> Result<Option<Extent>, Error<D::Error>> {
        if !self
            .modules()
            .contains(ModuleSet::from_bits_retain(1u64 << (bit & 63)))
        {
            return Ok(None);
        }
        let regions = self.regions_of(bit).await?;
        regions
            .first()
            .map(|r| Some(r.extent))
            .ok_or(Error::Corrupt(Structure::RegionPointerTable))
    }

    /// Calls `f` with every region directory entry.
    pub async fn for_each_region(
        &mut self,
        f: impl FnMut(&RegionEntry),
    ) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.for_each_region_in_op(f).await
    }

    /// [`Volume::for_each_region`] inside an operation (no recovery check first).
    pub(crate) async fn for_each_region_in_op(
        &mut self,
        mut f: impl FnMut(&RegionEntry),
    ) -> Result<(), Error<D::Error>> {
        self.abort_tx();
        let n = self.region_entries().await?;
        let bs = self.layout.bs();
        let buf = block_of(self.scratch, bs)?;
        for i in 0..n {
            let e = regions::dir_entry(buf, i)
                .map_err(|_| Error::Corrupt(Structure::RegionDirectory))?;
            f(&e);
        }
        Ok(())
    }

    /// Pre-flight for [`Volume::add_module_regions`]: where the module's regions would go. Writes
    /// nothing.
    #[cfg(feature = "module-addition")]
    pub async fn can_add_module(
        &mut self,
        m: &'static Module,
    ) -> Result<ModulePlan, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.abort_tx();
        let r = self.plan_module(m).await;
        self.abort_tx();
        r
    }

    /// Adds module `m` online: allocates its regions and updates bitmap, region directory,
    /// pointer table and both superblocks in one WAL transaction. `now` is the caller's clock.
    #[doc(alias = "OnlineRegionAddition")]
    #[cfg(feature = "module-addition")]
    pub async fn add_module_regions(
        &mut self,
        m: &'static Module,
        now: u64,
    ) -> Result<ModulePlan, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.add_module(m, now).await
    }

    /// [`Volume::add_module_regions`], which format and the modules' own `enable_*` use
    /// whatever the features.
    pub(crate) async fn add_module(
        &mut self,
        m: &'static Module,
        now: u64,
    ) -> Result<ModulePlan, Error<D::Error>> {
        self.abort_tx();
        let r = self.add_module_tx(m, now).await;
        self.abort_tx();
        r
    }

    pub(super) async fn plan_module(
        &mut self,
        m: &'static Module,
    ) -> Result<ModulePlan, Error<D::Error>> {
        if modules::by_bit(m.bit) != Some(m) {
            return Err(Error::UnknownModule);
        }
        if self.modules().contains(m.flag()) {
            return Err(Error::ModuleAlreadyPresent);
        }
        let n = self.region_entries().await?;
        if n.saturating_add(m.regions.len()) > regions::dir_capacity(self.layout.bs()) {
            return Err(Error::DirectoryFull);
        }
        let mut plan = ModulePlan {
            module: m,
            regions: heapless::Vec::new(),
            inode_size: modules::inode_size(self.modules() | m.flag()),
        };
        for i in 0..m.regions.len() {
            let len =
                modules::module_region_blocks(m, i, self.layout.bs(), self.layout.block_count);
            let e = self.alloc(len).await?;
            plan.regions.push(e).map_err(|_| Error::DirectoryFull)?;
        }
        Ok(plan)
    }

    pub(super) async fn add_module_tx(
        &mut self,
        m: &'static Module,
        now: u64,
    ) -> Result<ModulePlan, Error<D::Error>> {
        // The superblocks first, as they are (rewritten last): staged fresh, they count for
        // their few nonzero bytes, not as whole blocks, in a small log's room.
        {
            let sb = self.sb;
            self.stage_superblocks(&sb).await?;
        }
        let plan = self.plan_module(m).await?;
        // The regions' first content next (staged fresh, mostly zeros), before the directory
        // and pointer table, which count whole.
        self.init_module_regions(m, &plan).await?;
        let dir_block = BlockNo(self.layout.regdir);
        let first = self.region_entries().await?;
        {
            let dir = self.view(dir_block, false).await?;
            for (i, (kind, e)) in m.regions.iter().zip(plan.regions.iter()).enumerate() {
                let entry = RegionEntry {
                    module: m.bit,
                    kind: *kind,
                    index: u16::try_from(i).map_err(|_| Error::DirectoryFull)?,
                    extent: *e,
                };
                regions::dir_push(dir, &entry).ok_or(Error::DirectoryFull)?;
            }
            let (at, n) = regions::dir_entries(first, m.regions.len());
            self.touched(at, n);
            self.touched(regions::DIR_COUNT.0, regions::DIR_COUNT.1);
            self.touched(self.layout.bs() - regions::SEAL, regions::SEAL);
            self.stage_view(dir_block)?;
        }
        {
            let rpt_block = BlockNo(self.layout.rpt);
            let rpt = self.view(rpt_block, false).await?;
            regions::rpt_check(rpt).map_err(|_| Error::Corrupt(Structure::RegionPointerTable))?;
            let first = u16::try_from(first).map_err(|_| Error::DirectoryFull)?;
            let count = u16::try_from(m.regions.len()).map_err(|_| Error::DirectoryFull)?;
            regions::rpt_set(rpt, m.bit as usize, first, count)
                .ok_or(Error::Corrupt(Structure::RegionPointerTable))?;
            let (at, n) = regions::rpt_slot(m.bit as usize);
            self.touched(at, n);
            self.touched(self.layout.bs() - regions::SEAL, regions::SEAL);
            self.stage_view(rpt_block)?;
        }
        let mut sb = self.sb;
        sb.manifest |= m.flag().bits();
        sb.free_blocks = self.free_blocks.saturating_add_signed(self.tx_free_delta);
        sb.checkpoint_seq = self.wal.last_seq().next().0;
        sb.inode_size = plan.inode_size;
        sb.modified = now;
        sb.sequence = sb.sequence.saturating_add(1);
        self.stage_superblocks(&sb).await?;
        self.commit_tx().await?;
        self.sb = sb;
        self.on_module_added(m).await?;
        Ok(plan)
    }

    /// Module-specific content written in the same transaction as the regions.
    pub(super) async fn init_module_regions(
        &mut self,
        m: &'static Module,
        plan: &ModulePlan,
    ) -> Result<(), Error<D::Error>> {
        if m.flag() == ModuleSet::OBJECTS {
            #[cfg(feature = "objects")]
            if let Some(r) = plan.regions.first() {
                self.init_index(*r).await?;
            }
            #[cfg(not(feature = "objects"))]
            return Err(Error::NotCompiled);
        }
        if m.flag() == ModuleSet::NAMES {
            if !self.modules().contains(ModuleSet::OBJECTS) {
                return Err(Error::ModuleMissing);
            }
            #[cfg(feature = "names")]
            if let Some(r) = plan.regions.first() {
                self.init_names(*r).await?;
            }
            #[cfg(not(feature = "names"))]
            return Err(Error::NotCompiled);
        }
        let _ = plan;
        Ok(())
    }

    /// Module-specific state loaded after a module is added.
    pub(super) async fn on_module_added(
        &mut self,
        m: &'static Module,
    ) -> Result<(), Error<D::Error>> {
        #[cfg(feature = "objects")]
        if m.flag() == ModuleSet::OBJECTS {
            self.load_objects().await?;
        }
        #[cfg(feature = "names")]
        if m.flag() == ModuleSet::NAMES {
            self.load_names().await?;
        }
        let _ = m;
        Ok(())
    }
}
