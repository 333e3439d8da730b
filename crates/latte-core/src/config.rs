//! Model hyper-parameters and the buffer sizes they imply.

use crate::error::Error;
use crate::window::{Combine, RingStorage, MAX_WINDOW};
use crate::MAX_LAYERS;

/// The sequence mixer of every block (`latte.mixer`, FORMAT.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mixing {
    /// Causal Latte (the paper's model; the default).
    Latte,
    /// Latte-Macchiato: Latte plus softmax attention over the last `window`
    /// tokens (`latte.window`), combined by `combine`
    /// (`latte.window_combine`). See [`crate::window`].
    Macchiato {
        /// W, the ring's entries.
        window: usize,
        /// Sum or joint normalisation.
        combine: Combine,
        /// How the ring stores keys and values (a load-time choice, not in
        /// the file: [`crate::Model::with_ring_storage`]).
        ring: RingStorage,
    },
    /// Causal softmax attention alone (the baseline), over a ring of
    /// `window` tokens. `full`: standard attention (`latte.window = 0` in
    /// the file), whose ring is a KV cache of `window` tokens (by default
    /// the training length; [`crate::Model::with_attention_capacity`]) and
    /// which refuses tokens past it ([`Error::ContextFull`]); otherwise
    /// sliding-window attention.
    Attention {
        /// Ring entries: the window or the KV cache's capacity.
        window: usize,
        /// Full attention (a capacity) rather than a sliding window.
        full: bool,
        /// How the ring (the KV cache) stores keys and values.
        ring: RingStorage,
    },
}

impl Mixing {
    /// The ring's entries (0 for Latte).
    pub fn window(&self) -> usize {
        match *self {
            Mixing::Latte => 0,
            Mixing::Macchiato { window, .. } | Mixing::Attention { window, .. } => window,
        }
    }

    /// How the ring stores keys and values (`f32` for Latte, which has none).
    pub fn ring(&self) -> RingStorage {
        match *self {
            Mixing::Latte => RingStorage::F32,
            Mixing::Macchiato { ring, .. } | Mixing::Attention { ring, .. } => ring,
        }
    }

    /// `latte.mixer`'s value.
    pub fn name(&self) -> &'static str {
        match self {
            Mixing::Latte => "latte",
            Mixing::Macchiato { .. } => "macchiato",
            Mixing::Attention { .. } => "attention",
        }
    }
}

/// How token positions enter the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// Additive sinusoidal encoding on the embeddings (the official v1 model).
    Sinusoidal,
    /// VAPOR: value pairs are rotated by relative position inside every Latte
    /// layer (constant-state "form B"); no additive encoding.
    Vapor,
    /// No position information at all (`latte.position_encoding = none`):
    /// no additive encoding and no rotation; order comes only from
    /// causality (and the decay gate, [`Config::latent_decay`]).
    None,
}

/// Hyper-parameters of a Latte language model (names follow FORMAT.md).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// V, `latte.vocab_size`.
    pub vocab_size: usize,
    /// D, `latte.embedding_length`.
    pub d_model: usize,
    /// N, `latte.block_count` (at most [`MAX_LAYERS`]).
    pub n_layers: usize,
    /// H, `latte.attention.head_count`.
    pub n_heads: usize,
    /// L, `latte.latent_count` (total over all heads).
    pub n_latents: usize,
    /// F, `latte.feed_forward_length`.
    pub d_ff: usize,
    /// `latte.context_length`: the training length. Informational; the
    /// runtime accepts any position.
    pub context_length: usize,
    /// LayerNorm epsilon, `latte.attention.layer_norm_epsilon`.
    pub ln_eps: f32,
    /// `latte.position_encoding`.
    pub position: Position,
    /// `latte.latent_decay`: every layer has a learned forgetting rate per
    /// latent (the decay gate, an extension of the paper's model; see
    /// [`crate::latte`] and FORMAT.md). `false` for the official
    /// architecture.
    pub latent_decay: bool,
    /// `latte.mixer` and its keys: [`Mixing::Latte`] for the paper's model.
    pub mixing: Mixing,
}

impl Config {
    /// Checks the structural constraints: every size non-zero (except
    /// `context_length`), `D % H == 0`, `L % H == 0`, `n_layers <=
    /// MAX_LAYERS`, epsilon finite and `>= 0`, VAPOR only with an even `Dh`,
    /// and all derived buffer sizes representable.
    pub fn validate(&self) -> Result<(), Error> {
        for (v, key) in [
            (self.vocab_size, "latte.vocab_size"),
            (self.d_model, "latte.embedding_length"),
            (self.n_layers, "latte.block_count"),
            (self.n_heads, "latte.attention.head_count"),
            (self.n_latents, "latte.latent_count"),
            (self.d_ff, "latte.feed_forward_length"),
        ] {
            if v == 0 {
                return Err(Error::ZeroSize { key });
            }
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
        if self.position == Position::Vapor && !self.d_head().is_multiple_of(2) {
            return Err(Error::VaporOddHeadWidth {
                d_head: self.d_head(),
            });
        }
        let window = self.mixing.window();
        if self.mixing != Mixing::Latte {
            if window == 0 {
                return Err(Error::ZeroSize {
                    key: "latte.window",
                });
            }
            if window > MAX_WINDOW {
                return Err(Error::WindowTooLarge {
                    window,
                    max: MAX_WINDOW,
                });
            }
        }
        self.try_state_len().ok_or(Error::SizeOverflow)?;
        self.try_scratch_len().ok_or(Error::SizeOverflow)?;
        // Every weight matrix must also be addressable.
        for (a, b) in [
            (self.vocab_size, self.d_model),
            (self.n_latents, self.d_model),
            (self.d_model, self.d_model),
            (self.d_ff, self.d_model),
        ] {
            a.checked_mul(b).ok_or(Error::SizeOverflow)?;
        }
        Ok(())
    }

    /// Value width per head, `Dh = D / H` (0 if `H == 0`).
    pub fn d_head(&self) -> usize {
        self.d_model.checked_div(self.n_heads).unwrap_or(0)
    }

    /// Latents per head, `Lh = L / H` (0 if `H == 0`).
    pub fn latents_per_head(&self) -> usize {
        self.n_latents.checked_div(self.n_heads).unwrap_or(0)
    }

    /// `f32` elements of one layer's state: `S` (`L * Dh`), then `n` (`L`),
    /// then `m` (`L`); for a mixer with a window, then its ring
    /// (`2 W R + 2`, `R` = [`RingStorage::entry_words`], `D` for `f32`; an
    /// attention layer has only the ring).
    pub fn layer_state_len(&self) -> usize {
        self.try_layer_state_len().unwrap_or(usize::MAX)
    }

    /// `f32` elements of the whole recurrent state: `n_layers` layer states
    /// back to back. Independent of the position.
    pub fn state_len(&self) -> usize {
        self.try_state_len().unwrap_or(usize::MAX)
    }

    /// `f32` elements of scratch a [`crate::Session`] needs; see
    /// [`crate::Session`] for the layout.
    pub fn scratch_len(&self) -> usize {
        self.try_scratch_len().unwrap_or(usize::MAX)
    }

    /// Elements of the VAPOR cos/sin table (`Dh`), 0 for the other schemes.
    pub fn rotation_len(&self) -> usize {
        match self.position {
            Position::Vapor => self.d_head(),
            Position::Sinusoidal | Position::None => 0,
        }
    }

    fn try_layer_state_len(&self) -> Option<usize> {
        let latte = self
            .n_latents
            .checked_mul(self.d_head())?
            .checked_add(self.n_latents.checked_mul(2)?)?;
        let ring = || {
            self.mixing
                .window()
                .checked_mul(self.mixing.ring().entry_words(self.d_model, self.n_heads)?)?
                .checked_mul(2)?
                .checked_add(2)
        };
        match self.mixing {
            Mixing::Latte => Some(latte),
            Mixing::Macchiato { .. } => latte.checked_add(ring()?),
            Mixing::Attention { .. } => ring(),
        }
    }

    fn try_state_len(&self) -> Option<usize> {
        self.try_layer_state_len()?.checked_mul(self.n_layers)
    }

    /// Scratch areas, in order: `h` (D), `a` (D), `o` (D), `logits` (V),
    /// rotation table ([`Config::rotation_len`]), then one shared temporary
    /// area of `max(2L + 2D, F, 2V)` used in turn by the Latte layer
    /// (`q, k, v, y`), the MLP hidden vector and the sampler (`probs, work`).
    pub(crate) fn try_scratch_len(&self) -> Option<usize> {
        let latte = self
            .n_latents
            .checked_mul(2)?
            .checked_add(self.d_model.checked_mul(2)?)?;
        let tmp = match self.mixing {
            Mixing::Latte => latte,
            // Latte's, the window's q, k, v and output, two log partition
            // functions per head (`window::Macchiato::tmp_per_token`).
            Mixing::Macchiato { .. } => latte
                .checked_add(self.d_model.checked_mul(4)?)?
                .checked_add(self.n_heads.checked_mul(2)?)?,
            Mixing::Attention { .. } => self.d_model.checked_mul(4)?.checked_add(self.n_heads)?,
        };
        self.try_scratch_len_for(tmp)
    }

    /// The scratch length when the widest mixer needs `mixer_tmp` elements
    /// of temporary area per token (Latte: `2L + 2D`).
    pub(crate) fn try_scratch_len_for(&self, mixer_tmp: usize) -> Option<usize> {
        let d = self.d_model;
        let tmp = mixer_tmp
            .max(self.d_ff)
            .max(self.vocab_size.checked_mul(2)?);
        d.checked_mul(3)?
            .checked_add(self.vocab_size)?
            .checked_add(self.rotation_len())?
            .checked_add(tmp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        Config {
            vocab_size: 11,
            d_model: 8,
            n_layers: 2,
            n_heads: 2,
            n_latents: 6,
            d_ff: 32,
            context_length: 0,
            ln_eps: 1e-6,
            position: Position::Sinusoidal,
            latent_decay: false,
            mixing: Mixing::Latte,
        }
    }

    #[test]
    fn sizes() {
        let c = base();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.layer_state_len(), 6 * 4 + 12);
        assert_eq!(c.state_len(), 2 * 36);
        assert_eq!(c.scratch_len(), 24 + 11 + 32);
        let v = Config {
            position: Position::Vapor,
            ..c
        };
        assert_eq!(v.scratch_len(), 24 + 11 + 4 + 32);
        // Neither `none` positions nor the decay gate take any memory.
        let n = Config {
            position: Position::None,
            latent_decay: true,
            ..c
        };
        assert_eq!(n.validate(), Ok(()));
        assert_eq!(n.state_len(), c.state_len());
        assert_eq!(n.scratch_len(), c.scratch_len());
    }

    #[test]
    fn overflow_is_an_error() {
        let c = Config {
            n_latents: usize::MAX - 1,
            d_model: usize::MAX - 1,
            ..base()
        };
        assert_eq!(c.validate(), Err(Error::SizeOverflow));
        let c = Config {
            vocab_size: usize::MAX,
            ..base()
        };
        assert_eq!(c.validate(), Err(Error::SizeOverflow));
        assert_eq!(
            Config {
                ln_eps: f32::NAN,
                ..base()
            }
            .validate(),
            Err(Error::InvalidLayerNormEpsilon)
        );
    }
}
