//! Space efficiency of sub-block packing: 10,000 objects of random sizes 16..2048 bytes; bytes
//! used by shared blocks stay within 1.6x the sum of the slot-rounded sizes, also after deleting
//! a random half and putting them back. Prints device bytes used per payload byte.

use vde_nostd::device::RamDevice;
use vde_nostd::{Handle, Volume};
use vde_tests::{fresh_image, Mem};

const BS: usize = 4096;

fn rounded(len: usize) -> u64 {
    (len + 8).max(64).next_power_of_two() as u64
}

#[test]
fn packing_stays_dense_under_churn() {
    let mut img = fresh_image(BS, 8192, 64);
    let mut mem = Mem::new(BS, 16, 8192);
    let mut vol =
        Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
    let free0 = vol.usage().free_blocks;
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut live: Vec<(Handle, usize)> = Vec::new();
    let data = vec![0x5Au8; 2048];
    let put =
        |vol: &mut Volume<'_, RamDevice<'_>, 16>, live: &mut Vec<(Handle, usize)>, n: usize| {
            let h = vol.put(&data[..n]).unwrap();
            live.push((h, n));
        };
    for _ in 0..10_000 {
        let n = 16 + (rnd() % (2048 - 16 + 1)) as usize;
        put(&mut vol, &mut live, n);
    }
    let check = |vol: &mut Volume<'_, RamDevice<'_>, 16>, live: &[(Handle, usize)], label: &str| {
        let st = vol.object_stats().unwrap();
        let packed: Vec<usize> = live
            .iter()
            .filter(|(h, _)| matches!(h, Handle::Packed { .. }))
            .map(|(_, n)| *n)
            .collect();
        let slot_sum: u64 = packed.iter().map(|n| rounded(*n)).sum();
        let shared_bytes = st.shared_blocks * BS as u64;
        let payload: u64 = live.iter().map(|(_, n)| *n as u64).sum();
        let used = (free0 - vol.usage().free_blocks) * BS as u64;
        let ratio = shared_bytes as f64 / slot_sum as f64;
        println!(
            "{label}: {} objects, {} shared blocks, shared bytes / slot-rounded bytes = {ratio:.3}, device bytes per payload byte = {:.3}",
            live.len(),
            st.shared_blocks,
            used as f64 / payload as f64
        );
        assert!(ratio <= 1.6, "{label}: ratio {ratio}");
    };
    check(&mut vol, &live, "filled");
    // delete a random half, then put as many back
    let mut kept = Vec::new();
    let mut deleted = 0;
    for (h, n) in live.drain(..) {
        if rnd() % 2 == 0 {
            vol.delete(h).unwrap();
            deleted += 1;
        } else {
            kept.push((h, n));
        }
    }
    live = kept;
    for _ in 0..deleted {
        let n = 16 + (rnd() % (2048 - 16 + 1)) as usize;
        put(&mut vol, &mut live, n);
    }
    check(&mut vol, &live, "after churn");
    vol.verify().unwrap();
}
