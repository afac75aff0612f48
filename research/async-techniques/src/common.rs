//! Shared plain-sync pieces: layout, errors, FNV-1a checksum, WAL piece and home block encoding.
use embedded_storage::nor_flash::{NorFlashError, NorFlashErrorKind};

pub const BLOCK: usize = 4096;
pub const PIECE: usize = 256;
/// Piece layout: [0] kind, [1] key, [2..4] index, [4..8] seq, [8..10] chunk len, [10..12] total
/// len, [12..252] payload, [252..256] running (chained) checksum.
pub const PAYLOAD: usize = PIECE - 16;
pub const WAL_BASE: u32 = 0;
pub const WAL_SIZE: u32 = 4 * BLOCK as u32;
pub const HOME_BASE: u32 = WAL_BASE + WAL_SIZE;
pub const HOME_BLOCKS: u32 = 8;
pub const FLASH_SIZE: usize = (WAL_SIZE + HOME_BLOCKS * BLOCK as u32) as usize;
/// Home block layout: [0] key, [1] magic, [2..4] len, [4..4+len] data, [4092..4096] checksum.
pub const MAX_DATA: usize = BLOCK - 8;
pub const KIND_DATA: u8 = 0xD1;
pub const KIND_COMMIT: u8 = 0xC0;
pub const HOME_MAGIC: u8 = 0xA5;
pub const FNV_SEED: u32 = 0x811c_9dc5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Device(NorFlashErrorKind),
    TooBig,
    Corrupt,
    NotFound,
}

pub fn dev_err<E: NorFlashError>(e: E) -> Error {
    Error::Device(e.kind())
}

pub fn fnv(mut h: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

pub fn home_addr(key: u8) -> u32 {
    HOME_BASE + (key as u32 % HOME_BLOCKS) * BLOCK as u32
}

pub fn pieces_for(len: usize) -> u16 {
    len.div_ceil(PAYLOAD) as u16
}

/// A staged transaction: what `commit` needs to know about one put.
#[derive(Clone, Copy)]
pub struct Tx {
    pub seq: u32,
    pub key: u8,
    pub len: u16,
    pub csum: u32,
}

impl Tx {
    pub fn begin(seq: u32) -> Self {
        Tx { seq, key: 0, len: 0, csum: 0 }
    }
    pub fn stage(&mut self, key: u8, data: &[u8]) -> Result<(), Error> {
        if data.len() > MAX_DATA {
            return Err(Error::TooBig);
        }
        self.key = key;
        self.len = data.len() as u16;
        self.csum = fnv(FNV_SEED, data);
        Ok(())
    }
}

/// Fill a piece (everything but the trailer). `chunk` is empty for a commit piece, which carries
/// the data checksum instead.
pub fn encode_piece(piece: &mut [u8; PIECE], kind: u8, tx: &Tx, idx: u16, chunk: &[u8]) {
    piece.fill(0xFF);
    piece[0] = kind;
    piece[1] = tx.key;
    piece[2..4].copy_from_slice(&idx.to_le_bytes());
    piece[4..8].copy_from_slice(&tx.seq.to_le_bytes());
    piece[8..10].copy_from_slice(&(chunk.len() as u16).to_le_bytes());
    piece[10..12].copy_from_slice(&tx.len.to_le_bytes());
    if kind == KIND_COMMIT {
        piece[12..16].copy_from_slice(&tx.csum.to_le_bytes());
    } else {
        piece[12..12 + chunk.len()].copy_from_slice(chunk);
    }
}

/// Compute the running checksum over the piece, store it in the trailer, return the new chain.
pub fn seal_piece(piece: &mut [u8; PIECE], chain: u32) -> u32 {
    let c = fnv(chain, &piece[..PIECE - 4]);
    piece[PIECE - 4..].copy_from_slice(&c.to_le_bytes());
    c
}

/// Check a piece read back from the log against the running checksum:
/// `Some((new_chain, kind, seq))`, or `None` at the end of the log.
pub fn check_piece(piece: &[u8; PIECE], chain: u32) -> Option<(u32, u8, u32)> {
    let c = fnv(chain, &piece[..PIECE - 4]);
    let stored = u32::from_le_bytes([piece[252], piece[253], piece[254], piece[255]]);
    let kind = piece[0];
    if c != stored || (kind != KIND_DATA && kind != KIND_COMMIT) {
        return None;
    }
    Some((c, kind, u32::from_le_bytes([piece[4], piece[5], piece[6], piece[7]])))
}

/// Modify the home block image in `scratch` (read-modify-write). Returns false when the block
/// already holds exactly this record, so the caller can skip the erase+program.
pub fn encode_home(scratch: &mut [u8; BLOCK], key: u8, data: &[u8]) -> bool {
    let len = data.len();
    if scratch[0] == key
        && scratch[1] == HOME_MAGIC
        && u16::from_le_bytes([scratch[2], scratch[3]]) as usize == len
        && &scratch[4..4 + len] == data
    {
        return false;
    }
    scratch[0] = key;
    scratch[1] = HOME_MAGIC;
    scratch[2..4].copy_from_slice(&(len as u16).to_le_bytes());
    scratch[4..4 + len].copy_from_slice(data);
    scratch[4 + len..BLOCK - 4].fill(0xFF);
    let c = fnv(FNV_SEED, &scratch[..BLOCK - 4]);
    scratch[BLOCK - 4..].copy_from_slice(&c.to_le_bytes());
    true
}

/// Verify a home block image and copy its data out.
pub fn decode_home(key: u8, scratch: &[u8; BLOCK], out: &mut [u8]) -> Result<usize, Error> {
    if scratch[1] != HOME_MAGIC || scratch[0] != key {
        return Err(Error::NotFound);
    }
    let stored = u32::from_le_bytes([scratch[4092], scratch[4093], scratch[4094], scratch[4095]]);
    if fnv(FNV_SEED, &scratch[..BLOCK - 4]) != stored {
        return Err(Error::Corrupt);
    }
    let len = u16::from_le_bytes([scratch[2], scratch[3]]) as usize;
    if len > MAX_DATA || len > out.len() {
        return Err(Error::TooBig);
    }
    out[..len].copy_from_slice(&scratch[4..4 + len]);
    Ok(len)
}
