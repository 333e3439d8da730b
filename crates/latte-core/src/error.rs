//! The crate's error type: one flat, `Copy` enum.

use core::fmt;

/// Names a model tensor without allocating: `blk.{layer}.{suffix}` for
/// per-layer tensors, `{suffix}` for the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorName {
    /// Layer index for per-layer tensors.
    pub layer: Option<u32>,
    /// The name (after `blk.N.` for per-layer tensors), e.g. `attn_q.weight`.
    pub suffix: &'static str,
}

impl TensorName {
    /// A tensor outside the blocks, e.g. `output.weight`.
    pub const fn global(suffix: &'static str) -> Self {
        TensorName {
            layer: None,
            suffix,
        }
    }

    /// Tensor `blk.{layer}.{suffix}`.
    pub const fn block(layer: u32, suffix: &'static str) -> Self {
        TensorName {
            layer: Some(layer),
            suffix,
        }
    }
}

impl fmt::Display for TensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.layer {
            Some(l) => write!(f, "blk.{}.{}", l, self.suffix),
            None => f.write_str(self.suffix),
        }
    }
}

/// Everything that can go wrong in this crate. Each variant is one failure;
/// its `Display` text says what was wrong and what to do about it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Error {
    /// The GGUF container itself could not be read.
    Gguf(latte_gguf::Error),
    /// `general.architecture` is missing or is not `latte`.
    WrongArchitecture,
    /// A required metadata key is absent.
    MissingMetadata {
        /// The key.
        key: &'static str,
    },
    /// A metadata key holds a value of the wrong type.
    MetadataType {
        /// The key.
        key: &'static str,
    },
    /// A size hyper-parameter is zero.
    ZeroSize {
        /// The metadata key (or config field) that is zero.
        key: &'static str,
    },
    /// `d_model` is not a multiple of `n_heads`.
    HeadsDoNotDivideWidth {
        /// D.
        d_model: usize,
        /// H.
        n_heads: usize,
    },
    /// `n_latents` is not a multiple of `n_heads`.
    HeadsDoNotDivideLatents {
        /// L.
        n_latents: usize,
        /// H.
        n_heads: usize,
    },
    /// More layers than [`crate::MAX_LAYERS`].
    TooManyLayers {
        /// Layers in the model.
        n_layers: usize,
        /// The supported maximum.
        max: usize,
    },
    /// The LayerNorm epsilon is negative, NaN or infinite.
    InvalidLayerNormEpsilon,
    /// `latte.position_encoding` is not `sinusoidal`, `vapor` or `none`.
    UnknownPositionEncoding,
    /// VAPOR needs an even head width `Dh = D / H`.
    VaporOddHeadWidth {
        /// Dh.
        d_head: usize,
    },
    /// `latte.vapor.frequencies` does not hold exactly `Dh / 2` values.
    VaporFrequencyCount {
        /// Dh / 2.
        expected: usize,
        /// Values found.
        got: usize,
    },
    /// A VAPOR frequency is NaN or infinite.
    VaporFrequencyNotFinite,
    /// `latte.latent_decay` is true (the decay gate) but layer `layer` has
    /// no rates: tensor `blk.N.attn_decay` is missing (or, through
    /// [`crate::Model::from_parts`], its `attn_decay` is `None`).
    DecayMissing {
        /// The layer.
        layer: u32,
    },
    /// Layer `layer` has decay rates (`blk.N.attn_decay`) but
    /// `latte.latent_decay` is absent or false.
    DecayUnexpected {
        /// The layer.
        layer: u32,
    },
    /// `latte.mixer` names no mixer this runtime knows (`latte`,
    /// `macchiato`, `attention`).
    UnknownMixer,
    /// `latte.window_combine` is neither `sum` nor `joint`.
    UnknownCombine,
    /// A window (or attention capacity) past [`crate::window::MAX_WINDOW`].
    WindowTooLarge {
        /// The window asked for.
        window: usize,
        /// The most supported.
        max: usize,
    },
    /// A window's distance slope (`blk.N.win_slope`) is NaN, infinite or
    /// below zero.
    WindowSlope {
        /// The layer, when known.
        layer: Option<u32>,
        /// The head.
        head: usize,
    },
    /// Through [`crate::Model::from_parts`]: layer `layer`'s `window`
    /// weights are `None` although the config's mixer has a window, or
    /// `Some` although it has none.
    WindowWeights {
        /// The layer.
        layer: u32,
        /// Whether the config wants them.
        expected: bool,
    },
    /// An attention model's KV cache is full: it holds `capacity` tokens
    /// and full attention cannot forget. Reset the session, or load the
    /// model with a larger capacity.
    ContextFull {
        /// Tokens the cache holds.
        capacity: u64,
    },
    /// `blk.N.attn_decay` is not F32.
    DecayNotF32 {
        /// The layer.
        layer: u32,
        /// The ggml type id found.
        ggml_type: u32,
    },
    /// `blk.N.attn_decay` does not hold one rate per latent (`ne = [L]`).
    DecayShape {
        /// The layer.
        layer: u32,
        /// L, the rates needed.
        n_latents: usize,
        /// Found `ne`, padded with 1.
        got: [u64; 4],
    },
    /// A decay rate is NaN or infinite.
    DecayRateNotFinite {
        /// The layer (`None` from [`crate::LatteLayer::with_decay`], which
        /// has none).
        layer: Option<u32>,
        /// The latent whose rate it is.
        latent: usize,
    },
    /// A decay rate is negative (a rate below zero would grow the past
    /// instead of forgetting it).
    DecayRateNegative {
        /// The layer (`None` from [`crate::LatteLayer::with_decay`], which
        /// has none).
        layer: Option<u32>,
        /// The latent whose rate it is.
        latent: usize,
    },
    /// Buffer sizes derived from the hyper-parameters overflow `usize`.
    SizeOverflow,
    /// A required tensor is absent.
    MissingTensor {
        /// Its name.
        tensor: TensorName,
    },
    /// A tensor's element type is not one the core runs (F32, F16, Q8_0, Q4_0).
    UnsupportedTensorType {
        /// Its name.
        tensor: TensorName,
        /// The ggml type id found.
        ggml_type: u32,
    },
    /// A norm weight, norm bias or bias vector is not F32.
    NotF32 {
        /// Its name.
        tensor: TensorName,
    },
    /// A quantized matrix's row length is not a multiple of the 32-value
    /// block (a block would span two rows).
    QuantizedRowLength {
        /// Its name (`None` from [`crate::Matrix::new`], which has none).
        tensor: Option<TensorName>,
        /// The ggml type id (8 `Q8_0`, 2 `Q4_0`).
        ggml_type: u32,
        /// The row length (columns).
        cols: usize,
    },
    /// A quantized block's `f16` scale is NaN or infinite: corrupted data.
    BlockScaleNotFinite {
        /// Its name (`None` from [`crate::Matrix::new`], which has none).
        tensor: Option<TensorName>,
        /// The ggml type id (8 `Q8_0`, 2 `Q4_0`).
        ggml_type: u32,
        /// Index of the first such block in the tensor.
        block: usize,
    },
    /// A tensor's shape differs from the one the hyper-parameters imply.
    TensorShape {
        /// Its name.
        tensor: TensorName,
        /// Expected `ne` (innermost first; `[n, 1]` for vectors).
        expected: [u64; 2],
        /// Found `ne`, padded with 1.
        got: [u64; 4],
    },
    /// A tensor's data does not start at a multiple of its element size.
    Misaligned {
        /// Its name.
        tensor: TensorName,
        /// Required alignment in bytes.
        align: usize,
    },
    /// A tensor's data has a length that does not fit its shape and type.
    TensorData {
        /// Its name.
        tensor: TensorName,
        /// Byte (or element) length found.
        len: usize,
    },
    /// Matrix data length is not `rows * cols`.
    MatrixLength {
        /// Rows requested.
        rows: usize,
        /// Columns requested.
        cols: usize,
        /// Elements supplied.
        len: usize,
    },
    /// A slice passed to a layer-level function has the wrong length.
    BufferLength {
        /// Which buffer.
        what: &'static str,
        /// Required length.
        need: usize,
        /// Supplied length.
        got: usize,
    },
    /// The caller's state buffer is shorter than [`crate::Model::state_len`].
    StateTooSmall {
        /// Required `f32` elements.
        need: usize,
        /// Supplied.
        got: usize,
    },
    /// The caller's scratch buffer is shorter than [`crate::Model::scratch_len`].
    ScratchTooSmall {
        /// Required `f32` elements.
        need: usize,
        /// Supplied.
        got: usize,
    },
    /// The prefill scratch buffer is shorter than
    /// [`crate::Model::prefill_scratch_len`] for the chunk size.
    PrefillScratchTooSmall {
        /// Tokens per chunk.
        chunk: usize,
        /// Required `f32` elements.
        need: usize,
        /// Supplied.
        got: usize,
    },
    /// A token id is not below the vocabulary size.
    TokenOutOfRange {
        /// The token.
        token: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// [`crate::Session::feed`] was given no tokens.
    EmptyPrompt,
    /// Sampler temperature is negative, NaN or infinite.
    InvalidTemperature,
    /// Sampler `top_p` is outside `(0, 1]`.
    InvalidTopP,
    /// Sampler repetition penalty is not a positive finite number.
    InvalidRepeatPenalty,
    /// Sampler `repeat_last_n` exceeds [`crate::sampler::MAX_REPEAT_LAST_N`].
    RepeatWindowTooLarge {
        /// Requested.
        got: usize,
        /// Maximum.
        max: usize,
    },
    /// The sampler was given no logits.
    EmptyLogits,
    /// The sampler's work buffer is shorter than the logits.
    WorkTooSmall {
        /// Required `f32` elements.
        need: usize,
        /// Supplied.
        got: usize,
    },
    /// The buffer given to [`crate::Session::save_snapshot`] (or
    /// [`crate::Sampler::save_state`]) is too short.
    SnapshotBufferTooSmall {
        /// Required bytes ([`crate::Session::snapshot_len`]).
        need: usize,
        /// Supplied.
        got: usize,
    },
    /// The bytes do not start with the snapshot magic: not a snapshot.
    SnapshotMagic,
    /// The snapshot's byte-order mark is byte-swapped: it was written
    /// big-endian, and the format is little-endian.
    SnapshotByteOrder,
    /// The snapshot was written in a format version this build does not read.
    SnapshotVersion {
        /// Version in the snapshot.
        found: u16,
        /// The version this build reads and writes.
        supported: u16,
    },
    /// The snapshot is shorter than its header says (cut short).
    SnapshotTruncated {
        /// Bytes the snapshot needs.
        need: usize,
        /// Bytes supplied.
        got: usize,
    },
    /// The snapshot's CRC-32 does not match its contents (corrupted).
    SnapshotChecksum {
        /// CRC stored in the snapshot.
        stored: u32,
        /// CRC of the bytes supplied.
        computed: u32,
    },
    /// The snapshot was saved from another model (different fingerprint).
    SnapshotModelMismatch {
        /// Fingerprint in the snapshot.
        snapshot: u64,
        /// This model's [`crate::Model::fingerprint`].
        model: u64,
    },
    /// The snapshot passes its checksum but a field is inconsistent (a
    /// faulty or hostile writer).
    SnapshotInvalid {
        /// Which field.
        what: &'static str,
    },
    /// A classifier file (`latte-classifier`) was given where a language
    /// model is expected.
    IsAClassifier,
    /// A language-model file (`latte`) was given where a classifier is
    /// expected.
    NotAClassifier,
    /// A classifier with fewer than two classes.
    TooFewClasses {
        /// C in the file.
        n_classes: usize,
    },
    /// `latte-classifier.class_labels` does not hold one name per class.
    ClassLabelCount {
        /// C.
        n_classes: usize,
        /// Names in the file.
        got: usize,
    },
    /// A chunk size outside `1..=max`.
    ChunkSize {
        /// The size given.
        chunk: usize,
        /// The largest allowed.
        max: usize,
    },
    /// A classifier's n-gram stem is wider than supported.
    ConvWidth {
        /// `latte-classifier.conv_width` in the file.
        conv_width: usize,
        /// The widest supported.
        max: usize,
    },
    /// `latte-classifier.conv_width` and the `stem.*` tensors disagree (a
    /// width without the tensors, or the tensors without a width).
    StemTensors {
        /// `latte-classifier.conv_width` in the file (0 when absent).
        conv_width: usize,
    },
    /// A caller's stop callback ended the work
    /// ([`crate::Session::prefill_until`]).
    Cancelled {
        /// Tokens fed before the stop.
        fed: u64,
    },
    /// There are no tokens to classify.
    EmptyInput,
    /// A [`crate::classifier::ByteSource`] could not be read; the source
    /// keeps the cause.
    InputRead,
    /// A pass over the input read a different number of bytes than the
    /// first pass (the input changed while it was being classified).
    InputChanged {
        /// Bytes in the first pass.
        first: u64,
        /// Bytes in this pass.
        now: u64,
    },
}

/// The ggml name of a type id (`Q8_0`, `Q4_0`, ...) from the GGUF type
/// table, `unknown` for an id the reader does not know.
fn ggml_type_name(id: u32) -> &'static str {
    match latte_gguf::GgmlType::from_u32(id) {
        Some(t) => t.name(),
        None => "unknown",
    }
}

impl From<latte_gguf::Error> for Error {
    fn from(e: latte_gguf::Error) -> Self {
        Error::Gguf(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Gguf(e) => write!(f, "invalid GGUF file: {e}"),
            Error::WrongArchitecture => f.write_str(
                "general.architecture is missing or not \"latte\"; load a Latte model file",
            ),
            Error::MissingMetadata { key } => {
                write!(f, "metadata key {key} is missing; re-export the model with it")
            }
            Error::MetadataType { key } => {
                write!(f, "metadata key {key} has the wrong value type; see FORMAT.md")
            }
            Error::ZeroSize { key } => write!(f, "{key} is zero; it must be at least 1"),
            Error::HeadsDoNotDivideWidth { d_model, n_heads } => write!(
                f,
                "embedding length {d_model} is not a multiple of head count {n_heads}; fix the model hyper-parameters"
            ),
            Error::HeadsDoNotDivideLatents { n_latents, n_heads } => write!(
                f,
                "latent count {n_latents} is not a multiple of head count {n_heads}; fix the model hyper-parameters"
            ),
            Error::TooManyLayers { n_layers, max } => write!(
                f,
                "model has {n_layers} layers but this build supports at most {max}; raise MAX_LAYERS"
            ),
            Error::InvalidLayerNormEpsilon => f.write_str(
                "layer_norm_epsilon is negative or not finite; the official value is 1e-6",
            ),
            Error::UnknownPositionEncoding => f.write_str(
                "latte.position_encoding must be \"sinusoidal\", \"vapor\" or \"none\"",
            ),
            Error::VaporOddHeadWidth { d_head } => write!(
                f,
                "VAPOR rotates value pairs but the head width {d_head} is odd; use an even D / H"
            ),
            Error::VaporFrequencyCount { expected, got } => write!(
                f,
                "latte.vapor.frequencies has {got} values but the head width needs {expected} (Dh / 2)"
            ),
            Error::VaporFrequencyNotFinite => {
                f.write_str("latte.vapor.frequencies contains NaN or infinity; re-export the model")
            }
            Error::DecayMissing { layer } => write!(
                f,
                "latte.latent_decay is true but tensor blk.{layer}.attn_decay is missing; a model with the decay gate needs its rates in every layer (convert the checkpoint again, or set latte.latent_decay to false for a model without the gate)"
            ),
            Error::DecayUnexpected { layer } => write!(
                f,
                "tensor blk.{layer}.attn_decay (decay rates) is present but latte.latent_decay is absent or false; set latte.latent_decay = true to run the decay gate, or remove the tensors"
            ),
            Error::UnknownMixer => f.write_str(
                "latte.mixer must be \"latte\", \"macchiato\" or \"attention\"; this file needs another version of the runtime or is damaged",
            ),
            Error::UnknownCombine => f.write_str(
                "latte.window_combine must be \"sum\" or \"joint\"; convert the model again",
            ),
            Error::WindowTooLarge { window, max } => write!(
                f,
                "a window (or attention capacity) of {window} tokens is more than the {max} supported"
            ),
            Error::WindowSlope { layer, head } => {
                if let Some(l) = layer {
                    write!(f, "tensor blk.{l}.win_slope: ")?;
                }
                write!(
                    f,
                    "the distance slope of head {head} is NaN, infinite or negative; slopes must be finite and >= 0 (convert the model again)"
                )
            }
            Error::WindowWeights { layer, expected } => {
                if expected {
                    write!(f, "layer {layer} has no window weights, but the config's mixer has a window: pass them in LayerWeights::window")
                } else {
                    write!(f, "layer {layer} has window weights, but the config's mixer is plain Latte: set LayerWeights::window to None")
                }
            }
            Error::ContextFull { capacity } => write!(
                f,
                "the attention KV cache is full ({capacity} tokens): full attention cannot forget; reset the session or load the model with a larger capacity"
            ),
            Error::DecayNotF32 { layer, ggml_type } => write!(
                f,
                "tensor blk.{layer}.attn_decay has type {}; decay rates must be F32 (they are never quantised), convert the model again",
                ggml_type_name(ggml_type)
            ),
            Error::DecayShape { layer, n_latents, got } => write!(
                f,
                "tensor blk.{layer}.attn_decay has ne {got:?} but must hold one rate per latent, ne [{n_latents}]"
            ),
            Error::DecayRateNotFinite { layer, latent } => {
                if let Some(l) = layer {
                    write!(f, "tensor blk.{l}.attn_decay: ")?;
                }
                write!(
                    f,
                    "the decay rate of latent {latent} is NaN or infinite; rates must be finite and >= 0, export the model again"
                )
            }
            Error::DecayRateNegative { layer, latent } => {
                if let Some(l) = layer {
                    write!(f, "tensor blk.{l}.attn_decay: ")?;
                }
                write!(
                    f,
                    "the decay rate of latent {latent} is negative; rates must be finite and >= 0 (a negative rate amplifies the past), export the model again"
                )
            }
            Error::SizeOverflow => f.write_str(
                "the hyper-parameters imply buffers larger than this target can address",
            ),
            Error::MissingTensor { tensor } => {
                write!(f, "tensor {tensor} is missing; re-export the model")
            }
            Error::UnsupportedTensorType { tensor, ggml_type } => write!(
                f,
                "tensor {tensor} has ggml type {ggml_type}; the core runs F32 (0), F16 (1), Q8_0 (8) and Q4_0 (2) only, convert the model"
            ),
            Error::NotF32 { tensor } => {
                write!(f, "tensor {tensor} must be F32 (norms and biases are never quantised)")
            }
            Error::QuantizedRowLength { tensor, ggml_type, cols } => {
                if let Some(t) = tensor {
                    write!(f, "tensor {t}: ")?;
                }
                write!(
                    f,
                    "{} rows of {cols} values are not a whole number of 32-value blocks; quantize only matrices whose row length is a multiple of 32, or keep this one F32/F16",
                    ggml_type_name(ggml_type)
                )
            }
            Error::BlockScaleNotFinite { tensor, ggml_type, block } => {
                if let Some(t) = tensor {
                    write!(f, "tensor {t}: ")?;
                }
                write!(
                    f,
                    "{} block {block} has a NaN or infinite scale; the data is corrupted, convert the model again",
                    ggml_type_name(ggml_type)
                )
            }
            Error::TensorShape { tensor, expected, got } => write!(
                f,
                "tensor {tensor} has ne {got:?} but the hyper-parameters need {expected:?}"
            ),
            Error::Misaligned { tensor, align } => write!(
                f,
                "tensor {tensor} data is not {align}-byte aligned; load the model into an aligned buffer (mmap it, or use an aligned include/Vec<u32> wrapper)"
            ),
            Error::TensorData { tensor, len } => {
                write!(f, "tensor {tensor} data length {len} does not match its shape and type")
            }
            Error::MatrixLength { rows, cols, len } => {
                write!(f, "matrix {rows} x {cols} was given {len} elements")
            }
            Error::BufferLength { what, need, got } => {
                write!(f, "{what} has length {got}, need {need}")
            }
            Error::StateTooSmall { need, got } => write!(
                f,
                "state buffer has {got} f32 elements, need {need} (Model::state_len)"
            ),
            Error::ScratchTooSmall { need, got } => write!(
                f,
                "scratch buffer has {got} f32 elements, need {need} (Model::scratch_len)"
            ),
            Error::PrefillScratchTooSmall { chunk, need, got } => write!(
                f,
                "prefill scratch buffer has {got} f32 elements, need {need} for chunks of {chunk} tokens (Model::prefill_scratch_len)"
            ),
            Error::TokenOutOfRange { token, vocab_size } => write!(
                f,
                "token {token} is not below the vocabulary size {vocab_size}; check the tokenizer"
            ),
            Error::EmptyPrompt => f.write_str("the prompt is empty; feed at least one token"),
            Error::InvalidTemperature => {
                f.write_str("temperature must be a finite number >= 0 (0 = greedy)")
            }
            Error::InvalidTopP => f.write_str("top_p must be in (0, 1] (1 = off)"),
            Error::InvalidRepeatPenalty => {
                f.write_str("repeat_penalty must be a finite number > 0 (1 = off)")
            }
            Error::RepeatWindowTooLarge { got, max } => {
                write!(f, "repeat_last_n is {got}, at most {max} is supported")
            }
            Error::EmptyLogits => f.write_str("no logits to sample from"),
            Error::WorkTooSmall { need, got } => {
                write!(f, "sampler work buffer has {got} elements, need {need}")
            }
            Error::SnapshotBufferTooSmall { need, got } => write!(
                f,
                "snapshot buffer has {got} bytes, need {need} (Session::snapshot_len)"
            ),
            Error::SnapshotMagic => f.write_str("not a Latte state snapshot (wrong magic bytes)"),
            Error::SnapshotByteOrder => f.write_str(
                "the snapshot was written big-endian; snapshots are little-endian, save it again with this runtime",
            ),
            Error::SnapshotVersion { found, supported } => write!(
                f,
                "snapshot format version {found} is not supported (this build reads version {supported})"
            ),
            Error::SnapshotTruncated { need, got } => write!(
                f,
                "the snapshot is truncated: {got} bytes, need {need}"
            ),
            Error::SnapshotChecksum { stored, computed } => write!(
                f,
                "the snapshot is corrupted: checksum {computed:#010x} does not match the stored {stored:#010x}"
            ),
            Error::SnapshotModelMismatch { snapshot, model } => write!(
                f,
                "the snapshot was saved from another model (fingerprint {snapshot:#018x}, this model is {model:#018x})"
            ),
            Error::SnapshotInvalid { what } => {
                write!(f, "the snapshot is invalid: {what}")
            }
            Error::IsAClassifier => f.write_str(
                "this is a sequence classifier (latte-classifier), not a language model; use `latte classify` (Classifier::from_gguf)",
            ),
            Error::NotAClassifier => f.write_str(
                "this is a language model (latte), not a sequence classifier; use `latte run` (Model::from_gguf)",
            ),
            Error::TooFewClasses { n_classes } => write!(
                f,
                "the classifier has {n_classes} class(es); it needs at least 2"
            ),
            Error::ClassLabelCount { n_classes, got } => write!(
                f,
                "latte-classifier.class_labels holds {got} names for {n_classes} classes; give one name per class"
            ),
            Error::ChunkSize { chunk, max } => {
                write!(f, "chunk size {chunk} is not between 1 and {max}")
            }
            Error::ConvWidth { conv_width, max } => write!(
                f,
                "latte-classifier.conv_width is {conv_width}, this build supports at most {max}"
            ),
            Error::StemTensors { conv_width } => write!(
                f,
                "latte-classifier.conv_width is {conv_width} but the stem.weight/stem.bias tensors are {}; convert the checkpoint again",
                if conv_width == 0 { "present" } else { "missing" }
            ),
            Error::Cancelled { fed } => {
                write!(f, "cancelled by the caller after {fed} tokens")
            }
            Error::EmptyInput => f.write_str("the input is empty: there is nothing to classify"),
            Error::InputRead => f.write_str("the input could not be read"),
            Error::InputChanged { first, now } => write!(
                f,
                "the input changed while it was read: one pass read {first} bytes, a later one {now}; classify a file nothing else writes to"
            ),
        }
    }
}

impl core::error::Error for Error {}
