//! The storage seam: the few operations roamhub needs from an ordered key-value engine.
//!
//! This is the only module that names sled. Keys are byte strings ordered bytewise; values
//! are already encoded by [`crate::codec`]. Nothing is durable until [`Db::flush`] returns,
//! which fsyncs everything written before it.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("storage engine: {0}")]
pub struct DbError(#[from] sled::Error);

/// A key and its value.
pub type Row = (Vec<u8>, Vec<u8>);

/// A database of named trees; cheap to clone, all clones share one engine.
#[derive(Clone)]
pub struct Db {
    inner: sled::Db,
}

/// One ordered map of the database.
#[derive(Clone)]
pub struct Tree {
    inner: sled::Tree,
}

impl Db {
    pub fn open(path: &Path) -> Result<Db, DbError> {
        // sled's own periodic flush is turned off: durability points are ours to choose.
        let inner = sled::Config::new().path(path).flush_every_ms(None).open()?;
        Ok(Db { inner })
    }

    pub fn tree(&self, name: &str) -> Result<Tree, DbError> {
        Ok(Tree { inner: self.inner.open_tree(name)? })
    }

    /// Writes every change made so far to disk and fsyncs it.
    pub async fn flush(&self) -> Result<(), DbError> {
        self.inner.flush_async().await?;
        Ok(())
    }
}

impl Tree {
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self.inner.get(key)?.map(|value| value.to_vec()))
    }

    pub fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<(), DbError> {
        self.inner.insert(key, value)?;
        Ok(())
    }

    pub fn remove(&self, key: &[u8]) -> Result<(), DbError> {
        self.inner.remove(key)?;
        Ok(())
    }

    /// The values whose keys lie in `[start, end)`, in key order.
    pub fn range(&self, start: &[u8], end: &[u8]) -> Result<Vec<Row>, DbError> {
        self.inner
            .range(start..end)
            .map(|item| Ok(item.map(|(k, v)| (k.to_vec(), v.to_vec()))?))
            .collect()
    }

    /// Removes every key in `[start, end)`.
    pub fn remove_range(&self, start: &[u8], end: &[u8]) -> Result<(), DbError> {
        let mut batch = sled::Batch::default();
        for item in self.inner.range(start..end) {
            batch.remove(item?.0);
        }
        self.inner.apply_batch(batch)?;
        Ok(())
    }

    pub fn last(&self) -> Result<Option<Row>, DbError> {
        Ok(self.inner.last()?.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }
}
