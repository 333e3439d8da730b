//! The kernel test suite, shared by the host tests (`tests/kernels.rs`, once
//! per host kernel path) and the boards' on-device tests
//! (`boards/latte-board`, once per Arm path): feature `suite`.
//!
//! Every case takes the kernels under test and checks them against an
//! independent expectation: the scalar twin (bit for bit for the integer
//! kernels, the quantizer and the elementwise math), an exact value, or an
//! `f64` reference with a rounding bound (the float products). A case stops
//! at its first failed check and returns it as a [`Failure`] saying what
//! differed and on which inputs.
//!
//! `no_std` and no allocation: the inputs live in fixed-size buffers on the
//! stack, the largest case needing about 17 KiB (the boards reserve 32 KiB
//! of stack). Inputs too big for that (rows of hundreds of blocks, vectors
//! of thousands of values) are the host's: `tests/kernels.rs` feeds them to
//! the same checks ([`check_dot_q8_0`], [`check_matvec_quant`], ...).
//!
//! ```
//! use latte_kernels::{suite, Kernels};
//!
//! let mut failed = 0;
//! suite::run_all(&Kernels::best(), &mut |_name, result| {
//!     failed += result.is_err() as u32;
//! });
//! assert_eq!(failed, 0);
//! ```

use core::fmt;

use crate::{
    dequantize_row_q4_0, dequantize_row_q8_0, f16, quantize_row_q4_0, quantize_row_q8_0, scalar,
    BlockQ4_0, BlockQ8_0, KernelPath, Kernels,
};

/// What a case returns: `Err` with its first failed check.
pub type Outcome = Result<(), Failure>;

/// A named case of the suite.
#[derive(Clone, Copy)]
pub struct Case {
    /// The case's name, also the name of its function in this module.
    pub name: &'static str,
    /// Runs the case on the kernels under test.
    pub run: fn(&Kernels) -> Outcome,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case of the suite, in the order [`run_all`] runs them.
        pub const CASES: &[Case] = &[$(Case { name: stringify!($name), run: $name }),*];
    };
}

cases!(
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

/// Runs every case of [`CASES`] on `k`, calling `report` with each case's
/// name and outcome.
pub fn run_all(k: &Kernels, report: &mut dyn FnMut(&'static str, Outcome)) {
    for case in CASES {
        report(case.name, (case.run)(k));
    }
}

// ---------------------------------------------------------------------------
// Failures

/// A failed check: which, on what inputs, and what differed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Failure {
    /// The check, e.g. `"vec_dot_q8_0_q8_0 = scalar twin"`.
    pub check: &'static str,
    /// The inputs: block counts, rows, lengths, scales, indices.
    pub at: At,
    /// What differed.
    pub found: Found,
}

/// The parameters of a failing input (up to five, named), and the index of
/// the element that differed, if any.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct At {
    names: &'static str,
    values: [f32; 5],
    index: Option<u32>,
}

impl At {
    /// Parameters named by the comma-separated `names` with `values` (sizes
    /// and indices are exact integers; more than five are dropped).
    pub fn new(names: &'static str, values: &[f32]) -> At {
        let mut at = At {
            names,
            ..At::default()
        };
        for (slot, &v) in at.values.iter_mut().zip(values) {
            *slot = v;
        }
        at
    }

    /// `self` at element `i`.
    pub fn index(self, i: usize) -> At {
        At {
            index: Some(i as u32),
            ..self
        }
    }

    /// The parameters `(name, value)`, then `("i", index)`.
    pub fn params(&self) -> impl Iterator<Item = (&'static str, f32)> + '_ {
        let names = self.names.split(',').filter(|n| !n.is_empty());
        names
            .zip(self.values)
            .chain(self.index.map(|i| ("i", i as f32)))
    }
}

/// `At` from variables: `at!(nb, rows)`.
macro_rules! at {
    ($first:ident $(, $v:ident)* $(,)?) => {
        At::new(
            concat!(stringify!($first) $(, ",", stringify!($v))*),
            &[$first as f32 $(, $v as f32)*],
        )
    };
}

/// What a failed check found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Found {
    /// An `f32` result without the bits of the expected one (the scalar
    /// twin's, or an exact value).
    Bits {
        /// The kernel's result.
        got: f32,
        /// The expected result.
        want: f32,
    },
    /// A result further from the exact (`f64`) value than the bound.
    Bound {
        /// The kernel's result.
        got: f64,
        /// The exact value.
        exact: f64,
        /// The largest error allowed.
        bound: f64,
    },
    /// An elementwise result without the scalar twin's bits.
    Element {
        /// The element's index.
        index: u32,
        /// The slice's length.
        len: u32,
        /// Its input.
        x: f32,
        /// The kernel's result.
        got: f32,
        /// The scalar twin's result.
        want: f32,
    },
    /// A quantized block that differs from the reference quantizer's.
    Block {
        /// The block's index.
        index: u32,
        /// The kernel's scale (`f16` bits).
        got_d: u16,
        /// The reference's scale.
        want_d: u16,
        /// The first quant that differs (32: none, only the scales).
        j: u8,
        /// The kernel's quant `j`.
        got_q: i8,
        /// The reference's quant `j`.
        want_q: i8,
    },
    /// A property that does not hold (the check says which).
    Property,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.check)?;
        for (i, (name, value)) in self.at.params().enumerate() {
            let sep = if i == 0 { " at " } else { ", " };
            write!(f, "{sep}{name}={value}")?;
        }
        match self.found {
            Found::Bits { got, want } => write!(
                f,
                ": got {got:e} ({:#010x}), want {want:e} ({:#010x})",
                got.to_bits(),
                want.to_bits()
            ),
            Found::Bound { got, exact, bound } => write!(
                f,
                ": got {got:e}, exact {exact:e}, error {:e} > bound {bound:e}",
                (got - exact).abs()
            ),
            Found::Element {
                index,
                len,
                x,
                got,
                want,
            } => write!(
                f,
                ": element {index} of {len}, x = {x:e} ({:#010x}) gives {got:e} ({:#010x}), \
                 the scalar twin {want:e} ({:#010x})",
                x.to_bits(),
                got.to_bits(),
                want.to_bits()
            ),
            Found::Block {
                index,
                got_d,
                want_d,
                j,
                got_q,
                want_q,
            } => write!(
                f,
                ": block {index} has d = {got_d:#06x}, quant {j} = {got_q}; \
                 the reference d = {want_d:#06x}, quant {j} = {want_q}"
            ),
            Found::Property => Ok(()),
        }
    }
}

fn ensure(ok: bool, check: &'static str, at: At) -> Outcome {
    if ok {
        Ok(())
    } else {
        Err(Failure {
            check,
            at,
            found: Found::Property,
        })
    }
}

/// `got` has the bits of `want`.
fn same(check: &'static str, at: At, got: f32, want: f32) -> Outcome {
    if got.to_bits() == want.to_bits() {
        Ok(())
    } else {
        Err(Failure {
            check,
            at,
            found: Found::Bits { got, want },
        })
    }
}

/// Every `got[i]` has the bits of `want[i]`, and the lengths agree.
fn same_all(check: &'static str, at: At, got: &[f32], want: &[f32]) -> Outcome {
    ensure(got.len() == want.len(), check, at)?;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        same(check, at.index(i), g, w)?;
    }
    Ok(())
}

/// `f32` unit roundoff.
const U: f64 = 1.0 / (1u64 << 24) as f64;

/// `got` against the exact dot product of `n` pairs `ab(i)`, with the
/// standard bound `|computed - exact| <= n u sum |a b|` (plus slack for the
/// lane reduction).
fn close(
    check: &'static str,
    at: At,
    got: f32,
    n: usize,
    ab: impl Fn(usize) -> (f64, f64),
) -> Outcome {
    let (mut exact, mut mag) = (0.0f64, 0.0f64);
    for i in 0..n {
        let (a, b) = ab(i);
        exact += a * b;
        mag += (a * b).abs();
    }
    let bound = (n as f64 + 8.0) * U * mag + f64::from(f32::MIN_POSITIVE);
    let got = got as f64;
    if (got - exact).abs() <= bound {
        Ok(())
    } else {
        Err(Failure {
            check,
            at,
            found: Found::Bound { got, exact, bound },
        })
    }
}

// ---------------------------------------------------------------------------
// Inputs

/// SplitMix64: small, seeded, deterministic test inputs.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
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

    /// A finite `f16` scale of random sign, magnitude `2^-22 .. 65504`
    /// (subnormal to the largest finite), sometimes exactly zero.
    pub fn scale_bits(&mut self) -> u16 {
        if self.below(50) == 0 {
            return 0;
        }
        let mag = 0x0004 + self.below(0x7BFF - 0x0004) as u16;
        let sign = if self.below(2) == 0 { 0 } else { 0x8000 };
        mag | sign
    }

    /// A "moderate" scale like real weights and activations: an `f16` of
    /// magnitude `1e-4 ..= 1` (log-uniform: uniform bits), either sign.
    pub fn moderate_scale_bits(&mut self) -> u16 {
        const LO: u16 = 0x068E; // f16 of 1e-4
        const ONE: u16 = 0x3C00;
        let mag = LO + self.below((ONE - LO + 1) as u64) as u16;
        let sign = if self.below(2) == 0 { 0 } else { 0x8000 };
        mag | sign
    }

    /// Scales at the edges, as a device meets them in a bad model file:
    /// mostly moderate normals, 10% each zero, subnormal, large (near the
    /// largest finite) and negative.
    pub fn edge_scale_bits(&mut self) -> u16 {
        match self.below(10) {
            0 => 0,
            1 => self.below(0x400) as u16,
            2 => 0x7800 | self.below(0x3FF) as u16,
            3 => 0x8000 | (0x2000 + self.below(0x1000) as u16),
            _ => 0x2000 + self.below(0x1000) as u16,
        }
    }

    /// A random `Q8_0` block: half of the time a scale from
    /// [`Rng::scale_bits`], otherwise a moderate one.
    pub fn block_q8_0(&mut self) -> BlockQ8_0 {
        let d = if self.below(2) == 0 {
            self.scale_bits()
        } else {
            self.moderate_scale_bits()
        };
        let mut qs = [0i8; 32];
        for q in &mut qs {
            *q = self.next_u64() as i8;
        }
        BlockQ8_0 { d, qs }
    }

    /// A random `Q4_0` block, scales as [`Rng::block_q8_0`].
    pub fn block_q4_0(&mut self) -> BlockQ4_0 {
        let d = if self.below(2) == 0 {
            self.scale_bits()
        } else {
            self.moderate_scale_bits()
        };
        let mut qs = [0u8; 16];
        for q in &mut qs {
            *q = self.next_u64() as u8;
        }
        BlockQ4_0 { d, qs }
    }

    /// A `Q8_0` block with an [`Rng::edge_scale_bits`] scale; with
    /// `extremes`, a quarter of the quants are -128 or 127.
    pub fn edge_block_q8_0(&mut self, extremes: bool) -> BlockQ8_0 {
        let mut b = BlockQ8_0 {
            d: self.edge_scale_bits(),
            qs: [0; 32],
        };
        for q in &mut b.qs {
            *q = if extremes && self.below(4) == 0 {
                if self.below(2) == 0 {
                    -128
                } else {
                    127
                }
            } else {
                self.next_u64() as i8
            };
        }
        b
    }

    /// A `Q4_0` block with an [`Rng::edge_scale_bits`] scale.
    pub fn edge_block_q4_0(&mut self) -> BlockQ4_0 {
        let mut b = BlockQ4_0 {
            d: self.edge_scale_bits(),
            qs: [0; 16],
        };
        for q in &mut b.qs {
            *q = self.next_u64() as u8;
        }
        b
    }

    /// Fills `b` with [`Rng::block_q8_0`] blocks.
    pub fn fill_q8_0(&mut self, b: &mut [BlockQ8_0]) {
        b.iter_mut().for_each(|b| *b = self.block_q8_0());
    }

    /// Fills `b` with [`Rng::block_q4_0`] blocks.
    pub fn fill_q4_0(&mut self, b: &mut [BlockQ4_0]) {
        b.iter_mut().for_each(|b| *b = self.block_q4_0());
    }

    /// Fills `v` with floats uniform in `[-scale, scale)`.
    pub fn fill_floats(&mut self, v: &mut [f32], scale: f32) {
        v.iter_mut().for_each(|v| *v = self.signed() * scale);
    }
}

/// Activations as the quantizer makes them: no -128 (SIMD paths may take a
/// faster route then; weights keep their -128s).
pub fn clear_min(x: &mut [BlockQ8_0]) {
    for b in x {
        b.qs.iter_mut()
            .filter(|q| **q == -128)
            .for_each(|q| *q = -127);
    }
}

/// Block counts that exercise the 8-block main loops and every tail length
/// (the host adds 127 and 1056).
pub const BLOCK_COUNTS: &[usize] = &[
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65,
];
const MAX_BLOCKS: usize = 65;

/// Float vector lengths: 0, 1, around the 8-lane register, the 32-value
/// unrolled step, and odd (the host adds 4097 and 10 001).
pub const FLOAT_LENS: &[usize] = &[
    0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255,
];
const MAX_FLOATS: usize = 255;

/// Matrix shapes of [`matvec_quant_bit_exact`]: every pair of these rows and
/// block counts with at most [`MATVEC_MAX_BLOCKS`] blocks (the host runs the
/// larger pairs). Rows past 128 blocks (132: a tail of four; 137: one of
/// one) leave the groups that the AVX-512 product prepares ahead of the rows.
pub const MATVEC_ROWS: &[usize] = &[1, 2, 3, 4, 5, 6, 7, 8, 13];
/// See [`MATVEC_ROWS`].
pub const MATVEC_BLOCKS: &[usize] = &[1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17, 33, 132, 137];
/// See [`MATVEC_ROWS`].
pub const MATVEC_MAX_BLOCKS: usize = 5 * 33;
/// The most blocks of a row in [`MATVEC_BLOCKS`].
const MATVEC_MAX_ROW: usize = 137;
const MATVEC_MAX_ROWS: usize = 16;

const ONE: u16 = 0x3C00; // f16 1.0
const F16_MAX: u16 = 0x7BFF; // 65504
const F16_MIN_SUB: u16 = 0x0001; // 2^-24

fn q8(d: u16, q: impl Fn(usize) -> i8) -> BlockQ8_0 {
    BlockQ8_0 {
        d,
        qs: core::array::from_fn(q),
    }
}

/// `Q4_0` block whose 32 values are `nib(j) - 8`.
fn q4(d: u16, nib: impl Fn(usize) -> u8) -> BlockQ4_0 {
    BlockQ4_0 {
        d,
        qs: core::array::from_fn(|j| nib(j) | (nib(j + 16) << 4)),
    }
}

// ---------------------------------------------------------------------------
// Checks on given inputs (the host also runs them on larger ones)

/// Both quantized dot products of `w` and `x` (all their blocks) have the
/// scalar twin's bits; then again with `x` without -128 (which this changes).
pub fn check_dot_q8_0(k: &Kernels, w: &[BlockQ8_0], x: &mut [BlockQ8_0]) -> Outcome {
    let sc = Kernels::scalar();
    let nb = w.len();
    let n = nb * 32;
    same(
        "vec_dot_q8_0_q8_0 = scalar twin",
        at!(nb),
        k.vec_dot_q8_0_q8_0(n, w, x),
        sc.vec_dot_q8_0_q8_0(n, w, x),
    )?;
    clear_min(x);
    same(
        "vec_dot_q8_0_q8_0 = scalar twin, x without -128",
        at!(nb),
        k.vec_dot_q8_0_q8_0(n, w, x),
        sc.vec_dot_q8_0_q8_0(n, w, x),
    )
}

/// `vec_dot_q4_0_q8_0` of `w` and `x` has the scalar twin's bits.
pub fn check_dot_q4_0(k: &Kernels, w: &[BlockQ4_0], x: &[BlockQ8_0]) -> Outcome {
    let nb = w.len();
    let n = nb * 32;
    same(
        "vec_dot_q4_0_q8_0 = scalar twin",
        at!(nb),
        k.vec_dot_q4_0_q8_0(n, w, x),
        Kernels::scalar().vec_dot_q4_0_q8_0(n, w, x),
    )
}

/// `rows x nb` blocks `w` (`Q8_0`) and `w4` (`Q4_0`) times `x` (`nb` blocks):
/// every row has the scalar twin's bits and those of the path's own
/// `vec_dot` of that row. `rows` is at most 16.
pub fn check_matvec_quant(
    k: &Kernels,
    rows: usize,
    w: &[BlockQ8_0],
    w4: &[BlockQ4_0],
    x: &[BlockQ8_0],
) -> Outcome {
    let sc = Kernels::scalar();
    let nb = x.len();
    let cols = nb * 32;
    ensure(
        rows <= MATVEC_MAX_ROWS && w.len() == rows * nb && w4.len() == rows * nb,
        "check_matvec_quant: shapes",
        at!(rows, nb),
    )?;
    let mut y = [f32::NAN; MATVEC_MAX_ROWS];
    let mut ys = [f32::NAN; MATVEC_MAX_ROWS];
    k.matvec_q8_0(w, rows, cols, x, &mut y[..rows]);
    sc.matvec_q8_0(w, rows, cols, x, &mut ys[..rows]);
    same_all(
        "matvec_q8_0 = scalar twin",
        at!(rows, nb),
        &y[..rows],
        &ys[..rows],
    )?;
    for (r, row) in w.chunks_exact(nb).enumerate() {
        same(
            "matvec_q8_0 row = vec_dot_q8_0_q8_0",
            at!(rows, nb, r),
            y[r],
            k.vec_dot_q8_0_q8_0(cols, row, x),
        )?;
    }
    let mut y = [f32::NAN; MATVEC_MAX_ROWS];
    let mut ys = [f32::NAN; MATVEC_MAX_ROWS];
    k.matvec_q4_0(w4, rows, cols, x, &mut y[..rows]);
    sc.matvec_q4_0(w4, rows, cols, x, &mut ys[..rows]);
    same_all(
        "matvec_q4_0 = scalar twin",
        at!(rows, nb),
        &y[..rows],
        &ys[..rows],
    )?;
    for (r, row) in w4.chunks_exact(nb).enumerate() {
        same(
            "matvec_q4_0 row = vec_dot_q4_0_q8_0",
            at!(rows, nb, r),
            y[r],
            k.vec_dot_q4_0_q8_0(cols, row, x),
        )?;
    }
    Ok(())
}

/// `vec_dot_f32` of `a` and `b` (equal lengths) within the rounding bound
/// of the exact value; and of `|a| + 1/4` with itself (no cancellation, so
/// also close relative to itself: catches dropped tails). Overwrites `b`.
pub fn check_dot_f32(k: &Kernels, a: &[f32], b: &mut [f32]) -> Outcome {
    let n = a.len();
    close("vec_dot_f32 ~ exact", at!(n), k.vec_dot_f32(a, b), n, |i| {
        (a[i] as f64, b[i] as f64)
    })?;
    for (c, &v) in b.iter_mut().zip(a) {
        *c = v.abs() + 0.25;
    }
    let c = &*b;
    let got = k.vec_dot_f32(c, c) as f64;
    let want: f64 = c.iter().map(|&v| v as f64 * v as f64).sum();
    let bound = (n as f64 + 8.0) * U * want;
    if (got - want).abs() <= bound {
        Ok(())
    } else {
        Err(Failure {
            check: "vec_dot_f32 of positive values ~ exact",
            at: at!(n),
            found: Found::Bound {
                got,
                exact: want,
                bound,
            },
        })
    }
}

/// `vec_dot_f16_f32` of `a` and `b` (equal lengths) within the rounding
/// bound of the exact value.
pub fn check_dot_f16(k: &Kernels, a: &[f16], b: &[f32]) -> Outcome {
    let n = a.len();
    close(
        "vec_dot_f16_f32 ~ exact",
        at!(n),
        k.vec_dot_f16_f32(a, b),
        n,
        |i| (a[i].to_f64(), b[i] as f64),
    )
}

/// Quantizes `w` (to `Q8_0` into `wq` and `Q4_0` into `w4`, the reference
/// quantizers) and `x` (into `xq`, the path's quantizer), takes the
/// quantized dot products and compares them with the exact (`f64`) dot
/// product of the floats. `w` and `x` hold `32 nb` values, the block
/// buffers `nb` blocks. The bound is derived per element from the block
/// scales: `|w x - w' x'| <= |w| e_x + |x| e_w + e_w e_x`, where for `Q8_0`
/// `e <= amax (1/254 + 2^-11) + tiny` (rounding to the step `d = amax/127`
/// plus the `f16` rounding of `d`, up to 127 steps) and for `Q4_0`
/// `e <= amax (1/8 + 2^-11) + tiny` (truncation of `x/d + 8.5` with the
/// clamp at 15 can miss by one full step `d = amax/8`), plus `f32`
/// accumulation error.
pub fn check_quantized_dot(
    k: &Kernels,
    w: &[f32],
    x: &[f32],
    wq: &mut [BlockQ8_0],
    w4: &mut [BlockQ4_0],
    xq: &mut [BlockQ8_0],
) -> Outcome {
    let nb = wq.len();
    let n = nb * 32;
    ensure(
        w.len() == n && x.len() == n && w4.len() == nb && xq.len() == nb,
        "check_quantized_dot: shapes",
        at!(nb),
    )?;
    quantize_row_q8_0(w, wq);
    quantize_row_q4_0(w, w4);
    k.quantize_q8_0(x, xq);
    let exact: f64 = w.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum();
    let amax = |v: &[f32]| v.iter().fold(0f64, |m, &t| m.max(t.abs() as f64));
    let tiny = 1e-7;
    let bound = |per_step: f64| -> f64 {
        let mut b = 0.0;
        let mut mag = 0.0;
        for (ws, xs) in w.chunks_exact(32).zip(x.chunks_exact(32)) {
            let ew = amax(ws) * (per_step + 1.0 / 2048.0) + tiny;
            let ex = amax(xs) * (1.0 / 254.0 + 1.0 / 2048.0) + tiny;
            for (&a, &c) in ws.iter().zip(xs) {
                let (a, c) = (a.abs() as f64, c.abs() as f64);
                b += a * ex + c * ew + ew * ex;
                mag += (a + ew) * (c + ex);
            }
        }
        b + (nb as f64 + 8.0) * 2.0 * U * mag
    };
    let got8 = k.vec_dot_q8_0_q8_0(n, wq, xq) as f64;
    let bound8 = bound(1.0 / 254.0);
    if (got8 - exact).abs() > bound8 {
        return Err(Failure {
            check: "vec_dot_q8_0_q8_0 of quantized floats ~ exact",
            at: at!(nb),
            found: Found::Bound {
                got: got8,
                exact,
                bound: bound8,
            },
        });
    }
    let got4 = k.vec_dot_q4_0_q8_0(n, w4, xq) as f64;
    let bound4 = bound(1.0 / 8.0);
    if (got4 - exact).abs() > bound4 {
        return Err(Failure {
            check: "vec_dot_q4_0_q8_0 of quantized floats ~ exact",
            at: at!(nb),
            found: Found::Bound {
                got: got4,
                exact,
                bound: bound4,
            },
        });
    }
    Ok(())
}

/// An elementwise operation of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elementwise {
    /// [`Kernels::exp_inplace`], twin [`scalar::exp_f32`].
    Exp,
    /// [`Kernels::tanh_inplace`], twin [`scalar::tanh_f32`].
    Tanh,
    /// [`Kernels::gelu_tanh_inplace`], twin [`scalar::gelu_tanh_f32`].
    GeluTanh,
}

impl Elementwise {
    fn check_name(self) -> &'static str {
        match self {
            Elementwise::Exp => "exp_inplace = scalar twin",
            Elementwise::Tanh => "tanh_inplace = scalar twin",
            Elementwise::GeluTanh => "gelu_tanh_inplace = scalar twin",
        }
    }

    fn apply(self, k: &Kernels, x: &mut [f32]) {
        match self {
            Elementwise::Exp => k.exp_inplace(x),
            Elementwise::Tanh => k.tanh_inplace(x),
            Elementwise::GeluTanh => k.gelu_tanh_inplace(x),
        }
    }

    fn twin(self, x: f32) -> f32 {
        match self {
            Elementwise::Exp => scalar::exp_f32(x),
            Elementwise::Tanh => scalar::tanh_f32(x),
            Elementwise::GeluTanh => scalar::gelu_tanh_f32(x),
        }
    }
}

/// `op` of the path on `x` (through `got`, a buffer of the same length)
/// against the scalar function, element by element.
pub fn check_elementwise(
    k: &Kernels,
    op: Elementwise,
    x: &[f32],
    got: &mut [f32],
    at: At,
) -> Outcome {
    let len = x.len();
    ensure(got.len() == len, "check_elementwise: shapes", at)?;
    got.copy_from_slice(x);
    op.apply(k, got);
    for (index, (&x, &got)) in x.iter().zip(got.iter()).enumerate() {
        let want = op.twin(x);
        if got.to_bits() != want.to_bits() {
            return Err(Failure {
                check: op.check_name(),
                at,
                found: Found::Element {
                    index: index as u32,
                    len: len as u32,
                    x,
                    got,
                    want,
                },
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The cases

/// Quantized `Q8_0` dot products have the scalar twin's bits on random
/// blocks of every count of [`BLOCK_COUNTS`]; a single -128 in the last
/// activation block against -128 weights gives the exact integer sum.
pub fn dot_q8_0_bit_exact(k: &Kernels) -> Outcome {
    let mut rng = Rng::new(0x5EED_0001);
    let mut w = [BlockQ8_0::default(); MAX_BLOCKS];
    let mut x = [BlockQ8_0::default(); MAX_BLOCKS];
    for &nb in BLOCK_COUNTS {
        for _ in 0..3 {
            rng.fill_q8_0(&mut w[..nb]);
            rng.fill_q8_0(&mut x[..nb]);
            check_dot_q8_0(k, &w[..nb], &mut x[..nb])?;
        }
    }
    for nb in [1usize, 8, 9, 40] {
        w[..nb].fill(q8(ONE, |_| -128));
        x[..nb].fill(q8(ONE, |_| -127));
        x[nb - 1].qs[31] = -128;
        let want = (nb * 32 * 128 * 127 + 128) as f32;
        same(
            "vec_dot_q8_0_q8_0 of -128 weights, one -128 activation = exact sum",
            at!(nb),
            k.vec_dot_q8_0_q8_0(nb * 32, &w[..nb], &x[..nb]),
            want,
        )?;
    }
    Ok(())
}

/// Quantized `Q4_0` dot products have the scalar twin's bits on random
/// blocks of every count of [`BLOCK_COUNTS`].
pub fn dot_q4_0_bit_exact(k: &Kernels) -> Outcome {
    let mut rng = Rng::new(0x5EED_0002);
    let mut w = [BlockQ4_0::default(); MAX_BLOCKS];
    let mut x = [BlockQ8_0::default(); MAX_BLOCKS];
    for &nb in BLOCK_COUNTS {
        for _ in 0..3 {
            rng.fill_q4_0(&mut w[..nb]);
            rng.fill_q8_0(&mut x[..nb]);
            check_dot_q4_0(k, &w[..nb], &x[..nb])?;
        }
    }
    Ok(())
}

/// Extreme quants and scales: exact values where the sum is exactly
/// representable, the scalar twin's bits (and finite) with the largest and
/// smallest scales.
pub fn dot_extremes(k: &Kernels) -> Outcome {
    const MAX: usize = 32;
    let mut a = [BlockQ8_0::default(); MAX];
    let mut b = [BlockQ8_0::default(); MAX];
    let mut a4 = [BlockQ4_0::default(); MAX];
    let sc = Kernels::scalar();
    for nb in [1usize, 2, 7, 8, 9, 16, 31, 32] {
        let n = nb * 32;
        let (a, b, a4) = (&mut a[..nb], &mut b[..nb], &mut a4[..nb]);
        // All-zero blocks.
        a.fill(BlockQ8_0::default());
        a4.fill(BlockQ4_0::default());
        same("q8_0 zeros", at!(nb), k.vec_dot_q8_0_q8_0(n, a, a), 0.0)?;
        same("q4_0 zeros", at!(nb), k.vec_dot_q4_0_q8_0(n, a4, a), 0.0)?;

        // -128 x -128 with d = 1: 32 * 16384 = 524288 per block, exact.
        b.fill(q8(ONE, |_| -128));
        let want = 524_288.0 * nb as f32;
        same(
            "q8_0 -128 x -128",
            at!(nb),
            k.vec_dot_q8_0_q8_0(n, b, b),
            want,
        )?;
        // 127 x -128: 32 * -16256 = -520192 per block.
        a.fill(q8(ONE, |_| 127));
        let want = -520_192.0 * nb as f32;
        same(
            "q8_0 127 x -128",
            at!(nb),
            k.vec_dot_q8_0_q8_0(n, a, b),
            want,
        )?;
        // Q4_0 nibble 15 (7) x 127 = 889, 32 per block.
        a4.fill(q4(ONE, |_| 15));
        let want = 28_448.0 * nb as f32;
        same("q4_0 7 x 127", at!(nb), k.vec_dot_q4_0_q8_0(n, a4, a), want)?;
        // Alternating -128/127 against -128: 16 * 16384 - 16 * 16256 = 2048.
        a.fill(q8(ONE, |j| if j % 2 == 0 { -128 } else { 127 }));
        let want = 2048.0 * nb as f32;
        same(
            "q8_0 alternating x -128",
            at!(nb),
            k.vec_dot_q8_0_q8_0(n, a, b),
            want,
        )?;
        // Q4_0 nibble 0 (-8) x -128 = 1024, 32 per block.
        a4.fill(q4(ONE, |_| 0));
        let want = 32_768.0 * nb as f32;
        same(
            "q4_0 -8 x -128",
            at!(nb),
            k.vec_dot_q4_0_q8_0(n, a4, b),
            want,
        )?;
        // Nibble j % 16 against -128: sum over j of (j % 16 - 8) is
        // 2 * (120 - 128) = -16, times -128 = 2048 per block.
        a4.fill(q4(ONE, |j| (j % 16) as u8));
        let want = 2048.0 * nb as f32;
        same(
            "q4_0 ramp x -128",
            at!(nb),
            k.vec_dot_q4_0_q8_0(n, a4, b),
            want,
        )?;

        // Largest and smallest scales, both signs, with extreme quants:
        // the scalar twin's bits, and finite.
        for (dw, dx) in [
            (F16_MAX, F16_MAX),
            (F16_MAX | 0x8000, F16_MAX),
            (F16_MIN_SUB, F16_MIN_SUB),
            (F16_MAX, F16_MIN_SUB | 0x8000),
        ] {
            let mut rng = Rng::new(nb as u64 * 7 + dw as u64);
            let mut ext = || match rng.below(3) {
                0 => -128i8,
                1 => 127,
                _ => -127,
            };
            for blk in a.iter_mut() {
                blk.d = dw;
                blk.qs.iter_mut().for_each(|q| *q = ext());
            }
            for blk in b.iter_mut() {
                blk.d = dx;
                blk.qs.iter_mut().for_each(|q| *q = ext());
            }
            let got = k.vec_dot_q8_0_q8_0(n, a, b);
            ensure(
                got.is_finite(),
                "q8_0 extreme scales: finite",
                at!(nb, dw, dx),
            )?;
            let want = sc.vec_dot_q8_0_q8_0(n, a, b);
            same(
                "q8_0 extreme scales = scalar twin",
                at!(nb, dw, dx),
                got,
                want,
            )?;
            for (i, blk) in a4.iter_mut().enumerate() {
                *blk = q4(dw, |j| if (i + j) % 3 == 0 { 0 } else { 15 });
            }
            let got = k.vec_dot_q4_0_q8_0(n, a4, b);
            ensure(
                got.is_finite(),
                "q4_0 extreme scales: finite",
                at!(nb, dw, dx),
            )?;
            let want = sc.vec_dot_q4_0_q8_0(n, a4, b);
            same(
                "q4_0 extreme scales = scalar twin",
                at!(nb, dw, dx),
                got,
                want,
            )?;
        }
    }
    Ok(())
}

/// With d = 1 every partial sum is an integer below 2^24, so the result is
/// exactly the integer dot product, computed here in `i64`.
pub fn dot_is_exact_integer_sum(k: &Kernels) -> Outcome {
    const MAX: usize = 32;
    let mut rng = Rng::new(0x5EED_0003);
    let mut w = [BlockQ8_0::default(); MAX];
    let mut x = [BlockQ8_0::default(); MAX];
    let mut w4 = [BlockQ4_0::default(); MAX];
    for nb in [1usize, 3, 8, 13, 32] {
        let (w, x, w4) = (&mut w[..nb], &mut x[..nb], &mut w4[..nb]);
        rng.fill_q8_0(w);
        rng.fill_q8_0(x);
        rng.fill_q4_0(w4);
        for b in w.iter_mut().chain(x.iter_mut()) {
            b.d = ONE;
        }
        for b in w4.iter_mut() {
            b.d = ONE;
        }
        let want: i64 = w
            .iter()
            .zip(x.iter())
            .flat_map(|(a, b)| a.qs.iter().zip(&b.qs))
            .map(|(&p, &q)| p as i64 * q as i64)
            .sum();
        let got = k.vec_dot_q8_0_q8_0(nb * 32, w, x);
        same("q8_0 with d = 1 = integer sum", at!(nb), got, want as f32)?;
        let want4: i64 = w4
            .iter()
            .zip(x.iter())
            .flat_map(|(a, b)| (0..32).map(move |j| (a.quant(j) as i64 - 8) * b.qs[j] as i64))
            .sum();
        let got = k.vec_dot_q4_0_q8_0(nb * 32, w4, x);
        same("q4_0 with d = 1 = integer sum", at!(nb), got, want4 as f32)?;
    }
    Ok(())
}

/// The dot products use `n / 32` blocks of the common prefix.
pub fn dot_uses_n_and_common_prefix(k: &Kernels) -> Outcome {
    let sc = Kernels::scalar();
    let mut rng = Rng::new(0x5EED_0004);
    let mut w = [BlockQ8_0::default(); 20];
    let mut x = [BlockQ8_0::default(); 20];
    let mut w4 = [BlockQ4_0::default(); 20];
    rng.fill_q8_0(&mut w);
    rng.fill_q8_0(&mut x);
    rng.fill_q4_0(&mut w4);
    for n in [0usize, 31, 32, 33, 64, 300, 640, 10_000] {
        let nb = (n / 32).min(20);
        same(
            "vec_dot_q8_0_q8_0 uses n / 32 blocks",
            at!(n),
            k.vec_dot_q8_0_q8_0(n, &w, &x),
            sc.vec_dot_q8_0_q8_0(nb * 32, &w[..nb], &x[..nb]),
        )?;
        same(
            "vec_dot_q4_0_q8_0 uses n / 32 blocks",
            at!(n),
            k.vec_dot_q4_0_q8_0(n, &w4, &x),
            sc.vec_dot_q4_0_q8_0(nb * 32, &w4[..nb], &x[..nb]),
        )?;
    }
    // Shorter x: its length wins.
    same(
        "vec_dot_q8_0_q8_0 with a shorter x",
        At::default(),
        k.vec_dot_q8_0_q8_0(640, &w, &x[..5]),
        sc.vec_dot_q8_0_q8_0(160, &w[..5], &x[..5]),
    )
}

/// Dot products on blocks with edge scales (zero, subnormal, near the
/// largest, negative) and, every third round, a quarter of the quants at
/// -128 or 127: the scalar twin's bits.
pub fn dot_edge_scales_bit_exact(k: &Kernels) -> Outcome {
    const MAX: usize = 40;
    let sc = Kernels::scalar();
    let mut rng = Rng::new(0x1A77_E5EED);
    let mut w = [BlockQ8_0::default(); MAX];
    let mut w4 = [BlockQ4_0::default(); MAX];
    let mut x = [BlockQ8_0::default(); MAX];
    for nb in [1usize, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40] {
        for round in 0..3 {
            let extremes = round == 2;
            w.iter_mut()
                .for_each(|b| *b = rng.edge_block_q8_0(extremes));
            w4.iter_mut().for_each(|b| *b = rng.edge_block_q4_0());
            x.iter_mut()
                .for_each(|b| *b = rng.edge_block_q8_0(extremes));
            let n = nb * 32;
            same(
                "vec_dot_q8_0_q8_0 with edge scales = scalar twin",
                at!(nb, round),
                k.vec_dot_q8_0_q8_0(n, &w, &x),
                sc.vec_dot_q8_0_q8_0(n, &w, &x),
            )?;
            same(
                "vec_dot_q4_0_q8_0 with edge scales = scalar twin",
                at!(nb, round),
                k.vec_dot_q4_0_q8_0(n, &w4, &x),
                sc.vec_dot_q4_0_q8_0(n, &w4, &x),
            )?;
        }
    }
    Ok(())
}

/// Quantized matrix-vector products: every row has the scalar twin's bits
/// and the path's own `vec_dot` bits, over the shapes of [`MATVEC_ROWS`]
/// and [`MATVEC_BLOCKS`] up to [`MATVEC_MAX_BLOCKS`] blocks, activations
/// with and without -128; products of -0.0 give +0.0.
pub fn matvec_quant_bit_exact(k: &Kernels) -> Outcome {
    let mut rng = Rng::new(0x5EED_0005);
    let mut w = [BlockQ8_0::default(); MATVEC_MAX_BLOCKS];
    let mut w4 = [BlockQ4_0::default(); MATVEC_MAX_BLOCKS];
    let mut x = [BlockQ8_0::default(); MATVEC_MAX_ROW];
    for &rows in MATVEC_ROWS {
        for &nb in MATVEC_BLOCKS {
            if rows * nb > MATVEC_MAX_BLOCKS {
                continue;
            }
            let (w, w4, x) = (&mut w[..rows * nb], &mut w4[..rows * nb], &mut x[..nb]);
            rng.fill_q8_0(w);
            rng.fill_q4_0(w4);
            rng.fill_q8_0(x);
            // Every other shape: activations without -128.
            if (rows + nb) % 2 == 0 {
                clear_min(x);
            }
            check_matvec_quant(k, rows, w, w4, x)?;
        }
    }
    // Products of -0.0 (zero quants, negative scales): the accumulators
    // start at +0.0, so every row is +0.0, whatever the row length.
    let rows = 5;
    for nb in 1usize..=9 {
        let (w, w4, x) = (&mut w[..rows * nb], &mut w4[..rows * nb], &mut x[..nb]);
        w.fill(BlockQ8_0 {
            d: 0xBC00,
            qs: [0; 32],
        });
        w4.fill(BlockQ4_0 {
            d: 0xBC00,
            qs: [0x88; 16],
        });
        x.fill(BlockQ8_0 {
            d: ONE,
            qs: [5; 32],
        });
        let zeros = [0.0f32; 5];
        let mut y = [f32::NAN; 5];
        k.matvec_q8_0(w, rows, nb * 32, x, &mut y);
        same_all("matvec_q8_0 of -0.0 products = +0.0", at!(nb), &y, &zeros)?;
        let mut y = [f32::NAN; 5];
        k.matvec_q4_0(w4, rows, nb * 32, x, &mut y);
        same_all("matvec_q4_0 of -0.0 products = +0.0", at!(nb), &y, &zeros)?;
        let got = k.vec_dot_q8_0_q8_0(nb * 32, &w[..nb], x);
        same(
            "vec_dot_q8_0_q8_0 of -0.0 products = +0.0",
            at!(nb),
            got,
            0.0,
        )?;
        let got = k.vec_dot_q4_0_q8_0(nb * 32, &w4[..nb], x);
        same(
            "vec_dot_q4_0_q8_0 of -0.0 products = +0.0",
            at!(nb),
            got,
            0.0,
        )?;
    }
    Ok(())
}

/// Quantized matrix-vector products with rows `stride` blocks apart of
/// which the first `used` are multiplied (x shorter than a row), even and
/// odd strides, the matrix starting one block in (the other alignment) or
/// not, 1, 2 and 5 rows (odd counts leave a last row without a partner),
/// edge scales: the scalar twin's bits.
pub fn matvec_strided_bit_exact(k: &Kernels) -> Outcome {
    const MAX: usize = 40;
    const ROWS: usize = 5;
    let sc = Kernels::scalar();
    let mut rng = Rng::new(0x1A77_E5EEE);
    let mut w = [BlockQ8_0::default(); MAX * ROWS];
    let mut w4 = [BlockQ4_0::default(); MAX * ROWS];
    let mut x = [BlockQ8_0::default(); MAX];
    for nb in [1usize, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40] {
        for round in 0..3 {
            let extremes = round == 2;
            w.iter_mut()
                .for_each(|b| *b = rng.edge_block_q8_0(extremes));
            w4.iter_mut().for_each(|b| *b = rng.edge_block_q4_0());
            x.iter_mut()
                .for_each(|b| *b = rng.edge_block_q8_0(extremes));
            for stride in [MAX, MAX - 1] {
                let used = nb.min(stride);
                let cols = stride * 32;
                for offset in [0usize, 1] {
                    for rows in [1usize, 2, ROWS] {
                        let at = at!(used, stride, offset, rows, round);
                        let (mut y, mut ys) = ([0f32; ROWS], [0f32; ROWS]);
                        k.matvec_q8_0(&w[offset..], rows, cols, &x[..used], &mut y);
                        sc.matvec_q8_0(&w[offset..], rows, cols, &x[..used], &mut ys);
                        same_all("matvec_q8_0 strided = scalar twin", at, &y, &ys)?;
                        let (mut y, mut ys) = ([0f32; ROWS], [0f32; ROWS]);
                        k.matvec_q4_0(&w4[offset..], rows, cols, &x[..used], &mut y);
                        sc.matvec_q4_0(&w4[offset..], rows, cols, &x[..used], &mut ys);
                        same_all("matvec_q4_0 strided = scalar twin", at, &y, &ys)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The length rules of the matrix-vector products: `y` longer than the
/// rows, fewer weight rows than asked for, zero columns, `x` shorter than a
/// row (through every row grouping and block tail).
pub fn matvec_length_rules(k: &Kernels) -> Outcome {
    let sc = Kernels::scalar();
    let mut rng = Rng::new(0x5EED_0006);
    let (rows, nb) = (5usize, 3usize);
    let mut w = [BlockQ8_0::default(); 11 * 20];
    let mut w4 = [BlockQ4_0::default(); 11 * 20];
    let mut x = [BlockQ8_0::default(); 12];
    rng.fill_q8_0(&mut w[..rows * nb]);
    rng.fill_q8_0(&mut x[..nb]);
    let (w3, x3) = (&w[..rows * nb], &x[..nb]);
    // y longer than rows: the tail is left alone.
    let mut y = [7.0f32; 7];
    k.matvec_q8_0(w3, rows, nb * 32, x3, &mut y);
    same_all(
        "matvec_q8_0 leaves y past rows alone",
        at!(rows),
        &y[rows..],
        &[7.0; 2],
    )?;
    // Fewer weight rows than asked for: only whole rows are computed.
    let mut y = [7.0f32; 5];
    k.matvec_q8_0(&w3[..2 * nb + 1], rows, nb * 32, x3, &mut y);
    let want = k.vec_dot_q8_0_q8_0(nb * 32, &w3[nb..2 * nb], x3);
    same(
        "matvec_q8_0 with 2 whole rows: row 1",
        at!(rows),
        y[1],
        want,
    )?;
    same_all(
        "matvec_q8_0 with 2 whole rows: the rest alone",
        at!(rows),
        &y[2..],
        &[7.0; 3],
    )?;
    // Zero columns: zeros.
    let mut y = [7.0f32; 5];
    k.matvec_q8_0(w3, rows, 0, x3, &mut y);
    ensure(
        y.iter().all(|v| *v == 0.0),
        "matvec_q8_0 of 0 columns = 0",
        at!(rows),
    )?;
    // Short x: a prefix of every row.
    let mut y = [7.0f32; 5];
    k.matvec_q8_0(w3, rows, nb * 32, &x3[..2], &mut y);
    for (r, row) in w3.chunks_exact(nb).enumerate() {
        let want = sc.vec_dot_q8_0_q8_0(64, &row[..2], &x3[..2]);
        same("matvec_q8_0 with a short x", at!(r), y[r], want)?;
    }
    // Short x on wider rows, through every row grouping and block tail.
    for (rows, nb_w, nb_x) in [
        (9usize, 13usize, 12usize),
        (11, 20, 9),
        (9, 9, 4),
        (6, 6, 5),
    ] {
        let (w, w4, x) = (
            &mut w[..rows * nb_w],
            &mut w4[..rows * nb_w],
            &mut x[..nb_x],
        );
        rng.fill_q8_0(w);
        rng.fill_q4_0(w4);
        rng.fill_q8_0(x);
        let at = at!(rows, nb_w, nb_x);
        let (mut y, mut ys) = ([7.0f32; 11], [7.0f32; 11]);
        k.matvec_q8_0(w, rows, nb_w * 32, x, &mut y[..rows]);
        sc.matvec_q8_0(w, rows, nb_w * 32, x, &mut ys[..rows]);
        same_all("matvec_q8_0 with a short x = scalar twin", at, &y, &ys)?;
        k.matvec_q4_0(w4, rows, nb_w * 32, x, &mut y[..rows]);
        sc.matvec_q4_0(w4, rows, nb_w * 32, x, &mut ys[..rows]);
        same_all("matvec_q4_0 with a short x = scalar twin", at, &y, &ys)?;
    }
    // f32 with a short y.
    let mut wf = [0f32; 50];
    let mut xf = [0f32; 10];
    rng.fill_floats(&mut wf, 1.0);
    rng.fill_floats(&mut xf, 1.0);
    let mut y = [7.0f32; 3];
    k.matvec_f32(&wf, rows, 10, &xf, &mut y);
    ensure(
        y.iter().all(|v| *v != 7.0),
        "matvec_f32 with a short y writes it all",
        At::default(),
    )
}

/// Activations as the model makes them (floats quantized by the path):
/// the reference quantizer's blocks, and dense products with the scalar
/// twin's bits.
pub fn matvec_model_activations(k: &Kernels) -> Outcome {
    const NB: usize = 16;
    const ROWS: usize = 5;
    let sc = Kernels::scalar();
    let mut xf = [0f32; 32 * NB];
    for (i, v) in xf.iter_mut().enumerate() {
        *v = ((i * 7919 % 2003) as f32 - 1001.0) / 97.0;
    }
    let mut xq = [BlockQ8_0::default(); NB];
    let mut want = [BlockQ8_0::default(); NB];
    k.quantize_q8_0(&xf, &mut xq);
    quantize_row_q8_0(&xf, &mut want);
    same_blocks(
        "quantize_q8_0 of model activations",
        At::default(),
        &xq,
        &want,
    )?;
    let mut rng = Rng::new(0x1A77_E5EEF);
    let mut w = [BlockQ8_0::default(); ROWS * NB];
    let mut w4 = [BlockQ4_0::default(); ROWS * NB];
    w.iter_mut().for_each(|b| *b = rng.edge_block_q8_0(false));
    w4.iter_mut().for_each(|b| *b = rng.edge_block_q4_0());
    let (mut y, mut ys) = ([0f32; ROWS], [0f32; ROWS]);
    k.matvec_q8_0(&w, ROWS, NB * 32, &xq, &mut y);
    sc.matvec_q8_0(&w, ROWS, NB * 32, &xq, &mut ys);
    same_all("matvec_q8_0 dense = scalar twin", At::default(), &y, &ys)?;
    k.matvec_q4_0(&w4, ROWS, NB * 32, &xq, &mut y);
    sc.matvec_q4_0(&w4, ROWS, NB * 32, &xq, &mut ys);
    same_all("matvec_q4_0 dense = scalar twin", At::default(), &y, &ys)
}

fn same_blocks(check: &'static str, at: At, got: &[BlockQ8_0], want: &[BlockQ8_0]) -> Outcome {
    ensure(got.len() == want.len(), check, at)?;
    match got.iter().zip(want).position(|(g, w)| g != w) {
        None => Ok(()),
        Some(index) => {
            let (g, w) = (got[index], want[index]);
            let j = (0..32).find(|&j| g.qs[j] != w.qs[j]).unwrap_or(32);
            let q = |b: BlockQ8_0| b.qs.get(j).copied().unwrap_or(0);
            Err(Failure {
                check,
                at,
                found: Found::Block {
                    index: index as u32,
                    got_d: g.d,
                    want_d: w.d,
                    j: j as u8,
                    got_q: q(g),
                    want_q: q(w),
                },
            })
        }
    }
}

/// The path's activation quantizer writes the reference quantizer's blocks
/// (and nothing past them), for lengths with and without a partial block,
/// scales from 1e-30 to 1e9, and hand-made blocks: exact halves, zeros, a
/// single value, tiny (the scale's inverse overflows), huge, signed zeros.
pub fn quantize_q8_0_bit_exact(k: &Kernels) -> Outcome {
    const MAX: usize = 32 * 33;
    const POISON: BlockQ8_0 = BlockQ8_0 {
        d: 0xFFFF,
        qs: [99; 32],
    };
    let mut rng = Rng::new(0x5EED_0007);
    let scales = [1e-30f32, 1e-6, 1e-3, 0.02, 1.0, 37.0, 1e4, 1e9];
    let mut x = [0f32; MAX];
    let mut got = [POISON; MAX / 32 + 1];
    let mut want = [POISON; MAX / 32 + 1];
    for len in [0usize, 1, 31, 32, 33, 64, 65, 96, MAX] {
        for &scale in &scales {
            let x = &mut x[..len];
            rng.fill_floats(x, scale);
            let nb = len / 32;
            got.fill(POISON);
            want.fill(POISON);
            k.quantize_q8_0(x, &mut got[..nb + 1]);
            quantize_row_q8_0(x, &mut want[..nb + 1]);
            same_blocks("quantize_q8_0 = reference", at!(len, scale), &got, &want)?;
            ensure(
                got[nb] == POISON,
                "quantize_q8_0 wrote past the end",
                at!(len, scale),
            )?;
        }
    }
    let hand: [fn(usize) -> f32; 7] = [
        |j| if j == 0 { 127.0 } else { j as f32 - 15.5 },
        |_| 0.0,
        |j| if j == 9 { -3.0e-3 } else { 0.0 },
        |j| (j as f32 - 16.0) * 1e-39,
        |j| (j as f32 - 16.0) * 1e-44,
        |j| (j as f32 - 16.0) * 1e36,
        |j| if j % 2 == 0 { -0.0 } else { 0.0 },
    ];
    for (case, f) in hand.iter().enumerate() {
        let x: [f32; 32] = core::array::from_fn(f);
        let (mut got, mut want) = ([BlockQ8_0::default()], [BlockQ8_0::default()]);
        k.quantize_q8_0(&x, &mut got);
        quantize_row_q8_0(&x, &mut want);
        same_blocks(
            "quantize_q8_0 = reference, hand-made block",
            at!(case),
            &got,
            &want,
        )?;
    }
    Ok(())
}

/// `vec_dot_f32` within the rounding bound of an `f64` reference, for every
/// length of [`FLOAT_LENS`]; the common prefix of unequal lengths.
pub fn dot_f32_close(k: &Kernels) -> Outcome {
    let mut rng = Rng::new(0x5EED_0008);
    let mut a = [0f32; MAX_FLOATS];
    let mut b = [0f32; MAX_FLOATS];
    for &n in FLOAT_LENS {
        rng.fill_floats(&mut a[..n], 3.0);
        rng.fill_floats(&mut b[..n], 0.5);
        check_dot_f32(k, &a[..n], &mut b[..n])?;
    }
    let got = k.vec_dot_f32(&[2.0, 3.0], &[4.0]);
    same("vec_dot_f32 of the common prefix", At::default(), got, 8.0)
}

/// `vec_dot_f16_f32` within the rounding bound of an `f64` reference, for
/// every length of [`FLOAT_LENS`]; `f16` extremes widen exactly.
pub fn dot_f16_close(k: &Kernels) -> Outcome {
    let mut rng = Rng::new(0x5EED_0009);
    let mut a = [f16::ZERO; MAX_FLOATS];
    let mut b = [0f32; MAX_FLOATS];
    for &n in FLOAT_LENS {
        a[..n]
            .iter_mut()
            .for_each(|v| *v = f16::from_f32(rng.signed() * 4.0));
        rng.fill_floats(&mut b[..n], 0.5);
        check_dot_f16(k, &a[..n], &b[..n])?;
    }
    let a = [f16::MAX, f16::MIN_POSITIVE_SUBNORMAL, -f16::MAX];
    let b = [1.0f32, (1u32 << 24) as f32, 0.5];
    let want = 65504.0 + 1.0 - 32752.0;
    same(
        "vec_dot_f16_f32 of f16 extremes",
        At::default(),
        k.vec_dot_f16_f32(&a, &b),
        want,
    )
}

/// The `f16` products of the paths that keep the scalar order (scalar and
/// the Cortex-M DSP path, whose FPU widens the weights) have the scalar
/// twin's bits: rows of every length from 0 to 40 and longer, starting on a
/// word or a half-word, with subnormal, zero, negative and large weights.
/// The SIMD paths reassociate the sums (`matvec_float_close` bounds them).
pub fn f16_products_in_scalar_order(k: &Kernels) -> Outcome {
    if !matches!(k.path(), KernelPath::Scalar | KernelPath::ArmDsp) {
        return Ok(());
    }
    const N: usize = 530;
    const ROWS: usize = 4;
    let mut rng = Rng::new(0x5EED_F160);
    let mut w = [f16::ZERO; ROWS * N + 1];
    let mut x = [0f32; N];
    for (i, h) in w.iter_mut().enumerate() {
        *h = match i % 11 {
            0 => f16::from_bits(1 + (rng.below(0x3FF) as u16)), // subnormal
            1 => f16::from_bits(0x8000),                        // -0
            2 => f16::from_f32(rng.signed() * 60000.0),
            _ => f16::from_f32(rng.signed()),
        };
    }
    rng.fill_floats(&mut x, 3.0);
    let sc = Kernels::scalar();
    for start in [0usize, 1] {
        for n in (0..=40).chain([63, 64, 65, 257, N]) {
            let a = &w[start..start + n];
            let at = at!(start, n);
            same(
                "vec_dot_f16_f32 = scalar twin",
                at,
                k.vec_dot_f16_f32(a, &x[..n]),
                sc.vec_dot_f16_f32(a, &x[..n]),
            )?;
            // Rows of stride `n`: odd strides alternate the alignment.
            let (mut y, mut ys) = ([f32::NAN; ROWS], [f32::NAN; ROWS]);
            let m = &w[start..start + ROWS * n];
            k.matvec_f16(m, ROWS, n, &x[..n], &mut y);
            sc.matvec_f16(m, ROWS, n, &x[..n], &mut ys);
            same_all("matvec_f16 = scalar twin", at, &y, &ys)?;
        }
    }
    Ok(())
}

/// `f32` and `f16` matrix-vector products: every row within the rounding
/// bound of an `f64` reference.
pub fn matvec_float_close(k: &Kernels) -> Outcome {
    const ROWS: usize = 8;
    const COLS: usize = 100;
    let mut rng = Rng::new(0x5EED_000A);
    let mut w = [0f32; ROWS * COLS];
    let mut wh = [f16::ZERO; ROWS * COLS];
    let mut x = [0f32; COLS];
    for rows in [1usize, 3, ROWS] {
        for cols in [1usize, 7, 8, 33, COLS] {
            let (w, wh, x) = (
                &mut w[..rows * cols],
                &mut wh[..rows * cols],
                &mut x[..cols],
            );
            rng.fill_floats(w, 1.0);
            for (h, &v) in wh.iter_mut().zip(w.iter()) {
                *h = f16::from_f32(v);
            }
            rng.fill_floats(x, 2.0);
            let (mut y, mut yh) = ([f32::NAN; ROWS], [f32::NAN; ROWS]);
            k.matvec_f32(w, rows, cols, x, &mut y[..rows]);
            k.matvec_f16(wh, rows, cols, x, &mut yh[..rows]);
            for r in 0..rows {
                let (row, rowh) = (&w[r * cols..][..cols], &wh[r * cols..][..cols]);
                let at = at!(rows, cols, r);
                close("matvec_f32 ~ exact", at, y[r], cols, |i| {
                    (row[i] as f64, x[i] as f64)
                })?;
                close("matvec_f16 ~ exact", at, yh[r], cols, |i| {
                    (rowh[i].to_f64(), x[i] as f64)
                })?;
            }
        }
    }
    Ok(())
}

/// Quantized dot products of quantized floats (the path quantizing the
/// activations) stay within the quantization bound of the exact dot
/// product of the floats ([`check_quantized_dot`]).
pub fn quantized_dot_tracks_f32(k: &Kernels) -> Outcome {
    const MAX: usize = 33;
    let mut rng = Rng::new(0x5EED_000B);
    let mut w = [0f32; 32 * MAX];
    let mut x = [0f32; 32 * MAX];
    let mut wq = [BlockQ8_0::default(); MAX];
    let mut w4 = [BlockQ4_0::default(); MAX];
    let mut xq = [BlockQ8_0::default(); MAX];
    for nb in [1usize, 2, 8, 9, 33] {
        for scale in [0.01f32, 1.0, 50.0] {
            let n = nb * 32;
            rng.fill_floats(&mut w[..n], scale);
            rng.fill_floats(&mut x[..n], 1.0);
            let (wq, w4, xq) = (&mut wq[..nb], &mut w4[..nb], &mut xq[..nb]);
            check_quantized_dot(k, &w[..n], &x[..n], wq, w4, xq)?;
        }
    }
    Ok(())
}

/// Dequantized, the blocks' `f32` dot product equals (within rounding) the
/// quantized dot product: the two sides agree on the block layout.
pub fn dequantized_layout_agrees(k: &Kernels) -> Outcome {
    const MAX: usize = 16;
    let mut rng = Rng::new(0x5EED_000C);
    let mut wq = [BlockQ8_0::default(); MAX];
    let mut w4 = [BlockQ4_0::default(); MAX];
    let mut xq = [BlockQ8_0::default(); MAX];
    let mut w = [0f32; 32 * MAX];
    let mut wf4 = [0f32; 32 * MAX];
    let mut x = [0f32; 32 * MAX];
    for nb in [1usize, 5, MAX] {
        let n = nb * 32;
        let (wq, w4, xq) = (&mut wq[..nb], &mut w4[..nb], &mut xq[..nb]);
        rng.fill_q8_0(wq);
        rng.fill_q4_0(w4);
        rng.fill_q8_0(xq);
        for b in wq.iter_mut().chain(xq.iter_mut()) {
            b.d = rng.moderate_scale_bits();
        }
        for b in w4.iter_mut() {
            b.d = rng.moderate_scale_bits();
        }
        let (w, wf4, x) = (&mut w[..n], &mut wf4[..n], &mut x[..n]);
        dequantize_row_q8_0(wq, w);
        dequantize_row_q4_0(w4, wf4);
        dequantize_row_q8_0(xq, x);
        close(
            "q8_0 ~ dequantized",
            at!(nb),
            k.vec_dot_q8_0_q8_0(n, wq, xq),
            n,
            |i| (w[i] as f64, x[i] as f64),
        )?;
        close(
            "q4_0 ~ dequantized",
            at!(nb),
            k.vec_dot_q4_0_q8_0(n, w4, xq),
            n,
            |i| (wf4[i] as f64, x[i] as f64),
        )?;
    }
    Ok(())
}

/// Inputs every elementwise function must get right: zeros, the
/// infinities, NaNs with several payloads (quiet, signalling, negative),
/// the extremes, subnormals, and both sides of each threshold of the
/// specification (clamps, overflow and underflow of `exp`, the switch
/// between `tanh`'s two forms, its saturation). Writes them to the start of
/// `v` and returns how many there are (167; `v` holds at least 192).
pub fn special_values(v: &mut [f32; 192]) -> usize {
    const BASE: [f32; 28] = [
        0.0,
        1.0,
        0.5,
        2.0,
        1e-4,
        1e-20,
        0.625,
        10.0,
        9.0,
        9.01,
        20.0,
        44.0,
        87.336_55,
        88.722_83,
        88.722_84,
        89.0,
        100.0,
        103.972_08,
        104.0,
        150.0,
        1e10,
        6.2e12,
        1e30,
        f32::MAX,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::from_bits(0x007F_FFFF),
        f32::INFINITY,
    ];
    fn push(v: &mut [f32; 192], n: &mut usize, x: f32) {
        v[*n] = x;
        *n += 1;
    }
    let mut n = 0;
    for x in BASE {
        push(v, &mut n, x);
    }
    // Neighbours of each threshold.
    for x in BASE {
        if x.is_finite() && x != 0.0 {
            push(v, &mut n, f32::from_bits(x.to_bits() + 1));
            push(v, &mut n, f32::from_bits(x.to_bits() - 1));
        }
    }
    let positive = n;
    for i in 0..positive {
        let x = v[i];
        push(v, &mut n, -x);
    }
    for bits in [
        0x7FC0_0000u32,
        0xFFC0_0000,
        0x7F80_0001,
        0xFF80_0001,
        0x7FBF_FFFF,
        0x7FC0_1234,
        0xFFFF_FFFF,
    ] {
        push(v, &mut n, f32::from_bits(bits));
    }
    n
}

/// A random input for the elementwise functions: uniform at several scales
/// (by `i % 6`), or random bits (every exponent, NaNs and infinities).
pub fn random_value(rng: &mut Rng, i: usize) -> f32 {
    match i % 6 {
        0 => rng.signed(),
        1 => rng.signed() * 4.0,
        2 => rng.signed() * 12.0,
        3 => rng.signed() * 110.0,
        4 => rng.signed() * 1e-3,
        _ => f32::from_bits(rng.next_u64() as u32),
    }
}

/// Random inputs of the elementwise cases, in calls of this many.
const ELEMENTWISE_CHUNK: usize = 1024;
/// Random inputs of each elementwise case.
pub const ELEMENTWISE_RANDOM: usize = 100_000;

/// The special values, each of them in every lane position of a register,
/// [`ELEMENTWISE_RANDOM`] random values, and every length 0..=67 (the SIMD
/// tails) with a special value somewhere: the scalar twin's bits.
pub fn check_elementwise_suite(k: &Kernels, op: Elementwise, seed: u64) -> Outcome {
    let mut specials = [0f32; 192];
    let count = special_values(&mut specials);
    let specials = &specials[..count];
    let mut x = [0f32; ELEMENTWISE_CHUNK];
    let mut got = [0f32; ELEMENTWISE_CHUNK];
    check_elementwise(k, op, specials, &mut got[..count], At::default())?;
    for shift in 0..16 {
        let len = shift + count;
        x[..shift].fill(0.25);
        x[shift..len].copy_from_slice(specials);
        check_elementwise(k, op, &x[..len], &mut got[..len], at!(shift))?;
    }
    let mut rng = Rng::new(seed);
    let mut start = 0;
    while start < ELEMENTWISE_RANDOM {
        let len = ELEMENTWISE_CHUNK.min(ELEMENTWISE_RANDOM - start);
        for (i, v) in x[..len].iter_mut().enumerate() {
            *v = random_value(&mut rng, start + i);
        }
        check_elementwise(k, op, &x[..len], &mut got[..len], at!(start))?;
        start += len;
    }
    for len in 0..=67usize {
        for _ in 0..4 {
            for (i, v) in x[..len].iter_mut().enumerate() {
                *v = random_value(&mut rng, i);
            }
            if len > 0 {
                let j = rng.below(len as u64) as usize;
                x[j] = specials[rng.below(count as u64) as usize];
            }
            check_elementwise(k, op, &x[..len], &mut got[..len], At::default())?;
        }
    }
    Ok(())
}

/// `exp_inplace` has the scalar twin's bits ([`check_elementwise_suite`]).
pub fn exp_bit_exact(k: &Kernels) -> Outcome {
    check_elementwise_suite(k, Elementwise::Exp, 0x5EED_0101)
}

/// `tanh_inplace` has the scalar twin's bits ([`check_elementwise_suite`]).
pub fn tanh_bit_exact(k: &Kernels) -> Outcome {
    check_elementwise_suite(k, Elementwise::Tanh, 0x5EED_0102)
}

/// `gelu_tanh_inplace` has the scalar twin's bits
/// ([`check_elementwise_suite`]).
pub fn gelu_tanh_bit_exact(k: &Kernels) -> Outcome {
    check_elementwise_suite(k, Elementwise::GeluTanh, 0x5EED_0103)
}

/// The recurrence's latent update: the scalar specification's bits for `S`
/// and `y`, for value widths with and without a SIMD tail, groups of 0 to
/// 17 latents, `y` shorter than the width, and values large enough to
/// overflow.
pub fn latent_update_bit_exact(k: &Kernels) -> Outcome {
    const DH: usize = 64;
    const G: usize = 17;
    const S: usize = G * DH + 3;
    let mut rng = Rng::new(0x5EED_0104);
    let (mut s_got, mut s_want) = ([0f32; S], [0f32; S]);
    let (mut y_got, mut y_want) = ([0f32; DH], [0f32; DH]);
    let (mut y0, mut v) = ([0f32; DH], [0f32; DH]);
    let (mut r, mut a, mut w) = ([0f32; G], [0f32; G], [0f32; G]);
    for dh in [1usize, 7, 8, 16, 24, 32, 33, DH] {
        for g in [0usize, 1, 3, 16, G] {
            for scale in [1.0f32, 1e20] {
                let s_len = g * dh + 3;
                // S is drawn from its own generator, twice.
                let s_seed = rng.next_u64();
                rng.fill_floats(&mut v[..dh], scale);
                r[..g].iter_mut().for_each(|v| *v = rng.unit());
                a[..g].iter_mut().for_each(|v| *v = rng.unit());
                rng.fill_floats(&mut w[..g], 1.0);
                for ylen in [dh, dh / 2] {
                    rng.fill_floats(&mut y0[..ylen], scale);
                    for s in [&mut s_got, &mut s_want] {
                        Rng::new(s_seed).fill_floats(&mut s[..s_len], scale);
                    }
                    y_got[..ylen].copy_from_slice(&y0[..ylen]);
                    y_want[..ylen].copy_from_slice(&y0[..ylen]);
                    let (v, r, a, w) = (&v[..dh], &r[..g], &a[..g], &w[..g]);
                    k.latent_update(&mut s_got[..s_len], v, r, a, w, &mut y_got[..ylen]);
                    scalar::latent_update(&mut s_want[..s_len], v, r, a, w, &mut y_want[..ylen]);
                    let at = at!(dh, g, scale, ylen);
                    same_all(
                        "latent_update S = scalar twin",
                        at,
                        &s_got[..s_len],
                        &s_want[..s_len],
                    )?;
                    same_all(
                        "latent_update y = scalar twin",
                        at,
                        &y_got[..ylen],
                        &y_want[..ylen],
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// The window attention's kernels, `window_dots` and `window_sums`, have
/// the scalar twins' bits for `f32`, `f16` and `i8` rows, every length from
/// 0 to 40 and longer, several strides and row counts, large, tiny and
/// (in `f16`) subnormal values.
pub fn window_steps_bit_exact(k: &Kernels) -> Outcome {
    use crate::scalar::RingRows;
    const N: usize = 72;
    const ROWS: usize = 17;
    const LEN: usize = ROWS * (N + 3);
    let mut rng = Rng::new(0x5EED_0108);
    let mut q = [0f32; N];
    let (mut rf, mut rh, mut rb) = ([0f32; LEN], [0u16; LEN], [0i8; LEN]);
    for n in (0..=40).chain([64, N]) {
        for scale in [1.0f32, 1e-30, 1e30] {
            rng.fill_floats(&mut q[..n], scale);
            rng.fill_floats(&mut rf, 1.0);
            // f16 values from 2^-20 (subnormal) to 2^10.
            for (h, &v) in rh.iter_mut().zip(rf.iter()) {
                let e = rng.below(31) as i32 - 20;
                *h = f16::from_f32(v * f32::from_bits(((127 + e) as u32) << 23)).to_bits();
            }
            for b in rb.iter_mut() {
                *b = rng.below(256) as u8 as i8;
            }
            for (extra, rows) in [(0, ROWS), (3, ROWS), (1, 9), (0, 8), (1, 2), (2, 0)] {
                let stride = n + extra;
                let used = if rows == 0 {
                    0
                } else {
                    (rows - 1) * stride + n
                };
                for (kind, rr) in [
                    (0.0, RingRows::F32(&rf[..used])),
                    (1.0, RingRows::F16(&rh[..used])),
                    (2.0, RingRows::I8(&rb[..used])),
                ] {
                    let at = at!(n, scale, stride, rows, kind);
                    let (mut got, mut want) = ([0f32; ROWS], [0f32; ROWS]);
                    k.window_dots(&q[..n], rr, stride, &mut got);
                    scalar::window_dots(&q[..n], rr, stride, &mut want);
                    same_all("window_dots = scalar twin", at, &got, &want)?;
                    let mut p = [0f32; ROWS];
                    rng.fill_floats(&mut p, 1.0);
                    let (mut y, mut ys) = ([0f32; N], [0f32; N]);
                    rng.fill_floats(&mut y[..n], scale);
                    ys[..n].copy_from_slice(&y[..n]);
                    k.window_sums(&mut y[..n], &p, rr, stride);
                    scalar::window_sums(&mut ys[..n], &p, rr, stride);
                    same_all("window_sums = scalar twin", at, &y[..n], &ys[..n])?;
                }
            }
        }
    }
    Ok(())
}
