//! One seed from start to verdict: setup on a healthy cluster, a faulty phase with clients
//! running and checks after every step, the final heal and recovery, then the
//! client-visible checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use roamhub_index::{Command, Request};
use tokio::task::JoinHandle;

use crate::client::{Reader, World, Writer};
use crate::cluster::{Cluster, Context};
use crate::commands::{self, SimCitizen};
use crate::faults::FaultSchedule;
use crate::history_checks::{self, Checked};
use crate::invariants::Checker;
use crate::limits::{
    CITIZENS, CLOCK_SKEW_MAX_MS, READERS, RECOVERY_MAX_MS, RECOVERY_POLL_MS, SETUP_MAX_MS,
    SIM_EPOCH_UNIX_MS, STEP_MS,
};
use crate::network::SimNetwork;
use crate::operations::{self, WriteOutcome};
use crate::recorder::Recorder;
use crate::rng::SimRng;
use crate::trace::Trace;
use crate::{Failure, SeedReport, Settings};

/// How long the service stays certified: beyond any run.
const CERTIFIED_FOR_MS: u64 = 3650 * 86_400_000;

pub struct Run {
    seed: u64,
    settings: Settings,
    rng: SimRng,
    trace: Trace,
    network: SimNetwork,
    checker: Checker,
    cluster: Cluster,
    world: World,
    schedule: FaultSchedule,
    lossy: bool,
}

impl Run {
    pub async fn start(seed: u64, settings: &Settings) -> Result<Run, Failure> {
        let trace = Trace::new(settings.trace);
        let mut rng = SimRng::new(seed);
        let network = SimNetwork::new(rng.fork(), trace.clone());
        let checker = Checker::new(trace.clone());
        let context =
            Context { network: network.clone(), checker: checker.clone(), trace: trace.clone() };
        let cluster = Cluster::start(settings.nodes, context, rng.fork())
            .await
            .map_err(|detail| failure(seed, &trace, "harness", detail))?;

        let node_ids = cluster.node_ids();
        let clock_skew_ms = node_ids.iter().map(|&id| (id, draw_skew_ms(&mut rng))).collect();
        let citizens = (0..CITIZENS)
            .map(|i| SimCitizen::draw(&mut rng, i, commands::city_of(node_ids[i % node_ids.len()])))
            .collect();
        let world = World {
            network: network.clone(),
            trace: trace.clone(),
            node_ids,
            citizens: Arc::new(citizens),
            recorder: Recorder::default(),
            stop: Arc::new(AtomicBool::new(false)),
            clock_skew_ms,
        };
        let schedule = FaultSchedule::new(rng.fork(), trace.clone());
        let lossy = rng.chance(500);
        let settings = settings.clone();
        Ok(Run { seed, settings, rng, trace, network, checker, cluster, world, schedule, lossy })
    }

    /// Runs every phase; the cluster is stopped afterwards whatever the verdict.
    pub async fn run(mut self) -> Result<SeedReport, Failure> {
        let verdict = self.phases().await;
        self.world.stop.store(true, Ordering::Relaxed);
        self.cluster.stop_all().await;
        verdict
    }

    async fn phases(&mut self) -> Result<SeedReport, Failure> {
        self.setup().await.map_err(|detail| self.fail("setup", detail))?;

        let clients = self.spawn_clients();
        self.network.set_lossy(self.lossy);
        for _ in 0..self.settings.steps {
            let stepped = self.schedule.step(&mut self.cluster, &self.network).await;
            stepped.map_err(|detail| self.fail("harness", detail))?;
            tokio::time::sleep(Duration::from_millis(STEP_MS)).await;
            self.check_step()?;
        }

        self.heal_everything().await?;
        let healed_ms = self.trace.now_ms();
        // The clients finish the operations they have open, each within its deadline.
        self.world.stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.await.map_err(|e| self.fail("harness", format!("a client failed: {e}")))?;
        }
        let recovery_ms = self.recover(healed_ms).await?;
        self.check_step()?;
        let undecided = self.check_clients()?;
        Ok(self.report(recovery_ms, undecided))
    }

    /// Members, the certified service and the citizens, on a healthy network.
    async fn setup(&mut self) -> Result<(), String> {
        let mut commands: Vec<Command> =
            self.cluster.node_ids().into_iter().map(commands::member).collect();
        commands.push(commands::register_service());
        commands.push(commands::certify_service(SIM_EPOCH_UNIX_MS + CERTIFIED_FOR_MS));
        for citizen in self.world.citizens.iter() {
            commands.push(citizen.registration());
        }
        for command in commands {
            self.setup_write(command).await?;
        }

        let citizens = self.world.citizens.clone();
        for citizen in citizens.iter() {
            let uri = citizen.initial.locations[commands::CATEGORY].clone();
            let leader = self.await_leader(SETUP_MAX_MS).await.ok_or("no leader in setup")?;
            let seen = operations::read(&self.network, leader, &citizen.citizen_id).await?;
            let command = citizen.signed(seen.next_sequence, commands::set_location(uri));
            self.setup_write(command).await?;
        }
        self.trace.record("setup: done");
        Ok(())
    }

    /// Proposes `command` at the leader until it applies; setup tolerates no refusal.
    async fn setup_write(&mut self, command: Command) -> Result<(), String> {
        let started_ms = self.trace.now_ms();
        while self.trace.now_ms() - started_ms < SETUP_MAX_MS {
            let Some(leader) = self.await_leader(SETUP_MAX_MS).await else { break };
            let request =
                Request { at_unix_ms: self.world.now_unix_ms(leader), command: command.clone() };
            match operations::write(&self.network, leader, &request).await {
                WriteOutcome::Applied(_) => return Ok(()),
                WriteOutcome::NotSent(_) => poll_pause().await,
                other => return Err(format!("a setup write ended {other:?}")),
            }
        }
        Err(format!("no setup write applied within {SETUP_MAX_MS} ms"))
    }

    /// The leader, once one is known, waiting at most `max_ms`.
    async fn await_leader(&self, max_ms: u64) -> Option<u64> {
        let started_ms = self.trace.now_ms();
        loop {
            if let Some(leader) = self.cluster.leader() {
                return Some(leader);
            }
            if self.trace.now_ms() - started_ms >= max_ms {
                return None;
            }
            poll_pause().await;
        }
    }

    fn spawn_clients(&mut self) -> Vec<JoinHandle<()>> {
        let mut clients = Vec::new();
        for citizen in 0..CITIZENS {
            let writer = Writer {
                process: citizen as u64 + 1,
                citizen,
                rng: self.rng.fork(),
                world: self.world.clone(),
            };
            clients.push(tokio::spawn(writer.run()));
        }
        for reader in 0..READERS {
            let process = (CITIZENS + reader) as u64 + 1;
            let reader = Reader { process, rng: self.rng.fork(), world: self.world.clone() };
            clients.push(tokio::spawn(reader.run()));
        }
        clients
    }

    /// The checks after each step: Raft safety on every node, and the wire.
    fn check_step(&self) -> Result<(), Failure> {
        self.cluster.observe_all();
        if let Some(error) = self.network.wire_errors().first() {
            return Err(self.fail("messages survive the wire", error.clone()));
        }
        match self.checker.first_violation() {
            Some(violation) => Err(Failure {
                at_ms: violation.at_ms,
                ..self.fail(violation.check, violation.detail)
            }),
            None => Ok(()),
        }
    }

    async fn heal_everything(&mut self) -> Result<(), Failure> {
        self.network.set_lossy(false);
        self.schedule.heal_links(&self.network);
        for node_id in self.cluster.down_ids() {
            let restarted = self.cluster.restart(node_id).await;
            restarted.map_err(|detail| self.fail("harness", detail))?;
        }
        Ok(())
    }

    /// After the heal at `healed_ms`: a leader commits a write, and every node applies it
    /// and agrees on the state, within `RECOVERY_MAX_MS`. Returns how long that took.
    async fn recover(&mut self, healed_ms: u64) -> Result<u64, Failure> {
        let marker = commands::member(1);
        let mut committed: Option<u64> = None;
        while self.trace.now_ms() - healed_ms < RECOVERY_MAX_MS {
            if committed.is_none() {
                committed = self.commit_marker(&marker).await;
            }
            if let Some(index) = committed
                && self.converged_at(index)
            {
                let recovery_ms = self.trace.now_ms() - healed_ms;
                self.trace.record(format_args!("recovered in {recovery_ms} ms at {index}"));
                return Ok(recovery_ms);
            }
            poll_pause().await;
        }
        let detail = match committed {
            None => format!("no leader accepted a write within {RECOVERY_MAX_MS} ms of the heal"),
            Some(index) => format!(
                "the nodes did not all apply index {index} with one digest within \
                 {RECOVERY_MAX_MS} ms of the heal"
            ),
        };
        Err(self.fail("recovery after the heal", detail))
    }

    /// Proposes the marker write at the leader; the index the leader applied once it
    /// answered, which covers the marker.
    async fn commit_marker(&self, marker: &Command) -> Option<u64> {
        let leader = self.cluster.leader()?;
        let at_unix_ms = self.world.now_unix_ms(leader);
        let request = Request { at_unix_ms, command: marker.clone() };
        let WriteOutcome::Applied(_) = operations::write(&self.network, leader, &request).await
        else {
            return None;
        };
        let endpoint = self.cluster.endpoint(leader)?;
        Some(endpoint.reader.digest().0)
    }

    /// Whether every node has applied the same index, at least `index`, with one digest.
    fn converged_at(&self, index: u64) -> bool {
        let digests: Vec<(u64, [u8; 32])> = self
            .cluster
            .node_ids()
            .into_iter()
            .filter_map(|id| self.cluster.endpoint(id).map(|e| e.reader.digest()))
            .collect();
        let first = digests[0];
        first.0 >= index && digests.iter().all(|&d| d == first)
    }

    /// Every node's final state of each citizen agrees, keeps what was committed, and
    /// explains every client's history. Returns the histories the search could not decide.
    fn check_clients(&self) -> Result<u32, Failure> {
        let highest = self.checker.highest_applied();
        let end_ns = self.trace.now_ns();
        let mut undecided = 0;
        for id in self.cluster.node_ids() {
            let endpoint = self.cluster.endpoint(id).expect("every node runs after the heal");
            let (applied, _) = endpoint.reader.digest();
            if applied < highest {
                let detail = format!("node {id} ends at index {applied}, below {highest}");
                return Err(self.fail("committed entries are kept", detail));
            }
        }

        let endpoint = self.cluster.endpoint(1).expect("every node runs after the heal");
        for (i, citizen) in self.world.citizens.iter().enumerate() {
            let last = operations::query_citizen(&endpoint.reader, &citizen.citizen_id)
                .map(|c| commands::observed(&c))
                .map_err(|detail| self.fail("harness", detail))?;
            let history = self.world.recorder.history(i);
            let checked =
                history_checks::check_citizen(i, &citizen.initial, history, &last, end_ns)
                    .map_err(|v| self.fail(v.check, v.detail))?;
            undecided += u32::from(checked == Checked::Undecided);
        }
        Ok(undecided)
    }

    fn report(&self, recovery_ms: u64, undecided_histories: u32) -> SeedReport {
        let (operations, acknowledged_writes) = self.world.recorder.counts();
        SeedReport {
            seed: self.seed,
            trace: self.trace.summary(),
            sim_ms: self.trace.now_ms(),
            lossy: self.lossy,
            faults: self.schedule.counts.clone(),
            operations,
            acknowledged_writes,
            messages: self.network.counts(),
            recovery_ms,
            undecided_histories,
            shared_terms: self.checker.terms_with_several_leaders(),
        }
    }

    fn fail(&self, check: &str, detail: String) -> Failure {
        failure(self.seed, &self.trace, check, detail)
    }
}

fn failure(seed: u64, trace: &Trace, check: &str, detail: String) -> Failure {
    trace.record(format_args!("FAILED {check}: {detail}"));
    Failure { seed, at_ms: trace.now_ms(), check: check.to_owned(), detail, trace: trace.summary() }
}

/// A node's clock error, in `-CLOCK_SKEW_MAX_MS..=CLOCK_SKEW_MAX_MS`.
fn draw_skew_ms(rng: &mut SimRng) -> i64 {
    rng.between(0, 2 * CLOCK_SKEW_MAX_MS) as i64 - CLOCK_SKEW_MAX_MS as i64
}

async fn poll_pause() {
    tokio::time::sleep(Duration::from_millis(RECOVERY_POLL_MS)).await;
}
