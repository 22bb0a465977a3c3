//! Fuzz target: see `ironlb::fuzz::config_yaml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironlb::fuzz::config_yaml(data));
