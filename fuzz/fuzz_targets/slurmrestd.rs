//! libFuzzer entry point; the checks are in `computenet_fuzz::slurmrestd`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| computenet_fuzz::slurmrestd(data));
