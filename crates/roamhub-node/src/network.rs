//! The client side of Raft between nodes: openraft's messages over the internal gRPC service.
//!
//! Each message travels as a [`RaftMessage`]: openraft's own request type, encoded by the
//! store's versioned codec. The peer answers with the encoded `Result` of its Raft call, so
//! a remote Raft error arrives as openraft's `RemoteError`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use roamhub_proto::raft::v1::RaftMessage;
use roamhub_proto::raft::v1::raft_client::RaftClient;
use roamhub_store::codec::{self, FORMAT_VERSION};
use roamhub_store::{NodeAddress, TypeConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use crate::config::{RAFT_MESSAGE_BYTES_MAX, RAFT_RPC_TIMEOUT};
use crate::tls::Transport;

pub fn to_message<T: Serialize>(value: &T) -> RaftMessage {
    RaftMessage { format_version: u32::from(FORMAT_VERSION), data: codec::encode(value) }
}

pub fn from_message<T: DeserializeOwned>(message: &RaftMessage) -> Result<T, String> {
    if message.format_version != u32::from(FORMAT_VERSION) {
        return Err(format!("message format version {} is unknown", message.format_version));
    }
    codec::decode(&message.data).map_err(|e| e.to_string())
}

/// One lazily connected channel per address, all with the same request timeout.
pub struct ChannelPool {
    transport: Transport,
    request_timeout: Duration,
    channels: Mutex<HashMap<String, Channel>>,
}

impl ChannelPool {
    pub fn new(transport: Transport, request_timeout: Duration) -> ChannelPool {
        ChannelPool { transport, request_timeout, channels: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, addr: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().expect("channel map is never poisoned");
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel =
            self.transport.channel(addr, self.request_timeout).map_err(|e| format!("{e:#}"))?;
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }
}

/// Makes [`PeerClient`]s for openraft, sharing one channel per peer address.
///
/// openraft asks for a new client for every leadership check of a linearizable read; a
/// shared channel keeps those on the peer's existing HTTP/2 connection.
#[derive(Clone)]
pub struct Network {
    channels: Arc<ChannelPool>,
}

impl Network {
    pub fn new(transport: Transport) -> Network {
        Network { channels: Arc::new(ChannelPool::new(transport, RAFT_RPC_TIMEOUT)) }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &NodeAddress) -> PeerClient {
        PeerClient { target, node: node.clone(), channel: self.channels.get(&node.raft_addr) }
    }
}

/// Raft messages to one peer, over one connection kept for Raft alone.
pub struct PeerClient {
    target: u64,
    node: NodeAddress,
    /// `Err` when the peer's address cannot even be parsed; every call then fails.
    channel: Result<Channel, String>,
}

type RpcResult<T, E> = Result<T, RPCError<u64, NodeAddress, RaftError<u64, E>>>;

impl PeerClient {
    async fn call<Req, Resp, E>(&self, kind: RaftCall, request: &Req) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let channel = self.channel.clone().map_err(|e| unreachable_peer(&e))?;
        let mut client = RaftClient::new(channel)
            .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX);
        let message = to_message(request);
        let reply = match kind {
            RaftCall::Append => client.append_entries(message).await,
            RaftCall::Vote => client.vote(message).await,
            RaftCall::Snapshot => client.install_snapshot(message).await,
        };

        let reply = reply.map_err(|status| match status.code() {
            tonic::Code::Unavailable => unreachable_peer(status.message()),
            _ => RPCError::Network(NetworkError::new(&status)),
        })?;
        let answer: Result<Resp, RaftError<u64, E>> = from_message(reply.get_ref())
            .map_err(|e| RPCError::Network(NetworkError::new(&std::io::Error::other(e))))?;
        answer.map_err(|source| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                source,
            ))
        })
    }
}

fn unreachable_peer<E>(reason: &str) -> RPCError<u64, NodeAddress, E>
where
    E: std::error::Error,
{
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(reason.to_owned())))
}

#[derive(Clone, Copy)]
enum RaftCall {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, openraft::error::Infallible> {
        self.call(RaftCall::Append, &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.call(RaftCall::Snapshot, &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, openraft::error::Infallible> {
        self.call(RaftCall::Vote, &rpc).await
    }
}
