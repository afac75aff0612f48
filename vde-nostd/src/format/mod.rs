//! Encoders and decoders for every on-disk structure, apart from the logic that uses them.
//!
//! Each submodule owns one structure and documents its byte layout; `FORMAT.md` at the repository
//! root is the authoritative description. All integers are little-endian; every structure carries
//! an xxh64 checksum. Decoders never panic: any input slice gives `Ok` or an error.

pub mod bitmap_block;
pub mod codec;
pub mod layout;
pub mod object;
pub mod regions;
pub mod slot_index;
pub mod superblock;
pub mod wal_header;
pub mod wal_record;

/// The on-disk format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Why a structure failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DecodeError {
    /// The magic bytes are wrong: this is not the structure.
    BadMagic,
    /// The version is not one this crate understands.
    BadVersion(u32),
    /// The checksum does not match.
    BadChecksum,
    /// A field has an impossible value, or the input is too short.
    BadField,
}

/// xxh64 of `bytes` with `seed`.
pub fn xxh64(bytes: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh64::xxh64(bytes, seed)
}
