//! Real boards (flashed with probe-rs, logging over defmt-rtt): a cycle
//! counter and the firmware's main.

use cortex_m::peripheral::{DCB, DWT};

use crate::Counter;

/// Core cycles from the DWT cycle counter (`CYCCNT`), widened to 64 bits
/// (reads must come less than 2^32 cycles apart: 8.9 s at 480 MHz).
pub struct CycleCounter {
    _dwt: DWT,
    last: u32,
    high: u64,
}

impl CycleCounter {
    /// Enables tracing and starts `CYCCNT`.
    pub fn new(dcb: &mut DCB, mut dwt: DWT) -> Self {
        dcb.enable_trace();
        DWT::unlock();
        dwt.enable_cycle_counter();
        CycleCounter {
            _dwt: dwt,
            last: DWT::cycle_count(),
            high: 0,
        }
    }
}

impl Counter for CycleCounter {
    const UNIT: &'static str = "cycles";
    fn now(&mut self) -> u64 {
        let c = DWT::cycle_count();
        if c < self.last {
            self.high += 1 << 32;
        }
        self.last = c;
        self.high | c as u64
    }
}

/// The whole firmware of a real board: runs the demo and the cost
/// measurement, logs the stack high-water mark, then halts at a breakpoint
/// (which ends `probe-rs run`). Errors are logged and halt the same way.
pub fn main(
    mut dcb: DCB,
    dwt: DWT,
    name: &str,
    model: &[u8],
    ring: crate::RingStorage,
    state: &mut [f32],
    scratch: &mut [f32],
) -> ! {
    crate::stack::paint();
    let mut counter = CycleCounter::new(&mut dcb, dwt);
    match crate::run(name, model, ring, state, scratch, &mut counter) {
        Ok(_) => {
            crate::report_matvec_costs(&mut counter);
            crate::stack::report();
            defmt::info!("done");
        }
        Err(e) => defmt::error!("{}", defmt::Display2Format(&e)),
    }
    loop {
        cortex_m::asm::bkpt();
    }
}
