//! How a resolution is decided from the service's certification, the citizen's consents
//! and their data locations.
//!
//! The decision is a pure function of the citizen, the service and the time; the index
//! records it as an access record whatever it decides. A service resolves only while a
//! certification is in force at the resolution's own time, and only within it: what is
//! released lies within both the consents and the certification.

use std::collections::BTreeSet;

use crate::ids::{Attribute, Purpose, first_uncovered};
use crate::model::{
    Certification, CertificationStatus, Citizen, ConsentStatus, RefusalReason, ResolvedPointer,
    Service,
};

/// What the consents allow, before it is recorded.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Release { pointers: Vec<ResolvedPointer>, unavailable: Vec<Attribute> },
    Refuse(RefusalReason),
}

/// Decides which of the `wanted` attributes (all consented and certified ones when empty) a
/// service may have for `purpose` at `now_unix_ms`, when it knows the citizen by an
/// identifier of `scheme` (`None`: by an old pointer, not by an identity).
pub fn decide(
    citizen: &Citizen,
    service: Option<&Service>,
    purpose: &Purpose,
    scheme: Option<&str>,
    wanted: &[Attribute],
    now_unix_ms: u64,
) -> Decision {
    let Some(service) = service else {
        return Decision::Refuse(RefusalReason::UnknownService);
    };
    let certification = match certification_in_force(service, now_unix_ms) {
        Ok(certification) => certification,
        Err(reason) => return Decision::Refuse(reason),
    };
    if service.declared(purpose).is_none() {
        return Decision::Refuse(RefusalReason::PurposeNotDeclared);
    }

    let Some(certified) = certification.certified(purpose) else {
        return Decision::Refuse(RefusalReason::PurposeNotCertified);
    };
    // A service asking beyond its certification is refused outright, not served in part.
    if first_uncovered(certified, wanted).is_some() {
        return Decision::Refuse(RefusalReason::AttributesNotCertified);
    }

    let allowed = consented_attributes(citizen, service, purpose, scheme, now_unix_ms);
    if allowed.is_empty() {
        let any_identity = consented_attributes(citizen, service, purpose, None, now_unix_ms);
        if !any_identity.is_empty() {
            return Decision::Refuse(RefusalReason::IdentityNotShared);
        }
        return Decision::Refuse(why_nothing_is_consented(citizen, service, purpose, now_unix_ms));
    }

    let released: Vec<Attribute> = if wanted.is_empty() {
        overlap(&allowed, certified)
    } else {
        wanted.iter().filter(|want| allowed.iter().any(|a| a.covers(want))).cloned().collect()
    };
    if released.is_empty() && wanted.is_empty() {
        return Decision::Refuse(RefusalReason::AttributesNotCertified);
    }
    if released.is_empty() {
        return Decision::Refuse(RefusalReason::AttributesNotConsented);
    }

    let (pointers, unavailable) = point_to(citizen, &released);
    Decision::Release { pointers, unavailable }
}

/// The service's certification in force at `now_unix_ms`, or why it has none.
fn certification_in_force(
    service: &Service,
    now_unix_ms: u64,
) -> Result<&Certification, RefusalReason> {
    let Some(certification) = &service.certification else {
        return Err(RefusalReason::ServiceNotCertified);
    };
    match certification.status_at(now_unix_ms) {
        CertificationStatus::Certified => Ok(certification),
        CertificationStatus::Expired => Err(RefusalReason::CertificationExpired),
        CertificationStatus::Withdrawn => Err(RefusalReason::CertificationWithdrawn),
    }
}

/// The attributes both a consented and a certified attribute cover: of each pair where one
/// covers the other, the narrower one.
fn overlap(consented: &BTreeSet<Attribute>, certified: &[Attribute]) -> Vec<Attribute> {
    let narrower = |a: &Attribute, b: &Attribute| match (a.covers(b), b.covers(a)) {
        (true, _) => Some(b.clone()),
        (false, true) => Some(a.clone()),
        (false, false) => None,
    };
    let both: BTreeSet<Attribute> = consented
        .iter()
        .flat_map(|a| certified.iter().filter_map(move |c| narrower(a, c)))
        .collect();
    both.into_iter().collect()
}

/// The union of the attributes of every consent valid now for this service and purpose,
/// and, when `scheme` is given, for a service that knows the citizen by that scheme.
fn consented_attributes(
    citizen: &Citizen,
    service: &Service,
    purpose: &Purpose,
    scheme: Option<&str>,
    now_unix_ms: u64,
) -> BTreeSet<Attribute> {
    let shared = |allowed: &Option<String>| match (allowed, scheme) {
        (Some(allowed), Some(scheme)) => allowed == scheme,
        _ => true,
    };
    citizen
        .consents
        .values()
        .filter(|c| c.service_id == service.service_id && &c.purpose == purpose)
        .filter(|c| c.is_valid_at(now_unix_ms) && shared(&c.identity_scheme))
        .flat_map(|c| c.attributes.iter().cloned())
        .collect()
}

/// The most telling reason why no consent applies: one that exists but is not usable now
/// says more than "none".
fn why_nothing_is_consented(
    citizen: &Citizen,
    service: &Service,
    purpose: &Purpose,
    now_unix_ms: u64,
) -> RefusalReason {
    let matching = citizen
        .consents
        .values()
        .filter(|c| c.service_id == service.service_id && &c.purpose == purpose);
    let mut reason = RefusalReason::NoConsent;
    for consent in matching {
        reason = match consent.status_at(now_unix_ms) {
            ConsentStatus::Given | ConsentStatus::Renewed => RefusalReason::ConsentNotYetValid,
            ConsentStatus::Revoked => RefusalReason::ConsentRevoked,
            ConsentStatus::Expired => RefusalReason::ConsentExpired,
            ConsentStatus::Withdrawn if reason == RefusalReason::NoConsent => {
                RefusalReason::ConsentWithdrawn
            }
            ConsentStatus::Withdrawn => reason,
        };
    }
    reason
}

/// Pointers for the released attributes: the category's current location joined with the
/// attribute's path. Attributes of a category without a location are listed apart.
fn point_to(citizen: &Citizen, released: &[Attribute]) -> (Vec<ResolvedPointer>, Vec<Attribute>) {
    let mut pointers = Vec::new();
    let mut unavailable = Vec::new();
    for attribute in released {
        let Some(location) = citizen.locations.get(&attribute.category()) else {
            unavailable.push(attribute.clone());
            continue;
        };
        let base = location.current.uri.trim_end_matches('/');
        let uri = match attribute.is_wildcard() {
            true => base.to_owned(),
            false => format!("{base}/{}", attribute.path().replace('.', "/")),
        };
        pointers.push(ResolvedPointer {
            attribute: attribute.clone(),
            uri,
            provider: location.current.provider.clone(),
        });
    }
    (pointers, unavailable)
}
