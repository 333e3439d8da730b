//! `f32` and `f16` dot products and matrix-vector products.

use core::arch::aarch64::*;

use half::f16;

use super::{load_f16x8, load_f32x4, widen_f16};

// ---------------------------------------------------------------------------
// Float dot products.

#[target_feature(enable = "neon")]
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut ac = a.chunks_exact(16);
    let mut bc = b.chunks_exact(16);
    for (x, y) in (&mut ac).zip(&mut bc) {
        for k in 0..4 {
            let xv = load_f32x4(&x[4 * k..4 * k + 4]);
            let yv = load_f32x4(&y[4 * k..4 * k + 4]);
            acc[k] = vfmaq_f32(acc[k], xv, yv);
        }
    }
    let (a, b) = (ac.remainder(), bc.remainder());
    let mut ac = a.chunks_exact(4);
    let mut bc = b.chunks_exact(4);
    for (x, y) in (&mut ac).zip(&mut bc) {
        acc[0] = vfmaq_f32(acc[0], load_f32x4(x), load_f32x4(y));
    }
    let v = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
    let mut s = vaddvq_f32(v);
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        s += x * y;
    }
    s
}

#[target_feature(enable = "neon")]
pub(crate) fn dot_f16(a: &[f16], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut ac = a.chunks_exact(16);
    let mut bc = b.chunks_exact(16);
    for (x, y) in (&mut ac).zip(&mut bc) {
        for k in 0..2 {
            let (lo, hi) = widen_f16(load_f16x8(&x[8 * k..8 * k + 8]));
            acc[2 * k] = vfmaq_f32(acc[2 * k], lo, load_f32x4(&y[8 * k..8 * k + 4]));
            acc[2 * k + 1] = vfmaq_f32(acc[2 * k + 1], hi, load_f32x4(&y[8 * k + 4..8 * k + 8]));
        }
    }
    let (a, b) = (ac.remainder(), bc.remainder());
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    for (x, y) in (&mut ac).zip(&mut bc) {
        let (lo, hi) = widen_f16(load_f16x8(x));
        acc[0] = vfmaq_f32(acc[0], lo, load_f32x4(&y[..4]));
        acc[1] = vfmaq_f32(acc[1], hi, load_f32x4(&y[4..]));
    }
    let v = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
    let mut s = vaddvq_f32(v);
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        s += x.to_f32() * y;
    }
    s
}

#[target_feature(enable = "neon")]
pub(crate) fn matvec_f32(w: &[f32], stride: usize, x: &[f32], y: &mut [f32]) {
    for (r, out) in y.iter_mut().enumerate() {
        *out = dot_f32(&w[r * stride..r * stride + x.len()], x);
    }
}

#[target_feature(enable = "neon")]
pub(crate) fn matvec_f16(w: &[f16], stride: usize, x: &[f32], y: &mut [f32]) {
    for (r, out) in y.iter_mut().enumerate() {
        *out = dot_f16(&w[r * stride..r * stride + x.len()], x);
    }
}
