//! A flipped bit in any kind of stored record is found: when the storage is opened, as a
//! `Corrupt` error naming the record, and while it runs, as a `StorageError` to openraft
//! with the record noted in `Faults`; never as a panic, and never with the record's bytes.

use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder};
use roamhub_store::codec::{self, Corrupt};
use roamhub_store::db::{Db, Tree};
use roamhub_store::types::{Entry, LogId, SnapshotMeta, Vote};
use roamhub_store::{DATABASE_DIR, OpenError};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

const ENTRIES: u64 = 6;

fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn blank(index: u64) -> Entry {
    Entry { log_id: log_id(index), payload: EntryPayload::Blank }
}

/// A data directory with a vote, a committed log id, log entries `0..ENTRIES` and a
/// snapshot at entry 2.
async fn populated() -> TempDir {
    let dir = TempDir::new().unwrap();
    let mut storage = roamhub_store::open(dir.path()).unwrap();
    let log = storage.db.tree("log").unwrap();
    for index in 0..ENTRIES {
        log.insert(&index.to_be_bytes(), codec::encode(&blank(index))).unwrap();
    }
    storage.log_store.save_vote(&Vote::new(1, 1)).await.unwrap();
    storage.log_store.save_committed(Some(log_id(ENTRIES - 1))).await.unwrap();

    let entries: Vec<Entry> = (0..3).map(blank).collect();
    storage.state_machine.apply(entries).await.unwrap();
    storage.state_machine.get_snapshot_builder().await.build_snapshot().await.unwrap();
    drop(storage);
    dir
}

/// Flips one bit of the value at `key` in `tree`, through the storage seam.
async fn flip_bit(dir: &Path, tree: &str, key: &[u8]) {
    let db = Db::open(&dir.join(DATABASE_DIR)).unwrap();
    let tree = db.tree(tree).unwrap();
    let mut value = tree.get(key).unwrap().expect("the record exists");
    let last = value.len() - 1;
    value[last] ^= 0x10;
    tree.insert(key, value).unwrap();
    db.flush().await.unwrap();
}

fn corruption_at_open(dir: &Path) -> Corrupt {
    match roamhub_store::open(dir) {
        Err(OpenError::Corrupt(corrupt)) => corrupt,
        Err(other) => panic!("not reported as corruption: {other}"),
        Ok(_) => panic!("a corrupt record passed the checks at open"),
    }
}

/// The snapshot record's layout, to reach inside its data.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_bit_in_each_kind_of_record_is_found_at_open() {
    let cases: [(&str, &[u8], &str); 5] = [
        ("log", &3u64.to_be_bytes(), "log entry"),
        ("raft_meta", b"vote", "vote"),
        ("raft_meta", b"committed", "committed log id"),
        ("snapshot", b"current", "snapshot"),
        ("node_local", b"erasures_compacted", "erasures compacted"),
    ];
    for (tree, key, what) in cases {
        let dir = populated().await;
        if tree == "node_local" {
            let storage = roamhub_store::open(dir.path()).unwrap();
            roamhub_store::set_erasures_compacted(&storage.db, 1).await.unwrap();
        }
        flip_bit(dir.path(), tree, key).await;
        let corrupt = corruption_at_open(dir.path());
        assert_eq!(corrupt.what, what, "{corrupt}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_bit_inside_the_snapshot_data_is_found_at_open() {
    let dir = populated().await;
    let db = Db::open(&dir.path().join(DATABASE_DIR)).unwrap();
    let tree = db.tree("snapshot").unwrap();
    let mut stored: StoredSnapshot =
        codec::decode(&tree.get(b"current").unwrap().unwrap()).unwrap();
    let middle = stored.data.len() / 2;
    stored.data[middle] ^= 0x01;
    tree.insert(b"current", codec::encode(&stored)).unwrap();
    db.flush().await.unwrap();
    drop((tree, db));

    let corrupt = corruption_at_open(dir.path());
    assert_eq!(corrupt.what, "snapshot data", "{corrupt}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_entry_is_found_at_open() {
    let dir = populated().await;
    let db = Db::open(&dir.path().join(DATABASE_DIR)).unwrap();
    db.tree("log").unwrap().remove(&4u64.to_be_bytes()).unwrap();
    db.flush().await.unwrap();
    drop(db);

    let corrupt = corruption_at_open(dir.path());
    assert_eq!((corrupt.what, corrupt.key.as_str()), ("log", "5"), "{corrupt}");
}

/// Corrupts `key` of `tree` under an open storage, as a disk would behind the node's back.
fn corrupt_live(tree: &Tree, key: &[u8]) {
    let mut value = tree.get(key).unwrap().unwrap();
    value[1] ^= 0x80;
    tree.insert(key, value).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_gone_bad_while_running_stops_raft_and_is_noted() {
    let dir = populated().await;
    let mut storage = roamhub_store::open(dir.path()).unwrap();
    corrupt_live(&storage.db.tree("log").unwrap(), &2u64.to_be_bytes());
    assert!(storage.log_store.try_get_log_entries(0..ENTRIES).await.is_err());
    let noted = storage.faults.first().expect("the fault is noted");
    assert_eq!((noted.what, noted.key.as_str()), ("log entry", "2"));

    drop(storage);
    assert!(roamhub_store::open(dir.path()).is_err(), "found at open too");

    let fresh = TempDir::new().unwrap();
    let mut storage = roamhub_store::open(fresh.path()).unwrap();
    storage.log_store.save_vote(&Vote::new(2, 1)).await.unwrap();
    corrupt_live(&storage.db.tree("raft_meta").unwrap(), b"vote");
    assert!(storage.log_store.read_vote().await.is_err());
    assert_eq!(storage.faults.first().unwrap().what, "vote");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_gone_bad_while_running_is_not_sent() {
    let dir = populated().await;
    let mut storage = roamhub_store::open(dir.path()).unwrap();
    corrupt_live(&storage.db.tree("snapshot").unwrap(), b"current");
    assert!(storage.state_machine.get_current_snapshot().await.is_err());
    assert_eq!(storage.faults.first().unwrap().what, "snapshot");
}

/// Cutting the engine's files anywhere, or flipping a byte in them, never panics opening;
/// what opens has passed every check.
#[tokio::test(flavor = "multi_thread")]
async fn damaged_engine_files_never_panic_open() {
    let template = populated().await;
    let files = files_under(&template.path().join(DATABASE_DIR));
    for file in files {
        let len = std::fs::metadata(&file).unwrap().len();
        for damage in
            [Damage::Cut(len / 2), Damage::Cut(len.saturating_sub(7)), Damage::Flip(len / 3)]
        {
            let dir = TempDir::new().unwrap();
            copy_dir(template.path(), dir.path());
            let target = dir.path().join(file.strip_prefix(template.path()).unwrap());
            damage.apply(&target);
            // Either outcome is fine; a panic fails the test.
            let _ = roamhub_store::open(dir.path()).map(drop);
        }
    }
}

enum Damage {
    Cut(u64),
    Flip(u64),
}

impl Damage {
    fn apply(&self, path: &Path) {
        let mut bytes = std::fs::read(path).unwrap();
        match *self {
            Damage::Cut(len) => bytes.truncate(len as usize),
            Damage::Flip(at) if (at as usize) < bytes.len() => bytes[at as usize] ^= 0xff,
            Damage::Flip(_) => {}
        }
        std::fs::write(path, bytes).unwrap();
    }
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            true => files.extend(files_under(&path)),
            false => files.push(path),
        }
    }
    files
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        match path.is_dir() {
            true => {
                std::fs::create_dir_all(&target).unwrap();
                copy_dir(&path, &target);
            }
            false => drop(std::fs::copy(&path, &target).unwrap()),
        }
    }
}
