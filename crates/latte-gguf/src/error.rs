//! The reader's error type.

use core::fmt;

use crate::types::ValueType;

/// Why a byte buffer is not an acceptable GGUF v3 file, or why a metadata
/// lookup failed.
///
/// Offsets are byte positions in the buffer given to [`crate::Gguf::parse`];
/// `tensor`, `first` and `second` are 0-based indices in the file's
/// key/value or tensor-info list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The buffer ends before the field starting at `offset`.
    UnexpectedEnd {
        /// Where the missing field starts.
        offset: usize,
    },
    /// The first four bytes are not `GGUF`.
    BadMagic {
        /// The little-endian `u32` found instead of `0x46554747`.
        found: u32,
    },
    /// The header's version is not 3.
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// More key/value pairs than the cap or than the buffer could hold.
    TooManyKvs {
        /// The count in the header.
        count: u64,
        /// The largest count accepted here.
        max: u64,
    },
    /// More tensors than the cap or than the buffer could hold.
    TooManyTensors {
        /// The count in the header.
        count: u64,
        /// The largest count accepted here.
        max: u64,
    },
    /// A string's length prefix exceeds the cap for its kind.
    StringTooLong {
        /// Where the length prefix is.
        offset: usize,
        /// The length found.
        len: u64,
        /// The cap ([`crate::MAX_NAME_LEN`] or [`crate::MAX_STRING_LEN`]).
        max: u64,
    },
    /// A string is not valid UTF-8.
    InvalidUtf8 {
        /// Where the string's bytes start.
        offset: usize,
    },
    /// A metadata value type id is not one of 0..=12.
    InvalidValueType {
        /// Where the type id is.
        offset: usize,
        /// The id found.
        found: u32,
    },
    /// An array whose elements are arrays (not supported).
    NestedArray {
        /// Where the element type id is.
        offset: usize,
    },
    /// An array's length cannot fit in the rest of the buffer.
    ArrayTooLong {
        /// Where the length is.
        offset: usize,
        /// The length found.
        len: u64,
    },
    /// A bool value that is neither 0 nor 1.
    InvalidBool {
        /// Where the byte is.
        offset: usize,
        /// The byte found.
        found: u8,
    },
    /// Two key/value pairs have the same key.
    DuplicateKey {
        /// Index of the first pair.
        first: usize,
        /// Index of the repeated pair.
        second: usize,
    },
    /// `general.alignment` is zero or not a power of two.
    BadAlignment {
        /// The value found.
        alignment: u32,
    },
    /// A tensor's dimension count is not in 1..=4.
    BadDimCount {
        /// Tensor index.
        tensor: usize,
        /// The count found.
        n_dims: u32,
    },
    /// A tensor has a dimension of size zero.
    ZeroDimension {
        /// Tensor index.
        tensor: usize,
        /// Which dimension (0 is the innermost).
        dim: usize,
    },
    /// A tensor's element count or byte size overflows 64 bits.
    TooManyElements {
        /// Tensor index.
        tensor: usize,
    },
    /// A tensor type id that this reader does not know.
    UnknownTensorType {
        /// Tensor index.
        tensor: usize,
        /// The ggml type id found.
        type_id: u32,
    },
    /// `ne[0]` is not a multiple of the tensor type's block size.
    NotBlockMultiple {
        /// Tensor index.
        tensor: usize,
        /// The innermost dimension.
        ne0: u64,
        /// The type's block size.
        block_size: usize,
    },
    /// Two tensors have the same name.
    DuplicateTensorName {
        /// Index of the first tensor.
        first: usize,
        /// Index of the repeated tensor.
        second: usize,
    },
    /// A tensor's offset is not a multiple of the file's alignment.
    MisalignedTensor {
        /// Tensor index.
        tensor: usize,
        /// The offset (relative to the data section).
        offset: u64,
        /// The file's alignment.
        alignment: u32,
    },
    /// A tensor's data ends past the end of the buffer.
    TensorOutOfBounds {
        /// Tensor index.
        tensor: usize,
        /// Absolute end of its data (saturated at `u64::MAX` on overflow).
        end: u64,
        /// Length of the buffer.
        file_len: u64,
    },
    /// The data of two tensors overlap.
    OverlappingTensors {
        /// Index of the earlier tensor in the list.
        first: usize,
        /// Index of the later tensor in the list.
        second: usize,
    },
    /// A required metadata key is absent.
    MissingKey {
        /// The key looked up.
        key: &'static str,
    },
    /// A metadata value has another type than the one asked for.
    WrongType {
        /// The key looked up.
        key: &'static str,
        /// The type asked for.
        expected: ValueType,
        /// The type in the file.
        found: ValueType,
    },
    /// A metadata array has another element type than the one asked for.
    WrongArrayType {
        /// The key looked up.
        key: &'static str,
        /// The element type asked for.
        expected: ValueType,
        /// The element type in the file.
        found: ValueType,
    },
}

const DAMAGED: &str = "the file is damaged or was not written as GGUF v3; re-create it";

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::UnexpectedEnd { offset } => write!(
                f,
                "the data ends at byte {offset}, in the middle of the GGUF header: \
                 the file is truncated; copy or convert it again"
            ),
            Error::BadMagic { found } => write!(
                f,
                "not a GGUF file: it starts with 0x{found:08x}, a GGUF file starts with \
                 0x46554747 (\"GGUF\"); check that the path names a GGUF model"
            ),
            Error::UnsupportedVersion { found } => write!(
                f,
                "GGUF version {found} is not supported, only version 3 is; \
                 re-export the model with a current GGUF writer"
            ),
            Error::TooManyKvs { count, max } => {
                too_many(f, count, max, crate::MAX_KVS as u64, "metadata entries")
            }
            Error::TooManyTensors { count, max } => {
                too_many(f, count, max, crate::MAX_TENSORS as u64, "tensors")
            }
            Error::StringTooLong { offset, len, max } => write!(
                f,
                "string at byte {offset} claims {len} bytes, the limit is {max}; {DAMAGED}"
            ),
            Error::InvalidUtf8 { offset } => {
                write!(f, "string at byte {offset} is not valid UTF-8; {DAMAGED}")
            }
            Error::InvalidValueType { offset, found } => write!(
                f,
                "metadata value type {found} at byte {offset} is not a GGUF type (0..=12); {DAMAGED}"
            ),
            Error::NestedArray { offset } => write!(
                f,
                "array of arrays at byte {offset}: nested metadata arrays are not supported; \
                 flatten the array when writing the file"
            ),
            Error::ArrayTooLong { offset, len } => write!(
                f,
                "array at byte {offset} claims {len} elements, more than the rest of the \
                 file can hold; {DAMAGED}"
            ),
            Error::InvalidBool { offset, found } => write!(
                f,
                "bool at byte {offset} is {found}, a bool must be 0 or 1; {DAMAGED}"
            ),
            Error::DuplicateKey { first, second } => write!(
                f,
                "metadata entries {first} and {second} have the same key; \
                 each key may appear once, fix the writer"
            ),
            Error::BadAlignment { alignment } => write!(
                f,
                "general.alignment is {alignment}, it must be a power of two; {DAMAGED}"
            ),
            Error::BadDimCount { tensor, n_dims } => write!(
                f,
                "tensor {tensor} has {n_dims} dimensions, 1 to 4 are supported; {DAMAGED}"
            ),
            Error::ZeroDimension { tensor, dim } => write!(
                f,
                "tensor {tensor} has size 0 in dimension {dim}; empty tensors are not \
                 accepted, drop them when writing the file"
            ),
            Error::TooManyElements { tensor } => write!(
                f,
                "tensor {tensor}: its element count or byte size overflows 64 bits; {DAMAGED}"
            ),
            Error::UnknownTensorType { tensor, type_id } => write!(
                f,
                "tensor {tensor} has ggml type {type_id}, which this reader does not know \
                 (known: F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1); \
                 re-quantise or convert the model to one of them"
            ),
            Error::NotBlockMultiple { tensor, ne0, block_size } => write!(
                f,
                "tensor {tensor}: innermost dimension {ne0} is not a multiple of its type's \
                 block size {block_size}; store it as F32 or F16 instead"
            ),
            Error::DuplicateTensorName { first, second } => write!(
                f,
                "tensors {first} and {second} have the same name; each name may appear \
                 once, fix the writer"
            ),
            Error::MisalignedTensor { tensor, offset, alignment } => write!(
                f,
                "tensor {tensor} starts at data offset {offset}, which is not a multiple \
                 of the alignment {alignment}; {DAMAGED}"
            ),
            Error::TensorOutOfBounds { tensor, end, file_len } => write!(
                f,
                "tensor {tensor}'s data ends at byte {end}, past the end of the file \
                 ({file_len} bytes): the file is truncated; copy or convert it again"
            ),
            Error::OverlappingTensors { first, second } => write!(
                f,
                "the data of tensors {first} and {second} overlap; {DAMAGED}"
            ),
            Error::MissingKey { key } => write!(
                f,
                "metadata key `{key}` is missing; the file was not written for this \
                 program, convert the model again"
            ),
            Error::WrongType { key, expected, found } => write!(
                f,
                "metadata key `{key}` holds a {found}, expected a {expected}; \
                 convert the model again"
            ),
            Error::WrongArrayType { key, expected, found } => write!(
                f,
                "metadata key `{key}` is an array of {found}, expected an array of \
                 {expected}; convert the model again"
            ),
        }
    }
}

fn too_many(f: &mut fmt::Formatter<'_>, count: u64, max: u64, cap: u64, what: &str) -> fmt::Result {
    if max < cap {
        write!(
            f,
            "the header declares {count} {what}, but the rest of the file has room for at \
             most {max}: the file is truncated or damaged; copy or convert it again"
        )
    } else {
        write!(
            f,
            "the header declares {count} {what}, more than the supported {cap}; \
             this reader does not accept such a file"
        )
    }
}

/// `core::error::Error` is `std::error::Error`, so this also serves `std` users.
impl core::error::Error for Error {}
