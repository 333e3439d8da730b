//! Read-only weight views borrowed from the model bytes.

use half::f16;
use latte_kernels::{Block, BlockQ4_0, BlockQ8_0, CastError, Kernels, QuantFormat, QK};

use crate::error::{Error, TensorName};
use crate::hash::Fnv64;
use crate::ops;
use crate::parallel::TaskInput;

/// Bytes of one `Q8_0` block (`f16` scale + 32 `i8`).
const Q8_0_BYTES: usize = core::mem::size_of::<BlockQ8_0>();

/// `f32` elements of scratch that hold `blocks` `Q8_0` blocks of quantized
/// activations: `ceil(34 * blocks / 4)` (the blocks are read in place from
/// the `f32` buffer's bytes). Saturates instead of overflowing.
pub const fn q8_0_scratch_len(blocks: usize) -> usize {
    blocks.saturating_mul(Q8_0_BYTES).div_ceil(4)
}

/// Element storage of a [`Matrix`], borrowed in place.
#[derive(Clone, Copy, Debug)]
pub enum MatrixData<'a> {
    /// Little-endian IEEE single precision.
    F32(&'a [f32]),
    /// IEEE half precision, widened to `f32` on use.
    F16(&'a [f16]),
    /// ggml `Q8_0` blocks (GGUF type 8): 32 values per block, `cols / 32`
    /// blocks per row. Multiplied with activations quantized to `Q8_0`.
    Q8_0(&'a [BlockQ8_0]),
    /// ggml `Q4_0` blocks (GGUF type 2): 32 values per block, `cols / 32`
    /// blocks per row. Multiplied with activations quantized to `Q8_0`.
    Q4_0(&'a [BlockQ4_0]),
}

/// `match`es `$data` ([`MatrixData`]): `$w` is bound to the blocks of
/// every quantized variant for `$quant` (generic over
/// [`latte_kernels::QuantFormat`]), and to the values of the float ones for
/// `$f32` and `$f16`. The one place that lists the quantized variants: a
/// new format is a variant above and a line here.
macro_rules! match_data {
    ($data:expr, F32($a:pat) => $f32:expr, F16($h:pat) => $f16:expr, quant($w:ident) => $quant:expr $(,)?) => {
        match $data {
            MatrixData::F32($a) => $f32,
            MatrixData::F16($h) => $f16,
            MatrixData::Q8_0($w) => $quant,
            MatrixData::Q4_0($w) => $quant,
        }
    };
}

impl MatrixData<'_> {
    /// Number of stored elements (32 per quantized block).
    pub fn len(&self) -> usize {
        match_data!(self,
            F32(d) => d.len(),
            F16(d) => d.len(),
            quant(w) => w.len().saturating_mul(QK),
        )
    }

    /// The GGUF/ggml type id: 0 `F32`, 1 `F16`, 8 `Q8_0`, 2 `Q4_0`.
    pub fn ggml_type(&self) -> u32 {
        match_data!(self,
            F32(_) => 0,
            F16(_) => 1,
            quant(w) => block_type(w),
        )
    }

    /// `true` for the block-quantized types (`Q8_0`, `Q4_0`), whose products
    /// take `Q8_0`-quantized activations.
    pub fn is_quantized(&self) -> bool {
        match_data!(self,
            F32(_) => false,
            F16(_) => false,
            quant(_w) => true,
        )
    }

    /// Index of the first block whose `f16` scale is NaN or infinite.
    fn first_bad_scale(&self) -> Option<usize> {
        match_data!(self,
            F32(_) => None,
            F16(_) => None,
            quant(w) => w.iter().position(|b| !b.finite()),
        )
    }

    /// `true` when no element is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Feeds the model fingerprint: the GGUF type id as one byte, then the
    /// elements' little-endian bytes (for blocks, their bytes as stored).
    pub(crate) fn hash_into(&self, h: &mut Fnv64) {
        h.u8(self.ggml_type() as u8);
        match_data!(self,
            F32(d) => h.f32s(d),
            F16(d) => h.f16s(d),
            quant(w) => h.bytes(bytemuck::cast_slice(w)),
        )
    }
}

impl<'a> MatrixData<'a> {
    /// The quantized variant whose blocks have GGUF type id `ggml_type`,
    /// read in place from `bytes` (`None`: no quantized format of that id).
    /// With [`match_data!`], the only place that lists the quantized
    /// variants.
    pub(crate) fn quantized_from_bytes(
        ggml_type: u32,
        bytes: &'a [u8],
    ) -> Option<Result<Self, CastError>> {
        fn cast<'b, B: QuantFormat>(
            bytes: &'b [u8],
            wrap: fn(&'b [B]) -> MatrixData<'b>,
        ) -> Option<Result<MatrixData<'b>, CastError>> {
            Some(latte_kernels::cast_blocks::<B>(bytes).map(wrap))
        }
        match ggml_type {
            t if t == BlockQ8_0::GGML_TYPE => cast(bytes, MatrixData::Q8_0),
            t if t == BlockQ4_0::GGML_TYPE => cast(bytes, MatrixData::Q4_0),
            _ => None,
        }
    }
}

/// The GGUF type id of a slice of blocks (for [`match_data!`] arms).
fn block_type<B: QuantFormat>(_: &[B]) -> u32 {
    B::GGML_TYPE
}

/// A row-major `rows x cols` matrix (`rows` = outputs, `cols` = inputs), the
/// layout of the model file: `y[r] = sum_c W[r][c] x[c]`.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    rows: usize,
    cols: usize,
    data: MatrixData<'a>,
}

impl<'a> Matrix<'a> {
    /// An empty `0 x 0` matrix (placeholder for unused layer slots).
    pub const EMPTY: Matrix<'static> = Matrix {
        rows: 0,
        cols: 0,
        data: MatrixData::F32(&[]),
    };

    /// Wraps `data` as a `rows x cols` matrix.
    ///
    /// Errors: [`Error::MatrixLength`] unless `data` holds exactly
    /// `rows * cols` elements; for quantized data
    /// [`Error::QuantizedRowLength`] unless `cols` is a multiple of 32 (a
    /// block never spans two rows) and [`Error::BlockScaleNotFinite`] when a
    /// block's scale is NaN or infinite (every block is checked, once, here).
    /// These two carry no tensor name (`tensor: None`); the model loader
    /// names the tensor.
    pub fn new(rows: usize, cols: usize, data: MatrixData<'a>) -> Result<Self, Error> {
        match rows.checked_mul(cols) {
            Some(n) if n == data.len() => {}
            _ => {
                return Err(Error::MatrixLength {
                    rows,
                    cols,
                    len: data.len(),
                })
            }
        }
        if data.is_quantized() && !cols.is_multiple_of(QK) {
            return Err(Error::QuantizedRowLength {
                tensor: None,
                ggml_type: data.ggml_type(),
                cols,
            });
        }
        if let Some(block) = data.first_bad_scale() {
            return Err(Error::BlockScaleNotFinite {
                tensor: None,
                ggml_type: data.ggml_type(),
                block,
            });
        }
        Ok(Matrix { rows, cols, data })
    }

    /// Shorthand for [`Matrix::new`] with `f32` data.
    pub fn from_f32(rows: usize, cols: usize, data: &'a [f32]) -> Result<Self, Error> {
        Self::new(rows, cols, MatrixData::F32(data))
    }

    /// Shorthand for [`Matrix::new`] with `f16` data.
    pub fn from_f16(rows: usize, cols: usize, data: &'a [f16]) -> Result<Self, Error> {
        Self::new(rows, cols, MatrixData::F16(data))
    }

    /// Shorthand for [`Matrix::new`] with `Q8_0` blocks (`rows * cols / 32`).
    pub fn from_q8_0(rows: usize, cols: usize, data: &'a [BlockQ8_0]) -> Result<Self, Error> {
        Self::new(rows, cols, MatrixData::Q8_0(data))
    }

    /// Shorthand for [`Matrix::new`] with `Q4_0` blocks (`rows * cols / 32`).
    pub fn from_q4_0(rows: usize, cols: usize, data: &'a [BlockQ4_0]) -> Result<Self, Error> {
        Self::new(rows, cols, MatrixData::Q4_0(data))
    }

    /// Number of rows (outputs).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (inputs).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The stored elements.
    pub fn data(&self) -> MatrixData<'a> {
        self.data
    }

    /// `y[r] = sum_c W[r][c] x[c]` for `r < rows`, the plain scalar float
    /// product (sequential `f32` sums). Quantized weights are dequantized on
    /// the fly and `x` is used as is (not quantized), so this is the float
    /// reference of a quantized matrix, not what a [`crate::Session`]
    /// computes; see [`Matrix::matvec_with`] for that.
    ///
    /// Contract: `x.len() == cols` and `y.len() == rows`. Shorter slices are
    /// not an error: only the common prefix is computed (never a panic).
    pub fn matvec(&self, x: &[f32], y: &mut [f32]) {
        match_data!(self.data,
            F32(w) => ops::matvec_f32(w, self.cols, x, y),
            F16(w) => ops::matvec_f16(w, self.cols, x, y),
            quant(w) => ops::matvec_dequant(w, self.cols, x, y),
        )
    }

    /// `y = W x` as a [`crate::Session`] computes it, with `kernels`: `f32`
    /// and `f16` weights through the kernels' float matrix-vector products;
    /// `Q8_0` and `Q4_0` weights quantize `x` to `Q8_0` into `x_q` first
    /// (`cols / 32` blocks; unused for float weights) and use the integer
    /// kernels, which give the same bits on every kernel path.
    ///
    /// Contract: `x.len() == cols`, `y.len() == rows`, `x_q.len() >= cols /
    /// 32` for quantized weights. Shorter slices are not an error (never a
    /// panic): only what they hold is used.
    pub fn matvec_with(&self, kernels: &Kernels, x: &[f32], x_q: &mut [BlockQ8_0], y: &mut [f32]) {
        let x = &x[..x.len().min(self.cols)];
        let xq: &[BlockQ8_0] = if self.data.is_quantized() {
            let nb = (x.len() / QK).min(x_q.len());
            let xq = &mut x_q[..nb];
            kernels.quantize_q8_0(x, xq);
            xq
        } else {
            &[]
        };
        self.matvec_prepared(kernels, x, xq, y);
    }

    /// [`Matrix::matvec_with`] with the quantized activations taken from
    /// the scratch area `area` (see [`quantize_input`]).
    pub(crate) fn matvec_quantizing(
        &self,
        kernels: &Kernels,
        x: &[f32],
        area: &mut [f32],
        y: &mut [f32],
    ) {
        let xq = quantize_input(kernels, self.data.is_quantized(), x, area);
        self.matvec_prepared(kernels, x, xq, y);
    }

    /// `y = W x` with `x` already quantized to `x_q` for quantized weights.
    pub(crate) fn matvec_prepared(
        &self,
        kernels: &Kernels,
        x: &[f32],
        x_q: &[BlockQ8_0],
        y: &mut [f32],
    ) {
        let (rows, cols) = (self.rows, self.cols);
        match_data!(self.data,
            F32(w) => kernels.matvec_f32(w, rows, cols, x, y),
            F16(w) => kernels.matvec_f16(w, rows, cols, x, y),
            quant(w) => kernels.matvec(w, rows, cols, x_q, y),
        )
    }

    /// Copies row `r` into `out` (widening `f16`, dequantizing the row's
    /// blocks), e.g. an embedding lookup. Returns `false` (and writes
    /// nothing) when `r >= rows`.
    pub fn row_into(&self, r: usize, out: &mut [f32]) -> bool {
        if r >= self.rows {
            return false;
        }
        let start = r * self.cols;
        let (bstart, nb) = (start / QK, self.cols / QK);
        match_data!(self.data,
            F32(w) => {
                if let Some(row) = w.get(start..start + self.cols) {
                    for (o, v) in out.iter_mut().zip(row) {
                        *o = *v;
                    }
                }
            },
            F16(w) => {
                if let Some(row) = w.get(start..start + self.cols) {
                    for (o, v) in out.iter_mut().zip(row) {
                        *o = v.to_f32();
                    }
                }
            },
            quant(w) => dequantize_row(w, bstart, nb, out),
        );
        true
    }

    /// Rows `rows` of every token of a chunk (`out[t * ld + r - rows.start]`)
    /// with `kernels`' matrix-matrix products ([`Kernels::matmat`] and
    /// friends): the input must be the matrix's kind ([`TaskInput`]).
    /// Returns `false`, having written nothing, when the rows are outside
    /// the matrix or the input is of the other kind.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn matmat_rows(
        &self,
        kernels: &Kernels,
        rows: core::ops::Range<usize>,
        input: TaskInput<'_>,
        tokens: usize,
        out: &mut [f32],
        ld: usize,
    ) -> bool {
        let (cols, n) = (self.cols, rows.len());
        let span = |per_row: usize| rows.start * per_row..rows.end * per_row;
        match input {
            TaskInput::F32(x) => match_data!(self.data,
                F32(w) => w
                    .get(span(cols))
                    .map(|w| kernels.matmat_f32(w, n, cols, x, tokens, out, ld))
                    .is_some(),
                F16(w) => w
                    .get(span(cols))
                    .map(|w| kernels.matmat_f16(w, n, cols, x, tokens, out, ld))
                    .is_some(),
                quant(_w) => false,
            ),
            TaskInput::Q8_0(x) => match_data!(self.data,
                F32(_) => false,
                F16(_) => false,
                quant(w) => w
                    .get(span(cols / QK))
                    .map(|w| kernels.matmat(w, n, cols, x, tokens, out, ld))
                    .is_some(),
            ),
        }
    }
}

/// Dequantizes blocks `bstart .. bstart + nb` of `w` into `out` (as many
/// values as fit); nothing when they are not all there.
fn dequantize_row<W: QuantFormat>(w: &[W], bstart: usize, nb: usize, out: &mut [f32]) {
    if let Some(row) = w.get(bstart..bstart + nb) {
        for (b, o) in row.iter().zip(out.chunks_mut(QK)) {
            let mut t = [0.0f32; QK];
            W::dequantize(core::slice::from_ref(b), &mut t);
            o.copy_from_slice(&t[..o.len()]);
        }
    }
}

/// LayerNorm parameters: `weight` (scale) and `bias`, both of length `D`, `f32`.
#[derive(Clone, Copy, Debug)]
pub struct Norm<'a> {
    /// Scale, length `D`.
    pub weight: &'a [f32],
    /// Bias, length `D`.
    pub bias: &'a [f32],
}

impl Norm<'_> {
    /// An empty placeholder.
    pub const EMPTY: Norm<'static> = Norm {
        weight: &[],
        bias: &[],
    };
}

/// Quantizes `x` to `Q8_0` into the bytes of the scratch area `area` and
/// returns the blocks (`x.len() / 32` of them, fewer if `area` is shorter
/// than [`q8_0_scratch_len`]); returns no blocks when `needed` is false.
pub(crate) fn quantize_input<'s>(
    kernels: &Kernels,
    needed: bool,
    x: &[f32],
    area: &'s mut [f32],
) -> &'s [BlockQ8_0] {
    if !needed {
        return &[];
    }
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(area);
    let nb = (x.len() / QK).min(bytes.len() / Q8_0_BYTES);
    match latte_kernels::cast_blocks_mut::<BlockQ8_0>(&mut bytes[..nb * Q8_0_BYTES]) {
        Ok(blocks) => {
            kernels.quantize_q8_0(x, blocks);
            blocks
        }
        // Unreachable: `f32` storage is 4-aligned and the length is whole blocks.
        Err(_) => &[],
    }
}

/// Reinterprets little-endian tensor bytes as `f32` in place.
///
/// Errors: [`Error::Misaligned`] when `bytes` is not 4-byte aligned,
/// [`Error::TensorData`] when its length is not a multiple of 4.
pub(crate) fn cast_f32(bytes: &[u8], tensor: TensorName) -> Result<&[f32], Error> {
    cast(bytes, tensor, 4)
}

/// Reinterprets little-endian tensor bytes as `f16` in place (see [`cast_f32`]).
pub(crate) fn cast_f16(bytes: &[u8], tensor: TensorName) -> Result<&[f16], Error> {
    cast(bytes, tensor, 2)
}

fn cast<T: bytemuck::Pod>(bytes: &[u8], tensor: TensorName, align: usize) -> Result<&[T], Error> {
    bytemuck::try_cast_slice(bytes).map_err(|e| match e {
        bytemuck::PodCastError::TargetAlignmentGreaterAndInputNotAligned => {
            Error::Misaligned { tensor, align }
        }
        _ => Error::TensorData {
            tensor,
            len: bytes.len(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_length_checked() {
        let d = [0.0f32; 6];
        assert!(Matrix::from_f32(2, 3, &d).is_ok());
        assert!(matches!(
            Matrix::from_f32(3, 3, &d),
            Err(Error::MatrixLength { .. })
        ));
        assert!(matches!(
            Matrix::from_f32(usize::MAX, 2, &d),
            Err(Error::MatrixLength { .. })
        ));
    }

    #[test]
    fn row_lookup() {
        let d = [1.0f32, 2.0, 3.0, 4.0];
        let m = Matrix::from_f32(2, 2, &d).unwrap();
        let mut out = [0.0; 2];
        assert!(m.row_into(1, &mut out));
        assert_eq!(out, [3.0, 4.0]);
        assert!(!m.row_into(2, &mut out));
    }

    #[test]
    fn misaligned_cast_is_an_error() {
        let words = [0u32; 4];
        let bytes: &[u8] = bytemuck::cast_slice(&words);
        let name = TensorName::global("output.bias");
        assert!(cast_f32(&bytes[..8], name).is_ok());
        assert!(matches!(
            cast_f32(&bytes[1..9], name),
            Err(Error::Misaligned { align: 4, .. })
        ));
        assert!(matches!(
            cast_f32(&bytes[..7], name),
            Err(Error::TensorData { .. })
        ));
    }
}
