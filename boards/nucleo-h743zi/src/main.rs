//! latte-micro-decay (Q8_0) on the Nucleo-H743ZI (STM32H743, Cortex-M7): the model
//! read in place from the 2 MiB internal flash, state and scratch in the
//! 128 KiB DTCM, caches on, the core at its reset clock (64 MHz HSI; see
//! README.md). Logs over defmt-rtt.
#![no_std]
#![no_main]

use defmt_rtt as _;
use panic_probe as _;

latte_board::model_and_buffers!();

#[cortex_m_rt::entry]
fn main() -> ! {
    let (Some(mut p), Some((state, scratch))) = (cortex_m::Peripherals::take(), buffers()) else {
        panic!("main entered twice")
    };
    // The model is read from flash through the AXI bus: the caches matter.
    p.SCB.enable_icache();
    p.SCB.enable_dcache(&mut p.CPUID);
    latte_board::device::main(p.DCB, p.DWT, MODEL_NAME, &MODEL.0, RING, state, scratch)
}
