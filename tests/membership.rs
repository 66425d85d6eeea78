//! Changing the federation while it serves: a fourth city joins through the `roamhub
//! federation` commands (as a learner that catches up, then as a voter) and leaves again,
//! while citizens keep writing; no acknowledged write is lost and none fails.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use roamhub::local::{City, LocalFederation};
use roamhub::membership;
use roamhub_node::Role;
use roamhub_proto::v1 as pb;
use support::*;
/// The writer stops by itself after this many writes.
const WRITES_MAX: usize = 20_000;

/// Signed writes through one node until told to stop; returns what was acknowledged and
/// how many writes failed.
async fn keep_writing(
    mut client: roamhub::client::Client,
    citizen: TestCitizen,
    stop: Arc<AtomicBool>,
) -> (Vec<(String, String)>, usize) {
    let (mut acknowledged, mut failed) = (Vec::new(), 0);
    for n in 0..WRITES_MAX {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (category, uri) = (format!("cat-{}", n % 50), format!("https://p.example/{n}"));
        match set_location(&mut client, &citizen, &category, &uri).await {
            Ok(_) => acknowledged.push((category, uri)),
            Err(_) => {
                failed += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    (acknowledged, failed)
}

/// Runs `roamhub --node NODE --json ARGS...` as `role`; the parsed output, or standard
/// error when the command failed.
async fn roamhub(
    federation: &LocalFederation,
    role: &Role,
    node: &str,
    args: &[&str],
) -> Result<serde_json::Value, String> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_roamhub"))
        .args(["--node", node, "--json"])
        .args(federation.client_flags(role).unwrap())
        .args(args)
        .env_remove("ROAMHUB_INSECURE")
        .output()
        .await
        .unwrap();
    match output.status.success() {
        true => Ok(serde_json::from_slice(&output.stdout).expect("--json prints JSON")),
        false => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_city_joins_and_leaves_while_writes_continue() {
    let mut test = start_ready(&[]).await;
    let mut client = test.federation.client(0).await.unwrap();
    let alice = register_citizen(&mut client, "nl-eindhoven", "EHV-100").await;
    let alice_id = alice.id.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(keep_writing(client, alice, stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let hamburg = City { city_id: "de-hamburg", display_name: "Hamburg" };
    let position = test.federation.add_city(hamburg).unwrap();
    let node = &test.federation.nodes[position];
    let (node_id, raft_addr, api_addr) =
        (node.node_id.to_string(), node.raft_addr.clone(), node.api_addr.clone());
    let join = [
        "federation",
        "join",
        "--node-id",
        &node_id,
        "--raft-addr",
        &raft_addr,
        "--api-addr",
        &api_addr,
        "--timeout-secs",
        "30",
    ];
    let helsinki = test.federation.operator(1);
    let at_helsinki = test.federation.nodes[1].api_addr.clone();
    let refused = roamhub(&test.federation, &service_role(), &at_helsinki, &join).await;
    assert!(refused.unwrap_err().contains("PermissionDenied"), "only operators join cities");
    let joined = roamhub(&test.federation, &helsinki, &at_helsinki, &join).await.unwrap();
    let voters = joined["members"].as_array().unwrap().iter().filter(|m| m["role"] == "voter");
    assert_eq!(voters.count(), 4, "{joined:?}");
    test.federation.wait_ready(READY_TIMEOUT).await.unwrap();

    let mut newcomer = test.federation.client(position).await.unwrap();
    let cities = newcomer.list_members(pb::ListMembersRequest {}).await.unwrap().into_inner();
    assert!(cities.members.iter().any(|m| m.city_id == "de-hamburg"), "it announced itself");

    let hamburg = test.federation.operator(position);
    let left = roamhub(&test.federation, &hamburg, &api_addr, &["federation", "leave"]).await;
    let left = left.unwrap();
    assert_eq!(left["members"].as_array().unwrap().len(), 3, "{left:?}");
    let mut operator = test.federation.client(1).await.unwrap();
    let cities = operator.list_members(pb::ListMembersRequest {}).await.unwrap().into_inner();
    assert!(cities.members.iter().all(|m| m.city_id != "de-hamburg"), "it left the index too");
    let transport = test.federation.transport(&helsinki).unwrap();
    let home = membership::remove(&mut operator, &transport, 1).await.unwrap_err().to_string();
    assert!(home.contains("FailedPrecondition"), "Eindhoven has citizens: {home}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failed) = writer.await.unwrap();
    assert_eq!(failed, 0, "writes failed during the membership changes");
    assert!(acknowledged.len() > 10, "too few writes to prove anything: {}", acknowledged.len());

    let last_by_category: BTreeMap<String, String> = acknowledged.into_iter().collect();
    let mut reader = test.federation.client(2).await.unwrap();
    let read = citizen(&mut reader, &alice_id).await;
    for (category, uri) in &last_by_category {
        let location = read.locations.iter().find(|l| &l.category == category);
        let current = location.and_then(|l| l.current.as_ref()).map(|p| p.uri.as_str());
        assert_eq!(current, Some(uri.as_str()), "{category} lost its last acknowledged write");
    }
    let group = reader.node_status(pb::NodeStatusRequest {}).await.unwrap().into_inner();
    assert_eq!(group.voters.len(), 3, "{group:?}");
}

fn service_role() -> Role {
    Role::Service { service_id: roamhub_index::ServiceId::parse("s", "ride.share").unwrap() }
}
