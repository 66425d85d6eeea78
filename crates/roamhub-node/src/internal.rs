//! The server side of the internal service: Raft messages from peers, and work forwarded
//! by followers to this node when it leads.
//!
//! It listens apart from the public API, so that client load and Raft heartbeats never
//! share a connection and the listener can be closed to everyone but peers.

use std::sync::Arc;

use roamhub_proto::raft::v1::RaftMessage;
use roamhub_proto::raft::v1::forward_server::{Forward, ForwardServer};
use roamhub_proto::raft::v1::raft_server::{Raft as RaftService, RaftServer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tracing::{error, instrument};

use crate::config::{RAFT_MESSAGE_BYTES_MAX, STREAMS_PER_CONNECTION_MAX, incoming};
use crate::network::{from_message, to_message};
use crate::node::{Node, Work};

/// Serves the internal service until `shutdown` turns true.
pub async fn serve(node: Arc<Node>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let internal = Internal { node };
    let raft = RaftServer::new(internal.clone())
        .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX);
    let forward = ForwardServer::new(internal)
        .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX);

    let served = tonic::transport::Server::builder()
        .max_concurrent_streams(STREAMS_PER_CONNECTION_MAX)
        .add_service(raft)
        .add_service(forward)
        .serve_with_incoming_shutdown(incoming(listener), async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(error) = served {
        error!(%error, "internal listener failed");
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
        let answer = self.node.raft().append_entries(decode(&request)?).await;
        reply(&answer)
    }

    #[instrument(level = "debug", skip_all)]
    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let answer = self.node.raft().vote(decode(&request)?).await;
        reply(&answer)
    }

    #[instrument(level = "debug", skip_all)]
    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let answer = self.node.raft().install_snapshot(decode(&request)?).await;
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
        let attempt = self.node.run_here(&Work::Propose(decode(&request)?)).await;
        reply(&attempt)
    }

    #[instrument(level = "debug", skip_all)]
    async fn read(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let attempt = self.node.run_here(&Work::Read(decode(&request)?)).await;
        reply(&attempt)
    }
}
