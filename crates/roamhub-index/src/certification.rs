//! Certifying a service, and withdrawing its certification.
//!
//! A city operator certifies a service for some of the purposes and attributes it declared,
//! until a moment; only a certified service resolves. These functions compute the service
//! as it will be after the change, or refuse, so the index swaps it in whole or not at all.
//! Whether the certifying city is a member is the index's to check.

use crate::error::IndexError;
use crate::ids::{CityId, first_uncovered};
use crate::limits::CERTIFICATION_HISTORY_MAX;
use crate::model::{
    Certification, CertificationStatus, CertificationWithdrawal, PurposeDeclaration, Service,
};

/// The service certified by `by_city` from `now` until `valid_until_unix_ms`; an earlier
/// certification, in force or not, moves to the history (a renewal).
pub fn certify(
    service: &Service,
    by_city: &CityId,
    declarations: &[PurposeDeclaration],
    valid_until_unix_ms: u64,
    now: u64,
) -> Result<Service, IndexError> {
    if valid_until_unix_ms <= now {
        return Err(IndexError::invalid(
            "valid_until_unix_ms",
            "must lie after the moment of certification",
        ));
    }
    check_within_declared(service, declarations)?;

    let certification = Certification {
        by_city: by_city.clone(),
        certified_at_unix_ms: now,
        declarations: declarations.to_vec(),
        valid_until_unix_ms,
        withdrawn: None,
    };
    let mut certified = service.clone();
    if let Some(previous) = certified.certification.replace(certification) {
        certified.certification_history.push(previous);
    }
    // The history is bounded; the oldest certification goes first.
    if certified.certification_history.len() > CERTIFICATION_HISTORY_MAX {
        certified.certification_history.remove(0);
    }
    Ok(certified)
}

/// The service with its certification withdrawn by `by_city` at `now`; only a
/// certification still in force can be withdrawn.
pub fn decertify(service: &Service, by_city: &CityId, now: u64) -> Result<Service, IndexError> {
    let refusal = match service.certification.as_ref().map(|c| c.status_at(now)) {
        Some(CertificationStatus::Certified) => None,
        Some(CertificationStatus::Withdrawn) => Some("the certification was already withdrawn"),
        Some(CertificationStatus::Expired) => Some("the certification has already expired"),
        None => Some("the service holds no certification"),
    };
    if let Some(reason) = refusal {
        return Err(IndexError::precondition("service_id", reason));
    }

    let mut decertified = service.clone();
    let withdrawal = CertificationWithdrawal { at_unix_ms: now, by_city: by_city.clone() };
    if let Some(certification) = &mut decertified.certification {
        certification.withdrawn = Some(withdrawal);
    }
    Ok(decertified)
}

/// A certification may name only purposes the service declared, and for each only
/// attributes the service declared for it; a wildcard covers its category, as for consents.
fn check_within_declared(
    service: &Service,
    declarations: &[PurposeDeclaration],
) -> Result<(), IndexError> {
    for certified in declarations {
        let Some(declared) = service.declared(&certified.purpose) else {
            return Err(IndexError::precondition(
                "declarations.purpose",
                format!("{} has not declared purpose {}", service.service_id, certified.purpose),
            ));
        };
        if let Some(undeclared) = first_uncovered(declared, &certified.attributes) {
            return Err(IndexError::precondition(
                "declarations.attributes",
                format!(
                    "{undeclared} is not declared by the service for purpose {}",
                    certified.purpose
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a service's certifications as a whole: each lies within the declarations, ends
/// after it began and was withdrawn no earlier than it began; the history is bounded and
/// in order.
pub fn validate(service: &Service) -> Result<(), String> {
    let all = service.certification_history.iter().chain(service.certification.as_ref());
    let mut previous_start = 0;
    for certification in all {
        let start = certification.certified_at_unix_ms;
        let withdrawn_early =
            certification.withdrawn.as_ref().is_some_and(|w| w.at_unix_ms < start);
        if certification.valid_until_unix_ms <= start || withdrawn_early {
            return Err(format!("a certification of {} has impossible times", service.service_id));
        }
        if check_within_declared(service, &certification.declarations).is_err() {
            return Err(format!(
                "a certification of {} exceeds its declarations",
                service.service_id
            ));
        }
        if start < previous_start {
            return Err(format!("the certifications of {} are out of order", service.service_id));
        }
        previous_start = start;
    }
    if service.certification_history.len() > CERTIFICATION_HISTORY_MAX {
        return Err(format!("{} keeps too many certifications", service.service_id));
    }
    if service.certification.is_none() && !service.certification_history.is_empty() {
        return Err(format!("{} has a history but no certification", service.service_id));
    }
    Ok(())
}
