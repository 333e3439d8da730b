//! The quantized block formats (ggml's `block_q8_0` and `block_q4_0`) and
//! checked casts from tensor bytes.

use core::fmt;

use crate::format::{f16_finite, QuantFormat, QuantKernels};
use crate::kernels::KernelPath;
use crate::scalar;

/// Values per quantized block (ggml's `QK8_0` and `QK4_0`).
pub const QK: usize = 32;

/// 32 values as `d * qs[j]`: GGUF/ggml type 8 (`Q8_0`), 34 bytes.
///
/// `d` holds the bits of an IEEE half-precision scale (little-endian in the
/// file, like every field). The layout is exactly ggml's `block_q8_0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlockQ8_0 {
    /// Scale, `f16` bits.
    pub d: u16,
    /// Quants, value `j` is `d * qs[j]`.
    pub qs: [i8; QK],
}

/// 32 values as `d * (nibble - 8)`: GGUF/ggml type 2 (`Q4_0`), 18 bytes.
///
/// Value `j < 16` is the low nibble of `qs[j]`, value `j + 16` its high
/// nibble, exactly ggml's `block_q4_0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlockQ4_0 {
    /// Scale, `f16` bits.
    pub d: u16,
    /// Packed quants: `qs[j] = q[j] | q[j + 16] << 4`, each `q` in `0..=15`.
    pub qs: [u8; QK / 2],
}

const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(core::mem::align_of::<BlockQ8_0>() == 2);
const _: () = assert!(core::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(core::mem::align_of::<BlockQ4_0>() == 2);

// SAFETY: `repr(C)` with a `u16` followed by byte arrays of even length: size
// 34 = 2 + 32 and alignment 2 (asserted above), so there is no padding; every
// bit pattern is a valid `u16`/`i8`.
unsafe impl bytemuck::Zeroable for BlockQ8_0 {}
// SAFETY: as for `Zeroable` above: no padding, all fields `Pod`, `Copy`, `'static`.
unsafe impl bytemuck::Pod for BlockQ8_0 {}
// SAFETY: `repr(C)`, `u16` then `[u8; 16]`: size 18 = 2 + 16, alignment 2
// (asserted above), no padding, every bit pattern valid.
unsafe impl bytemuck::Zeroable for BlockQ4_0 {}
// SAFETY: as for `Zeroable` above: no padding, all fields `Pod`, `Copy`, `'static`.
unsafe impl bytemuck::Pod for BlockQ4_0 {}

/// A quantized block type: its GGUF type id and sizes.
pub trait Block: bytemuck::Pod {
    /// The GGUF/ggml type id (8 for `Q8_0`, 2 for `Q4_0`).
    const GGML_TYPE: u32;
    /// Values per block.
    const VALUES: usize = QK;
    /// Bytes per block.
    const BYTES: usize = core::mem::size_of::<Self>();
}

impl Block for BlockQ8_0 {
    const GGML_TYPE: u32 = 8;
}

impl Block for BlockQ4_0 {
    const GGML_TYPE: u32 = 2;
}

// The formats' kernel tables: the scalar specification, and the paths that
// override it. A path missing here runs the specification (always correct);
// the paths are only ever asked for by a `Kernels` whose constructor
// detected them.

impl QuantFormat for BlockQ8_0 {
    const NAME: &'static str = "Q8_0";
    const MAX_QUANT: f32 = 127.0;
    type Act = BlockQ8_0;

    fn quantize(x: &[f32], y: &mut [Self]) {
        scalar::quantize_q8_0(x, y)
    }

    fn dequantize(x: &[Self], y: &mut [f32]) {
        scalar::dequantize_q8_0(x, y)
    }

    fn finite(&self) -> bool {
        f16_finite(self.d)
    }

    fn kernels(path: KernelPath) -> QuantKernels<Self, BlockQ8_0> {
        // SAFETY: every arm's pair is the path's bit-exact twin of
        // `scalar::dot_q8_0` / `scalar::matvec_q8_0`, needing exactly the
        // CPU features that path's detection checks (`crate::kernels`).
        unsafe {
            match path {
                #[cfg(target_arch = "x86_64")]
                KernelPath::Avx2 => {
                    use crate::x86_avx2 as k;
                    QuantKernels::new(k::dot_q8_0, k::matvec_q8_0)
                        .with_matmat(k::matmat_q8_0_small, 4)
                }
                #[cfg(target_arch = "x86_64")]
                KernelPath::AvxVnni => {
                    use crate::x86_avxvnni as k;
                    QuantKernels::new(k::dot_q8_0, k::matvec_q8_0)
                        .with_matmat(k::matmat_q8_0_small, 4)
                }
                #[cfg(target_arch = "x86_64")]
                KernelPath::Avx512Vnni => {
                    QuantKernels::new(crate::x86_avx512::dot_q8_0, crate::x86_avx512::matvec_q8_0)
                }
                #[cfg(target_arch = "aarch64")]
                KernelPath::Neon => QuantKernels::new(
                    crate::aarch64_neon::dot_q8_0,
                    crate::aarch64_neon::matvec_q8_0,
                ),
                #[cfg(target_arch = "aarch64")]
                KernelPath::NeonDotprod => QuantKernels::new(
                    crate::aarch64_neon::dot_q8_0_sdot,
                    crate::aarch64_neon::matvec_q8_0_sdot,
                ),
                #[cfg(latte_arm_dsp)]
                KernelPath::ArmDsp => {
                    QuantKernels::new(crate::arm_dsp::dot_q8_0, crate::arm_dsp::matvec_q8_0)
                }
                #[cfg(latte_arm_mve)]
                KernelPath::ArmHelium => {
                    QuantKernels::new(crate::arm_helium::dot_q8_0, crate::arm_helium::matvec_q8_0)
                }
                _ => QuantKernels::new(scalar::dot_q8_0, scalar::matvec_q8_0),
            }
        }
    }
}

impl QuantFormat for BlockQ4_0 {
    const NAME: &'static str = "Q4_0";
    const MAX_QUANT: f32 = 8.0;
    type Act = BlockQ8_0;

    fn quantize(x: &[f32], y: &mut [Self]) {
        scalar::quantize_q4_0(x, y)
    }

    fn dequantize(x: &[Self], y: &mut [f32]) {
        scalar::dequantize_q4_0(x, y)
    }

    fn finite(&self) -> bool {
        f16_finite(self.d)
    }

    fn kernels(path: KernelPath) -> QuantKernels<Self, BlockQ8_0> {
        // SAFETY: as for `BlockQ8_0`, every arm's pair is the twin of
        // `scalar::dot_q4_0` / `scalar::matvec_q4_0`.
        unsafe {
            match path {
                #[cfg(target_arch = "x86_64")]
                KernelPath::Avx2 => {
                    use crate::x86_avx2 as k;
                    QuantKernels::new(k::dot_q4_0, k::matvec_q4_0)
                        .with_matmat(k::matmat_q4_0_small, 4)
                }
                #[cfg(target_arch = "x86_64")]
                KernelPath::AvxVnni => {
                    use crate::x86_avxvnni as k;
                    QuantKernels::new(k::dot_q4_0, k::matvec_q4_0)
                        .with_matmat(k::matmat_q4_0_small, 4)
                }
                #[cfg(target_arch = "x86_64")]
                KernelPath::Avx512Vnni => {
                    QuantKernels::new(crate::x86_avx512::dot_q4_0, crate::x86_avx512::matvec_q4_0)
                }
                #[cfg(target_arch = "aarch64")]
                KernelPath::Neon => QuantKernels::new(
                    crate::aarch64_neon::dot_q4_0,
                    crate::aarch64_neon::matvec_q4_0,
                ),
                #[cfg(target_arch = "aarch64")]
                KernelPath::NeonDotprod => QuantKernels::new(
                    crate::aarch64_neon::dot_q4_0_sdot,
                    crate::aarch64_neon::matvec_q4_0_sdot,
                ),
                #[cfg(latte_arm_dsp)]
                KernelPath::ArmDsp => {
                    QuantKernels::new(crate::arm_dsp::dot_q4_0, crate::arm_dsp::matvec_q4_0)
                }
                #[cfg(latte_arm_mve)]
                KernelPath::ArmHelium => {
                    QuantKernels::new(crate::arm_helium::dot_q4_0, crate::arm_helium::matvec_q4_0)
                }
                _ => QuantKernels::new(scalar::dot_q4_0, scalar::matvec_q4_0),
            }
        }
    }
}

impl BlockQ8_0 {
    /// The scale as `f32`.
    pub fn scale(&self) -> f32 {
        half::f16::from_bits(self.d).to_f32()
    }
}

impl BlockQ4_0 {
    /// The scale as `f32`.
    pub fn scale(&self) -> f32 {
        half::f16::from_bits(self.d).to_f32()
    }

    /// Quant `j` (`0..32`) as stored, `0..=15` (the value is `d * (q - 8)`).
    pub fn quant(&self, j: usize) -> u8 {
        let b = self.qs[j % (QK / 2)];
        if j < QK / 2 {
            b & 0x0F
        } else {
            b >> 4
        }
    }
}

/// Why tensor bytes cannot be viewed as blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CastError {
    /// The length is not a whole number of blocks.
    Length {
        /// Bytes given.
        len: usize,
        /// Bytes per block.
        block: usize,
    },
    /// The bytes do not start at a multiple of the block alignment (2). GGUF
    /// tensor data is 32-aligned within the file, so this means the file
    /// buffer itself is misaligned.
    Misaligned {
        /// Alignment required.
        align: usize,
    },
}

impl fmt::Display for CastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CastError::Length { len, block } => write!(
                f,
                "{len} bytes is not a whole number of {block}-byte blocks"
            ),
            CastError::Misaligned { align } => {
                write!(f, "block data is not {align}-byte aligned")
            }
        }
    }
}

impl core::error::Error for CastError {}

/// Views tensor bytes as blocks in place, without copying.
///
/// Errors: [`CastError::Length`] unless `bytes.len()` is a multiple of
/// `B::BYTES`, [`CastError::Misaligned`] unless `bytes` is 2-byte aligned.
pub fn cast_blocks<B: Block>(bytes: &[u8]) -> Result<&[B], CastError> {
    check::<B>(bytes.as_ptr() as usize, bytes.len())?;
    if bytes.is_empty() {
        return Ok(&[]);
    }
    bytemuck::try_cast_slice(bytes).map_err(|e| map_err::<B>(e, bytes.len()))
}

/// Mutable form of [`cast_blocks`] (for example to quantize into a buffer).
pub fn cast_blocks_mut<B: Block>(bytes: &mut [u8]) -> Result<&mut [B], CastError> {
    check::<B>(bytes.as_ptr() as usize, bytes.len())?;
    if bytes.is_empty() {
        return Ok(&mut []);
    }
    let len = bytes.len();
    bytemuck::try_cast_slice_mut(bytes).map_err(|e| map_err::<B>(e, len))
}

/// [`cast_blocks`] for `Q8_0`.
pub fn cast_q8_0(bytes: &[u8]) -> Result<&[BlockQ8_0], CastError> {
    cast_blocks(bytes)
}

/// [`cast_blocks`] for `Q4_0`.
pub fn cast_q4_0(bytes: &[u8]) -> Result<&[BlockQ4_0], CastError> {
    cast_blocks(bytes)
}

/// The blocks as their file bytes (never fails).
pub fn blocks_as_bytes<B: Block>(blocks: &[B]) -> &[u8] {
    bytemuck::cast_slice(blocks)
}

// Length is reported before alignment, whichever bytemuck would report first.
fn check<B: Block>(addr: usize, len: usize) -> Result<(), CastError> {
    if !len.is_multiple_of(B::BYTES) {
        return Err(CastError::Length {
            len,
            block: B::BYTES,
        });
    }
    let align = core::mem::align_of::<B>();
    if len != 0 && !addr.is_multiple_of(align) {
        return Err(CastError::Misaligned { align });
    }
    Ok(())
}

fn map_err<B: Block>(e: bytemuck::PodCastError, len: usize) -> CastError {
    match e {
        bytemuck::PodCastError::TargetAlignmentGreaterAndInputNotAligned => CastError::Misaligned {
            align: core::mem::align_of::<B>(),
        },
        _ => CastError::Length {
            len,
            block: B::BYTES,
        },
    }
}
