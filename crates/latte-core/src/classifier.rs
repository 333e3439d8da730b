//! Sequence classification with bidirectional Latte: the official
//! classifier (`models/tasks.py` `Classification`) on a byte-level input of
//! any length, in caller memory.
//!
//! The model: byte embedding plus the sinusoidal table (or no positions),
//! `N` pre-LayerNorm blocks `h += BidLatte(LN(h)); h += MLP(LN(h))` (see
//! [`crate::bidir`]), no final norm, the mean of the last hidden states over
//! the tokens, and one dense layer to the class logits.
//!
//! A bidirectional layer needs a summary of the whole input before any
//! token's output, so a layer costs two passes. Two modes give the same
//! bits:
//!
//! * **buffered** ([`Classifier::classify_buffered`]): the caller supplies
//!   `T x D` hidden states; each layer reads them twice (gather, then
//!   apply in place). Memory grows with `T`; time is `N` blocks per token.
//! * **constant memory** ([`Classifier::classify_stream`]): the input is
//!   read from a [`ByteSource`] once per layer and once more for the pooled
//!   mean (`N + 1` passes); each pass recomputes the earlier layers of a
//!   chunk from the bytes, using their finished summaries. Memory is the
//!   summaries (`L * Dh + 2 L` per layer) and one chunk's work area,
//!   whatever `T`; time is `N (N + 1) / 2 + N` block passes per token.
//!
//! Both run the same chunk functions on the same rows, and every value is a
//! function of its own token and of the finished summaries: matrix products
//! give the bits of the matrix-vector product whatever the chunk, and the
//! summaries and the pooled sum add the tokens in input order. So the two
//! modes, any chunk size and every kernel path (for quantized weights) give
//! the same logits.
//!
//! Model file: `general.architecture = "latte-classifier"` (FORMAT.md).

use latte_gguf::{Gguf, ValueType};
use latte_kernels::{Kernels, QK};

use crate::bidir::BidLatteLayer;
use crate::block::{layer_norm_rows, task_input, Ctx};
use crate::config::Position;
use crate::error::{Error, TensorName};
use crate::hash::Fnv64;
use crate::load::{find, get_usize, matrix, meta, norm, vector};
use crate::mlp::Mlp;
use crate::model::{hash_matrix, hash_norm, hash_vector};
use crate::ops;
use crate::parallel::{Epilogue, Parallel, RowTask, Sequential};
use crate::tensor::{q8_0_scratch_len, quantize_input, Matrix, Norm};
use crate::MAX_LAYERS;

/// `general.architecture` of a classifier model file.
pub const ARCHITECTURE: &str = "latte-classifier";

/// Most tokens one chunk may hold (the streaming mode reads a chunk's bytes
/// into a stack buffer of this size).
pub const MAX_CHUNK: usize = 256;

/// Widest byte n-gram stem ([`ClassifierConfig::conv_width`]) a model may
/// have.
pub const MAX_CONV_WIDTH: usize = 8;

/// Metadata keys (FORMAT.md, "Classifier files").
mod key {
    pub const ARCH: &str = "general.architecture";
    pub const VOCAB: &str = "latte-classifier.vocab_size";
    pub const CONTEXT: &str = "latte-classifier.context_length";
    pub const WIDTH: &str = "latte-classifier.embedding_length";
    pub const BLOCKS: &str = "latte-classifier.block_count";
    pub const FF: &str = "latte-classifier.feed_forward_length";
    pub const HEADS: &str = "latte-classifier.attention.head_count";
    pub const LATENTS: &str = "latte-classifier.latent_count";
    pub const EPS: &str = "latte-classifier.attention.layer_norm_epsilon";
    pub const POSITION: &str = "latte-classifier.position_encoding";
    pub const CLASSES: &str = "latte-classifier.class_count";
    pub const LABELS: &str = "latte-classifier.class_labels";
    pub const CONV: &str = "latte-classifier.conv_width";
}

/// Hyper-parameters of a classifier (FORMAT.md's `latte-classifier.*` keys).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassifierConfig {
    /// V (256 for bytes).
    pub vocab_size: usize,
    /// D.
    pub d_model: usize,
    /// N, at most [`MAX_LAYERS`].
    pub n_layers: usize,
    /// H.
    pub n_heads: usize,
    /// L, over all heads.
    pub n_latents: usize,
    /// F.
    pub d_ff: usize,
    /// C, at least 2.
    pub n_classes: usize,
    /// Tokens per input in training (the first `context_length` bytes of a
    /// message). Informational: any length runs.
    pub context_length: usize,
    /// LayerNorm epsilon.
    pub ln_eps: f32,
    /// [`Position::Sinusoidal`] or [`Position::None`].
    pub position: Position,
    /// The byte n-gram stem (an extension of the paper's model, not the
    /// official architecture): 0 = none; `K > 0` adds
    /// `W [e_t | e_{t-1} | ... | e_{t-K+1}] + b` (`W`: `D x K D`, the
    /// embeddings of the token and the `K - 1` before it, zeros before the
    /// start) to each token's embedding, before the positions. At most
    /// [`MAX_CONV_WIDTH`].
    pub conv_width: usize,
}

impl ClassifierConfig {
    /// Checks sizes (non-zero, `D % H`, `L % H`, `N <= MAX_LAYERS`,
    /// `C >= 2`), epsilon and the position scheme (no VAPOR).
    pub fn validate(&self) -> Result<(), Error> {
        for (v, key) in [
            (self.vocab_size, key::VOCAB),
            (self.d_model, key::WIDTH),
            (self.n_layers, key::BLOCKS),
            (self.n_heads, key::HEADS),
            (self.n_latents, key::LATENTS),
            (self.d_ff, key::FF),
            (self.n_classes, key::CLASSES),
        ] {
            if v == 0 {
                return Err(Error::ZeroSize { key });
            }
        }
        if self.n_classes < 2 {
            return Err(Error::TooFewClasses {
                n_classes: self.n_classes,
            });
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(Error::HeadsDoNotDivideWidth {
                d_model: self.d_model,
                n_heads: self.n_heads,
            });
        }
        if !self.n_latents.is_multiple_of(self.n_heads) {
            return Err(Error::HeadsDoNotDivideLatents {
                n_latents: self.n_latents,
                n_heads: self.n_heads,
            });
        }
        if self.n_layers > MAX_LAYERS {
            return Err(Error::TooManyLayers {
                n_layers: self.n_layers,
                max: MAX_LAYERS,
            });
        }
        if !(self.ln_eps >= 0.0 && self.ln_eps.is_finite()) {
            return Err(Error::InvalidLayerNormEpsilon);
        }
        if self.position == Position::Vapor {
            return Err(Error::UnknownPositionEncoding);
        }
        if self.conv_width > MAX_CONV_WIDTH {
            return Err(Error::ConvWidth {
                conv_width: self.conv_width,
                max: MAX_CONV_WIDTH,
            });
        }
        self.try_summaries_len().ok_or(Error::SizeOverflow)?;
        self.try_work_len(MAX_CHUNK).ok_or(Error::SizeOverflow)?;
        for (a, b) in [
            (self.vocab_size, self.d_model),
            (self.n_latents, self.d_model),
            (self.d_model, self.d_model),
            (self.d_ff, self.d_model),
            (self.n_classes, self.d_model),
            (self.conv_width * self.d_model, self.d_model),
        ] {
            a.checked_mul(b).ok_or(Error::SizeOverflow)?;
        }
        Ok(())
    }

    fn d_head(&self) -> usize {
        self.d_model.checked_div(self.n_heads).unwrap_or(0)
    }

    fn try_summary_len(&self) -> Option<usize> {
        self.n_latents
            .checked_mul(self.d_head())?
            .checked_add(self.n_latents.checked_mul(2)?)
    }

    fn try_summaries_len(&self) -> Option<usize> {
        self.try_summary_len()?.checked_mul(self.n_layers)
    }

    /// The temporary area per token, `max(L + D, F, K D)` (valid configs).
    fn tmp_per_token(&self) -> usize {
        (self.n_latents + self.d_model)
            .max(self.d_ff)
            .max(self.conv_width * self.d_model)
    }

    /// Work area per token of a chunk besides the quantized inputs:
    /// `h`, `a`, `o` (`D` each) and `tmp` (`max(L + D, F, K D)`).
    fn try_per_token(&self) -> Option<usize> {
        let tmp = self
            .n_latents
            .checked_add(self.d_model)?
            .max(self.d_ff)
            .max(self.conv_width.checked_mul(self.d_model)?);
        self.d_model.checked_mul(3)?.checked_add(tmp)
    }

    fn try_work_len_with(&self, chunk: usize, quant_blocks: usize) -> Option<usize> {
        let quant = match quant_blocks {
            0 => 0,
            b => {
                let blocks = chunk.checked_mul(b)?;
                blocks.checked_mul(34)?;
                q8_0_scratch_len(blocks)
            }
        };
        self.try_per_token()?
            .checked_mul(chunk)?
            .checked_add(self.d_model)? // the pooled sum
            .checked_add(quant)
    }

    fn try_work_len(&self, chunk: usize) -> Option<usize> {
        let widest = self
            .d_ff
            .max(self.d_model)
            .max(self.conv_width * self.d_model);
        self.try_work_len_with(chunk, widest / QK)
    }
}

/// The input of [`Classifier::classify_stream`]: bytes read in order, from
/// the start again at every pass. A file, a slice in flash
/// ([`SliceSource`]), a socket replayed from storage: anything that can
/// restart.
pub trait ByteSource {
    /// Goes back to the first byte. Errors: whatever the source reports
    /// (e.g. [`Error::InputRead`]).
    fn rewind(&mut self) -> Result<(), Error>;
    /// Fills the start of `buf` with the next bytes and returns how many;
    /// 0 only at the end of the input.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error>;
}

/// A [`ByteSource`] over bytes in memory (RAM or flash).
#[derive(Clone, Copy, Debug)]
pub struct SliceSource<'s> {
    bytes: &'s [u8],
    pos: usize,
}

impl<'s> SliceSource<'s> {
    /// Reads `bytes`.
    pub fn new(bytes: &'s [u8]) -> Self {
        SliceSource { bytes, pos: 0 }
    }
}

impl ByteSource for SliceSource<'_> {
    fn rewind(&mut self) -> Result<(), Error> {
        self.pos = 0;
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let rest = self.bytes.get(self.pos..).unwrap_or(&[]);
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// What a classification computed besides the logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classified {
    /// Tokens (bytes) the model read: the input, or its first `max_tokens`.
    pub tokens: u64,
    /// The class with the largest logit (the first on ties).
    pub class: usize,
}

/// One encoder block.
#[derive(Clone, Copy, Debug)]
struct EncoderBlock<'a> {
    attn_norm: Norm<'a>,
    mixer: BidLatteLayer<'a>,
    ffn_norm: Norm<'a>,
    mlp: Mlp<'a>,
}

impl EncoderBlock<'_> {
    const EMPTY: EncoderBlock<'static> = EncoderBlock {
        attn_norm: Norm::EMPTY,
        mixer: BidLatteLayer::EMPTY,
        ffn_norm: Norm::EMPTY,
        mlp: Mlp::EMPTY,
    };
}

/// A chunk's work areas besides its hidden states (token-major).
struct ChunkWork<'w> {
    a: &'w mut [f32],
    o: &'w mut [f32],
    tmp: &'w mut [f32],
    quant: &'w mut [f32],
}

/// A validated bidirectional-Latte classifier whose weights are borrowed
/// from the model bytes (flash or mmap), like [`crate::Model`].
#[derive(Clone, Debug)]
pub struct Classifier<'a> {
    config: ClassifierConfig,
    token_embd: Matrix<'a>,
    blocks: [EncoderBlock<'a>; MAX_LAYERS],
    head: Matrix<'a>,
    head_bias: &'a [f32],
    /// The byte n-gram stem's `W` (`D x K D`) and `b` (`D`), if any.
    stem: Option<(Matrix<'a>, &'a [f32])>,
    labels: Option<latte_gguf::Array<'a>>,
    kernels: Kernels,
    quant_blocks: usize,
    sinusoid: [f32; crate::model::SINUSOID_TABLE],
    sinusoid_len: usize,
    fingerprint: u64,
}

fn read_config(g: &Gguf<'_>) -> Result<ClassifierConfig, Error> {
    match g.get_str(key::ARCH) {
        Ok(ARCHITECTURE) => {}
        Ok("latte") => return Err(Error::NotAClassifier),
        Ok(_) | Err(latte_gguf::Error::MissingKey { .. }) => return Err(Error::WrongArchitecture),
        Err(e) => return Err(meta(e)),
    }
    let position = match g.get_str(key::POSITION).map_err(meta)? {
        "sinusoidal" => Position::Sinusoidal,
        "none" => Position::None,
        _ => return Err(Error::UnknownPositionEncoding),
    };
    let config = ClassifierConfig {
        vocab_size: get_usize(g, key::VOCAB)?,
        d_model: get_usize(g, key::WIDTH)?,
        n_layers: get_usize(g, key::BLOCKS)?,
        n_heads: get_usize(g, key::HEADS)?,
        n_latents: get_usize(g, key::LATENTS)?,
        d_ff: get_usize(g, key::FF)?,
        n_classes: get_usize(g, key::CLASSES)?,
        context_length: get_usize(g, key::CONTEXT)?,
        ln_eps: g.get_f32(key::EPS).map_err(meta)?,
        position,
        conv_width: match g.get_u32(key::CONV) {
            Ok(k) => usize::try_from(k).map_err(|_| Error::SizeOverflow)?,
            Err(latte_gguf::Error::MissingKey { .. }) => 0,
            Err(e) => return Err(meta(e)),
        },
    };
    config.validate()?;
    Ok(config)
}

impl<'a> Classifier<'a> {
    /// Parses and validates a classifier model file and borrows its weights
    /// in place (`bytes` 4-byte aligned, as for [`crate::Model::from_gguf`]).
    ///
    /// Errors: [`Error::NotAClassifier`] for a language-model file,
    /// [`Error::WrongArchitecture`] for anything else not `latte-classifier`;
    /// otherwise those of [`crate::Model::from_gguf`] for the same kinds of
    /// damage (missing or mistyped keys and tensors, shapes, alignment,
    /// block scales), [`Error::TooFewClasses`], and
    /// [`Error::ClassLabelCount`] / [`Error::MetadataType`] for a label list
    /// that does not hold one string per class.
    pub fn from_gguf(bytes: &'a [u8]) -> Result<Self, Error> {
        let g = Gguf::parse(bytes)?;
        let config = read_config(&g)?;
        let (v, d, l, f, c) = (
            config.vocab_size,
            config.d_model,
            config.n_latents,
            config.d_ff,
            config.n_classes,
        );
        let labels = match g.get_array(key::LABELS) {
            Ok(a) => {
                if a.elem_type() != ValueType::String {
                    return Err(Error::MetadataType { key: key::LABELS });
                }
                if a.len() != c {
                    return Err(Error::ClassLabelCount {
                        n_classes: c,
                        got: a.len(),
                    });
                }
                Some(a)
            }
            Err(latte_gguf::Error::MissingKey { .. }) => None,
            Err(e) => return Err(meta(e)),
        };
        let token_embd = matrix(&g, TensorName::global("token_embd.weight"), v, d)?;
        let mut blocks = [EncoderBlock::EMPTY; MAX_LAYERS];
        for (i, slot) in blocks.iter_mut().take(config.n_layers).enumerate() {
            let li = u32::try_from(i).map_err(|_| Error::SizeOverflow)?;
            let n = |s| TensorName::block(li, s);
            let mixer = BidLatteLayer::new(
                config.n_heads,
                l,
                d,
                matrix(&g, n("attn_q.weight"), l, d)?,
                matrix(&g, n("attn_k.weight"), l, d)?,
                matrix(&g, n("attn_v.weight"), d, d)?,
                matrix(&g, n("attn_output.weight"), d, d)?,
            )?;
            *slot = EncoderBlock {
                attn_norm: norm(&g, n("attn_norm.weight"), n("attn_norm.bias"), d)?,
                mixer,
                ffn_norm: norm(&g, n("ffn_norm.weight"), n("ffn_norm.bias"), d)?,
                mlp: Mlp {
                    up: matrix(&g, n("ffn_up.weight"), f, d)?,
                    up_bias: vector(&g, n("ffn_up.bias"), f)?,
                    down: matrix(&g, n("ffn_down.weight"), d, f)?,
                    down_bias: vector(&g, n("ffn_down.bias"), d)?,
                },
            };
        }
        let head = matrix(&g, TensorName::global("cls.weight"), c, d)?;
        let head_bias = vector(&g, TensorName::global("cls.bias"), c)?;
        let stem_name = TensorName::global("stem.weight");
        let stem = match (config.conv_width, find(&g, stem_name).is_ok()) {
            (0, false) => None,
            (0, true) | (_, false) => {
                return Err(Error::StemTensors {
                    conv_width: config.conv_width,
                })
            }
            (k, true) => Some((
                matrix(&g, stem_name, d, k * d)?,
                vector(&g, TensorName::global("stem.bias"), d)?,
            )),
        };
        // Tensors the classifier does not use are a sign of a wrong file.
        if find(&g, TensorName::global("output.weight")).is_ok() {
            return Err(Error::NotAClassifier);
        }
        let mut model = Classifier {
            config,
            token_embd,
            blocks,
            head,
            head_bias,
            stem,
            labels,
            kernels: Kernels::best(),
            quant_blocks: 0,
            sinusoid: [0.0; crate::model::SINUSOID_TABLE],
            sinusoid_len: 0,
            fingerprint: 0,
        };
        let mut widest = 0;
        let mut see = |m: &Matrix<'_>| {
            if m.data().is_quantized() {
                widest = widest.max(m.cols() / QK);
            }
        };
        see(&model.head);
        if let Some((w, _)) = &model.stem {
            see(w);
        }
        for b in model.blocks.iter().take(config.n_layers) {
            b.mixer
                .matrices()
                .into_iter()
                .chain(b.mlp.matrices())
                .for_each(&mut see);
        }
        model.quant_blocks = widest;
        if config.position == Position::Sinusoidal {
            model.sinusoid_len = crate::model::fill_sinusoid(&mut model.sinusoid, d);
        }
        model.fingerprint = model.compute_fingerprint();
        Ok(model)
    }

    fn compute_fingerprint(&self) -> u64 {
        let c = &self.config;
        let mut h = Fnv64::new();
        h.bytes(b"latte-classifier-v1");
        for v in [
            c.vocab_size,
            c.d_model,
            c.n_layers,
            c.n_heads,
            c.n_latents,
            c.d_ff,
            c.n_classes,
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
            for m in b.mixer.matrices() {
                hash_matrix(&mut h, m);
            }
            hash_norm(&mut h, &b.ffn_norm);
            hash_matrix(&mut h, &b.mlp.up);
            hash_vector(&mut h, b.mlp.up_bias);
            hash_matrix(&mut h, &b.mlp.down);
            hash_vector(&mut h, b.mlp.down_bias);
        }
        hash_matrix(&mut h, &self.head);
        hash_vector(&mut h, self.head_bias);
        if let Some((w, b)) = &self.stem {
            h.bytes(b"ngram-stem");
            h.usize(c.conv_width);
            hash_matrix(&mut h, w);
            hash_vector(&mut h, b);
        }
        h.finish()
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &ClassifierConfig {
        &self.config
    }

    /// FNV-1a 64 over the hyper-parameters and every weight byte (as
    /// [`crate::Model::fingerprint`]).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Class `class`'s name from `latte-classifier.class_labels`, if the
    /// file has names.
    pub fn label(&self, class: usize) -> Option<&'a str> {
        self.labels?.iter().nth(class)?.as_str()
    }

    /// The kernel table the products use ([`Kernels::best`] unless set).
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// Uses `kernels` for every product from now on.
    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    /// `f32` elements of the layers' summaries: `N * (L * Dh + 2 L)`, the
    /// only memory besides a chunk's work area that the constant-memory
    /// mode needs.
    pub fn summaries_len(&self) -> usize {
        self.config.try_summaries_len().unwrap_or(usize::MAX)
    }

    /// `f32` elements of the work area for chunks of `chunk` tokens:
    /// `chunk * (3 D + max(L + D, F)) + D`, plus the chunk's inputs
    /// quantized to `Q8_0` for models with quantized matrices
    /// (`ceil(34 * chunk * B / 4)`, `B` the blocks per row of the widest
    /// quantized matrix). `usize::MAX` if it overflows.
    pub fn work_len(&self, chunk: usize) -> usize {
        self.config
            .try_work_len_with(chunk, self.quant_blocks)
            .unwrap_or(usize::MAX)
    }

    /// `f32` elements of the hidden states [`Classifier::classify_buffered`]
    /// needs for `tokens` tokens: `tokens * D`.
    pub fn hidden_len(&self, tokens: usize) -> usize {
        tokens.saturating_mul(self.config.d_model)
    }

    fn check_buffers(
        &self,
        summaries: &[f32],
        work: &[f32],
        chunk: usize,
        logits: &[f32],
    ) -> Result<(), Error> {
        if chunk == 0 || chunk > MAX_CHUNK {
            return Err(Error::ChunkSize {
                chunk,
                max: MAX_CHUNK,
            });
        }
        for (what, need, got) in [
            (
                "summaries (Classifier::summaries_len)",
                self.summaries_len(),
                summaries.len(),
            ),
            (
                "work (Classifier::work_len)",
                self.work_len(chunk),
                work.len(),
            ),
            (
                "logits (one per class)",
                self.config.n_classes,
                logits.len(),
            ),
        ] {
            if got < need {
                return Err(Error::BufferLength { what, need, got });
            }
        }
        Ok(())
    }

    /// Splits the work area: the chunk's hidden states, its other areas
    /// and the pooled sum.
    fn split_work<'w>(
        &self,
        work: &'w mut [f32],
        chunk: usize,
    ) -> (&'w mut [f32], ChunkWork<'w>, &'w mut [f32]) {
        let d = self.config.d_model;
        let tmp = self.config.tmp_per_token();
        let (h, rest) = work.split_at_mut(chunk * d);
        let (a, rest) = rest.split_at_mut(chunk * d);
        let (o, rest) = rest.split_at_mut(chunk * d);
        let (tmp, rest) = rest.split_at_mut(chunk * tmp);
        let (pool, quant) = rest.split_at_mut(d);
        (h, ChunkWork { a, o, tmp, quant }, pool)
    }

    /// Embeds `bytes` at positions `pos..` into the rows of `h`: the
    /// embedding, the n-gram stem's term (which also reads `prev`, the up
    /// to `K - 1` bytes just before `bytes`, oldest first), the position.
    fn embed(
        &self,
        cx: &Ctx<'_, 'a>,
        bytes: &[u8],
        prev: &[u8],
        pos: u64,
        h: &mut [f32],
        w: &mut ChunkWork<'_>,
    ) -> Result<(), Error> {
        let d = self.config.d_model;
        let n = bytes.len();
        for (&b, row) in bytes.iter().zip(h.chunks_exact_mut(d)) {
            if !self.token_embd.row_into(usize::from(b), row) {
                return Err(Error::TokenOutOfRange {
                    token: u32::from(b),
                    vocab_size: self.config.vocab_size,
                });
            }
        }
        if let Some((stem, bias)) = &self.stem {
            let k = self.config.conv_width;
            let win = &mut w.tmp[..n * k * d];
            for (i, row) in win.chunks_exact_mut(k * d).enumerate() {
                for (s, part) in row.chunks_exact_mut(d).enumerate() {
                    // Token i - s: in this chunk, in `prev`, or before the start.
                    let byte = match i.checked_sub(s) {
                        Some(j) => Some(bytes[j]),
                        None => prev.len().checked_sub(s - i).map(|j| prev[j]),
                    };
                    match byte {
                        Some(b) if self.token_embd.row_into(usize::from(b), part) => {}
                        _ => part.fill(0.0),
                    }
                }
            }
            let o = &mut w.o[..n * d];
            let xq = quantize_input(cx.kernels, stem.data().is_quantized(), win, &mut *w.quant);
            let task = RowTask::new(cx.kernels, *stem, task_input(stem, win, xq), n)
                .with_epilogue(Epilogue::Bias(bias));
            cx.par.run(&task, o);
            ops::add_assign(&mut h[..n * d], o);
        }
        if self.config.position == Position::Sinusoidal {
            for (i, row) in h.chunks_exact_mut(d).take(n).enumerate() {
                ops::add_sinusoidal_with(pos + i as u64, row, &self.sinusoid[..self.sinusoid_len]);
            }
        }
        Ok(())
    }

    /// Block `i`'s pass 2 on the `n` rows of `h`, in place.
    fn apply_block(
        &self,
        cx: &Ctx<'_, 'a>,
        i: usize,
        summary: &[f32],
        h: &mut [f32],
        w: &mut ChunkWork<'_>,
    ) {
        let d = self.config.d_model;
        let n = h.len() / d;
        let b = &self.blocks[i];
        let (a, o) = (&mut w.a[..n * d], &mut w.o[..n * d]);
        layer_norm_rows(h, &b.attn_norm, cx.eps, d, a);
        b.mixer.apply(cx, a, summary, &mut *w.tmp, &mut *w.quant, o);
        ops::add_assign(h, o);
        layer_norm_rows(h, &b.ffn_norm, cx.eps, d, a);
        b.mlp.run_chunk(cx, a, &mut *w.tmp, &mut *w.quant, o);
        ops::add_assign(h, o);
    }

    /// Block `i`'s pass 1 on the `n` rows of `h`.
    fn gather_block(
        &self,
        cx: &Ctx<'_, 'a>,
        i: usize,
        summary: &mut [f32],
        h: &[f32],
        w: &mut ChunkWork<'_>,
    ) {
        let d = self.config.d_model;
        let n = h.len() / d;
        let b = &self.blocks[i];
        let a = &mut w.a[..n * d];
        layer_norm_rows(h, &b.attn_norm, cx.eps, d, a);
        b.mixer.gather(cx, a, summary, &mut *w.tmp, &mut *w.quant);
    }

    fn summary_range(&self, i: usize) -> core::ops::Range<usize> {
        let s = self.config.try_summary_len().unwrap_or(0);
        i * s..(i + 1) * s
    }

    /// The head on the pooled sum of `tokens` rows: writes the logits.
    fn head(
        &self,
        cx: &Ctx<'_, 'a>,
        pool: &mut [f32],
        tokens: u64,
        w: &mut ChunkWork<'_>,
        logits: &mut [f32],
    ) -> usize {
        let count = tokens as f32;
        for p in pool.iter_mut() {
            *p /= count;
        }
        let c = self.config.n_classes;
        let xq = quantize_input(
            cx.kernels,
            self.head.data().is_quantized(),
            pool,
            &mut *w.quant,
        );
        let task = RowTask::new(cx.kernels, self.head, task_input(&self.head, pool, xq), 1)
            .with_epilogue(Epilogue::Bias(self.head_bias));
        cx.par.run(&task, &mut logits[..c]);
        ops::argmax(&logits[..c])
    }

    fn ctx<'x>(&'x self, par: &'x dyn Parallel<'a>) -> Ctx<'x, 'a> {
        Ctx {
            kernels: &self.kernels,
            par,
            rot: None,
            eps: self.config.ln_eps,
        }
    }

    /// Classifies `tokens` (bytes) with the hidden states in `hidden`
    /// (at least [`Classifier::hidden_len`]`(tokens.len())`): the
    /// buffered mode. `summaries` ([`Classifier::summaries_len`]) and
    /// `work` ([`Classifier::work_len`]`(chunk)`) are the caller's; `chunk`
    /// (1 to [`MAX_CHUNK`]) is how many tokens go through each matrix
    /// product together (the logits do not depend on it). Writes the
    /// `C` logits to `logits`.
    ///
    /// Errors: [`Error::EmptyInput`], [`Error::ChunkSize`],
    /// [`Error::BufferLength`] for a buffer too short,
    /// [`Error::TokenOutOfRange`] for a byte past the vocabulary.
    #[allow(clippy::too_many_arguments)]
    pub fn classify_buffered(
        &self,
        tokens: &[u8],
        hidden: &mut [f32],
        summaries: &mut [f32],
        work: &mut [f32],
        chunk: usize,
        logits: &mut [f32],
    ) -> Result<Classified, Error> {
        self.classify_buffered_with(tokens, hidden, summaries, work, chunk, logits, &Sequential)
    }

    /// [`Classifier::classify_buffered`] with the products run by `par`.
    #[allow(clippy::too_many_arguments)]
    pub fn classify_buffered_with(
        &self,
        tokens: &[u8],
        hidden: &mut [f32],
        summaries: &mut [f32],
        work: &mut [f32],
        chunk: usize,
        logits: &mut [f32],
        par: &dyn Parallel<'a>,
    ) -> Result<Classified, Error> {
        self.check_buffers(summaries, work, chunk, logits)?;
        if tokens.is_empty() {
            return Err(Error::EmptyInput);
        }
        let need = self.hidden_len(tokens.len());
        if hidden.len() < need {
            return Err(Error::BufferLength {
                what: "hidden (Classifier::hidden_len)",
                need,
                got: hidden.len(),
            });
        }
        let d = self.config.d_model;
        let cx = self.ctx(par);
        let (_, mut w, pool) = self.split_work(work, chunk);
        let hidden = &mut hidden[..need];
        for (i, (bytes, h)) in tokens
            .chunks(chunk)
            .zip(hidden.chunks_mut(chunk * d))
            .enumerate()
        {
            let start = i * chunk;
            let keep = self.config.conv_width.saturating_sub(1);
            let prev = &tokens[start.saturating_sub(keep)..start];
            self.embed(&cx, bytes, prev, start as u64, h, &mut w)?;
        }
        for layer in 0..self.config.n_layers {
            let summary = &mut summaries[self.summary_range(layer)];
            self.blocks[layer].mixer.reset_summary(summary);
            for h in hidden.chunks(chunk * d) {
                self.gather_block(&cx, layer, summary, h, &mut w);
            }
            self.blocks[layer].mixer.finish(summary);
            for h in hidden.chunks_mut(chunk * d) {
                self.apply_block(&cx, layer, summary, h, &mut w);
            }
        }
        pool.fill(0.0);
        for row in hidden.chunks_exact(d) {
            ops::add_assign(pool, row);
        }
        let class = self.head(&cx, pool, tokens.len() as u64, &mut w, logits);
        Ok(Classified {
            tokens: tokens.len() as u64,
            class,
        })
    }

    /// Classifies the bytes of `input` in constant memory: `summaries`
    /// ([`Classifier::summaries_len`]) and `work`
    /// ([`Classifier::work_len`]`(chunk)`) are all it uses, whatever the
    /// input's length. The input is read `N + 1` times from the start;
    /// `max_tokens` (if `Some`) reads only its first bytes, as a model
    /// trained on the first `context_length` bytes of each message expects.
    /// The logits have the bits of [`Classifier::classify_buffered`] on
    /// the same bytes.
    ///
    /// Errors: those of [`Classifier::classify_buffered`], the source's
    /// own, and [`Error::InputChanged`] when a pass reads a different number
    /// of bytes than the first.
    pub fn classify_stream(
        &self,
        input: &mut dyn ByteSource,
        max_tokens: Option<u64>,
        summaries: &mut [f32],
        work: &mut [f32],
        chunk: usize,
        logits: &mut [f32],
    ) -> Result<Classified, Error> {
        self.classify_stream_with(
            input,
            max_tokens,
            summaries,
            work,
            chunk,
            logits,
            &Sequential,
        )
    }

    /// [`Classifier::classify_stream`] with the products run by `par`.
    #[allow(clippy::too_many_arguments)]
    pub fn classify_stream_with(
        &self,
        input: &mut dyn ByteSource,
        max_tokens: Option<u64>,
        summaries: &mut [f32],
        work: &mut [f32],
        chunk: usize,
        logits: &mut [f32],
        par: &dyn Parallel<'a>,
    ) -> Result<Classified, Error> {
        self.check_buffers(summaries, work, chunk, logits)?;
        let d = self.config.d_model;
        let n_layers = self.config.n_layers;
        let cx = self.ctx(par);
        let (h_area, mut w, pool) = self.split_work(work, chunk);
        let limit = max_tokens.unwrap_or(u64::MAX);
        let mut total: Option<u64> = None;
        let mut bytes = [0u8; MAX_CHUNK];
        // Pass `layer` gathers that layer's summary; pass `n_layers` pools.
        for layer in 0..=n_layers {
            input.rewind()?;
            let (done, current) = summaries.split_at_mut(self.summary_range(layer).start);
            if layer < n_layers {
                self.blocks[layer].mixer.reset_summary(current);
            } else {
                pool.fill(0.0);
            }
            let mut pos = 0u64;
            let mut carry = [0u8; MAX_CONV_WIDTH];
            let mut carried = 0usize;
            loop {
                let want = (chunk as u64).min(limit - pos) as usize;
                let n = read_full(input, &mut bytes[..want])?;
                if n == 0 {
                    break;
                }
                let h = &mut h_area[..n * d];
                self.embed(&cx, &bytes[..n], &carry[..carried], pos, h, &mut w)?;
                // The last `K - 1` bytes read, for the next chunk's stem.
                let keep = self.config.conv_width.saturating_sub(1);
                if keep > 0 {
                    let mut joined = [0u8; 2 * MAX_CONV_WIDTH];
                    let take = n.min(keep);
                    joined[..carried].copy_from_slice(&carry[..carried]);
                    joined[carried..carried + take].copy_from_slice(&bytes[n - take..n]);
                    let all = carried + take;
                    carried = all.min(keep);
                    carry[..carried].copy_from_slice(&joined[all - carried..all]);
                }
                for i in 0..layer {
                    self.apply_block(&cx, i, &done[self.summary_range(i)], h, &mut w);
                }
                if layer < n_layers {
                    self.gather_block(&cx, layer, current, h, &mut w);
                } else {
                    for row in h.chunks_exact(d) {
                        ops::add_assign(pool, row);
                    }
                }
                pos += n as u64;
                if pos >= limit {
                    break;
                }
            }
            match total {
                None => total = Some(pos),
                Some(t) if t != pos => return Err(Error::InputChanged { first: t, now: pos }),
                Some(_) => {}
            }
            if pos == 0 {
                return Err(Error::EmptyInput);
            }
            if layer < n_layers {
                self.blocks[layer]
                    .mixer
                    .finish(&mut summaries[self.summary_range(layer)]);
            }
        }
        let tokens = total.unwrap_or(0);
        let class = self.head(&cx, pool, tokens, &mut w, logits);
        Ok(Classified { tokens, class })
    }
}

/// Reads until `buf` is full or the input ends.
fn read_full(input: &mut dyn ByteSource, buf: &mut [u8]) -> Result<usize, Error> {
    let mut got = 0;
    while got < buf.len() {
        let n = input.read(&mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n.min(buf.len() - got);
    }
    Ok(got)
}
