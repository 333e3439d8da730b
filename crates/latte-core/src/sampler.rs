//! Token sampler with fixed memory: repetition penalty, temperature, top-k,
//! top-p, seeded PRNG.
//!
//! Order of operations on the logits:
//!
//! 1. repetition penalty (llama.cpp style) for every distinct token among the
//!    last `repeat_last_n` accepted tokens: `logit > 0 ? logit / penalty :
//!    logit * penalty`;
//! 2. `temperature == 0`: greedy argmax (lowest index wins ties), done;
//! 3. divide by the temperature, softmax with max subtraction;
//! 4. top-k (0 = off): keep the `k` most probable tokens (ties at the
//!    boundary go to the lowest indices);
//! 5. top-p (1 = off): keep the smallest most-probable set whose mass
//!    reaches `top_p` of what is left (same tie rule);
//! 6. draw from the kept tokens, renormalised, walking them in index order.
//!
//! The PRNG is xorshift64* (Vigna) seeded through one SplitMix64 step, so
//! every seed, 0 included, gives a valid non-zero state. A uniform draw uses
//! the top 24 bits of the output: `u = (x >> 40) / 2^24` in `[0, 1)`.

use crate::error::Error;
use crate::ops;

/// Largest supported `repeat_last_n`.
pub const MAX_REPEAT_LAST_N: usize = 256;

/// Sampler settings. [`SamplerConfig::default`] is greedy with no penalty.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerConfig {
    /// `0` = greedy; otherwise logits are divided by it. Finite, `>= 0`.
    pub temperature: f32,
    /// Keep only the `top_k` most probable tokens; `0` = off.
    pub top_k: usize,
    /// Nucleus mass in `(0, 1]`; `1` = off.
    pub top_p: f32,
    /// Repetition penalty, finite and `> 0`; `1` = off.
    pub repeat_penalty: f32,
    /// Window of accepted tokens the penalty looks at, at most
    /// [`MAX_REPEAT_LAST_N`]; `0` = off.
    pub repeat_last_n: usize,
    /// PRNG seed (any value).
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            seed: 0,
        }
    }
}

/// A sampler: its configuration, PRNG state and the penalty window.
#[derive(Clone, Debug)]
pub struct Sampler {
    cfg: SamplerConfig,
    rng: u64,
    window: [u32; MAX_REPEAT_LAST_N],
    /// Number of valid entries in `window` (`<= repeat_last_n`).
    filled: usize,
    /// Next write position in `window` (ring of `repeat_last_n` slots).
    next: usize,
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Sampler {
    /// Validates `cfg` and builds a sampler with an empty penalty window.
    ///
    /// Errors: [`Error::InvalidTemperature`] (NaN, negative, infinite),
    /// [`Error::InvalidTopP`] (NaN or outside `(0, 1]`),
    /// [`Error::InvalidRepeatPenalty`] (NaN, `<= 0`, infinite),
    /// [`Error::RepeatWindowTooLarge`] (`repeat_last_n >`
    /// [`MAX_REPEAT_LAST_N`]).
    pub fn new(cfg: SamplerConfig) -> Result<Self, Error> {
        if !(cfg.temperature >= 0.0 && cfg.temperature.is_finite()) {
            return Err(Error::InvalidTemperature);
        }
        if !(cfg.top_p > 0.0 && cfg.top_p <= 1.0) {
            return Err(Error::InvalidTopP);
        }
        if !(cfg.repeat_penalty > 0.0 && cfg.repeat_penalty.is_finite()) {
            return Err(Error::InvalidRepeatPenalty);
        }
        if cfg.repeat_last_n > MAX_REPEAT_LAST_N {
            return Err(Error::RepeatWindowTooLarge {
                got: cfg.repeat_last_n,
                max: MAX_REPEAT_LAST_N,
            });
        }
        let mut s = Sampler {
            cfg,
            rng: 0,
            window: [0; MAX_REPEAT_LAST_N],
            filled: 0,
            next: 0,
        };
        s.reseed(cfg.seed);
        Ok(s)
    }

    /// The configuration.
    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Restarts the PRNG from `seed` (the penalty window is kept).
    pub fn reseed(&mut self, seed: u64) {
        let s = splitmix64(seed);
        self.rng = if s == 0 { 0x9E37_79B9_7F4A_7C15 } else { s };
    }

    /// Empties the penalty window.
    pub fn clear_history(&mut self) {
        self.filled = 0;
        self.next = 0;
    }

    /// Records `token` in the penalty window (e.g. the prompt tokens); the
    /// oldest entry drops out once `repeat_last_n` are stored. No-op when
    /// `repeat_last_n == 0`.
    pub fn accept(&mut self, token: u32) {
        let n = self.cfg.repeat_last_n;
        if n == 0 {
            return;
        }
        if let Some(slot) = self.window.get_mut(self.next) {
            *slot = token;
        }
        self.next = (self.next + 1) % n;
        self.filled = (self.filled + 1).min(n);
    }

    /// The tokens in the penalty window (unordered).
    pub fn history(&self) -> &[u32] {
        &self.window[..self.filled]
    }

    /// Next PRNG output (xorshift64*).
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform `f32` in `[0, 1)` from the top 24 bits of [`Sampler::next_u64`].
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / 16_777_216.0)
    }

    /// Picks the next token from `logits` and records it with
    /// [`Sampler::accept`].
    ///
    /// `logits` is used as working memory (it ends up holding penalised
    /// logits or probabilities); `work` must be at least `logits.len()` long.
    /// On a contract violation this never panics: empty `logits` give 0 and
    /// a short `work` gives the greedy choice. Use [`Sampler::try_sample`]
    /// to get those cases as errors.
    pub fn sample(&mut self, logits: &mut [f32], work: &mut [f32]) -> u32 {
        match self.try_sample(logits, work) {
            Ok(t) => t,
            Err(_) => {
                let t = ops::argmax(logits) as u32;
                if !logits.is_empty() {
                    self.accept(t);
                }
                t
            }
        }
    }

    /// Like [`Sampler::sample`] but reports a contract violation.
    ///
    /// Errors: [`Error::EmptyLogits`], [`Error::WorkTooSmall`] (nothing is
    /// modified then).
    pub fn try_sample(&mut self, logits: &mut [f32], work: &mut [f32]) -> Result<u32, Error> {
        let v = logits.len();
        if v == 0 {
            return Err(Error::EmptyLogits);
        }
        if work.len() < v {
            return Err(Error::WorkTooSmall {
                need: v,
                got: work.len(),
            });
        }
        let work = &mut work[..v];
        let t = self.pick(logits, work) as u32;
        self.accept(t);
        Ok(t)
    }

    fn apply_penalty(&self, logits: &mut [f32]) {
        let pen = self.cfg.repeat_penalty;
        if pen == 1.0 {
            return;
        }
        let hist = self.history();
        for (i, &tok) in hist.iter().enumerate() {
            if hist[..i].contains(&tok) {
                continue; // once per distinct token
            }
            if let Some(l) = logits.get_mut(tok as usize) {
                *l = if *l > 0.0 { *l / pen } else { *l * pen };
            }
        }
    }

    fn pick(&mut self, logits: &mut [f32], work: &mut [f32]) -> usize {
        self.apply_penalty(logits);
        let temp = self.cfg.temperature;
        if temp == 0.0 {
            return ops::argmax(logits);
        }
        let inv = 1.0 / temp;
        for l in logits.iter_mut() {
            *l *= inv;
        }
        let greedy = ops::argmax(logits);
        let sum = ops::softmax_in_place(logits);
        if !(sum > 0.0 && sum.is_finite()) {
            return greedy;
        }
        let probs = logits;
        let v = probs.len();
        let k = self.cfg.top_k;
        if k > 0 && k < v {
            work.copy_from_slice(probs);
            let (_, &mut thr, _) = work.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            keep_top(probs, thr, k);
        }
        let p = self.cfg.top_p;
        if p < 1.0 {
            let total: f32 = probs.iter().sum();
            work.copy_from_slice(probs);
            work.sort_unstable_by(|a, b| b.total_cmp(a));
            let target = p * total;
            let mut cum = 0.0f32;
            let mut count = 0usize;
            for &w in work.iter() {
                if w <= 0.0 {
                    break;
                }
                cum += w;
                count += 1;
                if cum >= target {
                    break;
                }
            }
            let count = count.max(1);
            let thr = work[count - 1];
            keep_top(probs, thr, count);
        }
        let total: f32 = probs.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return greedy;
        }
        let u = self.next_f32() * total;
        let mut cum = 0.0f32;
        let mut last = greedy;
        for (i, &pr) in probs.iter().enumerate() {
            if pr > 0.0 {
                cum += pr;
                last = i;
                if u < cum {
                    return i;
                }
            }
        }
        // Rounding left `u` at or above the running sum: take the last kept token.
        last
    }
}

/// Zeroes every probability except the `count` largest: all values above
/// `thr`, then values equal to `thr` in index order until `count` are kept.
fn keep_top(probs: &mut [f32], thr: f32, count: usize) {
    let above = probs.iter().filter(|&&p| p > thr).count();
    let mut equal_left = count.saturating_sub(above);
    for p in probs.iter_mut() {
        if *p > thr {
            continue;
        }
        if *p == thr && equal_left > 0 {
            equal_left -= 1;
            continue;
        }
        *p = 0.0;
    }
}
