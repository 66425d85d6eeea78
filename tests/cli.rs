//! The `roamhub` client subcommands against a real three-city federation: each command is
//! run as a user would, and its `--json` output or exit status checked.

mod support;

use roamhub::local::LocalFederation;
use roamhub_index::{CityId, ServiceId};
use roamhub_node::Role;
use serde_json::Value;
use support::start_ready;
use tokio::process::Command;

/// The keystore the CLI keeps citizens' keys in during these tests.
fn keystore() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("roamhub-cli-test-keys-{}", std::process::id()))
}

/// The `roamhub` command as one holder of a certificate.
struct As {
    flags: Vec<String>,
}

impl As {
    fn operator(federation: &LocalFederation, city: &str) -> As {
        let role = Role::Operator { city_id: CityId::parse("city", city).unwrap() };
        As { flags: federation.client_flags(&role).unwrap() }
    }

    fn service(federation: &LocalFederation, service: &str) -> As {
        let role = Role::Service { service_id: ServiceId::parse("service", service).unwrap() };
        As { flags: federation.client_flags(&role).unwrap() }
    }

    /// Runs `roamhub --node NODE --json ARGS...`; returns the parsed output, or the exit
    /// status's standard error when the command failed.
    async fn run(&self, node: &str, args: &[&str]) -> Result<Value, String> {
        roamhub(&self.flags, node, args).await
    }
}

async fn roamhub(flags: &[String], node: &str, args: &[&str]) -> Result<Value, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_roamhub"))
        .args(["--node", node, "--json"])
        .args(flags)
        .args(args)
        .env_remove("ROAMHUB_NODE")
        .env_remove("ROAMHUB_INSECURE")
        .env("ROAMHUB_KEYSTORE", keystore())
        .output()
        .await
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&output.stdout).expect("--json prints JSON"))
}

/// A citizen's whole journey through the CLI, from registration to a refused resolution and
/// the access log that records it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_noun_of_the_cli_works_against_a_federation() {
    let test = start_ready(&[]).await;
    let node = test.federation.nodes[1].api_addr.clone();
    let node = node.as_str();
    // Citizens use Helsinki's portal, which holds its operator's certificate.
    let helsinki = As::operator(&test.federation, "fi-helsinki");
    let ride = As::service(&test.federation, "ride.share");

    let members = helsinki.run(node, &["federation", "members"]).await.unwrap();
    assert_eq!(members["cities"].as_array().unwrap().len(), 3);
    assert_eq!(members["raft"]["members"].as_array().unwrap().len(), 3);
    let status = helsinki.run(node, &["federation", "status"]).await.unwrap();
    assert_eq!(status["city_id"], "fi-helsinki");

    let declare = "trip-planning=mobility.trips;mobility.pass";
    let register =
        ["service", "register", "ride.share", "--organisation", "Ride", "--declare", declare];
    let service = helsinki.run(node, &register).await.unwrap();
    assert_eq!(service["declarations"][0]["attributes"][1], "mobility.pass");
    assert_eq!(
        helsinki.run(node, &["service", "list"]).await.unwrap().as_array().unwrap().len(),
        1
    );
    let certify = ["service", "certify", "ride.share", "--declare", declare, "--days", "30"];
    let refused = ride.run(node, &certify).await.unwrap_err();
    assert!(refused.contains("PermissionDenied"), "a service certifies itself: {refused}");
    let certified = helsinki.run(node, &certify).await.unwrap();
    assert_eq!(certified["certification"]["status"], "certified");
    assert_eq!(certified["certification"]["by_city"], "fi-helsinki");

    let register =
        ["citizen", "register", "--home-city", "nl-eindhoven", "--identifier", "city-account=A-1"];
    let citizen = helsinki.run(node, &register).await.unwrap();
    let id = citizen["citizen_id"].as_str().unwrap().to_owned();
    let id = id.as_str();
    helsinki
        .run(node, &["citizen", "add-identifier", id, "--identifier", "eidas=NL/1"])
        .await
        .unwrap();
    let pod = [
        "location",
        "set",
        id,
        "--category",
        "mobility",
        "--uri",
        "https://p.example/m",
        "--provider",
        "P",
    ];
    helsinki.run(node, &pod).await.unwrap();
    assert_eq!(
        helsinki.run(node, &["location", "list", id]).await.unwrap()[0]["category"],
        "mobility"
    );

    let grant = [
        "consent",
        "grant",
        id,
        "--service",
        "ride.share",
        "--purpose",
        "trip-planning",
        "--attribute",
        "mobility.trips",
    ];
    let consent = helsinki.run(node, &grant).await.unwrap();
    assert_eq!(consent["status"], "CONSENT_STATUS_GIVEN");
    assert_eq!(consent["legal_basis"], "LEGAL_BASIS_CONSENT");

    let resolve = [
        "resolve",
        "--identifier",
        "eidas=NL/1",
        "--service",
        "ride.share",
        "--purpose",
        "trip-planning",
    ];
    let resolved = ride.run(node, &resolve).await.unwrap();
    assert_eq!(resolved["pointers"][0]["uri"], "https://p.example/m/trips");

    let consent_id = consent["consent_id"].as_str().unwrap();
    helsinki.run(node, &["consent", "withdraw", id, consent_id]).await.unwrap();
    let refused = ride.run(node, &resolve).await.unwrap_err();
    assert!(refused.contains("PermissionDenied"), "{refused}");
    assert_eq!(
        helsinki.run(node, &["consent", "list", id]).await.unwrap()[0]["status"],
        "CONSENT_STATUS_WITHDRAWN"
    );

    let limit = ["federation", "set-consent-lifetime-max", "--days", "30"];
    helsinki.run(node, &limit).await.unwrap();
    let again = helsinki.run(node, &grant).await.unwrap();
    let again_id = again["consent_id"].as_str().unwrap();
    let thirty_days = again["valid_from_unix_ms"].as_u64().unwrap() + 30 * 86_400_000;
    assert_eq!(again["valid_until_unix_ms"].as_u64().unwrap(), thirty_days, "capped");
    let renewed = helsinki.run(node, &["consent", "renew", id, again_id]).await.unwrap();
    assert_eq!(renewed["status"], "CONSENT_STATUS_RENEWED");
    // Only her home city's operator revokes, through any node.
    let revoke = ["consent", "revoke", again_id];
    let not_home = helsinki.run(node, &revoke).await.unwrap_err();
    assert!(not_home.contains("PermissionDenied"), "{not_home}");
    let not_a_city = ride.run(node, &revoke).await.unwrap_err();
    assert!(not_a_city.contains("PermissionDenied"), "{not_a_city}");
    let revoked = As::operator(&test.federation, "nl-eindhoven").run(node, &revoke).await.unwrap();
    assert_eq!(revoked["status"], "CONSENT_STATUS_REVOKED");
    assert_eq!(revoked["revoked_by_city"], "nl-eindhoven");

    let switch = [
        "location",
        "set",
        id,
        "--category",
        "mobility",
        "--uri",
        "https://q.example/m",
        "--provider",
        "Q",
    ];
    helsinki.run(node, &switch).await.unwrap();
    let follow = [
        "follow",
        "https://p.example/m/trips",
        "--service",
        "ride.share",
        "--purpose",
        "trip-planning",
    ];
    let refused = ride.run(node, &follow).await.unwrap_err();
    assert!(refused.contains("PermissionDenied"), "no valid consent is left: {refused}");

    helsinki.run(node, &["citizen", "move", id, "--to-city", "es-valencia"]).await.unwrap();
    let shown = helsinki.run(node, &["citizen", "show", id]).await.unwrap();
    assert_eq!(shown["home_city"], "es-valencia");
    assert_eq!(shown["identifiers"].as_array().unwrap().len(), 2);

    let log = helsinki.run(node, &["access-log", id]).await.unwrap();
    let records = log["records"].as_array().unwrap();
    let outcomes: Vec<&str> = records.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(
        outcomes,
        ["ACCESS_OUTCOME_REFUSED", "ACCESS_OUTCOME_REFUSED", "ACCESS_OUTCOME_RELEASED"]
    );
    let verified = helsinki.run(node, &["access-log", id, "--verify"]).await.unwrap();
    assert_eq!(verified["chain_holds"], true);

    let decertify = ["service", "decertify", "ride.share"];
    let eindhoven = As::operator(&test.federation, "nl-eindhoven");
    let decertified = eindhoven.run(node, &decertify).await.unwrap();
    assert_eq!(decertified["certification"]["withdrawn_by_city"], "nl-eindhoven");
    let listed = helsinki.run(node, &["service", "list"]).await.unwrap();
    assert_eq!(listed[0]["certification"]["status"], "withdrawn");
    let again = helsinki.run(node, &decertify).await.unwrap_err();
    assert!(again.contains("FailedPrecondition"), "{again}");

    let bad = helsinki.run(node, &["citizen", "show", "alice"]).await.unwrap_err();
    assert!(bad.contains("InvalidArgument") && bad.contains("citizen_id"), "{bad}");

    let rotated = helsinki.run(node, &["citizen", "rotate-key", id]).await.unwrap();
    let changes: Vec<&str> = rotated["key_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["registered", "added", "removed"]);
    helsinki
        .run(
            node,
            &[
                "location",
                "set",
                id,
                "--category",
                "health",
                "--uri",
                "https://h.example",
                "--provider",
                "H",
            ],
        )
        .await
        .expect("the rotated key signs");

    let valencia = test.federation.nodes[2].api_addr.clone();
    let recover = ["citizen", "recover-key", id];
    let wrong = ride.run(&valencia, &recover).await;
    assert!(wrong.unwrap_err().contains("PermissionDenied"));
    let recovered =
        As::operator(&test.federation, "es-valencia").run(&valencia, &recover).await.unwrap();
    assert_eq!(recovered["key_history"].as_array().unwrap().last().unwrap()["by"], "es-valencia");
    helsinki
        .run(node, &["citizen", "move", id, "--to-city", "fi-helsinki"])
        .await
        .expect("the recovered key signs");
    let export = helsinki.run(node, &["citizen", "export", id]).await.unwrap();
    assert_eq!(export["format"], "roamhub-citizen-export/v1");
    assert_eq!(export["access_log"].as_array().unwrap().len(), 3);
    assert_eq!(export["citizen"]["consents"].as_array().unwrap().len(), 2);
    assert_eq!(export["access_log_chain_holds"], true);
    let erased = helsinki.run(node, &["citizen", "erase", id]).await.unwrap();
    assert_eq!(erased["erasures"], 1);
    assert!(helsinki.run(node, &["citizen", "show", id]).await.unwrap_err().contains("NotFound"));
    let _ = std::fs::remove_dir_all(keystore());
}
