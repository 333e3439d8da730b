//! latte-micro-decay (Q4_0, 8-bit embedding and head) on the nRF52840-DK
//! (Cortex-M4F, 64 MHz): the model read in place from the 1 MiB flash, state
//! and scratch in the 256 KiB RAM. Logs over defmt-rtt.
#![no_std]
#![no_main]

use defmt_rtt as _;
use panic_probe as _;

latte_board::model_and_buffers!();

#[cortex_m_rt::entry]
fn main() -> ! {
    let (Some(p), Some((state, scratch))) = (cortex_m::Peripherals::take(), buffers()) else {
        panic!("main entered twice")
    };
    latte_board::device::main(p.DCB, p.DWT, MODEL_NAME, &MODEL.0, RING, state, scratch)
}
