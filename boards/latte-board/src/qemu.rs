//! The QEMU machines: exit status through semihosting (so `cargo run` fails
//! when the firmware fails), a panic handler and a HardFault handler that
//! exit with failure, and an instruction counter.
//!
//! # Counting instructions
//!
//! QEMU is not cycle-accurate and has no DWT cycle counter, but run with
//! `-icount shift=0` it advances virtual time by exactly 1 ns per executed
//! instruction, and SysTick (clocked from the core clock) then decrements
//! once every `1e9 / f_core` instructions (40 on the 25 MHz MPS2 machines).
//! [`InstructionCounter::new`] measures that ratio with a loop of known
//! length, so the counts are instructions, the same on every run. They are
//! not cycles.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};

use crate::Counter;

/// Ends the program: QEMU exits with status 0 (`ok`) or 1.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok { EXIT_SUCCESS } else { EXIT_FAILURE });
    // Not reached under QEMU; on anything else, stop here.
    loop {
        cortex_m::asm::bkpt();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    exit(false)
}

#[cortex_m_rt::exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    defmt::error!("hard fault at pc {=u32:#x}", frame.pc());
    exit(false)
}

/// Executed instructions, read from SysTick under `-icount shift=0`.
pub struct InstructionCounter {
    syst: SYST,
    /// Instructions per tick as a fraction (40/1 at 25 MHz, 125/4 at 32 MHz).
    per: (u64, u64),
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// SysTick wraps so far (its exception counts them).
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[cortex_m_rt::exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick's 24-bit range.
const RELOAD: u32 = 0x00FF_FFFF;

impl InstructionCounter {
    /// Starts SysTick on the core clock and calibrates the instructions per
    /// tick. `None` (with an error logged) when the same loop does not take
    /// the same number of ticks twice, which means QEMU was not run with
    /// `-icount shift=0`.
    pub fn new(mut syst: SYST) -> Option<Self> {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        // The current value reads 0 until the first tick loads RELOAD.
        while SYST::get_current() == 0 {}
        let mut c = InstructionCounter { syst, per: (1, 1) };
        // Loops of 2N, 4N and 6N instructions: the differences cancel the
        // fixed cost of the measurement and must agree (they do only under
        // -icount, where time is a function of the instruction count).
        const N: u32 = 200_000;
        let a = c.ticks_of(N);
        let b = c.ticks_of(2 * N);
        let d = c.ticks_of(3 * N);
        let (t1, t2) = (b.saturating_sub(a), d.saturating_sub(b));
        let instructions = 2 * N as u64;
        // One instruction is 1 ns, so ticks per 1,000 instructions is the
        // SysTick clock in MHz (a whole number on these machines).
        let mhz = ((t1 + t2) * 1000 + instructions) / (2 * instructions);
        if t1 == 0 || t1.abs_diff(t2) > 2 || mhz == 0 {
            defmt::error!(
                "instruction counting needs QEMU with -icount shift=0 (SysTick read {=u64} and {=u64} ticks for the same {=u64} instructions)",
                t1,
                t2,
                instructions
            );
            return None;
        }
        let (instructions, ticks) = (1000, mhz);
        let g = gcd(instructions, ticks);
        c.per = (instructions / g, ticks / g);
        defmt::info!(
            "counter: SysTick, {=u64}/{=u64} instructions per tick (-icount shift=0)",
            c.per.0,
            c.per.1
        );
        Some(c)
    }

    /// Ticks since start: SysTick counts down from RELOAD and wraps.
    fn ticks(&mut self) -> u64 {
        loop {
            let before = WRAPS.load(Ordering::Relaxed);
            let current = SYST::get_current();
            if WRAPS.load(Ordering::Relaxed) == before {
                return before as u64 * (RELOAD as u64 + 1) + (RELOAD - current) as u64;
            }
        }
    }

    /// Ticks taken by a loop of `2 * n` instructions (`subs` + `bne`).
    fn ticks_of(&mut self, n: u32) -> u64 {
        let t0 = self.ticks();
        // SAFETY: a register-only countdown loop.
        unsafe {
            core::arch::asm!(
                "1:",
                "subs {n}, {n}, #1",
                "bne 1b",
                n = inout(reg) n => _,
                options(nomem, nostack),
            );
        }
        self.ticks() - t0
    }

    /// Stops counting and gives SysTick back.
    pub fn free(mut self) -> SYST {
        self.syst.disable_interrupt();
        self.syst.disable_counter();
        self.syst
    }
}

impl Counter for InstructionCounter {
    const UNIT: &'static str = "instructions";
    fn now(&mut self) -> u64 {
        self.ticks() * self.per.0 / self.per.1
    }
}

/// The whole firmware of a QEMU board: counts instructions, runs the demo
/// ([`crate::run`]) and the matrix-vector cost measurement, and exits with
/// status 0 on success, 1 on any error (logged).
pub fn main(
    syst: SYST,
    name: &str,
    model: &[u8],
    ring: crate::RingStorage,
    state: &mut [f32],
    scratch: &mut [f32],
) -> ! {
    crate::stack::paint();
    let Some(mut counter) = InstructionCounter::new(syst) else {
        exit(false)
    };
    match crate::run(name, model, ring, state, scratch, &mut counter) {
        Ok(_) => {
            crate::report_matvec_costs(&mut counter);
            crate::stack::report();
            exit(true)
        }
        Err(e) => {
            defmt::error!("{}", defmt::Display2Format(&e));
            exit(false)
        }
    }
}

/// The firmware of a board's `context-cost` binary: [`crate::context_costs`]
/// on the board's model (`LATTE_MODEL` at build time picks another), exit
/// status 0 when it ran.
pub fn context_cost_main(
    syst: SYST,
    name: &str,
    model: &[u8],
    ring: crate::RingStorage,
    state: &mut [f32],
    scratch: &mut [f32],
) -> ! {
    let Some(mut counter) = InstructionCounter::new(syst) else {
        exit(false)
    };
    match crate::context_costs(name, model, ring, state, scratch, &mut counter) {
        Ok(_) => exit(true),
        Err(e) => {
            defmt::error!("{}", defmt::Display2Format(&e));
            exit(false)
        }
    }
}

/// The whole firmware of a QEMU classifier board: counts instructions,
/// classifies the messages ([`crate::classify::run`]) and exits with status
/// 0 on success, 1 on any error (logged).
pub fn classify_main(
    syst: SYST,
    name: &str,
    model: &[u8],
    messages: &[crate::classify::Message],
    summaries: &mut [f32],
    work: &mut [f32],
    chunk: usize,
) -> ! {
    crate::stack::paint();
    let Some(mut counter) = InstructionCounter::new(syst) else {
        exit(false)
    };
    match crate::classify::run(name, model, messages, summaries, work, chunk, &mut counter) {
        Ok(()) => {
            crate::stack::report();
            exit(true)
        }
        Err(e) => {
            defmt::error!("{}", defmt::Display2Format(&e));
            exit(false)
        }
    }
}

/// The firmware of a board's `kernel-tests` binary: the on-device kernel
/// suite ([`crate::selftest`]), exit status 0 when every case passed.
pub fn kernel_tests() -> ! {
    match crate::selftest::run() {
        Ok(n) => {
            defmt::info!("kernel tests: {=u32} cases passed", n);
            exit(true)
        }
        Err(n) => {
            defmt::error!("kernel tests: {=u32} cases failed", n);
            exit(false)
        }
    }
}
