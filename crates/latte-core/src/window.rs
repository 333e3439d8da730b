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
//! The ring's state is `[keys W x D][values W x D][slot, filled]`: entries
//! token-major, `slot` the next entry to write and `filled` how many are
//! valid, both small integers stored exactly as `f32` (`W < 2^24`).
//!
//! Arithmetic: the scores are dot products in eight interleaved partial
//! sums (element `i` into sum `i % 8`, the sums then added in order
//! 0..8), the softmax runs over blocks of [`SCORE_BLOCK`] entries with a
//! running maximum (the block's exponentials through
//! [`Kernels::exp_inplace`], which gives the same bits on every path), and
//! the values are accumulated element by element. This code is its own
//! scalar spec: nothing here is dispatched by instruction set except `exp`,
//! so every kernel path gives the same bits.

use latte_kernels::Kernels;

use crate::block::{products, Ctx};
use crate::error::Error;
use crate::latte::LatteLayer;
use crate::tensor::Matrix;

/// Ring entries whose scores are exponentiated together.
const SCORE_BLOCK: usize = 64;

/// The largest window (or attention capacity): the ring's counters are
/// stored exactly as `f32`.
pub const MAX_WINDOW: usize = 1 << 24;

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
        // The ring must be addressable.
        window
            .checked_mul(d_model)
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
        })
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
    }

    /// The heads' distance slopes `beta`.
    pub fn slopes(&self) -> &'a [f32] {
        self.slopes
    }

    /// `Wq`, `Wk`, `Wv`.
    pub(crate) fn matrices(&self) -> [&Matrix<'a>; 3] {
        [&self.wq, &self.wk, &self.wv]
    }

    /// `f32` elements of the ring: `2 W D + 2`.
    pub fn state_len(&self) -> usize {
        2 * self.window * self.d_model + 2
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
            .get(2 * self.window * self.d_model + 1)
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
        let (d, w) = (self.d_model, self.window);
        let dh = d / self.n_heads;
        let (keys, rest) = state.split_at_mut(w * d);
        let (vals, counters) = rest.split_at_mut(w * d);
        let slot = counters[0] as usize % w;
        let filled = (counters[1] as usize).min(w - 1) + 1;
        keys[slot * d..(slot + 1) * d].copy_from_slice(&k[..d]);
        vals[slot * d..(slot + 1) * d].copy_from_slice(&v[..d]);
        counters[0] = ((slot + 1) % w) as f32;
        counters[1] = filled as f32;
        let oldest = (slot + w + 1 - filled) % w;
        let scale = 1.0 / libm::sqrtf(dh as f32);
        for (h, lse_h) in lse.iter_mut().enumerate().take(self.n_heads) {
            let cols = h * dh..(h + 1) * dh;
            let qh = &q[cols.clone()];
            let yh = &mut y[cols.clone()];
            yh.fill(0.0);
            let slope = self.slopes[h];
            let mut m = f32::NEG_INFINITY;
            let mut z = 0.0f32;
            let mut j0 = 0;
            // The ring entry of chronological index j0 (wraps once at most).
            let mut idx = oldest;
            while j0 < filled {
                let cnt = (filled - j0).min(SCORE_BLOCK);
                let mut e = [0.0f32; SCORE_BLOCK];
                let e = &mut e[..cnt];
                let mut bmax = f32::NEG_INFINITY;
                let mut id = idx;
                // Distance of entry j0 + i: filled - 1 - j0 - i.
                let mut dist = (filled - 1 - j0) as f32;
                for a in e.iter_mut() {
                    let base = id * d + cols.start;
                    *a = dot8(qh, &keys[base..base + dh]) * scale - slope * dist;
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
                let mut id = idx;
                for &p in e.iter() {
                    let base = id * d + cols.start;
                    z += p;
                    for (acc, &vv) in yh.iter_mut().zip(&vals[base..base + dh]) {
                        *acc += p * vv;
                    }
                    id += 1;
                    if id == w {
                        id = 0;
                    }
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

/// Dot product in eight interleaved partial sums (element `i` into sum
/// `i % 8`), added in order at the end: a fixed order, so the same bits on
/// every machine, and independent chains the compiler can keep in registers.
#[inline]
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut s = [0.0f32; 8];
    let n = a.len().min(b.len());
    let (a8, ar) = a[..n].split_at(n / 8 * 8);
    let (b8, br) = b[..n].split_at(n / 8 * 8);
    for (ca, cb) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for i in 0..8 {
            s[i] += ca[i] * cb[i];
        }
    }
    for (i, (&x, &y)) in ar.iter().zip(br).enumerate() {
        s[i] += x * y;
    }
    let mut t = 0.0f32;
    for v in s {
        t += v;
    }
    t
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
