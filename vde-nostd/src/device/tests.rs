use super::*;

#[test]
fn ram_device_round_trip_and_bounds() {
    let mut mem = [0u8; 4096];
    let mut d = RamDevice::new(&mut mem, 512).unwrap();
    assert_eq!(d.block_count(), 8);
    let data = [7u8; 512];
    d.write_block(BlockNo(7), &data).unwrap();
    let mut out = [0u8; 512];
    d.read_block(BlockNo(7), &mut out).unwrap();
    assert_eq!(out, data);
    assert_eq!(
        d.read_block(BlockNo(8), &mut out),
        Err(RamError::OutOfRange)
    );
    assert_eq!(
        d.write_block(BlockNo(u64::MAX), &data),
        Err(RamError::OutOfRange)
    );
    assert_eq!(
        d.read_block(BlockNo(0), &mut out[..100]),
        Err(RamError::BadLength)
    );
    assert!(RamDevice::new(&mut [0u8; 10], 1000).is_none());
}
