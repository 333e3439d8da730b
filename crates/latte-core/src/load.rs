//! Loading a model from GGUF bytes (FORMAT.md): metadata, tensor lookup,
//! type and shape checks, in-place casts.

use core::fmt::Write;

use latte_gguf::{GgmlType, Gguf, TensorInfo};

use crate::block::Block;
use crate::config::{Config, Mixing, Position};
use crate::error::{Error, TensorName};
use crate::model::{Frequencies, LayerWeights, Model, WindowWeights};
use crate::tensor::{cast_f16, cast_f32, Matrix, MatrixData, Norm};
use crate::window::{Combine, RingStorage};
use crate::MAX_LAYERS;

/// Metadata keys (FORMAT.md).
mod key {
    pub const ARCH: &str = "general.architecture";
    pub const VOCAB: &str = "latte.vocab_size";
    pub const CONTEXT: &str = "latte.context_length";
    pub const WIDTH: &str = "latte.embedding_length";
    pub const BLOCKS: &str = "latte.block_count";
    pub const FF: &str = "latte.feed_forward_length";
    pub const HEADS: &str = "latte.attention.head_count";
    pub const LATENTS: &str = "latte.latent_count";
    pub const EPS: &str = "latte.attention.layer_norm_epsilon";
    pub const POSITION: &str = "latte.position_encoding";
    pub const VAPOR_FREQ: &str = "latte.vapor.frequencies";
    pub const LATENT_DECAY: &str = "latte.latent_decay";
    pub const MIXER: &str = "latte.mixer";
    pub const WINDOW: &str = "latte.window";
    pub const COMBINE: &str = "latte.window_combine";
}

/// Maps the reader's lookup errors to this crate's metadata errors.
pub(crate) fn meta(e: latte_gguf::Error) -> Error {
    match e {
        latte_gguf::Error::MissingKey { key } => Error::MissingMetadata { key },
        latte_gguf::Error::WrongType { key, .. }
        | latte_gguf::Error::WrongArrayType { key, .. } => Error::MetadataType { key },
        other => Error::Gguf(other),
    }
}

pub(crate) fn get_usize(g: &Gguf<'_>, key: &'static str) -> Result<usize, Error> {
    let v = g.get_u32(key).map_err(meta)?;
    usize::try_from(v).map_err(|_| Error::SizeOverflow)
}

/// Reads and validates the hyper-parameters.
fn read_config(g: &Gguf<'_>) -> Result<Config, Error> {
    match g.get_str(key::ARCH) {
        Ok("latte") => {}
        Ok(crate::classifier::ARCHITECTURE) => return Err(Error::IsAClassifier),
        Ok(_) | Err(latte_gguf::Error::MissingKey { .. }) => return Err(Error::WrongArchitecture),
        Err(e) => return Err(meta(e)),
    }
    let position = match g.get_str(key::POSITION).map_err(meta)? {
        "sinusoidal" => Position::Sinusoidal,
        "vapor" => Position::Vapor,
        "none" => Position::None,
        _ => return Err(Error::UnknownPositionEncoding),
    };
    // The decay gate (an extension): absent means the official model.
    let latent_decay = match g.get_bool(key::LATENT_DECAY) {
        Ok(v) => v,
        Err(latte_gguf::Error::MissingKey { .. }) => false,
        Err(e) => return Err(meta(e)),
    };
    // The mixer (absent: Latte, the paper's model).
    let mixing = match g.get_str(key::MIXER) {
        Err(latte_gguf::Error::MissingKey { .. }) | Ok("latte") => Mixing::Latte,
        Ok("macchiato") => Mixing::Macchiato {
            window: get_usize(g, key::WINDOW)?,
            combine: match g.get_str(key::COMBINE).map_err(meta)? {
                "sum" => Combine::Sum,
                "joint" => Combine::Joint,
                _ => return Err(Error::UnknownCombine),
            },
            ring: RingStorage::F32,
        },
        Ok("attention") => match get_usize(g, key::WINDOW)? {
            // Full attention: a KV cache of the training length until the
            // caller sets another capacity.
            0 => Mixing::Attention {
                window: get_usize(g, key::CONTEXT)?,
                full: true,
                ring: RingStorage::F32,
            },
            w => Mixing::Attention {
                window: w,
                full: false,
                ring: RingStorage::F32,
            },
        },
        Ok(_) => return Err(Error::UnknownMixer),
        Err(e) => return Err(meta(e)),
    };
    let config = Config {
        mixing,
        vocab_size: get_usize(g, key::VOCAB)?,
        d_model: get_usize(g, key::WIDTH)?,
        n_layers: get_usize(g, key::BLOCKS)?,
        n_heads: get_usize(g, key::HEADS)?,
        n_latents: get_usize(g, key::LATENTS)?,
        d_ff: get_usize(g, key::FF)?,
        context_length: get_usize(g, key::CONTEXT)?,
        ln_eps: g.get_f32(key::EPS).map_err(meta)?,
        position,
        latent_decay,
    };
    config.validate()?;
    Ok(config)
}

/// A tensor name formatted on the stack (`blk.N.` + suffix fits easily).
struct NameBuf {
    buf: [u8; 64],
    len: usize,
}

impl Write for NameBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

pub(crate) fn find<'a>(g: &Gguf<'a>, name: TensorName) -> Result<TensorInfo<'a>, Error> {
    let mut buf = NameBuf {
        buf: [0; 64],
        len: 0,
    };
    write!(buf, "{name}").map_err(|_| Error::MissingTensor { tensor: name })?;
    let s = core::str::from_utf8(&buf.buf[..buf.len])
        .map_err(|_| Error::MissingTensor { tensor: name })?;
    g.tensor(s).ok_or(Error::MissingTensor { tensor: name })
}

fn check_shape(t: &TensorInfo<'_>, name: TensorName, expected: [u64; 2]) -> Result<(), Error> {
    if t.ne == [expected[0], expected[1], 1, 1] {
        Ok(())
    } else {
        Err(Error::TensorShape {
            tensor: name,
            expected,
            got: t.ne,
        })
    }
}

/// Maps a block cast failure to this crate's errors.
fn cast_err(e: latte_kernels::CastError, tensor: TensorName, len: usize) -> Error {
    match e {
        latte_kernels::CastError::Misaligned { align } => Error::Misaligned { tensor, align },
        latte_kernels::CastError::Length { .. } => Error::TensorData { tensor, len },
    }
}

/// An F32, F16 or block-quantized (`MatrixData::quantized_from_bytes`)
/// `rows x cols` matrix (`ne = [cols, rows]`).
/// Quantized rows must be whole blocks, and every block's scale finite.
pub(crate) fn matrix<'a>(
    g: &Gguf<'a>,
    name: TensorName,
    rows: usize,
    cols: usize,
) -> Result<Matrix<'a>, Error> {
    let t = find(g, name)?;
    let len = t.data.len();
    let data = match t.ty {
        GgmlType::F32 => MatrixData::F32(cast_f32(t.data, name)?),
        GgmlType::F16 => MatrixData::F16(cast_f16(t.data, name)?),
        other => {
            let Some(cast) = MatrixData::quantized_from_bytes(other.id(), t.data) else {
                return Err(Error::UnsupportedTensorType {
                    tensor: name,
                    ggml_type: other.id(),
                });
            };
            check_shape(&t, name, [cols as u64, rows as u64])?;
            if !cols.is_multiple_of(latte_kernels::QK) {
                return Err(Error::QuantizedRowLength {
                    tensor: Some(name),
                    ggml_type: t.ty.id(),
                    cols,
                });
            }
            cast.map_err(|e| cast_err(e, name, len))?
        }
    };
    check_shape(&t, name, [cols as u64, rows as u64])?;
    Matrix::new(rows, cols, data).map_err(|e| match e {
        Error::QuantizedRowLength {
            ggml_type, cols, ..
        } => Error::QuantizedRowLength {
            tensor: Some(name),
            ggml_type,
            cols,
        },
        Error::BlockScaleNotFinite {
            ggml_type, block, ..
        } => Error::BlockScaleNotFinite {
            tensor: Some(name),
            ggml_type,
            block,
        },
        _ => Error::TensorData { tensor: name, len },
    })
}

/// An F32 vector of `len` elements.
pub(crate) fn vector<'a>(g: &Gguf<'a>, name: TensorName, len: usize) -> Result<&'a [f32], Error> {
    let t = find(g, name)?;
    if t.ty != GgmlType::F32 {
        return Err(Error::NotF32 { tensor: name });
    }
    check_shape(&t, name, [len as u64, 1])?;
    let v = cast_f32(t.data, name)?;
    if v.len() != len {
        return Err(Error::TensorData {
            tensor: name,
            len: t.data.len(),
        });
    }
    Ok(v)
}

/// Layer `layer`'s decay rates `blk.N.attn_decay` (F32, `ne = [L]`):
/// `Some` when the gate is on (`latte.latent_decay`), `None` otherwise.
/// The tensor must be there exactly when the gate is on; the values are
/// checked by [`Model::block_from_parts`].
fn decay<'a>(
    g: &Gguf<'a>,
    config: &Config,
    layer: u32,
    name: TensorName,
) -> Result<Option<&'a [f32]>, Error> {
    let t = match (find(g, name), config.latent_decay) {
        (Err(_), false) => return Ok(None),
        (Err(_), true) => return Err(Error::DecayMissing { layer }),
        (Ok(_), false) => return Err(Error::DecayUnexpected { layer }),
        (Ok(t), true) => t,
    };
    if t.ty != GgmlType::F32 {
        return Err(Error::DecayNotF32 {
            layer,
            ggml_type: t.ty.id(),
        });
    }
    let l = config.n_latents;
    if t.ne != [l as u64, 1, 1, 1] {
        return Err(Error::DecayShape {
            layer,
            n_latents: l,
            got: t.ne,
        });
    }
    let v = cast_f32(t.data, name)?;
    if v.len() != l {
        return Err(Error::TensorData {
            tensor: name,
            len: t.data.len(),
        });
    }
    Ok(Some(v))
}

pub(crate) fn norm<'a>(
    g: &Gguf<'a>,
    weight: TensorName,
    bias: TensorName,
    d: usize,
) -> Result<Norm<'a>, Error> {
    Ok(Norm {
        weight: vector(g, weight, d)?,
        bias: vector(g, bias, d)?,
    })
}

impl<'a> Model<'a> {
    /// Parses and validates a Latte GGUF file (FORMAT.md) and borrows its
    /// weights in place. Validation happens once, here; stepping never
    /// re-checks the file.
    ///
    /// The matrix-vector products use [`latte_kernels::Kernels::best`]
    /// unless [`Model::set_kernels`] picks another path.
    ///
    /// `bytes` must be 4-byte aligned (F32 data is read in place): load it
    /// with `mmap`, into a `Vec<u32>`/`Vec<f32>`, or through an aligned
    /// `include_bytes!` wrapper.
    ///
    /// Errors: [`Error::Gguf`] for a damaged container;
    /// [`Error::WrongArchitecture`]; [`Error::MissingMetadata`] /
    /// [`Error::MetadataType`] for the hyper-parameter keys;
    /// everything [`Config::validate`] reports;
    /// [`Error::UnknownPositionEncoding`]; [`Error::MissingTensor`],
    /// [`Error::UnsupportedTensorType`] (weights must be F32, F16, Q8_0 or
    /// Q4_0), [`Error::QuantizedRowLength`] (a quantized matrix whose row
    /// length is not a multiple of 32), [`Error::BlockScaleNotFinite`]
    /// (a quantized block with a NaN or infinite scale: every block is
    /// checked here, once),
    /// [`Error::NotF32`] (norms and biases), [`Error::TensorShape`] naming
    /// the tensor; [`Error::Misaligned`] when the buffer is not aligned;
    /// [`Error::VaporFrequencyCount`] / [`Error::VaporFrequencyNotFinite`];
    /// for the decay gate (`latte.latent_decay`, a bool, absent = false)
    /// [`Error::DecayMissing`] (the key true, a layer's `blk.N.attn_decay`
    /// absent), [`Error::DecayUnexpected`] (the tensor present, the key not
    /// true), [`Error::DecayNotF32`], [`Error::DecayShape`] (not `[L]`),
    /// [`Error::DecayRateNotFinite`] / [`Error::DecayRateNegative`].
    pub fn from_gguf(bytes: &'a [u8]) -> Result<Self, Error> {
        let g = Gguf::parse(bytes)?;
        let config = read_config(&g)?;
        let (v, d, l, f) = (
            config.vocab_size,
            config.d_model,
            config.n_latents,
            config.d_ff,
        );
        let token_embd = matrix(&g, TensorName::global("token_embd.weight"), v, d)?;
        let mut blocks = [Block::EMPTY; MAX_LAYERS];
        for (i, slot) in blocks.iter_mut().take(config.n_layers).enumerate() {
            let li = u32::try_from(i).map_err(|_| Error::SizeOverflow)?;
            let n = |s| TensorName::block(li, s);
            let attention = matches!(config.mixing, Mixing::Attention { .. });
            let latte_matrix = |s, rows| {
                if attention {
                    Ok(Matrix::EMPTY)
                } else {
                    matrix(&g, n(s), rows, d)
                }
            };
            let window = if config.mixing.window() > 0 {
                Some(WindowWeights {
                    q: matrix(&g, n("win_q.weight"), d, d)?,
                    k: matrix(&g, n("win_k.weight"), d, d)?,
                    v: matrix(&g, n("win_v.weight"), d, d)?,
                    slopes: vector(&g, n("win_slope"), config.n_heads)?,
                })
            } else {
                None
            };
            let lw = LayerWeights {
                attn_norm: norm(&g, n("attn_norm.weight"), n("attn_norm.bias"), d)?,
                attn_q: latte_matrix("attn_q.weight", l)?,
                attn_k: latte_matrix("attn_k.weight", l)?,
                attn_v: latte_matrix("attn_v.weight", d)?,
                attn_output: matrix(&g, n("attn_output.weight"), d, d)?,
                ffn_norm: norm(&g, n("ffn_norm.weight"), n("ffn_norm.bias"), d)?,
                ffn_up: matrix(&g, n("ffn_up.weight"), f, d)?,
                ffn_up_bias: vector(&g, n("ffn_up.bias"), f)?,
                ffn_down: matrix(&g, n("ffn_down.weight"), d, f)?,
                ffn_down_bias: vector(&g, n("ffn_down.bias"), d)?,
                attn_decay: decay(&g, &config, li, n("attn_decay"))?,
                window,
            };
            *slot = Self::block_from_parts(&config, li, &lw)?;
        }
        let output_norm = norm(
            &g,
            TensorName::global("output_norm.weight"),
            TensorName::global("output_norm.bias"),
            d,
        )?;
        let output = matrix(&g, TensorName::global("output.weight"), v, d)?;
        let output_bias = vector(&g, TensorName::global("output.bias"), v)?;
        let frequencies = match config.position {
            Position::Sinusoidal | Position::None => Frequencies::F32(&[]),
            Position::Vapor => {
                // Type-checks the element type; the raw bytes are decoded on use.
                g.get_f32_array(key::VAPOR_FREQ).map_err(meta)?;
                Frequencies::Le(g.get_array(key::VAPOR_FREQ).map_err(meta)?.raw_bytes())
            }
        };
        Self::assemble(
            config,
            token_embd,
            blocks,
            output_norm,
            output,
            output_bias,
            frequencies,
        )
    }
}
