//! The record of a run: which operations clients invoked, when, and how each one ended.
//!
//! A fault-injection runner fills a history while it drives real nodes; the checker in
//! [`crate::linearizability`] then looks for a sequential order that explains it. Times
//! are monotonic nanoseconds since the run began, so events of different clients compare
//! directly. Histories (de)serialize with serde, so a failing run can be kept as JSON and
//! checked again later.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How an operation ended, as its client saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome<O> {
    /// The system answered with this output.
    Ok(O),
    /// The system answered that it did not apply the operation: it has no effect, and the
    /// checker drops it.
    Failed,
    /// No answer (timeout, connection lost, leader change): it may have taken effect at
    /// any moment after its invocation, or never.
    Unknown,
}

impl<O> Outcome<O> {
    /// The output the system answered with, if it answered one.
    pub fn output(&self) -> Option<&O> {
        match self {
            Outcome::Ok(output) => Some(output),
            Outcome::Failed | Outcome::Unknown => None,
        }
    }
}

/// One operation of a history: who invoked it, when, with what, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event<I, O> {
    /// The client that invoked it; a process's operations never overlap.
    pub process: u64,
    /// When the client invoked it, in monotonic nanoseconds since the run began.
    pub invoked_ns: u64,
    /// When the answer came. Ignored for [`Outcome::Unknown`], which is treated as
    /// infinitely late.
    pub completed_ns: u64,
    /// What the client asked for.
    pub input: I,
    /// How it ended.
    pub outcome: Outcome<O>,
}

/// An event that cannot come from a monotonic clock: it was answered before it was asked.
///
/// This is a bug in whatever recorded the history, never a finding about the system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MalformedEvent {
    /// Where the event sits in the history.
    pub index: usize,
    pub invoked_ns: u64,
    pub completed_ns: u64,
}

impl fmt::Display for MalformedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event #{} completed at {} ns, before its invocation at {} ns",
            self.index, self.completed_ns, self.invoked_ns
        )
    }
}

impl std::error::Error for MalformedEvent {}

/// Checks that every answered event completed no earlier than it was invoked.
///
/// Events of unknown outcome are exempt: their completion time is not used.
pub fn validate<I, O>(history: &[Event<I, O>]) -> Result<(), MalformedEvent> {
    let malformed = history.iter().enumerate().find(|(_, event)| {
        let answered = !matches!(event.outcome, Outcome::Unknown);
        answered && event.completed_ns < event.invoked_ns
    });

    match malformed {
        None => Ok(()),
        Some((index, event)) => Err(MalformedEvent {
            index,
            invoked_ns: event.invoked_ns,
            completed_ns: event.completed_ns,
        }),
    }
}
