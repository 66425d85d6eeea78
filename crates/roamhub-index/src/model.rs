//! The records the index keeps.
//!
//! All maps are ordered (`BTreeMap`), so that two replicas holding the same records encode
//! them to the same bytes. Times are milliseconds since the Unix epoch, stamped by the node
//! that proposed the request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{
    Attribute, Category, CitizenId, CityId, ConsentId, Identifier, Purpose, ServiceId,
};
use crate::signing::{KeyId, PublicKey};

/// A city operator of the federation and the node it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub city_id: CityId,
    pub display_name: String,
    /// Upper-case ISO 3166 code, always the prefix of `city_id`.
    pub country: String,
    /// `host:port` of the city's public API.
    pub api_endpoint: String,
    pub raft_node_id: u64,
    /// A check value derived from the city's identifier key; every member must show the
    /// same one, or identifiers hashed by different cities would not match.
    pub identifier_key_check: String,
}

/// Where one category of a citizen's data lives, since when, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    pub uri: String,
    pub provider: String,
    pub since_unix_ms: u64,
    /// `None` while the pointer is current.
    pub until_unix_ms: Option<u64>,
}

/// The current pointer of one data category and the ones it replaced, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataLocation {
    pub category: Category,
    pub current: Pointer,
    pub history: Vec<Pointer>,
}

/// A period in which a city was the citizen's home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomePeriod {
    pub city: CityId,
    pub from_unix_ms: u64,
    pub until_unix_ms: u64,
}

/// One of the keys a citizen signs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitizenKey {
    pub public_key: PublicKey,
    pub added_at_unix_ms: u64,
}

/// How a citizen's set of keys changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyChange {
    /// The first key, bound at registration.
    Registered,
    /// Added by an operation signed with another of the citizen's keys.
    Added {
        signed_by: KeyId,
    },
    Removed {
        signed_by: KeyId,
    },
    /// Set by the home city's operator after the citizen lost their keys; every earlier key
    /// was removed at the same moment.
    Recovered {
        by_city: CityId,
    },
}

/// A change to a citizen's keys, kept so the citizen can see who changed what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEvent {
    pub at_unix_ms: u64,
    pub key_id: KeyId,
    pub change: KeyChange,
}

/// Everything the index knows of one citizen except their access log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citizen {
    pub citizen_id: CitizenId,
    pub home_city: CityId,
    pub registered_at_unix_ms: u64,
    /// The keys that may sign the citizen's operations.
    pub keys: BTreeMap<KeyId, CitizenKey>,
    /// The sequence number the citizen's next signed operation must carry.
    pub next_sequence: u64,
    pub key_history: Vec<KeyEvent>,
    pub identifiers: Vec<Identifier>,
    pub locations: BTreeMap<Category, DataLocation>,
    pub consents: BTreeMap<ConsentId, Consent>,
    /// Earlier home cities, oldest first.
    pub home_history: Vec<HomePeriod>,
}

/// The purposes a service declares and the attributes it may ask for each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurposeDeclaration {
    pub purpose: Purpose,
    pub attributes: Vec<Attribute>,
}

/// The attributes `declarations` list for `purpose`, or `None` when the purpose is absent.
pub fn attributes_for<'a>(
    declarations: &'a [PurposeDeclaration],
    purpose: &Purpose,
) -> Option<&'a [Attribute]> {
    declarations
        .iter()
        .find(|declaration| &declaration.purpose == purpose)
        .map(|declaration| declaration.attributes.as_slice())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub service_id: ServiceId,
    pub organisation: String,
    pub declarations: Vec<PurposeDeclaration>,
    pub registered_at_unix_ms: u64,
    /// The latest certification, withdrawn or expired ones included; `None` until a city
    /// operator first certifies the service. Only a certified service resolves.
    pub certification: Option<Certification>,
    /// Certifications the latest one replaced, oldest first, at most
    /// `CERTIFICATION_HISTORY_MAX`.
    pub certification_history: Vec<Certification>,
}

impl Service {
    /// The attributes declared for `purpose`, or `None` when the purpose is not declared.
    pub fn declared(&self, purpose: &Purpose) -> Option<&[Attribute]> {
        attributes_for(&self.declarations, purpose)
    }
}

/// A city operator's statement that a service may resolve citizens, for some of the purposes
/// and attributes it declared, until a date. It is checked by the state machine with each
/// resolution's own time, so its end and its withdrawal take effect at every city at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certification {
    pub by_city: CityId,
    pub certified_at_unix_ms: u64,
    /// A subset of the service's own declarations, with the same wildcard rules.
    pub declarations: Vec<PurposeDeclaration>,
    /// The certification ends at this moment; always later than `certified_at_unix_ms`.
    pub valid_until_unix_ms: u64,
    /// `None` while no operator has withdrawn it.
    pub withdrawn: Option<CertificationWithdrawal>,
}

/// Who withdrew a certification, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificationWithdrawal {
    pub at_unix_ms: u64,
    pub by_city: CityId,
}

/// A certification's status as seen at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertificationStatus {
    Certified,
    Expired,
    /// Withdrawn by an operator; shown even after the certification would have expired.
    Withdrawn,
}

impl Certification {
    pub fn status_at(&self, now_unix_ms: u64) -> CertificationStatus {
        match &self.withdrawn {
            Some(_) => CertificationStatus::Withdrawn,
            None if now_unix_ms >= self.valid_until_unix_ms => CertificationStatus::Expired,
            None => CertificationStatus::Certified,
        }
    }

    /// The attributes certified for `purpose`, or `None` when the purpose is not certified.
    pub fn certified(&self, purpose: &Purpose) -> Option<&[Attribute]> {
        attributes_for(&self.declarations, purpose)
    }
}

/// The lawful ground on which a service may use data, after the GDPR's Article 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegalBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterest,
    PublicTask,
    LegitimateInterest,
}

/// The state a consent is stored in; expiry is derived from time, see [`Consent::status_at`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsentState {
    Given,
    /// Withdrawn by the citizen.
    Withdrawn {
        at_unix_ms: u64,
    },
    /// Ended by someone other than the citizen: the home city's operator.
    Revoked {
        at_unix_ms: u64,
        by_city: CityId,
    },
}

/// A consent's status as seen at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsentStatus {
    Given,
    Withdrawn,
    Expired,
    /// Ended by someone other than the citizen.
    Revoked,
    /// Given again by the citizen with a new validity.
    Renewed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub consent_id: ConsentId,
    pub citizen_id: CitizenId,
    pub service_id: ServiceId,
    pub purpose: Purpose,
    pub attributes: Vec<Attribute>,
    pub legal_basis: LegalBasis,
    pub valid_from_unix_ms: u64,
    pub valid_until_unix_ms: Option<u64>,
    pub given_at_unix_ms: u64,
    pub state: ConsentState,
    /// The one identifier scheme by which the service may know the citizen; any when `None`.
    pub identity_scheme: Option<String>,
    /// When the service confirmed it saw the withdrawal.
    pub withdrawal_acknowledged_at_unix_ms: Option<u64>,
    /// When the citizen last renewed the consent with a new validity.
    pub renewed_at_unix_ms: Option<u64>,
}

impl Consent {
    pub fn status_at(&self, now_unix_ms: u64) -> ConsentStatus {
        match &self.state {
            ConsentState::Withdrawn { .. } => ConsentStatus::Withdrawn,
            ConsentState::Revoked { .. } => ConsentStatus::Revoked,
            ConsentState::Given if self.valid_until_unix_ms.is_some_and(|t| now_unix_ms >= t) => {
                ConsentStatus::Expired
            }
            ConsentState::Given if self.renewed_at_unix_ms.is_some() => ConsentStatus::Renewed,
            ConsentState::Given => ConsentStatus::Given,
        }
    }

    /// Whether the consent has ended for good, by withdrawal or revocation.
    pub fn is_ended(&self) -> bool {
        !matches!(self.state, ConsentState::Given)
    }

    /// Whether the consent allows use at `now_unix_ms`.
    pub fn is_valid_at(&self, now_unix_ms: u64) -> bool {
        matches!(self.status_at(now_unix_ms), ConsentStatus::Given | ConsentStatus::Renewed)
            && self.valid_from_unix_ms <= now_unix_ms
    }

    pub fn withdrawn_at_unix_ms(&self) -> Option<u64> {
        match self.state {
            ConsentState::Withdrawn { at_unix_ms } => Some(at_unix_ms),
            ConsentState::Given | ConsentState::Revoked { .. } => None,
        }
    }
}

/// Why a resolution released nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalReason {
    UnknownService,
    PurposeNotDeclared,
    NoConsent,
    ConsentWithdrawn,
    ConsentExpired,
    ConsentNotYetValid,
    AttributesNotConsented,
    ConsentRevoked,
    /// The consent names another identity for this service than the one presented.
    IdentityNotShared,
    /// No city operator has certified the service.
    ServiceNotCertified,
    CertificationExpired,
    CertificationWithdrawn,
    /// The service is certified, but not for the purpose asked.
    PurposeNotCertified,
    /// The service asked for attributes its certification does not cover, or the consented
    /// attributes and the certified ones have nothing in common.
    AttributesNotCertified,
}

impl RefusalReason {
    pub fn describe(self) -> &'static str {
        match self {
            RefusalReason::UnknownService => "the service is not registered",
            RefusalReason::PurposeNotDeclared => "the service has not declared this purpose",
            RefusalReason::NoConsent => "no consent for this service and purpose",
            RefusalReason::ConsentWithdrawn => "the consent for this purpose was withdrawn",
            RefusalReason::ConsentExpired => "the consent for this purpose has expired",
            RefusalReason::ConsentNotYetValid => "the consent for this purpose is not valid yet",
            RefusalReason::AttributesNotConsented => {
                "none of the requested attributes is consented"
            }
            RefusalReason::ConsentRevoked => "the consent for this purpose was revoked",
            RefusalReason::IdentityNotShared => {
                "the citizen did not share this identity with the service"
            }
            RefusalReason::ServiceNotCertified => "the service is not certified",
            RefusalReason::CertificationExpired => "the service's certification expired",
            RefusalReason::CertificationWithdrawn => "the service's certification was withdrawn",
            RefusalReason::PurposeNotCertified => "the service is not certified for this purpose",
            RefusalReason::AttributesNotCertified => {
                "the service is not certified for these attributes"
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessOutcome {
    Released { attributes: Vec<Attribute> },
    Refused { reason: RefusalReason },
}

/// One attempt by a service to resolve a citizen, released or refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// Federation-wide sequence number, increasing with every record.
    pub record: u64,
    pub at_unix_ms: u64,
    pub service_id: ServiceId,
    pub purpose: Purpose,
    pub via_city: CityId,
    pub attributes_requested: Vec<Attribute>,
    pub outcome: AccessOutcome,
    /// The hash of the citizen's previous record, `access_chain::GENESIS` for the first.
    pub prev_hash: [u8; 32],
    /// `access_chain::link_hash` of `prev_hash` and this record's fields.
    pub hash: [u8; 32],
}

impl AccessRecord {
    /// This record's hash, recomputed from its fields and `prev_hash`.
    pub fn computed_hash(&self) -> [u8; 32] {
        let strings = |attributes: &[Attribute]| -> Vec<String> {
            attributes.iter().map(ToString::to_string).collect()
        };
        let requested = strings(&self.attributes_requested);
        let (released, refusal) = match &self.outcome {
            AccessOutcome::Released { attributes } => (strings(attributes), ""),
            AccessOutcome::Refused { reason } => (Vec::new(), reason.describe()),
        };
        let requested: Vec<&str> = requested.iter().map(String::as_str).collect();
        let released: Vec<&str> = released.iter().map(String::as_str).collect();
        let fields = crate::access_chain::LinkFields {
            record: self.record,
            at_unix_ms: self.at_unix_ms,
            service_id: self.service_id.as_str(),
            purpose: self.purpose.as_str(),
            via_city: self.via_city.as_str(),
            attributes_requested: &requested,
            attributes_released: &released,
            refusal,
        };
        crate::access_chain::link_hash(&self.prev_hash, &fields)
    }
}

/// A pointer released for one attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedPointer {
    pub attribute: Attribute,
    pub uri: String,
    pub provider: String,
}

/// What a resolution decided; the access record is already part of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// For the node to derive the service's pseudonym of the citizen; never sent as is.
    pub citizen_id: CitizenId,
    pub access_record: u64,
    pub home_city: CityId,
    pub pointers: Vec<ResolvedPointer>,
    /// Consented attributes whose category has no data location yet.
    pub unavailable: Vec<Attribute>,
    /// `None` when released.
    pub refused: Option<RefusalReason>,
}
