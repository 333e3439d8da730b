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
//!
//! # Elementwise math: `exp`, `tanh`, GELU
//!
//! [`exp_f32`], [`tanh_f32`] and [`gelu_tanh_f32`] are fixed sequences of
//! `f32` operations, each rounded to nearest (a multiply then an add, never a
//! fused multiply-add; IEEE division), with constants given by their bits.
//! The SIMD paths (`Kernels::exp_inplace`, `tanh_inplace`,
//! `gelu_tanh_inplace`: AVX2, AVX-512, NEON) do the same operations in each
//! lane, with both forms of `tanh` computed and one selected, and return the
//! same bits for **every** input, NaN payloads included. The Cortex-M paths
//! use these functions as they are.
//!
//! * `exp_f32(x)`: NaN is returned unchanged. `x` is clamped to
//!   `[-104, 89]` (outside, the result is `+0` or `+inf` anyway).
//!   `n = round(x * log2 e)` (adding and subtracting `1.5 * 2^23`: to nearest,
//!   ties to even; `n` read from the sum's bits). Cody-Waite reduction
//!   `r = (x - n * ln2_hi) - n * ln2_lo` (`ln2_hi` has 15 significant bits:
//!   the first product and difference are exact). `p = ((P(r) * r^2) + r) + 1`
//!   with `P` of degree 5 evaluated by Horner from the highest coefficient
//!   (Cephes `expf`'s minimax coefficients). The result is
//!   `(p * 2^n1) * 2^n2` with `n1 = n >> 1`, `n2 = n - n1`, both scales built
//!   from integer bits: the first product is exact and the second rounds
//!   once, so subnormal results are rounded once, results below `2^-150`
//!   are `+0` and results above `f32::MAX` are `+inf`, as for the correctly
//!   rounded function. `exp(±0) = 1` exactly, `exp(-inf) = +0`,
//!   `exp(inf) = inf`.
//! * `tanh_f32(x)`: NaN is returned unchanged. With `a = |x|`: for
//!   `a < 0.625` the odd polynomial `((T(z) * z) * a) + a`, `z = a * a`,
//!   `T` of degree 4 by Horner (Cephes `tanhf`); otherwise
//!   `1 - 2 / (exp(2 b) + 1)` with `b = min(a, 10)` and the `exp` above
//!   (which rounds to exactly 1 from `a ~ 9.01` on; for `2 b` in
//!   `[1.25, 20]` both scalings of `exp` are exact, so one product by `2^n`
//!   gives the same bits). The sign bit of `x` is then ORed in: odd,
//!   `tanh(-0) = -0`, `tanh(±inf) = ±1`.
//! * `gelu_tanh_f32(x)`: `(0.5 * x) * (1 + tanh(k * (x + ((c * x) * x) * x)))`
//!   with `k = sqrt(2 / pi)` and `c = 0.044715` rounded to `f32`;
//!   `gelu(-inf) = -0` (the limit; the formula gives NaN), `gelu(inf) = inf`,
//!   NaN returned unchanged.
//!
//! Accuracy, measured over **every** `f32` input against the exact value
//! (computed in `f64`), in units in the last place of `f32` at the exact
//! value's magnitude (`examples/math_accuracy.rs`; `tests/math.rs` fails
//! if a change makes any bound worse):
//!
//! | function | max error | where |
//! |---|---|---|
//! | `exp_f32` | **0.987 ulp** (subnormal results: 0.749 of their spacing) | x = 59.280243 |
//! | `tanh_f32` | **1.331 ulp** (polynomial part: 0.776) | x = ±0.62830955, just above the switch |
//! | `gelu_tanh_f32`, `x >= 0` | **1.831 ulp** | x = 0.66217065 |
//! | `gelu_tanh_f32`, `x < 0` | absolute error at most **7.7e-8** | |
//!
//! For `x < 0` the GELU formula itself cancels (`1 + tanh` of a value near
//! `-1`), so its relative error grows without bound as the result goes to
//! zero; the same `f32` formula with the platform's `tanhf` has the same
//! absolute error (7.7e-8) and 2.40 ulp for `x >= 0`.

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

// ---------------------------------------------------------------------------
// Elementwise math: exp, tanh and the tanh-form GELU (module docs, "Elementwise
// math"). Every constant is given by its bits, so the specification does not
// depend on how a decimal literal is read.

/// `log2(e)` rounded to `f32` (1.44269502).
pub(crate) const EXP_LOG2E: f32 = f32::from_bits(0x3FB8_AA3B);
/// `ln 2` split for Cody-Waite: the high part has 15 significant bits, so
/// `n * EXP_LN2_HI` is exact for `|n| < 512` (0.693145752).
pub(crate) const EXP_LN2_HI: f32 = f32::from_bits(0x3F31_7200);
/// `ln 2 - EXP_LN2_HI` rounded to `f32` (1.42860677e-6).
pub(crate) const EXP_LN2_LO: f32 = f32::from_bits(0x35BF_BE8E);
/// `1.5 * 2^23`: adding it rounds `|v| < 2^22` to an integer (to nearest,
/// ties to even) held in the low mantissa bits.
pub(crate) const EXP_ROUND: f32 = f32::from_bits(0x4B40_0000);
/// The bits of [`EXP_ROUND`].
pub(crate) const EXP_ROUND_BITS: i32 = 0x4B40_0000;
/// Inputs are clamped to `[EXP_MIN_X, EXP_MAX_X]`: `exp(-104)` already rounds
/// to `+0` and `exp(89)` to `+inf`, and the computation gives exactly those.
pub(crate) const EXP_MIN_X: f32 = -104.0;
/// See [`EXP_MIN_X`].
pub(crate) const EXP_MAX_X: f32 = 89.0;
/// `exp(r) ~ 1 + r + r^2 (P0 r^5 + P1 r^4 + ... + P5)` on `|r| <= ln2 / 2`
/// (Cephes `expf`): 1.98756912e-4, 1.39819994e-3, 8.33345205e-3,
/// 4.16657962e-2, 1.66666657e-1, 0.5.
pub(crate) const EXP_P: [f32; 6] = [
    f32::from_bits(0x3950_6967),
    f32::from_bits(0x3AB7_43CE),
    f32::from_bits(0x3C08_8908),
    f32::from_bits(0x3D2A_A9C1),
    f32::from_bits(0x3E2A_AAAA),
    f32::from_bits(0x3F00_0000),
];
/// `tanh` uses the odd polynomial below this `|x|` (0.625).
pub(crate) const TANH_SMALL: f32 = 0.625;
/// `|x|` is clamped to this before `1 - 2 / (exp(2|x|) + 1)`, which rounds
/// to exactly 1 from `|x| ~ 9.01` on.
pub(crate) const TANH_CLAMP: f32 = 10.0;
/// `tanh(a) ~ a + a z (T0 z^4 + T1 z^3 + T2 z^2 + T3 z + T4)`, `z = a^2`, on
/// `a < 0.625` (Cephes `tanhf`): -5.70498873e-3, 2.06390880e-2,
/// -5.37397154e-2, 1.33314416e-1, -3.33332807e-1.
pub(crate) const TANH_T: [f32; 5] = [
    f32::from_bits(0xBBBA_F0EA),
    f32::from_bits(0x3CA9_134E),
    f32::from_bits(0xBD5C_1E2D),
    f32::from_bits(0x3E08_8393),
    f32::from_bits(0xBEAA_AA99),
];
/// `sqrt(2 / pi)` rounded to `f32` (0.797884583).
pub(crate) const GELU_K: f32 = f32::from_bits(0x3F4C_422A);
/// `0.044715` rounded to `f32`.
pub(crate) const GELU_C: f32 = f32::from_bits(0x3D37_2713);

/// The reduction and polynomial of `exp(x)` for `x` in `[EXP_MIN_X,
/// EXP_MAX_X]`: `(p, n)` with `exp(x) ~ p * 2^n`, `p` in about `[0.7, 1.42]`.
#[inline(always)]
pub(crate) fn exp_reduced(x: f32) -> (f32, i32) {
    let t = x * EXP_LOG2E + EXP_ROUND;
    let n = (t.to_bits() as i32).wrapping_sub(EXP_ROUND_BITS);
    let nf = t - EXP_ROUND;
    let r = x - nf * EXP_LN2_HI;
    let r = r - nf * EXP_LN2_LO;
    let z = r * r;
    let mut p = EXP_P[0];
    p = p * r + EXP_P[1];
    p = p * r + EXP_P[2];
    p = p * r + EXP_P[3];
    p = p * r + EXP_P[4];
    p = p * r + EXP_P[5];
    p = p * z + r;
    p += 1.0;
    (p, n)
}

/// `2^e` for `e` in `[-126, 127]`, from its bits.
#[inline(always)]
pub(crate) fn pow2(e: i32) -> f32 {
    f32::from_bits(((e + 127) as u32) << 23)
}

/// `exp` of `x` in `[EXP_MIN_X, EXP_MAX_X]` (no NaN), the fixed sequence of
/// the module documentation.
#[inline(always)]
pub(crate) fn exp_core(x: f32) -> f32 {
    let (p, n) = exp_reduced(x);
    // 2^n as 2^n1 * 2^n2, both normal for n in [-150, 128]: the first
    // product is exact, the second rounds once (to a subnormal, 0 or inf
    // when the result is one).
    let n1 = n >> 1;
    p * pow2(n1) * pow2(n - n1)
}

/// [`exp_core`] for `x` in `[1.25, 20]` (`tanh`'s `2 b`): there `n` is in
/// `[1, 29]`, both products of `exp_core` are exact, and one product by
/// `2^n` gives the same bits.
#[inline(always)]
pub(crate) fn exp_core_mid(x: f32) -> f32 {
    let (p, n) = exp_reduced(x);
    p * pow2(n)
}

/// `e^x` in `f32`, the specification of [`crate::Kernels::exp_inplace`]
/// (module documentation: at most 0.99 ulp from the exact value; `exp(0) = 1`,
/// `exp(-inf) = 0`, `exp(inf) = inf`, NaN returned unchanged).
#[inline]
pub fn exp_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    exp_core(x.clamp(EXP_MIN_X, EXP_MAX_X))
}

/// `tanh` of `a = |x|` (not NaN).
#[inline(always)]
pub(crate) fn tanh_abs(a: f32) -> f32 {
    if a < TANH_SMALL {
        let z = a * a;
        let mut q = TANH_T[0];
        q = q * z + TANH_T[1];
        q = q * z + TANH_T[2];
        q = q * z + TANH_T[3];
        q = q * z + TANH_T[4];
        q *= z;
        q *= a;
        q + a
    } else {
        // `min(a, TANH_CLAMP)` (a comparison: `f32::min` is a library call
        // on cores without `vminnm`).
        let b = if a < TANH_CLAMP { a } else { TANH_CLAMP };
        let e = exp_core_mid(b + b);
        1.0 - 2.0 / (e + 1.0)
    }
}

/// `tanh x` in `f32`, the specification of [`crate::Kernels::tanh_inplace`]
/// (module documentation: at most 1.34 ulp from the exact value; odd, so
/// `tanh(-0) = -0`; `tanh(±inf) = ±1`; NaN returned unchanged).
#[inline]
pub fn tanh_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    tanh_not_nan(x)
}

/// [`tanh_f32`] of an `x` that is not NaN: `tanh |x|` with the sign of `x`.
#[inline(always)]
fn tanh_not_nan(x: f32) -> f32 {
    let bits = x.to_bits();
    let t = tanh_abs(f32::from_bits(bits & 0x7FFF_FFFF));
    f32::from_bits(t.to_bits() | (bits & 0x8000_0000))
}

/// GELU, tanh form, in `f32`: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`
/// evaluated as `((0.5 * x) * (1 + tanh_f32(GELU_K * (x + ((GELU_C * x) * x)
/// * x))))`; `gelu(-inf) = -0` (the limit; the formula would give NaN),
/// `gelu(inf) = inf`, NaN returned unchanged. The specification of
/// [`crate::Kernels::gelu_tanh_inplace`].
#[inline]
pub fn gelu_tanh_f32(x: f32) -> f32 {
    // One comparison sends NaN and -inf to the special cases.
    if x > f32::NEG_INFINITY {
        // Finite or `+inf`, and `x^3` has the sign of `x`: `u` is not NaN.
        let u = GELU_K * (x + GELU_C * x * x * x);
        0.5 * x * (1.0 + tanh_not_nan(u))
    } else if x.is_nan() {
        x
    } else {
        -0.0
    }
}

/// [`exp_f32`] of every element.
pub fn exp_inplace(x: &mut [f32]) {
    for v in x {
        // `exp(±0) = 1` exactly, without the polynomial: the same bits,
        // cheaper where zeros are common (the recurrence's `m - m'` is 0
        // for about half the latents).
        *v = if *v == 0.0 { 1.0 } else { exp_f32(*v) };
    }
}

/// Adds `a[j] * b[j]` (the product rounded, then the sum: no FMA) to the
/// partial sum `s[j % 8]`, for `j < min(a.len(), b.len())`: the window
/// attention's dot products (eight interleaved sums, added in order at the
/// end by the caller; a longer product is several calls whose lengths but the
/// last are multiples of 8). The per-row step of [`window_dots`].
#[inline(always)]
pub fn dot8_acc(s: &mut [f32; 8], a: &[f32], b: &[f32]) {
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
}

/// `acc[j] += p * v[j]` (the product rounded, then the sum) for
/// `j < min(acc.len(), v.len())`: the window attention's weighted sum of
/// values. The per-row step of [`window_sums`].
#[inline(always)]
pub fn axpy(acc: &mut [f32], p: f32, v: &[f32]) {
    for (a, &x) in acc.iter_mut().zip(v) {
        *a += p * x;
    }
}

/// The rows (keys or values) of a window attention's ring, as
/// [`window_dots`] and [`window_sums`] read them: row `i` is the `n` elements
/// from `i * stride` (`n` = the query's or accumulator's length).
#[derive(Clone, Copy, Debug)]
pub enum RingRows<'a> {
    /// `f32` values.
    F32(&'a [f32]),
    /// `f16` bits, widened exactly by [`widen_f16`].
    F16(&'a [u16]),
    /// 8-bit integers (`q8`; the caller applies the scales).
    I8(&'a [i8]),
}

impl RingRows<'_> {
    /// Elements in the slice.
    pub fn len(&self) -> usize {
        match self {
            RingRows::F32(r) => r.len(),
            RingRows::F16(r) => r.len(),
            RingRows::I8(r) => r.len(),
        }
    }

    /// Whether the slice is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many whole rows of `n` elements, `stride` apart, the slice holds
    /// (unbounded for `stride == 0` when one row fits).
    pub fn rows(&self, n: usize, stride: usize) -> usize {
        match self.len().checked_sub(n) {
            None => 0,
            Some(room) => room.checked_div(stride).map_or(usize::MAX, |r| r + 1),
        }
    }

    /// Element `j`, widened to `f32` (exactly).
    #[inline(always)]
    pub fn get(&self, j: usize) -> f32 {
        match self {
            RingRows::F32(r) => r[j],
            RingRows::F16(r) => widen_f16(r[j]),
            RingRows::I8(r) => f32::from(r[j]),
        }
    }
}

/// `f16` bits to `f32`: exact, the value of `half`'s conversion (and of
/// F16C's `vcvtph2ps`), without branches (so a row of them vectorises).
/// Finite values: the exponent and mantissa bits moved into `f32` position
/// make `x * 2^-112`, which one multiplication by `2^112` scales back
/// exactly (subnormals included; nothing here sets flush-to-zero).
/// Infinities keep their sign; NaNs keep their payload with the quiet bit
/// set.
#[inline(always)]
pub fn widen_f16(bits: u16) -> f32 {
    let em = u32::from(bits & 0x7FFF);
    let sign = u32::from(bits & 0x8000) << 16;
    let man = em & 0x03FF;
    let finite = (f32::from_bits(em << 13) * f32::from_bits((127 + 112) << 23)).to_bits();
    let special = 0x7F80_0000 | (man << 13) | (((man + 0x03FF) >> 10) << 22);
    f32::from_bits(sign | if em >= 0x7C00 { special } else { finite })
}

/// Elements of a row widened at once by the scalar window kernels.
const WIDEN: usize = 64;

/// Row `at..at + n` of `rows` handed to `f(j, piece)` as `f32` pieces of
/// at most [`WIDEN`] elements (a multiple of 8, so [`dot8_acc`]'s lanes
/// continue across pieces) starting at element `j`; `f32` rows directly.
#[inline(always)]
fn row_pieces(
    rows: RingRows<'_>,
    at: usize,
    n: usize,
    buf: &mut [f32; WIDEN],
    f: impl FnMut(usize, &[f32]),
) {
    match rows {
        RingRows::F32(r) => {
            let mut f = f;
            f(0, &r[at..at + n])
        }
        RingRows::F16(r) => widened(&r[at..at + n], widen_f16, buf, f),
        RingRows::I8(r) => widened(&r[at..at + n], f32::from, buf, f),
    }
}

/// `src` widened by `to_f32` into `buf` in pieces of at most [`WIDEN`]:
/// `f(j, piece)`.
#[inline(always)]
fn widened<T: Copy>(
    src: &[T],
    to_f32: impl Fn(T) -> f32,
    buf: &mut [f32; WIDEN],
    mut f: impl FnMut(usize, &[f32]),
) {
    for (c, piece) in src.chunks(WIDEN).enumerate() {
        for (o, &v) in buf.iter_mut().zip(piece) {
            *o = to_f32(v);
        }
        f(c * WIDEN, &buf[..piece.len()]);
    }
}

/// The eight partial sums of [`dot8_acc`] added in order 0..8 (from 0.0).
#[inline(always)]
pub fn dot8_sum(s: [f32; 8]) -> f32 {
    let mut t = 0.0f32;
    for v in s {
        t += v;
    }
    t
}

/// `out[i] = dot8_sum(dot8_acc(0, q, row i))` for each row `i <
/// out.len()` that `rows` holds ([`RingRows::rows`] for `n = q.len()`):
/// the window attention's scores before scaling. The specification of
/// [`crate::Kernels::window_dots`], built on the per-row `dot8` (this
/// module's [`dot8_acc`], or another path's twin of it).
#[inline(always)]
pub fn window_dots_by(
    q: &[f32],
    rows: RingRows<'_>,
    stride: usize,
    out: &mut [f32],
    dot8: impl Fn(&mut [f32; 8], &[f32], &[f32]),
) {
    let n = q.len();
    let count = out.len().min(rows.rows(n, stride));
    if let RingRows::F32(r) = rows {
        // No widening.
        for (i, o) in out[..count].iter_mut().enumerate() {
            let mut s = [0.0f32; 8];
            dot8(&mut s, q, &r[i * stride..i * stride + n]);
            *o = dot8_sum(s);
        }
        return;
    }
    let mut buf = [0f32; WIDEN];
    for (i, o) in out[..count].iter_mut().enumerate() {
        let mut s = [0.0f32; 8];
        row_pieces(rows, i * stride, n, &mut buf, |j, b| {
            dot8(&mut s, &q[j..j + b.len()], b)
        });
        *o = dot8_sum(s);
    }
}

/// [`window_dots_by`] with [`dot8_acc`].
pub fn window_dots(q: &[f32], rows: RingRows<'_>, stride: usize, out: &mut [f32]) {
    window_dots_by(q, rows, stride, out, dot8_acc)
}

/// `acc += p[i] * row i` ([`axpy`]), row after row, for each row `i <
/// p.len()` that `rows` holds ([`RingRows::rows`] for `n = acc.len()`): the
/// window attention's weighted sum of values (for `q8` rows, `p[i]` includes
/// the row's scale). The specification of [`crate::Kernels::window_sums`],
/// built on the per-row `axpy` (this module's [`axpy`] or another path's
/// twin of it).
#[inline(always)]
pub fn window_sums_by(
    acc: &mut [f32],
    p: &[f32],
    rows: RingRows<'_>,
    stride: usize,
    axpy: impl Fn(&mut [f32], f32, &[f32]),
) {
    let n = acc.len();
    let count = p.len().min(rows.rows(n, stride));
    if let RingRows::F32(r) = rows {
        // No widening.
        for (i, &pi) in p[..count].iter().enumerate() {
            axpy(acc, pi, &r[i * stride..i * stride + n]);
        }
        return;
    }
    let mut buf = [0f32; WIDEN];
    for (i, &pi) in p[..count].iter().enumerate() {
        row_pieces(rows, i * stride, n, &mut buf, |j, b| {
            axpy(&mut acc[j..j + b.len()], pi, b)
        });
    }
}

/// [`window_sums_by`] with [`axpy`].
pub fn window_sums(acc: &mut [f32], p: &[f32], rows: RingRows<'_>, stride: usize) {
    window_sums_by(acc, p, rows, stride, axpy)
}

/// The Latte recurrence's update of a group of latents sharing one value
/// vector `v` (length `Dh`): for each latent `l` (row `s[l*Dh..(l+1)*Dh]`,
/// `l < min(r.len(), a.len(), w.len(), s.len() / Dh)`), in order of `l`,
/// `s[j] = s[j] * r[l] + a[l] * v[j]` (two products, then the sum: no FMA)
/// and then `y[j] += w[l] * s[j]` (for `j < min(Dh, y.len())`).
///
/// The specification of [`crate::Kernels::latent_update`]: the other paths
/// do the same operations on several `j` at once, so they give these bits.
pub fn latent_update(s: &mut [f32], v: &[f32], r: &[f32], a: &[f32], w: &[f32], y: &mut [f32]) {
    let dh = v.len();
    if dh == 0 {
        return;
    }
    let latents = s.chunks_exact_mut(dh).zip(r.iter().zip(a).zip(w));
    for (row, ((&r, &a), &w)) in latents {
        for (s, &vv) in row.iter_mut().zip(v) {
            *s = *s * r + a * vv;
        }
        for (acc, &sv) in y.iter_mut().zip(row.iter()) {
            *acc += w * sv;
        }
    }
}

/// [`tanh_f32`] of every element.
pub fn tanh_inplace(x: &mut [f32]) {
    for v in x {
        *v = tanh_f32(*v);
    }
}

/// [`gelu_tanh_f32`] of every element.
pub fn gelu_tanh_inplace(x: &mut [f32]) {
    for v in x {
        *v = gelu_tanh_f32(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tanh`'s single scaling gives `exp_core`'s bits on its whole domain
    /// (every `f32` in `[1.25, 20]`).
    #[test]
    fn exp_core_mid_equals_exp_core() {
        for b in 1.25f32.to_bits()..=20.0f32.to_bits() {
            let x = f32::from_bits(b);
            assert_eq!(
                exp_core_mid(x).to_bits(),
                exp_core(x).to_bits(),
                "x = {x:e}"
            );
        }
    }

    /// The zero shortcut of `exp_inplace` is `exp_f32`'s value.
    #[test]
    fn exp_of_zero_is_one() {
        assert_eq!(exp_f32(0.0).to_bits(), 1.0f32.to_bits());
        assert_eq!(exp_f32(-0.0).to_bits(), 1.0f32.to_bits());
        let mut x = [0.0f32, -0.0, 1.0];
        exp_inplace(&mut x);
        assert_eq!(x, [1.0, 1.0, exp_f32(1.0)]);
    }
}
