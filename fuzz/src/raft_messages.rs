//! Fuzzes every message nodes exchange over the internal service, decoded as the node
//! decodes them (`network::from_message`), both the requests a node serves and the replies
//! it reads from its peers.
//!
//! The first byte picks the message type; the rest is the message's data. A message that
//! decodes must be printable the way openraft logs it, and its encoding must be a fixpoint
//! (see `assert_reencodes`). A snapshot's data is decoded as the state machine decodes a
//! snapshot it installs, and the index in it is validated and queried without panicking.

use openraft::error::{Infallible, InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{EntryPayload, MessageSummary};
use roamhub_index::{Index, Query};
use roamhub_node::network::from_message;
use roamhub_node::node::Attempt;
use roamhub_store::TypeConfig;
use roamhub_store::codec;
use roamhub_store::types::{LogId, StoredMembership};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::assert_reencodes;
use crate::raft_entry_apply::message;

/// How many message types the selector byte chooses from.
pub const MESSAGE_KINDS: u8 = 7;

pub fn check(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else { return };
    match selector % MESSAGE_KINDS {
        0 => decoded::<AppendEntriesRequest<TypeConfig>>(bytes, |append| {
            print(format!("{} {append:?}", append.summary()));
            append.entries.iter().for_each(print_entry);
        }),
        1 => decoded::<VoteRequest<u64>>(bytes, |vote| print(vote.to_string())),
        2 => decoded::<InstallSnapshotRequest<TypeConfig>>(bytes, |install| {
            let _ = (install.to_string(), install.summary());
            check_snapshot(&install.data);
        }),
        3 => decoded::<Result<AppendEntriesResponse<u64>, RaftError<u64, Infallible>>>(
            bytes,
            |reply| print(format!("{reply:?}")),
        ),
        4 => decoded::<Result<VoteResponse<u64>, RaftError<u64, Infallible>>>(bytes, |reply| {
            print(format!("{reply:?}"))
        }),
        5 => decoded::<Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>>(
            bytes,
            |reply| print(format!("{reply:?}")),
        ),
        _ => decoded::<Attempt>(bytes, |attempt| print(format!("{attempt:?}"))),
    }
}

/// Decodes the bytes as a message of type `T`, then inspects and re-encodes it.
fn decoded<T>(bytes: &[u8], inspect: impl FnOnce(&T))
where
    T: Serialize + DeserializeOwned,
{
    let Ok(value) = from_message::<T>(&message(bytes)) else { return };
    inspect(&value);
    assert_reencodes(&value);
}

fn print(text: String) {
    std::hint::black_box(text);
}

/// Prints an entry as openraft's logs do, membership included.
fn print_entry(entry: &roamhub_store::types::Entry) {
    print(format!("{entry} {entry:?}"));
    if let EntryPayload::Membership(membership) = &entry.payload {
        print(membership.to_string());
        let voters: Vec<u64> = membership.voter_ids().collect();
        let learners: Vec<u64> = membership.learner_ids().collect();
        std::hint::black_box((voters, learners, membership.get_joint_config()));
    }
}

/// The state a snapshot holds, field for field as the store's private `Applied`, which is
/// what a node decodes when it installs a snapshot. postcard encodes a struct as its fields
/// in order, so this mirror reads the same bytes.
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotState {
    pub(crate) last_applied: Option<LogId>,
    pub(crate) last_membership: StoredMembership,
    pub(crate) index: Index,
}

fn check_snapshot(data: &[u8]) {
    let Ok(state) = codec::decode::<SnapshotState>(data) else { return };
    // A snapshot from a peer is not checked when installed; validating must still not panic.
    let _ = state.index.validate();
    for query in [Query::Members, Query::Services] {
        let _ = state.index.query(&query);
    }
    print(format!("{:?}", state.last_membership));
    assert_reencodes(&state);
}
