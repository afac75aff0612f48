//! The core's errors: [`Error`], the umbrella every operation's error converts into, and
//! [`MountError`], the narrower one of the entry point (mount and format), whose few cases a
//! firmware tells apart at boot. Every variant names something a caller can act on; the device's
//! own error is carried unchanged in `Device`.
//!
//! There is no `From<E>` for a device error `E`: such a blanket impl would forbid every other
//! `From` into [`Error`] (for the adapters' set-up errors, such as vde-embedded's geometry
//! error), so the core wraps device errors itself (`map_err(Error::Device)`).

/// What went wrong. `E` is the block device's error type. New variants may come in a minor
/// release (`#[non_exhaustive]`): match the ones you act on and keep a catch-all arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error<E> {
    /// The block device reported an error.
    Device(E),
    /// A caller-provided buffer is too small (`need` bytes required).
    BufferTooSmall {
        /// Bytes required.
        need: usize,
    },
    /// The geometry is unusable: block size not a power of two in 512..=65536, too few blocks,
    /// or a block count that does not match the device.
    InvalidGeometry,
    /// Neither superblock copy carries the vde magic: this is not a vde image.
    NotFormatted,
    /// The image was written by an unsupported format version.
    UnsupportedVersion {
        /// The version found on the device.
        found: u32,
    },
    /// An on-disk structure failed its checksum or its consistency checks.
    Corrupt(Structure),
    /// The transaction holds more block updates than its capacity, or its data buffer is full.
    TxCapacity,
    /// The transaction is larger than the whole write-ahead log.
    TxTooLarge,
    /// A block address is outside the device or inside a reserved metadata area.
    OutOfRange,
    /// Not enough free space (no free run of the requested length).
    NoSpace,
    /// No module with that name or bit exists in the catalogue.
    UnknownModule,
    /// The module is already present on the volume.
    ModuleAlreadyPresent,
    /// The region directory has no room for another region.
    DirectoryFull,
    /// The object is larger than the packer accepts (block_size / 2) or than the volume allows.
    ObjectTooLarge,
    /// The operation needs a module this volume does not have: `objects` for the object API,
    /// `names` (and `objects`) for named objects.
    ModuleMissing,
    /// The in-memory or on-disk slot index is full.
    IndexFull,
    /// The handle does not name a live object (stale, freed, out of range or forged).
    BadHandle {
        /// The handle's raw value.
        handle: u64,
    },
    /// The object's bytes do not match the checksum written with them.
    ObjectChecksum {
        /// The handle's raw value.
        handle: u64,
    },
    /// A text handle could not be parsed.
    HandleSyntax,
    /// An earlier operation of this batch failed, so the whole batch was rolled back.
    BatchAborted,
    /// An operation of the async engine ([`crate::asynch`]) was dropped half-way (a timeout, a
    /// `select`) while this transaction or batch was open: the volume recovered as from a power
    /// cut there, and what the transaction staged is gone. Begin it again.
    Interrupted,
    /// A key is empty or longer than 64 bytes.
    KeyInvalid,
    /// No object has that name.
    NameNotFound,
    /// The name table has no room for another key (its region is full).
    NamesFull,
    /// The operation needs code this build left out (a cargo feature of `vde-nostd`: `objects`
    /// or `names` to add those modules).
    NotCompiled,
}

/// Which on-disk structure was found corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Structure {
    /// Both superblock copies are damaged, or the chosen copy is inconsistent.
    Superblock,
    /// Both WAL headers are damaged or inconsistent with the superblock.
    WalHeader,
    /// A committed WAL transaction has an impossible shape (target outside the image, bad length).
    WalRecord,
    /// An allocation bitmap block failed its checksum.
    Bitmap,
    /// The region directory failed its checksum or lists impossible regions.
    RegionDirectory,
    /// The region pointer table failed its checksum or points at impossible entries.
    RegionPointerTable,
    /// The slot index failed its checksum or is inconsistent.
    SlotIndex,
    /// The extent map, or a whole-block object's extent header, is damaged or inconsistent.
    Extent,
    /// The name table failed its checksum or is inconsistent.
    Names,
}

/// Why [`crate::Volume::mount`], [`crate::Volume::format`], [`crate::Volume::mount_or_format`] or
/// [`crate::Volume::mount_or_format_in`] failed. A firmware's boot tells these apart: a blank or
/// half-formatted device ([`MountError::NotFormatted`]: format it), a damaged volume
/// ([`MountError::Corrupt`]: keep it for a report or a repair), memory or geometry that does not
/// fit (a build problem), the device's own failure. Converts into [`Error`] with `From`, so `?`
/// works in a function that returns the umbrella error. New variants may come in a minor release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum MountError<E> {
    /// The block device reported an error.
    Device(E),
    /// No valid superblock (a blank or erased device), or a format that did not finish.
    NotFormatted,
    /// An on-disk structure failed its checksum or its consistency checks.
    Corrupt(Structure),
    /// The image was written by an unsupported format version.
    UnsupportedVersion {
        /// The version found on the device.
        found: u32,
    },
    /// The device's geometry is unusable (see [`Error::InvalidGeometry`]), or is not the one
    /// the superblock records.
    InvalidGeometry,
    /// A buffer is below its minimum ([`crate::Buffers::scratch_min`],
    /// [`crate::Buffers::txn_min`]): `need` bytes.
    BufferTooSmall {
        /// Bytes required.
        need: usize,
    },
    /// The slot-index memory ([`crate::Buffers::index`]) cannot hold the volume's shared
    /// blocks: give it more (a larger [`crate::MemoryPlan::shared_blocks`]).
    IndexFull,
    /// A format: the transaction capacity is below what adding a module takes (7 blocks for
    /// `objects` or `names`).
    TxCapacity,
    /// A format: the device, or its log, has no room for the modules asked for.
    TooSmall,
    /// The volume or the format needs a module this build left out (a cargo feature).
    NotCompiled,
    /// An error no mount or format is expected to meet, kept whole for a report.
    Other(Error<E>),
}

impl<E> From<Error<E>> for MountError<E> {
    fn from(e: Error<E>) -> Self {
        match e {
            Error::Device(e) => MountError::Device(e),
            Error::NotFormatted => MountError::NotFormatted,
            Error::Corrupt(s) => MountError::Corrupt(s),
            Error::UnsupportedVersion { found } => MountError::UnsupportedVersion { found },
            Error::InvalidGeometry => MountError::InvalidGeometry,
            Error::BufferTooSmall { need } => MountError::BufferTooSmall { need },
            Error::IndexFull => MountError::IndexFull,
            Error::TxCapacity => MountError::TxCapacity,
            Error::TxTooLarge | Error::NoSpace | Error::DirectoryFull => MountError::TooSmall,
            Error::NotCompiled => MountError::NotCompiled,
            other => MountError::Other(other),
        }
    }
}

impl<E> From<MountError<E>> for Error<E> {
    fn from(e: MountError<E>) -> Self {
        match e {
            MountError::Device(e) => Error::Device(e),
            MountError::NotFormatted => Error::NotFormatted,
            MountError::Corrupt(s) => Error::Corrupt(s),
            MountError::UnsupportedVersion { found } => Error::UnsupportedVersion { found },
            MountError::InvalidGeometry => Error::InvalidGeometry,
            MountError::BufferTooSmall { need } => Error::BufferTooSmall { need },
            MountError::IndexFull => Error::IndexFull,
            MountError::TxCapacity => Error::TxCapacity,
            MountError::TooSmall => Error::NoSpace,
            MountError::NotCompiled => Error::NotCompiled,
            MountError::Other(e) => e,
        }
    }
}

impl<E: core::fmt::Debug> core::fmt::Display for MountError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The cases the umbrella error has too read as it says them.
        let same = |e: Error<&E>, f: &mut core::fmt::Formatter<'_>| e.fmt(f);
        match self {
            MountError::NotFormatted => {
                f.write_str("not a vde image (no valid superblock, or an unfinished format)")
            }
            MountError::TooSmall => {
                f.write_str("the device or its log has no room for the modules asked for")
            }
            MountError::IndexFull => {
                f.write_str("the slot-index memory cannot hold the volume's shared blocks")
            }
            MountError::TxCapacity => {
                f.write_str("transaction capacity below what adding a module takes")
            }
            MountError::Device(e) => same(Error::Device(e), f),
            MountError::Corrupt(s) => same(Error::Corrupt(*s), f),
            MountError::UnsupportedVersion { found } => {
                same(Error::UnsupportedVersion { found: *found }, f)
            }
            MountError::InvalidGeometry => same(Error::InvalidGeometry, f),
            MountError::BufferTooSmall { need } => same(Error::BufferTooSmall { need: *need }, f),
            MountError::NotCompiled => same(Error::NotCompiled, f),
            MountError::Other(e) => e.fmt(f),
        }
    }
}

impl<E: core::fmt::Debug> core::fmt::Display for Error<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Device(e) => write!(f, "device error: {e:?}"),
            Error::BufferTooSmall { need } => write!(f, "buffer too small: {need} bytes needed"),
            Error::InvalidGeometry => f.write_str("invalid geometry"),
            Error::NotFormatted => f.write_str("not a vde image (no superblock magic)"),
            Error::UnsupportedVersion { found } => {
                write!(f, "unsupported format version {found}")
            }
            Error::Corrupt(s) => write!(f, "corrupt metadata: {s:?}"),
            Error::TxCapacity => f.write_str("transaction capacity exceeded"),
            Error::TxTooLarge => f.write_str("transaction larger than the write-ahead log"),
            Error::OutOfRange => f.write_str("block address out of range"),
            Error::NoSpace => f.write_str("not enough free space"),
            Error::UnknownModule => f.write_str("unknown module"),
            Error::ModuleAlreadyPresent => f.write_str("module already present"),
            Error::DirectoryFull => f.write_str("region directory full"),
            Error::ObjectTooLarge => f.write_str("object too large"),
            Error::ModuleMissing => {
                f.write_str("the module this needs (objects or names) is not present")
            }
            Error::IndexFull => f.write_str("slot index full"),
            Error::BadHandle { handle } => write!(f, "bad handle {handle:016x}"),
            Error::ObjectChecksum { handle } => {
                write!(f, "checksum mismatch for object {handle:016x}")
            }
            Error::HandleSyntax => f.write_str("malformed handle text"),
            Error::BatchAborted => f.write_str("batch rolled back after an earlier error"),
            Error::Interrupted => f.write_str(
                "transaction lost: an operation was dropped half-way and the volume recovered",
            ),
            Error::KeyInvalid => f.write_str("a key must be 1 to 64 bytes"),
            Error::NameNotFound => f.write_str("no object has that name"),
            Error::NamesFull => f.write_str("the name table is full"),
            Error::NotCompiled => f.write_str(
                "this build of vde-nostd leaves out the code this needs (a cargo feature)",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{RamDevice, RamError};

    /// A firmware-style boot: `?` from the mount's error into the umbrella one.
    fn boot(img: &mut [u8]) -> Result<u64, Error<RamError>> {
        const PLAN: crate::MemoryPlan = crate::MemoryPlan::new(512);
        let mut mem = <crate::Memory!(PLAN)>::new();
        let dev = RamDevice::new(img, 512).ok_or(Error::InvalidGeometry)?;
        let vol = crate::Volume::mount(dev, mem.buffers())?;
        Ok(vol.usage().free_blocks)
    }

    #[test]
    fn a_mount_error_converts_into_the_umbrella_error_and_back() {
        let mut img = [0u8; 512 * 64];
        assert_eq!(boot(&mut img), Err(Error::NotFormatted));
        for (m, e) in [
            (
                MountError::Device(RamError::OutOfRange),
                Error::Device(RamError::OutOfRange),
            ),
            (
                MountError::Corrupt(Structure::Bitmap),
                Error::Corrupt(Structure::Bitmap),
            ),
            (MountError::IndexFull, Error::IndexFull),
            (MountError::TxCapacity, Error::TxCapacity),
            (MountError::NotCompiled, Error::NotCompiled),
            (MountError::Other(Error::KeyInvalid), Error::KeyInvalid),
        ] {
            assert_eq!(Error::from(m), e);
            assert_eq!(MountError::from(e), m);
        }
        // The cases both have read the same.
        {
            extern crate std;
            use std::string::ToString;
            let m = MountError::<RamError>::Corrupt(Structure::Bitmap);
            assert_eq!(m.to_string(), Error::from(m).to_string());
            let d = MountError::Device(RamError::OutOfRange);
            assert_eq!(d.to_string(), Error::from(d).to_string());
        }
        // The format's "no room" errors are one case for a caller.
        for e in [Error::NoSpace, Error::TxTooLarge, Error::DirectoryFull] {
            assert_eq!(MountError::<RamError>::from(e), MountError::TooSmall);
        }
    }
}
