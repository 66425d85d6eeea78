//! The index state machine: entries applied from the Raft log, and its snapshots.
//!
//! The applied state lives in memory behind a lock that readers share through
//! [`IndexReader`]. It is made durable by snapshots in the `snapshot` tree; after a restart
//! the node loads the latest snapshot and openraft re-applies the committed log after it.
//!
//! A stored snapshot is checked twice over: its record (metadata and data) and the state
//! inside its data each carry the codec's checksum, and the state must be the one the
//! metadata describes. A bad snapshot is recorded in the storage's [`Faults`] and stops Raft.

use std::io::Cursor;
use std::sync::{Arc, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use roamhub_index::{Consent, Index, IndexError, Query, QueryAnswer, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tracing::{info, instrument};

use crate::codec::{Corrupt, decode_stored, encode};
use crate::db::{Db, DbError, Tree};
use crate::faults::Faults;
use crate::types::{
    CommandOutcome, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig,
};

const CURRENT_SNAPSHOT_KEY: &[u8] = b"current";

/// The state as a whole: what has been applied, up to which entry, under which membership.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    index: Index,
}

/// A snapshot as stored: its metadata and the encoded [`Applied`] state.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// Why a node's storage could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The engine refused for a reason that says nothing of the data (a lock, a permission).
    #[error(transparent)]
    Db(DbError),
    /// A stored record, or the engine's own files, failed their check.
    #[error("storage is corrupt: {0}")]
    Corrupt(#[from] Corrupt),
}

impl From<DbError> for OpenError {
    fn from(error: DbError) -> OpenError {
        match error.is_corruption() {
            true => OpenError::Corrupt(Corrupt::new("database", "files", error)),
            false => OpenError::Db(error),
        }
    }
}

/// Consent changes kept for watchers that fall behind; one further behind is told it
/// lagged and resubscribes.
pub const CONSENT_EVENTS_BUFFERED_MAX: usize = 1024;

/// Read access to the applied index, shared with the API.
#[derive(Clone)]
pub struct IndexReader {
    applied: Arc<RwLock<Applied>>,
    consent_events: broadcast::Sender<Consent>,
}

impl IndexReader {
    pub fn query(&self, query: &Query) -> Result<QueryAnswer, IndexError> {
        self.applied.read().expect("index lock is never poisoned").index.query(query)
    }

    /// Every consent as it is granted, withdrawn or acknowledged on this node from now on.
    pub fn subscribe_consents(&self) -> broadcast::Receiver<Consent> {
        self.consent_events.subscribe()
    }

    /// Runs `read` against the applied index.
    pub fn with_index<T>(&self, read: impl FnOnce(&Index) -> T) -> T {
        read(&self.applied.read().expect("index lock is never poisoned").index)
    }

    /// The log index of the last applied entry (zero before any) and a SHA-256 digest of
    /// the index's canonical encoding, taken together under one lock. The state machine is
    /// deterministic, so replicas that applied the same log answer the same digest.
    pub fn digest(&self) -> (u64, [u8; 32]) {
        use sha2::Digest as _;
        let applied = self.applied.read().expect("index lock is never poisoned");
        let index = applied.last_applied.map(|id| id.index).unwrap_or_default();
        (index, sha2::Sha256::digest(encode(&applied.index)).into())
    }
}

pub struct StateMachine {
    db: Db,
    snapshots: Tree,
    faults: Faults,
    applied: Arc<RwLock<Applied>>,
    /// Consents changed by applied commands, for watchers; sent after the change applied.
    consent_events: broadcast::Sender<Consent>,
}

impl StateMachine {
    /// Opens the state machine at its latest snapshot. A snapshot this release cannot read
    /// is an error, never a reason to start empty, which would diverge from the federation.
    pub fn open(db: Db, faults: Faults) -> Result<StateMachine, OpenError> {
        let snapshots = db.tree("snapshot")?;
        let applied = match checked_snapshot(&snapshots)? {
            Some(stored) => checked_state(&stored)?,
            None => Applied::default(),
        };
        let (consent_events, _) = broadcast::channel(CONSENT_EVENTS_BUFFERED_MAX);
        let applied = Arc::new(RwLock::new(applied));
        Ok(StateMachine { db, snapshots, faults, applied, consent_events })
    }

    /// The last log id the applied state covers: that of the snapshot it was opened at,
    /// until openraft applies more.
    pub fn last_applied(&self) -> Option<LogId> {
        self.applied.read().expect("index lock is never poisoned").last_applied
    }

    pub fn reader(&self) -> IndexReader {
        IndexReader { applied: self.applied.clone(), consent_events: self.consent_events.clone() }
    }

    /// The current snapshot, checked as a whole before openraft sends it to a peer.
    fn load_snapshot(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        let checked = checked_snapshot(&self.snapshots)
            .and_then(|stored| stored.map(|s| checked_state(&s).map(|_| s)).transpose());
        checked.map_err(|corrupt| {
            self.faults.record(&corrupt);
            StorageIOError::read_snapshot(None, &corrupt).into()
        })
    }
}

/// The stored snapshot record, checked.
fn checked_snapshot(snapshots: &Tree) -> Result<Option<StoredSnapshot>, Corrupt> {
    let bytes =
        snapshots.get(CURRENT_SNAPSHOT_KEY).map_err(|e| Corrupt::new("snapshot", "current", e))?;
    bytes.map(|b| decode_stored("snapshot", "current", &b)).transpose()
}

/// The state inside a snapshot's data, checked, and the one its metadata describes.
fn checked_state(stored: &StoredSnapshot) -> Result<Applied, Corrupt> {
    let id = &stored.meta.snapshot_id;
    let applied: Applied = decode_stored("snapshot data", id, &stored.data)?;
    let described = applied.last_applied == stored.meta.last_log_id
        && applied.last_membership == stored.meta.last_membership;
    match described {
        true => Ok(applied),
        false => Err(Corrupt::new("snapshot", id, "its state is not the one its metadata names")),
    }
}

/// Stores a snapshot as the current one and fsyncs it.
async fn save_snapshot(
    db: &Db,
    snapshots: &Tree,
    stored: &StoredSnapshot,
) -> Result<(), StorageError> {
    let signature = Some(stored.meta.signature());
    snapshots
        .insert(CURRENT_SNAPSHOT_KEY, encode(stored))
        .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
    db.flush().await.map_err(|e| StorageIOError::write_snapshot(signature, &e))?;
    Ok(())
}

/// Builds a snapshot of the state as it is when the builder runs.
pub struct SnapshotBuilder {
    machine_db: Db,
    snapshots: Tree,
    applied: Arc<RwLock<Applied>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    #[instrument(level = "info", skip_all)]
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (data, meta) = {
            let applied = self.applied.read().expect("index lock is never poisoned");
            let last = applied.last_applied;
            let snapshot_id = match last {
                Some(log_id) => format!("{}-{}", log_id.leader_id.term, log_id.index),
                None => "empty".to_owned(),
            };
            let meta = SnapshotMeta {
                last_log_id: last,
                last_membership: applied.last_membership.clone(),
                snapshot_id,
            };
            (encode(&*applied), meta)
        };

        let stored = StoredSnapshot { meta: meta.clone(), data };
        save_snapshot(&self.machine_db, &self.snapshots, &stored).await?;
        info!(snapshot = %meta.snapshot_id, bytes = stored.data.len(), "snapshot built");
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(stored.data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.applied.read().expect("index lock is never poisoned");
        Ok((applied.last_applied, applied.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut applied = self.applied.write().expect("index lock is never poisoned");
        let mut outcomes = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => CommandOutcome::Raft,
                EntryPayload::Normal(request) => {
                    let outcome = applied.index.apply(&request);
                    if let Ok(Response::Consent(consent)) = &outcome {
                        // No watcher is fine: a send without receivers is simply dropped.
                        let _ = self.consent_events.send(consent.clone());
                    }
                    CommandOutcome::Index(outcome)
                }
                EntryPayload::Membership(membership) => {
                    applied.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    CommandOutcome::Raft
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            machine_db: self.db.clone(),
            snapshots: self.snapshots.clone(),
            applied: self.applied.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    #[instrument(level = "info", skip_all)]
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        // A snapshot from the leader that fails its checksum is refused, not installed; it
        // says nothing of this node's own storage, so it is not recorded as a fault here.
        let data = snapshot.into_inner();
        let state: Applied = decode_stored("received snapshot", &meta.snapshot_id, &data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;

        let stored = StoredSnapshot { meta: meta.clone(), data };
        save_snapshot(&self.db, &self.snapshots, &stored).await?;
        let mut applied = self.applied.write().expect("index lock is never poisoned");
        *applied = Applied {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            index: state.index,
        };
        info!(snapshot = %meta.snapshot_id, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let Some(stored) = self.load_snapshot()? else { return Ok(None) };
        Ok(Some(Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) }))
    }
}
