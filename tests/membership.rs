//! Changing the federation while it serves: a fourth city joins through the operator
//! commands (as a learner that catches up, then as a voter) and leaves again, while
//! citizens keep writing; no acknowledged write is lost and none fails.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use roamhub::local::City;
use roamhub::membership;
use roamhub_proto::v1 as pb;
use support::*;

const TOKEN: &str = OPERATOR_TOKEN;
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
    let learner = pb::AddLearnerRequest {
        node_id: node.node_id,
        raft_addr: node.raft_addr.clone(),
        api_addr: node.api_addr.clone(),
    };
    let mut operator = test.federation.client(1).await.unwrap();
    let joined = membership::join(&mut operator, learner, Duration::from_secs(30), TOKEN).await;
    let joined = joined.unwrap();
    let voters = joined.members.iter().filter(|m| m.role == "voter").count();
    assert_eq!(voters, 4, "{joined:?}");
    test.federation.wait_ready(READY_TIMEOUT).await.unwrap();

    let mut newcomer = test.federation.client(position).await.unwrap();
    let cities = newcomer.list_members(pb::ListMembersRequest {}).await.unwrap().into_inner();
    assert!(cities.members.iter().any(|m| m.city_id == "de-hamburg"), "it announced itself");

    let left = membership::leave(&mut newcomer, TOKEN).await.unwrap();
    assert_eq!(left.members.len(), 3, "{left:?}");
    let mut operator = test.federation.client(1).await.unwrap();
    let cities = operator.list_members(pb::ListMembersRequest {}).await.unwrap().into_inner();
    assert!(cities.members.iter().all(|m| m.city_id != "de-hamburg"), "it left the index too");
    let home = membership::remove(&mut operator, 1, TOKEN).await.unwrap_err().to_string();
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
