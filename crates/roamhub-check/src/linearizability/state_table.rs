//! Model states interned once each, so that configurations refer to them by a small id.
//!
//! A check meets far fewer distinct states than configurations: most configurations
//! differ only in which operations were placed. Interning lets each remembered
//! configuration hold a number instead of a whole state, and lets the search compare
//! states by id.

use std::collections::HashMap;
use std::hash::Hash;
use std::rc::Rc;

use super::fast_hash::FastHash;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct StateId(usize);

pub(super) struct StateTable<S> {
    ids: HashMap<Rc<S>, StateId, FastHash>,
    states: Vec<Rc<S>>,
}

impl<S: Eq + Hash> StateTable<S> {
    pub fn new() -> Self {
        StateTable { ids: HashMap::default(), states: Vec::new() }
    }

    /// The id of `state`, which is added if it was never seen.
    pub fn intern(&mut self, state: S) -> StateId {
        if let Some(id) = self.ids.get(&state) {
            return *id;
        }

        let id = StateId(self.states.len());
        let state = Rc::new(state);
        self.states.push(Rc::clone(&state));
        self.ids.insert(state, id);
        id
    }

    pub fn get(&self, id: StateId) -> &S {
        &self.states[id.0]
    }
}
