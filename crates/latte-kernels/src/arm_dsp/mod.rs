//! Cortex-M DSP-extension kernels (ARMv7E-M: Cortex-M4/M7; ARMv8-M Mainline
//! with DSP: Cortex-M33/M55) for the quantized dot products, written with
//! `asm!` (the DSP intrinsics are not stable).
//!
//! # How
//!
//! `SMLAD acc, a, b, acc` adds two 16x16-bit products to a 32-bit
//! accumulator: two multiply-accumulates per instruction. The 8-bit weights
//! are widened to 16-bit pairs in registers; the activations are widened
//! once per matrix-vector product into a buffer on the stack (they are
//! shared by every row), in exactly the lane order the weight widening
//! produces, so the inner loop loads four activation words with one `LDM`.
//!
//! * `Q8_0` weights, per 8 values: two weight words, four `SXTB16` (bytes
//!   0/2 and, rotated, 1/3 of a word into two sign-extended half-words) and
//!   four `SMLAD`.
//! * `Q4_0` weights, per 8 values: one weight word (eight nibbles) and four
//!   `SMLAD`. Without an FPU (and in the dot products) four `AND`s with the
//!   mask `0x000F000F` and shifted copies of the word make four unsigned
//!   nibble pairs, and `sum (q - 8) x = -8 sum x + sum q x` starts the sum at
//!   `-8 sum x`, computed when the activations are widened. The FPU
//!   matrix-vector product needs only three `AND`s: it uses the raw weight
//!   word as the first operand and works modulo 2^16 (see `fpu::q4_chunk`).
//!
//! All block sums are exact integers, equal to the scalar twin's. The float
//! arithmetic is the scalar specification's, in the same order
//! ([`crate::scalar`]): `acc[i % 8] += (sumi as f32) * (d_w * d_x)`, no fused
//! multiply-add, then the fixed reduction, so every result is bit-identical
//! to it (NaN payloads aside, where compiled float code may commute
//! operands; the `asm!` kernels keep the scalar operand order).
//!
//! # The matrix-vector product on FPU targets (`eabihf`)
//!
//! One `asm!` loop computes the rows two at a time over all their blocks:
//! the eight lane accumulators of both rows stay in FPU registers
//! (`s0..s15`), every activation word loaded (`LDM`) and every `d_x` (one
//! `VLDM` per eight blocks) serves both rows, and the `f16` weight scales
//! are converted by the FPU (`VCVTB`/`VCVTT`). The body is unrolled over the
//! eight lanes, so a row of any length runs without index arithmetic: a last
//! group of fewer than eight blocks is entered part-way through a `TBH`
//! table (the private `fpu` module has the layout and the register map).
//! Per block of two rows (64 multiply-accumulates):
//!
//! | | `Q8_0` | `Q8_0`, aligned rows | `Q4_0` |
//! |---|---|---|---|
//! | activations: `LDM` | 4 | 4 | 4 (the first also loads `8 sum x`) |
//! | weights | 16 `LDR` | 8 `LDRD`, or 8 `LDRD` + 2 `LDR` + 2 `PKHBT` (average 10) | 8 `LDR` |
//! | unpack: `SXTB16` / `AND` | 32 | 32 | 24 |
//! | `SMLAD` (`SMUAD` starts a sum) | 32 | 32 | 32 |
//! | weight scales: 2 `LDRH` + `VMOV` (aligned: 2 `VLDR`), 2 `VCVTB`/`VCVTT`, 2 `VMUL` by `d_x` | 7 | 6 | 7 |
//! | block products: `VMOV`, 2 `VCVT`, 2 `VMUL`, 2 `VADD`/`VSUB` | 7 | 7 | 7 |
//! | total | 98 | 91 | 82 |
//! | per 8 multiply-accumulates of one row | 12.25 | 11.4 | 10.25 |
//!
//! (CMSIS-NN's DSP kernel needs about 13 per 8 multiply-accumulates before
//! any float work.) On top: 9 instructions per group of eight blocks of a
//! pair of rows (dispatch, row pointers; 2 more to enter a last partial
//! group), 28 per pair of rows (start, reduction, results, loop), and the
//! widening of the activations, about 40 (`Q8_0`) or 85 (`Q4_0`)
//! instructions per block, once per product. Measured under QEMU on the
//! Cortex-M4 (`mps2-an386`, 64 x 512, `-icount`): 1.49 instructions per
//! multiply-accumulate for `Q8_0` (11.9 per 8), 1.37 for `Q4_0` (11.0 per
//! 8); before this design, 2.64 and 3.00.
//!
//! "Aligned rows": with an even row stride all rows share the word
//! alignment of the first, and every other block's quants are
//! word-aligned (`LDRD`); the blocks in between start on a word, so they are
//! read as aligned words too, with their activations widened rotated by two
//! quants. The scales are then the low or high half of an aligned word
//! (`VLDR` + `VCVTB`/`VCVTT`). Odd strides use the unaligned kernel.
//!
//! The `f16` conversion by the FPU is exact and, with `FPSCR.DN` and
//! `FPSCR.AHP` clear (their reset values, which nothing here changes), equal
//! to `half`'s conversion for every input, NaN payloads included
//! ([`scale`]).
//!
//! Without an FPU (`thumbv7em-none-eabi`, `thumbv8m.main-none-eabi` with
//! `+dsp`) the same integer block sums are combined by Rust float code, one
//! row at a time.
//!
//! Rows wider than [`MAX_BLOCKS`] blocks are computed one block at a time,
//! widening each activation block for every row: same results, fewer
//! instructions saved.

use core::arch::asm;

use crate::block::{BlockQ8_0, QK};

/// `times!(N; "a", "b", ...)`: the asm lines repeated `N` times (3 or 4) as
/// one template string, one line each.
macro_rules! times {
    (3; $($line:literal),* $(,)?) => {
        concat!($($line, "\n",)* $($line, "\n",)* $($line, "\n",)*)
    };
    (4; $($line:literal),* $(,)?) => {
        concat!($($line, "\n",)* $($line, "\n",)* $($line, "\n",)* $($line, "\n",)*)
    };
}

mod dot;
mod f16;
#[cfg(latte_arm_fpu)]
mod fpu;
mod matvec;
#[cfg(latte_arm_fpu)]
mod window;

pub(crate) use dot::{dot_q4_0, dot_q8_0};
pub(crate) use f16::{dot_f16, matvec_f16};
pub(crate) use matvec::{matvec_q4_0, matvec_q8_0};
#[cfg(latte_arm_fpu)]
pub(crate) use window::{window_dots, window_sums};

/// The most activation blocks widened on the stack at once: 32 blocks =
/// 1,024 columns, 2,304 bytes of stack for the widened activations (32 x 72
/// bytes for `Q4_0` weights, 32 x 68 for `Q8_0`; on FPU targets the same in
/// groups of eight, see the `fpu` module).
pub(crate) const MAX_BLOCKS: usize = 32;

/// Words of one widened activation block (32 values as 16-bit pairs).
const WORDS: usize = QK / 2;

/// One activation block widened for `Q8_0` weights (the dot products and
/// the matrix-vector product without FPU): its scale, then its 32 values as
/// 16-bit pairs in the lane order of [`widen_q8_words`].
#[derive(Clone, Copy)]
#[repr(C)]
struct WideQ8 {
    dx: f32,
    w: [u32; WORDS],
}

/// One activation block widened for `Q4_0` weights (the dot products and
/// the matrix-vector product without FPU): its scale, `-8 * sum x` (the
/// start value of the block's integer sum), then its 32 values as 16-bit
/// pairs in the lane order of [`widen_q4_words`].
#[derive(Clone, Copy)]
#[repr(C)]
struct WideQ4 {
    dx: f32,
    corr: i32,
    w: [u32; WORDS],
}

impl WideQ8 {
    const ZERO: WideQ8 = WideQ8 {
        dx: 0.0,
        w: [0; WORDS],
    };
}

impl WideQ4 {
    const ZERO: WideQ4 = WideQ4 {
        dx: 0.0,
        corr: 0,
        w: [0; WORDS],
    };
}

const _: () = assert!(core::mem::size_of::<WideQ8>() == 68);
const _: () = assert!(core::mem::size_of::<WideQ4>() == 72);

/// Widens the 32 quants of `x` into `out` in the order of the `Q8_0` inner
/// loop: for each group of four values `j..j+4`, the pairs `(j, j+2)` and
/// `(j+1, j+3)` as 16-bit halves (what `SXTB16` and `SXTB16 ROR 8` make of a
/// weight word).
///
/// # Safety
/// `out` is valid for writing 16 words and 4-byte aligned.
#[inline(always)]
unsafe fn widen_q8_words(x: &BlockQ8_0, out: *mut u32) {
    // SAFETY: reads the 32 bytes of `x.qs` (unaligned `LDR`, see
    // `block_sum_q8`), writes the 16 words at `out` (`STM`, aligned: the
    // caller); writes only the declared registers.
    unsafe {
        asm!(
            // 4 times; `times!` writes the lines out (LLVM sizes inline asm by
            // its lines, so a `.rept` would misplace literal pools and branches).
            times!(4;
                "ldr {a}, [{q}], #4",
                "ldr {b}, [{q}], #4",
                "sxtb16 r8, {a}",
                "sxtb16 r9, {a}, ror #8",
                "sxtb16 r10, {b}",
                "sxtb16 r12, {b}, ror #8",
                "stm {o}!, {{r8, r9, r10, r12}}",
            ),
            q = inout(reg) x.qs.as_ptr() => _,
            o = inout(reg) out => _,
            a = out(reg) _,
            b = out(reg) _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r12") _,
            options(nostack, preserves_flags),
        );
    }
}

/// Widens the 32 quants of `x` into `out` in the order of the `Q4_0` inner
/// loop: for each weight word `qs[j..j+4]` (`j = 0, 4, 8, 12`), the pairs
/// `(j, j+2)`, `(j+1, j+3)` of the low nibbles and `(j+16, j+18)`,
/// `(j+17, j+19)` of the high nibbles. Returns `sum x` (exact).
///
/// # Safety
/// As [`widen_q8_words`].
#[inline(always)]
unsafe fn widen_q4_words(x: &BlockQ8_0, out: *mut u32) -> i32 {
    let mut sum = 0i32;
    // SAFETY: as in `widen_q8_words` (the block sum cannot overflow, so the
    // Q flag is untouched).
    unsafe {
        asm!(
            // 4 times; `times!` writes the lines out (LLVM sizes inline asm by
            // its lines, so a `.rept` would misplace literal pools and branches).
            times!(4;
                "ldr {b}, [{q}, #16]",
                "ldr {a}, [{q}], #4",
                "sxtb16 r8, {a}",
                "sxtb16 r9, {a}, ror #8",
                "sxtb16 r10, {b}",
                "sxtb16 r12, {b}, ror #8",
                "stm {o}!, {{r8, r9, r10, r12}}",
                "smlad {s}, r8, {one}, {s}",
                "smlad {s}, r9, {one}, {s}",
                "smlad {s}, r10, {one}, {s}",
                "smlad {s}, r12, {one}, {s}",
            ),
            q = inout(reg) x.qs.as_ptr() => _,
            o = inout(reg) out => _,
            s = inout(reg) sum,
            one = in(reg) 0x0001_0001u32,
            a = out(reg) _,
            b = out(reg) _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r12") _,
            options(nostack, preserves_flags),
        );
    }
    sum
}

/// `x` widened for `Q8_0` weights into `out`.
#[inline(always)]
fn widen_q8(x: &BlockQ8_0, out: &mut WideQ8) {
    out.dx = scale(x.d);
    // SAFETY: `out.w` is 16 aligned words.
    unsafe { widen_q8_words(x, out.w.as_mut_ptr()) };
}

/// `x` widened for `Q4_0` weights into `out`.
#[inline(always)]
fn widen_q4(x: &BlockQ8_0, out: &mut WideQ4) {
    out.dx = scale(x.d);
    // SAFETY: `out.w` is 16 aligned words.
    out.corr = -8 * unsafe { widen_q4_words(x, out.w.as_mut_ptr()) };
}

/// `f16` bits to `f32`: the same value as `half`'s conversion for every
/// input. On FPU targets one `VCVTB` (see the module docs for the `FPSCR`
/// assumption); without an FPU a short integer path for normal numbers (the
/// scales of a model) and `half` for the rest.
#[cfg(latte_arm_fpu)]
#[inline(always)]
pub fn scale(bits: u16) -> f32 {
    let out: u32;
    // SAFETY: register-only FPU arithmetic on an `eabihf` target (it has an
    // FPU with the half-precision conversions: FPv4-SP and later); `s0` is
    // declared clobbered. `FPSCR` is left as it was except for cumulative
    // exception flags, as any float operation.
    unsafe {
        asm!(
            "vmov s0, {b}",
            "vcvtb.f32.f16 s0, s0",
            "vmov {b}, s0",
            b = inout(reg) bits as u32 => out,
            out("s0") _,
            options(pure, nomem, nostack),
        );
    }
    f32::from_bits(out)
}

/// `f16` bits to `f32`: the same value as `half`'s conversion for every
/// input. On FPU targets one `VCVTB` (see the module docs for the `FPSCR`
/// assumption); without an FPU a short integer path for normal numbers (the
/// scales of a model) and `half` for the rest.
#[cfg(not(latte_arm_fpu))]
#[inline(always)]
pub fn scale(bits: u16) -> f32 {
    let em = (bits & 0x7FFF) as u32;
    if (0x0400..0x7C00).contains(&em) {
        // Normal: rebias the exponent from 15 to 127, widen the mantissa.
        let sign = ((bits & 0x8000) as u32) << 16;
        f32::from_bits(sign | ((em << 13) + ((127 - 15) << 23)))
    } else {
        crate::scalar::f16_to_f32(bits)
    }
}
