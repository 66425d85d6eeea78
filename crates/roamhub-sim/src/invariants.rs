//! The Raft safety checks, fed with what every node reports as it runs.
//!
//! A monitor task per running node hands each change of the node's metrics to
//! [`Checker::observe`], together with the digest of its applied index; the run's driver
//! does the same for every node after every step. From those observations the checker
//! keeps, for the whole run:
//!
//! - each node's vote, which must never go backwards, restarts included (it is fsynced
//!   before any grant), and each leader, which must lead under its own vote;
//! - the leaders of each term. openraft 0.9 without its `single-term-leader` feature, as
//!   roamhub runs it, lets a term have several leaders, told apart by node id and ordered
//!   by it, so "one leader per term" is not an invariant here; what makes it safe is that
//!   entries are named by `(term, node, index)` and never diverge, checked next. Terms
//!   with more than one leader are counted for the report;
//! - the log id applied at each index: two nodes that applied different entries at one
//!   index have diverged;
//! - the index digest at each applied index: two nodes whose states differ after applying
//!   the same index have diverged;
//! - the highest index any node applied: a committed entry, which a restarted node must
//!   apply again and the healed cluster must keep.
//!
//! The first violation is kept with the simulated time it was seen at; the driver fails
//! the seed with it after the step.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use openraft::{LeaderId, LogId, RaftMetrics, ServerState};
use roamhub_store::NodeAddress;

use crate::trace::Trace;

/// A broken invariant: which one, when, and the details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub at_ms: u64,
    pub check: &'static str,
    pub detail: String,
}

/// The shared record of a run's observations; cheap to clone.
#[derive(Clone)]
pub struct Checker {
    inner: Arc<Mutex<Observed>>,
    trace: Trace,
}

#[derive(Default)]
struct Observed {
    /// The leaders seen in each term.
    leaders: BTreeMap<u64, Vec<u64>>,
    /// The highest vote each node has shown, across its boots.
    votes: BTreeMap<u64, LeaderId<u64>>,
    applied_log_ids: BTreeMap<u64, LogId<u64>>,
    digests: BTreeMap<u64, ([u8; 32], u64)>,
    highest_applied: u64,
    first_violation: Option<Violation>,
}

pub type Metrics = RaftMetrics<u64, NodeAddress>;

impl Checker {
    pub fn new(trace: Trace) -> Checker {
        Checker { inner: Arc::new(Mutex::new(Observed::default())), trace }
    }

    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.inner.lock().expect("checker lock is never poisoned")
    }

    /// Takes in `node_id`'s metrics: its vote, its role and the entry it applied last.
    pub fn observe_metrics(&self, node_id: u64, metrics: &Metrics) {
        self.observe_vote(node_id, metrics);
        self.observe_leader(node_id, metrics);
        if let Some(log_id) = metrics.last_applied {
            self.observe_applied(node_id, log_id);
        }
    }

    fn observe_vote(&self, node_id: u64, metrics: &Metrics) {
        let vote = *metrics.vote.leader_id();
        let highest = *self.observed().votes.entry(node_id).or_insert(vote);
        if vote < highest {
            let detail = format!("node {node_id} votes for {vote} after {highest}");
            self.violate("votes never go backwards", detail);
            return;
        }
        self.observed().votes.insert(node_id, vote);
    }

    fn observe_leader(&self, node_id: u64, metrics: &Metrics) {
        if metrics.state != ServerState::Leader {
            return;
        }
        let (term, voted_for) = (metrics.current_term, metrics.vote.leader_id().voted_for());
        if voted_for != Some(node_id) {
            let detail = format!("node {node_id} leads term {term} under a vote for {voted_for:?}");
            self.violate("a leader leads under its own vote", detail);
        }
        let mut observed = self.observed();
        let leaders = observed.leaders.entry(term).or_default();
        if leaders.contains(&node_id) {
            return;
        }
        leaders.push(node_id);
        drop(observed);
        self.trace.record(format_args!("leader: node {node_id} leads term {term}"));
    }

    /// Terms in which more than one node led, each under its own leader id.
    pub fn terms_with_several_leaders(&self) -> u32 {
        self.observed().leaders.values().filter(|leaders| leaders.len() > 1).count() as u32
    }

    fn observe_applied(&self, node_id: u64, log_id: LogId<u64>) {
        let mut observed = self.observed();
        observed.highest_applied = observed.highest_applied.max(log_id.index);
        let known = *observed.applied_log_ids.entry(log_id.index).or_insert(log_id);
        drop(observed);
        if known != log_id {
            let detail =
                format!("node {node_id} applied {log_id} where another node applied {known}");
            self.violate("applied entries agree", detail);
        }
    }

    /// Takes in the applied index of `node_id` and the digest of its index state, read
    /// together.
    pub fn observe_digest(&self, node_id: u64, (index, digest): (u64, [u8; 32])) {
        let known = *self.observed().digests.entry(index).or_insert((digest, node_id));
        if known.0 != digest {
            let detail = format!(
                "at applied index {index}, node {node_id}'s index digest differs from node {}'s",
                known.1
            );
            self.violate("replica digests agree", detail);
        }
    }

    /// The highest log index any node has applied: committed, so never to be lost.
    pub fn highest_applied(&self) -> u64 {
        self.observed().highest_applied
    }

    /// Records a violation found elsewhere (client checks, restarts, the network).
    pub fn violate(&self, check: &'static str, detail: String) {
        let violation = Violation { at_ms: self.trace.now_ms(), check, detail };
        self.trace.record(format_args!("VIOLATION {}: {}", violation.check, violation.detail));
        self.observed().first_violation.get_or_insert(violation);
    }

    pub fn first_violation(&self) -> Option<Violation> {
        self.observed().first_violation.clone()
    }
}
