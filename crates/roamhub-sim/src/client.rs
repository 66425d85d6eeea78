//! The simulated clients: one writer per citizen and a few readers, each recording every
//! operation it invokes and how it ended.
//!
//! Every citizen has one writer, whose signed operations go one at a time as a phone's
//! would; before each it reads the citizen's next sequence number, and that read goes into
//! the history too. Readers read and resolve random citizens at random nodes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use roamhub_check::{CitizenInput, CitizenOutput, Event, Outcome};
use roamhub_index::{CitizenOp, Command, ConsentId, Request, Response};

use crate::commands::{self, CATEGORY, SimCitizen};
use crate::limits::{
    CLIENT_ERROR_PAUSE_MS, CLIENT_PAUSE_MAX_MS, GIVEN_CONSENTS_MAX, SIM_EPOCH_UNIX_MS,
};
use crate::network::SimNetwork;
use crate::operations::{WriteOutcome, read, write};
use crate::recorder::Recorder;
use crate::rng::SimRng;
use crate::trace::Trace;

/// Consent tags (ends of validity) start this far after the epoch, ten years.
const TAG_BASE_MS: u64 = SIM_EPOCH_UNIX_MS + 3650 * 86_400_000;
/// Tags of one citizen's consents lie within a band this wide of their own.
const TAGS_PER_CITIZEN: u64 = 1_000_000;

/// What every client shares.
#[derive(Clone)]
pub struct World {
    pub network: SimNetwork,
    pub trace: Trace,
    pub node_ids: Vec<u64>,
    pub citizens: Arc<Vec<SimCitizen>>,
    pub recorder: Recorder,
    pub stop: Arc<AtomicBool>,
    /// How far each node's clock is off, by node id: a request is stamped with the clock
    /// of the node it enters, as roamhub-node stamps it, so stamps may run backwards.
    pub clock_skew_ms: BTreeMap<u64, i64>,
}

impl World {
    /// The wall clock of `node_id`, which stamps the commands entering there.
    pub fn now_unix_ms(&self, node_id: u64) -> u64 {
        let skew_ms = self.clock_skew_ms.get(&node_id).copied().unwrap_or(0);
        (SIM_EPOCH_UNIX_MS + self.trace.now_ms()).saturating_add_signed(skew_ms)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
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
        given: &mut BTreeMap<u64, ConsentId>,
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
        given: &mut BTreeMap<u64, ConsentId>,
    ) -> bool {
        let command = self.world.citizens[self.citizen].signed(sequence, op);
        let request = Request { at_unix_ms: self.world.now_unix_ms(node_id), command };
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
        let request = Request { at_unix_ms: self.world.now_unix_ms(node_id), command };
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
