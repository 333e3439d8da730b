//! latte-micro-decay on an aarch64 Linux single-board computer: the model file is
//! memory-mapped (read in place, like flash on a microcontroller), the
//! kernels are picked at run time (NEON, or NEON with `sdot` on Cortex-A76
//! class cores such as the Raspberry Pi 5), and the demo of the
//! microcontroller boards runs: a greedy line (the reference continuation of
//! `models/latte-micro-decay/golden.json`) and a sampled line (what `latte run`
//! prints with its defaults and seed 42), then decode speed.
//!
//!     sbc-aarch64 [MODEL.gguf]
//!
//! `LATTE_KERNELS=scalar|neon|neon-dotprod` forces a kernel path.
//!
//! Exit status 1 with a message on any error.

use std::fs::File;
use std::process::ExitCode;
use std::time::Instant;

use latte_core::{Model, Sampler, SamplerConfig, Session};

const DEFAULT_MODEL: &str = "../../models/latte-micro-decay/latte-micro-decay-q8_0.gguf";
const GREEDY_PROMPT: &[u8] = b"And God said, Let there be light";
const SAMPLED_PROMPT: &[u8] = b"It was a dark and stormy night";
const N: usize = 64;
const SAMPLED: SamplerConfig = SamplerConfig {
    temperature: 0.8,
    top_k: 40,
    top_p: 0.95,
    repeat_penalty: 1.0,
    repeat_last_n: 64,
    seed: 42,
};

fn generate(
    session: &mut Session<'_, '_>,
    cfg: SamplerConfig,
    prompt: &[u8],
) -> Result<(Vec<u8>, f64), latte_core::Error> {
    session.reset();
    let mut sampler = Sampler::new(cfg)?;
    let tokens: Vec<u32> = prompt.iter().map(|&b| u32::from(b)).collect();
    tokens.iter().for_each(|&t| sampler.accept(t));
    session.feed(&tokens)?;
    let start = Instant::now();
    let mut out = Vec::with_capacity(N);
    for _ in 0..N {
        let t = session.sample(&mut sampler);
        out.push(t as u8);
        session.step(t)?;
    }
    Ok((out, N as f64 / start.elapsed().as_secs_f64()))
}

fn run(path: &str) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    // SAFETY: the file is mapped read-only and not modified while mapped
    // (a concurrent writer could change the bytes under us; the model is
    // re-validated only at load, so do not edit a model file while it runs).
    let map =
        unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("cannot map {path}: {e}"))?;
    let mut model = Model::from_gguf(&map).map_err(|e| format!("{path}: {e}"))?;
    if let Ok(name) = std::env::var("LATTE_KERNELS") {
        let k = latte_core::Kernels::by_name(&name).ok_or(format!(
            "LATTE_KERNELS={name}: no such kernel path on this CPU"
        ))?;
        model.set_kernels(k);
    }
    if model.config().vocab_size > 256 {
        return Err(format!("{path}: not a byte-level model"));
    }
    println!(
        "model: {path}, {} bytes, kernels {}",
        map.len(),
        model.kernels().path().name()
    );
    println!(
        "ram: state {} + scratch {} bytes",
        model.state_bytes(),
        model.scratch_bytes()
    );
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut session = Session::new(&model, &mut state, &mut scratch).map_err(|e| e.to_string())?;
    let (greedy, _) = generate(&mut session, SamplerConfig::default(), GREEDY_PROMPT)
        .map_err(|e| e.to_string())?;
    println!("greedy: b\"{}\"", greedy.escape_ascii());
    let (sampled, tps) =
        generate(&mut session, SAMPLED, SAMPLED_PROMPT).map_err(|e| e.to_string())?;
    println!("sampled: b\"{}\"", sampled.escape_ascii());
    println!("speed: {tps:.0} tokens/s decode (one thread)");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.as_slice() {
        [] => DEFAULT_MODEL,
        [p] if !p.starts_with('-') => p.as_str(),
        _ => {
            eprintln!("usage: sbc-aarch64 [MODEL.gguf]");
            return ExitCode::from(2);
        }
    };
    match run(path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
