//! Shared set-up of the multi-node tests: a three-city federation of real `roamhub serve`
//! processes on loopback, and small helpers that retry through a leader change.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use roamhub::client::Client;
use roamhub::keystore::CitizenKey;
use roamhub::local::{City, LocalFederation};
use roamhub_proto::v1 as pb;
use tempfile::TempDir;

pub const CITIES: [City; 3] = [
    City { city_id: "nl-eindhoven", display_name: "Eindhoven" },
    City { city_id: "fi-helsinki", display_name: "Helsinki" },
    City { city_id: "es-valencia", display_name: "Valencia" },
];

/// How long a fresh federation may take to elect a leader and register its cities.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `register_service` certifies the service for: longer than any test runs.
pub const CERTIFIED_FOR_MS: u64 = 86_400_000;

pub struct TestFederation {
    pub federation: LocalFederation,
    /// Kept so the data directories live as long as the test.
    pub dir: TempDir,
}

/// Starts the three cities, under mutual TLS, with `extra_args`.
pub fn start(extra_args: &[&str]) -> TestFederation {
    let dir = tempfile::Builder::new().prefix("roamhub-test-").tempdir().unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_roamhub"));
    let federation = LocalFederation::start(exe, dir.path(), &CITIES, extra_args).unwrap();
    TestFederation { federation, dir }
}

pub async fn start_ready(extra_args: &[&str]) -> TestFederation {
    let test = start(extra_args);
    test.federation.wait_ready(READY_TIMEOUT).await.unwrap();
    test
}

pub fn identifier(value: &str) -> pb::Identifier {
    pb::Identifier { scheme: "city-account".to_owned(), value: value.to_owned() }
}

/// Trip planning with the two mobility attributes the test services use.
pub fn trip_planning(attributes: &[&str]) -> Vec<pb::PurposeDeclaration> {
    let attributes = attributes.iter().map(|a| a.to_string()).collect();
    vec![pb::PurposeDeclaration { purpose: "trip-planning".to_owned(), attributes }]
}

/// Registers `ride.share` for trip planning, as yet uncertified.
pub async fn register_uncertified_service(client: &mut Client) {
    let request = pb::RegisterServiceRequest {
        service_id: "ride.share".to_owned(),
        organisation: "Ride Share Cooperative".to_owned(),
        declarations: trip_planning(&["mobility.trips", "mobility.pass"]),
    };
    client.register_service(request).await.unwrap();
}

/// Registers `ride.share` for trip planning, and has the operator `client` speaks for
/// certify it for a day.
pub async fn register_service(client: &mut Client) {
    register_uncertified_service(client).await;
    let until = roamhub_node::node::now_unix_ms() + CERTIFIED_FOR_MS;
    certify(client, "ride.share", &["mobility.trips", "mobility.pass"], until).await.unwrap();
}

/// Certifies a service for trip planning with these attributes, as the operator `client`
/// speaks for.
pub async fn certify(
    client: &mut Client,
    service_id: &str,
    attributes: &[&str],
    valid_until_unix_ms: u64,
) -> Result<pb::Service, tonic::Status> {
    let request = pb::CertifyServiceRequest {
        service_id: service_id.to_owned(),
        declarations: trip_planning(attributes),
        valid_until_unix_ms,
    };
    client.certify_service(request).await.map(tonic::Response::into_inner)
}

/// Withdraws a service's certification, as the operator `client` speaks for.
pub async fn decertify(
    client: &mut Client,
    service_id: &str,
) -> Result<pb::Service, tonic::Status> {
    let request = pb::DecertifyServiceRequest { service_id: service_id.to_owned() };
    client.decertify_service(request).await.map(tonic::Response::into_inner)
}

/// A registered citizen and the key their operations are signed with.
pub struct TestCitizen {
    pub id: String,
    pub key: CitizenKey,
}

pub async fn register_citizen(client: &mut Client, home_city: &str, account: &str) -> TestCitizen {
    let key = CitizenKey::generate().unwrap();
    let request = key.registration(client, home_city, vec![identifier(account)]).await.unwrap();
    let id = client.register_citizen(request).await.unwrap().into_inner().citizen_id;
    TestCitizen { id, key }
}

/// Grants `service` the mobility attributes for trip planning, signed by the citizen.
pub async fn grant(
    client: &mut Client,
    citizen: &TestCitizen,
    service: &str,
    attributes: &[&str],
) -> pb::Consent {
    let request = pb::GrantConsentRequest {
        citizen_id: citizen.id.clone(),
        service_id: service.to_owned(),
        purpose: "trip-planning".to_owned(),
        attributes: attributes.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    };
    let request = citizen.key.signed(client, request).await.unwrap();
    client.grant_consent(request).await.unwrap().into_inner()
}

pub fn location(citizen_id: &str, category: &str, uri: &str) -> pb::SetLocationRequest {
    pb::SetLocationRequest {
        citizen_id: citizen_id.to_owned(),
        category: category.to_owned(),
        uri: uri.to_owned(),
        provider: "Example Pods".to_owned(),
        signature: None,
    }
}

/// Sets a location, signed by the citizen.
pub async fn set_location(
    client: &mut Client,
    citizen: &TestCitizen,
    category: &str,
    uri: &str,
) -> Result<pb::DataLocation, tonic::Status> {
    let request = location(&citizen.id, category, uri);
    let request = citizen
        .key
        .signed(client, request)
        .await
        .map_err(|e| tonic::Status::unknown(e.to_string()))?;
    client.set_location(request).await.map(tonic::Response::into_inner)
}

pub async fn citizen(client: &mut Client, citizen_id: &str) -> pb::Citizen {
    let request = pb::GetCitizenRequest { citizen_id: citizen_id.to_owned() };
    client.get_citizen(request).await.unwrap().into_inner()
}

/// Sets a location through any live node, retrying while the federation elects a leader.
/// Each attempt is signed afresh as the citizen's next operation; setting the same pointer
/// twice is a no-op, so a retry of an unknown outcome is safe.
pub async fn set_location_retrying(
    federation: &LocalFederation,
    citizen: &TestCitizen,
    category: &str,
    uri: &str,
    deadline: Instant,
) -> Result<(), String> {
    let mut last_error = String::new();
    while Instant::now() < deadline {
        for position in (0..federation.nodes.len()).filter(|p| federation.is_running(*p)) {
            let Ok(mut client) = federation.client(position).await else { continue };
            match set_location(&mut client, citizen, category, uri).await {
                Ok(_) => return Ok(()),
                Err(status) => last_error = format!("{:?}: {}", status.code(), status.message()),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last_error)
}

pub async fn status(client: &mut Client) -> pb::NodeStatusResponse {
    client.node_status(pb::NodeStatusRequest {}).await.unwrap().into_inner()
}

/// Waits until the node at `position` has applied at least `index`.
pub async fn wait_applied(
    federation: &LocalFederation,
    position: usize,
    index: u64,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut client) = federation.client(position).await
            && let Ok(reply) = client.node_status(pb::NodeStatusRequest {}).await
            && reply.get_ref().last_applied_index >= index
        {
            return;
        }
        assert!(Instant::now() < deadline, "node {position} did not apply index {index} in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
