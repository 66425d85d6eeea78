//! The trace of a run: every event that decides how the run goes, hashed as it happens.
//!
//! Messages sent, delivered and lost, faults, client operations and their outcomes, and
//! the leaders the checks saw are each recorded as one line, stamped with the simulated
//! time. The lines are folded into a SHA-256 digest, so that two runs of one seed can be
//! compared by their digests alone; they are kept only when asked for (`--trace`).

use std::fmt::Display;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// A shared handle on the trace of one run; cheap to clone.
#[derive(Clone)]
pub struct Trace {
    started: Instant,
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    hasher: Sha256,
    events: u64,
    /// Every line, when the run keeps them.
    lines: Option<Vec<String>>,
}

/// What remains of a trace once the run is over.
#[derive(Debug, Clone)]
pub struct TraceSummary {
    /// Hex of the digest of every line, in order.
    pub hash: String,
    pub events: u64,
    /// Empty unless the run kept its lines.
    pub lines: Vec<String>,
}

impl Trace {
    /// Starts a trace at the current simulated instant, keeping its lines if asked to.
    pub fn new(keep_lines: bool) -> Trace {
        let inner = Inner { hasher: Sha256::new(), events: 0, lines: keep_lines.then(Vec::new) };
        Trace { started: Instant::now(), inner: Arc::new(Mutex::new(inner)) }
    }

    /// Simulated milliseconds since the run began.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Simulated nanoseconds since the run began, for client histories.
    pub fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    pub fn record(&self, event: impl Display) {
        let line = format!("{:>7} {event}", self.now_ms());
        let mut inner = self.inner.lock().expect("trace lock is never poisoned");
        inner.hasher.update(line.as_bytes());
        inner.hasher.update(b"\n");
        inner.events += 1;
        if let Some(lines) = &mut inner.lines {
            lines.push(line);
        }
    }

    pub fn summary(&self) -> TraceSummary {
        let inner = self.inner.lock().expect("trace lock is never poisoned");
        let digest = inner.hasher.clone().finalize();
        TraceSummary {
            hash: digest.iter().map(|byte| format!("{byte:02x}")).collect(),
            events: inner.events,
            lines: inner.lines.clone().unwrap_or_default(),
        }
    }
}
