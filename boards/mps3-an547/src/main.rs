//! latte-micro on QEMU's mps3-an547 (Cortex-M55): the Q8_0 model read in
//! place from the SRAM (see memory.x), state and scratch in statics sized for it at build
//! time, text and costs logged through defmt over semihosting.
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;

use defmt_semihosting as _;

include!(concat!(env!("OUT_DIR"), "/model.rs"));

static mut STATE: [f32; STATE_LEN] = [0.0; STATE_LEN];
static mut SCRATCH: [f32; SCRATCH_LEN] = [0.0; SCRATCH_LEN];

#[cortex_m_rt::entry]
fn main() -> ! {
    let Some(p) = cortex_m::Peripherals::take() else {
        latte_board::qemu::exit(false)
    };
    // SAFETY: `main` runs once and is the only code that touches the statics.
    let (state, scratch) = unsafe { (&mut *addr_of_mut!(STATE), &mut *addr_of_mut!(SCRATCH)) };
    latte_board::qemu::main(p.SYST, MODEL_NAME, &MODEL.0, state, scratch)
}
