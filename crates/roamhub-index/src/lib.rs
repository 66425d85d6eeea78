//! The federation index of roamhub as a pure, deterministic state machine.
//!
//! The index knows three things about every citizen: where each category of their data
//! lives, who may use which attributes for which purpose, and who used what. It holds
//! pointers and permissions, never the personal data itself.
//!
//! Nothing in this crate does I/O, reads a clock or draws randomness: a [`Request`] carries
//! its time and any fresh id, so every replica that applies the same requests in the same
//! order reaches the same state, byte for byte.
//!
//! A tour of the modules:
//! - [`access_chain`]: the hash chain that makes a citizen's access log tamper-evident;
//! - [`ids`]: validated names and ids (cities, citizens, services, categories, attributes);
//! - [`model`]: the records the index keeps (members, citizens, locations, consents, ...);
//! - [`command`]: the requests that change the index and what they answer;
//! - [`query`]: the questions the index answers without changing;
//! - [`index`]: the state and `apply`, which takes a request completely or not at all;
//! - [`certification`]: certifying a service and withdrawing its certification;
//! - [`resolve`]: how a resolution is decided from a service's certification and a
//!   citizen's consents;
//! - [`signing`]: what a citizen signs, and how every replica verifies it;
//! - [`error`]: why a request was refused.

pub mod access_chain;
pub mod certification;
pub mod command;
pub mod error;
pub mod ids;
pub mod index;
pub mod limits;
pub mod model;
pub mod query;
pub mod resolve;
pub mod signing;

pub use command::{CitizenOp, Command, ConsentGrant, FollowArgs, Request, ResolveArgs, Response};
pub use error::IndexError;
pub use ids::{Attribute, Category, CitizenId, CityId, ConsentId, Identifier, Purpose, ServiceId};
pub use index::Index;
pub use model::{
    AccessOutcome, AccessRecord, Certification, CertificationStatus, CertificationWithdrawal,
    Citizen, Consent, ConsentState, ConsentStatus, DataLocation, HomePeriod, LegalBasis, Member,
    Pointer, PurposeDeclaration, RefusalReason, Resolution, ResolvedPointer, Service,
};
pub use query::{AccessLogPage, ConsentsPage, Query, QueryAnswer};
pub use signing::{CitizenAuth, KeyId, PublicKey};
