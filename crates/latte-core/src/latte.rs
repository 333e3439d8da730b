//! One causal Latte layer (the official `StableScanLatte`), run one token at
//! a time on a constant-size state.
//!
//! For each head `h` with latents `l` (`Lh` per head) and value width `Dh`:
//!
//! ```text
//! q = Wq x, k = Wk x, v = Wv x            (L, L, D)
//! p = softmax(q[h*Lh..(h+1)*Lh])          query softmax over the head's latents
//! m' = max(m[l], k[l]); r = exp(m[l] - m'); a = exp(k[l] - m')
//! n[l] = n[l] r + a
//! S[l] = rot(S[l]) r + a v_h              rot = identity without VAPOR
//! m[l] = m'
//! y_h = sum_l (p[l] / n[l]) S[l]
//! out = Wo [y_0 | ... | y_{H-1}]
//! ```
//!
//! There is no `1/sqrt(d)` scaling. The initial state is `S = 0, n = 0,
//! m = -inf`; `exp(-inf) = 0` makes the first token need no special case.
//!
//! **Decay gate** (an extension of the paper's model, not the official
//! architecture; [`LatteLayer::with_decay`]): each latent `l` has a rate
//! `λ_l >= 0` and the past is forgotten by `exp(-λ_l)` per step. The only
//! change is one subtraction before the maximum:
//!
//! ```text
//! m_d = m[l] - λ_l; m' = max(m_d, k[l]); r = exp(m_d - m'); a = exp(k[l] - m')
//! ```
//!
//! so that `n[l] = Σ_{s<=t} exp(k_s - λ_l (t - s) - m)` and likewise for
//! `S[l]`. A layer without the gate does not subtract anything (not even
//! zero): its arithmetic is exactly the official one.
//!
//! `exp` (here and in the softmax) is [`latte_kernels::scalar::exp_f32`],
//! computed through the kernel table ([`Kernels::exp_inplace`]), which gives
//! the same bits on every path: a layer's result does not depend on the
//! kernels' instruction set.

use latte_kernels::{Kernels, QK};

use crate::block::{products, Ctx};
use crate::error::Error;
use crate::ops;
use crate::tensor::{q8_0_scratch_len, quantize_input, Matrix};

/// Latents of a head that [`LatteLayer::recur`] updates together (one
/// [`Kernels::latent_update`] call).
const EXP_GROUP: usize = 16;

/// Latents (whole groups, across heads) whose two exponentials
/// [`LatteLayer::recur`] computes in one [`Kernels::exp_inplace`] call (a
/// stack buffer of `2 * EXP_RUN` values).
const EXP_RUN: usize = 64;

/// Weights and sizes of one Latte layer. Matrices are `rows = outputs`:
/// `Wq`, `Wk` are `L x D`, `Wv`, `Wo` are `D x D`. Head `h` owns latent rows
/// `[h*Lh, (h+1)*Lh)` of `Wq`/`Wk` and value rows `[h*Dh, (h+1)*Dh)` of `Wv`.
#[derive(Clone, Copy, Debug)]
pub struct LatteLayer<'a> {
    n_heads: usize,
    n_latents: usize,
    d_model: usize,
    wq: Matrix<'a>,
    wk: Matrix<'a>,
    wv: Matrix<'a>,
    wo: Matrix<'a>,
    /// The decay gate's rates `λ` (length L, finite, `>= 0`), if any.
    decay: Option<&'a [f32]>,
}

/// One layer's state, split into its three parts (layout `[H][Lh][Dh]`,
/// `[H][Lh]`, `[H][Lh]`).
#[derive(Debug)]
pub struct LayerState<'s> {
    /// `S`, `L * Dh` values.
    pub s: &'s [f32],
    /// `n`, `L` values.
    pub n: &'s [f32],
    /// `m`, `L` values.
    pub m: &'s [f32],
}

impl<'a> LatteLayer<'a> {
    pub(crate) const EMPTY: LatteLayer<'static> = LatteLayer {
        n_heads: 0,
        n_latents: 0,
        d_model: 0,
        wq: Matrix::EMPTY,
        wk: Matrix::EMPTY,
        wv: Matrix::EMPTY,
        wo: Matrix::EMPTY,
        decay: None,
    };

    /// Builds a layer with `n_heads` heads, `n_latents` latents in total and
    /// width `d_model`.
    ///
    /// Errors: [`Error::ZeroSize`], [`Error::HeadsDoNotDivideWidth`],
    /// [`Error::HeadsDoNotDivideLatents`], or [`Error::BufferLength`] naming
    /// the first matrix whose shape is wrong.
    pub fn new(
        n_heads: usize,
        n_latents: usize,
        d_model: usize,
        wq: Matrix<'a>,
        wk: Matrix<'a>,
        wv: Matrix<'a>,
        wo: Matrix<'a>,
    ) -> Result<Self, Error> {
        check_shapes(n_heads, n_latents, d_model, [&wq, &wk, &wv, &wo])?;
        // The state and scratch sizes must be representable.
        n_latents.checked_mul(d_model).ok_or(Error::SizeOverflow)?;
        Ok(LatteLayer {
            n_heads,
            n_latents,
            d_model,
            wq,
            wk,
            wv,
            wo,
            decay: None,
        })
    }

    /// The layer with the decay gate (see the [module](self) documentation):
    /// latent `l` forgets its past at rate `rates[l]` per step.
    ///
    /// Errors: [`Error::BufferLength`] unless `rates.len()` is L;
    /// [`Error::DecayRateNotFinite`] / [`Error::DecayRateNegative`] for the
    /// first rate that is NaN or infinite / below zero (`-0.0` is fine).
    pub fn with_decay(self, rates: &'a [f32]) -> Result<Self, Error> {
        if rates.len() != self.n_latents {
            return Err(Error::BufferLength {
                what: "decay rates",
                need: self.n_latents,
                got: rates.len(),
            });
        }
        for (latent, &r) in rates.iter().enumerate() {
            if !r.is_finite() {
                return Err(Error::DecayRateNotFinite {
                    layer: None,
                    latent,
                });
            }
            if r < 0.0 {
                return Err(Error::DecayRateNegative {
                    layer: None,
                    latent,
                });
            }
        }
        Ok(LatteLayer {
            decay: Some(rates),
            ..self
        })
    }

    /// The decay gate's rates (one per latent), or `None` for a layer
    /// without the gate (the official architecture).
    pub fn decay(&self) -> Option<&'a [f32]> {
        self.decay
    }

    /// `Wq`, `Wk`, `Wv`, `Wo`, in that order.
    pub(crate) fn matrices(&self) -> [&Matrix<'a>; 4] {
        [&self.wq, &self.wk, &self.wv, &self.wo]
    }

    /// Heads H.
    pub fn n_heads(&self) -> usize {
        self.n_heads
    }

    /// Latents L (all heads).
    pub fn n_latents(&self) -> usize {
        self.n_latents
    }

    /// Width D.
    pub fn d_model(&self) -> usize {
        self.d_model
    }

    /// Value width per head `Dh = D / H`.
    pub fn d_head(&self) -> usize {
        self.d_model / self.n_heads.max(1)
    }

    /// Latents per head `Lh = L / H`.
    pub fn latents_per_head(&self) -> usize {
        self.n_latents / self.n_heads.max(1)
    }

    /// `f32` elements of this layer's state: `L * Dh + 2 L`.
    pub fn state_len(&self) -> usize {
        self.n_latents * self.d_head() + 2 * self.n_latents
    }

    /// `f32` elements of scratch [`LatteLayer::step`] needs: `2 L + 2 D`
    /// (`q`, `k`, `v`, `y`), then, when any of the four matrices is
    /// quantized, `ceil(34 * (D / 32) / 4)` for the input quantized to
    /// `Q8_0`.
    pub fn scratch_len(&self) -> usize {
        (2 * self.n_latents + 2 * self.d_model).saturating_add(self.quant_scratch_len())
    }

    /// The quantized-input part of [`LatteLayer::scratch_len`].
    fn quant_scratch_len(&self) -> usize {
        if self.matrices().iter().any(|m| m.data().is_quantized()) {
            q8_0_scratch_len(self.d_model / QK)
        } else {
            0
        }
    }

    /// Sets `state` (at least [`LatteLayer::state_len`] long) to the initial
    /// state `S = 0, n = 0, m = -inf`. Extra elements are left alone.
    pub fn reset_state(&self, state: &mut [f32]) {
        let sl = self.n_latents * self.d_head();
        let l = self.n_latents;
        for (i, v) in state.iter_mut().take(self.state_len()).enumerate() {
            *v = if i < sl + l { 0.0 } else { f32::NEG_INFINITY };
        }
    }

    /// Splits a state buffer into `S`, `n`, `m`; `None` if it is too short.
    pub fn split_state<'s>(&self, state: &'s [f32]) -> Option<LayerState<'s>> {
        let sl = self.n_latents * self.d_head();
        let (s, rest) = state.split_at_checked(sl)?;
        let (n, rest) = rest.split_at_checked(self.n_latents)?;
        let m = rest.get(..self.n_latents)?;
        Some(LayerState { s, n, m })
    }

    /// Feeds one token's layer input `x` (length D, already normalised),
    /// updates `state` and writes the layer output (after `Wo`) to `out`
    /// (length D).
    ///
    /// `rotation` is the VAPOR table from [`fill_rotation_table`] (length
    /// `Dh`: `cos θ_i, sin θ_i` for pair `i`) or `None` for plain Latte.
    /// `state` needs [`LatteLayer::state_len`] and `scratch`
    /// [`LatteLayer::scratch_len`] elements (longer is fine).
    ///
    /// The products use [`Kernels::best`]; see
    /// [`LatteLayer::step_with_kernels`].
    ///
    /// Errors: [`Error::BufferLength`] if any slice is too short (or the
    /// rotation table is not exactly `Dh` long); nothing is modified then.
    pub fn step(
        &self,
        x: &[f32],
        state: &mut [f32],
        rotation: Option<&[f32]>,
        scratch: &mut [f32],
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.step_with_kernels(&Kernels::best(), x, state, rotation, scratch, out)
    }

    /// [`LatteLayer::step`] with the matrix-vector products done by `kernels`.
    pub fn step_with_kernels(
        &self,
        kernels: &Kernels,
        x: &[f32],
        state: &mut [f32],
        rotation: Option<&[f32]>,
        scratch: &mut [f32],
        out: &mut [f32],
    ) -> Result<(), Error> {
        if scratch.len() < self.scratch_len() {
            return Err(Error::BufferLength {
                what: "scratch",
                need: self.scratch_len(),
                got: scratch.len(),
            });
        }
        let (main, quant) = scratch.split_at_mut(2 * self.n_latents + 2 * self.d_model);
        self.step_inner(kernels, x, state, rotation, main, quant, out)
    }

    /// The step with the scratch in two parts: `scratch` (`2 L + 2 D`) and
    /// `quant` (the quantized input, [`q8_0_scratch_len`] of `D / 32`
    /// blocks when a matrix is quantized).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn step_inner(
        &self,
        kernels: &Kernels,
        x: &[f32],
        state: &mut [f32],
        rotation: Option<&[f32]>,
        scratch: &mut [f32],
        quant: &mut [f32],
        out: &mut [f32],
    ) -> Result<(), Error> {
        let (d, l, dh) = (self.d_model, self.n_latents, self.d_head());
        let check = |what, need: usize, got: usize| {
            if got < need {
                Err(Error::BufferLength { what, need, got })
            } else {
                Ok(())
            }
        };
        check("x", d, x.len())?;
        check("out", d, out.len())?;
        check("state", self.state_len(), state.len())?;
        check("scratch", 2 * l + 2 * d, scratch.len())?;
        check(
            "quantized input scratch",
            self.quant_scratch_len(),
            quant.len(),
        )?;
        if let Some(rot) = rotation {
            if rot.len() != dh || dh % 2 != 0 {
                return Err(Error::BufferLength {
                    what: "rotation table",
                    need: dh,
                    got: rot.len(),
                });
            }
        }
        let x = &x[..d];
        let (q, rest) = scratch.split_at_mut(l);
        let (k, rest) = rest.split_at_mut(l);
        let (v, rest) = rest.split_at_mut(d);
        let y = &mut rest[..d];
        let quantized = [&self.wq, &self.wk, &self.wv]
            .iter()
            .any(|m| m.data().is_quantized());
        let xq = quantize_input(kernels, quantized, x, quant);
        self.wq.matvec_prepared(kernels, x, xq, q);
        self.wk.matvec_prepared(kernels, x, xq, k);
        self.wv.matvec_prepared(kernels, x, xq, v);
        self.recur(kernels, q, k, v, state, rotation, y);
        self.wo.matvec_quantizing(kernels, y, quant, &mut out[..d]);
        Ok(())
    }

    /// The layer over a chunk of tokens (see [`crate::mixer::Mixer`]): the
    /// projections as matrix products over the chunk, the recurrence token
    /// by token ([`LatteLayer::recur`], so a chunk gives the bits of single
    /// steps), then `Wo` over the chunk. `tmp` holds `T x (2 L + 2 D)`
    /// (`q`, `k`, `v`, `y`).
    pub(crate) fn run_chunk(
        &self,
        cx: &Ctx<'_, 'a>,
        x: &[f32],
        state: &mut [f32],
        tmp: &mut [f32],
        quant: &mut [f32],
        out: &mut [f32],
    ) {
        let (d, l) = (self.d_model, self.n_latents);
        let n = x.len() / d.max(1);
        let (q, rest) = tmp.split_at_mut(n * l);
        let (kk, rest) = rest.split_at_mut(n * l);
        let (vv, rest) = rest.split_at_mut(n * d);
        let y = &mut rest[..n * d];
        self.project(cx, x, n, quant, q, kk, vv);
        let per_token = q
            .chunks_exact_mut(l)
            .zip(kk.chunks_exact(l))
            .zip(vv.chunks_exact(d))
            .zip(y.chunks_exact_mut(d));
        for (((qt, kt), vt), yt) in per_token {
            self.recur(cx.kernels, qt, kt, vt, state, cx.rot, yt);
        }
        self.project_out(cx, y, n, quant, out);
    }

    /// `q`, `k` (`n x L`) and `v` (`n x D`) of the `n` tokens of `x`, as
    /// matrix products over the chunk.
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

    /// `out = Wo y` for the `n` tokens of `y` (`n x D`).
    pub(crate) fn project_out(
        &self,
        cx: &Ctx<'_, 'a>,
        y: &[f32],
        n: usize,
        quant: &mut [f32],
        out: &mut [f32],
    ) {
        products(cx, y, n, quant, [(&self.wo, &mut out[..n * self.d_model])]);
    }

    /// The recurrence of one token, after the projections: takes `q`
    /// (`L`, turned into the query softmax in place), `k` (`L`) and `v`
    /// (`D`), updates `state` and writes the head outputs (before `Wo`) to
    /// `y` (`D`). The one place this arithmetic lives: a decode step and a
    /// prefill chunk (token by token inside the chunk) both run it, so they
    /// agree bit for bit. Slices are the sizes above (callers check);
    /// shorter ones only shorten the loops.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn recur(
        &self,
        kernels: &Kernels,
        q: &mut [f32],
        k: &[f32],
        v: &[f32],
        state: &mut [f32],
        rotation: Option<&[f32]>,
        y: &mut [f32],
    ) {
        let (l, dh, lh) = (self.n_latents, self.d_head(), self.latents_per_head());
        if lh == 0 || dh == 0 || state.len() < l * dh + 2 * l {
            return;
        }
        let (s_all, rest) = state.split_at_mut(l * dh);
        let (n_all, rest) = rest.split_at_mut(l);
        let m_all = &mut rest[..l];
        // Whole heads only (shorter slices shorten the loop). Latent `i` of
        // the layer (head `i / Lh`) owns `q[i]`, `k[i]`, row `i` of `S`,
        // `n[i]` and `m[i]`; heads do not depend on each other.
        let heads = (l / lh)
            .min(q.len() / lh)
            .min(k.len() / lh)
            .min(v.len() / dh)
            .min(y.len() / dh);
        let lt = heads * lh;
        // The query softmax of every head, its exponentials in one call.
        let p = &mut q[..lt];
        ops::softmax_rows_in_place_with(kernels, p, lh);
        y[..heads * dh].fill(0.0);
        // The latents in groups of up to EXP_GROUP within a head, and the
        // groups in runs of up to EXP_RUN latents (whole groups, across
        // heads): first the new maxima and the exponents `m - m'` and
        // `k - m'` of the whole run, then their exponentials in one kernel
        // call, then the updates group by group.
        let mut start = 0;
        while start < lt {
            let mut end = start;
            while end < lt {
                let next = (end / lh * lh + lh).min(end + EXP_GROUP);
                if end > start && next - start > EXP_RUN {
                    break;
                }
                end = next;
            }
            let cnt = end - start;
            let mut e = [0.0f32; 2 * EXP_RUN];
            let (er, ea) = e.split_at_mut(cnt);
            let ms = m_all[start..end].iter_mut().zip(&k[start..end]);
            let es = er.iter_mut().zip(ea.iter_mut());
            match self.decay {
                None => {
                    for ((m, &k), (er, ea)) in ms.zip(es) {
                        let m_new = m.max(k);
                        *er = *m - m_new;
                        *ea = k - m_new;
                        *m = m_new;
                    }
                }
                // The decay gate: the running maximum first loses the
                // step's rate (`-inf` stays `-inf`). `with_decay` checked
                // the rates' length (L >= end).
                Some(rates) => {
                    for (((m, &k), (er, ea)), &lambda) in ms.zip(es).zip(&rates[start..end]) {
                        let m_d = *m - lambda;
                        let m_new = m_d.max(k);
                        *er = m_d - m_new;
                        *ea = k - m_new;
                        *m = m_new;
                    }
                }
            }
            let e = &mut e[..2 * cnt];
            kernels.exp_inplace(e);
            let (er_run, ea_run) = e.split_at(cnt);
            let mut g0 = start;
            while g0 < end {
                let g1 = (g0 / lh * lh + lh).min(g0 + EXP_GROUP);
                let h = g0 / lh;
                let p = &p[g0..g1];
                let s = &mut s_all[g0 * dh..g1 * dh];
                let n = &mut n_all[g0..g1];
                let er = &er_run[g0 - start..g1 - start];
                let ea = &ea_run[g0 - start..g1 - start];
                let v = &v[h * dh..(h + 1) * dh];
                let y = &mut y[h * dh..(h + 1) * dh];
                g0 = g1;
                if rotation.is_none() {
                    // `n` and the weights `p / n` of the group first, then
                    // `S_l` and `y` in one kernel call: per latent the
                    // operations of `update_latent`, in the same order
                    // (`n` and `S_l` do not depend on each other).
                    let mut w = [0.0f32; EXP_GROUP];
                    let w = &mut w[..p.len()];
                    for (((w, &p), n), (&r, &a)) in
                        w.iter_mut().zip(p).zip(n.iter_mut()).zip(er.iter().zip(ea))
                    {
                        *n = *n * r + a;
                        *w = p / *n;
                    }
                    kernels.latent_update(s, v, er, ea, w, y);
                    continue;
                }
                let latents = p
                    .iter()
                    .zip(s.chunks_exact_mut(dh))
                    .zip(n.iter_mut())
                    .zip(er.iter().zip(ea));
                for (((&p, row), n), (&r, &a)) in latents {
                    Self::update_latent(p, row, n, r, a, v, rotation, y);
                }
            }
            start = end;
        }
    }

    /// One latent's update with `r = exp(m - m')`, `a = exp(k - m')`:
    /// `n = n r + a`, `S_l = rot(S_l) r + a v`, `y += (p / n) S_l`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn update_latent(
        p: f32,
        row: &mut [f32],
        n: &mut f32,
        r: f32,
        a: f32,
        v: &[f32],
        rotation: Option<&[f32]>,
        y: &mut [f32],
    ) {
        *n = *n * r + a;
        match rotation {
            None => {
                for (s, &vv) in row.iter_mut().zip(v) {
                    *s = *s * r + a * vv;
                }
            }
            Some(rot) => {
                let pairs = row
                    .chunks_exact_mut(2)
                    .zip(v.chunks_exact(2))
                    .zip(rot.chunks_exact(2));
                for ((s, vv), cs) in pairs {
                    let (c, sn) = (cs[0], cs[1]);
                    let (x0, x1) = (s[0], s[1]);
                    s[0] = (x0 * c - x1 * sn) * r + a * vv[0];
                    s[1] = (x0 * sn + x1 * c) * r + a * vv[1];
                }
            }
        }
        let w = p / *n;
        for (acc, &sv) in y.iter_mut().zip(row.iter()) {
            *acc += w * sv;
        }
    }
}

/// The checks a Latte layer's sizes and weights pass, causal or
/// bidirectional: sizes non-zero, `H` divides `D` and `L`, `Wq`/`Wk`
/// `L x D`, `Wv`/`Wo` `D x D`.
pub(crate) fn check_shapes(
    n_heads: usize,
    n_latents: usize,
    d_model: usize,
    [wq, wk, wv, wo]: [&Matrix<'_>; 4],
) -> Result<(), Error> {
    for (v, key) in [
        (n_heads, "n_heads"),
        (n_latents, "n_latents"),
        (d_model, "d_model"),
    ] {
        if v == 0 {
            return Err(Error::ZeroSize { key });
        }
    }
    if !d_model.is_multiple_of(n_heads) {
        return Err(Error::HeadsDoNotDivideWidth { d_model, n_heads });
    }
    if !n_latents.is_multiple_of(n_heads) {
        return Err(Error::HeadsDoNotDivideLatents { n_latents, n_heads });
    }
    for (m, rows, what) in [
        (wq, n_latents, "Wq rows"),
        (wk, n_latents, "Wk rows"),
        (wv, d_model, "Wv rows"),
        (wo, d_model, "Wo rows"),
    ] {
        if m.rows() != rows {
            return Err(Error::BufferLength {
                what,
                need: rows,
                got: m.rows(),
            });
        }
        if m.cols() != d_model {
            return Err(Error::BufferLength {
                what: "matrix cols",
                need: d_model,
                got: m.cols(),
            });
        }
    }
    Ok(())
}

/// Fills the VAPOR rotation table: for frequency `θ_i` (radians per step,
/// value pair `(2i, 2i+1)` of a head), `table[2i] = cos θ_i` and
/// `table[2i+1] = sin θ_i`, evaluated in `f64` and rounded to `f32`.
///
/// Errors: [`Error::BufferLength`] unless `table.len() == 2 * (number of
/// frequencies)`; [`Error::VaporFrequencyNotFinite`] for NaN or infinity.
pub fn fill_rotation_table(
    frequencies: impl IntoIterator<Item = f32>,
    table: &mut [f32],
) -> Result<(), Error> {
    let mut count = 0usize;
    let mut pairs = table.chunks_exact_mut(2);
    for theta in frequencies {
        if !theta.is_finite() {
            return Err(Error::VaporFrequencyNotFinite);
        }
        count += 1;
        match pairs.next() {
            Some(pair) => {
                let t = theta as f64;
                pair[0] = libm::cos(t) as f32;
                pair[1] = libm::sin(t) as f32;
            }
            None => continue,
        }
    }
    if count.checked_mul(2) != Some(table.len()) {
        return Err(Error::BufferLength {
            what: "rotation table",
            need: count.saturating_mul(2),
            got: table.len(),
        });
    }
    Ok(())
}
