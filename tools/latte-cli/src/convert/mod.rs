//! `latte convert`: safetensors checkpoint -> Latte GGUF model file.

mod classifier;
mod decode;
mod quant;
mod scheme;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use latte_gguf::{GgmlType, GgufWriter};
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;
use serde::Deserialize;

use crate::mapped::Mapped;
use crate::ConvertArgs;
use quant::Policy;
pub use quant::TensorType;
use scheme::{Hyper, Role, Scheme, DECAY_AFTER, LAYER_ROLES, WINDOW_ROLES};

/// Safetensors metadata key holding the reference trainer's configuration.
const TRAINER_CONFIG_KEY: &str = "latte.config";
/// Most blocks a model file can hold: the reader takes at most
/// `MAX_TENSORS` tensors, 12 per block (13 with the decay gate) plus 5
/// others.
fn max_layers(gated: bool, windowed: bool) -> u64 {
    (latte_gguf::MAX_TENSORS as u64 - 5) / (12 + u64::from(gated) + 4 * u64::from(windowed))
}
/// Names listed in an error before the rest is counted.
const LISTED: usize = 40;
/// Safetensors metadata key holding the model name the trainer exported.
const TRAINER_NAME_KEY: &str = "latte.name";
/// Context length of the official language-model configurations.
const FLAX_DEFAULT_CONTEXT: u32 = 1024;
/// LayerNorm epsilon of the official Flax model.
const FLAX_LN_EPS: f32 = 1e-6;
/// VAPOR frequency base when none is given (RoPE's).
const DEFAULT_VAPOR_BASE: f64 = 10_000.0;

/// The reference trainer's `latte.config` JSON.
#[derive(Deserialize, Debug)]
struct TrainerConfig {
    vocab_size: u64,
    d_model: u64,
    n_layers: u64,
    n_heads: u64,
    n_latents: u64,
    d_ff: u64,
    max_seq_len: u64,
    pos_encoding: String,
    #[serde(default)]
    vapor_base: Option<f64>,
    ln_eps: f64,
    /// The decay gate (an extension); absent in older checkpoints. The
    /// trainer's `decay_max` (how it parametrises the rates) is not needed:
    /// the checkpoint carries the rates themselves.
    #[serde(default)]
    latent_decay: bool,
    /// Latte-Macchiato's window (0 or absent: plain Latte) and how it is
    /// combined with Latte.
    #[serde(default)]
    window: u64,
    #[serde(default)]
    combine: Option<String>,
    /// "latte", "macchiato" or "attention" (absent in older checkpoints:
    /// Macchiato when there is a window).
    #[serde(default)]
    mixer: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Positions {
    Sinusoidal,
    Vapor { base: f64 },
    None,
}

/// Everything the model file's metadata needs.
#[derive(Clone, Copy, Debug)]
struct Plan {
    hp: Hyper,
    context_length: u64,
    ln_eps: f32,
    positions: Positions,
    /// `latte.latent_decay`: every block has `attn_decay`.
    latent_decay: bool,
    /// The blocks' mixer.
    mixer: PlanMixer,
}

/// A model's mixer and what it adds to the file.
#[derive(Clone, Copy, Debug, PartialEq)]
enum PlanMixer {
    Latte,
    /// Every block also has the window's tensors.
    Macchiato {
        window: u64,
        combine: latte_core::Combine,
    },
    /// Every block has the window's tensors and `attn_output`, no Latte
    /// tensors; window 0 is full attention.
    Attention {
        window: u64,
    },
}

impl PlanMixer {
    fn from_trainer(c: &TrainerConfig, shown: &str) -> Result<PlanMixer> {
        let mixer = c
            .mixer
            .as_deref()
            .unwrap_or(if c.window > 0 { "macchiato" } else { "latte" });
        Ok(match mixer {
            "latte" => PlanMixer::Latte,
            "macchiato" => PlanMixer::Macchiato {
                window: c.window,
                combine: match c.combine.as_deref().unwrap_or("sum") {
                    "sum" => latte_core::Combine::Sum,
                    "joint" => latte_core::Combine::Joint,
                    other => bail!(
                        "{shown}: combine `{other}` in {TRAINER_CONFIG_KEY} is not supported \
                         (sum or joint are)"
                    ),
                },
            },
            "attention" => PlanMixer::Attention { window: c.window },
            other => bail!(
                "{shown}: mixer `{other}` in {TRAINER_CONFIG_KEY} is not supported \
                 (latte, macchiato or attention are)"
            ),
        })
    }

    fn windowed(self) -> bool {
        self != PlanMixer::Latte
    }
}

type Found<'d> = BTreeMap<(Option<u64>, Role), (String, TensorView<'d>)>;

pub fn convert(args: &ConvertArgs) -> Result<()> {
    let shown = args.input.display().to_string();
    check_output_path(&args.input, &args.output)?;
    let input = Mapped::open(&args.input)?;
    let not_st =
        |e: safetensors::SafeTensorError| anyhow!("{shown} is not a valid safetensors file: {e}");
    let (_, header) = SafeTensors::read_metadata(&input).map_err(not_st)?;
    let st = SafeTensors::deserialize(&input).map_err(not_st)?;
    if let Some(meta) = header.metadata().as_ref() {
        if meta.contains_key(classifier::CLASSIFIER_CONFIG_KEY) {
            return classifier::convert(args, &st, meta, &shown);
        }
    }
    let mut tensors = st.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    ensure!(!tensors.is_empty(), "{shown} holds no tensors");

    let scheme = Scheme::detect(tensors.iter().map(|(n, _)| n.as_str())).ok_or_else(|| {
        let some: Vec<&str> = tensors.iter().take(5).map(|(n, _)| n.as_str()).collect();
        anyhow!(
            "{shown}: unrecognised tensor names (first: {}); expected the reference trainer's \
             names (tok_emb.weight, blocks.N.*) or the official Flax tree (Encoder_0/...)",
            some.join(", ")
        )
    })?;

    let trainer_config = match scheme {
        Scheme::Trainer => Some(read_trainer_config(header.metadata().as_ref(), &shown)?),
        Scheme::Flax => None,
    };

    let gated = trainer_config.as_ref().is_some_and(|c| c.latent_decay);
    let mixer = match &trainer_config {
        Some(c) => PlanMixer::from_trainer(c, &shown)?,
        None => PlanMixer::Latte,
    };
    let windowed = mixer.windowed();

    // Map every checkpoint name to a parameter; collect the strangers.
    let mut found: Found = BTreeMap::new();
    let mut unknown = Vec::new();
    let mut skipped = Vec::new();
    for (name, view) in tensors {
        if scheme.skipped(&name) {
            skipped.push(name);
            continue;
        }
        match scheme.parse(&name) {
            Some(key) => {
                if let Some((other, _)) = found.get(&key) {
                    bail!(
                        "{shown}: `{other}` and `{name}` are the same parameter; keep one of them"
                    );
                }
                found.insert(key, (name, view));
            }
            None => unknown.push(name),
        }
    }
    let n_layers = match &trainer_config {
        Some(c) => c.n_layers,
        None => found
            .keys()
            .filter_map(|(l, _)| l.map(|i| i + 1))
            .max()
            .unwrap_or(0),
    };
    ensure!(
        n_layers > 0,
        "{shown} has no transformer blocks ({} scheme)",
        scheme
    );
    let max = max_layers(gated, windowed);
    ensure!(
        n_layers <= max,
        "{shown}: {n_layers} layers is more than a model file can hold ({max})"
    );
    // Blocks past the configured count are not part of the model.
    let extra: Vec<_> = found
        .keys()
        .filter(|(l, _)| l.is_some_and(|i| i >= n_layers))
        .copied()
        .collect();
    for key in extra {
        if let Some((name, _)) = found.remove(&key) {
            unknown.push(format!("{name} (the configuration has {n_layers} layers)"));
        }
    }
    check_decay(&found, &skipped, scheme, n_layers, gated, &shown)?;
    if !windowed {
        // Window tensors in a model without a window are strangers.
        let strays: Vec<_> = found
            .keys()
            .filter(|(_, r)| WINDOW_ROLES.contains(r))
            .copied()
            .collect();
        for key in strays {
            if let Some((name, _)) = found.remove(&key) {
                unknown.push(format!(
                    "{name} (a window tensor, but the configuration has no \"window\")"
                ));
            }
        }
    }
    if matches!(mixer, PlanMixer::Attention { .. }) {
        // An attention model has no Latte projections.
        let strays: Vec<_> = found
            .keys()
            .filter(|(_, r)| matches!(r, Role::Q | Role::K | Role::V))
            .copied()
            .collect();
        for key in strays {
            if let Some((name, _)) = found.remove(&key) {
                unknown.push(format!("{name} (a Latte tensor in an attention model)"));
            }
        }
    }
    let order = file_order(n_layers, gated, mixer);
    let missing: Vec<String> = order
        .iter()
        .filter(|k| !found.contains_key(k))
        .map(|&(l, r)| scheme.source_name(l, r))
        .collect();
    if !unknown.is_empty() || !missing.is_empty() {
        let mut msg = format!("{shown} does not match the {scheme} layout:");
        if !unknown.is_empty() {
            msg += &format!(
                "\n  unknown tensors ({}): {}",
                unknown.len(),
                some(&unknown)
            );
        }
        if !missing.is_empty() {
            msg += &format!(
                "\n  missing tensors ({}): {}",
                missing.len(),
                some(&missing)
            );
        }
        bail!(msg);
    }

    let plan = match trainer_config {
        Some(c) => plan_from_trainer(&c, args, &shown)?,
        None => plan_from_flax(&found, args, n_layers)?,
    };
    validate_plan(&plan)?;
    check_tensors(&found, scheme, &plan.hp, &shown)?;
    let policy = Policy::new(args.dtype, &args.tensor_type)?;
    let named: Vec<(String, Role)> = order
        .iter()
        .map(|&(layer, role)| (role.gguf_name(layer), role))
        .collect();
    let types = policy
        .plan(&named, &plan.hp)
        .with_context(|| format!("{shown}: --dtype {}", policy.main))?;

    let mut w = GgufWriter::new();
    let stored_name = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(TRAINER_NAME_KEY));
    let name = match (&args.name, stored_name) {
        (Some(n), _) | (None, Some(n)) => n.clone(),
        (None, None) => args
            .input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    add_metadata(&mut w, &plan, &name)?;

    let bar = ProgressBar::new(order.len() as u64);
    if let Ok(style) = ProgressStyle::with_template("converting [{bar:30}] {pos}/{len} {wide_msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    for (&(layer, role), &out_ty) in order.iter().zip(&types) {
        let (src_name, view) = found
            .get(&(layer, role))
            .ok_or_else(|| anyhow!("internal: {role:?} vanished"))?;
        let gguf_name = role.gguf_name(layer);
        bar.set_message(gguf_name.clone());
        let (ne, ty, data) = convert_tensor(view, scheme, role, out_ty)
            .with_context(|| format!("{shown}: tensor `{src_name}` ({gguf_name})"))?;
        w.add_tensor(gguf_name, &ne, ty, data)?;
        bar.inc(1);
    }
    bar.finish_and_clear();

    write_atomically(&w, &args.output)?;
    let hp = plan.hp;
    let counts = type_counts(&types);
    eprintln!(
        "wrote {}: {} tensors ({}), {} scheme, V={} D={} layers={} H={} L={} F={}, {}",
        args.output.display(),
        order.len(),
        counts,
        scheme,
        hp.vocab,
        hp.d_model,
        hp.n_layers,
        hp.n_heads,
        hp.n_latents,
        hp.d_ff,
        match plan.positions {
            Positions::Sinusoidal => "sinusoidal positions".to_string(),
            Positions::Vapor { base } => format!("VAPOR positions (base {base})"),
            Positions::None => "no positions".to_string(),
        } + if plan.latent_decay {
            ", decay gate (an extension)"
        } else {
            ""
        } + &match plan.mixer {
            PlanMixer::Latte => String::new(),
            PlanMixer::Macchiato { window, combine } =>
                format!(", Macchiato window {window} ({})", combine.name()),
            PlanMixer::Attention { window: 0 } => ", full softmax attention".to_string(),
            PlanMixer::Attention { window } => format!(", softmax attention over {window} tokens"),
        }
    );
    Ok(())
}

/// `"13 f32, 14 q8_0"`: how many tensors of each type.
fn type_counts(types: &[TensorType]) -> String {
    let mut counts: BTreeMap<TensorType, usize> = BTreeMap::new();
    for &t in types {
        *counts.entry(t).or_default() += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(t, n)| format!("{n} {t}")).collect();
    counts.join(", ")
}

/// Comma-separated names, at most [`LISTED`] of them.
fn some(names: &[String]) -> String {
    let mut s = names
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LISTED {
        s += &format!(" and {} more", names.len() - LISTED);
    }
    s
}

fn check_output_path(input: &Path, output: &Path) -> Result<()> {
    if output.is_dir() {
        bail!(
            "the output {} is a directory; give a file name",
            output.display()
        );
    }
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize()) {
        ensure!(
            a != b,
            "the output {} is the input file; give another name",
            output.display()
        );
    }
    Ok(())
}

/// The decay gate's tensors agree with the configuration: with
/// `latent_decay` every block has its rates (`blocks.N.latte.decay`);
/// without it no block has them (nor the trained `decay_logit`).
fn check_decay(
    found: &Found,
    skipped: &[String],
    scheme: Scheme,
    n_layers: u64,
    gated: bool,
    shown: &str,
) -> Result<()> {
    if gated {
        let missing: Vec<String> = (0..n_layers)
            .filter(|&i| !found.contains_key(&(Some(i), Role::Decay)))
            .map(|i| scheme.source_name(Some(i), Role::Decay))
            .collect();
        ensure!(
            missing.is_empty(),
            "{shown}: its {TRAINER_CONFIG_KEY} says \"latent_decay\": true (the decay gate) but \
             the decay rates of {} of its {n_layers} layers are missing: {}; export the checkpoint \
             with the reference trainer's save_safetensors, which writes each layer's rates \
             (blocks.N.latte.decay) beside the trained decay_logit (only the rates are converted)",
            missing.len(),
            some(&missing)
        );
    } else {
        let mut present: Vec<String> = found
            .iter()
            .filter(|((_, role), _)| *role == Role::Decay)
            .map(|(_, (name, _))| name.clone())
            .collect();
        present.extend(
            skipped
                .iter()
                .filter(|n| n.ends_with(".decay_logit"))
                .cloned(),
        );
        ensure!(
            present.is_empty(),
            "{shown} holds decay-gate tensors ({}) but {}; a model without the gate has none \
             (export the checkpoint again, with \"latent_decay\": true in its configuration if \
             it was trained with the gate)",
            some(&present),
            match scheme {
                Scheme::Trainer =>
                    format!("its {TRAINER_CONFIG_KEY} does not say \"latent_decay\": true"),
                Scheme::Flax => "the official Flax model has no decay gate".to_string(),
            }
        );
    }
    Ok(())
}

/// Parameters in model-file order (FORMAT.md); with the decay gate each
/// block's `attn_decay` follows its `attn_output`.
fn file_order(n_layers: u64, gated: bool, mixer: PlanMixer) -> Vec<(Option<u64>, Role)> {
    let windowed = mixer.windowed();
    let attention = matches!(mixer, PlanMixer::Attention { .. });
    let mut v = vec![(None, Role::TokEmb)];
    for i in 0..n_layers {
        for &r in &LAYER_ROLES {
            if attention && matches!(r, Role::Q | Role::K | Role::V) {
                continue;
            }
            v.push((Some(i), r));
            if gated && r == DECAY_AFTER {
                v.push((Some(i), Role::Decay));
            }
            if windowed && r == DECAY_AFTER {
                v.extend(WINDOW_ROLES.map(|w| (Some(i), w)));
            }
        }
    }
    v.extend([Role::OutNormW, Role::OutNormB, Role::HeadW, Role::HeadB].map(|r| (None, r)));
    v
}

fn read_trainer_config(
    meta: Option<&std::collections::HashMap<String, String>>,
    shown: &str,
) -> Result<TrainerConfig> {
    let json = meta
        .and_then(|m| m.get(TRAINER_CONFIG_KEY))
        .ok_or_else(|| {
            anyhow!(
                "{shown}: the safetensors metadata has no `{TRAINER_CONFIG_KEY}` entry, which \
             reference-trainer checkpoints carry; export the checkpoint with the trainer again"
            )
        })?;
    serde_json::from_str(json).with_context(|| {
        format!("{shown}: `{TRAINER_CONFIG_KEY}` in the safetensors metadata is not valid")
    })
}

fn agree(
    flag: &str,
    given: Option<u64>,
    config_name: &str,
    config: u64,
    shown: &str,
) -> Result<()> {
    match given {
        Some(v) if v != config => bail!(
            "{flag} {v} disagrees with {config_name} = {config} in {shown}'s {TRAINER_CONFIG_KEY}; \
             leave {flag} out for trainer checkpoints"
        ),
        _ => Ok(()),
    }
}

fn plan_from_trainer(c: &TrainerConfig, args: &ConvertArgs, shown: &str) -> Result<Plan> {
    agree(
        "--heads",
        args.heads.map(u64::from),
        "n_heads",
        c.n_heads,
        shown,
    )?;
    agree(
        "--context-length",
        args.context_length.map(u64::from),
        "max_seq_len",
        c.max_seq_len,
        shown,
    )?;
    let positions = match c.pos_encoding.as_str() {
        "sinusoidal" => {
            ensure!(
                args.vapor_base.is_none(),
                "--vapor-base applies to VAPOR models; {shown} uses sinusoidal positions"
            );
            Positions::Sinusoidal
        }
        "vapor" => {
            let base = match (c.vapor_base, args.vapor_base) {
                (Some(a), Some(b)) if a != b => bail!(
                    "--vapor-base {b} disagrees with vapor_base = {a} in {shown}'s \
                     {TRAINER_CONFIG_KEY}; leave --vapor-base out"
                ),
                (Some(a), _) => a,
                (None, Some(b)) => b,
                (None, None) => DEFAULT_VAPOR_BASE,
            };
            Positions::Vapor { base }
        }
        "none" => {
            ensure!(
                args.vapor_base.is_none(),
                "--vapor-base applies to VAPOR models; {shown} uses no position encoding"
            );
            Positions::None
        }
        other => bail!(
            "{shown}: pos_encoding `{other}` in {TRAINER_CONFIG_KEY} is not supported \
             (sinusoidal, vapor or none are)"
        ),
    };
    ensure!(
        c.ln_eps.is_finite() && c.ln_eps > 0.0 && (c.ln_eps as f32) > 0.0,
        "{shown}: ln_eps = {} in {TRAINER_CONFIG_KEY} must be a positive number",
        c.ln_eps
    );
    Ok(Plan {
        hp: Hyper {
            vocab: c.vocab_size,
            d_model: c.d_model,
            n_layers: c.n_layers,
            n_heads: c.n_heads,
            n_latents: c.n_latents,
            d_ff: c.d_ff,
        },
        context_length: c.max_seq_len,
        ln_eps: c.ln_eps as f32,
        positions,
        latent_decay: c.latent_decay,
        mixer: PlanMixer::from_trainer(c, shown)?,
    })
}

/// Reads one dimension of a tensor that fixes a hyper-parameter.
fn dim_of(found: &Found, key: (Option<u64>, Role), expect: &str, axis: usize) -> Result<u64> {
    let (name, view) = found
        .get(&key)
        .ok_or_else(|| anyhow!("internal: {key:?} missing"))?;
    match view.shape() {
        s @ [_, _] => Ok(s[axis] as u64),
        s => bail!("tensor `{name}`: expected a matrix {expect}, found shape {s:?}"),
    }
}

fn plan_from_flax(found: &Found, args: &ConvertArgs, n_layers: u64) -> Result<Plan> {
    let n_heads = args.heads.ok_or_else(|| {
        anyhow!(
            "--heads is required for official Flax checkpoints: the Flax tree does not store \
             the number of heads; pass the H of the model's config (e.g. --heads 12)"
        )
    })?;
    ensure!(
        args.vapor_base.is_none(),
        "--vapor-base applies to VAPOR models; the official Flax model uses sinusoidal positions"
    );
    let vocab = dim_of(found, (None, Role::TokEmb), "[V, D]", 0)?;
    let d_model = dim_of(found, (None, Role::TokEmb), "[V, D]", 1)?;
    let n_latents = dim_of(found, (Some(0), Role::Q), "[D, L]", 1)?;
    let d_ff = dim_of(found, (Some(0), Role::UpW), "[D, F]", 1)?;
    Ok(Plan {
        hp: Hyper {
            vocab,
            d_model,
            n_layers,
            n_heads: u64::from(n_heads),
            n_latents,
            d_ff,
        },
        context_length: u64::from(args.context_length.unwrap_or(FLAX_DEFAULT_CONTEXT)),
        ln_eps: FLAX_LN_EPS,
        positions: Positions::Sinusoidal,
        latent_decay: false,
        mixer: PlanMixer::Latte,
    })
}

fn validate_plan(p: &Plan) -> Result<()> {
    let hp = &p.hp;
    for (what, v) in [
        ("vocabulary size V", hp.vocab),
        ("model width D", hp.d_model),
        ("layer count", hp.n_layers),
        ("head count H", hp.n_heads),
        ("latent count L", hp.n_latents),
        ("feed-forward width F", hp.d_ff),
        ("context length", p.context_length),
    ] {
        ensure!(v > 0, "the {what} is 0; it must be at least 1");
        ensure!(
            u32::try_from(v).is_ok(),
            "the {what} is {v}, larger than the file format's u32"
        );
    }
    let (d, h, l) = (hp.d_model, hp.n_heads, hp.n_latents);
    ensure!(
        d % h == 0,
        "D = {d} is not divisible by H = {h} heads; check --heads or the configuration"
    );
    ensure!(
        l % h == 0,
        "L = {l} latents are not divisible by H = {h} heads; check --heads or the configuration"
    );
    if let Positions::Vapor { base } = p.positions {
        let dh = d / h;
        ensure!(
            dh % 2 == 0,
            "VAPOR rotates value pairs, but the head width D/H = {dh} is odd"
        );
        ensure!(
            base.is_finite() && base > 0.0,
            "the VAPOR base must be a positive number, got {base}"
        );
    }
    Ok(())
}

fn check_tensors(found: &Found, scheme: Scheme, hp: &Hyper, shown: &str) -> Result<()> {
    let mut problems = Vec::new();
    for (&(_, role), (name, view)) in found {
        if !decode::supported(view.dtype()) {
            problems.push(format!(
                "`{name}`: dtype {:?} is not supported (F32, F16, BF16 and F64 are)",
                view.dtype()
            ));
        }
        let want = scheme.source_shape(role);
        let got: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
        if got != want.dims(hp) {
            problems.push(format!(
                "`{name}`: expected shape {}, found {got:?}",
                want.describe(hp)
            ));
        }
    }
    if !problems.is_empty() {
        bail!(
            "{shown}: {} tensor(s) do not fit the model (V={}, D={}, layers={}, H={}, L={}, F={}):\n  {}",
            problems.len(),
            hp.vocab,
            hp.d_model,
            hp.n_layers,
            hp.n_heads,
            hp.n_latents,
            hp.d_ff,
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// Converts one tensor to `out` (the policy's type for it): `(ne, type,
/// bytes)` for the model file.
fn convert_tensor<'d>(
    view: &TensorView<'d>,
    scheme: Scheme,
    role: Role,
    out: TensorType,
) -> Result<(Vec<u64>, GgmlType, Cow<'d, [u8]>)> {
    let shape = view.shape();
    let transposed = scheme.transposed(role);
    // File shape [rows, cols] or [n]; GGUF ne lists the innermost dimension first.
    let (rows, cols) = match (shape, transposed) {
        ([r, c], false) => (*r, *c),
        ([r, c], true) => (*c, *r),
        ([n], _) => (1, *n),
        _ => bail!("unexpected shape {shape:?}"),
    };
    let ne = if role.is_matrix() {
        vec![cols as u64, rows as u64]
    } else {
        vec![cols as u64]
    };
    ensure!(
        role.is_matrix() || out == TensorType::F32,
        "internal: vector stored as {out}"
    );
    let bad = |(i, v): (usize, f32)| {
        anyhow!("element {i} is {v}; the checkpoint holds non-finite weights")
    };

    // Decay rates forget the past; a negative one would amplify it.
    let negative_rate = |values: &mut dyn Iterator<Item = f32>| -> Result<()> {
        if role == Role::Decay || role == Role::WinSlope {
            if let Some((i, v)) = values.enumerate().find(|(_, v)| *v < 0.0) {
                bail!("element {i} is {v}; decay rates and window slopes must be >= 0");
            }
        }
        Ok(())
    };

    if view.dtype() == safetensors::Dtype::F32 && !transposed && out == TensorType::F32 {
        if let Some(hit) = decode::first_non_finite(decode::f32_le(view.data())) {
            return Err(bad(hit));
        }
        negative_rate(&mut decode::f32_le(view.data()))?;
        return Ok((ne, GgmlType::F32, Cow::Borrowed(view.data())));
    }
    let mut values = decode::to_f32(view.dtype(), view.data())?;
    if let Some(hit) = decode::first_non_finite(values.iter().copied()) {
        return Err(bad(hit));
    }
    negative_rate(&mut values.iter().copied())?;
    if transposed {
        values = decode::transpose(&values, shape[0], shape[1]);
    }
    // Rows are contiguous and whole blocks (checked by the policy), so the
    // blocks of the whole buffer are the blocks of each row.
    let data = out.encode(&values)?;
    Ok((ne, out.ggml(), Cow::Owned(data)))
}

fn add_metadata(w: &mut GgufWriter<'_>, p: &Plan, name: &str) -> Result<()> {
    let hp = &p.hp;
    let u = |v: u64| u32::try_from(v).map_err(|_| anyhow!("{v} does not fit in u32"));
    w.add_string("general.architecture", "latte")?;
    if !name.is_empty() {
        w.add_string("general.name", name)?;
    }
    w.add_u32("latte.vocab_size", u(hp.vocab)?)?;
    w.add_u32("latte.context_length", u(p.context_length)?)?;
    w.add_u32("latte.embedding_length", u(hp.d_model)?)?;
    w.add_u32("latte.block_count", u(hp.n_layers)?)?;
    w.add_u32("latte.feed_forward_length", u(hp.d_ff)?)?;
    w.add_u32("latte.attention.head_count", u(hp.n_heads)?)?;
    w.add_u32("latte.latent_count", u(hp.n_latents)?)?;
    w.add_f32("latte.attention.layer_norm_epsilon", p.ln_eps)?;
    match p.positions {
        Positions::Sinusoidal => w.add_string("latte.position_encoding", "sinusoidal")?,
        Positions::None => w.add_string("latte.position_encoding", "none")?,
        Positions::Vapor { base } => {
            w.add_string("latte.position_encoding", "vapor")?;
            w.add_f32_array(
                "latte.vapor.frequencies",
                vapor_frequencies(base, hp.d_model / hp.n_heads),
            )?;
        }
    }
    if p.latent_decay {
        w.add_bool("latte.latent_decay", true)?;
    }
    match p.mixer {
        PlanMixer::Latte => {}
        PlanMixer::Macchiato { window, combine } => {
            w.add_string("latte.mixer", "macchiato")?;
            w.add_u32("latte.window", u(window)?)?;
            w.add_string("latte.window_combine", combine.name())?;
        }
        PlanMixer::Attention { window } => {
            w.add_string("latte.mixer", "attention")?;
            w.add_u32("latte.window", u(window)?)?;
        }
    }
    if hp.vocab == 256 {
        w.add_string("tokenizer.ggml.model", "bytes")?;
    }
    Ok(())
}

/// `theta_i = base^(-2i/Dh)` for `i` in `0..Dh/2`, computed in f64.
fn vapor_frequencies(base: f64, d_head: u64) -> Vec<f32> {
    (0..d_head / 2)
        .map(|i| base.powf(-2.0 * i as f64 / d_head as f64) as f32)
        .collect()
}

/// Writes next to `out` and renames, so a failure never leaves a partial file.
fn write_atomically(w: &GgufWriter<'_>, out: &Path) -> Result<()> {
    let shown = out.display();
    let mut tmp_name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(format!(".partial-{}", std::process::id()));
    let tmp: PathBuf = out.with_file_name(tmp_name);
    let result = (|| -> Result<()> {
        let file =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        w.write_to(BufWriter::new(file))
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, out).with_context(|| format!("cannot move the result to {shown}"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vapor_schedule() {
        // base^(-2i/Dh) for Dh = 8: 1, base^-0.25, base^-0.5, base^-0.75.
        let f = vapor_frequencies(10_000.0, 8);
        let want = [1.0f32, 0.1, 0.01, 0.001];
        for (a, b) in f.iter().zip(want) {
            assert!((a - b).abs() <= 1e-7 * b.max(1.0), "{a} vs {b}");
        }
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn order_matches_format() {
        let o = file_order(2, false, PlanMixer::Latte);
        assert_eq!(o.len(), 1 + 2 * 12 + 4);
        let names: Vec<String> = o.iter().map(|&(l, r)| r.gguf_name(l)).collect();
        assert_eq!(names[0], "token_embd.weight");
        assert_eq!(names[1], "blk.0.attn_norm.weight");
        assert_eq!(names[13], "blk.1.attn_norm.weight");
        assert_eq!(names[28], "output.bias");
        let o = file_order(2, true, PlanMixer::Latte);
        assert_eq!(o.len(), 1 + 2 * 13 + 4);
        let names: Vec<String> = o.iter().map(|&(l, r)| r.gguf_name(l)).collect();
        assert_eq!(names[6], "blk.0.attn_output.weight");
        assert_eq!(names[7], "blk.0.attn_decay");
        assert_eq!(names[14], "blk.1.attn_norm.weight");
        assert_eq!(names[20], "blk.1.attn_decay");
        assert_eq!(names[30], "output.bias");
        assert_eq!(max_layers(false, false), 340);
        assert_eq!(max_layers(true, true), 240);
        assert_eq!(max_layers(true, false), 314);
    }
}
