//! Runs openraft's storage conformance suite against the sled-backed log and state machine,
//! each case in a fresh data directory, once for each way of waiting for a flush.

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use roamhub_store::{FlushMode, LogStore, StateMachine, TypeConfig};
use tempfile::TempDir;

struct SledStoreBuilder {
    flush_mode: FlushMode,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for SledStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = TempDir::new().expect("temporary directory");
        let storage = roamhub_store::open_with(dir.path(), self.flush_mode).expect("store opens");
        Ok((dir, storage.log_store, storage.state_machine))
    }
}

#[test]
fn sled_store_passes_openraft_storage_suite() -> Result<(), StorageError<u64>> {
    Suite::test_all(SledStoreBuilder { flush_mode: FlushMode::Background })
}

/// The simulation's inline flushes keep every guarantee of the background ones.
#[test]
fn sled_store_with_inline_flushes_passes_openraft_suite() -> Result<(), StorageError<u64>> {
    Suite::test_all(SledStoreBuilder { flush_mode: FlushMode::Inline })
}
