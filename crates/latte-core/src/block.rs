//! One pre-LayerNorm block, `h += mixer(LN(h)); h += mlp(LN(h))`, run on a
//! chunk of tokens.

use latte_kernels::{BlockQ8_0, Kernels};

use crate::mixer::Mixer;
use crate::mlp::Mlp;
use crate::ops;
use crate::parallel::{Parallel, TaskInput};
use crate::tensor::{Matrix, Norm};

/// What a block's parts need besides their weights and buffers: the kernel
/// table, who runs the matrix products, the VAPOR rotation table (VAPOR
/// models only) and the LayerNorm epsilon.
pub(crate) struct Ctx<'x, 'a> {
    pub(crate) kernels: &'x Kernels,
    pub(crate) par: &'x dyn Parallel<'a>,
    pub(crate) rot: Option<&'x [f32]>,
    pub(crate) eps: f32,
}

/// The areas a chunk of `T` tokens is computed in, each token-major: `h`,
/// `a`, `o` (`T x D` each), `tmp` (`T x max(mixer scratch, F)`) and `quant`
/// (the `Q8_0` inputs of `T` tokens). A step uses the session's own
/// scratch (`T = 1`), a prefill the caller's prefill scratch.
pub(crate) struct Work<'s> {
    pub(crate) h: &'s mut [f32],
    pub(crate) a: &'s mut [f32],
    pub(crate) o: &'s mut [f32],
    pub(crate) tmp: &'s mut [f32],
    pub(crate) quant: &'s mut [f32],
}

/// One block: a sequence mixer and the GELU MLP, each after its LayerNorm.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Block<'a> {
    pub(crate) attn_norm: Norm<'a>,
    pub(crate) mixer: Mixer<'a>,
    pub(crate) ffn_norm: Norm<'a>,
    pub(crate) mlp: Mlp<'a>,
}

impl<'a> Block<'a> {
    pub(crate) const EMPTY: Block<'static> = Block {
        attn_norm: Norm::EMPTY,
        mixer: Mixer::EMPTY,
        ffn_norm: Norm::EMPTY,
        mlp: Mlp::EMPTY,
    };

    /// Runs the block on the `n` residual rows of `w.h` (`D` wide), in
    /// place, continuing this layer's `state`.
    pub(crate) fn run_chunk(
        &self,
        cx: &Ctx<'_, 'a>,
        w: &mut Work<'_>,
        n: usize,
        d: usize,
        state: &mut [f32],
    ) {
        let (h, a, o) = (&mut w.h[..n * d], &mut w.a[..n * d], &mut w.o[..n * d]);
        layer_norm_rows(h, &self.attn_norm, cx.eps, d, a);
        self.mixer
            .run_chunk(cx, a, state, &mut *w.tmp, &mut *w.quant, o);
        ops::add_assign(h, o);
        layer_norm_rows(h, &self.ffn_norm, cx.eps, d, a);
        self.mlp.run_chunk(cx, a, &mut *w.tmp, &mut *w.quant, o);
        ops::add_assign(h, o);
    }
}

/// `out = m x` for each `(m, out)` of `jobs`, over the `n` tokens of `x`
/// (`n x cols`, token-major), through `cx.par`; `x` is quantized once (into
/// `quant`) when any of the matrices is quantized.
pub(crate) fn products<'a, const N: usize>(
    cx: &Ctx<'_, 'a>,
    x: &[f32],
    n: usize,
    quant: &mut [f32],
    jobs: [(&Matrix<'a>, &mut [f32]); N],
) {
    let k = cx.kernels;
    let quantized = jobs.iter().any(|(m, _)| m.data().is_quantized());
    let xq = crate::tensor::quantize_input(k, quantized, x, quant);
    for (m, out) in jobs {
        cx.par.run(
            &crate::parallel::RowTask::new(k, *m, task_input(m, x, xq), n),
            out,
        );
    }
}

/// The input of a product with `m`: `x` as is, or its quantized copy `xq`.
pub(crate) fn task_input<'x>(m: &Matrix<'_>, x: &'x [f32], xq: &'x [BlockQ8_0]) -> TaskInput<'x> {
    if m.data().is_quantized() {
        TaskInput::Q8_0(xq)
    } else {
        TaskInput::F32(x)
    }
}

/// LayerNorm of each `D`-row of `x` into the same row of `out`.
pub(crate) fn layer_norm_rows(x: &[f32], norm: &Norm<'_>, eps: f32, d: usize, out: &mut [f32]) {
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        ops::layer_norm(xr, norm.weight, norm.bias, eps, or);
    }
}
