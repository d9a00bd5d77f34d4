//! Seeded, stateless randomness: every value the simulator invents is a pure
//! function of (seed, stream, index), so any page or event can be computed on
//! its own, in any order, and is the same on every machine and every build.
//!
//! SplitMix64 rather than the `rand` crate: its output is fixed by a few lines
//! here, so a `rand` upgrade can never silently change the catalogue that
//! tests and recorded figures depend on.

/// One 64-bit mix of SplitMix64 (Steele, Lea, Flood 2014).
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of a seed, a stream tag and an index: independent streams for
/// independent decisions.
pub(crate) fn hash(seed: u64, stream: u64, index: u64) -> u64 {
    mix(mix(seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93)) ^ index)
}

/// A small sequential generator for building one listing or one event.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64, stream: u64, index: u64) -> Self {
        Self(hash(seed, stream, index))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`); the tiny modulo bias does not matter here.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub(crate) fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_inputs_give_the_same_numbers() {
        let a: Vec<u64> = (0..5).map(|i| hash(7, 1, i)).collect();
        let b: Vec<u64> = (0..5).map(|i| hash(7, 1, i)).collect();
        assert_eq!(a, b);
        assert_ne!(hash(7, 1, 0), hash(8, 1, 0));
        assert_ne!(hash(7, 1, 0), hash(7, 2, 0));
    }

    #[test]
    fn range_stays_within_its_bounds() {
        let mut rng = Rng::new(1, 2, 3);
        for _ in 0..10_000 {
            let v = rng.range(5, 9);
            assert!((5..=9).contains(&v));
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
