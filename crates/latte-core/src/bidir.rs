//! One bidirectional Latte layer (the official `BidLatte`), in two passes
//! over the input: a summary per latent, then each token's output.
//!
//! For each head `h` with latents `l` (`Lh` per head) and value width `Dh`,
//! the key softmax is taken over the *whole* input (`T` tokens) instead of
//! the prefix:
//!
//! ```text
//! pass 1, every token s:  k = Wk x_s, v = Wv x_s         (L, D)
//!     m' = max(m[l], k[l]); r = exp(m[l] - m'); a = exp(k[l] - m')
//!     n[l] = n[l] r + a;  S[l] = S[l] r + a v_h;  m[l] = m'
//! between the passes:      M[l] = S[l] / n[l]            (the weighted mean value)
//! pass 2, every token t:  p = softmax(Wq x_t over each head's latents)
//!     y_h = sum_l p[l] M[l];  out = Wo [y_0 | ... | y_{H-1}]
//! ```
//!
//! Pass 1 is the causal layer's recurrence without the outputs, so its
//! summary (`S`, `n`, `m`: `L * Dh + 2 L` values) has the causal state's
//! size and does not grow with `T`. No `1/sqrt(d)` scaling, no biases; the
//! weights are named as the causal layer's (`attn_q`, `attn_k`, `attn_v`,
//! `attn_output`). `exp` goes through the kernel table
//! ([`latte_kernels::Kernels::exp_inplace`]), the same bits on every path; the rest is
//! plain `f32` arithmetic in a fixed order, so a summary depends only on
//! the tokens and their order, never on how they were chunked.

use crate::block::{task_input, Ctx};
use crate::error::Error;
use crate::ops;
use crate::parallel::RowTask;
use crate::tensor::{quantize_input, Matrix};

/// Latents whose exponentials one [`latte_kernels::Kernels::exp_inplace`] call computes.
const EXP_RUN: usize = 64;

/// Weights and sizes of one bidirectional Latte layer: `Wq`, `Wk` are
/// `L x D`, `Wv`, `Wo` are `D x D` (`rows = outputs`), head `h` owning
/// latent rows `[h*Lh, (h+1)*Lh)` and value rows `[h*Dh, (h+1)*Dh)`.
#[derive(Clone, Copy, Debug)]
pub struct BidLatteLayer<'a> {
    n_heads: usize,
    n_latents: usize,
    d_model: usize,
    wq: Matrix<'a>,
    wk: Matrix<'a>,
    wv: Matrix<'a>,
    wo: Matrix<'a>,
}

impl<'a> BidLatteLayer<'a> {
    pub(crate) const EMPTY: BidLatteLayer<'static> = BidLatteLayer {
        n_heads: 0,
        n_latents: 0,
        d_model: 0,
        wq: Matrix::EMPTY,
        wk: Matrix::EMPTY,
        wv: Matrix::EMPTY,
        wo: Matrix::EMPTY,
    };

    /// A layer with `n_heads` heads, `n_latents` latents in all and width
    /// `d_model`.
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
        crate::latte::check_shapes(n_heads, n_latents, d_model, [&wq, &wk, &wv, &wo])?;
        n_latents.checked_mul(d_model).ok_or(Error::SizeOverflow)?;
        Ok(BidLatteLayer {
            n_heads,
            n_latents,
            d_model,
            wq,
            wk,
            wv,
            wo,
        })
    }

    /// `Wq`, `Wk`, `Wv`, `Wo`, in the model file's order.
    pub(crate) fn matrices(&self) -> [&Matrix<'a>; 4] {
        [&self.wq, &self.wk, &self.wv, &self.wo]
    }

    /// Value width per head, `Dh = D / H`.
    pub fn d_head(&self) -> usize {
        self.d_model.checked_div(self.n_heads).unwrap_or(0)
    }

    /// Latents per head, `Lh = L / H`.
    pub fn latents_per_head(&self) -> usize {
        self.n_latents.checked_div(self.n_heads).unwrap_or(0)
    }

    /// `f32` elements of the layer's summary: `S` (`L * Dh`), then `n`
    /// (`L`), then `m` (`L`). Independent of the input's length.
    pub fn summary_len(&self) -> usize {
        self.n_latents * self.d_head() + 2 * self.n_latents
    }

    /// `f32` elements of temporary area per token of a chunk: `k` and `v`
    /// Sets `summary` to the summary of no tokens: `S = 0, n = 0, m = -inf`.
    pub fn reset_summary(&self, summary: &mut [f32]) {
        let l = self.n_latents;
        let sl = l * self.d_head();
        let len = (sl + 2 * l).min(summary.len());
        let summary = &mut summary[..len];
        let (s, m) = summary.split_at_mut((sl + l).min(summary.len()));
        s.fill(0.0);
        m.fill(f32::NEG_INFINITY);
    }

    /// Pass 1 over a chunk: `x` holds the normalised inputs of `T` tokens
    /// (`T x D`), `summary` gathers them, continued from the previous
    /// chunk. `tmp` holds `T x (L + D)`, `quant` the quantized inputs of
    /// `T` tokens.
    pub(crate) fn gather(
        &self,
        cx: &Ctx<'_, 'a>,
        x: &[f32],
        summary: &mut [f32],
        tmp: &mut [f32],
        quant: &mut [f32],
    ) {
        let (d, l, dh, lh) = (
            self.d_model,
            self.n_latents,
            self.d_head(),
            self.latents_per_head(),
        );
        let n = x.len() / d.max(1);
        if lh == 0 || summary.len() < l * dh + 2 * l {
            return;
        }
        let k = cx.kernels;
        let (kk, rest) = tmp.split_at_mut(n * l);
        let vv = &mut rest[..n * d];
        let quantized = self.wk.data().is_quantized() || self.wv.data().is_quantized();
        let xq = quantize_input(k, quantized, x, quant);
        for (w, o) in [(&self.wk, &mut *kk), (&self.wv, &mut *vv)] {
            cx.par.run(&RowTask::new(k, *w, task_input(w, x, xq), n), o);
        }
        let (s_all, rest) = summary.split_at_mut(l * dh);
        let (n_all, rest) = rest.split_at_mut(l);
        let m_all = &mut rest[..l];
        for (kt, vt) in kk.chunks_exact(l).zip(vv.chunks_exact(d)) {
            let mut start = 0;
            while start < l {
                let end = (start + EXP_RUN).min(l);
                let cnt = end - start;
                let mut e = [0.0f32; 2 * EXP_RUN];
                let (er, ea) = e.split_at_mut(cnt);
                let ms = m_all[start..end].iter_mut().zip(&kt[start..end]);
                for ((m, &kv), (er, ea)) in ms.zip(er.iter_mut().zip(ea.iter_mut())) {
                    let m_new = m.max(kv);
                    *er = *m - m_new;
                    *ea = kv - m_new;
                    *m = m_new;
                }
                let e = &mut e[..2 * cnt];
                k.exp_inplace(e);
                let (er, ea) = e.split_at(cnt);
                for (i, (&r, &a)) in er.iter().zip(ea).enumerate() {
                    let lat = start + i;
                    let h = lat / lh;
                    n_all[lat] = n_all[lat] * r + a;
                    let v = &vt[h * dh..(h + 1) * dh];
                    for (s, &vv) in s_all[lat * dh..(lat + 1) * dh].iter_mut().zip(v) {
                        *s = *s * r + a * vv;
                    }
                }
                start = end;
            }
        }
    }

    /// Between the passes: turns the summary's `S` into the weighted mean
    /// values `M[l] = S[l] / n[l]` in place (0 for a latent that saw no
    /// token).
    pub(crate) fn finish(&self, summary: &mut [f32]) {
        let (l, dh) = (self.n_latents, self.d_head());
        if summary.len() < l * dh + l {
            return;
        }
        let (s_all, n_all) = summary.split_at_mut(l * dh);
        for (row, &n) in s_all.chunks_exact_mut(dh.max(1)).zip(&n_all[..l]) {
            if n > 0.0 {
                for s in row.iter_mut() {
                    *s /= n;
                }
            } else {
                row.fill(0.0);
            }
        }
    }

    /// Pass 2 over a chunk: `x` (`T x D`, normalised inputs) to `out`
    /// (`T x D`), given the finished summary (`means`: the `M` that
    /// [`BidLatteLayer::finish`] left at its start). `tmp` holds
    /// `T x (L + D)`, `quant` the quantized inputs of `T` tokens.
    pub(crate) fn apply(
        &self,
        cx: &Ctx<'_, 'a>,
        x: &[f32],
        means: &[f32],
        tmp: &mut [f32],
        quant: &mut [f32],
        out: &mut [f32],
    ) {
        let (d, l, dh, lh) = (
            self.d_model,
            self.n_latents,
            self.d_head(),
            self.latents_per_head(),
        );
        let n = x.len() / d.max(1);
        if lh == 0 || means.len() < l * dh {
            return;
        }
        let k = cx.kernels;
        let (q, rest) = tmp.split_at_mut(n * l);
        let y = &mut rest[..n * d];
        let xq = quantize_input(k, self.wq.data().is_quantized(), x, quant);
        cx.par
            .run(&RowTask::new(k, self.wq, task_input(&self.wq, x, xq), n), q);
        for (qt, yt) in q.chunks_exact_mut(l).zip(y.chunks_exact_mut(d)) {
            ops::softmax_rows_in_place_with(k, qt, lh);
            yt.fill(0.0);
            for (lat, &p) in qt.iter().enumerate() {
                let h = lat / lh;
                let row = &means[lat * dh..(lat + 1) * dh];
                for (acc, &mv) in yt[h * dh..(h + 1) * dh].iter_mut().zip(row) {
                    *acc += p * mv;
                }
            }
        }
        let wo = &self.wo;
        let xq = quantize_input(k, wo.data().is_quantized(), y, quant);
        cx.par.run(
            &RowTask::new(k, *wo, task_input(wo, y, xq), n),
            &mut out[..n * d],
        );
    }
}
