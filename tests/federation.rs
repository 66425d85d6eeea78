//! Multi-node tests: three real `roamhub serve` processes on loopback, driven through the
//! public gRPC API, killed with SIGKILL and restarted from their data directories.

mod support;

use std::time::{Duration, Instant};

use roamhub::keystore::{CitizenKey, CitizenRequest};
use roamhub_proto::v1 as pb;
use support::*;
use tonic::Code;

/// A write sent to a follower reaches the leader, and every node then reads it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_follower_is_read_back_from_every_node() {
    let test = start_ready(&[]).await;
    let federation = &test.federation;
    let leader = federation.leader().await.expect("a leader");
    let follower = (leader + 1) % 3;

    let mut client = federation.client(follower).await.unwrap();
    let alice = register_citizen(&mut client, "fi-helsinki", "HEL-1").await;
    set_location(&mut client, &alice, "mobility", "https://pods.example/a/mobility").await.unwrap();

    for position in 0..3 {
        let mut client = federation.client(position).await.unwrap();
        let read = citizen(&mut client, &alice.id).await;
        assert_eq!(read.home_city, "fi-helsinki", "node {position}");
        assert_eq!(read.locations.len(), 1, "node {position}");
        assert_eq!(
            read.locations[0].current.as_ref().unwrap().uri,
            "https://pods.example/a/mobility"
        );
    }
}

/// Killing the leader with SIGKILL: a new leader serves within seconds, no acknowledged
/// write is lost, and the killed node catches up when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_write() {
    let mut test = start_ready(&[]).await;
    let mut client = test.federation.client(0).await.unwrap();
    let alice = register_citizen(&mut client, "nl-eindhoven", "EHV-1").await;

    let mut acknowledged = Vec::new();
    for n in 0..20 {
        let category = format!("cat-{n}");
        let uri = format!("https://pods.example/before/{n}");
        let deadline = Instant::now() + Duration::from_secs(10);
        set_location_retrying(&test.federation, &alice, &category, &uri, deadline).await.unwrap();
        acknowledged.push((category, uri));
    }

    let leader = test.federation.leader().await.expect("a leader");
    test.federation.kill(leader);
    let killed_at = Instant::now();

    let deadline = killed_at + Duration::from_secs(15);
    let after = "https://pods.example/after";
    set_location_retrying(&test.federation, &alice, "after", after, deadline).await.unwrap();
    let failover = killed_at.elapsed();
    println!("a write was acknowledged {failover:?} after the leader was killed");
    assert!(failover < Duration::from_secs(15));
    acknowledged.push(("after".to_owned(), "https://pods.example/after".to_owned()));

    test.federation.restart(leader).unwrap();
    test.federation.wait_ready(READY_TIMEOUT).await.unwrap();
    for position in 0..3 {
        let mut client = test.federation.client(position).await.unwrap();
        let read = citizen(&mut client, &alice.id).await;
        for (category, uri) in &acknowledged {
            let found = read.locations.iter().find(|l| &l.category == category);
            let found_uri = found.and_then(|l| l.current.as_ref()).map(|p| p.uri.as_str());
            assert_eq!(found_uri, Some(uri.as_str()), "node {position} lost {category}");
        }
    }
    let new_leader = test.federation.leader().await.expect("a leader after the restart");
    let mut new_leader_client = test.federation.client(new_leader).await.unwrap();
    let applied = status(&mut new_leader_client).await.last_applied_index;
    wait_applied(&test.federation, leader, applied, Duration::from_secs(10)).await;
}

/// Every node killed at once and restarted from its data directory has its state intact.
/// The leader usually comes back as leader of its old term; its reads must still cover the
/// last write it acknowledged, which holds only because the committed index is fsynced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_nodes_restart_with_their_state_intact() {
    let mut test = start_ready(&[]).await;
    let mut client = test.federation.client(1).await.unwrap();
    register_service(&mut client).await;
    let alice = register_citizen(&mut client, "es-valencia", "VLC-1").await;
    set_location(&mut client, &alice, "mobility", "https://pods.example/v").await.unwrap();
    let before = citizen(&mut client, &alice.id).await;

    for position in 0..3 {
        test.federation.kill(position);
    }
    for position in 0..3 {
        test.federation.restart(position).unwrap();
    }
    test.federation.wait_ready(READY_TIMEOUT).await.unwrap();

    for position in 0..3 {
        let mut client = test.federation.client(position).await.unwrap();
        assert_eq!(citizen(&mut client, &alice.id).await, before, "node {position}");
        let services = client.list_services(pb::ListServicesRequest {}).await.unwrap();
        assert_eq!(services.into_inner().services.len(), 1, "node {position}");
    }
    assert_same_state(&test).await;
}

/// Once every node has applied the same log, every node answers the same state digest.
async fn assert_same_state(test: &TestFederation) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut digests = Vec::new();
        for position in 0..3 {
            let mut client = test.federation.client(position).await.unwrap();
            let digest = client.state_digest(pb::StateDigestRequest {}).await.unwrap();
            digests.push(digest.into_inner());
        }
        if digests.iter().all(|d| d.applied_index == digests[0].applied_index) {
            assert_eq!(digests[0].digest.len(), 32);
            assert!(digests.iter().all(|d| d.digest == digests[0].digest), "{digests:?}");
            return;
        }
        assert!(Instant::now() < deadline, "the nodes did not apply the same log: {digests:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A node that was down while the log was compacted catches up from a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_node_catches_up_from_a_snapshot() {
    let snapshot_policy = ["--snapshot-every-entries", "20", "--entries-kept-after-snapshot", "2"];
    let mut test = start_ready(&snapshot_policy).await;
    let lagging = (test.federation.leader().await.expect("a leader") + 1) % 3;
    test.federation.kill(lagging);

    let live = (lagging + 1) % 3;
    let mut client = test.federation.client(live).await.unwrap();
    let alice = register_citizen(&mut client, "nl-eindhoven", "EHV-9").await;
    for n in 0..60 {
        let uri = format!("https://p.example/{n}");
        set_location(&mut client, &alice, &format!("cat-{n}"), &uri).await.unwrap();
    }
    let applied = status(&mut client).await.last_applied_index;

    test.federation.restart(lagging).unwrap();
    wait_applied(&test.federation, lagging, applied, Duration::from_secs(20)).await;

    let log_path = test.federation.root().join(format!("node-{}.log", lagging + 1));
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(log.contains("snapshot installed"), "the lagging node caught up without a snapshot");
    let mut lagging_client = test.federation.client(lagging).await.unwrap();
    assert_eq!(citizen(&mut lagging_client, &alice.id).await.locations.len(), 60);
}

/// Malformed or impossible requests get the matching status naming the field, and change
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_status_and_changes_nothing() {
    let test = start_ready(&[]).await;
    let mut client = test.federation.client(2).await.unwrap();
    register_service(&mut client).await;
    let alice = register_citizen(&mut client, "nl-eindhoven", "EHV-7").await;
    let citizen_id = alice.id.clone();
    let before = citizen(&mut client, &citizen_id).await;

    let request = |service: &str, purpose: &str, attributes: &[&str]| pb::GrantConsentRequest {
        citizen_id: citizen_id.clone(),
        service_id: service.to_owned(),
        purpose: purpose.to_owned(),
        attributes: attributes.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    };
    let cases = [
        (request("ride.share", "", &["mobility.trips"]), Code::InvalidArgument, "purpose"),
        (
            request("ride.share", "trip-planning", &["mobility"]),
            Code::InvalidArgument,
            "attributes",
        ),
        (request("no.such", "trip-planning", &["mobility.trips"]), Code::NotFound, "service_id"),
        (
            request("ride.share", "marketing", &["mobility.trips"]),
            Code::FailedPrecondition,
            "purpose",
        ),
        (
            request("ride.share", "trip-planning", &["health.records"]),
            Code::FailedPrecondition,
            "attributes",
        ),
    ];
    for (request, code, field) in cases {
        let request = signed_if_well_formed(&mut client, &alice, request).await;
        let status = client.grant_consent(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{}", status.message());
        assert_eq!(status.metadata().get("roamhub-field").unwrap(), field, "{}", status.message());
        assert!(status.message().contains(field), "{}", status.message());
    }

    let malformed = pb::GetCitizenRequest { citizen_id: "alice".to_owned() };
    assert_eq!(client.get_citizen(malformed).await.unwrap_err().code(), Code::InvalidArgument);
    let unknown = pb::GetCitizenRequest { citizen_id: format!("c-{}", "0".repeat(32)) };
    assert_eq!(client.get_citizen(unknown).await.unwrap_err().code(), Code::NotFound);
    let no_city = pb::MoveHomeRequest {
        citizen_id: citizen_id.clone(),
        to_city: "de-berlin".to_owned(),
        signature: None,
    };
    let no_city = alice.key.signed(&mut client, no_city).await.unwrap();
    assert_eq!(client.move_home(no_city).await.unwrap_err().code(), Code::NotFound);
    let bad_uri = set_location(&mut client, &alice, "mobility", "not a uri").await;
    assert_eq!(bad_uri.unwrap_err().code(), Code::InvalidArgument);

    let unconsented_again = || pb::ResolveRequest {
        identifier: Some(identifier("EHV-7")),
        service_id: "ride.share".to_owned(),
        purpose: "trip-planning".to_owned(),
        attributes: Vec::new(),
    };
    let mut ride = test.federation.service_client(1, "ride.share").await.unwrap();
    let refused = ride.resolve(unconsented_again()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{}", refused.message());
    let stranger =
        pb::ResolveRequest { identifier: Some(identifier("nobody")), ..unconsented_again() };
    let status = ride.resolve(stranger).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.metadata().get("roamhub-field").unwrap(), "identifier");
    let nameless = pb::ResolveRequest { service_id: String::new(), ..unconsented_again() };
    assert_eq!(ride.resolve(nameless).await.unwrap_err().code(), Code::InvalidArgument);

    assert_eq!(citizen(&mut client, &citizen_id).await, before);
    let log = pb::ReadAccessLogRequest { citizen_id: citizen_id.clone(), ..Default::default() };
    let records = client.read_access_log(log).await.unwrap().into_inner().records;
    assert_eq!(records.len(), 1, "the refused resolution left one access record");
    assert_eq!(records[0].outcome, pb::AccessOutcome::Refused as i32);
}

/// Signs a request when it names a well-formed operation; a malformed one goes unsigned, as
/// the node refuses it before looking at any signature.
async fn signed_if_well_formed<R: CitizenRequest>(
    client: &mut roamhub::client::Client,
    citizen: &TestCitizen,
    request: R,
) -> R {
    match request.op(client).await {
        Ok(_) => citizen.key.signed(client, request).await.unwrap(),
        Err(_) => request,
    }
}

/// Unsigned, forged, replayed and reordered citizen operations are refused with a clear
/// status, and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citizen_operations_need_the_citizens_own_signature() {
    let test = start_ready(&[]).await;
    let mut client = test.federation.client(1).await.unwrap();
    let alice = register_citizen(&mut client, "fi-helsinki", "HEL-5").await;
    let before = citizen(&mut client, &alice.id).await;

    let unsigned = location(&alice.id, "mobility", "https://evil.example");
    let status = client.set_location(unsigned).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    assert_eq!(status.metadata().get("roamhub-field").unwrap(), "signature");

    let mallory = CitizenKey::generate().unwrap();
    let mut forged = mallory
        .signed(&mut client, location(&alice.id, "mobility", "https://evil.example"))
        .await
        .unwrap();
    forged.signature.as_mut().unwrap().key_id = alice.key.public_key().key_id().to_string();
    let status = client.set_location(forged).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{}", status.message());

    let mut tampered = alice
        .key
        .signed(&mut client, location(&alice.id, "mobility", "https://pod.example"))
        .await
        .unwrap();
    tampered.uri = "https://evil.example".to_owned();
    assert_eq!(client.set_location(tampered).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(citizen(&mut client, &alice.id).await, before, "refusals change nothing");

    let genuine = alice
        .key
        .signed(&mut client, location(&alice.id, "mobility", "https://pod.example"))
        .await
        .unwrap();
    client.set_location(genuine.clone()).await.unwrap();
    let replayed = client.set_location(genuine).await.unwrap_err();
    assert_eq!(replayed.code(), Code::PermissionDenied);
    assert_eq!(replayed.metadata().get("roamhub-field").unwrap(), "sequence");

    let next = citizen(&mut client, &alice.id).await.next_sequence;
    let later = location(&alice.id, "mobility", "https://pod.example/later");
    let op = later.op(&mut client).await.unwrap();
    let ahead = pb::SetLocationRequest {
        signature: Some(alice.key.sign_as(&alice.id, next + 1, &op).unwrap()),
        ..later
    };
    let reordered = client.set_location(ahead).await.unwrap_err();
    assert_eq!(reordered.metadata().get("roamhub-field").unwrap(), "sequence");
}

/// Each service knows a citizen by its own pseudonym: the same from every city, different
/// from any other service's, and never the federation id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_see_pairwise_pseudonyms() {
    let test = start_ready(&[]).await;
    let mut client = test.federation.client(0).await.unwrap();
    register_service(&mut client).await;
    let bikes = pb::RegisterServiceRequest {
        service_id: "bike.share".to_owned(),
        organisation: "Bike Share".to_owned(),
        declarations: vec![pb::PurposeDeclaration {
            purpose: "trip-planning".to_owned(),
            attributes: vec!["mobility.trips".to_owned()],
        }],
    };
    client.register_service(bikes).await.unwrap();
    let until = roamhub_node::node::now_unix_ms() + CERTIFIED_FOR_MS;
    certify(&mut client, "bike.share", &["mobility.trips"], until).await.unwrap();
    let alice = register_citizen(&mut client, "nl-eindhoven", "EHV-42").await;
    set_location(&mut client, &alice, "mobility", "https://pods.example/a").await.unwrap();

    let mut pseudonyms = Vec::new();
    for (service, position) in [("ride.share", 0), ("ride.share", 2), ("bike.share", 1)] {
        grant(&mut client, &alice, service, &["mobility.trips"]).await;
        let resolve = pb::ResolveRequest {
            identifier: Some(identifier("EHV-42")),
            service_id: service.to_owned(),
            purpose: "trip-planning".to_owned(),
            attributes: Vec::new(),
        };
        let mut asked = test.federation.service_client(position, service).await.unwrap();
        pseudonyms.push(asked.resolve(resolve).await.unwrap().into_inner().citizen_pseudonym);
    }

    assert_eq!(pseudonyms[0], pseudonyms[1], "one service, two cities");
    assert_ne!(pseudonyms[0], pseudonyms[2], "two services");
    assert!(pseudonyms.iter().all(|p| !p.contains(&alice.id[2..])));
}

/// A citizen's access log reads the same from any city, newest first, in pages, filtered by
/// service and purpose, and its hash chain verifies end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_pages_filters_and_verifies() {
    let test = start_ready(&[]).await;
    let mut client = test.federation.client(0).await.unwrap();
    register_service(&mut client).await;
    let alice = register_citizen(&mut client, "nl-eindhoven", "EHV-77").await;
    for (service, count) in [("ride.share", 3), ("no.such", 2)] {
        let mut client = test.federation.service_client(0, service).await.unwrap();
        for _ in 0..count {
            let resolve = pb::ResolveRequest {
                identifier: Some(identifier("EHV-77")),
                service_id: service.to_owned(),
                purpose: "trip-planning".to_owned(),
                attributes: Vec::new(),
            };
            client.resolve(resolve).await.unwrap_err();
        }
    }

    let mut other_city = test.federation.client(2).await.unwrap();
    let page = |before_record, service_id: &str| pb::ReadAccessLogRequest {
        citizen_id: alice.id.clone(),
        limit: 2,
        before_record,
        service_id: service_id.to_owned(),
        purpose: String::new(),
    };
    let first = other_city.read_access_log(page(0, "")).await.unwrap().into_inner();
    let numbers: Vec<u64> = first.records.iter().map(|r| r.record).collect();
    assert_eq!(numbers, [4, 3]);
    let second = other_city.read_access_log(page(first.next_before_record, "")).await.unwrap();
    assert_eq!(second.get_ref().records.iter().map(|r| r.record).collect::<Vec<_>>(), [2, 1]);
    let rides = other_city.read_access_log(page(0, "ride.share")).await.unwrap().into_inner();
    assert!(rides.records.iter().all(|r| r.service_id == "ride.share"));

    let whole = roamhub::client::whole_access_log(&mut other_city, &alice.id).await.unwrap();
    assert_eq!(whole.len(), 5);
    roamhub::client::verify_access_chain(&whole).unwrap();
    let mut tampered = whole.clone();
    tampered[2].via_city = "fi-helsinki".to_owned();
    assert!(roamhub::client::verify_access_chain(&tampered).is_err());
}

/// The next consent of a watch, within ten seconds.
async fn next_event(events: &mut tonic::Streaming<pb::ServiceConsent>) -> pb::ServiceConsent {
    let next = tokio::time::timeout(Duration::from_secs(10), events.message());
    next.await.expect("an event in time").unwrap().expect("the stream goes on")
}

/// A service watching its consents at one city learns of a grant and of a withdrawal made
/// at other cities, acknowledges the withdrawal, and the citizen sees the acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watching_service_sees_and_acknowledges_a_withdrawal() {
    let test = start_ready(&[]).await;
    let mut client = test.federation.client(0).await.unwrap();
    register_service(&mut client).await;
    let alice = register_citizen(&mut client, "nl-eindhoven", "EHV-55").await;

    let mut service = test.federation.service_client(2, "ride.share").await.unwrap();
    let watch = pb::WatchConsentsRequest { service_id: "ride.share".to_owned() };
    let mut events = service.watch_consents(watch).await.unwrap().into_inner();

    let consent = grant(&mut client, &alice, "ride.share", &["mobility.trips"]).await;
    let granted = next_event(&mut events).await;
    assert_eq!(granted.consent_id, consent.consent_id);
    assert_eq!(granted.status, pb::ConsentStatus::Given as i32);
    assert!(granted.citizen_pseudonym.starts_with("p-"));

    let mut elsewhere = test.federation.client(1).await.unwrap();
    let withdraw = pb::WithdrawConsentRequest {
        citizen_id: alice.id.clone(),
        consent_id: consent.consent_id.clone(),
        signature: None,
    };
    let withdraw = alice.key.signed(&mut elsewhere, withdraw).await.unwrap();
    elsewhere.withdraw_consent(withdraw).await.unwrap();
    let withdrawn = next_event(&mut events).await;
    assert_eq!(withdrawn.status, pb::ConsentStatus::Withdrawn as i32);

    let ack = pb::AcknowledgeWithdrawalRequest {
        service_id: "ride.share".to_owned(),
        consent_id: consent.consent_id.clone(),
    };
    service.acknowledge_withdrawal(ack.clone()).await.unwrap();
    assert_ne!(next_event(&mut events).await.withdrawal_acknowledged_at_unix_ms, 0);
    let seen = citizen(&mut client, &alice.id).await;
    assert_ne!(seen.consents[0].withdrawal_acknowledged_at_unix_ms, 0);
    let twice = service.acknowledge_withdrawal(ack).await.unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
}

/// Oversized and malformed messages are refused with a clear status and leave the node
/// serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_messages_are_refused() {
    let test = start_ready(&[]).await;
    let mut client = test.federation.client(1).await.unwrap();

    let huge = pb::RegisterServiceRequest {
        service_id: "big.service".to_owned(),
        organisation: "x".repeat(400 * 1024),
        declarations: Vec::new(),
    };
    let status = client.register_service(huge).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{}", status.message());
    assert!(status.message().contains("larger than this node accepts"), "{}", status.message());

    let long_text = pb::RegisterServiceRequest {
        service_id: "long.service".to_owned(),
        organisation: "x".repeat(1000),
        declarations: vec![pb::PurposeDeclaration {
            purpose: "trip-planning".to_owned(),
            attributes: vec!["mobility.trips".to_owned()],
        }],
    };
    let status = client.register_service(long_text).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.metadata().get("roamhub-field").unwrap(), "organisation");

    let operator = test.federation.transport(&test.federation.operator(1)).unwrap();
    let channel = operator.channel(&test.federation.nodes[1].api_addr, Duration::from_secs(5));
    let mut raw = tonic::client::Grpc::new(channel.unwrap());
    raw.ready().await.unwrap();
    let garbage = RawBytes(vec![0xff; 64]);
    let path = "/roamhub.v1.Roamhub/GetCitizen".parse().unwrap();
    let codec = tonic_prost::ProstCodec::<RawBytes, pb::Citizen>::default();
    let status = raw.unary(tonic::Request::new(garbage), path, codec).await.unwrap_err();
    // tonic itself answers undecodable protobuf, with Internal and a decode message.
    assert_eq!(status.code(), Code::Internal, "{}", status.message());
    assert!(status.message().contains("decode"), "{}", status.message());

    let still = support::status(&mut client).await;
    assert!(still.leader_node_id != 0, "the node still serves");
}

/// A message whose encoding is whatever bytes it holds, to send malformed protobuf.
#[derive(Clone, Default, PartialEq)]
struct RawBytes(Vec<u8>);

impl std::fmt::Debug for RawBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawBytes({})", self.0.len())
    }
}

impl prost::Message for RawBytes {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        _tag: u32,
        _wire_type: prost::encoding::WireType,
        _buf: &mut impl prost::bytes::Buf,
        _ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// A grant answers a consent receipt with the Kantara and ISO 27560 fields, signed by the
/// node that took it; a tampered receipt no longer verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_yields_a_receipt_signed_by_the_granting_city() {
    let test = start_ready(&[]).await;
    let mut client = test.federation.client(1).await.unwrap();
    register_service(&mut client).await;
    let alice = register_citizen(&mut client, "fi-helsinki", "HEL-9").await;
    let attributes = ["mobility.trips", "mobility.pass"];
    let consent = grant(&mut client, &alice, "ride.share", &attributes).await;
    let receipt = consent.receipt.expect("a receipt");

    let issuer_key = support::status(&mut client).await.receipt_public_key;
    roamhub::keystore::verify_receipt(&receipt, &issuer_key).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&receipt.receipt_json).unwrap();
    for field in [
        "version",
        "jurisdiction",
        "consent_timestamp_unix_ms",
        "collection_method",
        "consent_receipt_id",
        "pii_principal_id",
        "pii_controllers",
        "services",
        "sensitive",
    ] {
        assert!(body.get(field).is_some(), "the receipt lacks {field}");
    }
    assert_eq!(body["jurisdiction"], "FI");
    assert_eq!(body["legal_basis"], "dpv:Consent");
    assert_eq!(body["services"][0]["purposes"][0]["pii_category"][1], "mobility.pass");

    let mut forged = receipt.clone();
    forged.receipt_json = forged.receipt_json.replace_range_with("mobility.pass", "health.records");
    assert!(roamhub::keystore::verify_receipt(&forged, &issuer_key).is_err());
    let other_city = support::status(&mut test.federation.client(0).await.unwrap()).await;
    assert!(roamhub::keystore::verify_receipt(&receipt, &other_city.receipt_public_key).is_err());
}

/// Byte-string replacement, for tampering with a receipt.
trait ReplaceBytes {
    fn replace_range_with(&self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceBytes for Vec<u8> {
    fn replace_range_with(&self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8_lossy(self).replace(from, to).into_bytes()
    }
}

/// Consent rules hold at real nodes: an expired consent releases nothing, a service cannot
/// resolve for a purpose it did not declare, and a service may know the citizen only by
/// the identity she chose; each refusal leaves an access record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_foreign_purpose_and_unshared_identity_are_refused() {
    let test = start_ready(&[]).await;
    let mut client = test.federation.client(2).await.unwrap();
    register_service(&mut client).await;
    let alice = register_citizen(&mut client, "es-valencia", "VLC-3").await;
    let eidas = pb::AddIdentifierRequest {
        citizen_id: alice.id.clone(),
        identifier: Some(pb::Identifier { scheme: "eidas".to_owned(), value: "ES/3".to_owned() }),
        signature: None,
    };
    let eidas = alice.key.signed(&mut client, eidas).await.unwrap();
    client.add_identifier(eidas).await.unwrap();
    set_location(&mut client, &alice, "mobility", "https://pods.example/v3").await.unwrap();

    let soon = roamhub_node::node::now_unix_ms() + 1500;
    let grant = pb::GrantConsentRequest {
        citizen_id: alice.id.clone(),
        service_id: "ride.share".to_owned(),
        purpose: "trip-planning".to_owned(),
        attributes: vec!["mobility.trips".to_owned()],
        valid_until_unix_ms: soon,
        identity_scheme: "eidas".to_owned(),
        ..Default::default()
    };
    let grant = alice.key.signed(&mut client, grant).await.unwrap();
    client.grant_consent(grant).await.unwrap();

    let ask = |scheme: &str, value: &str, service: &str, purpose: &str| pb::ResolveRequest {
        identifier: Some(pb::Identifier { scheme: scheme.to_owned(), value: value.to_owned() }),
        service_id: service.to_owned(),
        purpose: purpose.to_owned(),
        attributes: Vec::new(),
    };
    let mut ride = test.federation.service_client(2, "ride.share").await.unwrap();
    ride.resolve(ask("eidas", "ES/3", "ride.share", "trip-planning")).await.unwrap();
    let unshared = ride.resolve(ask("city-account", "VLC-3", "ride.share", "trip-planning"));
    let unshared = unshared.await.unwrap_err();
    assert_eq!(unshared.code(), Code::PermissionDenied);
    assert_eq!(unshared.metadata().get("roamhub-field").unwrap(), "identifier");
    let foreign = ride.resolve(ask("eidas", "ES/3", "ride.share", "marketing")).await.unwrap_err();
    assert_eq!(foreign.code(), Code::PermissionDenied, "{}", foreign.message());

    tokio::time::sleep(Duration::from_millis(1600)).await;
    let expired = ride.resolve(ask("eidas", "ES/3", "ride.share", "trip-planning")).await;
    let expired = expired.unwrap_err();
    assert!(expired.message().contains("expired"), "{}", expired.message());

    let log = pb::ReadAccessLogRequest { citizen_id: alice.id.clone(), ..Default::default() };
    let records = client.read_access_log(log).await.unwrap().into_inner().records;
    assert_eq!(records.len(), 4, "every attempt left a record");
}
