//! A decoding session: one sequence's recurrent state, its scratch, and the
//! token-by-token step of the whole language model.

use crate::block::{layer_norm_rows, task_input, Ctx, Work};
use crate::config::{Config, Position};
use crate::error::Error;
use crate::latte::LayerState;
use crate::model::Model;
use crate::ops;
use crate::parallel::{Epilogue, Parallel, RowTask, Sequential};
use crate::sampler::Sampler;
use crate::tensor::quantize_input;

/// One sequence being decoded on a [`Model`], in caller-supplied memory.
///
/// **State** (`Model::state_len()` `f32`s): per layer, back to back, `S`
/// (`L * Dh`, layout `[H][Lh][Dh]`), `n` (`L`), `m` (`L`). Its size does not
/// depend on the position.
///
/// **Scratch** (`Model::scratch_len()` `f32`s), in order: residual `h` (D),
/// normalised input `a` (D), block output `o` (D), `logits` (V), the VAPOR
/// cos/sin table (`Dh`, VAPOR only), then one temporary area of
/// `max(2L + 2D, F, 2V)` shared in turn by the Latte layer (`q, k, v, y`),
/// the MLP hidden vector (F) and the sampler (`probs`, `work`, V each),
/// then, only for models with quantized matrices,
/// [`Model::quant_scratch_len`] elements whose bytes hold the input of the
/// current matrix-vector product quantized to `Q8_0` (34-byte blocks, `D /
/// 32` of them, or `F / 32` when `ffn_down` is quantized).
///
/// Longer buffers are accepted; only their prefixes are used.
///
/// [`Session::prefill`] takes a second scratch buffer for a chunk of tokens
/// ([`Model::prefill_scratch_len`]); see there.
#[derive(Debug)]
pub struct Session<'s, 'a> {
    model: &'s Model<'a>,
    state: &'s mut [f32],
    scratch: &'s mut [f32],
    pos: u64,
}

struct Areas<'s> {
    h: &'s mut [f32],
    a: &'s mut [f32],
    o: &'s mut [f32],
    logits: &'s mut [f32],
    rot: &'s mut [f32],
    tmp: &'s mut [f32],
    quant: &'s mut [f32],
}

/// Splits a scratch buffer of exactly `model.scratch_len()` elements into
/// its areas (`quant_len` = [`Model::quant_scratch_len`]).
fn split_areas<'s>(scratch: &'s mut [f32], c: &Config, quant_len: usize) -> Areas<'s> {
    let (d, v, r) = (c.d_model, c.vocab_size, c.rotation_len());
    let (h, rest) = scratch.split_at_mut(d);
    let (a, rest) = rest.split_at_mut(d);
    let (o, rest) = rest.split_at_mut(d);
    let (logits, rest) = rest.split_at_mut(v);
    let (rot, rest) = rest.split_at_mut(r);
    let (tmp, quant) = rest.split_at_mut(rest.len() - quant_len.min(rest.len()));
    Areas {
        h,
        a,
        o,
        logits,
        rot,
        tmp,
        quant,
    }
}

impl<'s, 'a> Session<'s, 'a> {
    /// Starts a session at position 0 with the initial state.
    ///
    /// Errors: [`Error::StateTooSmall`] / [`Error::ScratchTooSmall`] when a
    /// buffer is shorter than [`Model::state_len`] / [`Model::scratch_len`].
    pub fn new(
        model: &'s Model<'a>,
        state: &'s mut [f32],
        scratch: &'s mut [f32],
    ) -> Result<Self, Error> {
        let (need_state, need_scratch) = (model.state_len(), model.scratch_len());
        if state.len() < need_state {
            return Err(Error::StateTooSmall {
                need: need_state,
                got: state.len(),
            });
        }
        if scratch.len() < need_scratch {
            return Err(Error::ScratchTooSmall {
                need: need_scratch,
                got: scratch.len(),
            });
        }
        let state = &mut state[..need_state];
        let scratch = &mut scratch[..need_scratch];
        let mut s = Session {
            model,
            state,
            scratch,
            pos: 0,
        };
        if model.config.position == Position::Vapor {
            let rot = s.areas().rot;
            crate::latte::fill_rotation_table(model.frequencies.iter(), rot)?;
        }
        s.reset();
        Ok(s)
    }

    fn areas(&mut self) -> Areas<'_> {
        split_areas(
            self.scratch,
            &self.model.config,
            self.model.quant_scratch_len(),
        )
    }

    /// Returns to position 0 with the initial state (`S = 0, n = 0,
    /// m = -inf`) and zeroed logits.
    pub fn reset(&mut self) {
        let model = self.model;
        for (i, block) in model.blocks[..model.config.n_layers].iter().enumerate() {
            let range = model.state_offsets[i]..model.state_offsets[i + 1];
            block.mixer.reset_state(&mut self.state[range]);
        }
        self.areas().logits.fill(0.0);
        self.pos = 0;
    }

    /// The model.
    pub fn model(&self) -> &'s Model<'a> {
        self.model
    }

    /// Number of tokens fed since the last reset (the position of the next token).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Feeds one token at the current position and returns the logits for
    /// the next token (length V). Advances the position by one.
    ///
    /// Errors: [`Error::TokenOutOfRange`] if `token >= V` (nothing changes).
    pub fn step(&mut self, token: u32) -> Result<&[f32], Error> {
        self.step_with(token, &Sequential)
    }

    /// [`Session::step`] with its matrix products run by `par` (e.g. rows
    /// spread over threads; see [`crate::parallel`]). The result has the
    /// same bits whatever `par` does with the rows, as long as it computes
    /// them all.
    pub fn step_with(&mut self, token: u32, par: &dyn Parallel<'a>) -> Result<&[f32], Error> {
        let model = self.model;
        let c = &model.config;
        check_tokens(&[token], c.vocab_size)?;
        check_room(model, self.pos, 1)?;
        let Areas {
            h,
            a,
            o,
            logits,
            rot,
            tmp,
            quant,
        } = split_areas(self.scratch, c, model.quant_scratch_len());
        let work = Work {
            h,
            a,
            o,
            tmp,
            quant,
        };
        let rot = (c.position == Position::Vapor).then_some(&*rot);
        run_chunk(
            model,
            self.state,
            self.pos,
            &[token],
            work,
            rot,
            logits,
            None,
            par,
        );
        self.pos = self.pos.saturating_add(1);
        Ok(self.logits())
    }

    /// Feeds a prompt token by token and returns the logits after its last
    /// token. All tokens are checked before any is fed.
    ///
    /// [`Session::prefill`] gives the same bits faster, with a second
    /// scratch buffer.
    ///
    /// Errors: [`Error::EmptyPrompt`]; [`Error::TokenOutOfRange`] for the
    /// first bad token (the session is then unchanged).
    pub fn feed(&mut self, tokens: &[u32]) -> Result<&[f32], Error> {
        if tokens.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        check_tokens(tokens, self.model.config.vocab_size)?;
        check_room(self.model, self.pos, tokens.len())?;
        for &t in tokens {
            self.step(t)?;
        }
        Ok(self.logits())
    }

    /// Feeds a prompt in chunks of up to `chunk` tokens and returns the
    /// logits after its last token: exactly the bits (logits, state,
    /// position) of [`Session::feed`] / one [`Session::step`] per token,
    /// for every weight type and kernel path, faster. (Only NaN results,
    /// from a broken model, may differ in their payload bits: Rust leaves
    /// those unspecified.)
    ///
    /// Within a chunk, every matrix product (`Wq`, `Wk`, `Wv`, `Wo`, the
    /// MLP, the head for the last token) is one matrix-matrix product over
    /// the chunk's tokens, so each weight is read once per chunk instead of
    /// once per token ([`latte_kernels::matmat`]); the Latte recurrence
    /// still runs token by token, as in a step.
    ///
    /// `scratch` is a second buffer, besides the session's, of at least
    /// [`Model::prefill_scratch_len`]`(min(chunk, tokens.len()))` `f32`s
    /// (its contents do not matter; longer is fine). Chunks of 32 to 128
    /// tokens capture most of the gain.
    ///
    /// Errors, all before anything changes: [`Error::EmptyPrompt`];
    /// [`Error::ZeroSize`] for `chunk == 0`; [`Error::TokenOutOfRange`] for
    /// the first bad token; [`Error::PrefillScratchTooSmall`].
    pub fn prefill(
        &mut self,
        tokens: &[u32],
        chunk: usize,
        scratch: &mut [f32],
    ) -> Result<&[f32], Error> {
        self.prefill_with(tokens, chunk, scratch, &Sequential, None)
    }

    /// [`Session::prefill`] that can be stopped: `stop()` is called before
    /// each chunk, and when it returns `true` the feed ends there with
    /// [`Error::Cancelled`] (the chunks before it fed, the session at a
    /// token boundary: [`Session::position`] says how far it got). For
    /// Ctrl-C handlers, UI cancel buttons and watchdogs; chunks of `chunk`
    /// tokens bound the latency of a stop. The same bits as
    /// [`Session::prefill`] otherwise.
    ///
    /// Errors: those of [`Session::prefill`] (all before anything is fed),
    /// and [`Error::Cancelled`].
    pub fn prefill_until(
        &mut self,
        tokens: &[u32],
        chunk: usize,
        scratch: &mut [f32],
        stop: &mut dyn FnMut() -> bool,
    ) -> Result<&[f32], Error> {
        if tokens.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        if chunk == 0 {
            return Err(Error::ZeroSize {
                key: "prefill chunk",
            });
        }
        check_tokens(tokens, self.model.config.vocab_size)?;
        check_room(self.model, self.pos, tokens.len())?;
        let need = self.model.prefill_scratch_len(chunk.min(tokens.len()));
        if scratch.len() < need {
            return Err(Error::PrefillScratchTooSmall {
                chunk: chunk.min(tokens.len()),
                need,
                got: scratch.len(),
            });
        }
        for (i, piece) in tokens.chunks(chunk).enumerate() {
            if stop() {
                return Err(Error::Cancelled {
                    fed: (i * chunk) as u64,
                });
            }
            self.prefill(piece, chunk, scratch)?;
        }
        Ok(self.logits())
    }

    /// [`Session::prefill`] with its matrix products run by `par` (see
    /// [`Session::step_with`]) and, when `all_logits` is given, the logits
    /// after *every* token written to it (`tokens.len() x V`, token-major;
    /// the head is then a matrix-matrix product too), e.g. to score a text.
    /// Every row has the bits [`Session::step`] would return for that
    /// token. Returns the logits after the last token either way.
    ///
    /// Errors: those of [`Session::prefill`], and [`Error::BufferLength`]
    /// when `all_logits` is shorter than `tokens.len() * V` (also before
    /// anything changes).
    pub fn prefill_with(
        &mut self,
        tokens: &[u32],
        chunk: usize,
        scratch: &mut [f32],
        par: &dyn Parallel<'a>,
        mut all_logits: Option<&mut [f32]>,
    ) -> Result<&[f32], Error> {
        let model = self.model;
        let c = &model.config;
        if tokens.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        if chunk == 0 {
            return Err(Error::ZeroSize {
                key: "prefill chunk",
            });
        }
        check_tokens(tokens, c.vocab_size)?;
        check_room(model, self.pos, tokens.len())?;
        let chunk = chunk.min(tokens.len());
        let need = model.prefill_scratch_len(chunk);
        if scratch.len() < need {
            return Err(Error::PrefillScratchTooSmall {
                chunk,
                need,
                got: scratch.len(),
            });
        }
        let v = c.vocab_size;
        if let Some(all) = &all_logits {
            let need = tokens.len().saturating_mul(v);
            if all.len() < need {
                return Err(Error::BufferLength {
                    what: "all_logits (tokens x vocabulary)",
                    need,
                    got: all.len(),
                });
            }
        }
        let (d, tmp_per_token) = model.prefill_token_areas();
        for (i, piece) in tokens.chunks(chunk).enumerate() {
            let n = piece.len();
            // Areas for n tokens (within `need`, which is for `chunk >= n`).
            let (h, rest) = scratch.split_at_mut(n * d);
            let (a, rest) = rest.split_at_mut(n * d);
            let (o, rest) = rest.split_at_mut(n * d);
            let (tmp, quant) = rest.split_at_mut(n * tmp_per_token);
            let work = Work {
                h,
                a,
                o,
                tmp,
                quant,
            };
            let Areas { logits, rot, .. } = split_areas(self.scratch, c, model.quant_scratch_len());
            let rot = (c.position == Position::Vapor).then_some(&*rot);
            let out = all_logits
                .as_deref_mut()
                .map(|all| &mut all[i * chunk * v..(i * chunk + n) * v]);
            run_chunk(
                model, self.state, self.pos, piece, work, rot, logits, out, par,
            );
            self.pos = self.pos.saturating_add(n as u64);
        }
        Ok(self.logits())
    }

    /// The logits produced by the last step (length V; zeros after a reset).
    pub fn logits(&self) -> &[f32] {
        let c = &self.model.config;
        let start = 3 * c.d_model;
        &self.scratch[start..start + c.vocab_size]
    }

    /// Draws the next token from the current logits with `sampler` (which
    /// records it in its penalty window). The logits are left untouched; the
    /// work is done in the scratch's temporary area. Does not feed the token.
    pub fn sample(&mut self, sampler: &mut Sampler) -> u32 {
        let v = self.model.config.vocab_size;
        let Areas { logits, tmp, .. } = self.areas();
        let (probs, work) = tmp.split_at_mut(v);
        probs.copy_from_slice(logits);
        sampler.sample(probs, &mut work[..v])
    }

    /// The whole recurrent state (`Model::state_len()` values; layout in the
    /// type's documentation).
    pub fn state(&self) -> &[f32] {
        self.state
    }

    pub(crate) fn state_mut(&mut self) -> &mut [f32] {
        self.state
    }

    pub(crate) fn logits_mut(&mut self) -> &mut [f32] {
        self.areas().logits
    }

    pub(crate) fn set_position(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// Layer `layer`'s state split into `S`, `n`, `m` (`None` past the
    /// last layer, or for a layer that is not a Latte layer).
    pub fn layer_state(&self, layer: usize) -> Option<LayerState<'_>> {
        let latte = self.model.latte_layer(layer)?;
        let st = self.state.get(self.model.layer_state_range(layer)?)?;
        latte.split_state(st)
    }
}

/// [`Error::TokenOutOfRange`] for the first token `>= vocab_size`.
fn check_tokens(tokens: &[u32], vocab_size: usize) -> Result<(), Error> {
    match tokens
        .iter()
        .find(|&&t| usize::try_from(t).map_or(true, |t| t >= vocab_size))
    {
        Some(&token) => Err(Error::TokenOutOfRange { token, vocab_size }),
        None => Ok(()),
    }
}

/// Runs the whole model on `tokens` (valid, non-empty), the first at
/// position `pos`: the matrix products over all tokens at once through
/// `par`, the recurrence token by token. Writes the logits after the last
/// token to `logits` (`V`) and, if given, after every token to
/// `all_logits` (`T x V`). `work` holds at least the areas for `T` tokens
/// [`Error::ContextFull`] when `n` more tokens at position `pos` do not fit
/// a full-attention model's KV cache ([`Model::max_tokens`]).
fn check_room(model: &Model<'_>, pos: u64, n: usize) -> Result<(), Error> {
    match model.max_tokens() {
        Some(cap) if pos.saturating_add(n as u64) > cap => {
            Err(Error::ContextFull { capacity: cap })
        }
        _ => Ok(()),
    }
}

/// (checked by the callers, as are `state` and `rot`).
#[allow(clippy::too_many_arguments)]
fn run_chunk<'a>(
    model: &Model<'a>,
    state: &mut [f32],
    pos: u64,
    tokens: &[u32],
    work: Work<'_>,
    rot: Option<&[f32]>,
    logits: &mut [f32],
    all_logits: Option<&mut [f32]>,
    par: &dyn Parallel<'a>,
) {
    let c = &model.config;
    let (d, v, eps) = (c.d_model, c.vocab_size, c.ln_eps);
    let n = tokens.len();
    let k = model.kernels();
    let cx = Ctx {
        kernels: k,
        par,
        rot,
        eps,
    };
    let mut work = work;
    for (t, (&token, ht)) in tokens.iter().zip(work.h.chunks_exact_mut(d)).enumerate() {
        model.token_embd.row_into(token as usize, ht);
        if c.position == Position::Sinusoidal {
            let freqs = &model.sinusoid[..model.sinusoid_len];
            ops::add_sinusoidal_with(pos.saturating_add(t as u64), ht, freqs);
        }
    }
    for (i, block) in model.blocks[..c.n_layers].iter().enumerate() {
        let st = &mut state[model.state_offsets[i]..model.state_offsets[i + 1]];
        block.run_chunk(&cx, &mut work, n, d, st);
    }
    let Work { h, a, quant, .. } = work;
    let (h, a) = (&mut h[..n * d], &mut a[..n * d]);
    // Head: the last token only, or every token.
    let head = &model.output;
    let bias = Epilogue::Bias(model.output_bias);
    match all_logits {
        None => {
            let a = &mut a[..d];
            ops::layer_norm(
                &h[(n - 1) * d..],
                model.output_norm.weight,
                model.output_norm.bias,
                eps,
                a,
            );
            let xq = quantize_input(k, head.data().is_quantized(), a, quant);
            let task = RowTask::new(k, *head, task_input(head, a, xq), 1).with_epilogue(bias);
            par.run(&task, &mut logits[..v]);
        }
        Some(all) => {
            layer_norm_rows(h, &model.output_norm, eps, d, a);
            let xq = quantize_input(k, head.data().is_quantized(), a, quant);
            let task = RowTask::new(k, *head, task_input(head, a, xq), n).with_epilogue(bias);
            let all = &mut all[..n * v];
            par.run(&task, all);
            logits[..v].copy_from_slice(&all[(n - 1) * v..]);
        }
    }
}
