//! Shared set-up of the index's unit tests: ids, signed citizen operations, and a seeded
//! federation with a certified service and a citizen.

#![allow(dead_code)]

use roamhub_index::{
    AccessLogPage, Attribute, CitizenAuth, CitizenId, CitizenOp, CityId, Command, ConsentGrant,
    Identifier, Index, IndexError, LegalBasis, Member, Purpose, PurposeDeclaration, Query,
    QueryAnswer, Request, ResolveArgs, Response, ServiceId, signing,
};

pub const T0: u64 = 1_700_000_000_000;

pub fn city(id: &str) -> CityId {
    CityId::parse("city", id).unwrap()
}

pub fn attr(value: &str) -> Attribute {
    Attribute::parse("attribute", value).unwrap()
}

pub fn ident(value: &str) -> Identifier {
    // Nodes hash identifiers with a keyed hash; any fixed 32-byte digest stands in for it.
    let digest: String = value.bytes().cycle().take(32).map(|b| format!("{b:02x}")).collect();
    Identifier::from_digest("identifier", "city-account", &digest).unwrap()
}

pub fn alice() -> CitizenId {
    CitizenId::from_random([7; 16])
}

pub fn service() -> ServiceId {
    ServiceId::parse("service_id", "ride.share").unwrap()
}

pub fn purpose() -> Purpose {
    Purpose::parse("purpose", "trip-planning").unwrap()
}

pub fn apply(index: &mut Index, at: u64, command: Command) -> Result<Response, IndexError> {
    index.apply(&Request { at_unix_ms: at, command })
}

pub fn member(id: &str, node: u64) -> Command {
    let city_id = city(id);
    Command::UpsertMember(Member {
        country: city_id.country(),
        city_id,
        display_name: id.to_owned(),
        api_endpoint: format!("127.0.0.1:{}", 7000 + node),
        raft_node_id: node,
        identifier_key_check: "check-1".to_owned(),
    })
}

pub const ALICE_SECRET: [u8; 32] = [42; 32];

/// Alice's operation, signed with her key as her next one.
pub fn citizen_op(index: &Index, op: CitizenOp) -> Command {
    signed_as(index, alice(), &ALICE_SECRET, op)
}

pub fn next_sequence(index: &Index, citizen_id: &CitizenId) -> u64 {
    match index.query(&Query::Citizen(citizen_id.clone())) {
        Ok(QueryAnswer::Citizen(citizen)) => citizen.next_sequence,
        _ => 1,
    }
}

pub fn signed_as(
    index: &Index,
    citizen_id: CitizenId,
    secret: &[u8; 32],
    op: CitizenOp,
) -> Command {
    let sequence = next_sequence(index, &citizen_id);
    let message = signing::citizen_op_message(&citizen_id, sequence, &op);
    let auth = CitizenAuth {
        key_id: signing::public_key_of(secret).key_id(),
        sequence,
        signature: signing::sign(secret, &message),
    };
    Command::Citizen { citizen_id, op, auth }
}

pub fn register(
    home_city: &str,
    identifiers: Vec<Identifier>,
    citizen_id: CitizenId,
    secret: &[u8; 32],
) -> Command {
    let home_city = city(home_city);
    let public_key = signing::public_key_of(secret);
    let message = signing::registration_message(&home_city, &identifiers, &public_key);
    let proof = signing::sign(secret, &message);
    Command::RegisterCitizen { citizen_id, home_city, identifiers, public_key, proof }
}

/// Applies Alice's operation, signed as her next one.
pub fn alice_does(index: &mut Index, at: u64, op: CitizenOp) -> Result<Response, IndexError> {
    let command = citizen_op(index, op);
    apply(index, at, command)
}

pub fn grant(attributes: &[&str], valid_until_unix_ms: Option<u64>) -> CitizenOp {
    CitizenOp::GrantConsent(ConsentGrant {
        service_id: service(),
        purpose: purpose(),
        attributes: attributes.iter().map(|a| attr(a)).collect(),
        legal_basis: LegalBasis::Consent,
        valid_from_unix_ms: None,
        valid_until_unix_ms,
        identity_scheme: None,
    })
}

pub fn resolve(attributes: &[&str]) -> Command {
    Command::Resolve(ResolveArgs {
        identifier: ident("EHV-1"),
        service_id: service(),
        purpose: purpose(),
        attributes: attributes.iter().map(|a| attr(a)).collect(),
        via_city: city("be-gent"),
    })
}

/// How long the seeded service's certification lasts: longer than any test runs.
pub const CERTIFIED_FOR_MS: u64 = 365 * 86_400_000;

/// The trip-planning purpose with these attributes.
pub fn declared(attributes: &[&str]) -> Vec<PurposeDeclaration> {
    let attributes = attributes.iter().map(|a| attr(a)).collect();
    vec![PurposeDeclaration { purpose: purpose(), attributes }]
}

/// Eindhoven's operator certifies the service for trip planning with these attributes.
pub fn certify(attributes: &[&str], valid_until_unix_ms: u64) -> Command {
    Command::CertifyService {
        service_id: service(),
        by_city: city("nl-eindhoven"),
        declarations: declared(attributes),
        valid_until_unix_ms,
    }
}

/// A federation of two cities, one service declaring three mobility attributes and
/// certified for all of them, and Alice with a mobility pod.
pub fn seeded() -> Index {
    let mut index = seeded_uncertified();
    let every_attribute = ["mobility.trips", "mobility.pass", "mobility.home"];
    apply(&mut index, T0, certify(&every_attribute, T0 + CERTIFIED_FOR_MS)).unwrap();
    index
}

/// As [`seeded`], but no operator has certified the service.
pub fn seeded_uncertified() -> Index {
    let mut index = Index::default();
    apply(&mut index, T0, member("nl-eindhoven", 1)).unwrap();
    apply(&mut index, T0, member("be-gent", 2)).unwrap();
    let register_service = Command::RegisterService {
        service_id: service(),
        organisation: "Ride Share BV".to_owned(),
        declarations: declared(&["mobility.trips", "mobility.pass", "mobility.home"]),
    };
    apply(&mut index, T0, register_service).unwrap();
    let register = register("nl-eindhoven", vec![ident("EHV-1")], alice(), &ALICE_SECRET);
    apply(&mut index, T0, register).unwrap();
    let pod = CitizenOp::SetLocation {
        category: roamhub_index::Category::parse("category", "mobility").unwrap(),
        uri: "https://pod.example/alice/mobility".to_owned(),
        provider: "Pod Co".to_owned(),
    };
    alice_does(&mut index, T0, pod).unwrap();
    index
}

pub fn resolution(response: Response) -> roamhub_index::Resolution {
    match response {
        Response::Resolution(resolution) => resolution,
        other => panic!("expected a resolution, got {other:?}"),
    }
}

pub fn access_log(index: &Index) -> Vec<roamhub_index::AccessRecord> {
    let query = Query::AccessLog(AccessLogPage {
        citizen_id: alice(),
        limit: 100,
        before_record: None,
        service_id: None,
        purpose: None,
    });
    match index.query(&query).unwrap() {
        QueryAnswer::AccessLog(records) => records,
        other => panic!("expected an access log, got {other:?}"),
    }
}
