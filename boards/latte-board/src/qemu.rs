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
    per_tick: u64,
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
    /// tick. `None` (with an error logged) when the ratio is not a whole
    /// number, which means QEMU was not run with `-icount shift=0`.
    pub fn new(mut syst: SYST) -> Option<Self> {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        // The current value reads 0 until the first tick loads RELOAD.
        while SYST::get_current() == 0 {}
        let mut c = InstructionCounter { syst, per_tick: 1 };
        // Two runs of a loop of exactly 2 * N instructions; their difference
        // cancels the fixed cost of the measurement itself.
        const N: u32 = 200_000;
        let a = c.ticks_of(N);
        let b = c.ticks_of(2 * N);
        let ticks = b.saturating_sub(a);
        let instructions = 2 * N as u64;
        if ticks == 0 || instructions % ticks != 0 {
            defmt::error!(
                "instruction counting needs QEMU with -icount shift=0 ({=u64} ticks for {=u64} instructions)",
                ticks,
                instructions
            );
            return None;
        }
        c.per_tick = instructions / ticks;
        defmt::info!("counter: SysTick, {=u64} instructions per tick (-icount shift=0)", c.per_tick);
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
        self.ticks() * self.per_tick
    }
}

/// The whole firmware of a QEMU board: counts instructions, runs the demo
/// ([`crate::run`]) and the matrix-vector cost measurement, and exits with
/// status 0 on success, 1 on any error (logged).
pub fn main(syst: SYST, name: &str, model: &[u8], state: &mut [f32], scratch: &mut [f32]) -> ! {
    let Some(mut counter) = InstructionCounter::new(syst) else {
        exit(false)
    };
    match crate::run(name, model, state, scratch, &mut counter) {
        Ok(_) => {
            crate::report_matvec_costs(&mut counter);
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
