//! The openraft type configuration of roamhub.

use std::fmt;
use std::io::Cursor;

use roamhub_index::{IndexError, Request, Response};
use serde::{Deserialize, Serialize};

/// How to reach a node: its internal Raft listener and its public API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddress {
    pub raft_addr: String,
    pub api_addr: String,
}

impl fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft={} api={}", self.raft_addr, self.api_addr)
    }
}

/// What applying one log entry produced. Its `Debug` output says only whether a command was
/// applied or refused, never what it answered.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
// One outcome per applied entry, moved once to the waiting client: its size costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum CommandOutcome {
    /// An index command, applied or refused as a whole.
    Index(Result<Response, IndexError>),
    /// A blank or membership entry of Raft itself.
    Raft,
}

impl fmt::Debug for CommandOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandOutcome::Index(Ok(_)) => f.write_str("Applied"),
            CommandOutcome::Index(Err(_)) => f.write_str("Refused"),
            CommandOutcome::Raft => f.write_str("Raft"),
        }
    }
}

openraft::declare_raft_types!(
    /// Types of the roamhub Raft group.
    pub TypeConfig:
        D = Request,
        R = CommandOutcome,
        NodeId = u64,
        Node = NodeAddress,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type LogId = openraft::LogId<u64>;
pub type Vote = openraft::Vote<u64>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<u64>;
pub type StoredMembership = openraft::StoredMembership<u64, NodeAddress>;
pub type SnapshotMeta = openraft::SnapshotMeta<u64, NodeAddress>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
