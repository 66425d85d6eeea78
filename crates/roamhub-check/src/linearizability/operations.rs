//! The operations the search may place, taken from a history once before it starts.
//!
//! Refused operations are dropped here: they had no effect, so no order needs them. So
//! are read-only operations of unknown outcome, for the same reason. The rest are sorted
//! by invocation and numbered twice: by [`OpId`] among all of them, and by a slot among
//! those of their kind, answered or unknown, so that each kind gets a dense set of placed
//! operations.

use crate::history::{Event, Outcome};

/// An operation's position among [`Operations::all`].
pub(super) type OpId = usize;

/// One operation the search may place.
#[derive(Clone, Debug)]
pub(super) struct Operation {
    /// Where the operation sits in the history the caller passed.
    pub history_index: usize,
    pub invoked_ns: u64,
    /// `None` for an operation of unknown outcome: it completes infinitely late.
    pub completed_ns: Option<u64>,
    /// The operation's position among the operations of its kind, in invocation order.
    pub slot: usize,
    /// Whether the model says the operation never changes the state. Such an operation
    /// is always answered: unanswered ones are dropped.
    pub read_only: bool,
}

impl Operation {
    pub fn is_unknown(&self) -> bool {
        self.completed_ns.is_none()
    }
}

/// Every operation of a history that the search may place, in invocation order.
pub(super) struct Operations {
    pub all: Vec<Operation>,
    /// Operations that were answered; every linearization places all of them.
    pub answered_count: usize,
    /// Operations of unknown outcome; a linearization places any subset of them.
    pub unknown_count: usize,
}

impl Operations {
    /// The operations of `history` worth placing, given which inputs never change the
    /// state.
    pub fn from_history<I, O>(history: &[Event<I, O>], is_read_only: impl Fn(&I) -> bool) -> Self {
        let mut all: Vec<Operation> = history
            .iter()
            .enumerate()
            .filter_map(|(history_index, event)| operation(history_index, event, &is_read_only))
            .collect();
        all.sort_by_key(|op| (op.invoked_ns, op.history_index));

        let mut answered_count = 0;
        let mut unknown_count = 0;
        for op in &mut all {
            let count = if op.is_unknown() { &mut unknown_count } else { &mut answered_count };
            op.slot = *count;
            *count += 1;
        }

        Operations { all, answered_count, unknown_count }
    }
}

/// The operation an event records, unless placing it could never matter: the system
/// refused it, or nobody saw its answer and it changes nothing.
fn operation<I, O>(
    history_index: usize,
    event: &Event<I, O>,
    is_read_only: impl Fn(&I) -> bool,
) -> Option<Operation> {
    let read_only = is_read_only(&event.input);
    let completed_ns = match event.outcome {
        Outcome::Ok(_) => Some(event.completed_ns),
        Outcome::Unknown if read_only => return None,
        Outcome::Unknown => None,
        Outcome::Failed => return None,
    };
    // The slot is assigned once every operation is sorted.
    let invoked_ns = event.invoked_ns;
    Some(Operation { history_index, invoked_ns, completed_ns, slot: 0, read_only })
}
