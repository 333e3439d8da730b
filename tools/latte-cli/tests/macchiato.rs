//! Latte-Macchiato (Latte plus softmax attention over a window, an
//! extension in the file format: `latte.mixer = macchiato`) through
//! `latte convert` and the runtime:
//!
//! * two small random models made by the reference trainer
//!   (`tests/data/macchiato`, see its README), window 5 so that every
//!   golden prompt wraps the ring several times, one per combination
//!   (`sum`, `joint`), converted to f32 and run against the trainer's
//!   float64 recurrent golden outputs (which its own tests check against
//!   loop definitions of both combinations);
//! * a chunked prefill gives the bits of single steps, and every kernel
//!   path the bits of the scalar one, for f32 and Q8_0 weights;
//! * the state has a constant size (Latte's plus the ring) and the
//!   position never enters the window's arithmetic;
//! * window tensors and the configuration must agree.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use latte_core::{Combine, Kernels, Mixing, Model, RingStorage, Sampler, SamplerConfig, Session};
use latte_gguf::Gguf;
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/macchiato");

fn convert(input: &Path, output: &Path, extra: &[&str]) {
    let mut args: Vec<&std::ffi::OsStr> = vec![os("convert"), os(input), os("-o"), os(output)];
    args.extend(extra.iter().map(os));
    ok(&latte(args));
}

fn golden(combine: &str) -> Value {
    let text = std::fs::read_to_string(format!("{FIXTURE}/golden-{combine}.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect()
}

/// Converts the fixture of `combine` to `dtype`; returns the file's words.
fn converted(dir: &TempDir, combine: &str, dtype: &str) -> Vec<u32> {
    let src = PathBuf::from(match combine {
        "attention" => format!("{FIXTURE}/attention.safetensors"),
        _ => format!("{FIXTURE}/macchiato-{combine}.safetensors"),
    });
    let out = dir.path(&format!("{combine}-{dtype}.gguf"));
    convert(&src, &out, &["--dtype", dtype]);
    aligned(&out)
}

/// f32 logits after every prompt byte and every (teacher-forced) golden
/// greedy byte within 1e-4 of the float64 golden ones, and the model's own
/// greedy text equal to the golden one: both Macchiato combinations and the
/// full-attention baseline (its KV cache is the ring, sized to the
/// training length of 64 tokens by default, here 128).
#[test]
fn both_combinations_and_attention_match_their_float64_goldens() {
    let dir = TempDir::new("macchiato-golden");
    for combine in ["sum", "joint", "attention"] {
        let gold = golden(combine);
        assert_eq!(gold["form"], "recurrent reference, float64");
        let words = converted(&dir, combine, "f32");
        let bytes = bytemuck::cast_slice::<u32, u8>(&words);
        let g = Gguf::parse(bytes).unwrap();
        let model = Model::from_gguf(bytes).unwrap();
        if combine == "attention" {
            assert_eq!(gold["config"]["mixer"], "attention");
            assert_eq!(g.get_str("latte.mixer"), Ok("attention"));
            assert_eq!(g.get_u32("latte.window"), Ok(0));
            assert!(g.tensor("blk.0.attn_q.weight").is_none());
            assert_eq!(
                model.config().mixing,
                Mixing::Attention {
                    window: 64,
                    full: true,
                    ring: RingStorage::F32,
                }
            );
            assert_eq!(model.mixer(0).unwrap().kind(), "attention");
            assert_eq!(model.max_tokens(), Some(64));
        } else {
            assert_eq!(gold["config"]["window"], 5);
            assert_eq!(gold["config"]["combine"], combine);
            assert_eq!(g.get_str("latte.mixer"), Ok("macchiato"));
            assert_eq!(g.get_u32("latte.window"), Ok(5));
            assert_eq!(g.get_str("latte.window_combine"), Ok(combine));
            let want_combine = if combine == "sum" {
                Combine::Sum
            } else {
                Combine::Joint
            };
            assert_eq!(
                model.config().mixing,
                Mixing::Macchiato {
                    window: 5,
                    combine: want_combine,
                    ring: RingStorage::F32,
                }
            );
            assert_eq!(model.mixer(0).unwrap().kind(), "macchiato");
            assert_eq!(model.max_tokens(), None);
        }
        // The golden prompts and continuations run to 96 tokens.
        let model = model.with_attention_capacity(128).unwrap();
        let mut state = vec![0f32; model.state_len()];
        let mut scratch = vec![0f32; model.scratch_len()];
        let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
        let mut worst = 0f64;
        for p in gold["prompts"].as_array().unwrap() {
            let toks = u32s(&p["tokens"]);
            let greedy = u32s(&p["greedy"]);
            let rows = p["logits"].as_array().unwrap();
            s.reset();
            let mut check = |got: &[f32], want: &Value| {
                for (a, b) in got.iter().zip(want.as_array().unwrap()) {
                    worst = worst.max((*a as f64 - b.as_f64().unwrap()).abs());
                }
            };
            for (t, row) in toks.iter().zip(rows) {
                check(s.step(*t).unwrap(), row);
            }
            // Teacher-forced greedy continuation: the top token each time.
            for &t in &greedy {
                let l = s.logits();
                let top = (0..l.len()).fold(0, |b, i| if l[i] > l[b] { i } else { b });
                assert_eq!(top as u32, t, "{combine}: greedy differs");
                s.step(t).unwrap();
            }
            // The model's own greedy text, through the sampler.
            s.reset();
            s.feed(&toks).unwrap();
            let mut greedy_sampler = Sampler::new(SamplerConfig {
                temperature: 0.0,
                repeat_penalty: 1.0,
                ..Default::default()
            })
            .unwrap();
            let free: Vec<u32> = (0..greedy.len())
                .map(|_| {
                    let t = s.sample(&mut greedy_sampler);
                    s.step(t).unwrap();
                    t
                })
                .collect();
            assert_eq!(free, greedy, "{combine}: free greedy text differs");
        }
        assert!(worst < 1e-4, "{combine}: worst logit error {worst}");
    }
}

/// Logits of `tokens` fed one step at a time.
fn stepped(model: &Model<'_>, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut s = Session::new(model, &mut state, &mut scratch).unwrap();
    tokens
        .iter()
        .map(|&t| s.step(t).unwrap().to_vec())
        .collect()
}

/// Prefill of `tokens` in chunks of each size in `chunks` gives, token by
/// token, the bits of `want` (the logits of single steps).
fn chunks_give_the_steps(
    model: &Model<'_>,
    tokens: &[u32],
    want: &[Vec<f32>],
    chunks: &[usize],
    label: &str,
) {
    for &chunk in chunks {
        let mut state = vec![0f32; model.state_len()];
        let mut scratch = vec![0f32; model.scratch_len()];
        let mut pre = vec![0f32; model.prefill_scratch_len(chunk)];
        let mut all = vec![0f32; tokens.len() * 256];
        let mut s = Session::new(model, &mut state, &mut scratch).unwrap();
        s.prefill_with(
            tokens,
            chunk,
            &mut pre,
            &latte_core::Sequential,
            Some(&mut all),
        )
        .unwrap();
        for (i, row) in want.iter().enumerate() {
            let got = &all[i * 256..(i + 1) * 256];
            assert!(
                got.iter().zip(row).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{label}: chunk {chunk}, token {i} differs from steps"
            );
        }
    }
}

/// Chunked prefill (every chunk size from 1 to past the window, and a
/// whole-prompt chunk) gives the bits of single steps; every kernel path
/// gives the scalar path's bits, for f32 and Q8_0 weights.
#[test]
fn prefill_and_every_kernel_path_give_the_bits_of_scalar_steps() {
    let dir = TempDir::new("macchiato-bits");
    let tokens: Vec<u32> = b"Macchiato: a window of five bytes, wrapped many times over."
        .iter()
        .map(|&b| b as u32)
        .collect();
    for combine in ["sum", "joint", "attention"] {
        for dtype in ["f32", "q8_0"] {
            let words = converted(&dir, combine, dtype);
            let bytes = bytemuck::cast_slice::<u32, u8>(&words);
            let scalar = Model::from_gguf(bytes)
                .unwrap()
                .with_kernels(Kernels::scalar());
            let want = stepped(&scalar, &tokens);
            let chunks = [1, 2, 3, 5, 6, 7, 16, tokens.len()];
            chunks_give_the_steps(
                &scalar,
                &tokens,
                &want,
                &chunks,
                &format!("{combine} {dtype}"),
            );
            let mut paths = 0;
            for path in latte_core::KernelPath::ALL {
                let Some(k) = path.kernels() else { continue };
                let m = Model::from_gguf(bytes).unwrap().with_kernels(k);
                assert_eq!(m.kernels().path(), path, "the path meant to run");
                let got = stepped(&m, &tokens);
                if dtype == "q8_0" {
                    // Quantized products are bit-exact on every path, and
                    // so is the window's own arithmetic.
                    assert_eq!(
                        got.iter()
                            .flatten()
                            .map(|v| v.to_bits())
                            .collect::<Vec<_>>(),
                        want.iter()
                            .flatten()
                            .map(|v| v.to_bits())
                            .collect::<Vec<_>>(),
                        "{combine} {dtype}: path {path:?}"
                    );
                }
                paths += 1;
            }
            assert!(paths >= 1);
        }
    }
}

/// The state is Latte's plus the ring, whatever the position, and it is
/// the whole memory of a session: a snapshot taken after 20 tokens (the
/// ring wrapped) and restored into a fresh session continues with the same
/// bits.
#[test]
fn the_state_is_constant_and_snapshots_carry_the_ring() {
    let dir = TempDir::new("macchiato-state");
    let words = converted(&dir, "joint", "f32");
    let bytes = bytemuck::cast_slice::<u32, u8>(&words);
    let model = Model::from_gguf(bytes).unwrap();
    let c = model.config();
    let latte = c.n_latents * c.d_head() + 2 * c.n_latents;
    let ring = 2 * 5 * c.d_model + 2;
    assert_eq!(model.state_len(), c.n_layers * (latte + ring));
    assert_eq!(model.mixer(1).unwrap().ring_len(), ring);
    let tokens: Vec<u32> = (0..40).map(|i| (i * 7 + 3) % 256).collect();
    let mut sampler = Sampler::new(SamplerConfig::default()).unwrap();
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
    for &t in &tokens[..20] {
        s.step(t).unwrap();
    }
    let mut snap = vec![0u8; s.snapshot_len()];
    let n = s.save_snapshot(&sampler, &mut snap).unwrap();
    let near: Vec<Vec<f32>> = tokens[20..]
        .iter()
        .map(|&t| s.step(t).unwrap().to_vec())
        .collect();
    let mut state2 = vec![0f32; model.state_len()];
    let mut scratch2 = vec![0f32; model.scratch_len()];
    let mut again = Session::new(&model, &mut state2, &mut scratch2).unwrap();
    again.restore_snapshot(&mut sampler, &snap[..n]).unwrap();
    assert_eq!(again.position(), 20);
    for (t, want) in tokens[20..].iter().zip(&near) {
        let got = again.step(*t).unwrap();
        assert!(got
            .iter()
            .zip(want)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

/// A checkpoint whose configuration and window tensors disagree is refused
/// by name.
#[test]
fn window_tensors_and_configuration_must_agree() {
    let dir = TempDir::new("macchiato-agree");
    let src = PathBuf::from(format!("{FIXTURE}/macchiato-sum.safetensors"));
    let bytes = std::fs::read(&src).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    let cfg = &meta["latte.config"];
    let rewrite = |name: &str, drop: &str, config: &str| -> PathBuf {
        let tensors: Vec<Tensor> = st
            .tensors()
            .into_iter()
            .filter(|(n, _)| n != drop)
            .map(|(n, v)| Tensor {
                name: n,
                dtype: "F32",
                shape: v.shape().to_vec(),
                data: v.data().to_vec(),
            })
            .collect();
        write_st(&dir, name, &tensors, &[("latte.config", config)])
    };
    // A window tensor missing.
    let p = rewrite("missing.safetensors", "blocks.1.local.wk.weight", cfg);
    let out = dir.path("m.gguf");
    fails(
        &latte([os("convert"), os(&p), os("-o"), os(&out)]),
        &["missing tensors", "blocks.1.local.wk.weight"],
    );
    // Window tensors in a model whose configuration has no window.
    let plain = cfg.replace("\"window\": 5", "\"window\": 0");
    assert_ne!(&plain, cfg);
    let p = rewrite("stray.safetensors", "", &plain);
    fails(
        &latte([os("convert"), os(&p), os("-o"), os(&out)]),
        &["window tensor", "no \"window\""],
    );
    // An unknown combination.
    let odd = cfg.replace("\"combine\": \"sum\"", "\"combine\": \"max\"");
    assert_ne!(&odd, cfg);
    let p = rewrite("odd.safetensors", "", &odd);
    fails(
        &latte([os("convert"), os(&p), os("-o"), os(&out)]),
        &["combine `max`"],
    );
}

/// Full attention cannot forget: a session refuses the token past its KV
/// cache's capacity (and a prompt that would not fit) with a typed error
/// and stays usable; a larger capacity, chosen at load time, takes more
/// state and runs on.
#[test]
fn full_attention_refuses_tokens_past_its_capacity() {
    let dir = TempDir::new("attention-capacity");
    let words = converted(&dir, "attention", "f32");
    let bytes = bytemuck::cast_slice::<u32, u8>(&words);
    let model = Model::from_gguf(bytes).unwrap();
    let c = model.config();
    assert_eq!(model.state_len(), c.n_layers * (2 * 64 * c.d_model + 2));
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
    let prompt: Vec<u32> = (0..60).map(|i| (i * 11) % 256).collect();
    s.feed(&prompt).unwrap();
    assert_eq!(
        s.feed(&prompt[..5]),
        Err(latte_core::Error::ContextFull { capacity: 64 })
    );
    assert_eq!(s.position(), 60, "a refused prompt changes nothing");
    for t in 0..4 {
        s.step(t).unwrap();
    }
    let err = s.step(4).unwrap_err();
    assert_eq!(err, latte_core::Error::ContextFull { capacity: 64 });
    assert!(err.to_string().contains("reset the session"));
    // Capacity 100: more state, and the 65th token runs, with the logits of
    // the smaller cache for the first 64.
    let big = Model::from_gguf(bytes)
        .unwrap()
        .with_attention_capacity(100)
        .unwrap();
    assert_eq!(big.state_len(), c.n_layers * (2 * 100 * c.d_model + 2));
    let toks: Vec<u32> = (0..80).map(|i| (i * 5 + 1) % 256).collect();
    let small = stepped(&model, &toks[..64]);
    let large = stepped(&big, &toks);
    assert_eq!(small[..], large[..64]);
    assert_eq!(
        Model::from_gguf(bytes)
            .unwrap()
            .with_attention_capacity(0)
            .unwrap_err(),
        latte_core::Error::ZeroSize {
            key: "latte.window"
        }
    );
}

/// The rings in `f16` and `q8` (a load-time choice): the state shrinks to
/// the layout's size; logits stay near the float64 goldens (within the
/// rounding of the stored keys and values: bounds measured on these
/// fixtures with some margin); prefill chunks and every kernel path give
/// the bits of scalar steps; snapshots restore only into the same storage.
#[test]
fn rings_in_f16_and_q8_stay_near_the_goldens_with_the_same_bits_everywhere() {
    let dir = TempDir::new("macchiato-ring");
    let tokens: Vec<u32> = b"Rings of keys and values, rounded to f16 or to 8 bits."
        .iter()
        .map(|&b| b as u32)
        .collect();
    for combine in ["sum", "joint", "attention"] {
        let gold = golden(combine);
        for dtype in ["f32", "q8_0"] {
            let words = converted(&dir, combine, dtype);
            let bytes = bytemuck::cast_slice::<u32, u8>(&words);
            let base = Model::from_gguf(bytes)
                .unwrap()
                .with_attention_capacity(128)
                .unwrap();
            let same = base.clone().with_ring_storage(RingStorage::F32).unwrap();
            assert_eq!(same.fingerprint(), base.fingerprint());
            assert_eq!(same.state_len(), base.state_len());
            for (storage, tol) in [(RingStorage::F16, 2e-3), (RingStorage::Q8, 5e-2)] {
                let model = base.clone().with_ring_storage(storage).unwrap();
                assert_ne!(model.fingerprint(), base.fingerprint());
                let c = model.config();
                let (d, h) = (c.d_model, c.n_heads);
                let words_per_entry = match storage {
                    RingStorage::F16 => d.div_ceil(2),
                    _ => d.div_ceil(4) + h,
                };
                let (latte, w) = if combine == "attention" {
                    (0, 128)
                } else {
                    (c.n_latents * c.d_head() + 2 * c.n_latents, 5)
                };
                let ring = 2 * w * words_per_entry + 2;
                assert_eq!(model.state_len(), c.n_layers * (latte + ring));
                assert_eq!(model.mixer(0).unwrap().ring_len(), ring);
                if dtype == "f32" {
                    // Near the goldens.
                    let mut state = vec![0f32; model.state_len()];
                    let mut scratch = vec![0f32; model.scratch_len()];
                    let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
                    let mut worst = 0f64;
                    for p in gold["prompts"].as_array().unwrap() {
                        s.reset();
                        for (t, row) in u32s(&p["tokens"])
                            .iter()
                            .zip(p["logits"].as_array().unwrap())
                        {
                            let got = s.step(*t).unwrap();
                            for (a, b) in got.iter().zip(row.as_array().unwrap()) {
                                worst = worst.max((*a as f64 - b.as_f64().unwrap()).abs());
                            }
                        }
                    }
                    eprintln!("{combine} {storage:?}: worst logit error {worst:.2e}");
                    assert!(
                        worst < tol,
                        "{combine} {storage:?}: worst logit error {worst}"
                    );
                }
                // Chunks and kernel paths: the bits of scalar steps.
                let scalar = model.clone().with_kernels(Kernels::scalar());
                let want = stepped(&scalar, &tokens);
                let label = format!("{combine} {dtype} {storage:?}");
                chunks_give_the_steps(&scalar, &tokens, &want, &[1, 4, 7, tokens.len()], &label);
                if dtype == "q8_0" {
                    for path in latte_core::KernelPath::ALL {
                        let Some(k) = path.kernels() else { continue };
                        let m = model.clone().with_kernels(k);
                        assert_eq!(m.kernels().path(), path, "the path meant to run");
                        let got = stepped(&m, &tokens);
                        assert!(
                            got.iter()
                                .flatten()
                                .zip(want.iter().flatten())
                                .all(|(a, b)| a.to_bits() == b.to_bits()),
                            "{combine} {storage:?}: path {path:?}"
                        );
                    }
                }
                // Snapshots: the same storage continues with the same bits,
                // another storage is refused.
                let mut sampler = Sampler::new(SamplerConfig::default()).unwrap();
                let (mut st, mut sc) = (
                    vec![0f32; model.state_len()],
                    vec![0f32; model.scratch_len()],
                );
                let mut s = Session::new(&model, &mut st, &mut sc).unwrap();
                for &t in &tokens[..12] {
                    s.step(t).unwrap();
                }
                let mut snap = vec![0u8; s.snapshot_len()];
                let n = s.save_snapshot(&sampler, &mut snap).unwrap();
                let next = s.step(tokens[12]).unwrap().to_vec();
                let (mut st2, mut sc2) = (
                    vec![0f32; model.state_len()],
                    vec![0f32; model.scratch_len()],
                );
                let mut again = Session::new(&model, &mut st2, &mut sc2).unwrap();
                again.restore_snapshot(&mut sampler, &snap[..n]).unwrap();
                let got = again.step(tokens[12]).unwrap();
                assert!(got
                    .iter()
                    .zip(&next)
                    .all(|(a, b)| a.to_bits() == b.to_bits()));
                let (mut st3, mut sc3) =
                    (vec![0f32; base.state_len()], vec![0f32; base.scratch_len()]);
                let mut other = Session::new(&base, &mut st3, &mut sc3).unwrap();
                assert!(other.restore_snapshot(&mut sampler, &snap[..n]).is_err());
            }
        }
    }
}

/// `--ring`: runs a window model in every storage, and says what is wrong
/// with an unknown storage or a model without a window.
#[test]
fn the_ring_flag_takes_a_storage_for_models_with_a_window() {
    let dir = TempDir::new("macchiato-ring-flag");
    let src = PathBuf::from(format!("{FIXTURE}/macchiato-sum.safetensors"));
    let gguf = dir.path("sum.gguf");
    convert(&src, &gguf, &[]);
    for ring in ["f32", "f16", "q8"] {
        ok(&latte([
            os("run"),
            os("-m"),
            os(&gguf),
            os("-p"),
            os("abc"),
            os("-n"),
            os("8"),
            os("--ring"),
            os(ring),
        ]));
    }
    fails(
        &latte([
            os("run"),
            os("-m"),
            os(&gguf),
            os("-p"),
            os("abc"),
            os("--ring"),
            os("q8_0"),
        ]),
        &["`q8_0` is not a ring storage: f32, f16 or q8"],
    );
    let plain = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/latte-micro-decay/latte-micro-decay-q4_0.gguf"
    ));
    fails(
        &latte([
            os("run"),
            os("-m"),
            os(&plain),
            os("-p"),
            os("abc"),
            os("--ring"),
            os("f16"),
        ]),
        &[
            "--ring f16",
            "has no attention window",
            "latte.mixer = latte",
        ],
    );
}
