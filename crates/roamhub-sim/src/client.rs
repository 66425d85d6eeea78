//! Simulated clients: how an operation reaches the leader, and the workload that records
//! every operation it invokes and how it ended.
//!
//! A write is proposed with `Raft::client_write` at a node the seed picks, and follows
//! "not the leader" answers to the leader named, as roamhub-node forwards it. A read runs
//! as roamhub-node's does: at the leader, after `get_read_log_id` confirmed the leadership
//! with a quorum and the leader applied up to the read index. Clients reach nodes
//! directly, not over the simulated network: a partitioned leader still hears clients,
//! which is exactly the case linearizability must survive.
//!
//! Every citizen has one writer, whose signed operations go one at a time as a phone's
//! would; before each it reads the citizen's next sequence number, and that read goes into
//! the history too. Readers read and resolve random citizens at random nodes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use roamhub_check::{CitizenInput, CitizenOutput, Event, Outcome};
use roamhub_index::{Citizen, CitizenId, Command, IndexError, Query, QueryAnswer, Request};
use roamhub_index::{CitizenOp, Response};
use roamhub_store::{CommandOutcome, IndexReader};

use crate::commands::{self, CATEGORY, SimCitizen};
use crate::limits::{
    APPLIED_POLL_MS, CLIENT_ERROR_PAUSE_MS, CLIENT_OP_TIMEOUT_MS, CLIENT_PAUSE_MAX_MS,
    FORWARD_ATTEMPTS_MAX, GIVEN_CONSENTS_MAX, SIM_EPOCH_UNIX_MS,
};
use crate::network::{Liveness, Raft, SimNetwork};
use crate::rng::SimRng;
use crate::trace::Trace;

pub type CitizenEvent = Event<CitizenInput, CitizenOutput>;

/// Consent tags (ends of validity) start this far after the epoch, ten years.
const TAG_BASE_MS: u64 = SIM_EPOCH_UNIX_MS + 3650 * 86_400_000;
/// Tags of one citizen's consents lie within a band this wide of their own.
const TAGS_PER_CITIZEN: u64 = 1_000_000;

/// How a write ended, as its client saw it.
#[derive(Debug)]
pub enum WriteOutcome {
    Applied(Response),
    /// Committed, and refused by the index as a whole: it changed nothing.
    Refused(IndexError),
    /// No node took it: certainly not proposed.
    NotSent(String),
    /// Proposed, with no answer: it may apply at any later moment, or never.
    Unknown(String),
}

/// Proposes `request` at `first`, following the leader it names, within the client's
/// deadline.
pub async fn write(network: &SimNetwork, first: u64, request: &Request) -> WriteOutcome {
    let deadline = Duration::from_millis(CLIENT_OP_TIMEOUT_MS);
    let attempts = async {
        let mut node_id = first;
        for _ in 0..=FORWARD_ATTEMPTS_MAX {
            let Some(endpoint) = network.endpoint(node_id) else {
                return WriteOutcome::NotSent(format!("node {node_id} is down"));
            };
            let proposed = tokio::select! {
                biased;
                _ = endpoint.liveness.crashed() => {
                    return WriteOutcome::Unknown(format!("node {node_id} crashed"));
                }
                proposed = propose(&endpoint.raft, request) => proposed,
            };
            match proposed {
                Err(Some(leader)) if leader != node_id => node_id = leader,
                Err(_) => return WriteOutcome::NotSent("no leader known".to_owned()),
                Ok(outcome) => return outcome,
            }
        }
        WriteOutcome::NotSent("the leader kept changing".to_owned())
    };
    let timed_out = || WriteOutcome::Unknown("no answer in time".to_owned());
    tokio::time::timeout(deadline, attempts).await.unwrap_or_else(|_| timed_out())
}

/// One proposal at one node; `Err` names the leader when this node does not lead.
async fn propose(raft: &Raft, request: &Request) -> Result<WriteOutcome, Option<u64>> {
    match raft.client_write(request.clone()).await {
        Ok(reply) => match reply.data {
            CommandOutcome::Index(Ok(response)) => Ok(WriteOutcome::Applied(response)),
            CommandOutcome::Index(Err(refusal)) => Ok(WriteOutcome::Refused(refusal)),
            CommandOutcome::Raft => Ok(WriteOutcome::Unknown("applied as Raft's".to_owned())),
        },
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => Err(to.leader_id),
        Err(error) => Ok(WriteOutcome::Unknown(error.to_string())),
    }
}

/// Reads a citizen linearizably, starting at `first`, within the client's deadline.
pub async fn read(
    network: &SimNetwork,
    first: u64,
    citizen_id: &CitizenId,
) -> Result<Citizen, String> {
    let deadline = Duration::from_millis(CLIENT_OP_TIMEOUT_MS);
    let attempts = async {
        let mut node_id = first;
        for _ in 0..=FORWARD_ATTEMPTS_MAX {
            let endpoint = network.endpoint(node_id).ok_or(format!("node {node_id} is down"))?;
            let confirmed = tokio::select! {
                biased;
                _ = endpoint.liveness.crashed() => return Err(format!("node {node_id} crashed")),
                confirmed = endpoint.raft.get_read_log_id() => confirmed,
            };
            match confirmed {
                Ok((read_log_id, _)) => {
                    let index = read_log_id.map(|id| id.index);
                    applied_at_least(&endpoint.raft, &endpoint.liveness, index).await?;
                    return query_citizen(&endpoint.reader, citizen_id);
                }
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => {
                    match to.leader_id {
                        Some(leader) if leader != node_id => node_id = leader,
                        _ => return Err("no leader known".to_owned()),
                    }
                }
                Err(error) => return Err(error.to_string()),
            }
        }
        Err("the leader kept changing".to_owned())
    };
    let timed_out = |_| Err("no answer in time".to_owned());
    tokio::time::timeout(deadline, attempts).await.unwrap_or_else(timed_out)
}

/// Waits until the node has applied `index`, looking every `APPLIED_POLL_MS`. Not on the
/// metrics channel: a `watch` wakes its waiters in an order no seed decides.
async fn applied_at_least(
    raft: &Raft,
    liveness: &Liveness,
    index: Option<u64>,
) -> Result<(), String> {
    while raft.metrics().borrow().last_applied.map(|id| id.index) < index {
        tokio::select! {
            biased;
            _ = liveness.crashed() => return Err("the node crashed".to_owned()),
            _ = tokio::time::sleep(Duration::from_millis(APPLIED_POLL_MS)) => {}
        }
    }
    Ok(())
}

pub fn query_citizen(reader: &IndexReader, citizen_id: &CitizenId) -> Result<Citizen, String> {
    match reader.query(&Query::Citizen(citizen_id.clone())) {
        Ok(QueryAnswer::Citizen(citizen)) => Ok(*citizen),
        Ok(_) => Err("a citizen query answered something else".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

/// What every client shares.
#[derive(Clone)]
pub struct World {
    pub network: SimNetwork,
    pub trace: Trace,
    pub node_ids: Vec<u64>,
    pub citizens: Arc<Vec<SimCitizen>>,
    pub recorder: Recorder,
    pub stop: Arc<AtomicBool>,
}

impl World {
    /// The simulated wall clock, which stamps commands.
    pub fn now_unix_ms(&self) -> u64 {
        SIM_EPOCH_UNIX_MS + self.trace.now_ms()
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Every operation of a run, by citizen.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Recorded>>,
}

#[derive(Default)]
struct Recorded {
    histories: BTreeMap<usize, Vec<CitizenEvent>>,
    operations: u64,
    acknowledged_writes: u64,
}

impl Recorder {
    pub fn record(&self, citizen: usize, event: CitizenEvent) {
        let mut recorded = self.inner.lock().expect("recorder lock is never poisoned");
        recorded.operations += 1;
        if matches!(event.outcome, Outcome::Ok(CitizenOutput::Done)) {
            recorded.acknowledged_writes += 1;
        }
        recorded.histories.entry(citizen).or_default().push(event);
    }

    pub fn history(&self, citizen: usize) -> Vec<CitizenEvent> {
        let recorded = self.inner.lock().expect("recorder lock is never poisoned");
        recorded.histories.get(&citizen).cloned().unwrap_or_default()
    }

    /// Operations recorded, and how many of them were acknowledged writes.
    pub fn counts(&self) -> (u64, u64) {
        let recorded = self.inner.lock().expect("recorder lock is never poisoned");
        (recorded.operations, recorded.acknowledged_writes)
    }
}

/// One citizen's writer.
pub struct Writer {
    pub process: u64,
    pub citizen: usize,
    pub rng: SimRng,
    pub world: World,
}

impl Writer {
    pub async fn run(mut self) {
        // Consents this writer saw granted, by tag, with their ids; not yet withdrawn.
        let mut given = BTreeMap::new();
        let mut operations = 0u64;
        while !self.world.stopped() {
            pause(&mut self.rng).await;
            operations += 1;
            let node_id = self.world.node_ids[self.rng.index(self.world.node_ids.len())];
            let Some(sequence) = self.next_sequence(node_id).await else {
                error_pause().await;
                continue;
            };
            let (input, op) = self.choose(&mut given, operations);
            let ok = self.send(node_id, sequence, input, op, &mut given).await;
            if !ok {
                error_pause().await;
            }
        }
    }

    /// Reads the citizen's next sequence number; the read joins the history.
    async fn next_sequence(&mut self, node_id: u64) -> Option<u64> {
        let citizen = &self.world.citizens[self.citizen];
        let invoked_ns = self.world.trace.now_ns();
        let seen = read(&self.world.network, node_id, &citizen.citizen_id).await;
        let outcome = match &seen {
            Ok(seen) => Outcome::Ok(CitizenOutput::Read(commands::observed(seen))),
            Err(_) => Outcome::Failed,
        };
        self.record(CitizenInput::Read, invoked_ns, outcome, node_id);
        seen.ok().map(|seen| seen.next_sequence)
    }

    /// Picks the next write: grant, withdraw, move home or set a location.
    fn choose(
        &mut self,
        given: &mut BTreeMap<u64, roamhub_index::ConsentId>,
        operations: u64,
    ) -> (CitizenInput, CitizenOp) {
        match self.rng.below(4) {
            0 if given.len() < GIVEN_CONSENTS_MAX => {
                let tag = TAG_BASE_MS + self.citizen as u64 * TAGS_PER_CITIZEN + operations;
                (CitizenInput::Grant { tag }, commands::grant(tag))
            }
            0 | 1 if !given.is_empty() => {
                let tag = *given.keys().nth(self.rng.index(given.len())).expect("not empty");
                let consent_id = given.remove(&tag).expect("present");
                (CitizenInput::Withdraw { tag }, CitizenOp::WithdrawConsent { consent_id })
            }
            2 => {
                let node_id = self.world.node_ids[self.rng.index(self.world.node_ids.len())];
                let city = commands::city_of(node_id);
                let op = CitizenOp::MoveHome { to_city: commands::city(city) };
                (CitizenInput::MoveHome { city: city.to_owned() }, op)
            }
            _ => {
                let uri = commands::pod_uri(self.citizen, operations);
                let op = commands::set_location(uri.clone());
                (CitizenInput::SetLocation { category: CATEGORY.to_owned(), uri }, op)
            }
        }
    }

    /// Signs and proposes one write, and records how it ended; false unless applied.
    async fn send(
        &mut self,
        node_id: u64,
        sequence: u64,
        input: CitizenInput,
        op: CitizenOp,
        given: &mut BTreeMap<u64, roamhub_index::ConsentId>,
    ) -> bool {
        let command = self.world.citizens[self.citizen].signed(sequence, op);
        let request = Request { at_unix_ms: self.world.now_unix_ms(), command };
        let invoked_ns = self.world.trace.now_ns();
        let outcome = write(&self.world.network, node_id, &request).await;

        if let (CitizenInput::Grant { tag }, WriteOutcome::Applied(Response::Consent(consent))) =
            (&input, &outcome)
        {
            given.insert(*tag, consent.consent_id);
        }
        let applied = matches!(outcome, WriteOutcome::Applied(_));
        self.record(input, invoked_ns, history_outcome(&outcome), node_id);
        applied
    }

    fn record(
        &self,
        input: CitizenInput,
        invoked_ns: u64,
        outcome: Outcome<CitizenOutput>,
        node_id: u64,
    ) {
        let citizen = self.citizen;
        let trace = &self.world.trace;
        trace.record(format_args!(
            "client {} at node {node_id}: citizen {citizen} {input:?} -> {outcome:?}",
            self.process
        ));
        let completed_ns = trace.now_ns();
        let event = Event { process: self.process, invoked_ns, completed_ns, input, outcome };
        self.world.recorder.record(citizen, event);
    }
}

/// A client that reads and resolves random citizens at random nodes.
pub struct Reader {
    pub process: u64,
    pub rng: SimRng,
    pub world: World,
}

impl Reader {
    pub async fn run(mut self) {
        while !self.world.stopped() {
            pause(&mut self.rng).await;
            let who = self.rng.index(self.world.citizens.len());
            let node_id = self.world.node_ids[self.rng.index(self.world.node_ids.len())];
            let invoked_ns = self.world.trace.now_ns();
            let (input, outcome) = match self.rng.below(2) {
                0 => (CitizenInput::Read, self.read(who, node_id).await),
                _ => (CitizenInput::Resolve, self.resolve(who, node_id).await),
            };
            let answered = matches!(outcome, Outcome::Ok(_));
            let trace = &self.world.trace;
            trace.record(format_args!(
                "client {} at node {node_id}: citizen {who} {input:?} -> {outcome:?}",
                self.process
            ));
            let completed_ns = trace.now_ns();
            let event = Event { process: self.process, invoked_ns, completed_ns, input, outcome };
            self.world.recorder.record(who, event);
            if !answered {
                error_pause().await;
            }
        }
    }

    async fn read(&self, who: usize, node_id: u64) -> Outcome<CitizenOutput> {
        let citizen_id = &self.world.citizens[who].citizen_id;
        match read(&self.world.network, node_id, citizen_id).await {
            Ok(seen) => Outcome::Ok(CitizenOutput::Read(commands::observed(&seen))),
            // A read changes nothing: one without an answer has no place in the history.
            Err(_) => Outcome::Failed,
        }
    }

    /// A resolution as the service, through Raft: it writes an access record, and the
    /// model sees whether it released anything.
    async fn resolve(&self, who: usize, node_id: u64) -> Outcome<CitizenOutput> {
        let command: Command = self.world.citizens[who].resolve(commands::city_of(node_id));
        let request = Request { at_unix_ms: self.world.now_unix_ms(), command };
        match write(&self.world.network, node_id, &request).await {
            WriteOutcome::Applied(Response::Resolution(resolution)) => {
                let released = resolution.refused.is_none() && !resolution.pointers.is_empty();
                Outcome::Ok(CitizenOutput::Resolved { released })
            }
            // Whether or not its access record was written, the model's state is the same.
            _ => Outcome::Failed,
        }
    }
}

/// How a write's outcome enters the history.
fn history_outcome(outcome: &WriteOutcome) -> Outcome<CitizenOutput> {
    match outcome {
        WriteOutcome::Applied(_) => Outcome::Ok(CitizenOutput::Done),
        WriteOutcome::Refused(_) | WriteOutcome::NotSent(_) => Outcome::Failed,
        WriteOutcome::Unknown(_) => Outcome::Unknown,
    }
}

async fn pause(rng: &mut SimRng) {
    let pause_ms = rng.between(0, CLIENT_PAUSE_MAX_MS);
    tokio::time::sleep(Duration::from_millis(pause_ms)).await;
}

async fn error_pause() {
    tokio::time::sleep(Duration::from_millis(CLIENT_ERROR_PAUSE_MS)).await;
}
