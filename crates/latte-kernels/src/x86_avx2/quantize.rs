//! The activation quantizer.

use core::arch::x86_64::*;

use super::{load_f32x8, store_i8x32};
use crate::block::{BlockQ8_0, QK};
use crate::scalar;

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
pub(crate) fn quantize_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
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
