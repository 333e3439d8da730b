//! The recurrence's latent update and the elementwise math.

use core::arch::x86_64::*;

use super::load_f32x8;
use crate::simd::{self, SimdF32};

// ---------------------------------------------------------------------------
// The recurrence's latent update, eight values of `Dh` at a time.

/// `scalar::latent_update` with the values `j .. j + 8` of `y` and `v` in
/// registers for a whole group of latents: the same multiplies and adds
/// (never FMA) for every value, in the same order of latents; a tail of
/// `Dh % 8` values goes through the scalar code.
#[target_feature(enable = "avx2")]
pub(crate) fn latent_update(
    s: &mut [f32],
    v: &[f32],
    r: &[f32],
    a: &[f32],
    w: &[f32],
    y: &mut [f32],
) {
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
// `gelu_tanh_f32`: `crate::simd` on eight lanes.

#[inline]
#[target_feature(enable = "avx2")]
fn store_f32x8(v: &mut [f32; 8], x: __m256) {
    // SAFETY: writes exactly the 8 floats of `v`; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_ps(v.as_mut_ptr(), x) }
}

/// The AVX2 token of `crate::simd` (made only by [`Avx2::new`], a function
/// with AVX2 enabled: a value proves the CPU has it).
#[derive(Clone, Copy)]
struct Avx2(());

impl Avx2 {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new() -> Avx2 {
        Avx2(())
    }
}

/// `unsafe { $e }` for an intrinsic of an instruction set an `Avx2` proves.
macro_rules! avx2 {
    ($e:expr) => {
        // SAFETY: an `Avx2` exists only on a CPU with AVX2 (`Avx2::new`).
        unsafe { $e }
    };
}

impl SimdF32 for Avx2 {
    type F = __m256;
    type I = __m256i;
    type M = __m256;
    const LANES: usize = 8;
    type Buf = [f32; 8];

    #[inline(always)]
    fn load(self, v: &[f32]) -> __m256 {
        let v: &[f32; 8] = v[..8].try_into().expect("8");
        avx2!(load_f32x8(v))
    }
    #[inline(always)]
    fn store(self, v: &mut [f32], x: __m256) {
        let v: &mut [f32; 8] = (&mut v[..8]).try_into().expect("8");
        avx2!(store_f32x8(v, x))
    }
    #[inline(always)]
    fn splat(self, v: f32) -> __m256 {
        avx2!(_mm256_set1_ps(v))
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        avx2!(_mm256_add_ps(a, b))
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        avx2!(_mm256_sub_ps(a, b))
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        avx2!(_mm256_mul_ps(a, b))
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        avx2!(_mm256_div_ps(a, b))
    }
    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        avx2!(_mm256_min_ps(a, b))
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        avx2!(_mm256_max_ps(a, b))
    }
    #[inline(always)]
    fn abs(self, a: __m256) -> __m256 {
        avx2!(_mm256_andnot_ps(_mm256_set1_ps(-0.0), a))
    }
    #[inline(always)]
    fn or_sign(self, t: __m256, x: __m256) -> __m256 {
        avx2!(_mm256_or_ps(t, _mm256_and_ps(x, _mm256_set1_ps(-0.0))))
    }
    #[inline(always)]
    fn lt(self, a: __m256, b: __m256) -> __m256 {
        avx2!(_mm256_cmp_ps::<_CMP_LT_OQ>(a, b))
    }
    #[inline(always)]
    fn eq(self, a: __m256, b: __m256) -> __m256 {
        avx2!(_mm256_cmp_ps::<_CMP_EQ_OQ>(a, b))
    }
    #[inline(always)]
    fn select(self, m: __m256, yes: __m256, no: __m256) -> __m256 {
        avx2!(_mm256_blendv_ps(no, yes, m))
    }
    /// Behind a test of the whole register: an unconditional blend with the
    /// loaded `x` becomes a masked store (`vmaskmovps`), which is slow on
    /// AMD cores.
    #[inline(always)]
    fn keep_nan(self, y: __m256, x: __m256) -> __m256 {
        let nan = avx2!(_mm256_cmp_ps::<_CMP_UNORD_Q>(x, x));
        if avx2!(_mm256_movemask_ps(nan)) == 0 {
            y
        } else {
            avx2!(_mm256_blendv_ps(y, x, nan))
        }
    }
    #[inline(always)]
    fn f_to_bits(self, a: __m256) -> __m256i {
        avx2!(_mm256_castps_si256(a))
    }
    #[inline(always)]
    fn bits_to_f(self, a: __m256i) -> __m256 {
        avx2!(_mm256_castsi256_ps(a))
    }
    #[inline(always)]
    fn splat_i(self, v: i32) -> __m256i {
        avx2!(_mm256_set1_epi32(v))
    }
    #[inline(always)]
    fn add_i(self, a: __m256i, b: __m256i) -> __m256i {
        avx2!(_mm256_add_epi32(a, b))
    }
    #[inline(always)]
    fn sub_i(self, a: __m256i, b: __m256i) -> __m256i {
        avx2!(_mm256_sub_epi32(a, b))
    }
    #[inline(always)]
    fn shl23_i(self, a: __m256i) -> __m256i {
        avx2!(_mm256_slli_epi32::<23>(a))
    }
    #[inline(always)]
    fn sra1_i(self, a: __m256i) -> __m256i {
        avx2!(_mm256_srai_epi32::<1>(a))
    }
}

/// `scalar::exp_inplace`, eight values at a time.
#[target_feature(enable = "avx2")]
pub(crate) fn exp_inplace(x: &mut [f32]) {
    simd::map::<_, simd::Exp>(Avx2::new(), x)
}

/// `scalar::tanh_inplace`, eight values at a time.
#[target_feature(enable = "avx2")]
pub(crate) fn tanh_inplace(x: &mut [f32]) {
    simd::map::<_, simd::Tanh>(Avx2::new(), x)
}

/// `scalar::gelu_tanh_inplace`, eight values at a time.
#[target_feature(enable = "avx2")]
pub(crate) fn gelu_tanh_inplace(x: &mut [f32]) {
    simd::map::<_, simd::GeluTanh>(Avx2::new(), x)
}
