//! Fake NOR flash over a caller-provided RAM slice: write ANDs bits in, erase sets 0xFF.
//! Implements both the blocking and the async embedded-storage traits (async futures are ready).
use embedded_storage::nor_flash as b;
use embedded_storage_async::nor_flash as a;
use embedded_storage::nor_flash::NorFlashErrorKind;

pub struct RamFlash<'m> {
    pub mem: &'m mut [u8],
}

impl<'m> RamFlash<'m> {
    pub fn new(mem: &'m mut [u8]) -> Self {
        RamFlash { mem }
    }
    fn range(&self, off: u32, len: usize) -> Result<core::ops::Range<usize>, NorFlashErrorKind> {
        let s = off as usize;
        match s.checked_add(len) {
            Some(e) if e <= self.mem.len() => Ok(s..e),
            _ => Err(NorFlashErrorKind::OutOfBounds),
        }
    }
    fn do_read(&mut self, off: u32, buf: &mut [u8]) -> Result<(), NorFlashErrorKind> {
        let r = self.range(off, buf.len())?;
        buf.copy_from_slice(&self.mem[r]);
        Ok(())
    }
    fn do_write(&mut self, off: u32, data: &[u8]) -> Result<(), NorFlashErrorKind> {
        let r = self.range(off, data.len())?;
        for (m, d) in self.mem[r].iter_mut().zip(data) {
            *m &= *d;
        }
        Ok(())
    }
    fn do_erase(&mut self, from: u32, to: u32) -> Result<(), NorFlashErrorKind> {
        if from > to || from % 4096 != 0 || to % 4096 != 0 {
            return Err(NorFlashErrorKind::NotAligned);
        }
        let r = self.range(from, (to - from) as usize)?;
        self.mem[r].fill(0xFF);
        Ok(())
    }
}

impl b::ErrorType for RamFlash<'_> {
    type Error = NorFlashErrorKind;
}
impl b::ReadNorFlash for RamFlash<'_> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.do_read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.mem.len()
    }
}
impl b::NorFlash for RamFlash<'_> {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 4096;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.do_erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.do_write(offset, bytes)
    }
}
impl a::ReadNorFlash for RamFlash<'_> {
    const READ_SIZE: usize = 1;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.do_read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.mem.len()
    }
}
impl a::NorFlash for RamFlash<'_> {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 4096;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.do_erase(from, to)
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.do_write(offset, bytes)
    }
}
