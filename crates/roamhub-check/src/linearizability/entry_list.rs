//! The time-ordered list of invocations and answers that the search walks (Lowe's list).
//!
//! Every operation has a call entry at its invocation; an answered one also has a return
//! entry at its completion. An operation of unknown outcome has none: it completes
//! infinitely late and so never holds anything back. Placing an operation lifts its
//! entries out of the list; backtracking puts them back. The operations that may be
//! placed next are those whose call entries come before the first remaining return entry.
//!
//! Entries are linked by index in both directions, so that lifting and putting back cost
//! a constant each. The search backtracks in exactly the reverse order of its lifts, which
//! is what lets [`EntryList::unlift`] restore the links an entry had.

use super::operations::{OpId, Operations};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EntryKind {
    Call,
    Return,
    /// The fixed first and last entries, which are never lifted.
    Sentinel,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    op: OpId,
    kind: EntryKind,
}

pub(super) struct EntryList {
    entries: Vec<Entry>,
    next: Vec<usize>,
    prev: Vec<usize>,
    call_entry: Vec<usize>,
    return_entry: Vec<Option<usize>>,
}

/// The index of the first sentinel; the last one closes the list.
const HEAD: usize = 0;

impl EntryList {
    pub fn new(operations: &Operations) -> Self {
        let sentinel = Entry { op: 0, kind: EntryKind::Sentinel };
        let mut entries = vec![sentinel];
        entries.extend(timed_entries(operations));
        entries.push(sentinel);

        let mut call_entry = vec![0; operations.all.len()];
        let mut return_entry = vec![None; operations.all.len()];
        for (index, entry) in entries.iter().enumerate() {
            match entry.kind {
                EntryKind::Call => call_entry[entry.op] = index,
                EntryKind::Return => return_entry[entry.op] = Some(index),
                EntryKind::Sentinel => {}
            }
        }

        // The sentinels' outer links point nowhere; they are never lifted or followed.
        let count = entries.len();
        let next = (1..=count).collect();
        let prev = (0..count).map(|index| index.wrapping_sub(1)).collect();
        EntryList { entries, next, prev, call_entry, return_entry }
    }

    /// The operations that may be placed next, in invocation order.
    pub fn placeable(&self) -> Vec<OpId> {
        let mut placeable = Vec::new();
        let mut at = self.next[HEAD];
        while self.entries[at].kind == EntryKind::Call {
            placeable.push(self.entries[at].op);
            at = self.next[at];
        }
        placeable
    }

    /// Removes the entries of `op`, which the search just placed.
    pub fn lift(&mut self, op: OpId) {
        self.unlink(self.call_entry[op]);
        if let Some(entry) = self.return_entry[op] {
            self.unlink(entry);
        }
    }

    /// Puts back the entries of `op`, the operation lifted last.
    pub fn unlift(&mut self, op: OpId) {
        if let Some(entry) = self.return_entry[op] {
            self.relink(entry);
        }
        self.relink(self.call_entry[op]);
    }

    fn unlink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    fn relink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        debug_assert_eq!(self.next[prev], next, "entries must be put back in reverse order");
        self.next[prev] = entry;
        self.prev[next] = entry;
    }
}

/// The call and return entries of every operation, ordered by time.
///
/// At equal times a call comes before a return: an operation invoked at the very moment
/// another completed overlaps it, since real time only orders a completion strictly
/// before an invocation.
fn timed_entries(operations: &Operations) -> Vec<Entry> {
    let mut timed = Vec::with_capacity(2 * operations.all.len());
    for (op, operation) in operations.all.iter().enumerate() {
        timed.push((operation.invoked_ns, 0, Entry { op, kind: EntryKind::Call }));
        if let Some(completed_ns) = operation.completed_ns {
            timed.push((completed_ns, 1, Entry { op, kind: EntryKind::Return }));
        }
    }

    timed.sort_by_key(|(time_ns, rank, entry)| (*time_ns, *rank, entry.op));
    timed.into_iter().map(|(_, _, entry)| entry).collect()
}
