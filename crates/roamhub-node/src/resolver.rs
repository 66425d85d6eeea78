//! Group commit of resolutions: many services' requests, one Raft entry.
//!
//! Every resolution must commit its access record before any pointer leaves the node, so
//! each one needs a Raft round. Handlers queue their resolution here; a batching task takes
//! whatever has queued up, up to `RESOLVE_BATCH_MAX`, and proposes it as one `ResolveBatch`
//! entry. While a few batches are in flight, new requests gather for the next one, so the
//! batch size grows with load and a lone request still goes out at once.

use std::sync::Arc;

use roamhub_index::limits::RESOLVE_BATCH_MAX;
use roamhub_index::{Command, Resolution, ResolveArgs, Response};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tracing::debug;

use crate::config::RESOLVE_BATCHES_IN_FLIGHT_MAX;
use crate::error::NodeError;
use crate::node::Node;

/// One queued resolution and where its outcome goes.
pub struct Job {
    pub args: ResolveArgs,
    pub reply: oneshot::Sender<Result<Resolution, NodeError>>,
}

/// Proposes queued resolutions in batches until `shutdown` turns true.
pub async fn run_batches(
    node: Arc<Node>,
    mut jobs: mpsc::Receiver<Job>,
    mut shutdown: watch::Receiver<bool>,
) {
    let in_flight = Arc::new(Semaphore::new(RESOLVE_BATCHES_IN_FLIGHT_MAX));
    loop {
        let permit = tokio::select! {
            permit = in_flight.clone().acquire_owned() => {
                permit.expect("the semaphore is never closed")
            }
            _ = shutdown.changed() => return,
        };
        let first = tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => job,
                None => return,
            },
            _ = shutdown.changed() => return,
        };

        let mut batch = vec![first];
        while batch.len() < RESOLVE_BATCH_MAX {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let node = node.clone();
        tokio::spawn(async move {
            propose_batch(&node, batch).await;
            drop(permit);
        });
    }
}

async fn propose_batch(node: &Node, batch: Vec<Job>) {
    debug!(resolutions = batch.len(), "proposing a batch");
    let (args, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|j| (j.args, j.reply)).unzip();

    match node.propose(Command::ResolveBatch(args)).await {
        Ok(Response::Resolutions(outcomes)) if outcomes.len() == replies.len() => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome.map_err(NodeError::Refused));
            }
        }
        Ok(other) => {
            let error = NodeError::Fatal(format!("a batch was answered {other:?}"));
            replies.into_iter().for_each(|reply| drop(reply.send(Err(error.clone()))));
        }
        Err(error) => {
            replies.into_iter().for_each(|reply| drop(reply.send(Err(error.clone()))));
        }
    }
}
