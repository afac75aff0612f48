extern crate std;
use super::*;
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

fn bit(bits: &[u8], i: u64) -> bool {
    bits[(i / 8) as usize] & (1 << (i % 8)) != 0
}

fn ref_runs(bits: &[u8], total: u64) -> Vec<Extent> {
    let mut v = Vec::new();
    let mut i = 0;
    while i < total {
        if !bit(bits, i) {
            let s = i;
            while i < total && !bit(bits, i) {
                i += 1;
            }
            v.push(Extent {
                start: BlockNo(s),
                len: i - s,
            });
        } else {
            i += 1;
        }
    }
    v
}

fn ref_first_fit(bits: &[u8], total: u64, n: u64) -> Option<BlockNo> {
    ref_runs(bits, total)
        .into_iter()
        .find(|r| r.len >= n)
        .map(|r| r.start)
}

#[test]
fn empty_full_and_boundary() {
    let bits = [0u8; 64];
    let mut s = SliceBitmap::new(&bits, 500, 16).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(count_free(&mut s, &mut buf).unwrap(), 500);
    assert_eq!(first_fit(&mut s, 500, &mut buf).unwrap(), Some(BlockNo(0)));
    assert_eq!(first_fit(&mut s, 501, &mut buf).unwrap(), None);
    let mut full = [0xFFu8; 64];
    // a run of 10 straddling the boundary between bitmap block 0 and 1 (bit 128)
    for i in 123..133u64 {
        full[(i / 8) as usize] &= !(1 << (i % 8));
    }
    let mut s = SliceBitmap::new(&full, 512, 16).unwrap();
    assert_eq!(first_fit(&mut s, 10, &mut buf).unwrap(), Some(BlockNo(123)));
    assert_eq!(first_fit(&mut s, 11, &mut buf).unwrap(), None);
    let mut runs = Vec::new();
    free_runs(&mut s, 1, &mut buf, |e| {
        runs.push(e);
        true
    })
    .unwrap();
    assert_eq!(
        runs,
        [Extent {
            start: BlockNo(123),
            len: 10
        }]
    );
}

/// The long-run fast path's edges, word by word: a run carried into a chunk whose words
/// all have both halves allocated, and a whole free chunk starting a run.
#[test]
fn long_run_fast_path_edges() {
    fn bitmap(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
    let runs = |bits: &[u8], m: u64| {
        let mut s = SliceBitmap::new(bits, bits.len() as u64 * 8, 512).unwrap();
        let mut got = Vec::new();
        free_runs(&mut s, m, &mut [0u8; 512], |e| {
            got.push(e);
            true
        })
        .unwrap();
        got
    };
    let fit = |bits: &[u8], n: u64| {
        let mut s = SliceBitmap::new(bits, bits.len() as u64 * 8, 512).unwrap();
        first_fit(&mut s, n, &mut [0u8; 512]).unwrap()
    };
    // Word 7 ends in 40 free bits (a checked chunk); word 8 starts with 30 free bits and
    // has both halves allocated, as have words 9..16: the run of 70 crosses into a chunk
    // the fast path may skip only after looking at the carried run.
    let mut w = vec![u64::MAX; 24];
    w[7] = u64::MAX >> 40;
    w[8] = u64::MAX << 30;
    let bits = bitmap(&w);
    assert_eq!(fit(&bits, 70), Some(BlockNo(7 * 64 + 24)));
    assert_eq!(fit(&bits, 71), None);
    assert_eq!(
        runs(&bits, 64),
        [Extent {
            start: BlockNo(7 * 64 + 24),
            len: 70
        }]
    );
    // A run of 100 carried into a chunk with free halves ends at its first word's 30 low
    // free bits; a run of 64 lies inside that chunk (words 9 and 10).
    let mut w = vec![u64::MAX; 24];
    w[6] = u64::MAX >> 36;
    w[7] = 0;
    w[8] = u64::MAX << 30;
    w[9] = u64::MAX >> 32;
    w[10] = u64::MAX << 32;
    let bits = bitmap(&w);
    assert_eq!(fit(&bits, 130), Some(BlockNo(6 * 64 + 28)));
    assert_eq!(fit(&bits, 131), None);
    assert_eq!(fit(&bits, 64), Some(BlockNo(6 * 64 + 28)));
    assert_eq!(
        runs(&bits, 127),
        [Extent {
            start: BlockNo(6 * 64 + 28),
            len: 130
        }]
    );
    assert_eq!(
        runs(&bits, 64),
        [
            Extent {
                start: BlockNo(6 * 64 + 28),
                len: 130
            },
            Extent {
                start: BlockNo(9 * 64 + 32),
                len: 64
            }
        ]
    );
    let mut w2 = w.clone();
    w2[7] = u64::MAX;
    assert_eq!(fit(&bitmap(&w2), 64), Some(BlockNo(9 * 64 + 32)));
    // A whole free chunk (words 8..16) after an allocated word starts a run there.
    let mut w = vec![u64::MAX; 24];
    w[8..16].fill(0);
    let bits = bitmap(&w);
    assert_eq!(fit(&bits, 512), Some(BlockNo(512)));
    assert_eq!(fit(&bits, 100), Some(BlockNo(512)));
    assert_eq!(
        runs(&bits, 64),
        [Extent {
            start: BlockNo(512),
            len: 512
        }]
    );
    // The longest runs each tier's test allows inside a chunk (words 8..16), with no free
    // bit at the chunk's edges: 126 with no free word, 190 with no two adjacent ones. A
    // query one longer may skip the chunk; one equal may not.
    for (words, len) in [(&[63u32, 63][..], 126u64), (&[63, 64, 63][..], 190)] {
        let mut w = vec![u64::MAX; 24];
        let first = 10;
        for (i, free) in words.iter().enumerate() {
            w[first + i] = match (i, *free) {
                (_, 64) => 0,
                (0, f) => u64::MAX >> f,
                (_, f) => u64::MAX << f,
            };
        }
        let bits = bitmap(&w);
        let start = BlockNo(first as u64 * 64 + 1);
        assert_eq!(fit(&bits, len), Some(start), "run of {len}");
        assert_eq!(fit(&bits, len + 1), None, "run of {len}");
        assert_eq!(runs(&bits, len), [Extent { start, len }], "run of {len}");
        assert_eq!(runs(&bits, len + 1), [], "run of {len}");
    }
}

/// Every query on `bits` (`total` meaningful bits, blocks of `bpb` bytes) against the
/// bit-by-bit reference: the free count, first fit of `n`, the runs of at least `m`, and a
/// walk of them stopped after the first.
fn matches_reference(
    bits: &[u8],
    total: u64,
    bpb: usize,
    n: u64,
    m: u64,
) -> Result<(), TestCaseError> {
    let mut buf = vec![0u8; bpb];
    let mut s = SliceBitmap::new(bits, total, bpb).unwrap();
    let free_ref = (0..total).filter(|i| !bit(bits, *i)).count() as u64;
    prop_assert_eq!(count_free(&mut s, &mut buf).unwrap(), free_ref);
    prop_assert_eq!(
        first_fit(&mut s, n, &mut buf).unwrap(),
        ref_first_fit(bits, total, n)
    );
    let mut got = Vec::new();
    free_runs(&mut s, m, &mut buf, |e| {
        got.push(e);
        true
    })
    .unwrap();
    let want: Vec<Extent> = ref_runs(bits, total)
        .into_iter()
        .filter(|r| r.len >= m)
        .collect();
    prop_assert_eq!(got, want);
    let mut first = None;
    free_runs(&mut s, m, &mut buf, |e| {
        first = Some(e);
        false
    })
    .unwrap();
    prop_assert_eq!(
        first,
        ref_runs(bits, total).into_iter().find(|r| r.len >= m)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn scanner_matches_bit_by_bit_reference(
        raw in proptest::collection::vec(any::<u8>(), 1..200),
        density in 0u8..4,
        total_cut in 0u64..64,
        bpb_words in 1usize..5,
        n in 1u64..300,
        m in 1u64..100,
    ) {
        // Bias toward long runs: AND/OR the random bytes to vary density.
        let bits: Vec<u8> = raw.iter().enumerate().map(|(i, b)| match density {
            0 => *b,
            1 => b & raw[(i * 7) % raw.len()],
            2 => if i % 5 < 3 { 0 } else { *b },
            _ => b | raw[(i * 3) % raw.len()],
        }).collect();
        let total = (bits.len() as u64 * 8).saturating_sub(total_cut);
        matches_reference(&bits, total, bpb_words * 8, n, m)?;
    }
    /// Bitmaps of alternating free runs (short, medium and longer than a chunk) and
    /// allocated runs (so whole free words and chunks, words with free halves and words
    /// without), in blocks large enough for the long-run
    /// fast path's chunks of eight words, with queries on both sides of 64.
    #[test]
    fn long_run_fast_paths_match_the_reference(
        runs in proptest::collection::vec(
            (prop_oneof![1u64..8, 1u64..100, 400u64..1500], 1u64..300, any::<u64>()),
            1..60,
        ),
        bpb_words in prop_oneof![Just(8usize), Just(9), Just(16), Just(24), Just(64)],
        total_cut in 0u64..130,
        n in prop_oneof![1u64..64, 64u64..700, 700u64..2000],
        m in prop_oneof![1u64..64, 64u64..700, 700u64..2000],
    ) {
        let mut bits: Vec<u8> = Vec::new();
        let mut at = 0u64;
        let set = |bits: &mut Vec<u8>, i: u64| {
            let byte = (i / 8) as usize;
            if bits.len() <= byte {
                bits.resize(byte + 1, 0);
            }
            bits[byte] |= 1 << (i % 8);
        };
        for (free, used, noise) in &runs {
            at += free;
            // Allocated runs are sometimes sprinkled with free bits.
            for k in 0..*used {
                if noise & 1 == 0 || (noise >> (k % 63)) & 1 == 1 {
                    set(&mut bits, at + k);
                }
            }
            at += used;
        }
        bits.resize(at.div_ceil(8) as usize + 16, 0);
        let total = (bits.len() as u64 * 8).saturating_sub(total_cut);
        matches_reference(&bits, total, bpb_words * 8, n, m)?;

    }
}
