//! The format seam: what a quantized weight format is to the kernels.
//!
//! A format is one type implementing [`QuantFormat`]: its block (a
//! [`Block`]), the activations its products take ([`QuantFormat::Act`]),
//! its reference quantizer and dequantizer, and its kernel table
//! ([`QuantFormat::kernels`]): the dot product, the matrix-vector product
//! and, optionally, a matrix-matrix kernel for one [`KernelPath`], the
//! scalar specification for every path without an override. The generic
//! [`Kernels::vec_dot`], [`Kernels::matvec`] and [`Kernels::matmat`] run
//! any format; `latte-core`'s `MatrixData`, the GGUF type table and the
//! `latte convert` flags name the formats and call these.
//!
//! The files a new format touches are listed in the crate's `README.md`
//! ("Adding a quantized format").

use crate::block::{Block, BlockQ8_0, QK};
use crate::kernels::{KernelPath, Kernels};

/// A path's dot product: `w` and `x` have the same number of blocks.
pub type DotFn<W, X> = unsafe fn(&[W], &[X]) -> f32;
/// A path's matrix-vector product: `y[r] = dot(w[r * stride..][..x.len()], x)`,
/// with `(y.len() - 1) * stride + x.len() <= w.len()` and `x.len() <= stride`.
pub type MatvecFn<W, X> = unsafe fn(&[W], usize, &[X], &mut [f32]);
/// A path's matrix-matrix kernel for rows of `nb` blocks and `tokens` tokens
/// (`(w, nb, x, tokens, y, ldy)`, `y[t * ldy + r]`), tried by
/// [`Kernels::matmat`] on each block of rows; returns `false` (having written
/// nothing) when it does not take these inputs.
pub type MatmatFn<W, X> = unsafe fn(&[W], usize, &[X], usize, &mut [f32], usize) -> bool;

/// One path's kernels for a format.
///
/// Built only by [`QuantFormat::kernels`]; the pointers may need CPU
/// features, which [`Kernels`] checks before it calls them.
#[derive(Clone, Copy)]
pub struct QuantKernels<W, X> {
    pub(crate) dot: DotFn<W, X>,
    pub(crate) matvec: MatvecFn<W, X>,
    /// A matrix-matrix kernel and the largest row (in blocks) it takes.
    pub(crate) matmat: Option<(MatmatFn<W, X>, usize)>,
}

impl<W, X> QuantKernels<W, X> {
    /// A dot product and a matrix-vector product (no matrix-matrix kernel:
    /// [`Kernels::matmat`] blocks the rows and calls `matvec`).
    ///
    /// # Safety
    /// `dot` and `matvec` must compute what [`DotFn`] and [`MatvecFn`]
    /// say, bit for bit the format's scalar specification, reading and
    /// writing only within their slices on inputs meeting those contracts,
    /// on every CPU where the path that returns them is detected.
    pub(crate) const unsafe fn new(dot: DotFn<W, X>, matvec: MatvecFn<W, X>) -> Self {
        QuantKernels {
            dot,
            matvec,
            matmat: None,
        }
    }

    /// The same with a matrix-matrix kernel for rows of at most `max_blocks`
    /// blocks.
    ///
    /// # Safety
    /// As [`QuantKernels::new`], for [`MatmatFn`].
    // Only the x86-64 paths have matrix-matrix kernels today.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) const unsafe fn with_matmat(self, f: MatmatFn<W, X>, max_blocks: usize) -> Self {
        QuantKernels {
            matmat: Some((f, max_blocks)),
            ..self
        }
    }
}

/// Activations that quantized weights are multiplied with (today only
/// [`BlockQ8_0`]), quantized from `f32` by a [`Kernels`] path.
pub trait ActFormat: Block {
    /// Quantizes `x` into `min(x.len() / 32, y.len())` blocks with `k`'s
    /// quantizer (bit for bit the reference on every path).
    fn quantize_with(k: &Kernels, x: &[f32], y: &mut [Self]);
}

impl ActFormat for BlockQ8_0 {
    fn quantize_with(k: &Kernels, x: &[f32], y: &mut [Self]) {
        k.quantize_q8_0(x, y)
    }
}

/// A quantized weight format (module documentation).
pub trait QuantFormat: Block {
    /// The ggml name (`Q8_0`).
    const NAME: &'static str;
    /// The largest magnitude a block's quant stands for, in units of its
    /// scale (127 for `Q8_0`, 8 for `Q4_0`): weights above `65504` times
    /// this overflow the `f16` scale.
    const MAX_QUANT: f32;
    /// The activations this format's products take.
    type Act: ActFormat;

    /// Reference quantizer: `min(x.len() / 32, y.len())` blocks.
    fn quantize(x: &[f32], y: &mut [Self]);

    /// Reference dequantizer: `min(x.len(), y.len() / 32)` blocks.
    fn dequantize(x: &[Self], y: &mut [f32]);

    /// `true` when the block's scale (and any other float field) is finite.
    fn finite(&self) -> bool;

    /// The kernels of `path` for this format: its overrides, the scalar
    /// specification for every other path.
    fn kernels(path: KernelPath) -> QuantKernels<Self, Self::Act>;
}

/// `true` when the `f16` bits `d` are finite (exponent not all ones).
pub(crate) const fn f16_finite(d: u16) -> bool {
    d & 0x7C00 != 0x7C00
}

impl Kernels {
    /// Dot product of `n` values (`n / 32` blocks) of `W` weights with its
    /// activations, in the reference order of [`crate::scalar`]; bit for bit
    /// the same on every path.
    ///
    /// Uses the first `min(n / 32, w.len(), x.len())` blocks (`n` is a
    /// multiple of 32 by contract; a remainder is ignored).
    pub fn vec_dot<W: QuantFormat>(&self, n: usize, w: &[W], x: &[W::Act]) -> f32 {
        let nb = (n / QK).min(w.len()).min(x.len());
        let k = W::kernels(self.path());
        // SAFETY: `self` exists only for a path the CPU supports (its
        // constructor checked), and `W::kernels` returns that path's
        // kernels; the slices have equal lengths.
        unsafe { (k.dot)(&w[..nb], &x[..nb]) }
    }

    /// `y[r] = vec_dot(cols, row r, x_q)` for a row-major `rows x cols`
    /// matrix of `W` blocks (`cols / 32` per row).
    ///
    /// Each `y[r]` has exactly the bits of the corresponding `vec_dot`.
    /// Computes `min(rows, y.len(), w_rows.len() / (cols / 32))` rows and
    /// leaves the rest of `y` alone; when `x_q` is shorter than a row only its
    /// blocks are used.
    pub fn matvec<W: QuantFormat>(
        &self,
        w_rows: &[W],
        rows: usize,
        cols: usize,
        x_q: &[W::Act],
        y: &mut [f32],
    ) {
        let Some((w, stride, x, y)) = crate::kernels::mat_args(w_rows, rows, cols / QK, x_q, y)
        else {
            return;
        };
        let k = W::kernels(self.path());
        // SAFETY: as in `vec_dot`; `mat_args` guarantees
        // `(y.len() - 1) * stride + x.len() <= w.len()` and `x.len() <= stride`.
        unsafe { (k.matvec)(w, stride, x, y) }
    }
}
