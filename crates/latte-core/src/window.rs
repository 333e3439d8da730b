//! Causal softmax attention over the last `W` tokens, kept in a ring buffer:
//! the local term of Latte-Macchiato ([`Macchiato`]) and, with `W` the
//! caller's whole context, the standard-attention baseline
//! ([`AttentionLayer`]).
//!
//! Per head `h` (width `Dh = D / H`), with `q = Wq x`, `k = Wk x`, `v = Wv x`
//! (`D` each) and the ring holding the keys and values of the last
//! `n = min(t + 1, W)` tokens:
//!
//! ```text
//! a_j = (q_h . k_j,h) / sqrt(Dh) - beta_h * (n - 1 - j)    j = 0 (oldest) .. n-1 (this token)
//! y_h = sum_j softmax(a)_j v_j,h,   lse_h = log sum_j exp(a_j)
//! ```
//!
//! `beta_h >= 0` is the head's distance slope (ALiBi's form, learned): the
//! score depends on the distance only, which the ring knows exactly, so the
//! same bits come out at position 100 and at position 10^9 (no rotation
//! angles to lose precision; see the trainer's `attention.py` for why this
//! and not RoPE or VAPOR).
//!
//! The ring's state is `[keys W x R][values W x R][slot, filled]` (`f32`
//! words): entries token-major, `R` the words of one entry by its
//! [`RingStorage`], `slot` the next entry to write and `filled` how many are
//! valid, both small integers stored exactly as `f32` (`W < 2^24`). The
//! storage is chosen at load ([`crate::Model::with_ring_storage`]):
//!
//! | storage | an entry (`D` values, `H` heads) | `R` words |
//! |---|---|---|
//! | `f32` (default) | the values | `D` |
//! | `f16` | the values rounded to `f16` (nearest, ties to even), two per word | `ceil(D / 2)` |
//! | `q8` | per head, `q_i = round(x_i / s)` in `i8` (half away from zero), `s = max_i abs(x_i) / 127`; the `D` bytes, then the `H` scales `s` as `f32` | `ceil(D / 4) + H` |
//!
//! With `f16` the scores and sums use the widened values exactly as `f32`
//! does; with `q8` a head's score is `dot(q, k_int) * s` and its value term
//! `(p * s) * v_int`.
//!
//! Arithmetic: the scores are dot products in eight interleaved partial
//! sums (element `i` into sum `i % 8`; the sums then added in order 0..8),
//! a block of entries at a time ([`Kernels::window_dots`]), the softmax runs
//! over blocks of [`SCORE_BLOCK`] entries with a running maximum (the
//! block's exponentials through [`Kernels::exp_inplace`]), and the values are
//! accumulated element by element, entry after entry
//! ([`Kernels::window_sums`]). Those three kernels are bit-identical to their
//! scalar twins on every path (AVX2 widens `f16` and `i8` rows in registers;
//! the Cortex-M FPU runs `VMLA` loops), and the rest is plain Rust, so every
//! kernel path gives the same bits.

use latte_kernels::{f16, Kernels, RingRows};

use crate::block::{products, Ctx};
use crate::error::Error;
use crate::latte::LatteLayer;
use crate::tensor::Matrix;

/// Ring entries whose scores are exponentiated together.
const SCORE_BLOCK: usize = 64;

/// The largest window (or attention capacity): the ring's counters are
/// stored exactly as `f32`.
pub const MAX_WINDOW: usize = 1 << 24;

/// How a window's ring stores its keys and values (module docs). A choice
/// made at load, not part of the file: the weights are the same, the
/// session's state is smaller, and the logits move by the rounding of the
/// stored keys and values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RingStorage {
    /// `f32` values: the reference.
    #[default]
    F32,
    /// `f16` values: half the memory.
    F16,
    /// 8-bit values with an `f32` scale per head of an entry: about a
    /// quarter of the memory.
    Q8,
}

impl RingStorage {
    /// Every storage, in the order of [`RingStorage::name`]'s list.
    pub const ALL: [RingStorage; 3] = [RingStorage::F32, RingStorage::F16, RingStorage::Q8];

    /// `"f32"`, `"f16"` or `"q8"`.
    pub fn name(self) -> &'static str {
        match self {
            RingStorage::F32 => "f32",
            RingStorage::F16 => "f16",
            RingStorage::Q8 => "q8",
        }
    }

    /// The storage named `name` ([`RingStorage::name`]), if any.
    pub fn from_name(name: &str) -> Option<RingStorage> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// `f32` words of one ring entry of `d` values in `h` heads (`None` on
    /// overflow).
    pub fn entry_words(self, d: usize, h: usize) -> Option<usize> {
        match self {
            RingStorage::F32 => Some(d),
            RingStorage::F16 => Some(d.div_ceil(2)),
            RingStorage::Q8 => d.div_ceil(4).checked_add(h),
        }
    }

    /// Writes `x` (`D` values of `h` heads) into `entry` (`entry_words`).
    fn store(self, x: &[f32], h: usize, entry: &mut [f32]) {
        let d = x.len();
        match self {
            RingStorage::F32 => entry[..d].copy_from_slice(x),
            RingStorage::F16 => {
                let halves: &mut [u16] = bytemuck::cast_slice_mut(entry);
                for (o, &v) in halves.iter_mut().zip(x) {
                    *o = f16::from_f32(v).to_bits();
                }
                // An odd width's last half-word: zero, so the state is a
                // function of the tokens alone.
                halves[d..].fill(0);
            }
            RingStorage::Q8 => {
                let (qs, scales) = entry.split_at_mut(d.div_ceil(4));
                let qs: &mut [i8] = bytemuck::cast_slice_mut(qs);
                qs[d..].fill(0);
                let dh = d / h;
                for (hh, s) in scales.iter_mut().enumerate().take(h) {
                    let xs = &x[hh * dh..(hh + 1) * dh];
                    let mut amax = 0.0f32;
                    for &v in xs {
                        let a = libm::fabsf(v);
                        // A NaN is kept: it makes the scale NaN, as an
                        // `f32` ring would carry the NaN into the scores.
                        if a > amax || a.is_nan() {
                            amax = a;
                        }
                    }
                    *s = amax / 127.0;
                    let inv = if amax > 0.0 && amax.is_finite() {
                        127.0 / amax
                    } else {
                        0.0
                    };
                    for (q, &v) in qs[hh * dh..(hh + 1) * dh].iter_mut().zip(xs) {
                        // `as` saturates and maps NaN to 0.
                        *q = libm::roundf(v * inv) as i8;
                    }
                }
            }
        }
    }

    /// Head `hh` (`dh` values from `hh * dh`) of ring entries `a..b` of
    /// `ring` (entries of `rw` words), as rows for the window kernels, and
    /// the stride between rows in the rows' elements.
    fn head_rows(
        self,
        ring: &[f32],
        rw: usize,
        (dh, hh): (usize, usize),
        a: usize,
        b: usize,
    ) -> (RingRows<'_>, usize) {
        let off = hh * dh;
        match self {
            RingStorage::F32 => (RingRows::F32(&ring[a * rw + off..b * rw]), rw),
            RingStorage::F16 => {
                let halves: &[u16] = bytemuck::cast_slice(&ring[a * rw..b * rw]);
                (RingRows::F16(&halves[off..]), 2 * rw)
            }
            RingStorage::Q8 => {
                let bytes: &[i8] = bytemuck::cast_slice(&ring[a * rw..b * rw]);
                (RingRows::I8(&bytes[off..]), 4 * rw)
            }
        }
    }

    /// The scale of head `hh` of ring entry `e` of a `q8` ring (entries of
    /// `rw` words holding `d` values).
    #[inline]
    fn q8_scale(ring: &[f32], rw: usize, d: usize, e: usize, hh: usize) -> f32 {
        ring[e * rw + d.div_ceil(4) + hh]
    }
}

/// How a Macchiato layer combines its Latte and window terms (per head,
/// before the shared `Wo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    /// `y_latte + y_window` (the paper's v3/v4 form).
    Sum,
    /// One softmax over the head's latents and the window's tokens (v5's
    /// "full normalisation"): `g y_latte + (1 - g) y_window` with
    /// `g = sigmoid(logsumexp(q_latents) - logsumexp(a_window))`.
    Joint,
}

impl Combine {
    /// The file-format name (`latte.window_combine`).
    pub fn name(self) -> &'static str {
        match self {
            Combine::Sum => "sum",
            Combine::Joint => "joint",
        }
    }
}

/// Weights and sizes of the window attention of one layer: `Wq`, `Wk`,
/// `Wv` (`D x D`), the slopes (`H`) and the window `W`.
#[derive(Clone, Copy, Debug)]
pub struct WindowAttention<'a> {
    n_heads: usize,
    d_model: usize,
    window: usize,
    wq: Matrix<'a>,
    wk: Matrix<'a>,
    wv: Matrix<'a>,
    slopes: &'a [f32],
    storage: RingStorage,
}

impl<'a> WindowAttention<'a> {
    /// Builds the window attention of `n_heads` heads over `window` tokens.
    ///
    /// Errors: [`Error::ZeroSize`], [`Error::HeadsDoNotDivideWidth`],
    /// [`Error::WindowTooLarge`] (`window > MAX_WINDOW`),
    /// [`Error::BufferLength`] for a matrix that is not `D x D` or slopes
    /// that are not `H` long, [`Error::WindowSlope`] for a slope that is
    /// not finite or below zero.
    pub fn new(
        n_heads: usize,
        d_model: usize,
        window: usize,
        wq: Matrix<'a>,
        wk: Matrix<'a>,
        wv: Matrix<'a>,
        slopes: &'a [f32],
    ) -> Result<Self, Error> {
        for (v, key) in [
            (n_heads, "latte.attention.head_count"),
            (d_model, "latte.embedding_length"),
            (window, "latte.window"),
        ] {
            if v == 0 {
                return Err(Error::ZeroSize { key });
            }
        }
        if !d_model.is_multiple_of(n_heads) {
            return Err(Error::HeadsDoNotDivideWidth { d_model, n_heads });
        }
        if window > MAX_WINDOW {
            return Err(Error::WindowTooLarge {
                window,
                max: MAX_WINDOW,
            });
        }
        for (m, what) in [(&wq, "Wq rows"), (&wk, "Wk rows"), (&wv, "Wv rows")] {
            if m.rows() != d_model || m.cols() != d_model {
                return Err(Error::BufferLength {
                    what,
                    need: d_model,
                    got: if m.rows() != d_model {
                        m.rows()
                    } else {
                        m.cols()
                    },
                });
            }
        }
        if slopes.len() != n_heads {
            return Err(Error::BufferLength {
                what: "window slopes",
                need: n_heads,
                got: slopes.len(),
            });
        }
        if let Some(head) = slopes.iter().position(|s| !(s.is_finite() && *s >= 0.0)) {
            return Err(Error::WindowSlope { layer: None, head });
        }
        // The ring must be addressable in any storage.
        window
            .checked_mul(
                RingStorage::F32
                    .entry_words(d_model, n_heads)
                    .unwrap_or(usize::MAX),
            )
            .and_then(|n| n.checked_mul(2))
            .and_then(|n| n.checked_add(2))
            .ok_or(Error::SizeOverflow)?;
        Ok(WindowAttention {
            n_heads,
            d_model,
            window,
            wq,
            wk,
            wv,
            slopes,
            storage: RingStorage::F32,
        })
    }

    /// The same attention with its ring in `storage` (the state length
    /// changes; [`WindowAttention::state_len`]).
    pub fn with_storage(mut self, storage: RingStorage) -> Self {
        self.storage = storage;
        self
    }

    /// How the ring stores keys and values.
    pub fn storage(&self) -> RingStorage {
        self.storage
    }

    /// `f32` words of one ring entry ([`RingStorage::entry_words`]).
    fn entry_words(&self) -> usize {
        // `new` checked the `f32` size, the largest of the three.
        self.storage
            .entry_words(self.d_model, self.n_heads)
            .unwrap_or(usize::MAX)
    }

    /// The window `W` (the ring's entries).
    pub fn window(&self) -> usize {
        self.window
    }

    /// The same weights over another window (the attention baseline's
    /// capacity is the caller's choice). Errors as [`WindowAttention::new`].
    pub fn with_window(self, window: usize) -> Result<Self, Error> {
        Self::new(
            self.n_heads,
            self.d_model,
            window,
            self.wq,
            self.wk,
            self.wv,
            self.slopes,
        )
        .map(|w| w.with_storage(self.storage))
    }

    /// The heads' distance slopes `beta`.
    pub fn slopes(&self) -> &'a [f32] {
        self.slopes
    }

    /// `Wq`, `Wk`, `Wv`.
    pub(crate) fn matrices(&self) -> [&Matrix<'a>; 3] {
        [&self.wq, &self.wk, &self.wv]
    }

    /// `f32` elements of the ring: `2 W R + 2` (`R` =
    /// [`RingStorage::entry_words`]; `D` for `f32`).
    pub fn state_len(&self) -> usize {
        2 * self.window * self.entry_words() + 2
    }

    /// `f32` elements of the ring that hold information after `tokens`
    /// tokens: the entries filled so far and the two counters.
    pub fn state_len_in_use(&self, tokens: u64) -> usize {
        (tokens.min(self.window as u64) as usize) * 2 * self.entry_words() + 2
    }

    /// The empty ring (all zeros: no entry valid).
    pub fn reset_state(&self, state: &mut [f32]) {
        state
            .iter_mut()
            .take(self.state_len())
            .for_each(|v| *v = 0.0);
    }

    /// Valid entries of a ring state (the tokens it holds).
    pub fn filled(&self, state: &[f32]) -> usize {
        state
            .get(2 * self.window * self.entry_words() + 1)
            .map_or(0, |&f| f as usize)
    }

    /// `q`, `k`, `v` of `n` tokens (`x` is `n x D`) into `q`, `k`, `v`
    /// (`n x D` each).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn project(
        &self,
        cx: &Ctx<'_, 'a>,
        x: &[f32],
        n: usize,
        quant: &mut [f32],
        q: &mut [f32],
        k: &mut [f32],
        v: &mut [f32],
    ) {
        products(
            cx,
            x,
            n,
            quant,
            [(&self.wq, q), (&self.wk, k), (&self.wv, v)],
        );
    }

    /// One token: writes its `k`, `v` (`D`) into the ring (evicting the
    /// oldest entry when it is full), then attends with `q` (`D`): the heads'
    /// outputs into `y` (`D`) and their log partition functions into `lse`
    /// (`H`). Slices are the sizes above (callers check).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attend(
        &self,
        kernels: &Kernels,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        state: &mut [f32],
        y: &mut [f32],
        lse: &mut [f32],
    ) {
        let (d, w, st) = (self.d_model, self.window, self.storage);
        let (dh, rw) = (d / self.n_heads, self.entry_words());
        let (keys, rest) = state.split_at_mut(w * rw);
        let (vals, counters) = rest.split_at_mut(w * rw);
        let slot = counters[0] as usize % w;
        let filled = (counters[1] as usize).min(w - 1) + 1;
        st.store(&k[..d], self.n_heads, &mut keys[slot * rw..(slot + 1) * rw]);
        st.store(&v[..d], self.n_heads, &mut vals[slot * rw..(slot + 1) * rw]);
        counters[0] = ((slot + 1) % w) as f32;
        counters[1] = filled as f32;
        let oldest = (slot + w + 1 - filled) % w;
        let scale = 1.0 / libm::sqrtf(dh as f32);
        let q8 = st == RingStorage::Q8;
        for (h, lse_h) in lse.iter_mut().enumerate().take(self.n_heads) {
            let cols = h * dh..(h + 1) * dh;
            let qh = &q[cols.clone()];
            let yh = &mut y[cols.clone()];
            yh.fill(0.0);
            let slope = self.slopes[h];
            let mut m = f32::NEG_INFINITY;
            let mut z = 0.0f32;
            let mut j0 = 0;
            // The ring entry of chronological index j0.
            let mut idx = oldest;
            while j0 < filled {
                let cnt = (filled - j0).min(SCORE_BLOCK);
                // The block's entries in the ring: `idx..`, wrapping once at
                // most; (first entry, offset in the block, count).
                let first = cnt.min(w - idx);
                let segments = [(idx, 0, first), (0, first, cnt - first)];
                let mut e = [0.0f32; SCORE_BLOCK];
                let e = &mut e[..cnt];
                for &(at, off, c) in segments.iter().filter(|s| s.2 > 0) {
                    let (rows, stride) = st.head_rows(keys, rw, (dh, h), at, at + c);
                    kernels.window_dots(qh, rows, stride, &mut e[off..off + c]);
                }
                let mut bmax = f32::NEG_INFINITY;
                // Distance of entry j0 + i: filled - 1 - j0 - i.
                let mut dist = (filled - 1 - j0) as f32;
                let mut id = idx;
                for a in e.iter_mut() {
                    let dot = if q8 {
                        *a * RingStorage::q8_scale(keys, rw, d, id, h)
                    } else {
                        *a
                    };
                    *a = dot * scale - slope * dist;
                    if *a > bmax {
                        bmax = *a;
                    }
                    dist -= 1.0;
                    id += 1;
                    if id == w {
                        id = 0;
                    }
                }
                if bmax > m {
                    // A new maximum: rescale what was summed so far.
                    if m > f32::NEG_INFINITY {
                        let mut r = [m - bmax];
                        kernels.exp_inplace(&mut r);
                        z *= r[0];
                        yh.iter_mut().for_each(|a| *a *= r[0]);
                    }
                    m = bmax;
                }
                e.iter_mut().for_each(|a| *a -= m);
                kernels.exp_inplace(e);
                // The weights of the values (`q8`: times each value's scale).
                let mut pw = [0.0f32; SCORE_BLOCK];
                let pw = &mut pw[..cnt];
                let mut id = idx;
                for (o, &p) in pw.iter_mut().zip(e.iter()) {
                    z += p;
                    *o = if q8 {
                        p * RingStorage::q8_scale(vals, rw, d, id, h)
                    } else {
                        p
                    };
                    id += 1;
                    if id == w {
                        id = 0;
                    }
                }
                for &(at, off, c) in segments.iter().filter(|s| s.2 > 0) {
                    let (rows, stride) = st.head_rows(vals, rw, (dh, h), at, at + c);
                    kernels.window_sums(yh, &pw[off..off + c], rows, stride);
                }
                idx = id;
                j0 += cnt;
            }
            let inv = 1.0 / z;
            yh.iter_mut().for_each(|a| *a *= inv);
            *lse_h = m + libm::logf(z);
        }
    }
}

/// A Latte-Macchiato layer: causal Latte (global) plus window attention
/// (local), combined per head by [`Combine`] and projected by Latte's `Wo`.
/// Its state is Latte's state followed by the ring.
#[derive(Clone, Copy, Debug)]
pub struct Macchiato<'a> {
    pub(crate) latte: LatteLayer<'a>,
    pub(crate) window: WindowAttention<'a>,
    pub(crate) combine: Combine,
}

impl<'a> Macchiato<'a> {
    /// Joins a Latte layer and a window of the same width and heads.
    ///
    /// Errors: [`Error::BufferLength`] when the widths or head counts differ.
    pub fn new(
        latte: LatteLayer<'a>,
        window: WindowAttention<'a>,
        combine: Combine,
    ) -> Result<Self, Error> {
        if latte.d_model() != window.d_model || latte.n_heads() != window.n_heads {
            return Err(Error::BufferLength {
                what: "window width and heads (must equal the Latte layer's)",
                need: latte.d_model(),
                got: window.d_model,
            });
        }
        Ok(Macchiato {
            latte,
            window,
            combine,
        })
    }

    /// The Latte term.
    pub fn latte(&self) -> &LatteLayer<'a> {
        &self.latte
    }

    /// The window term.
    pub fn window(&self) -> &WindowAttention<'a> {
        &self.window
    }

    /// How the two are combined.
    pub fn combine(&self) -> Combine {
        self.combine
    }

    /// Latte's state plus the ring.
    pub fn state_len(&self) -> usize {
        self.latte.state_len() + self.window.state_len()
    }

    /// Scratch per token of a chunk: Latte's `2 L + 2 D`, the window's `q`,
    /// `k`, `v` and output (`4 D`), the heads' log partition functions of
    /// both terms (`2 H`).
    pub(crate) fn tmp_per_token(&self) -> usize {
        2 * self.latte.n_latents() + 6 * self.latte.d_model() + 2 * self.latte.n_heads()
    }

    pub(crate) fn run_chunk(
        &self,
        cx: &Ctx<'_, 'a>,
        x: &[f32],
        state: &mut [f32],
        tmp: &mut [f32],
        quant: &mut [f32],
        out: &mut [f32],
    ) {
        let lt = &self.latte;
        let (d, l, h) = (lt.d_model(), lt.n_latents(), lt.n_heads());
        let lh = l / h;
        let n = x.len() / d.max(1);
        let kern = cx.kernels;
        let (ls, ws) = state.split_at_mut(lt.state_len());
        let (lq, rest) = tmp.split_at_mut(n * l);
        let (lk, rest) = rest.split_at_mut(n * l);
        let (lv, rest) = rest.split_at_mut(n * d);
        let (y, rest) = rest.split_at_mut(n * d);
        let (wq, rest) = rest.split_at_mut(n * d);
        let (wk, rest) = rest.split_at_mut(n * d);
        let (wv, rest) = rest.split_at_mut(n * d);
        let (yw, rest) = rest.split_at_mut(d);
        let (lse_q, rest) = rest.split_at_mut(h);
        let lse_w = &mut rest[..h];
        lt.project(cx, x, n, quant, lq, lk, lv);
        self.window.project(cx, x, n, quant, wq, wk, wv);
        for t in 0..n {
            let (tl, td) = (t * l..(t + 1) * l, t * d..(t + 1) * d);
            if self.combine == Combine::Joint {
                for (hh, out) in lse_q.iter_mut().enumerate() {
                    *out = log_sum_exp(kern, &lq[t * l + hh * lh..t * l + (hh + 1) * lh]);
                }
            }
            lt.recur(
                kern,
                &mut lq[tl.clone()],
                &lk[tl],
                &lv[td.clone()],
                ls,
                cx.rot,
                &mut y[td.clone()],
            );
            self.window.attend(
                kern,
                &wq[td.clone()],
                &wk[td.clone()],
                &wv[td.clone()],
                ws,
                yw,
                lse_w,
            );
            let yt = &mut y[td];
            match self.combine {
                Combine::Sum => {
                    for (a, &b) in yt.iter_mut().zip(yw.iter()) {
                        *a += b;
                    }
                }
                Combine::Joint => {
                    let dh = d / h;
                    for hh in 0..h {
                        // g = sigmoid(lse_q - lse_w) = 1 / (1 + exp(lse_w - lse_q)).
                        let mut e = [lse_w[hh] - lse_q[hh]];
                        kern.exp_inplace(&mut e);
                        let g = 1.0 / (1.0 + e[0]);
                        let cols = hh * dh..(hh + 1) * dh;
                        for (a, &b) in yt[cols.clone()].iter_mut().zip(&yw[cols]) {
                            *a = g * *a + (1.0 - g) * b;
                        }
                    }
                }
            }
        }
        lt.project_out(cx, y, n, quant, out);
    }
}

/// `log sum exp(x)` through the kernel table's `exp` (blocks of 64).
fn log_sum_exp(kern: &Kernels, x: &[f32]) -> f32 {
    let mut m = f32::NEG_INFINITY;
    for &v in x {
        if v > m {
            m = v;
        }
    }
    let mut z = 0.0f32;
    for c in x.chunks(SCORE_BLOCK) {
        let mut e = [0.0f32; SCORE_BLOCK];
        let e = &mut e[..c.len()];
        for (a, &v) in e.iter_mut().zip(c) {
            *a = v - m;
        }
        kern.exp_inplace(e);
        for &v in e.iter() {
            z += v;
        }
    }
    m + libm::logf(z)
}

/// The standard-attention baseline: window attention with its own `Wo` and
/// no Latte term. With the window set to the caller's context (see
/// [`crate::Model::with_attention_capacity`]) it is full causal attention
/// whose KV cache is the ring.
#[derive(Clone, Copy, Debug)]
pub struct AttentionLayer<'a> {
    pub(crate) window: WindowAttention<'a>,
    pub(crate) wo: Matrix<'a>,
}

impl<'a> AttentionLayer<'a> {
    /// Errors: [`Error::BufferLength`] unless `wo` is `D x D`.
    pub fn new(window: WindowAttention<'a>, wo: Matrix<'a>) -> Result<Self, Error> {
        if wo.rows() != window.d_model || wo.cols() != window.d_model {
            return Err(Error::BufferLength {
                what: "Wo rows",
                need: window.d_model,
                got: wo.rows(),
            });
        }
        Ok(AttentionLayer { window, wo })
    }

    /// The attention (its window is the KV cache's capacity).
    pub fn window(&self) -> &WindowAttention<'a> {
        &self.window
    }

    pub(crate) fn tmp_per_token(&self) -> usize {
        4 * self.window.d_model + self.window.n_heads
    }

    pub(crate) fn run_chunk(
        &self,
        cx: &Ctx<'_, 'a>,
        x: &[f32],
        state: &mut [f32],
        tmp: &mut [f32],
        quant: &mut [f32],
        out: &mut [f32],
    ) {
        let (d, h) = (self.window.d_model, self.window.n_heads);
        let n = x.len() / d.max(1);
        let (q, rest) = tmp.split_at_mut(n * d);
        let (k, rest) = rest.split_at_mut(n * d);
        let (v, rest) = rest.split_at_mut(n * d);
        let (y, rest) = rest.split_at_mut(n * d);
        let lse = &mut rest[..h];
        self.window.project(cx, x, n, quant, q, k, v);
        for t in 0..n {
            let td = t * d..(t + 1) * d;
            let (qt, kt, vt) = (&q[td.clone()], &k[td.clone()], &v[td.clone()]);
            self.window
                .attend(cx.kernels, qt, kt, vt, state, &mut y[td], lse);
        }
        products(cx, y, n, quant, [(&self.wo, &mut out[..n * d])]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key of `D = 12`, `H = 3` with a zero head, a tiny head and a
    /// mixed one, stored and read back one element at a time (`q` a unit
    /// vector): `f16` gives `half`'s rounding of every value, `q8` each
    /// value within half a step (`max / 254`) of its head's, zeros exact.
    #[test]
    fn stored_entries_read_back_within_their_rounding() {
        let x: [f32; 12] = [
            0.0, 0.0, 0.0, 0.0, 1e-6, -3e-7, 2e-6, 0.0, 3.75, -1.2, 0.333, -7.5,
        ];
        let (d, h, dh) = (12, 3, 4);
        for st in [RingStorage::F32, RingStorage::F16, RingStorage::Q8] {
            let mut entry = [f32::NAN; 16];
            let words = st.entry_words(d, h).unwrap();
            st.store(&x, h, &mut entry[..words]);
            for hh in 0..h {
                let cols = hh * dh..(hh + 1) * dh;
                let amax = x[cols.clone()].iter().fold(0f32, |m, v| m.max(v.abs()));
                for i in 0..dh {
                    let mut q = [0f32; 4];
                    q[i] = 1.0;
                    let (rows, stride) = st.head_rows(&entry[..words], words, (dh, hh), 0, 1);
                    let mut got = [0f32; 1];
                    Kernels::scalar().window_dots(&q, rows, stride, &mut got);
                    let mut acc = [0f32; 4];
                    Kernels::scalar().window_sums(&mut acc, &[1.0], rows, stride);
                    let mut got = got[0];
                    if st == RingStorage::Q8 {
                        let s = RingStorage::q8_scale(&entry[..words], words, d, 0, hh);
                        got *= s;
                        acc[i] *= s;
                    }
                    assert_eq!(got.to_bits(), acc[i].to_bits(), "{st:?}: dot vs add");
                    let v = x[cols.start + i];
                    match st {
                        RingStorage::F32 => assert_eq!(got, v),
                        RingStorage::F16 => assert_eq!(got, half::f16::from_f32(v).to_f32()),
                        RingStorage::Q8 => {
                            assert!((got - v).abs() <= amax / 254.0 * 1.0001, "{v} -> {got}");
                            if v == 0.0 {
                                assert_eq!(got, 0.0);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Every `f16` value, the special ones included, widens to `half`'s
    /// `f32`.
    #[test]
    fn f16_widening_is_halfs_for_every_value() {
        for bits in 0..=u16::MAX {
            let want = f16::from_bits(bits).to_f32();
            let got = latte_kernels::scalar::widen_f16(bits);
            assert_eq!(got.to_bits(), want.to_bits(), "{bits:#06x}");
        }
    }

    #[test]
    fn entry_words_and_names() {
        assert_eq!(RingStorage::F32.entry_words(128, 4), Some(128));
        assert_eq!(RingStorage::F16.entry_words(129, 3), Some(65));
        assert_eq!(RingStorage::Q8.entry_words(128, 4), Some(36));
        assert_eq!(RingStorage::Q8.entry_words(usize::MAX, usize::MAX), None);
        for st in RingStorage::ALL {
            assert_eq!(RingStorage::from_name(st.name()), Some(st));
        }
        assert_eq!(RingStorage::from_name("q8_0"), None);
    }
}
