//! The C API called as C would: results equal the core's bit for bit, and
//! hostile inputs (null pointers, short or misaligned buffers, damaged
//! files, foreign snapshots, bad tokens and settings) give a status and a
//! message, never a crash. The abort callback cancels between tokens.

use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};

use latte_ffi::*;

const MICRO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/latte-micro/latte-micro-q8_0.gguf"
);
const DECAY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/latte-micro-decay/latte-micro-decay-q8_0.gguf"
);

const MACCHIATO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/latte-macchiato-micro/latte-macchiato-micro-q8_0.gguf"
);

fn last() -> String {
    unsafe { CStr::from_ptr(latte_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[track_caller]
fn ok(s: LatteStatus) {
    assert_eq!(s, LatteStatus::Ok, "{}", last());
}

#[track_caller]
fn err(s: LatteStatus, want: LatteStatus, needle: &str) {
    assert_eq!(s, want, "{}", last());
    let m = last();
    assert!(m.contains(needle), "`{m}` lacks `{needle}`");
}

fn load(path: &str) -> *mut LatteModel {
    let c = std::ffi::CString::new(path).unwrap();
    let mut m = null_mut();
    ok(unsafe { latte_model_load(c.as_ptr(), &mut m) });
    m
}

/// `latte_session_init` of a session on `model` with `state` and `scratch`,
/// built in `smem`.
fn session_init(
    smem: &mut [u64],
    model: *const LatteModel,
    state: &mut [f32],
    scratch: &mut [f32],
    out: &mut *mut LatteSession,
) -> LatteStatus {
    unsafe {
        latte_session_init(
            smem.as_mut_ptr() as *mut c_void,
            smem.len() * 8,
            model,
            state.as_mut_ptr(),
            state.len(),
            scratch.as_mut_ptr(),
            scratch.len(),
            out,
        )
    }
}

/// Aligned memory for an object of `size` bytes.
fn mem(size: usize) -> Vec<u64> {
    vec![0u64; size.div_ceil(8) + 1]
}

#[test]
fn logits_equal_the_core_and_caller_memory_works() {
    let bytes = std::fs::read(DECAY).unwrap();
    let mut words = vec![0u32; bytes.len().div_ceil(4)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    let view = &bytemuck::cast_slice::<u32, u8>(&words)[..bytes.len()];
    // The core, directly.
    let core = latte_core::Model::from_gguf(view).unwrap();
    let mut st = vec![0f32; core.state_len()];
    let mut sc = vec![0f32; core.scratch_len()];
    let mut s = latte_core::Session::new(&core, &mut st, &mut sc).unwrap();
    let prompt: Vec<u32> = b"The cat sat".iter().map(|&b| b as u32).collect();
    let want = s.feed(&prompt).unwrap().to_vec();

    // Through the C API, everything in caller memory (the no_std path).
    assert!(latte_model_struct_size() > 0 && latte_model_struct_align() <= 8);
    let mut mm = mem(latte_model_struct_size());
    let mut model = null_mut();
    ok(unsafe {
        latte_model_init(
            mm.as_mut_ptr() as *mut c_void,
            mm.len() * 8,
            view.as_ptr(),
            view.len(),
            &mut model,
        )
    });
    let mut sizes = LatteModelSizes::default();
    ok(unsafe { latte_model_sizes(model, &mut sizes) });
    assert_eq!((sizes.state_len, sizes.vocab_size), (core.state_len(), 256));
    assert_eq!(sizes.fingerprint, core.fingerprint());
    let mut state = vec![0f32; sizes.state_len];
    let mut scratch = vec![0f32; sizes.scratch_len];
    let mut smem = mem(latte_session_struct_size());
    let mut session = null_mut();
    ok(session_init(
        &mut smem,
        model,
        &mut state,
        &mut scratch,
        &mut session,
    ));
    ok(unsafe { latte_session_feed(session, prompt.as_ptr(), prompt.len(), None, null_mut()) });
    let (mut p, mut n) = (null(), 0usize);
    ok(unsafe { latte_session_logits(session, &mut p, &mut n) });
    let got = unsafe { std::slice::from_raw_parts(p, n) }.to_vec();
    assert_eq!(
        got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    // Prefill in chunks: the same bits.
    ok(unsafe { latte_session_reset(session) });
    let mut need = 0;
    ok(unsafe { latte_model_prefill_scratch_len(model, 4, &mut need) });
    let mut ps = vec![0f32; need];
    ok(unsafe {
        latte_session_prefill(
            session,
            prompt.as_ptr(),
            prompt.len(),
            4,
            ps.as_mut_ptr(),
            ps.len(),
            None,
            null_mut(),
        )
    });
    ok(unsafe { latte_session_logits(session, &mut p, &mut n) });
    assert_eq!(unsafe { std::slice::from_raw_parts(p, n) }, &want[..]);
    let mut pos = 0u64;
    ok(unsafe { latte_session_position(session, &mut pos) });
    assert_eq!(pos, prompt.len() as u64);
}

unsafe extern "C" fn abort_after(user: *mut c_void) -> bool {
    let left = unsafe { &mut *(user as *mut u32) };
    if *left == 0 {
        return true;
    }
    *left -= 1;
    false
}

#[test]
fn abort_callback_cancels_between_tokens_and_chunks() {
    let model = load(DECAY);
    let mut s = null_mut();
    ok(unsafe { latte_session_new(model, &mut s) });
    let prompt = [b'a' as u32; 10];
    let mut left = 3u32;
    err(
        unsafe {
            latte_session_feed(
                s,
                prompt.as_ptr(),
                10,
                Some(abort_after),
                &mut left as *mut u32 as *mut c_void,
            )
        },
        LatteStatus::Cancelled,
        "cancelled",
    );
    let mut pos = 0;
    ok(unsafe { latte_session_position(s, &mut pos) });
    assert_eq!(pos, 3, "three tokens fed before the abort");
    let mut need = 0;
    ok(unsafe { latte_model_prefill_scratch_len(model, 4, &mut need) });
    let mut ps = vec![0f32; need];
    let mut left = 1u32;
    err(
        unsafe {
            latte_session_prefill(
                s,
                prompt.as_ptr(),
                10,
                4,
                ps.as_mut_ptr(),
                ps.len(),
                Some(abort_after),
                &mut left as *mut u32 as *mut c_void,
            )
        },
        LatteStatus::Cancelled,
        "cancelled",
    );
    ok(unsafe { latte_session_position(s, &mut pos) });
    assert_eq!(pos, 3 + 4, "one chunk of 4 fed before the abort");
    unsafe {
        latte_session_free(s);
        latte_model_free(model);
    }
}

#[test]
fn hostile_inputs_are_errors() {
    use LatteStatus::*;
    let mut m = null_mut();
    // Null pointers, everywhere.
    err(
        unsafe { latte_model_load(null(), &mut m) },
        NullPointer,
        "path",
    );
    err(
        unsafe { latte_model_from_bytes(null(), 10, &mut m) },
        NullPointer,
        "bytes",
    );
    err(
        unsafe { latte_model_sizes(null(), null_mut()) },
        NullPointer,
        "model",
    );
    err(
        unsafe { latte_session_new(null(), &mut null_mut()) },
        NullPointer,
        "model",
    );
    err(
        unsafe { latte_session_step(null_mut(), 1) },
        NullPointer,
        "session",
    );
    err(
        unsafe { latte_session_feed(null_mut(), null(), 0, None, null_mut()) },
        NullPointer,
        "session",
    );
    err(
        unsafe { latte_session_logits(null(), null_mut(), null_mut()) },
        NullPointer,
        "session",
    );
    err(
        unsafe { latte_session_sample(null_mut(), null_mut(), null_mut()) },
        NullPointer,
        "session",
    );
    err(
        unsafe { latte_session_save(null(), null(), null_mut(), 0, null_mut()) },
        NullPointer,
        "session",
    );
    err(
        unsafe { latte_session_restore(null_mut(), null_mut(), null(), 0) },
        NullPointer,
        "session",
    );
    err(
        unsafe { latte_sampler_accept(null_mut(), 1) },
        NullPointer,
        "sampler",
    );
    unsafe {
        latte_model_free(null_mut());
        latte_session_free(null_mut());
        latte_sampler_free(null_mut());
    }
    assert_eq!(
        unsafe { CStr::from_ptr(latte_status_message(1234)) }
            .to_str()
            .unwrap(),
        "unknown status"
    );

    // Files: missing, damaged, truncated.
    let missing = std::ffi::CString::new("/nonexistent/model.gguf").unwrap();
    err(
        unsafe { latte_model_load(missing.as_ptr(), &mut m) },
        Io,
        "cannot read",
    );
    let bytes = std::fs::read(MICRO).unwrap();
    for cut in [0, 3, 100, 5000, bytes.len() / 2] {
        err(
            unsafe { latte_model_from_bytes(bytes.as_ptr(), cut, &mut m) },
            InvalidModel,
            "",
        );
    }
    let mut bad = bytes.clone();
    bad[0] = b'X';
    err(
        unsafe { latte_model_from_bytes(bad.as_ptr(), bad.len(), &mut m) },
        InvalidModel,
        "GGUF",
    );
    // Misaligned model bytes and object memory in caller memory.
    let mut mm = mem(latte_model_struct_size());
    let words: Vec<u32> = vec![0; 16];
    let odd = unsafe { (words.as_ptr() as *const u8).add(1) };
    err(
        unsafe {
            latte_model_init(
                mm.as_mut_ptr() as *mut c_void,
                mm.len() * 8,
                odd,
                40,
                &mut m,
            )
        },
        InvalidModel,
        "",
    );
    ok(unsafe { latte_model_from_bytes(bytes.as_ptr(), bytes.len(), &mut m) });
    let micro = m;
    let bytes_aligned = {
        let mut w = vec![0u32; bytes.len().div_ceil(4)];
        bytemuck::cast_slice_mut::<u32, u8>(&mut w)[..bytes.len()].copy_from_slice(&bytes);
        w
    };
    let bview = bytemuck::cast_slice::<u32, u8>(&bytes_aligned);
    let mut other = null_mut();
    err(
        unsafe {
            latte_model_init(
                (mm.as_mut_ptr() as *mut u8).add(1) as *mut c_void,
                mm.len() * 8 - 1,
                bview.as_ptr(),
                bytes.len(),
                &mut other,
            )
        },
        Misaligned,
        "aligned",
    );
    err(
        unsafe {
            latte_model_init(
                mm.as_mut_ptr() as *mut c_void,
                8,
                bview.as_ptr(),
                bytes.len(),
                &mut other,
            )
        },
        BufferTooSmall,
        "latte_model_struct_size",
    );

    // Sessions on short buffers.
    let mut sizes = LatteModelSizes::default();
    ok(unsafe { latte_model_sizes(micro, &mut sizes) });
    let mut state = vec![0f32; sizes.state_len - 1];
    let mut scratch = vec![0f32; sizes.scratch_len];
    let mut smem = mem(latte_session_struct_size());
    let mut s = null_mut();
    err(
        session_init(&mut smem, micro, &mut state, &mut scratch, &mut s),
        BufferTooSmall,
        "state",
    );
    state.push(0.0);
    ok(session_init(
        &mut smem,
        micro,
        &mut state,
        &mut scratch,
        &mut s,
    ));
    // Tokens and settings.
    err(unsafe { latte_session_step(s, 256) }, InvalidToken, "256");
    let none: [u32; 0] = [];
    err(
        unsafe { latte_session_feed(s, none.as_ptr(), 0, None, null_mut()) },
        InvalidToken,
        "empty",
    );
    let toks = [104u32, 105, 999];
    err(
        unsafe { latte_session_feed(s, toks.as_ptr(), 3, None, null_mut()) },
        InvalidToken,
        "999",
    );
    let mut pos = 9;
    ok(unsafe { latte_session_position(s, &mut pos) });
    assert_eq!(pos, 0, "nothing fed when a token is bad");
    let mut ps = vec![0f32; 4];
    err(
        unsafe {
            latte_session_prefill(s, toks.as_ptr(), 2, 0, ps.as_mut_ptr(), 4, None, null_mut())
        },
        InvalidArgument,
        "chunk",
    );
    err(
        unsafe {
            latte_session_prefill(s, toks.as_ptr(), 2, 2, ps.as_mut_ptr(), 4, None, null_mut())
        },
        BufferTooSmall,
        "prefill",
    );
    let mut cfg = latte_sampler_config_default();
    cfg.temperature = f32::NAN;
    let mut smp = null_mut();
    err(
        unsafe { latte_sampler_new(&cfg, &mut smp) },
        InvalidArgument,
        "temperature",
    );
    cfg.temperature = 0.8;
    cfg.top_p = 0.0;
    err(
        unsafe { latte_sampler_new(&cfg, &mut smp) },
        InvalidArgument,
        "top_p",
    );
    cfg.top_p = 0.9;
    ok(unsafe { latte_sampler_new(&cfg, &mut smp) });

    // Snapshots: too small a buffer, damage, another model's.
    ok(unsafe { latte_session_feed(s, toks.as_ptr(), 2, None, null_mut()) });
    let mut snap = vec![0u8; sizes.snapshot_len];
    let mut written = 0;
    err(
        unsafe { latte_session_save(s, smp, snap.as_mut_ptr(), 10, &mut written) },
        BufferTooSmall,
        "snapshot",
    );
    ok(unsafe { latte_session_save(s, smp, snap.as_mut_ptr(), snap.len(), &mut written) });
    assert_eq!(written, sizes.snapshot_len);
    let mut flipped = snap.clone();
    flipped[100] ^= 1;
    err(
        unsafe { latte_session_restore(s, smp, flipped.as_ptr(), flipped.len()) },
        InvalidSnapshot,
        "",
    );
    err(
        unsafe { latte_session_restore(s, smp, snap.as_ptr(), 20) },
        InvalidSnapshot,
        "",
    );
    let decay = load(DECAY);
    let mut s2 = null_mut();
    ok(unsafe { latte_session_new(decay, &mut s2) });
    err(
        unsafe { latte_session_restore(s2, smp, snap.as_ptr(), snap.len()) },
        InvalidSnapshot,
        "another model",
    );
    // A restore gives the saved session back, bit for bit.
    let mut t1 = 0;
    ok(unsafe { latte_session_sample(s, smp, &mut t1) });
    ok(unsafe { latte_session_restore(s, smp, snap.as_ptr(), snap.len()) });
    let mut t2 = 0;
    ok(unsafe { latte_session_sample(s, smp, &mut t2) });
    assert_eq!(t1, t2);
    unsafe {
        latte_session_free(s2);
        latte_model_free(decay);
        latte_sampler_free(smp);
        latte_model_free(micro);
    }
}

/// Logits after `prompt` from a session of the C API on `model`.
fn c_logits(model: *const LatteModel, prompt: &[u32]) -> Vec<u32> {
    let mut session = null_mut();
    ok(unsafe { latte_session_new(model, &mut session) });
    ok(unsafe { latte_session_feed(session, prompt.as_ptr(), prompt.len(), None, null_mut()) });
    let (mut p, mut n) = (null(), 0usize);
    ok(unsafe { latte_session_logits(session, &mut p, &mut n) });
    let got = unsafe { std::slice::from_raw_parts(p, n) }
        .iter()
        .map(|x| x.to_bits())
        .collect();
    unsafe { latte_session_free(session) };
    got
}

#[test]
fn ring_storage_is_set_before_the_first_session() {
    use latte_core::RingStorage;
    use LatteStatus::*;
    let bytes = std::fs::read(MACCHIATO).unwrap();
    let mut words = vec![0u32; bytes.len().div_ceil(4)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    let view = &bytemuck::cast_slice::<u32, u8>(&words)[..bytes.len()];
    let prompt: Vec<u32> = b"It was the best of times"
        .iter()
        .map(|&b| b as u32)
        .collect();
    for (value, storage) in [
        (LatteRingStorage::F32, RingStorage::F32),
        (LatteRingStorage::F16, RingStorage::F16),
        (LatteRingStorage::Q8, RingStorage::Q8),
    ] {
        // The core with the same storage, directly.
        let core = latte_core::Model::from_gguf(view)
            .unwrap()
            .with_ring_storage(storage)
            .unwrap();
        let mut st = vec![0f32; core.state_len()];
        let mut sc = vec![0f32; core.scratch_len()];
        let mut s = latte_core::Session::new(&core, &mut st, &mut sc).unwrap();
        let want: Vec<u32> = s
            .feed(&prompt)
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect();

        let model = load(MACCHIATO);
        ok(unsafe { latte_model_set_ring_storage(model, value as i32) });
        let mut sizes = LatteModelSizes::default();
        ok(unsafe { latte_model_sizes(model, &mut sizes) });
        assert_eq!(sizes.state_len, core.state_len(), "{}", storage.name());
        assert_eq!(sizes.fingerprint, core.fingerprint());
        assert_eq!(c_logits(model, &prompt), want, "{}", storage.name());
        // Sessions fix the sizes: a second change is refused, even to the
        // storage already set, and the model keeps working.
        err(
            unsafe { latte_model_set_ring_storage(model, LatteRingStorage::F32 as i32) },
            InvalidArgument,
            "before the first session",
        );
        assert_eq!(c_logits(model, &prompt), want);
        unsafe { latte_model_free(model) };
    }
    // The stored rings differ in size: f32 > f16 > q8.
    let state_len = |v: LatteRingStorage| {
        let model = load(MACCHIATO);
        ok(unsafe { latte_model_set_ring_storage(model, v as i32) });
        let mut sizes = LatteModelSizes::default();
        ok(unsafe { latte_model_sizes(model, &mut sizes) });
        unsafe { latte_model_free(model) };
        sizes.state_len
    };
    let (f32_len, f16_len, q8_len) = (
        state_len(LatteRingStorage::F32),
        state_len(LatteRingStorage::F16),
        state_len(LatteRingStorage::Q8),
    );
    assert!(
        f32_len > f16_len && f16_len > q8_len,
        "{f32_len} {f16_len} {q8_len}"
    );

    // Bad values, a model without a window, a null model.
    let model = load(MACCHIATO);
    for bad in [-1, 3, i32::MAX] {
        err(
            unsafe { latte_model_set_ring_storage(model, bad) },
            InvalidArgument,
            "not a LatteRingStorage",
        );
    }
    // A failed session (state too small) does not fix the sizes.
    let mut smem = mem(latte_session_struct_size());
    let (mut state, mut scratch) = (vec![0f32; 4], vec![0f32; 4]);
    let mut session = null_mut();
    err(
        session_init(&mut smem, model, &mut state, &mut scratch, &mut session),
        BufferTooSmall,
        "state",
    );
    ok(unsafe { latte_model_set_ring_storage(model, LatteRingStorage::Q8 as i32) });
    unsafe { latte_model_free(model) };
    let latte = load(DECAY);
    err(
        unsafe { latte_model_set_ring_storage(latte, LatteRingStorage::F16 as i32) },
        InvalidArgument,
        "no attention window",
    );
    unsafe { latte_model_free(latte) };
    err(
        unsafe { latte_model_set_ring_storage(null_mut(), 0) },
        NullPointer,
        "model",
    );
}
