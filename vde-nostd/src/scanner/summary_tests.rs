extern crate std;
use super::*;
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn summarized_first_fit_matches_plain(
        raw in proptest::collection::vec(any::<u8>(), 8..400),
        mode in 0u8..4,
        bpb_words in 1usize..6,
        n in 1u64..400,
        cut in 0u64..64,
    ) {
        let bits: Vec<u8> = raw.iter().enumerate().map(|(i, b)| match mode {
            0 => *b,
            1 => if i % 7 < 4 { 0 } else { *b },
            2 => if (i / 16) % 3 == 0 { *b } else { 0 },
            _ => b & raw[(i * 5) % raw.len()] & raw[(i * 3) % raw.len()],
        }).collect();
        let total = (bits.len() as u64 * 8).saturating_sub(cut);
        let bpb = bpb_words * 8;
        let mut buf = vec![0u8; bpb];
        let mut s = SliceBitmap::new(&bits, total, bpb).unwrap();
        let blocks = total.div_ceil(bpb as u64 * 8) as usize;
        let mut sums = vec![Summary::default(); blocks];
        summarize_all(&mut s, &mut sums, &mut buf).unwrap();
        let plain = first_fit(&mut s, n, &mut buf).unwrap();
        prop_assert_eq!(first_fit_summarized(&mut s, &sums, n, &mut buf).unwrap(), plain);
        // Unknown summaries give the same answer too.
        let unknown = vec![Summary::UNKNOWN; blocks];
        prop_assert_eq!(first_fit_summarized(&mut s, &unknown, n, &mut buf).unwrap(), plain);
    }
}
