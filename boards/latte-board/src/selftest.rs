//! The kernel test suite that runs on the device: every DSP kernel against
//! its scalar twin, bit for bit, on pseudo-random blocks and awkward lengths
//! (the host suite in `crates/latte-kernels/tests` cannot run on a
//! microcontroller target), for every Arm path the target has (`arm-dsp`,
//! and `arm-helium` on Helium builds). Fails if the DSP path is missing or
//! `Kernels::best()` is not the most capable path.

use latte_core::latte_kernels::{
    quantize_row_q8_0, scalar, BlockQ4_0, BlockQ8_0, KernelPath, Kernels,
};

/// xorshift64*: deterministic inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Scale bits: mostly moderate normals, sometimes zero, subnormal,
    /// large, negative.
    fn scale(&mut self) -> u16 {
        match self.below(10) {
            0 => 0,
            1 => self.below(0x400) as u16,          // subnormal
            2 => 0x7800 | self.below(0x3FF) as u16, // large
            3 => 0x8000 | (0x2000 + self.below(0x1000) as u16), // negative
            _ => 0x2000 + self.below(0x1000) as u16,
        }
    }
    fn q8(&mut self, extremes: bool) -> BlockQ8_0 {
        let mut b = BlockQ8_0 {
            d: self.scale(),
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
                self.next() as u8 as i8
            };
        }
        b
    }
    fn q4(&mut self) -> BlockQ4_0 {
        let mut b = BlockQ4_0 {
            d: self.scale(),
            qs: [0; 16],
        };
        for q in &mut b.qs {
            *q = self.next() as u8;
        }
        b
    }
}

/// Block counts: below, at and above the 8 accumulator lanes and the
/// widening limit of the DSP matrix-vector product (32 blocks).
const COUNTS: &[usize] = &[1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40];
const MAX: usize = 40;
const ROWS: usize = 5;

/// Runs the suite; logs each failure and returns the number of cases that
/// passed, or `Err(failures)`.
pub fn run() -> Result<u32, u32> {
    let mut t = Tally::default();

    // Every Arm path this target has; `best()` must be the last of them.
    let mut paths = [None, None];
    for (slot, path) in paths
        .iter_mut()
        .zip([KernelPath::ArmDsp, KernelPath::ArmHelium])
    {
        *slot = path.kernels();
        if let Some(k) = slot {
            defmt::info!("kernel tests: testing {=str}", k.path().name());
        }
    }
    let Some(last) = paths.iter().rev().flatten().next().copied() else {
        defmt::error!("no Arm kernel path (arm-dsp, arm-helium) on this target");
        return Err(t.failed + 1);
    };
    t.check(
        Kernels::best() == last,
        "best() is the most capable Arm path",
        0,
    );
    t.check(paths[0].is_some(), "arm-dsp is available", 0);

    // The f16 conversion of the DSP kernels' scales, exhaustively.
    let mut conv_ok = true;
    for bits in 0..=u16::MAX {
        let want = latte_core::latte_kernels::f16::from_bits(bits)
            .to_f32()
            .to_bits();
        if latte_core::latte_kernels::arm_dsp::scale(bits).to_bits() != want {
            conv_ok = false;
        }
    }
    t.check(conv_ok, "f16 scale conversion, all 65536 values", 0);

    for k in paths.iter().flatten() {
        suite(k, &mut t);
    }
    if t.failed == 0 {
        Ok(t.passed)
    } else {
        Err(t.failed)
    }
}

#[derive(Default)]
struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn check(&mut self, ok: bool, what: &str, n: usize) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            defmt::error!("kernel test failed: {=str}, {=usize} blocks", what, n);
        }
    }
}

/// The bit-exactness cases for one kernel path against the scalar twin.
fn suite(dsp: &Kernels, t: &mut Tally) {
    let check = |t: &mut Tally, ok, what, n| t.check(ok, what, n);
    let sc = Kernels::scalar();
    let mut rng = Rng(0x1A77_E5EED);
    let mut w8 = [BlockQ8_0::default(); MAX * ROWS];
    let mut w4 = [BlockQ4_0::default(); MAX * ROWS];
    let mut x = [BlockQ8_0::default(); MAX];
    let mut y_dsp = [0f32; ROWS];
    let mut y_sc = [0f32; ROWS];
    for &nb in COUNTS {
        for round in 0..3 {
            let extremes = round == 2;
            for b in w8.iter_mut() {
                *b = rng.q8(extremes);
            }
            for b in w4.iter_mut() {
                *b = rng.q4();
            }
            for b in x.iter_mut() {
                *b = rng.q8(extremes);
            }
            let n = nb * 32;
            let same = |a: f32, b: f32| a.to_bits() == b.to_bits();
            check(
                t,
                same(
                    dsp.vec_dot_q8_0_q8_0(n, &w8, &x),
                    sc.vec_dot_q8_0_q8_0(n, &w8, &x),
                ),
                "vec_dot_q8_0_q8_0",
                nb,
            );
            check(
                t,
                same(
                    dsp.vec_dot_q4_0_q8_0(n, &w4, &x),
                    sc.vec_dot_q4_0_q8_0(n, &w4, &x),
                ),
                "vec_dot_q4_0_q8_0",
                nb,
            );
            // Rows `stride` blocks apart with `nb` used (a stride wider than
            // the row when `nb < stride`), even and odd strides, the matrix
            // starting on either alignment (one block in), 1 to 5 rows (odd
            // counts leave a last row without a partner).
            let wide =
                |y: &[f32; ROWS], z: &[f32; ROWS]| y.iter().zip(z).all(|(a, b)| same(*a, *b));
            for stride in [MAX, MAX - 1] {
                let used = nb.min(stride);
                for offset in [0, 1] {
                    for rows in [1, 2, ROWS] {
                        let cols = stride * 32;
                        y_dsp = [0.0; ROWS];
                        y_sc = [0.0; ROWS];
                        dsp.matvec_q8_0(&w8[offset..], rows, cols, &x[..used], &mut y_dsp);
                        sc.matvec_q8_0(&w8[offset..], rows, cols, &x[..used], &mut y_sc);
                        check(t, wide(&y_dsp, &y_sc), "matvec_q8_0", used);
                        y_dsp = [0.0; ROWS];
                        y_sc = [0.0; ROWS];
                        dsp.matvec_q4_0(&w4[offset..], rows, cols, &x[..used], &mut y_dsp);
                        sc.matvec_q4_0(&w4[offset..], rows, cols, &x[..used], &mut y_sc);
                        check(t, wide(&y_dsp, &y_sc), "matvec_q4_0", used);
                    }
                }
            }
        }
    }

    // Activations as the model makes them (quantized floats), dense rows.
    let mut xf = [0f32; 32 * 16];
    for (i, v) in xf.iter_mut().enumerate() {
        *v = ((i * 7919 % 2003) as f32 - 1001.0) / 97.0;
    }
    let mut xq = [BlockQ8_0::default(); 16];
    quantize_row_q8_0(&xf, &mut xq);
    let mut xq_sc = [BlockQ8_0::default(); 16];
    scalar::quantize_q8_0(&xf, &mut xq_sc);
    check(t, xq == xq_sc, "quantize_q8_0", 16);
    dsp.matvec_q8_0(&w8, ROWS, 16 * 32, &xq, &mut y_dsp);
    sc.matvec_q8_0(&w8, ROWS, 16 * 32, &xq, &mut y_sc);
    check(
        t,
        y_dsp
            .iter()
            .zip(&y_sc)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "matvec_q8_0 dense",
        16,
    );
}
