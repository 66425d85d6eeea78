//! The load a run puts on the federation: one writer per citizen and a few readers, each
//! a client that records every operation it invokes and how it ended.
//!
//! Every citizen gets a writer of its own, so that its signed operations go one at a time
//! as a citizen's phone would send them. Readers read citizens and resolve them as the
//! service, at any node, concurrently with the writers: that is what makes the history
//! worth checking.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roamhub::client::Client;
use roamhub::keystore::{CitizenKey, CitizenRequest};
use roamhub::local::LocalFederation;
use roamhub_check::citizen::{CitizenInput, CitizenOutput, CitizenState};
use roamhub_check::history::{Event, Outcome};
use roamhub_proto::v1 as pb;
use tokio::time::error::Elapsed;
use tonic::Code;

use crate::rng::Rng;

/// The service the readers resolve as.
pub const SERVICE: &str = "ride.share";
pub const PURPOSE: &str = "trip-planning";
/// The category every citizen points somewhere from the start, and the attribute consents
/// are given for.
const CATEGORY: &str = "mobility";
const ATTRIBUTE: &str = "mobility.trips";
/// Consents a writer keeps given at most; beyond, it withdraws one.
const GIVEN_CONSENTS_MAX: usize = 3;
/// How long one operation may take before its outcome counts as unknown.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a client waits after an error before its next operation, so that a node that
/// is down does not turn into a flood of failed calls.
const ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Consent tags start this far in the future: each is a consent's end of validity, unique
/// per grant, so that reads can tell consents apart without their ids.
const TAG_BASE_OFFSET_MS: u64 = 3650 * 86_400_000;

pub type CitizenEvent = Event<CitizenInput, CitizenOutput>;

/// A citizen of the run: who they are to the federation and to the service.
pub struct Citizen {
    pub id: String,
    pub account: String,
    pub key: CitizenKey,
    pub initial: CitizenState,
}

/// Every operation of a run, by citizen, with the moment the run began.
pub struct Recorder {
    started: Instant,
    events: Mutex<Vec<Vec<CitizenEvent>>>,
    next_tag: AtomicU64,
    /// How calls ended, by gRPC code.
    answers: Mutex<BTreeMap<String, usize>>,
}

impl Recorder {
    pub fn new(citizens: usize) -> Arc<Recorder> {
        let base = roamhub_node::node::now_unix_ms() + TAG_BASE_OFFSET_MS;
        Arc::new(Recorder {
            started: Instant::now(),
            events: Mutex::new(vec![Vec::new(); citizens]),
            next_tag: AtomicU64::new(base),
            answers: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Counts how a call ended: its gRPC code, or a timeout of the client's.
    fn answered<T>(&self, answer: &Result<Result<T, tonic::Status>, Elapsed>) {
        let name = match answer {
            Ok(Ok(_)) => "Ok".to_owned(),
            Ok(Err(status)) => format!("{:?}", status.code()),
            Err(_) => "timed out at the client".to_owned(),
        };
        *self.answers.lock().unwrap_or_else(|p| p.into_inner()).entry(name).or_default() += 1;
    }

    /// How many calls ended each way, by gRPC code.
    pub fn answers(&self) -> BTreeMap<String, usize> {
        self.answers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn record(&self, citizen: usize, event: CitizenEvent) {
        self.events.lock().unwrap_or_else(|p| p.into_inner())[citizen].push(event);
    }

    fn tag(&self) -> u64 {
        self.next_tag.fetch_add(1, Ordering::Relaxed)
    }

    /// The histories so far, one per citizen.
    pub fn histories(&self) -> Vec<Vec<CitizenEvent>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Operations recorded so far, and how many of them were writes the federation
    /// acknowledged.
    pub fn counts(&self) -> (usize, usize) {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let all = events.iter().map(Vec::len).sum();
        let acknowledged = events
            .iter()
            .flatten()
            .filter(|e| matches!(e.outcome, Outcome::Ok(CitizenOutput::Done)))
            .count();
        (all, acknowledged)
    }

    /// When the first acknowledged write invoked at or after `since_ns` completed.
    pub fn first_write_after(&self, since_ns: u64) -> Option<u64> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events
            .iter()
            .flatten()
            .filter(|e| matches!(e.outcome, Outcome::Ok(CitizenOutput::Done)))
            .filter(|e| e.invoked_ns >= since_ns)
            .map(|e| e.completed_ns)
            .min()
    }
}

/// What a client needs to reach every node, as operator (citizen portal) or as service.
#[derive(Clone)]
pub struct Clients {
    operators: Vec<Client>,
    services: Vec<Client>,
}

impl Clients {
    pub async fn new(federation: &LocalFederation) -> anyhow::Result<Clients> {
        let mut operators = Vec::new();
        let mut services = Vec::new();
        for position in 0..federation.nodes.len() {
            operators.push(federation.client(position).await?);
            services.push(federation.service_client(position, SERVICE).await?);
        }
        Ok(Clients { operators, services })
    }
}

/// Registers and certifies the service, through the node at `position`.
pub async fn register_service(client: &mut Client) -> anyhow::Result<()> {
    let declarations = vec![pb::PurposeDeclaration {
        purpose: PURPOSE.to_owned(),
        attributes: vec![ATTRIBUTE.to_owned()],
    }];
    let register = pb::RegisterServiceRequest {
        service_id: SERVICE.to_owned(),
        organisation: "Fault Runner".to_owned(),
        declarations: declarations.clone(),
    };
    client.register_service(register).await?;
    let certify = pb::CertifyServiceRequest {
        service_id: SERVICE.to_owned(),
        declarations,
        valid_until_unix_ms: roamhub_node::node::now_unix_ms() + 30 * 86_400_000,
    };
    client.certify_service(certify).await?;
    Ok(())
}

/// Registers `count` citizens homed in `cities`, each with a mobility pointer.
pub async fn register_citizens(
    client: &mut Client,
    run: usize,
    count: usize,
    cities: &[String],
) -> anyhow::Result<Vec<Citizen>> {
    let mut citizens = Vec::new();
    for i in 0..count {
        let key = CitizenKey::generate()?;
        let account = format!("F-{run}-{i}");
        let home_city = cities[i % cities.len()].clone();
        let identifier =
            pb::Identifier { scheme: "city-account".to_owned(), value: account.clone() };
        let request = key.registration(client, &home_city, vec![identifier]).await?;
        let id = client.register_citizen(request).await?.into_inner().citizen_id;
        let uri = format!("https://pods.example/{run}/{i}/start");
        let location = set_location_request(&id, &uri);
        let location = key.signed(client, location).await?;
        client.set_location(location).await?;
        let initial = CitizenState {
            home_city,
            locations: BTreeMap::from([(CATEGORY.to_owned(), uri)]),
            consents: BTreeMap::new(),
        };
        citizens.push(Citizen { id, account, key, initial });
    }
    Ok(citizens)
}

fn set_location_request(citizen_id: &str, uri: &str) -> pb::SetLocationRequest {
    pb::SetLocationRequest {
        citizen_id: citizen_id.to_owned(),
        category: CATEGORY.to_owned(),
        uri: uri.to_owned(),
        provider: "Fault Pods".to_owned(),
        signature: None,
    }
}

/// The model's view of what a read of the citizen returned.
fn observed(citizen: &pb::Citizen) -> CitizenState {
    let locations = citizen
        .locations
        .iter()
        .filter_map(|l| l.current.as_ref().map(|p| (l.category.clone(), p.uri.clone())))
        .collect();
    let consents = citizen
        .consents
        .iter()
        .map(|c| (c.valid_until_unix_ms, c.status == pb::ConsentStatus::Given as i32))
        .collect();
    CitizenState { home_city: citizen.home_city.clone(), locations, consents }
}

/// Whether the federation said it did not apply a write (or could not serve a read): the
/// operation has no effect. Anything else may have been applied.
fn definitely_failed(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::NotFound
            | Code::AlreadyExists
            | Code::Unauthenticated
            | Code::ResourceExhausted
    )
}

/// A writer: one citizen's signed operations, one at a time, through random nodes.
pub struct Writer {
    pub process: u64,
    pub citizen: usize,
    pub cities: Vec<String>,
    pub rng: Rng,
}

/// A write as sent: when it was invoked, how it ended, and the answer when there was one.
type Sent<T> = (u64, Outcome<CitizenOutput>, Option<T>);

/// Signs `request` as the citizen's next operation and sends it with `send`, bounded by
/// `OPERATION_TIMEOUT` each. `None` when the node would not tell the sequence number in
/// time, so that the write was never sent and has no place in the history.
async fn signed_write<R, T, Fut>(
    client: &mut Client,
    citizen: &Citizen,
    recorder: &Recorder,
    request: R,
    send: impl FnOnce(Client, R) -> Fut,
) -> Option<Sent<T>>
where
    R: CitizenRequest,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let signed = tokio::time::timeout(OPERATION_TIMEOUT, citizen.key.signed(client, request));
    let Ok(Ok(request)) = signed.await else { return None };
    let invoked_ns = recorder.now_ns();
    let answer = tokio::time::timeout(OPERATION_TIMEOUT, send(client.clone(), request)).await;
    recorder.answered(&answer);
    Some(match answer {
        Ok(Ok(reply)) => (invoked_ns, Outcome::Ok(CitizenOutput::Done), Some(reply.into_inner())),
        Ok(Err(status)) if definitely_failed(status.code()) => (invoked_ns, Outcome::Failed, None),
        _ => (invoked_ns, Outcome::Unknown, None),
    })
}

impl Writer {
    pub async fn run(
        mut self,
        citizen: Arc<Citizen>,
        mut clients: Clients,
        recorder: Arc<Recorder>,
        stop: Arc<AtomicBool>,
    ) {
        // Consents this writer granted and knows the id of, by tag, still given.
        let mut given: BTreeMap<u64, String> = BTreeMap::new();
        let mut count = 0u64;
        while !stop.load(Ordering::Relaxed) {
            count += 1;
            let node = self.rng.below(clients.operators.len());
            let client = &mut clients.operators[node];
            let id = citizen.id.clone();
            let choice = self.rng.below(4);
            let ended = match choice {
                0 if given.len() < GIVEN_CONSENTS_MAX => {
                    let tag = recorder.tag();
                    let request = pb::GrantConsentRequest {
                        citizen_id: id,
                        service_id: SERVICE.to_owned(),
                        purpose: PURPOSE.to_owned(),
                        attributes: vec![ATTRIBUTE.to_owned()],
                        legal_basis: pb::LegalBasis::Consent.into(),
                        valid_from_unix_ms: 0,
                        valid_until_unix_ms: tag,
                        signature: None,
                        identity_scheme: "city-account".to_owned(),
                    };
                    let send = |mut c: Client, r| async move { c.grant_consent(r).await };
                    let sent = signed_write(client, &citizen, &recorder, request, send).await;
                    sent.map(|(invoked_ns, outcome, consent)| {
                        if let Some(consent) = consent {
                            given.insert(tag, consent.consent_id);
                        }
                        (CitizenInput::Grant { tag }, invoked_ns, outcome)
                    })
                }
                0 | 1 if !given.is_empty() => {
                    let tag = *given.keys().nth(self.rng.below(given.len())).expect("not empty");
                    let consent_id = given.remove(&tag).expect("present");
                    let request =
                        pb::WithdrawConsentRequest { citizen_id: id, consent_id, signature: None };
                    let send = |mut c: Client, r| async move { c.withdraw_consent(r).await };
                    let sent = signed_write(client, &citizen, &recorder, request, send).await;
                    sent.map(|(at, outcome, _)| (CitizenInput::Withdraw { tag }, at, outcome))
                }
                2 => {
                    let city = self.cities[self.rng.below(self.cities.len())].clone();
                    let to_city = city.clone();
                    let request = pb::MoveHomeRequest { citizen_id: id, to_city, signature: None };
                    let send = |mut c: Client, r| async move { c.move_home(r).await };
                    let sent = signed_write(client, &citizen, &recorder, request, send).await;
                    sent.map(|(at, outcome, _)| (CitizenInput::MoveHome { city }, at, outcome))
                }
                _ => {
                    let uri = format!("https://pods.example/w{}/{count}", self.process);
                    let request = set_location_request(&id, &uri);
                    let send = |mut c: Client, r| async move { c.set_location(r).await };
                    let sent = signed_write(client, &citizen, &recorder, request, send).await;
                    let input = CitizenInput::SetLocation { category: CATEGORY.to_owned(), uri };
                    sent.map(|(at, outcome, _)| (input, at, outcome))
                }
            };
            let Some((input, invoked_ns, outcome)) = ended else {
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            };
            let failed = !matches!(outcome, Outcome::Ok(_));
            let completed_ns = recorder.now_ns();
            let event = Event { process: self.process, invoked_ns, completed_ns, input, outcome };
            recorder.record(self.citizen, event);
            if failed {
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
}

/// A reader: reads and resolutions of random citizens at random nodes.
pub struct Reader {
    pub process: u64,
    pub rng: Rng,
}

impl Reader {
    pub async fn run(
        mut self,
        citizens: Arc<Vec<Arc<Citizen>>>,
        mut clients: Clients,
        recorder: Arc<Recorder>,
        stop: Arc<AtomicBool>,
    ) {
        while !stop.load(Ordering::Relaxed) {
            let who = self.rng.below(citizens.len());
            let node = self.rng.below(clients.operators.len());
            let event = match self.rng.below(2) {
                0 => {
                    read(&mut clients.operators[node], &citizens[who], self.process, &recorder)
                        .await
                }
                _ => {
                    resolve(&mut clients.services[node], &citizens[who], self.process, &recorder)
                        .await
                }
            };
            let failed = !matches!(event.outcome, Outcome::Ok(_));
            recorder.record(who, event);
            if failed {
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
}

/// Reads a citizen, linearizably, and records what it saw.
pub async fn read(
    client: &mut Client,
    citizen: &Citizen,
    process: u64,
    recorder: &Recorder,
) -> CitizenEvent {
    let invoked_ns = recorder.now_ns();
    let request = pb::GetCitizenRequest { citizen_id: citizen.id.clone() };
    let answer = tokio::time::timeout(OPERATION_TIMEOUT, client.get_citizen(request)).await;
    recorder.answered(&answer);
    let outcome = match answer {
        Ok(Ok(seen)) => Outcome::Ok(CitizenOutput::Read(observed(seen.get_ref()))),
        // A read changes nothing: one without an answer is left out of the history.
        _ => Outcome::Failed,
    };
    Event {
        process,
        invoked_ns,
        completed_ns: recorder.now_ns(),
        input: CitizenInput::Read,
        outcome,
    }
}

async fn resolve(
    client: &mut Client,
    citizen: &Citizen,
    process: u64,
    recorder: &Recorder,
) -> CitizenEvent {
    let invoked_ns = recorder.now_ns();
    let request = pb::ResolveRequest {
        identifier: Some(pb::Identifier {
            scheme: "city-account".to_owned(),
            value: citizen.account.clone(),
        }),
        service_id: SERVICE.to_owned(),
        purpose: PURPOSE.to_owned(),
        attributes: Vec::new(),
    };
    let answer = tokio::time::timeout(OPERATION_TIMEOUT, client.resolve(request)).await;
    recorder.answered(&answer);
    let outcome = match answer {
        Ok(Ok(resolved)) => Outcome::Ok(CitizenOutput::Resolved {
            released: !resolved.get_ref().pointers.is_empty(),
        }),
        Ok(Err(status)) if status.code() == Code::PermissionDenied => {
            Outcome::Ok(CitizenOutput::Resolved { released: false })
        }
        // Its access record may or may not be written, but the model's state is the same.
        _ => Outcome::Failed,
    };
    Event {
        process,
        invoked_ns,
        completed_ns: recorder.now_ns(),
        input: CitizenInput::Resolve,
        outcome,
    }
}
