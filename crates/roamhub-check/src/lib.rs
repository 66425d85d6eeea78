//! Checking that what clients saw of roamhub is linearizable.
//!
//! A fault-injection runner drives real nodes, records every operation it invoked and how
//! it ended, and hands each citizen's history to this crate. The crate decides whether
//! some sequential order of those operations, consistent with the order in which they
//! happened in real time, explains every answer. It does no I/O and reads no clock: the
//! history carries its own times.
//!
//! A tour of the modules:
//! - [`history`]: the record of a run ([`Event`], [`Outcome`]) and its well-formedness;
//! - [`linearizability`]: the [`Model`] trait and [`check`], a search written once for
//!   every model;
//! - [`citizen`]: the model of one citizen of the roamhub index.

pub mod citizen;
pub mod history;
pub mod linearizability;

pub use citizen::{CitizenInput, CitizenModel, CitizenOutput, CitizenState};
pub use history::{Event, MalformedEvent, Outcome};
pub use linearizability::{
    Model, OperationReport, STATES_EXPLORED_MAX, Verdict, Violation, check, check_with_bound,
};
