//! Shared set-up of the checker's tests: short ways to write events and citizen states,
//! so that each hand-written history reads as a timeline.

#![allow(dead_code)]

use roamhub_check::{CitizenInput, CitizenModel, CitizenOutput, CitizenState, Event, Outcome};

pub type CitizenEvent = Event<CitizenInput, CitizenOutput>;

/// An operation of `process` over `[invoked_ns, completed_ns]` answered with `output`.
pub fn ok<I, O>(
    process: u64,
    invoked_ns: u64,
    completed_ns: u64,
    input: I,
    output: O,
) -> Event<I, O> {
    Event { process, invoked_ns, completed_ns, input, outcome: Outcome::Ok(output) }
}

/// An operation of `process` invoked at `invoked_ns` that was never answered.
pub fn unknown<I, O>(process: u64, invoked_ns: u64, input: I) -> Event<I, O> {
    Event { process, invoked_ns, completed_ns: invoked_ns, input, outcome: Outcome::Unknown }
}

/// An operation the system refused over `[invoked_ns, completed_ns]`.
pub fn failed<I, O>(process: u64, invoked_ns: u64, completed_ns: u64, input: I) -> Event<I, O> {
    Event { process, invoked_ns, completed_ns, input, outcome: Outcome::Failed }
}

pub fn model() -> CitizenModel {
    CitizenModel { initial: citizen("nl-eindhoven", &[], &[]) }
}

pub fn citizen(
    home_city: &str,
    locations: &[(&str, &str)],
    consents: &[(u64, bool)],
) -> CitizenState {
    CitizenState {
        home_city: home_city.to_owned(),
        locations: locations.iter().map(|(c, u)| (c.to_string(), u.to_string())).collect(),
        consents: consents.iter().copied().collect(),
    }
}

pub fn set_location(category: &str, uri: &str) -> CitizenInput {
    CitizenInput::SetLocation { category: category.to_owned(), uri: uri.to_owned() }
}

pub fn move_home(city: &str) -> CitizenInput {
    CitizenInput::MoveHome { city: city.to_owned() }
}

pub fn seen(state: CitizenState) -> CitizenOutput {
    CitizenOutput::Read(state)
}

pub fn released(released: bool) -> CitizenOutput {
    CitizenOutput::Resolved { released }
}

pub const DONE: CitizenOutput = CitizenOutput::Done;

/// Checks a citizen history and fails the test unless it is linearizable.
pub fn assert_linearizable(history: &[CitizenEvent]) {
    let verdict = roamhub_check::check(&model(), history);
    assert_eq!(verdict, roamhub_check::Verdict::Linearizable);
}

/// Checks a citizen history and returns its violation, failing the test if there is none.
pub fn assert_violation(history: &[CitizenEvent]) -> roamhub_check::Violation {
    match roamhub_check::check(&model(), history) {
        roamhub_check::Verdict::NotLinearizable(violation) => violation,
        verdict => panic!("expected a violation, got {verdict:?}"),
    }
}

/// A small deterministic generator of pseudo-random numbers (SplitMix64), so that every
/// generated history replays exactly from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn seeded(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// True with probability `percent` in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
