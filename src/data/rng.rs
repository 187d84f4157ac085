//! A small counter-based random generator (SplitMix64).
//!
//! Every random stream in `data` is keyed by the tuple that identifies what it
//! is for — `(seed, split, image index)` for a synthetic image, `(seed, epoch)`
//! for a shuffle — instead of advancing one global generator. That makes
//! image `i` the same bytes whether it is asked for first or last, and lets an
//! epoch's order be recomputed without replaying earlier epochs.

/// SplitMix64's increment: the golden ratio in 64-bit fixed point.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's finaliser: a bijective avalanche of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A SplitMix64 stream whose starting state is a hash of a key tuple.
#[derive(Clone, Debug)]
pub(crate) struct CounterRng {
    state: u64,
}

impl CounterRng {
    /// A stream keyed by `parts`; distinct tuples give unrelated streams.
    pub(crate) fn keyed(parts: &[u64]) -> Self {
        // Folding each part through the finaliser (rather than XOR-ing them)
        // keeps (a, b) and (b, a) apart.
        let state = parts.iter().fold(
            0x6a09_e667_f3bc_c908,
            |h, &p| mix(h ^ p.wrapping_add(GAMMA)),
        );
        CounterRng { state }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// Uniform in `[0, 1)` with 24 bits of precision (all an f32 can hold).
    pub(crate) fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next_f32()
    }

    /// A fair coin.
    pub(crate) fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// Uniform in `[0, n)` for `n > 0`, without modulo bias (Lemire's method).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        // Multiply-high maps 64 random bits onto [0, n); rejecting the few
        // low products that would make some outcomes one count more likely
        // makes the result exactly uniform.
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }
}

/// A Fisher-Yates permutation of `0..n` drawn from `rng`.
pub(crate) fn permutation(n: usize, rng: &mut CounterRng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_streams_are_reproducible_and_order_sensitive() {
        let mut first = CounterRng::keyed(&[1, 2]);
        let a: Vec<u64> = (0..4).map(|_| first.next_u64()).collect();
        let mut again = CounterRng::keyed(&[1, 2]);
        assert!(a.iter().all(|&x| x == again.next_u64()));
        assert_ne!(a[0], CounterRng::keyed(&[2, 1]).next_u64());
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut rng = CounterRng::keyed(&[7]);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[rng.below(6) as usize] += 1;
        }
        // Expected 10 000 each; 5 sigma is about 450.
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn floats_stay_in_unit_interval() {
        let mut rng = CounterRng::keyed(&[3]);
        for _ in 0..10_000 {
            let x = rng.next_f32();
            assert!((0.0..1.0).contains(&x));
        }
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut order = permutation(1000, &mut CounterRng::keyed(&[5]));
        order.sort_unstable();
        assert!(order.iter().enumerate().all(|(i, &v)| i == v));
        assert!(permutation(0, &mut CounterRng::keyed(&[5])).is_empty());
    }
}
