//! The checker agrees with the definition of linearizability on thousands of small random
//! histories: a brute-force search that tries every order, with none of the checker's
//! pruning, ordering or passes, must reach the same verdict.

mod support;

use std::collections::HashSet;

use roamhub_check::{
    CitizenInput, CitizenModel, CitizenOutput, CitizenState, Event, Model, Outcome, Verdict, check,
};
use support::{Rng, model};

/// Two small registers, so that some writes commute and some do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Pair {
    x: u8,
    y: u8,
}

#[derive(Clone, Copy, Debug)]
enum PairInput {
    SetX(u8),
    SetY(u8),
    /// Adds one to `x`, modulo 3: neither overwrites nor commutes with a set of `x`.
    BumpX,
    /// Reads both registers.
    Read,
    /// Reads `x` only, so that many states fit one answer.
    ReadX,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum PairOutput {
    Done,
    Seen(Pair),
    SeenX(u8),
}

/// The pair model, with or without telling the checker which inputs only read.
struct PairModel {
    hints: bool,
}

impl Model for PairModel {
    type State = Pair;
    type Input = PairInput;
    type Output = PairOutput;

    fn init(&self) -> Pair {
        Pair { x: 0, y: 0 }
    }

    fn step(&self, state: &Pair, input: &PairInput, output: Option<&PairOutput>) -> Option<Pair> {
        let (next, answer) = apply(*state, *input);
        match output {
            None => Some(next),
            Some(output) => (*output == answer).then_some(next),
        }
    }

    fn is_read_only(&self, input: &PairInput) -> bool {
        self.hints && matches!(input, PairInput::Read | PairInput::ReadX)
    }
}

fn apply(state: Pair, input: PairInput) -> (Pair, PairOutput) {
    match input {
        PairInput::SetX(x) => (Pair { x, ..state }, PairOutput::Done),
        PairInput::SetY(y) => (Pair { y, ..state }, PairOutput::Done),
        PairInput::BumpX => (Pair { x: (state.x + 1) % 3, ..state }, PairOutput::Done),
        PairInput::Read => (state, PairOutput::Seen(state)),
        PairInput::ReadX => (state, PairOutput::SeenX(state.x)),
    }
}

type PairEvent = Event<PairInput, PairOutput>;

/// How the random histories of one round of agreement are drawn.
struct Draw {
    operations_max: u64,
    unknown_percent: u64,
}

#[test]
fn the_checker_agrees_with_brute_force_on_random_small_histories() {
    // Short histories, a few operations of unknown outcome each.
    agree_on_random_histories(1, Draw { operations_max: 8, unknown_percent: 20 });
}

#[test]
fn the_checker_agrees_with_brute_force_when_many_outcomes_are_unknown() {
    // Runs of several operations of unknown outcome, which only later passes allow.
    agree_on_random_histories(2, Draw { operations_max: 11, unknown_percent: 50 });
}

#[test]
fn the_citizen_model_agrees_with_brute_force_on_random_small_histories() {
    // The read-only rule with reads that fit one state (Read) and many (Resolve).
    let mut rng = Rng::seeded(3);
    let mut verdicts = [0; 2];
    for round in 0..5_000 {
        let history = random_citizen_history(&mut rng);
        let expected = brute_force(&model(), &history);
        let linearizable = match check(&model(), &history) {
            Verdict::Linearizable => true,
            Verdict::NotLinearizable(_) => false,
            Verdict::GaveUp { .. } => panic!("round {round}: gave up on {history:#?}"),
        };
        assert_eq!(linearizable, expected, "round {round}: {history:#?}");
        verdicts[usize::from(expected)] += 1;
    }

    assert!(verdicts.iter().all(|count| *count > 750), "{verdicts:?}");
}

fn agree_on_random_histories(seed: u64, draw: Draw) {
    let mut rng = Rng::seeded(seed);
    let mut verdicts = [0; 2];
    for round in 0..5_000 {
        let history = random_history(&mut rng, &draw);
        let expected = brute_force(&PairModel { hints: false }, &history);
        for hints in [true, false] {
            let verdict = check(&PairModel { hints }, &history);
            let linearizable = match verdict {
                Verdict::Linearizable => true,
                Verdict::NotLinearizable(_) => false,
                Verdict::GaveUp { .. } => panic!("round {round}: gave up on {history:#?}"),
            };
            assert_eq!(linearizable, expected, "round {round}, hints {hints}: {history:#?}");
        }
        verdicts[usize::from(expected)] += 1;
    }

    // Both verdicts must be common, or the agreement says little.
    assert!(verdicts.iter().all(|count| *count > 750), "{verdicts:?}");
}

/// A history of a simulated run, whose answers are then sometimes corrupted.
fn random_history(rng: &mut Rng, draw: &Draw) -> Vec<PairEvent> {
    let count = 2 + rng.below(draw.operations_max - 1) as usize;
    let mut planned: Vec<(u64, u64, u64, PairInput)> = (0..count)
        .map(|_| {
            let invoked_ns = rng.below(30);
            let completed_ns = invoked_ns + rng.below(12);
            let effect_ns = invoked_ns + rng.below(completed_ns - invoked_ns + 1);
            (invoked_ns, completed_ns, effect_ns, random_input(rng))
        })
        .collect();
    planned.sort_by_key(|(_, _, effect_ns, _)| *effect_ns);

    let mut state = PairModel { hints: true }.init();
    let mut history = Vec::new();
    for (process, (invoked_ns, completed_ns, _, input)) in planned.into_iter().enumerate() {
        let outcome = match rng.below(100) {
            0..10 => Outcome::Failed,
            percent if percent < 10 + draw.unknown_percent => {
                if rng.chance(50) {
                    state = apply(state, input).0;
                }
                Outcome::Unknown
            }
            _ => {
                let (next, answer) = apply(state, input);
                state = next;
                Outcome::Ok(answer)
            }
        };
        history.push(Event { process: process as u64, invoked_ns, completed_ns, input, outcome });
    }

    if rng.chance(70) {
        corrupt(&mut history, rng);
    }
    history
}

fn random_input(rng: &mut Rng) -> PairInput {
    let value = rng.below(3) as u8;
    match rng.below(5) {
        0 => PairInput::SetX(value),
        1 => PairInput::SetY(value),
        2 => PairInput::BumpX,
        3 => PairInput::Read,
        _ => PairInput::ReadX,
    }
}

/// Replaces the answer of one read with a random one.
fn corrupt(history: &mut [PairEvent], rng: &mut Rng) {
    let index = rng.below(history.len() as u64) as usize;
    let pair = Pair { x: rng.below(3) as u8, y: rng.below(3) as u8 };
    history[index].outcome = match history[index].input {
        PairInput::Read => Outcome::Ok(PairOutput::Seen(pair)),
        PairInput::ReadX => Outcome::Ok(PairOutput::SeenX(pair.x)),
        _ => return,
    };
}

/// Whether some order of every answered operation and any of those of unknown outcome
/// explains the history, by trying them all.
fn brute_force<M: Model>(model: &M, history: &[Event<M::Input, M::Output>]) -> bool {
    let mut placed = vec![false; history.len()];
    for (index, event) in history.iter().enumerate() {
        placed[index] = matches!(event.outcome, Outcome::Failed);
    }
    let mut failed = HashSet::new();
    search(model, history, &mut placed, model.init(), &mut failed)
}

fn search<M: Model>(
    model: &M,
    history: &[Event<M::Input, M::Output>],
    placed: &mut Vec<bool>,
    state: M::State,
    failed: &mut HashSet<(Vec<bool>, M::State)>,
) -> bool {
    let pending_answered = |i: usize| !placed[i] && matches!(history[i].outcome, Outcome::Ok(_));
    if !(0..history.len()).any(pending_answered) {
        return true;
    }
    if failed.contains(&(placed.clone(), state.clone())) {
        return false;
    }

    // Real time: every answered operation that completed before one was invoked must
    // come before it.
    let may_come_next: Vec<usize> = (0..history.len())
        .filter(|i| !placed[*i])
        .filter(|i| {
            let pending_before = |j: usize| history[j].completed_ns < history[*i].invoked_ns;
            !(0..history.len()).any(|j| pending_answered(j) && pending_before(j))
        })
        .collect();
    for i in may_come_next {
        let Some(next) = model.step(&state, &history[i].input, history[i].outcome.output()) else {
            continue;
        };
        placed[i] = true;
        if search(model, history, placed, next, failed) {
            return true;
        }
        placed[i] = false;
    }

    failed.insert((placed.clone(), state));
    false
}

/// A small citizen history of a simulated run, whose answers are then sometimes
/// corrupted.
fn random_citizen_history(rng: &mut Rng) -> Vec<Event<CitizenInput, CitizenOutput>> {
    let count = 2 + rng.below(8) as usize;
    let mut planned: Vec<(u64, u64, u64)> = (0..count)
        .map(|_| {
            let invoked_ns = rng.below(30);
            let completed_ns = invoked_ns + rng.below(12);
            (invoked_ns, completed_ns, invoked_ns + rng.below(completed_ns - invoked_ns + 1))
        })
        .collect();
    planned.sort_by_key(|(_, _, effect_ns)| *effect_ns);

    let citizen_model: CitizenModel = model();
    let mut state = citizen_model.init();
    let mut history = Vec::new();
    for (process, (invoked_ns, completed_ns, _)) in planned.into_iter().enumerate() {
        let input = random_citizen_input(rng, &state, process as u64);
        let next = citizen_model.step(&state, &input, None).unwrap_or_else(|| state.clone());
        let outcome = match rng.below(100) {
            0..10 => Outcome::Failed,
            10..35 => {
                if rng.chance(50) {
                    state = next;
                }
                Outcome::Unknown
            }
            _ => match answer(&state, &input) {
                Some(output) => {
                    state = next;
                    Outcome::Ok(output)
                }
                None => Outcome::Failed,
            },
        };
        history.push(Event { process: process as u64, invoked_ns, completed_ns, input, outcome });
    }

    if rng.chance(60) {
        corrupt_citizen(&mut history, rng);
    }
    history
}

fn random_citizen_input(rng: &mut Rng, state: &CitizenState, fresh_tag: u64) -> CitizenInput {
    let category = ["trips", "meter"][rng.below(2) as usize].to_owned();
    match rng.below(6) {
        0 => CitizenInput::SetLocation { category, uri: format!("pod-{}", rng.below(2)) },
        1 => CitizenInput::MoveHome { city: ["x", "y"][rng.below(2) as usize].to_owned() },
        2 => CitizenInput::Grant { tag: fresh_tag },
        3 => {
            let tags: Vec<u64> = state.consents.keys().copied().collect();
            let tag = tags.get(rng.below(tags.len() as u64 + 1) as usize).copied();
            CitizenInput::Withdraw { tag: tag.unwrap_or(99) }
        }
        4 => CitizenInput::Read,
        _ => CitizenInput::Resolve,
    }
}

/// What the index answers to `input` in `state`, or `None` when it refuses.
fn answer(state: &CitizenState, input: &CitizenInput) -> Option<CitizenOutput> {
    match input {
        CitizenInput::Read => Some(CitizenOutput::Read(state.clone())),
        CitizenInput::Resolve => {
            let released = state.consents.values().any(|given| *given);
            Some(CitizenOutput::Resolved { released })
        }
        CitizenInput::Withdraw { tag } if state.consents.get(tag) != Some(&true) => None,
        _ => Some(CitizenOutput::Done),
    }
}

/// Replaces the answer of one read or resolution with a wrong one.
fn corrupt_citizen(history: &mut [Event<CitizenInput, CitizenOutput>], rng: &mut Rng) {
    let reads: Vec<usize> = (0..history.len())
        .filter(|i| matches!(history[*i].outcome, Outcome::Ok(ref o) if *o != CitizenOutput::Done))
        .collect();
    let Some(&index) = reads.get(rng.below(reads.len().max(1) as u64) as usize) else {
        return;
    };
    let Outcome::Ok(output) = &mut history[index].outcome else { return };
    match output {
        CitizenOutput::Resolved { released } => *released = !*released,
        CitizenOutput::Read(state) => {
            state.home_city = if state.home_city == "x" { "y".into() } else { "x".into() };
        }
        CitizenOutput::Done => {}
    }
}
