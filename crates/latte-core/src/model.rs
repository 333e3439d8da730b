//! The validated, zero-copy model view.

use crate::config::{Config, Position};
use crate::error::{Error, TensorName};
use crate::latte::LatteLayer;
use crate::tensor::{Matrix, Norm};
use crate::MAX_LAYERS;

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
    /// VAPOR angles per step, `Dh / 2` values; empty for sinusoidal models.
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

#[derive(Clone, Copy, Debug)]
pub(crate) struct Block<'a> {
    pub(crate) attn_norm: Norm<'a>,
    pub(crate) latte: LatteLayer<'a>,
    pub(crate) ffn_norm: Norm<'a>,
    pub(crate) ffn_up: Matrix<'a>,
    pub(crate) ffn_up_bias: &'a [f32],
    pub(crate) ffn_down: Matrix<'a>,
    pub(crate) ffn_down_bias: &'a [f32],
}

impl Block<'_> {
    pub(crate) const EMPTY: Block<'static> = Block {
        attn_norm: Norm::EMPTY,
        latte: LatteLayer::EMPTY,
        ffn_norm: Norm::EMPTY,
        ffn_up: Matrix::EMPTY,
        ffn_up_bias: &[],
        ffn_down: Matrix::EMPTY,
        ffn_down_bias: &[],
    };
}

/// A validated Latte language model whose weights are borrowed (never
/// copied) from the caller's bytes or slices. Cheap to share: run any number
/// of [`crate::Session`]s on one `Model`.
///
/// The struct holds one fixed slot per layer ([`MAX_LAYERS`]), so it needs
/// no allocator.
#[derive(Clone, Debug)]
pub struct Model<'a> {
    pub(crate) config: Config,
    pub(crate) token_embd: Matrix<'a>,
    pub(crate) blocks: [Block<'a>; MAX_LAYERS],
    pub(crate) output_norm: Norm<'a>,
    pub(crate) output: Matrix<'a>,
    pub(crate) output_bias: &'a [f32],
    pub(crate) frequencies: Frequencies<'a>,
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
    /// [`Error::VaporFrequencyNotFinite`] for VAPOR models (sinusoidal models
    /// ignore `vapor_frequencies`).
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
        let (d, l, f) = (config.d_model, config.n_latents, config.d_ff);
        let name = |s| TensorName::block(li, s);
        check_norm(
            &lw.attn_norm,
            d,
            name("attn_norm.weight"),
            name("attn_norm.bias"),
        )?;
        check_matrix(&lw.attn_q, l, d, name("attn_q.weight"))?;
        check_matrix(&lw.attn_k, l, d, name("attn_k.weight"))?;
        check_matrix(&lw.attn_v, d, d, name("attn_v.weight"))?;
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
        let latte = LatteLayer::new(
            config.n_heads,
            l,
            d,
            lw.attn_q,
            lw.attn_k,
            lw.attn_v,
            lw.attn_output,
        )?;
        Ok(Block {
            attn_norm: lw.attn_norm,
            latte,
            ffn_norm: lw.ffn_norm,
            ffn_up: lw.ffn_up,
            ffn_up_bias: lw.ffn_up_bias,
            ffn_down: lw.ffn_down,
            ffn_down_bias: lw.ffn_down_bias,
        })
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
            Position::Sinusoidal => Frequencies::F32(&[]),
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
        Ok(Model {
            config,
            token_embd,
            blocks,
            output_norm,
            output,
            output_bias,
            frequencies,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `f32` elements of state a [`crate::Session`] needs:
    /// `n_layers * (L * Dh + 2 L)`, independent of the position.
    pub fn state_len(&self) -> usize {
        self.config.state_len()
    }

    /// `state_len() * 4`.
    pub fn state_bytes(&self) -> usize {
        self.state_len().saturating_mul(4)
    }

    /// `f32` elements of scratch a [`crate::Session`] needs (see
    /// [`crate::Session`] for the layout).
    pub fn scratch_len(&self) -> usize {
        self.config.scratch_len()
    }

    /// `scratch_len() * 4`.
    pub fn scratch_bytes(&self) -> usize {
        self.scratch_len().saturating_mul(4)
    }

    /// The Latte layer of block `layer` (`None` past `n_layers`).
    pub fn latte_layer(&self, layer: usize) -> Option<&LatteLayer<'a>> {
        self.blocks
            .get(..self.config.n_layers)?
            .get(layer)
            .map(|b| &b.latte)
    }

    /// The VAPOR angles (`Dh / 2` of them; none for sinusoidal models).
    pub fn vapor_frequencies(&self) -> impl Iterator<Item = f32> + '_ {
        self.frequencies.iter()
    }
}
