//! The small, valid federation every fuzz input starts from, and the harness's signer.
//!
//! The state is built only through `Index::apply`, as a node would build it: two member
//! cities, a registered and certified service, and a citizen with an identifier, a switched
//! data location (so a forwarding pointer exists), a consent and one access record. The
//! fuzzer cannot forge Ed25519 signatures, so the harness knows the secret keys in
//! [`KNOWN_SECRETS`] and signs for the fuzzer when an input asks it to (see [`sign_for`]).

use std::sync::LazyLock;

use roamhub_index::{
    Attribute, CitizenAuth, CitizenId, CitizenOp, CityId, Command, ConsentGrant, Identifier, Index,
    LegalBasis, Member, Purpose, PurposeDeclaration, Query, QueryAnswer, Request, ResolveArgs,
    ServiceId, signing,
};

/// The time of the first seeded request; later ones follow a millisecond apart.
pub const T0_UNIX_MS: u64 = 1_700_000_000_000;
/// How long the seeded certification lasts past `T0_UNIX_MS`.
pub const CERTIFIED_FOR_MS: u64 = 365 * 86_400_000;
/// Secret keys the harness signs with: the seeded citizen holds the first; the second is
/// one a fuzzed `AddKey` may add.
pub const KNOWN_SECRETS: [[u8; 32]; 2] = [[42; 32], [43; 32]];

pub const HOME_CITY: &str = "nl-eindhoven";
pub const OTHER_CITY: &str = "be-gent";
pub const SERVICE: &str = "ride.share";
pub const PURPOSE: &str = "trip-planning";

/// The seeded index, built once per process; each input works on a clone.
pub static SEEDED: LazyLock<Index> = LazyLock::new(build);

/// The time just after the seeded requests, for inputs built by the seed generator.
pub fn now_unix_ms() -> u64 {
    T0_UNIX_MS + 100
}

pub fn city(value: &str) -> CityId {
    CityId::parse("city", value).expect("a seeded city id")
}

pub fn service_id() -> ServiceId {
    ServiceId::parse("service_id", SERVICE).expect("the seeded service id")
}

pub fn purpose() -> Purpose {
    Purpose::parse("purpose", PURPOSE).expect("the seeded purpose")
}

pub fn attribute(value: &str) -> Attribute {
    Attribute::parse("attribute", value).expect("a seeded attribute")
}

pub fn citizen_id() -> CitizenId {
    CitizenId::from_random([7; 16])
}

/// The seeded citizen's identifier, as the index keeps it (scheme and keyed hash).
pub fn identifier() -> Identifier {
    Identifier::from_digest("identifier", "city-account", &"ab".repeat(32))
        .expect("a seeded identifier")
}

pub fn member(city_id: &str, raft_node_id: u64) -> Member {
    let city_id = city(city_id);
    Member {
        country: city_id.country(),
        display_name: city_id.to_string(),
        city_id,
        api_endpoint: format!("127.0.0.1:{}", 7000 + raft_node_id),
        raft_node_id,
        identifier_key_check: "0011223344556677".to_owned(),
    }
}

pub fn declarations() -> Vec<PurposeDeclaration> {
    let attributes = vec![attribute("mobility.*"), attribute("health.steps")];
    vec![PurposeDeclaration { purpose: purpose(), attributes }]
}

pub fn grant() -> CitizenOp {
    CitizenOp::GrantConsent(ConsentGrant {
        service_id: service_id(),
        purpose: purpose(),
        attributes: vec![attribute("mobility.trips")],
        legal_basis: LegalBasis::Consent,
        valid_from_unix_ms: None,
        valid_until_unix_ms: None,
        identity_scheme: None,
    })
}

pub fn set_location(uri: &str) -> CitizenOp {
    let category = roamhub_index::Category::parse("category", "mobility").expect("a category");
    CitizenOp::SetLocation { category, uri: uri.to_owned(), provider: "pod.example".to_owned() }
}

pub fn resolve() -> Command {
    Command::Resolve(ResolveArgs {
        identifier: identifier(),
        service_id: service_id(),
        purpose: purpose(),
        attributes: vec![attribute("mobility.trips")],
        via_city: city(OTHER_CITY),
    })
}

/// A citizen operation of the seeded citizen, with an empty signature that [`sign_for`]
/// fills in: the form the seed corpora use.
pub fn unsigned_op(op: CitizenOp) -> Command {
    let key_id = signing::public_key_of(&KNOWN_SECRETS[0]).key_id();
    let auth = CitizenAuth { key_id, sequence: 0, signature: Vec::new() };
    Command::Citizen { citizen_id: citizen_id(), op, auth }
}

/// A registration of a new citizen with the first known key and an empty proof.
pub fn unsigned_registration(seed: u8) -> Command {
    let digest = format!("{seed:02x}").repeat(32);
    let identifier = Identifier::from_digest("identifier", "eidas", &digest).expect("an id");
    Command::RegisterCitizen {
        citizen_id: CitizenId::from_random([seed; 16]),
        home_city: city(OTHER_CITY),
        identifiers: vec![identifier],
        public_key: signing::public_key_of(&KNOWN_SECRETS[0]),
        proof: Vec::new(),
    }
}

/// Signs for the fuzzer. A citizen operation whose signature is empty and whose key is a
/// known one is signed as the citizen's next operation (its sequence is set too); a
/// registration with an empty proof and a known key gets a valid proof. Anything else is
/// left alone, so forged and replayed signatures are still exercised.
pub fn sign_for(index: &Index, request: &mut Request) {
    match &mut request.command {
        Command::Citizen { citizen_id, op, auth } if auth.signature.is_empty() => {
            let Some(secret) = known_secret(|key| key.key_id() == auth.key_id) else { return };
            auth.sequence = next_sequence(index, citizen_id).unwrap_or(auth.sequence);
            let message = signing::citizen_op_message(citizen_id, auth.sequence, op);
            auth.signature = signing::sign(&secret, &message);
        }
        Command::RegisterCitizen { home_city, identifiers, public_key, proof, .. }
            if proof.is_empty() =>
        {
            let Some(secret) = known_secret(|key| &key == public_key) else { return };
            let message = signing::registration_message(home_city, identifiers, public_key);
            *proof = signing::sign(&secret, &message);
        }
        _ => {}
    }
}

fn known_secret(matches: impl Fn(signing::PublicKey) -> bool) -> Option<[u8; 32]> {
    KNOWN_SECRETS.into_iter().find(|secret| matches(signing::public_key_of(secret)))
}

fn next_sequence(index: &Index, citizen_id: &CitizenId) -> Option<u64> {
    match index.query(&Query::Citizen(citizen_id.clone())) {
        Ok(QueryAnswer::Citizen(citizen)) => Some(citizen.next_sequence),
        _ => None,
    }
}

/// The requests that build the seeded federation, in order.
pub fn seed_commands() -> Vec<Command> {
    let until = T0_UNIX_MS + CERTIFIED_FOR_MS;
    vec![
        Command::UpsertMember(member(HOME_CITY, 1)),
        Command::UpsertMember(member(OTHER_CITY, 2)),
        Command::RegisterService {
            service_id: service_id(),
            organisation: "Ride Share B.V.".to_owned(),
            declarations: declarations(),
        },
        Command::CertifyService {
            service_id: service_id(),
            by_city: city(HOME_CITY),
            declarations: declarations(),
            valid_until_unix_ms: until,
        },
        Command::RegisterCitizen {
            citizen_id: citizen_id(),
            home_city: city(HOME_CITY),
            identifiers: vec![identifier()],
            public_key: signing::public_key_of(&KNOWN_SECRETS[0]),
            proof: Vec::new(),
        },
        unsigned_op(set_location("https://pod.example/alice/mobility")),
        unsigned_op(set_location("https://store.example/alice/mobility")),
        unsigned_op(grant()),
        resolve(),
    ]
}

fn build() -> Index {
    let mut index = Index::default();
    for (step, command) in seed_commands().into_iter().enumerate() {
        let mut request = Request { at_unix_ms: T0_UNIX_MS + step as u64, command };
        sign_for(&index, &mut request);
        let kind = request.command.kind();
        index.apply(&request).unwrap_or_else(|e| panic!("seed step {kind} refused: {e}"));
    }
    index
}
