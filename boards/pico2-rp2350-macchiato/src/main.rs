//! latte-macchiato-micro (Q8_0, rings in q8) on the Raspberry Pi Pico 2
//! (RP2350, Cortex-M33): the model read in place from the 4 MiB QSPI flash
//! (execute-in-place, cached); the Latte state, the window's rings of keys
//! and values (8 bits with a scale per head) and the scratch in the 520 KiB
//! SRAM; the core at the clock the boot ROM leaves it (see README.md). Logs
//! over defmt-rtt.
#![no_std]
#![no_main]

use defmt_rtt as _;
use panic_probe as _;

latte_board::model_and_buffers!();

/// The RP2350 boot ROM starts only an image that carries an IMAGE_DEF block
/// in its first 4 KiB (RP2350 datasheet, 5.9 "Metadata block details"):
/// start marker, an IMAGE_TYPE item (executable, secure, Arm, RP2350), the
/// LAST item (total size of the items: 1 word), a link to itself (0: the
/// only block) and the end marker. `memory.x` places `.start_block` right
/// after the vector table.
#[link_section = ".start_block"]
#[used]
static IMAGE_DEF: [u32; 5] = [
    0xFFFF_DED3, // PICOBIN_BLOCK_MARKER_START
    // item 0x42 (IMAGE_TYPE), 1 word; flags: EXE (0x0001) | secure (0x0020)
    // | Arm (0x0000) | RP2350 (0x1000)
    0x1021_0142,
    0x0000_01FF, // item 0xFF (LAST), size of the items = 1 word
    0x0000_0000, // relative link to the next block: itself
    0xAB12_3579, // PICOBIN_BLOCK_MARKER_END
];

#[cortex_m_rt::entry]
fn main() -> ! {
    let (Some(p), Some((state, scratch))) = (cortex_m::Peripherals::take(), buffers()) else {
        panic!("main entered twice")
    };
    latte_board::device::main(p.DCB, p.DWT, MODEL_NAME, &MODEL.0, RING, state, scratch)
}
