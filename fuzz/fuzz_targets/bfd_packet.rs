//! Fuzz target: see `ironlb::net::bfd::fuzz::packet`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironlb::net::bfd::fuzz::packet(data));
