//! Quantized matrix-vector products (the two-row kernels of `fpu` on FPU
//! targets).

#[cfg(not(latte_arm_fpu))]
use super::dot::{accumulate, product_q4, product_q8};
use super::dot::{dot_q4_0, dot_q8_0};
#[cfg(latte_arm_fpu)]
use super::fpu;
use super::MAX_BLOCKS;
#[cfg(not(latte_arm_fpu))]
use super::{widen_q4, widen_q8, WideQ4, WideQ8};
use crate::block::{BlockQ4_0, BlockQ8_0};

/// `y[r] = dot_q8_0(row r, x)`, rows `stride` blocks apart.
///
/// # Safety
/// As [`dot_q8_0`]; `(y.len() - 1) * stride + x.len() <= w.len()` and
/// `x.len() <= stride`.
pub(crate) unsafe fn matvec_q8_0(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    let nb = x.len();
    if nb > MAX_BLOCKS {
        for (r, out) in y.iter_mut().enumerate() {
            // SAFETY: forwarded contract.
            *out = unsafe { dot_q8_0(&w[r * stride..r * stride + nb], x) };
        }
        return;
    }
    #[cfg(latte_arm_fpu)]
    // SAFETY: forwarded contract, `nb <= MAX_BLOCKS`.
    unsafe {
        fpu::matvec_q8_0(w, stride, x, y)
    };
    #[cfg(not(latte_arm_fpu))]
    {
        let mut buf = [WideQ8::ZERO; MAX_BLOCKS];
        for (xb, out) in x.iter().zip(&mut buf) {
            widen_q8(xb, out);
        }
        let xw = &buf[..nb];
        for (r, out) in y.iter_mut().enumerate() {
            let wr = &w[r * stride..r * stride + nb];
            *out = accumulate(wr.iter().zip(xw).map(|(b, xb)| product_q8(b, xb)));
        }
    }
}

/// `y[r] = dot_q4_0(row r, x)`, rows `stride` blocks apart.
///
/// # Safety
/// As [`matvec_q8_0`].
pub(crate) unsafe fn matvec_q4_0(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    let nb = x.len();
    if nb > MAX_BLOCKS {
        for (r, out) in y.iter_mut().enumerate() {
            // SAFETY: forwarded contract.
            *out = unsafe { dot_q4_0(&w[r * stride..r * stride + nb], x) };
        }
        return;
    }
    #[cfg(latte_arm_fpu)]
    // SAFETY: forwarded contract, `nb <= MAX_BLOCKS`.
    unsafe {
        fpu::matvec_q4_0(w, stride, x, y)
    };
    #[cfg(not(latte_arm_fpu))]
    {
        let mut buf = [WideQ4::ZERO; MAX_BLOCKS];
        for (xb, out) in x.iter().zip(&mut buf) {
            widen_q4(xb, out);
        }
        let xw = &buf[..nb];
        for (r, out) in y.iter_mut().enumerate() {
            let wr = &w[r * stride..r * stride + nb];
            *out = accumulate(wr.iter().zip(xw).map(|(b, xb)| product_q4(b, xb)));
        }
    }
}
