//! x86-64 kernels for AVX2 + FMA + F16C.
//!
//! Quantized dot products: the exact integer sum of each block is computed
//! in 256-bit registers, eight blocks are reduced together into one vector of
//! eight per-block sums ([`transpose_sum`]), and the float part follows the
//! scalar reference order exactly (lane `i % 8`, multiply then add, no FMA).
//!
//! Signed x signed bytes (`Q8_0` x `Q8_0`) use the sign trick
//! `|w| * (x * sign(w))` through `vpmaddubsw`, which is exact unless an
//! activation quant is -128 (`-(-128)` wraps). The activation quantizer never
//! makes -128, so the kernels check the activations for it (fused into the
//! dot product's loop, or once per matrix-vector product) and fall back to
//! widening to 16 bits (`vpmovsxbw` + `vpmaddwd`, exact for every input).
//! `Q4_0` nibbles are unsigned: `sum q*y - 8 * sum y`, two `vpmaddubsw` that
//! cannot saturate.
//!
//! Matrix-vector products take rows four at a time, sharing the activation
//! loads, scales and correction terms, with exactly the per-row float steps
//! of the dot product.
//!
//! Float dot products use FMA with four 8-lane accumulators (reassociated).

use core::arch::x86_64::*;

use half::f16;

mod dot;
mod float;
mod math;
mod matmat;
mod matvec;
mod quantize;
mod window;

pub(crate) use dot::{dot_q4_0, dot_q8_0, nibbles, quant_dot};
pub(crate) use float::{dot_f16, dot_f32, matvec_f16, matvec_f32};
pub(crate) use math::{exp_inplace, gelu_tanh_inplace, latent_update, tanh_inplace};
pub(crate) use matmat::{matmat_q4_0_small, matmat_q8_0_small, quant_matmat_small};
pub(crate) use matvec::{matvec_q4_0, matvec_q8_0, quant_matvec};
pub(crate) use quantize::quantize_q8_0;
pub(crate) use window::{window_dots, window_sums};

// ---------------------------------------------------------------------------
// Loads (the only unsafe operations below).

#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn load_i8x32(q: &[i8; 32]) -> __m256i {
    // SAFETY: reads exactly the 32 bytes of `q`; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(q.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn load_u8x16(q: &[u8; 16]) -> __m128i {
    // SAFETY: reads exactly the 16 bytes of `q`; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(q.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn load_i8x16(q: &[i8; 32], half: usize) -> __m128i {
    let h: &[i8; 16] = q[16 * half..16 * half + 16].try_into().expect("16 bytes");
    // SAFETY: reads exactly the 16 bytes of `h`; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(h.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn load_f32x8(v: &[f32; 8]) -> __m256 {
    // SAFETY: reads exactly the 8 floats of `v`; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_ps(v.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,f16c")]
fn load_f16x8(v: &[f16; 8]) -> __m256 {
    // SAFETY: reads exactly the 16 bytes of `v` (`f16` is a `u16` newtype);
    // `loadu` has no alignment requirement.
    let h = unsafe { _mm_loadu_si128(v.as_ptr().cast()) };
    _mm256_cvtph_ps(h)
}

#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn store_i8x32(q: &mut [i8; 32], v: __m256i) {
    // SAFETY: writes exactly the 32 bytes of `q`; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_si256(q.as_mut_ptr().cast(), v) }
}

// ---------------------------------------------------------------------------
// Shared pieces of the quantized dot products (also used by the AVX-VNNI file).

/// Eight `f16` scales to `f32`. The bits are packed four at a time in
/// general-purpose registers (integer ports, idle in these loops) and moved
/// over as two 64-bit halves: three vector operations instead of the sixteen
/// shuffles of a `vpinsrw` tree, which LLVM would otherwise build (hence
/// [`opaque`]).
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(crate) fn scales8(d: [u16; 8]) -> __m256 {
    let pack = |d: &[u16]| -> i64 {
        opaque(d[0] as u64 | (d[1] as u64) << 16 | (d[2] as u64) << 32 | (d[3] as u64) << 48) as i64
    };
    _mm256_cvtph_ps(_mm_set_epi64x(pack(&d[4..]), pack(&d[..4])))
}

/// The value unchanged, but opaque to the optimizer.
#[inline(always)]
fn opaque(mut v: u64) -> u64 {
    // SAFETY: an empty asm block with one register operand: it reads and
    // writes nothing else, has no side effects and leaves `v` as it was.
    unsafe {
        core::arch::asm!("/* {0} */", inout(reg) v, options(pure, nomem, nostack, preserves_flags))
    };
    v
}

/// Eight vectors of eight `i32` partial sums to one vector of their eight
/// totals (`out[k] = sum(s[k])`), exact. Each merge of two vectors is two
/// blends (any ALU port), one in-lane shuffle and one add: half the shuffle
/// work of `vphaddd`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn transpose_sum(s: [__m256i; 8]) -> __m256i {
    // [a0+a1, b0+b1, a2+a3, b2+b3 | a4+a5, b4+b5, a6+a7, b6+b7]
    let merge32 = |a: __m256i, b: __m256i| -> __m256i {
        let x = _mm256_blend_epi32::<0b1010_1010>(a, b);
        let y = _mm256_blend_epi32::<0b1010_1010>(b, a);
        _mm256_add_epi32(x, _mm256_shuffle_epi32::<0b10_11_00_01>(y))
    };
    // [a01+a23, b.., c.., d.. | a45+a67, b.., c.., d..] from two merge32 outputs.
    let merge64 = |ab: __m256i, cd: __m256i| -> __m256i {
        let x = _mm256_blend_epi32::<0b1100_1100>(ab, cd);
        let y = _mm256_blend_epi32::<0b1100_1100>(cd, ab);
        _mm256_add_epi32(x, _mm256_shuffle_epi32::<0b01_00_11_10>(y))
    };
    let u0 = merge64(merge32(s[0], s[1]), merge32(s[2], s[3]));
    let u1 = merge64(merge32(s[4], s[5]), merge32(s[6], s[7]));
    let lo = _mm256_permute2x128_si256::<0x20>(u0, u1);
    let hi = _mm256_permute2x128_si256::<0x31>(u0, u1);
    _mm256_add_epi32(lo, hi)
}

/// `acc + (sums as f32) * (dw * dx)`, lane by lane: the reference step.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn accumulate(acc: __m256, sums: __m256i, dw: __m256, dx: __m256) -> __m256 {
    _mm256_add_ps(
        acc,
        _mm256_mul_ps(_mm256_cvtepi32_ps(sums), _mm256_mul_ps(dw, dx)),
    )
}

/// The reference reduction of the eight lane accumulators:
/// `((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn reduce_lanes(acc: __m256) -> f32 {
    let s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
    let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    let s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    _mm_cvtss_f32(s1)
}
