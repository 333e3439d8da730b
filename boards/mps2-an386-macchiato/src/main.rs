//! latte-macchiato-micro on QEMU's mps2-an386 (Cortex-M4F): the f16 model read in
//! place from flash; the recurrent state, each layer's ring of the last 128
//! keys and values, and the scratch in statics sized for it at build time;
//! text and costs logged through defmt over semihosting.
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
