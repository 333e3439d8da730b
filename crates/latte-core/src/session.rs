//! A decoding session: one sequence's recurrent state, its scratch, and the
//! token-by-token step of the whole language model.

use crate::config::{Config, Position};
use crate::error::Error;
use crate::latte::LayerState;
use crate::model::Model;
use crate::ops;
use crate::sampler::Sampler;

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
#[derive(Debug)]
pub struct Session<'m, 'a, 'b> {
    model: &'m Model<'a>,
    state: &'b mut [f32],
    scratch: &'b mut [f32],
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

impl<'m, 'a, 'b> Session<'m, 'a, 'b> {
    /// Starts a session at position 0 with the initial state.
    ///
    /// Errors: [`Error::StateTooSmall`] / [`Error::ScratchTooSmall`] when a
    /// buffer is shorter than [`Model::state_len`] / [`Model::scratch_len`].
    pub fn new(
        model: &'m Model<'a>,
        state: &'b mut [f32],
        scratch: &'b mut [f32],
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
        let ls = self.model.config.layer_state_len();
        let n_layers = self.model.config.n_layers;
        for (block, st) in self.model.blocks[..n_layers]
            .iter()
            .zip(self.state.chunks_exact_mut(ls))
        {
            block.latte.reset_state(st);
        }
        self.areas().logits.fill(0.0);
        self.pos = 0;
    }

    /// The model.
    pub fn model(&self) -> &'m Model<'a> {
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
        let model = self.model;
        let c = model.config;
        if usize::try_from(token).map_or(true, |t| t >= c.vocab_size) {
            return Err(Error::TokenOutOfRange {
                token,
                vocab_size: c.vocab_size,
            });
        }
        let pos = self.pos;
        let ls = c.layer_state_len();
        let mut states = self.state.chunks_exact_mut(ls);
        let (d, l, f) = (c.d_model, c.n_latents, c.d_ff);
        let Areas {
            h,
            a,
            o,
            logits,
            rot,
            tmp,
            quant,
        } = split_areas(self.scratch, &c, model.quant_scratch_len());
        let k = model.kernels();
        model.token_embd.row_into(token as usize, h);
        let rotation = match c.position {
            Position::Sinusoidal => {
                ops::add_sinusoidal(pos, h);
                None
            }
            Position::Vapor => Some(&*rot),
        };
        for block in &model.blocks[..c.n_layers] {
            let st = states.next().unwrap_or(&mut []);
            ops::layer_norm(h, block.attn_norm.weight, block.attn_norm.bias, c.ln_eps, a);
            let latte_tmp = &mut tmp[..2 * l + 2 * d];
            block
                .latte
                .step_inner(k, a, st, rotation, latte_tmp, quant, o)?;
            ops::add_assign(h, o);
            ops::layer_norm(h, block.ffn_norm.weight, block.ffn_norm.bias, c.ln_eps, a);
            let hidden = &mut tmp[..f];
            block.ffn_up.matvec_quantizing(k, a, quant, hidden);
            ops::add_assign(hidden, block.ffn_up_bias);
            ops::gelu_tanh_in_place(hidden);
            block.ffn_down.matvec_quantizing(k, hidden, quant, o);
            ops::add_assign(o, block.ffn_down_bias);
            ops::add_assign(h, o);
        }
        ops::layer_norm(
            h,
            model.output_norm.weight,
            model.output_norm.bias,
            c.ln_eps,
            a,
        );
        model.output.matvec_quantizing(k, a, quant, logits);
        ops::add_assign(logits, model.output_bias);
        self.pos = pos.saturating_add(1);
        Ok(self.logits())
    }

    /// Feeds a prompt token by token and returns the logits after its last
    /// token. All tokens are checked before any is fed.
    ///
    /// Errors: [`Error::EmptyPrompt`]; [`Error::TokenOutOfRange`] for the
    /// first bad token (the session is then unchanged).
    pub fn feed(&mut self, tokens: &[u32]) -> Result<&[f32], Error> {
        if tokens.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        let vocab_size = self.model.config.vocab_size;
        if let Some(&token) = tokens
            .iter()
            .find(|&&t| usize::try_from(t).map_or(true, |t| t >= vocab_size))
        {
            return Err(Error::TokenOutOfRange { token, vocab_size });
        }
        for &t in tokens {
            self.step(t)?;
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

    /// Layer `layer`'s state split into `S`, `n`, `m` (`None` past the last layer).
    pub fn layer_state(&self, layer: usize) -> Option<LayerState<'_>> {
        let latte = self.model.latte_layer(layer)?;
        let ls = latte.state_len();
        let st = self.state.get(layer.checked_mul(ls)?..)?;
        latte.split_state(st)
    }
}
