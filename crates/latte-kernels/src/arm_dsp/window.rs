//! The window attention's vector steps on the FPU (`eabihf` targets), in
//! exactly the scalar twins' order, so the results are the same bits
//! ([`crate::scalar::dot8_acc`], [`crate::scalar::axpy`]):
//!
//! * `dot8_acc`: the eight partial sums live in `s0..s7` for the whole
//!   product; per eight elements one `VLDM` of `a`, one of `b` and eight
//!   `VMLA` (`s[i] += a[j] * b[j]`, lane `i = j % 8`);
//! * `axpy`: per eight elements `VLDM` of `acc` and of `v`, eight `VMLA`
//!   with `p`, one `VSTM`.
//!
//! `VMLA.F32` is the chained multiply-accumulate: the product is rounded,
//! then added (not fused), as the scalar `acc += x * y`. The last `n % 8`
//! elements run in Rust. About 1.4 instructions per multiply-accumulate,
//! against about 4-10 for the compiled scalar loops on a Cortex-M4.

use core::arch::asm;

use crate::scalar::{window_dots_by, window_sums_by, RingRows};

/// [`crate::scalar::window_dots`] with the `VMLA` [`dot8_acc`] per row.
pub(crate) fn window_dots(q: &[f32], rows: RingRows<'_>, stride: usize, out: &mut [f32]) {
    window_dots_by(q, rows, stride, out, dot8_acc)
}

/// [`crate::scalar::window_sums`] with the `VMLA` [`axpy`] per row.
pub(crate) fn window_sums(acc: &mut [f32], p: &[f32], rows: RingRows<'_>, stride: usize) {
    window_sums_by(acc, p, rows, stride, axpy)
}

/// See the module docs and [`crate::scalar::dot8_acc`].
pub(crate) fn dot8_acc(s: &mut [f32; 8], a: &[f32], b: &[f32]) {
    let n = a.len().min(b.len());
    let chunks = n / 8;
    if chunks > 0 {
        // SAFETY: reads `8 chunks` floats from `a` and from `b` (`f32`,
        // word-aligned, within the slices) and reads and writes the eight
        // floats of `s`; writes only the named registers. `FPSCR` as any
        // float operation.
        unsafe {
            asm!(
                "vldmia {sp}, {{s0-s7}}",
                "2:",
                "vldmia {ap}!, {{s8-s15}}",
                "vldmia {bp}!, {{s16-s23}}",
                "vmla.f32 s0, s8, s16",
                "vmla.f32 s1, s9, s17",
                "vmla.f32 s2, s10, s18",
                "vmla.f32 s3, s11, s19",
                "vmla.f32 s4, s12, s20",
                "vmla.f32 s5, s13, s21",
                "vmla.f32 s6, s14, s22",
                "vmla.f32 s7, s15, s23",
                "subs {k}, {k}, #1",
                "bne 2b",
                "vstmia {sp}, {{s0-s7}}",
                sp = in(reg) s.as_mut_ptr(),
                ap = inout(reg) a.as_ptr() => _,
                bp = inout(reg) b.as_ptr() => _,
                k = inout(reg) chunks => _,
                out("s0") _, out("s1") _, out("s2") _, out("s3") _,
                out("s4") _, out("s5") _, out("s6") _, out("s7") _,
                out("s8") _, out("s9") _, out("s10") _, out("s11") _,
                out("s12") _, out("s13") _, out("s14") _, out("s15") _,
                out("s16") _, out("s17") _, out("s18") _, out("s19") _,
                out("s20") _, out("s21") _, out("s22") _, out("s23") _,
                options(nostack),
            );
        }
    }
    let done = chunks * 8;
    for (i, (&x, &y)) in a[done..n].iter().zip(&b[done..n]).enumerate() {
        s[i] += x * y;
    }
}

/// See the module docs and [`crate::scalar::axpy`].
pub(crate) fn axpy(acc: &mut [f32], p: f32, v: &[f32]) {
    let n = acc.len().min(v.len());
    let chunks = n / 8;
    if chunks > 0 {
        // SAFETY: reads and writes `8 chunks` floats of `acc` and reads as
        // many of `v` (`f32`, word-aligned, within the slices); writes only
        // the named registers.
        unsafe {
            asm!(
                "vmov s0, {p}",
                "2:",
                "vldmia {yp}, {{s8-s15}}",
                "vldmia {vp}!, {{s16-s23}}",
                "vmla.f32 s8, s16, s0",
                "vmla.f32 s9, s17, s0",
                "vmla.f32 s10, s18, s0",
                "vmla.f32 s11, s19, s0",
                "vmla.f32 s12, s20, s0",
                "vmla.f32 s13, s21, s0",
                "vmla.f32 s14, s22, s0",
                "vmla.f32 s15, s23, s0",
                "vstmia {yp}!, {{s8-s15}}",
                "subs {k}, {k}, #1",
                "bne 2b",
                p = in(reg) p.to_bits(),
                yp = inout(reg) acc.as_mut_ptr() => _,
                vp = inout(reg) v.as_ptr() => _,
                k = inout(reg) chunks => _,
                out("s0") _,
                out("s8") _, out("s9") _, out("s10") _, out("s11") _,
                out("s12") _, out("s13") _, out("s14") _, out("s15") _,
                out("s16") _, out("s17") _, out("s18") _, out("s19") _,
                out("s20") _, out("s21") _, out("s22") _, out("s23") _,
                options(nostack),
            );
        }
    }
    let done = chunks * 8;
    for (a, &x) in acc[done..n].iter_mut().zip(&v[done..n]) {
        *a += p * x;
    }
}
