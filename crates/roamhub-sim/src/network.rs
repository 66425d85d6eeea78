//! The simulated network between nodes, and openraft's network traits over it.
//!
//! Every Raft message travels as roamhub-node's do: encoded with the store's versioned
//! codec, decoded at the other end, handed to the receiving node's `Raft`, and answered
//! with the encoded result. What the real network leaves to chance, the seed decides here:
//! each message (request and reply alike) is delayed, lost at random on a lossy run,
//! slowed down on a slow link (so that old messages overtake new ones by far),
//! dropped when its link is cut or the receiver is down, or dropped when too many are in
//! flight. A lost message never answers; openraft's own deadline ends the call, as a
//! timeout would over gRPC.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use roamhub_store::{IndexReader, NodeAddress, TypeConfig, codec};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::limits::{
    LOST_MESSAGE_GRACE_MS, MESSAGE_DELAY_MAX_MS, MESSAGE_DELAY_MIN_MS, MESSAGE_LOSS_PER_MILLE,
    MESSAGES_IN_FLIGHT_MAX, SLOW_LINK_DELAY_MAX_MS, SLOW_LINK_DELAY_MIN_MS,
};
use crate::rng::SimRng;
use crate::trace::Trace;

pub type Raft = openraft::Raft<TypeConfig>;

/// A running node as the network and the clients reach it.
#[derive(Clone)]
pub struct Endpoint {
    pub raft: Raft,
    pub reader: IndexReader,
    pub liveness: Liveness,
}

/// Whether one boot of a node still runs. Its crash wakes every task waiting on it in the
/// order they began to wait; a `watch` channel would wake them in an order that tokio draws
/// from a generator no seed reaches.
#[derive(Clone, Default)]
pub struct Liveness {
    inner: Arc<LivenessInner>,
}

#[derive(Default)]
struct LivenessInner {
    crashed: AtomicBool,
    notify: Notify,
}

impl Liveness {
    pub fn crash(&self) {
        self.inner.crashed.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Returns once the boot has crashed.
    pub async fn crashed(&self) {
        let notified = self.inner.notify.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the flag is read, so that no crash slips between the two.
        notified.as_mut().enable();
        if self.inner.crashed.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }
}

/// Messages by how they ended, over a whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
}

/// Why a message did not arrive.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// Its link was cut when it was sent or when it arrived.
    Cut,
    /// The seed chose to lose it.
    Chance,
    /// Too many messages were in flight.
    Full,
    /// Its receiver was down when it arrived, or restarted before it answered.
    Down,
}

/// The network of one run; cheap to clone, every clone sees the same links.
#[derive(Clone)]
pub struct SimNetwork {
    shared: Arc<Mutex<NetState>>,
    trace: Trace,
}

struct NetState {
    rng: SimRng,
    lossy: bool,
    /// Directed links `(from, to)` that drop every message.
    cut: BTreeSet<(u64, u64)>,
    /// Directed links whose messages take [`SLOW_LINK_DELAY_MIN_MS`] or more.
    slow: BTreeSet<(u64, u64)>,
    /// Nodes that are up, by node id.
    endpoints: BTreeMap<u64, Endpoint>,
    in_flight: usize,
    next_message: u64,
    counts: MessageCounts,
    /// Messages that did not survive encoding and decoding: a bug, reported by the checks.
    wire_errors: Vec<String>,
}

impl SimNetwork {
    pub fn new(rng: SimRng, trace: Trace) -> SimNetwork {
        let state = NetState {
            rng,
            lossy: false,
            cut: BTreeSet::new(),
            slow: BTreeSet::new(),
            endpoints: BTreeMap::new(),
            in_flight: 0,
            next_message: 0,
            counts: MessageCounts::default(),
            wire_errors: Vec::new(),
        };
        SimNetwork { shared: Arc::new(Mutex::new(state)), trace }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, NetState> {
        self.shared.lock().expect("network lock is never poisoned")
    }

    pub fn set_lossy(&self, lossy: bool) {
        self.state().lossy = lossy;
    }

    /// Drops every message from `from` to `to` from now on, until healed.
    pub fn cut(&self, from: u64, to: u64) {
        self.state().cut.insert((from, to));
    }

    /// Slows every message from `from` to `to` from now on, until healed.
    pub fn slow_down(&self, from: u64, to: u64) {
        self.state().slow.insert((from, to));
    }

    /// Restores every cut or slow link.
    pub fn heal_all(&self) {
        let mut state = self.state();
        state.cut.clear();
        state.slow.clear();
    }

    /// Whether some link is cut or slow.
    pub fn is_degraded(&self) -> bool {
        let state = self.state();
        !state.cut.is_empty() || !state.slow.is_empty()
    }

    pub fn attach(&self, node_id: u64, endpoint: Endpoint) {
        self.state().endpoints.insert(node_id, endpoint);
    }

    pub fn detach(&self, node_id: u64) {
        self.state().endpoints.remove(&node_id);
    }

    /// The node as clients reach it, when it is up.
    pub fn endpoint(&self, node_id: u64) -> Option<Endpoint> {
        self.state().endpoints.get(&node_id).cloned()
    }

    pub fn counts(&self) -> MessageCounts {
        self.state().counts
    }

    pub fn wire_errors(&self) -> Vec<String> {
        self.state().wire_errors.clone()
    }

    fn wire_error(&self, error: String) {
        self.state().wire_errors.push(error);
    }

    /// Carries one message from `from` to `to` and returns once it has arrived; a message
    /// the network loses never returns. `what` says what it is, for the trace.
    async fn carry(&self, from: u64, to: u64, what: &str) {
        let (message, fate) = self.send(from, to);
        self.trace.record(format_args!("net #{message} {from}->{to} {what}: {fate}"));
        let delay_ms = match fate {
            Fate::Deliver { delay_ms } => delay_ms,
            Fate::Lost(_) => return std::future::pending().await,
        };

        let in_flight = InFlight { network: self.clone() };
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        drop(in_flight);
        if let Some(loss) = self.lost_on_arrival(from, to) {
            self.trace.record(format_args!("net #{message} lost on arrival: {loss:?}"));
            return std::future::pending().await;
        }
        self.state().counts.delivered += 1;
    }

    /// Decides what becomes of a message sent now.
    fn send(&self, from: u64, to: u64) -> (u64, Fate) {
        let mut state = self.state();
        state.next_message += 1;
        state.counts.sent += 1;
        let lossy = state.lossy;
        let fate = if state.cut.contains(&(from, to)) {
            Fate::Lost(Loss::Cut)
        } else if state.in_flight >= MESSAGES_IN_FLIGHT_MAX {
            Fate::Lost(Loss::Full)
        } else if lossy && state.rng.chance(MESSAGE_LOSS_PER_MILLE) {
            Fate::Lost(Loss::Chance)
        } else {
            state.in_flight += 1;
            let (low, high) = match state.slow.contains(&(from, to)) {
                true => (SLOW_LINK_DELAY_MIN_MS, SLOW_LINK_DELAY_MAX_MS),
                false => (MESSAGE_DELAY_MIN_MS, MESSAGE_DELAY_MAX_MS),
            };
            Fate::Deliver { delay_ms: state.rng.between(low, high) }
        };
        if matches!(fate, Fate::Lost(_)) {
            state.counts.lost += 1;
        }
        (state.next_message, fate)
    }

    fn lost_on_arrival(&self, from: u64, to: u64) -> Option<Loss> {
        let mut state = self.state();
        let loss = if state.cut.contains(&(from, to)) {
            Some(Loss::Cut)
        } else if !state.endpoints.contains_key(&to) {
            Some(Loss::Down)
        } else {
            None
        };
        if loss.is_some() {
            state.counts.lost += 1;
        }
        loss
    }
}

enum Fate {
    Deliver { delay_ms: u64 },
    Lost(Loss),
}

impl fmt::Display for Fate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fate::Deliver { delay_ms } => write!(f, "arrives in {delay_ms} ms"),
            Fate::Lost(loss) => write!(f, "lost: {loss:?}"),
        }
    }
}

/// Counts a message as in flight until it arrives or its call is abandoned.
struct InFlight {
    network: SimNetwork,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.network.state().in_flight -= 1;
    }
}

/// Makes one node's clients of its peers. Each boot of a node gets a factory of its own,
/// tied to that boot's liveness, so that a crash ends every call the node had open.
#[derive(Clone)]
pub struct SimNetworkFactory {
    pub node_id: u64,
    pub network: SimNetwork,
    pub liveness: Liveness,
}

impl RaftNetworkFactory<TypeConfig> for SimNetworkFactory {
    type Network = SimPeer;

    async fn new_client(&mut self, target: u64, node: &NodeAddress) -> SimPeer {
        SimPeer {
            from: self.node_id,
            to: target,
            to_node: node.clone(),
            network: self.network.clone(),
            liveness: self.liveness.clone(),
        }
    }
}

/// Raft messages from one node to one peer.
pub struct SimPeer {
    from: u64,
    to: u64,
    to_node: NodeAddress,
    network: SimNetwork,
    liveness: Liveness,
}

type RpcResult<T, E> = Result<T, RPCError<u64, NodeAddress, RaftError<u64, E>>>;

impl SimPeer {
    /// Sends `request`, has `handle` run it at the receiver, and carries the answer back;
    /// ends early when the sender crashes or when no answer can come any more.
    async fn call<Req, Resp, E, Fut>(
        &self,
        what: String,
        request: &Req,
        option: RPCOption,
        handle: impl FnOnce(Raft, Req) -> Fut,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize + DeserializeOwned,
        Resp: Serialize + DeserializeOwned + fmt::Debug,
        E: std::error::Error + Serialize + DeserializeOwned,
        Fut: Future<Output = Result<Resp, RaftError<u64, E>>>,
    {
        let deadline = option.hard_ttl() + Duration::from_millis(LOST_MESSAGE_GRACE_MS);
        let trip = tokio::time::timeout(deadline, self.round_trip(what, request, handle));
        tokio::select! {
            biased;
            _ = self.liveness.crashed() => Err(network_error("the sender crashed")),
            answer = trip => answer.unwrap_or_else(|_| Err(network_error("no answer"))),
        }
    }

    async fn round_trip<Req, Resp, E, Fut>(
        &self,
        what: String,
        request: &Req,
        handle: impl FnOnce(Raft, Req) -> Fut,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize + DeserializeOwned,
        Resp: Serialize + DeserializeOwned + fmt::Debug,
        E: std::error::Error + Serialize + DeserializeOwned,
        Fut: Future<Output = Result<Resp, RaftError<u64, E>>>,
    {
        let request: Req = self.over_the_wire(request)?;
        self.network.carry(self.from, self.to, &what).await;
        let Some(receiver) = self.network.endpoint(self.to) else {
            return std::future::pending().await;
        };

        // A receiver that crashes while it handles the message never answers.
        let answer = tokio::select! {
            biased;
            _ = receiver.liveness.crashed() => return std::future::pending().await,
            answer = handle(receiver.raft, request) => answer,
        };
        let answer: Result<Resp, RaftError<u64, E>> = self.over_the_wire(&answer)?;
        let summary = match &answer {
            Ok(reply) => format!("reply {reply:?}"),
            Err(error) => format!("error {error}"),
        };
        self.network.carry(self.to, self.from, &summary).await;
        answer.map_err(|source| {
            RPCError::RemoteError(RemoteError::new_with_node(self.to, self.to_node.clone(), source))
        })
    }

    /// Encodes and decodes `value` with the codec nodes use between them, as gRPC would.
    fn over_the_wire<T, R, E>(&self, value: &T) -> RpcResult<R, E>
    where
        T: Serialize,
        R: DeserializeOwned,
        E: std::error::Error,
    {
        codec::decode(&codec::encode(value)).map_err(|error| {
            let error = format!("{}->{}: {error}", self.from, self.to);
            self.network.wire_error(error.clone());
            network_error(&error)
        })
    }
}

fn network_error<E: std::error::Error>(reason: &str) -> RPCError<u64, NodeAddress, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(reason.to_owned())))
}

impl RaftNetwork<TypeConfig> for SimPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, openraft::error::Infallible> {
        let what = format!(
            "append {} prev={:?} entries={} commit={:?}",
            rpc.vote,
            rpc.prev_log_id.map(|id| id.index),
            rpc.entries.len(),
            rpc.leader_commit.map(|id| id.index)
        );
        self.call(what, &rpc, option, |raft, rpc| async move { raft.append_entries(rpc).await })
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        let what = format!(
            "snapshot {} id={} offset={} bytes={} done={}",
            rpc.vote,
            rpc.meta.snapshot_id,
            rpc.offset,
            rpc.data.len(),
            rpc.done
        );
        self.call(what, &rpc, option, |raft, rpc| async move { raft.install_snapshot(rpc).await })
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, openraft::error::Infallible> {
        let what = format!("vote {rpc}");
        self.call(what, &rpc, option, |raft, rpc| async move { raft.vote(rpc).await }).await
    }
}
