//! GGUF v3 writer (`std` feature).

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read, Write};

use crate::types::{GgmlType, ValueType};
use crate::{
    ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS, MAX_KVS, MAX_NAME_LEN, MAX_STRING_LEN,
    MAX_TENSORS, VERSION,
};

/// An owned metadata value for [`GgufWriter`].
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
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
    String(String),
    /// Array of one scalar type.
    Array(MetaArray),
    /// `u64`.
    U64(u64),
    /// `i64`.
    I64(i64),
    /// `f64`.
    F64(f64),
}

/// An owned metadata array for [`GgufWriter`] (arrays do not nest).
#[derive(Clone, Debug, PartialEq)]
pub enum MetaArray {
    /// `u8` elements.
    U8(Vec<u8>),
    /// `i8` elements.
    I8(Vec<i8>),
    /// `u16` elements.
    U16(Vec<u16>),
    /// `i16` elements.
    I16(Vec<i16>),
    /// `u32` elements.
    U32(Vec<u32>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `f32` elements.
    F32(Vec<f32>),
    /// bool elements.
    Bool(Vec<bool>),
    /// string elements.
    String(Vec<String>),
    /// `u64` elements.
    U64(Vec<u64>),
    /// `i64` elements.
    I64(Vec<i64>),
    /// `f64` elements.
    F64(Vec<f64>),
}

/// Why [`GgufWriter`] refused a key/value pair or a tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// The key was already added.
    DuplicateKey(String),
    /// A tensor of that name was already added.
    DuplicateTensor(String),
    /// A key or tensor name longer than [`MAX_NAME_LEN`] bytes.
    NameTooLong(String),
    /// A string value longer than [`MAX_STRING_LEN`] bytes.
    StringTooLong {
        /// The key it belongs to.
        key: String,
        /// Its length in bytes.
        len: usize,
    },
    /// More than [`MAX_KVS`] pairs.
    TooManyKvs,
    /// More than [`MAX_TENSORS`] tensors.
    TooManyTensors,
    /// `general.alignment` that is not a `u32` power of two.
    BadAlignment(String),
    /// A shape the reader would reject.
    BadShape {
        /// Tensor name.
        name: String,
        /// Its dimensions, innermost first.
        ne: Vec<u64>,
        /// What is wrong with them.
        reason: &'static str,
    },
    /// Data of the wrong length for the shape and type.
    DataLength {
        /// Tensor name.
        name: String,
        /// Bytes the shape and type need.
        expected: u64,
        /// Bytes given.
        actual: usize,
    },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::DuplicateKey(k) => write!(f, "metadata key `{k}` was added twice"),
            WriteError::DuplicateTensor(n) => write!(f, "tensor `{n}` was added twice"),
            WriteError::NameTooLong(n) => {
                write!(f, "name `{n}` is longer than {MAX_NAME_LEN} bytes")
            }
            WriteError::StringTooLong { key, len } => write!(
                f,
                "string for `{key}` has {len} bytes, the limit is {MAX_STRING_LEN}"
            ),
            WriteError::TooManyKvs => write!(f, "more than {MAX_KVS} metadata entries"),
            WriteError::TooManyTensors => write!(f, "more than {MAX_TENSORS} tensors"),
            WriteError::BadAlignment(v) => {
                write!(f, "{ALIGNMENT_KEY} must be a u32 power of two, got {v}")
            }
            WriteError::BadShape { name, ne, reason } => {
                write!(f, "tensor `{name}` with ne {ne:?}: {reason}")
            }
            WriteError::DataLength {
                name,
                expected,
                actual,
            } => write!(
                f,
                "tensor `{name}` needs {expected} bytes of data, {actual} were given"
            ),
        }
    }
}

impl std::error::Error for WriteError {}

struct PendingTensor<'d> {
    name: String,
    ne: Vec<u64>,
    ty: GgmlType,
    data: Cow<'d, [u8]>,
}

/// Collects metadata and tensors, then writes a GGUF v3 file.
///
/// Output is deterministic: pairs and tensors appear in insertion order,
/// each tensor's data starts at a multiple of the alignment (32, or the
/// `general.alignment` pair if one was added) and is padded with zeros to
/// the next multiple. Everything added is validated so the output always
/// passes [`crate::Gguf::parse`].
#[derive(Default)]
pub struct GgufWriter<'d> {
    alignment: Option<u32>,
    kvs: Vec<(String, MetaValue)>,
    tensors: Vec<PendingTensor<'d>>,
}

impl<'d> GgufWriter<'d> {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The data alignment the output will use.
    pub fn alignment(&self) -> u32 {
        self.alignment.unwrap_or(DEFAULT_ALIGNMENT)
    }

    /// Adds a metadata pair. Adding `general.alignment` (a `u32` power of
    /// two) also sets the data alignment.
    pub fn add(&mut self, key: impl Into<String>, value: MetaValue) -> Result<(), WriteError> {
        let key = key.into();
        if key.len() as u64 > MAX_NAME_LEN {
            return Err(WriteError::NameTooLong(key));
        }
        if self.kvs.iter().any(|(k, _)| *k == key) {
            return Err(WriteError::DuplicateKey(key));
        }
        if self.kvs.len() >= MAX_KVS {
            return Err(WriteError::TooManyKvs);
        }
        let longest = match &value {
            MetaValue::String(s) => s.len(),
            MetaValue::Array(MetaArray::String(v)) => v.iter().map(String::len).max().unwrap_or(0),
            _ => 0,
        };
        if longest as u64 > MAX_STRING_LEN {
            return Err(WriteError::StringTooLong { key, len: longest });
        }
        if key == ALIGNMENT_KEY {
            match value {
                MetaValue::U32(a) if a.is_power_of_two() => self.alignment = Some(a),
                ref other => return Err(WriteError::BadAlignment(format!("{other:?}"))),
            }
        }
        self.kvs.push((key, value));
        Ok(())
    }

    /// Adds a `u32` pair.
    pub fn add_u32(&mut self, key: impl Into<String>, v: u32) -> Result<(), WriteError> {
        self.add(key, MetaValue::U32(v))
    }

    /// Adds a `u64` pair.
    pub fn add_u64(&mut self, key: impl Into<String>, v: u64) -> Result<(), WriteError> {
        self.add(key, MetaValue::U64(v))
    }

    /// Adds an `f32` pair.
    pub fn add_f32(&mut self, key: impl Into<String>, v: f32) -> Result<(), WriteError> {
        self.add(key, MetaValue::F32(v))
    }

    /// Adds a bool pair.
    pub fn add_bool(&mut self, key: impl Into<String>, v: bool) -> Result<(), WriteError> {
        self.add(key, MetaValue::Bool(v))
    }

    /// Adds a string pair.
    pub fn add_string(
        &mut self,
        key: impl Into<String>,
        v: impl Into<String>,
    ) -> Result<(), WriteError> {
        self.add(key, MetaValue::String(v.into()))
    }

    /// Adds an `f32` array pair.
    pub fn add_f32_array(&mut self, key: impl Into<String>, v: Vec<f32>) -> Result<(), WriteError> {
        self.add(key, MetaValue::Array(MetaArray::F32(v)))
    }

    /// Adds a tensor. `ne` lists the dimensions innermost first (a matrix of
    /// `rows x cols` is `[cols, rows]`); `data` holds exactly the bytes the
    /// shape and type need, already in the file encoding (little-endian).
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        ne: &[u64],
        ty: GgmlType,
        data: impl Into<Cow<'d, [u8]>>,
    ) -> Result<(), WriteError> {
        let name = name.into();
        let data = data.into();
        if name.len() as u64 > MAX_NAME_LEN {
            return Err(WriteError::NameTooLong(name));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(WriteError::DuplicateTensor(name));
        }
        if self.tensors.len() >= MAX_TENSORS {
            return Err(WriteError::TooManyTensors);
        }
        let bad = |reason| WriteError::BadShape {
            name: name.clone(),
            ne: ne.to_vec(),
            reason,
        };
        if ne.is_empty() || ne.len() > MAX_DIMS {
            return Err(bad("a tensor has 1 to 4 dimensions"));
        }
        if ne.contains(&0) {
            return Err(bad("dimensions must be non-zero"));
        }
        let block = ty.block_size() as u64;
        if ne.first().is_some_and(|&n0| !n0.is_multiple_of(block)) {
            return Err(bad(
                "the innermost dimension must be a multiple of the type's block size",
            ));
        }
        let expected = ne
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .and_then(|n| ty.bytes_for(n))
            .ok_or_else(|| bad("the element count overflows"))?;
        if expected != data.len() as u64 {
            return Err(WriteError::DataLength {
                name,
                expected,
                actual: data.len(),
            });
        }
        self.tensors.push(PendingTensor {
            name,
            ne: ne.to_vec(),
            ty,
            data,
        });
        Ok(())
    }

    /// The encoded header (everything before the data section, padding included).
    fn header(&self) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&MAGIC.to_le_bytes());
        h.extend_from_slice(&VERSION.to_le_bytes());
        h.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        h.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (key, value) in &self.kvs {
            put_str(&mut h, key);
            put_value(&mut h, value);
        }
        let align = u64::from(self.alignment());
        let mut offset = 0u64;
        for t in &self.tensors {
            put_str(&mut h, &t.name);
            h.extend_from_slice(&(t.ne.len() as u32).to_le_bytes());
            for d in &t.ne {
                h.extend_from_slice(&d.to_le_bytes());
            }
            h.extend_from_slice(&t.ty.id().to_le_bytes());
            h.extend_from_slice(&offset.to_le_bytes());
            offset = align_up(offset.saturating_add(t.data.len() as u64), align);
        }
        let padded = align_up(h.len() as u64, align) as usize;
        h.resize(padded, 0);
        h
    }

    /// Writes the file. Wrap `w` in a `BufWriter` when it is unbuffered.
    pub fn write_to<W: Write>(&self, mut w: W) -> io::Result<()> {
        w.write_all(&self.header())?;
        let align = u64::from(self.alignment());
        for t in &self.tensors {
            w.write_all(&t.data)?;
            let len = t.data.len() as u64;
            let pad = align_up(len, align).saturating_sub(len);
            io::copy(&mut io::repeat(0).take(pad), &mut w)?;
        }
        w.flush()
    }

    /// The whole file in memory.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = self.write_to(&mut out);
        out
    }
}

fn align_up(x: u64, align: u64) -> u64 {
    x.div_ceil(align).saturating_mul(align)
}

fn put_str(h: &mut Vec<u8>, s: &str) {
    h.extend_from_slice(&(s.len() as u64).to_le_bytes());
    h.extend_from_slice(s.as_bytes());
}

fn value_type(v: &MetaValue) -> ValueType {
    match v {
        MetaValue::U8(_) => ValueType::U8,
        MetaValue::I8(_) => ValueType::I8,
        MetaValue::U16(_) => ValueType::U16,
        MetaValue::I16(_) => ValueType::I16,
        MetaValue::U32(_) => ValueType::U32,
        MetaValue::I32(_) => ValueType::I32,
        MetaValue::F32(_) => ValueType::F32,
        MetaValue::Bool(_) => ValueType::Bool,
        MetaValue::String(_) => ValueType::String,
        MetaValue::Array(_) => ValueType::Array,
        MetaValue::U64(_) => ValueType::U64,
        MetaValue::I64(_) => ValueType::I64,
        MetaValue::F64(_) => ValueType::F64,
    }
}

fn put_value(h: &mut Vec<u8>, v: &MetaValue) {
    h.extend_from_slice(&value_type(v).id().to_le_bytes());
    match v {
        MetaValue::U8(x) => h.push(*x),
        MetaValue::I8(x) => h.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U16(x) => h.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I16(x) => h.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U32(x) => h.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => h.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => h.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => h.push(u8::from(*x)),
        MetaValue::String(s) => put_str(h, s),
        MetaValue::U64(x) => h.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I64(x) => h.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => h.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Array(a) => put_array(h, a),
    }
}

fn put_array(h: &mut Vec<u8>, a: &MetaArray) {
    fn head(h: &mut Vec<u8>, ty: ValueType, len: usize) {
        h.extend_from_slice(&ty.id().to_le_bytes());
        h.extend_from_slice(&(len as u64).to_le_bytes());
    }
    macro_rules! le {
        ($ty:expr, $v:expr) => {{
            head(h, $ty, $v.len());
            for x in $v {
                h.extend_from_slice(&x.to_le_bytes());
            }
        }};
    }
    match a {
        MetaArray::U8(v) => le!(ValueType::U8, v),
        MetaArray::I8(v) => le!(ValueType::I8, v),
        MetaArray::U16(v) => le!(ValueType::U16, v),
        MetaArray::I16(v) => le!(ValueType::I16, v),
        MetaArray::U32(v) => le!(ValueType::U32, v),
        MetaArray::I32(v) => le!(ValueType::I32, v),
        MetaArray::F32(v) => le!(ValueType::F32, v),
        MetaArray::U64(v) => le!(ValueType::U64, v),
        MetaArray::I64(v) => le!(ValueType::I64, v),
        MetaArray::F64(v) => le!(ValueType::F64, v),
        MetaArray::Bool(v) => {
            head(h, ValueType::Bool, v.len());
            h.extend(v.iter().map(|&b| u8::from(b)));
        }
        MetaArray::String(v) => {
            head(h, ValueType::String, v.len());
            for s in v {
                put_str(h, s);
            }
        }
    }
}
