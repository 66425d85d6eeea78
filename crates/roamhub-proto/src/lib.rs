//! Generated protobuf and gRPC types for roamhub.
//!
//! - [`v1`]: the public API every node serves to services, citizens and operators.
//! - [`raft::v1`]: the internal node-to-node service (Raft messages and forwarded work).
//!
//! The encoded file descriptor set is exported for gRPC reflection.

#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("roamhub.v1");
}

pub mod raft {
    pub mod v1 {
        tonic::include_proto!("roamhub.raft.v1");
    }
}

/// The file descriptor set of every roamhub proto, for the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/roamhub_descriptor.bin"));
