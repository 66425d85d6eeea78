//! The server side of the internal service: Raft messages from peers, and work forwarded
//! by followers to this node when it leads.
//!
//! It listens apart from the public API, so that client load and Raft heartbeats never
//! share a connection and the listener can be closed to everyone but peers. Under TLS only
//! a node of the federation gets in (see [`Node::admits_peer`]), and what it says must
//! match what its certificate proves: a Raft message speaks for the node that sent it, and
//! a forwarded membership announcement for the sender's own city.

use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use roamhub_index::Command;
use roamhub_proto::raft::v1::RaftMessage;
use roamhub_proto::raft::v1::forward_server::{Forward, ForwardServer};
use roamhub_proto::raft::v1::raft_server::{Raft as RaftService, RaftServer};
use roamhub_store::TypeConfig;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tracing::{error, instrument, warn};

use crate::config::{RAFT_MESSAGE_BYTES_MAX, STREAMS_PER_CONNECTION_MAX};
use crate::guard::{self, GuardLayer, Policy};
use crate::network::{from_message, to_message};
use crate::node::{Attempt, Node, Work};
use crate::recovery::RoleChange;
use crate::tls::{Caller, Role};

/// Serves the internal service until `shutdown` turns true.
pub async fn serve(node: Arc<Node>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let guard = GuardLayer::new(node.transport().clone(), peers_only(node.clone()));
    let incoming = node.transport().incoming(listener, shutdown.clone());
    let internal = Internal { node };
    let raft = RaftServer::new(internal.clone())
        .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX);
    let forward = ForwardServer::new(internal)
        .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX);

    let served = tonic::transport::Server::builder()
        .max_concurrent_streams(STREAMS_PER_CONNECTION_MAX)
        .layer(guard)
        .add_service(raft)
        .add_service(forward)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(error) = served {
        error!(%error, "internal listener failed");
    }
}

/// Only nodes of the federation call the internal service.
fn peers_only(node: Arc<Node>) -> Policy {
    Arc::new(move |_path: &str, caller: &Caller| match caller {
        Caller::Insecure => Ok(()),
        Caller::Certified(Role::Node { city_id, node_id }) => node.admits_peer(city_id, *node_id),
        Caller::Certified(role) => {
            Err(format!("only nodes of the federation talk Raft, not a {}", role.kind()))
        }
    })
}

/// A Raft message names the node that sent it in its vote; under TLS that must be the node
/// the certificate proves, so that no city speaks for another's node.
fn check_sender<T>(request: &Request<T>, claimed: Option<u64>) -> Result<(), Status> {
    match guard::caller(request)? {
        Caller::Certified(Role::Node { node_id, .. }) if claimed != Some(node_id) => {
            warn!(node_id, "raft message refused: it claims to come from another node");
            Err(Status::permission_denied(format!(
                "vote: the message speaks for node {}, the certificate for node {node_id}",
                claimed.map(|id| id.to_string()).unwrap_or_else(|| "none".to_owned())
            )))
        }
        _ => Ok(()),
    }
}

/// A forwarded membership announcement must be the sender's own city and node.
fn check_forwarded(request: &Request<RaftMessage>, work: &Work) -> Result<(), Status> {
    let Work::Propose(proposal) = work else { return Ok(()) };
    let Command::UpsertMember(member) = &proposal.command else { return Ok(()) };
    match guard::caller(request)? {
        Caller::Certified(Role::Node { city_id, node_id })
            if member.city_id != city_id || member.raft_node_id != node_id =>
        {
            warn!(node_id, "membership announcement refused: it names another city or node");
            Err(Status::permission_denied("member: a node announces only its own city and node id"))
        }
        _ => Ok(()),
    }
}

#[derive(Clone)]
struct Internal {
    node: Arc<Node>,
}

fn decode<T: serde::de::DeserializeOwned>(request: &Request<RaftMessage>) -> Result<T, Status> {
    from_message(request.get_ref()).map_err(|e| Status::invalid_argument(format!("data: {e}")))
}

fn reply<T: Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    Ok(Response::new(to_message(value)))
}

#[tonic::async_trait]
impl RaftService for Internal {
    #[instrument(level = "trace", skip_all)]
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let message: AppendEntriesRequest<TypeConfig> = decode(&request)?;
        check_sender(&request, message.vote.leader_id().voted_for())?;
        let answer = self.node.raft().append_entries(message).await;
        reply(&answer)
    }

    #[instrument(level = "debug", skip_all)]
    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let message: VoteRequest<u64> = decode(&request)?;
        check_sender(&request, message.vote.leader_id().voted_for())?;
        let answer = self.node.raft().vote(message).await;
        reply(&answer)
    }

    #[instrument(level = "debug", skip_all)]
    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let message: InstallSnapshotRequest<TypeConfig> = decode(&request)?;
        check_sender(&request, message.vote.leader_id().voted_for())?;
        let answer = self.node.raft().install_snapshot(message).await;
        reply(&answer)
    }
}

#[tonic::async_trait]
impl Forward for Internal {
    #[instrument(level = "debug", skip_all)]
    async fn propose(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let work = Work::Propose(decode(&request)?);
        check_forwarded(&request, &work)?;
        let attempt = match self.node.admit() {
            Ok(_slot) => self.node.run_here(&work).await,
            Err(overloaded) => Attempt::Unavailable(overloaded.to_string()),
        };
        reply(&attempt)
    }

    #[instrument(level = "debug", skip_all)]
    async fn read(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let work = Work::Read(decode(&request)?);
        let attempt = match self.node.admit() {
            Ok(_slot) => self.node.run_here(&work).await,
            Err(overloaded) => Attempt::Unavailable(overloaded.to_string()),
        };
        reply(&attempt)
    }

    /// A node in recovery asks to change its own role; only its own.
    #[instrument(level = "info", skip_all)]
    async fn rejoin(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let change: RoleChange = decode(&request)?;
        check_sender(&request, Some(change.node_id))?;
        let answer = self.node.change_role(&change).await;
        reply(&answer)
    }
}
