//! `latte convert` for sequence classifiers: the reference trainer's
//! `LatteClassifier` checkpoint (`latte.classifier` metadata) to a
//! `latte-classifier` model file (FORMAT.md, "Classifier files").

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail, ensure, Context, Result};
use latte_gguf::{GgmlType, GgufWriter, MetaArray, MetaValue};
use safetensors::SafeTensors;
use serde::Deserialize;

use super::quant::Policy;
use super::scheme::{Hyper, Role};
use super::{decode, write_atomically};
use crate::ConvertArgs;

/// Safetensors metadata key holding the classifier's configuration.
pub const CLASSIFIER_CONFIG_KEY: &str = "latte.classifier";
/// Safetensors metadata key holding the class names (a JSON list).
const LABELS_KEY: &str = "latte.class_labels";

/// The trainer's `ClassifierConfig` JSON.
#[derive(Deserialize, Debug)]
struct ClassifierConfig {
    vocab_size: u64,
    d_model: u64,
    n_layers: u64,
    n_heads: u64,
    n_latents: u64,
    d_ff: u64,
    n_classes: u64,
    max_seq_len: u64,
    pos_encoding: String,
    ln_eps: f64,
    mixer: String,
    /// The byte n-gram stem (an extension); absent = 0, the official model.
    #[serde(default)]
    conv_width: u64,
}

/// One tensor of the model file: its GGUF name, the checkpoint's name, the
/// role that sets its precision, and its `[rows, cols]` (or `[n]`).
struct Entry {
    gguf: String,
    source: String,
    role: Role,
    shape: Vec<u64>,
}

fn entries(c: &ClassifierConfig) -> Vec<Entry> {
    let (v, d, l, f, k) = (c.vocab_size, c.d_model, c.n_latents, c.d_ff, c.n_classes);
    let e = |gguf: String, source: String, role, shape: &[u64]| Entry {
        gguf,
        source,
        role,
        shape: shape.to_vec(),
    };
    let mut out = vec![e(
        "token_embd.weight".into(),
        "tok_emb.weight".into(),
        Role::TokEmb,
        &[v, d],
    )];
    for i in 0..c.n_layers {
        let g = |s: &str| format!("blk.{i}.{s}");
        let t = |s: &str| format!("blocks.{i}.{s}");
        out.extend([
            e(
                g("attn_norm.weight"),
                t("ln1.weight"),
                Role::AttnNormW,
                &[d],
            ),
            e(g("attn_norm.bias"), t("ln1.bias"), Role::AttnNormB, &[d]),
            e(g("attn_q.weight"), t("latte.wq.weight"), Role::Q, &[l, d]),
            e(g("attn_k.weight"), t("latte.wk.weight"), Role::K, &[l, d]),
            e(g("attn_v.weight"), t("latte.wv.weight"), Role::V, &[d, d]),
            e(
                g("attn_output.weight"),
                t("latte.wo.weight"),
                Role::O,
                &[d, d],
            ),
            e(g("ffn_norm.weight"), t("ln2.weight"), Role::FfnNormW, &[d]),
            e(g("ffn_norm.bias"), t("ln2.bias"), Role::FfnNormB, &[d]),
            e(g("ffn_up.weight"), t("mlp.fc1.weight"), Role::UpW, &[f, d]),
            e(g("ffn_up.bias"), t("mlp.fc1.bias"), Role::UpB, &[f]),
            e(
                g("ffn_down.weight"),
                t("mlp.fc2.weight"),
                Role::DownW,
                &[d, f],
            ),
            e(g("ffn_down.bias"), t("mlp.fc2.bias"), Role::DownB, &[d]),
        ]);
    }
    if c.conv_width > 0 {
        out.push(e(
            "stem.weight".into(),
            "stem.weight".into(),
            Role::O,
            &[d, c.conv_width * d],
        ));
        out.push(e("stem.bias".into(), "stem.bias".into(), Role::DownB, &[d]));
    }
    out.push(e(
        "cls.weight".into(),
        "head.weight".into(),
        Role::HeadW,
        &[k, d],
    ));
    out.push(e("cls.bias".into(), "head.bias".into(), Role::HeadB, &[k]));
    out
}

/// Converts a classifier checkpoint whose metadata is `meta`.
pub fn convert(
    args: &ConvertArgs,
    st: &SafeTensors<'_>,
    meta: &HashMap<String, String>,
    shown: &str,
) -> Result<()> {
    let json = meta
        .get(CLASSIFIER_CONFIG_KEY)
        .ok_or_else(|| anyhow!("internal: no {CLASSIFIER_CONFIG_KEY}"))?;
    let c: ClassifierConfig = serde_json::from_str(json).with_context(|| {
        format!("{shown}: `{CLASSIFIER_CONFIG_KEY}` in the safetensors metadata is not valid")
    })?;
    ensure!(
        c.mixer == "bid_latte",
        "{shown} is a `{}` classifier; the runtime runs bidirectional Latte (`bid_latte`) \
         classifiers only (the attention encoder is a training baseline)",
        c.mixer
    );
    ensure!(
        args.heads.is_none() && args.context_length.is_none() && args.vapor_base.is_none(),
        "--heads, --context-length and --vapor-base do not apply to classifiers: {shown} \
         carries its configuration"
    );
    let position = match c.pos_encoding.as_str() {
        "sinusoidal" | "none" => c.pos_encoding.as_str(),
        other => bail!(
            "{shown}: pos_encoding `{other}` is not supported for classifiers (sinusoidal or none)"
        ),
    };
    for (what, v) in [
        ("vocab_size", c.vocab_size),
        ("d_model", c.d_model),
        ("n_layers", c.n_layers),
        ("n_heads", c.n_heads),
        ("n_latents", c.n_latents),
        ("d_ff", c.d_ff),
        ("max_seq_len", c.max_seq_len),
    ] {
        ensure!(
            v > 0 && u32::try_from(v).is_ok(),
            "{shown}: {what} = {v} is out of range"
        );
    }
    ensure!(
        (2..=u32::MAX as u64).contains(&c.n_classes),
        "{shown}: n_classes = {} (a classifier needs at least 2)",
        c.n_classes
    );
    ensure!(
        c.d_model.is_multiple_of(c.n_heads) && c.n_latents.is_multiple_of(c.n_heads),
        "{shown}: D = {} and L = {} must both be multiples of H = {}",
        c.d_model,
        c.n_latents,
        c.n_heads
    );
    ensure!(
        c.n_layers as usize <= latte_core::MAX_LAYERS,
        "{shown}: {} layers, the runtime runs at most {}",
        c.n_layers,
        latte_core::MAX_LAYERS
    );
    ensure!(
        c.ln_eps.is_finite() && c.ln_eps > 0.0,
        "{shown}: ln_eps = {} must be a positive number",
        c.ln_eps
    );
    let max_k = latte_core::classifier::MAX_CONV_WIDTH as u64;
    ensure!(
        c.conv_width <= max_k,
        "{shown}: conv_width = {} (the runtime supports n-gram stems up to {max_k})",
        c.conv_width
    );
    let labels: Option<Vec<String>> = match meta.get(LABELS_KEY) {
        None => None,
        Some(j) => {
            let l: Vec<String> = serde_json::from_str(j)
                .with_context(|| format!("{shown}: `{LABELS_KEY}` is not a JSON list of names"))?;
            ensure!(
                l.len() as u64 == c.n_classes,
                "{shown}: `{LABELS_KEY}` has {} names for {} classes",
                l.len(),
                c.n_classes
            );
            Some(l)
        }
    };

    let plan = entries(&c);
    let mut tensors: BTreeMap<String, _> = st.tensors().into_iter().collect();
    let mut problems = Vec::new();
    for e in &plan {
        match tensors.get(&e.source) {
            None => problems.push(format!("missing `{}`", e.source)),
            Some(view) => {
                let got: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
                if got != e.shape {
                    problems.push(format!(
                        "`{}`: expected shape {:?}, found {got:?}",
                        e.source, e.shape
                    ));
                }
                if !decode::supported(view.dtype()) {
                    problems.push(format!(
                        "`{}`: dtype {:?} is not supported",
                        e.source,
                        view.dtype()
                    ));
                }
            }
        }
    }
    for e in &plan {
        tensors.remove(&e.source);
    }
    if !tensors.is_empty() {
        let names: Vec<&str> = tensors.keys().map(String::as_str).take(10).collect();
        problems.push(format!("unknown tensors: {}", names.join(", ")));
    }
    ensure!(
        problems.is_empty(),
        "{shown} does not match its {CLASSIFIER_CONFIG_KEY} (D={}, layers={}, L={}, F={}, C={}):\n  {}",
        c.d_model,
        c.n_layers,
        c.n_latents,
        c.d_ff,
        c.n_classes,
        problems.join("\n  ")
    );

    let policy = Policy::new(args.dtype, &args.tensor_type)?;
    let hp = Hyper {
        vocab: c.vocab_size,
        d_model: c.d_model,
        n_layers: c.n_layers,
        n_heads: c.n_heads,
        n_latents: c.n_latents,
        d_ff: c.d_ff,
    };
    let named: Vec<(String, Role)> = plan.iter().map(|e| (e.gguf.clone(), e.role)).collect();
    let types = policy
        .plan(&named, &hp)
        .with_context(|| format!("{shown}: --dtype {}", policy.main))?;

    let mut w = GgufWriter::new();
    let u = |v: u64| u32::try_from(v).map_err(|_| anyhow!("{v} does not fit in u32"));
    let arch = latte_core::classifier::ARCHITECTURE;
    w.add_string("general.architecture", arch)?;
    let name = args
        .name
        .clone()
        .or_else(|| meta.get("latte.name").cloned())
        .unwrap_or_else(|| {
            args.input
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    if !name.is_empty() {
        w.add_string("general.name", name)?;
    }
    let k = |s: &str| format!("{arch}.{s}");
    w.add_u32(k("vocab_size"), u(c.vocab_size)?)?;
    w.add_u32(k("context_length"), u(c.max_seq_len)?)?;
    w.add_u32(k("embedding_length"), u(c.d_model)?)?;
    w.add_u32(k("block_count"), u(c.n_layers)?)?;
    w.add_u32(k("feed_forward_length"), u(c.d_ff)?)?;
    w.add_u32(k("attention.head_count"), u(c.n_heads)?)?;
    w.add_u32(k("latent_count"), u(c.n_latents)?)?;
    w.add_f32(k("attention.layer_norm_epsilon"), c.ln_eps as f32)?;
    w.add_string(k("position_encoding"), position)?;
    w.add_u32(k("class_count"), u(c.n_classes)?)?;
    if c.conv_width > 0 {
        w.add_u32(k("conv_width"), u(c.conv_width)?)?;
    }
    if let Some(l) = labels {
        w.add(k("class_labels"), MetaValue::Array(MetaArray::String(l)))?;
    }
    let st_tensors: BTreeMap<String, _> = st.tensors().into_iter().collect();
    for (e, &ty) in plan.iter().zip(&types) {
        let view = &st_tensors[&e.source];
        let values = decode::to_f32(view.dtype(), view.data())
            .with_context(|| format!("{shown}: tensor `{}`", e.source))?;
        if let Some((i, v)) = decode::first_non_finite(values.iter().copied()) {
            bail!(
                "{shown}: tensor `{}` element {i} is {v}; the checkpoint holds non-finite weights",
                e.source
            );
        }
        let ne: Vec<u64> = e.shape.iter().rev().copied().collect();
        let data = ty.encode(&values)?;
        let gty: GgmlType = ty.ggml();
        w.add_tensor(e.gguf.clone(), &ne, gty, std::borrow::Cow::Owned(data))?;
    }
    write_atomically(&w, &args.output)?;
    let counts = super::type_counts(&types);
    eprintln!(
        "wrote {}: {} tensors ({}), bidirectional Latte classifier, D={} layers={} H={} L={} F={} classes={}, {} positions{}",
        args.output.display(),
        plan.len(),
        counts,
        c.d_model,
        c.n_layers,
        c.n_heads,
        c.n_latents,
        c.d_ff,
        c.n_classes,
        position,
        if c.conv_width > 0 {
            format!(", {}-byte n-gram stem (an extension)", c.conv_width)
        } else {
            String::new()
        }
    );
    Ok(())
}
