//! Corruption found while the node runs, kept for the node to act on.
//!
//! openraft hears of a bad record only as a `StorageError`, after which it stops. The log
//! store and the state machine also record here what was bad, so that the node can say why
//! it stopped serving and start its recovery. The first corruption found is kept; later
//! ones add nothing the node would do differently.

use std::sync::{Arc, Mutex};

use tracing::error;

use crate::codec::Corrupt;

/// Shared by every handle of one node's storage; cheap to clone.
#[derive(Clone, Default)]
pub struct Faults {
    first: Arc<Mutex<Option<Corrupt>>>,
}

impl Faults {
    /// Records a corrupt record, logging it (never its bytes) the first time.
    pub fn record(&self, corrupt: &Corrupt) {
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            error!(what = corrupt.what, key = %corrupt.key, reason = %corrupt.reason,
                "stored record failed its check; this node stops serving");
            *first = Some(corrupt.clone());
        }
    }

    /// The first corruption found since the storage was opened.
    pub fn first(&self) -> Option<Corrupt> {
        self.first.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
