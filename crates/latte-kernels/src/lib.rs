//! Quantized and float dot-product kernels for latte, `no_std`.
//!
//! * Block formats [`BlockQ8_0`] and [`BlockQ4_0`], byte for byte ggml's
//!   `Q8_0` and `Q4_0` (GGUF type ids 8 and 2), with checked casts from tensor
//!   bytes ([`cast_q8_0`], [`cast_q4_0`]).
//! * Reference quantizers and dequantizers, bit for bit ggml's
//!   ([`quantize_row_q8_0`], [`quantize_row_q4_0`], ...).
//! * Dot products and matrix-vector products of `Q8_0`/`Q4_0` weights with
//!   `Q8_0` activations, and of `f32`/`f16` weights with `f32` activations,
//!   through a [`Kernels`] table chosen once per CPU.
//! * Matrix-matrix products for prompt prefill ([`Kernels::matmat_q8_0`],
//!   ...): each weight block multiplied with a chunk of tokens while it is in
//!   cache, every value bit for bit the matrix-vector product's ([`matmat`]).
//! * Elementwise `exp`, `tanh` and tanh-form GELU over slices
//!   ([`Kernels::exp_inplace`], [`Kernels::tanh_inplace`],
//!   [`Kernels::gelu_tanh_inplace`]): within 0.99 / 1.34 ulp of the exact
//!   values, the same bits on every path.
//! * The window attention's scores and weighted sums over blocks of ring
//!   rows in `f32`, `f16` or `i8` ([`Kernels::window_dots`],
//!   [`Kernels::window_sums`]): the same bits on every path.
//!
//! [`scalar`] is the specification: its module documentation fixes the
//! rounding of the quantizers, the order of the float accumulation of the
//! quantized dot products and the operations of the elementwise math, which
//! every SIMD path reproduces bit for bit.
//!
//! ```
//! use latte_kernels::{BlockQ8_0, Kernels, quantize_row_q8_0};
//!
//! let w: Vec<f32> = (0..64).map(|i| i as f32 / 64.0).collect();
//! let x: Vec<f32> = (0..64).map(|i| 1.0 - i as f32 / 32.0).collect();
//! let mut wq = [BlockQ8_0::default(); 2];
//! let mut xq = [BlockQ8_0::default(); 2];
//! quantize_row_q8_0(&w, &mut wq);
//! let k = Kernels::best();
//! k.quantize_q8_0(&x, &mut xq);
//! let approx = k.vec_dot_q8_0_q8_0(64, &wq, &xq);
//! let exact = k.vec_dot_f32(&w, &x);
//! assert!((approx - exact).abs() < 0.05);
//! assert_eq!(approx.to_bits(), Kernels::scalar().vec_dot_q8_0_q8_0(64, &wq, &xq).to_bits());
//! ```
//!
//! Length conventions follow `latte-core`: nothing panics on mismatched
//! lengths; every function works on the common prefix of its slices (see
//! each function).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

#[cfg(feature = "std")]
extern crate std;

pub mod block;
pub mod format;
mod kernels;
pub mod matmat;
pub mod scalar;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod simd;
#[cfg(feature = "suite")]
pub mod suite;

#[cfg(target_arch = "aarch64")]
mod aarch64_neon;
#[cfg(latte_arm_dsp)]
pub mod arm_dsp;
#[cfg(latte_arm_mve)]
mod arm_helium;
#[cfg(target_arch = "x86_64")]
mod x86_avx2;
#[cfg(target_arch = "x86_64")]
mod x86_avx512;
#[cfg(target_arch = "x86_64")]
mod x86_avxvnni;

pub use block::{
    blocks_as_bytes, cast_blocks, cast_blocks_mut, cast_q4_0, cast_q8_0, Block, BlockQ4_0,
    BlockQ8_0, CastError, QK,
};
pub use format::{ActFormat, QuantFormat, QuantKernels};
pub use half::f16;
pub use kernels::{KernelPath, Kernels};
pub use scalar::RingRows;

/// Quantizes `x` to `Q8_0` with ggml's reference rounding
/// (`quantize_row_q8_0_ref`): `min(x.len() / 32, y.len())` blocks are written.
pub fn quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    scalar::quantize_q8_0(x, y)
}

/// Quantizes `x` to `Q4_0` with ggml's reference rounding
/// (`quantize_row_q4_0_ref`): `min(x.len() / 32, y.len())` blocks are written.
pub fn quantize_row_q4_0(x: &[f32], y: &mut [BlockQ4_0]) {
    scalar::quantize_q4_0(x, y)
}

/// `y[32 i + j] = d_i * qs_i[j]` for `min(x.len(), y.len() / 32)` blocks.
pub fn dequantize_row_q8_0(x: &[BlockQ8_0], y: &mut [f32]) {
    scalar::dequantize_q8_0(x, y)
}

/// `y[32 i + j] = d_i * (q_i[j] - 8)` for `min(x.len(), y.len() / 32)` blocks.
pub fn dequantize_row_q4_0(x: &[BlockQ4_0], y: &mut [f32]) {
    scalar::dequantize_q4_0(x, y)
}

/// [`Kernels::vec_dot_q8_0_q8_0`] with [`Kernels::best`].
pub fn vec_dot_q8_0_q8_0(n: usize, w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    Kernels::best().vec_dot_q8_0_q8_0(n, w, x)
}

/// [`Kernels::vec_dot_q4_0_q8_0`] with [`Kernels::best`].
pub fn vec_dot_q4_0_q8_0(n: usize, w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    Kernels::best().vec_dot_q4_0_q8_0(n, w, x)
}

/// [`Kernels::matvec_q8_0`] with [`Kernels::best`].
pub fn matvec_q8_0(
    w_rows: &[BlockQ8_0],
    rows: usize,
    cols: usize,
    x_q: &[BlockQ8_0],
    y: &mut [f32],
) {
    Kernels::best().matvec_q8_0(w_rows, rows, cols, x_q, y)
}

/// [`Kernels::matvec_q4_0`] with [`Kernels::best`].
pub fn matvec_q4_0(
    w_rows: &[BlockQ4_0],
    rows: usize,
    cols: usize,
    x_q: &[BlockQ8_0],
    y: &mut [f32],
) {
    Kernels::best().matvec_q4_0(w_rows, rows, cols, x_q, y)
}
