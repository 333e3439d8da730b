//! Quantized dot products (`Q8_0` and `Q4_0` weights, `Q8_0` activations).

use core::arch::aarch64::*;

use super::{
    accumulate, reduce_lanes, scales8, sum_q4_0, sum_q4_0_sdot, sum_q8_0, sum_q8_0_sdot,
    transpose_sum4,
};
use crate::block::{BlockQ4_0, BlockQ8_0};

/// Eight blocks at a time; `sum` gives a block's four `i32` partial sums,
/// `dw` its scale bits. Missing lanes of the tail get sum 0 and scale 0:
/// they add +0.0, which leaves an accumulator unchanged (it is never -0.0).
macro_rules! quant_dot {
    ($w:expr, $x:expr, $sum:expr, $dw:expr) => {{
        let (w, x) = ($w, $x);
        let sum = $sum;
        let n = w.len().min(x.len());
        let (w, x) = (&w[..n], &x[..n]);
        let mut acc_lo = vdupq_n_f32(0.0);
        let mut acc_hi = vdupq_n_f32(0.0);
        let mut wc = w.chunks_exact(8);
        let mut xc = x.chunks_exact(8);
        for (wb, xb) in (&mut wc).zip(&mut xc) {
            let s_lo = transpose_sum4(
                sum(&wb[0], &xb[0]),
                sum(&wb[1], &xb[1]),
                sum(&wb[2], &xb[2]),
                sum(&wb[3], &xb[3]),
            );
            let s_hi = transpose_sum4(
                sum(&wb[4], &xb[4]),
                sum(&wb[5], &xb[5]),
                sum(&wb[6], &xb[6]),
                sum(&wb[7], &xb[7]),
            );
            let (dw_lo, dw_hi) = scales8(core::array::from_fn(|i| $dw(&wb[i])));
            let (dx_lo, dx_hi) = scales8(core::array::from_fn(|i| xb[i].d));
            acc_lo = accumulate(acc_lo, s_lo, dw_lo, dx_lo);
            acc_hi = accumulate(acc_hi, s_hi, dw_hi, dx_hi);
        }
        let (wr, xr) = (wc.remainder(), xc.remainder());
        if !wr.is_empty() {
            let mut s = [vdupq_n_s32(0); 8];
            let mut dw = [0u16; 8];
            let mut dx = [0u16; 8];
            for (i, (a, b)) in wr.iter().zip(xr).enumerate() {
                s[i] = sum(a, b);
                dw[i] = $dw(a);
                dx[i] = b.d;
            }
            let (dw_lo, dw_hi) = scales8(dw);
            let (dx_lo, dx_hi) = scales8(dx);
            acc_lo = accumulate(acc_lo, transpose_sum4(s[0], s[1], s[2], s[3]), dw_lo, dx_lo);
            acc_hi = accumulate(acc_hi, transpose_sum4(s[4], s[5], s[6], s[7]), dw_hi, dx_hi);
        }
        reduce_lanes(acc_lo, acc_hi)
    }};
}

#[target_feature(enable = "neon")]
pub(crate) fn dot_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    quant_dot!(w, x, sum_q8_0, |b: &BlockQ8_0| b.d)
}

#[target_feature(enable = "neon")]
pub(crate) fn dot_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    quant_dot!(w, x, sum_q4_0, |b: &BlockQ4_0| b.d)
}

#[target_feature(enable = "neon,dotprod")]
pub(crate) fn dot_q8_0_sdot(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    quant_dot!(w, x, sum_q8_0_sdot, |b: &BlockQ8_0| b.d)
}

#[target_feature(enable = "neon,dotprod")]
pub(crate) fn dot_q4_0_sdot(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    quant_dot!(w, x, sum_q4_0_sdot, |b: &BlockQ4_0| b.d)
}
