//! The client-visible checks, run on each citizen's history once the cluster has healed.
//!
//! - Every acknowledged grant is still there at the end, on every node.
//! - No consent is served after its withdrawal was acknowledged: no read invoked later
//!   shows it given, and no resolution invoked later releases data when every consent that
//!   could still be given had been withdrawn.
//! - The whole history, closed by a read of the final state, is linearizable against
//!   roamhub-check's `CitizenModel`.

use roamhub_check::{
    CitizenInput, CitizenModel, CitizenOutput, CitizenState, Event, Outcome, Verdict,
    check_with_bound,
};

use crate::limits::CHECK_STATES_EXPLORED_MAX;
use crate::recorder::CitizenEvent;

/// A client-visible check that failed: which, and why.
#[derive(Debug, Clone)]
pub struct HistoryViolation {
    pub check: &'static str,
    pub detail: String,
}

/// How the linearizability check of one history ended, when nothing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    Linearizable,
    /// The search gave up within its bound: neither proven nor refuted.
    Undecided,
}

/// Checks citizen `citizen`'s `history`, which started from `initial`, against the state
/// every node holds at the end, `last`, read at `end_ns`.
pub fn check_citizen(
    citizen: usize,
    initial: &CitizenState,
    mut history: Vec<CitizenEvent>,
    last: &CitizenState,
    end_ns: u64,
) -> Result<Checked, HistoryViolation> {
    acknowledged_grants_kept(citizen, &history, last)?;
    withdrawals_respected(citizen, &history)?;

    let final_read = Event {
        process: u64::MAX,
        invoked_ns: end_ns,
        completed_ns: end_ns,
        input: CitizenInput::Read,
        outcome: Outcome::Ok(CitizenOutput::Read(last.clone())),
    };
    history.push(final_read);
    let model = CitizenModel { initial: initial.clone() };
    match check_with_bound(&model, &history, CHECK_STATES_EXPLORED_MAX) {
        Verdict::Linearizable => Ok(Checked::Linearizable),
        Verdict::GaveUp { .. } => Ok(Checked::Undecided),
        Verdict::NotLinearizable(violation) => Err(HistoryViolation {
            check: "linearizability",
            detail: format!("citizen {citizen}: {violation:?}"),
        }),
    }
}

fn acknowledged_grants_kept(
    citizen: usize,
    history: &[CitizenEvent],
    last: &CitizenState,
) -> Result<(), HistoryViolation> {
    for event in history.iter().filter(|e| e.outcome == Outcome::Ok(CitizenOutput::Done)) {
        let CitizenInput::Grant { tag } = event.input else { continue };
        if !last.consents.contains_key(&tag) {
            return Err(HistoryViolation {
                check: "acknowledged writes are kept",
                detail: format!("citizen {citizen}: the acknowledged grant {tag} is gone"),
            });
        }
    }
    Ok(())
}

fn withdrawals_respected(citizen: usize, history: &[CitizenEvent]) -> Result<(), HistoryViolation> {
    let acknowledged = |e: &&CitizenEvent| e.outcome == Outcome::Ok(CitizenOutput::Done);
    let withdrawals: Vec<(u64, u64)> = history
        .iter()
        .filter(acknowledged)
        .filter_map(|e| match e.input {
            CitizenInput::Withdraw { tag } => Some((tag, e.completed_ns)),
            _ => None,
        })
        .collect();

    for event in history {
        let withdrawn_before =
            |tag: u64| withdrawals.iter().any(|&(t, at)| t == tag && at < event.invoked_ns);
        match &event.outcome {
            Outcome::Ok(CitizenOutput::Read(seen)) => {
                let served =
                    seen.consents.iter().find(|&(&tag, &given)| given && withdrawn_before(tag));
                if let Some((tag, _)) = served {
                    return Err(HistoryViolation {
                        check: "withdrawn consents are not served",
                        detail: format!(
                            "citizen {citizen}: a read invoked at {} ns shows consent {tag} \
                             given after its withdrawal was acknowledged",
                            event.invoked_ns
                        ),
                    });
                }
            }
            Outcome::Ok(CitizenOutput::Resolved { released: true }) => {
                let may_be_given = history.iter().any(|grant| match grant.input {
                    CitizenInput::Grant { tag } => {
                        grant.outcome != Outcome::Failed
                            && grant.invoked_ns < event.completed_ns
                            && !withdrawn_before(tag)
                    }
                    _ => false,
                });
                if !may_be_given {
                    return Err(HistoryViolation {
                        check: "withdrawn consents are not served",
                        detail: format!(
                            "citizen {citizen}: a resolution invoked at {} ns released data \
                             though every consent was withdrawn",
                            event.invoked_ns
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(())
}
