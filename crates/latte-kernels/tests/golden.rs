//! The quantizers against values computed elsewhere: `tests/data/quant_golden.json`
//! (written by `gen_quant_golden.py` with the `gguf` Python package, a numpy
//! port of ggml's reference quantizers), and a few blocks worked out by hand.

use latte_kernels::{
    blocks_as_bytes, cast_q4_0, cast_q8_0, dequantize_row_q4_0, dequantize_row_q8_0,
    quantize_row_q4_0, quantize_row_q8_0, BlockQ4_0, BlockQ8_0, KernelPath,
};
use serde_json::Value;

const GOLDEN: &str = include_str!("data/quant_golden.json");

struct Row {
    name: String,
    x: Vec<f32>,
    q8_0: Vec<u8>,
    q4_0: Vec<u8>,
    q8_0_dequant: Vec<u32>,
    q4_0_dequant: Vec<u32>,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_u64().unwrap() as u32)
        .collect()
}

fn rows() -> Vec<Row> {
    let doc: Value = serde_json::from_str(GOLDEN).unwrap();
    let rows: Vec<Row> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Row {
            name: r["name"].as_str().unwrap().to_string(),
            x: u32s(&r["x"]).into_iter().map(f32::from_bits).collect(),
            q8_0: unhex(r["q8_0"].as_str().unwrap()),
            q4_0: unhex(r["q4_0"].as_str().unwrap()),
            q8_0_dequant: u32s(&r["q8_0_dequant"]),
            q4_0_dequant: u32s(&r["q4_0_dequant"]),
        })
        .collect();
    assert!(rows.len() >= 10, "golden file lost rows");
    rows
}

/// Block bytes copied into 2-aligned storage.
fn aligned(bytes: &[u8]) -> Vec<u16> {
    let mut v = vec![0u16; bytes.len().div_ceil(2)];
    bytemuck::cast_slice_mut::<u16, u8>(&mut v)[..bytes.len()].copy_from_slice(bytes);
    v
}

#[test]
fn q8_0_quantizer_matches_gguf_python() {
    for row in rows() {
        let mut blocks = vec![BlockQ8_0::default(); row.x.len() / 32];
        quantize_row_q8_0(&row.x, &mut blocks);
        assert_eq!(blocks_as_bytes(&blocks), &row.q8_0[..], "row {}", row.name);
    }
}

#[test]
fn q4_0_quantizer_matches_gguf_python() {
    for row in rows() {
        let mut blocks = vec![BlockQ4_0::default(); row.x.len() / 32];
        quantize_row_q4_0(&row.x, &mut blocks);
        assert_eq!(blocks_as_bytes(&blocks), &row.q4_0[..], "row {}", row.name);
    }
}

/// The vectorized activation quantizer of every available path too.
#[test]
fn every_path_quantizes_q8_0_like_gguf_python() {
    for k in KernelPath::ALL.iter().filter_map(|p| p.kernels()) {
        for row in rows() {
            let mut blocks = vec![BlockQ8_0::default(); row.x.len() / 32];
            k.quantize_q8_0(&row.x, &mut blocks);
            assert_eq!(
                blocks_as_bytes(&blocks),
                &row.q8_0[..],
                "{:?} row {}",
                k.path(),
                row.name
            );
        }
    }
}

fn same_value(a: f32, b: u32) -> bool {
    // NaN payloads differ between CPUs (x86 makes negative NaNs); any NaN matches.
    a.to_bits() == b || (a.is_nan() && f32::from_bits(b).is_nan())
}

#[test]
fn dequantizers_match_gguf_python() {
    for row in rows() {
        let n = row.x.len();
        let s8 = aligned(&row.q8_0);
        let b8 = cast_q8_0(&bytemuck::cast_slice(&s8)[..row.q8_0.len()]).unwrap();
        let mut y = vec![0.0; n];
        dequantize_row_q8_0(b8, &mut y);
        for (i, (&got, &want)) in y.iter().zip(&row.q8_0_dequant).enumerate() {
            assert!(
                same_value(got, want),
                "q8_0 row {} [{i}]: {got} vs {}",
                row.name,
                f32::from_bits(want)
            );
        }
        let s4 = aligned(&row.q4_0);
        let b4 = cast_q4_0(&bytemuck::cast_slice(&s4)[..row.q4_0.len()]).unwrap();
        dequantize_row_q4_0(b4, &mut y);
        for (i, (&got, &want)) in y.iter().zip(&row.q4_0_dequant).enumerate() {
            assert!(
                same_value(got, want),
                "q4_0 row {} [{i}]: {got} vs {}",
                row.name,
                f32::from_bits(want)
            );
        }
    }
}

/// Worked by hand from ggml's rules: amax = 127 gives d = 1 (f16 0x3C00), id = 1;
/// roundf rounds halves away from zero (banker's rounding would give 2, -2, 0).
#[test]
fn q8_0_hand_computed_block() {
    let mut x = [0.0f32; 32];
    x[..8].copy_from_slice(&[127.0, 2.5, -2.5, 0.5, -0.5, 1.49, -126.5, 3.5000002]);
    let mut b = [BlockQ8_0::default()];
    quantize_row_q8_0(&x, &mut b);
    assert_eq!(b[0].d, 0x3C00);
    let mut want = [0i8; 32];
    want[..8].copy_from_slice(&[127, 3, -3, 1, -1, 1, -127, 4]);
    assert_eq!(b[0].qs, want);
}

/// Worked by hand: the largest magnitude is -8 (first), d = -8 / -8 = 1, id = 1,
/// q = min(15, trunc(x + 8.5)); value j in the low nibble of qs[j % 16] for
/// j < 16, the high nibble for j >= 16.
#[test]
fn q4_0_hand_computed_block() {
    let mut x = [0.0f32; 32];
    x[..6].copy_from_slice(&[-8.0, 7.5, 7.4, -0.5, 0.5, 8.0]);
    x[16] = -7.6; // 0.9 -> 0
    x[17] = 2.49; // 10.99 -> 10
    x[31] = -1.5; // 7.0 -> 7
    let mut b = [BlockQ4_0::default()];
    quantize_row_q4_0(&x, &mut b);
    assert_eq!(b[0].d, 0x3C00);
    let lo = [0u8, 15, 15, 8, 9, 15, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8];
    let hi = [0u8, 10, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 7];
    let want: [u8; 16] = core::array::from_fn(|j| lo[j] | hi[j] << 4);
    assert_eq!(b[0].qs, want);
    // The sign of the scale follows the first largest-magnitude value.
    let mut y = [1.0f32; 32];
    y[4] = 3.0;
    y[9] = -3.0;
    quantize_row_q4_0(&y, &mut b);
    // d = 3 / -8 = -0.375 = -1.5 * 2^-2: f16 sign 1, exponent 13, mantissa 0x200.
    assert_eq!(b[0].d, 0xB600);
}
