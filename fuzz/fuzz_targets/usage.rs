//! libFuzzer entry point; the checks are in `computenet_fuzz::usage`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| computenet_fuzz::usage(data));
