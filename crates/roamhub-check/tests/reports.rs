//! What the checker hands back besides a yes: giving up at its bound, explaining a
//! violation, keeping histories as JSON, and refusing a history no clock could record.

mod support;

use roamhub_check::CitizenInput::{Grant, Read, Withdraw};
use roamhub_check::history::validate;
use roamhub_check::{MalformedEvent, Verdict, check, check_with_bound};
use support::*;

const HOME: &str = "nl-eindhoven";
const TRIPS: &str = "mobility.trips";
const POD_A: &str = "https://pod-a.example/trips";
const POD_B: &str = "https://pod-b.example/trips";

/// A sequential history of `count` writes, each read back.
fn sequential(count: u64) -> Vec<CitizenEvent> {
    let mut history = Vec::new();
    for step in 0..count {
        let uri = format!("https://pod-{step}.example/trips");
        history.push(ok(1, 20 * step, 20 * step + 5, set_location(TRIPS, &uri), DONE));
        let state = citizen(HOME, &[(TRIPS, &uri)], &[]);
        history.push(ok(2, 20 * step + 10, 20 * step + 15, Read, seen(state)));
    }
    history
}

#[test]
fn the_search_gives_up_at_its_bound() {
    // Placing twenty operations needs more than five configurations, so a bound of five
    // must end in giving up rather than in a verdict.
    let history = sequential(10);

    assert_eq!(check_with_bound(&model(), &history, 5), Verdict::GaveUp { explored: 5 });
    assert_eq!(check(&model(), &history), Verdict::Linearizable);
}

#[test]
fn a_violation_names_the_operations_it_could_not_place() {
    // The report says which read could not be placed, and what it was up against.
    let history = [
        ok(1, 0, 10, set_location(TRIPS, POD_A), DONE),
        ok(2, 20, 30, set_location(TRIPS, POD_B), DONE),
        ok(3, 40, 50, Read, seen(citizen(HOME, &[(TRIPS, POD_A)], &[]))),
    ];

    let violation = assert_violation(&history);
    let report = violation.to_string();

    assert_eq!(violation.longest_prefix, [0, 1]);
    assert!(report.contains("#2 process 3 [40 ns, 50 ns] Read -> Ok(Read("), "{report}");
    assert!(report.contains(POD_B), "the state after the prefix is shown: {report}");
}

#[test]
fn a_violation_shows_where_it_placed_unanswered_operations() {
    // The withdrawal may have happened, and the first read says it did; the second read
    // then cannot see the consent given again.
    let history = [
        ok(1, 0, 10, Grant { tag: 3 }, DONE),
        unknown(2, 20, Withdraw { tag: 3 }),
        ok(3, 30, 40, Read, seen(citizen(HOME, &[], &[(3, false)]))),
        ok(3, 50, 60, Read, seen(citizen(HOME, &[], &[(3, true)]))),
    ];

    let violation = assert_violation(&history);
    assert_eq!(violation.longest_prefix, [0, 1, 2]);
    assert_eq!(violation.blocked.iter().map(|op| op.index).collect::<Vec<_>>(), [3]);
}

#[test]
fn histories_and_verdicts_round_trip_through_json() {
    // A history kept as JSON checks the same once read back.
    let history = vec![
        ok(1, 0, 10, Grant { tag: 3 }, DONE),
        failed(2, 5, 15, Withdraw { tag: 9 }),
        unknown(2, 20, set_location(TRIPS, POD_A)),
        ok(3, 30, 40, Read, seen(citizen(HOME, &[(TRIPS, POD_A)], &[(3, true)]))),
    ];

    let json = serde_json::to_string(&history).unwrap();
    let back: Vec<CitizenEvent> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, history);

    let verdict = check(&model(), &back);
    let verdict_json = serde_json::to_string(&verdict).unwrap();
    assert_eq!(serde_json::from_str::<Verdict>(&verdict_json).unwrap(), verdict);
    assert_eq!(verdict, Verdict::Linearizable);
}

#[test]
fn histories_with_nothing_to_place_are_linearizable() {
    // Nothing answered means nothing to explain.
    let refused = [failed(1, 0, 10, set_location(TRIPS, POD_A))];
    let unanswered = [unknown(1, 0, set_location(TRIPS, POD_A)), unknown(2, 5, Read)];

    assert_eq!(check(&model(), &[]), Verdict::Linearizable);
    assert_eq!(check(&model(), &refused), Verdict::Linearizable);
    assert_eq!(check(&model(), &unanswered), Verdict::Linearizable);
}

#[test]
fn an_event_answered_before_it_was_asked_is_malformed() {
    // No monotonic clock answers before it is asked.
    let history = [ok(1, 0, 10, Read, seen(model().initial)), ok(2, 30, 20, Read, DONE)];

    let malformed = MalformedEvent { index: 1, invoked_ns: 30, completed_ns: 20 };
    assert_eq!(validate(&history), Err(malformed));
}

#[test]
#[should_panic(expected = "malformed history: event #1 completed at 20 ns")]
fn checking_a_malformed_history_panics() {
    // A recorder bug is not a verdict about the system.
    let history = [ok(1, 0, 10, Read, seen(model().initial)), ok(2, 30, 20, Read, DONE)];

    check(&model(), &history);
}
