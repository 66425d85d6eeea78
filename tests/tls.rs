//! Trust between cities at real nodes over mutual TLS: every caller that cannot prove who
//! it is, or asks for what its role does not allow, is refused, changes nothing, and leaves
//! a log line that names the refusal and no personal data. Certificates are replaced and
//! revoked while the nodes run.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::Vote;
use openraft::raft::VoteRequest;
use roamhub::certs::{self, Issued, LOOPBACK_HOSTS, Validity};
use roamhub::client::{Client, connect};
use roamhub_index::{CityId, ServiceId};
use roamhub_node::network::to_message;
use roamhub_node::tls::Tls;
use roamhub_node::{Role, TlsFiles, Transport};
use roamhub_proto::raft::v1::raft_client::RaftClient;
use roamhub_proto::v1 as pb;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

/// How long a node may take to notice changed certificate or CRL files: a few of its
/// polling intervals.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds each raw call of these tests.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A value that must never reach a log line.
const CANARY: &str = "CANARY-7731-citizen-account";

fn city(id: &str) -> CityId {
    CityId::parse("city", id).unwrap()
}

fn service(id: &str) -> Role {
    Role::Service { service_id: ServiceId::parse("service", id).unwrap() }
}

/// The federation's certificate authority folder.
fn ca_dir(test: &TestFederation) -> PathBuf {
    test.federation.tls_dir().expect("the tests run under TLS").to_owned()
}

/// A certificate for `role` from the authority in `ca`, written under `out` so that the
/// federation's own certificates stay as they are.
fn issue(ca: &Path, role: &Role, validity: Validity, out: &Path) -> Issued {
    let hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect();
    certs::issue(ca, role, &hosts, validity, out).unwrap()
}

/// A client transport that trusts the federation's authority and proves itself with
/// `issued`.
fn transport(test: &TestFederation, issued: &Issued) -> Transport {
    let ca = certs::CaPaths::in_dir(&ca_dir(test));
    let files = TlsFiles {
        ca: ca.cert,
        cert: issued.cert.clone(),
        key: issued.key.clone(),
        crl: Some(ca.crl),
    };
    Transport::Tls(Tls::load(files).unwrap())
}

fn api(test: &TestFederation, position: usize) -> String {
    test.federation.nodes[position].api_addr.clone()
}

fn register_request(service_id: &str) -> pb::RegisterServiceRequest {
    pb::RegisterServiceRequest {
        service_id: service_id.to_owned(),
        organisation: "Intruder".to_owned(),
        declarations: trip_planning(&["mobility.trips"]),
    }
}

fn resolve_request(service_id: &str) -> pb::ResolveRequest {
    pb::ResolveRequest {
        identifier: Some(identifier(CANARY)),
        service_id: service_id.to_owned(),
        purpose: "trip-planning".to_owned(),
        attributes: Vec::new(),
    }
}

/// What the federation holds that an intruder could try to change: the registered services
/// and each node's term and last log index.
async fn state(test: &TestFederation) -> (Vec<String>, Vec<(u64, u64)>) {
    let mut client = test.federation.client(0).await.unwrap();
    let services = client.list_services(pb::ListServicesRequest {}).await.unwrap();
    let services = services.into_inner().services.into_iter().map(|s| s.service_id).collect();
    let mut terms = Vec::new();
    for position in 0..3 {
        let status = status(&mut test.federation.client(position).await.unwrap()).await;
        terms.push((status.term, status.last_log_index));
    }
    (services, terms)
}

/// Every node's log, concatenated.
fn node_logs(test: &TestFederation) -> String {
    let mut logs = String::new();
    for node in &test.federation.nodes {
        let path = test.federation.root().join(format!("node-{}.log", node.node_id));
        logs.push_str(&std::fs::read_to_string(path).unwrap_or_default());
    }
    logs
}

/// Waits until the node logs hold `line`, and checks they never hold the canary.
async fn logged(test: &TestFederation, line: &str) {
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        let logs = node_logs(test);
        assert!(!logs.contains(CANARY), "a personal identifier reached a log line");
        if logs.contains(line) {
            return;
        }
        assert!(Instant::now() < deadline, "no log line says {line:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node ended the connection before any request reached the API: the client sees a
/// failed connection (its code depends on when the client noticed), not an answer.
fn assert_refused_at_handshake(status: &tonic::Status) {
    let source = std::error::Error::source(status);
    let transport = source.and_then(|s| s.downcast_ref::<tonic::transport::Error>());
    assert!(transport.is_some(), "expected a failed connection, got {status:?}");
}

/// A TLS client that presents no certificate at all: the node ends the connection before
/// any request is read. A plaintext client gets no further.
async fn speak_without_certificate(test: &TestFederation) {
    let ca = certs::CaPaths::in_dir(&ca_dir(test));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(&ca.cert).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(api(test, 0)).await.unwrap();
    let server = ServerName::try_from("localhost").unwrap();
    // Under TLS 1.3 the client may finish its half of the handshake before the node has
    // looked at the (missing) certificate; the refusal then arrives on the first read.
    if let Ok(mut stream) = connector.connect(server, tcp).await {
        let _ = stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(CALL_TIMEOUT, stream.read(&mut buffer)).await;
        let read = read.expect("the node answers a certificate-less client promptly");
        assert!(matches!(read, Err(_) | Ok(0)), "the node spoke to a client without a certificate");
    }

    let mut plaintext = connect(&api(test, 0), &Transport::Insecure).unwrap();
    let refused = plaintext.register_service(register_request("plain.intruder")).await;
    assert!(refused.is_err(), "a plaintext client was served");
}

/// A client with no certificate, with one from another authority, or with an expired one:
/// each is refused at the handshake, the federation is unchanged, and the refusal is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_a_valid_certificate_are_turned_away() {
    let test = start_ready(&[]).await;
    let before = state(&test).await;
    let out = tempfile::tempdir().unwrap();

    speak_without_certificate(&test).await;

    let rogue_ca = out.path().join("rogue-ca");
    certs::create_ca(&rogue_ca, "Rogue authority", 1).unwrap();
    let eindhoven = Role::Operator { city_id: city("nl-eindhoven") };
    let forged = issue(&rogue_ca, &eindhoven, Validity::days(1), &out.path().join("rogue"));
    let mut forged = connect(&api(&test, 0), &transport(&test, &forged)).unwrap();
    let refused = forged.register_service(register_request("rogue.intruder")).await.unwrap_err();
    assert_refused_at_handshake(&refused);

    let now = time::OffsetDateTime::now_utc();
    let lapsed = Validity {
        not_before: now - time::Duration::days(2),
        not_after: now - time::Duration::days(1),
    };
    let expired = issue(&ca_dir(&test), &eindhoven, lapsed, &out.path().join("expired"));
    let mut expired = connect(&api(&test, 0), &transport(&test, &expired)).unwrap();
    let refused = expired.register_service(register_request("late.intruder")).await.unwrap_err();
    assert_refused_at_handshake(&refused);

    assert_eq!(state(&test).await, before, "a refused caller changed the federation");
    logged(&test, "TLS handshake refused").await;
    let logs = node_logs(&test);
    let refusals: Vec<&str> = logs.lines().filter(|l| l.contains("handshake refused")).collect();
    for reason in ["peer sent no certificates", "UnknownIssuer", "certificate expired"] {
        assert!(logs.contains(reason), "no refusal says {reason:?}: {refusals:#?}");
    }
}

/// A certificate revoked while its holder is connected stops working on the open
/// connection and on new ones, at every node, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused_on_open_and_new_connections() {
    let test = start_ready(&[]).await;
    let out = tempfile::tempdir().unwrap();
    let pids: Vec<_> = (0..3).map(|p| test.federation.pid(p)).collect();
    let valencia = Role::Operator { city_id: city("es-valencia") };
    let issued = issue(&ca_dir(&test), &valencia, Validity::days(1), out.path());
    let transport = transport(&test, &issued);
    let mut open: Vec<Client> =
        (0..3).map(|p| connect(&api(&test, p), &transport).unwrap()).collect();
    for client in &mut open {
        client.list_services(pb::ListServicesRequest {}).await.expect("valid before revocation");
    }

    certs::revoke(&ca_dir(&test), &issued.cert).unwrap();
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    for (position, client) in open.iter_mut().enumerate() {
        loop {
            match client.list_services(pb::ListServicesRequest {}).await {
                Err(status) if status.code() == Code::Unauthenticated => {
                    assert!(status.message().contains("no longer accepted"), "{status:?}");
                    break;
                }
                Err(status) => panic!("node {position} answered {status:?}"),
                Ok(_) => {
                    // The node has not reloaded its revocation list yet.
                    assert!(Instant::now() < deadline, "node {position} kept serving");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    let mut fresh = connect(&api(&test, 1), &transport).unwrap();
    let refused = fresh.list_services(pb::ListServicesRequest {}).await.unwrap_err();
    assert_refused_at_handshake(&refused);
    logged(&test, "the client certificate is no longer accepted").await;
    let pids_after: Vec<_> = (0..3).map(|p| test.federation.pid(p)).collect();
    assert_eq!(pids, pids_after, "no node restarted");
}

/// A node's own certificate is replaced in place and the old one revoked: the node serves
/// the new one to clients and peers without a restart, and writes go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_certificate_is_replaced_without_a_restart() {
    let test = start_ready(&[]).await;
    let pid = test.federation.pid(0);
    let ca = ca_dir(&test);
    let node = Role::Node { city_id: city("nl-eindhoven"), node_id: 1 };
    let current = test.federation.certificate(&node).unwrap().unwrap();
    let old = tempfile::tempdir().unwrap();
    let old_cert = old.path().join("old.pem");
    std::fs::copy(&current.cert, &old_cert).unwrap();

    issue(&ca, &node, Validity::days(1), &ca);
    certs::revoke(&ca, &old_cert).unwrap();
    logged(&test, "certificates reloaded").await;

    // A client that loads the new revocation list accepts only the replaced certificate.
    let operator = test.federation.operator(0);
    let issued = test.federation.certificate(&operator).unwrap().unwrap();
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        let mut client = connect(&api(&test, 0), &transport(&test, &issued)).unwrap();
        match client.register_service(register_request("after.rotation")).await {
            Ok(_) => break,
            Err(status) => {
                assert!(Instant::now() < deadline, "the node kept its old certificate: {status:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let applied = status(&mut test.federation.client(0).await.unwrap()).await.last_applied_index;
    wait_applied(&test.federation, 1, applied, RELOAD_TIMEOUT).await;
    assert_eq!(test.federation.pid(0), pid, "the node was not restarted");
}

/// Certified callers asking for what their role does not allow: a service registering a
/// service, a service resolving in another service's name, an operator resolving. Each is
/// refused with PermissionDenied, changes nothing, and is logged without the identifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_does_only_what_it_may() {
    let test = start_ready(&[]).await;
    let mut operator = test.federation.client(0).await.unwrap();
    register_service(&mut operator).await;
    let before = state(&test).await;

    let mut ride = test.federation.service_client(1, "ride.share").await.unwrap();
    let refused = ride.register_service(register_request("ride.share.two")).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("RegisterService"), "{}", refused.message());

    let mut broker = test.federation.client_as(2, &service("data.broker")).unwrap();
    let refused = broker.resolve(resolve_request("ride.share")).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(refused.metadata().get("roamhub-field").unwrap(), "service_id");

    let refused = operator.resolve(resolve_request("ride.share")).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    let citizen = pb::GetCitizenRequest { citizen_id: "c-00000000000000000000000000000000".into() };
    let refused = ride.get_citizen(citizen).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    assert_eq!(state(&test).await, before, "a refused call changed the federation");
    logged(&test, "call refused").await;
}

/// Sends a Raft vote for `claimed` node at `term` to node `position`, over `transport`.
async fn vote(
    test: &TestFederation,
    transport: &Transport,
    position: usize,
    claimed: u64,
    term: u64,
) -> Result<(), tonic::Status> {
    let raft_addr = &test.federation.nodes[position].raft_addr;
    let channel = transport.channel(raft_addr, CALL_TIMEOUT).unwrap();
    let request = VoteRequest::<u64>::new(Vote::new(term, claimed), None);
    RaftClient::new(channel).vote(to_message(&request)).await.map(|_| ())
}

/// Only nodes of the federation speak Raft, each only for itself: a service certificate,
/// a certificate naming another city's node id, and a real node's certificate on a vote in
/// another node's name are refused before Raft sees them, and no term moves. The same vote
/// in the sender's own name is answered, which shows the refusals come from the checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_member_node_speaks_raft_and_only_for_itself() {
    let test = start_ready(&[]).await;
    let out = tempfile::tempdir().unwrap();
    let ca = ca_dir(&test);
    let leader = test.federation.leader().await.unwrap();
    let target = (leader + 1) % 3;
    let mut target_client = test.federation.client(target).await.unwrap();
    let term = status(&mut target_client).await.term;
    let before = state(&test).await;

    let as_service = test.federation.transport(&service("ride.share")).unwrap();
    let refused = vote(&test, &as_service, target, 1, term + 100).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("only nodes"), "{}", refused.message());

    // Helsinki's authority-signed certificate, but naming Eindhoven's node id.
    let impostor = Role::Node { city_id: city("fi-helsinki"), node_id: 1 };
    let impostor = transport(&test, &issue(&ca, &impostor, Validity::days(1), out.path()));
    let refused = vote(&test, &impostor, target, 1, term + 100).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("belongs to nl-eindhoven"), "{}", refused.message());

    // A city's node id under a city that is not in the federation.
    let stranger = Role::Node { city_id: city("de-berlin"), node_id: 9 };
    let stranger = transport(&test, &issue(&ca, &stranger, Validity::days(1), out.path()));
    let refused = vote(&test, &stranger, target, 9, term + 100).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // The third node's genuine certificate, speaking for the leader.
    let third = 3 - leader - target;
    let sender = test.federation.nodes[third].node_id;
    let genuine =
        Role::Node { city_id: city(test.federation.nodes[third].city.city_id), node_id: sender };
    let genuine = test.federation.transport(&genuine).unwrap();
    let leader_id = test.federation.nodes[leader].node_id;
    let refused = vote(&test, &genuine, target, leader_id, term + 100).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("speaks for node"), "{}", refused.message());

    assert_eq!(state(&test).await, before, "a refused Raft message moved the federation");
    // In its own name, at the current term, the same vote reaches Raft and is answered
    // (and not granted, as the sender's log is empty).
    vote(&test, &genuine, target, sender, term).await.expect("a member's own vote is heard");
    logged(&test, "raft message refused").await;
}
