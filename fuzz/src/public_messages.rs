//! Fuzzes the public API's edge: every rpc input of `roamhub.v1`, decoded by prost from
//! arbitrary bytes and turned into an index command by the node's conversions.
//!
//! The first byte picks the message type, the rest is its protobuf payload. A message that
//! decodes must re-encode to an equal message; its conversion must succeed or refuse with
//! `INVALID_ARGUMENT`, as the API promises. A command that converts is checked, survives the
//! trip through the log codec unchanged, and is applied to the seeded index, whose answer is
//! rendered back to protobuf as the API would.
//!
//! The API builds most commands inside its async handlers (`api.rs`), which are private; the
//! builders below follow them step by step through the public `convert` functions.

use std::sync::LazyLock;

use prost::Message;
use roamhub_index::limits::{ACCESS_LOG_PAGE_MAX, IDENTIFIERS_PER_CITIZEN_MAX};
use roamhub_index::{
    AccessLogPage, CitizenId, Command, ConsentId, ConsentsPage, FollowArgs, Query, QueryAnswer,
    Request, ResolveArgs, Response,
};
use roamhub_node::convert;
use roamhub_node::error::invalid;
use roamhub_node::identity::IdentifierKey;
use roamhub_proto::v1 as pb;
use roamhub_store::codec;
use tonic::{Code, Status};

use crate::federation::{self, SEEDED};

/// The federation's identifier key, as every node holds it; any fixed key will do.
pub static IDENTIFIER_KEY: LazyLock<IdentifierKey> =
    LazyLock::new(|| IdentifierKey::from_hex(&"11".repeat(32)).expect("a 32-byte hex key"));

/// What a request turns into at the node.
pub enum Built {
    Command(Command),
    Query(Query),
    /// Answered from Raft's state or by the node alone, never by the index.
    Nothing,
}

type Conversion<M> = fn(&M) -> Result<Built, Status>;

pub fn check(data: &[u8]) {
    let Some((&selector, payload)) = data.split_first() else { return };
    let Some(built) = convert_message(selector, payload) else { return };

    match built {
        Ok(Built::Command(command)) => apply(command),
        Ok(Built::Query(query)) => answer(&query),
        Ok(Built::Nothing) => {}
        Err(status) => assert_clean_refusal(&status),
    }
}

/// How many request types the selector byte chooses from.
pub const MESSAGE_KINDS: u8 = 31;

/// Decodes the payload as the request type `selector` picks and converts it; `None` when
/// prost refuses the bytes.
pub fn convert_message(selector: u8, payload: &[u8]) -> Option<Result<Built, Status>> {
    match selector % MESSAGE_KINDS {
        0 => decoded::<pb::RegisterCitizenRequest>(payload, register_citizen),
        1 => decoded::<pb::HashIdentifiersRequest>(payload, hash_identifiers),
        2 => decoded::<pb::AddIdentifierRequest>(payload, |r| {
            let op = convert::add_identifier_op(r, &IDENTIFIER_KEY)?;
            citizen_op(&r.citizen_id, op, r.signature.as_ref())
        }),
        3 => decoded::<pb::MoveHomeRequest>(payload, |r| {
            citizen_op(&r.citizen_id, convert::move_home_op(r)?, r.signature.as_ref())
        }),
        4 => decoded::<pb::GetCitizenRequest>(payload, |r| {
            Ok(Built::Query(Query::Citizen(convert::citizen_id(&r.citizen_id)?)))
        }),
        5 => decoded::<pb::EraseCitizenRequest>(payload, |r| {
            citizen_op(&r.citizen_id, convert::erase_op(r)?, r.signature.as_ref())
        }),
        6 => decoded::<pb::AddKeyRequest>(payload, |r| {
            citizen_op(&r.citizen_id, convert::add_key_op(r)?, r.signature.as_ref())
        }),
        7 => decoded::<pb::RemoveKeyRequest>(payload, |r| {
            citizen_op(&r.citizen_id, convert::remove_key_op(r)?, r.signature.as_ref())
        }),
        8 => decoded::<pb::RecoverKeyRequest>(payload, |r| {
            Ok(Built::Command(Command::RecoverKey {
                citizen_id: convert::citizen_id(&r.citizen_id)?,
                public_key: convert::public_key("public_key", &r.public_key)?,
                by_city: operator_city(),
            }))
        }),
        9 => decoded::<pb::SetLocationRequest>(payload, |r| {
            citizen_op(&r.citizen_id, convert::set_location_op(r)?, r.signature.as_ref())
        }),
        10 => decoded::<pb::RegisterServiceRequest>(payload, |r| {
            Ok(Built::Command(Command::RegisterService {
                service_id: convert::service_id(&r.service_id)?,
                organisation: r.organisation.clone(),
                declarations: convert::declarations(&r.declarations)?,
            }))
        }),
        11 => decoded::<pb::ListServicesRequest>(payload, |_| Ok(Built::Query(Query::Services))),
        12 => decoded::<pb::CertifyServiceRequest>(payload, |r| {
            Ok(Built::Command(Command::CertifyService {
                service_id: convert::service_id(&r.service_id)?,
                by_city: operator_city(),
                declarations: convert::declarations(&r.declarations)?,
                valid_until_unix_ms: r.valid_until_unix_ms,
            }))
        }),
        13 => decoded::<pb::DecertifyServiceRequest>(payload, |r| {
            let service_id = convert::service_id(&r.service_id)?;
            Ok(Built::Command(Command::DecertifyService { service_id, by_city: operator_city() }))
        }),
        14 => decoded::<pb::GrantConsentRequest>(payload, |r| {
            citizen_op(&r.citizen_id, convert::grant_consent_op(r)?, r.signature.as_ref())
        }),
        15 => decoded::<pb::WithdrawConsentRequest>(payload, |r| {
            citizen_op(&r.citizen_id, convert::withdraw_consent_op(r)?, r.signature.as_ref())
        }),
        16 => decoded::<pb::RenewConsentRequest>(payload, |r| {
            citizen_op(&r.citizen_id, convert::renew_consent_op(r)?, r.signature.as_ref())
        }),
        17 => decoded::<pb::RevokeConsentRequest>(payload, |r| {
            let consent_id = consent_id(&r.consent_id)?;
            Ok(Built::Command(Command::RevokeConsent { consent_id, by_city: operator_city() }))
        }),
        18 => decoded::<pb::SetConsentLifetimeMaxRequest>(payload, |r| {
            let lifetime_max_ms = convert::optional_time(r.lifetime_max_ms);
            Ok(Built::Command(Command::SetConsentLifetimeMax { lifetime_max_ms }))
        }),
        19 => decoded::<pb::WatchConsentsRequest>(payload, |r| {
            let service_id = convert::service_id(&r.service_id)?;
            let page = ConsentsPage { service_id, limit: 64, after_consent: None };
            Ok(Built::Query(Query::ConsentsOfService(page)))
        }),
        20 => decoded::<pb::AcknowledgeWithdrawalRequest>(payload, |r| {
            let service_id = convert::service_id(&r.service_id)?;
            let consent_id = consent_id(&r.consent_id)?;
            Ok(Built::Command(Command::AcknowledgeWithdrawal { service_id, consent_id }))
        }),
        21 => decoded::<pb::ResolveRequest>(payload, resolve),
        22 => decoded::<pb::FollowPointerRequest>(payload, follow_pointer),
        23 => decoded::<pb::ReadAccessLogRequest>(payload, read_access_log),
        24 => decoded::<pb::ListMembersRequest>(payload, |_| Ok(Built::Query(Query::Members))),
        25 => decoded::<pb::RaftMembersRequest>(payload, |_| Ok(Built::Nothing)),
        26 => decoded::<pb::AddLearnerRequest>(payload, |r| match r.node_id {
            0 => Err(Status::invalid_argument("node_id: must not be zero")),
            _ => Ok(Built::Nothing),
        }),
        27 => decoded::<pb::PromoteVoterRequest>(payload, |_| Ok(Built::Nothing)),
        28 => decoded::<pb::RemoveNodeRequest>(payload, |r| {
            Ok(match SEEDED.city_of_node(r.node_id).cloned() {
                Some(city_id) => Built::Command(Command::RemoveMember { city_id }),
                None => Built::Nothing,
            })
        }),
        29 => decoded::<pb::NodeStatusRequest>(payload, |_| Ok(Built::Nothing)),
        _ => decoded::<pb::StateDigestRequest>(payload, |_| Ok(Built::Nothing)),
    }
}

/// Decodes one message; one that decodes must survive prost's own round trip.
fn decoded<M>(payload: &[u8], convert: Conversion<M>) -> Option<Result<Built, Status>>
where
    M: Message + Default + PartialEq,
{
    let message = M::decode(payload).ok()?;
    let again = M::decode(message.encode_to_vec().as_slice()).expect("prost re-decodes");
    assert!(again == message, "prost round trip changed the message");
    Some(convert(&message))
}

/// Under TLS the operator's certificate names the city; the seeded home city stands in.
fn operator_city() -> roamhub_index::CityId {
    federation::city(federation::HOME_CITY)
}

fn consent_id(value: &str) -> Result<ConsentId, Status> {
    ConsentId::parse("consent_id", value).map_err(invalid)
}

fn citizen_op(
    citizen_id: &str,
    op: roamhub_index::CitizenOp,
    signature: Option<&pb::CitizenSignature>,
) -> Result<Built, Status> {
    let citizen_id = convert::citizen_id(citizen_id)?;
    let auth = convert::citizen_auth(signature)?;
    Ok(Built::Command(Command::Citizen { citizen_id, op, auth }))
}

fn register_citizen(request: &pb::RegisterCitizenRequest) -> Result<Built, Status> {
    let home_city = convert::city_id("home_city", &request.home_city)?;
    let identifiers = request
        .identifiers
        .iter()
        .map(|identifier| convert::identifier("identifiers", Some(identifier), &IDENTIFIER_KEY))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Built::Command(Command::RegisterCitizen {
        // The node draws this at random; any fresh id will do.
        citizen_id: CitizenId::from_random([9; 16]),
        home_city,
        identifiers,
        public_key: convert::public_key("public_key", &request.public_key)?,
        proof: request.proof.clone(),
    }))
}

fn hash_identifiers(request: &pb::HashIdentifiersRequest) -> Result<Built, Status> {
    if request.identifiers.len() > IDENTIFIERS_PER_CITIZEN_MAX {
        return Err(Status::invalid_argument("identifiers: too many in one request"));
    }
    for clear in &request.identifiers {
        let hashed = convert::identifier("identifiers", Some(clear), &IDENTIFIER_KEY)?;
        convert::pb_identifier(&hashed).encode_to_vec();
    }
    Ok(Built::Nothing)
}

fn resolve(request: &pb::ResolveRequest) -> Result<Built, Status> {
    let service_id = convert::service_id(&request.service_id)?;
    let args = ResolveArgs {
        identifier: convert::identifier(
            "identifier",
            request.identifier.as_ref(),
            &IDENTIFIER_KEY,
        )?,
        service_id,
        purpose: convert::purpose("purpose", &request.purpose)?,
        attributes: convert::attributes("attributes", &request.attributes)?,
        via_city: federation::city(federation::OTHER_CITY),
    };
    // The node's resolver proposes resolutions in batches.
    Ok(Built::Command(Command::ResolveBatch(vec![args])))
}

fn follow_pointer(request: &pb::FollowPointerRequest) -> Result<Built, Status> {
    let service_id = convert::service_id(&request.service_id)?;
    let args = FollowArgs {
        old_uri: request.old_uri.clone(),
        service_id,
        purpose: convert::purpose("purpose", &request.purpose)?,
        via_city: federation::city(federation::OTHER_CITY),
    };
    Ok(Built::Command(Command::FollowPointer(args)))
}

fn read_access_log(request: &pb::ReadAccessLogRequest) -> Result<Built, Status> {
    let limit = match request.limit {
        0 => ACCESS_LOG_PAGE_MAX,
        limit => (limit as usize).min(ACCESS_LOG_PAGE_MAX),
    };
    let page = AccessLogPage {
        citizen_id: convert::citizen_id(&request.citizen_id)?,
        limit,
        before_record: (request.before_record != 0).then_some(request.before_record),
        service_id: match request.service_id.as_str() {
            "" => None,
            service_id => Some(convert::service_id(service_id)?),
        },
        purpose: match request.purpose.as_str() {
            "" => None,
            purpose => Some(convert::purpose("purpose", purpose)?),
        },
    };
    Ok(Built::Query(Query::AccessLog(page)))
}

/// Every refusal at the edge is `INVALID_ARGUMENT` with a message naming the field.
fn assert_clean_refusal(status: &Status) {
    assert_eq!(status.code(), Code::InvalidArgument, "refused as {status:?}");
    assert!(!status.message().is_empty(), "a refusal without a message");
}

/// Checks, logs and applies a converted command as the leader would.
fn apply(command: Command) {
    let _ = command.check();
    let request = Request { at_unix_ms: federation::now_unix_ms(), command };
    let logged: Request = codec::decode(&codec::encode(&request)).expect("a request decodes");
    assert!(logged == request, "the log codec changed the request");

    let mut index = SEEDED.clone();
    if let Ok(response) = index.apply(&request) {
        render_response(&response);
    }
}

fn answer(query: &Query) {
    if let Ok(answer) = SEEDED.query(query) {
        render_answer(&answer);
    }
}

/// Renders an applied command's answer as the API would send it.
pub fn render_response(response: &Response) {
    let now = federation::now_unix_ms();
    let bytes = match response {
        Response::MemberUpserted(member) => convert::pb_member(member).encode_to_vec(),
        Response::CitizenRegistered(citizen_id) => citizen_id.to_string().into_bytes(),
        Response::ServiceRegistered(service) | Response::Service(service) => {
            convert::pb_service(service, now).encode_to_vec()
        }
        Response::Citizen(citizen) => convert::pb_citizen(citizen, now).encode_to_vec(),
        Response::Location(location) => convert::pb_location(location).encode_to_vec(),
        Response::Consent(consent) => {
            let pseudonym = IDENTIFIER_KEY.pseudonym(&consent.citizen_id, &consent.service_id);
            convert::pb_service_consent(consent, pseudonym, now).encode_to_vec()
        }
        Response::Resolution(resolution) => render_resolution(resolution),
        Response::Resolutions(outcomes) => {
            outcomes.iter().flatten().flat_map(render_resolution).collect()
        }
        Response::PolicySet | Response::MemberRemoved(_) | Response::Erased { .. } => Vec::new(),
    };
    std::hint::black_box(bytes);
}

fn render_resolution(resolution: &roamhub_index::Resolution) -> Vec<u8> {
    let pseudonym = IDENTIFIER_KEY.pseudonym(&resolution.citizen_id, &federation::service_id());
    convert::pb_resolution(resolution, pseudonym).encode_to_vec()
}

/// Renders a query's answer as the API would send it.
pub fn render_answer(answer: &QueryAnswer) {
    let now = federation::now_unix_ms();
    let bytes: Vec<u8> = match answer {
        QueryAnswer::Citizen(citizen) => convert::pb_citizen(citizen, now).encode_to_vec(),
        QueryAnswer::AccessLog(records) => {
            records.iter().flat_map(|r| convert::pb_access_record(r).encode_to_vec()).collect()
        }
        QueryAnswer::Members(members) => {
            members.iter().flat_map(|m| convert::pb_member(m).encode_to_vec()).collect()
        }
        QueryAnswer::Services(services) => {
            services.iter().flat_map(|s| convert::pb_service(s, now).encode_to_vec()).collect()
        }
        QueryAnswer::Consents(consents) => {
            consents.iter().flat_map(|c| convert::pb_consent(c, now).encode_to_vec()).collect()
        }
    };
    std::hint::black_box(bytes);
}
