//! Stack high-water mark: [`paint`] fills the free stack with a pattern at
//! start, [`report`] logs how much of it was ever overwritten. With the
//! static state and scratch (sized at build time) this is the whole RAM the
//! firmware uses: there is no heap.

use core::ptr::{addr_of, read_volatile, write_volatile};

const PAINT: u32 = 0x5AC4_5AC4;
/// Bytes just below the current stack pointer left unpainted (the frames of
/// `paint` itself).
const MARGIN: usize = 256;

extern "C" {
    // cortex-m-rt's linker script: the end of .bss/.uninit (where the free
    // RAM starts) and the initial stack pointer (the top of RAM).
    static __sheap: u32;
    static _stack_start: u32;
}

fn bounds() -> (usize, usize) {
    // Taking the address of an extern static is safe; nothing is read.
    (addr_of!(__sheap) as usize, addr_of!(_stack_start) as usize)
}

/// Fills the unused stack (from the end of the statics up to a margin below
/// the current stack pointer) with a pattern.
pub fn paint() {
    let (bottom, _) = bounds();
    let sp = cortex_m::register::msp::read() as usize;
    let mut p = bottom;
    while p + 4 <= sp.saturating_sub(MARGIN) {
        // SAFETY: [bottom, sp - MARGIN) is RAM between the statics and the
        // live stack frames; nothing else uses it (no heap).
        unsafe { write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// Bytes of stack ever used since [`paint`] (the deepest overwritten word).
pub fn used() -> usize {
    let (bottom, top) = bounds();
    let mut p = bottom;
    // SAFETY: reads words of RAM between the statics and the stack top.
    while p < top && unsafe { read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    top - p
}

/// Logs [`used`] and the RAM left.
pub fn report() {
    let (bottom, top) = bounds();
    defmt::info!(
        "stack: {=usize} bytes used at most, of {=usize} free after the statics",
        used(),
        top - bottom
    );
}
