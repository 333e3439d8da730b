//! The two small hashes the snapshot format uses: 64-bit FNV-1a (model
//! fingerprints) and CRC-32 (snapshot checksums). Both are byte-serial,
//! table-light and need no allocator.

/// 64-bit FNV-1a (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fnv64(u64);

impl Fnv64 {
    pub(crate) const fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    /// `usize` hashed as a little-endian `u64`, so the value does not depend
    /// on the target's pointer width.
    pub(crate) fn usize(&mut self, v: usize) {
        self.u64(v as u64);
    }

    /// The values' little-endian IEEE bytes.
    pub(crate) fn f32s(&mut self, v: &[f32]) {
        for x in v {
            self.bytes(&x.to_bits().to_le_bytes());
        }
    }

    /// The values' little-endian IEEE half-precision bytes.
    pub(crate) fn f16s(&mut self, v: &[half::f16]) {
        for x in v {
            self.bytes(&x.to_bits().to_le_bytes());
        }
    }

    pub(crate) const fn finish(&self) -> u64 {
        self.0
    }
}

/// CRC-32/ISO-HDLC (the zlib, PNG and Ethernet CRC): reflected polynomial
/// `0xEDB88320`, initial value and final xor `0xFFFFFFFF`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Crc32(u32);

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

impl Crc32 {
    pub(crate) const fn new() -> Self {
        Crc32(0xFFFF_FFFF)
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        let mut c = self.0;
        for &b in bytes {
            c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    pub(crate) const fn finish(&self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

/// CRC-32 of `bytes` in one call.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.bytes(bytes);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fnv(bytes: &[u8]) -> u64 {
        let mut h = Fnv64::new();
        h.bytes(bytes);
        h.finish()
    }

    #[test]
    fn fnv1a_64_known_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn crc32_known_values() {
        // The CRC catalogue's check value, and two easy ones.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"a"), 0xE8B7_BE43);
        // Streaming equals one call.
        let mut c = Crc32::new();
        c.bytes(b"1234");
        c.bytes(b"56789");
        assert_eq!(c.finish(), 0xCBF4_3926);
    }
}
