//! The kernel test suite that runs on the device: every DSP kernel against
//! its scalar twin, bit for bit, on pseudo-random blocks and awkward lengths
//! (the host suite in `crates/latte-kernels/tests` cannot run on a
//! microcontroller target). Fails if the DSP path is not the one selected.

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
            1 => self.below(0x400) as u16,                 // subnormal
            2 => 0x7800 | self.below(0x3FF) as u16,        // large
            3 => 0x8000 | (0x2000 + self.below(0x1000) as u16), // negative
            _ => 0x2000 + self.below(0x1000) as u16,
        }
    }
    fn q8(&mut self, extremes: bool) -> BlockQ8_0 {
        let mut b = BlockQ8_0 { d: self.scale(), qs: [0; 32] };
        for q in &mut b.qs {
            *q = if extremes && self.below(4) == 0 {
                if self.below(2) == 0 { -128 } else { 127 }
            } else {
                self.next() as u8 as i8
            };
        }
        b
    }
    fn q4(&mut self) -> BlockQ4_0 {
        let mut b = BlockQ4_0 { d: self.scale(), qs: [0; 16] };
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
    let mut passed = 0u32;
    let mut failed = 0u32;
    let mut check = |ok: bool, what: &str, n: usize| {
        if ok {
            passed += 1;
        } else {
            failed += 1;
            defmt::error!("kernel test failed: {=str}, {=usize} blocks", what, n);
        }
    };

    let dsp = Kernels::best();
    check(dsp.path() == KernelPath::ArmDsp, "best() is arm-dsp", 0);
    let Some(dsp) = KernelPath::ArmDsp.kernels() else {
        defmt::error!("the arm-dsp kernels are not available on this target");
        return Err(failed + 1);
    };
    let sc = Kernels::scalar();

    // The f16 conversion of the scales, exhaustively.
    let mut conv_ok = true;
    for bits in 0..=u16::MAX {
        let want = latte_core::latte_kernels::f16::from_bits(bits).to_f32().to_bits();
        if latte_core::latte_kernels::arm_dsp::scale(bits).to_bits() != want {
            conv_ok = false;
        }
    }
    check(conv_ok, "f16 scale conversion, all 65536 values", 0);

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
                same(dsp.vec_dot_q8_0_q8_0(n, &w8, &x), sc.vec_dot_q8_0_q8_0(n, &w8, &x)),
                "vec_dot_q8_0_q8_0",
                nb,
            );
            check(
                same(dsp.vec_dot_q4_0_q8_0(n, &w4, &x), sc.vec_dot_q4_0_q8_0(n, &w4, &x)),
                "vec_dot_q4_0_q8_0",
                nb,
            );
            // Rows `MAX` blocks apart, `nb` used: a stride wider than the row.
            let wide = |y: &[f32; ROWS], z: &[f32; ROWS]| y.iter().zip(z).all(|(a, b)| same(*a, *b));
            let cols = MAX * 32;
            dsp.matvec_q8_0(&w8, ROWS, cols, &x[..nb], &mut y_dsp);
            sc.matvec_q8_0(&w8, ROWS, cols, &x[..nb], &mut y_sc);
            check(wide(&y_dsp, &y_sc), "matvec_q8_0", nb);
            dsp.matvec_q4_0(&w4, ROWS, cols, &x[..nb], &mut y_dsp);
            sc.matvec_q4_0(&w4, ROWS, cols, &x[..nb], &mut y_sc);
            check(wide(&y_dsp, &y_sc), "matvec_q4_0", nb);
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
    check(xq == xq_sc, "quantize_q8_0", 16);
    dsp.matvec_q8_0(&w8, ROWS, 16 * 32, &xq, &mut y_dsp);
    sc.matvec_q8_0(&w8, ROWS, 16 * 32, &xq, &mut y_sc);
    check(y_dsp.iter().zip(&y_sc).all(|(a, b)| a.to_bits() == b.to_bits()), "matvec_q8_0 dense", 16);

    if failed == 0 {
        Ok(passed)
    } else {
        Err(failed)
    }
}
