//! What reaches a node's disk, proven by scanning every byte of every data directory: a
//! citizen's identifiers never do (only their keyed hashes), and a unique canary written
//! into a citizen's records is found nowhere once the citizen is erased, including on a
//! node that was down during the erasure and rejoined afterwards.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use roamhub_proto::v1 as pb;
use support::*;

/// How long every node may take to snapshot, purge and compact after an erasure.
const COMPACTION_TIMEOUT: Duration = Duration::from_secs(60);

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|window| window == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

async fn wait_compacted(test: &TestFederation, position: usize, erasures: u64) {
    let deadline = Instant::now() + COMPACTION_TIMEOUT;
    loop {
        if let Ok(mut client) = test.federation.client(position).await
            && let Ok(reply) = client.node_status(pb::NodeStatusRequest {}).await
            && reply.get_ref().erasures_compacted >= erasures
        {
            return;
        }
        assert!(Instant::now() < deadline, "node {position} did not compact in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_citizen_leaves_no_byte_on_any_node() {
    let mut test = start_ready(&[]).await;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let canary = format!("canary-{:x}-{:x}", std::process::id(), nanos.as_nanos());
    let mut client = test.federation.client(0).await.unwrap();
    register_service(&mut client).await;
    let account = format!("account-{canary}");
    let alice = register_citizen(&mut client, "nl-eindhoven", &account).await;
    let uri = format!("https://pods.example/{canary}/mobility");
    set_location(&mut client, &alice, "mobility", &uri).await.unwrap();
    grant(&mut client, &alice, "ride.share", &["mobility.trips"]).await;
    let resolve = pb::ResolveRequest {
        identifier: Some(identifier(&account)),
        service_id: "ride.share".to_owned(),
        purpose: "trip-planning".to_owned(),
        attributes: Vec::new(),
    };
    let mut ride = test.federation.service_client(0, "ride.share").await.unwrap();
    ride.resolve(resolve.clone()).await.unwrap();

    let applied = status(&mut client).await.last_applied_index;
    wait_applied(&test.federation, 2, applied, Duration::from_secs(10)).await;
    test.federation.kill(2);
    let absent = &test.federation.nodes[2].data_dir;
    assert!(!files_containing(absent, canary.as_bytes()).is_empty(), "the scan finds live data");
    for node in &test.federation.nodes {
        let clear = files_containing(&node.data_dir, account.as_bytes());
        assert!(clear.is_empty(), "an identifier reached the disk in clear: {clear:?}");
    }

    let erase = pb::EraseCitizenRequest { citizen_id: alice.id.clone(), signature: None };
    let erase = alice.key.signed(&mut client, erase).await.unwrap();
    assert_eq!(client.erase_citizen(erase).await.unwrap().into_inner().erasures, 1);
    let gone = pb::GetCitizenRequest { citizen_id: alice.id.clone() };
    assert_eq!(client.get_citizen(gone).await.unwrap_err().code(), tonic::Code::NotFound);
    let unknown = ride.resolve(resolve).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound, "a service presenting her identifier");

    wait_compacted(&test, 0, 1).await;
    wait_compacted(&test, 1, 1).await;
    test.federation.restart(2).unwrap();
    wait_compacted(&test, 2, 1).await;

    for node in &test.federation.nodes {
        let found = files_containing(&node.data_dir, canary.as_bytes());
        assert!(found.is_empty(), "{} still holds the canary in {found:?}", node.city.city_id);
    }
}
