//! A reusable power-cut harness (feature `std`): runs a [`Workload`] on a volume over
//! [`NorFlashDevice`]`<`[`SimFlash`]`>` with a power cut at every flash operation in turn, and
//! checks after each cut that the remounted volume matches the workload's model.
//!
//! Owns: [`run`] (the driver), [`Config`], [`Report`], the [`Workload`] trait, and the three
//! standard workloads in [`workloads`] (random block transactions, online module addition, object
//! put / delete / batch).
//!
//! How [`run`] proceeds:
//! 1. formats a blank flash of [`Config::capacity`] bytes and keeps the image as the base;
//! 2. **reference run**: mounts the base, runs the workload with no cut and then a checkpoint
//!    (so every dirty block's write-back home is among the operations), and counts the flash
//!    operations it makes (`N`, reads, programs and erases alike); the reference log it leaves
//!    (for example the handles the object workload was given) is handed to every later check, and
//!    is itself checked after a remount;
//! 3. for every `k` in `0..N` (every [`Config::stride`]-th): restores the base image, mounts,
//!    arms [`SimFlash::arm_power_cut`]`(k)` so the `k`-th operation of the workload is cut (a read
//!    fails, a program or an erase is torn), runs the workload until its first error, reboots,
//!    mounts (no cut), verifies the volume ([`Volume::verify`]) and asks the workload to check the
//!    volume against what it logged: what was acknowledged and what was in flight. The device
//!    is wrapped in [`Unflushed`](unflushed::Unflushed), which records the writes issued since
//!    the last completed flush: besides the state the medium was left in, up to
//!    [`Config::crash_states`] outcomes of those writes (any subset, in any order, one torn; all
//!    of them when there are few) are imposed on the crash image, each remounted and checked
//!    the same way;
//! 4. **second cut**: for every [`Config::second_cut_every`]-th first cut whose recovery replayed a
//!    committed transaction, and every as many-th of the others, it counts the operations of that
//!    recovering mount (`M`) and, for every `j` in `0..M`, restores the crash image, cuts the
//!    mount at its `j`-th operation, reboots, mounts again and runs the same checks (over up to
//!    [`Config::second_crash_states`] outcomes of the recovery's unflushed writes).
//!
//! Every departure is recorded as a violation with the cut point, the kind of operation cut and
//! the tear mode, so a failure is reproducible from the report alone (the damage a cut does
//! depends only on [`Config::seed`], the cut point and the operation number).
//!
//! NOR flash has no volatile write cache ([`NorFlashDevice`]'s flush is a no-op), so what a cut
//! leaves physically is the flash content: finished operations are durable, the cut one is torn.
//! The unflushed-write outcomes go further on purpose: they show that the engine orders every
//! write it depends on with a flush, as it must on a file or a disk with a write cache.
//!
//! Checks every workload makes (see [`workloads`]): `verify`, the acknowledged state, the
//! in-flight operation wholly present (and readable) or wholly absent, and the free-space and
//! object counters equal to the reference run's at that point ([`Snapshot`]).

use std::format;
use std::string::String;
use std::vec;

use vde_nostd::Error;

// Compiled twice, as the engine is: over the blocking volume (`vde_embedded::harness`) and over
// the async one (`vde_embedded::asynch::harness`, the rig's blocking device under
// `FromBlocking`). The media, the rigs and the checks are the same code in both.
if_blocking! {
    use vde_bisync::strip_async as bisync;
    use vde_nostd::{BlockDevice, Volume};
}
if_async! {
    use vde_bisync::keep_async as bisync;
    use vde_nostd::asynch::{BlockDevice, Volume};

    /// Runs an async harness call to completion on this thread (a loop polling with a no-op
    /// waker: the async harness's devices complete at once).
    pub fn block_on<F: core::future::Future>(f: F) -> F::Output {
        let mut f = core::pin::pin!(f);
        let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
        loop {
            if let core::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}

#[cfg(doc)]
use crate::nor::NorFlashDevice;
use crate::sim::{SimConfig, SimFlash};

// The settings, the report and the verdict: one copy for both builds.
if_blocking! {
    pub mod config;
}
if_async! {
    pub use crate::harness::config;
}
use config::{judge, name, Mem};
pub use config::{Config, Report, TearPlan, TX_BLOCKS};

pub mod rig;
pub mod unflushed;
pub mod workloads;

pub use workloads::{
    AddModules, InFlight, ModulesLog, Names, NamesLog, Objects, ObjectsLog, RandomTransactions,
    Snapshot, TxLog,
};

/// A scripted workload with a model of what must survive a power cut.
///
/// `run` must be deterministic: given the same volume content it makes the same calls, so that
/// every cut run follows the reference run up to its cut. It logs, as it goes, what was
/// acknowledged and what is in flight; `check` compares a remounted volume with that log.
#[bisync]
#[allow(async_fn_in_trait)]
pub trait Workload {
    /// What the workload records while it runs (acknowledged and in-flight operations).
    type Log: Default;

    /// Name for reports.
    fn name(&self) -> String;

    /// Runs the workload, stopping at the first error, and logs into `log`.
    async fn run<D: BlockDevice, const K: usize>(
        &self,
        vol: &mut Volume<'_, D, K>,
        log: &mut Self::Log,
    ) -> Result<(), Error<D::Error>>;

    /// Checks a volume remounted after a cut against `log` (what the cut run acknowledged and had
    /// in flight). `reference` is the log of the uncut run: it tells what the in-flight operation
    /// would have produced (e.g. its handles). May change the volume (to show it is usable).
    async fn check<D: BlockDevice, const K: usize>(
        &self,
        vol: &mut Volume<'_, D, K>,
        log: &Self::Log,
        reference: &Self::Log,
    ) -> Result<(), String>;
}

/// Runs `workload` under the harness on a simulated flash of geometry `R`/`W`/`E` (read, write
/// and erase sizes) of [`Config::capacity`] bytes, through [`NorFlashDevice`] (the
/// [`NorRig`](rig::NorRig) under [`run_rig`](rig::run_rig)). Returns an error only if the
/// harness cannot set up (bad geometry, the base image cannot be formatted, or the uncut workload
/// fails or fails its own check); every problem found under power cuts is a violation in the
/// [`Report`].
#[bisync]
pub async fn run<const R: usize, const W: usize, const E: usize, L: Workload>(
    cfg: &Config,
    workload: &L,
) -> Result<Report, String> {
    with_sim_flash::<R, W, E, _>(cfg, async |flash| {
        let mut rig = rig::NorRig::new(flash, cfg.block_size);
        rig::run_rig(cfg, &mut rig, workload).await
    })
    .await
}

/// Calls `f` with a blank simulated flash of geometry `R`/`W`/`E` and [`Config::capacity`]
/// bytes, seeded and with weak bits as `cfg` says (its storage lives for the call).
#[bisync]
pub(crate) async fn with_sim_flash<const R: usize, const W: usize, const E: usize, T>(
    cfg: &Config,
    f: impl AsyncFnOnce(SimFlash<'_, R, W, E>) -> Result<T, String>,
) -> Result<T, String> {
    let sectors = cfg.capacity.div_ceil(E.max(1)).max(1);
    let mut image = vec![0xFFu8; cfg.capacity];
    let mut wear = vec![0u32; sectors];
    let sim = SimConfig {
        weak_bits: cfg.weak_bits,
        ..SimConfig::new(cfg.seed)
    };
    let flash =
        SimFlash::<R, W, E>::new(&mut image, &mut wear, sim).map_err(|e| format!("flash: {e}"))?;
    f(flash).await
}

if_blocking! {
    #[cfg(test)]
    mod tests;
}
