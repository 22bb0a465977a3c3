//! Fuzz target: see `ironlb::fuzz::admin_bodies`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironlb::fuzz::admin_bodies(data));
