//! Why a request failed at a node, and the one mapping from each failure to a gRPC status.
//!
//! The status message names the request field at fault; the field also travels in the
//! `roamhub-field` metadata entry, for programs. `Internal` is kept for bugs.

use roamhub_index::{IndexError, RefusalReason};
use serde::{Deserialize, Serialize};
use tonic::{Code, Status};

/// Metadata key naming the request field a refusal is about.
pub const FIELD_METADATA_KEY: &str = "roamhub-field";

/// Why a write or read could not be answered by the federation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NodeError {
    /// The index refused the request; nothing changed.
    #[error(transparent)]
    Refused(#[from] IndexError),
    /// No leader could take the request; retrying later may succeed. The hint names the
    /// leader's public API when one is known.
    #[error("the federation cannot take requests now: {reason}")]
    Unavailable { reason: String, leader_api: Option<String> },
    /// The node refuses more work for now; the caller should back off.
    #[error("the node is overloaded: {0}")]
    Overloaded(String),
    /// Raft stopped on this node, or a peer answered with something unreadable.
    #[error("node failure: {0}")]
    Fatal(String),
}

fn with_field(mut status: Status, field: &str) -> Status {
    if let Ok(value) = field.parse() {
        status.metadata_mut().insert(FIELD_METADATA_KEY, value);
    }
    status
}

impl From<NodeError> for Status {
    fn from(error: NodeError) -> Status {
        match error {
            NodeError::Refused(refusal) => refusal_status(&refusal),
            NodeError::Unavailable { reason, leader_api } => {
                let hint = leader_api.map(|api| format!(" (leader: {api})")).unwrap_or_default();
                Status::unavailable(format!("{reason}{hint}"))
            }
            NodeError::Overloaded(reason) => Status::resource_exhausted(reason),
            NodeError::Fatal(reason) => Status::internal(reason),
        }
    }
}

fn refusal_status(refusal: &IndexError) -> Status {
    let code = match refusal {
        IndexError::Invalid { .. } => Code::InvalidArgument,
        IndexError::NotFound { .. } => Code::NotFound,
        IndexError::AlreadyExists { .. } => Code::AlreadyExists,
        IndexError::Precondition { .. } => Code::FailedPrecondition,
        IndexError::Denied { .. } => Code::PermissionDenied,
    };
    with_field(Status::new(code, refusal.to_string()), refusal.field())
}

/// A request field that failed to parse at the edge, before anything was proposed.
pub fn invalid(refusal: IndexError) -> Status {
    refusal_status(&refusal)
}

/// The status of a resolution that released nothing. Its access record is committed.
pub fn refused_resolution(reason: RefusalReason, access_record: u64) -> Status {
    let message =
        format!("resolution refused: {} (access record {access_record})", reason.describe());
    match reason {
        RefusalReason::UnknownService => with_field(Status::not_found(message), "service_id"),
        RefusalReason::PurposeNotDeclared => {
            with_field(Status::permission_denied(message), "purpose")
        }
        RefusalReason::AttributesNotConsented => {
            with_field(Status::permission_denied(message), "attributes")
        }
        RefusalReason::IdentityNotShared => {
            with_field(Status::permission_denied(message), "identifier")
        }
        RefusalReason::ServiceNotCertified
        | RefusalReason::CertificationExpired
        | RefusalReason::CertificationWithdrawn => {
            with_field(Status::permission_denied(message), "service_id")
        }
        RefusalReason::PurposeNotCertified => {
            with_field(Status::permission_denied(message), "purpose")
        }
        RefusalReason::AttributesNotCertified => {
            with_field(Status::permission_denied(message), "attributes")
        }
        RefusalReason::NoConsent
        | RefusalReason::ConsentWithdrawn
        | RefusalReason::ConsentExpired
        | RefusalReason::ConsentRevoked
        | RefusalReason::ConsentNotYetValid => {
            with_field(Status::permission_denied(message), "purpose")
        }
    }
}
