//! Bounds-checked little-endian reads from the untrusted buffer.

use crate::error::Error;

/// A read position in a byte buffer. Every read is checked; nothing indexes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], pos: usize) -> Self {
        Cursor { bytes, pos }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current position.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes; `UnexpectedEnd` if fewer are left.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(Error::UnexpectedEnd { offset: self.pos })?;
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or(Error::UnexpectedEnd { offset: self.pos })?;
        self.pos = end;
        Ok(out)
    }

    /// `take` with the length given as a `u64` from the file.
    pub(crate) fn take_u64_len(&mut self, n: u64) -> Result<&'a [u8], Error> {
        let n = usize::try_from(n).map_err(|_| Error::UnexpectedEnd { offset: self.pos })?;
        self.take(n)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let at = self.pos;
        let s = self.take(N)?;
        <[u8; N]>::try_from(s).map_err(|_| Error::UnexpectedEnd { offset: at })
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(u8::from_le_bytes(self.array::<1>()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.array::<2>()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array::<4>()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.array::<8>()?))
    }

    /// A `gguf_string`: `u64` length (at most `max`), then UTF-8 bytes.
    pub(crate) fn string(&mut self, max: u64) -> Result<&'a str, Error> {
        let at = self.pos;
        let len = self.u64()?;
        if len > max {
            return Err(Error::StringTooLong {
                offset: at,
                len,
                max,
            });
        }
        let start = self.pos;
        let raw = self.take_u64_len(len)?;
        core::str::from_utf8(raw).map_err(|_| Error::InvalidUtf8 { offset: start })
    }
}
