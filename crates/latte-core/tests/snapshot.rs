//! State snapshots: a restored session continues bit for bit; foreign,
//! truncated, corrupted, wrong-version and wrong-endian snapshots are refused
//! with their own error and change nothing.

mod common;

use common::{as_bytes, random_model, tiny_lm, GgmlType, GgufParts, MetaValue, OwnedModel};
use latte_core::sampler::SAMPLER_STATE_BYTES;
use latte_core::snapshot::{HEADER_LEN, VERSION};
use latte_core::{Config, Error, Model, Position, Sampler, SamplerConfig, Session, SnapshotInfo};

fn sampling() -> SamplerConfig {
    SamplerConfig {
        temperature: 0.9,
        top_k: 7,
        top_p: 0.95,
        repeat_penalty: 1.3,
        repeat_last_n: 5,
        seed: 2024,
    }
}

/// Generates `n` tokens after `prompt`; returns the tokens, the bits of the
/// logits after each step, and the snapshot taken after `snap_at` tokens
/// (each generated token is sampled, then fed).
fn generate(
    model: &Model<'_>,
    prompt: &[u32],
    n: usize,
    snap_at: usize,
) -> (Vec<u32>, Vec<Vec<u32>>, Vec<u8>) {
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut s = Session::new(model, &mut state, &mut scratch).unwrap();
    let mut sampler = Sampler::new(sampling()).unwrap();
    prompt.iter().for_each(|&t| sampler.accept(t));
    s.feed(prompt).unwrap();
    let mut snap = Vec::new();
    let (mut toks, mut logits) = (Vec::new(), Vec::new());
    for i in 0..n {
        if i == snap_at {
            snap = vec![0u8; s.snapshot_len()];
            assert_eq!(s.save_snapshot(&sampler, &mut snap), Ok(snap.len()));
        }
        let t = s.sample(&mut sampler);
        toks.push(t);
        logits.push(s.step(t).unwrap().iter().map(|v| v.to_bits()).collect());
    }
    (toks, logits, snap)
}

/// Restores `snap` into fresh buffers and a differently configured sampler,
/// then generates `n` tokens the same way as [`generate`].
fn resume(model: &Model<'_>, snap: &[u8], n: usize) -> (u64, Vec<u32>, Vec<Vec<u32>>) {
    let mut state = vec![1.5f32; model.state_len()];
    let mut scratch = vec![-3.0f32; model.scratch_len()];
    let mut s = Session::new(model, &mut state, &mut scratch).unwrap();
    s.step(1).unwrap(); // some unrelated history that the restore must erase
    let mut sampler = Sampler::new(SamplerConfig {
        seed: 99,
        ..SamplerConfig::default()
    })
    .unwrap();
    s.restore_snapshot(&mut sampler, snap).unwrap();
    assert_eq!(*sampler.config(), sampling());
    let pos = s.position();
    let (mut toks, mut logits) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let t = s.sample(&mut sampler);
        toks.push(t);
        logits.push(s.step(t).unwrap().iter().map(|v| v.to_bits()).collect());
    }
    (pos, toks, logits)
}

fn check_continues(model: &Model<'_>, prompt: &[u32], n: usize, k: usize) {
    let (toks, logits, snap) = generate(model, prompt, n, k);
    let (pos, rtoks, rlogits) = resume(model, &snap, n - k);
    assert_eq!(pos, (prompt.len() + k) as u64);
    assert_eq!(rtoks, toks[k..], "tokens after restoring at {k}");
    assert!(
        rlogits == logits[k..],
        "logits after restoring at {k} differ in some bit"
    );
    // The sampled tokens are not all the same (the test would be weak).
    assert!(
        toks.iter().any(|&t| t != toks[0]),
        "degenerate run: {toks:?}"
    );
}

#[test]
fn restored_run_continues_bit_identically() {
    let m = tiny_lm();
    let layers = m.layer_weights();
    let model = Model::from_parts(m.config, m.weights(&layers)).unwrap();
    for k in [0, 1, 7, 23] {
        check_continues(&model, &[3, 1, 4, 1, 5], 40, k);
    }
}

#[test]
fn restored_run_continues_bit_identically_vapor_and_f16() {
    let config = Config {
        vocab_size: 13,
        d_model: 8,
        n_layers: 2,
        n_heads: 2,
        n_latents: 4,
        d_ff: 16,
        context_length: 16,
        ln_eps: 1e-6,
        position: Position::Vapor,
        latent_decay: false,
        mixing: latte_core::Mixing::Latte,
    };
    let m = random_model(config, 5);
    for ty in [GgmlType::F32, GgmlType::F16] {
        let buf = GgufParts::new(&m, ty).to_aligned();
        let model = Model::from_gguf(as_bytes(&buf)).unwrap();
        check_continues(&model, &[2, 7], 30, 11);
    }
}

#[test]
fn restored_run_continues_on_the_committed_model() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/latte-micro/latte-micro-f32.gguf"
    );
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let buf = common::aligned(&bytes);
    let model = Model::from_gguf(as_bytes(&buf)).unwrap();
    let prompt: Vec<u32> = b"It was a dark".iter().map(|&b| u32::from(b)).collect();
    check_continues(&model, &prompt, 24, 9);
}

fn tiny_model_parts() -> OwnedModel {
    tiny_lm()
}

/// A session on `model` after a few steps, its sampler, and a snapshot.
struct Fixture {
    state: Vec<f32>,
    scratch: Vec<f32>,
}

impl Fixture {
    fn new(model: &Model<'_>) -> Self {
        Fixture {
            state: vec![0f32; model.state_len()],
            scratch: vec![0f32; model.scratch_len()],
        }
    }
}

fn snapshot_of(model: &Model<'_>) -> Vec<u8> {
    let mut f = Fixture::new(model);
    let mut s = Session::new(model, &mut f.state, &mut f.scratch).unwrap();
    let mut sampler = Sampler::new(sampling()).unwrap();
    s.feed(&[1, 2, 3]).unwrap();
    for _ in 0..4 {
        let t = s.sample(&mut sampler);
        s.step(t).unwrap();
    }
    let mut out = vec![0u8; s.snapshot_len()];
    s.save_snapshot(&sampler, &mut out).unwrap();
    out
}

/// Tries to restore `bytes`; asserts the session and sampler are unchanged
/// on error and returns the error.
fn refuse(model: &Model<'_>, bytes: &[u8]) -> Error {
    let mut f = Fixture::new(model);
    let mut s = Session::new(model, &mut f.state, &mut f.scratch).unwrap();
    s.step(4).unwrap();
    let mut sampler = Sampler::new(SamplerConfig {
        seed: 5,
        repeat_last_n: 3,
        ..SamplerConfig::default()
    })
    .unwrap();
    sampler.accept(9);
    let before_state = s.state().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let before_logits = s.logits().to_vec();
    let mut probe = sampler.clone();
    let e = s
        .restore_snapshot(&mut sampler, bytes)
        .expect_err("the snapshot must be refused");
    assert_eq!(s.position(), 1);
    assert_eq!(
        s.state().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        before_state
    );
    assert_eq!(s.logits(), &before_logits[..]);
    assert_eq!(sampler.history(), &[9]);
    assert_eq!(sampler.next_u64(), probe.next_u64());
    e
}

fn tiny_model(m: &OwnedModel) -> Model<'_> {
    // Leaks the layer list so the model can outlive this function in tests.
    let layers = Box::leak(m.layer_weights().into_boxed_slice());
    Model::from_parts(m.config, m.weights(layers)).unwrap()
}

/// Rewrites the trailing CRC so that a deliberately edited snapshot passes
/// the checksum (to reach the later checks).
fn fix_crc(bytes: &mut [u8]) {
    let n = bytes.len() - 4;
    let crc = crc32_reference(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}

/// Bitwise CRC-32 (ISO-HDLC), written independently of the crate's.
fn crc32_reference(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn the_format_is_as_documented() {
    let m = tiny_model_parts();
    let model = tiny_model(&m);
    let snap = snapshot_of(&model);
    let c = model.config();
    assert_eq!(
        snap.len(),
        HEADER_LEN + SAMPLER_STATE_BYTES + 4 * c.vocab_size + 4 * model.state_len() + 4
    );
    assert_eq!(model.snapshot_len(), snap.len());
    assert_eq!(&snap[..4], b"LTSS");
    assert_eq!(u16::from_le_bytes([snap[4], snap[5]]), VERSION);
    assert_eq!(&snap[6..8], &[0xFF, 0xFE]);
    let u64_at = |o: usize| u64::from_le_bytes(snap[o..o + 8].try_into().unwrap());
    assert_eq!(u64_at(8), snap.len() as u64);
    assert_eq!(u64_at(16), model.fingerprint());
    assert_eq!(u64_at(24), 7);
    assert_eq!(u64_at(32), model.state_len() as u64);
    assert_eq!(u64_at(40), c.vocab_size as u64);
    let n = snap.len() - 4;
    assert_eq!(
        u32::from_le_bytes(snap[n..].try_into().unwrap()),
        crc32_reference(&snap[..n])
    );
    let info = SnapshotInfo::read(&snap).unwrap();
    assert_eq!(info.position, 7);
    assert_eq!(info.len, snap.len());
    assert_eq!(info.fingerprint, model.fingerprint());
    // The last `m` values of the last layer are stored as f32 bits; m starts
    // at -inf, so a fresh session's snapshot ends with -inf's bits.
    let mut f = Fixture::new(&model);
    let s = Session::new(&model, &mut f.state, &mut f.scratch).unwrap();
    let mut fresh = vec![0u8; s.snapshot_len()];
    s.save_snapshot(&Sampler::new(SamplerConfig::default()).unwrap(), &mut fresh)
        .unwrap();
    assert_eq!(&fresh[n - 4..n], &f32::NEG_INFINITY.to_bits().to_le_bytes());
}

#[test]
fn another_model_is_refused() {
    let m = tiny_model_parts();
    let model = tiny_model(&m);
    let snap = snapshot_of(&model);
    // Same shapes, one weight one ulp away.
    let mut other = tiny_model_parts();
    let w = &mut other.layers[1].wv[5];
    *w = f32::from_bits(w.to_bits() + 1);
    let other_model = tiny_model(&other);
    assert_ne!(other_model.fingerprint(), model.fingerprint());
    assert_eq!(
        refuse(&other_model, &snap),
        Error::SnapshotModelMismatch {
            snapshot: model.fingerprint(),
            model: other_model.fingerprint()
        }
    );
    // Another shape altogether (and the other way round).
    let big = random_model(
        Config {
            vocab_size: 20,
            n_latents: 8,
            ..m.config
        },
        3,
    );
    let big_model = tiny_model(&big);
    assert!(matches!(
        refuse(&big_model, &snap),
        Error::SnapshotModelMismatch { .. }
    ));
    assert!(matches!(
        refuse(&model, &snapshot_of(&big_model)),
        Error::SnapshotModelMismatch { .. }
    ));
}

#[test]
fn truncated_snapshots_are_refused() {
    let m = tiny_model_parts();
    let model = tiny_model(&m);
    let snap = snapshot_of(&model);
    for n in 0..snap.len() {
        let e = refuse(&model, &snap[..n]);
        let need = if n < HEADER_LEN {
            HEADER_LEN
        } else {
            snap.len()
        };
        assert_eq!(e, Error::SnapshotTruncated { need, got: n }, "cut at {n}");
    }
    // Longer buffers are fine: only the stored length is read.
    let mut longer = snap.clone();
    longer.extend_from_slice(&[0xAB; 100]);
    let mut f = Fixture::new(&model);
    let mut s = Session::new(&model, &mut f.state, &mut f.scratch).unwrap();
    let mut sampler = Sampler::new(SamplerConfig::default()).unwrap();
    s.restore_snapshot(&mut sampler, &longer).unwrap();
    assert_eq!(s.position(), 7);
}

#[test]
fn corrupted_snapshots_are_refused() {
    let m = tiny_model_parts();
    let model = tiny_model(&m);
    let snap = snapshot_of(&model);
    // One flipped bit in the state.
    let mut bad = snap.clone();
    let at = snap.len() - 20;
    bad[at] ^= 0x10;
    let stored = u32::from_le_bytes(snap[snap.len() - 4..].try_into().unwrap());
    assert_eq!(
        refuse(&model, &bad),
        Error::SnapshotChecksum {
            stored,
            computed: crc32_reference(&bad[..bad.len() - 4])
        }
    );
    // Every single-bit flip anywhere is refused (never restored).
    for i in 0..snap.len() {
        for bit in 0..8 {
            let mut bad = snap.clone();
            bad[i] ^= 1 << bit;
            let e = refuse(&model, &bad);
            let expected_kind = match i {
                0..4 => matches!(e, Error::SnapshotMagic),
                4..6 => matches!(e, Error::SnapshotVersion { .. }),
                // The total length: reads as truncated (too long) or as a
                // checksum/size error (shorter).
                8..16 => matches!(
                    e,
                    Error::SnapshotTruncated { .. }
                        | Error::SnapshotChecksum { .. }
                        | Error::SnapshotInvalid { .. }
                ),
                _ => matches!(e, Error::SnapshotChecksum { .. }),
            };
            assert!(expected_kind, "flip of bit {bit} of byte {i}: {e:?}");
        }
    }
}

#[test]
fn other_versions_are_refused() {
    let m = tiny_model_parts();
    let model = tiny_model(&m);
    let mut snap = snapshot_of(&model);
    for v in [0u16, 2, 0xFFFF] {
        snap[4..6].copy_from_slice(&v.to_le_bytes());
        fix_crc(&mut snap);
        assert_eq!(
            refuse(&model, &snap),
            Error::SnapshotVersion {
                found: v,
                supported: VERSION
            }
        );
    }
}

#[test]
fn big_endian_snapshots_are_refused() {
    let m = tiny_model_parts();
    let model = tiny_model(&m);
    let snap = snapshot_of(&model);
    // A writer that stored the header fields big-endian.
    let mut be = snap.clone();
    be[4..6].copy_from_slice(&VERSION.to_be_bytes());
    be[6..8].copy_from_slice(&0xFEFFu16.to_be_bytes());
    for o in (8..HEADER_LEN).step_by(8) {
        be[o..o + 8].reverse();
    }
    assert_eq!(refuse(&model, &be), Error::SnapshotByteOrder);
    // Only the mark swapped: still refused as big-endian, checksum or not.
    let mut swapped = snap.clone();
    swapped.swap(6, 7);
    assert_eq!(refuse(&model, &swapped), Error::SnapshotByteOrder);
    fix_crc(&mut swapped);
    assert_eq!(refuse(&model, &swapped), Error::SnapshotByteOrder);
}

#[test]
fn other_files_are_not_snapshots() {
    let m = tiny_model_parts();
    let model = tiny_model(&m);
    let gguf = GgufParts::new(&m, GgmlType::F32).to_aligned();
    assert_eq!(refuse(&model, as_bytes(&gguf)), Error::SnapshotMagic);
    assert_eq!(
        refuse(&model, b"hello world, not a snapshot"),
        Error::SnapshotMagic
    );
    assert_eq!(refuse(&model, b"X"), Error::SnapshotMagic);
    // A prefix of the magic is a truncated snapshot.
    assert_eq!(
        refuse(&model, b"LTS"),
        Error::SnapshotTruncated {
            need: HEADER_LEN,
            got: 3
        }
    );
}

#[test]
fn inconsistent_fields_behind_a_valid_checksum_are_refused() {
    let m = tiny_model_parts();
    let model = tiny_model(&m);
    let snap = snapshot_of(&model);
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = snap.clone();
        f(&mut b);
        fix_crc(&mut b);
        refuse(&model, &b)
    };
    let invalid = |e: Error| matches!(e, Error::SnapshotInvalid { .. });
    // Byte-order mark neither way round.
    assert!(invalid(edit(&|b| b[6..8].copy_from_slice(&[0, 0]))));
    // State and logit counts that do not add up to the length.
    assert!(invalid(edit(
        &|b| b[32..40].copy_from_slice(&1u64.to_le_bytes())
    )));
    assert!(invalid(edit(
        &|b| b[40..48].copy_from_slice(&u64::MAX.to_le_bytes())
    )));
    // Counts that add up but differ from the model (V one more, S one less).
    let (s, v) = (model.state_len() as u64, model.config().vocab_size as u64);
    assert!(invalid(edit(&|b| {
        b[32..40].copy_from_slice(&(s - 1).to_le_bytes());
        b[40..48].copy_from_slice(&(v + 1).to_le_bytes());
    })));
    // Total length below the header size.
    let mut tiny = snap[..HEADER_LEN + 4].to_vec();
    tiny[8..16].copy_from_slice(&20u64.to_le_bytes());
    assert!(invalid(refuse(&model, &tiny)));
    // Sampler fields: top_p = 2, temperature NaN, zero PRNG state, window
    // positions outside repeat_last_n, top_k beyond usize on 32-bit targets
    // is covered by the same path as the settings.
    let sampler_at = HEADER_LEN;
    assert!(invalid(edit(
        &|b| b[sampler_at + 4..sampler_at + 8].copy_from_slice(&2.0f32.to_bits().to_le_bytes())
    )));
    assert!(invalid(edit(
        &|b| b[sampler_at..sampler_at + 4].copy_from_slice(&f32::NAN.to_bits().to_le_bytes())
    )));
    assert!(invalid(edit(
        &|b| b[sampler_at + 32..sampler_at + 40].fill(0)
    )));
    assert!(invalid(edit(
        &|b| b[sampler_at + 40..sampler_at + 44].copy_from_slice(&6u32.to_le_bytes())
    )));
    assert!(invalid(edit(
        &|b| b[sampler_at + 44..sampler_at + 48].copy_from_slice(&5u32.to_le_bytes())
    )));
    assert!(invalid(edit(
        &|b| b[sampler_at + 12..sampler_at + 16].copy_from_slice(&1000u32.to_le_bytes())
    )));
    // The unedited snapshot passes the same path.
    let mut f = Fixture::new(&model);
    let mut s = Session::new(&model, &mut f.state, &mut f.scratch).unwrap();
    let mut sampler = Sampler::new(SamplerConfig::default()).unwrap();
    s.restore_snapshot(&mut sampler, &snap).unwrap();
}

#[test]
fn save_needs_a_large_enough_buffer() {
    let m = tiny_model_parts();
    let model = tiny_model(&m);
    let mut f = Fixture::new(&model);
    let s = Session::new(&model, &mut f.state, &mut f.scratch).unwrap();
    let sampler = Sampler::new(SamplerConfig::default()).unwrap();
    let need = s.snapshot_len();
    let mut out = vec![0x5Au8; need - 1];
    assert_eq!(
        s.save_snapshot(&sampler, &mut out),
        Err(Error::SnapshotBufferTooSmall {
            need,
            got: need - 1
        })
    );
    assert!(
        out.iter().all(|&b| b == 0x5A),
        "nothing is written on error"
    );
    let mut out = vec![0x5Au8; need + 10];
    assert_eq!(s.save_snapshot(&sampler, &mut out), Ok(need));
    assert!(out[need..].iter().all(|&b| b == 0x5A));
    let mut small = [0u8; 10];
    assert_eq!(
        sampler.save_state(&mut small),
        Err(Error::SnapshotBufferTooSmall {
            need: SAMPLER_STATE_BYTES,
            got: 10
        })
    );
    assert_eq!(
        Sampler::restore_state(&small).unwrap_err(),
        Error::SnapshotTruncated {
            need: SAMPLER_STATE_BYTES,
            got: 10
        }
    );
}

#[test]
fn fingerprint_covers_weights_not_the_container() {
    let m = tiny_model_parts();
    let from_parts = tiny_model(&m);
    let f32_file = GgufParts::new(&m, GgmlType::F32).to_aligned();
    let f16_file = GgufParts::new(&m, GgmlType::F16).to_aligned();
    let a = Model::from_gguf(as_bytes(&f32_file)).unwrap();
    let b = Model::from_gguf(as_bytes(&f16_file)).unwrap();
    assert_eq!(a.fingerprint(), from_parts.fingerprint());
    assert_ne!(
        a.fingerprint(),
        b.fingerprint(),
        "f16 weights compute other logits"
    );
    // Metadata that does not change a logit does not change the fingerprint.
    let mut renamed = GgufParts::new(&m, GgmlType::F32);
    renamed.set("general.name", MetaValue::String("another name".into()));
    renamed.set("latte.context_length", MetaValue::U32(4096));
    let renamed = renamed.to_aligned();
    assert_eq!(
        Model::from_gguf(as_bytes(&renamed)).unwrap().fingerprint(),
        a.fingerprint()
    );
    // Anything that does change a logit does.
    let mut eps = GgufParts::new(&m, GgmlType::F32);
    eps.set("latte.attention.layer_norm_epsilon", MetaValue::F32(1e-5));
    let eps = eps.to_aligned();
    assert_ne!(
        Model::from_gguf(as_bytes(&eps)).unwrap().fingerprint(),
        a.fingerprint()
    );
    for pick in 0..4 {
        let mut other = tiny_model_parts();
        match pick {
            0 => other.token_embd[0] += 1e-3,
            1 => other.output_bias[10] = -other.output_bias[10] - 1.0,
            2 => other.layers[0].ffn_norm_b[3] += 0.5,
            _ => other.layers[1].down[0] *= 2.0,
        }
        assert_ne!(
            tiny_model(&other).fingerprint(),
            a.fingerprint(),
            "edit {pick}"
        );
    }
}

#[test]
fn sampler_state_round_trips_and_settings_can_change() {
    let mut s = Sampler::new(sampling()).unwrap();
    for t in [1u32, 2, 3, 4, 5, 6, 7] {
        s.accept(t);
    }
    s.next_u64();
    let mut bytes = [0u8; SAMPLER_STATE_BYTES];
    assert_eq!(s.save_state(&mut bytes), Ok(SAMPLER_STATE_BYTES));
    let mut r = Sampler::restore_state(&bytes).unwrap();
    assert_eq!(r.config(), s.config());
    let mut h = r.history().to_vec();
    h.sort();
    assert_eq!(h, [3, 4, 5, 6, 7]);
    let logits = [0.3f32, 1.0, 0.9, 0.2, 0.8, 0.5, 0.1, 0.7];
    for _ in 0..50 {
        let (mut a, mut b) = (logits, logits);
        let (mut wa, mut wb) = ([0f32; 8], [0f32; 8]);
        assert_eq!(s.sample(&mut a, &mut wa), r.sample(&mut b, &mut wb));
    }
    // set_config keeps the PRNG and the newest tokens that fit the new window.
    let mut a = Sampler::new(sampling()).unwrap();
    for t in [10u32, 11, 12, 13, 14, 15, 16] {
        a.accept(t);
    }
    let mut b = a.clone();
    b.set_config(SamplerConfig {
        repeat_last_n: 3,
        top_k: 2,
        ..sampling()
    })
    .unwrap();
    let mut h = b.history().to_vec();
    h.sort();
    assert_eq!(h, [14, 15, 16]);
    assert_eq!(b.config().top_k, 2);
    assert_eq!(a.next_u64(), b.next_u64(), "the PRNG continues");
    b.set_config(SamplerConfig {
        repeat_last_n: 256,
        ..sampling()
    })
    .unwrap();
    let mut h = b.history().to_vec();
    h.sort();
    assert_eq!(h, [14, 15, 16]);
    assert_eq!(
        b.set_config(SamplerConfig {
            top_p: 0.0,
            ..sampling()
        }),
        Err(Error::InvalidTopP)
    );
    assert_eq!(b.config().repeat_last_n, 256, "unchanged on error");
}
