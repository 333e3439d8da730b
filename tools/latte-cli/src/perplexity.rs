//! `latte perplexity`: bits per byte over a text file, optionally against a
//! reference model (KL divergence, same top token).

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use latte_core::{Model, Session};
use serde::Serialize;

use crate::mapped::Mapped;
use crate::run::write_stdout;
use crate::threads::{with_pool, Pool};
use crate::PerplexityArgs;

/// Reads the text, with errors that say what is wrong with it.
fn read_text(path: &Path, max_bytes: Option<usize>) -> Result<Vec<u8>> {
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?;
    if meta.is_dir() {
        bail!("{shown} is a directory; -f takes a text file");
    }
    ensure!(
        meta.is_file(),
        "{shown} is not a regular file; -f takes a text file"
    );
    let mut text = std::fs::read(path).with_context(|| format!("cannot read {shown}"))?;
    if let Some(n) = max_bytes {
        text.truncate(n);
    }
    ensure!(
        !text.is_empty(),
        "{shown} is empty: there is nothing to score"
    );
    ensure!(
        text.len() >= 2,
        "{shown} holds one byte: the first byte is context only, so at least two are needed"
    );
    Ok(text)
}

/// A loaded byte-level model with its session buffers, the prefill
/// scratch for chunks of `chunk` tokens and the logits of one chunk.
struct Runner<'a> {
    model: Model<'a>,
    state: Vec<f32>,
    scratch: Vec<f32>,
    chunk: usize,
    prefill: Vec<f32>,
    logits: Vec<f32>,
}

impl<'a> Runner<'a> {
    fn new(bytes: &'a Mapped, path: &Path, chunk: usize) -> Result<Self> {
        let shown = path.display();
        let model =
            Model::from_gguf(bytes).with_context(|| format!("{shown}: cannot load the model"))?;
        let vocab = model.config().vocab_size;
        ensure!(
            vocab <= 256,
            "{shown} has a vocabulary of {vocab} tokens; perplexity reads the text as bytes, so it \
             needs a byte-level model (at most 256 tokens)"
        );
        ensure!(
            vocab == 256,
            "{shown} has a vocabulary of {vocab} tokens, not 256: some bytes of a text would have \
             no token; use a byte-level model"
        );
        Ok(Runner {
            state: vec![0.0; model.state_len()],
            scratch: vec![0.0; model.scratch_len()],
            chunk,
            prefill: vec![0.0; model.prefill_scratch_len(chunk)],
            logits: vec![0.0; chunk * vocab],
            model,
        })
    }

    fn scorer(&mut self) -> Result<Scorer<'_, 'a>> {
        let session = Session::new(&self.model, &mut self.state, &mut self.scratch)
            .context("cannot start a session")?;
        Ok(Scorer {
            session,
            chunk: self.chunk,
            prefill: &mut self.prefill,
            logits: &mut self.logits,
        })
    }
}

/// A session that feeds a chunk at a time and keeps the logits of every
/// position of the chunk.
struct Scorer<'r, 'a> {
    session: Session<'r, 'a, 'r>,
    chunk: usize,
    prefill: &'r mut [f32],
    logits: &'r mut [f32],
}

impl<'a> Scorer<'_, 'a> {
    /// Feeds `tokens` (at most `chunk`) and returns the logits after each
    /// of them, one row of V per token.
    fn feed(
        &mut self,
        tokens: &[u32],
        pool: &Pool<'a>,
    ) -> std::result::Result<&[f32], latte_core::Error> {
        let v = self.session.model().config().vocab_size;
        let all = &mut self.logits[..tokens.len() * v];
        self.session
            .prefill_with(tokens, self.chunk, self.prefill, pool, Some(&mut *all))?;
        Ok(all)
    }
}

/// Totals over the scored bytes.
#[derive(Default)]
struct Sums {
    nll: f64,
    ref_nll: f64,
    kl_sum: f64,
    kl_max: f64,
    same: usize,
}

/// Scores every window: each from the initial state, fed a chunk at a
/// time (the logits of every position come out of the prefill, bit for
/// bit those of feeding the bytes one by one).
fn score<'a>(
    windows: &[&[u8]],
    runner: &mut Runner<'a>,
    reference: Option<&mut Runner<'a>>,
    pool: &Pool<'a>,
    bar: &ProgressBar,
    args: &PerplexityArgs,
) -> Result<Sums> {
    let mut model = runner.scorer()?;
    let mut ref_model = match reference {
        Some(r) => Some(r.scorer()?),
        None => None,
    };
    let v = model.session.model().config().vocab_size;
    let mut sums = Sums::default();
    let (mut lp, mut lq) = (Vec::new(), Vec::new());
    let mut done = 0usize;
    for w in windows {
        model.session.reset();
        if let Some(r) = ref_model.as_mut() {
            r.session.reset();
        }
        // Byte i predicts byte i + 1.
        let inputs: Vec<u32> = w[..w.len() - 1].iter().map(|&b| u32::from(b)).collect();
        for (c, piece) in inputs.chunks(model.chunk).enumerate() {
            let first = c * model.chunk;
            let logits = model
                .feed(piece, pool)
                .with_context(|| format!("cannot run {}", args.model.display()))?;
            let ref_logits = match ref_model.as_mut() {
                Some(r) => Some(
                    r.feed(piece, pool)
                        .context("cannot run the reference model")?,
                ),
                None => None,
            };
            for j in 0..piece.len() {
                let i = first + j;
                let next = w[i + 1] as usize;
                let row = &logits[j * v..(j + 1) * v];
                log_softmax(row, &mut lq).ok_or_else(|| {
                    anyhow!(
                        "{} produced a NaN or infinite logit at byte {i} of a window",
                        args.model.display()
                    )
                })?;
                sums.nll -= lq[next];
                if let Some(rl) = ref_logits {
                    let ref_row = &rl[j * v..(j + 1) * v];
                    log_softmax(ref_row, &mut lp).ok_or_else(|| {
                        anyhow!(
                            "the reference produced a NaN or infinite logit at byte {i} of a window"
                        )
                    })?;
                    sums.ref_nll -= lp[next];
                    let kl = kl_divergence(&lp, &lq);
                    sums.kl_sum += kl;
                    sums.kl_max = sums.kl_max.max(kl);
                    let top_m = latte_core::ops::argmax(row);
                    let top_r = latte_core::ops::argmax(ref_row);
                    sums.same += usize::from(top_m == top_r);
                }
            }
            done += piece.len();
            bar.set_position(done as u64);
        }
    }
    Ok(sums)
}

/// `log softmax(logits)` in `f64`; `None` if a logit is NaN or infinite.
pub fn log_softmax(logits: &[f32], out: &mut Vec<f64>) -> Option<()> {
    out.clear();
    let mut max = f64::NEG_INFINITY;
    for &v in logits {
        if !v.is_finite() {
            return None;
        }
        max = max.max(v as f64);
    }
    let sum: f64 = logits.iter().map(|&v| (v as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    out.extend(logits.iter().map(|&v| v as f64 - lse));
    Some(())
}

/// `KL(p || q) = sum p (log p - log q)` from log-probabilities, in nats.
pub fn kl_divergence(log_p: &[f64], log_q: &[f64]) -> f64 {
    log_p
        .iter()
        .zip(log_q)
        .map(|(&lp, &lq)| {
            let p = lp.exp();
            if p > 0.0 {
                p * (lp - lq)
            } else {
                0.0
            }
        })
        .sum::<f64>()
        .max(0.0)
}

#[derive(Serialize, Debug, Default)]
struct Report {
    model: String,
    file: String,
    bytes: usize,
    scored: usize,
    /// `continuous` or `windows of N bytes`.
    mode: String,
    nll_nats_per_byte: f64,
    bits_per_byte: f64,
    perplexity: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference_bits_per_byte: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kl_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kl_max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    same_top_rate: Option<f64>,
}

pub fn perplexity(args: &PerplexityArgs) -> Result<()> {
    let text = read_text(&args.file, args.max_bytes)?;
    let chunk = args.compute.chunk;
    let model_bytes = Mapped::open(&args.model)?;
    let mut runner = Runner::new(&model_bytes, &args.model, chunk)?;
    let ref_bytes = args.reference.as_deref().map(Mapped::open).transpose()?;
    let mut reference = match (&ref_bytes, &args.reference) {
        (Some(b), Some(p)) => Some(Runner::new(b, p, chunk)?),
        _ => None,
    };

    // Windows of bytes, each run from the initial state; the first byte of
    // a window is context only.
    let windows: Vec<&[u8]> = match args.ctx {
        None => vec![&text[..]],
        Some(n) => text.chunks(n).filter(|w| w.len() >= 2).collect(),
    };
    let scored: usize = windows.iter().map(|w| w.len() - 1).sum();
    ensure!(scored > 0, "no byte to score");

    let longest = windows.iter().map(|w| w.len()).max().unwrap_or(0);
    let trained = runner.model.config().context_length;
    if longest > trained {
        eprintln!(
            "note: {} runs to position {}, past the model's training context of {trained}; \
             positions past it were never trained on (--ctx {trained} scores windows within it)",
            args.model.display(),
            longest - 1
        );
    }
    let bar = ProgressBar::new(scored as u64);
    if let Ok(style) =
        ProgressStyle::with_template("scoring [{bar:30}] {pos}/{len} bytes {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let start = Instant::now();
    let sums = with_pool(args.compute.threads(), |pool| {
        score(&windows, &mut runner, reference.as_mut(), pool, &bar, args)
    })?;
    let Sums {
        nll,
        ref_nll,
        kl_sum,
        kl_max,
        same,
    } = sums;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();

    let n = scored as f64;
    let nats = nll / n;
    let mut report = Report {
        model: args.model.display().to_string(),
        file: args.file.display().to_string(),
        bytes: text.len(),
        scored,
        mode: match args.ctx {
            None => "continuous".into(),
            Some(c) => format!("windows of {c} bytes"),
        },
        nll_nats_per_byte: nats,
        bits_per_byte: nats / std::f64::consts::LN_2,
        perplexity: nats.exp(),
        ..Default::default()
    };
    if let Some(p) = &args.reference {
        report.reference = Some(p.display().to_string());
        report.reference_bits_per_byte = Some(ref_nll / n / std::f64::consts::LN_2);
        report.kl_mean = Some(kl_sum / n);
        report.kl_max = Some(kl_max);
        report.same_top_rate = Some(same as f64 / n);
    }
    eprintln!(
        "scored {scored} bytes in {secs:.2} s ({:.0} bytes/s{})",
        if secs > 0.0 { n / secs } else { 0.0 },
        if reference.is_some() {
            ", both models"
        } else {
            ""
        }
    );
    let out = if args.json {
        let mut s = serde_json::to_string(&report)?;
        s.push('\n');
        s
    } else {
        text_report(&report)
    };
    write_stdout(out.as_bytes())
}

fn text_report(r: &Report) -> String {
    let mut s = format!(
        "model       {}\ntext        {} ({} bytes, {} scored, {})\nbits/byte   {:.6}\nperplexity  {:.6} (per byte)\n",
        r.model, r.file, r.bytes, r.scored, r.mode, r.bits_per_byte, r.perplexity
    );
    if let (Some(p), Some(rb), Some(kl), Some(klm), Some(st)) = (
        &r.reference,
        r.reference_bits_per_byte,
        r.kl_mean,
        r.kl_max,
        r.same_top_rate,
    ) {
        s += &format!(
            "reference   {p} (bits/byte {rb:.6})\nKL          {kl:.6} nats/byte mean, {klm:.6} max (reference || model)\nsame top    {:.4}%\n",
            100.0 * st
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_and_kl() {
        let mut a = Vec::new();
        log_softmax(&[0.0, 0.0], &mut a).unwrap();
        assert!((a[0] - 0.5f64.ln()).abs() < 1e-15);
        let mut b = Vec::new();
        log_softmax(&[1000.0, 0.0, -1000.0], &mut b).unwrap();
        assert!(b[0].abs() < 1e-12 && b.iter().all(|v| !v.is_nan()));
        assert!(log_softmax(&[0.0, f32::NAN], &mut b).is_none());
        assert!(log_softmax(&[0.0, f32::INFINITY], &mut b).is_none());
        // KL([1/2, 1/2] || [1/4, 3/4]) = 1/2 ln 2 + 1/2 ln(2/3).
        let p = [0.5f64.ln(), 0.5f64.ln()];
        let q = [0.25f64.ln(), 0.75f64.ln()];
        let want = 0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln();
        assert!((kl_divergence(&p, &q) - want).abs() < 1e-12);
        assert_eq!(kl_divergence(&p, &p), 0.0);
    }
}
