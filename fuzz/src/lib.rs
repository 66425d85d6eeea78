//! The checks behind roamhub's fuzz targets, kept in a library so that the seed test and
//! the regression replay (`tests/corpus.rs`) run them on stable Rust without libFuzzer.
//!
//! Each target in `fuzz_targets/` is one line that hands the input to a `check` here:
//! - [`public_messages`]: a public API request decoded by prost, then turned into an index
//!   command by the node's conversions, checked and applied;
//! - [`raft_entry_apply`]: a Raft log entry, forwarded work or append request decoded by the
//!   store's codec and applied to two clones of a seeded index, which must agree;
//! - [`signed_bytes`]: the bytes a citizen signs, decoded and re-encoded, and signature
//!   verification of arbitrary keys and signatures;
//! - [`raft_messages`]: every message between nodes, decoded as the node decodes it.
//!
//! [`federation`] builds the small valid index every target starts from, and [`seeds`]
//! the valid inputs the corpora start from. A check panics only on a broken property; a
//! refusal is an answer, not a failure.

pub mod federation;
pub mod public_messages;
pub mod raft_entry_apply;
pub mod raft_messages;
pub mod seeds;
pub mod signed_bytes;

/// Encodes `value` with the store's codec, decodes it back and encodes it again: the
/// encoding of a decoded value must be a fixpoint, or two replicas holding the same value
/// could store or send different bytes.
pub fn assert_reencodes<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let bytes = roamhub_store::codec::encode(value);
    let again: T = roamhub_store::codec::decode(&bytes).expect("an encoded value decodes");
    assert_eq!(roamhub_store::codec::encode(&again), bytes, "re-encoding changed the bytes");
}
