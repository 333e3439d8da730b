//! The activation quantizer.

use core::arch::aarch64::*;

use super::load_f32x4;
use crate::block::{BlockQ8_0, QK};
use crate::scalar;

// ---------------------------------------------------------------------------
// Activation quantizer, bit for bit `scalar::quantize_block_q8_0`.

#[target_feature(enable = "neon")]
pub(crate) fn quantize_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    for (b, xs) in y.iter_mut().zip(x.chunks_exact(QK)) {
        let xs: &[f32; QK] = xs.try_into().expect("32");
        let v: [float32x4_t; 8] = core::array::from_fn(|k| load_f32x4(&xs[4 * k..4 * k + 4]));
        let m: [float32x4_t; 4] =
            core::array::from_fn(|k| vmaxq_f32(vabsq_f32(v[2 * k]), vabsq_f32(v[2 * k + 1])));
        let amax = vmaxvq_f32(vmaxq_f32(vmaxq_f32(m[0], m[1]), vmaxq_f32(m[2], m[3])));
        let (d, id) = scalar::q8_0_scale(amax);
        if !id.is_finite() {
            // `id` overflowed (tiny block): the scalar code defines the result.
            *b = scalar::quantize_block_q8_0(xs);
            continue;
        }
        // |x * id| <= 127 * (1 + 2^-20) here; `frinta` is C's `roundf`
        // (ties away from zero), then exact conversion and saturating narrows.
        let q: [int32x4_t; 8] =
            core::array::from_fn(|k| vcvtq_s32_f32(vrndaq_f32(vmulq_n_f32(v[k], id))));
        let h: [int16x8_t; 4] =
            core::array::from_fn(|k| vcombine_s16(vqmovn_s32(q[2 * k]), vqmovn_s32(q[2 * k + 1])));
        let lo = vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1]));
        let hi = vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3]));
        b.d = scalar::f32_to_f16(d);
        let (q0, q1) = b.qs.split_at_mut(16);
        // SAFETY: each store writes exactly the 16 bytes of its half of `qs`.
        unsafe {
            vst1q_s8(q0.as_mut_ptr(), lo);
            vst1q_s8(q1.as_mut_ptr(), hi);
        }
    }
}
