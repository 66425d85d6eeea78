//! Disk faults on real node processes: a flipped bit in a stopped follower's log entry or
//! snapshot, or damaged sled files, is found when it restarts; the node serves nothing
//! from bad data, has itself made a learner, rejoins from its peers, becomes a voter again
//! and ends with the same state as the others, every acknowledged write in it. With two of
//! three nodes corrupt there is no majority to rejoin through: both stay down and say why.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use roamhub::local::LocalFederation;
use roamhub_proto::v1 as pb;
use roamhub_store::DATABASE_DIR;
use roamhub_store::db::Db;
use support::*;

/// Held by each test for its whole length: a recovery goes through several timed steps
/// (demotion, catch-up, promotion), which four federations of debug nodes at once on two
/// cores would stretch past their bounds.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a corrupt follower may take to rejoin and match the others.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(40);
/// Writes before and while the follower is down.
const WRITES_EACH_PHASE: usize = 12;

/// Signed writes of distinct categories through the leader; returns them all, acknowledged.
async fn write(test: &TestFederation, citizen: &TestCitizen, phase: &str) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut written = Vec::new();
    for n in 0..WRITES_EACH_PHASE {
        let (category, uri) = (format!("{phase}-{n}"), format!("https://p.example/{phase}/{n}"));
        let acknowledged =
            set_location_retrying(&test.federation, citizen, &category, &uri, deadline);
        if let Err(error) = acknowledged.await {
            for position in 0..3 {
                eprintln!("--- node {position}\n{}", node_log(&test.federation, position));
            }
            panic!("{phase}: a healthy majority takes writes: {error}");
        }
        written.push((category, uri));
    }
    written
}

/// A follower's position, and the federation with one citizen and some writes.
async fn federation_with_writes(extra_args: &[&str]) -> (TestFederation, TestCitizen, usize) {
    let test = start_ready(extra_args).await;
    let mut client = test.federation.client(0).await.unwrap();
    let alice = register_citizen(&mut client, "nl-eindhoven", "EHV-1").await;
    let leader = test.federation.leader().await.expect("a leader");
    (test, alice, (leader + 1) % 3)
}

/// Flips one bit inside the value of `key` in `tree` of a stopped node, through the seam.
async fn flip_bit(data_dir: &Path, tree: &str, key: Option<&[u8]>) {
    let db = Db::open(&data_dir.join(DATABASE_DIR)).unwrap();
    let tree = db.tree(tree).unwrap();
    let (key, mut value) = match key {
        Some(key) => (key.to_vec(), tree.get(key).unwrap().expect("the record exists")),
        None => tree.last().unwrap().expect("a record exists"),
    };
    let middle = value.len() / 2;
    value[middle] ^= 0x04;
    tree.insert(&key, value).unwrap();
    db.flush().await.unwrap();
}

/// Waits until every node answers the same applied index and digest.
async fn wait_same_digest(federation: &LocalFederation) {
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    let mut last = Vec::new();
    while Instant::now() < deadline {
        last.clear();
        for position in 0..federation.nodes.len() {
            let Ok(mut client) = federation.client(position).await else { continue };
            let digest = client.state_digest(pb::StateDigestRequest {}).await;
            last.push(digest.map(|d| d.into_inner()).map_err(|s| s.message().to_owned()));
        }
        let first = last.first().and_then(|d| d.as_ref().ok());
        if last.len() == federation.nodes.len() && last.iter().all(|d| d.as_ref().ok() == first) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for position in 0..federation.nodes.len() {
        eprintln!("--- node {position}\n{}", node_log(federation, position));
    }
    panic!("the replicas did not converge: {last:?}");
}

/// Waits until the node at `position` is a voter again and has ended its recovery.
async fn wait_voter_again(federation: &LocalFederation, position: usize) {
    let node_id = federation.nodes[position].node_id;
    let marker = federation.nodes[position].data_dir.join("recovery");
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    loop {
        let mut client = federation.client((position + 1) % 3).await.unwrap();
        let group = client.raft_members(pb::RaftMembersRequest {}).await.unwrap().into_inner();
        let voter = group.members.iter().any(|m| m.node_id == node_id && m.role == "voter");
        if voter && !marker.exists() {
            return;
        }
        assert!(Instant::now() < deadline, "node {node_id} is not a voter again: {group:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every acknowledged write is what the node at `position` reads.
async fn assert_writes_present(
    federation: &LocalFederation,
    position: usize,
    citizen: &TestCitizen,
    written: &[(String, String)],
) {
    let mut client = federation.client(position).await.unwrap();
    let read = support::citizen(&mut client, &citizen.id).await;
    for (category, uri) in written {
        let location = read.locations.iter().find(|l| &l.category == category);
        let current = location.and_then(|l| l.current.as_ref()).map(|p| p.uri.as_str());
        assert_eq!(current, Some(uri.as_str()), "{category} lost an acknowledged write");
    }
}

fn node_log(federation: &LocalFederation, position: usize) -> String {
    let node_id = federation.nodes[position].node_id;
    std::fs::read_to_string(federation.root().join(format!("node-{node_id}.log"))).unwrap()
}

fn moved_aside(data_dir: &Path) -> bool {
    let entries = std::fs::read_dir(data_dir).unwrap();
    let prefix = format!("{DATABASE_DIR}.corrupt-");
    entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
}

/// Stops the follower, damages its storage with `damage`, writes on, restarts it, and
/// checks that it recovers with every acknowledged write.
async fn recovers_from<F, Fut>(extra_args: &[&str], damage: F) -> (TestFederation, usize)
where
    F: FnOnce(std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut test, alice, follower) = federation_with_writes(extra_args).await;
    let mut written = write(&test, &alice, "before").await;
    let leader_index = status(&mut test.federation.client((follower + 1) % 3).await.unwrap()).await;
    wait_applied(&test.federation, follower, leader_index.last_applied_index, RECOVERY_TIMEOUT)
        .await;

    test.federation.terminate(follower);
    damage(test.federation.nodes[follower].data_dir.clone()).await;
    written.extend(write(&test, &alice, "while-down").await);
    test.federation.restart(follower).unwrap();

    wait_voter_again(&test.federation, follower).await;
    written.extend(write(&test, &alice, "after").await);
    wait_same_digest(&test.federation).await;
    assert_writes_present(&test.federation, follower, &alice, &written).await;
    (test, follower)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_bit_in_a_log_entry_is_found_and_the_node_recovers() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let damage = |dir: std::path::PathBuf| async move { flip_bit(&dir, "log", None).await };
    let (test, follower) = recovers_from(&[], damage).await;

    let log = node_log(&test.federation, follower);
    assert!(log.contains("storage of this node is corrupt"), "it says why");
    assert!(log.contains("log entry at"), "it names the record");
    assert!(moved_aside(&test.federation.nodes[follower].data_dir), "kept for forensics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_bit_in_the_snapshot_is_found_and_the_node_recovers() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let args = ["--snapshot-every-entries", "10"];
    let damage =
        |dir: std::path::PathBuf| async move { flip_bit(&dir, "snapshot", Some(b"current")).await };
    let (test, follower) = recovers_from(&args, damage).await;

    let log = node_log(&test.federation, follower);
    assert!(log.contains("snapshot at current"), "it names the snapshot");
    assert!(moved_aside(&test.federation.nodes[follower].data_dir), "kept for forensics");
}

/// Whatever sled makes of a cut file or a flipped byte in its own files (an error, a
/// panic, or silently fewer records), the node ends with the same state as the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_sled_files_never_serve_wrong_data() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let damage = |dir: std::path::PathBuf| async move {
        let file = largest_file(&dir.join(DATABASE_DIR));
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        bytes.truncate(bytes.len() * 3 / 4);
        std::fs::write(&file, bytes).unwrap();
    };
    recovers_from(&[], damage).await;
}

fn largest_file(dir: &Path) -> std::path::PathBuf {
    let files = std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.path().is_file());
    files.max_by_key(|e| e.metadata().unwrap().len()).unwrap().path()
}

/// Two of three nodes corrupt: no majority can make them learners, so both stay down,
/// refuse every call with the reason, and never vote with their bad data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_of_three_corrupt_both_stay_down_and_say_why() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (mut test, alice, follower) = federation_with_writes(&[]).await;
    write(&test, &alice, "before").await;
    let other = (follower + 1) % 3;
    let other = if test.federation.leader().await == Some(other) { (other + 1) % 3 } else { other };

    for position in [follower, other] {
        test.federation.terminate(position);
        flip_bit(&test.federation.nodes[position].data_dir, "log", None).await;
    }
    for position in [follower, other] {
        test.federation.restart(position).unwrap();
    }

    // Well past an election timeout and several recovery attempts. Until a node listens,
    // its calls fail to connect; once it does, every call is refused with the reason.
    let mut refused = [0, 0];
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        for (seen, position) in refused.iter_mut().zip([follower, other]) {
            let Ok(mut client) = test.federation.client(position).await else { continue };
            let asked = client.get_citizen(pb::GetCitizenRequest { citizen_id: alice.id.clone() });
            match asked.await {
                Ok(_) => panic!("a corrupt node served a read"),
                Err(status) if status.message().contains("storage of this node is corrupt") => {
                    assert_eq!(status.code(), tonic::Code::Unavailable);
                    *seen += 1;
                }
                Err(status) => assert_eq!(*seen, 0, "refused otherwise once up: {status}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(refused.iter().all(|seen| *seen > 3), "both nodes refuse with why: {refused:?}");
    for position in [follower, other] {
        let log = node_log(&test.federation, position);
        assert!(log.contains("it stays down"), "node at {position} says why it is down");
        assert!(test.federation.nodes[position].data_dir.join("recovery").exists());
    }
}
