//! Read-only weight views borrowed from the model bytes.

use half::f16;

use crate::error::{Error, TensorName};
use crate::ops;

/// Element storage of a [`Matrix`], borrowed in place.
#[derive(Clone, Copy, Debug)]
pub enum MatrixData<'a> {
    /// Little-endian IEEE single precision.
    F32(&'a [f32]),
    /// IEEE half precision, widened to `f32` on use.
    F16(&'a [f16]),
}

impl MatrixData<'_> {
    /// Number of stored elements.
    pub fn len(&self) -> usize {
        match self {
            MatrixData::F32(d) => d.len(),
            MatrixData::F16(d) => d.len(),
        }
    }

    /// `true` when no element is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
    /// `rows * cols` elements.
    pub fn new(rows: usize, cols: usize, data: MatrixData<'a>) -> Result<Self, Error> {
        match rows.checked_mul(cols) {
            Some(n) if n == data.len() => Ok(Matrix { rows, cols, data }),
            _ => Err(Error::MatrixLength {
                rows,
                cols,
                len: data.len(),
            }),
        }
    }

    /// Shorthand for [`Matrix::new`] with `f32` data.
    pub fn from_f32(rows: usize, cols: usize, data: &'a [f32]) -> Result<Self, Error> {
        Self::new(rows, cols, MatrixData::F32(data))
    }

    /// Shorthand for [`Matrix::new`] with `f16` data.
    pub fn from_f16(rows: usize, cols: usize, data: &'a [f16]) -> Result<Self, Error> {
        Self::new(rows, cols, MatrixData::F16(data))
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

    /// `y[r] = sum_c W[r][c] x[c]` for `r < rows`.
    ///
    /// Contract: `x.len() == cols` and `y.len() == rows`. Shorter slices are
    /// not an error: only the common prefix is computed (never a panic).
    pub fn matvec(&self, x: &[f32], y: &mut [f32]) {
        match self.data {
            MatrixData::F32(w) => ops::matvec_f32(w, self.cols, x, y),
            MatrixData::F16(w) => ops::matvec_f16(w, self.cols, x, y),
        }
    }

    /// Copies row `r` into `out` (widening `f16`), e.g. an embedding lookup.
    /// Returns `false` (and writes nothing) when `r >= rows`.
    pub fn row_into(&self, r: usize, out: &mut [f32]) -> bool {
        if r >= self.rows {
            return false;
        }
        let start = r * self.cols;
        match self.data {
            MatrixData::F32(w) => {
                if let Some(row) = w.get(start..start + self.cols) {
                    for (o, v) in out.iter_mut().zip(row) {
                        *o = *v;
                    }
                }
            }
            MatrixData::F16(w) => {
                if let Some(row) = w.get(start..start + self.cols) {
                    for (o, v) in out.iter_mut().zip(row) {
                        *o = v.to_f32();
                    }
                }
            }
        }
        true
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
