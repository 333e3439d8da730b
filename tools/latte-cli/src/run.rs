//! `latte run` and `latte logits`.

use std::ffi::OsString;
use std::io::{ErrorKind, IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context, Result};
use latte_core::{Model, Sampler, SamplerConfig, Session};
use serde::Serialize;

use crate::mapped::Mapped;
use crate::threads::{with_pool, Pool};
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

/// State files larger than this are refused (a snapshot of even a large
/// model is a few MiB). Reading stops there, so a device or pipe that never
/// ends (e.g. `/dev/zero`) gives an error instead of filling the memory.
const MAX_STATE_FILE: u64 = 64 << 20;

/// Reads a state file saved with `--save-state`, with errors that name it.
fn read_state_file(path: &Path) -> Result<Vec<u8>> {
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?;
    if meta.is_dir() {
        bail!("{shown} is a directory, expected a state file saved with --save-state");
    }
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {shown}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_STATE_FILE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {shown}"))?;
    ensure!(
        bytes.len() as u64 <= MAX_STATE_FILE,
        "{shown} is larger than {} MiB, too large to be a state file saved with --save-state",
        MAX_STATE_FILE >> 20
    );
    Ok(bytes)
}

/// Checks before generating that `path` can be written: not a directory,
/// in an existing directory.
fn check_state_target(path: &Path) -> Result<()> {
    let shown = path.display();
    if path.is_dir() {
        bail!("--save-state {shown} is a directory, expected a file name");
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!(
            "--save-state {shown}: the directory {} does not exist",
            parent.display()
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// and a rename, so an interrupted save never leaves a half-written state.
fn write_state_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let shown = path.display();
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write the state to {shown}"));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub fn run(args: &RunArgs) -> Result<()> {
    let prompt = args.prompt.as_ref().map(prompt_bytes).transpose()?;
    let settings = SamplerConfig {
        temperature: args.temp,
        top_k: args.top_k,
        top_p: args.top_p,
        repeat_penalty: args.repeat_penalty,
        repeat_last_n: args.repeat_last_n,
        seed: args.seed,
    };
    let sampler = Sampler::new(settings).context("invalid sampling settings")?;
    if let Some(path) = &args.save_state {
        check_state_target(path)?;
    }
    let saved = args
        .load_state
        .as_deref()
        .map(read_state_file)
        .transpose()?;

    let shown = args.model.display().to_string();
    let bytes = Mapped::open(&args.model)?;
    let model = args.compute.with_ring(load(&bytes, &shown)?, &shown)?;
    let cfg = *model.config();
    let vocab = cfg.vocab_size;
    ensure!(
        vocab <= 256,
        "{shown} has a vocabulary of {vocab} tokens; `latte run` reads and writes bytes, so it \
         needs a byte-level model (at most 256 tokens); use `latte logits --tokens` instead"
    );
    let prompt = prompt.unwrap_or_default();
    let tokens: Vec<u32> = prompt.iter().map(|&b| u32::from(b)).collect();
    check_range(&tokens, vocab, "prompt byte")?;
    with_pool(args.compute.threads(), |pool| {
        generate(
            args,
            &model,
            &prompt,
            &tokens,
            sampler,
            settings,
            saved.as_deref(),
            pool,
        )
    })
}

/// The session part of `run`: restore, prefill, generate, save.
#[allow(clippy::too_many_arguments)]
fn generate<'a>(
    args: &RunArgs,
    model: &Model<'a>,
    prompt: &[u8],
    tokens: &[u32],
    mut sampler: Sampler,
    settings: SamplerConfig,
    saved: Option<&[u8]>,
    pool: &Pool<'a>,
) -> Result<()> {
    let cfg = *model.config();
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut session =
        Session::new(model, &mut state, &mut scratch).context("cannot start a session")?;
    if let (Some(path), Some(saved)) = (&args.load_state, saved) {
        let file = path.display();
        match session.restore_snapshot(&mut sampler, saved) {
            Ok(()) => {}
            Err(e @ latte_core::Error::SnapshotModelMismatch { .. }) => bail!(
                "{file}: cannot continue from this state file: {e}; use the model file it was \
                 saved with (-m)"
            ),
            Err(e) => bail!("{file}: cannot continue from this state file: {e}"),
        }
        let used = model.snapshot_len();
        ensure!(
            saved.len() == used,
            "{file}: {} bytes follow the saved state; it is not a file written by --save-state",
            saved.len() - used
        );
        // Flags given on the command line replace the saved settings.
        if !args.explicit.is_empty() {
            let mut c = *sampler.config();
            for id in &args.explicit {
                match *id {
                    "temp" => c.temperature = settings.temperature,
                    "top_k" => c.top_k = settings.top_k,
                    "top_p" => c.top_p = settings.top_p,
                    "repeat_penalty" => c.repeat_penalty = settings.repeat_penalty,
                    "repeat_last_n" => c.repeat_last_n = settings.repeat_last_n,
                    "seed" => c.seed = settings.seed,
                    _ => {}
                }
            }
            sampler.set_config(c).context("invalid sampling settings")?;
            if args.explicit.contains(&"seed") {
                sampler.reseed(settings.seed);
            }
        }
    }
    let restored_at = session.position();
    let total = u64::try_from(tokens.len().saturating_add(args.n_predict))
        .unwrap_or(u64::MAX)
        .saturating_add(restored_at);
    // A model without positions has none past its training length to warn of.
    if cfg.position != latte_core::Position::None && total > cfg.context_length as u64 {
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
    if !emit(prompt)? {
        return Ok(());
    }
    for &t in tokens {
        sampler.accept(t);
    }
    let start = Instant::now();
    if !tokens.is_empty() {
        let chunk = args.compute.chunk.min(tokens.len());
        let mut prefill_scratch = vec![0f32; model.prefill_scratch_len(chunk)];
        session
            .prefill_with(tokens, chunk, &mut prefill_scratch, pool, None)
            .context("cannot process the prompt")?;
    }
    let prefill = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut generated = 0usize;
    // A token that was sampled and printed but not yet fed to the model.
    let mut pending: Option<u32> = None;
    for _ in 0..args.n_predict {
        if let Some(t) = pending.take() {
            session.step_with(t, pool).context("generation failed")?;
        }
        let before = sampler.clone();
        let tok = session.sample(&mut sampler);
        let byte =
            u8::try_from(tok).map_err(|_| anyhow!("the model produced token {tok}, not a byte"))?;
        if !emit(&[byte])? {
            // Nobody reads on: forget the token that was not shown.
            sampler = before;
            break;
        }
        generated += 1;
        pending = Some(tok);
    }
    let gen = start.elapsed().as_secs_f64();

    if let Some(path) = &args.save_state {
        if let Some(t) = pending.take() {
            session.step_with(t, pool).context("generation failed")?;
        }
        let mut snap = vec![0u8; session.snapshot_len()];
        session
            .save_snapshot(&sampler, &mut snap)
            .context("cannot save the state")?;
        write_state_file(path, &snap)?;
    }

    let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let lead = if std::io::stderr().is_terminal() {
        "\n"
    } else {
        ""
    };
    let resumed = if args.load_state.is_some() {
        format!("continued from position {restored_at}; ")
    } else {
        String::new()
    };
    eprintln!(
        "{lead}{resumed}prompt: {} tokens in {prefill:.3} s ({:.1} tokens/s); generated: {generated} tokens in {gen:.3} s ({:.1} tokens/s)",
        tokens.len(),
        rate(tokens.len(), prefill),
        rate(generated, gen)
    );
    if let Some(path) = &args.save_state {
        eprintln!(
            "state saved to {} (position {})",
            path.display(),
            session.position()
        );
    }
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
