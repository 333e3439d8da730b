//! The C API of the Latte runtime (`include/latte.h`, generated from this
//! file by cbindgen).
//!
//! It mirrors `latte-core`: a model read in place from bytes (flash, mmap, a
//! buffer) or, with the `std` feature, from a file; the exact state and
//! scratch sizes; a session on caller buffers; feeding a prompt (token by
//! token or in chunks), stepping, the logits, sampling; snapshots; reset.
//!
//! * Every function returns a [`LatteStatus`]; [`latte_last_error`] gives the
//!   message of the last failure on this thread (with `std`; without it, of
//!   the last failure anywhere: firmware is single-threaded).
//! * Null pointers, short or misaligned buffers, bad tokens, corrupt files
//!   and snapshots from another model are errors, never crashes. With `std`,
//!   a panic (a bug) is caught at the boundary and reported as
//!   [`LatteStatus::Internal`].
//! * Without `std` (`--no-default-features`) the crate is `no_std` and
//!   allocates nothing: models, sessions and samplers live in memory the
//!   caller supplies ([`latte_model_init`], [`latte_session_init`],
//!   [`latte_sampler_init`], sized by the `*_struct_size` functions).
//! * Long work ([`latte_session_feed`], [`latte_session_prefill`]) polls an
//!   optional abort callback between tokens or chunks and stops with
//!   [`LatteStatus::Cancelled`], the session left at a token boundary.
//!
//! Pointers the caller passes in (model bytes, state, scratch) must outlive
//! the objects built on them; a model must outlive its sessions. Objects are
//! not thread-safe: use one from one thread at a time.
#![cfg_attr(not(feature = "std"), no_std)]
#![allow(clippy::missing_safety_doc)] // documented per function, in C terms

use core::ffi::{c_char, c_void};
use core::fmt::Write as _;
use core::mem::{align_of, size_of};
use core::sync::atomic::{AtomicBool, Ordering};

use latte_core::{Error, Model, RingStorage, Sampler, SamplerConfig, Session};

#[cfg(feature = "std")]
extern crate std;

/// What a call did. `LATTE_STATUS_OK` is 0; every other value is a failure,
/// described by [`latte_last_error`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatteStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument is null.
    NullPointer = 1,
    /// A buffer is too small (state, scratch, snapshot, object memory).
    BufferTooSmall = 2,
    /// A buffer is not aligned as required (model bytes: 4; object memory:
    /// the `*_struct_align` value).
    Misaligned = 3,
    /// The model file is damaged, not a Latte model, or not supported.
    InvalidModel = 4,
    /// An argument is out of range (sampler settings, chunk size, ...).
    InvalidArgument = 5,
    /// A token is outside the vocabulary, or the prompt is empty.
    InvalidToken = 6,
    /// A snapshot is damaged, of another format version or of another model.
    InvalidSnapshot = 7,
    /// The abort callback asked to stop.
    Cancelled = 8,
    /// A file could not be read (`std` only).
    Io = 9,
    /// A bug in the library (a caught panic); please report it.
    Internal = 10,
}

// ---------------------------------------------------------------------------
// The last error message.

const MSG_LEN: usize = 256;

/// A message formatted into a fixed buffer (truncated at a char boundary).
struct Msg {
    buf: [u8; MSG_LEN],
    len: usize,
}

impl Msg {
    const fn new() -> Self {
        Msg {
            buf: [0; MSG_LEN],
            len: 0,
        }
    }
}

impl core::fmt::Write for Msg {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for ch in s.chars() {
            let mut b = [0u8; 4];
            let e = ch.encode_utf8(&mut b);
            // Keep one byte for the terminating NUL.
            if self.len + e.len() >= MSG_LEN {
                return Ok(());
            }
            self.buf[self.len..self.len + e.len()].copy_from_slice(e.as_bytes());
            self.len += e.len();
        }
        Ok(())
    }
}

#[cfg(feature = "std")]
std::thread_local! {
    static LAST: core::cell::RefCell<Msg> = const { core::cell::RefCell::new(Msg::new()) };
}

#[cfg(not(feature = "std"))]
mod last {
    use core::cell::UnsafeCell;

    /// The last message, for single-threaded firmware.
    pub(crate) struct Last(pub(crate) UnsafeCell<super::Msg>);
    // SAFETY: without `std` the library is for single-threaded firmware
    // (documented in the header): the cell is never accessed concurrently.
    unsafe impl Sync for Last {}
    pub(crate) static LAST: Last = Last(UnsafeCell::new(super::Msg::new()));
}

fn with_last<R>(f: impl FnOnce(&mut Msg) -> R) -> R {
    #[cfg(feature = "std")]
    {
        LAST.with(|m| f(&mut m.borrow_mut()))
    }
    #[cfg(not(feature = "std"))]
    {
        // SAFETY: single-threaded firmware (see `last::Last`); no reference
        // to the cell outlives this call.
        f(unsafe { &mut *last::LAST.0.get() })
    }
}

/// Records `msg` as the last error and returns `status`.
fn fail(status: LatteStatus, msg: core::fmt::Arguments<'_>) -> LatteStatus {
    with_last(|m| {
        m.len = 0;
        let _ = m.write_fmt(msg);
        m.buf[m.len] = 0;
    });
    status
}

/// The status for a core error, with its message recorded.
fn core_err(e: Error) -> LatteStatus {
    let status = match e {
        Error::StateTooSmall { .. }
        | Error::ScratchTooSmall { .. }
        | Error::PrefillScratchTooSmall { .. }
        | Error::BufferLength { .. }
        | Error::SnapshotBufferTooSmall { .. }
        | Error::WorkTooSmall { .. } => LatteStatus::BufferTooSmall,
        Error::SnapshotMagic
        | Error::SnapshotByteOrder
        | Error::SnapshotVersion { .. }
        | Error::SnapshotTruncated { .. }
        | Error::SnapshotChecksum { .. }
        | Error::SnapshotModelMismatch { .. }
        | Error::SnapshotInvalid { .. } => LatteStatus::InvalidSnapshot,
        Error::TokenOutOfRange { .. } | Error::EmptyPrompt => LatteStatus::InvalidToken,
        Error::InvalidTemperature
        | Error::InvalidTopP
        | Error::InvalidRepeatPenalty
        | Error::RepeatWindowTooLarge { .. }
        | Error::ZeroSize {
            key: "prefill chunk",
        } => LatteStatus::InvalidArgument,
        Error::Misaligned { .. } => LatteStatus::Misaligned,
        _ => LatteStatus::InvalidModel,
    };
    fail(status, format_args!("{e}"))
}

/// Runs `f`, turning a panic (a bug) into [`LatteStatus::Internal`] with
/// `std`; without it panics abort (the firmware's panic handler).
fn guard(f: impl FnOnce() -> LatteStatus) -> LatteStatus {
    #[cfg(feature = "std")]
    {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(s) => s,
            Err(_) => fail(
                LatteStatus::Internal,
                format_args!("internal error (a panic in the library); please report it"),
            ),
        }
    }
    #[cfg(not(feature = "std"))]
    {
        f()
    }
}

macro_rules! non_null {
    ($($p:ident),+) => {
        $(if $p.is_null() {
            return fail(LatteStatus::NullPointer, format_args!("argument `{}` is NULL", stringify!($p)));
        })+
    };
}

/// The message of the last failure on this thread (with `std`), a
/// NUL-terminated UTF-8 string owned by the library, valid until the next
/// failing call on this thread. Empty before any failure.
#[no_mangle]
pub extern "C" fn latte_last_error() -> *const c_char {
    with_last(|m| m.buf.as_ptr() as *const c_char)
}

/// A fixed description of `status` (a [`LatteStatus`] value; any other
/// number gets "unknown status") as a NUL-terminated static string; for the
/// details of a failure use [`latte_last_error`].
#[no_mangle]
pub extern "C" fn latte_status_message(status: i32) -> *const c_char {
    let s: &'static [u8] = match status {
        0 => b"ok\0",
        1 => b"a required pointer argument is NULL\0",
        2 => b"a buffer is too small\0",
        3 => b"a buffer is not aligned as required\0",
        4 => b"the model file is damaged or not supported\0",
        5 => b"an argument is out of range\0",
        6 => b"a token is outside the vocabulary, or the prompt is empty\0",
        7 => b"the snapshot is damaged, of another version or of another model\0",
        8 => b"cancelled by the abort callback\0",
        9 => b"a file could not be read\0",
        10 => b"internal error in the library\0",
        _ => b"unknown status\0",
    };
    s.as_ptr() as *const c_char
}

// ---------------------------------------------------------------------------
// Objects in caller memory.

/// Writes `value` into `mem` (at least `size_of::<T>()` bytes, aligned for
/// `T`) and returns the pointer.
unsafe fn place<T>(
    mem: *mut c_void,
    mem_len: usize,
    value: T,
    what: &str,
    out: *mut *mut T,
) -> LatteStatus {
    if mem_len < size_of::<T>() {
        return fail(
            LatteStatus::BufferTooSmall,
            format_args!(
                "{what} memory has {mem_len} bytes, need {} ({what}_struct_size)",
                size_of::<T>()
            ),
        );
    }
    if !(mem as usize).is_multiple_of(align_of::<T>()) {
        return fail(
            LatteStatus::Misaligned,
            format_args!(
                "{what} memory must be aligned to {} bytes ({what}_struct_align)",
                align_of::<T>()
            ),
        );
    }
    let p = mem as *mut T;
    // SAFETY: checked above: `mem` is non-null (callers check), large and
    // aligned enough; the caller gives it to the library for the object's
    // life.
    // `out` is non-null (callers check).
    unsafe {
        p.write(value);
        *out = p;
    }
    LatteStatus::Ok
}

/// A slice from a C pointer and length (an empty slice for length 0, even
/// with a null pointer).
unsafe fn slice<'x, T>(p: *const T, len: usize) -> &'x [T] {
    if len == 0 {
        &[]
    } else {
        // SAFETY: the caller guarantees `len` readable elements at `p`.
        unsafe { core::slice::from_raw_parts(p, len) }
    }
}

unsafe fn slice_mut<'x, T>(p: *mut T, len: usize) -> &'x mut [T] {
    if len == 0 {
        &mut []
    } else {
        // SAFETY: the caller guarantees `len` writable elements at `p`,
        // not aliased for the object's life.
        unsafe { core::slice::from_raw_parts_mut(p, len) }
    }
}

// ---------------------------------------------------------------------------
// Models.

/// A validated model whose weights are read in place. Opaque.
pub struct LatteModel {
    model: Model<'static>,
    /// Set by the model's first session: from then on the model's sizes
    /// are fixed ([`latte_model_set_ring_storage`] refuses).
    has_sessions: AtomicBool,
    /// With `std`, the bytes of a model the library loaded or copied
    /// (the model borrows them; dropped after it).
    #[cfg(feature = "std")]
    _owned: Option<std::vec::Vec<u32>>,
}

/// Bytes of memory [`latte_model_init`] needs.
#[no_mangle]
pub extern "C" fn latte_model_struct_size() -> usize {
    size_of::<LatteModel>()
}

/// Alignment [`latte_model_init`]'s memory needs.
#[no_mangle]
pub extern "C" fn latte_model_struct_align() -> usize {
    align_of::<LatteModel>()
}

/// Validates the GGUF model in `bytes` (`len` bytes, 4-byte aligned, read
/// in place: they must outlive the model) and builds the model in `mem`
/// (`mem_len` bytes, [`latte_model_struct_size`] and
/// [`latte_model_struct_align`]). On success `*out` points into `mem`.
/// Nothing to free.
#[no_mangle]
pub unsafe extern "C" fn latte_model_init(
    mem: *mut c_void,
    mem_len: usize,
    bytes: *const u8,
    len: usize,
    out: *mut *mut LatteModel,
) -> LatteStatus {
    guard(|| {
        non_null!(mem, bytes, out);
        // SAFETY: the caller gives `len` bytes that outlive the model.
        let data: &'static [u8] = unsafe { slice(bytes, len) };
        let model = match Model::from_gguf(data) {
            Ok(m) => m,
            Err(e) => return core_err(e),
        };
        let value = LatteModel {
            model,
            has_sessions: AtomicBool::new(false),
            #[cfg(feature = "std")]
            _owned: None,
        };
        // SAFETY: `mem` and `out` are non-null; `place` checks size and alignment.
        unsafe { place(mem, mem_len, value, "latte_model", out) }
    })
}

#[cfg(feature = "std")]
fn model_from_copy(src: &[u8], out: *mut *mut LatteModel) -> LatteStatus {
    use std::boxed::Box;
    // A 4-byte-aligned copy: the core reads F32 tensors in place.
    let len = src.len();
    let mut words = std::vec![0u32; len.div_ceil(4)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..len].copy_from_slice(src);
    let bytes: &[u8] = &bytemuck::cast_slice::<u32, u8>(&words)[..len];
    // SAFETY: the model borrows the heap buffer of `words`, which the
    // returned object owns and never changes; the model field is declared
    // (and so dropped) first.
    let data: &'static [u8] = unsafe { core::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
    let model = match Model::from_gguf(data) {
        Ok(m) => m,
        Err(e) => return core_err(e),
    };
    let b = Box::new(LatteModel {
        model,
        has_sessions: AtomicBool::new(false),
        _owned: Some(words),
    });
    // SAFETY: `out` was checked non-null by the caller of this function.
    unsafe { *out = Box::into_raw(b) };
    LatteStatus::Ok
}

/// Reads and validates the model file at `path` (a NUL-terminated path) and
/// allocates the model; free it with [`latte_model_free`]. `std` only.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn latte_model_load(
    path: *const c_char,
    out: *mut *mut LatteModel,
) -> LatteStatus {
    guard(|| {
        non_null!(path, out);
        // SAFETY: the caller passes a NUL-terminated string.
        let cpath = unsafe { core::ffi::CStr::from_ptr(path) };
        let Ok(p) = cpath.to_str() else {
            return fail(
                LatteStatus::InvalidArgument,
                format_args!("the path is not valid UTF-8"),
            );
        };
        let bytes = match std::fs::read(p) {
            Ok(b) => b,
            Err(e) => return fail(LatteStatus::Io, format_args!("cannot read {p}: {e}")),
        };
        match model_from_copy(&bytes, out) {
            LatteStatus::InvalidModel => {
                let why = with_last(|m| {
                    std::string::String::from_utf8_lossy(&m.buf[..m.len]).into_owned()
                });
                fail(LatteStatus::InvalidModel, format_args!("{p}: {why}"))
            }
            s => s,
        }
    })
}

/// Copies `len` bytes of a GGUF model (any alignment; the copy may be freed
/// by the caller afterwards) and allocates the model; free it with
/// [`latte_model_free`]. `std` only.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn latte_model_from_bytes(
    bytes: *const u8,
    len: usize,
    out: *mut *mut LatteModel,
) -> LatteStatus {
    guard(|| {
        non_null!(bytes, out);
        // SAFETY: the caller gives `len` readable bytes.
        let src = unsafe { slice(bytes, len) };
        model_from_copy(src, out)
    })
}

/// Frees a model from [`latte_model_load`] or [`latte_model_from_bytes`]
/// (NULL is ignored). Its sessions must be gone. Not for models built with
/// [`latte_model_init`]. `std` only.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn latte_model_free(model: *mut LatteModel) {
    if !model.is_null() {
        // SAFETY: the pointer came from `Box::into_raw` in this library.
        drop(unsafe { std::boxed::Box::from_raw(model) });
    }
}

unsafe fn model_ref<'m>(model: *const LatteModel) -> &'m Model<'static> {
    // SAFETY: callers check non-null; the caller keeps the model alive.
    unsafe { &(*model).model }
}

/// How an attention window's ring stores its keys and values (Macchiato
/// and attention models): the values [`latte_model_set_ring_storage`]
/// takes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatteRingStorage {
    /// 32-bit floats, the default: exact.
    F32 = 0,
    /// 16-bit floats: half the memory.
    F16 = 1,
    /// 8-bit integers with a `float` scale per head of each key and value:
    /// about a third of the memory.
    Q8 = 2,
}

/// Sets how `model`'s attention windows store keys and values (`storage`, a
/// [`LatteRingStorage`] value), which changes its state size: call it after
/// loading, before the model's first session (the sizes from
/// [`latte_model_sizes`] then include it). For Macchiato and attention
/// models only; snapshots restore only into a model with the same storage.
#[no_mangle]
pub unsafe extern "C" fn latte_model_set_ring_storage(
    model: *mut LatteModel,
    storage: i32,
) -> LatteStatus {
    guard(|| {
        non_null!(model);
        let ring = match storage {
            0 => RingStorage::F32,
            1 => RingStorage::F16,
            2 => RingStorage::Q8,
            _ => {
                return fail(
                    LatteStatus::InvalidArgument,
                    format_args!(
                        "ring storage {storage} is not a LatteRingStorage: \
                         0 (f32), 1 (f16) or 2 (q8)"
                    ),
                )
            }
        };
        // SAFETY: non-null and kept alive by the caller; read through the
        // pointer before any reference to the model is formed.
        if unsafe { (*model).has_sessions.load(Ordering::Relaxed) } {
            return fail(
                LatteStatus::InvalidArgument,
                format_args!(
                    "the model already has sessions, whose state is sized for its \
                     ring storage: set the storage before the first session"
                ),
            );
        }
        // SAFETY: no session borrows the model (checked above), and the
        // caller does not share it during this call.
        let m = unsafe { &mut (*model).model };
        let mixing = m.config().mixing;
        if mixing.window() == 0 {
            return fail(
                LatteStatus::InvalidArgument,
                format_args!(
                    "ring {}: the model has no attention window (latte.mixer = {}); \
                     ring storage is for Macchiato and attention models",
                    ring.name(),
                    mixing.name()
                ),
            );
        }
        match m.set_ring_storage(ring) {
            Ok(()) => LatteStatus::Ok,
            Err(e) => core_err(e),
        }
    })
}

/// Marks `model` as having sessions (its sizes are fixed from now on).
unsafe fn session_started(model: *const LatteModel) {
    // SAFETY: callers check non-null; the caller keeps the model alive.
    unsafe { (*model).has_sessions.store(true, Ordering::Relaxed) };
}

/// The sizes a session on `model` needs, in `float` elements: `state` and
/// `scratch` for [`latte_session_init`]; `vocab` logits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LatteModelSizes {
    /// Elements of recurrent state (constant: independent of the position).
    pub state_len: usize,
    /// Elements of scratch.
    pub scratch_len: usize,
    /// Vocabulary size (logits per step).
    pub vocab_size: usize,
    /// Bytes of a snapshot ([`latte_session_save`]).
    pub snapshot_len: usize,
    /// The model's 64-bit fingerprint (snapshots carry it).
    pub fingerprint: u64,
}

/// Writes `model`'s sizes to `*out`.
#[no_mangle]
pub unsafe extern "C" fn latte_model_sizes(
    model: *const LatteModel,
    out: *mut LatteModelSizes,
) -> LatteStatus {
    guard(|| {
        non_null!(model, out);
        // SAFETY: non-null, kept alive by the caller.
        let m = unsafe { model_ref(model) };
        let s = LatteModelSizes {
            state_len: m.state_len(),
            scratch_len: m.scratch_len(),
            vocab_size: m.config().vocab_size,
            snapshot_len: m.snapshot_len(),
            fingerprint: m.fingerprint(),
        };
        // SAFETY: `out` is non-null.
        unsafe { *out = s };
        LatteStatus::Ok
    })
}

/// `float` elements of the second scratch buffer [`latte_session_prefill`]
/// needs for chunks of `chunk` tokens.
#[no_mangle]
pub unsafe extern "C" fn latte_model_prefill_scratch_len(
    model: *const LatteModel,
    chunk: usize,
    out: *mut usize,
) -> LatteStatus {
    guard(|| {
        non_null!(model, out);
        // SAFETY: non-null, kept alive by the caller.
        let n = unsafe { model_ref(model) }.prefill_scratch_len(chunk);
        // SAFETY: `out` is non-null.
        unsafe { *out = n };
        LatteStatus::Ok
    })
}

// ---------------------------------------------------------------------------
// Samplers.

/// Sampler settings (`latte run`'s flags). [`latte_sampler_config_default`]
/// gives greedy decoding.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LatteSamplerConfig {
    /// 0 = greedy; otherwise the logits are divided by it. Finite, >= 0.
    pub temperature: f32,
    /// Keep the `top_k` most probable tokens; 0 = off.
    pub top_k: usize,
    /// Nucleus mass in (0, 1]; 1 = off.
    pub top_p: f32,
    /// Repetition penalty, > 0; 1 = off.
    pub repeat_penalty: f32,
    /// Tokens the penalty looks back at (at most 256); 0 = off.
    pub repeat_last_n: usize,
    /// Random seed.
    pub seed: u64,
}

impl From<LatteSamplerConfig> for SamplerConfig {
    fn from(c: LatteSamplerConfig) -> Self {
        SamplerConfig {
            temperature: c.temperature,
            top_k: c.top_k,
            top_p: c.top_p,
            repeat_penalty: c.repeat_penalty,
            repeat_last_n: c.repeat_last_n,
            seed: c.seed,
        }
    }
}

/// Greedy decoding, no penalty, seed 0.
#[no_mangle]
pub extern "C" fn latte_sampler_config_default() -> LatteSamplerConfig {
    let d = SamplerConfig::default();
    LatteSamplerConfig {
        temperature: d.temperature,
        top_k: d.top_k,
        top_p: d.top_p,
        repeat_penalty: d.repeat_penalty,
        repeat_last_n: d.repeat_last_n,
        seed: d.seed,
    }
}

/// A sampler: settings, random state and the penalty window. Opaque.
pub struct LatteSampler {
    sampler: Sampler,
}

/// Bytes of memory [`latte_sampler_init`] needs.
#[no_mangle]
pub extern "C" fn latte_sampler_struct_size() -> usize {
    size_of::<LatteSampler>()
}

/// Alignment [`latte_sampler_init`]'s memory needs.
#[no_mangle]
pub extern "C" fn latte_sampler_struct_align() -> usize {
    align_of::<LatteSampler>()
}

/// Validates `config` and builds a sampler in `mem`. Nothing to free.
#[no_mangle]
pub unsafe extern "C" fn latte_sampler_init(
    mem: *mut c_void,
    mem_len: usize,
    config: *const LatteSamplerConfig,
    out: *mut *mut LatteSampler,
) -> LatteStatus {
    guard(|| {
        non_null!(mem, config, out);
        // SAFETY: non-null.
        let cfg = unsafe { *config };
        let sampler = match Sampler::new(cfg.into()) {
            Ok(s) => s,
            Err(e) => return core_err(e),
        };
        // SAFETY: `mem` and `out` are non-null; `place` checks size and alignment.
        unsafe { place(mem, mem_len, LatteSampler { sampler }, "latte_sampler", out) }
    })
}

/// Allocates a sampler; free it with [`latte_sampler_free`]. `std` only.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn latte_sampler_new(
    config: *const LatteSamplerConfig,
    out: *mut *mut LatteSampler,
) -> LatteStatus {
    guard(|| {
        non_null!(config, out);
        // SAFETY: non-null.
        let cfg = unsafe { *config };
        match Sampler::new(cfg.into()) {
            Ok(sampler) => {
                // SAFETY: `out` is non-null.
                unsafe {
                    *out = std::boxed::Box::into_raw(std::boxed::Box::new(LatteSampler { sampler }))
                };
                LatteStatus::Ok
            }
            Err(e) => core_err(e),
        }
    })
}

/// Frees a sampler from [`latte_sampler_new`] (NULL is ignored). `std` only.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn latte_sampler_free(sampler: *mut LatteSampler) {
    if !sampler.is_null() {
        // SAFETY: the pointer came from `Box::into_raw` in this library.
        drop(unsafe { std::boxed::Box::from_raw(sampler) });
    }
}

/// Records a prompt token in the sampler's penalty window (do this for each
/// prompt token, as `latte run` does, before sampling).
#[no_mangle]
pub unsafe extern "C" fn latte_sampler_accept(
    sampler: *mut LatteSampler,
    token: u32,
) -> LatteStatus {
    guard(|| {
        non_null!(sampler);
        // SAFETY: non-null, owned by the caller, not shared.
        unsafe { (*sampler).sampler.accept(token) };
        LatteStatus::Ok
    })
}

// ---------------------------------------------------------------------------
// Sessions.

/// A session: position, recurrent state and logits, on caller buffers (or,
/// from [`latte_session_new`], on the library's). Opaque.
pub struct LatteSession {
    session: Session<'static, 'static>,
    /// With `std`, the state and scratch of a session the library
    /// allocated (the session borrows them; dropped after it).
    #[cfg(feature = "std")]
    _owned: Option<(std::vec::Vec<f32>, std::vec::Vec<f32>)>,
}

/// Bytes of memory [`latte_session_init`] needs.
#[no_mangle]
pub extern "C" fn latte_session_struct_size() -> usize {
    size_of::<LatteSession>()
}

/// Alignment [`latte_session_init`]'s memory needs.
#[no_mangle]
pub extern "C" fn latte_session_struct_align() -> usize {
    align_of::<LatteSession>()
}

/// Starts a session on `model` at position 0, with `state` and `scratch`
/// (`float`s; at least [`LatteModelSizes`]' `state_len` and `scratch_len`),
/// built in `mem`. The model and both buffers must outlive the session.
/// Nothing to free.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn latte_session_init(
    mem: *mut c_void,
    mem_len: usize,
    model: *const LatteModel,
    state: *mut f32,
    state_len: usize,
    scratch: *mut f32,
    scratch_len: usize,
    out: *mut *mut LatteSession,
) -> LatteStatus {
    guard(|| {
        non_null!(mem, model, state, scratch, out);
        // SAFETY: non-null pointers the caller keeps alive and gives to this
        // session alone, with the lengths it states.
        let (m, st, sc) = unsafe {
            (
                model_ref(model),
                slice_mut(state, state_len),
                slice_mut(scratch, scratch_len),
            )
        };
        let session = match Session::new(m, st, sc) {
            Ok(s) => s,
            Err(e) => return core_err(e),
        };
        let value = LatteSession {
            session,
            #[cfg(feature = "std")]
            _owned: None,
        };
        // SAFETY: `mem` and `out` are non-null; `place` checks size and alignment.
        let status = unsafe { place(mem, mem_len, value, "latte_session", out) };
        if status == LatteStatus::Ok {
            // SAFETY: non-null, kept alive by the caller.
            unsafe { session_started(model) };
        }
        status
    })
}

/// Allocates a session on `model` with its own state and scratch; free it
/// with [`latte_session_free`] before the model. `std` only.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn latte_session_new(
    model: *const LatteModel,
    out: *mut *mut LatteSession,
) -> LatteStatus {
    guard(|| {
        non_null!(model, out);
        // SAFETY: non-null, kept alive by the caller.
        let m = unsafe { model_ref(model) };
        let mut state = std::vec![0f32; m.state_len()];
        let mut scratch = std::vec![0f32; m.scratch_len()];
        // SAFETY: the session borrows the two heap buffers, which the
        // returned object owns and never moves or resizes; the session field
        // is declared (and dropped) first.
        let (st, sc) = unsafe {
            (
                core::slice::from_raw_parts_mut(state.as_mut_ptr(), state.len()),
                core::slice::from_raw_parts_mut(scratch.as_mut_ptr(), scratch.len()),
            )
        };
        let session = match Session::new(m, st, sc) {
            Ok(s) => s,
            Err(e) => return core_err(e),
        };
        let b = std::boxed::Box::new(LatteSession {
            session,
            _owned: Some((state, scratch)),
        });
        // SAFETY: non-null, kept alive by the caller.
        unsafe { session_started(model) };
        // SAFETY: `out` is non-null.
        unsafe { *out = std::boxed::Box::into_raw(b) };
        LatteStatus::Ok
    })
}

/// Frees a session from [`latte_session_new`] (NULL is ignored). `std` only.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn latte_session_free(session: *mut LatteSession) {
    if !session.is_null() {
        // SAFETY: the pointer came from `Box::into_raw` in this library.
        drop(unsafe { std::boxed::Box::from_raw(session) });
    }
}

unsafe fn session_mut<'x>(s: *mut LatteSession) -> &'x mut Session<'static, 'static> {
    // SAFETY: callers check non-null; the caller does not share the session.
    unsafe { &mut (*s).session }
}

/// Back to position 0 and the initial state.
#[no_mangle]
pub unsafe extern "C" fn latte_session_reset(session: *mut LatteSession) -> LatteStatus {
    guard(|| {
        non_null!(session);
        // SAFETY: non-null.
        unsafe { session_mut(session) }.reset();
        LatteStatus::Ok
    })
}

/// Writes the number of tokens fed so far to `*out`.
#[no_mangle]
pub unsafe extern "C" fn latte_session_position(
    session: *const LatteSession,
    out: *mut u64,
) -> LatteStatus {
    guard(|| {
        non_null!(session, out);
        // SAFETY: non-null.
        unsafe { *out = (*session).session.position() };
        LatteStatus::Ok
    })
}

/// Feeds one token; the logits for the next one are then available.
#[no_mangle]
pub unsafe extern "C" fn latte_session_step(session: *mut LatteSession, token: u32) -> LatteStatus {
    guard(|| {
        non_null!(session);
        // SAFETY: non-null.
        match unsafe { session_mut(session) }.step(token) {
            Ok(_) => LatteStatus::Ok,
            Err(e) => core_err(e),
        }
    })
}

/// An abort callback: return `true` to stop. Called with the `user`
/// pointer given alongside it, between tokens or chunks.
pub type LatteAbortFn = Option<unsafe extern "C" fn(user: *mut c_void) -> bool>;

unsafe fn aborted(abort: LatteAbortFn, user: *mut c_void) -> bool {
    match abort {
        // SAFETY: the caller's callback, called with the caller's pointer.
        Some(f) => unsafe { f(user) },
        None => false,
    }
}

/// Feeds `n` tokens one at a time, calling `abort(user)` (if not NULL)
/// before each; on `true` it stops with [`LatteStatus::Cancelled`], the
/// tokens before fed. All tokens are checked first (nothing is fed if one
/// is out of range).
#[no_mangle]
pub unsafe extern "C" fn latte_session_feed(
    session: *mut LatteSession,
    tokens: *const u32,
    n: usize,
    abort: LatteAbortFn,
    user: *mut c_void,
) -> LatteStatus {
    guard(|| {
        non_null!(session, tokens);
        // SAFETY: non-null; `n` readable tokens.
        let (s, toks) = unsafe { (session_mut(session), slice(tokens, n)) };
        if toks.is_empty() {
            return core_err(Error::EmptyPrompt);
        }
        let vocab = s.model().config().vocab_size;
        if let Some(&t) = toks.iter().find(|&&t| t as usize >= vocab) {
            return core_err(Error::TokenOutOfRange {
                token: t,
                vocab_size: vocab,
            });
        }
        for &t in toks {
            // SAFETY: the caller's callback.
            if unsafe { aborted(abort, user) } {
                return fail(
                    LatteStatus::Cancelled,
                    format_args!("cancelled by the abort callback"),
                );
            }
            if let Err(e) = s.step(t) {
                return core_err(e);
            }
        }
        LatteStatus::Ok
    })
}

/// Feeds `n` tokens in chunks of up to `chunk` (matrix-matrix products; the
/// same bits as [`latte_session_feed`]), with `prefill_scratch`
/// ([`latte_model_prefill_scratch_len`]`(chunk)` floats), calling
/// `abort(user)` before each chunk.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn latte_session_prefill(
    session: *mut LatteSession,
    tokens: *const u32,
    n: usize,
    chunk: usize,
    prefill_scratch: *mut f32,
    prefill_scratch_len: usize,
    abort: LatteAbortFn,
    user: *mut c_void,
) -> LatteStatus {
    guard(|| {
        non_null!(session, tokens, prefill_scratch);
        if chunk == 0 {
            return fail(
                LatteStatus::InvalidArgument,
                format_args!("chunk is 0; use 1 or more tokens per chunk"),
            );
        }
        // SAFETY: non-null pointers with the lengths the caller states.
        let (s, toks, ps) = unsafe {
            (
                session_mut(session),
                slice(tokens, n),
                slice_mut(prefill_scratch, prefill_scratch_len),
            )
        };
        // SAFETY: the caller's callback, called with the caller's pointer.
        let mut stop = || unsafe { aborted(abort, user) };
        match s.prefill_until(toks, chunk, ps, &mut stop) {
            Ok(_) => LatteStatus::Ok,
            Err(Error::Cancelled { fed }) => fail(
                LatteStatus::Cancelled,
                format_args!("cancelled by the abort callback after {fed} tokens"),
            ),
            Err(e) => core_err(e),
        }
    })
}

/// Points `*logits` at the logits after the last token fed (`*len` =
/// vocabulary size; zeros at position 0). Valid until the session changes.
#[no_mangle]
pub unsafe extern "C" fn latte_session_logits(
    session: *const LatteSession,
    logits: *mut *const f32,
    len: *mut usize,
) -> LatteStatus {
    guard(|| {
        non_null!(session, logits, len);
        // SAFETY: non-null.
        let l = unsafe { (*session).session.logits() };
        // SAFETY: non-null outputs.
        unsafe {
            *logits = l.as_ptr();
            *len = l.len();
        }
        LatteStatus::Ok
    })
}

/// Draws the next token from the current logits with `sampler` (which
/// records it); does not feed it: call [`latte_session_step`] with it.
#[no_mangle]
pub unsafe extern "C" fn latte_session_sample(
    session: *mut LatteSession,
    sampler: *mut LatteSampler,
    token: *mut u32,
) -> LatteStatus {
    guard(|| {
        non_null!(session, sampler, token);
        // SAFETY: non-null, not shared.
        let t = unsafe { session_mut(session).sample(&mut (*sampler).sampler) };
        // SAFETY: non-null.
        unsafe { *token = t };
        LatteStatus::Ok
    })
}

/// Saves the session and `sampler` to `buf` (`len` bytes, at least
/// [`LatteModelSizes`]' `snapshot_len`); `*written` gets the bytes written.
#[no_mangle]
pub unsafe extern "C" fn latte_session_save(
    session: *const LatteSession,
    sampler: *const LatteSampler,
    buf: *mut u8,
    len: usize,
    written: *mut usize,
) -> LatteStatus {
    guard(|| {
        non_null!(session, sampler, buf, written);
        // SAFETY: non-null pointers with the lengths the caller states.
        let (s, smp, out) = unsafe {
            (
                &(*session).session,
                &(*sampler).sampler,
                slice_mut(buf, len),
            )
        };
        match s.save_snapshot(smp, out) {
            Ok(n) => {
                // SAFETY: non-null.
                unsafe { *written = n };
                LatteStatus::Ok
            }
            Err(e) => core_err(e),
        }
    })
}

/// Restores a snapshot from [`latte_session_save`] into the session and
/// `sampler`; refused (nothing changed) if damaged or from another model.
#[no_mangle]
pub unsafe extern "C" fn latte_session_restore(
    session: *mut LatteSession,
    sampler: *mut LatteSampler,
    buf: *const u8,
    len: usize,
) -> LatteStatus {
    guard(|| {
        non_null!(session, sampler, buf);
        // SAFETY: non-null pointers with the lengths the caller states.
        let (s, smp, bytes) = unsafe {
            (
                session_mut(session),
                &mut (*sampler).sampler,
                slice(buf, len),
            )
        };
        match s.restore_snapshot(smp, bytes) {
            Ok(()) => LatteStatus::Ok,
            Err(e) => core_err(e),
        }
    })
}

/// The firmware panic handler of the no_std static library: the core does
/// not panic on any input, so reaching this is a bug; stop here.
#[cfg(all(not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
