//! `roamhub-faults`: runs a federation of real `roamhub serve` processes under a steady
//! load of mixed operations, injects one fault per run, heals it, and checks what the
//! federation promises: writes are served again soon after healing, every replica holds
//! the same state, and every citizen's recorded history is linearizable (so no
//! acknowledged write is lost and no withdrawn consent is served after its withdrawal was
//! acknowledged). Ends with one summary table; exits non-zero on any violation.
//!
//! `cargo run --release -p roamhub-faults -- quick` is the tier CI runs; `-- long` (an hour
//! by default, `--minutes`) the one to run on demand. Release builds: a debug node is too
//! slow to carry the load a run needs.

mod fault;
mod net;
mod overload;
mod rng;
mod run;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use crate::fault::Fault;
use crate::overload::OverloadOutcome;
use crate::run::{RunOutcome, RunSettings};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Tier {
    /// Two runs of each fault, short ones, on three nodes: minutes, for CI.
    Quick,
    /// Runs on five nodes with longer pauses until `--minutes` have passed.
    Long,
}

#[derive(Debug, Parser)]
#[command(about = "Fault injection against real roamhub nodes, with checked histories")]
struct Args {
    tier: Tier,
    /// Runs to make (quick tier; two of each fault by default); the long tier runs until
    /// `--minutes` pass.
    #[arg(long)]
    runs: Option<usize>,
    /// How long the long tier runs.
    #[arg(long, default_value_t = 60)]
    minutes: u64,
    /// Seed of every choice of the workload and the schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The roamhub binary; by default the one cargo builds beside this one.
    #[arg(long)]
    roamhub: Option<PathBuf>,
    /// Keep the federation's folder (node logs, data) after the tier, for a post-mortem.
    #[arg(long)]
    keep: bool,
    /// Run every node on loopback, without the network faults that need root.
    #[arg(long)]
    loopback: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let network = !args.loopback && net::available();
    if network {
        match net::enter_private_namespace() {
            Ok(Some(code)) => return ExitCode::from(u8::try_from(code).unwrap_or(2)),
            Ok(None) => {}
            Err(error) => {
                eprintln!("error: entering a private network namespace: {error:#}");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    let result =
        runtime.map_err(anyhow::Error::from).and_then(|rt| rt.block_on(tier(args, network)));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// The `roamhub` binary: given, or built by cargo into the folder this binary runs from.
fn roamhub_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    let here = std::env::current_exe()?;
    let dir = here.parent().ok_or_else(|| anyhow::anyhow!("no folder for {}", here.display()))?;
    // Built now if `cargo run` was asked for this binary only: `roamhub` must match the
    // sources being tested, never be an older build left in the folder.
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "-p", "roamhub", "--bin", "roamhub"]);
        if dir.ends_with("release") {
            build.arg("--release");
        }
        anyhow::ensure!(build.status()?.success(), "building roamhub failed");
    }
    let path = dir.join("roamhub");
    anyhow::ensure!(path.exists(), "{} not found; build it or pass --roamhub", path.display());
    Ok(path)
}

async fn tier(args: Args, network: bool) -> anyhow::Result<bool> {
    let exe = roamhub_binary(args.roamhub.clone())?;
    let settings = match args.tier {
        Tier::Quick => RunSettings::quick(),
        Tier::Long => RunSettings::long(),
    };
    let deadline = match args.tier {
        Tier::Quick => None,
        Tier::Long => Some(Instant::now() + Duration::from_secs(args.minutes * 60)),
    };
    let root = tempfile::Builder::new().prefix("roamhub-faults-").tempdir()?;
    println!(
        "roamhub-faults: {:?} tier, {} nodes, seed {}, folder {}",
        args.tier,
        settings.nodes,
        args.seed,
        root.path().display()
    );
    if !network {
        println!("every node on loopback: network faults left out (they need root and `ip`)");
    }
    let menu = Fault::menu(settings.nodes, network);
    let runs = args.runs.unwrap_or(2 * menu.len());
    let mut schedule = rng::Rng::new(args.seed);
    let network = network.then(|| net::Network::create(settings.nodes)).transpose()?;
    let mut bench = run::Bench::start(&exe, root.path(), &settings, network).await?;
    let mut outcomes = Vec::new();
    let started = Instant::now();
    for number in 0.. {
        let more = match deadline {
            Some(deadline) => Instant::now() < deadline,
            None => number < runs,
        };
        if !more {
            break;
        }
        let fault = menu[number % menu.len()];
        let seed = schedule.next_u64();
        let outcome = bench.run(number, fault, seed, &settings).await?;
        println!("{}", outcome.line(number));
        outcomes.push(outcome);
    }
    let seed = schedule.next_u64();
    let overloaded = overload::run(&bench, &settings, settings.overload, seed).await?;
    overloaded.print();
    let elapsed = started.elapsed();
    bench.stop();
    let held = summary(&outcomes, &overloaded, elapsed);
    if args.keep || !held {
        println!("node logs and data kept in {}", root.keep().display());
    }
    Ok(held)
}

/// Prints the summary table; answers whether no run found a violation.
fn summary(outcomes: &[RunOutcome], overloaded: &OverloadOutcome, elapsed: Duration) -> bool {
    let mut by_fault: BTreeMap<Fault, (usize, usize)> = BTreeMap::new();
    for outcome in outcomes {
        let entry = by_fault.entry(outcome.fault).or_default();
        entry.0 += 1;
        entry.1 += usize::from(outcome.discarded.is_some());
    }
    let checked: Vec<&RunOutcome> = outcomes.iter().filter(|o| o.discarded.is_none()).collect();
    let operations: usize =
        checked.iter().map(|o| o.operations).sum::<usize>() + overloaded.operations;
    let acknowledged: usize = checked.iter().map(|o| o.acknowledged_writes).sum::<usize>()
        + overloaded.acknowledged_writes;
    let violations: usize =
        checked.iter().map(|o| o.violations.len()).sum::<usize>() + overloaded.violations.len();
    let recovery = checked.iter().filter_map(|o| o.recovery).max().unwrap_or_default();
    let undecided: usize =
        checked.iter().map(|o| o.undecided).sum::<usize>() + overloaded.undecided;

    println!("\nsummary ({:.0} s)", elapsed.as_secs_f64());
    println!("{:<24} {:>8}", "runs", outcomes.len() + 1);
    println!("{:<24} {:>8}", "runs checked", checked.len() + 1);
    println!("{:<24} {:>8}", "runs discarded", outcomes.len() - checked.len());
    for (fault, (runs, discarded)) in &by_fault {
        println!("  {:<22} {:>8}  ({discarded} discarded)", fault.to_string(), runs);
    }
    let overload = format!("overload ({}x load)", overload::LOAD_FACTOR);
    println!("  {overload:<22} {:>8}  (0 discarded)", 1);
    println!("{:<24} {:>8}", "operations", operations);
    println!("{:<24} {:>8}", "acknowledged writes", acknowledged);
    println!("{:<24} {:>8.1} s", "slowest recovery", recovery.as_secs_f64());
    println!("{:<24} {:>8}", "elections under overload", overloaded.elections());
    println!("{:<24} {:>8}", "histories undecided", undecided);
    println!("{:<24} {:>8}", "violations", violations);
    for outcome in outcomes {
        for violation in &outcome.violations {
            println!("  {} ({}): {violation}", outcome.fault, outcome.seed);
        }
    }
    for violation in &overloaded.violations {
        println!("  overload: {violation}");
    }
    violations == 0
}
