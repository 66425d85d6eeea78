//! A running node: Raft, its two listeners, and the way requests reach the leader.
//!
//! Every write becomes a [`Request`] stamped here with this node's clock and proposed
//! through Raft; every read waits until the leader has confirmed it still leads. When this
//! node is not the leader it hands the work to the leader's internal `Forward` service, on a
//! connection apart from Raft's own, and returns the leader's answer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use openraft::ChangeMembers;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use roamhub_index::{
    CityId, Command, IndexError, Member, Query, QueryAnswer, Request, Resolution, ResolveArgs,
    Response,
};
use roamhub_proto::raft::v1::forward_client::ForwardClient;
use roamhub_store::{CommandOutcome, Db, Faults, IndexReader, NodeAddress, TypeConfig};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, SemaphorePermit, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::config::{
    API_REQUEST_TIMEOUT, FORWARD_ATTEMPTS_MAX, FORWARD_TIMEOUT, LEADER_WAIT, NodeConfig,
    PEERS_SAVE_INTERVAL, RAFT_MESSAGE_BYTES_MAX, RECOVERY_RETRY_INTERVAL,
    REJOIN_CATCH_UP_WARN_AFTER, REJOIN_LAG_MAX_ENTRIES, REQUEST_BUDGET, REQUESTS_IN_FLIGHT_MAX,
    RESOLVE_QUEUE_MAX,
};
use crate::error::NodeError;
use crate::fault::StorageFault;
use crate::identity::IdentifierKey;
use crate::network::{ChannelPool, Network, from_message, to_message};
use crate::receipt::ReceiptKey;
use crate::recovery::{self, RoleAnswer, RoleChange, RoleStep};
use crate::tls::{self, Tls, Transport};
use crate::{api, erasure, internal, resolver};

pub type Raft = openraft::Raft<TypeConfig>;
type RaftMetrics = openraft::RaftMetrics<u64, NodeAddress>;

/// How often a node retries announcing itself as a member until the federation takes it.
const MEMBER_ANNOUNCE_INTERVAL: Duration = Duration::from_millis(300);

/// The node's only clock, read when a request arrives and never inside the state machine.
pub fn now_unix_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

/// Work that must run at the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Work {
    Propose(Request),
    Read(Query),
}

/// What the leader produced for a piece of [`Work`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Done {
    Response(Response),
    Answer(QueryAnswer),
}

/// One node of the Raft group as this node sees it.
#[derive(Debug, Clone)]
pub struct RaftMember {
    pub node_id: u64,
    pub address: NodeAddress,
    pub voter: bool,
    /// Known at the leader only.
    pub matched_index: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct RaftMembers {
    pub leader_node_id: Option<u64>,
    pub last_log_index: u64,
    pub members: Vec<RaftMember>,
}

/// How one attempt at a piece of work ended at one node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Attempt {
    Done(Result<Done, IndexError>),
    /// This node does not lead; the leader is named when known. Nothing was proposed.
    NotLeader {
        leader: Option<NodeAddress>,
    },
    /// The outcome is unknown or the federation cannot answer now.
    Unavailable(String),
}

pub struct Node {
    node_id: u64,
    city_id: CityId,
    config: NodeConfig,
    raft: Raft,
    reader: IndexReader,
    /// The database under Raft's storage, for compaction after erasures.
    db: Db,
    /// Signs consent receipts.
    receipt_key: ReceiptKey,
    /// Resolutions waiting for their batch; see `resolver`.
    resolve_jobs: mpsc::Sender<resolver::Job>,
    /// Channels to leaders' `Forward` service, by Raft address; apart from Raft traffic.
    forward_channels: ChannelPool,
    /// How both listeners and every outgoing connection are secured.
    transport: Transport,
    /// Slots for writes and reads in progress here; see `REQUESTS_IN_FLIGHT_MAX`.
    requests_in_flight: Semaphore,
    /// Corruption the storage found while running; see `watch_storage`.
    faults: Faults,
    /// Set once this node's storage is found corrupt: the public API then refuses all.
    fault: StorageFault,
    /// Told the reason when Raft stopped on corrupt storage, for a restart into recovery.
    fault_events: watch::Sender<Option<String>>,
}

/// A started node and the tasks that serve it.
pub struct RunningNode {
    pub node: Arc<Node>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    fault_events: watch::Receiver<Option<String>>,
}

impl Node {
    /// Opens the node's storage, starts Raft and both listeners, and bootstraps a new
    /// federation when the config asks for it and none exists yet.
    ///
    /// Corrupt storage, or an unfinished recovery, runs the recovery first (see
    /// [`recovery`]): this then returns only once the federation has made the node a
    /// learner, and never if it cannot.
    pub async fn start(config: NodeConfig) -> anyhow::Result<RunningNode> {
        let city_id = CityId::parse("city_id", &config.city_id).map_err(anyhow::Error::msg)?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let transport = match &config.tls {
            Some(files) => Transport::Tls(Tls::load(files.clone())?),
            None => Transport::Insecure,
        };
        tls::warn_if_insecure(&transport);

        let opened = recovery::open_storage(&config, &transport)
            .await
            .with_context(|| format!("opening storage in {}", config.data_dir.display()))?;
        let (storage, rejoining) = (opened.storage, opened.rejoining);
        let reader = storage.state_machine.reader();

        let raft_config = Arc::new(config.raft_config().validate()?);
        let (log_store, state_machine) = (storage.log_store, storage.state_machine);
        let network = Network::new(transport.clone());
        let raft =
            Raft::new(config.node_id, raft_config, network, log_store, state_machine).await?;
        let raft_listener = TcpListener::bind(&config.raft_addr)
            .await
            .with_context(|| format!("binding the Raft listener on {}", config.raft_addr))?;
        let api_listener = TcpListener::bind(&config.api_addr)
            .await
            .with_context(|| format!("binding the API listener on {}", config.api_addr))?;

        let receipt_key = ReceiptKey::load_or_create(&config.data_dir)?;
        let (resolve_jobs, resolve_queue) = mpsc::channel(RESOLVE_QUEUE_MAX);
        let (fault_events, fault_events_rx) = watch::channel(None);
        let node = Arc::new(Node {
            node_id: config.node_id,
            city_id,
            config,
            raft,
            reader,
            db: storage.db,
            receipt_key,
            resolve_jobs,
            forward_channels: ChannelPool::new(transport.clone(), FORWARD_TIMEOUT),
            transport: transport.clone(),
            requests_in_flight: Semaphore::new(REQUESTS_IN_FLIGHT_MAX),
            faults: storage.faults,
            fault: StorageFault::default(),
            fault_events,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let span = info_span!("node", city = %node.city_id, node_id = node.node_id);
        let mut tasks = vec![
            tokio::spawn(
                internal::serve(node.clone(), raft_listener, shutdown_rx.clone())
                    .instrument(span.clone()),
            ),
            tokio::spawn(
                api::serve(node.clone(), api_listener, shutdown_rx.clone())
                    .instrument(span.clone()),
            ),
            tokio::spawn(
                erasure::compact_after_erasures(node.clone(), shutdown_rx.clone())
                    .instrument(span.clone()),
            ),
            tokio::spawn(
                resolver::run_batches(node.clone(), resolve_queue, shutdown_rx.clone())
                    .instrument(span.clone()),
            ),
            tokio::spawn(
                node.clone().announce_membership(shutdown_rx.clone()).instrument(span.clone()),
            ),
            tokio::spawn(node.clone().watch_storage(shutdown_rx.clone()).instrument(span.clone())),
        ];
        if let Transport::Tls(tls) = &transport {
            let files = tls.clone().watch_files(shutdown_rx.clone());
            tasks.push(tokio::spawn(files.instrument(span.clone())));
        }

        match rejoining {
            // A rejoining node has fresh storage and must never found a federation with it.
            true => tasks.push(tokio::spawn(
                node.clone().promote_when_caught_up(shutdown_rx).instrument(span.clone()),
            )),
            false => node.bootstrap_once().instrument(span).await?,
        }
        Ok(RunningNode { node, shutdown, tasks, fault_events: fault_events_rx })
    }

    /// Writes down the Raft group whenever it changes, for a later recovery to find its
    /// peers; and when Raft stops on a bad record, refuses to serve, logs why and marks
    /// the start of a recovery, which the node runs once restarted (see `RunningNode`).
    async fn watch_storage(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut saved = Vec::new();
        // Woken by every change Raft reports, so that the group is saved the moment this
        // node learns it: a node that crashes just after joining still knows its peers.
        let mut metrics = self.raft.metrics();
        loop {
            let peers: Vec<(u64, NodeAddress)> = self
                .raft_membership()
                .nodes()
                .map(|(node_id, address)| (*node_id, address.clone()))
                .collect();
            if peers != saved && !peers.is_empty() {
                match recovery::save_peers(&self.config.data_dir, &peers) {
                    Ok(()) => saved = peers,
                    Err(error) => warn!(error = %format!("{error:#}"), "Raft group not saved"),
                }
            }

            let stopped = self.raft.metrics().borrow().running_state.is_err();
            if let (true, Some(corrupt)) = (stopped, self.faults.first()) {
                self.on_corrupt_storage(&corrupt.to_string());
                return;
            }
            tokio::select! {
                changed = metrics.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(PEERS_SAVE_INTERVAL).await;
                    }
                }
                _ = tokio::time::sleep(PEERS_SAVE_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Raft stopped on a bad record: serve nothing more, and restart into recovery.
    fn on_corrupt_storage(&self, reason: &str) {
        self.fault.set(reason);
        error!(%reason, "storage of this node is corrupt: it serves nothing and recovers");
        if let Err(error) = recovery::begin(&self.config.data_dir, reason) {
            error!(error = %format!("{error:#}"), "the recovery could not be marked");
        }
        let _ = self.fault_events.send(Some(reason.to_owned()));
    }

    /// The last step of a recovery: asks the leader to make this learner a voter again
    /// until it has, which it does once the learner has caught up; then ends the recovery.
    async fn promote_when_caught_up(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let change = RoleChange { node_id: self.node_id, step: RoleStep::Promote };
        let started = Instant::now();
        let mut warned = false;
        loop {
            let answer = match self.leader_address() {
                Some(leader) => {
                    recovery::ask(&self.forward_channels, &leader.raft_addr, &change).await
                }
                None => RoleAnswer::NotYet("no leader known yet".to_owned()),
            };
            if let RoleAnswer::Done = answer {
                info!("this node is a voter again: recovery finished");
                if let Err(error) = recovery::finish(&self.config.data_dir) {
                    error!(error = %format!("{error:#}"), "the recovery marker stays");
                }
                return;
            }
            debug!(%answer, "not promoted yet");
            if !warned && started.elapsed() > REJOIN_CATCH_UP_WARN_AFTER {
                warned = true;
                error!(%answer, "not promoted back to voter within \
                    {REJOIN_CATCH_UP_WARN_AFTER:?}; still trying");
            }
            tokio::select! {
                _ = tokio::time::sleep(RECOVERY_RETRY_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Initialises a new federation with the configured voters, unless this node's storage
    /// already belongs to one.
    async fn bootstrap_once(&self) -> anyhow::Result<()> {
        if self.config.bootstrap.is_empty() || self.raft.is_initialized().await? {
            return Ok(());
        }
        let voters: BTreeMap<u64, NodeAddress> = self
            .config
            .bootstrap
            .iter()
            .map(|m| {
                let address =
                    NodeAddress { raft_addr: m.raft_addr.clone(), api_addr: m.api_addr.clone() };
                (m.node_id, address)
            })
            .collect();
        anyhow::ensure!(
            voters.contains_key(&self.node_id),
            "the bootstrap members must include this node ({})",
            self.node_id
        );
        self.raft.initialize(voters).await.context("bootstrapping the federation")?;
        info!(voters = self.config.bootstrap.len(), "federation bootstrapped");
        Ok(())
    }

    /// Adds this city to the index's member list once a leader can take it.
    async fn announce_membership(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let member = Member {
            country: self.city_id.country(),
            city_id: self.city_id.clone(),
            display_name: self.config.display_name.clone(),
            api_endpoint: self.config.api_addr.clone(),
            raft_node_id: self.node_id,
            identifier_key_check: self.config.identifier_key.check(),
        };
        loop {
            let already =
                self.reader.with_index(|index| index.member(&self.city_id) == Some(&member));
            if already {
                return;
            }
            match self.propose(Command::UpsertMember(member.clone())).await {
                Ok(_) => {
                    info!("city announced as member");
                    return;
                }
                Err(NodeError::Refused(refusal)) => {
                    warn!(%refusal, "the federation refused this city as member");
                    return;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(MEMBER_ANNOUNCE_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    pub fn city_id(&self) -> &CityId {
        &self.city_id
    }

    pub fn receipt_key(&self) -> &ReceiptKey {
        &self.receipt_key
    }

    pub fn reader(&self) -> &IndexReader {
        &self.reader
    }

    pub fn identifier_key(&self) -> &IdentifierKey {
        &self.config.identifier_key
    }

    /// How many erasures the applied index counts.
    pub fn erasures_applied(&self) -> u64 {
        self.reader.with_index(|index| index.erasures())
    }

    /// How many erasures this node has compacted out of its storage.
    pub fn erasures_compacted(&self) -> u64 {
        roamhub_store::erasures_compacted(&self.db).unwrap_or(0)
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Whether a peer proved to be node `node_id` of `city_id` may talk Raft with this
    /// node: it must be in the Raft group, and no city of the index may say otherwise. A
    /// node that belongs to no group yet hears any node of the federation's authority, so
    /// that a leader can bring it in as a learner.
    pub fn admits_peer(&self, city_id: &CityId, node_id: u64) -> Result<(), String> {
        let membership = self.raft_membership();
        let mut nodes = membership.nodes().map(|(id, _)| *id).peekable();
        if nodes.peek().is_none() {
            return Ok(());
        }
        if !nodes.any(|id| id == node_id) {
            return Err(format!("node {node_id} is not in the federation's Raft group"));
        }
        self.reader.with_index(|index| {
            if let Some(owner) = index.city_of_node(node_id).filter(|owner| *owner != city_id) {
                return Err(format!("node {node_id} belongs to {owner}, not {city_id}"));
            }
            match index.member(city_id) {
                Some(member) if member.raft_node_id != node_id => {
                    Err(format!("{city_id} runs node {}, not node {node_id}", member.raft_node_id))
                }
                _ => Ok(()),
            }
        })
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Appends a command through Raft and answers once it is committed on a majority and
    /// applied here or at the leader.
    pub async fn propose(&self, command: Command) -> Result<Response, NodeError> {
        let request = Request { at_unix_ms: now_unix_ms(), command };
        match self.run_at_leader(Work::Propose(request)).await? {
            Done::Response(response) => Ok(response),
            Done::Answer(_) => Err(NodeError::Fatal("a write was answered as a read".to_owned())),
        }
    }

    /// Decides a resolution and commits its access record, batched with others.
    pub async fn resolve(&self, args: ResolveArgs) -> Result<Resolution, NodeError> {
        let (reply, outcome) = oneshot::channel();
        let job = resolver::Job { args, reply };
        self.resolve_jobs.try_send(job).map_err(|_| {
            NodeError::Overloaded(format!("more than {RESOLVE_QUEUE_MAX} resolutions queued"))
        })?;
        outcome.await.map_err(|_| NodeError::Fatal("the resolver stopped".to_owned()))?
    }

    /// Answers a query linearizably: after the leader has confirmed that it still leads.
    pub async fn read(&self, query: Query) -> Result<QueryAnswer, NodeError> {
        match self.run_at_leader(Work::Read(query)).await? {
            Done::Answer(answer) => Ok(answer),
            Done::Response(_) => Err(NodeError::Fatal("a read was answered as a write".to_owned())),
        }
    }

    /// A slot for one more client write or read, or `Overloaded` when every slot is taken.
    /// Nothing has been proposed when this refuses, so a refused write certainly did not
    /// apply. The node's own work (batches of resolutions, which have their own bounds)
    /// takes no slot.
    pub fn admit(&self) -> Result<SemaphorePermit<'_>, NodeError> {
        self.requests_in_flight.try_acquire().map_err(|_| {
            NodeError::Overloaded(format!(
                "{REQUESTS_IN_FLIGHT_MAX} requests are in progress at this node; retry later"
            ))
        })
    }

    /// Runs work here when this node leads, else at the leader, following leader changes.
    ///
    /// A write is retried only when it was certainly not proposed (a node said it does not
    /// lead); an unknown outcome is reported as `Unavailable` so the caller decides.
    async fn run_at_leader(&self, work: Work) -> Result<Done, NodeError> {
        let unknown = || NodeError::Unavailable {
            reason: "no answer within the request budget; a write may or may not have applied"
                .to_owned(),
            leader_api: self.leader_api(),
        };
        tokio::time::timeout(REQUEST_BUDGET, self.follow_leader(work))
            .await
            .map_err(|_| unknown())?
    }

    async fn follow_leader(&self, work: Work) -> Result<Done, NodeError> {
        let mut reason = String::from("no leader");
        for attempt in 0..FORWARD_ATTEMPTS_MAX {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(4))).await;
            }

            let outcome = match self.run_here(&work).await {
                Attempt::NotLeader { leader: Some(leader) } => self.forward(&leader, &work).await,
                other => other,
            };
            match outcome {
                Attempt::Done(result) => return result.map_err(NodeError::Refused),
                Attempt::NotLeader { .. } => {
                    reason = "the leader changed; no new leader yet".to_owned();
                    self.wait_for_leader().await;
                }
                Attempt::Unavailable(why) if matches!(work, Work::Propose(_)) => {
                    return Err(NodeError::Unavailable {
                        reason: why,
                        leader_api: self.leader_api(),
                    });
                }
                Attempt::Unavailable(why) => reason = why,
            }
        }
        Err(NodeError::Unavailable { reason, leader_api: self.leader_api() })
    }

    /// Runs work on this node if it leads. The `Forward` service calls this at the leader.
    pub async fn run_here(&self, work: &Work) -> Attempt {
        match work {
            Work::Propose(request) => self.propose_here(request).await,
            Work::Read(query) => self.read_here(query).await,
        }
    }

    async fn propose_here(&self, request: &Request) -> Attempt {
        let written =
            tokio::time::timeout(API_REQUEST_TIMEOUT, self.raft.client_write(request.clone()));
        match written.await {
            Err(_) => Attempt::Unavailable("timed out waiting for a majority".to_owned()),
            Ok(Ok(reply)) => match reply.data {
                CommandOutcome::Index(result) => Attempt::Done(result.map(Done::Response)),
                CommandOutcome::Raft => {
                    Attempt::Unavailable("a command applied as Raft's".to_owned())
                }
            },
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to)))) => {
                Attempt::NotLeader { leader: to.leader_node }
            }
            Ok(Err(error)) => Attempt::Unavailable(format!("raft: {error}")),
        }
    }

    async fn read_here(&self, query: &Query) -> Attempt {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Attempt::Done(self.reader.query(query).map(Done::Answer)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => {
                Attempt::NotLeader { leader: to.leader_node }
            }
            Err(error) => Attempt::Unavailable(format!("raft: {error}")),
        }
    }

    /// Hands work to the leader's `Forward` service.
    async fn forward(&self, leader: &NodeAddress, work: &Work) -> Attempt {
        let channel = match self.forward_channels.get(&leader.raft_addr) {
            Ok(channel) => channel,
            Err(reason) => return Attempt::Unavailable(reason),
        };
        let mut client = ForwardClient::new(channel)
            .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX);
        let reply = match work {
            Work::Propose(request) => client.propose(to_message(request)).await,
            Work::Read(query) => client.read(to_message(query)).await,
        };
        match reply {
            Ok(reply) => from_message(reply.get_ref())
                .unwrap_or_else(|e| Attempt::Unavailable(format!("unreadable leader reply: {e}"))),
            Err(status) => {
                Attempt::Unavailable(format!("leader unreachable: {}", status.message()))
            }
        }
    }

    async fn wait_for_leader(&self) {
        let waited = self.raft.wait(Some(LEADER_WAIT));
        let _ = waited.metrics(|m| m.current_leader.is_some(), "a leader is known").await;
    }

    /// Changes the role of a node in recovery, at its own request; only the leader may.
    /// Demotion answers `Done` only once the node is a learner in a committed, uniform
    /// configuration; promotion only once it was within `REJOIN_LAG_MAX_ENTRIES` of this
    /// log and the change is committed.
    pub async fn change_role(&self, change: &RoleChange) -> RoleAnswer {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(self.node_id) {
            let leader = metrics
                .current_leader
                .and_then(|id| metrics.membership_config.membership().get_node(&id).cloned());
            return RoleAnswer::NotLeader { leader };
        }
        let node_id = change.node_id;
        let membership = metrics.membership_config.membership().clone();
        if node_id == self.node_id || membership.get_node(&node_id).is_none() {
            return RoleAnswer::Refused(format!("node {node_id} is not a peer in the group"));
        }

        match change.step {
            RoleStep::Demote => self.demote_for_recovery(node_id, &membership).await,
            RoleStep::Promote => self.promote_after_recovery(node_id, &metrics).await,
        }
    }

    /// Takes a node out of the group and adds it back as a learner, each change committed
    /// before this returns. Out and back in, rather than demoted in place: the leader then
    /// forgets how far the node's old log matched its own, which openraft would otherwise
    /// take, once the node runs on empty storage, for a follower's log going backwards (it
    /// refuses that by stopping the leader). The node runs no Raft meanwhile.
    async fn demote_for_recovery(
        &self,
        node_id: u64,
        membership: &openraft::Membership<u64, NodeAddress>,
    ) -> RoleAnswer {
        let Some(address) = membership.get_node(&node_id).cloned() else {
            return RoleAnswer::Refused(format!("node {node_id} is not in the group"));
        };
        let out = match membership.voter_ids().any(|id| id == node_id) {
            true => ChangeMembers::RemoveVoters(BTreeSet::from([node_id])),
            false => ChangeMembers::RemoveNodes(BTreeSet::from([node_id])),
        };
        if let Err(error) = self.raft.change_membership(out, false).await {
            return RoleAnswer::NotYet(format!("taking it out of the group: {error}"));
        }
        // TODO: a leader that fails between these two changes leaves the node out of the
        // group, and its peers then refuse it; an operator adds it back with `federation join`.
        if let Err(error) = self.raft.add_learner(node_id, address, false).await {
            return RoleAnswer::NotYet(format!("adding it back as a learner: {error}"));
        }
        info!(node_id, "node in recovery is a learner on fresh storage");
        RoleAnswer::Done
    }

    /// Makes a recovering learner a voter again, once it is within `REJOIN_LAG_MAX_ENTRIES`
    /// of this log; `Done` once it is a voter in a committed, uniform configuration.
    async fn promote_after_recovery(&self, node_id: u64, metrics: &RaftMetrics) -> RoleAnswer {
        let membership = metrics.membership_config.membership();
        if membership.voter_ids().any(|id| id == node_id) {
            let committed = membership.get_joint_config().len() == 1
                && metrics.membership_config.log_id() <= &metrics.last_applied;
            return match committed {
                true => RoleAnswer::Done,
                false => RoleAnswer::NotYet("the membership change is not committed yet".into()),
            };
        }

        let last = metrics.last_log_index.unwrap_or_default();
        let matched = metrics.replication.as_ref().and_then(|r| r.get(&node_id).copied());
        let matched = matched.flatten().map_or(0, |id| id.index);
        if matched + REJOIN_LAG_MAX_ENTRIES < last {
            return RoleAnswer::NotYet(format!("{} entries behind", last - matched));
        }
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([node_id]));
        match self.raft.change_membership(change, false).await {
            Ok(_) => {
                info!(node_id, "node in recovery is a voter again");
                RoleAnswer::Done
            }
            Err(error) => RoleAnswer::NotYet(format!("membership change: {error}")),
        }
    }

    fn leader_address(&self) -> Option<NodeAddress> {
        let metrics = self.raft.metrics().borrow().clone();
        let leader = metrics.current_leader?;
        metrics.membership_config.membership().get_node(&leader).cloned()
    }

    /// The fault that stops this node serving, if any.
    pub fn storage_fault(&self) -> &StorageFault {
        &self.fault
    }

    /// Adds a node as a learner; only the leader may. It catches up without voting.
    pub async fn add_learner(&self, node_id: u64, address: NodeAddress) -> Result<(), NodeError> {
        let added = self.raft.add_learner(node_id, address, false).await;
        added.map(|_| ()).map_err(|e| self.membership_error(e))
    }

    /// Makes a learner a voter; only the leader may.
    pub async fn promote_voter(&self, node_id: u64) -> Result<(), NodeError> {
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([node_id]));
        let changed = self.raft.change_membership(change, false).await;
        changed.map(|_| ()).map_err(|e| self.membership_error(e))
    }

    /// Takes a node out of the group, as a voter and as a learner; only the leader may.
    pub async fn remove_node(&self, node_id: u64) -> Result<(), NodeError> {
        let voters: BTreeSet<u64> = self.raft_membership().voter_ids().collect();
        if voters.contains(&node_id) {
            let change = ChangeMembers::RemoveVoters(BTreeSet::from([node_id]));
            let changed = self.raft.change_membership(change, false).await;
            changed.map_err(|e| self.membership_error(e))?;
        }
        let change = ChangeMembers::RemoveNodes(BTreeSet::from([node_id]));
        let changed = self.raft.change_membership(change, false).await;
        changed.map(|_| ()).map_err(|e| self.membership_error(e))
    }

    /// Refuses with the leader's address unless this node leads, for calls that must run
    /// at the leader as a whole.
    pub fn require_leader(&self) -> Result<(), NodeError> {
        let leads = self.raft.metrics().borrow().current_leader == Some(self.node_id);
        match leads {
            true => Ok(()),
            false => Err(NodeError::Unavailable {
                reason: "membership changes run at the leader".to_owned(),
                leader_api: self.leader_api(),
            }),
        }
    }

    fn raft_membership(&self) -> openraft::Membership<u64, NodeAddress> {
        self.raft.metrics().borrow().membership_config.membership().clone()
    }

    fn membership_error(
        &self,
        error: RaftError<u64, ClientWriteError<u64, NodeAddress>>,
    ) -> NodeError {
        match error {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => NodeError::Unavailable {
                reason: "membership changes run at the leader".to_owned(),
                leader_api: self.leader_api(),
            },
            RaftError::APIError(ClientWriteError::ChangeMembershipError(refused)) => {
                NodeError::Refused(IndexError::precondition("node_id", refused.to_string()))
            }
            RaftError::Fatal(fatal) => NodeError::Fatal(fatal.to_string()),
        }
    }

    /// Every node of the Raft group with its role and, at the leader, its progress.
    pub fn raft_members(&self) -> RaftMembers {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let matched = metrics.replication.unwrap_or_default();
        let members = membership
            .nodes()
            .map(|(node_id, address)| RaftMember {
                node_id: *node_id,
                address: address.clone(),
                voter: voters.contains(node_id),
                matched_index: matched.get(node_id).copied().flatten().map(|id| id.index),
            })
            .collect();
        RaftMembers {
            leader_node_id: metrics.current_leader,
            last_log_index: metrics.last_log_index.unwrap_or_default(),
            members,
        }
    }

    /// The public API address of the current leader, when one is known.
    pub fn leader_api(&self) -> Option<String> {
        let metrics = self.raft.metrics().borrow().clone();
        let leader = metrics.current_leader?;
        let membership = metrics.membership_config.membership();
        membership.get_node(&leader).map(|address| address.api_addr.clone())
    }
}

impl RunningNode {
    /// Resolves with the reason once Raft has stopped on corrupt storage. The node serves
    /// nothing from then on; the caller shuts it down and starts it again, which runs the
    /// recovery.
    pub async fn storage_failed(&mut self) -> String {
        match self.fault_events.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    /// Stops serving, then stops Raft. Storage stays as it is on disk.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let Err(error) = self.node.raft.shutdown().await {
            warn!(%error, "raft did not stop cleanly");
        }
    }
}
