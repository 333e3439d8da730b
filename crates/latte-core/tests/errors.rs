//! Every load and run failure is a typed error, never a panic.

mod common;

use common::{as_bytes, tiny_lm, GgmlType, GgufParts, MetaValue};
use latte_core::{Config, Error, Model, Position, Session, TensorName, MAX_LAYERS};

fn load(parts: &GgufParts) -> Result<(), Error> {
    let buf = parts.to_aligned();
    Model::from_gguf(as_bytes(&buf)).map(|_| ())
}

fn parts() -> GgufParts {
    GgufParts::new(&tiny_lm(), GgmlType::F32)
}

#[test]
fn the_unmodified_file_loads() {
    assert_eq!(load(&parts()), Ok(()));
}

#[test]
fn session_buffers_too_small() {
    let m = tiny_lm();
    let layers = m.layer_weights();
    let model = Model::from_parts(m.config, m.weights(&layers)).unwrap();
    let (ns, nc) = (model.state_len(), model.scratch_len());
    assert_eq!(model.state_bytes(), 4 * ns);
    assert_eq!(model.scratch_bytes(), 4 * nc);
    let mut state = vec![0.0f32; ns];
    let mut scratch = vec![0.0f32; nc];
    let e = Session::new(&model, &mut state[..ns - 1], &mut scratch).unwrap_err();
    assert_eq!(
        e,
        Error::StateTooSmall {
            need: ns,
            got: ns - 1
        }
    );
    let e = Session::new(&model, &mut state, &mut scratch[..nc - 1]).unwrap_err();
    assert_eq!(
        e,
        Error::ScratchTooSmall {
            need: nc,
            got: nc - 1
        }
    );
    let e = Session::new(&model, &mut [], &mut []).unwrap_err();
    assert_eq!(e, Error::StateTooSmall { need: ns, got: 0 });
    assert!(Session::new(&model, &mut state, &mut scratch).is_ok());
}

#[test]
fn token_out_of_range_and_empty_prompt() {
    let m = tiny_lm();
    let layers = m.layer_weights();
    let model = Model::from_parts(m.config, m.weights(&layers)).unwrap();
    let mut state = vec![0.0f32; model.state_len()];
    let mut scratch = vec![0.0f32; model.scratch_len()];
    let mut s = Session::new(&model, &mut state, &mut scratch).unwrap();
    assert_eq!(
        s.step(11).unwrap_err(),
        Error::TokenOutOfRange {
            token: 11,
            vocab_size: 11
        }
    );
    assert_eq!(
        s.step(u32::MAX).unwrap_err(),
        Error::TokenOutOfRange {
            token: u32::MAX,
            vocab_size: 11
        }
    );
    assert_eq!(s.position(), 0);
    assert_eq!(s.feed(&[]).unwrap_err(), Error::EmptyPrompt);
    // A bad token anywhere in a prompt is reported before anything is fed.
    assert_eq!(
        s.feed(&[1, 2, 99, 3]).unwrap_err(),
        Error::TokenOutOfRange {
            token: 99,
            vocab_size: 11
        }
    );
    assert_eq!(s.position(), 0);
    assert!(s
        .state()
        .iter()
        .all(|&v| v == 0.0 || v == f32::NEG_INFINITY));
    assert!(s.step(10).is_ok());
}

#[test]
fn missing_tensor() {
    for name in [
        "blk.1.attn_k.weight",
        "token_embd.weight",
        "output.bias",
        "blk.0.ffn_norm.bias",
    ] {
        let mut p = parts();
        p.remove_tensor(name);
        let e = load(&p).unwrap_err();
        assert!(
            matches!(e, Error::MissingTensor { tensor } if tensor.to_string() == name),
            "{name}: {e:?}"
        );
    }
}

#[test]
fn wrong_shape() {
    // attn_q with L and D swapped (Flax layout by mistake).
    let mut p = parts();
    p.tensor_mut("blk.0.attn_q.weight").ne = vec![6, 8];
    let e = load(&p).unwrap_err();
    assert_eq!(
        e,
        Error::TensorShape {
            tensor: TensorName::block(0, "attn_q.weight"),
            expected: [8, 6],
            got: [6, 8, 1, 1]
        }
    );
    assert!(e.to_string().contains("blk.0.attn_q.weight"), "{e}");
    // A bias of the wrong length.
    let mut p = parts();
    let t = p.tensor_mut("blk.1.ffn_up.bias");
    t.ne = vec![31];
    t.data.truncate(31 * 4);
    assert!(
        matches!(load(&p), Err(Error::TensorShape { tensor, .. }) if tensor == TensorName::block(1, "ffn_up.bias"))
    );
    // A 3-d tensor where a matrix belongs.
    let mut p = parts();
    p.tensor_mut("output.weight").ne = vec![8, 11, 1];
    assert_eq!(load(&p), Ok(()), "trailing 1 dimensions are the same shape");
    p.tensor_mut("output.weight").ne = vec![8, 1, 11];
    assert!(matches!(load(&p), Err(Error::TensorShape { .. })));
}

#[test]
fn wrong_architecture() {
    let mut p = parts();
    p.set("general.architecture", MetaValue::String("llama".into()));
    assert_eq!(load(&p), Err(Error::WrongArchitecture));
    p.remove_key("general.architecture");
    assert_eq!(load(&p), Err(Error::WrongArchitecture));
}

#[test]
fn non_f32_norm_and_bias() {
    let mut p = parts();
    let t = p.tensor_mut("blk.0.attn_norm.weight");
    t.ty = GgmlType::F16;
    t.data.truncate(16);
    assert_eq!(
        load(&p),
        Err(Error::NotF32 {
            tensor: TensorName::block(0, "attn_norm.weight")
        })
    );
    let mut p = parts();
    let t = p.tensor_mut("output.bias");
    t.ty = GgmlType::F16;
    t.data.truncate(22);
    assert_eq!(
        load(&p),
        Err(Error::NotF32 {
            tensor: TensorName::global("output.bias")
        })
    );
}

#[test]
fn quantised_matrix_types() {
    // Q8_0 (type 8): 32 elements per 34-byte block; D x F = 8 x 32 has one
    // block per row, so it loads.
    let mut p = parts();
    let t = p.tensor_mut("blk.0.ffn_down.weight");
    t.ty = GgmlType::Q8_0;
    t.data = vec![0u8; 8 * 34];
    assert_eq!(load(&p), Ok(()));
    // Q4_1 (type 3, 20-byte blocks) is a GGUF type the core does not run.
    let mut p = parts();
    let t = p.tensor_mut("blk.0.ffn_down.weight");
    t.ty = GgmlType::Q4_1;
    t.data = vec![0u8; 8 * 20];
    assert_eq!(
        load(&p),
        Err(Error::UnsupportedTensorType {
            tensor: TensorName::block(0, "ffn_down.weight"),
            ggml_type: 3
        })
    );
}

#[test]
fn metadata_errors() {
    let mut p = parts();
    p.remove_key("latte.latent_count");
    assert_eq!(
        load(&p),
        Err(Error::MissingMetadata {
            key: "latte.latent_count"
        })
    );
    let mut p = parts();
    p.set("latte.embedding_length", MetaValue::U64(8));
    assert_eq!(
        load(&p),
        Err(Error::MetadataType {
            key: "latte.embedding_length"
        })
    );
    let mut p = parts();
    p.set("latte.position_encoding", MetaValue::String("rope".into()));
    assert_eq!(load(&p), Err(Error::UnknownPositionEncoding));
    let mut p = parts();
    p.set("latte.attention.layer_norm_epsilon", MetaValue::F32(-1.0));
    assert_eq!(load(&p), Err(Error::InvalidLayerNormEpsilon));
    let mut p = parts();
    p.set("latte.vocab_size", MetaValue::U32(0));
    assert_eq!(
        load(&p),
        Err(Error::ZeroSize {
            key: "latte.vocab_size"
        })
    );
    let mut p = parts();
    p.set("latte.attention.head_count", MetaValue::U32(3));
    assert_eq!(
        load(&p),
        Err(Error::HeadsDoNotDivideWidth {
            d_model: 8,
            n_heads: 3
        })
    );
    let mut p = parts();
    p.set("latte.attention.head_count", MetaValue::U32(4));
    assert_eq!(
        load(&p),
        Err(Error::HeadsDoNotDivideLatents {
            n_latents: 6,
            n_heads: 4
        })
    );
    let mut p = parts();
    p.set("latte.block_count", MetaValue::U32(MAX_LAYERS as u32 + 1));
    assert_eq!(
        load(&p),
        Err(Error::TooManyLayers {
            n_layers: MAX_LAYERS + 1,
            max: MAX_LAYERS
        })
    );
    // Hyper-parameters that would overflow the buffer sizes.
    let mut p = parts();
    p.set("latte.latent_count", MetaValue::U32(u32::MAX - 1));
    p.set("latte.attention.head_count", MetaValue::U32(2));
    p.set("latte.embedding_length", MetaValue::U32(u32::MAX - 1));
    let e = load(&p).unwrap_err();
    assert!(
        matches!(e, Error::SizeOverflow | Error::TensorShape { .. }),
        "{e:?}"
    );
}

#[test]
fn damaged_or_misaligned_bytes() {
    let buf = parts().to_aligned();
    let bytes = as_bytes(&buf);
    // Truncated or empty files are GGUF errors.
    assert!(matches!(
        Model::from_gguf(&bytes[..bytes.len() / 2]),
        Err(Error::Gguf(_))
    ));
    assert!(matches!(Model::from_gguf(&[]), Err(Error::Gguf(_))));
    // The same file one byte off 4-byte alignment.
    let mut shifted = vec![0u32; buf.0.len() + 1];
    let dst: &mut [u8] = bytemuck::cast_slice_mut(&mut shifted);
    dst[1..1 + bytes.len()].copy_from_slice(bytes);
    let view = &bytemuck::cast_slice::<u32, u8>(&shifted)[1..1 + bytes.len()];
    let e = Model::from_gguf(view).unwrap_err();
    assert!(matches!(e, Error::Misaligned { align: 4, .. }), "{e:?}");
    assert!(e.to_string().contains("align"), "{e}");
}

#[test]
fn from_parts_checks_shapes_and_layer_count() {
    let m = tiny_lm();
    let layers = m.layer_weights();
    let e = Model::from_parts(m.config, m.weights(&layers[..1])).unwrap_err();
    assert_eq!(
        e,
        Error::BufferLength {
            what: "weights.layers (one entry per layer)",
            need: 2,
            got: 1
        }
    );
    let bad = Config {
        d_ff: 16,
        ..m.config
    };
    let e = Model::from_parts(bad, m.weights(&layers)).unwrap_err();
    assert!(
        matches!(e, Error::TensorShape { tensor, .. } if tensor == TensorName::block(0, "ffn_up.weight")),
        "{e:?}"
    );
    let vapor = Config {
        position: Position::Vapor,
        ..m.config
    };
    let e = Model::from_parts(vapor, m.weights(&layers)).unwrap_err();
    assert_eq!(
        e,
        Error::VaporFrequencyCount {
            expected: 2,
            got: 0
        }
    );
}

#[test]
fn every_error_displays_a_message() {
    let samples = [
        Error::WrongArchitecture,
        Error::EmptyPrompt,
        Error::StateTooSmall { need: 3, got: 1 },
        Error::TokenOutOfRange {
            token: 5,
            vocab_size: 2,
        },
        Error::MissingTensor {
            tensor: TensorName::block(3, "attn_v.weight"),
        },
    ];
    for e in samples {
        assert!(e.to_string().len() > 10);
    }
    assert!(Error::MissingTensor {
        tensor: TensorName::block(3, "attn_v.weight")
    }
    .to_string()
    .contains("blk.3.attn_v.weight"));
}
