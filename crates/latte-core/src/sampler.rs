//! Token sampler with fixed memory: repetition penalty, temperature, top-k,
//! top-p, seeded PRNG.
//!
//! Order of operations on the logits:
//!
//! 1. repetition penalty (llama.cpp style) for every distinct token among the
//!    last `repeat_last_n` accepted tokens: `logit > 0 ? logit / penalty :
//!    logit * penalty`;
//! 2. `temperature == 0`: greedy argmax (lowest index wins ties), done;
//! 3. divide by the temperature, softmax with max subtraction
//!    ([`crate::ops::softmax_in_place`]; its `exp` is
//!    `latte_kernels::scalar::exp_f32`, the same bits on every target);
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
use crate::wire::{Reader, Writer};

/// Largest supported `repeat_last_n`.
pub const MAX_REPEAT_LAST_N: usize = 256;

/// Bytes of a sampler's saved state ([`Sampler::save_state`]), whatever its
/// settings: the configuration, the PRNG state and the whole penalty window.
pub const SAMPLER_STATE_BYTES: usize = 48 + 4 * MAX_REPEAT_LAST_N;

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

    /// Replaces the settings and keeps the PRNG state (call
    /// [`Sampler::reseed`] to restart it) and the most recent
    /// `min(stored, cfg.repeat_last_n)` tokens of the penalty window, so a
    /// restored conversation can go on with other settings. `cfg.seed` is
    /// recorded but not applied.
    ///
    /// Errors: as [`Sampler::new`]; nothing changes then.
    pub fn set_config(&mut self, cfg: SamplerConfig) -> Result<(), Error> {
        let fresh = Sampler::new(cfg)?;
        // Oldest to newest: the ring starts at `next` once it is full.
        let old_n = self.cfg.repeat_last_n;
        let mut ordered = [0u32; MAX_REPEAT_LAST_N];
        let filled = self.filled.min(old_n).min(MAX_REPEAT_LAST_N);
        let start = if filled == old_n { self.next } else { 0 };
        for (i, slot) in ordered.iter_mut().take(filled).enumerate() {
            let idx = (start + i) % old_n.max(1);
            *slot = self.window.get(idx).copied().unwrap_or(0);
        }
        let rng = self.rng;
        *self = fresh;
        self.rng = rng;
        let keep = filled.min(cfg.repeat_last_n);
        for &t in &ordered[filled - keep..filled] {
            self.accept(t);
        }
        Ok(())
    }

    /// Writes the complete sampler state (settings, PRNG state, penalty
    /// window) to `out[..SAMPLER_STATE_BYTES]`, little-endian, and returns
    /// [`SAMPLER_STATE_BYTES`]. [`Sampler::restore_state`] reads it back into
    /// a sampler that draws the same tokens from then on.
    ///
    /// Layout (byte offsets): 0 temperature (`f32` bits), 4 `top_p`, 8
    /// `repeat_penalty`, 12 `repeat_last_n` (`u32`), 16 `top_k` (`u64`), 24
    /// seed, 32 PRNG state, 40 window fill (`u32`), 44 next window slot
    /// (`u32`), 48 the window (`MAX_REPEAT_LAST_N` `u32`s).
    ///
    /// Errors: [`Error::SnapshotBufferTooSmall`] when `out` is shorter.
    pub fn save_state(&self, out: &mut [u8]) -> Result<usize, Error> {
        let got = out.len();
        let out = out
            .get_mut(..SAMPLER_STATE_BYTES)
            .ok_or(Error::SnapshotBufferTooSmall {
                need: SAMPLER_STATE_BYTES,
                got,
            })?;
        let c = &self.cfg;
        let mut w = Writer::new(out);
        w.put(&c.temperature.to_bits().to_le_bytes());
        w.put(&c.top_p.to_bits().to_le_bytes());
        w.put(&c.repeat_penalty.to_bits().to_le_bytes());
        w.put(&(c.repeat_last_n as u32).to_le_bytes());
        w.put(&(c.top_k as u64).to_le_bytes());
        w.put(&c.seed.to_le_bytes());
        w.put(&self.rng.to_le_bytes());
        w.put(&(self.filled as u32).to_le_bytes());
        w.put(&(self.next as u32).to_le_bytes());
        for t in &self.window {
            w.put(&t.to_le_bytes());
        }
        Ok(SAMPLER_STATE_BYTES)
    }

    /// Rebuilds a sampler from [`Sampler::save_state`]'s bytes (only the
    /// first [`SAMPLER_STATE_BYTES`] are read). Everything is validated, so
    /// hostile bytes give an error, never a sampler that misbehaves.
    ///
    /// Errors: [`Error::SnapshotTruncated`] when `bytes` is too short;
    /// [`Error::SnapshotInvalid`] for settings [`Sampler::new`] would
    /// refuse, a `top_k` that does not fit `usize`, a zero PRNG state, or
    /// window positions outside `repeat_last_n`.
    pub fn restore_state(bytes: &[u8]) -> Result<Sampler, Error> {
        let b = bytes
            .get(..SAMPLER_STATE_BYTES)
            .ok_or(Error::SnapshotTruncated {
                need: SAMPLER_STATE_BYTES,
                got: bytes.len(),
            })?;
        let mut r = Reader::new(b);
        let temperature = f32::from_bits(r.u32());
        let top_p = f32::from_bits(r.u32());
        let repeat_penalty = f32::from_bits(r.u32());
        let repeat_last_n = r.u32() as usize;
        let top_k = usize::try_from(r.u64()).map_err(|_| Error::SnapshotInvalid {
            what: "sampler top_k does not fit this target",
        })?;
        let seed = r.u64();
        let rng = r.u64();
        let filled = r.u32() as usize;
        let next = r.u32() as usize;
        let cfg = SamplerConfig {
            temperature,
            top_k,
            top_p,
            repeat_penalty,
            repeat_last_n,
            seed,
        };
        let mut s = Sampler::new(cfg).map_err(|_| Error::SnapshotInvalid {
            what: "sampler settings",
        })?;
        if rng == 0 {
            return Err(Error::SnapshotInvalid {
                what: "sampler PRNG state is zero",
            });
        }
        let next_ok = if repeat_last_n == 0 {
            next == 0
        } else {
            next < repeat_last_n
        };
        if filled > repeat_last_n || !next_ok {
            return Err(Error::SnapshotInvalid {
                what: "sampler penalty window positions",
            });
        }
        s.rng = rng;
        s.filled = filled;
        s.next = next;
        for slot in s.window.iter_mut() {
            *slot = r.u32();
        }
        Ok(s)
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
