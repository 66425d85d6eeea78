//! Throughput and latency of a three-city federation of real node processes on loopback,
//! printed as a table: writes, resolutions (each with its committed access record) through
//! the leader and through a follower, and linearizable reads; then each node's memory and
//! disk use.
//!
//! Run with `cargo bench -p roamhub --bench federation`. `ROAMHUB_BENCH_SECONDS` sets the
//! length of each phase (default 5) and `ROAMHUB_BENCH_CLIENTS` the concurrent clients
//! (default 32).

use std::path::Path;
use std::time::{Duration, Instant};

use roamhub::client::Client;
use roamhub::local::{City, LocalFederation};
use roamhub_proto::v1 as pb;

const CITIES: [City; 3] = [
    City { city_id: "nl-eindhoven", display_name: "Eindhoven" },
    City { city_id: "fi-helsinki", display_name: "Helsinki" },
    City { city_id: "es-valencia", display_name: "Valencia" },
];
/// Citizens registered, each with a location and a consent, before measuring.
const CITIZENS: usize = 200;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Clone, Copy)]
enum Operation {
    SetLocation,
    Resolve,
    ReadCitizen,
}

struct Phase {
    name: &'static str,
    operations: usize,
    failures: usize,
    seconds: f64,
    latencies: Vec<Duration>,
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let seconds = setting("ROAMHUB_BENCH_SECONDS", 5);
    let clients = setting("ROAMHUB_BENCH_CLIENTS", 32) as usize;
    let dir = tempfile::Builder::new().prefix("roamhub-bench-").tempdir()?;
    let exe = Path::new(env!("CARGO_BIN_EXE_roamhub"));
    let federation = LocalFederation::start(exe, dir.path(), &CITIES, &[])?;
    federation.wait_ready(Duration::from_secs(30)).await?;
    let leader = federation.leader().await.expect("a leader");
    let follower = (leader + 1) % 3;

    let citizen_ids = seed(&mut federation.client(leader).await?).await?;
    println!(
        "roamhub federation bench: 3 nodes on loopback, {clients} clients, {seconds} s per phase"
    );
    let duration = Duration::from_secs(seconds);
    let phases = [
        ("resolve via leader", leader, Operation::Resolve),
        ("resolve via follower", follower, Operation::Resolve),
        ("read citizen via leader", leader, Operation::ReadCitizen),
        ("read citizen via follower", follower, Operation::ReadCitizen),
        ("set location via leader", leader, Operation::SetLocation),
    ];
    let mut results = Vec::new();
    for (name, position, operation) in phases {
        let addr = federation.nodes[position].api_addr.clone();
        results.push(measure(name, &addr, operation, &citizen_ids, clients, duration).await?);
    }

    print_table(&results);
    print_footprint(&federation);
    Ok(())
}

/// Registers a service and `CITIZENS` citizens, each with a mobility pod and a consent.
async fn seed(client: &mut Client) -> anyhow::Result<Vec<String>> {
    let declaration = pb::PurposeDeclaration {
        purpose: "trip-planning".to_owned(),
        attributes: vec!["mobility.trips".to_owned(), "mobility.pass".to_owned()],
    };
    let service = pb::RegisterServiceRequest {
        service_id: "ride.share".to_owned(),
        organisation: "Ride Share".to_owned(),
        declarations: vec![declaration],
    };
    client.register_service(service).await?;

    let mut citizen_ids = Vec::new();
    for n in 0..CITIZENS {
        let identifier =
            pb::Identifier { scheme: "city-account".to_owned(), value: format!("B-{n}") };
        let register = pb::RegisterCitizenRequest {
            home_city: "nl-eindhoven".to_owned(),
            identifiers: vec![identifier],
        };
        let citizen_id = client.register_citizen(register).await?.into_inner().citizen_id;
        client.set_location(location(&citizen_id, 0)).await?;
        let grant = pb::GrantConsentRequest {
            citizen_id: citizen_id.clone(),
            service_id: "ride.share".to_owned(),
            purpose: "trip-planning".to_owned(),
            attributes: vec!["mobility.trips".to_owned(), "mobility.pass".to_owned()],
            ..Default::default()
        };
        client.grant_consent(grant).await?;
        citizen_ids.push(citizen_id);
    }
    Ok(citizen_ids)
}

fn location(citizen_id: &str, version: usize) -> pb::SetLocationRequest {
    pb::SetLocationRequest {
        citizen_id: citizen_id.to_owned(),
        category: "mobility".to_owned(),
        uri: format!("https://pods.example/{version}/mobility"),
        provider: "Example Pods".to_owned(),
    }
}

/// Runs `clients` concurrent clients, each on its own connection, for `duration`.
async fn measure(
    name: &'static str,
    addr: &str,
    operation: Operation,
    citizen_ids: &[String],
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Phase> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let mut client = roamhub::client::connect(addr).await?;
        let citizen_ids = citizen_ids.to_vec();
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut failures, mut n) = (Vec::new(), 0, worker);
            while Instant::now() < deadline {
                let citizen = n % citizen_ids.len();
                let begun = Instant::now();
                let ok = call(&mut client, operation, &citizen_ids[citizen], citizen, n).await;
                latencies.push(begun.elapsed());
                failures += usize::from(!ok);
                n += clients;
            }
            (latencies, failures)
        }));
    }

    let mut phase = Phase { name, operations: 0, failures: 0, seconds: 0.0, latencies: Vec::new() };
    for task in tasks {
        let (latencies, failures) = task.await?;
        phase.operations += latencies.len();
        phase.failures += failures;
        phase.latencies.extend(latencies);
    }
    phase.seconds = started.elapsed().as_secs_f64();
    phase.latencies.sort();
    Ok(phase)
}

async fn call(
    client: &mut Client,
    operation: Operation,
    citizen_id: &str,
    citizen: usize,
    n: usize,
) -> bool {
    match operation {
        Operation::SetLocation => client.set_location(location(citizen_id, n + 1)).await.is_ok(),
        Operation::Resolve => {
            let request = pb::ResolveRequest {
                identifier: Some(pb::Identifier {
                    scheme: "city-account".to_owned(),
                    value: format!("B-{citizen}"),
                }),
                service_id: "ride.share".to_owned(),
                purpose: "trip-planning".to_owned(),
                attributes: Vec::new(),
            };
            client.resolve(request).await.is_ok()
        }
        Operation::ReadCitizen => {
            let request = pb::GetCitizenRequest { citizen_id: citizen_id.to_owned() };
            client.get_citizen(request).await.is_ok()
        }
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else { return 0.0 };
    let at = ((last as f64) * fraction).round() as usize;
    sorted[at].as_secs_f64() * 1000.0
}

fn print_table(phases: &[Phase]) {
    println!(
        "\n{:<28} {:>9} {:>9} {:>10} {:>9} {:>9}",
        "phase", "ops", "failed", "ops/s", "p50 ms", "p99 ms"
    );
    for phase in phases {
        println!(
            "{:<28} {:>9} {:>9} {:>10.0} {:>9.2} {:>9.2}",
            phase.name,
            phase.operations,
            phase.failures,
            phase.operations as f64 / phase.seconds,
            percentile(&phase.latencies, 0.50),
            percentile(&phase.latencies, 0.99),
        );
    }
}

/// Resident memory (from /proc) and data directory size of each node.
fn print_footprint(federation: &LocalFederation) {
    println!("\n{:<14} {:>12} {:>12}", "node", "rss MiB", "disk MiB");
    for (position, node) in federation.nodes.iter().enumerate() {
        let rss_kib = federation.pid(position).and_then(rss_kib).unwrap_or_default();
        let disk = directory_bytes(&node.data_dir);
        println!(
            "{:<14} {:>12.1} {:>12.1}",
            node.city.city_id,
            rss_kib as f64 / 1024.0,
            disk as f64 / (1024.0 * 1024.0)
        );
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn directory_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => directory_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
