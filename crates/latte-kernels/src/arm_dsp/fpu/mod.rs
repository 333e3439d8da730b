//! The two-row matrix-vector kernels of FPU targets (see `arm_dsp`).
//!
//! # Activation layout
//!
//! The widened activations are stored in groups of (up to) eight blocks,
//! in the order the kernel reads them: the group's eight `d_x` (lane `l`
//! in word `l`; one `VLDM` into `s24..s31`), then its blocks from the
//! highest lane to lane 0, each 16 words (`Q8_0`) or `8 sum x` and 16 words
//! (`Q4_0`). The loop body is unrolled over the lanes in that order, lane 7
//! first, so a last group of `r < 8` blocks (lanes `r-1..0`) is the tail of
//! the body: it is entered through a `TBH` table, and block `i` lands in
//! lane `i % 8` of the reference order with no index arithmetic. At most
//! four groups of 8 + 8 x 17 words: 2,304 bytes.
//!
//! # Registers
//!
//! `r6`, `r7`, `sp` and `pc` are not available to `asm!`; everything else
//! is used, and every FPU register:
//!
//! | register | role |
//! |---|---|
//! | `r0`, `r1` | integer block sums of rows B and A (`r0` first holds `8 sum x` for `Q4_0`) |
//! | `r2`..`r5` | four activation words (`LDM`) |
//! | `r8` | unpacked weight pair |
//! | `r9`, `r10` | weight words (`Q8_0`); weight word and nibble mask (`Q4_0`) |
//! | `r11`, `r12` | rows A and B, at the first block of the current group |
//! | `lr` | next widened activation word |
//! | `s0`..`s7`, `s8`..`s15` | lane accumulators of rows A and B |
//! | `s16` | address of the `Job` |
//! | `s17`..`s20` | `d_w * d_x` of A and B, block sums of A and B; then the two results |
//! | `s21`..`s23` | `TBH` index of a last partial group, end of the whole groups, end of the activations |
//! | `s24`..`s31` | `d_x` of the current group, by lane |
//!
//! Between pairs of rows the loop state lives in the `Job` in memory
//! (`LDM`, `LDRD`/`STRD`), so one `asm!` statement runs all the pairs of
//! rows of a product.

use core::arch::asm;
use core::mem::{size_of, MaybeUninit};

use super::{scale, widen_q8_words, MAX_BLOCKS, WORDS};
use crate::block::{BlockQ4_0, BlockQ8_0};
use crate::scalar::LANES;

mod kernels;

use kernels::{kernel_q4, kernel_q8, kernel_q8_align0, kernel_q8_align2};

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
pub(super) unsafe fn matvec_q8_0(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
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
pub(super) unsafe fn matvec_q4_0(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
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
