//! Scalar reference kernels: the single place where the arithmetic lives.
//!
//! Everything is a plain loop in `f32` with sequential accumulation, so the
//! results are the same on every target. `exp` (softmax) and `tanh` (GELU)
//! are `latte_kernels`' own ([`latte_kernels::scalar::exp_f32`],
//! [`latte_kernels::scalar::gelu_tanh_f32`]: `exp` and `tanh` within 0.99
//! and 1.34 ulp of the exact values, and bit for bit the same on every
//! kernel path, SIMD or scalar); the square root, `sin`, `cos` and the `exp`
//! of the sinusoidal position come from `libm`. None of them change when the
//! `std` feature is switched on.
//!
//! Every function works on the common prefix of its slices (it never panics on
//! mismatched lengths); callers pass slices of the documented lengths.

use half::f16;
use latte_kernels::{Kernels, QuantFormat, QK};

/// `y[r] = sum_c w[r*cols + c] * x[c]` for an `f32` row-major matrix with
/// `cols` columns. Rows are `w.chunks_exact(cols)`, one per element of `y`.
pub fn matvec_f32(w: &[f32], cols: usize, x: &[f32], y: &mut [f32]) {
    if cols == 0 {
        y.fill(0.0);
        return;
    }
    for (out, row) in y.iter_mut().zip(w.chunks_exact(cols)) {
        *out = dot_f32(row, x);
    }
}

/// Like [`matvec_f32`] for an `f16` matrix; products and sums are in `f32`.
pub fn matvec_f16(w: &[f16], cols: usize, x: &[f32], y: &mut [f32]) {
    if cols == 0 {
        y.fill(0.0);
        return;
    }
    for (out, row) in y.iter_mut().zip(w.chunks_exact(cols)) {
        *out = dot_f16(row, x);
    }
}

/// Like [`matvec_f32`] for a matrix of quantized blocks (`cols / 32`
/// per row): each weight is dequantized ([`QuantFormat::dequantize`]) and
/// the products summed sequentially in `f32`. The activations are not
/// quantized: this is the float reference of the quantized product.
pub fn matvec_dequant<W: QuantFormat>(w: &[W], cols: usize, x: &[f32], y: &mut [f32]) {
    let nb = cols / QK;
    if nb == 0 {
        y.fill(0.0);
        return;
    }
    for (out, row) in y.iter_mut().zip(w.chunks_exact(nb)) {
        let mut acc = 0.0f32;
        let mut xs = x.iter();
        for b in row {
            let mut values = [0.0f32; QK];
            W::dequantize(core::slice::from_ref(b), &mut values);
            for (wv, xv) in values.iter().zip(&mut xs) {
                acc += wv * xv;
            }
        }
        *out = acc;
    }
}

/// [`matvec_dequant`] for `Q8_0` weights (`q * d`).
pub fn matvec_q8_0_dequant(w: &[latte_kernels::BlockQ8_0], cols: usize, x: &[f32], y: &mut [f32]) {
    matvec_dequant(w, cols, x, y)
}

/// [`matvec_dequant`] for `Q4_0` weights (`(q - 8) * d`).
pub fn matvec_q4_0_dequant(w: &[latte_kernels::BlockQ4_0], cols: usize, x: &[f32], y: &mut [f32]) {
    matvec_dequant(w, cols, x, y)
}

/// Dot product of two `f32` vectors (sequential sum).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        acc += x * y;
    }
    acc
}

/// Dot product of an `f16` vector with an `f32` vector, in `f32`.
pub fn dot_f16(a: &[f16], b: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        acc += x.to_f32() * y;
    }
    acc
}

/// `acc[i] += x[i]`.
pub fn add_assign(acc: &mut [f32], x: &[f32]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

/// Float sum in eight lanes: element `i` is added into lane `i % 8` (lanes
/// start at `+0.0`), and the lanes are combined as
/// `((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))`, the order of the
/// quantized dot products' accumulators. The order is part of the result's
/// definition (every target computes these bits); eight independent chains
/// instead of one let the compiler use vector adds and hide the add latency.
#[inline]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a += f(v);
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// LayerNorm over the whole of `x` with biased variance (two passes, each
/// sum in the eight-lane order of [`lane_sum`]):
/// `out[i] = (x[i] - mean) / sqrt(var + eps) * weight[i] + bias[i]`.
pub fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let n = x.len() as f32;
    let mean = lane_sum(x, |v| v) / n;
    let sq = lane_sum(x, |v| {
        let d = v - mean;
        d * d
    });
    let inv = 1.0 / libm::sqrtf(sq / n + eps);
    for (((o, v), w), b) in out.iter_mut().zip(x).zip(weight).zip(bias) {
        *o = (v - mean) * inv * w + b;
    }
}

/// Softmax in place with max subtraction. NaN entries count as `-inf`
/// (probability 0). Returns the sum of the exponentials before
/// normalisation; if it is not a positive finite number (all entries `-inf`
/// or NaN) the slice is left holding the unnormalised exponentials.
///
/// [`softmax_in_place_with`] with the scalar kernels (the same bits).
pub fn softmax_in_place(x: &mut [f32]) -> f32 {
    softmax_in_place_with(&Kernels::scalar(), x)
}

/// [`softmax_in_place`] with the exponentials computed by `k`
/// ([`Kernels::exp_inplace`]: the same bits on every path, so the result
/// does not depend on `k`). The steps: `max` over the non-NaN entries,
/// `x[i] - max`, `exp`, NaN (a NaN entry, or `-inf - (-inf)`) to 0, the
/// sequential sum, then `x[i] * (1 / sum)`.
pub fn softmax_in_place_with(k: &Kernels, x: &mut [f32]) -> f32 {
    softmax_shift(x);
    k.exp_inplace(x);
    softmax_normalize(x)
}

/// [`softmax_in_place_with`] on each row of `row` values of `x` (a
/// remainder shorter than a row is left alone), with the exponentials of all
/// rows in one [`Kernels::exp_inplace`] call: every value goes through the
/// same operations as with one call per row, so the bits are the same.
pub fn softmax_rows_in_place_with(k: &Kernels, x: &mut [f32], row: usize) {
    if row == 0 {
        return;
    }
    let len = x.len() / row * row;
    let x = &mut x[..len];
    for r in x.chunks_exact_mut(row) {
        softmax_shift(r);
    }
    k.exp_inplace(x);
    for r in x.chunks_exact_mut(row) {
        softmax_normalize(r);
    }
}

/// The softmax's first steps: `max` over the non-NaN entries, `x[i] - max`.
#[inline]
fn softmax_shift(x: &mut [f32]) {
    let mut max = f32::NEG_INFINITY;
    for &v in x.iter() {
        if v > max {
            max = v;
        }
    }
    for v in x.iter_mut() {
        *v -= max;
    }
}

/// The softmax's last steps, on the exponentials: NaN to 0, the sequential
/// sum, `x[i] * (1 / sum)`; returns the sum.
#[inline]
fn softmax_normalize(x: &mut [f32]) -> f32 {
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        // exp(-inf - (-inf)) is NaN: an all -inf row has no mass.
        if v.is_nan() {
            *v = 0.0;
        }
        sum += *v;
    }
    if sum > 0.0 && sum.is_finite() {
        let inv = 1.0 / sum;
        for v in x.iter_mut() {
            *v *= inv;
        }
    }
    sum
}

/// GELU, tanh form: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`,
/// [`latte_kernels::scalar::gelu_tanh_f32`] (its documentation gives the
/// exact order of the operations; `gelu(-inf) = -0`).
pub fn gelu_tanh(x: f32) -> f32 {
    latte_kernels::scalar::gelu_tanh_f32(x)
}

/// Applies [`gelu_tanh`] to every element (what
/// [`Kernels::gelu_tanh_inplace`] does on every path, bit for bit).
pub fn gelu_tanh_in_place(x: &mut [f32]) {
    latte_kernels::scalar::gelu_tanh_inplace(x);
}

/// Index of the largest element; the lowest index wins ties and NaN never
/// wins. Returns 0 for an empty slice or one that is all NaN.
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0usize;
    let mut best_v = f32::NAN;
    for (i, &v) in x.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if best_v.is_nan() || v > best_v {
            best = i;
            best_v = v;
        }
    }
    best
}

/// Adds the sinusoidal position encoding of position `pos` to `x` (length
/// D), computed in `f32` as the official JAX table is:
/// `w_i = exp(2i * c)` with `c = (-ln 10000 / D)` rounded to `f32`,
/// angle `= (pos as f32) * w_i`, `x[2i] += sin(angle)`, `x[2i+1] += cos(angle)`.
pub fn add_sinusoidal(pos: u64, x: &mut [f32]) {
    add_sinusoidal_with(pos, x, &[]);
}

/// The frequency `w_i` of [`add_sinusoidal`] for width `d` (libm's `expf`).
pub fn sinusoidal_frequency(i: usize, d: usize) -> f32 {
    let c = (-libm::log(10000.0) / d as f64) as f32;
    libm::expf((2 * i) as f32 * c)
}

/// [`add_sinusoidal`] with the first `freqs.len()` frequencies taken from
/// `freqs` (which must hold [`sinusoidal_frequency`]`(i, x.len())`, as
/// [`crate::Model`] precomputes them) and the rest computed: the same bits.
/// `sin` and `cos` of an angle come from one `libm::sincosf`, which gives
/// the bits of `libm::sinf` and `libm::cosf` for every `f32`.
pub(crate) fn add_sinusoidal_with(pos: u64, x: &mut [f32], freqs: &[f32]) {
    let d = x.len();
    if d == 0 {
        return;
    }
    let p = pos as f32;
    for (i, pair) in x.chunks_mut(2).enumerate() {
        let w = match freqs.get(i) {
            Some(&w) => w,
            None => sinusoidal_frequency(i, d),
        };
        let (sin, cos) = libm::sincosf(p * w);
        if let Some(s) = pair.get_mut(0) {
            *s += sin;
        }
        if let Some(co) = pair.get_mut(1) {
            *co += cos;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matvec_small() {
        // [[1,2,3],[4,5,6]] * [1,0,-1] = [-2,-2]
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut y = [0.0; 2];
        matvec_f32(&w, 3, &[1.0, 0.0, -1.0], &mut y);
        assert_eq!(y, [-2.0, -2.0]);
        let wh: [f16; 6] = w.map(f16::from_f32);
        let mut yh = [0.0; 2];
        matvec_f16(&wh, 3, &[1.0, 0.0, -1.0], &mut yh);
        assert_eq!(yh, [-2.0, -2.0]);
    }

    #[test]
    fn layer_norm_values() {
        // x = [1,2,3,4]: mean 2.5, biased var 1.25.
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let mut out = [0.0; 4];
        layer_norm(
            &x,
            &[1.0, 1.0, 2.0, 1.0],
            &[0.0, 0.5, 0.0, 0.0],
            0.0,
            &mut out,
        );
        let s = 1.25f32.sqrt();
        let want = [-1.5 / s, -0.5 / s + 0.5, 2.0 * 0.5 / s, 1.5 / s];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn gelu_known_values() {
        // Values of the tanh-form GELU computed by hand in f64.
        assert_eq!(gelu_tanh(0.0), 0.0);
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
        assert!((gelu_tanh(-1.0) + 0.158_808).abs() < 1e-5);
        assert!((gelu_tanh(3.0) - 2.996_362_6).abs() < 1e-5);
    }

    #[test]
    fn softmax_handles_neg_inf_and_nan() {
        let mut x = [f32::NEG_INFINITY, 0.0, f32::NAN, 0.0];
        softmax_in_place(&mut x);
        assert_eq!(x, [0.0, 0.5, 0.0, 0.5]);
        let mut y = [f32::NEG_INFINITY; 3];
        let s = softmax_in_place(&mut y);
        assert_eq!(s, 0.0);
        assert_eq!(y, [0.0; 3]);
    }

    #[test]
    fn sinusoidal_values() {
        // D = 4: w_0 = 1, w_1 = 10000^(-1/2) = 0.01.
        let mut x = [0.0f32; 4];
        add_sinusoidal(0, &mut x);
        assert_eq!(x, [0.0, 1.0, 0.0, 1.0]);
        let mut y = [1.0f32; 4];
        add_sinusoidal(3, &mut y);
        let want = [
            1.0 + 3f64.sin(),
            1.0 + 3f64.cos(),
            1.0 + 0.03f64.sin(),
            1.0 + 0.03f64.cos(),
        ];
        for (a, b) in y.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn argmax_ties_and_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, -1.0, -1.0]), 1);
        assert_eq!(argmax(&[]), 0);
    }
}
