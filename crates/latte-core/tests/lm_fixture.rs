//! The official tiny-LM fixture (`tests/fixtures/`, key "lm"): logits at all 8
//! positions, through `from_parts` and through a GGUF file.

mod common;

use common::{fixture, flat, max_abs_diff, tiny_lm, GgmlType, GgufParts};
use latte_core::{Model, Session};

const TOL: f64 = 1e-5;

fn expected() -> (Vec<u32>, Vec<f64>) {
    let fx = fixture();
    let lm = &fx["lm"];
    assert_eq!(lm["V"].as_u64(), Some(11));
    assert_eq!(lm["layers"].as_u64(), Some(2));
    let tokens: Vec<u32> = flat(&lm["tokens"]).iter().map(|&t| t as u32).collect();
    assert_eq!(tokens, [3, 1, 4, 1, 5, 9, 2, 6]);
    (tokens, flat(&lm["logits"]))
}

/// Runs the tokens one by one; returns the worst error over all positions.
fn check(model: &Model<'_>, tol: f64) {
    let (tokens, want) = expected();
    let v = model.config().vocab_size;
    let mut state = vec![0.0f32; model.state_len()];
    let mut scratch = vec![0.0f32; model.scratch_len()];
    let mut s = Session::new(model, &mut state, &mut scratch).unwrap();
    for (t, &tok) in tokens.iter().enumerate() {
        let logits = s.step(tok).unwrap();
        let err = max_abs_diff(logits, &want[t * v..(t + 1) * v]);
        assert!(
            err < tol,
            "position {t}: max abs err {err:e}\n got {logits:?}"
        );
    }
    assert_eq!(s.position(), 8);
}

#[test]
fn lm_fixture_from_parts() {
    let m = tiny_lm();
    let layers = m.layer_weights();
    let model = Model::from_parts(m.config, m.weights(&layers)).unwrap();
    check(&model, TOL);
}

#[test]
fn lm_fixture_from_gguf() {
    let m = tiny_lm();
    let buf = GgufParts::new(&m, GgmlType::F32).to_aligned();
    let model = Model::from_gguf(common::as_bytes(&buf)).unwrap();
    assert_eq!(*model.config(), m.config);
    check(&model, TOL);
}

#[test]
fn lm_fixture_f16_weights() {
    // F16 matrices: the weights are rounded to ~3 significant digits, so
    // the logits move by about 1e-3 but must stay close.
    let m = tiny_lm();
    let buf = GgufParts::new(&m, GgmlType::F16).to_aligned();
    let model = Model::from_gguf(common::as_bytes(&buf)).unwrap();
    check(&model, 2e-3);
}

#[test]
fn feed_equals_steps() {
    let (tokens, want) = expected();
    let m = tiny_lm();
    let layers = m.layer_weights();
    let model = Model::from_parts(m.config, m.weights(&layers)).unwrap();
    let mut state = vec![0.0f32; model.state_len()];
    let mut scratch = vec![0.0f32; model.scratch_len()];
    let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
    let logits = s.feed(&tokens).unwrap().to_vec();
    assert!(max_abs_diff(&logits, &want[7 * 11..]) < TOL);
    assert_eq!(s.logits(), &logits[..]);
}
