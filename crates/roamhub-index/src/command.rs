//! The requests that change the index, and what they answer.
//!
//! A [`Request`] is what travels through the Raft log: a [`Command`] stamped with the time at
//! which the proposing node received it. Citizen operations are grouped under
//! [`Command::Citizen`], so that the citizen's signature can later wrap exactly those.

use serde::{Deserialize, Serialize};

use crate::error::IndexError;
use crate::ids::{
    Attribute, Category, CitizenId, CityId, ConsentId, Identifier, Purpose, ServiceId,
    check_scheme, check_text,
};
use crate::limits::{
    ATTRIBUTES_PER_REQUEST_MAX, DECLARATIONS_PER_SERVICE_MAX, IDENTIFIERS_PER_CITIZEN_MAX,
    RESOLVE_BATCH_MAX, URI_LEN_MAX,
};
use crate::model::{
    Citizen, Consent, DataLocation, LegalBasis, Member, PurposeDeclaration, Resolution, Service,
};
use crate::signing::{CitizenAuth, KeyId, PublicKey};

/// A command stamped with its time; the unit of the Raft log.
///
/// Its `Debug` output names only the kind of command, so that a log line printing a Raft
/// entry (openraft's own included) never shows an identifier or a consent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub at_unix_ms: u64,
    pub command: Command,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Request({} at {})", self.command.kind(), self.at_unix_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Adds a city to the federation, or updates its display name and endpoint.
    UpsertMember(Member),
    /// Takes a city out of the federation; refused while citizens call it home.
    RemoveMember { city_id: CityId },
    /// Registers a citizen under a fresh id drawn by the proposing node, binding their first
    /// key; `proof` is that key's signature over `signing::registration_message`.
    RegisterCitizen {
        citizen_id: CitizenId,
        home_city: CityId,
        identifiers: Vec<Identifier>,
        public_key: PublicKey,
        proof: Vec<u8>,
    },
    RegisterService {
        service_id: ServiceId,
        organisation: String,
        declarations: Vec<PurposeDeclaration>,
    },
    /// An operation on one citizen's own records, signed by the citizen.
    Citizen { citizen_id: CitizenId, op: CitizenOp, auth: CitizenAuth },
    /// The citizen's home city ends a consent on its own authority, e.g. for an unlawful
    /// service; the citizen sees it as revoked.
    RevokeConsent { consent_id: ConsentId, by_city: CityId },
    /// Sets the longest a consent may last from its start, federation-wide; `None` lifts it.
    SetConsentLifetimeMax { lifetime_max_ms: Option<u64> },
    /// A service confirms it has seen a consent's withdrawal and stopped using the data.
    AcknowledgeWithdrawal { service_id: ServiceId, consent_id: ConsentId },
    /// The home city's operator replaces a citizen's lost keys with a new one.
    RecoverKey { citizen_id: CitizenId, public_key: PublicKey, by_city: CityId },
    /// A city operator certifies a service for some of its declared purposes and
    /// attributes until a moment; replaces any earlier certification (a renewal).
    CertifyService {
        service_id: ServiceId,
        by_city: CityId,
        declarations: Vec<PurposeDeclaration>,
        valid_until_unix_ms: u64,
    },
    /// A city operator withdraws a service's certification; it stops resolving at once.
    DecertifyService { service_id: ServiceId, by_city: CityId },
    /// A service asks for a citizen's pointers; always leaves an access record.
    Resolve(ResolveArgs),
    /// A service holding a pointer from before a storage switch asks where the data went.
    FollowPointer(FollowArgs),
    /// Many resolutions in one Raft entry, each decided and recorded on its own: group
    /// commit, so that access records cost one consensus round per batch, not per request.
    ResolveBatch(Vec<ResolveArgs>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CitizenOp {
    AddIdentifier(Identifier),
    SetLocation {
        category: Category,
        uri: String,
        provider: String,
    },
    MoveHome {
        to_city: CityId,
    },
    GrantConsent(ConsentGrant),
    WithdrawConsent {
        consent_id: ConsentId,
    },
    /// Gives a consent again with a new end of validity; `None` means until withdrawn.
    RenewConsent {
        consent_id: ConsentId,
        valid_until_unix_ms: Option<u64>,
    },
    /// Adds a key, e.g. on a new device; signed with an existing key.
    AddKey {
        public_key: PublicKey,
    },
    RemoveKey {
        key_id: KeyId,
    },
    /// Removes the citizen from the index, with everything it holds about them.
    Erase,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentGrant {
    pub service_id: ServiceId,
    pub purpose: Purpose,
    pub attributes: Vec<Attribute>,
    pub legal_basis: LegalBasis,
    /// `None` means from the moment the grant is applied.
    pub valid_from_unix_ms: Option<u64>,
    pub valid_until_unix_ms: Option<u64>,
    /// The one identifier scheme by which the service may know the citizen; any when `None`.
    pub identity_scheme: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowArgs {
    /// A pointer URI the citizen has since switched away from, or one below it.
    pub old_uri: String,
    pub service_id: ServiceId,
    pub purpose: Purpose,
    pub via_city: CityId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveArgs {
    pub identifier: Identifier,
    pub service_id: ServiceId,
    pub purpose: Purpose,
    /// Empty asks for everything the consents allow.
    pub attributes: Vec<Attribute>,
    /// The city whose node took the request.
    pub via_city: CityId,
}

/// What an applied command answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    MemberUpserted(Member),
    CitizenRegistered(CitizenId),
    ServiceRegistered(Service),
    /// A service after its certification changed.
    Service(Service),
    Citizen(Box<Citizen>),
    Location(DataLocation),
    Consent(Consent),
    Resolution(Resolution),
    /// One outcome per resolution of a batch, in order.
    Resolutions(Vec<Result<Resolution, IndexError>>),
    /// A federation policy changed.
    PolicySet,
    MemberRemoved(CityId),
    /// The citizen is gone; `erasures` counts every erasure the index has applied.
    Erased {
        erasures: u64,
    },
}

impl Command {
    /// The command's name, safe to log.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::UpsertMember(_) => "upsert_member",
            Command::RemoveMember { .. } => "remove_member",
            Command::RegisterCitizen { .. } => "register_citizen",
            Command::RegisterService { .. } => "register_service",
            Command::CertifyService { .. } => "certify_service",
            Command::DecertifyService { .. } => "decertify_service",
            Command::Citizen { op: CitizenOp::AddIdentifier(_), .. } => "add_identifier",
            Command::Citizen { op: CitizenOp::SetLocation { .. }, .. } => "set_location",
            Command::Citizen { op: CitizenOp::MoveHome { .. }, .. } => "move_home",
            Command::Citizen { op: CitizenOp::GrantConsent(_), .. } => "grant_consent",
            Command::Citizen { op: CitizenOp::WithdrawConsent { .. }, .. } => "withdraw_consent",
            Command::Citizen { op: CitizenOp::AddKey { .. }, .. } => "add_key",
            Command::Citizen { op: CitizenOp::RemoveKey { .. }, .. } => "remove_key",
            Command::Citizen { op: CitizenOp::Erase, .. } => "erase",
            Command::RecoverKey { .. } => "recover_key",
            Command::Resolve(_) => "resolve",
            Command::ResolveBatch(_) => "resolve_batch",
            Command::FollowPointer(_) => "follow_pointer",
            Command::AcknowledgeWithdrawal { .. } => "acknowledge_withdrawal",
            Command::RevokeConsent { .. } => "revoke_consent",
            Command::SetConsentLifetimeMax { .. } => "set_consent_lifetime_max",
            Command::Citizen { op: CitizenOp::RenewConsent { .. }, .. } => "renew_consent",
        }
    }

    /// Re-checks every value of the command, as a replica must not trust the proposer.
    ///
    /// Ids are checked by their types when built from requests; what a type cannot carry
    /// (lengths of lists, text, URIs) is checked here.
    pub fn check(&self) -> Result<(), IndexError> {
        match self {
            Command::UpsertMember(member) => check_member(member),
            Command::RegisterCitizen { identifiers, .. } => {
                check_count("identifiers", identifiers.len(), 1, IDENTIFIERS_PER_CITIZEN_MAX)
            }
            Command::RegisterService { organisation, declarations, .. } => {
                check_text("organisation", organisation)?;
                check_declarations(declarations)
            }
            Command::CertifyService { declarations, .. } => {
                check_declarations(declarations)?;
                for (position, declaration) in declarations.iter().enumerate() {
                    if declarations[..position].iter().any(|d| d.purpose == declaration.purpose) {
                        return Err(IndexError::invalid("declarations", "names a purpose twice"));
                    }
                }
                Ok(())
            }
            Command::Citizen { op, .. } => op.check(),
            Command::RecoverKey { .. }
            | Command::RemoveMember { .. }
            | Command::AcknowledgeWithdrawal { .. }
            | Command::RevokeConsent { .. }
            | Command::DecertifyService { .. } => Ok(()),
            Command::SetConsentLifetimeMax { lifetime_max_ms } => match lifetime_max_ms {
                Some(0) => Err(IndexError::invalid("lifetime_max_ms", "must be positive")),
                _ => Ok(()),
            },
            Command::Resolve(args) => check_attributes("attributes", &args.attributes, 0),
            Command::FollowPointer(args) => check_uri("old_uri", &args.old_uri),
            Command::ResolveBatch(batch) => {
                check_count("resolutions", batch.len(), 1, RESOLVE_BATCH_MAX)?;
                batch
                    .iter()
                    .try_for_each(|args| check_attributes("attributes", &args.attributes, 0))
            }
        }
    }
}

impl CitizenOp {
    fn check(&self) -> Result<(), IndexError> {
        match self {
            CitizenOp::SetLocation { uri, provider, .. } => {
                check_uri("uri", uri)?;
                check_text("provider", provider)
            }
            CitizenOp::GrantConsent(grant) => {
                check_attributes("attributes", &grant.attributes, 1)?;
                if let Some(scheme) = &grant.identity_scheme {
                    check_scheme("identity_scheme", scheme)?;
                }
                match (grant.valid_from_unix_ms, grant.valid_until_unix_ms) {
                    (Some(from), Some(until)) if until <= from => Err(IndexError::invalid(
                        "valid_until_unix_ms",
                        "must be later than valid_from_unix_ms",
                    )),
                    _ => Ok(()),
                }
            }
            CitizenOp::AddIdentifier(_)
            | CitizenOp::MoveHome { .. }
            | CitizenOp::WithdrawConsent { .. }
            | CitizenOp::AddKey { .. }
            | CitizenOp::RemoveKey { .. }
            | CitizenOp::RenewConsent { .. }
            | CitizenOp::Erase => Ok(()),
        }
    }
}

fn check_member(member: &Member) -> Result<(), IndexError> {
    check_text("display_name", &member.display_name)?;
    check_text("identifier_key_check", &member.identifier_key_check)?;
    check_text("api_endpoint", &member.api_endpoint)?;
    if member.country != member.city_id.country() {
        return Err(IndexError::invalid("country", "must match the prefix of city_id"));
    }
    if member.raft_node_id == 0 {
        return Err(IndexError::invalid("raft_node_id", "must not be zero"));
    }
    Ok(())
}

/// Purposes with the attributes for each, as a service declares them or an operator
/// certifies them.
fn check_declarations(declarations: &[PurposeDeclaration]) -> Result<(), IndexError> {
    check_count("declarations", declarations.len(), 1, DECLARATIONS_PER_SERVICE_MAX)?;
    declarations.iter().try_for_each(|declaration| {
        check_attributes("declarations.attributes", &declaration.attributes, 1)
    })
}

fn check_count(field: &str, count: usize, min: usize, max: usize) -> Result<(), IndexError> {
    if count < min {
        return Err(IndexError::invalid(field, format!("needs at least {min}")));
    }
    if count > max {
        return Err(IndexError::invalid(field, format!("more than {max}")));
    }
    Ok(())
}

fn check_attributes(field: &str, attributes: &[Attribute], min: usize) -> Result<(), IndexError> {
    check_count(field, attributes.len(), min, ATTRIBUTES_PER_REQUEST_MAX)?;
    let mut seen: Vec<&Attribute> = attributes.iter().collect();
    seen.sort();
    if seen.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(IndexError::invalid(field, "lists an attribute twice"));
    }
    Ok(())
}

/// A URI must be absolute (`scheme:rest`), bounded, and free of spaces and control characters.
pub fn check_uri(field: &str, uri: &str) -> Result<(), IndexError> {
    if uri.is_empty() || uri.len() > URI_LEN_MAX {
        return Err(IndexError::invalid(field, format!("must be 1 to {URI_LEN_MAX} bytes")));
    }
    let scheme = uri.split_once(':').map(|(scheme, _)| scheme).unwrap_or_default();
    let scheme_ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err(IndexError::invalid(field, "must be an absolute URI such as 'https://...'"));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(IndexError::invalid(field, "must not contain spaces or control characters"));
    }
    Ok(())
}
