//! The object counters and where they live: whole in the WAL header (the checkpoint record),
//! and as a compact delta in every transaction's commit marker, so that no put writes a fixed
//! block for them.
//!
//! Counter order (the index a delta names):
//! ```text
//! 0 objects  1 payload bytes  2 extent objects  3 blocks held by extents
//! 4..=9 packed objects of class 64, 128, 256, 512, 1024, 2048
//! ```
//! Whole (WAL header): the ten counters as `u64`, in that order (80 bytes).
//!
//! Delta (commit marker): `n u8` (0..=10), then `n` entries of `index u8 ‖ d`, indices strictly
//! ascending, where `d` is the change (new − old, modulo 2^64, read as a signed `i64`),
//! zigzag-encoded (`(d << 1) ^ (d >> 63)`) and written as unsigned LEB128 (7 bits per byte,
//! low group first, high bit = more follows; at most 10 bytes, no redundant trailing zero
//! group, never 0: an unchanged counter has no entry). Applying adds `d` modulo 2^64.

use super::codec::{get_u64, put_u64};
use super::DecodeError;

/// Number of counters.
pub const COUNT: usize = 10;
/// Bytes of the counters, whole.
pub const LEN: usize = 8 * COUNT;
/// Most bytes a delta takes: the count byte and ten entries of an index and a 10-byte LEB128.
pub const MAX_DELTA: usize = 1 + COUNT * 11;

/// The object counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Live objects.
    pub objects: u64,
    /// Payload bytes stored.
    pub bytes: u64,
    /// Objects stored in extents.
    pub extent_objects: u64,
    /// Blocks held by extents.
    pub extent_blocks: u64,
    /// Packed objects per size class.
    pub per_class: [u64; 6],
}

impl Counters {
    /// The counters in their on-disk order.
    #[inline(never)]
    pub fn to_array(&self) -> [u64; COUNT] {
        let c = &self.per_class;
        [
            self.objects,
            self.bytes,
            self.extent_objects,
            self.extent_blocks,
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
        ]
    }

    /// The counters from their on-disk order.
    #[inline(never)]
    pub fn from_array(a: [u64; COUNT]) -> Counters {
        let [objects, bytes, extent_objects, extent_blocks, c0, c1, c2, c3, c4, c5] = a;
        Counters {
            objects,
            bytes,
            extent_objects,
            extent_blocks,
            per_class: [c0, c1, c2, c3, c4, c5],
        }
    }

    /// Writes the counters whole at `off` of `b` ([`LEN`] bytes).
    #[inline(never)]
    pub fn encode_at(&self, b: &mut [u8], off: usize) -> Option<()> {
        for (k, v) in self.to_array().iter().enumerate() {
            put_u64(b, off.checked_add(8 * k)?, *v)?;
        }
        Some(())
    }

    /// Reads the counters whole from `off` of `b`.
    #[inline(never)]
    pub fn decode_at(b: &[u8], off: usize) -> Option<Counters> {
        let mut a = [0u64; COUNT];
        for (k, v) in a.iter_mut().enumerate() {
            *v = get_u64(b, off.checked_add(8 * k)?)?;
        }
        Some(Counters::from_array(a))
    }
}

/// The change from one set of counters to another (per counter, new − old modulo 2^64), as a
/// commit marker carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delta([u64; COUNT]);

impl Delta {
    /// The delta that turns `old` into `new`.
    #[inline(never)]
    pub fn between(old: &Counters, new: &Counters) -> Delta {
        let mut d = new.to_array();
        for (x, o) in d.iter_mut().zip(old.to_array()) {
            *x = x.wrapping_sub(o);
        }
        Delta(d)
    }

    /// Adds the delta to `c` (modulo 2^64).
    #[inline(never)]
    pub fn apply(&self, c: &mut Counters) {
        let mut a = c.to_array();
        for (x, d) in a.iter_mut().zip(self.0) {
            *x = x.wrapping_add(d);
        }
        *c = Counters::from_array(a);
    }

    /// Encodes the delta into the start of `out` (at most [`MAX_DELTA`] bytes); returns its
    /// length.
    pub fn encode(&self, out: &mut [u8]) -> Option<usize> {
        let mut at = 1usize;
        let mut n = 0u8;
        for (k, d) in self.0.iter().enumerate() {
            if *d == 0 {
                continue;
            }
            n += 1;
            *out.get_mut(at)? = k as u8;
            at += 1;
            let v = *d as i64;
            let mut z = ((v << 1) ^ (v >> 63)) as u64;
            loop {
                let more = z > 0x7f;
                *out.get_mut(at)? = (z as u8 & 0x7f) | if more { 0x80 } else { 0 };
                at += 1;
                z >>= 7;
                if !more {
                    break;
                }
            }
        }
        *out.first_mut()? = n;
        Some(at)
    }

    /// Encoded length.
    pub fn encoded_len(&self) -> usize {
        let mut buf = [0u8; MAX_DELTA];
        self.encode(&mut buf).unwrap_or(MAX_DELTA)
    }

    /// Decodes the delta at the start of `b`; returns it and the bytes it took. Refuses what
    /// no writer makes (see the module documentation).
    pub fn decode(b: &[u8]) -> Result<(Delta, usize), DecodeError> {
        let f = DecodeError::BadField;
        let n = *b.first().ok_or(f)?;
        let mut d = Delta::default();
        let mut at = 1usize;
        let mut next = 0usize;
        for _ in 0..n {
            let k = usize::from(*b.get(at).ok_or(f)?);
            if k < next || k >= COUNT {
                return Err(f);
            }
            next = k + 1;
            at += 1;
            // At most 10 groups, the 10th holding only the top bit; no trailing zero group;
            // the value (a zigzag code) never 0.
            let mut z = 0u64;
            let mut shift = 0u32;
            loop {
                let x = *b.get(at).ok_or(f)?;
                at += 1;
                if shift == 63 && x > 1 || x == 0 && shift > 0 {
                    return Err(f);
                }
                z |= u64::from(x & 0x7f) << shift;
                if x & 0x80 == 0 {
                    break;
                }
                shift += 7;
            }
            let v = ((z >> 1) as i64) ^ -((z & 1) as i64);
            if v == 0 {
                return Err(f);
            }
            *d.0.get_mut(k).ok_or(f)? = v as u64;
        }
        Ok((d, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Counters {
        Counters {
            objects: 5,
            bytes: 1000,
            extent_objects: 1,
            extent_blocks: 3,
            per_class: [1, 2, 0, 0, 1, 0],
        }
    }

    #[test]
    fn a_put_costs_a_few_bytes() {
        let old = sample();
        let mut new = old;
        new.objects += 1;
        new.bytes += 64;
        new.per_class[1] += 1;
        let d = Delta::between(&old, &new);
        let mut b = [0u8; MAX_DELTA];
        let n = d.encode(&mut b).unwrap();
        // n, then (0, +1), (1, +64: two LEB128 bytes), (5, +1).
        assert_eq!(&b[..n], &[3, 0, 2, 1, 0x80, 0x01, 5, 2]);
        assert_eq!(d.encoded_len(), n);
        let mut c = old;
        Delta::decode(&b[..n]).unwrap().0.apply(&mut c);
        assert_eq!(c, new);
        let n = Delta::between(&old, &old).encode(&mut b).unwrap();
        assert_eq!(&b[..n], &[0]);
    }

    #[test]
    fn round_trips_extremes() {
        let zero = Counters::default();
        let max = Counters::from_array([u64::MAX; COUNT]);
        let mixed = Counters::from_array([0, u64::MAX, 1 << 63, 7, 0, 1, 2, 3, 1 << 40, 9]);
        for (a, b) in [
            (zero, max),
            (max, zero),
            (zero, mixed),
            (mixed, max),
            (max, mixed),
        ] {
            let d = Delta::between(&a, &b);
            let mut buf = [0u8; MAX_DELTA];
            let n = d.encode(&mut buf).unwrap();
            assert_eq!(Delta::decode(&buf[..n]), Ok((d, n)));
            let mut c = a;
            d.apply(&mut c);
            assert_eq!(c, b);
        }
        let mut w = [0u8; LEN];
        mixed.encode_at(&mut w, 0).unwrap();
        assert_eq!(Counters::decode_at(&w, 0), Some(mixed));
    }

    #[test]
    fn refuses_what_no_writer_makes() {
        for bad in [
            &[11u8][..],         // more than ten counters
            &[1, 10, 2],         // index out of range
            &[2, 1, 2, 1, 2],    // indices not ascending
            &[1, 0, 0],          // a zero change
            &[1, 0, 0x82, 0x00], // a redundant trailing group
            &[1, 0, 0x80],       // cut short
            &[
                1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
            ], // 65 bits
            &[],
        ] {
            assert!(Delta::decode(bad).is_err(), "{bad:?}");
        }
        // Trailing bytes are not part of the delta.
        assert_eq!(Delta::decode(&[1, 0, 2, 9, 9]).unwrap().1, 3);
        // The largest delta fits MAX_DELTA.
        let d = Delta([1 << 63; COUNT]);
        let mut buf = [0u8; MAX_DELTA];
        assert_eq!(d.encode(&mut buf), Some(MAX_DELTA));
        assert!(d.encode(&mut buf[..MAX_DELTA - 1]).is_none());
    }
}
