//! libFuzzer entry point; the checks are in `computenet_fuzz::jobkinds`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| computenet_fuzz::jobkinds(data));
