//! Element decoding, transposition and encoding of tensor data.

use anyhow::{bail, Result};
use half::{bf16, f16};
use safetensors::Dtype;

/// Whether a checkpoint dtype can be converted.
pub fn supported(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)
}

/// Decodes little-endian elements of `dtype` to `f32` (F64 is rounded).
pub fn to_f32(dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        other => bail!("dtype {other:?} is not supported (F32, F16, BF16 and F64 are)"),
    })
}

/// Index and value of the first NaN or infinity.
pub fn first_non_finite(values: impl IntoIterator<Item = f32>) -> Option<(usize, f32)> {
    values.into_iter().enumerate().find(|(_, v)| !v.is_finite())
}

/// Decodes raw little-endian `f32` bytes without copying them.
pub fn f32_le(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// The transpose of a row-major `rows x cols` matrix (`cols x rows`).
pub fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    debug_assert_eq!(data.len(), rows * cols);
    let mut out = vec![0.0; data.len()];
    for (r, row) in data.chunks_exact(cols.max(1)).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
    out
}

/// Little-endian `f32` bytes.
pub fn encode_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Little-endian IEEE half bytes (round to nearest even). Errors on the first
/// value outside the half range.
pub fn encode_f16(values: &[f32]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(values.len() * 2);
    for (i, &v) in values.iter().enumerate() {
        let h = f16::from_f32(v);
        if h.is_infinite() {
            bail!("value {v} at element {i} is outside the f16 range (largest 65504); convert with --dtype f32");
        }
        out.extend_from_slice(&h.to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_dtype() {
        // 1.5 and -2 in each encoding, written out by hand.
        let f32b = [0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0];
        let f16b = [0x00, 0x3e, 0x00, 0xc0];
        let bf16b = [0xc0, 0x3f, 0x00, 0xc0];
        let f64b = [0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0xc0];
        for (dt, b) in [
            (Dtype::F32, &f32b[..]),
            (Dtype::F16, &f16b),
            (Dtype::BF16, &bf16b),
            (Dtype::F64, &f64b),
        ] {
            assert_eq!(to_f32(dt, b).unwrap(), [1.5, -2.0], "{dt:?}");
        }
        assert!(to_f32(Dtype::I32, &[0; 4]).is_err());
    }

    #[test]
    fn transposes() {
        // [[1, 2, 3], [4, 5, 6]] -> [[1, 4], [2, 5], [3, 6]]
        assert_eq!(
            transpose(&[1., 2., 3., 4., 5., 6.], 2, 3),
            [1., 4., 2., 5., 3., 6.]
        );
    }

    #[test]
    fn encodes_f16_and_refuses_overflow() {
        assert_eq!(encode_f16(&[1.5, -2.0]).unwrap(), [0x00, 0x3e, 0x00, 0xc0]);
        assert!(encode_f16(&[1.0, 70000.0]).is_err());
        assert_eq!(first_non_finite([1.0, f32::NAN]).map(|(i, _)| i), Some(1));
    }
}
