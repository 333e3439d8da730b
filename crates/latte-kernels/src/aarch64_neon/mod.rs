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

use crate::block::{BlockQ4_0, BlockQ8_0};

mod dot;
mod float;
mod math;
mod matvec;
mod quantize;

pub(crate) use dot::{dot_q4_0, dot_q4_0_sdot, dot_q8_0, dot_q8_0_sdot};
pub(crate) use float::{dot_f16, dot_f32, matvec_f16, matvec_f32};
pub(crate) use math::{exp_inplace, gelu_tanh_inplace, tanh_inplace};
pub(crate) use matvec::{matvec_q4_0, matvec_q4_0_sdot, matvec_q8_0, matvec_q8_0_sdot};
pub(crate) use quantize::quantize_q8_0;

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
