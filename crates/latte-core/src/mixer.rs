//! The sequence mixer of a block: the part that mixes information across
//! positions, behind one enum so that layers of different kinds and state
//! sizes can sit in one model.
//!
//! A block is `h += mixer(LN(h)); h += mlp(LN(h))` ([`crate::block`]). The
//! mixer owns its weights and decides how long its per-layer state is, what
//! the initial state is, how much scratch a token of a chunk needs, and how
//! a chunk of tokens is run on that state. The model keeps one state offset
//! per layer ([`crate::Model::layer_state_range`]), so the state of a
//! session is the mixers' states back to back, whatever their kinds.
//!
//! Adding a kind is one variant here and one file of its own (see "Adding a
//! sequence mixer" in `API.md`): every `match` below is exhaustive, so the
//! compiler lists each place the new kind must answer.

use crate::block::Ctx;
use crate::hash::Fnv64;
use crate::latte::LatteLayer;
use crate::tensor::Matrix;
use crate::window::{AttentionLayer, Macchiato, WindowAttention};

/// One block's sequence mixer.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Mixer<'a> {
    /// Causal Latte ([`LatteLayer`]), with or without the decay gate.
    Latte(LatteLayer<'a>),
    /// Latte-Macchiato ([`Macchiato`]): Latte plus window attention.
    Macchiato(Macchiato<'a>),
    /// Causal softmax attention alone ([`AttentionLayer`]): the baseline.
    Attention(AttentionLayer<'a>),
}

impl<'a> Mixer<'a> {
    pub(crate) const EMPTY: Mixer<'static> = Mixer::Latte(LatteLayer::EMPTY);

    /// A short name of the kind, for tools and error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Mixer::Latte(_) => "latte",
            Mixer::Macchiato(_) => "macchiato",
            Mixer::Attention(_) => "attention",
        }
    }

    /// The Latte layer, if this mixer is one or has one (Macchiato).
    pub fn as_latte(&self) -> Option<&LatteLayer<'a>> {
        match self {
            Mixer::Latte(l) => Some(l),
            Mixer::Macchiato(m) => Some(&m.latte),
            Mixer::Attention(_) => None,
        }
    }

    /// The window attention, if this mixer has one (Macchiato, attention).
    pub fn window(&self) -> Option<&WindowAttention<'a>> {
        match self {
            Mixer::Latte(_) => None,
            Mixer::Macchiato(m) => Some(&m.window),
            Mixer::Attention(a) => Some(&a.window),
        }
    }

    /// [`Mixer::window`], to change its ring (capacity, storage).
    pub(crate) fn window_mut(&mut self) -> Option<&mut WindowAttention<'a>> {
        match self {
            Mixer::Latte(_) => None,
            Mixer::Macchiato(m) => Some(&mut m.window),
            Mixer::Attention(a) => Some(&mut a.window),
        }
    }

    /// `f32` elements of this layer's state that hold a window's ring of
    /// keys and values (0 for Latte).
    pub fn ring_len(&self) -> usize {
        self.window().map_or(0, WindowAttention::state_len)
    }

    /// `f32` elements of this layer's state in a session. Constant: it never
    /// grows with the position.
    pub fn state_len(&self) -> usize {
        match self {
            Mixer::Latte(l) => l.state_len(),
            Mixer::Macchiato(m) => m.state_len(),
            Mixer::Attention(a) => a.window.state_len(),
        }
    }

    /// Sets `state` (at least [`Mixer::state_len`] long) to the state before
    /// the first token.
    pub fn reset_state(&self, state: &mut [f32]) {
        match self {
            Mixer::Latte(l) => l.reset_state(state),
            Mixer::Macchiato(m) => {
                let (ls, ws) = state.split_at_mut(m.latte.state_len().min(state.len()));
                m.latte.reset_state(ls);
                m.window.reset_state(ws);
            }
            Mixer::Attention(a) => a.window.reset_state(state),
        }
    }

    /// `f32` elements of temporary scratch one token of a chunk needs while
    /// the mixer runs (Latte: `q`, `k`, `v`, `y`, that is `2 L + 2 D`).
    pub(crate) fn tmp_per_token(&self) -> usize {
        match self {
            Mixer::Latte(l) => 2 * l.n_latents() + 2 * l.d_model(),
            Mixer::Macchiato(m) => m.tmp_per_token(),
            Mixer::Attention(a) => a.tmp_per_token(),
        }
    }

    /// The weight matrices, in FORMAT.md's tensor order (the model's
    /// fingerprint and its quantized-input scratch walk them).
    pub(crate) fn matrices(&self) -> impl Iterator<Item = &Matrix<'a>> {
        let m: [Option<&Matrix<'a>>; 7] = match self {
            Mixer::Latte(l) => {
                let [q, k, v, o] = l.matrices();
                [Some(q), Some(k), Some(v), Some(o), None, None, None]
            }
            Mixer::Macchiato(m) => {
                let [q, k, v, o] = m.latte.matrices();
                let [wq, wk, wv] = m.window.matrices();
                [
                    Some(q),
                    Some(k),
                    Some(v),
                    Some(o),
                    Some(wq),
                    Some(wk),
                    Some(wv),
                ]
            }
            Mixer::Attention(a) => {
                let [wq, wk, wv] = a.window.matrices();
                [Some(wq), Some(wk), Some(wv), Some(&a.wo), None, None, None]
            }
        };
        m.into_iter().flatten()
    }

    /// Hashes into the model's fingerprint what [`Mixer::matrices`] does not
    /// cover: for any kind but Latte, a tag naming the kind and its other
    /// parameters. Latte hashes nothing here (its decay rates are hashed
    /// after all the weights, so models keep the fingerprints they always
    /// had).
    pub(crate) fn hash_extra(&self, h: &mut Fnv64) {
        let (tag, w) = match self {
            Mixer::Latte(_) => return,
            Mixer::Macchiato(m) => (
                match m.combine {
                    crate::window::Combine::Sum => "macchiato-sum",
                    crate::window::Combine::Joint => "macchiato-joint",
                },
                &m.window,
            ),
            Mixer::Attention(a) => ("attention", &a.window),
        };
        h.bytes(tag.as_bytes());
        h.usize(w.window());
        h.f32s(w.slopes());
        // The ring's storage changes the logits; `f32` hashes nothing, so
        // the fingerprints of `f32` rings stay what they were.
        match w.storage() {
            crate::window::RingStorage::F32 => {}
            other => h.bytes(other.name().as_bytes()),
        }
    }

    /// Runs a chunk of tokens: `x` holds their normalised inputs (`T x D`,
    /// token-major), `out` receives the mixer's outputs (`T x D`); `state`
    /// is this layer's state (exactly [`Mixer::state_len`]), continued from
    /// the previous chunk; `tmp` holds `T x` [`Mixer::tmp_per_token`] and
    /// `quant` the quantized inputs of `T` tokens. Every kind must give the
    /// bits of running its tokens one at a time.
    pub(crate) fn run_chunk(
        &self,
        cx: &Ctx<'_, 'a>,
        x: &[f32],
        state: &mut [f32],
        tmp: &mut [f32],
        quant: &mut [f32],
        out: &mut [f32],
    ) {
        match self {
            Mixer::Latte(l) => l.run_chunk(cx, x, state, tmp, quant, out),
            Mixer::Macchiato(m) => m.run_chunk(cx, x, state, tmp, quant, out),
            Mixer::Attention(a) => a.run_chunk(cx, x, state, tmp, quant, out),
        }
    }
}
