//! The decay gate (an extension of the paper's model) and positions `none`
//! through `latte convert`, `inspect` and the runtime:
//!
//! * a small random gated model made by the reference trainer
//!   (`tests/data/decay-gate`, see its README) converted to f32 and Q8_0
//!   and run against the trainer's float64 recurrent golden outputs:
//!   logits after every prompt byte and the greedy continuation;
//! * the rates are stored F32 and exact whatever `--dtype` says, the
//!   trained `decay_logit` is not converted;
//! * every disagreement between `latent_decay` and the tensors is a clear
//!   error.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use latte_core::{Model, Position, Sampler, SamplerConfig, Session};
use latte_gguf::{GgmlType, Gguf};
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/decay-gate");

fn convert(input: &Path, output: &Path, extra: &[&str]) {
    let mut args: Vec<&std::ffi::OsStr> = vec![os("convert"), os(input), os("-o"), os(output)];
    args.extend(extra.iter().map(os));
    ok(&latte(args));
}

fn tokens(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|t| t.as_u64().expect("token") as u32)
        .collect()
}

/// One golden prompt run through a model.
struct PromptRun {
    /// Logits after every prompt byte.
    prompt: Vec<Vec<f32>>,
    /// Logits before each token of the golden greedy continuation, that
    /// continuation fed (teacher forcing).
    forced: Vec<Vec<f32>>,
    /// The model's own greedy continuation (as long as the golden one).
    free: Vec<u32>,
}

fn run_prompts(model: &Model<'_>, gold: &Value) -> Vec<PromptRun> {
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut session = Session::new(model, &mut state, &mut scratch).expect("session");
    let prompts = gold["prompts"].as_array().expect("prompts");
    assert!(prompts.len() >= 3, "too few golden prompts");
    let mut runs = Vec::new();
    for p in prompts {
        let toks = tokens(&p["tokens"]);
        let want = tokens(&p["greedy"]);
        session.reset();
        let prompt: Vec<Vec<f32>> = toks
            .iter()
            .map(|&t| session.step(t).expect("step").to_vec())
            .collect();
        let mut forced = vec![session.logits().to_vec()];
        for &t in &want[..want.len() - 1] {
            forced.push(session.step(t).expect("step").to_vec());
        }
        session.reset();
        session.feed(&toks).expect("feed");
        let mut sampler = Sampler::new(SamplerConfig {
            temperature: 0.0,
            repeat_penalty: 1.0,
            ..Default::default()
        })
        .expect("greedy sampler");
        let free = (0..want.len())
            .map(|_| {
                let t = session.sample(&mut sampler);
                session.step(t).expect("step");
                t
            })
            .collect();
        runs.push(PromptRun {
            prompt,
            forced,
            free,
        });
    }
    runs
}

/// Largest `|a - b|` over rows of logits.
fn max_diff<'x>(
    a: impl IntoIterator<Item = &'x [f32]>,
    b: impl IntoIterator<Item = Vec<f64>>,
) -> f64 {
    a.into_iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter()
                .zip(y)
                .map(|(p, q)| (*p as f64 - q).abs())
                .collect::<Vec<_>>()
        })
        .fold(0.0, f64::max)
}

fn golden_rows(p: &Value) -> Vec<Vec<f64>> {
    p["logits"]
        .as_array()
        .expect("logits")
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b })
}

/// How far the top logit leads the runner-up.
fn lead(row: &[f32]) -> f32 {
    let top = argmax(row);
    let second = (0..row.len())
        .filter(|&i| i != top)
        .map(|i| row[i])
        .fold(f32::NEG_INFINITY, f32::max);
    row[top] - second
}

fn f32_values(g: &Gguf<'_>, name: &str) -> Vec<f32> {
    let t = g.tensor(name).unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(t.ty, GgmlType::F32, "{name}");
    t.data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The rates `blocks.N.latte.decay` of a safetensors checkpoint.
fn checkpoint_rates(path: &Path, layer: usize) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(&format!("blocks.{layer}.latte.decay")).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The f32 file: logits after every prompt byte within 1e-4 of the
/// golden ones and the same greedy continuation. The Q8_0 file: logits
/// within 3 % of the largest golden logit (the bound the core's tests use
/// for Q8_0 against f32 weights), and, fed the golden continuation, the
/// same top token wherever the reference's lead over the runner-up exceeds
/// twice that bound. This random model has many near-ties (leads of
/// 0.001 to 0.05 where Q8_0 moves logits by up to 0.1), so Q8_0's own
/// greedy text leaves the golden one after 10 to 42 tokens.
#[test]
fn trainer_gated_model_matches_its_golden_in_f32_and_q8_0() {
    let dir = TempDir::new("decay-golden");
    let src = PathBuf::from(format!("{FIXTURE}/decay-gate.safetensors"));
    let gold: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURE}/golden.json")).unwrap())
            .unwrap();
    assert_eq!(gold["config"]["latent_decay"], true);
    assert_eq!(gold["config"]["pos_encoding"], "none");
    assert_eq!(gold["form"], "recurrent reference, float64");
    let prompts = gold["prompts"].as_array().unwrap();
    let mut f32_runs = None;
    for dtype in ["f32", "q8_0"] {
        let out = dir.path(&format!("{dtype}.gguf"));
        convert(&src, &out, &["--dtype", dtype]);
        let words = aligned(&out);
        let bytes = bytemuck::cast_slice::<u32, u8>(&words);
        // The file: positions `none`, the gate, the rates exactly as the
        // checkpoint has them (F32 in the Q8_0 file too), no decay_logit.
        let g = Gguf::parse(bytes).unwrap();
        assert_eq!(g.get_str("latte.position_encoding"), Ok("none"));
        assert_eq!(g.get_bool("latte.latent_decay"), Ok(true));
        for layer in 0..2 {
            let rates = f32_values(&g, &format!("blk.{layer}.attn_decay"));
            let want = checkpoint_rates(&src, layer);
            assert_eq!(rates.len(), 16);
            assert!(rates
                .iter()
                .map(|x| x.to_bits())
                .eq(want.iter().map(|x| x.to_bits())));
        }
        assert!(g.tensors().all(|t| !t.name.contains("logit")));
        let model = Model::from_gguf(bytes).unwrap();
        assert_eq!(model.config().position, Position::None);
        assert!(model.config().latent_decay);
        let runs = run_prompts(&model, &gold);
        let mut worst = 0f64;
        let mut scale = 0f64;
        for (run, p) in runs.iter().zip(prompts) {
            let want = golden_rows(p);
            assert_eq!(run.prompt.len(), want.len());
            scale = want.iter().flatten().fold(scale, |m, v| m.max(v.abs()));
            worst = worst.max(max_diff(run.prompt.iter().map(|r| &r[..]), want));
        }
        let same = runs
            .iter()
            .zip(prompts)
            .filter(|(r, p)| r.free == tokens(&p["greedy"]))
            .count();
        eprintln!(
            "{dtype}: max |logit error| {worst:e} (largest logit {scale:.2}), own greedy \
             continuation equal to the golden one for {same} of {} prompts",
            runs.len()
        );
        match dtype {
            "f32" => {
                assert!(worst <= 1e-4, "f32: logits differ by {worst:e}");
                for (i, (r, p)) in runs.iter().zip(prompts).enumerate() {
                    assert_eq!(r.free, tokens(&p["greedy"]), "f32: greedy continuation {i}");
                }
                f32_runs = Some(runs);
            }
            _ => {
                let tol = 0.03 * scale;
                assert!(
                    worst <= tol,
                    "{dtype}: logits differ by {worst:e} (> {tol:e})"
                );
                // Along the golden continuation the f32 file (checked above)
                // stands in for the reference's logits.
                let reference = f32_runs.as_ref().expect("f32 first");
                let (mut checked, mut agree, mut total) = (0, 0, 0);
                let mut worst_forced = 0f64;
                for ((r, f), p) in runs.iter().zip(reference).zip(prompts) {
                    let want = tokens(&p["greedy"]);
                    for ((q, fr), &t) in r.forced.iter().zip(&f.forced).zip(&want) {
                        assert_eq!(
                            argmax(fr),
                            t as usize,
                            "the f32 file leaves the golden path"
                        );
                        let d = q
                            .iter()
                            .zip(fr)
                            .map(|(a, b)| (a - b).abs())
                            .fold(0.0, f32::max);
                        worst_forced = worst_forced.max(d as f64);
                        total += 1;
                        agree += usize::from(argmax(q) == t as usize);
                        if f64::from(lead(fr)) > 2.0 * tol {
                            checked += 1;
                            assert_eq!(argmax(q), t as usize, "{dtype}: clear top token missed");
                        }
                    }
                }
                eprintln!(
                    "{dtype} fed the golden continuation: logits within {worst_forced:e} of f32, \
                     same top token at {agree} of {total} positions, all {checked} clear ones"
                );
                assert!(
                    worst_forced <= tol,
                    "{dtype}: {worst_forced:e} along the continuation"
                );
                assert!(
                    checked >= total / 4,
                    "too few clear positions to check: {checked}"
                );
            }
        }
    }
}

#[test]
fn golden_of_the_gated_model_is_nontrivial() {
    // Guards the test above: the golden logits have a spread, and the gate
    // matters (the same checkpoint with its rates forced to zero gives other
    // logits).
    let gold: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURE}/golden.json")).unwrap())
            .unwrap();
    let row: Vec<f64> = gold["prompts"][1]["logits"][31]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(row.len(), 256);
    let (lo, hi) = row
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(hi - lo > 1.0, "flat logits {lo}..{hi}");

    let dir = TempDir::new("decay-zero");
    let src = PathBuf::from(format!("{FIXTURE}/decay-gate.safetensors"));
    let bytes = std::fs::read(&src).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta: Vec<(String, String)> = header
        .metadata()
        .as_ref()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let tensors: Vec<Tensor> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let mut t = Tensor {
                name: name.clone(),
                dtype: "F32",
                shape: view.shape().to_vec(),
                data: view.data().to_vec(),
            };
            if name.ends_with(".latte.decay") {
                t.data.iter_mut().for_each(|b| *b = 0);
            }
            t
        })
        .collect();
    let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let zero = write_st(&dir, "zero.safetensors", &tensors, &meta);
    let out = dir.path("zero.gguf");
    convert(&zero, &out, &[]);
    let words = aligned(&out);
    let model = Model::from_gguf(bytemuck::cast_slice::<u32, u8>(&words)).unwrap();
    let runs = run_prompts(&model, &gold);
    let worst = runs
        .iter()
        .zip(gold["prompts"].as_array().unwrap())
        .map(|(r, p)| max_diff(r.prompt.iter().map(|r| &r[..]), golden_rows(p)))
        .fold(0.0, f64::max);
    assert!(worst > 1e-2, "rates of zero match the golden: {worst:e}");
}

// ---------------------------------------------------------------------------
// Hand-built checkpoints: the tiny LM (L = 6) with positions `none` and rates.

fn rates(layer: usize) -> Vec<f32> {
    (0..L).map(|i| 0.01 + 0.03 * (i + layer) as f32).collect()
}

/// The tiny LM with the gate: its rates and the trained `decay_logit`.
fn gated_tensors() -> Vec<Tensor> {
    let mut t = trainer_tiny_lm();
    for layer in 0..LAYERS {
        t.push(Tensor::f32(
            format!("blocks.{layer}.latte.decay"),
            &[L],
            &rates(layer),
        ));
        t.push(Tensor::f32(
            format!("blocks.{layer}.latte.decay_logit"),
            &[L],
            &[-1.5; L],
        ));
    }
    t
}

/// `latte.config` with positions `pos` and `latent_decay` (`None`: absent).
fn config(pos: &str, latent_decay: Option<bool>) -> String {
    let mut c: Value = serde_json::from_str(&trainer_config(pos)).unwrap();
    if let Some(g) = latent_decay {
        c["latent_decay"] = Value::Bool(g);
        c["decay_max"] = serde_json::json!(0.25);
    }
    c.to_string()
}

fn convert_fails(dir: &TempDir, tensors: &[Tensor], config: &str, needles: &[&str]) -> String {
    let src = write_st(dir, "in.safetensors", tensors, &[("latte.config", config)]);
    let out = dir.path("out.gguf");
    let err = fails(
        &latte([os("convert"), os(&src), os("-o"), os(&out)]),
        needles,
    );
    assert!(!out.exists(), "a failed conversion left {}", out.display());
    err
}

#[test]
fn rates_are_stored_f32_and_exact_whatever_the_dtype() {
    let dir = TempDir::new("decay-dtype");
    let cfg = config("none", Some(true));
    let src = write_st(
        &dir,
        "gated.safetensors",
        &gated_tensors(),
        &[("latte.config", &cfg)],
    );
    for extra in [
        &[][..],
        &["--dtype", "f16"][..],
        &["--dtype", "f16", "--tensor-type", "blk.*.attn_*=f32"][..],
    ] {
        let out = dir.path("gated.gguf");
        convert(&src, &out, extra);
        let words = aligned(&out);
        let bytes = bytemuck::cast_slice::<u32, u8>(&words);
        let g = Gguf::parse(bytes).unwrap();
        assert_eq!(g.get_str("latte.position_encoding"), Ok("none"));
        assert_eq!(g.get_bool("latte.latent_decay"), Ok(true));
        assert!(g.get("latte.vapor.frequencies").is_none());
        for layer in 0..LAYERS {
            let t = g.tensor(&format!("blk.{layer}.attn_decay")).unwrap();
            assert_eq!(t.shape(), &[L as u64][..], "{extra:?}");
            assert_eq!(
                f32_values(&g, &format!("blk.{layer}.attn_decay")),
                rates(layer)
            );
        }
        // 12 tensors per block and the rates, plus the 5 others.
        assert_eq!(g.tensor_count(), 5 + LAYERS * 13, "{extra:?}");
        assert!(g.tensors().all(|t| !t.name.contains("logit")));
        let model = Model::from_gguf(bytes).unwrap();
        assert_eq!(model.latte_layer(1).unwrap().decay(), Some(&rates(1)[..]));
        // `inspect` shows the gate and the range of its rates.
        let shown = ok(&latte([os("inspect"), os(&out)]));
        let (lo, hi) = (rates(0)[0], rates(1)[L - 1]);
        assert!(
            shown.contains(&format!("decay gate yes, rates {lo}..{hi}")),
            "{shown}"
        );
    }
    // The rates are not a matrix: an override naming only them is unused.
    let out = dir.path("f16.gguf");
    fails(
        &latte([
            os("convert"),
            os(&src),
            os("-o"),
            os(&out),
            os("--tensor-type"),
            os("blk.*.attn_decay=f16"),
        ]),
        &["blk.*.attn_decay=f16", "matches no weight matrix"],
    );
}

#[test]
fn positions_none_without_the_gate_convert_and_inspect_says_no_gate() {
    let dir = TempDir::new("pos-none");
    let cfg = config("none", None);
    let src = write_st(
        &dir,
        "none.safetensors",
        &trainer_tiny_lm(),
        &[("latte.config", &cfg)],
    );
    let out = dir.path("none.gguf");
    convert(&src, &out, &[]);
    let words = aligned(&out);
    let bytes = bytemuck::cast_slice::<u32, u8>(&words);
    let g = Gguf::parse(bytes).unwrap();
    assert_eq!(g.get_str("latte.position_encoding"), Ok("none"));
    // A model without the gate has no key at all (files as before).
    assert!(g.get("latte.latent_decay").is_none());
    let model = Model::from_gguf(bytes).unwrap();
    assert_eq!(model.config().position, Position::None);
    assert!(!model.config().latent_decay);
    let shown = ok(&latte([os("inspect"), os(&out)]));
    assert!(shown.contains("decay gate no"), "{shown}");
    // --vapor-base makes no sense here.
    fails(
        &latte([
            os("convert"),
            os(&src),
            os("-o"),
            os(&dir.path("x.gguf")),
            os("--vapor-base"),
            os("500"),
        ]),
        &["--vapor-base", "no position encoding"],
    );
}

#[test]
fn gate_in_the_config_but_rates_missing_is_an_error() {
    let dir = TempDir::new("decay-missing");
    let cfg = config("none", Some(true));
    // No rates at all (as a raw state_dict with only the logits would be).
    let t: Vec<Tensor> = gated_tensors()
        .into_iter()
        .filter(|t| !t.name.ends_with(".latte.decay"))
        .collect();
    convert_fails(
        &dir,
        &t,
        &cfg,
        &[
            "\"latent_decay\": true",
            "2 of its 2 layers",
            "blocks.0.latte.decay, blocks.1.latte.decay",
            "save_safetensors",
        ],
    );
    // One layer's rates missing.
    let t: Vec<Tensor> = gated_tensors()
        .into_iter()
        .filter(|t| t.name != "blocks.1.latte.decay")
        .collect();
    let err = convert_fails(
        &dir,
        &t,
        &cfg,
        &["1 of its 2 layers", "blocks.1.latte.decay"],
    );
    assert!(!err.contains("blocks.0.latte.decay"), "{err}");
}

#[test]
fn rates_without_the_gate_in_the_config_are_an_error() {
    let dir = TempDir::new("decay-unexpected");
    for cfg in [config("none", Some(false)), config("none", None)] {
        convert_fails(
            &dir,
            &gated_tensors(),
            &cfg,
            &[
                "decay-gate tensors",
                "blocks.0.latte.decay",
                "does not say \"latent_decay\": true",
            ],
        );
    }
    // The trained parameter alone is just as inconsistent.
    let mut t = trainer_tiny_lm();
    t.push(Tensor::f32("blocks.0.latte.decay_logit", &[L], &[0.0; L]));
    convert_fails(
        &dir,
        &t,
        &config("sinusoidal", None),
        &["blocks.0.latte.decay_logit", "latent_decay"],
    );
}

#[test]
fn bad_rates_are_an_error() {
    let dir = TempDir::new("decay-bad");
    let cfg = config("none", Some(true));
    let mut t = gated_tensors();
    let i = t
        .iter()
        .position(|t| t.name == "blocks.1.latte.decay")
        .unwrap();
    let mut r = rates(1);
    r[4] = -0.01;
    t[i] = Tensor::f32("blocks.1.latte.decay", &[L], &r);
    convert_fails(
        &dir,
        &t,
        &cfg,
        &["blocks.1.latte.decay", "element 4", "must be >= 0"],
    );
    r[4] = f32::NAN;
    t[i] = Tensor::f32("blocks.1.latte.decay", &[L], &r);
    convert_fails(&dir, &t, &cfg, &["blocks.1.latte.decay", "non-finite"]);
    // Wrong shape: one rate per latent is needed.
    t[i] = Tensor::f32("blocks.1.latte.decay", &[L - 1], &r[..L - 1]);
    convert_fails(&dir, &t, &cfg, &["blocks.1.latte.decay", "[L=6]"]);
}
