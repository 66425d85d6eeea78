//! Recovery of a node whose storage is corrupt: it never runs Raft on bad data, and it comes
//! back from its peers without putting a committed write at risk.
//!
//! The procedure, run by [`open_storage`] before Raft starts (and again after Raft stopped
//! on a bad record, see `Node::watch_storage`):
//!
//! 1. Write a recovery marker file, so that a crash anywhere below resumes the procedure
//!    rather than start Raft on whatever storage is then in place.
//! 2. Move the bad database aside (`index.sled.corrupt-<unix-ms>`, kept for forensics).
//! 3. Ask the leader, through any peer's `Forward` service, to demote this node: to take it
//!    out of the group and add it back as a learner (see `Node::change_role`), and wait
//!    until the leader says both changes are committed. Until then the public API answers
//!    `Unavailable` with the reason and the Raft listener stays closed.
//! 4. Start Raft on fresh, empty storage as that learner; it catches up from the leader
//!    (a snapshot, then the log) and never bootstraps.
//! 5. Ask the leader to promote it back to voter once its log is within
//!    `REJOIN_LAG_MAX_ENTRIES` of the leader's; then delete the marker.
//!
//! Why this is safe. A node that lost its log and rejoined as a voter could grant its vote
//! to a candidate missing a committed entry, and that candidate could win and overwrite it.
//! Here the node's vote counts for nothing until it holds the leader's log: it is a voter
//! only in configurations before the demotion, and the demotion is committed (joint
//! consensus, by a majority of the old voters and of the new) before the node runs Raft at
//! all. Every node that can win an election afterwards holds that committed demotion, so
//! counts only the other voters; the empty node's answers to vote requests are never
//! counted. It becomes a voter again only through an ordinary committed membership change,
//! with a log copied from the leader, exactly as a city joining the federation. If the
//! healthy nodes are not a majority, no leader can commit the demotion: the node stays
//! down and keeps saying why. Its node id, city and certificate do not change.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use roamhub_proto::raft::v1::forward_client::ForwardClient;
use roamhub_proto::v1::roamhub_server::RoamhubServer;
use roamhub_store::codec::{self, decode_stored};
use roamhub_store::{DATABASE_DIR, NodeAddress, OpenError, Storage};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::api::Api;
use crate::config::{
    NodeConfig, RAFT_MESSAGE_BYTES_MAX, RECOVERY_REQUEST_TIMEOUT, RECOVERY_RETRY_INTERVAL,
};
use crate::fault::StorageFault;
use crate::guard::GuardLayer;
use crate::network::{ChannelPool, from_message, to_message};
use crate::node::now_unix_ms;
use crate::tls::Transport;

/// The recovery marker, in the data directory: present from the moment a recovery starts
/// until the node is a voter again.
const MARKER_FILE: &str = "recovery";
/// The Raft group this node last knew, in the data directory, for a recovery to find peers.
const PEERS_FILE: &str = "peers";

/// What the marker remembers across restarts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Marker {
    /// Why the recovery started: the record found bad, never its bytes.
    reason: String,
    /// Whether the bad database has already been moved aside; after that, the database in
    /// place is the fresh one this node is catching up in.
    moved_aside: bool,
}

/// A change a node asks the leader to make to its own role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoleStep {
    /// From voter to learner, before the node runs Raft on fresh storage.
    Demote,
    /// From learner back to voter, once it has caught up.
    Promote,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleChange {
    pub node_id: u64,
    pub step: RoleStep,
}

/// The leader's answer to a [`RoleChange`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RoleAnswer {
    /// The change is committed.
    Done,
    /// The node asked does not lead; the leader is named when known.
    NotLeader { leader: Option<NodeAddress> },
    /// Not now: the reason says what is awaited.
    NotYet(String),
    /// Never: the reason says why.
    Refused(String),
}

impl std::fmt::Display for RoleAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoleAnswer::Done => f.write_str("done"),
            RoleAnswer::NotLeader { leader: Some(leader) } => write!(f, "not leader ({leader})"),
            RoleAnswer::NotLeader { leader: None } => f.write_str("not leader, no leader known"),
            RoleAnswer::NotYet(why) => write!(f, "not yet: {why}"),
            RoleAnswer::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

/// Storage to start Raft on, and whether the node is rejoining as a learner.
pub struct Opened {
    pub storage: Storage,
    /// Set while the recovery marker stays: the node must not bootstrap, and must ask to
    /// be promoted once it has caught up.
    pub rejoining: bool,
}

/// Opens the node's storage, first running the recovery when it is corrupt or a recovery
/// is unfinished. Returns only with storage that passed every check.
pub async fn open_storage(config: &NodeConfig, transport: &Transport) -> anyhow::Result<Opened> {
    let dir = &config.data_dir;
    let marker = read_marker(dir);
    let marker = match marker {
        Some(marker) => marker,
        None => match roamhub_store::open(dir) {
            Ok(storage) => return Ok(Opened { storage, rejoining: false }),
            Err(OpenError::Corrupt(corrupt)) => {
                Marker { reason: corrupt.to_string(), moved_aside: false }
            }
            Err(other) => return Err(other).context("opening storage"),
        },
    };

    error!(reason = %marker.reason, "storage of this node is corrupt: it will not run Raft \
        on it, and recovers from its peers");
    let down = Down::start(config, transport, StorageFault::with_reason(&marker.reason)).await?;
    let rejoined = rejoin(config, transport, marker).await;
    down.stop().await;
    rejoined
}

/// Steps 1 to 3 of the procedure, then opens the fresh storage.
async fn rejoin(
    config: &NodeConfig,
    transport: &Transport,
    marker: Marker,
) -> anyhow::Result<Opened> {
    let dir = &config.data_dir;
    if !marker.moved_aside {
        write_marker(dir, &marker)?;
        move_aside(dir)?;
        write_marker(dir, &Marker { moved_aside: true, ..marker.clone() })?;
    } else if let Err(OpenError::Corrupt(corrupt)) = roamhub_store::open(dir).map(drop) {
        warn!(%corrupt, "the storage of an unfinished recovery is corrupt too");
        move_aside(dir)?;
    }

    demote_self(config, transport, &marker.reason).await;
    let storage = roamhub_store::open(dir).context("opening fresh storage after recovery")?;
    Ok(Opened { storage, rejoining: true })
}

/// Marks the start of a recovery after Raft stopped on a bad record; the node then restarts
/// into [`open_storage`], which moves the database aside.
pub fn begin(data_dir: &Path, reason: &str) -> anyhow::Result<()> {
    write_marker(data_dir, &Marker { reason: reason.to_owned(), moved_aside: false })
}

/// Ends a recovery: the node is a voter again.
pub fn finish(data_dir: &Path) -> anyhow::Result<()> {
    let path = data_dir.join(MARKER_FILE);
    fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    sync_dir(data_dir)
}

/// Asks the federation until it has made this node a learner. Never returns otherwise: a
/// node that cannot be demoted stays down and keeps saying why.
async fn demote_self(config: &NodeConfig, transport: &Transport, reason: &str) {
    let pool = ChannelPool::new(transport.clone(), RECOVERY_REQUEST_TIMEOUT);
    let change = RoleChange { node_id: config.node_id, step: RoleStep::Demote };
    loop {
        let peers = known_peers(config);
        let asked = match peers.is_empty() {
            true => Err("no peer known: neither a saved Raft group nor bootstrap members".into()),
            false => ask_any(&pool, &peers, &change).await,
        };
        match asked {
            Ok(()) => {
                info!("the federation made this node a learner; starting Raft on fresh storage");
                return;
            }
            Err(why) => warn!(%reason, %why, "storage of this node is corrupt; it stays down \
                until a majority of the federation makes it a learner"),
        }
        tokio::time::sleep(RECOVERY_RETRY_INTERVAL).await;
    }
}

/// Asks each peer in turn, following a named leader, until one answers `Done`.
async fn ask_any(pool: &ChannelPool, peers: &[String], change: &RoleChange) -> Result<(), String> {
    let mut answers = Vec::new();
    for raft_addr in peers {
        let mut answer = ask(pool, raft_addr, change).await;
        if let RoleAnswer::NotLeader { leader: Some(leader) } = &answer {
            answer = ask(pool, &leader.raft_addr, change).await;
        }
        match answer {
            RoleAnswer::Done => return Ok(()),
            other => answers.push(format!("{raft_addr}: {other}")),
        }
    }
    Err(answers.join("; "))
}

/// Asks one node, over its `Forward` service, to change this node's role.
pub async fn ask(pool: &ChannelPool, raft_addr: &str, change: &RoleChange) -> RoleAnswer {
    let channel = match pool.get(raft_addr) {
        Ok(channel) => channel,
        Err(why) => return RoleAnswer::NotYet(why),
    };
    let mut client = ForwardClient::new(channel)
        .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX);
    let asked = tokio::time::timeout(RECOVERY_REQUEST_TIMEOUT, client.rejoin(to_message(change)));
    match asked.await {
        Err(_) => RoleAnswer::NotYet(format!("no answer within {RECOVERY_REQUEST_TIMEOUT:?}")),
        Ok(Err(status)) => RoleAnswer::NotYet(format!("unreachable: {}", status.message())),
        Ok(Ok(reply)) => from_message(reply.get_ref())
            .unwrap_or_else(|e| RoleAnswer::NotYet(format!("unreadable answer: {e}"))),
    }
}

/// The Raft addresses of every other node this node knows: the saved group, then the
/// bootstrap members of its configuration.
fn known_peers(config: &NodeConfig) -> Vec<String> {
    let saved = read_peers(&config.data_dir).unwrap_or_default();
    let bootstrap = config.bootstrap.iter().map(|m| (m.node_id, m.raft_addr.clone()));
    let saved = saved.into_iter().map(|(node_id, address)| (node_id, address.raft_addr));
    let mut peers: Vec<String> = Vec::new();
    for (node_id, raft_addr) in saved.chain(bootstrap) {
        if node_id != config.node_id && !peers.contains(&raft_addr) {
            peers.push(raft_addr);
        }
    }
    peers
}

/// Writes down the Raft group this node knows, replacing the file atomically.
pub fn save_peers(data_dir: &Path, peers: &[(u64, NodeAddress)]) -> anyhow::Result<()> {
    write_atomically(data_dir, PEERS_FILE, &codec::encode(&peers))
}

fn read_peers(data_dir: &Path) -> Option<Vec<(u64, NodeAddress)>> {
    let bytes = fs::read(data_dir.join(PEERS_FILE)).ok()?;
    let peers = decode_stored("saved Raft group", PEERS_FILE, &bytes);
    peers.inspect_err(|corrupt| warn!(%corrupt, "the saved Raft group is unreadable")).ok()
}

/// The marker, if a recovery is unfinished. A marker that fails its check still means a
/// recovery had started, and nothing is known of where it got to.
fn read_marker(data_dir: &Path) -> Option<Marker> {
    let bytes = match fs::read(data_dir.join(MARKER_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            return Some(Marker { reason: format!("recovery marker: {e}"), moved_aside: false });
        }
    };
    let marker = decode_stored("recovery marker", MARKER_FILE, &bytes);
    Some(
        marker.unwrap_or_else(|corrupt| Marker { reason: corrupt.to_string(), moved_aside: false }),
    )
}

fn write_marker(data_dir: &Path, marker: &Marker) -> anyhow::Result<()> {
    write_atomically(data_dir, MARKER_FILE, &codec::encode(marker))
}

/// Moves the database aside for forensics, if there is one.
fn move_aside(data_dir: &Path) -> anyhow::Result<()> {
    let live = data_dir.join(DATABASE_DIR);
    if !live.exists() {
        return Ok(());
    }
    let aside: PathBuf = data_dir.join(format!("{DATABASE_DIR}.corrupt-{}", now_unix_ms()));
    fs::rename(&live, &aside).with_context(|| format!("moving {} aside", live.display()))?;
    sync_dir(data_dir)?;
    warn!(path = %aside.display(), "corrupt database moved aside, kept for forensics");
    Ok(())
}

/// Writes `bytes` to `name` in `dir` through a fsynced temporary file and a rename.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let (path, temporary) = (dir.join(name), dir.join(format!("{name}.new")));
    let written = fs::File::create(&temporary).and_then(|mut file| {
        io::Write::write_all(&mut file, bytes)?;
        file.sync_all()
    });
    written.with_context(|| format!("writing {}", temporary.display()))?;
    fs::rename(&temporary, &path).with_context(|| format!("renaming to {}", path.display()))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    let synced = fs::File::open(dir).and_then(|dir| dir.sync_all());
    synced.with_context(|| format!("syncing {}", dir.display()))
}

/// The public listener of a node that runs no Raft: health says NOT_SERVING, every other
/// call is answered `Unavailable` with the fault's reason.
struct Down {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// How long the down listener may take to let go of its address for the real one.
const DOWN_STOP_TIMEOUT: Duration = Duration::from_secs(5);

impl Down {
    async fn start(
        config: &NodeConfig,
        transport: &Transport,
        fault: StorageFault,
    ) -> anyhow::Result<Down> {
        let listener = TcpListener::bind(&config.api_addr)
            .await
            .with_context(|| format!("binding the API listener on {}", config.api_addr))?;
        let (shutdown, mut stop) = watch::channel(false);
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_not_serving::<RoamhubServer<Api>>().await;

        let allow_all = std::sync::Arc::new(|_: &str, _: &crate::tls::Caller| Ok(()));
        let guard = GuardLayer::new(transport.clone(), allow_all).refusing_on(fault);
        let incoming = transport.incoming(listener, stop.clone());
        let server = tonic::transport::Server::builder()
            .layer(guard)
            .add_service(health_service)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|stop| *stop).await;
            });
        let task = tokio::spawn(async move {
            if let Err(error) = server.await {
                error!(%error, "API listener of the node in recovery failed");
            }
        });
        Ok(Down { shutdown, task })
    }

    async fn stop(self) {
        let _ = self.shutdown.send(true);
        if tokio::time::timeout(DOWN_STOP_TIMEOUT, self.task).await.is_err() {
            warn!("the API listener of the recovery did not stop within {DOWN_STOP_TIMEOUT:?}");
        }
    }
}
