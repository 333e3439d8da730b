//! `f32` and `f16` dot products and matrix-vector products.

use core::arch::x86_64::*;

use half::f16;

use super::{load_f16x8, load_f32x8, reduce_lanes};

/// Plain horizontal sum (float kernels, order unspecified).
#[inline]
#[target_feature(enable = "avx2")]
fn hsum(v: __m256) -> f32 {
    reduce_lanes(v)
}

// ---------------------------------------------------------------------------
// Float dot products.

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut ac = a.chunks_exact(32);
    let mut bc = b.chunks_exact(32);
    for (x, y) in (&mut ac).zip(&mut bc) {
        for k in 0..4 {
            let xv = load_f32x8(x[8 * k..8 * k + 8].try_into().expect("8"));
            let yv = load_f32x8(y[8 * k..8 * k + 8].try_into().expect("8"));
            acc[k] = _mm256_fmadd_ps(xv, yv, acc[k]);
        }
    }
    let (a, b) = (ac.remainder(), bc.remainder());
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    for (x, y) in (&mut ac).zip(&mut bc) {
        let xv = load_f32x8(x.try_into().expect("8"));
        let yv = load_f32x8(y.try_into().expect("8"));
        acc[0] = _mm256_fmadd_ps(xv, yv, acc[0]);
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum(v);
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        s += x * y;
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_f16(a: &[f16], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut ac = a.chunks_exact(32);
    let mut bc = b.chunks_exact(32);
    for (x, y) in (&mut ac).zip(&mut bc) {
        for k in 0..4 {
            let xv = load_f16x8(x[8 * k..8 * k + 8].try_into().expect("8"));
            let yv = load_f32x8(y[8 * k..8 * k + 8].try_into().expect("8"));
            acc[k] = _mm256_fmadd_ps(xv, yv, acc[k]);
        }
    }
    let (a, b) = (ac.remainder(), bc.remainder());
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    for (x, y) in (&mut ac).zip(&mut bc) {
        let xv = load_f16x8(x.try_into().expect("8"));
        let yv = load_f32x8(y.try_into().expect("8"));
        acc[0] = _mm256_fmadd_ps(xv, yv, acc[0]);
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum(v);
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        s += x.to_f32() * y;
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn matvec_f32(w: &[f32], stride: usize, x: &[f32], y: &mut [f32]) {
    for (r, out) in y.iter_mut().enumerate() {
        *out = dot_f32(&w[r * stride..r * stride + x.len()], x);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn matvec_f16(w: &[f16], stride: usize, x: &[f32], y: &mut [f32]) {
    for (r, out) in y.iter_mut().enumerate() {
        *out = dot_f16(&w[r * stride..r * stride + x.len()], x);
    }
}
