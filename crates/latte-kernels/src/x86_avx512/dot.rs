//! Quantized dot products, sixteen blocks per step.

use core::arch::x86_64::*;

use super::{
    dpbusd, halves, products, q4_nibble_pair, q8_biased_pair, q8_pair, scales16, transpose_sum16,
    ZERO_Q4, ZERO_Q8,
};
use crate::block::{BlockQ4_0, BlockQ8_0};
use crate::x86_avx2::reduce_lanes;

// ---------------------------------------------------------------------------
// Drivers, generic over the weight format: `wu(a, b)` is the unsigned operand
// of two weight blocks (`a` low, `b` high), `corr(y)` the correction that
// `vpdpbusd(wu, y)` leaves in, `dw` a block's scale bits.

/// Sixteen blocks of a dot product: `wb(k)`, `xb(k)` for `k < 16`, into the
/// eight accumulators as blocks `0..8` then `8..16`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_step<'a, W: 'a>(
    acc: __m256,
    wb: impl Fn(usize) -> &'a W,
    xb: impl Fn(usize) -> &'a BlockQ8_0,
    wu: &impl Fn(&W, &W) -> __m512i,
    corr: &impl Fn(__m512i) -> __m512i,
    dw: &impl Fn(&W) -> u16,
) -> __m256 {
    let s: [__m512i; 8] = core::array::from_fn(|j| {
        let k = (j / 4) * 8 + j % 4;
        let y = q8_pair(xb(k), xb(k + 4));
        _mm512_sub_epi32(dpbusd(wu(wb(k), wb(k + 4)), y), corr(y))
    });
    let p = products(
        transpose_sum16(s),
        scales16(core::array::from_fn(|k| dw(wb(k)))),
        scales16(core::array::from_fn(|k| xb(k).d)),
    );
    let (a, b) = halves(p);
    _mm256_add_ps(_mm256_add_ps(acc, a), b)
}

/// Dot product, sixteen blocks per step.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot<W>(
    w: &[W],
    x: &[BlockQ8_0],
    zero: &W,
    wu: impl Fn(&W, &W) -> __m512i,
    corr: impl Fn(__m512i) -> __m512i,
    dw: impl Fn(&W) -> u16,
) -> f32 {
    let n = w.len().min(x.len());
    let mut acc = _mm256_setzero_ps();
    let mut wc = w[..n].chunks_exact(16);
    let mut xc = x[..n].chunks_exact(16);
    for (wb, xb) in (&mut wc).zip(&mut xc) {
        acc = dot_step(acc, |k| &wb[k], |k| &xb[k], &wu, &corr, &dw);
    }
    let (wr, xr) = (wc.remainder(), xc.remainder());
    if !wr.is_empty() {
        acc = dot_step(
            acc,
            |k| wr.get(k).unwrap_or(zero),
            |k| xr.get(k).unwrap_or(&ZERO_Q8),
            &wu,
            &corr,
            &dw,
        );
    }
    reduce_lanes(acc)
}

// ---------------------------------------------------------------------------
// The four kernels.

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn dot_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    dot(
        w,
        x,
        &ZERO_Q8,
        |a: &BlockQ8_0, b: &BlockQ8_0| q8_biased_pair(a, b),
        |y| dpbusd(_mm512_set1_epi8(-128), y),
        |b| b.d,
    )
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn dot_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    dot(
        w,
        x,
        &ZERO_Q4,
        |a: &BlockQ4_0, b: &BlockQ4_0| q4_nibble_pair(a, b),
        |y| dpbusd(_mm512_set1_epi8(8), y),
        |b| b.d,
    )
}
