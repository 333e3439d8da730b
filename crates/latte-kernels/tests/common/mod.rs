//! Shared test helpers: a seeded PRNG, random blocks, and the rule for
//! which kernel paths must be present on the machine running the tests.
#![allow(dead_code)]

use latte_kernels::{f16, BlockQ4_0, BlockQ8_0, KernelPath, Kernels};

/// SplitMix64: small, seeded, good enough for test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[-1, 1)`.
    pub fn signed(&mut self) -> f32 {
        2.0 * self.unit() - 1.0
    }

    pub fn i8(&mut self) -> i8 {
        self.next_u64() as i8
    }

    pub fn u8(&mut self) -> u8 {
        self.next_u64() as u8
    }

    /// A finite `f16` scale of random sign, magnitude `2^-20 .. 2^15`
    /// (subnormal to near the largest finite), sometimes exactly zero.
    pub fn scale_bits(&mut self) -> u16 {
        if self.below(50) == 0 {
            return 0;
        }
        let exp = 0x0004 + self.below(0x7BFF - 0x0004) as u16; // finite, non-zero range
        let sign = if self.below(2) == 0 { 0 } else { 0x8000 };
        exp | sign
    }

    /// A "moderate" scale like real weights/activations: `f16` of 1e-4..1.
    pub fn moderate_scale_bits(&mut self) -> u16 {
        let v = 10f32.powf(-4.0 * self.unit()) * if self.below(2) == 0 { 1.0 } else { -1.0 };
        f16::from_f32(v).to_bits()
    }

    pub fn block_q8_0(&mut self) -> BlockQ8_0 {
        let d = if self.below(2) == 0 {
            self.scale_bits()
        } else {
            self.moderate_scale_bits()
        };
        let mut qs = [0i8; 32];
        for q in &mut qs {
            *q = self.i8();
        }
        BlockQ8_0 { d, qs }
    }

    pub fn block_q4_0(&mut self) -> BlockQ4_0 {
        let d = if self.below(2) == 0 {
            self.scale_bits()
        } else {
            self.moderate_scale_bits()
        };
        let mut qs = [0u8; 16];
        for q in &mut qs {
            *q = self.u8();
        }
        BlockQ4_0 { d, qs }
    }

    pub fn blocks_q8_0(&mut self, n: usize) -> Vec<BlockQ8_0> {
        (0..n).map(|_| self.block_q8_0()).collect()
    }

    pub fn blocks_q4_0(&mut self, n: usize) -> Vec<BlockQ4_0> {
        (0..n).map(|_| self.block_q4_0()).collect()
    }

    /// `n` floats in `[-scale, scale)`.
    pub fn floats(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.signed() * scale).collect()
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
