//! The native part of the `latte` Python package (`latte._latte`); the
//! Python-facing API is `python/latte/__init__.py`.
//!
//! A `Model` owns its file's bytes (4-byte aligned) and the validated
//! `latte_core::Model` borrowing them; a `Session` owns its state and scratch
//! and a reference to its model. Errors are `latte.LatteError` with the
//! core's message; a long feed checks for Ctrl-C between chunks.
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

use latte_core::{
    Model as CoreModel, RingStorage, Sampler as CoreSampler, SamplerConfig, Session as CoreSession,
};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

create_exception!(
    _latte,
    LatteError,
    PyException,
    "An error from the Latte runtime."
);

fn err(e: impl std::fmt::Display) -> PyErr {
    LatteError::new_err(e.to_string())
}

/// Prompt tokens per prefill chunk.
const CHUNK: usize = 64;

/// A model and the bytes it borrows. `model` is declared first, so it is
/// dropped before `_bytes`.
struct Owned {
    model: CoreModel<'static>,
    _bytes: Vec<u32>,
}

impl Owned {
    /// `ring`: how a window's ring stores keys and values (`None`: `f32`).
    fn new(data: &[u8], ring: Option<&str>) -> PyResult<Self> {
        let ring = ring
            .map(|name| {
                RingStorage::from_name(name).ok_or_else(|| {
                    err(format!(
                        "ring {name:?} is not a ring storage: f32, f16 or q8"
                    ))
                })
            })
            .transpose()?;
        let mut words = vec![0u32; data.len().div_ceil(4)];
        // The core reads F32 tensors in place: 4-byte alignment.
        let view: &mut [u8] = unsafe {
            // SAFETY: a u32 buffer viewed as its bytes.
            std::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, words.len() * 4)
        };
        view[..data.len()].copy_from_slice(data);
        // SAFETY: the model borrows the heap buffer of `words`, which this
        // struct owns, never changes and drops after the model.
        let bytes: &'static [u8] =
            unsafe { std::slice::from_raw_parts(words.as_ptr() as *const u8, data.len()) };
        let mut model = CoreModel::from_gguf(bytes).map_err(err)?;
        if let Some(ring) = ring {
            if model.config().mixing.window() == 0 {
                return Err(err(format!(
                    "ring {:?}: the model has no attention window (latte.mixer = {}); \
                     ring is for Macchiato and attention models",
                    ring.name(),
                    model.config().mixing.name()
                )));
            }
            model.set_ring_storage(ring).map_err(err)?;
        }
        Ok(Owned {
            model,
            _bytes: words,
        })
    }
}

/// A Latte language model (GGUF), read from a file or bytes.
#[pyclass(module = "latte._latte", frozen)]
struct Model {
    inner: Arc<Owned>,
}

#[pymethods]
impl Model {
    #[new]
    #[pyo3(signature = (path, ring=None))]
    fn new(path: PathBuf, ring: Option<&str>) -> PyResult<Self> {
        let data = std::fs::read(&path)
            .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
        let inner =
            Owned::new(&data, ring).map_err(|e| err(format!("{}: {}", path.display(), e)))?;
        Ok(Model {
            inner: Arc::new(inner),
        })
    }

    #[staticmethod]
    #[pyo3(signature = (data, ring=None))]
    fn from_bytes(data: &[u8], ring: Option<&str>) -> PyResult<Self> {
        Ok(Model {
            inner: Arc::new(Owned::new(data, ring)?),
        })
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.model.config().vocab_size
    }

    #[getter]
    fn state_len(&self) -> usize {
        self.inner.model.state_len()
    }

    #[getter]
    fn fingerprint(&self) -> u64 {
        self.inner.model.fingerprint()
    }

    #[getter]
    fn kernels(&self) -> &'static str {
        self.inner.model.kernels().path().name()
    }

    fn session(&self) -> PyResult<Session> {
        Session::new(self.inner.clone())
    }

    /// Bits per byte of `text` scored as one continuous stream (every byte
    /// after the first), as `latte perplexity` computes it.
    fn perplexity(&self, py: Python<'_>, text: &[u8]) -> PyResult<f64> {
        if text.len() < 2 {
            return Err(err(
                "the text needs at least 2 bytes (the first is context only)",
            ));
        }
        let m = &self.inner.model;
        let v = m.config().vocab_size;
        let tokens: Vec<u32> = text.iter().map(|&b| b as u32).collect();
        let mut state = vec![0f32; m.state_len()];
        let mut scratch = vec![0f32; m.scratch_len()];
        let mut prefill = vec![0f32; m.prefill_scratch_len(CHUNK)];
        let mut session = CoreSession::new(m, &mut state, &mut scratch).map_err(err)?;
        let mut all = vec![0f32; CHUNK * v];
        let mut lp = Vec::with_capacity(v);
        let mut nll = 0f64;
        let scored = &tokens[..tokens.len() - 1];
        for (c, part) in scored.chunks(CHUNK).enumerate() {
            py.check_signals()?;
            session
                .prefill_with(
                    part,
                    part.len(),
                    &mut prefill,
                    &latte_core::Sequential,
                    Some(&mut all[..part.len() * v]),
                )
                .map_err(err)?;
            for (i, row) in all[..part.len() * v].chunks_exact(v).enumerate() {
                let next = tokens[c * CHUNK + i + 1] as usize;
                latte_cli::perplexity::log_softmax(row, &mut lp)
                    .ok_or_else(|| err("the model produced a NaN or infinite logit"))?;
                nll -= lp[next];
            }
        }
        Ok(nll / scored.len() as f64 / std::f64::consts::LN_2)
    }
}

/// A session's state, scratch and the session borrowing them (declared
/// first, dropped first), and the model they run on.
struct Live {
    session: CoreSession<'static, 'static>,
    _state: Vec<f32>,
    _scratch: Vec<f32>,
    _model: Arc<Owned>,
}

/// A session: position, recurrent state and logits.
#[pyclass(module = "latte._latte", unsendable)]
struct Session {
    live: Live,
    prefill: Vec<f32>,
}

impl Session {
    fn new(model: Arc<Owned>) -> PyResult<Self> {
        let m = &model.model;
        let mut state = vec![0f32; m.state_len()];
        let mut scratch = vec![0f32; m.scratch_len()];
        // SAFETY: the session borrows the model (kept alive by the Arc held
        // in the same struct) and the two heap buffers, which the struct owns
        // and never moves or resizes; `session` is dropped first.
        let (mr, st, sc): (
            &'static CoreModel<'static>,
            &'static mut [f32],
            &'static mut [f32],
        ) = unsafe {
            (
                &*(m as *const CoreModel<'static>),
                std::slice::from_raw_parts_mut(state.as_mut_ptr(), state.len()),
                std::slice::from_raw_parts_mut(scratch.as_mut_ptr(), scratch.len()),
            )
        };
        let session = CoreSession::new(mr, st, sc).map_err(err)?;
        let prefill = vec![0f32; m.prefill_scratch_len(CHUNK)];
        Ok(Session {
            live: Live {
                session,
                _state: state,
                _scratch: scratch,
                _model: model,
            },
            prefill,
        })
    }
}

#[pymethods]
impl Session {
    /// Feeds `data` (bytes) in chunks, checking for Ctrl-C between chunks
    /// (the chunks before it stay fed).
    fn feed(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        if data.is_empty() {
            return Err(err("nothing to feed: the data is empty"));
        }
        let tokens: Vec<u32> = data.iter().map(|&b| b as u32).collect();
        let v = self.live.session.model().config().vocab_size;
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= v) {
            return Err(err(format!(
                "byte {t} is not below the vocabulary size {v}"
            )));
        }
        for part in tokens.chunks(CHUNK) {
            py.check_signals()?;
            self.live
                .session
                .prefill(part, part.len(), &mut self.prefill)
                .map_err(err)?;
        }
        Ok(())
    }

    fn step(&mut self, token: u32) -> PyResult<()> {
        self.live.session.step(token).map(|_| ()).map_err(err)
    }

    fn reset(&mut self) {
        self.live.session.reset();
    }

    #[getter]
    fn position(&self) -> u64 {
        self.live.session.position()
    }

    /// The logits after the last token, as little-endian float32 bytes.
    fn logits_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let l = self.live.session.logits();
        let mut b = Vec::with_capacity(l.len() * 4);
        for x in l {
            b.extend_from_slice(&x.to_le_bytes());
        }
        PyBytes::new(py, &b)
    }

    fn sample(&mut self, mut sampler: PyRefMut<'_, Sampler>) -> u32 {
        self.live.session.sample(&mut sampler.inner)
    }

    fn save_state<'py>(
        &self,
        py: Python<'py>,
        sampler: PyRef<'_, Sampler>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut buf = vec![0u8; self.live.session.snapshot_len()];
        let n = self
            .live
            .session
            .save_snapshot(&sampler.inner, &mut buf)
            .map_err(err)?;
        Ok(PyBytes::new(py, &buf[..n]))
    }

    fn load_state(&mut self, data: &[u8], mut sampler: PyRefMut<'_, Sampler>) -> PyResult<()> {
        self.live
            .session
            .restore_snapshot(&mut sampler.inner, data)
            .map_err(err)
    }
}

/// `latte run`'s sampler.
#[pyclass(module = "latte._latte")]
struct Sampler {
    inner: CoreSampler,
}

#[pymethods]
impl Sampler {
    #[new]
    #[pyo3(signature = (temperature=0.8, top_k=40, top_p=0.95, repeat_penalty=1.0, repeat_last_n=64, seed=42))]
    fn new(
        temperature: f32,
        top_k: usize,
        top_p: f32,
        repeat_penalty: f32,
        repeat_last_n: usize,
        seed: u64,
    ) -> PyResult<Self> {
        let inner = CoreSampler::new(SamplerConfig {
            temperature,
            top_k,
            top_p,
            repeat_penalty,
            repeat_last_n,
            seed,
        })
        .map_err(err)?;
        Ok(Sampler { inner })
    }

    fn accept(&mut self, token: u32) {
        self.inner.accept(token);
    }
}

/// Converts a safetensors checkpoint to a Latte GGUF file, as `latte
/// convert` does.
#[pyfunction]
#[pyo3(signature = (input, output, dtype="f32", name=None))]
fn convert(
    py: Python<'_>,
    input: PathBuf,
    output: PathBuf,
    dtype: &str,
    name: Option<&str>,
) -> PyResult<()> {
    py.detach(|| latte_cli::convert_checkpoint(&input, &output, dtype, name))
        .map_err(|e| err(format!("{e:#}")))
}

#[pymodule]
fn _latte(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_class::<Session>()?;
    m.add_class::<Sampler>()?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add("LatteError", m.py().get_type::<LatteError>())?;
    Ok(())
}
