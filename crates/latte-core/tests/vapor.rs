//! VAPOR (spec §3.2): the constant-state form-B recurrence against the
//! O(T^2) definition `y_t = sum_l p_l(t) sum_{s<=t} softmax_s(k) R^{t-s} v_s`,
//! at layer level and for a whole model loaded from GGUF.

mod common;

use common::{
    as_bytes, latte_reference, lm_reference, random_model, GgmlType, GgufParts, MetaValue, TestRng,
};
use latte_core::latte::fill_rotation_table;
use latte_core::{Config, Error, LatteLayer, Matrix, Model, Position, Session};

const TOL: f64 = 1e-5;

struct RandomLayer {
    w: [Vec<f32>; 4],
    xs: Vec<Vec<f32>>,
}

fn random_layer(d: usize, l: usize, t_len: usize, seed: u64) -> RandomLayer {
    let mut r = TestRng(seed);
    let s = 1.0 / (d as f64).sqrt();
    let w = [
        r.vec(l * d, 2.0 * s),
        r.vec(l * d, 2.0 * s),
        r.vec(d * d, s),
        r.vec(d * d, s),
    ];
    let xs = (0..t_len).map(|_| r.vec(d, 1.5)).collect();
    RandomLayer { w, xs }
}

fn run_core(
    rl: &RandomLayer,
    h: usize,
    l: usize,
    d: usize,
    theta: Option<&[f32]>,
) -> Vec<Vec<f32>> {
    let layer = LatteLayer::new(
        h,
        l,
        d,
        Matrix::from_f32(l, d, &rl.w[0]).unwrap(),
        Matrix::from_f32(l, d, &rl.w[1]).unwrap(),
        Matrix::from_f32(d, d, &rl.w[2]).unwrap(),
        Matrix::from_f32(d, d, &rl.w[3]).unwrap(),
    )
    .unwrap();
    let table = theta.map(|th| {
        let mut t = vec![0.0f32; 2 * th.len()];
        fill_rotation_table(th.iter().copied(), &mut t).unwrap();
        t
    });
    let mut state = vec![0.0f32; layer.state_len()];
    let mut scratch = vec![0.0f32; layer.scratch_len()];
    layer.reset_state(&mut state);
    rl.xs
        .iter()
        .map(|x| {
            let mut out = vec![0.0f32; d];
            layer
                .step(x, &mut state, table.as_deref(), &mut scratch, &mut out)
                .unwrap();
            out
        })
        .collect()
}

fn max_err(core: &[Vec<f32>], reference: &[Vec<f64>]) -> f64 {
    core.iter()
        .zip(reference)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()))
        .fold(0.0, f64::max)
}

#[test]
fn form_b_matches_quadratic_definition() {
    let (d, h, l, t_len) = (12, 3, 9, 40); // Dh = 4 (2 pairs), Lh = 3
    let rl = random_layer(d, l, t_len, 42);
    let theta32: Vec<f32> = vec![0.9, 0.05];
    let theta: Vec<f64> = theta32.iter().map(|&t| t as f64).collect();
    let xs: Vec<Vec<f64>> = rl
        .xs
        .iter()
        .map(|x| x.iter().map(|&v| v as f64).collect())
        .collect();
    let want = latte_reference(&xs, &rl.w[0], &rl.w[1], &rl.w[2], &rl.w[3], d, h, l, &theta);
    let got = run_core(&rl, h, l, d, Some(&theta32));
    let err = max_err(&got, &want);
    assert!(err < TOL, "VAPOR form B vs O(T^2): {err:e}");
    // The rotation matters: plain Latte is far from the VAPOR reference.
    let plain = run_core(&rl, h, l, d, None);
    assert!(max_err(&plain, &want) > 1e-2);
    // And plain Latte matches the reference without rotation.
    let want_plain = latte_reference(&xs, &rl.w[0], &rl.w[1], &rl.w[2], &rl.w[3], d, h, l, &[]);
    assert!(max_err(&plain, &want_plain) < TOL);
}

#[test]
fn zero_frequencies_equal_plain_latte() {
    let (d, h, l) = (8, 2, 6);
    let rl = random_layer(d, l, 30, 9);
    let a = run_core(&rl, h, l, d, Some(&[0.0, 0.0]));
    let b = run_core(&rl, h, l, d, None);
    assert_eq!(a, b);
}

fn vapor_config() -> Config {
    Config {
        vocab_size: 17,
        d_model: 12,
        n_layers: 2,
        n_heads: 2,
        n_latents: 8,
        d_ff: 24,
        context_length: 32,
        ln_eps: 1e-6,
        position: Position::Vapor,
        latent_decay: false,
        mixing: latte_core::Mixing::Latte,
    }
}

#[test]
fn vapor_model_from_gguf_matches_reference() {
    let m = random_model(vapor_config(), 77);
    assert_eq!(m.vapor_frequencies.len(), 3); // Dh = 6
    let buf = GgufParts::new(&m, GgmlType::F32).to_aligned();
    let model = Model::from_gguf(as_bytes(&buf)).unwrap();
    assert_eq!(model.config().position, Position::Vapor);
    let freqs: Vec<f32> = model.vapor_frequencies().collect();
    assert_eq!(freqs, m.vapor_frequencies);
    let tokens: Vec<u32> = (0..25u32).map(|i| (i * 7 + 3) % 17).collect();
    let theta: Vec<f64> = m.vapor_frequencies.iter().map(|&t| t as f64).collect();
    let want = lm_reference(&m, &tokens, &theta);
    let mut state = vec![0.0f32; model.state_len()];
    let mut scratch = vec![0.0f32; model.scratch_len()];
    assert_eq!(
        model.scratch_len(),
        // h, a, o (3D) + logits (V) + cos/sin (Dh) + max(2L + 2D = 40, F = 24, 2V = 34)
        3 * 12 + 17 + 6 + 40
    );
    let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
    for (t, &tok) in tokens.iter().enumerate() {
        let got = s.step(tok).unwrap();
        let err = got
            .iter()
            .zip(&want[t])
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(err < TOL, "position {t}: {err:e}");
    }
}

#[test]
fn sinusoidal_random_model_matches_reference() {
    let config = Config {
        position: Position::Sinusoidal,
        ..vapor_config()
    };
    let m = random_model(config, 78);
    let layers = m.layer_weights();
    let model = Model::from_parts(m.config, m.weights(&layers)).unwrap();
    let tokens: Vec<u32> = (0..25u32).map(|i| (i * 5 + 1) % 17).collect();
    let want = lm_reference(&m, &tokens, &[]);
    let mut state = vec![0.0f32; model.state_len()];
    let mut scratch = vec![0.0f32; model.scratch_len()];
    let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
    for (t, &tok) in tokens.iter().enumerate() {
        let got = s.step(tok).unwrap();
        let err = got
            .iter()
            .zip(&want[t])
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(err < TOL, "position {t}: {err:e}");
    }
}

#[test]
fn vapor_frequency_errors() {
    let m = random_model(vapor_config(), 1);
    let mut parts = GgufParts::new(&m, GgmlType::F32);
    parts.set(
        "latte.vapor.frequencies",
        MetaValue::Array(latte_gguf::MetaArray::F32(vec![1.0, 0.1])),
    );
    let buf = parts.to_aligned();
    assert_eq!(
        Model::from_gguf(as_bytes(&buf)).unwrap_err(),
        Error::VaporFrequencyCount {
            expected: 3,
            got: 2
        }
    );

    parts.set(
        "latte.vapor.frequencies",
        MetaValue::Array(latte_gguf::MetaArray::F32(vec![1.0, f32::NAN, 0.1])),
    );
    let buf = parts.to_aligned();
    assert_eq!(
        Model::from_gguf(as_bytes(&buf)).unwrap_err(),
        Error::VaporFrequencyNotFinite
    );

    parts.set(
        "latte.vapor.frequencies",
        MetaValue::Array(latte_gguf::MetaArray::U32(vec![1, 2, 3])),
    );
    let buf = parts.to_aligned();
    assert_eq!(
        Model::from_gguf(as_bytes(&buf)).unwrap_err(),
        Error::MetadataType {
            key: "latte.vapor.frequencies"
        }
    );

    parts.remove_key("latte.vapor.frequencies");
    let buf = parts.to_aligned();
    assert_eq!(
        Model::from_gguf(as_bytes(&buf)).unwrap_err(),
        Error::MissingMetadata {
            key: "latte.vapor.frequencies"
        }
    );

    // Odd head width: D = 9, H = 3 gives Dh = 3.
    let odd = Config {
        d_model: 9,
        n_heads: 3,
        n_latents: 6,
        ..vapor_config()
    };
    let m = random_model(odd, 2);
    let buf = GgufParts::new(&m, GgmlType::F32).to_aligned();
    assert_eq!(
        Model::from_gguf(as_bytes(&buf)).unwrap_err(),
        Error::VaporOddHeadWidth { d_head: 3 }
    );
}
