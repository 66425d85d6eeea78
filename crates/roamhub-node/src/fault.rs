//! Why this node refuses to serve: its storage is corrupt.
//!
//! Set once, by the recovery before Raft starts or by the watcher that sees Raft stop on a
//! bad record; read by the guard of the public listener, which then answers every call
//! but health with `Unavailable` and this reason.

use std::sync::{Arc, RwLock};

/// Shared by the node, its guard and its recovery; cheap to clone.
#[derive(Clone, Default)]
pub struct StorageFault {
    reason: Arc<RwLock<Option<String>>>,
}

impl StorageFault {
    /// A fault already known, as when the node opens corrupt storage.
    pub fn with_reason(reason: &str) -> StorageFault {
        let fault = StorageFault::default();
        fault.set(reason);
        fault
    }

    pub fn set(&self, reason: &str) {
        *self.reason.write().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_owned());
    }

    pub fn reason(&self) -> Option<String> {
        self.reason.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What a refused caller hears.
    pub fn status(&self) -> Option<tonic::Status> {
        let reason = self.reason()?;
        Some(tonic::Status::unavailable(format!("storage of this node is corrupt: {reason}")))
    }
}
