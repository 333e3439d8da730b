//! Tensor descriptions.

use crate::types::GgmlType;

/// Maximum number of dimensions of a tensor.
pub const MAX_DIMS: usize = 4;

/// One tensor of a parsed file: its description and its data bytes.
///
/// `ne[0]` is the innermost (contiguous) dimension; dimensions past `n_dims`
/// are 1. A matrix of `rows` rows of `cols` values has `ne = [cols, rows, 1, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TensorInfo<'a> {
    /// Tensor name (unique within the file).
    pub name: &'a str,
    /// Number of dimensions, 1..=4.
    pub n_dims: u32,
    /// Size of each dimension, innermost first; unused dimensions are 1.
    pub ne: [u64; MAX_DIMS],
    /// Element type.
    pub ty: GgmlType,
    /// Offset of the data from the start of the data section (a multiple of the alignment).
    pub offset: u64,
    /// The data bytes, exactly `ty.bytes_for(n_elements())` long.
    pub data: &'a [u8],
}

impl TensorInfo<'_> {
    /// The used dimensions, innermost first (`n_dims` entries).
    pub fn shape(&self) -> &[u64] {
        let n = usize::try_from(self.n_dims)
            .unwrap_or(MAX_DIMS)
            .min(MAX_DIMS);
        self.ne.get(..n).unwrap_or(&self.ne)
    }

    /// Number of columns: the innermost dimension `ne[0]`.
    pub fn cols(&self) -> u64 {
        self.ne[0]
    }

    /// Number of rows: the product of all dimensions but the innermost.
    pub fn rows(&self) -> u64 {
        self.ne[1]
            .saturating_mul(self.ne[2])
            .saturating_mul(self.ne[3])
    }

    /// Total number of elements (checked not to overflow when the file was parsed).
    pub fn n_elements(&self) -> u64 {
        self.cols().saturating_mul(self.rows())
    }
}
