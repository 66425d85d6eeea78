//! Compaction of the storage seam: removed values leave the data directory, live ones stay
//! readable through old handles and across reopens, and an interrupted compaction recovers.

use std::fs;
use std::path::{Path, PathBuf};

use roamhub_store::db::{Db, DbError, Tree};
use tempfile::TempDir;

const CANARY: &[u8] = b"canary-9f3c1e";

fn canary_value() -> Vec<u8> {
    CANARY.repeat(16)
}

fn value_of(i: u32) -> Vec<u8> {
    format!("live value {i:04} ").repeat(8).into_bytes()
}

/// Every file under `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let holds = |path: &PathBuf| {
        let bytes = fs::read(path).expect("readable file");
        bytes.windows(needle.len()).any(|window| window == needle)
    };
    files_under(dir).into_iter().filter(holds).collect()
}

fn assert_live_keys(tree: &Tree, keys: impl Iterator<Item = u32>) {
    for i in keys {
        let got = tree.get(&i.to_be_bytes()).expect("readable key");
        assert_eq!(got, Some(value_of(i)), "live key {i}");
    }
}

/// Writes keys `0..100` to `other`, then removes the odd ones: churn unrelated to the canary.
fn churn(other: &Tree) {
    for i in 0..100u32 {
        other.insert(&i.to_be_bytes(), value_of(i)).expect("insert");
    }
    for i in (1..100u32).step_by(2) {
        other.remove(&i.to_be_bytes()).expect("remove");
    }
}

/// Proves that after `compact` no file under the data directory holds a removed value, that
/// sled alone had kept it, and that live data stays readable through handles taken before the
/// compaction and after reopening the database.
#[tokio::test]
async fn compaction_erases_a_removed_value_from_every_file() {
    let dir = TempDir::new().expect("temporary directory");
    let path = dir.path().join("index.sled");
    let db = Db::open(&path).expect("db opens");
    let secrets = db.tree("secrets").expect("tree");
    let other = db.tree("other").expect("tree");

    secrets.insert(b"subject-1", canary_value()).expect("insert");
    secrets.insert(b"subject-2", b"kept".to_vec()).expect("insert");
    db.flush().await.expect("flush");
    churn(&other);
    secrets.remove(b"subject-1").expect("remove");
    db.flush().await.expect("flush");

    let before = files_containing(dir.path(), CANARY);
    if before.is_empty() {
        println!("note: sled had already dropped the removed canary before compaction");
    } else {
        println!("sled kept the removed canary before compaction in {before:?}");
    }

    let report = db.compact().await.expect("compaction");
    println!("compaction: {report:?}");
    assert_eq!(files_containing(dir.path(), CANARY), Vec::<PathBuf>::new());

    // The handles taken before the compaction read the new engine.
    assert_eq!(secrets.get(b"subject-1").expect("get"), None);
    assert_eq!(secrets.get(b"subject-2").expect("get"), Some(b"kept".to_vec()));
    assert_live_keys(&other, (0..100).step_by(2));
    assert_eq!(other.range(&[], &[0xff; 4]).expect("range").len(), 50);

    drop((secrets, other, db));
    let db = Db::open(&path).expect("db reopens");
    let (secrets, other) = (db.tree("secrets").expect("tree"), db.tree("other").expect("tree"));
    assert_eq!(secrets.get(b"subject-1").expect("get"), None);
    assert_eq!(secrets.get(b"subject-2").expect("get"), Some(b"kept".to_vec()));
    assert_live_keys(&other, (0..100).step_by(2));
    assert_eq!(files_containing(dir.path(), CANARY), Vec::<PathBuf>::new());
}

/// Proves that a compacted database is the one found at the original path after a reopen,
/// with its data, with nothing left beside it, and still writable.
#[tokio::test]
async fn compaction_survives_a_reopen() {
    let dir = TempDir::new().expect("temporary directory");
    let path = dir.path().join("index.sled");
    let db = Db::open(&path).expect("db opens");
    let (log, meta) = (db.tree("log").expect("tree"), db.tree("raft_meta").expect("tree"));
    churn(&log);
    meta.insert(b"vote", b"term 3".to_vec()).expect("insert");
    db.flush().await.expect("flush");

    let report = db.compact().await.expect("compaction");
    assert!(report.bytes_after > 0, "{report:?}");
    log.insert(&1000u32.to_be_bytes(), value_of(1000)).expect("write after compaction");
    db.flush().await.expect("flush");
    drop((log, meta, db));

    let db = Db::open(&path).expect("db reopens");
    let (log, meta) = (db.tree("log").expect("tree"), db.tree("raft_meta").expect("tree"));
    assert_live_keys(&log, (0..100).step_by(2).chain([1000]));
    assert_eq!(log.get(&1u32.to_be_bytes()).expect("get"), None);
    assert_eq!(meta.get(b"vote").expect("get"), Some(b"term 3".to_vec()));
    let names = fs::read_dir(dir.path()).expect("readable").map(|e| e.expect("entry").file_name());
    assert_eq!(names.collect::<Vec<_>>(), ["index.sled"]);
}

/// Proves that writes and flushes racing a compaction are neither lost nor torn: every write
/// acknowledged by a flush is readable afterwards, in this process and after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_racing_compactions_are_kept() {
    let dir = TempDir::new().expect("temporary directory");
    let path = dir.path().join("index.sled");
    let db = Db::open(&path).expect("db opens");
    let tree = db.tree("log").expect("tree");

    let writers: Vec<_> = (0..4u32)
        .map(|writer| {
            let (db, tree) = (db.clone(), tree.clone());
            tokio::spawn(async move {
                for i in (writer * 1000)..(writer * 1000 + 200) {
                    tree.insert(&i.to_be_bytes(), value_of(i)).expect("insert");
                    db.flush().await.expect("flush");
                }
            })
        })
        .collect();
    let compactor = tokio::spawn({
        let db = db.clone();
        async move {
            for _ in 0..3 {
                db.compact().await.expect("compaction");
            }
        }
    });
    for task in writers.into_iter().chain([compactor]) {
        task.await.expect("task finishes");
    }

    let written = || (0..4u32).flat_map(|w| (w * 1000)..(w * 1000 + 200));
    assert_live_keys(&tree, written());
    drop((tree, db));
    let db = Db::open(&path).expect("db reopens");
    assert_live_keys(&db.tree("log").expect("tree"), written());
}

/// Proves the recovery rule for a crash between the two renames: the database directory is
/// missing, the complete copy is renamed into place and the old database is deleted.
#[tokio::test]
async fn open_finishes_a_compaction_interrupted_between_renames() {
    let dir = TempDir::new().expect("temporary directory");
    let path = dir.path().join("index.sled");
    write_one(&path, b"old").await;
    write_one(&dir.path().join("index.sled.compacting"), b"copy").await;
    fs::rename(&path, dir.path().join("index.sled.discarded")).expect("rename");

    assert_eq!(read_one(&path), Some(b"copy".to_vec()));
    let names = fs::read_dir(dir.path()).expect("readable").map(|e| e.expect("entry").file_name());
    assert_eq!(names.collect::<Vec<_>>(), ["index.sled"]);
}

/// Proves the recovery rule for a crash while the copy was written: the database directory
/// is kept and the unfinished copy beside it is deleted.
#[tokio::test]
async fn open_deletes_an_unfinished_copy() {
    let dir = TempDir::new().expect("temporary directory");
    let path = dir.path().join("index.sled");
    write_one(&path, b"old").await;
    write_one(&dir.path().join("index.sled.compacting"), b"partial").await;

    assert_eq!(read_one(&path), Some(b"old".to_vec()));
    assert!(!dir.path().join("index.sled.compacting").exists());
}

/// Proves that opening refuses a copy no compaction could have left alone, rather than
/// trusting it or creating an empty database beside it.
#[tokio::test]
async fn open_refuses_a_copy_it_cannot_prove_complete() {
    let dir = TempDir::new().expect("temporary directory");
    let path = dir.path().join("index.sled");
    write_one(&dir.path().join("index.sled.compacting"), b"partial").await;

    let opened = Db::open(&path);
    assert!(matches!(opened, Err(DbError::Unrecoverable { .. })), "opened anyway");
    assert!(!path.exists());
}

async fn write_one(path: &Path, value: &[u8]) {
    let db = Db::open(path).expect("db opens");
    db.tree("t").expect("tree").insert(b"k", value.to_vec()).expect("insert");
    db.flush().await.expect("flush");
}

fn read_one(path: &Path) -> Option<Vec<u8>> {
    let db = Db::open(path).expect("db opens");
    db.tree("t").expect("tree").get(b"k").expect("get")
}
