//! The kernel test suite on the device: every case of
//! `latte_kernels::suite` (the suite the host tests run on each host path)
//! for every Arm path the target has (`arm-dsp`, and `arm-helium` on Helium
//! builds), each kernel against its scalar twin or an exact reference.
//! Device-only checks first: the DSP path is there, `Kernels::best()` is the
//! most capable path, and the DSP kernels' `f16` scale conversion is exact
//! for all 65536 values. Logs the stack the cases used at most.

use core::fmt::Write;

use latte_kernels::suite::{self, Failure};
use latte_kernels::{f16, KernelPath, Kernels};

/// Runs the suite; logs each failure and returns the number of cases and
/// checks that passed, or `Err(failures)`.
pub fn run() -> Result<u32, u32> {
    crate::stack::paint();
    let mut t = Tally::default();

    // Every Arm path this target has; `best()` must be the last of them.
    let mut paths = [None, None];
    for (slot, path) in paths
        .iter_mut()
        .zip([KernelPath::ArmDsp, KernelPath::ArmHelium])
    {
        *slot = path.kernels();
    }
    let Some(last) = paths.iter().rev().flatten().next().copied() else {
        defmt::error!("no Arm kernel path (arm-dsp, arm-helium) on this target");
        return Err(t.failed + 1);
    };
    t.check(
        Kernels::best() == last,
        "best() is the most capable Arm path",
    );
    t.check(paths[0].is_some(), "arm-dsp is available");

    // The f16 conversion of the DSP kernels' scales, exhaustively.
    let conv_ok = (0..=u16::MAX).all(|bits| {
        latte_kernels::arm_dsp::scale(bits).to_bits() == f16::from_bits(bits).to_f32().to_bits()
    });
    t.check(conv_ok, "f16 scale conversion, all 65536 values");

    for k in paths.iter().flatten() {
        let path = k.path().name();
        defmt::info!(
            "kernel tests: {=usize} cases on {=str}",
            suite::CASES.len(),
            path
        );
        suite::run_all(k, &mut |case, outcome| match outcome {
            Ok(()) => t.passed += 1,
            Err(failure) => {
                t.failed += 1;
                log_failure(path, case, &failure);
            }
        });
    }
    crate::stack::report();
    if t.failed == 0 {
        Ok(t.passed)
    } else {
        Err(t.failed)
    }
}

#[derive(Default)]
struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn check(&mut self, ok: bool, what: &str) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            defmt::error!("kernel test failed: {=str}", what);
        }
    }
}

/// Logs `failure` as the host tests print it (cut at 384 bytes).
fn log_failure(path: &str, case: &str, failure: &Failure) {
    let mut line = Line::default();
    // A full line only truncates the message.
    let _ = write!(line, "{failure}");
    defmt::error!(
        "kernel test failed: {=str} on {=str}: {=str}",
        case,
        path,
        line.as_str()
    );
}

/// A fixed-size text buffer that keeps what fits.
struct Line {
    buf: [u8; 384],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            buf: [0; 384],
            len: 0,
        }
    }
}

impl Line {
    fn as_str(&self) -> &str {
        // `write_str` only cuts at character boundaries.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len() - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            Err(core::fmt::Error)
        } else {
            Ok(())
        }
    }
}
