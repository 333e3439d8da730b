//! A long generation run with an f64 reference alongside: checks every logit
//! for NaN or infinity and measures the drift of the f32 state and logits
//! against an f64 recurrence of the same model fed the same tokens.
//!
//! ```text
//! cargo run --release -p latte-core --example long_run -- \
//!     [--model models/latte-micro/latte-micro-f32.gguf] [--tokens 1000000] \
//!     [--seed 42] [--temp 0.8] [--no-reference]
//! ```
//!
//! The f32 session and sampler run on the main thread; the f64 reference
//! (`tests/common/reference64.rs`) runs on a second thread, fed the same
//! tokens, so the run takes about as long as the slower of the two when two
//! cores are free. Figures are printed at 1k, 10k, 100k and 1M tokens (and
//! every power of ten up to `--tokens`). Results: LONG_RUNS.md.

#[path = "../tests/common/reference64.rs"]
mod reference64;

use std::sync::mpsc::{sync_channel, Receiver};
use std::time::Instant;

use latte_core::{Model, Sampler, SamplerConfig, Session};
use latte_gguf::{GgmlType, Gguf};
use reference64::{layer_drift, Dims, Drift, Reference64};

struct Args {
    model: String,
    tokens: u64,
    seed: u64,
    temp: f32,
    reference: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        model: concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/latte-micro/latte-micro-f32.gguf"
        )
        .to_string(),
        tokens: 1_000_000,
        seed: 42,
        temp: 0.8,
        reference: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => a.model = value()?,
            "--tokens" => a.tokens = value()?.parse().map_err(|e| format!("--tokens: {e}"))?,
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--temp" => a.temp = value()?.parse().map_err(|e| format!("--temp: {e}"))?,
            "--no-reference" => a.reference = false,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// The tensors of a GGUF file as f32 vectors, read with the GGUF reader
/// only (not the core's loader), for the reference.
fn tensor_reader<'a>(g: &'a Gguf<'a>) -> impl Fn(&str) -> Vec<f32> + 'a {
    move |name: &str| {
        let t = g.tensor(name).unwrap_or_else(|| panic!("tensor {name}"));
        match t.ty {
            GgmlType::F32 => t
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            GgmlType::F16 => t
                .data
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => panic!("tensor {name}: type {other} not supported here"),
        }
    }
}

enum Msg {
    Step {
        token: u32,
        logits: Vec<f32>,
    },
    Checkpoint {
        step: u64,
        state: Vec<f32>,
        secs: f64,
        text: Vec<u8>,
    },
}

/// The last step and every power of ten from 1000 on.
fn is_checkpoint(step: u64, total: u64) -> bool {
    let mut x = step;
    while x >= 10 && x.is_multiple_of(10) {
        x /= 10;
    }
    step == total || (step >= 1000 && x == 1)
}

/// The reference side: steps the f64 model and compares.
fn reference_thread(
    rx: Receiver<Msg>,
    bytes: Vec<u32>,
    len: usize,
    prompt: Vec<u32>,
    layer_len: usize,
) {
    let bytes: &[u8] = &bytemuck::cast_slice::<u32, u8>(&bytes)[..len];
    let g = Gguf::parse(bytes).expect("parse");
    let u = |k: &'static str| g.get_u32(k).expect("metadata") as usize;
    let dims = Dims {
        vocab: u("latte.vocab_size"),
        d: u("latte.embedding_length"),
        heads: u("latte.attention.head_count"),
        latents: u("latte.latent_count"),
        layers: u("latte.block_count"),
        ff: u("latte.feed_forward_length"),
        eps: g
            .get_f32("latte.attention.layer_norm_epsilon")
            .expect("eps") as f64,
    };
    let theta: Vec<f32> = match g.get_str("latte.position_encoding") {
        Ok("vapor") => g
            .get_f32_array("latte.vapor.frequencies")
            .expect("frequencies")
            .iter()
            .collect(),
        _ => Vec::new(),
    };
    let dh = dims.d / dims.heads;
    let mut r = Reference64::new(dims, &tensor_reader(&g), &theta);
    for &t in &prompt {
        r.step(t);
    }
    let (mut worst_logit, mut max_logit, mut argmax_differs, mut steps) = (0f64, 0f64, 0u64, 0u64);
    println!(
        "| tokens | tokens/s | max abs logit error (so far) | argmax differs (so far) | max ln-normaliser error | max S/n error | max n | sample of the text |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for msg in rx {
        match msg {
            Msg::Step { token, logits } => {
                let want = r.step(token);
                steps += 1;
                let argmax = |v: &mut dyn Iterator<Item = f64>| {
                    v.enumerate()
                        .fold(
                            (0, f64::NEG_INFINITY),
                            |b, (i, x)| if x > b.1 { (i, x) } else { b },
                        )
                        .0
                };
                if argmax(&mut logits.iter().map(|&x| x as f64))
                    != argmax(&mut want.iter().copied())
                {
                    argmax_differs += 1;
                }
                for (g, w) in logits.iter().zip(&want) {
                    worst_logit = worst_logit.max((*g as f64 - w).abs());
                    max_logit = max_logit.max(w.abs());
                }
            }
            Msg::Checkpoint {
                step,
                state,
                secs,
                text,
            } => {
                let mut d = Drift::default();
                for li in 0..dims.layers {
                    let st = &state[li * layer_len..(li + 1) * layer_len];
                    let sl = dims.latents * dh;
                    let (s, rest) = st.split_at(sl);
                    let (n, m) = rest.split_at(dims.latents);
                    layer_drift(&r, li, s, n, m, &mut d);
                }
                assert!(!d.non_finite, "non-finite state at {step}");
                let shown: String = String::from_utf8_lossy(&text)
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect::<String>()
                    .replace('|', "/");
                println!(
                    "| {step} | {:.0} | {worst_logit:.2e} (max abs logit {max_logit:.1}) | {argmax_differs} of {steps} | {:.2e} | {:.2e} (scale {:.2}) | {:.0} | `{}` |",
                    step as f64 / secs,
                    d.log_normaliser,
                    d.average,
                    d.average_scale,
                    d.max_n,
                    shown.trim()
                );
            }
        }
    }
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let raw = std::fs::read(&a.model).unwrap_or_else(|e| {
        eprintln!("error: cannot read {}: {e}", a.model);
        std::process::exit(1);
    });
    let mut words = vec![0u32; raw.len().div_ceil(4)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..raw.len()].copy_from_slice(&raw);
    let bytes = &bytemuck::cast_slice::<u32, u8>(&words)[..raw.len()];
    let load = Instant::now();
    let model = Model::from_gguf(bytes).unwrap_or_else(|e| {
        eprintln!("error: {}: {e}", a.model);
        std::process::exit(1);
    });
    eprintln!(
        "loaded in {:.1} ms (validation and fingerprint {:#018x} over {} bytes)",
        load.elapsed().as_secs_f64() * 1e3,
        model.fingerprint(),
        raw.len()
    );
    let c = *model.config();
    eprintln!(
        "{}: V={} D={} N={} H={} L={} F={} {:?}, context_length {}; kernels {}; {} tokens, seed {}, temperature {}",
        a.model, c.vocab_size, c.d_model, c.n_layers, c.n_heads, c.n_latents, c.d_ff, c.position,
        c.context_length, model.kernels().path(), a.tokens, a.seed, a.temp
    );
    let prompt: Vec<u32> = b"It was a dark and stormy night"
        .iter()
        .map(|&b| u32::from(b))
        .collect();
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut s = Session::new(&model, &mut state, &mut scratch).expect("session");
    let mut sampler = Sampler::new(SamplerConfig {
        temperature: a.temp,
        top_k: 40,
        top_p: 0.95,
        seed: a.seed,
        ..SamplerConfig::default()
    })
    .expect("sampler");
    prompt.iter().for_each(|&t| sampler.accept(t));
    s.feed(&prompt).expect("prompt");

    let (tx, rx) = sync_channel::<Msg>(4096);
    let worker = a.reference.then(|| {
        let (w, len, p, ll) = (
            words.clone(),
            raw.len(),
            prompt.clone(),
            c.layer_state_len(),
        );
        std::thread::spawn(move || reference_thread(rx, w, len, p, ll))
    });
    let start = Instant::now();
    let mut recent: Vec<u8> = Vec::new();
    let mut non_finite = 0u64;
    for step in 1..=a.tokens {
        let t = s.sample(&mut sampler);
        recent.push(t as u8);
        if recent.len() > 48 {
            recent.remove(0);
        }
        let logits = s.step(t).expect("step");
        if logits.iter().any(|v| !v.is_finite()) {
            non_finite += 1;
        }
        if worker.is_some() {
            tx.send(Msg::Step {
                token: t,
                logits: logits.to_vec(),
            })
            .expect("reference thread");
        }
        if is_checkpoint(step, a.tokens) {
            let secs = start.elapsed().as_secs_f64();
            if worker.is_some() {
                tx.send(Msg::Checkpoint {
                    step,
                    state: s.state().to_vec(),
                    secs,
                    text: recent.clone(),
                })
                .expect("reference thread");
            } else {
                println!(
                    "| {step} | {:.0} tokens/s | `{}` |",
                    step as f64 / secs,
                    String::from_utf8_lossy(&recent).replace(['\n', '|'], " ")
                );
            }
            assert_eq!(non_finite, 0, "non-finite logits");
            if s.state().iter().any(|v| v.is_nan()) {
                panic!("NaN in the state at {step}");
            }
        }
    }
    drop(tx);
    if let Some(w) = worker {
        w.join().expect("reference thread");
    }
    eprintln!(
        "{} tokens in {:.1} s; steps with a non-finite logit: {non_finite}",
        a.tokens,
        start.elapsed().as_secs_f64()
    );
    if non_finite > 0 {
        std::process::exit(1);
    }
}
