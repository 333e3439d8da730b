//! No-std, allocation-free inference for Causal Latte language models.
//!
//! * [`Model`] validates a GGUF model file (FORMAT.md) once and borrows its
//!   weights in place (F32 or F16).
//! * [`Session`] runs the model one token at a time on a caller-supplied,
//!   constant-size state and scratch buffer.
//! * [`Sampler`] picks tokens from the logits with fixed memory.
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

pub mod config;
pub mod error;
pub mod latte;
mod load;
pub mod model;
pub mod ops;
pub mod sampler;
pub mod session;
pub mod tensor;

pub use config::{Config, Position};
pub use error::{Error, TensorName};
pub use latte::{LatteLayer, LayerState};
pub use model::{LayerWeights, Model, Weights};
pub use sampler::{Sampler, SamplerConfig};
pub use session::Session;
pub use tensor::{Matrix, MatrixData, Norm};

/// Most layers a [`Model`] can have (one fixed slot each, no allocator).
pub const MAX_LAYERS: usize = 32;
