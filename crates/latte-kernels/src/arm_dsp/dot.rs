//! Quantized dot products: each activation block widened once.

use core::arch::asm;

use super::{scale, widen_q4, widen_q8, WideQ4, WideQ8};
use crate::block::{BlockQ4_0, BlockQ8_0};
use crate::scalar::{reduce_lanes, LANES};

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
pub(super) fn product_q8(w: &BlockQ8_0, x: &WideQ8) -> f32 {
    block_sum_q8(w, x) as f32 * (scale(w.d) * x.dx)
}

/// `p_i = sumi_i * (d_w * d_x)` of one `Q4_0` block.
#[inline(always)]
pub(super) fn product_q4(w: &BlockQ4_0, x: &WideQ4) -> f32 {
    block_sum_q4(w, x) as f32 * (scale(w.d) * x.dx)
}

/// The reference accumulation of the block products `p_i`:
/// `acc[i % 8] += p_i`, then the reference reduction.
#[inline(always)]
pub(super) fn accumulate(products: impl Iterator<Item = f32>) -> f32 {
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
