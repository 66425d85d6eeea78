//! The depth-first search for a linearization, one pass at a time.
//!
//! A pass starts from the model's initial state with nothing placed. At each
//! configuration it tries, in order, the operations that may come next in real time;
//! placing one leads to a new configuration unless an identical one was explored before.
//! When every answered operation is placed, the history is linearizable. When a
//! configuration has nothing left to try, the search backtracks. Passes share the model
//! states met so far and one budget of explored configurations.
//!
//! Which placements are worth trying at all is decided in [`successor`], which also holds
//! the argument that the pruning loses no linearization; the order in which they are
//! tried, which only changes how soon one is found, in [`candidates`].
//!
//! A pass bounds how many operations of unknown outcome it places in a row, and says
//! whether that bound cut anything off; the caller then widens it.

mod candidates;
mod successor;

use std::collections::HashSet;

use super::Model;
use super::entry_list::EntryList;
use super::fast_hash::FastHash;
use super::op_set::{CompactSet, OpSet};
use super::operations::{OpId, Operation, Operations};
use super::state_table::{StateId, StateTable};
use super::violation::{OperationReport, Violation};
use crate::history::Event;

/// How a pass ended.
pub(super) enum PassEnd {
    /// Every answered operation was placed.
    Linearized,
    /// Every configuration allowed in the pass was explored in vain. If the bound on runs
    /// of operations of unknown outcome cut nothing off, no linearization exists.
    Exhausted { cut_off: bool },
    /// The budget of explored configurations ran out.
    OutOfBudget,
}

/// How a configuration was reached, as far as that limits what may be placed next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Arrival {
    /// From the start, or by placing an answered operation.
    Free,
    /// By placing `op`, of unknown outcome, in the state `before`, the `run`th such
    /// operation placed in a row.
    AfterUnknown { op: OpId, before: StateId, run: usize },
}

impl Arrival {
    fn unknown_run(self) -> usize {
        match self {
            Arrival::Free => 0,
            Arrival::AfterUnknown { run, .. } => run,
        }
    }
}

/// Everything that decides how a configuration can continue, which is what the search
/// remembers so that it never explores the same continuation twice.
#[derive(PartialEq, Eq, Hash)]
struct Configuration {
    answered: CompactSet,
    unknown: CompactSet,
    state: StateId,
    arrival: Arrival,
}

/// A configuration on the search path.
struct Frame<S> {
    state: StateId,
    arrival: Arrival,
    /// The operation placed to reach it; `None` at the start.
    placed: Option<OpId>,
    /// The operations to try from it, in order, and how many were tried so far.
    candidates: Vec<OpId>,
    tried: usize,
    /// The state the first candidate leads to, when choosing the candidates computed it.
    first_next: Option<S>,
    /// What each answered candidate leads to, once operations of unknown outcome tried
    /// here needed it.
    answered_next: Option<Vec<(OpId, Option<S>)>>,
}

/// The configuration a pass got stuck in with the most answered operations placed.
struct DeadEnd {
    prefix: Vec<OpId>,
    blocked: Vec<OpId>,
    state: StateId,
    answered_placed: usize,
}

/// What happened to a configuration the search tried to enter.
enum Entered {
    New,
    AlreadyExplored,
    AllAnsweredPlaced,
    OutOfBudget,
}

pub(super) struct Search<'h, M: Model> {
    model: &'h M,
    history: &'h [Event<M::Input, M::Output>],
    operations: Operations,
    states: StateTable<M::State>,
    initial: StateId,
    explored: usize,
    explored_max: usize,

    // What one pass changes; an exhausted pass leaves all but `deepest` as it found them.
    list: EntryList,
    answered: OpSet,
    unknown: OpSet,
    visited: HashSet<Configuration, FastHash>,
    stack: Vec<Frame<M::State>>,
    unknown_run_max: usize,
    cut_off: bool,
    deepest: Option<DeadEnd>,
}

impl<'h, M: Model> Search<'h, M> {
    pub fn new(
        model: &'h M,
        history: &'h [Event<M::Input, M::Output>],
        explored_max: usize,
    ) -> Self {
        let operations = Operations::from_history(history, |input| model.is_read_only(input));
        let mut states = StateTable::new();
        let initial = states.intern(model.init());

        Search {
            model,
            history,
            list: EntryList::new(&operations),
            answered: OpSet::with_capacity(operations.answered_count),
            unknown: OpSet::with_capacity(operations.unknown_count),
            operations,
            states,
            initial,
            explored: 0,
            explored_max,
            visited: HashSet::default(),
            stack: Vec::new(),
            unknown_run_max: 0,
            cut_off: false,
            deepest: None,
        }
    }

    /// Configurations explored by every pass so far.
    pub fn explored(&self) -> usize {
        self.explored
    }

    /// Searches from the start for an order that places at most `unknown_run_max`
    /// operations of unknown outcome in a row. After [`PassEnd::Linearized`] or
    /// [`PassEnd::OutOfBudget`] the search is over and must not run another pass.
    pub fn run_pass(&mut self, unknown_run_max: usize) -> PassEnd {
        debug_assert!(self.stack.is_empty(), "a pass runs only after an exhausted one");
        self.visited.clear();
        self.unknown_run_max = unknown_run_max;
        self.cut_off = false;
        self.deepest = None;

        if self.operations.answered_count == 0 {
            return PassEnd::Linearized;
        }
        self.push(self.initial, Arrival::Free, None);

        while let Some(frame) = self.stack.last_mut() {
            let Some(&op) = frame.candidates.get(frame.tried) else {
                self.backtrack();
                continue;
            };
            frame.tried += 1;

            let Some((state, arrival)) = self.successor(op) else { continue };
            match self.enter(op, state, arrival) {
                Entered::New | Entered::AlreadyExplored => {}
                Entered::AllAnsweredPlaced => return PassEnd::Linearized,
                Entered::OutOfBudget => return PassEnd::OutOfBudget,
            }
        }

        debug_assert_eq!(self.answered.len() + self.unknown.len(), 0);
        PassEnd::Exhausted { cut_off: self.cut_off }
    }

    /// The violation found by the last pass, which must have been exhausted.
    pub fn violation(&self) -> Violation {
        let deepest = self.deepest.as_ref().expect("an exhausted pass leaves a dead end");
        let history_index = |op: &OpId| self.op(*op).history_index;
        let report = |op: &OpId| {
            let index = history_index(op);
            OperationReport::new(index, &self.history[index])
        };

        Violation {
            longest_prefix: deepest.prefix.iter().map(history_index).collect(),
            state_after_prefix: format!("{:?}", self.states.get(deepest.state)),
            blocked: deepest.blocked.iter().map(report).collect(),
        }
    }

    /// Places `op` to enter the configuration it leads to, unless that one was explored.
    fn enter(&mut self, op: OpId, state: StateId, arrival: Arrival) -> Entered {
        self.mark(op);
        if self.answered.len() == self.operations.answered_count {
            return Entered::AllAnsweredPlaced;
        }

        let configuration = Configuration {
            answered: self.answered.compact(),
            unknown: self.unknown.compact(),
            state,
            arrival,
        };
        if self.visited.contains(&configuration) {
            self.unmark(op);
            return Entered::AlreadyExplored;
        }
        if self.explored >= self.explored_max {
            return Entered::OutOfBudget;
        }

        self.visited.insert(configuration);
        self.explored += 1;
        self.list.lift(op);
        self.push(state, arrival, Some(op));
        Entered::New
    }

    fn push(&mut self, state: StateId, arrival: Arrival, placed: Option<OpId>) {
        let (candidates, first_next) = self.candidates(state, arrival);
        let answered_next = None;
        let frame =
            Frame { state, arrival, placed, candidates, tried: 0, first_next, answered_next };
        self.stack.push(frame);
    }

    /// Leaves the current configuration, whose candidates are all tried.
    fn backtrack(&mut self) {
        let frame = self.stack.pop().expect("backtracking needs a configuration");
        self.note_dead_end(&frame);

        if let Some(op) = frame.placed {
            self.list.unlift(op);
            self.unmark(op);
        }
    }

    /// Remembers `frame`, a dead end, if it is the deepest of the pass so far: that is
    /// the one a violation reports.
    fn note_dead_end(&mut self, frame: &Frame<M::State>) {
        let answered_placed = self.answered.len();
        let deepest_so_far = self.deepest.as_ref().map_or(0, |dead_end| dead_end.answered_placed);
        if self.deepest.is_some() && answered_placed <= deepest_so_far {
            return;
        }

        let on_path = self.stack.iter().chain([frame]);
        let placeable = self.list.placeable();
        self.deepest = Some(DeadEnd {
            prefix: on_path.filter_map(|frame| frame.placed).collect(),
            blocked: placeable.into_iter().filter(|op| !self.op(*op).is_unknown()).collect(),
            state: frame.state,
            answered_placed,
        });
    }

    /// What the model says placing `op` in `state` leads to.
    fn step(&self, state: &M::State, op: OpId) -> Option<M::State> {
        let event = &self.history[self.op(op).history_index];
        self.model.step(state, &event.input, event.outcome.output())
    }

    fn op(&self, op: OpId) -> &Operation {
        &self.operations.all[op]
    }

    fn mark(&mut self, op: OpId) {
        let operation = &self.operations.all[op];
        match operation.is_unknown() {
            true => self.unknown.insert(operation.slot),
            false => self.answered.insert(operation.slot),
        }
    }

    fn unmark(&mut self, op: OpId) {
        let operation = &self.operations.all[op];
        match operation.is_unknown() {
            true => self.unknown.remove(operation.slot),
            false => self.answered.remove(operation.slot),
        }
    }
}
