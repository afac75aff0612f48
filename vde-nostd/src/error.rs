//! The one error type of the core. Every variant names something a caller can act on; the
//! device's own error is carried unchanged in [`Error::Device`].
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
            Error::KeyInvalid => f.write_str("a key must be 1 to 64 bytes"),
            Error::NameNotFound => f.write_str("no object has that name"),
            Error::NamesFull => f.write_str("the name table is full"),
            Error::NotCompiled => f.write_str(
                "this build of vde-nostd leaves out the code this needs (a cargo feature)",
            ),
        }
    }
}
