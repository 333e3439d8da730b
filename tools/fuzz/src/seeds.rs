//! The seed corpus: small valid model files (every shape feature: F32, F16,
//! VAPOR, one and several layers), the committed model's header, and valid
//! snapshots of the snapshot target's model.

use std::path::Path;

use latte_core::{Sampler, SamplerConfig, Session};
use latte_gguf::{GgmlType, GgufWriter, MetaArray, MetaValue};

use crate::targets::snapshot_model;

/// Shape of a generated model.
struct Shape {
    v: usize,
    d: usize,
    h: usize,
    l: usize,
    n: usize,
    f: usize,
    vapor: bool,
    ty: GgmlType,
}

/// Deterministic uniform numbers in [-scale, scale).
struct Lcg(u64);

impl Lcg {
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
            })
            .collect()
    }
}

/// The values in `ty`'s encoding. For the block types, each block of 32
/// values gets the scale `max |x| / 127` (Q8_0) or `max |x| / 8` (Q4_0)
/// and rounded quants; exactness does not matter for a seed.
fn bytes(v: &[f32], ty: GgmlType) -> Vec<u8> {
    match ty {
        GgmlType::F16 => v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
        GgmlType::Q8_0 | GgmlType::Q4_0 => {
            let mut out = Vec::new();
            for block in v.chunks(32) {
                let amax = block.iter().fold(0f32, |a, x| a.max(x.abs()));
                let q8 = ty == GgmlType::Q8_0;
                let d = if q8 { amax / 127.0 } else { amax / 8.0 };
                let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
                if q8 {
                    out.extend(block.iter().map(|x| ((x * inv).round() as i8) as u8));
                } else {
                    let q = |x: f32| ((x * inv).round() + 8.0).clamp(0.0, 15.0) as u8;
                    out.extend((0..16).map(|j| q(block[j]) | (q(block[j + 16]) << 4)));
                }
            }
            out
        }
        _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// A valid Latte GGUF file of the given shape (FORMAT.md).
fn model_file(s: &Shape, seed: u64) -> Vec<u8> {
    let mut r = Lcg(seed);
    let mut w = GgufWriter::new();
    let u = |x: usize| MetaValue::U32(x as u32);
    let kvs = [
        ("general.architecture", MetaValue::String("latte".into())),
        ("latte.vocab_size", u(s.v)),
        ("latte.context_length", u(32)),
        ("latte.embedding_length", u(s.d)),
        ("latte.block_count", u(s.n)),
        ("latte.feed_forward_length", u(s.f)),
        ("latte.attention.head_count", u(s.h)),
        ("latte.latent_count", u(s.l)),
        ("latte.attention.layer_norm_epsilon", MetaValue::F32(1e-6)),
        (
            "latte.position_encoding",
            MetaValue::String(if s.vapor { "vapor" } else { "sinusoidal" }.into()),
        ),
        ("tokenizer.ggml.model", MetaValue::String("bytes".into())),
    ];
    for (k, v) in kvs {
        w.add(k, v).expect("key");
    }
    if s.vapor {
        let dh = s.d / s.h;
        let theta = (0..dh / 2)
            .map(|i| 10000f32.powf(-2.0 * i as f32 / dh as f32))
            .collect();
        w.add(
            "latte.vapor.frequencies",
            MetaValue::Array(MetaArray::F32(theta)),
        )
        .expect("key");
    }
    let mat = |w: &mut GgufWriter<'_>, name: String, rows: usize, cols: usize, r: &mut Lcg| {
        let data = bytes(&r.vec(rows * cols, 0.5), s.ty);
        w.add_tensor(name, &[cols as u64, rows as u64], s.ty, data)
            .expect("tensor");
    };
    let vector = |w: &mut GgufWriter<'_>, name: String, n: usize, r: &mut Lcg| {
        let data = bytes(&r.vec(n, 0.5), GgmlType::F32);
        w.add_tensor(name, &[n as u64], GgmlType::F32, data)
            .expect("tensor");
    };
    mat(&mut w, "token_embd.weight".into(), s.v, s.d, &mut r);
    for i in 0..s.n {
        let n = |x: &str| format!("blk.{i}.{x}");
        vector(&mut w, n("attn_norm.weight"), s.d, &mut r);
        vector(&mut w, n("attn_norm.bias"), s.d, &mut r);
        mat(&mut w, n("attn_q.weight"), s.l, s.d, &mut r);
        mat(&mut w, n("attn_k.weight"), s.l, s.d, &mut r);
        mat(&mut w, n("attn_v.weight"), s.d, s.d, &mut r);
        mat(&mut w, n("attn_output.weight"), s.d, s.d, &mut r);
        vector(&mut w, n("ffn_norm.weight"), s.d, &mut r);
        vector(&mut w, n("ffn_norm.bias"), s.d, &mut r);
        mat(&mut w, n("ffn_up.weight"), s.f, s.d, &mut r);
        vector(&mut w, n("ffn_up.bias"), s.f, &mut r);
        mat(&mut w, n("ffn_down.weight"), s.d, s.f, &mut r);
        vector(&mut w, n("ffn_down.bias"), s.d, &mut r);
    }
    vector(&mut w, "output_norm.weight".into(), s.d, &mut r);
    vector(&mut w, "output_norm.bias".into(), s.d, &mut r);
    mat(&mut w, "output.weight".into(), s.v, s.d, &mut r);
    vector(&mut w, "output.bias".into(), s.v, &mut r);
    w.to_bytes()
}

/// Small valid model files, named.
pub fn model_files() -> Vec<(String, Vec<u8>)> {
    let f32 = GgmlType::F32;
    let f16 = GgmlType::F16;
    let shapes = [
        (
            "tiny-f32",
            Shape {
                v: 11,
                d: 8,
                h: 2,
                l: 6,
                n: 2,
                f: 32,
                vapor: false,
                ty: f32,
            },
        ),
        (
            "tiny-f16",
            Shape {
                v: 11,
                d: 8,
                h: 2,
                l: 6,
                n: 2,
                f: 32,
                vapor: false,
                ty: f16,
            },
        ),
        (
            "vapor-f32",
            Shape {
                v: 13,
                d: 8,
                h: 2,
                l: 4,
                n: 1,
                f: 16,
                vapor: true,
                ty: f32,
            },
        ),
        (
            "vapor-f16",
            Shape {
                v: 5,
                d: 4,
                h: 1,
                l: 2,
                n: 2,
                f: 4,
                vapor: true,
                ty: f16,
            },
        ),
        (
            "minimal",
            Shape {
                v: 2,
                d: 1,
                h: 1,
                l: 1,
                n: 1,
                f: 1,
                vapor: false,
                ty: f32,
            },
        ),
        (
            "bytes-f16",
            Shape {
                v: 256,
                d: 4,
                h: 2,
                l: 2,
                n: 1,
                f: 8,
                vapor: false,
                ty: f16,
            },
        ),
        // Block-quantized matrices need rows of a multiple of 32 values.
        (
            "q8_0",
            Shape {
                v: 7,
                d: 32,
                h: 2,
                l: 4,
                n: 1,
                f: 32,
                vapor: false,
                ty: GgmlType::Q8_0,
            },
        ),
        (
            "q4_0",
            Shape {
                v: 7,
                d: 32,
                h: 4,
                l: 4,
                n: 1,
                f: 64,
                vapor: true,
                ty: GgmlType::Q4_0,
            },
        ),
    ];
    shapes
        .iter()
        .enumerate()
        .map(|(i, (name, s))| (name.to_string(), model_file(s, i as u64 + 1)))
        .collect()
}

/// The seeds of each target: `(target, name, bytes)`. `committed` is the
/// directory of the committed model files, whose headers are added when
/// they exist.
pub fn all(committed: Option<&Path>) -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let models = model_files();
    for (name, file) in &models {
        out.push(("gguf_parse", name.clone(), file.clone()));
        // Token prefixes: none, in range, one out of range for small V.
        for (tag, tokens) in [
            ("0", &[][..]),
            ("3", &[1u8, 0, 1][..]),
            ("8", &[0u8, 1, 1, 0, 9, 200, 1, 0][..]),
        ] {
            let mut seed = vec![tokens.len() as u8];
            seed.extend_from_slice(tokens);
            seed.extend_from_slice(file);
            out.push(("load_and_step", format!("{name}-{tag}"), seed));
        }
    }
    if let Some(dir) = committed {
        for file in ["latte-micro-f32.gguf", "latte-micro-f16.gguf"] {
            if let Ok(bytes) = std::fs::read(dir.join(file)) {
                // Header, metadata and tensor infos (the data is cut off).
                let head = bytes[..bytes.len().min(4800)].to_vec();
                out.push(("gguf_parse", format!("{file}-header"), head.clone()));
                let mut seed = vec![2u8, b'H', b'i'];
                seed.extend_from_slice(&head);
                out.push(("load_and_step", format!("{file}-header"), seed));
            }
        }
    }
    for vapor in [false, true] {
        for steps in [0usize, 3] {
            let bytes = snapshot_model(vapor).with_model(|model| {
                let mut state = vec![0f32; model.state_len()];
                let mut scratch = vec![0f32; model.scratch_len()];
                let mut s = Session::new(model, &mut state, &mut scratch).expect("session");
                let mut sampler = Sampler::new(SamplerConfig {
                    temperature: 0.7,
                    top_k: 3,
                    top_p: 0.9,
                    repeat_penalty: 1.2,
                    repeat_last_n: 4,
                    seed: 9,
                })
                .expect("settings");
                for _ in 0..steps {
                    let t = s.sample(&mut sampler);
                    s.step(t).expect("step");
                }
                let mut out = vec![0u8; s.snapshot_len()];
                s.save_snapshot(&sampler, &mut out).expect("save");
                out
            });
            for fix_crc in [0u8, 2] {
                let mut seed = vec![u8::from(vapor) | fix_crc];
                seed.extend_from_slice(&bytes);
                out.push((
                    "snapshot_restore",
                    format!("vapor{}-pos{steps}-crcfix{fix_crc}", u8::from(vapor)),
                    seed,
                ));
            }
        }
    }
    out
}
