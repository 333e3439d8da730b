//! Borrowed metadata values.

use core::slice::ChunksExact;

use crate::cursor::Cursor;
use crate::error::Error;
use crate::types::ValueType;
use crate::MAX_STRING_LEN;

/// One metadata value, borrowed from the file bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// `u8`.
    U8(u8),
    /// `i8`.
    I8(i8),
    /// `u16`.
    U16(u16),
    /// `i16`.
    I16(i16),
    /// `u32`.
    U32(u32),
    /// `i32`.
    I32(i32),
    /// `f32`.
    F32(f32),
    /// bool.
    Bool(bool),
    /// UTF-8 string.
    String(&'a str),
    /// Array of non-array values.
    Array(Array<'a>),
    /// `u64`.
    U64(u64),
    /// `i64`.
    I64(i64),
    /// `f64`.
    F64(f64),
}

impl<'a> Value<'a> {
    /// The value's GGUF type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The value if it is a `u32`.
    pub fn as_u32(&self) -> Option<u32> {
        match *self {
            Value::U32(v) => Some(v),
            _ => None,
        }
    }

    /// The value if it is a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U64(v) => Some(v),
            _ => None,
        }
    }

    /// The value if it is an `f32`.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The value if it is a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The value if it is a string.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::String(v) => Some(v),
            _ => None,
        }
    }

    /// The value if it is an array.
    pub fn as_array(&self) -> Option<Array<'a>> {
        match *self {
            Value::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// A metadata array: `len` elements of one non-array type, still encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Array<'a> {
    elem: ValueType,
    len: usize,
    data: &'a [u8],
}

impl<'a> Array<'a> {
    /// Element type (never [`ValueType::Array`]).
    pub fn elem_type(&self) -> ValueType {
        self.elem
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` for an empty array.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoded elements (little-endian; strings with their length prefixes).
    pub fn raw_bytes(&self) -> &'a [u8] {
        self.data
    }

    /// Decodes the elements in order.
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            elem: self.elem,
            left: self.len,
            cursor: Cursor::new(self.data, 0),
        }
    }

    /// An `f32` view if the elements are `f32`.
    pub fn as_f32(&self) -> Option<F32Array<'a>> {
        (self.elem == ValueType::F32).then_some(F32Array { data: self.data })
    }
}

impl<'a> IntoIterator for Array<'a> {
    type Item = Value<'a>;
    type IntoIter = ArrayIter<'a>;
    fn into_iter(self) -> ArrayIter<'a> {
        self.iter()
    }
}

/// Iterator over the elements of an [`Array`].
#[derive(Clone, Debug)]
pub struct ArrayIter<'a> {
    elem: ValueType,
    left: usize,
    cursor: Cursor<'a>,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        self.left = self.left.checked_sub(1)?;
        // The bytes were validated by `Gguf::parse`; a failure here cannot
        // happen and simply ends the iteration.
        match read_scalar(&mut self.cursor, self.elem) {
            Ok(v) => Some(v),
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// A view of an `f32` array that decodes possibly unaligned little-endian bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct F32Array<'a> {
    data: &'a [u8],
}

impl<'a> F32Array<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len() / 4
    }

    /// `true` for an empty array.
    pub fn is_empty(&self) -> bool {
        self.data.len() < 4
    }

    /// Element `i`, `None` past the end.
    pub fn get(&self, i: usize) -> Option<f32> {
        let start = i.checked_mul(4)?;
        let chunk = self.data.get(start..start.checked_add(4)?)?;
        Some(f32_from_chunk(chunk))
    }

    /// The elements in order.
    pub fn iter(&self) -> F32Iter<'a> {
        F32Iter {
            chunks: self.data.chunks_exact(4),
        }
    }
}

impl<'a> IntoIterator for F32Array<'a> {
    type Item = f32;
    type IntoIter = F32Iter<'a>;
    fn into_iter(self) -> F32Iter<'a> {
        self.iter()
    }
}

/// Iterator over an [`F32Array`].
#[derive(Clone, Debug)]
pub struct F32Iter<'a> {
    chunks: ChunksExact<'a, u8>,
}

impl Iterator for F32Iter<'_> {
    type Item = f32;
    fn next(&mut self) -> Option<f32> {
        self.chunks.next().map(f32_from_chunk)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl DoubleEndedIterator for F32Iter<'_> {
    fn next_back(&mut self) -> Option<f32> {
        self.chunks.next_back().map(f32_from_chunk)
    }
}

impl ExactSizeIterator for F32Iter<'_> {}

fn f32_from_chunk(chunk: &[u8]) -> f32 {
    match *chunk {
        [a, b, c, d] => f32::from_le_bytes([a, b, c, d]),
        _ => f32::NAN,
    }
}

/// Reads one value of type `ty`, validating it (arrays included).
pub(crate) fn read_value<'a>(c: &mut Cursor<'a>, ty: ValueType) -> Result<Value<'a>, Error> {
    match ty {
        ValueType::Array => read_array(c).map(Value::Array),
        _ => read_scalar(c, ty),
    }
}

/// Reads one non-array value of type `ty`.
fn read_scalar<'a>(c: &mut Cursor<'a>, ty: ValueType) -> Result<Value<'a>, Error> {
    Ok(match ty {
        ValueType::U8 => Value::U8(c.u8()?),
        ValueType::I8 => Value::I8(i8::from_le_bytes(c.u8()?.to_le_bytes())),
        ValueType::U16 => Value::U16(c.u16()?),
        ValueType::I16 => Value::I16(i16::from_le_bytes(c.u16()?.to_le_bytes())),
        ValueType::U32 => Value::U32(c.u32()?),
        ValueType::I32 => Value::I32(i32::from_le_bytes(c.u32()?.to_le_bytes())),
        ValueType::F32 => Value::F32(f32::from_bits(c.u32()?)),
        ValueType::Bool => {
            let offset = c.pos();
            match c.u8()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                found => return Err(Error::InvalidBool { offset, found }),
            }
        }
        ValueType::String => Value::String(c.string(MAX_STRING_LEN)?),
        ValueType::U64 => Value::U64(c.u64()?),
        ValueType::I64 => Value::I64(i64::from_le_bytes(c.u64()?.to_le_bytes())),
        ValueType::F64 => Value::F64(f64::from_bits(c.u64()?)),
        ValueType::Array => return Err(Error::NestedArray { offset: c.pos() }),
    })
}

fn read_array<'a>(c: &mut Cursor<'a>) -> Result<Array<'a>, Error> {
    let type_at = c.pos();
    let found = c.u32()?;
    let elem = ValueType::from_u32(found).ok_or(Error::InvalidValueType {
        offset: type_at,
        found,
    })?;
    if elem == ValueType::Array {
        return Err(Error::NestedArray { offset: type_at });
    }
    let len_at = c.pos();
    let len = c.u64()?;
    // A string element takes at least its 8-byte length prefix.
    let min_size = elem.fixed_size().unwrap_or(8) as u64;
    let too_long = Error::ArrayTooLong {
        offset: len_at,
        len,
    };
    let min_bytes = len.checked_mul(min_size).ok_or(too_long)?;
    if min_bytes > c.remaining() as u64 {
        return Err(too_long);
    }
    let n = usize::try_from(len).map_err(|_| too_long)?;
    let start = c.pos();
    if elem.fixed_size().is_some() {
        let data = c.take_u64_len(min_bytes)?;
        if elem == ValueType::Bool {
            if let Some((i, &found)) = data.iter().enumerate().find(|(_, b)| **b > 1) {
                return Err(Error::InvalidBool {
                    offset: start.saturating_add(i),
                    found,
                });
            }
        }
        return Ok(Array { elem, len: n, data });
    }
    let mut probe = *c;
    for _ in 0..n {
        read_scalar(&mut probe, elem)?;
    }
    let data = c.take(probe.pos().saturating_sub(start))?;
    Ok(Array { elem, len: n, data })
}
