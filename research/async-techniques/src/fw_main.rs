// Shared firmware body, `include!`d by every src/bin/fw_*.rs except fw_base. The bin defines
// `Vol`, `new_vol`, `op_put`, `op_get`, `op_recover`. The three `fw_*` wrappers are
// `#[inline(never)]` only so that the stack tool has a symbol to start from; the engine below them
// is inlined or not as the optimizer likes.
use async_techniques::common::{Error, BLOCK, FLASH_SIZE};
use async_techniques::ramflash::RamFlash;
use core::hint::black_box;
use cortex_m_rt::entry;
use panic_halt as _;

#[inline(never)]
fn fw_put(v: &mut Vol<'_>, key: u8, d: &[u8], s: &mut [u8; BLOCK]) -> Result<(), Error> {
    op_put(v, key, d, s)
}
#[inline(never)]
fn fw_get(v: &mut Vol<'_>, key: u8, o: &mut [u8], s: &mut [u8; BLOCK]) -> Result<usize, Error> {
    op_get(v, key, o, s)
}
#[inline(never)]
fn fw_recover(v: &mut Vol<'_>) -> Result<u32, Error> {
    op_recover(v)
}

#[entry]
fn main() -> ! {
    let mut mem = [0xFFu8; FLASH_SIZE];
    let mut scratch = [0u8; BLOCK];
    let mut out = [0u8; 300];
    let mut v = new_vol(RamFlash::new(black_box(&mut mem[..])));
    let _ = black_box(fw_recover(&mut v));
    loop {
        let d = black_box([0x5Au8; 300]);
        let key = black_box(3u8);
        let _ = black_box(fw_put(&mut v, key, &d, &mut scratch));
        let _ = black_box(fw_get(&mut v, key, &mut out, &mut scratch));
        black_box(&mut out);
    }
}
