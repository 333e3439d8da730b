//! What every latte board shares: the demo that generates text from the
//! model in flash, the cost measurements, and (feature `qemu`) the exit
//! status, fault handling and instruction counting of the QEMU machines.
//!
//! A board crate supplies the model (an aligned `include_bytes!` that
//! `latte-board-build` generates), the state and scratch statics sized for
//! it, a defmt global logger and a [`Counter`], then calls [`run`].
//!
//! Output (defmt, one line each; the `greedy:` and `sampled:` lines are what
//! CI compares with `boards/expected/<model file>.txt`):
//!
//! ```text
//! model: latte-micro-q8_0.gguf, 1253056 bytes, kernels arm-dsp
//! ram: state 52224 + scratch 5808 bytes
//! greedy: b"ed up the LORD of hosts, ..."
//! sampled: b"..."
//! cost: ...
//! ```
#![no_std]

pub mod classify;
pub mod device;
#[cfg(feature = "qemu")]
pub mod qemu;
pub mod selftest;
pub mod stack;

use latte_core::latte_kernels::{quantize_row_q8_0, BlockQ4_0, BlockQ8_0, Kernels};
pub use latte_core::RingStorage;
use latte_core::{Error, Model, Sampler, SamplerConfig, Session};

/// A value aligned for in-place reading (the core needs 4-byte alignment;
/// 16 keeps every SIMD load aligned too). `include_bytes!` alone gives
/// alignment 1.
#[repr(C, align(16))]
pub struct Aligned<T: ?Sized>(pub T);

/// Declares, in a board crate, what its build script generated with
/// `latte-board-build` (`MODEL`, `MODEL_NAME`, `MODEL_BYTES`, `STATE_LEN`,
/// `SCRATCH_LEN`), the static state and scratch sized for the model, and
/// `fn buffers()`, which hands those out as `&'static mut` once (`None`
/// after that).
#[macro_export]
macro_rules! model_and_buffers {
    () => {
        include!(concat!(env!("OUT_DIR"), "/model.rs"));

        /// The static state and scratch, the first time only.
        fn buffers() -> Option<(&'static mut [f32], &'static mut [f32])> {
            use core::sync::atomic::{AtomicBool, Ordering};
            static mut STATE: [f32; STATE_LEN] = [0.0; STATE_LEN];
            static mut SCRATCH: [f32; SCRATCH_LEN] = [0.0; SCRATCH_LEN];
            static TAKEN: AtomicBool = AtomicBool::new(false);
            if TAKEN.swap(true, Ordering::AcqRel) {
                return None;
            }
            // SAFETY: the flag lets this line run once, so these are the
            // only references to the two statics, ever.
            Some(unsafe {
                (
                    &mut *core::ptr::addr_of_mut!(STATE),
                    &mut *core::ptr::addr_of_mut!(SCRATCH),
                )
            })
        }
    };
}

/// Declares, in a classifier board crate, what its build script generated
/// with `latte_board_build::configure_classifier` (`MODEL`, `MODEL_NAME`,
/// `MODEL_BYTES`, `SUMMARIES_LEN`, `WORK_LEN`, `CHUNK`, `MESSAGES`), the
/// static summaries and work area, and `fn buffers()`, which hands those
/// out as `&'static mut` once (`None` after that).
#[macro_export]
macro_rules! classifier_and_buffers {
    () => {
        include!(concat!(env!("OUT_DIR"), "/model.rs"));

        /// The static summaries and work area, the first time only.
        fn buffers() -> Option<(&'static mut [f32], &'static mut [f32])> {
            use core::sync::atomic::{AtomicBool, Ordering};
            static mut SUMMARIES: [f32; SUMMARIES_LEN] = [0.0; SUMMARIES_LEN];
            static mut WORK: [f32; WORK_LEN] = [0.0; WORK_LEN];
            static TAKEN: AtomicBool = AtomicBool::new(false);
            if TAKEN.swap(true, Ordering::AcqRel) {
                return None;
            }
            // SAFETY: the flag lets this line run once, so these are the
            // only references to the two statics, ever.
            Some(unsafe {
                (
                    &mut *core::ptr::addr_of_mut!(SUMMARIES),
                    &mut *core::ptr::addr_of_mut!(WORK),
                )
            })
        }
    };
}

/// A monotonic count of work done: instructions under QEMU with `-icount`,
/// cycles on a real core (DWT `CYCCNT`).
pub trait Counter {
    /// What one count is: `"instructions"` or `"cycles"`.
    const UNIT: &'static str;
    /// The count now.
    fn now(&mut self) -> u64;
}

/// The prompt of the greedy line: one of the reference prompts of
/// `models/latte-micro-decay/golden.json`, whose greedy continuation by the
/// PyTorch reference is the expected output.
pub const GREEDY_PROMPT: &[u8] = b"And God said, Let there be light";
/// The prompt of the sampled line.
pub const SAMPLED_PROMPT: &[u8] = b"It was a dark and stormy night";
/// Tokens generated per line.
pub const N_GENERATE: usize = 64;
/// The sampled line's settings: `latte run`'s defaults with seed 42, so
/// `latte run -m MODEL -p "It was a dark and stormy night" -n 64` on a host
/// prints the same text.
pub const SAMPLED: SamplerConfig = SamplerConfig {
    temperature: 0.8,
    top_k: 40,
    top_p: 0.95,
    repeat_penalty: 1.0,
    repeat_last_n: 64,
    seed: 42,
};

/// What the run measured, in the counter's unit.
#[derive(Clone, Copy, Debug, Default)]
pub struct Costs {
    /// Per prompt token (the greedy prompt).
    pub per_prompt_token: u64,
    /// Per generated token (sampling included).
    pub per_generated_token: u64,
}

/// Loads the model, prints it, generates the greedy and the sampled line
/// and prints what a token cost.
pub fn run<C: Counter>(
    name: &str,
    model: &[u8],
    ring: RingStorage,
    state: &mut [f32],
    scratch: &mut [f32],
    counter: &mut C,
) -> Result<Costs, Error> {
    let bytes = model.len();
    let mut model = Model::from_gguf(model)?;
    model.set_ring_storage(ring)?;
    defmt::info!(
        "model: {=str}, {=usize} bytes, kernels {=str}",
        name,
        bytes,
        model.kernels().path().name()
    );
    defmt::info!(
        "ram: state {=usize} + scratch {=usize} bytes",
        model.state_bytes(),
        model.scratch_bytes()
    );
    let window = model.config().mixing.window();
    if window > 0 {
        defmt::info!(
            "ring: {=usize} tokens per layer, keys and values in {=str}",
            window,
            ring.name()
        );
    }
    let mut session = Session::new(&model, state, scratch)?;
    let mut text = [0u8; N_GENERATE];

    let greedy = SamplerConfig::default();
    let costs = generate(&mut session, greedy, GREEDY_PROMPT, &mut text, counter)?;
    defmt::info!("greedy: {=[u8]:a}", text);

    session.reset();
    generate(&mut session, SAMPLED, SAMPLED_PROMPT, &mut text, counter)?;
    defmt::info!("sampled: {=[u8]:a}", text);

    defmt::info!(
        "cost: {=u64} {=str} per prompt token, {=u64} per generated token",
        costs.per_prompt_token,
        C::UNIT,
        costs.per_generated_token
    );
    Ok(costs)
}

/// Feeds `prompt`, then generates `out.len()` tokens with `cfg`.
fn generate<C: Counter>(
    session: &mut Session<'_, '_>,
    cfg: SamplerConfig,
    prompt: &[u8],
    out: &mut [u8],
    counter: &mut C,
) -> Result<Costs, Error> {
    let mut sampler = Sampler::new(cfg)?;
    let t0 = counter.now();
    for &b in prompt {
        sampler.accept(b as u32);
        session.step(b as u32)?;
    }
    let t1 = counter.now();
    for slot in out.iter_mut() {
        let token = session.sample(&mut sampler);
        // A byte-level model: every token is a byte (the build checked the
        // vocabulary through the core; 256 tokens at most here).
        *slot = token as u8;
        session.step(token)?;
    }
    let t2 = counter.now();
    Ok(Costs {
        per_prompt_token: (t1 - t0) / prompt.len().max(1) as u64,
        per_generated_token: (t2 - t1) / out.len().max(1) as u64,
    })
}

/// Contexts at which [`context_costs`] measures a token (those the model can
/// hold: a full-attention model stops at its KV cache's capacity).
pub const COST_CONTEXTS: [u64; 7] = [64, 128, 256, 512, 1024, 2048, 4096];
/// Steps timed at each context.
pub const COST_STEPS: u64 = 8;

/// The runtime figure on the device: feeds a fixed text token by token and,
/// at each of [`COST_CONTEXTS`], prints what one decode step costs (the mean
/// of [`COST_STEPS`]) and the state in use. Returns how many contexts it
/// measured.
pub fn context_costs<C: Counter>(
    name: &str,
    model: &[u8],
    ring: RingStorage,
    state: &mut [f32],
    scratch: &mut [f32],
    counter: &mut C,
) -> Result<usize, Error> {
    let mut model = Model::from_gguf(model)?;
    model.set_ring_storage(ring)?;
    defmt::info!(
        "model: {=str}, mixer {=str}, kernels {=str}, state {=usize} bytes",
        name,
        model.mixer(0).map_or("?", |m| m.kind()),
        model.kernels().path().name(),
        model.state_bytes()
    );
    let limit = model.max_tokens().unwrap_or(u64::MAX);
    let mut session = Session::new(&model, state, scratch)?;
    let text = GREEDY_PROMPT;
    let mut pos: u64 = 0;
    let mut measured = 0;
    for &c in COST_CONTEXTS.iter() {
        if c + COST_STEPS > limit {
            defmt::info!(
                "context: {=u64} not measured: the KV cache holds {=u64} tokens",
                c,
                limit
            );
            break;
        }
        while pos < c {
            session.step(text[(pos % text.len() as u64) as usize] as u32)?;
            pos += 1;
        }
        let t0 = counter.now();
        for _ in 0..COST_STEPS {
            session.step(text[(pos % text.len() as u64) as usize] as u32)?;
            pos += 1;
        }
        let per = (counter.now() - t0) / COST_STEPS;
        defmt::info!(
            "context: {=u64} {=u64} {=str} per token, state in use {=usize} bytes",
            c,
            per,
            C::UNIT,
            model.state_bytes_in_use(c)
        );
        measured += 1;
    }
    Ok(measured)
}

/// Rows and columns of the matrix-vector cost measurement: the shape of
/// latte-micro's `ffn_down` (128 x 512) halved in rows to keep flash small.
pub const BENCH_ROWS: usize = 64;
/// See [`BENCH_ROWS`].
pub const BENCH_COLS: usize = 512;
const BENCH_BLOCKS: usize = BENCH_ROWS * BENCH_COLS / 32;

/// Deterministic pseudo-random weights, built at compile time (in flash).
const fn bench_q8() -> [BlockQ8_0; BENCH_BLOCKS] {
    let mut out = [BlockQ8_0 {
        d: 0x2C00,
        qs: [0; 32],
    }; BENCH_BLOCKS];
    let mut s: u32 = 0x1234_5678;
    let mut i = 0;
    while i < BENCH_BLOCKS {
        let mut j = 0;
        while j < 32 {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            out[i].qs[j] = (s >> 24) as u8 as i8;
            j += 1;
        }
        i += 1;
    }
    out
}

const fn bench_q4() -> [BlockQ4_0; BENCH_BLOCKS] {
    let mut out = [BlockQ4_0 {
        d: 0x2C00,
        qs: [0; 16],
    }; BENCH_BLOCKS];
    let mut s: u32 = 0x8765_4321;
    let mut i = 0;
    while i < BENCH_BLOCKS {
        let mut j = 0;
        while j < 16 {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            out[i].qs[j] = (s >> 24) as u8;
            j += 1;
        }
        i += 1;
    }
    out
}

static BENCH_Q8: [BlockQ8_0; BENCH_BLOCKS] = bench_q8();
static BENCH_Q4: [BlockQ4_0; BENCH_BLOCKS] = bench_q4();

/// Counts per multiply-accumulate, in hundredths, of the `Q8_0` and `Q4_0`
/// matrix-vector products with `kernels` (weights in flash, one product of
/// [`BENCH_ROWS`] x [`BENCH_COLS`], the activation quantization excluded).
pub fn matvec_cost<C: Counter>(kernels: &Kernels, counter: &mut C) -> (u64, u64) {
    let mut x = [0f32; BENCH_COLS];
    for (i, v) in x.iter_mut().enumerate() {
        *v = ((i * 37 % 101) as f32 - 50.0) / 25.0;
    }
    let mut xq = [BlockQ8_0::default(); BENCH_COLS / 32];
    quantize_row_q8_0(&x, &mut xq);
    let mut y = [0f32; BENCH_ROWS];
    let macs = (BENCH_ROWS * BENCH_COLS) as u64;

    let t0 = counter.now();
    kernels.matvec_q8_0(&BENCH_Q8, BENCH_ROWS, BENCH_COLS, &xq, &mut y);
    let t1 = counter.now();
    let q8 = (t1 - t0) * 100 / macs;
    core::hint::black_box(&y);

    let t0 = counter.now();
    kernels.matvec_q4_0(&BENCH_Q4, BENCH_ROWS, BENCH_COLS, &xq, &mut y);
    let t1 = counter.now();
    let q4 = (t1 - t0) * 100 / macs;
    core::hint::black_box(&y);
    (q8, q4)
}

/// Logs [`matvec_cost`] for the best kernels and the scalar ones.
pub fn report_matvec_costs<C: Counter>(counter: &mut C) {
    let best = Kernels::best();
    for k in [best, Kernels::scalar()] {
        let (q8, q4) = matvec_cost(&k, counter);
        defmt::info!(
            "cost: matvec {=usize}x{=usize} {=str}: q8_0 {=u64}.{=u64:02} q4_0 {=u64}.{=u64:02} {=str} per MAC",
            BENCH_ROWS,
            BENCH_COLS,
            k.path().name(),
            q8 / 100,
            q8 % 100,
            q4 / 100,
            q4 % 100,
            C::UNIT
        );
        if k == Kernels::scalar() {
            break;
        }
    }
}
