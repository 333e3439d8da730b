//! latte-micro (Q8_0) on the Nucleo-H743ZI (STM32H743, Cortex-M7): the model
//! read in place from the 2 MiB internal flash, state and scratch in the
//! 128 KiB DTCM, caches on, the core at its reset clock (64 MHz HSI; see
//! README.md). Logs over defmt-rtt.
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;

use defmt_rtt as _;
use panic_probe as _;

include!(concat!(env!("OUT_DIR"), "/model.rs"));

static mut STATE: [f32; STATE_LEN] = [0.0; STATE_LEN];
static mut SCRATCH: [f32; SCRATCH_LEN] = [0.0; SCRATCH_LEN];

#[cortex_m_rt::entry]
fn main() -> ! {
    let Some(mut p) = cortex_m::Peripherals::take() else {
        panic!("peripherals taken twice")
    };
    // The model is read from flash through the AXI bus: the caches matter.
    p.SCB.enable_icache();
    p.SCB.enable_dcache(&mut p.CPUID);
    // SAFETY: `main` runs once and is the only code that touches the statics.
    let (state, scratch) = unsafe { (&mut *addr_of_mut!(STATE), &mut *addr_of_mut!(SCRATCH)) };
    latte_board::device::main(p.DCB, p.DWT, MODEL_NAME, &MODEL.0, state, scratch)
}
