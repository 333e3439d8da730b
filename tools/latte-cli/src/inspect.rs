//! `latte inspect`: what a GGUF file holds and what the model needs to run.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use latte_gguf::{Gguf, Value};

use crate::mapped::Mapped;
use crate::run::write_stdout;
use crate::InspectArgs;

/// Array elements shown before the rest is summarised.
const ARRAY_PREVIEW: usize = 8;
/// Longest string value shown in full (in characters).
const STRING_PREVIEW: usize = 96;

pub fn inspect(args: &InspectArgs) -> Result<()> {
    let shown = args.model.display().to_string();
    let bytes = Mapped::open(&args.model)?;
    let g = Gguf::parse(&bytes).with_context(|| shown.clone())?;
    let mut out = String::new();
    let file_len = bytes.len() as u64;
    let _ = writeln!(out, "file      {shown} ({file_len} bytes)");
    let _ = writeln!(
        out,
        "gguf      version {}, alignment {}, data section at byte {}",
        g.version(),
        g.alignment(),
        g.data_offset()
    );

    let _ = writeln!(out, "\nmetadata  {} entries", g.kv_count());
    let width = g.metadata().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in g.metadata() {
        let _ = writeln!(out, "  {key:<width$}  {}", show_value(&value));
    }

    let _ = writeln!(out, "\ntensors   {}", g.tensor_count());
    let rows: Vec<[String; 5]> = g
        .tensors()
        .map(|t| {
            [
                t.name.to_string(),
                t.ty.name().to_string(),
                format!("{:?}", t.shape()),
                t.data.len().to_string(),
                t.offset.to_string(),
            ]
        })
        .collect();
    let header = ["name", "type", "ne (innermost first)", "bytes", "offset"].map(String::from);
    let mut widths = [0usize; 5];
    for r in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let _ = writeln!(
            out,
            "  {:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4]
        );
    }

    let data: u64 = g.tensors().map(|t| t.data.len() as u64).sum();
    let elements: u64 = g.tensors().map(|t| t.n_elements()).sum();
    let _ = writeln!(
        out,
        "\nsizes     {elements} parameters, tensor data {}, header {} bytes, file {file_len} bytes",
        bytes_text(data),
        g.data_offset().min(file_len)
    );

    let mut by_type: Vec<(&str, usize, u64)> = Vec::new();
    for t in g.tensors() {
        let name = t.ty.name();
        match by_type.iter_mut().find(|(n, _, _)| *n == name) {
            Some(e) => {
                e.1 += 1;
                e.2 += t.data.len() as u64;
            }
            None => by_type.push((name, 1, t.data.len() as u64)),
        }
    }
    let types: Vec<String> = by_type
        .iter()
        .map(|(n, count, b)| format!("{n}: {count} tensors, {b} bytes"))
        .collect();
    let _ = writeln!(out, "types     {}", types.join("; "));

    match latte_core::Model::from_gguf(&bytes) {
        Ok(m) => {
            let _ = writeln!(
                out,
                "runtime   state {} f32 = {} per session, scratch {} f32 = {}",
                m.state_len(),
                bytes_text(m.state_bytes() as u64),
                m.scratch_len(),
                bytes_text(m.scratch_bytes() as u64)
            );
            let _ = writeln!(out, "{}", gate_line(&m));
            let _ = writeln!(out, "{}", mixer_line(&m));
            let chunk = crate::DEFAULT_CHUNK;
            let _ = writeln!(
                out,
                "prefill   scratch {} f32 = {} for chunks of {chunk} tokens (--chunk)",
                m.prefill_scratch_len(chunk),
                bytes_text(m.prefill_scratch_bytes(chunk) as u64)
            );
        }
        Err(latte_core::Error::IsAClassifier) => match latte_core::Classifier::from_gguf(&bytes) {
            Ok(c) => {
                let chunk = crate::DEFAULT_CHUNK;
                let _ = writeln!(
                    out,
                    "runtime   classifier ({} classes): summaries {} f32 = {}, work {} f32 = {} for chunks of {chunk} bytes; the same for any input length (latte classify)",
                    c.config().n_classes,
                    c.summaries_len(),
                    bytes_text(c.summaries_len() as u64 * 4),
                    c.work_len(chunk),
                    bytes_text(c.work_len(chunk) as u64 * 4)
                );
            }
            Err(e) => {
                let _ = writeln!(out, "runtime   not runnable: {e}");
            }
        },
        Err(e) => {
            let _ = writeln!(out, "runtime   not runnable: {e}");
        }
    }
    write_stdout(out.as_bytes())
}

/// The decay gate: `decay gate no`, or `yes` with the range of the rates
/// over every layer and latent.
fn gate_line(m: &latte_core::Model<'_>) -> String {
    let rates: Vec<f32> = (0..m.config().n_layers)
        .filter_map(|i| m.latte_layer(i).and_then(|l| l.decay()))
        .flatten()
        .copied()
        .collect();
    if !m.config().latent_decay || rates.is_empty() {
        return "decay gate no".to_string();
    }
    let lo = rates.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = rates.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    format!(
        "decay gate yes, rates {lo}..{hi} per token over {} latents (an extension, not the \
         official architecture)",
        rates.len()
    )
}

/// The blocks' mixer, and what a window's ring takes of the state.
fn mixer_line(m: &latte_core::Model<'_>) -> String {
    let ring: usize = (0..m.config().n_layers)
        .filter_map(|i| m.mixer(i))
        .map(|x| x.ring_len() * 4)
        .sum();
    match m.config().mixing {
        latte_core::Mixing::Latte => "mixer     latte (causal Latte in every block)".to_string(),
        latte_core::Mixing::Macchiato {
            window, combine, ..
        } => format!(
            "mixer     macchiato: Latte plus softmax attention over the last {window} tokens \
             ({} combination; an extension, not the official architecture); the windows' rings \
             are {} of the state",
            combine.name(),
            bytes_text(ring as u64)
        ),
        latte_core::Mixing::Attention { window, full, .. } => format!(
            "mixer     attention ({}): softmax attention alone, no Latte (the baseline); KV cache \
             of {window} tokens = {} of the state",
            if full { "full" } else { "sliding window" },
            bytes_text(ring as u64)
        ),
    }
}

/// `288 bytes`, `7276 bytes (7.1 KiB)`.
fn bytes_text(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} bytes")
    } else if b < KIB * KIB {
        format!("{bytes} bytes ({:.1} KiB)", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{bytes} bytes ({:.1} MiB)", b / (KIB * KIB))
    } else {
        format!("{bytes} bytes ({:.2} GiB)", b / (KIB * KIB * KIB))
    }
}

fn show_string(s: &str) -> String {
    if s.chars().count() <= STRING_PREVIEW {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(STRING_PREVIEW).collect();
        format!("{head:?}... ({} bytes)", s.len())
    }
}

fn scalar(v: &Value<'_>) -> String {
    match v {
        Value::U8(x) => x.to_string(),
        Value::I8(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I16(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::F32(x) => x.to_string(),
        Value::Bool(x) => x.to_string(),
        Value::String(s) => show_string(s),
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        Value::Array(a) => format!("[{}; {}]", a.elem_type(), a.len()),
    }
}

fn show_value(v: &Value<'_>) -> String {
    match v {
        Value::Array(a) => {
            let items: Vec<String> = a.iter().take(ARRAY_PREVIEW).map(|e| scalar(&e)).collect();
            let more = if a.len() > ARRAY_PREVIEW { ", ..." } else { "" };
            format!(
                "[{}; {}]  [{}{more}]",
                a.elem_type(),
                a.len(),
                items.join(", ")
            )
        }
        other => format!("{:<7} {}", other.value_type().name(), scalar(other)),
    }
}
