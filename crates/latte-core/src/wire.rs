//! Little-endian byte writer and reader for the snapshot format.

/// Sequential little-endian writer over a slice of exactly the right length.
pub(crate) struct Writer<'o> {
    out: &'o mut [u8],
    at: usize,
}

impl<'o> Writer<'o> {
    pub(crate) fn new(out: &'o mut [u8]) -> Self {
        Writer { out, at: 0 }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) {
        let end = self.at.saturating_add(bytes.len());
        if let Some(dst) = self.out.get_mut(self.at..end) {
            dst.copy_from_slice(bytes);
        }
        self.at = end;
    }
}

/// Sequential little-endian reader; reads past the end give zeros (callers
/// check the length first).
pub(crate) struct Reader<'b> {
    b: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    pub(crate) fn new(b: &'b [u8]) -> Self {
        Reader { b, at: 0 }
    }

    pub(crate) fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut v = [0u8; N];
        if let Some(src) = self.b.get(self.at..self.at.saturating_add(N)) {
            v.copy_from_slice(src);
        }
        self.at = self.at.saturating_add(N);
        v
    }
    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
}
