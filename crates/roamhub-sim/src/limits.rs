//! Every bound the simulation runs under, named in one place.
//!
//! Times are simulated milliseconds: the clock is tokio's paused clock, which moves only
//! when every task waits, so none of these costs wall-clock time by itself.

/// Nodes in the simulated cluster unless the settings say otherwise.
pub const NODES_DEFAULT: usize = 3;
/// The most nodes a cluster may have (one city each in [`CITIES`]).
pub const NODES_MAX: usize = 5;
/// Steps of a seed's faulty phase unless the settings say otherwise. Each step lets the
/// cluster run for [`STEP_MS`], gives the fault schedule a chance to act, then checks.
pub const STEPS_PER_SEED_DEFAULT: u32 = 200;
/// Simulated time one step lasts.
pub const STEP_MS: u64 = 50;

/// Raft's heartbeat interval.
pub const HEARTBEAT_INTERVAL_MS: u64 = 50;
/// A node's election timeout is drawn from the seed in
/// `ELECTION_TIMEOUT_MIN_MS..ELECTION_TIMEOUT_MIN_MS + ELECTION_TIMEOUT_SPREAD_MS` at each
/// boot; openraft's own draw is then pinned (see `cluster`).
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 200;
pub const ELECTION_TIMEOUT_SPREAD_MS: u64 = 200;
/// How long one snapshot may take to install.
pub const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 1_000;
/// A snapshot after this many applied entries: low, so that restarted nodes catch up from
/// snapshots too.
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 40;
/// Entries kept in the log behind a snapshot.
pub const ENTRIES_KEPT_AFTER_SNAPSHOT: u64 = 10;
/// Log entries sent in one append.
pub const APPEND_ENTRIES_MAX: u64 = 64;

/// One-way delay of a delivered message, drawn per message in this range (inclusive).
pub const MESSAGE_DELAY_MIN_MS: u64 = 1;
pub const MESSAGE_DELAY_MAX_MS: u64 = 20;
/// One-way delay of a message on a slow link, drawn per message in this range.
pub const SLOW_LINK_DELAY_MIN_MS: u64 = 50;
pub const SLOW_LINK_DELAY_MAX_MS: u64 = 400;
/// A seed with a lossy network drops each message with this chance, in per mille; the
/// others drop none at random (partitions still drop).
pub const MESSAGE_LOSS_PER_MILLE: u64 = 20;
/// Messages (requests and replies) travelling at once; one more is dropped, as by a full
/// queue.
pub const MESSAGES_IN_FLIGHT_MAX: usize = 256;
/// How long past openraft's own deadline a lost message's call waits before it fails, in
/// case a caller set no deadline.
pub const LOST_MESSAGE_GRACE_MS: u64 = 1_000;

/// Citizens the clients act for; one writer each.
pub const CITIZENS: usize = 3;
/// Clients that read and resolve random citizens.
pub const READERS: usize = 2;
/// Consents a writer keeps given at most; beyond, it withdraws one.
pub const GIVEN_CONSENTS_MAX: usize = 3;
/// How long one client operation may take before its outcome counts as unknown.
pub const CLIENT_OP_TIMEOUT_MS: u64 = 2_000;
/// How often a client follows a "not the leader" answer to the leader it names.
pub const FORWARD_ATTEMPTS_MAX: u32 = 3;
/// How often a linearizable read looks whether its node has applied up to the read index.
pub const APPLIED_POLL_MS: u64 = 1;
/// A client's pause between operations is drawn in `0..=CLIENT_PAUSE_MAX_MS`.
pub const CLIENT_PAUSE_MAX_MS: u64 = 40;
/// How long a client waits after a failed or unknown operation.
pub const CLIENT_ERROR_PAUSE_MS: u64 = 100;

/// The chance per step, in per mille, that the fault schedule injects a fault when none
/// is active, and that it heals one that is.
pub const FAULT_PER_MILLE: u64 = 120;
pub const HEAL_PER_MILLE: u64 = 80;
/// Simulated time a crashed node's tasks get to wind down before its storage reopens.
pub const CRASH_SETTLE_MS: u64 = 5;

/// After the final heal: how long the cluster has to elect a leader and commit a write,
/// and then for every node to apply it.
pub const RECOVERY_MAX_MS: u64 = 10_000;
/// How often the recovery phase looks again.
pub const RECOVERY_POLL_MS: u64 = 20;
/// How long setup (members, service, citizens) may take on a healthy cluster.
pub const SETUP_MAX_MS: u64 = 10_000;

/// Configurations the linearizability check of one citizen's history may explore before
/// it gives up; a seed that gives up is reported, not failed.
pub const CHECK_STATES_EXPLORED_MAX: usize = 200_000;

/// How far a node's clock may be off, either way; each node's error is drawn per seed.
pub const CLOCK_SKEW_MAX_MS: u64 = 2_000;

/// The cities of the nodes, in node order.
pub const CITIES: [&str; NODES_MAX] =
    ["nl-eindhoven", "fi-helsinki", "es-valencia", "be-gent", "de-aachen"];
/// The simulated wall clock starts here (2023-11-14), and commands are stamped from it.
pub const SIM_EPOCH_UNIX_MS: u64 = 1_700_000_000_000;
