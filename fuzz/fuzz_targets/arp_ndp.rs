//! Fuzz target: see `ironlb::fuzz::arp_ndp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironlb::fuzz::arp_ndp(data));
