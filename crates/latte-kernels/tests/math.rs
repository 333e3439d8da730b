//! Accuracy of the elementwise math specification (`scalar::exp_f32`,
//! `tanh_f32`, `gelu_tanh_f32`) against `f64`: dense sampling over the whole
//! range plus every input of the binades where the exhaustive search
//! (`examples/math_accuracy.rs`, every `f32`) found the largest errors. The
//! bounds are the documented maxima of that search (`src/scalar.rs`,
//! "Elementwise math"): a change that makes any of them worse fails here.
//! That every SIMD path gives the same bits is `tests/kernels.rs`.

use latte_kernels::scalar::{exp_f32, gelu_tanh_f32, tanh_f32};

/// Documented maxima, in ulps of the exact value (every `f32` input).
const EXP_MAX_ULP: f64 = 0.987;
const TANH_MAX_ULP: f64 = 1.331;
const GELU_NONNEG_MAX_ULP: f64 = 1.831;
/// GELU for `x < 0` (cancellation in `1 + tanh`): absolute error.
const GELU_NEG_MAX_ABS: f64 = 7.7e-8;

/// `f32` ulp at the magnitude of `r` (subnormal spacing below `2^-126`).
fn ulp(r: f64) -> f64 {
    let e = ((r.abs().to_bits() >> 52) & 0x7FF) as i32 - 1023;
    2f64.powi(e.max(-126) - 23)
}

fn err_ulps(y: f32, r: f64) -> f64 {
    let rf = r as f32;
    if rf.is_infinite() || y.is_infinite() {
        return if rf == y { 0.0 } else { f64::INFINITY };
    }
    (y as f64 - r).abs() / ulp(r)
}

fn gelu64(x: f64) -> f64 {
    let k = (2.0 / core::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
}

/// Every `step`-th bit pattern of `[lo, hi]` (both included), as `f32`.
fn bits(lo: u32, hi: u32, step: usize) -> impl Iterator<Item = f32> {
    (lo..=hi).step_by(step).chain([hi]).map(f32::from_bits)
}

/// Positive and negative `f32` in `[lo, hi]` (magnitudes), every `step`-th.
fn both_signs(lo: f32, hi: f32, step: usize) -> impl Iterator<Item = f32> {
    bits(lo.to_bits(), hi.to_bits(), step).flat_map(|x| [x, -x])
}

/// Largest error of `f` against `exact` over `xs`, and where.
fn max_err(
    xs: impl Iterator<Item = f32>,
    f: fn(f32) -> f32,
    exact: fn(f64) -> f64,
    measure: fn(f32, f64) -> f64,
) -> (f64, f32) {
    let mut worst = (0.0, 0.0);
    for x in xs {
        let e = measure(f(x), exact(x as f64));
        if e > worst.0 || e.is_nan() {
            worst = (e, x);
        }
    }
    worst
}

fn check(what: &str, (err, at): (f64, f32), bound: f64, unit: &str) {
    eprintln!("{what}: max {err:.4e} {unit} at {at:e}");
    assert!(
        err <= bound,
        "{what}: error {err} {unit} at x = {at:e} ({:#010x}) exceeds the documented {bound}",
        at.to_bits()
    );
}

#[test]
fn exp_within_documented_ulps() {
    // Dense over everything that is neither 0 nor inf; every input of
    // [32, 64) (the maximum is at 59.28) and of the subnormal results.
    let dense = both_signs(f32::from_bits(1), 104.0, 1009);
    check(
        "exp, dense",
        max_err(dense, exp_f32, f64::exp, err_ulps),
        EXP_MAX_ULP,
        "ulp",
    );
    check(
        "exp, [32, 64)",
        max_err(
            bits(0x4200_0000, 0x427F_FFFF, 1),
            exp_f32,
            f64::exp,
            err_ulps,
        ),
        EXP_MAX_ULP,
        "ulp",
    );
    let sub = bits((87.3f32).to_bits(), (104.0f32).to_bits(), 1).map(|x| -x);
    check(
        "exp, subnormal results",
        max_err(sub, exp_f32, f64::exp, err_ulps),
        EXP_MAX_ULP,
        "ulp",
    );
    // Overflow and underflow exactly where the correctly rounded result does.
    assert_eq!(exp_f32(f32::from_bits(0x42B1_7217)), 3.402_798_5e38);
    assert_eq!(exp_f32(f32::from_bits(0x42B1_7218)), f32::INFINITY);
    assert_eq!(exp_f32(-103.972_08), f32::from_bits(1));
    assert_eq!(exp_f32(-103.972_09), 0.0);
}

#[test]
fn tanh_within_documented_ulps() {
    let dense = both_signs(f32::from_bits(1), 12.0, 509);
    check(
        "tanh, dense",
        max_err(dense, tanh_f32, f64::tanh, err_ulps),
        TANH_MAX_ULP,
        "ulp",
    );
    // Every input of [0.5, 1): the switch between the two forms at 0.625,
    // where the maximum is.
    check(
        "tanh, [0.5, 1)",
        max_err(
            bits(0x3F00_0000, 0x3F7F_FFFF, 1),
            tanh_f32,
            f64::tanh,
            err_ulps,
        ),
        TANH_MAX_ULP,
        "ulp",
    );
}

#[test]
fn gelu_within_documented_bounds() {
    let dense = bits(0, (1e6f32).to_bits(), 509);
    check(
        "gelu, x >= 0, dense",
        max_err(dense, gelu_tanh_f32, gelu64, err_ulps),
        GELU_NONNEG_MAX_ULP,
        "ulp",
    );
    check(
        "gelu, [0.5, 1)",
        max_err(
            bits(0x3F00_0000, 0x3F7F_FFFF, 1),
            gelu_tanh_f32,
            gelu64,
            err_ulps,
        ),
        GELU_NONNEG_MAX_ULP,
        "ulp",
    );
    let abs = |y: f32, r: f64| (y as f64 - r).abs();
    let neg = bits(0, (1e6f32).to_bits(), 509).map(|x| -x);
    check(
        "gelu, x < 0, dense",
        max_err(neg, gelu_tanh_f32, gelu64, abs),
        GELU_NEG_MAX_ABS,
        "absolute",
    );
}

#[test]
fn special_values() {
    assert_eq!(exp_f32(0.0), 1.0);
    assert_eq!(exp_f32(-0.0), 1.0);
    assert_eq!(exp_f32(f32::NEG_INFINITY).to_bits(), 0);
    assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
    assert_eq!(exp_f32(1.0), core::f32::consts::E);
    assert_eq!(tanh_f32(0.0).to_bits(), 0);
    assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
    assert_eq!(tanh_f32(f32::INFINITY), 1.0);
    assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
    assert_eq!(tanh_f32(9.1), 1.0);
    assert_eq!(tanh_f32(1e-30), 1e-30);
    assert_eq!(tanh_f32(f32::from_bits(1)), f32::from_bits(1));
    assert_eq!(gelu_tanh_f32(0.0).to_bits(), 0);
    assert_eq!(gelu_tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
    assert_eq!(gelu_tanh_f32(f32::INFINITY), f32::INFINITY);
    assert_eq!(
        gelu_tanh_f32(f32::NEG_INFINITY).to_bits(),
        (-0.0f32).to_bits()
    );
    assert_eq!(gelu_tanh_f32(f32::MAX), f32::MAX);
    assert_eq!(gelu_tanh_f32(-f32::MAX).to_bits(), (-0.0f32).to_bits());
    assert_eq!(gelu_tanh_f32(10.0), 10.0);
    // NaN comes back unchanged (payload and sign), for every function.
    for b in [
        0x7FC0_0000u32,
        0xFFC0_0000,
        0x7F80_0001,
        0x7FC0_1234,
        0xFFFF_FFFF,
    ] {
        let x = f32::from_bits(b);
        assert_eq!(exp_f32(x).to_bits(), b);
        assert_eq!(tanh_f32(x).to_bits(), b);
        assert_eq!(gelu_tanh_f32(x).to_bits(), b);
    }
}
