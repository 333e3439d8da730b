//! Minimum-of-many timings of the quantized kernels, in cycles per 32-value
//! block, for a shared machine where criterion's means move with the load:
//! the minimum over many repetitions is the least disturbed run, and the
//! paths are timed one after the other at each size, so a busy minute hits
//! them alike. `BENCHMARKS.md` has the results and how `Kernels::best` was
//! chosen from them.
//!
//!     cargo bench -p latte-kernels --bench minrep            # matvec shapes and dot products
//!     cargo bench -p latte-kernels --bench minrep -- tsc     # dot products timed like ggml's test-quantize-perf
//!
//! Cycles are time multiplied by a clock measured in the same run (a chain
//! of dependent adds, one cycle each; see `benches/dot.rs`). The `tsc` mode
//! reads the time-stamp counter around single calls instead, exactly as
//! ggml's `test-quantize-perf` does, so that the two can be compared number
//! for number (TSC ticks, not core cycles); `tools/ggml-compare.sh` builds and
//! runs both in one go.

#[path = "common/clock.rs"]
mod clock;
#[path = "common/data.rs"]
mod data;

use clock::{clock_ghz, min_time};
use data::{q4, q8, values};

use std::hint::black_box;

use latte_kernels::{KernelPath, Kernels};

/// The SIMD paths of this CPU.
fn paths() -> Vec<Kernels> {
    KernelPath::ALL
        .iter()
        .filter(|p| **p != KernelPath::Scalar)
        .filter_map(|p| p.kernels())
        .collect()
}

/// Dot products timed like ggml's `test-quantize-perf`: the time-stamp
/// counter read (`rdtscp`) around one call, minimum and mean over 20,000
/// calls, in TSC ticks per 32 values.
#[cfg(target_arch = "x86_64")]
fn tsc_mode() {
    for n in [4096usize, 16384, 65536] {
        let nb = n / 32;
        let (w, x) = (values(n, 1), values(n, 2));
        let (w8, w4, x8) = (q8(&w), q4(&w), q8(&x));
        for k in paths() {
            for fmt in ["q8_0", "q4_0"] {
                let (mut min, mut total) = (u64::MAX, 0u64);
                for i in 0..20_005 {
                    let mut aux = 0u32;
                    // SAFETY: `rdtscp` has no preconditions on x86-64.
                    let a = unsafe { std::arch::x86_64::__rdtscp(&mut aux) };
                    if fmt == "q8_0" {
                        black_box(k.vec_dot_q8_0_q8_0(n, black_box(&w8), black_box(&x8)));
                    } else {
                        black_box(k.vec_dot_q4_0_q8_0(n, black_box(&w4), black_box(&x8)));
                    }
                    // SAFETY: as above.
                    let b = unsafe { std::arch::x86_64::__rdtscp(&mut aux) };
                    if i >= 5 {
                        min = min.min(b - a);
                        total += b - a;
                    }
                }
                println!(
                    "tsc {fmt} {:<11} {n:>6} values: min {:.2}  mean {:.2} TSC ticks / 32 values",
                    k.path().name(),
                    min as f64 / nb as f64,
                    total as f64 / 20_000.0 / nb as f64
                );
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // useful either: only a bare `tsc` selects the other mode.
    if args.iter().any(|a| a == "tsc") {
        #[cfg(target_arch = "x86_64")]
        tsc_mode();
        return;
    }
    if args.iter().all(|a| a != "--bench") {
        // Built and run as a test (`cargo test --benches`): nothing to time.
        return;
    }
    let ghz = clock_ghz();
    if args.iter().any(|a| a == "math") {
        math(ghz);
        return;
    }
    println!("clock {ghz:.2} GHz (dependent-add chain); cycles per 32-value block:");
    let paths = paths();
    let shapes = [
        (128usize, 128usize),
        (256, 128),
        (512, 128),
        (128, 256),
        (128, 384),
        (128, 512),
        (512, 512),
        (256, 1024),
        (192, 384),
        (384, 384),
        (1536, 384),
        (384, 1536),
        (4096, 4096),
    ];
    for (rows, cols) in shapes {
        let (w, x) = (values(rows * cols, 3), values(cols, 4));
        let (w8, w4, x8) = (q8(&w), q4(&w), q8(&x));
        let mut y = vec![0.0f32; rows];
        let blocks = (rows * cols / 32) as f64;
        let inner = (2_000_000 / (rows * cols)).max(1);
        let reps = if rows * cols > 1_000_000 { 30 } else { 200 };
        let mut line = format!("matvec {rows:>4} x {cols:<4}");
        for fmt in ["q8_0", "q4_0"] {
            for k in &paths {
                let t = min_time(reps, || {
                    for _ in 0..inner {
                        if fmt == "q8_0" {
                            k.matvec_q8_0(black_box(&w8), rows, cols, black_box(&x8), &mut y);
                        } else {
                            k.matvec_q4_0(black_box(&w4), rows, cols, black_box(&x8), &mut y);
                        }
                    }
                }) / inner as f64;
                line += &format!("  {fmt}/{} {:.2}", k.path().name(), t * ghz * 1e9 / blocks);
            }
        }
        println!("{line}");
    }
    for n in [4096usize, 65536] {
        let nb = (n / 32) as f64;
        let inner = 4_000_000 / n;
        let (w, x) = (values(n, 1), values(n, 2));
        let (w8, w4, x8) = (q8(&w), q4(&w), q8(&x));
        let mut line = format!("dot {n:<15}");
        for fmt in ["q8_0", "q4_0"] {
            for k in &paths {
                let t = min_time(100, || {
                    for _ in 0..inner {
                        if fmt == "q8_0" {
                            black_box(k.vec_dot_q8_0_q8_0(n, black_box(&w8), black_box(&x8)));
                        } else {
                            black_box(k.vec_dot_q4_0_q8_0(n, black_box(&w4), black_box(&x8)));
                        }
                    }
                }) / inner as f64;
                line += &format!("  {fmt}/{} {:.2}", k.path().name(), t * ghz * 1e9 / nb);
            }
        }
        println!("{line}");
    }
    math(ghz);
    println!("clock {:.2} GHz at the end", clock_ghz());
}

/// The elementwise math over 512 values (latte-micro's MLP width), cycles
/// per value: every path (the scalar specification included) and, for
/// comparison, the platform's `expf`/`tanhf` through `std` one value at a
/// time.
fn math(ghz: f64) {
    const N: usize = 512;
    println!("cycles per value, {N} values:");
    let gelu_in: Vec<f32> = values(N, 5).iter().map(|v| v * 4.0).collect();
    let exp_in: Vec<f32> = values(N, 6).iter().map(|v| v * 5.0 - 5.0).collect();
    let mut buf = vec![0.0f32; N];
    let mut all = vec![Kernels::scalar()];
    all.extend(paths());
    type Op = fn(&Kernels, &mut [f32]);
    type Case<'a> = (&'a str, &'a [f32], Op, fn(f32) -> f32);
    let ops: [Case; 3] = [
        ("exp", &exp_in, |k, x| k.exp_inplace(x), f32::exp),
        ("tanh", &gelu_in, |k, x| k.tanh_inplace(x), f32::tanh),
        (
            "gelu_tanh",
            &gelu_in,
            |k, x| k.gelu_tanh_inplace(x),
            |x| 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh()),
        ),
    ];
    let per_value = |t: f64| t * ghz * 1e9 / N as f64;
    for (name, input, op, platform) in ops {
        let mut line = format!("{name:<10}");
        for k in &all {
            let t = min_time(2000, || {
                buf.copy_from_slice(input);
                op(k, black_box(&mut buf));
            });
            line += &format!("  {} {:.2}", k.path().name(), per_value(t));
        }
        let t = min_time(2000, || {
            for (o, &x) in buf.iter_mut().zip(input) {
                *o = platform(black_box(x));
            }
        });
        line += &format!("  std (platform libm) {:.2}", per_value(t));
        println!("{line}");
    }
}
