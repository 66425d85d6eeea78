//! The Raft log and vote, stored in the `log` and `raft_meta` trees.
//!
//! Durability contract: `save_vote` returns, and `append` signals openraft, only after a
//! flush has fsynced the change. Log keys are the entry index in big-endian bytes, so key
//! order is log order.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError};
use tracing::instrument;

use crate::codec::{decode, encode};
use crate::db::{Db, DbError, Tree};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const LAST_PURGED_KEY: &[u8] = b"last_purged";

#[derive(Clone)]
pub struct LogStore {
    db: Db,
    log: Tree,
    meta: Tree,
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

impl LogStore {
    pub fn new(db: Db) -> Result<LogStore, DbError> {
        Ok(LogStore { log: db.tree("log")?, meta: db.tree("raft_meta")?, db })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        let bytes = self.meta.get(key).map_err(|e| StorageIOError::read(&e))?;
        let value = bytes.map(|b| decode(&b)).transpose().map_err(|e| StorageIOError::read(&e))?;
        Ok(value)
    }

    async fn write_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), DbError> {
        self.meta.insert(key, encode(value))?;
        self.db.flush().await
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        let last = self.log.last().map_err(|e| StorageIOError::read_logs(&e))?;
        let Some((_, bytes)) = last else { return Ok(None) };
        let entry: Entry = decode(&bytes).map_err(|e| StorageIOError::read_logs(&e))?;
        Ok(Some(entry.log_id))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = key_range(range);
        let end = end.unwrap_or([0xff; 8]);
        let rows = self.log.range(&start, &end).map_err(|e| StorageIOError::read_logs(&e))?;
        rows.iter()
            .map(|(_, bytes)| decode(bytes).map_err(|e| StorageIOError::read_logs(&e).into()))
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
