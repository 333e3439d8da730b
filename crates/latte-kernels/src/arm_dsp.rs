//! Cortex-M DSP-extension kernels (ARMv7E-M: Cortex-M4/M7; ARMv8-M Mainline
//! with DSP: Cortex-M33/M55) for the quantized dot products, written with
//! `asm!` (the DSP intrinsics are not stable).
//!
//! # How
//!
//! `SMLAD acc, a, b, acc` adds two 16x16-bit products to a 32-bit
//! accumulator: two multiply-accumulates per instruction. The 8-bit weights
//! are widened to 16-bit pairs in registers; the activations are widened
//! once per matrix-vector product into an aligned buffer on the stack (they
//! are shared by every row), in exactly the lane order the weight widening
//! produces, so the inner loop loads four activation words with one `LDM`.
//!
//! * `Q8_0` weights, per 8 values: two `LDR` (the quants sit at an odd
//!   half-word offset, so no `LDRD`), four `SXTB16` (bytes 0/2 and, rotated,
//!   1/3 of a word into two sign-extended half-words), one `LDM` and four
//!   `SMLAD`: 11 instructions for 8 multiply-accumulates.
//! * `Q4_0` weights, per 8 values: one `LDR` (four bytes hold eight
//!   nibbles), four `AND`s with the mask `0x000F000F` and a shifted copy of
//!   the word (low nibbles of bytes 0/2 and 1/3, high nibbles of bytes 0/2
//!   and 1/3: each an unsigned 16-bit pair), one `LDM` and four `SMLAD`: 10
//!   instructions for 8 multiply-accumulates. The nibbles are used
//!   unsigned, `q`, and the `-8` offset is applied once per block:
//!   `sum (q - 8) x = sum q x - 8 sum x`, with `sum x` computed when the
//!   activations are widened. Both are exact integer identities, so the
//!   block sums equal the scalar twin's.
//!
//! The per-block float arithmetic is the scalar specification's, in the same
//! order ([`crate::scalar`]), so every result is bit-identical to it.
//!
//! Rows wider than [`MAX_BLOCKS`] blocks (widened activations would need
//! more than 2 KiB of stack) are computed one block at a time, widening each
//! activation block as it goes: same results, fewer instructions saved.

use core::arch::asm;

use crate::block::{BlockQ4_0, BlockQ8_0, QK};
use crate::scalar::{f16_to_f32, reduce_lanes, LANES};

/// The most activation blocks widened on the stack at once: 32 blocks =
/// 1,024 columns, 2 KiB of half-words plus 256 bytes of scales and sums.
pub const MAX_BLOCKS: usize = 32;

/// Words of one widened activation block (32 values as 16-bit pairs).
const WORDS: usize = QK / 2;

/// One activation block widened to 16-bit pairs, in the lane order of one
/// weight format, with its scale and (for `Q4_0`) its plain sum.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Wide {
    w: [u32; WORDS],
}

const ZERO: Wide = Wide { w: [0; WORDS] };

/// Two signed bytes as a half-word pair: `a` in bits 0..16, `b` in 16..32.
#[inline(always)]
fn pair(a: i8, b: i8) -> u32 {
    (a as i16 as u16 as u32) | ((b as i16 as u16 as u32) << 16)
}

/// Widens `x` in the order of the `Q8_0` inner loop: for each group of four
/// values `j..j+4`, the pairs `(j, j+2)` and `(j+1, j+3)` (what `SXTB16` and
/// `SXTB16 ROR 8` make of a weight word).
#[inline]
fn widen_q8(x: &BlockQ8_0, out: &mut Wide) {
    for g in 0..QK / 4 {
        let j = 4 * g;
        out.w[2 * g] = pair(x.qs[j], x.qs[j + 2]);
        out.w[2 * g + 1] = pair(x.qs[j + 1], x.qs[j + 3]);
    }
}

/// Widens `x` in the order of the `Q4_0` inner loop: for each weight word
/// `qs[j..j+4]` (`j = 0, 4, 8, 12`), the pairs `(j, j+2)`, `(j+1, j+3)` of
/// the low nibbles and `(j+16, j+18)`, `(j+17, j+19)` of the high nibbles.
/// Returns `sum x` (exact).
#[inline]
fn widen_q4(x: &BlockQ8_0, out: &mut Wide) -> i32 {
    for g in 0..QK / 8 {
        let j = 4 * g;
        let h = j + QK / 2;
        out.w[4 * g] = pair(x.qs[j], x.qs[j + 2]);
        out.w[4 * g + 1] = pair(x.qs[j + 1], x.qs[j + 3]);
        out.w[4 * g + 2] = pair(x.qs[h], x.qs[h + 2]);
        out.w[4 * g + 3] = pair(x.qs[h + 1], x.qs[h + 3]);
    }
    x.qs.iter().map(|&q| q as i32).sum()
}

/// `f16` bits to `f32`: the same value as [`f16_to_f32`] for every input,
/// with a short integer path for normal numbers (the scales of a model). (The
/// FPU's `VCVTB` would be one instruction, but `asm!` with FPU registers
/// needs a target feature that stable Rust does not expose for these targets.)
#[inline(always)]
pub fn scale(bits: u16) -> f32 {
    let em = (bits & 0x7FFF) as u32;
    if (0x0400..0x7C00).contains(&em) {
        // Normal: rebias the exponent from 15 to 127, widen the mantissa.
        let sign = ((bits & 0x8000) as u32) << 16;
        f32::from_bits(sign | ((em << 13) + ((127 - 15) << 23)))
    } else {
        f16_to_f32(bits)
    }
}

/// Exact `sum w[j] * x[j]` of a `Q8_0` weight block against a widened
/// activation block.
#[inline(always)]
fn block_sum_q8(w: &BlockQ8_0, x: &Wide) -> i32 {
    let mut acc: i32 = 0;
    // SAFETY: reads 32 bytes from `w.qs` (`LDR`, unaligned word loads are
    // architectural on ARMv7E-M/ARMv8-M Mainline unless a trap is
    // configured, which nothing here does) and 16 words from `x.w` (`LDM`,
    // 8-byte aligned); writes only the named registers.
    unsafe {
        asm!(
            ".rept 4",
            "ldr {w0}, [{wp}], #4",
            "ldr {w1}, [{wp}], #4",
            "ldm {xp}!, {{r8, r9, r10, r12}}",
            "sxtb16 {t}, {w0}",
            "smlad {acc}, {t}, r8, {acc}",
            "sxtb16 {t}, {w0}, ror #8",
            "smlad {acc}, {t}, r9, {acc}",
            "sxtb16 {t}, {w1}",
            "smlad {acc}, {t}, r10, {acc}",
            "sxtb16 {t}, {w1}, ror #8",
            "smlad {acc}, {t}, r12, {acc}",
            ".endr",
            wp = inout(reg) w.qs.as_ptr() => _,
            xp = inout(reg) x.w.as_ptr() => _,
            acc = inout(reg) acc,
            w0 = out(reg) _,
            w1 = out(reg) _,
            t = out(reg) _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r12") _,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    acc
}

/// Exact `sum q[j] * x[j]` of the unsigned nibbles `q` of a `Q4_0` weight
/// block against a widened activation block (without the `-8`).
#[inline(always)]
fn block_sum_q4(w: &BlockQ4_0, x: &Wide) -> i32 {
    let mut acc: i32 = 0;
    // SAFETY: reads 16 bytes from `w.qs` (unaligned `LDR`, see
    // `block_sum_q8`) and 16 words from `x.w` (`LDM`, 8-byte aligned);
    // writes only the named registers.
    unsafe {
        asm!(
            ".rept 4",
            "ldr {w}, [{wp}], #4",
            "ldm {xp}!, {{r8, r9, r10, r12}}",
            "and {t}, {m}, {w}",
            "smlad {acc}, {t}, r8, {acc}",
            "and {t}, {m}, {w}, lsr #8",
            "smlad {acc}, {t}, r9, {acc}",
            "and {t}, {m}, {w}, lsr #4",
            "smlad {acc}, {t}, r10, {acc}",
            "and {t}, {m}, {w}, lsr #12",
            "smlad {acc}, {t}, r12, {acc}",
            ".endr",
            wp = inout(reg) w.qs.as_ptr() => _,
            xp = inout(reg) x.w.as_ptr() => _,
            m = in(reg) 0x000F_000Fu32,
            acc = inout(reg) acc,
            w = out(reg) _,
            t = out(reg) _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r12") _,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    acc
}

/// One row in the reference order, `acc[i % 8] += sumi_i * (d_w * d_x)`,
/// written as groups of eight blocks so the eight accumulators stay in
/// registers.
#[inline(always)]
fn row<B>(
    w: &[B],
    x: &[Wide],
    dx: &[f32],
    sum: impl Fn(&B, &Wide, usize) -> i32,
    d: impl Fn(&B) -> u16,
) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut i = 0;
    for ((wg, xg), dg) in w.chunks(LANES).zip(x.chunks(LANES)).zip(dx.chunks(LANES)) {
        for (lane, ((b, xw), &sx)) in wg.iter().zip(xg).zip(dg).enumerate() {
            acc[lane] += sum(b, xw, i + lane) as f32 * (scale(d(b)) * sx);
        }
        i += LANES;
    }
    reduce_lanes(acc)
}

/// Widened activations for up to [`MAX_BLOCKS`] blocks.
struct Widened {
    x: [Wide; MAX_BLOCKS],
    d: [f32; MAX_BLOCKS],
    sum: [i32; MAX_BLOCKS],
}

impl Widened {
    const fn new() -> Self {
        Widened {
            x: [ZERO; MAX_BLOCKS],
            d: [0.0; MAX_BLOCKS],
            sum: [0; MAX_BLOCKS],
        }
    }
}

/// `Q8_0 . Q8_0` dot product.
///
/// # Safety
/// The CPU has the DSP extension (compile-time: `latte_arm_dsp`).
pub unsafe fn dot_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut xw = ZERO;
    for (i, (b, xb)) in w.iter().zip(x).enumerate() {
        widen_q8(xb, &mut xw);
        let p = block_sum_q8(b, &xw) as f32 * (scale(b.d) * scale(xb.d));
        acc[i % LANES] += p;
    }
    reduce_lanes(acc)
}

/// `Q4_0 . Q8_0` dot product.
///
/// # Safety
/// As [`dot_q8_0`].
pub unsafe fn dot_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut xw = ZERO;
    for (i, (b, xb)) in w.iter().zip(x).enumerate() {
        let sx = widen_q4(xb, &mut xw);
        let sumi = block_sum_q4(b, &xw) - 8 * sx;
        let p = sumi as f32 * (scale(b.d) * scale(xb.d));
        acc[i % LANES] += p;
    }
    reduce_lanes(acc)
}

/// `y[r] = dot_q8_0(row r, x)`, rows `stride` blocks apart.
///
/// # Safety
/// As [`dot_q8_0`]; `(y.len() - 1) * stride + x.len() <= w.len()` and
/// `x.len() <= stride`.
pub unsafe fn matvec_q8_0(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    let nb = x.len();
    if nb > MAX_BLOCKS {
        for (r, out) in y.iter_mut().enumerate() {
            // SAFETY: forwarded contract.
            *out = unsafe { dot_q8_0(&w[r * stride..r * stride + nb], x) };
        }
        return;
    }
    let mut wide = Widened::new();
    for i in 0..nb {
        widen_q8(&x[i], &mut wide.x[i]);
        wide.d[i] = scale(x[i].d);
    }
    let (xs, ds) = (&wide.x[..nb], &wide.d[..nb]);
    for (r, out) in y.iter_mut().enumerate() {
        let wr = &w[r * stride..r * stride + nb];
        *out = row(wr, xs, ds, |b, xw, _| block_sum_q8(b, xw), |b| b.d);
    }
}

/// `y[r] = dot_q4_0(row r, x)`, rows `stride` blocks apart.
///
/// # Safety
/// As [`matvec_q8_0`].
pub unsafe fn matvec_q4_0(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    let nb = x.len();
    if nb > MAX_BLOCKS {
        for (r, out) in y.iter_mut().enumerate() {
            // SAFETY: forwarded contract.
            *out = unsafe { dot_q4_0(&w[r * stride..r * stride + nb], x) };
        }
        return;
    }
    let mut wide = Widened::new();
    for i in 0..nb {
        wide.sum[i] = widen_q4(&x[i], &mut wide.x[i]);
        wide.d[i] = scale(x[i].d);
    }
    let (xs, ds, sums) = (&wide.x[..nb], &wide.d[..nb], &wide.sum[..nb]);
    for (r, out) in y.iter_mut().enumerate() {
        let wr = &w[r * stride..r * stride + nb];
        *out = row(
            wr,
            xs,
            ds,
            |b, xw, i| block_sum_q4(b, xw) - 8 * sums[i],
            |b| b.d,
        );
    }
}
