//! The committed `models/latte-micro` (and `models/latte-micro-vapor`, `models/latte-micro-decay`) against
//! golden outputs of the PyTorch reference (its recurrent form in float64, `tools/train/latte_train/golden.py`):
//! logits after every prompt byte within 1e-4, and the same greedy continuation; and the Q8_0 files of the
//! default and `latte-macchiato-micro` against the reference computing as a Q8_0 file does.

use latte_core::{Model, Sampler, SamplerConfig, Session};
use serde_json::Value;

const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models");
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/latte-micro");

/// The file's bytes in a 4-byte-aligned buffer, as mmap or an aligned include gives.
fn aligned(path: &str) -> Vec<u32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let mut words = vec![0u32; bytes.len().div_ceil(4)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    words
}

fn golden() -> Value {
    golden_in(DIR)
}

fn golden_in(dir: &str) -> Value {
    let path = format!("{dir}/golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).expect("golden JSON")
}

fn tokens(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|t| t.as_u64().expect("token") as u32)
        .collect()
}

/// Checks one model file against the golden logits; returns the worst error.
fn check_file(file: &str, tol: f64, check_greedy: bool) -> f64 {
    check_file_in(DIR, file, tol, check_greedy)
}

fn check_file_in(dir: &str, file: &str, tol: f64, check_greedy: bool) -> f64 {
    let words = aligned(&format!("{dir}/{file}"));
    let bytes = &bytemuck::cast_slice::<u32, u8>(&words);
    let model = Model::from_gguf(bytes).expect("committed model loads");
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut session = Session::new(&model, &mut state, &mut scratch).expect("session");
    let gold = golden_in(dir);
    let prompts = gold["prompts"].as_array().expect("prompts");
    assert!(prompts.len() >= 3, "golden file has too few prompts");
    let mut worst = 0f64;
    for p in prompts {
        session.reset();
        let toks = tokens(&p["tokens"]);
        let rows = p["logits"].as_array().expect("logits");
        assert_eq!(rows.len(), toks.len());
        for (&t, row) in toks.iter().zip(rows) {
            let got = session.step(t).expect("step");
            let want = row.as_array().expect("row");
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                let err = (*g as f64 - w.as_f64().expect("number")).abs();
                worst = worst.max(err);
            }
        }
        assert!(
            worst <= tol,
            "{file}: logits differ from the reference by {worst} (> {tol}) on prompt {:?}",
            p["text"]
        );
        if check_greedy {
            let want = tokens(&p["greedy"]);
            let mut sampler = Sampler::new(SamplerConfig {
                temperature: 0.0,
                repeat_penalty: 1.0,
                ..Default::default()
            })
            .expect("greedy sampler");
            let mut got = Vec::with_capacity(want.len());
            for _ in 0..want.len() {
                let t = session.sample(&mut sampler);
                got.push(t);
                session.step(t).expect("step");
            }
            assert_eq!(got, want, "{file}: greedy continuation of {:?}", p["text"]);
        }
    }
    worst
}

#[test]
fn f32_model_matches_reference_logits_and_greedy_text() {
    let worst = check_file("latte-micro-f32.gguf", 1e-4, true);
    eprintln!("latte-micro-f32.gguf: max |logit error| = {worst:e}");
}

#[test]
fn f16_model_stays_close_to_reference() {
    // f16 weights round each weight to 11 significant bits.
    let worst = check_file("latte-micro-f16.gguf", 5e-2, false);
    eprintln!("latte-micro-f16.gguf: max |logit error| = {worst:e}");
}

#[test]
fn golden_file_is_nontrivial() {
    // Guards the test above against an empty or degenerate golden file.
    let gold = golden();
    let p = &gold["prompts"][0];
    let rows = p["logits"].as_array().expect("logits");
    let first = rows[0].as_array().expect("row");
    assert_eq!(first.len(), 256);
    let spread = first
        .iter()
        .map(|v| v.as_f64().unwrap())
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    assert!(spread.1 - spread.0 > 1.0, "logits are flat: {spread:?}");
}

#[test]
fn vapor_model_matches_reference_logits_and_greedy_text() {
    let dir = format!("{MODELS}/latte-micro-vapor");
    let words = aligned(&format!("{dir}/latte-micro-vapor-f32.gguf"));
    let model = Model::from_gguf(bytemuck::cast_slice::<u32, u8>(&words)).expect("loads");
    assert_eq!(model.config().position, latte_core::Position::Vapor);
    let worst = check_file_in(&dir, "latte-micro-vapor-f32.gguf", 1e-4, true);
    eprintln!("latte-micro-vapor-f32.gguf: max |logit error| = {worst:e}");
}

#[test]
fn decay_model_matches_reference_logits_and_greedy_text() {
    // The default model: positions none, the decay gate (an extension).
    let dir = format!("{MODELS}/latte-micro-decay");
    let words = aligned(&format!("{dir}/latte-micro-decay-f32.gguf"));
    let model = Model::from_gguf(bytemuck::cast_slice::<u32, u8>(&words)).expect("loads");
    assert_eq!(model.config().position, latte_core::Position::None);
    assert!(model.config().latent_decay);
    let worst = check_file_in(&dir, "latte-micro-decay-f32.gguf", 1e-4, true);
    eprintln!("latte-micro-decay-f32.gguf: max |logit error| = {worst:e}");
    let worst = check_file_in(&dir, "latte-micro-decay-f16.gguf", 5e-2, false);
    eprintln!("latte-micro-decay-f16.gguf: max |logit error| = {worst:e}");
}

/// A greedy byte whose reference logit leads the runner-up by at least this
/// much is decisive: the runtime must pick it. Below it, float rounding may
/// legitimately take the other branch (`q8_0_files_follow_their_q8_0_reference`).
const DECISIVE_MARGIN: f64 = 0.2;

#[test]
fn q8_0_files_follow_their_q8_0_reference() {
    // The default's Q8_0 file, and Macchiato's, against the reference computing with Q8_0
    // weights and Q8_0-quantized matrix inputs (golden.json's `q8_0` entries,
    // `tools/train/latte_train/quantized.py`, from FORMAT.md alone).
    //
    // Quantizing activations is discontinuous: an input within an f32 ulp of
    // a rounding boundary lands in the other step, and the recurrent state
    // carries that on. Where no input lands on a boundary, the runtime agrees
    // with the reference to f32 rounding (RMS about 5e-7); where one does, only
    // to that flip's noise. Measured on the committed prompts: the reference
    // with its quantized inputs perturbed by a relative 1e-6 (five seeds) moves
    // from itself by an RMS of up to 0.065, while the float reference is 0.03
    // to 0.09 from it on every prompt (`python3 -m latte_train.q8_noise`).
    // So each prompt must agree within 0.1, and at least one to 1e-4, which
    // the float reference never does. The stronger check is the greedy one:
    // along the reference's greedy text, every decisive byte is the runtime's
    // argmax too.
    for name in ["latte-micro-decay", "latte-macchiato-micro"] {
        check_q8_0_file(name);
    }
}

fn check_q8_0_file(name: &str) {
    let dir = format!("{MODELS}/{name}");
    let words = aligned(&format!("{dir}/{name}-q8_0.gguf"));
    let model = Model::from_gguf(bytemuck::cast_slice::<u32, u8>(&words)).expect("loads");
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut session = Session::new(&model, &mut state, &mut scratch).expect("session");
    let gold = golden_in(&dir);
    let mut exact = 0;
    for p in gold["prompts"].as_array().expect("prompts") {
        let q = &p["q8_0"];
        assert!(
            q.is_object(),
            "{dir}/golden.json has no q8_0 reference: rerun golden.py"
        );
        session.reset();
        let (mut sum, mut n) = (0f64, 0usize);
        let mut last = Vec::new();
        for (&t, row) in tokens(&p["tokens"])
            .iter()
            .zip(q["logits"].as_array().expect("logits"))
        {
            let got = session.step(t).expect("step");
            for (g, w) in got.iter().zip(row.as_array().expect("row")) {
                let e = *g as f64 - w.as_f64().expect("number");
                sum += e * e;
                n += 1;
            }
            last = got.to_vec();
        }
        let rms = (sum / n as f64).sqrt();
        assert!(
            n > 0 && rms <= 0.1,
            "{name} {:?}: RMS logit error {rms} against the Q8_0 reference",
            p["text"]
        );
        if rms <= 1e-4 {
            exact += 1;
        }
        let greedy = tokens(&q["greedy"]);
        let margins: Vec<f64> = q["greedy_margins"]
            .as_array()
            .expect("margins")
            .iter()
            .map(|m| m.as_f64().expect("number"))
            .collect();
        assert_eq!(margins.len(), greedy.len());
        let mut decisive = 0;
        for (i, (&want, &margin)) in greedy.iter().zip(&margins).enumerate() {
            let argmax = (0..last.len())
                .max_by(|&a, &b| last[a].total_cmp(&last[b]).then(b.cmp(&a)))
                .expect("logits") as u32;
            if margin >= DECISIVE_MARGIN {
                decisive += 1;
                assert_eq!(
                    argmax, want,
                    "{name} {:?}: greedy byte {i} (reference margin {margin})",
                    p["text"]
                );
            }
            last = session.step(want).expect("step").to_vec();
        }
        assert!(
            decisive >= greedy.len() * 3 / 4,
            "{name} {:?}: only {decisive} of {} greedy bytes are decisive",
            p["text"],
            greedy.len()
        );
    }
    assert!(
        exact >= 1,
        "{name}: no prompt follows the Q8_0 reference to 1e-4 (RMS); is the file computed as Q8_0?"
    );
}
