//! Quantized matrix-matrix products for rows of at most four blocks.

use core::arch::x86_64::*;

use super::dot::{has_min_quant, nibbles};
use super::{accumulate, load_i8x32, scales8, transpose_sum};
use crate::block::{BlockQ4_0, BlockQ8_0};

/// The matrix-matrix driver for rows of at most four blocks (`nb <= 4`,
/// e.g. every matrix that reads a 128-wide vector), which `quant_matvec!`
/// runs with half of its lanes or more empty: here two tokens share one
/// reduction. Lanes `0..nb` of a transposed register hold the block sums of
/// token `t`, lanes `4..4 + nb` those of token `t + 1` (zero blocks with
/// scale zero elsewhere). A row's reference accumulators after its only
/// step are `+0.0 + p_i` in lanes `0..nb` and `+0.0` above, so its
/// reference reduction is `(a0 + a2) + (a1 + a3)`: done in each 128-bit
/// half, for both tokens at once. The activation work (loads, correction
/// totals, scales) is done once per token pair for all rows, the weight
/// preparation (`wprep`) once per row for both tokens.
///
/// `w` holds `rows * nb` blocks, `x` `tokens * nb`; writes `y[t * ldy + r]`
/// (the caller guarantees `(tokens - 1) * ldy + rows <= y.len()`).
macro_rules! quant_matmat_small {
    ($w:expr, $nb:expr, $x:expr, $tokens:expr, $y:expr, $ldy:expr, $corr:expr, $wprep:expr, $sum:expr, $dw:expr) => {{
        let (w, nb, x, tokens, y, ldy) = ($w, $nb, $x, $tokens, $y, $ldy);
        let corr = $corr;
        let wprep = $wprep;
        let sum = $sum;
        let dwf = $dw;
        let rows = w.len() / nb;
        let zero = _mm256_setzero_si256();
        let mut t = 0;
        while t < tokens {
            let pair = (tokens - t).min(2);
            // Lane k: token t + k / 4, block k % 4.
            let mut ys = [zero; 8];
            let mut cs = [zero; 8];
            let mut dxb = [0u16; 8];
            for k in 0..8 {
                let (tk, i) = (k / 4, k % 4);
                if tk < pair && i < nb {
                    let b = &x[(t + tk) * nb + i];
                    ys[k] = load_i8x32(&b.qs);
                    cs[k] = corr(&ys[k]);
                    dxb[k] = b.d;
                }
            }
            let c = transpose_sum(cs);
            let dx = scales8(dxb);
            for r in 0..rows {
                let wr = &w[r * nb..r * nb + nb];
                let mut s = [zero; 8];
                let mut dwb = [0u16; 8];
                for (i, b) in wr.iter().enumerate() {
                    let wp = wprep(b);
                    let d = dwf(b);
                    s[i] = sum(&wp, &ys[i]);
                    dwb[i] = d;
                    if pair == 2 {
                        s[i + 4] = sum(&wp, &ys[i + 4]);
                        dwb[i + 4] = d;
                    }
                }
                let s = _mm256_sub_epi32(transpose_sum(s), c);
                // +0.0 + p_i: the accumulators after one step.
                let a = accumulate(_mm256_setzero_ps(), s, scales8(dwb), dx);
                // Per half: lane 0 = a0 + a2, lane 1 = a1 + a3; then their sum.
                let h = _mm256_add_ps(a, _mm256_permute_ps::<0b11_10_11_10>(a));
                let h = _mm256_add_ps(h, _mm256_movehdup_ps(h));
                y[t * ldy + r] = _mm256_cvtss_f32(h);
                if pair == 2 {
                    y[(t + 1) * ldy + r] = _mm_cvtss_f32(_mm256_extractf128_ps::<1>(h));
                }
            }
            t += pair;
        }
    }};
}
pub(crate) use quant_matmat_small;

/// [`quant_matmat_small!`] for `Q8_0` weights (`nb <= 4`). Returns `false`
/// (and writes nothing) when an activation quant is -128, which the sign
/// trick cannot take: the caller then uses the matrix-vector kernel.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn matmat_q8_0_small(
    w: &[BlockQ8_0],
    nb: usize,
    x: &[BlockQ8_0],
    tokens: usize,
    y: &mut [f32],
    ldy: usize,
) -> bool {
    if has_min_quant(&x[..tokens * nb]) {
        return false;
    }
    quant_matmat_small!(
        w,
        nb,
        x,
        tokens,
        y,
        ldy,
        |_: &__m256i| _mm256_setzero_si256(),
        |a: &BlockQ8_0| load_i8x32(&a.qs),
        // The sign trick: |w| * (y * sign(w)), exact without -128 in y.
        |a: &__m256i, y: &__m256i| {
            let p = _mm256_maddubs_epi16(_mm256_abs_epi8(*a), _mm256_sign_epi8(*y, *a));
            _mm256_madd_epi16(p, _mm256_set1_epi16(1))
        },
        |b: &BlockQ8_0| b.d
    );
    true
}

/// [`quant_matmat_small!`] for `Q4_0` weights (`nb <= 4`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn matmat_q4_0_small(
    w: &[BlockQ4_0],
    nb: usize,
    x: &[BlockQ8_0],
    tokens: usize,
    y: &mut [f32],
    ldy: usize,
) -> bool {
    quant_matmat_small!(
        w,
        nb,
        x,
        tokens,
        y,
        ldy,
        // 8 * y, the offset of the nibbles, in i32 partial sums.
        |y: &__m256i| {
            let c = _mm256_maddubs_epi16(_mm256_set1_epi8(8), *y);
            _mm256_madd_epi16(c, _mm256_set1_epi16(1))
        },
        |a: &BlockQ4_0| nibbles(a),
        |q: &__m256i, y: &__m256i| {
            let p = _mm256_maddubs_epi16(*q, *y);
            _mm256_madd_epi16(p, _mm256_set1_epi16(1))
        },
        |b: &BlockQ4_0| b.d
    );
    true
}
