//! The decay gate (an extension of the paper's model: a learned forgetting
//! rate `lambda_l >= 0` per latent, `latte.latent_decay`, `blk.N.attn_decay`)
//! and the position scheme `none`:
//!
//! * one layer against the O(T^2) definition in `f64`, written here from
//!   the formula (not from the recurrence), on every kernel path;
//! * whole gated models (positions `none`, sinusoidal, VAPOR) loaded from
//!   GGUF against the `f64` model definition (`common::lm_reference`);
//! * decode and chunked prefill give the same bits on every kernel path,
//!   f32 and quantized; quantized models the same bits on every path;
//! * rates of zero give exactly the bits of a model without the gate;
//! * every malformed gate is a typed load error.

mod common;

use common::{
    as_bytes, lm_reference, random_model, GgmlType, GgufParts, MetaValue, OwnedModel, TestRng,
};
use latte_core::latte::fill_rotation_table;
use latte_core::latte_kernels::{quantize_row_q4_0, quantize_row_q8_0};
use latte_core::{
    BlockQ4_0, BlockQ8_0, Config, Error, KernelPath, Kernels, LatteLayer, Matrix, Model, Position,
    Sequential, Session,
};

/// Every kernel path this CPU has, scalar first (as `kernel_paths.rs`).
fn paths() -> Vec<Kernels> {
    let found: Vec<Kernels> = KernelPath::ALL.iter().filter_map(|p| p.kernels()).collect();
    assert_eq!(found[0].path(), KernelPath::Scalar);
    assert!(found.len() >= 2 || cfg!(not(any(target_arch = "x86_64", target_arch = "aarch64"))));
    found
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

// ---------------------------------------------------------------------------
// One layer against the definition.

/// The gated Latte layer over a whole sequence, in `f64`, straight from its
/// definition: for head `h` and latent `l` of that head,
///
/// ```text
/// y_t[h] = sum_l p_tl * (sum_{s<=t} exp(k_sl - lambda_l (t-s)) R^{t-s} v_s[h])
///                     / (sum_{s<=t} exp(k_sl - lambda_l (t-s)))
/// out_t  = Wo y_t
/// ```
///
/// with `p_t = softmax over the head's latents of Wq x_t`, `k = Wk x`,
/// `v = Wv x`, and `R^n` rotating value pair `i` by `n * theta_i` (no
/// rotation when `theta` is empty). No running maximum, no state: the
/// exponentials are small enough for `f64` here.
fn definition(
    xs: &[Vec<f32>],
    w: &[Vec<f32>; 4],
    (d, h, l): (usize, usize, usize),
    rates: &[f32],
    theta: &[f64],
) -> Vec<Vec<f64>> {
    let (lh, dh) = (l / h, d / h);
    let mv = |m: &[f32], rows: usize, x: &[f64]| -> Vec<f64> {
        (0..rows)
            .map(|r| (0..x.len()).map(|c| m[r * x.len() + c] as f64 * x[c]).sum())
            .collect()
    };
    let xs: Vec<Vec<f64>> = xs
        .iter()
        .map(|x| x.iter().map(|&v| v as f64).collect())
        .collect();
    let q: Vec<_> = xs.iter().map(|x| mv(&w[0], l, x)).collect();
    let k: Vec<_> = xs.iter().map(|x| mv(&w[1], l, x)).collect();
    let v: Vec<_> = xs.iter().map(|x| mv(&w[2], d, x)).collect();
    (0..xs.len())
        .map(|t| {
            let mut y = vec![0.0f64; d];
            for head in 0..h {
                let qh = &q[t][head * lh..(head + 1) * lh];
                let z: f64 = qh.iter().map(|x| x.exp()).sum();
                for (j, qj) in qh.iter().enumerate() {
                    let i = head * lh + j;
                    let p = qj.exp() / z;
                    let lambda = rates[i] as f64;
                    let mut num = vec![0.0f64; dh];
                    let mut den = 0.0f64;
                    for s in 0..=t {
                        let e = (k[s][i] - lambda * (t - s) as f64).exp();
                        den += e;
                        let vs = &v[s][head * dh..(head + 1) * dh];
                        for (e_i, pair) in vs.chunks(2).enumerate() {
                            let ang = theta.get(e_i).map_or(0.0, |th| th * (t - s) as f64);
                            let (c, sn) = (ang.cos(), ang.sin());
                            let rotated = if pair.len() == 2 {
                                [pair[0] * c - pair[1] * sn, pair[0] * sn + pair[1] * c]
                            } else {
                                [pair[0], 0.0]
                            };
                            for (o, r) in num[2 * e_i..].iter_mut().zip(&rotated[..pair.len()]) {
                                *o += e * r;
                            }
                        }
                    }
                    for (yy, n) in y[head * dh..(head + 1) * dh].iter_mut().zip(&num) {
                        *yy += p * n / den;
                    }
                }
            }
            mv(&w[3], d, &y)
        })
        .collect()
}

struct LayerCase {
    d: usize,
    h: usize,
    l: usize,
    w: [Vec<f32>; 4],
    xs: Vec<Vec<f32>>,
    rates: Vec<f32>,
}

fn layer_case(d: usize, h: usize, l: usize, t_len: usize, seed: u64) -> LayerCase {
    let mut r = TestRng(seed);
    let s = 1.0 / (d as f64).sqrt();
    let w = [
        r.vec(l * d, 2.0 * s),
        r.vec(l * d, 2.0 * s),
        r.vec(d * d, s),
        r.vec(d * d, s),
    ];
    let xs = (0..t_len).map(|_| r.vec(d, 1.5)).collect();
    // Rates in [0, 0.8], one latent that never forgets and one that
    // forgets almost at once.
    let mut rates: Vec<f32> = r.vec(l, 0.4).iter().map(|x| 0.4 + x).collect();
    rates[0] = 0.0;
    rates[l - 1] = 3.0;
    LayerCase {
        d,
        h,
        l,
        w,
        xs,
        rates,
    }
}

/// Runs the layer token by token on `kernels`; `rates` `None` = no gate.
fn run_layer(
    c: &LayerCase,
    kernels: &Kernels,
    rates: Option<&[f32]>,
    theta: &[f32],
) -> Vec<Vec<f32>> {
    let (d, l) = (c.d, c.l);
    let layer = LatteLayer::new(
        c.h,
        l,
        d,
        Matrix::from_f32(l, d, &c.w[0]).unwrap(),
        Matrix::from_f32(l, d, &c.w[1]).unwrap(),
        Matrix::from_f32(d, d, &c.w[2]).unwrap(),
        Matrix::from_f32(d, d, &c.w[3]).unwrap(),
    )
    .unwrap();
    let layer = match rates {
        Some(r) => layer.with_decay(r).unwrap(),
        None => layer,
    };
    assert_eq!(layer.decay(), rates);
    let table = (!theta.is_empty()).then(|| {
        let mut t = vec![0.0f32; 2 * theta.len()];
        fill_rotation_table(theta.iter().copied(), &mut t).unwrap();
        t
    });
    let mut state = vec![0.0f32; layer.state_len()];
    let mut scratch = vec![f32::NAN; layer.scratch_len()];
    layer.reset_state(&mut state);
    c.xs.iter()
        .map(|x| {
            let mut out = vec![0.0f32; d];
            layer
                .step_with_kernels(
                    kernels,
                    x,
                    &mut state,
                    table.as_deref(),
                    &mut scratch,
                    &mut out,
                )
                .unwrap();
            out
        })
        .collect()
}

fn max_err(got: &[Vec<f32>], want: &[Vec<f64>]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()))
        .fold(0.0, f64::max)
}

#[test]
fn gated_layer_step_matches_the_quadratic_definition_on_every_kernel_path() {
    // (D, H, L, tokens, VAPOR angles): small heads; 40 latents per head
    // (groups of 16 and runs of 64 latents split inside a head); VAPOR.
    let cases: [(usize, usize, usize, usize, &[f32]); 3] = [
        (12, 3, 9, 40, &[]),
        (16, 2, 80, 24, &[]),
        (12, 3, 9, 40, &[0.9, 0.05]),
    ];
    for (i, &(d, h, l, t_len, theta32)) in cases.iter().enumerate() {
        let c = layer_case(d, h, l, t_len, 100 + i as u64);
        let theta: Vec<f64> = theta32.iter().map(|&t| t as f64).collect();
        let want = definition(&c.xs, &c.w, (d, h, l), &c.rates, &theta);
        for k in paths() {
            let got = run_layer(&c, &k, Some(&c.rates), theta32);
            let err = max_err(&got, &want);
            eprintln!("case {i} on {}: max error {err:e}", k.path());
            assert!(err < 1e-5, "case {i} on {}: {err:e}", k.path());
        }
        // The gate matters: the same layer without it is far from the
        // definition with it (and matches the definition with zero rates).
        let plain = run_layer(&c, &Kernels::scalar(), None, theta32);
        assert!(
            max_err(&plain, &want) > 1e-2,
            "case {i}: the gate did nothing"
        );
        let zero = vec![0.0f32; l];
        let want_plain = definition(&c.xs, &c.w, (d, h, l), &zero, &theta);
        assert!(max_err(&plain, &want_plain) < 1e-5, "case {i}: no gate");
    }
}

#[test]
fn zero_rates_give_the_bits_of_a_layer_without_the_gate() {
    let c = layer_case(16, 2, 80, 24, 5);
    let zero = vec![0.0f32; c.l];
    for k in paths() {
        for theta in [&[][..], &[0.3, 0.01, 0.2, 0.7][..]] {
            let gated = run_layer(&c, &k, Some(&zero), theta);
            let plain = run_layer(&c, &k, None, theta);
            for (a, b) in gated.iter().zip(&plain) {
                assert_eq!(bits(a), bits(b), "{}", k.path());
            }
        }
    }
}

#[test]
fn with_decay_checks_its_rates() {
    let c = layer_case(8, 2, 6, 1, 1);
    let layer = LatteLayer::new(
        2,
        6,
        8,
        Matrix::from_f32(6, 8, &c.w[0]).unwrap(),
        Matrix::from_f32(6, 8, &c.w[1]).unwrap(),
        Matrix::from_f32(8, 8, &c.w[2]).unwrap(),
        Matrix::from_f32(8, 8, &c.w[3]).unwrap(),
    )
    .unwrap();
    assert_eq!(layer.decay(), None);
    assert_eq!(
        layer.with_decay(&[0.1; 5]).unwrap_err(),
        Error::BufferLength {
            what: "decay rates",
            need: 6,
            got: 5
        }
    );
    for (bad, latent) in [(f32::NAN, 2), (f32::INFINITY, 0), (f32::NEG_INFINITY, 5)] {
        let mut r = [0.1f32; 6];
        r[latent] = bad;
        assert_eq!(
            layer.with_decay(&r).unwrap_err(),
            Error::DecayRateNotFinite {
                layer: None,
                latent
            }
        );
    }
    let mut r = [0.1f32; 6];
    r[3] = -1e-30;
    assert_eq!(
        layer.with_decay(&r).unwrap_err(),
        Error::DecayRateNegative {
            layer: None,
            latent: 3
        }
    );
    // -0.0 is zero; huge finite rates are fine.
    r[3] = -0.0;
    r[4] = f32::MAX;
    assert!(layer.with_decay(&r).is_ok());
}

// ---------------------------------------------------------------------------
// Whole models.

fn config(position: Position, d: usize, l: usize, latent_decay: bool) -> Config {
    Config {
        vocab_size: 19,
        d_model: d,
        n_layers: 2,
        n_heads: 2,
        n_latents: l,
        d_ff: 2 * d,
        context_length: 64,
        ln_eps: 1e-6,
        position,
        latent_decay,
        mixing: latte_core::Mixing::Latte,
    }
}

fn theta(om: &OwnedModel) -> Vec<f64> {
    match om.config.position {
        Position::Vapor => om.vapor_frequencies.iter().map(|&t| t as f64).collect(),
        Position::Sinusoidal | Position::None => Vec::new(),
    }
}

/// Logits after every token, token by token, and the final state.
fn decode(model: &Model<'_>, tokens: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let mut state = vec![0.0f32; model.state_len()];
    let mut scratch = vec![f32::NAN; model.scratch_len()];
    let mut s = Session::new(model, &mut state, &mut scratch).unwrap();
    let mut logits = Vec::new();
    for &t in tokens {
        logits.extend_from_slice(s.step(t).unwrap());
    }
    (logits, s.state().to_vec())
}

fn rows(flat: &[f32], v: usize) -> Vec<Vec<f32>> {
    flat.chunks_exact(v).map(|r| r.to_vec()).collect()
}

const TOKENS: [u32; 24] = [
    3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4,
];

#[test]
fn gated_models_match_the_f64_definition() {
    for position in [Position::None, Position::Sinusoidal, Position::Vapor] {
        let om = random_model(config(position, 12, 10, true), 31);
        let buf = GgufParts::new(&om, GgmlType::F32).to_aligned();
        let model = Model::from_gguf(as_bytes(&buf)).unwrap();
        assert_eq!(model.config().position, position);
        assert!(model.config().latent_decay);
        for i in 0..2 {
            assert_eq!(
                model.latte_layer(i).unwrap().decay(),
                Some(&om.layers[i].decay[..])
            );
        }
        let want = lm_reference(&om, &TOKENS, &theta(&om));
        let scale = want.iter().flatten().fold(0.0f64, |m, x| m.max(x.abs()));
        let (got, _) = decode(&model, &TOKENS);
        let err = max_err(&rows(&got, 19), &want);
        eprintln!("{position:?}: max logit error {err:e} (logits up to {scale:.2})");
        assert!(err < 1e-5 * scale.max(1.0), "{position:?}: {err:e}");
        // The gate and the position scheme both matter.
        let ungated = random_model(config(position, 12, 10, false), 31);
        let other = lm_reference(&ungated, &TOKENS, &theta(&om));
        assert!(max_err(&rows(&got, 19), &other) > 1e-3, "{position:?}");
    }
    // `none` is neither sinusoidal nor VAPOR: the same weights with the
    // sinusoidal reference differ.
    let om = random_model(config(Position::None, 12, 10, true), 31);
    let buf = GgufParts::new(&om, GgmlType::F32).to_aligned();
    let model = Model::from_gguf(as_bytes(&buf)).unwrap();
    let (got, _) = decode(&model, &TOKENS);
    let sinusoidal = OwnedModel {
        config: Config {
            position: Position::Sinusoidal,
            ..om.config
        },
        ..random_model(config(Position::None, 12, 10, true), 31)
    };
    let other = lm_reference(&sinusoidal, &TOKENS, &[]);
    assert!(max_err(&rows(&got, 19), &other) > 1e-3);
}

#[test]
fn zero_rates_give_the_bits_of_a_model_without_the_gate() {
    for position in [Position::None, Position::Sinusoidal, Position::Vapor] {
        let plain = random_model(config(position, 12, 10, false), 8);
        let mut gated = random_model(config(position, 12, 10, true), 8);
        for w in &mut gated.layers {
            w.decay.iter_mut().for_each(|r| *r = 0.0);
        }
        let a = GgufParts::new(&plain, GgmlType::F32).to_aligned();
        let b = GgufParts::new(&gated, GgmlType::F32).to_aligned();
        let a = Model::from_gguf(as_bytes(&a)).unwrap();
        let b = Model::from_gguf(as_bytes(&b)).unwrap();
        // Different models (the gate is part of the fingerprint)...
        assert_ne!(a.fingerprint(), b.fingerprint());
        // ...computing the same bits.
        let (la, sa) = decode(&a, &TOKENS);
        let (lb, sb) = decode(&b, &TOKENS);
        assert_eq!(bits(&la), bits(&lb), "{position:?}");
        assert_eq!(bits(&sa), bits(&sb), "{position:?}");
    }
}

#[test]
fn the_fingerprint_covers_the_rates_and_the_position_scheme() {
    let om = random_model(config(Position::None, 12, 10, true), 8);
    let fp = |m: &OwnedModel| {
        let buf = GgufParts::new(m, GgmlType::F32).to_aligned();
        Model::from_gguf(as_bytes(&buf)).unwrap().fingerprint()
    };
    let base = fp(&om);
    let mut other = random_model(config(Position::None, 12, 10, true), 8);
    other.layers[1].decay[4] += 0.125;
    assert_ne!(fp(&other), base);
    let sin = OwnedModel {
        config: Config {
            position: Position::Sinusoidal,
            ..om.config
        },
        ..random_model(config(Position::None, 12, 10, true), 8)
    };
    assert_ne!(fp(&sin), base);
    // Loaded from a file or given as parts: the same model.
    let layers = om.layer_weights();
    let parts = Model::from_parts(om.config, om.weights(&layers)).unwrap();
    assert_eq!(parts.fingerprint(), base);
}

/// `om` with its block matrices stored as `ty` and the embedding and head
/// as Q8_0 (the rates stay F32).
fn quantized(om: &OwnedModel, ty: GgmlType) -> (Vec<u32>, usize) {
    let mut p = GgufParts::new(om, GgmlType::F32);
    for t in &mut p.tensors {
        if t.ne.len() != 2 {
            continue;
        }
        let w: Vec<f32> = t
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let ty = if t.name.starts_with("blk.") {
            ty
        } else {
            GgmlType::Q8_0
        };
        t.data = if ty == GgmlType::Q4_0 {
            let mut b = vec![BlockQ4_0::default(); w.len() / 32];
            quantize_row_q4_0(&w, &mut b);
            bytemuck::cast_slice(&b).to_vec()
        } else {
            let mut b = vec![BlockQ8_0::default(); w.len() / 32];
            quantize_row_q8_0(&w, &mut b);
            bytemuck::cast_slice(&b).to_vec()
        };
        t.ty = ty;
    }
    p.to_aligned()
}

#[test]
fn decode_and_prefill_are_bit_identical_with_the_gate_on_every_kernel_path() {
    // 40 latents in 2 heads: groups of 16, 4 inside each head.
    for (position, d, ty) in [
        (Position::None, 12, GgmlType::F32),
        (Position::Vapor, 12, GgmlType::F32),
        (Position::None, 64, GgmlType::Q8_0),
        (Position::Sinusoidal, 64, GgmlType::Q4_0),
        (Position::Vapor, 64, GgmlType::Q8_0),
    ] {
        let om = random_model(config(position, d, 40, true), 13);
        let buf = match ty {
            GgmlType::F32 => GgufParts::new(&om, ty).to_aligned(),
            _ => quantized(&om, ty),
        };
        let base = Model::from_gguf(as_bytes(&buf)).unwrap();
        let tokens: Vec<u32> = (0..37u32).map(|i| (i * 7 + 3) % 19).collect();
        let v = 19;
        let mut scalar_bits = None;
        for k in paths() {
            let model = base.clone().with_kernels(k);
            let what = format!("{position:?} {ty:?} on {}", k.path());
            let (want, want_state) = decode(&model, &tokens);
            // Quantized models: the same bits on every path.
            if ty != GgmlType::F32 {
                match &scalar_bits {
                    None => scalar_bits = Some(bits(&want)),
                    Some(s) => assert!(*s == bits(&want), "{what}: differs from scalar"),
                }
            }
            for chunk in [1usize, 2, 7, 16, 64] {
                let mut ps = vec![f32::NAN; model.prefill_scratch_len(chunk)];
                let mut state = vec![0.0f32; model.state_len()];
                let mut scratch = vec![f32::NAN; model.scratch_len()];
                let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
                let mut all = vec![f32::NAN; tokens.len() * v];
                let last = s
                    .prefill_with(&tokens, chunk, &mut ps, &Sequential, Some(&mut all))
                    .unwrap()
                    .to_vec();
                assert!(bits(&all) == bits(&want), "{what}: chunk {chunk}");
                assert_eq!(bits(&last), bits(&want[want.len() - v..]), "{what}");
                assert!(
                    bits(s.state()) == bits(&want_state),
                    "{what}: state, chunk {chunk}"
                );
                // A prefill continued by steps, and steps by a prefill.
                s.reset();
                s.prefill(&tokens[..20], chunk, &mut ps).unwrap();
                let got = s.step(tokens[20]).unwrap().to_vec();
                assert_eq!(bits(&got), bits(&want[20 * v..21 * v]), "{what}");
                let got = s.prefill(&tokens[21..], chunk, &mut ps).unwrap().to_vec();
                assert_eq!(bits(&got), bits(&want[want.len() - v..]), "{what}");
                assert!(bits(s.state()) == bits(&want_state), "{what}: resumed");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Load errors: one test each.

fn gated_parts() -> (OwnedModel, GgufParts) {
    let om = random_model(config(Position::None, 12, 10, true), 3);
    let p = GgufParts::new(&om, GgmlType::F32);
    (om, p)
}

fn load(parts: &GgufParts) -> Result<Model<'static>, Error> {
    // Leaked so the model can outlive the buffer in these small tests.
    let buf: &'static (Vec<u32>, usize) = Box::leak(Box::new(parts.to_aligned()));
    Model::from_gguf(as_bytes(buf))
}

/// Asserts the error and that its message names the tensor and says what
/// to do.
#[track_caller]
fn refused(parts: &GgufParts, want: Error, needles: &[&str]) {
    let e = load(parts).map(|_| ()).unwrap_err();
    assert_eq!(e, want);
    let msg = e.to_string();
    for n in needles {
        assert!(msg.contains(n), "{msg:?} lacks {n:?}");
    }
}

#[test]
fn the_gated_file_loads() {
    let (_, p) = gated_parts();
    let m = load(&p).unwrap();
    assert!(m.config().latent_decay);
    assert_eq!(m.config().position, Position::None);
    assert_eq!(m.config().rotation_len(), 0);
}

#[test]
fn decay_key_true_but_a_tensor_missing_is_refused() {
    let (_, mut p) = gated_parts();
    p.remove_tensor("blk.1.attn_decay");
    refused(
        &p,
        Error::DecayMissing { layer: 1 },
        &["blk.1.attn_decay", "latte.latent_decay", "missing"],
    );
}

#[test]
fn decay_tensor_of_the_wrong_shape_is_refused() {
    let (_, mut p) = gated_parts();
    // Ten values, but as a 5 x 2 matrix.
    p.tensor_mut("blk.0.attn_decay").ne = vec![5, 2];
    refused(
        &p,
        Error::DecayShape {
            layer: 0,
            n_latents: 10,
            got: [5, 2, 1, 1],
        },
        &["blk.0.attn_decay", "[10]"],
    );
    // Too few values.
    let (_, mut p) = gated_parts();
    let t = p.tensor_mut("blk.1.attn_decay");
    t.ne = vec![9];
    t.data.truncate(36);
    refused(
        &p,
        Error::DecayShape {
            layer: 1,
            n_latents: 10,
            got: [9, 1, 1, 1],
        },
        &["one rate per latent"],
    );
}

#[test]
fn decay_tensor_not_f32_is_refused() {
    let (om, mut p) = gated_parts();
    let t = p.tensor_mut("blk.0.attn_decay");
    t.ty = GgmlType::F16;
    t.data = om.layers[0]
        .decay
        .iter()
        .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
        .collect();
    refused(
        &p,
        Error::DecayNotF32 {
            layer: 0,
            ggml_type: 1,
        },
        &["blk.0.attn_decay", "F16", "must be F32"],
    );
}

fn set_rate(p: &mut GgufParts, name: &str, i: usize, x: f32) {
    p.tensor_mut(name).data[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
}

#[test]
fn decay_rate_nan_or_infinite_is_refused() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let (_, mut p) = gated_parts();
        set_rate(&mut p, "blk.1.attn_decay", 7, bad);
        refused(
            &p,
            Error::DecayRateNotFinite {
                layer: Some(1),
                latent: 7,
            },
            &["blk.1.attn_decay", "latent 7", "NaN or infinite"],
        );
    }
}

#[test]
fn decay_rate_negative_is_refused() {
    let (_, mut p) = gated_parts();
    set_rate(&mut p, "blk.0.attn_decay", 2, -0.5);
    refused(
        &p,
        Error::DecayRateNegative {
            layer: Some(0),
            latent: 2,
        },
        &["blk.0.attn_decay", "latent 2", "negative"],
    );
}

#[test]
fn decay_tensor_without_the_key_is_refused() {
    // The key absent...
    let (_, mut p) = gated_parts();
    p.remove_key("latte.latent_decay");
    refused(
        &p,
        Error::DecayUnexpected { layer: 0 },
        &["blk.0.attn_decay", "latte.latent_decay = true"],
    );
    // ...or false.
    p.set("latte.latent_decay", MetaValue::Bool(false));
    refused(&p, Error::DecayUnexpected { layer: 0 }, &[]);
    // Without the tensors either, the file is a plain model.
    p.remove_tensor("blk.0.attn_decay");
    p.remove_tensor("blk.1.attn_decay");
    let m = load(&p).unwrap();
    assert!(!m.config().latent_decay);
    assert_eq!(m.latte_layer(0).unwrap().decay(), None);
}

#[test]
fn decay_key_of_the_wrong_type_is_refused() {
    let (_, mut p) = gated_parts();
    p.set("latte.latent_decay", MetaValue::U32(1));
    refused(
        &p,
        Error::MetadataType {
            key: "latte.latent_decay",
        },
        &[],
    );
}

#[test]
fn position_none_loads_and_other_names_are_refused() {
    let om = random_model(config(Position::None, 12, 10, false), 3);
    let mut p = GgufParts::new(&om, GgmlType::F32);
    let m = load(&p).unwrap();
    assert_eq!(m.config().position, Position::None);
    assert!(!m.config().latent_decay);
    p.set("latte.position_encoding", MetaValue::String("None".into()));
    refused(&p, Error::UnknownPositionEncoding, &["\"none\""]);
}

#[test]
fn from_parts_checks_the_gate() {
    let om = random_model(config(Position::None, 12, 10, true), 3);
    let mut layers = om.layer_weights();
    assert!(Model::from_parts(om.config, om.weights(&layers)).is_ok());
    let plain = Config {
        latent_decay: false,
        mixing: latte_core::Mixing::Latte,
        ..om.config
    };
    assert_eq!(
        Model::from_parts(plain, om.weights(&layers)).unwrap_err(),
        Error::DecayUnexpected { layer: 0 }
    );
    layers[1].attn_decay = None;
    assert_eq!(
        Model::from_parts(om.config, om.weights(&layers)).unwrap_err(),
        Error::DecayMissing { layer: 1 }
    );
    let short = [0.1f32; 9];
    layers[1].attn_decay = Some(&short);
    assert_eq!(
        Model::from_parts(om.config, om.weights(&layers)).unwrap_err(),
        Error::DecayShape {
            layer: 1,
            n_latents: 10,
            got: [9, 1, 1, 1]
        }
    );
    let mut bad = [0.1f32; 10];
    bad[9] = -2.0;
    layers[1].attn_decay = Some(&bad);
    assert_eq!(
        Model::from_parts(om.config, om.weights(&layers)).unwrap_err(),
        Error::DecayRateNegative {
            layer: Some(1),
            latent: 9
        }
    );
}
