//! A whole Latte language model run as a recurrence in `f64`, written from
//! the model definition (FORMAT.md, README) and independent of the crate's
//! code: the reference for the long-run drift measurements.
//!
//! Shared by `tests/long_run.rs` and `examples/long_run.rs` (through
//! `#[path]`). The only thing taken over from the `f32` definition is the
//! sinusoidal angle: FORMAT.md defines it in `f32` (`w_i = expf(2i * c)`,
//! `angle = (t as f32) * w_i`, as the official code computes it), and at
//! large `t` a one-ulp difference in `w_i` moves the angle by `t * ulp`, so
//! the reference forms the angle with the same `f32` operations and takes its
//! sine and cosine in `f64`.
#![allow(dead_code, clippy::needless_range_loop)]

/// Sizes of a model.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub vocab: usize,
    pub d: usize,
    pub heads: usize,
    pub latents: usize,
    pub layers: usize,
    pub ff: usize,
    pub eps: f64,
}

struct Layer {
    attn_norm: (Vec<f64>, Vec<f64>),
    wq: Vec<f64>,
    wk: Vec<f64>,
    wv: Vec<f64>,
    wo: Vec<f64>,
    ffn_norm: (Vec<f64>, Vec<f64>),
    up: Vec<f64>,
    up_b: Vec<f64>,
    down: Vec<f64>,
    down_b: Vec<f64>,
}

/// The `f64` model and its recurrent state.
pub struct Reference64 {
    pub dims: Dims,
    embd: Vec<f64>,
    layers: Vec<Layer>,
    out_norm: (Vec<f64>, Vec<f64>),
    out: Vec<f64>,
    out_b: Vec<f64>,
    /// VAPOR angles per step (empty: sinusoidal positions).
    theta: Vec<f64>,
    /// Per layer: `S` (`L * Dh`), `n` (`L`), `m` (`L`), as in the f32 session.
    pub s: Vec<Vec<f64>>,
    pub n: Vec<Vec<f64>>,
    pub m: Vec<Vec<f64>>,
    pos: u64,
}

fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// `y = W x`, `W` row-major `rows x x.len()`.
fn matvec(w: &[f64], x: &[f64], y: &mut [f64]) {
    let cols = x.len();
    for (r, out) in y.iter_mut().enumerate() {
        let row = &w[r * cols..(r + 1) * cols];
        let mut acc = 0.0;
        for c in 0..cols {
            acc += row[c] * x[c];
        }
        *out = acc;
    }
}

fn layer_norm(x: &[f64], (w, b): &(Vec<f64>, Vec<f64>), eps: f64, out: &mut [f64]) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for i in 0..x.len() {
        out[i] = (x[i] - mean) * inv * w[i] + b[i];
    }
}

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
}

impl Reference64 {
    /// Builds the model from its tensors, looked up by their GGUF names
    /// (FORMAT.md; matrices row-major `rows = outputs`), widened to `f64`.
    /// `theta`: the VAPOR angles, empty for sinusoidal models.
    pub fn new(dims: Dims, tensor: &dyn Fn(&str) -> Vec<f32>, theta: &[f32]) -> Self {
        let layers = (0..dims.layers)
            .map(|i| {
                let t = |s: &str| wide(&tensor(&format!("blk.{i}.{s}")));
                Layer {
                    attn_norm: (t("attn_norm.weight"), t("attn_norm.bias")),
                    wq: t("attn_q.weight"),
                    wk: t("attn_k.weight"),
                    wv: t("attn_v.weight"),
                    wo: t("attn_output.weight"),
                    ffn_norm: (t("ffn_norm.weight"), t("ffn_norm.bias")),
                    up: t("ffn_up.weight"),
                    up_b: t("ffn_up.bias"),
                    down: t("ffn_down.weight"),
                    down_b: t("ffn_down.bias"),
                }
            })
            .collect();
        let dh = dims.d / dims.heads;
        let mut r = Reference64 {
            dims,
            embd: wide(&tensor("token_embd.weight")),
            layers,
            out_norm: (
                wide(&tensor("output_norm.weight")),
                wide(&tensor("output_norm.bias")),
            ),
            out: wide(&tensor("output.weight")),
            out_b: wide(&tensor("output.bias")),
            theta: wide(theta),
            s: vec![vec![0.0; dims.latents * dh]; dims.layers],
            n: vec![vec![0.0; dims.latents]; dims.layers],
            m: vec![vec![f64::NEG_INFINITY; dims.latents]; dims.layers],
            pos: 0,
        };
        r.reset();
        r
    }

    pub fn reset(&mut self) {
        for l in 0..self.dims.layers {
            self.s[l].fill(0.0);
            self.n[l].fill(0.0);
            self.m[l].fill(f64::NEG_INFINITY);
        }
        self.pos = 0;
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Feeds `token` at the current position; returns the next-token logits.
    pub fn step(&mut self, token: u32) -> Vec<f64> {
        let Dims {
            vocab,
            d,
            heads,
            latents,
            ff,
            eps,
            ..
        } = self.dims;
        let (dh, lh) = (d / heads, latents / heads);
        let t = token as usize;
        let mut h: Vec<f64> = self.embd[t * d..(t + 1) * d].to_vec();
        if self.theta.is_empty() {
            // FORMAT.md: c = -ln(10000) / D rounded to f32, w_i = expf(2i c),
            // angle = (t as f32) * w_i in f32.
            let c = (-(10000f64).ln() / d as f64) as f32;
            let p = self.pos as f32;
            for i in 0..d.div_ceil(2) {
                let w = libm::expf((2 * i) as f32 * c);
                let angle = (p * w) as f64;
                h[2 * i] += angle.sin();
                if 2 * i + 1 < d {
                    h[2 * i + 1] += angle.cos();
                }
            }
        }
        let mut a = vec![0.0; d];
        let (mut q, mut k, mut v) = (vec![0.0; latents], vec![0.0; latents], vec![0.0; d]);
        let mut y = vec![0.0; d];
        let mut o = vec![0.0; d];
        let mut hid = vec![0.0; ff];
        for li in 0..self.dims.layers {
            let w = &self.layers[li];
            layer_norm(&h, &w.attn_norm, eps, &mut a);
            matvec(&w.wq, &a, &mut q);
            matvec(&w.wk, &a, &mut k);
            matvec(&w.wv, &a, &mut v);
            let (s, n, m) = (&mut self.s[li], &mut self.n[li], &mut self.m[li]);
            y.fill(0.0);
            for hd in 0..heads {
                let qh = &q[hd * lh..(hd + 1) * lh];
                let qmax = qh.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = qh.iter().map(|x| (x - qmax).exp()).sum();
                for j in 0..lh {
                    let l = hd * lh + j;
                    let p = (qh[j] - qmax).exp() / z;
                    let m_new = m[l].max(k[l]);
                    let r = (m[l] - m_new).exp();
                    let wgt = (k[l] - m_new).exp();
                    n[l] = n[l] * r + wgt;
                    m[l] = m_new;
                    let row = &mut s[l * dh..(l + 1) * dh];
                    let vh = &v[hd * dh..(hd + 1) * dh];
                    if self.theta.is_empty() {
                        for e in 0..dh {
                            row[e] = row[e] * r + wgt * vh[e];
                        }
                    } else {
                        for (i, th) in self.theta.iter().enumerate() {
                            let (c, sn) = (th.cos(), th.sin());
                            let (x0, x1) = (row[2 * i], row[2 * i + 1]);
                            row[2 * i] = (x0 * c - x1 * sn) * r + wgt * vh[2 * i];
                            row[2 * i + 1] = (x0 * sn + x1 * c) * r + wgt * vh[2 * i + 1];
                        }
                    }
                    let f = p / n[l];
                    for e in 0..dh {
                        y[hd * dh + e] += f * row[e];
                    }
                }
            }
            matvec(&w.wo, &y, &mut o);
            for i in 0..d {
                h[i] += o[i];
            }
            layer_norm(&h, &w.ffn_norm, eps, &mut a);
            matvec(&w.up, &a, &mut hid);
            for i in 0..ff {
                hid[i] = gelu(hid[i] + w.up_b[i]);
            }
            matvec(&w.down, &hid, &mut o);
            for i in 0..d {
                h[i] += o[i] + w.down_b[i];
            }
        }
        layer_norm(&h, &self.out_norm, eps, &mut a);
        let mut logits = vec![0.0; vocab];
        matvec(&self.out, &a, &mut logits);
        for i in 0..vocab {
            logits[i] += self.out_b[i];
        }
        self.pos += 1;
        logits
    }
}

/// How far an `f32` session's state is from the reference's, measured in
/// the quantities the output depends on (the state itself is only defined up
/// to the running maximum `m`): per latent, the log of the normaliser
/// `ln n + m` and the normalised value average `S / n`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Drift {
    /// `max |(ln n32 + m32) - (ln n64 + m64)|` over all latents.
    pub log_normaliser: f64,
    /// `max |S32/n32 - S64/n64|` over all state rows and elements.
    pub average: f64,
    /// `max |S64/n64|` (the scale of `average`).
    pub average_scale: f64,
    /// Largest `n` in the reference (how many tokens' worth of weight the
    /// state holds, relative to the current maximum).
    pub max_n: f64,
    /// Any NaN or infinity in the f32 state (outside the initial `m = -inf`).
    pub non_finite: bool,
}

/// Compares one layer's `f32` state (`S`, `n`, `m` as laid out by the
/// session) with the reference's layer `li`.
pub fn layer_drift(
    r: &Reference64,
    li: usize,
    s32: &[f32],
    n32: &[f32],
    m32: &[f32],
    acc: &mut Drift,
) {
    let dh = r.dims.d / r.dims.heads;
    for l in 0..r.dims.latents {
        let (n64, m64) = (r.n[li][l], r.m[li][l]);
        if n64 == 0.0 {
            continue; // nothing fed yet
        }
        let (nf, mf) = (n32[l] as f64, m32[l] as f64);
        if !nf.is_finite() || !mf.is_finite() || nf <= 0.0 {
            acc.non_finite = true;
            continue;
        }
        acc.max_n = acc.max_n.max(n64);
        acc.log_normaliser = acc
            .log_normaliser
            .max(((nf.ln() + mf) - (n64.ln() + m64)).abs());
        for e in 0..dh {
            let a64 = r.s[li][l * dh + e] / n64;
            let sf = s32[l * dh + e] as f64;
            if !sf.is_finite() {
                acc.non_finite = true;
                continue;
            }
            acc.average = acc.average.max((sf / nf - a64).abs());
            acc.average_scale = acc.average_scale.max(a64.abs());
        }
    }
}
