//! Every message between nodes, decoded as the node decodes it.
//! The properties are in `roamhub_fuzz::raft_messages`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roamhub_fuzz::raft_messages::check(data));
