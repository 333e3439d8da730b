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

use crate::block::{BlockQ4_0, BlockQ8_0, QK};

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

use crate::scalar::{reduce_lanes, LANES};

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

/// Exact `sum w[j] * x[j]` of a `Q8_0` weight block against a widened
/// activation block.
#[inline(always)]
fn block_sum_q8(w: &BlockQ8_0, x: &WideQ8) -> i32 {
    let mut acc: i32 = 0;
    // SAFETY: reads 32 bytes from `w.qs` (`LDR`, unaligned word loads are
    // architectural on ARMv7E-M/ARMv8-M Mainline unless a trap is
    // configured, which nothing here does) and 16 words from `x.w` (`LDM`,
    // 4-byte aligned); writes only the named registers.
    unsafe {
        asm!(
            // 4 times; `times!` writes the lines out (LLVM sizes inline asm by
            // its lines, so a `.rept` would misplace literal pools and branches).
            times!(4;
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
            ),
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

/// Exact `sum (q[j] - 8) * x[j]` of a `Q4_0` weight block against a widened
/// activation block (nibbles `q` unsigned, started from `x.corr`).
#[inline(always)]
fn block_sum_q4(w: &BlockQ4_0, x: &WideQ4) -> i32 {
    let mut acc: i32 = x.corr;
    // SAFETY: reads 16 bytes from `w.qs` (unaligned `LDR`, see
    // `block_sum_q8`) and 16 words from `x.w` (`LDM`, 4-byte aligned);
    // writes only the named registers.
    unsafe {
        asm!(
            // 4 times; `times!` writes the lines out (LLVM sizes inline asm by
            // its lines, so a `.rept` would misplace literal pools and branches).
            times!(4;
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
            ),
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

/// `p_i = sumi_i * (d_w * d_x)` of one `Q8_0` block.
#[inline(always)]
fn product_q8(w: &BlockQ8_0, x: &WideQ8) -> f32 {
    block_sum_q8(w, x) as f32 * (scale(w.d) * x.dx)
}

/// `p_i = sumi_i * (d_w * d_x)` of one `Q4_0` block.
#[inline(always)]
fn product_q4(w: &BlockQ4_0, x: &WideQ4) -> f32 {
    block_sum_q4(w, x) as f32 * (scale(w.d) * x.dx)
}

/// The reference accumulation of the block products `p_i`:
/// `acc[i % 8] += p_i`, then the reference reduction.
#[inline(always)]
fn accumulate(products: impl Iterator<Item = f32>) -> f32 {
    let mut acc = [0.0f32; LANES];
    for (i, p) in products.enumerate() {
        acc[i % LANES] += p;
    }
    reduce_lanes(acc)
}

/// `Q8_0 . Q8_0` dot product.
///
/// # Safety
/// The CPU has the DSP extension (compile-time: `latte_arm_dsp`).
pub(crate) unsafe fn dot_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    let mut wide = WideQ8::ZERO;
    accumulate(w.iter().zip(x).map(|(b, xb)| {
        widen_q8(xb, &mut wide);
        product_q8(b, &wide)
    }))
}

/// `Q4_0 . Q8_0` dot product.
///
/// # Safety
/// As [`dot_q8_0`].
pub(crate) unsafe fn dot_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    let mut wide = WideQ4::ZERO;
    accumulate(w.iter().zip(x).map(|(b, xb)| {
        widen_q4(xb, &mut wide);
        product_q4(b, &wide)
    }))
}

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

/// The two-row matrix-vector kernels of FPU targets (module docs).
///
/// # Activation layout
///
/// The widened activations are stored in groups of (up to) eight blocks,
/// in the order the kernel reads them: the group's eight `d_x` (lane `l`
/// in word `l`; one `VLDM` into `s24..s31`), then its blocks from the
/// highest lane to lane 0, each 16 words (`Q8_0`) or `8 sum x` and 16 words
/// (`Q4_0`). The loop body is unrolled over the lanes in that order, lane 7
/// first, so a last group of `r < 8` blocks (lanes `r-1..0`) is the tail of
/// the body: it is entered through a `TBH` table, and block `i` lands in
/// lane `i % 8` of the reference order with no index arithmetic. At most
/// four groups of 8 + 8 x 17 words: 2,304 bytes.
///
/// # Registers
///
/// `r6`, `r7`, `sp` and `pc` are not available to `asm!`; everything else
/// is used, and every FPU register:
///
/// | register | role |
/// |---|---|
/// | `r0`, `r1` | integer block sums of rows B and A (`r0` first holds `8 sum x` for `Q4_0`) |
/// | `r2`..`r5` | four activation words (`LDM`) |
/// | `r8` | unpacked weight pair |
/// | `r9`, `r10` | weight words (`Q8_0`); weight word and nibble mask (`Q4_0`) |
/// | `r11`, `r12` | rows A and B, at the first block of the current group |
/// | `lr` | next widened activation word |
/// | `s0`..`s7`, `s8`..`s15` | lane accumulators of rows A and B |
/// | `s16` | address of the `Job` |
/// | `s17`..`s20` | `d_w * d_x` of A and B, block sums of A and B; then the two results |
/// | `s21`..`s23` | `TBH` index of a last partial group, end of the whole groups, end of the activations |
/// | `s24`..`s31` | `d_x` of the current group, by lane |
///
/// Between pairs of rows the loop state lives in the `Job` in memory
/// (`LDM`, `LDRD`/`STRD`), so one `asm!` statement runs all the pairs of
/// rows of a product.
#[cfg(latte_arm_fpu)]
mod fpu {
    use core::arch::asm;
    use core::mem::{size_of, MaybeUninit};

    use super::{scale, widen_q8_words, MAX_BLOCKS, WORDS};
    use crate::block::{BlockQ4_0, BlockQ8_0};
    use crate::scalar::LANES;

    /// Words of a widened `Q8_0`-order block.
    const BLOCK_Q8: usize = WORDS;
    /// Words of a widened `Q4_0`-order block (`8 sum x` first), and of a
    /// group of eight.
    const BLOCK_Q4: usize = 1 + WORDS;
    const GROUP_Q4: usize = LANES + LANES * BLOCK_Q4;

    /// The widened activations of one product: 4 groups of 144 words at
    /// most, 2,304 bytes (`Q8_0` order uses 2,176).
    type Acts = MaybeUninit<[u32; MAX_BLOCKS / LANES * GROUP_Q4]>;

    /// Sixteen `+0.0`: the accumulators' start values, one `VLDM`.
    static ZEROS: [f32; 2 * LANES] = [0.0; 2 * LANES];

    /// What the kernel loop reads per pair of rows (one `LDM` and one
    /// `LDRD` from the address in `s16`) and updates.
    #[repr(C)]
    struct Job {
        /// Bytes from row A to row B (0: a single row, computed twice).
        stride: usize,
        /// [`ZEROS`].
        zeros: *const f32,
        /// Row A of the next pair (`r11`); row B is `stride` bytes further.
        w: usize,
        /// The widened activations.
        x: *const u32,
        /// Where the next pair of results goes.
        y: *mut f32,
        /// Pairs of rows left (at least 1).
        pairs: usize,
    }

    /// The activations' shape as the kernel needs it (addresses in bytes).
    #[derive(Clone, Copy)]
    struct Shape {
        /// `TBH` index of the last group's first lane: `8 - r` for `r`
        /// blocks (unused when `r = 0`).
        entry: usize,
        /// End of the whole groups of eight.
        full_end: usize,
        /// End of the activations.
        end: usize,
    }

    /// [`widen_q8_words`] of the quants of `x` rotated by two,
    /// `x[2..32]` then `x[0..2]`: the activations of a lane that
    /// `q8_chunk!` reads as `rot`.
    ///
    /// # Safety
    /// `out` is valid for writing 16 words and 4-byte aligned.
    #[inline(always)]
    unsafe fn widen_q8_rot2_words(x: &BlockQ8_0, out: *mut u32) {
        // SAFETY: reads the 32 bytes of `x.qs` (unaligned `LDR`/`LDRH`),
        // writes the 16 words at `out` (`STM`, aligned: the caller); writes
        // only the declared registers.
        unsafe {
            asm!(
                // 3 times; `times!` writes the lines out (LLVM sizes inline asm by
                // its lines, so a `.rept` would misplace literal pools and branches).
                times!(3;
                    "ldr {a}, [{q}], #4",
                    "ldr {b}, [{q}], #4",
                    "sxtb16 r8, {a}",
                    "sxtb16 r9, {a}, ror #8",
                    "sxtb16 r10, {b}",
                    "sxtb16 r12, {b}, ror #8",
                    "stm {o}!, {{r8, r9, r10, r12}}",
                ),
                // `q` is at quant 26: quants 26..30, then 30, 31, 0, 1.
                "ldr {a}, [{q}]",
                "ldrh {b}, [{q}, #4]",
                "ldrh r8, [{q}, #-26]",
                "pkhbt {b}, {b}, r8, lsl #16",
                "sxtb16 r8, {a}",
                "sxtb16 r9, {a}, ror #8",
                "sxtb16 r10, {b}",
                "sxtb16 r12, {b}, ror #8",
                "stm {o}, {{r8, r9, r10, r12}}",
                q = inout(reg) x.qs.as_ptr().wrapping_add(2) => _,
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

    /// Widens the 32 quants of `x` into `out` for `q4_chunk!`: for each
    /// weight word `qs[j..j+4]` (`j = 0, 4, 8, 12`), with `X_m = -x[j + m]`
    /// and `Y_m = -x[j + 16 + m]`, the 16-bit pairs (low half from `m = 0`,
    /// high half from `m = 2`) `X0`, `Y0 - 16 X0`, `X1 - 256 X0`,
    /// `Y1 - 4096 X0`, each modulo 2^16. Returns `sum x` (exact).
    ///
    /// # Safety
    /// `out` is valid for writing 16 words and 4-byte aligned.
    #[inline(always)]
    unsafe fn widen_q4_mod16(x: &BlockQ8_0, out: *mut u32) -> i32 {
        let mut pairs = 0u32;
        // SAFETY: reads the 32 bytes of `x.qs` (unaligned `LDR`), writes
        // the 16 words at `out` (`STM`, aligned: the caller); writes only
        // the declared registers (and the GE flags).
        unsafe {
            asm!(
                // 4 times; `times!` writes the lines out (LLVM sizes inline asm by
                // its lines, so a `.rept` would misplace literal pools and branches).
                times!(4;
                    "ldr {h}, [{q}, #16]",
                    "ldr {l}, [{q}], #4",
                    // The pairs of the sum: even and odd bytes, 16-bit lanes.
                    "sxtab16 {s}, {s}, {l}",
                    "sxtab16 {s}, {s}, {l}, ror #8",
                    "sxtab16 {s}, {s}, {h}",
                    "sxtab16 {s}, {s}, {h}, ror #8",
                    "sxtb16 r8, {l}",             // (x0, x2)
                    "sxtb16 r9, {l}, ror #8",     // (x1, x3)
                    "and r10, {m8}, {l}, lsl #8", // 256 (x0, x2)
                    "usub16 r10, r10, r9",        // X1 - 256 X0
                    "lsl r12, {l}, #12",
                    "and r12, r12, #0xF000F000",  // 4096 (x0, x2)
                    "sxtb16 r9, {h}, ror #8",     // (y1, y3)
                    "usub16 r12, r12, r9",        // Y1 - 4096 X0
                    "and {l}, {m4}, r8, lsl #4",  // 16 (x0, x2)
                    "sxtb16 r9, {h}",             // (y0, y2)
                    "usub16 r9, {l}, r9",         // Y0 - 16 X0
                    "usub16 r8, {z}, r8",         // X0
                    "stm {o}!, {{r8, r9, r10, r12}}",
                ),
                q = inout(reg) x.qs.as_ptr() => _,
                o = inout(reg) out => _,
                s = inout(reg) pairs,
                z = in(reg) 0u32,
                m4 = in(reg) 0xFFF0_FFFFu32,
                m8 = in(reg) 0xFF00_FF00u32,
                l = out(reg) _,
                h = out(reg) _,
                out("r8") _,
                out("r9") _,
                out("r10") _,
                out("r12") _,
                options(nostack),
            );
        }
        pairs as i16 as i32 + (pairs >> 16) as i16 as i32
    }

    /// Widens `x` (`1..=MAX_BLOCKS` blocks) into `acts` in the kernel's
    /// layout ([module docs](self)); `widen(block, lane, out)` writes one
    /// block's `block_words` words at `out`.
    #[inline(always)]
    fn layout(
        acts: &mut Acts,
        x: &[BlockQ8_0],
        block_words: usize,
        widen: impl Fn(&BlockQ8_0, usize, *mut u32),
    ) -> Shape {
        assert!((1..=MAX_BLOCKS).contains(&x.len()) && block_words <= BLOCK_Q4);
        let start = acts.as_mut_ptr().cast::<u32>();
        let mut at = start;
        for group in x.chunks(LANES) {
            for lane in 0..LANES {
                let dx = group.get(lane).map_or(0, |b| scale(b.d).to_bits());
                // SAFETY: at most `MAX_BLOCKS / 8` groups of at most
                // `GROUP_Q4` words are written: all inside `acts`.
                unsafe { at.add(lane).write(dx) };
            }
            // SAFETY: as above.
            at = unsafe { at.add(LANES) };
            for (lane, b) in group.iter().enumerate().rev() {
                widen(b, lane, at);
                // SAFETY: as above.
                at = unsafe { at.add(block_words) };
            }
        }
        let full = x.len() / LANES;
        Shape {
            entry: LANES - x.len() % LANES,
            full_end: start as usize + 4 * full * (LANES + LANES * block_words),
            end: at as usize,
        }
    }

    /// Runs `kernel` over the rows, two at a time; an odd last row is
    /// computed as a pair with itself into a scratch pair. `w` is the first
    /// row's address as the kernel wants it (see `kernel_q8_align2`).
    ///
    /// # Safety
    /// The DSP extension and an FPU; `w` points to `y.len()` rows of `B`,
    /// `stride` blocks apart, each with at least the blocks that `shape`
    /// describes (laid out at `x`), as `kernel` requires.
    #[inline(always)]
    unsafe fn run<B>(
        w: usize,
        stride: usize,
        x: *const u32,
        shape: Shape,
        y: &mut [f32],
        kernel: unsafe fn(&mut Job, Shape),
    ) {
        let rows = y.len();
        let row_bytes = stride * size_of::<B>();
        let mut job = Job {
            w,
            stride: row_bytes,
            zeros: ZEROS.as_ptr(),
            x,
            y: y.as_mut_ptr(),
            pairs: rows / 2,
        };
        if job.pairs > 0 {
            // SAFETY: `2 * pairs` rows from `w`, results into `y`.
            unsafe { kernel(&mut job, shape) };
        }
        if rows % 2 == 1 {
            let mut pair = [0.0f32; 2];
            job.w = w + (rows - 1) * row_bytes;
            job.stride = 0;
            job.y = pair.as_mut_ptr();
            job.pairs = 1;
            // SAFETY: the last row, twice; results into `pair`.
            unsafe { kernel(&mut job, shape) };
            y[rows - 1] = pair[0];
        }
    }

    /// `matvec_q8_0` for `1..=MAX_BLOCKS` blocks.
    ///
    /// # Safety
    /// As `super::matvec_q8_0`, with `1 <= x.len() <= MAX_BLOCKS`.
    #[inline(always)]
    pub(super) unsafe fn matvec_q8_0(
        w: &[BlockQ8_0],
        stride: usize,
        x: &[BlockQ8_0],
        y: &mut [f32],
    ) {
        // Rows 34 * stride bytes apart all share the first row's alignment
        // when `stride` is even (blocks are 2-byte aligned). The aligned
        // kernels read the lanes whose quants are not word-aligned as
        // aligned words (`rot` in `q8_chunk`): even lanes for rows at 0 mod
        // 4, odd ones at 2 mod 4. Their activations are widened rotated.
        type Kernel = unsafe fn(&mut Job, Shape);
        let at = w.as_ptr() as usize;
        let (at, kernel, rotated): (usize, Kernel, Option<usize>) = match (stride % 2, at % 4) {
            (0, 0) => (at, kernel_q8_align0, Some(0)),
            (0, _) => (at + 2, kernel_q8_align2, Some(1)),
            _ => (at, kernel_q8, None),
        };
        let mut acts = Acts::uninit();
        let shape = layout(&mut acts, x, BLOCK_Q8, |b, lane, out| {
            // SAFETY: `layout` passes room for `BLOCK_Q8` aligned words.
            unsafe {
                if Some(lane % 2) == rotated {
                    widen_q8_rot2_words(b, out)
                } else {
                    widen_q8_words(b, out)
                }
            }
        });
        // SAFETY: forwarded contract; `acts` holds `x` as `shape` says; the
        // kernel matches the rows' alignment.
        unsafe { run::<BlockQ8_0>(at, stride, acts.as_ptr().cast(), shape, y, kernel) }
    }

    /// `matvec_q4_0` for `1..=MAX_BLOCKS` blocks.
    ///
    /// # Safety
    /// As `super::matvec_q4_0`, with `1 <= x.len() <= MAX_BLOCKS`.
    #[inline(always)]
    pub(super) unsafe fn matvec_q4_0(
        w: &[BlockQ4_0],
        stride: usize,
        x: &[BlockQ8_0],
        y: &mut [f32],
    ) {
        let mut acts = Acts::uninit();
        let shape = layout(&mut acts, x, BLOCK_Q4, |b, _, out| {
            // SAFETY: `layout` passes room for `BLOCK_Q4` aligned words:
            // `8 sum x`, then the 16 words.
            unsafe {
                let sum = widen_q4_mod16(b, out.add(1));
                out.write((8 * sum) as u32);
            }
        });
        // SAFETY: forwarded contract; `acts` holds `x` as `shape` says.
        unsafe {
            run::<BlockQ4_0>(
                w.as_ptr() as usize,
                stride,
                acts.as_ptr().cast(),
                shape,
                y,
                kernel_q4,
            )
        }
    }

    /// Start of a pair of rows (`r0` holds the [`Job`]'s address): rows A
    /// and B from the job, the next pair's row A back into it, accumulators
    /// zeroed, activations from the start.
    #[rustfmt::skip]
    macro_rules! pair_start {
        () => {
            concat!(
                "60:\n",
                "ldm r0, {{r2, r3, r11, lr}}\n",
                "add r12, r11, r2\n",
                "add r1, r12, r2\n",
                "str r1, [r0, #8]\n",
                "vldmia r3, {{s0-s15}}\n",
            )
        };
    }

    /// Before each group: done, a whole group (from lane 7), or the last
    /// partial group (through the `TBH` table). The group's eight `d_x` go
    /// to `s24..s31`.
    #[rustfmt::skip]
    macro_rules! next_group {
        () => {
            concat!(
                "50:\n",
                "vmov r8, r9, s22, s23\n",
                "cmp lr, r9\n",
                "beq 59f\n",
                "cmp lr, r8\n",
                "vldmia lr!, {{s24-s31}}\n",
                "blo 47f\n",
                "vmov r8, s21\n",
                "tbh [pc, r8, lsl #1]\n",
                "30:\n",
                ".hword (47f - 30b) / 2\n",
                ".hword (46f - 30b) / 2\n",
                ".hword (45f - 30b) / 2\n",
                ".hword (44f - 30b) / 2\n",
                ".hword (43f - 30b) / 2\n",
                ".hword (42f - 30b) / 2\n",
                ".hword (41f - 30b) / 2\n",
                ".hword (40f - 30b) / 2\n",
            )
        };
    }

    /// After a group: both rows advance by eight blocks of `$bytes`.
    #[rustfmt::skip]
    macro_rules! group_end {
        ($bytes:literal) => {
            concat!(
                "add r11, r11, #8*", $bytes, "\n",
                "add r12, r12, #8*", $bytes, "\n",
                "b 50b\n",
            )
        };
    }

    /// The reference reduction of the lanes in `$a0..$a7` into `$out`
    /// (`s17`, `s18`, `s24` are free by then).
    #[rustfmt::skip]
    macro_rules! reduce {
        ($a0:literal, $a1:literal, $a2:literal, $a3:literal,
         $a4:literal, $a5:literal, $a6:literal, $a7:literal, $out:literal) => {
            concat!(
                "vadd.f32 s17, ", $a0, ", ", $a4, "\n",
                "vadd.f32 s18, ", $a2, ", ", $a6, "\n",
                "vadd.f32 s17, s17, s18\n",
                "vadd.f32 s18, ", $a1, ", ", $a5, "\n",
                "vadd.f32 s24, ", $a3, ", ", $a7, "\n",
                "vadd.f32 s18, s18, s24\n",
                "vadd.f32 ", $out, ", s17, s18\n",
            )
        };
    }

    /// End of a pair of rows: reduce, store both results, loop while pairs
    /// are left (with the [`Job`]'s address in `r0`).
    #[rustfmt::skip]
    macro_rules! pair_end {
        () => {
            concat!(
                "59:\n",
                reduce!("s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s19"),
                reduce!("s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s20"),
                "vmov r0, s16\n",
                "ldrd r1, r2, [r0, #16]\n",
                "vstmia r1!, {{s19, s20}}\n",
                "subs r2, r2, #1\n",
                "strd r1, r2, [r0, #16]\n",
                "bne 60b\n",
            )
        };
    }

    /// Start of a block in lane `$j`: both weight scales (the `f16` at
    /// byte `$bytes * $j - $bias` of the row pointers), their products with
    /// `d_x` (`$dx`) into `s17` (A) and `s18` (B). `half`: `LDRH` (any
    /// alignment); `bottom`/`top`: the scale is the low/high half of an
    /// aligned word, `VLDR` and `VCVTB`/`VCVTT`.
    #[rustfmt::skip]
    macro_rules! scales {
        (half, $bytes:literal, $j:literal, $bias:literal, $dx:literal) => {
            concat!(
                "ldrh r8, [r11, #", $bytes, "*", $j, " - ", $bias, "]\n",
                "ldrh r9, [r12, #", $bytes, "*", $j, " - ", $bias, "]\n",
                "vmov s17, s18, r8, r9\n",
                "vcvtb.f32.f16 s17, s17\n",
                "vcvtb.f32.f16 s18, s18\n",
                "vmul.f32 s17, s17, ", $dx, "\n",
                "vmul.f32 s18, s18, ", $dx, "\n",
            )
        };
        (bottom, $bytes:literal, $j:literal, $bias:literal, $dx:literal) => {
            concat!(
                "vldr s17, [r11, #", $bytes, "*", $j, " - ", $bias, "]\n",
                "vldr s18, [r12, #", $bytes, "*", $j, " - ", $bias, "]\n",
                "vcvtb.f32.f16 s17, s17\n",
                "vcvtb.f32.f16 s18, s18\n",
                "vmul.f32 s17, s17, ", $dx, "\n",
                "vmul.f32 s18, s18, ", $dx, "\n",
            )
        };
        (top, $bytes:literal, $j:literal, $bias:literal, $dx:literal) => {
            concat!(
                "vldr s17, [r11, #", $bytes, "*", $j, " - ", $bias, " - 2]\n",
                "vldr s18, [r12, #", $bytes, "*", $j, " - ", $bias, " - 2]\n",
                "vcvtt.f32.f16 s17, s17\n",
                "vcvtt.f32.f16 s18, s18\n",
                "vmul.f32 s17, s17, ", $dx, "\n",
                "vmul.f32 s18, s18, ", $dx, "\n",
            )
        };
    }

    /// End of a block: `acc += sumi * (d_w * d_x)` for both rows into the
    /// lane accumulators `$acc_a`, `$acc_b`. `sum`: `r1`/`r0` hold `sumi`;
    /// `negated_low16`: their low 16 bits hold `-sumi` (`Q4_0`, see
    /// `q4_chunk`), converted by `VCVT.F32.S16`, and `acc - (-sumi) * d` is
    /// the same float as `acc + sumi * d` (IEEE negation is exact, the
    /// accumulators are never `-0.0`, and a NaN operand passes through
    /// `VSUB` unchanged).
    #[rustfmt::skip]
    macro_rules! accumulate {
        (sum, $acc_a:literal, $acc_b:literal) => {
            concat!(
                "vmov s19, s20, r1, r0\n",
                "vcvt.f32.s32 s19, s19\n",
                "vcvt.f32.s32 s20, s20\n",
                "vmul.f32 s19, s19, s17\n",
                "vmul.f32 s20, s20, s18\n",
                "vadd.f32 ", $acc_a, ", ", $acc_a, ", s19\n",
                "vadd.f32 ", $acc_b, ", ", $acc_b, ", s20\n",
            )
        };
        (negated_low16, $acc_a:literal, $acc_b:literal) => {
            concat!(
                "vmov s19, s20, r1, r0\n",
                "vcvt.f32.s16 s19, s19, #0\n",
                "vcvt.f32.s16 s20, s20, #0\n",
                "vmul.f32 s19, s19, s17\n",
                "vmul.f32 s20, s20, s18\n",
                "vsub.f32 ", $acc_a, ", ", $acc_a, ", s19\n",
                "vsub.f32 ", $acc_b, ", ", $acc_b, ", s20\n",
            )
        };
    }

    /// Two weight words of row `$row` at byte `$off...` into `r9`, `r10`:
    /// `ldr`, two unaligned loads, or `ldrd`, one aligned load.
    #[rustfmt::skip]
    macro_rules! q8_words {
        (ldr, $row:literal, $($off:literal),*) => {
            concat!(
                "ldr r9, [", $row, ", #", $($off,)* "]\n",
                "ldr r10, [", $row, ", #", $($off,)* " + 4]\n",
            )
        };
        (ldrd, $row:literal, $($off:literal),*) => {
            concat!("ldrd r9, r10, [", $row, ", #", $($off,)* "]\n")
        };
    }

    /// Eight `Q8_0` quants of the block in lane `$j` of row `$row`
    /// (`r11`/`r12`, `$bias` bytes past the row) into the sum `$acc`
    /// (`r1`/`r0`); `$first` is the first multiply (`SMUAD` starts the
    /// sum). `ldr`/`ldrd`: bytes `2 + 8k..` (the weight words, unaligned or
    /// aligned). `rot`: a block whose quants are not word-aligned but whose
    /// start is, read as the aligned words `4 + 8k..` (bytes `2 + 8k..` of
    /// the quants); the last chunk joins the last two quants with the first
    /// two (`PKHBT` of the words at 32 and 0), so the activations of such a
    /// lane are widened rotated by two (`widen_q8_rot2_words`).
    #[rustfmt::skip]
    macro_rules! q8_chunk {
        (rot, $j:literal, 3, $bias:literal, $row:literal, $acc:literal, $first:literal) => {
            concat!(
                "ldrd r9, r10, [", $row, ", #34*", $j, " - ", $bias, " + 28]\n",
                "sxtb16 r8, r9\n",
                $first, "\n",
                "sxtb16 r8, r9, ror #8\n",
                "smlad ", $acc, ", r8, r3, ", $acc, "\n",
                "ldr r9, [", $row, ", #34*", $j, " - ", $bias, "]\n",
                "pkhbt r10, r10, r9\n",
                "sxtb16 r8, r10\n",
                "smlad ", $acc, ", r8, r4, ", $acc, "\n",
                "sxtb16 r8, r10, ror #8\n",
                "smlad ", $acc, ", r8, r5, ", $acc, "\n",
            )
        };
        (rot, $j:literal, $k:literal, $bias:literal, $row:literal, $acc:literal, $first:literal) => {
            concat!(
                "ldrd r9, r10, [", $row, ", #34*", $j, " - ", $bias, " + 4 + 8*", $k, "]\n",
                q8_products!($acc, $first),
            )
        };
        ($load:ident, $j:literal, $k:literal, $bias:literal, $row:literal, $acc:literal, $first:literal) => {
            concat!(
                q8_words!($load, $row, "34*", $j, " + 2 + 8*", $k, " - ", $bias),
                q8_products!($acc, $first),
            )
        };
    }

    /// The four `SXTB16` + `SMLAD` of the weight words in `r9`, `r10`
    /// against the activation words `r2..r5`.
    #[rustfmt::skip]
    macro_rules! q8_products {
        ($acc:literal, $first:literal) => {
            concat!(
                "sxtb16 r8, r9\n",
                $first, "\n",
                "sxtb16 r8, r9, ror #8\n",
                "smlad ", $acc, ", r8, r3, ", $acc, "\n",
                "sxtb16 r8, r10\n",
                "smlad ", $acc, ", r8, r4, ", $acc, "\n",
                "sxtb16 r8, r10, ror #8\n",
                "smlad ", $acc, ", r8, r5, ", $acc, "\n",
            )
        };
    }

    /// One `Q8_0` block of both rows in lane `$j`: scales loaded as
    /// `$scale`, quants with `$load`, the row pointers `$bias` bytes past
    /// the rows.
    #[rustfmt::skip]
    macro_rules! q8_block {
        ($j:literal, $acc_a:literal, $acc_b:literal, $dx:literal, $scale:ident, $load:ident, $bias:literal) => {
            concat!(
                scales!($scale, 34, $j, $bias, $dx),
                "ldm lr!, {{r2-r5}}\n",
                q8_chunk!($load, $j, 0, $bias, "r11", "r1", "smuad r1, r8, r2"),
                q8_chunk!($load, $j, 0, $bias, "r12", "r0", "smuad r0, r8, r2"),
                "ldm lr!, {{r2-r5}}\n",
                q8_chunk!($load, $j, 1, $bias, "r11", "r1", "smlad r1, r8, r2, r1"),
                q8_chunk!($load, $j, 1, $bias, "r12", "r0", "smlad r0, r8, r2, r0"),
                "ldm lr!, {{r2-r5}}\n",
                q8_chunk!($load, $j, 2, $bias, "r11", "r1", "smlad r1, r8, r2, r1"),
                q8_chunk!($load, $j, 2, $bias, "r12", "r0", "smlad r0, r8, r2, r0"),
                "ldm lr!, {{r2-r5}}\n",
                q8_chunk!($load, $j, 3, $bias, "r11", "r1", "smlad r1, r8, r2, r1"),
                q8_chunk!($load, $j, 3, $bias, "r12", "r0", "smlad r0, r8, r2, r0"),
                accumulate!(sum, $acc_a, $acc_b),
            )
        };
    }

    /// Eight `Q4_0` nibbles (the weight word at bytes `2 + 4k..` of the
    /// block in lane `$j`) of row `$row` into the sum `$acc`, modulo 2^16;
    /// `$first` is the first multiply-accumulate (from `8 sum x` in `r0` in
    /// the first chunk).
    ///
    /// The weight word `w` itself is the first operand: its low half-word is
    /// `n0 + 16 h0 + 256 n1 + 4096 h1` modulo 2^16 (nibbles `n` of values
    /// `j`, `h` of values `j + 16`), so with the activations widened as
    /// [`widen_q4_mod16`] does (`X = -x`, `Y = -y`: `X0`,
    /// `Y0 - 16 X0`, `X1 - 256 X0`, `Y1 - 4096 X0` against `w`, `h0`, `n1`,
    /// `h1`) the four products sum to `n0 X0 + h0 Y0 + n1 X1 + h1 Y1`
    /// modulo 2^16: three `AND`s for eight values instead of four. The
    /// exact sum `-sumi = 8 sum x - sum q x` lies in `-32768..=32512`, so
    /// its low 16 bits, read as signed, are exact (`accumulate!`).
    #[rustfmt::skip]
    macro_rules! q4_chunk {
        ($j:literal, $k:literal, $row:literal, $acc:literal, $first:literal) => {
            concat!(
                "ldr r9, [", $row, ", #18*", $j, " + 2 + 4*", $k, "]\n",
                $first, "\n",
                "and r8, r10, r9, lsr #4\n",
                "smlad ", $acc, ", r8, r3, ", $acc, "\n",
                "and r8, r10, r9, lsr #8\n",
                "smlad ", $acc, ", r8, r4, ", $acc, "\n",
                "and r8, r10, r9, lsr #12\n",
                "smlad ", $acc, ", r8, r5, ", $acc, "\n",
            )
        };
    }

    /// One `Q4_0` block of both rows in lane `$j`.
    #[rustfmt::skip]
    macro_rules! q4_block {
        ($j:literal, $acc_a:literal, $acc_b:literal, $dx:literal) => {
            concat!(
                scales!(half, 18, $j, 0, $dx),
                "ldm lr!, {{r0, r2-r5}}\n",
                q4_chunk!($j, 0, "r11", "r1", "smlad r1, r9, r2, r0"),
                q4_chunk!($j, 0, "r12", "r0", "smlad r0, r9, r2, r0"),
                "ldm lr!, {{r2-r5}}\n",
                q4_chunk!($j, 1, "r11", "r1", "smlad r1, r9, r2, r1"),
                q4_chunk!($j, 1, "r12", "r0", "smlad r0, r9, r2, r0"),
                "ldm lr!, {{r2-r5}}\n",
                q4_chunk!($j, 2, "r11", "r1", "smlad r1, r9, r2, r1"),
                q4_chunk!($j, 2, "r12", "r0", "smlad r0, r9, r2, r0"),
                "ldm lr!, {{r2-r5}}\n",
                q4_chunk!($j, 3, "r11", "r1", "smlad r1, r9, r2, r1"),
                q4_chunk!($j, 3, "r12", "r0", "smlad r0, r9, r2, r0"),
                accumulate!(negated_low16, $acc_a, $acc_b),
            )
        };
    }

    /// The `asm!` statement of a kernel: `$body` (the eight lanes, lane 7
    /// first, and the group end) inside the pair loop, with its operands and
    /// every register it clobbers.
    #[rustfmt::skip]
    macro_rules! kernel_asm {
        ($body:expr, $mask:expr, $job:expr, $shape:expr) => {
            asm!(
                "vmov s16, r0",
                "vmov s21, r1",
                "vmov s22, s23, r2, r3",
                pair_start!(),
                next_group!(),
                $body,
                pair_end!(),
                inout("r0") $job as *mut Job => _,
                inout("r1") $shape.entry => _,
                inout("r2") $shape.full_end => _,
                inout("r3") $shape.end => _,
                out("r4") _,
                out("r5") _,
                out("r8") _,
                out("r9") _,
                inout("r10") $mask => _,
                out("r11") _,
                out("r12") _,
                out("lr") _,
                out("s0") _, out("s1") _, out("s2") _, out("s3") _,
                out("s4") _, out("s5") _, out("s6") _, out("s7") _,
                out("s8") _, out("s9") _, out("s10") _, out("s11") _,
                out("s12") _, out("s13") _, out("s14") _, out("s15") _,
                out("s16") _, out("s17") _, out("s18") _, out("s19") _,
                out("s20") _, out("s21") _, out("s22") _, out("s23") _,
                out("s24") _, out("s25") _, out("s26") _, out("s27") _,
                out("s28") _, out("s29") _, out("s30") _, out("s31") _,
                options(nostack),
            )
        };
    }

    /// `job.pairs` pairs of `Q8_0` rows, any alignment (`job.w` = row A).
    ///
    /// # Safety
    /// The DSP extension and an FPU; `job.pairs >= 1`; the rows `job.w +
    /// k * job.stride` (`k < 2 * job.pairs`) each hold the blocks `shape`
    /// describes, laid out at `job.x`; `job.y` has room for `2 * job.pairs`
    /// results.
    #[inline(never)]
    #[rustfmt::skip]
    unsafe fn kernel_q8(job: &mut Job, shape: Shape) {
        // SAFETY: reads the weight rows (unaligned `LDR`/`LDRH`: allowed on
        // ARMv7E-M/ARMv8-M Mainline unless a trap is configured, which
        // nothing here does), the activations and `ZEROS` (aligned
        // `LDM`/`VLDM`) and the job; writes the job's `w`, `y` and `pairs`
        // and the results, and only the declared registers.
        unsafe {
            kernel_asm!(
                concat!(
                    "47:\n", q8_block!(7, "s7", "s15", "s31", half, ldr, 0),
                    "46:\n", q8_block!(6, "s6", "s14", "s30", half, ldr, 0),
                    "45:\n", q8_block!(5, "s5", "s13", "s29", half, ldr, 0),
                    "44:\n", q8_block!(4, "s4", "s12", "s28", half, ldr, 0),
                    "43:\n", q8_block!(3, "s3", "s11", "s27", half, ldr, 0),
                    "42:\n", q8_block!(2, "s2", "s10", "s26", half, ldr, 0),
                    "41:\n", q8_block!(1, "s1", "s9", "s25", half, ldr, 0),
                    "40:\n", q8_block!(0, "s0", "s8", "s24", half, ldr, 0),
                    group_end!(34),
                ),
                0u32,
                job,
                shape
            )
        }
    }

    /// As [`kernel_q8`] for rows that start at a multiple of 4 bytes
    /// (`job.w` = row A): odd blocks have word-aligned quants (`LDRD`) and
    /// their scale in the high half of the word at `34 j - 2`; even blocks
    /// start on a word (scale in its low half) and are read as the aligned
    /// words `34 j .. 34 j + 36` (`rot` in `q8_chunk!`; their activations
    /// are widened rotated by two).
    ///
    /// # Safety
    /// As [`kernel_q8`], and `job.w` and `job.stride` are multiples of 4.
    #[inline(never)]
    #[rustfmt::skip]
    unsafe fn kernel_q8_align0(job: &mut Job, shape: Shape) {
        // SAFETY: as in `kernel_q8`; the `VLDR`s and `LDRD`s are aligned
        // (caller). Two aligned words reach outside their block: an odd
        // block's scale word starts with the last two bytes of the previous
        // block, and an even block's last word ends with the first two
        // bytes after it (the next block, or past the end of the matrix).
        // Those bytes are never used, and a word holding a byte of the
        // block lies in the same memory region as it (regions are
        // word-aligned), so the load cannot fault.
        unsafe {
            kernel_asm!(
                concat!(
                    "47:\n", q8_block!(7, "s7", "s15", "s31", top, ldrd, 0),
                    "46:\n", q8_block!(6, "s6", "s14", "s30", bottom, rot, 0),
                    "45:\n", q8_block!(5, "s5", "s13", "s29", top, ldrd, 0),
                    "44:\n", q8_block!(4, "s4", "s12", "s28", bottom, rot, 0),
                    "43:\n", q8_block!(3, "s3", "s11", "s27", top, ldrd, 0),
                    "42:\n", q8_block!(2, "s2", "s10", "s26", bottom, rot, 0),
                    "41:\n", q8_block!(1, "s1", "s9", "s25", top, ldrd, 0),
                    "40:\n", q8_block!(0, "s0", "s8", "s24", bottom, rot, 0),
                    group_end!(34),
                ),
                0u32,
                job,
                shape
            )
        }
    }

    /// As [`kernel_q8`] for rows that start 2 bytes past a multiple of 4
    /// (`job.w` = row A + 2, word-aligned): even blocks have word-aligned
    /// quants (`LDRD`) and their scale in the high half of the word 2 bytes
    /// before the block; odd blocks start on a word (scale in its low half)
    /// and are read as aligned words (`rot`).
    ///
    /// # Safety
    /// As [`kernel_q8`] with `job.w` = row A + 2, and `job.w` and
    /// `job.stride` are multiples of 4.
    #[inline(never)]
    #[rustfmt::skip]
    unsafe fn kernel_q8_align2(job: &mut Job, shape: Shape) {
        // SAFETY: as in `kernel_q8_align0`, with even and odd blocks
        // swapped: the scale word of block 0 of a row starts two bytes
        // before the row.
        unsafe {
            kernel_asm!(
                concat!(
                    "47:\n", q8_block!(7, "s7", "s15", "s31", bottom, rot, 2),
                    "46:\n", q8_block!(6, "s6", "s14", "s30", top, ldrd, 2),
                    "45:\n", q8_block!(5, "s5", "s13", "s29", bottom, rot, 2),
                    "44:\n", q8_block!(4, "s4", "s12", "s28", top, ldrd, 2),
                    "43:\n", q8_block!(3, "s3", "s11", "s27", bottom, rot, 2),
                    "42:\n", q8_block!(2, "s2", "s10", "s26", top, ldrd, 2),
                    "41:\n", q8_block!(1, "s1", "s9", "s25", bottom, rot, 2),
                    "40:\n", q8_block!(0, "s0", "s8", "s24", top, ldrd, 2),
                    group_end!(34),
                ),
                0u32,
                job,
                shape
            )
        }
    }

    /// `job.pairs` pairs of `Q4_0` rows.
    ///
    /// # Safety
    /// As [`kernel_q8`].
    #[inline(never)]
    #[rustfmt::skip]
    unsafe fn kernel_q4(job: &mut Job, shape: Shape) {
        // SAFETY: as in `kernel_q8`, with 18-byte blocks.
        unsafe {
            kernel_asm!(
                concat!(
                    "47:\n", q4_block!(7, "s7", "s15", "s31"),
                    "46:\n", q4_block!(6, "s6", "s14", "s30"),
                    "45:\n", q4_block!(5, "s5", "s13", "s29"),
                    "44:\n", q4_block!(4, "s4", "s12", "s28"),
                    "43:\n", q4_block!(3, "s3", "s11", "s27"),
                    "42:\n", q4_block!(2, "s2", "s10", "s26"),
                    "41:\n", q4_block!(1, "s1", "s9", "s25"),
                    "40:\n", q4_block!(0, "s0", "s8", "s24"),
                    group_end!(18),
                ),
                0x000F_000Fu32,
                job,
                shape
            )
        }
    }
}
