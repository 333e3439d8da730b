//! Shared test helpers: a seeded PRNG, random blocks, and the rule for
//! which kernel paths must be present on the machine running the tests.
#![allow(dead_code)]

use latte_kernels::{BlockQ4_0, BlockQ8_0, KernelPath, Kernels};

/// The suite's generator (SplitMix64, `latte_kernels::suite::Rng`), with
/// helpers that return owned vectors for the host-only tests.
pub use latte_kernels::suite::Rng;

pub trait RngVec {
    fn blocks_q8_0(&mut self, n: usize) -> Vec<BlockQ8_0>;
    fn blocks_q4_0(&mut self, n: usize) -> Vec<BlockQ4_0>;
    /// `n` floats in `[-scale, scale)`.
    fn floats(&mut self, n: usize, scale: f32) -> Vec<f32>;
}

impl RngVec for Rng {
    fn blocks_q8_0(&mut self, n: usize) -> Vec<BlockQ8_0> {
        let mut b = vec![BlockQ8_0::default(); n];
        self.fill_q8_0(&mut b);
        b
    }

    fn blocks_q4_0(&mut self, n: usize) -> Vec<BlockQ4_0> {
        let mut b = vec![BlockQ4_0::default(); n];
        self.fill_q4_0(&mut b);
        b
    }

    fn floats(&mut self, n: usize, scale: f32) -> Vec<f32> {
        let mut v = vec![0.0; n];
        self.fill_floats(&mut v, scale);
        v
    }
}

fn env_list(name: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The kernels of `path` for a test, or `None` (the test then passes
/// without checking) only where the environment says this CPU lacks the path.
///
/// * `scalar`, and the baseline SIMD path of the architecture (`avx2` on
///   x86-64, `neon` on AArch64): must be present unless `LATTE_CPU_LACKS`
///   (comma list of path names) names it.
/// * Extensions (`avxvnni`, `avx512vnni`, `neon-dotprod`):
///   `LATTE_EXPECT_AVXVNNI` / `LATTE_EXPECT_AVX512VNNI` /
///   `LATTE_EXPECT_DOTPROD` = `1` means must be present, `0` means must be
///   absent; unset means tested when present.
///
/// A path named as lacking must really be absent, so the variables cannot
/// hide a broken detection either.
pub fn require(path: KernelPath) -> Option<Kernels> {
    let found = path.kernels();
    let lacks = env_list("LATTE_CPU_LACKS").iter().any(|n| n == path.name());
    let expect_var = match path {
        KernelPath::AvxVnni => Some("LATTE_EXPECT_AVXVNNI"),
        KernelPath::Avx512Vnni => Some("LATTE_EXPECT_AVX512VNNI"),
        KernelPath::NeonDotprod => Some("LATTE_EXPECT_DOTPROD"),
        _ => None,
    };
    let expect = expect_var.map(|v| std::env::var(v).unwrap_or_default());
    let declared_absent = lacks || expect.as_deref() == Some("0");
    if declared_absent {
        assert!(
            found.is_none(),
            "the environment says this CPU lacks `{path}`, but it was detected"
        );
        eprintln!("`{path}` not tested: the environment says this CPU lacks it");
        return None;
    }
    let required = match expect.as_deref() {
        Some("1") => true,
        Some(_) => false, // extension, unset: test it if present
        None => true,     // scalar or baseline
    };
    match found {
        Some(k) => {
            assert_eq!(k.path(), path);
            Some(k)
        }
        None if required => panic!(
            "kernel path `{path}` is not available on this CPU; if that is expected, \
             say so with LATTE_CPU_LACKS={name} (or LATTE_EXPECT_*=0 for extensions)",
            name = path.name()
        ),
        None => {
            eprintln!(
                "`{path}` not tested: not detected (set its LATTE_EXPECT_* to 1 to require it)"
            );
            None
        }
    }
}

/// `f32` bits, for bit-for-bit assertions with readable failures.
pub fn bits(v: f32) -> u32 {
    v.to_bits()
}
