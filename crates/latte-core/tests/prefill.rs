//! Chunked prefill (`Session::prefill`, `prefill_with`) and split products
//! (`Parallel`): the same bits as feeding the tokens one by one.
//!
//! * The committed models (f32, f16, Q8_0, Q4_0 `latte-micro`; f32 and
//!   Q8_0 `latte-micro-vapor`) on this CPU's best kernel path (and Q4_0 on
//!   the scalar path too): logits after every position, state and position
//!   are bit-identical to `Session::step` for chunks of 1, 2, 7 and 64
//!   tokens (7 and 64 for the f16 and VAPOR files, to keep debug builds
//!   quick) and prompt lengths that are not multiples of the chunk.
//! * Random models with mixed weight types (Q4_0 blocks, Q8_0 embedding
//!   and head, F16 `ffn_down`), odd widths, several heads, VAPOR.
//! * Any split of the rows over any number of threads gives the same bits.
//! * Bad arguments are errors that change nothing.

mod common;

use common::{as_bytes, random_model, GgmlType, GgufParts};
use latte_core::latte_kernels::{quantize_row_q4_0, quantize_row_q8_0};
use latte_core::{
    BlockQ4_0, BlockQ8_0, Config, Error, Kernels, Model, Parallel, Position, RowTask, Sequential,
    Session, TaskInput,
};

const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models");

const ALL_CHUNKS: &[usize] = &[1, 2, 7, 64];
const SOME_CHUNKS: &[usize] = &[7, 64];

/// The committed model files and the chunk sizes tested on each.
const FILES: &[(&str, &[usize])] = &[
    ("latte-micro/latte-micro-f32.gguf", ALL_CHUNKS),
    ("latte-micro/latte-micro-f16.gguf", SOME_CHUNKS),
    ("latte-micro/latte-micro-q8_0.gguf", ALL_CHUNKS),
    ("latte-micro/latte-micro-q4_0.gguf", ALL_CHUNKS),
    ("latte-micro-vapor/latte-micro-vapor-f32.gguf", SOME_CHUNKS),
    ("latte-micro-vapor/latte-micro-vapor-q8_0.gguf", SOME_CHUNKS),
];

/// Tokens of the main prompt: 71 = 64 + 7 = 10 * 7 + 1, odd.
const N: usize = 71;

/// Prompt bytes.
fn prompt(n: usize) -> Vec<u32> {
    b"It was a dark and stormy night; the rain fell in torrents, except at occasional \
intervals, when it was checked by a violent gust of wind which swept up the streets"
        .iter()
        .cycle()
        .take(n)
        .map(|&b| u32::from(b))
        .collect()
}

fn file(path: &str) -> (Vec<u32>, usize) {
    let bytes = std::fs::read(format!("{MODELS}/{path}")).expect("committed model");
    common::aligned(&bytes)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Token by token: the logits after every token (flattened), and the state
/// after each position in `keep` (1-based counts).
fn reference(model: &Model<'_>, tokens: &[u32], keep: &[usize]) -> (Vec<f32>, Vec<Vec<f32>>) {
    let mut state = vec![0.0; model.state_len()];
    let mut scratch = vec![f32::NAN; model.scratch_len()];
    let mut s = Session::new(model, &mut state, &mut scratch).unwrap();
    let mut logits = Vec::new();
    let mut states = Vec::new();
    for (i, &t) in tokens.iter().enumerate() {
        logits.extend_from_slice(s.step(t).unwrap());
        if keep.contains(&(i + 1)) {
            states.push(s.state().to_vec());
        }
    }
    (logits, states)
}

/// The scratch of a prefill, filled with NaN so that reading an unwritten
/// value would show.
fn prefill_scratch(model: &Model<'_>, chunk: usize) -> Vec<f32> {
    vec![f32::NAN; model.prefill_scratch_len(chunk)]
}

/// Checks `model` (already on its kernel path) against token-by-token.
fn check_model(model: &Model<'_>, what: &str, chunks: &[usize]) {
    let v = model.config().vocab_size;
    let tokens = prompt(N);
    let lens = [5usize, 65, N];
    let (want, states) = reference(model, &tokens, &lens);
    let want_state = |n: usize| &states[lens.iter().position(|&l| l == n).unwrap()];
    let mut state = vec![0.0; model.state_len()];
    let mut scratch = vec![f32::NAN; model.scratch_len()];
    let mut s = Session::new(model, &mut state, &mut scratch).unwrap();
    for &chunk in chunks {
        let mut ps = prefill_scratch(model, chunk);
        // The logits of every position.
        s.reset();
        let mut all = vec![f32::NAN; N * v];
        let last = s
            .prefill_with(&tokens, chunk, &mut ps, &Sequential, Some(&mut all))
            .unwrap()
            .to_vec();
        assert!(
            bits(&all) == bits(&want),
            "{what}: all logits, chunk {chunk}"
        );
        assert_eq!(
            bits(&last),
            bits(&want[(N - 1) * v..]),
            "{what}: chunk {chunk}"
        );
        assert_eq!(s.position(), N as u64);
        assert!(
            bits(s.state()) == bits(want_state(N)),
            "{what}: state, chunk {chunk}"
        );
        // Last logits only (the head for the last token alone).
        for n in [5, N] {
            s.reset();
            let got = s.prefill(&tokens[..n], chunk, &mut ps).unwrap().to_vec();
            assert_eq!(
                bits(&got),
                bits(&want[(n - 1) * v..n * v]),
                "{what}: {n} tokens, chunk {chunk}"
            );
            assert_eq!(bits(s.logits()), bits(&got));
            assert_eq!(s.position(), n as u64);
            assert!(
                bits(s.state()) == bits(want_state(n)),
                "{what}: state, {n} tokens, chunk {chunk}"
            );
        }
    }
    // A prefill continues from where steps or another prefill left off,
    // and steps continue a prefill.
    s.reset();
    s.step(tokens[0]).unwrap();
    let mut ps = prefill_scratch(model, 7);
    s.prefill(&tokens[1..65], 7, &mut ps).unwrap();
    assert!(
        bits(s.state()) == bits(want_state(65)),
        "{what}: resumed state"
    );
    let got = s.step(tokens[65]).unwrap();
    assert_eq!(bits(got), bits(&want[65 * v..66 * v]), "{what}: step after");
    let got = s.prefill(&tokens[66..], 64, &mut ps).unwrap().to_vec();
    assert_eq!(bits(&got), bits(&want[(N - 1) * v..]), "{what}: resumed");
    assert!(
        bits(s.state()) == bits(want_state(N)),
        "{what}: resumed state"
    );
}

#[test]
fn committed_models_prefill_equals_token_by_token_bit_for_bit() {
    for &(path, chunks) in FILES {
        let buf = file(path);
        let base = Model::from_gguf(as_bytes(&buf)).unwrap();
        let mut kernels = vec![Kernels::best()];
        if path.ends_with("q4_0.gguf") && Kernels::best() != Kernels::scalar() {
            kernels.push(Kernels::scalar());
        }
        for k in kernels {
            let model = base.clone().with_kernels(k);
            check_model(&model, &format!("{path} ({})", k.path()), chunks);
        }
    }
}

#[test]
fn random_models_prefill_equals_token_by_token() {
    // Shapes the committed models do not have: odd widths (f32), several
    // heads, VAPOR, and quantized matrices of 64 columns.
    for (position, d, ty) in [
        (Position::Sinusoidal, 12, GgmlType::F32),
        (Position::Vapor, 12, GgmlType::F16),
        (Position::Sinusoidal, 64, GgmlType::Q4_0),
        (Position::Vapor, 64, GgmlType::Q8_0),
        (Position::Vapor, 64, GgmlType::Q4_0),
    ] {
        let config = Config {
            vocab_size: 19,
            d_model: d,
            n_layers: 2,
            n_heads: 2,
            n_latents: 6,
            d_ff: 4 * d,
            context_length: 64,
            ln_eps: 1e-6,
            position,
            latent_decay: false,
            mixing: latte_core::Mixing::Latte,
        };
        let om = random_model(config, 7);
        let buf = match ty {
            GgmlType::F32 | GgmlType::F16 => GgufParts::new(&om, ty).to_aligned(),
            _ => quantized(&om, ty),
        };
        let model = Model::from_gguf(as_bytes(&buf)).unwrap();
        let tokens: Vec<u32> = (0..23u32).map(|i| (i * 7 + 3) % 19).collect();
        let (want, _) = reference(&model, &tokens, &[]);
        for chunk in [1usize, 2, 5, 23, 64] {
            let mut ps = prefill_scratch(&model, chunk);
            let mut state = vec![0.0; model.state_len()];
            let mut scratch = vec![f32::NAN; model.scratch_len()];
            let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
            let mut all = vec![f32::NAN; tokens.len() * 19];
            s.prefill_with(&tokens, chunk, &mut ps, &Sequential, Some(&mut all))
                .unwrap();
            assert!(
                bits(&all) == bits(&want),
                "{position:?} {ty:?} chunk {chunk}"
            );
        }
    }
}

/// `om` with its block matrices stored as `ty`, the embedding and head as
/// Q8_0 and `ffn_down` of the last layer as F16: every kind of product.
fn quantized(om: &common::OwnedModel, ty: GgmlType) -> (Vec<u32>, usize) {
    let mut p = GgufParts::new(om, GgmlType::F32);
    let last_down = format!("blk.{}.ffn_down.weight", om.config.n_layers - 1);
    for t in &mut p.tensors {
        if t.ne.len() != 2 {
            continue;
        }
        let w: Vec<f32> = t
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let ty = if t.name == last_down {
            GgmlType::F16
        } else if t.name.starts_with("blk.") {
            ty
        } else {
            GgmlType::Q8_0
        };
        t.data = match ty {
            GgmlType::F16 => w
                .iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect(),
            GgmlType::Q4_0 => {
                let mut b = vec![BlockQ4_0::default(); w.len() / 32];
                quantize_row_q4_0(&w, &mut b);
                bytemuck::cast_slice(&b).to_vec()
            }
            _ => {
                let mut b = vec![BlockQ8_0::default(); w.len() / 32];
                quantize_row_q8_0(&w, &mut b);
                bytemuck::cast_slice(&b).to_vec()
            }
        };
        t.ty = ty;
    }
    p.to_aligned()
}

// ---------------------------------------------------------------------------
// Splitting the rows.

/// Splits every task into `parts` row ranges computed into separate
/// buffers (last part first), then copies them into place.
struct Split(usize);

impl<'a> Parallel<'a> for Split {
    fn run(&self, task: &RowTask<'a, '_>, out: &mut [f32]) {
        let (rows, tokens) = (task.rows(), task.tokens());
        for p in (0..self.0).rev() {
            let r = task.part(p, self.0);
            let mut buf = vec![f32::NAN; tokens * r.len()];
            task.compute(r.clone(), &mut buf, r.len());
            for t in 0..tokens {
                out[t * rows + r.start..t * rows + r.end]
                    .copy_from_slice(&buf[t * r.len()..(t + 1) * r.len()]);
            }
        }
    }
}

/// Real threads: `std::thread::scope` per task, the first part on the
/// calling thread, the input copied for the others (as a persistent pool
/// does: `with_input`).
struct Scoped(usize);

impl<'a> Parallel<'a> for Scoped {
    fn run(&self, task: &RowTask<'a, '_>, out: &mut [f32]) {
        let (rows, tokens, n) = (task.rows(), task.tokens(), self.0);
        let parts: Vec<Vec<f32>> = std::thread::scope(|s| {
            let handles: Vec<_> = (1..n)
                .map(|p| {
                    let r = task.part(p, n);
                    let (f, q) = match task.input() {
                        TaskInput::F32(x) => (x.to_vec(), Vec::new()),
                        TaskInput::Q8_0(x) => (Vec::new(), x.to_vec()),
                    };
                    let task = *task;
                    s.spawn(move || {
                        let input = match task.input() {
                            TaskInput::F32(_) => TaskInput::F32(&f),
                            TaskInput::Q8_0(_) => TaskInput::Q8_0(&q),
                        };
                        let mut buf = vec![f32::NAN; tokens * r.len()];
                        task.with_input(input).compute(r.clone(), &mut buf, r.len());
                        buf
                    })
                })
                .collect();
            let r = task.part(0, n);
            task.compute(r, out, rows);
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (p, buf) in (1..n).zip(parts) {
            let r = task.part(p, n);
            for t in 0..tokens {
                out[t * rows + r.start..t * rows + r.end]
                    .copy_from_slice(&buf[t * r.len()..(t + 1) * r.len()]);
            }
        }
    }
}

#[test]
fn any_row_split_and_thread_count_gives_the_same_bits() {
    for path in [
        "latte-micro/latte-micro-q4_0.gguf",
        "latte-micro/latte-micro-f32.gguf",
    ] {
        let buf = file(path);
        let model = Model::from_gguf(as_bytes(&buf)).unwrap();
        let v = model.config().vocab_size;
        let tokens = prompt(40);
        let (want, _) = reference(&model, &tokens, &[]);
        let pars: Vec<(String, Box<dyn Parallel<'_>>)> = vec![
            ("split 1".into(), Box::new(Split(1))),
            ("split 3".into(), Box::new(Split(3))),
            ("split 7".into(), Box::new(Split(7))),
            ("split 100".into(), Box::new(Split(100))),
            ("2 threads".into(), Box::new(Scoped(2))),
            ("3 threads".into(), Box::new(Scoped(3))),
            ("4 threads".into(), Box::new(Scoped(4))),
        ];
        for (name, par) in &pars {
            let mut state = vec![0.0; model.state_len()];
            let mut scratch = vec![f32::NAN; model.scratch_len()];
            let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
            // Steps.
            for (i, &t) in tokens.iter().enumerate() {
                let got = s.step_with(t, par.as_ref()).unwrap();
                assert_eq!(
                    bits(got),
                    bits(&want[i * v..(i + 1) * v]),
                    "{path} {name} step {i}"
                );
            }
            // Prefill, chunks of 7 (6 chunks, the last of 5), all logits.
            s.reset();
            let mut ps = prefill_scratch(&model, 7);
            let mut all = vec![f32::NAN; tokens.len() * v];
            s.prefill_with(&tokens, 7, &mut ps, par.as_ref(), Some(&mut all))
                .unwrap();
            assert!(bits(&all) == bits(&want), "{path} {name} prefill");
        }
    }
}

// ---------------------------------------------------------------------------
// Sizes and errors.

#[test]
fn prefill_scratch_len_is_exact() {
    let buf = file("latte-micro/latte-micro-q8_0.gguf");
    let model = Model::from_gguf(as_bytes(&buf)).unwrap();
    // D 128, L 64, F 512: 3 * 128 + 512 per token, plus 16 Q8_0 blocks
    // (34 bytes each) of the widest input (F).
    assert_eq!(model.prefill_scratch_len(1), 896 + 136);
    assert_eq!(model.prefill_scratch_len(64), 64 * 896 + 64 * 16 * 34 / 4);
    assert_eq!(model.prefill_scratch_len(0), 0);
    assert_eq!(model.prefill_scratch_len(usize::MAX), usize::MAX);
    assert_eq!(
        model.prefill_scratch_bytes(3),
        4 * model.prefill_scratch_len(3)
    );
    let f32_buf = file("latte-micro/latte-micro-f32.gguf");
    let f32_model = Model::from_gguf(as_bytes(&f32_buf)).unwrap();
    assert_eq!(f32_model.prefill_scratch_len(7), 7 * 896);
    // Exactly enough works; one element less is an error.
    let tokens = prompt(9);
    for chunk in [1usize, 4, 9] {
        let need = model.prefill_scratch_len(chunk);
        let mut state = vec![0.0; model.state_len()];
        let mut scratch = vec![0.0; model.scratch_len()];
        let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
        let mut ps = vec![0.0; need];
        assert!(s.prefill(&tokens, chunk, &mut ps).is_ok());
        s.reset();
        assert_eq!(
            s.prefill(&tokens, chunk, &mut ps[..need - 1]).unwrap_err(),
            Error::PrefillScratchTooSmall {
                chunk,
                need,
                got: need - 1
            }
        );
    }
    // A chunk longer than the prompt needs only the prompt's length.
    let mut state = vec![0.0; model.state_len()];
    let mut scratch = vec![0.0; model.scratch_len()];
    let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
    let mut ps = vec![0.0; model.prefill_scratch_len(9)];
    assert!(s.prefill(&tokens, 1000, &mut ps).is_ok());
}

#[test]
fn prefill_errors_change_nothing() {
    let buf = file("latte-micro/latte-micro-q8_0.gguf");
    let model = Model::from_gguf(as_bytes(&buf)).unwrap();
    let mut state = vec![0.0; model.state_len()];
    let mut scratch = vec![0.0; model.scratch_len()];
    let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
    s.step(72).unwrap();
    let (pos, st, lg) = (s.position(), s.state().to_vec(), s.logits().to_vec());
    let mut ps = vec![0.0; model.prefill_scratch_len(8)];
    let errors = [
        s.prefill(&[], 8, &mut ps).unwrap_err(),
        s.prefill(&[1, 2], 0, &mut ps).unwrap_err(),
        s.prefill(&[1, 256, 3, 999], 8, &mut ps).unwrap_err(),
        s.prefill(&prompt(20), 8, &mut ps[..10]).unwrap_err(),
        s.prefill_with(&prompt(20), 8, &mut ps, &Sequential, Some(&mut [0.0; 100]))
            .unwrap_err(),
    ];
    assert_eq!(errors[0], Error::EmptyPrompt);
    assert_eq!(
        errors[1],
        Error::ZeroSize {
            key: "prefill chunk"
        }
    );
    assert_eq!(
        errors[2],
        Error::TokenOutOfRange {
            token: 256,
            vocab_size: 256
        }
    );
    assert!(matches!(
        errors[3],
        Error::PrefillScratchTooSmall { got: 10, .. }
    ));
    assert!(matches!(
        errors[4],
        Error::BufferLength {
            need: 5120,
            got: 100,
            ..
        }
    ));
    for e in errors {
        assert!(e.to_string().len() > 10);
    }
    assert_eq!(s.position(), pos);
    assert!(bits(s.state()) == bits(&st));
    assert_eq!(bits(s.logits()), bits(&lg));
    // step_with checks its token too.
    assert_eq!(
        s.step_with(300, &Sequential).unwrap_err(),
        Error::TokenOutOfRange {
            token: 300,
            vocab_size: 256
        }
    );
    assert_eq!(s.position(), pos);
}

/// `prefill_until`: the stop callback runs before each chunk; a stop leaves
/// the chunks before it fed (the bits of feeding them), `Error::Cancelled`
/// says how many; never stopping gives `prefill`'s bits.
#[test]
fn prefill_until_stops_between_chunks() {
    let buf = file("latte-micro/latte-micro-q8_0.gguf");
    let model = Model::from_gguf(as_bytes(&buf)).expect("model");
    let toks = prompt(N);
    let mut ps = vec![0f32; model.prefill_scratch_len(8)];
    let (mut st, mut sc) = (
        vec![0f32; model.state_len()],
        vec![0f32; model.scratch_len()],
    );
    let mut reference = Session::new(&model, &mut st, &mut sc).expect("session");
    reference.feed(&toks[..24]).expect("feed");
    let want = bits(reference.logits());

    let (mut st2, mut sc2) = (
        vec![0f32; model.state_len()],
        vec![0f32; model.scratch_len()],
    );
    let mut s = Session::new(&model, &mut st2, &mut sc2).expect("session");
    let mut calls = 0;
    let mut stop = || {
        calls += 1;
        calls > 3
    };
    let r = s.prefill_until(&toks, 8, &mut ps, &mut stop).map(|_| ());
    assert_eq!(r, Err(Error::Cancelled { fed: 24 }));
    assert_eq!(s.position(), 24);
    assert_eq!(
        bits(s.logits()),
        want,
        "three chunks of 8 fed, as feeding 24 tokens"
    );
    // Never stopping: prefill's bits.
    s.reset();
    s.prefill_until(&toks, 8, &mut ps, &mut || false)
        .expect("whole");
    let all = bits(s.logits());
    s.reset();
    s.prefill(&toks, 8, &mut ps).expect("prefill");
    assert_eq!(bits(s.logits()), all);
    // Bad arguments change nothing and never call the callback.
    s.reset();
    let mut called = false;
    let bad = [1u32, 999];
    assert!(matches!(
        s.prefill_until(&bad, 8, &mut ps, &mut || {
            called = true;
            false
        }),
        Err(Error::TokenOutOfRange { .. })
    ));
    assert!(!called && s.position() == 0);
}
