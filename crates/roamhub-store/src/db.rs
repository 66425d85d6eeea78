//! The storage seam: the few operations roamhub needs from an ordered key-value engine.
//!
//! This is the only module that names sled. Keys are byte strings ordered bytewise; values
//! are already encoded by [`crate::codec`]. Nothing is durable until [`Db::flush`] returns,
//! which fsyncs everything written before it.
//!
//! sled keeps old copies of removed values in its files until unrelated churn rewrites them.
//! [`Db::compact`] therefore rebuilds the database from its live data alone and swaps the
//! rebuilt engine in underneath every [`Db`] and [`Tree`] handle, so that erasure can be
//! proven by scanning the bytes of the data directory.
//!
//! On disk a compaction goes through two sibling directories of the database `path`:
//! `path.compacting`, where the copy is written, and `path.discarded`, where the old database
//! waits to be deleted. Each step is fsynced before the next, so [`Db::open`] can always tell
//! which directory holds the database (the rule is on `recover`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::Duration;

use tracing::error;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("storage engine: {0}")]
    Engine(#[from] sled::Error),
    #[error("storage directory {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("compaction wrote a copy that differs from the database; the database is kept")]
    CopyMismatch,
    #[error("the database is closed: a compaction failed and could not reopen it")]
    Closed,
    #[error("{} is missing and the copy beside it is not provably complete", path.display())]
    Unrecoverable { path: PathBuf },
    #[error("the storage engine panicked opening {}: its files are damaged", path.display())]
    EnginePanicked { path: PathBuf },
}

impl DbError {
    /// Whether the engine found its own files damaged (a failed checksum of its own, a cut
    /// file), as opposed to a refusal that says nothing of the data (a lock, a permission).
    pub fn is_corruption(&self) -> bool {
        match self {
            DbError::Engine(sled::Error::Corruption { .. }) => true,
            DbError::Engine(sled::Error::ReportableBug(_)) => true,
            DbError::Engine(sled::Error::Io(e)) => {
                matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData)
            }
            DbError::EnginePanicked { .. } => true,
            _ => false,
        }
    }
}

/// How [`Db::flush`] waits for sled's fsync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FlushMode {
    /// On sled's I/O threads while the calling task awaits, so that the runtime keeps
    /// running other tasks meanwhile. What a node uses.
    #[default]
    Background,
    /// On the calling thread, which blocks until the fsync returns. For a deterministic
    /// simulation: each flush then ends inside the task that started it, and no wake-up
    /// comes from another thread at a moment the operating system chose.
    Inline,
}

/// Memory the storage engine may keep as its page cache. sled's own default, 1 GiB, is
/// what a node grew to under a burst of writes; the index a node serves from is in memory
/// anyway, so the engine's cache only speeds up the log and snapshots.
pub const ENGINE_CACHE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// A key and its value.
pub type Row = (Vec<u8>, Vec<u8>);

/// What a compaction did, in bytes of files under the database directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionReport {
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// A database of named trees; cheap to clone, all clones share one engine.
#[derive(Clone)]
pub struct Db {
    shared: Arc<Shared>,
}

struct Shared {
    layout: Layout,
    flush_mode: FlushMode,
    /// The open engine. `None` only after a compaction failed and could not reopen it.
    engine: RwLock<Option<sled::Db>>,
    /// Held by a flush across its await and exclusively by a compaction, so that no flush is
    /// still running on an engine that a compaction closes and deletes.
    flushes: tokio::sync::RwLock<()>,
}

/// One ordered map of the database. It names its tree rather than holding sled's handle,
/// so that it keeps working after a compaction has replaced the engine.
#[derive(Clone)]
pub struct Tree {
    db: Db,
    name: Arc<str>,
}

impl Db {
    /// Opens (or creates) the database at `path`, first finishing or undoing whatever a
    /// compaction interrupted by a crash left beside it.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        Db::open_with(path, FlushMode::Background)
    }

    /// Like [`Db::open`], with flushes waited for as `flush_mode` says.
    pub fn open_with(path: &Path, flush_mode: FlushMode) -> Result<Db, DbError> {
        let layout = Layout::new(path)?;
        recover(&layout)?;
        let engine = open_engine(&layout.live)?;
        let shared = Shared {
            layout,
            flush_mode,
            engine: RwLock::new(Some(engine)),
            flushes: tokio::sync::RwLock::new(()),
        };
        Ok(Db { shared: Arc::new(shared) })
    }

    pub fn tree(&self, name: &str) -> Result<Tree, DbError> {
        // Opened once here so that the tree exists, and is copied by compactions, from now on.
        self.with_engine(|engine| Ok(engine.open_tree(name)?))?;
        Ok(Tree { db: self.clone(), name: name.into() })
    }

    /// Writes every change made so far to disk and fsyncs it.
    pub async fn flush(&self) -> Result<(), DbError> {
        let _no_compaction = self.shared.flushes.read().await;
        let engine = self.with_engine(|engine| Ok(engine.clone()))?;
        match self.shared.flush_mode {
            FlushMode::Background => engine.flush_async().await?,
            FlushMode::Inline => engine.flush()?,
        };
        Ok(())
    }

    /// Rebuilds the database from its live data alone, at the same path, so that no file
    /// under the database directory holds a removed value any more.
    ///
    /// Every other operation waits until it is done. sled's work is blocking and runs inline,
    /// as every other sled call in this crate does; this one lasts as long as copying the whole
    /// database, which is why it is an explicit, rare operation.
    pub async fn compact(&self) -> Result<CompactionReport, DbError> {
        let _no_flush = self.shared.flushes.write().await;
        let mut engine = self.shared.engine.write().expect("engine lock is never poisoned");
        let layout = &self.shared.layout;

        let result = compact_locked(layout, &mut engine);
        if engine.is_none() {
            // The old engine was closed but the new one is not open: open what recovery finds.
            match recover(layout).and_then(|()| open_engine(&layout.live)) {
                Ok(reopened) => *engine = Some(reopened),
                Err(e) => error!(error = %e, path = %layout.live.display(), "database left closed"),
            }
        }
        result
    }

    /// Runs `op` on the current engine, which no compaction replaces until `op` returns.
    fn with_engine<T>(
        &self,
        op: impl FnOnce(&sled::Db) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let engine = self.shared.engine.read().expect("engine lock is never poisoned");
        op(engine.as_ref().ok_or(DbError::Closed)?)
    }
}

impl Tree {
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        self.with(|tree| Ok(tree.get(key)?.map(|value| value.to_vec())))
    }

    pub fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<(), DbError> {
        self.with(|tree| tree.insert(key, value).map(drop))
    }

    pub fn remove(&self, key: &[u8]) -> Result<(), DbError> {
        self.with(|tree| tree.remove(key).map(drop))
    }

    /// The values whose keys lie in `[start, end)`, in key order.
    pub fn range(&self, start: &[u8], end: &[u8]) -> Result<Vec<Row>, DbError> {
        self.with(|tree| {
            tree.range(start..end).map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec()))).collect()
        })
    }

    /// Removes every key in `[start, end)`.
    pub fn remove_range(&self, start: &[u8], end: &[u8]) -> Result<(), DbError> {
        self.with(|tree| {
            let mut batch = sled::Batch::default();
            for item in tree.range(start..end) {
                batch.remove(item?.0);
            }
            tree.apply_batch(batch)
        })
    }

    pub fn last(&self) -> Result<Option<Row>, DbError> {
        self.with(|tree| Ok(tree.last()?.map(|(k, v)| (k.to_vec(), v.to_vec()))))
    }

    /// Runs `op` on this tree in the current engine, which stays current until `op` returns.
    fn with<T>(&self, op: impl FnOnce(&sled::Tree) -> sled::Result<T>) -> Result<T, DbError> {
        // No cache of our own: sled already keeps its open trees in a map by name.
        self.db.with_engine(|engine| Ok(op(&engine.open_tree(&*self.name)?)?))
    }
}

/// Opens sled at `path` the way this crate always does.
fn open_engine(path: &Path) -> Result<sled::Db, DbError> {
    // sled's own periodic flush is turned off: durability points are ours to choose.
    let config =
        sled::Config::new().path(path).flush_every_ms(None).cache_capacity(ENGINE_CACHE_BYTES_MAX);

    // sled asserts on some damage to its files rather than answer an error: a panic while
    // opening is reported as damage, not allowed to take the node down.
    let open = || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()))
            .map_err(|_| DbError::EnginePanicked { path: path.to_owned() })
    };

    // A database closed a moment ago can still be locked: sled's I/O threads drop their
    // handles on it just after finishing their last write. Wait for that, briefly.
    for _ in 0..50 {
        match open()? {
            Err(sled::Error::Io(e)) if e.to_string().starts_with("could not acquire lock") => {
                thread::sleep(Duration::from_millis(20));
            }
            opened => return Ok(opened?),
        }
    }
    Ok(open()??)
}

/// The compaction proper, under both locks; sets `slot` to `None` once the old engine is
/// closed, and back to the new engine once it is open at the original path.
fn compact_locked(
    layout: &Layout,
    slot: &mut Option<sled::Db>,
) -> Result<CompactionReport, DbError> {
    let old = slot.as_ref().ok_or(DbError::Closed)?;
    old.flush()?;
    let bytes_before = dir_size(&layout.live)?;

    // Left by an earlier compaction that failed in this process.
    remove_if_present(&layout.staging)?;
    remove_if_present(&layout.discarded)?;
    write_copy(old, &layout.staging)?;

    // Closed before its directory is moved, so that nothing more is written to it.
    *slot = None;
    swap_into_place(layout)?;
    *slot = Some(open_engine(&layout.live)?);

    remove_if_present(&layout.discarded)?;
    sync_dir(&layout.parent)?;
    let bytes_after = dir_size(&layout.live)?;
    Ok(CompactionReport { bytes_before, bytes_after })
}

/// Writes every tree's live pairs from `old` into a new database at `path`, and fsyncs it.
///
/// A plain copy rather than sled's `export`/`import`: those panic on any I/O error, where a
/// compaction must instead fail with an error and leave the database as it was.
fn write_copy(old: &sled::Db, path: &Path) -> Result<(), DbError> {
    let new = open_engine(path)?;
    for name in old.tree_names() {
        let (from, to) = (old.open_tree(&name)?, new.open_tree(&name)?);
        for pair in from.iter() {
            let (key, value) = pair?;
            to.insert(key, value)?;
        }
    }

    // The old database is deleted next: make sure the copy holds exactly the same first.
    if new.checksum()? != old.checksum()? {
        return Err(DbError::CopyMismatch);
    }
    new.flush()?;
    Ok(())
}

/// Where a database and its compaction directories live.
struct Layout {
    /// The database itself, at the path it was opened with.
    live: PathBuf,
    /// A compaction's copy while it is written; complete once `discarded` exists.
    staging: PathBuf,
    /// The old database while it is deleted.
    discarded: PathBuf,
    /// The directory holding all three, whose entries the renames change.
    parent: PathBuf,
}

impl Layout {
    fn new(path: &Path) -> Result<Layout, DbError> {
        let Some(name) = path.file_name() else {
            let source = io::Error::new(io::ErrorKind::InvalidInput, "not a directory name");
            return Err(DbError::Io { path: path.to_owned(), source });
        };
        let sibling = |suffix: &str| {
            let mut sibling = name.to_owned();
            sibling.push(suffix);
            path.with_file_name(sibling)
        };
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        Ok(Layout {
            live: path.to_owned(),
            staging: sibling(".compacting"),
            discarded: sibling(".discarded"),
            parent,
        })
    }
}

/// Moves the fsynced copy in place of the database, and the old database out of the way.
///
/// The order makes every crash point recoverable: `discarded` appears only once `staging` is
/// complete, and `live` is missing only while both exist.
fn swap_into_place(layout: &Layout) -> Result<(), DbError> {
    rename(&layout.live, &layout.discarded)?;
    sync_dir(&layout.parent)?;

    rename(&layout.staging, &layout.live)?;
    sync_dir(&layout.parent)
}

/// Finishes or undoes a compaction that a crash interrupted. The rule:
///
/// - `live` missing, `staging` and `discarded` present: the crash fell between the two
///   renames, so `staging` is complete and is renamed into place;
/// - `live` missing, `staging` present without `discarded`: no compaction leaves this, so
///   `staging` cannot be trusted and opening fails rather than guess;
/// - `live` present: it is the database, and any `staging` (unfinished) or `discarded`
///   (superseded) beside it is deleted.
///
/// With neither `live` nor `staging`, there is nothing to recover and sled creates the database.
fn recover(layout: &Layout) -> Result<(), DbError> {
    if !layout.live.exists() && layout.staging.exists() {
        if !layout.discarded.exists() {
            return Err(DbError::Unrecoverable { path: layout.live.clone() });
        }
        rename(&layout.staging, &layout.live)?;
        sync_dir(&layout.parent)?;
    }
    if layout.live.exists() {
        remove_if_present(&layout.staging)?;
        remove_if_present(&layout.discarded)?;
        sync_dir(&layout.parent)?;
    }
    Ok(())
}

/// The total size of the files under `dir`.
fn dir_size(dir: &Path) -> Result<u64, DbError> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let path = entry.map_err(io_at(dir))?.path();
        let metadata = fs::symlink_metadata(&path).map_err(io_at(&path))?;
        total += if metadata.is_dir() { dir_size(&path)? } else { metadata.len() };
    }
    Ok(total)
}

fn rename(from: &Path, to: &Path) -> Result<(), DbError> {
    fs::rename(from, to).map_err(io_at(from))
}

fn remove_if_present(dir: &Path) -> Result<(), DbError> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_at(dir)(e)),
        _ => Ok(()),
    }
}

/// Makes the renames in `dir` durable. Only Unix lets a directory be opened and fsynced.
fn sync_dir(dir: &Path) -> Result<(), DbError> {
    if cfg!(unix) {
        fs::File::open(dir).and_then(|dir| dir.sync_all()).map_err(io_at(dir))?;
    }
    Ok(())
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> DbError + '_ {
    move |source| DbError::Io { path: path.to_owned(), source }
}
