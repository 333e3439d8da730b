//! The kernel test suite on the device: `cargo run --release --bin kernel-tests`
//! in a QEMU board's folder (each declares this file as its `kernel-tests` binary).
#![no_std]
#![no_main]

use defmt_semihosting as _;

#[cortex_m_rt::entry]
fn main() -> ! {
    latte_board::qemu::kernel_tests()
}
