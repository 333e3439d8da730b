//! The kernel test suite on each host kernel path (see `kernel_suite!` at
//! the bottom): the shared cases of `latte_kernels::suite`, which the boards
//! also run on their devices (`boards/latte-board/src/selftest.rs`), and a
//! few host-only cases that feed the suite's checks inputs too big for a
//! microcontroller's stack. Integer kernels must equal the scalar twin bit
//! for bit; float kernels must stay within a rounding bound of an `f64`
//! reference.

mod common;

use common::require;
use latte_kernels::suite::{self, Elementwise, Outcome, Rng};
use latte_kernels::{f16, BlockQ4_0, BlockQ8_0, KernelPath, Kernels};

/// Panics with the failure, if any.
fn pass(path: KernelPath, case: &str, outcome: Outcome) {
    if let Err(failure) = outcome {
        panic!("{case} on {path}: {failure}");
    }
}

/// Host-only cases: the shared checks on inputs that need the heap (rows
/// and vectors of tens of KiB, beyond the boards' 32 KiB stacks).
mod host {
    use super::*;

    pub fn reports_its_path(k: &Kernels, path: KernelPath) {
        assert_eq!(k.path(), path);
        assert_eq!(Kernels::by_name(path.name()), Some(*k));
    }

    fn blocks_q8_0(rng: &mut Rng, n: usize) -> Vec<BlockQ8_0> {
        (0..n).map(|_| rng.block_q8_0()).collect()
    }

    fn blocks_q4_0(rng: &mut Rng, n: usize) -> Vec<BlockQ4_0> {
        (0..n).map(|_| rng.block_q4_0()).collect()
    }

    fn floats(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
        let mut v = vec![0.0; n];
        rng.fill_floats(&mut v, scale);
        v
    }

    /// `dot_q8_0_bit_exact` and `dot_q4_0_bit_exact` on 127 and 1056 blocks
    /// (the shared cases stop at 65).
    pub fn dot_bit_exact_long(k: &Kernels) -> Outcome {
        let mut rng = Rng::new(0x5EED_0011);
        for nb in [127usize, 1056] {
            for _ in 0..3 {
                let w = blocks_q8_0(&mut rng, nb);
                let w4 = blocks_q4_0(&mut rng, nb);
                let mut x = blocks_q8_0(&mut rng, nb);
                suite::check_dot_q4_0(k, &w4, &x)?;
                suite::check_dot_q8_0(k, &w, &mut x)?;
            }
        }
        Ok(())
    }

    /// `matvec_quant_bit_exact` on the shapes larger than the shared case's
    /// buffers: 2 to 13 rows of 132 and 137 blocks, 6 to 13 of 33, 13 of
    /// 16 and 17.
    pub fn matvec_quant_bit_exact_large(k: &Kernels) -> Outcome {
        let mut rng = Rng::new(0x5EED_0015);
        let mut shapes = 0;
        for &rows in suite::MATVEC_ROWS {
            for &nb in suite::MATVEC_BLOCKS {
                if rows * nb <= suite::MATVEC_MAX_BLOCKS {
                    continue;
                }
                shapes += 1;
                let w = blocks_q8_0(&mut rng, rows * nb);
                let w4 = blocks_q4_0(&mut rng, rows * nb);
                let mut x = blocks_q8_0(&mut rng, nb);
                if (rows + nb) % 2 == 0 {
                    suite::clear_min(&mut x);
                }
                suite::check_matvec_quant(k, rows, &w, &w4, &x)?;
            }
        }
        assert_eq!(shapes, 22, "the large shapes");
        Ok(())
    }

    /// `dot_f32_close` and `dot_f16_close` on 4097 and 10 001 values (the
    /// shared cases stop at 255).
    pub fn dot_float_close_long(k: &Kernels) -> Outcome {
        let mut rng = Rng::new(0x5EED_0018);
        for n in [4097usize, 10_001] {
            let a = floats(&mut rng, n, 3.0);
            let mut b = floats(&mut rng, n, 0.5);
            suite::check_dot_f32(k, &a, &mut b)?;
            let a: Vec<f16> = floats(&mut rng, n, 4.0)
                .into_iter()
                .map(f16::from_f32)
                .collect();
            let b = floats(&mut rng, n, 0.5);
            suite::check_dot_f16(k, &a, &b)?;
        }
        Ok(())
    }

    /// `quantized_dot_tracks_f32` on 128 blocks (the shared case stops at 33).
    pub fn quantized_dot_tracks_f32_long(k: &Kernels) -> Outcome {
        let mut rng = Rng::new(0x5EED_001B);
        let nb = 128;
        for scale in [0.01f32, 1.0, 50.0] {
            let w = floats(&mut rng, nb * 32, scale);
            let x = floats(&mut rng, nb * 32, 1.0);
            let mut wq = vec![BlockQ8_0::default(); nb];
            let mut w4 = vec![BlockQ4_0::default(); nb];
            let mut xq = vec![BlockQ8_0::default(); nb];
            suite::check_quantized_dot(k, &w, &x, &mut wq, &mut w4, &mut xq)?;
        }
        Ok(())
    }

    /// The elementwise functions on 100 000 random values in one call (the
    /// shared cases make calls of at most 1024).
    pub fn elementwise_long_slices(k: &Kernels) -> Outcome {
        let mut rng = Rng::new(0x5EED_0105);
        let n = suite::ELEMENTWISE_RANDOM;
        let x: Vec<f32> = (0..n).map(|i| suite::random_value(&mut rng, i)).collect();
        let mut got = vec![0.0; n];
        for op in [Elementwise::Exp, Elementwise::Tanh, Elementwise::GeluTanh] {
            suite::check_elementwise(k, op, &x, &mut got, Default::default())?;
        }
        Ok(())
    }
}

/// A `#[test]` for each case `$t` of `$module` on the kernels of `$path`;
/// for the shared suite also `SHARED`, the cases' names.
macro_rules! cases {
    ($path:expr, suite: $($t:ident),* $(,)?) => {
        /// The shared cases, in the order of `suite::CASES`.
        pub const SHARED: &[&str] = &[$(stringify!($t)),*];
        cases!(@tests $path, suite: $($t),*);
    };
    ($path:expr, host: $($t:ident),* $(,)?) => {
        cases!(@tests $path, host: $($t),*);
    };
    (@tests $path:expr, $module:ident: $($t:ident),*) => {
        $(
            #[test]
            fn $t() {
                if let Some(k) = require($path) {
                    pass($path, stringify!($t), $module::$t(&k));
                }
            }
        )*
    };
}

/// One module of tests per kernel path: every case of the shared suite,
/// then the host-only ones.
macro_rules! kernel_suite {
    ($name:ident, $path:expr) => {
        mod $name {
            use super::*;

            fn kernels() -> Option<Kernels> {
                require($path)
            }

            #[test]
            fn reports_its_path() {
                if let Some(k) = kernels() {
                    host::reports_its_path(&k, $path);
                }
            }

            cases!($path, suite:
                dot_q8_0_bit_exact,
                dot_q4_0_bit_exact,
                dot_extremes,
                dot_is_exact_integer_sum,
                dot_uses_n_and_common_prefix,
                dot_edge_scales_bit_exact,
                matvec_quant_bit_exact,
                matvec_strided_bit_exact,
                matvec_length_rules,
                matvec_model_activations,
                quantize_q8_0_bit_exact,
                dot_f32_close,
                dot_f16_close,
                matvec_float_close,
                f16_products_in_scalar_order,
                quantized_dot_tracks_f32,
                dequantized_layout_agrees,
                exp_bit_exact,
                tanh_bit_exact,
                gelu_tanh_bit_exact,
                latent_update_bit_exact,
                window_steps_bit_exact,
            );

            cases!($path, host:
                dot_bit_exact_long,
                matvec_quant_bit_exact_large,
                dot_float_close_long,
                quantized_dot_tracks_f32_long,
                elementwise_long_slices,
            );
        }
    };
}

kernel_suite!(scalar, KernelPath::Scalar);
#[cfg(target_arch = "x86_64")]
kernel_suite!(avx2, KernelPath::Avx2);
#[cfg(target_arch = "x86_64")]
kernel_suite!(avxvnni, KernelPath::AvxVnni);
#[cfg(target_arch = "x86_64")]
kernel_suite!(avx512vnni, KernelPath::Avx512Vnni);
#[cfg(target_arch = "aarch64")]
kernel_suite!(neon, KernelPath::Neon);
#[cfg(target_arch = "aarch64")]
kernel_suite!(neon_dotprod, KernelPath::NeonDotprod);

/// Every case of the shared suite has a test here (the list in
/// `kernel_suite!` is written out, one `#[test]` each).
#[test]
fn every_shared_case_runs_on_each_path() {
    let cases: Vec<&str> = suite::CASES.iter().map(|c| c.name).collect();
    assert_eq!(scalar::SHARED, cases.as_slice());
    #[cfg(target_arch = "x86_64")]
    for shared in [avx2::SHARED, avxvnni::SHARED, avx512vnni::SHARED] {
        assert_eq!(shared, cases.as_slice());
    }
    #[cfg(target_arch = "aarch64")]
    for shared in [neon::SHARED, neon_dotprod::SHARED] {
        assert_eq!(shared, cases.as_slice());
    }
}

/// `run_all` runs every case once, in order, and all pass on the best path.
#[test]
fn run_all_reports_every_case() {
    let mut seen = Vec::new();
    suite::run_all(&Kernels::best(), &mut |name, outcome| {
        pass(Kernels::best().path(), name, outcome);
        seen.push(name);
    });
    assert_eq!(seen, scalar::SHARED);
}

/// A failure names the check, the inputs and both values.
#[test]
fn failures_say_what_differed() {
    let f = suite::Failure {
        check: "vec_dot_q8_0_q8_0 = scalar twin",
        at: suite::At::new("nb,rows", &[9.0, 2.0]).index(3),
        found: suite::Found::Bits {
            got: 1.5,
            want: -0.0,
        },
    };
    assert_eq!(
        f.to_string(),
        "vec_dot_q8_0_q8_0 = scalar twin at nb=9, rows=2, i=3: \
         got 1.5e0 (0x3fc00000), want -0e0 (0x80000000)"
    );
}

/// `best()` is the most capable path present.
#[test]
fn best_is_the_last_available_path() {
    let last = KernelPath::ALL
        .iter()
        .rev()
        .find_map(|p| p.kernels())
        .unwrap();
    assert_eq!(Kernels::best(), last);
    #[cfg(target_arch = "x86_64")]
    if require(KernelPath::Avx2).is_some() {
        assert_ne!(Kernels::best().path(), KernelPath::Scalar);
    }
    #[cfg(target_arch = "aarch64")]
    if require(KernelPath::Neon).is_some() {
        assert_ne!(Kernels::best().path(), KernelPath::Scalar);
    }
    assert_eq!(Kernels::by_name("no-such-path"), None);
}
