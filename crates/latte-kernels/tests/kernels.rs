//! The shared kernel test suite, instantiated once per kernel path (see
//! `kernel_suite!` at the bottom). Integer kernels must equal the scalar
//! twin bit for bit; float kernels must stay within a rounding bound of an
//! `f64` reference.

mod common;

use common::{bits, require, Rng, BLOCK_COUNTS, FLOAT_LENS};
use latte_kernels::{
    dequantize_row_q4_0, dequantize_row_q8_0, f16, quantize_row_q4_0, quantize_row_q8_0, BlockQ4_0,
    BlockQ8_0, KernelPath, Kernels,
};

const U: f64 = 1.0 / (1u64 << 24) as f64; // f32 unit roundoff

/// The generic checks; each takes the kernels under test.
mod suite {
    use super::*;

    fn scalar() -> Kernels {
        Kernels::scalar()
    }

    pub fn reports_its_path(k: &Kernels, path: KernelPath) {
        assert_eq!(k.path(), path);
        assert_eq!(Kernels::by_name(path.name()), Some(*k));
    }

    /// Activations as the quantizer makes them: no -128 (SIMD paths may
    /// take a faster route then; weights keep their -128s).
    fn without_min(x: &[BlockQ8_0]) -> Vec<BlockQ8_0> {
        let mut x = x.to_vec();
        for b in &mut x {
            b.qs.iter_mut()
                .filter(|q| **q == -128)
                .for_each(|q| *q = -127);
        }
        x
    }

    pub fn dot_q8_0_bit_exact(k: &Kernels) {
        let mut rng = Rng::new(0x5EED_0001);
        for &nb in BLOCK_COUNTS {
            for _ in 0..3 {
                let w = rng.blocks_q8_0(nb);
                let x = rng.blocks_q8_0(nb);
                let got = k.vec_dot_q8_0_q8_0(nb * 32, &w, &x);
                let want = scalar().vec_dot_q8_0_q8_0(nb * 32, &w, &x);
                assert_eq!(bits(got), bits(want), "nb={nb}: {got} vs scalar {want}");
                let x = without_min(&x);
                let got = k.vec_dot_q8_0_q8_0(nb * 32, &w, &x);
                let want = scalar().vec_dot_q8_0_q8_0(nb * 32, &w, &x);
                assert_eq!(
                    bits(got),
                    bits(want),
                    "nb={nb} (x without -128): {got} vs scalar {want}"
                );
            }
        }
        // A single -128 in the last activation block, against -128 weights.
        for nb in [1usize, 8, 9, 40] {
            let w = vec![
                BlockQ8_0 {
                    d: ONE,
                    qs: [-128; 32]
                };
                nb
            ];
            let mut x = vec![
                BlockQ8_0 {
                    d: ONE,
                    qs: [-127; 32]
                };
                nb
            ];
            x[nb - 1].qs[31] = -128;
            let want = (nb * 32 * 128 * 127 + 128) as f32;
            assert_eq!(k.vec_dot_q8_0_q8_0(nb * 32, &w, &x), want, "nb={nb}");
        }
    }

    pub fn dot_q4_0_bit_exact(k: &Kernels) {
        let mut rng = Rng::new(0x5EED_0002);
        for &nb in BLOCK_COUNTS {
            for _ in 0..3 {
                let w = rng.blocks_q4_0(nb);
                let x = rng.blocks_q8_0(nb);
                let got = k.vec_dot_q4_0_q8_0(nb * 32, &w, &x);
                let want = scalar().vec_dot_q4_0_q8_0(nb * 32, &w, &x);
                assert_eq!(bits(got), bits(want), "nb={nb}: {got} vs scalar {want}");
            }
        }
    }

    const ONE: u16 = 0x3C00; // f16 1.0
    const F16_MAX: u16 = 0x7BFF; // 65504
    const F16_MIN_SUB: u16 = 0x0001; // 2^-24

    fn q8(d: u16, q: impl Fn(usize) -> i8) -> BlockQ8_0 {
        BlockQ8_0 {
            d,
            qs: core::array::from_fn(q),
        }
    }

    /// Q4_0 block whose 32 values are `nib(j) - 8`.
    fn q4(d: u16, nib: impl Fn(usize) -> u8) -> BlockQ4_0 {
        BlockQ4_0 {
            d,
            qs: core::array::from_fn(|j| nib(j) | (nib(j + 16) << 4)),
        }
    }

    pub fn dot_extremes(k: &Kernels) {
        for nb in [1usize, 2, 7, 8, 9, 16, 31, 32] {
            let n = nb * 32;
            // All-zero blocks.
            let z = vec![BlockQ8_0::default(); nb];
            assert_eq!(bits(k.vec_dot_q8_0_q8_0(n, &z, &z)), bits(0.0));
            let z4 = vec![BlockQ4_0::default(); nb];
            assert_eq!(bits(k.vec_dot_q4_0_q8_0(n, &z4, &z)), bits(0.0));

            // -128 x -128 with d = 1: 32 * 16384 = 524288 per block, exact.
            let m = vec![q8(ONE, |_| -128); nb];
            assert_eq!(k.vec_dot_q8_0_q8_0(n, &m, &m), 524_288.0 * nb as f32);
            // 127 x -128: 32 * -16256 = -520192 per block.
            let p = vec![q8(ONE, |_| 127); nb];
            assert_eq!(k.vec_dot_q8_0_q8_0(n, &p, &m), -520_192.0 * nb as f32);
            // Alternating -128/127 against -128/-128: 16 * 16384 - 16 * 16256 = 2048.
            let alt = vec![q8(ONE, |j| if j % 2 == 0 { -128 } else { 127 }); nb];
            assert_eq!(k.vec_dot_q8_0_q8_0(n, &alt, &m), 2048.0 * nb as f32);
            // Q4_0 nibble 0 (-8) x -128 = 1024, 32 per block; nibble 15 (7) x 127 = 889.
            let lo = vec![q4(ONE, |_| 0); nb];
            assert_eq!(k.vec_dot_q4_0_q8_0(n, &lo, &m), 32_768.0 * nb as f32);
            let hi = vec![q4(ONE, |_| 15); nb];
            assert_eq!(k.vec_dot_q4_0_q8_0(n, &hi, &p), 28_448.0 * nb as f32);
            // Nibble j%16 against x = -128: sum_j (j%16 - 8) * -128 = 2 * 1024 = 2048... per block:
            // sum over j of (j % 16 - 8) = 2 * (120 - 128) = -16, times -128 = 2048.
            let ramp = vec![q4(ONE, |j| (j % 16) as u8); nb];
            assert_eq!(k.vec_dot_q4_0_q8_0(n, &ramp, &m), 2048.0 * nb as f32);

            // Largest and smallest scales, both signs, with extreme quants:
            // bit-exact with the scalar twin (and finite).
            for (dw, dx) in [
                (F16_MAX, F16_MAX),
                (F16_MAX | 0x8000, F16_MAX),
                (F16_MIN_SUB, F16_MIN_SUB),
                (F16_MAX, F16_MIN_SUB | 0x8000),
            ] {
                let mut rng = Rng::new(nb as u64 * 7 + dw as u64);
                let ext = |r: &mut Rng| match r.below(3) {
                    0 => -128i8,
                    1 => 127,
                    _ => -127,
                };
                let w: Vec<BlockQ8_0> = (0..nb)
                    .map(|_| q8(dw, |_| 0))
                    .map(|mut b| {
                        b.qs.iter_mut().for_each(|q| *q = ext(&mut rng));
                        b
                    })
                    .collect();
                let x: Vec<BlockQ8_0> = (0..nb)
                    .map(|_| q8(dx, |_| 0))
                    .map(|mut b| {
                        b.qs.iter_mut().for_each(|q| *q = ext(&mut rng));
                        b
                    })
                    .collect();
                let got = k.vec_dot_q8_0_q8_0(n, &w, &x);
                assert!(got.is_finite());
                assert_eq!(bits(got), bits(scalar().vec_dot_q8_0_q8_0(n, &w, &x)));
                let w4: Vec<BlockQ4_0> = (0..nb)
                    .map(|i| q4(dw, |j| if (i + j) % 3 == 0 { 0 } else { 15 }))
                    .collect();
                let got = k.vec_dot_q4_0_q8_0(n, &w4, &x);
                assert!(got.is_finite());
                assert_eq!(bits(got), bits(scalar().vec_dot_q4_0_q8_0(n, &w4, &x)));
            }
        }
    }

    /// With d = 1 every partial sum is an integer below 2^24, so the result
    /// is exactly the integer dot product, computed here in i64.
    pub fn dot_is_exact_integer_sum(k: &Kernels) {
        let mut rng = Rng::new(0x5EED_0003);
        for nb in [1usize, 3, 8, 13, 32] {
            let mut w = rng.blocks_q8_0(nb);
            let mut x = rng.blocks_q8_0(nb);
            let mut w4 = rng.blocks_q4_0(nb);
            for b in w.iter_mut().chain(x.iter_mut()) {
                b.d = ONE;
            }
            for b in w4.iter_mut() {
                b.d = ONE;
            }
            let want: i64 = w
                .iter()
                .zip(&x)
                .flat_map(|(a, b)| a.qs.iter().zip(&b.qs))
                .map(|(&p, &q)| p as i64 * q as i64)
                .sum();
            assert_eq!(k.vec_dot_q8_0_q8_0(nb * 32, &w, &x), want as f32);
            let want4: i64 = w4
                .iter()
                .zip(&x)
                .flat_map(|(a, b)| (0..32).map(move |j| (a.quant(j) as i64 - 8) * b.qs[j] as i64))
                .sum();
            assert_eq!(k.vec_dot_q4_0_q8_0(nb * 32, &w4, &x), want4 as f32);
        }
    }

    pub fn dot_uses_n_and_common_prefix(k: &Kernels) {
        let mut rng = Rng::new(0x5EED_0004);
        let w = rng.blocks_q8_0(20);
        let x = rng.blocks_q8_0(20);
        let w4 = rng.blocks_q4_0(20);
        for n in [0usize, 31, 32, 33, 64, 300, 640, 10_000] {
            let nb = (n / 32).min(20);
            assert_eq!(
                bits(k.vec_dot_q8_0_q8_0(n, &w, &x)),
                bits(scalar().vec_dot_q8_0_q8_0(nb * 32, &w[..nb], &x[..nb])),
                "n={n}"
            );
            assert_eq!(
                bits(k.vec_dot_q4_0_q8_0(n, &w4, &x)),
                bits(scalar().vec_dot_q4_0_q8_0(nb * 32, &w4[..nb], &x[..nb])),
                "n={n}"
            );
        }
        // Shorter x: its length wins.
        assert_eq!(
            bits(k.vec_dot_q8_0_q8_0(640, &w, &x[..5])),
            bits(scalar().vec_dot_q8_0_q8_0(160, &w[..5], &x[..5]))
        );
    }

    pub fn matvec_quant_bit_exact(k: &Kernels) {
        let mut rng = Rng::new(0x5EED_0005);
        // Rows past 128 blocks (132: a tail of four; 137: one of one) leave
        // the groups that the AVX-512 product prepares ahead of the rows.
        for rows in [1usize, 2, 3, 4, 5, 6, 7, 8, 13] {
            for nb in [1usize, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17, 33, 132, 137] {
                let cols = nb * 32;
                let w = rng.blocks_q8_0(rows * nb);
                let w4 = rng.blocks_q4_0(rows * nb);
                let x = rng.blocks_q8_0(nb);
                // Every other case: activations without -128.
                let x = if (rows + nb) % 2 == 0 {
                    without_min(&x)
                } else {
                    x
                };
                let mut y = vec![f32::NAN; rows];
                let mut y4 = vec![f32::NAN; rows];
                k.matvec_q8_0(&w, rows, cols, &x, &mut y);
                k.matvec_q4_0(&w4, rows, cols, &x, &mut y4);
                let mut ys = vec![f32::NAN; rows];
                let mut ys4 = vec![f32::NAN; rows];
                scalar().matvec_q8_0(&w, rows, cols, &x, &mut ys);
                scalar().matvec_q4_0(&w4, rows, cols, &x, &mut ys4);
                for r in 0..rows {
                    let row = &w[r * nb..(r + 1) * nb];
                    let row4 = &w4[r * nb..(r + 1) * nb];
                    assert_eq!(bits(y[r]), bits(ys[r]), "q8_0 rows={rows} nb={nb} r={r}");
                    assert_eq!(bits(y4[r]), bits(ys4[r]), "q4_0 rows={rows} nb={nb} r={r}");
                    assert_eq!(bits(y[r]), bits(k.vec_dot_q8_0_q8_0(cols, row, &x)));
                    assert_eq!(bits(y4[r]), bits(k.vec_dot_q4_0_q8_0(cols, row4, &x)));
                }
            }
        }
        // Products of -0.0 (zero quants, negative scales): the accumulators
        // start at +0.0, so every row is +0.0, whatever the row length.
        for nb in 1usize..=9 {
            let rows = 5;
            let w = vec![
                BlockQ8_0 {
                    d: 0xBC00,
                    qs: [0; 32]
                };
                rows * nb
            ];
            let w4 = vec![
                BlockQ4_0 {
                    d: 0xBC00,
                    qs: [0x88; 16]
                };
                rows * nb
            ];
            let x = vec![
                BlockQ8_0 {
                    d: ONE,
                    qs: [5; 32]
                };
                nb
            ];
            let mut y = vec![f32::NAN; rows];
            k.matvec_q8_0(&w, rows, nb * 32, &x, &mut y);
            assert!(
                y.iter().all(|v| bits(*v) == bits(0.0)),
                "q8_0 nb={nb}: {y:?}"
            );
            let mut y = vec![f32::NAN; rows];
            k.matvec_q4_0(&w4, rows, nb * 32, &x, &mut y);
            assert!(
                y.iter().all(|v| bits(*v) == bits(0.0)),
                "q4_0 nb={nb}: {y:?}"
            );
            assert_eq!(bits(k.vec_dot_q8_0_q8_0(nb * 32, &w[..nb], &x)), bits(0.0));
            assert_eq!(bits(k.vec_dot_q4_0_q8_0(nb * 32, &w4[..nb], &x)), bits(0.0));
        }
    }

    pub fn matvec_length_rules(k: &Kernels) {
        let mut rng = Rng::new(0x5EED_0006);
        let (rows, nb) = (5usize, 3usize);
        let w = rng.blocks_q8_0(rows * nb);
        let x = rng.blocks_q8_0(nb);
        // y longer than rows: the tail is left alone.
        let mut y = vec![7.0f32; rows + 2];
        k.matvec_q8_0(&w, rows, nb * 32, &x, &mut y);
        assert_eq!(&y[rows..], &[7.0, 7.0]);
        // Fewer weight rows than asked for: only whole rows are computed.
        let mut y = vec![7.0f32; rows];
        k.matvec_q8_0(&w[..2 * nb + 1], rows, nb * 32, &x, &mut y);
        assert_eq!(
            bits(y[1]),
            bits(k.vec_dot_q8_0_q8_0(nb * 32, &w[nb..2 * nb], &x))
        );
        assert_eq!(&y[2..], &[7.0, 7.0, 7.0]);
        // Zero columns: zeros.
        let mut y = vec![7.0f32; rows];
        k.matvec_q8_0(&w, rows, 0, &x, &mut y);
        assert_eq!(y, vec![0.0; rows]);
        // Short x: a prefix of every row.
        let mut y = vec![7.0f32; rows];
        k.matvec_q8_0(&w, rows, nb * 32, &x[..2], &mut y);
        for r in 0..rows {
            let row = &w[r * nb..r * nb + 2];
            assert_eq!(
                bits(y[r]),
                bits(scalar().vec_dot_q8_0_q8_0(64, row, &x[..2]))
            );
        }
        // Short x on wider rows, through every row grouping and block tail.
        for (rows, nb_w, nb_x) in [
            (9usize, 13usize, 12usize),
            (11, 20, 9),
            (9, 9, 4),
            (6, 6, 5),
        ] {
            let w = rng.blocks_q8_0(rows * nb_w);
            let w4 = rng.blocks_q4_0(rows * nb_w);
            let x = rng.blocks_q8_0(nb_x);
            let (mut y, mut ys) = (vec![7.0f32; rows], vec![7.0f32; rows]);
            k.matvec_q8_0(&w, rows, nb_w * 32, &x, &mut y);
            scalar().matvec_q8_0(&w, rows, nb_w * 32, &x, &mut ys);
            assert_eq!(
                y.iter().map(|v| bits(*v)).collect::<Vec<_>>(),
                ys.iter().map(|v| bits(*v)).collect::<Vec<_>>()
            );
            k.matvec_q4_0(&w4, rows, nb_w * 32, &x, &mut y);
            scalar().matvec_q4_0(&w4, rows, nb_w * 32, &x, &mut ys);
            assert_eq!(
                y.iter().map(|v| bits(*v)).collect::<Vec<_>>(),
                ys.iter().map(|v| bits(*v)).collect::<Vec<_>>()
            );
        }
        // f32 with a short y.
        let wf = rng.floats(rows * 10, 1.0);
        let xf = rng.floats(10, 1.0);
        let mut y = vec![7.0f32; 3];
        k.matvec_f32(&wf, rows, 10, &xf, &mut y);
        assert!(y.iter().all(|v| *v != 7.0));
    }

    pub fn quantize_q8_0_bit_exact(k: &Kernels) {
        let mut rng = Rng::new(0x5EED_0007);
        let scales = [1e-30f32, 1e-6, 1e-3, 0.02, 1.0, 37.0, 1e4, 1e9];
        for len in [0usize, 1, 31, 32, 33, 64, 65, 96, 32 * 33] {
            for &s in &scales {
                let x = rng.floats(len, s);
                let nb = len / 32;
                let mut got = vec![
                    BlockQ8_0 {
                        d: 0xFFFF,
                        qs: [99; 32]
                    };
                    nb + 1
                ];
                let mut want = got.clone();
                k.quantize_q8_0(&x, &mut got);
                quantize_row_q8_0(&x, &mut want);
                assert_eq!(got, want, "len={len} scale={s}");
                assert_eq!(
                    got[nb],
                    BlockQ8_0 {
                        d: 0xFFFF,
                        qs: [99; 32]
                    },
                    "wrote past the end"
                );
            }
        }
        // Hand-made blocks: exact halves, zeros, a single value, tiny
        // (scale overflows to an infinite inverse) and huge values.
        let mut cases: Vec<[f32; 32]> = Vec::new();
        cases.push(core::array::from_fn(|j| {
            if j == 0 {
                127.0
            } else {
                j as f32 - 15.5
            }
        }));
        cases.push([0.0; 32]);
        cases.push(core::array::from_fn(|j| if j == 9 { -3.0e-3 } else { 0.0 }));
        cases.push(core::array::from_fn(|j| (j as f32 - 16.0) * 1e-39));
        cases.push(core::array::from_fn(|j| (j as f32 - 16.0) * 1e-44));
        cases.push(core::array::from_fn(|j| (j as f32 - 16.0) * 1e36));
        cases.push(core::array::from_fn(
            |j| if j % 2 == 0 { -0.0 } else { 0.0 },
        ));
        for c in &cases {
            let mut got = [BlockQ8_0::default()];
            let mut want = [BlockQ8_0::default()];
            k.quantize_q8_0(c, &mut got);
            quantize_row_q8_0(c, &mut want);
            assert_eq!(got, want, "{c:?}");
        }
    }

    /// f64 reference and the standard bound `|computed - exact| <= n u sum|a b|`
    /// (with slack for the lane reduction).
    fn check_close(got: f32, a: &[f64], b: &[f64], what: &str) {
        let exact: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let mag: f64 = a.iter().zip(b).map(|(x, y)| (x * y).abs()).sum();
        let bound = (a.len() as f64 + 8.0) * U * mag + f64::from(f32::MIN_POSITIVE);
        let err = (got as f64 - exact).abs();
        assert!(
            err <= bound,
            "{what} n={}: got {got}, exact {exact}, error {err:e} > bound {bound:e}",
            a.len()
        );
    }

    pub fn dot_f32_close(k: &Kernels) {
        let mut rng = Rng::new(0x5EED_0008);
        for &n in FLOAT_LENS {
            let a = rng.floats(n, 3.0);
            let b = rng.floats(n, 0.5);
            let got = k.vec_dot_f32(&a, &b);
            let a64: Vec<f64> = a.iter().map(|&v| v as f64).collect();
            let b64: Vec<f64> = b.iter().map(|&v| v as f64).collect();
            check_close(got, &a64, &b64, "dot_f32");
            // Same-sign data: no cancellation, so the result is also close
            // relative to itself (catches dropped tails).
            let c: Vec<f32> = a.iter().map(|v| v.abs() + 0.25).collect();
            let got = k.vec_dot_f32(&c, &c);
            let want: f64 = c.iter().map(|&v| v as f64 * v as f64).sum();
            assert!(
                (got as f64 - want).abs() <= (n as f64 + 8.0) * U * want,
                "n={n}"
            );
        }
        assert_eq!(k.vec_dot_f32(&[2.0, 3.0], &[4.0]), 8.0);
    }

    pub fn dot_f16_close(k: &Kernels) {
        let mut rng = Rng::new(0x5EED_0009);
        for &n in FLOAT_LENS {
            let a: Vec<f16> = rng.floats(n, 4.0).into_iter().map(f16::from_f32).collect();
            let b = rng.floats(n, 0.5);
            let got = k.vec_dot_f16_f32(&a, &b);
            let a64: Vec<f64> = a.iter().map(|v| v.to_f64()).collect();
            let b64: Vec<f64> = b.iter().map(|&v| v as f64).collect();
            check_close(got, &a64, &b64, "dot_f16");
        }
        // f16 extremes widen exactly.
        let a = [f16::MAX, f16::MIN_POSITIVE_SUBNORMAL, -f16::MAX];
        let b = [1.0f32, 2.0f32.powi(24), 0.5];
        assert_eq!(k.vec_dot_f16_f32(&a, &b), 65504.0 + 1.0 - 32752.0);
    }

    pub fn matvec_float_close(k: &Kernels) {
        let mut rng = Rng::new(0x5EED_000A);
        for rows in [1usize, 3, 8] {
            for cols in [1usize, 7, 8, 33, 100] {
                let w = rng.floats(rows * cols, 1.0);
                let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
                let x = rng.floats(cols, 2.0);
                let mut y = vec![f32::NAN; rows];
                let mut yh = vec![f32::NAN; rows];
                k.matvec_f32(&w, rows, cols, &x, &mut y);
                k.matvec_f16(&wh, rows, cols, &x, &mut yh);
                let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                for r in 0..rows {
                    let row: Vec<f64> = w[r * cols..(r + 1) * cols]
                        .iter()
                        .map(|&v| v as f64)
                        .collect();
                    let rowh: Vec<f64> = wh[r * cols..(r + 1) * cols]
                        .iter()
                        .map(|v| v.to_f64())
                        .collect();
                    check_close(y[r], &row, &x64, "matvec_f32");
                    check_close(yh[r], &rowh, &x64, "matvec_f16");
                }
            }
        }
    }

    /// Quantize both sides, take the quantized dot product, and compare
    /// with the exact (f64) dot product of the original floats. The bound is
    /// derived per element from the block scales:
    /// `|w x - w' x'| <= |w| e_x + |x| e_w + e_w e_x`, where for `Q8_0`
    /// `e <= amax (1/254 + 2^-11) + tiny` (rounding to the step `d = amax/127`
    /// plus the `f16` rounding of `d`, up to 127 steps) and for `Q4_0`
    /// `e <= amax (1/8 + 2^-11) + tiny` (truncation of `x/d + 8.5` with the
    /// clamp at 15 can miss by one full step `d = amax/8`), plus `f32`
    /// accumulation error.
    pub fn quantized_dot_tracks_f32(k: &Kernels) {
        let mut rng = Rng::new(0x5EED_000B);
        for nb in [1usize, 2, 8, 9, 33, 128] {
            for scale in [0.01f32, 1.0, 50.0] {
                let n = nb * 32;
                let w = rng.floats(n, scale);
                let x = rng.floats(n, 1.0);
                let mut wq = vec![BlockQ8_0::default(); nb];
                let mut w4 = vec![BlockQ4_0::default(); nb];
                let mut xq = vec![BlockQ8_0::default(); nb];
                quantize_row_q8_0(&w, &mut wq);
                quantize_row_q4_0(&w, &mut w4);
                k.quantize_q8_0(&x, &mut xq);
                let exact: f64 = w.iter().zip(&x).map(|(&a, &b)| a as f64 * b as f64).sum();
                let amax = |v: &[f32]| v.iter().fold(0f64, |m, &t| m.max(t.abs() as f64));
                let tiny = 1e-7;
                let bound = |per_step: f64| -> f64 {
                    let mut b = 0.0;
                    let mut mag = 0.0;
                    for i in 0..nb {
                        let (ws, xs) = (&w[32 * i..32 * i + 32], &x[32 * i..32 * i + 32]);
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
                let got8 = k.vec_dot_q8_0_q8_0(n, &wq, &xq) as f64;
                let got4 = k.vec_dot_q4_0_q8_0(n, &w4, &xq) as f64;
                let (b8, b4) = (bound(1.0 / 254.0), bound(1.0 / 8.0));
                assert!(
                    (got8 - exact).abs() <= b8,
                    "q8_0 nb={nb}: {got8} vs {exact} (bound {b8})"
                );
                assert!(
                    (got4 - exact).abs() <= b4,
                    "q4_0 nb={nb}: {got4} vs {exact} (bound {b4})"
                );
            }
        }
    }

    pub fn exp_bit_exact(k: &Kernels) {
        math::bit_exact(
            |x| k.exp_inplace(x),
            latte_kernels::scalar::exp_f32,
            "exp",
            0x5EED_0101,
        );
    }

    pub fn tanh_bit_exact(k: &Kernels) {
        math::bit_exact(
            |x| k.tanh_inplace(x),
            latte_kernels::scalar::tanh_f32,
            "tanh",
            0x5EED_0102,
        );
    }

    pub fn gelu_tanh_bit_exact(k: &Kernels) {
        math::bit_exact(
            |x| k.gelu_tanh_inplace(x),
            latte_kernels::scalar::gelu_tanh_f32,
            "gelu_tanh",
            0x5EED_0103,
        );
    }

    /// The recurrence's latent update: every path gives the scalar
    /// specification's bits for `S` and `y`, for value widths with and
    /// without a SIMD tail, groups of 0 to 17 latents, `y` shorter than the
    /// width, and values large enough to overflow.
    pub fn latent_update_bit_exact(k: &Kernels) {
        let mut rng = Rng::new(0x5EED_0104);
        for dh in [1usize, 7, 8, 16, 24, 32, 33, 64] {
            for g in [0usize, 1, 3, 16, 17] {
                for scale in [1.0f32, 1e20] {
                    let s0 = rng.floats(g * dh + 3, scale);
                    let v = rng.floats(dh, scale);
                    let r: Vec<f32> = (0..g).map(|_| rng.unit()).collect();
                    let a: Vec<f32> = (0..g).map(|_| rng.unit()).collect();
                    let w = rng.floats(g, 1.0);
                    for ylen in [dh, dh / 2] {
                        let y0 = rng.floats(ylen, scale);
                        let (mut s_got, mut y_got) = (s0.clone(), y0.clone());
                        let (mut s_want, mut y_want) = (s0.clone(), y0.clone());
                        k.latent_update(&mut s_got, &v, &r, &a, &w, &mut y_got);
                        latte_kernels::scalar::latent_update(
                            &mut s_want,
                            &v,
                            &r,
                            &a,
                            &w,
                            &mut y_want,
                        );
                        let what = format!("dh={dh} g={g} scale={scale} ylen={ylen}");
                        assert_eq!(
                            s_got.iter().map(|v| bits(*v)).collect::<Vec<_>>(),
                            s_want.iter().map(|v| bits(*v)).collect::<Vec<_>>(),
                            "S, {what}"
                        );
                        assert_eq!(
                            y_got.iter().map(|v| bits(*v)).collect::<Vec<_>>(),
                            y_want.iter().map(|v| bits(*v)).collect::<Vec<_>>(),
                            "y, {what}"
                        );
                    }
                }
            }
        }
    }

    /// Dequantize, then the f32 dot of the dequantized values equals (within
    /// rounding) the quantized dot: the two sides agree on the block layout.
    pub fn dequantized_layout_agrees(k: &Kernels) {
        let mut rng = Rng::new(0x5EED_000C);
        for nb in [1usize, 5, 16] {
            let n = nb * 32;
            let mut wq = rng.blocks_q8_0(nb);
            let mut w4 = rng.blocks_q4_0(nb);
            let mut xq = rng.blocks_q8_0(nb);
            for b in wq.iter_mut().chain(xq.iter_mut()) {
                b.d = rng.moderate_scale_bits();
            }
            for b in w4.iter_mut() {
                b.d = rng.moderate_scale_bits();
            }
            let mut w = vec![0.0; n];
            let mut wf4 = vec![0.0; n];
            let mut x = vec![0.0; n];
            dequantize_row_q8_0(&wq, &mut w);
            dequantize_row_q4_0(&w4, &mut wf4);
            dequantize_row_q8_0(&xq, &mut x);
            let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
            let w464: Vec<f64> = wf4.iter().map(|&v| v as f64).collect();
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            check_close(
                k.vec_dot_q8_0_q8_0(n, &wq, &xq),
                &w64,
                &x64,
                "q8_0 vs dequantized",
            );
            check_close(
                k.vec_dot_q4_0_q8_0(n, &w4, &xq),
                &w464,
                &x64,
                "q4_0 vs dequantized",
            );
        }
    }
}

/// Elementwise math: every path gives the bits of the scalar twin.
mod math {
    use super::*;

    /// Inputs every elementwise function must get right: zeros, the
    /// infinities, NaNs with several payloads (quiet, signalling, negative),
    /// the extremes, subnormals, and both sides of each threshold of the
    /// specification (clamps, overflow and underflow of `exp`, the switch
    /// between `tanh`'s two forms, its saturation).
    pub fn special_values() -> Vec<f32> {
        let mut v = vec![
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
        for x in v.clone() {
            // Neighbours of each threshold.
            if x.is_finite() && x != 0.0 {
                v.push(f32::from_bits(x.to_bits() + 1));
                v.push(f32::from_bits(x.to_bits() - 1));
            }
        }
        for x in v.clone() {
            v.push(-x);
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
            v.push(f32::from_bits(bits));
        }
        v
    }

    /// `n` inputs: uniform at several scales, and random bit patterns (every
    /// exponent, NaNs and infinities included).
    pub fn random_values(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| match i % 6 {
                0 => rng.signed(),
                1 => rng.signed() * 4.0,
                2 => rng.signed() * 12.0,
                3 => rng.signed() * 110.0,
                4 => rng.signed() * 1e-3,
                _ => f32::from_bits(rng.next_u64() as u32),
            })
            .collect()
    }

    /// `op` of the path on `x` against the scalar function element by element.
    pub fn check(x: &[f32], what: &str, op: impl Fn(&mut [f32]), spec: fn(f32) -> f32) {
        let mut got = x.to_vec();
        op(&mut got);
        for (i, (&xi, &g)) in x.iter().zip(&got).enumerate() {
            let want = spec(xi);
            assert_eq!(
                bits(g),
                bits(want),
                "{what}, length {}, element {i}: x = {xi:e} ({:#010x}) gives {g:e} ({:#010x}), \
                 the scalar twin {want:e} ({:#010x})",
                x.len(),
                bits(xi),
                bits(g),
                bits(want)
            );
        }
    }

    /// Specials, random values, and every length 0..=67 (the SIMD tails).
    pub fn bit_exact(op: impl Fn(&mut [f32]), spec: fn(f32) -> f32, what: &str, seed: u64) {
        let specials = special_values();
        check(&specials, what, &op, spec);
        // Each special value in every lane position of a register.
        for shift in 0..16 {
            let mut x = vec![0.25f32; shift];
            x.extend_from_slice(&specials);
            check(&x, what, &op, spec);
        }
        let mut rng = Rng::new(seed);
        check(&random_values(&mut rng, 100_000), what, &op, spec);
        for len in 0..=67 {
            for _ in 0..4 {
                let mut x = random_values(&mut rng, len);
                if len > 0 {
                    let j = rng.below(len as u64) as usize;
                    x[j] = specials[rng.below(specials.len() as u64) as usize];
                }
                check(&x, what, &op, spec);
            }
        }
    }
}

/// One module of tests per kernel path, all running the same suite.
macro_rules! kernel_suite {
    ($name:ident, $path:expr) => {
        mod $name {
            use super::*;

            fn kernels() -> Option<Kernels> {
                require($path)
            }

            macro_rules! case {
                ($t:ident) => {
                    #[test]
                    fn $t() {
                        if let Some(k) = kernels() {
                            suite::$t(&k);
                        }
                    }
                };
            }

            #[test]
            fn reports_its_path() {
                if let Some(k) = kernels() {
                    suite::reports_its_path(&k, $path);
                }
            }

            case!(dot_q8_0_bit_exact);
            case!(dot_q4_0_bit_exact);
            case!(dot_extremes);
            case!(dot_is_exact_integer_sum);
            case!(dot_uses_n_and_common_prefix);
            case!(matvec_quant_bit_exact);
            case!(matvec_length_rules);
            case!(quantize_q8_0_bit_exact);
            case!(dot_f32_close);
            case!(dot_f16_close);
            case!(matvec_float_close);
            case!(quantized_dot_tracks_f32);
            case!(dequantized_layout_agrees);
            case!(exp_bit_exact);
            case!(tanh_bit_exact);
            case!(gelu_tanh_bit_exact);
            case!(latent_update_bit_exact);
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
