//! The elementwise math.

use core::arch::aarch64::*;

use super::load_f32x4;
use crate::simd::{self, SimdF32};

// ---------------------------------------------------------------------------
// Elementwise math, bit for bit `scalar::exp_f32`, `tanh_f32` and
// `gelu_tanh_f32`: `crate::simd` on four lanes (`fmul` then `fadd`, never
// `fmla`; IEEE `fdiv`).

#[inline]
#[target_feature(enable = "neon")]
fn store_f32x4(v: &mut [f32; 4], x: float32x4_t) {
    // SAFETY: writes exactly the 4 floats of `v`; `st1` has no alignment requirement.
    unsafe { vst1q_f32(v.as_mut_ptr(), x) }
}

/// The NEON token of `crate::simd` (made only by [`Neon::new`], a function
/// with NEON enabled: a value proves the CPU has it).
#[derive(Clone, Copy)]
struct Neon(());

impl Neon {
    #[inline]
    #[target_feature(enable = "neon")]
    fn new() -> Neon {
        Neon(())
    }
}

/// `unsafe { $e }` for an intrinsic of an instruction set a `Neon` proves.
macro_rules! neon {
    ($e:expr) => {
        // SAFETY: a `Neon` exists only on a CPU with NEON (`Neon::new`).
        unsafe { $e }
    };
}

impl SimdF32 for Neon {
    type F = float32x4_t;
    type I = int32x4_t;
    type M = uint32x4_t;
    const LANES: usize = 4;
    type Buf = [f32; 4];

    #[inline(always)]
    fn load(self, v: &[f32]) -> float32x4_t {
        neon!(load_f32x4(&v[..4]))
    }
    #[inline(always)]
    fn store(self, v: &mut [f32], x: float32x4_t) {
        neon!(store_f32x4((&mut v[..4]).try_into().expect("4"), x))
    }
    #[inline(always)]
    fn splat(self, v: f32) -> float32x4_t {
        neon!(vdupq_n_f32(v))
    }
    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        neon!(vaddq_f32(a, b))
    }
    #[inline(always)]
    fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        neon!(vsubq_f32(a, b))
    }
    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        neon!(vmulq_f32(a, b))
    }
    #[inline(always)]
    fn div(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        neon!(vdivq_f32(a, b))
    }
    #[inline(always)]
    fn min(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        neon!(vminq_f32(a, b))
    }
    #[inline(always)]
    fn max(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        neon!(vmaxq_f32(a, b))
    }
    #[inline(always)]
    fn abs(self, a: float32x4_t) -> float32x4_t {
        neon!(vabsq_f32(a))
    }
    #[inline(always)]
    fn or_sign(self, t: float32x4_t, x: float32x4_t) -> float32x4_t {
        neon!({
            let sign = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x8000_0000));
            vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(t), sign))
        })
    }
    #[inline(always)]
    fn lt(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        neon!(vcltq_f32(a, b))
    }
    #[inline(always)]
    fn eq(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        neon!(vceqq_f32(a, b))
    }
    #[inline(always)]
    fn select(self, m: uint32x4_t, yes: float32x4_t, no: float32x4_t) -> float32x4_t {
        neon!(vbslq_f32(m, yes, no))
    }
    #[inline(always)]
    fn keep_nan(self, y: float32x4_t, x: float32x4_t) -> float32x4_t {
        neon!(vbslq_f32(vceqq_f32(x, x), y, x))
    }
    #[inline(always)]
    fn f_to_bits(self, a: float32x4_t) -> int32x4_t {
        neon!(vreinterpretq_s32_f32(a))
    }
    #[inline(always)]
    fn bits_to_f(self, a: int32x4_t) -> float32x4_t {
        neon!(vreinterpretq_f32_s32(a))
    }
    #[inline(always)]
    fn splat_i(self, v: i32) -> int32x4_t {
        neon!(vdupq_n_s32(v))
    }
    #[inline(always)]
    fn add_i(self, a: int32x4_t, b: int32x4_t) -> int32x4_t {
        neon!(vaddq_s32(a, b))
    }
    #[inline(always)]
    fn sub_i(self, a: int32x4_t, b: int32x4_t) -> int32x4_t {
        neon!(vsubq_s32(a, b))
    }
    #[inline(always)]
    fn shl23_i(self, a: int32x4_t) -> int32x4_t {
        neon!(vshlq_n_s32::<23>(a))
    }
    #[inline(always)]
    fn sra1_i(self, a: int32x4_t) -> int32x4_t {
        neon!(vshrq_n_s32::<1>(a))
    }
}

/// `scalar::exp_inplace`, four values at a time.
#[target_feature(enable = "neon")]
pub(crate) fn exp_inplace(x: &mut [f32]) {
    simd::map::<_, simd::Exp>(Neon::new(), x)
}

/// `scalar::tanh_inplace`, four values at a time.
#[target_feature(enable = "neon")]
pub(crate) fn tanh_inplace(x: &mut [f32]) {
    simd::map::<_, simd::Tanh>(Neon::new(), x)
}

/// `scalar::gelu_tanh_inplace`, four values at a time.
#[target_feature(enable = "neon")]
pub(crate) fn gelu_tanh_inplace(x: &mut [f32]) {
    simd::map::<_, simd::GeluTanh>(Neon::new(), x)
}
