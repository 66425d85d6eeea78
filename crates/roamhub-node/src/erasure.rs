//! Erasure's second half: after the index forgets a citizen, each node rewrites its own
//! storage so that the citizen's bytes leave its disk.
//!
//! Removing a citizen from the index is not enough: their data also sits in earlier Raft
//! log entries, in the last snapshot, and in sled's files, which keep old copies of
//! removed values. So when the applied index counts more erasures than this node has
//! compacted, the node builds a snapshot covering the erasure, purges the log up to it, and
//! rebuilds its database from live data. A node that was down during an erasure does the
//! same once it has caught up, whether from the log or from a snapshot.

use std::sync::Arc;
use std::time::Duration;

use roamhub_store::Db;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::node::Node;

/// How often a node compares erasures applied with erasures compacted.
const ERASURE_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How long one step (snapshot, purge) may take before the node tries again later.
const ERASURE_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Compacts after every erasure until `shutdown` turns true.
pub async fn compact_after_erasures(node: Arc<Node>, mut shutdown: watch::Receiver<bool>) {
    let db = node.db().clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(ERASURE_CHECK_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }

        let applied = node.erasures_applied();
        let compacted = roamhub_store::erasures_compacted(&db).unwrap_or(0);
        if applied <= compacted {
            continue;
        }
        match compact(&node, &db).await {
            Ok(()) => {
                if let Err(error) = roamhub_store::set_erasures_compacted(&db, applied).await {
                    warn!(%error, "could not record the compaction; it will run again");
                }
            }
            Err(reason) => warn!(%reason, "compaction after erasure postponed"),
        }
    }
}

/// Snapshot past the erasure, purge the log up to the snapshot, rebuild the database.
async fn compact(node: &Node, db: &Db) -> Result<(), String> {
    let raft = node.raft();
    let applied = raft.metrics().borrow().last_applied.map(|id| id.index).unwrap_or_default();

    raft.trigger().snapshot().await.map_err(|e| e.to_string())?;
    let covered = raft
        .wait(Some(ERASURE_STEP_TIMEOUT))
        .metrics(|m| m.snapshot.is_some_and(|s| s.index >= applied), "snapshot past erasure")
        .await
        .map_err(|e| e.to_string())?;
    let snapshot = covered.snapshot.map(|s| s.index).unwrap_or(applied);

    raft.trigger().purge_log(snapshot).await.map_err(|e| e.to_string())?;
    raft.wait(Some(ERASURE_STEP_TIMEOUT))
        .metrics(|m| m.purged.is_some_and(|p| p.index >= snapshot), "log purged past erasure")
        .await
        .map_err(|e| e.to_string())?;

    let report = db.compact().await.map_err(|e| e.to_string())?;
    info!(
        snapshot,
        bytes_before = report.bytes_before,
        bytes_after = report.bytes_after,
        "storage compacted after erasure"
    );
    Ok(())
}
