//! Quantized dot products (`Q8_0` and `Q4_0` weights, `Q8_0` activations).

use core::arch::x86_64::*;

use super::{accumulate, load_i8x16, load_i8x32, load_u8x16, reduce_lanes, scales8, transpose_sum};
use crate::block::{BlockQ4_0, BlockQ8_0};

/// The generic 8-blocks-at-a-time driver of a quantized dot product: `sum`
/// gives a block's eight `i32` partial sums, `dw` its scale bits.
macro_rules! quant_dot {
    ($w:expr, $x:expr, $sum:expr, $dw:expr) => {{
        let (w, x) = ($w, $x);
        #[allow(unused_mut)]
        let mut sum = $sum;
        let n = w.len().min(x.len());
        let (w, x) = (&w[..n], &x[..n]);
        let mut acc = _mm256_setzero_ps();
        let mut wc = w.chunks_exact(8);
        let mut xc = x.chunks_exact(8);
        for (wb, xb) in (&mut wc).zip(&mut xc) {
            let s = transpose_sum([
                sum(&wb[0], &xb[0]),
                sum(&wb[1], &xb[1]),
                sum(&wb[2], &xb[2]),
                sum(&wb[3], &xb[3]),
                sum(&wb[4], &xb[4]),
                sum(&wb[5], &xb[5]),
                sum(&wb[6], &xb[6]),
                sum(&wb[7], &xb[7]),
            ]);
            let dw = scales8(core::array::from_fn(|i| $dw(&wb[i])));
            let dx = scales8(core::array::from_fn(|i| xb[i].d));
            acc = accumulate(acc, s, dw, dx);
        }
        let (wr, xr) = (wc.remainder(), xc.remainder());
        if !wr.is_empty() {
            // Missing lanes get sum 0 and scale 0: they add +0.0, which leaves
            // an accumulator unchanged (it is never -0.0).
            let mut s = [_mm256_setzero_si256(); 8];
            let mut dw = [0u16; 8];
            let mut dx = [0u16; 8];
            for (i, (a, b)) in wr.iter().zip(xr).enumerate() {
                s[i] = sum(a, b);
                dw[i] = $dw(a);
                dx[i] = b.d;
            }
            acc = accumulate(acc, transpose_sum(s), scales8(dw), scales8(dx));
        }
        reduce_lanes(acc)
    }};
}
pub(crate) use quant_dot;

// ---------------------------------------------------------------------------
// Quantized dot products.

/// The eight `i32` partial sums of one `Q8_0` x `Q8_0` block, exact for
/// every input: the bytes are widened to 16 bits (`vpmovsxbw`), multiplied
/// and pair-summed (`vpmaddwd`). Used when an activation quant is -128.
#[inline]
#[target_feature(enable = "avx2")]
fn sum_q8_0_exact(w: &BlockQ8_0, x: &BlockQ8_0) -> __m256i {
    let w0 = _mm256_cvtepi8_epi16(load_i8x16(&w.qs, 0));
    let w1 = _mm256_cvtepi8_epi16(load_i8x16(&w.qs, 1));
    let x0 = _mm256_cvtepi8_epi16(load_i8x16(&x.qs, 0));
    let x1 = _mm256_cvtepi8_epi16(load_i8x16(&x.qs, 1));
    _mm256_add_epi32(_mm256_madd_epi16(w0, x0), _mm256_madd_epi16(w1, x1))
}

/// The eight `i32` partial sums of one `Q8_0` x `Q8_0` block with the sign
/// trick: `|w| * (x * sign(w))` through `vpmaddubsw` (unsigned x signed).
/// Exact when no quant of `x` is -128 (then `x * sign(w)` cannot wrap and a
/// pair is at most `2 * 128 * 127 < 2^15`); `w` may hold -128 (`|w|` = 128
/// unsigned). Fewer shuffles than [`sum_q8_0_exact`].
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn sum_q8_0_sign(w: &BlockQ8_0, y: __m256i) -> __m256i {
    let a = load_i8x32(&w.qs);
    let p = _mm256_maddubs_epi16(_mm256_abs_epi8(a), _mm256_sign_epi8(y, a));
    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
}

/// Mask of the bytes of `y` equal to -128.
#[inline]
#[target_feature(enable = "avx2")]
fn min_bytes(y: __m256i) -> __m256i {
    _mm256_cmpeq_epi8(y, _mm256_set1_epi8(-128))
}

/// `true` when some quant of `x` is -128.
#[target_feature(enable = "avx2")]
pub(super) fn has_min_quant(x: &[BlockQ8_0]) -> bool {
    let mut seen = _mm256_setzero_si256();
    for b in x {
        seen = _mm256_or_si256(seen, min_bytes(load_i8x32(&b.qs)));
    }
    _mm256_testz_si256(seen, seen) == 0
}

/// The 32 nibbles of a `Q4_0` block as bytes `0..=15` in value order: the
/// 16 bytes are broadcast to both halves (`vbroadcasti128` from memory, no
/// shuffle), the high half shifted right by 4 within 32-bit lanes (the low
/// nibble of the next byte lands in bits 4..7, cleared by the mask).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn nibbles(w: &BlockQ4_0) -> __m256i {
    let both = _mm256_broadcastsi128_si256(load_u8x16(&w.qs));
    let shifted = _mm256_srlv_epi32(both, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F))
}

/// The eight `i32` partial sums of one `Q4_0` x `Q8_0` block, exact:
/// `sum q*y - 8 * sum y` with unsigned nibbles, no saturation possible
/// (`|pair| <= 15 * 128 * 2` and `8 * 128 * 2`).
#[inline]
#[target_feature(enable = "avx2")]
fn sum_q4_0(w: &BlockQ4_0, x: &BlockQ8_0) -> __m256i {
    let y = load_i8x32(&x.qs);
    let p = _mm256_maddubs_epi16(nibbles(w), y);
    let c = _mm256_maddubs_epi16(_mm256_set1_epi8(8), y);
    _mm256_madd_epi16(_mm256_sub_epi16(p, c), _mm256_set1_epi16(1))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    // The sign trick, noting any -128 in `x` on the way; redo exactly if so.
    let mut seen = _mm256_setzero_si256();
    let fast = quant_dot!(
        w,
        x,
        |a: &BlockQ8_0, b: &BlockQ8_0| {
            let y = load_i8x32(&b.qs);
            seen = _mm256_or_si256(seen, min_bytes(y));
            sum_q8_0_sign(a, y)
        },
        |b: &BlockQ8_0| b.d
    );
    if _mm256_testz_si256(seen, seen) != 0 {
        fast
    } else {
        dot_q8_0_exact(w, x)
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q8_0_exact(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    quant_dot!(w, x, sum_q8_0_exact, |b: &BlockQ8_0| b.d)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    quant_dot!(w, x, sum_q4_0, |b: &BlockQ4_0| b.d)
}
