//! The public `roamhub.v1` service, served identically by every node.
//!
//! Each handler parses its request into index types (refusing malformed fields with
//! `InvalidArgument`), proposes a command or runs a linearizable query through [`Node`],
//! and renders the answer. Handlers log under a span without request fields, so no
//! personal identifier or consent payload reaches a log line.

use std::sync::Arc;

use roamhub_index::limits::ACCESS_LOG_PAGE_MAX;
use roamhub_index::{
    AccessLogPage, CitizenId, CitizenOp, CityId, Command, FollowArgs, Query, QueryAnswer,
    ResolveArgs, Response as Applied, ServiceId,
};
use roamhub_proto::v1 as pb;
use roamhub_proto::v1::roamhub_server::{Roamhub, RoamhubServer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch as shutdown_watch};
use tonic::{Request, Response, Status};
use tracing::{error, info, info_span, instrument, warn};

use crate::config::{
    API_CONCURRENCY_PER_CONNECTION_MAX, API_MESSAGE_BYTES_MAX, API_REQUEST_TIMEOUT,
    STREAMS_PER_CONNECTION_MAX, WATCH_STREAMS_MAX,
};
use crate::convert;
use crate::error::{FIELD_METADATA_KEY, invalid};
use crate::guard::{self, GuardLayer};
use crate::identity::IdentifierKey;
use crate::node::{Node, now_unix_ms};
use crate::receipt::Issuer;
use crate::tls::{Caller, Role};
use crate::watch::{self, ConsentStream};
use roamhub_store::NodeAddress;

type Reply<T> = Result<Response<T>, Status>;

/// Serves the public API, with gRPC health and reflection, until `shutdown` turns true.
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    mut shutdown: shutdown_watch::Receiver<bool>,
) {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<RoamhubServer<Api>>().await;
    tokio::spawn(watch_raft(node.clone(), health));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(roamhub_proto::FILE_DESCRIPTOR_SET)
        .build_v1();
    let reflection = match reflection {
        Ok(reflection) => reflection,
        Err(error) => {
            error!(%error, "reflection service could not be built");
            return;
        }
    };

    let span = request_span(&node);
    let guard = GuardLayer::new(node.transport().clone(), Arc::new(public_policy))
        .refusing_on(node.storage_fault().clone());
    let incoming = node.transport().incoming(listener, shutdown.clone());
    let api = RoamhubServer::new(Api {
        node,
        watch_streams: Arc::new(Semaphore::new(WATCH_STREAMS_MAX)),
    })
    .max_decoding_message_size(API_MESSAGE_BYTES_MAX);
    let served = tonic::transport::Server::builder()
        .trace_fn(span)
        .timeout(API_REQUEST_TIMEOUT)
        .concurrency_limit_per_connection(API_CONCURRENCY_PER_CONNECTION_MAX)
        .max_concurrent_streams(STREAMS_PER_CONNECTION_MAX)
        .layer(guard)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(api)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(error) = served {
        error!(%error, "API listener failed");
    }
}

/// Who may call each RPC of the public API. Health and reflection are open to every
/// authenticated caller. A citizen's own operations are open to every authenticated caller
/// (a city's portal, a service's app): the citizen's signature is what authorises them, and
/// every replica checks it. Reading a citizen's records is for city operators, who serve
/// their citizens; a service resolves and watches, as itself only. An RPC not listed here
/// is for operators.
fn public_policy(path: &str, caller: &Caller) -> Result<(), String> {
    let Some(method) = path.strip_prefix("/roamhub.v1.Roamhub/") else { return Ok(()) };
    let role = match caller {
        Caller::Insecure => return Ok(()),
        Caller::Certified(role) => role,
    };
    let allowed = match method {
        "Resolve" | "FollowPointer" | "WatchConsents" | "AcknowledgeWithdrawal" => {
            matches!(role, Role::Service { .. })
        }
        "RegisterCitizen" | "HashIdentifiers" | "AddIdentifier" | "MoveHome" | "EraseCitizen"
        | "AddKey" | "RemoveKey" | "SetLocation" | "GrantConsent" | "WithdrawConsent"
        | "RenewConsent" | "ListServices" | "ListMembers" | "RaftMembers" | "NodeStatus" => true,
        _ => matches!(role, Role::Operator { .. }),
    };
    match allowed {
        true => Ok(()),
        false => Err(format!("{method} is not open to a {}", role.kind())),
    }
}

/// Each API request runs in a span naming the city, the node and the RPC; never a field of
/// the request.
pub fn request_span(
    node: &Node,
) -> impl Fn(&tonic::codegen::http::Request<()>) -> tracing::Span + Clone + use<> {
    let city = node.city_id().to_string();
    let node_id = node.node_id();
    move |request| info_span!("api", %city, node_id, rpc = %request.uri().path())
}

/// Logs changes of Raft role and leader, and turns the health status to NOT_SERVING once
/// Raft has stopped on a storage or other fatal error, so that load balancers and operators
/// see a node that must be rebuilt.
async fn watch_raft(node: Arc<Node>, health: tonic_health::server::HealthReporter) {
    let mut metrics = node.raft().metrics();
    let mut seen = (None, None);
    while metrics.changed().await.is_ok() {
        let (state, leader, term, stopped) = {
            let m = metrics.borrow();
            (m.state, m.current_leader, m.current_term, m.running_state.is_err())
        };
        if stopped {
            error!("raft stopped; reporting NOT_SERVING until the node is rebuilt");
            health.set_not_serving::<RoamhubServer<Api>>().await;
            return;
        }
        if seen != (Some(state), leader) {
            seen = (Some(state), leader);
            info!(?state, leader = leader.unwrap_or_default(), term, "raft role");
        }
    }
}

pub struct Api {
    node: Arc<Node>,
    /// One permit per open consent watch stream.
    watch_streams: Arc<Semaphore>,
}

fn unexpected(answer: impl std::fmt::Debug) -> Status {
    Status::internal(format!("unexpected answer from the index: {answer:?}"))
}

impl Api {
    fn key(&self) -> &IdentifierKey {
        self.node.identifier_key()
    }

    /// Proposes a client's command, if the node has a slot for it.
    async fn propose(&self, command: Command) -> Result<Applied, Status> {
        let _slot = self.node.admit()?;
        Ok(self.node.propose(command).await?)
    }

    /// Reads linearizably for a client, if the node has a slot for it.
    async fn read(&self, query: Query) -> Result<QueryAnswer, Status> {
        let _slot = self.node.admit()?;
        Ok(self.node.read(query).await?)
    }

    /// Proposes a citizen's signed operation; every replica verifies the signature.
    async fn citizen_op(
        &self,
        citizen_id: &str,
        op: CitizenOp,
        signature: Option<&pb::CitizenSignature>,
    ) -> Result<Applied, Status> {
        let citizen_id = convert::citizen_id(citizen_id)?;
        let auth = convert::citizen_auth(signature)?;
        self.propose(Command::Citizen { citizen_id, op, auth }).await
    }

    async fn citizen_reply(
        &self,
        citizen_id: &str,
        op: CitizenOp,
        signature: Option<&pb::CitizenSignature>,
    ) -> Reply<pb::Citizen> {
        match self.citizen_op(citizen_id, op, signature).await? {
            Applied::Citizen(citizen) => {
                Ok(Response::new(convert::pb_citizen(&citizen, now_unix_ms())))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn consent_reply(
        &self,
        citizen_id: &str,
        op: CitizenOp,
        signature: Option<&pb::CitizenSignature>,
    ) -> Reply<pb::Consent> {
        match self.citizen_op(citizen_id, op, signature).await? {
            Applied::Consent(consent) => {
                Ok(Response::new(convert::pb_consent(&consent, now_unix_ms())))
            }
            other => Err(unexpected(other)),
        }
    }

    fn raft_members_reply(&self) -> pb::RaftMembersResponse {
        let group = self.node.raft_members();
        let last = group.last_log_index;
        let members = group
            .members
            .into_iter()
            .map(|member| pb::RaftMember {
                node_id: member.node_id,
                raft_addr: member.address.raft_addr,
                api_addr: member.address.api_addr,
                role: if member.voter { "voter" } else { "learner" }.to_owned(),
                matched_index: member.matched_index.unwrap_or_default(),
                lag: member.matched_index.map(|m| last.saturating_sub(m)).unwrap_or(last),
            })
            .collect();
        pb::RaftMembersResponse {
            leader_node_id: group.leader_node_id.unwrap_or_default(),
            leader_last_log_index: last,
            members,
        }
    }

    /// Pointers only when released; a refusal is an error status that names its access
    /// record, already committed.
    fn resolution_reply(
        &self,
        resolution: roamhub_index::Resolution,
        service_id: &roamhub_index::ServiceId,
    ) -> Reply<pb::ResolveResponse> {
        match resolution.refused {
            None => {
                let pseudonym = self.key().pseudonym(&resolution.citizen_id, service_id);
                Ok(Response::new(convert::pb_resolution(&resolution, pseudonym)))
            }
            Some(reason) => Err(crate::error::refused_resolution(reason, resolution.access_record)),
        }
    }

    /// The city an operator call acts for: the operator's, as its certificate proves; on
    /// an insecure node, the node's own.
    fn operator_city<T>(&self, request: &Request<T>) -> Result<CityId, Status> {
        match guard::caller(request)? {
            Caller::Insecure => Ok(self.node.city_id().clone()),
            Caller::Certified(Role::Operator { city_id }) => Ok(city_id),
            Caller::Certified(role) => {
                Err(Status::permission_denied(format!("only a city operator may, not {role}")))
            }
        }
    }

    /// A service acts only as itself: the service a request names must be the one its
    /// certificate proves.
    fn acting_as<T>(&self, request: &Request<T>, service_id: &ServiceId) -> Result<(), Status> {
        match guard::caller(request)? {
            Caller::Insecure => Ok(()),
            Caller::Certified(Role::Service { service_id: proven }) if proven == *service_id => {
                Ok(())
            }
            Caller::Certified(role) => {
                warn!(caller = %role, "call refused: a service named another service");
                let mut status = Status::permission_denied(format!(
                    "service_id: a service acts only as itself, and the certificate is {role}'s"
                ));
                if let Ok(field) = "service_id".parse() {
                    status.metadata_mut().insert(FIELD_METADATA_KEY, field);
                }
                Err(status)
            }
        }
    }

    async fn service_reply(&self, command: Command) -> Reply<pb::Service> {
        match self.propose(command).await? {
            Applied::ServiceRegistered(service) | Applied::Service(service) => {
                Ok(Response::new(convert::pb_service(&service, now_unix_ms())))
            }
            other => Err(unexpected(other)),
        }
    }
}

/// Sixteen bytes from the operating system's generator, for a fresh citizen id.
fn random_citizen_id() -> Result<CitizenId, Status> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Status::unavailable(format!("no randomness: {e}")))?;
    Ok(CitizenId::from_random(bytes))
}

#[tonic::async_trait]
impl Roamhub for Api {
    #[instrument(skip_all, fields(rpc = "register_citizen"))]
    async fn register_citizen(
        &self,
        request: Request<pb::RegisterCitizenRequest>,
    ) -> Reply<pb::RegisterCitizenResponse> {
        let request = request.into_inner();
        let home_city = convert::city_id("home_city", &request.home_city)?;
        let identifiers = request
            .identifiers
            .iter()
            .map(|identifier| convert::identifier("identifiers", Some(identifier), self.key()))
            .collect::<Result<Vec<_>, _>>()?;

        let command = Command::RegisterCitizen {
            citizen_id: random_citizen_id()?,
            home_city,
            identifiers,
            public_key: convert::public_key("public_key", &request.public_key)?,
            proof: request.proof,
        };
        match self.propose(command).await? {
            Applied::CitizenRegistered(citizen_id) => {
                Ok(Response::new(pb::RegisterCitizenResponse {
                    citizen_id: citizen_id.to_string(),
                }))
            }
            other => Err(unexpected(other)),
        }
    }

    #[instrument(skip_all, fields(rpc = "hash_identifiers"))]
    async fn hash_identifiers(
        &self,
        request: Request<pb::HashIdentifiersRequest>,
    ) -> Reply<pb::HashIdentifiersResponse> {
        let identifiers = &request.get_ref().identifiers;
        if identifiers.len() > roamhub_index::limits::IDENTIFIERS_PER_CITIZEN_MAX {
            return Err(Status::invalid_argument("identifiers: too many in one request"));
        }
        let hashed = identifiers
            .iter()
            .map(|clear| convert::identifier("identifiers", Some(clear), self.key()))
            .map(|hashed| hashed.map(|h| convert::pb_identifier(&h)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(pb::HashIdentifiersResponse { identifiers: hashed }))
    }

    #[instrument(skip_all, fields(rpc = "add_identifier"))]
    async fn add_identifier(
        &self,
        request: Request<pb::AddIdentifierRequest>,
    ) -> Reply<pb::Citizen> {
        let request = request.into_inner();
        let op = convert::add_identifier_op(&request, self.key())?;
        self.citizen_reply(&request.citizen_id, op, request.signature.as_ref()).await
    }

    #[instrument(skip_all, fields(rpc = "move_home"))]
    async fn move_home(&self, request: Request<pb::MoveHomeRequest>) -> Reply<pb::Citizen> {
        let request = request.into_inner();
        let op = convert::move_home_op(&request)?;
        self.citizen_reply(&request.citizen_id, op, request.signature.as_ref()).await
    }

    #[instrument(skip_all, fields(rpc = "erase_citizen"))]
    async fn erase_citizen(
        &self,
        request: Request<pb::EraseCitizenRequest>,
    ) -> Reply<pb::EraseCitizenResponse> {
        let request = request.into_inner();
        let op = convert::erase_op(&request)?;
        match self.citizen_op(&request.citizen_id, op, request.signature.as_ref()).await? {
            Applied::Erased { erasures } => {
                Ok(Response::new(pb::EraseCitizenResponse { erasures }))
            }
            other => Err(unexpected(other)),
        }
    }

    #[instrument(skip_all, fields(rpc = "add_key"))]
    async fn add_key(&self, request: Request<pb::AddKeyRequest>) -> Reply<pb::Citizen> {
        let request = request.into_inner();
        let op = convert::add_key_op(&request)?;
        self.citizen_reply(&request.citizen_id, op, request.signature.as_ref()).await
    }

    #[instrument(skip_all, fields(rpc = "remove_key"))]
    async fn remove_key(&self, request: Request<pb::RemoveKeyRequest>) -> Reply<pb::Citizen> {
        let request = request.into_inner();
        let op = convert::remove_key_op(&request)?;
        self.citizen_reply(&request.citizen_id, op, request.signature.as_ref()).await
    }

    #[instrument(skip_all, fields(rpc = "recover_key"))]
    async fn recover_key(&self, request: Request<pb::RecoverKeyRequest>) -> Reply<pb::Citizen> {
        let by_city = self.operator_city(&request)?;
        let request = request.into_inner();
        let command = Command::RecoverKey {
            citizen_id: convert::citizen_id(&request.citizen_id)?,
            public_key: convert::public_key("public_key", &request.public_key)?,
            by_city,
        };
        match self.propose(command).await? {
            Applied::Citizen(citizen) => {
                Ok(Response::new(convert::pb_citizen(&citizen, now_unix_ms())))
            }
            other => Err(unexpected(other)),
        }
    }

    #[instrument(skip_all, fields(rpc = "get_citizen"))]
    async fn get_citizen(&self, request: Request<pb::GetCitizenRequest>) -> Reply<pb::Citizen> {
        let citizen_id = convert::citizen_id(&request.get_ref().citizen_id)?;
        match self.read(Query::Citizen(citizen_id)).await? {
            QueryAnswer::Citizen(citizen) => {
                Ok(Response::new(convert::pb_citizen(&citizen, now_unix_ms())))
            }
            other => Err(unexpected(other)),
        }
    }

    #[instrument(skip_all, fields(rpc = "set_location"))]
    async fn set_location(
        &self,
        request: Request<pb::SetLocationRequest>,
    ) -> Reply<pb::DataLocation> {
        let request = request.into_inner();
        let op = convert::set_location_op(&request)?;
        match self.citizen_op(&request.citizen_id, op, request.signature.as_ref()).await? {
            Applied::Location(location) => Ok(Response::new(convert::pb_location(&location))),
            other => Err(unexpected(other)),
        }
    }

    #[instrument(skip_all, fields(rpc = "register_service"))]
    async fn register_service(
        &self,
        request: Request<pb::RegisterServiceRequest>,
    ) -> Reply<pb::Service> {
        let request = request.into_inner();
        let command = Command::RegisterService {
            service_id: convert::service_id(&request.service_id)?,
            organisation: request.organisation,
            declarations: convert::declarations(&request.declarations)?,
        };
        self.service_reply(command).await
    }

    #[instrument(skip_all, fields(rpc = "certify_service"))]
    async fn certify_service(
        &self,
        request: Request<pb::CertifyServiceRequest>,
    ) -> Reply<pb::Service> {
        let by_city = self.operator_city(&request)?;
        let request = request.into_inner();
        let command = Command::CertifyService {
            service_id: convert::service_id(&request.service_id)?,
            by_city,
            declarations: convert::declarations(&request.declarations)?,
            valid_until_unix_ms: request.valid_until_unix_ms,
        };
        self.service_reply(command).await
    }

    #[instrument(skip_all, fields(rpc = "decertify_service"))]
    async fn decertify_service(
        &self,
        request: Request<pb::DecertifyServiceRequest>,
    ) -> Reply<pb::Service> {
        let by_city = self.operator_city(&request)?;
        let service_id = convert::service_id(&request.get_ref().service_id)?;
        self.service_reply(Command::DecertifyService { service_id, by_city }).await
    }

    #[instrument(skip_all, fields(rpc = "list_services"))]
    async fn list_services(
        &self,
        _request: Request<pb::ListServicesRequest>,
    ) -> Reply<pb::ListServicesResponse> {
        match self.read(Query::Services).await? {
            QueryAnswer::Services(services) => Ok(Response::new(pb::ListServicesResponse {
                services: services.iter().map(|s| convert::pb_service(s, now_unix_ms())).collect(),
            })),
            other => Err(unexpected(other)),
        }
    }

    #[instrument(skip_all, fields(rpc = "grant_consent"))]
    async fn grant_consent(&self, request: Request<pb::GrantConsentRequest>) -> Reply<pb::Consent> {
        let request = request.into_inner();
        let op = convert::grant_consent_op(&request)?;
        let consent =
            match self.citizen_op(&request.citizen_id, op, request.signature.as_ref()).await? {
                Applied::Consent(consent) => consent,
                other => return Err(unexpected(other)),
            };

        let organisation = self.node.reader().with_index(|index| {
            index.service(&consent.service_id).map(|s| s.organisation.clone()).unwrap_or_default()
        });
        let issuer = Issuer {
            city_id: self.node.city_id().as_str(),
            country: &self.node.city_id().country(),
            node_id: self.node.node_id(),
            organisation: &organisation,
        };
        let mut reply = convert::pb_consent(&consent, now_unix_ms());
        reply.receipt = Some(self.node.receipt_key().receipt(&consent, &issuer));
        Ok(Response::new(reply))
    }

    #[instrument(skip_all, fields(rpc = "withdraw_consent"))]
    async fn withdraw_consent(
        &self,
        request: Request<pb::WithdrawConsentRequest>,
    ) -> Reply<pb::Consent> {
        let request = request.into_inner();
        let op = convert::withdraw_consent_op(&request)?;
        self.consent_reply(&request.citizen_id, op, request.signature.as_ref()).await
    }

    #[instrument(skip_all, fields(rpc = "renew_consent"))]
    async fn renew_consent(&self, request: Request<pb::RenewConsentRequest>) -> Reply<pb::Consent> {
        let request = request.into_inner();
        let op = convert::renew_consent_op(&request)?;
        self.consent_reply(&request.citizen_id, op, request.signature.as_ref()).await
    }

    #[instrument(skip_all, fields(rpc = "revoke_consent"))]
    async fn revoke_consent(
        &self,
        request: Request<pb::RevokeConsentRequest>,
    ) -> Reply<pb::Consent> {
        let by_city = self.operator_city(&request)?;
        let consent_id =
            roamhub_index::ConsentId::parse("consent_id", &request.get_ref().consent_id)
                .map_err(invalid)?;
        let command = Command::RevokeConsent { consent_id, by_city };
        match self.propose(command).await? {
            Applied::Consent(consent) => {
                Ok(Response::new(convert::pb_consent(&consent, now_unix_ms())))
            }
            other => Err(unexpected(other)),
        }
    }

    #[instrument(skip_all, fields(rpc = "set_consent_lifetime_max"))]
    async fn set_consent_lifetime_max(
        &self,
        request: Request<pb::SetConsentLifetimeMaxRequest>,
    ) -> Reply<pb::SetConsentLifetimeMaxResponse> {
        self.operator_city(&request)?;
        let lifetime_max_ms = convert::optional_time(request.get_ref().lifetime_max_ms);
        match self.propose(Command::SetConsentLifetimeMax { lifetime_max_ms }).await? {
            Applied::PolicySet => Ok(Response::new(pb::SetConsentLifetimeMaxResponse {})),
            other => Err(unexpected(other)),
        }
    }

    type WatchConsentsStream = ConsentStream;

    #[instrument(skip_all, fields(rpc = "watch_consents"))]
    async fn watch_consents(
        &self,
        request: Request<pb::WatchConsentsRequest>,
    ) -> Reply<Self::WatchConsentsStream> {
        let service_id = convert::service_id(&request.get_ref().service_id)?;
        self.acting_as(&request, &service_id)?;
        let permit = self.watch_streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!("this node serves {WATCH_STREAMS_MAX} watches"))
        })?;
        let stream = watch::watch_consents(self.node.clone(), service_id, permit).await?;
        Ok(Response::new(stream))
    }

    #[instrument(skip_all, fields(rpc = "acknowledge_withdrawal"))]
    async fn acknowledge_withdrawal(
        &self,
        request: Request<pb::AcknowledgeWithdrawalRequest>,
    ) -> Reply<pb::ServiceConsent> {
        let service_id = convert::service_id(&request.get_ref().service_id)?;
        self.acting_as(&request, &service_id)?;
        let request = request.into_inner();
        let consent_id =
            roamhub_index::ConsentId::parse("consent_id", &request.consent_id).map_err(invalid)?;
        let command = Command::AcknowledgeWithdrawal { service_id, consent_id };
        match self.propose(command).await? {
            Applied::Consent(consent) => {
                let pseudonym = self.key().pseudonym(&consent.citizen_id, &consent.service_id);
                let view = convert::pb_service_consent(&consent, pseudonym, now_unix_ms());
                Ok(Response::new(view))
            }
            other => Err(unexpected(other)),
        }
    }

    #[instrument(skip_all, fields(rpc = "resolve"))]
    async fn resolve(&self, request: Request<pb::ResolveRequest>) -> Reply<pb::ResolveResponse> {
        let service_id = convert::service_id(&request.get_ref().service_id)?;
        self.acting_as(&request, &service_id)?;
        let request = request.into_inner();
        let args = ResolveArgs {
            identifier: convert::identifier("identifier", request.identifier.as_ref(), self.key())?,
            service_id: service_id.clone(),
            purpose: convert::purpose("purpose", &request.purpose)?,
            attributes: convert::attributes("attributes", &request.attributes)?,
            via_city: self.node.city_id().clone(),
        };

        // The pointers exist only in the answer of a committed command: the access record
        // is part of the same log entry, so it is durable before any pointer leaves.
        let resolution = self.node.resolve(args).await?;
        self.resolution_reply(resolution, &service_id)
    }

    #[instrument(skip_all, fields(rpc = "follow_pointer"))]
    async fn follow_pointer(
        &self,
        request: Request<pb::FollowPointerRequest>,
    ) -> Reply<pb::ResolveResponse> {
        let service_id = convert::service_id(&request.get_ref().service_id)?;
        self.acting_as(&request, &service_id)?;
        let request = request.into_inner();
        let args = FollowArgs {
            old_uri: request.old_uri,
            service_id: service_id.clone(),
            purpose: convert::purpose("purpose", &request.purpose)?,
            via_city: self.node.city_id().clone(),
        };
        let resolution = match self.propose(Command::FollowPointer(args)).await? {
            Applied::Resolution(resolution) => resolution,
            other => return Err(unexpected(other)),
        };
        self.resolution_reply(resolution, &service_id)
    }

    #[instrument(skip_all, fields(rpc = "read_access_log"))]
    async fn read_access_log(
        &self,
        request: Request<pb::ReadAccessLogRequest>,
    ) -> Reply<pb::ReadAccessLogResponse> {
        let request = request.into_inner();
        let limit = match request.limit {
            0 => ACCESS_LOG_PAGE_MAX,
            limit => (limit as usize).min(ACCESS_LOG_PAGE_MAX),
        };
        let page = AccessLogPage {
            citizen_id: convert::citizen_id(&request.citizen_id)?,
            limit,
            before_record: (request.before_record != 0).then_some(request.before_record),
            service_id: match request.service_id.as_str() {
                "" => None,
                service_id => Some(convert::service_id(service_id)?),
            },
            purpose: match request.purpose.as_str() {
                "" => None,
                purpose => Some(convert::purpose("purpose", purpose)?),
            },
        };

        let QueryAnswer::AccessLog(records) = self.read(Query::AccessLog(page)).await? else {
            return Err(Status::internal("the index answered another query"));
        };
        // A full page may have more behind it; the cursor is the oldest record shown.
        let next_before_record = match records.len() == limit {
            true => records.last().map(|r| r.record).unwrap_or_default(),
            false => 0,
        };
        Ok(Response::new(pb::ReadAccessLogResponse {
            records: records.iter().map(convert::pb_access_record).collect(),
            next_before_record,
        }))
    }

    #[instrument(skip_all, fields(rpc = "list_members"))]
    async fn list_members(
        &self,
        _request: Request<pb::ListMembersRequest>,
    ) -> Reply<pb::ListMembersResponse> {
        match self.read(Query::Members).await? {
            QueryAnswer::Members(members) => Ok(Response::new(pb::ListMembersResponse {
                members: members.iter().map(convert::pb_member).collect(),
            })),
            other => Err(unexpected(other)),
        }
    }

    #[instrument(skip_all, fields(rpc = "raft_members"))]
    async fn raft_members(
        &self,
        _request: Request<pb::RaftMembersRequest>,
    ) -> Reply<pb::RaftMembersResponse> {
        Ok(Response::new(self.raft_members_reply()))
    }

    #[instrument(skip_all, fields(rpc = "add_learner"))]
    async fn add_learner(
        &self,
        request: Request<pb::AddLearnerRequest>,
    ) -> Reply<pb::RaftMembersResponse> {
        self.operator_city(&request)?;
        let request = request.into_inner();
        if request.node_id == 0 {
            return Err(Status::invalid_argument("node_id: must not be zero"));
        }
        let address = NodeAddress { raft_addr: request.raft_addr, api_addr: request.api_addr };
        self.node.add_learner(request.node_id, address).await?;
        Ok(Response::new(self.raft_members_reply()))
    }

    #[instrument(skip_all, fields(rpc = "promote_voter"))]
    async fn promote_voter(
        &self,
        request: Request<pb::PromoteVoterRequest>,
    ) -> Reply<pb::RaftMembersResponse> {
        self.operator_city(&request)?;
        self.node.promote_voter(request.get_ref().node_id).await?;
        Ok(Response::new(self.raft_members_reply()))
    }

    #[instrument(skip_all, fields(rpc = "remove_node"))]
    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Reply<pb::RaftMembersResponse> {
        self.operator_city(&request)?;
        let node_id = request.get_ref().node_id;
        self.node.require_leader()?;
        let city = self.node.reader().with_index(|index| index.city_of_node(node_id).cloned());
        if let Some(city_id) = city {
            self.propose(Command::RemoveMember { city_id }).await?;
        }
        self.node.remove_node(node_id).await?;
        Ok(Response::new(self.raft_members_reply()))
    }

    #[instrument(skip_all, fields(rpc = "state_digest"))]
    async fn state_digest(
        &self,
        _request: Request<pb::StateDigestRequest>,
    ) -> Reply<pb::StateDigestResponse> {
        let (applied_index, digest) = self.node.reader().digest();
        Ok(Response::new(pb::StateDigestResponse { applied_index, digest: digest.to_vec() }))
    }

    #[instrument(skip_all, fields(rpc = "node_status"))]
    async fn node_status(
        &self,
        _request: Request<pb::NodeStatusRequest>,
    ) -> Reply<pb::NodeStatusResponse> {
        let metrics = self.node.raft().metrics().borrow().clone();
        let role = match metrics.state {
            openraft::ServerState::Leader => "leader",
            openraft::ServerState::Follower => "follower",
            openraft::ServerState::Candidate => "candidate",
            openraft::ServerState::Learner => "learner",
            openraft::ServerState::Shutdown => "shutdown",
        };
        Ok(Response::new(pb::NodeStatusResponse {
            city_id: self.node.city_id().to_string(),
            raft_node_id: self.node.node_id(),
            role: role.to_owned(),
            leader_node_id: metrics.current_leader.unwrap_or_default(),
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or_default(),
            last_applied_index: metrics.last_applied.map(|id| id.index).unwrap_or_default(),
            voters: metrics.membership_config.membership().voter_ids().collect(),
            erasures_applied: self.node.erasures_applied(),
            erasures_compacted: self.node.erasures_compacted(),
            receipt_public_key: self.node.receipt_key().public_key().to_vec(),
        }))
    }
}
