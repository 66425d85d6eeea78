//! The record of a run's client operations, one history per citizen, for the checks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use roamhub_check::{CitizenInput, CitizenOutput, Event, Outcome};

pub type CitizenEvent = Event<CitizenInput, CitizenOutput>;

/// Every operation of a run, by citizen.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Recorded>>,
}

#[derive(Default)]
struct Recorded {
    histories: BTreeMap<usize, Vec<CitizenEvent>>,
    operations: u64,
    acknowledged_writes: u64,
}

impl Recorder {
    pub fn record(&self, citizen: usize, event: CitizenEvent) {
        let mut recorded = self.inner.lock().expect("recorder lock is never poisoned");
        recorded.operations += 1;
        if matches!(event.outcome, Outcome::Ok(CitizenOutput::Done)) {
            recorded.acknowledged_writes += 1;
        }
        recorded.histories.entry(citizen).or_default().push(event);
    }

    pub fn history(&self, citizen: usize) -> Vec<CitizenEvent> {
        let recorded = self.inner.lock().expect("recorder lock is never poisoned");
        recorded.histories.get(&citizen).cloned().unwrap_or_default()
    }

    /// Operations recorded, and how many of them were acknowledged writes.
    pub fn counts(&self) -> (u64, u64) {
        let recorded = self.inner.lock().expect("recorder lock is never poisoned");
        (recorded.operations, recorded.acknowledged_writes)
    }
}
