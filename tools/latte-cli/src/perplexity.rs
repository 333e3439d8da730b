//! `latte perplexity`: bits per byte over a text file, optionally against a
//! reference model (KL divergence, same top token), and by position in the
//! stream (`--buckets`).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use latte_core::{Model, Session};
use serde::Serialize;

use crate::chart::{check_target, line_chart, ChartPoint, ChartText};
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
    /// `ring`: the `--ring` flag, for the scored model (the reference
    /// keeps `f32` rings, so `--reference` the same file measures it).
    fn new(
        bytes: &'a Mapped,
        path: &Path,
        chunk: usize,
        ring: Option<&crate::ComputeArgs>,
    ) -> Result<Self> {
        let shown = path.display();
        let model =
            Model::from_gguf(bytes).with_context(|| format!("{shown}: cannot load the model"))?;
        let model = match ring {
            Some(c) => c.with_ring(model, &shown.to_string())?,
            None => model,
        };
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
    session: Session<'r, 'a>,
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

/// `--buckets` without a value: the ranges 0-256, 256-1k, 1k-4k, 4k-16k,
/// 16k-64k and 64k+.
pub const DEFAULT_BUCKETS: &str = "256,1k,4k,16k,64k";

/// The upper ends of the position ranges of `--buckets`, increasing, all
/// above 0: edges `e1 < e2 < ...` make the ranges `[0, e1)`, `[e1, e2)`, ...
/// and `[e_last, infinity)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketEdges(pub Vec<usize>);

impl BucketEdges {
    /// The range that holds position `pos`.
    fn index(&self, pos: usize) -> usize {
        self.0.partition_point(|&e| e <= pos)
    }

    /// `(from, to)` of every range; `to` is `None` for the open last one.
    fn ranges(&self) -> Vec<(usize, Option<usize>)> {
        let mut from = 0;
        let mut out = Vec::with_capacity(self.0.len() + 1);
        for &e in &self.0 {
            out.push((from, Some(e)));
            from = e;
        }
        out.push((from, None));
        out
    }
}

/// One position of `--buckets`: a whole number of bytes, optionally with a
/// `k` (x 1024) or `M` (x 1024^2) suffix.
fn parse_position(item: &str) -> Result<usize, String> {
    let t = item.trim();
    let (digits, scale) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1usize << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1usize << 20),
        _ => (t, 1),
    };
    digits
        .parse::<usize>()
        .ok()
        .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.checked_mul(scale))
        .ok_or_else(|| {
            format!(
                "`{item}` is not a position: bucket edges are whole numbers of bytes, \
                 optionally with k (x1024) or M (x1048576), comma-separated and increasing, \
                 e.g. --buckets {DEFAULT_BUCKETS}"
            )
        })
}

/// `--buckets EDGES`: comma-separated positions, each above 0 and above
/// the one before.
pub fn parse_buckets(s: &str) -> Result<BucketEdges, String> {
    let mut edges: Vec<usize> = Vec::new();
    let mut prev = "";
    for item in s.split(',') {
        let v = parse_position(item)?;
        if v == 0 {
            return Err(format!(
                "`{}`: bucket edges must be above 0 (the first range always starts at \
                 position 0), e.g. --buckets {DEFAULT_BUCKETS}",
                item.trim()
            ));
        }
        if let Some(&last) = edges.last() {
            if v <= last {
                return Err(format!(
                    "`{}` after `{prev}`: bucket edges must increase strictly, e.g. --buckets \
                     {DEFAULT_BUCKETS}",
                    item.trim()
                ));
            }
        }
        edges.push(v);
        prev = item.trim();
    }
    Ok(BucketEdges(edges))
}

/// `1k`, `64k`, `1M` for multiples of 1024 and 1024^2, else the number.
fn short_position(p: usize) -> String {
    if p > 0 && p.is_multiple_of(1 << 20) {
        format!("{}M", p >> 20)
    } else if p > 0 && p.is_multiple_of(1 << 10) {
        format!("{}k", p >> 10)
    } else {
        p.to_string()
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
    /// `(-ln p summed, bytes)` per position range of the edges.
    by_position: Vec<(f64, usize)>,
}

/// Scores every window: each from the initial state, fed a chunk at a
/// time (the logits of every position come out of the prefill, bit for
/// bit those of feeding the bytes one by one).
fn score<'a>(
    windows: &[&[u8]],
    edges: &BucketEdges,
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
    let mut sums = Sums {
        by_position: vec![(0.0, 0); edges.0.len() + 1],
        ..Default::default()
    };
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
                // Position of the scored byte: the bytes before it since
                // the last reset.
                let bucket = &mut sums.by_position[edges.index(i + 1)];
                bucket.0 -= lq[next];
                bucket.1 += 1;
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

/// Bits per byte of the bytes scored at positions `from..to`.
#[derive(Serialize, Debug)]
struct Bucket {
    range: String,
    from: usize,
    /// `None` (JSON `null`): no upper end.
    to: Option<usize>,
    bytes: usize,
    /// `None` (JSON `null`) when no byte was scored in the range.
    bits_per_byte: Option<f64>,
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
    /// With `--buckets`: by position of the scored byte (bytes before it
    /// since the last reset: the start of the text, or of its window).
    #[serde(skip_serializing_if = "Option::is_none")]
    buckets: Option<Vec<Bucket>>,
}

pub fn perplexity(args: &PerplexityArgs) -> Result<()> {
    for (flag, path) in [("--csv", &args.csv), ("--svg", &args.svg)] {
        if let Some(p) = path {
            check_target(flag, p)?;
        }
    }
    let text = read_text(&args.file, args.max_bytes)?;
    let chunk = args.compute.chunk;
    let model_bytes = Mapped::open(&args.model)?;
    let mut runner = Runner::new(&model_bytes, &args.model, chunk, Some(&args.compute))?;
    let ref_bytes = args.reference.as_deref().map(Mapped::open).transpose()?;
    let mut reference = match (&ref_bytes, &args.reference) {
        (Some(b), Some(p)) => Some(Runner::new(b, p, chunk, None)?),
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
    // A model without positions has none past its training length to warn of.
    let positional = runner.model.config().position != latte_core::Position::None;
    if positional && longest > trained {
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
    let no_buckets = BucketEdges(Vec::new());
    let edges = args.buckets.as_ref().unwrap_or(&no_buckets);
    let sums = with_pool(args.compute.threads(), |pool| {
        score(
            &windows,
            edges,
            &mut runner,
            reference.as_mut(),
            pool,
            &bar,
            args,
        )
    })?;
    let Sums {
        nll,
        ref_nll,
        kl_sum,
        kl_max,
        same,
        by_position,
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
    if args.buckets.is_some() {
        let buckets: Vec<Bucket> = edges
            .ranges()
            .into_iter()
            .zip(&by_position)
            .map(|((from, to), &(nll, bytes))| Bucket {
                range: match to {
                    Some(t) => format!("{}-{}", short_position(from), short_position(t)),
                    None => format!("{}+", short_position(from)),
                },
                from,
                to,
                bytes,
                bits_per_byte: (bytes > 0).then(|| nll / bytes as f64 / std::f64::consts::LN_2),
            })
            .collect();
        if let Some(p) = &args.csv {
            std::fs::write(p, buckets_csv(&buckets))
                .with_context(|| format!("cannot write {}", p.display()))?;
        }
        if let Some(p) = &args.svg {
            std::fs::write(p, buckets_svg(&buckets, args))
                .with_context(|| format!("cannot write {}", p.display()))?;
        }
        report.buckets = Some(buckets);
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
    if let Some(buckets) = &r.buckets {
        let since = if r.mode == "continuous" {
            "the start of the text"
        } else {
            "the start of its window"
        };
        let _ = writeln!(
            s,
            "by position (bytes before the scored byte since {since}):"
        );
        let _ = writeln!(s, "  {:<14} {:>10}  {:>9}", "range", "bytes", "bits/byte");
        for b in buckets {
            let bpb = match b.bits_per_byte {
                Some(v) => format!("{v:.6}"),
                None => "-".into(),
            };
            let _ = writeln!(s, "  {:<14} {:>10}  {:>9}", b.range, b.bytes, bpb);
        }
        let _ = writeln!(
            s,
            "  {:<14} {:>10}  {:>9.6}",
            "all", r.scored, r.bits_per_byte
        );
    }
    s
}

/// The buckets as CSV: `range,from,to,bytes,bits_per_byte`, an empty `to`
/// for the open last range and an empty `bits_per_byte` for a range with no
/// byte scored.
fn buckets_csv(buckets: &[Bucket]) -> String {
    let mut s = String::from("range,from,to,bytes,bits_per_byte\n");
    for b in buckets {
        let to = b.to.map(|t| t.to_string()).unwrap_or_default();
        let bpb = b
            .bits_per_byte
            .map(|v| format!("{v:.6}"))
            .unwrap_or_default();
        let _ = writeln!(s, "{},{},{to},{},{bpb}", b.range, b.from, b.bytes);
    }
    s
}

/// Bits per byte (y) against the position range (x, one step per range);
/// ranges with no byte scored get a tick but no point.
fn buckets_svg(buckets: &[Bucket], args: &PerplexityArgs) -> String {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string())
    };
    let points: Vec<ChartPoint> = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| ChartPoint {
            x: i as f64,
            tick: b.range.clone(),
            y: b.bits_per_byte,
            band: None,
            tip: match b.bits_per_byte {
                Some(v) => format!("{}: {} bytes, {v:.4} bits/byte", b.range, b.bytes),
                None => format!("{}: no byte scored", b.range),
            },
        })
        .collect();
    let title = format!(
        "Bits per byte by position: {} on {}",
        name(&args.model),
        name(&args.file)
    );
    let x_label = match args.ctx {
        None => "position (bytes before the scored byte since the start of the text)".to_string(),
        Some(c) => format!(
            "position (bytes before the scored byte since the start of its {c}-byte window)"
        ),
    };
    line_chart(
        &points,
        &ChartText {
            title: &title,
            x_label: &x_label,
            y_label: "bits per byte",
        },
    )
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

    #[test]
    fn bucket_edges() {
        let d = parse_buckets(DEFAULT_BUCKETS).unwrap();
        assert_eq!(d.0, [256, 1024, 4096, 16384, 65536]);
        let labels: Vec<String> = d
            .ranges()
            .into_iter()
            .map(|(f, t)| match t {
                Some(t) => format!("{}-{}", short_position(f), short_position(t)),
                None => format!("{}+", short_position(f)),
            })
            .collect();
        assert_eq!(
            labels,
            ["0-256", "256-1k", "1k-4k", "4k-16k", "16k-64k", "64k+"]
        );
        assert_eq!((d.index(1), d.index(255), d.index(256)), (0, 0, 1));
        assert_eq!(
            (d.index(65535), d.index(65536), d.index(1 << 30)),
            (4, 5, 5)
        );
        assert_eq!(parse_buckets(" 10 , 2K,1m").unwrap().0, [10, 2048, 1 << 20]);
        assert_eq!(BucketEdges(Vec::new()).index(7), 0);
        for bad in [
            "", "1k,", "abc", "1kk", "k", "-5", "+5", "1.5k", "4k,1k", "8,8", "0", "0,8",
        ] {
            assert!(parse_buckets(bad).is_err(), "{bad}");
        }
        assert!(parse_buckets("99999999999999999999").is_err());
        assert!(parse_buckets(&format!("{}M", usize::MAX)).is_err());
    }
}
