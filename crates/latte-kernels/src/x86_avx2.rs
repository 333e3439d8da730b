//! x86-64 kernels for AVX2 + FMA + F16C.
//!
//! Quantized dot products: the exact integer sum of each block is computed
//! in 256-bit registers, eight blocks are reduced together into one vector of
//! eight per-block sums ([`transpose_sum`]), and the float part follows the
//! scalar reference order exactly (lane `i % 8`, multiply then add, no FMA).
//!
//! Signed x signed bytes (`Q8_0` x `Q8_0`) use the sign trick
//! `|w| * (x * sign(w))` through `vpmaddubsw`, which is exact unless an
//! activation quant is -128 (`-(-128)` wraps). The activation quantizer never
//! makes -128, so the kernels check the activations for it (fused into the
//! dot product's loop, or once per matrix-vector product) and fall back to
//! widening to 16 bits (`vpmovsxbw` + `vpmaddwd`, exact for every input).
//! `Q4_0` nibbles are unsigned: `sum q*y - 8 * sum y`, two `vpmaddubsw` that
//! cannot saturate.
//!
//! Matrix-vector products take rows four at a time, sharing the activation
//! loads, scales and correction terms, with exactly the per-row float steps
//! of the dot product.
//!
//! Float dot products use FMA with four 8-lane accumulators (reassociated).

use core::arch::x86_64::*;

use half::f16;

use crate::block::{BlockQ4_0, BlockQ8_0, QK};
use crate::scalar;

// ---------------------------------------------------------------------------
// Entry points stored in `Kernels` (the only callers).

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
pub(crate) unsafe fn dot_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: the caller guarantees the target features.
    unsafe { dot_q8_0_tf(w, x) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
pub(crate) unsafe fn dot_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: the caller guarantees the target features.
    unsafe { dot_q4_0_tf(w, x) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
pub(crate) unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: the caller guarantees the target features.
    unsafe { dot_f32_tf(a, b) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
pub(crate) unsafe fn dot_f16(a: &[f16], b: &[f32]) -> f32 {
    // SAFETY: the caller guarantees the target features.
    unsafe { dot_f16_tf(a, b) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
pub(crate) unsafe fn matvec_q8_0(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    // SAFETY: the caller guarantees the target features.
    unsafe { matvec_q8_0_tf(w, stride, x, y) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
pub(crate) unsafe fn matvec_q4_0(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    // SAFETY: the caller guarantees the target features.
    unsafe { matvec_q4_0_tf(w, stride, x, y) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
pub(crate) unsafe fn matvec_f32(w: &[f32], stride: usize, x: &[f32], y: &mut [f32]) {
    // SAFETY: the caller guarantees the target features.
    unsafe { matvec_f32_tf(w, stride, x, y) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
pub(crate) unsafe fn matvec_f16(w: &[f16], stride: usize, x: &[f32], y: &mut [f32]) {
    // SAFETY: the caller guarantees the target features.
    unsafe { matvec_f16_tf(w, stride, x, y) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
pub(crate) unsafe fn quantize_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    // SAFETY: the caller guarantees the target features.
    unsafe { quantize_q8_0_tf(x, y) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
pub(crate) unsafe fn latent_update(
    s: &mut [f32],
    v: &[f32],
    r: &[f32],
    a: &[f32],
    w: &[f32],
    y: &mut [f32],
) {
    // SAFETY: the caller guarantees the target features.
    unsafe { latent_update_tf(s, v, r, a, w, y) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
pub(crate) unsafe fn exp_inplace(x: &mut [f32]) {
    // SAFETY: the caller guarantees the target features.
    unsafe { exp_inplace_tf(x) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
pub(crate) unsafe fn tanh_inplace(x: &mut [f32]) {
    // SAFETY: the caller guarantees the target features.
    unsafe { tanh_inplace_tf(x) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
pub(crate) unsafe fn gelu_tanh_inplace(x: &mut [f32]) {
    // SAFETY: the caller guarantees the target features.
    unsafe { gelu_tanh_inplace_tf(x) }
}

// ---------------------------------------------------------------------------
// Loads (the only unsafe operations below).

#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn load_i8x32(q: &[i8; 32]) -> __m256i {
    // SAFETY: reads exactly the 32 bytes of `q`; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(q.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn load_u8x16(q: &[u8; 16]) -> __m128i {
    // SAFETY: reads exactly the 16 bytes of `q`; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(q.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn load_i8x16(q: &[i8; 32], half: usize) -> __m128i {
    let h: &[i8; 16] = q[16 * half..16 * half + 16].try_into().expect("16 bytes");
    // SAFETY: reads exactly the 16 bytes of `h`; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(h.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn load_f32x8(v: &[f32; 8]) -> __m256 {
    // SAFETY: reads exactly the 8 floats of `v`; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_ps(v.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,f16c")]
fn load_f16x8(v: &[f16; 8]) -> __m256 {
    // SAFETY: reads exactly the 16 bytes of `v` (`f16` is a `u16` newtype);
    // `loadu` has no alignment requirement.
    let h = unsafe { _mm_loadu_si128(v.as_ptr().cast()) };
    _mm256_cvtph_ps(h)
}

#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn store_i8x32(q: &mut [i8; 32], v: __m256i) {
    // SAFETY: writes exactly the 32 bytes of `q`; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_si256(q.as_mut_ptr().cast(), v) }
}

// ---------------------------------------------------------------------------
// Shared pieces of the quantized dot products (also used by the AVX-VNNI file).

/// Eight `f16` scales to `f32`. The bits are packed four at a time in
/// general-purpose registers (integer ports, idle in these loops) and moved
/// over as two 64-bit halves: three vector operations instead of the sixteen
/// shuffles of a `vpinsrw` tree, which LLVM would otherwise build (hence
/// [`opaque`]).
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(crate) fn scales8(d: [u16; 8]) -> __m256 {
    let pack = |d: &[u16]| -> i64 {
        opaque(d[0] as u64 | (d[1] as u64) << 16 | (d[2] as u64) << 32 | (d[3] as u64) << 48) as i64
    };
    _mm256_cvtph_ps(_mm_set_epi64x(pack(&d[4..]), pack(&d[..4])))
}

/// The value unchanged, but opaque to the optimizer.
#[inline(always)]
fn opaque(mut v: u64) -> u64 {
    // SAFETY: an empty asm block with one register operand: it reads and
    // writes nothing else, has no side effects and leaves `v` as it was.
    unsafe {
        core::arch::asm!("/* {0} */", inout(reg) v, options(pure, nomem, nostack, preserves_flags))
    };
    v
}

/// Eight vectors of eight `i32` partial sums to one vector of their eight
/// totals (`out[k] = sum(s[k])`), exact. Each merge of two vectors is two
/// blends (any ALU port), one in-lane shuffle and one add: half the shuffle
/// work of `vphaddd`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn transpose_sum(s: [__m256i; 8]) -> __m256i {
    // [a0+a1, b0+b1, a2+a3, b2+b3 | a4+a5, b4+b5, a6+a7, b6+b7]
    let merge32 = |a: __m256i, b: __m256i| -> __m256i {
        let x = _mm256_blend_epi32::<0b1010_1010>(a, b);
        let y = _mm256_blend_epi32::<0b1010_1010>(b, a);
        _mm256_add_epi32(x, _mm256_shuffle_epi32::<0b10_11_00_01>(y))
    };
    // [a01+a23, b.., c.., d.. | a45+a67, b.., c.., d..] from two merge32 outputs.
    let merge64 = |ab: __m256i, cd: __m256i| -> __m256i {
        let x = _mm256_blend_epi32::<0b1100_1100>(ab, cd);
        let y = _mm256_blend_epi32::<0b1100_1100>(cd, ab);
        _mm256_add_epi32(x, _mm256_shuffle_epi32::<0b01_00_11_10>(y))
    };
    let u0 = merge64(merge32(s[0], s[1]), merge32(s[2], s[3]));
    let u1 = merge64(merge32(s[4], s[5]), merge32(s[6], s[7]));
    let lo = _mm256_permute2x128_si256::<0x20>(u0, u1);
    let hi = _mm256_permute2x128_si256::<0x31>(u0, u1);
    _mm256_add_epi32(lo, hi)
}

/// `acc + (sums as f32) * (dw * dx)`, lane by lane: the reference step.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn accumulate(acc: __m256, sums: __m256i, dw: __m256, dx: __m256) -> __m256 {
    _mm256_add_ps(
        acc,
        _mm256_mul_ps(_mm256_cvtepi32_ps(sums), _mm256_mul_ps(dw, dx)),
    )
}

/// The reference reduction of the eight lane accumulators:
/// `((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn reduce_lanes(acc: __m256) -> f32 {
    let s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
    let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    let s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    _mm_cvtss_f32(s1)
}

/// Plain horizontal sum (float kernels, order unspecified).
#[inline]
#[target_feature(enable = "avx2")]
fn hsum(v: __m256) -> f32 {
    reduce_lanes(v)
}

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

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
///
/// [`quant_matmat_small!`] for `Q8_0` weights (`nb <= 4`). Returns `false`
/// (and writes nothing) when an activation quant is -128, which the sign
/// trick cannot take: the caller then uses the matrix-vector kernel.
pub(crate) unsafe fn matmat_q8_0_small(
    w: &[BlockQ8_0],
    nb: usize,
    x: &[BlockQ8_0],
    tokens: usize,
    y: &mut [f32],
    ldy: usize,
) -> bool {
    // SAFETY: the caller guarantees the target features.
    unsafe { matmat_q8_0_small_tf(w, nb, x, tokens, y, ldy) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
///
/// [`quant_matmat_small!`] for `Q4_0` weights (`nb <= 4`).
pub(crate) unsafe fn matmat_q4_0_small(
    w: &[BlockQ4_0],
    nb: usize,
    x: &[BlockQ8_0],
    tokens: usize,
    y: &mut [f32],
    ldy: usize,
) -> bool {
    // SAFETY: the caller guarantees the target features.
    unsafe { matmat_q4_0_small_tf(w, nb, x, tokens, y, ldy) };
    true
}

#[target_feature(enable = "avx2,fma,f16c")]
fn matmat_q8_0_small_tf(
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

#[target_feature(enable = "avx2,fma,f16c")]
fn matmat_q4_0_small_tf(
    w: &[BlockQ4_0],
    nb: usize,
    x: &[BlockQ8_0],
    tokens: usize,
    y: &mut [f32],
    ldy: usize,
) {
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
    )
}

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
fn sum_q8_0_sign(w: &BlockQ8_0, y: __m256i) -> __m256i {
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
fn has_min_quant(x: &[BlockQ8_0]) -> bool {
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
fn dot_q8_0_tf(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
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
fn dot_q4_0_tf(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    quant_dot!(w, x, sum_q4_0, |b: &BlockQ4_0| b.d)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn matvec_q8_0_tf(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
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
fn matvec_q4_0_tf(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
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

// ---------------------------------------------------------------------------
// Float dot products.

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f32_tf(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut ac = a.chunks_exact(32);
    let mut bc = b.chunks_exact(32);
    for (x, y) in (&mut ac).zip(&mut bc) {
        for k in 0..4 {
            let xv = load_f32x8(x[8 * k..8 * k + 8].try_into().expect("8"));
            let yv = load_f32x8(y[8 * k..8 * k + 8].try_into().expect("8"));
            acc[k] = _mm256_fmadd_ps(xv, yv, acc[k]);
        }
    }
    let (a, b) = (ac.remainder(), bc.remainder());
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    for (x, y) in (&mut ac).zip(&mut bc) {
        let xv = load_f32x8(x.try_into().expect("8"));
        let yv = load_f32x8(y.try_into().expect("8"));
        acc[0] = _mm256_fmadd_ps(xv, yv, acc[0]);
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum(v);
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        s += x * y;
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f16_tf(a: &[f16], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut ac = a.chunks_exact(32);
    let mut bc = b.chunks_exact(32);
    for (x, y) in (&mut ac).zip(&mut bc) {
        for k in 0..4 {
            let xv = load_f16x8(x[8 * k..8 * k + 8].try_into().expect("8"));
            let yv = load_f32x8(y[8 * k..8 * k + 8].try_into().expect("8"));
            acc[k] = _mm256_fmadd_ps(xv, yv, acc[k]);
        }
    }
    let (a, b) = (ac.remainder(), bc.remainder());
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    for (x, y) in (&mut ac).zip(&mut bc) {
        let xv = load_f16x8(x.try_into().expect("8"));
        let yv = load_f32x8(y.try_into().expect("8"));
        acc[0] = _mm256_fmadd_ps(xv, yv, acc[0]);
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum(v);
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        s += x.to_f32() * y;
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
fn matvec_f32_tf(w: &[f32], stride: usize, x: &[f32], y: &mut [f32]) {
    for (r, out) in y.iter_mut().enumerate() {
        *out = dot_f32_tf(&w[r * stride..r * stride + x.len()], x);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn matvec_f16_tf(w: &[f16], stride: usize, x: &[f32], y: &mut [f32]) {
    for (r, out) in y.iter_mut().enumerate() {
        *out = dot_f16_tf(&w[r * stride..r * stride + x.len()], x);
    }
}

// ---------------------------------------------------------------------------
// Activation quantizer, bit for bit `scalar::quantize_block_q8_0`.

/// `roundf` of eight floats of magnitude below 2^23: truncate, then step away
/// from zero when the (exact) remainder is at least one half.
#[inline]
#[target_feature(enable = "avx2")]
fn round_half_away(r: __m256) -> __m256 {
    let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(r);
    let diff = _mm256_sub_ps(r, t);
    let one = _mm256_set1_ps(1.0);
    let up = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(diff, _mm256_set1_ps(0.5)), one);
    let down = _mm256_and_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(diff, _mm256_set1_ps(-0.5)), one);
    _mm256_sub_ps(_mm256_add_ps(t, up), down)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn quantize_q8_0_tf(x: &[f32], y: &mut [BlockQ8_0]) {
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
    for (b, xs) in y.iter_mut().zip(x.chunks_exact(QK)) {
        let xs: &[f32; QK] = xs.try_into().expect("32");
        let v: [__m256; 4] =
            core::array::from_fn(|k| load_f32x8(xs[8 * k..8 * k + 8].try_into().expect("8")));
        let m = _mm256_max_ps(
            _mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask)),
            _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)),
        );
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let m1 = _mm_max_ss(m2, _mm_movehdup_ps(m2));
        let (d, id) = scalar::q8_0_scale(_mm_cvtss_f32(m1));
        // f16 with round to nearest even, as `half` does in the scalar code.
        let d =
            _mm_extract_epi16::<0>(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(d))) as u16;
        if !id.is_finite() {
            // `id` overflowed (tiny block): the products are not all finite;
            // the scalar code defines the (saturating) result.
            *b = scalar::quantize_block_q8_0(xs);
            continue;
        }
        // With a finite `id`, |x * id| <= 127 * (1 + 2^-20): in i8 range after rounding.
        let idv = _mm256_set1_ps(id);
        let q: [__m256i; 4] =
            core::array::from_fn(|k| _mm256_cvtps_epi32(round_half_away(_mm256_mul_ps(v[k], idv))));
        // Pack with saturation; the packs work per 128-bit half, hence the permute.
        let p16a = _mm256_packs_epi32(q[0], q[1]);
        let p16b = _mm256_packs_epi32(q[2], q[3]);
        let p8 = _mm256_packs_epi16(p16a, p16b);
        let p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        b.d = d;
        store_i8x32(&mut b.qs, p8);
    }
}

// ---------------------------------------------------------------------------
// The recurrence's latent update, eight values of `Dh` at a time.

/// `scalar::latent_update` with the values `j .. j + 8` of `y` and `v` in
/// registers for a whole group of latents: the same multiplies and adds
/// (never FMA) for every value, in the same order of latents; a tail of
/// `Dh % 8` values goes through the scalar code.
#[target_feature(enable = "avx2")]
fn latent_update_tf(s: &mut [f32], v: &[f32], r: &[f32], a: &[f32], w: &[f32], y: &mut [f32]) {
    let dh = v.len();
    if dh == 0 {
        return;
    }
    let g = (s.len() / dh).min(r.len()).min(a.len()).min(w.len());
    let full = dh.min(y.len()) / 8 * 8;
    for j in (0..full).step_by(8) {
        let vv = load_f32x8(v[j..j + 8].try_into().expect("8"));
        let yj: &mut [f32; 8] = (&mut y[j..j + 8]).try_into().expect("8");
        let mut acc = load_f32x8(yj);
        for l in 0..g {
            let sl: &mut [f32; 8] = (&mut s[l * dh + j..l * dh + j + 8]).try_into().expect("8");
            let sv = _mm256_add_ps(
                _mm256_mul_ps(load_f32x8(sl), _mm256_set1_ps(r[l])),
                _mm256_mul_ps(_mm256_set1_ps(a[l]), vv),
            );
            store_f32x8(sl, sv);
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(w[l]), sv));
        }
        store_f32x8(yj, acc);
    }
    if full < dh {
        // The values past the last whole eight (of `s` rows; `y` may be
        // shorter than `Dh`, which the scalar code also handles).
        for l in 0..g {
            let row = &mut s[l * dh + full..(l + 1) * dh];
            for (x, &vv) in row.iter_mut().zip(&v[full..]) {
                *x = *x * r[l] + a[l] * vv;
            }
            if let Some(yt) = y.get_mut(full..) {
                for (acc, &sv) in yt.iter_mut().zip(row.iter()) {
                    *acc += w[l] * sv;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Elementwise math, bit for bit `scalar::exp_f32`, `tanh_f32` and
// `gelu_tanh_f32`: the same operations on eight lanes (multiply then add,
// never FMA; IEEE division), both branches of `tanh` computed and blended,
// the special values selected at the end.

#[inline]
#[target_feature(enable = "avx2")]
fn store_f32x8(v: &mut [f32; 8], x: __m256) {
    // SAFETY: writes exactly the 8 floats of `v`; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_ps(v.as_mut_ptr(), x) }
}

/// Defines `$name(x: &mut [f32])`, applying the eight-lane `$f` to `x` eight
/// values at a time, NaN lanes left as they were ([`keep_nan`]); the tail
/// goes through `$f` in a zero-padded register.
macro_rules! map_f32x8 {
    ($name:ident, $f:ident) => {
        #[target_feature(enable = "avx2")]
        fn $name(x: &mut [f32]) {
            let mut chunks = x.chunks_exact_mut(8);
            for c in &mut chunks {
                let c: &mut [f32; 8] = c.try_into().expect("8");
                let v = load_f32x8(c);
                store_f32x8(c, keep_nan($f(v), v));
            }
            let tail = chunks.into_remainder();
            if !tail.is_empty() {
                let mut buf = [0.0f32; 8];
                buf[..tail.len()].copy_from_slice(tail);
                let v = load_f32x8(&buf);
                store_f32x8(&mut buf, keep_nan($f(v), v));
                tail.copy_from_slice(&buf[..tail.len()]);
            }
        }
    };
}

map_f32x8!(exp_inplace_tf, exp_v);
map_f32x8!(tanh_inplace_tf, tanh_v);
map_f32x8!(gelu_tanh_inplace_tf, gelu_tanh_v);

#[inline]
#[target_feature(enable = "avx2")]
fn splat(v: f32) -> __m256 {
    _mm256_set1_ps(v)
}

/// `scalar::exp_reduced` on eight lanes, each in `[EXP_MIN_X, EXP_MAX_X]`.
#[inline]
#[target_feature(enable = "avx2")]
fn exp_reduced_v(x: __m256) -> (__m256, __m256i) {
    let t = _mm256_add_ps(
        _mm256_mul_ps(x, splat(scalar::EXP_LOG2E)),
        splat(scalar::EXP_ROUND),
    );
    let n = _mm256_sub_epi32(
        _mm256_castps_si256(t),
        _mm256_set1_epi32(scalar::EXP_ROUND_BITS),
    );
    let nf = _mm256_sub_ps(t, splat(scalar::EXP_ROUND));
    let r = _mm256_sub_ps(x, _mm256_mul_ps(nf, splat(scalar::EXP_LN2_HI)));
    let r = _mm256_sub_ps(r, _mm256_mul_ps(nf, splat(scalar::EXP_LN2_LO)));
    let z = _mm256_mul_ps(r, r);
    let c = scalar::EXP_P;
    let mut p = splat(c[0]);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), splat(c[1]));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), splat(c[2]));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), splat(c[3]));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), splat(c[4]));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), splat(c[5]));
    p = _mm256_add_ps(_mm256_mul_ps(p, z), r);
    p = _mm256_add_ps(p, splat(1.0));
    (p, n)
}

/// `scalar::pow2` on eight lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn pow2_v(e: __m256i) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        e,
        _mm256_set1_epi32(127),
    )))
}

/// `scalar::exp_core` on eight lanes, each in `[EXP_MIN_X, EXP_MAX_X]`.
#[inline]
#[target_feature(enable = "avx2")]
fn exp_core_v(x: __m256) -> __m256 {
    let (p, n) = exp_reduced_v(x);
    let n1 = _mm256_srai_epi32::<1>(n);
    _mm256_mul_ps(
        _mm256_mul_ps(p, pow2_v(n1)),
        pow2_v(_mm256_sub_epi32(n, n1)),
    )
}

/// `scalar::exp_core_mid` on eight lanes, each in `[1.25, 20]`.
#[inline]
#[target_feature(enable = "avx2")]
fn exp_core_mid_v(x: __m256) -> __m256 {
    let (p, n) = exp_reduced_v(x);
    _mm256_mul_ps(p, pow2_v(n))
}

/// Lanes where `x` is NaN take `x` (the specification returns a NaN input
/// unchanged). Behind a test of the whole register: an unconditional blend
/// with the loaded `x` becomes a masked store (`vmaskmovps`), which is slow
/// on AMD cores.
#[inline]
#[target_feature(enable = "avx2")]
fn keep_nan(y: __m256, x: __m256) -> __m256 {
    let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x);
    if _mm256_movemask_ps(nan) == 0 {
        y
    } else {
        _mm256_blendv_ps(y, x, nan)
    }
}

/// `scalar::exp_f32` on eight lanes, except NaN lanes (garbage).
#[inline]
#[target_feature(enable = "avx2")]
fn exp_v(x: __m256) -> __m256 {
    let c = _mm256_min_ps(
        _mm256_max_ps(x, splat(scalar::EXP_MIN_X)),
        splat(scalar::EXP_MAX_X),
    );
    exp_core_v(c)
}

/// `scalar::tanh_f32` on eight lanes, except NaN lanes (garbage).
#[inline]
#[target_feature(enable = "avx2")]
fn tanh_v(x: __m256) -> __m256 {
    let sign_mask = splat(-0.0);
    let a = _mm256_andnot_ps(sign_mask, x);
    // |x| < TANH_SMALL: the odd polynomial.
    let z = _mm256_mul_ps(a, a);
    let c = scalar::TANH_T;
    let mut q = splat(c[0]);
    q = _mm256_add_ps(_mm256_mul_ps(q, z), splat(c[1]));
    q = _mm256_add_ps(_mm256_mul_ps(q, z), splat(c[2]));
    q = _mm256_add_ps(_mm256_mul_ps(q, z), splat(c[3]));
    q = _mm256_add_ps(_mm256_mul_ps(q, z), splat(c[4]));
    q = _mm256_mul_ps(q, z);
    q = _mm256_mul_ps(q, a);
    let small = _mm256_add_ps(q, a);
    // Otherwise 1 - 2 / (exp(2 min(|x|, TANH_CLAMP)) + 1).
    let b = _mm256_min_ps(a, splat(scalar::TANH_CLAMP));
    let e = exp_core_mid_v(_mm256_add_ps(b, b));
    let one = splat(1.0);
    let large = _mm256_sub_ps(one, _mm256_div_ps(splat(2.0), _mm256_add_ps(e, one)));
    let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(a, splat(scalar::TANH_SMALL));
    let t = _mm256_blendv_ps(large, small, is_small);
    _mm256_or_ps(t, _mm256_and_ps(x, sign_mask))
}

/// `scalar::gelu_tanh_f32` on eight lanes, except NaN lanes (garbage).
#[inline]
#[target_feature(enable = "avx2")]
fn gelu_tanh_v(x: __m256) -> __m256 {
    let x3 = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(splat(scalar::GELU_C), x), x), x);
    let u = _mm256_mul_ps(splat(scalar::GELU_K), _mm256_add_ps(x, x3));
    let t = tanh_v(u);
    let g = _mm256_mul_ps(_mm256_mul_ps(splat(0.5), x), _mm256_add_ps(splat(1.0), t));
    let neg_inf = _mm256_cmp_ps::<_CMP_EQ_OQ>(x, splat(f32::NEG_INFINITY));
    _mm256_blendv_ps(g, splat(-0.0), neg_inf)
}
