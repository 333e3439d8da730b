//! `latte bench`: prefill and decode speed, and decode latency against
//! context length (a Latte step costs the same at every position).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, ensure, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use latte_core::{KernelPath, Kernels, Model, Parallel, Sampler, SamplerConfig, Session};

use crate::chart::{check_target, line_chart, ChartPoint, ChartText};
use crate::mapped::Mapped;
use crate::run::write_stdout;
use crate::threads::{with_pool, Spawn};
use crate::BenchArgs;

/// Each prefill measurement is repeated this many times; the best is
/// reported (the machine may be shared).
const PREFILL_REPEATS: usize = 3;

/// Text the prompt is cut from (repeated as needed).
const PROMPT_TEXT: &[u8] = b"It was a dark and stormy night; the rain fell in torrents, except at \
occasional intervals, when it was checked by a violent gust of wind which swept up the streets. ";

/// Latency of decode steps at one context length.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub context: usize,
    /// Bytes of state in use at this context ([`Model::state_bytes_in_use`]).
    pub state_bytes: usize,
    pub median_us: f64,
    pub mean_us: f64,
    pub min_us: f64,
    pub max_us: f64,
    pub samples: usize,
}

impl Point {
    fn from_samples(context: usize, state_bytes: usize, mut us: Vec<f64>) -> Point {
        us.sort_by(f64::total_cmp);
        let n = us.len();
        let median = if n == 0 {
            0.0
        } else if n % 2 == 1 {
            us[n / 2]
        } else {
            0.5 * (us[n / 2 - 1] + us[n / 2])
        };
        Point {
            context,
            state_bytes,
            median_us: median,
            mean_us: if n == 0 {
                0.0
            } else {
                us.iter().sum::<f64>() / n as f64
            },
            min_us: us.first().copied().unwrap_or(0.0),
            max_us: us.last().copied().unwrap_or(0.0),
            samples: n,
        }
    }
}

fn greedy() -> Result<Sampler> {
    Sampler::new(SamplerConfig {
        temperature: 0.0,
        repeat_penalty: 1.0,
        ..Default::default()
    })
    .context("greedy sampler")
}

/// The kernels `--kernels NAME` names (the best path without it), with an
/// error listing the paths this CPU has.
pub fn kernels_arg(name: Option<&str>) -> Result<Kernels> {
    match name {
        None => Ok(Kernels::best()),
        Some(name) => Kernels::by_name(name).ok_or_else(|| {
            let available: Vec<&str> = KernelPath::ALL
                .iter()
                .filter(|p| p.kernels().is_some())
                .map(|p| p.name())
                .collect();
            anyhow!(
                "--kernels {name}: not a kernel path this CPU has (this CPU has: {}; the best is {})",
                available.join(", "),
                Kernels::best().path()
            )
        }),
    }
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    let shown = args.model.display().to_string();
    let kernels = kernels_arg(args.kernels.as_deref())?;
    for (flag, path) in [("--csv", &args.csv), ("--svg", &args.svg)] {
        if let Some(p) = path {
            check_target(flag, p)?;
        }
    }
    let bytes = Mapped::open(&args.model)?;
    // A full-attention model's KV cache must hold every token the bench
    // feeds (other models ignore the capacity).
    let tokens = (args.max_ctx + args.samples).max(args.prefill + args.decode);
    let model = Model::from_gguf(&bytes)
        .with_context(|| format!("{shown}: cannot load the model"))?
        .with_kernels(kernels)
        .with_attention_capacity(tokens)
        .with_context(|| format!("{shown}: a KV cache of {tokens} tokens"))?;
    let model = args.compute.with_ring(model, &shown)?;
    let vocab = model.config().vocab_size;
    ensure!(
        vocab <= 256,
        "{shown} has a vocabulary of {vocab} tokens; bench feeds bytes, so it needs a byte-level \
         model (at most 256 tokens)"
    );
    let threads = args.compute.threads();
    let m = if args.spawn_per_product {
        measure(args, &model, &Spawn(threads))?
    } else {
        with_pool(threads, |pool| measure(args, &model, pool))?
    };
    let Measured {
        prefill_s,
        stepwise_s,
        decode_s,
        points,
    } = m;
    let chunk = args.compute.chunk.min(args.prefill);
    let threading = match (threads, args.spawn_per_product) {
        (1, _) => "1 thread".to_string(),
        (n, false) => format!("{n} threads"),
        (n, true) => format!("{n} threads spawned per product"),
    };

    let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model      {shown} (kernels {}, {threading})",
        kernels.path()
    );
    let _ = writeln!(
        out,
        "prefill    {} tokens in {prefill_s:.4} s: {:.0} tokens/s (chunks of {chunk}, best of {PREFILL_REPEATS})",
        args.prefill,
        rate(args.prefill, prefill_s)
    );
    let _ = writeln!(
        out,
        "stepwise   {} tokens in {stepwise_s:.4} s: {:.0} tokens/s (the same prompt token by token); chunked prefill {:.2}x as fast",
        args.prefill,
        rate(args.prefill, stepwise_s),
        if prefill_s > 0.0 { stepwise_s / prefill_s } else { 0.0 }
    );
    let _ = writeln!(
        out,
        "decode     {} tokens in {decode_s:.4} s: {:.0} tokens/s (greedy, after the prefill)",
        args.decode,
        rate(args.decode, decode_s)
    );
    let _ = writeln!(
        out,
        "latency    per decode token (step + greedy sample), {} steps per context length:",
        args.samples
    );
    let _ = writeln!(
        out,
        "  {:>8}  {:>10}  {:>10}  {:>10}  {:>12}",
        "context", "median_us", "mean_us", "min_us", "state_bytes"
    );
    for p in &points {
        let _ = writeln!(
            out,
            "  {:>8}  {:>10.2}  {:>10.2}  {:>10.2}  {:>12}",
            p.context, p.median_us, p.mean_us, p.min_us, p.state_bytes
        );
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        if first.median_us > 0.0 && points.len() > 1 {
            let _ = writeln!(
                out,
                "flatness   median at {} vs {}: {:+.1}%",
                last.context,
                first.context,
                100.0 * (last.median_us / first.median_us - 1.0)
            );
        }
    }
    if let Some(p) = &args.csv {
        std::fs::write(p, csv(&points)).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &args.svg {
        let title = format!("{} ({} kernels)", file_name(&args.model), kernels.path());
        std::fs::write(p, svg(&points, &title))
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    write_stdout(out.as_bytes())
}

/// Timings of one bench run.
struct Measured {
    prefill_s: f64,
    stepwise_s: f64,
    decode_s: f64,
    points: Vec<Point>,
}

/// Prefill, decode and latency measurements with `par` running the
/// products.
fn measure<'a>(args: &BenchArgs, model: &Model<'a>, par: &dyn Parallel<'a>) -> Result<Measured> {
    let vocab = model.config().vocab_size;
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut session =
        Session::new(model, &mut state, &mut scratch).context("cannot start a session")?;

    // Prefill: in chunks, and token by token (same threads), alternately,
    // after one short warm-up (page faults of the mapped weights); the two
    // must end with the same logits.
    let prompt: Vec<u32> = PROMPT_TEXT
        .iter()
        .cycle()
        .take(args.prefill)
        .map(|&b| u32::from(b) % vocab as u32)
        .collect();
    let chunk = args.compute.chunk.min(prompt.len());
    let mut prefill_scratch = vec![0f32; model.prefill_scratch_len(chunk)];
    let warm = &prompt[..prompt.len().min(chunk)];
    session
        .prefill_with(warm, chunk, &mut prefill_scratch, par, None)
        .context("prefill")?;
    let (mut prefill_s, mut stepwise_s) = (f64::INFINITY, f64::INFINITY);
    let (mut chunked, mut stepwise) = (Vec::new(), Vec::new());
    for _ in 0..PREFILL_REPEATS {
        session.reset();
        let t = Instant::now();
        session
            .prefill_with(&prompt, chunk, &mut prefill_scratch, par, None)
            .context("prefill")?;
        prefill_s = prefill_s.min(t.elapsed().as_secs_f64());
        chunked = session.logits().to_vec();
        session.reset();
        let t = Instant::now();
        for &tok in &prompt {
            session.step_with(tok, par).context("prefill")?;
        }
        stepwise_s = stepwise_s.min(t.elapsed().as_secs_f64());
        stepwise = session.logits().to_vec();
    }
    ensure!(
        chunked
            .iter()
            .map(|v| v.to_bits())
            .eq(stepwise.iter().map(|v| v.to_bits())),
        "internal error: the chunked prefill and the token-by-token one disagree"
    );

    // Decode: sample greedily, then feed the token.
    let mut sampler = greedy()?;
    let t = Instant::now();
    for _ in 0..args.decode {
        let tok = session.sample(&mut sampler);
        session.step_with(tok, par).context("decode")?;
    }
    let decode_s = t.elapsed().as_secs_f64();

    // Latency against context: one sequence from position 0; the decode
    // steps starting at positions c .. c + samples are timed for every c.
    session.reset();
    sampler = greedy()?;
    let contexts: Vec<usize> = std::iter::successors(Some(64usize), |c| c.checked_mul(2))
        .take_while(|&c| c <= args.max_ctx)
        .collect();
    let end = args.max_ctx + args.samples;
    let bar = ProgressBar::new(end as u64);
    if let Ok(style) =
        ProgressStyle::with_template("latency [{bar:30}] position {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut points = Vec::with_capacity(contexts.len());
    let mut next = contexts.iter().copied().peekable();
    let mut tok = prompt.first().copied().unwrap_or(0);
    let mut pos = 0usize;
    while let Some(&c) = next.peek() {
        if pos < c {
            session.step_with(tok, par).context("decode")?;
            tok = session.sample(&mut sampler);
            pos += 1;
        } else {
            let mut us = Vec::with_capacity(args.samples);
            for _ in 0..args.samples {
                let t = Instant::now();
                session.step_with(tok, par).context("decode")?;
                tok = session.sample(&mut sampler);
                us.push(t.elapsed().as_secs_f64() * 1e6);
                pos += 1;
            }
            points.push(Point::from_samples(
                c,
                model.state_bytes_in_use(c as u64),
                us,
            ));
            next.next();
        }
        if pos.is_multiple_of(1024) {
            bar.set_position(pos as u64);
        }
    }
    bar.finish_and_clear();
    Ok(Measured {
        prefill_s,
        stepwise_s,
        decode_s,
        points,
    })
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

pub fn csv(points: &[Point]) -> String {
    let mut s = String::from("context,median_us,mean_us,min_us,max_us,samples,state_bytes\n");
    for p in points {
        let _ = writeln!(
            s,
            "{},{:.3},{:.3},{:.3},{:.3},{},{}",
            p.context, p.median_us, p.mean_us, p.min_us, p.max_us, p.samples, p.state_bytes
        );
    }
    s
}

/// A line plot of the median latency (y, microseconds, from 0) against
/// the context length (x, log2 scale), with the min-max range shaded.
pub fn svg(points: &[Point], title: &str) -> String {
    let chart: Vec<ChartPoint> = points
        .iter()
        .map(|p| ChartPoint {
            x: (p.context as f64).log2(),
            tick: short_count(p.context),
            y: Some(p.median_us),
            band: Some((p.min_us, p.max_us)),
            tip: format!("{} tokens: {:.1} us", p.context, p.median_us),
        })
        .collect();
    line_chart(
        &chart,
        &ChartText {
            title: &format!("Decode latency per token vs context: {title}"),
            x_label: "context length (tokens already in the state), log scale",
            y_label: "microseconds per token (median)",
        },
    )
}

/// 64, 1K, 64K.
fn short_count(c: usize) -> String {
    if c >= 1024 && c.is_multiple_of(1024) {
        format!("{}K", c / 1024)
    } else {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_and_plot() {
        let p = Point::from_samples(64, 0, vec![3.0, 1.0, 2.0, 10.0]);
        assert_eq!(
            (p.median_us, p.mean_us, p.min_us, p.max_us),
            (2.5, 4.0, 1.0, 10.0)
        );
        let p = Point::from_samples(64, 0, vec![3.0, 1.0, 2.0]);
        assert_eq!(p.median_us, 2.0);
        let pts: Vec<Point> = [64usize, 128, 256]
            .iter()
            .map(|&c| Point::from_samples(c, 0, vec![100.0, 110.0]))
            .collect();
        let s = svg(&pts, "a<b & c");
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("a&lt;b &amp; c"));
        // Three points on the median line, from x = left to x = left + plot width.
        assert!(s.contains(r#"<polyline points="70.0,"#), "{s}");
        assert_eq!(s.matches("<circle").count(), 3);
        let c = csv(&pts);
        assert_eq!(c.lines().count(), 4);
        assert!(c.starts_with("context,median_us"));
        assert_eq!(short_count(65536), "64K");
    }
}
