//! The fuzz target bodies. Each takes arbitrary bytes; any panic (including
//! a failed `assert!` on an invariant) is a finding.
//!
//! This file uses only `latte_gguf` and `latte_core`, so the main test suite
//! includes it (`#[path]`) to replay the saved crash inputs.

use latte_core::{
    Config, Error, LayerWeights, Matrix, Model, Norm, Position, Sampler, SamplerConfig, Sequential,
    Session, Weights,
};
use latte_gguf::{Gguf, Value};

/// Copies `bytes` into a 4-byte aligned buffer (as `mmap` or an aligned
/// include would give); returns the words and the byte length.
pub fn aligned(bytes: &[u8]) -> (Vec<u32>, usize) {
    let mut words = vec![0u32; bytes.len().div_ceil(4)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
    (words, bytes.len())
}

/// The bytes of an [`aligned`] buffer.
pub fn aligned_bytes(buf: &(Vec<u32>, usize)) -> &[u8] {
    &bytemuck::cast_slice::<u32, u8>(&buf.0)[..buf.1]
}

/// (a) The GGUF reader: parse, then walk every metadata value and tensor and
/// check that the accessors agree with the parse.
pub fn gguf_parse(data: &[u8]) {
    let Ok(g) = Gguf::parse(data) else {
        return;
    };
    assert_eq!(g.version(), latte_gguf::VERSION);
    assert!(g.alignment().is_power_of_two());
    assert!(g.data_offset() <= data.len() as u64 || g.tensor_count() == 0);
    let mut kvs = 0usize;
    for (key, value) in g.metadata() {
        kvs += 1;
        walk_value(value);
        let found = g.get(key).expect("every key can be looked up");
        assert_eq!(found.value_type(), value.value_type());
    }
    assert_eq!(kvs, g.kv_count(), "metadata iteration stopped early");
    let mut tensors = 0usize;
    for t in g.tensors() {
        tensors += 1;
        assert!(!t.shape().is_empty() && t.shape().len() <= latte_gguf::MAX_DIMS);
        assert!(t.shape().iter().all(|&n| n > 0));
        let want = t.ty.bytes_for(t.n_elements()).expect("size was checked");
        assert_eq!(t.data.len() as u64, want, "tensor {} data length", t.name);
        let again = g.tensor(t.name).expect("every tensor can be looked up");
        assert_eq!(again.offset, t.offset);
        assert_eq!(again.data.as_ptr(), t.data.as_ptr());
        let _ = (t.rows(), t.cols());
    }
    assert_eq!(tensors, g.tensor_count(), "tensor iteration stopped early");
    // The typed getters of the Latte keys never panic, whatever the types.
    for key in [
        "general.architecture",
        "latte.vocab_size",
        "latte.attention.layer_norm_epsilon",
        "latte.vapor.frequencies",
        "general.alignment",
    ] {
        let _ = g.get_u32(key);
        let _ = g.get_u64(key);
        let _ = g.get_f32(key);
        let _ = g.get_bool(key);
        let _ = g.get_str(key);
        let _ = g.get_array(key);
        if let Ok(a) = g.get_f32_array(key) {
            assert_eq!(a.iter().count(), a.len());
        }
    }
}

fn walk_value(v: Value<'_>) {
    let _ = (v.as_u32(), v.as_u64(), v.as_f32(), v.as_bool(), v.as_str());
    if let Some(a) = v.as_array() {
        assert_eq!(a.iter().count(), a.len(), "array iteration stopped early");
        for item in a.iter() {
            assert_eq!(item.value_type(), a.elem_type());
            assert!(item.as_array().is_none(), "arrays do not nest");
        }
        if let Some(f) = a.as_f32() {
            assert_eq!(f.len(), a.len());
            assert_eq!(f.iter().count(), a.len());
            assert!(f.get(a.len()).is_none());
            if !f.is_empty() {
                assert!(f.get(a.len() - 1).is_some());
            }
        }
    }
}

/// (b) Load and step: byte 0 is the number of tokens `n` (mod 9), the next
/// `n` bytes are token ids, the rest is a model file. Loads it, runs the
/// tokens (sampling after each), checks that a chunked prefill of the
/// valid ones (chunks of `1 + n % 3`) gives the same logits and state bit
/// for bit (any NaN equal to any NaN), and round-trips a snapshot.
pub fn load_and_step(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 9).min(rest.len());
    let (tokens, file) = rest.split_at(n);
    let buf = aligned(file);
    let Ok(model) = Model::from_gguf(aligned_bytes(&buf)) else {
        return;
    };
    let v = model.config().vocab_size;
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut s = Session::new(&model, &mut state, &mut scratch).expect("exact buffers are enough");
    let mut sampler = Sampler::new(SamplerConfig {
        temperature: 0.8,
        top_k: 5,
        top_p: 0.9,
        repeat_penalty: 1.1,
        repeat_last_n: 8,
        seed: u64::from(n as u8),
    })
    .expect("valid settings");
    // The logits after each token that was fed, for the prefill below.
    let (mut fed, mut rows) = (Vec::new(), Vec::new());
    for &t in tokens {
        let t = u32::from(t);
        match s.step(t) {
            Ok(logits) => {
                assert_eq!(logits.len(), v);
                fed.push(t);
                rows.extend_from_slice(logits);
            }
            Err(Error::TokenOutOfRange { .. }) => assert!(t as usize >= v),
            Err(e) => panic!("step failed on a loaded model: {e}"),
        }
        let next = s.sample(&mut sampler);
        assert!((next as usize) < v, "sampled token {next} >= V = {v}");
    }
    // A chunked prefill of the same tokens gives the same bits.
    if !fed.is_empty() {
        let chunk = 1 + usize::from(n as u8) % 3;
        let mut state3 = vec![0f32; model.state_len()];
        let mut scratch3 = vec![0f32; model.scratch_len()];
        let mut prefill = vec![0f32; model.prefill_scratch_len(chunk)];
        let mut all = vec![0f32; fed.len() * v];
        let mut s3 = Session::new(&model, &mut state3, &mut scratch3).expect("session");
        s3.prefill_with(&fed, chunk, &mut prefill, &Sequential, Some(&mut all))
            .expect("prefill of valid tokens with exact buffers");
        // Bits, except that every NaN counts as one: Rust leaves the
        // payload of a NaN result unspecified (the optimizer may swap the
        // operands of an addition, and x86 returns the first NaN operand),
        // so the two code paths may encode the NaNs of a broken model
        // differently.
        let bits = |x: &[f32]| {
            x.iter()
                .map(|v| if v.is_nan() { u32::MAX } else { v.to_bits() })
                .collect::<Vec<_>>()
        };
        assert!(
            bits(&all) == bits(&rows),
            "prefill logits differ from steps"
        );
        assert!(bits(s3.state()) == bits(s.state()), "prefill state differs");
        assert_eq!(s3.position(), s.position());
    }
    let mut snap = vec![0u8; s.snapshot_len()];
    assert_eq!(s.save_snapshot(&sampler, &mut snap), Ok(snap.len()));
    let mut state2 = vec![0f32; model.state_len()];
    let mut scratch2 = vec![0f32; model.scratch_len()];
    let mut s2 = Session::new(&model, &mut state2, &mut scratch2).expect("session");
    let mut sampler2 = Sampler::new(SamplerConfig::default()).expect("default settings");
    s2.restore_snapshot(&mut sampler2, &snap)
        .expect("own snapshot restores");
    assert_eq!(s2.position(), s.position());
    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(s2.state()), bits(s.state()));
    assert_eq!(bits(s2.logits()), bits(s.logits()));
    assert_eq!(s2.sample(&mut sampler2), s.sample(&mut sampler));
}

/// Weights of the fixed model the snapshot target restores into.
pub struct SnapshotModel {
    config: Config,
    v: Vec<Vec<f32>>,
}

/// A small fixed model (V = 7, D = 4, H = 2, L = 4, F = 8, two layers) with
/// deterministic weights; `vapor` picks the position scheme.
pub fn snapshot_model(vapor: bool) -> SnapshotModel {
    let config = Config {
        vocab_size: 7,
        d_model: 4,
        n_layers: 2,
        n_heads: 2,
        n_latents: 4,
        d_ff: 8,
        context_length: 16,
        ln_eps: 1e-6,
        position: if vapor {
            Position::Vapor
        } else {
            Position::Sinusoidal
        },
        latent_decay: false,
        mixing: latte_core::Mixing::Latte,
    };
    let mut seed = 0x5EED_u64;
    let mut vec = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    };
    let (v, d, l, f) = (7, 4, 4, 8);
    let mut all = vec![vec(v * d), vec(v * d), vec(v), vec(d), vec(d)];
    for _ in 0..2 {
        for n in [d, d, l * d, l * d, d * d, d * d, d, d, f * d, f, d * f, d] {
            all.push(vec(n));
        }
    }
    all.push(vec![0.5]);
    SnapshotModel { config, v: all }
}

impl SnapshotModel {
    /// Runs `f` on the model built from these weights.
    pub fn with_model<R>(&self, f: impl FnOnce(&Model<'_>) -> R) -> R {
        let c = &self.config;
        let (v, d, l, ff) = (c.vocab_size, c.d_model, c.n_latents, c.d_ff);
        let w = &self.v;
        let m = |i: usize, r: usize, cols: usize| Matrix::from_f32(r, cols, &w[i]).expect("shape");
        let layers: Vec<LayerWeights<'_>> = (0..2)
            .map(|li| {
                let b = 5 + 12 * li;
                LayerWeights {
                    attn_norm: Norm {
                        weight: &w[b],
                        bias: &w[b + 1],
                    },
                    attn_q: m(b + 2, l, d),
                    attn_k: m(b + 3, l, d),
                    attn_v: m(b + 4, d, d),
                    attn_output: m(b + 5, d, d),
                    ffn_norm: Norm {
                        weight: &w[b + 6],
                        bias: &w[b + 7],
                    },
                    ffn_up: m(b + 8, ff, d),
                    ffn_up_bias: &w[b + 9],
                    ffn_down: m(b + 10, d, ff),
                    ffn_down_bias: &w[b + 11],
                    attn_decay: None,
                    window: None,
                }
            })
            .collect();
        let model = Model::from_parts(
            *c,
            Weights {
                token_embd: m(0, v, d),
                layers: &layers,
                output_norm: Norm {
                    weight: &w[3],
                    bias: &w[4],
                },
                output: m(1, v, d),
                output_bias: &w[2],
                vapor_frequencies: &w[29],
            },
        )
        .expect("fixed model is valid");
        f(&model)
    }
}

/// Bitwise CRC-32 (ISO-HDLC), as the snapshot format uses.
fn crc32(bytes: &[u8]) -> u32 {
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

/// (c) Snapshot restore: bit 0 of byte 0 picks the model (sinusoidal or
/// VAPOR); with bit 1 set the trailing CRC is recomputed over the length the
/// header states, so mutations get past the checksum to the field checks.
/// The rest is offered as a snapshot. A refused snapshot changes nothing; an
/// accepted one saves back to the same bytes and runs on.
pub fn snapshot_restore(data: &[u8]) {
    let Some((&pick, snap)) = data.split_first() else {
        return;
    };
    let mut fixed;
    let mut snap = snap;
    if pick & 2 != 0 {
        fixed = snap.to_vec();
        let total = fixed
            .get(8..16)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .and_then(|t| usize::try_from(t).ok())
            .filter(|&t| t >= 4 && t <= fixed.len());
        if let Some(t) = total {
            let crc = crc32(&fixed[..t - 4]);
            fixed[t - 4..t].copy_from_slice(&crc.to_le_bytes());
        }
        snap = &fixed;
    }
    snapshot_model(pick % 2 == 1).with_model(|model| {
        let mut state = vec![0f32; model.state_len()];
        let mut scratch = vec![0f32; model.scratch_len()];
        let mut s = Session::new(model, &mut state, &mut scratch).expect("session");
        s.step(3).expect("token 3 < V");
        let mut sampler = Sampler::new(SamplerConfig {
            temperature: 1.0,
            seed: 1,
            ..SamplerConfig::default()
        })
        .expect("settings");
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let (state_before, logits_before) = (bits(s.state()), bits(s.logits()));
        let probe = sampler.clone();
        match s.restore_snapshot(&mut sampler, snap) {
            Err(_) => {
                assert_eq!(s.position(), 1);
                assert_eq!(bits(s.state()), state_before);
                assert_eq!(bits(s.logits()), logits_before);
                assert_eq!(sampler.history(), probe.history());
                assert_eq!(sampler.clone().next_u64(), probe.clone().next_u64());
            }
            Ok(()) => {
                let mut again = vec![0u8; s.snapshot_len()];
                s.save_snapshot(&sampler, &mut again).expect("save");
                assert_eq!(
                    &again[..],
                    &snap[..again.len()],
                    "restore then save changed the bytes"
                );
                let t = s.sample(&mut sampler);
                assert!((t as usize) < model.config().vocab_size);
                s.step(t).expect("sampled token is in range");
            }
        }
    });
}
