//! The elementwise math.

use core::arch::aarch64::*;

use super::load_f32x4;
use crate::scalar;

// ---------------------------------------------------------------------------
// Elementwise math, bit for bit `scalar::exp_f32`, `tanh_f32` and
// `gelu_tanh_f32`: the same operations on four lanes (`fmul` then `fadd`,
// never `fmla`; IEEE `fdiv`), both branches of `tanh` computed and
// selected, the special values selected at the end.

#[inline]
#[target_feature(enable = "neon")]
fn store_f32x4(v: &mut [f32; 4], x: float32x4_t) {
    // SAFETY: writes exactly the 4 floats of `v`; `st1` has no alignment requirement.
    unsafe { vst1q_f32(v.as_mut_ptr(), x) }
}

/// Defines `$name(x: &mut [f32])`, applying the four-lane `$f` to `x` four
/// values at a time; the tail goes through `$f` in a zero-padded register.
macro_rules! map_f32x4 {
    ($name:ident, $f:ident) => {
        #[target_feature(enable = "neon")]
        pub(crate) fn $name(x: &mut [f32]) {
            let mut chunks = x.chunks_exact_mut(4);
            for c in &mut chunks {
                let c: &mut [f32; 4] = c.try_into().expect("4");
                let v = $f(load_f32x4(c));
                store_f32x4(c, v);
            }
            let tail = chunks.into_remainder();
            if !tail.is_empty() {
                let mut buf = [0.0f32; 4];
                buf[..tail.len()].copy_from_slice(tail);
                let v = $f(load_f32x4(&buf));
                store_f32x4(&mut buf, v);
                tail.copy_from_slice(&buf[..tail.len()]);
            }
        }
    };
}

map_f32x4!(exp_inplace, exp_v);
map_f32x4!(tanh_inplace, tanh_v);
map_f32x4!(gelu_tanh_inplace, gelu_tanh_v);

/// `scalar::exp_reduced` on four lanes, each in `[EXP_MIN_X, EXP_MAX_X]`.
#[inline]
#[target_feature(enable = "neon")]
fn exp_reduced_v(x: float32x4_t) -> (float32x4_t, int32x4_t) {
    let t = vaddq_f32(
        vmulq_f32(x, vdupq_n_f32(scalar::EXP_LOG2E)),
        vdupq_n_f32(scalar::EXP_ROUND),
    );
    let n = vsubq_s32(
        vreinterpretq_s32_f32(t),
        vdupq_n_s32(scalar::EXP_ROUND_BITS),
    );
    let nf = vsubq_f32(t, vdupq_n_f32(scalar::EXP_ROUND));
    let r = vsubq_f32(x, vmulq_f32(nf, vdupq_n_f32(scalar::EXP_LN2_HI)));
    let r = vsubq_f32(r, vmulq_f32(nf, vdupq_n_f32(scalar::EXP_LN2_LO)));
    let z = vmulq_f32(r, r);
    let c = scalar::EXP_P;
    let mut p = vdupq_n_f32(c[0]);
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(c[1]));
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(c[2]));
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(c[3]));
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(c[4]));
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(c[5]));
    p = vaddq_f32(vmulq_f32(p, z), r);
    p = vaddq_f32(p, vdupq_n_f32(1.0));
    (p, n)
}

/// `scalar::pow2` on four lanes.
#[inline]
#[target_feature(enable = "neon")]
fn pow2_v(e: int32x4_t) -> float32x4_t {
    vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(e, vdupq_n_s32(127))))
}

/// `scalar::exp_core` on four lanes, each in `[EXP_MIN_X, EXP_MAX_X]`.
#[inline]
#[target_feature(enable = "neon")]
fn exp_core_v(x: float32x4_t) -> float32x4_t {
    let (p, n) = exp_reduced_v(x);
    let n1 = vshrq_n_s32::<1>(n);
    vmulq_f32(vmulq_f32(p, pow2_v(n1)), pow2_v(vsubq_s32(n, n1)))
}

/// `scalar::exp_core_mid` on four lanes, each in `[1.25, 20]`.
#[inline]
#[target_feature(enable = "neon")]
fn exp_core_mid_v(x: float32x4_t) -> float32x4_t {
    let (p, n) = exp_reduced_v(x);
    vmulq_f32(p, pow2_v(n))
}

/// Lanes where `x` is NaN take `x`.
#[inline]
#[target_feature(enable = "neon")]
fn keep_nan(y: float32x4_t, x: float32x4_t) -> float32x4_t {
    vbslq_f32(vceqq_f32(x, x), y, x)
}

/// `scalar::exp_f32` on four lanes.
#[inline]
#[target_feature(enable = "neon")]
fn exp_v(x: float32x4_t) -> float32x4_t {
    let c = vminq_f32(
        vmaxq_f32(x, vdupq_n_f32(scalar::EXP_MIN_X)),
        vdupq_n_f32(scalar::EXP_MAX_X),
    );
    keep_nan(exp_core_v(c), x)
}

/// `scalar::tanh_f32` on four lanes.
#[inline]
#[target_feature(enable = "neon")]
fn tanh_v(x: float32x4_t) -> float32x4_t {
    let a = vabsq_f32(x);
    // |x| < TANH_SMALL: the odd polynomial.
    let z = vmulq_f32(a, a);
    let c = scalar::TANH_T;
    let mut q = vdupq_n_f32(c[0]);
    q = vaddq_f32(vmulq_f32(q, z), vdupq_n_f32(c[1]));
    q = vaddq_f32(vmulq_f32(q, z), vdupq_n_f32(c[2]));
    q = vaddq_f32(vmulq_f32(q, z), vdupq_n_f32(c[3]));
    q = vaddq_f32(vmulq_f32(q, z), vdupq_n_f32(c[4]));
    q = vmulq_f32(q, z);
    q = vmulq_f32(q, a);
    let small = vaddq_f32(q, a);
    // Otherwise 1 - 2 / (exp(2 min(|x|, TANH_CLAMP)) + 1).
    let b = vminq_f32(a, vdupq_n_f32(scalar::TANH_CLAMP));
    let e = exp_core_mid_v(vaddq_f32(b, b));
    let one = vdupq_n_f32(1.0);
    let large = vsubq_f32(one, vdivq_f32(vdupq_n_f32(2.0), vaddq_f32(e, one)));
    let is_small = vcltq_f32(a, vdupq_n_f32(scalar::TANH_SMALL));
    let t = vbslq_f32(is_small, small, large);
    // The sign of x on |tanh x| (an odd function; tanh(-0) = -0).
    let sign = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x8000_0000));
    let t = vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(t), sign));
    keep_nan(t, x)
}

/// `scalar::gelu_tanh_f32` on four lanes.
#[inline]
#[target_feature(enable = "neon")]
fn gelu_tanh_v(x: float32x4_t) -> float32x4_t {
    let x3 = vmulq_f32(vmulq_f32(vmulq_f32(vdupq_n_f32(scalar::GELU_C), x), x), x);
    let u = vmulq_f32(vdupq_n_f32(scalar::GELU_K), vaddq_f32(x, x3));
    let t = tanh_v(u);
    let g = vmulq_f32(
        vmulq_f32(vdupq_n_f32(0.5), x),
        vaddq_f32(vdupq_n_f32(1.0), t),
    );
    let neg_inf = vceqq_f32(x, vdupq_n_f32(f32::NEG_INFINITY));
    keep_nan(vbslq_f32(neg_inf, vdupq_n_f32(-0.0), g), x)
}
