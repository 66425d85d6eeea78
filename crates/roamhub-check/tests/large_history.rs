//! Long citizen histories from a simulated run, checked whole as the runner will check
//! them: several clients with overlapping operations, timeouts scattered through the run,
//! and network partitions during which many writes time out and land later, or never.
//!
//! The simulation keeps a true sequential state and gives every operation that takes
//! effect a moment inside its interval (later, for one that timed out), so each history
//! it records is linearizable by construction.

mod support;

use roamhub_check::{CitizenInput, CitizenOutput, CitizenState, Model, Outcome, Verdict, check};
use support::*;

const CATEGORIES: [&str; 3] = ["mobility.trips", "health.records", "energy.meter"];
const CITIES: [&str; 4] = ["nl-eindhoven", "de-aachen", "be-gent", "fr-lille"];

/// The shape of a simulated run.
struct RunShape {
    seed: u64,
    clients: u64,
    events: usize,
    /// Longest pause of a client between two operations.
    pause_ns_max: u64,
    /// Chance, in percent, that an operation outside a partition times out.
    timeout_percent: u64,
    /// Time between the starts of two partitions, and how long each lasts.
    partition_every_ns: u64,
    partition_ns: u64,
    /// Chance, in percent, that an operation invoked during a partition times out.
    partition_timeout_percent: u64,
}

/// The runs the checker must handle quickly: about 2,000 operations of six clients,
/// overlapping but with pauses, and a few dozen timeouts.
const STEADY: RunShape = RunShape {
    seed: 1,
    clients: 6,
    events: 2_000,
    pause_ns_max: 2_000,
    timeout_percent: 2,
    partition_every_ns: 150_000,
    partition_ns: 0,
    partition_timeout_percent: 0,
};

/// Busier clients, and partitions during which most operations time out and the writes
/// among them that took effect land together once it heals.
const PARTITIONED: RunShape = RunShape {
    seed: 1,
    events: 800,
    pause_ns_max: 400,
    timeout_percent: 1,
    partition_ns: 4_000,
    partition_timeout_percent: 60,
    ..STEADY
};

#[derive(Clone, Copy)]
enum Kind {
    Read,
    Resolve,
    SetLocation,
    MoveHome,
    Grant,
    Withdraw,
}

/// An operation as the simulation plans it, before the true state decides its answer.
struct Planned {
    process: u64,
    invoked_ns: u64,
    completed_ns: u64,
    /// When it takes effect; `None` for a timed-out operation that never does.
    effect_ns: Option<u64>,
    timed_out: bool,
    kind: Kind,
}

#[test]
fn a_long_history_with_timeouts_is_found_linearizable() {
    // Several seeds, so that one lucky order does not carry the test.
    for seed in 1..=3 {
        let history = simulate(&RunShape { seed, ..STEADY });
        assert_eq!(history.len(), STEADY.events);
        let unknown = history.iter().filter(|e| e.outcome == Outcome::Unknown).count();
        assert!((24..=60).contains(&unknown), "seed {seed}: {unknown} unknown outcomes");
        assert!(max_overlap(&history) >= 5, "seed {seed}: too little concurrency");

        assert_eq!(check(&model(), &history), Verdict::Linearizable, "seed {seed}");
    }
}

#[test]
fn a_history_with_partitions_is_found_linearizable() {
    // Reads after a partition heals may see several timed-out writes at once.
    for seed in 1..=2 {
        let history = simulate(&RunShape { seed, ..PARTITIONED });
        assert_eq!(check(&model(), &history), Verdict::Linearizable, "seed {seed}");
    }
}

#[test]
fn a_long_history_with_one_stale_read_is_not_linearizable() {
    // The last read answers what the citizen looked like before the run began.
    let mut history = simulate(&RunShape { timeout_percent: 0, ..STEADY });
    let last_read = history.iter().rposition(|e| matches!(e.input, CitizenInput::Read)).unwrap();
    history[last_read].outcome = Outcome::Ok(seen(model().initial));

    let Verdict::NotLinearizable(violation) = check(&model(), &history) else {
        panic!("the stale read went unnoticed");
    };
    assert!(violation.blocked.iter().any(|op| op.index == last_read), "{violation}");
}

#[test]
fn a_history_with_timeouts_and_one_stale_read_is_not_linearizable() {
    // Refuting a history is harder than finding an order: every order must fail, and
    // operations of unknown outcome multiply them. A shorter history keeps this quick.
    let mut history = simulate(&RunShape { events: 300, ..STEADY });
    assert!(history.iter().any(|e| e.outcome == Outcome::Unknown));
    let last_read = history.iter().rposition(|e| matches!(e.input, CitizenInput::Read)).unwrap();
    history[last_read].outcome = Outcome::Ok(seen(model().initial));

    let verdict = check(&model(), &history);
    assert!(matches!(verdict, Verdict::NotLinearizable(_)), "{verdict:?}");
}

fn simulate(shape: &RunShape) -> Vec<CitizenEvent> {
    let mut rng = Rng::seeded(shape.seed);
    let planned = plan(shape, &mut rng);
    let answers = answer(&planned, &mut rng);

    planned
        .iter()
        .zip(answers)
        .map(|(op, (input, outcome))| CitizenEvent {
            process: op.process,
            invoked_ns: op.invoked_ns,
            completed_ns: op.completed_ns,
            input,
            outcome,
        })
        .collect()
}

/// Times and kinds of every operation, client by client.
fn plan(shape: &RunShape, rng: &mut Rng) -> Vec<Planned> {
    let mut planned = Vec::with_capacity(shape.events);
    let mut next_process = shape.clients;
    for client in 0..shape.clients {
        let count = shape.events / shape.clients as usize
            + usize::from(client < (shape.events % shape.clients as usize) as u64);
        let mut process = client;
        let mut now_ns = client * 13;
        for _ in 0..count {
            let op = plan_one(shape, rng, process, now_ns);
            now_ns = op.completed_ns + rng.below(shape.pause_ns_max);
            // A client that timed out cannot tell what happened; it starts over as a new
            // process, so that its operations never overlap.
            if op.timed_out {
                process = next_process;
                next_process += 1;
            }
            planned.push(op);
        }
    }
    planned
}

fn plan_one(shape: &RunShape, rng: &mut Rng, process: u64, invoked_ns: u64) -> Planned {
    let duration_ns = 200 + rng.below(2_800);
    let completed_ns = invoked_ns + duration_ns;
    let partitioned = invoked_ns % shape.partition_every_ns < shape.partition_ns;
    let timeout_percent =
        if partitioned { shape.partition_timeout_percent } else { shape.timeout_percent };
    let timed_out = rng.chance(timeout_percent);

    let effect_ns = match (timed_out, partitioned) {
        (false, _) => Some(invoked_ns + rng.below(duration_ns + 1)),
        (true, _) if rng.chance(50) => None,
        // Writes stuck behind a partition land together once it heals.
        (true, true) => {
            let healed_ns = invoked_ns - invoked_ns % shape.partition_every_ns + shape.partition_ns;
            Some(healed_ns.max(invoked_ns) + rng.below(300))
        }
        (true, false) => Some(invoked_ns + rng.below(3 * duration_ns)),
    };
    Planned { process, invoked_ns, completed_ns, effect_ns, timed_out, kind: kind(rng) }
}

fn kind(rng: &mut Rng) -> Kind {
    match rng.below(100) {
        0..35 => Kind::Read,
        35..45 => Kind::Resolve,
        45..70 => Kind::SetLocation,
        70..80 => Kind::MoveHome,
        80..90 => Kind::Grant,
        _ => Kind::Withdraw,
    }
}

/// The input and outcome of every planned operation, from a true state to which each is
/// applied at its moment of effect.
fn answer(planned: &[Planned], rng: &mut Rng) -> Vec<(CitizenInput, Outcome<CitizenOutput>)> {
    let mut in_effect_order: Vec<usize> = (0..planned.len()).collect();
    in_effect_order.sort_by_key(|index| (planned[*index].effect_ns.unwrap_or(u64::MAX), *index));

    let mut state = model().initial;
    let mut next_tag = 1;
    let mut answers = vec![None; planned.len()];
    for index in in_effect_order {
        let op = &planned[index];
        let (input, output) = match op.effect_ns {
            Some(_) => take_effect(&mut state, op.kind, &mut next_tag, rng),
            None => (input_without_effect(op.kind, &mut next_tag, rng), None),
        };
        let outcome = match (op.timed_out, output) {
            (true, _) => Outcome::Unknown,
            (false, Some(output)) => Outcome::Ok(output),
            (false, None) => Outcome::Failed,
        };
        answers[index] = Some((input, outcome));
    }
    answers.into_iter().map(Option::unwrap).collect()
}

/// Applies an operation of `kind` to the true state: its input, and its output, or
/// `None` when the index refuses it.
fn take_effect(
    state: &mut CitizenState,
    kind: Kind,
    next_tag: &mut u64,
    rng: &mut Rng,
) -> (CitizenInput, Option<CitizenOutput>) {
    match kind {
        Kind::Read => (CitizenInput::Read, Some(seen(state.clone()))),
        Kind::Resolve => {
            let any_given = state.consents.values().any(|given| *given);
            (CitizenInput::Resolve, Some(released(any_given)))
        }
        Kind::Withdraw => {
            let given: Vec<u64> = state.consents.iter().filter(|c| *c.1).map(|c| *c.0).collect();
            if given.is_empty() {
                return (CitizenInput::Withdraw { tag: 0 }, None);
            }
            let tag = given[rng.below(given.len() as u64) as usize];
            state.consents.insert(tag, false);
            (CitizenInput::Withdraw { tag }, Some(CitizenOutput::Done))
        }
        _ => {
            let input = input_without_effect(kind, next_tag, rng);
            *state = model().step(state, &input, None).expect("writes here always apply");
            (input, Some(CitizenOutput::Done))
        }
    }
}

/// An input of `kind` for an operation that never takes effect.
fn input_without_effect(kind: Kind, next_tag: &mut u64, rng: &mut Rng) -> CitizenInput {
    match kind {
        Kind::Read => CitizenInput::Read,
        Kind::Resolve => CitizenInput::Resolve,
        Kind::SetLocation => {
            let category = CATEGORIES[rng.below(CATEGORIES.len() as u64) as usize];
            let uri = format!("https://pod-{}.example/{category}", rng.below(4));
            set_location(category, &uri)
        }
        Kind::MoveHome => move_home(CITIES[rng.below(CITIES.len() as u64) as usize]),
        Kind::Grant => {
            *next_tag += 1;
            CitizenInput::Grant { tag: *next_tag }
        }
        // Tag 0 is never granted, so this withdrawal could change nothing anyway.
        Kind::Withdraw => CitizenInput::Withdraw { tag: 0 },
    }
}

/// The most answered operations in flight at one moment.
fn max_overlap(history: &[CitizenEvent]) -> usize {
    let mut moments: Vec<(u64, i64)> = Vec::new();
    for event in history.iter().filter(|event| matches!(event.outcome, Outcome::Ok(_))) {
        moments.push((event.invoked_ns, 1));
        moments.push((event.completed_ns + 1, -1));
    }
    moments.sort();
    let in_flight = moments.iter().scan(0, |count, (_, change)| {
        *count += change;
        Some(*count)
    });
    in_flight.max().unwrap_or(0) as usize
}
