//! Generated protobuf and gRPC types for roamhub.
//!
//! - [`v1`]: the public API every node serves to services, citizens and operators.
//! - [`raft::v1`]: the internal node-to-node service (Raft messages and forwarded work).
//!
//! The encoded file descriptor set is exported for gRPC reflection. Public messages
//! implement `serde::Serialize`, for the CLI's JSON output.

#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("roamhub.v1");
}

pub mod raft {
    pub mod v1 {
        tonic::include_proto!("roamhub.raft.v1");
    }
}

/// Serializers that render the API's enum fields by name rather than number, for JSON.
mod json {
    use serde::Serializer;

    use crate::v1::{AccessOutcome, ConsentStatus, LegalBasis};

    pub fn legal_basis<S: Serializer>(value: &i32, serializer: S) -> Result<S::Ok, S::Error> {
        let name = LegalBasis::try_from(*value).map(|v| v.as_str_name()).unwrap_or("UNKNOWN");
        serializer.serialize_str(name)
    }

    pub fn consent_status<S: Serializer>(value: &i32, serializer: S) -> Result<S::Ok, S::Error> {
        let name = ConsentStatus::try_from(*value).map(|v| v.as_str_name()).unwrap_or("UNKNOWN");
        serializer.serialize_str(name)
    }

    pub fn access_outcome<S: Serializer>(value: &i32, serializer: S) -> Result<S::Ok, S::Error> {
        let name = AccessOutcome::try_from(*value).map(|v| v.as_str_name()).unwrap_or("UNKNOWN");
        serializer.serialize_str(name)
    }
}

/// The file descriptor set of every roamhub proto, for the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/roamhub_descriptor.bin"));
