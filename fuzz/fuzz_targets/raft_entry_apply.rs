//! A Raft entry, forwarded work or append request applied to two replicas that must agree.
//! The properties are in `roamhub_fuzz::raft_entry_apply`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roamhub_fuzz::raft_entry_apply::check(data));
