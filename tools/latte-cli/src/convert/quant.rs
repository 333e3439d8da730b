//! The per-tensor precision policy of `latte convert` and the block
//! encoders (latte-kernels' reference quantizers, bit for bit ggml's).

use std::fmt;

use anyhow::{anyhow, bail, ensure, Result};
use latte_gguf::GgmlType;
use latte_kernels::{BlockQ4_0, BlockQ8_0, QuantFormat, QK};

use super::scheme::{Hyper, Role, SymShape};

/// Stored type of one tensor: the values of `--dtype` and of
/// `--tensor-type`'s TYPE. Every method is an exhaustive match, so a format
/// added here is added everywhere the converter needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TensorType {
    F32,
    F16,
    Q8_0,
    Q4_0,
}

impl TensorType {
    pub const ALL: [TensorType; 4] = [
        TensorType::F32,
        TensorType::F16,
        TensorType::Q8_0,
        TensorType::Q4_0,
    ];

    /// The flag spelling: `f32`, `f16`, `q8_0`, `q4_0`.
    pub fn name(self) -> &'static str {
        match self {
            TensorType::F32 => "f32",
            TensorType::F16 => "f16",
            TensorType::Q8_0 => "q8_0",
            TensorType::Q4_0 => "q4_0",
        }
    }

    /// The line `--help` shows for the type.
    fn help(self) -> &'static str {
        match self {
            TensorType::F32 => "IEEE single precision",
            TensorType::F16 => "IEEE half precision (norms and biases stay f32)",
            TensorType::Q8_0 => "ggml Q8_0: blocks of 32 values, 8-bit quants and an f16 scale",
            TensorType::Q4_0 => {
                "ggml Q4_0: blocks of 32 values, 4-bit quants and an f16 scale \
                 (token_embd and output default to q8_0)"
            }
        }
    }

    pub fn parse(s: &str) -> Option<TensorType> {
        let s = s.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    pub fn ggml(self) -> GgmlType {
        match self {
            TensorType::F32 => GgmlType::F32,
            TensorType::F16 => GgmlType::F16,
            TensorType::Q8_0 => GgmlType::Q8_0,
            TensorType::Q4_0 => GgmlType::Q4_0,
        }
    }

    pub fn is_quantized(self) -> bool {
        match self {
            TensorType::F32 | TensorType::F16 => false,
            TensorType::Q8_0 | TensorType::Q4_0 => true,
        }
    }

    /// `values` (row-major, rows of whole blocks for the quantized types)
    /// as the file bytes of this type.
    pub fn encode(self, values: &[f32]) -> Result<Vec<u8>> {
        match self {
            TensorType::F32 => Ok(super::decode::encode_f32(values)),
            TensorType::F16 => super::decode::encode_f16(values),
            TensorType::Q8_0 => encode_blocks::<BlockQ8_0>(values),
            TensorType::Q4_0 => encode_blocks::<BlockQ4_0>(values),
        }
    }
}

/// `f32, f16, q8_0 or q4_0`: the types, for messages.
fn type_list() -> String {
    let names: Vec<&str> = TensorType::ALL.iter().map(|t| t.name()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

impl clap::ValueEnum for TensorType {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.help()))
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `*` matches any run of characters (dots included); everything else
/// matches itself; the whole name must match.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    // Greedy matching with backtracking to the last `*`.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// One `--tensor-type PATTERN=TYPE`.
#[derive(Clone, Debug)]
pub struct Override {
    pub pattern: String,
    pub ty: TensorType,
}

impl Override {
    pub fn parse(s: &str) -> Result<Override> {
        let (pattern, ty) = s.rsplit_once('=').ok_or_else(|| {
            anyhow!("--tensor-type `{s}`: expected PATTERN=TYPE, e.g. 'blk.*.ffn_*=q4_0'")
        })?;
        let pattern = pattern.trim();
        ensure!(
            !pattern.is_empty(),
            "--tensor-type `{s}`: the tensor-name pattern is empty"
        );
        let ty = TensorType::parse(ty).ok_or_else(|| {
            anyhow!(
                "--tensor-type `{s}`: `{ty}` is not a type ({})",
                type_list()
            )
        })?;
        Ok(Override {
            pattern: pattern.to_string(),
            ty,
        })
    }
}

/// Which type each tensor is stored as.
///
/// * Norm weights and all biases: always f32 (overrides do not apply).
/// * `token_embd.weight` and `output.weight`: at least 8-bit, so q8_0 when
///   the main type is q4_0, else the main type.
/// * Every other matrix: the main type.
/// * `--tensor-type` overrides, for matrices, by GGUF tensor name; the last
///   matching one wins. Each must match at least one matrix.
#[derive(Clone, Debug)]
pub struct Policy {
    pub main: TensorType,
    pub overrides: Vec<Override>,
}

impl Policy {
    pub fn new(main: TensorType, overrides: &[String]) -> Result<Policy> {
        Ok(Policy {
            main,
            overrides: overrides
                .iter()
                .map(|s| Override::parse(s))
                .collect::<Result<_>>()?,
        })
    }

    /// The default type of a tensor, before overrides.
    pub fn default_for(&self, role: Role) -> TensorType {
        if !role.is_matrix() {
            return TensorType::F32;
        }
        match (role, self.main) {
            (Role::TokEmb | Role::HeadW, TensorType::Q4_0) => TensorType::Q8_0,
            (_, t) => t,
        }
    }

    /// The type of tensor `name` (GGUF name) with `role`, and the index of
    /// the override that chose it.
    pub fn type_for(&self, name: &str, role: Role) -> (TensorType, Option<usize>) {
        if !role.is_matrix() {
            return (TensorType::F32, None);
        }
        match self
            .overrides
            .iter()
            .enumerate()
            .rev()
            .find(|(_, o)| glob_match(&o.pattern, name))
        {
            Some((i, o)) => (o.ty, Some(i)),
            None => (self.default_for(role), None),
        }
    }

    /// Types of all tensors (`(gguf name, role)` in file order). Errors,
    /// naming every offender: a quantized type for a matrix whose row length
    /// is not a multiple of 32; an override that matches no matrix.
    pub fn plan(&self, tensors: &[(String, Role)], hp: &Hyper) -> Result<Vec<TensorType>> {
        let mut used = vec![false; self.overrides.len()];
        let mut problems = Vec::new();
        let mut types = Vec::with_capacity(tensors.len());
        for (name, role) in tensors {
            let (ty, by) = self.type_for(name, *role);
            if let Some(i) = by {
                used[i] = true;
            }
            if ty.is_quantized() {
                if let SymShape::Matrix(rows, cols) = role.shape() {
                    let n = cols_of(cols, hp);
                    if !n.is_multiple_of(QK as u64) {
                        let why = match by {
                            Some(i) => format!("--tensor-type '{}'", self.overrides[i].pattern),
                            None => format!("--dtype {}", self.main),
                        };
                        problems.push(format!(
                            "{name}: {ty} ({why}) needs rows whose length is a multiple of 32, \
                             but its rows ({} x {n}) have {n} values",
                            cols_of(rows, hp)
                        ));
                    }
                }
            }
            types.push(ty);
        }
        for (o, used) in self.overrides.iter().zip(used) {
            if !used {
                problems.push(format!(
                    "--tensor-type '{}={}' matches no weight matrix (patterns apply to GGUF \
                     names such as blk.0.ffn_up.weight; `*` matches anything; norms and biases \
                     are always f32)",
                    o.pattern, o.ty
                ));
            }
        }
        if !problems.is_empty() {
            bail!(
                "cannot store the model with this precision policy:\n  {}\n(keep such a tensor \
                 f32 or f16 with --tensor-type 'NAME=f16')",
                problems.join("\n  ")
            );
        }
        Ok(types)
    }
}

fn cols_of(s: super::scheme::Sym, hp: &Hyper) -> u64 {
    SymShape::Vector(s).dims(hp)[0]
}

/// `B` blocks of `values` (a whole number of 32-value blocks), as file
/// bytes (the blocks' little-endian layout, e.g. `Q8_0`: `d` then 32 `i8`),
/// quantized with latte-kernels' reference quantizer.
pub fn encode_blocks<B: QuantFormat>(values: &[f32]) -> Result<Vec<u8>> {
    ensure!(
        values.len().is_multiple_of(QK),
        "internal: {} values is not a whole number of blocks",
        values.len()
    );
    let mut blocks = vec![<B as bytemuck::Zeroable>::zeroed(); values.len() / QK];
    B::quantize(values, &mut blocks);
    check_scales::<B>(&blocks)?;
    Ok(latte_kernels::blocks_as_bytes(&blocks).to_vec())
}

/// `Q8_0` blocks of `values` ([`encode_blocks`]).
#[cfg(test)]
pub fn encode_q8_0(values: &[f32]) -> Result<Vec<u8>> {
    encode_blocks::<BlockQ8_0>(values)
}

/// `Q4_0` blocks of `values` ([`encode_blocks`]).
#[cfg(test)]
pub fn encode_q4_0(values: &[f32]) -> Result<Vec<u8>> {
    encode_blocks::<BlockQ4_0>(values)
}

/// A block scale that overflowed `f16` (weights above ~65504 x the largest
/// quant).
fn check_scales<B: QuantFormat>(blocks: &[B]) -> Result<()> {
    if let Some(i) = blocks.iter().position(|b| !b.finite()) {
        bail!(
            "block {i}: a weight of magnitude above {} does not fit {}'s f16 block \
             scale; store this tensor as f32 (--tensor-type 'NAME=f32')",
            65504.0 * B::MAX_QUANT,
            B::NAME
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("blk.*.ffn_*", "blk.0.ffn_up.weight"));
        assert!(glob_match("blk.*.ffn_*", "blk.12.ffn_down.weight"));
        assert!(!glob_match("blk.*.ffn_*", "blk.0.attn_q.weight"));
        assert!(glob_match("output.weight", "output.weight"));
        assert!(!glob_match("output.weight", "output.weight2"));
        assert!(!glob_match("output", "output.weight"));
        assert!(glob_match("*", "token_embd.weight"));
        assert!(glob_match("*.weight", "token_embd.weight"));
        assert!(glob_match("blk.1*", "blk.10.attn_k.weight"));
        assert!(glob_match("*a*b*c", "xaxbxc"));
        assert!(!glob_match("*a*b*c", "xaxbxcx"));
        assert!(glob_match("a**b", "ab"));
        assert!(!glob_match("", "a"));
        assert!(glob_match("", ""));
    }

    #[test]
    fn overrides_parse() {
        let o = Override::parse("blk.*.ffn_*=Q4_0").unwrap();
        assert_eq!(
            (o.pattern.as_str(), o.ty),
            ("blk.*.ffn_*", TensorType::Q4_0)
        );
        assert!(Override::parse("blk.*").is_err());
        assert!(Override::parse("=q8_0").is_err());
        assert!(Override::parse("x=q5_1").is_err());
    }

    fn hp(d: u64) -> Hyper {
        Hyper {
            vocab: 256,
            d_model: d,
            n_layers: 1,
            n_heads: 2,
            n_latents: 8,
            d_ff: 4 * d,
        }
    }

    fn names() -> Vec<(String, Role)> {
        [
            ("token_embd.weight", Role::TokEmb),
            ("blk.0.attn_norm.weight", Role::AttnNormW),
            ("blk.0.attn_q.weight", Role::Q),
            ("blk.0.ffn_up.weight", Role::UpW),
            ("blk.0.ffn_up.bias", Role::UpB),
            ("blk.0.ffn_down.weight", Role::DownW),
            ("output.weight", Role::HeadW),
            ("output.bias", Role::HeadB),
        ]
        .into_iter()
        .map(|(n, r)| (n.to_string(), r))
        .collect()
    }

    #[test]
    fn default_policy() {
        use TensorType::*;
        let p = Policy::new(Q4_0, &[]).unwrap();
        assert_eq!(
            p.plan(&names(), &hp(64)).unwrap(),
            [Q8_0, F32, Q4_0, Q4_0, F32, Q4_0, Q8_0, F32]
        );
        let p = Policy::new(Q8_0, &[]).unwrap();
        assert_eq!(
            p.plan(&names(), &hp(64)).unwrap(),
            [Q8_0, F32, Q8_0, Q8_0, F32, Q8_0, Q8_0, F32]
        );
        let p = Policy::new(F16, &[]).unwrap();
        assert_eq!(
            p.plan(&names(), &hp(64)).unwrap(),
            [F16, F32, F16, F16, F32, F16, F16, F32]
        );
    }

    #[test]
    fn overrides_last_match_wins_and_skip_vectors() {
        use TensorType::*;
        let p = Policy::new(
            Q8_0,
            &[
                "blk.*.ffn_*=q4_0".into(),
                "output.weight=f16".into(),
                "*down*=f32".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            p.plan(&names(), &hp(64)).unwrap(),
            [Q8_0, F32, Q8_0, Q4_0, F32, F32, F16, F32]
        );
    }

    #[test]
    fn bad_rows_and_unused_patterns_are_errors() {
        use TensorType::*;
        // D = 40: rows of 40 values everywhere except ffn_down (F = 160).
        let e = Policy::new(Q8_0, &[])
            .unwrap()
            .plan(&names(), &hp(40))
            .unwrap_err()
            .to_string();
        assert!(e.contains("token_embd.weight: q8_0 (--dtype q8_0)"), "{e}");
        assert!(e.contains("blk.0.attn_q.weight"), "{e}");
        assert!(e.contains("40 values"), "{e}");
        assert!(!e.contains("ffn_down"), "{e}");
        let e = Policy::new(F32, &["blk.*.attn_q*=q4_0".into(), "nothing*=q8_0".into()])
            .unwrap()
            .plan(&names(), &hp(40))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("blk.0.attn_q.weight: q4_0 (--tensor-type 'blk.*.attn_q*')"),
            "{e}"
        );
        assert!(
            e.contains("'nothing*=q8_0' matches no weight matrix"),
            "{e}"
        );
        // Only the biases match: an error too (they are always f32).
        let e = Policy::new(F32, &["*.bias=q8_0".into()])
            .unwrap()
            .plan(&names(), &hp(64))
            .unwrap_err()
            .to_string();
        assert!(e.contains("matches no weight matrix"), "{e}");
    }

    #[test]
    fn encoders_match_the_block_layout() {
        let v: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) / 7.0).collect();
        let b = encode_q8_0(&v).unwrap();
        assert_eq!(b.len(), 2 * 34);
        let b4 = encode_q4_0(&v).unwrap();
        assert_eq!(b4.len(), 2 * 18);
        // Round trip through the kernels' casts and dequantizers.
        let mut w = vec![0u16; b.len() / 2];
        bytemuck::cast_slice_mut::<u16, u8>(&mut w).copy_from_slice(&b);
        let blocks = latte_kernels::cast_q8_0(bytemuck::cast_slice(&w)).unwrap();
        let mut back = [0f32; 64];
        latte_kernels::dequantize_row_q8_0(blocks, &mut back);
        for (a, b) in v.iter().zip(back) {
            assert!((a - b).abs() <= 44.0 / 7.0 / 127.0, "{a} vs {b}");
        }
        assert!(encode_q8_0(&v[..40]).is_err());
        let e = encode_q8_0(&[1e7f32; 32]).unwrap_err().to_string();
        assert!(e.contains("f16 block scale"), "{e}");
        let e = encode_q4_0(&[1e6f32; 32]).unwrap_err().to_string();
        assert!(e.contains("f16 block scale"), "{e}");
    }
}
