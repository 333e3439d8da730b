//! The validated file view.

use crate::cursor::Cursor;
use crate::error::Error;
use crate::tensor::{TensorInfo, MAX_DIMS};
use crate::types::{GgmlType, ValueType};
use crate::value::{read_value, Array, F32Array, Value};
use crate::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, MAX_KVS, MAX_NAME_LEN, MAX_TENSORS, VERSION};

/// Bytes of the fixed header: magic, version, tensor count, key/value count.
const HEADER_LEN: usize = 4 + 4 + 8 + 8;
/// Smallest encoded key/value pair: empty key, type id, one-byte value.
const MIN_KV_LEN: u64 = 8 + 4 + 1;
/// Smallest encoded tensor info: empty name, `n_dims`, one dimension, type, offset.
const MIN_TENSOR_INFO_LEN: u64 = 8 + 4 + 8 + 4 + 8;

/// A validated, zero-copy view of a GGUF v3 file.
///
/// [`Gguf::parse`] checks the whole header and every tensor's data range
/// once; the accessors then only decode. Nothing is copied: strings, arrays
/// and tensor data borrow from the input buffer.
#[derive(Clone, Copy, Debug)]
pub struct Gguf<'a> {
    bytes: &'a [u8],
    version: u32,
    alignment: u32,
    n_kv: usize,
    n_tensors: usize,
    tensor_start: usize,
    data_offset: u64,
}

/// A tensor info as stored, before its data slice is attached.
struct RawTensor<'a> {
    name: &'a str,
    n_dims: u32,
    ne: [u64; MAX_DIMS],
    ty: GgmlType,
    offset: u64,
    size: u64,
}

impl<'a> Gguf<'a> {
    /// Validates `bytes` as a GGUF v3 file.
    ///
    /// Checks: magic and version; key/value and tensor counts (caps
    /// [`MAX_KVS`], [`MAX_TENSORS`], and what the buffer can hold); every
    /// key and value (type ids 0..=12, no nested arrays, bools 0 or 1, UTF-8
    /// strings within [`MAX_NAME_LEN`]/[`crate::MAX_STRING_LEN`], unique
    /// keys); `general.alignment` (a `u32` power of two, default 32); every
    /// tensor info (UTF-8 unique name, 1..=4 non-zero dimensions, known type,
    /// `ne[0]` a multiple of the block size, byte size without overflow,
    /// aligned offset); and that every tensor's data lies inside `bytes`
    /// without overlapping another's.
    ///
    /// Cost: one pass over the header plus a pass over the tensor infos per
    /// tensor (the name and overlap checks are pairwise, hence the tensor
    /// cap); the duplicate-key check keeps [`MAX_KVS`] string slices on the
    /// stack (2 KiB on 32-bit targets).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let mut c = Cursor::new(bytes, 0);
        let magic = c.u32()?;
        if magic != MAGIC {
            return Err(Error::BadMagic { found: magic });
        }
        let version = c.u32()?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion { found: version });
        }
        let n_tensors = c.u64()?;
        let n_kv = c.u64()?;
        let rem = c.remaining() as u64;
        let max_kv = (MAX_KVS as u64).min(rem / MIN_KV_LEN);
        if n_kv > max_kv {
            return Err(Error::TooManyKvs {
                count: n_kv,
                max: max_kv,
            });
        }
        let max_tensors = (MAX_TENSORS as u64).min(rem / MIN_TENSOR_INFO_LEN);
        if n_tensors > max_tensors {
            return Err(Error::TooManyTensors {
                count: n_tensors,
                max: max_tensors,
            });
        }
        // Both counts are now at most their caps, which fit any usize.
        let n_kv = usize::try_from(n_kv).map_err(|_| Error::TooManyKvs {
            count: n_kv,
            max: max_kv,
        })?;
        let n_tensors = usize::try_from(n_tensors).map_err(|_| Error::TooManyTensors {
            count: n_tensors,
            max: max_tensors,
        })?;

        let alignment = validate_kvs(&mut c, n_kv)?;

        let tensor_start = c.pos();
        for index in 0..n_tensors {
            read_tensor_info(&mut c, index, alignment)?;
        }
        let data_offset = align_up(c.pos() as u64, alignment);

        let gguf = Gguf {
            bytes,
            version,
            alignment,
            n_kv,
            n_tensors,
            tensor_start,
            data_offset,
        };
        gguf.validate_data_ranges()?;
        Ok(gguf)
    }

    /// Second pass over the tensor infos: data inside the buffer, unique
    /// names, no overlap. Quadratic in the tensor count, which is capped.
    fn validate_data_ranges(&self) -> Result<(), Error> {
        let file_len = self.bytes.len() as u64;
        let mut outer = Cursor::new(self.bytes, self.tensor_start);
        for second in 0..self.n_tensors {
            let t = read_tensor_info(&mut outer, second, self.alignment)?;
            let end = self
                .data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.size))
                .unwrap_or(u64::MAX);
            if end > file_len {
                return Err(Error::TensorOutOfBounds {
                    tensor: second,
                    end,
                    file_len,
                });
            }
            let mut inner = Cursor::new(self.bytes, self.tensor_start);
            for first in 0..second {
                let u = read_tensor_info(&mut inner, first, self.alignment)?;
                if u.name == t.name {
                    return Err(Error::DuplicateTensorName { first, second });
                }
                // Both ranges are inside the buffer, so the sums cannot overflow.
                let overlap = t.offset < u.offset.saturating_add(u.size)
                    && u.offset < t.offset.saturating_add(t.size);
                if overlap {
                    return Err(Error::OverlappingTensors { first, second });
                }
            }
        }
        Ok(())
    }

    /// The file's GGUF version (always 3 after a successful parse).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data alignment in bytes: `general.alignment`, or 32 when absent.
    pub fn alignment(&self) -> u32 {
        self.alignment
    }

    /// Absolute offset of the data section (a multiple of [`Gguf::alignment`]).
    ///
    /// It may equal or exceed the buffer length when the file has no tensors.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The whole buffer the view was parsed from.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of metadata key/value pairs.
    pub fn kv_count(&self) -> usize {
        self.n_kv
    }

    /// Number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.n_tensors
    }

    /// The metadata pairs in file order.
    pub fn metadata(&self) -> Metadata<'a> {
        Metadata {
            cursor: Cursor::new(self.bytes, HEADER_LEN),
            left: self.n_kv,
        }
    }

    /// The value of `key`, `None` if absent.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.metadata().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    fn require(&self, key: &'static str) -> Result<Value<'a>, Error> {
        self.get(key).ok_or(Error::MissingKey { key })
    }

    /// The `u32` value of `key` ([`Error::MissingKey`] or [`Error::WrongType`] otherwise).
    pub fn get_u32(&self, key: &'static str) -> Result<u32, Error> {
        let v = self.require(key)?;
        v.as_u32().ok_or(wrong(key, ValueType::U32, &v))
    }

    /// The `u64` value of `key`.
    pub fn get_u64(&self, key: &'static str) -> Result<u64, Error> {
        let v = self.require(key)?;
        v.as_u64().ok_or(wrong(key, ValueType::U64, &v))
    }

    /// The `f32` value of `key`.
    pub fn get_f32(&self, key: &'static str) -> Result<f32, Error> {
        let v = self.require(key)?;
        v.as_f32().ok_or(wrong(key, ValueType::F32, &v))
    }

    /// The bool value of `key`.
    pub fn get_bool(&self, key: &'static str) -> Result<bool, Error> {
        let v = self.require(key)?;
        v.as_bool().ok_or(wrong(key, ValueType::Bool, &v))
    }

    /// The string value of `key`.
    pub fn get_str(&self, key: &'static str) -> Result<&'a str, Error> {
        let v = self.require(key)?;
        v.as_str().ok_or(wrong(key, ValueType::String, &v))
    }

    /// The array value of `key`, of any element type.
    pub fn get_array(&self, key: &'static str) -> Result<Array<'a>, Error> {
        let v = self.require(key)?;
        v.as_array().ok_or(wrong(key, ValueType::Array, &v))
    }

    /// The `f32` array value of `key` ([`Error::WrongArrayType`] for other element types).
    pub fn get_f32_array(&self, key: &'static str) -> Result<F32Array<'a>, Error> {
        let a = self.get_array(key)?;
        a.as_f32().ok_or(Error::WrongArrayType {
            key,
            expected: ValueType::F32,
            found: a.elem_type(),
        })
    }

    /// The tensors in file order.
    pub fn tensors(&self) -> Tensors<'a> {
        Tensors {
            bytes: self.bytes,
            cursor: Cursor::new(self.bytes, self.tensor_start),
            index: 0,
            count: self.n_tensors,
            alignment: self.alignment,
            data_offset: self.data_offset,
        }
    }

    /// The tensor called `name`, `None` if absent.
    pub fn tensor(&self, name: &str) -> Option<TensorInfo<'a>> {
        self.tensors().find(|t| t.name == name)
    }
}

fn wrong(key: &'static str, expected: ValueType, found: &Value<'_>) -> Error {
    Error::WrongType {
        key,
        expected,
        found: found.value_type(),
    }
}

/// Rounds `x` up to a multiple of the power of two `alignment`.
fn align_up(x: u64, alignment: u32) -> u64 {
    let mask = u64::from(alignment).saturating_sub(1);
    x.saturating_add(mask) & !mask
}

/// Validates `n_kv` key/value pairs at `c` and returns the data alignment.
fn validate_kvs(c: &mut Cursor<'_>, n_kv: usize) -> Result<u32, Error> {
    let mut alignment = DEFAULT_ALIGNMENT;
    let mut keys: [&str; MAX_KVS] = [""; MAX_KVS];
    for second in 0..n_kv {
        let (key, value) = read_kv(c)?;
        let earlier = keys.get(..second).unwrap_or(&[]);
        if let Some(first) = earlier.iter().position(|k| *k == key) {
            return Err(Error::DuplicateKey { first, second });
        }
        if let Some(slot) = keys.get_mut(second) {
            *slot = key;
        }
        if key == ALIGNMENT_KEY {
            match value {
                Value::U32(a) if a.is_power_of_two() => alignment = a,
                Value::U32(a) => return Err(Error::BadAlignment { alignment: a }),
                other => return Err(wrong(ALIGNMENT_KEY, ValueType::U32, &other)),
            }
        }
    }
    Ok(alignment)
}

fn read_kv<'a>(c: &mut Cursor<'a>) -> Result<(&'a str, Value<'a>), Error> {
    let key = c.string(MAX_NAME_LEN)?;
    let type_at = c.pos();
    let found = c.u32()?;
    let ty = ValueType::from_u32(found).ok_or(Error::InvalidValueType {
        offset: type_at,
        found,
    })?;
    let value = read_value(c, ty)?;
    Ok((key, value))
}

fn read_tensor_info<'a>(
    c: &mut Cursor<'a>,
    tensor: usize,
    alignment: u32,
) -> Result<RawTensor<'a>, Error> {
    let name = c.string(MAX_NAME_LEN)?;
    let n_dims = c.u32()?;
    let dims = usize::try_from(n_dims).unwrap_or(usize::MAX);
    if !(1..=MAX_DIMS).contains(&dims) {
        return Err(Error::BadDimCount { tensor, n_dims });
    }
    let mut ne = [1u64; MAX_DIMS];
    for (dim, slot) in ne.iter_mut().take(dims).enumerate() {
        let v = c.u64()?;
        if v == 0 {
            return Err(Error::ZeroDimension { tensor, dim });
        }
        *slot = v;
    }
    let type_id = c.u32()?;
    let ty = GgmlType::from_u32(type_id).ok_or(Error::UnknownTensorType { tensor, type_id })?;
    let block_size = ty.block_size();
    if !ne[0].is_multiple_of(block_size as u64) {
        return Err(Error::NotBlockMultiple {
            tensor,
            ne0: ne[0],
            block_size,
        });
    }
    let size = ne
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .and_then(|n| ty.bytes_for(n))
        .ok_or(Error::TooManyElements { tensor })?;
    let offset = c.u64()?;
    if !offset.is_multiple_of(u64::from(alignment)) {
        return Err(Error::MisalignedTensor {
            tensor,
            offset,
            alignment,
        });
    }
    Ok(RawTensor {
        name,
        n_dims,
        ne,
        ty,
        offset,
        size,
    })
}

/// Iterator over the metadata pairs of a [`Gguf`], in file order.
#[derive(Clone, Debug)]
pub struct Metadata<'a> {
    cursor: Cursor<'a>,
    left: usize,
}

impl<'a> Iterator for Metadata<'a> {
    type Item = (&'a str, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        // Validated by `Gguf::parse`; an error cannot happen and ends the iteration.
        match read_kv(&mut self.cursor) {
            Ok(kv) => Some(kv),
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// Iterator over the tensors of a [`Gguf`], in file order.
#[derive(Clone, Debug)]
pub struct Tensors<'a> {
    bytes: &'a [u8],
    cursor: Cursor<'a>,
    index: usize,
    count: usize,
    alignment: u32,
    data_offset: u64,
}

impl<'a> Tensors<'a> {
    fn decode(&mut self) -> Option<TensorInfo<'a>> {
        let raw = read_tensor_info(&mut self.cursor, self.index, self.alignment).ok()?;
        let start = usize::try_from(self.data_offset.checked_add(raw.offset)?).ok()?;
        let end = start.checked_add(usize::try_from(raw.size).ok()?)?;
        let data = self.bytes.get(start..end)?;
        Some(TensorInfo {
            name: raw.name,
            n_dims: raw.n_dims,
            ne: raw.ne,
            ty: raw.ty,
            offset: raw.offset,
            data,
        })
    }
}

impl<'a> Iterator for Tensors<'a> {
    type Item = TensorInfo<'a>;

    fn next(&mut self) -> Option<TensorInfo<'a>> {
        if self.index >= self.count {
            return None;
        }
        // Validated by `Gguf::parse`; a failure cannot happen and ends the iteration.
        let t = self.decode();
        self.index = if t.is_some() {
            self.index.saturating_add(1)
        } else {
            self.count
        };
        t
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.count.saturating_sub(self.index)))
    }
}
