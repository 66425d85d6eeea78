//! The order in which the search tries what may come next from a configuration.
//!
//! Apart from rule 4 of [`super::successor`], which places a fitting read-only operation
//! at once, the order here changes only how soon a linearization is found, never whether
//! one is: every candidate is tried before the search backtracks. It matters a great deal
//! all the same, because a wrong guess costs the whole subtree below it, and below a
//! wrong guess every dead end also tries the pending operations of unknown outcome.

use super::{Arrival, Search};
use crate::linearizability::Model;
use crate::linearizability::operations::OpId;
use crate::linearizability::state_table::StateId;

/// Operations of unknown outcome, the latest invoked, that a configuration looks at for
/// one that lets a waiting read-only operation fit.
const UNKNOWN_ENABLERS_MAX: usize = 8;

impl<M: Model> Search<'_, M> {
    /// The operations that may be placed next from a configuration in `state`, in the
    /// order to try them, and the state the first one leads to if that is known already.
    ///
    /// From a free configuration, an answered read-only operation that fits comes alone.
    /// Otherwise the order is: an operation after which one of the waiting read-only
    /// operations fits, if any; answered operations in invocation order; those of
    /// unknown outcome, latest invoked first, since they are never required and the
    /// recent ones are the likeliest to have been seen. Right after one of unknown
    /// outcome nothing is guessed: most such configurations are dead ends, and guessing
    /// would cost more than it saves.
    pub(super) fn candidates(
        &self,
        state: StateId,
        arrival: Arrival,
    ) -> (Vec<OpId>, Option<M::State>) {
        let (mut unknown, answered): (Vec<OpId>, Vec<OpId>) =
            self.list.placeable().into_iter().partition(|op| self.op(*op).is_unknown());
        unknown.reverse();
        let mut candidates = answered.clone();
        candidates.extend(&unknown);
        if arrival != Arrival::Free {
            return (candidates, None);
        }

        let state = self.states.get(state);
        let waiting: Vec<OpId> =
            answered.iter().copied().filter(|op| self.op(*op).read_only).collect();
        if let Some((op, next)) = waiting.iter().find_map(|op| Some((*op, self.step(state, *op)?)))
        {
            return (vec![op], Some(next));
        }

        // Operations of unknown outcome are looked at only for the most urgent operation,
        // and only the latest few of them: older ones mostly never took effect, there can
        // be many, and each look costs a step of the model.
        let urgent = answered.iter().min_by_key(|op| self.op(**op).completed_ns);
        let urgent_waits = urgent.is_some_and(|op| waiting.contains(op));
        let unknown_looked_at = if urgent_waits { UNKNOWN_ENABLERS_MAX } else { 0 };
        let recent_unknown = unknown.iter().take(unknown_looked_at);
        let mut enablers = answered.iter().chain(recent_unknown).copied();
        let Some((enabling, next)) = self.first_enabling(state, &mut enablers, &waiting) else {
            return (candidates, None);
        };
        candidates.retain(|op| *op != enabling);
        candidates.insert(0, enabling);
        (candidates, Some(next))
    }

    /// The first of `enablers` after which one of `waiting` fits, and the state it leads
    /// to.
    fn first_enabling(
        &self,
        state: &M::State,
        enablers: &mut dyn Iterator<Item = OpId>,
        waiting: &[OpId],
    ) -> Option<(OpId, M::State)> {
        if waiting.is_empty() {
            return None;
        }
        let enables = |next: &M::State| waiting.iter().any(|op| self.step(next, *op).is_some());

        enablers.filter(|op| !self.op(*op).read_only).find_map(|op| {
            let next = self.step(state, op)?;
            enables(&next).then_some((op, next))
        })
    }
}
