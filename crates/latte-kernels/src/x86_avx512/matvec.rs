//! Quantized matrix-vector products: eight rows of whole groups of eight
//! blocks at a time, four rows of at most four blocks at a time (driver
//! closures as in `dot.rs`).

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::{
    dpbusd, halves, pair, products, q4_nibble_pair, q8_biased_pair, q8_pair, scales16, scales8x2,
    transpose_sum16, transpose_sum8x2, ZERO_Q4, ZERO_Q8,
};
use crate::block::{BlockQ4_0, BlockQ8_0};
use crate::x86_avx2::{load_i8x32, reduce_lanes};

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

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn matvec_q8_0(w: &[BlockQ8_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
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
pub(crate) fn matvec_q4_0(w: &[BlockQ4_0], stride: usize, x: &[BlockQ8_0], y: &mut [f32]) {
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
