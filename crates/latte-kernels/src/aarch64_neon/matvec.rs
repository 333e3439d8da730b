//! Quantized matrix-vector products, several rows per pass.

use core::arch::aarch64::*;

use super::dot::{dot_q4_0, dot_q4_0_sdot, dot_q8_0, dot_q8_0_sdot};
use super::{
    accumulate, reduce_lanes, scales4, sum_q4_0_sdot_x, sum_q4_0_x, sum_q8_0_sdot_x, sum_q8_0_x,
    transpose_sum4, x_halves,
};
use crate::block::{BlockQ4_0, BlockQ8_0};

/// One quarter of [`quant_matvec`] for the `$rows` rows `rws` of a pass:
/// blocks `k .. k + n` (`n <= 4`) into the accumulators `acc[j][h]`. A
/// macro, so that the accumulators stay in registers.
macro_rules! quant_quarter {
    ($acc:ident, $rws:ident, $x:ident, $sum:ident, $dwf:ident, $k:expr, $n:expr, $h:expr, $rows:expr) => {{
        let (k, n, h) = ($k, $n, $h);
        if n == 4 {
            let xq: &[BlockQ8_0; 4] = $x[k..k + 4].try_into().expect("4 blocks");
            let xs: [(int8x16_t, int8x16_t); 4] = core::array::from_fn(|i| x_halves(&xq[i]));
            let dx = scales4(|i| &xq[i].d);
            for j in 0..$rows {
                let wq: &[_; 4] = $rws[j][k..k + 4].try_into().expect("4 blocks");
                let s = transpose_sum4(
                    $sum(&wq[0], &xs[0]),
                    $sum(&wq[1], &xs[1]),
                    $sum(&wq[2], &xs[2]),
                    $sum(&wq[3], &xs[3]),
                );
                $acc[j][h] = accumulate($acc[j][h], s, scales4(|i| $dwf(&wq[i])), dx);
            }
        } else {
            let xq = &$x[k..k + n];
            let zero = 0u16;
            let xs: [(int8x16_t, int8x16_t); 4] = core::array::from_fn(|i| {
                xq.get(i)
                    .map_or((vdupq_n_s8(0), vdupq_n_s8(0)), |b| x_halves(b))
            });
            let dx = scales4(|i| xq.get(i).map_or(&zero, |b| &b.d));
            for j in 0..$rows {
                let wq = &$rws[j][k..k + n];
                let mut t = [vdupq_n_s32(0); 4];
                for (i, b) in wq.iter().enumerate() {
                    t[i] = $sum(b, &xs[i]);
                }
                let dw = scales4(|i| wq.get(i).map_or(&zero, |b| $dwf(b)));
                let s = transpose_sum4(t[0], t[1], t[2], t[3]);
                $acc[j][h] = accumulate($acc[j][h], s, dw, dx);
            }
        }
    }};
}

/// Matrix-vector product, `$rows` rows per pass (3 or 4: the most the
/// registers hold for each block sum). The blocks of a row go in
/// quarters of eight (four blocks; a quarter starts at a multiple of 4):
/// their sums, reduced with `addp`, are added into the four lanes that the
/// reference order gives them, `acc[j][0]` (blocks `8 g .. 8 g + 4`) or
/// `acc[j][1]` (`8 g + 4 ..`). The activation side of a quarter (its loads
/// and scales) is shared by the rows of the pass. The missing blocks of a last,
/// partial quarter add sum 0 at scale 0, +0.0, as in [`quant_dot`]. Rows
/// past the last whole pass go through `$dot`, whose results these are, bit for
/// bit (the tests compare them).
macro_rules! quant_matvec {
    ($w:expr, $stride:expr, $x:expr, $y:expr, $sum:expr, $dw:expr, $dot:expr, $rows:expr) => {{
        const R: usize = $rows;
        let (w, stride, x, y) = ($w, $stride, $x, $y);
        let sum = $sum;
        let dwf = $dw;
        let nb = x.len();
        let rows = y.len();
        let full = nb / 8;
        let rem = nb % 8;
        let mut r0 = 0;
        while r0 + R <= rows {
            let rws: [&[_]; R] =
                core::array::from_fn(|j| &w[(r0 + j) * stride..(r0 + j) * stride + nb]);
            let mut acc = [[vdupq_n_f32(0.0); 2]; R];
            // The low quarters of every group, then the high ones: each
            // accumulator still takes its blocks in order, and one quarter
            // at a time keeps the loop's registers within the 32 there are.
            for g in 0..full {
                quant_quarter!(acc, rws, x, sum, dwf, 8 * g, 4, 0, R);
            }
            for g in 0..full {
                quant_quarter!(acc, rws, x, sum, dwf, 8 * g + 4, 4, 1, R);
            }
            if rem > 0 {
                quant_quarter!(acc, rws, x, sum, dwf, 8 * full, rem.min(4), 0, R);
            }
            if rem > 4 {
                quant_quarter!(acc, rws, x, sum, dwf, 8 * full + 4, rem - 4, 1, R);
            }
            for (j, a) in acc.iter().enumerate() {
                y[r0 + j] = reduce_lanes(a[0], a[1]);
            }
            r0 += R;
        }
        for r in r0..rows {
            y[r] = $dot(&w[r * stride..r * stride + nb], x);
        }
    }};
}

/// Rows per pass of [`quant_matvec`]: what executes the fewest instructions
/// per block on the model's shapes (`tools/insn-count.sh`; more rows share
/// more activation work until the registers run out).
const ROWS_NEON: usize = 3;
const ROWS_Q8_SDOT: usize = 4;
const ROWS_Q4_SDOT: usize = 3;

/// A block's scale bits, by reference (for lane loads).
fn scale_q8_0(b: &BlockQ8_0) -> &u16 {
    &b.d
}

/// A block's scale bits, by reference (for lane loads).
fn scale_q4_0(b: &BlockQ4_0) -> &u16 {
    &b.d
}

#[target_feature(enable = "neon")]
pub(crate) fn matvec_q8_0(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    quant_matvec!(w, stride, x, y, sum_q8_0_x, scale_q8_0, dot_q8_0, ROWS_NEON)
}

#[target_feature(enable = "neon")]
pub(crate) fn matvec_q4_0(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    quant_matvec!(w, stride, x, y, sum_q4_0_x, scale_q4_0, dot_q4_0, ROWS_NEON)
}

#[target_feature(enable = "neon,dotprod")]
pub(crate) fn matvec_q8_0_sdot(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    quant_matvec!(
        w,
        stride,
        x,
        y,
        sum_q8_0_sdot_x,
        scale_q8_0,
        dot_q8_0_sdot,
        ROWS_Q8_SDOT
    )
}

#[target_feature(enable = "neon,dotprod")]
pub(crate) fn matvec_q4_0_sdot(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    quant_matvec!(
        w,
        stride,
        x,
        y,
        sum_q4_0_sdot_x,
        scale_q4_0,
        dot_q4_0_sdot,
        ROWS_Q4_SDOT
    )
}
