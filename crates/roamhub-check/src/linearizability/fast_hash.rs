//! A quick hasher for the checker's own tables of states and configurations.
//!
//! The standard hasher resists keys chosen by an attacker, which costs time on every
//! state the search interns and every configuration it remembers; a check spends a large
//! share of its time there otherwise. These keys come from a recorded history, not from
//! an attacker, so a plain multiply-and-rotate mix is enough: a poor hash would only slow
//! lookups down, never change a verdict, since keys are still compared in full.

use std::hash::{BuildHasherDefault, Hasher};

/// Builds [`FastHasher`]s, for `HashMap::with_hasher` and `HashSet::with_hasher`.
pub(super) type FastHash = BuildHasherDefault<FastHasher>;

#[derive(Default)]
pub(super) struct FastHasher {
    hash: u64,
}

/// An odd constant with bits spread evenly (the golden ratio's fraction, in 64 bits).
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(23) ^ word).wrapping_mul(MIX);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("chunks of eight bytes")));
        }

        let mut last = [0; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(last) ^ rest.len() as u64);
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        // Fold the high bits, where multiplying leaves the most mixing, into the low ones.
        self.hash ^ (self.hash >> 32)
    }
}
