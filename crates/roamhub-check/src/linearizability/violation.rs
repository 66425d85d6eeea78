//! What a failed check reports, readable without the history at hand.
//!
//! A [`Violation`] keeps its operations as text, not as the model's types, so that a
//! [`super::Verdict`] is one type for every model and prints, logs and serializes as it is.

use std::fmt;
use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use crate::history::{Event, Outcome};

/// Why a history is not linearizable: the furthest the search got, and what it could not
/// place after that.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The longest linearizable prefix found: indexes into the history, in their
    /// linearization order. Operations of unknown outcome appear where they were placed.
    pub longest_prefix: Vec<usize>,
    /// The model state after that prefix, as `Debug` prints it.
    pub state_after_prefix: String,
    /// The answered operations that could have come next in real time, none of which can
    /// be placed after the prefix in a way that lets the rest of the history follow.
    pub blocked: Vec<OperationReport>,
}

/// One operation of the history, as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationReport {
    /// Where the operation sits in the history.
    pub index: usize,
    pub process: u64,
    pub invoked_ns: u64,
    /// `None` when the outcome is unknown.
    pub completed_ns: Option<u64>,
    /// The input, as `Debug` prints it.
    pub input: String,
    /// The outcome, as `Debug` prints it.
    pub outcome: String,
}

impl OperationReport {
    pub(super) fn new<I: Debug, O: Debug>(index: usize, event: &Event<I, O>) -> Self {
        let unknown = matches!(event.outcome, Outcome::Unknown);
        OperationReport {
            index,
            process: event.process,
            invoked_ns: event.invoked_ns,
            completed_ns: (!unknown).then_some(event.completed_ns),
            input: format!("{:?}", event.input),
            outcome: format!("{:?}", event.outcome),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "not linearizable: no order of the operations explains every answer")?;
        writeln!(
            f,
            "longest linearizable prefix ({} operations, history indexes in order): {:?}",
            self.longest_prefix.len(),
            self.longest_prefix
        )?;
        writeln!(f, "model state after it: {}", self.state_after_prefix)?;
        write!(f, "operations that cannot be placed next:")?;
        for operation in &self.blocked {
            write!(f, "\n  {operation}")?;
        }
        Ok(())
    }
}

impl fmt::Display for OperationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} process {} [{} ns, ", self.index, self.process, self.invoked_ns)?;
        match self.completed_ns {
            Some(completed_ns) => write!(f, "{completed_ns} ns]")?,
            None => write!(f, "never answered]")?,
        }
        write!(f, " {} -> {}", self.input, self.outcome)
    }
}
