//! The questions the index answers without changing.

use serde::{Deserialize, Serialize};

use crate::ids::{CitizenId, ConsentId, Purpose, ServiceId};
use crate::model::{AccessRecord, Citizen, Consent, Member, Service};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    Citizen(CitizenId),
    /// A page of a citizen's access log, newest first.
    AccessLog(AccessLogPage),
    Members,
    Services,
    /// A page of the consents ever given to a service, withdrawn ones included.
    ConsentsOfService(ConsentsPage),
}

/// Which consents of a service to read, in consent order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentsPage {
    pub service_id: ServiceId,
    /// At most this many consents; capped by `CONSENTS_PAGE_MAX`.
    pub limit: usize,
    /// Only consents after this one: the cursor of the next page.
    pub after_consent: Option<ConsentId>,
}

/// Which access records to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLogPage {
    pub citizen_id: CitizenId,
    /// At most this many records; capped by `ACCESS_LOG_PAGE_MAX`.
    pub limit: usize,
    /// Only records numbered below this one: the cursor of the next page.
    pub before_record: Option<u64>,
    pub service_id: Option<ServiceId>,
    pub purpose: Option<Purpose>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryAnswer {
    Citizen(Box<Citizen>),
    AccessLog(Vec<AccessRecord>),
    Members(Vec<Member>),
    Services(Vec<Service>),
    Consents(Vec<Consent>),
}
