//! No-std, allocation-free inference for Causal Latte language models.
//!
//! * [`Model`] validates a GGUF model file (FORMAT.md) once and borrows its
//!   weights in place (F32, F16, or ggml's Q8_0 and Q4_0 blocks). Its
//!   matrix-vector products go through one [`Kernels`] table from
//!   `latte-kernels`, chosen at load ([`Kernels::best`]: at run time with
//!   the `std` feature, at compile time without) and replaceable with
//!   [`Model::set_kernels`]. Quantized matrices take their input quantized
//!   to Q8_0 on the fly, in the session's scratch.
//! * [`Session`] runs the model one token at a time on a caller-supplied,
//!   constant-size state and scratch buffer, or feeds a prompt in chunks
//!   ([`Session::prefill`]: matrix-matrix products over each chunk, the
//!   recurrence token by token, the same bits as stepping).
//! * [`parallel`]: every matrix product goes through a [`Parallel`] that
//!   the caller may implement to spread rows over threads
//!   ([`Session::step_with`], [`Session::prefill_with`]); the core itself
//!   stays single-threaded.
//! * [`Sampler`] picks tokens from the logits with fixed memory.
//! * [`snapshot`]: a session and its sampler saved to bytes and restored
//!   ([`Session::save_snapshot`], [`Session::restore_snapshot`]), refused
//!   if damaged or from another model.
//!
//! ```no_run
//! use latte_core::{Model, Sampler, SamplerConfig, Session};
//!
//! fn generate(bytes: &[u8], prompt: &[u32], out: &mut [u32]) -> Result<(), latte_core::Error> {
//!     let model = Model::from_gguf(bytes)?; // bytes must be 4-byte aligned
//!     // Any memory will do (statics on a microcontroller); sizes are exact.
//!     let mut state = vec![0f32; model.state_len()];
//!     let mut scratch = vec![0f32; model.scratch_len()];
//!     let mut session = Session::new(&model, &mut state, &mut scratch)?;
//!     let mut sampler = Sampler::new(SamplerConfig { temperature: 0.8, top_k: 40, ..Default::default() })?;
//!     prompt.iter().for_each(|&t| sampler.accept(t));
//!     session.feed(prompt)?;
//!     for slot in out.iter_mut() {
//!         *slot = session.sample(&mut sampler);
//!         session.step(*slot)?;
//!     }
//!     Ok(())
//! }
//! ```
//!
//! The maths is the official `StableScanLatte` (no `1/sqrt(d)` scaling) in a
//! pre-LN transformer block, with sinusoidal or VAPOR positions; see
//! [`latte`] for the layer recurrence.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bidir;
mod block;
pub mod classifier;
pub mod config;
pub mod error;
mod hash;
pub mod latte;
mod load;
pub mod mixer;
mod mlp;
pub mod model;
pub mod ops;
pub mod parallel;
pub mod sampler;
pub mod session;
pub mod snapshot;
pub mod tensor;
pub mod window;
mod wire;

pub use bidir::BidLatteLayer;
pub use classifier::{ByteSource, Classified, Classifier, ClassifierConfig, SliceSource};
pub use config::{Config, Mixing, Position};
pub use error::{Error, TensorName};
pub use latte::{LatteLayer, LayerState};
/// The kernel crate, re-exported so callers name the same types.
pub use latte_kernels;
pub use latte_kernels::{BlockQ4_0, BlockQ8_0, KernelPath, Kernels};
pub use mixer::Mixer;
pub use model::{LayerWeights, Model, Weights};
pub use parallel::{Epilogue, Parallel, RowTask, Sequential, TaskInput};
pub use sampler::{Sampler, SamplerConfig};
pub use session::Session;
pub use snapshot::SnapshotInfo;
pub use tensor::{q8_0_scratch_len, Matrix, MatrixData, Norm};
pub use window::{AttentionLayer, Combine, Macchiato, RingStorage, WindowAttention};

/// Most layers a [`Model`] can have (one fixed slot each, no allocator).
pub const MAX_LAYERS: usize = 32;
