//! Which placements the search tries at all, and why skipping the others loses nothing.
//!
//! The model decides whether an operation fits. Beyond that, the search skips orders that
//! can always be rewritten into one it does try, with every answer unchanged. Without
//! that, operations of unknown outcome, which are never required and stay placeable
//! forever, would be tried everywhere and in every combination. The rules:
//!
//! 1. An operation of unknown outcome that leaves the state as it was is not placed:
//!    leaving it out is the same.
//! 2. Right after one of unknown outcome, `u`, an operation is not placed if placing it
//!    without `u` gives the same state: `u` could be left out.
//! 3. Nor if placing it first and `u` after gives the same state: `u` could move one
//!    place later. Past another operation of unknown outcome this only counts when `u`
//!    was invoked before it, so that two of them cannot keep swapping.
//! 4. From any other configuration, when an answered read-only operation fits, it is
//!    placed first and nothing else is tried (see [`super::candidates`]): it changes
//!    nothing, so moving it there from later in any order keeps every answer.
//!
//! Why nothing is lost: rank the orders that explain a history by, in turn, fewer
//! operations of unknown outcome; those placed later (their positions summed);
//! read-only operations placed as soon as they fit; and fewer pairs of unknown-outcome
//! operations placed in invocation order. Each rewrite above moves an order strictly up
//! that ranking, and there are finitely many orders. So if any order explains the
//! history, a best-ranked one does, no rule skips it, and the search finds it. A
//! configuration is remembered with how it was reached ([`Arrival`]), which is all the
//! rules look at, so the memo only skips continuations that were explored.

use super::{Arrival, Search};
use crate::linearizability::Model;
use crate::linearizability::operations::OpId;
use crate::linearizability::state_table::StateId;

impl<M: Model> Search<'_, M> {
    /// The state and arrival that placing `op` in the current configuration leads to, or
    /// `None` when the model refuses it or a rule above skips it.
    pub(super) fn successor(&mut self, op: OpId) -> Option<(StateId, Arrival)> {
        let frame = self.stack.last_mut().expect("a successor has a current configuration");
        let (from, arrival) = (frame.state, frame.arrival);
        let known_next = frame.first_next.take();
        let unknown = self.op(op).is_unknown();
        if unknown && !self.unknown_run_may_grow(arrival) {
            self.cut_off = true;
            return None;
        }

        let next = match known_next {
            Some(next) => next,
            None => self.step(self.states.get(from), op)?,
        };
        if !self.follows_rules(op, from, arrival, &next) {
            return None;
        }

        let arrival = match unknown {
            true => Arrival::AfterUnknown { op, before: from, run: arrival.unknown_run() + 1 },
            false => Arrival::Free,
        };
        if unknown && self.leads_nowhere(op, arrival, &next) {
            return None;
        }
        Some((self.intern(op, from, next), arrival))
    }

    /// Whether placing `op` in `from`, reached by `arrival`, to reach `next` is allowed by
    /// rules 1 to 3.
    fn follows_rules(&self, op: OpId, from: StateId, arrival: Arrival, next: &M::State) -> bool {
        if self.op(op).is_unknown() && *next == *self.states.get(from) {
            return false;
        }
        match arrival {
            Arrival::Free => true,
            Arrival::AfterUnknown { op: previous, before, .. } => {
                !self.previous_unknown_is_needless(previous, before, op, next)
            }
        }
    }

    /// Whether the configuration that placing `unknown` in `from` leads to, `arrival` and
    /// `next`, is one where nothing may follow. Finding that out here takes fewer steps of
    /// the model than entering would, and spares remembering the configuration: most
    /// operations of unknown outcome tried at a dead end lead nowhere. Notes the cut that
    /// entering would have made.
    fn leads_nowhere(&mut self, unknown: OpId, arrival: Arrival, next: &M::State) -> bool {
        if self.unknown_run_may_grow(arrival) {
            return false;
        }
        self.compute_answered_next();

        let frame = self.stack.last().expect("a successor has a current configuration");
        let answered_next = frame.answered_next.as_deref().unwrap_or_default();
        let may_follow = answered_next.iter().any(|(op, without_unknown)| {
            let Some(after) = self.step(next, *op) else { return false };
            !self.unknown_is_needless(unknown, without_unknown.as_ref(), *op, &after)
        });
        if may_follow {
            return false;
        }
        let mut others = frame.candidates.iter().filter(|op| **op != unknown);
        self.cut_off |= others.any(|op| self.op(*op).is_unknown());
        true
    }

    /// Fills in what each answered candidate of the current configuration leads to.
    fn compute_answered_next(&mut self) {
        let frame = self.stack.last().expect("a successor has a current configuration");
        if frame.answered_next.is_some() {
            return;
        }
        let state = self.states.get(frame.state);
        let answered = frame.candidates.iter().filter(|op| !self.op(**op).is_unknown());
        let answered_next = answered.map(|op| (*op, self.step(state, *op))).collect();

        let frame = self.stack.last_mut().expect("a successor has a current configuration");
        frame.answered_next = Some(answered_next);
    }

    /// Whether the pass allows one more operation of unknown outcome after `arrival`.
    fn unknown_run_may_grow(&self, arrival: Arrival) -> bool {
        arrival.unknown_run() < self.unknown_run_max
    }

    /// Whether `previous`, of unknown outcome and placed in `before` just ahead of `op`,
    /// could be left out or moved after `op` with `next` still the result (rules 2, 3).
    fn previous_unknown_is_needless(
        &self,
        previous: OpId,
        before: StateId,
        op: OpId,
        next: &M::State,
    ) -> bool {
        let without_previous = self.step(self.states.get(before), op);
        self.unknown_is_needless(previous, without_previous.as_ref(), op, next)
    }

    /// Like [`Self::previous_unknown_is_needless`], given what `op` leads to without
    /// `previous`.
    fn unknown_is_needless(
        &self,
        previous: OpId,
        without_previous: Option<&M::State>,
        op: OpId,
        next: &M::State,
    ) -> bool {
        let Some(without_previous) = without_previous else {
            return false;
        };
        if without_previous == next {
            return true;
        }

        let may_move_past = match self.op(op).is_unknown() {
            true => self.op(previous).slot < self.op(op).slot,
            false => true,
        };
        may_move_past && self.step(without_previous, previous).as_ref() == Some(next)
    }

    /// The id of `next`, the state after placing `op` in `from`. A read-only operation
    /// leaves `from` as it was, which spares hashing the state again.
    fn intern(&mut self, op: OpId, from: StateId, next: M::State) -> StateId {
        if !self.op(op).read_only {
            return self.states.intern(next);
        }
        debug_assert!(next == *self.states.get(from), "a read-only operation changed the state");
        from
    }
}
