//! latte-micro (Q4_0, 8-bit embedding and head) on the nRF52840-DK
//! (Cortex-M4F, 64 MHz): the model read in place from the 1 MiB flash, state
//! and scratch in the 256 KiB RAM. Logs over defmt-rtt.
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
    let Some(p) = cortex_m::Peripherals::take() else {
        panic!("peripherals taken twice")
    };
    // SAFETY: `main` runs once and is the only code that touches the statics.
    let (state, scratch) = unsafe { (&mut *addr_of_mut!(STATE), &mut *addr_of_mut!(SCRATCH)) };
    latte_board::device::main(p.DCB, p.DWT, MODEL_NAME, &MODEL.0, state, scratch)
}
