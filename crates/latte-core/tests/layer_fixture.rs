//! The official `StableScanLatte` layer fixture (`tests/fixtures/`, key "layer"):
//! causal outputs of all tokens and the final state (S, n, m).

mod common;

use common::{fixture, flat, latte_weights, max_abs_diff};
use latte_core::{LatteLayer, Matrix};

const TOL: f64 = 1e-5;

#[test]
fn layer_fixture_outputs_and_final_state() {
    let fx = fixture();
    let lay = &fx["layer"];
    let (d, h, l, t_len) = (
        lay["D"].as_u64().unwrap() as usize,
        lay["H"].as_u64().unwrap() as usize,
        lay["L"].as_u64().unwrap() as usize,
        lay["T"].as_u64().unwrap() as usize,
    );
    assert_eq!((d, h, l, t_len), (8, 2, 6, 5));
    let [wq, wk, wv, wo] = latte_weights(d, l, 0.0);
    let layer = LatteLayer::new(
        h,
        l,
        d,
        Matrix::from_f32(l, d, &wq).unwrap(),
        Matrix::from_f32(l, d, &wk).unwrap(),
        Matrix::from_f32(d, d, &wv).unwrap(),
        Matrix::from_f32(d, d, &wo).unwrap(),
    )
    .unwrap();
    assert_eq!(layer.state_len(), l * (d / h) + 2 * l);

    let mut state = vec![0.0f32; layer.state_len()];
    let mut scratch = vec![0.0f32; layer.scratch_len()];
    layer.reset_state(&mut state);
    let want_y = flat(&lay["causal_Y"]);
    assert_eq!(want_y.len(), t_len * d);
    let mut out = vec![0.0f32; d];
    for t in 0..t_len {
        let x: Vec<f32> = (0..d)
            .map(|k| ((0.3 * t as f64 + 0.7 * k as f64).cos() * (1.0 + 0.5 * t as f64)) as f32)
            .collect();
        layer
            .step(&x, &mut state, None, &mut scratch, &mut out)
            .unwrap();
        let err = max_abs_diff(&out, &want_y[t * d..(t + 1) * d]);
        assert!(err < TOL, "token {t}: max abs err {err:e}\n got {out:?}");
    }
    // At the last position causal and bidirectional Latte coincide.
    let bid = flat(&lay["bidirectional_Y"]);
    assert!(max_abs_diff(&out, &bid[(t_len - 1) * d..]) < TOL);

    let st = layer.split_state(&state).unwrap();
    let errs = [
        ("S", max_abs_diff(st.s, &flat(&lay["final_state_S"]))),
        ("n", max_abs_diff(st.n, &flat(&lay["final_state_n"]))),
        ("m", max_abs_diff(st.m, &flat(&lay["final_state_m"]))),
    ];
    for (name, err) in errs {
        assert!(err < TOL, "final state {name}: max abs err {err:e}");
    }
    // The n and m printed in tests/fixtures/README.md agree with the JSON.
    assert!((st.n[0] as f64 - 4.063081027).abs() < TOL);
    assert!((st.m[5] as f64 - 1.008641303).abs() < TOL);
}

#[test]
fn layer_step_rejects_short_buffers() {
    let [wq, wk, wv, wo] = latte_weights(8, 6, 0.0);
    let layer = LatteLayer::new(
        2,
        6,
        8,
        Matrix::from_f32(6, 8, &wq).unwrap(),
        Matrix::from_f32(6, 8, &wk).unwrap(),
        Matrix::from_f32(8, 8, &wv).unwrap(),
        Matrix::from_f32(8, 8, &wo).unwrap(),
    )
    .unwrap();
    let mut state = vec![0.0f32; layer.state_len()];
    let mut scratch = vec![0.0f32; layer.scratch_len()];
    let mut out = [0.0f32; 8];
    let x = [0.5f32; 8];
    let short_state = layer.state_len() - 1;
    let e = layer.step(&x, &mut state[..short_state], None, &mut scratch, &mut out);
    assert!(
        matches!(
            e,
            Err(latte_core::Error::BufferLength { what: "state", .. })
        ),
        "{e:?}"
    );
    let e = layer.step(&x[..7], &mut state, None, &mut scratch, &mut out);
    assert!(
        matches!(e, Err(latte_core::Error::BufferLength { what: "x", .. })),
        "{e:?}"
    );
    let e = layer.step(&x, &mut state, Some(&[1.0, 0.0]), &mut scratch, &mut out);
    assert!(
        matches!(
            e,
            Err(latte_core::Error::BufferLength {
                what: "rotation table",
                ..
            })
        ),
        "{e:?}"
    );
    // Wrong matrix shape is rejected at construction.
    let e = LatteLayer::new(
        2,
        6,
        8,
        Matrix::from_f32(8, 6, &wq).unwrap(),
        Matrix::from_f32(6, 8, &wk).unwrap(),
        Matrix::from_f32(8, 8, &wv).unwrap(),
        Matrix::from_f32(8, 8, &wo).unwrap(),
    );
    assert!(e.is_err());
}
