//! The elementwise math of the SIMD paths, written once: `scalar::exp_f32`,
//! `tanh_f32` and `gelu_tanh_f32` on every lane of a vector, bit for bit,
//! over the small set of vector operations in [`SimdF32`].
//!
//! The operations are those of the scalar specification in the same order:
//! multiply then add (never a fused multiply-add), IEEE division, both
//! branches of `tanh` computed and selected per lane, the special values
//! selected at the end. Each instruction set implements [`SimdF32`] on a
//! token type with one intrinsic per operation (`#[inline(always)]`); its
//! `#[target_feature]` entry points (`exp_inplace`, ... in its `math.rs`)
//! call [`map`] with [`Exp`], [`Tanh`] or [`GeluTanh`]; everything between
//! them and the intrinsics is
//! `#[inline(always)]`, so the whole computation inlines into them and every
//! intrinsic is compiled with the entry point's features. (Passing a
//! function such as [`exp`] as an `impl Fn` value would not do: its call
//! shim is an ordinary function, compiled without those features, which
//! then calls every intrinsic out of line.)

use crate::scalar;

/// The `f32` vectors of one instruction set and the operations the
/// elementwise math needs.
///
/// An implementing value is a token: it is made only inside functions with
/// the instruction set enabled, so its existence proves the CPU has it and
/// the methods can be safe. Every method is one instruction (or the fixed
/// short sequence its documentation gives) and `#[inline(always)]`.
pub(crate) trait SimdF32: Copy {
    /// A vector of `f32` lanes.
    type F: Copy;
    /// A vector of as many `i32` lanes.
    type I: Copy;
    /// A per-lane condition (a comparison's result).
    type M: Copy;
    /// Lanes per vector.
    const LANES: usize;
    /// `[f32; LANES]`, for the tail of a slice.
    type Buf: Default + AsMut<[f32]>;

    /// The first `LANES` values of `v` (panics if `v` is shorter).
    fn load(self, v: &[f32]) -> Self::F;
    /// Writes the lanes of `x` to the first `LANES` values of `v` (panics
    /// if `v` is shorter).
    fn store(self, v: &mut [f32], x: Self::F);
    /// `v` in every lane.
    fn splat(self, v: f32) -> Self::F;
    /// `a + b`.
    fn add(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a - b`.
    fn sub(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a * b`.
    fn mul(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a / b`.
    fn div(self, a: Self::F, b: Self::F) -> Self::F;
    /// The smaller of `a` and `b` (NaN lanes unspecified).
    fn min(self, a: Self::F, b: Self::F) -> Self::F;
    /// The larger of `a` and `b` (NaN lanes unspecified).
    fn max(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a` with its sign bit cleared.
    fn abs(self, a: Self::F) -> Self::F;
    /// `t` with the sign bit of `x` or-ed in.
    fn or_sign(self, t: Self::F, x: Self::F) -> Self::F;
    /// `a < b` (false for NaN).
    fn lt(self, a: Self::F, b: Self::F) -> Self::M;
    /// `a == b` (false for NaN).
    fn eq(self, a: Self::F, b: Self::F) -> Self::M;
    /// `yes` in the lanes where `m` holds, `no` elsewhere.
    fn select(self, m: Self::M, yes: Self::F, no: Self::F) -> Self::F;
    /// `y`, except the lanes where `x` is NaN, which take `x`.
    fn keep_nan(self, y: Self::F, x: Self::F) -> Self::F;
    /// The bits of `a`.
    fn f_to_bits(self, a: Self::F) -> Self::I;
    /// The `f32` lanes with the bits of `a`.
    fn bits_to_f(self, a: Self::I) -> Self::F;
    /// `v` in every lane.
    fn splat_i(self, v: i32) -> Self::I;
    /// `a + b`, wrapping.
    fn add_i(self, a: Self::I, b: Self::I) -> Self::I;
    /// `a - b`, wrapping.
    fn sub_i(self, a: Self::I, b: Self::I) -> Self::I;
    /// `a << 23`.
    fn shl23_i(self, a: Self::I) -> Self::I;
    /// `a >> 1`, arithmetic.
    fn sra1_i(self, a: Self::I) -> Self::I;
}

/// A lane-wise function for [`map`].
pub(crate) trait Lanewise {
    /// The function on every lane of `x` (NaN lanes unspecified).
    fn apply<S: SimdF32>(s: S, x: S::F) -> S::F;
}

/// [`exp`] for [`map`].
pub(crate) struct Exp;
/// [`tanh`] for [`map`].
pub(crate) struct Tanh;
/// [`gelu_tanh`] for [`map`].
pub(crate) struct GeluTanh;

impl Lanewise for Exp {
    #[inline(always)]
    fn apply<S: SimdF32>(s: S, x: S::F) -> S::F {
        exp(s, x)
    }
}

impl Lanewise for Tanh {
    #[inline(always)]
    fn apply<S: SimdF32>(s: S, x: S::F) -> S::F {
        tanh(s, x)
    }
}

impl Lanewise for GeluTanh {
    #[inline(always)]
    fn apply<S: SimdF32>(s: S, x: S::F) -> S::F {
        gelu_tanh(s, x)
    }
}

/// `F` on every value of `x`, `LANES` values at a time, NaN values left as
/// they were; the tail goes through `F` in a zero-padded vector.
#[inline(always)]
pub(crate) fn map<S: SimdF32, F: Lanewise>(s: S, x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(S::LANES);
    for c in &mut chunks {
        let v = s.load(c);
        s.store(c, s.keep_nan(F::apply(s, v), v));
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut buf = S::Buf::default();
        let buf = buf.as_mut();
        buf[..tail.len()].copy_from_slice(tail);
        let v = s.load(buf);
        s.store(buf, s.keep_nan(F::apply(s, v), v));
        tail.copy_from_slice(&buf[..tail.len()]);
    }
}

/// `scalar::exp_reduced` on every lane, each in `[EXP_MIN_X, EXP_MAX_X]`.
#[inline(always)]
fn exp_reduced<S: SimdF32>(s: S, x: S::F) -> (S::F, S::I) {
    let t = s.add(
        s.mul(x, s.splat(scalar::EXP_LOG2E)),
        s.splat(scalar::EXP_ROUND),
    );
    let n = s.sub_i(s.f_to_bits(t), s.splat_i(scalar::EXP_ROUND_BITS));
    let nf = s.sub(t, s.splat(scalar::EXP_ROUND));
    let r = s.sub(x, s.mul(nf, s.splat(scalar::EXP_LN2_HI)));
    let r = s.sub(r, s.mul(nf, s.splat(scalar::EXP_LN2_LO)));
    let z = s.mul(r, r);
    let c = scalar::EXP_P;
    let mut p = s.splat(c[0]);
    p = s.add(s.mul(p, r), s.splat(c[1]));
    p = s.add(s.mul(p, r), s.splat(c[2]));
    p = s.add(s.mul(p, r), s.splat(c[3]));
    p = s.add(s.mul(p, r), s.splat(c[4]));
    p = s.add(s.mul(p, r), s.splat(c[5]));
    p = s.add(s.mul(p, z), r);
    p = s.add(p, s.splat(1.0));
    (p, n)
}

/// `scalar::pow2` on every lane.
#[inline(always)]
fn pow2<S: SimdF32>(s: S, e: S::I) -> S::F {
    s.bits_to_f(s.shl23_i(s.add_i(e, s.splat_i(127))))
}

/// `scalar::exp_core` on every lane, each in `[EXP_MIN_X, EXP_MAX_X]`.
#[inline(always)]
fn exp_core<S: SimdF32>(s: S, x: S::F) -> S::F {
    let (p, n) = exp_reduced(s, x);
    let n1 = s.sra1_i(n);
    s.mul(s.mul(p, pow2(s, n1)), pow2(s, s.sub_i(n, n1)))
}

/// `scalar::exp_core_mid` on every lane, each in `[1.25, 20]`.
#[inline(always)]
fn exp_core_mid<S: SimdF32>(s: S, x: S::F) -> S::F {
    let (p, n) = exp_reduced(s, x);
    s.mul(p, pow2(s, n))
}

/// `scalar::exp_f32` on every lane, except NaN lanes (unspecified; [`map`]
/// puts the input back).
#[inline(always)]
fn exp<S: SimdF32>(s: S, x: S::F) -> S::F {
    let c = s.min(
        s.max(x, s.splat(scalar::EXP_MIN_X)),
        s.splat(scalar::EXP_MAX_X),
    );
    exp_core(s, c)
}

/// `scalar::tanh_f32` on every lane, except NaN lanes (unspecified).
#[inline(always)]
fn tanh<S: SimdF32>(s: S, x: S::F) -> S::F {
    let a = s.abs(x);
    // |x| < TANH_SMALL: the odd polynomial.
    let z = s.mul(a, a);
    let c = scalar::TANH_T;
    let mut q = s.splat(c[0]);
    q = s.add(s.mul(q, z), s.splat(c[1]));
    q = s.add(s.mul(q, z), s.splat(c[2]));
    q = s.add(s.mul(q, z), s.splat(c[3]));
    q = s.add(s.mul(q, z), s.splat(c[4]));
    q = s.mul(q, z);
    q = s.mul(q, a);
    let small = s.add(q, a);
    // Otherwise 1 - 2 / (exp(2 min(|x|, TANH_CLAMP)) + 1).
    let b = s.min(a, s.splat(scalar::TANH_CLAMP));
    let e = exp_core_mid(s, s.add(b, b));
    let one = s.splat(1.0);
    let large = s.sub(one, s.div(s.splat(2.0), s.add(e, one)));
    let is_small = s.lt(a, s.splat(scalar::TANH_SMALL));
    let t = s.select(is_small, small, large);
    // The sign of x on |tanh x| (an odd function; tanh(-0) = -0).
    s.or_sign(t, x)
}

/// `scalar::gelu_tanh_f32` on every lane, except NaN lanes (unspecified).
/// A NaN lane of the inner `tanh` comes only from a NaN `x`.
#[inline(always)]
fn gelu_tanh<S: SimdF32>(s: S, x: S::F) -> S::F {
    let x3 = s.mul(s.mul(s.mul(s.splat(scalar::GELU_C), x), x), x);
    let u = s.mul(s.splat(scalar::GELU_K), s.add(x, x3));
    let t = tanh(s, u);
    let g = s.mul(s.mul(s.splat(0.5), x), s.add(s.splat(1.0), t));
    let neg_inf = s.eq(x, s.splat(f32::NEG_INFINITY));
    s.select(neg_inf, s.splat(-0.0), g)
}
