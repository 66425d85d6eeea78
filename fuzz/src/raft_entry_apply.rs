//! Fuzzes the replicated state machine: bytes decoded as a node decodes index commands,
//! then applied to two clones of the seeded index, which must stay identical.
//!
//! The first byte picks where the bytes come from:
//! - 0: a log entry as the log store reads it back (`codec::decode::<Entry>`);
//! - 1: work a follower forwards to the leader (`network::from_message::<Work>`);
//! - 2: an append request from the leader (`from_message::<AppendEntriesRequest>`), whose
//!   entries apply in order, so that the fuzzer can build sequences of commands.
//!
//! Before each command the harness signs for the fuzzer where the command asks it to
//! (`federation::sign_for`). Properties: applying never panics (in debug builds `apply`
//! also validates the whole index); both clones answer the same and encode to the same
//! bytes; a refused command leaves the index exactly as it was; the index's encoding, as a
//! snapshot stores it, decodes back to an equal index.

use openraft::EntryPayload;
use openraft::raft::AppendEntriesRequest;
use roamhub_index::{Index, Request};
use roamhub_node::network::from_message;
use roamhub_node::node::Work;
use roamhub_proto::raft::v1::RaftMessage;
use roamhub_store::TypeConfig;
use roamhub_store::codec::{self, FORMAT_VERSION};
use roamhub_store::types::Entry;

use crate::federation::{self, SEEDED};

/// Where the first byte says the rest comes from.
pub const STORED_ENTRY: u8 = 0;
pub const FORWARDED_WORK: u8 = 1;
pub const APPEND_REQUEST: u8 = 2;

pub fn check(data: &[u8]) {
    let Some((&source, bytes)) = data.split_first() else { return };
    let mut replicas = Replicas::seeded();

    match source % 3 {
        STORED_ENTRY => {
            let Ok(entry) = codec::decode::<Entry>(bytes) else { return };
            replicas.apply_entry(entry);
        }
        FORWARDED_WORK => match from_message::<Work>(&message(bytes)) {
            Ok(Work::Propose(request)) => replicas.apply(request),
            Ok(Work::Read(query)) => replicas.read(&query),
            Err(_) => {}
        },
        _ => {
            let Ok(append) = from_message::<AppendEntriesRequest<TypeConfig>>(&message(bytes))
            else {
                return;
            };
            append.entries.into_iter().for_each(|entry| replicas.apply_entry(entry));
        }
    }
    replicas.assert_snapshot_round_trips();
}

/// The bytes as the data of a Raft message of this release's format.
pub fn message(bytes: &[u8]) -> RaftMessage {
    RaftMessage { format_version: u32::from(FORMAT_VERSION), data: bytes.to_vec() }
}

/// Two replicas that apply the same commands and must not diverge.
struct Replicas {
    first: Index,
    second: Index,
}

impl Replicas {
    fn seeded() -> Replicas {
        Replicas { first: SEEDED.clone(), second: SEEDED.clone() }
    }

    /// Applies an entry as the state machine does: only normal entries reach the index.
    fn apply_entry(&mut self, entry: Entry) {
        if let EntryPayload::Normal(request) = entry.payload {
            self.apply(request);
        }
    }

    fn apply(&mut self, mut request: Request) {
        federation::sign_for(&self.first, &mut request);
        let before = self.first.clone();

        let first = self.first.apply(&request);
        let second = self.second.apply(&request);
        assert_eq!(first, second, "two replicas answered the same command differently");
        assert!(self.first == self.second, "two replicas diverged on the same command");
        assert_eq!(codec::encode(&self.first), codec::encode(&self.second), "digests differ");

        match first {
            Ok(response) => crate::public_messages::render_response(&response),
            Err(_) => assert!(self.first == before, "a refused command changed the index"),
        }
    }

    fn read(&self, query: &roamhub_index::Query) {
        let answer = self.first.query(query);
        assert_eq!(answer, self.second.query(query), "two replicas answered a read differently");
        if let Ok(answer) = answer {
            crate::public_messages::render_answer(&answer);
        }
    }

    /// A snapshot stores the index in the codec; it must read back as the same index.
    fn assert_snapshot_round_trips(&self) {
        let bytes = codec::encode(&self.first);
        let restored: Index = codec::decode(&bytes).expect("a stored index decodes");
        assert!(restored == self.first, "the index changed through a snapshot");
        if let Err(broken) = self.first.validate() {
            panic!("the index is invalid after applying: {broken}");
        }
    }
}
