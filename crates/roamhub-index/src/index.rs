//! The index's state and `apply`, the one way it changes.
//!
//! `apply` checks a request completely before it touches anything, so a refused request
//! leaves the index exactly as it was. In debug and test builds every successful apply is
//! followed by [`Index::validate`], which checks the state as a whole.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::access_chain;
use crate::certification;
use crate::command::{
    CitizenOp, Command, ConsentGrant, FollowArgs, Request, ResolveArgs, Response,
};
use crate::error::IndexError;
use crate::ids::{
    Attribute, Category, CitizenId, CityId, ConsentId, Identifier, Purpose, ServiceId,
    first_uncovered,
};
use crate::limits::{
    ACCESS_LOG_PAGE_MAX, CONSENTS_PAGE_MAX, CONSENTS_PER_CITIZEN_MAX, FORWARDING_PATH_DEPTH_MAX,
    IDENTIFIERS_PER_CITIZEN_MAX, KEY_HISTORY_MAX, KEYS_PER_CITIZEN_MAX, LOCATION_HISTORY_MAX,
    LOCATIONS_PER_CITIZEN_MAX,
};
use crate::model::{
    AccessOutcome, AccessRecord, Citizen, CitizenKey, Consent, ConsentState, DataLocation,
    HomePeriod, KeyChange, KeyEvent, Member, Pointer, PurposeDeclaration, RefusalReason,
    Resolution, Service,
};
use crate::query::{AccessLogPage, ConsentsPage, Query, QueryAnswer};
use crate::resolve::{Decision, decide};
use crate::signing::{self, CitizenAuth, KeyId, PublicKey};

/// The whole replicated index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    members: BTreeMap<CityId, Member>,
    citizens: BTreeMap<CitizenId, Citizen>,
    /// Which citizen each identifier belongs to; mirrors `Citizen::identifiers`.
    identifiers: BTreeMap<Identifier, CitizenId>,
    services: BTreeMap<ServiceId, Service>,
    access_logs: BTreeMap<CitizenId, Vec<AccessRecord>>,
    /// Number of the next consent; consent ids are never reused.
    next_consent: u64,
    /// Number of the next access record; records are never reused.
    next_access_record: u64,
    /// How many citizens have been erased; each node compacts its storage when it grows.
    erasures: u64,
    /// The longest a consent may last from its start, when the federation sets a limit.
    consent_lifetime_max_ms: Option<u64>,
    /// Earlier pointer URIs, to the citizen and category now stored elsewhere.
    forwarding: BTreeMap<String, (CitizenId, Category)>,
    /// Whose each consent is; mirrors `Citizen::consents`.
    consent_owners: BTreeMap<ConsentId, CitizenId>,
    /// The latest moment an applied command was stamped with. Each node stamps commands
    /// by its own clock, and clocks differ or step back: a command stamped earlier applies
    /// at this moment instead, so that time in the index never runs backwards.
    clock_unix_ms: u64,
}

impl Index {
    /// Applies one request completely, or refuses it and changes nothing.
    pub fn apply(&mut self, request: &Request) -> Result<Response, IndexError> {
        request.command.check()?;
        let now = request.at_unix_ms.max(self.clock_unix_ms);
        let response = match &request.command {
            Command::UpsertMember(member) => self.upsert_member(member),
            Command::RemoveMember { city_id } => self.remove_member(city_id),
            Command::RegisterCitizen { citizen_id, home_city, identifiers, public_key, proof } => {
                let message = signing::registration_message(home_city, identifiers, public_key);
                signing::verify(public_key, &message, proof)?;
                self.register_citizen(citizen_id, home_city, identifiers, public_key, now)
            }
            Command::RegisterService { service_id, organisation, declarations } => {
                self.register_service(service_id, organisation, declarations, now)
            }
            Command::CertifyService { service_id, by_city, declarations, valid_until_unix_ms } => {
                self.certify_service(service_id, by_city, declarations, *valid_until_unix_ms, now)
            }
            Command::DecertifyService { service_id, by_city } => {
                self.decertify_service(service_id, by_city, now)
            }
            Command::Citizen { citizen_id, op, auth } => {
                self.authenticate(citizen_id, op, auth)?;
                let response = self.apply_citizen_op(citizen_id, op, &auth.key_id, now)?;
                // An erased citizen has no sequence left to advance.
                if let Some(citizen) = self.citizens.get_mut(citizen_id) {
                    citizen.next_sequence += 1;
                }
                Ok(response)
            }
            Command::RevokeConsent { consent_id, by_city } => {
                self.revoke_consent(*consent_id, by_city, now)
            }
            Command::SetConsentLifetimeMax { lifetime_max_ms } => {
                self.consent_lifetime_max_ms = *lifetime_max_ms;
                Ok(Response::PolicySet)
            }
            Command::AcknowledgeWithdrawal { service_id, consent_id } => {
                self.acknowledge_withdrawal(service_id, *consent_id, now)
            }
            Command::RecoverKey { citizen_id, public_key, by_city } => {
                self.recover_key(citizen_id, public_key, by_city, now)
            }
            Command::Resolve(args) => self.resolve(args, now).map(Response::Resolution),
            Command::FollowPointer(args) => {
                self.follow_pointer(args, now).map(Response::Resolution)
            }
            Command::ResolveBatch(batch) => {
                let outcomes = batch.iter().map(|args| self.resolve(args, now)).collect();
                Ok(Response::Resolutions(outcomes))
            }
        }?;
        self.clock_unix_ms = now;

        #[cfg(debug_assertions)]
        self.validate().expect("index invariants hold after apply");
        Ok(response)
    }

    /// Answers a query from the current state.
    pub fn query(&self, query: &Query) -> Result<QueryAnswer, IndexError> {
        match query {
            Query::Citizen(citizen_id) => {
                Ok(QueryAnswer::Citizen(Box::new(self.citizen(citizen_id)?.clone())))
            }
            Query::AccessLog(page) => {
                self.citizen(&page.citizen_id)?;
                Ok(QueryAnswer::AccessLog(self.access_log_page(page)))
            }
            Query::Members => Ok(QueryAnswer::Members(self.members.values().cloned().collect())),
            Query::Services => Ok(QueryAnswer::Services(self.services.values().cloned().collect())),
            Query::ConsentsOfService(page) => Ok(QueryAnswer::Consents(self.consents_page(page))),
        }
    }

    /// A page of the consents given to a service, in consent order.
    fn consents_page(&self, page: &ConsentsPage) -> Vec<Consent> {
        let after = match &page.after_consent {
            Some(consent_id) => Bound::Excluded(consent_id),
            None => Bound::Unbounded,
        };
        self.consent_owners
            .range((after, Bound::Unbounded))
            .filter_map(|(consent_id, citizen_id)| {
                self.citizens.get(citizen_id)?.consents.get(consent_id)
            })
            .filter(|consent| consent.service_id == page.service_id)
            .take(page.limit.clamp(1, CONSENTS_PAGE_MAX))
            .cloned()
            .collect()
    }

    fn access_log_page(&self, page: &AccessLogPage) -> Vec<AccessRecord> {
        let log = self.access_logs.get(&page.citizen_id).map(Vec::as_slice).unwrap_or_default();
        let limit = page.limit.clamp(1, ACCESS_LOG_PAGE_MAX);
        log.iter()
            .rev()
            .filter(|r| page.before_record.is_none_or(|before| r.record < before))
            .filter(|r| page.service_id.as_ref().is_none_or(|s| &r.service_id == s))
            .filter(|r| page.purpose.as_ref().is_none_or(|p| &r.purpose == p))
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn member(&self, city_id: &CityId) -> Option<&Member> {
        self.members.get(city_id)
    }

    pub fn service(&self, service_id: &ServiceId) -> Option<&Service> {
        self.services.get(service_id)
    }

    /// How many citizens have been erased so far.
    pub fn erasures(&self) -> u64 {
        self.erasures
    }

    pub fn citizen_count(&self) -> usize {
        self.citizens.len()
    }

    fn citizen(&self, citizen_id: &CitizenId) -> Result<&Citizen, IndexError> {
        self.citizens
            .get(citizen_id)
            .ok_or_else(|| IndexError::not_found("citizen_id", "no citizen with this id"))
    }

    fn require_member(&self, field: &str, city_id: &CityId) -> Result<(), IndexError> {
        match self.members.contains_key(city_id) {
            true => Ok(()),
            false => Err(IndexError::not_found(field, format!("{city_id} is not a member city"))),
        }
    }

    fn upsert_member(&mut self, member: &Member) -> Result<Response, IndexError> {
        let other_key = self.members.values().find(|other| {
            other.identifier_key_check != member.identifier_key_check
                && other.city_id != member.city_id
        });
        if let Some(other) = other_key {
            return Err(IndexError::precondition(
                "identifier_key_check",
                format!("this city's identifier key differs from {}'s", other.city_id),
            ));
        }
        let clash = self.members.values().find(|other| {
            other.raft_node_id == member.raft_node_id && other.city_id != member.city_id
        });
        if let Some(other) = clash {
            return Err(IndexError::already_exists(
                "raft_node_id",
                format!("node {} already serves {}", member.raft_node_id, other.city_id),
            ));
        }
        self.members.insert(member.city_id.clone(), member.clone());
        Ok(Response::MemberUpserted(member.clone()))
    }

    fn remove_member(&mut self, city_id: &CityId) -> Result<Response, IndexError> {
        self.require_member("city_id", city_id)?;
        if self.citizens.values().any(|citizen| &citizen.home_city == city_id) {
            return Err(IndexError::precondition(
                "city_id",
                "citizens still call this city home; they must move first",
            ));
        }
        self.members.remove(city_id);
        Ok(Response::MemberRemoved(city_id.clone()))
    }

    /// The city a Raft node serves, if it announced one.
    pub fn city_of_node(&self, raft_node_id: u64) -> Option<&CityId> {
        self.members.values().find(|m| m.raft_node_id == raft_node_id).map(|m| &m.city_id)
    }

    fn register_citizen(
        &mut self,
        citizen_id: &CitizenId,
        home_city: &CityId,
        identifiers: &[Identifier],
        public_key: &PublicKey,
        now: u64,
    ) -> Result<Response, IndexError> {
        self.require_member("home_city", home_city)?;
        if self.citizens.contains_key(citizen_id) {
            return Err(IndexError::already_exists("citizen_id", "drawn twice; retry"));
        }
        for (position, identifier) in identifiers.iter().enumerate() {
            let repeated = identifiers[..position].contains(identifier);
            if repeated || self.identifiers.contains_key(identifier) {
                return Err(IndexError::already_exists("identifiers", "identifier is in use"));
            }
        }

        for identifier in identifiers {
            self.identifiers.insert(identifier.clone(), citizen_id.clone());
        }
        let key_id = public_key.key_id();
        let first_key = CitizenKey { public_key: *public_key, added_at_unix_ms: now };
        let citizen = Citizen {
            citizen_id: citizen_id.clone(),
            home_city: home_city.clone(),
            registered_at_unix_ms: now,
            keys: BTreeMap::from([(key_id.clone(), first_key)]),
            next_sequence: 1,
            key_history: vec![KeyEvent { at_unix_ms: now, key_id, change: KeyChange::Registered }],
            identifiers: identifiers.to_vec(),
            locations: BTreeMap::new(),
            consents: BTreeMap::new(),
            home_history: Vec::new(),
        };
        self.citizens.insert(citizen_id.clone(), citizen);
        Ok(Response::CitizenRegistered(citizen_id.clone()))
    }

    fn register_service(
        &mut self,
        service_id: &ServiceId,
        organisation: &str,
        declarations: &[PurposeDeclaration],
        now: u64,
    ) -> Result<Response, IndexError> {
        if self.services.contains_key(service_id) {
            return Err(IndexError::already_exists("service_id", format!("{service_id} is taken")));
        }
        for (position, declaration) in declarations.iter().enumerate() {
            if declarations[..position].iter().any(|d| d.purpose == declaration.purpose) {
                return Err(IndexError::invalid("declarations", "declares a purpose twice"));
            }
        }

        let service = Service {
            service_id: service_id.clone(),
            organisation: organisation.to_owned(),
            declarations: declarations.to_vec(),
            registered_at_unix_ms: now,
            certification: None,
            certification_history: Vec::new(),
        };
        self.services.insert(service_id.clone(), service.clone());
        Ok(Response::ServiceRegistered(service))
    }

    fn registered_service(&self, service_id: &ServiceId) -> Result<&Service, IndexError> {
        self.services.get(service_id).ok_or_else(|| {
            IndexError::not_found("service_id", format!("{service_id} is not registered"))
        })
    }

    /// Certifies a service on a member city's authority, replacing any earlier
    /// certification.
    fn certify_service(
        &mut self,
        service_id: &ServiceId,
        by_city: &CityId,
        declarations: &[PurposeDeclaration],
        valid_until_unix_ms: u64,
        now: u64,
    ) -> Result<Response, IndexError> {
        let service = self.registered_service(service_id)?;
        self.require_member("by_city", by_city)?;
        let certified =
            certification::certify(service, by_city, declarations, valid_until_unix_ms, now)?;

        self.services.insert(service_id.clone(), certified.clone());
        Ok(Response::Service(certified))
    }

    /// Withdraws a service's certification on a member city's authority; every resolution
    /// applied after this command is refused, at every city.
    fn decertify_service(
        &mut self,
        service_id: &ServiceId,
        by_city: &CityId,
        now: u64,
    ) -> Result<Response, IndexError> {
        let service = self.registered_service(service_id)?;
        self.require_member("by_city", by_city)?;
        let decertified = certification::decertify(service, by_city, now)?;

        self.services.insert(service_id.clone(), decertified.clone());
        Ok(Response::Service(decertified))
    }

    /// Checks that the citizen signed exactly this operation with one of their keys, as their
    /// next operation: anything else is a forgery, a replay or out of order.
    fn authenticate(
        &self,
        citizen_id: &CitizenId,
        op: &CitizenOp,
        auth: &CitizenAuth,
    ) -> Result<(), IndexError> {
        let citizen = self.citizen(citizen_id)?;
        let Some(key) = citizen.keys.get(&auth.key_id) else {
            return Err(IndexError::denied("key_id", "not a key of this citizen"));
        };
        if auth.sequence != citizen.next_sequence {
            return Err(IndexError::denied(
                "sequence",
                format!(
                    "expected {}, got {}: replayed or out of order",
                    citizen.next_sequence, auth.sequence
                ),
            ));
        }
        let message = signing::citizen_op_message(citizen_id, auth.sequence, op);
        signing::verify(&key.public_key, &message, &auth.signature)
    }

    fn apply_citizen_op(
        &mut self,
        citizen_id: &CitizenId,
        op: &CitizenOp,
        signed_by: &KeyId,
        now: u64,
    ) -> Result<Response, IndexError> {
        match op {
            CitizenOp::AddIdentifier(identifier) => self.add_identifier(citizen_id, identifier),
            CitizenOp::SetLocation { category, uri, provider } => {
                self.set_location(citizen_id, category, uri, provider, now)
            }
            CitizenOp::MoveHome { to_city } => self.move_home(citizen_id, to_city, now),
            CitizenOp::GrantConsent(grant) => self.grant_consent(citizen_id, grant, now),
            CitizenOp::WithdrawConsent { consent_id } => {
                self.withdraw_consent(citizen_id, *consent_id, now)
            }
            CitizenOp::AddKey { public_key } => {
                self.add_key(citizen_id, public_key, signed_by, now)
            }
            CitizenOp::Erase => Ok(self.erase(citizen_id)),
            CitizenOp::RenewConsent { consent_id, valid_until_unix_ms } => {
                self.renew_consent(citizen_id, *consent_id, *valid_until_unix_ms, now)
            }
            CitizenOp::RemoveKey { key_id } => self.remove_key(citizen_id, key_id, signed_by, now),
        }
    }

    /// Forgets a citizen: their identifiers, keys, locations, consents and access log.
    fn erase(&mut self, citizen_id: &CitizenId) -> Response {
        if let Some(citizen) = self.citizens.remove(citizen_id) {
            for identifier in &citizen.identifiers {
                self.identifiers.remove(identifier);
            }
            for consent_id in citizen.consents.keys() {
                self.consent_owners.remove(consent_id);
            }
            self.forwarding.retain(|_, (owner, _)| owner != citizen_id);
        }
        self.access_logs.remove(citizen_id);
        self.erasures += 1;
        Response::Erased { erasures: self.erasures }
    }

    fn add_key(
        &mut self,
        citizen_id: &CitizenId,
        public_key: &PublicKey,
        signed_by: &KeyId,
        now: u64,
    ) -> Result<Response, IndexError> {
        let citizen = self.citizen_mut(citizen_id);
        let key_id = public_key.key_id();
        if citizen.keys.contains_key(&key_id) {
            return Err(IndexError::already_exists("public_key", "the citizen holds this key"));
        }
        if citizen.keys.len() >= KEYS_PER_CITIZEN_MAX {
            return Err(IndexError::precondition(
                "public_key",
                format!("a citizen holds at most {KEYS_PER_CITIZEN_MAX} keys"),
            ));
        }

        citizen
            .keys
            .insert(key_id.clone(), CitizenKey { public_key: *public_key, added_at_unix_ms: now });
        let change = KeyChange::Added { signed_by: signed_by.clone() };
        push_key_event(citizen, KeyEvent { at_unix_ms: now, key_id, change });
        Ok(Response::Citizen(Box::new(citizen.clone())))
    }

    fn remove_key(
        &mut self,
        citizen_id: &CitizenId,
        key_id: &KeyId,
        signed_by: &KeyId,
        now: u64,
    ) -> Result<Response, IndexError> {
        let citizen = self.citizen_mut(citizen_id);
        if !citizen.keys.contains_key(key_id) {
            return Err(IndexError::not_found("key_id", "not a key of this citizen"));
        }
        if citizen.keys.len() == 1 {
            return Err(IndexError::precondition("key_id", "a citizen keeps at least one key"));
        }

        citizen.keys.remove(key_id);
        let change = KeyChange::Removed { signed_by: signed_by.clone() };
        push_key_event(citizen, KeyEvent { at_unix_ms: now, key_id: key_id.clone(), change });
        Ok(Response::Citizen(Box::new(citizen.clone())))
    }

    /// Replaces every key of a citizen who lost theirs. Only the home city may do it, and it
    /// leaves a key event the citizen sees.
    fn recover_key(
        &mut self,
        citizen_id: &CitizenId,
        public_key: &PublicKey,
        by_city: &CityId,
        now: u64,
    ) -> Result<Response, IndexError> {
        if &self.citizen(citizen_id)?.home_city != by_city {
            return Err(IndexError::denied(
                "by_city",
                "only the citizen's home city may recover keys",
            ));
        }

        let citizen = self.citizen_mut(citizen_id);
        let key_id = public_key.key_id();
        citizen.keys = BTreeMap::from([(
            key_id.clone(),
            CitizenKey { public_key: *public_key, added_at_unix_ms: now },
        )]);
        let change = KeyChange::Recovered { by_city: by_city.clone() };
        push_key_event(citizen, KeyEvent { at_unix_ms: now, key_id, change });
        Ok(Response::Citizen(Box::new(citizen.clone())))
    }

    fn citizen_mut(&mut self, citizen_id: &CitizenId) -> &mut Citizen {
        self.citizens.get_mut(citizen_id).expect("caller checked the citizen exists")
    }

    fn add_identifier(
        &mut self,
        citizen_id: &CitizenId,
        identifier: &Identifier,
    ) -> Result<Response, IndexError> {
        if self.identifiers.contains_key(identifier) {
            return Err(IndexError::already_exists("identifier", "identifier is in use"));
        }
        if self.citizen(citizen_id)?.identifiers.len() >= IDENTIFIERS_PER_CITIZEN_MAX {
            return Err(IndexError::precondition(
                "identifier",
                format!("a citizen holds at most {IDENTIFIERS_PER_CITIZEN_MAX} identifiers"),
            ));
        }

        self.identifiers.insert(identifier.clone(), citizen_id.clone());
        let citizen = self.citizen_mut(citizen_id);
        citizen.identifiers.push(identifier.clone());
        Ok(Response::Citizen(Box::new(citizen.clone())))
    }

    fn set_location(
        &mut self,
        citizen_id: &CitizenId,
        category: &Category,
        uri: &str,
        provider: &str,
        now: u64,
    ) -> Result<Response, IndexError> {
        let citizen = self.citizen_mut(citizen_id);
        let fresh = Pointer {
            uri: uri.to_owned(),
            provider: provider.to_owned(),
            since_unix_ms: now,
            until_unix_ms: None,
        };

        let Some(location) = citizen.locations.get_mut(category) else {
            if citizen.locations.len() >= LOCATIONS_PER_CITIZEN_MAX {
                return Err(IndexError::precondition(
                    "category",
                    format!("a citizen points to at most {LOCATIONS_PER_CITIZEN_MAX} categories"),
                ));
            }
            let location =
                DataLocation { category: category.clone(), current: fresh, history: Vec::new() };
            citizen.locations.insert(category.clone(), location.clone());
            return Ok(Response::Location(location));
        };

        // Setting the pointer it already has is a no-op, so retries leave no false history.
        if location.current.uri == uri && location.current.provider == provider {
            return Ok(Response::Location(location.clone()));
        }
        let mut previous = std::mem::replace(&mut location.current, fresh);
        previous.until_unix_ms = Some(now);
        let forwarded = previous.uri.clone();
        location.history.push(previous);
        let dropped = match location.history.len() > LOCATION_HISTORY_MAX {
            true => Some(location.history.remove(0).uri),
            false => None,
        };
        let answer = Response::Location(location.clone());

        // Services holding the old address are forwarded to the new one while it stays in
        // the history.
        let owner = (citizen_id.clone(), category.clone());
        if let Some(dropped) = dropped.filter(|d| self.forwarding.get(d) == Some(&owner)) {
            self.forwarding.remove(&dropped);
        }
        self.forwarding.insert(forwarded, owner);
        Ok(answer)
    }

    fn move_home(
        &mut self,
        citizen_id: &CitizenId,
        to_city: &CityId,
        now: u64,
    ) -> Result<Response, IndexError> {
        self.require_member("to_city", to_city)?;
        let citizen = self.citizen_mut(citizen_id);
        if &citizen.home_city == to_city {
            return Err(IndexError::precondition("to_city", "already the citizen's home city"));
        }

        let from_unix_ms = citizen
            .home_history
            .last()
            .map(|period| period.until_unix_ms)
            .unwrap_or(citizen.registered_at_unix_ms);
        let previous = std::mem::replace(&mut citizen.home_city, to_city.clone());
        citizen.home_history.push(HomePeriod { city: previous, from_unix_ms, until_unix_ms: now });
        Ok(Response::Citizen(Box::new(citizen.clone())))
    }

    fn grant_consent(
        &mut self,
        citizen_id: &CitizenId,
        grant: &ConsentGrant,
        now: u64,
    ) -> Result<Response, IndexError> {
        self.check_grant(grant, now)?;
        if self.citizen(citizen_id)?.consents.len() >= CONSENTS_PER_CITIZEN_MAX {
            return Err(IndexError::precondition(
                "citizen_id",
                format!("a citizen holds at most {CONSENTS_PER_CITIZEN_MAX} consents"),
            ));
        }

        let consent = Consent {
            consent_id: ConsentId(self.next_consent),
            citizen_id: citizen_id.clone(),
            service_id: grant.service_id.clone(),
            purpose: grant.purpose.clone(),
            attributes: grant.attributes.clone(),
            legal_basis: grant.legal_basis,
            valid_from_unix_ms: grant.valid_from_unix_ms.unwrap_or(now),
            valid_until_unix_ms: self
                .capped_until(grant.valid_from_unix_ms.unwrap_or(now), grant.valid_until_unix_ms),
            given_at_unix_ms: now,
            state: ConsentState::Given,
            identity_scheme: grant.identity_scheme.clone(),
            withdrawal_acknowledged_at_unix_ms: None,
            renewed_at_unix_ms: None,
        };
        self.next_consent += 1;
        self.consent_owners.insert(consent.consent_id, citizen_id.clone());
        self.citizen_mut(citizen_id).consents.insert(consent.consent_id, consent.clone());
        Ok(Response::Consent(consent))
    }

    /// A grant must name a registered service, a purpose it declared, only attributes it
    /// declared for that purpose, and a validity that has not ended already.
    fn check_grant(&self, grant: &ConsentGrant, now: u64) -> Result<(), IndexError> {
        let service = self.services.get(&grant.service_id).ok_or_else(|| {
            IndexError::not_found("service_id", format!("{} is not registered", grant.service_id))
        })?;
        let declared = service.declared(&grant.purpose).ok_or_else(|| {
            IndexError::precondition(
                "purpose",
                format!("{} has not declared purpose {}", grant.service_id, grant.purpose),
            )
        })?;
        if let Some(undeclared) = first_uncovered(declared, &grant.attributes) {
            return Err(IndexError::precondition(
                "attributes",
                format!("{undeclared} is not declared by the service for this purpose"),
            ));
        }
        if grant.valid_until_unix_ms.is_some_and(|until| until <= now) {
            return Err(IndexError::invalid("valid_until_unix_ms", "lies in the past"));
        }
        Ok(())
    }

    fn withdraw_consent(
        &mut self,
        citizen_id: &CitizenId,
        consent_id: ConsentId,
        now: u64,
    ) -> Result<Response, IndexError> {
        let citizen = self.citizen_mut(citizen_id);
        let Some(consent) = citizen.consents.get_mut(&consent_id) else {
            return Err(IndexError::not_found("consent_id", "the citizen has no such consent"));
        };
        if consent.is_ended() {
            return Err(IndexError::precondition("consent_id", "already withdrawn or revoked"));
        }

        consent.state = ConsentState::Withdrawn { at_unix_ms: now };
        Ok(Response::Consent(consent.clone()))
    }

    /// Resolves an old pointer URI a service still holds to the category's current pointers,
    /// under the same consent rules as a resolution, and records the access.
    fn follow_pointer(&mut self, args: &FollowArgs, now: u64) -> Result<Resolution, IndexError> {
        let Some((citizen_id, category)) = self.forwarding_owner(&args.old_uri) else {
            return Err(IndexError::not_found("old_uri", "no citizen's data was stored there"));
        };
        let citizen = self.citizen(&citizen_id)?;
        let service = self.services.get(&args.service_id);
        let decision = decide(citizen, service, &args.purpose, None, &[], now);
        let decision = match decision {
            Decision::Release { pointers, unavailable } => {
                let pointers: Vec<_> =
                    pointers.into_iter().filter(|p| p.attribute.category() == category).collect();
                match pointers.is_empty() {
                    true => Decision::Refuse(RefusalReason::AttributesNotConsented),
                    false => Decision::Release { pointers, unavailable },
                }
            }
            refused => refused,
        };

        let asked = Asked {
            service_id: &args.service_id,
            purpose: &args.purpose,
            attributes: &[],
            via_city: &args.via_city,
        };
        Ok(self.record_decision(&citizen_id, &asked, decision, now))
    }

    /// The owner of an old pointer URI, matching it or any URI below it.
    fn forwarding_owner(&self, uri: &str) -> Option<(CitizenId, Category)> {
        let mut candidate = uri.trim_end_matches('/');
        for _ in 0..FORWARDING_PATH_DEPTH_MAX {
            if let Some(owner) = self.forwarding.get(candidate) {
                return Some(owner.clone());
            }
            candidate = candidate.rsplit_once('/')?.0;
        }
        None
    }

    /// Decides one resolution and records it; refuses, changing nothing, only when no
    /// citizen has the identifier.
    /// The end of a consent's validity under the federation's lifetime limit.
    fn capped_until(&self, from: u64, asked: Option<u64>) -> Option<u64> {
        let limit = self.consent_lifetime_max_ms.map(|max| from.saturating_add(max));
        match (asked, limit) {
            (Some(asked), Some(limit)) => Some(asked.min(limit)),
            (asked, limit) => asked.or(limit),
        }
    }

    fn renew_consent(
        &mut self,
        citizen_id: &CitizenId,
        consent_id: ConsentId,
        valid_until_unix_ms: Option<u64>,
        now: u64,
    ) -> Result<Response, IndexError> {
        if valid_until_unix_ms.is_some_and(|until| until <= now) {
            return Err(IndexError::invalid("valid_until_unix_ms", "lies in the past"));
        }
        let until = self.capped_until(now, valid_until_unix_ms);
        let citizen = self.citizen_mut(citizen_id);
        let Some(consent) = citizen.consents.get_mut(&consent_id) else {
            return Err(IndexError::not_found("consent_id", "the citizen has no such consent"));
        };
        if consent.is_ended() {
            return Err(IndexError::precondition(
                "consent_id",
                "an ended consent cannot be renewed",
            ));
        }

        consent.valid_until_unix_ms = until;
        consent.renewed_at_unix_ms = Some(now);
        Ok(Response::Consent(consent.clone()))
    }

    /// Ends a consent on the authority of the citizen's home city.
    fn revoke_consent(
        &mut self,
        consent_id: ConsentId,
        by_city: &CityId,
        now: u64,
    ) -> Result<Response, IndexError> {
        let owner = self.consent_owners.get(&consent_id).cloned();
        let citizen = owner.and_then(|citizen_id| self.citizens.get_mut(&citizen_id));
        let Some(citizen) = citizen else {
            return Err(IndexError::not_found("consent_id", "no such consent"));
        };
        if &citizen.home_city != by_city {
            return Err(IndexError::denied("by_city", "only the citizen's home city may revoke"));
        }
        let consent = citizen.consents.get_mut(&consent_id).expect("owners mirror consents");
        if consent.is_ended() {
            return Err(IndexError::precondition("consent_id", "the consent has already ended"));
        }

        consent.state = ConsentState::Revoked { at_unix_ms: now, by_city: by_city.clone() };
        Ok(Response::Consent(consent.clone()))
    }

    /// Records that a service saw a withdrawal; only the service the consent was given to,
    /// only once, and only after the withdrawal.
    fn acknowledge_withdrawal(
        &mut self,
        service_id: &ServiceId,
        consent_id: ConsentId,
        now: u64,
    ) -> Result<Response, IndexError> {
        let owner = self.consent_owners.get(&consent_id).cloned();
        let consent = owner
            .and_then(|citizen_id| self.citizens.get_mut(&citizen_id))
            .and_then(|citizen| citizen.consents.get_mut(&consent_id))
            .filter(|consent| &consent.service_id == service_id)
            .ok_or_else(|| {
                IndexError::not_found("consent_id", "no such consent for this service")
            })?;
        if !consent.is_ended() {
            return Err(IndexError::precondition("consent_id", "the consent has not ended"));
        }
        if consent.withdrawal_acknowledged_at_unix_ms.is_some() {
            return Err(IndexError::precondition("consent_id", "already acknowledged"));
        }

        consent.withdrawal_acknowledged_at_unix_ms = Some(now);
        Ok(Response::Consent(consent.clone()))
    }

    fn resolve(&mut self, args: &ResolveArgs, now: u64) -> Result<Resolution, IndexError> {
        let Some(citizen_id) = self.identifiers.get(&args.identifier).cloned() else {
            return Err(IndexError::not_found("identifier", "no citizen has this identifier"));
        };
        let citizen = self.citizen(&citizen_id)?;
        let service = self.services.get(&args.service_id);
        let scheme = Some(args.identifier.scheme());
        let decision = decide(citizen, service, &args.purpose, scheme, &args.attributes, now);
        let asked = Asked {
            service_id: &args.service_id,
            purpose: &args.purpose,
            attributes: &args.attributes,
            via_city: &args.via_city,
        };
        Ok(self.record_decision(&citizen_id, &asked, decision, now))
    }

    /// Appends the access record of a decision to the citizen's hash-chained log and
    /// returns the resolution that carries it.
    fn record_decision(
        &mut self,
        citizen_id: &CitizenId,
        asked: &Asked<'_>,
        decision: Decision,
        now: u64,
    ) -> Resolution {
        let home_city = self.citizens.get(citizen_id).map(|c| c.home_city.clone());
        let mut resolution = Resolution {
            citizen_id: citizen_id.clone(),
            access_record: self.next_access_record,
            home_city: home_city.expect("decisions are about existing citizens"),
            pointers: Vec::new(),
            unavailable: Vec::new(),
            refused: None,
        };
        let outcome = match decision {
            Decision::Release { pointers, unavailable } => {
                let attributes = pointers.iter().map(|p| p.attribute.clone()).collect();
                (resolution.pointers, resolution.unavailable) = (pointers, unavailable);
                AccessOutcome::Released { attributes }
            }
            Decision::Refuse(reason) => {
                resolution.refused = Some(reason);
                AccessOutcome::Refused { reason }
            }
        };

        let log = self.access_logs.entry(citizen_id.clone()).or_default();
        let prev_hash = log.last().map(|last| last.hash).unwrap_or(access_chain::GENESIS);
        let mut record = AccessRecord {
            record: self.next_access_record,
            at_unix_ms: now,
            service_id: asked.service_id.clone(),
            purpose: asked.purpose.clone(),
            via_city: asked.via_city.clone(),
            attributes_requested: asked.attributes.to_vec(),
            outcome,
            prev_hash,
            hash: [0; 32],
        };
        record.hash = record.computed_hash();
        log.push(record);
        self.next_access_record += 1;
        resolution
    }

    /// Checks the state as a whole: every cross-reference resolves and every counter is ahead
    /// of the numbers it has handed out.
    pub fn validate(&self) -> Result<(), String> {
        for (identifier, citizen_id) in &self.identifiers {
            let holds =
                self.citizens.get(citizen_id).is_some_and(|c| c.identifiers.contains(identifier));
            if !holds {
                return Err(format!(
                    "identifier of scheme {} points to no holder",
                    identifier.scheme()
                ));
            }
        }
        for citizen in self.citizens.values() {
            self.validate_citizen(citizen)?;
        }
        for service in self.services.values() {
            certification::validate(service)?;
        }
        for (uri, (citizen_id, category)) in &self.forwarding {
            let kept = self.citizens.get(citizen_id).and_then(|c| c.locations.get(category));
            if !kept.is_some_and(|l| l.history.iter().any(|p| &p.uri == uri)) {
                return Err("a forwarding pointer leads to no history".to_owned());
            }
        }
        for (citizen_id, log) in &self.access_logs {
            if !self.citizens.contains_key(citizen_id) {
                return Err("an access log belongs to no citizen".to_owned());
            }
            let ordered = log.windows(2).all(|pair| pair[0].record < pair[1].record);
            if !ordered || log.last().is_some_and(|r| r.record >= self.next_access_record) {
                return Err("access records are out of order".to_owned());
            }
            if !chain_holds(log) {
                return Err("an access log's hash chain is broken".to_owned());
            }
        }
        Ok(())
    }

    fn validate_citizen(&self, citizen: &Citizen) -> Result<(), String> {
        let keys_named = citizen.keys.iter().all(|(id, key)| id == &key.public_key.key_id());
        if citizen.keys.is_empty() || !keys_named || citizen.next_sequence == 0 {
            return Err("a citizen's keys are inconsistent".to_owned());
        }
        if !self.members.contains_key(&citizen.home_city) {
            return Err(format!("a citizen's home {} is not a member", citizen.home_city));
        }
        let mapped = citizen
            .identifiers
            .iter()
            .all(|identifier| self.identifiers.get(identifier) == Some(&citizen.citizen_id));
        if !mapped {
            return Err("a citizen's identifier is not indexed".to_owned());
        }
        for (consent_id, consent) in &citizen.consents {
            if consent_id != &consent.consent_id || consent_id.0 >= self.next_consent {
                return Err(format!("consent {consent_id} is misnumbered"));
            }
            if self.consent_owners.get(consent_id) != Some(&citizen.citizen_id) {
                return Err(format!("consent {consent_id} has no owner entry"));
            }
            if consent.citizen_id != citizen.citizen_id {
                return Err(format!("consent {consent_id} names another citizen"));
            }
        }
        for (category, location) in &citizen.locations {
            if category != &location.category || location.current.until_unix_ms.is_some() {
                return Err(format!("location {category} is inconsistent"));
            }
        }
        Ok(())
    }
}

/// What a service asked for, as its access record keeps it.
struct Asked<'a> {
    service_id: &'a ServiceId,
    purpose: &'a Purpose,
    attributes: &'a [Attribute],
    via_city: &'a CityId,
}

/// Whether every record of a log links to its predecessor and hashes to its own hash.
pub fn chain_holds(log: &[AccessRecord]) -> bool {
    let mut prev_hash = access_chain::GENESIS;
    log.iter().all(|record| {
        let linked = record.prev_hash == prev_hash && record.computed_hash() == record.hash;
        prev_hash = record.hash;
        linked
    })
}

fn push_key_event(citizen: &mut Citizen, event: KeyEvent) {
    citizen.key_history.push(event);
    if citizen.key_history.len() > KEY_HISTORY_MAX {
        citizen.key_history.remove(0);
    }
}
