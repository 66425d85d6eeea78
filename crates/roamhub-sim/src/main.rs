//! `roamhub-sim`: runs seeds of the deterministic simulation and summarises them.
//!
//! `--seeds N` runs seeds 1 to N over `--jobs` threads, one line per seed and a table at
//! the end; `--seed S` replays one seed, with `--trace` printing every event of it.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Parser;
use roamhub_sim::faults::FaultKind;
use roamhub_sim::limits::{NODES_DEFAULT, STEPS_PER_SEED_DEFAULT};
use roamhub_sim::{Failure, SeedReport, Settings, run_seed};

/// Seeds run when neither `--seed` nor `--seeds` is given.
const SEEDS_DEFAULT: u64 = 100;

#[derive(Parser)]
#[command(about = "Deterministic simulation of a roamhub Raft cluster")]
struct Cli {
    /// Runs seeds 1 to N [default: 100, when --seed is not given either].
    #[arg(long, conflicts_with = "seed")]
    seeds: Option<u64>,
    /// Replays exactly one seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Prints every event of the replayed seed.
    #[arg(long, requires = "seed")]
    trace: bool,
    /// Nodes in the cluster, 3 to 5.
    #[arg(long, default_value_t = NODES_DEFAULT)]
    nodes: usize,
    /// Steps of each seed's faulty phase.
    #[arg(long, default_value_t = STEPS_PER_SEED_DEFAULT)]
    steps: u32,
    /// Seeds run at once, one thread each; defaults to the machine's cores.
    #[arg(long)]
    jobs: Option<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = Settings { nodes: cli.nodes, steps: cli.steps, trace: cli.trace };
    match (cli.seed, cli.seeds) {
        (Some(seed), _) => replay(seed, &settings),
        (None, seeds) => {
            let jobs = cli.jobs.unwrap_or_else(|| {
                std::thread::available_parallelism().map(usize::from).unwrap_or(1)
            });
            run_many(seeds.unwrap_or(SEEDS_DEFAULT), jobs, &settings)
        }
    }
}

fn replay(seed: u64, settings: &Settings) -> ExitCode {
    let outcome = run_seed(seed, settings);
    let trace = match &outcome {
        Ok(report) => &report.trace,
        Err(failure) => &failure.trace,
    };
    for line in &trace.lines {
        println!("{line}");
    }
    match outcome {
        Ok(report) => {
            println!("{}", seed_line(&report));
            ExitCode::SUCCESS
        }
        Err(failure) => {
            println!("FAIL {failure}\ntrace {}", failure.trace.hash);
            ExitCode::FAILURE
        }
    }
}

fn run_many(seeds: u64, jobs: usize, settings: &Settings) -> ExitCode {
    let started = Instant::now();
    let next = AtomicU64::new(1);
    let outcomes: Mutex<Vec<Result<SeedReport, Failure>>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed > seeds {
                        return;
                    }
                    let outcome = run_seed(seed, settings);
                    match &outcome {
                        Ok(report) => println!("{}", seed_line(report)),
                        Err(failure) => println!("FAIL {failure}"),
                    }
                    outcomes.lock().expect("no thread panics holding it").push(outcome);
                }
            });
        }
    });

    let outcomes = outcomes.into_inner().expect("no thread panics holding it");
    print_summary(&outcomes, started.elapsed().as_secs_f64());
    let failed: Vec<u64> =
        outcomes.iter().filter_map(|o| o.as_ref().err()).map(|f| f.seed).collect();
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    println!("failing seeds: {failed:?}");
    ExitCode::FAILURE
}

fn seed_line(report: &SeedReport) -> String {
    let faults: u32 = report.faults.values().sum();
    format!(
        "seed {:>5} ok  sim {:>6} ms  faults {:>3}  ops {:>4}  acked {:>4}  msgs {:>6}  \
         recovery {:>5} ms  shared terms {}  trace {}",
        report.seed,
        report.sim_ms,
        faults,
        report.operations,
        report.acknowledged_writes,
        report.messages.sent,
        report.recovery_ms,
        report.shared_terms,
        &report.trace.hash[..16]
    )
}

fn print_summary(outcomes: &[Result<SeedReport, Failure>], wall_s: f64) {
    let reports: Vec<&SeedReport> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    let mut faults: BTreeMap<FaultKind, u64> = BTreeMap::new();
    for report in &reports {
        for (kind, count) in &report.faults {
            *faults.entry(*kind).or_default() += u64::from(*count);
        }
    }
    let sum = |field: fn(&SeedReport) -> u64| reports.iter().map(|r| field(r)).sum::<u64>();

    println!();
    println!("{:<28} {:>12}", "seeds run", outcomes.len());
    println!("{:<28} {:>12}", "seeds failed (violations)", outcomes.len() - reports.len());
    for kind in FaultKind::ALL {
        let label = format!("faults: {kind}");
        println!("{label:<28} {:>12}", faults.get(&kind).copied().unwrap_or(0));
    }
    println!("{:<28} {:>12}", "client operations", sum(|r| r.operations));
    println!("{:<28} {:>12}", "acknowledged writes", sum(|r| r.acknowledged_writes));
    println!("{:<28} {:>12}", "messages sent", sum(|r| r.messages.sent));
    println!("{:<28} {:>12}", "messages lost", sum(|r| r.messages.lost));
    println!("{:<28} {:>12}", "lossy seeds", sum(|r| u64::from(r.lossy)));
    println!("{:<28} {:>12}", "terms with several leaders", sum(|r| u64::from(r.shared_terms)));
    println!("{:<28} {:>12}", "undecided histories", sum(|r| u64::from(r.undecided_histories)));
    println!(
        "{:<28} {:>12}",
        "slowest recovery (ms)",
        reports.iter().map(|r| r.recovery_ms).max().unwrap_or(0)
    );
    println!("{:<28} {:>12}", "simulated time (s)", sum(|r| r.sim_ms) / 1000);
    println!("{:<28} {:>12.1}", "wall-clock time (s)", wall_s);
}
