//! Kernel throughput per path at cache-resident sizes.
//!
//!     cargo bench -p latte-kernels --bench dot -- --warm-up-time 1 --measurement-time 2
//!
//! Throughput is in elements: values of the dot product, or `rows * cols`
//! weights of a matrix-vector product.

#[path = "common/clock.rs"]
mod clock;
#[path = "common/data.rs"]
mod data;

use clock::add_chain;
use data::{q4, q8, values};

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use latte_kernels::{f16, BlockQ8_0, KernelPath, Kernels};

const DOT_N: usize = 4096;
const ROWS: usize = 256;
const COLS: usize = 1024;

fn paths() -> Vec<Kernels> {
    KernelPath::ALL.iter().filter_map(|p| p.kernels()).collect()
}

fn dots(c: &mut Criterion) {
    let w = values(DOT_N, 1);
    let x = values(DOT_N, 2);
    let (w8, w4, x8) = (q8(&w), q4(&w), q8(&x));
    let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();

    let mut g = c.benchmark_group("dot_4096");
    g.throughput(Throughput::Elements(DOT_N as u64));
    for k in paths() {
        let p = k.path().name();
        g.bench_function(format!("q8_0/{p}"), |b| {
            b.iter(|| k.vec_dot_q8_0_q8_0(DOT_N, black_box(&w8), black_box(&x8)))
        });
        g.bench_function(format!("q4_0/{p}"), |b| {
            b.iter(|| k.vec_dot_q4_0_q8_0(DOT_N, black_box(&w4), black_box(&x8)))
        });
        g.bench_function(format!("f32/{p}"), |b| {
            b.iter(|| k.vec_dot_f32(black_box(&w), black_box(&x)))
        });
        g.bench_function(format!("f16/{p}"), |b| {
            b.iter(|| k.vec_dot_f16_f32(black_box(&wh), black_box(&x)))
        });
        let mut out = vec![BlockQ8_0::default(); DOT_N / 32];
        g.bench_function(format!("quantize_q8_0/{p}"), |b| {
            b.iter(|| k.quantize_q8_0(black_box(&x), black_box(&mut out)))
        });
    }
    g.finish();
}

fn matvecs(c: &mut Criterion) {
    let w = values(ROWS * COLS, 3);
    let x = values(COLS, 4);
    let (w8, w4, x8) = (q8(&w), q4(&w), q8(&x));
    let mut y = vec![0.0f32; ROWS];

    let mut g = c.benchmark_group("matvec_256x1024");
    g.throughput(Throughput::Elements((ROWS * COLS) as u64));
    for k in paths() {
        let p = k.path().name();
        g.bench_function(format!("q8_0/{p}"), |b| {
            b.iter(|| k.matvec_q8_0(black_box(&w8), ROWS, COLS, black_box(&x8), &mut y))
        });
        g.bench_function(format!("q4_0/{p}"), |b| {
            b.iter(|| k.matvec_q4_0(black_box(&w4), ROWS, COLS, black_box(&x8), &mut y))
        });
    }
    g.finish();
}

/// The matrix shapes of the committed model (width 128, MLP 512: rows of 4
/// or 16 blocks) and a large one, for the SIMD paths (which one
/// `Kernels::best` picks was decided on these).
fn matvec_shapes(c: &mut Criterion) {
    for (rows, cols) in [(128usize, 128usize), (512, 128), (128, 512), (4096, 4096)] {
        let w = values(rows * cols, 5);
        let x = values(cols, 6);
        let (w8, w4, x8) = (q8(&w), q4(&w), q8(&x));
        let mut y = vec![0.0f32; rows];
        let mut g = c.benchmark_group(format!("matvec_{rows}x{cols}"));
        g.throughput(Throughput::Elements((rows * cols) as u64));
        for k in paths()
            .into_iter()
            .filter(|k| k.path() != KernelPath::Scalar)
        {
            let p = k.path().name();
            g.bench_function(format!("q8_0/{p}"), |b| {
                b.iter(|| k.matvec_q8_0(black_box(&w8), rows, cols, black_box(&x8), &mut y))
            });
            g.bench_function(format!("q4_0/{p}"), |b| {
                b.iter(|| k.matvec_q4_0(black_box(&w4), rows, cols, black_box(&x8), &mut y))
            });
        }
        g.finish();
    }
}

/// Clock estimate: a chain of dependent 64-bit integer adds, one cycle of
/// latency each on current x86-64 and AArch64 cores, so the throughput in
/// elements per second reads as the core clock in Hz while the kernels run.
fn clock(c: &mut Criterion) {
    const ADDS: u64 = 100_000;
    let mut g = c.benchmark_group("clock");
    g.throughput(Throughput::Elements(ADDS));
    g.bench_function("dependent_add_chain", |b| {
        b.iter(|| add_chain(black_box(ADDS / 10)))
    });
    g.finish();
}

/// The clock once more after the kernels (the rate can drift during a run).
fn clock_again(c: &mut Criterion) {
    const ADDS: u64 = 100_000;
    let mut g = c.benchmark_group("clock_end");
    g.throughput(Throughput::Elements(ADDS));
    g.bench_function("dependent_add_chain", |b| {
        b.iter(|| add_chain(black_box(ADDS / 10)))
    });
    g.finish();
}

criterion_group!(benches, clock, dots, matvecs, matvec_shapes, clock_again);
criterion_main!(benches);
