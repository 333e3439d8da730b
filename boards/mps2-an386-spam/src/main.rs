//! latte-spam-micro on QEMU's mps2-an386 (Cortex-M4F): the Q8_0 classifier
//! and the messages read in place from flash, each message streamed once per
//! layer in chunks of `CHUNK` bytes, the summaries and work area in statics
//! sized at build time (the same for any message length).
#![no_std]
#![no_main]

use defmt_semihosting as _;

latte_board::classifier_and_buffers!();

#[cortex_m_rt::entry]
fn main() -> ! {
    match (cortex_m::Peripherals::take(), buffers()) {
        (Some(p), Some((summaries, work))) => latte_board::qemu::classify_main(
            p.SYST, MODEL_NAME, &MODEL.0, &MESSAGES, summaries, work, CHUNK,
        ),
        _ => latte_board::qemu::exit(false),
    }
}
