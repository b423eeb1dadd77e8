//! Token sampling: penalties, temperature, top-k, top-p, min-p, seeded RNG.

use std::collections::HashMap;

use crate::api::GenerationParams;

/// xoshiro256** seeded through splitmix64: small, fast, reproducible everywhere.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

pub struct Sampler {
    params: GenerationParams,
    rng: Rng,
    candidates: Vec<(u32, f32)>,
}

/// Index of the largest logit; ties go to the lowest id (as `argmax` does).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    best as u32
}

impl Sampler {
    pub fn new(params: &GenerationParams) -> Self {
        let seed = params.seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            t ^ (std::process::id() as u64).rotate_left(32)
        });
        Self {
            params: params.clone(),
            rng: Rng::new(seed),
            candidates: Vec::new(),
        }
    }

    /// Apply penalties in place. `history` = prompt + generated ids.
    pub fn apply_penalties(&self, logits: &mut [f32], history: &[u32], generated: &[u32]) {
        let p = &self.params;
        if p.repetition_penalty != 1.0 && p.repetition_penalty > 0.0 && p.repeat_last_n > 0 {
            let start = history.len().saturating_sub(p.repeat_last_n);
            let mut seen: Vec<u32> = history[start..].to_vec();
            seen.sort_unstable();
            seen.dedup();
            for id in seen {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = if *l > 0.0 {
                        *l / p.repetition_penalty
                    } else {
                        *l * p.repetition_penalty
                    };
                }
            }
        }
        if p.frequency_penalty != 0.0 || p.presence_penalty != 0.0 {
            let mut counts: HashMap<u32, usize> = HashMap::new();
            for &id in generated {
                *counts.entry(id).or_default() += 1;
            }
            for (id, n) in counts {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l -= n as f32 * p.frequency_penalty + p.presence_penalty;
                }
            }
        }
    }

    /// Pick the next token.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32], generated: &[u32]) -> u32 {
        self.apply_penalties(logits, history, generated);
        let p = &self.params;
        if p.temperature <= 0.0 || p.top_k == Some(1) {
            return argmax(logits);
        }
        let inv_t = 1.0 / p.temperature;
        let cands = &mut self.candidates;
        cands.clear();
        cands.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| l.is_finite())
                .map(|(i, &l)| (i as u32, l * inv_t)),
        );
        if cands.is_empty() {
            return argmax(logits);
        }
        let by_logit_desc =
            |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        // Only the head of the distribution matters for any of the filters below;
        // partial selection keeps this cheap on large vocabularies.
        let k = p
            .top_k
            .filter(|&k| k > 0)
            .unwrap_or(cands.len())
            .min(cands.len());
        let head = k.min(1024);
        if head < cands.len() {
            cands.select_nth_unstable_by(head - 1, by_logit_desc);
        }
        let max = cands[..head]
            .iter()
            .map(|c| c.1)
            .fold(f32::NEG_INFINITY, f32::max);
        // Total mass over all candidates (top-k restricts it to k).
        let total: f64 = cands[..k].iter().map(|c| ((c.1 - max) as f64).exp()).sum();
        let head_mass: f64 = cands[..head]
            .iter()
            .map(|c| ((c.1 - max) as f64).exp())
            .sum();
        let top_p = p.top_p.filter(|&x| x > 0.0 && x < 1.0);
        let keep = if k == head || top_p.is_some_and(|tp| head_mass / total >= tp as f64) {
            head
        } else {
            k
        };
        cands.truncate(keep);
        cands.sort_unstable_by(by_logit_desc);
        let mut probs: Vec<f64> = cands
            .iter()
            .map(|c| ((c.1 - max) as f64).exp() / total)
            .collect();
        let mut n = probs.len();
        if let Some(tp) = top_p {
            let mut cum = 0.0;
            for (i, &pr) in probs.iter().enumerate() {
                cum += pr;
                if cum >= tp as f64 {
                    n = i + 1;
                    break;
                }
            }
        }
        if let Some(mp) = p.min_p.filter(|&x| x > 0.0) {
            let thresh = probs[0] * mp as f64;
            let m = probs[..n].iter().take_while(|&&x| x >= thresh).count();
            n = m.max(1);
        }
        probs.truncate(n.max(1));
        let sum: f64 = probs.iter().sum();
        let mut r = self.rng.next_f64() * sum;
        for (i, pr) in probs.iter().enumerate() {
            if r < *pr {
                return cands[i].0;
            }
            r -= pr;
        }
        cands[probs.len() - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(t: f32, seed: u64) -> GenerationParams {
        GenerationParams {
            temperature: t,
            seed: Some(seed),
            top_p: Some(0.95),
            ..Default::default()
        }
    }

    fn logits() -> Vec<f32> {
        (0..5000)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
            .collect()
    }

    #[test]
    fn greedy_is_argmax_and_deterministic() {
        let mut s = Sampler::new(&params(0.0, 1));
        let mut l = logits();
        let a = s.sample(&mut l.clone(), &[], &[]);
        let b = s.sample(&mut l, &[], &[]);
        assert_eq!(a, b);
        assert_eq!(a, argmax(&logits()));
    }

    #[test]
    fn seeded_sampling_is_reproducible() {
        let run = |seed| {
            let mut s = Sampler::new(&params(0.8, seed));
            (0..50)
                .map(|_| s.sample(&mut logits(), &[], &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn top_k_and_min_p_restrict() {
        let mut p = params(1.0, 7);
        p.top_k = Some(3);
        p.top_p = None;
        let mut s = Sampler::new(&p);
        let mut top: Vec<(usize, f32)> = logits().into_iter().enumerate().collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let allowed: Vec<u32> = top[..3].iter().map(|x| x.0 as u32).collect();
        for _ in 0..100 {
            let t = s.sample(&mut logits(), &[], &[]);
            assert!(allowed.contains(&t));
        }
        let mut p = params(1.0, 7);
        p.min_p = Some(0.99);
        let mut s = Sampler::new(&p);
        let mut l = vec![0.0f32; 10];
        l[3] = 10.0;
        assert_eq!(s.sample(&mut l, &[], &[]), 3);
    }

    #[test]
    fn repetition_penalty_applies_over_window() {
        let mut p = params(0.0, 0);
        p.repetition_penalty = 2.0;
        p.repeat_last_n = 2;
        let s = Sampler::new(&p);
        let mut l = vec![4.0, 4.0, -1.0, 3.0];
        s.apply_penalties(&mut l, &[0, 2, 1], &[]);
        assert_eq!(l, vec![4.0, 2.0, -2.0, 3.0]);
    }
}
