//! The two checkpoint naming schemes and the tensors of the model file.

use std::fmt;

/// Hyper-parameters of a model being converted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    pub vocab: u64,
    pub d_model: u64,
    pub n_layers: u64,
    pub n_heads: u64,
    pub n_latents: u64,
    pub d_ff: u64,
}

/// One parameter of the model, independent of the naming scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    TokEmb,
    AttnNormW,
    AttnNormB,
    Q,
    K,
    V,
    O,
    FfnNormW,
    FfnNormB,
    UpW,
    UpB,
    DownW,
    DownB,
    OutNormW,
    OutNormB,
    HeadW,
    HeadB,
    /// The decay gate's rates (an extension; trainer checkpoints only).
    Decay,
    /// A Macchiato block's window attention: `Wq`, `Wk`, `Wv` and the
    /// heads' distance slopes (trainer checkpoints only).
    WinQ,
    WinK,
    WinV,
    WinSlope,
}

/// A Macchiato block's window tensors, in file order after the Latte ones.
pub const WINDOW_ROLES: [Role; 4] = [Role::WinQ, Role::WinK, Role::WinV, Role::WinSlope];

/// The parameters of one block, in file order.
pub const LAYER_ROLES: [Role; 12] = [
    Role::AttnNormW,
    Role::AttnNormB,
    Role::Q,
    Role::K,
    Role::V,
    Role::O,
    Role::FfnNormW,
    Role::FfnNormB,
    Role::UpW,
    Role::UpB,
    Role::DownW,
    Role::DownB,
];

/// Where a gated block's rates go in the file: after `attn_output`.
pub const DECAY_AFTER: Role = Role::O;

/// Dimension symbols, for messages such as `[L=6, D=8]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sym {
    V,
    D,
    L,
    F,
    H,
}

impl Sym {
    fn value(self, hp: &Hyper) -> u64 {
        match self {
            Sym::V => hp.vocab,
            Sym::D => hp.d_model,
            Sym::L => hp.n_latents,
            Sym::F => hp.d_ff,
            Sym::H => hp.n_heads,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Sym::V => "V",
            Sym::D => "D",
            Sym::L => "L",
            Sym::F => "F",
            Sym::H => "H",
        }
    }
}

/// A shape in symbols: one dimension for vectors, `[rows, cols]` for matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymShape {
    Vector(Sym),
    Matrix(Sym, Sym),
}

impl SymShape {
    pub fn dims(self, hp: &Hyper) -> Vec<u64> {
        match self {
            SymShape::Vector(a) => vec![a.value(hp)],
            SymShape::Matrix(a, b) => vec![a.value(hp), b.value(hp)],
        }
    }
    pub fn transposed(self) -> SymShape {
        match self {
            SymShape::Matrix(a, b) => SymShape::Matrix(b, a),
            v => v,
        }
    }
    /// `[L=6, D=8]`.
    pub fn describe(self, hp: &Hyper) -> String {
        let one = |s: Sym| format!("{}={}", s.name(), s.value(hp));
        match self {
            SymShape::Vector(a) => format!("[{}]", one(a)),
            SymShape::Matrix(a, b) => format!("[{}, {}]", one(a), one(b)),
        }
    }
}

impl Role {
    /// Shape in the model file, `[rows, cols]` for matrices (rows = outputs).
    pub fn shape(self) -> SymShape {
        use Sym::*;
        match self {
            Role::TokEmb | Role::HeadW => SymShape::Matrix(V, D),
            Role::HeadB => SymShape::Vector(V),
            Role::Q | Role::K => SymShape::Matrix(L, D),
            Role::V | Role::O | Role::WinQ | Role::WinK | Role::WinV => SymShape::Matrix(D, D),
            Role::WinSlope => SymShape::Vector(H),
            Role::UpW => SymShape::Matrix(F, D),
            Role::UpB => SymShape::Vector(F),
            Role::DownW => SymShape::Matrix(D, F),
            Role::DownB => SymShape::Vector(D),
            Role::Decay => SymShape::Vector(L),
            Role::AttnNormW
            | Role::AttnNormB
            | Role::FfnNormW
            | Role::FfnNormB
            | Role::OutNormW
            | Role::OutNormB => SymShape::Vector(D),
        }
    }

    pub fn is_matrix(self) -> bool {
        matches!(self.shape(), SymShape::Matrix(..))
    }

    /// Name in the model file (FORMAT.md).
    pub fn gguf_name(self, layer: Option<u64>) -> String {
        let suffix = match self {
            Role::TokEmb => return "token_embd.weight".into(),
            Role::OutNormW => return "output_norm.weight".into(),
            Role::OutNormB => return "output_norm.bias".into(),
            Role::HeadW => return "output.weight".into(),
            Role::HeadB => return "output.bias".into(),
            Role::AttnNormW => "attn_norm.weight",
            Role::AttnNormB => "attn_norm.bias",
            Role::Q => "attn_q.weight",
            Role::K => "attn_k.weight",
            Role::V => "attn_v.weight",
            Role::O => "attn_output.weight",
            Role::FfnNormW => "ffn_norm.weight",
            Role::FfnNormB => "ffn_norm.bias",
            Role::UpW => "ffn_up.weight",
            Role::UpB => "ffn_up.bias",
            Role::DownW => "ffn_down.weight",
            Role::DownB => "ffn_down.bias",
            Role::Decay => "attn_decay",
            Role::WinQ => "win_q.weight",
            Role::WinK => "win_k.weight",
            Role::WinV => "win_v.weight",
            Role::WinSlope => "win_slope",
        };
        format!("blk.{}.{suffix}", layer.unwrap_or(0))
    }
}

/// A checkpoint naming scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// The project's PyTorch reference trainer: `nn.Linear` (out, in) layout.
    Trainer,
    /// The official Flax implementation, tree flattened with `/`: (in, out) kernels.
    Flax,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Trainer => "reference trainer (PyTorch names)",
            Scheme::Flax => "official Flax tree",
        })
    }
}

const TRAINER_GLOBAL: &[(&str, Role)] = &[
    ("tok_emb.weight", Role::TokEmb),
    ("ln_f.weight", Role::OutNormW),
    ("ln_f.bias", Role::OutNormB),
    ("head.weight", Role::HeadW),
    ("head.bias", Role::HeadB),
];
const TRAINER_LAYER_PREFIX: &str = "blocks.";
const TRAINER_LAYER: &[(&str, Role)] = &[
    ("ln1.weight", Role::AttnNormW),
    ("ln1.bias", Role::AttnNormB),
    ("latte.wq.weight", Role::Q),
    ("latte.wk.weight", Role::K),
    ("latte.wv.weight", Role::V),
    ("latte.wo.weight", Role::O),
    ("ln2.weight", Role::FfnNormW),
    ("ln2.bias", Role::FfnNormB),
    ("mlp.fc1.weight", Role::UpW),
    ("mlp.fc1.bias", Role::UpB),
    ("mlp.fc2.weight", Role::DownW),
    ("mlp.fc2.bias", Role::DownB),
    ("latte.decay", Role::Decay),
    ("local.wq.weight", Role::WinQ),
    ("local.wk.weight", Role::WinK),
    ("local.wv.weight", Role::WinV),
    ("local.slope", Role::WinSlope),
    // An attention model's blocks (the baseline): no Latte tensors.
    ("attn.wq.weight", Role::WinQ),
    ("attn.wk.weight", Role::WinK),
    ("attn.wv.weight", Role::WinV),
    ("attn.wo.weight", Role::O),
    ("attn.slope", Role::WinSlope),
];
/// Per-block trainer tensors that are not parameters of the model file: the
/// decay gate's trained parameter (the rates, `latte.decay`, are derived
/// from it and exported beside it).
/// Likewise the window's slopes: the trained `local.slope_log`, exported
/// as the slopes themselves (`local.slope`).
const TRAINER_LAYER_SKIPPED: &[&str] = &["latte.decay_logit", "local.slope_log", "attn.slope_log"];

const FLAX_GLOBAL: &[(&str, Role)] = &[
    ("Encoder_0/Embed_0/embedding", Role::TokEmb),
    ("LayerNorm_0/scale", Role::OutNormW),
    ("LayerNorm_0/bias", Role::OutNormB),
    ("Dense_0/kernel", Role::HeadW),
    ("Dense_0/bias", Role::HeadB),
];
const FLAX_LAYER_PREFIX: &str = "Encoder_0/TransBlock_";
// In `TransBlock.__call__` the first LayerNorm created (LayerNorm_0) is the
// one before Latte, the second (LayerNorm_1) the one before the MLP; the
// first Dense (Dense_0) is the up-projection.
const FLAX_LAYER: &[(&str, Role)] = &[
    ("LayerNorm_0/scale", Role::AttnNormW),
    ("LayerNorm_0/bias", Role::AttnNormB),
    ("StableScanLatte_0/Wq", Role::Q),
    ("StableScanLatte_0/Wk", Role::K),
    ("StableScanLatte_0/Wv", Role::V),
    ("StableScanLatte_0/o_proj", Role::O),
    ("LayerNorm_1/scale", Role::FfnNormW),
    ("LayerNorm_1/bias", Role::FfnNormB),
    ("Dense_0/kernel", Role::UpW),
    ("Dense_0/bias", Role::UpB),
    ("Dense_1/kernel", Role::DownW),
    ("Dense_1/bias", Role::DownB),
];

type Tables = (
    &'static [(&'static str, Role)],
    &'static str,
    &'static [(&'static str, Role)],
    &'static str,
);

/// Flax checkpoints saved from a `{"params": ...}` dict carry this prefix.
pub const FLAX_PARAMS_PREFIX: &str = "params/";

impl Scheme {
    /// Guesses the scheme from the tensor names.
    pub fn detect<'n>(names: impl IntoIterator<Item = &'n str>) -> Option<Scheme> {
        for n in names {
            let n = n.strip_prefix(FLAX_PARAMS_PREFIX).unwrap_or(n);
            if n.starts_with("Encoder_0/") {
                return Some(Scheme::Flax);
            }
            if n == "tok_emb.weight" || n.starts_with(TRAINER_LAYER_PREFIX) {
                return Some(Scheme::Trainer);
            }
        }
        None
    }

    /// Global names, per-block prefix, per-block names, separator after the index.
    fn tables(self) -> Tables {
        match self {
            Scheme::Trainer => (TRAINER_GLOBAL, TRAINER_LAYER_PREFIX, TRAINER_LAYER, "."),
            Scheme::Flax => (FLAX_GLOBAL, FLAX_LAYER_PREFIX, FLAX_LAYER, "/"),
        }
    }

    /// The parameter a checkpoint name stands for: `(layer, role)`.
    pub fn parse(self, name: &str) -> Option<(Option<u64>, Role)> {
        let name = match self {
            Scheme::Flax => name.strip_prefix(FLAX_PARAMS_PREFIX).unwrap_or(name),
            Scheme::Trainer => name,
        };
        let (global, prefix, layer, sep) = self.tables();
        if let Some(&(_, role)) = global.iter().find(|(n, _)| *n == name) {
            return Some((None, role));
        }
        let rest = name.strip_prefix(prefix)?;
        let (index, suffix) = rest.split_once(sep)?;
        let i: u64 = index.parse().ok()?;
        if i.to_string() != index {
            return None; // no signs or leading zeros
        }
        let &(_, role) = layer.iter().find(|(n, _)| *n == suffix)?;
        Some((Some(i), role))
    }

    /// Whether a checkpoint name is a known tensor that is not converted
    /// (the trainer's `blocks.N.latte.decay_logit`).
    pub fn skipped(self, name: &str) -> bool {
        match self {
            Scheme::Trainer => name
                .strip_prefix(TRAINER_LAYER_PREFIX)
                .and_then(|rest| rest.split_once('.'))
                .is_some_and(|(index, suffix)| {
                    index.parse::<u64>().is_ok() && TRAINER_LAYER_SKIPPED.contains(&suffix)
                }),
            Scheme::Flax => false,
        }
    }

    /// The checkpoint name of a parameter (without any `params/` prefix).
    pub fn source_name(self, layer: Option<u64>, role: Role) -> String {
        let (global, prefix, table, sep) = self.tables();
        match layer {
            None => global
                .iter()
                .find(|(_, r)| *r == role)
                .map(|(n, _)| n.to_string()),
            Some(i) => table
                .iter()
                .find(|(_, r)| *r == role)
                .map(|(n, _)| format!("{prefix}{i}{sep}{n}")),
        }
        .unwrap_or_else(|| format!("{role:?}"))
    }

    /// Whether the checkpoint stores this parameter transposed relative to
    /// the model file: Flax kernels are (in, out); the embedding table is
    /// (V, D) in both.
    pub fn transposed(self, role: Role) -> bool {
        self == Scheme::Flax && role.is_matrix() && role != Role::TokEmb
    }

    /// The shape the checkpoint must have for `role`.
    pub fn source_shape(self, role: Role) -> SymShape {
        if self.transposed(role) {
            role.shape().transposed()
        } else {
            role.shape()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for scheme in [Scheme::Trainer, Scheme::Flax] {
            for role in LAYER_ROLES {
                let n = scheme.source_name(Some(7), role);
                assert_eq!(scheme.parse(&n), Some((Some(7), role)), "{n}");
            }
            for role in [
                Role::TokEmb,
                Role::OutNormW,
                Role::OutNormB,
                Role::HeadW,
                Role::HeadB,
            ] {
                let n = scheme.source_name(None, role);
                assert_eq!(scheme.parse(&n), Some((None, role)), "{n}");
            }
        }
    }

    #[test]
    fn fixed_names() {
        let t = Scheme::Trainer;
        assert_eq!(
            t.parse("blocks.3.latte.wq.weight"),
            Some((Some(3), Role::Q))
        );
        assert_eq!(t.parse("blocks.03.latte.wq.weight"), None);
        assert_eq!(t.parse("blocks.+3.latte.wq.weight"), None);
        assert_eq!(t.parse("blocks.3.latte.wq"), None);
        assert_eq!(t.parse(""), None);
        let f = Scheme::Flax;
        assert_eq!(
            f.parse("Encoder_0/TransBlock_1/LayerNorm_0/scale"),
            Some((Some(1), Role::AttnNormW))
        );
        assert_eq!(f.parse("params/Dense_0/kernel"), Some((None, Role::HeadW)));
        assert_eq!(
            f.parse("Encoder_0/TransBlock_0/Dense_1/kernel"),
            Some((Some(0), Role::DownW))
        );
        assert_eq!(Role::Q.gguf_name(Some(2)), "blk.2.attn_q.weight");
        assert_eq!(
            t.parse("blocks.1.latte.decay"),
            Some((Some(1), Role::Decay))
        );
        assert_eq!(t.source_name(Some(1), Role::Decay), "blocks.1.latte.decay");
        assert_eq!(Role::Decay.gguf_name(Some(1)), "blk.1.attn_decay");
        assert_eq!(t.parse("blocks.1.latte.decay_logit"), None);
        assert!(t.skipped("blocks.1.latte.decay_logit"));
        assert!(!t.skipped("blocks.1.latte.decay"));
        assert!(!t.skipped("blocks.x.latte.decay_logit"));
        assert!(!f.skipped("blocks.1.latte.decay_logit"));
        assert_eq!(
            f.parse("Encoder_0/TransBlock_0/StableScanLatte_0/decay"),
            None
        );
        assert!(f.transposed(Role::O) && !f.transposed(Role::TokEmb) && !t.transposed(Role::O));
    }

    #[test]
    fn detection() {
        assert_eq!(
            Scheme::detect(["x", "Encoder_0/Embed_0/embedding"]),
            Some(Scheme::Flax)
        );
        assert_eq!(
            Scheme::detect(["params/Encoder_0/TransBlock_0/Dense_0/bias"]),
            Some(Scheme::Flax)
        );
        assert_eq!(
            Scheme::detect(["head.bias", "tok_emb.weight"]),
            Some(Scheme::Trainer)
        );
        assert_eq!(Scheme::detect(["model.layers.0.weight"]), None);
    }
}
