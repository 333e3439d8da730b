//! The recurrence's latent update and the elementwise math.

use core::arch::x86_64::*;

use super::{load_f32x16, splat, store_f32x16};
use crate::scalar;

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
// Elementwise math on sixteen lanes, bit for bit `scalar::exp_f32`,
// `tanh_f32` and `gelu_tanh_f32`: the operations of the AVX2 versions
// (multiply then add, never FMA; IEEE division; both branches of `tanh`
// computed and blended; NaN lanes keep their input).

/// Defines `$name(x: &mut [f32])`, applying the sixteen-lane `$f` to `x`
/// sixteen values at a time, NaN lanes left as they were; the tail goes
/// through `$f` in a zero-padded register.
macro_rules! map_f32x16 {
    ($name:ident, $f:ident) => {
        #[target_feature(enable = "avx512f")]
        pub(crate) fn $name(x: &mut [f32]) {
            let mut chunks = x.chunks_exact_mut(16);
            for c in &mut chunks {
                let c: &mut [f32; 16] = c.try_into().expect("16");
                let v = load_f32x16(c);
                store_f32x16(c, keep_nan($f(v), v));
            }
            let tail = chunks.into_remainder();
            if !tail.is_empty() {
                let mut buf = [0.0f32; 16];
                buf[..tail.len()].copy_from_slice(tail);
                let v = load_f32x16(&buf);
                store_f32x16(&mut buf, keep_nan($f(v), v));
                tail.copy_from_slice(&buf[..tail.len()]);
            }
        }
    };
}

map_f32x16!(exp_inplace, exp_v);
map_f32x16!(tanh_inplace, tanh_v);
map_f32x16!(gelu_tanh_inplace, gelu_tanh_v);

/// Lanes where `x` is NaN take `x`.
#[inline]
#[target_feature(enable = "avx512f")]
fn keep_nan(y: __m512, x: __m512) -> __m512 {
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x), y, x)
}

/// `scalar::exp_reduced` on sixteen lanes, each in `[EXP_MIN_X, EXP_MAX_X]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp_reduced_v(x: __m512) -> (__m512, __m512i) {
    let t = _mm512_add_ps(
        _mm512_mul_ps(x, splat(scalar::EXP_LOG2E)),
        splat(scalar::EXP_ROUND),
    );
    let n = _mm512_sub_epi32(
        _mm512_castps_si512(t),
        _mm512_set1_epi32(scalar::EXP_ROUND_BITS),
    );
    let nf = _mm512_sub_ps(t, splat(scalar::EXP_ROUND));
    let r = _mm512_sub_ps(x, _mm512_mul_ps(nf, splat(scalar::EXP_LN2_HI)));
    let r = _mm512_sub_ps(r, _mm512_mul_ps(nf, splat(scalar::EXP_LN2_LO)));
    let z = _mm512_mul_ps(r, r);
    let c = scalar::EXP_P;
    let mut p = splat(c[0]);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), splat(c[1]));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), splat(c[2]));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), splat(c[3]));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), splat(c[4]));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), splat(c[5]));
    p = _mm512_add_ps(_mm512_mul_ps(p, z), r);
    p = _mm512_add_ps(p, splat(1.0));
    (p, n)
}

/// `scalar::pow2` on sixteen lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn pow2_v(e: __m512i) -> __m512 {
    _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
        e,
        _mm512_set1_epi32(127),
    )))
}

/// `scalar::exp_core` on sixteen lanes, each in `[EXP_MIN_X, EXP_MAX_X]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp_core_v(x: __m512) -> __m512 {
    let (p, n) = exp_reduced_v(x);
    let n1 = _mm512_srai_epi32::<1>(n);
    _mm512_mul_ps(
        _mm512_mul_ps(p, pow2_v(n1)),
        pow2_v(_mm512_sub_epi32(n, n1)),
    )
}

/// `scalar::exp_core_mid` on sixteen lanes, each in `[1.25, 20]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp_core_mid_v(x: __m512) -> __m512 {
    let (p, n) = exp_reduced_v(x);
    _mm512_mul_ps(p, pow2_v(n))
}

/// `scalar::exp_f32` on sixteen lanes, except NaN lanes (garbage).
#[inline]
#[target_feature(enable = "avx512f")]
fn exp_v(x: __m512) -> __m512 {
    let c = _mm512_min_ps(
        _mm512_max_ps(x, splat(scalar::EXP_MIN_X)),
        splat(scalar::EXP_MAX_X),
    );
    exp_core_v(c)
}

/// `scalar::tanh_f32` on sixteen lanes, except NaN lanes (garbage).
#[inline]
#[target_feature(enable = "avx512f")]
fn tanh_v(x: __m512) -> __m512 {
    let xi = _mm512_castps_si512(x);
    let a = _mm512_castsi512_ps(_mm512_and_si512(xi, _mm512_set1_epi32(0x7FFF_FFFF)));
    // |x| < TANH_SMALL: the odd polynomial.
    let z = _mm512_mul_ps(a, a);
    let c = scalar::TANH_T;
    let mut q = splat(c[0]);
    q = _mm512_add_ps(_mm512_mul_ps(q, z), splat(c[1]));
    q = _mm512_add_ps(_mm512_mul_ps(q, z), splat(c[2]));
    q = _mm512_add_ps(_mm512_mul_ps(q, z), splat(c[3]));
    q = _mm512_add_ps(_mm512_mul_ps(q, z), splat(c[4]));
    q = _mm512_mul_ps(q, z);
    q = _mm512_mul_ps(q, a);
    let small = _mm512_add_ps(q, a);
    // Otherwise 1 - 2 / (exp(2 min(|x|, TANH_CLAMP)) + 1).
    let b = _mm512_min_ps(a, splat(scalar::TANH_CLAMP));
    let e = exp_core_mid_v(_mm512_add_ps(b, b));
    let one = splat(1.0);
    let large = _mm512_sub_ps(one, _mm512_div_ps(splat(2.0), _mm512_add_ps(e, one)));
    let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, splat(scalar::TANH_SMALL));
    let t = _mm512_castps_si512(_mm512_mask_blend_ps(is_small, large, small));
    let sign = _mm512_and_si512(xi, _mm512_set1_epi32(i32::MIN));
    _mm512_castsi512_ps(_mm512_or_si512(t, sign))
}

/// `scalar::gelu_tanh_f32` on sixteen lanes, except NaN lanes (garbage).
#[inline]
#[target_feature(enable = "avx512f")]
fn gelu_tanh_v(x: __m512) -> __m512 {
    let x3 = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(splat(scalar::GELU_C), x), x), x);
    let u = _mm512_mul_ps(splat(scalar::GELU_K), _mm512_add_ps(x, x3));
    let t = tanh_v(u);
    let g = _mm512_mul_ps(_mm512_mul_ps(splat(0.5), x), _mm512_add_ps(splat(1.0), t));
    let neg_inf = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(x, splat(f32::NEG_INFINITY));
    _mm512_mask_blend_ps(neg_inf, g, splat(-0.0))
}
