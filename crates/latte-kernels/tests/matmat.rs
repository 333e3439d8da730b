//! Matrix-matrix products (prefill): on every kernel path this CPU has,
//! each `(row, token)` value has exactly the bits of the same path's
//! matrix-vector product on that token, for every weight type (quantized
//! and float), across row blocks, odd token counts and padded outputs.

mod common;

use common::{bits, Rng, RngVec};
use latte_kernels::{f16, BlockQ8_0, KernelPath, Kernels};

/// Every path this CPU has (availability itself is the kernel suite's
/// business), scalar first.
fn paths() -> Vec<Kernels> {
    let v: Vec<Kernels> = KernelPath::ALL
        .into_iter()
        .filter_map(|p| p.kernels())
        .collect();
    assert_eq!(v[0].path(), KernelPath::Scalar);
    assert!(v.contains(&Kernels::best()));
    v
}

/// Activations as the quantizer makes them (no -128) half of the time.
fn activations(rng: &mut Rng, n: usize, no_min: bool) -> Vec<BlockQ8_0> {
    let mut x = rng.blocks_q8_0(n);
    if no_min {
        for b in &mut x {
            b.qs.iter_mut()
                .filter(|q| **q == -128)
                .for_each(|q| *q = -127);
        }
    }
    x
}

/// `(rows, blocks per row, tokens)`: 4-row groups and their tails, the
/// latte-micro shapes (D = 128, F = 512), and matrices of several row
/// blocks (more than `ROW_BLOCK_BYTES` of weights).
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 4, 2),
    (3, 1, 7),
    (4, 4, 3),
    (5, 9, 2),
    (13, 16, 7),
    (64, 4, 5),
    (128, 16, 3),
    (130, 4, 9),
    (257, 4, 2),
    (300, 2, 64),
];

/// Checks `y` (token-major, `ldy` apart) against per-token products.
fn check(
    what: &str,
    rows: usize,
    tokens: usize,
    ldy: usize,
    y: &[f32],
    per_token: impl Fn(usize, &mut [f32]),
) {
    let mut want = vec![f32::NAN; rows];
    for t in 0..tokens {
        per_token(t, &mut want);
        for r in 0..rows {
            assert_eq!(
                bits(y[t * ldy + r]),
                bits(want[r]),
                "{what}: rows={rows} tokens={tokens} ldy={ldy} t={t} r={r}"
            );
        }
        // Padding between tokens is left alone.
        for r in rows..ldy.min(y.len() - t * ldy) {
            assert!(y[t * ldy + r].is_nan(), "{what}: padding written");
        }
    }
}

#[test]
fn quantized_matmat_equals_matvec_bit_for_bit() {
    let mut rng = Rng::new(0x5EED_00AA);
    for k in paths() {
        for (i, &(rows, nb, tokens)) in SHAPES.iter().enumerate() {
            let cols = nb * 32;
            let w8 = rng.blocks_q8_0(rows * nb);
            let w4 = rng.blocks_q4_0(rows * nb);
            let x = activations(&mut rng, tokens * nb, i % 2 == 0);
            for ldy in [rows, rows + 3] {
                let path = k.path();
                let mut y = vec![f32::NAN; tokens * ldy];
                k.matmat_q8_0(&w8, rows, cols, &x, tokens, &mut y, ldy);
                check(&format!("{path} q8_0"), rows, tokens, ldy, &y, |t, out| {
                    k.matvec_q8_0(&w8, rows, cols, &x[t * nb..(t + 1) * nb], out)
                });
                // And the scalar twin's bits.
                check(
                    &format!("{path} q8_0 vs scalar"),
                    rows,
                    tokens,
                    ldy,
                    &y,
                    |t, out| {
                        Kernels::scalar().matvec_q8_0(
                            &w8,
                            rows,
                            cols,
                            &x[t * nb..(t + 1) * nb],
                            out,
                        )
                    },
                );
                let mut y = vec![f32::NAN; tokens * ldy];
                k.matmat_q4_0(&w4, rows, cols, &x, tokens, &mut y, ldy);
                check(&format!("{path} q4_0"), rows, tokens, ldy, &y, |t, out| {
                    Kernels::scalar().matvec_q4_0(&w4, rows, cols, &x[t * nb..(t + 1) * nb], out)
                });
            }
        }
    }
}

#[test]
fn float_matmat_equals_matvec_bit_for_bit() {
    let mut rng = Rng::new(0x5EED_00AB);
    for k in paths() {
        for &(rows, cols, tokens) in &[
            (1usize, 1usize, 1usize),
            (3, 7, 2),
            (4, 33, 7),
            (5, 100, 3),
            (64, 128, 5),
            (130, 128, 9),
            (40, 512, 3),
            (17, 1000, 2),
        ] {
            let w = rng.floats(rows * cols, 1.0);
            let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            let x = rng.floats(tokens * cols, 2.0);
            for ldy in [rows, rows + 1] {
                let path = k.path();
                let mut y = vec![f32::NAN; tokens * ldy];
                k.matmat_f32(&w, rows, cols, &x, tokens, &mut y, ldy);
                check(&format!("{path} f32"), rows, tokens, ldy, &y, |t, out| {
                    k.matvec_f32(&w, rows, cols, &x[t * cols..(t + 1) * cols], out)
                });
                let mut y = vec![f32::NAN; tokens * ldy];
                k.matmat_f16(&wh, rows, cols, &x, tokens, &mut y, ldy);
                check(&format!("{path} f16"), rows, tokens, ldy, &y, |t, out| {
                    k.matvec_f16(&wh, rows, cols, &x[t * cols..(t + 1) * cols], out)
                });
            }
        }
    }
}

/// Short or inconsistent slices compute what they can and never panic.
#[test]
fn matmat_trims_lengths() {
    let mut rng = Rng::new(0x5EED_00AC);
    for k in paths() {
        let (rows, nb, tokens) = (9usize, 3usize, 4usize);
        let cols = nb * 32;
        let w = rng.blocks_q8_0(rows * nb);
        let x = activations(&mut rng, tokens * nb, true);
        let mut full = vec![f32::NAN; tokens * rows];
        k.matmat_q8_0(&w, rows, cols, &x, tokens, &mut full, rows);
        // Input for 2.5 tokens: two are computed.
        let mut y = vec![f32::NAN; tokens * rows];
        k.matmat_q8_0(&w, rows, cols, &x[..2 * nb + 1], tokens, &mut y, rows);
        assert_eq!(y[..2 * rows], full[..2 * rows]);
        assert!(y[2 * rows..].iter().all(|v| v.is_nan()));
        // Output for 1.5 tokens: one is computed.
        let mut y = vec![f32::NAN; rows + rows / 2];
        k.matmat_q8_0(&w, rows, cols, &x, tokens, &mut y, rows);
        assert_eq!(y[..rows], full[..rows]);
        assert!(y[rows..].iter().all(|v| v.is_nan()));
        // Weights for 5 rows: 5 rows of each token.
        let mut y = vec![f32::NAN; tokens * rows];
        k.matmat_q8_0(&w[..5 * nb + 2], rows, cols, &x, tokens, &mut y, rows);
        for t in 0..tokens {
            assert_eq!(y[t * rows..t * rows + 5], full[t * rows..t * rows + 5]);
            assert!(y[t * rows + 5..(t + 1) * rows].iter().all(|v| v.is_nan()));
        }
        // ldy smaller than rows: rows are cut to ldy so tokens do not overlap.
        let mut y = vec![f32::NAN; tokens * 4];
        k.matmat_q8_0(&w, rows, cols, &x, tokens, &mut y, 4);
        for t in 0..tokens {
            assert_eq!(y[t * 4..t * 4 + 4], full[t * rows..t * rows + 4]);
        }
        // Nothing to do.
        k.matmat_q8_0(&w, rows, cols, &x, 0, &mut y, rows);
        k.matmat_q8_0(&[], rows, cols, &x, tokens, &mut y, rows);
        k.matmat_q8_0(&w, rows, cols, &[], tokens, &mut y, rows);
        k.matmat_f32(&[], 0, 0, &[], 0, &mut [], 0);
    }
}
