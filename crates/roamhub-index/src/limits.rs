//! Named bounds on everything a request may carry, checked before a request is applied.

/// Longest free text (display names, organisations, providers, identifier values).
pub const TEXT_LEN_MAX: usize = 128;
/// Longest data-location URI.
pub const URI_LEN_MAX: usize = 512;
/// Longest purpose.
pub const PURPOSE_LEN_MAX: usize = 64;
/// Identifiers one citizen may hold.
pub const IDENTIFIERS_PER_CITIZEN_MAX: usize = 16;
/// Attributes in one consent, declaration or resolution.
pub const ATTRIBUTES_PER_REQUEST_MAX: usize = 64;
/// Purposes one service may declare.
pub const DECLARATIONS_PER_SERVICE_MAX: usize = 32;
/// Consents one citizen may hold, withdrawn ones included.
pub const CONSENTS_PER_CITIZEN_MAX: usize = 1024;
/// Data categories one citizen may point to.
pub const LOCATIONS_PER_CITIZEN_MAX: usize = 64;
/// Earlier pointers kept per data category.
pub const LOCATION_HISTORY_MAX: usize = 64;
/// Keys one citizen may hold at once.
pub const KEYS_PER_CITIZEN_MAX: usize = 8;
/// Key events kept per citizen.
pub const KEY_HISTORY_MAX: usize = 64;
/// Resolutions decided in one Raft entry (group commit).
pub const RESOLVE_BATCH_MAX: usize = 256;
/// Path segments stripped from an old pointer URI while looking for its owner.
pub const FORWARDING_PATH_DEPTH_MAX: usize = 8;
/// Access records returned by one read of an access log.
pub const ACCESS_LOG_PAGE_MAX: usize = 500;
/// Consents one page of a service's consents holds at most.
pub const CONSENTS_PAGE_MAX: usize = 500;
/// Earlier certifications kept per service, beside the latest one.
pub const CERTIFICATION_HISTORY_MAX: usize = 16;
