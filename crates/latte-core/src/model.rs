//! The validated, zero-copy model view.

use core::ops::Range;

use crate::block::Block;
use crate::config::{Config, Mixing, Position};
use crate::error::{Error, TensorName};
use crate::hash::Fnv64;
use crate::latte::LatteLayer;
use crate::mixer::Mixer;
use crate::mlp::Mlp;
use crate::tensor::{q8_0_scratch_len, Matrix, Norm};
use crate::window::{AttentionLayer, Macchiato, RingStorage, WindowAttention};
use crate::MAX_LAYERS;
use latte_kernels::{Kernels, QK};

/// Weights of one block, as given to [`Model::from_parts`]. Matrices are
/// `rows = outputs` (see [`Matrix`]); shapes in terms of [`Config`]:
///
/// | field | shape |
/// |---|---|
/// | `attn_norm`, `ffn_norm` | `D`, `D` |
/// | `attn_q`, `attn_k` | `L x D` |
/// | `attn_v`, `attn_output` | `D x D` |
/// | `ffn_up` / `ffn_up_bias` | `F x D` / `F` |
/// | `ffn_down` / `ffn_down_bias` | `D x F` / `D` |
/// | `attn_decay` | `L` (decay gate only) |
/// | `window` | see [`WindowWeights`] (Macchiato and attention only) |
///
/// An attention layer ([`crate::Mixing::Attention`]) uses `attn_output` as
/// its `Wo` and ignores `attn_q`, `attn_k`, `attn_v` and `attn_decay`.
#[derive(Clone, Copy, Debug)]
pub struct LayerWeights<'a> {
    /// LayerNorm before Latte.
    pub attn_norm: Norm<'a>,
    /// `Wq`, `L x D`.
    pub attn_q: Matrix<'a>,
    /// `Wk`, `L x D`.
    pub attn_k: Matrix<'a>,
    /// `Wv`, `D x D`.
    pub attn_v: Matrix<'a>,
    /// `Wo`, `D x D`.
    pub attn_output: Matrix<'a>,
    /// LayerNorm before the MLP.
    pub ffn_norm: Norm<'a>,
    /// `W1`, `F x D`.
    pub ffn_up: Matrix<'a>,
    /// `b1`, `F`.
    pub ffn_up_bias: &'a [f32],
    /// `W2`, `D x F`.
    pub ffn_down: Matrix<'a>,
    /// `b2`, `D`.
    pub ffn_down_bias: &'a [f32],
    /// The decay gate's rates `λ` (`L`, finite, `>= 0`): `Some` in every
    /// layer when [`Config::latent_decay`] is set, `None` otherwise (the
    /// official architecture).
    pub attn_decay: Option<&'a [f32]>,
    /// The window attention's weights: `Some` exactly when the config's
    /// mixer has a window ([`crate::Mixing`]).
    pub window: Option<WindowWeights<'a>>,
}

/// Weights of a layer's window attention ([`crate::window`]).
#[derive(Clone, Copy, Debug)]
pub struct WindowWeights<'a> {
    /// `Wq`, `D x D`.
    pub q: Matrix<'a>,
    /// `Wk`, `D x D`.
    pub k: Matrix<'a>,
    /// `Wv`, `D x D`.
    pub v: Matrix<'a>,
    /// The heads' distance slopes, `H` values, finite and `>= 0`.
    pub slopes: &'a [f32],
}

/// All weights of a model, as given to [`Model::from_parts`].
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a, 'l> {
    /// `V x D`; row `v` is token `v`'s embedding.
    pub token_embd: Matrix<'a>,
    /// `n_layers` blocks.
    pub layers: &'l [LayerWeights<'a>],
    /// Final LayerNorm, `D`.
    pub output_norm: Norm<'a>,
    /// Head, `V x D`.
    pub output: Matrix<'a>,
    /// Head bias, `V`.
    pub output_bias: &'a [f32],
    /// VAPOR angles per step, `Dh / 2` values; ignored (leave it empty)
    /// for the other position schemes.
    pub vapor_frequencies: &'a [f32],
}

/// VAPOR frequencies as stored: native `f32` or little-endian bytes (GGUF
/// metadata arrays carry no alignment guarantee).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Frequencies<'a> {
    F32(&'a [f32]),
    Le(&'a [u8]),
}

impl Frequencies<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Frequencies::F32(f) => f.len(),
            Frequencies::Le(b) => b.len() / 4,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = f32> + '_ {
        let (a, b) = match *self {
            Frequencies::F32(f) => (f, &[][..]),
            Frequencies::Le(b) => (&[][..], b),
        };
        a.iter().copied().chain(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        )
    }
}

/// A validated Latte language model whose weights are borrowed (never
/// copied) from the caller's bytes or slices. Cheap to share: run any number
/// of [`crate::Session`]s on one `Model`.
///
/// The struct holds one fixed slot per layer ([`MAX_LAYERS`]) and, for
/// sinusoidal models, the first 128 position frequencies
/// ([`crate::ops::sinusoidal_frequency`], 512 bytes, computed once at load
/// instead of at every token), so it needs no allocator.
#[derive(Clone, Debug)]
pub struct Model<'a> {
    pub(crate) config: Config,
    pub(crate) token_embd: Matrix<'a>,
    pub(crate) blocks: [Block<'a>; MAX_LAYERS],
    pub(crate) output_norm: Norm<'a>,
    pub(crate) output: Matrix<'a>,
    pub(crate) output_bias: &'a [f32],
    pub(crate) frequencies: Frequencies<'a>,
    pub(crate) fingerprint: u64,
    /// The kernel table every matrix-vector product goes through.
    pub(crate) kernels: Kernels,
    /// `f32` elements of scratch for `Q8_0`-quantized activations (0 when
    /// no matrix is quantized); see [`Model::quant_scratch_len`].
    pub(crate) quant_scratch: usize,
    /// `Q8_0` blocks per row of the widest quantized matrix (0 if none).
    pub(crate) quant_blocks: usize,
    /// Sinusoidal models: the first `min(ceil(D / 2), SINUSOID_TABLE)`
    /// position frequencies ([`crate::ops::sinusoidal_frequency`]),
    /// computed once here instead of at every token; the rest (wider
    /// models) are computed as needed. Unused for VAPOR models.
    pub(crate) sinusoid: [f32; SINUSOID_TABLE],
    /// Entries of `sinusoid` in use.
    pub(crate) sinusoid_len: usize,
    /// Where each layer's state starts in a session's state, and (entry
    /// `n_layers`) the whole state's length: the mixers' states back to
    /// back.
    pub(crate) state_offsets: [usize; MAX_LAYERS + 1],
    /// Temporary scratch per token of the widest mixer.
    pub(crate) mix_tmp: usize,
    /// [`Model::scratch_len`] without the quantized-input part.
    pub(crate) scratch: usize,
}

/// Position frequencies a [`Model`] keeps precomputed (enough for
/// `D <= 256`; 512 bytes of the struct).
pub(crate) const SINUSOID_TABLE: usize = 128;

/// Fills the first `min(ceil(D / 2), SINUSOID_TABLE)` entries of `table`
/// with the position frequencies of width `d` and returns how many.
pub(crate) fn fill_sinusoid(table: &mut [f32; SINUSOID_TABLE], d: usize) -> usize {
    let n = d.div_ceil(2).min(SINUSOID_TABLE);
    for (i, w) in table[..n].iter_mut().enumerate() {
        *w = crate::ops::sinusoidal_frequency(i, d);
    }
    n
}

pub(crate) fn hash_matrix(h: &mut Fnv64, m: &Matrix<'_>) {
    h.usize(m.rows());
    h.usize(m.cols());
    m.data().hash_into(h);
}

pub(crate) fn hash_vector(h: &mut Fnv64, v: &[f32]) {
    h.usize(v.len());
    h.f32s(v);
}

pub(crate) fn hash_norm(h: &mut Fnv64, n: &Norm<'_>) {
    hash_vector(h, n.weight);
    hash_vector(h, n.bias);
}

/// Expected `ne` of a `rows x cols` matrix.
const fn mat_ne(rows: usize, cols: usize) -> [u64; 2] {
    [cols as u64, rows as u64]
}

fn check_matrix(m: &Matrix<'_>, rows: usize, cols: usize, tensor: TensorName) -> Result<(), Error> {
    if m.rows() == rows && m.cols() == cols {
        Ok(())
    } else {
        Err(Error::TensorShape {
            tensor,
            expected: mat_ne(rows, cols),
            got: [m.cols() as u64, m.rows() as u64, 1, 1],
        })
    }
}

fn check_vector(v: &[f32], len: usize, tensor: TensorName) -> Result<(), Error> {
    if v.len() == len {
        Ok(())
    } else {
        Err(Error::TensorShape {
            tensor,
            expected: [len as u64, 1],
            got: [v.len() as u64, 1, 1, 1],
        })
    }
}

fn check_norm(n: &Norm<'_>, d: usize, weight: TensorName, bias: TensorName) -> Result<(), Error> {
    check_vector(n.weight, d, weight)?;
    check_vector(n.bias, d, bias)
}

impl<'a> Model<'a> {
    /// Builds a model from in-memory weights (e.g. for tests or weights
    /// compiled into firmware).
    ///
    /// Errors: everything [`Config::validate`] reports;
    /// [`Error::BufferLength`] unless `weights.layers.len() == n_layers`;
    /// [`Error::TensorShape`] naming the first weight (by its GGUF name)
    /// whose shape differs from the config; [`Error::VaporFrequencyCount`] /
    /// [`Error::VaporFrequencyNotFinite`] for VAPOR models (the other
    /// schemes ignore `vapor_frequencies`); for the decay gate
    /// ([`Config::latent_decay`]) [`Error::DecayMissing`] /
    /// [`Error::DecayUnexpected`] when a layer's `attn_decay` is `None` /
    /// `Some` against the config, [`Error::DecayShape`] unless it holds L
    /// rates, [`Error::DecayRateNotFinite`] / [`Error::DecayRateNegative`].
    pub fn from_parts(config: Config, weights: Weights<'a, '_>) -> Result<Self, Error> {
        config.validate()?;
        if weights.layers.len() != config.n_layers {
            return Err(Error::BufferLength {
                what: "weights.layers (one entry per layer)",
                need: config.n_layers,
                got: weights.layers.len(),
            });
        }
        let mut blocks = [Block::EMPTY; MAX_LAYERS];
        for (i, (lw, slot)) in weights.layers.iter().zip(blocks.iter_mut()).enumerate() {
            *slot = Self::block_from_parts(&config, i as u32, lw)?;
        }
        Self::assemble(
            config,
            weights.token_embd,
            blocks,
            weights.output_norm,
            weights.output,
            weights.output_bias,
            Frequencies::F32(weights.vapor_frequencies),
        )
    }

    pub(crate) fn block_from_parts(
        config: &Config,
        li: u32,
        lw: &LayerWeights<'a>,
    ) -> Result<Block<'a>, Error> {
        let (d, f) = (config.d_model, config.d_ff);
        let name = |s| TensorName::block(li, s);
        check_norm(
            &lw.attn_norm,
            d,
            name("attn_norm.weight"),
            name("attn_norm.bias"),
        )?;
        check_matrix(&lw.attn_output, d, d, name("attn_output.weight"))?;
        check_norm(
            &lw.ffn_norm,
            d,
            name("ffn_norm.weight"),
            name("ffn_norm.bias"),
        )?;
        check_matrix(&lw.ffn_up, f, d, name("ffn_up.weight"))?;
        check_vector(lw.ffn_up_bias, f, name("ffn_up.bias"))?;
        check_matrix(&lw.ffn_down, d, f, name("ffn_down.weight"))?;
        check_vector(lw.ffn_down_bias, d, name("ffn_down.bias"))?;
        let window = match (config.mixing.window() > 0, lw.window) {
            (false, None) => None,
            (true, Some(w)) => {
                check_matrix(&w.q, d, d, name("win_q.weight"))?;
                check_matrix(&w.k, d, d, name("win_k.weight"))?;
                check_matrix(&w.v, d, d, name("win_v.weight"))?;
                let win = WindowAttention::new(
                    config.n_heads,
                    d,
                    config.mixing.window(),
                    w.q,
                    w.k,
                    w.v,
                    w.slopes,
                )
                .map(|win| win.with_storage(config.mixing.ring()))
                .map_err(|e| match e {
                    Error::WindowSlope { head, .. } => Error::WindowSlope {
                        layer: Some(li),
                        head,
                    },
                    Error::BufferLength { .. } if w.slopes.len() != config.n_heads => {
                        Error::TensorShape {
                            tensor: name("win_slope"),
                            expected: [config.n_heads as u64, 1],
                            got: [w.slopes.len() as u64, 1, 1, 1],
                        }
                    }
                    other => other,
                })?;
                Some(win)
            }
            (expected, _) => {
                return Err(Error::WindowWeights {
                    layer: li,
                    expected,
                })
            }
        };
        let mixer = match (config.mixing, window) {
            (Mixing::Attention { .. }, Some(win)) => {
                if lw.attn_decay.is_some() {
                    return Err(Error::DecayUnexpected { layer: li });
                }
                Mixer::Attention(AttentionLayer::new(win, lw.attn_output)?)
            }
            (mixing, window) => {
                let latte = Self::latte_from_parts(config, li, lw)?;
                match (mixing, window) {
                    (Mixing::Macchiato { combine, .. }, Some(win)) => {
                        Mixer::Macchiato(Macchiato::new(latte, win, combine)?)
                    }
                    _ => Mixer::Latte(latte),
                }
            }
        };
        Ok(Block {
            attn_norm: lw.attn_norm,
            mixer,
            ffn_norm: lw.ffn_norm,
            mlp: Mlp {
                up: lw.ffn_up,
                up_bias: lw.ffn_up_bias,
                down: lw.ffn_down,
                down_bias: lw.ffn_down_bias,
            },
        })
    }

    /// A block's Latte layer (with the decay gate when the config has it).
    fn latte_from_parts(
        config: &Config,
        li: u32,
        lw: &LayerWeights<'a>,
    ) -> Result<LatteLayer<'a>, Error> {
        let (d, l) = (config.d_model, config.n_latents);
        let name = |s| TensorName::block(li, s);
        check_matrix(&lw.attn_q, l, d, name("attn_q.weight"))?;
        check_matrix(&lw.attn_k, l, d, name("attn_k.weight"))?;
        check_matrix(&lw.attn_v, d, d, name("attn_v.weight"))?;
        let latte = LatteLayer::new(
            config.n_heads,
            l,
            d,
            lw.attn_q,
            lw.attn_k,
            lw.attn_v,
            lw.attn_output,
        )?;
        let latte = match (config.latent_decay, lw.attn_decay) {
            (false, None) => latte,
            (false, Some(_)) => return Err(Error::DecayUnexpected { layer: li }),
            (true, None) => return Err(Error::DecayMissing { layer: li }),
            (true, Some(rates)) => {
                if rates.len() != l {
                    return Err(Error::DecayShape {
                        layer: li,
                        n_latents: l,
                        got: [rates.len() as u64, 1, 1, 1],
                    });
                }
                latte.with_decay(rates).map_err(|e| match e {
                    Error::DecayRateNotFinite { latent, .. } => Error::DecayRateNotFinite {
                        layer: Some(li),
                        latent,
                    },
                    Error::DecayRateNegative { latent, .. } => Error::DecayRateNegative {
                        layer: Some(li),
                        latent,
                    },
                    other => other,
                })?
            }
        };
        Ok(latte)
    }

    pub(crate) fn assemble(
        config: Config,
        token_embd: Matrix<'a>,
        blocks: [Block<'a>; MAX_LAYERS],
        output_norm: Norm<'a>,
        output: Matrix<'a>,
        output_bias: &'a [f32],
        frequencies: Frequencies<'a>,
    ) -> Result<Self, Error> {
        let (v, d) = (config.vocab_size, config.d_model);
        check_matrix(&token_embd, v, d, TensorName::global("token_embd.weight"))?;
        check_norm(
            &output_norm,
            d,
            TensorName::global("output_norm.weight"),
            TensorName::global("output_norm.bias"),
        )?;
        check_matrix(&output, v, d, TensorName::global("output.weight"))?;
        check_vector(output_bias, v, TensorName::global("output.bias"))?;
        let frequencies = match config.position {
            Position::Sinusoidal | Position::None => Frequencies::F32(&[]),
            Position::Vapor => {
                let expected = config.d_head() / 2;
                if frequencies.len() != expected {
                    return Err(Error::VaporFrequencyCount {
                        expected,
                        got: frequencies.len(),
                    });
                }
                if frequencies.iter().any(|t| !t.is_finite()) {
                    return Err(Error::VaporFrequencyNotFinite);
                }
                frequencies
            }
        };
        let mut model = Model {
            config,
            token_embd,
            blocks,
            output_norm,
            output,
            output_bias,
            frequencies,
            fingerprint: 0,
            kernels: Kernels::best(),
            quant_scratch: 0,
            quant_blocks: 0,
            sinusoid: [0.0; SINUSOID_TABLE],
            sinusoid_len: 0,
            state_offsets: [0; MAX_LAYERS + 1],
            mix_tmp: 0,
            scratch: 0,
        };
        if config.position == Position::Sinusoidal {
            model.sinusoid_len = fill_sinusoid(&mut model.sinusoid, d);
        }
        model.derive()?;
        Ok(model)
    }

    /// Computes what follows from the blocks: the layers' state offsets,
    /// the scratch sizes and the fingerprint.
    fn derive(&mut self) -> Result<(), Error> {
        let config = self.config;
        let mut offsets = [0usize; MAX_LAYERS + 1];
        let mut mix_tmp = 0;
        for i in 0..config.n_layers {
            let mixer = &self.blocks[i].mixer;
            offsets[i + 1] = offsets[i]
                .checked_add(mixer.state_len())
                .ok_or(Error::SizeOverflow)?;
            mix_tmp = mix_tmp.max(mixer.tmp_per_token());
        }
        // Scratch areas (see `Session`): h, a, o, logits, the VAPOR table,
        // then one temporary area shared by the mixers, the MLP's hidden
        // vector and the sampler.
        let scratch = config
            .try_scratch_len_for(mix_tmp)
            .ok_or(Error::SizeOverflow)?;
        let blocks = self.quantized_input_blocks();
        let (mut quant_blocks, mut quant_scratch) = (0, 0);
        if blocks > 0 {
            quant_blocks = blocks;
            quant_scratch = q8_0_scratch_len(blocks);
            // The session's scratch is both (`scratch_len`).
            scratch
                .checked_add(quant_scratch)
                .ok_or(Error::SizeOverflow)?;
        }
        self.state_offsets = offsets;
        self.mix_tmp = mix_tmp;
        self.scratch = scratch;
        self.quant_blocks = quant_blocks;
        self.quant_scratch = quant_scratch;
        self.fingerprint = self.compute_fingerprint();
        Ok(())
    }

    /// FNV-1a 64 over what the computation depends on, in a fixed order:
    /// the sizes, epsilon and position scheme, then every weight (element
    /// type, shape, little-endian bytes) in FORMAT.md's tensor order, then the
    /// VAPOR angles, then, for models with the decay gate only, a tag and
    /// every layer's rates (so models without it keep the fingerprints they
    /// always had). Not hashed: `context_length` and other metadata that do
    /// not change a single logit, and the container layout (tensor order and
    /// offsets in the file).
    fn compute_fingerprint(&self) -> u64 {
        let c = &self.config;
        let mut h = Fnv64::new();
        h.bytes(b"latte-model-v1");
        for v in [
            c.vocab_size,
            c.d_model,
            c.n_layers,
            c.n_heads,
            c.n_latents,
            c.d_ff,
        ] {
            h.usize(v);
        }
        h.bytes(&c.ln_eps.to_bits().to_le_bytes());
        h.u8(match c.position {
            Position::Sinusoidal => 0,
            Position::Vapor => 1,
            Position::None => 2,
        });
        hash_matrix(&mut h, &self.token_embd);
        for b in self.blocks.iter().take(c.n_layers) {
            hash_norm(&mut h, &b.attn_norm);
            b.mixer.hash_extra(&mut h);
            for m in b.mixer.matrices() {
                hash_matrix(&mut h, m);
            }
            hash_norm(&mut h, &b.ffn_norm);
            hash_matrix(&mut h, &b.mlp.up);
            hash_vector(&mut h, b.mlp.up_bias);
            hash_matrix(&mut h, &b.mlp.down);
            hash_vector(&mut h, b.mlp.down_bias);
        }
        hash_norm(&mut h, &self.output_norm);
        hash_matrix(&mut h, &self.output);
        hash_vector(&mut h, self.output_bias);
        h.usize(self.frequencies.len());
        for f in self.frequencies.iter() {
            h.bytes(&f.to_bits().to_le_bytes());
        }
        if c.latent_decay {
            h.bytes(b"latent-decay");
            for b in self.blocks.iter().take(c.n_layers) {
                let rates = b.mixer.as_latte().and_then(|l| l.decay());
                hash_vector(&mut h, rates.unwrap_or(&[]));
            }
        }
        h.finish()
    }

    /// A full-attention model ([`Mixing::Attention`] with `full`) whose KV
    /// cache holds `capacity` tokens instead of the training length: the
    /// sessions' state grows to `2 capacity D + 2` floats per layer, and a
    /// session refuses token `capacity + 1` with [`Error::ContextFull`].
    /// Other models are returned unchanged.
    ///
    /// Errors: [`Error::ZeroSize`], [`Error::WindowTooLarge`],
    /// [`Error::SizeOverflow`].
    pub fn with_attention_capacity(mut self, capacity: usize) -> Result<Self, Error> {
        let Mixing::Attention {
            full: true, ring, ..
        } = self.config.mixing
        else {
            return Ok(self);
        };
        self.config.mixing = Mixing::Attention {
            window: capacity,
            full: true,
            ring,
        };
        self.config.validate()?;
        for b in self.blocks.iter_mut().take(self.config.n_layers) {
            if let Some(w) = b.mixer.window_mut() {
                *w = w.with_window(capacity)?;
            }
        }
        self.derive()?;
        Ok(self)
    }

    /// The same model with its windows' rings (Macchiato's window, the
    /// attention baseline's KV cache) in `storage`: `f16` halves them, `q8`
    /// takes about a quarter (see [`crate::window`] for the layouts and the
    /// arithmetic). The logits move by the rounding of the stored keys and
    /// values; the fingerprint changes with it, so a snapshot is restored
    /// only into the same storage. Models without a window are returned
    /// unchanged.
    ///
    /// Errors: [`Error::SizeOverflow`] (not for a model that loaded).
    pub fn with_ring_storage(mut self, storage: RingStorage) -> Result<Self, Error> {
        self.set_ring_storage(storage)?;
        Ok(self)
    }

    /// [`Model::with_ring_storage`] in place (no copy of the model: a
    /// microcontroller's stack is small). On an error the model is
    /// unchanged.
    pub fn set_ring_storage(&mut self, storage: RingStorage) -> Result<(), Error> {
        let mut config = self.config;
        match &mut config.mixing {
            Mixing::Latte => return Ok(()),
            Mixing::Macchiato { ring, .. } | Mixing::Attention { ring, .. } => *ring = storage,
        }
        config.validate()?;
        self.config = config;
        for b in self.blocks.iter_mut().take(config.n_layers) {
            if let Some(w) = b.mixer.window_mut() {
                *w = w.with_storage(storage);
            }
        }
        // The validated configuration bounds every size derived here.
        self.derive()
    }

    /// Bytes of a session's state that hold information after `tokens`
    /// tokens: everything for Latte (a constant), and of a window's ring
    /// only the entries filled so far (`min(tokens, W)`; for full attention
    /// the KV cache grows with every token). [`Model::state_bytes`] is what
    /// a session allocates.
    pub fn state_bytes_in_use(&self, tokens: u64) -> usize {
        self.blocks
            .iter()
            .take(self.config.n_layers)
            .map(|b| {
                let used = b.mixer.window().map_or(0, |w| w.state_len_in_use(tokens));
                (b.mixer.state_len() - b.mixer.ring_len() + used) * 4
            })
            .sum()
    }

    /// Tokens a session can hold: the KV cache's capacity for full
    /// attention, `None` (unbounded) for every other mixer.
    pub fn max_tokens(&self) -> Option<u64> {
        match self.config.mixing {
            Mixing::Attention {
                window, full: true, ..
            } => Some(window as u64),
            _ => None,
        }
    }

    /// A 64-bit fingerprint of the model: FNV-1a over its hyper-parameters
    /// and every weight byte. Two models get the same value only if they
    /// compute the same logits (up to a 2^-64 chance of collision); the same
    /// weights loaded from a file or given to [`Model::from_parts`] get the
    /// same value. Snapshots ([`crate::Session::save_snapshot`]) carry it so
    /// they are never restored into another model.
    ///
    /// Hashed: V, D, N, H, L, F, the LayerNorm epsilon, the position scheme,
    /// each weight's element type, shape and little-endian bytes in
    /// FORMAT.md's tensor order, the VAPOR angles and the decay gate's
    /// rates. Not hashed:
    /// `context_length`, `general.name` and the container layout.
    ///
    /// **Cost**: it is computed once, when the model is loaded
    /// ([`Model::from_gguf`], [`Model::from_parts`]), by reading every weight
    /// byte once; this accessor is then free. FNV-1a works a byte at a time:
    /// about 1 ns per byte on a laptop core (5 ms for the 4.6 MB
    /// `latte-micro` in release builds), and on a 32-bit microcontroller
    /// roughly 8 to 10 cycles per byte plus the flash read, e.g. about 0.15 s
    /// per MB of weights at 64 MHz, 20 to 40 ms per MB at 480 MHz.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `f32` elements of state a [`crate::Session`] needs: the layers'
    /// states back to back ([`Model::layer_state_range`]), for Latte layers
    /// `L * Dh + 2 L` each. Independent of the position.
    pub fn state_len(&self) -> usize {
        self.state_offsets[self.config.n_layers.min(MAX_LAYERS)]
    }

    /// Where layer `layer`'s state lies in a session's state (`None` past
    /// the last layer).
    pub fn layer_state_range(&self, layer: usize) -> Option<Range<usize>> {
        if layer >= self.config.n_layers {
            return None;
        }
        Some(self.state_offsets[layer]..*self.state_offsets.get(layer + 1)?)
    }

    /// Block `layer`'s sequence mixer (`None` past the last layer).
    pub fn mixer(&self, layer: usize) -> Option<&Mixer<'a>> {
        self.blocks
            .get(..self.config.n_layers)?
            .get(layer)
            .map(|b| &b.mixer)
    }

    /// `state_len() * 4`.
    pub fn state_bytes(&self) -> usize {
        self.state_len().saturating_mul(4)
    }

    /// `f32` elements of scratch a [`crate::Session`] needs (see
    /// [`crate::Session`] for the layout): for Latte layers
    /// [`Config::scratch_len`], plus [`Model::quant_scratch_len`].
    pub fn scratch_len(&self) -> usize {
        self.scratch.saturating_add(self.quant_scratch)
    }

    /// `f32` elements at the end of the scratch that hold activations
    /// quantized to `Q8_0` for the quantized matrices: `ceil(34 * B / 4)`
    /// where `B = cols / 32` of the widest quantized matrix (`D / 32`, or
    /// `F / 32` when `ffn_down` is quantized); 0 for float models.
    pub fn quant_scratch_len(&self) -> usize {
        self.quant_scratch
    }

    /// The kernel table the matrix-vector products use: [`Kernels::best`]
    /// (chosen at load: at run time with the `std` feature, from the
    /// compile-time target features without it) unless replaced with
    /// [`Model::set_kernels`].
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// Uses `kernels` for every matrix-vector product of sessions started
    /// on this model from now on, e.g. `Kernels::scalar()` or
    /// `KernelPath::Avx2.kernels()` to test or measure one path. Quantized
    /// matrices give the same bits on every path; float ones agree within
    /// rounding.
    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    /// [`Model::set_kernels`] as a builder.
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    /// Blocks per row of the widest quantized matrix (0 if none).
    fn quantized_input_blocks(&self) -> usize {
        let mut widest = 0;
        let mut see = |m: &Matrix<'_>| {
            if m.data().is_quantized() {
                widest = widest.max(m.cols() / QK);
            }
        };
        // token_embd is only looked up by row: no quantized activations.
        see(&self.output);
        for b in self.blocks.iter().take(self.config.n_layers) {
            b.mixer
                .matrices()
                .chain(b.mlp.matrices())
                .for_each(&mut see);
        }
        widest
    }

    /// `scratch_len() * 4`.
    pub fn scratch_bytes(&self) -> usize {
        self.scratch_len().saturating_mul(4)
    }

    /// `f32` elements of the second scratch buffer that
    /// [`crate::Session::prefill`] needs to feed prompts in chunks of up to
    /// `chunk` tokens (the session's own scratch is used too):
    /// `chunk * (3 D + max(2 L + 2 D, F))`, plus, for models with quantized
    /// matrices, `ceil(34 * chunk * B / 4)` with `B` as in
    /// [`Model::quant_scratch_len`] (the chunk's inputs quantized to
    /// `Q8_0`). Layout, for a chunk of `T` tokens, each area token-major:
    /// `h` (`T x D`), `a` (`T x D`), `o` (`T x D`), one temporary area of
    /// `T x max(2L + 2D, F)` (`q`, `k`, `v`, `y`, then the MLP hidden
    /// vectors), then the quantized inputs. `usize::MAX` if it overflows;
    /// 0 for `chunk == 0`.
    ///
    /// For `latte-micro` (D 128, L 64, F 512, Q8_0) that is 1,032 `f32`
    /// (4 KiB) per token of chunk: 258 KiB for chunks of 64.
    pub fn prefill_scratch_len(&self, chunk: usize) -> usize {
        self.try_prefill_scratch_len(chunk).unwrap_or(usize::MAX)
    }

    /// `prefill_scratch_len(chunk) * 4`.
    pub fn prefill_scratch_bytes(&self, chunk: usize) -> usize {
        self.prefill_scratch_len(chunk).saturating_mul(4)
    }

    /// `f32` elements of each area of the prefill scratch for one token:
    /// `(D, max(2L + 2D, F))`.
    pub(crate) fn prefill_token_areas(&self) -> (usize, usize) {
        (self.config.d_model, self.mix_tmp.max(self.config.d_ff))
    }

    fn try_prefill_scratch_len(&self, chunk: usize) -> Option<usize> {
        let (d, tmp) = self.prefill_token_areas();
        let quant = match self.quant_blocks {
            0 => 0,
            b => {
                let blocks = chunk.checked_mul(b)?;
                blocks.checked_mul(34)?;
                q8_0_scratch_len(blocks)
            }
        };
        d.checked_mul(3)?
            .checked_add(tmp)?
            .checked_mul(chunk)?
            .checked_add(quant)
    }

    /// The Latte layer of block `layer` (`None` past `n_layers`, or when
    /// that block's mixer is of another kind).
    pub fn latte_layer(&self, layer: usize) -> Option<&LatteLayer<'a>> {
        self.mixer(layer)?.as_latte()
    }

    /// The VAPOR angles (`Dh / 2` of them; none for the other schemes).
    pub fn vapor_frequencies(&self) -> impl Iterator<Item = f32> + '_ {
        self.frequencies.iter()
    }
}
