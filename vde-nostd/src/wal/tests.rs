extern crate std;
use super::*;

fn ranges(new: &[u8], old: &[u8]) -> std::vec::Vec<(usize, usize)> {
    let mut v = std::vec::Vec::new();
    diff_ranges(new, Some(old), &mut |s, e| v.push((s, e)));
    v
}

#[test]
fn diff_ranges_finds_and_merges_runs() {
    let old = [0u8; 200];
    assert!(ranges(&old, &old).is_empty());
    let mut new = old;
    new[3] = 1;
    new[8] = 1; // 4 unchanged bytes between: cheaper merged than as a second range
    new[14] = 1; // 5 between: a range of its own
    new[100] = 1;
    new[199] = 1;
    assert_eq!(
        ranges(&new, &old),
        [(3, 9), (14, 15), (100, 101), (199, 200)]
    );
    let all = [9u8; 200];
    assert_eq!(ranges(&all, &old), [(0, 200)]);
    let mut z = std::vec::Vec::new();
    diff_ranges(&new, None, &mut |s, e| z.push((s, e)));
    assert_eq!(z, ranges(&new, &old), "against zeros");
}
