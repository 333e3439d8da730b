//! `latte convert --dtype q8_0|q4_0` and `--tensor-type`: the per-tensor
//! policy, clear errors for rows that are not whole blocks, the stored
//! blocks, and the quantized models running through `logits` and `run`.

mod common;

use common::*;
use latte_gguf::{GgmlType, Gguf};

/// A Flax-named checkpoint with V=40, D=64, H=2, L=32, F=128, 2 layers:
/// every row length a multiple of 32. Weights from a fixed formula.
fn flax_wide() -> Vec<Tensor> {
    let (v, d, l, f) = (40usize, 64usize, 32usize, 128usize);
    let mut seed = 0x1234_5678u64;
    let mut rnd = |n: usize, scale: f32| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    };
    let s = 1.0 / (d as f32).sqrt();
    let mut t = vec![Tensor::f32(
        "Encoder_0/Embed_0/embedding",
        &[v, d],
        &rnd(v * d, 1.0),
    )];
    for li in 0..2 {
        let p = format!("Encoder_0/TransBlock_{li}");
        for n in ["LayerNorm_0", "LayerNorm_1"] {
            let w: Vec<f32> = rnd(d, 0.1).iter().map(|x| 1.0 + x).collect();
            t.push(Tensor::f32(format!("{p}/{n}/scale"), &[d], &w));
            t.push(Tensor::f32(format!("{p}/{n}/bias"), &[d], &rnd(d, 0.05)));
        }
        let a = format!("{p}/StableScanLatte_0");
        t.push(Tensor::f32(
            format!("{a}/Wq"),
            &[d, l],
            &rnd(d * l, 2.0 * s),
        ));
        t.push(Tensor::f32(
            format!("{a}/Wk"),
            &[d, l],
            &rnd(d * l, 2.0 * s),
        ));
        t.push(Tensor::f32(format!("{a}/Wv"), &[d, d], &rnd(d * d, s)));
        t.push(Tensor::f32(format!("{a}/o_proj"), &[d, d], &rnd(d * d, s)));
        t.push(Tensor::f32(
            format!("{p}/Dense_0/kernel"),
            &[d, f],
            &rnd(d * f, s),
        ));
        t.push(Tensor::f32(
            format!("{p}/Dense_0/bias"),
            &[f],
            &rnd(f, 0.05),
        ));
        t.push(Tensor::f32(
            format!("{p}/Dense_1/kernel"),
            &[f, d],
            &rnd(f * d, 0.09),
        ));
        t.push(Tensor::f32(
            format!("{p}/Dense_1/bias"),
            &[d],
            &rnd(d, 0.05),
        ));
    }
    let w: Vec<f32> = rnd(d, 0.1).iter().map(|x| 1.0 + x).collect();
    t.push(Tensor::f32("LayerNorm_0/scale", &[d], &w));
    t.push(Tensor::f32("LayerNorm_0/bias", &[d], &rnd(d, 0.05)));
    t.push(Tensor::f32("Dense_0/kernel", &[d, v], &rnd(d * v, s)));
    t.push(Tensor::f32("Dense_0/bias", &[v], &rnd(v, 0.05)));
    t
}

/// Asserts success and returns stderr (convert reports there).
#[track_caller]
fn ok_stderr(o: &std::process::Output) -> String {
    ok(o);
    stderr(o)
}

fn write_checkpoint(dir: &TempDir, name: &str, tensors: &[Tensor]) -> std::path::PathBuf {
    let p = dir.path(name);
    std::fs::write(&p, safetensors(tensors, &[])).unwrap();
    p
}

fn convert(
    input: &std::path::Path,
    output: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![os("convert"), os(&input), os("-o"), os(&output)];
    args.extend(["--heads", "2"].iter().map(os));
    args.extend(extra.iter().map(os));
    latte(args)
}

/// `(name, type)` of every tensor of a model file, in file order.
fn types(path: &std::path::Path) -> Vec<(String, GgmlType)> {
    let bytes = std::fs::read(path).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    g.tensors().map(|t| (t.name.to_string(), t.ty)).collect()
}

fn type_of(list: &[(String, GgmlType)], name: &str) -> GgmlType {
    list.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
        .1
}

#[test]
fn default_policy_per_dtype() {
    let dir = TempDir::new("quant-policy");
    let st = write_checkpoint(&dir, "wide.safetensors", &flax_wide());
    for (dtype, embd, body) in [
        ("q8_0", GgmlType::Q8_0, GgmlType::Q8_0),
        ("q4_0", GgmlType::Q8_0, GgmlType::Q4_0),
        ("f16", GgmlType::F16, GgmlType::F16),
    ] {
        let out = dir.path(&format!("wide-{dtype}.gguf"));
        let o = convert(&st, &out, &["--dtype", dtype]);
        let err = ok_stderr(&o);
        let t = types(&out);
        assert_eq!(t.len(), 5 + 2 * 12);
        for (name, ty) in &t {
            let want = if name.ends_with(".bias") || name.contains("norm") {
                GgmlType::F32
            } else if name == "token_embd.weight" || name == "output.weight" {
                embd
            } else {
                body
            };
            assert_eq!(*ty, want, "{dtype}: {name}");
        }
        assert!(
            err.contains(&format!(" {dtype}")),
            "summary names the types: {err}"
        );
        let shown = ok(&latte([os("inspect"), os(&out)]));
        assert!(
            shown.contains(body.name()),
            "inspect shows {}: {shown}",
            body.name()
        );
        assert!(shown.contains("types     "), "{shown}");
    }
}

#[test]
fn tensor_type_overrides() {
    let dir = TempDir::new("quant-overrides");
    let st = write_checkpoint(&dir, "wide.safetensors", &flax_wide());
    let out = dir.path("mixed.gguf");
    ok_stderr(&convert(
        &st,
        &out,
        &[
            "--dtype",
            "q8_0",
            "--tensor-type",
            "blk.*.ffn_*=q4_0",
            "--tensor-type",
            "output.weight=f16",
            "--tensor-type",
            "blk.1.ffn_down.weight=f32",
        ],
    ));
    let t = types(&out);
    assert_eq!(type_of(&t, "token_embd.weight"), GgmlType::Q8_0);
    assert_eq!(type_of(&t, "blk.0.attn_q.weight"), GgmlType::Q8_0);
    assert_eq!(type_of(&t, "blk.0.ffn_up.weight"), GgmlType::Q4_0);
    assert_eq!(type_of(&t, "blk.0.ffn_down.weight"), GgmlType::Q4_0);
    assert_eq!(
        type_of(&t, "blk.1.ffn_down.weight"),
        GgmlType::F32,
        "the last match wins"
    );
    assert_eq!(
        type_of(&t, "blk.0.ffn_up.bias"),
        GgmlType::F32,
        "biases stay f32"
    );
    assert_eq!(
        type_of(&t, "blk.0.ffn_norm.weight"),
        GgmlType::F32,
        "norms stay f32"
    );
    assert_eq!(type_of(&t, "output.weight"), GgmlType::F16);
    // It runs.
    let logits = ok(&latte([
        os("logits"),
        os("-m"),
        os(&out),
        os("--tokens"),
        os("1,2,3"),
    ]));
    assert!(logits.contains("\"logits\""));

    // Mistakes are errors, not silent no-ops.
    let bad = dir.path("bad.gguf");
    fails(
        &convert(&st, &bad, &["--tensor-type", "blk.*.fnn_*=q4_0"]),
        &["blk.*.fnn_*=q4_0", "matches no weight matrix"],
    );
    fails(
        &convert(&st, &bad, &["--tensor-type", "blk.*.ffn_*=q5_1"]),
        &["q5_1", "is not a type"],
    );
    fails(
        &convert(&st, &bad, &["--tensor-type", "output.weight"]),
        &["PATTERN=TYPE"],
    );
    fails(&convert(&st, &bad, &["--dtype", "q3_k"]), &["q3_k"]);
    assert!(!bad.exists(), "no output after an error");
}

#[test]
fn rows_that_are_not_whole_blocks_are_an_error_naming_the_tensor() {
    // The official tiny LM: D = 8, so every D-wide row is a quarter block.
    let dir = TempDir::new("quant-rows");
    let st = write_checkpoint(&dir, "tiny.safetensors", &flax_tiny_lm());
    let out = dir.path("tiny.gguf");
    let err = fails(
        &convert(&st, &out, &["--dtype", "q8_0"]),
        &[
            "token_embd.weight: q8_0",
            "blk.0.attn_q.weight",
            "blk.1.attn_output.weight",
            "8 values",
            "multiple of 32",
        ],
    );
    // ffn_down's rows are F = 32 wide: not listed.
    assert!(!err.contains("ffn_down"), "{err}");
    fails(
        &convert(&st, &out, &["--tensor-type", "blk.0.attn_v.weight=q4_0"]),
        &["blk.0.attn_v.weight: q4_0 (--tensor-type 'blk.0.attn_v.weight')"],
    );
    assert!(!out.exists());
    // Only the F-wide rows quantized: converts, and the logits stay near the
    // official fixture's (Q8_0 weights and activations).
    ok_stderr(&convert(
        &st,
        &out,
        &["--tensor-type", "blk.*.ffn_down.weight=q8_0"],
    ));
    let t = types(&out);
    assert_eq!(type_of(&t, "blk.1.ffn_down.weight"), GgmlType::Q8_0);
    assert_eq!(type_of(&t, "blk.1.ffn_up.weight"), GgmlType::F32);
    let lm = &fixture()["lm"];
    let tokens: Vec<u32> = serde_json::from_value(lm["tokens"].clone()).unwrap();
    let want: Vec<Vec<f64>> = serde_json::from_value(lm["logits"].clone()).unwrap();
    let list: Vec<String> = tokens.iter().map(u32::to_string).collect();
    let got = ok(&latte([
        os("logits"),
        os("-m"),
        os(&out),
        os("--tokens"),
        os(&list.join(",")),
    ]));
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    let got: Vec<Vec<f64>> = serde_json::from_value(got["logits"].clone()).unwrap();
    let worst = got
        .iter()
        .flatten()
        .zip(want.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 0.05 && worst > 1e-7, "max |logit error| {worst}");
}

#[test]
fn stored_blocks_dequantize_close_to_the_weights() {
    // Independent of the quantizer's code: every dequantized value lies
    // within about half a quantization step of the weight (Q8_0: d / 2 with
    // d = amax / 127, plus the f16 rounding of d times |q| <= 127, so 0.6 d;
    // Q4_0: up to one step d = amax / 8, as the clamp at 15 costs one), with
    // amax from the block's own weights.
    let dir = TempDir::new("quant-blocks");
    let ck = flax_wide();
    let st = write_checkpoint(&dir, "wide.safetensors", &ck);
    let wq = ck
        .iter()
        .find(|t| t.name == "Encoder_0/TransBlock_1/StableScanLatte_0/Wq")
        .unwrap();
    let want = transpose(&wq.values(), 64, 32); // 32 rows of 64
    for (dtype, ty) in [("q8_0", GgmlType::Q8_0), ("q4_0", GgmlType::Q4_0)] {
        let out = dir.path(&format!("{dtype}.gguf"));
        ok_stderr(&convert(&st, &out, &["--dtype", dtype]));
        let bytes = std::fs::read(&out).unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        let t = g.tensor("blk.1.attn_q.weight").unwrap();
        assert_eq!(t.ty, ty);
        assert_eq!(t.shape(), &[64, 32]);
        let bsize = if ty == GgmlType::Q8_0 { 34 } else { 18 };
        assert_eq!(t.data.len(), 32 * 2 * bsize);
        for (b, (block, vals)) in t
            .data
            .chunks_exact(bsize)
            .zip(want.chunks_exact(32))
            .enumerate()
        {
            let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
            let amax = vals.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (j, &w) in vals.iter().enumerate() {
                let (q, step, tol) = if ty == GgmlType::Q8_0 {
                    (block[2 + j] as i8 as f32, d, 0.6 * amax / 127.0 + 1e-7)
                } else {
                    let byte = block[2 + j % 16];
                    let nib = if j < 16 { byte & 15 } else { byte >> 4 };
                    (nib as f32 - 8.0, d, amax / 8.0 * 1.05 + 1e-7)
                };
                let got = q * step;
                assert!(
                    (got - w).abs() <= tol,
                    "{dtype} block {b} value {j}: {got} vs {w}"
                );
            }
        }
    }
}

#[test]
fn committed_quantized_models_run_reproducibly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/latte-micro");
    for file in ["latte-micro-q8_0.gguf", "latte-micro-q4_0.gguf"] {
        let model = format!("{dir}/{file}");
        let args = ["run", "-m", &model, "-p", "The ", "-n", "40", "--seed", "3"];
        let a = ok(&latte(args));
        assert_eq!(a, ok(&latte(args)), "{file}");
        assert!(a.starts_with("The ") && a.len() > 4 + 20, "{file}: {a:?}");
    }
}
