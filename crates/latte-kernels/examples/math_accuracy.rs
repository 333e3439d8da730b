//! Exhaustive accuracy of the elementwise math of `latte_kernels::scalar`
//! (`exp_f32`, `tanh_f32`, `gelu_tanh_f32`): every `f32` input, compared with
//! the exact value computed in `f64`, errors in units in the last place of
//! the `f32` format at the exact value's magnitude (subnormal spacing below
//! `2^-126`). Also checks the special values (NaN returned unchanged, the
//! infinities, signed zeros).
//!
//!     cargo run --release -p latte-kernels --example math_accuracy [exp|tanh|gelu ...]
//!
//! Takes about a minute per function on two cores. The results are in the
//! documentation of `latte_kernels::scalar` ("Elementwise math").

use latte_kernels::scalar::{exp_f32, gelu_tanh_f32, tanh_f32};

/// `f32` ulp at the magnitude of `r`.
fn ulp(r: f64) -> f64 {
    let e = ((r.abs().to_bits() >> 52) & 0x7FF) as i32 - 1023;
    2f64.powi(e.max(-126) - 23)
}

/// Error of `y` against the exact `r`, in ulps (`inf` when one of them
/// overflows and the other does not).
fn err_ulps(y: f32, r: f64) -> f64 {
    let rf = r as f32;
    if rf.is_infinite() || y.is_infinite() {
        return if rf == y { 0.0 } else { f64::INFINITY };
    }
    (y as f64 - r).abs() / ulp(r)
}

fn gelu64(x: f64) -> f64 {
    let k = (2.0 / core::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
}

/// The same formula as `gelu_tanh_f32` with the platform's `tanhf` (what
/// latte-core used before): the error of the `f32` formula itself.
fn gelu_platform(x: f32) -> f32 {
    let k = (2.0f64 / core::f64::consts::PI).sqrt() as f32;
    0.5 * x * (1.0 + (k * (x + 0.044_715 * x * x * x)).tanh())
}

#[derive(Clone, Copy, Default)]
struct Stat {
    max: f64,
    at: f32,
    not_rounded: u64,
    n: u64,
    max_abs: f64,
}

impl Stat {
    fn add(&mut self, x: f32, y: f32, r: f64) {
        let e = err_ulps(y, r);
        self.n += 1;
        if y != r as f32 {
            self.not_rounded += 1;
        }
        if e > self.max {
            self.max = e;
            self.at = x;
        }
        let a = (y as f64 - r).abs();
        if a.is_finite() && a > self.max_abs {
            self.max_abs = a;
        }
    }
    fn merge(&mut self, o: &Stat) {
        if o.max > self.max {
            self.max = o.max;
            self.at = o.at;
        }
        self.not_rounded += o.not_rounded;
        self.n += o.n;
        self.max_abs = self.max_abs.max(o.max_abs);
    }
    fn print(&self, what: &str) {
        println!(
            "{what:<44} max {:.4} ulp at x = {:e} ({:#010x}); {:.3} % not correctly rounded \
             ({} of {}); max abs error {:.3e}",
            self.max,
            self.at,
            self.at.to_bits(),
            100.0 * self.not_rounded as f64 / self.n.max(1) as f64,
            self.not_rounded,
            self.n,
            self.max_abs,
        );
    }
}

/// Runs `f` on every `f32` bit pattern, split over the available cores.
fn exhaustive<const N: usize>(f: impl Fn(f32, &mut [Stat; N]) + Sync) -> [Stat; N] {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let per = (1u64 << 32).div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                s.spawn(move || {
                    let mut st = [Stat::default(); N];
                    let end = ((t + 1) * per).min(1 << 32);
                    for b in t * per..end {
                        f(f32::from_bits(b as u32), &mut st);
                    }
                    st
                })
            })
            .collect();
        let mut all = [Stat::default(); N];
        for h in handles {
            let st = h.join().unwrap();
            for (a, b) in all.iter_mut().zip(&st) {
                a.merge(b);
            }
        }
        all
    })
}

fn nan_unchanged(x: f32, y: f32) {
    assert_eq!(
        y.to_bits(),
        x.to_bits(),
        "NaN {:#x} not returned unchanged",
        x.to_bits()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    if want("exp") {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY).to_bits(), 0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        let t = std::time::Instant::now();
        let [all, normal, sub] = exhaustive(|x, st: &mut [Stat; 3]| {
            let y = exp_f32(x);
            if x.is_nan() {
                return nan_unchanged(x, y);
            }
            let r = (x as f64).exp();
            st[0].add(x, y, r);
            if r >= f32::MIN_POSITIVE as f64 {
                st[1].add(x, y, r);
            } else {
                st[2].add(x, y, r);
            }
        });
        all.print("exp_f32, every f32");
        normal.print("exp_f32, normal results");
        sub.print("exp_f32, subnormal or zero results");
        println!("  ({:.1} s)", t.elapsed().as_secs_f64());
    }
    if want("tanh") {
        assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        let t = std::time::Instant::now();
        let [all, small, large] = exhaustive(|x, st: &mut [Stat; 3]| {
            let y = tanh_f32(x);
            if x.is_nan() {
                return nan_unchanged(x, y);
            }
            let r = (x as f64).tanh();
            st[0].add(x, y, r);
            st[if x.abs() < 0.625 { 1 } else { 2 }].add(x, y, r);
        });
        all.print("tanh_f32, every f32");
        small.print("tanh_f32, |x| < 0.625 (polynomial)");
        large.print("tanh_f32, |x| >= 0.625 (1 - 2/(exp(2|x|)+1))");
        println!("  ({:.1} s)", t.elapsed().as_secs_f64());
    }
    if want("gelu") {
        assert_eq!(
            gelu_tanh_f32(f32::NEG_INFINITY).to_bits(),
            (-0.0f32).to_bits()
        );
        assert_eq!(gelu_tanh_f32(f32::INFINITY), f32::INFINITY);
        let t = std::time::Instant::now();
        let [pos, mid, neg, ppos, pmid, pneg] = exhaustive(|x, st: &mut [Stat; 6]| {
            let y = gelu_tanh_f32(x);
            if x.is_nan() {
                return nan_unchanged(x, y);
            }
            if x.is_infinite() {
                return;
            }
            let r = gelu64(x as f64);
            let p = gelu_platform(x);
            let i = if x >= 0.0 {
                0
            } else if x >= -3.0 {
                1
            } else {
                2
            };
            st[i].add(x, y, r);
            st[i + 3].add(x, p, r);
        });
        pos.print("gelu_tanh_f32, x >= 0");
        mid.print("gelu_tanh_f32, -3 <= x < 0");
        neg.print("gelu_tanh_f32, x < -3");
        ppos.print("same formula, platform tanhf, x >= 0");
        pmid.print("same formula, platform tanhf, -3 <= x < 0");
        pneg.print("same formula, platform tanhf, x < -3");
        println!("  ({:.1} s)", t.elapsed().as_secs_f64());
    }
}
