//! Metadata value types and ggml tensor types.

use core::fmt;

/// The type of a metadata value (GGUF value type ids 0..=12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// 0: `u8`.
    U8,
    /// 1: `i8`.
    I8,
    /// 2: `u16`.
    U16,
    /// 3: `i16`.
    I16,
    /// 4: `u32`.
    U32,
    /// 5: `i32`.
    I32,
    /// 6: `f32`.
    F32,
    /// 7: bool, one byte, 0 or 1.
    Bool,
    /// 8: UTF-8 string with a `u64` length prefix.
    String,
    /// 9: array (`u32` element type, `u64` length, elements).
    Array,
    /// 10: `u64`.
    U64,
    /// 11: `i64`.
    I64,
    /// 12: `f64`.
    F64,
}

impl ValueType {
    /// The type for a GGUF value type id, `None` if unknown.
    pub const fn from_u32(id: u32) -> Option<Self> {
        Some(match id {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    /// The GGUF value type id.
    pub const fn id(self) -> u32 {
        match self {
            ValueType::U8 => 0,
            ValueType::I8 => 1,
            ValueType::U16 => 2,
            ValueType::I16 => 3,
            ValueType::U32 => 4,
            ValueType::I32 => 5,
            ValueType::F32 => 6,
            ValueType::Bool => 7,
            ValueType::String => 8,
            ValueType::Array => 9,
            ValueType::U64 => 10,
            ValueType::I64 => 11,
            ValueType::F64 => 12,
        }
    }

    /// Encoded size in bytes, `None` for the variable-size string and array.
    pub const fn fixed_size(self) -> Option<usize> {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => Some(1),
            ValueType::U16 | ValueType::I16 => Some(2),
            ValueType::U32 | ValueType::I32 | ValueType::F32 => Some(4),
            ValueType::U64 | ValueType::I64 | ValueType::F64 => Some(8),
            ValueType::String | ValueType::Array => None,
        }
    }

    /// Lower-case name, as used in messages (`u32`, `string`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Defines [`GgmlType`] from one table: a row per type, so that its id,
/// name and sizes are written once and every method is an exhaustive match
/// (a type added here cannot fall through to a default).
macro_rules! ggml_types {
    ($($(#[$doc:meta])* $v:ident = $id:literal, $name:literal, $block:literal, $bytes:expr;)*) => {
        /// A ggml tensor element type accepted by the reader.
        ///
        /// Quantised types store `block_size()` elements in `type_size()` bytes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum GgmlType {
            $($(#[$doc])* $v,)*
        }

        impl GgmlType {
            /// Every type the reader accepts, by id.
            pub const ALL: &'static [GgmlType] = &[$(GgmlType::$v),*];

            /// The type for a ggml type id, `None` for ids this reader does not accept.
            pub const fn from_u32(id: u32) -> Option<Self> {
                match id {
                    $($id => Some(GgmlType::$v),)*
                    _ => None,
                }
            }

            /// The ggml type id.
            pub const fn id(self) -> u32 {
                match self {
                    $(GgmlType::$v => $id,)*
                }
            }

            /// Elements per block (1 for the float types, 32 for the quantised ones).
            pub const fn block_size(self) -> usize {
                match self {
                    $(GgmlType::$v => $block,)*
                }
            }

            /// Bytes per block.
            pub const fn type_size(self) -> usize {
                match self {
                    $(GgmlType::$v => $bytes,)*
                }
            }

            /// The ggml name (`F32`, `Q4_0`, ...).
            pub const fn name(self) -> &'static str {
                match self {
                    $(GgmlType::$v => $name,)*
                }
            }
        }
    };
}

ggml_types! {
    /// 0: IEEE single precision.
    F32 = 0, "F32", 1, 4;
    /// 1: IEEE half precision.
    F16 = 1, "F16", 1, 2;
    /// 2: 32 x 4-bit, one f16 scale.
    Q4_0 = 2, "Q4_0", 32, 2 + 16;
    /// 3: 32 x 4-bit, f16 scale and minimum.
    Q4_1 = 3, "Q4_1", 32, 2 + 2 + 16;
    /// 6: 32 x 5-bit, one f16 scale.
    Q5_0 = 6, "Q5_0", 32, 2 + 4 + 16;
    /// 7: 32 x 5-bit, f16 scale and minimum.
    Q5_1 = 7, "Q5_1", 32, 2 + 2 + 4 + 16;
    /// 8: 32 x 8-bit, one f16 scale.
    Q8_0 = 8, "Q8_0", 32, 2 + 32;
    /// 9: 32 x 8-bit, f16 scale and f16 sum.
    Q8_1 = 9, "Q8_1", 32, 2 + 2 + 32;
}

impl GgmlType {
    /// Bytes taken by `n_elements` elements, `None` if `n_elements` is not a
    /// multiple of the block size or the size overflows.
    pub const fn bytes_for(self, n_elements: u64) -> Option<u64> {
        let block = self.block_size() as u64;
        if !n_elements.is_multiple_of(block) {
            return None;
        }
        match n_elements.checked_div(block) {
            Some(blocks) => blocks.checked_mul(self.type_size() as u64),
            None => None,
        }
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
