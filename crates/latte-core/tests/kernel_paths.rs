//! Determinism across kernel paths: greedy generation from the committed
//! models gives the same bytes on every kernel path this CPU has (scalar and
//! the SIMD ones), equal to the PyTorch reference's greedy continuation
//! where the reference applies (for a Q8_0 file, the reference computing as
//! that file does: golden.json's `q8_0` entry), and the boards' expected output
//! (`boards/expected/<model file>.txt`, what the firmware must print under
//! QEMU, `boards/check.sh`) is what a host computes: the greedy line is the reference continuation, the sampled line
//! the host's output on every path. The Arm paths run the same check through
//! `boards/check.sh` (DSP kernels on the QEMU Cortex-M boards, NEON and sdot
//! in `sbc-aarch64` under qemu-user).

use latte_core::{KernelPath, Kernels, Model, Sampler, SamplerConfig, Session};
use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const GREEDY_PROMPT: &str = "And God said, Let there be light";
const SAMPLED_PROMPT: &str = "It was a dark and stormy night";
/// The boards' sampled line: `latte run`'s defaults with seed 42.
const SAMPLED: SamplerConfig = SamplerConfig {
    temperature: 0.8,
    top_k: 40,
    top_p: 0.95,
    repeat_penalty: 1.0,
    repeat_last_n: 64,
    seed: 42,
};
/// The models the boards run (model folder, file suffix) and whose golden
/// text they print: the default's Q8_0 file, and Macchiato's f16 file.
const BOARD_MODELS: &[(&str, &str)] = &[
    ("latte-micro-decay", "q8_0"),
    ("latte-macchiato-micro", "f16"),
];

fn aligned(path: &str) -> Vec<u32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let mut words = vec![0u32; bytes.len().div_ceil(4)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    words
}

fn paths() -> Vec<Kernels> {
    let found: Vec<Kernels> = KernelPath::ALL.iter().filter_map(|p| p.kernels()).collect();
    // Scalar always, and on the CI hosts at least one SIMD path: otherwise
    // the test would compare scalar with itself.
    assert!(found.len() >= 2 || cfg!(not(any(target_arch = "x86_64", target_arch = "aarch64"))));
    found
}

fn generate(model: &Model<'_>, cfg: SamplerConfig, prompt: &str, n: usize) -> Vec<u8> {
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut session = Session::new(model, &mut state, &mut scratch).unwrap();
    let mut sampler = Sampler::new(cfg).unwrap();
    let tokens: Vec<u32> = prompt.bytes().map(u32::from).collect();
    tokens.iter().for_each(|&t| sampler.accept(t));
    session.feed(&tokens).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let t = session.sample(&mut sampler);
        out.push(t as u8);
        session.step(t).unwrap();
    }
    out
}

/// The reference's greedy continuation of `prompt` for the model's file of
/// type `suffix` (`q8_0`: the Q8_0 reference), and the reference's margin
/// (top logit minus the runner-up) at each byte.
fn golden_greedy(model: &str, suffix: &str, prompt: &str) -> (Vec<u8>, Vec<f64>) {
    let path = format!("{ROOT}/models/{model}/golden.json");
    let gold: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let p = gold["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["text"] == prompt)
        .unwrap_or_else(|| panic!("{prompt:?} is not a golden prompt"));
    let p = match suffix {
        "q8_0" => &p["q8_0"],
        "f32" | "f16" => p,
        _ => panic!("{path} has no reference for {suffix} files"),
    };
    let greedy = p["greedy"]
        .as_array()
        .unwrap_or_else(|| panic!("{path}: no greedy text for {suffix}: rerun golden.py"))
        .iter()
        .map(|t| t.as_u64().unwrap() as u8)
        .collect();
    // Goldens written before golden.py recorded margins have none.
    let margins = p["greedy_margins"].as_array().map_or(Vec::new(), |m| {
        m.iter().map(|m| m.as_f64().unwrap()).collect()
    });
    (greedy, margins)
}

/// The bytes of a `b"..."` line as defmt's `{=[u8]:a}` and Rust's
/// `escape_ascii` print them.
fn unescape(line: &str) -> Vec<u8> {
    let s = line
        .strip_prefix("b\"")
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a b\"...\" line: {line}"));
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (v, len) = match b[i + 1] {
            b'n' => (b'\n', 2),
            b't' => (b'\t', 2),
            b'r' => (b'\r', 2),
            b'0' => (0, 2),
            c @ (b'\\' | b'"' | b'\'') => (c, 2),
            b'x' => (u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap(), 4),
            c => panic!("unknown escape \\{}", c as char),
        };
        out.push(v);
        i += len;
    }
    out
}

fn expected(file: &str, key: &str) -> Vec<u8> {
    let path = format!("{ROOT}/boards/expected/{file}.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("{path} has no {key}: line"));
    unescape(line)
}

#[test]
fn every_kernel_path_generates_the_same_text_as_the_reference_and_the_boards() {
    for &(board_model, suffix) in BOARD_MODELS {
        let file = format!("{board_model}-{suffix}");
        let words = aligned(&format!("{ROOT}/models/{board_model}/{file}.gguf"));
        let bytes = bytemuck::cast_slice::<u32, u8>(&words);
        let (reference, margins) = golden_greedy(board_model, suffix, GREEDY_PROMPT);
        for k in paths() {
            let model = Model::from_gguf(bytes).unwrap().with_kernels(k);
            let name = k.path().name();
            let greedy = generate(&model, SamplerConfig::default(), GREEDY_PROMPT, 64);
            if let Some(i) = (0..64).find(|&i| greedy.get(i) != reference.get(i)) {
                panic!(
                    "{file} {name}: greedy text differs from the PyTorch reference at byte {i} \
                     (reference margin there {:?}): {:?} vs {:?}",
                    margins.get(i),
                    String::from_utf8_lossy(&greedy),
                    String::from_utf8_lossy(&reference)
                );
            }
            let sampled = generate(&model, SAMPLED, SAMPLED_PROMPT, 64);
            assert_eq!(
                greedy,
                expected(&file, "greedy"),
                "{file} {name} vs the boards' greedy line"
            );
            assert_eq!(
                sampled,
                expected(&file, "sampled"),
                "{file} {name} vs the boards' sampled line"
            );
        }
    }
}

#[test]
fn greedy_text_is_identical_on_every_path_for_every_golden_prompt() {
    for (dir, file) in [
        ("latte-micro", "latte-micro-f32.gguf"),
        ("latte-micro", "latte-micro-f16.gguf"),
        ("latte-micro", "latte-micro-q4_0.gguf"),
        ("latte-micro-decay", "latte-micro-decay-f32.gguf"),
        ("latte-micro-decay", "latte-micro-decay-q4_0.gguf"),
    ] {
        let gold: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{ROOT}/models/{dir}/golden.json")).unwrap(),
        )
        .unwrap();
        let words = aligned(&format!("{ROOT}/models/{dir}/{file}"));
        let bytes = bytemuck::cast_slice::<u32, u8>(&words);
        for p in gold["prompts"].as_array().unwrap() {
            let prompt = p["text"].as_str().unwrap();
            let scalar = Model::from_gguf(bytes)
                .unwrap()
                .with_kernels(Kernels::scalar());
            let want = generate(&scalar, SamplerConfig::default(), prompt, 32);
            for k in paths() {
                let model = Model::from_gguf(bytes).unwrap().with_kernels(k);
                let got = generate(&model, SamplerConfig::default(), prompt, 32);
                assert_eq!(
                    got,
                    want,
                    "{file}, {prompt:?}: {} differs from scalar",
                    k.path()
                );
            }
        }
    }
}

#[test]
fn unescape_reads_what_the_boards_print() {
    assert_eq!(
        unescape(r#"b"a\nb\x00\xff\"\\""#),
        b"a\nb\x00\xff\"\\".to_vec()
    );
}
