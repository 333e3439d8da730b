//! Derives the Arm ISA cfgs from the target: stable rustc reports no
//! `target_feature` for the DSP extension of `thumbv7em` targets, and the
//! DSP intrinsics are unstable, so the DSP kernels are selected here and
//! written with `asm!`.
//!
//! * `latte_arm_dsp`: the target has the DSP extension (`SMLAD`, `SXTB16`):
//!   every `thumbv7em-*` target (Cortex-M4/M7), and `thumbv8m.main-*`
//!   targets built with `-C target-feature=+dsp` (Cortex-M33/M55).
//! * `latte_arm_mve`: a `thumbv8m.main-*` target built with
//!   `-C target-feature=+mve` or `+mve.fp` (Helium: Cortex-M55/M85).
//! * `latte_arm_mve_fp`: a hard-float `thumbv8m.main-*` target built with
//!   `-C target-feature=+mve.fp` (Helium with floating point): the Helium
//!   kernels do their float part with vector instructions too.
//! * `latte_arm_fpu`: as `latte_arm_dsp`, on a hard-float (`*-eabihf`)
//!   target, so with a single-precision FPU that has the half-precision
//!   conversions (FPv4-SP or later): the DSP matrix-vector kernels keep
//!   their float accumulators in FPU registers inside `asm!` (which stable
//!   rustc lets name FPU registers only as clobbers on these targets).

use std::env;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(latte_arm_dsp)");
    println!("cargo::rustc-check-cfg=cfg(latte_arm_fpu)");
    println!("cargo::rustc-check-cfg=cfg(latte_arm_mve)");
    println!("cargo::rustc-check-cfg=cfg(latte_arm_mve_fp)");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");

    let target = env::var("TARGET").unwrap_or_default();
    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let rustflags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let has_feature = |name: &str| {
        features.split(',').any(|f| f == name)
            || rustflags
                .split('\x1f')
                .flat_map(|flag| flag.split(','))
                .any(|f| f.rsplit('=').next() == Some(&format!("+{name}")))
    };

    let dsp = target.starts_with("thumbv7em-")
        || (target.starts_with("thumbv8m.main-") && has_feature("dsp"));
    if dsp {
        println!("cargo::rustc-cfg=latte_arm_dsp");
        if target.ends_with("-eabihf") {
            println!("cargo::rustc-cfg=latte_arm_fpu");
        }
    }
    if target.starts_with("thumbv8m.main-") && (has_feature("mve") || has_feature("mve.fp")) {
        println!("cargo::rustc-cfg=latte_arm_mve");
    }
    if target.starts_with("thumbv8m.main-") && target.ends_with("-eabihf") && has_feature("mve.fp")
    {
        println!("cargo::rustc-cfg=latte_arm_mve_fp");
    }
}
