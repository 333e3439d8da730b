//! A tiny GGUF byte builder for tests: every field is written by hand, so
//! malformed files can be built as easily as good ones.
#![allow(dead_code)]

pub const F32: u32 = 0;
pub const F16: u32 = 1;
pub const Q4_0: u32 = 2;
pub const Q8_0: u32 = 8;

pub const T_U8: u32 = 0;
pub const T_U32: u32 = 4;
pub const T_F32: u32 = 6;
pub const T_BOOL: u32 = 7;
pub const T_STRING: u32 = 8;
pub const T_ARRAY: u32 = 9;
pub const T_U64: u32 = 10;

#[derive(Default, Clone)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// Magic, version 3 and the two counts.
    pub fn header(n_tensors: u64, n_kv: u64) -> Self {
        Bytes::default()
            .raw(b"GGUF")
            .u32(3)
            .u64(n_tensors)
            .u64(n_kv)
    }
    pub fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    pub fn u8(self, v: u8) -> Self {
        self.raw(&[v])
    }
    pub fn u32(self, v: u32) -> Self {
        self.raw(&v.to_le_bytes())
    }
    pub fn u64(self, v: u64) -> Self {
        self.raw(&v.to_le_bytes())
    }
    pub fn f32(self, v: f32) -> Self {
        self.raw(&v.to_le_bytes())
    }
    /// A `gguf_string`.
    pub fn str(self, s: &str) -> Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
    pub fn kv_u32(self, key: &str, v: u32) -> Self {
        self.str(key).u32(T_U32).u32(v)
    }
    pub fn kv_str(self, key: &str, v: &str) -> Self {
        self.str(key).u32(T_STRING).str(v)
    }
    /// A tensor info: name, n_dims, ne, type, offset.
    pub fn tensor(self, name: &str, ne: &[u64], ty: u32, offset: u64) -> Self {
        let mut b = self.str(name).u32(ne.len() as u32);
        for &d in ne {
            b = b.u64(d);
        }
        b.u32(ty).u64(offset)
    }
    /// Zero bytes up to the next multiple of `align`.
    pub fn pad(mut self, align: usize) -> Self {
        while !self.0.len().is_multiple_of(align) {
            self.0.push(0);
        }
        self
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// A small valid file: two KVs, tensor `a` (4 x F32 = 1, 2, 3, 4) at data
/// offset 0 and tensor `b` (2 x 2 F16, all 1.0) at data offset 32.
pub fn valid() -> Bytes {
    let mut b = Bytes::header(2, 2)
        .kv_str("general.architecture", "latte")
        .kv_u32("latte.vocab_size", 11)
        .tensor("a", &[4], F32, 0)
        .tensor("b", &[2, 2], F16, 32)
        .pad(32);
    for v in [1.0f32, 2.0, 3.0, 4.0] {
        b = b.f32(v);
    }
    b = b.raw(&[0; 16]);
    // 1.0 in IEEE half precision is 0x3c00.
    for _ in 0..4 {
        b = b.raw(&[0x00, 0x3c]);
    }
    b.pad(32)
}
