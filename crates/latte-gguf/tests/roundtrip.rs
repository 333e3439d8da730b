//! Writer tests: exact bytes for a small file, round trips through the reader,
//! and the writer's refusals.
#![cfg(feature = "std")]

mod bytes;

use bytes::*;
use latte_gguf::{GgmlType, Gguf, GgufWriter, MetaArray, MetaValue, Value, ValueType, WriteError};

#[test]
fn writes_the_expected_bytes() {
    let mut w = GgufWriter::new();
    w.add_string("general.architecture", "latte").unwrap();
    w.add_u32("latte.vocab_size", 11).unwrap();
    let a: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    w.add_tensor("a", &[4], GgmlType::F32, a).unwrap();
    w.add_tensor(
        "b",
        &[2, 2],
        GgmlType::F16,
        vec![0x00, 0x3c, 0x00, 0x3c, 0x00, 0x3c, 0x00, 0x3c],
    )
    .unwrap();
    assert_eq!(w.to_bytes(), valid().0);
}

#[test]
fn round_trip_all_value_types_and_tensors() {
    let mut w = GgufWriter::new();
    let scalars = [
        ("u8", MetaValue::U8(200)),
        ("i8", MetaValue::I8(-100)),
        ("u16", MetaValue::U16(60_000)),
        ("i16", MetaValue::I16(-30_000)),
        ("u32", MetaValue::U32(4_000_000_000)),
        ("i32", MetaValue::I32(-2_000_000_000)),
        ("f32", MetaValue::F32(1e-6)),
        ("bool", MetaValue::Bool(true)),
        ("str", MetaValue::String("héllo".into())),
        ("u64", MetaValue::U64(u64::MAX)),
        ("i64", MetaValue::I64(i64::MIN)),
        ("f64", MetaValue::F64(-0.125)),
    ];
    for (k, v) in scalars.clone() {
        w.add(k, v).unwrap();
    }
    w.add(
        "a.f32",
        MetaValue::Array(MetaArray::F32(vec![0.5, -1.5, 3.25])),
    )
    .unwrap();
    w.add(
        "a.str",
        MetaValue::Array(MetaArray::String(vec!["x".into(), "".into(), "yz".into()])),
    )
    .unwrap();
    w.add(
        "a.bool",
        MetaValue::Array(MetaArray::Bool(vec![true, false])),
    )
    .unwrap();
    w.add("a.i16", MetaValue::Array(MetaArray::I16(vec![-1, 2])))
        .unwrap();
    w.add("general.alignment", MetaValue::U32(64)).unwrap();

    let m: Vec<u8> = (0..6u8).flat_map(|i| f32::from(i).to_le_bytes()).collect();
    w.add_tensor("m", &[3, 2], GgmlType::F32, m.clone())
        .unwrap();
    let q = vec![7u8; 2 * 34];
    w.add_tensor("q", &[32, 2], GgmlType::Q8_0, q.clone())
        .unwrap();
    let v = [1u8; 2];
    w.add_tensor("v", &[1], GgmlType::F16, &v[..]).unwrap();

    let bytes = w.to_bytes();
    assert_eq!(bytes, w.to_bytes(), "output is deterministic");
    let g = Gguf::parse(&bytes).expect("writer output parses");
    assert_eq!(g.alignment(), 64);
    assert_eq!(g.data_offset() % 64, 0);

    let expected: Vec<(&str, Value)> = vec![
        ("u8", Value::U8(200)),
        ("i8", Value::I8(-100)),
        ("u16", Value::U16(60_000)),
        ("i16", Value::I16(-30_000)),
        ("u32", Value::U32(4_000_000_000)),
        ("i32", Value::I32(-2_000_000_000)),
        ("f32", Value::F32(1e-6)),
        ("bool", Value::Bool(true)),
        ("str", Value::String("héllo")),
        ("u64", Value::U64(u64::MAX)),
        ("i64", Value::I64(i64::MIN)),
        ("f64", Value::F64(-0.125)),
    ];
    let got: Vec<(&str, Value)> = g.metadata().take(12).collect();
    assert_eq!(got, expected);
    let keys: Vec<&str> = g.metadata().map(|(k, _)| k).skip(12).collect();
    assert_eq!(
        keys,
        ["a.f32", "a.str", "a.bool", "a.i16", "general.alignment"]
    );
    assert_eq!(
        g.get_f32_array("a.f32").unwrap().iter().collect::<Vec<_>>(),
        [0.5, -1.5, 3.25]
    );
    let strs: Vec<&str> = g
        .get_array("a.str")
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(strs, ["x", "", "yz"]);
    let bools: Vec<Value> = g.get_array("a.bool").unwrap().iter().collect();
    assert_eq!(bools, [Value::Bool(true), Value::Bool(false)]);
    let shorts: Vec<Value> = g.get_array("a.i16").unwrap().iter().collect();
    assert_eq!(shorts, [Value::I16(-1), Value::I16(2)]);
    assert_eq!(g.get_array("a.i16").unwrap().elem_type(), ValueType::I16);

    let t: Vec<_> = g.tensors().collect();
    assert_eq!(t.len(), 3);
    assert_eq!(
        (t[0].name, t[0].rows(), t[0].cols(), t[0].data),
        ("m", 2, 3, &m[..])
    );
    assert_eq!(
        (t[1].name, t[1].ty, t[1].offset, t[1].data),
        ("q", GgmlType::Q8_0, 64, &q[..])
    );
    assert_eq!((t[2].name, t[2].offset, t[2].data), ("v", 192, &v[..]));
    assert_eq!(bytes.len() as u64, g.data_offset() + 256);
}

#[test]
fn write_to_a_file() {
    let mut w = GgufWriter::new();
    w.add_tensor("x", &[2], GgmlType::F32, vec![0u8; 8])
        .unwrap();
    let path = std::env::temp_dir().join(format!("latte-gguf-test-{}.gguf", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    w.write_to(std::io::BufWriter::new(file)).unwrap();
    let back = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(back, w.to_bytes());
    assert_eq!(
        Gguf::parse(&back).unwrap().tensor("x").unwrap().data,
        &[0u8; 8]
    );
}

#[test]
fn refusals() {
    let mut w = GgufWriter::new();
    w.add_u32("k", 1).unwrap();
    assert_eq!(w.add_u32("k", 2), Err(WriteError::DuplicateKey("k".into())));
    assert!(matches!(
        w.add_u32("general.alignment", 48),
        Err(WriteError::BadAlignment(_))
    ));
    assert!(matches!(
        w.add_u64("general.alignment", 64),
        Err(WriteError::BadAlignment(_))
    ));
    assert_eq!(w.alignment(), 32);
    let shape = |r: Result<(), WriteError>| match r {
        Err(WriteError::BadShape { reason, .. }) => reason,
        other => panic!("expected BadShape, got {other:?}"),
    };
    shape(w.add_tensor("t", &[], GgmlType::F32, vec![]));
    shape(w.add_tensor("t", &[1, 1, 1, 1, 1], GgmlType::F32, vec![0; 4]));
    shape(w.add_tensor("t", &[2, 0], GgmlType::F32, vec![]));
    shape(w.add_tensor("t", &[16], GgmlType::Q4_0, vec![0; 9]));
    shape(w.add_tensor("t", &[1 << 40, 1 << 40], GgmlType::F32, vec![]));
    assert_eq!(
        w.add_tensor("t", &[3], GgmlType::F32, vec![0; 8]),
        Err(WriteError::DataLength {
            name: "t".into(),
            expected: 12,
            actual: 8
        })
    );
    w.add_tensor("t", &[2], GgmlType::F32, vec![0; 8]).unwrap();
    assert_eq!(
        w.add_tensor("t", &[2], GgmlType::F32, vec![0; 8]),
        Err(WriteError::DuplicateTensor("t".into()))
    );
    // Nothing refused reached the output.
    let bytes = w.to_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!((g.kv_count(), g.tensor_count()), (1, 1));
}
