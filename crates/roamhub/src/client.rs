//! The client subcommands: one gRPC call each, answered in readable text or, with `--json`,
//! as one JSON document on standard output.

use std::time::Duration;

use anyhow::{anyhow, bail};
use roamhub_proto::v1 as pb;
use roamhub_proto::v1::roamhub_client::RoamhubClient;
use serde::Serialize;
use tonic::transport::Channel;

use roamhub_index::access_chain;
use roamhub_node::Transport;

use crate::cli::{
    AccessLogArgs, CitizenCommand, ClientCommand, ClientOptions, ConsentCommand, FederationCommand,
    LocationCommand, ResolveArgs,
};
use crate::keystore::{CitizenKey, CitizenRequest, Keystore};
use crate::{membership, services};

/// How long the client waits for an answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

pub type Client = RoamhubClient<Channel>;

/// A client of the node at `node` (`host:port`), secured as `transport` says. The
/// connection opens at the first call.
pub fn connect(node: &str, transport: &Transport) -> anyhow::Result<Client> {
    let channel = transport.channel(node, CALL_TIMEOUT)?;
    Ok(RoamhubClient::new(channel))
}

/// Turns a gRPC status into an error that reads `NotFound: citizen_id not found: ...`.
/// A connection the node closed gets a hint: under TLS a node tells a refused client no
/// more than that.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    let source = std::error::Error::source(&status);
    if source.is_some_and(|source| source.is::<tonic::transport::Error>()) {
        return anyhow!(
            "{:?}: {} (the connection failed: is the node up, and is your certificate issued \
             by the federation's authority, current and not revoked?)",
            status.code(),
            status.message()
        );
    }
    anyhow!("{:?}: {}", status.code(), status.message())
}

/// What the client subcommands share: the connection, the output mode and the keystore.
struct Session {
    client: Client,
    transport: Transport,
    json: bool,
    keystore: Keystore,
}

impl Session {
    /// Signs a request with the citizen's key from the keystore, as their next operation.
    async fn signed<R: CitizenRequest>(&mut self, request: R) -> anyhow::Result<R> {
        let key = self.keystore.load(request.citizen_id())?;
        key.signed(&mut self.client, request).await
    }
}

pub async fn run(
    options: ClientOptions,
    transport: Transport,
    command: ClientCommand,
) -> anyhow::Result<()> {
    let client = connect(&options.node, &transport)?;
    let keystore = Keystore::open(options.keystore.as_deref())?;
    let mut session = Session { client, transport, json: options.json, keystore };
    let json = options.json;
    let client = &mut session.client;
    match command {
        ClientCommand::Citizen(command) => citizen(&mut session, command).await,
        ClientCommand::Location(command) => location(&mut session, command).await,
        ClientCommand::Consent(command) => consent(&mut session, command).await,
        ClientCommand::Service(command) => services::run(client, json, command).await,
        ClientCommand::Resolve(args) => resolve(client, json, args).await,
        ClientCommand::AccessLog(args) => access_log(client, json, args).await,
        ClientCommand::Follow { old_uri, service, purpose } => {
            let request = pb::FollowPointerRequest { old_uri, service_id: service, purpose };
            let reply = client.follow_pointer(request).await.map_err(status_error)?.into_inner();
            emit(json, &reply, print_resolution)
        }
        ClientCommand::Federation(command) => {
            federation(client, &session.transport, json, command).await
        }
    }
}

/// Prints `value` as JSON, or through `human`.
pub fn emit<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human(value);
    }
    Ok(())
}

/// Parses `SCHEME=VALUE`.
pub fn parse_identifier(spec: &str) -> anyhow::Result<pb::Identifier> {
    let Some((scheme, value)) = spec.split_once('=') else {
        bail!("identifier {spec:?} is not SCHEME=VALUE");
    };
    Ok(pb::Identifier { scheme: scheme.to_owned(), value: value.to_owned() })
}

fn parse_legal_basis(name: &str) -> anyhow::Result<pb::LegalBasis> {
    let proto_name = format!("LEGAL_BASIS_{}", name.replace('-', "_").to_ascii_uppercase());
    pb::LegalBasis::from_str_name(&proto_name)
        .ok_or_else(|| anyhow!("unknown legal basis {name:?}"))
}

async fn get_citizen(client: &mut Client, citizen_id: String) -> anyhow::Result<pb::Citizen> {
    let request = pb::GetCitizenRequest { citizen_id };
    Ok(client.get_citizen(request).await.map_err(status_error)?.into_inner())
}

async fn citizen(session: &mut Session, command: CitizenCommand) -> anyhow::Result<()> {
    let json = session.json;
    match command {
        CitizenCommand::Register { home_city, identifiers } => {
            let identifiers = identifiers
                .iter()
                .map(|spec| parse_identifier(spec))
                .collect::<anyhow::Result<_>>()?;
            let key = CitizenKey::generate()?;
            let request = key.registration(&mut session.client, &home_city, identifiers).await?;
            let reply = session.client.register_citizen(request).await.map_err(status_error)?;
            let reply = reply.into_inner();
            let path = session.keystore.save(&reply.citizen_id, &key)?;
            eprintln!("key {} kept in {}", key.public_key().key_id(), path.display());
            emit(json, &reply, |r| println!("{}", r.citizen_id))
        }
        CitizenCommand::Show { citizen_id } => {
            let citizen = get_citizen(&mut session.client, citizen_id).await?;
            emit(json, &citizen, print_citizen)
        }
        CitizenCommand::AddIdentifier { citizen_id, identifier } => {
            let identifier = Some(parse_identifier(&identifier)?);
            let request = session
                .signed(pb::AddIdentifierRequest { citizen_id, identifier, signature: None })
                .await?;
            let citizen = session.client.add_identifier(request).await.map_err(status_error)?;
            emit(json, &citizen.into_inner(), print_citizen)
        }
        CitizenCommand::Move { citizen_id, to_city } => {
            let request = session
                .signed(pb::MoveHomeRequest { citizen_id, to_city, signature: None })
                .await?;
            let citizen = session.client.move_home(request).await.map_err(status_error)?;
            emit(json, &citizen.into_inner(), print_citizen)
        }
        CitizenCommand::Erase { citizen_id } => {
            let request = pb::EraseCitizenRequest { citizen_id, signature: None };
            let request = session.signed(request).await?;
            let reply = session.client.erase_citizen(request).await.map_err(status_error)?;
            emit(json, &reply.into_inner(), |_| println!("erased; every node now compacts"))
        }
        CitizenCommand::Export { citizen_id } => {
            let export = export(&mut session.client, &citizen_id).await?;
            println!("{}", serde_json::to_string_pretty(&export)?);
            Ok(())
        }
        CitizenCommand::RotateKey { citizen_id } => {
            let citizen = rotate_key(session, &citizen_id).await?;
            emit(json, &citizen, print_citizen)
        }
        CitizenCommand::RemoveKey { citizen_id, key_id } => {
            let citizen = remove_key(session, &citizen_id, key_id).await?;
            emit(json, &citizen, print_citizen)
        }
        CitizenCommand::RecoverKey { citizen_id } => {
            let citizen = recover_key(session, &citizen_id).await?;
            emit(json, &citizen, print_citizen)
        }
    }
}

async fn remove_key(
    session: &mut Session,
    citizen_id: &str,
    key_id: String,
) -> anyhow::Result<pb::Citizen> {
    let request = session
        .signed(pb::RemoveKeyRequest { citizen_id: citizen_id.to_owned(), key_id, signature: None })
        .await?;
    Ok(session.client.remove_key(request).await.map_err(status_error)?.into_inner())
}

/// Adds a fresh key signed by the stored one, keeps the fresh one, then removes the old key
/// signed by the fresh one.
async fn rotate_key(session: &mut Session, citizen_id: &str) -> anyhow::Result<pb::Citizen> {
    let old_key_id = session.keystore.load(citizen_id)?.public_key().key_id().to_string();
    let new_key = CitizenKey::generate()?;
    let request = session
        .signed(pb::AddKeyRequest {
            citizen_id: citizen_id.to_owned(),
            public_key: new_key.public_key().as_bytes().to_vec(),
            signature: None,
        })
        .await?;
    session.client.add_key(request).await.map_err(status_error)?;

    session.keystore.save(citizen_id, &new_key)?;
    remove_key(session, citizen_id, old_key_id).await
}

async fn recover_key(session: &mut Session, citizen_id: &str) -> anyhow::Result<pb::Citizen> {
    let new_key = CitizenKey::generate()?;
    let request = pb::RecoverKeyRequest {
        citizen_id: citizen_id.to_owned(),
        public_key: new_key.public_key().as_bytes().to_vec(),
    };
    let citizen = session.client.recover_key(request).await.map_err(status_error)?.into_inner();
    session.keystore.save(citizen_id, &new_key)?;
    Ok(citizen)
}

async fn location(session: &mut Session, command: LocationCommand) -> anyhow::Result<()> {
    let json = session.json;
    match command {
        LocationCommand::Set { citizen_id, category, uri, provider } => {
            let request = session
                .signed(pb::SetLocationRequest {
                    citizen_id,
                    category,
                    uri,
                    provider,
                    signature: None,
                })
                .await?;
            let location = session.client.set_location(request).await.map_err(status_error)?;
            emit(json, &location.into_inner(), print_location)
        }
        LocationCommand::List { citizen_id } => {
            let locations = get_citizen(&mut session.client, citizen_id).await?.locations;
            emit(json, &locations, |all| all.iter().for_each(print_location))
        }
    }
}

async fn consent(session: &mut Session, command: ConsentCommand) -> anyhow::Result<()> {
    let json = session.json;
    match command {
        ConsentCommand::Grant {
            citizen_id,
            service,
            purpose,
            attributes,
            legal_basis,
            valid_until_ms,
            identity_scheme,
        } => {
            let request = session
                .signed(pb::GrantConsentRequest {
                    citizen_id,
                    service_id: service,
                    purpose,
                    attributes,
                    legal_basis: parse_legal_basis(&legal_basis)?.into(),
                    valid_from_unix_ms: 0,
                    valid_until_unix_ms: valid_until_ms.unwrap_or_default(),
                    signature: None,
                    identity_scheme: identity_scheme.unwrap_or_default(),
                })
                .await?;
            let consent = session.client.grant_consent(request).await.map_err(status_error)?;
            let consent = consent.into_inner();
            if let Some(receipt) = &consent.receipt {
                let path = session.keystore.save_receipt(&consent.consent_id, receipt)?;
                eprintln!("receipt kept in {}", path.display());
            }
            emit(json, &consent, print_consent)
        }
        ConsentCommand::Withdraw { citizen_id, consent_id } => {
            let request = session
                .signed(pb::WithdrawConsentRequest { citizen_id, consent_id, signature: None })
                .await?;
            let consent = session.client.withdraw_consent(request).await.map_err(status_error)?;
            emit(json, &consent.into_inner(), print_consent)
        }
        ConsentCommand::Renew { citizen_id, consent_id, valid_until_ms } => {
            let request = pb::RenewConsentRequest {
                citizen_id,
                consent_id,
                valid_until_unix_ms: valid_until_ms.unwrap_or_default(),
                signature: None,
            };
            let request = session.signed(request).await?;
            let consent = session.client.renew_consent(request).await.map_err(status_error)?;
            emit(json, &consent.into_inner(), print_consent)
        }
        ConsentCommand::Revoke { consent_id } => {
            let request = pb::RevokeConsentRequest { consent_id };
            let consent = session.client.revoke_consent(request).await.map_err(status_error)?;
            emit(json, &consent.into_inner(), print_consent)
        }
        ConsentCommand::List { citizen_id } => {
            let consents = get_citizen(&mut session.client, citizen_id).await?.consents;
            emit(json, &consents, |all| all.iter().for_each(print_consent))
        }
    }
}

async fn resolve(client: &mut Client, json: bool, args: ResolveArgs) -> anyhow::Result<()> {
    let request = pb::ResolveRequest {
        identifier: Some(parse_identifier(&args.identifier)?),
        service_id: args.service,
        purpose: args.purpose,
        attributes: args.attributes,
    };
    let reply = client.resolve(request).await.map_err(status_error)?.into_inner();
    emit(json, &reply, print_resolution)
}

async fn access_log(client: &mut Client, json: bool, args: AccessLogArgs) -> anyhow::Result<()> {
    if args.verify {
        let records = whole_access_log(client, &args.citizen_id).await?;
        let verified = verify_access_chain(&records);
        let summary =
            serde_json::json!({ "records": records.len(), "chain_holds": verified.is_ok() });
        emit(json, &summary, |_| match &verified {
            Ok(()) => println!("hash chain holds over {} records", records.len()),
            Err(problem) => println!("hash chain BROKEN: {problem}"),
        })?;
        return verified.map_err(anyhow::Error::msg);
    }

    let request = pb::ReadAccessLogRequest {
        citizen_id: args.citizen_id,
        limit: args.limit,
        before_record: args.before.unwrap_or_default(),
        service_id: args.service.unwrap_or_default(),
        purpose: args.purpose.unwrap_or_default(),
    };
    let reply = client.read_access_log(request).await.map_err(status_error)?.into_inner();
    emit(json, &reply, |page| {
        page.records.iter().for_each(print_access_record);
        if page.next_before_record != 0 {
            println!("  more: --before {}", page.next_before_record);
        }
    })
}

/// The version of the export document's layout, described in the README.
pub const EXPORT_FORMAT: &str = "roamhub-citizen-export/v1";

/// Everything the index holds about a citizen: their record and their whole access log.
pub async fn export(client: &mut Client, citizen_id: &str) -> anyhow::Result<serde_json::Value> {
    let citizen = get_citizen(client, citizen_id.to_owned()).await?;
    let access_log = whole_access_log(client, citizen_id).await?;
    let chain_holds = verify_access_chain(&access_log).is_ok();
    Ok(serde_json::json!({
        "format": EXPORT_FORMAT,
        "citizen": citizen,
        "access_log": access_log,
        "access_log_chain_holds": chain_holds,
    }))
}

/// Every access record of a citizen, oldest first, read page by page.
pub async fn whole_access_log(
    client: &mut Client,
    citizen_id: &str,
) -> anyhow::Result<Vec<pb::AccessRecord>> {
    let mut records = Vec::new();
    let mut before_record = 0;
    loop {
        let request = pb::ReadAccessLogRequest {
            citizen_id: citizen_id.to_owned(),
            before_record,
            ..Default::default()
        };
        let page = client.read_access_log(request).await.map_err(status_error)?.into_inner();
        records.extend(page.records);
        if page.next_before_record == 0 {
            break;
        }
        before_record = page.next_before_record;
    }
    records.reverse();
    Ok(records)
}

/// Checks that records, oldest first and complete, form an unbroken hash chain.
pub fn verify_access_chain(records: &[pb::AccessRecord]) -> Result<(), String> {
    let mut prev_hash = access_chain::GENESIS;
    for record in records {
        if record.prev_hash != prev_hash {
            return Err(format!("record {} does not follow its predecessor", record.record));
        }
        let requested: Vec<&str> = record.attributes_requested.iter().map(String::as_str).collect();
        let released: Vec<&str> = record.attributes_released.iter().map(String::as_str).collect();
        let fields = access_chain::LinkFields {
            record: record.record,
            at_unix_ms: record.at_unix_ms,
            service_id: &record.service_id,
            purpose: &record.purpose,
            via_city: &record.via_city,
            attributes_requested: &requested,
            attributes_released: &released,
            refusal: &record.reason,
        };
        let hash = access_chain::link_hash(&prev_hash, &fields);
        if record.hash != hash {
            return Err(format!("record {} does not match its hash", record.record));
        }
        prev_hash = hash;
    }
    Ok(())
}

async fn federation(
    client: &mut Client,
    transport: &Transport,
    json: bool,
    command: FederationCommand,
) -> anyhow::Result<()> {
    match command {
        FederationCommand::Members => {
            let reply =
                client.list_members(pb::ListMembersRequest {}).await.map_err(status_error)?;
            let members = reply.into_inner().members;
            let mut leader = membership::leader(client, transport).await?;
            let group =
                leader.raft_members(pb::RaftMembersRequest {}).await.map_err(status_error)?;
            let group = group.into_inner();
            let both = serde_json::json!({ "cities": members, "raft": group });
            emit(json, &both, |_| {
                members.iter().for_each(print_member);
                membership::print_raft_members(&group);
            })
        }
        FederationCommand::Join { node_id, raft_addr, api_addr, timeout_secs } => {
            let learner = pb::AddLearnerRequest { node_id, raft_addr, api_addr };
            let timeout = Duration::from_secs(timeout_secs);
            let group = membership::join(client, transport, learner, timeout).await?;
            emit(json, &group, membership::print_raft_members)
        }
        FederationCommand::Leave => {
            let group = membership::leave(client, transport).await?;
            emit(json, &group, membership::print_raft_members)
        }
        FederationCommand::Remove { node_id } => {
            let group = membership::remove(client, transport, node_id).await?;
            emit(json, &group, membership::print_raft_members)
        }
        FederationCommand::SetConsentLifetimeMax { days } => {
            let lifetime_max_ms = days.saturating_mul(86_400_000);
            let request = pb::SetConsentLifetimeMaxRequest { lifetime_max_ms };
            client.set_consent_lifetime_max(request).await.map_err(status_error)?;
            emit(json, &serde_json::json!({ "lifetime_max_ms": lifetime_max_ms }), |_| {
                println!("consents now last at most {days} days (0: no limit)")
            })
        }
        FederationCommand::Status => {
            let reply = client.node_status(pb::NodeStatusRequest {}).await.map_err(status_error)?;
            emit(json, &reply.into_inner(), print_status)
        }
    }
}

/// Renders milliseconds since the Unix epoch as `YYYY-MM-DD hh:mm:ss UTC`.
pub fn format_time(unix_ms: u64) -> String {
    let seconds = unix_ms / 1000;
    let (days, time_of_day) = (seconds / 86_400, seconds % 86_400);
    // Civil date from days since 1970-01-01, after Howard Hinnant's public-domain algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let (hour, minute, second) = (time_of_day / 3600, time_of_day / 60 % 60, time_of_day % 60);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}

pub fn print_citizen(citizen: &pb::Citizen) {
    println!("citizen {}", citizen.citizen_id);
    println!("  home city:   {}", citizen.home_city);
    for period in &citizen.home_history {
        println!("  earlier home: {} until {}", period.city, format_time(period.until_unix_ms));
    }
    let identifiers: Vec<String> =
        citizen.identifiers.iter().map(|i| format!("{}={}", i.scheme, i.value)).collect();
    println!("  identifiers: {}", identifiers.join(", "));
    let keys: Vec<&str> = citizen.keys.iter().map(|k| k.key_id.as_str()).collect();
    println!("  keys:        {} (next operation: {})", keys.join(", "), citizen.next_sequence);
    for event in &citizen.key_history {
        let by = if event.by.is_empty() { String::new() } else { format!(" by {}", event.by) };
        println!(
            "  key {} {}{} at {}",
            event.key_id,
            event.change,
            by,
            format_time(event.at_unix_ms)
        );
    }
    citizen.locations.iter().for_each(print_location);
    citizen.consents.iter().for_each(print_consent);
}

pub fn print_location(location: &pb::DataLocation) {
    let current = location.current.clone().unwrap_or_default();
    println!("  data {:<10} -> {} ({})", location.category, current.uri, current.provider);
    for earlier in &location.history {
        println!(
            "       {:<10}    was {} ({}) until {}",
            "",
            earlier.uri,
            earlier.provider,
            format_time(earlier.until_unix_ms)
        );
    }
}

pub fn print_consent(consent: &pb::Consent) {
    let status = pb::ConsentStatus::try_from(consent.status)
        .map(|s| s.as_str_name().trim_start_matches("CONSENT_STATUS_").to_ascii_lowercase())
        .unwrap_or_default();
    println!(
        "  consent {} [{}] {} for {}: {}",
        consent.consent_id,
        status,
        consent.service_id,
        consent.purpose,
        consent.attributes.join(", ")
    );
}

pub fn print_resolution(resolution: &pb::ResolveResponse) {
    println!(
        "  citizen {} in home city {} (access record {})",
        resolution.citizen_pseudonym, resolution.home_city, resolution.access_record
    );
    for pointer in &resolution.pointers {
        println!("  {:<16} -> {} ({})", pointer.attribute, pointer.uri, pointer.provider);
    }
    if !resolution.unavailable.is_empty() {
        println!("  no location yet for: {}", resolution.unavailable.join(", "));
    }
}

pub fn print_access_record(record: &pb::AccessRecord) {
    let what = match pb::AccessOutcome::try_from(record.outcome) {
        Ok(pb::AccessOutcome::Released) => {
            format!("released {}", record.attributes_released.join(", "))
        }
        _ => format!("refused: {}", record.reason),
    };
    println!(
        "  #{:<4} {}  {} for {} via {}: {}",
        record.record,
        format_time(record.at_unix_ms),
        record.service_id,
        record.purpose,
        record.via_city,
        what
    );
}

pub fn print_member(member: &pb::Member) {
    println!(
        "{:<16} {:<12} {}  node {} at {}",
        member.city_id,
        member.display_name,
        member.country,
        member.raft_node_id,
        member.api_endpoint
    );
}

pub fn print_status(status: &pb::NodeStatusResponse) {
    println!(
        "{} (node {}): {}, leader node {}, term {}, log {}, applied {}, voters {:?}",
        status.city_id,
        status.raft_node_id,
        status.role,
        status.leader_node_id,
        status.term,
        status.last_log_index,
        status.last_applied_index,
        status.voters
    );
}
