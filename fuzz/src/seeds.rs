//! Valid inputs for each target, from which the fuzzer starts: `tests/corpus.rs` writes
//! them to `corpus/<target>/seed-<label>` and runs each through its check.
//!
//! Commands in the append-request seeds are applied to a copy of the seeded index while
//! they are built, and must all succeed, so that every seed reaches deep into the index.

use std::collections::{BTreeMap, BTreeSet};

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest, VoteResponse,
};
use openraft::{CommittedLeaderId, EntryPayload, LogId, Membership, SnapshotMeta, Vote};
use prost::Message;
use roamhub_index::{
    CitizenOp, Command, ConsentId, FollowArgs, Identifier, Query, Request, ResolveArgs, Response,
    signing,
};
use roamhub_node::network::to_message;
use roamhub_node::node::{Attempt, Done, Work};
use roamhub_proto::v1 as pb;
use roamhub_store::types::{Entry, StoredMembership};
use roamhub_store::{NodeAddress, TypeConfig, codec};
use serde::Serialize;

use crate::federation::{self, KNOWN_SECRETS, SEEDED};
use crate::raft_entry_apply::{APPEND_REQUEST, FORWARDED_WORK, STORED_ENTRY};

/// One seed: the target it is for, a label for its file name, and its bytes.
pub struct Seed {
    pub target: &'static str,
    pub label: String,
    pub bytes: Vec<u8>,
}

pub fn all() -> Vec<Seed> {
    let mut seeds = public_messages();
    seeds.extend(raft_entry_apply());
    seeds.extend(signed_bytes());
    seeds.extend(raft_messages());
    seeds
}

fn seed(target: &'static str, label: impl Into<String>, selector: u8, body: &[u8]) -> Seed {
    Seed { target, label: label.into(), bytes: [&[selector][..], body].concat() }
}

// --- public_messages ---

fn signature(sequence: u64) -> Option<pb::CitizenSignature> {
    let key_id = signing::public_key_of(&KNOWN_SECRETS[0]).key_id().to_string();
    Some(pb::CitizenSignature { key_id, sequence, signature: vec![0; 64] })
}

fn clear_identifier() -> Option<pb::Identifier> {
    Some(pb::Identifier { scheme: "city-account".to_owned(), value: "EHV-1234".to_owned() })
}

fn declaration() -> pb::PurposeDeclaration {
    let attributes = vec!["mobility.*".to_owned(), "health.steps".to_owned()];
    pb::PurposeDeclaration { purpose: federation::PURPOSE.to_owned(), attributes }
}

fn public_messages() -> Vec<Seed> {
    let citizen_id = federation::citizen_id().to_string();
    let public_key = signing::public_key_of(&KNOWN_SECRETS[1]).as_bytes().to_vec();
    let service_id = federation::SERVICE.to_owned();
    let filled: Vec<(u8, Vec<u8>)> = vec![
        (
            0,
            pb::RegisterCitizenRequest {
                home_city: federation::HOME_CITY.to_owned(),
                identifiers: clear_identifier().into_iter().collect(),
                public_key: public_key.clone(),
                proof: vec![0; 64],
            }
            .encode_to_vec(),
        ),
        (
            1,
            pb::HashIdentifiersRequest { identifiers: clear_identifier().into_iter().collect() }
                .encode_to_vec(),
        ),
        (
            2,
            pb::AddIdentifierRequest {
                citizen_id: citizen_id.clone(),
                identifier: clear_identifier(),
                signature: signature(4),
            }
            .encode_to_vec(),
        ),
        (
            3,
            pb::MoveHomeRequest {
                citizen_id: citizen_id.clone(),
                to_city: federation::OTHER_CITY.to_owned(),
                signature: signature(4),
            }
            .encode_to_vec(),
        ),
        (
            6,
            pb::AddKeyRequest {
                citizen_id: citizen_id.clone(),
                public_key: public_key.clone(),
                signature: signature(4),
            }
            .encode_to_vec(),
        ),
        (8, pb::RecoverKeyRequest { citizen_id: citizen_id.clone(), public_key }.encode_to_vec()),
        (
            9,
            pb::SetLocationRequest {
                citizen_id: citizen_id.clone(),
                category: "health".to_owned(),
                uri: "https://pod.example/alice/health".to_owned(),
                provider: "pod.example".to_owned(),
                signature: signature(4),
            }
            .encode_to_vec(),
        ),
        (
            10,
            pb::RegisterServiceRequest {
                service_id: "bike.share".to_owned(),
                organisation: "Bike Share".to_owned(),
                declarations: vec![declaration()],
            }
            .encode_to_vec(),
        ),
        (
            12,
            pb::CertifyServiceRequest {
                service_id: service_id.clone(),
                declarations: vec![declaration()],
                valid_until_unix_ms: federation::T0_UNIX_MS + federation::CERTIFIED_FOR_MS,
            }
            .encode_to_vec(),
        ),
        (
            14,
            pb::GrantConsentRequest {
                citizen_id: citizen_id.clone(),
                service_id: service_id.clone(),
                purpose: federation::PURPOSE.to_owned(),
                attributes: vec!["mobility.trips".to_owned(), "health.steps".to_owned()],
                legal_basis: pb::LegalBasis::Contract.into(),
                valid_from_unix_ms: 0,
                valid_until_unix_ms: federation::T0_UNIX_MS + 86_400_000,
                signature: signature(4),
                identity_scheme: "city-account".to_owned(),
            }
            .encode_to_vec(),
        ),
        (
            16,
            pb::RenewConsentRequest {
                citizen_id: citizen_id.clone(),
                consent_id: "cs-0".to_owned(),
                valid_until_unix_ms: federation::T0_UNIX_MS + 86_400_000,
                signature: signature(4),
            }
            .encode_to_vec(),
        ),
        (17, pb::RevokeConsentRequest { consent_id: "cs-0".to_owned() }.encode_to_vec()),
        (18, pb::SetConsentLifetimeMaxRequest { lifetime_max_ms: 86_400_000 }.encode_to_vec()),
        (
            21,
            pb::ResolveRequest {
                identifier: clear_identifier(),
                service_id: service_id.clone(),
                purpose: federation::PURPOSE.to_owned(),
                attributes: vec!["mobility.trips".to_owned()],
            }
            .encode_to_vec(),
        ),
        (
            22,
            pb::FollowPointerRequest {
                old_uri: "https://pod.example/alice/mobility/trips".to_owned(),
                service_id: service_id.clone(),
                purpose: federation::PURPOSE.to_owned(),
            }
            .encode_to_vec(),
        ),
        (
            23,
            pb::ReadAccessLogRequest {
                citizen_id,
                limit: 10,
                before_record: 0,
                service_id,
                purpose: federation::PURPOSE.to_owned(),
            }
            .encode_to_vec(),
        ),
        (28, pb::RemoveNodeRequest { node_id: 2 }.encode_to_vec()),
    ];

    // Every other request type as its empty message.
    let covered: BTreeSet<u8> = filled.iter().map(|(selector, _)| *selector).collect();
    let kinds = crate::public_messages::MESSAGE_KINDS;
    let empty = (0..kinds).filter(|kind| !covered.contains(kind)).map(|kind| (kind, Vec::new()));
    filled
        .into_iter()
        .chain(empty)
        .map(|(selector, body)| {
            seed("public_messages", format!("kind-{selector:02}"), selector, &body)
        })
        .collect()
}

// --- raft_entry_apply ---

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(3, 1), index)
}

fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry {
    Entry { log_id: log_id(index), payload }
}

fn membership() -> Membership<u64, NodeAddress> {
    let address = |node: u64| NodeAddress {
        raft_addr: format!("127.0.0.1:{}", 8000 + node),
        api_addr: format!("127.0.0.1:{}", 7000 + node),
    };
    let nodes = BTreeMap::from([(1, address(1)), (2, address(2)), (3, address(3))]);
    Membership::new(vec![BTreeSet::from([1, 2])], nodes)
}

/// Requests applied in order to a copy of the seeded index, each of which must succeed.
fn applied_in_order(commands: Vec<Command>) -> Vec<Request> {
    let mut index = SEEDED.clone();
    let mut requests = Vec::new();
    for (step, command) in commands.into_iter().enumerate() {
        let request = Request { at_unix_ms: federation::now_unix_ms() + step as u64, command };
        let mut signed = request.clone();
        federation::sign_for(&index, &mut signed);
        let kind = signed.command.kind();
        let response = index.apply(&signed);
        assert!(response.is_ok(), "seed command {kind} refused: {response:?}");
        refuse_nothing_else(&response);
        requests.push(request);
    }
    requests
}

/// A batch of resolutions succeeds as a whole even when one is refused; seeds want neither.
fn refuse_nothing_else(response: &Result<Response, roamhub_index::IndexError>) {
    if let Ok(Response::Resolutions(outcomes)) = response {
        assert!(outcomes.iter().all(Result::is_ok), "a seeded resolution was refused");
    }
}

fn append_request(commands: Vec<Command>) -> Vec<u8> {
    let entries = applied_in_order(commands)
        .into_iter()
        .enumerate()
        .map(|(position, request)| entry(10 + position as u64, EntryPayload::Normal(request)))
        .collect();
    let append = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 1),
        prev_log_id: Some(log_id(9)),
        entries,
        leader_commit: Some(log_id(9)),
    };
    to_message(&append).data
}

fn consent(number: u64) -> ConsentId {
    ConsentId(number)
}

/// Sequences of commands that together visit every kind of command.
fn sequences() -> Vec<(&'static str, Vec<Command>)> {
    let key_two = signing::public_key_of(&KNOWN_SECRETS[1]);
    let key_one_id = signing::public_key_of(&KNOWN_SECRETS[0]).key_id();
    let home = federation::city(federation::HOME_CITY);
    let other = federation::city(federation::OTHER_CITY);
    let new_citizen = federation::unsigned_registration(5);
    let Command::RegisterCitizen { identifiers, .. } = &new_citizen else { unreachable!() };
    let new_identifier: Identifier = identifiers[0].clone();
    let resolve_args = |identifier: Identifier| ResolveArgs {
        identifier,
        service_id: federation::service_id(),
        purpose: federation::purpose(),
        attributes: Vec::new(),
        via_city: other.clone(),
    };

    vec![
        (
            "withdraw-acknowledge",
            vec![
                federation::unsigned_op(CitizenOp::WithdrawConsent { consent_id: consent(0) }),
                Command::AcknowledgeWithdrawal {
                    service_id: federation::service_id(),
                    consent_id: consent(0),
                },
                federation::resolve(),
            ],
        ),
        (
            "renew-revoke-policy",
            vec![
                Command::SetConsentLifetimeMax { lifetime_max_ms: Some(86_400_000) },
                federation::unsigned_op(CitizenOp::RenewConsent {
                    consent_id: consent(0),
                    valid_until_unix_ms: None,
                }),
                federation::unsigned_op(federation::grant()),
                Command::RevokeConsent { consent_id: consent(1), by_city: home.clone() },
            ],
        ),
        (
            "keys",
            vec![
                federation::unsigned_op(CitizenOp::AddKey { public_key: key_two }),
                federation::unsigned_op(CitizenOp::RemoveKey { key_id: key_two.key_id() }),
                Command::RecoverKey {
                    citizen_id: federation::citizen_id(),
                    public_key: key_two,
                    by_city: home.clone(),
                },
            ],
        ),
        (
            "move-erase",
            vec![
                federation::unsigned_op(CitizenOp::MoveHome { to_city: other.clone() }),
                federation::unsigned_op(federation::set_location("https://pod.example/a/health")),
                federation::unsigned_op(CitizenOp::Erase),
                Command::RemoveMember { city_id: home.clone() },
            ],
        ),
        (
            "register-resolve",
            vec![
                new_citizen,
                Command::ResolveBatch(vec![
                    resolve_args(federation::identifier()),
                    resolve_args(new_identifier),
                ]),
                Command::FollowPointer(FollowArgs {
                    old_uri: "https://pod.example/alice/mobility/trips/2024".to_owned(),
                    service_id: federation::service_id(),
                    purpose: federation::purpose(),
                    via_city: other.clone(),
                }),
            ],
        ),
        (
            "services",
            vec![
                Command::RegisterService {
                    service_id: roamhub_index::ServiceId::parse("s", "bike.share").expect("an id"),
                    organisation: "Bike Share".to_owned(),
                    declarations: federation::declarations(),
                },
                Command::DecertifyService { service_id: federation::service_id(), by_city: other },
                Command::CertifyService {
                    service_id: federation::service_id(),
                    by_city: home,
                    declarations: federation::declarations(),
                    valid_until_unix_ms: federation::now_unix_ms() + 86_400_000,
                },
                Command::UpsertMember(federation::member("de-aachen", 3)),
            ],
        ),
        (
            "add-identifier",
            vec![federation::unsigned_op(CitizenOp::AddIdentifier(
                Identifier::from_digest("identifier", "did", &"cd".repeat(32)).expect("an id"),
            ))],
        ),
        // The last one is signed with the second key, which the citizen holds by then.
        (
            "second-key",
            vec![
                federation::unsigned_op(CitizenOp::AddKey { public_key: key_two }),
                second_key_op(CitizenOp::RemoveKey { key_id: key_one_id }),
            ],
        ),
    ]
}

fn second_key_op(op: CitizenOp) -> Command {
    let Command::Citizen { citizen_id, op, mut auth } = federation::unsigned_op(op) else {
        unreachable!("unsigned_op builds a citizen command")
    };
    auth.key_id = signing::public_key_of(&KNOWN_SECRETS[1]).key_id();
    Command::Citizen { citizen_id, op, auth }
}

fn raft_entry_apply() -> Vec<Seed> {
    const TARGET: &str = "raft_entry_apply";
    let mut seeds = Vec::new();
    for (label, commands) in sequences() {
        let body = append_request(commands);
        seeds.push(seed(TARGET, format!("append-{label}"), APPEND_REQUEST, &body));
    }

    let [grant] = <[Request; 1]>::try_from(applied_in_order(vec![federation::unsigned_op(
        federation::grant(),
    )]))
    .expect("one request");
    let stored = entry(10, EntryPayload::Normal(grant.clone()));
    seeds.push(seed(TARGET, "entry-grant", STORED_ENTRY, &codec::encode(&stored)));
    let blank = entry(11, EntryPayload::Blank);
    seeds.push(seed(TARGET, "entry-blank", STORED_ENTRY, &codec::encode(&blank)));
    let members = entry(12, EntryPayload::Membership(membership()));
    seeds.push(seed(TARGET, "entry-membership", STORED_ENTRY, &codec::encode(&members)));

    let propose = to_message(&Work::Propose(grant)).data;
    seeds.push(seed(TARGET, "work-propose", FORWARDED_WORK, &propose));
    let read = to_message(&Work::Read(Query::Citizen(federation::citizen_id()))).data;
    seeds.push(seed(TARGET, "work-read", FORWARDED_WORK, &read));
    seeds
}

// --- signed_bytes ---

fn signed_bytes() -> Vec<Seed> {
    let citizen_id = federation::citizen_id();
    let key = signing::public_key_of(&KNOWN_SECRETS[1]);
    let tail = [key.as_bytes().as_slice(), &[7; 64]].concat();
    let ops = [
        ("grant", federation::grant()),
        ("set-location", federation::set_location("https://pod.example/a/mobility")),
        ("add-key", CitizenOp::AddKey { public_key: key }),
        ("remove-key", CitizenOp::RemoveKey { key_id: key.key_id() }),
        ("renew", CitizenOp::RenewConsent { consent_id: consent(3), valid_until_unix_ms: Some(9) }),
        ("erase", CitizenOp::Erase),
    ];

    let mut seeds: Vec<Seed> = ops
        .into_iter()
        .map(|(label, op)| {
            let body = [postcard_bytes(&(&citizen_id, 1u64, op)), tail.clone()].concat();
            seed("signed_bytes", format!("op-{label}"), 0, &body)
        })
        .collect();
    let registration = (federation::city("nl-eindhoven"), vec![federation::identifier()], key);
    let body = [postcard_bytes(&registration), tail].concat();
    seeds.push(seed("signed_bytes", "registration", 1, &body));
    seeds
}

fn postcard_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("seeds encode")
}

// --- raft_messages ---

fn raft_messages() -> Vec<Seed> {
    const TARGET: &str = "raft_messages";
    let (_, commands) = sequences().swap_remove(0);
    let snapshot = crate::raft_messages::SnapshotState {
        last_applied: Some(log_id(20)),
        last_membership: StoredMembership::new(Some(log_id(1)), membership()),
        index: SEEDED.clone(),
    };
    let install = InstallSnapshotRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 1),
        meta: SnapshotMeta {
            last_log_id: Some(log_id(20)),
            last_membership: StoredMembership::new(Some(log_id(1)), membership()),
            snapshot_id: "3-20".to_owned(),
        },
        offset: 0,
        data: codec::encode(&snapshot),
        done: true,
    };
    let vote = VoteRequest { vote: Vote::new(4, 2), last_log_id: Some(log_id(20)) };
    type Reply<T> = Result<T, openraft::error::RaftError<u64, openraft::error::Infallible>>;
    let appended: Reply<AppendEntriesResponse<u64>> = Ok(AppendEntriesResponse::Success);
    let voted: Reply<VoteResponse<u64>> =
        Ok(VoteResponse { vote: Vote::new(4, 2), vote_granted: true, last_log_id: None });
    let done = Attempt::Done(Ok(Done::Response(Response::PolicySet)));
    let not_leader = Attempt::NotLeader {
        leader: Some(NodeAddress { raft_addr: "127.0.0.1:8001".into(), api_addr: "x".into() }),
    };

    vec![
        seed(TARGET, "append", 0, &append_request(commands)),
        seed(TARGET, "vote", 1, &codec::encode(&vote)),
        seed(TARGET, "install-snapshot", 2, &codec::encode(&install)),
        seed(TARGET, "append-reply", 3, &codec::encode(&appended)),
        seed(TARGET, "vote-reply", 4, &codec::encode(&voted)),
        seed(TARGET, "attempt-done", 6, &codec::encode(&done)),
        seed(TARGET, "attempt-not-leader", 6, &codec::encode(&not_leader)),
    ]
}
