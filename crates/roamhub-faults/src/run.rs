//! One run: load, one fault, healing, and the checks.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use roamhub::local::{City, LocalFederation};
use roamhub_check::citizen::CitizenModel;
use roamhub_check::linearizability::{Verdict, check};
use roamhub_proto::v1 as pb;
use tokio::task::JoinHandle;

use crate::fault::{self, Fault};
use crate::net::Network;
use crate::rng::Rng;
use crate::workload::{self, Citizen, Clients, Reader, Recorder, Writer};

const CITIES: [City; 5] = [
    City { city_id: "nl-eindhoven", display_name: "Eindhoven" },
    City { city_id: "fi-helsinki", display_name: "Helsinki" },
    City { city_id: "es-valencia", display_name: "Valencia" },
    City { city_id: "de-berlin", display_name: "Berlin" },
    City { city_id: "it-milano", display_name: "Milano" },
];

/// How long a fresh federation may take to elect a leader and register its cities.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// After healing, the federation must acknowledge a write again within this.
const RECOVERY_MAX: Duration = Duration::from_secs(10);
/// How long replicas may take to apply the same log once the load has stopped.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(15);
/// A run whose load falls below this before its fault is discarded, not passed.
const OPERATIONS_PER_SECOND_MIN: f64 = 100.0;
/// How long the writer and reader tasks get to finish their last operation.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the runner looks at progress while it waits.
const POLL: Duration = Duration::from_millis(100);
/// Process ids of the runner's own final reads, apart from the workload's.
const FINAL_READ_PROCESS: u64 = 1_000_000;

/// The shape of every run of a tier.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub nodes: usize,
    pub citizens: usize,
    pub readers: usize,
    warmup: Duration,
    /// The shortest and longest time a fault stays in force.
    fault_min: Duration,
    fault_max: Duration,
    after_heal: Duration,
    /// How long the overload at the end of the tier lasts.
    pub overload: Duration,
}

impl RunSettings {
    pub fn quick() -> RunSettings {
        RunSettings {
            nodes: 3,
            citizens: 16,
            readers: 8,
            warmup: Duration::from_secs(2),
            fault_min: Duration::from_secs(5),
            fault_max: Duration::from_secs(5),
            after_heal: Duration::from_secs(2),
            overload: Duration::from_secs(20),
        }
    }

    pub fn long() -> RunSettings {
        RunSettings {
            nodes: 5,
            citizens: 8,
            readers: 4,
            warmup: Duration::from_secs(5),
            fault_min: Duration::from_secs(5),
            fault_max: Duration::from_secs(30),
            after_heal: Duration::from_secs(5),
            overload: Duration::from_secs(120),
        }
    }
}

/// What one run found.
#[derive(Debug)]
pub struct RunOutcome {
    pub fault: Fault,
    pub seed: u64,
    /// Why the run was not checked, when it was not.
    pub discarded: Option<String>,
    pub operations: usize,
    pub acknowledged_writes: usize,
    /// From healing to the first acknowledged write invoked after it.
    pub recovery: Option<Duration>,
    pub violations: Vec<String>,
    /// Histories the checker gave up on (too large to decide), by citizen.
    pub undecided: usize,
    pub rate_before_fault: f64,
    /// Node ids of the leader before the fault and after healing.
    pub leaders: Option<(u64, u64)>,
}

impl RunOutcome {
    pub fn line(&self, number: usize) -> String {
        let verdict = match (&self.discarded, self.violations.len()) {
            (Some(why), _) => format!("discarded: {why}"),
            (None, 0) if self.undecided > 0 => {
                format!("ok ({} histories undecided)", self.undecided)
            }
            (None, 0) => "ok".to_owned(),
            (None, n) => format!("{n} VIOLATIONS"),
        };
        let recovery = self.recovery.map(|r| format!("{:.1} s", r.as_secs_f64()));
        let leaders = self.leaders.map(|(before, after)| format!("{before}->{after}"));
        format!(
            "run {number:>3}  {:<17} {:>6} ops ({:>5.0}/s before)  {:>5} acked  leader {:<4}  \
             recovery {:<7} {verdict}",
            self.fault.to_string(),
            self.operations,
            self.rate_before_fault,
            self.acknowledged_writes,
            leaders.unwrap_or_else(|| "-".to_owned()),
            recovery.unwrap_or_else(|| "-".to_owned()),
        )
    }
}

/// A workload in progress: a writer per citizen and readers, recording every operation.
pub struct Load {
    citizens: Arc<Vec<Arc<Citizen>>>,
    pub recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Asks every client to stop and waits for each to finish its last operation.
    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, task).await;
        }
    }
}

/// What the checks after a load found.
#[derive(Debug)]
pub struct Checked {
    pub operations: usize,
    pub acked: usize,
    pub violations: Vec<String>,
    /// Histories the checker gave up on (too large to decide).
    pub undecided: usize,
}

/// The federation the runs of a tier share.
pub struct Bench {
    // Declared before the network, so that the nodes stop before their namespaces go.
    federation: LocalFederation,
    network: Option<Network>,
    cities: Vec<String>,
}

impl Bench {
    /// Starts the federation, each node in a network of its own when `network` is given.
    pub async fn start(
        exe: &Path,
        root: &Path,
        settings: &RunSettings,
        network: Option<Network>,
    ) -> anyhow::Result<Bench> {
        let cities = &CITIES[..settings.nodes];
        let federation = match &network {
            Some(network) => {
                LocalFederation::start_placed(exe, root, cities, &[], network.placements())?
            }
            None => LocalFederation::start(exe, root, cities, &[])?,
        };
        federation.wait_ready(READY_TIMEOUT).await?;
        let leader = federation.leader().await.ok_or_else(|| anyhow::anyhow!("no leader"))?;
        workload::register_service(&mut federation.client(leader).await?).await?;
        let cities = cities.iter().map(|c| c.city_id.to_owned()).collect();
        Ok(Bench { federation, network, cities })
    }

    pub fn stop(&mut self) {
        self.federation.stop();
    }

    pub async fn run(
        &mut self,
        number: usize,
        fault: Fault,
        seed: u64,
        settings: &RunSettings,
    ) -> anyhow::Result<RunOutcome> {
        let mut rng = Rng::new(seed);
        let leader = self.wait_leader().await?;
        let load = self.start_load(number, settings.citizens, settings.readers, &mut rng).await?;

        tokio::time::sleep(settings.warmup).await;
        let (before, _) = load.recorder.counts();
        let rate_before_fault = before as f64 / settings.warmup.as_secs_f64();
        let mut outcome = RunOutcome {
            fault,
            seed,
            discarded: None,
            operations: 0,
            acknowledged_writes: 0,
            recovery: None,
            violations: Vec::new(),
            undecided: 0,
            rate_before_fault,
            leaders: None,
        };
        if rate_before_fault < OPERATIONS_PER_SECOND_MIN {
            let floor = OPERATIONS_PER_SECOND_MIN;
            let why =
                format!("{rate_before_fault:.0} operations/s before the fault, below {floor}");
            outcome.discarded = Some(why);
            load.stop().await;
            return Ok(outcome);
        }

        let network = self.network.as_ref();
        let injected = fault::inject(&mut self.federation, network, fault, rng.below(64)).await?;
        let span = settings.fault_max.saturating_sub(settings.fault_min);
        let length = settings.fault_min + span.mul_f64(rng.below(1001) as f64 / 1000.0);
        tokio::time::sleep(length).await;
        fault::heal(&mut self.federation, network, &injected)?;
        let recorder = &load.recorder;
        let healed_ns = recorder.now_ns();
        let healed = Instant::now();
        while recorder.first_write_after(healed_ns).is_none() && healed.elapsed() < RECOVERY_MAX {
            tokio::time::sleep(POLL).await;
        }
        outcome.recovery = recorder
            .first_write_after(healed_ns)
            .map(|done| Duration::from_nanos(done.saturating_sub(healed_ns)));
        match outcome.recovery {
            Some(recovery) if recovery <= RECOVERY_MAX => {}
            _ => outcome.violations.push(format!(
                "no write was acknowledged within {} s of healing",
                RECOVERY_MAX.as_secs()
            )),
        }
        tokio::time::sleep(settings.after_heal).await;
        let after = self.federation.leader().await.map_or(0, |p| p as u64 + 1);
        outcome.leaders = Some((leader as u64 + 1, after));

        let checked = self.finish(load).await?;
        (outcome.operations, outcome.acknowledged_writes) = (checked.operations, checked.acked);
        outcome.violations.extend(checked.violations);
        outcome.undecided = checked.undecided;
        Ok(outcome)
    }

    /// Registers `citizens` fresh citizens and starts a writer for each and `readers`
    /// readers, all recording into one recorder.
    pub async fn start_load(
        &self,
        number: usize,
        citizens: usize,
        readers: usize,
        rng: &mut Rng,
    ) -> anyhow::Result<Load> {
        let leader = self.wait_leader().await?;
        let mut client = self.federation.client(leader).await?;
        let citizens =
            workload::register_citizens(&mut client, number, citizens, &self.cities).await?;
        let citizens: Arc<Vec<Arc<Citizen>>> =
            Arc::new(citizens.into_iter().map(Arc::new).collect());
        let clients = Clients::new(&self.federation).await?;
        let recorder = Recorder::new(citizens.len());
        let stop = Arc::new(AtomicBool::new(false));

        let mut tasks = Vec::new();
        for (index, citizen) in citizens.iter().enumerate() {
            let writer = Writer {
                process: index as u64,
                citizen: index,
                cities: self.cities.clone(),
                rng: rng.fork(),
            };
            let task = writer.run(citizen.clone(), clients.clone(), recorder.clone(), stop.clone());
            tasks.push(tokio::spawn(task));
        }
        for reader in 0..readers {
            let reader = Reader { process: (citizens.len() + reader) as u64, rng: rng.fork() };
            let task =
                reader.run(citizens.clone(), clients.clone(), recorder.clone(), stop.clone());
            tasks.push(tokio::spawn(task));
        }
        Ok(Load { citizens, recorder, stop, tasks })
    }

    /// Stops the load, reads every citizen once more, and checks what the federation
    /// promises: replicas converge on one state and every history is linearizable.
    pub async fn finish(&self, load: Load) -> anyhow::Result<Checked> {
        let (citizens, recorder) = (load.citizens.clone(), load.recorder.clone());
        load.stop().await;
        self.final_reads(&citizens, &recorder).await?;
        let (operations, acked) = recorder.counts();
        let mut checked = Checked { operations, acked, violations: Vec::new(), undecided: 0 };
        if let Err(divergence) = self.converged().await {
            checked.violations.push(divergence);
        }
        for (index, history) in recorder.histories().iter().enumerate() {
            let model = CitizenModel { initial: citizens[index].initial.clone() };
            match check(&model, history) {
                Verdict::Linearizable => {}
                Verdict::NotLinearizable(violation) => {
                    checked.violations.push(format!("citizen {index}: {violation}"))
                }
                Verdict::GaveUp { .. } => checked.undecided += 1,
            }
        }
        Ok(checked)
    }

    pub fn federation(&self) -> &LocalFederation {
        &self.federation
    }

    pub async fn wait_leader(&self) -> anyhow::Result<usize> {
        let deadline = Instant::now() + RECOVERY_MAX;
        loop {
            if let Some(leader) = self.federation.leader().await {
                return Ok(leader);
            }
            anyhow::ensure!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Reads every citizen once more after the load, so that the history ends with what
    /// the federation holds: an acknowledged write missing there is a violation.
    async fn final_reads(
        &self,
        citizens: &[Arc<Citizen>],
        recorder: &Recorder,
    ) -> anyhow::Result<()> {
        for (index, citizen) in citizens.iter().enumerate() {
            let deadline = Instant::now() + RECOVERY_MAX;
            loop {
                let leader = self.wait_leader().await?;
                let mut client = self.federation.client(leader).await?;
                let process = FINAL_READ_PROCESS + index as u64;
                let event = workload::read(&mut client, citizen, process, recorder).await;
                if matches!(event.outcome, roamhub_check::history::Outcome::Ok(_)) {
                    recorder.record(index, event);
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "citizen {index} could not be read");
                tokio::time::sleep(POLL).await;
            }
        }
        Ok(())
    }

    /// Waits until every node has applied the same log, then compares their digests.
    async fn converged(&self) -> Result<(), String> {
        let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            let mut digests = Vec::new();
            for position in 0..self.federation.nodes.len() {
                let Ok(mut client) = self.federation.client(position).await else { break };
                let Ok(answer) = client.state_digest(pb::StateDigestRequest {}).await else {
                    break;
                };
                let answer = answer.into_inner();
                digests.push((answer.applied_index, answer.digest));
            }
            if digests.len() == self.federation.nodes.len()
                && digests.iter().all(|(index, _)| *index == digests[0].0)
            {
                if digests.iter().all(|d| d.1 == digests[0].1) {
                    return Ok(());
                }
                let shown: Vec<String> = digests
                    .iter()
                    .map(|(index, digest)| format!("{index}:{}", &hex::encode(digest)[..12]))
                    .collect();
                return Err(format!("replicas diverged at the same applied index: {shown:?}"));
            }
            last = digests;
            tokio::time::sleep(POLL).await;
        }
        let shown: Vec<u64> = last.iter().map(|(index, _)| *index).collect();
        Err(format!(
            "replicas did not apply the same log within {} s: applied {shown:?}",
            CONVERGENCE_TIMEOUT.as_secs()
        ))
    }
}
