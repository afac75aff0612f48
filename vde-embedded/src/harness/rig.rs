//! The power-cut harness over any simulated medium and block device (feature `std`): the same
//! procedure as [`run`](super::run), driven through a [`Rig`] instead of a fixed
//! `NorFlashDevice<SimFlash>`, so the three workloads also run over the translation layer
//! ([`Ftl`]) on a simulated NAND ([`NandRig`]) or on a NOR flash seen as NAND ([`NorFtlRig`]).
//!
//! Owns: [`Rig`] and [`CutMedium`] (what the driver needs from a medium), [`run_rig`] (the
//! driver), the rigs ([`NorRig`] over any [`SimNor`]: a bare [`SimFlash`] or one held to MCU
//! rules by [`McuFlash`]; the RAM, NAND and NOR-as-NAND rigs), [`run_mcu`] and [`run_nand`]
//! (runs set up in one call).
//!
//! Differences from [`run`](super::run):
//! - the rig opens the block device, which for a translation layer is a mount (a scan of the
//!   medium); its operations count as mount operations, so the second-cut sweeps cut them too;
//! - before every run and after every image restore the rig is powered up afresh
//!   ([`Rig::power_up`]): a simulated NAND recomputes its program-order state from the restored
//!   content and sets its operation count to what it was at that point (0 for a run, the start
//!   of the recovering mount for a second cut), so [`Timebomb`]s go off at the same operations
//!   in every repetition;
//! - `Config::capacity` is not used (the rig's medium has its own size); `Config::block_size`
//!   must equal the device's block size.

use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

use vde_nostd::BlockDevice;

if_blocking! {
    use vde_bisync::strip_async as bisync;
    use vde_nostd::Volume;
    /// The rig's device as the volume gets it: itself.
    type Wrapped<D> = D;
    fn wrap<D>(dev: D) -> Wrapped<D> {
        dev
    }
    fn unwrap_mut<D>(dev: &mut Wrapped<D>) -> &mut D {
        dev
    }
}
if_async! {
    use vde_bisync::keep_async as bisync;
    use vde_nostd::asynch::device::FromBlocking;
    use vde_nostd::asynch::Volume;
    /// The rig's (blocking) device as the async volume gets it: each call completes at once,
    /// so every device call of the async path is where a cut lands.
    type Wrapped<D> = FromBlocking<D>;
    fn wrap<D>(dev: D) -> Wrapped<D> {
        FromBlocking(dev)
    }
    fn unwrap_mut<D>(dev: &mut Wrapped<D>) -> &mut D {
        &mut dev.0
    }
}

use super::unflushed::{read_all, Unflushed, Window};
use super::{judge, name, Config, Mem, Report, Workload, TX_BLOCKS};
use crate::fault::FaultInjector;
use crate::ftl::{Ftl, FtlConfig, FtlLayout, OwnedFtlMemory};
use crate::nand::nor::{NorNand, NorNandLayout};
use crate::nand::{NandFlash, NandPart, SimNand, SimNandBlock, SimNandConfig, Timebomb};
use crate::nor::NorFlashDevice;
use crate::sim::{FlashStats, McuFlash, McuRules, OpKind, SimFlash, SimRam, TearMode, XorShift64};
use embedded_storage::nor_flash::NorFlash;

/// What the driver needs from a simulated medium.
pub trait CutMedium {
    /// Operations that reached the medium (only differences are used).
    fn op_count(&self) -> u64;
    /// Lets `after` operations complete and cuts the next one.
    fn arm_power_cut(&mut self, after: u64);
    /// Whether power is lost.
    fn power_lost(&self) -> bool;
    /// The kind of operation the cut interrupted.
    fn cut_kind(&self) -> Option<OpKind>;
    /// Operation counters.
    fn stats(&self) -> FlashStats;
    /// Zeroes the operation counters.
    fn reset_stats(&mut self);
}

impl<const R: usize, const W: usize, const E: usize> CutMedium for SimFlash<'_, R, W, E> {
    fn op_count(&self) -> u64 {
        SimFlash::op_count(self)
    }
    fn arm_power_cut(&mut self, after: u64) {
        SimFlash::arm_power_cut(self, after);
    }
    fn power_lost(&self) -> bool {
        SimFlash::power_lost(self)
    }
    fn cut_kind(&self) -> Option<OpKind> {
        SimFlash::cut_kind(self)
    }
    fn stats(&self) -> FlashStats {
        SimFlash::stats(self)
    }
    fn reset_stats(&mut self) {
        SimFlash::reset_stats(self);
    }
}

impl<const R: usize, const W: usize, const E: usize> CutMedium
    for McuFlash<'_, SimFlash<'_, R, W, E>>
{
    fn op_count(&self) -> u64 {
        self.inner().op_count()
    }
    fn arm_power_cut(&mut self, after: u64) {
        self.inner_mut().arm_power_cut(after);
    }
    fn power_lost(&self) -> bool {
        self.inner().power_lost()
    }
    fn cut_kind(&self) -> Option<OpKind> {
        self.inner().cut_kind()
    }
    fn stats(&self) -> FlashStats {
        self.inner().stats()
    }
    fn reset_stats(&mut self) {
        self.inner_mut().reset_stats();
    }
}

impl CutMedium for SimRam<'_> {
    fn op_count(&self) -> u64 {
        SimRam::op_count(self)
    }
    fn arm_power_cut(&mut self, after: u64) {
        SimRam::arm_power_cut(self, after);
    }
    fn power_lost(&self) -> bool {
        SimRam::power_lost(self)
    }
    fn cut_kind(&self) -> Option<OpKind> {
        SimRam::cut_kind(self)
    }
    fn stats(&self) -> FlashStats {
        SimRam::stats(self)
    }
    fn reset_stats(&mut self) {
        SimRam::reset_stats(self);
    }
}

/// Any device under a [`FaultInjector`] is a medium the driver can cut.
impl<D: BlockDevice, C> CutMedium for FaultInjector<'_, D, C> {
    fn op_count(&self) -> u64 {
        FaultInjector::op_count(self)
    }
    fn arm_power_cut(&mut self, after: u64) {
        FaultInjector::arm_power_cut(self, after);
    }
    fn power_lost(&self) -> bool {
        FaultInjector::power_lost(self)
    }
    fn cut_kind(&self) -> Option<OpKind> {
        FaultInjector::cut_kind(self)
    }
    fn stats(&self) -> FlashStats {
        FaultInjector::stats(self)
    }
    fn reset_stats(&mut self) {
        FaultInjector::reset_stats(self);
    }
}

impl CutMedium for SimNand<'_> {
    fn op_count(&self) -> u64 {
        SimNand::op_count(self)
    }
    fn arm_power_cut(&mut self, after: u64) {
        SimNand::arm_power_cut(self, after);
    }
    fn power_lost(&self) -> bool {
        SimNand::power_lost(self)
    }
    fn cut_kind(&self) -> Option<OpKind> {
        SimNand::cut_kind(self)
    }
    fn stats(&self) -> FlashStats {
        SimNand::stats(self)
    }
    fn reset_stats(&mut self) {
        SimNand::reset_stats(self);
    }
}

/// A simulated medium with a way to open it as a block device.
pub trait Rig {
    /// The simulated medium.
    type Medium: CutMedium;
    /// The block device over it.
    type Dev<'r>: BlockDevice
    where
        Self: 'r;

    /// Powers the medium up afresh over its current image: power on, no cut armed, the given
    /// fault seed and tear mode, and (where the medium can) its operation count set to
    /// `op_count`, so timebombs go off at the same operations in every run.
    fn power_up(&mut self, seed: u64, tear: TearMode, op_count: u64);
    /// Restores power after a cut; the image stays as the cut left it.
    fn reboot(&mut self);
    /// The medium's raw content.
    fn image(&self) -> &[u8];
    /// The medium's raw content, mutably (to restore a snapshot; call
    /// [`power_up`](Self::power_up) afterwards).
    fn image_mut(&mut self) -> &mut [u8];
    /// The medium.
    fn medium(&mut self) -> &mut Self::Medium;
    /// Opens the block device (may read the medium, and fail if the power is cut).
    fn open(&mut self) -> Result<Self::Dev<'_>, String>;
    /// The medium under an open device.
    fn medium_of<'a>(dev: &'a mut Self::Dev<'_>) -> &'a mut Self::Medium;
}

type RVol<'b, 'r, R> = Volume<'b, Wrapped<<R as Rig>::Dev<'r>>, TX_BLOCKS>;

#[bisync]
async fn mount<'b, 'r, R: Rig>(
    rig: &'r mut R,
    mem: &'b mut Mem,
) -> Result<RVol<'b, 'r, R>, String> {
    let dev = rig.open()?;
    let partial = dev.reads_partial();
    Volume::mount(wrap(dev), mem.bufs(partial))
        .await
        .map_err(|e| format!("mount: {e:?}"))
}

/// Every block of the rig's device as it is now (the content at the last flush, for
/// [`Unflushed`]).
fn blocks_of<R: Rig>(rig: &mut R) -> Result<Vec<u8>, String> {
    let mut dev = rig.open()?;
    read_all(&mut dev).map_err(|e| format!("read: {e:?}"))
}

/// Remounts and runs every check; returns the operation count at the start of the mount, the
/// mount's operations, and whether it replayed a committed transaction.
#[bisync]
async fn remount_and_check<L: Workload, R: Rig>(
    workload: &L,
    rig: &mut R,
    mem: &mut Mem,
    log: &L::Log,
    reference: &L::Log,
) -> Result<(u64, u64, bool), String> {
    let start = rig.medium().op_count();
    let mut vol = mount(rig, mem).await?;
    let ops = R::medium_of(unwrap_mut(vol.device())).op_count() - start;
    let replayed = vol.recovery_report().replayed > 0;
    vol.verify().await.map_err(|e| format!("verify: {e:?}"))?;
    workload.check(&mut vol, log, reference).await?;
    Ok((start, ops, replayed))
}

/// What [`check_outcomes`] needs besides the rig: the logs, the cut's label and randomness, the
/// image the cut left and the writes it left unflushed.
struct Cut<'a, L: Workload> {
    workload: &'a L,
    log: &'a L::Log,
    reference: &'a L::Log,
    at: &'a str,
    seed: u64,
    tear: TearMode,
    crash: &'a [u8],
    window: &'a Window,
}

/// After a cut (the rig rebooted, its image `cut.crash`, as the cut left it): checks up to `max`
/// outcomes of the unflushed writes in `cut.window`, the first being the medium's own state,
/// each imposed on the crash image and remounted. Returns what [`remount_and_check`] returned
/// for the first outcome, if it passed. The rig's image is left as the last check left it.
#[bisync]
async fn check_outcomes<L: Workload, R: Rig>(
    cut: &Cut<'_, L>,
    rig: &mut R,
    mem: &mut Mem,
    max: usize,
    report: &mut Report,
    keep: usize,
) -> Option<(u64, u64, bool)> {
    let (crash, window) = (cut.crash, cut.window);
    let crash_ops = rig.medium().op_count();
    let mut first = None;
    for (i, st) in window.states(max, cut.seed).iter().enumerate() {
        report.states += 1;
        let at = if i == 0 {
            String::from(cut.at)
        } else {
            format!("{}, unflushed writes: {}", cut.at, st.describe(window))
        };
        if i > 0 {
            rig.image_mut().copy_from_slice(crash);
            rig.power_up(cut.seed ^ (i as u64) << 32, cut.tear, crash_ops);
            let imposed = rig
                .open()
                .and_then(|mut dev| st.apply(window, &mut dev).map_err(|e| format!("{e:?}")));
            if let Err(e) = imposed {
                report.violation(keep, format!("{at}: imposing the outcome: {e}"));
                continue;
            }
        }
        match remount_and_check(cut.workload, rig, mem, cut.log, cut.reference).await {
            Ok(x) if i == 0 => first = Some(x),
            Ok(_) => {}
            Err(e) => report.violation(keep, format!("{at}: {e}")),
        }
    }
    first
}

/// Runs `workload` under the harness on `rig` (see [`run`](super::run) for the procedure and
/// the [module docs](self) for the differences). The rig's current image is the blank medium.
#[bisync]
pub async fn run_rig<R: Rig, L: Workload>(
    cfg: &Config,
    rig: &mut R,
    workload: &L,
) -> Result<Report, String> {
    let keep = cfg.keep_violations;
    let mut mem = Mem::new(
        cfg.block_size,
        cfg.index_entries,
        cfg.small_log_page,
        cfg.cache_blocks,
    );
    let seed =
        |salt: u64| XorShift64::new(cfg.seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64();

    // 1. The base image.
    rig.power_up(seed(0), TearMode::Prefix, 0);
    {
        let dev = rig.open()?;
        if dev.block_size() != cfg.block_size {
            return Err(format!(
                "device block size {} differs from the config's {}",
                dev.block_size(),
                cfg.block_size
            ));
        }
        let partial = dev.reads_partial();
        let vol = Volume::<_, TX_BLOCKS>::format(wrap(dev), &cfg.format, mem.bufs(partial))
            .await
            .map_err(|e| format!("format: {e:?}"))?;
        vol.unmount().await.map_err(|e| format!("unmount: {e:?}"))?;
    }
    let base = rig.image().to_vec();
    let base_blocks = blocks_of(rig)?;

    // 2. The reference run.
    let mut report = Report {
        workload: workload.name(),
        ..Report::default()
    };
    let mut reference = L::Log::default();
    rig.power_up(seed(1), TearMode::Prefix, 0);
    {
        let mut vol = mount(rig, &mut mem).await?;
        let m = R::medium_of(unwrap_mut(vol.device()));
        m.reset_stats();
        let start = m.op_count();
        let r = match workload.run(&mut vol, &mut reference).await {
            Ok(()) => vol.checkpoint().await,
            Err(e) => Err(e),
        };
        r.map_err(|e| format!("the uncut workload failed: {e:?}"))?;
        let m = R::medium_of(unwrap_mut(vol.device()));
        report.ops = m.op_count() - start;
        report.reference = m.stats();
    }
    remount_and_check(workload, rig, &mut mem, &reference, &reference)
        .await
        .map_err(|e| format!("the uncut workload fails its own check: {e}"))?;

    // 3. A cut at every operation, with the outcomes of its unflushed writes; 4. a second cut
    // during some recoveries.
    let mut other_recoveries = 0u64;
    let mut k = 0u64;
    while k < report.ops {
        for (t, &tear) in cfg.tear.modes(k).iter().enumerate() {
            report.points += 1;
            let run_seed = seed(k.wrapping_mul(4) + 2 + t as u64);
            rig.image_mut().copy_from_slice(&base);
            rig.power_up(run_seed, tear, 0);
            let mut log = L::Log::default();
            let (failed, window) = {
                let mut dev = Unflushed::new(rig.open()?, base_blocks.clone());
                let failed = {
                    let partial = dev.reads_partial();
                    let mut vol = Volume::<_, TX_BLOCKS>::mount(wrap(&mut dev), mem.bufs(partial))
                        .await
                        .map_err(|e| format!("mount: {e:?}"))?;
                    R::medium_of(unwrap_mut(vol.device()).inner()).arm_power_cut(k);
                    // The checkpoint after the workload writes every dirty block home: its
                    // write-back is cut at every operation too.
                    let r = match workload.run(&mut vol, &mut log).await {
                        Ok(()) => vol.checkpoint().await,
                        Err(e) => Err(e),
                    };
                    r.err().map(|e| format!("{e:?}"))
                };
                (failed, dev.window())
            };
            let kind = rig.medium().cut_kind();
            let at = format!("cut at op {k} ({}, {tear:?} tear)", name(kind));
            match kind {
                Some(OpKind::Read) => report.cut_reads += 1,
                Some(OpKind::Program) => report.cut_programs += 1,
                Some(OpKind::Erase) => report.cut_erases += 1,
                None => {}
            }
            let lost = rig.medium().power_lost();
            if let Err(e) = judge(failed, lost) {
                report.violation(keep, format!("{at}: workload {e}"));
            }
            rig.reboot();
            let crash = rig.image().to_vec();
            let cut = Cut {
                workload,
                log: &log,
                reference: &reference,
                at: &at,
                seed: run_seed,
                tear,
                crash: &crash,
                window: &window,
            };
            let first = check_outcomes(&cut, rig, &mut mem, cfg.crash_states, &mut report, keep);
            let Some((mount_start, mount_ops, replayed)) = first.await else {
                continue;
            };
            let nth = if replayed {
                report.replaying_recoveries += 1;
                report.replaying_recoveries
            } else {
                other_recoveries += 1;
                other_recoveries
            };
            if cfg.second_cut_every == 0 || !(nth - 1).is_multiple_of(cfg.second_cut_every) {
                continue;
            }
            report.second_sweeps += 1;
            rig.image_mut().copy_from_slice(&crash);
            rig.power_up(run_seed, tear, mount_start);
            let crash_blocks = blocks_of(rig)?;
            for j in 0..mount_ops {
                report.second_points += 1;
                rig.image_mut().copy_from_slice(&crash);
                rig.power_up(run_seed ^ j, tear, mount_start);
                rig.medium().arm_power_cut(j);
                let (failed, window) = match rig.open() {
                    Err(e) => (Some(e), Window::default()),
                    Ok(dev) => {
                        let mut dev = Unflushed::new(dev, crash_blocks.clone());
                        let partial = dev.reads_partial();
                        let failed =
                            Volume::<_, TX_BLOCKS>::mount(wrap(&mut dev), mem.bufs(partial))
                                .await
                                .err()
                                .map(|e| format!("mount: {e:?}"));
                        (failed, dev.window())
                    }
                };
                let at2 = format!(
                    "{at}, second cut at mount op {j} ({})",
                    name(rig.medium().cut_kind())
                );
                let lost = rig.medium().power_lost();
                if let Err(e) = judge(failed, lost) {
                    report.violation(keep, format!("{at2}: mount {e}"));
                }
                rig.reboot();
                let crash2 = rig.image().to_vec();
                let cut2 = Cut {
                    at: &at2,
                    seed: run_seed ^ j,
                    crash: &crash2,
                    window: &window,
                    ..cut
                };
                check_outcomes(
                    &cut2,
                    rig,
                    &mut mem,
                    cfg.second_crash_states,
                    &mut report,
                    keep,
                )
                .await;
            }
        }
        k = k.saturating_add(cfg.stride.max(1));
    }
    report.weak_reads = rig.medium().stats().weak_reads;
    Ok(report)
}

/// A RAM disk ([`SimRam`]): writes land at once and a cut tears the one in progress at sector
/// granularity; with the unflushed-write outcomes, the model of a file or a disk with a write
/// cache.
pub struct RamRig<'m> {
    ram: SimRam<'m>,
}

impl<'m> RamRig<'m> {
    /// A rig of `ram` (its content is the blank medium).
    pub fn new(ram: SimRam<'m>) -> Self {
        RamRig { ram }
    }
}

impl<'m> Rig for RamRig<'m> {
    type Medium = SimRam<'m>;
    type Dev<'r>
        = &'r mut SimRam<'m>
    where
        Self: 'r;

    fn power_up(&mut self, seed: u64, tear: TearMode, _op_count: u64) {
        self.ram.reboot();
        self.ram.set_faults(seed, tear);
    }
    fn reboot(&mut self) {
        self.ram.reboot();
    }
    fn image(&self) -> &[u8] {
        self.ram.bytes()
    }
    fn image_mut(&mut self) -> &mut [u8] {
        self.ram.bytes_mut()
    }
    fn medium(&mut self) -> &mut Self::Medium {
        &mut self.ram
    }
    fn open(&mut self) -> Result<Self::Dev<'_>, String> {
        Ok(&mut self.ram)
    }
    fn medium_of<'a>(dev: &'a mut Self::Dev<'_>) -> &'a mut Self::Medium {
        dev
    }
}

/// A run on a RAM disk of `blocks` blocks of [`Config::block_size`] bytes ([`RamRig`] under
/// [`run_rig`]).
#[bisync]
pub async fn run_ram<L: Workload>(
    cfg: &Config,
    blocks: usize,
    workload: &L,
) -> Result<Report, String> {
    let mut mem = vec![0u8; blocks * cfg.block_size];
    let ram = SimRam::new(&mut mem, cfg.block_size, cfg.seed).map_err(|e| format!("{e:?}"))?;
    run_rig(cfg, &mut RamRig::new(ram), workload).await
}

/// A simulated NOR medium the [`NorRig`] drives: a [`SimFlash`], or one wrapped by
/// [`McuFlash`]. What the rig needs beyond the flash traits: the raw content and power.
pub trait SimNor: NorFlash + CutMedium {
    /// The raw content.
    fn image(&self) -> &[u8];
    /// The raw content, mutably (to restore a snapshot; [`SimNor::power_up`] follows).
    fn image_mut(&mut self) -> &mut [u8];
    /// Power on afresh over the current content, with this fault seed and tear mode.
    fn power_up(&mut self, seed: u64, tear: TearMode);
    /// Power back after a cut, the content as the cut left it.
    fn reboot(&mut self);
}

impl<const R: usize, const W: usize, const E: usize> SimNor for SimFlash<'_, R, W, E> {
    fn image(&self) -> &[u8] {
        self.bytes()
    }
    fn image_mut(&mut self) -> &mut [u8] {
        self.bytes_mut()
    }
    fn power_up(&mut self, seed: u64, tear: TearMode) {
        SimFlash::reboot(self);
        self.config_mut().seed = seed;
        self.config_mut().tear = tear;
    }
    fn reboot(&mut self) {
        SimFlash::reboot(self);
    }
}

/// The MCU rules' counters follow a restored image ([`McuFlash::resync`]); a cut keeps them
/// exact.
impl<const R: usize, const W: usize, const E: usize> SimNor
    for McuFlash<'_, SimFlash<'_, R, W, E>>
{
    fn image(&self) -> &[u8] {
        self.inner().bytes()
    }
    fn image_mut(&mut self) -> &mut [u8] {
        self.inner_mut().bytes_mut()
    }
    fn power_up(&mut self, seed: u64, tear: TearMode) {
        SimNor::power_up(self.inner_mut(), seed, tear);
        self.resync();
    }
    fn reboot(&mut self) {
        self.inner_mut().reboot();
    }
}

/// A simulated NOR medium through [`NorFlashDevice`]: the rig of [`run`](super::run) (a bare
/// [`SimFlash`]) and of [`run_mcu`] (one held to MCU program rules).
pub struct NorRig<M> {
    flash: M,
    bs: usize,
}

impl<M: SimNor> NorRig<M> {
    /// A rig of `flash` (its content is the blank medium) with vde blocks of `block_size` bytes.
    pub fn new(flash: M, block_size: usize) -> Self {
        NorRig {
            flash,
            bs: block_size,
        }
    }

    /// The medium (for what it counted after a run).
    pub fn flash(&self) -> &M {
        &self.flash
    }
}

impl<M: SimNor> Rig for NorRig<M> {
    type Medium = M;
    type Dev<'r>
        = NorFlashDevice<&'r mut M>
    where
        Self: 'r;

    fn power_up(&mut self, seed: u64, tear: TearMode, _op_count: u64) {
        self.flash.power_up(seed, tear);
    }
    fn reboot(&mut self) {
        self.flash.reboot();
    }
    fn image(&self) -> &[u8] {
        self.flash.image()
    }
    fn image_mut(&mut self) -> &mut [u8] {
        self.flash.image_mut()
    }
    fn medium(&mut self) -> &mut Self::Medium {
        &mut self.flash
    }
    fn open(&mut self) -> Result<Self::Dev<'_>, String> {
        NorFlashDevice::new(&mut self.flash, self.bs, 0, None).map_err(|e| format!("geometry: {e}"))
    }
    fn medium_of<'a>(dev: &'a mut Self::Dev<'_>) -> &'a mut Self::Medium {
        dev.flash_mut()
    }
}

/// Runs `workload` under the harness on a simulated flash of geometry `R`/`W`/`E` held to
/// `rules` ([`McuFlash`] in a [`NorRig`]): [`Config::capacity`] bytes, weak bits and tear modes as configured.
/// Every program the rules refused, in any run, is a violation in the [`Report`].
#[bisync]
pub async fn run_mcu<const R: usize, const W: usize, const E: usize, L: Workload>(
    cfg: &Config,
    rules: McuRules,
    workload: &L,
) -> Result<Report, String> {
    let (nu, nr) = rules.counters(cfg.capacity, W);
    let (mut units, mut rows) = (vec![0u8; nu], vec![0u16; nr]);
    super::with_sim_flash::<R, W, E, _>(cfg, async |flash| {
        let mcu = McuFlash::new(flash, rules, &mut units, &mut rows)
            .map_err(|e| format!("rules: {e}"))?;
        let mut rig = NorRig::new(mcu, cfg.block_size);
        let mut report = run_rig(cfg, &mut rig, workload).await?;
        let refused = rig.flash().violations();
        if refused > 0 {
            report.violations += refused;
            if report.details.len() < cfg.keep_violations {
                report.details.push(format!(
                    "MCU flash rules: {refused} programs refused, the first at {:#x}",
                    rig.flash().first_violation().unwrap_or(0)
                ));
            }
        }
        Ok(report)
    })
    .await
}

/// The translation layer over a [`SimNand`].
pub struct NandRig<'m> {
    sim: SimNand<'m>,
    ftl: FtlConfig,
    ram: OwnedFtlMemory,
    /// The simulator's timebombs, re-armed at every power-up.
    timebombs: [Option<Timebomb>; crate::nand::sim::MAX_TIMEBOMBS],
}

impl<'m> NandRig<'m> {
    /// A rig of `sim` (its content is the blank medium; its timebombs are kept for every run)
    /// with the translation layer configured by `ftl`.
    pub fn new(sim: SimNand<'m>, ftl: FtlConfig) -> Result<Self, String> {
        let layout = FtlLayout::compute(&sim.geometry(), &ftl).map_err(|e| format!("{e}"))?;
        let timebombs = sim.config().timebombs;
        Ok(NandRig {
            sim,
            ftl,
            ram: OwnedFtlMemory::new(&layout),
            timebombs,
        })
    }

    /// The simulated NAND.
    pub fn sim(&mut self) -> &mut SimNand<'m> {
        &mut self.sim
    }
}

impl<'m> Rig for NandRig<'m> {
    type Medium = SimNand<'m>;
    type Dev<'r>
        = Ftl<'r, &'r mut SimNand<'m>>
    where
        Self: 'r;

    fn power_up(&mut self, seed: u64, tear: TearMode, op_count: u64) {
        let mut c = SimNandConfig::new(seed);
        c.tear = tear;
        c.timebombs = self.timebombs;
        self.sim.restart(c, op_count);
    }
    fn reboot(&mut self) {
        self.sim.reboot();
    }
    fn image(&self) -> &[u8] {
        self.sim.bytes()
    }
    fn image_mut(&mut self) -> &mut [u8] {
        self.sim.bytes_mut()
    }
    fn medium(&mut self) -> &mut SimNand<'m> {
        &mut self.sim
    }
    fn open(&mut self) -> Result<Self::Dev<'_>, String> {
        Ftl::mount(&mut self.sim, self.ram.mem(), &self.ftl).map_err(|e| format!("ftl mount: {e}"))
    }
    fn medium_of<'a>(dev: &'a mut Self::Dev<'_>) -> &'a mut SimNand<'m> {
        dev.nand_mut()
    }
}

/// The translation layer over a NOR [`SimFlash`] seen as NAND ([`NorNand`]): wear-leveled NOR.
pub struct NorFtlRig<'m, const R: usize, const W: usize, const E: usize> {
    nand: NorNand<SimFlash<'m, R, W, E>>,
    ftl: FtlConfig,
    ram: OwnedFtlMemory,
}

impl<'m, const R: usize, const W: usize, const E: usize> NorFtlRig<'m, R, W, E> {
    /// A rig of `flash` laid out as `layout`, with the translation layer configured by `ftl`.
    pub fn new(
        flash: SimFlash<'m, R, W, E>,
        layout: NorNandLayout,
        ftl: FtlConfig,
    ) -> Result<Self, String> {
        let nand = NorNand::new(flash, layout).map_err(|e| format!("{e}"))?;
        let l = FtlLayout::compute(&nand.geometry(), &ftl).map_err(|e| format!("{e}"))?;
        Ok(NorFtlRig {
            nand,
            ftl,
            ram: OwnedFtlMemory::new(&l),
        })
    }
}

impl<'m, const R: usize, const W: usize, const E: usize> Rig for NorFtlRig<'m, R, W, E> {
    type Medium = SimFlash<'m, R, W, E>;
    type Dev<'r>
        = Ftl<'r, &'r mut NorNand<SimFlash<'m, R, W, E>>>
    where
        Self: 'r;

    fn power_up(&mut self, seed: u64, tear: TearMode, _op_count: u64) {
        let f = self.nand.flash_mut();
        f.reboot();
        f.config_mut().seed = seed;
        f.config_mut().tear = tear;
    }
    fn reboot(&mut self) {
        self.nand.flash_mut().reboot();
    }
    fn image(&self) -> &[u8] {
        self.nand.flash().bytes()
    }
    fn image_mut(&mut self) -> &mut [u8] {
        self.nand.flash_mut().bytes_mut()
    }
    fn medium(&mut self) -> &mut Self::Medium {
        self.nand.flash_mut()
    }
    fn open(&mut self) -> Result<Self::Dev<'_>, String> {
        Ftl::mount(&mut self.nand, self.ram.mem(), &self.ftl).map_err(|e| format!("ftl mount: {e}"))
    }
    fn medium_of<'a>(dev: &'a mut Self::Dev<'_>) -> &'a mut Self::Medium {
        dev.nand_mut().flash_mut()
    }
}

/// A NAND run set up in one call: a simulated `part` of `blocks` blocks with `factory_bad`
/// seeded bad blocks and the given timebombs, the translation layer configured by `ftl`
/// (`ftl.block_size` must equal `cfg.block_size`), and `workload` run under [`run_rig`].
#[bisync]
pub async fn run_nand<L: Workload>(
    cfg: &Config,
    part: &NandPart,
    blocks: u32,
    factory_bad: u32,
    timebombs: &[Timebomb],
    ftl: &FtlConfig,
    workload: &L,
) -> Result<Report, String> {
    let mut mem = vec![0xFFu8; part.raw_bytes(blocks)];
    SimNand::factory_init(&mut mem, part, factory_bad, cfg.seed);
    let mut state = vec![SimNandBlock::NEW; blocks as usize];
    let mut conf = SimNandConfig::new(cfg.seed);
    for &t in timebombs {
        if !conf.add_timebomb(t) {
            return Err(String::from("too many timebombs"));
        }
    }
    let sim = SimNand::new(&mut mem, &mut state, part, conf).map_err(|e| format!("{e}"))?;
    let mut rig = NandRig::new(sim, *ftl)?;
    run_rig(cfg, &mut rig, workload).await
}
