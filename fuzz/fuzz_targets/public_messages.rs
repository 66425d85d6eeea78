//! A public API request (first byte: its type) decoded by prost and converted by the node.
//! The properties are in `roamhub_fuzz::public_messages`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roamhub_fuzz::public_messages::check(data));
