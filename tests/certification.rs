//! Certified services at real nodes: only a certified service resolves, and a
//! certification's end or withdrawal stops resolution at every city at once, because each
//! resolution is decided by the state machine at the time stamped in its own command.

mod support;

use std::time::Duration;

use roamhub::client::Client;
use roamhub_proto::v1 as pb;
use support::*;
use tonic::Code;

fn resolve_request() -> pb::ResolveRequest {
    pb::ResolveRequest {
        identifier: Some(identifier("EHV-500")),
        service_id: "ride.share".to_owned(),
        purpose: "trip-planning".to_owned(),
        attributes: Vec::new(),
    }
}

/// A federation with an uncertified `ride.share` and a citizen who consented to it.
async fn consented(test: &TestFederation) -> (Client, TestCitizen) {
    let mut client = test.federation.client(0).await.unwrap();
    register_uncertified_service(&mut client).await;
    let alice = register_citizen(&mut client, "nl-eindhoven", "EHV-500").await;
    set_location(&mut client, &alice, "mobility", "https://pods.example/c").await.unwrap();
    grant(&mut client, &alice, "ride.share", &["mobility.trips"]).await;
    (client, alice)
}

/// Asserts that every city refuses the service with PermissionDenied saying `why`.
async fn refused_everywhere(test: &TestFederation, why: &str) {
    for position in 0..3 {
        let mut client = test.federation.service_client(position, "ride.share").await.unwrap();
        let refused = client.resolve(resolve_request()).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "node {position}: {refused:?}");
        assert!(refused.message().contains(why), "node {position}: {}", refused.message());
        assert_eq!(refused.metadata().get("roamhub-field").unwrap(), "service_id");
    }
}

async fn released_everywhere(test: &TestFederation) {
    for position in 0..3 {
        let mut client = test.federation.service_client(position, "ride.share").await.unwrap();
        let released = client.resolve(resolve_request()).await.unwrap().into_inner();
        assert_eq!(released.pointers.len(), 1, "node {position}");
    }
}

async fn access_log(client: &mut Client, citizen_id: &str) -> Vec<pb::AccessRecord> {
    roamhub::client::whole_access_log(client, citizen_id).await.unwrap()
}

/// An uncertified service is refused with an access record; once an operator certifies it,
/// every city serves it; once another city's operator withdraws the certification, the next
/// resolution is refused at every city. Only an operator certificate certifies, and only
/// for what the service declared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_certified_service_resolves_until_its_certification_is_withdrawn() {
    let test = start_ready(&[]).await;
    let (mut client, alice) = consented(&test).await;

    refused_everywhere(&test, "the service is not certified").await;
    let log = access_log(&mut client, &alice.id).await;
    assert_eq!(log.len(), 3, "each refusal left an access record");
    assert!(log.iter().all(|r| r.reason == "the service is not certified"));

    let until = roamhub_node::node::now_unix_ms() + CERTIFIED_FOR_MS;
    let mut helsinki = test.federation.client(1).await.unwrap();
    let beyond = certify(&mut helsinki, "ride.share", &["health.records"], until).await;
    let beyond = beyond.unwrap_err();
    assert_eq!(beyond.code(), Code::FailedPrecondition, "{}", beyond.message());
    assert_eq!(beyond.metadata().get("roamhub-field").unwrap(), "declarations.attributes");
    let past = certify(&mut helsinki, "ride.share", &["mobility.trips"], 1).await.unwrap_err();
    assert_eq!(past.code(), Code::InvalidArgument, "{}", past.message());
    let mut ride_share = test.federation.service_client(1, "ride.share").await.unwrap();
    let own = certify(&mut ride_share, "ride.share", &["mobility.trips"], until).await;
    assert_eq!(own.unwrap_err().code(), Code::PermissionDenied, "a service certifies itself");

    let certified = certify(&mut helsinki, "ride.share", &["mobility.trips"], until).await;
    let certification = certified.unwrap().certification.unwrap();
    assert_eq!(
        (certification.by_city.as_str(), certification.status.as_str()),
        ("fi-helsinki", "certified")
    );
    released_everywhere(&test).await;

    let mut valencia = test.federation.client(2).await.unwrap();
    let withdrawn = decertify(&mut valencia, "ride.share").await.unwrap().certification.unwrap();
    assert_eq!(withdrawn.status, "withdrawn");
    assert_eq!(withdrawn.withdrawn_by_city, "es-valencia");
    refused_everywhere(&test, "the service's certification was withdrawn").await;
    let twice = decertify(&mut valencia, "ride.share").await.unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);

    let log = access_log(&mut client, &alice.id).await;
    let released = log.iter().filter(|r| r.outcome == pb::AccessOutcome::Released as i32);
    assert_eq!((log.len(), released.count()), (9, 3));
    roamhub::client::verify_access_chain(&log).unwrap();
}

/// A certification valid for two seconds serves at every city, then stops at every city
/// once its end has passed, with no command in between; each city shows it as expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certification_stops_resolving_at_every_city() {
    let test = start_ready(&[]).await;
    let (mut client, alice) = consented(&test).await;
    let until = roamhub_node::node::now_unix_ms() + 2_000;
    certify(&mut client, "ride.share", &["mobility.trips"], until).await.unwrap();
    released_everywhere(&test).await;

    let left = until.saturating_sub(roamhub_node::node::now_unix_ms());
    tokio::time::sleep(Duration::from_millis(left + 200)).await;
    refused_everywhere(&test, "the service's certification expired").await;

    for position in 0..3 {
        let mut client = test.federation.client(position).await.unwrap();
        let services = client.list_services(pb::ListServicesRequest {}).await.unwrap();
        let certification = services.into_inner().services[0].certification.clone().unwrap();
        assert_eq!(certification.status, "expired", "node {position}");
    }
    let log = access_log(&mut client, &alice.id).await;
    assert_eq!(log.len(), 6, "three released, three refused");
}
