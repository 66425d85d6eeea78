//! Throughput and latency of a three-city federation of real node processes on loopback,
//! printed as a table: writes, resolutions (each with its committed access record) through
//! the leader and through a follower, and linearizable reads; then each node's memory and
//! disk use. Every phase runs twice in the same run, once under mutual TLS and once in
//! plaintext (`--insecure`), and the cost of TLS is printed last.
//!
//! Run with `cargo bench -p roamhub --bench federation`. `ROAMHUB_BENCH_SECONDS` sets the
//! length of each phase (default 5) and `ROAMHUB_BENCH_CLIENTS` the concurrent clients
//! (default 32).

use std::path::Path;
use std::time::{Duration, Instant};

use roamhub::client::Client;
use roamhub::keystore::{CitizenKey, CitizenRequest};
use roamhub::local::{City, LocalFederation};
use roamhub_index::ServiceId;
use roamhub_node::Role;
use roamhub_proto::v1 as pb;

const CITIES: [City; 3] = [
    City { city_id: "nl-eindhoven", display_name: "Eindhoven" },
    City { city_id: "fi-helsinki", display_name: "Helsinki" },
    City { city_id: "es-valencia", display_name: "Valencia" },
];
/// Citizens registered, each with a location and a consent, before measuring.
const CITIZENS: usize = 200;
/// How long the service is certified for: longer than any run.
const CERTIFIED_FOR_MS: u64 = 86_400_000;

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
    name: String,
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
    println!(
        "roamhub federation bench: 3 nodes on loopback, {clients} clients, {seconds} s per phase"
    );
    let mut results = Vec::new();
    for transport in ["tls", "plain"] {
        let dir = tempfile::Builder::new().prefix("roamhub-bench-").tempdir()?;
        let exe = Path::new(env!("CARGO_BIN_EXE_roamhub"));
        let federation = match transport {
            "tls" => LocalFederation::start(exe, dir.path(), &CITIES, &[])?,
            _ => LocalFederation::start_insecure(exe, dir.path(), &CITIES, &[])?,
        };
        federation.wait_ready(Duration::from_secs(30)).await?;
        let leader = federation.leader().await.expect("a leader");
        let follower = (leader + 1) % 3;

        let mut citizens = seed(&mut federation.client(leader).await?).await?;
        let duration = Duration::from_secs(seconds);
        let phases = [
            ("resolve via leader", leader, Operation::Resolve),
            ("resolve via follower", follower, Operation::Resolve),
            ("read citizen via leader", leader, Operation::ReadCitizen),
            ("read citizen via follower", follower, Operation::ReadCitizen),
            ("set location via leader", leader, Operation::SetLocation),
        ];
        for (name, position, operation) in phases {
            let name = format!("{transport:<5} {name}");
            let target = Target { federation: &federation, position };
            results.push(measure(name, target, operation, &mut citizens, clients, duration).await?);
        }
        println!("\nfootprint after the {transport} phases:");
        print_footprint(&federation);
    }

    print_table(&results);
    print_tls_cost(&results);
    Ok(())
}

/// The node a phase talks to.
#[derive(Clone, Copy)]
struct Target<'a> {
    federation: &'a LocalFederation,
    position: usize,
}

impl Target<'_> {
    /// A client on a connection of its own: as the service for resolutions, else as the
    /// node's city operator (a citizen portal).
    fn client(&self, operation: Operation) -> anyhow::Result<Client> {
        let role = match operation {
            Operation::Resolve => {
                Role::Service { service_id: ServiceId::parse("s", "ride.share")? }
            }
            _ => self.federation.operator(self.position),
        };
        self.federation.client_as(self.position, &role)
    }
}

/// A seeded citizen: id, signing key, and the sequence number of their next operation.
struct BenchCitizen {
    id: String,
    key: CitizenKey,
    next_sequence: u64,
}

/// Registers and certifies a service, and registers `CITIZENS` citizens, each with a
/// mobility pod and a consent.
async fn seed(client: &mut Client) -> anyhow::Result<Vec<BenchCitizen>> {
    let declaration = pb::PurposeDeclaration {
        purpose: "trip-planning".to_owned(),
        attributes: vec!["mobility.trips".to_owned(), "mobility.pass".to_owned()],
    };
    let service = pb::RegisterServiceRequest {
        service_id: "ride.share".to_owned(),
        organisation: "Ride Share".to_owned(),
        declarations: vec![declaration.clone()],
    };
    client.register_service(service).await?;
    let certify = pb::CertifyServiceRequest {
        service_id: "ride.share".to_owned(),
        declarations: vec![declaration],
        valid_until_unix_ms: roamhub_node::node::now_unix_ms() + CERTIFIED_FOR_MS,
    };
    client.certify_service(certify).await?;

    let mut citizens = Vec::new();
    for n in 0..CITIZENS {
        let identifier =
            pb::Identifier { scheme: "city-account".to_owned(), value: format!("B-{n}") };
        let key = CitizenKey::generate()?;
        let register = key.registration(client, "nl-eindhoven", vec![identifier]).await?;
        let id = client.register_citizen(register).await?.into_inner().citizen_id;
        let pod = key.signed(client, location(&id, 0)).await?;
        client.set_location(pod).await?;
        let grant = pb::GrantConsentRequest {
            citizen_id: id.clone(),
            service_id: "ride.share".to_owned(),
            purpose: "trip-planning".to_owned(),
            attributes: vec!["mobility.trips".to_owned(), "mobility.pass".to_owned()],
            ..Default::default()
        };
        let grant = key.signed(client, grant).await?;
        client.grant_consent(grant).await?;
        citizens.push(BenchCitizen { id, key, next_sequence: 3 });
    }
    Ok(citizens)
}

fn location(citizen_id: &str, version: usize) -> pb::SetLocationRequest {
    pb::SetLocationRequest {
        citizen_id: citizen_id.to_owned(),
        category: "mobility".to_owned(),
        uri: format!("https://pods.example/{version}/mobility"),
        provider: "Example Pods".to_owned(),
        signature: None,
    }
}

/// Runs `clients` concurrent clients, each on its own connection, for `duration`. Each
/// client owns the citizens whose position modulo `clients` is its own, so that no two
/// clients race for one citizen's sequence numbers.
async fn measure(
    name: String,
    target: Target<'_>,
    operation: Operation,
    citizens: &mut Vec<BenchCitizen>,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Phase> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut owned: Vec<Vec<(usize, BenchCitizen)>> = (0..clients).map(|_| Vec::new()).collect();
    for (position, citizen) in citizens.drain(..).enumerate() {
        owned[position % clients].push((position, citizen));
    }

    let mut tasks = Vec::new();
    for mut mine in owned {
        let mut client = target.client(operation)?;
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut failures, mut round) = (Vec::new(), 0, 0);
            while Instant::now() < deadline && !mine.is_empty() {
                let count = mine.len();
                let (position, citizen) = &mut mine[round % count];
                let begun = Instant::now();
                let ok = call(&mut client, operation, citizen, *position, round).await;
                latencies.push(begun.elapsed());
                failures += usize::from(!ok);
                round += 1;
            }
            (latencies, failures, mine)
        }));
    }

    let mut phase = Phase { name, operations: 0, failures: 0, seconds: 0.0, latencies: Vec::new() };
    let mut returned = Vec::new();
    for task in tasks {
        let (latencies, failures, mine) = task.await?;
        phase.operations += latencies.len();
        phase.failures += failures;
        phase.latencies.extend(latencies);
        returned.extend(mine);
    }
    returned.sort_by_key(|(position, _)| *position);
    citizens.extend(returned.into_iter().map(|(_, citizen)| citizen));
    phase.seconds = started.elapsed().as_secs_f64();
    phase.latencies.sort();
    Ok(phase)
}

async fn call(
    client: &mut Client,
    operation: Operation,
    citizen: &mut BenchCitizen,
    position: usize,
    round: usize,
) -> bool {
    match operation {
        Operation::SetLocation => {
            let request = location(&citizen.id, round + 1);
            let Ok(op) = request.op(client).await else { return false };
            let Ok(signature) = citizen.key.sign_as(&citizen.id, citizen.next_sequence, &op) else {
                return false;
            };
            let signed = pb::SetLocationRequest { signature: Some(signature), ..request };
            let ok = client.set_location(signed).await.is_ok();
            citizen.next_sequence += u64::from(ok);
            ok
        }
        Operation::Resolve => {
            let identifier = pb::Identifier {
                scheme: "city-account".to_owned(),
                value: format!("B-{position}"),
            };
            let request = pb::ResolveRequest {
                identifier: Some(identifier),
                service_id: "ride.share".to_owned(),
                purpose: "trip-planning".to_owned(),
                attributes: Vec::new(),
            };
            client.resolve(request).await.is_ok()
        }
        Operation::ReadCitizen => {
            let request = pb::GetCitizenRequest { citizen_id: citizen.id.clone() };
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
        "\n{:<34} {:>9} {:>9} {:>10} {:>9} {:>9}",
        "phase", "ops", "failed", "ops/s", "p50 ms", "p99 ms"
    );
    for phase in phases {
        println!(
            "{:<34} {:>9} {:>9} {:>10.0} {:>9.2} {:>9.2}",
            phase.name,
            phase.operations,
            phase.failures,
            throughput(phase),
            percentile(&phase.latencies, 0.50),
            percentile(&phase.latencies, 0.99),
        );
    }
}

/// Throughput under TLS relative to plaintext, phase by phase.
fn print_tls_cost(phases: &[Phase]) {
    println!("\n{:<28} {:>10} {:>10} {:>9}", "cost of TLS", "tls ops/s", "plain ops/s", "change");
    for tls in phases.iter().filter(|p| p.name.starts_with("tls")) {
        let bare = tls.name.trim_start_matches("tls").trim_start();
        let Some(plain) =
            phases.iter().find(|p| p.name.starts_with("plain") && p.name.ends_with(bare))
        else {
            continue;
        };
        let (with, without) = (throughput(tls), throughput(plain));
        let change = (with / without - 1.0) * 100.0;
        println!("{bare:<28} {with:>10.0} {without:>10.0} {change:>8.1}%");
    }
}

fn throughput(phase: &Phase) -> f64 {
    phase.operations as f64 / phase.seconds
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
