//! The activation quantizer.

use core::arch::x86_64::*;

use super::{load_f32x16, splat, store_f32x16};
use crate::block::BlockQ8_0;
use crate::scalar;
use crate::x86_avx2::store_i8x32;

// ---------------------------------------------------------------------------
// Activation quantizer, bit for bit `scalar::quantize_block_q8_0`.

/// `roundf` of sixteen floats of magnitude below 2^23: truncate, then step
/// away from zero when the (exact) remainder is at least one half (the AVX2
/// `round_half_away`).
#[inline]
#[target_feature(enable = "avx512f")]
fn round_half_away_v(r: __m512) -> __m512 {
    let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(r);
    let diff = _mm512_sub_ps(r, t);
    let one = splat(1.0);
    let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(diff, splat(0.5));
    let down = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(diff, splat(-0.5));
    let t = _mm512_mask_add_ps(t, up, t, one);
    _mm512_mask_sub_ps(t, down, t, one)
}

/// `|x|` of sixteen floats.
#[inline]
#[target_feature(enable = "avx512f")]
fn abs_v(x: __m512) -> __m512 {
    _mm512_castsi512_ps(_mm512_and_si512(
        _mm512_castps_si512(x),
        _mm512_set1_epi32(0x7FFF_FFFF),
    ))
}

/// Sixteen blocks at a time: first each block's `amax` (a maximum, so the
/// order of the fold does not matter for finite inputs), then `d`, `id` and
/// the `f16` scales of the sixteen blocks with one vector division each
/// (IEEE division: the scalar bits), then the quants block by block. A block
/// whose `id` is not finite (tiny values) goes through the scalar code, as
/// in the AVX2 version.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
pub(crate) fn quantize_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    for (ys, xs) in y.chunks_mut(16).zip(x.chunks(16 * 32)) {
        let mut am = [0.0f32; 16];
        for (a, b) in am.iter_mut().zip(xs.chunks_exact(32)) {
            let v0 = load_f32x16(b[..16].try_into().expect("16"));
            let v1 = load_f32x16(b[16..].try_into().expect("16"));
            let m = _mm512_max_ps(abs_v(v0), abs_v(v1));
            let m8 = _mm256_max_ps(
                _mm512_castps512_ps256(m),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(m))),
            );
            let m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps::<1>(m8));
            let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            let m1 = _mm_max_ss(m2, _mm_movehdup_ps(m2));
            *a = _mm_cvtss_f32(m1);
        }
        // `scalar::q8_0_scale` on sixteen lanes.
        let d = _mm512_div_ps(load_f32x16(&am), splat(127.0));
        let nonzero = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(d, _mm512_setzero_ps());
        let id = _mm512_maskz_div_ps(nonzero, splat(1.0), d);
        let mut ids = [0.0f32; 16];
        store_f32x16(&mut ids, id);
        // f16 with round to nearest even, as `half` does in the scalar code.
        let dh = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(d);
        let mut ds = [0u16; 16];
        // SAFETY: writes exactly the 32 bytes of `ds`; `storeu` has no
        // alignment requirement.
        unsafe { _mm256_storeu_si256(ds.as_mut_ptr().cast(), dh) };
        for (((blk, b), &id), &d) in ys.iter_mut().zip(xs.chunks_exact(32)).zip(&ids).zip(&ds) {
            let b: &[f32; 32] = b.try_into().expect("32");
            if !id.is_finite() {
                // `id` overflowed (tiny block): the scalar code defines the
                // (saturating) result.
                *blk = scalar::quantize_block_q8_0(b);
                continue;
            }
            // With a finite `id`, |x * id| <= 127 * (1 + 2^-20): in i8 range
            // after rounding (the narrowing saturates anyway).
            let idv = splat(id);
            let q0 = _mm512_cvtps_epi32(round_half_away_v(_mm512_mul_ps(
                load_f32x16(b[..16].try_into().expect("16")),
                idv,
            )));
            let q1 = _mm512_cvtps_epi32(round_half_away_v(_mm512_mul_ps(
                load_f32x16(b[16..].try_into().expect("16")),
                idv,
            )));
            let p8 = _mm256_inserti128_si256::<1>(
                _mm256_castsi128_si256(_mm512_cvtsepi32_epi8(q0)),
                _mm512_cvtsepi32_epi8(q1),
            );
            blk.d = d;
            store_i8x32(&mut blk.qs, p8);
        }
    }
}
