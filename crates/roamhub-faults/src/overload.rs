//! Overload: ten times the nominal load, oversized requests and more consent watches than
//! a node serves, all at once.
//!
//! The federation must keep its leader (no election), keep its memory bounded, and refuse
//! the excess with `ResourceExhausted` or `Unavailable` rather than time out, fail
//! otherwise or fall over; what it does accept stays linearizable, as in every run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use roamhub::client::Client;
use roamhub_node::Role;
use roamhub_node::config::WATCH_STREAMS_MAX;
use roamhub_proto::v1 as pb;
use tonic::Code;

use crate::rng::Rng;
use crate::run::{Bench, RunSettings};
use crate::workload::SERVICE;

/// How many times the nominal load (a tier's writers and readers) the overload brings.
pub const LOAD_FACTOR: usize = 10;
/// Consent watches opened at one node beyond what it serves.
const WATCHES_BEYOND_MAX: usize = 64;
/// Connections the watches are spread over, so that no connection's stream limit is what
/// refuses them.
const WATCH_CONNECTIONS: usize = 8;
/// How big an oversized request is: four times what a node decodes.
const OVERSIZED_BYTES: usize = 4 * roamhub_node::config::API_MESSAGE_BYTES_MAX;
/// How often an oversized request is sent.
const OVERSIZED_EVERY: Duration = Duration::from_millis(50);
/// The most memory a node may hold (resident) at any moment of the overload.
const NODE_RESIDENT_BYTES_MAX: u64 = 512 * 1024 * 1024;
/// How often node memory is sampled.
const MEMORY_SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Answers that refuse excess work as the federation promises, or that the workload gets
/// in normal operation: a resolution without consent is `PermissionDenied`; a move to the
/// city already home, or the withdrawal of a consent already withdrawn, is
/// `FailedPrecondition`.
const EXPECTED_ANSWERS: [&str; 5] =
    ["Ok", "ResourceExhausted", "Unavailable", "PermissionDenied", "FailedPrecondition"];

/// What the overload found.
#[derive(Debug, Default)]
pub struct OverloadOutcome {
    pub clients: usize,
    pub length: Duration,
    pub operations: usize,
    pub acknowledged_writes: usize,
    /// How the workload's calls ended, by gRPC code.
    pub answers: BTreeMap<String, usize>,
    /// How oversized requests were answered, by gRPC code.
    pub oversized: BTreeMap<String, usize>,
    pub watches_opened: usize,
    pub watches_refused: usize,
    /// Raft terms at the start and at the end: equal when no election happened.
    pub terms: (u64, u64),
    /// The most resident memory each node held, in bytes.
    pub peak_resident_bytes: Vec<u64>,
    pub violations: Vec<String>,
    pub undecided: usize,
}

impl OverloadOutcome {
    pub fn elections(&self) -> u64 {
        self.terms.1.saturating_sub(self.terms.0)
    }

    /// Prints what the overload saw; its violations are listed in the tier's summary.
    pub fn print(&self) {
        let per_second = self.operations as f64 / self.length.as_secs_f64().max(1.0);
        println!(
            "\noverload: {} clients ({}x nominal) for {} s",
            self.clients,
            LOAD_FACTOR,
            self.length.as_secs()
        );
        println!("{:<24} {:>8}  ({per_second:.0}/s)", "operations", self.operations);
        println!("{:<24} {:>8}", "acknowledged writes", self.acknowledged_writes);
        for (code, count) in &self.answers {
            println!("  answered {code:<15} {count:>8}");
        }
        for (code, count) in &self.oversized {
            println!("  oversized {code:<14} {count:>8}");
        }
        println!("{:<24} {:>8}", "watches opened", self.watches_opened);
        println!("{:<24} {:>8}", "watches refused", self.watches_refused);
        println!("{:<24} {:>8}", "elections", self.elections());
        let peaks: Vec<String> =
            self.peak_resident_bytes.iter().map(|b| format!("{} MiB", b >> 20)).collect();
        println!("{:<24} {:>8}", "peak node memory", peaks.join(", "));
        println!("{:<24} {:>8}", "violations", self.violations.len());
    }
}

/// Runs the overload for `length` against the bench's federation.
pub async fn run(
    bench: &Bench,
    settings: &RunSettings,
    length: Duration,
    seed: u64,
) -> anyhow::Result<OverloadOutcome> {
    let mut rng = Rng::new(seed);
    let citizens = settings.citizens * LOAD_FACTOR;
    let readers = settings.readers * LOAD_FACTOR;
    let federation = bench.federation();
    let leader = bench.wait_leader().await?;
    let terms_before = max_term(bench).await?;

    let load = bench.start_load(usize::MAX / 2, citizens, readers, &mut rng).await?;
    let started = Instant::now();
    let pids: Vec<u32> = (0..federation.nodes.len()).filter_map(|p| federation.pid(p)).collect();
    let memory = tokio::spawn(sample_memory(pids, length));
    let oversized = tokio::spawn(send_oversized(oversized_clients(bench)?, length));
    let (watches, watches_opened, watches_refused) = open_watches(bench, leader).await?;

    tokio::time::sleep(length.saturating_sub(started.elapsed())).await;
    let answers = load.recorder.answers();
    let checked = bench.finish(load).await?;
    drop(watches);
    let terms = (terms_before, max_term(bench).await?);
    let mut outcome = OverloadOutcome {
        clients: citizens + readers,
        length,
        operations: checked.operations,
        acknowledged_writes: checked.acked,
        answers,
        oversized: oversized.await?,
        watches_opened,
        watches_refused,
        terms,
        peak_resident_bytes: memory.await?,
        violations: checked.violations,
        undecided: checked.undecided,
    };

    if terms.1 != terms.0 {
        outcome
            .violations
            .push(format!("elections under overload: term {} to {}", terms.0, terms.1));
    }
    for (code, count) in &outcome.answers {
        if !EXPECTED_ANSWERS.contains(&code.as_str()) {
            outcome.violations.push(format!("{count} calls answered {code}"));
        }
    }
    for (code, count) in &outcome.oversized {
        if code != "ResourceExhausted" {
            outcome.violations.push(format!("{count} oversized requests answered {code}"));
        }
    }
    if outcome.oversized.is_empty() {
        outcome.violations.push("no oversized request was answered".to_owned());
    }
    if watches_refused < WATCHES_BEYOND_MAX || watches_opened > WATCH_STREAMS_MAX {
        outcome.violations.push(format!(
            "{watches_opened} watches opened and {watches_refused} refused; a node serves \
             {WATCH_STREAMS_MAX}"
        ));
    }
    for (position, peak) in outcome.peak_resident_bytes.iter().enumerate() {
        if *peak > NODE_RESIDENT_BYTES_MAX {
            let (peak, max) = (peak >> 20, NODE_RESIDENT_BYTES_MAX >> 20);
            outcome.violations.push(format!("node {} held {peak} MiB, over {max}", position + 1));
        }
    }
    Ok(outcome)
}

/// The highest Raft term any node reports.
async fn max_term(bench: &Bench) -> anyhow::Result<u64> {
    let federation = bench.federation();
    let mut term = 0;
    for position in 0..federation.nodes.len() {
        let mut client = federation.client(position).await?;
        let status = client.node_status(pb::NodeStatusRequest {}).await?.into_inner();
        term = term.max(status.term);
    }
    Ok(term)
}

/// Samples every node's resident memory until `length` has passed; answers each peak.
async fn sample_memory(pids: Vec<u32>, length: Duration) -> Vec<u64> {
    let started = Instant::now();
    let mut peaks = vec![0; pids.len()];
    while started.elapsed() < length {
        for (peak, pid) in peaks.iter_mut().zip(&pids) {
            *peak = (*peak).max(resident_bytes(*pid).unwrap_or(0));
        }
        tokio::time::sleep(MEMORY_SAMPLE_EVERY).await;
    }
    peaks
}

/// A process's resident memory, from `/proc`.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// An operator client of every node, for oversized requests.
fn oversized_clients(bench: &Bench) -> anyhow::Result<Vec<Client>> {
    let federation = bench.federation();
    (0..federation.nodes.len())
        .map(|position| federation.client_as(position, &federation.operator(position)))
        .collect()
}

/// Sends an oversized request to each node in turn until `length` has passed; answers
/// how they were answered.
async fn send_oversized(mut clients: Vec<Client>, length: Duration) -> BTreeMap<String, usize> {
    let started = Instant::now();
    let mut answers = BTreeMap::new();
    let mut turn = 0;
    while started.elapsed() < length {
        let request = pb::RegisterServiceRequest {
            service_id: "oversized.service".to_owned(),
            organisation: "x".repeat(OVERSIZED_BYTES),
            declarations: Vec::new(),
        };
        let count = clients.len();
        let client = &mut clients[turn % count];
        let answer = match client.register_service(request).await {
            Ok(_) => "Ok".to_owned(),
            Err(status) => format!("{:?}", status.code()),
        };
        *answers.entry(answer).or_default() += 1;
        turn += 1;
        tokio::time::sleep(OVERSIZED_EVERY).await;
    }
    answers
}

/// Opens more consent watches at the leader than it serves, over several connections, and
/// holds the ones it accepts. Answers them with how many were opened and refused.
async fn open_watches(
    bench: &Bench,
    position: usize,
) -> anyhow::Result<(Vec<tonic::Streaming<pb::ServiceConsent>>, usize, usize)> {
    let federation = bench.federation();
    let service_id =
        roamhub_index::ServiceId::parse("service_id", SERVICE).map_err(anyhow::Error::msg)?;
    let role = Role::Service { service_id };
    let clients: Vec<Client> = (0..WATCH_CONNECTIONS)
        .map(|_| {
            roamhub::client::connect(
                &federation.nodes[position].api_addr,
                &federation.transport(&role)?,
            )
        })
        .collect::<anyhow::Result<_>>()?;
    let mut streams = Vec::new();
    let mut refused = 0;
    for turn in 0..WATCH_STREAMS_MAX + WATCHES_BEYOND_MAX {
        let mut client = clients[turn % clients.len()].clone();
        let request = pb::WatchConsentsRequest { service_id: SERVICE.to_owned() };
        match client.watch_consents(request).await {
            Ok(stream) => streams.push(stream.into_inner()),
            Err(status) if status.code() == Code::ResourceExhausted => refused += 1,
            Err(status) => {
                anyhow::bail!("a watch was answered {:?}: {}", status.code(), status.message())
            }
        }
    }
    let opened = streams.len();
    Ok((streams, opened, refused))
}
