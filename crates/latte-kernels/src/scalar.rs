//! The scalar kernels: the specification every SIMD path reproduces.
//!
//! # Quantizers (ggml's reference functions, bit for bit)
//!
//! * `Q8_0`: `amax = max |x|`, `d = amax / 127`, `id = d != 0 ? 1/d : 0`,
//!   `q = roundf(x * id)` (round half away from zero), `d` stored as `f16`
//!   (round to nearest even).
//! * `Q4_0`: `max` = the first value of largest magnitude, with its sign;
//!   `d = max / -8`, `id = d != 0 ? 1/d : 0`,
//!   `q = min(15, (i8)(x * id + 8.5))` (conversion truncates toward zero),
//!   `qs[j] = q[j] | q[j + 16] << 4`.
//!
//! Where ggml's C converts an out-of-range float to `int8_t` (undefined
//! behaviour), which happens only when `id` overflows to infinity (a block
//! with `max |x| < ~3.7e-37`), these functions use Rust's saturating `as`
//! (NaN to 0). The stored `d` of such a block is `f16` zero either way, so it
//! dequantizes to zeros exactly as ggml's does. Inputs are assumed finite.
//!
//! # Quantized dot products: the reference accumulation order
//!
//! Per block `i`: `sumi` = the exact integer sum of the 32 products (`i32`),
//! `p_i = (sumi as f32) * (d_w * d_x)` (two roundings, no fused multiply-add),
//! added into lane `i % 8` of eight `f32` accumulators that start at `+0.0`:
//! `acc[i % 8] += p_i`. The result is
//! `((acc0 + acc4) + (acc2 + acc6)) + ((acc1 + acc5) + (acc3 + acc7))`.
//!
//! Eight lanes is one AVX2 register or two NEON registers, so the SIMD paths
//! keep the same accumulators in vector lanes and return identical bits.
//! (ggml's own generic loop adds the `p_i` sequentially; the terms are the
//! same, the order differs.)
//!
//! # Float dot products
//!
//! `acc += a[i] * b[i]` sequentially from `acc = 0.0` (no fused multiply-add),
//! `f16` widened exactly to `f32` first. SIMD paths reassociate these and are
//! compared with a tolerance.

use half::f16;

use crate::block::{BlockQ4_0, BlockQ8_0, QK};

/// Float accumulators of the reference order.
pub(crate) const LANES: usize = 8;

/// The reference reduction of the eight lane accumulators.
#[inline]
pub(crate) fn reduce_lanes(a: [f32; LANES]) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

/// `f16` bits to `f32` (exact).
#[inline]
pub(crate) fn f16_to_f32(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// `f32` to `f16` bits, round to nearest even (ggml's `GGML_FP32_TO_FP16`).
#[inline]
pub(crate) fn f32_to_f16(v: f32) -> u16 {
    f16::from_f32(v).to_bits()
}

/// C's `roundf`: nearest integer, halfway cases away from zero. Exact for
/// every `f32`; NaN and infinities are returned unchanged.
#[inline]
pub(crate) fn roundf(v: f32) -> f32 {
    // 2^23: from here on every f32 is an integer.
    if v.is_nan() || v.abs() >= 8_388_608.0 {
        return v;
    }
    // Truncation toward zero, exact below 2^23; the difference is exact too.
    let t = (v as i32) as f32;
    let diff = v - t;
    if diff >= 0.5 {
        t + 1.0
    } else if diff <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

/// `max |x|` with ggml's `MAX(a, b) = a > b ? a : b` fold from `0.0`.
#[inline]
pub(crate) fn amax(x: &[f32]) -> f32 {
    let mut m = 0.0f32;
    for v in x {
        let a = v.abs();
        m = if m > a { m } else { a };
    }
    m
}

/// `d` (as `f32`, before its rounding to `f16`) and `id` of a `Q8_0` block
/// with the given `amax`.
#[inline]
pub(crate) fn q8_0_scale(amax: f32) -> (f32, f32) {
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    (d, id)
}

/// One `Q8_0` block from 32 values (ggml's `quantize_row_q8_0_ref`).
#[inline]
pub(crate) fn quantize_block_q8_0(x: &[f32; QK]) -> BlockQ8_0 {
    let (d, id) = q8_0_scale(amax(x));
    let mut qs = [0i8; QK];
    for (q, v) in qs.iter_mut().zip(x) {
        *q = roundf(v * id) as i8;
    }
    BlockQ8_0 {
        d: f32_to_f16(d),
        qs,
    }
}

/// One `Q4_0` block from 32 values (ggml's `quantize_row_q4_0_ref`).
#[inline]
pub(crate) fn quantize_block_q4_0(x: &[f32; QK]) -> BlockQ4_0 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let q = |v: f32| -> u8 {
        // `(int8_t)(v * id + 8.5f)`, then `MIN(15, .)` stored as `uint8_t`.
        let t = (v * id + 8.5) as i8;
        (t as i32).min(15) as u8
    };
    let mut qs = [0u8; QK / 2];
    for (j, b) in qs.iter_mut().enumerate() {
        *b = q(x[j]) | (q(x[j + QK / 2]) << 4);
    }
    BlockQ4_0 {
        d: f32_to_f16(d),
        qs,
    }
}

/// Quantizes `min(x.len() / 32, y.len())` blocks.
pub fn quantize_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    for (b, xs) in y.iter_mut().zip(x.chunks_exact(QK)) {
        *b = quantize_block_q8_0(xs.try_into().expect("chunk of 32"));
    }
}

/// Quantizes `min(x.len() / 32, y.len())` blocks.
pub fn quantize_q4_0(x: &[f32], y: &mut [BlockQ4_0]) {
    for (b, xs) in y.iter_mut().zip(x.chunks_exact(QK)) {
        *b = quantize_block_q4_0(xs.try_into().expect("chunk of 32"));
    }
}

/// `y[32 i + j] = qs[j] * d` for `min(x.len(), y.len() / 32)` blocks.
pub fn dequantize_q8_0(x: &[BlockQ8_0], y: &mut [f32]) {
    for (b, ys) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for (o, &q) in ys.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}

/// `y[32 i + j] = (q_j - 8) * d` for `min(x.len(), y.len() / 32)` blocks.
pub fn dequantize_q4_0(x: &[BlockQ4_0], y: &mut [f32]) {
    for (b, ys) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for (j, &q) in b.qs.iter().enumerate() {
            ys[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
            ys[j + QK / 2] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// Exact integer sum of the 32 products of two `Q8_0` blocks.
#[inline]
pub(crate) fn sum_q8_0(w: &BlockQ8_0, x: &BlockQ8_0) -> i32 {
    let mut s = 0i32;
    for (&a, &b) in w.qs.iter().zip(&x.qs) {
        s += a as i32 * b as i32;
    }
    s
}

/// Exact integer sum of the 32 products of a `Q4_0` block and a `Q8_0` block.
#[inline]
pub(crate) fn sum_q4_0(w: &BlockQ4_0, x: &BlockQ8_0) -> i32 {
    let mut s = 0i32;
    for (j, &q) in w.qs.iter().enumerate() {
        s += ((q & 0x0F) as i32 - 8) * x.qs[j] as i32;
        s += ((q >> 4) as i32 - 8) * x.qs[j + QK / 2] as i32;
    }
    s
}

/// `sum_i (sumi_i as f32) * (d_w * d_x)` in the reference order (module docs).
pub fn dot_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    let mut acc = [0.0f32; LANES];
    for (i, (a, b)) in w.iter().zip(x).enumerate() {
        let p = sum_q8_0(a, b) as f32 * (f16_to_f32(a.d) * f16_to_f32(b.d));
        acc[i % LANES] += p;
    }
    reduce_lanes(acc)
}

/// Like [`dot_q8_0`] for `Q4_0` weights.
pub fn dot_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    let mut acc = [0.0f32; LANES];
    for (i, (a, b)) in w.iter().zip(x).enumerate() {
        let p = sum_q4_0(a, b) as f32 * (f16_to_f32(a.d) * f16_to_f32(b.d));
        acc[i % LANES] += p;
    }
    reduce_lanes(acc)
}

/// Sequential `f32` dot product of the common prefix.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        acc += x * y;
    }
    acc
}

/// Sequential dot product of `f16` weights and `f32` values, in `f32`.
pub fn dot_f16(a: &[f16], b: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        acc += x.to_f32() * y;
    }
    acc
}

/// `y[r] = dot_q8_0(w[r*nb .. r*nb + x.len()], x)` with `nb` = `stride` blocks per row.
pub fn matvec_q8_0(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    for (r, out) in y.iter_mut().enumerate() {
        *out = dot_q8_0(&w[r * stride..r * stride + x.len()], x);
    }
}

/// Like [`matvec_q8_0`] for `Q4_0` weights.
pub fn matvec_q4_0(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    for (r, out) in y.iter_mut().enumerate() {
        *out = dot_q4_0(&w[r * stride..r * stride + x.len()], x);
    }
}

/// Like [`matvec_q8_0`] for `f32` weights (`stride` in values).
pub fn matvec_f32(w: &[f32], stride: usize, x: &[f32], y: &mut [f32]) {
    for (r, out) in y.iter_mut().enumerate() {
        *out = dot_f32(&w[r * stride..r * stride + x.len()], x);
    }
}

/// Like [`matvec_q8_0`] for `f16` weights (`stride` in values).
pub fn matvec_f16(w: &[f16], stride: usize, x: &[f32], y: &mut [f32]) {
    for (r, out) in y.iter_mut().enumerate() {
        *out = dot_f16(&w[r * stride..r * stride + x.len()], x);
    }
}
