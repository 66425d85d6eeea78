//! Durable storage of a roamhub node: the Raft log, the vote and the index state machine.
//!
//! - [`db`]: the storage seam, the only module that names sled, and its compaction;
//! - [`codec`]: how values are encoded on disk, each led by a format version;
//! - [`types`]: the openraft type configuration shared by every node;
//! - [`log_store`]: the Raft log and vote, acknowledged only once fsynced;
//! - [`state_machine`]: the index, applied from the log, with snapshots.
//!
//! One sled database per node holds all of it, so that a single flush makes a batch of log
//! entries, the vote and a snapshot durable together.

pub mod codec;
pub mod db;
pub mod log_store;
pub mod state_machine;
pub mod types;

pub use db::{CompactionReport, Db};
pub use log_store::LogStore;
pub use state_machine::{IndexReader, OpenError, StateMachine};
pub use types::{CommandOutcome, NodeAddress, TypeConfig};

/// Opens (or creates) a node's storage in `data_dir` and returns its two halves.
pub fn open(data_dir: &std::path::Path) -> Result<(LogStore, StateMachine), OpenError> {
    let db = Db::open(&data_dir.join("index.sled"))?;
    let log_store = LogStore::new(db.clone())?;
    let state_machine = StateMachine::open(db)?;
    Ok((log_store, state_machine))
}
