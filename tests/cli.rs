//! The `roamhub` client subcommands against a real three-city federation: each command is
//! run as a user would, and its `--json` output or exit status checked.

mod support;

use serde_json::Value;
use support::{OPERATOR_TOKEN, start_ready};
use tokio::process::Command;

/// The keystore the CLI keeps citizens' keys in during these tests.
fn keystore() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("roamhub-cli-test-keys-{}", std::process::id()))
}

/// Runs `roamhub --node NODE --json ARGS...`; returns the parsed output, or the exit
/// status's standard error when the command failed.
async fn roamhub(node: &str, args: &[&str]) -> Result<Value, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_roamhub"))
        .args(["--node", node, "--json"])
        .args(args)
        .env_remove("ROAMHUB_NODE")
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

    let members = roamhub(node, &["federation", "members"]).await.unwrap();
    assert_eq!(members["cities"].as_array().unwrap().len(), 3);
    assert_eq!(members["raft"]["members"].as_array().unwrap().len(), 3);
    let status = roamhub(node, &["federation", "status"]).await.unwrap();
    assert_eq!(status["city_id"], "fi-helsinki");

    let token = OPERATOR_TOKEN;
    let declare = "trip-planning=mobility.trips;mobility.pass";
    let register =
        ["service", "register", "ride.share", "--organisation", "Ride", "--declare", declare];
    let service = roamhub(node, &register).await.unwrap();
    assert_eq!(service["declarations"][0]["attributes"][1], "mobility.pass");
    assert_eq!(roamhub(node, &["service", "list"]).await.unwrap().as_array().unwrap().len(), 1);
    let certify = [
        "service",
        "certify",
        "ride.share",
        "--declare",
        declare,
        "--days",
        "30",
        "--operator-token",
        token,
    ];
    let certified = roamhub(node, &certify).await.unwrap();
    assert_eq!(certified["certification"]["status"], "certified");
    assert_eq!(certified["certification"]["by_city"], "fi-helsinki");

    let register =
        ["citizen", "register", "--home-city", "nl-eindhoven", "--identifier", "city-account=A-1"];
    let citizen = roamhub(node, &register).await.unwrap();
    let id = citizen["citizen_id"].as_str().unwrap().to_owned();
    let id = id.as_str();
    roamhub(node, &["citizen", "add-identifier", id, "--identifier", "eidas=NL/1"]).await.unwrap();
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
    roamhub(node, &pod).await.unwrap();
    assert_eq!(roamhub(node, &["location", "list", id]).await.unwrap()[0]["category"], "mobility");

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
    let consent = roamhub(node, &grant).await.unwrap();
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
    let resolved = roamhub(node, &resolve).await.unwrap();
    assert_eq!(resolved["pointers"][0]["uri"], "https://p.example/m/trips");

    let consent_id = consent["consent_id"].as_str().unwrap();
    roamhub(node, &["consent", "withdraw", id, consent_id]).await.unwrap();
    let refused = roamhub(node, &resolve).await.unwrap_err();
    assert!(refused.contains("PermissionDenied"), "{refused}");
    assert_eq!(
        roamhub(node, &["consent", "list", id]).await.unwrap()[0]["status"],
        "CONSENT_STATUS_WITHDRAWN"
    );

    let limit =
        ["federation", "set-consent-lifetime-max", "--days", "30", "--operator-token", token];
    roamhub(node, &limit).await.unwrap();
    let again = roamhub(node, &grant).await.unwrap();
    let again_id = again["consent_id"].as_str().unwrap();
    let thirty_days = again["valid_from_unix_ms"].as_u64().unwrap() + 30 * 86_400_000;
    assert_eq!(again["valid_until_unix_ms"].as_u64().unwrap(), thirty_days, "capped");
    let renewed = roamhub(node, &["consent", "renew", id, again_id]).await.unwrap();
    assert_eq!(renewed["status"], "CONSENT_STATUS_RENEWED");
    let eindhoven = test.federation.nodes[0].api_addr.clone();
    let revoke = ["consent", "revoke", again_id, "--operator-token", token];
    let not_home = roamhub(node, &revoke).await.unwrap_err();
    assert!(not_home.contains("PermissionDenied"), "{not_home}");
    let revoked = roamhub(&eindhoven, &revoke).await.unwrap();
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
    roamhub(node, &switch).await.unwrap();
    let follow = [
        "follow",
        "https://p.example/m/trips",
        "--service",
        "ride.share",
        "--purpose",
        "trip-planning",
    ];
    let refused = roamhub(node, &follow).await.unwrap_err();
    assert!(refused.contains("PermissionDenied"), "no valid consent is left: {refused}");

    roamhub(node, &["citizen", "move", id, "--to-city", "es-valencia"]).await.unwrap();
    let shown = roamhub(node, &["citizen", "show", id]).await.unwrap();
    assert_eq!(shown["home_city"], "es-valencia");
    assert_eq!(shown["identifiers"].as_array().unwrap().len(), 2);

    let log = roamhub(node, &["access-log", id]).await.unwrap();
    let records = log["records"].as_array().unwrap();
    let outcomes: Vec<&str> = records.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(
        outcomes,
        ["ACCESS_OUTCOME_REFUSED", "ACCESS_OUTCOME_REFUSED", "ACCESS_OUTCOME_RELEASED"]
    );
    let verified = roamhub(node, &["access-log", id, "--verify"]).await.unwrap();
    assert_eq!(verified["chain_holds"], true);

    let decertify = ["service", "decertify", "ride.share", "--operator-token", token];
    let decertified = roamhub(node, &decertify).await.unwrap();
    assert_eq!(decertified["certification"]["withdrawn_by_city"], "fi-helsinki");
    let listed = roamhub(node, &["service", "list"]).await.unwrap();
    assert_eq!(listed[0]["certification"]["status"], "withdrawn");
    let again = roamhub(node, &decertify).await.unwrap_err();
    assert!(again.contains("FailedPrecondition"), "{again}");

    let bad = roamhub(node, &["citizen", "show", "alice"]).await.unwrap_err();
    assert!(bad.contains("InvalidArgument") && bad.contains("citizen_id"), "{bad}");

    let rotated = roamhub(node, &["citizen", "rotate-key", id]).await.unwrap();
    let changes: Vec<&str> = rotated["key_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["registered", "added", "removed"]);
    roamhub(
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
    let wrong =
        roamhub(&valencia, &["citizen", "recover-key", id, "--operator-token", "guess"]).await;
    assert!(wrong.unwrap_err().contains("Unauthenticated"));
    let recover = ["citizen", "recover-key", id, "--operator-token", token];
    let recovered = roamhub(&valencia, &recover).await.unwrap();
    assert_eq!(recovered["key_history"].as_array().unwrap().last().unwrap()["by"], "es-valencia");
    roamhub(node, &["citizen", "move", id, "--to-city", "fi-helsinki"])
        .await
        .expect("the recovered key signs");
    let export = roamhub(node, &["citizen", "export", id]).await.unwrap();
    assert_eq!(export["format"], "roamhub-citizen-export/v1");
    assert_eq!(export["access_log"].as_array().unwrap().len(), 3);
    assert_eq!(export["citizen"]["consents"].as_array().unwrap().len(), 2);
    assert_eq!(export["access_log_chain_holds"], true);
    let erased = roamhub(node, &["citizen", "erase", id]).await.unwrap();
    assert_eq!(erased["erasures"], 1);
    assert!(roamhub(node, &["citizen", "show", id]).await.unwrap_err().contains("NotFound"));
    let _ = std::fs::remove_dir_all(keystore());
}
