#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    latte_fuzz::targets::load_and_step(data);
});
