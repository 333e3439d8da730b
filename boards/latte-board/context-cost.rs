//! The runtime figure on the device: instructions per decode token at
//! contexts 64 to 4,096 (`cargo run --release --bin context-cost` in a QEMU
//! board's folder, `LATTE_MODEL=...` for another model; see boards/COSTS.md).
#![no_std]
#![no_main]

use defmt_semihosting as _;

latte_board::model_and_buffers!();

#[cortex_m_rt::entry]
fn main() -> ! {
    match (cortex_m::Peripherals::take(), buffers()) {
        (Some(p), Some((state, scratch))) => {
            latte_board::qemu::context_cost_main(p.SYST, MODEL_NAME, &MODEL.0, RING, state, scratch)
        }
        _ => latte_board::qemu::exit(false),
    }
}
