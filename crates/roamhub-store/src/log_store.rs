//! The Raft log and vote, stored in the `log` and `raft_meta` trees.
//!
//! Durability contract: `save_vote` returns, and `append` signals openraft, only after a
//! flush has fsynced the change. Log keys are the entry index in big-endian bytes, so key
//! order is log order.
//!
//! Every value read back is checked (see [`crate::codec`]). A bad one is recorded in the
//! storage's [`Faults`] and answered to openraft as a `StorageError`, which stops Raft on
//! this node rather than let it vote or replicate from bad data. [`LogStore::verify`] reads
//! and checks everything once when the storage is opened.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError};
use tracing::instrument;

use crate::codec::{Corrupt, decode_stored, encode};
use crate::db::{Db, DbError, Tree};
use crate::faults::Faults;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const LAST_PURGED_KEY: &[u8] = b"last_purged";

#[derive(Clone)]
pub struct LogStore {
    db: Db,
    log: Tree,
    meta: Tree,
    faults: Faults,
}

/// What [`LogStore::verify`] found in a log whose every record checked out.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSummary {
    pub first_index: Option<u64>,
    pub last_log_id: Option<LogId>,
    pub last_purged: Option<LogId>,
    pub committed: Option<LogId>,
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Turns a Rust range of log indexes into a half-open key range.
fn key_range(range: impl RangeBounds<u64>) -> ([u8; 8], Option<[u8; 8]>) {
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => i.checked_add(1),
        Bound::Excluded(&i) => Some(i),
        Bound::Unbounded => None,
    };
    (index_key(start), end.map(index_key))
}

/// Names a metadata key for error messages.
fn meta_name(key: &[u8]) -> &'static str {
    match key {
        VOTE_KEY => "vote",
        COMMITTED_KEY => "committed log id",
        _ => "last purged log id",
    }
}

impl LogStore {
    pub fn new(db: Db, faults: Faults) -> Result<LogStore, DbError> {
        Ok(LogStore { log: db.tree("log")?, meta: db.tree("raft_meta")?, db, faults })
    }

    /// Reads and checks every stored record: the vote, the committed and purged log ids,
    /// and every log entry, which must sit under its own index with no gap between them.
    pub fn verify(&self) -> Result<LogSummary, Corrupt> {
        let _vote: Option<Vote> = self.checked_meta(VOTE_KEY)?;
        let committed: Option<Option<LogId>> = self.checked_meta(COMMITTED_KEY)?;
        let last_purged: Option<LogId> = self.checked_meta(LAST_PURGED_KEY)?;
        let mut summary =
            LogSummary { last_purged, committed: committed.flatten(), ..Default::default() };

        let rows = self.log.range(&index_key(0), &[0xff; 8]).map_err(engine("log", "all"))?;
        for (key, bytes) in rows {
            let index = key_index(&key)?;
            let entry: Entry = decode_stored("log entry", index, &bytes)?;
            if entry.log_id.index != index {
                return Err(Corrupt::new("log entry", index, "stored under another index"));
            }
            let expected = summary.last_log_id.map(|id| id.index + 1);
            if expected.is_some_and(|expected| expected != index) {
                return Err(Corrupt::new("log", index, "entries before this one are missing"));
            }
            summary.first_index = summary.first_index.or(Some(index));
            summary.last_log_id = Some(entry.log_id);
        }
        Ok(summary)
    }

    /// A metadata record, checked; for [`LogStore::verify`].
    fn checked_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, Corrupt> {
        let what = meta_name(key);
        let bytes = self.meta.get(key).map_err(engine(what, "raft_meta"))?;
        bytes.map(|b| decode_stored(what, "raft_meta", &b)).transpose()
    }

    /// Records a bad record, which stops Raft through the error returned.
    fn corrupt(&self, corrupt: Corrupt) -> StorageError {
        self.faults.record(&corrupt);
        StorageIOError::read_logs(&corrupt).into()
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        self.checked_meta(key).map_err(|corrupt| self.corrupt(corrupt))
    }

    async fn write_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), DbError> {
        self.meta.insert(key, encode(value))?;
        self.db.flush().await
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        let last = self.log.last().map_err(|e| self.engine_error("log", "last", e))?;
        let Some((key, bytes)) = last else { return Ok(None) };
        let entry = self.checked_entry(&key, &bytes).map_err(|corrupt| self.corrupt(corrupt))?;
        Ok(Some(entry.log_id))
    }

    /// A log entry read under `key`, checked, and stored under its own index.
    fn checked_entry(&self, key: &[u8], bytes: &[u8]) -> Result<Entry, Corrupt> {
        let index = key_index(key)?;
        let entry: Entry = decode_stored("log entry", index, bytes)?;
        match entry.log_id.index == index {
            true => Ok(entry),
            false => Err(Corrupt::new("log entry", index, "stored under another index")),
        }
    }

    /// An engine error on read; one the engine calls corruption is recorded as such.
    fn engine_error(&self, what: &'static str, key: &str, error: DbError) -> StorageError {
        match error.is_corruption() {
            true => self.corrupt(engine(what, key)(error)),
            false => StorageIOError::read_logs(&error).into(),
        }
    }
}

/// The log index a key names; a key of another length is corruption.
fn key_index(key: &[u8]) -> Result<u64, Corrupt> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| {
        Corrupt::new("log key", format!("of {} bytes", key.len()), "not an 8-byte index")
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// Turns an engine error into corruption of the record being read.
pub(crate) fn engine<'a>(what: &'static str, key: &'a str) -> impl FnOnce(DbError) -> Corrupt + 'a {
    move |error| Corrupt::new(what, key, error)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = key_range(range);
        let end = end.unwrap_or([0xff; 8]);
        let rows =
            self.log.range(&start, &end).map_err(|e| self.engine_error("log", "range", e))?;
        rows.iter()
            .map(|(key, bytes)| self.checked_entry(key, bytes).map_err(|c| self.corrupt(c)))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(LAST_PURGED_KEY)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    #[instrument(level = "debug", skip_all)]
    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_meta(VOTE_KEY, vote).await.map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(VOTE_KEY)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Fsynced before openraft applies, and so before any client hears of the commit: a
        // leader that restarts keeps its term and serves reads at its stored committed
        // index, which must therefore cover every write it acknowledged.
        self.write_meta(COMMITTED_KEY, &committed).await.map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED_KEY)?.flatten())
    }

    #[instrument(level = "debug", skip_all)]
    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        for entry in entries {
            let key = index_key(entry.log_id.index);
            self.log.insert(&key, encode(&entry)).map_err(|e| StorageIOError::write_logs(&e))?;
        }

        // The callback tells openraft the entries are durable, so it fires only after fsync.
        let flushed = self.db.flush().await;
        let result = flushed.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(result);
        flushed.map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let (start, _) = key_range(log_id.index..);
        self.log.remove_range(&start, &[0xff; 8]).map_err(|e| StorageIOError::write_logs(&e))?;
        self.db.flush().await.map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash in between leaves extra entries, never a gap.
        self.write_meta(LAST_PURGED_KEY, &log_id).await.map_err(|e| StorageIOError::write(&e))?;
        let (_, end) = key_range(..=log_id.index);
        let end = end.unwrap_or([0xff; 8]);
        self.log.remove_range(&index_key(0), &end).map_err(|e| StorageIOError::write_logs(&e))?;
        self.db.flush().await.map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}
