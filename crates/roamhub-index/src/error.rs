//! Why the index refused a request.
//!
//! Each variant tells the caller what it must decide: fix the request ([`Invalid`]), look for
//! something else ([`NotFound`]), pick another name ([`AlreadyExists`]), or change the state
//! first ([`Precondition`]), or prove who they are ([`Denied`]). Every refusal names the
//! field at fault; no refusal changes the index. Reasons never repeat a personal identifier.
//!
//! [`Invalid`]: IndexError::Invalid
//! [`NotFound`]: IndexError::NotFound
//! [`AlreadyExists`]: IndexError::AlreadyExists
//! [`Precondition`]: IndexError::Precondition
//! [`Denied`]: IndexError::Denied

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum IndexError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{field} not found: {reason}")]
    NotFound { field: String, reason: String },
    #[error("{field} already exists: {reason}")]
    AlreadyExists { field: String, reason: String },
    #[error("{field}: {reason}")]
    Precondition { field: String, reason: String },
    /// The request is not signed by whom it must be.
    #[error("{field} refused: {reason}")]
    Denied { field: String, reason: String },
}

impl IndexError {
    pub fn invalid(field: &str, reason: impl Into<String>) -> IndexError {
        IndexError::Invalid { field: field.to_owned(), reason: reason.into() }
    }

    pub fn not_found(field: &str, reason: impl Into<String>) -> IndexError {
        IndexError::NotFound { field: field.to_owned(), reason: reason.into() }
    }

    pub fn already_exists(field: &str, reason: impl Into<String>) -> IndexError {
        IndexError::AlreadyExists { field: field.to_owned(), reason: reason.into() }
    }

    pub fn precondition(field: &str, reason: impl Into<String>) -> IndexError {
        IndexError::Precondition { field: field.to_owned(), reason: reason.into() }
    }

    pub fn denied(field: &str, reason: impl Into<String>) -> IndexError {
        IndexError::Denied { field: field.to_owned(), reason: reason.into() }
    }

    /// The request field this refusal is about.
    pub fn field(&self) -> &str {
        match self {
            IndexError::Invalid { field, .. }
            | IndexError::NotFound { field, .. }
            | IndexError::AlreadyExists { field, .. }
            | IndexError::Precondition { field, .. }
            | IndexError::Denied { field, .. } => field,
        }
    }
}
