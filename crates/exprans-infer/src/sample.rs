//! Choosing the next token from logits: greedy, or seeded temperature / top-k / top-p sampling.
//!
//! ```
//! use exprans_infer::sample::{Sampler, Sampling};
//! let mut greedy = Sampler::new(Sampling::greedy()).unwrap();
//! assert_eq!(greedy.choose(&[0.5, 2.0, 2.0, -1.0]), 1); // ties go to the lower id
//! ```

use exprans::{Error, Result};

/// How the next token is chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    /// 0: greedy (the highest logit). Otherwise logits are divided by it before the softmax.
    pub temperature: f32,
    /// Keep only the `top_k` highest logits (0: all).
    pub top_k: usize,
    /// Keep the smallest set of highest-probability tokens whose probabilities sum to at least
    /// `top_p` (1: all).
    pub top_p: f32,
    /// Seed of the random draws; the same seed and logits give the same tokens.
    pub seed: u64,
}

impl Sampling {
    /// Always the highest logit.
    pub fn greedy() -> Sampling {
        Sampling {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// A logit ordered totally: NaN below every number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct OrderedLogit(pub(crate) f32);

impl Eq for OrderedLogit {}

impl PartialOrd for OrderedLogit {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedLogit {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
        key(self.0).total_cmp(&key(other.0))
    }
}

/// Chooses tokens as its [`Sampling`] says; holds the random state.
#[derive(Clone, Debug)]
pub struct Sampler {
    sampling: Sampling,
    /// splitmix64 state.
    state: u64,
}

impl Sampler {
    /// Checks the settings: temperature finite and >= 0, top_p in (0, 1].
    pub fn new(sampling: Sampling) -> Result<Sampler> {
        if !(sampling.temperature.is_finite() && sampling.temperature >= 0.0) {
            return Err(Error::invalid(format!(
                "temperature {} is not a finite number >= 0",
                sampling.temperature
            )));
        }
        if !(sampling.top_p > 0.0 && sampling.top_p <= 1.0) {
            return Err(Error::invalid(format!(
                "top-p {} is not in (0, 1]",
                sampling.top_p
            )));
        }
        Ok(Sampler {
            state: sampling.seed,
            sampling,
        })
    }

    /// A uniform draw in [0, 1) (splitmix64, 53 bits).
    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The next token for `logits` (non-empty).
    pub fn choose(&mut self, logits: &[f32]) -> u32 {
        let argmax = || {
            (0..logits.len() as u32)
                .max_by_key(|&i| (OrderedLogit(logits[i as usize]), std::cmp::Reverse(i)))
                .unwrap_or(0)
        };
        if self.sampling.temperature == 0.0 {
            return argmax();
        }
        // Candidates, highest logit first (ties: lower id).
        let mut ids: Vec<u32> = (0..logits.len() as u32)
            .filter(|&i| logits[i as usize].is_finite())
            .collect();
        if ids.is_empty() {
            return argmax();
        }
        ids.sort_by_key(|&i| (std::cmp::Reverse(OrderedLogit(logits[i as usize])), i));
        if self.sampling.top_k > 0 {
            ids.truncate(self.sampling.top_k);
        }
        let t = self.sampling.temperature as f64;
        let top = logits[ids[0] as usize] as f64;
        let mut probs: Vec<f64> = ids
            .iter()
            .map(|&i| ((logits[i as usize] as f64 - top) / t).exp())
            .collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if self.sampling.top_p < 1.0 {
            let mut sum = 0.0;
            let keep = probs
                .iter()
                .position(|p| {
                    sum += p;
                    sum >= self.sampling.top_p as f64
                })
                .map_or(probs.len(), |i| i + 1);
            ids.truncate(keep);
            probs.truncate(keep);
        }
        let total: f64 = probs.iter().sum();
        let mut r = self.uniform() * total;
        for (id, p) in ids.iter().zip(&probs) {
            if r < *p {
                return *id;
            }
            r -= p;
        }
        *ids.last().expect("at least one candidate")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        for (t, p) in [(-1.0, 1.0), (f32::NAN, 1.0), (1.0, 0.0), (1.0, 1.5)] {
            let s = Sampling {
                temperature: t,
                top_p: p,
                ..Sampling::greedy()
            };
            assert!(Sampler::new(s).is_err(), "{t} {p}");
        }
    }

    #[test]
    fn greedy_takes_the_highest_and_ignores_nan() {
        let mut s = Sampler::new(Sampling::greedy()).unwrap();
        assert_eq!(s.choose(&[f32::NAN, -3.0, 7.0, 7.0]), 2);
    }

    #[test]
    fn top_k_one_is_greedy_and_seeds_repeat() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 100) as f32 / 10.0).collect();
        let sampling = |seed, top_k| Sampling {
            temperature: 1.0,
            top_k,
            top_p: 1.0,
            seed,
        };
        let mut k1 = Sampler::new(sampling(5, 1)).unwrap();
        let best = Sampler::new(Sampling::greedy()).unwrap().choose(&logits);
        assert!((0..20).all(|_| k1.choose(&logits) == best));
        let draw = |seed| {
            let mut s = Sampler::new(sampling(seed, 0)).unwrap();
            (0..50).map(|_| s.choose(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
        // Sampling spreads over several tokens at temperature 1.
        let mut seen = draw(9);
        seen.sort();
        seen.dedup();
        assert!(seen.len() > 3, "{seen:?}");
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        // Probabilities ~ 0.66, 0.24, 0.09, ...: top_p 0.5 keeps only the first.
        let logits = [3.0, 2.0, 1.0, 0.0, -1.0];
        let mut s = Sampler::new(Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.5,
            seed: 1,
        })
        .unwrap();
        assert!((0..50).all(|_| s.choose(&logits) == 0));
    }
}
