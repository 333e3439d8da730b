//! Quantized matrix-vector products, rows four at a time.

use core::arch::x86_64::*;

use super::dot::{has_min_quant, nibbles, sum_q8_0_sign};
use super::{accumulate, load_i8x16, load_i8x32, reduce_lanes, scales8, transpose_sum};
use crate::block::{BlockQ4_0, BlockQ8_0};

/// The matrix-vector driver: rows four at a time, so that the work that
/// depends only on an activation block is done once per four rows: `prep`
/// (its load and anything derived from it), the activation scales, and the
/// per-block totals of a correction term `corr(prep)` that `sum` leaves out
/// (subtracted after the transpose: the integers are the same). Every row
/// goes through exactly the float steps of `quant_dot!`, so `y[r]` has the
/// bits of the row's dot product.
macro_rules! quant_matvec {
    ($w:expr, $stride:expr, $x:expr, $y:expr, $prep:expr, $corr:expr, $sum:expr, $dw:expr) => {{
        let (w, stride, x, y) = ($w, $stride, $x, $y);
        let prep = $prep;
        let corr = $corr;
        let sum = $sum;
        let dwf = $dw;
        let nb = x.len();
        let (groups, tail) = (nb / 8, nb % 8);
        // The activation side of a group of eight blocks (operands,
        // correction totals, scales) does not depend on the rows: prepared
        // once per product for the first CACHED groups, written in place and
        // only as far as needed; groups past them (rows over 4096 values)
        // are prepared in each pass as before.
        let group = |g: usize| {
            let xb = &x[8 * g..8 * g + 8];
            let p: [_; 8] = core::array::from_fn(|i| prep(&xb[i]));
            let c = transpose_sum(core::array::from_fn(|i| corr(&p[i])));
            let dx = scales8(core::array::from_fn(|i| xb[i].d));
            (p, c, dx)
        };
        const CACHED: usize = 16;
        let ready = groups.min(CACHED);
        let mut cached = [const { core::mem::MaybeUninit::uninit() }; CACHED];
        for (g, slot) in cached[..ready].iter_mut().enumerate() {
            slot.write(group(g));
        }
        // The same for the correction totals and scales of the tail of fewer
        // than eight blocks (its operands are prepared as they are used).
        let xt = &x[8 * groups..];
        let (tail_c, tail_dx) = {
            let mut cs = [_mm256_setzero_si256(); 8];
            let mut dxb = [0u16; 8];
            for (i, b) in xt.iter().enumerate() {
                dxb[i] = b.d;
                cs[i] = corr(&prep(b));
            }
            (transpose_sum(cs), scales8(dxb))
        };
        let mut r0 = 0;
        while r0 < y.len() {
            let rr = (y.len() - r0).min(4);
            let mut acc = [_mm256_setzero_ps(); 4];
            for g in 0..groups {
                let computed;
                let (p, c, dx) = match cached[..ready].get(g) {
                    // SAFETY: slots `0..ready` were written above.
                    Some(slot) => unsafe { slot.assume_init_ref() },
                    None => {
                        computed = group(g);
                        &computed
                    }
                };
                let (c, dx) = (*c, *dx);
                for (j, a) in acc.iter_mut().enumerate().take(rr) {
                    let base = (r0 + j) * stride + 8 * g;
                    let wb = &w[base..base + 8];
                    let s = transpose_sum(core::array::from_fn(|i| sum(&wb[i], &p[i])));
                    let s = _mm256_sub_epi32(s, c);
                    let dw = scales8(core::array::from_fn(|i| dwf(&wb[i])));
                    *a = accumulate(*a, s, dw, dx);
                }
            }
            if tail > 0 {
                let (c, dx) = (tail_c, tail_dx);
                for (j, a) in acc.iter_mut().enumerate().take(rr) {
                    let base = (r0 + j) * stride + 8 * groups;
                    let wb = &w[base..base + tail];
                    let mut s = [_mm256_setzero_si256(); 8];
                    let mut dw = [0u16; 8];
                    for (i, (b, xb)) in wb.iter().zip(xt).enumerate() {
                        s[i] = sum(b, &prep(xb));
                        dw[i] = dwf(b);
                    }
                    let s = _mm256_sub_epi32(transpose_sum(s), c);
                    *a = accumulate(*a, s, scales8(dw), dx);
                }
            }
            for (out, a) in y[r0..r0 + rr].iter_mut().zip(acc) {
                *out = reduce_lanes(a);
            }
            r0 += rr;
        }
    }};
}
pub(crate) use quant_matvec;

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn matvec_q8_0(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    // One check of the shared activations for all rows.
    if has_min_quant(x) {
        quant_matvec!(
            w,
            stride,
            x,
            y,
            |b: &BlockQ8_0| {
                let x0 = _mm256_cvtepi8_epi16(load_i8x16(&b.qs, 0));
                (x0, _mm256_cvtepi8_epi16(load_i8x16(&b.qs, 1)))
            },
            |_: &(__m256i, __m256i)| _mm256_setzero_si256(),
            |a: &BlockQ8_0, p: &(__m256i, __m256i)| {
                let w0 = _mm256_cvtepi8_epi16(load_i8x16(&a.qs, 0));
                let w1 = _mm256_cvtepi8_epi16(load_i8x16(&a.qs, 1));
                _mm256_add_epi32(_mm256_madd_epi16(w0, p.0), _mm256_madd_epi16(w1, p.1))
            },
            |b: &BlockQ8_0| b.d
        )
    } else {
        quant_matvec!(
            w,
            stride,
            x,
            y,
            |b: &BlockQ8_0| load_i8x32(&b.qs),
            |_: &__m256i| _mm256_setzero_si256(),
            |a: &BlockQ8_0, y: &__m256i| sum_q8_0_sign(a, *y),
            |b: &BlockQ8_0| b.d
        )
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn matvec_q4_0(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    quant_matvec!(
        w,
        stride,
        x,
        y,
        |b: &BlockQ8_0| load_i8x32(&b.qs),
        // 8 * y, the offset of the nibbles, in i32 partial sums.
        |y: &__m256i| {
            let c = _mm256_maddubs_epi16(_mm256_set1_epi8(8), *y);
            _mm256_madd_epi16(c, _mm256_set1_epi16(1))
        },
        |a: &BlockQ4_0, y: &__m256i| {
            let p = _mm256_maddubs_epi16(nibbles(a), *y);
            _mm256_madd_epi16(p, _mm256_set1_epi16(1))
        },
        |b: &BlockQ4_0| b.d
    )
}
