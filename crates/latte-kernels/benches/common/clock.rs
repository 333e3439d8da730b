//! The core clock, measured: chains of dependent adds (one cycle each on the
//! x86-64 and AArch64 cores these benchmarks run on) timed with the wall
//! clock, for turning times into cycles where no cycle counter is readable
//! (a VM's guest). Shared by the kernel benches and latte-core's roofline
//! example (`#[path]`).
#![allow(dead_code)]

use std::hint::black_box;
use std::time::Instant;

/// Minimum wall time of `f` over `reps` runs, in seconds.
pub fn min_time(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

/// Core clock in GHz from `10 * n` dependent adds.
pub fn clock_ghz() -> f64 {
    const N: u64 = 1_000_000;
    let s = min_time(30, || {
        black_box(add_chain(black_box(N)));
    });
    (N * 10) as f64 / s / 1e9
}

/// `10 * n` dependent adds (ten per loop iteration, so that the loop
/// branch is never the bottleneck).
#[allow(unused_mut, unused_assignments)]
pub fn add_chain(n: u64) -> u64 {
    let mut x = 0u64;
    let mut i = n;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: register-only arithmetic on the two operands; no memory, no stack.
    unsafe {
        std::arch::asm!(
            "2:",
            "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
            "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
            "dec {i}",
            "jnz 2b",
            x = inout(reg) x,
            i = inout(reg) i,
            options(nomem, nostack),
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: register-only arithmetic on the two operands; no memory, no stack.
    unsafe {
        std::arch::asm!(
            "2:",
            "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1",
            "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1",
            "subs {i}, {i}, 1",
            "b.ne 2b",
            x = inout(reg) x,
            i = inout(reg) i,
            options(nomem, nostack),
        );
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        x = n * 10;
    }
    x
}
