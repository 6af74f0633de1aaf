//! libFuzzer entry point; the checks are in `computenet_fuzz::watch`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| computenet_fuzz::watch(data));
