//! Fuzz target: see `ironlb::fuzz::bgp_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironlb::fuzz::bgp_message(data));
