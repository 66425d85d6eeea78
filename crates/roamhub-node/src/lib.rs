//! A roamhub node: one city's member of the federation.
//!
//! A node runs openraft over the sled store, serves the internal Raft service to its peers
//! and the public `roamhub.v1` API to services, citizens and operators. Any node answers
//! any request: writes and linearizable reads that reach a follower are handed to the
//! leader over a connection of their own.
//!
//! - [`config`]: what a node is started with, and the named bounds it runs under;
//! - [`node`]: starting a node, proposing commands, reading, and status;
//! - [`network`]: the client side of Raft between nodes;
//! - [`receipt`]: signed consent receipts;
//! - [`resolver`]: group commit of resolutions and their access records;
//! - [`internal`]: the server side of Raft and of forwarded work;
//! - [`api`]: the public gRPC service;
//! - [`watch`]: consent watch streams for services;
//! - [`convert`]: between protobuf messages and index types;
//! - [`erasure`]: compacting a node's storage after a citizen is erased;
//! - [`recovery`]: a node with corrupt storage stays out of Raft and rejoins from its peers;
//! - [`fault`]: why a node with corrupt storage refuses to serve;
//! - [`files`]: owner-only files for secrets;
//! - [`error`]: why a request failed, mapped once to a gRPC status;
//! - [`identity`]: the federation's identifier key, its hashes and pseudonyms;
//! - [`tls`]: mutual TLS, the roles certificates name, and reloading them;
//! - [`guard`]: who may call which RPC, checked before any handler runs.

pub mod api;
pub mod config;
pub mod convert;
pub mod erasure;
pub mod error;
pub mod fault;
pub mod files;
pub mod guard;
pub mod identity;
pub mod internal;
pub mod network;
pub mod node;
pub mod receipt;
pub mod recovery;
pub mod resolver;
pub mod tls;
pub mod watch;

pub use config::{BootstrapMember, NodeConfig, RaftTiming};
pub use node::{Node, RunningNode};
pub use tls::{Caller, Role, TlsFiles, Transport};
