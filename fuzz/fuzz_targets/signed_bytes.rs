//! The bytes a citizen signs, decoded and re-encoded; arbitrary signatures never verify.
//! The properties are in `roamhub_fuzz::signed_bytes`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roamhub_fuzz::signed_bytes::check(data));
