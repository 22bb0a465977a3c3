//! Fuzz target: see `ironlb::fuzz::bgp_session`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironlb::fuzz::bgp_session(data));
