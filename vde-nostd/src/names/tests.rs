extern crate std;
use crate::device::RamDevice;
use crate::format::names as fmt;
use crate::{Buffers, FormatOptions, ModuleSet, Volume};
use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

const BS: usize = 512;

/// The handles a checked leaf lent by the block cache names, by key.
fn lent_leaf(blk: &[u8]) -> BTreeMap<Vec<u8>, u64> {
    let leaf = fmt::check_leaf(blk).unwrap();
    fmt::leaf_entries(blk, leaf)
        .map(|e| (e.key.to_vec(), e.handle))
        .collect()
}

/// Lookups search the root and leaves the block cache holds checked where they lie; a block
/// a commit changes is not lent again until a lookup has read and checked its new content,
/// and what is lent is the committed content (the keys and handles the model holds).
#[test]
fn lookups_search_checked_blocks_in_place_and_never_stale() {
    for cached in [0usize, 2, 4] {
        let mut img = vec![0u8; BS * 1024];
        let mut scratch = vec![0u8; Buffers::scratch_with_cache(BS, cached)];
        let mut txn = vec![0u8; (BS + crate::tx_buffer::RANGE_OVERHEAD) * 8];
        let mut index = vec![0u8; 4096];
        let bufs = Buffers {
            scratch: &mut scratch,
            txn: &mut txn,
            index: &mut index,
        };
        let dev = RamDevice::new(&mut img, BS).unwrap();
        let opts = FormatOptions {
            wal_blocks: Some(16),
            volume_id: [7; 16],
            now: 100,
            modules: ModuleSet::OBJECTS | ModuleSet::NAMES,
        };
        let mut vol = Volume::<_, 8>::format(dev, &opts, bufs).unwrap();
        let root = vol.names.unwrap().start;
        let mut model: BTreeMap<Vec<u8>, crate::Handle> = BTreeMap::new();
        // Keys of one length (leaves searched by halves), then of mixed lengths, replaced
        // and removed as they go.
        let key = |i: u32| -> Vec<u8> {
            if i < 120 {
                (i * 7919 % 1000).to_be_bytes().to_vec()
            } else {
                let mut k = vec![b'k'; 1 + (i as usize % 11)];
                k.extend_from_slice(&(i % 150).to_le_bytes());
                k
            }
        };
        for i in 0..300u32 {
            let k = key(i);
            if i % 7 == 3 {
                let h = vol.remove(&k);
                assert_eq!(h.ok(), model.remove(&k));
            } else {
                let h = vol.store(&k, &i.to_le_bytes()).unwrap();
                model.insert(k.clone(), h);
            }
            // The changed blocks are not lent until read again.
            let p = vol.place(&k).unwrap();
            vol.abort_tx();
            if cached == 0 {
                assert!(vol.wal.checked_block(p.leaf).is_none());
                assert!(vol.wal.checked_block(root).is_none());
            }
            for j in [i, i / 2, i.saturating_sub(5), i + 1] {
                let k = key(j);
                assert_eq!(vol.lookup(&k).unwrap(), model.get(&k).copied(), "{k:?}");
            }
            if cached >= 2 {
                let p = vol.place(&k).unwrap();
                let lent = vol.wal.checked_block(p.leaf).map(|(b, _)| lent_leaf(b));
                if let Some(lent) = lent {
                    for (k, h) in &lent {
                        assert_eq!(model.get(k).map(|h| h.raw()), Some(*h));
                    }
                    assert_eq!(lent.contains_key(&k), model.contains_key(&k));
                }
            }
        }
        if cached >= 2 {
            // A store into a leaf that is lent: not lent after the commit, and the next
            // lookup finds the new handle.
            let k = key(0);
            assert!(vol.lookup(&k).unwrap().is_some());
            let leaf = vol.place(&k).unwrap().leaf;
            assert!(vol.wal.checked_block(leaf).is_some());
            let h = vol.store(&k, b"new").unwrap();
            assert!(vol.wal.checked_block(leaf).is_none(), "changed: not lent");
            assert_eq!(vol.lookup(&k).unwrap(), Some(h));
            let (blk, _) = vol.wal.checked_block(leaf).expect("checked again");
            assert_eq!(lent_leaf(blk).get(&k), Some(&h.raw()));
            model.insert(k, h);
        }
        for (k, h) in &model {
            assert_eq!(vol.lookup(k).unwrap(), Some(*h));
        }
        vol.verify().unwrap();
    }
}
