//! How a resolution is decided from a citizen's consents and data locations.
//!
//! The decision is a pure function of the citizen, the service and the time; the index
//! records it as an access record whatever it decides.

use std::collections::BTreeSet;

use crate::ids::{Attribute, Purpose};
use crate::model::{Citizen, ConsentStatus, RefusalReason, ResolvedPointer, Service};

/// What the consents allow, before it is recorded.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Release { pointers: Vec<ResolvedPointer>, unavailable: Vec<Attribute> },
    Refuse(RefusalReason),
}

/// Decides which of the `wanted` attributes (all consented ones when empty) a service may
/// have for `purpose` at `now_unix_ms`, when it knows the citizen by an identifier of
/// `scheme` (`None`: by an old pointer, not by an identity).
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
    if service.declared(purpose).is_none() {
        return Decision::Refuse(RefusalReason::PurposeNotDeclared);
    }

    let allowed = consented_attributes(citizen, service, purpose, scheme, now_unix_ms);
    if allowed.is_empty() {
        let any_identity = consented_attributes(citizen, service, purpose, None, now_unix_ms);
        if !any_identity.is_empty() {
            return Decision::Refuse(RefusalReason::IdentityNotShared);
        }
        return Decision::Refuse(why_nothing_is_consented(citizen, service, purpose, now_unix_ms));
    }

    let released: Vec<&Attribute> = if wanted.is_empty() {
        allowed.iter().collect()
    } else {
        wanted.iter().filter(|want| allowed.iter().any(|a| a.covers(want))).collect()
    };
    if released.is_empty() {
        return Decision::Refuse(RefusalReason::AttributesNotConsented);
    }

    let (pointers, unavailable) = point_to(citizen, &released);
    Decision::Release { pointers, unavailable }
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
fn point_to(citizen: &Citizen, released: &[&Attribute]) -> (Vec<ResolvedPointer>, Vec<Attribute>) {
    let mut pointers = Vec::new();
    let mut unavailable = Vec::new();
    for attribute in released {
        let Some(location) = citizen.locations.get(&attribute.category()) else {
            unavailable.push((*attribute).clone());
            continue;
        };
        let base = location.current.uri.trim_end_matches('/');
        let uri = match attribute.is_wildcard() {
            true => base.to_owned(),
            false => format!("{base}/{}", attribute.path().replace('.', "/")),
        };
        pointers.push(ResolvedPointer {
            attribute: (*attribute).clone(),
            uri,
            provider: location.current.provider.clone(),
        });
    }
    (pointers, unavailable)
}
