//! A small, non-cryptographic source of jitter.
//!
//! Jitter only has to decorrelate objects and pools from one another, so a per-thread
//! splitmix64 seeded from std's randomly keyed hasher is enough and avoids a dependency.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

thread_local! {
    static STATE: Cell<u64> = Cell::new(RandomState::new().build_hasher().finish() | 1);
}

/// A uniformly distributed fraction in `[0, 1)`.
pub(crate) fn fraction() -> f64 {
    let bits = STATE.with(|state| {
        let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    });
    // The top 53 bits fill an f64 mantissa exactly.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn fractions_stay_in_the_unit_interval_and_vary() {
        let samples: Vec<f64> = (0..1000).map(|_| super::fraction()).collect();
        assert!(samples.iter().all(|f| (0.0..1.0).contains(f)));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((0.4..0.6).contains(&mean), "mean {mean}");
    }
}
