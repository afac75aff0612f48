//! The library example from README.md, kept compiling and true.

use vde_nostd::{device::RamDevice, Buffers, FormatOptions, Handle, Volume};

#[test]
fn readme_library_example() {
    let mut image = vec![0u8; 4096 * 1024];
    let mut scratch = vec![0; Buffers::scratch_min(4096, true)]; // one block + a 128-byte log page
    let mut txn = vec![0; Buffers::txn_for_blocks(4096, 4)]; // changed bytes: 4 whole blocks' worth
    let mut index = vec![0; 16 * 1024]; // 16 bytes per shared block
    let dev = RamDevice::new(&mut image, 4096).unwrap();
    let bufs = Buffers {
        scratch: &mut scratch,
        txn: &mut txn,
        index: &mut index,
    };
    let mut vol = Volume::<_, 16>::format(dev, &FormatOptions::default(), bufs).unwrap();

    let h = vol.put(b"hello").unwrap();
    let mut buf = [0u8; 64];
    let n = vol.get(h, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    assert_eq!(Handle::parse(&h.to_string()), Some(h));

    let mut tx = vol.begin();
    let e = tx.allocate(2).unwrap();
    tx.write(e.start, &[7u8; 4096]).unwrap();
    tx.commit().unwrap();

    vol.add_module_regions(
        vde_nostd::modules::by_name("snapshots").unwrap(),
        1_700_000_000,
    )
    .unwrap();
    let _device = vol.unmount().unwrap();
}
