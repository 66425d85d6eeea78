//! A deterministic simulation of a roamhub Raft cluster: the real index state machine, the
//! real sled storage behind its seam, and real openraft, in one process, with only the
//! network between nodes simulated. One seed decides everything, so a failing seed
//! replays exactly.
//!
//! How it stays deterministic:
//!
//! - Every node, client and check runs as a task on one tokio `current_thread` runtime whose
//!   clock is paused: simulated time moves only when every task waits, straight to the next
//!   timer. Timeouts, heartbeats and message delays cost no wall-clock time.
//! - Storage opens with `FlushMode::Inline`, so each fsync ends inside the task that asked
//!   for it; no wake-up comes from sled's threads at a moment the operating system chose.
//! - Every choice (message delays and losses, faults, client operations, keys, clock
//!   skews, election timeouts) comes from generators forked from the seed. openraft draws
//!   election timeouts from a thread-local generator, so each boot pins its timeout to one
//!   drawn from the seed.
//! - Nothing waits on an unbiased `select!` of ours, nor on openraft's `Raft::wait`, whose
//!   branch order tokio draws from a generator the seed cannot reach.
//!
//! What it leaves out, and what is left of chance:
//!
//! - A crash keeps the writes not yet fsynced: sled flushes every dirty page when its last
//!   handle drops. Crashes also fall between tasks' steps, never inside an fsync, so torn
//!   writes are not simulated either.
//! - Clients call `Raft` directly: the public API, TLS, the `Forward` service and the
//!   resolver's batching are not in the loop.
//! - sled does real I/O, in a directory under `/dev/shm` where there is one. Its threads
//!   decide nothing: each flush is waited for inline, so their timing cannot reorder steps.
//! - No nondeterminism is known to remain: 300 seeds run twice, in two processes, gave
//!   the same trace hashes. What could bring it back is tokio's unseeded generator, which
//!   picks the branch order of an unbiased `select!` and the wake-up order of a `watch`
//!   channel's waiters. openraft has one such `select!`, in replication's backoff, entered
//!   only on `Unreachable`, which this network never returns; it waits on its metrics
//!   `watch` when a call finds the core stopped, which a crash preempts by ending every
//!   call on the crashed node first, in a seeded order (see `network::Liveness`).
//!
//! A tour of the modules:
//!
//! - [`limits`]: every bound, named;
//! - [`rng`]: the seeded generator;
//! - [`trace`]: the hashed record of every event, which proves two runs identical;
//! - [`network`]: the simulated network, and openraft's network traits over it, mirroring
//!   roamhub-node's gRPC client and server;
//! - [`cluster`]: booting, crashing and restarting nodes on their own directories;
//! - [`invariants`]: Raft safety (votes that never go back, applied entries and digests
//!   that agree, committed entries kept across restarts), checked as nodes report;
//! - [`commands`]: the index commands of a run, signed as citizens sign them;
//! - [`operations`]: how one client operation reaches the leader;
//! - [`recorder`]: the histories of client operations, by citizen;
//! - [`client`]: the workload of writers and readers;
//! - [`faults`]: the fault schedule (partitions, one-way cuts, isolated leaders, slow
//!   links, crashes, restarts, heals);
//! - [`history_checks`]: the client-visible checks, linearizability by roamhub-check
//!   included;
//! - `run`: one seed, phase by phase.
//!
//! [`run_seed`] runs one seed and returns a [`SeedReport`] or the first [`Failure`].

pub mod client;
pub mod cluster;
pub mod commands;
pub mod faults;
pub mod history_checks;
pub mod invariants;
pub mod limits;
pub mod network;
pub mod operations;
pub mod recorder;
pub mod rng;
mod run;
pub mod trace;

use std::collections::BTreeMap;
use std::fmt;

use faults::FaultKind;
use limits::{NODES_DEFAULT, NODES_MAX, STEPS_PER_SEED_DEFAULT};
use network::MessageCounts;
use trace::TraceSummary;

/// What a seed runs with, besides the seed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Nodes in the cluster, 3 to [`NODES_MAX`].
    pub nodes: usize,
    /// Steps of the faulty phase, each [`limits::STEP_MS`] long.
    pub steps: u32,
    /// Keep every line of the trace in the report, not only its hash.
    pub trace: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { nodes: NODES_DEFAULT, steps: STEPS_PER_SEED_DEFAULT, trace: false }
    }
}

/// What a seed that passed did.
#[derive(Debug, Clone)]
pub struct SeedReport {
    pub seed: u64,
    pub trace: TraceSummary,
    /// Simulated time the seed ran.
    pub sim_ms: u64,
    /// Whether the network lost messages at random.
    pub lossy: bool,
    pub faults: BTreeMap<FaultKind, u32>,
    /// Client operations recorded, reads included.
    pub operations: u64,
    pub acknowledged_writes: u64,
    pub messages: MessageCounts,
    /// From the final heal until a write committed and every node applied it.
    pub recovery_ms: u64,
    /// Citizen histories the linearizability search gave up on, within its bound.
    pub undecided_histories: u32,
    /// Terms with more than one leader, which openraft's default leader ids allow.
    pub shared_terms: u32,
}

/// The first check a seed failed.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    /// Simulated time of the failure.
    pub at_ms: u64,
    /// Which check failed, e.g. "one leader per term" or "linearizability".
    pub check: String,
    pub detail: String,
    /// The trace up to the failure; its lines only when the settings keep them.
    pub trace: TraceSummary,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed {} failed at {} ms, {}: {}", self.seed, self.at_ms, self.check, self.detail)
    }
}

impl std::error::Error for Failure {}

/// Runs one seed on a runtime of its own, from an empty cluster to the final checks.
pub fn run_seed(seed: u64, settings: &Settings) -> Result<SeedReport, Failure> {
    let refuse = |detail: String| Failure {
        seed,
        at_ms: 0,
        check: "settings".to_owned(),
        detail,
        trace: trace::TraceSummary { hash: String::new(), events: 0, lines: Vec::new() },
    };
    if !(3..=NODES_MAX).contains(&settings.nodes) {
        return Err(refuse(format!("nodes must be 3 to {NODES_MAX}, not {}", settings.nodes)));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| refuse(format!("building the runtime: {e}")))?;
    runtime.block_on(async {
        let run = run::Run::start(seed, settings).await?;
        run.run().await
    })
}
