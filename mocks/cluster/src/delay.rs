//! Configurable delays drawn from a seeded RNG, so a lab run is repeatable per seed.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A delay uniformly drawn from `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delay {
    pub min: Duration,
    pub max: Duration,
}

impl Delay {
    /// Always `d`.
    pub const fn fixed(d: Duration) -> Delay {
        Delay { min: d, max: d }
    }

    /// Uniform in `[min, max]` (`max` below `min` counts as `min`).
    pub const fn between(min: Duration, max: Duration) -> Delay {
        Delay { min, max }
    }

    /// Draws one value.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        if self.max <= self.min {
            return self.min;
        }
        let span = (self.max - self.min).as_micros() as u64;
        self.min + Duration::from_micros(rng.random_range(0..=span))
    }
}

/// A per-component RNG derived from the run seed and a component name, so adding a
/// component does not shift the draws of the others.
pub fn rng_for(seed: u64, component: &str) -> StdRng {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in component.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    StdRng::seed_from_u64(seed ^ h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_range_and_repeat_per_seed() {
        let d = Delay::between(Duration::from_millis(10), Duration::from_millis(20));
        let a: Vec<_> = (0..50)
            .map({
                let mut r = rng_for(7, "x");
                move |_| d.sample(&mut r)
            })
            .collect();
        let b: Vec<_> = (0..50)
            .map({
                let mut r = rng_for(7, "x");
                move |_| d.sample(&mut r)
            })
            .collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|v| *v >= d.min && *v <= d.max));
        assert!(a.iter().any(|v| *v != a[0]), "not constant");
        assert_eq!(
            Delay::fixed(Duration::from_secs(1)).sample(&mut rng_for(1, "y")),
            Duration::from_secs(1)
        );
    }
}
