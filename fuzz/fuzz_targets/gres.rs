//! libFuzzer entry point; the checks are in `computenet_fuzz::gres`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| computenet_fuzz::gres(data));
