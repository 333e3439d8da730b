//! Runs one quantized matrix-vector product per kernel path and shape between
//! two calls of `marker`, for counting the instructions it executes under an
//! instruction-level trace (`tools/insn-count.sh` does it with qemu-user on
//! AArch64, where no cycle counter is reachable from this machine).
//!
//!     cargo run --release -p latte-kernels --features std --example insn_count -- PATH FMT ROWS COLS

use std::hint::black_box;

use latte_kernels::{BlockQ4_0, BlockQ8_0, Kernels};

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn latte_insn_marker(tag: u32) -> u32 {
    black_box(tag)
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 {
        eprintln!("usage: insn_count PATH q8_0|q4_0 ROWS COLS");
        std::process::exit(2);
    }
    let k = Kernels::by_name(&args[0]).unwrap_or_else(|| {
        eprintln!(
            "error: kernel path {} is not available on this CPU",
            args[0]
        );
        std::process::exit(2)
    });
    let rows: usize = args[2].parse().expect("ROWS");
    let cols: usize = args[3].parse().expect("COLS");
    assert!(cols.is_multiple_of(32), "COLS must be a multiple of 32");
    let w = values(rows * cols, 3);
    let x = values(cols, 4);
    let s = Kernels::scalar();
    let mut xq = vec![BlockQ8_0::default(); cols / 32];
    s.quantize_q8_0(&x, &mut xq);
    let mut y = vec![0.0f32; rows];
    match args[1].as_str() {
        "q8_0" => {
            let mut wq = vec![BlockQ8_0::default(); rows * cols / 32];
            for (r, row) in w.chunks_exact(cols).enumerate() {
                s.quantize_q8_0(row, &mut wq[r * cols / 32..(r + 1) * cols / 32]);
            }
            k.matvec_q8_0(&wq, rows, cols, &xq, &mut y);
            latte_insn_marker(1);
            k.matvec_q8_0(black_box(&wq), rows, cols, black_box(&xq), &mut y);
            latte_insn_marker(2);
        }
        "q4_0" => {
            let mut wq = vec![BlockQ4_0::default(); rows * cols / 32];
            for (r, row) in w.chunks_exact(cols).enumerate() {
                latte_kernels::quantize_row_q4_0(row, &mut wq[r * cols / 32..(r + 1) * cols / 32]);
            }
            k.matvec_q4_0(&wq, rows, cols, &xq, &mut y);
            latte_insn_marker(1);
            k.matvec_q4_0(black_box(&wq), rows, cols, black_box(&xq), &mut y);
            latte_insn_marker(2);
        }
        f => {
            eprintln!("error: unknown format {f}");
            std::process::exit(2)
        }
    }
    println!("{}", y.iter().map(|v| v.to_bits() as u64).sum::<u64>());
}
