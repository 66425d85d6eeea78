//! The simulated cluster: real nodes (openraft over roamhub's storage) booted, crashed and
//! restarted on one runtime, each with its storage in a directory of its own.
//!
//! A crash stops the node's Raft, ends every network call it had open and drops every
//! handle on its storage; a restart opens the same directory again, as a process would
//! after a crash, and openraft re-applies the committed log. Every boot draws the node's
//! election timeout from the seed and pins it (`election_timeout_max` is one more than the
//! minimum), because openraft draws it with a thread-local generator the seed cannot reach.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::{ServerState, SnapshotPolicy};
use roamhub_store::{FlushMode, NodeAddress};
use tempfile::TempDir;
use tokio::task::JoinHandle;

use crate::invariants::Checker;
use crate::limits::{
    APPEND_ENTRIES_MAX, CRASH_SETTLE_MS, ELECTION_TIMEOUT_MIN_MS, ELECTION_TIMEOUT_SPREAD_MS,
    ENTRIES_KEPT_AFTER_SNAPSHOT, HEARTBEAT_INTERVAL_MS, INSTALL_SNAPSHOT_TIMEOUT_MS,
    SNAPSHOT_EVERY_ENTRIES,
};
use crate::network::{Endpoint, Liveness, Raft, SimNetwork, SimNetworkFactory};
use crate::rng::SimRng;
use crate::trace::Trace;

/// What the cluster shares with the rest of the run.
#[derive(Clone)]
pub struct Context {
    pub network: SimNetwork,
    pub checker: Checker,
    pub trace: Trace,
}

pub struct Cluster {
    nodes: Vec<SimNode>,
    context: Context,
    /// Draws each boot's election timeout.
    rng: SimRng,
    /// Holds every node's directory; removed with the cluster.
    _root: TempDir,
}

struct SimNode {
    node_id: u64,
    dir: PathBuf,
    boots: u32,
    running: Option<Running>,
    /// The index the node had applied when it last crashed.
    applied_at_crash: u64,
}

struct Running {
    endpoint: Endpoint,
    monitor: JoinHandle<()>,
}

impl Cluster {
    /// Boots `count` nodes with empty storage and bootstraps them as one Raft group.
    pub async fn start(count: usize, context: Context, rng: SimRng) -> Result<Cluster, String> {
        let root = tempfile::Builder::new()
            .prefix("roamhub-sim-")
            .tempdir_in(scratch_dir())
            .map_err(|e| format!("creating the cluster's directory: {e}"))?;
        let nodes = (1..=count as u64).map(|node_id| SimNode::new(node_id, root.path())).collect();
        let mut cluster = Cluster { nodes, context, rng, _root: root };
        for node_id in cluster.node_ids() {
            cluster.boot(node_id).await?;
        }

        let voters: BTreeMap<u64, NodeAddress> =
            cluster.node_ids().into_iter().map(|id| (id, address_of(id))).collect();
        let first = cluster.endpoint(1).ok_or("node 1 did not boot")?;
        first.raft.initialize(voters).await.map_err(|e| format!("bootstrapping: {e}"))?;
        Ok(cluster)
    }

    pub fn node_ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|node| node.node_id).collect()
    }

    pub fn up_ids(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.running.is_some()).map(|n| n.node_id).collect()
    }

    pub fn down_ids(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.running.is_none()).map(|n| n.node_id).collect()
    }

    pub fn endpoint(&self, node_id: u64) -> Option<Endpoint> {
        let running = self.node(node_id).running.as_ref()?;
        Some(running.endpoint.clone())
    }

    /// The running node that says it leads the highest term, if any does.
    pub fn leader(&self) -> Option<u64> {
        let leaders = self.nodes.iter().filter_map(|node| {
            let metrics = node.running.as_ref()?.endpoint.raft.metrics().borrow().clone();
            let leads = metrics.state == ServerState::Leader;
            leads.then_some((metrics.current_term, node.node_id))
        });
        leaders.max().map(|(_, node_id)| node_id)
    }

    /// Hands every running node's metrics and digest to the checker.
    pub fn observe_all(&self) {
        for node in &self.nodes {
            let Some(running) = &node.running else { continue };
            let metrics = running.endpoint.raft.metrics().borrow().clone();
            self.context.checker.observe_metrics(node.node_id, &metrics);
            self.context.checker.observe_digest(node.node_id, running.endpoint.reader.digest());
        }
    }

    /// Stops a node as a crash would: nothing more reaches it or leaves it, its Raft stops,
    /// and its storage is closed once its tasks have wound down.
    // TODO: lose the writes not yet fsynced at a crash; sled flushes every dirty page when
    // its last handle drops, so this crash keeps them, which is kinder than a power cut.
    pub async fn crash(&mut self, node_id: u64) {
        let Some(running) = self.node_mut(node_id).running.take() else { return };
        let (applied, _) = running.endpoint.reader.digest();
        self.node_mut(node_id).applied_at_crash = applied;
        self.context.network.detach(node_id);
        // First, so that every call waiting on this boot ends in a seeded order.
        running.endpoint.liveness.crash();
        running.monitor.abort();
        // A node that stops with an error has stopped all the same.
        let _ = running.endpoint.raft.shutdown().await;
        drop(running);

        tokio::time::sleep(Duration::from_millis(CRASH_SETTLE_MS)).await;
        self.context.trace.record(format_args!("fault: node {node_id} crashed, applied {applied}"));
    }

    /// Boots a crashed node again from its directory, and checks that it applied again at
    /// least what it had applied before the crash.
    pub async fn restart(&mut self, node_id: u64) -> Result<(), String> {
        if self.node(node_id).running.is_some() {
            return Ok(());
        }
        self.boot(node_id).await?;

        let before = self.node(node_id).applied_at_crash;
        let endpoint = self.endpoint(node_id).ok_or("a restarted node is running")?;
        let (after, _) = endpoint.reader.digest();
        if after < before {
            let detail = format!(
                "node {node_id} restarted with applied index {after}, below the {before} \
                 it had applied before its crash"
            );
            self.context.checker.violate("committed entries survive restarts", detail);
        }
        Ok(())
    }

    /// Stops every node, so that their storage closes before the directory goes.
    pub async fn stop_all(&mut self) {
        for node_id in self.up_ids() {
            self.crash(node_id).await;
        }
    }

    async fn boot(&mut self, node_id: u64) -> Result<(), String> {
        let dir = self.node(node_id).dir.clone();
        let storage = roamhub_store::open_with(&dir, FlushMode::Inline)
            .map_err(|e| format!("opening node {node_id}'s storage: {e}"))?;
        let reader = storage.state_machine.reader();
        let election_timeout_ms =
            ELECTION_TIMEOUT_MIN_MS + self.rng.below(ELECTION_TIMEOUT_SPREAD_MS);
        let config = raft_config(election_timeout_ms)?;

        let liveness = Liveness::default();
        let network = self.context.network.clone();
        let factory = SimNetworkFactory { node_id, network, liveness: liveness.clone() };
        let raft = Raft::new(node_id, config, factory, storage.log_store, storage.state_machine)
            .await
            .map_err(|e| format!("starting node {node_id}'s Raft: {e}"))?;

        let endpoint = Endpoint { raft, reader, liveness };
        let checker = self.context.checker.clone();
        let monitor = tokio::spawn(monitor(node_id, endpoint.clone(), checker));
        self.context.network.attach(node_id, endpoint.clone());
        let (applied, _) = endpoint.reader.digest();

        let node = self.node_mut(node_id);
        node.boots += 1;
        node.running = Some(Running { endpoint, monitor });
        let boot = node.boots;
        self.context.trace.record(format_args!(
            "boot: node {node_id} #{boot}, election timeout {election_timeout_ms} ms, \
             applied {applied}"
        ));
        Ok(())
    }

    fn node(&self, node_id: u64) -> &SimNode {
        &self.nodes[node_id as usize - 1]
    }

    fn node_mut(&mut self, node_id: u64) -> &mut SimNode {
        &mut self.nodes[node_id as usize - 1]
    }
}

impl SimNode {
    fn new(node_id: u64, root: &Path) -> SimNode {
        let dir = root.join(format!("node-{node_id}"));
        SimNode { node_id, dir, boots: 0, running: None, applied_at_crash: 0 }
    }
}

/// How peers and clients name a node; nothing dials these.
pub fn address_of(node_id: u64) -> NodeAddress {
    NodeAddress {
        raft_addr: format!("sim://node-{node_id}/raft"),
        api_addr: format!("sim://node-{node_id}/api"),
    }
}

/// The configuration roamhub-node gives openraft, with the simulation's timing.
fn raft_config(election_timeout_ms: u64) -> Result<Arc<openraft::Config>, String> {
    let config = openraft::Config {
        cluster_name: "roamhub-sim".to_owned(),
        heartbeat_interval: HEARTBEAT_INTERVAL_MS,
        election_timeout_min: election_timeout_ms,
        election_timeout_max: election_timeout_ms + 1,
        install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
        max_payload_entries: APPEND_ENTRIES_MAX,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
        max_in_snapshot_log_to_keep: ENTRIES_KEPT_AFTER_SNAPSHOT,
        ..Default::default()
    };
    config.validate().map(Arc::new).map_err(|e| format!("raft config: {e}"))
}

/// Feeds every change of a node's metrics to the checker, with the digest of its index
/// whenever it applied more, until the node stops.
async fn monitor(node_id: u64, endpoint: Endpoint, checker: Checker) {
    let mut metrics = endpoint.raft.metrics();
    let mut digested = None;
    loop {
        let seen = metrics.borrow_and_update().clone();
        checker.observe_metrics(node_id, &seen);
        if seen.last_applied != digested {
            digested = seen.last_applied;
            checker.observe_digest(node_id, endpoint.reader.digest());
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Where node directories go: memory-backed when the machine has it, so that the fsyncs
/// of hundreds of seeds cost nothing.
fn scratch_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { shm.to_owned() } else { std::env::temp_dir() }
}
