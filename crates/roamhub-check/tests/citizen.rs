//! Small hand-written histories of one citizen, each with the verdict it must get: the
//! orders clients may legitimately observe, and the anomalies the checker must catch.

mod support;

use roamhub_check::CitizenInput::{Grant, Read, Resolve, Withdraw};
use support::*;

const HOME: &str = "nl-eindhoven";
const TRIPS: &str = "mobility.trips";
const POD_A: &str = "https://pod-a.example/trips";
const POD_B: &str = "https://pod-b.example/trips";

#[test]
fn a_sequential_history_is_linearizable() {
    // One write or read after another, each seeing everything before it.
    let history = [
        ok(1, 0, 10, set_location(TRIPS, POD_A), DONE),
        ok(1, 20, 30, Read, seen(citizen(HOME, &[(TRIPS, POD_A)], &[]))),
        ok(2, 40, 50, move_home("de-aachen"), DONE),
        ok(2, 60, 70, Grant { tag: 7 }, DONE),
        ok(1, 80, 90, Resolve, released(true)),
        ok(1, 100, 110, Withdraw { tag: 7 }, DONE),
        ok(2, 120, 130, Resolve, released(false)),
        ok(2, 140, 150, Read, seen(citizen("de-aachen", &[(TRIPS, POD_A)], &[(7, false)]))),
    ];

    assert_linearizable(&history);
}

#[test]
fn a_read_overlapping_a_write_may_see_the_old_or_the_new_value() {
    // The read runs while the write is in flight, so either order explains it.
    for read_sees in [&[][..], &[(TRIPS, POD_A)][..]] {
        let history = [
            ok(1, 0, 100, set_location(TRIPS, POD_A), DONE),
            ok(2, 10, 50, Read, seen(citizen(HOME, read_sees, &[]))),
        ];

        assert_linearizable(&history);
    }
}

#[test]
fn an_unknown_write_whose_effect_a_later_read_sees_is_linearizable() {
    // The write timed out, yet it took effect: the next read shows it.
    let history = [
        unknown(1, 0, set_location(TRIPS, POD_A)),
        ok(2, 50, 60, Read, seen(citizen(HOME, &[], &[]))),
        ok(2, 70, 80, Read, seen(citizen(HOME, &[(TRIPS, POD_A)], &[]))),
        ok(3, 90, 100, Read, seen(citizen(HOME, &[(TRIPS, POD_A)], &[]))),
    ];

    assert_linearizable(&history);
}

#[test]
fn an_unknown_write_never_seen_is_linearizable() {
    // The write timed out and never took effect: no read shows it.
    let history = [
        unknown(1, 0, set_location(TRIPS, POD_A)),
        ok(2, 50, 60, Read, seen(citizen(HOME, &[], &[]))),
        ok(3, 70, 80, move_home("be-gent"), DONE),
        ok(2, 90, 100, Read, seen(citizen("be-gent", &[], &[]))),
    ];

    assert_linearizable(&history);
}

#[test]
fn a_resolve_overlapping_a_grant_may_release() {
    // The consent is granted while the service resolves, so the release may count it.
    let history = [
        ok(1, 0, 100, Grant { tag: 1 }, DONE),
        ok(2, 20, 80, Resolve, released(true)),
        ok(3, 30, 90, Resolve, released(false)),
    ];

    assert_linearizable(&history);
}

#[test]
fn a_refused_write_is_dropped() {
    // The index refused the withdrawal, so the consent stays given.
    let history = [
        ok(1, 0, 10, Grant { tag: 1 }, DONE),
        failed(2, 20, 30, Withdraw { tag: 1 }),
        ok(1, 40, 50, Resolve, released(true)),
    ];

    assert_linearizable(&history);
}

#[test]
fn a_stale_read_after_an_acknowledged_write_is_caught() {
    // The read starts after the write was acknowledged, yet sees the old pointer.
    let history = [
        ok(1, 0, 10, set_location(TRIPS, POD_A), DONE),
        ok(2, 20, 30, set_location(TRIPS, POD_B), DONE),
        ok(3, 40, 50, Read, seen(citizen(HOME, &[(TRIPS, POD_A)], &[]))),
    ];

    let violation = assert_violation(&history);
    assert_eq!(violation.longest_prefix, [0, 1]);
    assert_eq!(violation.blocked.len(), 1);
    assert_eq!(violation.blocked[0].index, 2);
}

#[test]
fn a_read_of_a_value_nobody_wrote_is_caught() {
    // The read overlaps the only write, but sees a pointer nobody set.
    let history = [
        ok(1, 0, 100, set_location(TRIPS, POD_A), DONE),
        ok(2, 10, 90, Read, seen(citizen(HOME, &[(TRIPS, POD_B)], &[]))),
    ];

    assert_violation(&history);
}

#[test]
fn reads_that_flip_from_new_back_to_old_are_caught() {
    // Both reads overlap the write, but the second starts after the first saw the new
    // pointer, so it may not see the old one.
    let history = [
        ok(1, 0, 100, set_location(TRIPS, POD_A), DONE),
        ok(2, 10, 20, Read, seen(citizen(HOME, &[(TRIPS, POD_A)], &[]))),
        ok(3, 30, 40, Read, seen(citizen(HOME, &[], &[]))),
    ];

    assert_violation(&history);
}

#[test]
fn a_release_after_the_only_consent_was_withdrawn_is_caught() {
    // The service is released pointers after the only consent was withdrawn.
    let history = [
        ok(1, 0, 10, Grant { tag: 3 }, DONE),
        ok(1, 20, 30, Withdraw { tag: 3 }, DONE),
        ok(2, 40, 50, Resolve, released(true)),
    ];

    let violation = assert_violation(&history);
    assert_eq!(violation.blocked[0].input, "Resolve");
}

#[test]
fn a_withdrawn_consent_seen_as_given_again_is_caught() {
    // One read sees the withdrawal; a later read sees the consent given again.
    let history = [
        ok(1, 0, 10, Grant { tag: 3 }, DONE),
        ok(1, 20, 60, Withdraw { tag: 3 }, DONE),
        ok(2, 25, 35, Read, seen(citizen(HOME, &[], &[(3, false)]))),
        ok(3, 40, 50, Read, seen(citizen(HOME, &[], &[(3, true)]))),
    ];

    assert_violation(&history);
}

#[test]
fn an_unknown_write_cannot_explain_a_read_that_ended_before_it_began() {
    // Taking effect "at any moment" still means after the invocation.
    let history = [
        ok(2, 0, 10, Read, seen(citizen(HOME, &[(TRIPS, POD_A)], &[]))),
        unknown(1, 20, set_location(TRIPS, POD_A)),
    ];

    assert_violation(&history);
}

#[test]
fn a_refused_write_seen_by_a_read_is_caught() {
    // The index said no, so no read may see the write.
    let history = [
        failed(1, 0, 10, set_location(TRIPS, POD_A)),
        ok(2, 20, 30, Read, seen(citizen(HOME, &[(TRIPS, POD_A)], &[]))),
    ];

    assert_violation(&history);
}
