//! x86-64 quantized kernels for AVX-512 (F, BW, VL) with AVX512-VNNI:
//! `vpdpbusd` on 512-bit registers, two blocks per register. The
//! elementwise math, the latent update and the activation quantizer have
//! 512-bit versions here; the `f32`/`f16` products are the AVX2 ones.
//!
//! The integer part is the AVX-VNNI path's: `vpdpbusd` multiplies unsigned
//! by signed bytes exactly, `Q8_0` weights are biased by 128
//! (`sum w*y = sum (w + 128)*y - 128 * sum y`) and `Q4_0` nibbles are used as
//! they are (`sum q*y - 8 * sum y`). What changes is the shape of the work,
//! so that the exact per-block reduction (eight `i32` partial sums per block
//! to one total) runs on sixteen blocks at a time:
//!
//! * A register holds block `k` in its low half and block `k + 4` in its high
//!   half. Eight such registers (two groups of eight blocks, `A` and `B`)
//!   reduce together ([`transpose_sum16`]) to one register whose low eight
//!   lanes are the totals of `A`'s blocks in order and whose high eight lanes
//!   are `B`'s.
//! * Dot products: `A` and `B` are consecutive groups of eight blocks; the
//!   sixteen products go into the eight reference accumulators in two steps,
//!   `A` then `B` (lane `i % 8`, multiply then add, no FMA): exactly the
//!   scalar order.
//! * Matrix-vector products: `A` and `B` are the same eight blocks of two
//!   rows, each row with its own eight accumulators in one half of a 512-bit
//!   accumulator; eight rows at a time share the activation registers, scales
//!   and correction terms.
//! * Rows of at most four blocks (a model of width 128 has mostly those) would
//!   leave half the lanes or more empty that way. There four rows of four
//!   blocks fill the sixteen lanes; a row's accumulators after its only step
//!   are `+0.0 + p_i` in lanes `0..nb` and `+0.0` above, so its reference
//!   reduction is `(a0 + a2) + (a1 + a3)`, done in-register for the four rows.
//!   A row tail of at most four blocks (after whole groups of eight) is done
//!   the same way, four rows per step, and its products are moved into the
//!   lanes of the rows' accumulators.
//!
//! Missing blocks (other tails, rows past the last) are zero blocks with
//! scale zero: they add `+0.0`, which leaves an accumulator unchanged (it is
//! never `-0.0`).
//!
//! Measured on Zen 5 (`BENCHMARKS.md`), the shuffle units are what limits
//! these loops: the reductions use rotations and blends where they can
//! (rotating instead of shuffling in the first merge was worth 20% on rows of
//! four blocks), and the `f16` scales are packed in general-purpose registers
//! (a `vpgatherdd` was slower).

use core::arch::x86_64::*;

use crate::block::{BlockQ4_0, BlockQ8_0};
use crate::x86_avx2::{load_i8x32, load_u8x16};

mod dot;
mod math;
mod matvec;
mod quantize;

pub(crate) use dot::{dot_q4_0, dot_q8_0};
pub(crate) use math::{exp_inplace, gelu_tanh_inplace, latent_update, tanh_inplace};
pub(crate) use matvec::{matvec_q4_0, matvec_q8_0};
pub(crate) use quantize::quantize_q8_0;

// ---------------------------------------------------------------------------
// Building blocks.

/// Stand-ins for missing blocks: zero quants (the `Q4_0` nibbles then read
/// as -8, but they only ever meet zero activations) and scale zero.
static ZERO_Q8: BlockQ8_0 = BlockQ8_0 { d: 0, qs: [0; 32] };
static ZERO_Q4: BlockQ4_0 = BlockQ4_0 { d: 0, qs: [0; 16] };

/// The value unchanged, but opaque to the optimizer (see `scales8` in the
/// AVX2 file: it keeps the scale packing in general-purpose registers).
#[inline(always)]
fn opaque(mut v: u64) -> u64 {
    // SAFETY: an empty asm block with one register operand: it reads and
    // writes nothing else, has no side effects and leaves `v` as it was.
    unsafe {
        core::arch::asm!("/* {0} */", inout(reg) v, options(pure, nomem, nostack, preserves_flags))
    };
    v
}

/// Sixteen `f16` scales to `f32`, packed four at a time in general-purpose
/// registers.
#[inline]
#[target_feature(enable = "avx512f")]
fn scales16(d: [u16; 16]) -> __m512 {
    let pack = |d: &[u16]| -> i64 {
        opaque(d[0] as u64 | (d[1] as u64) << 16 | (d[2] as u64) << 32 | (d[3] as u64) << 48) as i64
    };
    _mm512_cvtph_ps(_mm256_set_epi64x(
        pack(&d[12..]),
        pack(&d[8..12]),
        pack(&d[4..8]),
        pack(&d[..4]),
    ))
}

/// Two 256-bit halves as one register.
#[inline]
#[target_feature(enable = "avx512f")]
fn pair(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// The quants of two `Q8_0` blocks, `a` low and `b` high.
#[inline]
#[target_feature(enable = "avx512f")]
fn q8_pair(a: &BlockQ8_0, b: &BlockQ8_0) -> __m512i {
    pair(load_i8x32(&a.qs), load_i8x32(&b.qs))
}

/// The weights of two `Q8_0` blocks as unsigned bytes `w + 128`.
#[inline]
#[target_feature(enable = "avx512f")]
fn q8_biased_pair(a: &BlockQ8_0, b: &BlockQ8_0) -> __m512i {
    _mm512_xor_si512(q8_pair(a, b), _mm512_set1_epi8(-128))
}

/// The 64 nibbles of two `Q4_0` blocks as bytes `0..=15` in value order, `a`
/// low and `b` high: each block's 16 bytes in two 128-bit lanes, the upper
/// lane shifted right by 4.
#[inline]
#[target_feature(enable = "avx512f")]
fn q4_nibble_pair(a: &BlockQ4_0, b: &BlockQ4_0) -> __m512i {
    let v = _mm512_mask_broadcast_i32x4(
        _mm512_broadcast_i32x4(load_u8x16(&a.qs)),
        0xFF00,
        load_u8x16(&b.qs),
    );
    let v = _mm512_mask_srli_epi32::<4>(v, 0xF0F0, v);
    _mm512_and_si512(v, _mm512_set1_epi8(0x0F))
}

/// `sum_groups_of_4(u * y)`, unsigned `u` by signed `y`, exact.
#[inline]
#[target_feature(enable = "avx512f,avx512vnni")]
fn dpbusd(u: __m512i, y: __m512i) -> __m512i {
    _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, y)
}

/// `[a0 + a1, b0 + b1, a2 + a3, b2 + b3, ..]`: adjacent `i32` pairs of `a`
/// and `b` summed, interleaved.
#[inline]
#[target_feature(enable = "avx512f")]
fn merge32(a: __m512i, b: __m512i) -> __m512i {
    let x = _mm512_mask_blend_epi32(0xAAAA, a, b);
    let y = _mm512_mask_blend_epi32(0xAAAA, b, a);
    // Swapping the two `i32` of each 64-bit lane is a rotation (an ALU
    // operation; the shuffle units are the scarce ones here).
    _mm512_add_epi32(x, _mm512_ror_epi64::<32>(y))
}

/// The same one level up: adjacent 64-bit pairs of `merge32` outputs.
#[inline]
#[target_feature(enable = "avx512f")]
fn merge64(ab: __m512i, cd: __m512i) -> __m512i {
    let x = _mm512_mask_blend_epi32(0xCCCC, ab, cd);
    let y = _mm512_mask_blend_epi32(0xCCCC, cd, ab);
    _mm512_add_epi32(x, _mm512_shuffle_epi32::<0b01_00_11_10>(y))
}

/// Eight registers of `i32` partial sums to one register of sixteen block
/// totals, exact. Input `s[k]` (`k < 4`) holds blocks `k` (low half) and
/// `k + 4` (high half) of a group `A`, `s[4 + k]` the same of a group `B`;
/// the output is `[A_0 .. A_7, B_0 .. B_7]`. The in-lane merges are those of
/// the AVX2 `transpose_sum`; two 128-bit lane shuffles finish.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose_sum16(s: [__m512i; 8]) -> __m512i {
    // 128-bit lanes of u0: blocks A0..A3 summed over their lanes 0..4, the
    // same over lanes 4..8, then A4..A7 likewise; u1 the same for B.
    let u0 = merge64(merge32(s[0], s[1]), merge32(s[2], s[3]));
    let u1 = merge64(merge32(s[4], s[5]), merge32(s[6], s[7]));
    let lo = _mm512_shuffle_i64x2::<0b10_00_10_00>(u0, u1);
    let hi = _mm512_shuffle_i64x2::<0b11_01_11_01>(u0, u1);
    _mm512_add_epi32(lo, hi)
}

/// [`transpose_sum16`] of `[s[0], .., s[3], s[0], .., s[3]]` (the totals of
/// one group, in both halves) for half the work.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose_sum8x2(s: [__m512i; 4]) -> __m512i {
    let u = merge64(merge32(s[0], s[1]), merge32(s[2], s[3]));
    let lo = _mm512_shuffle_i64x2::<0b10_00_10_00>(u, u);
    let hi = _mm512_shuffle_i64x2::<0b11_01_11_01>(u, u);
    _mm512_add_epi32(lo, hi)
}

/// `(sums as f32) * (dw * dx)`, lane by lane: the reference product.
#[inline]
#[target_feature(enable = "avx512f")]
fn products(sums: __m512i, dw: __m512, dx: __m512) -> __m512 {
    _mm512_mul_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(dw, dx))
}

/// The low and high eight lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn halves(v: __m512) -> (__m256, __m256) {
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    (_mm512_castps512_ps256(v), hi)
}

/// Eight `f16` scales to `f32` in both halves.
#[inline]
#[target_feature(enable = "avx512f")]
fn scales8x2(d: [u16; 8]) -> __m512 {
    scales16(core::array::from_fn(|i| d[i % 8]))
}

#[inline]
#[target_feature(enable = "avx512f")]
fn load_f32x16(v: &[f32; 16]) -> __m512 {
    // SAFETY: reads exactly the 16 floats of `v`; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_ps(v.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn store_f32x16(v: &mut [f32; 16], x: __m512) {
    // SAFETY: writes exactly the 16 floats of `v`; `storeu` has no alignment requirement.
    unsafe { _mm512_storeu_ps(v.as_mut_ptr(), x) }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn splat(v: f32) -> __m512 {
    _mm512_set1_ps(v)
}
