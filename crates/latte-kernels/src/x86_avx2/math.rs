//! The recurrence's latent update and the elementwise math.

use core::arch::x86_64::*;

use super::load_f32x8;
use crate::scalar;

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
// `gelu_tanh_f32`: the same operations on eight lanes (multiply then add,
// never FMA; IEEE division), both branches of `tanh` computed and blended,
// the special values selected at the end.

#[inline]
#[target_feature(enable = "avx2")]
fn store_f32x8(v: &mut [f32; 8], x: __m256) {
    // SAFETY: writes exactly the 8 floats of `v`; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_ps(v.as_mut_ptr(), x) }
}

/// Defines `$name(x: &mut [f32])`, applying the eight-lane `$f` to `x` eight
/// values at a time, NaN lanes left as they were ([`keep_nan`]); the tail
/// goes through `$f` in a zero-padded register.
macro_rules! map_f32x8 {
    ($name:ident, $f:ident) => {
        #[target_feature(enable = "avx2")]
        pub(crate) fn $name(x: &mut [f32]) {
            let mut chunks = x.chunks_exact_mut(8);
            for c in &mut chunks {
                let c: &mut [f32; 8] = c.try_into().expect("8");
                let v = load_f32x8(c);
                store_f32x8(c, keep_nan($f(v), v));
            }
            let tail = chunks.into_remainder();
            if !tail.is_empty() {
                let mut buf = [0.0f32; 8];
                buf[..tail.len()].copy_from_slice(tail);
                let v = load_f32x8(&buf);
                store_f32x8(&mut buf, keep_nan($f(v), v));
                tail.copy_from_slice(&buf[..tail.len()]);
            }
        }
    };
}

map_f32x8!(exp_inplace, exp_v);
map_f32x8!(tanh_inplace, tanh_v);
map_f32x8!(gelu_tanh_inplace, gelu_tanh_v);

#[inline]
#[target_feature(enable = "avx2")]
fn splat(v: f32) -> __m256 {
    _mm256_set1_ps(v)
}

/// `scalar::exp_reduced` on eight lanes, each in `[EXP_MIN_X, EXP_MAX_X]`.
#[inline]
#[target_feature(enable = "avx2")]
fn exp_reduced_v(x: __m256) -> (__m256, __m256i) {
    let t = _mm256_add_ps(
        _mm256_mul_ps(x, splat(scalar::EXP_LOG2E)),
        splat(scalar::EXP_ROUND),
    );
    let n = _mm256_sub_epi32(
        _mm256_castps_si256(t),
        _mm256_set1_epi32(scalar::EXP_ROUND_BITS),
    );
    let nf = _mm256_sub_ps(t, splat(scalar::EXP_ROUND));
    let r = _mm256_sub_ps(x, _mm256_mul_ps(nf, splat(scalar::EXP_LN2_HI)));
    let r = _mm256_sub_ps(r, _mm256_mul_ps(nf, splat(scalar::EXP_LN2_LO)));
    let z = _mm256_mul_ps(r, r);
    let c = scalar::EXP_P;
    let mut p = splat(c[0]);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), splat(c[1]));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), splat(c[2]));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), splat(c[3]));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), splat(c[4]));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), splat(c[5]));
    p = _mm256_add_ps(_mm256_mul_ps(p, z), r);
    p = _mm256_add_ps(p, splat(1.0));
    (p, n)
}

/// `scalar::pow2` on eight lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn pow2_v(e: __m256i) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        e,
        _mm256_set1_epi32(127),
    )))
}

/// `scalar::exp_core` on eight lanes, each in `[EXP_MIN_X, EXP_MAX_X]`.
#[inline]
#[target_feature(enable = "avx2")]
fn exp_core_v(x: __m256) -> __m256 {
    let (p, n) = exp_reduced_v(x);
    let n1 = _mm256_srai_epi32::<1>(n);
    _mm256_mul_ps(
        _mm256_mul_ps(p, pow2_v(n1)),
        pow2_v(_mm256_sub_epi32(n, n1)),
    )
}

/// `scalar::exp_core_mid` on eight lanes, each in `[1.25, 20]`.
#[inline]
#[target_feature(enable = "avx2")]
fn exp_core_mid_v(x: __m256) -> __m256 {
    let (p, n) = exp_reduced_v(x);
    _mm256_mul_ps(p, pow2_v(n))
}

/// Lanes where `x` is NaN take `x` (the specification returns a NaN input
/// unchanged). Behind a test of the whole register: an unconditional blend
/// with the loaded `x` becomes a masked store (`vmaskmovps`), which is slow
/// on AMD cores.
#[inline]
#[target_feature(enable = "avx2")]
fn keep_nan(y: __m256, x: __m256) -> __m256 {
    let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x);
    if _mm256_movemask_ps(nan) == 0 {
        y
    } else {
        _mm256_blendv_ps(y, x, nan)
    }
}

/// `scalar::exp_f32` on eight lanes, except NaN lanes (garbage).
#[inline]
#[target_feature(enable = "avx2")]
fn exp_v(x: __m256) -> __m256 {
    let c = _mm256_min_ps(
        _mm256_max_ps(x, splat(scalar::EXP_MIN_X)),
        splat(scalar::EXP_MAX_X),
    );
    exp_core_v(c)
}

/// `scalar::tanh_f32` on eight lanes, except NaN lanes (garbage).
#[inline]
#[target_feature(enable = "avx2")]
fn tanh_v(x: __m256) -> __m256 {
    let sign_mask = splat(-0.0);
    let a = _mm256_andnot_ps(sign_mask, x);
    // |x| < TANH_SMALL: the odd polynomial.
    let z = _mm256_mul_ps(a, a);
    let c = scalar::TANH_T;
    let mut q = splat(c[0]);
    q = _mm256_add_ps(_mm256_mul_ps(q, z), splat(c[1]));
    q = _mm256_add_ps(_mm256_mul_ps(q, z), splat(c[2]));
    q = _mm256_add_ps(_mm256_mul_ps(q, z), splat(c[3]));
    q = _mm256_add_ps(_mm256_mul_ps(q, z), splat(c[4]));
    q = _mm256_mul_ps(q, z);
    q = _mm256_mul_ps(q, a);
    let small = _mm256_add_ps(q, a);
    // Otherwise 1 - 2 / (exp(2 min(|x|, TANH_CLAMP)) + 1).
    let b = _mm256_min_ps(a, splat(scalar::TANH_CLAMP));
    let e = exp_core_mid_v(_mm256_add_ps(b, b));
    let one = splat(1.0);
    let large = _mm256_sub_ps(one, _mm256_div_ps(splat(2.0), _mm256_add_ps(e, one)));
    let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(a, splat(scalar::TANH_SMALL));
    let t = _mm256_blendv_ps(large, small, is_small);
    _mm256_or_ps(t, _mm256_and_ps(x, sign_mask))
}

/// `scalar::gelu_tanh_f32` on eight lanes, except NaN lanes (garbage).
#[inline]
#[target_feature(enable = "avx2")]
fn gelu_tanh_v(x: __m256) -> __m256 {
    let x3 = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(splat(scalar::GELU_C), x), x), x);
    let u = _mm256_mul_ps(splat(scalar::GELU_K), _mm256_add_ps(x, x3));
    let t = tanh_v(u);
    let g = _mm256_mul_ps(_mm256_mul_ps(splat(0.5), x), _mm256_add_ps(splat(1.0), t));
    let neg_inf = _mm256_cmp_ps::<_CMP_EQ_OQ>(x, splat(f32::NEG_INFINITY));
    _mm256_blendv_ps(g, splat(-0.0), neg_inf)
}
