//! What a node is started with, and the named bounds it runs under.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::identity::IdentifierKey;
use crate::tls::TlsFiles;

/// Largest public API request a node decodes.
pub const API_MESSAGE_BYTES_MAX: usize = 256 * 1024;
/// Largest internal message (Raft append batches, snapshot chunks, forwarded work).
pub const RAFT_MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Snapshot chunk size; well under `RAFT_MESSAGE_BYTES_MAX`.
pub const SNAPSHOT_CHUNK_BYTES_MAX: u64 = 1024 * 1024;
/// Log entries sent in one append.
pub const APPEND_ENTRIES_MAX: u64 = 256;
/// Concurrent requests served per public API connection.
pub const API_CONCURRENCY_PER_CONNECTION_MAX: usize = 64;
/// Concurrent HTTP/2 streams per connection, on either listener.
pub const STREAMS_PER_CONNECTION_MAX: u32 = 128;
/// How long a public API call may take before the node gives up on it.
pub const API_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one Raft message to a peer may take.
pub const RAFT_RPC_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a node keeps trying to get a write or read done, leader changes included;
/// below `API_REQUEST_TIMEOUT` so the caller hears `Unavailable` rather than a cut call.
pub const REQUEST_BUDGET: Duration = Duration::from_secs(8);
/// How long a forwarded write or read may take at the leader.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(7);
/// How often a request is re-sent when the leader changed under it.
pub const FORWARD_ATTEMPTS_MAX: u32 = 5;
/// Writes and reads a node works on at once, its clients' and those forwarded to it as
/// leader; more are refused as overload, so that a surge queues nowhere unbounded.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 128;
/// Resolutions queued at a node, waiting for their batch; more are refused as overload.
pub const RESOLVE_QUEUE_MAX: usize = 4096;
/// Batches of resolutions a node has proposed and not yet seen committed.
pub const RESOLVE_BATCHES_IN_FLIGHT_MAX: usize = 4;
/// Consent watch streams one node serves at once; more are refused as overload.
pub const WATCH_STREAMS_MAX: usize = 256;
/// Consents a watch reads at a time while it sends those the service already holds.
pub const WATCH_REPLAY_PAGE: usize = 64;
/// Consents queued for one watcher before its stream applies back-pressure.
pub const WATCH_STREAM_BUFFERED_MAX: usize = 64;
/// How long to wait for a leader to be known before trying again.
pub const LEADER_WAIT: Duration = Duration::from_secs(2);
/// Connecting to a peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connecting client may take to finish its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// TLS handshakes one listener runs at once; connections beyond are dropped unanswered.
pub const TLS_HANDSHAKES_IN_FLIGHT_MAX: usize = 256;
/// Accepted connections waiting for the gRPC server to take them.
pub const ACCEPTED_QUEUE_MAX: usize = 64;
/// How long a listener pauses after accepting failed (out of file descriptors and the
/// like) before it tries again, rather than spin.
pub const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How often a node looks for renewed certificates or revocation lists.
pub const TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// How long a node whose storage is corrupt waits between attempts to have itself demoted
/// to learner, or promoted back once it has caught up; each failed attempt logs why.
pub const RECOVERY_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How long one such attempt may take at the peer it asks.
pub const RECOVERY_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How far behind the leader's log a rejoining learner may be and still be made a voter.
pub const REJOIN_LAG_MAX_ENTRIES: u64 = 64;
/// How long a rejoining learner may take to catch up before the node logs an error (it keeps
/// trying: an operator must look at a node that does not catch up).
pub const REJOIN_CATCH_UP_WARN_AFTER: Duration = Duration::from_secs(60);
/// How often, at the least, a node looks at the Raft group it knows and writes it down if it
/// changed, for a recovery to find its peers; it also looks whenever Raft reports a change.
pub const PEERS_SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// Raft timing, in milliseconds; defaults suit a LAN or loopback. Between cities, set the
/// election timeout to 10 to 20 round trips.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RaftTiming {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub install_snapshot_timeout_ms: u64,
    /// Build a snapshot after this many applied entries.
    pub snapshot_every_entries: u64,
    /// Entries kept in the log behind a snapshot, for followers just behind.
    pub entries_kept_after_snapshot: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 600,
            election_timeout_max_ms: 1200,
            install_snapshot_timeout_ms: 5000,
            snapshot_every_entries: 5000,
            entries_kept_after_snapshot: 1000,
        }
    }
}

/// A voter of a brand-new federation, given to the one node that bootstraps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapMember {
    pub node_id: u64,
    pub raft_addr: String,
    pub api_addr: String,
}

impl BootstrapMember {
    /// Parses `ID@RAFT_HOST:PORT@API_HOST:PORT`.
    pub fn parse(spec: &str) -> Result<BootstrapMember, String> {
        let parts: Vec<&str> = spec.split('@').collect();
        let [id, raft_addr, api_addr] = parts.as_slice() else {
            return Err(format!("bootstrap member {spec:?} is not ID@RAFT_ADDR@API_ADDR"));
        };
        let node_id = id.parse::<u64>().ok().filter(|id| *id > 0);
        let node_id = node_id.ok_or_else(|| format!("node id {id:?} is not a positive number"))?;
        Ok(BootstrapMember {
            node_id,
            raft_addr: raft_addr.to_string(),
            api_addr: api_addr.to_string(),
        })
    }
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: u64,
    /// The member id of the city this node serves, e.g. `nl-eindhoven`.
    pub city_id: String,
    pub display_name: String,
    pub data_dir: PathBuf,
    /// `host:port` the internal Raft service listens on and peers dial.
    pub raft_addr: String,
    /// `host:port` the public API listens on and clients dial.
    pub api_addr: String,
    /// Set on exactly one node of a new federation: the initial voters. Ignored once the
    /// node's storage holds a federation.
    pub bootstrap: Vec<BootstrapMember>,
    pub timing: RaftTiming,
    /// The federation's identifier key, the same on every node.
    pub identifier_key: IdentifierKey,
    /// The node's certificates; `None` runs plaintext with every caller trusted.
    pub tls: Option<TlsFiles>,
}

impl NodeConfig {
    pub fn raft_config(&self) -> openraft::Config {
        let timing = &self.timing;
        openraft::Config {
            cluster_name: "roamhub".to_owned(),
            heartbeat_interval: timing.heartbeat_interval_ms,
            election_timeout_min: timing.election_timeout_min_ms,
            election_timeout_max: timing.election_timeout_max_ms,
            install_snapshot_timeout: timing.install_snapshot_timeout_ms,
            max_payload_entries: APPEND_ENTRIES_MAX,
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES_MAX,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(timing.snapshot_every_entries),
            max_in_snapshot_log_to_keep: timing.entries_kept_after_snapshot,
            ..Default::default()
        }
    }
}
