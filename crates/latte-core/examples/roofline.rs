//! The measurements behind the decode roofline (`tools/latte-cli/bench/ROOFLINE.md`):
//! for each model file, the bytes a decode step reads, its multiply-adds,
//! the cache read bandwidth at that working-set size, the matrix-vector
//! products alone, the elementwise math alone (the kernels' `exp`/`tanh`,
//! and libm's, which the core used before, for comparison), the rest of a
//! step alone, and the whole step, all on this machine in one run.
//!
//! ```text
//! cargo run --release -p latte-core --example roofline -- models/latte-micro/latte-micro-{f32,f16,q8_0,q4_0}.gguf
//! ```
//!
//! Every time is the minimum over many repetitions (the machine is shared;
//! the minimum is the least disturbed run), after a warm-up that brings the
//! data into the caches, as a decode step finds it. The clock is measured
//! the way the kernel benches do (a chain of dependent adds, one cycle each)
//! so that times can be read as cycles.

#[path = "../../latte-kernels/benches/common/clock.rs"]
mod clock;

use clock::{clock_ghz, min_time};

use std::hint::black_box;

use latte_core::{ops, Model, Session};
use latte_gguf::{GgmlType, Gguf};
use latte_kernels::{cast_q4_0, cast_q8_0, f16, BlockQ8_0, Kernels};

/// A pseudo-random value in `[-1, 1)` for index `i`: inputs in no
/// learnable order, so that the branches of the math (libm's range
/// reductions, the scalar `tanh`'s two forms) are predicted no better than
/// in a real step.
fn noise(i: usize) -> f32 {
    let mut z = (i as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// Sum of a buffer read with the widest loads available (eight independent
/// accumulators so that the adds never limit the loads).
fn read_sum(buf: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { read_sum_avx512(buf) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { read_sum_avx2(buf) };
        }
    }
    let mut acc = [0u64; 8];
    for c in buf.chunks_exact(8) {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(*v);
        }
    }
    acc.iter().fold(0, |s, v| s.wrapping_add(*v))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn read_sum_avx512(buf: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_si512(); 8];
    for c in buf.chunks_exact(64) {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: reads the 8 u64 at c[8k..8k+8], inside the chunk of 64.
            let v = unsafe { _mm512_loadu_si512(c[8 * k..].as_ptr().cast()) };
            *a = _mm512_add_epi64(*a, v);
        }
    }
    let mut t = acc[0];
    for a in &acc[1..] {
        t = _mm512_add_epi64(t, *a);
    }
    _mm512_reduce_add_epi64(t) as u64
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn read_sum_avx2(buf: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_si256(); 8];
    for c in buf.chunks_exact(32) {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: reads the 4 u64 at c[4k..4k+4], inside the chunk of 32.
            let v = unsafe { _mm256_loadu_si256(c[4 * k..].as_ptr().cast()) };
            *a = _mm256_add_epi64(*a, v);
        }
    }
    let mut out = [0u64; 4];
    let mut t = acc[0];
    for a in &acc[1..] {
        t = _mm256_add_epi64(t, *a);
    }
    // SAFETY: writes the 4 u64 of `out`.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), t) };
    out.iter().fold(0, |s, v| s.wrapping_add(*v))
}

/// Read bandwidth in GB/s (10^9 bytes) over a working set of `bytes`.
fn read_bandwidth(bytes: usize) -> f64 {
    let n = (bytes / 8).max(512) / 512 * 512;
    let buf: Vec<u64> = (0..n as u64).collect();
    let reps = (200_000_000 / (n * 8)).clamp(20, 20_000);
    let s = min_time(reps, || {
        black_box(read_sum(black_box(&buf)));
    });
    (n * 8) as f64 / s / 1e9
}

/// One matrix of the model as the decode step uses it.
enum Mat<'a> {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Q8(&'a [BlockQ8_0]),
    Q4(&'a [latte_kernels::BlockQ4_0]),
}

struct Counts {
    /// Bytes of tensor data a decode step reads.
    bytes: usize,
    /// Multiply-adds of the matrix-vector products.
    macs: usize,
    /// 32-value blocks of the matrix-vector products.
    blocks: usize,
    expf: usize,
    tanhf: usize,
    sincosf: usize,
    /// Other float operations (recurrence, layer norms, GELU polynomial, ...).
    other_flops: usize,
}

/// The work of a step besides the matrix products, timed alone with the
/// core's own functions (`ops`, the kernels' `exp_inplace` and
/// `gelu_tanh_inplace`) and, for the Latte recurrence (crate private), a
/// copy of its arithmetic (`LatteLayer::recur`, plain Latte):
/// per layer two layer norms, the query softmax per head, the recurrence,
/// bias + GELU of the MLP, biases and residual adds; then the final layer
/// norm, the head bias, the embedding row with its sinusoidal position.
/// Returns `(total, [layer norms, softmax, recurrence, bias + GELU, rest])`
/// in seconds per token.
fn non_matmul(
    k: &Kernels,
    d: usize,
    l: usize,
    h: usize,
    f: usize,
    v: usize,
    nl: usize,
) -> (f64, [f64; 5]) {
    let (dh, lh) = (d / h, l / h);
    let w: Vec<f32> = (0..d).map(|i| 1.0 + (i % 7) as f32 / 50.0).collect();
    let x: Vec<f32> = (0..f.max(d).max(v)).map(|i| 2.0 * noise(i)).collect();
    let mut out = vec![0.0f32; f.max(d).max(v)];
    let reps = 3000;
    let t_ln = min_time(reps, || {
        for _ in 0..2 * nl + 1 {
            ops::layer_norm(&x[..d], &w, &w, 1e-6, &mut out[..d]);
            black_box(&out);
        }
    });
    let mut q = x[..l].to_vec();
    let t_soft = min_time(reps, || {
        for _ in 0..nl {
            q.copy_from_slice(&x[..l]);
            for p in q.chunks_exact_mut(lh) {
                black_box(ops::softmax_in_place_with(k, p));
            }
        }
    });
    // Recurrence state mid-sequence: finite m, positive n.
    let mut s_all = vec![0.5f32; l * dh];
    let mut n_all = vec![3.0f32; l];
    let mut m_all = vec![1.0f32; l];
    let mut y = vec![0.0f32; d];
    let (k_in, vv, p) = (&x[l..2 * l], &x[..d], &x[..l]);
    let t_rec = min_time(reps, || {
        for _ in 0..nl {
            let heads = p
                .chunks_exact(lh)
                .zip(k_in.chunks_exact(lh))
                .zip(vv.chunks_exact(dh))
                .zip(y.chunks_exact_mut(dh))
                .zip(s_all.chunks_exact_mut(lh * dh))
                .zip(n_all.chunks_exact_mut(lh))
                .zip(m_all.chunks_exact_mut(lh));
            for ((((((p, kk), v), y), s), n), m) in heads {
                y.fill(0.0);
                // Both exponentials of every latent in one kernel call (the
                // core does groups of 16 latents: one group here).
                let mut e = vec![0.0f32; 2 * lh];
                for (i, (m, &kk)) in m.iter_mut().zip(kk).enumerate() {
                    let m_new = m.max(kk);
                    e[i] = *m - m_new;
                    e[lh + i] = kk - m_new;
                    *m = m_new;
                }
                k.exp_inplace(&mut e);
                let latents = p
                    .iter()
                    .zip(s.chunks_exact_mut(dh))
                    .zip(n.iter_mut())
                    .zip(e[..lh].iter().zip(&e[lh..]));
                for (((&p, row), n), (&r, &a)) in latents {
                    *n = *n * r + a;
                    for (s, &vv) in row.iter_mut().zip(v) {
                        *s = *s * r + a * vv;
                    }
                    let w = p / *n;
                    for (acc, &sv) in y.iter_mut().zip(row.iter()) {
                        *acc += w * sv;
                    }
                }
            }
            black_box(&y);
        }
        // Keep the state bounded across repetitions.
        n_all.fill(3.0);
        m_all.fill(1.0);
        s_all.fill(0.5);
    });
    let t_gelu = min_time(reps, || {
        for _ in 0..nl {
            out[..f].copy_from_slice(&x[..f]);
            ops::add_assign(&mut out[..f], &x[..f]);
            k.gelu_tanh_inplace(&mut out[..f]);
            black_box(&out);
        }
    });
    let mut h_res = x[..d].to_vec();
    let t_rest = min_time(reps, || {
        for _ in 0..nl {
            // Wo output, down bias, two residual adds.
            ops::add_assign(&mut h_res, &x[..d]);
            ops::add_assign(&mut h_res, &x[d..2 * d]);
            ops::add_assign(&mut h_res, &x[2 * d..3 * d]);
        }
        ops::add_assign(&mut out[..v], &x[..v]);
        h_res.copy_from_slice(&x[..d]);
        ops::add_sinusoidal(black_box(100), &mut h_res);
        black_box(&h_res);
    });
    let parts = [t_ln, t_soft, t_rec, t_gelu, t_rest];
    (parts.iter().sum(), parts)
}

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: roofline MODEL.gguf [MODEL.gguf ...]");
        std::process::exit(2);
    }
    let k = Kernels::best();
    let ghz = clock_ghz();
    println!(
        "kernels {}, clock {ghz:.2} GHz (dependent-add chain)",
        k.path()
    );

    // Cache read bandwidth by working-set size.
    println!("\nread bandwidth (GB/s) by working set:");
    for kib in [
        16usize, 32, 256, 512, 768, 1024, 1536, 2048, 3072, 4608, 8192, 65536,
    ] {
        println!("  {kib:>6} KiB  {:7.1}", read_bandwidth(kib * 1024));
    }

    // The elementwise math over realistic arguments, in no learnable
    // order: `exp` of `x - max` (at most 0), `tanh` of a GELU argument (`x`
    // of the order of 1). The kernels' slices as the step calls them, and
    // libm one call at a time (what the core used before), for comparison.
    let args_exp: Vec<f32> = (0..4096).map(|i| 5.0 * (noise(i) - 1.0)).collect();
    let args_tanh: Vec<f32> = (0..4096).map(|i| 2.0 * noise(i)).collect();
    let mut buf = vec![0.0f32; 4096];
    let per_value = |args: &[f32], buf: &mut [f32], op: &dyn Fn(&mut [f32])| {
        min_time(2000, || {
            buf.copy_from_slice(args);
            op(black_box(&mut *buf));
        }) / args.len() as f64
    };
    let t_exp = per_value(&args_exp, &mut buf, &|x| k.exp_inplace(x));
    let t_gelu = per_value(&args_tanh, &mut buf, &|x| k.gelu_tanh_inplace(x));
    let t_libm_exp = min_time(2000, || {
        for &a in &args_exp {
            black_box(libm::expf(black_box(a)));
        }
    }) / 4096.0;
    let t_libm_tanh = min_time(2000, || {
        for &a in &args_tanh {
            black_box(libm::tanhf(black_box(a)));
        }
    }) / 4096.0;
    let t_sin = min_time(2000, || {
        for &a in &args_tanh {
            black_box(libm::sinf(black_box(a * 50.0)));
        }
    }) / 4096.0;
    println!(
        "\nper value: kernels ({}) exp {:.3} ns, gelu_tanh {:.3} ns; libm expf {:.2} ns, tanhf {:.2} ns, sinf {:.2} ns",
        k.path(),
        t_exp * 1e9,
        t_gelu * 1e9,
        t_libm_exp * 1e9,
        t_libm_tanh * 1e9,
        t_sin * 1e9
    );

    for path in &paths {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let g = Gguf::parse(&bytes).expect("parse");
        let model = Model::from_gguf(&bytes).expect("model");
        let c = *model.config();
        let (d, l, f, v, nl, h) = (
            c.d_model,
            c.n_latents,
            c.d_ff,
            c.vocab_size,
            c.n_layers,
            c.n_heads,
        );
        let dh = d / h;

        // What a step reads: every tensor but the embedding, of which one row.
        let mut counts = Counts {
            bytes: 0,
            macs: 0,
            blocks: 0,
            // Softmax over the latents, two exponentials per latent in the
            // recurrence; the sinusoidal position (D/2 exponentials, D/2 sines, D/2 cosines).
            expf: nl * 3 * l + d / 2,
            tanhf: nl * f,
            sincosf: d,
            // Recurrence per latent: S row (mul, mul, add per value), output
            // (mul, add per value), n, m, p/n; layer norms (~8 per value, 2 per
            // layer + final), GELU polynomial (~8 per value), residual adds,
            // biases, softmax (sub, div).
            other_flops: nl * (l * (5 * dh + 6) + 2 * 8 * d + 8 * f + 2 * d + f + d + 3 * l)
                + 8 * d
                + v,
        };
        let mut mats: Vec<(String, usize, usize, Mat)> = Vec::new();
        let mut embd_bytes = 0;
        for t in g.tensors() {
            counts.bytes += t.data.len();
            if t.name == "token_embd.weight" {
                embd_bytes = t.data.len();
                counts.bytes -= t.data.len() - t.data.len() / t.rows() as usize;
                continue;
            }
            if t.n_dims != 2 {
                continue;
            }
            let (rows, cols) = (t.rows() as usize, t.cols() as usize);
            counts.macs += rows * cols;
            counts.blocks += rows * cols / 32;
            let m = match t.ty {
                GgmlType::F32 => Mat::F32(
                    t.data
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                ),
                GgmlType::F16 => Mat::F16(
                    t.data
                        .chunks_exact(2)
                        .map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])))
                        .collect(),
                ),
                GgmlType::Q8_0 => Mat::Q8(cast_q8_0(t.data).expect("q8_0")),
                GgmlType::Q4_0 => Mat::Q4(cast_q4_0(t.data).expect("q4_0")),
                other => panic!("{}: type {other:?}", t.name),
            };
            mats.push((t.name.to_string(), rows, cols, m));
        }

        // The matrix-vector products of one token alone (inputs quantized
        // per product as the step does; weights in cache after the warm-up).
        let x: Vec<f32> = (0..f.max(d)).map(noise).collect();
        let mut xq = vec![BlockQ8_0::default(); f.max(d) / 32];
        let mut y = vec![0.0f32; f.max(v).max(d)];
        let mut all_matvecs = || {
            for (_, rows, cols, m) in &mats {
                let (rows, cols) = (*rows, *cols);
                let x = &x[..cols];
                match m {
                    Mat::F32(w) => k.matvec_f32(w, rows, cols, x, &mut y),
                    Mat::F16(w) => k.matvec_f16(w, rows, cols, x, &mut y),
                    Mat::Q8(w) => {
                        k.quantize_q8_0(x, &mut xq);
                        k.matvec_q8_0(w, rows, cols, &xq, &mut y)
                    }
                    Mat::Q4(w) => {
                        k.quantize_q8_0(x, &mut xq);
                        k.matvec_q4_0(w, rows, cols, &xq, &mut y)
                    }
                }
            }
            black_box(&y);
        };
        for _ in 0..200 {
            all_matvecs();
        }
        let t_mv = min_time(3000, &mut all_matvecs);

        // The whole decode step (greedy argmax left out), 256 tokens from a
        // reset, the model's training length; minimum over repetitions of
        // the mean step time.
        let mut state = vec![0.0f32; model.state_len()];
        let mut scratch = vec![0.0f32; model.scratch_len()];
        let text = b"It was a dark and stormy night; the rain fell in torrents, except at occasional intervals, when it was checked by a violent gust of wind which swept up the streets (for it is in London that our scene lies), rattling along the housetops, and fiercely agitating the scanty.";
        let mut session = Session::new(&model, &mut state, &mut scratch).expect("session");
        let mut run = || {
            session.reset();
            for &b in &text[..256] {
                black_box(session.step(b as u32).expect("step"));
            }
        };
        run();
        let t_step = min_time(60, &mut run) / 256.0;

        let bw = read_bandwidth(counts.bytes);
        let (t_other, parts) = non_matmul(&k, d, l, h, f, v, nl);
        // The position's D/2 exponentials are still libm's.
        let t_math = (counts.expf - d / 2) as f64 * t_exp
            + (d / 2) as f64 * t_libm_exp
            + counts.tanhf as f64 * t_gelu
            + counts.sincosf as f64 * t_sin;
        let t_libm = counts.expf as f64 * t_libm_exp
            + counts.tanhf as f64 * t_libm_tanh
            + counts.sincosf as f64 * t_sin;
        println!("\n{path}");
        println!(
            "  tensor data {} bytes, embedding {} bytes; read per token {} bytes",
            g.tensors().map(|t| t.data.len()).sum::<usize>(),
            embd_bytes,
            counts.bytes
        );
        println!(
            "  matvec MACs per token {} ({} blocks of 32); other flops ~{}; exp {}, tanh (GELU) {}, sin/cos {}",
            counts.macs, counts.blocks, counts.other_flops, counts.expf, counts.tanhf, counts.sincosf
        );
        println!(
            "  read bandwidth at {} bytes: {bw:.1} GB/s -> {:.2} us per token",
            counts.bytes,
            counts.bytes as f64 / bw / 1e3
        );
        println!(
            "  matvecs alone: {:.2} us per token ({:.2} cycles per block, {:.2} GMAC/s)",
            t_mv * 1e6,
            t_mv * ghz * 1e9 / counts.blocks as f64,
            counts.macs as f64 / t_mv / 1e9
        );
        println!(
            "  elementwise math alone (count x per-value time): {:.2} us per token (with libm instead: {:.2})",
            t_math * 1e6,
            t_libm * 1e6
        );
        println!(
            "  the rest alone: {:.2} us per token (layer norms {:.2}, softmax {:.2}, recurrence {:.2}, bias+GELU {:.2}, residuals/embedding/position {:.2})",
            t_other * 1e6,
            parts[0] * 1e6,
            parts[1] * 1e6,
            parts[2] * 1e6,
            parts[3] * 1e6,
            parts[4] * 1e6
        );
        println!(
            "  decode step: {:.2} us per token = {:.0} tokens/s; matvecs + rest alone = {:.2} us ({:.0}% of the step)",
            t_step * 1e6,
            1.0 / t_step,
            (t_mv + t_other) * 1e6,
            100.0 * (t_mv + t_other) / t_step
        );
    }
}
