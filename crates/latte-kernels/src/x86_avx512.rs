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
use core::mem::MaybeUninit;

use crate::block::{BlockQ4_0, BlockQ8_0};
use crate::scalar;
use crate::x86_avx2::{load_i8x32, load_u8x16, reduce_lanes, store_i8x32};

// ---------------------------------------------------------------------------
// Entry points stored in `Kernels` (the only callers).

/// # Safety
/// The CPU must support AVX2, FMA, F16C and AVX512F.
pub(crate) unsafe fn exp_inplace(x: &mut [f32]) {
    // SAFETY: the caller guarantees the target features.
    unsafe { exp_inplace_tf(x) }
}

/// # Safety
/// The CPU must support AVX2, FMA, F16C and AVX512F.
pub(crate) unsafe fn tanh_inplace(x: &mut [f32]) {
    // SAFETY: the caller guarantees the target features.
    unsafe { tanh_inplace_tf(x) }
}

/// # Safety
/// The CPU must support AVX2, FMA, F16C and AVX512F.
pub(crate) unsafe fn gelu_tanh_inplace(x: &mut [f32]) {
    // SAFETY: the caller guarantees the target features.
    unsafe { gelu_tanh_inplace_tf(x) }
}

/// # Safety
/// The CPU must support AVX512F.
pub(crate) unsafe fn latent_update(
    s: &mut [f32],
    v: &[f32],
    r: &[f32],
    a: &[f32],
    w: &[f32],
    y: &mut [f32],
) {
    // SAFETY: the caller guarantees the target features.
    unsafe { latent_update_tf(s, v, r, a, w, y) }
}

/// # Safety
/// The CPU must support AVX2, FMA, F16C and AVX512F.
pub(crate) unsafe fn quantize_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    // SAFETY: the caller guarantees the target features.
    unsafe { quantize_q8_0_tf(x, y) }
}

/// # Safety
/// The CPU must support AVX2, FMA, F16C, AVX512F, AVX512BW, AVX512VL and
/// AVX512-VNNI.
pub(crate) unsafe fn dot_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: the caller guarantees the target features.
    unsafe { dot_q8_0_tf(w, x) }
}

/// # Safety
/// The CPU must support AVX2, FMA, F16C, AVX512F, AVX512BW, AVX512VL and
/// AVX512-VNNI.
pub(crate) unsafe fn dot_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: the caller guarantees the target features.
    unsafe { dot_q4_0_tf(w, x) }
}

/// # Safety
/// The CPU must support AVX2, FMA, F16C, AVX512F, AVX512BW, AVX512VL and
/// AVX512-VNNI.
pub(crate) unsafe fn matvec_q8_0(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    // SAFETY: the caller guarantees the target features.
    unsafe { matvec_q8_0_tf(w, stride, x, y) }
}

/// # Safety
/// The CPU must support AVX2, FMA, F16C, AVX512F, AVX512BW, AVX512VL and
/// AVX512-VNNI.
pub(crate) unsafe fn matvec_q4_0(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    // SAFETY: the caller guarantees the target features.
    unsafe { matvec_q4_0_tf(w, stride, x, y) }
}

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

// ---------------------------------------------------------------------------
// Drivers, generic over the weight format: `wu(a, b)` is the unsigned operand
// of two weight blocks (`a` low, `b` high), `corr(y)` the correction that
// `vpdpbusd(wu, y)` leaves in, `dw` a block's scale bits.

/// Sixteen blocks of a dot product: `wb(k)`, `xb(k)` for `k < 16`, into the
/// eight accumulators as blocks `0..8` then `8..16`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_step<'a, W: 'a>(
    acc: __m256,
    wb: impl Fn(usize) -> &'a W,
    xb: impl Fn(usize) -> &'a BlockQ8_0,
    wu: &impl Fn(&W, &W) -> __m512i,
    corr: &impl Fn(__m512i) -> __m512i,
    dw: &impl Fn(&W) -> u16,
) -> __m256 {
    let s: [__m512i; 8] = core::array::from_fn(|j| {
        let k = (j / 4) * 8 + j % 4;
        let y = q8_pair(xb(k), xb(k + 4));
        _mm512_sub_epi32(dpbusd(wu(wb(k), wb(k + 4)), y), corr(y))
    });
    let p = products(
        transpose_sum16(s),
        scales16(core::array::from_fn(|k| dw(wb(k)))),
        scales16(core::array::from_fn(|k| xb(k).d)),
    );
    let (a, b) = halves(p);
    _mm256_add_ps(_mm256_add_ps(acc, a), b)
}

/// Dot product, sixteen blocks per step.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot<W>(
    w: &[W],
    x: &[BlockQ8_0],
    zero: &W,
    wu: impl Fn(&W, &W) -> __m512i,
    corr: impl Fn(__m512i) -> __m512i,
    dw: impl Fn(&W) -> u16,
) -> f32 {
    let n = w.len().min(x.len());
    let mut acc = _mm256_setzero_ps();
    let mut wc = w[..n].chunks_exact(16);
    let mut xc = x[..n].chunks_exact(16);
    for (wb, xb) in (&mut wc).zip(&mut xc) {
        acc = dot_step(acc, |k| &wb[k], |k| &xb[k], &wu, &corr, &dw);
    }
    let (wr, xr) = (wc.remainder(), xc.remainder());
    if !wr.is_empty() {
        acc = dot_step(
            acc,
            |k| wr.get(k).unwrap_or(zero),
            |k| xr.get(k).unwrap_or(&ZERO_Q8),
            &wu,
            &corr,
            &dw,
        );
    }
    reduce_lanes(acc)
}

/// Four rows of at most four blocks (`wr[i]`, missing blocks zero) against
/// the activations `y4` (each block in both halves), with their correction
/// totals `c` and scales `dx`: the products `(sum as f32) * (dw * dx)`, row
/// `i` in lanes `4 i .. 4 i + 4`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn quad_products<W>(
    wr: [&[W; 4]; 4],
    y4: &[__m512i; 4],
    c: __m512i,
    dx: __m512,
    wu: &impl Fn(&W, &W) -> __m512i,
    dw: &impl Fn(&W) -> u16,
) -> __m512 {
    // Rows 0 and 1 in the halves of s[0..4], rows 2 and 3 in s[4..8].
    let s = [
        dpbusd(wu(&wr[0][0], &wr[1][0]), y4[0]),
        dpbusd(wu(&wr[0][1], &wr[1][1]), y4[1]),
        dpbusd(wu(&wr[0][2], &wr[1][2]), y4[2]),
        dpbusd(wu(&wr[0][3], &wr[1][3]), y4[3]),
        dpbusd(wu(&wr[2][0], &wr[3][0]), y4[0]),
        dpbusd(wu(&wr[2][1], &wr[3][1]), y4[1]),
        dpbusd(wu(&wr[2][2], &wr[3][2]), y4[2]),
        dpbusd(wu(&wr[2][3], &wr[3][3]), y4[3]),
    ];
    let sums = _mm512_sub_epi32(transpose_sum16(s), c);
    let d = scales16(core::array::from_fn(|i| dw(&wr[i / 4][i % 4])));
    products(sums, d, dx)
}

/// The results of four rows of at most four blocks from their
/// [`quad_products`]: each row's accumulators after its only step are
/// `+0.0 + p` (lanes `4 i ..`, `+0.0` in the four lanes above them), so its
/// reference reduction is `(a0 + a2) + (a1 + a3)`. Row `i` in lane `i`.
#[inline]
#[target_feature(enable = "avx512f")]
fn quad_results(p: __m512) -> __m128 {
    let a = _mm512_add_ps(_mm512_setzero_ps(), p);
    let t = _mm512_add_ps(a, _mm512_permute_ps::<0b01_00_11_10>(a));
    let t = _mm512_add_ps(t, _mm512_permute_ps::<0b10_11_00_01>(t));
    let first_lanes = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_castps512_ps128(_mm512_permutexvar_ps(first_lanes, t))
}

/// Eight blocks of two rows (`wa`, `wb`, missing blocks zero) against the
/// activations `yk` (blocks `k` and `k + 4` in the halves of `yk[k]`), with
/// their correction totals `c` and scales `dx` (in both halves): added to
/// the rows' accumulators, `wa`'s in the low half of `acc`, `wb`'s in the high.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
fn pair_step<W>(
    acc: __m512,
    wa: [&W; 8],
    wb: [&W; 8],
    yk: &[__m512i; 4],
    c: __m512i,
    dx: __m512,
    wu: &impl Fn(&W, &W) -> __m512i,
    dw: &impl Fn(&W) -> u16,
) -> __m512 {
    let s = [
        dpbusd(wu(wa[0], wa[4]), yk[0]),
        dpbusd(wu(wa[1], wa[5]), yk[1]),
        dpbusd(wu(wa[2], wa[6]), yk[2]),
        dpbusd(wu(wa[3], wa[7]), yk[3]),
        dpbusd(wu(wb[0], wb[4]), yk[0]),
        dpbusd(wu(wb[1], wb[5]), yk[1]),
        dpbusd(wu(wb[2], wb[6]), yk[2]),
        dpbusd(wu(wb[3], wb[7]), yk[3]),
    ];
    let sums = _mm512_sub_epi32(transpose_sum16(s), c);
    let d = scales16(core::array::from_fn(|i| {
        if i < 8 {
            dw(wa[i])
        } else {
            dw(wb[i - 8])
        }
    }));
    _mm512_add_ps(acc, products(sums, d, dx))
}

/// The activation side of one group of eight blocks in [`matvec`]: the
/// operands `y` (blocks `k` and `k + 4` in the halves of `y[k]`, or for a
/// tail of at most four blocks block `k` in both halves), their correction
/// totals `c` and their scales `dx`.
#[derive(Clone, Copy)]
struct GroupActivations {
    y: [__m512i; 4],
    c: __m512i,
    dx: __m512,
}

/// Matrix-vector product (`x.len() <= stride`, `(y.len() - 1) * stride +
/// x.len() <= w.len()`, `y` not empty, as `Kernels` guarantees).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
fn matvec<W: Copy>(
    w: &[W],
    stride: usize,
    x: &[BlockQ8_0],
    y: &mut [f32],
    zero: &W,
    wu: impl Fn(&W, &W) -> __m512i,
    corr: impl Fn(__m512i) -> __m512i,
    dw: impl Fn(&W) -> u16,
) {
    let nb = x.len();
    let rows = y.len();
    let xblock = |k: usize| -> &BlockQ8_0 { x.get(k).unwrap_or(&ZERO_Q8) };
    // Blocks `k0 .. k0 + 8` of row `r`, the zero block past the row's end
    // (or below the last row).
    let padded = |r: usize, k0: usize| -> [&W; 8] {
        core::array::from_fn(|k| {
            if r < rows && k0 + k < nb {
                &w[r * stride + k0 + k]
            } else {
                zero
            }
        })
    };
    // Blocks `k0 .. k0 + 4` of row `r`, all present.
    let whole4 = |r: usize, k0: usize| -> &[W; 4] {
        w[r * stride + k0..r * stride + k0 + 4]
            .try_into()
            .expect("4 blocks")
    };
    // The same copied, zero blocks where missing.
    let copied4 = |r: usize, k0: usize| -> [W; 4] { core::array::from_fn(|k| *padded(r, k0)[k]) };
    // Blocks `k0 .. k0 + 8` of row `r`, all present.
    let whole = |r: usize, k0: usize| -> [&W; 8] {
        let row: &[W; 8] = w[r * stride + k0..r * stride + k0 + 8]
            .try_into()
            .expect("8 blocks");
        core::array::from_fn(|k| &row[k])
    };

    if nb <= 4 {
        // Four rows of at most four blocks per step.
        let y4: [__m512i; 4] = core::array::from_fn(|k| {
            let b = load_i8x32(&xblock(k).qs);
            pair(b, b)
        });
        let c = transpose_sum8x2(core::array::from_fn(|k| corr(y4[k])));
        let dx = scales16(core::array::from_fn(|i| xblock(i % 4).d));
        let mut out = [0.0f32; 4];
        let mut r0 = 0;
        if nb == 4 {
            while r0 + 4 <= rows {
                let wr: [&[W; 4]; 4] = core::array::from_fn(|i| whole4(r0 + i, 0));
                let t = quad_results(quad_products(wr, &y4, c, dx, &wu, &dw));
                // SAFETY: writes exactly the four floats of `out`; no alignment requirement.
                unsafe { _mm_storeu_ps(out.as_mut_ptr(), t) };
                y[r0..r0 + 4].copy_from_slice(&out);
                r0 += 4;
            }
        }
        while r0 < rows {
            let p: [[W; 4]; 4] = core::array::from_fn(|i| copied4(r0 + i, 0));
            let wr: [&[W; 4]; 4] = core::array::from_fn(|i| &p[i]);
            let t = quad_results(quad_products(wr, &y4, c, dx, &wu, &dw));
            // SAFETY: writes exactly the four floats of `out`; no alignment requirement.
            unsafe { _mm_storeu_ps(out.as_mut_ptr(), t) };
            let rr = (rows - r0).min(4);
            y[r0..r0 + rr].copy_from_slice(&out[..rr]);
            r0 += rr;
        }
        return;
    }

    // PAIRS pairs of rows per pass (eight rows), eight blocks per step.
    const PAIRS: usize = 4;
    const _: () = assert!(PAIRS.is_multiple_of(2));
    let groups = nb.div_ceil(8);
    // The activation side of each group of eight blocks (the operands, their
    // correction totals and scales) does not depend on the rows: computed
    // once here for the first CACHED groups instead of once per pass of
    // eight rows; groups past them (rows over 4096 values) are computed in
    // the pass as they are needed. A tail group of at most four blocks has
    // each block in both halves (the short-row layout).
    let group = |g: usize| -> GroupActivations {
        let b0 = 8 * g;
        if nb - b0 <= 4 {
            let y: [__m512i; 4] = core::array::from_fn(|k| {
                let b = load_i8x32(&xblock(b0 + k).qs);
                pair(b, b)
            });
            GroupActivations {
                c: transpose_sum8x2(core::array::from_fn(|k| corr(y[k]))),
                dx: scales16(core::array::from_fn(|i| xblock(b0 + i % 4).d)),
                y,
            }
        } else {
            let y: [__m512i; 4] =
                core::array::from_fn(|k| q8_pair(xblock(b0 + k), xblock(b0 + k + 4)));
            GroupActivations {
                c: transpose_sum8x2(core::array::from_fn(|k| corr(y[k]))),
                dx: scales8x2(core::array::from_fn(|i| xblock(b0 + i).d)),
                y,
            }
        }
    };
    const CACHED: usize = 16;
    // Written in place and only as far as needed: building the array by
    // value (a copy) or zeroing all of it first (a `memset`) each cost about
    // 3 % of a decode step at latte-small's shape.
    let mut cached = [const { MaybeUninit::<GroupActivations>::uninit() }; CACHED];
    let ready = groups.min(CACHED);
    for (g, slot) in cached[..ready].iter_mut().enumerate() {
        slot.write(group(g));
    }
    let mut r0 = 0;
    while r0 < rows {
        let mut acc = [_mm512_setzero_ps(); PAIRS];
        for g in 0..groups {
            let b0 = 8 * g;
            let computed;
            let act = match cached[..ready].get(g) {
                // SAFETY: slots `0..ready` were written above.
                Some(slot) => unsafe { slot.assume_init_ref() },
                None => {
                    computed = group(g);
                    &computed
                }
            };
            if nb - b0 <= 4 {
                // A tail of at most four blocks: four rows per step as for
                // short rows, their products then moved to the lanes of
                // their accumulators (lanes 0..4 of each half; the other
                // lanes get +0.0, which changes nothing).
                let (y4, c, dx) = (&act.y, act.c, act.dx);
                let to_low = _mm512_setr_epi32(0, 1, 2, 3, 0, 0, 0, 0, 4, 5, 6, 7, 0, 0, 0, 0);
                let to_high =
                    _mm512_setr_epi32(8, 9, 10, 11, 0, 0, 0, 0, 12, 13, 14, 15, 0, 0, 0, 0);
                for (q, a) in acc.chunks_exact_mut(2).enumerate() {
                    let rq = r0 + 4 * q;
                    if rq >= rows {
                        continue;
                    }
                    let p = if nb - b0 == 4 && rq + 4 <= rows {
                        let wr: [&[W; 4]; 4] = core::array::from_fn(|i| whole4(rq + i, b0));
                        quad_products(wr, y4, c, dx, &wu, &dw)
                    } else {
                        let cp: [[W; 4]; 4] = core::array::from_fn(|i| copied4(rq + i, b0));
                        let wr: [&[W; 4]; 4] = core::array::from_fn(|i| &cp[i]);
                        quad_products(wr, y4, c, dx, &wu, &dw)
                    };
                    a[0] = _mm512_add_ps(a[0], _mm512_maskz_permutexvar_ps(0x0F0F, to_low, p));
                    a[1] = _mm512_add_ps(a[1], _mm512_maskz_permutexvar_ps(0x0F0F, to_high, p));
                }
                continue;
            }
            let (yk, c, dx) = (&act.y, act.c, act.dx);
            if b0 + 8 <= nb && r0 + 2 * PAIRS <= rows {
                for (p, a) in acc.iter_mut().enumerate() {
                    let ra = r0 + 2 * p;
                    let (wa, wb) = (whole(ra, b0), whole(ra + 1, b0));
                    *a = pair_step(*a, wa, wb, yk, c, dx, &wu, &dw);
                }
            } else {
                for (p, a) in acc.iter_mut().enumerate() {
                    let ra = r0 + 2 * p;
                    if b0 + 8 <= nb && ra + 2 <= rows {
                        let (wa, wb) = (whole(ra, b0), whole(ra + 1, b0));
                        *a = pair_step(*a, wa, wb, yk, c, dx, &wu, &dw);
                    } else if ra < rows {
                        let (wa, wb) = (padded(ra, b0), padded(ra + 1, b0));
                        *a = pair_step(*a, wa, wb, yk, c, dx, &wu, &dw);
                    }
                }
            }
        }
        for (p, a) in acc.iter().enumerate() {
            let ra = r0 + 2 * p;
            let (lo, hi) = halves(*a);
            if ra < rows {
                y[ra] = reduce_lanes(lo);
            }
            if ra + 1 < rows {
                y[ra + 1] = reduce_lanes(hi);
            }
        }
        r0 += 2 * PAIRS;
    }
}

// ---------------------------------------------------------------------------
// The four kernels.

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q8_0_tf(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    dot(
        w,
        x,
        &ZERO_Q8,
        |a: &BlockQ8_0, b: &BlockQ8_0| q8_biased_pair(a, b),
        |y| dpbusd(_mm512_set1_epi8(-128), y),
        |b| b.d,
    )
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q4_0_tf(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    dot(
        w,
        x,
        &ZERO_Q4,
        |a: &BlockQ4_0, b: &BlockQ4_0| q4_nibble_pair(a, b),
        |y| dpbusd(_mm512_set1_epi8(8), y),
        |b| b.d,
    )
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn matvec_q8_0_tf(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    matvec(
        w,
        stride,
        x,
        y,
        &ZERO_Q8,
        |a: &BlockQ8_0, b: &BlockQ8_0| q8_biased_pair(a, b),
        |y| dpbusd(_mm512_set1_epi8(-128), y),
        |b| b.d,
    )
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn matvec_q4_0_tf(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    matvec(
        w,
        stride,
        x,
        y,
        &ZERO_Q4,
        |a: &BlockQ4_0, b: &BlockQ4_0| q4_nibble_pair(a, b),
        |y| dpbusd(_mm512_set1_epi8(8), y),
        |b| b.d,
    )
}

// ---------------------------------------------------------------------------
// Activation quantizer, bit for bit `scalar::quantize_block_q8_0`.

/// `roundf` of sixteen floats of magnitude below 2^23: truncate, then step
/// away from zero when the (exact) remainder is at least one half (the AVX2
/// `round_half_away`).
#[inline]
#[target_feature(enable = "avx512f")]
fn round_half_away_v(r: __m512) -> __m512 {
    let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(r);
    let diff = _mm512_sub_ps(r, t);
    let one = splat(1.0);
    let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(diff, splat(0.5));
    let down = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(diff, splat(-0.5));
    let t = _mm512_mask_add_ps(t, up, t, one);
    _mm512_mask_sub_ps(t, down, t, one)
}

/// `|x|` of sixteen floats.
#[inline]
#[target_feature(enable = "avx512f")]
fn abs_v(x: __m512) -> __m512 {
    _mm512_castsi512_ps(_mm512_and_si512(
        _mm512_castps_si512(x),
        _mm512_set1_epi32(0x7FFF_FFFF),
    ))
}

/// Sixteen blocks at a time: first each block's `amax` (a maximum, so the
/// order of the fold does not matter for finite inputs), then `d`, `id` and
/// the `f16` scales of the sixteen blocks with one vector division each
/// (IEEE division: the scalar bits), then the quants block by block. A block
/// whose `id` is not finite (tiny values) goes through the scalar code, as
/// in the AVX2 version.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
fn quantize_q8_0_tf(x: &[f32], y: &mut [BlockQ8_0]) {
    for (ys, xs) in y.chunks_mut(16).zip(x.chunks(16 * 32)) {
        let mut am = [0.0f32; 16];
        for (a, b) in am.iter_mut().zip(xs.chunks_exact(32)) {
            let v0 = load_f32x16(b[..16].try_into().expect("16"));
            let v1 = load_f32x16(b[16..].try_into().expect("16"));
            let m = _mm512_max_ps(abs_v(v0), abs_v(v1));
            let m8 = _mm256_max_ps(
                _mm512_castps512_ps256(m),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(m))),
            );
            let m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps::<1>(m8));
            let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            let m1 = _mm_max_ss(m2, _mm_movehdup_ps(m2));
            *a = _mm_cvtss_f32(m1);
        }
        // `scalar::q8_0_scale` on sixteen lanes.
        let d = _mm512_div_ps(load_f32x16(&am), splat(127.0));
        let nonzero = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(d, _mm512_setzero_ps());
        let id = _mm512_maskz_div_ps(nonzero, splat(1.0), d);
        let mut ids = [0.0f32; 16];
        store_f32x16(&mut ids, id);
        // f16 with round to nearest even, as `half` does in the scalar code.
        let dh = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(d);
        let mut ds = [0u16; 16];
        // SAFETY: writes exactly the 32 bytes of `ds`; `storeu` has no
        // alignment requirement.
        unsafe { _mm256_storeu_si256(ds.as_mut_ptr().cast(), dh) };
        for (((blk, b), &id), &d) in ys.iter_mut().zip(xs.chunks_exact(32)).zip(&ids).zip(&ds) {
            let b: &[f32; 32] = b.try_into().expect("32");
            if !id.is_finite() {
                // `id` overflowed (tiny block): the scalar code defines the
                // (saturating) result.
                *blk = scalar::quantize_block_q8_0(b);
                continue;
            }
            // With a finite `id`, |x * id| <= 127 * (1 + 2^-20): in i8 range
            // after rounding (the narrowing saturates anyway).
            let idv = splat(id);
            let q0 = _mm512_cvtps_epi32(round_half_away_v(_mm512_mul_ps(
                load_f32x16(b[..16].try_into().expect("16")),
                idv,
            )));
            let q1 = _mm512_cvtps_epi32(round_half_away_v(_mm512_mul_ps(
                load_f32x16(b[16..].try_into().expect("16")),
                idv,
            )));
            let p8 = _mm256_inserti128_si256::<1>(
                _mm256_castsi128_si256(_mm512_cvtsepi32_epi8(q0)),
                _mm512_cvtsepi32_epi8(q1),
            );
            blk.d = d;
            store_i8x32(&mut blk.qs, p8);
        }
    }
}

// ---------------------------------------------------------------------------
// The recurrence's latent update, sixteen values of `Dh` at a time.

/// `scalar::latent_update` with the values `j .. j + 16` of `y` and `v` in
/// registers for a whole group of latents: the same multiplies and adds
/// for every value, in the same order of latents; a tail of `Dh % 16`
/// values goes through the scalar code.
#[target_feature(enable = "avx512f")]
fn latent_update_tf(s: &mut [f32], v: &[f32], r: &[f32], a: &[f32], w: &[f32], y: &mut [f32]) {
    let dh = v.len();
    if dh == 0 {
        return;
    }
    let g = (s.len() / dh).min(r.len()).min(a.len()).min(w.len());
    let full = dh.min(y.len()) / 16 * 16;
    for j in (0..full).step_by(16) {
        let vv = load_f32x16(v[j..j + 16].try_into().expect("16"));
        let yj: &mut [f32; 16] = (&mut y[j..j + 16]).try_into().expect("16");
        let mut acc = load_f32x16(yj);
        for l in 0..g {
            let sl: &mut [f32; 16] = (&mut s[l * dh + j..l * dh + j + 16])
                .try_into()
                .expect("16");
            let sv = _mm512_add_ps(
                _mm512_mul_ps(load_f32x16(sl), splat(r[l])),
                _mm512_mul_ps(splat(a[l]), vv),
            );
            store_f32x16(sl, sv);
            acc = _mm512_add_ps(acc, _mm512_mul_ps(splat(w[l]), sv));
        }
        store_f32x16(yj, acc);
    }
    if full < dh {
        // The values past the last whole sixteen (of `s` rows; `y` may be
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
// Elementwise math on sixteen lanes, bit for bit `scalar::exp_f32`,
// `tanh_f32` and `gelu_tanh_f32`: the operations of the AVX2 versions
// (multiply then add, never FMA; IEEE division; both branches of `tanh`
// computed and blended; NaN lanes keep their input).

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

/// Defines `$name(x: &mut [f32])`, applying the sixteen-lane `$f` to `x`
/// sixteen values at a time, NaN lanes left as they were; the tail goes
/// through `$f` in a zero-padded register.
macro_rules! map_f32x16 {
    ($name:ident, $f:ident) => {
        #[target_feature(enable = "avx512f")]
        fn $name(x: &mut [f32]) {
            let mut chunks = x.chunks_exact_mut(16);
            for c in &mut chunks {
                let c: &mut [f32; 16] = c.try_into().expect("16");
                let v = load_f32x16(c);
                store_f32x16(c, keep_nan($f(v), v));
            }
            let tail = chunks.into_remainder();
            if !tail.is_empty() {
                let mut buf = [0.0f32; 16];
                buf[..tail.len()].copy_from_slice(tail);
                let v = load_f32x16(&buf);
                store_f32x16(&mut buf, keep_nan($f(v), v));
                tail.copy_from_slice(&buf[..tail.len()]);
            }
        }
    };
}

map_f32x16!(exp_inplace_tf, exp_v);
map_f32x16!(tanh_inplace_tf, tanh_v);
map_f32x16!(gelu_tanh_inplace_tf, gelu_tanh_v);

#[inline]
#[target_feature(enable = "avx512f")]
fn splat(v: f32) -> __m512 {
    _mm512_set1_ps(v)
}

/// Lanes where `x` is NaN take `x`.
#[inline]
#[target_feature(enable = "avx512f")]
fn keep_nan(y: __m512, x: __m512) -> __m512 {
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x), y, x)
}

/// `scalar::exp_reduced` on sixteen lanes, each in `[EXP_MIN_X, EXP_MAX_X]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp_reduced_v(x: __m512) -> (__m512, __m512i) {
    let t = _mm512_add_ps(
        _mm512_mul_ps(x, splat(scalar::EXP_LOG2E)),
        splat(scalar::EXP_ROUND),
    );
    let n = _mm512_sub_epi32(
        _mm512_castps_si512(t),
        _mm512_set1_epi32(scalar::EXP_ROUND_BITS),
    );
    let nf = _mm512_sub_ps(t, splat(scalar::EXP_ROUND));
    let r = _mm512_sub_ps(x, _mm512_mul_ps(nf, splat(scalar::EXP_LN2_HI)));
    let r = _mm512_sub_ps(r, _mm512_mul_ps(nf, splat(scalar::EXP_LN2_LO)));
    let z = _mm512_mul_ps(r, r);
    let c = scalar::EXP_P;
    let mut p = splat(c[0]);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), splat(c[1]));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), splat(c[2]));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), splat(c[3]));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), splat(c[4]));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), splat(c[5]));
    p = _mm512_add_ps(_mm512_mul_ps(p, z), r);
    p = _mm512_add_ps(p, splat(1.0));
    (p, n)
}

/// `scalar::pow2` on sixteen lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn pow2_v(e: __m512i) -> __m512 {
    _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
        e,
        _mm512_set1_epi32(127),
    )))
}

/// `scalar::exp_core` on sixteen lanes, each in `[EXP_MIN_X, EXP_MAX_X]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp_core_v(x: __m512) -> __m512 {
    let (p, n) = exp_reduced_v(x);
    let n1 = _mm512_srai_epi32::<1>(n);
    _mm512_mul_ps(
        _mm512_mul_ps(p, pow2_v(n1)),
        pow2_v(_mm512_sub_epi32(n, n1)),
    )
}

/// `scalar::exp_core_mid` on sixteen lanes, each in `[1.25, 20]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp_core_mid_v(x: __m512) -> __m512 {
    let (p, n) = exp_reduced_v(x);
    _mm512_mul_ps(p, pow2_v(n))
}

/// `scalar::exp_f32` on sixteen lanes, except NaN lanes (garbage).
#[inline]
#[target_feature(enable = "avx512f")]
fn exp_v(x: __m512) -> __m512 {
    let c = _mm512_min_ps(
        _mm512_max_ps(x, splat(scalar::EXP_MIN_X)),
        splat(scalar::EXP_MAX_X),
    );
    exp_core_v(c)
}

/// `scalar::tanh_f32` on sixteen lanes, except NaN lanes (garbage).
#[inline]
#[target_feature(enable = "avx512f")]
fn tanh_v(x: __m512) -> __m512 {
    let xi = _mm512_castps_si512(x);
    let a = _mm512_castsi512_ps(_mm512_and_si512(xi, _mm512_set1_epi32(0x7FFF_FFFF)));
    // |x| < TANH_SMALL: the odd polynomial.
    let z = _mm512_mul_ps(a, a);
    let c = scalar::TANH_T;
    let mut q = splat(c[0]);
    q = _mm512_add_ps(_mm512_mul_ps(q, z), splat(c[1]));
    q = _mm512_add_ps(_mm512_mul_ps(q, z), splat(c[2]));
    q = _mm512_add_ps(_mm512_mul_ps(q, z), splat(c[3]));
    q = _mm512_add_ps(_mm512_mul_ps(q, z), splat(c[4]));
    q = _mm512_mul_ps(q, z);
    q = _mm512_mul_ps(q, a);
    let small = _mm512_add_ps(q, a);
    // Otherwise 1 - 2 / (exp(2 min(|x|, TANH_CLAMP)) + 1).
    let b = _mm512_min_ps(a, splat(scalar::TANH_CLAMP));
    let e = exp_core_mid_v(_mm512_add_ps(b, b));
    let one = splat(1.0);
    let large = _mm512_sub_ps(one, _mm512_div_ps(splat(2.0), _mm512_add_ps(e, one)));
    let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, splat(scalar::TANH_SMALL));
    let t = _mm512_castps_si512(_mm512_mask_blend_ps(is_small, large, small));
    let sign = _mm512_and_si512(xi, _mm512_set1_epi32(i32::MIN));
    _mm512_castsi512_ps(_mm512_or_si512(t, sign))
}

/// `scalar::gelu_tanh_f32` on sixteen lanes, except NaN lanes (garbage).
#[inline]
#[target_feature(enable = "avx512f")]
fn gelu_tanh_v(x: __m512) -> __m512 {
    let x3 = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(splat(scalar::GELU_C), x), x), x);
    let u = _mm512_mul_ps(splat(scalar::GELU_K), _mm512_add_ps(x, x3));
    let t = tanh_v(u);
    let g = _mm512_mul_ps(_mm512_mul_ps(splat(0.5), x), _mm512_add_ps(splat(1.0), t));
    let neg_inf = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(x, splat(f32::NEG_INFINITY));
    _mm512_mask_blend_ps(neg_inf, g, splat(-0.0))
}
