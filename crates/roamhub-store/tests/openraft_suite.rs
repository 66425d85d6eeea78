//! Runs openraft's storage conformance suite against the sled-backed log and state machine,
//! each case in a fresh data directory.

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use roamhub_store::{LogStore, StateMachine, TypeConfig};
use tempfile::TempDir;

struct SledStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for SledStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = TempDir::new().expect("temporary directory");
        let storage = roamhub_store::open(dir.path()).expect("store opens");
        Ok((dir, storage.log_store, storage.state_machine))
    }
}

#[test]
fn sled_store_passes_openraft_storage_suite() -> Result<(), StorageError<u64>> {
    Suite::test_all(SledStoreBuilder)
}
