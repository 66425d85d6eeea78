//! The model of one citizen of the roamhub index, as clients see it.
//!
//! The runner checks each citizen's history on its own, so the model holds one citizen:
//! their home city, where each category of their data lives, and which consents they
//! gave. Consents are named by tags the runner chose, unique within a run, so that a
//! history can say which consent a withdrawal meant without knowing the index's own ids.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::linearizability::Model;

/// Everything a linearizable read of one citizen returns.
#[derive(Clone, Default, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct CitizenState {
    pub home_city: String,
    /// Data category -> current pointer URI.
    pub locations: BTreeMap<String, String>,
    /// Consent tag -> still given (false once withdrawn).
    pub consents: BTreeMap<u64, bool>,
}

/// What a client asks of the index about one citizen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CitizenInput {
    SetLocation {
        category: String,
        uri: String,
    },
    MoveHome {
        city: String,
    },
    /// Grants a new consent, which the runner identifies by a unique tag it chose.
    Grant {
        tag: u64,
    },
    Withdraw {
        tag: u64,
    },
    /// A linearizable read of the whole citizen.
    Read,
    /// A service asks for the citizen's pointers under its consent.
    Resolve,
}

/// What the index answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CitizenOutput {
    /// A write was acknowledged.
    Done,
    /// What the read saw.
    Read(CitizenState),
    /// Whether any pointer was released.
    Resolved { released: bool },
}

/// One citizen, starting from `initial`.
#[derive(Clone, Debug, Default)]
pub struct CitizenModel {
    pub initial: CitizenState,
}

impl Model for CitizenModel {
    type State = CitizenState;
    type Input = CitizenInput;
    type Output = CitizenOutput;

    fn init(&self) -> CitizenState {
        self.initial.clone()
    }

    fn is_read_only(&self, input: &CitizenInput) -> bool {
        matches!(input, CitizenInput::Read | CitizenInput::Resolve)
    }

    fn step(
        &self,
        state: &CitizenState,
        input: &CitizenInput,
        output: Option<&CitizenOutput>,
    ) -> Option<CitizenState> {
        match input {
            CitizenInput::Read => read(state, output),
            CitizenInput::Resolve => resolve(state, output),
            write => match output {
                None => write_unanswered(state, write),
                Some(CitizenOutput::Done) => write_acknowledged(state, write),
                Some(_) => None,
            },
        }
    }
}

/// A read sees the whole state exactly; one of unknown outcome changes nothing.
fn read(state: &CitizenState, output: Option<&CitizenOutput>) -> Option<CitizenState> {
    match output {
        None => Some(state.clone()),
        Some(CitizenOutput::Read(seen)) if seen == state => Some(state.clone()),
        Some(_) => None,
    }
}

/// A resolution releases pointers exactly when some consent is still given.
fn resolve(state: &CitizenState, output: Option<&CitizenOutput>) -> Option<CitizenState> {
    let any_given = state.consents.values().any(|given| *given);
    match output {
        None => Some(state.clone()),
        Some(CitizenOutput::Resolved { released }) if *released == any_given => Some(state.clone()),
        Some(_) => None,
    }
}

/// A write the index acknowledged. A withdrawal is acknowledged only for a consent that
/// is still given.
fn write_acknowledged(state: &CitizenState, write: &CitizenInput) -> Option<CitizenState> {
    match write {
        CitizenInput::Withdraw { tag } if state.consents.get(tag) != Some(&true) => None,
        _ => write_unanswered(state, write),
    }
}

/// The effect of a write that may not have been answered. A withdrawal of a consent that
/// is not given changes nothing; a second grant of one tag cannot happen.
fn write_unanswered(state: &CitizenState, write: &CitizenInput) -> Option<CitizenState> {
    let mut next = state.clone();
    match write {
        CitizenInput::SetLocation { category, uri } => {
            next.locations.insert(category.clone(), uri.clone());
        }
        CitizenInput::MoveHome { city } => next.home_city.clone_from(city),
        CitizenInput::Grant { tag } => {
            if next.consents.insert(*tag, true).is_some() {
                return None;
            }
        }
        CitizenInput::Withdraw { tag } => {
            if let Some(given) = next.consents.get_mut(tag) {
                *given = false;
            }
        }
        // Reads change nothing; `step` checks their answers before it gets here.
        CitizenInput::Read | CitizenInput::Resolve => {}
    }
    Some(next)
}
