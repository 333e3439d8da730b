//! The window attention's scores and weighted sums over a block of ring
//! rows ([`crate::scalar::window_dots`], [`crate::scalar::window_sums`]),
//! bit for bit: the same products and sums in the same order, eight lanes
//! at a time.
//!
//! * `window_dots`: lane `i` of one register is the scalar partial sum
//!   `s[i]` (`s[j % 8] += q[j] * k[j]`, multiply then add, no FMA); eight
//!   rows' registers are transposed and summed lane by lane in the scalar
//!   order (the last `n % 8` elements, if any, run as in the scalar code).
//! * `window_sums`: columns of the accumulator stay in registers while
//!   every row adds `p[i] * v[j]` to them in row order: per element, the
//!   scalar sequence of operations.
//!
//! `f16` rows widen with `vcvtph2ps` and `i8` rows with `vpmovsxbd` +
//! `vcvtdq2ps`, both exact (and equal to [`crate::scalar::widen_f16`] and
//! `f32::from`).

use core::arch::x86_64::*;

use super::load_f32x8;
use crate::scalar::{dot8_sum, RingRows};

/// Eight elements of `rows` from `at`, widened (the caller keeps `at + 8`
/// within the slice).
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn load8(rows: RingRows<'_>, at: usize) -> __m256 {
    match rows {
        RingRows::F32(r) => load_f32x8(r[at..at + 8].try_into().expect("8")),
        RingRows::F16(r) => {
            let h: &[u16; 8] = r[at..at + 8].try_into().expect("8");
            // SAFETY: reads exactly the 16 bytes of `h`; no alignment needed.
            _mm256_cvtph_ps(unsafe { _mm_loadu_si128(h.as_ptr().cast()) })
        }
        RingRows::I8(r) => {
            let b: &[i8; 8] = r[at..at + 8].try_into().expect("8");
            // SAFETY: reads exactly the 8 bytes of `b`; no alignment needed.
            let v = unsafe { _mm_loadl_epi64(b.as_ptr().cast()) };
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))
        }
    }
}

/// `out[l][r] = rows[r][l]`: an 8 x 8 transpose of floats.
#[inline]
#[target_feature(enable = "avx2")]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    // Columns 0|4, 1|5 of rows 0-3 and of rows 4-7, then 2|6, 3|7.
    let c04a = _mm256_shuffle_ps::<0x44>(t0, t2);
    let c15a = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let c26a = _mm256_shuffle_ps::<0x44>(t1, t3);
    let c37a = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let c04b = _mm256_shuffle_ps::<0x44>(t4, t6);
    let c15b = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let c26b = _mm256_shuffle_ps::<0x44>(t5, t7);
    let c37b = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(c04a, c04b),
        _mm256_permute2f128_ps::<0x20>(c15a, c15b),
        _mm256_permute2f128_ps::<0x20>(c26a, c26b),
        _mm256_permute2f128_ps::<0x20>(c37a, c37b),
        _mm256_permute2f128_ps::<0x31>(c04a, c04b),
        _mm256_permute2f128_ps::<0x31>(c15a, c15b),
        _mm256_permute2f128_ps::<0x31>(c26a, c26b),
        _mm256_permute2f128_ps::<0x31>(c37a, c37b),
    ]
}

/// The eight lanes of the partial sums of row `at` (`n8` elements, a
/// multiple of 8), lane `i` = the scalar `s[i]`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn row_lanes(q: &[f32], rows: RingRows<'_>, at: usize, n8: usize) -> __m256 {
    let mut s = _mm256_setzero_ps();
    let mut j = 0;
    while j < n8 {
        let qv = load_f32x8(q[j..j + 8].try_into().expect("8"));
        s = _mm256_add_ps(s, _mm256_mul_ps(qv, load8(rows, at + j)));
        j += 8;
    }
    s
}

/// See the module docs and [`crate::scalar::window_dots`]. With whole
/// groups of eight elements, eight rows at a time: their lane vectors are
/// transposed, so that the in-order sums of the lanes (`0 + s[0] + s[1] +
/// ... + s[7]`) are eight vector additions for the eight rows.
#[target_feature(enable = "avx2,f16c")]
pub(crate) fn window_dots(q: &[f32], rows: RingRows<'_>, stride: usize, out: &mut [f32]) {
    let n = q.len();
    let count = out.len().min(rows.rows(n, stride));
    let n8 = n / 8 * 8;
    let mut i = 0;
    if n8 == n {
        while i + 8 <= count {
            let mut s = [_mm256_setzero_ps(); 8];
            for (r, v) in s.iter_mut().enumerate() {
                *v = row_lanes(q, rows, (i + r) * stride, n8);
            }
            let cols = transpose8(s);
            let mut t = _mm256_setzero_ps();
            for c in cols {
                t = _mm256_add_ps(t, c);
            }
            let o: &mut [f32; 8] = (&mut out[i..i + 8]).try_into().expect("8");
            // SAFETY: writes exactly the 8 floats of `o`.
            unsafe { _mm256_storeu_ps(o.as_mut_ptr(), t) };
            i += 8;
        }
    }
    for (i, o) in out[..count].iter_mut().enumerate().skip(i) {
        let at = i * stride;
        let mut lanes = [0f32; 8];
        // SAFETY: writes exactly the 8 floats of `lanes`.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), row_lanes(q, rows, at, n8)) };
        for (l, j) in (n8..n).enumerate() {
            lanes[l] += q[j] * rows.get(at + j);
        }
        *o = dot8_sum(lanes);
    }
}

/// See the module docs and [`crate::scalar::window_sums`]. Thirty-two
/// columns at a time (four registers, four independent chains of
/// additions), then eight, then one.
#[target_feature(enable = "avx2,f16c")]
pub(crate) fn window_sums(acc: &mut [f32], p: &[f32], rows: RingRows<'_>, stride: usize) {
    let n = acc.len();
    let count = p.len().min(rows.rows(n, stride));
    let p = &p[..count];
    let mut j = 0;
    while j + 32 <= n {
        let a: &mut [f32; 32] = (&mut acc[j..j + 32]).try_into().expect("32");
        let mut v = [_mm256_setzero_ps(); 4];
        for (k, v) in v.iter_mut().enumerate() {
            *v = load_f32x8(a[8 * k..8 * k + 8].try_into().expect("8"));
        }
        for (i, &pi) in p.iter().enumerate() {
            let pv = _mm256_set1_ps(pi);
            for (k, v) in v.iter_mut().enumerate() {
                *v = _mm256_add_ps(*v, _mm256_mul_ps(pv, load8(rows, i * stride + j + 8 * k)));
            }
        }
        for (k, v) in v.iter().enumerate() {
            // SAFETY: writes 8 floats within the 32 of `a`.
            unsafe { _mm256_storeu_ps(a[8 * k..].as_mut_ptr(), *v) };
        }
        j += 32;
    }
    while j + 8 <= n {
        let a: &mut [f32; 8] = (&mut acc[j..j + 8]).try_into().expect("8");
        let mut v = load_f32x8(a);
        for (i, &pi) in p.iter().enumerate() {
            v = _mm256_add_ps(
                v,
                _mm256_mul_ps(_mm256_set1_ps(pi), load8(rows, i * stride + j)),
            );
        }
        // SAFETY: writes exactly the 8 floats of `a`.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
        j += 8;
    }
    for (jj, a) in acc.iter_mut().enumerate().skip(j) {
        for (i, &pi) in p.iter().enumerate() {
            *a += pi * rows.get(i * stride + jj);
        }
    }
}
