//! Encoders and decoders for every on-disk structure, apart from the logic that uses them.
//!
//! Each submodule owns one structure and documents its byte layout; `FORMAT.md` at the repository
//! root is the authoritative description. All integers are little-endian; every structure carries
//! an xxh64 checksum. Decoders never panic: any input slice gives `Ok` or an error.

pub mod bitmap_block;
pub mod codec;
pub mod counters;
pub mod layout;
pub mod names;
pub mod object;
pub mod regions;
pub mod rescue;
pub mod slot_index;
pub mod superblock;
pub mod wal_header;
pub mod wal_record;

/// The on-disk format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 3;

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
    // Through the streaming hasher the log needs anyway: one implementation in the binary
    // (the one-shot `xxhash_rust::xxh64::xxh64` is ~0.8 KB more code on Thumb).
    let mut h = xxhash_rust::xxh64::Xxh64::new(seed);
    h.update(bytes);
    h.digest()
}

/// Writes the checksum trailer every sealed structure carries: xxh64(`b[..at]`, seed 0) at `at`.
pub fn seal_sum(b: &mut [u8], at: usize) -> Option<()> {
    let sum = xxh64(b.get(..at)?, 0);
    codec::put_u64(b, at, sum)
}

/// Checks the checksum trailer written by [`seal_sum`]: `BadChecksum` if it does not hold,
/// `BadField` if `b` is too short to hold it.
pub fn check_sum(b: &[u8], at: usize) -> Result<(), DecodeError> {
    let f = DecodeError::BadField;
    if xxh64(b.get(..at).ok_or(f)?, 0) != codec::get_u64(b, at).ok_or(f)? {
        return Err(DecodeError::BadChecksum);
    }
    Ok(())
}

/// Checks the 8-byte magic at offset 0.
pub fn check_magic(b: &[u8], magic: &[u8; 8]) -> Result<(), DecodeError> {
    if b.get(..8) != Some(magic.as_slice()) {
        return Err(DecodeError::BadMagic);
    }
    Ok(())
}

/// Checks the `u32` format version at offset 8.
pub fn check_version(b: &[u8]) -> Result<(), DecodeError> {
    let version = codec::get_u32(b, 8).ok_or(DecodeError::BadField)?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::BadVersion(version));
    }
    Ok(())
}

/// Checks that every byte from `from` to the end is zero (reserved space); `BadField` if not.
pub fn check_zero_from(b: &[u8], from: usize) -> Result<(), DecodeError> {
    if b.get(from..)
        .is_some_and(|rest| rest.iter().any(|x| *x != 0))
    {
        return Err(DecodeError::BadField);
    }
    Ok(())
}

/// Starts encoding a versioned structure: zeroes `out`, writes `magic` and the format version.
pub fn start(out: &mut [u8], magic: &[u8; 8]) -> Option<()> {
    out.fill(0);
    codec::put_bytes(out, 0, magic)?;
    codec::put_u32(out, 8, FORMAT_VERSION)
}
