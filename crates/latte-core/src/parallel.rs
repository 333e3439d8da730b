//! Splitting the matrix products of a step or a prefill chunk over threads,
//! without threads in the core.
//!
//! Every matrix product a [`crate::Session`] computes is handed, as a
//! [`RowTask`], to a [`Parallel`] the caller chooses. A task is a pure
//! function of its inputs: output row `r` of token `t` depends only on
//! weight row `r` and token `t`'s input, so any split of the rows over any
//! number of workers gives the same bits as computing them all in one go
//! ([`RowTask::compute`] on a row range never depends on the range).
//!
//! * `no_std` callers ignore all this: [`crate::Session::step`],
//!   [`crate::Session::feed`] and [`crate::Session::prefill`] use
//!   [`Sequential`] (everything on the calling thread).
//! * `std` callers implement [`Parallel`]: compute some row ranges on other
//!   threads (with [`RowTask::compute`] into a buffer of their own, then
//!   copy them into place) and the rest on the calling thread, and return
//!   when all are done; then pass it to [`crate::Session::step_with`] /
//!   [`crate::Session::prefill_with`]. The `latte` CLI has a persistent
//!   pool (`tools/latte-cli/src/threads.rs`).
//!
//! A task borrows the model's weights for `'a` (the model's lifetime) and its
//! input for a shorter `'x`. A worker that outlives one call (a persistent
//! pool) keeps a copy of the input and rebuilds the task around it with
//! [`RowTask::with_input`]; everything else in a task is `'a` or `Copy`.

use core::ops::Range;

use latte_kernels::{BlockQ8_0, Kernels, QK};

use crate::ops;
use crate::tensor::Matrix;

/// The input of a [`RowTask`]: `tokens` vectors of `cols` values, back to
/// back, as `f32` (for `f32`/`f16` matrices) or quantized to `Q8_0` (for
/// `Q8_0`/`Q4_0` matrices: `cols / 32` blocks per token).
#[derive(Clone, Copy, Debug)]
pub enum TaskInput<'x> {
    /// `f32` values, `cols` per token.
    F32(&'x [f32]),
    /// `Q8_0` blocks, `cols / 32` per token.
    Q8_0(&'x [BlockQ8_0]),
}

impl TaskInput<'_> {
    /// Number of elements (values or blocks).
    pub fn len(&self) -> usize {
        match self {
            TaskInput::F32(x) => x.len(),
            TaskInput::Q8_0(x) => x.len(),
        }
    }

    /// `true` when there is no input.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What happens to each product value `y[t][r]` after the matrix product,
/// before it is stored: nothing, `+ bias[r]`, or `gelu_tanh(y + bias[r])`
/// (the MLP's first layer). Applying it here lets it run on the thread that
/// computed the value.
#[derive(Clone, Copy, Debug, Default)]
pub enum Epilogue<'a> {
    /// The product as is.
    #[default]
    None,
    /// `y + bias[r]`.
    Bias(&'a [f32]),
    /// `gelu_tanh(y + bias[r])` ([`crate::ops::gelu_tanh`]).
    BiasGelu(&'a [f32]),
}

/// One matrix product over a chunk of `tokens` inputs:
/// `out[t][r] = epilogue(sum_c W[r][c] x_t[c])` for `r < rows`,
/// `t < tokens`, computed with the model's kernels
/// ([`Kernels::matmat_q8_0`] and friends, whose every value has the bits of
/// the matrix-vector product). Cheap to copy; `Send` and `Sync`.
#[derive(Clone, Copy, Debug)]
pub struct RowTask<'a, 'x> {
    kernels: Kernels,
    matrix: Matrix<'a>,
    epilogue: Epilogue<'a>,
    input: TaskInput<'x>,
    tokens: usize,
}

impl<'a, 'x> RowTask<'a, 'x> {
    /// `matrix` times `tokens` inputs with `kernels`, no epilogue. The input
    /// must match the matrix: [`TaskInput::F32`] for `f32`/`f16` weights,
    /// [`TaskInput::Q8_0`] for quantized ones (otherwise no product is
    /// computed and [`RowTask::compute`] writes NaN).
    pub fn new(kernels: &Kernels, matrix: Matrix<'a>, input: TaskInput<'x>, tokens: usize) -> Self {
        RowTask {
            kernels: *kernels,
            matrix,
            epilogue: Epilogue::None,
            input,
            tokens,
        }
    }

    /// The same task with `epilogue` applied to every value.
    pub fn with_epilogue(self, epilogue: Epilogue<'a>) -> Self {
        RowTask { epilogue, ..self }
    }

    /// The same task on another input (of the same shape), e.g. a copy a
    /// worker thread owns.
    pub fn with_input<'y>(&self, input: TaskInput<'y>) -> RowTask<'a, 'y> {
        RowTask {
            kernels: self.kernels,
            matrix: self.matrix,
            epilogue: self.epilogue,
            input,
            tokens: self.tokens,
        }
    }

    /// Output rows (the matrix's rows).
    pub fn rows(&self) -> usize {
        self.matrix.rows()
    }

    /// Input columns.
    pub fn cols(&self) -> usize {
        self.matrix.cols()
    }

    /// Tokens in the chunk (1 for a decode step).
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// The input, `tokens` vectors back to back.
    pub fn input(&self) -> TaskInput<'x> {
        self.input
    }

    /// The matrix.
    pub fn matrix(&self) -> &Matrix<'a> {
        &self.matrix
    }

    /// The epilogue.
    pub fn epilogue(&self) -> Epilogue<'a> {
        self.epilogue
    }

    /// Rough cost in multiply-adds, to decide whether splitting pays:
    /// `tokens * rows * cols`, plus about 32 per value for a GELU
    /// epilogue (a `tanhf`). Saturates.
    pub fn work(&self) -> usize {
        let extra = match self.epilogue {
            Epilogue::BiasGelu(_) => 32,
            _ => 0,
        };
        self.tokens
            .saturating_mul(self.rows())
            .saturating_mul(self.cols().saturating_add(extra))
    }

    /// Part `part` of `parts` of the rows: contiguous, in order, covering
    /// `0..rows` once over `part = 0..parts`, each a multiple of 4 rows
    /// (the SIMD kernels' row group) except the last. Empty for
    /// `part >= parts`.
    pub fn part(&self, part: usize, parts: usize) -> Range<usize> {
        let rows = self.rows();
        if part >= parts {
            return rows..rows;
        }
        let per = rows.div_ceil(parts).div_ceil(4).saturating_mul(4);
        let start = part.saturating_mul(per).min(rows);
        start..start.saturating_add(per).min(rows)
    }

    /// Computes rows `rows` (clamped to `0..self.rows()`) of every token:
    /// `out[t * ld + (r - rows.start)]`. The values do not depend on the
    /// range or on what else is computed, so splitting a task by rows
    /// gives the bits of computing it whole.
    ///
    /// Never panics: needs `ld >= rows.len()` (else nothing is computed);
    /// computes the tokens that are whole in the input and fit in `out`
    /// (token `t` at `out[t * ld ..][..rows.len()]`) and leaves the rest
    /// of `out` alone. An input of the wrong kind for the matrix (a
    /// [`TaskInput::F32`] for quantized weights, or the reverse) computes
    /// no product: those outputs are set to NaN, never left stale.
    pub fn compute(&self, rows: Range<usize>, out: &mut [f32], ld: usize) {
        let m = &self.matrix;
        let (cols, total) = (m.cols(), m.rows());
        let (r0, r1) = (rows.start.min(total), rows.end.min(total));
        if r0 >= r1 || ld < r1 - r0 || out.len() < r1 - r0 {
            return;
        }
        let n = r1 - r0;
        // Tokens whole in the input, whose outputs fit.
        let per_token = match self.input {
            TaskInput::F32(_) => cols,
            TaskInput::Q8_0(_) => cols / QK,
        };
        let mut tokens = self.tokens;
        if let Some(whole) = self.input.len().checked_div(per_token) {
            tokens = tokens.min(whole);
        }
        tokens = tokens.min((out.len() - n).checked_div(ld).map_or(1, |t| t + 1));
        if tokens == 0 {
            return;
        }
        let k = &self.kernels;
        if !m.matmat_rows(k, r0..r1, self.input, tokens, out, ld) {
            // The input is not the matrix's kind: no product, and no stale
            // values either (the computable outputs become NaN).
            for t in 0..tokens {
                if let Some(y) = out.get_mut(t * ld..t * ld + n) {
                    y.fill(f32::NAN);
                }
            }
            return;
        }
        let (bias, gelu) = match self.epilogue {
            Epilogue::None => return,
            Epilogue::Bias(b) => (b, false),
            Epilogue::BiasGelu(b) => (b, true),
        };
        let bias = bias.get(r0..r1.min(bias.len())).unwrap_or(&[]);
        for t in 0..tokens {
            let y = &mut out[t * ld..t * ld + n];
            // The same operations as `add_assign` then `gelu_tanh_in_place`
            // on a whole vector: the GELU is elementwise and every path's
            // `gelu_tanh_inplace` gives the scalar function's bits.
            let y = &mut y[..bias.len().min(n)];
            ops::add_assign(y, bias);
            if gelu {
                k.gelu_tanh_inplace(y);
            }
        }
    }
}

/// Runs the [`RowTask`]s of a step or prefill chunk; implemented by the
/// caller to spread rows over threads (module documentation).
///
/// `run` must leave `out[t * task.rows() + r]` holding the values of
/// `task.compute(0..task.rows(), out, task.rows())`, however it splits the
/// rows, and return only when they are all written. `out` is exactly
/// `task.tokens() * task.rows()` long. The core calls it once per matrix
/// product, from the thread that drives the session, in order.
pub trait Parallel<'a> {
    /// Computes every row of `task` into `out` (token-major).
    fn run(&self, task: &RowTask<'a, '_>, out: &mut [f32]);
}

/// Everything on the calling thread: what the session methods without a
/// [`Parallel`] argument use.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sequential;

impl<'a> Parallel<'a> for Sequential {
    fn run(&self, task: &RowTask<'a, '_>, out: &mut [f32]) {
        let rows = task.rows();
        task.compute(0..rows, out, rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_rows_once() {
        let w = [0.0f32; 4 * 1000];
        for rows in [1usize, 3, 4, 5, 64, 130, 1000] {
            let m = Matrix::from_f32(rows, 4, &w[..rows * 4]).unwrap();
            let t = RowTask::new(&Kernels::scalar(), m, TaskInput::F32(&[]), 1);
            for parts in 1..=9 {
                let mut next = 0;
                for p in 0..parts {
                    let r = t.part(p, parts);
                    assert_eq!(r.start, next, "rows {rows} parts {parts}");
                    assert!(r.end >= r.start);
                    if r.end < rows {
                        assert_eq!(r.start % 4, 0);
                        assert_eq!(r.end % 4, 0);
                    }
                    next = r.end;
                }
                assert_eq!(next, rows);
                assert!(t.part(parts, parts).is_empty());
            }
        }
    }

    #[test]
    fn split_equals_whole_with_epilogues() {
        let (rows, cols, tokens) = (13usize, 8usize, 3usize);
        let w: [f32; 13 * 8] = core::array::from_fn(|i| (i as f32 * 0.37).sin());
        let x: [f32; 3 * 8] = core::array::from_fn(|i| (i as f32 * 0.91).cos());
        let b: [f32; 13] = core::array::from_fn(|i| i as f32 * 0.1 - 0.5);
        let m = Matrix::from_f32(rows, cols, &w).unwrap();
        for ep in [Epilogue::None, Epilogue::Bias(&b), Epilogue::BiasGelu(&b)] {
            let t =
                RowTask::new(&Kernels::scalar(), m, TaskInput::F32(&x), tokens).with_epilogue(ep);
            let mut whole = [f32::NAN; 13 * 3];
            Sequential.run(&t, &mut whole);
            // Reference: matvec, add, gelu.
            for tk in 0..tokens {
                let mut y = [0.0f32; 13];
                m.matvec(&x[tk * cols..(tk + 1) * cols], &mut y);
                if let Epilogue::Bias(b) | Epilogue::BiasGelu(b) = ep {
                    ops::add_assign(&mut y, b);
                }
                if let Epilogue::BiasGelu(_) = ep {
                    ops::gelu_tanh_in_place(&mut y);
                }
                for r in 0..rows {
                    assert_eq!(whole[tk * rows + r].to_bits(), y[r].to_bits());
                }
            }
            // Any split, into separate buffers, gives the same bits.
            for parts in 1..=5 {
                let mut got = [f32::NAN; 13 * 3];
                for p in 0..parts {
                    let r = t.part(p, parts);
                    let mut buf = [f32::NAN; 13 * 3];
                    t.compute(r.clone(), &mut buf, r.len());
                    for tk in 0..tokens {
                        for (i, row) in r.clone().enumerate() {
                            got[tk * rows + row] = buf[tk * r.len() + i];
                        }
                    }
                }
                assert_eq!(got.map(f32::to_bits), whole.map(f32::to_bits));
            }
        }
    }

    #[test]
    fn compute_never_panics() {
        let w = [1.0f32; 6];
        let m = Matrix::from_f32(2, 3, &w).unwrap();
        let x = [1.0f32; 6];
        let t = RowTask::new(&Kernels::scalar(), m, TaskInput::F32(&x), 2)
            .with_epilogue(Epilogue::Bias(&[1.0]));
        let mut out = [f32::NAN; 4];
        t.compute(0..2, &mut out, 2);
        assert_eq!(out, [4.0, 3.0, 4.0, 3.0]);
        t.compute(1..9, &mut out, 1);
        #[allow(clippy::reversed_empty_ranges)]
        t.compute(5..1, &mut out, 2);
        t.compute(0..2, &mut out, 1);
        t.compute(0..2, &mut [], 2);
        t.compute(0..2, &mut out[..3], 2);
        t.with_input(TaskInput::F32(&x[..4]))
            .compute(0..2, &mut out, 2);
        // Input of the wrong kind: nothing.
        let mut out = [f32::NAN; 4];
        t.with_input(TaskInput::Q8_0(&[]))
            .compute(0..2, &mut out, 2);
        assert!(out.iter().all(|v| v.is_nan()));
        assert_eq!(t.work(), 2 * 2 * 3);
    }

    #[test]
    fn wrong_input_kind_leaves_no_stale_output() {
        let w = [1.0f32; 64];
        let m = Matrix::from_f32(2, 32, &w).unwrap();
        let xq = [BlockQ8_0::default(); 2];
        let t = RowTask::new(&Kernels::scalar(), m, TaskInput::Q8_0(&xq), 2);
        let mut out = [7.0f32; 4];
        t.compute(0..2, &mut out, 2);
        assert!(out.iter().all(|v| v.is_nan()), "{out:?}");
    }
}
