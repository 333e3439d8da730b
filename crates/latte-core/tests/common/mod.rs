//! Shared test helpers: the official fixture, its weight formulas, and a
//! small f64 toolbox for independent reference computations.
#![allow(dead_code, clippy::too_many_arguments, clippy::needless_range_loop)]

use latte_core::{Config, LayerWeights, Matrix, Norm, Position, Weights};
use serde_json::Value;

/// Outputs of the official implementation (what they are and how they were
/// computed: `tests/fixtures/README.md`).
pub const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/latte_official_fixture.json"
);

pub fn fixture() -> Value {
    let text = std::fs::read_to_string(FIXTURE).unwrap_or_else(|e| panic!("read {FIXTURE}: {e}"));
    serde_json::from_str(&text).expect("fixture JSON")
}

/// Flattens nested JSON arrays of numbers in row-major order.
pub fn flat(v: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    fn go(v: &Value, out: &mut Vec<f64>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| go(x, out)),
            Value::Number(n) => out.push(n.as_f64().expect("number")),
            other => panic!("unexpected JSON value {other}"),
        }
    }
    go(v, &mut out);
    out
}

pub fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

/// A Flax `(in, out)` kernel given by `f(i, j)`, stored as our `(out, in)` rows.
pub fn flax_kernel(n_in: usize, n_out: usize, f: impl Fn(f64, f64) -> f64) -> Vec<f32> {
    let mut w = vec![0.0f32; n_in * n_out];
    for j in 0..n_out {
        for i in 0..n_in {
            w[j * n_in + i] = f(i as f64, j as f64) as f32;
        }
    }
    w
}

/// Latte weights of the official fixtures (`tests/fixtures/README.md`), `shift = 0.5 * li`
/// added inside every sin/cos after the constant. Returns (Wq, Wk, Wv, Wo)
/// as (out, in) matrices for `D = 8`, `L = 6`.
pub fn latte_weights(d: usize, l: usize, shift: f64) -> [Vec<f32>; 4] {
    [
        flax_kernel(d, l, |i, j| 0.5 * (1.0 + shift + 0.37 * i + 0.11 * j).sin()),
        flax_kernel(d, l, |i, j| 0.5 * (2.0 + shift + 0.23 * i - 0.19 * j).cos()),
        flax_kernel(d, d, |i, j| 0.5 * (3.0 + shift - 0.29 * i + 0.17 * j).sin()),
        flax_kernel(d, d, |i, j| 0.5 * (4.0 + shift + 0.31 * i + 0.13 * j).cos()),
    ]
}

/// Owned weights of a whole model, in the tensor order of FORMAT.md.
pub struct OwnedModel {
    pub config: Config,
    pub token_embd: Vec<f32>,
    pub layers: Vec<OwnedLayer>,
    pub output_norm_w: Vec<f32>,
    pub output_norm_b: Vec<f32>,
    pub output: Vec<f32>,
    pub output_bias: Vec<f32>,
    pub vapor_frequencies: Vec<f32>,
}

pub struct OwnedLayer {
    pub attn_norm_w: Vec<f32>,
    pub attn_norm_b: Vec<f32>,
    pub wq: Vec<f32>,
    pub wk: Vec<f32>,
    pub wv: Vec<f32>,
    pub wo: Vec<f32>,
    pub ffn_norm_w: Vec<f32>,
    pub ffn_norm_b: Vec<f32>,
    pub up: Vec<f32>,
    pub up_b: Vec<f32>,
    pub down: Vec<f32>,
    pub down_b: Vec<f32>,
    /// The decay gate's rates (L); empty without the gate.
    pub decay: Vec<f32>,
}

impl OwnedModel {
    pub fn layer_weights(&self) -> Vec<LayerWeights<'_>> {
        let c = &self.config;
        let (d, l, f) = (c.d_model, c.n_latents, c.d_ff);
        self.layers
            .iter()
            .map(|w| LayerWeights {
                attn_norm: Norm {
                    weight: &w.attn_norm_w,
                    bias: &w.attn_norm_b,
                },
                attn_q: Matrix::from_f32(l, d, &w.wq).unwrap(),
                attn_k: Matrix::from_f32(l, d, &w.wk).unwrap(),
                attn_v: Matrix::from_f32(d, d, &w.wv).unwrap(),
                attn_output: Matrix::from_f32(d, d, &w.wo).unwrap(),
                ffn_norm: Norm {
                    weight: &w.ffn_norm_w,
                    bias: &w.ffn_norm_b,
                },
                ffn_up: Matrix::from_f32(f, d, &w.up).unwrap(),
                ffn_up_bias: &w.up_b,
                ffn_down: Matrix::from_f32(d, f, &w.down).unwrap(),
                ffn_down_bias: &w.down_b,
                attn_decay: c.latent_decay.then_some(&w.decay[..]),
                window: None,
            })
            .collect()
    }

    pub fn weights<'a, 'l>(&'a self, layers: &'l [LayerWeights<'a>]) -> Weights<'a, 'l> {
        let c = &self.config;
        Weights {
            token_embd: Matrix::from_f32(c.vocab_size, c.d_model, &self.token_embd).unwrap(),
            layers,
            output_norm: Norm {
                weight: &self.output_norm_w,
                bias: &self.output_norm_b,
            },
            output: Matrix::from_f32(c.vocab_size, c.d_model, &self.output).unwrap(),
            output_bias: &self.output_bias,
            vapor_frequencies: &self.vapor_frequencies,
        }
    }
}

/// The official tiny-LM fixture model (`tests/fixtures/README.md`): V=11, D=8, H=2, L=6, 2 layers.
pub fn tiny_lm() -> OwnedModel {
    let (v, d, h, l, n, f) = (11usize, 8usize, 2usize, 6usize, 2usize, 32usize);
    let config = Config {
        vocab_size: v,
        d_model: d,
        n_layers: n,
        n_heads: h,
        n_latents: l,
        d_ff: f,
        context_length: 64,
        ln_eps: 1e-6,
        position: Position::Sinusoidal,
        latent_decay: false,
        mixing: latte_core::Mixing::Latte,
    };
    let vec = |len: usize, g: &dyn Fn(f64) -> f64| {
        (0..len).map(|i| g(i as f64) as f32).collect::<Vec<_>>()
    };
    let mut token_embd = vec![0.0f32; v * d];
    for t in 0..v {
        for k in 0..d {
            token_embd[t * d + k] = (0.5 + 0.41 * t as f64 + 0.23 * k as f64).sin() as f32;
        }
    }
    let layers = (0..n)
        .map(|li| {
            let lf = li as f64;
            let [wq, wk, wv, wo] = latte_weights(d, l, 0.5 * lf);
            OwnedLayer {
                attn_norm_w: vec(d, &|k| 1.0 + 0.1 * (k + lf).sin()),
                attn_norm_b: vec(d, &|k| 0.05 * (k + lf).cos()),
                wq,
                wk,
                wv,
                wo,
                ffn_norm_w: vec(d, &|k| 1.0 + 0.1 * (k + lf).cos()),
                ffn_norm_b: vec(d, &|k| 0.05 * (k - lf).sin()),
                up: flax_kernel(d, f, |i, j| 0.3 * (0.7 + lf + 0.13 * i + 0.07 * j).sin()),
                up_b: vec(f, &|j| 0.02 * j.cos()),
                down: flax_kernel(f, d, |i, j| 0.3 * (1.1 + lf + 0.05 * i - 0.17 * j).cos()),
                down_b: vec(d, &|j| 0.02 * j.sin()),
                decay: Vec::new(),
            }
        })
        .collect();
    OwnedModel {
        config,
        token_embd,
        layers,
        output_norm_w: vec(d, &|k| 1.0 + 0.05 * (3.0 * k).sin()),
        output_norm_b: vec(d, &|k| 0.01 * k),
        output: flax_kernel(d, v, |i, j| 0.4 * (0.9 + 0.21 * i + 0.33 * j).sin()),
        output_bias: vec(v, &|j| 0.01 * j),
        vapor_frequencies: Vec::new(),
    }
}

/// Deterministic pseudo-random numbers for test data (SplitMix64), uniform in [-1, 1).
pub struct TestRng(pub u64);

impl TestRng {
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    pub fn vec(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n).map(|_| (self.next_f64() * scale) as f32).collect()
    }
}

/// A random model with the given shape (weights ~ U(-scale, scale)). With
/// the decay gate (`config.latent_decay`) the rates come from a second
/// stream (U(0, 0.6), one latent of each layer at 0 and one at 2.5), so
/// the other weights are those of the same seed without the gate.
pub fn random_model(config: Config, seed: u64) -> OwnedModel {
    let mut m = random_model_ungated(config, seed);
    if config.latent_decay {
        let mut r = TestRng(seed ^ 0x000D_ECA4);
        let l = config.n_latents;
        for w in &mut m.layers {
            w.decay = r.vec(l, 0.3).iter().map(|x| 0.3 + x).collect();
            w.decay[0] = 0.0;
            w.decay[l - 1] = 2.5;
        }
    }
    m
}

fn random_model_ungated(config: Config, seed: u64) -> OwnedModel {
    let mut r = TestRng(seed);
    let (v, d, l, f) = (
        config.vocab_size,
        config.d_model,
        config.n_latents,
        config.d_ff,
    );
    let s = 1.0 / (d as f64).sqrt();
    let layers = (0..config.n_layers)
        .map(|_| OwnedLayer {
            attn_norm_w: r.vec(d, 0.2).iter().map(|x| 1.0 + x).collect(),
            attn_norm_b: r.vec(d, 0.1),
            wq: r.vec(l * d, 2.0 * s),
            wk: r.vec(l * d, 2.0 * s),
            wv: r.vec(d * d, s),
            wo: r.vec(d * d, s),
            ffn_norm_w: r.vec(d, 0.2).iter().map(|x| 1.0 + x).collect(),
            ffn_norm_b: r.vec(d, 0.1),
            up: r.vec(f * d, s),
            up_b: r.vec(f, 0.1),
            down: r.vec(d * f, 1.0 / (f as f64).sqrt()),
            down_b: r.vec(d, 0.1),
            decay: Vec::new(),
        })
        .collect();
    let dh = config.d_model / config.n_heads;
    OwnedModel {
        config,
        token_embd: r.vec(v * d, 1.0),
        layers,
        output_norm_w: r.vec(d, 0.2).iter().map(|x| 1.0 + x).collect(),
        output_norm_b: r.vec(d, 0.1),
        output: r.vec(v * d, s),
        output_bias: r.vec(v, 0.1),
        vapor_frequencies: (0..dh / 2)
            .map(|i| 10000f64.powf(-2.0 * i as f64 / dh as f64) as f32)
            .collect(),
    }
}

// ---- f64 reference toolbox (independent of the crate) ----

/// y = W x for an (out, in) row-major matrix.
pub fn matvec64(w: &[f32], rows: usize, cols: usize, x: &[f64]) -> Vec<f64> {
    (0..rows)
        .map(|r| (0..cols).map(|c| w[r * cols + c] as f64 * x[c]).sum())
        .collect()
}

pub fn layer_norm64(x: &[f64], w: &[f32], b: &[f32], eps: f64) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    x.iter()
        .enumerate()
        .map(|(i, v)| (v - mean) / (var + eps).sqrt() * w[i] as f64 + b[i] as f64)
        .collect()
}

pub fn gelu64(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
}

/// The O(T^2) definition of one (VAPOR) causal Latte layer over a whole
/// sequence, in f64 (spec §2.4 and §3.2):
/// `y_t = Wo concat_h sum_l p_l(t) sum_{s<=t} softmax_s(k_{., l}) R^{t-s} v_s`,
/// where `R^n` rotates value pair i of a head by `n * theta_i`
/// (`theta` empty = no rotation).
pub fn latte_reference(
    xs: &[Vec<f64>],
    wq: &[f32],
    wk: &[f32],
    wv: &[f32],
    wo: &[f32],
    d: usize,
    h: usize,
    l: usize,
    theta: &[f64],
) -> Vec<Vec<f64>> {
    latte_reference_gated(xs, wq, wk, wv, wo, d, h, l, theta, &[])
}

/// [`latte_reference`] with the decay gate (rates `decay`, empty = none):
/// `y_t = Wo concat_h sum_l p_l(t) sum_{s<=t} w_{t,s,l} R^{t-s} v_s` with
/// `w_{t,s,l} = exp(k_{s,l} - lambda_l (t - s)) / sum_{s'<=t} exp(k_{s',l} - lambda_l (t - s'))`.
pub fn latte_reference_gated(
    xs: &[Vec<f64>],
    wq: &[f32],
    wk: &[f32],
    wv: &[f32],
    wo: &[f32],
    d: usize,
    h: usize,
    l: usize,
    theta: &[f64],
    decay: &[f32],
) -> Vec<Vec<f64>> {
    let (lh, dh) = (l / h, d / h);
    let qs: Vec<_> = xs.iter().map(|x| matvec64(wq, l, d, x)).collect();
    let ks: Vec<_> = xs.iter().map(|x| matvec64(wk, l, d, x)).collect();
    let vs: Vec<_> = xs.iter().map(|x| matvec64(wv, d, d, x)).collect();
    let mut out = Vec::new();
    for t in 0..xs.len() {
        let mut y = vec![0.0f64; d];
        for hd in 0..h {
            let q = &qs[t][hd * lh..(hd + 1) * lh];
            let qmax = q.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let qe: Vec<f64> = q.iter().map(|v| (v - qmax).exp()).collect();
            let qsum: f64 = qe.iter().sum();
            for li in 0..lh {
                let p = qe[li] / qsum;
                let idx = hd * lh + li;
                let lambda = decay.get(idx).map_or(0.0, |&x| x as f64);
                let score = |s: usize| ks[s][idx] - lambda * (t - s) as f64;
                let kmax = (0..=t).map(score).fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = (0..=t).map(|s| (score(s) - kmax).exp()).sum();
                for s in 0..=t {
                    let w = p * (score(s) - kmax).exp() / z;
                    let mut vr = vs[s][hd * dh..(hd + 1) * dh].to_vec();
                    for (i, th) in theta.iter().enumerate() {
                        let ang = (t - s) as f64 * th;
                        let (x0, x1) = (vr[2 * i], vr[2 * i + 1]);
                        vr[2 * i] = x0 * ang.cos() - x1 * ang.sin();
                        vr[2 * i + 1] = x0 * ang.sin() + x1 * ang.cos();
                    }
                    for e in 0..dh {
                        y[hd * dh + e] += w * vr[e];
                    }
                }
            }
        }
        out.push(matvec64(wo, d, d, &y));
    }
    out
}

/// Copies bytes into a 4-byte aligned buffer (the model loader reads F32
/// tensors in place). Returns the backing store; view it with [`as_bytes`].
pub fn aligned(bytes: &[u8]) -> (Vec<u32>, usize) {
    let mut words = vec![0u32; bytes.len().div_ceil(4)];
    let dst: &mut [u8] = bytemuck_bytes_mut(&mut words);
    dst[..bytes.len()].copy_from_slice(bytes);
    (words, bytes.len())
}

fn bytemuck_bytes_mut(words: &mut [u32]) -> &mut [u8] {
    bytemuck::cast_slice_mut(words)
}

pub fn as_bytes(buf: &(Vec<u32>, usize)) -> &[u8] {
    &bytemuck::cast_slice::<u32, u8>(&buf.0)[..buf.1]
}

// ---- GGUF building (latte-gguf's writer) ----

pub use latte_gguf::{GgmlType, GgufWriter, MetaValue};

pub struct GgufTensor {
    pub name: String,
    pub ne: Vec<u64>,
    pub ty: GgmlType,
    pub data: Vec<u8>,
}

/// Metadata and tensors of a model file, editable before writing.
pub struct GgufParts {
    pub kvs: Vec<(String, MetaValue)>,
    pub tensors: Vec<GgufTensor>,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
        .collect()
}

impl GgufParts {
    /// FORMAT.md layout of `m`; matrices stored as `matrix_ty` (F32 or F16).
    pub fn new(m: &OwnedModel, matrix_ty: GgmlType) -> Self {
        let c = &m.config;
        let u = |x: usize| MetaValue::U32(x as u32);
        let mut kvs = vec![
            (
                "general.architecture".to_string(),
                MetaValue::String("latte".into()),
            ),
            ("general.name".to_string(), MetaValue::String("test".into())),
            ("latte.vocab_size".to_string(), u(c.vocab_size)),
            ("latte.context_length".to_string(), u(c.context_length)),
            ("latte.embedding_length".to_string(), u(c.d_model)),
            ("latte.block_count".to_string(), u(c.n_layers)),
            ("latte.feed_forward_length".to_string(), u(c.d_ff)),
            ("latte.attention.head_count".to_string(), u(c.n_heads)),
            ("latte.latent_count".to_string(), u(c.n_latents)),
            (
                "latte.attention.layer_norm_epsilon".to_string(),
                MetaValue::F32(c.ln_eps),
            ),
        ];
        match c.position {
            Position::Sinusoidal => kvs.push((
                "latte.position_encoding".into(),
                MetaValue::String("sinusoidal".into()),
            )),
            Position::Vapor => {
                kvs.push((
                    "latte.position_encoding".into(),
                    MetaValue::String("vapor".into()),
                ));
                kvs.push((
                    "latte.vapor.frequencies".into(),
                    MetaValue::Array(latte_gguf::MetaArray::F32(m.vapor_frequencies.clone())),
                ));
            }
            Position::None => kvs.push((
                "latte.position_encoding".into(),
                MetaValue::String("none".into()),
            )),
        }
        if c.latent_decay {
            kvs.push(("latte.latent_decay".into(), MetaValue::Bool(true)));
        }
        let (v, d, l, f) = (
            c.vocab_size as u64,
            c.d_model as u64,
            c.n_latents as u64,
            c.d_ff as u64,
        );
        let mut tensors = Vec::new();
        let mut mat = |name: String, rows: u64, cols: u64, w: &[f32]| {
            let data = if matrix_ty == GgmlType::F16 {
                f16_bytes(w)
            } else {
                f32_bytes(w)
            };
            tensors.push(GgufTensor {
                name,
                ne: vec![cols, rows],
                ty: matrix_ty,
                data,
            });
        };
        mat("token_embd.weight".into(), v, d, &m.token_embd);
        let mut vecs: Vec<(String, &[f32])> = Vec::new();
        let mut mats: Vec<(String, u64, u64, &[f32])> = Vec::new();
        for (i, w) in m.layers.iter().enumerate() {
            let n = |s: &str| format!("blk.{i}.{s}");
            vecs.push((n("attn_norm.weight"), &w.attn_norm_w));
            vecs.push((n("attn_norm.bias"), &w.attn_norm_b));
            mats.push((n("attn_q.weight"), l, d, &w.wq));
            mats.push((n("attn_k.weight"), l, d, &w.wk));
            mats.push((n("attn_v.weight"), d, d, &w.wv));
            mats.push((n("attn_output.weight"), d, d, &w.wo));
            if c.latent_decay {
                vecs.push((n("attn_decay"), &w.decay));
            }
            vecs.push((n("ffn_norm.weight"), &w.ffn_norm_w));
            vecs.push((n("ffn_norm.bias"), &w.ffn_norm_b));
            mats.push((n("ffn_up.weight"), f, d, &w.up));
            vecs.push((n("ffn_up.bias"), &w.up_b));
            mats.push((n("ffn_down.weight"), d, f, &w.down));
            vecs.push((n("ffn_down.bias"), &w.down_b));
        }
        for (name, rows, cols, w) in mats {
            mat(name, rows, cols, w);
        }
        mat("output.weight".into(), v, d, &m.output);
        vecs.push(("output_norm.weight".into(), &m.output_norm_w));
        vecs.push(("output_norm.bias".into(), &m.output_norm_b));
        vecs.push(("output.bias".into(), &m.output_bias));
        for (name, w) in vecs {
            tensors.push(GgufTensor {
                name,
                ne: vec![w.len() as u64],
                ty: GgmlType::F32,
                data: f32_bytes(w),
            });
        }
        GgufParts { kvs, tensors }
    }

    pub fn set(&mut self, key: &str, value: MetaValue) {
        match self.kvs.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value,
            None => self.kvs.push((key.to_string(), value)),
        }
    }

    pub fn remove_key(&mut self, key: &str) {
        self.kvs.retain(|(k, _)| k != key);
    }

    pub fn tensor_mut(&mut self, name: &str) -> &mut GgufTensor {
        self.tensors
            .iter_mut()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tensor {name}"))
    }

    pub fn remove_tensor(&mut self, name: &str) {
        let before = self.tensors.len();
        self.tensors.retain(|t| t.name != name);
        assert_eq!(before, self.tensors.len() + 1, "no tensor {name}");
    }

    /// The file bytes, copied into a 4-byte aligned buffer.
    pub fn to_aligned(&self) -> (Vec<u32>, usize) {
        let mut w = GgufWriter::new();
        for (k, v) in &self.kvs {
            w.add(k.clone(), v.clone()).expect("writer key");
        }
        for t in &self.tensors {
            w.add_tensor(t.name.clone(), &t.ne, t.ty, t.data.clone())
                .expect("writer tensor");
        }
        aligned(&w.to_bytes())
    }
}

/// The whole LM in f64 from its definition (spec §1.3), run over the full
/// sequence with the O(T^2) layer reference. `theta` empty: sinusoidal PE
/// (f64), or none at all for `Position::None`; otherwise VAPOR rotations and
/// no additive PE. Each layer's decay rates (if any) enter the layer
/// reference. Returns logits per position.
pub fn lm_reference(m: &OwnedModel, tokens: &[u32], theta: &[f64]) -> Vec<Vec<f64>> {
    let c = &m.config;
    let (v, d, h, l, f) = (c.vocab_size, c.d_model, c.n_heads, c.n_latents, c.d_ff);
    let eps = c.ln_eps as f64;
    let mut hs: Vec<Vec<f64>> = tokens
        .iter()
        .enumerate()
        .map(|(t, &tok)| {
            (0..d)
                .map(|k| {
                    let e = m.token_embd[tok as usize * d + k] as f64;
                    if !theta.is_empty() || c.position == Position::None {
                        return e;
                    }
                    let w = (2.0 * (k / 2) as f64 * (-(10000f64).ln() / d as f64)).exp();
                    let a = t as f64 * w;
                    e + if k % 2 == 0 { a.sin() } else { a.cos() }
                })
                .collect()
        })
        .collect();
    for w in &m.layers {
        let a: Vec<Vec<f64>> = hs
            .iter()
            .map(|x| layer_norm64(x, &w.attn_norm_w, &w.attn_norm_b, eps))
            .collect();
        let y = latte_reference_gated(&a, &w.wq, &w.wk, &w.wv, &w.wo, d, h, l, theta, &w.decay);
        for (x, yy) in hs.iter_mut().zip(&y) {
            x.iter_mut().zip(yy).for_each(|(p, q)| *p += q);
        }
        for x in hs.iter_mut() {
            let b = layer_norm64(x, &w.ffn_norm_w, &w.ffn_norm_b, eps);
            let mut hid = matvec64(&w.up, f, d, &b);
            hid.iter_mut()
                .zip(&w.up_b)
                .for_each(|(p, q)| *p = gelu64(*p + *q as f64));
            let o = matvec64(&w.down, d, f, &hid);
            x.iter_mut()
                .zip(o.iter().zip(&w.down_b))
                .for_each(|(p, (q, r))| *p += q + *r as f64);
        }
    }
    hs.iter()
        .map(|x| {
            let n = layer_norm64(x, &m.output_norm_w, &m.output_norm_b, eps);
            let mut lg = matvec64(&m.output, v, d, &n);
            lg.iter_mut()
                .zip(&m.output_bias)
                .for_each(|(p, q)| *p += *q as f64);
            lg
        })
        .collect()
}
