//! Unit tests of the pure index: each drives `Index::apply` directly with stamped requests
//! and checks both the answer and that refused requests change nothing.

mod support;

use roamhub_index::index::chain_holds;
use roamhub_index::{
    CitizenId, CitizenOp, Command, ConsentId, ConsentStatus, ConsentsPage, Identifier, Index,
    IndexError, Query, QueryAnswer, RefusalReason, ResolveArgs, Response, ServiceId, signing,
};
use support::*;

#[test]
fn resolution_releases_exactly_the_consented_attributes() {
    let mut index = seeded();
    alice_does(&mut index, T0 + 1, grant(&["mobility.trips", "mobility.pass"], None)).unwrap();

    let released = resolution(apply(&mut index, T0 + 2, resolve(&[])).unwrap());

    assert_eq!(released.refused, None);
    let uris: Vec<&str> = released.pointers.iter().map(|p| p.uri.as_str()).collect();
    assert_eq!(
        uris,
        ["https://pod.example/alice/mobility/pass", "https://pod.example/alice/mobility/trips"]
    );
    assert_eq!(released.home_city, city("nl-eindhoven"));
    assert_eq!(access_log(&index).len(), 1);
}

#[test]
fn asking_for_more_than_consented_releases_only_the_overlap() {
    let mut index = seeded();
    alice_does(&mut index, T0 + 1, grant(&["mobility.trips"], None)).unwrap();

    let released = resolution(
        apply(&mut index, T0 + 2, resolve(&["mobility.trips", "mobility.home"])).unwrap(),
    );
    assert_eq!(released.pointers.len(), 1);
    assert_eq!(released.pointers[0].attribute, attr("mobility.trips"));

    let refused = resolution(apply(&mut index, T0 + 3, resolve(&["mobility.home"])).unwrap());
    assert_eq!(refused.refused, Some(RefusalReason::AttributesNotConsented));
}

#[test]
fn withdrawn_and_expired_consents_release_nothing_but_leave_a_record() {
    let mut index = seeded();
    let Response::Consent(consent) =
        alice_does(&mut index, T0 + 1, grant(&["mobility.trips"], Some(T0 + 100))).unwrap()
    else {
        panic!("grant answers the consent");
    };

    let expired = resolution(apply(&mut index, T0 + 100, resolve(&[])).unwrap());
    assert_eq!(expired.refused, Some(RefusalReason::ConsentExpired));
    assert_eq!(consent.status_at(T0 + 100), ConsentStatus::Expired);

    alice_does(&mut index, T0 + 200, grant(&["mobility.trips"], None)).unwrap();
    let withdraw = CitizenOp::WithdrawConsent { consent_id: ConsentId(consent.consent_id.0 + 1) };
    alice_does(&mut index, T0 + 201, withdraw).unwrap();
    let withdrawn = resolution(apply(&mut index, T0 + 202, resolve(&[])).unwrap());
    assert!(withdrawn.refused.is_some());
    assert!(withdrawn.pointers.is_empty());

    let log = access_log(&index);
    assert_eq!(log.len(), 2, "every attempt leaves a record");
    assert!(log[0].record > log[1].record, "newest first");
}

#[test]
fn switching_storage_keeps_history_and_moves_the_pointers() {
    let mut index = seeded();
    alice_does(&mut index, T0 + 1, grant(&["mobility.trips"], None)).unwrap();
    let switch = CitizenOp::SetLocation {
        category: roamhub_index::Category::parse("category", "mobility").unwrap(),
        uri: "https://new-pod.example/a/m".to_owned(),
        provider: "New Pod".to_owned(),
    };
    let Response::Location(location) = alice_does(&mut index, T0 + 5, switch).unwrap() else {
        panic!("set location answers the location");
    };
    assert_eq!(location.history.len(), 1);
    assert_eq!(location.history[0].until_unix_ms, Some(T0 + 5));

    alice_does(&mut index, T0 + 6, CitizenOp::MoveHome { to_city: city("be-gent") }).unwrap();
    let released = resolution(apply(&mut index, T0 + 7, resolve(&[])).unwrap());
    assert_eq!(released.pointers[0].uri, "https://new-pod.example/a/m/trips");
    assert_eq!(released.home_city, city("be-gent"));
}

#[test]
fn refused_commands_change_nothing() {
    let mut index = seeded();
    let before = index.clone();

    let undeclared = grant(&["mobility.trips", "health.records"], None);
    let err = alice_does(&mut index, T0 + 1, undeclared).unwrap_err();
    assert!(matches!(err, IndexError::Precondition { .. }), "{err}");
    assert_eq!(err.field(), "attributes");

    let unknown_city = CitizenOp::MoveHome { to_city: city("de-berlin") };
    assert_eq!(alice_does(&mut index, T0 + 2, unknown_city).unwrap_err().field(), "to_city");

    let move_home = CitizenOp::MoveHome { to_city: city("be-gent") };
    let stranger = signed_as(&index, CitizenId::from_random([9; 16]), &ALICE_SECRET, move_home);
    assert!(matches!(apply(&mut index, T0 + 3, stranger), Err(IndexError::NotFound { .. })));

    let identifiers = vec![ident("EHV-2"), ident("EHV-1")];
    let taken = register("be-gent", identifiers, CitizenId::from_random([8; 16]), &[5; 32]);
    assert!(matches!(apply(&mut index, T0 + 4, taken), Err(IndexError::AlreadyExists { .. })));

    let past = grant(&["mobility.trips"], Some(T0));
    assert_eq!(alice_does(&mut index, T0 + 5, past).unwrap_err().field(), "valid_until_unix_ms");

    assert_eq!(index, before);
}

#[test]
fn unknown_identifiers_are_not_found_and_leave_no_record() {
    let mut index = seeded();
    let mut args = match resolve(&[]) {
        Command::Resolve(args) => args,
        _ => unreachable!(),
    };
    args.identifier = ident("nobody");
    let err = apply(&mut index, T0 + 1, Command::Resolve(args)).unwrap_err();
    assert_eq!(err.field(), "identifier");
    assert!(access_log(&index).is_empty());
}

#[test]
fn applying_the_same_requests_gives_the_same_bytes() {
    let mut left = seeded();
    let mut right = seeded();
    for index in [&mut left, &mut right] {
        alice_does(index, T0 + 1, grant(&["mobility.trips", "mobility.pass"], None)).unwrap();
        apply(index, T0 + 2, resolve(&["mobility.trips"])).unwrap();
    }
    let left_bytes = postcard::to_stdvec(&left).unwrap();
    assert_eq!(left_bytes, postcard::to_stdvec(&right).unwrap());
    let decoded: Index = postcard::from_bytes(&left_bytes).unwrap();
    assert_eq!(decoded, left);
    decoded.validate().unwrap();
}

fn pass_pointer(uri: &str) -> CitizenOp {
    CitizenOp::SetLocation {
        category: roamhub_index::Category::parse("category", "pass").unwrap(),
        uri: uri.to_owned(),
        provider: "Pod Co".to_owned(),
    }
}

#[test]
fn forged_replayed_and_reordered_operations_are_refused() {
    let mut index = seeded();
    let before = index.clone();

    let forged = signed_as(&index, alice(), &[13; 32], pass_pointer("https://evil.example"));
    let err = apply(&mut index, T0 + 1, forged).unwrap_err();
    assert!(matches!(err, IndexError::Denied { .. }), "{err}");

    let mut tampered = citizen_op(&index, pass_pointer("https://pod.example/pass"));
    if let Command::Citizen { op, .. } = &mut tampered {
        *op = pass_pointer("https://evil.example");
    }
    assert_eq!(apply(&mut index, T0 + 2, tampered).unwrap_err().field(), "signature");
    assert_eq!(index, before, "refused forgeries change nothing");

    let genuine = citizen_op(&index, pass_pointer("https://pod.example/pass"));
    apply(&mut index, T0 + 3, genuine.clone()).unwrap();
    let replayed = apply(&mut index, T0 + 4, genuine).unwrap_err();
    assert_eq!(replayed.field(), "sequence", "{replayed}");

    let mut ahead = citizen_op(&index, pass_pointer("https://pod.example/later"));
    if let Command::Citizen { citizen_id, op, auth } = &mut ahead {
        auth.sequence += 1;
        let message = signing::citizen_op_message(citizen_id, auth.sequence, op);
        auth.signature = signing::sign(&ALICE_SECRET, &message);
    }
    assert_eq!(apply(&mut index, T0 + 5, ahead).unwrap_err().field(), "sequence");
}

#[test]
fn a_new_key_signed_by_an_old_one_replaces_it() {
    let mut index = seeded();
    let new_secret = [77; 32];
    let new_key = signing::public_key_of(&new_secret);
    alice_does(&mut index, T0 + 1, CitizenOp::AddKey { public_key: new_key }).unwrap();

    let old_key_id = signing::public_key_of(&ALICE_SECRET).key_id();
    let remove_old =
        signed_as(&index, alice(), &new_secret, CitizenOp::RemoveKey { key_id: old_key_id });
    apply(&mut index, T0 + 2, remove_old).unwrap();

    let with_old = alice_does(&mut index, T0 + 3, pass_pointer("https://pod.example/p"));
    assert_eq!(with_old.unwrap_err().field(), "key_id");
    let with_new = signed_as(&index, alice(), &new_secret, pass_pointer("https://pod.example/p"));
    apply(&mut index, T0 + 4, with_new).unwrap();
}

#[test]
fn only_the_home_city_recovers_a_lost_key_and_the_citizen_sees_it() {
    let mut index = seeded();
    let recovered_secret = [91; 32];
    let recover = |by_city: &str| Command::RecoverKey {
        citizen_id: alice(),
        public_key: signing::public_key_of(&recovered_secret),
        by_city: city(by_city),
    };

    let err = apply(&mut index, T0 + 1, recover("be-gent")).unwrap_err();
    assert!(matches!(err, IndexError::Denied { .. }), "{err}");
    apply(&mut index, T0 + 2, recover("nl-eindhoven")).unwrap();

    let lost = alice_does(&mut index, T0 + 3, pass_pointer("https://pod.example/p"));
    assert!(lost.is_err(), "the lost key no longer signs");
    let Ok(QueryAnswer::Citizen(citizen)) = index.query(&Query::Citizen(alice())) else {
        panic!("alice exists");
    };
    let last = citizen.key_history.last().unwrap();
    assert_eq!(
        last.change,
        roamhub_index::model::KeyChange::Recovered { by_city: city("nl-eindhoven") }
    );
}

#[test]
fn a_registration_proves_possession_of_its_key() {
    let mut index = seeded();
    let mut claim =
        register("be-gent", vec![ident("GNT-1")], CitizenId::from_random([3; 16]), &[4; 32]);
    if let Command::RegisterCitizen { public_key, .. } = &mut claim {
        *public_key = signing::public_key_of(&[5; 32]);
    }
    let err = apply(&mut index, T0 + 1, claim).unwrap_err();
    assert_eq!(err.field(), "signature", "{err}");
}

#[test]
fn erasure_forgets_everything_about_the_citizen() {
    let mut index = seeded();
    alice_does(&mut index, T0 + 1, grant(&["mobility.trips"], None)).unwrap();
    apply(&mut index, T0 + 2, resolve(&[])).unwrap();

    let erased = alice_does(&mut index, T0 + 3, CitizenOp::Erase).unwrap();
    assert_eq!(erased, Response::Erased { erasures: 1 });
    assert_eq!(index.citizen_count(), 0);
    assert!(index.query(&Query::Citizen(alice())).is_err());
    assert_eq!(apply(&mut index, T0 + 4, resolve(&[])).unwrap_err().field(), "identifier");

    let everything = postcard::to_stdvec(&index).unwrap();
    let pod = b"pod.example/alice";
    assert!(!everything.windows(pod.len()).any(|w| w == pod), "no trace of her pod");
}

#[test]
fn a_service_may_know_the_citizen_only_by_the_identity_she_chose() {
    let mut index = seeded();
    let eidas = Identifier::from_digest("identifier", "eidas", &"e".repeat(64)).unwrap();
    alice_does(&mut index, T0 + 1, CitizenOp::AddIdentifier(eidas.clone())).unwrap();
    let mut only_eidas = grant(&["mobility.trips"], None);
    if let CitizenOp::GrantConsent(grant) = &mut only_eidas {
        grant.identity_scheme = Some("eidas".to_owned());
    }
    alice_does(&mut index, T0 + 2, only_eidas).unwrap();

    let by_city_account = resolution(apply(&mut index, T0 + 3, resolve(&[])).unwrap());
    assert_eq!(by_city_account.refused, Some(RefusalReason::IdentityNotShared));

    let Command::Resolve(mut by_eidas) = resolve(&[]) else { unreachable!() };
    by_eidas.identifier = eidas;
    let released = resolution(apply(&mut index, T0 + 4, Command::Resolve(by_eidas)).unwrap());
    assert_eq!(released.refused, None);
    assert_eq!(released.pointers.len(), 1);
}

#[test]
fn a_city_with_another_identifier_key_cannot_join_the_index() {
    let mut index = seeded();
    let Command::UpsertMember(mut stranger) = member("de-hamburg", 3) else { unreachable!() };
    stranger.identifier_key_check = "check-2".to_owned();
    let err = apply(&mut index, T0 + 1, Command::UpsertMember(stranger)).unwrap_err();
    assert_eq!(err.field(), "identifier_key_check", "{err}");
}

#[test]
fn the_access_log_is_a_hash_chain_that_shows_tampering() {
    let mut index = seeded();
    alice_does(&mut index, T0 + 1, grant(&["mobility.trips"], None)).unwrap();
    for n in 0..4 {
        apply(&mut index, T0 + 2 + n, resolve(&[])).unwrap();
    }
    let mut log = access_log(&index);
    log.reverse();
    assert!(chain_holds(&log));

    let mut rewritten = log.clone();
    rewritten[1].via_city = city("nl-eindhoven");
    assert!(!chain_holds(&rewritten), "a rewritten record breaks the chain");
    let mut dropped = log.clone();
    dropped.remove(2);
    assert!(!chain_holds(&dropped), "a dropped record breaks the chain");
}

#[test]
fn a_batch_decides_and_records_each_resolution_on_its_own() {
    let mut index = seeded();
    alice_does(&mut index, T0 + 1, grant(&["mobility.trips"], None)).unwrap();
    let Command::Resolve(known) = resolve(&[]) else { unreachable!() };
    let stranger = ResolveArgs { identifier: ident("nobody"), ..known.clone() };

    let batch = Command::ResolveBatch(vec![known.clone(), stranger, known]);
    let Response::Resolutions(outcomes) = apply(&mut index, T0 + 2, batch).unwrap() else {
        panic!("a batch answers one outcome per resolution");
    };
    assert!(outcomes[0].as_ref().is_ok_and(|r| r.refused.is_none()));
    assert_eq!(outcomes[1].as_ref().unwrap_err().field(), "identifier");
    assert!(outcomes[2].is_ok());
    assert_eq!(access_log(&index).len(), 2, "the unknown identifier left no record");
}

#[test]
fn only_the_consents_service_acknowledges_its_withdrawal_once() {
    let mut index = seeded();
    let Response::Consent(consent) =
        alice_does(&mut index, T0 + 1, grant(&["mobility.trips"], None)).unwrap()
    else {
        panic!("grant answers the consent");
    };
    let ack = |service: &str| Command::AcknowledgeWithdrawal {
        service_id: ServiceId::parse("service_id", service).unwrap(),
        consent_id: consent.consent_id,
    };
    let early = apply(&mut index, T0 + 2, ack("ride.share")).unwrap_err();
    assert!(matches!(early, IndexError::Precondition { .. }), "{early}");

    let withdraw = CitizenOp::WithdrawConsent { consent_id: consent.consent_id };
    alice_does(&mut index, T0 + 3, withdraw).unwrap();
    assert!(matches!(
        apply(&mut index, T0 + 4, ack("bike.share")),
        Err(IndexError::NotFound { .. })
    ));
    let Response::Consent(acknowledged) = apply(&mut index, T0 + 5, ack("ride.share")).unwrap()
    else {
        panic!("acknowledgement answers the consent");
    };
    assert_eq!(acknowledged.withdrawal_acknowledged_at_unix_ms, Some(T0 + 5));
    assert!(apply(&mut index, T0 + 6, ack("ride.share")).is_err(), "only once");
}

#[test]
fn consents_renew_get_revoked_by_the_home_city_and_obey_the_lifetime_limit() {
    let mut index = seeded();
    let day = 86_400_000;
    let limit = Command::SetConsentLifetimeMax { lifetime_max_ms: Some(30 * day) };
    apply(&mut index, T0, limit).unwrap();
    let Response::Consent(open_ended) =
        alice_does(&mut index, T0 + 1, grant(&["mobility.trips"], None)).unwrap()
    else {
        panic!("grant answers the consent");
    };
    assert_eq!(open_ended.valid_until_unix_ms, Some(T0 + 1 + 30 * day), "capped by the limit");

    let renew = CitizenOp::RenewConsent {
        consent_id: open_ended.consent_id,
        valid_until_unix_ms: Some(T0 + 365 * day),
    };
    let Response::Consent(renewed) = alice_does(&mut index, T0 + 10 * day, renew).unwrap() else {
        panic!("renewal answers the consent");
    };
    assert_eq!(renewed.valid_until_unix_ms, Some(T0 + 40 * day));
    assert_eq!(renewed.status_at(T0 + 11 * day), ConsentStatus::Renewed);

    let revoke =
        |by: &str| Command::RevokeConsent { consent_id: open_ended.consent_id, by_city: city(by) };
    let err = apply(&mut index, T0 + 11 * day, revoke("be-gent")).unwrap_err();
    assert!(matches!(err, IndexError::Denied { .. }), "{err}");
    let Response::Consent(revoked) =
        apply(&mut index, T0 + 12 * day, revoke("nl-eindhoven")).unwrap()
    else {
        panic!("revocation answers the consent");
    };
    assert_eq!(revoked.status_at(T0 + 12 * day), ConsentStatus::Revoked);
    let refused = resolution(apply(&mut index, T0 + 13 * day, resolve(&[])).unwrap());
    assert_eq!(refused.refused, Some(RefusalReason::ConsentRevoked));
}

#[test]
fn an_old_pointer_forwards_to_the_new_store_under_the_same_consent() {
    let mut index = seeded();
    alice_does(&mut index, T0 + 1, grant(&["mobility.trips"], None)).unwrap();
    let switch = CitizenOp::SetLocation {
        category: roamhub_index::Category::parse("category", "mobility").unwrap(),
        uri: "https://new-pod.example/a/m".to_owned(),
        provider: "New Pod".to_owned(),
    };
    alice_does(&mut index, T0 + 2, switch).unwrap();

    let follow = |service: &str| {
        Command::FollowPointer(roamhub_index::FollowArgs {
            old_uri: "https://pod.example/alice/mobility/trips".to_owned(),
            service_id: ServiceId::parse("service_id", service).unwrap(),
            purpose: purpose(),
            via_city: city("be-gent"),
        })
    };
    let forwarded = resolution(apply(&mut index, T0 + 3, follow("ride.share")).unwrap());
    assert_eq!(forwarded.pointers[0].uri, "https://new-pod.example/a/m/trips");
    let stranger = resolution(apply(&mut index, T0 + 4, follow("bike.share")).unwrap());
    assert_eq!(stranger.refused, Some(RefusalReason::UnknownService));
    assert_eq!(access_log(&index).len(), 2, "each follow leaves an access record");

    alice_does(&mut index, T0 + 5, CitizenOp::Erase).unwrap();
    let gone = apply(&mut index, T0 + 6, follow("ride.share")).unwrap_err();
    assert_eq!(gone.field(), "old_uri");
}

/// An id read from the log or a peer is checked as it is decoded: a malformed one never
/// reaches code that relies on its shape (a one-letter city id once crashed every replica).
#[test]
fn malformed_ids_do_not_decode() {
    let encoded = |value: &str| postcard::to_stdvec(value).unwrap();
    assert!(postcard::from_bytes::<roamhub_index::CityId>(&encoded("d")).is_err());
    assert!(postcard::from_bytes::<roamhub_index::CitizenId>(&encoded("c-12")).is_err());
    assert!(postcard::from_bytes::<roamhub_index::ServiceId>(&encoded("Bad Name")).is_err());
    let city = postcard::from_bytes::<roamhub_index::CityId>(&encoded("nl-eindhoven")).unwrap();
    assert_eq!(city.country(), "NL");
    assert_eq!(postcard::to_stdvec(&city).unwrap(), encoded("nl-eindhoven"), "same wire form");
}

#[test]
fn a_services_consents_are_read_page_by_page_in_consent_order() {
    let mut index = seeded();
    for n in 0..7 {
        alice_does(&mut index, T0 + 1 + n, grant(&["mobility.trips"], None)).unwrap();
    }
    let page = |after_consent, limit| {
        let page = ConsentsPage { service_id: service(), limit, after_consent };
        match index.query(&Query::ConsentsOfService(page)).unwrap() {
            QueryAnswer::Consents(consents) => consents,
            other => panic!("a page of consents, not {other:?}"),
        }
    };
    let all = page(None, 100);
    assert_eq!(all.len(), 7);
    let mut read = Vec::new();
    let mut after = None;
    loop {
        let next = page(after, 3);
        read.extend(next.iter().map(|c| c.consent_id));
        match next.last() {
            Some(last) if next.len() == 3 => after = Some(last.consent_id),
            _ => break,
        }
    }
    assert_eq!(read, all.iter().map(|c| c.consent_id).collect::<Vec<_>>(), "each once, in order");
    assert_eq!(page(None, 0).len(), 1, "a page holds at least one consent");
}
