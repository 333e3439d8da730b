//! Deterministic benchmark inputs, shared by the kernel benches (`#[path]`).
#![allow(dead_code)]

use latte_kernels::{quantize_row_q4_0, quantize_row_q8_0, BlockQ4_0, BlockQ8_0};

/// Deterministic values in [-1, 1).
pub fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// `v` quantized to `Q8_0` (`v.len() / 32` blocks).
pub fn q8(v: &[f32]) -> Vec<BlockQ8_0> {
    let mut b = vec![BlockQ8_0::default(); v.len() / 32];
    quantize_row_q8_0(v, &mut b);
    b
}

/// `v` quantized to `Q4_0` (`v.len() / 32` blocks).
pub fn q4(v: &[f32]) -> Vec<BlockQ4_0> {
    let mut b = vec![BlockQ4_0::default(); v.len() / 32];
    quantize_row_q4_0(v, &mut b);
    b
}
