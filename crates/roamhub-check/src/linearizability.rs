//! Deciding whether a history is linearizable with respect to a sequential [`Model`].
//!
//! A history is linearizable when some sequence of its operations (every answered one,
//! plus any subset of those of unknown outcome) runs through the model producing exactly
//! the outputs clients saw, and respects real time: an answered operation that completed
//! before another was invoked comes first. Operations the system refused are dropped.
//!
//! The search is the one of Wing and Gong as refined by Lowe: a depth-first walk that
//! places one operation at a time, remembers every (placed set, model state) it has
//! explored so that no configuration is explored twice, and backtracks from dead ends.
//! Only operations invoked before the earliest pending answer may be placed next. The
//! walk lives in `search`, the time-ordered list it walks in `entry_list`.
//!
//! Operations of unknown outcome are the expensive part: they never block anything and
//! stay placeable forever, so a naive search tries every subset of them at every dead
//! end. The search skips orders that place one needlessly (`search::successor` has the
//! rules, and why they lose nothing), and runs in passes that allow longer and longer
//! runs of them in a row; the last pass allows any, so every verdict is exact. The whole
//! search is bounded by a number of explored configurations, past which it gives up.
//!
//! Finding an order is usually quick, because the search guesses well which operation
//! comes next (`search::candidates`). Proving that there is none means exploring every
//! order, and each operation of unknown outcome multiplies them: a long history with a
//! violation and dozens of unknown outcomes can end in [`Verdict::GaveUp`].

mod entry_list;
mod fast_hash;
mod op_set;
mod operations;
mod search;
mod state_table;
mod violation;

use std::fmt::Debug;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::history::{Event, validate};
use search::{PassEnd, Search};

pub use violation::{OperationReport, Violation};

/// Configurations (placed operations and model state) that [`check`] explores before it
/// gives up. Each is remembered until the check ends, at about a hundred bytes, besides
/// the distinct model states met.
pub const STATES_EXPLORED_MAX: usize = 2_000_000;

/// Operations of unknown outcome the first pass may place in a row. Each further pass
/// doubles it, until it covers all of them.
const UNKNOWN_RUN_MAX_FIRST_PASS: usize = 1;

/// A sequential specification of the object a history was recorded against.
pub trait Model {
    type State: Clone + Eq + Hash + Debug;
    type Input: Debug;
    type Output: Debug;

    fn init(&self) -> Self::State;

    /// The state after applying `input` in `state` if that can yield `output`; `None` when
    /// it cannot. `output` is `None` for an operation of unknown outcome: apply its effect
    /// as the system would.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// Whether an operation with `input` never changes the state, whatever the state and
    /// whatever it answers (a read, say).
    ///
    /// The search places such an operation as soon as its answer fits, without trying
    /// anything else first, which makes long histories much cheaper to check. Claiming
    /// this of an input that can change the state makes verdicts wrong. The default,
    /// `false`, is always correct.
    fn is_read_only(&self, input: &Self::Input) -> bool {
        let _ = input;
        false
    }
}

/// What [`check`] concluded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Linearizable,
    NotLinearizable(Violation),
    /// The search explored `explored` configurations without deciding.
    GaveUp {
        explored: usize,
    },
}

/// Checks `history` against `model`, exploring at most [`STATES_EXPLORED_MAX`]
/// configurations.
///
/// # Panics
///
/// When an answered event completed before it was invoked (see [`validate`]): that is a
/// bug in the recorder, not a finding about the system.
pub fn check<M: Model>(model: &M, history: &[Event<M::Input, M::Output>]) -> Verdict {
    check_with_bound(model, history, STATES_EXPLORED_MAX)
}

/// Like [`check`], exploring at most `states_explored_max` configurations.
// TODO: let the caller bound how long after its invocation an operation of unknown outcome
// may take effect, so that refuting a long history need not keep every old one placeable.
pub fn check_with_bound<M: Model>(
    model: &M,
    history: &[Event<M::Input, M::Output>],
    states_explored_max: usize,
) -> Verdict {
    if let Err(malformed) = validate(history) {
        panic!("malformed history: {malformed}");
    }

    let mut search = Search::new(model, history, states_explored_max);
    let mut unknown_run_max = UNKNOWN_RUN_MAX_FIRST_PASS;
    loop {
        match search.run_pass(unknown_run_max) {
            PassEnd::Linearized => return Verdict::Linearizable,
            PassEnd::OutOfBudget => return Verdict::GaveUp { explored: search.explored() },
            PassEnd::Exhausted { cut_off: false } => {
                return Verdict::NotLinearizable(search.violation());
            }
            // The pass may have missed an order with a longer run: widen and search again.
            PassEnd::Exhausted { cut_off: true } => {
                unknown_run_max = unknown_run_max.saturating_mul(2);
            }
        }
    }
}
