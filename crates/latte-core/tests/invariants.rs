//! Properties of the recurrence (spec §2.2, §6.1): bounds on n, m as the
//! running maximum of the keys, the first-token identity, constant state
//! size over long runs, and bit-exact reset.

mod common;

use common::{latte_weights, matvec64, random_model, tiny_lm, TestRng};
use latte_core::{Config, LatteLayer, Matrix, Model, Position, Session};

fn fixture_layer<'a>(w: &'a [Vec<f32>; 4]) -> LatteLayer<'a> {
    LatteLayer::new(
        2,
        6,
        8,
        Matrix::from_f32(6, 8, &w[0]).unwrap(),
        Matrix::from_f32(6, 8, &w[1]).unwrap(),
        Matrix::from_f32(8, 8, &w[2]).unwrap(),
        Matrix::from_f32(8, 8, &w[3]).unwrap(),
    )
    .unwrap()
}

#[test]
fn n_bounds_running_max_and_first_token() {
    let w = latte_weights(8, 6, 0.0);
    let layer = fixture_layer(&w);
    let mut state = vec![0.0f32; layer.state_len()];
    let mut scratch = vec![0.0f32; layer.scratch_len()];
    layer.reset_state(&mut state);
    let mut rng = TestRng(7);
    let mut kmax = [f64::NEG_INFINITY; 6];
    let mut out = [0.0f32; 8];
    for t in 0..200 {
        // Large inputs exercise the max-subtraction (keys up to ~±40).
        let x: Vec<f32> = rng.vec(8, 10.0);
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        layer
            .step(&x, &mut state, None, &mut scratch, &mut out)
            .unwrap();
        let k = matvec64(&w[1], 6, 8, &x64);
        for (m, kk) in kmax.iter_mut().zip(&k) {
            *m = m.max(*kk);
        }
        let st = layer.split_state(&state).unwrap();
        for (i, (&n, &m)) in st.n.iter().zip(st.m).enumerate() {
            assert!(
                n >= 1.0 - 1e-6 && n <= (t + 1) as f32 * (1.0 + 1e-6),
                "t={t} latent {i}: n={n}"
            );
            assert!(
                (m as f64 - kmax[i]).abs() < 1e-4 * (1.0 + kmax[i].abs()),
                "t={t} latent {i}: m={m} vs {}",
                kmax[i]
            );
        }
        assert!(out.iter().all(|v| v.is_finite()));
        if t == 0 {
            // First token: every head's output is its own value, y = Wo v0.
            let v0 = matvec64(&w[2], 8, 8, &x64);
            let want = matvec64(&w[3], 8, 8, &v0);
            for (a, b) in out.iter().zip(&want) {
                assert!((*a as f64 - b).abs() < 1e-4, "first token {a} vs {b}");
            }
            assert!(
                st.n.iter().all(|&n| n == 1.0),
                "n after one token: {:?}",
                st.n
            );
        }
    }
}

#[test]
fn long_run_constant_state_and_invariants() {
    let config = Config {
        vocab_size: 13,
        d_model: 8,
        n_layers: 3,
        n_heads: 2,
        n_latents: 4,
        d_ff: 16,
        context_length: 16,
        ln_eps: 1e-6,
        position: Position::Sinusoidal,
        latent_decay: false,
        mixing: latte_core::Mixing::Latte,
    };
    let m = random_model(config, 3);
    let layers = m.layer_weights();
    let model = Model::from_parts(m.config, m.weights(&layers)).unwrap();
    let (state_len, scratch_len) = (model.state_len(), model.scratch_len());
    assert_eq!(state_len, 3 * (4 * 4 + 2 * 4));
    // Exactly sized buffers: a session never needs more as it runs.
    let mut state = vec![0.0f32; state_len];
    let mut scratch = vec![0.0f32; scratch_len];
    let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
    let mut rng = TestRng(11);
    for t in 0..1000u64 {
        let tok = ((rng.next_f64() + 1.0) * 6.5) as u32 % 13;
        let logits = s.step(tok).unwrap();
        assert!(logits.iter().all(|v| v.is_finite()), "t={t}");
        assert_eq!(s.position(), t + 1);
        for li in 0..3 {
            let st = s.layer_state(li).unwrap();
            for &n in st.n {
                assert!(
                    n >= 1.0 - 1e-5 && n <= (t + 1) as f32 * (1.0 + 1e-5),
                    "t={t} layer {li}: n={n}"
                );
            }
        }
        assert_eq!(s.state().len(), state_len);
    }
    assert!(s.layer_state(3).is_none());
    assert_eq!(model.state_len(), state_len);
    assert_eq!(model.scratch_len(), scratch_len);
}

#[test]
fn reset_reproduces_bit_identical_logits() {
    let m = tiny_lm();
    let layers = m.layer_weights();
    let model = Model::from_parts(m.config, m.weights(&layers)).unwrap();
    // Longer buffers than needed are fine.
    let mut state = vec![7.0f32; model.state_len() + 5];
    let mut scratch = vec![-3.0f32; model.scratch_len() + 9];
    let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
    let prompt = [3u32, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9];
    let first: Vec<Vec<u32>> = prompt
        .iter()
        .map(|&t| s.step(t).unwrap().iter().map(|v| v.to_bits()).collect())
        .collect();
    let state_after = s.state().to_vec();
    s.reset();
    assert_eq!(s.position(), 0);
    assert!(s.logits().iter().all(|&v| v == 0.0));
    let second: Vec<Vec<u32>> = prompt
        .iter()
        .map(|&t| s.step(t).unwrap().iter().map(|v| v.to_bits()).collect())
        .collect();
    assert_eq!(first, second);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&state_after), bits(s.state()));
    // A fresh session over dirty buffers gives the same result too
    // (`s` is no longer used, so the buffers can be borrowed again).
    let mut s2 = Session::new(&model, &mut state, &mut scratch).unwrap();
    let third: Vec<Vec<u32>> = prompt
        .iter()
        .map(|&t| s2.step(t).unwrap().iter().map(|v| v.to_bits()).collect())
        .collect();
    assert_eq!(first, third);
}

fn layer<'a>(l: usize, w: [&'a [f32]; 4]) -> LatteLayer<'a> {
    LatteLayer::new(
        2,
        l,
        8,
        Matrix::from_f32(l, 8, w[0]).unwrap(),
        Matrix::from_f32(l, 8, w[1]).unwrap(),
        Matrix::from_f32(8, 8, w[2]).unwrap(),
        Matrix::from_f32(8, 8, w[3]).unwrap(),
    )
    .unwrap()
}

#[test]
fn single_latent_per_head_ignores_queries() {
    // Lh = 1: the query softmax is identically 1 (spec §5.13), so changing
    // Wq must not change the output at all.
    let mut rng = TestRng(5);
    let (wq1, wq2, wk) = (rng.vec(16, 1.0), rng.vec(16, 1.0), rng.vec(16, 1.0));
    let (wv, wo) = (rng.vec(64, 0.5), rng.vec(64, 0.5));
    let a = layer(2, [&wq1, &wk, &wv, &wo]);
    let b = layer(2, [&wq2, &wk, &wv, &wo]);
    let (mut sa, mut sb) = (vec![0.0f32; a.state_len()], vec![0.0f32; b.state_len()]);
    a.reset_state(&mut sa);
    b.reset_state(&mut sb);
    let mut scratch = vec![0.0f32; a.scratch_len()];
    let (mut oa, mut ob) = ([0.0f32; 8], [0.0f32; 8]);
    for _ in 0..20 {
        let x = rng.vec(8, 2.0);
        a.step(&x, &mut sa, None, &mut scratch, &mut oa).unwrap();
        b.step(&x, &mut sb, None, &mut scratch, &mut ob).unwrap();
        assert_eq!(oa, ob);
    }
    // With two latents per head the queries do matter (the test can fail).
    let (wq3, wk3) = (rng.vec(32, 1.0), rng.vec(32, 1.0));
    let wq4 = rng.vec(32, 1.0);
    let c = layer(4, [&wq3, &wk3, &wv, &wo]);
    let d = layer(4, [&wq4, &wk3, &wv, &wo]);
    let (mut sc, mut sd) = (vec![0.0f32; c.state_len()], vec![0.0f32; d.state_len()]);
    c.reset_state(&mut sc);
    d.reset_state(&mut sd);
    let mut scratch = vec![0.0f32; c.scratch_len()];
    let mut differ = false;
    for _ in 0..5 {
        let x = rng.vec(8, 2.0);
        c.step(&x, &mut sc, None, &mut scratch, &mut oa).unwrap();
        d.step(&x, &mut sd, None, &mut scratch, &mut ob).unwrap();
        differ |= oa != ob;
    }
    assert!(differ);
}

#[test]
fn layer_states_lie_back_to_back_at_the_model_offsets() {
    let config = Config {
        vocab_size: 13,
        d_model: 8,
        n_layers: 3,
        n_heads: 2,
        n_latents: 4,
        d_ff: 16,
        context_length: 16,
        ln_eps: 1e-6,
        position: Position::Sinusoidal,
        latent_decay: false,
        mixing: latte_core::Mixing::Latte,
    };
    let m = random_model(config, 5);
    let layers = m.layer_weights();
    let model = Model::from_parts(m.config, m.weights(&layers)).unwrap();
    let mut next = 0;
    for li in 0..3 {
        let mixer = model.mixer(li).unwrap();
        assert_eq!(mixer.kind(), "latte");
        let range = model.layer_state_range(li).unwrap();
        assert_eq!(range.start, next, "layer {li} starts where the last ended");
        assert_eq!(range.len(), mixer.state_len());
        assert_eq!(range.len(), config.layer_state_len());
        next = range.end;
    }
    assert_eq!(next, model.state_len());
    assert!(model.layer_state_range(3).is_none() && model.mixer(3).is_none());
    let mut state = vec![0.0f32; model.state_len()];
    let mut scratch = vec![0.0f32; model.scratch_len()];
    let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
    s.feed(&[1, 2, 3, 4, 5]).unwrap();
    for li in 0..3 {
        let range = model.layer_state_range(li).unwrap();
        let view = s.layer_state(li).unwrap();
        let whole = &s.state()[range];
        let (sl, l) = (4 * 4, 4);
        assert_eq!(view.s, &whole[..sl]);
        assert_eq!(view.n, &whole[sl..sl + l]);
        assert_eq!(view.m, &whole[sl + l..]);
        assert!(
            view.m.iter().all(|m| m.is_finite()),
            "fed layers leave -inf"
        );
    }
    // A reset gives every layer its own initial state (S = 0, n = 0, m = -inf).
    s.reset();
    for li in 0..3 {
        let view = s.layer_state(li).unwrap();
        assert!(view.s.iter().chain(view.n).all(|&v| v == 0.0));
        assert!(view.m.iter().all(|&v| v == f32::NEG_INFINITY));
    }
}
