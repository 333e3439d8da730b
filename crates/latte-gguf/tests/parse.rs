//! Reader tests on hand-built bytes: the good file, then one test per error variant.

mod bytes;

use bytes::*;
use latte_gguf::{Error, GgmlType, Gguf, Value, ValueType, MAX_KVS, MAX_NAME_LEN, MAX_TENSORS};

fn parse(b: &Bytes) -> Result<Gguf<'_>, Error> {
    Gguf::parse(&b.0)
}

#[test]
fn valid_file_reads_back() {
    let b = valid();
    let g = parse(&b).expect("valid file");
    assert_eq!(g.version(), 3);
    assert_eq!(g.alignment(), 32);
    assert_eq!(g.kv_count(), 2);
    assert_eq!(g.tensor_count(), 2);
    // 24 header + KV 1 (8+20 key, 4 type, 8+5 value) + KV 2 (8+16, 4, 4)
    // + tensor a (8+1, 4, 8, 4, 8) + tensor b (8+1, 4, 16, 4, 8) = 175 -> 192.
    assert_eq!(g.data_offset(), 192);
    assert_eq!(g.get_str("general.architecture"), Ok("latte"));
    assert_eq!(g.get_u32("latte.vocab_size"), Ok(11));
    assert_eq!(g.get("latte.vocab_size"), Some(Value::U32(11)));
    assert_eq!(g.get("absent"), None);
    let keys: Vec<&str> = g.metadata().map(|(k, _)| k).collect();
    assert_eq!(keys, ["general.architecture", "latte.vocab_size"]);

    let names: Vec<&str> = g.tensors().map(|t| t.name).collect();
    assert_eq!(names, ["a", "b"]);
    let a = g.tensor("a").expect("a");
    assert_eq!(
        (a.ty, a.n_dims, a.ne, a.offset),
        (GgmlType::F32, 1, [4, 1, 1, 1], 0)
    );
    assert_eq!((a.rows(), a.cols(), a.n_elements()), (1, 4, 4));
    assert_eq!(a.shape(), &[4]);
    let floats: Vec<f32> = a
        .data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(floats, [1.0, 2.0, 3.0, 4.0]);
    let t = g.tensor("b").expect("b");
    assert_eq!(
        (t.ty, t.rows(), t.cols(), t.offset),
        (GgmlType::F16, 2, 2, 32)
    );
    assert_eq!(t.data, &[0x00, 0x3c, 0x00, 0x3c, 0x00, 0x3c, 0x00, 0x3c]);
    assert!(g.tensor("c").is_none());
}

#[test]
fn every_truncation_is_an_error() {
    let b = valid();
    // Tensor b's data ends at 192 + 32 + 8; only the final padding may go.
    for n in 0..192 + 40 {
        assert!(
            Gguf::parse(&b.0[..n]).is_err(),
            "prefix of {n} bytes parsed"
        );
    }
    assert!(Gguf::parse(&b.0[..192 + 40]).is_ok());
}

#[test]
fn ggml_type_table() {
    // Block sizes and block bytes of ggml's formats.
    let table = [
        (0, "F32", 1, 4),
        (1, "F16", 1, 2),
        (2, "Q4_0", 32, 18),
        (3, "Q4_1", 32, 20),
        (6, "Q5_0", 32, 22),
        (7, "Q5_1", 32, 24),
        (8, "Q8_0", 32, 34),
        (9, "Q8_1", 32, 36),
    ];
    for (id, name, block, size) in table {
        let t = GgmlType::from_u32(id).expect(name);
        assert_eq!(
            (t.id(), t.name(), t.block_size(), t.type_size()),
            (id, name, block, size)
        );
    }
    for id in [4, 5, 10, 30, u32::MAX] {
        assert_eq!(GgmlType::from_u32(id), None);
    }
    assert_eq!(GgmlType::Q8_0.bytes_for(64), Some(68));
    assert_eq!(GgmlType::Q8_0.bytes_for(33), None);
    assert_eq!(GgmlType::F32.bytes_for(u64::MAX), None);
}

#[test]
fn arrays_and_scalars() {
    let b = Bytes::header(0, 5)
        // f32 array at an odd offset: the view must not need alignment.
        .str("f")
        .u32(T_ARRAY)
        .u32(T_F32)
        .u64(3)
        .f32(0.5)
        .f32(-2.0)
        .f32(1e-6)
        .str("s")
        .u32(T_ARRAY)
        .u32(T_STRING)
        .u64(2)
        .str("x")
        .str("yz")
        .str("t")
        .u32(T_BOOL)
        .u8(1)
        .str("u64")
        .u32(T_U64)
        .u64(1 << 40)
        .str("e")
        .u32(T_ARRAY)
        .u32(T_U8)
        .u64(0);
    let g = parse(&b).expect("parses");
    let f = g.get_f32_array("f").expect("f32 array");
    assert_eq!(f.len(), 3);
    assert_eq!(f.iter().collect::<Vec<_>>(), [0.5, -2.0, 1e-6]);
    assert_eq!(f.get(1), Some(-2.0));
    assert_eq!(f.get(3), None);
    let s = g.get_array("s").expect("array");
    assert_eq!(s.elem_type(), ValueType::String);
    let strs: Vec<&str> = s.iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(strs, ["x", "yz"]);
    assert_eq!(g.get_bool("t"), Ok(true));
    assert_eq!(g.get_u64("u64"), Ok(1 << 40));
    assert!(g.get_array("e").expect("empty").is_empty());
    assert_eq!(g.data_offset() % 32, 0);
}

#[test]
fn custom_alignment() {
    let b = Bytes::header(1, 1)
        .kv_u32("general.alignment", 64)
        .tensor("w", &[2], F32, 0)
        .pad(64)
        .f32(7.0)
        .f32(8.0);
    let g = parse(&b).expect("parses");
    assert_eq!(g.alignment(), 64);
    assert_eq!(g.data_offset(), 128);
    assert_eq!(g.tensor("w").expect("w").data.len(), 8);
}

#[test]
fn err_unexpected_end() {
    assert_eq!(
        Gguf::parse(&[]).err(),
        Some(Error::UnexpectedEnd { offset: 0 })
    );
    let b = Bytes::header(0, 1).u64(100).raw(&[b'a'; 20]);
    assert_eq!(parse(&b).err(), Some(Error::UnexpectedEnd { offset: 32 }));
}

#[test]
fn err_bad_magic() {
    let b = Bytes::default().raw(b"GGML").u32(3).u64(0).u64(0);
    assert_eq!(
        parse(&b).err(),
        Some(Error::BadMagic { found: 0x4c4d_4747 })
    );
}

#[test]
fn err_unsupported_version() {
    let b = Bytes::default().raw(b"GGUF").u32(2).u64(0).u64(0);
    assert_eq!(
        parse(&b).err(),
        Some(Error::UnsupportedVersion { found: 2 })
    );
}

#[test]
fn err_too_many_kvs() {
    let b = Bytes::header(0, u64::MAX).raw(&[0; 26]);
    assert_eq!(
        parse(&b).err(),
        Some(Error::TooManyKvs {
            count: u64::MAX,
            max: 2
        })
    );
    // Over the cap although the bytes would be there.
    let mut b = Bytes::header(0, MAX_KVS as u64 + 1);
    for i in 0..=MAX_KVS {
        b = b.kv_u32(&format!("k{i}"), 0);
    }
    let max = MAX_KVS as u64;
    assert_eq!(
        parse(&b).err(),
        Some(Error::TooManyKvs {
            count: max + 1,
            max
        })
    );
}

#[test]
fn err_too_many_tensors() {
    let b = Bytes::header(3, 0).raw(&[0; 64]);
    assert_eq!(
        parse(&b).err(),
        Some(Error::TooManyTensors { count: 3, max: 2 })
    );
    let b = Bytes::header(MAX_TENSORS as u64 + 1, 0).raw(&vec![0; 32 * (MAX_TENSORS + 1)]);
    let max = MAX_TENSORS as u64;
    assert_eq!(
        parse(&b).err(),
        Some(Error::TooManyTensors {
            count: max + 1,
            max
        })
    );
}

#[test]
fn err_string_too_long() {
    let b = Bytes::header(0, 1).u64(MAX_NAME_LEN + 1).raw(&[b'a'; 40]);
    let err = Error::StringTooLong {
        offset: 24,
        len: MAX_NAME_LEN + 1,
        max: MAX_NAME_LEN,
    };
    assert_eq!(parse(&b).err(), Some(err));
}

#[test]
fn err_invalid_utf8() {
    let b = Bytes::header(0, 1)
        .u64(2)
        .raw(&[0xc3, 0x28])
        .u32(T_U8)
        .u8(0);
    assert_eq!(parse(&b).err(), Some(Error::InvalidUtf8 { offset: 32 }));
}

#[test]
fn err_invalid_value_type() {
    let b = Bytes::header(0, 1).str("k").u32(13).u64(0);
    assert_eq!(
        parse(&b).err(),
        Some(Error::InvalidValueType {
            offset: 33,
            found: 13
        })
    );
    let b = Bytes::header(0, 1).str("k").u32(T_ARRAY).u32(99).u64(0);
    assert_eq!(
        parse(&b).err(),
        Some(Error::InvalidValueType {
            offset: 37,
            found: 99
        })
    );
}

#[test]
fn err_nested_array() {
    let b = Bytes::header(0, 1)
        .str("k")
        .u32(T_ARRAY)
        .u32(T_ARRAY)
        .u64(0)
        .raw(&[0; 8]);
    assert_eq!(parse(&b).err(), Some(Error::NestedArray { offset: 37 }));
}

#[test]
fn err_array_too_long() {
    let b = Bytes::header(0, 1)
        .str("k")
        .u32(T_ARRAY)
        .u32(T_U32)
        .u64(3)
        .u32(1)
        .u32(2);
    assert_eq!(
        parse(&b).err(),
        Some(Error::ArrayTooLong { offset: 41, len: 3 })
    );
    let b = Bytes::header(0, 1)
        .str("k")
        .u32(T_ARRAY)
        .u32(T_STRING)
        .u64(u64::MAX / 4);
    assert_eq!(
        parse(&b).err(),
        Some(Error::ArrayTooLong {
            offset: 41,
            len: u64::MAX / 4
        })
    );
}

#[test]
fn err_invalid_bool() {
    let b = Bytes::header(0, 1).str("k").u32(T_BOOL).u8(2);
    assert_eq!(
        parse(&b).err(),
        Some(Error::InvalidBool {
            offset: 37,
            found: 2
        })
    );
    let b = Bytes::header(0, 1)
        .str("k")
        .u32(T_ARRAY)
        .u32(T_BOOL)
        .u64(3)
        .raw(&[0, 1, 255]);
    assert_eq!(
        parse(&b).err(),
        Some(Error::InvalidBool {
            offset: 51,
            found: 255
        })
    );
}

#[test]
fn err_duplicate_key() {
    let b = Bytes::header(0, 3)
        .kv_u32("a", 1)
        .kv_u32("b", 2)
        .kv_str("a", "x");
    assert_eq!(
        parse(&b).err(),
        Some(Error::DuplicateKey {
            first: 0,
            second: 2
        })
    );
}

#[test]
fn err_bad_alignment() {
    for a in [0, 24] {
        let b = Bytes::header(0, 1).kv_u32("general.alignment", a);
        assert_eq!(parse(&b).err(), Some(Error::BadAlignment { alignment: a }));
    }
}

#[test]
fn err_bad_dim_count() {
    for n in [0u32, 5] {
        let b = Bytes::header(1, 0).str("t").u32(n).raw(&[1; 64]);
        assert_eq!(
            parse(&b).err(),
            Some(Error::BadDimCount {
                tensor: 0,
                n_dims: n
            })
        );
    }
}

#[test]
fn err_zero_dimension() {
    let b = Bytes::header(1, 0).tensor("t", &[4, 0], F32, 0).pad(32);
    assert_eq!(
        parse(&b).err(),
        Some(Error::ZeroDimension { tensor: 0, dim: 1 })
    );
}

#[test]
fn err_too_many_elements() {
    // 2^32 * 2^32 elements overflow u64.
    let b = Bytes::header(1, 0)
        .tensor("t", &[1 << 32, 1 << 32], F32, 0)
        .pad(32);
    assert_eq!(parse(&b).err(), Some(Error::TooManyElements { tensor: 0 }));
    // 2^62 F32 elements fit, their 2^64 bytes do not.
    let b = Bytes::header(1, 0).tensor("t", &[1 << 62], F32, 0).pad(32);
    assert_eq!(parse(&b).err(), Some(Error::TooManyElements { tensor: 0 }));
}

#[test]
fn err_unknown_tensor_type() {
    for ty in [4u32, 5, 10, 1000] {
        let b = Bytes::header(1, 0)
            .tensor("t", &[32], ty, 0)
            .pad(32)
            .raw(&[0; 128]);
        assert_eq!(
            parse(&b).err(),
            Some(Error::UnknownTensorType {
                tensor: 0,
                type_id: ty
            })
        );
    }
}

#[test]
fn err_not_block_multiple() {
    let b = Bytes::header(1, 0)
        .tensor("t", &[16, 2], Q4_0, 0)
        .pad(32)
        .raw(&[0; 64]);
    let err = Error::NotBlockMultiple {
        tensor: 0,
        ne0: 16,
        block_size: 32,
    };
    assert_eq!(parse(&b).err(), Some(err));
}

#[test]
fn err_duplicate_tensor_name() {
    let b = Bytes::header(2, 0)
        .tensor("w", &[8], F32, 0)
        .tensor("w", &[8], F32, 32)
        .pad(32)
        .raw(&[0; 64]);
    assert_eq!(
        parse(&b).err(),
        Some(Error::DuplicateTensorName {
            first: 0,
            second: 1
        })
    );
}

#[test]
fn err_misaligned_tensor() {
    let b = Bytes::header(1, 0)
        .tensor("t", &[4], F32, 4)
        .pad(32)
        .raw(&[0; 32]);
    let err = Error::MisalignedTensor {
        tensor: 0,
        offset: 4,
        alignment: 32,
    };
    assert_eq!(parse(&b).err(), Some(err));
}

#[test]
fn err_tensor_out_of_bounds() {
    let b = Bytes::header(1, 0)
        .tensor("t", &[4], F32, 32)
        .pad(32)
        .raw(&[0; 40]);
    // Data section at 64, tensor at 64 + 32 .. 64 + 48, file is 104 bytes.
    let err = Error::TensorOutOfBounds {
        tensor: 0,
        end: 112,
        file_len: 104,
    };
    assert_eq!(parse(&b).err(), Some(err));
    let b = Bytes::header(1, 0)
        .tensor("t", &[4], F32, u64::MAX - 31)
        .pad(32);
    let err = Error::TensorOutOfBounds {
        tensor: 0,
        end: u64::MAX,
        file_len: 64,
    };
    assert_eq!(parse(&b).err(), Some(err));
}

#[test]
fn err_overlapping_tensors() {
    let b = Bytes::header(3, 0)
        .tensor("a", &[4], F32, 0)
        .tensor("b", &[16], F32, 32)
        .tensor("c", &[8], F32, 64)
        .pad(32)
        .raw(&[0; 128]);
    assert_eq!(
        parse(&b).err(),
        Some(Error::OverlappingTensors {
            first: 1,
            second: 2
        })
    );
}

#[test]
fn err_missing_key() {
    let b = valid();
    let g = parse(&b).expect("valid");
    assert_eq!(
        g.get_u32("latte.block_count"),
        Err(Error::MissingKey {
            key: "latte.block_count"
        })
    );
}

#[test]
fn err_wrong_type() {
    let b = valid();
    let g = parse(&b).expect("valid");
    let err = Error::WrongType {
        key: "general.architecture",
        expected: ValueType::U32,
        found: ValueType::String,
    };
    assert_eq!(g.get_u32("general.architecture"), Err(err));
    let err = Error::WrongType {
        key: "latte.vocab_size",
        expected: ValueType::Array,
        found: ValueType::U32,
    };
    assert_eq!(g.get_f32_array("latte.vocab_size").err(), Some(err));
    // general.alignment is checked while parsing.
    let b = Bytes::header(0, 1)
        .str("general.alignment")
        .u32(T_U64)
        .u64(32);
    let err = Error::WrongType {
        key: "general.alignment",
        expected: ValueType::U32,
        found: ValueType::U64,
    };
    assert_eq!(parse(&b).err(), Some(err));
}

#[test]
fn err_wrong_array_type() {
    let b = Bytes::header(0, 1)
        .str("k")
        .u32(T_ARRAY)
        .u32(T_U32)
        .u64(1)
        .u32(5);
    let g = parse(&b).expect("parses");
    let err = Error::WrongArrayType {
        key: "k",
        expected: ValueType::F32,
        found: ValueType::U32,
    };
    assert_eq!(g.get_f32_array("k").err(), Some(err));
}

#[test]
fn messages_say_what_and_what_to_do() {
    let samples = [
        Error::UnexpectedEnd { offset: 7 },
        Error::BadMagic { found: 0 },
        Error::TensorOutOfBounds {
            tensor: 3,
            end: 100,
            file_len: 90,
        },
        Error::MissingKey {
            key: "latte.vocab_size",
        },
    ];
    for e in samples {
        let msg = e.to_string();
        assert!(msg.contains(';') || msg.contains(':'), "{msg}");
        assert!(msg.len() > 40, "{msg}");
    }
    assert!(Error::MissingKey {
        key: "latte.vocab_size"
    }
    .to_string()
    .contains("latte.vocab_size"));
}

/// Random byte flips and truncations of a good file: parsing never panics,
/// and whatever parses can be walked completely.
#[test]
fn mutated_files_never_panic() {
    let good = valid().0;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut parsed = 0;
    for _ in 0..20_000 {
        let mut b = good.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % b.len() as u64) as usize;
            b[i] = next() as u8;
        }
        b.truncate(b.len() - (next() % 8) as usize);
        if let Ok(g) = Gguf::parse(&b) {
            parsed += 1;
            let kvs = g.metadata().count();
            assert_eq!(kvs, g.kv_count());
            for (_, v) in g.metadata() {
                if let Some(a) = v.as_array() {
                    assert_eq!(a.iter().count(), a.len());
                }
            }
            let tensors: Vec<_> = g.tensors().collect();
            assert_eq!(tensors.len(), g.tensor_count());
            for t in tensors {
                assert_eq!(Some(t.data.len() as u64), t.ty.bytes_for(t.n_elements()));
            }
        }
    }
    // Flips in the data section keep the file valid; the walk above ran.
    assert!(parsed > 100, "only {parsed} mutated files parsed");
}

/// The largest accepted tensor count still parses (the name and overlap
/// checks are quadratic in it).
#[test]
fn max_tensor_count_parses() {
    let mut b = Bytes::header(MAX_TENSORS as u64, 0);
    for i in 0..MAX_TENSORS {
        b = b.tensor(&format!("blk.{i}.weight"), &[8], F32, 32 * i as u64);
    }
    let b = b.pad(32).raw(&vec![0; 32 * MAX_TENSORS]);
    let start = std::time::Instant::now();
    let g = parse(&b).expect("parses");
    assert_eq!(g.tensors().count(), MAX_TENSORS);
    eprintln!("{MAX_TENSORS} tensors parsed in {:?}", start.elapsed());
}
