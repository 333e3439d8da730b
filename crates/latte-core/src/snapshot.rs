//! State snapshots: a session's recurrent state, position, last logits and
//! its sampler, saved to bytes and restored later, e.g. after a reset or a
//! power loss on a microcontroller, or to continue a conversation on a host.
//!
//! A restored session continues **bit for bit** as the saved one would have:
//! same logits, same sampled tokens. Saving and restoring need no allocator;
//! the size is fixed per model ([`crate::Model::snapshot_len`]).
//!
//! ```no_run
//! use latte_core::{Error, Model, Sampler, Session};
//!
//! // `flash` is any memory that survives a reset, at least
//! // `model.snapshot_len()` bytes (e.g. a flash sector or a file).
//! fn checkpoint(s: &Session, sampler: &Sampler, flash: &mut [u8]) -> Result<usize, Error> {
//!     s.save_snapshot(sampler, flash)
//! }
//!
//! fn resume(model: &Model, state: &mut [f32], scratch: &mut [f32], flash: &[u8])
//!     -> Result<(), Error> {
//!     let mut s = Session::new(model, state, scratch)?;
//!     let mut sampler = Sampler::new(Default::default())?; // replaced by the saved one
//!     s.restore_snapshot(&mut sampler, flash)?;            // refused if damaged or foreign
//!     let next = s.sample(&mut sampler);                   // as if never interrupted
//!     s.step(next)?;
//!     Ok(())
//! }
//! ```
//!
//! # Format (version 1)
//!
//! Every field is little-endian, whatever the target's byte order.
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 4 | magic `LTSS` |
//! | 4 | 2 | format version, `u16` = [`VERSION`] |
//! | 6 | 2 | byte-order mark `u16` `0xFEFF` (bytes `FF FE`) |
//! | 8 | 8 | total length in bytes, `u64` (header to checksum inclusive) |
//! | 16 | 8 | model fingerprint, `u64` ([`crate::Model::fingerprint`]) |
//! | 24 | 8 | position, `u64` (tokens fed) |
//! | 32 | 8 | `S`: number of state values, `u64` |
//! | 40 | 8 | `V`: number of logits, `u64` |
//! | 48 | [`SAMPLER_STATE_BYTES`] | the sampler ([`Sampler::save_state`]) |
//! | 1120 | `4 V` | the last logits (`f32` bits) |
//! | 1120 + 4V | `4 S` | the recurrent state (`f32` bits, [`Session`] layout) |
//! | end - 4 | 4 | CRC-32 (ISO-HDLC, as zlib) of every byte before it |
//!
//! Floats are stored as their exact bit patterns (`-inf` in `m` included).
//!
//! # Checks on restore, in order
//!
//! 1. magic ([`Error::SnapshotMagic`]), byte-order mark swapped
//!    ([`Error::SnapshotByteOrder`]), version ([`Error::SnapshotVersion`]);
//! 2. length: shorter than the header or than the stored total length
//!    ([`Error::SnapshotTruncated`]; a damaged length field reads as
//!    truncated or as a checksum error). Bytes after the total length are
//!    ignored, so a snapshot can be read from a larger flash sector;
//! 3. CRC-32 ([`Error::SnapshotChecksum`]);
//! 4. model fingerprint ([`Error::SnapshotModelMismatch`]);
//! 5. sizes, byte-order mark and sampler fields consistent
//!    ([`Error::SnapshotInvalid`]).
//!
//! Nothing (session or sampler) changes unless every check passes.

use crate::error::Error;
use crate::hash::{crc32, Crc32};
use crate::model::Model;
use crate::sampler::{Sampler, SAMPLER_STATE_BYTES};
use crate::session::Session;
use crate::wire::{Reader, Writer};

/// The first four bytes of a snapshot.
pub const MAGIC: [u8; 4] = *b"LTSS";
/// The snapshot format version this build reads and writes.
pub const VERSION: u16 = 1;
/// The byte-order mark, stored little-endian (bytes `FF FE`).
pub const BYTE_ORDER_MARK: u16 = 0xFEFF;
/// Bytes before the sampler state.
pub const HEADER_LEN: usize = 48;
/// Bytes of the trailing checksum.
pub const CHECKSUM_LEN: usize = 4;

/// What a snapshot's header says, after the container checks (magic, byte
/// order, version, length, checksum) have passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Format version.
    pub version: u16,
    /// Total length in bytes.
    pub len: usize,
    /// Fingerprint of the model it was saved from.
    pub fingerprint: u64,
    /// Tokens fed before it was saved.
    pub position: u64,
    /// Recurrent state values.
    pub state_len: usize,
    /// Logits (the vocabulary size).
    pub vocab_size: usize,
}

/// Bytes of a snapshot for `state_len` state values and `vocab_size` logits
/// (`None` on overflow).
fn snapshot_len_for(state_len: usize, vocab_size: usize) -> Option<usize> {
    HEADER_LEN
        .checked_add(SAMPLER_STATE_BYTES)?
        .checked_add(vocab_size.checked_mul(4)?)?
        .checked_add(state_len.checked_mul(4)?)?
        .checked_add(CHECKSUM_LEN)
}

impl SnapshotInfo {
    /// Checks a snapshot's container (steps 1 to 3 of the module
    /// documentation) without a model, and reads its header.
    ///
    /// Errors: [`Error::SnapshotMagic`], [`Error::SnapshotByteOrder`],
    /// [`Error::SnapshotVersion`], [`Error::SnapshotTruncated`],
    /// [`Error::SnapshotChecksum`], and [`Error::SnapshotInvalid`] for a
    /// byte-order mark that is neither order or sizes that do not add up to
    /// the stored length.
    pub fn read(bytes: &[u8]) -> Result<SnapshotInfo, Error> {
        let head = bytes.get(..MAGIC.len()).unwrap_or(bytes);
        if head != &MAGIC[..head.len()] {
            return Err(Error::SnapshotMagic);
        }
        let header = bytes.get(..HEADER_LEN).ok_or(Error::SnapshotTruncated {
            need: HEADER_LEN,
            got: bytes.len(),
        })?;
        let mut r = Reader::new(header);
        let _magic: [u8; 4] = r.take();
        let version = r.u16();
        let bom = r.u16();
        if bom == BYTE_ORDER_MARK.swap_bytes() {
            return Err(Error::SnapshotByteOrder);
        }
        if version != VERSION {
            return Err(Error::SnapshotVersion {
                found: version,
                supported: VERSION,
            });
        }
        let total = r.u64();
        let fingerprint = r.u64();
        let position = r.u64();
        let state_len = r.u64();
        let vocab_size = r.u64();
        let len = usize::try_from(total)
            .ok()
            .filter(|&t| t <= bytes.len())
            .ok_or(Error::SnapshotTruncated {
                need: usize::try_from(total).unwrap_or(usize::MAX),
                got: bytes.len(),
            })?;
        if len < HEADER_LEN + CHECKSUM_LEN {
            return Err(Error::SnapshotInvalid {
                what: "total length is shorter than the header",
            });
        }
        let body_len = len - CHECKSUM_LEN;
        let (body, rest) = bytes.split_at(body_len);
        let mut stored = [0u8; 4];
        stored.copy_from_slice(&rest[..CHECKSUM_LEN]);
        let stored = u32::from_le_bytes(stored);
        let computed = crc32(body);
        if stored != computed {
            return Err(Error::SnapshotChecksum { stored, computed });
        }
        // From here on the bytes are what a writer wrote; check that the
        // writer was consistent.
        if bom != BYTE_ORDER_MARK {
            return Err(Error::SnapshotInvalid {
                what: "byte-order mark",
            });
        }
        let (state_len, vocab_size) =
            match (usize::try_from(state_len), usize::try_from(vocab_size)) {
                (Ok(s), Ok(v)) => (s, v),
                _ => {
                    return Err(Error::SnapshotInvalid {
                        what: "sizes do not fit this target",
                    })
                }
            };
        if snapshot_len_for(state_len, vocab_size) != Some(len) {
            return Err(Error::SnapshotInvalid {
                what: "sizes do not add up to the total length",
            });
        }
        Ok(SnapshotInfo {
            version,
            len,
            fingerprint,
            position,
            state_len,
            vocab_size,
        })
    }
}

impl Model<'_> {
    /// Bytes of a snapshot of a session on this model (fixed per model):
    /// `48 + SAMPLER_STATE_BYTES + 4 V + 4 state_len() + 4`.
    pub fn snapshot_len(&self) -> usize {
        snapshot_len_for(self.state_len(), self.config.vocab_size).unwrap_or(usize::MAX)
    }
}

impl Session<'_, '_> {
    /// [`Model::snapshot_len`]: bytes [`Session::save_snapshot`] writes.
    pub fn snapshot_len(&self) -> usize {
        self.model().snapshot_len()
    }

    /// Saves the session (position, last logits, recurrent state) and
    /// `sampler` (settings, PRNG state, penalty window) to
    /// `out[..snapshot_len()]` in the format of the [module
    /// documentation](crate::snapshot); returns the number of bytes written.
    ///
    /// Cost: one pass over the state and a CRC-32 over the bytes written
    /// (the model fingerprint was computed at load).
    ///
    /// Errors: [`Error::SnapshotBufferTooSmall`] (nothing is written then).
    pub fn save_snapshot(&self, sampler: &Sampler, out: &mut [u8]) -> Result<usize, Error> {
        let len = self.snapshot_len();
        let got = out.len();
        let out = out
            .get_mut(..len)
            .ok_or(Error::SnapshotBufferTooSmall { need: len, got })?;
        let model = self.model();
        let state = self.state();
        let logits = self.logits();
        let (body, tail) = out.split_at_mut(len - CHECKSUM_LEN);
        let (header, rest) = body.split_at_mut(HEADER_LEN);
        let (sampler_area, floats) = rest.split_at_mut(SAMPLER_STATE_BYTES);
        let mut w = Writer::new(header);
        w.put(&MAGIC);
        w.put(&VERSION.to_le_bytes());
        w.put(&BYTE_ORDER_MARK.to_le_bytes());
        w.put(&(len as u64).to_le_bytes());
        w.put(&model.fingerprint().to_le_bytes());
        w.put(&self.position().to_le_bytes());
        w.put(&(state.len() as u64).to_le_bytes());
        w.put(&(logits.len() as u64).to_le_bytes());
        sampler.save_state(sampler_area)?;
        let mut w = Writer::new(floats);
        for v in logits.iter().chain(state.iter()) {
            w.put(&v.to_bits().to_le_bytes());
        }
        let mut crc = Crc32::new();
        crc.bytes(body);
        tail.copy_from_slice(&crc.finish().to_le_bytes());
        Ok(len)
    }

    /// Restores a snapshot written by [`Session::save_snapshot`] on the same
    /// model: the session's position, logits and state, and `sampler`
    /// (replaced whole: settings, PRNG state and penalty window; use
    /// [`Sampler::set_config`] afterwards to change the settings). The
    /// session and sampler then continue exactly as the saved ones would have.
    ///
    /// Errors (in the order checked; see the [module
    /// documentation](crate::snapshot)): [`Error::SnapshotMagic`],
    /// [`Error::SnapshotByteOrder`], [`Error::SnapshotVersion`],
    /// [`Error::SnapshotTruncated`], [`Error::SnapshotChecksum`],
    /// [`Error::SnapshotModelMismatch`], [`Error::SnapshotInvalid`]. The
    /// session and the sampler are unchanged on error.
    pub fn restore_snapshot(&mut self, sampler: &mut Sampler, bytes: &[u8]) -> Result<(), Error> {
        let info = SnapshotInfo::read(bytes)?;
        let model = self.model();
        if info.fingerprint != model.fingerprint() {
            return Err(Error::SnapshotModelMismatch {
                snapshot: info.fingerprint,
                model: model.fingerprint(),
            });
        }
        if info.state_len != model.state_len() || info.vocab_size != model.config().vocab_size {
            return Err(Error::SnapshotInvalid {
                what: "sizes differ from the model's",
            });
        }
        let rest = bytes
            .get(HEADER_LEN..info.len - CHECKSUM_LEN)
            .unwrap_or(&[]);
        let (sampler_bytes, floats) = rest.split_at(SAMPLER_STATE_BYTES.min(rest.len()));
        let restored = Sampler::restore_state(sampler_bytes)?;
        let (logit_bytes, state_bytes) = floats.split_at((4 * info.vocab_size).min(floats.len()));
        let read = |dst: &mut [f32], src: &[u8]| {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_bits(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            }
        };
        read(self.state_mut(), state_bytes);
        read(self.logits_mut(), logit_bytes);
        self.set_position(info.position);
        *sampler = restored;
        Ok(())
    }
}
