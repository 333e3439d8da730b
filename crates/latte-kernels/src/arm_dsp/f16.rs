//! `f16` weights against `f32` activations (the float model files' products),
//! in exactly the scalar twin's order: `acc += w[j] * x[j]` for ascending `j`
//! from `acc = 0`, each product rounded before its addition
//! ([`crate::scalar::dot_f16`]). The weights are read two per word and widened
//! by the FPU (`VCVTB`/`VCVTT`, exact, and equal to `half`'s conversion: see
//! [`super::scale`]); `VMLA.F32` is the chained multiply-accumulate (the
//! product is rounded, then added: not fused), so every result is
//! bit-identical to the scalar one. Per pair of weights: `LDR`, `VLDM` of two
//! activations, `VMOV`, `VCVTB`, `VCVTT` and two `VMLA`, 7 instructions, plus
//! 2 for the loop per four pairs; the scalar twin with `half`'s software
//! conversion takes about 20 per weight on a Cortex-M4.
//!
//! Without an FPU the same order with [`super::scale`]'s integer conversion.

use half::f16;

#[cfg(latte_arm_fpu)]
use core::arch::asm;

use super::scale;

/// One pair of weights: load the word, widen both halves, two chained
/// multiply-accumulates into `s4`, in element order.
#[cfg(latte_arm_fpu)]
macro_rules! pair {
    () => {
        concat!(
            "ldr {t}, [{wp}], #4\n",
            "vldmia {xp}!, {{s2, s3}}\n",
            "vmov s0, {t}\n",
            "vcvtb.f32.f16 s1, s0\n",
            "vcvtt.f32.f16 s0, s0\n",
            "vmla.f32 s4, s1, s2\n",
            "vmla.f32 s4, s0, s3\n",
        )
    };
}

/// `sum w[j] * x[j]` over `min(w.len(), x.len())` values, in the scalar order.
pub(crate) fn dot_f16(w: &[f16], x: &[f32]) -> f32 {
    let n = w.len().min(x.len());
    let (w, x) = (&w[..n], &x[..n]);
    #[cfg(latte_arm_fpu)]
    {
        let mut acc = 0.0f32;
        // A row that starts on a half-word: its first weight alone, so the
        // rest are read as aligned words.
        let lead = usize::from(!(w.as_ptr() as usize).is_multiple_of(4)).min(n);
        for j in 0..lead {
            acc += scale(w[j].to_bits()) * x[j];
        }
        let pairs = (n - lead) / 2;
        let quads = pairs / 4;
        let singles = pairs % 4;
        let wp = w[lead..].as_ptr() as *const u32;
        // The accumulator crosses the `asm!` boundary as bits in a core
        // register (rustc takes float register operands only with its
        // `vfp2` target feature, which it does not see on these targets).
        let mut acc_bits = acc.to_bits();
        let xp = x[lead..].as_ptr();
        if pairs > 0 {
            // SAFETY: reads `2 pairs` weights from `wp` (word-aligned after
            // the lead, within `w`) and as many activations from `xp`
            // (`f32`, word-aligned, within `x`); writes only the named
            // registers. `FPSCR` as in `scale`.
            unsafe {
                asm!(
                    "vmov s4, {acc}",
                    // Four pairs at a time, then one at a time.
                    "cmp {q}, #0",
                    "beq 3f",
                    "2:",
                    pair!(),
                    pair!(),
                    pair!(),
                    pair!(),
                    "subs {q}, {q}, #1",
                    "bne 2b",
                    "3:",
                    "cmp {r}, #0",
                    "beq 5f",
                    "4:",
                    pair!(),
                    "subs {r}, {r}, #1",
                    "bne 4b",
                    "5:",
                    "vmov {acc}, s4",
                    wp = inout(reg) wp => _,
                    xp = inout(reg) xp => _,
                    q = inout(reg) quads => _,
                    r = inout(reg) singles => _,
                    acc = inout(reg) acc_bits,
                    t = out(reg) _,
                    out("s0") _,
                    out("s1") _,
                    out("s2") _,
                    out("s3") _,
                    out("s4") _,
                    options(readonly, nostack),
                );
            }
        }
        acc = f32::from_bits(acc_bits);
        for j in lead + 2 * pairs..n {
            acc += scale(w[j].to_bits()) * x[j];
        }
        acc
    }
    #[cfg(not(latte_arm_fpu))]
    {
        let mut acc = 0.0f32;
        for (a, b) in w.iter().zip(x) {
            acc += scale(a.to_bits()) * b;
        }
        acc
    }
}

/// `y[r] = dot_f16(w[r*stride .. r*stride + x.len()], x)`, as the scalar twin.
pub(crate) fn matvec_f16(w: &[f16], stride: usize, x: &[f32], y: &mut [f32]) {
    for (r, out) in y.iter_mut().enumerate() {
        *out = dot_f16(&w[r * stride..r * stride + x.len()], x);
    }
}
