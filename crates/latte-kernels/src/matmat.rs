//! Matrix-matrix products: one matrix times a chunk of token vectors (the
//! prompt prefill), each `(row, token)` value bit for bit the
//! matrix-vector product's.
//!
//! # Specification
//!
//! `y[t * ldy + r] = matvec(W, x_t)[r]` for `t < tokens`, `r < rows`, where
//! `x_t` is token `t`'s input (`x[t * cols ..]`, or `cols / 32` `Q8_0`
//! blocks from `x_q[t * cols / 32 ..]`) and `matvec` is the same path's
//! [`Kernels::matvec_q8_0`] (`_q4_0`, `_f32`, `_f16`). So every result has
//! the bits of the matrix-vector product, for the quantized types *and*
//! for `f32`/`f16` (whose SIMD sums are reassociated, but the same way in
//! both): a prefill computed with these gives exactly what the same tokens
//! fed one by one give.
//!
//! # How
//!
//! The weights are walked once per chunk instead of once per token: rows
//! are taken in blocks of about [`ROW_BLOCK_BYTES`] (4-row multiples, the
//! row grouping of the SIMD matrix-vector kernels), and each block is
//! multiplied with every token of the chunk while it sits in the L1 cache.
//! The block's products are the path's own matrix-vector kernel applied to
//! the block's rows, which is what makes the results identical: every path
//! computes a row's value independently of the other rows in its call. A
//! path that only brings a matrix-vector kernel (a new ISA, a
//! microcontroller) gets this blocked product for free.
//!
//! The AVX2 and AVX-VNNI paths have their own kernel for quantized rows of
//! at most four blocks (128 columns; most matrices of a model of width
//! 128): the matrix-vector kernel leaves half of its reduction lanes empty
//! there, the matrix-matrix one fills them with a second token
//! (`quant_matmat_small!` in `x86_avx2/matmat.rs`), with the same float steps per
//! value.

use half::f16;

use crate::block::{BlockQ4_0, BlockQ8_0, QK};
use crate::format::QuantFormat;
use crate::kernels::Kernels;

/// A path's own matrix-matrix kernel for one block of rows and every token:
/// `(w_rows, rows, x, tokens, y, ldy)`, `y[t * ldy + r]`; returns `false`
/// (having written nothing) when it does not take these inputs.
type BlockKernel<'k, W, X> = &'k dyn Fn(&[W], usize, &[X], usize, &mut [f32], usize) -> bool;

/// Bytes of weights multiplied with every token of a chunk before moving on
/// to the next rows: half of a 32 KiB L1 data cache, so that the inputs of
/// several tokens stay there too.
pub const ROW_BLOCK_BYTES: usize = 16 * 1024;

/// Rows per block for rows of `row_bytes` bytes: a multiple of 4, at least 4.
fn rows_per_block(row_bytes: usize) -> usize {
    let r = ROW_BLOCK_BYTES / row_bytes.max(1);
    (r / 4).max(1) * 4
}

/// The blocked driver. `stride_w` / `stride_x` are a row's / a token's
/// length in `W` / `X` units; `mv(w_rows, rows, x, y)` is the path's
/// matrix-vector product of `rows` rows; `mm`, if any, the path's
/// matrix-matrix kernel, tried first on each block of rows.
#[allow(clippy::too_many_arguments)]
fn blocked<W, X>(
    w: &[W],
    rows: usize,
    stride_w: usize,
    x: &[X],
    stride_x: usize,
    tokens: usize,
    y: &mut [f32],
    ldy: usize,
    mv: impl Fn(&[W], usize, &[X], &mut [f32]),
    mm: Option<BlockKernel<'_, W, X>>,
) {
    // What can be computed without reading or writing out of bounds.
    let mut rows = rows;
    if let Some(available) = w.len().checked_div(stride_w) {
        rows = rows.min(available);
    }
    let mut tokens = tokens;
    if let Some(available) = x.len().checked_div(stride_x) {
        tokens = tokens.min(available);
    }
    if tokens > 1 {
        // Tokens' outputs must not overlap.
        rows = rows.min(ldy);
    }
    if rows == 0 || tokens == 0 || y.len() < rows {
        return;
    }
    // Token t writes y[t * ldy .. t * ldy + rows].
    tokens = tokens.min((y.len() - rows).checked_div(ldy).map_or(1, |n| n + 1));
    let x_of = |t: usize| &x[t * stride_x..t * stride_x + stride_x];
    if tokens == 1 {
        mv(w, rows, x_of(0), &mut y[..rows]);
        return;
    }
    let elem = core::mem::size_of::<W>().max(1);
    let block = rows_per_block(stride_w.saturating_mul(elem));
    let mut r0 = 0;
    while r0 < rows {
        let r1 = rows.min(r0 + block);
        let wb = &w[r0 * stride_w..r1 * stride_w];
        let done = mm.is_some_and(|mm| {
            mm(
                wb,
                r1 - r0,
                &x[..tokens * stride_x],
                tokens,
                &mut y[r0..],
                ldy,
            )
        });
        if done {
            r0 = r1;
            continue;
        }
        for t in 0..tokens {
            let at = t * ldy;
            mv(wb, r1 - r0, x_of(t), &mut y[at + r0..at + r1]);
        }
        r0 = r1;
    }
}

impl Kernels {
    /// `y[t * ldy + r]` = row `r` of the row-major `rows x cols` matrix of
    /// `W` blocks `w_rows` times token `t`'s activations, for `t < tokens`:
    /// `x_q` holds the tokens' activations back to back (`cols / 32` blocks
    /// each). Every value has exactly the bits of [`Kernels::matvec`] on
    /// that token (module documentation).
    ///
    /// Lengths are trimmed, never a panic: computes `min(rows, w_rows.len()
    /// / (cols / 32))` rows (also at most `ldy` when there are several
    /// tokens) of the tokens that are whole in `x_q` and whose outputs fit
    /// in `y`; the rest of `y` is left alone. `ldy >= rows` for the usual
    /// token-major layout.
    #[allow(clippy::too_many_arguments)]
    pub fn matmat<W: QuantFormat>(
        &self,
        w_rows: &[W],
        rows: usize,
        cols: usize,
        x_q: &[W::Act],
        tokens: usize,
        y: &mut [f32],
        ldy: usize,
    ) {
        let nb = cols / QK;
        if nb == 0 {
            return self.zeros(rows, tokens, y, ldy);
        }
        // The path's own kernel, for rows it takes. `self` exists only for
        // a path the CPU supports; the driver passes `nb`-block rows, whole
        // tokens and an output that holds `(tokens - 1) * ldy + rows` values.
        let small = W::kernels(self.path())
            .matmat
            .filter(|&(_, max)| nb <= max)
            .map(|(f, _)| f);
        let mm = move |w: &[W], _: usize, x: &[W::Act], t: usize, y: &mut [f32], ldy: usize| {
            // SAFETY: see above.
            small.is_some_and(|f| unsafe { f(w, nb, x, t, y, ldy) })
        };
        blocked(
            w_rows,
            rows,
            nb,
            x_q,
            nb,
            tokens,
            y,
            ldy,
            |w, r, x, y| self.matvec(w, r, cols, x, y),
            small.is_some().then_some(&mm as BlockKernel<'_, W, W::Act>),
        )
    }

    /// [`Kernels::matmat`] for `Q8_0` weights.
    #[allow(clippy::too_many_arguments)]
    pub fn matmat_q8_0(
        &self,
        w_rows: &[BlockQ8_0],
        rows: usize,
        cols: usize,
        x_q: &[BlockQ8_0],
        tokens: usize,
        y: &mut [f32],
        ldy: usize,
    ) {
        self.matmat(w_rows, rows, cols, x_q, tokens, y, ldy)
    }

    /// [`Kernels::matmat`] for `Q4_0` weights.
    #[allow(clippy::too_many_arguments)]
    pub fn matmat_q4_0(
        &self,
        w_rows: &[BlockQ4_0],
        rows: usize,
        cols: usize,
        x_q: &[BlockQ8_0],
        tokens: usize,
        y: &mut [f32],
        ldy: usize,
    ) {
        self.matmat(w_rows, rows, cols, x_q, tokens, y, ldy)
    }

    /// Like [`Kernels::matmat_q8_0`] for an `f32` matrix and `f32` inputs
    /// (`cols` values per token in `x`); every value has the bits of
    /// [`Kernels::matvec_f32`].
    #[allow(clippy::too_many_arguments)]
    pub fn matmat_f32(
        &self,
        w: &[f32],
        rows: usize,
        cols: usize,
        x: &[f32],
        tokens: usize,
        y: &mut [f32],
        ldy: usize,
    ) {
        if cols == 0 {
            return self.zeros(rows, tokens, y, ldy);
        }
        blocked(
            w,
            rows,
            cols,
            x,
            cols,
            tokens,
            y,
            ldy,
            |w, r, x, y| self.matvec_f32(w, r, cols, x, y),
            None,
        )
    }

    /// Like [`Kernels::matmat_f32`] for `f16` weights.
    #[allow(clippy::too_many_arguments)]
    pub fn matmat_f16(
        &self,
        w: &[f16],
        rows: usize,
        cols: usize,
        x: &[f32],
        tokens: usize,
        y: &mut [f32],
        ldy: usize,
    ) {
        if cols == 0 {
            return self.zeros(rows, tokens, y, ldy);
        }
        blocked(
            w,
            rows,
            cols,
            x,
            cols,
            tokens,
            y,
            ldy,
            |w, r, x, y| self.matvec_f16(w, r, cols, x, y),
            None,
        )
    }

    /// Empty rows (no columns): every computable output is 0, as the
    /// matrix-vector products make it.
    fn zeros(&self, rows: usize, tokens: usize, y: &mut [f32], ldy: usize) {
        let rows = if tokens > 1 { rows.min(ldy) } else { rows };
        for t in 0..tokens {
            let Some(start) = t.checked_mul(ldy) else {
                return;
            };
            match y.get_mut(start..) {
                Some(rest) if !rest.is_empty() => {
                    let n = rows.min(rest.len());
                    rest[..n].fill(0.0);
                }
                _ => return,
            }
            if ldy == 0 {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_blocks_are_multiples_of_four() {
        assert_eq!(rows_per_block(512), 32);
        assert_eq!(rows_per_block(136), 120);
        assert_eq!(rows_per_block(100_000), 4);
        assert_eq!(rows_per_block(0), ROW_BLOCK_BYTES / 4 * 4);
    }

    #[test]
    fn trims_instead_of_panicking() {
        let k = Kernels::scalar();
        let w = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let x = [1.0f32, 1.0, 1.0, 2.0, 2.0, 2.0];
        // 2 rows x 3 cols, 2 tokens, ldy 2.
        let mut y = [f32::NAN; 4];
        k.matmat_f32(&w, 2, 3, &x, 2, &mut y, 2);
        assert_eq!(y, [6.0, 15.0, 12.0, 30.0]);
        // y too short for the second token: only the first is written.
        let mut y = [f32::NAN; 3];
        k.matmat_f32(&w, 2, 3, &x, 2, &mut y, 2);
        assert_eq!(y[..2], [6.0, 15.0]);
        assert!(y[2].is_nan());
        // Padded layout (ldy 3) leaves the gaps alone.
        let mut y = [f32::NAN; 5];
        k.matmat_f32(&w, 2, 3, &x, 2, &mut y, 3);
        assert_eq!((y[0], y[1], y[3], y[4]), (6.0, 15.0, 12.0, 30.0));
        assert!(y[2].is_nan());
        // More tokens or rows than given: trimmed.
        let mut y = [f32::NAN; 8];
        k.matmat_f32(&w, 9, 3, &x[..4], 5, &mut y, 2);
        assert_eq!(y[..2], [6.0, 15.0]);
        // ldy 0 with several tokens: nothing overlaps (no rows).
        k.matmat_f32(&w, 2, 3, &x, 2, &mut y, 0);
        // No columns: zeros.
        let mut y = [f32::NAN; 4];
        k.matmat_f32(&[], 2, 0, &[], 2, &mut y, 2);
        assert_eq!(y, [0.0; 4]);
        let mut y = [f32::NAN; 4];
        k.matmat_q8_0(&[], 2, 16, &[], 2, &mut y, 2);
        assert_eq!(y, [0.0; 4]);
        k.matmat_q4_0(&[], 2, 16, &[], 2, &mut y, 0);
        k.matmat_f16(&[], 2, 0, &[], 3, &mut [], 2);
    }
}
