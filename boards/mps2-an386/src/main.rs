//! latte-micro-decay on QEMU's mps2-an386 (Cortex-M4F): the Q8_0 model read in
//! place from flash, state and scratch in statics sized for it at build
//! time, text and costs logged through defmt over semihosting.
#![no_std]
#![no_main]

use defmt_semihosting as _;

latte_board::model_and_buffers!();

#[cortex_m_rt::entry]
fn main() -> ! {
    match (cortex_m::Peripherals::take(), buffers()) {
        (Some(p), Some((state, scratch))) => {
            latte_board::qemu::main(p.SYST, MODEL_NAME, &MODEL.0, RING, state, scratch)
        }
        _ => latte_board::qemu::exit(false),
    }
}
