//! The checker knows nothing of roamhub: a plain read/write register, written here in a
//! few lines, gets the textbook verdicts, including the classic anomaly of two reads that
//! see a write's new value and then its old one.

mod support;

use roamhub_check::{Model, Verdict, check};
use support::{ok, unknown};

/// A single register holding a number, initially zero.
struct Register;

#[derive(Clone, Copy, Debug)]
enum Op {
    Write(u32),
    Read,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    Written,
    Value(u32),
}

impl Model for Register {
    type State = u32;
    type Input = Op;
    type Output = Answer;

    fn init(&self) -> u32 {
        0
    }

    fn step(&self, value: &u32, input: &Op, output: Option<&Answer>) -> Option<u32> {
        match (input, output) {
            (Op::Write(new), None | Some(Answer::Written)) => Some(*new),
            (Op::Read, None) => Some(*value),
            (Op::Read, Some(Answer::Value(seen))) if seen == value => Some(*value),
            _ => None,
        }
    }
}

#[test]
fn reads_overlapping_a_write_may_see_old_then_new() {
    // Reads during a write may see the old value, then the new one.
    let history = [
        ok(0, 0, 100, Op::Write(1), Answer::Written),
        ok(1, 10, 20, Op::Read, Answer::Value(0)),
        ok(2, 30, 40, Op::Read, Answer::Value(1)),
        ok(1, 110, 120, Op::Read, Answer::Value(1)),
    ];

    assert_eq!(check(&Register, &history), Verdict::Linearizable);
}

#[test]
fn reads_overlapping_a_write_may_not_see_new_then_old() {
    // The classic anomaly: once a read returned the new value, a read that starts later
    // may not return the old one, even while the write is still in flight.
    let history = [
        ok(0, 0, 100, Op::Write(1), Answer::Written),
        ok(1, 10, 20, Op::Read, Answer::Value(1)),
        ok(2, 30, 40, Op::Read, Answer::Value(0)),
    ];

    let Verdict::NotLinearizable(violation) = check(&Register, &history) else {
        panic!("the flip-flop went unnoticed");
    };
    assert_eq!(violation.blocked.iter().map(|op| op.index).collect::<Vec<_>>(), [2]);
}

#[test]
fn concurrent_writes_may_land_in_either_order() {
    // The later-invoked write may land first, so a read may see the earlier one.
    let history = [
        ok(0, 0, 50, Op::Write(1), Answer::Written),
        ok(1, 10, 60, Op::Write(2), Answer::Written),
        ok(2, 70, 80, Op::Read, Answer::Value(1)),
    ];

    assert_eq!(check(&Register, &history), Verdict::Linearizable);
}

#[test]
fn a_lost_write_that_was_acknowledged_is_caught() {
    // The read sees the first write after the second was acknowledged: the second is lost.
    let history = [
        ok(0, 0, 10, Op::Write(1), Answer::Written),
        ok(1, 20, 30, Op::Write(2), Answer::Written),
        ok(2, 40, 50, Op::Read, Answer::Value(1)),
    ];

    assert!(matches!(check(&Register, &history), Verdict::NotLinearizable(_)));
}

#[test]
fn a_timed_out_write_may_explain_a_later_read_or_nothing() {
    // A write without an answer may have landed, or not.
    let seen = [unknown(0, 0, Op::Write(7)), ok(1, 50, 60, Op::Read, Answer::Value(7))];
    let unseen = [unknown(0, 0, Op::Write(7)), ok(1, 50, 60, Op::Read, Answer::Value(0))];

    assert_eq!(check(&Register, &seen), Verdict::Linearizable);
    assert_eq!(check(&Register, &unseen), Verdict::Linearizable);
}
