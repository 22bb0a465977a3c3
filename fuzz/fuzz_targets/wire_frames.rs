//! Fuzz target: see `ironlb::fuzz::wire_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironlb::fuzz::wire_frames(data));
