//! The index commands a run proposes, built and signed as a city's portal would.
//!
//! Citizens' operations carry an Ed25519 signature by the citizen's key over the operation
//! and the citizen's next sequence number, exactly as every replica verifies them; keys
//! and identifiers are drawn from the seed.

use std::collections::BTreeMap;

use roamhub_check::CitizenState;
use roamhub_index::{
    Attribute, Category, Citizen, CitizenAuth, CitizenId, CitizenOp, CityId, Command, ConsentGrant,
    ConsentState, Identifier, LegalBasis, Member, Purpose, PurposeDeclaration, ResolveArgs,
    ServiceId, signing,
};

use crate::limits::CITIES;
use crate::rng::SimRng;

pub const SERVICE: &str = "ride.share";
pub const PURPOSE: &str = "trip-planning";
/// The category every citizen points somewhere from the start.
pub const CATEGORY: &str = "mobility";
/// The attribute consents are given for, within `CATEGORY`.
pub const ATTRIBUTE: &str = "mobility.trips";
const IDENTITY_SCHEME: &str = "city-account";

/// A citizen of the run: their id, key and identifier, and how they start.
#[derive(Debug, Clone)]
pub struct SimCitizen {
    pub citizen_id: CitizenId,
    pub secret: [u8; 32],
    pub identifier: Identifier,
    pub initial: CitizenState,
}

impl SimCitizen {
    /// Draws citizen number `number` from the seed, homed in `home_city`.
    pub fn draw(rng: &mut SimRng, number: usize, home_city: &str) -> SimCitizen {
        let digest: String = rng.bytes::<32>().iter().map(|b| format!("{b:02x}")).collect();
        let identifier = Identifier::from_digest("identifier", IDENTITY_SCHEME, &digest)
            .expect("64 hex digits are a digest");
        let initial = CitizenState {
            home_city: home_city.to_owned(),
            locations: BTreeMap::from([(CATEGORY.to_owned(), pod_uri(number, 0))]),
            consents: BTreeMap::new(),
        };
        SimCitizen {
            citizen_id: CitizenId::from_random(rng.bytes()),
            secret: rng.bytes(),
            identifier,
            initial,
        }
    }

    pub fn registration(&self) -> Command {
        let home_city = city(&self.initial.home_city);
        let public_key = signing::public_key_of(&self.secret);
        let identifiers = vec![self.identifier.clone()];
        let message = signing::registration_message(&home_city, &identifiers, &public_key);
        let proof = signing::sign(&self.secret, &message);
        Command::RegisterCitizen {
            citizen_id: self.citizen_id.clone(),
            home_city,
            identifiers,
            public_key,
            proof,
        }
    }

    /// `op`, signed as the citizen's operation number `sequence`.
    pub fn signed(&self, sequence: u64, op: CitizenOp) -> Command {
        let message = signing::citizen_op_message(&self.citizen_id, sequence, &op);
        let auth = CitizenAuth {
            key_id: signing::public_key_of(&self.secret).key_id(),
            sequence,
            signature: signing::sign(&self.secret, &message),
        };
        Command::Citizen { citizen_id: self.citizen_id.clone(), op, auth }
    }

    pub fn resolve(&self, via_city: &str) -> Command {
        Command::Resolve(ResolveArgs {
            identifier: self.identifier.clone(),
            service_id: service(),
            purpose: purpose(),
            attributes: Vec::new(),
            via_city: city(via_city),
        })
    }
}

/// The URI of a citizen's pod, numbered so that every location a run sets is distinct.
pub fn pod_uri(citizen: usize, number: u64) -> String {
    format!("https://pods.example/citizen-{citizen}/{number}")
}

pub fn set_location(uri: String) -> CitizenOp {
    let category = Category::parse("category", CATEGORY).expect("a valid category");
    CitizenOp::SetLocation { category, uri, provider: "Sim Pods".to_owned() }
}

/// A consent to the service, told apart from every other by its end of validity, `tag`.
pub fn grant(tag: u64) -> CitizenOp {
    CitizenOp::GrantConsent(ConsentGrant {
        service_id: service(),
        purpose: purpose(),
        attributes: vec![attribute()],
        legal_basis: LegalBasis::Consent,
        valid_from_unix_ms: None,
        valid_until_unix_ms: Some(tag),
        identity_scheme: None,
    })
}

/// The member record of the city that node `node_id` serves.
pub fn member(node_id: u64) -> Command {
    let city_id = city(city_of(node_id));
    Command::UpsertMember(Member {
        country: city_id.country(),
        city_id,
        display_name: format!("Sim city {node_id}"),
        api_endpoint: crate::cluster::address_of(node_id).api_addr,
        raft_node_id: node_id,
        identifier_key_check: "sim".to_owned(),
    })
}

pub fn register_service() -> Command {
    Command::RegisterService {
        service_id: service(),
        organisation: "Sim Rides".to_owned(),
        declarations: declarations(),
    }
}

pub fn certify_service(valid_until_unix_ms: u64) -> Command {
    Command::CertifyService {
        service_id: service(),
        by_city: city(CITIES[0]),
        declarations: declarations(),
        valid_until_unix_ms,
    }
}

pub fn city_of(node_id: u64) -> &'static str {
    CITIES[node_id as usize - 1]
}

/// What a linearizable read of `citizen` shows the model: consents by their tag.
pub fn observed(citizen: &Citizen) -> CitizenState {
    let locations = citizen
        .locations
        .iter()
        .map(|(category, location)| (category.to_string(), location.current.uri.clone()))
        .collect();
    let consents = citizen
        .consents
        .values()
        .map(|c| (c.valid_until_unix_ms.unwrap_or(0), c.state == ConsentState::Given))
        .collect();
    CitizenState { home_city: citizen.home_city.to_string(), locations, consents }
}

pub fn city(id: &str) -> CityId {
    CityId::parse("city", id).expect("the simulation's cities are valid")
}

fn service() -> ServiceId {
    ServiceId::parse("service_id", SERVICE).expect("a valid service id")
}

fn purpose() -> Purpose {
    Purpose::parse("purpose", PURPOSE).expect("a valid purpose")
}

fn attribute() -> Attribute {
    Attribute::parse("attribute", ATTRIBUTE).expect("a valid attribute")
}

fn declarations() -> Vec<PurposeDeclaration> {
    vec![PurposeDeclaration { purpose: purpose(), attributes: vec![attribute()] }]
}
