//! x86-64 quantized kernels for AVX-VNNI (`vpdpbusd` on 256-bit registers),
//! on top of AVX2 + FMA + F16C. The float kernels are the AVX2 ones.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes and adds groups of four
//! products into `i32` without saturation. Signed x signed products are made
//! exact with a bias: `sum w*y = sum (w + 128)*y - 128 * sum y`, both terms
//! computed by `vpdpbusd` (`w ^ 0x80` is `w + 128` as an unsigned byte). The
//! per-block sums then go through the same reference float order as the AVX2
//! path (lane `i % 8`, multiply then add).

use core::arch::x86_64::*;

use crate::block::{BlockQ4_0, BlockQ8_0};
use crate::x86_avx2::{
    accumulate, load_i8x32, nibbles, quant_dot, quant_matmat_small, quant_matvec, reduce_lanes,
    scales8, transpose_sum,
};

/// The eight `i32` partial sums of one `Q8_0` x `Q8_0` block, exact.
#[inline]
#[target_feature(enable = "avx2,avxvnni")]
fn sum_q8_0(w: &BlockQ8_0, x: &BlockQ8_0) -> __m256i {
    let bias = _mm256_set1_epi8(-128);
    let y = load_i8x32(&x.qs);
    let u = _mm256_xor_si256(load_i8x32(&w.qs), bias);
    let z = _mm256_setzero_si256();
    let biased = _mm256_dpbusd_avx_epi32(z, u, y);
    let correction = _mm256_dpbusd_avx_epi32(z, bias, y);
    _mm256_sub_epi32(biased, correction)
}

/// The eight `i32` partial sums of one `Q4_0` x `Q8_0` block, exact.
#[inline]
#[target_feature(enable = "avx2,avxvnni")]
fn sum_q4_0(w: &BlockQ4_0, x: &BlockQ8_0) -> __m256i {
    let y = load_i8x32(&x.qs);
    let z = _mm256_setzero_si256();
    let p = _mm256_dpbusd_avx_epi32(z, nibbles(w), y);
    let c = _mm256_dpbusd_avx_epi32(z, _mm256_set1_epi8(8), y);
    _mm256_sub_epi32(p, c)
}

#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
pub(crate) fn dot_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    quant_dot!(w, x, sum_q8_0, |b: &BlockQ8_0| b.d)
}

#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
pub(crate) fn dot_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    quant_dot!(w, x, sum_q4_0, |b: &BlockQ4_0| b.d)
}

#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
pub(crate) fn matvec_q8_0(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    quant_matvec!(
        w,
        stride,
        x,
        y,
        |b: &BlockQ8_0| load_i8x32(&b.qs),
        // 128 * y, the bias of the weights.
        |y: &__m256i| _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(-128), *y),
        |a: &BlockQ8_0, y: &__m256i| {
            let u = _mm256_xor_si256(load_i8x32(&a.qs), _mm256_set1_epi8(-128));
            _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, *y)
        },
        |b: &BlockQ8_0| b.d
    )
}

#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
pub(crate) fn matvec_q4_0(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    quant_matvec!(
        w,
        stride,
        x,
        y,
        |b: &BlockQ8_0| load_i8x32(&b.qs),
        // 8 * y, the offset of the nibbles.
        |y: &__m256i| _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), *y),
        |a: &BlockQ4_0, y: &__m256i| _mm256_dpbusd_avx_epi32(
            _mm256_setzero_si256(),
            nibbles(a),
            *y
        ),
        |b: &BlockQ4_0| b.d
    )
}

/// The AVX2 file's `quant_matmat_small!` for `Q8_0` weights (`nb <= 4`),
/// two tokens per reduction.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
pub(crate) fn matmat_q8_0_small(
    w: &[BlockQ8_0],
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
        // 128 * y, the bias of the weights.
        |y: &__m256i| _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(-128), *y),
        |a: &BlockQ8_0| _mm256_xor_si256(load_i8x32(&a.qs), _mm256_set1_epi8(-128)),
        |u: &__m256i, y: &__m256i| _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), *u, *y),
        |b: &BlockQ8_0| b.d
    );
    true
}

/// Like [`matmat_q8_0_small`] for `Q4_0` weights.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
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
        // 8 * y, the offset of the nibbles.
        |y: &__m256i| _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), *y),
        |a: &BlockQ4_0| nibbles(a),
        |q: &__m256i, y: &__m256i| _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), *q, *y),
        |b: &BlockQ4_0| b.d
    );
    true
}
