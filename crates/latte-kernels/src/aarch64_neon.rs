//! AArch64 kernels: Advanced SIMD (NEON), and NEON with the dot-product
//! extension (`sdot`, written with `asm!` because `vdotq_s32` is not stable).
//!
//! Quantized dot products: each block's exact integer sum is formed in an
//! `int32x4_t` (widening `smull`/`smlal` + pairwise adds, or two `sdot`),
//! eight blocks are reduced together with `addp` into two vectors of
//! per-block sums, and the float part follows the scalar reference order
//! exactly: lanes 0..3 and 4..7 of the eight accumulators live in two
//! `float32x4_t`, multiply then add, no FMA. `f16` scales are widened with
//! `fcvtl`/`fcvtl2` (base Armv8.0 instructions; `float16x4_t` is not stable).
//!
//! Float dot products use FMA with four 4-lane accumulators (reassociated).

use core::arch::aarch64::*;
use core::arch::asm;

use half::f16;

use crate::block::{BlockQ4_0, BlockQ8_0, QK};
use crate::scalar;

// ---------------------------------------------------------------------------
// Entry points stored in `Kernels` (the only callers).

/// # Safety
/// The CPU must support NEON.
pub(crate) unsafe fn dot_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: the caller guarantees the target feature.
    unsafe { dot_q8_0_tf(w, x) }
}

/// # Safety
/// The CPU must support NEON.
pub(crate) unsafe fn dot_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: the caller guarantees the target feature.
    unsafe { dot_q4_0_tf(w, x) }
}

/// # Safety
/// The CPU must support NEON and the dot-product extension.
pub(crate) unsafe fn dot_q8_0_sdot(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: the caller guarantees the target features.
    unsafe { dot_q8_0_sdot_tf(w, x) }
}

/// # Safety
/// The CPU must support NEON and the dot-product extension.
pub(crate) unsafe fn dot_q4_0_sdot(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: the caller guarantees the target features.
    unsafe { dot_q4_0_sdot_tf(w, x) }
}

/// # Safety
/// The CPU must support NEON.
pub(crate) unsafe fn matvec_q8_0(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    // SAFETY: the caller guarantees the target feature.
    unsafe { matvec_q8_0_tf(w, stride, x, y) }
}

/// # Safety
/// The CPU must support NEON.
pub(crate) unsafe fn matvec_q4_0(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    // SAFETY: the caller guarantees the target feature.
    unsafe { matvec_q4_0_tf(w, stride, x, y) }
}

/// # Safety
/// The CPU must support NEON and the dot-product extension.
pub(crate) unsafe fn matvec_q8_0_sdot(
    w: &[BlockQ8_0],
    stride: usize,
    x: &[BlockQ8_0],
    y: &mut [f32],
) {
    // SAFETY: the caller guarantees the target features.
    unsafe { matvec_q8_0_sdot_tf(w, stride, x, y) }
}

/// # Safety
/// The CPU must support NEON and the dot-product extension.
pub(crate) unsafe fn matvec_q4_0_sdot(
    w: &[BlockQ4_0],
    stride: usize,
    x: &[BlockQ8_0],
    y: &mut [f32],
) {
    // SAFETY: the caller guarantees the target features.
    unsafe { matvec_q4_0_sdot_tf(w, stride, x, y) }
}

/// # Safety
/// The CPU must support NEON.
pub(crate) unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: the caller guarantees the target feature.
    unsafe { dot_f32_tf(a, b) }
}

/// # Safety
/// The CPU must support NEON.
pub(crate) unsafe fn dot_f16(a: &[f16], b: &[f32]) -> f32 {
    // SAFETY: the caller guarantees the target feature.
    unsafe { dot_f16_tf(a, b) }
}

/// # Safety
/// The CPU must support NEON.
pub(crate) unsafe fn matvec_f32(w: &[f32], stride: usize, x: &[f32], y: &mut [f32]) {
    // SAFETY: the caller guarantees the target feature.
    unsafe { matvec_f32_tf(w, stride, x, y) }
}

/// # Safety
/// The CPU must support NEON.
pub(crate) unsafe fn matvec_f16(w: &[f16], stride: usize, x: &[f32], y: &mut [f32]) {
    // SAFETY: the caller guarantees the target feature.
    unsafe { matvec_f16_tf(w, stride, x, y) }
}

/// # Safety
/// The CPU must support NEON.
pub(crate) unsafe fn quantize_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    // SAFETY: the caller guarantees the target feature.
    unsafe { quantize_q8_0_tf(x, y) }
}

/// # Safety
/// The CPU must support NEON.
pub(crate) unsafe fn exp_inplace(x: &mut [f32]) {
    // SAFETY: the caller guarantees the target feature.
    unsafe { exp_inplace_tf(x) }
}

/// # Safety
/// The CPU must support NEON.
pub(crate) unsafe fn tanh_inplace(x: &mut [f32]) {
    // SAFETY: the caller guarantees the target feature.
    unsafe { tanh_inplace_tf(x) }
}

/// # Safety
/// The CPU must support NEON.
pub(crate) unsafe fn gelu_tanh_inplace(x: &mut [f32]) {
    // SAFETY: the caller guarantees the target feature.
    unsafe { gelu_tanh_inplace_tf(x) }
}

// ---------------------------------------------------------------------------
// Loads and the instructions written in assembly.

#[inline]
#[target_feature(enable = "neon")]
fn load_i8x16(q: &[i8; 32], half: usize) -> int8x16_t {
    let h: &[i8; 16] = q[16 * half..16 * half + 16].try_into().expect("16 bytes");
    // SAFETY: reads exactly the 16 bytes of `h`; `ld1` has no alignment requirement.
    unsafe { vld1q_s8(h.as_ptr()) }
}

#[inline]
#[target_feature(enable = "neon")]
fn load_u8x16(q: &[u8; 16]) -> uint8x16_t {
    // SAFETY: reads exactly the 16 bytes of `q`; `ld1` has no alignment requirement.
    unsafe { vld1q_u8(q.as_ptr()) }
}

#[inline]
#[target_feature(enable = "neon")]
fn load_f32x4(v: &[f32]) -> float32x4_t {
    let v: &[f32; 4] = v.try_into().expect("4 floats");
    // SAFETY: reads exactly the 4 floats of `v`; `ld1` has no alignment requirement.
    unsafe { vld1q_f32(v.as_ptr()) }
}

#[inline]
#[target_feature(enable = "neon")]
fn load_f16x8(v: &[f16]) -> uint16x8_t {
    let v: &[f16; 8] = v.try_into().expect("8 halves");
    // SAFETY: reads exactly the 16 bytes of `v` (`f16` is a `u16` newtype);
    // `ld1` has no alignment requirement.
    unsafe { vld1q_u16(v.as_ptr().cast()) }
}

/// `fcvtl` and `fcvtl2`: eight `f16` (as bits) to two vectors of `f32`, exact.
#[inline]
#[target_feature(enable = "neon")]
fn widen_f16(h: uint16x8_t) -> (float32x4_t, float32x4_t) {
    let lo: float32x4_t;
    let hi: float32x4_t;
    // SAFETY: two register-only Armv8.0 Advanced SIMD instructions (NEON is
    // enabled here); no memory access, no flags.
    unsafe {
        asm!(
            "fcvtl {lo:v}.4s, {h:v}.4h",
            "fcvtl2 {hi:v}.4s, {h:v}.8h",
            h = in(vreg) h,
            // `out`, not `lateout`: `lo` is written before `h` is read again,
            // so it must not share `h`'s register.
            lo = out(vreg) lo,
            hi = lateout(vreg) hi,
            options(pure, nomem, nostack, preserves_flags),
        )
    };
    (lo, hi)
}

/// `acc + sum of the four byte products in each lane`: the `sdot`
/// instruction (FEAT_DotProd), exact in `i32`.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: one register-only instruction of the dot-product extension,
    // which this function's target features require; no memory, no flags.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        )
    };
    acc
}

// ---------------------------------------------------------------------------
// The quantized dot-product driver.

/// Eight `f16` scale bits to two vectors of `f32`. The bits are packed in
/// general-purpose registers and moved over as two 64-bit halves.
#[inline]
#[target_feature(enable = "neon")]
fn scales8(d: [u16; 8]) -> (float32x4_t, float32x4_t) {
    let pack = |d: &[u16]| -> u64 {
        d[0] as u64 | (d[1] as u64) << 16 | (d[2] as u64) << 32 | (d[3] as u64) << 48
    };
    widen_f16(vreinterpretq_u16_u64(vcombine_u64(
        vcreate_u64(pack(&d[..4])),
        vcreate_u64(pack(&d[4..])),
    )))
}

/// The `f16` scale bits of four blocks (`d(i)`) to `f32`: four lane loads
/// and one `fcvtl`.
#[inline]
#[target_feature(enable = "neon")]
fn scales4<'a>(d: impl Fn(usize) -> &'a u16) -> float32x4_t {
    let mut v = vdup_n_u16(0);
    // SAFETY: each lane load reads exactly the two bytes of one `u16` scale
    // behind a reference; no alignment beyond `u16`'s is required.
    unsafe {
        v = vld1_lane_u16::<0>(d(0), v);
        v = vld1_lane_u16::<1>(d(1), v);
        v = vld1_lane_u16::<2>(d(2), v);
        v = vld1_lane_u16::<3>(d(3), v);
    }
    widen_f16x4(v)
}

/// `fcvtl`: four `f16` (as bits) to `f32`, exact.
#[inline]
#[target_feature(enable = "neon")]
fn widen_f16x4(h: uint16x4_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: one register-only Armv8.0 Advanced SIMD instruction (NEON is
    // enabled here); no memory access, no flags.
    unsafe {
        asm!(
            "fcvtl {out:v}.4s, {h:v}.4h",
            h = in(vreg) h,
            out = lateout(vreg) out,
            options(pure, nomem, nostack, preserves_flags),
        )
    };
    out
}

/// A `Q8_0` activation block's two halves, loaded once for several rows.
#[inline]
#[target_feature(enable = "neon")]
fn x_halves(b: &BlockQ8_0) -> (int8x16_t, int8x16_t) {
    (load_i8x16(&b.qs, 0), load_i8x16(&b.qs, 1))
}

/// Four vectors of four `i32` partial sums to one vector of their totals.
#[inline]
#[target_feature(enable = "neon")]
fn transpose_sum4(a: int32x4_t, b: int32x4_t, c: int32x4_t, d: int32x4_t) -> int32x4_t {
    vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d))
}

/// `acc + (sums as f32) * (dw * dx)`, lane by lane: the reference step.
#[inline]
#[target_feature(enable = "neon")]
fn accumulate(acc: float32x4_t, sums: int32x4_t, dw: float32x4_t, dx: float32x4_t) -> float32x4_t {
    vaddq_f32(acc, vmulq_f32(vcvtq_f32_s32(sums), vmulq_f32(dw, dx)))
}

/// The reference reduction of the eight lane accumulators
/// `((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))`.
#[inline]
#[target_feature(enable = "neon")]
fn reduce_lanes(lo: float32x4_t, hi: float32x4_t) -> f32 {
    let s4 = vaddq_f32(lo, hi);
    let s2 = vadd_f32(vget_low_f32(s4), vget_high_f32(s4));
    vget_lane_f32::<0>(s2) + vget_lane_f32::<1>(s2)
}

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

// ---------------------------------------------------------------------------
// Block sums.

/// Four `i32` partial sums of a `Q8_0` x `Q8_0` block with widening
/// multiplies: each 16-bit product (at most 2^14) is added pairwise into 32
/// bits, so -128 quants are exact. The activations `x` come loaded
/// ([`x_halves`]), once for several rows.
#[inline]
#[target_feature(enable = "neon")]
fn sum_q8_0_x(w: &BlockQ8_0, x: &(int8x16_t, int8x16_t)) -> int32x4_t {
    let (a0, a1) = (load_i8x16(&w.qs, 0), load_i8x16(&w.qs, 1));
    let (b0, b1) = *x;
    let mut s = vpaddlq_s16(vmull_s8(vget_low_s8(a0), vget_low_s8(b0)));
    s = vpadalq_s16(s, vmull_high_s8(a0, b0));
    s = vpadalq_s16(s, vmull_s8(vget_low_s8(a1), vget_low_s8(b1)));
    vpadalq_s16(s, vmull_high_s8(a1, b1))
}

/// [`sum_q8_0_x`] with two `sdot`.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sum_q8_0_sdot_x(w: &BlockQ8_0, x: &(int8x16_t, int8x16_t)) -> int32x4_t {
    let (a0, a1) = (load_i8x16(&w.qs, 0), load_i8x16(&w.qs, 1));
    sdot(sdot(vdupq_n_s32(0), a0, x.0), a1, x.1)
}

/// The 32 signed values `q - 8` of a `Q4_0` block: values 0..15, 16..31.
#[inline]
#[target_feature(enable = "neon")]
fn q4_values(w: &BlockQ4_0) -> (int8x16_t, int8x16_t) {
    let q = load_u8x16(&w.qs);
    let eight = vdupq_n_s8(8);
    let lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), eight);
    let hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(q)), eight);
    (lo, hi)
}

/// Four `i32` partial sums of a `Q4_0` x `Q8_0` block. Products are at most
/// `8 * 128 = 1024` in magnitude, so four of them add exactly in 16 bits.
#[inline]
#[target_feature(enable = "neon")]
fn sum_q4_0_x(w: &BlockQ4_0, x: &(int8x16_t, int8x16_t)) -> int32x4_t {
    let (lo, hi) = q4_values(w);
    let (b0, b1) = *x;
    let mut p = vmull_s8(vget_low_s8(lo), vget_low_s8(b0));
    p = vmlal_high_s8(p, lo, b0);
    p = vmlal_s8(p, vget_low_s8(hi), vget_low_s8(b1));
    p = vmlal_high_s8(p, hi, b1);
    vpaddlq_s16(p)
}

/// [`sum_q4_0_x`] with two `sdot`.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sum_q4_0_sdot_x(w: &BlockQ4_0, x: &(int8x16_t, int8x16_t)) -> int32x4_t {
    let (lo, hi) = q4_values(w);
    sdot(sdot(vdupq_n_s32(0), lo, x.0), hi, x.1)
}

// The same four for one row's dot product (activations loaded with the row).

#[inline]
#[target_feature(enable = "neon")]
fn sum_q8_0(w: &BlockQ8_0, x: &BlockQ8_0) -> int32x4_t {
    sum_q8_0_x(w, &x_halves(x))
}

#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sum_q8_0_sdot(w: &BlockQ8_0, x: &BlockQ8_0) -> int32x4_t {
    sum_q8_0_sdot_x(w, &x_halves(x))
}

#[inline]
#[target_feature(enable = "neon")]
fn sum_q4_0(w: &BlockQ4_0, x: &BlockQ8_0) -> int32x4_t {
    sum_q4_0_x(w, &x_halves(x))
}

#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sum_q4_0_sdot(w: &BlockQ4_0, x: &BlockQ8_0) -> int32x4_t {
    sum_q4_0_sdot_x(w, &x_halves(x))
}

#[target_feature(enable = "neon")]
fn dot_q8_0_tf(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    quant_dot!(w, x, sum_q8_0, |b: &BlockQ8_0| b.d)
}

#[target_feature(enable = "neon")]
fn dot_q4_0_tf(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    quant_dot!(w, x, sum_q4_0, |b: &BlockQ4_0| b.d)
}

#[target_feature(enable = "neon,dotprod")]
fn dot_q8_0_sdot_tf(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    quant_dot!(w, x, sum_q8_0_sdot, |b: &BlockQ8_0| b.d)
}

#[target_feature(enable = "neon,dotprod")]
fn dot_q4_0_sdot_tf(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    quant_dot!(w, x, sum_q4_0_sdot, |b: &BlockQ4_0| b.d)
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
fn matvec_q8_0_tf(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    quant_matvec!(
        w,
        stride,
        x,
        y,
        sum_q8_0_x,
        scale_q8_0,
        dot_q8_0_tf,
        ROWS_NEON
    )
}

#[target_feature(enable = "neon")]
fn matvec_q4_0_tf(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    quant_matvec!(
        w,
        stride,
        x,
        y,
        sum_q4_0_x,
        scale_q4_0,
        dot_q4_0_tf,
        ROWS_NEON
    )
}

#[target_feature(enable = "neon,dotprod")]
fn matvec_q8_0_sdot_tf(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    quant_matvec!(
        w,
        stride,
        x,
        y,
        sum_q8_0_sdot_x,
        scale_q8_0,
        dot_q8_0_sdot_tf,
        ROWS_Q8_SDOT
    )
}

#[target_feature(enable = "neon,dotprod")]
fn matvec_q4_0_sdot_tf(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    quant_matvec!(
        w,
        stride,
        x,
        y,
        sum_q4_0_sdot_x,
        scale_q4_0,
        dot_q4_0_sdot_tf,
        ROWS_Q4_SDOT
    )
}

// ---------------------------------------------------------------------------
// Float dot products.

#[target_feature(enable = "neon")]
fn dot_f32_tf(a: &[f32], b: &[f32]) -> f32 {
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
fn dot_f16_tf(a: &[f16], b: &[f32]) -> f32 {
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
fn matvec_f32_tf(w: &[f32], stride: usize, x: &[f32], y: &mut [f32]) {
    for (r, out) in y.iter_mut().enumerate() {
        *out = dot_f32_tf(&w[r * stride..r * stride + x.len()], x);
    }
}

#[target_feature(enable = "neon")]
fn matvec_f16_tf(w: &[f16], stride: usize, x: &[f32], y: &mut [f32]) {
    for (r, out) in y.iter_mut().enumerate() {
        *out = dot_f16_tf(&w[r * stride..r * stride + x.len()], x);
    }
}

// ---------------------------------------------------------------------------
// Activation quantizer, bit for bit `scalar::quantize_block_q8_0`.

#[target_feature(enable = "neon")]
fn quantize_q8_0_tf(x: &[f32], y: &mut [BlockQ8_0]) {
    for (b, xs) in y.iter_mut().zip(x.chunks_exact(QK)) {
        let xs: &[f32; QK] = xs.try_into().expect("32");
        let v: [float32x4_t; 8] = core::array::from_fn(|k| load_f32x4(&xs[4 * k..4 * k + 4]));
        let m: [float32x4_t; 4] =
            core::array::from_fn(|k| vmaxq_f32(vabsq_f32(v[2 * k]), vabsq_f32(v[2 * k + 1])));
        let amax = vmaxvq_f32(vmaxq_f32(vmaxq_f32(m[0], m[1]), vmaxq_f32(m[2], m[3])));
        let (d, id) = scalar::q8_0_scale(amax);
        if !id.is_finite() {
            // `id` overflowed (tiny block): the scalar code defines the result.
            *b = scalar::quantize_block_q8_0(xs);
            continue;
        }
        // |x * id| <= 127 * (1 + 2^-20) here; `frinta` is C's `roundf`
        // (ties away from zero), then exact conversion and saturating narrows.
        let q: [int32x4_t; 8] =
            core::array::from_fn(|k| vcvtq_s32_f32(vrndaq_f32(vmulq_n_f32(v[k], id))));
        let h: [int16x8_t; 4] =
            core::array::from_fn(|k| vcombine_s16(vqmovn_s32(q[2 * k]), vqmovn_s32(q[2 * k + 1])));
        let lo = vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1]));
        let hi = vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3]));
        b.d = scalar::f32_to_f16(d);
        let (q0, q1) = b.qs.split_at_mut(16);
        // SAFETY: each store writes exactly the 16 bytes of its half of `qs`.
        unsafe {
            vst1q_s8(q0.as_mut_ptr(), lo);
            vst1q_s8(q1.as_mut_ptr(), hi);
        }
    }
}

// ---------------------------------------------------------------------------
// Elementwise math, bit for bit `scalar::exp_f32`, `tanh_f32` and
// `gelu_tanh_f32`: the same operations on four lanes (`fmul` then `fadd`,
// never `fmla`; IEEE `fdiv`), both branches of `tanh` computed and
// selected, the special values selected at the end.

#[inline]
#[target_feature(enable = "neon")]
fn store_f32x4(v: &mut [f32; 4], x: float32x4_t) {
    // SAFETY: writes exactly the 4 floats of `v`; `st1` has no alignment requirement.
    unsafe { vst1q_f32(v.as_mut_ptr(), x) }
}

/// Defines `$name(x: &mut [f32])`, applying the four-lane `$f` to `x` four
/// values at a time; the tail goes through `$f` in a zero-padded register.
macro_rules! map_f32x4 {
    ($name:ident, $f:ident) => {
        #[target_feature(enable = "neon")]
        fn $name(x: &mut [f32]) {
            let mut chunks = x.chunks_exact_mut(4);
            for c in &mut chunks {
                let c: &mut [f32; 4] = c.try_into().expect("4");
                let v = $f(load_f32x4(c));
                store_f32x4(c, v);
            }
            let tail = chunks.into_remainder();
            if !tail.is_empty() {
                let mut buf = [0.0f32; 4];
                buf[..tail.len()].copy_from_slice(tail);
                let v = $f(load_f32x4(&buf));
                store_f32x4(&mut buf, v);
                tail.copy_from_slice(&buf[..tail.len()]);
            }
        }
    };
}

map_f32x4!(exp_inplace_tf, exp_v);
map_f32x4!(tanh_inplace_tf, tanh_v);
map_f32x4!(gelu_tanh_inplace_tf, gelu_tanh_v);

/// `scalar::exp_reduced` on four lanes, each in `[EXP_MIN_X, EXP_MAX_X]`.
#[inline]
#[target_feature(enable = "neon")]
fn exp_reduced_v(x: float32x4_t) -> (float32x4_t, int32x4_t) {
    let t = vaddq_f32(
        vmulq_f32(x, vdupq_n_f32(scalar::EXP_LOG2E)),
        vdupq_n_f32(scalar::EXP_ROUND),
    );
    let n = vsubq_s32(
        vreinterpretq_s32_f32(t),
        vdupq_n_s32(scalar::EXP_ROUND_BITS),
    );
    let nf = vsubq_f32(t, vdupq_n_f32(scalar::EXP_ROUND));
    let r = vsubq_f32(x, vmulq_f32(nf, vdupq_n_f32(scalar::EXP_LN2_HI)));
    let r = vsubq_f32(r, vmulq_f32(nf, vdupq_n_f32(scalar::EXP_LN2_LO)));
    let z = vmulq_f32(r, r);
    let c = scalar::EXP_P;
    let mut p = vdupq_n_f32(c[0]);
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(c[1]));
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(c[2]));
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(c[3]));
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(c[4]));
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(c[5]));
    p = vaddq_f32(vmulq_f32(p, z), r);
    p = vaddq_f32(p, vdupq_n_f32(1.0));
    (p, n)
}

/// `scalar::pow2` on four lanes.
#[inline]
#[target_feature(enable = "neon")]
fn pow2_v(e: int32x4_t) -> float32x4_t {
    vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(e, vdupq_n_s32(127))))
}

/// `scalar::exp_core` on four lanes, each in `[EXP_MIN_X, EXP_MAX_X]`.
#[inline]
#[target_feature(enable = "neon")]
fn exp_core_v(x: float32x4_t) -> float32x4_t {
    let (p, n) = exp_reduced_v(x);
    let n1 = vshrq_n_s32::<1>(n);
    vmulq_f32(vmulq_f32(p, pow2_v(n1)), pow2_v(vsubq_s32(n, n1)))
}

/// `scalar::exp_core_mid` on four lanes, each in `[1.25, 20]`.
#[inline]
#[target_feature(enable = "neon")]
fn exp_core_mid_v(x: float32x4_t) -> float32x4_t {
    let (p, n) = exp_reduced_v(x);
    vmulq_f32(p, pow2_v(n))
}

/// Lanes where `x` is NaN take `x`.
#[inline]
#[target_feature(enable = "neon")]
fn keep_nan(y: float32x4_t, x: float32x4_t) -> float32x4_t {
    vbslq_f32(vceqq_f32(x, x), y, x)
}

/// `scalar::exp_f32` on four lanes.
#[inline]
#[target_feature(enable = "neon")]
fn exp_v(x: float32x4_t) -> float32x4_t {
    let c = vminq_f32(
        vmaxq_f32(x, vdupq_n_f32(scalar::EXP_MIN_X)),
        vdupq_n_f32(scalar::EXP_MAX_X),
    );
    keep_nan(exp_core_v(c), x)
}

/// `scalar::tanh_f32` on four lanes.
#[inline]
#[target_feature(enable = "neon")]
fn tanh_v(x: float32x4_t) -> float32x4_t {
    let a = vabsq_f32(x);
    // |x| < TANH_SMALL: the odd polynomial.
    let z = vmulq_f32(a, a);
    let c = scalar::TANH_T;
    let mut q = vdupq_n_f32(c[0]);
    q = vaddq_f32(vmulq_f32(q, z), vdupq_n_f32(c[1]));
    q = vaddq_f32(vmulq_f32(q, z), vdupq_n_f32(c[2]));
    q = vaddq_f32(vmulq_f32(q, z), vdupq_n_f32(c[3]));
    q = vaddq_f32(vmulq_f32(q, z), vdupq_n_f32(c[4]));
    q = vmulq_f32(q, z);
    q = vmulq_f32(q, a);
    let small = vaddq_f32(q, a);
    // Otherwise 1 - 2 / (exp(2 min(|x|, TANH_CLAMP)) + 1).
    let b = vminq_f32(a, vdupq_n_f32(scalar::TANH_CLAMP));
    let e = exp_core_mid_v(vaddq_f32(b, b));
    let one = vdupq_n_f32(1.0);
    let large = vsubq_f32(one, vdivq_f32(vdupq_n_f32(2.0), vaddq_f32(e, one)));
    let is_small = vcltq_f32(a, vdupq_n_f32(scalar::TANH_SMALL));
    let t = vbslq_f32(is_small, small, large);
    // The sign of x on |tanh x| (an odd function; tanh(-0) = -0).
    let sign = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x8000_0000));
    let t = vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(t), sign));
    keep_nan(t, x)
}

/// `scalar::gelu_tanh_f32` on four lanes.
#[inline]
#[target_feature(enable = "neon")]
fn gelu_tanh_v(x: float32x4_t) -> float32x4_t {
    let x3 = vmulq_f32(vmulq_f32(vmulq_f32(vdupq_n_f32(scalar::GELU_C), x), x), x);
    let u = vmulq_f32(vdupq_n_f32(scalar::GELU_K), vaddq_f32(x, x3));
    let t = tanh_v(u);
    let g = vmulq_f32(
        vmulq_f32(vdupq_n_f32(0.5), x),
        vaddq_f32(vdupq_n_f32(1.0), t),
    );
    let neg_inf = vceqq_f32(x, vdupq_n_f32(f32::NEG_INFINITY));
    keep_nan(vbslq_f32(neg_inf, vdupq_n_f32(-0.0), g), x)
}
