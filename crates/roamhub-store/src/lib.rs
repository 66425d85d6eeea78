//! Durable storage of a roamhub node: the Raft log, the vote and the index state machine.
//!
//! - [`db`]: the storage seam, the only module that names sled, and its compaction;
//! - [`codec`]: how values are encoded on disk, each led by a format version and a checksum;
//! - [`faults`]: corruption found while the node runs, for the node to act on;
//! - [`types`]: the openraft type configuration shared by every node;
//! - [`log_store`]: the Raft log and vote, acknowledged only once fsynced;
//! - [`state_machine`]: the index, applied from the log, with snapshots.
//!
//! One sled database per node holds all of it, so that a single flush makes a batch of log
//! entries, the vote and a snapshot durable together. [`open`] reads and checks every record
//! before it hands the storage to Raft: a node never starts on data that fails its check.

pub mod codec;
pub mod db;
pub mod faults;
pub mod log_store;
pub mod state_machine;
pub mod types;

pub use codec::Corrupt;
pub use db::{CompactionReport, Db, FlushMode};
pub use faults::Faults;
pub use log_store::{LogStore, LogSummary};
pub use state_machine::{IndexReader, OpenError, StateMachine};
pub use types::{CommandOutcome, NodeAddress, TypeConfig};

/// A node's storage: the two halves openraft drives, and the database under both.
pub struct Storage {
    pub log_store: LogStore,
    pub state_machine: StateMachine,
    /// For the node's own housekeeping: compaction after an erasure.
    pub db: Db,
    /// Corruption either half finds while the node runs.
    pub faults: Faults,
}

/// The database directory inside a node's data directory.
pub const DATABASE_DIR: &str = "index.sled";

/// Opens (or creates) a node's storage in `data_dir`, and checks every stored record: the
/// log entries, the vote, the committed and purged log ids, the snapshot and the state in
/// it, and that the log reaches from the snapshot or purge point to the committed entry.
///
/// Any failure of a check, or damage the engine itself reports, is [`OpenError::Corrupt`].
///
/// What this cannot see: a database cut back to an older but self-consistent state (sled
/// recovers its log up to the first damaged or missing write and may say nothing). Every
/// record then checks out, and the node restarts with an older vote and a shorter log.
pub fn open(data_dir: &std::path::Path) -> Result<Storage, OpenError> {
    open_with(data_dir, FlushMode::Background)
}

/// Like [`open`], with the database's flushes waited for as `flush_mode` says.
pub fn open_with(data_dir: &std::path::Path, flush_mode: FlushMode) -> Result<Storage, OpenError> {
    let db = Db::open_with(&data_dir.join(DATABASE_DIR), flush_mode)?;
    let faults = Faults::default();
    let log_store = LogStore::new(db.clone(), faults.clone())?;
    let state_machine = StateMachine::open(db.clone(), faults.clone())?;

    // sled asserts on some damage while reading rather than answer an error.
    let verified = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        verify(&log_store, &state_machine, &db)
    }));
    verified.map_err(|_| Corrupt::new("database", "files", "the storage engine panicked"))??;
    Ok(Storage { log_store, state_machine, db, faults })
}

/// The checks of [`open`] across records: each record alone was checked as it was read.
fn verify(log_store: &LogStore, state_machine: &StateMachine, db: &Db) -> Result<(), Corrupt> {
    let log = log_store.verify()?;
    let snapshot_index = state_machine.last_applied().map(|id| id.index);
    let purged_index = log.last_purged.map(|id| id.index);
    let covered = snapshot_index.max(purged_index);

    // The first entry follows what the snapshot or the purge covers; entries before it
    // may remain (a purge records its point first), but none may be missing.
    let first_expected = covered.map_or(0, |index| index + 1);
    if let Some(first) = log.first_index.filter(|first| *first > first_expected) {
        return Err(Corrupt::new(
            "log",
            first,
            format!("entries from {first_expected} are missing"),
        ));
    }

    // The committed entry must still be here, in the log or in what the snapshot covers.
    let held = log.last_log_id.map(|id| id.index).max(covered);
    if let Some(committed) = log.committed.filter(|c| Some(c.index) > held) {
        return Err(Corrupt::new("log", committed.index, "the committed entry is missing"));
    }

    let compacted = db.tree(LOCAL_TREE).and_then(|tree| tree.get(ERASURES_COMPACTED_KEY));
    let compacted = compacted.map_err(|e| Corrupt::new("erasures compacted", "node_local", e))?;
    if let Some(bytes) = compacted {
        codec::decode_stored::<u64>("erasures compacted", "node_local", &bytes)?;
    }
    Ok(())
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
