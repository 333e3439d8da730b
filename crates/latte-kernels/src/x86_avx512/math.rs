//! The recurrence's latent update and the elementwise math.

use core::arch::x86_64::*;

use super::{load_f32x16, splat, store_f32x16};
use crate::simd::{self, SimdF32};

// ---------------------------------------------------------------------------
// The recurrence's latent update, sixteen values of `Dh` at a time.

/// `scalar::latent_update` with the values `j .. j + 16` of `y` and `v` in
/// registers for a whole group of latents: the same multiplies and adds
/// for every value, in the same order of latents; a tail of `Dh % 16`
/// values goes through the scalar code.
#[target_feature(enable = "avx512f")]
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
    let full = dh.min(y.len()) / 16 * 16;
    for j in (0..full).step_by(16) {
        let vv = load_f32x16(v[j..j + 16].try_into().expect("16"));
        let yj: &mut [f32; 16] = (&mut y[j..j + 16]).try_into().expect("16");
        let mut acc = load_f32x16(yj);
        for l in 0..g {
            let sl: &mut [f32; 16] = (&mut s[l * dh + j..l * dh + j + 16])
                .try_into()
                .expect("16");
            let sv = _mm512_add_ps(
                _mm512_mul_ps(load_f32x16(sl), splat(r[l])),
                _mm512_mul_ps(splat(a[l]), vv),
            );
            store_f32x16(sl, sv);
            acc = _mm512_add_ps(acc, _mm512_mul_ps(splat(w[l]), sv));
        }
        store_f32x16(yj, acc);
    }
    if full < dh {
        // The values past the last whole sixteen (of `s` rows; `y` may be
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
// `gelu_tanh_f32`: `crate::simd` on sixteen lanes.

/// The AVX-512 token of `crate::simd` (made only by [`Avx512::new`], a
/// function with AVX512F enabled: a value proves the CPU has it).
#[derive(Clone, Copy)]
struct Avx512(());

impl Avx512 {
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn new() -> Avx512 {
        Avx512(())
    }
}

/// `unsafe { $e }` for an intrinsic of an instruction set an `Avx512` proves.
macro_rules! avx512 {
    ($e:expr) => {
        // SAFETY: an `Avx512` exists only on a CPU with AVX512F (`Avx512::new`).
        unsafe { $e }
    };
}

impl SimdF32 for Avx512 {
    type F = __m512;
    type I = __m512i;
    type M = __mmask16;
    const LANES: usize = 16;
    type Buf = [f32; 16];

    #[inline(always)]
    fn load(self, v: &[f32]) -> __m512 {
        let v: &[f32; 16] = v[..16].try_into().expect("16");
        avx512!(load_f32x16(v))
    }
    #[inline(always)]
    fn store(self, v: &mut [f32], x: __m512) {
        let v: &mut [f32; 16] = (&mut v[..16]).try_into().expect("16");
        avx512!(store_f32x16(v, x))
    }
    #[inline(always)]
    fn splat(self, v: f32) -> __m512 {
        avx512!(splat(v))
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        avx512!(_mm512_add_ps(a, b))
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        avx512!(_mm512_sub_ps(a, b))
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        avx512!(_mm512_mul_ps(a, b))
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        avx512!(_mm512_div_ps(a, b))
    }
    #[inline(always)]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        avx512!(_mm512_min_ps(a, b))
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        avx512!(_mm512_max_ps(a, b))
    }
    #[inline(always)]
    fn abs(self, a: __m512) -> __m512 {
        avx512!(_mm512_abs_ps(a))
    }
    #[inline(always)]
    fn or_sign(self, t: __m512, x: __m512) -> __m512 {
        avx512!({
            let sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(i32::MIN));
            _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sign))
        })
    }
    #[inline(always)]
    fn lt(self, a: __m512, b: __m512) -> __mmask16 {
        avx512!(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b))
    }
    #[inline(always)]
    fn eq(self, a: __m512, b: __m512) -> __mmask16 {
        avx512!(_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b))
    }
    #[inline(always)]
    fn select(self, m: __mmask16, yes: __m512, no: __m512) -> __m512 {
        avx512!(_mm512_mask_blend_ps(m, no, yes))
    }
    #[inline(always)]
    fn keep_nan(self, y: __m512, x: __m512) -> __m512 {
        avx512!(_mm512_mask_blend_ps(
            _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x),
            y,
            x
        ))
    }
    #[inline(always)]
    fn f_to_bits(self, a: __m512) -> __m512i {
        avx512!(_mm512_castps_si512(a))
    }
    #[inline(always)]
    fn bits_to_f(self, a: __m512i) -> __m512 {
        avx512!(_mm512_castsi512_ps(a))
    }
    #[inline(always)]
    fn splat_i(self, v: i32) -> __m512i {
        avx512!(_mm512_set1_epi32(v))
    }
    #[inline(always)]
    fn add_i(self, a: __m512i, b: __m512i) -> __m512i {
        avx512!(_mm512_add_epi32(a, b))
    }
    #[inline(always)]
    fn sub_i(self, a: __m512i, b: __m512i) -> __m512i {
        avx512!(_mm512_sub_epi32(a, b))
    }
    #[inline(always)]
    fn shl23_i(self, a: __m512i) -> __m512i {
        avx512!(_mm512_slli_epi32::<23>(a))
    }
    #[inline(always)]
    fn sra1_i(self, a: __m512i) -> __m512i {
        avx512!(_mm512_srai_epi32::<1>(a))
    }
}

/// `scalar::exp_inplace`, sixteen values at a time.
#[target_feature(enable = "avx512f")]
pub(crate) fn exp_inplace(x: &mut [f32]) {
    simd::map::<_, simd::Exp>(Avx512::new(), x)
}

/// `scalar::tanh_inplace`, sixteen values at a time.
#[target_feature(enable = "avx512f")]
pub(crate) fn tanh_inplace(x: &mut [f32]) {
    simd::map::<_, simd::Tanh>(Avx512::new(), x)
}

/// `scalar::gelu_tanh_inplace`, sixteen values at a time.
#[target_feature(enable = "avx512f")]
pub(crate) fn gelu_tanh_inplace(x: &mut [f32]) {
    simd::map::<_, simd::GeluTanh>(Avx512::new(), x)
}
