//! Sets of placed operations, as bits, and their compact form for memoisation.
//!
//! The search keeps one set for answered operations and one for those of unknown outcome.
//! Operations are numbered in invocation order, and the search places answered ones
//! roughly in that order, so a set of them is mostly a run of full words followed by a
//! few mixed ones. [`CompactSet`] stores just that, which keeps each remembered
//! configuration small however long the history.

/// A set of operation slots.
pub(super) struct OpSet {
    words: Vec<u64>,
    len: usize,
}

/// An [`OpSet`] as the number of leading full words and the words after them, up to the
/// last one with a bit set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct CompactSet {
    full_words: usize,
    rest: Box<[u64]>,
}

impl OpSet {
    pub fn with_capacity(slots: usize) -> Self {
        OpSet { words: vec![0; slots.div_ceil(64)], len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn insert(&mut self, slot: usize) {
        let (word, bit) = position(slot);
        debug_assert_eq!(self.words[word] & bit, 0, "slot {slot} placed twice");
        self.words[word] |= bit;
        self.len += 1;
    }

    pub fn remove(&mut self, slot: usize) {
        let (word, bit) = position(slot);
        debug_assert_ne!(self.words[word] & bit, 0, "slot {slot} removed but not placed");
        self.words[word] &= !bit;
        self.len -= 1;
    }

    pub fn compact(&self) -> CompactSet {
        let full_words = self.words.iter().take_while(|word| **word == u64::MAX).count();
        let rest = &self.words[full_words..];
        let used = rest.iter().rposition(|word| *word != 0).map_or(0, |last| last + 1);
        CompactSet { full_words, rest: rest[..used].into() }
    }
}

fn position(slot: usize) -> (usize, u64) {
    (slot / 64, 1 << (slot % 64))
}
