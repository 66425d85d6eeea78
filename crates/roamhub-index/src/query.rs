//! The questions the index answers without changing.

use serde::{Deserialize, Serialize};

use crate::ids::CitizenId;
use crate::model::{AccessRecord, Citizen, Member, Service};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    Citizen(CitizenId),
    /// The newest `limit` records first; `limit` is capped by `ACCESS_LOG_PAGE_MAX`.
    AccessLog {
        citizen_id: CitizenId,
        limit: usize,
    },
    Members,
    Services,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryAnswer {
    Citizen(Box<Citizen>),
    AccessLog(Vec<AccessRecord>),
    Members(Vec<Member>),
    Services(Vec<Service>),
}
