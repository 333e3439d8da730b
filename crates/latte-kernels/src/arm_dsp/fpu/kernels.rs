//! The `asm!` kernels of the two-row matrix-vector products and the
//! macros they are written with.

use core::arch::asm;

use super::{Job, Shape};

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
pub(super) unsafe fn kernel_q8(job: &mut Job, shape: Shape) {
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
pub(super) unsafe fn kernel_q8_align0(job: &mut Job, shape: Shape) {
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
pub(super) unsafe fn kernel_q8_align2(job: &mut Job, shape: Shape) {
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
pub(super) unsafe fn kernel_q4(job: &mut Job, shape: Shape) {
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
