//! Host measurements: (1) the candidates leave byte-identical flash images, (2) size of the async
//! futures, (3) ns per put+get pair, blocking and async. Run with `--profile bench-host`.
use async_techniques::common::{BLOCK, FLASH_SIZE};
use async_techniques::ramflash::RamFlash;
use async_techniques::{a, asynch, blocking, sans_io};
use core::hint::black_box;
use embassy_futures::block_on;
use std::time::Instant;

const N: u32 = 100_000;
const ROUNDS: u32 = 3;

fn data_for(i: u32) -> [u8; 300] {
    let mut d = [0u8; 300];
    for (j, b) in d.iter_mut().enumerate() {
        *b = (i as usize * 7 + j) as u8;
    }
    d
}

macro_rules! run {
    ($name:expr, $vol:ident, $mem:ident, $put:expr, $get:expr, $rec:expr) => {{
        let mut scratch = [0u8; BLOCK];
        let mut out = [0u8; 300];
        let _ = $rec;
        let mut ns = f64::MAX;
        for _round in 0..ROUNDS {
            let t = Instant::now();
            for i in 0..N {
                let d = black_box(data_for(i));
                let key = (i % 13) as u8;
                $put(&mut $vol, key, &d, &mut scratch).unwrap();
                let n = $get(&mut $vol, key, &mut out, &mut scratch).unwrap();
                assert_eq!(&out[..n], &d[..]);
            }
            ns = ns.min(t.elapsed().as_nanos() as f64 / N as f64);
        }
        let pieces = $rec;
        println!("speed {:<14} {:>8.0} ns/op  (best of {ROUNDS} rounds; recover after: {:?})", $name, ns, pieces);
        ns
    }};
}

fn main() {
    let mut images: Vec<(&str, Vec<u8>)> = Vec::new();

    // Future sizes (host, x86_64: pointers are 8 bytes; thumb pointers are 4).
    {
        let mut mem = vec![0xFFu8; FLASH_SIZE];
        let mut scratch = [0u8; BLOCK];
        let mut out = [0u8; 300];
        let d = [1u8; 300];
        let mut v = asynch::engine::Volume::new(RamFlash::new(&mut mem));
        println!("future asynch(A/B) put     {} B", core::mem::size_of_val(&v.put(1, &d, &mut scratch)));
        println!("future asynch(A/B) get     {} B", core::mem::size_of_val(&v.get(1, &mut out, &mut scratch)));
        println!("future asynch(A/B) recover {} B", core::mem::size_of_val(&v.recover()));
        let mut va = a::Volume::new(RamFlash::new(&mut mem));
        println!("future A-blocking put (over BlockingAsync) {} B", core::mem::size_of_val(&va.0.put(1, &d, &mut scratch)));
        let mut vc = sans_io::AsyncVolume::new(RamFlash::new(&mut mem));
        println!("future C-async put         {} B", core::mem::size_of_val(&vc.put(1, &d, &mut scratch)));
        println!("future C-async get         {} B", core::mem::size_of_val(&vc.get(1, &mut out, &mut scratch)));
        println!("future C-async recover     {} B", core::mem::size_of_val(&vc.recover()));
        println!("machine C Put              {} B", core::mem::size_of::<sans_io::Put<'static, 'static>>());
    }

    macro_rules! sync_case {
        ($name:expr, $ty:path) => {{
            let mut mem = vec![0xFFu8; FLASH_SIZE];
            {
                let mut v = <$ty>::new(RamFlash::new(&mut mem));
                run!($name, v, mem,
                    |v: &mut $ty, k, d: &[u8], s: &mut [u8; BLOCK]| v.put(k, d, s),
                    |v: &mut $ty, k, o: &mut [u8], s: &mut [u8; BLOCK]| v.get(k, o, s),
                    v.recover());
            }
            images.push(($name, mem));
        }};
    }
    macro_rules! async_case {
        ($name:expr, $ty:path) => {{
            let mut mem = vec![0xFFu8; FLASH_SIZE];
            {
                let mut v = <$ty>::new(RamFlash::new(&mut mem));
                run!($name, v, mem,
                    |v: &mut $ty, k, d: &[u8], s: &mut [u8; BLOCK]| block_on(v.put(k, d, s)),
                    |v: &mut $ty, k, o: &mut [u8], s: &mut [u8; BLOCK]| block_on(v.get(k, o, s)),
                    block_on(v.recover()));
            }
            images.push(($name, mem));
        }};
    }

    sync_case!("A-blocking", a::Volume<RamFlash>);
    async_case!("A/B-async", asynch::engine::Volume<RamFlash>);
    sync_case!("B-blocking", blocking::engine::Volume<RamFlash>);
    sync_case!("C-blocking", sans_io::Volume<RamFlash>);
    async_case!("C-async", sans_io::AsyncVolume<RamFlash>);

    for (n, img) in &images[1..] {
        assert!(img == &images[0].1, "{n} left a different flash image");
    }
    println!("check: all {} runs left byte-identical flash images", images.len());
}
