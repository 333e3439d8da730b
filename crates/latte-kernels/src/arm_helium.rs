//! Cortex-M55/M85 Helium (M-profile Vector Extension, MVE) kernels for the
//! quantized dot products, written with `asm!` (stable Rust has neither MVE
//! intrinsics nor an `asm!` register class for its vector registers).
//!
//! # How
//!
//! `VMLADAV.S8 Rd, Qn, Qm` multiplies sixteen pairs of signed bytes and adds
//! all sixteen products into a general-purpose register, exactly (`VMLADAVA`
//! accumulates into it). A `Q8_0` block is then two byte loads of weights,
//! two of activations, and two multiply-accumulate-across-vector
//! instructions: 32 multiply-accumulates. A `Q4_0` block loads its sixteen
//! bytes once, splits the nibbles with `VAND` (low) and `VSHR` (high), and
//! uses them unsigned (`0..=15`, still non-negative as signed bytes), with
//! the `-8` applied once per block from the activations' sum (`VADDV`):
//! `sum (q - 8) x = sum q x - 8 sum x`, exact.
//!
//! The asm computes the exact integer sum of every block of a row into a
//! small buffer. The float part (`acc[i % 8] += sumi * (d_w * d_x)`) follows
//! the scalar specification's operations in the same order, so every result
//! is bit-identical to [`crate::scalar`]. With MVE's floating point
//! (`+mve.fp`, cfg `latte_arm_mve_fp`) it is vector asm too, four blocks per
//! instruction, the scales gathered from the blocks ([`accumulate_mve`]):
//! 0.64 instructions per MAC for Q8_0 instead of 1.01 (`boards/COSTS.md`).
//! Without it, it is Rust.
//!
//! The vector registers alias the FPU's `d0`-`d15`, which the compiler may
//! be using, and `asm!` cannot name them as operands: each asm block saves
//! the ones it uses on the stack (`VPUSH`) and restores them (`VPOP`), once
//! per row.

use core::arch::asm;

use crate::block::{BlockQ4_0, BlockQ8_0};
// The DSP kernels' f16 conversion (one `VCVTB` on FPU targets) where the
// build has the DSP extension too (every Cortex-M55 build does).
#[cfg(latte_arm_dsp)]
use crate::arm_dsp::scale;
#[cfg(not(latte_arm_dsp))]
use crate::scalar::f16_to_f32 as scale;
use crate::scalar::{reduce_lanes, LANES};

/// Blocks whose integer sums one asm call computes (a row is done in
/// chunks of this many): 64 blocks, 2,048 columns, 256 bytes of stack.
const CHUNK: usize = 64;
// Chunks start at multiples of 8 blocks: lane `k % 8` restarts at lane 0.
const _: () = assert!(CHUNK.is_multiple_of(8));

/// `out[i]` = exact `sum w_i[j] * x_i[j]` of `Q8_0` blocks, for `n` blocks.
///
/// # Safety
/// Helium is enabled; `w`, `x` and `out` hold `n` elements.
#[inline(always)]
unsafe fn sums_q8(w: *const BlockQ8_0, x: *const BlockQ8_0, out: *mut i32, n: usize) {
    // SAFETY: reads `n` blocks of 34 bytes from `w` and `x` (`VLDRB` has no
    // alignment requirement), writes `n` words to `out`; q0-q3 (d0-d7) are
    // saved and restored around the loop; `n == 0` skips it.
    unsafe {
        asm!(
            "vpush {{d0-d7}}",
            "cmp {n}, #0",
            "beq 2f",
            "1:",
            "vldrb.s8 q0, [{w}, #2]",
            "vldrb.s8 q1, [{x}, #2]",
            "vldrb.s8 q2, [{w}, #18]",
            "vldrb.s8 q3, [{x}, #18]",
            "vmladav.s8 r0, q0, q1",
            "vmladava.s8 r0, q2, q3",
            "str r0, [{o}], #4",
            "adds {w}, #34",
            "adds {x}, #34",
            "subs {n}, #1",
            "bne 1b",
            "2:",
            "vpop {{d0-d7}}",
            w = inout(reg) w => _,
            x = inout(reg) x => _,
            o = inout(reg) out => _,
            n = inout(reg) n => _,
            // `VMLADAV` and `VADDV` need an even-numbered destination.
            out("r0") _,
        );
    }
}

/// `out[i]` = exact `sum (q_i[j] - 8) * x_i[j]` of `Q4_0` weight blocks
/// against `Q8_0` activation blocks, for `n` blocks.
///
/// # Safety
/// As [`sums_q8`] (`w` holds `n` 18-byte blocks).
#[inline(always)]
unsafe fn sums_q4(w: *const BlockQ4_0, x: *const BlockQ8_0, out: *mut i32, n: usize) {
    // SAFETY: reads `n` blocks from `w` (18 bytes) and `x` (34 bytes),
    // writes `n` words to `out`; q0-q5 (d0-d11) are saved and restored.
    unsafe {
        asm!(
            "vpush {{d0-d11}}",
            "vmov.i8 q5, #15",
            "cmp {n}, #0",
            "beq 2f",
            "1:",
            "vldrb.u8 q0, [{w}, #2]",
            "vldrb.s8 q3, [{x}, #2]",
            "vldrb.s8 q4, [{x}, #18]",
            "vand q1, q0, q5",
            "vshr.u8 q2, q0, #4",
            "vmladav.s8 r0, q1, q3",
            "vmladava.s8 r0, q2, q4",
            "vaddv.s8 r2, q3",
            "vaddva.s8 r2, q4",
            "sub r0, r0, r2, lsl #3",
            "str r0, [{o}], #4",
            "adds {w}, #18",
            "adds {x}, #34",
            "subs {n}, #1",
            "bne 1b",
            "2:",
            "vpop {{d0-d11}}",
            w = inout(reg) w => _,
            x = inout(reg) x => _,
            o = inout(reg) out => _,
            n = inout(reg) n => _,
            // `VMLADAV` and `VADDV` need even-numbered destinations.
            out("r0") _,
            out("r2") _,
        );
    }
}

/// The reference float accumulation of one row from its block sums:
/// `acc[(first + k) % 8] += sums[k] * (d_w * d_x)`.
#[cfg(not(latte_arm_mve_fp))]
#[inline(always)]
fn accumulate(
    acc: &mut [f32; LANES],
    first: usize,
    sums: &[i32],
    dw: impl Iterator<Item = u16>,
    dx: impl Iterator<Item = f32>,
) {
    for (k, ((&s, d), sx)) in sums.iter().zip(dw).zip(dx).enumerate() {
        acc[(first + k) % LANES] += s as f32 * (scale(d) * sx);
    }
}

/// [`accumulate`] with Helium's floating-point instructions (MVE-FP), four
/// blocks per vector: `acc[k % 8] += sums[k] * (d_w[k] * dx[k])` for the
/// `n = min(sums, w, dx)` blocks, `acc` starting at a multiple of 8 blocks.
/// Blocks `8 t .. 8 t + 4` go into the low four lanes (one loop) and
/// `8 t + 4 ..` into the high four (a second loop): each lane takes its
/// blocks in order, with the scalar code's operations (`f16` widened exactly,
/// `d_w * d_x` first, then the product, then the add). The weight scales are
/// gathered from the blocks (`VLDRH` with a vector of byte offsets). The last
/// vector of each loop is tail-predicated (`VCTP`): its idle lanes load
/// zeros and add `+0.0`, which changes no accumulator (none is ever -0.0).
///
/// # Safety
/// Helium with floating point is enabled (`latte_arm_mve_fp`).
#[cfg(latte_arm_mve_fp)]
#[inline(always)]
unsafe fn accumulate_mve<B: Weights>(acc: &mut [f32; LANES], sums: &[i32], w: &[B], dx: &[f32]) {
    let n = sums.len().min(w.len()).min(dx.len());
    let size = core::mem::size_of::<B>() as u32;
    // The scale `d` is a block's first field (`repr(C)`): byte offsets of
    // four consecutive blocks' scales.
    let offsets: [u32; 4] = [0, size, 2 * size, 3 * size];
    let step = 8 * size as usize;
    let (s, wb, d) = (sums.as_ptr(), w.as_ptr().cast::<u8>(), dx.as_ptr());
    // Blocks 8 t .. 8 t + 4 into acc[0..4], then 8 t + 4 .. into acc[4..8].
    for half in 0..2 {
        if n <= 4 * half {
            break;
        }
        // SAFETY: `4 * half < n` blocks exist, so the pointers stay inside
        // (or one past) their slices; the asm reads only the first `n`.
        unsafe {
            accumulate_mve_half(
                acc[4 * half..].as_mut_ptr(),
                s.add(4 * half),
                wb.add(4 * half * size as usize),
                d.add(4 * half),
                n - 4 * half,
                &offsets,
                step,
            )
        };
    }
}

/// One half of [`accumulate_mve`]: `acc[l] += s[8 t + l] * (d_w * d[8 t + l])`
/// for `l < 4` and `8 t + l < n`, the weight scale of block `k` at byte
/// `offsets[k % 4] + (k / 4) * step / 2` past `w`.
///
/// # Safety
/// MVE-FP is enabled; `acc` holds 4 floats; `s`, `d` and the blocks behind
/// `w` hold `n` entries.
#[cfg(latte_arm_mve_fp)]
#[inline(always)]
unsafe fn accumulate_mve_half(
    acc: *mut f32,
    s: *const i32,
    w: *const u8,
    d: *const f32,
    n: usize,
    offsets: &[u32; 4],
    step: usize,
) {
    // SAFETY: every load is predicated to the first `n` blocks (`VCTP` with
    // the blocks left, counted down by 8 per vector of 4 since the other
    // half's blocks are skipped): sums and dx as words inside their slices,
    // scales as halfwords at the start of blocks inside `w`; `acc` read and
    // written as one vector of four floats; q0-q4 (d0-d9) saved and restored.
    unsafe {
        asm!(
            ".arch_extension mve.fp",
            "vpush {{d0-d9}}",
            "vldrw.u32 q3, [{off}]",
            "vldrw.u32 q4, [{acc}]",
            "2:",
            "cmp {n}, #0",
            "ble 3f",
            "vctp.32 {n}",
            "vpsttt",
            "vldrwt.u32 q0, [{s}]",
            "vldrht.u32 q1, [{w}, q3]",
            "vldrwt.u32 q2, [{d}]",
            "vcvt.f32.s32 q0, q0",
            "vcvtb.f32.f16 q1, q1",
            "vmul.f32 q1, q1, q2",
            "vmul.f32 q0, q0, q1",
            "vadd.f32 q4, q4, q0",
            "adds {s}, #32",
            "adds {d}, #32",
            "add {w}, {w}, {step}",
            "subs {n}, #8",
            "b 2b",
            "3:",
            "vstrw.32 q4, [{acc}]",
            "vpop {{d0-d9}}",
            off = in(reg) offsets.as_ptr(),
            acc = in(reg) acc,
            n = inout(reg) n as isize => _,
            s = inout(reg) s => _,
            w = inout(reg) w => _,
            d = inout(reg) d => _,
            step = in(reg) step,
        );
    }
}

/// A weight block type with its integer block sums (the asm above).
trait Weights: Sized {
    /// The `f16` bits of the block's scale (the MVE-FP float part gathers
    /// them itself).
    #[cfg_attr(latte_arm_mve_fp, allow(dead_code))]
    fn d(&self) -> u16;
    /// `out[i]` = exact integer sum of weight block `i` against activation
    /// block `i`, for `n` blocks.
    ///
    /// # Safety
    /// Helium is enabled; `w`, `x` and `out` hold `n` elements.
    unsafe fn sums(w: *const Self, x: *const BlockQ8_0, out: *mut i32, n: usize);
}

impl Weights for BlockQ8_0 {
    #[inline(always)]
    fn d(&self) -> u16 {
        self.d
    }
    #[inline(always)]
    unsafe fn sums(w: *const Self, x: *const BlockQ8_0, out: *mut i32, n: usize) {
        // SAFETY: forwarded contract.
        unsafe { sums_q8(w, x, out, n) }
    }
}

impl Weights for BlockQ4_0 {
    #[inline(always)]
    fn d(&self) -> u16 {
        self.d
    }
    #[inline(always)]
    unsafe fn sums(w: *const Self, x: *const BlockQ8_0, out: *mut i32, n: usize) {
        // SAFETY: forwarded contract.
        unsafe { sums_q4(w, x, out, n) }
    }
}

/// Dot product of `min(w.len(), x.len())` blocks, in chunks of [`CHUNK`].
///
/// # Safety
/// Helium is enabled.
#[inline(always)]
unsafe fn dot<B: Weights>(w: &[B], x: &[BlockQ8_0]) -> f32 {
    let n = w.len().min(x.len());
    let mut acc = [0.0f32; LANES];
    let mut sums = [0i32; CHUNK];
    let mut i = 0;
    while i < n {
        let m = (n - i).min(CHUNK);
        // SAFETY: `i + m <= n` blocks exist in both; `sums` holds `m`.
        unsafe { B::sums(w[i..].as_ptr(), x[i..].as_ptr(), sums.as_mut_ptr(), m) };
        let (wc, xc) = (&w[i..i + m], &x[i..i + m]);
        #[cfg(latte_arm_mve_fp)]
        {
            // `i` is a multiple of CHUNK, itself a multiple of 8.
            let mut dx = [0.0f32; CHUNK];
            for (d, b) in dx.iter_mut().zip(xc) {
                *d = scale(b.d);
            }
            // SAFETY: forwarded contract (MVE-FP is enabled with this cfg).
            unsafe { accumulate_mve(&mut acc, &sums[..m], wc, &dx[..m]) };
        }
        #[cfg(not(latte_arm_mve_fp))]
        accumulate(
            &mut acc,
            i,
            &sums[..m],
            wc.iter().map(B::d),
            xc.iter().map(|b| scale(b.d)),
        );
        i += m;
    }
    reduce_lanes(acc)
}

/// `y[r] = dot(row r, x)`, rows `stride` blocks apart; the activation
/// scales are converted once for every row (rows of at most [`CHUNK`]
/// blocks; wider ones go through [`dot`] row by row).
///
/// # Safety
/// Helium is enabled; `(y.len() - 1) * stride + x.len() <= w.len()`.
#[inline(always)]
unsafe fn matvec<B: Weights>(w: &[B], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    let nb = x.len();
    if nb > CHUNK {
        for (r, out) in y.iter_mut().enumerate() {
            // SAFETY: forwarded contract.
            *out = unsafe { dot(&w[r * stride..r * stride + nb], x) };
        }
        return;
    }
    let mut dx = [0.0f32; CHUNK];
    for (d, b) in dx.iter_mut().zip(x) {
        *d = scale(b.d);
    }
    let mut sums = [0i32; CHUNK];
    for (r, out) in y.iter_mut().enumerate() {
        let wr = &w[r * stride..r * stride + nb];
        // SAFETY: `wr` and `x` hold `nb <= CHUNK` blocks; `sums` holds CHUNK.
        unsafe { B::sums(wr.as_ptr(), x.as_ptr(), sums.as_mut_ptr(), nb) };
        let mut acc = [0.0f32; LANES];
        #[cfg(latte_arm_mve_fp)]
        // SAFETY: forwarded contract (MVE-FP is enabled with this cfg).
        unsafe {
            accumulate_mve(&mut acc, &sums[..nb], wr, &dx[..nb])
        };
        #[cfg(not(latte_arm_mve_fp))]
        accumulate(
            &mut acc,
            0,
            &sums[..nb],
            wr.iter().map(B::d),
            dx[..nb].iter().copied(),
        );
        *out = reduce_lanes(acc);
    }
}

/// `Q8_0 . Q8_0` dot product.
///
/// # Safety
/// The CPU has Helium (compile-time: `latte_arm_mve`).
pub unsafe fn dot_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: forwarded contract.
    unsafe { dot(w, x) }
}

/// `Q4_0 . Q8_0` dot product.
///
/// # Safety
/// As [`dot_q8_0`].
pub unsafe fn dot_q4_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: forwarded contract.
    unsafe { dot(w, x) }
}

/// `y[r] = dot_q8_0(row r, x)`, rows `stride` blocks apart.
///
/// # Safety
/// As [`dot_q8_0`]; `(y.len() - 1) * stride + x.len() <= w.len()`.
pub unsafe fn matvec_q8_0(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    // SAFETY: forwarded contract.
    unsafe { matvec(w, stride, x, y) }
}

/// `y[r] = dot_q4_0(row r, x)`, rows `stride` blocks apart.
///
/// # Safety
/// As [`matvec_q8_0`].
pub unsafe fn matvec_q4_0(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
    // SAFETY: forwarded contract.
    unsafe { matvec(w, stride, x, y) }
}
