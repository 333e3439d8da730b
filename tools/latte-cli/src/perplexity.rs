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

/// A loaded byte-level model with its session buffers.
struct Runner<'a> {
    model: Model<'a>,
    state: Vec<f32>,
    scratch: Vec<f32>,
}

impl<'a> Runner<'a> {
    fn new(bytes: &'a Mapped, path: &Path) -> Result<Self> {
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
            model,
        })
    }

    fn session(&mut self) -> Result<Session<'_, 'a, '_>> {
        Session::new(&self.model, &mut self.state, &mut self.scratch)
            .context("cannot start a session")
    }
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
    let model_bytes = Mapped::open(&args.model)?;
    let mut runner = Runner::new(&model_bytes, &args.model)?;
    let ref_bytes = args.reference.as_deref().map(Mapped::open).transpose()?;
    let mut reference = match (&ref_bytes, &args.reference) {
        (Some(b), Some(p)) => Some(Runner::new(b, p)?),
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
    let mut session = runner.session()?;
    let mut ref_session = match reference.as_mut() {
        Some(r) => Some(r.session()?),
        None => None,
    };
    let (mut nll, mut ref_nll, mut kl_sum, mut kl_max, mut same) =
        (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0usize);
    let (mut lp, mut lq) = (Vec::new(), Vec::new());
    let mut done = 0usize;
    for w in &windows {
        session.reset();
        if let Some(r) = ref_session.as_mut() {
            r.reset();
        }
        for (i, pair) in w.windows(2).enumerate() {
            let (tok, next) = (u32::from(pair[0]), pair[1] as usize);
            let logits = session
                .step(tok)
                .with_context(|| format!("cannot run {}", args.model.display()))?;
            log_softmax(logits, &mut lq).ok_or_else(|| {
                anyhow!(
                    "{} produced a NaN or infinite logit at byte {i} of a window",
                    args.model.display()
                )
            })?;
            nll -= lq[next];
            if let Some(r) = ref_session.as_mut() {
                let rl = r.step(tok).context("cannot run the reference model")?;
                log_softmax(rl, &mut lp).ok_or_else(|| {
                    anyhow!(
                        "the reference produced a NaN or infinite logit at byte {i} of a window"
                    )
                })?;
                ref_nll -= lp[next];
                let kl = kl_divergence(&lp, &lq);
                kl_sum += kl;
                kl_max = kl_max.max(kl);
                let top_m = latte_core::ops::argmax(session.logits());
                let top_r = latte_core::ops::argmax(r.logits());
                same += usize::from(top_m == top_r);
            }
            done += 1;
            if done.is_multiple_of(256) {
                bar.set_position(done as u64);
            }
        }
    }
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
