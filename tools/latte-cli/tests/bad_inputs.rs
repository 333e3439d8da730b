//! Bad inputs end with a non-zero exit status and a message, never a panic.

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use common::*;

/// A converted tiny model for the run/logits flag tests.
fn tiny_model(dir: &TempDir) -> std::path::PathBuf {
    let st = write_st(dir, "tiny.safetensors", &flax_tiny_lm(), &[]);
    let model = dir.path("tiny.gguf");
    ok(&latte([
        os("convert"),
        os(&st),
        os("-o"),
        os(&model),
        os("--heads"),
        os("2"),
    ]));
    model
}

fn convert_err(
    dir: &TempDir,
    tensors: &[Tensor],
    meta: &[(&str, &str)],
    extra: &[&str],
    needles: &[&str],
) -> String {
    let st = write_st(dir, "in.safetensors", tensors, meta);
    let out = dir.path("out.gguf");
    let mut args = vec![os("convert"), os(&st), os("-o"), os(&out)];
    args.extend(extra.iter().map(os));
    let err = fails(&latte(args), needles);
    assert!(!out.exists(), "a failed conversion left {}", out.display());
    err
}

#[test]
fn convert_missing_file() {
    let dir = TempDir::new("missing");
    let input = dir.path("nope.safetensors");
    fails(
        &latte([os("convert"), os(&input), os("-o"), os(&dir.path("o.gguf"))]),
        &["nope.safetensors", "cannot read"],
    );
}

#[test]
fn convert_directory() {
    let dir = TempDir::new("dir");
    fails(
        &latte([
            os("convert"),
            os(dir.dir()),
            os("-o"),
            os(&dir.path("o.gguf")),
        ]),
        &["is a directory"],
    );
    let st = write_st(&dir, "a.safetensors", &flax_tiny_lm(), &[]);
    fails(
        &latte([os("convert"), os(&st), os("-o"), os(dir.dir())]),
        &["is a directory"],
    );
}

#[test]
fn convert_foreign_and_truncated_files() {
    let dir = TempDir::new("foreign");
    for (name, bytes) in [
        ("empty.safetensors", Vec::new()),
        (
            "text.safetensors",
            b"hello, this is not a checkpoint at all".to_vec(),
        ),
        ("huge-header.safetensors", u64::MAX.to_le_bytes().to_vec()),
    ] {
        let p = dir.path(name);
        std::fs::write(&p, bytes).unwrap();
        fails(
            &latte([os("convert"), os(&p), os("-o"), os(&dir.path("o.gguf"))]),
            &[name, "not a valid safetensors"],
        );
    }
    let good = safetensors(&flax_tiny_lm(), &[]);
    let p = dir.path("cut.safetensors");
    std::fs::write(&p, &good[..good.len() - 7]).unwrap();
    fails(
        &latte([os("convert"), os(&p), os("-o"), os(&dir.path("o.gguf"))]),
        &["not a valid safetensors"],
    );
    // A GGUF file is not a checkpoint either.
    let model = tiny_model(&dir);
    fails(
        &latte([
            os("convert"),
            os(&model),
            os("-o"),
            os(&dir.path("o2.gguf")),
        ]),
        &["not a valid safetensors"],
    );
}

#[test]
fn convert_unrecognised_names() {
    let dir = TempDir::new("unrecognised");
    let t = vec![Tensor::f32("model.embed_tokens.weight", &[2, 2], &[0.0; 4])];
    convert_err(
        &dir,
        &t,
        &[],
        &["--heads", "2"],
        &["unrecognised tensor names", "model.embed_tokens.weight"],
    );
}

#[test]
fn convert_unknown_tensor_names_are_listed() {
    let dir = TempDir::new("unknown");
    let mut t = flax_tiny_lm();
    t.push(Tensor::f32(
        "Encoder_0/TransBlock_0/Dense_2/kernel",
        &[2],
        &[0.0; 2],
    ));
    t.push(Tensor::f32("Encoder_0/Extra/scale", &[2], &[0.0; 2]));
    convert_err(
        &dir,
        &t,
        &[],
        &["--heads", "2"],
        &[
            "unknown tensors (2)",
            "Encoder_0/TransBlock_0/Dense_2/kernel",
            "Encoder_0/Extra/scale",
        ],
    );
    // Trainer blocks beyond the configured layer count are unknown too.
    let mut t = trainer_tiny_lm();
    t.push(Tensor::f32("blocks.2.ln1.weight", &[8], &[1.0; 8]));
    let config = trainer_config("sinusoidal");
    convert_err(
        &dir,
        &t,
        &[("latte.config", &config)],
        &[],
        &["blocks.2.ln1.weight", "2 layers"],
    );
}

#[test]
fn convert_absurd_layer_counts() {
    let dir = TempDir::new("layers");
    let mut t = flax_tiny_lm();
    t.push(Tensor::f32(
        "Encoder_0/TransBlock_4000000000/Dense_0/bias",
        &[32],
        &[0.0; 32],
    ));
    convert_err(
        &dir,
        &t,
        &[],
        &["--heads", "2"],
        &["4000000001 layers is more than"],
    );
    let config = trainer_config("sinusoidal").replace("\"n_layers\":2", "\"n_layers\":1000000");
    convert_err(
        &dir,
        &trainer_tiny_lm(),
        &[("latte.config", &config)],
        &[],
        &["1000000 layers"],
    );
}

#[test]
fn convert_missing_tensors_are_listed() {
    let dir = TempDir::new("missing-tensors");
    let t: Vec<Tensor> = trainer_tiny_lm()
        .into_iter()
        .filter(|t| t.name != "blocks.1.latte.wk.weight" && t.name != "head.bias")
        .collect();
    let config = trainer_config("sinusoidal");
    convert_err(
        &dir,
        &t,
        &[("latte.config", &config)],
        &[],
        &[
            "missing tensors (2)",
            "blocks.1.latte.wk.weight",
            "head.bias",
        ],
    );
    // Flax: a whole block's Latte layer missing.
    let t: Vec<Tensor> = flax_tiny_lm()
        .into_iter()
        .filter(|t| !t.name.contains("TransBlock_1/StableScanLatte_0"))
        .collect();
    convert_err(
        &dir,
        &t,
        &[],
        &["--heads", "2"],
        &[
            "missing tensors (4)",
            "Encoder_0/TransBlock_1/StableScanLatte_0/o_proj",
        ],
    );
}

#[test]
fn convert_wrong_shapes_name_the_tensor() {
    let dir = TempDir::new("shapes");
    // Trainer Wq stored as (D, L) instead of nn.Linear's (L, D).
    let mut t = trainer_tiny_lm();
    let wq = t
        .iter_mut()
        .find(|t| t.name == "blocks.0.latte.wq.weight")
        .unwrap();
    wq.shape = vec![8, 6];
    let config = trainer_config("sinusoidal");
    convert_err(
        &dir,
        &t,
        &[("latte.config", &config)],
        &[],
        &[
            "blocks.0.latte.wq.weight",
            "expected shape [L=6, D=8], found [8, 6]",
        ],
    );
    // The config disagrees with the tensors.
    let config = trainer_config("sinusoidal").replace("\"d_ff\":32", "\"d_ff\":16");
    convert_err(
        &dir,
        &trainer_tiny_lm(),
        &[("latte.config", &config)],
        &[],
        &["blocks.0.mlp.fc1.weight", "[F=16, D=8]"],
    );
    // Flax: a block whose o_proj is not D x D.
    let mut t = flax_tiny_lm();
    let o = t
        .iter_mut()
        .find(|t| t.name == "Encoder_0/TransBlock_1/StableScanLatte_0/o_proj")
        .unwrap();
    *o = Tensor::f32(o.name.clone(), &[8, 4], &[0.0; 32]);
    convert_err(
        &dir,
        &t,
        &[],
        &["--heads", "2"],
        &[
            "Encoder_0/TransBlock_1/StableScanLatte_0/o_proj",
            "[D=8, D=8], found [8, 4]",
        ],
    );
}

#[test]
fn convert_flax_needs_heads() {
    let dir = TempDir::new("heads");
    convert_err(&dir, &flax_tiny_lm(), &[], &[], &["--heads is required"]);
    convert_err(
        &dir,
        &flax_tiny_lm(),
        &[],
        &["--heads", "3"],
        &["not divisible by H = 3"],
    );
    convert_err(
        &dir,
        &flax_tiny_lm(),
        &[],
        &["--heads", "0"],
        &["head count H is 0"],
    );
    convert_err(
        &dir,
        &flax_tiny_lm(),
        &[],
        &["--heads", "2", "--vapor-base", "500"],
        &["--vapor-base"],
    );
}

#[test]
fn convert_trainer_config_problems() {
    let dir = TempDir::new("config");
    convert_err(&dir, &trainer_tiny_lm(), &[], &[], &["latte.config"]);
    convert_err(
        &dir,
        &trainer_tiny_lm(),
        &[("latte.config", "{not json")],
        &[],
        &["latte.config", "not valid"],
    );
    let config = trainer_config("rope");
    convert_err(
        &dir,
        &trainer_tiny_lm(),
        &[("latte.config", &config)],
        &[],
        &["pos_encoding `rope`"],
    );
    let config = trainer_config("sinusoidal");
    convert_err(
        &dir,
        &trainer_tiny_lm(),
        &[("latte.config", &config)],
        &["--heads", "4"],
        &["--heads 4 disagrees", "n_heads = 2"],
    );
    // VAPOR needs an even head width: D = 8 with 8 heads (and L = 8) gives Dh = 1.
    let config = trainer_config("vapor")
        .replace("\"n_heads\":2", "\"n_heads\":8")
        .replace("\"n_latents\":6", "\"n_latents\":8");
    let mut t = trainer_tiny_lm();
    for w in t
        .iter_mut()
        .filter(|t| t.name.ends_with("latte.wq.weight") || t.name.ends_with("latte.wk.weight"))
    {
        *w = Tensor::f32(w.name.clone(), &[8, 8], &[0.1; 64]);
    }
    convert_err(
        &dir,
        &t,
        &[("latte.config", &config)],
        &[],
        &["head width D/H = 1 is odd"],
    );
}

#[test]
fn convert_bad_values_and_dtypes() {
    let dir = TempDir::new("values");
    let mut t = flax_tiny_lm();
    let e = t.iter_mut().find(|t| t.name == "Dense_0/bias").unwrap();
    let mut v = e.values();
    v[3] = f32::NAN;
    *e = Tensor::f32(e.name.clone(), &[11], &v);
    convert_err(
        &dir,
        &t,
        &[],
        &["--heads", "2"],
        &["Dense_0/bias", "element 3", "non-finite"],
    );

    let mut t = flax_tiny_lm();
    let e = t.iter_mut().find(|t| t.name == "LayerNorm_0/bias").unwrap();
    e.dtype = "I32";
    convert_err(
        &dir,
        &t,
        &[],
        &["--heads", "2"],
        &["LayerNorm_0/bias", "dtype I32 is not supported"],
    );

    // Too large for f16.
    let mut t = flax_tiny_lm();
    let e = t.iter_mut().find(|t| t.name == "Dense_0/kernel").unwrap();
    let mut v = e.values();
    v[0] = 1e6;
    *e = Tensor::f32(e.name.clone(), &[8, 11], &v);
    convert_err(
        &dir,
        &t,
        &[],
        &["--heads", "2", "--dtype", "f16"],
        &["Dense_0/kernel", "f16 range"],
    );
    convert_err(
        &dir,
        &flax_tiny_lm(),
        &[],
        &["--heads", "2", "--dtype", "q4"],
        &["q4"],
    );
}

#[test]
fn inspect_bad_files() {
    let dir = TempDir::new("inspect");
    fails(
        &latte([os("inspect"), os(&dir.path("absent.gguf"))]),
        &["absent.gguf", "cannot read"],
    );
    fails(&latte([os("inspect"), os(dir.dir())]), &["is a directory"]);
    let empty = dir.path("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    fails(
        &latte([os("inspect"), os(&empty)]),
        &["empty.gguf", "truncated"],
    );
    let magic = dir.path("magic.gguf");
    std::fs::write(&magic, b"GGMLxxxxxxxxxxxxxxxxxxxxxxxxxxxx").unwrap();
    fails(
        &latte([os("inspect"), os(&magic)]),
        &["magic.gguf", "not a GGUF file"],
    );
    // A real model cut short.
    let model = tiny_model(&dir);
    let bytes = std::fs::read(&model).unwrap();
    let cut = dir.path("cut.gguf");
    for n in [10, 100, bytes.len() - 64] {
        std::fs::write(&cut, &bytes[..n]).unwrap();
        fails(
            &latte([os("inspect"), os(&cut)]),
            &["cut.gguf", "truncated"],
        );
    }
    // A safetensors file given to inspect.
    let st = write_st(&dir, "x.safetensors", &flax_tiny_lm(), &[]);
    fails(&latte([os("inspect"), os(&st)]), &["not a GGUF file"]);
}

#[test]
fn run_and_logits_bad_model_files() {
    let dir = TempDir::new("bad-models");
    let st = write_st(&dir, "x.safetensors", &flax_tiny_lm(), &[]);
    fails(
        &latte([os("run"), os("-m"), os(&st), os("-p"), os("hi")]),
        &["x.safetensors", "cannot load"],
    );
    fails(
        &latte([
            os("logits"),
            os("-m"),
            os(&dir.path("none.gguf")),
            os("-p"),
            os("hi"),
        ]),
        &["none.gguf"],
    );
}

#[test]
fn run_rejects_bad_prompts() {
    let dir = TempDir::new("prompts");
    let model = tiny_model(&dir);
    let bad = OsString::from_vec(vec![0x66, 0xff, 0x6f]);
    fails(
        &latte([os("run"), os("-m"), os(&model), os("-p"), bad.as_os_str()]),
        &["not valid UTF-8"],
    );
    fails(
        &latte([
            os("logits"),
            os("-m"),
            os(&model),
            os("-p"),
            bad.as_os_str(),
        ]),
        &["not valid UTF-8"],
    );
    fails(
        &latte([os("run"), os("-m"), os(&model), os("-p"), os("")]),
        &["prompt is empty"],
    );
    // Byte 'h' = 104 is outside the tiny model's 11-token vocabulary.
    fails(
        &latte([os("run"), os("-m"), os(&model), os("-p"), os("hi")]),
        &["prompt byte 104", "11 tokens"],
    );
}

#[test]
fn run_rejects_bad_flag_values() {
    let dir = TempDir::new("flags");
    let model = tiny_model(&dir);
    for (flag, value, needle) in [
        ("--temp", "nan", "temperature"),
        ("--temp", "-1", "temperature"),
        ("--temp", "inf", "temperature"),
        ("--temp", "hot", "not a number"),
        ("--top-p", "0", "top-p"),
        ("--top-p", "1.5", "top-p"),
        ("--top-p", "NaN", "top-p"),
        ("--repeat-penalty", "0", "repeat penalty"),
        ("--repeat-penalty", "-2", "repeat penalty"),
        ("--repeat-last-n", "1000", "repeat-last-n"),
        ("--repeat-last-n", "-1", "repeat-last-n"),
        ("-n", "-5", "whole number"),
        ("--top-k", "-1", "whole number"),
        ("--seed", "-3", "seed"),
    ] {
        let o = latte([
            os("run"),
            os("-m"),
            os(&model),
            os("-p"),
            os("\u{1}"),
            os(flag),
            os(value),
        ]);
        fails(&o, &[needle, value]);
    }
}

#[test]
fn logits_rejects_bad_tokens() {
    let dir = TempDir::new("tokens");
    let model = tiny_model(&dir);
    fails(
        &latte([
            os("logits"),
            os("-m"),
            os(&model),
            os("--tokens"),
            os("3,11"),
        ]),
        &["token id 11", "position 1", "11 tokens"],
    );
    fails(
        &latte([
            os("logits"),
            os("-m"),
            os(&model),
            os("--tokens"),
            os("3,x"),
        ]),
        &["`x` is not a token id"],
    );
    fails(
        &latte([os("logits"), os("-m"), os(&model), os("--tokens"), os("")]),
        &["--tokens is empty"],
    );
    fails(&latte([os("logits"), os("-m"), os(&model)]), &["--tokens"]);
    fails(
        &latte([
            os("logits"),
            os("-m"),
            os(&model),
            os("-p"),
            os("\u{1}"),
            os("--tokens"),
            os("1"),
        ]),
        &["cannot be used with"],
    );
}
