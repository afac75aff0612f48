//! The model engine, written ONCE with `async fn`/`.await` (candidate B; also candidate A's
//! engine). `lib.rs` includes this file twice: in `blocking` `#[bisync]` strips `async`/`.await`,
//! in `asynch` it keeps them. Call path of a put (5 levels down to the device):
//! `Volume::put -> Volume::commit -> Wal::append -> Wal::write_piece -> device.write`,
//! then `Wal::flush -> Wal::write_piece`, then `home_write` (read-modify-write via `scratch`).
use super::bisync;
use super::Flash;
use crate::common::*;

pub struct Wal {
    pub head: u32,
    pub chain: u32,
}

pub struct Volume<F> {
    pub dev: F,
    pub wal: Wal,
    pub seq: u32,
}

impl<F: Flash> Volume<F> {
    pub fn new(dev: F) -> Self {
        Volume { dev, wal: Wal { head: 0, chain: FNV_SEED }, seq: 0 }
    }

    #[bisync]
    pub async fn put(&mut self, key: u8, data: &[u8], scratch: &mut [u8; BLOCK]) -> Result<(), Error> {
        let mut tx = Tx::begin(self.seq);
        tx.stage(key, data)?;
        self.commit(&tx, data, scratch).await?;
        self.seq = self.seq.wrapping_add(1);
        Ok(())
    }

    #[bisync]
    async fn commit(&mut self, tx: &Tx, data: &[u8], scratch: &mut [u8; BLOCK]) -> Result<(), Error> {
        self.wal.append(&mut self.dev, tx, data).await?;
        self.wal.flush(&mut self.dev, tx).await?;
        home_write(&mut self.dev, tx.key, data, scratch).await
    }

    #[bisync]
    pub async fn get(&mut self, key: u8, out: &mut [u8], scratch: &mut [u8; BLOCK]) -> Result<usize, Error> {
        self.dev.read(home_addr(key), &mut scratch[..]).await.map_err(dev_err)?;
        decode_home(key, scratch, out)
    }

    /// Scan the log piece by piece until the running checksum breaks; returns pieces found.
    #[bisync]
    pub async fn recover(&mut self) -> Result<u32, Error> {
        let mut piece = [0u8; PIECE];
        let mut off = 0u32;
        let mut chain = FNV_SEED;
        let mut n = 0u32;
        let mut last = None;
        while off + PIECE as u32 <= WAL_SIZE {
            self.dev.read(WAL_BASE + off, &mut piece).await.map_err(dev_err)?;
            match check_piece(&piece, chain) {
                Some((c, kind, seq)) => {
                    chain = c;
                    if kind == KIND_COMMIT {
                        last = Some(seq);
                    }
                }
                None => break,
            }
            off += PIECE as u32;
            n += 1;
        }
        self.wal.head = off;
        self.wal.chain = chain;
        self.seq = last.map_or(0, |s: u32| s.wrapping_add(1));
        Ok(n)
    }
}

impl Wal {
    #[bisync]
    async fn append<F: Flash>(&mut self, dev: &mut F, tx: &Tx, data: &[u8]) -> Result<(), Error> {
        for (idx, chunk) in data.chunks(PAYLOAD).enumerate() {
            let mut piece = [0u8; PIECE];
            encode_piece(&mut piece, KIND_DATA, tx, idx as u16, chunk);
            self.write_piece(dev, &mut piece).await?;
        }
        Ok(())
    }

    #[bisync]
    async fn flush<F: Flash>(&mut self, dev: &mut F, tx: &Tx) -> Result<(), Error> {
        let mut piece = [0u8; PIECE];
        encode_piece(&mut piece, KIND_COMMIT, tx, pieces_for(tx.len as usize), &[]);
        self.write_piece(dev, &mut piece).await
    }

    #[bisync]
    async fn write_piece<F: Flash>(&mut self, dev: &mut F, piece: &mut [u8; PIECE]) -> Result<(), Error> {
        if self.head + PIECE as u32 > WAL_SIZE {
            dev.erase(WAL_BASE, WAL_BASE + WAL_SIZE).await.map_err(dev_err)?;
            self.head = 0;
            self.chain = FNV_SEED;
        }
        self.chain = seal_piece(piece, self.chain);
        dev.write(WAL_BASE + self.head, &piece[..]).await.map_err(dev_err)?;
        self.head += PIECE as u32;
        Ok(())
    }
}

/// Read-modify-write of the key's 4096-byte home block through the caller's scratch buffer.
#[bisync]
async fn home_write<F: Flash>(dev: &mut F, key: u8, data: &[u8], scratch: &mut [u8; BLOCK]) -> Result<(), Error> {
    let addr = home_addr(key);
    dev.read(addr, &mut scratch[..]).await.map_err(dev_err)?;
    if !encode_home(scratch, key, data) {
        return Ok(());
    }
    dev.erase(addr, addr + BLOCK as u32).await.map_err(dev_err)?;
    for (i, chunk) in scratch.chunks(PIECE).enumerate() {
        dev.write(addr + (i * PIECE) as u32, chunk).await.map_err(dev_err)?;
    }
    Ok(())
}
