//! Zero-copy reader for GGUF v3 model files, for `no_std` targets without an
//! allocator, and (with the `std` feature) a writer.
//!
//! The file layout and the Latte keys and tensors are described in
//! `FORMAT.md` next to this crate's manifest.
//!
//! [`Gguf::parse`] validates an untrusted buffer once: every read is bounds
//! checked, every size is computed with checked arithmetic, counts and
//! string lengths are capped, and every tensor's data range is checked to lie
//! inside the buffer without overlapping another. Each failure has its own
//! [`Error`] variant. After that the accessors borrow from the buffer.
//!
//! ```
//! # fn demo(bytes: &[u8]) -> Result<(), latte_gguf::Error> {
//! let file = latte_gguf::Gguf::parse(bytes)?;
//! let width = file.get_u32("latte.embedding_length")?;
//! for t in file.tensors() {
//!     let _ = (t.name, t.rows(), t.cols(), t.ty, t.data.len());
//! }
//! # let _ = width; Ok(()) }
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

mod cursor;
mod error;
mod file;
mod tensor;
mod types;
mod value;
#[cfg(feature = "std")]
mod writer;

pub use error::Error;
pub use file::{Gguf, Metadata, Tensors};
pub use tensor::{TensorInfo, MAX_DIMS};
pub use types::{GgmlType, ValueType};
pub use value::{Array, ArrayIter, F32Array, F32Iter, Value};
#[cfg(feature = "std")]
pub use writer::{GgufWriter, MetaArray, MetaValue, WriteError};

/// The first four bytes of a GGUF file, `GGUF`, read as a little-endian `u32`.
pub const MAGIC: u32 = 0x4655_4747;
/// The only GGUF version read and written.
pub const VERSION: u32 = 3;
/// The metadata key that sets the data alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// Data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u32 = 32;
/// Longest key or tensor name accepted, in bytes.
pub const MAX_NAME_LEN: u64 = 65_535;
/// Longest string value accepted, in bytes (16 MiB).
pub const MAX_STRING_LEN: u64 = 1 << 24;
/// Most metadata pairs accepted in one file.
pub const MAX_KVS: usize = 256;
/// Most tensors accepted in one file (the overlap and name checks are quadratic).
pub const MAX_TENSORS: usize = 4096;
