//! End to end against the official fixture: the tiny LM of the spec, built
//! from its formulas with either naming scheme, converted, then run.

mod common;

use common::*;
use latte_gguf::{GgmlType, Gguf};

const TOLERANCE: f64 = 1e-5;

fn expected() -> (Vec<u32>, Vec<Vec<f64>>) {
    let lm = &fixture()["lm"];
    assert_eq!(lm["V"], 11);
    assert_eq!(lm["D"], 8);
    assert_eq!(lm["H"], 2);
    assert_eq!(lm["L"], 6);
    assert_eq!(lm["layers"], 2);
    let tokens = serde_json::from_value(lm["tokens"].clone()).expect("tokens");
    let logits = serde_json::from_value(lm["logits"].clone()).expect("logits");
    (tokens, logits)
}

/// Runs `latte logits --tokens` and compares every position with the fixture.
fn check_logits(model: &std::path::Path, tolerance: f64) {
    let (tokens, want) = expected();
    let list: Vec<String> = tokens.iter().map(u32::to_string).collect();
    let out = ok(&latte([
        os("logits"),
        os("-m"),
        os(&model),
        os("--tokens"),
        os(&list.join(",")),
    ]));
    let got: serde_json::Value = serde_json::from_str(&out).expect("logits JSON");
    let got_tokens: Vec<u32> = serde_json::from_value(got["tokens"].clone()).unwrap();
    assert_eq!(got_tokens, tokens);
    let got: Vec<Vec<f64>> = serde_json::from_value(got["logits"].clone()).unwrap();
    assert_eq!(got.len(), want.len());
    let mut worst = 0.0f64;
    for (t, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.len(), w.len(), "position {t}");
        for (a, b) in g.iter().zip(w) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(
        worst <= tolerance,
        "max |logit error| {worst:e} > {tolerance:e}"
    );
}

fn convert(input: &std::path::Path, output: &std::path::Path, extra: &[&str]) {
    let mut args: Vec<&std::ffi::OsStr> = vec![os("convert"), os(&input), os("-o"), os(&output)];
    args.extend(extra.iter().map(os));
    ok(&latte(args));
}

#[test]
fn flax_checkpoint_matches_official_logits() {
    let dir = TempDir::new("flax-fixture");
    let st = write_st(&dir, "tiny.safetensors", &flax_tiny_lm(), &[]);
    let model = dir.path("tiny.gguf");
    convert(&st, &model, &["--heads", "2"]);
    check_logits(&model, TOLERANCE);

    // The file follows FORMAT.md: metadata, names, row layout.
    let bytes = std::fs::read(&model).unwrap();
    let g = Gguf::parse(&bytes).expect("GGUF");
    assert_eq!(g.get_str("general.architecture"), Ok("latte"));
    assert_eq!(g.get_str("general.name"), Ok("tiny"));
    for (key, want) in [
        ("latte.vocab_size", 11),
        ("latte.context_length", 1024),
        ("latte.embedding_length", 8),
        ("latte.block_count", 2),
        ("latte.feed_forward_length", 32),
        ("latte.attention.head_count", 2),
        ("latte.latent_count", 6),
    ] {
        assert_eq!(g.get_u32(key), Ok(want), "{key}");
    }
    assert_eq!(g.get_f32("latte.attention.layer_norm_epsilon"), Ok(1e-6));
    assert_eq!(g.get_str("latte.position_encoding"), Ok("sinusoidal"));
    assert!(g.get("latte.vapor.frequencies").is_none());
    assert_eq!(g.tensor_count(), 5 + 2 * 12);
    let q = g.tensor("blk.1.attn_q.weight").expect("attn_q");
    assert_eq!(
        (q.ty, q.ne, q.rows(), q.cols()),
        (GgmlType::F32, [8, 6, 1, 1], 6, 8)
    );
    // Row r, column c of attn_q is Flax Wq[c][r] = 0.5 sin(1 + 0.5 + 0.37 c + 0.11 r).
    let at =
        |r: usize, c: usize| f32::from_le_bytes(q.data[4 * (r * 8 + c)..][..4].try_into().unwrap());
    for (r, c) in [(0, 0), (5, 7), (2, 3)] {
        let want = (0.5 * (1.5 + 0.37 * c as f64 + 0.11 * r as f64).sin()) as f32;
        assert_eq!(at(r, c), want, "attn_q[{r}][{c}]");
    }
    assert_eq!(g.tensor("output.weight").unwrap().ne, [8, 11, 1, 1]);
    assert_eq!(g.tensor("output.bias").unwrap().ne, [11, 1, 1, 1]);
}

#[test]
fn trainer_checkpoint_matches_official_logits() {
    let dir = TempDir::new("trainer-fixture");
    let config = trainer_config("sinusoidal");
    let st = write_st(
        &dir,
        "tiny.safetensors",
        &trainer_tiny_lm(),
        &[("latte.config", &config)],
    );
    let model = dir.path("tiny.gguf");
    convert(&st, &model, &["--name", "tiny-lm"]);
    check_logits(&model, TOLERANCE);
    let bytes = std::fs::read(&model).unwrap();
    let g = Gguf::parse(&bytes).expect("GGUF");
    assert_eq!(g.get_u32("latte.context_length"), Ok(16));
    assert_eq!(g.get_str("general.name"), Ok("tiny-lm"));

    // Both schemes give the same tensors.
    let flax = write_st(&dir, "flax.safetensors", &flax_tiny_lm(), &[]);
    let flax_model = dir.path("flax.gguf");
    convert(
        &flax,
        &flax_model,
        &[
            "--heads",
            "2",
            "--context-length",
            "16",
            "--name",
            "tiny-lm",
        ],
    );
    assert_eq!(
        std::fs::read(&flax_model).unwrap(),
        bytes,
        "Flax and trainer conversions differ"
    );
}

#[test]
fn f16_matrices_stay_close() {
    let dir = TempDir::new("f16-fixture");
    let st = write_st(&dir, "tiny.safetensors", &flax_tiny_lm(), &[]);
    let model = dir.path("tiny16.gguf");
    convert(&st, &model, &["--heads", "2", "--dtype", "f16"]);
    let bytes = std::fs::read(&model).unwrap();
    let g = Gguf::parse(&bytes).expect("GGUF");
    for t in g.tensors() {
        let want = if t.n_dims == 2 {
            GgmlType::F16
        } else {
            GgmlType::F32
        };
        assert_eq!(t.ty, want, "{}", t.name);
    }
    // Half precision weights (relative rounding 2^-11) move these logits by well under 1e-2.
    check_logits(&model, 1e-2);
}

#[test]
fn greedy_run_continues_with_the_official_argmax() {
    let dir = TempDir::new("run-fixture");
    let st = write_st(&dir, "tiny.safetensors", &flax_tiny_lm(), &[]);
    let model = dir.path("tiny.gguf");
    convert(&st, &model, &["--heads", "2"]);
    let (tokens, want) = expected();
    let last = want.last().unwrap();
    let argmax = (0..last.len())
        .max_by(|&a, &b| last[a].total_cmp(&last[b]))
        .unwrap() as u8;
    // The fixture's tokens are all below 11, so they are the prompt's bytes (valid UTF-8).
    let prompt: String = tokens.iter().map(|&t| char::from(t as u8)).collect();
    let o = latte([
        os("run"),
        os("-m"),
        os(&model),
        os("-p"),
        os(&prompt),
        os("--temp"),
        os("0"),
        os("-n"),
        os("1"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut expect = prompt.into_bytes();
    expect.push(argmax);
    assert_eq!(o.stdout, expect);
    assert!(stderr(&o).contains("tokens/s"), "{}", stderr(&o));
}

#[test]
fn sampled_runs_are_reproducible() {
    let dir = TempDir::new("seed-fixture");
    let st = write_st(&dir, "tiny.safetensors", &flax_tiny_lm(), &[]);
    let model = dir.path("tiny.gguf");
    convert(&st, &model, &["--heads", "2"]);
    let run = |seed: &str| {
        let o = latte([
            os("run"),
            os("-m"),
            os(&model),
            os("-p"),
            os("\u{3}\u{1}\u{4}"),
            os("-n"),
            os("40"),
            os("--temp"),
            os("1.5"),
            os("--top-k"),
            os("0"),
            os("--top-p"),
            os("1"),
            os("--seed"),
            os(seed),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        o.stdout
    };
    let a = run("7");
    assert_eq!(a.len(), 3 + 40);
    assert_eq!(&a[..3], &[3, 1, 4]);
    assert!(a.iter().all(|&b| b < 11));
    assert_eq!(a, run("7"));
    assert_ne!(a, run("8"), "different seeds gave the same 40 tokens");
}

#[test]
fn inspect_reports_header_tensors_and_memory() {
    let dir = TempDir::new("inspect-fixture");
    let st = write_st(&dir, "tiny.safetensors", &flax_tiny_lm(), &[]);
    let model = dir.path("tiny.gguf");
    convert(&st, &model, &["--heads", "2"]);
    let out = ok(&latte([os("inspect"), os(&model)]));
    for needle in [
        "version 3",
        "alignment 32",
        "latte.latent_count",
        "blk.1.ffn_down.weight",
        "[32, 8]",
        "tensors   29",
        "state ",
        "scratch ",
    ] {
        assert!(
            out.contains(needle),
            "inspect output lacks `{needle}`:\n{out}"
        );
    }
    // State per layer: S (L x Dh) + n (L) + m (L) = 6*4 + 6 + 6 = 36 floats, 2 layers.
    assert!(out.contains("state 72 f32 = 288 bytes"), "{out}");
}

#[test]
fn vapor_trainer_checkpoint_stores_its_frequencies() {
    let dir = TempDir::new("vapor");
    let config = trainer_config("vapor");
    let meta = [
        ("latte.config", config.as_str()),
        ("latte.name", "vapor-tiny"),
    ];
    let st = write_st(&dir, "v.safetensors", &trainer_tiny_lm(), &meta);
    let model = dir.path("v.gguf");
    convert(&st, &model, &[]);
    let bytes = std::fs::read(&model).unwrap();
    let g = Gguf::parse(&bytes).expect("GGUF");
    assert_eq!(g.get_str("latte.position_encoding"), Ok("vapor"));
    assert_eq!(g.get_str("general.name"), Ok("vapor-tiny"));
    let f: Vec<f32> = g
        .get_f32_array("latte.vapor.frequencies")
        .unwrap()
        .iter()
        .collect();
    // Dh = 4: theta_i = 10000^(-2i/4) = 1, 0.01.
    assert_eq!(f, [1.0, 0.01]);
    // The runtime accepts it and produces finite logits.
    let out = ok(&latte([
        os("logits"),
        os("-m"),
        os(&model),
        os("--tokens"),
        os("1,2,3"),
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows: Vec<Vec<f64>> = serde_json::from_value(v["logits"].clone()).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().flatten().all(|x| x.is_finite()));
}
