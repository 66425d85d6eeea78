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

pub use db::{CompactionReport, Db, FlushMode};
pub use log_store::LogStore;
pub use state_machine::{IndexReader, OpenError, StateMachine};
pub use types::{CommandOutcome, NodeAddress, TypeConfig};

/// A node's storage: the two halves openraft drives, and the database under both.
pub struct Storage {
    pub log_store: LogStore,
    pub state_machine: StateMachine,
    /// For the node's own housekeeping: compaction after an erasure.
    pub db: Db,
}

/// Opens (or creates) a node's storage in `data_dir`.
pub fn open(data_dir: &std::path::Path) -> Result<Storage, OpenError> {
    open_with(data_dir, FlushMode::Background)
}

/// Like [`open`], with the database's flushes waited for as `flush_mode` says.
pub fn open_with(data_dir: &std::path::Path, flush_mode: FlushMode) -> Result<Storage, OpenError> {
    let db = Db::open_with(&data_dir.join("index.sled"), flush_mode)?;
    let log_store = LogStore::new(db.clone())?;
    let state_machine = StateMachine::open(db.clone())?;
    Ok(Storage { log_store, state_machine, db })
}

/// Node-local bookkeeping that is not replicated: how many erasures this node has already
/// compacted out of its storage.
pub fn erasures_compacted(db: &Db) -> Result<u64, db::DbError> {
    let bytes = db.tree(LOCAL_TREE)?.get(ERASURES_COMPACTED_KEY)?;
    Ok(bytes.and_then(|b| codec::decode(&b).ok()).unwrap_or(0))
}

pub async fn set_erasures_compacted(db: &Db, erasures: u64) -> Result<(), db::DbError> {
    db.tree(LOCAL_TREE)?.insert(ERASURES_COMPACTED_KEY, codec::encode(&erasures))?;
    db.flush().await
}

const LOCAL_TREE: &str = "node_local";
const ERASURES_COMPACTED_KEY: &[u8] = b"erasures_compacted";
