//! `roamhub demo`: three cities, one citizen, and the promises the federation keeps her.
//!
//! Each city is a real node process with its own data directory and ports. The story runs
//! through the public API exactly as a service or citizen app would, checks every answer,
//! and exits non-zero with a clear message at the first one that does not hold.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use roamhub_index::ServiceId;
use roamhub_node::Role;
use roamhub_proto::v1 as pb;

use crate::cli::DemoArgs;
use crate::client::{
    Client, export, format_time, print_access_record, print_member, status_error,
    verify_access_chain, whole_access_log,
};
use crate::keystore::{CitizenKey, verify_receipt};
use crate::local::{City, LocalFederation};

const CITIES: [City; 3] = [
    City { city_id: "nl-eindhoven", display_name: "Eindhoven" },
    City { city_id: "fi-helsinki", display_name: "Helsinki" },
    City { city_id: "es-valencia", display_name: "Valencia" },
];
const EINDHOVEN: usize = 0;
const HELSINKI: usize = 1;
const VALENCIA: usize = 2;

/// How long the three nodes may take to elect a leader and announce themselves.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

const SERVICE: &str = "ride.share";
const PURPOSE: &str = "trip-planning";
/// How long the operator certifies the service for.
const CERTIFIED_FOR_MS: u64 = 365 * 86_400_000;

fn step(number: u32, text: &str) {
    println!("\n{number}. {text}");
}

fn said(text: impl AsRef<str>) {
    println!("   {}", text.as_ref());
}

fn alice_identifier() -> pb::Identifier {
    pb::Identifier { scheme: "city-account".to_owned(), value: "EHV-000123".to_owned() }
}

fn resolve_request() -> pb::ResolveRequest {
    pb::ResolveRequest {
        identifier: Some(alice_identifier()),
        service_id: SERVICE.to_owned(),
        purpose: PURPOSE.to_owned(),
        attributes: Vec::new(),
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (root, temporary) = match &args.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let dir = tempfile::Builder::new().prefix("roamhub-demo-").tempdir()?;
            (dir.path().to_owned(), Some(dir))
        }
    };
    let exe = std::env::current_exe().context("finding the roamhub binary")?;

    println!("roamhub demo: one citizen, three cities, one federation");
    let federation = LocalFederation::start(&exe, &root, &CITIES, &[])?;
    let told = tell(&federation).await;
    if let Err(error) = told {
        println!("\nThe story did not hold. Node logs are in {}", root.display());
        if let Some(dir) = temporary {
            let _ = dir.keep();
        }
        return Err(error);
    }
    println!("\nThe story holds ({:.1} s).", started.elapsed().as_secs_f64());

    if args.keep {
        let kept = temporary.map(|dir| dir.keep()).unwrap_or(root);
        print_how_to_reach(&federation, &kept);
        federation.detach();
    } else {
        let mut federation = federation;
        federation.stop();
    }
    Ok(())
}

async fn tell(federation: &LocalFederation) -> anyhow::Result<()> {
    step(
        1,
        concat!(
            "Three cities start a node each and form a federation through Raft, over mutual\n",
            "   TLS: every node, operator and service holds a certificate from the federation's\n",
            "   authority, and a caller without one is turned away at the handshake."
        ),
    );
    federation.wait_ready(READY_TIMEOUT).await?;
    // Citizens reach the federation through their city's portal, which holds the city
    // operator's certificate; the service holds its own.
    let mut eindhoven = federation.client(EINDHOVEN).await?;
    let mut helsinki = federation.client(HELSINKI).await?;
    let mut valencia = federation.client(VALENCIA).await?;
    let mut service_at = [
        federation.service_client(EINDHOVEN, SERVICE).await?,
        federation.service_client(HELSINKI, SERVICE).await?,
        federation.service_client(VALENCIA, SERVICE).await?,
    ];
    let stranger = Role::Service { service_id: ServiceId::parse("service", "data.broker")? };
    let mut stranger = federation.client_as(HELSINKI, &stranger)?;
    let refused = stranger.resolve(resolve_request()).await;
    match refused {
        Err(status) if status.code() == tonic::Code::PermissionDenied => {
            said(format!("data.broker, asking as {SERVICE}: {}", status.message()))
        }
        other => bail!("a service acting as another should be refused, got {other:?}"),
    }
    let members = helsinki.list_members(pb::ListMembersRequest {}).await.map_err(status_error)?;
    members.get_ref().members.iter().for_each(|m| {
        print!("   ");
        print_member(m)
    });

    step(
        2,
        concat!(
            "A mobility service registers, declaring what it needs and why, and Eindhoven's\n",
            "   operator certifies it for that; only a certified service resolves."
        ),
    );
    let declaration = pb::PurposeDeclaration {
        purpose: PURPOSE.to_owned(),
        attributes: ["mobility.trips", "mobility.pass", "mobility.home-station"]
            .map(String::from)
            .to_vec(),
    };
    let service = pb::RegisterServiceRequest {
        service_id: SERVICE.to_owned(),
        organisation: "Ride Share Cooperative".to_owned(),
        declarations: vec![declaration],
    };
    eindhoven.register_service(service).await.map_err(status_error)?;
    said(format!(
        "{SERVICE} declares {PURPOSE}: mobility.trips, mobility.pass, mobility.home-station"
    ));
    let certified = certify(&mut eindhoven).await?;
    said(format!(
        "certified by {} until {}",
        certified.by_city,
        format_time(certified.valid_until_unix_ms)
    ));

    step(
        3,
        concat!(
            "Alice registers in Eindhoven, with a key only her phone holds, and points her\n",
            "   mobility data to her pod."
        ),
    );
    let alice = CitizenKey::generate()?;
    let identifiers = vec![alice_identifier()];
    let register =
        alice.registration(&mut eindhoven, CITIES[EINDHOVEN].city_id, identifiers).await?;
    let citizen_id =
        eindhoven.register_citizen(register).await.map_err(status_error)?.into_inner().citizen_id;
    said(format!("her federation id is {citizen_id} (random, not her city account)"));
    said(format!(
        "her key is {}; every change she makes carries its signature",
        alice.public_key().key_id()
    ));
    let pod = "https://pods.example/alice/mobility";
    set_location(&mut eindhoven, &alice, &citizen_id, pod, "Example Pods").await?;
    said(format!("mobility -> {pod}"));

    step(
        4,
        concat!(
            "She consents: ride.share may use two attributes, for trip planning only, and may\n",
            "   know her only by her city account."
        ),
    );
    let grant = pb::GrantConsentRequest {
        citizen_id: citizen_id.clone(),
        service_id: SERVICE.to_owned(),
        purpose: PURPOSE.to_owned(),
        attributes: vec!["mobility.trips".to_owned(), "mobility.pass".to_owned()],
        legal_basis: pb::LegalBasis::Consent.into(),
        valid_from_unix_ms: 0,
        valid_until_unix_ms: 0,
        signature: None,
        identity_scheme: "city-account".to_owned(),
    };
    let grant = alice.signed(&mut eindhoven, grant).await?;
    let consent = eindhoven.grant_consent(grant).await.map_err(status_error)?.into_inner();
    said(format!("consent {} given", consent.consent_id));
    let receipt = consent.receipt.as_ref().context("a grant answers a receipt")?;
    let issuer = eindhoven.node_status(pb::NodeStatusRequest {}).await.map_err(status_error)?;
    verify_receipt(receipt, &issuer.get_ref().receipt_public_key)?;
    said(format!(
        "her receipt ({} bytes of Kantara/ISO 27560 JSON) carries Eindhoven's verified signature",
        receipt.receipt_json.len()
    ));

    step(5, "An operator in Helsinki tries to withdraw it for her, without her key.");
    let forged = forged_withdrawal(&mut helsinki, &citizen_id, &consent.consent_id, &alice).await?;
    match helsinki.withdraw_consent(forged).await {
        Err(status) if status.code() == tonic::Code::PermissionDenied => {
            said(format!("refused by every replica: {}", status.message()));
        }
        Err(status) => bail!("a forgery was answered {:?}: {}", status.code(), status.message()),
        Ok(_) => bail!("a forged withdrawal was accepted"),
    }

    step(6, "The service asks Helsinki's node, and gets exactly those two pointers.");
    let resolved =
        service_at[HELSINKI].resolve(resolve_request()).await.map_err(status_error)?.into_inner();
    print_pointers(&resolved);
    let attributes: Vec<&str> = resolved.pointers.iter().map(|p| p.attribute.as_str()).collect();
    ensure!(
        attributes == ["mobility.pass", "mobility.trips"],
        "expected two pointers, got {attributes:?}"
    );
    ensure!(
        resolved.pointers.iter().all(|p| p.uri.starts_with(pod)),
        "pointers must lead to her pod"
    );

    step(7, "Alice moves to Valencia and switches her storage to the city's store.");
    let moved = pb::MoveHomeRequest {
        citizen_id: citizen_id.clone(),
        to_city: CITIES[VALENCIA].city_id.to_owned(),
        signature: None,
    };
    let moved = alice.signed(&mut valencia, moved).await?;
    valencia.move_home(moved).await.map_err(status_error)?;
    let store = "https://store.valencia.example/c/mobility";
    set_location(&mut valencia, &alice, &citizen_id, store, "Valencia city store").await?;
    said(format!(
        "home city {} ; mobility -> {store} (the pod stays in her history)",
        CITIES[VALENCIA].city_id
    ));

    step(8, "The service still resolves her, from Eindhoven's node, now to the new store.");
    let resolved =
        service_at[EINDHOVEN].resolve(resolve_request()).await.map_err(status_error)?.into_inner();
    print_pointers(&resolved);
    ensure!(resolved.home_city == CITIES[VALENCIA].city_id, "her home city should be Valencia");
    ensure!(resolved.pointers.len() == 2, "expected two pointers after the move");
    ensure!(
        resolved.pointers.iter().all(|p| p.uri.starts_with(store)),
        "pointers must lead to the new store"
    );
    let old_address = format!("{pod}/trips");
    let follow = pb::FollowPointerRequest {
        old_uri: old_address.clone(),
        service_id: SERVICE.to_owned(),
        purpose: PURPOSE.to_owned(),
    };
    let forwarded =
        service_at[VALENCIA].follow_pointer(follow).await.map_err(status_error)?.into_inner();
    let same_attribute = forwarded.pointers.iter().find(|p| p.attribute == "mobility.trips");
    let new_address = same_attribute.map(|p| p.uri.as_str()).unwrap_or_default();
    ensure!(new_address.starts_with(store), "the old pointer should forward to the new store");
    said(format!("its old pointer {old_address} forwards to {new_address}"));

    step(
        9,
        concat!(
            "Helsinki's operator withdraws the service's certification: at once no city serves\n",
            "   it, whatever Alice consented. Eindhoven's operator certifies it again."
        ),
    );
    let decertify = pb::DecertifyServiceRequest { service_id: SERVICE.to_owned() };
    helsinki.decertify_service(decertify).await.map_err(status_error)?;
    refused_at_every_city(service_at.each_mut(), "a withdrawn certification").await?;
    certify(&mut eindhoven).await?;
    service_at[HELSINKI].resolve(resolve_request()).await.map_err(status_error)?;
    said(format!("certified again, {SERVICE} resolves her from Helsinki"));

    step(10, "She withdraws her consent; the service, watching from Helsinki, acknowledges it.");
    let watch = pb::WatchConsentsRequest { service_id: SERVICE.to_owned() };
    let mut watched =
        service_at[HELSINKI].watch_consents(watch).await.map_err(status_error)?.into_inner();
    let withdraw = pb::WithdrawConsentRequest {
        citizen_id: citizen_id.clone(),
        consent_id: consent.consent_id.clone(),
        signature: None,
    };
    let withdraw = alice.signed(&mut valencia, withdraw).await?;
    valencia.withdraw_consent(withdraw).await.map_err(status_error)?;
    said(format!("consent {} withdrawn in Valencia", consent.consent_id));
    wait_for_withdrawal(&mut watched, &consent.consent_id).await?;
    said(format!("{SERVICE} saw the withdrawal on its watch stream"));
    let ack = pb::AcknowledgeWithdrawalRequest {
        service_id: SERVICE.to_owned(),
        consent_id: consent.consent_id.clone(),
    };
    service_at[HELSINKI].acknowledge_withdrawal(ack).await.map_err(status_error)?;
    let lookup = pb::GetCitizenRequest { citizen_id: citizen_id.clone() };
    let seen = eindhoven.get_citizen(lookup).await.map_err(status_error)?.into_inner();
    let acknowledged = seen.consents.iter().find(|c| c.consent_id == consent.consent_id);
    ensure!(
        acknowledged.is_some_and(|c| c.withdrawal_acknowledged_at_unix_ms != 0),
        "the acknowledgement should show on her consent"
    );
    said("she sees, from Eindhoven, that the service acknowledged it");

    step(11, "Every city now refuses the service.");
    refused_at_every_city(service_at.each_mut(), "the withdrawal").await?;

    step(12, "Alice reads her access log, from Helsinki: every access is there.");
    let log = whole_access_log(&mut helsinki, &citizen_id).await?;
    log.iter().rev().for_each(print_access_record);
    verify_access_chain(&log).map_err(anyhow::Error::msg)?;
    said(format!(
        "its hash chain holds over all {} records: none was rewritten or dropped",
        log.len()
    ));
    let released = log.iter().filter(|r| r.outcome == pb::AccessOutcome::Released as i32).count();
    ensure!(
        log.len() == 10 && released == 4,
        "expected 10 records (4 released), got {} ({released} released)",
        log.len()
    );

    step(13, "She exports everything the federation holds about her.");
    let exported = export(&mut valencia, &citizen_id).await?;
    let consents = exported["citizen"]["consents"].as_array().map(Vec::len).unwrap_or_default();
    let records = exported["access_log"].as_array().map(Vec::len).unwrap_or_default();
    said(format!(
        "{} bytes of JSON: {consents} consent, {records} access records, keys, locations",
        exported.to_string().len()
    ));

    step(14, "She leaves: her erasure is signed, and every city compacts her out of its disk.");
    let erase = pb::EraseCitizenRequest { citizen_id: citizen_id.clone(), signature: None };
    let erase = alice.signed(&mut valencia, erase).await?;
    valencia.erase_citizen(erase).await.map_err(status_error)?;
    for (position, client) in
        [(EINDHOVEN, &mut eindhoven), (HELSINKI, &mut helsinki), (VALENCIA, &mut valencia)]
    {
        wait_compacted(client).await?;
        said(format!("{:<13} holds no trace of her", CITIES[position].city_id));
    }
    let lookup = pb::GetCitizenRequest { citizen_id };
    match helsinki.get_citizen(lookup).await {
        Err(status) if status.code() == tonic::Code::NotFound => {
            said("the federation no longer knows her")
        }
        _ => bail!("an erased citizen is still found"),
    }
    Ok(())
}

/// Eindhoven's operator certifies the service for everything it declared, for a year.
async fn certify(client: &mut Client) -> anyhow::Result<pb::Certification> {
    let now_unix_ms = roamhub_node::node::now_unix_ms();
    let request = pb::CertifyServiceRequest {
        service_id: SERVICE.to_owned(),
        declarations: vec![pb::PurposeDeclaration {
            purpose: PURPOSE.to_owned(),
            attributes: ["mobility.trips", "mobility.pass", "mobility.home-station"]
                .map(String::from)
                .to_vec(),
        }],
        valid_until_unix_ms: now_unix_ms + CERTIFIED_FOR_MS,
    };
    let service = client.certify_service(request).await.map_err(status_error)?.into_inner();
    let certification = service.certification.context("a certification answers it")?;
    ensure!(certification.status == "certified", "the service should be certified now");
    Ok(certification)
}

/// Asks each city to resolve Alice for the service, and expects each to refuse because of
/// `cause`.
async fn refused_at_every_city(clients: [&mut Client; 3], cause: &str) -> anyhow::Result<()> {
    for (position, client) in clients.into_iter().enumerate() {
        let refused = client.resolve(resolve_request()).await;
        let city = CITIES[position].city_id;
        match refused {
            Err(status) if status.code() == tonic::Code::PermissionDenied => {
                said(format!("{city:<13} PermissionDenied: {}", status.message()));
            }
            Err(status) => bail!("{city} answered {:?}: {}", status.code(), status.message()),
            Ok(_) => bail!("{city} released pointers after {cause}"),
        }
    }
    Ok(())
}

/// How long a watching service may wait for a withdrawal to reach it.
const WATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a service's watch stream until the consent shows as withdrawn.
async fn wait_for_withdrawal(
    watched: &mut tonic::Streaming<pb::ServiceConsent>,
    consent_id: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + WATCH_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, watched.message())
            .await
            .context("the withdrawal did not reach the watching service in time")?
            .map_err(status_error)?
            .context("the watch stream ended")?;
        if event.consent_id == consent_id && event.status == pb::ConsentStatus::Withdrawn as i32 {
            return Ok(());
        }
    }
}

/// How long a city may take to compact its storage after an erasure.
const COMPACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits until a node has compacted every erasure it applied.
async fn wait_compacted(client: &mut Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + COMPACTION_TIMEOUT;
    loop {
        let status = client.node_status(pb::NodeStatusRequest {}).await.map_err(status_error)?;
        let status = status.into_inner();
        if status.erasures_applied > 0 && status.erasures_compacted >= status.erasures_applied {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{} did not compact in time", status.city_id);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn set_location(
    client: &mut Client,
    alice: &CitizenKey,
    citizen_id: &str,
    uri: &str,
    provider: &str,
) -> anyhow::Result<()> {
    let request = pb::SetLocationRequest {
        citizen_id: citizen_id.to_owned(),
        category: "mobility".to_owned(),
        uri: uri.to_owned(),
        provider: provider.to_owned(),
        signature: None,
    };
    let request = alice.signed(client, request).await?;
    client.set_location(request).await.map_err(status_error)?;
    Ok(())
}

/// A withdrawal signed with a key the operator made up, claiming to be Alice's.
async fn forged_withdrawal(
    client: &mut Client,
    citizen_id: &str,
    consent_id: &str,
    alice: &CitizenKey,
) -> anyhow::Result<pb::WithdrawConsentRequest> {
    let request = pb::WithdrawConsentRequest {
        citizen_id: citizen_id.to_owned(),
        consent_id: consent_id.to_owned(),
        signature: None,
    };
    let mut forged = CitizenKey::generate()?.signed(client, request).await?;
    if let Some(signature) = &mut forged.signature {
        signature.key_id = alice.public_key().key_id().to_string();
    }
    Ok(forged)
}

fn print_pointers(resolved: &pb::ResolveResponse) {
    said(format!(
        "the service knows her as {}; home city {} (access record {})",
        resolved.citizen_pseudonym, resolved.home_city, resolved.access_record
    ));
    for pointer in &resolved.pointers {
        said(format!("  {:<15} -> {}", pointer.attribute, pointer.uri));
    }
}

fn print_how_to_reach(federation: &LocalFederation, root: &Path) {
    println!("\nThe federation keeps running (data and logs in {}):", root.display());
    for node in &federation.nodes {
        println!("   {:<13} node {}  api {}", node.city.city_id, node.node_id, node.api_addr);
    }
    let first = &federation.nodes[0].api_addr;
    println!("Try, as Eindhoven's operator:");
    match federation.client_flags(&federation.operator(EINDHOVEN)) {
        Ok(flags) => {
            let flags = flags.join(" ");
            println!("   roamhub --node {first} {flags} federation members");
            println!("   roamhub --node {first} {flags} service list");
            println!("   roamhub --node {first} {flags} service decertify {SERVICE}");
        }
        Err(error) => println!("   (no operator certificate: {error:#})"),
    }
    println!("Stop it with: pkill -f 'roamhub serve'");
}
