//! How one client operation reaches the leader, as roamhub-node carries it.
//!
//! A write is proposed with `Raft::client_write` at a node the seed picks, and follows
//! "not the leader" answers to the leader named, as roamhub-node forwards it. A read runs
//! as roamhub-node's does: at the leader, after `get_read_log_id` confirmed the leadership
//! with a quorum and the leader applied up to the read index (what `ensure_linearizable`
//! does, without its wait on the metrics channel). Clients reach nodes directly, not over
//! the simulated network: a partitioned leader still hears clients, which is exactly the
//! case linearizability must survive. A node that crashes under an operation ends it at
//! once, in a seeded order.

use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use roamhub_index::{Citizen, CitizenId, IndexError, Query, QueryAnswer, Request, Response};
use roamhub_store::{CommandOutcome, IndexReader};

use crate::limits::{APPLIED_POLL_MS, CLIENT_OP_TIMEOUT_MS, FORWARD_ATTEMPTS_MAX};
use crate::network::{Liveness, Raft, SimNetwork};

/// How a write ended, as its client saw it.
#[derive(Debug)]
pub enum WriteOutcome {
    Applied(Response),
    /// Committed, and refused by the index as a whole: it changed nothing.
    Refused(IndexError),
    /// No node took it: certainly not proposed.
    NotSent(String),
    /// Proposed, with no answer: it may apply at any later moment, or never.
    Unknown(String),
}

/// Proposes `request` at `first`, following the leader it names, within the client's
/// deadline.
pub async fn write(network: &SimNetwork, first: u64, request: &Request) -> WriteOutcome {
    let deadline = Duration::from_millis(CLIENT_OP_TIMEOUT_MS);
    let attempts = async {
        let mut node_id = first;
        for _ in 0..=FORWARD_ATTEMPTS_MAX {
            let Some(endpoint) = network.endpoint(node_id) else {
                return WriteOutcome::NotSent(format!("node {node_id} is down"));
            };
            let proposed = tokio::select! {
                biased;
                _ = endpoint.liveness.crashed() => {
                    return WriteOutcome::Unknown(format!("node {node_id} crashed"));
                }
                proposed = propose(&endpoint.raft, request) => proposed,
            };
            match proposed {
                Err(Some(leader)) if leader != node_id => node_id = leader,
                Err(_) => return WriteOutcome::NotSent("no leader known".to_owned()),
                Ok(outcome) => return outcome,
            }
        }
        WriteOutcome::NotSent("the leader kept changing".to_owned())
    };
    let timed_out = || WriteOutcome::Unknown("no answer in time".to_owned());
    tokio::time::timeout(deadline, attempts).await.unwrap_or_else(|_| timed_out())
}

/// One proposal at one node; `Err` names the leader when this node does not lead.
async fn propose(raft: &Raft, request: &Request) -> Result<WriteOutcome, Option<u64>> {
    match raft.client_write(request.clone()).await {
        Ok(reply) => match reply.data {
            CommandOutcome::Index(Ok(response)) => Ok(WriteOutcome::Applied(response)),
            CommandOutcome::Index(Err(refusal)) => Ok(WriteOutcome::Refused(refusal)),
            CommandOutcome::Raft => Ok(WriteOutcome::Unknown("applied as Raft's".to_owned())),
        },
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => Err(to.leader_id),
        Err(error) => Ok(WriteOutcome::Unknown(error.to_string())),
    }
}

/// Reads a citizen linearizably, starting at `first`, within the client's deadline.
pub async fn read(
    network: &SimNetwork,
    first: u64,
    citizen_id: &CitizenId,
) -> Result<Citizen, String> {
    let deadline = Duration::from_millis(CLIENT_OP_TIMEOUT_MS);
    let attempts = async {
        let mut node_id = first;
        for _ in 0..=FORWARD_ATTEMPTS_MAX {
            let endpoint = network.endpoint(node_id).ok_or(format!("node {node_id} is down"))?;
            let confirmed = tokio::select! {
                biased;
                _ = endpoint.liveness.crashed() => return Err(format!("node {node_id} crashed")),
                confirmed = endpoint.raft.get_read_log_id() => confirmed,
            };
            match confirmed {
                Ok((read_log_id, _)) => {
                    let index = read_log_id.map(|id| id.index);
                    applied_at_least(&endpoint.raft, &endpoint.liveness, index).await?;
                    return query_citizen(&endpoint.reader, citizen_id);
                }
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => {
                    match to.leader_id {
                        Some(leader) if leader != node_id => node_id = leader,
                        _ => return Err("no leader known".to_owned()),
                    }
                }
                Err(error) => return Err(error.to_string()),
            }
        }
        Err("the leader kept changing".to_owned())
    };
    let timed_out = |_| Err("no answer in time".to_owned());
    tokio::time::timeout(deadline, attempts).await.unwrap_or_else(timed_out)
}

/// Waits until the node has applied `index`, looking every `APPLIED_POLL_MS`. Not on the
/// metrics channel: a `watch` wakes its waiters in an order no seed decides.
async fn applied_at_least(
    raft: &Raft,
    liveness: &Liveness,
    index: Option<u64>,
) -> Result<(), String> {
    while raft.metrics().borrow().last_applied.map(|id| id.index) < index {
        tokio::select! {
            biased;
            _ = liveness.crashed() => return Err("the node crashed".to_owned()),
            _ = tokio::time::sleep(Duration::from_millis(APPLIED_POLL_MS)) => {}
        }
    }
    Ok(())
}

pub fn query_citizen(reader: &IndexReader, citizen_id: &CitizenId) -> Result<Citizen, String> {
    match reader.query(&Query::Citizen(citizen_id.clone())) {
        Ok(QueryAnswer::Citizen(citizen)) => Ok(*citizen),
        Ok(_) => Err("a citizen query answered something else".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}
