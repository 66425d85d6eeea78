//! Unit tests of certified services: certifying within the declarations, expiry by the
//! command's time, withdrawal, renewal, and the refusals a resolution meets without a
//! certification in force, each with its access record.

mod support;

use roamhub_index::limits::CERTIFICATION_HISTORY_MAX;
use roamhub_index::{
    AccessOutcome, CertificationStatus, Command, FollowArgs, Index, IndexError, Purpose,
    PurposeDeclaration, RefusalReason, Response, Service, ServiceId,
};
use support::*;

fn decertify(by_city: &str) -> Command {
    Command::DecertifyService { service_id: service(), by_city: city(by_city) }
}

fn ride_share(index: &Index) -> Service {
    index.service(&service()).expect("the service is registered").clone()
}

/// Resolves everything consented and returns why it was refused, if it was.
fn refusal_at(index: &mut Index, at: u64, attributes: &[&str]) -> Option<RefusalReason> {
    resolution(apply(index, at, resolve(attributes)).unwrap()).refused
}

/// The seeded federation with Alice's consent to trips and passes.
fn with_consent() -> Index {
    let mut index = seeded_uncertified();
    alice_does(&mut index, T0, grant(&["mobility.trips", "mobility.pass"], None)).unwrap();
    index
}

/// A certification naming more than the service declared, an unknown service or city, or
/// an end already past is refused with the field at fault, and changes nothing.
#[test]
fn a_certification_must_lie_within_the_declarations() {
    let mut index = seeded_uncertified();
    let before = index.clone();
    let far = T0 + CERTIFIED_FOR_MS;

    let beyond = apply(&mut index, T0 + 1, certify(&["mobility.trips", "health.records"], far));
    let beyond = beyond.unwrap_err();
    assert!(matches!(beyond, IndexError::Precondition { .. }), "{beyond}");
    assert_eq!(beyond.field(), "declarations.attributes");
    assert!(beyond.to_string().contains("health.records"), "{beyond}");
    let wider = apply(&mut index, T0 + 1, certify(&["mobility.*"], far)).unwrap_err();
    assert_eq!(wider.field(), "declarations.attributes", "a wildcard covers more: {wider}");

    let Command::CertifyService { mut declarations, .. } = certify(&["mobility.trips"], far) else {
        unreachable!()
    };
    declarations[0].purpose = Purpose::parse("purpose", "marketing").unwrap();
    let foreign = Command::CertifyService {
        service_id: service(),
        by_city: city("nl-eindhoven"),
        declarations,
        valid_until_unix_ms: far,
    };
    assert_eq!(apply(&mut index, T0 + 1, foreign).unwrap_err().field(), "declarations.purpose");

    let Command::CertifyService { declarations, .. } = certify(&["mobility.trips"], far) else {
        unreachable!()
    };
    let stranger = Command::CertifyService {
        service_id: service(),
        by_city: city("de-berlin"),
        declarations: declarations.clone(),
        valid_until_unix_ms: far,
    };
    let stranger = apply(&mut index, T0 + 1, stranger).unwrap_err();
    assert!(matches!(stranger, IndexError::NotFound { .. }), "{stranger}");
    assert_eq!(stranger.field(), "by_city");
    let unknown = Command::CertifyService {
        service_id: ServiceId::parse("service_id", "no.such").unwrap(),
        by_city: city("nl-eindhoven"),
        declarations,
        valid_until_unix_ms: far,
    };
    assert_eq!(apply(&mut index, T0 + 1, unknown).unwrap_err().field(), "service_id");

    let past = apply(&mut index, T0 + 5, certify(&["mobility.trips"], T0 + 5)).unwrap_err();
    assert!(matches!(past, IndexError::Invalid { .. }), "{past}");
    assert_eq!(past.field(), "valid_until_unix_ms");
    let nothing = apply(&mut index, T0 + 5, decertify("nl-eindhoven")).unwrap_err();
    assert!(matches!(nothing, IndexError::Precondition { .. }), "{nothing}");

    assert_eq!(index, before);
}

/// A service that declared a whole category may be certified for one attribute of it.
#[test]
fn a_wildcard_declaration_covers_a_narrower_certification() {
    let mut index = seeded_uncertified();
    let bikes = ServiceId::parse("service_id", "bike.share").unwrap();
    let register = Command::RegisterService {
        service_id: bikes.clone(),
        organisation: "Bike Share".to_owned(),
        declarations: declared(&["mobility.*"]),
    };
    apply(&mut index, T0, register).unwrap();

    let certify = Command::CertifyService {
        service_id: bikes.clone(),
        by_city: city("be-gent"),
        declarations: declared(&["mobility.trips"]),
        valid_until_unix_ms: T0 + 10,
    };
    let Response::Service(certified) = apply(&mut index, T0 + 1, certify).unwrap() else {
        panic!("a certification answers the service");
    };
    let certification = certified.certification.expect("certified");
    assert_eq!(certification.by_city, city("be-gent"));
    assert_eq!(certification.certified_at_unix_ms, T0 + 1);
    assert_eq!(certification.status_at(T0 + 9), CertificationStatus::Certified);
    assert_eq!(certification.status_at(T0 + 10), CertificationStatus::Expired);
}

/// An uncertified service resolves nothing even with a valid consent, and the attempt
/// leaves an access record that says why.
#[test]
fn an_uncertified_service_is_refused_with_an_access_record() {
    let mut index = with_consent();

    assert_eq!(refusal_at(&mut index, T0 + 1, &[]), Some(RefusalReason::ServiceNotCertified));

    let log = access_log(&index);
    assert_eq!(log.len(), 1);
    let refused = AccessOutcome::Refused { reason: RefusalReason::ServiceNotCertified };
    assert_eq!(log[0].outcome, refused);
    assert_eq!(RefusalReason::ServiceNotCertified.describe(), "the service is not certified");
}

/// A certification ends at its date by each command's own time: the resolution stamped a
/// millisecond before it is served, the one stamped at it is refused.
#[test]
fn a_certification_expires_by_the_commands_time() {
    let mut index = with_consent();
    apply(&mut index, T0 + 1, certify(&["mobility.trips"], T0 + 100)).unwrap();

    assert_eq!(refusal_at(&mut index, T0 + 99, &[]), None);
    let expired = refusal_at(&mut index, T0 + 100, &[]);
    assert_eq!(expired, Some(RefusalReason::CertificationExpired));

    let late = apply(&mut index, T0 + 101, decertify("nl-eindhoven")).unwrap_err();
    assert!(late.to_string().contains("expired"), "{late}");
    assert_eq!(access_log(&index).len(), 2, "each attempt left a record");
}

/// A withdrawn certification refuses resolutions and followed pointers alike; it records
/// who withdrew it and when, and cannot be withdrawn twice.
#[test]
fn a_withdrawn_certification_stops_every_resolution() {
    let mut index = with_consent();
    let move_pod = roamhub_index::CitizenOp::SetLocation {
        category: roamhub_index::Category::parse("category", "mobility").unwrap(),
        uri: "https://new-pod.example/a/m".to_owned(),
        provider: "New Pod".to_owned(),
    };
    alice_does(&mut index, T0 + 1, move_pod).unwrap();
    apply(&mut index, T0 + 1, certify(&["mobility.trips"], T0 + CERTIFIED_FOR_MS)).unwrap();
    assert_eq!(refusal_at(&mut index, T0 + 2, &[]), None);

    let Response::Service(withdrawn) = apply(&mut index, T0 + 3, decertify("be-gent")).unwrap()
    else {
        panic!("a withdrawal answers the service");
    };
    let withdrawal = withdrawn.certification.unwrap().withdrawn.expect("withdrawn");
    assert_eq!((withdrawal.at_unix_ms, withdrawal.by_city), (T0 + 3, city("be-gent")));

    let refused = refusal_at(&mut index, T0 + 4, &[]);
    assert_eq!(refused, Some(RefusalReason::CertificationWithdrawn));
    let follow = Command::FollowPointer(FollowArgs {
        old_uri: "https://pod.example/alice/mobility/trips".to_owned(),
        service_id: service(),
        purpose: purpose(),
        via_city: city("be-gent"),
    });
    let followed = resolution(apply(&mut index, T0 + 5, follow).unwrap());
    assert_eq!(followed.refused, Some(RefusalReason::CertificationWithdrawn));
    assert!(followed.pointers.is_empty());
    assert_eq!(access_log(&index).len(), 3);

    let twice = apply(&mut index, T0 + 6, decertify("nl-eindhoven")).unwrap_err();
    assert!(matches!(twice, IndexError::Precondition { .. }), "{twice}");
}

/// Certifying again replaces the certification, even a withdrawn one, and keeps the ones
/// it replaced in a bounded history.
#[test]
fn renewal_replaces_the_certification_and_keeps_a_bounded_history() {
    let mut index = with_consent();
    apply(&mut index, T0 + 1, certify(&["mobility.trips"], T0 + 50)).unwrap();
    apply(&mut index, T0 + 2, decertify("nl-eindhoven")).unwrap();

    apply(&mut index, T0 + 3, certify(&["mobility.trips"], T0 + 500)).unwrap();
    assert_eq!(refusal_at(&mut index, T0 + 100, &[]), None, "renewed past the first end");
    let renewed = ride_share(&index);
    assert_eq!(renewed.certification_history.len(), 1);
    assert!(renewed.certification_history[0].withdrawn.is_some());

    let renewals = CERTIFICATION_HISTORY_MAX as u64 + 3;
    for n in 0..renewals {
        apply(&mut index, T0 + 200 + n, certify(&["mobility.trips"], T0 + 1000)).unwrap();
    }
    let service = ride_share(&index);
    assert_eq!(service.certification_history.len(), CERTIFICATION_HISTORY_MAX);
    let newest_replaced = service.certification_history.last().unwrap();
    assert_eq!(newest_replaced.certified_at_unix_ms, T0 + 200 + renewals - 2);
    index.validate().unwrap();
}

/// What a resolution releases lies within both the consent and the certification, and a
/// service asking beyond its certification is refused.
#[test]
fn released_attributes_lie_within_consent_and_certification() {
    let mut index = with_consent();
    apply(&mut index, T0 + 1, certify(&["mobility.trips", "mobility.home"], T0 + 100)).unwrap();

    let released = resolution(apply(&mut index, T0 + 2, resolve(&[])).unwrap());
    let attributes: Vec<&str> = released.pointers.iter().map(|p| p.attribute.as_str()).collect();
    assert_eq!(attributes, ["mobility.trips"], "pass is consented but not certified");

    let beyond = refusal_at(&mut index, T0 + 3, &["mobility.trips", "mobility.pass"]);
    assert_eq!(beyond, Some(RefusalReason::AttributesNotCertified));
    let unconsented = refusal_at(&mut index, T0 + 4, &["mobility.home"]);
    assert_eq!(unconsented, Some(RefusalReason::AttributesNotConsented));

    apply(&mut index, T0 + 5, certify(&["mobility.home"], T0 + 100)).unwrap();
    let disjoint = refusal_at(&mut index, T0 + 6, &[]);
    assert_eq!(disjoint, Some(RefusalReason::AttributesNotCertified));
}

/// A service certified for one of its purposes is refused for the other.
#[test]
fn a_purpose_outside_the_certification_is_refused() {
    let mut index = with_consent();
    let lab = ServiceId::parse("service_id", "city.lab").unwrap();
    let research = Purpose::parse("purpose", "research").unwrap();
    let two_purposes = Command::RegisterService {
        service_id: lab.clone(),
        organisation: "City Lab".to_owned(),
        declarations: vec![
            declared(&["mobility.trips"]).remove(0),
            PurposeDeclaration {
                purpose: research.clone(),
                attributes: vec![attr("mobility.trips")],
            },
        ],
    };
    apply(&mut index, T0, two_purposes).unwrap();
    let only_research = Command::CertifyService {
        service_id: lab.clone(),
        by_city: city("nl-eindhoven"),
        declarations: vec![PurposeDeclaration {
            purpose: research,
            attributes: vec![attr("mobility.trips")],
        }],
        valid_until_unix_ms: T0 + 100,
    };
    apply(&mut index, T0 + 1, only_research).unwrap();

    let Command::Resolve(mut args) = resolve(&[]) else { unreachable!() };
    args.service_id = lab;
    let refused = resolution(apply(&mut index, T0 + 2, Command::Resolve(args)).unwrap());
    assert_eq!(refused.refused, Some(RefusalReason::PurposeNotCertified));
}

/// A leader whose clock runs behind stamps commands earlier than ones already applied:
/// they apply at the index's latest moment instead, so a withdrawal or a renewal never
/// lands before the certification it ends or replaces.
#[test]
fn a_command_stamped_in_the_past_applies_at_the_latest_moment() {
    let mut index = seeded_uncertified();
    let far = T0 + CERTIFIED_FOR_MS;
    let late = T0 + 1_000;
    apply(&mut index, late, certify(&["mobility.trips"], far)).unwrap();

    apply(&mut index, late - 500, certify(&["mobility.trips"], far)).unwrap();
    let renewed = ride_share(&index);
    let certification = renewed.certification.as_ref().unwrap();
    assert_eq!(certification.certified_at_unix_ms, late, "renewed no earlier than before");

    apply(&mut index, T0, decertify("be-gent")).unwrap();
    let withdrawn = ride_share(&index);
    let withdrawal = withdrawn.certification.as_ref().unwrap().withdrawn.as_ref().unwrap();
    assert_eq!(withdrawal.at_unix_ms, late, "withdrawn no earlier than certified");
    assert!(index.validate().is_ok());
}
