//! `latte run` and `latte logits`.

use std::ffi::OsString;
use std::io::{ErrorKind, IsTerminal, Write};
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context, Result};
use latte_core::{Model, Sampler, SamplerConfig, Session};
use serde::Serialize;

use crate::mapped::Mapped;
use crate::{LogitsArgs, RunArgs};

/// Writes to stdout and flushes. A closed pipe (e.g. `| head`) ends the
/// output quietly instead of being an error.
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(e).context("cannot write to stdout"),
        _ => Ok(()),
    }
}

/// The prompt's bytes: UTF-8, not empty.
fn prompt_bytes(p: &OsString) -> Result<Vec<u8>> {
    let s = p
        .to_str()
        .ok_or_else(|| anyhow!("the prompt is not valid UTF-8; pass UTF-8 text with -p"))?;
    ensure!(
        !s.is_empty(),
        "the prompt is empty; give at least one character with -p"
    );
    Ok(s.as_bytes().to_vec())
}

/// `3,1,4` -> `[3, 1, 4]`.
fn parse_token_list(s: &str) -> Result<Vec<u32>> {
    ensure!(
        !s.trim().is_empty(),
        "--tokens is empty; give comma-separated token ids, e.g. 3,1,4"
    );
    s.split(',')
        .map(|item| {
            let item = item.trim();
            item.parse::<u32>().map_err(|_| {
                anyhow!("--tokens: `{item}` is not a token id (a whole number >= 0); e.g. --tokens 3,1,4")
            })
        })
        .collect()
}

fn load<'a>(bytes: &'a Mapped, shown: &str) -> Result<Model<'a>> {
    Model::from_gguf(bytes).with_context(|| format!("{shown}: cannot load the model"))
}

fn check_range(tokens: &[u32], vocab: usize, what: &str) -> Result<()> {
    if let Some((i, &t)) = tokens
        .iter()
        .enumerate()
        .find(|(_, &t)| t as usize >= vocab)
    {
        bail!(
            "{what} {t} (position {i}) is out of range: the model's vocabulary has {vocab} \
             tokens (ids 0 to {})",
            vocab.saturating_sub(1)
        );
    }
    Ok(())
}

pub fn run(args: &RunArgs) -> Result<()> {
    let prompt = prompt_bytes(&args.prompt)?;
    let mut sampler = Sampler::new(SamplerConfig {
        temperature: args.temp,
        top_k: args.top_k,
        top_p: args.top_p,
        repeat_penalty: args.repeat_penalty,
        repeat_last_n: args.repeat_last_n,
        seed: args.seed,
    })
    .context("invalid sampling settings")?;

    let shown = args.model.display().to_string();
    let bytes = Mapped::open(&args.model)?;
    let model = load(&bytes, &shown)?;
    let cfg = *model.config();
    let vocab = cfg.vocab_size;
    ensure!(
        vocab <= 256,
        "{shown} has a vocabulary of {vocab} tokens; `latte run` reads and writes bytes, so it \
         needs a byte-level model (at most 256 tokens); use `latte logits --tokens` instead"
    );
    let tokens: Vec<u32> = prompt.iter().map(|&b| u32::from(b)).collect();
    check_range(&tokens, vocab, "prompt byte")?;

    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut session =
        Session::new(&model, &mut state, &mut scratch).context("cannot start a session")?;
    let total = tokens.len().saturating_add(args.n_predict);
    if total > cfg.context_length {
        eprintln!(
            "note: {total} positions exceed the model's training context of {}; positions past \
             it were never trained on",
            cfg.context_length
        );
    }

    let mut out = std::io::stdout().lock();
    let mut emit = |bytes: &[u8]| -> Result<bool> {
        match out.write_all(bytes).and_then(|()| out.flush()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e).context("cannot write to stdout"),
        }
    };
    if !emit(&prompt)? {
        return Ok(());
    }
    for &t in &tokens {
        sampler.accept(t);
    }
    let start = Instant::now();
    session.feed(&tokens).context("cannot process the prompt")?;
    let prefill = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut generated = 0usize;
    for i in 0..args.n_predict {
        let tok = session.sample(&mut sampler);
        let byte =
            u8::try_from(tok).map_err(|_| anyhow!("the model produced token {tok}, not a byte"))?;
        if !emit(&[byte])? {
            break;
        }
        generated += 1;
        if i + 1 < args.n_predict {
            session.step(tok).context("generation failed")?;
        }
    }
    let gen = start.elapsed().as_secs_f64();

    let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let lead = if std::io::stderr().is_terminal() {
        "\n"
    } else {
        ""
    };
    eprintln!(
        "{lead}prompt: {} tokens in {prefill:.3} s ({:.1} tokens/s); generated: {generated} tokens in {gen:.3} s ({:.1} tokens/s)",
        tokens.len(),
        rate(tokens.len(), prefill),
        rate(generated, gen)
    );
    Ok(())
}

#[derive(Serialize)]
struct LogitsOut<'a> {
    tokens: &'a [u32],
    logits: &'a [Vec<f32>],
}

pub fn logits(args: &LogitsArgs) -> Result<()> {
    let (tokens, what) = match (&args.prompt, &args.tokens) {
        (Some(p), None) => (
            prompt_bytes(p)?.into_iter().map(u32::from).collect(),
            "prompt byte",
        ),
        (None, Some(t)) => (parse_token_list(t)?, "token id"),
        _ => bail!("give either -p PROMPT or --tokens IDS"),
    };
    let shown = args.model.display().to_string();
    let bytes = Mapped::open(&args.model)?;
    let model = load(&bytes, &shown)?;
    check_range(&tokens, model.config().vocab_size, what)?;

    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut session =
        Session::new(&model, &mut state, &mut scratch).context("cannot start a session")?;
    let mut rows = Vec::with_capacity(tokens.len());
    for &t in &tokens {
        rows.push(session.step(t).context("cannot run the model")?.to_vec());
    }
    let mut json = serde_json::to_vec(&LogitsOut {
        tokens: &tokens,
        logits: &rows,
    })?;
    json.push(b'\n');
    write_stdout(&json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lists() {
        assert_eq!(parse_token_list("3,1, 4").unwrap(), [3, 1, 4]);
        assert!(parse_token_list("").is_err());
        assert!(parse_token_list("3,,4").is_err());
        assert!(parse_token_list("-1").is_err());
        assert!(parse_token_list("4294967296").is_err());
    }
}
