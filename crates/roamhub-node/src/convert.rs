//! Between protobuf messages and index types.
//!
//! Parsing goes one way only, through the index's validating constructors, so a malformed
//! field is refused at the edge with `InvalidArgument` naming it, before anything is
//! proposed. Rendering takes the time of the answer, as a consent's status depends on it.

use roamhub_index as index;
use roamhub_proto::v1 as pb;
use tonic::Status;

use crate::error::invalid;
use crate::identity::IdentifierKey;

/// Hashes a clear identifier from a request with the federation's identifier key.
pub fn identifier(
    field: &str,
    value: Option<&pb::Identifier>,
    key: &IdentifierKey,
) -> Result<index::Identifier, Status> {
    let value = value.ok_or_else(|| invalid(index::IndexError::invalid(field, "is required")))?;
    key.hash(field, &value.scheme, &value.value).map_err(invalid)
}

/// An identifier already hashed, as HashIdentifiers returns it; for clients that sign.
pub fn hashed_identifier(field: &str, value: &pb::Identifier) -> Result<index::Identifier, Status> {
    index::Identifier::from_digest(field, &value.scheme, &value.value).map_err(invalid)
}

pub fn attributes(field: &str, values: &[String]) -> Result<Vec<index::Attribute>, Status> {
    values.iter().map(|value| index::Attribute::parse(field, value).map_err(invalid)).collect()
}

pub fn citizen_id(value: &str) -> Result<index::CitizenId, Status> {
    index::CitizenId::parse("citizen_id", value).map_err(invalid)
}

pub fn city_id(field: &str, value: &str) -> Result<index::CityId, Status> {
    index::CityId::parse(field, value).map_err(invalid)
}

pub fn service_id(value: &str) -> Result<index::ServiceId, Status> {
    index::ServiceId::parse("service_id", value).map_err(invalid)
}

pub fn purpose(field: &str, value: &str) -> Result<index::Purpose, Status> {
    index::Purpose::parse(field, value).map_err(invalid)
}

pub fn public_key(field: &str, bytes: &[u8]) -> Result<index::PublicKey, Status> {
    index::PublicKey::parse(field, bytes).map_err(invalid)
}

/// The citizen's signature of a request; a citizen operation without one is refused.
pub fn citizen_auth(value: Option<&pb::CitizenSignature>) -> Result<index::CitizenAuth, Status> {
    let value = value.ok_or_else(|| {
        invalid(index::IndexError::invalid("signature", "citizen operations must be signed"))
    })?;
    Ok(index::CitizenAuth {
        key_id: index::KeyId::parse("signature.key_id", &value.key_id).map_err(invalid)?,
        sequence: value.sequence,
        signature: value.signature.clone(),
    })
}

// The citizen operation each request asks for. Clients build the same operation from the
// same request to sign it, so these are the single definition of what is signed.

/// The node hashes the request's clear identifier; a client that signs builds the same
/// operation from the hash a node gave it (see `hashed_identifier`).
pub fn add_identifier_op(
    request: &pb::AddIdentifierRequest,
    key: &IdentifierKey,
) -> Result<index::CitizenOp, Status> {
    let identifier = identifier("identifier", request.identifier.as_ref(), key)?;
    Ok(index::CitizenOp::AddIdentifier(identifier))
}

pub fn move_home_op(request: &pb::MoveHomeRequest) -> Result<index::CitizenOp, Status> {
    Ok(index::CitizenOp::MoveHome { to_city: city_id("to_city", &request.to_city)? })
}

pub fn set_location_op(request: &pb::SetLocationRequest) -> Result<index::CitizenOp, Status> {
    let category = index::Category::parse("category", &request.category).map_err(invalid)?;
    let (uri, provider) = (request.uri.clone(), request.provider.clone());
    Ok(index::CitizenOp::SetLocation { category, uri, provider })
}

pub fn grant_consent_op(request: &pb::GrantConsentRequest) -> Result<index::CitizenOp, Status> {
    Ok(index::CitizenOp::GrantConsent(index::ConsentGrant {
        service_id: service_id(&request.service_id)?,
        purpose: purpose("purpose", &request.purpose)?,
        attributes: attributes("attributes", &request.attributes)?,
        legal_basis: legal_basis(request.legal_basis)?,
        valid_from_unix_ms: optional_time(request.valid_from_unix_ms),
        valid_until_unix_ms: optional_time(request.valid_until_unix_ms),
        identity_scheme: (!request.identity_scheme.is_empty())
            .then(|| request.identity_scheme.clone()),
    }))
}

pub fn withdraw_consent_op(
    request: &pb::WithdrawConsentRequest,
) -> Result<index::CitizenOp, Status> {
    let consent_id = index::ConsentId::parse("consent_id", &request.consent_id).map_err(invalid)?;
    Ok(index::CitizenOp::WithdrawConsent { consent_id })
}

pub fn erase_op(_request: &pb::EraseCitizenRequest) -> Result<index::CitizenOp, Status> {
    Ok(index::CitizenOp::Erase)
}

pub fn renew_consent_op(request: &pb::RenewConsentRequest) -> Result<index::CitizenOp, Status> {
    let consent_id = index::ConsentId::parse("consent_id", &request.consent_id).map_err(invalid)?;
    let valid_until_unix_ms = optional_time(request.valid_until_unix_ms);
    Ok(index::CitizenOp::RenewConsent { consent_id, valid_until_unix_ms })
}

pub fn add_key_op(request: &pb::AddKeyRequest) -> Result<index::CitizenOp, Status> {
    Ok(index::CitizenOp::AddKey { public_key: public_key("public_key", &request.public_key)? })
}

pub fn remove_key_op(request: &pb::RemoveKeyRequest) -> Result<index::CitizenOp, Status> {
    let key_id = index::KeyId::parse("key_id", &request.key_id).map_err(invalid)?;
    Ok(index::CitizenOp::RemoveKey { key_id })
}

/// Zero stands for "not set" in the API's times.
pub fn optional_time(value: u64) -> Option<u64> {
    (value != 0).then_some(value)
}

pub fn legal_basis(value: i32) -> Result<index::LegalBasis, Status> {
    let basis = pb::LegalBasis::try_from(value).map_err(|_| {
        invalid(index::IndexError::invalid("legal_basis", format!("{value} is not a legal basis")))
    })?;
    Ok(match basis {
        pb::LegalBasis::Unspecified | pb::LegalBasis::Consent => index::LegalBasis::Consent,
        pb::LegalBasis::Contract => index::LegalBasis::Contract,
        pb::LegalBasis::LegalObligation => index::LegalBasis::LegalObligation,
        pb::LegalBasis::VitalInterest => index::LegalBasis::VitalInterest,
        pb::LegalBasis::PublicTask => index::LegalBasis::PublicTask,
        pb::LegalBasis::LegitimateInterest => index::LegalBasis::LegitimateInterest,
    })
}

pub fn declarations(
    values: &[pb::PurposeDeclaration],
) -> Result<Vec<index::PurposeDeclaration>, Status> {
    values
        .iter()
        .map(|declaration| {
            Ok(index::PurposeDeclaration {
                purpose: purpose("declarations.purpose", &declaration.purpose)?,
                attributes: attributes("declarations.attributes", &declaration.attributes)?,
            })
        })
        .collect()
}

fn strings<T: ToString>(values: &[T]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}

pub fn pb_identifier(value: &index::Identifier) -> pb::Identifier {
    pb::Identifier { scheme: value.scheme().to_owned(), value: value.digest().to_owned() }
}

fn pb_legal_basis(value: index::LegalBasis) -> pb::LegalBasis {
    match value {
        index::LegalBasis::Consent => pb::LegalBasis::Consent,
        index::LegalBasis::Contract => pb::LegalBasis::Contract,
        index::LegalBasis::LegalObligation => pb::LegalBasis::LegalObligation,
        index::LegalBasis::VitalInterest => pb::LegalBasis::VitalInterest,
        index::LegalBasis::PublicTask => pb::LegalBasis::PublicTask,
        index::LegalBasis::LegitimateInterest => pb::LegalBasis::LegitimateInterest,
    }
}

pub fn pb_pointer(value: &index::Pointer) -> pb::Pointer {
    pb::Pointer {
        uri: value.uri.clone(),
        provider: value.provider.clone(),
        since_unix_ms: value.since_unix_ms,
        until_unix_ms: value.until_unix_ms.unwrap_or_default(),
    }
}

pub fn pb_location(value: &index::DataLocation) -> pb::DataLocation {
    pb::DataLocation {
        category: value.category.to_string(),
        current: Some(pb_pointer(&value.current)),
        history: value.history.iter().map(pb_pointer).collect(),
    }
}

pub fn pb_consent(value: &index::Consent, now_unix_ms: u64) -> pb::Consent {
    let status = match value.status_at(now_unix_ms) {
        index::ConsentStatus::Given => pb::ConsentStatus::Given,
        index::ConsentStatus::Withdrawn => pb::ConsentStatus::Withdrawn,
        index::ConsentStatus::Expired => pb::ConsentStatus::Expired,
        index::ConsentStatus::Revoked => pb::ConsentStatus::Revoked,
        index::ConsentStatus::Renewed => pb::ConsentStatus::Renewed,
    };
    pb::Consent {
        consent_id: value.consent_id.to_string(),
        citizen_id: value.citizen_id.to_string(),
        service_id: value.service_id.to_string(),
        purpose: value.purpose.to_string(),
        attributes: strings(&value.attributes),
        legal_basis: pb_legal_basis(value.legal_basis).into(),
        valid_from_unix_ms: value.valid_from_unix_ms,
        valid_until_unix_ms: value.valid_until_unix_ms.unwrap_or_default(),
        status: status.into(),
        given_at_unix_ms: value.given_at_unix_ms,
        withdrawn_at_unix_ms: value.withdrawn_at_unix_ms().unwrap_or_default(),
        identity_scheme: value.identity_scheme.clone().unwrap_or_default(),
        withdrawal_acknowledged_at_unix_ms: value
            .withdrawal_acknowledged_at_unix_ms
            .unwrap_or_default(),
        receipt: None,
        renewed_at_unix_ms: value.renewed_at_unix_ms.unwrap_or_default(),
        revoked_by_city: match &value.state {
            index::ConsentState::Revoked { by_city, .. } => by_city.to_string(),
            _ => String::new(),
        },
    }
}

/// A consent as its service sees it, with the citizen replaced by the service's pseudonym.
pub fn pb_service_consent(
    value: &index::Consent,
    citizen_pseudonym: String,
    now_unix_ms: u64,
) -> pb::ServiceConsent {
    let citizen_view = pb_consent(value, now_unix_ms);
    pb::ServiceConsent {
        consent_id: citizen_view.consent_id,
        citizen_pseudonym,
        purpose: citizen_view.purpose,
        attributes: citizen_view.attributes,
        status: citizen_view.status,
        valid_until_unix_ms: citizen_view.valid_until_unix_ms,
        withdrawn_at_unix_ms: citizen_view.withdrawn_at_unix_ms,
        withdrawal_acknowledged_at_unix_ms: citizen_view.withdrawal_acknowledged_at_unix_ms,
    }
}

fn pb_key_event(value: &index::model::KeyEvent) -> pb::KeyEvent {
    use index::model::KeyChange;
    let (change, by) = match &value.change {
        KeyChange::Registered => ("registered", String::new()),
        KeyChange::Added { signed_by } => ("added", signed_by.to_string()),
        KeyChange::Removed { signed_by } => ("removed", signed_by.to_string()),
        KeyChange::Recovered { by_city } => ("recovered", by_city.to_string()),
    };
    pb::KeyEvent {
        at_unix_ms: value.at_unix_ms,
        key_id: value.key_id.to_string(),
        change: change.to_owned(),
        by,
    }
}

pub fn pb_citizen(value: &index::Citizen, now_unix_ms: u64) -> pb::Citizen {
    pb::Citizen {
        next_sequence: value.next_sequence,
        keys: value
            .keys
            .iter()
            .map(|(key_id, key)| pb::CitizenKey {
                key_id: key_id.to_string(),
                public_key: key.public_key.as_bytes().to_vec(),
                added_at_unix_ms: key.added_at_unix_ms,
            })
            .collect(),
        key_history: value.key_history.iter().map(pb_key_event).collect(),
        citizen_id: value.citizen_id.to_string(),
        home_city: value.home_city.to_string(),
        registered_at_unix_ms: value.registered_at_unix_ms,
        identifiers: value.identifiers.iter().map(pb_identifier).collect(),
        locations: value.locations.values().map(pb_location).collect(),
        consents: value.consents.values().map(|c| pb_consent(c, now_unix_ms)).collect(),
        home_history: value
            .home_history
            .iter()
            .map(|period| pb::HomeCityPeriod {
                city: period.city.to_string(),
                from_unix_ms: period.from_unix_ms,
                until_unix_ms: period.until_unix_ms,
            })
            .collect(),
    }
}

pub fn pb_declaration(value: &index::PurposeDeclaration) -> pb::PurposeDeclaration {
    pb::PurposeDeclaration {
        purpose: value.purpose.to_string(),
        attributes: strings(&value.attributes),
    }
}

pub fn pb_service(value: &index::Service, now_unix_ms: u64) -> pb::Service {
    pb::Service {
        service_id: value.service_id.to_string(),
        organisation: value.organisation.clone(),
        declarations: value.declarations.iter().map(pb_declaration).collect(),
        registered_at_unix_ms: value.registered_at_unix_ms,
        certification: value.certification.as_ref().map(|c| pb_certification(c, now_unix_ms)),
    }
}

pub fn pb_certification(value: &index::Certification, now_unix_ms: u64) -> pb::Certification {
    let status = match value.status_at(now_unix_ms) {
        index::CertificationStatus::Certified => "certified",
        index::CertificationStatus::Expired => "expired",
        index::CertificationStatus::Withdrawn => "withdrawn",
    };
    let withdrawn = value.withdrawn.as_ref();
    pb::Certification {
        by_city: value.by_city.to_string(),
        certified_at_unix_ms: value.certified_at_unix_ms,
        valid_until_unix_ms: value.valid_until_unix_ms,
        declarations: value.declarations.iter().map(pb_declaration).collect(),
        status: status.to_owned(),
        withdrawn_at_unix_ms: withdrawn.map(|w| w.at_unix_ms).unwrap_or_default(),
        withdrawn_by_city: withdrawn.map(|w| w.by_city.to_string()).unwrap_or_default(),
    }
}

pub fn pb_member(value: &index::Member) -> pb::Member {
    pb::Member {
        city_id: value.city_id.to_string(),
        display_name: value.display_name.clone(),
        country: value.country.clone(),
        api_endpoint: value.api_endpoint.clone(),
        raft_node_id: value.raft_node_id,
    }
}

pub fn pb_access_record(value: &index::AccessRecord) -> pb::AccessRecord {
    let (outcome, released, reason) = match &value.outcome {
        index::AccessOutcome::Released { attributes } => {
            (pb::AccessOutcome::Released, strings(attributes), String::new())
        }
        index::AccessOutcome::Refused { reason } => {
            (pb::AccessOutcome::Refused, Vec::new(), reason.describe().to_owned())
        }
    };
    pb::AccessRecord {
        record: value.record,
        at_unix_ms: value.at_unix_ms,
        service_id: value.service_id.to_string(),
        purpose: value.purpose.to_string(),
        via_city: value.via_city.to_string(),
        outcome: outcome.into(),
        attributes_requested: strings(&value.attributes_requested),
        attributes_released: released,
        reason,
        prev_hash: value.prev_hash.to_vec(),
        hash: value.hash.to_vec(),
    }
}

pub fn pb_resolution(value: &index::Resolution, citizen_pseudonym: String) -> pb::ResolveResponse {
    pb::ResolveResponse {
        citizen_pseudonym,
        home_city: value.home_city.to_string(),
        pointers: value
            .pointers
            .iter()
            .map(|pointer| pb::ResolvedPointer {
                attribute: pointer.attribute.to_string(),
                uri: pointer.uri.clone(),
                provider: pointer.provider.clone(),
            })
            .collect(),
        unavailable: strings(&value.unavailable),
        access_record: value.access_record,
    }
}
