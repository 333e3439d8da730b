//! Helpers for the command-line tests: running `latte`, temporary
//! directories, hand-built safetensors files and the tiny LM of the spec.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `latte` binary.
pub fn latte<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_latte"))
        .args(args)
        .output()
        .expect("start latte")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "latte failed ({:?}): {}",
        o.status,
        stderr(o)
    );
    stdout(o)
}

/// Asserts a clean failure (non-zero exit, no panic) whose stderr contains
/// every needle; returns stderr.
#[track_caller]
pub fn fails(o: &Output, needles: &[&str]) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "latte succeeded, stderr: {err}");
    assert_ne!(o.status.code(), Some(101), "latte panicked: {err}");
    assert!(!err.contains("panicked"), "latte panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`: {err}");
    }
    err
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("latte-cli-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// A path whose name need not be UTF-8.
    pub fn path_os(&self, name: std::ffi::OsString) -> PathBuf {
        self.0.join(name)
    }
    pub fn dir(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One tensor of a hand-built safetensors file.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub dtype: &'static str,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Tensor {
    pub fn f32(name: impl Into<String>, shape: &[usize], values: &[f32]) -> Self {
        assert_eq!(shape.iter().product::<usize>(), values.len());
        Tensor {
            name: name.into(),
            dtype: "F32",
            shape: shape.to_vec(),
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
    pub fn values(&self) -> Vec<f32> {
        assert_eq!(self.dtype, "F32");
        self.data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// The bytes of a safetensors file: u64 header length, JSON header, data.
pub fn safetensors(tensors: &[Tensor], metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let m: BTreeMap<&str, &str> = metadata.iter().copied().collect();
        header.insert("__metadata__".into(), serde_json::to_value(m).unwrap());
    }
    let mut data = Vec::new();
    for t in tensors {
        let start = data.len();
        data.extend_from_slice(&t.data);
        header.insert(
            t.name.clone(),
            serde_json::json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut json = serde_json::to_vec(&header).unwrap();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&data);
    out
}

// ---- The official fixture's tiny LM: V=11, D=8, H=2, L=6, 2 layers, F=32 ----

pub const V: usize = 11;
pub const D: usize = 8;
pub const L: usize = 6;
pub const F: usize = 32;
pub const LAYERS: usize = 2;

/// `rows x cols` row-major matrix from `f(i, j)`.
fn mat(rows: usize, cols: usize, f: impl Fn(f64, f64) -> f64) -> Vec<f32> {
    (0..rows)
        .flat_map(|i| (0..cols).map(move |j| (i, j)))
        .map(|(i, j)| f(i as f64, j as f64) as f32)
        .collect()
}

fn vector(n: usize, f: impl Fn(f64) -> f64) -> Vec<f32> {
    (0..n).map(|i| f(i as f64) as f32).collect()
}

pub fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| m[r * cols + c]))
        .collect()
}

/// The tiny LM with the official Flax names and (in, out) layouts.
pub fn flax_tiny_lm() -> Vec<Tensor> {
    let mut t = vec![Tensor::f32(
        "Encoder_0/Embed_0/embedding",
        &[V, D],
        &mat(V, D, |v, d| (0.5 + 0.41 * v + 0.23 * d).sin()),
    )];
    for li in 0..LAYERS {
        let l = li as f64;
        let p = format!("Encoder_0/TransBlock_{li}");
        t.push(Tensor::f32(
            format!("{p}/LayerNorm_0/scale"),
            &[D],
            &vector(D, |d| 1.0 + 0.1 * (d + l).sin()),
        ));
        t.push(Tensor::f32(
            format!("{p}/LayerNorm_0/bias"),
            &[D],
            &vector(D, |d| 0.05 * (d + l).cos()),
        ));
        t.push(Tensor::f32(
            format!("{p}/LayerNorm_1/scale"),
            &[D],
            &vector(D, |d| 1.0 + 0.1 * (d + l).cos()),
        ));
        t.push(Tensor::f32(
            format!("{p}/LayerNorm_1/bias"),
            &[D],
            &vector(D, |d| 0.05 * (d - l).sin()),
        ));
        let s = format!("{p}/StableScanLatte_0");
        t.push(Tensor::f32(
            format!("{s}/Wq"),
            &[D, L],
            &mat(D, L, |i, j| {
                0.5 * (1.0 + 0.5 * l + 0.37 * i + 0.11 * j).sin()
            }),
        ));
        t.push(Tensor::f32(
            format!("{s}/Wk"),
            &[D, L],
            &mat(D, L, |i, j| {
                0.5 * (2.0 + 0.5 * l + 0.23 * i - 0.19 * j).cos()
            }),
        ));
        t.push(Tensor::f32(
            format!("{s}/Wv"),
            &[D, D],
            &mat(D, D, |i, j| {
                0.5 * (3.0 + 0.5 * l - 0.29 * i + 0.17 * j).sin()
            }),
        ));
        t.push(Tensor::f32(
            format!("{s}/o_proj"),
            &[D, D],
            &mat(D, D, |i, j| {
                0.5 * (4.0 + 0.5 * l + 0.31 * i + 0.13 * j).cos()
            }),
        ));
        t.push(Tensor::f32(
            format!("{p}/Dense_0/kernel"),
            &[D, F],
            &mat(D, F, |i, j| 0.3 * (0.7 + l + 0.13 * i + 0.07 * j).sin()),
        ));
        t.push(Tensor::f32(
            format!("{p}/Dense_0/bias"),
            &[F],
            &vector(F, |j| 0.02 * j.cos()),
        ));
        t.push(Tensor::f32(
            format!("{p}/Dense_1/kernel"),
            &[F, D],
            &mat(F, D, |i, j| 0.3 * (1.1 + l + 0.05 * i - 0.17 * j).cos()),
        ));
        t.push(Tensor::f32(
            format!("{p}/Dense_1/bias"),
            &[D],
            &vector(D, |j| 0.02 * j.sin()),
        ));
    }
    t.push(Tensor::f32(
        "LayerNorm_0/scale",
        &[D],
        &vector(D, |d| 1.0 + 0.05 * (3.0 * d).sin()),
    ));
    t.push(Tensor::f32(
        "LayerNorm_0/bias",
        &[D],
        &vector(D, |d| 0.01 * d),
    ));
    t.push(Tensor::f32(
        "Dense_0/kernel",
        &[D, V],
        &mat(D, V, |i, j| 0.4 * (0.9 + 0.21 * i + 0.33 * j).sin()),
    ));
    t.push(Tensor::f32("Dense_0/bias", &[V], &vector(V, |j| 0.01 * j)));
    t
}

/// The same weights with the reference trainer's names and `nn.Linear`
/// (out, in) layouts.
pub fn trainer_tiny_lm() -> Vec<Tensor> {
    let flax: BTreeMap<String, Tensor> = flax_tiny_lm()
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let copy = |from: &str, to: String| {
        let t = &flax[from];
        Tensor {
            name: to,
            ..t.clone()
        }
    };
    let transposed = |from: &str, to: String| {
        let t = &flax[from];
        let (r, c) = (t.shape[0], t.shape[1]);
        Tensor::f32(to, &[c, r], &transpose(&t.values(), r, c))
    };
    let mut out = vec![copy("Encoder_0/Embed_0/embedding", "tok_emb.weight".into())];
    for li in 0..LAYERS {
        let p = format!("Encoder_0/TransBlock_{li}");
        let b = format!("blocks.{li}");
        out.push(copy(
            &format!("{p}/LayerNorm_0/scale"),
            format!("{b}.ln1.weight"),
        ));
        out.push(copy(
            &format!("{p}/LayerNorm_0/bias"),
            format!("{b}.ln1.bias"),
        ));
        out.push(transposed(
            &format!("{p}/StableScanLatte_0/Wq"),
            format!("{b}.latte.wq.weight"),
        ));
        out.push(transposed(
            &format!("{p}/StableScanLatte_0/Wk"),
            format!("{b}.latte.wk.weight"),
        ));
        out.push(transposed(
            &format!("{p}/StableScanLatte_0/Wv"),
            format!("{b}.latte.wv.weight"),
        ));
        out.push(transposed(
            &format!("{p}/StableScanLatte_0/o_proj"),
            format!("{b}.latte.wo.weight"),
        ));
        out.push(copy(
            &format!("{p}/LayerNorm_1/scale"),
            format!("{b}.ln2.weight"),
        ));
        out.push(copy(
            &format!("{p}/LayerNorm_1/bias"),
            format!("{b}.ln2.bias"),
        ));
        out.push(transposed(
            &format!("{p}/Dense_0/kernel"),
            format!("{b}.mlp.fc1.weight"),
        ));
        out.push(copy(
            &format!("{p}/Dense_0/bias"),
            format!("{b}.mlp.fc1.bias"),
        ));
        out.push(transposed(
            &format!("{p}/Dense_1/kernel"),
            format!("{b}.mlp.fc2.weight"),
        ));
        out.push(copy(
            &format!("{p}/Dense_1/bias"),
            format!("{b}.mlp.fc2.bias"),
        ));
    }
    out.push(copy("LayerNorm_0/scale", "ln_f.weight".into()));
    out.push(copy("LayerNorm_0/bias", "ln_f.bias".into()));
    out.push(transposed("Dense_0/kernel", "head.weight".into()));
    out.push(copy("Dense_0/bias", "head.bias".into()));
    out
}

/// `latte.config` for the tiny LM.
pub fn trainer_config(pos: &str) -> String {
    serde_json::json!({
        "vocab_size": V, "d_model": D, "n_layers": LAYERS, "n_heads": 2, "n_latents": L,
        "d_ff": F, "max_seq_len": 16, "pos_encoding": pos, "vapor_base": 10000.0, "ln_eps": 1e-6
    })
    .to_string()
}

/// Writes a safetensors file and returns its path.
pub fn write_st(dir: &TempDir, name: &str, tensors: &[Tensor], meta: &[(&str, &str)]) -> PathBuf {
    let p = dir.path(name);
    std::fs::write(&p, safetensors(tensors, meta)).expect("write safetensors");
    p
}

/// The official fixture (`crates/latte-core/tests/fixtures/`, with a README
/// on what it holds and how it was computed).
pub fn fixture() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crates/latte-core/tests/fixtures/latte_official_fixture.json"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read the official fixture {path}: {e}"));
    serde_json::from_str(&text).expect("fixture JSON")
}

/// Borrows anything path- or string-like as an argument.
pub fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

/// A file's bytes in a 4-byte-aligned buffer (F32 tensors are read in place).
#[allow(dead_code)]
pub fn aligned(path: &Path) -> Vec<u32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut words = vec![0u32; bytes.len().div_ceil(4)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    words
}
